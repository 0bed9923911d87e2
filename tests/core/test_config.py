"""Settings from the environment: invalid values stop start-up naming the variable."""

from __future__ import annotations

import pytest

from core.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IMAGINGOPS_BREACH_THRESHOLD", "1.5"),
        ("IMAGINGOPS_BREACH_THRESHOLD", "nan"),
        ("IMAGINGOPS_SLA_ESCALATION_HOURS", "inf"),
        ("IMAGINGOPS_SLA_ESCALATION_HOURS", "nan"),
        ("IMAGINGOPS_INGEST_STABLE_SECONDS", "nan"),
    ],
)
def test_invalid_float_setting_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert name in str(raised.value)


def test_breach_threshold_bounds_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGINGOPS_BREACH_THRESHOLD", "1")
    assert load_settings().breach_threshold == 1.0
    monkeypatch.setenv("IMAGINGOPS_BREACH_THRESHOLD", "0")
    assert load_settings().breach_threshold == 0.0
