"""Per-file work that needs no database: read, hash, parse, and store a durable copy.

`prepare` runs in worker processes during a folder ingest, so it takes and returns
only picklable values.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.ingest.header import Header, Rejected, parse_bytes
from core.ingest.storage import (
    archive_path,
    link_unchanged,
    quarantine_path,
    write_durably,
)


@dataclass(frozen=True)
class Arrival:
    """One input file and where it came from."""

    path: Path
    received_at: datetime
    source: str = "drop"
    calling_ae: str | None = None
    calling_host: str | None = None


@dataclass
class Prepared:
    """An input file after parsing: a header and its archive copy, or a rejection."""

    arrival: Arrival
    sha256: str | None
    stored_path: Path | None
    header: Header | None = None
    reject_code: str | None = None
    reject_reason: str | None = None
    # Set when reading the input itself failed; the file is left where it is.
    read_error: str | None = None


def prepare(
    arrival: Arrival, archive_dir: Path, quarantine_dir: Path, link: bool = False
) -> Prepared:
    """Parse one file and store its archive copy, or its quarantine copy if rejected.

    With `link`, the input becomes the archive copy through a hard link instead of
    a second write, when both folders are on one filesystem and the input did not
    change while it was read. Copies are not fsynced here: the caller calls
    `sync_filesystem` once per batch.
    """
    try:
        with open(arrival.path, "rb") as handle:
            before = os.fstat(handle.fileno())
            data = handle.read()
    except OSError as exc:
        return Prepared(arrival, None, None, read_error=str(exc))
    try:
        header = parse_bytes(data)
    except Rejected as rejected:
        sha256 = hashlib.sha256(data).hexdigest()
        target = quarantine_path(quarantine_dir, sha256, arrival.path.name)
        write_durably(target, data, sync=False)
        return Prepared(
            arrival,
            sha256,
            target,
            reject_code=rejected.code,
            reject_reason=rejected.reason,
        )
    target = archive_path(archive_dir, header.sha256)
    if not (link and link_unchanged(arrival.path, target, before, len(data))):
        write_durably(target, data, sync=False)
    return Prepared(arrival, header.sha256, target, header=header)
