"""The reader network: training records, capacity, working hours and absences.

A reader is *qualified* for a study on a date when a training record for that study
is current: trained on or before the date and expiring after it, because
`expires_on` is the first day the training no longer counts. When the charter names
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


# Each entry is (field, minimum, maximum). Hours are local hours of the reader's
# time zone, and an end hour of 24 means midnight at the end of the day.
_INTEGER_FIELDS = (
    ("daily_capacity", 0, 1000),
    ("work_start_hour", 0, 23),
    ("work_end_hour", 0, 24),
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
        or_(ReaderTraining.expires_on.is_(None), ReaderTraining.expires_on > on),
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


def check_fields(changes: dict[str, Any]) -> dict[str, Any]:
    """Return the changes converted to their column types, or raise ReaderError."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ReaderError(f"Unknown reader fields: {', '.join(sorted(unknown))}")
    checked = dict(changes)
    if "name" in checked:
        checked["name"] = str(checked["name"] or "").strip()
        if not checked["name"]:
            raise ReaderError("name is missing; give the reader's name")
    if "email" in checked:
        checked["email"] = str(checked["email"] or "").strip() or None
    if "timezone" in checked:
        try:
            ZoneInfo(str(checked["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise ReaderError(
                f"timezone={checked['timezone']!r} is not an IANA time zone name"
            ) from None
    for field, low, high in _INTEGER_FIELDS:
        if field not in checked:
            continue
        try:
            value = int(checked[field])
        except (TypeError, ValueError):
            raise ReaderError(
                f"{field}={checked[field]!r} is not a whole number"
            ) from None
        if not low <= value <= high:
            raise ReaderError(f"{field}={value} must be from {low} to {high}")
        checked[field] = value
    if "active" in checked:
        checked["active"] = bool(checked["active"])
    return checked


def require_reason(reason: str | None) -> str:
    """Return the stripped reason; raise ReaderError when it is under 3 characters."""
    stripped = (reason or "").strip()
    if len(stripped) < 3:
        raise ReaderError("reason is missing; give at least 3 characters")
    return stripped


def update_reader(
    session: Session,
    reader_id: int,
    changes: dict[str, Any],
    *,
    actor: str,
    reason: str,
) -> Reader:
    """Change a reader's profile fields and audit the old and new values.

    Only fields whose value changes are written and audited.
    """
    checked = check_fields(changes)
    reason = require_reason(reason)
    reader = session.get(Reader, reader_id, with_for_update=True)
    if reader is None:
        raise ReaderError(f"Reader {reader_id} not found")
    changed = {f: v for f, v in checked.items() if getattr(reader, f) != v}
    if not changed:
        return reader
    old = {field: getattr(reader, field) for field in changed}
    for field, value in changed.items():
        setattr(reader, field, value)
    audit.record(
        session,
        actor=actor,
        action="reader.update",
        entity_type="reader",
        entity_id=reader_id,
        old=old,
        new=changed,
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
    reason: str,
) -> ReaderTraining:
    """Add or renew a reader's training for a study's criteria, audited."""
    reason = require_reason(reason)
    criteria = (criteria or "").strip()
    if not criteria:
        raise ReaderError("criteria is missing; name the response criteria")
    if expires_on is not None and expires_on <= trained_on:
        raise ReaderError(
            f"expires_on {expires_on} must be after trained_on {trained_on}"
        )
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
        action="reader.training",
        entity_type="reader",
        entity_id=reader_id,
        study_id=study_id,
        old=old,
        new={"criteria": criteria, "trained_on": trained_on, "expires_on": expires_on},
        reason=reason,
    )
    return training


def add_absence(
    session: Session,
    reader_id: int,
    starts_at: datetime,
    ends_at: datetime,
    *,
    actor: str,
    reason: str,
) -> ReaderAbsence:
    """Record an out-of-office period (UTC instants) and audit it with the reason."""
    reason = require_reason(reason)
    if ends_at <= starts_at:
        raise ReaderError(f"Absence ends at {ends_at}, not after it starts {starts_at}")
    absence = ReaderAbsence(
        reader_id=reader_id, starts_at=starts_at, ends_at=ends_at, note=reason
    )
    session.add(absence)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="reader.absence",
        entity_type="reader",
        entity_id=reader_id,
        new={"absence_id": absence.id, "starts_at": starts_at, "ends_at": ends_at},
        reason=reason,
    )
    return absence
