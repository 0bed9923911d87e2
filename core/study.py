"""Study figures for study managers and sponsors, each limited to the user's scope.

Every function first checks that the study is in the scope (`AccessDenied` if not).
Only `readers` returns reader identities, and it rejects scopes that may not see them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.access import Scope, study_filter
from core.portfolio import OPEN_STATES_SQL


def _rows(session: Session, sql: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in session.execute(text(sql), params).mappings()]


def studies_in_scope(session: Session, scope: Scope) -> list[dict[str, Any]]:
    """Return id and protocol id of every study the scope may see."""
    sql = f"""
        SELECT s.id, s.protocol_id, s.title FROM studies s
        WHERE {study_filter("s.id")} ORDER BY s.protocol_id
    """
    return _rows(session, sql, **scope.sql_params())


PIPELINE_SQL = """
SELECT t.code AS timepoint, t.ordinal, c.state, count(*) AS cases
FROM cases c JOIN timepoints t ON t.id = c.timepoint_id
WHERE c.study_id = :study_id
GROUP BY t.code, t.ordinal, c.state
ORDER BY t.ordinal, c.state
"""


def pipeline(session: Session, scope: Scope, study_id: int) -> list[dict[str, Any]]:
    """Return case counts by timepoint and state."""
    scope.require_study(study_id)
    return _rows(session, PIPELINE_SQL, study_id=study_id)


SITES_SQL = """
WITH arrivals AS (
    SELECT c.site_id, count(*) AS arrivals,
        100.0 * avg(CASE WHEN hq.found IS NULL THEN 1 ELSE 0 END) FILTER (WHERE
            c.state IN ('query', 'reading', 'adjudication', 'done'))
            AS qc_first_pass_pct
    FROM cases c
    -- A lookup per case in range; a hashed subplan would read every query.
    LEFT JOIN LATERAL (SELECT 1 AS found FROM queries q WHERE q.case_id = c.id
        LIMIT 1) hq ON true
    WHERE c.study_id = :study_id AND c.first_received_at >= :since
    GROUP BY c.site_id
),
open_queries AS (
    SELECT c.site_id, count(*) AS open_queries,
        extract(epoch FROM CAST(:now AS timestamptz) - min(q.opened_at)) / 86400
            AS oldest_query_days
    FROM queries q JOIN cases c ON c.id = q.case_id
    WHERE c.study_id = :study_id AND q.state = 'open'
    GROUP BY c.site_id
),
expected AS (
    SELECT s.site_id,
        count(*) FILTER (WHERE CAST(:now AS date) > s.enrolled_on + t.target_day
            + coalesce(t.window_days, 0)) AS late_timepoints,
        count(*) FILTER (WHERE CAST(:now AS date) BETWEEN s.enrolled_on + t.target_day
            AND s.enrolled_on + t.target_day + coalesce(t.window_days, 0))
            AS due_timepoints
    FROM subjects s JOIN timepoints t ON t.study_id = s.study_id
    WHERE s.study_id = :study_id AND s.enrolled_on IS NOT NULL
        AND t.target_day IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM cases c
            WHERE c.subject_id = s.id AND c.timepoint_id = t.id)
    GROUP BY s.site_id
)
SELECT si.id AS site_id, si.site_code, si.name, si.qualified,
    coalesce(a.arrivals, 0) AS arrivals, a.qc_first_pass_pct,
    coalesce(q.open_queries, 0) AS open_queries, q.oldest_query_days,
    coalesce(e.late_timepoints, 0) AS late_timepoints,
    coalesce(e.due_timepoints, 0) AS due_timepoints
FROM sites si
LEFT JOIN arrivals a ON a.site_id = si.id
LEFT JOIN open_queries q ON q.site_id = si.id
LEFT JOIN expected e ON e.site_id = si.id
WHERE si.study_id = :study_id
ORDER BY si.site_code
"""


def sites(
    session: Session, scope: Scope, study_id: int, *, now: datetime, since: datetime
) -> list[dict[str, Any]]:
    """Return per-site arrivals, QC first-pass rate, open queries and missing visits.

    A timepoint is *late* when its window (enrolment day + target day + window days)
    has passed without a case, and *due* while the window is open.
    """
    scope.require_study(study_id)
    return _rows(session, SITES_SQL, study_id=study_id, now=now, since=since)


READERS_SQL = """
WITH trained AS (
    SELECT DISTINCT rt.reader_id FROM reader_trainings rt
    WHERE rt.study_id = :study_id
        AND rt.trained_on <= CAST(:now AS date)
        AND (rt.expires_on IS NULL OR rt.expires_on > CAST(:now AS date))
),
signed AS (
    SELECT r.reader_id, count(*) AS signed_reads,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM
            r.signed_at - r.assigned_at)) / 3600 AS median_read_hours,
        100.0 * avg(CASE WHEN EXISTS (SELECT 1 FROM reads a WHERE a.case_id = r.case_id
            AND a.kind = 'adjudication' AND a.state <> 'cancelled') THEN 1 ELSE 0 END)
            FILTER (WHERE r.kind IN ('primary', 'secondary')) AS adjudication_pct
    FROM reads r JOIN cases c ON c.id = r.case_id
    WHERE c.study_id = :study_id AND r.state = 'signed' AND r.signed_at >= :since
    GROUP BY r.reader_id
),
open_work AS (
    SELECT r.reader_id, count(*) AS open_reads
    FROM reads r JOIN trained t ON t.reader_id = r.reader_id
    WHERE r.state IN ('assigned', 'in_progress')
    GROUP BY r.reader_id
)
SELECT rd.id AS reader_id, rd.name, rd.timezone, rd.daily_capacity,
    coalesce(o.open_reads, 0) AS open_reads,
    coalesce(s.signed_reads, 0) AS signed_reads,
    s.median_read_hours, s.adjudication_pct,
    rd.active AND NOT EXISTS (SELECT 1 FROM reader_absences ab
        WHERE ab.reader_id = rd.id AND CAST(:now AS timestamptz)
            BETWEEN ab.starts_at AND ab.ends_at) AS available
FROM readers rd JOIN trained t ON t.reader_id = rd.id
LEFT JOIN signed s ON s.reader_id = rd.id
LEFT JOIN open_work o ON o.reader_id = rd.id
ORDER BY rd.name
"""


def readers(
    session: Session, scope: Scope, study_id: int, *, now: datetime, since: datetime
) -> list[dict[str, Any]]:
    """Return the study's trained readers with open work, turnaround and availability.

    Open reads count every study, because capacity is per reader.
    """
    scope.require_study(study_id)
    scope.require_reader_identities()
    return _rows(session, READERS_SQL, study_id=study_id, now=now, since=since)


AT_RISK_SQL = f"""
SELECT c.id AS case_id, su.subject_code, t.code AS timepoint, c.state, c.urgent,
    c.first_received_at, c.due_at,
    extract(epoch FROM c.due_at - CAST(:now AS timestamptz)) / 3600 AS hours_left,
    extract(epoch FROM CAST(:now AS timestamptz) - c.first_received_at)
        / nullif(extract(epoch FROM c.due_at - c.first_received_at), 0) AS risk_score
FROM cases c
JOIN subjects su ON su.id = c.subject_id
JOIN timepoints t ON t.id = c.timepoint_id
WHERE c.study_id = :study_id AND c.state IN ({OPEN_STATES_SQL})
    AND c.due_at IS NOT NULL
    AND c.due_at < CAST(:now AS timestamptz) + make_interval(hours => :horizon)
ORDER BY risk_score DESC NULLS LAST, c.due_at
LIMIT :limit
"""


def at_risk_cases(
    session: Session,
    scope: Scope,
    study_id: int,
    *,
    now: datetime,
    horizon_hours: int = 48,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Return open cases breached or due within `horizon_hours`, riskiest first.

    The risk score is the share of the SLA window used so far: 1.0 is at the due
    time, above 1.0 is breached.
    """
    scope.require_study(study_id)
    return _rows(
        session,
        AT_RISK_SQL,
        study_id=study_id,
        now=now,
        horizon=horizon_hours,
        limit=limit,
    )


ALERTS_SQL = """
SELECT al.id AS alert_id, al.case_id, su.subject_code, al.step, al.kind, al.due_at,
    al.created_at
FROM alerts al JOIN cases c ON c.id = al.case_id
JOIN subjects su ON su.id = c.subject_id
WHERE c.study_id = :study_id AND al.acknowledged_at IS NULL
ORDER BY al.created_at DESC
LIMIT :limit
"""


def open_alerts(
    session: Session, scope: Scope, study_id: int, *, limit: int = 200
) -> list[dict[str, Any]]:
    """Return the study's unacknowledged SLA alerts, newest first."""
    scope.require_study(study_id)
    return _rows(session, ALERTS_SQL, study_id=study_id, limit=limit)


OPEN_READS_SQL = """
SELECT r.id AS read_id, r.case_id, su.subject_code, t.code AS timepoint, r.kind,
    r.state, r.reader_id, rd.name AS reader, r.due_at
FROM reads r JOIN cases c ON c.id = r.case_id
JOIN subjects su ON su.id = c.subject_id
JOIN timepoints t ON t.id = c.timepoint_id
LEFT JOIN readers rd ON rd.id = r.reader_id
WHERE c.study_id = :study_id AND r.state IN ('unassigned', 'assigned', 'in_progress')
ORDER BY r.due_at NULLS LAST, r.id
LIMIT :limit
"""


def open_reads(
    session: Session, scope: Scope, study_id: int, *, limit: int = 500
) -> list[dict[str, Any]]:
    """Return the study's unsigned reads with their reader, for reassignment."""
    scope.require_study(study_id)
    scope.require_reader_identities()
    return _rows(session, OPEN_READS_SQL, study_id=study_id, limit=limit)
