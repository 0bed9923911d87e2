"""User accounts: password hashing, creation with study grants, and login checks.

Passwords are hashed with scrypt (werkzeug.security, n=2**15, r=8, p=1). After
`MAX_FAILED_LOGINS` failures in a row an account is locked for `LOCK_MINUTES`;
a correct password during the lock is rejected too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from core import audit
from core.models import ROLES, Study, StudyGrant, User

log = logging.getLogger(__name__)

MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15
MIN_PASSWORD_LENGTH = 8
PASSWORD_METHOD = "scrypt:32768:8:1"
# Roles whose access is limited to granted studies.
STUDY_SCOPED_ROLES = frozenset({"study_manager", "qc_reviewer", "reader", "sponsor"})

# Checked against when the username is unknown, so both paths cost one scrypt run.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method=PASSWORD_METHOD)


class AccountError(ValueError):
    """A user cannot be created as requested."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"password is too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )
    return generate_password_hash(password, method=PASSWORD_METHOD)


def _validate(session: Session, username: str, role: str, timezone: str) -> None:
    if not username or len(username) > 150 or username != username.strip():
        raise AccountError(f"invalid username {username!r}: use 1 to 150 characters")
    if role not in ROLES:
        raise AccountError(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise AccountError(f"unknown time zone {timezone!r}") from None
    if session.scalar(select(User.id).where(User.username == username)):
        raise AccountError(f"user {username!r} already exists")


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    *,
    display_name: str = "",
    timezone: str = "UTC",
    study_ids: Iterable[int] = (),
    actor: str = "system",
) -> User:
    """Create a user with its study grants and audit it in the caller's transaction."""
    _validate(session, username, role, timezone)
    studies = sorted(set(study_ids))
    known = set(session.scalars(select(Study.id).where(Study.id.in_(studies))))
    missing = [study_id for study_id in studies if study_id not in known]
    if missing:
        raise AccountError(f"study ids not found: {missing}")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        timezone=timezone,
    )
    session.add(user)
    session.flush()
    for study_id in studies:
        session.add(StudyGrant(user_id=user.id, study_id=study_id))
    audit.record(
        session,
        actor=actor,
        action="user.create",
        entity_type="user",
        entity_id=user.id,
        new={"username": username, "role": role, "study_ids": studies},
    )
    log.info("Created user %s with role %s", username, role)
    return user


def study_ids_for_protocols(session: Session, protocols: Iterable[str]) -> list[int]:
    """Return study ids for protocol ids, raising AccountError for an unknown one."""
    wanted = list(protocols)
    rows = session.execute(
        select(Study.protocol_id, Study.id).where(Study.protocol_id.in_(wanted))
    ).all()
    found = {protocol: study_id for protocol, study_id in rows}
    unknown = [protocol for protocol in wanted if protocol not in found]
    if unknown:
        raise AccountError(f"unknown study protocol ids: {', '.join(unknown)}")
    return [found[protocol] for protocol in wanted]


@dataclass(frozen=True)
class LoginResult:
    """The outcome of one login attempt; `user` is set only on success."""

    user: User | None
    reason: str  # "ok", "invalid", "locked" or "inactive"


def authenticate(
    session: Session, username: str, password: str, *, now: datetime | None = None
) -> LoginResult:
    """Check a password, counting failures and locking the account after too many.

    Writes an audit row for every attempt, in the caller's transaction, which must
    be committed even when the login fails. An attempt on an unknown user name is
    audited without the name.
    """
    now = now or datetime.now(UTC)
    user = session.scalar(
        select(User).where(User.username == username).with_for_update()
    )
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        log.warning("Failed login for unknown user")
        # The attempted name stays out: people type passwords into the name field.
        audit.record(
            session,
            actor="anonymous",
            action="login.unknown_user",
            entity_type="user",
            entity_id="unknown",
        )
        return LoginResult(None, "invalid")
    if user.locked_until is not None and user.locked_until > now:
        _audit_login(session, user, "login.locked")
        log.warning("Rejected login for locked user %s", user.username)
        return LoginResult(None, "locked")
    if not check_password_hash(user.password_hash, password):
        _record_failure(session, user, now)
        return LoginResult(None, "invalid")
    if not user.active:
        _audit_login(session, user, "login.inactive")
        log.warning("Rejected login for inactive user %s", user.username)
        return LoginResult(None, "inactive")
    user.failed_logins = 0
    user.locked_until = None
    _audit_login(session, user, "login.ok")
    log.info("User %s logged in", user.username)
    return LoginResult(user, "ok")


def _record_failure(
    session: Session, user: User, now: datetime, action: str = "login.failed"
) -> None:
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.locked_until = now + timedelta(minutes=LOCK_MINUTES)
        log.warning(
            "Locked user %s for %d minutes after %d failed password checks",
            user.username,
            LOCK_MINUTES,
            user.failed_logins,
        )
    else:
        log.warning("Failed password check (%s) for user %s", action, user.username)
    _audit_login(session, user, action)


def record_failed_signature(
    session: Session, user_id: int, *, now: datetime | None = None
) -> bool:
    """Count a wrong password at signing as a failed login; return True if locked.

    A signature re-checks the password, so guessing it there must lock the
    account just as guessing at the login form does.
    """
    now = now or datetime.now(UTC)
    user = session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise LookupError(f"user {user_id} not found")
    _record_failure(session, user, now, "signature.failed")
    return user.locked_until is not None and user.locked_until > now


def _audit_login(session: Session, user: User, action: str) -> None:
    audit.record(
        session,
        actor=user.username,
        action=action,
        entity_type="user",
        entity_id=user.id,
        new={"failed_logins": user.failed_logins},
    )
