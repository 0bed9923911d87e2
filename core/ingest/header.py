"""Read the identifying header of one DICOM file without decoding pixel data.

`parse_file` reads the file's bytes once, hashes them, parses the header with
`stop_before_pixels`, and returns a `Header` with the values ingest stores and the
findings (header quirks) it found. A file that cannot be ingested raises `Rejected`
with a reason code and a plain reason.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from core.ingest.phi import find_phi
from core.ingest.values import (
    Finding,
    check_time,
    date_value,
    first_item,
    number_value,
    python_encodings,
    text_value,
    uid_value,
)

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
UNDEFINED_LENGTH = 0xFFFFFFFF
# Explicit VRs with a 4-byte length field (DICOM PS3.5 table 7.1-1).
LONG_LENGTH_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
}
SEQUENCE_DELIMITER_LE = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
SEQUENCE_DELIMITER_BE = b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"


class Rejected(Exception):
    """A file that cannot be ingested; `code` is the quarantine reason code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class TrialIds:
    """DICOM PS3.3 C.7.1.3 clinical trial attributes as sent; None when empty."""

    sponsor: str | None = None
    protocol: str | None = None
    site: str | None = None
    subject: str | None = None
    timepoint: str | None = None


@dataclass
class Header:
    """The values ingest stores for one instance, plus its findings."""

    sha256: str
    size_bytes: int
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    sop_class_uid: str | None
    transfer_syntax_uid: str | None
    modality: str | None
    body_part: str | None
    series_number: int | None
    series_description: str | None
    study_date: date | None
    acquisition_date: date | None
    accession_number: str | None
    number_of_frames: int | None
    slice_thickness_mm: float | None
    trial: TrialIds
    findings: list[Finding] = field(default_factory=list)


def read_dataset(data: bytes, findings: list[Finding]) -> tuple[Dataset, int]:
    """Parse the header, falling back to a forced read for files without file meta.

    Returns the dataset and the offset where parsing stopped: the start of the
    Pixel Data element, or the end of the file.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stream = io.BytesIO(data)
        try:
            ds = pydicom.dcmread(stream, stop_before_pixels=True)
            return ds, stream.tell()
        except InvalidDicomError:
            pass
        except Exception as exc:
            reason = f"DICOM header cannot be parsed: {exc}"
            raise Rejected("unreadable", reason) from exc
        stream = io.BytesIO(data)
        try:
            ds = pydicom.dcmread(stream, stop_before_pixels=True, force=True)
        except Exception as exc:
            raise Rejected("not_dicom", f"not a DICOM file: {exc}") from exc
    findings.append(
        Finding(
            "no_file_meta",
            "file has no preamble and no file meta information (DICOM PS3.10 "
            "section 7.1), so it was read by guessing the transfer syntax",
        )
    )
    return ds, stream.tell()


def parse_bytes(data: bytes) -> Header:
    """Parse one file's content into a Header, or raise Rejected."""
    if not data:
        raise Rejected("empty_file", "file is empty")
    findings: list[Finding] = []
    ds, stopped_at = read_dataset(data, findings)
    try:
        header = _build_header(ds, data, findings)
        check_complete(ds, data, stopped_at)
    except Rejected:
        raise
    except Exception as exc:
        raise Rejected("unreadable", f"DICOM header cannot be parsed: {exc}") from exc
    return header


def same_values(first: Path, second: Path) -> bool:
    """Return whether two files hold the same element values, however encoded.

    Used only when two files share a SOPInstanceUID but not their SHA-256: the
    same instance sent once in big and once in little endian is one instance.
    Pixel data is compared as stored bytes and never decoded.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            values = [
                pydicom.dcmread(path, force=True).to_json_dict()
                for path in (first, second)
            ]
        except Exception:  # noqa: BLE001 - an unreadable copy is not the same
            return False
    return values[0] == values[1]


def parse_file(path: Path) -> Header:
    return parse_bytes(path.read_bytes())


def check_complete(ds: Dataset, data: bytes, stopped_at: int) -> None:
    """Raise Rejected("truncated") when the file ends inside its last element.

    Pixel data is checked from its element header alone (DICOM PS3.5 section 7.1),
    so it is never read or decoded.
    """
    if stopped_at < len(data):
        little_endian = ds.original_encoding[1] is not False
        if not complete_pixel_data(data, stopped_at, little_endian):
            raise Rejected("truncated", "file ends inside its Pixel Data")
        return
    short = _short_last_element(ds, depth=0)
    if short is not None:
        raise Rejected("truncated", f"file ends inside element {short}")


def _short_last_element(ds: Dataset, depth: int) -> str | None:
    """Return the tag of a last element shorter than its length, following sequences."""
    keys = list(ds.keys())
    last = ds.get_item(keys[-1]) if keys and depth < 16 else None
    if isinstance(last, RawDataElement):
        if last.length != UNDEFINED_LENGTH and len(last.value or b"") < last.length:
            return str(last.tag)
        return None
    if last is not None and last.VR == "SQ" and last.value:
        return _short_last_element(last.value[-1], depth + 1)
    return None


def complete_pixel_data(data: bytes, offset: int, little_endian: bool) -> bool:
    """Return whether the element starting at `offset` fits in `data`.

    The VR field is detected from the bytes, because some files declare explicit
    VR in their file meta but encode the dataset in implicit VR.
    """
    order = "<" if little_endian else ">"
    vr = data[offset + 4 : offset + 6]
    if not (len(vr) == 2 and vr.isalpha() and vr.isupper()):
        header_length, length_format, length_at = 8, f"{order}I", 4
    elif vr in LONG_LENGTH_VRS:
        header_length, length_format, length_at = 12, f"{order}I", 8
    else:
        header_length, length_format, length_at = 8, f"{order}H", 6
    if offset + header_length > len(data):
        return False
    (length,) = struct.unpack_from(length_format, data, offset + length_at)
    if length == UNDEFINED_LENGTH:
        delimiter = SEQUENCE_DELIMITER_LE if little_endian else SEQUENCE_DELIMITER_BE
        return data.rfind(delimiter, offset) != -1
    return bool(offset + header_length + length <= len(data))


def _identity(ds: Dataset, findings: list[Finding]) -> tuple[str, str, str]:
    """Return the top-level SOP instance, series and study UIDs, or raise Rejected."""
    sop = uid_value(ds, 0x00080018, "SOPInstanceUID", findings)
    series = uid_value(ds, 0x0020000E, "SeriesInstanceUID", findings)
    study = uid_value(ds, 0x0020000D, "StudyInstanceUID", findings)
    meta_class = ds.file_meta.get("MediaStorageSOPClassUID") if ds.file_meta else None
    if sop is None and meta_class == MEDIA_STORAGE_DIRECTORY:
        raise Rejected(
            "dicomdir", "file is a DICOMDIR media directory, not an instance"
        )
    if sop is None and series is None and study is None and not ds.file_meta:
        raise Rejected("not_dicom", "not a DICOM file: no instance UIDs found")
    missing = [
        name
        for name, value in (
            ("SOPInstanceUID", sop),
            ("SeriesInstanceUID", series),
            ("StudyInstanceUID", study),
        )
        if value is None
    ]
    if missing:
        raise Rejected("missing_uid", f"{', '.join(missing)} missing or empty")
    assert sop and series and study
    return sop, series, study


def _build_header(ds: Dataset, data: bytes, findings: list[Finding]) -> Header:
    sop, series, study = _identity(ds, findings)
    encodings, charset_findings = python_encodings(ds)
    findings.extend(charset_findings)
    _check_file_meta(ds, sop, findings)

    def text(tag: int, keyword: str, vr: str = "LO") -> str | None:
        return text_value(ds, tag, keyword, encodings, findings, vr=vr)

    trial = TrialIds(
        sponsor=text(0x00120010, "ClinicalTrialSponsorName"),
        protocol=text(0x00120020, "ClinicalTrialProtocolID"),
        site=text(0x00120030, "ClinicalTrialSiteID"),
        subject=text(0x00120040, "ClinicalTrialSubjectID")
        or text(0x00120042, "ClinicalTrialSubjectReadingID"),
        timepoint=text(0x00120050, "ClinicalTrialTimePointID"),
    )
    for tag, keyword in (
        (0x00080030, "StudyTime"),
        (0x00080031, "SeriesTime"),
        (0x00080032, "AcquisitionTime"),
        (0x00080033, "ContentTime"),
    ):
        check_time(ds, tag, keyword, findings)
    for tag, keyword in ((0x00080021, "SeriesDate"), (0x00080023, "ContentDate")):
        date_value(ds, tag, keyword, findings, required=False)
    series_number = number_value(ds, 0x00200011, "SeriesNumber", findings, vr="IS")
    number_value(ds, 0x00200013, "InstanceNumber", findings, vr="IS")
    frames = number_value(ds, 0x00280008, "NumberOfFrames", findings, vr="IS")
    findings.extend(find_phi(ds))
    return Header(
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        sop_instance_uid=sop,
        series_instance_uid=series,
        study_instance_uid=study,
        sop_class_uid=uid_value(ds, 0x00080016, "SOPClassUID", findings),
        transfer_syntax_uid=_transfer_syntax(ds),
        modality=_bounded(text(0x00080060, "Modality", "CS"), 16),
        body_part=_bounded(text(0x00180015, "BodyPartExamined", "CS"), 64),
        series_number=int(series_number) if series_number is not None else None,
        series_description=text(0x0008103E, "SeriesDescription"),
        study_date=date_value(ds, 0x00080020, "StudyDate", findings, required=True),
        acquisition_date=date_value(
            ds, 0x00080022, "AcquisitionDate", findings, required=False
        ),
        accession_number=text(0x00080050, "AccessionNumber", "SH"),
        number_of_frames=int(frames) if frames is not None else None,
        slice_thickness_mm=_slice_thickness(ds, findings),
        trial=trial,
        findings=findings,
    )


def _bounded(value: str | None, limit: int) -> str | None:
    """Drop a value too long for its column; `text_value` has already flagged it."""
    return value if value is None or len(value) <= limit else None


def _transfer_syntax(ds: Dataset) -> str | None:
    if ds.file_meta and "TransferSyntaxUID" in ds.file_meta:
        return str(ds.file_meta.TransferSyntaxUID)
    implicit, little = ds.original_encoding
    if implicit:
        return "1.2.840.10008.1.2"
    return "1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2"


def _check_file_meta(ds: Dataset, sop: str, findings: list[Finding]) -> None:
    if not ds.file_meta:
        return
    meta_sop = ds.file_meta.get("MediaStorageSOPInstanceUID")
    if meta_sop is not None and str(meta_sop) != sop:
        findings.append(
            Finding(
                "meta_uid_mismatch",
                "MediaStorageSOPInstanceUID differs from SOPInstanceUID; the "
                "top-level SOPInstanceUID identifies the instance",
                "MediaStorageSOPInstanceUID",
            )
        )
    if "TransferSyntaxUID" not in ds.file_meta:
        findings.append(
            Finding(
                "meta_missing_transfer_syntax",
                "file meta information has no TransferSyntaxUID; read by guessing",
            )
        )


def _slice_thickness(ds: Dataset, findings: list[Finding]) -> float | None:
    """Return (0018,0050) Slice Thickness, from the functional groups when absent.

    Enhanced multi-frame objects (DICOM PS3.3 C.7.6.16) carry it in the Pixel
    Measures Sequence of the shared groups, or of the first frame's groups.
    """
    top = number_value(ds, 0x00180050, "SliceThickness", findings, vr="DS")
    if top is not None:
        return top
    for groups, name in (
        (0x52009229, "SharedFunctionalGroupsSequence"),
        (0x52009230, "PerFrameFunctionalGroupsSequence"),
    ):
        group = first_item(ds, groups)
        measures = first_item(group, 0x00289110) if group is not None else None
        if measures is not None:
            path = f"{name}[0].PixelMeasuresSequence[0].SliceThickness"
            value = number_value(
                measures, 0x00180050, "SliceThickness", findings, vr="DS", path=path
            )
            if value is not None:
                return value
    return None
