"""Builders for small, hand-checkable fixtures made with the models."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core.models import Case, Site, Sponsor, Study, Subject, Timepoint

PASSWORD = "correct horse battery"


def make_study(session: Session, protocol: str, sponsor: str) -> Study:
    """Add a study with one site, timepoints BL and W8, and flush it."""
    owner = session.query(Sponsor).filter_by(name=sponsor).one_or_none()
    if owner is None:
        owner = Sponsor(name=sponsor)
        session.add(owner)
        session.flush()
    study = Study(sponsor_id=owner.id, protocol_id=protocol, title=protocol)
    session.add(study)
    session.flush()
    session.add(Site(study_id=study.id, site_code="S01", name="Site 01"))
    session.add_all(
        [
            Timepoint(study_id=study.id, code="BL", ordinal=0, is_baseline=True),
            Timepoint(study_id=study.id, code="W8", ordinal=1, target_day=56),
        ]
    )
    session.flush()
    return study


def make_case(
    session: Session,
    study: Study,
    subject_code: str,
    *,
    state: str,
    received: datetime,
    completed: datetime | None = None,
    due: datetime | None = None,
    timepoint: str = "BL",
) -> Case:
    """Add a case (and its subject, when new) with the given times and state."""
    site = session.query(Site).filter_by(study_id=study.id).first()
    assert site is not None
    subject = (
        session.query(Subject)
        .filter_by(study_id=study.id, subject_code=subject_code)
        .one_or_none()
    )
    if subject is None:
        subject = Subject(study_id=study.id, site_id=site.id, subject_code=subject_code)
        session.add(subject)
        session.flush()
    point = session.query(Timepoint).filter_by(study_id=study.id, code=timepoint).one()
    case = Case(
        study_id=study.id,
        site_id=site.id,
        subject_id=subject.id,
        timepoint_id=point.id,
        state=state,
        first_received_at=received,
        last_received_at=received + timedelta(minutes=5),
        due_at=due,
        completed_at=completed,
        state_changed_at=completed or received,
    )
    session.add(case)
    session.flush()
    return case
