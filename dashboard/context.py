"""Per-request access to the runtime, the logged-in user and the user's scope."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import flask
import flask_login
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.access import Scope, make_scope
from core.runtime import Runtime

RUNTIME_KEY = "imagingops.runtime"
READ_SETTINGS = (
    "SET LOCAL jit = off; SET LOCAL random_page_cost = 1.1; "
    "SET LOCAL max_parallel_workers_per_gather = 0"
)


@dataclass(frozen=True)
class WebUser(flask_login.UserMixin):
    """The logged-in user as the web layer sees it, loaded once per request."""

    id: int
    username: str
    display_name: str
    role: str
    timezone: str
    study_ids: frozenset[int]

    def get_id(self) -> str:
        return str(self.id)

    @property
    def scope(self) -> Scope:
        return make_scope(self.username, self.role, self.study_ids)


def runtime() -> Runtime:
    value: Runtime = flask.current_app.extensions[RUNTIME_KEY]
    return value


@contextmanager
def read_session() -> Iterator[Session]:
    """Open a session for reads; closing it rolls back, so no transaction stays open.

    The planner settings suit short dashboard queries on a cached database. On the
    1,000,000-case benchmark (PostgreSQL 15): JIT compilation added up to 2.5 s to
    the portfolio summary. With the default random_page_cost of 4 and without
    parallel workers, the readers table scanned every read (180 ms) instead of
    looking up the study's cases (20 ms). Parallel workers compete with the web
    workers for the same cores, so the dashboard does without them.
    """
    with runtime().sessions() as session:
        session.execute(text(READ_SETTINGS))
        yield session


def current_user() -> WebUser:
    user = flask_login.current_user
    if not isinstance(user, WebUser):
        raise RuntimeError("no logged-in user in this request")
    return user


def current_scope() -> Scope:
    return current_user().scope


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Format a UTC timestamp in the logged-in user's time zone."""
    if value is None:
        return ""
    zone = ZoneInfo(current_user().timezone)
    return value.astimezone(zone).strftime(fmt) + " " + zone.key
