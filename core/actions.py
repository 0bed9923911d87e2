"""Dashboard actions that change workflow data, each in one audited transaction.

Each action checks the user's role and study scope, then calls the domain module
that owns the rule (`core.assignment`, `core.alerts`) where there is one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import alerts, assignment, audit
from core.access import Scope
from core.models import Alert, Case, QuarantinedFile, Read
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


def _study_of_read(session: Session, scope: Scope, read_id: int) -> int:
    study_id = session.scalar(
        select(Case.study_id)
        .join(Read, Read.case_id == Case.id)
        .where(Read.id == read_id)
    )
    if study_id is None:
        raise ActionError(f"read {read_id} not found")
    scope.require_study(study_id)
    return study_id


def reassign_read(
    session: Session, scope: Scope, read_id: int, reader_id: int, reason: str
) -> Read:
    """Move an unsigned read to another reader with a reason, audited.

    The rules (current training, R1/R2/adjudicator independence, the subject's
    reader pair) and the locking are those of `core.assignment.reassign_read`.
    """
    scope.require_role(*MANAGER_ROLES)
    reason = _require_reason(reason)
    _study_of_read(session, scope, read_id)
    try:
        read = assignment.reassign_read(
            session,
            read_id,
            reader_id,
            actor=scope.username,
            reason=reason,
            now=datetime.now(UTC),
        )
    except assignment.AssignmentError as exc:
        raise ActionError(str(exc)) from None
    log.info(
        "Read %s reassigned to reader %s by %s", read_id, reader_id, scope.username
    )
    return read


def acknowledge_alert(session: Session, scope: Scope, alert_id: int) -> Alert:
    """Mark an SLA alert as seen by the user, audited.

    Raises ActionError when the alert is missing or already acknowledged.
    """
    scope.require_role(*MANAGER_ROLES)
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise ActionError(f"alert {alert_id} not found")
    case = session.get(Case, alert.case_id)
    assert case is not None  # alerts.case_id is a foreign key
    scope.require_study(case.study_id)
    try:
        alerts.acknowledge(
            session, alert_id, actor=scope.username, now=datetime.now(UTC)
        )
    except alerts.AlertError as exc:
        raise ActionError(str(exc)) from None
    session.refresh(alert)
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
