"""Reader network admin and dashboard actions: scope, reasons and audit rows."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import actions, reader_admin
from core.access import AccessDenied, make_scope
from core.assignment import assign_open_reads
from core.models import Alert, AuditEntry, Read, Reader, ReaderAbsence
from core.readers import ReaderError
from tests.factories import NOW, make_case, make_reader, make_study


def _audit(session: Session, action: str) -> list[AuditEntry]:
    statement = select(AuditEntry).where(AuditEntry.action == action)
    return list(session.scalars(statement.order_by(AuditEntry.id)))


def test_edit_is_audited_with_reason(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        reader = make_reader(session, "A", study, capacity=20)
    manager = make_scope("sm", "study_manager", frozenset({study.id}))
    with sessions.begin() as session:
        reader_admin.edit_reader(
            session,
            manager,
            reader.id,
            {"daily_capacity": "12", "timezone": "America/New_York"},
            "  reduced hours  ",
        )
    with sessions() as session:
        stored = session.get(Reader, reader.id)
        entries = _audit(session, "reader.update")
    assert stored is not None
    assert stored.daily_capacity == 12
    assert stored.timezone == "America/New_York"
    assert len(entries) == 1
    assert entries[0].actor == "sm"
    assert entries[0].reason == "reduced hours"
    assert entries[0].old_values == {"daily_capacity": 20, "timezone": "UTC"}
    assert entries[0].new_values == {
        "daily_capacity": 12,
        "timezone": "America/New_York",
    }


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"daily_capacity": 5}, "", "reason"),
        ({"timezone": "Mars/Olympus"}, "typo", "timezone"),
        ({"daily_capacity": "many"}, "typo", "daily_capacity"),
        ({"work_end_hour": 25}, "typo", "work_end_hour"),
    ],
)
def test_invalid_edit_changes_nothing(
    sessions: sessionmaker[Session], changes: dict[str, object], reason: str, field: str
) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        reader = make_reader(session, "A", study, capacity=20)
    admin = make_scope("admin", "admin", frozenset())
    with pytest.raises(ReaderError, match=field), sessions.begin() as session:
        reader_admin.edit_reader(session, admin, reader.id, changes, reason)
    with sessions() as session:
        stored = session.get(Reader, reader.id)
        assert stored is not None
        assert stored.daily_capacity == 20
        assert stored.timezone == "UTC"
        assert _audit(session, "reader.update") == []


def test_manager_limited_to_own_studies(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        own = make_study(session)
        other = make_study(session, "CNS-110")
        mine = make_reader(session, "Mine", own)
        theirs = make_reader(session, "Theirs", other)
    manager = make_scope("sm", "study_manager", frozenset({own.id}))
    with sessions() as session:
        visible = reader_admin.readers_in_scope(session, manager, NOW)
    assert [row["reader_id"] for row in visible] == [mine.id]
    assert visible[0]["current_training"] == "ONC-301 RECIST 1.1"
    with pytest.raises(AccessDenied), sessions.begin() as session:
        reader_admin.edit_reader(
            session, manager, theirs.id, {"daily_capacity": 1}, "not mine"
        )
    with pytest.raises(AccessDenied), sessions.begin() as session:
        reader_admin.train_reader(
            session,
            manager,
            mine.id,
            other.id,
            "RECIST 1.1",
            date(2026, 1, 1),
            None,
            "other study",
        )
    with sessions() as session:
        assert _audit(session, "reader.update") == []
        assert _audit(session, "reader.training") == []


def test_expired_training_is_never_assigned(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        trained = make_reader(session, "Trained", study)
        expired = make_reader(session, "Expired", study, expires_on=date(2026, 6, 10))
        make_reader(session, "Untrained", make_study(session, "CNS-110"))
        case = make_case(session, study, "301-0001")
    with sessions.begin() as session:
        placements = assign_open_reads(session, NOW)
    with sessions() as session:
        readers = {
            read.kind: read.reader_id
            for read in session.scalars(select(Read).where(Read.case_id == case.id))
        }
    # Training that expires on the day of assignment no longer counts, so only one
    # reader is current. R1 and R2 must differ, so one read waits.
    assert len(placements) == 1
    assert sorted(readers.values(), key=str) == [trained.id, None]
    manager = make_scope("sm", "study_manager", frozenset({study.id}))
    with sessions.begin() as session:
        reader_admin.train_reader(
            session,
            manager,
            expired.id,
            study.id,
            "RECIST 1.1",
            date(2026, 6, 1),
            date(2027, 6, 1),
            "renewed after refresher course",
        )
    with sessions.begin() as session:
        placements = assign_open_reads(session, NOW)
    assert [p.reader_id for p in placements] == [expired.id]


def test_absence_days_in_reader_zone(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        reader = make_reader(session, "A", study, timezone="America/New_York")
    manager = make_scope("sm", "study_manager", frozenset({study.id}))
    # 8 March 2026 is the spring-forward day in New York: EST before, EDT after.
    with sessions.begin() as session:
        reader_admin.add_absence(
            session, manager, reader.id, date(2026, 3, 7), date(2026, 3, 8), "leave"
        )
    with sessions() as session:
        absence = session.scalars(select(ReaderAbsence)).one()
        entries = _audit(session, "reader.absence")
    assert absence.starts_at == datetime(2026, 3, 7, 5, tzinfo=UTC)
    assert absence.ends_at == datetime(2026, 3, 9, 4, tzinfo=UTC)
    assert absence.note == "leave"
    assert [entry.reason for entry in entries] == ["leave"]


def test_manager_adds_reader_with_training(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        own = make_study(session)
        other = make_study(session, "CNS-110")
    manager = make_scope("sm", "study_manager", frozenset({own.id}))
    profile = {"name": " Dr New ", "timezone": "Europe/Berlin", "daily_capacity": 8}
    training = {
        "study_id": own.id,
        "criteria": "RECIST 1.1",
        "trained_on": date(2026, 5, 1),
        "expires_on": None,
    }
    with sessions.begin() as session:
        reader_id = reader_admin.create_reader(
            session, manager, profile, training, "joined the network"
        ).id
    with pytest.raises(AccessDenied), sessions.begin() as session:
        reader_admin.create_reader(
            session, manager, profile, training | {"study_id": other.id}, "other"
        )
    with sessions() as session:
        visible = reader_admin.readers_in_scope(session, manager, NOW)
        created = _audit(session, "reader.create")
        trained = _audit(session, "reader.training")
    assert [(row["reader_id"], row["name"]) for row in visible] == [
        (reader_id, "Dr New")
    ]
    assert visible[0]["daily_capacity"] == 8
    assert [entry.entity_id for entry in created] == [str(reader_id)]
    assert [entry.reason for entry in trained] == ["joined the network"]


def test_dashboard_reassign_and_acknowledge(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        other = make_study(session, "CNS-110")
        for name in ("A", "B", "C"):
            make_reader(session, name, study)
        make_reader(session, "Other", other)
        case = make_case(session, study, "301-0001")
        other_case = make_case(session, other, "110-0001", kinds=())
        alert = Alert(case_id=case.id, step="total", kind="breached", due_at=NOW)
        other_alert = Alert(
            case_id=other_case.id, step="total", kind="breached", due_at=NOW
        )
        session.add_all([alert, other_alert])
    with sessions.begin() as session:
        assign_open_reads(session, NOW)
        read = session.scalars(
            select(Read).where(Read.case_id == case.id, Read.kind == "primary")
        ).one()
        read_id, old_reader = read.id, read.reader_id
        used = set(session.scalars(select(Read.reader_id)))
        spare = session.scalars(
            select(Reader.id).where(Reader.id.not_in(used), Reader.name != "Other")
        ).one()
    manager = make_scope("sm", "study_manager", frozenset({study.id}))
    with pytest.raises(actions.ActionError, match="reason"), sessions.begin() as s:
        actions.reassign_read(s, manager, read_id, spare, "")
    with sessions.begin() as session:
        actions.reassign_read(session, manager, read_id, spare, "reader on leave")
    with sessions.begin() as session:
        actions.acknowledge_alert(session, manager, alert.id)
    with pytest.raises(actions.ActionError, match="already"), sessions.begin() as s:
        actions.acknowledge_alert(s, manager, alert.id)
    with pytest.raises(AccessDenied), sessions.begin() as session:
        actions.acknowledge_alert(session, manager, other_alert.id)
    with sessions() as session:
        moved = session.get(Read, read_id)
        loads = dict(session.execute(select(Reader.id, Reader.open_reads)).all())
        reassigned = _audit(session, "read.reassign")
        acknowledged = _audit(session, "alert.acknowledge")
        stored_alert = session.get(Alert, alert.id)
        stored_other = session.get(Alert, other_alert.id)
    assert moved is not None and moved.reader_id == spare
    assert loads[spare] == 1
    assert loads[old_reader] == 0
    assert [(e.actor, e.reason) for e in reassigned] == [("sm", "reader on leave")]
    assert [e.entity_id for e in acknowledged] == [str(alert.id)]
    assert stored_alert is not None and stored_alert.acknowledged_by == "sm"
    assert stored_other is not None and stored_other.acknowledged_at is None


def test_signed_read_cannot_be_reassigned(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        first = make_reader(session, "A", study)
        spare = make_reader(session, "B", study)
        case = make_case(session, study, "301-0001", kinds=("primary",))
        read = session.scalars(select(Read).where(Read.case_id == case.id)).one()
        read.reader_id = first.id
        read.state = "signed"
    manager = make_scope("sm", "study_manager", frozenset({study.id}))
    with pytest.raises(actions.ActionError, match="not open"), sessions.begin() as s:
        actions.reassign_read(s, manager, read.id, spare.id, "should fail")
    with sessions() as session:
        stored = session.get(Read, read.id)
        assert stored is not None
        assert stored.reader_id == first.id
        assert _audit(session, "read.reassign") == []
