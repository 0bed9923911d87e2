"""Capacity forecast: weekly backlog from open cases and trained reader capacity."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core import charter, forecast
from core.access import make_scope
from core.config import PROJECT_ROOT
from core.models import Reader, ReaderTraining, Study
from tests.web_factories import make_case, make_study

TODAY = date(2026, 3, 10)
EVERYTHING = make_scope("lead", "leadership", frozenset())


@pytest.fixture
def study_id(sessions: sessionmaker[Session]) -> int:
    """One reader (10 reads a day) trained on a study with 50 open cases."""
    received = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    with sessions.begin() as session:
        study = make_study(session, "ONC-301", "Acme")
        reader = Reader(name="Dr One", daily_capacity=10)
        session.add(reader)
        session.flush()
        session.add(
            ReaderTraining(
                reader_id=reader.id,
                study_id=study.id,
                criteria="RECIST 1.1",
                trained_on=date(2026, 1, 5),
            )
        )
        for i in range(50):
            make_case(
                session,
                study,
                f"301-{i:04d}",
                state="reading",
                received=received,
                due=received + timedelta(days=5),
            )
        return study.id


def test_backlog_drains_by_weekly_capacity(
    sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions() as session:
        result = forecast.forecast(session, EVERYTHING, study_id, weeks=3, today=TODAY)
    # 10 reads/day x 5 days / 2.3 reads per case (2 + the default 0.3 adjudication
    # share) = 21.74 cases a week.
    assert result.inputs.cases_per_week == pytest.approx(50 / 2.3)
    assert result.backlog == pytest.approx([50 - 50 / 2.3, 50 - 100 / 2.3, 0.0])


def test_added_reader_doubles_capacity(
    sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions() as session:
        base, what_if = forecast.forecasts(
            session,
            EVERYTHING,
            study_id,
            weeks=3,
            reader_changes=(0, 1),
            today=TODAY,
        )
        single = forecast.forecast(
            session, EVERYTHING, study_id, weeks=3, reader_change=1, today=TODAY
        )
    assert what_if.backlog == pytest.approx([50 - 100 / 2.3, 0.0, 0.0])
    assert what_if.backlog == single.backlog
    assert base.backlog[0] > what_if.backlog[0]


def test_single_read_study_needs_one_read_per_case(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        source = (PROJECT_ROOT / "charters" / "ONC-214.yaml").read_text()
        loaded = charter.load(session, "ONC-214", source, actor="test")
        reader = Reader(name="Dr Single", daily_capacity=10)
        session.add(reader)
        session.flush()
        session.add(
            ReaderTraining(
                reader_id=reader.id,
                study_id=loaded.study_id,
                criteria="RECIST 1.1",
                trained_on=date(2026, 1, 5),
            )
        )
    with sessions() as session:
        inputs = forecast.load_inputs(session, EVERYTHING, loaded.study_id, TODAY)
    # The charter's read design is single: one read per case, no adjudication.
    assert inputs.reads_per_case == 1.0
    assert inputs.cases_per_week == pytest.approx(10 * 5)


def test_expired_training_elsewhere_keeps_capacity(
    sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions.begin() as session:
        other = make_study(session, "ONC-999", "Acme")
        reader = session.query(Reader).one()
        session.add(
            ReaderTraining(
                reader_id=reader.id,
                study_id=other.id,
                criteria="RECIST 1.1",
                trained_on=date(2024, 1, 5),
                expires_on=date(2025, 1, 5),
            )
        )
    with sessions() as session:
        inputs = forecast.load_inputs(session, EVERYTHING, study_id, TODAY)
    # The reader no longer reads the other study, so all 10 reads a day go here.
    assert inputs.cases_per_week == pytest.approx(50 / 2.3)


def test_projection_keeps_work_in_progress() -> None:
    """With spare capacity, cases still stay open for the lead time (Little's law)."""
    spare = forecast.project(0, [14, 28], cases_per_week=100, lead_days=3.5)
    overloaded = forecast.project(50, [0], cases_per_week=10, lead_days=3.5)
    assert spare == pytest.approx([7.0, 14.0])
    assert overloaded == pytest.approx([40.0])


def test_lead_time_from_done_cases(
    sessions: sessionmaker[Session], study_id: int
) -> None:
    received = datetime.combine(TODAY, datetime.min.time(), UTC) - timedelta(days=20)
    with sessions.begin() as session:
        study = session.get_one(Study, study_id)
        for i, days in enumerate((2, 4)):
            make_case(
                session,
                study,
                f"301-9{i:03d}",
                state="done",
                received=received,
                completed=received + timedelta(days=days),
            )
    with sessions() as session:
        inputs = forecast.load_inputs(session, EVERYTHING, study_id, TODAY)
    assert inputs.lead_days == pytest.approx(3.0)
