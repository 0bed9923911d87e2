"""Assignment and reassignment of reads on real PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.assignment import (
    AssignmentError,
    assign_open_reads,
    reassign_read,
    reassign_stalled_reads,
)
from core.models import AuditEntry, Read, Reader, ReaderAbsence
from tests.factories import NOW, make_case, make_reader, make_study


def _readers_of(session: Session, case_id: int) -> dict[str, int | None]:
    rows = session.execute(
        select(Read.kind, Read.reader_id).where(Read.case_id == case_id)
    )
    return {kind: reader_id for kind, reader_id in rows}


def _open_counts_match(session: Session) -> bool:
    for reader in session.scalars(select(Reader)):
        actual = session.scalar(
            select(func.count())
            .select_from(Read)
            .where(Read.reader_id == reader.id)
            .where(Read.state.in_(("assigned", "in_progress")))
        )
        if reader.open_reads != actual:
            return False
    return True


def test_assignment_respects_training(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        other = make_study(session, "CARD-12")
        first = make_reader(session, "A", study)
        second = make_reader(session, "B", study)
        make_reader(session, "Untrained", other)
        make_reader(session, "Expired", study, expires_on=date(2026, 2, 1))
        case = make_case(session, study, "301-0001")
    with sessions.begin() as session:
        placements = assign_open_reads(session, NOW)
    with sessions() as session:
        readers = _readers_of(session, case.id)
        assert len(placements) == 2
        assert {readers["primary"], readers["secondary"]} == {first.id, second.id}
        assert _open_counts_match(session)
        checked, broken = audit.verify_chain(session)
        assert broken is None
        assert checked == 2


def test_subject_keeps_reader_pair(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        make_reader(session, "A", study)
        make_reader(session, "B", study)
        baseline = make_case(session, study, "301-0002", 0)
    with sessions.begin() as session:
        assign_open_reads(session, NOW)
    with sessions.begin() as session:
        # Idle new readers would win on load alone; the subject's pair must win.
        make_reader(session, "C", study)
        make_reader(session, "D", study)
        week8 = make_case(session, study, "301-0002", 1)
    with sessions.begin() as session:
        assign_open_reads(session, NOW)
    with sessions() as session:
        assert _readers_of(session, week8.id) == _readers_of(session, baseline.id)


def test_handover_waits_for_charter_wait(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session, sla={"handover_wait_hours": 48})
        first = make_reader(session, "A", study)
        make_reader(session, "B", study)
        spare = make_reader(session, "C", study)
        make_case(session, study, "301-0003", 0)
    with sessions.begin() as session:
        assign_open_reads(session, NOW)
    with sessions.begin() as session:
        session.add(
            ReaderAbsence(
                reader_id=first.id,
                starts_at=NOW - timedelta(days=1),
                ends_at=NOW + timedelta(days=10),
            )
        )
        week8 = make_case(session, study, "301-0003", 1, received=NOW)
    with sessions.begin() as session:
        assign_open_reads(session, NOW + timedelta(hours=1))
    with sessions() as session:
        early = _readers_of(session, week8.id)
    with sessions.begin() as session:
        assign_open_reads(session, NOW + timedelta(hours=49))
    with sessions() as session:
        late = _readers_of(session, week8.id)
        handovers = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "subject.handover")
        ).all()
    assert early["primary"] is None
    assert late["primary"] == spare.id
    assert len(handovers) == 1
    assert handovers[0].old_values == {"primary": first.id}


def test_balance_follows_capacity(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        small = make_reader(session, "Small", study, capacity=10)
        large = make_reader(session, "Large", study, capacity=30)
        for number in range(20):
            make_case(session, study, f"301-1{number:03d}", kinds=("primary",))
    with sessions.begin() as session:
        assign_open_reads(session, NOW)
    with sessions() as session:
        assert session.get(Reader, small.id).open_reads == 5  # type: ignore[union-attr]
        assert session.get(Reader, large.id).open_reads == 15  # type: ignore[union-attr]
        assert _open_counts_match(session)


def test_capacity_and_hours_limit(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        make_reader(session, "Small", study, capacity=2)
        # 14:00 UTC is 07:00 in Los Angeles, before this reader's 08:00 start.
        make_reader(
            session, "Asleep", study, timezone="America/Los_Angeles", hours=(8, 18)
        )
        for number in range(4):
            make_case(session, study, f"301-2{number:03d}", kinds=("primary",))
    with sessions.begin() as session:
        placements = assign_open_reads(session, NOW)
    assert len(placements) == 2


def test_adjudicator_is_neither_reader(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        for name in ("A", "B", "C"):
            make_reader(session, name, study)
        case = make_case(session, study, "301-0004")
    with sessions.begin() as session:
        assign_open_reads(session, NOW)
        session.add(Read(case_id=case.id, kind="adjudication", created_at=NOW))
    with sessions.begin() as session:
        assign_open_reads(session, NOW)
    with sessions() as session:
        readers = _readers_of(session, case.id)
    assert readers["adjudication"] is not None
    assert readers["adjudication"] not in (readers["primary"], readers["secondary"])


def test_absent_reader_reads_move(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        first = make_reader(session, "A", study)
        make_reader(session, "B", study)
        spare = make_reader(session, "C", study)
        case = make_case(session, study, "301-0005")
    with sessions.begin() as session:
        assign_open_reads(session, NOW)
    with sessions.begin() as session:
        session.add(
            ReaderAbsence(
                reader_id=first.id, starts_at=NOW, ends_at=NOW + timedelta(days=7)
            )
        )
    with sessions.begin() as session:
        moved = reassign_stalled_reads(session, NOW + timedelta(hours=1))
    with sessions() as session:
        readers = _readers_of(session, case.id)
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "read.reassign")
        ).one()
        assert len(moved) == 1
        assert first.id not in readers.values()
        assert spare.id in readers.values()
        assert "out of office" in (entry.reason or "")
        assert _open_counts_match(session)


def test_manual_reassign_rules(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        make_reader(session, "A", study)
        make_reader(session, "B", study)
        spare = make_reader(session, "C", study)
        untrained = make_reader(session, "D")
        case = make_case(session, study, "301-0006")
    with sessions.begin() as session:
        assign_open_reads(session, NOW)
        read_id = session.scalars(
            select(Read.id).where(Read.case_id == case.id, Read.kind == "primary")
        ).one()
        secondary = _readers_of(session, case.id)["secondary"]
    for reader_id, reason in ((spare.id, " "), (untrained.id, "x"), (secondary, "x")):
        with pytest.raises(AssignmentError), sessions.begin() as session:
            reassign_read(
                session, read_id, reader_id or 0, actor="sm", reason=reason, now=NOW
            )
    with sessions.begin() as session:
        read = reassign_read(
            session, read_id, spare.id, actor="sm", reason="reader asked", now=NOW
        )
    with sessions() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "read.reassign")
        ).one()
        assert read.reader_id == spare.id
        assert entry.actor == "sm"
        assert entry.reason == "reader asked"
        assert _open_counts_match(session)
