"""`app.py charter load`: a new version prints and audits the open cases it affects."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import qc
from core.config import PROJECT_ROOT
from core.models import AuditEntry, Case, Study
from tests.core.workflow_data import make_case
from tests.test_workflow_end_to_end import _cli

CHARTER = PROJECT_ROOT / "charters" / "ONC-301.yaml"


def _load(
    database_url: str, tmp_path: Path, path: Path, *options: str
) -> tuple[int, str, str]:
    done = _cli(
        database_url,
        tmp_path,
        "charter",
        "load",
        str(path),
        "--study",
        "ONC-301",
        "--actor",
        "lead.lena",
        *options,
    )
    return done.returncode, done.stdout, done.stderr


def test_charter_change_lists_open_cases(
    sessions: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    code, out, err = _load(database_url, tmp_path, CHARTER)
    assert code == 0, err
    assert "Stored charter version 1 of study ONC-301" in out
    assert "No open cases are affected." in out

    with sessions.begin() as session:
        study_id = session.scalar(select(Study.id))
        assert study_id is not None
        open_id = make_case(session, study_id, "301-0001")
        finished_id = make_case(session, study_id, "301-0002")
        finished = session.get(Case, finished_id)
        assert finished is not None
        finished.state = "done"
    amended = tmp_path / "ONC-301-v2.yaml"
    amended.write_text(
        CHARTER.read_text().replace("total_hours: 120", "total_hours: 96")
    )

    code, out, err = _load(database_url, tmp_path, amended)
    assert code == 1
    assert "a reason is required to change the charter of ONC-301" in err

    code, out, err = _load(
        database_url, tmp_path, amended, "--reason", "SLA amendment 2"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Stored charter version 2 of study ONC-301"
    assert lines[1] == (
        "1 open case affected; each keeps the version it started under:"
    )
    assert lines[2] == f"  case {open_id} (received): keeps version 1"
    assert len(lines) == 3

    with sessions() as session:
        entry = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "charter.load")
            .order_by(AuditEntry.id.desc())
        ).first()
        case = session.get(Case, open_id)
        assert entry is not None and case is not None
        assert entry.actor == "lead.lena"
        assert entry.reason == "SLA amendment 2"
        assert entry.old_values == {"charter_version": 1}
        assert entry.new_values == {
            "charter_version": 2,
            "affected_open_cases": [open_id],
        }
        assert case.charter_version == 1
        assert qc.case_document(session, case)["sla"]["total_hours"] == 120
