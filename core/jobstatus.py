"""Job health for the dashboard: each job's last successful run and staleness."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

# A job is stale when its last success is older than this many of its intervals.
STALE_AFTER_INTERVALS = 3

_HEALTH_SQL = """
SELECT j.job,
       (SELECT max(finished_at) FROM job_runs s
         WHERE s.job = j.job AND s.ok) AS last_success,
       (SELECT row(r.ok, r.error, r.finished_at)::text FROM job_runs r
         WHERE r.job = j.job ORDER BY r.started_at DESC LIMIT 1) AS last_run
FROM unnest(CAST(:jobs AS text[])) AS j(job)
"""


@dataclass(frozen=True)
class JobHealth:
    job: str
    interval_seconds: int
    last_success: datetime | None
    stale: bool


def job_health(
    session: Session,
    intervals: dict[str, int],
    now: datetime,
    *,
    stale_after: int = STALE_AFTER_INTERVALS,
) -> list[JobHealth]:
    """Return each job's last successful run and whether it is stale at `now`.

    A job that has never succeeded is stale. `intervals` maps job names to their
    interval in seconds (from `jobs.scheduler.default_jobs`).
    """
    rows = session.execute(text(_HEALTH_SQL), {"jobs": list(intervals)})
    health = []
    for row in rows:
        interval = intervals[row.job]
        limit = timedelta(seconds=interval * stale_after)
        stale = row.last_success is None or now - row.last_success > limit
        health.append(JobHealth(row.job, interval, row.last_success, stale))
    return health
