"""Crash test: SIGKILL the jobs process during a drop-folder ingest, restart, count.

    python bench/kill_ingest.py [--files 5000] [--kills 3]

Builds re-tagged pydicom files in a drop folder and starts `app.py jobs --no-scp`,
whose scheduler scans the folder. Each time another share of the rows exists
(a quarter, a half and three quarters with the default three kills), it waits a
short delay, kills the jobs process and all its workers with SIGKILL, and starts a
new one. The last one empties the folder and is stopped with SIGTERM.

The checks: one row per file, no quarantined file, an empty drop folder, an archive
copy whose SHA-256 matches each row, no archive file without a row, and one audit
row per created case and subject. The script exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.ingest import build_corpus, count_instances, fresh_database  # noqa: E402
from core.ingest.pipeline import walk_files  # noqa: E402

TIMEOUT_SECONDS = 1800
# After each share of the rows exists, the kill waits this long (cycling), so that
# kills land at different points of a batch: parsing, writing rows, removing inputs.
KILL_DELAYS_SECONDS = (0.0, 0.2, 0.5)


def start_jobs(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the jobs process in a session of its own, so one killpg reaches all."""
    return subprocess.Popen(
        [sys.executable, str(PROJECT / "app.py"), "jobs", "--no-scp"],
        env=env,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group and wait until none of its processes is left."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise RuntimeError(f"processes of group {process.pid} survived SIGKILL")


def wait_for_rows(url: str, process: subprocess.Popen[bytes], rows: int) -> int:
    """Wait until at least `rows` instance rows exist; return the count seen."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        count = count_instances(url)
        if count >= rows:
            return count
        if process.poll() is not None:
            raise RuntimeError(f"jobs process exited with {process.returncode}")
        time.sleep(0.02)
    raise RuntimeError(f"{rows} rows were not written in {TIMEOUT_SECONDS}s")


def last_scan_id(url: str) -> int:
    """Return the id of the last finished drop folder scan, 0 before the first."""
    engine = create_engine(url)
    with engine.connect() as conn:
        last = conn.scalar(
            text(
                "SELECT max(id) FROM job_runs WHERE job = 'ingest_drop_folder' "
                "AND finished_at IS NOT NULL"
            )
        )
    engine.dispose()
    return int(last or 0)


def wait_until_done(
    url: str, drop: Path, process: subprocess.Popen[bytes], runs_before: int
) -> None:
    """Wait for a scan finished by `process` and an empty drop folder.

    The finished scan also shows that the process has installed its SIGTERM
    handler, which it does before the scheduler starts.
    """
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while last_scan_id(url) <= runs_before or next(walk_files(drop), None):
        if process.poll() is not None:
            raise RuntimeError(f"jobs process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"drop folder not empty after {TIMEOUT_SECONDS}s")
        time.sleep(0.2)


def check(url: str, data: Path, expected: int) -> list[str]:
    """Print the counts and return the checks that failed."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT sop_instance_uid, content_sha256, archive_path FROM instances")
        ).all()
        quarantined = conn.scalar(text("SELECT count(*) FROM quarantined_files"))
        cases = conn.scalar(text("SELECT count(*) FROM cases"))
        subjects = conn.scalar(text("SELECT count(*) FROM subjects"))
        audits = dict(
            conn.execute(
                text("SELECT action, count(*) FROM audit_log GROUP BY action")
            ).all()
        )
    engine.dispose()

    left = list(walk_files(data / "drop"))
    archived = {
        str(path) for path in (data / "archive").rglob("*.dcm") if path.is_file()
    }
    temporary = [path for path in (data / "archive").rglob(".*.part")]
    bad_copies = [
        uid
        for uid, sha, path in rows
        if not Path(path).is_file()
        or hashlib.sha256(Path(path).read_bytes()).hexdigest() != sha
    ]
    orphans = archived - {path for _, _, path in rows}
    distinct = len({uid for uid, _, _ in rows})

    print(f"files dropped:                 {expected}")
    print(f"instance rows:                 {len(rows)} ({distinct} distinct UIDs)")
    print(f"quarantined files:             {quarantined}")
    print(f"cases / case.created:          {cases} / {audits.get('case.created', 0)}")
    print(
        f"subjects / subject.created:    {subjects} / "
        f"{audits.get('subject.created', 0)}"
    )
    print(f"left in drop folder:           {len(left)}")
    print(f"archive copies missing/wrong:  {len(bad_copies)}")
    print(f"archive files without a row:   {len(orphans)}")
    print(f"temporary files in archive:    {len(temporary)}")

    failures = []
    if len(rows) != expected or distinct != expected:
        failures.append("instance rows differ from files dropped")
    if quarantined:
        failures.append("files were quarantined")
    if cases != audits.get("case.created", 0):
        failures.append("cases and case.created audit rows differ")
    if subjects != audits.get("subject.created", 0):
        failures.append("subjects and subject.created audit rows differ")
    if left:
        failures.append("files left in the drop folder")
    if bad_copies:
        failures.append("archive copies are missing or differ from their rows")
    if orphans:
        failures.append("archive files have no row")
    return failures


def run(files: int, kills: int, workdir: Path) -> list[str]:
    data = workdir / "data"
    built, _ = build_corpus(data / "drop", files)
    print(f"built {len(built)} files in {data / 'drop'}")
    with fresh_database() as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "IMAGINGOPS_DATA_DIR": str(data),
            "IMAGINGOPS_INGEST_STABLE_SECONDS": "0",
            "IMAGINGOPS_INGEST_INTERVAL_SECONDS": "1",
            "IMAGINGOPS_INGEST_BATCH_SIZE": "250",
            "IMAGINGOPS_DEMO_FEED_SECONDS": "0",
            "IMAGINGOPS_LOG_LEVEL": "WARNING",
        }
        runs_before = 0
        process = start_jobs(env)
        for kill in range(1, kills + 1):
            wait_for_rows(url, process, len(built) * kill // (kills + 1))
            time.sleep(KILL_DELAYS_SECONDS[(kill - 1) % len(KILL_DELAYS_SECONDS)])
            kill_group(process)
            print(f"kill {kill}: SIGKILL with {count_instances(url)} rows written")
            runs_before = last_scan_id(url)
            process = start_jobs(env)
        wait_until_done(url, data / "drop", process, runs_before)
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=120)
        print(f"last jobs process stopped by SIGTERM, exit code {returncode}")
        failures = check(url, data, len(built))
    if returncode != 0:
        failures.append(f"the last jobs process exited with {returncode}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000, help="files to drop")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs to send")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="imagingops-kill-"))
    try:
        failures = run(args.files, args.kills, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for failure in failures:
        print(f"FAILED: {failure}")
    if not failures:
        print("OK: every file ingested exactly once")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
