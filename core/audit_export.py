"""A human-readable CSV copy of one study's audit trail."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import AuditEntry, Study

COLUMNS = (
    "id",
    "time_utc",
    "actor",
    "action",
    "entity",
    "old_values",
    "new_values",
    "reason",
    "row_hash",
)


def study_id_for(session: Session, protocol_id: str) -> int:
    """Return the id of the study with this protocol id, raising LookupError."""
    study_id = session.scalar(select(Study.id).where(Study.protocol_id == protocol_id))
    if study_id is None:
        raise LookupError(f"study {protocol_id!r} not found")
    return study_id


def _describe(values: dict[str, Any] | None) -> str:
    """Render a JSON object as `key: value` pairs, one per line."""
    if not values:
        return ""
    parts = []
    for key in sorted(values):
        value = values[key]
        if not isinstance(value, str):
            value = json.dumps(value, sort_keys=True)
        parts.append(f"{key}: {value}")
    return "\n".join(parts)


def _entries(
    session: Session, study_id: int, batch: int = 5000
) -> Iterator[AuditEntry]:
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.study_id == study_id, AuditEntry.id > last_id)
            .order_by(AuditEntry.id)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id
        session.expunge_all()


def write_csv(session: Session, study_id: int, out: TextIO) -> int:
    """Write the study's audit rows in id order to `out` and return the row count."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count = 0
    for entry in _entries(session, study_id):
        writer.writerow(
            (
                entry.id,
                entry.at.isoformat(timespec="seconds"),
                entry.actor,
                entry.action,
                f"{entry.entity_type} {entry.entity_id}",
                _describe(entry.old_values),
                _describe(entry.new_values),
                entry.reason or "",
                entry.row_hash,
            )
        )
        count += 1
    return count
