"""Builders for workflow tests: a study with a charter, cases, DICOM rows, readers."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from core import charter
from core.config import PROJECT_ROOT
from core.models import (
    AuditEntry,
    Case,
    Charter,
    Exam,
    Instance,
    Reader,
    ReaderTraining,
    Series,
    Site,
    Subject,
    Timepoint,
    User,
)

CHARTERS = PROJECT_ROOT / "charters"
PASSWORD = "correct horse battery"
# The series ONC-301's charter requires at every visit.
FULL_SERIES = (("CT", "CHEST"), ("CT", "CHEST"), ("CT", "ABDOMEN"))
BASELINE_DAY = date(2026, 3, 2)

_uids = itertools.count(1)
# Hashing is slow on purpose, so every test user shares one hash of PASSWORD.
_PASSWORD_HASH = generate_password_hash(PASSWORD)


def load_charter(session: Session, protocol_id: str = "ONC-301") -> int:
    source = (CHARTERS / f"{protocol_id}.yaml").read_text()
    return charter.load(session, protocol_id, source, actor="test.manager").study_id


def _uid() -> str:
    return f"1.2.826.0.1.3680043.10.999.{next(_uids)}"


def _site(session: Session, study_id: int, code: str) -> Site:
    site = session.scalar(
        select(Site).where(Site.study_id == study_id, Site.site_code == code)
    )
    if site is None:
        site = Site(study_id=study_id, site_code=code, name=f"Site {code}")
        session.add(site)
        session.flush()
    return site


def _subject(session: Session, study_id: int, site: Site, code: str) -> Subject:
    subject = session.scalar(
        select(Subject).where(
            Subject.study_id == study_id, Subject.subject_code == code
        )
    )
    if subject is None:
        subject = Subject(
            study_id=study_id, site_id=site.id, subject_code=code, treatment_arm="B"
        )
        session.add(subject)
        session.flush()
    return subject


def make_case(
    session: Session,
    study_id: int,
    subject_code: str,
    timepoint_code: str = "BASELINE",
    *,
    site_code: str = "S01",
    series: tuple[tuple[str, str], ...] = FULL_SERIES,
    acquired_on: date | None = None,
    slice_thickness_mm: float = 2.5,
    received_at: datetime | None = None,
) -> int:
    """Create a received case with one exam and one instance per series."""
    site = _site(session, study_id, site_code)
    subject = _subject(session, study_id, site, subject_code)
    timepoint = session.scalar(
        select(Timepoint).where(
            Timepoint.study_id == study_id, Timepoint.code == timepoint_code
        )
    )
    assert timepoint is not None
    received_at = received_at or datetime.now(UTC)
    version = session.scalar(
        select(func.max(Charter.version)).where(Charter.study_id == study_id)
    )
    case = Case(
        study_id=study_id,
        site_id=site.id,
        subject_id=subject.id,
        timepoint_id=timepoint.id,
        state="received",
        charter_version=version,
        first_received_at=received_at,
        last_received_at=received_at,
    )
    session.add(case)
    session.flush()
    day = acquired_on or BASELINE_DAY + timedelta(days=timepoint.target_day or 0)
    add_series(session, case.id, series, day, slice_thickness_mm, received_at)
    return case.id


def add_series(
    session: Session,
    case_id: int,
    series: tuple[tuple[str, str], ...],
    acquired_on: date,
    slice_thickness_mm: float = 2.5,
    received_at: datetime | None = None,
) -> None:
    """Add an exam with the given (modality, body part) series to a case."""
    case = session.get(Case, case_id)
    assert case is not None
    received_at = received_at or datetime.now(UTC)
    exam = Exam(case_id=case_id, study_instance_uid=_uid(), study_date=acquired_on)
    session.add(exam)
    session.flush()
    for modality, body_part in series:
        row = Series(
            exam_id=exam.id,
            series_instance_uid=_uid(),
            modality=modality,
            body_part=body_part,
        )
        session.add(row)
        session.flush()
        session.add(
            Instance(
                series_id=row.id,
                sop_instance_uid=_uid(),
                content_sha256="0" * 64,
                size_bytes=1024,
                archive_path="archive/x.dcm",
                slice_thickness_mm=slice_thickness_mm,
                acquisition_date=acquired_on,
                ct_protocol="ONC-301",
                ct_site="S01",
                ct_subject="301-0001",
                ct_timepoint="BASELINE",
                source="test",
                received_at=received_at,
            )
        )
    case.last_received_at = max(case.last_received_at, received_at)
    session.flush()


def make_reader(
    session: Session,
    study_id: int,
    username: str,
    *,
    trained: bool = True,
    expires_on: date | None = None,
) -> tuple[int, int]:
    """Create a reader user and reader record; return (user id, reader id)."""
    user = User(
        username=username,
        display_name=f"Dr {username.title()}",
        password_hash=_PASSWORD_HASH,
        role="reader",
    )
    session.add(user)
    session.flush()
    reader = Reader(user_id=user.id, name=f"Dr {username.title()}")
    session.add(reader)
    session.flush()
    if trained:
        session.add(
            ReaderTraining(
                reader_id=reader.id,
                study_id=study_id,
                criteria="RECIST 1.1",
                trained_on=date(2026, 1, 5),
                expires_on=expires_on,
            )
        )
        session.flush()
    return user.id, reader.id


def audit_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def targets(*diameters: float) -> dict[str, object]:
    """Return an assessment with one non-nodal target lesion per diameter."""
    return {
        "targets": [
            {"site": f"liver {i + 1}", "diameter_mm": mm}
            for i, mm in enumerate(diameters)
        ],
        "non_target": "non-CR/non-PD",
        "new_lesions": "no",
    }
