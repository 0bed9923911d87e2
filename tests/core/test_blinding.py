"""Sponsor scopes get operational figures only: no read results, no reader names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core import accounts, audit, case_history, portfolio, study
from core.access import AccessDenied, make_scope
from core.models import Read, Reader
from tests.web_factories import make_case, make_study

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
# Fields that would carry a read result or a reader's identity.
BLINDED_FIELDS = {"reader", "reader_id", "response", "assessment", "signature_name"}


@pytest.fixture
def case_ids(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    """Return (study A, study B, case of A with a signed read and its audit row)."""
    with sessions.begin() as session:
        a = make_study(session, "ONC-301", "Acme")
        b = make_study(session, "CNS-110", "Borealis")
        case = make_case(
            session,
            a,
            "301-0001",
            state="done",
            received=NOW - timedelta(days=3),
            completed=NOW - timedelta(days=1),
            due=NOW,
        )
        reader = Reader(name="Dr Blind")
        session.add(reader)
        session.flush()
        read = Read(
            case_id=case.id,
            kind="primary",
            state="signed",
            reader_id=reader.id,
            response="PR",
            signature_name="Dr Blind",
        )
        session.add(read)
        session.flush()
        audit.record(
            session,
            actor="dr_blind",
            action="read.sign",
            entity_type="read",
            entity_id=read.id,
            study_id=a.id,
            new={"response": "PR", "reader_id": reader.id, "state": "signed"},
        )
        return a.id, b.id, case.id


def test_sponsor_cannot_list_readers(
    sessions: sessionmaker[Session], case_ids: tuple[int, int, int]
) -> None:
    a, _, _ = case_ids
    scope = make_scope("sponsor", "sponsor", frozenset({a}))
    since = NOW - timedelta(days=30)
    with sessions() as session:
        with pytest.raises(AccessDenied):
            study.readers(session, scope, a, now=NOW, since=since)
        with pytest.raises(AccessDenied):
            study.open_reads(session, scope, a)


def test_sponsor_figures_have_no_blinded_fields(
    sessions: sessionmaker[Session], case_ids: tuple[int, int, int]
) -> None:
    a, _, _ = case_ids
    scope = make_scope("sponsor", "sponsor", frozenset({a}))
    since = NOW - timedelta(days=30)
    with sessions() as session:
        results = {
            "summaries": portfolio.summaries(session, scope, now=NOW, since=since),
            "dashboard": portfolio.dashboard_summaries(
                session, scope, now=NOW, days=30
            ),
            "pipeline": study.pipeline(session, scope, a),
            "sites": study.sites(session, scope, a, now=NOW, since=since),
            "at_risk": study.at_risk_cases(session, scope, a, now=NOW),
            "alerts": study.open_alerts(session, scope, a),
        }
    for name, rows in results.items():
        assert rows or name in ("at_risk", "alerts"), name
        for row in rows:
            assert not BLINDED_FIELDS & set(row), name


def test_sponsor_timeline_hides_results(
    sessions: sessionmaker[Session], case_ids: tuple[int, int, int]
) -> None:
    a, _, case_id = case_ids
    scope = make_scope("sponsor", "sponsor", frozenset({a}))
    with sessions() as session:
        rows = case_history.timeline(session, scope, case_id)
    read_rows = [row for row in rows if row["entity_type"] == "read"]
    assert len(read_rows) == 1
    assert read_rows[0]["actor"] == "(reader)"
    assert read_rows[0]["new_values"]["response"] == "(hidden)"
    assert read_rows[0]["new_values"]["reader_id"] == "(hidden)"
    assert read_rows[0]["new_values"]["state"] == "signed"


def test_manager_timeline_shows_results(
    sessions: sessionmaker[Session], case_ids: tuple[int, int, int]
) -> None:
    a, _, case_id = case_ids
    scope = make_scope("manager", "study_manager", frozenset({a}))
    with sessions() as session:
        rows = case_history.timeline(session, scope, case_id)
    read_row = next(row for row in rows if row["entity_type"] == "read")
    assert read_row["actor"] == "dr_blind"
    assert read_row["new_values"]["response"] == "PR"


def test_sponsor_other_study_is_denied(
    sessions: sessionmaker[Session], case_ids: tuple[int, int, int]
) -> None:
    a, b, case_id = case_ids
    scope = make_scope("sponsor", "sponsor", frozenset({b}))
    since = NOW - timedelta(days=30)
    with sessions() as session:
        with pytest.raises(AccessDenied):
            study.pipeline(session, scope, a)
        with pytest.raises(AccessDenied):
            study.sites(session, scope, a, now=NOW, since=since)
        with pytest.raises(AccessDenied):
            case_history.timeline(session, scope, case_id)
        rows = portfolio.dashboard_summaries(session, scope, now=NOW, days=30)
    assert [row["study_id"] for row in rows] == [b]


@pytest.fixture
def double_read(
    sessions: sessionmaker[Session], case_ids: tuple[int, int, int]
) -> tuple[int, int]:
    """Give the case a second read by `dr_two`, with a user, and a discordance row.

    Returns (study id, case id). `dr_blind` has no user account, so only `dr_two`
    reads the case as a logged-in reader.
    """
    a, _, case_id = case_ids
    with sessions.begin() as session:
        user = accounts.create_user(
            session, "dr_two", "correct horse battery", "reader", study_ids=[a]
        )
        reader = Reader(name="Dr Two", user_id=user.id)
        session.add(reader)
        session.flush()
        read = Read(
            case_id=case_id,
            kind="secondary",
            state="signed",
            reader_id=reader.id,
            response="PD",
            signature_name="Dr Two",
        )
        session.add(read)
        session.flush()
        audit.record(
            session,
            actor="dr_two",
            action="read.sign",
            entity_type="read",
            entity_id=read.id,
            study_id=a,
            new={"response": "PD", "reader_id": reader.id, "state": "signed"},
        )
        audit.record(
            session,
            actor="dr_blind",
            action="case.transition",
            entity_type="case",
            entity_id=case_id,
            study_id=a,
            old={"state": "reading"},
            new={"state": "adjudication", "discordant": True},
            reason="R1 called PR and R2 called PD",
        )
    return a, case_id


def test_reader_timeline_shows_own_read_only(
    sessions: sessionmaker[Session], double_read: tuple[int, int]
) -> None:
    a, case_id = double_read
    scope = make_scope("dr_two", "reader", frozenset({a}))
    with sessions() as session:
        rows = case_history.timeline(session, scope, case_id)
    read_rows = [row for row in rows if row["entity_type"] == "read"]
    case_row = next(row for row in rows if row["action"] == "case.transition")
    assert len(read_rows) == 1
    assert read_rows[0]["actor"] == "dr_two"
    assert read_rows[0]["new_values"]["response"] == "(hidden)"
    assert case_row["actor"] == "(another user)"
    assert case_row["new_values"]["discordant"] == "(hidden)"
    assert case_row["reason"] == "(hidden)"
    assert case_row["new_values"]["state"] == "adjudication"


def test_reader_without_read_is_denied(
    sessions: sessionmaker[Session], double_read: tuple[int, int]
) -> None:
    a, case_id = double_read
    scope = make_scope("someone_else", "reader", frozenset({a}))
    with sessions() as session:
        with pytest.raises(AccessDenied):
            case_history.timeline(session, scope, case_id)
        with pytest.raises(AccessDenied):
            case_history.representative_instance(session, scope, case_id)
