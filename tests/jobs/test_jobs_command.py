"""`app.py jobs`: the DICOM receiver and its ingest thread stop with the process."""

from __future__ import annotations

import argparse
import threading
from dataclasses import replace
from typing import Any

import pytest

import app
import jobs.scheduler
import jobs.scp
from core.runtime import Runtime


def test_receiver_stops_when_scheduler_fails(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = replace(runtime, settings=replace(runtime.settings, scp_port=0))
    servers: list[Any] = []
    real_start_scp = jobs.scp.start_scp

    def start_scp(*args: Any, **kwargs: Any) -> Any:
        servers.append(real_start_scp(*args, **kwargs))
        return servers[-1]

    def failing_run_forever(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("scheduler start failed")

    monkeypatch.setattr(app, "open_runtime", lambda name: runtime)
    monkeypatch.setattr(jobs.scp, "start_scp", start_scp)
    monkeypatch.setattr(jobs.scheduler, "run_forever", failing_run_forever)

    try:
        with pytest.raises(RuntimeError):
            app.cmd_jobs(argparse.Namespace(no_scp=False))
        left = [t for t in threading.enumerate() if t.name == "scp-ingest"]
        [server] = servers
        assert left == []
        assert server.socket.fileno() == -1
    finally:
        # Stop what a failed command left running, so the test run can exit.
        for thread in threading.enumerate():
            if thread.name == "scp-ingest":
                _, wake, stop = thread._args  # type: ignore[attr-defined]
                stop.set()
                wake.set()
                thread.join()
        for server in servers:
            if server.socket.fileno() != -1:
                server.shutdown()
