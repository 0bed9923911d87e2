"""Archive and quarantine folders: durable, content-addressed file writes.

An archived file is named by the SHA-256 of its content, so writing the same content
twice lands on the same path. An interrupted write never leaves a partial file under
the final name, because the data goes to a temporary name, is flushed to disk, and
is then renamed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import uuid
from pathlib import Path
from typing import BinaryIO

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(
        ctypes.util.find_library("c"), use_errno=True
    )
except OSError:
    _libc = None

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


def write_durably(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Write `data` to `path` through a temporary file and an atomic rename.

    With `sync` the file and its folder are fsynced before returning. Without it the
    caller must call `sync_filesystem` before relying on the file, which lets one
    flush cover a whole batch.
    """
    try:
        if path.stat().st_size == len(data):
            return
    except FileNotFoundError:
        pass
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        with _create(temporary) as handle:
            handle.write(data)
            if sync:
                handle.flush()
                # fdatasync skips timestamps but flushes the data and the file size,
                # which is all that reading the file back after a crash needs.
                os.fdatasync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if sync:
        fsync_directory(path.parent)


def _create(path: Path) -> BinaryIO:
    """Open a new file for writing, creating its folders only when missing."""
    try:
        return open(path, "xb")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "xb")


def sync_filesystem(folder: Path) -> None:
    """Flush every written file and folder of the filesystem holding `folder`.

    One syncfs(2) call costs about as much as one fsync, so a batch of archive
    copies becomes durable for the price of one file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        if _libc is None or _libc.syncfs(descriptor) != 0:
            os.sync()
    finally:
        os.close(descriptor)


def link_unchanged(source: Path, target: Path, read: os.stat_result, size: int) -> bool:
    """Hard-link `source` to `target` if it still is the file that was read.

    `read` is the source's status taken before its `size` bytes were read. The
    link is kept only when the source has no other name and its inode, size and
    modification time are unchanged afterwards, so the archive copy holds the
    bytes that were hashed. Otherwise, or when linking fails (another filesystem,
    no permission), this returns False and the caller writes a copy. An existing
    `target` already holds the same content, because its name is the content's
    SHA-256. The new folder entry is durable only after `sync_filesystem`.
    """
    if read.st_nlink != 1 or read.st_size != size:
        return False
    try:
        os.link(source, target)
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            return False
    except FileExistsError:
        return True
    except OSError:
        return False
    # NOTE: a write within the filesystem's timestamp granularity (one kernel
    # tick on ext4) after the read leaves the modification time unchanged and
    # goes unnoticed; inputs are ingested only after their size and time have
    # been stable for `ingest_stable_seconds`.
    after = target.stat()
    unchanged = (after.st_ino, after.st_size, after.st_mtime_ns) == (
        read.st_ino,
        read.st_size,
        read.st_mtime_ns,
    )
    if not unchanged:
        target.unlink(missing_ok=True)
    return unchanged


def remove_input(path: Path) -> None:
    """Delete an input file whose rows are committed; a missing file is fine."""
    path.unlink(missing_ok=True)
