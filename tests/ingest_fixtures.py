"""Helpers shared by the ingest tests: a study of record and re-tagged files."""

from __future__ import annotations

from pathlib import Path

import pydicom.data
from sqlalchemy.orm import Session, sessionmaker

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
                document={"sla": {"total_hours": SLA_HOURS}},
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
