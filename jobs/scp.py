"""DICOM C-STORE receiver (pynetdicom) that feeds the ingest core.

The C-STORE handler does the least work that makes an instance safe: it writes the
received stream, undecoded, with file meta information (DICOM PS3.10 section 7.1)
to `<archive>/incoming/`, fsyncs it, and only then returns Success (0x0000). Rows
are written in batches afterwards by `recover_archive`, which a thread of the
receiver calls and which also finds files acknowledged before a crash.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, cast

from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    evt,
)
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from core.ingest.pipeline import start_pool
from core.ingest.storage import write_durably
from core.runtime import Runtime
from jobs.ingest import incoming_dir, recover_archive

log = logging.getLogger(__name__)

# DICOM PS3.4 annex B.2.3 C-STORE statuses.
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
GATHER_SECONDS = 0.5
PARSE_WORKERS = max(1, (os.cpu_count() or 1) - 1)
# Largest PDU the receiver accepts; bigger PDUs mean fewer reads per instance.
MAX_PDU_BYTES = 4 * 1024 * 1024
# How long an association's idle DUL thread sleeps before polling again.
DUL_LOOP_DELAY_SECONDS = 0.0001


def incoming_name(calling_ae: str, calling_host: str) -> str:
    """Return a unique file name that carries the sender, for `parse_incoming_name`."""
    ae = calling_ae.strip().encode("ascii", errors="replace").hex() or "00"
    host = calling_host.replace(":", "_")
    return f"{time.time_ns()}-{uuid.uuid4().hex}-{ae}-{host}.dcm"


def _tune_connection(event: Event) -> None:
    """Cut the per-message latency of a new association's connection.

    Nagle's algorithm would hold back each small DIMSE reply. pynetdicom's DUL
    thread sleeps `_run_loop_delay` (1 ms in pynetdicom 3.0) whenever it finds
    nothing to do, which adds up to that much to every C-STORE response.
    """
    sock = event.assoc.dul.socket.socket if event.assoc.dul.socket else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # NOTE: a private pynetdicom attribute; a shorter delay costs idle CPU while
    # the association is open.
    event.assoc.dul._run_loop_delay = DUL_LOOP_DELAY_SECONDS


def _handle_store(event: Event, folder: Path, wake: threading.Event) -> int:
    """Store one received instance durably and return a DICOM status."""
    requestor = event.assoc.requestor
    calling_ae = requestor.ae_title
    request = cast(C_STORE, event.request)
    target = folder / incoming_name(calling_ae, requestor.address)
    try:
        data = event.encoded_dataset(include_meta=True)
        write_durably(target, data)
    except OSError:
        log.exception(
            "Storing instance %s from %s failed; replied Out of Resources",
            request.AffectedSOPInstanceUID,
            calling_ae,
        )
        return STATUS_OUT_OF_RESOURCES
    except Exception:
        log.exception(
            "Instance %s from %s could not be encoded; replied Cannot Understand",
            request.AffectedSOPInstanceUID,
            calling_ae,
        )
        return STATUS_CANNOT_UNDERSTAND
    wake.set()
    return STATUS_SUCCESS


def build_ae(runtime: Runtime) -> AE:
    """Return an AE accepting Verification and every storage SOP class."""
    ae = AE(ae_title=runtime.settings.scp_ae_title)
    ae.maximum_pdu_size = MAX_PDU_BYTES
    ae.maximum_associations = 16
    for context in AllStoragePresentationContexts:
        assert context.abstract_syntax is not None
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    return ae


def start_scp(
    runtime: Runtime,
    *,
    port: int | None = None,
    wake: threading.Event | None = None,
) -> ThreadedAssociationServer:
    """Start the receiver without blocking; port 0 picks a free port.

    `wake` is set after each stored instance, for a thread that ingests the
    received files.
    """
    folder = incoming_dir(runtime.settings)
    folder.mkdir(parents=True, exist_ok=True)
    handlers: list[Any] = [
        (evt.EVT_C_STORE, _handle_store, [folder, wake or threading.Event()]),
        (evt.EVT_CONN_OPEN, _tune_connection),
    ]
    address = (
        runtime.settings.scp_host,
        runtime.settings.scp_port if port is None else port,
    )
    ae = build_ae(runtime)
    server = ae.start_server(address, block=False, evt_handlers=handlers)
    assert server is not None and server.socket is not None
    server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    log.info(
        "DICOM receiver %s listening on %s:%d",
        runtime.settings.scp_ae_title,
        *server.server_address[:2],
    )
    return server


def ingest_received(
    runtime: Runtime, wake: threading.Event, stop: threading.Event
) -> None:
    """Ingest received files until `stop` is set, waking on each stored instance.

    Parsing runs in a process pool that lives as long as this loop, so the
    receiving threads keep this process's interpreter to themselves.
    """
    interval = runtime.settings.ingest_interval_seconds
    with start_pool(PARSE_WORKERS) as pool:
        while not stop.is_set():
            wake.wait(timeout=interval)
            # Let a few more instances arrive, so rows go in as one batch.
            stop.wait(GATHER_SECONDS)
            wake.clear()
            try:
                recover_archive(runtime, pool=pool)
            except Exception:
                # One bad batch must not stop the receiver; files stay for a retry.
                log.exception("Ingest of received files failed; retry in %ds", interval)
                stop.wait(interval)
        recover_archive(runtime, pool=pool)


def run_scp(runtime: Runtime) -> int:
    """Run the receiver and its ingest thread until SIGTERM or SIGINT."""
    wake = threading.Event()
    stop = threading.Event()
    worker = threading.Thread(
        target=ingest_received, args=(runtime, wake, stop), name="scp-ingest"
    )
    worker.start()
    server = start_scp(runtime, wake=wake)

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stop.wait(1.0):
        pass
    log.info("Stopping the DICOM receiver")
    server.shutdown()
    wake.set()
    worker.join()
    log.info("DICOM receiver stopped")
    return 0
