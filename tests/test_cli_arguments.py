"""Command-line arguments: invalid values exit with usage status 2 naming them."""

from __future__ import annotations

import pytest

import app


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_backtest_threshold_outside_unit_rejected(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        app.build_parser().parse_args(["triage-backtest", "--threshold", value])
    assert raised.value.code == 2
    assert "--threshold" in capsys.readouterr().err


def test_backtest_threshold_in_unit_accepted() -> None:
    args = app.build_parser().parse_args(["triage-backtest", "--threshold", "0.7"])
    assert args.threshold == 0.7
