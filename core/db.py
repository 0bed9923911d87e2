"""Database connection: a configured PostgreSQL server or an embedded one.

With `DATABASE_URL` unset, an embedded PostgreSQL (the `pgserver` wheel) is started
in `<data dir>/pgdata` and stopped when the last process using it exits.
"""

from __future__ import annotations

import atexit
import logging
import os
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
        # Registered after pgserver's own exit handler, so it runs first.
        atexit.register(_forget_exited_handles, _embedded_servers[key])
    server = _embedded_servers[key]
    uri: str = server.get_uri()
    return uri.replace("postgresql://", "postgresql+psycopg2://", 1)


def _forget_exited_handles(server: Any) -> None:
    """Drop processes that exited without releasing the embedded server.

    pgserver (0.1.4) stops the server when the last process with a handle exits,
    and tracks those processes in a list of process ids. A process killed by a
    signal, or one that became another program through exec, never removes its id,
    and then the server would stay up for good after every other process exits.
    """
    import psutil

    holders = server.global_process_id_list
    with server._lock:
        pids = holders.get()
        alive = [pid for pid in pids if pid == os.getpid() or psutil.pid_exists(pid)]
        if alive != pids:
            holders.put(alive)


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
