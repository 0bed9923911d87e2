"""Pre-aggregated dashboard tables, rebuilt by the jobs process.

Two tables keep the portfolio page fast at a million cases:

- `dashboard_figures`: turnaround percentiles, SLA, QC first-pass and
  adjudication rates of each study and sponsor over the page's fixed ranges
  (7, 30, 90 and 365 days). Percentiles do not add up across days, so the job
  computes each range whole with `portfolio.summaries`.
- `case_daily_counts`: cases opened and closed per study and UTC day. It counts
  events before a mark `SETTLE` earlier than the run, and the backlog trend reads
  events after the mark live, so a transaction that commits a little late is
  still counted once.

Both are derived data: rebuilding them changes no workflow data and writes no
audit row.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core import portfolio
from core.access import make_scope
from core.models import CaseDailyCount, DashboardFigure, RollupMark

log = logging.getLogger(__name__)

FIGURE_RANGES = (7, 30, 90, 365)
DAILY_COUNTS = "case_daily_counts"
# Events this much older than a run are assumed committed when the run reads them.
SETTLE = timedelta(minutes=10)
EVERY_STUDY = make_scope("rollups", "admin", frozenset())
# An arbitrary key for pg_try_advisory_xact_lock, so one jobs process rebuilds.
LOCK_KEY = 7_310_600

DAILY_COUNTS_SQL = """
INSERT INTO case_daily_counts (study_id, day, arrivals, closures)
SELECT study_id, day, sum(arrivals), sum(closures) FROM (
    SELECT study_id, CAST(first_received_at AT TIME ZONE 'UTC' AS date) AS day,
        1 AS arrivals, 0 AS closures
    FROM cases WHERE first_received_at < :mark
    UNION ALL
    SELECT study_id, CAST(completed_at AT TIME ZONE 'UTC' AS date), 0, 1
    FROM cases WHERE state = 'done' AND completed_at < :mark
    UNION ALL
    SELECT study_id, CAST(state_changed_at AT TIME ZONE 'UTC' AS date), 0, 1
    FROM cases WHERE state = 'cancelled' AND state_changed_at < :mark
) AS events
GROUP BY study_id, day
"""


def rebuild_daily_counts(session: Session, now: datetime) -> datetime:
    """Replace the daily case counts with those of events before `now - SETTLE`."""
    mark = now - SETTLE
    session.execute(delete(CaseDailyCount))
    session.execute(text(DAILY_COUNTS_SQL), {"mark": mark})
    upsert = pg_insert(RollupMark).values(name=DAILY_COUNTS, counted_before=mark)
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=[RollupMark.name], set_={"counted_before": mark}
        )
    )
    return mark


def rebuild_figures(session: Session, now: datetime) -> int:
    """Replace the range figures of every study and sponsor; return the row count."""
    rows = []
    for group in ("study", "sponsor"):
        id_column = f"{group}_id"
        for days in FIGURE_RANGES:
            since = now - timedelta(days=days)
            for row in portfolio.summaries(
                session, EVERY_STUDY, now=now, since=since, group=group
            ):
                rows.append(
                    {
                        "group_kind": group,
                        "group_id": row[id_column],
                        "range_days": days,
                        "computed_at": now,
                        **{name: row[name] for name in portfolio.RANGE_FIGURES},
                    }
                )
    session.execute(delete(DashboardFigure))
    if rows:
        session.execute(insert(DashboardFigure), rows)
    return len(rows)


def rebuild(session: Session, now: datetime) -> int:
    """Rebuild both tables in the caller's transaction; return the figure rows.

    Returns 0 without writing when another transaction is rebuilding them.
    """
    locked = session.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCK_KEY}
    ).scalar_one()
    if not locked:
        log.info("Another process is rebuilding the dashboard rollups; skipped")
        return 0
    session.execute(text("SET LOCAL jit = off"))
    rebuild_daily_counts(session, now)
    count = rebuild_figures(session, now)
    log.info("Rebuilt dashboard rollups: %d figure rows", count)
    return count
