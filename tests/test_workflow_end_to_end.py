"""A case from arrival to done through QC, two reads and adjudication.

Only public core functions, the automated QC job step and the CLI drive the case.
The arrival itself is written by the test builder, standing in for ingest.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from core import qc, reads
from core.config import PROJECT_ROOT
from core.models import AuditEntry, Case, Study
from core.runtime import Runtime
from jobs.qc import run_auto_qc
from tests.core.workflow_data import PASSWORD, make_case, make_reader, targets


def _cli(
    database_url: str, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "IMAGINGOPS_DATA_DIR": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "app.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _read_case(
    runtime: Runtime,
    sessions: sessionmaker[Session],
    study_id: int,
    timepoint: str,
    lesions: dict[str, dict[str, object]],
    users: dict[str, int],
    readers: dict[str, int],
) -> tuple[int, dict[str, int], reads.SignResult]:
    with sessions.begin() as session:
        case_id = make_case(session, study_id, "301-0001", timepoint)
    assert run_auto_qc(runtime) == 1
    with sessions.begin() as session:
        r1, r2 = qc.pass_case(session, case_id, actor="qc.anna")
        reads.assign_read(session, r1, readers["alice"], actor="lead.lena")
        reads.assign_read(session, r2, readers["bob"], actor="lead.lena")
    result = None
    for read_id, name in ((r1, "alice"), (r2, "bob")):
        with sessions.begin() as session:
            reads.save_assessment(session, read_id, lesions[name], user_id=users[name])
        with sessions.begin() as session:
            result = reads.sign(
                session, read_id, user_id=users[name], password=PASSWORD
            )
    assert result is not None
    return case_id, {"primary": r1, "secondary": r2}, result


def test_case_arrival_to_done(
    runtime: Runtime,
    sessions: sessionmaker[Session],
    database_url: str,
    tmp_path: Path,
) -> None:
    charter_file = str(PROJECT_ROOT / "charters" / "ONC-301.yaml")
    loaded = _cli(
        database_url, tmp_path, "charter", "load", charter_file, "--study", "ONC-301"
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "Stored charter version 1 of study ONC-301" in loaded.stdout

    users: dict[str, int] = {}
    readers: dict[str, int] = {}
    with sessions.begin() as session:
        study_id = session.scalar(
            select(Study.id).where(Study.protocol_id == "ONC-301")
        )
        assert study_id is not None
        for name in ("alice", "bob", "carol"):
            users[name], readers[name] = make_reader(session, study_id, name)

    same = {"alice": targets(30, 20), "bob": targets(30, 20)}
    baseline_id, _, baseline = _read_case(
        runtime, sessions, study_id, "BASELINE", same, users, readers
    )
    assert baseline.case_state == "done"

    # Alice measures a 40% shrink (PR), Bob a 10% shrink (SD): discordant.
    split = {"alice": targets(18, 12), "bob": targets(27, 18)}
    case_id, pair, result = _read_case(
        runtime, sessions, study_id, "W8", split, users, readers
    )
    assert result.case_state == "adjudication"
    adjudication_id = result.adjudication_read_id
    assert adjudication_id is not None
    with sessions.begin() as session:
        reads.assign_read(session, adjudication_id, readers["carol"], actor="lead.lena")
    with sessions.begin() as session:
        final = reads.adjudicate(
            session,
            adjudication_id,
            user_id=users["carol"],
            password=PASSWORD,
            chosen_read_id=pair["primary"],
            reason="lesion 2 shrank on the W8 scan",
        )
    assert final.case_state == "done"
    with sessions() as session:
        case = session.get(Case, case_id)
        assert case is not None
        assert case.state == "done"
        states = session.scalars(
            select(AuditEntry.new_values["state"].astext)
            .where(
                AuditEntry.entity_type == "case",
                AuditEntry.entity_id == str(case_id),
                AuditEntry.action == "case.state",
            )
            .order_by(AuditEntry.id)
        ).all()
    assert states == ["qc", "reading", "adjudication", "done"]

    verified = _cli(database_url, tmp_path, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "audit chain intact" in verified.stdout

    export = tmp_path / "audit.csv"
    exported = _cli(
        database_url,
        tmp_path,
        "audit",
        "export",
        "--study",
        "ONC-301",
        "--format",
        "csv",
        "--output",
        str(export),
    )
    assert exported.returncode == 0, exported.stderr
    with export.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    actions = [row["action"] for row in rows]
    assert actions[0] == "study.create"
    assert "read.adjudicate" in actions
    adjudicated = rows[actions.index("read.adjudicate")]
    assert adjudicated["reason"] == "lesion 2 shrank on the W8 scan"
    assert adjudicated["actor"] == "carol"


def test_edited_audit_row_fails_verify(
    sessions: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    charter_file = str(PROJECT_ROOT / "charters" / "ONC-214.yaml")
    loaded = _cli(
        database_url, tmp_path, "charter", "load", charter_file, "--study", "ONC-214"
    )
    assert loaded.returncode == 0, loaded.stderr
    with sessions.begin() as session:
        first_id = session.scalar(select(AuditEntry.id).order_by(AuditEntry.id))
        assert first_id is not None
        # The append-only trigger stops the application; a superuser in replica
        # mode stands in for someone editing the table behind its back.
        session.execute(text("SET LOCAL session_replication_role = replica"))
        session.execute(
            text("UPDATE audit_log SET actor = 'mallory' WHERE id = :id"),
            {"id": first_id},
        )
    verified = _cli(database_url, tmp_path, "audit", "verify")
    assert verified.returncode == 1
    assert f"audit row {first_id}:" in verified.stderr
    assert "content does not match its hash" in verified.stderr


def test_charter_cli_names_invalid_field(
    sessions: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    source = (PROJECT_ROOT / "charters" / "ONC-214.yaml").read_text()
    broken = tmp_path / "broken.yaml"
    broken.write_text(source.replace("type: single", "type: quadruple"))
    loaded = _cli(
        database_url, tmp_path, "charter", "load", str(broken), "--study", "ONC-214"
    )
    assert loaded.returncode == 1
    assert "read_design.type is 'quadruple'" in loaded.stderr
    with sessions() as session:
        assert session.scalar(select(Study.id)) is None
