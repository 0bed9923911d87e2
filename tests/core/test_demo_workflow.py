"""The demo's simulated history: workflow rows carry the simulated times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from core import charter, demo
from core.demo_images import ImageWriter
from core.demo_workflow import Driver, apply_timelines
from core.ingest import ingest_arrivals
from core.ingest.prepare import Arrival
from core.models import Case, Read, Reader, Sponsor, Study
from core.runtime import Runtime


def _demo_case(runtime: Runtime, tmp_path: Path, arrives_at: datetime) -> Driver:
    """Register the demo studies and ingest one ONC-301 baseline; return a driver."""
    now = datetime.now(UTC)
    passwords = demo.demo_passwords(tmp_path / "demo-users.json")
    plan = demo.plan_portfolio(now)
    with runtime.sessions.begin() as session:
        study_ids = demo.load_charters(session)
        demo.register_sites_and_subjects(session, study_ids, plan)
        reader_ids = demo.create_users(session, study_ids, passwords)
        sponsor_of = dict(
            session.execute(
                select(Study.protocol_id, Sponsor.name).join(
                    Sponsor, Sponsor.id == Study.sponsor_id
                )
            ).all()
        )
        document = charter.get_document(session, study_ids["ONC-301"], None)
        user_of_reader = dict(session.execute(select(Reader.id, Reader.user_id)).all())
    reader_users = {
        reader_id: (user_of_reader[reader_id], passwords[username])
        for username, reader_id in reader_ids.items()
    }
    writer = ImageWriter(sponsor_of)
    paths = writer.write_case(
        tmp_path,
        protocol="ONC-301",
        site="S01",
        subject=demo.subject_code("ONC-301", 1, 1),
        timepoint="BASELINE",
        taken_at=arrives_at - timedelta(hours=6),
        series=demo.series_for(document, "BASELINE"),
    )
    arrivals = [Arrival(path, arrives_at, "drop") for path in paths]
    assert ingest_arrivals(runtime, arrivals, workers=1).ingested == len(arrivals)
    with runtime.sessions() as session:
        return Driver(session, now, reader_users)


def test_history_reads_are_due_from_simulated_creation(
    runtime: Runtime, tmp_path: Path
) -> None:
    arrives_at = datetime.now(UTC) - timedelta(days=30)
    driver = _demo_case(runtime, tmp_path, arrives_at)
    with runtime.sessions.begin() as session:
        driver.session = session
        case = session.scalars(select(Case)).one()
        timeline = driver.drive(case)
        apply_timelines(session, [timeline])

    assert timeline.qc_at is not None
    assert len(timeline.read_times) >= 2
    with runtime.sessions() as session:
        rows = session.scalars(select(Read).order_by(Read.id)).all()
        assert len(rows) == len(timeline.read_times)
        for read in rows:
            hours = 48 if read.kind == "adjudication" else 72
            assert read.due_at is not None
            assert read.due_at - read.created_at == timedelta(hours=hours), read.kind
