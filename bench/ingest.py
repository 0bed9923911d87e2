"""Ingest benchmark: parser limit, drop-folder ingest and C-STORE ingest.

    python bench/ingest.py [--files 5000] [--workdir DIR] [--skip-orthanc]
    python bench/ingest.py --memory 50000

Builds re-tagged copies of real pydicom test files (new UIDs, clinical trial
attributes), then measures on the same files, in one run:

  (a) bare pydicom header parsing (stop_before_pixels) on all cores
  (b) end-to-end drop-folder ingest into PostgreSQL, archive copy included
  (c) C-STORE ingest from dcmtk's storescu into `app.py scp`, over one association
      and over four at once: acknowledged rate and rows-written rate
  and, where installed, the same pushes to dcmtk's storescp and to Orthanc.
It also prints CPU ms per file of the parse and ingest steps, and the time of
one durable 40 KB write, which explain the gaps between the rates.

Uses DATABASE_URL's server (a fresh database per measurement) or, unset, the
embedded server. Needs Debian's dcmtk; Orthanc is optional.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

import pydicom  # noqa: E402
import pydicom.data  # noqa: E402
import pynetdicom  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from core.config import load_settings  # noqa: E402
from core.dicom_synth import retag  # noqa: E402

# Real files of the kinds sites send: CT, MR, SEG, RT Dose and secondary capture,
# uncompressed, implicit VR, RLE, JPEG 2000.
SOURCES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "liver_1frame.dcm",
    "rtdose.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle.dcm",
    "693_J2KI.dcm",
    "MR_small_implicit.dcm",
]
PROTOCOL = "BENCH-1"
SITES = ["S01", "S02", "S03", "S04"]
TIMEPOINTS = ["BL", "W8", "W16"]
FILES_PER_EXAM = 25
# pydicom's bundled test files, read in place: `get_testdata_file` may download.
TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def _build_one(job: tuple[int, str]) -> tuple[str, str]:
    index, folder = job
    source = TEST_FILES / SOURCES[index % len(SOURCES)]
    exam = index // FILES_PER_EXAM
    subject = exam // len(TIMEPOINTS)
    dest = Path(folder) / f"{index // 1000:03d}" / f"{index:06d}.dcm"
    retag(
        source,
        dest,
        sponsor="Bench Pharma",
        protocol=PROTOCOL,
        site=SITES[subject % len(SITES)],
        subject=f"B-{subject:05d}",
        timepoint=TIMEPOINTS[exam % len(TIMEPOINTS)],
        study_uid=pydicom.uid.generate_uid(entropy_srcs=[f"bench-exam-{exam}"]),
        series_uid=pydicom.uid.generate_uid(
            entropy_srcs=[f"bench-series-{exam}-{index % len(SOURCES)}"]
        ),
    )
    ds = pydicom.dcmread(dest, stop_before_pixels=True)
    return ds.SOPClassUID, ds.file_meta.TransferSyntaxUID


def build_corpus(folder: Path, count: int) -> tuple[list[Path], set[tuple[str, str]]]:
    """Write `count` re-tagged files; return them and their (SOP class, syntax)s."""
    jobs = [(index, str(folder)) for index in range(count)]
    with multiprocessing.Pool() as pool:
        contexts = set(pool.map(_build_one, jobs, chunksize=64))
    files = sorted(folder.rglob("*.dcm"))
    return files, contexts


def _parse_header(path: str) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def measure_parse(files: list[Path]) -> float:
    """Return files/s of bare header parsing on all cores: the parser's limit."""
    names = [str(path) for path in files]
    with multiprocessing.Pool() as pool:
        pool.map(_parse_header, names[:50])  # warm the workers' imports
        started = time.perf_counter()
        pool.map(_parse_header, names, chunksize=64)
        elapsed = time.perf_counter() - started
    return len(files) / elapsed


# --- database -----------------------------------------------------------------


def server_url() -> str:
    from core.db import database_url

    return database_url(load_settings())


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create an empty database with the study of record; drop it afterwards."""
    server = make_url(server_url())
    name = f"imagingops_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        _seed_study(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _seed_study(url: str) -> None:
    from core import migrate
    from core.db import make_engine, make_sessionmaker
    from core.models import Charter, Site, Sponsor, Study, Timepoint
    from tests.ingest_fixtures import charter_document

    engine = make_engine(url)
    migrate.upgrade(engine)
    with make_sessionmaker(engine).begin() as session:
        sponsor = Sponsor(name="Bench Pharma")
        session.add(sponsor)
        session.flush()
        study = Study(sponsor_id=sponsor.id, protocol_id=PROTOCOL, charter_version=1)
        session.add(study)
        session.flush()
        session.add(
            Charter(
                study_id=study.id,
                version=1,
                document=charter_document(list(TIMEPOINTS), 240),
                loaded_by="bench",
            )
        )
        for code in SITES:
            session.add(Site(study_id=study.id, site_code=code))
        for ordinal, code in enumerate(TIMEPOINTS):
            session.add(Timepoint(study_id=study.id, code=code, ordinal=ordinal))
    engine.dispose()


def count_instances(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.scalar(text("SELECT count(*) FROM instances")) or 0
    engine.dispose()
    return int(count)


# --- (b) drop folder ------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """Return a process's user plus system CPU time from /proc, 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(url: str) -> float:
    """Return the CPU time used so far by the server processes serving `url`."""
    engine = create_engine(url)
    with engine.connect() as conn:
        pids = conn.scalars(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).all()
    engine.dispose()
    return sum(cpu_seconds(pid) for pid in pids)


def measure_cpu(files: list[Path], workdir: Path, sample: int = 500) -> None:
    """Print CPU ms per file, in one process, of bare parsing and of `prepare`.

    CPU time, unlike the rates, changes little when other programs load the
    machine.
    """
    from datetime import UTC, datetime

    from core.ingest.prepare import Arrival, prepare

    chosen = files[:sample]
    started = time.process_time()
    for path in chosen:
        _parse_header(str(path))
    bare = (time.process_time() - started) / len(chosen) * 1000
    scratch = workdir / "cpu-run"
    now = datetime.now(UTC)
    started = time.process_time()
    for path in chosen:
        prepare(Arrival(path, now), scratch / "archive", scratch / "quarantine")
    full = (time.process_time() - started) / len(chosen) * 1000
    print(
        f"CPU per file, one process, {len(chosen)} files: bare parsing {bare:.2f} ms,"
        f" ingest worker (parse, checks, hash, archive copy) {full:.2f} ms"
    )


def measure_drop_ingest(files: list[Path], workdir: Path) -> tuple[float, int, int]:
    """Return files/s of drop-folder ingest, rows written and the peak RSS in MiB.

    Also prints the CPU ms per file of the ingest process (without its parse
    workers) and of the PostgreSQL server processes serving it.
    """
    from dataclasses import replace

    from core.ingest import ingest_folder
    from core.ingest.pipeline import start_pool
    from core.runtime import open_runtime

    data = workdir / "drop-run"
    drop = data / "drop"
    for path in files:
        target = drop / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    with fresh_database() as url:
        settings = replace(
            load_settings(),
            database_url=url,
            data_dir=data,
            drop_dir=drop,
            archive_dir=data / "archive",
            quarantine_dir=data / "quarantine",
        )
        runtime = open_runtime("bench", settings=settings)
        # The jobs process starts its fork server once, with the parse code
        # imported; start it here too, as (a) warms its pool before timing.
        with start_pool(1) as pool:
            pool.submit(os.getpid).result()
        backend_before = backend_cpu_seconds(url)
        cpu_before = time.process_time()
        started = time.perf_counter()
        report = ingest_folder(runtime, drop)
        elapsed = time.perf_counter() - started
        parent_ms = (time.process_time() - cpu_before) / len(files) * 1000
        backend_ms = (backend_cpu_seconds(url) - backend_before) / len(files) * 1000
        runtime.engine.dispose()
        rows = count_instances(url)
    print(
        f"CPU per file during (b): ingest process {parent_ms:.2f} ms, "
        f"PostgreSQL server {backend_ms:.2f} ms"
    )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    assert report.ingested == len(files), report
    return len(files) / elapsed, rows, peak_mib


# --- (c) C-STORE ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"receiver exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"receiver did not listen on port {port} in {seconds}s")


def write_profile(path: Path, contexts: set[tuple[str, str]]) -> None:
    """Write dcmtk association profiles for the files' SOP classes and syntaxes.

    Profile `Bench` (for storescu) proposes each file's own SOP class and transfer
    syntax, because stock storescu proposes none for SEG or JPEG 2000. Profile
    `BenchSCP` (for storescp) accepts the same pairs, grouped by SOP class,
    because dcmtk allows each SOP class only once in a receiver's profile.
    """
    syntaxes = sorted({syntax for _, syntax in contexts})
    classes = sorted({sop_class for sop_class, _ in contexts})
    lines = ["[[TransferSyntaxes]]"]
    for number, syntax in enumerate(syntaxes):
        lines += [f"[TS{number}]", f"TransferSyntax1 = {syntax}"]
    for number, sop_class in enumerate(classes):
        accepted = sorted(syntax for cls, syntax in contexts if cls == sop_class)
        lines.append(f"[Class{number}]")
        for index, syntax in enumerate(accepted, start=1):
            lines.append(f"TransferSyntax{index} = {syntax}")
    lines += ["[[PresentationContexts]]", "[Bench]"]
    for number, (sop_class, syntax) in enumerate(sorted(contexts), start=1):
        lines.append(
            f"PresentationContext{number} = {sop_class}\\TS{syntaxes.index(syntax)}"
        )
    lines.append("[BenchSCP]")
    for number, sop_class in enumerate(classes, start=1):
        lines.append(f"PresentationContext{number} = {sop_class}\\Class{number - 1}")
    lines += [
        "[[Profiles]]",
        "[Bench]",
        "PresentationContexts = Bench",
        "[BenchSCP]",
        "PresentationContexts = BenchSCP",
    ]
    path.write_text("\n".join(lines) + "\n")


def push(
    files: list[Path], port: int, profile: Path, associations: int, called: str
) -> float:
    """Send every file with storescu over `associations` parallel associations."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    shares = [files[index::associations] for index in range(associations)]
    started = time.perf_counter()
    senders = [
        subprocess.Popen(
            ["storescu", "-xf", str(profile), "Bench", "-aet", "BENCH", "-aec", called]
            + ["127.0.0.1", str(port)]
            + [str(path) for path in share],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        for share in shares
    ]
    for sender in senders:
        _, errors = sender.communicate(timeout=1800)
        if sender.returncode != 0:
            raise RuntimeError(f"storescu failed: {errors.decode()[-500:]}")
    return time.perf_counter() - started


def measure_flush(workdir: Path, count: int = 200) -> tuple[float, float]:
    """Return ms per 40 KB `write_durably` call with and without its two flushes.

    The receiver makes each instance durable this way before it replies Success.
    """
    from core.ingest.storage import write_durably

    data = os.urandom(40_000)
    timings = []
    for sync in (True, False):
        folder = workdir / f"flush-{sync}"
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        for index in range(count):
            write_durably(folder / f"{index}.dcm", data, sync=sync)
        timings.append((time.perf_counter() - started) / count * 1000)
        shutil.rmtree(folder)
    return timings[0], timings[1]


def measure_imagingops_scp(
    files: list[Path], workdir: Path, profile: Path, associations: int
) -> tuple[float, float]:
    """Return instances/s acknowledged and instances/s with rows written."""
    port = free_port()
    data = workdir / f"scp-run-{associations}"
    with fresh_database() as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "IMAGINGOPS_DATA_DIR": str(data),
            "IMAGINGOPS_SCP_PORT": str(port),
            "IMAGINGOPS_LOG_LEVEL": "WARNING",
        }
        receiver = subprocess.Popen(
            [sys.executable, str(PROJECT / "app.py"), "scp"], env=env
        )
        try:
            wait_for_port(port, receiver, 60)
            started = time.perf_counter()
            sent = push(files, port, profile, associations, "IMAGINGOPS")
            while count_instances(url) < len(files):
                if time.perf_counter() - started > 1800:
                    raise RuntimeError("rows were not written within 30 minutes")
                time.sleep(0.1)
            stored = time.perf_counter() - started
        finally:
            receiver.terminate()
            receiver.wait(timeout=120)
    return len(files) / sent, len(files) / stored


def measure_storescp(
    files: list[Path], workdir: Path, profile: Path, associations: int
) -> float:
    port = free_port()
    output = workdir / f"storescp-{associations}"
    output.mkdir()
    command = ["storescp", "-xf", str(profile), "BenchSCP", "-od", str(output)]
    if associations > 1:
        command.append("--fork")
    receiver = subprocess.Popen(
        command + [str(port)],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, receiver, 30)
        elapsed = push(files, port, profile, associations, "STORESCP")
    finally:
        receiver.terminate()
        receiver.wait(timeout=60)
    return len(files) / elapsed


def measure_orthanc(
    files: list[Path], workdir: Path, profile: Path, associations: int
) -> float:
    """Push to Orthanc in a network namespace of its own and return instances/s.

    Orthanc 1.10 has no setting for the address its DICOM server listens on, so it
    listens on every interface. Inside `unshare --net` loopback is the only one.
    """
    spec = workdir / f"orthanc-{associations}.json"
    spec.write_text(
        json.dumps(
            {
                "files": [str(path) for path in files],
                "workdir": str(workdir),
                "profile": str(profile),
                "associations": associations,
            }
        )
    )
    command = [sys.executable, str(Path(__file__).resolve()), "--orthanc-run"]
    result = subprocess.run(
        ["unshare", "--net", "--", *command, str(spec)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"Orthanc push failed: {result.stderr[-500:]}")
    return float(result.stdout.split()[-1])


def run_orthanc_inside(spec_path: Path) -> int:
    """Bring loopback up in this fresh namespace, push to Orthanc, print the rate."""
    spec = json.loads(spec_path.read_text())
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    rate = push_to_orthanc(
        [Path(name) for name in spec["files"]],
        Path(spec["workdir"]),
        Path(spec["profile"]),
        int(spec["associations"]),
    )
    print(rate)
    return 0


def push_to_orthanc(
    files: list[Path], workdir: Path, profile: Path, associations: int
) -> float:
    port = free_port()
    folder = workdir / f"orthanc-{associations}"
    folder.mkdir()
    config = {
        "Name": "imagingops-bench",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpServerEnabled": False,
        "RemoteAccessAllowed": False,
        "DicomAet": "ORTHANC",
        "DicomCheckCalledAet": False,
        "DicomPort": port,
        "DicomThreadsCount": 4,
        "TcpNoDelay": True,
        "Plugins": [],
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    # Orthanc receives through dcmtk, which reads TCP_NODELAY from the environment.
    receiver = subprocess.Popen(
        ["Orthanc", str(folder / "orthanc.json")],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, receiver, 60)
        elapsed = push(files, port, profile, associations, "ORTHANC")
    finally:
        receiver.terminate()
        receiver.wait(timeout=120)
    return len(files) / elapsed


# --- memory ---------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """Return a process's resident set size in MiB, 0 when it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def descendants(root: int) -> list[int]:
    """Return the ids of every process below `root`, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: list[int] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def measure_memory(count: int, workdir: Path) -> int:
    """Ingest `count` files from a drop folder, printing RSS as the rows go in."""
    from dataclasses import replace

    from core.ingest import ingest_folder
    from core.runtime import open_runtime

    data = workdir / "memory-run"
    started = time.perf_counter()
    build_corpus(data / "drop", count)
    print(f"built {count} files in {time.perf_counter() - started:.0f}s")
    step = max(1, count // 10)
    done = 0
    samples: list[tuple[int, float, float]] = []

    def sample(files: int) -> None:
        nonlocal done
        before, done = done, done + files
        if done // step > before // step or done == count:
            workers = [rss_mib(pid) for pid in descendants(os.getpid())]
            samples.append((done, rss_mib(os.getpid()), max(workers, default=0.0)))
            print(
                f"{done:>7} files: ingest process RSS {samples[-1][1]:.0f} MiB, "
                f"largest worker {samples[-1][2]:.0f} MiB"
            )

    with fresh_database() as url:
        settings = replace(
            load_settings(),
            database_url=url,
            data_dir=data,
            drop_dir=data / "drop",
            archive_dir=data / "archive",
            quarantine_dir=data / "quarantine",
        )
        runtime = open_runtime("bench", settings=settings)
        started = time.perf_counter()
        report = ingest_folder(runtime, settings.drop_dir, progress=sample)
        elapsed = time.perf_counter() - started
        runtime.engine.dispose()
    first, last = samples[0], samples[-1]
    print(
        f"ingested {report.ingested} files in {elapsed:.0f}s ({count / elapsed:.0f}/s);"
        f" ingest process RSS {first[1]:.0f} MiB after {first[0]} files, "
        f"{last[1]:.0f} MiB after {last[0]}"
    )
    return 0 if report.ingested == count else 1


# --- report ---------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = ""
    for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True
    ).stdout.splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    versions = {
        "python": platform.python_version(),
        "pydicom": pydicom.__version__,
        "pynetdicom": pynetdicom.__version__,
    }
    engine = create_engine(server_url())
    with engine.connect() as conn:
        versions["postgresql"] = str(conn.scalar(text("SHOW server_version")))
    engine.dispose()
    if shutil.which("storescu"):
        first = subprocess.run(
            ["storescu", "--version"], capture_output=True, text=True
        )
        versions["dcmtk"] = first.stdout.splitlines()[0].split()[2]
    if shutil.which("Orthanc"):
        first = subprocess.run(["Orthanc", "--version"], capture_output=True, text=True)
        versions["orthanc"] = first.stdout.splitlines()[0].split()[-1]
    memory = Path("/proc/meminfo").read_text().split()[1]
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "ram_gib": f"{int(memory) / 1024**2:.1f}",
        "load_average": str(os.getloadavg()),
        **versions,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000, help="files to build")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: temp)")
    parser.add_argument("--skip-orthanc", action="store_true")
    parser.add_argument("--skip-four", action="store_true", help="one association only")
    parser.add_argument(
        "--memory",
        type=int,
        metavar="FILES",
        help="only measure the RSS of a drop-folder ingest of this many files",
    )
    parser.add_argument("--orthanc-run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.orthanc_run:
        return run_orthanc_inside(args.orthanc_run)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="imagingops-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if args.memory:
            return measure_memory(args.memory, workdir)
        return run(args, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path) -> int:
    print(json.dumps(machine(), indent=2))
    started = time.perf_counter()
    files, contexts = build_corpus(workdir / "corpus", args.files)
    print(f"built {len(files)} files in {time.perf_counter() - started:.1f}s")
    profile = workdir / "bench.cfg"
    write_profile(profile, contexts)
    counts = [1] if args.skip_four else [1, 4]
    figures: dict[str, float] = {}

    figures["a_parse"] = rate = measure_parse(files)
    print(f"(a) bare header parsing, {os.cpu_count()} processes: {rate:.0f} files/s")
    measure_cpu(files, workdir)
    rate, rows, peak = measure_drop_ingest(files, workdir)
    figures["b_drop"] = rate
    print(
        f"(b) drop-folder ingest: {rate:.0f} files/s ({rows} rows, peak RSS {peak} MiB)"
    )
    flushed, unflushed = measure_flush(workdir)
    print(
        f"write_durably of 40 KB: {flushed:.2f} ms with fdatasync and folder fsync,"
        f" {unflushed:.2f} ms without"
    )
    for associations in counts:
        acked, stored = measure_imagingops_scp(files, workdir, profile, associations)
        figures[f"c_ack_{associations}"] = acked
        figures[f"c_rows_{associations}"] = stored
        print(
            f"(c) ImagingOps SCP, {associations} association(s): {acked:.0f}/s "
            f"acknowledged, {stored:.0f}/s with rows written"
        )
    if shutil.which("storescp"):
        for associations in counts:
            rate = measure_storescp(files, workdir, profile, associations)
            figures[f"storescp_{associations}"] = rate
            print(f"dcmtk storescp, {associations} association(s): {rate:.0f}/s")
    if not shutil.which("Orthanc") or not shutil.which("unshare"):
        print("Orthanc skipped: needs the Orthanc and unshare commands")
    elif not args.skip_orthanc:
        for associations in counts:
            rate = measure_orthanc(files, workdir, profile, associations)
            figures[f"orthanc_{associations}"] = rate
            print(f"Orthanc, {associations} association(s): {rate:.0f}/s")

    print(f"load average at the end (1, 5, 15 min): {os.getloadavg()}")
    print(f"ratio (b)/(a): {figures['b_drop'] / figures['a_parse']:.2f}")
    for associations in counts:
        for name in ("storescp", "orthanc"):
            other = figures.get(f"{name}_{associations}")
            if other:
                ack = figures[f"c_ack_{associations}"] / other
                rows = figures[f"c_rows_{associations}"] / other
                print(
                    f"ratio (c)/{name}, {associations} association(s): "
                    f"{ack:.2f} acknowledged, {rows:.2f} with rows"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
