from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from core import audit


def _write_rows(sessions: sessionmaker[Session], count: int) -> None:
    for i in range(count):
        with sessions.begin() as session:
            audit.record(
                session,
                actor="qc.reviewer",
                action="case.state",
                entity_type="case",
                entity_id=i,
                study_id=1,
                old={"state": "qc"},
                new={"state": "reading", "score": 0.1 * i},
                reason="QC passed",
            )


def test_chain_verifies_when_untouched(sessions: sessionmaker[Session]) -> None:
    _write_rows(sessions, 5)
    with sessions() as session:
        checked, broken = audit.verify_chain(session)
    assert checked == 5
    assert broken is None


def test_chain_links_each_row_to_previous(sessions: sessionmaker[Session]) -> None:
    _write_rows(sessions, 3)
    with sessions() as session:
        rows = session.execute(
            text("SELECT prev_hash, row_hash FROM audit_log ORDER BY id")
        ).all()
    assert rows[0].prev_hash == audit.GENESIS_HASH
    assert rows[1].prev_hash == rows[0].row_hash
    assert rows[2].prev_hash == rows[1].row_hash


def test_edited_row_is_named(sessions: sessionmaker[Session]) -> None:
    _write_rows(sessions, 4)
    with sessions.begin() as session:
        session.execute(text("SET LOCAL session_replication_role = replica"))
        session.execute(text("UPDATE audit_log SET reason = 'edited' WHERE id = 3"))
    with sessions() as session:
        _, broken = audit.verify_chain(session)
    assert broken is not None
    assert broken.row_id == 3


def test_deleted_row_breaks_next(sessions: sessionmaker[Session]) -> None:
    _write_rows(sessions, 4)
    with sessions.begin() as session:
        session.execute(text("SET LOCAL session_replication_role = replica"))
        session.execute(text("DELETE FROM audit_log WHERE id = 2"))
    with sessions() as session:
        _, broken = audit.verify_chain(session)
    assert broken is not None
    assert broken.row_id == 3


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"]
)
def test_audit_table_rejects_changes(
    sessions: sessionmaker[Session], statement: str
) -> None:
    _write_rows(sessions, 1)
    with pytest.raises(DBAPIError, match="append-only"):
        with sessions.begin() as session:
            session.execute(text(statement))


def _record(session: Session, entity_id: int) -> None:
    audit.record(
        session,
        actor="reader",
        action="read.signed",
        entity_type="read",
        entity_id=entity_id,
        new={"state": "signed"},
    )


def test_rolled_back_savepoint_leaves_chain_whole(
    sessions: sessionmaker[Session],
) -> None:
    """Rows written after a rolled-back savepoint chain to the rows that remain."""
    with sessions.begin() as session:
        _record(session, 1)
        try:
            with session.begin_nested():
                _record(session, 2)
                _record(session, 3)
                raise RuntimeError("signing rejected")
        except RuntimeError:
            pass
        _record(session, 4)
        with session.begin_nested():
            _record(session, 5)
        _record(session, 6)
    with sessions() as session:
        entities = session.scalars(
            text("SELECT entity_id FROM audit_log ORDER BY id")
        ).all()
        checked, broken = audit.verify_chain(session)
    assert entities == ["1", "4", "5", "6"]
    assert checked == 4
    assert broken is None


def test_interleaved_transactions_keep_one_chain(
    sessions: sessionmaker[Session],
) -> None:
    """Sessions that take turns, and a bulk insert, extend one chain."""
    first = sessions()
    second = sessions()
    try:
        with first.begin():
            _record(first, 1)
            _record(first, 2)
        with second.begin():
            _record(second, 3)
        with first.begin():
            _record(first, 4)
        with second.begin():
            _record(second, 5)
        with first.begin():
            _record(first, 6)
            audit.record_many(
                first,
                [
                    {
                        "actor": "jobs",
                        "action": "read.assigned",
                        "entity_type": "read",
                        "entity_id": 7,
                    },
                    {
                        "actor": "jobs",
                        "action": "read.assigned",
                        "entity_type": "read",
                        "entity_id": 8,
                    },
                ],
            )
            _record(first, 9)
    finally:
        first.close()
        second.close()
    with sessions() as session:
        checked, broken = audit.verify_chain(session)
    assert checked == 9
    assert broken is None
