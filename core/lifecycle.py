"""The case state machine: only the allowed transitions, each with its audit row.

received -> qc -> (query -> received) -> reading -> (adjudication) -> done, and any
open state -> on_hold or cancelled. `transition` checks before it writes and raises
`TransitionError` on a rejected change. Callers run it inside their transaction,
which rolls back on the error, so no partial change is kept.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import audit
from core.models import AuditEntry, Case, Read, Reader

log = logging.getLogger(__name__)

ALLOWED = {
    "received": {"qc", "on_hold", "cancelled"},
    "qc": {"query", "reading", "on_hold", "cancelled"},
    "query": {"received", "on_hold", "cancelled"},
    "reading": {"adjudication", "done", "on_hold", "cancelled"},
    "adjudication": {"done", "on_hold", "cancelled"},
    "on_hold": {"received", "qc", "query", "reading", "adjudication", "cancelled"},
    "done": set(),
    "cancelled": set(),
}
# Holding or cancelling a case is a manual decision that needs a written reason.
REASON_REQUIRED = {"on_hold", "cancelled"}


class WorkflowError(ValueError):
    """A workflow action that is not allowed; the message names the record and why."""


class TransitionError(WorkflowError):
    """A case state change that the lifecycle does not allow."""


def lock_case(session: Session, case_id: int) -> Case:
    """Return the case row locked for update, raising LookupError when missing."""
    case = session.scalar(select(Case).where(Case.id == case_id).with_for_update())
    if case is None:
        raise LookupError(f"case {case_id} not found")
    return case


def check_transition(case: Case, to_state: str, reason: str | None) -> None:
    """Raise TransitionError unless the case may move to `to_state`."""
    if to_state not in ALLOWED.get(case.state, set()):
        raise TransitionError(
            f"case {case.id} cannot move from {case.state} to {to_state}; "
            f"allowed from {case.state}: {sorted(ALLOWED[case.state]) or 'none'}"
        )
    if to_state in REASON_REQUIRED and not (reason or "").strip():
        raise TransitionError(
            f"a reason is required to move case {case.id} to {to_state}"
        )


def transition(
    session: Session,
    case: Case,
    to_state: str,
    *,
    actor: str,
    reason: str | None = None,
    details: dict[str, object] | None = None,
) -> None:
    """Move a locked case to `to_state` and write the audit row for it."""
    check_transition(case, to_state, reason)
    _check_reads_signed(session, case, to_state)
    old_state = case.state
    now = datetime.now(UTC)
    case.state = to_state
    case.state_changed_at = now
    if to_state == "done":
        case.completed_at = now
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="case.state",
        entity_type="case",
        entity_id=case.id,
        study_id=case.study_id,
        old={"state": old_state},
        new={"state": to_state, **(details or {})},
        reason=reason,
    )
    log.info("Case %s moved from %s to %s", case.id, old_state, to_state)


def _check_reads_signed(session: Session, case: Case, to_state: str) -> None:
    """Reject adjudication before R1 and R2 are signed, and done with reads open."""
    if to_state not in ("adjudication", "done") or case.state == "on_hold":
        return
    states = dict(
        session.execute(
            select(Read.kind, Read.state).where(
                Read.case_id == case.id,
                Read.kind.in_(("primary", "secondary", "adjudication")),
                Read.state != "cancelled",
            )
        ).all()
    )
    if to_state == "adjudication":
        unsigned = [k for k in ("primary", "secondary") if states.get(k) != "signed"]
    else:
        unsigned = [k for k, state in states.items() if state != "signed"]
    if unsigned:
        raise TransitionError(
            f"case {case.id} cannot move to {to_state}: its {', '.join(unsigned)} "
            "read is not signed"
        )


def hold(session: Session, case_id: int, *, actor: str, reason: str) -> None:
    """Put an open case on hold, remembering its state for `resume`."""
    case = lock_case(session, case_id)
    transition(
        session,
        case,
        "on_hold",
        actor=actor,
        reason=reason,
        details={"held_from": case.state},
    )


def resume(
    session: Session, case_id: int, *, actor: str, reason: str | None = None
) -> str:
    """Return a held case to the state it was held from, and return that state."""
    case = lock_case(session, case_id)
    if case.state != "on_hold":
        raise TransitionError(f"case {case_id} is {case.state}, not on_hold")
    held_from = _held_from(session, case_id)
    transition(session, case, held_from, actor=actor, reason=reason)
    return held_from


def cancel(session: Session, case_id: int, *, actor: str, reason: str) -> None:
    """Cancel an open case and its unsigned reads, releasing the readers' load."""
    # Read work locks the read and then its case, so the reads are locked first
    # here too. The opposite order could deadlock with a reader signing.
    _lock_open_reads(session, case_id)
    case = lock_case(session, case_id)
    transition(session, case, "cancelled", actor=actor, reason=reason)
    # Again after the case lock, for reads that QC created in the meantime.
    for read in _lock_open_reads(session, case_id):
        _cancel_read(session, case, read, actor=actor, reason=reason)


def _lock_open_reads(session: Session, case_id: int) -> list[Read]:
    return list(
        session.scalars(
            select(Read)
            .where(Read.case_id == case_id, Read.state.not_in(("signed", "cancelled")))
            .order_by(Read.id)
            .with_for_update()
        )
    )


def _cancel_read(
    session: Session, case: Case, read: Read, *, actor: str, reason: str
) -> None:
    if read.reader_id is not None and read.state != "unassigned":
        session.execute(
            update(Reader)
            .where(Reader.id == read.reader_id, Reader.open_reads > 0)
            .values(open_reads=Reader.open_reads - 1)
        )
    old_state = read.state
    read.state = "cancelled"
    audit.record(
        session,
        actor=actor,
        action="read.cancel",
        entity_type="read",
        entity_id=read.id,
        study_id=case.study_id,
        old={"state": old_state},
        new={"state": "cancelled"},
        reason=reason,
    )


def _held_from(session: Session, case_id: int) -> str:
    new_values = session.scalar(
        select(AuditEntry.new_values)
        .where(
            AuditEntry.entity_type == "case",
            AuditEntry.entity_id == str(case_id),
            AuditEntry.action == "case.state",
            AuditEntry.new_values["state"].astext == "on_hold",
        )
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )
    if not new_values or "held_from" not in new_values:
        raise TransitionError(f"case {case_id} has no recorded state to resume")
    return str(new_values["held_from"])
