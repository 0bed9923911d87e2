"""Small builders for study, reader and case rows used across the jobs tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from core.models import (
    Case,
    Charter,
    Read,
    Reader,
    ReaderTraining,
    Site,
    Sponsor,
    Study,
    StudyGrant,
    Subject,
    Timepoint,
    User,
)

NOW = datetime(2026, 6, 10, 14, 0, tzinfo=UTC)
SLA = {"total_hours": 240, "qc_hours": 24, "read_hours": 72, "adjudication_hours": 48}


def make_study(
    session: Session,
    protocol: str = "ONC-301",
    *,
    sla: dict[str, Any] | None = None,
    timepoints: int = 3,
    leadership_email: str | None = "lead@cro.example",
) -> Study:
    sponsor = Sponsor(name=f"Sponsor of {protocol}")
    session.add(sponsor)
    session.flush()
    study = Study(
        sponsor_id=sponsor.id,
        protocol_id=protocol,
        charter_version=1,
        leadership_email=leadership_email,
    )
    session.add(study)
    session.flush()
    document = {"criteria": "RECIST 1.1", "sla": sla if sla is not None else SLA}
    session.add(
        Charter(study_id=study.id, version=1, document=document, loaded_by="test")
    )
    session.add(Site(study_id=study.id, site_code="S01"))
    for ordinal in range(timepoints):
        code = "BL" if ordinal == 0 else f"W{ordinal * 8}"
        session.add(
            Timepoint(
                study_id=study.id, code=code, ordinal=ordinal, is_baseline=ordinal == 0
            )
        )
    session.flush()
    return study


def make_reader(
    session: Session,
    name: str,
    study: Study | None = None,
    *,
    capacity: int = 20,
    timezone: str = "UTC",
    hours: tuple[int, int] = (0, 24),
    expires_on: date | None = None,
) -> Reader:
    reader = Reader(
        name=name,
        timezone=timezone,
        daily_capacity=capacity,
        work_start_hour=hours[0],
        work_end_hour=hours[1],
    )
    session.add(reader)
    session.flush()
    if study is not None:
        session.add(
            ReaderTraining(
                reader_id=reader.id,
                study_id=study.id,
                criteria="RECIST 1.1",
                trained_on=date(2026, 1, 1),
                expires_on=expires_on,
            )
        )
        session.flush()
    return reader


def make_case(
    session: Session,
    study: Study,
    subject_code: str,
    timepoint_ordinal: int = 0,
    *,
    received: datetime = NOW - timedelta(hours=24),
    state: str = "reading",
    kinds: tuple[str, ...] = ("primary", "secondary"),
    urgent: bool = False,
) -> Case:
    site = session.query(Site).filter_by(study_id=study.id).one()
    subject = (
        session.query(Subject)
        .filter_by(study_id=study.id, subject_code=subject_code)
        .one_or_none()
    )
    if subject is None:
        subject = Subject(study_id=study.id, site_id=site.id, subject_code=subject_code)
        session.add(subject)
        session.flush()
    timepoint = (
        session.query(Timepoint)
        .filter_by(study_id=study.id, ordinal=timepoint_ordinal)
        .one()
    )
    total = float(SLA["total_hours"])
    case = Case(
        study_id=study.id,
        site_id=site.id,
        subject_id=subject.id,
        timepoint_id=timepoint.id,
        state=state,
        charter_version=1,
        first_received_at=received,
        last_received_at=received,
        due_at=received + timedelta(hours=total),
        urgent=urgent,
    )
    session.add(case)
    session.flush()
    for kind in kinds:
        session.add(Read(case_id=case.id, kind=kind, created_at=received))
    session.flush()
    return case


def make_user(
    session: Session,
    username: str,
    role: str,
    *,
    study: Study | None = None,
    timezone: str = "UTC",
) -> User:
    user = User(
        username=username,
        email=f"{username}@cro.example",
        password_hash="x",
        role=role,
        timezone=timezone,
    )
    session.add(user)
    session.flush()
    if study is not None:
        session.add(StudyGrant(user_id=user.id, study_id=study.id))
        session.flush()
    return user
