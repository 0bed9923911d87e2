"""Drop-folder ingest end to end: files in, rows and archive copies out."""

from __future__ import annotations

import shutil
import signal
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from core.ingest import ingest_folder
from core.ingest.pipeline import start_pool
from core.models import (
    AuditEntry,
    Case,
    Exam,
    Instance,
    InstanceFinding,
    QuarantinedFile,
    Subject,
)
from core.runtime import Runtime
from tests.ingest_fixtures import SLA_HOURS, make_study, pydicom_file, synth


def _count(runtime: Runtime, model: type) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_ingest_groups_instances_into_cases(runtime: Runtime) -> None:
    make_study(runtime.sessions)
    drop = runtime.settings.drop_dir
    exam = pydicom.uid.generate_uid()
    synth(drop / "a.dcm", study_uid=exam)
    synth(drop / "b.dcm", study_uid=exam, source="MR_small.dcm")
    synth(drop / "c.dcm", timepoint="W8")

    report = ingest_folder(runtime, drop)

    assert report.ingested == 3
    assert report.cases_created == 2
    assert report.unmatched == 0
    assert list(drop.iterdir()) == []
    with runtime.sessions() as session:
        cases = session.scalars(select(Case).order_by(Case.id)).all()
        assert [case.state for case in cases] == ["received", "received"]
        assert cases[0].charter_version == 1
        assert cases[0].due_at == cases[0].first_received_at + timedelta(
            hours=SLA_HOURS
        )
        subject = session.scalars(select(Subject)).one()
        assert subject.subject_code == "301-0001"
        actions = session.scalars(select(AuditEntry.action)).all()
        assert sorted(actions) == ["case.created", "case.created", "subject.created"]
        exams = session.scalars(select(Exam).where(Exam.case_id == cases[0].id)).all()
        assert [e.study_instance_uid for e in exams] == [exam]


def test_ingest_archives_a_copy_by_content(runtime: Runtime) -> None:
    make_study(runtime.sessions)
    source = synth(runtime.settings.drop_dir / "a.dcm")
    content = source.read_bytes()

    ingest_folder(runtime, runtime.settings.drop_dir)

    with runtime.sessions() as session:
        instance = session.scalars(select(Instance)).one()
    assert Path(instance.archive_path).read_bytes() == content
    assert Path(instance.archive_path).is_relative_to(runtime.settings.archive_dir)
    assert instance.size_bytes == len(content)
    assert instance.ct_subject == "301-0001"
    assert instance.source == "drop"


def test_reingest_counts_duplicates(runtime: Runtime, tmp_path: Path) -> None:
    make_study(runtime.sessions)
    originals = tmp_path / "originals"
    synth(originals / "a.dcm")
    synth(originals / "b.dcm", source="MR_small.dcm")
    shutil.copytree(originals, runtime.settings.drop_dir, dirs_exist_ok=True)
    first = ingest_folder(runtime, runtime.settings.drop_dir)
    shutil.copytree(originals, runtime.settings.drop_dir, dirs_exist_ok=True)

    second = ingest_folder(runtime, runtime.settings.drop_dir)

    assert first.ingested == 2
    assert second.ingested == 0
    assert second.duplicates == 2
    assert second.cases_created == 0
    assert _count(runtime, Instance) == 2
    assert _count(runtime, Case) == 1


def test_later_arrival_moves_last_received(runtime: Runtime) -> None:
    make_study(runtime.sessions)
    synth(runtime.settings.drop_dir / "a.dcm")
    ingest_folder(runtime, runtime.settings.drop_dir)
    with runtime.sessions() as session:
        before = session.scalars(select(Case)).one()
    synth(runtime.settings.drop_dir / "b.dcm", source="MR_small.dcm")

    ingest_folder(runtime, runtime.settings.drop_dir)

    with runtime.sessions() as session:
        after = session.scalars(select(Case)).one()
    assert after.first_received_at == before.first_received_at
    assert after.last_received_at > before.last_received_at


def test_non_dicom_file_is_quarantined(runtime: Runtime) -> None:
    drop = runtime.settings.drop_dir
    (drop / "notes.txt").write_text("scan list for visit 2\n")

    report = ingest_folder(runtime, drop)

    assert report.quarantined == 1
    assert not (drop / "notes.txt").exists()
    with runtime.sessions() as session:
        row = session.scalars(select(QuarantinedFile)).one()
    assert row.reason_code == "not_dicom"
    assert row.original_name == "notes.txt"
    assert row.source == "drop"
    assert Path(row.stored_path).read_text() == "scan list for visit 2\n"


def test_unknown_protocol_is_stored_unmatched(runtime: Runtime) -> None:
    make_study(runtime.sessions)
    synth(runtime.settings.drop_dir / "a.dcm", protocol="NOT-A-STUDY")

    report = ingest_folder(runtime, runtime.settings.drop_dir)

    assert report.ingested == 1
    assert report.unmatched == 1
    assert _count(runtime, Case) == 0
    with runtime.sessions() as session:
        exam = session.scalars(select(Exam)).one()
        codes = session.scalars(select(InstanceFinding.code)).all()
    assert exam.case_id is None
    assert "unmatched_study" in codes


def test_unknown_site_does_not_enrol(runtime: Runtime) -> None:
    make_study(runtime.sessions)
    synth(runtime.settings.drop_dir / "a.dcm", site="S99")

    report = ingest_folder(runtime, runtime.settings.drop_dir)

    assert report.unmatched == 1
    assert _count(runtime, Subject) == 0
    with runtime.sessions() as session:
        codes = session.scalars(select(InstanceFinding.code)).all()
    assert "unmatched_site" in codes


def test_input_kept_when_commit_fails(runtime: Runtime) -> None:
    make_study(runtime.sessions)
    source = synth(runtime.settings.drop_dir / "a.dcm")
    with runtime.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION test_reject_instance() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END; $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER test_reject BEFORE INSERT ON instances "
                "FOR EACH ROW EXECUTE FUNCTION test_reject_instance()"
            )
        )
    try:
        with pytest.raises(DBAPIError):
            ingest_folder(runtime, runtime.settings.drop_dir)
    finally:
        with runtime.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER test_reject ON instances"))
            conn.execute(text("DROP FUNCTION test_reject_instance()"))

    assert source.exists()
    assert _count(runtime, Instance) == 0
    assert _count(runtime, Case) == 0
    assert _count(runtime, AuditEntry) == 0
    report = ingest_folder(runtime, runtime.settings.drop_dir)
    assert report.ingested == 1
    assert not source.exists()


def test_conflict_keeps_both_copies(runtime: Runtime, tmp_path: Path) -> None:
    make_study(runtime.sessions)
    original = synth(runtime.settings.drop_dir / "a.dcm")
    ds = pydicom.dcmread(original)
    ingest_folder(runtime, runtime.settings.drop_dir)
    ds.SeriesDescription = "changed after sending"
    ds.save_as(runtime.settings.drop_dir / "a2.dcm")

    report = ingest_folder(runtime, runtime.settings.drop_dir)

    assert report.conflicts == 1
    assert report.ingested == 0
    with runtime.sessions() as session:
        instance = session.scalars(select(Instance)).one()
        row = session.scalars(select(QuarantinedFile)).one()
    assert row.reason_code == "sop_conflict"
    assert row.conflict_instance_id == instance.id
    assert row.sop_instance_uid == instance.sop_instance_uid
    assert instance.content_sha256 in row.reason
    assert row.content_sha256 in row.reason
    assert row.content_sha256 != instance.content_sha256
    assert Path(row.stored_path).exists()
    assert Path(instance.archive_path).exists()


def test_progress_callback_counts_files(runtime: Runtime) -> None:
    shutil.copy(pydicom_file("CT_small.dcm"), runtime.settings.drop_dir / "a.dcm")
    (runtime.settings.drop_dir / "b.txt").write_text("x")
    done: list[int] = []

    ingest_folder(runtime, runtime.settings.drop_dir, progress=done.append)

    assert sum(done) == 2


def test_rejected_value_quarantines_one_file(runtime: Runtime) -> None:
    """A value the database rejects quarantines its file, and the rest goes in."""
    make_study(runtime.sessions)
    bad = synth(runtime.settings.drop_dir / "bad.dcm")
    synth(runtime.settings.drop_dir / "good.dcm", source="MR_small.dcm")
    bad_uid = pydicom.dcmread(bad).SOPInstanceUID
    with runtime.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION test_reject_value() RETURNS trigger LANGUAGE plpgsql "
                f"AS $$ BEGIN IF NEW.sop_instance_uid = '{bad_uid}' THEN RAISE "
                "EXCEPTION 'value too long' USING ERRCODE = '22001'; END IF; "
                "RETURN NEW; END; $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER test_reject_value BEFORE INSERT ON instances "
                "FOR EACH ROW EXECUTE FUNCTION test_reject_value()"
            )
        )
    try:
        report = ingest_folder(runtime, runtime.settings.drop_dir)
    finally:
        with runtime.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER test_reject_value ON instances"))
            conn.execute(text("DROP FUNCTION test_reject_value()"))

    assert report.ingested == 1
    assert report.quarantined == 1
    assert list(runtime.settings.drop_dir.iterdir()) == []
    with runtime.sessions() as session:
        row = session.scalars(select(QuarantinedFile)).one()
        stored = session.scalars(select(Instance.sop_instance_uid)).all()
    assert row.reason_code == "row_rejected"
    assert "value too long" in row.reason
    assert bad_uid not in stored
    assert Path(row.stored_path).exists()


def test_parse_workers_ignore_interrupt() -> None:
    """Ctrl-C reaches the whole process group; only the parent may act on it."""
    with start_pool(1) as pool:
        handler = pool.submit(signal.getsignal, signal.SIGINT).result()
    assert handler == signal.SIG_IGN
