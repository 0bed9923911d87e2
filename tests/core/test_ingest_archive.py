"""Archive copies by hard link: when a worker links an input and when it copies."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from core.ingest import ingest_folder
from core.ingest.prepare import Arrival, prepare
from core.ingest.storage import link_unchanged
from core.runtime import Runtime
from tests.ingest_fixtures import make_study, pydicom_file, synth


def _drop_copy(folder: Path, name: str = "CT_small.dcm") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    shutil.copyfile(pydicom_file(name), target)
    return target


def test_prepare_links_input_into_archive(tmp_path: Path) -> None:
    source = _drop_copy(tmp_path / "drop")
    arrival = Arrival(source, datetime.now(UTC))

    prepared = prepare(arrival, tmp_path / "archive", tmp_path / "quarantine", True)

    assert prepared.header is not None
    assert prepared.stored_path is not None
    assert prepared.stored_path.stat().st_ino == source.stat().st_ino
    assert source.stat().st_nlink == 2
    digest = hashlib.sha256(prepared.stored_path.read_bytes()).hexdigest()
    assert digest == prepared.sha256


def test_prepare_copies_input_with_two_names(tmp_path: Path) -> None:
    source = _drop_copy(tmp_path / "drop")
    os.link(source, tmp_path / "drop" / "second-name.dcm")
    arrival = Arrival(source, datetime.now(UTC))

    prepared = prepare(arrival, tmp_path / "archive", tmp_path / "quarantine", True)

    assert prepared.stored_path is not None
    assert prepared.stored_path.stat().st_ino != source.stat().st_ino
    assert prepared.stored_path.read_bytes() == source.read_bytes()


def test_prepare_copies_without_link(tmp_path: Path) -> None:
    source = _drop_copy(tmp_path / "drop")
    arrival = Arrival(source, datetime.now(UTC))

    prepared = prepare(arrival, tmp_path / "archive", tmp_path / "quarantine")

    assert prepared.stored_path is not None
    assert prepared.stored_path.stat().st_ino != source.stat().st_ino
    assert source.stat().st_nlink == 1


def test_link_rejects_input_changed_after_read(tmp_path: Path) -> None:
    source = _drop_copy(tmp_path / "drop")
    read_status = source.stat()
    size = len(source.read_bytes())
    # Rewrite the input in place after the read, with a later modification time.
    source.write_bytes(source.read_bytes()[::-1])
    later = read_status.st_mtime_ns + 5_000_000_000
    os.utime(source, ns=(later, later))
    target = tmp_path / "archive" / "ab" / "cd" / "copy.dcm"

    linked = link_unchanged(source, target, read_status, size)

    assert linked is False
    assert not target.exists()
    assert source.stat().st_nlink == 1


def test_link_keeps_existing_archive_copy(tmp_path: Path) -> None:
    source = _drop_copy(tmp_path / "drop")
    target = tmp_path / "archive" / "existing.dcm"
    target.parent.mkdir(parents=True)
    target.write_bytes(source.read_bytes())
    read_status = source.stat()

    linked = link_unchanged(source, target, read_status, read_status.st_size)

    assert linked is True
    assert target.stat().st_ino != source.stat().st_ino
    assert source.stat().st_nlink == 1


def test_drop_folder_ingest_copies_by_default(runtime: Runtime) -> None:
    """A site may rewrite a dropped file in place, so its archive copy is separate."""
    make_study(runtime.sessions)
    source = synth(runtime.settings.drop_dir / "ct.dcm")

    report = ingest_folder(runtime, runtime.settings.drop_dir, remove_inputs=False)

    assert report.ingested == 1
    assert source.stat().st_nlink == 1
