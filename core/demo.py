"""Demo portfolio: sponsors, studies, sites and subjects with real DICOM arrivals.

Images are the real DICOM files that ship with pydicom, re-tagged with new UIDs and
clinical trial attributes and sent through the normal ingest path. Every row the demo
creates is marked `is_demo` where the table has that column, and the demo's audit
rows name the actor `demo`.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pydicom.data
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit
from core.models import Site, Sponsor, Study, Subject, Timepoint

log = logging.getLogger(__name__)

DEMO_ACTOR = "demo"
PYDICOM_TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


@dataclass(frozen=True)
class DemoStudy:
    """One demo trial: its size, imaging modality and visit schedule."""

    sponsor: str
    protocol_id: str
    title: str
    modality: str
    sites: int
    subjects: int
    visit_interval_days: int
    visits: int
    instances_per_case: int = 1
    charter_file: str = ""


DEMO_STUDIES = (
    DemoStudy(
        "Helios Therapeutics",
        "ONC-301",
        "NSCLC, second line",
        "CT",
        8,
        200,
        42,
        8,
        instances_per_case=2,
        charter_file="onc-301.yaml",
    ),
    DemoStudy(
        "Helios Therapeutics",
        "ONC-302",
        "Metastatic colorectal cancer",
        "CT",
        7,
        160,
        56,
        6,
        charter_file="onc-302.yaml",
    ),
    DemoStudy(
        "Meridian Biosciences",
        "HCC-210",
        "Hepatocellular carcinoma",
        "MR",
        6,
        130,
        56,
        6,
        instances_per_case=2,
        charter_file="hcc-210.yaml",
    ),
    DemoStudy(
        "Meridian Biosciences",
        "MEL-115",
        "Advanced melanoma",
        "CT",
        5,
        120,
        42,
        8,
        charter_file="mel-115.yaml",
    ),
    DemoStudy(
        "Corvid Pharma",
        "BRC-415",
        "HER2+ breast cancer",
        "CT",
        6,
        130,
        63,
        6,
        charter_file="brc-415.yaml",
    ),
)

SOURCE_FILES = {"CT": "CT_small.dcm", "MR": "MR_small.dcm"}


def source_file(modality: str) -> Path:
    """Return the pydicom test file used as the image for a modality."""
    return PYDICOM_TEST_FILES / SOURCE_FILES[modality]


def timepoint_codes(study: DemoStudy) -> list[tuple[str, int]]:
    """Return (Time Point ID, target day) for each scheduled visit, baseline first."""
    codes = [("BASELINE", 0)]
    for visit in range(1, study.visits):
        day = visit * study.visit_interval_days
        codes.append((f"W{day // 7:02d}", day))
    return codes


@dataclass(frozen=True)
class PlannedCase:
    """One subject visit the demo will send images for."""

    protocol_id: str
    sponsor: str
    site_code: str
    subject_code: str
    timepoint: str
    modality: str
    arrives_at: datetime
    instances: int


@dataclass
class DemoPlan:
    cases: list[PlannedCase] = field(default_factory=list)
    enrolment: dict[tuple[str, str], date] = field(default_factory=dict)


def subject_code(study: DemoStudy, site_number: int, number: int) -> str:
    """Return a pseudonymous subject id such as `301-0412` (site 04, subject 12)."""
    return f"{study.protocol_id.split('-')[1]}-{site_number:02d}{number:02d}"


def plan_portfolio(now: datetime, *, days: int = 120, seed: int = 301) -> DemoPlan:
    """Plan every demo case whose visit falls within the last `days` days.

    Subjects enrol at random over the year before `now`; each scheduled visit arrives a
    few days either side of its target day, and about one subject in twelve has an
    unscheduled visit.
    """
    rng = random.Random(seed)
    plan = DemoPlan()
    window_start = now - timedelta(days=days)
    for study in DEMO_STUDIES:
        schedule = timepoint_codes(study)
        for index in range(study.subjects):
            site_number = index % study.sites + 1
            code = subject_code(study, site_number, index // study.sites + 1)
            enrolled = now - timedelta(days=rng.uniform(5, 365))
            plan.enrolment[(study.protocol_id, code)] = enrolled.date()
            visits = [(tp, day + rng.uniform(-3, 3)) for tp, day in schedule]
            if rng.random() < 1 / 12:
                visits.append(("UNSCHEDULED", rng.uniform(10, days)))
            for timepoint, day in visits:
                arrives = enrolled + timedelta(
                    days=max(day, 0), hours=rng.uniform(0, 10)
                )
                if window_start <= arrives <= now:
                    plan.cases.append(
                        PlannedCase(
                            study.protocol_id,
                            study.sponsor,
                            f"S{site_number:02d}",
                            code,
                            timepoint,
                            study.modality,
                            arrives,
                            study.instances_per_case,
                        )
                    )
    plan.cases.sort(key=lambda case: case.arrives_at)
    return plan


def create_registry(session: Session, plan: DemoPlan) -> None:
    """Create the sponsors, studies, sites, subjects and timepoints of the demo."""
    sponsors: dict[str, Sponsor] = {}
    for spec in DEMO_STUDIES:
        sponsor = sponsors.get(spec.sponsor)
        if sponsor is None:
            sponsor = Sponsor(name=spec.sponsor)
            session.add(sponsor)
            session.flush()
            sponsors[spec.sponsor] = sponsor
        study = Study(
            sponsor_id=sponsor.id,
            protocol_id=spec.protocol_id,
            title=spec.title,
            is_demo=True,
            leadership_email=f"lead-{spec.protocol_id.lower()}@cro.example",
        )
        session.add(study)
        session.flush()
        _create_study_children(session, spec, study, plan)
        audit.record(
            session,
            actor=DEMO_ACTOR,
            action="study.created",
            entity_type="study",
            entity_id=study.id,
            study_id=study.id,
            new={
                "protocol_id": spec.protocol_id,
                "sponsor": spec.sponsor,
                "demo": True,
            },
            reason="demo portfolio",
        )


def _create_study_children(
    session: Session, spec: DemoStudy, study: Study, plan: DemoPlan
) -> None:
    sites = []
    for number in range(1, spec.sites + 1):
        site = Site(
            study_id=study.id, site_code=f"S{number:02d}", name=f"Site {number:02d}"
        )
        sites.append(site)
    session.add_all(sites)
    session.flush()
    codes = timepoint_codes(spec)
    for ordinal, (code, day) in enumerate(codes):
        session.add(
            Timepoint(
                study_id=study.id,
                code=code,
                ordinal=ordinal,
                target_day=day,
                window_days=7 if day else 28,
                is_baseline=(day == 0),
            )
        )
    session.add(Timepoint(study_id=study.id, code="UNSCHEDULED", ordinal=len(codes)))
    for index in range(spec.subjects):
        site_number = index % spec.sites + 1
        code = subject_code(spec, site_number, index // spec.sites + 1)
        session.add(
            Subject(
                study_id=study.id,
                site_id=sites[site_number - 1].id,
                subject_code=code,
                enrolled_on=plan.enrolment[(spec.protocol_id, code)],
            )
        )
    session.flush()


def portfolio_exists(session: Session) -> bool:
    return bool(
        session.scalar(select(func.count()).select_from(Study).where(Study.is_demo))
    )


def utc_now() -> datetime:
    return datetime.now(UTC)
