"""Helpers shared by the ingest tests: a study of record and re-tagged files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom.data
from sqlalchemy.orm import Session, sessionmaker

from core import charter
from core.dicom_synth import retag
from core.models import Charter, Site, Sponsor, Study, Timepoint

# pydicom's bundled test files, read in place because `get_testdata_file` may
# download missing ones.
TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
PROTOCOL = "ONC-301"
SITE = "S01"
SLA_HOURS = 240


def pydicom_file(name: str) -> Path:
    path = TEST_FILES / name
    assert path.is_file(), f"{name} is not in {TEST_FILES}"
    return path


def charter_document(visit_codes: list[str], total_hours: int) -> dict[str, Any]:
    """Return a complete charter document, as `charter load` stores it.

    Ingest needs only the SLA, but the automated QC job, which runs beside ingest
    in the jobs process, reads every section.
    """
    visits = "\n".join(
        f"  - {{code: {code}, target_day: {56 * ordinal}, window_days: 7, "
        f"baseline: {str(ordinal == 0).lower()}}}"
        for ordinal, code in enumerate(visit_codes)
    )
    return charter.parse(
        f"""
visits:
{visits}
qc: {{allowed_modalities: [CT, MR]}}
read_design: {{type: double}}
response_criteria: RECIST 1.1
sla: {{total_hours: {total_hours}}}
"""
    )


def make_study(sessions: sessionmaker[Session]) -> int:
    """Create study ONC-301 with site S01, timepoints BL and W8 and a charter."""
    with sessions.begin() as session:
        sponsor = Sponsor(name="Acme Oncology")
        session.add(sponsor)
        session.flush()
        study = Study(sponsor_id=sponsor.id, protocol_id=PROTOCOL, charter_version=1)
        session.add(study)
        session.flush()
        session.add(
            Charter(
                study_id=study.id,
                version=1,
                document=charter_document(["BL", "W8"], SLA_HOURS),
                loaded_by="tests",
            )
        )
        session.add(Site(study_id=study.id, site_code=SITE, name="General"))
        session.add(Timepoint(study_id=study.id, code="BL", ordinal=0))
        session.add(Timepoint(study_id=study.id, code="W8", ordinal=1))
        return study.id


def synth(
    dest: Path,
    *,
    source: str = "CT_small.dcm",
    subject: str = "301-0001",
    timepoint: str = "BL",
    protocol: str = PROTOCOL,
    site: str = SITE,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Path:
    return retag(
        pydicom_file(source),
        dest,
        sponsor="Acme Oncology",
        protocol=protocol,
        site=site,
        subject=subject,
        timepoint=timepoint,
        study_uid=study_uid,
        series_uid=series_uid,
    )
