"""Automated QC job: reopen cases whose site re-uploaded, then QC complete cases."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from core import qc
from core.runtime import Runtime

log = logging.getLogger(__name__)

BATCH_SIZE = 200


def run_auto_qc(runtime: Runtime) -> int:
    """Run one pass and return how many cases were reopened or moved to review.

    Each case runs in its own savepoint, so one bad case is logged and skipped
    instead of stopping the pass. Rows are claimed with SKIP LOCKED, so two jobs
    processes share the work instead of repeating it.
    """
    with runtime.sessions.begin() as session:
        reopened = qc.reopen_reuploaded(session)
    if reopened:
        log.info("Reopened QC on %d cases after a site re-upload", len(reopened))

    handled = 0
    now = datetime.now(UTC)
    with runtime.sessions.begin() as session:
        for case_id in qc.claim_received(session, BATCH_SIZE):
            try:
                with session.begin_nested():
                    handled += int(qc.auto_qc_case(session, case_id, now=now))
            except Exception:
                log.exception("Automated QC failed on case %s; skipping it", case_id)
    if handled:
        log.info("Moved %d cases to manual QC review", handled)
    return len(reopened) + handled
