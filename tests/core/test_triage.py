"""Triage order, score parts and the breach backtest."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.access import make_scope
from core.backtest import (
    backtest_figures,
    latest_backtests,
    run_all_backtests,
    run_backtest,
)
from core.models import Exam, Instance, Read, Series, Study, TriageCaseModality
from core.triage import fit_rates, triage
from tests.factories import NOW, make_case, make_reader, make_study


def _add_images(session: Session, case_id: int, series: int, per_series: int) -> None:
    exam = Exam(case_id=case_id, study_instance_uid=f"2.25.{case_id}")
    session.add(exam)
    session.flush()
    for s in range(series):
        row = Series(
            exam_id=exam.id, series_instance_uid=f"2.25.{case_id}.{s}", modality="CT"
        )
        session.add(row)
        session.flush()
        for i in range(per_series):
            session.add(
                Instance(
                    series_id=row.id,
                    sop_instance_uid=f"2.25.{case_id}.{s}.{i}",
                    content_sha256="0" * 64,
                    size_bytes=1,
                    archive_path="x",
                    source="test",
                    received_at=NOW,
                )
            )
    session.flush()


def test_triage_order_and_parts(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        relaxed = make_case(session, study, "301-0001", 1, received=NOW)
        tight = make_case(
            session, study, "301-0002", 1, received=NOW - timedelta(hours=200)
        )
        urgent = make_case(session, study, "301-0003", 1, received=NOW, urgent=True)
        baseline = make_case(session, study, "301-0002", 0, received=NOW)
        _add_images(session, tight.id, series=2, per_series=3)
    with sessions() as session:
        rows = triage(session, NOW)
    order = [row.case_id for row in rows]
    assert order == [urgent.id, baseline.id, tight.id, relaxed.id]
    tight_row = rows[2]
    assert tight_row.series == 2
    assert tight_row.instances == 6
    assert tight_row.prior_timepoints == 1
    assert tight_row.reads_outstanding == 2
    assert tight_row.hours_left == 40.0
    assert tight_row.breach_probability > rows[3].breach_probability


def _finished_history(session: Session, study: Study) -> None:
    """Add ten finished cases; cases 8 and 9 finish after their 240 h SLA."""
    first = make_reader(session, f"A {study.protocol_id}", study)
    second = make_reader(session, f"B {study.protocol_id}", study)
    for number in range(10):
        received = NOW - timedelta(days=100 - number)
        case = make_case(session, study, f"301-9{number:03d}", received=received)
        # Cases 8 and 9 finish after their 240 h SLA; the others in 100 h.
        hours = 300 if number >= 8 else 100
        case.state = "done"
        case.completed_at = received + timedelta(hours=hours)
        for read in session.query(Read).filter_by(case_id=case.id):
            read.state = "signed"
            read.reader_id = first.id if read.kind == "primary" else second.id
            read.assigned_at = received + timedelta(hours=1)
            read.signed_at = received + timedelta(hours=hours)


def test_backtest_counts_breaches(sessions: sessionmaker[Session]) -> None:
    """Ten finished cases; the 70% split leaves cases 6 to 9 for the replay.

    Cases 6 and 7 finish at 100 h, before their snapshot at 120 h, so only the two
    late cases are replayed.
    """
    with sessions.begin() as session:
        study = make_study(session, timepoints=1)
        _finished_history(session, study)
    with sessions.begin() as session:
        result = run_backtest(session, study_id=study.id)
    assert result is not None
    assert result.cases == 2
    assert result.breaches == 2
    assert result.detail["train_share"] == 0.7
    with sessions() as session:
        latest = latest_backtests(session)
    assert [row.id for row in latest] == [result.id]


def test_fit_learns_reader_speed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        slow = make_reader(session, "Slow", study)
        fast = make_reader(session, "Fast", study)
        for number in range(10):
            received = NOW - timedelta(days=20 + number)
            case = make_case(session, study, f"301-8{number:03d}", received=received)
            case.state = "done"
            case.completed_at = received + timedelta(hours=120)
            _add_images(session, case.id, series=1, per_series=1)
            for read in session.query(Read).filter_by(case_id=case.id):
                slow_read = read.kind == "primary"
                read.state = "signed"
                read.reader_id = slow.id if slow_read else fast.id
                read.assigned_at = received
                read.signed_at = received + timedelta(hours=100 if slow_read else 10)
        open_slow = make_case(session, study, "301-8100", kinds=("primary",))
        open_fast = make_case(session, study, "301-8101", kinds=("primary",))
        for case, reader in ((open_slow, slow), (open_fast, fast)):
            _add_images(session, case.id, series=1, per_series=1)
            read = session.query(Read).filter_by(case_id=case.id).one()
            read.state = "assigned"
            read.reader_id = reader.id
            read.assigned_at = NOW
    with sessions.begin() as session:
        fitted = fit_rates(session, NOW)
    with sessions() as session:
        rows = {row.case_id: row for row in triage(session, NOW)}
        cached = session.scalar(select(func.count(TriageCaseModality.case_id)))
    assert fitted == 1
    assert cached == 2
    # Ten 100 h reads shrunk toward the 55 h study mean with weight 5: 85 h.
    assert (
        round(rows[open_slow.id].predicted_hours - rows[open_fast.id].predicted_hours)
        == 60
    )


def test_backtest_figures_follow_scope(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        own = make_study(session, timepoints=1)
        other = make_study(session, "CNS-110", timepoints=1)
        _finished_history(session, own)
        _finished_history(session, other)
    with sessions.begin() as session:
        results = dict(run_all_backtests(session, threshold=0.5))
    manager = make_scope("sm", "study_manager", frozenset({own.id}))
    admin = make_scope("admin", "admin", frozenset())
    with sessions() as session:
        mine = backtest_figures(session, manager)
        every = backtest_figures(session, admin)
    assert {row["study"] for row in mine} == {"ONC-301"}
    assert {row["study"] for row in every} == {"all studies", "ONC-301", "CNS-110"}
    assert [row["threshold"] for row in mine] == [0.3, 0.5, 0.7]
    chosen = [row for row in mine if row["chosen"]]
    assert len(chosen) == 1
    stored = results[own.id]
    assert stored is not None
    assert chosen[0]["cases"] == stored.cases
    assert chosen[0]["breaches"] == stored.breaches
    assert chosen[0]["precision"] == stored.precision
    assert chosen[0]["recall"] == stored.recall
    overall = results[None]
    assert overall is not None
    assert overall.cases == 2 * stored.cases
