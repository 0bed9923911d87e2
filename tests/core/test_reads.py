from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from core import charter, lifecycle, qc, reads
from core.lifecycle import WorkflowError
from core.models import Case, Read, Reader
from core.reads import SignatureError
from tests.core.workflow_data import (
    CHARTERS,
    PASSWORD,
    audit_count,
    load_charter,
    make_case,
    make_reader,
    targets,
)

EXPIRE_TRAINING = text(
    "UPDATE reader_trainings SET expires_on = current_date - 1 "
    "WHERE reader_id = :reader_id"
)


@dataclass
class Team:
    study_id: int
    users: dict[str, int]
    readers: dict[str, int]


@pytest.fixture
def team(sessions: sessionmaker[Session]) -> Team:
    users: dict[str, int] = {}
    readers: dict[str, int] = {}
    with sessions.begin() as session:
        study_id = load_charter(session)
        for name in ("alice", "bob", "carol"):
            users[name], readers[name] = make_reader(session, study_id, name)
        users["dave"], readers["dave"] = make_reader(
            session, study_id, "dave", trained=False
        )
        users["erin"], readers["erin"] = make_reader(
            session, study_id, "erin", expires_on=date.today()
        )
    return Team(study_id, users, readers)


def _to_reading(
    sessions: sessionmaker[Session], team: Team, timepoint: str = "BASELINE"
) -> tuple[int, dict[str, int]]:
    """Create a case, pass QC and return (case id, read id by kind)."""
    with sessions.begin() as session:
        case_id = make_case(session, team.study_id, "301-0001", timepoint)
        case = lifecycle.lock_case(session, case_id)
        lifecycle.transition(session, case, "qc", actor="system:auto-qc")
        qc.pass_case(session, case_id, actor="qc.anna")
        kinds = {r.kind: r.id for r in reads.case_reads(session, case_id)}
    return case_id, kinds


def _read_pair(
    sessions: sessionmaker[Session], team: Team, timepoint: str = "BASELINE"
) -> tuple[int, dict[str, int]]:
    case_id, kinds = _to_reading(sessions, team, timepoint)
    with sessions.begin() as session:
        reads.assign_read(
            session, kinds["primary"], team.readers["alice"], actor="lead"
        )
        reads.assign_read(
            session, kinds["secondary"], team.readers["bob"], actor="lead"
        )
    return case_id, kinds


def _assess_and_sign(
    sessions: sessionmaker[Session],
    team: Team,
    read_id: int,
    user: str,
    data: dict[str, object],
) -> reads.SignResult:
    with sessions.begin() as session:
        reads.save_assessment(session, read_id, data, user_id=team.users[user])
    with sessions.begin() as session:
        return reads.sign(session, read_id, user_id=team.users[user], password=PASSWORD)


def _case(sessions: sessionmaker[Session], case_id: int) -> Case:
    with sessions() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case


def test_untrained_reader_rejected(sessions: sessionmaker[Session], team: Team) -> None:
    _, kinds = _to_reading(sessions, team)
    for name in ("dave", "erin"):
        with pytest.raises(WorkflowError, match="no current RECIST 1.1 training"):
            with sessions.begin() as session:
                reads.assign_read(
                    session, kinds["primary"], team.readers[name], actor="lead"
                )
    with sessions() as session:
        read = session.get(Read, kinds["primary"])
        assert read is not None
        assert read.reader_id is None


def test_same_reader_for_r1_and_r2_rejected(
    sessions: sessionmaker[Session], team: Team
) -> None:
    _, kinds = _to_reading(sessions, team)
    with sessions.begin() as session:
        reads.assign_read(
            session, kinds["primary"], team.readers["alice"], actor="lead"
        )
    with pytest.raises(WorkflowError, match="needs a different reader"):
        with sessions.begin() as session:
            reads.assign_read(
                session, kinds["secondary"], team.readers["alice"], actor="lead"
            )


def test_reassign_needs_reason_and_moves_load(
    sessions: sessionmaker[Session], team: Team
) -> None:
    _, kinds = _to_reading(sessions, team)
    with sessions.begin() as session:
        reads.assign_read(
            session, kinds["primary"], team.readers["alice"], actor="lead"
        )
    with pytest.raises(WorkflowError, match="reason is required to reassign"):
        with sessions.begin() as session:
            reads.assign_read(
                session, kinds["primary"], team.readers["carol"], actor="lead"
            )
    with sessions.begin() as session:
        reads.assign_read(
            session,
            kinds["primary"],
            team.readers["carol"],
            actor="lead",
            reason="alice is on leave",
        )
    with sessions() as session:
        load = dict(session.execute(select(Reader.name, Reader.open_reads)).all())
    assert load["Dr Alice"] == 0
    assert load["Dr Carol"] == 1


def test_wrong_password_does_not_sign(
    sessions: sessionmaker[Session], team: Team
) -> None:
    _, kinds = _read_pair(sessions, team)
    with sessions.begin() as session:
        reads.save_assessment(
            session, kinds["primary"], targets(30, 20), user_id=team.users["alice"]
        )
    with sessions() as session:
        before = audit_count(session)
    with pytest.raises(SignatureError, match="password does not match"):
        with sessions.begin() as session:
            reads.sign(
                session, kinds["primary"], user_id=team.users["alice"], password="x"
            )
    with sessions() as session:
        read = session.get(Read, kinds["primary"])
        assert read is not None
        assert read.state == "in_progress"
        assert audit_count(session) == before


def test_other_reader_cannot_save(sessions: sessionmaker[Session], team: Team) -> None:
    _, kinds = _read_pair(sessions, team)
    with pytest.raises(PermissionError, match="not assigned to user"):
        with sessions.begin() as session:
            reads.save_assessment(
                session, kinds["primary"], targets(30), user_id=team.users["bob"]
            )


def test_signature_records_name_time_meaning(
    sessions: sessionmaker[Session], team: Team
) -> None:
    case_id, kinds = _read_pair(sessions, team)
    result = _assess_and_sign(sessions, team, kinds["primary"], "alice", targets(30))
    with sessions() as session:
        read = session.get(Read, kinds["primary"])
    assert read is not None
    assert read.state == "signed"
    assert read.signature_name == "Dr Alice"
    assert read.signature_meaning == reads.READ_MEANING
    assert read.signed_at is not None
    assert datetime.now(UTC) - read.signed_at < timedelta(minutes=5)
    assert result.case_state == "reading"
    with pytest.raises(WorkflowError, match="signed; only open reads can change"):
        with sessions.begin() as session:
            reads.save_assessment(
                session, kinds["primary"], targets(10), user_id=team.users["alice"]
            )


def test_concordant_pair_finishes_case(
    sessions: sessionmaker[Session], team: Team
) -> None:
    case_id, kinds = _read_pair(sessions, team)
    _assess_and_sign(sessions, team, kinds["primary"], "alice", targets(30))
    result = _assess_and_sign(sessions, team, kinds["secondary"], "bob", targets(31))
    case = _case(sessions, case_id)
    assert result.case_state == "done"
    assert result.adjudication_read_id is None
    assert case.state == "done"
    assert case.completed_at is not None


def _baseline_done(sessions: sessionmaker[Session], team: Team) -> None:
    _, kinds = _read_pair(sessions, team)
    _assess_and_sign(sessions, team, kinds["primary"], "alice", targets(30, 20))
    _assess_and_sign(sessions, team, kinds["secondary"], "bob", targets(30, 20))


def test_discordant_pair_creates_one_adjudication(
    sessions: sessionmaker[Session], team: Team
) -> None:
    _baseline_done(sessions, team)
    case_id, kinds = _read_pair(sessions, team, "W8")
    # Alice: 50 -> 30 is -40%, PR. Bob: 50 -> 45 is -10%, SD.
    _assess_and_sign(sessions, team, kinds["primary"], "alice", targets(18, 12))
    result = _assess_and_sign(
        sessions, team, kinds["secondary"], "bob", targets(27, 18)
    )
    with sessions() as session:
        adjudications = session.scalars(
            select(Read).where(Read.case_id == case_id, Read.kind == "adjudication")
        ).all()
        responses = {r.kind: r.response for r in reads.case_reads(session, case_id)}
    assert responses["primary"] == "PR"
    assert responses["secondary"] == "SD"
    assert result.case_state == "adjudication"
    assert len(adjudications) == 1
    assert adjudications[0].id == result.adjudication_read_id
    assert adjudications[0].state == "unassigned"
    assert _case(sessions, case_id).state == "adjudication"


def test_adjudicator_must_be_third_reader(
    sessions: sessionmaker[Session], team: Team
) -> None:
    _baseline_done(sessions, team)
    _, kinds = _read_pair(sessions, team, "W8")
    _assess_and_sign(sessions, team, kinds["primary"], "alice", targets(18, 12))
    result = _assess_and_sign(
        sessions, team, kinds["secondary"], "bob", targets(27, 18)
    )
    adjudication_id = result.adjudication_read_id
    assert adjudication_id is not None
    for name in ("alice", "bob"):
        with pytest.raises(WorkflowError, match="needs a different reader"):
            with sessions.begin() as session:
                reads.assign_read(
                    session, adjudication_id, team.readers[name], actor="lead"
                )


def test_adjudication_chooses_and_finishes(
    sessions: sessionmaker[Session], team: Team
) -> None:
    _baseline_done(sessions, team)
    case_id, kinds = _read_pair(sessions, team, "W8")
    _assess_and_sign(sessions, team, kinds["primary"], "alice", targets(18, 12))
    result = _assess_and_sign(
        sessions, team, kinds["secondary"], "bob", targets(27, 18)
    )
    adjudication_id = result.adjudication_read_id
    assert adjudication_id is not None
    with sessions.begin() as session:
        reads.assign_read(session, adjudication_id, team.readers["carol"], actor="lead")
    with sessions() as session:
        view = reads.read_view(session, adjudication_id, user_id=team.users["carol"])
    assert [c["label"] for c in view["candidates"]] == ["A", "B"]
    assert [c["response"] for c in view["candidates"]] == ["PR", "SD"]
    assert "Dr Alice" not in str(view)
    with pytest.raises(WorkflowError, match="reason is required"):
        with sessions.begin() as session:
            reads.adjudicate(
                session,
                adjudication_id,
                user_id=team.users["carol"],
                password=PASSWORD,
                chosen_read_id=kinds["primary"],
                reason="",
            )
    with sessions.begin() as session:
        done = reads.adjudicate(
            session,
            adjudication_id,
            user_id=team.users["carol"],
            password=PASSWORD,
            chosen_read_id=kinds["primary"],
            reason="R2 missed the shrinkage of lesion 2",
        )
    with sessions() as session:
        read = session.get(Read, adjudication_id)
    assert done.case_state == "done"
    assert read is not None
    assert read.chosen_read_id == kinds["primary"]
    assert read.response == "PR"
    assert read.signature_name == "Dr Carol"
    assert _case(sessions, case_id).state == "done"


def test_reader_view_is_blinded(sessions: sessionmaker[Session], team: Team) -> None:
    _, kinds = _read_pair(sessions, team)
    _assess_and_sign(sessions, team, kinds["secondary"], "bob", targets(44))
    with sessions() as session:
        view = reads.read_view(session, kinds["primary"], user_id=team.users["alice"])
        worklist = reads.worklist(session, team.users["alice"])
    assert view["assessment"] is None
    assert "candidates" not in view
    assert "44" not in str(view)
    assert [row["read_id"] for row in worklist] == [kinds["primary"]]
    assert "treatment_arm" not in worklist[0]
    assert "B" not in worklist[0].values()


def test_follow_up_needs_signed_baseline(
    sessions: sessionmaker[Session], team: Team
) -> None:
    _, kinds = _read_pair(sessions, team, "W8")
    with pytest.raises(WorkflowError, match="baseline primary read is not signed"):
        with sessions.begin() as session:
            reads.save_assessment(
                session, kinds["primary"], targets(30), user_id=team.users["alice"]
            )


def test_response_uses_own_nadir(sessions: sessionmaker[Session], team: Team) -> None:
    _baseline_done(sessions, team)
    _, week8 = _read_pair(sessions, team, "W8")
    _assess_and_sign(sessions, team, week8["primary"], "alice", targets(10, 10))
    _assess_and_sign(sessions, team, week8["secondary"], "bob", targets(10, 10))
    _, week16 = _read_pair(sessions, team, "W16")
    with sessions.begin() as session:
        # 26 is 48% below baseline 50 but +30% and +6 mm over the nadir 20.
        response = reads.save_assessment(
            session, week16["primary"], targets(16, 10), user_id=team.users["alice"]
        )
    assert response == "PD"


def test_read_on_case_in_query_rejected(
    sessions: sessionmaker[Session], team: Team
) -> None:
    case_id, kinds = _to_reading(sessions, team)
    with sessions.begin() as session:
        reads.assign_read(
            session, kinds["primary"], team.readers["alice"], actor="lead"
        )
        lifecycle.hold(session, case_id, actor="lead", reason="QC finding reopened")
    with pytest.raises(WorkflowError, match="is on_hold; its primary read needs"):
        with sessions.begin() as session:
            reads.save_assessment(
                session, kinds["primary"], targets(30), user_id=team.users["alice"]
            )


def test_expired_training_blocks_signing(
    sessions: sessionmaker[Session], team: Team
) -> None:
    _, kinds = _read_pair(sessions, team)
    with sessions.begin() as session:
        reads.save_assessment(
            session, kinds["primary"], targets(30), user_id=team.users["alice"]
        )
        session.execute(EXPIRE_TRAINING, {"reader_id": team.readers["alice"]})
    with pytest.raises(WorkflowError, match="no current RECIST 1.1 training"):
        with sessions.begin() as session:
            reads.sign(
                session,
                kinds["primary"],
                user_id=team.users["alice"],
                password=PASSWORD,
            )


def test_failed_qc_case_gets_no_reads(
    sessions: sessionmaker[Session], team: Team
) -> None:
    with sessions.begin() as session:
        case_id = make_case(session, team.study_id, "301-0001")
        case = lifecycle.lock_case(session, case_id)
        lifecycle.transition(session, case, "qc", actor="system:auto-qc")
        qc.fail_case(session, case_id, actor="qc.anna", reason_code="missing_series")
    with pytest.raises(lifecycle.TransitionError, match="from query to reading"):
        with sessions.begin() as session:
            qc.pass_case(session, case_id, actor="qc.anna")
    with sessions() as session:
        assert reads.case_reads(session, case_id) == []


def test_subject_keeps_reader_pair(sessions: sessionmaker[Session], team: Team) -> None:
    _baseline_done(sessions, team)
    _, kinds = _to_reading(sessions, team, "W8")
    with pytest.raises(WorkflowError, match="earlier primary reads are by reader"):
        with sessions.begin() as session:
            reads.assign_read(
                session, kinds["primary"], team.readers["carol"], actor="lead"
            )
    with sessions.begin() as session:
        reads.assign_read(
            session,
            kinds["primary"],
            team.readers["carol"],
            actor="lead",
            reason="alice left the reader panel",
        )
    with sessions() as session:
        read = session.get(Read, kinds["primary"])
        assert read is not None
        assert read.reader_id == team.readers["carol"]


def test_cancel_releases_open_reads(
    sessions: sessionmaker[Session], team: Team
) -> None:
    case_id, kinds = _read_pair(sessions, team)
    with sessions.begin() as session:
        lifecycle.cancel(session, case_id, actor="lead", reason="subject withdrew")
    with sessions() as session:
        states = {r.kind: r.state for r in session.scalars(select(Read))}
        load = dict(session.execute(select(Reader.name, Reader.open_reads)).all())
    assert states == {"primary": "cancelled", "secondary": "cancelled"}
    assert load["Dr Alice"] == 0
    assert load["Dr Bob"] == 0


def _load_rule(sessions: sessionmaker[Session], rule: str) -> None:
    source = (CHARTERS / "ONC-301.yaml").read_text()
    changed = source.replace("discordance: {rule: response}", rule)
    assert changed != source
    with sessions.begin() as session:
        charter.load(
            session, "ONC-301", changed, actor="lead", reason="discordance amendment"
        )


def test_progression_rule_ignores_pr_sd(
    sessions: sessionmaker[Session], team: Team
) -> None:
    _load_rule(sessions, "discordance: {rule: progression}")
    _baseline_done(sessions, team)
    case_id, kinds = _read_pair(sessions, team, "W8")
    _assess_and_sign(sessions, team, kinds["primary"], "alice", targets(18, 12))
    result = _assess_and_sign(
        sessions, team, kinds["secondary"], "bob", targets(27, 18)
    )
    assert result.case_state == "done"
    assert _case(sessions, case_id).state == "done"


def test_progression_date_rule(sessions: sessionmaker[Session], team: Team) -> None:
    _load_rule(sessions, "discordance: {rule: progression_date, max_days: 28}")
    _baseline_done(sessions, team)
    # Alice calls PD at week 8 (50 -> 70 mm); Bob sees SD.
    _, week8 = _read_pair(sessions, team, "W8")
    _assess_and_sign(sessions, team, week8["primary"], "alice", targets(40, 30))
    result = _assess_and_sign(
        sessions, team, week8["secondary"], "bob", targets(30, 22)
    )
    assert result.case_state == "adjudication"


def test_progression_same_date_concordant(
    sessions: sessionmaker[Session], team: Team
) -> None:
    _load_rule(sessions, "discordance: {rule: progression_date, max_days: 28}")
    _baseline_done(sessions, team)
    # Both call PD at week 8, with different sums: the progression dates match.
    _, week8 = _read_pair(sessions, team, "W8")
    _assess_and_sign(sessions, team, week8["primary"], "alice", targets(40, 30))
    result = _assess_and_sign(
        sessions, team, week8["secondary"], "bob", targets(45, 30)
    )
    assert result.case_state == "done"


def test_worklist_in_triage_order(sessions: sessionmaker[Session], team: Team) -> None:
    now = datetime.now(UTC)
    plan = [
        ("301-0001", "W8", False, 1),
        ("301-0002", "BASELINE", False, 5),
        ("301-0003", "W8", True, 9),
    ]
    read_ids = []
    with sessions.begin() as session:
        for subject, timepoint, urgent, due_hours in plan:
            case_id = make_case(session, team.study_id, subject, timepoint)
            case = lifecycle.lock_case(session, case_id)
            case.urgent = urgent
            lifecycle.transition(session, case, "qc", actor="system:auto-qc")
            read_id = qc.pass_case(session, case_id, actor="qc.anna")[0]
            reads.assign_read(session, read_id, team.readers["alice"], actor="lead")
            read = session.get(Read, read_id)
            assert read is not None
            read.due_at = now + timedelta(hours=due_hours)
            read_ids.append(read_id)
    with sessions() as session:
        worklist = reads.worklist(session, team.users["alice"])
    # Urgent first, then baseline, then the earliest due time.
    assert [row["read_id"] for row in worklist] == [
        read_ids[2],
        read_ids[1],
        read_ids[0],
    ]
