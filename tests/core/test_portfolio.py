"""Portfolio aggregates against values computed by hand for a small fixture."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core import portfolio
from core.access import AccessDenied, make_scope
from tests.web_factories import make_case, make_study

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
EVERYTHING = make_scope("lead", "leadership", frozenset())


def _hours(count: float) -> timedelta:
    return timedelta(hours=count)


@pytest.fixture
def study_ids(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """Study A: four done cases (10, 20, 30, 40 h) and three open; study B: one open."""
    with sessions.begin() as session:
        a = make_study(session, "ONC-301", "Acme")
        b = make_study(session, "CNS-110", "Borealis")
        start = NOW - timedelta(days=5)
        for i, hours in enumerate((10, 20, 30, 40)):
            make_case(
                session,
                a,
                f"301-{i:04d}",
                state="done",
                received=start,
                completed=start + _hours(hours),
                due=start + _hours(25),
            )
        make_case(
            session,
            a,
            "301-0100",
            state="reading",
            received=NOW - _hours(30),
            due=NOW - _hours(1),
        )
        make_case(
            session,
            a,
            "301-0101",
            state="qc",
            received=NOW - timedelta(days=9),
            due=NOW + _hours(5),
        )
        make_case(session, a, "301-0102", state="on_hold", received=NOW - _hours(3))
        make_case(session, b, "110-0001", state="received", received=NOW - _hours(2))
        return a.id, b.id


def _row(rows: list[dict], label: str) -> dict:
    return next(row for row in rows if row["label"] == label)


def test_summaries_count_open_cases(
    sessions: sessionmaker[Session], study_ids: tuple[int, int]
) -> None:
    with sessions() as session:
        rows = portfolio.summaries(
            session, EVERYTHING, now=NOW, since=NOW - timedelta(days=30)
        )
    a = _row(rows, "ONC-301")
    assert a["open_cases"] == 3
    assert a["reading"] == 1
    assert a["qc"] == 1
    assert a["on_hold"] == 1
    assert a["past_due"] == 1
    assert a["age_0_2d"] == 2
    assert a["age_7_14d"] == 1
    assert _row(rows, "CNS-110")["open_cases"] == 1


def test_summaries_compute_turnaround(
    sessions: sessionmaker[Session], study_ids: tuple[int, int]
) -> None:
    with sessions() as session:
        rows = portfolio.summaries(
            session, EVERYTHING, now=NOW, since=NOW - timedelta(days=30)
        )
    a = _row(rows, "ONC-301")
    assert a["done_cases"] == 4
    # percentile_cont interpolates: median of 10, 20, 30, 40 is 25; p90 is 37.
    assert a["median_hours"] == pytest.approx(25.0)
    assert a["p90_hours"] == pytest.approx(37.0)
    # Due 25 h after arrival: the 10 h and 20 h cases met it.
    assert a["sla_met_pct"] == pytest.approx(50.0)
    assert _row(rows, "CNS-110")["median_hours"] is None


def test_summaries_group_by_sponsor(
    sessions: sessionmaker[Session], study_ids: tuple[int, int]
) -> None:
    with sessions() as session:
        rows = portfolio.summaries(
            session,
            EVERYTHING,
            now=NOW,
            since=NOW - timedelta(days=30),
            group="sponsor",
        )
    assert [row["label"] for row in rows] == ["Acme", "Borealis"]
    assert rows[0]["open_cases"] == 3


def test_summaries_respect_scope(
    sessions: sessionmaker[Session], study_ids: tuple[int, int]
) -> None:
    sponsor_b = make_scope("b", "sponsor", frozenset({study_ids[1]}))
    with sessions() as session:
        rows = portfolio.summaries(
            session, sponsor_b, now=NOW, since=NOW - timedelta(days=30)
        )
    assert [row["label"] for row in rows] == ["CNS-110"]


def test_backlog_trend_counts_open_per_day(
    sessions: sessionmaker[Session], study_ids: tuple[int, int]
) -> None:
    with sessions() as session:
        points = portfolio.backlog_trend(
            session, EVERYTHING, start=date(2026, 3, 1), end=date(2026, 3, 10)
        )
    by_day = {point.day: point.open_cases for point in points}
    assert len(points) == 10
    # Mar 1: the qc case (received Mar 1 12:00) is the only one open.
    assert by_day[date(2026, 3, 1)] == 1
    # Mar 5: plus four cases received at 12:00, less the 10 h one done at 22:00.
    assert by_day[date(2026, 3, 5)] == 4
    # Mar 6: the 20 h and 30 h cases were done at 08:00 and 18:00.
    assert by_day[date(2026, 3, 6)] == 2
    # Mar 7: the 40 h case was done at 04:00.
    assert by_day[date(2026, 3, 7)] == 1
    # Mar 10: qc, reading (Mar 9), on hold and B's received case.
    assert by_day[date(2026, 3, 10)] == 4


def test_backlog_trend_rejects_study_outside_scope(
    sessions: sessionmaker[Session], study_ids: tuple[int, int]
) -> None:
    sponsor_b = make_scope("b", "sponsor", frozenset({study_ids[1]}))
    with sessions() as session, pytest.raises(AccessDenied):
        portfolio.backlog_trend(
            session,
            sponsor_b,
            start=date(2026, 3, 1),
            end=date(2026, 3, 2),
            study_id=study_ids[0],
        )
