"""Portfolio figures for leadership and sponsors, computed by SQL aggregates.

Each function takes a `Scope` and counts only the studies in it. Turnaround is
`completed_at - first_received_at` of done cases (the clock starts at the first
instance's arrival). Times are UTC; days are UTC calendar days.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.access import Scope, study_filter
from core.models import OPEN_CASE_STATES

OPEN_STATES_SQL = ", ".join(f"'{state}'" for state in OPEN_CASE_STATES)

# Age buckets of open cases, in days since the first instance arrived.
AGE_BUCKETS = (("age_0_2d", 0, 2), ("age_2_7d", 2, 7), ("age_7_14d", 7, 14))

# Figures over a date range, which `core.rollups` stores for each range below.
RANGE_FIGURES = (
    "done_cases",
    "median_hours",
    "p90_hours",
    "sla_met_pct",
    "qc_first_pass_pct",
    "adjudication_pct",
)
STORED_RANGES = (7, 30, 90, 365)

GROUP_KEYS = {
    "study": ("s.id", "s.protocol_id"),
    "sponsor": ("sp.id", "sp.name"),
}


def _state_columns() -> str:
    return ",\n".join(
        f"count(*) FILTER (WHERE c.state = '{state}') AS {state}"
        for state in OPEN_CASE_STATES
    )


def _age_columns() -> str:
    columns = [
        f"count(*) FILTER (WHERE c.first_received_at > CAST(:now AS timestamptz)"
        f" - interval '{high} days' AND c.first_received_at <= CAST(:now AS "
        f"timestamptz) - interval '{low} days') AS {name}"
        for name, low, high in AGE_BUCKETS
    ]
    columns.append(
        "count(*) FILTER (WHERE c.first_received_at <= CAST(:now AS timestamptz)"
        " - interval '14 days') AS age_14d_plus"
    )
    return ",\n".join(columns)


def _open_columns() -> str:
    names = ["open_cases", "past_due", *OPEN_CASE_STATES, "age_14d_plus"]
    names += [name for name, _, _ in AGE_BUCKETS]
    return ", ".join(f"o.{name}" for name in names)


def _scoped_cte(group: str) -> str:
    key, label = GROUP_KEYS[group]
    return f"""
scoped AS (
    SELECT s.id AS study_id, {key} AS group_id, {label} AS label
    FROM studies s JOIN sponsors sp ON sp.id = s.sponsor_id
    WHERE {study_filter("s.id")}
)"""


def _open_cases_cte() -> str:
    return f"""
open_cases AS (
    SELECT st.group_id, count(*) AS open_cases,
        {_state_columns()},
        {_age_columns()},
        count(*) FILTER (WHERE c.due_at < CAST(:now AS timestamptz)) AS past_due
    FROM cases c JOIN scoped st ON st.study_id = c.study_id
    WHERE c.state IN ({OPEN_STATES_SQL})
    GROUP BY st.group_id
)"""


RANGE_CTES = """
done AS (
    SELECT st.group_id, count(*) AS done_cases,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM
            c.completed_at - c.first_received_at)) / 3600 AS median_hours,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM
            c.completed_at - c.first_received_at)) / 3600 AS p90_hours,
        100.0 * avg(CASE WHEN c.completed_at <= c.due_at THEN 1 ELSE 0 END)
            FILTER (WHERE c.due_at IS NOT NULL) AS sla_met_pct
    FROM cases c JOIN scoped st ON st.study_id = c.study_id
    WHERE c.state = 'done' AND c.completed_at >= CAST(:since AS timestamptz)
    GROUP BY st.group_id
),
qc AS (
    SELECT st.group_id,
        100.0 * avg(CASE WHEN EXISTS (SELECT 1 FROM queries q WHERE q.case_id = c.id)
            THEN 0 ELSE 1 END) AS qc_first_pass_pct
    FROM cases c JOIN scoped st ON st.study_id = c.study_id
    WHERE c.state IN ('query', 'reading', 'adjudication', 'done')
        AND c.first_received_at >= CAST(:since AS timestamptz)
    GROUP BY st.group_id
),
double_read AS (
    SELECT st.group_id,
        100.0 * avg(CASE WHEN EXISTS (SELECT 1 FROM reads a WHERE a.case_id = c.id
            AND a.kind = 'adjudication' AND a.state <> 'cancelled')
            THEN 1 ELSE 0 END) AS adjudication_pct
    FROM cases c JOIN scoped st ON st.study_id = c.study_id
    WHERE c.first_received_at >= CAST(:since AS timestamptz)
        AND EXISTS (SELECT 1 FROM reads r WHERE r.case_id = c.id
            AND r.kind = 'primary' AND r.state = 'signed')
        AND EXISTS (SELECT 1 FROM reads r WHERE r.case_id = c.id
            AND r.kind = 'secondary' AND r.state = 'signed')
    GROUP BY st.group_id
)"""

# Open queries of open cases: a query left open on a cancelled case waits on no one.
# Joining only open cases also lets PostgreSQL read ix_cases_open_study_state
# instead of every case.
OPEN_QUERIES_CTE = f"""
open_queries AS (
    SELECT st.group_id, count(*) AS open_queries,
        extract(epoch FROM CAST(:now AS timestamptz) - min(q.opened_at)) / 86400
            AS oldest_query_days
    FROM queries q JOIN cases c ON c.id = q.case_id
        JOIN scoped st ON st.study_id = c.study_id
    WHERE q.state = 'open' AND c.state IN ({OPEN_STATES_SQL})
    GROUP BY st.group_id
)"""


def _summary_sql(group: str) -> str:
    ctes = [_scoped_cte(group), _open_cases_cte(), RANGE_CTES, OPEN_QUERIES_CTE]
    return f"""
WITH {",".join(ctes)}
SELECT g.group_id, g.label, {_open_columns()},
    d.done_cases, d.median_hours, d.p90_hours, d.sla_met_pct,
    qc.qc_first_pass_pct, dr.adjudication_pct,
    oq.open_queries, oq.oldest_query_days
FROM (SELECT DISTINCT group_id, label FROM scoped) g
LEFT JOIN open_cases o ON o.group_id = g.group_id
LEFT JOIN done d ON d.group_id = g.group_id
LEFT JOIN qc ON qc.group_id = g.group_id
LEFT JOIN double_read dr ON dr.group_id = g.group_id
LEFT JOIN open_queries oq ON oq.group_id = g.group_id
ORDER BY g.label
"""


def _stored_summary_sql(group: str) -> str:
    ctes = [_scoped_cte(group), _open_cases_cte(), OPEN_QUERIES_CTE]
    figures = ", ".join(f"f.{name}" for name in RANGE_FIGURES)
    return f"""
WITH {",".join(ctes)}
SELECT g.group_id, g.label, {_open_columns()}, {figures},
    oq.open_queries, oq.oldest_query_days, f.computed_at AS figures_at
FROM (SELECT DISTINCT group_id, label FROM scoped) g
LEFT JOIN open_cases o ON o.group_id = g.group_id
LEFT JOIN open_queries oq ON oq.group_id = g.group_id
LEFT JOIN dashboard_figures f ON f.group_kind = :group
    AND f.group_id = g.group_id AND f.range_days = :days
ORDER BY g.label
"""


def summaries(
    session: Session,
    scope: Scope,
    *,
    now: datetime,
    since: datetime,
    group: str = "study",
) -> list[dict[str, Any]]:
    """Return one row of figures per study (or per sponsor) in the scope.

    Counts of open cases are as of `now`; turnaround, SLA, QC and adjudication
    figures cover cases completed (or received) since `since`. Missing counts are 0;
    a percentage or percentile with no cases to compute it from is None.
    """
    if group not in GROUP_KEYS:
        raise ValueError(f"invalid group {group!r}: use study or sponsor")
    params = {**scope.sql_params(), "now": now, "since": since}
    rows = session.execute(text(_summary_sql(group)), params).mappings().all()
    id_column = "study_id" if group == "study" else "sponsor_id"
    result = []
    for row in rows:
        values = _fill_counts(dict(row))
        values[id_column] = values.pop("group_id")
        result.append(values)
    return result


def dashboard_summaries(
    session: Session,
    scope: Scope,
    *,
    now: datetime,
    days: int,
    group: str = "study",
) -> list[dict[str, Any]]:
    """Return the rows of `summaries` for the last `days` days, reading range figures
    from the `dashboard_figures` rollup.

    Open-case and query counts are live. Range figures come from the rollup and
    `figures_at` says when they were computed. Groups the rollup lacks (a new study,
    a range it does not store, or no rebuild yet) are computed live instead. A
    sponsor's stored figures cover all of its studies, so grouping by sponsor with
    a scope narrower than every study is computed live too.
    """
    if group not in GROUP_KEYS:
        raise ValueError(f"invalid group {group!r}: use study or sponsor")
    since = now - timedelta(days=days)
    partial_sponsor = group == "sponsor" and scope.study_ids is not None
    if days not in STORED_RANGES or partial_sponsor:
        return _with_figures_time(
            summaries(session, scope, now=now, since=since, group=group), now
        )

    params = {**scope.sql_params(), "now": now, "group": group, "days": days}
    sql = text(_stored_summary_sql(group))
    rows = [dict(row) for row in session.execute(sql, params).mappings()]
    missing = [row["group_id"] for row in rows if row["figures_at"] is None]
    if group == "sponsor" and missing:
        return _with_figures_time(
            summaries(session, scope, now=now, since=since, group=group), now
        )

    live = {}
    if missing:
        narrow = dataclasses.replace(scope, study_ids=frozenset(missing))
        for row in summaries(session, narrow, now=now, since=since):
            live[row["study_id"]] = row
    id_column = f"{group}_id"
    result = []
    for row in rows:
        values = _fill_counts(row)
        values[id_column] = values.pop("group_id")
        fresh = live.get(values[id_column])
        if fresh is not None:
            values.update({name: fresh[name] for name in RANGE_FIGURES})
            values["figures_at"] = now
        result.append(values)
    return result


def _with_figures_time(
    rows: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    for row in rows:
        row["figures_at"] = now
    return rows


def _fill_counts(row: dict[str, Any]) -> dict[str, Any]:
    count_columns = (
        ["open_cases", "past_due", "done_cases", "open_queries", "age_14d_plus"]
        + list(OPEN_CASE_STATES)
        + [name for name, _, _ in AGE_BUCKETS]
    )
    for column in count_columns:
        row[column] = row.get(column) or 0
    for column in ("median_hours", "p90_hours", "sla_met_pct", "qc_first_pass_pct"):
        if row.get(column) is not None:
            row[column] = float(row[column])
    for column in ("adjudication_pct", "oldest_query_days"):
        if row.get(column) is not None:
            row[column] = float(row[column])
    return row


@dataclass(frozen=True)
class TrendPoint:
    day: date
    open_cases: int


# Per-day changes of the open-case count: +1 on a case's first arrival, -1 when it
# is done or cancelled. The stored part counts events before the rollup's mark.
_IN_TREND = f"""{study_filter("study_id")}
    AND (CAST(:study_id AS integer) IS NULL OR study_id = :study_id)"""

STORED_CHANGES_SQL = f"""
SELECT day, sum(arrivals - closures) AS change FROM case_daily_counts
WHERE {_IN_TREND} AND day <= :end
GROUP BY day
"""

LIVE_CHANGES_SQL = f"""
SELECT day, sum(change) AS change FROM (
    SELECT CAST(first_received_at AT TIME ZONE 'UTC' AS date) AS day, 1 AS change
    FROM cases WHERE first_received_at >= :mark AND {_IN_TREND}
    UNION ALL
    SELECT CAST(completed_at AT TIME ZONE 'UTC' AS date), -1
    FROM cases WHERE state = 'done' AND completed_at >= :mark AND {_IN_TREND}
    UNION ALL
    SELECT CAST(state_changed_at AT TIME ZONE 'UTC' AS date), -1
    FROM cases WHERE state = 'cancelled' AND state_changed_at >= :mark
        AND {_IN_TREND}
) AS events
WHERE day <= :end
GROUP BY day
"""

MARK_SQL = """
SELECT coalesce(
    (SELECT counted_before FROM rollup_marks WHERE name = 'case_daily_counts'),
    CAST('-infinity' AS timestamptz))
"""


def backlog_trend(
    session: Session,
    scope: Scope,
    *,
    start: date,
    end: date,
    study_id: int | None = None,
) -> list[TrendPoint]:
    """Return the open cases at the end of each UTC day from `start` to `end`.

    A case is open from the day its first instance arrived until the day it was
    completed or cancelled. Days before the `case_daily_counts` mark come from that
    rollup; later events are counted live.
    """
    if study_id is not None:
        scope.require_study(study_id)
    mark = session.execute(text(MARK_SQL)).scalar_one()
    params = {**scope.sql_params(), "end": end, "study_id": study_id, "mark": mark}
    changes: dict[date, int] = {}
    for sql in (STORED_CHANGES_SQL, LIVE_CHANGES_SQL):
        for day, change in session.execute(text(sql), params):
            changes[day] = changes.get(day, 0) + int(change)

    open_cases = sum(change for day, change in changes.items() if day < start)
    points = []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        open_cases += changes.get(day, 0)
        points.append(TrendPoint(day, open_cases))
    return points


CHANGE_MARKER_SQL = """
SELECT (SELECT coalesce(max(id), 0) FROM audit_log) AS audit_id,
    (SELECT max(received_at) FROM instances) AS last_instance,
    (SELECT coalesce(max(id), 0) FROM quarantined_files) AS quarantine_id
"""

# One index descent on ix_audit_log_study_id per study in the scope.
SCOPED_MARKER_SQL = """
SELECT (SELECT coalesce(max(last_id), 0)
        FROM unnest(CAST(:study_ids AS integer[])) AS scoped(study_id)
        CROSS JOIN LATERAL (SELECT max(a.id) AS last_id FROM audit_log a
            WHERE a.study_id = scoped.study_id) AS latest) AS audit_id,
    (SELECT coalesce(max(id), 0) FROM quarantined_files) AS quarantine_id
"""


def change_marker(session: Session, scope: Scope | None = None) -> str:
    """Return a value that changes whenever workflow data or arrivals change.

    Every workflow change writes an audit row, and arrivals add instance or
    quarantine rows, so a few indexed max() lookups stand in for re-running every
    aggregate on each refresh. A scope limited to some studies follows only their
    audit rows (every workflow row, a new case included, carries its study) and the
    quarantine. The value is a digest, so it shows no counts or times of studies
    outside the scope.
    """
    if scope is None or scope.study_ids is None:
        row = session.execute(text(CHANGE_MARKER_SQL)).one()
        values = f"{row.audit_id}:{row.last_instance}:{row.quarantine_id}"
    else:
        row = session.execute(text(SCOPED_MARKER_SQL), scope.sql_params()).one()
        values = f"{row.audit_id}:{row.quarantine_id}"
    return hashlib.sha256(values.encode()).hexdigest()[:16]
