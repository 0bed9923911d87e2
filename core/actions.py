"""Dashboard actions that change workflow data, each in one audited transaction.

NOTE: the workflow, reader and alert modules are written alongside this one; when
they provide the same operations, these functions should call them instead.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.access import Scope
from core.models import Alert, Case, QuarantinedFile, Read, Reader, ReaderTraining
from core.quarantine import QUARANTINE_ROLES

log = logging.getLogger(__name__)

MANAGER_ROLES = ("admin", "study_manager")
HOLDABLE_STATES = ("received", "qc", "query", "reading", "adjudication")


class ActionError(ValueError):
    """The action is not allowed on the current data; the message says why."""


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise ActionError("a reason of at least 3 characters is required")
    return reason


def _case_in_scope(session: Session, scope: Scope, case_id: int) -> Case:
    case = session.get(Case, case_id, with_for_update=True)
    if case is None:
        raise ActionError(f"case {case_id} not found")
    scope.require_study(case.study_id)
    return case


def hold_case(session: Session, scope: Scope, case_id: int, reason: str) -> Case:
    """Put an open case on hold, auditing the old and new state."""
    scope.require_role(*MANAGER_ROLES)
    reason = _require_reason(reason)
    case = _case_in_scope(session, scope, case_id)
    if case.state not in HOLDABLE_STATES:
        raise ActionError(f"case {case_id} is {case.state} and cannot be put on hold")
    old_state = case.state
    case.state = "on_hold"
    case.state_changed_at = datetime.now(UTC)
    audit.record(
        session,
        actor=scope.username,
        action="case.hold",
        entity_type="case",
        entity_id=case.id,
        study_id=case.study_id,
        old={"state": old_state},
        new={"state": "on_hold"},
        reason=reason,
    )
    log.info("Case %s put on hold by %s", case.id, scope.username)
    return case


def _check_reader(session: Session, read: Read, case: Case, reader_id: int) -> None:
    reader = session.get(Reader, reader_id)
    if reader is None or not reader.active:
        raise ActionError(f"reader {reader_id} not found or inactive")
    trained = session.scalar(
        select(ReaderTraining.id).where(
            ReaderTraining.reader_id == reader_id,
            ReaderTraining.study_id == case.study_id,
        )
    )
    if trained is None:
        raise ActionError(f"reader {reader_id} has no training record for the study")
    # R1, R2 and the adjudicator of a case are different readers.
    others = session.scalars(
        select(Read.reader_id).where(
            Read.case_id == case.id, Read.id != read.id, Read.state != "cancelled"
        )
    ).all()
    if reader_id in others:
        raise ActionError(f"reader {reader_id} already has another read of this case")


def reassign_read(
    session: Session, scope: Scope, read_id: int, reader_id: int, reason: str
) -> Read:
    """Move an unsigned read to another trained reader, auditing old and new reader."""
    scope.require_role(*MANAGER_ROLES)
    reason = _require_reason(reason)
    read = session.get(Read, read_id, with_for_update=True)
    if read is None:
        raise ActionError(f"read {read_id} not found")
    case = _case_in_scope(session, scope, read.case_id)
    if read.state in ("signed", "cancelled"):
        raise ActionError(f"read {read_id} is {read.state} and cannot be reassigned")
    _check_reader(session, read, case, reader_id)
    old_reader = read.reader_id
    _move_open_read_count(session, old_reader, reader_id)
    read.reader_id = reader_id
    read.state = "assigned"
    read.assigned_at = datetime.now(UTC)
    audit.record(
        session,
        actor=scope.username,
        action="read.reassign",
        entity_type="read",
        entity_id=read.id,
        study_id=case.study_id,
        old={"reader_id": old_reader},
        new={"reader_id": reader_id},
        reason=reason,
    )
    return read


def _move_open_read_count(session: Session, old: int | None, new: int) -> None:
    if old is not None:
        old_reader = session.get(Reader, old, with_for_update=True)
        if old_reader is not None and old_reader.open_reads > 0:
            old_reader.open_reads -= 1
    new_reader = session.get(Reader, new, with_for_update=True)
    if new_reader is not None:
        new_reader.open_reads += 1


def acknowledge_alert(session: Session, scope: Scope, alert_id: int) -> Alert:
    """Mark an SLA alert as seen by the user; a second acknowledgement is an error."""
    scope.require_role(*MANAGER_ROLES)
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise ActionError(f"alert {alert_id} not found")
    case = _case_in_scope(session, scope, alert.case_id)
    if alert.acknowledged_at is not None:
        raise ActionError(f"alert {alert_id} was already acknowledged")
    alert.acknowledged_at = datetime.now(UTC)
    alert.acknowledged_by = scope.username
    audit.record(
        session,
        actor=scope.username,
        action="alert.acknowledge",
        entity_type="alert",
        entity_id=alert.id,
        study_id=case.study_id,
        new={"acknowledged_by": scope.username},
    )
    return alert


def release_quarantined(
    session: Session, scope: Scope, file_id: int, reason: str
) -> QuarantinedFile:
    """Mark a quarantined file as released so ingest may take it again.

    NOTE: this records the release only; moving the file back into the drop folder
    belongs to the ingest module.
    """
    scope.require_role(*[role for role in QUARANTINE_ROLES if role != "leadership"])
    reason = _require_reason(reason)
    row = session.get(QuarantinedFile, file_id, with_for_update=True)
    if row is None:
        raise ActionError(f"quarantined file {file_id} not found")
    if row.released_at is not None:
        raise ActionError(f"quarantined file {file_id} was already released")
    row.released_at = datetime.now(UTC)
    row.released_by = scope.username
    audit.record(
        session,
        actor=scope.username,
        action="quarantine.release",
        entity_type="quarantined_file",
        entity_id=row.id,
        new={"released_by": scope.username},
        reason=reason,
    )
    return row
