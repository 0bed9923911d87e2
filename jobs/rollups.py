"""Dashboard rollup job: rebuild the pre-aggregated figures the portfolio reads."""

from __future__ import annotations

from datetime import UTC, datetime

from core import rollups
from core.runtime import Runtime


def rebuild_step(runtime: Runtime) -> int:
    """Rebuild the dashboard rollups; return the figure rows written."""
    with runtime.sessions.begin() as session:
        return rollups.rebuild(session, datetime.now(UTC))
