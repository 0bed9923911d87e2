"""Quality control: automated checks, the manual review decision and site queries.

Automated QC runs on a case in `received` once the charter's required series for
its timepoint have arrived, or once no instance has arrived for the charter's quiet
period. It stores each check's result and moves the case to `qc`, where a reviewer
passes it (reads are created) or fails it with a reason, which opens a query to the
site. A site re-upload after the query was opened sends the case back to `received`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from core import audit, charter, lifecycle, reads
from core.lifecycle import WorkflowError
from core.models import (
    Case,
    Exam,
    Instance,
    InstanceFinding,
    QcCheck,
    Query,
    Series,
    Subject,
    Timepoint,
)

log = logging.getLogger(__name__)

AUTO_QC_ACTOR = "system:auto-qc"
# DICOM PS3.3 clinical trial attribute -> the instance column that stores it.
ATTRIBUTE_COLUMNS = {
    "sponsor": Instance.ct_sponsor,
    "protocol": Instance.ct_protocol,
    "site": Instance.ct_site,
    "subject": Instance.ct_subject,
    "timepoint": Instance.ct_timepoint,
}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one automated QC check on a case."""

    check: str
    passed: bool
    detail: str
    blocking: bool = True


def case_document(session: Session, case: Case) -> dict[str, Any]:
    """Return the charter version the case runs under (the current one if unset)."""
    return charter.get_document(session, case.study_id, case.charter_version)


def _timepoint(session: Session, case: Case) -> Timepoint:
    timepoint = session.get(Timepoint, case.timepoint_id)
    assert timepoint is not None
    return timepoint


def _series_counts(session: Session, case_id: int) -> list[Any]:
    return list(
        session.execute(
            select(Series.modality, Series.body_part, func.count())
            .join(Exam, Exam.id == Series.exam_id)
            .where(Exam.case_id == case_id)
            .group_by(Series.modality, Series.body_part)
        )
    )


def _missing_series(rules: list[dict[str, Any]], counts: list[Any]) -> list[str]:
    """Describe each required-series rule that the received series do not meet."""
    missing = []
    for rule in rules:
        modality = rule["modality"].upper()
        body_part = (rule.get("body_part") or "").upper()
        have = sum(
            count
            for got_modality, got_body_part, count in counts
            if (got_modality or "").upper() == modality
            and (not body_part or (got_body_part or "").upper() == body_part)
        )
        need = int(rule.get("min_series", 1))
        if have < need:
            where = f" {body_part}" if body_part else ""
            missing.append(f"{modality}{where}: {have} of {need} series")
    return missing


def is_complete(session: Session, case: Case, now: datetime) -> bool:
    """Return whether the required series arrived or the quiet period has passed."""
    document = case_document(session, case)
    quiet = timedelta(minutes=float(document["qc"]["quiet_period_minutes"]))
    if case.last_received_at <= now - quiet:
        return True
    rules = charter.required_series_for(document, _timepoint(session, case).code)
    return not _missing_series(rules, _series_counts(session, case.id))


def run_checks(session: Session, case: Case) -> list[CheckResult]:
    """Run every automated check that the case's charter enables."""
    document = case_document(session, case)
    rules = document["qc"]
    timepoint = _timepoint(session, case)
    counts = _series_counts(session, case.id)
    results = [
        _check_required_series(document, timepoint.code, counts),
        _check_modalities(rules, counts),
    ]
    if rules.get("max_slice_thickness_mm") is not None:
        results.append(_check_slice_thickness(session, case, rules))
    if rules.get("acquisition_in_window"):
        results.append(_check_window(session, case, timepoint))
    results.append(_check_attributes(session, case, rules["required_attributes"]))
    results.extend(_ingest_findings(session, case, bool(rules["phi_blocking"])))
    return results


def _check_required_series(
    document: dict[str, Any], code: str, counts: list[Any]
) -> CheckResult:
    missing = _missing_series(charter.required_series_for(document, code), counts)
    if missing:
        return CheckResult("required_series", False, "missing " + ", ".join(missing))
    return CheckResult("required_series", True, "all required series received")


def _check_modalities(rules: dict[str, Any], counts: list[Any]) -> CheckResult:
    allowed = {m.upper() for m in rules["allowed_modalities"]}
    wrong = sorted(
        {(m or "none") for m, _, _ in counts if (m or "").upper() not in allowed}
    )
    if wrong:
        return CheckResult(
            "modality", False, f"modality not allowed: {', '.join(wrong)}"
        )
    return CheckResult("modality", True, f"all series in {sorted(allowed)}")


def _instance_values(column: Any, case_id: int) -> Any:
    """Select `column` over the instances of a case's exams."""
    return (
        select(column)
        .join(Series, Series.id == Instance.series_id)
        .join(Exam, Exam.id == Series.exam_id)
        .where(Exam.case_id == case_id)
    )


def _check_slice_thickness(
    session: Session, case: Case, rules: dict[str, Any]
) -> CheckResult:
    limit = float(rules["max_slice_thickness_mm"])
    thickest = session.scalar(
        _instance_values(func.max(Instance.slice_thickness_mm), case.id)
    )
    if thickest is not None and thickest > limit:
        return CheckResult(
            "slice_thickness", False, f"slices up to {thickest} mm; maximum {limit} mm"
        )
    return CheckResult("slice_thickness", True, f"thickest slice {thickest} mm")


def _visit_anchor(session: Session, case: Case) -> date | None:
    """Return day 0 of the visit schedule: enrolment, else the baseline scan date."""
    subject = session.get(Subject, case.subject_id)
    if subject is not None and subject.enrolled_on is not None:
        return subject.enrolled_on
    baseline_case = (
        select(Case.id)
        .join(Timepoint, Timepoint.id == Case.timepoint_id)
        .where(Case.subject_id == case.subject_id, Timepoint.is_baseline)
        .scalar_subquery()
    )
    return session.scalar(
        select(func.min(Instance.acquisition_date))
        .join(Series, Series.id == Instance.series_id)
        .join(Exam, Exam.id == Series.exam_id)
        .where(Exam.case_id == baseline_case)
    )


def _check_window(session: Session, case: Case, timepoint: Timepoint) -> CheckResult:
    if timepoint.target_day is None:
        return CheckResult("visit_window", True, f"{timepoint.code} has no target day")
    anchor = _visit_anchor(session, case)
    if anchor is None:
        return CheckResult(
            "visit_window",
            False,
            "no enrolment or baseline scan date to check against",
            blocking=False,
        )
    target = anchor + timedelta(days=timepoint.target_day)
    window = timedelta(days=timepoint.window_days or 0)
    earliest, latest = session.execute(
        select(func.min(Instance.acquisition_date), func.max(Instance.acquisition_date))
        .join(Series, Series.id == Instance.series_id)
        .join(Exam, Exam.id == Series.exam_id)
        .where(Exam.case_id == case.id)
    ).one()
    if earliest is None or latest is None:
        return CheckResult("visit_window", False, "no acquisition date in any instance")
    if earliest < target - window or latest > target + window:
        return CheckResult(
            "visit_window",
            False,
            f"acquired {earliest} to {latest}; window is {target - window} to "
            f"{target + window}",
        )
    return CheckResult(
        "visit_window", True, f"acquired within {target} +/- {window.days} days"
    )


def _check_attributes(session: Session, case: Case, required: list[str]) -> CheckResult:
    """Count instances with an empty required clinical trial attribute (DICOM PS3.3)."""
    missing_any = or_(
        *(
            func.coalesce(func.trim(ATTRIBUTE_COLUMNS[name]), "") == ""
            for name in required
        )
    )
    count = session.scalar(
        select(func.count())
        .select_from(Instance)
        .join(Series, Series.id == Instance.series_id)
        .join(Exam, Exam.id == Series.exam_id)
        .where(Exam.case_id == case.id, missing_any)
    )
    if count:
        return CheckResult(
            "clinical_trial_attributes",
            False,
            f"{count} instances lack one of {', '.join(required)}",
        )
    return CheckResult("clinical_trial_attributes", True, "all present")


def _ingest_findings(
    session: Session, case: Case, phi_blocking: bool
) -> list[CheckResult]:
    """Turn the ingest findings of the case's instances into one result per code."""
    rows = session.execute(
        select(
            InstanceFinding.code, func.bool_or(InstanceFinding.blocking), func.count()
        )
        .join(Instance, Instance.id == InstanceFinding.instance_id)
        .join(Series, Series.id == Instance.series_id)
        .join(Exam, Exam.id == Series.exam_id)
        .where(Exam.case_id == case.id)
        .group_by(InstanceFinding.code)
        .order_by(InstanceFinding.code)
    )
    results = []
    for code, any_blocking, count in rows:
        blocking = bool(any_blocking) or (phi_blocking and code.startswith("phi"))
        results.append(
            CheckResult(
                f"ingest:{code}", False, f"{count} instances", blocking=blocking
            )
        )
    return results


def auto_qc_case(
    session: Session, case_id: int, *, now: datetime | None = None
) -> bool:
    """Run automated QC on one received case; return False when it is not complete."""
    now = now or datetime.now(UTC)
    case = lifecycle.lock_case(session, case_id)
    if case.state != "received" or not is_complete(session, case, now):
        return False
    results = run_checks(session, case)
    for result in results:
        session.add(
            QcCheck(
                case_id=case.id,
                check=result.check,
                passed=result.passed,
                detail=result.detail,
                blocking=result.blocking,
            )
        )
    failed = [r.check for r in results if not r.passed]
    audit.record(
        session,
        actor=AUTO_QC_ACTOR,
        action="qc.auto",
        entity_type="case",
        entity_id=case.id,
        study_id=case.study_id,
        new={"checks": len(results), "failed": failed},
    )
    lifecycle.transition(session, case, "qc", actor=AUTO_QC_ACTOR)
    return True


def claim_received(session: Session, limit: int) -> list[int]:
    """Lock up to `limit` received cases that no other job holds, oldest first.

    NOTE: cases still waiting for series stay in the batch until their quiet
    period ends, so more than `limit` of them can delay newer complete cases.
    """
    return list(
        session.scalars(
            select(Case.id)
            .where(Case.state == "received")
            .order_by(Case.last_received_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def reopen_reuploaded(session: Session, *, limit: int = 500) -> list[int]:
    """Resolve open queries followed by a site re-upload; return the case ids."""
    rows = session.execute(
        select(Case, Query)
        .join(Query, and_(Query.case_id == Case.id, Query.state == "open"))
        .where(Case.state == "query", Case.last_received_at > Query.opened_at)
        .order_by(Case.id)
        .limit(limit)
        .with_for_update(of=Case, skip_locked=True)
    ).all()
    reopened = []
    for case, query in rows:
        _close_query(
            session,
            case,
            query,
            actor=AUTO_QC_ACTOR,
            resolution="site re-uploaded images",
        )
        lifecycle.transition(
            session,
            case,
            "received",
            actor=AUTO_QC_ACTOR,
            details={"query_id": query.id},
        )
        reopened.append(case.id)
    return reopened


def _close_query(
    session: Session, case: Case, query: Query, *, actor: str, resolution: str
) -> None:
    query.state = "resolved"
    query.resolved_at = datetime.now(UTC)
    query.resolution = resolution
    audit.record(
        session,
        actor=actor,
        action="query.resolve",
        entity_type="query",
        entity_id=query.id,
        study_id=case.study_id,
        old={"state": "open"},
        new={"state": "resolved", "resolution": resolution},
    )


def _blocking_failures(session: Session, case_id: int) -> list[str]:
    """Return the blocking checks that failed in the latest automated QC run."""
    latest = select(func.max(QcCheck.run_at)).where(QcCheck.case_id == case_id)
    return list(
        session.scalars(
            select(QcCheck.check).where(
                QcCheck.case_id == case_id,
                QcCheck.run_at == latest.scalar_subquery(),
                QcCheck.blocking,
                QcCheck.passed.is_(False),
            )
        )
    )


def pass_case(
    session: Session, case_id: int, *, actor: str, reason: str | None = None
) -> list[int]:
    """Pass manual QC, create the read tasks and return their ids.

    Passing a case with failed blocking checks is a QC override and needs a reason.
    """
    case = lifecycle.lock_case(session, case_id)
    lifecycle.check_transition(case, "reading", reason)
    blocking = _blocking_failures(session, case_id)
    if blocking and not (reason or "").strip():
        raise WorkflowError(
            f"case {case_id} failed blocking checks {blocking}; "
            "give a reason to override them"
        )
    action = "qc.override" if blocking else "qc.pass"
    audit.record(
        session,
        actor=actor,
        action=action,
        entity_type="case",
        entity_id=case.id,
        study_id=case.study_id,
        new={"decision": "pass", "overridden": blocking},
        reason=reason,
    )
    lifecycle.transition(session, case, "reading", actor=actor, reason=reason)
    return reads.create_for_design(
        session, case, case_document(session, case), actor=actor
    )


def fail_case(
    session: Session, case_id: int, *, actor: str, reason_code: str, text: str = ""
) -> int:
    """Fail manual QC with a charter reason code, open a query and return its id."""
    case = lifecycle.lock_case(session, case_id)
    lifecycle.check_transition(case, "query", None)
    reasons = case_document(session, case)["qc"]["failure_reasons"]
    if reason_code not in reasons:
        raise WorkflowError(
            f"QC failure reason {reason_code!r} is not one of {reasons}"
        )
    query = Query(case_id=case.id, reason_code=reason_code, text=text, opened_by=actor)
    session.add(query)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="query.open",
        entity_type="query",
        entity_id=query.id,
        study_id=case.study_id,
        new={"case_id": case.id, "reason_code": reason_code, "text": text},
        reason=text or reason_code,
    )
    lifecycle.transition(
        session,
        case,
        "query",
        actor=actor,
        reason=text or reason_code,
        details={"query_id": query.id},
    )
    return query.id


def resolve_query(
    session: Session, query_id: int, *, actor: str, resolution: str
) -> None:
    """Close a query that the site resolved without a re-upload; requeue the case."""
    query = session.scalar(select(Query).where(Query.id == query_id).with_for_update())
    if query is None:
        raise LookupError(f"query {query_id} not found")
    if query.state != "open":
        raise WorkflowError(f"query {query_id} is {query.state}, not open")
    if not resolution.strip():
        raise WorkflowError(f"a resolution is required to close query {query_id}")
    case = lifecycle.lock_case(session, query.case_id)
    lifecycle.check_transition(case, "received", resolution)
    _close_query(session, case, query, actor=actor, resolution=resolution)
    lifecycle.transition(
        session,
        case,
        "received",
        actor=actor,
        reason=resolution,
        details={"query_id": query.id},
    )


def first_pass_rates(session: Session, study_id: int) -> list[dict[str, Any]]:
    """Return the QC first-pass rate of the study overall and per site.

    A case counts once QC has decided on it, by passing it or by opening a query.
    It passed first time when no query was ever opened on it.
    """
    rows = session.execute(text(FIRST_PASS_SQL), {"study_id": study_id}).mappings()
    return [dict(row) for row in rows]


FIRST_PASS_SQL = """
WITH decided AS (
    SELECT c.id, c.site_id,
           NOT EXISTS (SELECT 1 FROM queries q WHERE q.case_id = c.id) AS first_pass
    FROM cases c
    WHERE c.study_id = :study_id
      AND (c.state IN ('reading', 'adjudication', 'done')
           OR EXISTS (SELECT 1 FROM queries q WHERE q.case_id = c.id))
)
SELECT s.site_code, count(*) AS decided, count(*) FILTER (WHERE first_pass) AS passed,
       round(avg(first_pass::int), 4)::float AS rate
FROM decided d JOIN sites s ON s.id = d.site_id
GROUP BY ROLLUP (s.site_code)
ORDER BY s.site_code NULLS FIRST
"""


def open_queries(
    session: Session, study_id: int, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Return the study's open queries with their site, subject and age in hours."""
    now = now or datetime.now(UTC)
    rows = session.execute(
        text(
            """
            SELECT q.id, q.case_id, s.site_code, sub.subject_code, t.code AS timepoint,
                   q.reason_code, q.text, q.opened_at,
                   extract(epoch FROM (:now - q.opened_at)) / 3600.0 AS age_hours
            FROM queries q
            JOIN cases c ON c.id = q.case_id
            JOIN sites s ON s.id = c.site_id
            JOIN subjects sub ON sub.id = c.subject_id
            JOIN timepoints t ON t.id = c.timepoint_id
            WHERE c.study_id = :study_id AND q.state = 'open'
            ORDER BY q.opened_at
            """
        ),
        {"study_id": study_id, "now": now},
    ).mappings()
    return [dict(row) for row in rows]


def review_queue(session: Session, study_ids: list[int]) -> list[dict[str, Any]]:
    """Return cases waiting for manual QC review, oldest first, with failed checks."""
    rows = session.execute(
        text(
            """
            SELECT c.id AS case_id, st.protocol_id, s.site_code, sub.subject_code,
                   t.code AS timepoint, c.state_changed_at, c.due_at,
                   (SELECT string_agg(k.check || ': ' || k.detail, '; ' ORDER BY k.id)
                      FROM qc_checks k
                     WHERE k.case_id = c.id AND NOT k.passed
                       AND k.run_at = (SELECT max(run_at) FROM qc_checks
                                        WHERE case_id = c.id)) AS failed_checks
            FROM cases c
            JOIN studies st ON st.id = c.study_id
            JOIN sites s ON s.id = c.site_id
            JOIN subjects sub ON sub.id = c.subject_id
            JOIN timepoints t ON t.id = c.timepoint_id
            WHERE c.state = 'qc' AND c.study_id = ANY(:study_ids)
            ORDER BY c.state_changed_at
            """
        ),
        {"study_ids": study_ids},
    ).mappings()
    return [dict(row) for row in rows]
