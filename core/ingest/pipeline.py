"""Folder ingest: parse in worker processes, write rows in batches, then clean up.

For each batch: the workers parse every file and write its archive (or quarantine)
copy durably; one transaction writes the batch's rows; only after that commit are
the inputs removed. A crash at any point therefore leaves each input either still in
place (and ingested again, idempotently, on the next run) or committed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from pathlib import Path

from sqlalchemy.exc import DataError

from core.db import transaction
from core.ingest.prepare import Arrival, Prepared, prepare
from core.ingest.storage import (
    quarantine_path,
    remove_input,
    sync_filesystem,
    write_durably,
)
from core.ingest.writer import BatchOutcome, write_batch
from core.runtime import Runtime

log = logging.getLogger(__name__)

# Below this many files a pool costs more to start than it saves.
POOL_THRESHOLD = 32
Progress = Callable[[int], object]


@dataclass
class IngestReport:
    """Counts of one ingest run.

    `unmatched` counts ingested instances with no case yet; `conflicts` are files
    whose SOPInstanceUID is stored with other content (kept in quarantine, and not
    counted in `quarantined`).
    """

    ingested: int = 0
    duplicates: int = 0
    quarantined: int = 0
    conflicts: int = 0
    unmatched: int = 0
    cases_created: int = 0
    skipped: int = 0

    def add(self, outcome: BatchOutcome) -> None:
        self.ingested += outcome.ingested
        self.duplicates += outcome.duplicates
        self.quarantined += outcome.quarantined
        self.conflicts += outcome.conflicts
        self.unmatched += outcome.unmatched
        self.cases_created += outcome.cases_created

    @property
    def handled(self) -> int:
        return self.ingested + self.duplicates + self.quarantined + self.conflicts


def walk_files(folder: Path) -> Iterator[Path]:
    """Yield every regular file under `folder`, skipping hidden in-progress names."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def ingest_folder(
    runtime: Runtime,
    folder: Path,
    *,
    source: str = "drop",
    progress: Progress | None = None,
    remove_inputs: bool = True,
) -> IngestReport:
    """Ingest every file under `folder` (recursively) and return the counts."""
    now = datetime.now(UTC)
    arrivals = (Arrival(path, now, source) for path in walk_files(folder))
    return ingest_arrivals(
        runtime, arrivals, progress=progress, remove_inputs=remove_inputs
    )


def ingest_arrivals(
    runtime: Runtime,
    arrivals: Iterable[Arrival],
    *,
    progress: Progress | None = None,
    remove_inputs: bool = True,
    workers: int | None = None,
    link: bool = False,
    pool: Executor | None = None,
) -> IngestReport:
    """Ingest the given files in batches of `settings.ingest_batch_size`.

    Files are parsed in `pool` when given, else in a process pool of `workers`
    (default: one per CPU) started for this call when there are enough files.
    `link` hard-links an input into the archive instead of copying it, when both
    are on one filesystem and the input did not change while it was read. The
    input's name is removed only after its rows commit, so the archive copy
    exists before the input disappears. Use it only for files this process wrote
    and flushed, as the receiver's are. A sender that rewrites a dropped file in
    place before its name is removed would change the archived copy too, and the
    link saved no measurable CPU on drop-folder uploads.
    """
    settings = runtime.settings
    batches = _chunks(iter(arrivals), settings.ingest_batch_size)
    first = next(batches, None)
    report = IngestReport()
    if first is None:
        return report
    batches = _prepend(first, batches)
    work = partial(
        prepare,
        archive_dir=settings.archive_dir,
        quarantine_dir=settings.quarantine_dir,
        link=link,
    )
    # Leaving this block waits until every committed input is deleted.
    with ThreadPoolExecutor(1, thread_name_prefix="ingest-delete") as deleter:
        cleanup = _Cleanup(remove_inputs, deleter)
        if pool is not None:
            _run_pipelined(runtime, pool, work, batches, report, progress, cleanup)
            return report
        count = workers if workers is not None else (os.cpu_count() or 1)
        if len(first) < POOL_THRESHOLD or count <= 1:
            for batch in batches:
                prepared = [work(arrival) for arrival in batch]
                _commit_batch(runtime, prepared, report, progress, cleanup)
            return report
        with start_pool(count) as own_pool:
            _run_pipelined(runtime, own_pool, work, batches, report, progress, cleanup)
    return report


@dataclass(frozen=True)
class _Cleanup:
    """Deletes of the files that committed batches made redundant.

    Deleting a file can wait on the disk. On an ext4 filesystem mounted with
    online discard it took about 1.5 ms per file on the benchmark machine, so a
    thread of its own deletes them while the next batch's rows are written.
    """

    remove_inputs: bool
    deleter: ThreadPoolExecutor


def start_pool(workers: int) -> ProcessPoolExecutor:
    """Start parse workers; forkserver keeps the parent's database sockets out.

    The fork server, started once per process, imports the parse code before
    forking, so workers start ready. On the loaded 2-core benchmark machine a
    2-worker pool then started in 0.25 s instead of 1.9 to 2.7 s.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([prepare.__module__])
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_ignore_interrupt
    )


def _ignore_interrupt() -> None:
    # Ctrl-C reaches the whole process group; the parent decides when workers stop,
    # so a worker must not die with a KeyboardInterrupt traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_pipelined(
    runtime: Runtime,
    pool: Executor,
    work: Callable[[Arrival], Prepared],
    batches: Iterator[list[Arrival]],
    report: IngestReport,
    progress: Progress | None,
    cleanup: _Cleanup,
) -> None:
    """Keep the next batch parsing in the workers while this one is written."""
    chunk = max(1, runtime.settings.ingest_batch_size // 16)
    # Executor.map submits the whole batch at once and yields results in order.
    in_flight: list[Iterator[Prepared]] = []
    for batch in batches:
        in_flight.append(pool.map(work, batch, chunksize=chunk))
        if len(in_flight) > 1:
            prepared = list(in_flight.pop(0))
            _commit_batch(runtime, prepared, report, progress, cleanup)
    for results in in_flight:
        _commit_batch(runtime, list(results), report, progress, cleanup)


def _commit_batch(
    runtime: Runtime,
    prepared: list[Prepared],
    report: IngestReport,
    progress: Progress | None,
    cleanup: _Cleanup,
) -> None:
    """Write one batch in one transaction, then remove the inputs it committed."""
    unread = [item for item in prepared if item.read_error is not None]
    for item in unread:
        log.error(
            "Cannot read %s, left in place: %s", item.arrival.path, item.read_error
        )
    readable = [item for item in prepared if item.read_error is None]
    # Archive and quarantine copies must be durable before their rows commit.
    sync_filesystem(runtime.settings.archive_dir)
    sync_filesystem(runtime.settings.quarantine_dir)
    try:
        outcomes = [_write(runtime, readable)]
    except DataError:
        # One value the database rejects must not block the whole batch forever.
        log.warning(
            "Batch of %d files hit a data error; retrying file by file", len(readable)
        )
        outcomes = [_write_alone(runtime, item) for item in readable]
    for outcome in outcomes:
        _finish(outcome, report, cleanup)
    report.skipped += len(unread)
    if progress is not None:
        progress(len(prepared))


def _write(runtime: Runtime, batch: list[Prepared]) -> BatchOutcome:
    try:
        with transaction(runtime.sessions) as session:
            return write_batch(session, batch, runtime.settings.quarantine_dir)
    except DataError:
        raise
    except Exception:
        log.exception(
            "Batch of %d files failed to commit; inputs kept, first is %s",
            len(batch),
            batch[0].arrival.path.name if batch else "-",
        )
        raise


def _write_alone(runtime: Runtime, item: Prepared) -> BatchOutcome:
    """Write one file; quarantine it when the database rejects one of its values."""
    try:
        return _write(runtime, [item])
    except DataError as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        log.error("Database rejected a value of %s: %s", item.arrival.path.name, reason)
    source = item.stored_path
    assert source is not None and item.sha256 is not None
    target = quarantine_path(
        runtime.settings.quarantine_dir, item.sha256, item.arrival.path.name
    )
    write_durably(target, source.read_bytes())
    rejected = replace(
        item,
        header=None,
        stored_path=target,
        reject_code="row_rejected",
        reject_reason=f"the database rejected a header value: {reason}",
    )
    outcome = _write(runtime, [rejected])
    if item.header is not None:
        outcome.orphans.append(source)
    return outcome


def _finish(outcome: BatchOutcome, report: IngestReport, cleanup: _Cleanup) -> None:
    """Queue the deletes a committed batch made safe, and count it."""
    redundant = list(outcome.orphans)
    if cleanup.remove_inputs:
        redundant += outcome.done
    cleanup.deleter.submit(_delete, redundant)
    report.add(outcome)
    log.info(
        "Ingest batch committed: %d ingested (%d unmatched), %d duplicates, "
        "%d conflicts, %d quarantined, %d cases created",
        outcome.ingested,
        outcome.unmatched,
        outcome.duplicates,
        outcome.conflicts,
        outcome.quarantined,
        outcome.cases_created,
    )


def _delete(paths: list[Path]) -> None:
    """Delete files whose rows are committed; a failure leaves a duplicate to skip."""
    for path in paths:
        try:
            remove_input(path)
        except OSError as exc:
            log.warning("Cannot delete %s after its rows committed: %s", path, exc)


def _chunks(items: Iterator[Arrival], size: int) -> Iterator[list[Arrival]]:
    while batch := list(islice(items, size)):
        yield batch


def _prepend(
    first: list[Arrival], rest: Iterator[list[Arrival]]
) -> Iterator[list[Arrival]]:
    yield first
    yield from rest
