"""Dashboard rollups give the same figures as the live aggregates they replace."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core import portfolio, rollups
from core.access import make_scope
from core.models import AuditEntry, DashboardFigure, RollupMark
from tests.web_factories import make_case, make_study

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
EVERYTHING = make_scope("lead", "leadership", frozenset())


@pytest.fixture
def study_ids(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    """Acme owns A (three done, one reading, one cancelled) and A2 (one done).

    Borealis owns B, with one received case.
    """
    with sessions.begin() as session:
        a = make_study(session, "ONC-301", "Acme")
        a2 = make_study(session, "ONC-302", "Acme")
        b = make_study(session, "CNS-110", "Borealis")
        start = NOW - timedelta(days=5)
        for i, hours in enumerate((10, 20, 30)):
            make_case(
                session,
                a,
                f"301-{i:04d}",
                state="done",
                received=start,
                completed=start + timedelta(hours=hours),
                due=start + timedelta(hours=25),
            )
        make_case(session, a, "301-0100", state="reading", received=NOW - _h(30))
        make_case(session, a, "301-0101", state="cancelled", received=NOW - _h(50))
        make_case(
            session,
            a2,
            "302-0001",
            state="done",
            received=start,
            completed=start + _h(100),
            due=start + _h(25),
        )
        make_case(session, b, "110-0001", state="received", received=NOW - _h(2))
        return a.id, a2.id, b.id


def _h(hours: float) -> timedelta:
    return timedelta(hours=hours)


def _live(session: Session, group: str = "study") -> list[dict]:
    since = NOW - timedelta(days=30)
    return portfolio.summaries(session, EVERYTHING, now=NOW, since=since, group=group)


def _without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "figures_at"} for row in rows]


@pytest.mark.parametrize("group", ["study", "sponsor"])
def test_stored_figures_match_live(
    sessions: sessionmaker[Session], study_ids: tuple[int, int, int], group: str
) -> None:
    with sessions.begin() as session:
        rollups.rebuild(session, NOW)
    later = NOW + timedelta(minutes=1)
    with sessions() as session:
        stored = portfolio.dashboard_summaries(
            session, EVERYTHING, now=NOW, days=30, group=group
        )
        live = _live(session, group)
        stored_later = portfolio.dashboard_summaries(
            session, EVERYTHING, now=later, days=30, group=group
        )
    assert _without_time(stored) == live
    # The figures keep the time they were computed at, not the request's.
    assert {row["figures_at"] for row in stored_later} == {NOW}


def test_missing_figures_computed_live(
    sessions: sessionmaker[Session], study_ids: tuple[int, int, int]
) -> None:
    with sessions() as session:
        rows = portfolio.dashboard_summaries(session, EVERYTHING, now=NOW, days=30)
        live = _live(session)
    assert _without_time(rows) == live
    assert {row["figures_at"] for row in rows} == {NOW}


def test_new_study_after_rebuild_computed_live(
    sessions: sessionmaker[Session], study_ids: tuple[int, int, int]
) -> None:
    with sessions.begin() as session:
        rollups.rebuild(session, NOW)
    with sessions.begin() as session:
        c = make_study(session, "RAD-001", "Acme")
        start = NOW - timedelta(days=2)
        make_case(
            session,
            c,
            "001-0001",
            state="done",
            received=start,
            completed=start + _h(8),
        )
    with sessions() as session:
        rows = portfolio.dashboard_summaries(session, EVERYTHING, now=NOW, days=30)
    new = next(row for row in rows if row["label"] == "RAD-001")
    assert new["done_cases"] == 1
    assert new["median_hours"] == pytest.approx(8.0)


def test_sponsor_scope_never_reads_other_studies(
    sessions: sessionmaker[Session], study_ids: tuple[int, int, int]
) -> None:
    a, _, _ = study_ids
    with sessions.begin() as session:
        rollups.rebuild(session, NOW)
    only_a = make_scope("acme", "sponsor", frozenset({a}))
    with sessions() as session:
        rows = portfolio.dashboard_summaries(
            session, only_a, now=NOW, days=30, group="sponsor"
        )
    # Acme's stored row also counts study A2's done case; this scope may not see it.
    assert [row["done_cases"] for row in rows] == [3]
    assert rows[0]["median_hours"] == pytest.approx(20.0)


def test_backlog_same_across_the_mark(
    sessions: sessionmaker[Session], study_ids: tuple[int, int, int]
) -> None:
    start, end = date(2026, 3, 1), date(2026, 3, 10)
    with sessions() as session:
        before = portfolio.backlog_trend(session, EVERYTHING, start=start, end=end)
    # A rebuild at 09:00 on Mar 10 leaves B's arrival (10:00) to the live count;
    # one a day later puts every event behind the mark.
    for rebuilt_at in (NOW - _h(3), NOW + timedelta(days=1)):
        with sessions.begin() as session:
            rollups.rebuild(session, rebuilt_at)
        with sessions() as session:
            after = portfolio.backlog_trend(session, EVERYTHING, start=start, end=end)
        assert after == before, rebuilt_at
    by_day = {point.day: point.open_cases for point in before}
    # Mar 8: only A2's case (done Mar 9); the cancelled case opened and closed
    # that day.
    assert by_day[date(2026, 3, 8)] == 1
    # Mar 10: the reading case and B's received case.
    assert by_day[date(2026, 3, 10)] == 2


def test_rebuild_writes_no_audit_rows(
    sessions: sessionmaker[Session], study_ids: tuple[int, int, int]
) -> None:
    with sessions.begin() as session:
        figures = rollups.rebuild(session, NOW)
    with sessions() as session:
        audit_rows = session.scalar(select(func.count()).select_from(AuditEntry))
        stored = session.scalar(select(func.count()).select_from(DashboardFigure))
        mark = session.get(RollupMark, rollups.DAILY_COUNTS)
    # Three studies and two sponsors, each for four ranges.
    assert figures == (3 + 2) * len(portfolio.STORED_RANGES)
    assert stored == figures
    assert audit_rows == 0
    assert mark is not None
    assert mark.counted_before == NOW - rollups.SETTLE


def test_second_rebuild_replaces_rows(
    sessions: sessionmaker[Session], study_ids: tuple[int, int, int]
) -> None:
    later = NOW + timedelta(hours=1)
    with sessions.begin() as session:
        first = rollups.rebuild(session, NOW)
    with sessions.begin() as session:
        second = rollups.rebuild(session, later)
    with sessions() as session:
        times = set(session.scalars(select(DashboardFigure.computed_at)))
        stored = session.scalar(select(func.count()).select_from(DashboardFigure))
    assert second == first
    assert stored == first
    assert times == {later}
