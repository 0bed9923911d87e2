"""Re-tagged copies of real DICOM files, for tests, demos and benchmarks.

`retag` gives a copy new UIDs (unless given) and the DICOM PS3.3 C.7.1.3 clinical
trial attributes of a subject timepoint. Pixel data is copied as it is, undecoded.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.uid import generate_uid


def retag(
    source: Path,
    dest: Path,
    *,
    sponsor: str,
    protocol: str,
    site: str,
    subject: str,
    timepoint: str,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Path:
    """Write a copy of `source` to `dest` as a new instance of the given subject."""
    ds = pydicom.dcmread(source)
    sop_uid = generate_uid()
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.ClinicalTrialSponsorName = sponsor
    ds.ClinicalTrialProtocolID = protocol
    ds.ClinicalTrialSiteID = site
    ds.ClinicalTrialSubjectID = subject
    ds.ClinicalTrialTimePointID = timepoint
    # De-identify the patient module the way a trial site's export does.
    ds.PatientName = subject
    ds.PatientID = subject
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    return dest
