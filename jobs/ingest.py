"""Ingest jobs: the drop-folder scan and the recovery of received files.

Both are single steps that return how many files they handled; the scheduler (or
a thin loop) calls them. Each takes a PostgreSQL advisory lock first, so two jobs
processes never ingest the same folder at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from core.config import Settings
from core.ingest import Arrival, ingest_arrivals
from core.ingest.pipeline import walk_files
from core.runtime import Runtime

log = logging.getLogger(__name__)

DROP_LOCK_KEY = 7_310_301
INCOMING_LOCK_KEY = 7_310_302


def incoming_dir(settings: Settings) -> Path:
    """Return the folder where the receiver stores instances before their rows."""
    return settings.archive_dir / "incoming"


@contextmanager
def _exclusive(runtime: Runtime, key: int) -> Iterator[bool]:
    """Hold a session advisory lock while the block runs; yield whether we got it."""
    with runtime.engine.connect() as connection:
        locked = bool(
            connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
        )
        try:
            yield locked
        finally:
            if locked:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": key}
                )
                connection.commit()


def stable_files(folder: Path, stable_seconds: float) -> Iterator[Path]:
    """Yield files not modified within `stable_seconds`; others may still be copying."""
    cutoff = time.time() - stable_seconds
    for path in walk_files(folder):
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if modified <= cutoff:
            yield path


def scan_drop_folder(runtime: Runtime) -> int:
    """Ingest the drop folder's stable files once; return the number handled."""
    settings = runtime.settings
    if not settings.drop_dir.is_dir():
        return 0
    with _exclusive(runtime, DROP_LOCK_KEY) as locked:
        if not locked:
            log.info("Drop folder scan skipped: another process holds the lock")
            return 0
        now = datetime.now(UTC)
        arrivals = (
            Arrival(path, now, "drop")
            for path in stable_files(settings.drop_dir, settings.ingest_stable_seconds)
        )
        report = ingest_arrivals(runtime, arrivals)
    return report.handled


def parse_incoming_name(path: Path) -> tuple[datetime, str | None, str | None]:
    """Return the receive time, calling AE title and host encoded in the file name."""
    parts = path.stem.split("-", 3)
    if len(parts) != 4:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC), None, None
    stamp, _, ae_hex, host = parts
    try:
        received_at = datetime.fromtimestamp(int(stamp) / 1e9, UTC)
        calling_ae = bytes.fromhex(ae_hex).decode("ascii", errors="replace").strip()
    except ValueError:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC), None, None
    return received_at, calling_ae or None, host.replace("_", ":") or None


def recover_archive(runtime: Runtime, *, pool: Executor | None = None) -> int:
    """Ingest received files that have no rows yet; return the number handled.

    The receiver acknowledges an instance once its file is fsynced, so after a crash
    the files in the incoming folder are exactly the acknowledged instances whose
    rows may be missing. Ingest is idempotent, so rerunning this is safe.
    """
    folder = incoming_dir(runtime.settings)
    if not folder.is_dir():
        return 0
    with _exclusive(runtime, INCOMING_LOCK_KEY) as locked:
        if not locked:
            return 0
        arrivals = (_received(path) for path in walk_files(folder))
        report = ingest_arrivals(runtime, arrivals, link=True, pool=pool)
    return report.handled


def _received(path: Path) -> Arrival:
    received_at, calling_ae, calling_host = parse_incoming_name(path)
    return Arrival(path, received_at, "scp", calling_ae, calling_host)
