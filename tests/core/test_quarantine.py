"""Listing and releasing quarantined files."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.access import make_scope
from core.ingest import ingest_folder
from core.models import AuditEntry, Instance, QuarantinedFile
from core.quarantine import ReleaseError, list_quarantined, release_quarantined
from core.runtime import Runtime
from jobs.ingest import scan_drop_folder
from tests.ingest_fixtures import make_study, synth

LEADER = make_scope("leader", "leadership", frozenset())


def test_list_shows_reason_and_source(runtime: Runtime) -> None:
    (runtime.settings.drop_dir / "notes.txt").write_text("not an image")
    ingest_folder(runtime, runtime.settings.drop_dir)

    with runtime.sessions() as session:
        entries = list_quarantined(session, LEADER)

    assert len(entries) == 1
    assert entries[0]["file"] == "notes.txt"
    assert entries[0]["reason_code"] == "not_dicom"
    assert entries[0]["source"] == "drop folder"


def test_release_reingests_and_audits(runtime: Runtime) -> None:
    # A truncated upload is quarantined, and the site later re-sends the whole file.
    make_study(runtime.sessions)
    path = synth(runtime.settings.drop_dir / "a.dcm")
    content = path.read_bytes()
    path.write_bytes(content[:200])
    ingest_folder(runtime, runtime.settings.drop_dir)
    with runtime.sessions() as session:
        file_id = session.scalars(select(QuarantinedFile.id)).one()
        row = session.get(QuarantinedFile, file_id)
        assert row is not None
        stored_path = row.stored_path
    # The site sends the rest of the file; the manager puts the fixed copy back.
    with open(stored_path, "wb") as handle:
        handle.write(content)

    target = release_quarantined(
        runtime, file_id, actor="manager@cro", reason="site re-sent the full file"
    )
    handled = scan_drop_folder(runtime)

    assert target.is_relative_to(runtime.settings.drop_dir)
    assert handled == 1
    with runtime.sessions() as session:
        row = session.get(QuarantinedFile, file_id)
        audit_row = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "quarantine.released")
        ).one()
        instances = session.scalars(select(Instance)).all()
        open_entries = list_quarantined(session, LEADER)
    assert row is not None and row.released_by == "manager@cro"
    assert audit_row.reason == "site re-sent the full file"
    assert audit_row.entity_id == str(file_id)
    assert len(instances) == 1
    assert open_entries == []


def test_release_twice_is_rejected(runtime: Runtime) -> None:
    (runtime.settings.drop_dir / "notes.txt").write_text("not an image")
    ingest_folder(runtime, runtime.settings.drop_dir)
    with runtime.sessions() as session:
        file_id = session.scalars(select(QuarantinedFile.id)).one()
    release_quarantined(runtime, file_id, actor="manager@cro", reason="retry")

    with pytest.raises(ReleaseError, match="already released"):
        release_quarantined(runtime, file_id, actor="manager@cro", reason="retry")


def test_release_requires_a_reason(runtime: Runtime) -> None:
    with pytest.raises(ReleaseError, match="reason is required"):
        release_quarantined(runtime, 1, actor="manager@cro", reason=" ")
