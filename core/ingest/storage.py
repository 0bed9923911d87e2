"""Archive and quarantine folders: durable, content-addressed file writes.

An archived file is named by the SHA-256 of its content, so writing the same content
twice lands on the same path and an interrupted write never leaves a partial file
under the final name (the data goes to a temporary name, is fsynced, then renamed).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def archive_path(archive_dir: Path, sha256: str) -> Path:
    return archive_dir / sha256[:2] / sha256[2:4] / f"{sha256}.dcm"


def quarantine_path(quarantine_dir: Path, sha256: str, original_name: str) -> Path:
    safe = SAFE_NAME.sub("_", Path(original_name).name)[:80] or "file"
    return quarantine_dir / sha256[:2] / f"{sha256[:16]}_{safe}"


def fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_durably(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a fsynced temporary file and an atomic rename."""
    if path.exists() and path.stat().st_size == len(data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def link_durably(source: Path, target: Path) -> bool:
    """Hard-link an fsynced file to `target`; return False when linking fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:
        return True
    except OSError:
        return False
    fsync_directory(target.parent)
    return True


def remove_input(path: Path) -> None:
    """Delete an input file whose rows are committed; a missing file is fine."""
    path.unlink(missing_ok=True)
