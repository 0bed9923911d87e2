"""Assignment jobs: place unassigned reads and move stalled ones."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError

from core.assignment import assign_open_reads, reassign_stalled_reads
from core.runtime import Runtime

log = logging.getLogger(__name__)


def assign_step(runtime: Runtime) -> int:
    """Assign unassigned reads in one transaction; return the reads placed.

    If the database connection drops mid-batch (for example the backend is
    terminated), the whole batch rolls back, the loss is logged and the error is
    raised so the run is recorded as failed; the next run claims the same reads.
    """
    try:
        with runtime.sessions.begin() as session:
            return len(assign_open_reads(session, datetime.now(UTC)))
    except DBAPIError as exc:
        if exc.connection_invalidated:
            log.warning("Database connection lost during assignment; rolled back")
        raise


def reassign_step(runtime: Runtime) -> int:
    """Move reads of absent readers and unstarted reads near their due time."""
    try:
        with runtime.sessions.begin() as session:
            return len(reassign_stalled_reads(session, datetime.now(UTC)))
    except DBAPIError as exc:
        if exc.connection_invalidated:
            log.warning("Database connection lost during reassignment; rolled back")
        raise
