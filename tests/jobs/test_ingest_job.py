"""The drop-folder scan step."""

from __future__ import annotations

import os
import time
from dataclasses import replace

from sqlalchemy import func, select

from core.models import Instance, QuarantinedFile
from core.runtime import Runtime
from jobs.ingest import scan_drop_folder
from tests.ingest_fixtures import pydicom_file


def test_scan_waits_for_a_file_being_copied(runtime: Runtime) -> None:
    """A half-copied file is left alone until its size has been stable long enough."""
    runtime.settings = replace(runtime.settings, ingest_stable_seconds=3600)
    content = pydicom_file("CT_small.dcm").read_bytes()
    target = runtime.settings.drop_dir / "ct.dcm"
    target.write_bytes(content[: len(content) // 2])

    assert scan_drop_folder(runtime) == 0
    with target.open("ab") as handle:
        handle.write(content[len(content) // 2 :])
    assert scan_drop_folder(runtime) == 0
    assert target.exists()

    an_hour_ago = time.time() - 3601
    os.utime(target, (an_hour_ago, an_hour_ago))
    assert scan_drop_folder(runtime) == 1

    with runtime.sessions() as session:
        instances = session.scalar(select(func.count()).select_from(Instance))
        quarantined = session.scalar(select(func.count()).select_from(QuarantinedFile))
    assert instances == 1
    assert quarantined == 0
    assert not target.exists()


def test_scan_of_missing_drop_folder_is_noop(runtime: Runtime) -> None:
    runtime.settings.drop_dir.rmdir()

    assert scan_drop_folder(runtime) == 0
