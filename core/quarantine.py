"""Quarantined files: list them for the dashboard and release them for re-ingest."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.access import Scope
from core.models import QuarantinedFile
from core.runtime import Runtime

log = logging.getLogger(__name__)


class ReleaseError(ValueError):
    """A quarantined file cannot be released; the message says why."""


# Quarantined files are not yet matched to a study, so the list is limited by role.
QUARANTINE_ROLES = ("admin", "leadership", "study_manager", "qc_reviewer")


def describe_source(row: QuarantinedFile) -> str:
    """Return "drop folder" or the sender's AE title and address."""
    if row.source != "scp":
        return "drop folder"
    return f"C-STORE from {row.calling_ae or '?'} at {row.calling_host or '?'}"


def list_quarantined(
    session: Session, scope: Scope, *, include_released: bool = False, limit: int = 500
) -> list[dict[str, Any]]:
    """Return the newest quarantined files first, at most `limit` of them."""
    scope.require_role(*QUARANTINE_ROLES)
    query = select(QuarantinedFile).order_by(QuarantinedFile.received_at.desc())
    if not include_released:
        query = query.where(QuarantinedFile.released_at.is_(None))
    rows = session.scalars(query.limit(limit)).all()
    return [
        {
            "id": row.id,
            "file": row.original_name,
            "reason_code": row.reason_code,
            "reason": row.reason,
            "source": describe_source(row),
            "received_at": row.received_at,
            "released_at": row.released_at,
            "released_by": row.released_by,
        }
        for row in rows
    ]


def release_quarantined(
    runtime: Runtime, file_id: int, *, actor: str, reason: str
) -> Path:
    """Copy a quarantined file back to the drop folder and record who released it.

    The next drop-folder scan ingests the copy again, so the sender's mapping (for
    example a study, site or timepoint of record) should be fixed first. The
    quarantine copy stays in place.
    """
    if not reason.strip():
        raise ReleaseError("a reason is required to release a quarantined file")
    with runtime.sessions.begin() as session:
        row = session.get(QuarantinedFile, file_id, with_for_update=True)
        if row is None:
            raise ReleaseError(f"quarantined file {file_id} not found")
        if row.released_at is not None:
            raise ReleaseError(
                f"quarantined file {file_id} was already released at "
                f"{row.released_at.isoformat()} by {row.released_by}"
            )
        source = Path(row.stored_path)
        if not source.is_file():
            raise ReleaseError(
                f"quarantined file {file_id} is missing from {source}; restore it "
                "from backup before releasing"
            )
        target = _release_target(runtime, row)
        row.released_at = datetime.now(UTC)
        row.released_by = actor
        audit.record(
            session,
            actor=actor,
            action="quarantine.released",
            entity_type="quarantined_file",
            entity_id=row.id,
            old={"released_at": None},
            new={"released_at": row.released_at, "copied_to": str(target)},
            reason=reason,
        )
        # Copy inside the transaction, so a failed copy releases nothing.
        shutil.copyfile(source, target)
    log.info("Quarantined file %d released by %s", file_id, actor)
    return target


def _release_target(runtime: Runtime, row: QuarantinedFile) -> Path:
    folder = runtime.settings.drop_dir / "released"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{row.id}_{Path(row.original_name).name}"
