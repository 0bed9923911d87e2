"""Read tasks: creation, assignment rules, RECIST 1.1 assessment, signing, adjudication.

R1 (`primary`) and R2 (`secondary`) are created when QC passes. Each reader records
an assessment, whose timepoint response is computed from the reader's own signed
earlier timepoints of the subject. Signing re-enters the password and records the
signer's name, UTC time and meaning (21 CFR 11.50), and locks the read. When both
primary reads are signed, the charter's discordance rule either finishes the case or
creates one adjudication task, whose reader chooses one assessment with a reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from core import audit, charter, lifecycle, readers, recist
from core.lifecycle import WorkflowError
from core.models import (
    Case,
    Exam,
    Instance,
    Read,
    Reader,
    Series,
    Study,
    Subject,
    Timepoint,
    User,
)

log = logging.getLogger(__name__)

PRIMARY_KINDS = ("primary", "secondary")
OPEN_READ_STATES = ("assigned", "in_progress")
READ_MEANING = "Reviewed and approved as the reader of this assessment"
ADJUDICATION_MEANING = "Reviewed and approved as the adjudicator of this case"


class SignatureError(WorkflowError):
    """The signer's identity or password could not be verified."""


class PasswordMismatch(SignatureError):
    """The password re-entered to sign does not match the signer's."""


@dataclass(frozen=True)
class SignResult:
    """A signed read and what signing it did to the case."""

    read_id: int
    case_state: str
    adjudication_read_id: int | None = None


def _document(session: Session, case: Case) -> dict[str, Any]:
    return charter.get_document(session, case.study_id, case.charter_version)


def _lock_read(session: Session, read_id: int) -> Read:
    read = session.scalar(select(Read).where(Read.id == read_id).with_for_update())
    if read is None:
        raise LookupError(f"read {read_id} not found")
    return read


def _due(document: dict[str, Any], step: str) -> datetime | None:
    hours = document["sla"].get(step)
    return None if hours is None else datetime.now(UTC) + timedelta(hours=hours)


def _create_read(
    session: Session, case: Case, kind: str, document: dict[str, Any], *, actor: str
) -> int:
    step = "adjudication_hours" if kind == "adjudication" else "read_hours"
    read = Read(
        case_id=case.id, kind=kind, state="unassigned", due_at=_due(document, step)
    )
    session.add(read)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="read.create",
        entity_type="read",
        entity_id=read.id,
        study_id=case.study_id,
        new={"case_id": case.id, "kind": kind, "state": "unassigned"},
    )
    return read.id


def create_for_design(
    session: Session, case: Case, document: dict[str, Any], *, actor: str
) -> list[int]:
    """Create the unassigned read tasks that the charter's read design requires."""
    kinds = ["primary"]
    if document["read_design"]["type"] == "double":
        kinds.append("secondary")
    return [_create_read(session, case, kind, document, actor=actor) for kind in kinds]


def has_current_training(
    session: Session, reader_id: int, study_id: int, criteria: str, today: date
) -> bool:
    """Return whether the reader has current training for the study's criteria.

    "Current" is the rule the assignment job uses (`core.readers`): trained on or
    before today, and the expiry date (the first day it no longer counts) is later.
    """
    return readers.is_qualified(session, reader_id, study_id, today, criteria)


def _require_training(session: Session, reader: Reader, case: Case) -> None:
    criteria = _document(session, case)["response_criteria"]
    today = datetime.now(UTC).date()
    if not has_current_training(session, reader.id, case.study_id, criteria, today):
        raise WorkflowError(
            f"reader {reader.id} has no current {criteria} training for study "
            f"{case.study_id}; record the training before assigning or signing"
        )


def _other_readers(session: Session, read: Read) -> dict[str, int]:
    """Return the reader of each other live read on the same case, by read kind."""
    rows = session.execute(
        select(Read.kind, Read.reader_id).where(
            Read.case_id == read.case_id,
            Read.id != read.id,
            Read.state != "cancelled",
            Read.reader_id.is_not(None),
        )
    )
    return {kind: reader_id for kind, reader_id in rows if reader_id is not None}


def _check_independence(session: Session, read: Read, reader_id: int) -> None:
    others = _other_readers(session, read)
    if read.kind in PRIMARY_KINDS:
        conflict = [
            k for k in PRIMARY_KINDS if k != read.kind and others.get(k) == reader_id
        ]
    else:
        conflict = [k for k in PRIMARY_KINDS if others.get(k) == reader_id]
    if conflict:
        raise WorkflowError(
            f"reader {reader_id} is already assigned the {conflict[0]} read of case "
            f"{read.case_id}; the {read.kind} read needs a different reader"
        )


def subject_readers(session: Session, case: Case) -> dict[str, int]:
    """Return the reader of each primary read kind on the subject's other cases.

    RECIST 1.1 is longitudinal, so the same R1 and R2 read every timepoint of a
    subject. The latest signed read of each kind wins when the pair has changed.
    """
    rows = session.execute(
        select(Read.kind, Read.reader_id)
        .join(Case, Case.id == Read.case_id)
        .where(
            Case.subject_id == case.subject_id,
            Case.id != case.id,
            Read.kind.in_(PRIMARY_KINDS),
            Read.state == "signed",
        )
        .order_by(Read.signed_at)
    )
    return {kind: reader_id for kind, reader_id in rows if reader_id is not None}


def _check_same_pair(
    session: Session, read: Read, case: Case, reader_id: int, reason: str | None
) -> None:
    """Reject a reader outside the subject's reader pair unless a reason is given."""
    if read.kind not in PRIMARY_KINDS or (reason or "").strip():
        return
    expected = subject_readers(session, case).get(read.kind)
    if expected is not None and expected != reader_id:
        raise WorkflowError(
            f"the subject's earlier {read.kind} reads are by reader {expected}; "
            f"give a reason to assign reader {reader_id} to read {read.id}"
        )


def assign_read(
    session: Session,
    read_id: int,
    reader_id: int,
    *,
    actor: str,
    reason: str | None = None,
) -> None:
    """Assign (or reassign, with a reason) a read to a trained, independent reader."""
    read = _lock_read(session, read_id)
    if read.state not in ("unassigned", *OPEN_READ_STATES):
        raise WorkflowError(f"read {read_id} is {read.state} and cannot be assigned")
    if read.reader_id is not None and not (reason or "").strip():
        raise WorkflowError(f"a reason is required to reassign read {read_id}")
    # Lock the new and the previous reader in id order. The assignment job locks
    # readers in the same order, so their waits on reader rows cannot form a cycle.
    locked = {
        row.id: row
        for row in session.scalars(
            select(Reader)
            .where(Reader.id.in_({reader_id, read.reader_id or reader_id}))
            .order_by(Reader.id)
            .with_for_update()
        )
    }
    reader = locked.get(reader_id)
    if reader is None or not reader.active:
        raise WorkflowError(f"reader {reader_id} not found or not active")
    case = lifecycle.lock_case(session, read.case_id)
    _require_case_state(case, read)
    _require_training(session, reader, case)
    _check_independence(session, read, reader_id)
    _check_same_pair(session, read, case, reader_id, reason)

    old = {"reader_id": read.reader_id, "state": read.state}
    if read.reader_id is not None:
        previous = locked.get(read.reader_id)
        if previous is not None:
            previous.open_reads = max(previous.open_reads - 1, 0)
    reader.open_reads += 1
    read.reader_id = reader_id
    read.state = "assigned"
    read.assigned_at = datetime.now(UTC)
    read.started_at = None
    audit.record(
        session,
        actor=actor,
        action="read.reassign" if old["reader_id"] else "read.assign",
        entity_type="read",
        entity_id=read.id,
        study_id=case.study_id,
        old=old,
        new={"reader_id": reader_id, "state": "assigned"},
        reason=reason,
    )


def _require_case_state(case: Case, read: Read) -> None:
    """Reject work on a read whose case is not at that read's step."""
    expected = "adjudication" if read.kind == "adjudication" else "reading"
    if case.state != expected:
        raise WorkflowError(
            f"case {case.id} is {case.state}; its {read.kind} read needs the case "
            f"in {expected}"
        )


def _reader_of_user(session: Session, read: Read, user_id: int) -> Reader:
    reader = session.get(Reader, read.reader_id) if read.reader_id else None
    if reader is None or reader.user_id != user_id:
        raise PermissionError(f"read {read.id} is not assigned to user {user_id}")
    return reader


def _case_order(session: Session, case: Case) -> tuple[int, int]:
    timepoint = session.get(Timepoint, case.timepoint_id)
    assert timepoint is not None
    return timepoint.ordinal, int(timepoint.is_baseline)


def earlier_sums(session: Session, read: Read, case: Case) -> list[float | None]:
    """Return the sums of diameters from the same read track's earlier timepoints.

    The track is the read kind (R1 or R2), because the same reader pair reads every
    timepoint of a subject. Baseline comes first, then the other visits in charter
    order. NOTE: an unscheduled visit sorts by its place in the charter's visit list,
    not by its scan date.
    """
    if _case_order(session, case)[1]:
        return []
    assessments = _earlier_track_assessments(session, read, case)
    if not assessments:
        track = read.kind if read.kind in PRIMARY_KINDS else "primary"
        raise WorkflowError(
            f"the subject's baseline {track} read is not signed yet; sign it before "
            f"assessing case {case.id}"
        )
    return [recist.sum_of_diameters(a.targets) for a in assessments]


def _earlier_track_assessments(
    session: Session, read: Read, case: Case
) -> list[recist.Assessment]:
    """Return the track's signed assessments before this case, baseline first.

    The list is empty when the track's baseline read is not signed yet.
    """
    ordinal, _ = _case_order(session, case)
    track = read.kind if read.kind in PRIMARY_KINDS else "primary"
    rows = session.execute(
        select(Read.assessment, Timepoint.is_baseline)
        .join(Case, Case.id == Read.case_id)
        .join(Timepoint, Timepoint.id == Case.timepoint_id)
        .where(
            Case.subject_id == case.subject_id,
            Case.id != case.id,
            Read.kind == track,
            Read.state == "signed",
            or_(Timepoint.is_baseline, Timepoint.ordinal < ordinal),
        )
        .order_by(Timepoint.is_baseline.desc(), Timepoint.ordinal)
    ).all()
    if not rows or not rows[0].is_baseline:
        return []
    return [recist.parse_assessment(row.assessment) for row in rows]


def track_history(session: Session, read: Read, case: Case) -> dict[str, Any]:
    """Return what a follow-up reader needs from the read track's earlier timepoints.

    That is the baseline target lesions (RECIST 1.1 follows the same lesions at
    every timepoint), whether non-target lesions were present at baseline, and the
    baseline sum and the nadir in mm. The result is empty
    at baseline, for adjudication reads and before the baseline read is signed.
    """
    if read.kind not in PRIMARY_KINDS or _case_order(session, case)[1]:
        return {}
    assessments = _earlier_track_assessments(session, read, case)
    if not assessments:
        return {}
    sums = [recist.sum_of_diameters(a.targets) for a in assessments]
    known = [value for value in sums if value is not None]
    return {
        "baseline_targets": [
            {"site": t.site, "is_node": t.is_node} for t in assessments[0].targets
        ],
        "baseline_non_target": assessments[0].non_target,
        "baseline_sum": sums[0],
        "nadir_sum": min(known) if known else None,
    }


def save_assessment(
    session: Session, read_id: int, data: dict[str, Any], *, user_id: int
) -> str | None:
    """Store a reader's RECIST 1.1 inputs and return the computed timepoint response."""
    read = _lock_read(session, read_id)
    if read.kind == "adjudication":
        raise WorkflowError(f"read {read_id} is an adjudication; use adjudicate()")
    if read.state not in OPEN_READ_STATES:
        raise WorkflowError(
            f"read {read_id} is {read.state}; only open reads can change"
        )
    reader = _reader_of_user(session, read, user_id)
    case = lifecycle.lock_case(session, read.case_id)
    _require_case_state(case, read)
    assessment = recist.parse_assessment(data)
    response = recist.timepoint_response(assessment, earlier_sums(session, read, case))

    old = {
        "state": read.state,
        "response": read.response,
        "assessment": read.assessment,
    }
    read.assessment = recist.assessment_to_dict(assessment)
    read.response = response
    read.state = "in_progress"
    read.started_at = read.started_at or datetime.now(UTC)
    audit.record(
        session,
        actor=_username(session, user_id),
        action="read.assessment",
        entity_type="read",
        entity_id=read.id,
        study_id=case.study_id,
        old=old,
        new={
            "state": "in_progress",
            "response": response,
            "assessment": read.assessment,
            "reader_id": reader.id,
        },
    )
    return response


def _username(session: Session, user_id: int) -> str:
    name = session.scalar(select(User.username).where(User.id == user_id))
    if name is None:
        raise LookupError(f"user {user_id} not found")
    return name


def _verify_signer(session: Session, user_id: int, password: str) -> User:
    """Return the signing user after checking the password they re-entered."""
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise SignatureError(f"user {user_id} not found or not active")
    if user.locked_until is not None and user.locked_until > datetime.now(UTC):
        raise SignatureError(
            f"user {user.username} is locked after repeated wrong passwords; "
            "try again after the lock ends"
        )
    if not check_password_hash(user.password_hash, password):
        raise PasswordMismatch(f"password does not match for user {user.username}")
    return user


def _apply_signature(
    session: Session, read: Read, case: Case, user: User, meaning: str
) -> None:
    reader = session.scalar(
        select(Reader).where(Reader.id == read.reader_id).with_for_update()
    )
    assert reader is not None
    now = datetime.now(UTC)
    read.state = "signed"
    read.signed_at = now
    read.signature_name = user.display_name or user.username
    read.signature_meaning = meaning
    reader.open_reads = max(reader.open_reads - 1, 0)
    audit.record(
        session,
        actor=user.username,
        action="read.sign",
        entity_type="read",
        entity_id=read.id,
        study_id=case.study_id,
        old={"state": "in_progress"},
        new={
            "state": "signed",
            "signature_name": read.signature_name,
            "signed_at": now.isoformat(),
            "meaning": meaning,
            "response": read.response,
        },
    )


def _prepare_signing(
    session: Session, read_id: int, user_id: int, password: str
) -> tuple[Read, Case, User]:
    """Run every check that signing needs before anything is written."""
    user = _verify_signer(session, user_id, password)
    read = _lock_read(session, read_id)
    if read.state != "in_progress" and read.kind != "adjudication":
        raise WorkflowError(
            f"read {read_id} is {read.state}; save an assessment before signing"
        )
    if read.state not in OPEN_READ_STATES:
        raise WorkflowError(f"read {read_id} is {read.state} and cannot be signed")
    reader = _reader_of_user(session, read, user_id)
    case = lifecycle.lock_case(session, read.case_id)
    _require_case_state(case, read)
    _require_training(session, reader, case)
    return read, case, user


def sign(
    session: Session,
    read_id: int,
    *,
    user_id: int,
    password: str,
    meaning: str = READ_MEANING,
) -> SignResult:
    """Sign and lock a primary or secondary read, then move the case on if it can."""
    read, case, user = _prepare_signing(session, read_id, user_id, password)
    if read.kind == "adjudication":
        raise WorkflowError(f"read {read_id} is an adjudication; use adjudicate()")
    _apply_signature(session, read, case, user, meaning)
    document = _document(session, case)
    return _after_primary_signed(session, read, case, document, actor=user.username)


def _after_primary_signed(
    session: Session, read: Read, case: Case, document: dict[str, Any], *, actor: str
) -> SignResult:
    if document["read_design"]["type"] == "single":
        lifecycle.transition(session, case, "done", actor=actor)
        return SignResult(read.id, "done")
    pair = {
        r.kind: r
        for r in session.scalars(
            select(Read).where(
                Read.case_id == case.id,
                Read.kind.in_(PRIMARY_KINDS),
                Read.state != "cancelled",
            )
        )
    }
    if any(
        pair.get(kind) is None or pair[kind].state != "signed" for kind in PRIMARY_KINDS
    ):
        return SignResult(read.id, case.state)
    discordant = is_discordant(session, document, pair["primary"], pair["secondary"])
    if not discordant or not document["read_design"].get("adjudication", True):
        lifecycle.transition(
            session, case, "done", actor=actor, details={"discordant": discordant}
        )
        return SignResult(read.id, "done")
    lifecycle.transition(
        session, case, "adjudication", actor=actor, details={"discordant": True}
    )
    adjudication_id = _create_read(session, case, "adjudication", document, actor=actor)
    return SignResult(read.id, "adjudication", adjudication_id)


def is_discordant(
    session: Session, document: dict[str, Any], first: Read, second: Read
) -> bool:
    """Apply the charter's discordance rule to two signed reads of one case."""
    rule = document["discordance"]
    if rule["rule"] == "progression":
        return (first.response == recist.PD) != (second.response == recist.PD)
    if rule["rule"] == "progression_date":
        first_date = _first_progression_date(session, first)
        second_date = _first_progression_date(session, second)
        if first_date is None or second_date is None:
            return (first_date is None) != (second_date is None)
        return abs((first_date - second_date).days) > int(rule["max_days"])
    return first.response != second.response


def _first_progression_date(session: Session, read: Read) -> date | None:
    """Return the scan date of the first timepoint at which this read track found PD."""
    case = session.get(Case, read.case_id)
    assert case is not None
    scan_date = func.coalesce(
        select(func.min(Instance.acquisition_date))
        .join(Series, Series.id == Instance.series_id)
        .join(Exam, Exam.id == Series.exam_id)
        .where(Exam.case_id == Case.id)
        .scalar_subquery(),
        func.date(Case.first_received_at),
    )
    return session.scalar(
        select(func.min(scan_date))
        .select_from(Read)
        .join(Case, Case.id == Read.case_id)
        .join(Timepoint, Timepoint.id == Case.timepoint_id)
        .where(
            Case.subject_id == case.subject_id,
            Read.kind == read.kind,
            Read.state == "signed",
            Read.response == recist.PD,
        )
    )


def adjudicate(
    session: Session,
    read_id: int,
    *,
    user_id: int,
    password: str,
    chosen_read_id: int,
    reason: str,
    meaning: str = ADJUDICATION_MEANING,
) -> SignResult:
    """Choose the R1 or R2 assessment with a reason, sign it and finish the case."""
    if not reason.strip():
        raise WorkflowError(f"a reason is required to adjudicate read {read_id}")

    read, case, user = _prepare_signing(session, read_id, user_id, password)
    if read.kind != "adjudication":
        raise WorkflowError(
            f"read {read_id} is a {read.kind} read, not an adjudication"
        )
    chosen = session.get(Read, chosen_read_id)
    if (
        chosen is None
        or chosen.case_id != case.id
        or chosen.kind not in PRIMARY_KINDS
        or chosen.state != "signed"
    ):
        raise WorkflowError(
            f"read {chosen_read_id} is not a signed primary or secondary read of "
            f"case {case.id}"
        )

    read.chosen_read_id = chosen.id
    read.assessment = {"chosen_kind": chosen.kind, "reason": reason}
    read.response = chosen.response
    _apply_signature(session, read, case, user, meaning)
    audit.record(
        session,
        actor=user.username,
        action="read.adjudicate",
        entity_type="read",
        entity_id=read.id,
        study_id=case.study_id,
        new={
            "chosen_read_id": chosen.id,
            "chosen_kind": chosen.kind,
            "response": chosen.response,
        },
        reason=reason,
    )
    lifecycle.transition(session, case, "done", actor=user.username)
    return SignResult(read.id, "done")


def worklist(session: Session, user_id: int) -> list[dict[str, Any]]:
    """Return the open reads of the user's reader record, blinded, in triage order.

    Rows carry the study, subject code, timepoint, kind and due time: never the
    treatment arm, another reader's work, or reads at other sites. The order is
    the triage order's first keys (urgent cases, then baseline timepoints), then
    the earliest due time. NOTE: it does not use the triage model's predicted
    slack, which is computed per case, not per read.
    """
    rows = session.execute(
        select(
            Read.id.label("read_id"),
            Read.kind,
            Read.state,
            Read.due_at,
            Read.response,
            Study.protocol_id,
            Subject.subject_code,
            Timepoint.code.label("timepoint"),
            Timepoint.is_baseline,
            Case.urgent,
        )
        .join(Reader, Reader.id == Read.reader_id)
        .join(Case, Case.id == Read.case_id)
        .join(Study, Study.id == Case.study_id)
        .join(Subject, Subject.id == Case.subject_id)
        .join(Timepoint, Timepoint.id == Case.timepoint_id)
        .where(Reader.user_id == user_id, Read.state.in_(OPEN_READ_STATES))
        .order_by(
            Case.urgent.desc(),
            Timepoint.is_baseline.desc(),
            Read.due_at.nulls_last(),
            Read.id,
        )
    ).mappings()
    return [dict(row) for row in rows]


def read_view(session: Session, read_id: int, *, user_id: int) -> dict[str, Any]:
    """Return what the assigned reader may see of a read.

    A primary or secondary reader gets only their own assessment. The adjudicator
    also gets both primary assessments, labelled "A" and "B", without reader names.
    """
    read = session.get(Read, read_id)
    if read is None:
        raise LookupError(f"read {read_id} not found")
    _reader_of_user(session, read, user_id)
    case = session.get(Case, read.case_id)
    assert case is not None
    subject = session.get(Subject, case.subject_id)
    timepoint = session.get(Timepoint, case.timepoint_id)
    view: dict[str, Any] = {
        "read_id": read.id,
        "kind": read.kind,
        "state": read.state,
        "subject_code": subject.subject_code if subject else None,
        "timepoint": timepoint.code if timepoint else None,
        "assessment": read.assessment,
        "response": read.response,
        "signature_name": read.signature_name,
        "signed_at": read.signed_at,
        "signature_meaning": read.signature_meaning,
        "history": track_history(session, read, case),
    }
    if read.kind == "adjudication":
        view["candidates"] = [
            {
                "label": "A" if r.kind == "primary" else "B",
                "read_id": r.id,
                "assessment": r.assessment,
                "response": r.response,
            }
            for r in session.scalars(
                select(Read)
                .where(
                    Read.case_id == case.id,
                    Read.kind.in_(PRIMARY_KINDS),
                    Read.state == "signed",
                )
                .order_by(Read.kind)
            )
        ]
    return view


def case_reads(session: Session, case_id: int) -> list[Read]:
    """Return the live reads of a case (for staff views and the demo, not readers)."""
    return list(
        session.scalars(
            select(Read)
            .where(Read.case_id == case_id, Read.state != "cancelled")
            .order_by(Read.id)
        )
    )
