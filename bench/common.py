"""Shared set-up for the benchmarks: a throwaway database on the configured server."""

from __future__ import annotations

import os
import platform
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from core import migrate
from core.config import load_settings
from core.db import database_url, make_engine


@contextmanager
def bench_database(prefix: str) -> Iterator[Engine]:
    """Create, migrate and finally drop a database of its own for one benchmark."""
    server = make_url(database_url(load_settings()))
    name = f"imagingops_{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(server.set(database=name).render_as_string(False))
    try:
        migrate.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def machine_line(engine: Engine) -> str:
    """Describe the machine and versions the figures were measured on."""
    with engine.connect() as conn:
        server = conn.execute(text("SHOW server_version")).scalar()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, PostgreSQL {server}, "
        f"SQLAlchemy {sqlalchemy.__version__}"
    )


SEED_STUDY_SQL = """
INSERT INTO sponsors (id, name) VALUES (1, 'Bench sponsor');
INSERT INTO studies (id, sponsor_id, protocol_id, title, charter_version)
VALUES (1, 1, 'BENCH-1', 'Benchmark study', 1);
INSERT INTO charters (study_id, version, document, source_text, loaded_by)
VALUES (1, 1, CAST(:document AS jsonb), '', 'bench');
INSERT INTO sites (id, study_id, site_code, name) VALUES (1, 1, 'S01', '');
INSERT INTO timepoints (id, study_id, code, ordinal, is_baseline)
SELECT g, 1, 'TP' || g, g - 1, g = 1 FROM generate_series(1, 5) g;
"""
