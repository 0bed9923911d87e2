"""Shared fixtures: a fresh PostgreSQL database per test run, emptied before each test.

`DATABASE_URL` (or `TEST_DATABASE_URL`) names a server to create the test database
on; without either, the embedded PostgreSQL from `pgserver` is started under
`var/test-pgdata`.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core import migrate
from core.config import PROJECT_ROOT, Settings, load_settings
from core.db import make_engine, make_sessionmaker, start_embedded_server
from core.models import Base
from core.runtime import Runtime


def _is_local(address: object) -> bool:
    if not isinstance(address, tuple):
        return True  # Unix socket paths, such as the embedded server's.
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect


def _loopback_only_connect(sock: socket.socket, address: object) -> None:
    """Reject connections off this machine, e.g. pydicom fetching missing test files."""
    if not _is_local(address):
        raise OSError(f"tests may only connect to loopback, not {address!r}")
    _real_connect(sock, address)  # type: ignore[arg-type]


socket.socket.connect = _loopback_only_connect  # type: ignore[method-assign]


def _server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url.replace("postgresql://", "postgresql+psycopg2://", 1)
    settings = load_settings()
    embedded = Settings(
        **{**settings.__dict__, "data_dir": PROJECT_ROOT / "var" / "test"}
    )
    return start_embedded_server(embedded)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """Create a uniquely named database so parallel runs never share one."""
    server = make_url(_server_url())
    name = f"imagingops_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, application_name="imagingops-tests")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _truncate_all(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        # Replica mode skips the audit table's append-only triggers for the clean-up.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """A session factory on an emptied database."""
    _truncate_all(engine)
    return make_sessionmaker(engine)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings whose folders live in the test's own temporary directory."""
    base = load_settings()
    return Settings(
        **{
            **base.__dict__,
            "database_url": database_url,
            "data_dir": tmp_path,
            "drop_dir": tmp_path / "drop",
            "archive_dir": tmp_path / "archive",
            "quarantine_dir": tmp_path / "quarantine",
            "ingest_stable_seconds": 0.0,
        }
    )


@pytest.fixture
def runtime(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> Runtime:
    for folder in (settings.drop_dir, settings.archive_dir, settings.quarantine_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return Runtime(settings, settings.database_url or "", engine, sessions)
