"""`app.py demo`: a build that stopped part-way is reported, not served as built."""

from __future__ import annotations

import argparse

import pytest

import app
from core import demo
from core.runtime import Runtime


def _run_demo(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(app, "open_runtime", lambda name: runtime)
    return app.cmd_demo(argparse.Namespace(if_empty=True))


def test_demo_command_reports_stopped_build(
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    demo.demo_passwords(demo.credentials_path(runtime))
    # A build interrupted after its first transaction leaves the studies only.
    with runtime.sessions.begin() as session:
        demo.load_charters(session)

    code = _run_demo(runtime, monkeypatch)

    assert code == 1
    assert "did not finish" in capsys.readouterr().err


def test_demo_command_prints_users_of_built_portfolio(
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    passwords = demo.demo_passwords(demo.credentials_path(runtime))
    with runtime.sessions.begin() as session:
        demo.load_charters(session)
        demo.record_built(session)

    code = _run_demo(runtime, monkeypatch)

    assert code == 0
    assert passwords["admin"] in capsys.readouterr().out
