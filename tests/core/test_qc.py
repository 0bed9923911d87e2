from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import qc
from core.lifecycle import WorkflowError
from core.models import Case, Instance, InstanceFinding, QcCheck, Query, Read
from core.runtime import Runtime
from jobs.qc import run_auto_qc
from tests.core.workflow_data import (
    BASELINE_DAY,
    add_series,
    load_charter,
    make_case,
)


def _state(sessions: sessionmaker[Session], case_id: int) -> str:
    with sessions() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case.state


def _checks(sessions: sessionmaker[Session], case_id: int) -> dict[str, QcCheck]:
    with sessions() as session:
        rows = session.scalars(select(QcCheck).where(QcCheck.case_id == case_id))
        return {row.check: row for row in rows}


@pytest.fixture
def study_id(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        return load_charter(session)


def test_complete_case_moves_to_review(
    runtime: Runtime, sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions.begin() as session:
        case_id = make_case(session, study_id, "301-0001")
    assert run_auto_qc(runtime) == 1
    checks = _checks(sessions, case_id)
    assert _state(sessions, case_id) == "qc"
    assert checks["required_series"].passed
    assert checks["modality"].passed
    assert checks["slice_thickness"].passed
    # Without an enrolment date the baseline scan is day 0 of the schedule.
    assert checks["visit_window"].passed
    assert checks["clinical_trial_attributes"].passed


def test_incomplete_case_waits(
    runtime: Runtime, sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions.begin() as session:
        case_id = make_case(session, study_id, "301-0001", series=(("CT", "CHEST"),))
    assert run_auto_qc(runtime) == 0
    assert _state(sessions, case_id) == "received"


def test_quiet_period_sends_incomplete_case(
    runtime: Runtime, sessions: sessionmaker[Session], study_id: int
) -> None:
    five_hours_ago = datetime.now(UTC) - timedelta(hours=5)
    with sessions.begin() as session:
        case_id = make_case(
            session,
            study_id,
            "301-0001",
            series=(("CT", "CHEST"),),
            received_at=five_hours_ago,
        )
    assert run_auto_qc(runtime) == 1
    checks = _checks(sessions, case_id)
    assert _state(sessions, case_id) == "qc"
    assert checks["required_series"].passed is False
    assert "CT CHEST: 1 of 2 series" in checks["required_series"].detail
    assert "CT ABDOMEN: 0 of 1 series" in checks["required_series"].detail


def test_checks_find_thick_slices_and_window(
    runtime: Runtime, sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions.begin() as session:
        make_case(session, study_id, "301-0001")
        case_id = make_case(
            session,
            study_id,
            "301-0001",
            "W8",
            acquired_on=BASELINE_DAY + timedelta(days=70),
            slice_thickness_mm=7.5,
        )
    run_auto_qc(runtime)
    checks = _checks(sessions, case_id)
    assert checks["slice_thickness"].passed is False
    assert "7.5 mm" in checks["slice_thickness"].detail
    assert checks["visit_window"].passed is False
    assert checks["visit_window"].blocking is True
    assert "2026-04-20 to 2026-05-04" in checks["visit_window"].detail


def test_phi_finding_blocks_pass(
    runtime: Runtime, sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions.begin() as session:
        case_id = make_case(session, study_id, "301-0001")
        instance_id = session.scalars(select(Instance.id)).first()
        session.add(
            InstanceFinding(
                instance_id=instance_id,
                code="phi_patient_name",
                message="PatientName is not empty",
            )
        )
    run_auto_qc(runtime)
    assert _checks(sessions, case_id)["ingest:phi_patient_name"].blocking
    with pytest.raises(WorkflowError, match="give a reason to override"):
        with sessions.begin() as session:
            qc.pass_case(session, case_id, actor="qc.anna")
    assert _state(sessions, case_id) == "qc"
    with sessions.begin() as session:
        read_ids = qc.pass_case(
            session, case_id, actor="qc.anna", reason="burned-in name only on scout"
        )
    assert len(read_ids) == 2
    assert _state(sessions, case_id) == "reading"


def test_pass_creates_unassigned_reads(
    runtime: Runtime, sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions.begin() as session:
        case_id = make_case(session, study_id, "301-0001")
    run_auto_qc(runtime)
    with sessions.begin() as session:
        qc.pass_case(session, case_id, actor="qc.anna")
    with sessions() as session:
        reads = session.scalars(select(Read).order_by(Read.id)).all()
    assert [r.kind for r in reads] == ["primary", "secondary"]
    assert {r.state for r in reads} == {"unassigned"}
    assert all(r.due_at is not None for r in reads)


def test_fail_opens_query_and_reupload_reopens(
    runtime: Runtime, sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions.begin() as session:
        case_id = make_case(session, study_id, "301-0001")
    run_auto_qc(runtime)
    with sessions.begin() as session:
        query_id = qc.fail_case(
            session,
            case_id,
            actor="qc.anna",
            reason_code="image_quality",
            text="motion artefact in the chest series",
        )
    assert _state(sessions, case_id) == "query"
    assert run_auto_qc(runtime) == 0

    with sessions.begin() as session:
        add_series(
            session,
            case_id,
            (("CT", "CHEST"),),
            BASELINE_DAY,
            received_at=datetime.now(UTC) + timedelta(seconds=1),
        )
    # One pass reopens the case and, as it is complete, runs QC on it again.
    assert run_auto_qc(runtime) == 2
    with sessions() as session:
        query = session.get(Query, query_id)
    assert query is not None
    assert query.state == "resolved"
    assert query.resolution == "site re-uploaded images"
    assert _state(sessions, case_id) == "qc"


def test_fail_rejects_unknown_reason(
    runtime: Runtime, sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions.begin() as session:
        case_id = make_case(session, study_id, "301-0001")
    run_auto_qc(runtime)
    with pytest.raises(WorkflowError, match="'bad_vibes' is not one of"):
        with sessions.begin() as session:
            qc.fail_case(session, case_id, actor="qc.anna", reason_code="bad_vibes")
    assert _state(sessions, case_id) == "qc"


def test_first_pass_rate_per_site(
    runtime: Runtime, sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions.begin() as session:
        passed = make_case(session, study_id, "301-0001", site_code="S01")
        failed = make_case(session, study_id, "301-0002", site_code="S01")
        other = make_case(session, study_id, "301-0003", site_code="S02")
        make_case(session, study_id, "301-0004", site_code="S02")
    run_auto_qc(runtime)
    now = datetime.now(UTC)
    with sessions.begin() as session:
        qc.pass_case(session, passed, actor="qc.anna")
        qc.fail_case(session, failed, actor="qc.anna", reason_code="missing_series")
        qc.pass_case(session, other, actor="qc.anna")
    with sessions() as session:
        rates = {
            row["site_code"]: row for row in qc.first_pass_rates(session, study_id)
        }
        queries = qc.open_queries(session, study_id, now + timedelta(hours=3))
    assert rates[None]["decided"] == 3
    assert rates[None]["rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert rates["S01"]["rate"] == 0.5
    assert rates["S02"]["decided"] == 1
    assert rates["S02"]["rate"] == 1.0
    assert len(queries) == 1
    assert queries[0]["case_id"] == failed
    assert queries[0]["age_hours"] == pytest.approx(3, abs=0.1)
