"""The jobs process: run records, time limits, catch-up after downtime, SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.config import PROJECT_ROOT, Settings
from core.jobstatus import job_health
from core.models import JobRun
from core.runtime import Runtime
from jobs.scheduler import (
    JobSpec,
    SkippedRunFilter,
    default_jobs,
    first_run_times,
    prune_job_runs,
    run_job,
)
from tests.jobs import steps


def _runs(sessions: sessionmaker[Session]) -> list[JobRun]:
    with sessions() as session:
        return list(session.scalars(select(JobRun).order_by(JobRun.id)))


def test_run_records_items(runtime: Runtime) -> None:
    result = run_job(runtime, JobSpec("seven", steps.seven_items, 60, 60))
    [row] = _runs(runtime.sessions)
    assert result.ok
    assert row.job == "seven"
    assert row.ok is True
    assert row.items == 7
    assert row.finished_at is not None
    assert row.host


def test_failing_step_recorded(runtime: Runtime) -> None:
    run_job(runtime, JobSpec("fail", steps.fail, 60, 60))
    [row] = _runs(runtime.sessions)
    assert row.ok is False
    assert row.error == "ValueError: broken step"


def test_hanging_step_is_killed(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="jobs.scheduler"):
        result = run_job(runtime, JobSpec("hang", steps.hang, 60, 1))
    [row] = _runs(runtime.sessions)
    assert not result.ok
    assert row.ok is False
    assert row.error == "timed out after 1 s"
    assert "Job hang timed out" in caplog.text


def test_missed_runs_run_once(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
    with runtime.sessions.begin() as session:
        for job, age in (("down", 600), ("recent", 30)):
            started = now - timedelta(seconds=age)
            session.add(
                JobRun(
                    job=job, host="h", started_at=started, finished_at=started, ok=True
                )
            )
    specs = [
        JobSpec("down", steps.seven_items, 60, 60),
        JobSpec("recent", steps.seven_items, 60, 60),
        JobSpec("new", steps.seven_items, 60, 60),
    ]
    with caplog.at_level(logging.WARNING, logger="jobs.scheduler"):
        first = first_run_times(runtime, specs, now)
    assert first["down"] == now
    assert first["recent"] == now + timedelta(seconds=30)
    assert first["new"] == now
    assert "Job down missed 10 run(s)" in caplog.text
    assert "recent" not in caplog.text


def test_stale_job_health(sessions: sessionmaker[Session]) -> None:
    now = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
    with sessions.begin() as session:
        for job, age, ok in (
            ("fresh", 50, True),
            ("old", 500, True),
            ("bad", 5, False),
        ):
            started = now - timedelta(seconds=age)
            session.add(
                JobRun(
                    job=job, host="h", started_at=started, finished_at=started, ok=ok
                )
            )
    with sessions() as session:
        health = {
            h.job: h
            for h in job_health(
                session, {"fresh": 60, "old": 60, "bad": 60, "never": 60}, now
            )
        }
    assert not health["fresh"].stale
    assert health["old"].stale
    assert health["bad"].stale
    assert health["bad"].last_success is None
    assert health["never"].stale


def test_default_jobs(settings: Settings) -> None:
    """Frequent batch-bounded steps run in-process; the demo feed can be turned off."""
    specs = default_jobs(settings)
    assert [(spec.name, spec.isolated) for spec in specs] == [
        ("ingest_drop_folder", False),
        ("auto_qc", True),
        ("assign_reads", True),
        ("reassign_stalled_reads", True),
        ("triage_fit", True),
        ("triage_backtest", True),
        ("sla_sweep", True),
        ("sla_notify", True),
        ("sla_digest", True),
        ("prune_job_runs", True),
        ("dashboard_rollups", True),
        ("demo_feed", False),
    ]
    assert specs[0].interval_seconds == settings.ingest_interval_seconds
    without_feed = default_jobs(replace(settings, demo_feed_seconds=0))
    assert "demo_feed" not in [spec.name for spec in without_feed]


def test_prune_keeps_recent_runs_and_each_last_success(runtime: Runtime) -> None:
    old = datetime.now(UTC) - timedelta(days=runtime.settings.job_runs_keep_days + 1)
    with runtime.sessions.begin() as session:
        for job, ok, started in [
            ("scan", True, old - timedelta(hours=1)),
            ("scan", False, old),
            ("scan", True, datetime.now(UTC)),
            ("digest", True, old - timedelta(hours=1)),
            ("digest", True, old),  # the last success of "digest": kept
        ]:
            session.add(JobRun(job=job, host="h", started_at=started, ok=ok))
    assert prune_job_runs(runtime) == 3
    with runtime.sessions() as session:
        left = sorted(session.execute(select(JobRun.job, JobRun.ok)).all())
    assert left == [("digest", True), ("scan", True)]


def test_sigterm_finishes_step(
    sessions: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    env = {**os.environ, "IMAGINGOPS_TEST_MARKER": str(marker)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.jobs.steps", database_url],
        cwd=PROJECT_ROOT,
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(600):
            if marker.exists():
                break
            try:
                process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
        assert marker.exists()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    [row] = _runs(sessions)
    assert process.returncode == 0
    assert row.ok is True
    assert row.items == 3
    assert b"stopping after the runs in flight" in stderr


def test_skipped_run_warnings_are_rate_limited() -> None:
    limiter = SkippedRunFilter(every_seconds=3600)

    def warning(job: str) -> logging.LogRecord:
        return logging.LogRecord(
            "apscheduler.scheduler",
            logging.WARNING,
            __file__,
            1,
            'Execution of job "%s" skipped: maximum number of running instances '
            "reached (%d)",
            (job, 1),
            None,
        )

    passed = [limiter.filter(warning("scan")) for _ in range(5)]
    other_job = limiter.filter(warning("qc"))
    unrelated = limiter.filter(
        logging.LogRecord("x", logging.WARNING, __file__, 1, "other", None, None)
    )
    limiter.every_seconds = 0
    late = warning("scan")

    assert passed == [True, False, False, False, False]
    assert other_job is True
    assert unrelated is True
    assert limiter.filter(late) is True
    assert late.getMessage().endswith("; 4 more runs skipped before this one")


def test_skipped_run_limit_keys_on_job_id() -> None:
    # APScheduler passes the Job itself, whose str() includes the next run time,
    # so a key built from str(job) changes on every tick.
    scheduler = BackgroundScheduler(timezone=UTC)
    job = scheduler.add_job(print, "interval", seconds=2, id="scan")
    limiter = SkippedRunFilter(every_seconds=3600)
    message = (
        'Execution of job "%s" skipped: maximum number of running instances '
        "reached (%d)"
    )
    passed = []
    for tick in range(3):
        job.next_run_time = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=tick)
        record = logging.LogRecord(
            "apscheduler.scheduler",
            logging.WARNING,
            __file__,
            1,
            message,
            (job, 1),
            None,
        )
        passed.append(limiter.filter(record))

    assert passed == [True, False, False]
