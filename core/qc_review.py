"""The QC reviewer's view: review queue, check results, queries, first-pass rates.

Each function takes the user's `Scope`. Queries filter on it, and the decisions
(`pass_case`, `fail_case`, `resolve_query`) check the case's study against it before
they call the audited workflow functions in `core.qc`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core import qc
from core.access import Scope, study_filter
from core.lifecycle import WorkflowError
from core.models import Case, Query

QC_ROLES = ("admin", "study_manager", "qc_reviewer")


def _rows(session: Session, sql: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in session.execute(text(sql), params).mappings()]


def _case_in_scope(session: Session, scope: Scope, case_id: int) -> Case:
    scope.require_role(*QC_ROLES)
    case = session.get(Case, case_id)
    if case is None:
        raise LookupError(f"case {case_id} not found")
    scope.require_study(case.study_id)
    return case


REVIEW_QUEUE_SQL = f"""
SELECT c.id AS case_id, st.protocol_id, s.site_code, sub.subject_code,
       t.code AS timepoint, c.state_changed_at AS waiting_since, c.due_at,
       (SELECT count(*) FROM qc_checks k
         WHERE k.case_id = c.id AND NOT k.passed
           AND k.run_at = (SELECT max(run_at) FROM qc_checks WHERE case_id = c.id))
         AS failed_checks,
       (SELECT string_agg(k.check, ', ' ORDER BY k.id) FROM qc_checks k
         WHERE k.case_id = c.id AND NOT k.passed AND k.blocking
           AND k.run_at = (SELECT max(run_at) FROM qc_checks WHERE case_id = c.id))
         AS blocking_failures
FROM cases c
JOIN studies st ON st.id = c.study_id
JOIN sites s ON s.id = c.site_id
JOIN subjects sub ON sub.id = c.subject_id
JOIN timepoints t ON t.id = c.timepoint_id
WHERE c.state = 'qc' AND {study_filter("c.study_id")}
ORDER BY c.state_changed_at, c.id
LIMIT :limit
"""


def review_queue(
    session: Session, scope: Scope, *, limit: int = 500
) -> list[dict[str, Any]]:
    """Return the cases waiting for manual QC review, oldest first."""
    return _rows(session, REVIEW_QUEUE_SQL, limit=limit, **scope.sql_params())


def case_checks(session: Session, scope: Scope, case_id: int) -> list[dict[str, Any]]:
    """Return the latest automated QC run of a case: every check and ingest finding.

    Ingest findings are the checks whose name starts with `ingest:`.
    """
    _case_in_scope(session, scope, case_id)
    return _rows(
        session,
        """
        SELECT k.check, k.passed, k.blocking, k.detail, k.run_at
        FROM qc_checks k
        WHERE k.case_id = :case_id
          AND k.run_at = (SELECT max(run_at) FROM qc_checks WHERE case_id = :case_id)
        ORDER BY k.passed, k.id
        """,
        case_id=case_id,
    )


def failure_reasons(session: Session, scope: Scope, case_id: int) -> list[str]:
    """Return the QC failure reason codes of the charter version the case runs under."""
    case = _case_in_scope(session, scope, case_id)
    return list(qc.case_document(session, case)["qc"]["failure_reasons"])


OPEN_QUERIES_SQL = f"""
SELECT q.id AS query_id, q.case_id, st.protocol_id, s.site_code, sub.subject_code,
       t.code AS timepoint, q.reason_code, q.text, q.opened_by, q.opened_at,
       (extract(epoch FROM (:now - q.opened_at)) / 3600.0)::float AS age_hours
FROM queries q
JOIN cases c ON c.id = q.case_id
JOIN studies st ON st.id = c.study_id
JOIN sites s ON s.id = c.site_id
JOIN subjects sub ON sub.id = c.subject_id
JOIN timepoints t ON t.id = c.timepoint_id
WHERE q.state = 'open' AND {study_filter("c.study_id")}
ORDER BY q.opened_at, q.id
LIMIT :limit
"""


def open_queries(
    session: Session, scope: Scope, *, now: datetime | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    """Return the open queries in the scope, oldest first, with their age in hours."""
    now = now or datetime.now(UTC)
    return _rows(session, OPEN_QUERIES_SQL, now=now, limit=limit, **scope.sql_params())


# Same definition as `qc.first_pass_rates`: a case counts once QC has decided on it
# (passed, or a query opened), and it passed first time when it never had a query.
# NOTE: this scans every case in the scope on each refresh; its time at portfolio
# scale (1,000,000 cases) has not been measured.
FIRST_PASS_SQL = f"""
WITH decided AS (
    SELECT c.study_id, c.site_id,
           NOT EXISTS (SELECT 1 FROM queries q WHERE q.case_id = c.id) AS first_pass
    FROM cases c
    WHERE {study_filter("c.study_id")}
      AND (c.state IN ('reading', 'adjudication', 'done')
           OR EXISTS (SELECT 1 FROM queries q WHERE q.case_id = c.id))
)
SELECT st.protocol_id, s.site_code, count(*) AS decided,
       count(*) FILTER (WHERE first_pass) AS passed_first_time,
       round(100.0 * avg(first_pass::int), 1)::float AS first_pass_pct
FROM decided d
JOIN studies st ON st.id = d.study_id
JOIN sites s ON s.id = d.site_id
GROUP BY st.protocol_id, ROLLUP (s.site_code)
ORDER BY st.protocol_id, s.site_code NULLS FIRST
"""


def first_pass_rates(session: Session, scope: Scope) -> list[dict[str, Any]]:
    """Return the QC first-pass rate per study (site_code None) and per site."""
    return _rows(session, FIRST_PASS_SQL, **scope.sql_params())


def pass_case(
    session: Session, scope: Scope, case_id: int, reason: str | None = None
) -> list[int]:
    """Pass manual QC on a case in the scope; return the ids of the new reads."""
    _case_in_scope(session, scope, case_id)
    return qc.pass_case(session, case_id, actor=scope.username, reason=reason)


def fail_case(
    session: Session, scope: Scope, case_id: int, reason_code: str, note: str = ""
) -> int:
    """Fail manual QC on a case in the scope and return the id of the new query.

    The reason code `other` needs a note, because the code alone tells the site
    nothing it can act on.
    """
    _case_in_scope(session, scope, case_id)
    if reason_code == "other" and not note.strip():
        raise WorkflowError(
            f"the note is missing for reason 'other' on case {case_id}; "
            "describe the problem for the site"
        )
    return qc.fail_case(
        session, case_id, actor=scope.username, reason_code=reason_code, text=note
    )


def resolve_query(
    session: Session, scope: Scope, query_id: int, resolution: str
) -> None:
    """Close an open query in the scope and send its case back to `received`."""
    case_id = session.scalar(select(Query.case_id).where(Query.id == query_id))
    if case_id is None:
        raise LookupError(f"query {query_id} not found")
    _case_in_scope(session, scope, case_id)
    qc.resolve_query(session, query_id, actor=scope.username, resolution=resolution)
