"""Quarantined files as the dashboard lists them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access import Scope
from core.models import QuarantinedFile

# Quarantined files are not yet matched to a study, so the list is limited by role.
QUARANTINE_ROLES = ("admin", "leadership", "study_manager", "qc_reviewer")


def describe_source(row: QuarantinedFile) -> str:
    """Return where a file came from: the drop folder or the calling AE and address."""
    if row.source == "dicom" or row.calling_ae:
        return f"DICOM from {row.calling_ae or '?'} at {row.calling_host or '?'}"
    return "drop folder"


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
