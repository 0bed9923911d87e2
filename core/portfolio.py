"""Portfolio figures for leadership and sponsors, computed by SQL aggregates.

Each function takes a `Scope` and counts only the studies in it. Turnaround is
`completed_at - first_received_at` of done cases (the clock starts at the first
instance's arrival). Times are UTC; days are UTC calendar days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.access import Scope, study_filter
from core.models import OPEN_CASE_STATES

OPEN_STATES_SQL = ", ".join(f"'{state}'" for state in OPEN_CASE_STATES)

# Age buckets of open cases, in days since the first instance arrived.
AGE_BUCKETS = (("age_0_2d", 0, 2), ("age_2_7d", 2, 7), ("age_7_14d", 7, 14))

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


def _summary_sql(group: str) -> str:
    key, label = GROUP_KEYS[group]
    return f"""
WITH scoped AS (
    SELECT s.id AS study_id, {key} AS group_id, {label} AS label
    FROM studies s JOIN sponsors sp ON sp.id = s.sponsor_id
    WHERE {study_filter("s.id")}
),
open_cases AS (
    SELECT st.group_id, count(*) AS open_cases,
        {_state_columns()},
        {_age_columns()},
        count(*) FILTER (WHERE c.due_at < CAST(:now AS timestamptz)) AS past_due
    FROM cases c JOIN scoped st ON st.study_id = c.study_id
    WHERE c.state IN ({OPEN_STATES_SQL})
    GROUP BY st.group_id
),
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
),
open_queries AS (
    SELECT st.group_id, count(*) AS open_queries,
        extract(epoch FROM CAST(:now AS timestamptz) - min(q.opened_at)) / 86400
            AS oldest_query_days
    FROM queries q JOIN cases c ON c.id = q.case_id
        JOIN scoped st ON st.study_id = c.study_id
    WHERE q.state = 'open'
    GROUP BY st.group_id
)
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


BACKLOG_TREND_SQL = f"""
WITH scoped_cases AS (
    SELECT c.first_received_at, c.state, c.completed_at, c.state_changed_at
    FROM cases c
    WHERE {study_filter("c.study_id")}
        AND (CAST(:study_id AS integer) IS NULL OR c.study_id = :study_id)
        AND c.first_received_at < CAST(:end AS date) + 1
),
delta AS (
    SELECT day, sum(n) AS n FROM (
        SELECT CAST(first_received_at AT TIME ZONE 'UTC' AS date) AS day, 1 AS n
        FROM scoped_cases
        UNION ALL
        SELECT CAST((CASE WHEN state = 'done' THEN completed_at
                ELSE state_changed_at END) AT TIME ZONE 'UTC' AS date), -1
        FROM scoped_cases WHERE state IN ('done', 'cancelled')
    ) AS events
    GROUP BY day
),
running AS (
    SELECT day, sum(n) OVER (ORDER BY day) AS open_cases FROM delta
)
SELECT CAST(d AS date) AS day,
    coalesce((SELECT r.open_cases FROM running r WHERE r.day <= CAST(d AS date)
        ORDER BY r.day DESC LIMIT 1), 0) AS open_cases
FROM generate_series(CAST(:start AS date), CAST(:end AS date), interval '1 day') AS d
ORDER BY 1
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
    completed or cancelled.
    """
    if study_id is not None:
        scope.require_study(study_id)
    params = {**scope.sql_params(), "start": start, "end": end, "study_id": study_id}
    rows = session.execute(text(BACKLOG_TREND_SQL), params).all()
    return [TrendPoint(day, int(count)) for day, count in rows]


CHANGE_MARKER_SQL = """
SELECT (SELECT coalesce(max(id), 0) FROM audit_log) AS audit_id,
    (SELECT max(received_at) FROM instances) AS last_instance,
    (SELECT coalesce(max(id), 0) FROM quarantined_files) AS quarantine_id
"""


def change_marker(session: Session) -> str:
    """Return a value that changes whenever workflow data or arrivals change.

    Every workflow change writes an audit row, and arrivals add instance or
    quarantine rows, so three indexed max() lookups stand in for re-running every
    aggregate on each refresh.
    """
    row = session.execute(text(CHANGE_MARKER_SQL)).one()
    return f"{row.audit_id}:{row.last_instance}:{row.quarantine_id}"
