"""Settings read once from the environment, with defaults that run on a new machine.

A value that cannot be parsed stops start-up with a `ConfigError` that names the
environment variable, the value and what is expected.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting in the environment is invalid."""


def _raw(name: str) -> str | None:
    """Return the variable's value, reading `NAME_FILE` for secrets kept in files."""
    value = os.environ.get(name)
    if value is not None and value.strip() != "":
        return value.strip()
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return None


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None else value


def env_int(
    name: str, default: int, *, minimum: int = 0, maximum: int | None = None
) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer") from None
    if number < minimum or (maximum is not None and number > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise ConfigError(f"{name}={value!r} must be at least {minimum}{upper}")
    return number


def env_float(
    name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    # float() accepts "nan" and "inf", and every comparison with NaN is false,
    # so the range check below would let it through.
    if not math.isfinite(number):
        raise ConfigError(f"{name}={value!r} is not a finite number")
    if number < minimum or (maximum is not None and number > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise ConfigError(f"{name}={value!r} must be at least {minimum}{upper}")
    return number


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use true or false)")


def env_path(name: str, default: Path) -> Path:
    value = _raw(name)
    return default if value is None else Path(value).expanduser().resolve()


def env_ae_title(name: str, default: str) -> str:
    value = env_str(name, default)
    if not 1 <= len(value) <= 16 or "\\" in value or not value.isascii():
        raise ConfigError(
            f"{name}={value!r} is not a valid AE title (1 to 16 ASCII characters, "
            "no backslash)"
        )
    return value


@dataclass(frozen=True)
class Settings:
    """All runtime settings; see the README for each variable, its unit and default."""

    database_url: str | None
    data_dir: Path
    drop_dir: Path
    archive_dir: Path
    quarantine_dir: Path
    scp_ae_title: str
    scp_host: str
    scp_port: int
    web_host: str
    web_port: int
    secret_key: str
    refresh_seconds: int
    ingest_interval_seconds: int
    ingest_stable_seconds: float
    ingest_batch_size: int
    smtp_host: str
    smtp_port: int
    smtp_from: str
    webhook_url: str
    log_level: str
    # Jobs process: intervals and time limits in seconds, SLA delays in hours.
    assignment_interval_seconds: int = 60
    sla_interval_seconds: int = 60
    qc_interval_seconds: int = 15
    demo_feed_seconds: int = 5
    job_runs_keep_days: int = 14
    job_time_limit_seconds: int = 300
    escalation_hours: float = 4.0
    digest_hour: int = 8
    breach_threshold: float = 0.5
    rollup_interval_seconds: int = 300


def load_settings() -> Settings:
    """Read every setting from the environment, raising ConfigError on a bad one."""
    data_dir = env_path("IMAGINGOPS_DATA_DIR", PROJECT_ROOT / "var")
    log_level = env_str("IMAGINGOPS_LOG_LEVEL", "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(
            f"IMAGINGOPS_LOG_LEVEL={log_level!r} must be DEBUG, INFO, WARNING or ERROR"
        )
    database_url = _raw("DATABASE_URL")
    if database_url is not None and not database_url.startswith("postgresql"):
        raise ConfigError(
            f"DATABASE_URL must be a postgresql:// URL, got scheme "
            f"{database_url.split(':', 1)[0]!r}"
        )
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        drop_dir=env_path("IMAGINGOPS_DROP_DIR", data_dir / "drop"),
        archive_dir=env_path("IMAGINGOPS_ARCHIVE_DIR", data_dir / "archive"),
        quarantine_dir=env_path("IMAGINGOPS_QUARANTINE_DIR", data_dir / "quarantine"),
        scp_ae_title=env_ae_title("IMAGINGOPS_SCP_AE_TITLE", "IMAGINGOPS"),
        scp_host=env_str("IMAGINGOPS_SCP_HOST", "127.0.0.1"),
        scp_port=env_int("IMAGINGOPS_SCP_PORT", 11112, minimum=0, maximum=65535),
        web_host=env_str("IMAGINGOPS_WEB_HOST", "127.0.0.1"),
        web_port=env_int("IMAGINGOPS_WEB_PORT", 8050, minimum=1, maximum=65535),
        secret_key=env_str("IMAGINGOPS_SECRET_KEY", ""),
        refresh_seconds=env_int("IMAGINGOPS_REFRESH_SECONDS", 10, minimum=1),
        ingest_interval_seconds=env_int(
            "IMAGINGOPS_INGEST_INTERVAL_SECONDS", 2, minimum=1
        ),
        ingest_stable_seconds=env_float("IMAGINGOPS_INGEST_STABLE_SECONDS", 2.0),
        ingest_batch_size=env_int("IMAGINGOPS_INGEST_BATCH_SIZE", 500, minimum=1),
        smtp_host=env_str("IMAGINGOPS_SMTP_HOST", ""),
        smtp_port=env_int("IMAGINGOPS_SMTP_PORT", 25, minimum=1, maximum=65535),
        smtp_from=env_str("IMAGINGOPS_SMTP_FROM", "imagingops@localhost"),
        webhook_url=env_str("IMAGINGOPS_WEBHOOK_URL", ""),
        log_level=log_level,
        assignment_interval_seconds=env_int(
            "IMAGINGOPS_ASSIGNMENT_INTERVAL_SECONDS", 60, minimum=1
        ),
        sla_interval_seconds=env_int("IMAGINGOPS_SLA_INTERVAL_SECONDS", 60, minimum=1),
        qc_interval_seconds=env_int("IMAGINGOPS_QC_INTERVAL_SECONDS", 15, minimum=1),
        demo_feed_seconds=env_int("IMAGINGOPS_DEMO_FEED_SECONDS", 5, minimum=0),
        job_runs_keep_days=env_int("IMAGINGOPS_JOB_RUNS_KEEP_DAYS", 14, minimum=1),
        job_time_limit_seconds=env_int(
            "IMAGINGOPS_JOB_TIME_LIMIT_SECONDS", 300, minimum=1
        ),
        escalation_hours=env_float("IMAGINGOPS_SLA_ESCALATION_HOURS", 4.0),
        digest_hour=env_int("IMAGINGOPS_DIGEST_HOUR", 8, minimum=0, maximum=23),
        breach_threshold=env_float(
            "IMAGINGOPS_BREACH_THRESHOLD", 0.5, minimum=0.0, maximum=1.0
        ),
        rollup_interval_seconds=env_int(
            "IMAGINGOPS_ROLLUP_INTERVAL_SECONDS", 300, minimum=10
        ),
    )
