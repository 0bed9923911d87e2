"""The C-STORE receiver over real sockets on loopback, sending with pynetdicom."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, Verification
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy import select

from core.models import Case, Instance, InstanceFinding
from core.runtime import Runtime
from jobs.ingest import incoming_dir, recover_archive
from jobs.scp import start_scp
from tests.ingest_fixtures import make_study, synth

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


@pytest.fixture
def scp(runtime: Runtime) -> Iterator[ThreadedAssociationServer]:
    server = start_scp(runtime, port=0)
    try:
        yield server
    finally:
        server.shutdown()


def _send(
    server: ThreadedAssociationServer,
    datasets: list[Dataset],
    transfer_syntax: str = EXPLICIT_LE,
) -> list[int]:
    ae = AE(ae_title="SITE_A")
    for sop_class in (CTImageStorage, MRImageStorage):
        ae.add_requested_context(sop_class, [transfer_syntax])
    host, port = server.server_address[:2]
    assoc = ae.associate(host, port, ae_title="IMAGINGOPS")
    assert assoc.is_established
    try:
        statuses = [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()
    return statuses


def test_scp_answers_verification(scp: ThreadedAssociationServer) -> None:
    ae = AE(ae_title="SITE_A")
    ae.add_requested_context(Verification)
    host, port = scp.server_address[:2]
    assoc = ae.associate(host, port, ae_title="IMAGINGOPS")
    assert assoc.is_established
    status = assoc.send_c_echo()
    assoc.release()
    assert status.Status == 0x0000


def test_scp_stores_then_ingests(
    runtime: Runtime, scp: ThreadedAssociationServer, tmp_path: Path
) -> None:
    make_study(runtime.sessions)
    files = [
        synth(tmp_path / "a.dcm"),
        synth(tmp_path / "b.dcm", source="MR_small.dcm"),
    ]
    datasets = [pydicom.dcmread(path) for path in files]

    statuses = _send(scp, datasets)
    handled = recover_archive(runtime)

    assert statuses == [0x0000, 0x0000]
    assert handled == 2
    assert list(incoming_dir(runtime.settings).iterdir()) == []
    with runtime.sessions() as session:
        instances = session.scalars(select(Instance).order_by(Instance.id)).all()
        case = session.scalars(select(Case)).one()
    assert {i.sop_instance_uid for i in instances} == {
        ds.SOPInstanceUID for ds in datasets
    }
    assert [i.source for i in instances] == ["scp", "scp"]
    assert [i.calling_ae for i in instances] == ["SITE_A", "SITE_A"]
    assert [i.calling_host for i in instances] == ["127.0.0.1", "127.0.0.1"]
    assert case.state == "received"


def test_scp_file_has_proper_file_meta(
    runtime: Runtime, scp: ThreadedAssociationServer, tmp_path: Path
) -> None:
    ds = pydicom.dcmread(synth(tmp_path / "a.dcm"))

    statuses = _send(scp, [ds], transfer_syntax=IMPLICIT_LE)
    recover_archive(runtime)

    assert statuses == [0x0000]
    with runtime.sessions() as session:
        instance = session.scalars(select(Instance)).one()
    stored = pydicom.dcmread(instance.archive_path)
    assert stored.file_meta.TransferSyntaxUID == IMPLICIT_LE
    assert stored.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert stored.SOPInstanceUID == ds.SOPInstanceUID
    assert instance.transfer_syntax_uid == IMPLICIT_LE


def test_scp_failed_write_leaves_nothing(
    runtime: Runtime,
    scp: ThreadedAssociationServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds = pydicom.dcmread(synth(tmp_path / "a.dcm"))

    def failing_sync(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("core.ingest.storage.os.fdatasync", failing_sync)
    statuses = _send(scp, [ds])
    monkeypatch.undo()
    handled = recover_archive(runtime)

    assert statuses == [0xA700]
    assert list(incoming_dir(runtime.settings).iterdir()) == []
    assert handled == 0
    with runtime.sessions() as session:
        assert session.scalars(select(Instance)).all() == []


def test_recover_archive_after_crash(runtime: Runtime, tmp_path: Path) -> None:
    """Files acknowledged before a crash, with no rows yet, are ingested on restart."""
    ds = pydicom.dcmread(synth(tmp_path / "a.dcm"))
    server = start_scp(runtime, port=0)
    _send(server, [ds])
    server.shutdown()

    assert len(list(incoming_dir(runtime.settings).iterdir())) == 1
    assert recover_archive(runtime) == 1
    assert recover_archive(runtime) == 0
    with runtime.sessions() as session:
        instance = session.scalars(select(Instance)).one()
    assert instance.sop_instance_uid == ds.SOPInstanceUID


def test_scp_long_uid_gets_a_status(
    runtime: Runtime, scp: ThreadedAssociationServer, tmp_path: Path
) -> None:
    """An over-long SOPInstanceUID still gets a DIMSE status, not an abort.

    pynetdicom refuses to send such a UID, so dcmtk's storescu sends it.
    """
    ds = pydicom.dcmread(synth(tmp_path / "a.dcm"))
    long_uid = "1.2.826.0.1.3680043.8.498." + "1234567890" * 5
    ds.SOPInstanceUID = long_uid
    ds.file_meta.MediaStorageSOPInstanceUID = long_uid
    ds.save_as(tmp_path / "long.dcm")
    host, port = scp.server_address[:2]

    sent = subprocess.run(
        ["storescu", "-v", "-aet", "SITE_B", "-aec", "IMAGINGOPS"]
        + [host, str(port), str(tmp_path / "long.dcm")],
        capture_output=True,
        text=True,
        env={**os.environ, "TCP_NODELAY": "1"},
        timeout=60,
    )
    recover_archive(runtime)

    assert sent.returncode == 0, sent.stderr
    assert "Received Store Response (Success)" in sent.stdout + sent.stderr
    with runtime.sessions() as session:
        instance = session.scalars(select(Instance)).one()
        codes = session.scalars(select(InstanceFinding.code)).all()
    assert instance.sop_instance_uid == long_uid
    assert instance.calling_ae == "SITE_B"
    assert "uid_too_long" in codes
