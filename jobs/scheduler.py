"""The jobs process: APScheduler 3.x running each job step on an interval.

Each run of a step happens in a fresh worker process (multiprocessing "spawn") that
opens its own database connection. The scheduler thread waits at most the job's time
limit; a step still running then is killed (SIGKILL), the kill is logged and the run
is recorded as failed. Killing the process closes its connection, so PostgreSQL rolls
back whatever the step had not committed. A thread could not be stopped this way,
and a statement timeout alone would not stop a step stuck outside SQL (for example on
an SMTP server), so the worker also sets `statement_timeout` to the time limit as a
second guard. Spawning costs an interpreter start (about half a second per run),
which is small next to job intervals of a minute; the few steps that run every few
seconds and are bounded by a batch size run in a scheduler thread instead.

Every run writes a `job_runs` row. At start-up each job's last run is compared with
its interval: a job whose next run fell while the process was down runs once at once
(coalesced) and the missed runs are logged. SIGTERM or SIGINT lets the runs in flight
finish, then the process exits.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import CursorResult, delete, func, insert, select, update

from core.config import Settings
from core.db import make_engine, make_sessionmaker
from core.models import JobRun
from core.runtime import Runtime

log = logging.getLogger(__name__)

# Seconds a run may start late (after a busy moment) and still run.
MISFIRE_GRACE_SECONDS = 30

Step = Callable[[Runtime], int]


@dataclass(frozen=True)
class JobSpec:
    """A periodic job: `step(runtime)` returns the number of items it handled."""

    name: str
    step: Step
    interval_seconds: int
    time_limit_seconds: int
    # Steps that run every few seconds and are bounded by a batch size (the drop
    # folder scan, the demo feed) run in a scheduler thread: an interpreter start
    # per run would cost more than the step.
    isolated: bool = True


@dataclass(frozen=True)
class RunResult:
    ok: bool
    items: int
    error: str | None


def default_jobs(settings: Settings) -> list[JobSpec]:
    """Return the jobs the process runs, with intervals from the settings."""
    from jobs.assignment import assign_step, reassign_step
    from jobs.demo_feed import feed_demo_arrival
    from jobs.ingest import scan_drop_folder
    from jobs.qc import run_auto_qc
    from jobs.rollups import rebuild_step
    from jobs.sla import (
        backtest_step,
        digest_step,
        fit_step,
        notify_step,
        sweep_step,
    )

    limit = settings.job_time_limit_seconds
    specs = [
        JobSpec(
            "ingest_drop_folder",
            scan_drop_folder,
            settings.ingest_interval_seconds,
            limit,
            isolated=False,
        ),
        JobSpec("auto_qc", run_auto_qc, settings.qc_interval_seconds, limit),
        JobSpec(
            "assign_reads",
            assign_step,
            settings.assignment_interval_seconds,
            limit,
        ),
        JobSpec(
            "reassign_stalled_reads",
            reassign_step,
            settings.assignment_interval_seconds * 5,
            limit,
        ),
        JobSpec("triage_fit", fit_step, 3600, limit),
        JobSpec("triage_backtest", backtest_step, 24 * 3600, limit),
        JobSpec("sla_sweep", sweep_step, settings.sla_interval_seconds, limit),
        JobSpec("sla_notify", notify_step, settings.sla_interval_seconds, limit),
        JobSpec("sla_digest", digest_step, 300, limit),
        JobSpec("prune_job_runs", prune_job_runs, 3600, limit),
        JobSpec(
            "dashboard_rollups", rebuild_step, settings.rollup_interval_seconds, limit
        ),
    ]
    if settings.demo_feed_seconds:
        # The step writes nothing unless the database contains demo studies.
        specs.append(
            JobSpec(
                "demo_feed",
                feed_demo_arrival,
                settings.demo_feed_seconds,
                limit,
                isolated=False,
            )
        )
    return specs


def prune_job_runs(runtime: Runtime) -> int:
    """Delete job runs older than the kept days, except each job's last success.

    Job runs are operational records, not workflow data: the drop folder scan alone
    writes one every few seconds.
    """
    keep_days = runtime.settings.job_runs_keep_days
    with runtime.sessions.begin() as session:
        last_ok = (
            select(func.max(JobRun.id)).where(JobRun.ok.is_(True)).group_by(JobRun.job)
        )
        result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            delete(JobRun).where(
                JobRun.started_at < func.now() - timedelta(days=keep_days),
                JobRun.id.not_in(last_ok),
            )
        )
    return int(result.rowcount or 0)


def _worker(
    step: Step, settings: Settings, url: str, limit: int, conn: Connection
) -> None:
    """Run one step in the worker process and send back (ok, items, error)."""
    # The parent decides when to stop; a terminal's Ctrl-C must not cut a step.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from core.runtime import configure_logging

    configure_logging(settings.log_level)
    options = f"-c statement_timeout={limit * 1000}"
    engine = make_engine(
        url,
        application_name="imagingops-job",
        pool_size=2,
        connect_args={"application_name": "imagingops-job", "options": options},
    )
    runtime = Runtime(settings, url, engine, make_sessionmaker(engine))
    try:
        conn.send((True, int(step(runtime)), None))
    except Exception as exc:
        log.exception("Job step %s failed", getattr(step, "__name__", step))
        conn.send((False, 0, f"{type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()
        conn.close()


def run_isolated(runtime: Runtime, spec: JobSpec) -> RunResult:
    """Run a step in a worker process and kill it if it passes its time limit."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    args = (spec.step, runtime.settings, runtime.url, spec.time_limit_seconds, sender)
    process = context.Process(target=_worker, args=args, name=f"job-{spec.name}")
    process.start()
    sender.close()
    process.join(spec.time_limit_seconds)
    if process.is_alive():
        process.kill()
        process.join()
        log.error(
            "Job %s timed out after %d s; its worker process %s was killed",
            spec.name,
            spec.time_limit_seconds,
            process.pid,
        )
        return RunResult(False, 0, f"timed out after {spec.time_limit_seconds} s")
    if not receiver.poll():
        return RunResult(False, 0, f"worker exited with code {process.exitcode}")
    ok, items, error = receiver.recv()
    return RunResult(ok, items, error)


def run_inline(runtime: Runtime, spec: JobSpec) -> RunResult:
    """Run a step in this process's scheduler thread."""
    try:
        return RunResult(True, int(spec.step(runtime)), None)
    except Exception as exc:
        log.exception("Job step %s failed", spec.name)
        return RunResult(False, 0, f"{type(exc).__name__}: {exc}")


def run_job(runtime: Runtime, spec: JobSpec) -> RunResult:
    """Run one job and record it in `job_runs` (started, finished, ok, items)."""
    with runtime.sessions.begin() as session:
        run_id = session.scalar(
            insert(JobRun)
            .values(job=spec.name, host=socket.gethostname(), started_at=func.now())
            .returning(JobRun.id)
        )
    result = run_isolated(runtime, spec) if spec.isolated else run_inline(runtime, spec)
    with runtime.sessions.begin() as session:
        session.execute(
            update(JobRun)
            .where(JobRun.id == run_id)
            .values(
                finished_at=func.now(),
                ok=result.ok,
                items=result.items,
                error=result.error,
            )
        )
    if result.ok:
        log.info("Job %s handled %d items", spec.name, result.items)
    return result


def first_run_times(
    runtime: Runtime, specs: list[JobSpec], now: datetime
) -> dict[str, datetime]:
    """Return when each job first runs, logging the runs missed while down."""
    with runtime.sessions() as session:
        rows = session.execute(
            select(JobRun.job, func.max(JobRun.started_at)).group_by(JobRun.job)
        )
        last_runs: dict[str, datetime] = {job: started for job, started in rows}
    first: dict[str, datetime] = {}
    for spec in specs:
        interval = timedelta(seconds=spec.interval_seconds)
        last = last_runs.get(spec.name)
        if last is None or now - last < interval:
            first[spec.name] = now if last is None else last + interval
            continue
        missed = int((now - last) / interval)
        log.warning(
            "Job %s missed %d run(s) since %s while the jobs process was down; "
            "running it once now",
            spec.name,
            missed,
            last.isoformat(),
        )
        first[spec.name] = now
    return first


class SkippedRunFilter(logging.Filter):
    """Rate-limit APScheduler's warning that a run was skipped because one is running.

    A drop folder scan of a large upload outlasts its 2-second interval, and the
    scheduler then warns on every tick. One warning per job per `every_seconds`
    goes through, with the count of the skipped runs it stands for.
    """

    def __init__(self, every_seconds: float = 600.0) -> None:
        super().__init__()
        self.every_seconds = every_seconds
        self._last: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if "skipped: maximum number of running instances" not in str(record.msg):
            return True
        # The argument is APScheduler's Job, whose str() includes the next run
        # time, so the key is its id.
        job = ""
        if isinstance(record.args, tuple) and record.args:
            job = str(getattr(record.args[0], "id", record.args[0]))
        now = time.monotonic()
        reported_at, hidden = self._last.get(job, (None, 0))
        if reported_at is not None and now - reported_at < self.every_seconds:
            self._last[job] = (reported_at, hidden + 1)
            return False
        self._last[job] = (now, 0)
        if hidden:
            record.msg = f"{record.msg}; {hidden} more runs skipped before this one"
        return True


_SKIPPED_RUNS = SkippedRunFilter()


def build_scheduler(runtime: Runtime, specs: list[JobSpec]) -> BackgroundScheduler:
    """Create the scheduler with one interval job per spec, not yet started."""
    logging.getLogger("apscheduler.scheduler").addFilter(_SKIPPED_RUNS)
    scheduler = BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(max(len(specs), 1))},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        },
    )
    now = datetime.now(UTC)
    for spec in specs:
        scheduler.add_job(
            run_job,
            IntervalTrigger(seconds=spec.interval_seconds, timezone=UTC),
            args=[runtime, spec],
            id=spec.name,
            name=spec.name,
            next_run_time=first_run_times(runtime, [spec], now)[spec.name],
        )
    return scheduler


def run_forever(
    runtime: Runtime,
    specs: list[JobSpec],
    stop: threading.Event | None = None,
    on_stop: Callable[[], Any] | None = None,
) -> None:
    """Run the scheduler until SIGTERM/SIGINT or `stop`, then finish runs in flight."""
    stop = stop or threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        log.info("Received signal %d; stopping after the runs in flight", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
    scheduler = build_scheduler(runtime, specs)
    scheduler.start()
    log.info("Jobs process %d started: %s", os.getpid(), [s.name for s in specs])
    stop.wait()
    scheduler.shutdown(wait=True)
    if on_stop is not None:
        on_stop()
    log.info("Jobs process stopped")
