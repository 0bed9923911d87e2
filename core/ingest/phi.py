"""PHI checks: attributes of the DICOM PS3.15 Annex E basic profile that carry a value.

The walk covers nested sequences, so an identifier hidden inside, for example,
Other Patient IDs Sequence is reported with its path.
"""

from __future__ import annotations

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from core.ingest.values import Finding

# NOTE: a subset of PS3.15 table E.1-1: the attributes that name, locate or contact a
# person or institution. Dates, UIDs and descriptions from that table are not checked.
PHI_TAGS: dict[int, str] = {
    0x00080080: "InstitutionName",
    0x00080081: "InstitutionAddress",
    0x00080090: "ReferringPhysicianName",
    0x00080092: "ReferringPhysicianAddress",
    0x00080094: "ReferringPhysicianTelephoneNumbers",
    0x00081048: "PhysiciansOfRecord",
    0x00081050: "PerformingPhysicianName",
    0x00081060: "NameOfPhysiciansReadingStudy",
    0x00081070: "OperatorsName",
    0x00100010: "PatientName",
    0x00100020: "PatientID",
    0x00100021: "IssuerOfPatientID",
    0x00100030: "PatientBirthDate",
    0x00100032: "PatientBirthTime",
    0x00100050: "PatientInsurancePlanCodeSequence",
    0x00101000: "OtherPatientIDs",
    0x00101001: "OtherPatientNames",
    0x00101002: "OtherPatientIDsSequence",
    0x00101005: "PatientBirthName",
    0x00101040: "PatientAddress",
    0x00101060: "PatientMotherBirthName",
    0x00101080: "MilitaryRank",
    0x00101081: "BranchOfService",
    0x00101090: "MedicalRecordLocator",
    0x00102154: "PatientTelephoneNumbers",
    0x00102160: "EthnicGroup",
    0x00102180: "Occupation",
    0x001021B0: "AdditionalPatientHistory",
    0x00104000: "PatientComments",
    0x00321032: "RequestingPhysician",
    0x00380010: "AdmissionID",
    0x00380300: "CurrentPatientLocation",
    0x00380400: "PatientInstitutionResidence",
    0x00400006: "ScheduledPerformingPhysicianName",
    0x00401010: "NamesOfIntendedRecipientsOfResults",
    0x0040A123: "PersonName",
}
SEQUENCE_VR = "SQ"


def _has_value(element: DataElement | RawDataElement) -> bool:
    value = element.value
    if value is None:
        return False
    if isinstance(value, bytes):
        return value.strip(b" \x00") != b""
    if isinstance(value, str):
        return value.strip(" \x00") != ""
    return len(value) > 0 if hasattr(value, "__len__") else True


def _is_sequence(element: DataElement | RawDataElement, tag: BaseTag) -> bool:
    if element.VR is not None:
        return bool(element.VR == SEQUENCE_VR)
    try:
        return bool(dictionary_VR(tag) == SEQUENCE_VR)
    except KeyError:
        return False


def find_phi(ds: Dataset, prefix: str = "", depth: int = 0) -> list[Finding]:
    """Return a finding for each Annex E attribute with a value, at any depth."""
    findings: list[Finding] = []
    if depth > 8:
        return findings
    # Dataset.items() yields the stored elements as they are, raw ones undecoded.
    for tag, element in list(ds.items()):
        name = PHI_TAGS.get(tag)
        if name is not None and _has_value(element):
            path = f"{prefix}{name}"
            findings.append(
                Finding(
                    "phi_present",
                    f"{name} carries a value that the DICOM PS3.15 Annex E basic "
                    "profile removes or replaces",
                    path,
                )
            )
        if tag.is_private or not _is_sequence(element, tag):
            continue
        element = ds[tag]
        keyword = element.keyword or f"({tag.group:04X},{tag.element:04X})"
        for index, item in enumerate(element.value):
            findings.extend(find_phi(item, f"{prefix}{keyword}[{index}].", depth + 1))
    return findings
