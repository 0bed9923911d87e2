"""Append-only audit trail with a hash chain (21 CFR Part 11 section 11.10(e)).

Every change to workflow data calls `record` inside the transaction that makes the
change, so the change and its audit row commit or roll back together. Each row stores
the SHA-256 of its own content and of the previous row's hash; editing or deleting
any row breaks the chain at that row, which `verify_chain` reports.

The database refuses UPDATE and DELETE on `audit_log` through a trigger installed by
the initial migration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session, SessionTransaction

from core.models import AuditEntry

GENESIS_HASH = "0" * 64

# Serialises writers of the chain; held until the writing transaction ends.
_AUDIT_LOCK_KEY = 7_310_221


def _normalise(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Round-trip through JSON so the hashed form equals what JSONB gives back."""
    if values is None:
        return None
    result: dict[str, Any] = json.loads(json.dumps(dict(values), default=str))
    return result


def _canonical(entry: Mapping[str, Any]) -> bytes:
    return json.dumps(
        entry, sort_keys=True, separators=(",", ":"), default=str
    ).encode()


def compute_hash(
    *,
    prev_hash: str,
    at: datetime,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    study_id: int | None,
    old_values: Mapping[str, Any] | None,
    new_values: Mapping[str, Any] | None,
    reason: str | None,
) -> str:
    """Return the SHA-256 of a row's content chained to the previous row's hash."""
    content = {
        "prev": prev_hash,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "study_id": study_id,
        "old": old_values,
        "new": new_values,
        "reason": reason,
    }
    return hashlib.sha256(_canonical(content)).hexdigest()


_TAIL_KEY = "imagingops.audit_chain_tail"


@event.listens_for(Session, "after_transaction_end")
def _forget_chain_tail(session: Session, transaction: SessionTransaction) -> None:
    # Any transaction end, a savepoint's included, may have rolled back audit rows
    # or released the lock, so the next row reads the tail from the table again.
    session.info.pop(_TAIL_KEY, None)


def _lock_chain_tail(session: Session) -> str:
    """Take the chain's lock for this transaction and return the last row's hash.

    Within one transaction the lock is held and no other writer can append, so after
    the first row the tail is kept in the session instead of read again.
    """
    cached = session.info.get(_TAIL_KEY)
    if cached is not None:
        return str(cached)
    session.execute(
        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK_KEY}
    )
    prev = session.scalar(
        select(AuditEntry.row_hash).order_by(AuditEntry.id.desc()).limit(1)
    )
    return prev or GENESIS_HASH


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: object,
    study_id: int | None = None,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEntry:
    """Append one audit row in the caller's transaction and return it."""
    prev_hash = _lock_chain_tail(session)
    at = datetime.now(UTC)
    old_values = _normalise(old)
    new_values = _normalise(new)
    row_hash = compute_hash(
        prev_hash=prev_hash,
        at=at,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        study_id=study_id,
        old_values=old_values,
        new_values=new_values,
        reason=reason,
    )
    entry = AuditEntry(
        at=at,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        study_id=study_id,
        old_values=old_values,
        new_values=new_values,
        reason=reason,
        prev_hash=prev_hash,
        row_hash=row_hash,
    )
    session.add(entry)
    session.flush()
    session.info[_TAIL_KEY] = row_hash
    return entry


_INSERT_MANY_SQL = """
INSERT INTO audit_log (at, actor, action, entity_type, entity_id, study_id,
                       old_values, new_values, reason, prev_hash, row_hash)
SELECT :at, actor, action, entity_type, entity_id, study_id,
       CAST(old_values AS jsonb), CAST(new_values AS jsonb), reason, prev_hash,
       row_hash
FROM unnest(CAST(:actor AS text[]), CAST(:action AS text[]),
            CAST(:entity_type AS text[]), CAST(:entity_id AS text[]),
            CAST(:study_id AS integer[]), CAST(:old_values AS text[]),
            CAST(:new_values AS text[]), CAST(:reason AS text[]),
            CAST(:prev_hash AS text[]), CAST(:row_hash AS text[]))
     WITH ORDINALITY
     AS u(actor, action, entity_type, entity_id, study_id, old_values, new_values,
          reason, prev_hash, row_hash, position)
ORDER BY position
"""


def record_many(session: Session, entries: Sequence[Mapping[str, Any]]) -> int:
    """Append many audit rows in the caller's transaction with one INSERT.

    Each entry takes the keyword arguments of `record`. The rows chain in list order
    and take ids in that order, exactly as the same `record` calls would, so
    `verify_chain` accepts them.
    """
    if not entries:
        return 0
    prev_hash = _lock_chain_tail(session)
    at = datetime.now(UTC)
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "actor",
            "action",
            "entity_type",
            "entity_id",
            "study_id",
            "old_values",
            "new_values",
            "reason",
            "prev_hash",
            "row_hash",
        )
    }
    for entry in entries:
        row = {
            "actor": entry["actor"],
            "action": entry["action"],
            "entity_type": entry["entity_type"],
            "entity_id": str(entry["entity_id"]),
            "study_id": entry.get("study_id"),
            "old_values": _normalise(entry.get("old")),
            "new_values": _normalise(entry.get("new")),
            "reason": entry.get("reason"),
        }
        row_hash = compute_hash(prev_hash=prev_hash, at=at, **row)
        row["prev_hash"], row["row_hash"] = prev_hash, row_hash
        for key in ("old_values", "new_values"):
            row[key] = None if row[key] is None else json.dumps(row[key])
        for name, value in row.items():
            columns[name].append(value)
        prev_hash = row_hash
    session.execute(text(_INSERT_MANY_SQL), {"at": at, **columns})
    session.info[_TAIL_KEY] = prev_hash
    return len(entries)


@dataclass(frozen=True)
class ChainBreak:
    """The first audit row whose stored hashes do not match its content."""

    row_id: int
    problem: str


def _rows(session: Session, batch: int = 5000) -> Iterator[AuditEntry]:
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.id > last_id)
            .order_by(AuditEntry.id)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id
        session.expunge_all()


def verify_chain(session: Session) -> tuple[int, ChainBreak | None]:
    """Check every row in id order; return the rows checked and the first break."""
    expected_prev = GENESIS_HASH
    checked = 0
    for row in _rows(session):
        checked += 1
        if row.prev_hash != expected_prev:
            return checked, ChainBreak(row.id, "previous-row hash does not match")
        recomputed = compute_hash(
            prev_hash=row.prev_hash,
            at=row.at,
            actor=row.actor,
            action=row.action,
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            study_id=row.study_id,
            old_values=row.old_values,
            new_values=row.new_values,
            reason=row.reason,
        )
        if recomputed != row.row_hash:
            return checked, ChainBreak(row.id, "content does not match its hash")
        expected_prev = row.row_hash
    return checked, None
