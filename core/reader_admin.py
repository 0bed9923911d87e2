"""Reader network admin: the readers a scope may see, and scoped, audited edits.

Admins may view and edit every reader. A study manager may view the readers with a
training record (current or not) for one of their studies and edit their profile and
absences. A study manager records training only for their own studies, and adds a
reader only together with a first training record for one of those studies. The
edits themselves, with their checks and audit rows, are those of `core.readers`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import audit, readers
from core.access import AccessDenied, Scope, study_filter
from core.models import Reader

ADMIN_ROLES = ("admin", "study_manager")

_READERS_SQL = f"""
SELECT rd.id AS reader_id, rd.name, rd.email, rd.timezone, rd.daily_capacity,
    rd.work_start_hour, rd.work_end_hour, rd.active, rd.open_reads,
    (SELECT string_agg(s.protocol_id || ' ' || rt.criteria, ', '
                       ORDER BY s.protocol_id)
     FROM reader_trainings rt JOIN studies s ON s.id = rt.study_id
     WHERE rt.reader_id = rd.id AND {study_filter("rt.study_id")}
       AND rt.trained_on <= :today
       AND (rt.expires_on IS NULL OR rt.expires_on > :today)) AS current_training,
    EXISTS (SELECT 1 FROM reader_absences ab WHERE ab.reader_id = rd.id
            AND ab.starts_at <= :now AND ab.ends_at > :now) AS out_of_office
FROM readers rd
WHERE :all_studies OR EXISTS (
    SELECT 1 FROM reader_trainings rt
    WHERE rt.reader_id = rd.id AND {study_filter("rt.study_id")})
ORDER BY rd.name, rd.id
"""

_TRAINING_SQL = f"""
SELECT rt.id AS training_id, s.protocol_id AS study, rt.criteria, rt.trained_on,
    rt.expires_on,
    rt.trained_on <= :today AND (rt.expires_on IS NULL OR rt.expires_on > :today)
        AS current
FROM reader_trainings rt JOIN studies s ON s.id = rt.study_id
WHERE rt.reader_id = :reader_id AND {study_filter("rt.study_id")}
ORDER BY s.protocol_id, rt.criteria
"""

_ABSENCES_SQL = """
SELECT id AS absence_id, starts_at, ends_at, note
FROM reader_absences
WHERE reader_id = :reader_id AND ends_at > :since
ORDER BY starts_at
"""


def _rows(session: Session, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in session.execute(text(sql), params).mappings()]


def readers_in_scope(
    session: Session, scope: Scope, now: datetime
) -> list[dict[str, Any]]:
    """Return the readers the scope may see, with current training and absence now.

    `current_training` lists only the scope's studies.
    """
    scope.require_role(*ADMIN_ROLES)
    params = scope.sql_params() | {"now": now, "today": now.date()}
    return _rows(session, _READERS_SQL, params)


def require_reader(session: Session, scope: Scope, reader_id: int) -> Reader:
    """Return the reader if the scope may see it; raise ReaderError or AccessDenied."""
    scope.require_role(*ADMIN_ROLES)
    reader = session.get(Reader, reader_id)
    if reader is None:
        raise readers.ReaderError(f"Reader {reader_id} not found")
    if scope.study_ids is None:
        return reader
    visible = session.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM reader_trainings rt WHERE rt.reader_id = :id"
            f" AND {study_filter('rt.study_id')})"
        ),
        scope.sql_params() | {"id": reader_id},
    )
    if not visible:
        raise AccessDenied(f"reader {reader_id} has no training for the user's studies")
    return reader


def trainings(
    session: Session, scope: Scope, reader_id: int, today: date
) -> list[dict[str, Any]]:
    """Return the reader's training records for the scope's studies."""
    require_reader(session, scope, reader_id)
    params = scope.sql_params() | {"reader_id": reader_id, "today": today}
    return _rows(session, _TRAINING_SQL, params)


def absences(
    session: Session, scope: Scope, reader_id: int, since: datetime
) -> list[dict[str, Any]]:
    """Return the reader's absences that end after `since`, earliest first."""
    require_reader(session, scope, reader_id)
    return _rows(session, _ABSENCES_SQL, {"reader_id": reader_id, "since": since})


def edit_reader(
    session: Session,
    scope: Scope,
    reader_id: int,
    changes: dict[str, Any],
    reason: str,
) -> Reader:
    """Change a visible reader's profile fields, audited with the reason."""
    require_reader(session, scope, reader_id)
    return readers.update_reader(
        session, reader_id, changes, actor=scope.username, reason=reason
    )


def train_reader(
    session: Session,
    scope: Scope,
    reader_id: int,
    study_id: int,
    criteria: str,
    trained_on: date,
    expires_on: date | None,
    reason: str,
) -> None:
    """Add or renew training of a visible reader for a study in the scope, audited."""
    scope.require_study(study_id)
    require_reader(session, scope, reader_id)
    readers.record_training(
        session,
        reader_id,
        study_id,
        criteria,
        trained_on,
        expires_on,
        actor=scope.username,
        reason=reason,
    )


def add_absence(
    session: Session,
    scope: Scope,
    reader_id: int,
    first_day: date,
    last_day: date,
    reason: str,
) -> None:
    """Record days away of a visible reader, audited.

    The days are dates of the reader's own time zone: the absence runs from local
    midnight of `first_day` to local midnight after `last_day`, stored in UTC.
    """
    reader = require_reader(session, scope, reader_id)
    zone = ZoneInfo(reader.timezone)
    starts_at = datetime.combine(first_day, time(), zone).astimezone(UTC)
    ends_at = datetime.combine(last_day + timedelta(days=1), time(), zone)
    readers.add_absence(
        session,
        reader_id,
        starts_at,
        ends_at.astimezone(UTC),
        actor=scope.username,
        reason=reason,
    )


def create_reader(
    session: Session,
    scope: Scope,
    profile: dict[str, Any],
    training: dict[str, Any],
    reason: str,
) -> Reader:
    """Add a reader with a first training record for a study in the scope, audited.

    `profile` contains fields of `core.readers.EDITABLE_FIELDS`. `training` contains
    `study_id`, `criteria`, `trained_on` and `expires_on`.
    """
    scope.require_role(*ADMIN_ROLES)
    scope.require_study(int(training["study_id"]))
    checked = readers.check_fields(profile)
    if "name" not in checked:
        raise readers.ReaderError("name is missing; give the reader's name")
    reason = readers.require_reason(reason)
    reader = Reader(**checked)
    session.add(reader)
    session.flush()
    audit.record(
        session,
        actor=scope.username,
        action="reader.create",
        entity_type="reader",
        entity_id=reader.id,
        new=checked,
        reason=reason,
    )
    readers.record_training(
        session,
        reader.id,
        int(training["study_id"]),
        training["criteria"],
        training["trained_on"],
        training["expires_on"],
        actor=scope.username,
        reason=reason,
    )
    return reader
