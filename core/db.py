"""Database connection: a configured PostgreSQL server or an embedded one.

With `DATABASE_URL` unset, an embedded PostgreSQL (the `pgserver` wheel) is started
in `<data dir>/pgdata` and stopped when the last process using it exits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings

log = logging.getLogger(__name__)

# The embedded server handle must live as long as the process, or pgserver stops it.
_embedded_servers: dict[str, Any] = {}


def start_embedded_server(settings: Settings) -> str:
    """Start (or join) the embedded PostgreSQL and return its URL."""
    import pgserver

    pgdata = settings.data_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    key = str(pgdata)
    if key not in _embedded_servers:
        _embedded_servers[key] = pgserver.get_server(pgdata, cleanup_mode="stop")
    server = _embedded_servers[key]
    uri: str = server.get_uri()
    return uri.replace("postgresql://", "postgresql+psycopg2://", 1)


def database_url(settings: Settings) -> str:
    """Return the SQLAlchemy URL for the configured or the embedded server."""
    if settings.database_url:
        url = settings.database_url
        if url.startswith("postgresql://"):
            url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
        return url
    return start_embedded_server(settings)


def describe_url(url: str) -> str:
    """Return the URL with any password hidden, for logs and status output."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(
    url: str, *, application_name: str = "imagingops", **kwargs: Any
) -> Engine:
    """Create an engine that checks connections before use.

    `pool_pre_ping` lets a process survive a server restart or a terminated backend:
    a dead pooled connection is replaced instead of failing the next request.
    """
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": 5,
        "max_overflow": 10,
        "connect_args": {"application_name": application_name},
    }
    options.update(kwargs)
    return create_engine(url, **options)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Open a session, commit on success and roll back on any error."""
    with factory() as session, session.begin():
        yield session
