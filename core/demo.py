"""Demo portfolio: five studies whose images arrive through the real ingest path.

`build_portfolio` loads the shipped charters and registers sites, subjects, readers
and one user per role. It writes re-tagged copies of the CT and MR files that ship
with pydicom and ingests them with arrival times spread over the last 120 days. Then
it drives the older cases through QC, double reads and adjudication with the workflow
functions (`core.demo_workflow`). Demo studies are marked `is_demo`, and the demo's
own audit rows name the actor `demo`.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from core import accounts, audit, charter, readers
from core.config import PROJECT_ROOT
from core.demo_images import ImageWriter
from core.demo_workflow import Driver, apply_timelines, cases_in_arrival_order
from core.ingest import ingest_arrivals
from core.ingest.prepare import Arrival
from core.models import (
    AuditEntry,
    Case,
    Reader,
    Site,
    Sponsor,
    Study,
    Subject,
    User,
)
from core.runtime import Runtime

log = logging.getLogger(__name__)

DEMO_ACTOR = "demo"
BUILT_ACTION = "demo.portfolio_built"
CHARTER_DIR = PROJECT_ROOT / "charters"


@dataclass(frozen=True)
class DemoStudy:
    """One demo trial: its charter file and how many sites and subjects it has."""

    protocol_id: str
    sites: int
    subjects: int


DEMO_STUDIES = (
    DemoStudy("ONC-301", 8, 260),
    DemoStudy("NEU-118", 6, 190),
    DemoStudy("ONC-214", 6, 170),
    DemoStudy("BRC-415", 6, 170),
    DemoStudy("MEL-115", 6, 190),
)

# Demo users by role; study managers and sponsors get the studies listed.
DEMO_USERS = (
    ("admin", "admin", ()),
    ("leader", "leadership", ()),
    ("manager", "study_manager", ("ONC-301", "NEU-118", "ONC-214")),
    ("qc", "qc_reviewer", tuple(s.protocol_id for s in DEMO_STUDIES)),
    ("sponsor-helix", "sponsor", ("ONC-301", "NEU-118")),
    ("sponsor-corvid", "sponsor", ("BRC-415", "MEL-115")),
)
READER_COUNT = 14
READER_ZONES = ("Europe/London", "America/New_York", "Europe/Berlin", "Asia/Kolkata")
# Demo readers sign thousands of simulated reads at start-up, and a scrypt check
# takes about 0.2 s each, so their passwords use a fast PBKDF2 hash. Real accounts
# use `accounts.hash_password`.
DEMO_READER_HASH = "pbkdf2:sha256:1000"


def charter_path(protocol_id: str) -> Path:
    return CHARTER_DIR / f"{protocol_id}.yaml"


@dataclass(frozen=True)
class PlannedCase:
    """One subject visit whose images the demo sends."""

    protocol_id: str
    site_code: str
    subject_code: str
    timepoint: str
    arrives_at: datetime
    series: tuple[tuple[str, str], ...]  # (modality, body part) per series


@dataclass
class DemoPlan:
    cases: list[PlannedCase] = field(default_factory=list)
    enrolment: dict[tuple[str, str], date] = field(default_factory=dict)


def subject_code(protocol_id: str, site_number: int, number: int) -> str:
    """Return a pseudonymous subject id such as `301-0412` (site 04, subject 12)."""
    return f"{protocol_id.split('-')[1]}-{site_number:02d}{number:02d}"


def subjects_of(spec: DemoStudy) -> list[tuple[int, str]]:
    """Return (site number, subject code) for every subject of a demo study."""
    return [
        (
            i % spec.sites + 1,
            subject_code(spec.protocol_id, i % spec.sites + 1, i // spec.sites + 1),
        )
        for i in range(spec.subjects)
    ]


def series_for(document: dict[str, Any], visit: str) -> tuple[tuple[str, str], ...]:
    """Return one (modality, body part) entry per series the charter requires."""
    series: list[tuple[str, str]] = []
    for rule in charter.required_series_for(document, visit):
        for _ in range(int(rule.get("min_series", 1))):
            series.append((rule["modality"], rule.get("body_part") or ""))
    return tuple(series)


def plan_portfolio(now: datetime, *, days: int = 120, seed: int = 301) -> DemoPlan:
    """Plan every demo case whose visit falls within the last `days` days.

    Subjects enrol at random within the window, so each has its baseline there. Each
    later visit of the charter arrives up to three days either side of its target
    day, and about one subject in twelve has an unscheduled visit.
    """
    rng = random.Random(seed)
    plan = DemoPlan()
    window_start = now - timedelta(days=days)
    for spec in DEMO_STUDIES:
        document = charter.parse(charter_path(spec.protocol_id).read_text())
        scheduled = [v for v in document["visits"] if v.get("target_day") is not None]
        unscheduled = [
            v["code"] for v in document["visits"] if v["code"].startswith("UNSCHED")
        ]
        for site_number, code in subjects_of(spec):
            enrolled = now - timedelta(days=rng.uniform(0.1, days))
            plan.enrolment[(spec.protocol_id, code)] = enrolled.date()
            visits = [
                (v["code"], v["target_day"] + rng.uniform(-3, 3)) for v in scheduled
            ]
            if unscheduled and rng.random() < 1 / 12:
                visits.append((unscheduled[0], rng.uniform(10, days)))
            for visit, day in visits:
                arrives = enrolled + timedelta(
                    days=max(day, 0), hours=rng.uniform(0, 10)
                )
                if window_start <= arrives <= now:
                    plan.cases.append(
                        PlannedCase(
                            spec.protocol_id,
                            f"S{site_number:02d}",
                            code,
                            visit,
                            arrives,
                            series_for(document, visit),
                        )
                    )
    plan.cases.sort(key=lambda case: case.arrives_at)
    return plan


def load_charters(session: Session) -> dict[str, int]:
    """Load each demo study's charter (creating the study) and return study ids."""
    study_ids: dict[str, int] = {}
    for spec in DEMO_STUDIES:
        result = charter.load(
            session,
            spec.protocol_id,
            charter_path(spec.protocol_id).read_text(),
            actor=DEMO_ACTOR,
            reason="demo portfolio",
        )
        study_ids[spec.protocol_id] = result.study_id
    session.execute(
        update(Study).where(Study.id.in_(study_ids.values())).values(is_demo=True)
    )
    for protocol_id, study_id in study_ids.items():
        session.execute(
            update(Study)
            .where(Study.id == study_id)
            .values(leadership_email=f"lead-{protocol_id.lower()}@cro.example")
        )
    return study_ids


def register_sites_and_subjects(
    session: Session, study_ids: dict[str, int], plan: DemoPlan
) -> None:
    """Register the sites and subjects of each demo study, audited per study."""
    for spec in DEMO_STUDIES:
        study_id = study_ids[spec.protocol_id]
        sites = [
            Site(study_id=study_id, site_code=f"S{n:02d}", name=f"Site {n:02d}")
            for n in range(1, spec.sites + 1)
        ]
        session.add_all(sites)
        session.flush()
        for site_number, code in subjects_of(spec):
            session.add(
                Subject(
                    study_id=study_id,
                    site_id=sites[site_number - 1].id,
                    subject_code=code,
                    enrolled_on=plan.enrolment[(spec.protocol_id, code)],
                )
            )
        audit.record(
            session,
            actor=DEMO_ACTOR,
            action="study.registry_loaded",
            entity_type="study",
            entity_id=study_id,
            study_id=study_id,
            new={"sites": spec.sites, "subjects": spec.subjects},
            reason="demo portfolio",
        )
    session.flush()


def create_users(
    session: Session, study_ids: dict[str, int], passwords: dict[str, str]
) -> dict[str, int]:
    """Create one user per role and the readers; return reader ids by username."""
    for username, role, protocols in DEMO_USERS:
        accounts.create_user(
            session,
            username,
            passwords[username],
            role,
            display_name=username.replace("-", " ").title(),
            study_ids=[study_ids[p] for p in protocols],
            actor=DEMO_ACTOR,
        )
    return _create_readers(session, study_ids, passwords)


def _create_readers(
    session: Session, study_ids: dict[str, int], passwords: dict[str, str]
) -> dict[str, int]:
    protocols = [spec.protocol_id for spec in DEMO_STUDIES]
    reader_ids: dict[str, int] = {}
    trained_on = datetime.now(UTC).date() - timedelta(days=400)
    for number in range(1, READER_COUNT + 1):
        username = f"reader{number:02d}"
        zone = READER_ZONES[number % len(READER_ZONES)]
        # Each reader trains on three of the five studies, so every study has 8 or 9.
        studies = [protocols[(number + k) % len(protocols)] for k in range(3)]
        user = accounts.create_user(
            session,
            username,
            passwords[username],
            "reader",
            display_name=f"Dr. Reader {number:02d}",
            timezone=zone,
            study_ids=[study_ids[p] for p in studies],
            actor=DEMO_ACTOR,
        )
        user.password_hash = generate_password_hash(
            passwords[username], DEMO_READER_HASH
        )
        reader = Reader(
            user_id=user.id,
            name=f"Dr. Reader {number:02d}",
            email=f"{username}@cro.example",
            timezone=zone,
            daily_capacity=12 + 2 * (number % 5),
            work_start_hour=0,
            work_end_hour=24,
        )
        session.add(reader)
        session.flush()
        for protocol in studies:
            readers.record_training(
                session,
                reader.id,
                study_ids[protocol],
                "RECIST 1.1",
                trained_on,
                trained_on + timedelta(days=3 * 365),
                actor=DEMO_ACTOR,
                reason="demo portfolio set-up",
            )
        reader_ids[username] = reader.id
    return reader_ids


def demo_passwords(path: Path) -> dict[str, str]:
    """Return the demo users' passwords, creating and saving them on first use."""
    if path.exists():
        saved: dict[str, str] = json.loads(path.read_text())
        return saved
    names = [name for name, _, _ in DEMO_USERS]
    names += [f"reader{n:02d}" for n in range(1, READER_COUNT + 1)]
    passwords = {name: f"demo-{secrets.token_urlsafe(9)}" for name in names}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(passwords, indent=2))
    path.chmod(0o600)
    return passwords


def portfolio_exists(session: Session) -> bool:
    count = session.scalar(select(func.count()).select_from(Study).where(Study.is_demo))
    return bool(count)


def portfolio_built(session: Session) -> bool:
    """Return whether a demo build ran to its end.

    The build commits in several transactions, so demo studies alone may be what
    an interrupted build left behind.
    """
    found = session.scalar(
        select(AuditEntry.id).where(AuditEntry.action == BUILT_ACTION).limit(1)
    )
    return found is not None


def record_built(session: Session) -> None:
    """Record, as the last step of a build, that the demo portfolio is complete."""
    audit.record(
        session,
        actor=DEMO_ACTOR,
        action=BUILT_ACTION,
        entity_type="demo",
        entity_id="portfolio",
        new={"studies": [spec.protocol_id for spec in DEMO_STUDIES]},
        reason="demo portfolio",
    )


def demo_user_ids(session: Session) -> dict[str, int]:
    rows = session.execute(select(User.username, User.id)).all()
    return {username: user_id for username, user_id in rows}


@dataclass(frozen=True)
class DemoSummary:
    studies: int
    sites: int
    subjects: int
    cases: int
    files: int
    ingested: int
    driven: int


def build_portfolio(runtime: Runtime, *, now: datetime | None = None) -> DemoSummary:
    """Build the whole demo portfolio; the database must not hold it yet."""
    now = now or datetime.now(UTC)
    passwords = demo_passwords(credentials_path(runtime))
    plan = plan_portfolio(now)
    with runtime.sessions.begin() as session:
        study_ids = load_charters(session)
        register_sites_and_subjects(session, study_ids, plan)
        reader_ids = create_users(session, study_ids, passwords)
        sponsor_of: dict[str, str] = dict(
            session.execute(
                select(Study.protocol_id, Sponsor.name).join(
                    Sponsor, Sponsor.id == Study.sponsor_id
                )
            ).all()
        )
        user_of_reader: dict[int, int] = {}
        for reader_id, user_id in session.execute(select(Reader.id, Reader.user_id)):
            assert user_id is not None, "every demo reader has a user account"
            user_of_reader[reader_id] = user_id

    started = time.monotonic()
    files = _write_images(runtime, plan, sponsor_of)
    log.info(
        "Demo: wrote %d files of %d cases in %.0f s",
        len(files),
        len(plan.cases),
        time.monotonic() - started,
    )

    started = time.monotonic()
    report = ingest_arrivals(runtime, files, remove_inputs=True)
    log.info(
        "Demo: ingested %d files in %.0f s", report.ingested, time.monotonic() - started
    )
    reader_users = {
        reader_id: (user_of_reader[reader_id], passwords[username])
        for username, reader_id in reader_ids.items()
    }

    started = time.monotonic()
    driven = _drive_history(runtime, list(study_ids.values()), reader_users, now)
    log.info(
        "Demo: drove %d cases through the workflow in %.0f s",
        driven,
        time.monotonic() - started,
    )
    with runtime.sessions.begin() as session:
        record_built(session)
    return DemoSummary(
        studies=len(study_ids),
        sites=sum(spec.sites for spec in DEMO_STUDIES),
        subjects=sum(spec.subjects for spec in DEMO_STUDIES),
        cases=len(plan.cases),
        files=len(files),
        ingested=report.ingested,
        driven=driven,
    )


def credentials_path(runtime: Runtime) -> Path:
    return runtime.settings.data_dir / "demo-users.json"


def _write_images(
    runtime: Runtime, plan: DemoPlan, sponsor_of: dict[str, str]
) -> list[Arrival]:
    staging = runtime.settings.data_dir / "demo-staging" / "history"
    staging.mkdir(parents=True, exist_ok=True)
    writer = ImageWriter(sponsor_of)
    arrivals: list[Arrival] = []
    for case in plan.cases:
        for path in writer.write_case(
            staging,
            protocol=case.protocol_id,
            site=case.site_code,
            subject=case.subject_code,
            timepoint=case.timepoint,
            taken_at=case.arrives_at - timedelta(hours=6),
            series=case.series,
        ):
            arrivals.append(Arrival(path, case.arrives_at, "drop"))
    return arrivals


def _drive_history(
    runtime: Runtime,
    study_ids: list[int],
    reader_users: dict[int, tuple[int, str]],
    now: datetime,
    batch_size: int = 100,
) -> int:
    """Drive every case in arrival order, one transaction per batch of cases."""
    with runtime.sessions() as session:
        case_ids = [case.id for case in cases_in_arrival_order(session, study_ids)]
    driver: Driver | None = None
    for start in range(0, len(case_ids), batch_size):
        with runtime.sessions.begin() as session:
            if driver is None:
                driver = Driver(session, now, reader_users)
            driver.session = session
            timelines = [
                driver.drive(session.get_one(Case, case_id))
                for case_id in case_ids[start : start + batch_size]
            ]
            apply_timelines(session, timelines)
    return len(case_ids)
