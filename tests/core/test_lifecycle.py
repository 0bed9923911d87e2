from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core import lifecycle
from core.models import Case, Read
from tests.core.workflow_data import audit_count, load_charter, make_case, make_reader


@pytest.fixture
def case_id(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        study_id = load_charter(session)
        return make_case(session, study_id, "301-0001")


def test_skipping_qc_is_rejected(sessions: sessionmaker[Session], case_id: int) -> None:
    with sessions() as session:
        before = audit_count(session)
    with pytest.raises(lifecycle.TransitionError, match="from received to reading"):
        with sessions.begin() as session:
            case = lifecycle.lock_case(session, case_id)
            lifecycle.transition(session, case, "reading", actor="test")
    with sessions() as session:
        case = session.get(Case, case_id)
        assert case is not None
        assert case.state == "received"
        assert audit_count(session) == before


def test_adjudication_needs_both_signatures(
    sessions: sessionmaker[Session], case_id: int
) -> None:
    with sessions.begin() as session:
        case = lifecycle.lock_case(session, case_id)
        lifecycle.transition(session, case, "qc", actor="test")
        lifecycle.transition(session, case, "reading", actor="test")
    with pytest.raises(lifecycle.TransitionError, match="not signed"):
        with sessions.begin() as session:
            case = lifecycle.lock_case(session, case_id)
            lifecycle.transition(session, case, "adjudication", actor="test")


def test_hold_requires_reason(sessions: sessionmaker[Session], case_id: int) -> None:
    with pytest.raises(lifecycle.TransitionError, match="reason is required"):
        with sessions.begin() as session:
            lifecycle.hold(session, case_id, actor="test", reason=" ")


def test_resume_returns_to_held_state(
    sessions: sessionmaker[Session], case_id: int
) -> None:
    with sessions.begin() as session:
        case = lifecycle.lock_case(session, case_id)
        lifecycle.transition(session, case, "qc", actor="test")
        lifecycle.hold(session, case_id, actor="test", reason="site asked to wait")
    with sessions.begin() as session:
        resumed = lifecycle.resume(session, case_id, actor="test")
    with sessions() as session:
        case = session.get(Case, case_id)
        assert case is not None
        assert case.state == "qc"
    assert resumed == "qc"


def test_done_case_cannot_reopen(sessions: sessionmaker[Session], case_id: int) -> None:
    with sessions.begin() as session:
        lifecycle.cancel(session, case_id, actor="test", reason="subject withdrew")
    with pytest.raises(lifecycle.TransitionError, match="allowed from cancelled: none"):
        with sessions.begin() as session:
            case = lifecycle.lock_case(session, case_id)
            lifecycle.transition(session, case, "qc", actor="test")


def _waiting_on_locks(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(
            session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                    "'Lock' AND datname = current_database()"
                )
            )
        )


def test_cancel_and_read_work_do_not_deadlock(
    sessions: sessionmaker[Session], case_id: int
) -> None:
    # Read work (assign, save, start, sign) locks the read and then its case.
    with sessions.begin() as session:
        study_id = session.get_one(Case, case_id).study_id
        _, reader_id = make_reader(session, study_id, "reader1")
        case = lifecycle.lock_case(session, case_id)
        lifecycle.transition(session, case, "qc", actor="test")
        lifecycle.transition(session, case, "reading", actor="test")
        read = Read(case_id=case_id, kind="primary", state="assigned")
        read.reader_id = reader_id
        session.add(read)
        session.flush()
        read_id = read.id
    errors: list[Exception] = []

    def cancel() -> None:
        try:
            with sessions.begin() as session:
                lifecycle.cancel(session, case_id, actor="test", reason="withdrew")
        except Exception as exc:
            errors.append(exc)

    worker = threading.Thread(target=cancel)
    try:
        with sessions.begin() as session:
            session.execute(select(Read).where(Read.id == read_id).with_for_update())
            worker.start()
            while _waiting_on_locks(sessions) == 0:
                threading.Event().wait(0.01)
            lifecycle.lock_case(session, case_id)
    except OperationalError as exc:
        errors.append(exc)
    worker.join()

    assert errors == []
    with sessions() as session:
        assert session.get_one(Case, case_id).state == "cancelled"
        assert session.get_one(Read, read_id).state == "cancelled"
