"""The reader network: training records, capacity, working hours and absences.

A reader is *qualified* for a study on a date when a training record for that study
is current: trained on or before the date and not yet expired. When the charter names
its response criteria (`criteria` or `response_criteria`, e.g. "RECIST 1.1"), the
training record must be for those criteria. A reader is *available* at an instant when
active, inside the working hours of their own time zone and not in an absence.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core import audit
from core.models import Reader, ReaderAbsence, ReaderTraining

log = logging.getLogger(__name__)

EDITABLE_FIELDS = (
    "name",
    "email",
    "timezone",
    "daily_capacity",
    "work_start_hour",
    "work_end_hour",
    "active",
)


class ReaderError(ValueError):
    """A reader edit is invalid; the message names the field and the value."""


def charter_criteria(document: dict[str, Any] | None) -> str | None:
    """Return the response criteria the charter names, or None when it names none."""
    if not document:
        return None
    for key in ("criteria", "response_criteria"):
        value = document.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def current_training_clause(
    study_id: int, on: date, criteria: str | None = None
) -> Any:
    """Build the WHERE clause for training records current for a study on a date."""
    clause = and_(
        ReaderTraining.study_id == study_id,
        ReaderTraining.trained_on <= on,
        or_(ReaderTraining.expires_on.is_(None), ReaderTraining.expires_on >= on),
    )
    if criteria is not None:
        clause = and_(clause, ReaderTraining.criteria.ilike(criteria))
    return clause


def is_qualified(
    session: Session, reader_id: int, study_id: int, on: date, criteria: str | None
) -> bool:
    """Return whether the reader has current training for the study on the date."""
    found = session.scalar(
        select(ReaderTraining.id)
        .where(ReaderTraining.reader_id == reader_id)
        .where(current_training_clause(study_id, on, criteria))
        .limit(1)
    )
    return found is not None


def in_working_hours(reader: Reader, now: datetime) -> bool:
    """Return whether `now` falls in the reader's working hours, in their time zone.

    An end hour at or before the start hour means a shift that crosses midnight.
    """
    hour = now.astimezone(_zone(reader.timezone)).hour
    start, end = reader.work_start_hour, reader.work_end_hour
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def absent_reader_ids(session: Session, now: datetime) -> set[int]:
    """Return the ids of readers with an absence covering `now`."""
    rows = session.scalars(
        select(ReaderAbsence.reader_id).where(
            ReaderAbsence.starts_at <= now, ReaderAbsence.ends_at > now
        )
    )
    return set(rows)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("Unknown time zone %r on a reader; using UTC", name)
        return ZoneInfo("UTC")


def _check_fields(changes: dict[str, Any]) -> None:
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ReaderError(f"Unknown reader fields: {', '.join(sorted(unknown))}")
    if "timezone" in changes:
        try:
            ZoneInfo(str(changes["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise ReaderError(
                f"timezone={changes['timezone']!r} is not an IANA time zone name"
            ) from None
    if "daily_capacity" in changes and int(changes["daily_capacity"]) < 0:
        raise ReaderError("daily_capacity must be zero or more reads per day")
    for field in ("work_start_hour", "work_end_hour"):
        if field in changes and not 0 <= int(changes[field]) <= 24:
            raise ReaderError(
                f"{field}={changes[field]!r} must be an hour from 0 to 24"
            )


def update_reader(
    session: Session,
    reader_id: int,
    changes: dict[str, Any],
    *,
    actor: str,
    reason: str | None = None,
) -> Reader:
    """Change a reader's profile fields and audit the old and new values."""
    _check_fields(changes)
    reader = session.get(Reader, reader_id, with_for_update=True)
    if reader is None:
        raise ReaderError(f"Reader {reader_id} not found")
    old = {field: getattr(reader, field) for field in changes}
    for field, value in changes.items():
        setattr(reader, field, value)
    audit.record(
        session,
        actor=actor,
        action="reader_updated",
        entity_type="reader",
        entity_id=reader_id,
        old=old,
        new=changes,
        reason=reason,
    )
    return reader


def record_training(
    session: Session,
    reader_id: int,
    study_id: int,
    criteria: str,
    trained_on: date,
    expires_on: date | None,
    *,
    actor: str,
) -> ReaderTraining:
    """Add or renew a reader's training for a study's criteria, audited."""
    if expires_on is not None and expires_on < trained_on:
        raise ReaderError(f"expires_on {expires_on} is before trained_on {trained_on}")
    training = session.scalar(
        select(ReaderTraining)
        .where(
            ReaderTraining.reader_id == reader_id,
            ReaderTraining.study_id == study_id,
            ReaderTraining.criteria == criteria,
        )
        .with_for_update()
    )
    old = None
    if training is None:
        training = ReaderTraining(
            reader_id=reader_id, study_id=study_id, criteria=criteria
        )
        session.add(training)
    else:
        old = {"trained_on": training.trained_on, "expires_on": training.expires_on}
    training.trained_on = trained_on
    training.expires_on = expires_on
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="reader_training_recorded",
        entity_type="reader",
        entity_id=reader_id,
        study_id=study_id,
        old=old,
        new={"criteria": criteria, "trained_on": trained_on, "expires_on": expires_on},
    )
    return training


def add_absence(
    session: Session,
    reader_id: int,
    starts_at: datetime,
    ends_at: datetime,
    *,
    actor: str,
    note: str = "",
) -> ReaderAbsence:
    """Record an out-of-office period (UTC instants), audited."""
    if ends_at <= starts_at:
        raise ReaderError(f"Absence ends at {ends_at}, not after it starts {starts_at}")
    absence = ReaderAbsence(
        reader_id=reader_id, starts_at=starts_at, ends_at=ends_at, note=note
    )
    session.add(absence)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="reader_absence_added",
        entity_type="reader",
        entity_id=reader_id,
        new={"absence_id": absence.id, "starts_at": starts_at, "ends_at": ends_at},
    )
    return absence
