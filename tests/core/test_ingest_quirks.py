"""Header quirks that sites send: each becomes a finding, never a crash."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select

from core.ingest import ingest_folder
from core.models import (
    Case,
    Exam,
    Instance,
    InstanceFinding,
    QuarantinedFile,
    Series,
    Subject,
)
from core.runtime import Runtime
from tests.ingest_fixtures import make_study, pydicom_file, synth


def _findings(runtime: Runtime, sop_uid: str) -> dict[str, list[str | None]]:
    """Return finding codes of one instance, each with the paths it was found at."""
    with runtime.sessions() as session:
        rows = session.execute(
            select(InstanceFinding.code, InstanceFinding.path)
            .join(Instance, Instance.id == InstanceFinding.instance_id)
            .where(Instance.sop_instance_uid == sop_uid)
        ).all()
    codes: dict[str, list[str | None]] = {}
    for code, path in rows:
        codes.setdefault(code, []).append(path)
    return codes


def _instance(runtime: Runtime, sop_uid: str) -> Instance:
    with runtime.sessions() as session:
        return session.scalars(
            select(Instance).where(Instance.sop_instance_uid == sop_uid)
        ).one()


def _edited(runtime: Runtime, name: str, **values: object) -> Dataset:
    """Write a re-tagged CT_small with the given top-level values into the drop."""
    path = synth(runtime.settings.drop_dir / name)
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)
    return ds


def test_files_without_meta_are_one_instance(runtime: Runtime) -> None:
    drop = runtime.settings.drop_dir
    for name in ("ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm"):
        shutil.copy(pydicom_file(name), drop / name)

    report = ingest_folder(runtime, drop)

    assert report.ingested == 1
    assert report.duplicates == 1
    assert report.conflicts == 0
    codes = _findings(runtime, "1.2.333.4444.5.6.7.8")
    assert "no_file_meta" in codes


def test_unknown_charsets_are_flagged(runtime: Runtime) -> None:
    unknown = _edited(runtime, "a.dcm", SpecificCharacterSet="Not Supplied")
    misspelt = _edited(runtime, "b.dcm", SpecificCharacterSet="ISO_2022_IR_6")

    report = ingest_folder(runtime, runtime.settings.drop_dir)

    assert report.ingested == 2
    assert _findings(runtime, unknown.SOPInstanceUID)["charset_unknown"] == [
        "SpecificCharacterSet"
    ]
    assert "charset_unknown" in _findings(runtime, misspelt.SOPInstanceUID)


def test_latin1_bytes_as_utf8_are_flagged(runtime: Runtime) -> None:
    path = synth(runtime.settings.drop_dir / "a.dcm")
    ds = pydicom.dcmread(path)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.add_new(0x0008103E, "LO", "Thorax gr\xfcn".encode("latin-1"))
    ds.save_as(path)

    ingest_folder(runtime, runtime.settings.drop_dir)

    codes = _findings(runtime, ds.SOPInstanceUID)
    assert codes["charset_mismatch"] == ["SeriesDescription"]
    with runtime.sessions() as session:
        description = session.scalar(select(Series.description))
    assert description == "Thorax gr\ufffdn"


def test_empty_charset_file_does_not_raise(runtime: Runtime) -> None:
    shutil.copy(pydicom_file("empty_charset_LEI.dcm"), runtime.settings.drop_dir)
    valid = _edited(runtime, "b.dcm", SpecificCharacterSet="")

    report = ingest_folder(runtime, runtime.settings.drop_dir)

    # The pydicom file has no instance UIDs at all, so it is quarantined for that.
    assert report.quarantined == 1
    assert report.ingested == 1
    with runtime.sessions() as session:
        reason = session.scalar(select(QuarantinedFile.reason_code))
    assert reason == "missing_uid"
    codes = _findings(runtime, valid.SOPInstanceUID)
    assert "charset_unknown" not in codes
    assert "charset_mismatch" not in codes


def test_invalid_dates_never_start_a_clock(runtime: Runtime) -> None:
    make_study(runtime.sessions)
    dashed = _edited(runtime, "a.dcm", StudyDate="2019-01-01")
    impossible = _edited(runtime, "b.dcm", StudyDate="20190230")
    empty = _edited(runtime, "c.dcm", StudyDate="", StudyTime="250000")
    started = datetime.now(UTC)

    ingest_folder(runtime, runtime.settings.drop_dir)

    assert _findings(runtime, dashed.SOPInstanceUID)["date_invalid"] == ["StudyDate"]
    assert "date_invalid" in _findings(runtime, impossible.SOPInstanceUID)
    empty_codes = _findings(runtime, empty.SOPInstanceUID)
    assert empty_codes["date_missing"] == ["StudyDate"]
    assert empty_codes["time_invalid"] == ["StudyTime"]
    with runtime.sessions() as session:
        study_dates = session.scalars(select(Exam.study_date)).all()
        case = session.scalars(select(Case)).one()
    assert study_dates == [None, None, None]
    assert case.first_received_at >= started


def test_decimal_comma_is_read_leniently(runtime: Runtime) -> None:
    path = synth(runtime.settings.drop_dir / "a.dcm")
    ds = pydicom.dcmread(path)
    ds.SliceThickness = "9.875"
    ds.save_as(path)
    # pydicom refuses to write "2,5", so the comma goes into the bytes directly,
    # space-padded to the placeholder's even length.
    content = path.read_bytes()
    assert content.count(b"9.875 ") == 1
    path.write_bytes(content.replace(b"9.875 ", b"2,5   "))

    ingest_folder(runtime, runtime.settings.drop_dir)

    assert _instance(runtime, ds.SOPInstanceUID).slice_thickness_mm == 2.5
    assert _findings(runtime, ds.SOPInstanceUID)["number_lenient"] == ["SliceThickness"]


def test_bad_integer_string_is_flagged(runtime: Runtime) -> None:
    shutil.copy(pydicom_file("badVR.dcm"), runtime.settings.drop_dir)

    report = ingest_folder(runtime, runtime.settings.drop_dir)

    assert report.ingested == 1
    sop_uid = "1.9.999.999.99.9.9999.9999.20030818153516"
    assert _instance(runtime, sop_uid).number_of_frames is None
    assert _findings(runtime, sop_uid)["number_invalid"] == ["NumberOfFrames"]


def test_long_uids_are_stored_as_sent(runtime: Runtime) -> None:
    make_study(runtime.sessions)
    long_sop = "1.2.826.0.1.3680043.8.498." + "1234567890" * 5
    long_study = "1.2.826.0.1.3680043.8.498.9." + "9876543210" * 5
    long_subject = "301-" + "7" * 70
    _edited(
        runtime,
        "a.dcm",
        SOPInstanceUID=long_sop,
        StudyInstanceUID=long_study,
        ClinicalTrialSubjectID=long_subject,
    )

    report = ingest_folder(runtime, runtime.settings.drop_dir)

    assert report.ingested == 1
    assert report.unmatched == 1
    instance = _instance(runtime, long_sop)
    assert instance.ct_subject == long_subject
    codes = _findings(runtime, long_sop)
    assert sorted(codes["uid_too_long"]) == ["SOPInstanceUID", "StudyInstanceUID"]
    assert codes["value_too_long"] == ["ClinicalTrialSubjectID"]
    assert "unmatched_subject" in codes
    with runtime.sessions() as session:
        exam = session.scalars(select(Exam)).one()
        subjects = session.scalars(select(Subject)).all()
    assert exam.study_instance_uid == long_study
    assert subjects == []


def test_enhanced_slice_thickness_from_groups(runtime: Runtime) -> None:
    shutil.copy(pydicom_file("liver_1frame.dcm"), runtime.settings.drop_dir)

    ingest_folder(runtime, runtime.settings.drop_dir)

    with runtime.sessions() as session:
        instance = session.scalars(select(Instance)).one()
    assert instance.slice_thickness_mm == 1.0


def test_frame_counts_are_recorded(runtime: Runtime) -> None:
    uids = {}
    for name in ("rtdose.dcm", "examples_ybr_color.dcm"):
        shutil.copy(pydicom_file(name), runtime.settings.drop_dir)
        uids[name] = pydicom.dcmread(pydicom_file(name)).SOPInstanceUID

    ingest_folder(runtime, runtime.settings.drop_dir)

    assert _instance(runtime, uids["rtdose.dcm"]).number_of_frames == 15
    assert _instance(runtime, uids["examples_ybr_color.dcm"]).number_of_frames == 30


def test_large_private_value_stays_out(runtime: Runtime) -> None:
    path = synth(runtime.settings.drop_dir / "a.dcm")
    ds = pydicom.dcmread(path)
    block = ds.private_block(0x0029, "IMAGINGOPS TEST", create=True)
    block.add_new(0x10, "OB", b"\x01" * 2_000_000)
    block.add_new(0x11, "LT", "x" * 100_000)
    ds.save_as(path)

    ingest_folder(runtime, runtime.settings.drop_dir)

    instance = _instance(runtime, ds.SOPInstanceUID)
    assert instance.size_bytes > 2_000_000
    with runtime.sessions() as session:
        longest = max(
            len(message) for message in session.scalars(select(InstanceFinding.message))
        )
    assert longest < 1000


def test_two_exams_of_one_timepoint(runtime: Runtime) -> None:
    make_study(runtime.sessions)
    first = synth(runtime.settings.drop_dir / "a.dcm")
    second = synth(runtime.settings.drop_dir / "b.dcm", source="MR_small.dcm")
    sop_uids = [pydicom.dcmread(path).SOPInstanceUID for path in (first, second)]

    report = ingest_folder(runtime, runtime.settings.drop_dir)

    assert report.cases_created == 1
    with runtime.sessions() as session:
        case = session.scalars(select(Case)).one()
        exams = session.scalars(select(Exam).where(Exam.case_id == case.id)).all()
    assert len(exams) == 2
    for sop_uid in sop_uids:
        assert "case_multiple_exams" in _findings(runtime, sop_uid)


def test_empty_trial_attributes_wait_unmatched(runtime: Runtime) -> None:
    make_study(runtime.sessions)
    synth(runtime.settings.drop_dir / "a.dcm")
    blank = _edited(
        runtime,
        "b.dcm",
        ClinicalTrialProtocolID="",
        ClinicalTrialSubjectID="",
        ClinicalTrialTimePointID="",
    )

    report = ingest_folder(runtime, runtime.settings.drop_dir)

    assert report.ingested == 2
    assert report.unmatched == 1
    assert report.cases_created == 1
    codes = _findings(runtime, blank.SOPInstanceUID)
    assert "unmatched_study" in codes
    with runtime.sessions() as session:
        unmatched = session.scalars(
            select(Exam).where(Exam.study_instance_uid == blank.StudyInstanceUID)
        ).one()
    assert unmatched.case_id is None


def test_phi_inside_sequences_has_paths(runtime: Runtime) -> None:
    shutil.copy(pydicom_file("CT_small.dcm"), runtime.settings.drop_dir)

    ingest_folder(runtime, runtime.settings.drop_dir)

    sop_uid = pydicom.dcmread(pydicom_file("CT_small.dcm")).SOPInstanceUID
    paths = _findings(runtime, sop_uid)["phi_present"]
    assert "OtherPatientIDsSequence[0].PatientID" in paths
    assert "OtherPatientIDsSequence[1].PatientID" in paths
    assert "PatientID" in paths


def test_truncated_file_is_quarantined(runtime: Runtime, tmp_path: Path) -> None:
    content = pydicom_file("CT_small.dcm").read_bytes()
    (runtime.settings.drop_dir / "half.dcm").write_bytes(content[: len(content) // 2])

    report = ingest_folder(runtime, runtime.settings.drop_dir)

    assert report.quarantined == 1
    with runtime.sessions() as session:
        row = session.scalars(select(QuarantinedFile)).one()
    assert row.reason_code == "truncated"
