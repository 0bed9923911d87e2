"""Process start-up: settings, logging, database engine and migrations."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core import migrate
from core.config import Settings, load_settings
from core.db import database_url, describe_url, make_engine, make_sessionmaker

log = logging.getLogger(__name__)


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr with the process id, so lines from `serve` children stay apart."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    # Werkzeug logs every request at INFO; keep it for errors only.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


@dataclass
class Runtime:
    """What a process needs to talk to the database."""

    settings: Settings
    url: str
    engine: Engine
    sessions: sessionmaker[Session]


def open_runtime(
    application_name: str,
    *,
    settings: Settings | None = None,
    run_migrations: bool = True,
) -> Runtime:
    """Connect to the configured (or embedded) database and migrate it."""
    settings = settings or load_settings()
    url = database_url(settings)
    kind = "configured" if settings.database_url else "embedded"
    log.info("Using %s database %s", kind, describe_url(url))
    engine = make_engine(url, application_name=f"imagingops-{application_name}")
    if run_migrations:
        migrate.upgrade(engine)
    return Runtime(settings, url, engine, make_sessionmaker(engine))
