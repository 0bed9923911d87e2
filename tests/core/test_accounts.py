from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import accounts
from core.access import scope_for_user
from core.models import AuditEntry, User
from tests.web_factories import PASSWORD, make_study


def _user(sessions: sessionmaker[Session], role: str = "study_manager") -> int:
    with sessions.begin() as session:
        study = make_study(session, "ONC-301", "Acme")
        user = accounts.create_user(
            session, "sam", PASSWORD, role, study_ids=[study.id], actor="admin"
        )
        return user.id


def test_create_user_hashes_with_scrypt(sessions: sessionmaker[Session]) -> None:
    user_id = _user(sessions)
    with sessions() as session:
        user = session.get(User, user_id)
        assert user is not None
        assert user.password_hash.startswith("scrypt:32768:8:1$")
        assert PASSWORD not in user.password_hash


def test_create_user_audits_creation(sessions: sessionmaker[Session]) -> None:
    user_id = _user(sessions)
    with sessions() as session:
        entry = session.scalars(select(AuditEntry)).one()
    assert entry.action == "user.create"
    assert entry.actor == "admin"
    assert entry.entity_id == str(user_id)
    assert entry.new_values is not None
    assert entry.new_values["role"] == "study_manager"


def test_create_user_rejects_bad_input(sessions: sessionmaker[Session]) -> None:
    _user(sessions)
    cases = [
        ("sam", PASSWORD, "admin", "UTC", "already exists"),
        ("ann", PASSWORD, "superuser", "UTC", "invalid role"),
        ("ann", "short", "admin", "UTC", "too short"),
        ("ann", PASSWORD, "admin", "Mars/Olympus", "unknown time zone"),
    ]
    for username, password, role, zone, message in cases:
        with sessions.begin() as session, pytest.raises(accounts.AccountError) as err:
            accounts.create_user(session, username, password, role, timezone=zone)
        assert message in str(err.value)


def test_scope_lists_granted_studies(sessions: sessionmaker[Session]) -> None:
    user_id = _user(sessions)
    with sessions() as session:
        user = session.get(User, user_id)
        assert user is not None
        scope = scope_for_user(session, user)
    assert scope.study_ids is not None
    assert len(scope.study_ids) == 1
    assert scope.sees_reader_identities


def test_authenticate_locks_after_failures(sessions: sessionmaker[Session]) -> None:
    _user(sessions)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for _ in range(accounts.MAX_FAILED_LOGINS):
        with sessions.begin() as session:
            result = accounts.authenticate(session, "sam", "wrong", now=now)
            assert result.reason == "invalid"
    with sessions.begin() as session:
        locked = accounts.authenticate(session, "sam", PASSWORD, now=now)
    assert locked.user is None
    assert locked.reason == "locked"
    later = now + timedelta(minutes=accounts.LOCK_MINUTES, seconds=1)
    with sessions.begin() as session:
        result = accounts.authenticate(session, "sam", PASSWORD, now=later)
        assert result.user is not None
        assert result.user.failed_logins == 0


def test_authenticate_audits_each_attempt(sessions: sessionmaker[Session]) -> None:
    _user(sessions)
    with sessions.begin() as session:
        accounts.authenticate(session, "sam", "wrong")
    with sessions.begin() as session:
        accounts.authenticate(session, "sam", PASSWORD)
    with sessions() as session:
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id))
        assert list(actions) == ["user.create", "login.failed", "login.ok"]


def test_unknown_user_login_is_audited_without_name(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        result = accounts.authenticate(session, "my-secret-password", PASSWORD)
    with sessions() as session:
        rows = session.scalars(select(AuditEntry)).all()
    assert result.reason == "invalid"
    assert [(row.action, row.actor, row.entity_id) for row in rows] == [
        ("login.unknown_user", "anonymous", "unknown")
    ]
    assert rows[0].new_values is None
    assert rows[0].old_values is None
