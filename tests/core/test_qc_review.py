"""The QC reviewer's scoped queue, check results, decisions and first-pass rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core import qc, qc_review
from core.access import AccessDenied, Scope, make_scope
from core.lifecycle import WorkflowError
from core.models import AuditEntry, Case, Exam, Instance, InstanceFinding, Series
from tests.core.workflow_data import load_charter, make_case

ONC_214_BASELINE = (("MR", "LIVER"),) * 3 + (("CT", "CHEST"),)


@dataclass
class Studies:
    a: int
    b: int


@pytest.fixture
def studies(sessions: sessionmaker[Session]) -> Studies:
    with sessions.begin() as session:
        return Studies(
            load_charter(session, "ONC-301"), load_charter(session, "ONC-214")
        )


def _reviewer(*study_ids: int) -> Scope:
    return make_scope("qc.anna", "qc_reviewer", frozenset(study_ids))


def _in_qc(
    sessions: sessionmaker[Session],
    study_id: int,
    subject: str,
    *,
    received_at: datetime,
    **options: object,
) -> int:
    with sessions.begin() as session:
        case_id = make_case(
            session,
            study_id,
            subject,
            received_at=received_at,
            **options,
        )
        assert qc.auto_qc_case(session, case_id)
    return case_id


def _audit_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def test_queue_is_scoped_and_oldest_first(
    sessions: sessionmaker[Session], studies: Studies
) -> None:
    now = datetime.now(UTC)
    newer = _in_qc(
        sessions, studies.a, "301-0001", received_at=now - timedelta(hours=1)
    )
    older = _in_qc(
        sessions, studies.a, "301-0002", received_at=now - timedelta(hours=9)
    )
    other = _in_qc(
        sessions,
        studies.b,
        "214-0001",
        received_at=now - timedelta(hours=20),
        series=ONC_214_BASELINE,
    )
    with sessions() as session:
        # Auto QC stamps every case with the same instant, so spread them out by hand.
        for case_id, hours in ((newer, 1), (older, 9), (other, 20)):
            case = session.get(Case, case_id)
            assert case is not None
            case.state_changed_at = now - timedelta(hours=hours)
        session.commit()
        scoped = qc_review.review_queue(session, _reviewer(studies.a))
        everything = qc_review.review_queue(
            session, make_scope("root", "admin", frozenset())
        )
    assert [row["case_id"] for row in scoped] == [older, newer]
    assert [row["case_id"] for row in everything] == [other, older, newer]
    assert scoped[0]["protocol_id"] == "ONC-301"
    assert scoped[0]["failed_checks"] == 0


def test_case_checks_show_failures_and_findings(
    sessions: sessionmaker[Session], studies: Studies
) -> None:
    with sessions.begin() as session:
        case_id = make_case(session, studies.a, "301-0001", slice_thickness_mm=7.0)
        instance_id = session.scalar(
            select(Instance.id)
            .join(Series, Series.id == Instance.series_id)
            .join(Exam, Exam.id == Series.exam_id)
            .where(Exam.case_id == case_id)
            .limit(1)
        )
        assert instance_id is not None
        session.add(
            InstanceFinding(
                instance_id=instance_id,
                code="phi_patient_name",
                message="PatientName is not empty",
            )
        )
        assert qc.auto_qc_case(session, case_id)

    with sessions() as session:
        checks = qc_review.case_checks(session, _reviewer(studies.a), case_id)
        queue = qc_review.review_queue(session, _reviewer(studies.a))
        reasons = qc_review.failure_reasons(session, _reviewer(studies.a), case_id)

    by_name = {row["check"]: row for row in checks}
    assert by_name["slice_thickness"]["passed"] is False
    assert by_name["slice_thickness"]["detail"] == "slices up to 7.0 mm; maximum 5.0 mm"
    # The charter makes PHI findings blocking.
    assert by_name["ingest:phi_patient_name"]["blocking"] is True
    assert by_name["required_series"]["passed"] is True
    assert [row["passed"] for row in checks][:2] == [False, False]
    assert queue[0]["failed_checks"] == 2
    assert queue[0]["blocking_failures"] == "slice_thickness, ingest:phi_patient_name"
    assert "image_quality" in reasons


def test_decisions_outside_scope_are_denied(
    sessions: sessionmaker[Session], studies: Studies
) -> None:
    case_id = _in_qc(
        sessions,
        studies.b,
        "214-0001",
        received_at=datetime.now(UTC),
        series=ONC_214_BASELINE,
    )
    before = _audit_count(sessions)
    sponsor = make_scope("sponsor.sam", "sponsor", frozenset({studies.b}))
    attempts = [
        lambda s: qc_review.pass_case(s, _reviewer(studies.a), case_id),
        lambda s: qc_review.fail_case(s, _reviewer(studies.a), case_id, "other", "x"),
        lambda s: qc_review.case_checks(s, _reviewer(studies.a), case_id),
        lambda s: qc_review.pass_case(s, sponsor, case_id),
    ]
    for attempt in attempts:
        with pytest.raises(AccessDenied):
            with sessions.begin() as session:
                attempt(session)
    assert _audit_count(sessions) == before
    with sessions() as session:
        case = session.get(Case, case_id)
        assert case is not None
        assert case.state == "qc"


def test_fail_other_needs_note_then_resolve(
    sessions: sessionmaker[Session], studies: Studies
) -> None:
    case_id = _in_qc(sessions, studies.a, "301-0001", received_at=datetime.now(UTC))
    scope = _reviewer(studies.a)
    with pytest.raises(WorkflowError, match="the note is missing for reason 'other'"):
        with sessions.begin() as session:
            qc_review.fail_case(session, scope, case_id, "other", "  ")
    with sessions.begin() as session:
        query_id = qc_review.fail_case(
            session, scope, case_id, "other", "scanner log missing"
        )
    with sessions() as session:
        queries = qc_review.open_queries(session, scope)
    assert [row["query_id"] for row in queries] == [query_id]
    assert queries[0]["text"] == "scanner log missing"
    assert 0 <= queries[0]["age_hours"] < 1

    with sessions.begin() as session:
        qc_review.resolve_query(session, scope, query_id, "site sent the log")
    with sessions() as session:
        assert qc_review.open_queries(session, scope) == []
        case = session.get(Case, case_id)
        assert case is not None
        assert case.state == "received"
        actors = session.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "query.resolve")
        ).all()
    assert actors == ["qc.anna"]


def test_first_pass_rate_per_study_and_site(
    sessions: sessionmaker[Session], studies: Studies
) -> None:
    now = datetime.now(UTC)
    scope = _reviewer(studies.a)
    passed = _in_qc(sessions, studies.a, "301-0001", received_at=now)
    failed = _in_qc(sessions, studies.a, "301-0002", received_at=now, site_code="S02")
    waiting = _in_qc(sessions, studies.a, "301-0003", received_at=now)
    with sessions.begin() as session:
        qc_review.pass_case(session, scope, passed)
        qc_review.fail_case(session, scope, failed, "image_quality")
    with sessions() as session:
        rates = qc_review.first_pass_rates(session, scope)
    assert waiting not in (passed, failed)
    assert [(r["site_code"], r["decided"], r["first_pass_pct"]) for r in rates] == [
        (None, 2, 50.0),
        ("S01", 1, 100.0),
        ("S02", 1, 0.0),
    ]
