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
