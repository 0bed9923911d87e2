"""SIGKILL of a real jobs or receiver process mid-ingest, then a restart.

Each test runs `app.py` as a child process in a session of its own, kills the whole
process group with SIGKILL and starts it again. The deadlines below only stop a
hung child; no assertion depends on how fast anything runs.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, MRImageStorage
from sqlalchemy import func, select, text

from core.config import PROJECT_ROOT
from core.ingest.pipeline import walk_files
from core.models import AuditEntry, Case, Instance, JobRun, QuarantinedFile
from core.runtime import Runtime
from jobs.ingest import incoming_dir
from tests.ingest_fixtures import make_study, synth

FILES = 300
FILES_PER_SUBJECT = 20
DEADLINE_SECONDS = 300
# Kill k waits for k fifths of the rows, then this long, so that the kills land at
# different points of a batch: parsing, writing rows, removing inputs.
KILL_DELAYS_SECONDS = (0.0, 0.1, 0.25)
KILL_SHARES = 5


def _child_env(runtime: Runtime, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": runtime.url,
        "IMAGINGOPS_DATA_DIR": str(runtime.settings.data_dir),
        "IMAGINGOPS_INGEST_STABLE_SECONDS": "0",
        "IMAGINGOPS_INGEST_INTERVAL_SECONDS": "1",
        "IMAGINGOPS_DEMO_FEED_SECONDS": "0",
        "IMAGINGOPS_LOG_LEVEL": "WARNING",
        **extra,
    }


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A session of its own, so one killpg also reaches the parse workers.
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "app.py"), *command],
        env=env,
        start_new_session=True,
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    _wait_for(lambda: not _group_alive(process.pid), None, "the group to exit")


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(
    condition: Callable[[], bool],
    process: subprocess.Popen[bytes] | None,
    description: str,
) -> None:
    """Poll `condition`; fail when the child exits or the deadline passes."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"child exited with {process.returncode} before {description}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {description}")
        time.sleep(0.02)


def _count(runtime: Runtime, model: type) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _has_rows(runtime: Runtime, rows: int) -> bool:
    return _count(runtime, Instance) >= rows


def _last_scan_id(runtime: Runtime) -> int:
    """Return the id of the last finished drop folder scan, 0 before the first."""
    with runtime.sessions() as session:
        last = session.scalar(
            select(func.max(JobRun.id)).where(
                JobRun.job == "ingest_drop_folder", JobRun.finished_at.is_not(None)
            )
        )
    return last or 0


def _drop_files(runtime: Runtime) -> set[str]:
    """Write FILES re-tagged files; return their SOPInstanceUIDs."""
    uids = set()
    for index in range(FILES):
        subject = index // FILES_PER_SUBJECT
        path = synth(
            runtime.settings.drop_dir / f"{index // 100}" / f"{index:04d}.dcm",
            subject=f"301-{subject:04d}",
            timepoint="BL" if index % FILES_PER_SUBJECT < 10 else "W8",
        )
        uids.add(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    return uids


def test_killed_jobs_ingest_each_file_once(runtime: Runtime) -> None:
    make_study(runtime.sessions)
    uids = _drop_files(runtime)
    env = _child_env(runtime, IMAGINGOPS_INGEST_BATCH_SIZE="25")
    rows_at_kill = []

    process = _start(["jobs", "--no-scp"], env)
    for kill, delay in enumerate(KILL_DELAYS_SECONDS, start=1):
        rows = FILES * kill // KILL_SHARES
        _wait_for(partial(_has_rows, runtime, rows), process, f"{rows} rows")
        time.sleep(delay)
        _kill_group(process)
        rows_at_kill.append(_count(runtime, Instance))
        runs_before = _last_scan_id(runtime)
        process = _start(["jobs", "--no-scp"], env)
    # A finished scan by the last process means it also handles SIGTERM by now.
    _wait_for(
        lambda: (
            _last_scan_id(runtime) > runs_before
            and next(walk_files(runtime.settings.drop_dir), None) is None
        ),
        process,
        "a finished scan and an empty drop folder",
    )
    process.send_signal(signal.SIGTERM)
    returncode = process.wait(timeout=DEADLINE_SECONDS)

    assert returncode == 0
    # The first kill, at a quarter of the rows and without delay, hits an ingest in
    # progress; a later one may come after the last batch on a busy machine.
    assert rows_at_kill[0] < FILES
    with runtime.sessions() as session:
        stored = session.execute(
            select(
                Instance.sop_instance_uid,
                Instance.content_sha256,
                Instance.archive_path,
            )
        ).all()
        created = session.scalar(
            select(func.count()).where(AuditEntry.action == "case.created")
        )
    assert len(stored) == FILES
    assert {uid for uid, _, _ in stored} == uids
    assert _count(runtime, QuarantinedFile) == 0
    assert _count(runtime, Case) == FILES // FILES_PER_SUBJECT * 2
    assert created == _count(runtime, Case)
    for uid, sha256, archive_path in stored:
        content = Path(archive_path).read_bytes()
        assert hashlib.sha256(content).hexdigest() == sha256, uid
    archived = {str(p) for p in runtime.settings.archive_dir.rglob("*.dcm")}
    assert archived == {archive_path for _, _, archive_path in stored}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _send(port: int, datasets: list[Dataset]) -> list[int]:
    ae = AE(ae_title="SITE_A")
    for sop_class in (CTImageStorage, MRImageStorage):
        ae.add_requested_context(sop_class)
    assoc = ae.associate("127.0.0.1", port, ae_title="IMAGINGOPS")
    assert assoc.is_established
    try:
        return [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()


def test_acknowledged_instance_survives_kill(runtime: Runtime) -> None:
    """Instances acknowledged with Success get rows after a kill and a restart."""
    make_study(runtime.sessions)
    sources = ["CT_small.dcm", "MR_small.dcm"] * 3
    datasets = [
        pydicom.dcmread(synth(runtime.settings.data_dir / f"{i}.dcm", source=name))
        for i, name in enumerate(sources)
    ]
    port = _free_port()
    env = _child_env(runtime, IMAGINGOPS_SCP_PORT=str(port))

    # While the test holds this lock, the receiver can store and acknowledge files
    # but cannot write a single instance row.
    with runtime.engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE instances IN ACCESS EXCLUSIVE MODE"))
        process = _start(["scp"], env)
        _wait_for(lambda: _listening(port), process, "the receiver to listen")
        statuses = _send(port, datasets)
        _kill_group(process)
        blocker.rollback()
    received = list(walk_files(incoming_dir(runtime.settings)))

    assert statuses == [0x0000] * len(datasets)
    assert len(received) == len(datasets)
    assert _count(runtime, Instance) == 0

    process = _start(["scp"], env)
    _wait_for(
        lambda: _count(runtime, Instance) == len(datasets),
        process,
        "rows of the received files",
    )
    process.send_signal(signal.SIGTERM)
    returncode = process.wait(timeout=DEADLINE_SECONDS)

    assert returncode == 0
    with runtime.sessions() as session:
        rows = session.execute(
            select(Instance.sop_instance_uid, Instance.source, Instance.calling_ae)
        ).all()
    assert {uid for uid, _, _ in rows} == {ds.SOPInstanceUID for ds in datasets}
    assert {(source, ae) for _, source, ae in rows} == {("scp", "SITE_A")}
    assert list(walk_files(incoming_dir(runtime.settings))) == []
