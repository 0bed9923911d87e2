"""Write de-identified, re-tagged copies of pydicom's CT and MR test files.

Each demo series is one real image from the pydicom package with new UIDs, the
DICOM PS3.3 C.7.1.3 clinical trial attributes of its case, the visit date and the
body part the charter requires. Patient attributes are emptied as a trial site's
de-identification (DICOM PS3.15 Annex E) would leave them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pydicom
import pydicom.data
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

PYDICOM_TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
SOURCE_FILES = {"CT": "CT_small.dcm", "MR": "MR_small.dcm"}
# Attributes a de-identifying export removes; PatientName and PatientID stay empty.
REMOVED = (
    "OtherPatientIDsSequence",
    "PatientBirthDate",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "AdditionalPatientHistory",
    "InstitutionName",
    "ReferringPhysicianName",
    "OperatorsName",
    "NameOfPhysiciansReadingStudy",
    "PerformingPhysicianName",
    "PhysiciansOfRecord",
)


def source_file(modality: str) -> Path:
    """Return the pydicom test file used as the image of a modality."""
    return PYDICOM_TEST_FILES / SOURCE_FILES[modality]


def _template(modality: str) -> Dataset:
    ds = pydicom.dcmread(source_file(modality))
    for keyword in REMOVED:
        if keyword in ds:
            delattr(ds, keyword)
    ds.PatientName = ""
    ds.PatientID = ""
    ds.SliceThickness = "2.5"
    return ds


@dataclass(frozen=True)
class SeriesPlace:
    """Where a new instance goes: its exam and series, and what the series shows."""

    study_uid: str
    series_uid: str
    series_number: int
    modality: str
    body_part: str


class ImageWriter:
    """Writes demo instances from one cached template per modality."""

    def __init__(self, sponsor_of: dict[str, str]) -> None:
        self._templates = {modality: _template(modality) for modality in SOURCE_FILES}
        self._sponsor_of = sponsor_of

    def write_case(
        self,
        folder: Path,
        *,
        protocol: str,
        site: str,
        subject: str,
        timepoint: str,
        taken_at: datetime,
        series: tuple[tuple[str, str], ...],
    ) -> Iterator[Path]:
        """Write one instance per series of a new exam and yield each file's path."""
        study_uid = generate_uid()
        for number, (modality, body_part) in enumerate(series, start=1):
            yield self.write_instance(
                folder,
                SeriesPlace(study_uid, generate_uid(), number, modality, body_part),
                protocol=protocol,
                site=site,
                subject=subject,
                timepoint=timepoint,
                taken_at=taken_at,
            )

    def write_instance(
        self,
        folder: Path,
        place: SeriesPlace,
        *,
        protocol: str,
        site: str,
        subject: str,
        timepoint: str,
        taken_at: datetime,
        instance_number: int = 1,
    ) -> Path:
        """Write one new instance into the given series and return its path."""
        # Every attribute that differs between instances is set below, so the
        # template itself is rewritten and saved, which avoids a copy per file.
        ds = self._templates[place.modality]
        sop_uid = generate_uid()
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.StudyInstanceUID = place.study_uid
        ds.SeriesInstanceUID = place.series_uid
        ds.SeriesNumber = place.series_number
        ds.InstanceNumber = instance_number
        ds.BodyPartExamined = place.body_part
        visit_date = taken_at.strftime("%Y%m%d")
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = visit_date
        ds.ClinicalTrialSponsorName = self._sponsor_of[protocol]
        ds.ClinicalTrialProtocolID = protocol
        ds.ClinicalTrialSiteID = site
        ds.ClinicalTrialSubjectID = subject
        ds.ClinicalTrialTimePointID = timepoint
        path = folder / f"{sop_uid}.dcm"
        ds.save_as(path, enforce_file_format=True)
        return path
