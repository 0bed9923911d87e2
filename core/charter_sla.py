"""SLA targets read from a charter's `sla` block (hours).

Keys used, each optional and read defensively (a missing, non-numeric or negative
value falls back to the default below):

    sla.total_hours            whole case, from first instance to done
    sla.qc_hours               from first instance to the end of QC
    sla.read_hours             from assignment to signature of a primary/secondary read
    sla.adjudication_hours     from assignment to signature of an adjudication read
    sla.handover_wait_hours    how long a read waits for the subject's own reader
                               before the subject is handed to another reader
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Charter, Study

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlaTargets:
    total_hours: float = 240.0
    qc_hours: float = 24.0
    read_hours: float = 72.0
    adjudication_hours: float = 48.0
    handover_wait_hours: float = 48.0

    def read_hours_for(self, kind: str) -> float:
        """Return the read SLA for a read kind; adjudication has its own target."""
        return self.adjudication_hours if kind == "adjudication" else self.read_hours


def _hours(block: dict[str, Any], key: str, default: float) -> float:
    value = block.get(key)
    if value is None:
        return default
    try:
        hours = float(value)
    except (TypeError, ValueError):
        log.warning("Charter sla.%s=%r is not a number; using %s", key, value, default)
        return default
    if hours < 0:
        log.warning("Charter sla.%s=%r is negative; using %s", key, value, default)
        return default
    return hours


def targets_from_document(document: dict[str, Any] | None) -> SlaTargets:
    """Read the SLA targets from a charter document, with defaults for gaps."""
    block = (document or {}).get("sla")
    if not isinstance(block, dict):
        return SlaTargets()
    defaults = SlaTargets()
    return SlaTargets(
        **{
            key: _hours(block, key, getattr(defaults, key))
            for key in defaults.__dataclass_fields__
        }
    )


def study_documents(session: Session, study_ids: set[int]) -> dict[int, dict[str, Any]]:
    """Return each study's current charter document (the study's charter_version)."""
    if not study_ids:
        return {}
    rows = session.execute(
        select(Charter.study_id, Charter.document)
        .join(Study, Study.id == Charter.study_id)
        .where(Charter.study_id.in_(study_ids))
        .where(Charter.version == Study.charter_version)
    )
    return {study_id: document for study_id, document in rows}


def study_targets(session: Session, study_ids: set[int]) -> dict[int, SlaTargets]:
    """Return each study's SLA targets; a study without a charter gets the defaults."""
    documents = study_documents(session, study_ids)
    return {sid: targets_from_document(documents.get(sid)) for sid in study_ids}
