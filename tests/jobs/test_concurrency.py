"""Two jobs processes against one database, and a backend cut mid-batch."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from core.assignment import assign_open_reads
from core.config import PROJECT_ROOT
from core.models import Alert, AuditEntry, Read, Reader
from core.runtime import Runtime
from jobs.assignment import assign_step
from tests.factories import NOW, make_case, make_reader, make_study


def _seed(sessions: sessionmaker[Session], subjects: int, readers: int) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        for number in range(readers):
            make_reader(session, f"Reader {number}", study, capacity=200)
        for number in range(subjects):
            # Every third subject has two timepoints, to exercise the reader pair.
            received = NOW - timedelta(hours=100 + number % 200)
            make_case(session, study, f"301-{number:04d}", 0, received=received)
            if number % 3 == 0:
                make_case(session, study, f"301-{number:04d}", 1, received=received)


def _open_counts(session: Session) -> dict[int, tuple[int, int]]:
    actual = dict(
        session.execute(
            select(Read.reader_id, func.count())
            .where(Read.state.in_(("assigned", "in_progress")))
            .group_by(Read.reader_id)
        ).all()
    )
    return {
        reader.id: (reader.open_reads, actual.get(reader.id, 0))
        for reader in session.scalars(select(Reader))
    }


def test_two_processes_share_work(
    sessions: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    _seed(sessions, subjects=600, readers=30)
    start = tmp_path / "start"
    command = [sys.executable, "-m", "tests.jobs.contend", database_url, str(start)]
    workers = [
        subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    start.touch()
    outputs = [worker.communicate(timeout=300) for worker in workers]
    codes = [worker.returncode for worker in workers]
    assert codes == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]

    with sessions() as session:
        total_reads = session.scalar(select(func.count()).select_from(Read))
        assigned = session.scalar(
            select(func.count()).select_from(Read).where(Read.state == "assigned")
        )
        audits = session.execute(
            select(AuditEntry.entity_id, func.count())
            .where(AuditEntry.action == "read.assign")
            .group_by(AuditEntry.entity_id)
        ).all()
        same_pair = session.scalar(
            text(
                "SELECT count(*) FROM reads a JOIN reads b ON a.case_id = b.case_id "
                "AND a.kind = 'primary' AND b.kind = 'secondary' "
                "WHERE a.reader_id = b.reader_id"
            )
        )
        alert_rows = session.scalar(select(func.count()).select_from(Alert))
        counts = _open_counts(session)

    assert total_reads == 1600
    assert assigned == total_reads
    assert sum(report["assigned"] for report in reports) == total_reads
    assert all(report["assigned"] > 0 for report in reports)
    assert len(audits) == total_reads
    assert max(count for _, count in audits) == 1
    assert same_pair == 0
    assert all(stored == actual for stored, actual in counts.values())
    assert sum(report["alerts"] for report in reports) == alert_rows


def _terminate_own_backend_on_update(engine: Engine) -> None:
    """Kill the session's backend from another connection as the UPDATE runs."""

    def before(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().startswith("UPDATE reads"):
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            ) as killer:
                killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    event.listen(engine, "before_cursor_execute", before)
    return before  # type: ignore[return-value]


def test_cut_connection_rolls_back(
    sessions: sessionmaker[Session], engine: Engine, runtime: Runtime
) -> None:
    _seed(sessions, subjects=20, readers=4)
    hook = _terminate_own_backend_on_update(engine)
    try:
        with pytest.raises(DBAPIError):
            assign_step(runtime)
    finally:
        event.remove(engine, "before_cursor_execute", hook)
    with sessions() as session:
        assigned = session.scalar(
            select(func.count()).select_from(Read).where(Read.reader_id.is_not(None))
        )
        loads = session.scalar(select(func.sum(Reader.open_reads)))
        audit_rows = session.scalar(select(func.count()).select_from(AuditEntry))
    assert assigned == 0
    assert loads == 0
    assert audit_rows == 0

    with sessions.begin() as session:
        placed = assign_open_reads(session, NOW)
    with sessions() as session:
        counts = _open_counts(session)
    assert len(placed) == 54
    assert all(stored == actual for stored, actual in counts.values())
