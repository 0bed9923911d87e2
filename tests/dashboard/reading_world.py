"""A charter-driven world for the QC and reader pages.

ONC-301 (double read) has subject 301-0001 with a signed baseline read by alice (R1)
and bob (R2) and a W8 case waiting for manual QC. ONC-214 has one case in QC that
the ONC-301 QC reviewer must not reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from core import accounts, qc, reads
from core.models import StudyGrant
from tests.core.workflow_data import (
    PASSWORD,
    load_charter,
    make_case,
    make_reader,
    targets,
)

READERS = ("alice", "bob", "carol")
# The series that ONC-214's charter requires at baseline.
ONC_214_BASELINE = (("MR", "LIVER"),) * 3 + (("CT", "CHEST"),)


@dataclass
class ReadingWorld:
    """Ids of the studies, users and workflow rows of the reading world."""

    study_a: int
    study_b: int
    users: dict[str, int]
    readers: dict[str, int]
    baseline_reads: dict[str, int]
    w8_case: int
    other_study_case: int


def _grant(session: Session, user_id: int, study_id: int) -> None:
    session.add(StudyGrant(user_id=user_id, study_id=study_id))
    session.flush()


def _to_manual_qc(session: Session, case_id: int) -> None:
    assert qc.auto_qc_case(session, case_id, now=datetime.now(UTC))


def build(sessions: sessionmaker[Session]) -> ReadingWorld:
    users: dict[str, int] = {}
    readers: dict[str, int] = {}
    with sessions.begin() as session:
        study_a = load_charter(session, "ONC-301")
        study_b = load_charter(session, "ONC-214")
        for username, role, study_ids in (
            ("qc_a", "qc_reviewer", [study_a]),
            ("sponsor_a", "sponsor", [study_a]),
            ("manager_a", "study_manager", [study_a]),
        ):
            user = accounts.create_user(
                session, username, PASSWORD, role, study_ids=study_ids
            )
            users[username] = user.id
        for name in READERS:
            users[name], readers[name] = make_reader(session, study_a, name)
            _grant(session, users[name], study_a)

        baseline = make_case(session, study_a, "301-0001", "BASELINE")
        _to_manual_qc(session, baseline)
        r1, r2 = qc.pass_case(session, baseline, actor="qc_a")
        reads.assign_read(session, r1, readers["alice"], actor="manager_a")
        reads.assign_read(session, r2, readers["bob"], actor="manager_a")
        for read_id, name in ((r1, "alice"), (r2, "bob")):
            reads.save_assessment(
                session, read_id, targets(30, 20), user_id=users[name]
            )
            reads.sign(session, read_id, user_id=users[name], password=PASSWORD)

        w8_case = make_case(session, study_a, "301-0001", "W8")
        _to_manual_qc(session, w8_case)
        other = make_case(
            session, study_b, "214-0001", "BASELINE", series=ONC_214_BASELINE
        )
        _to_manual_qc(session, other)
    return ReadingWorld(
        study_a=study_a,
        study_b=study_b,
        users=users,
        readers=readers,
        baseline_reads={"primary": r1, "secondary": r2},
        w8_case=w8_case,
        other_study_case=other,
    )


def pass_and_assign(
    sessions: sessionmaker[Session], world: ReadingWorld, case_id: int
) -> dict[str, int]:
    """Pass QC on a case (when still in QC) and give R1 to alice and R2 to bob."""
    with sessions.begin() as session:
        read_ids = [read.id for read in reads.case_reads(session, case_id)]
        if not read_ids:
            read_ids = qc.pass_case(session, case_id, actor="qc_a")
        r1, r2 = read_ids
        reads.assign_read(session, r1, world.readers["alice"], actor="manager_a")
        reads.assign_read(session, r2, world.readers["bob"], actor="manager_a")
    return {"primary": r1, "secondary": r2}
