"""Capacity forecast: projected backlog and breach dates from visits and readers.

Method (per study, in weeks):
1. Expected arrivals: visits of enrolled subjects whose date (enrolment day +
   timepoint target day) falls in the week and that have no case yet; visits
   already past their date count in the first week.
2. Capacity in cases per week: the sum over active trained readers of
   daily capacity x 5 working days, split evenly across the studies each reader
   has current training for, divided by reads per case (1 for a single-read
   charter, else 2 + the recent adjudication share when the charter adjudicates).
3. Queue(w+1) = max(0, queue(w) + arrivals(w) - capacity(w)), from the open cases
   now. Cases also stay open while they go through QC and reading, even with
   spare capacity; by Little's law that work in progress is arrivals per day x
   the mean lead time in days (arrival to done, over the last 90 days). The
   projected open cases of a week are the larger of the two.
4. A breach is expected in the first week whose backlog takes longer to clear at
   that capacity than the study's mean SLA window (due time - arrival).

The back-test replays the last weeks with their real arrivals and today's capacity
and compares the projected backlog with the real one at each week end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import charter, portfolio
from core.access import Scope

WORKING_DAYS_PER_WEEK = 5
DEFAULT_SLA_DAYS = 10.0
DEFAULT_ADJUDICATION_SHARE = 0.3

INPUTS_SQL = """
WITH readers_here AS (
    SELECT rd.id, rd.daily_capacity,
        (SELECT count(DISTINCT rt2.study_id) FROM reader_trainings rt2
            WHERE rt2.reader_id = rd.id
            AND rt2.trained_on <= CAST(:today AS date)
            AND (rt2.expires_on IS NULL OR rt2.expires_on > CAST(:today AS date)))
            AS studies
    FROM readers rd
    WHERE rd.active AND EXISTS (SELECT 1 FROM reader_trainings rt
        WHERE rt.reader_id = rd.id AND rt.study_id = :study_id
        AND rt.trained_on <= CAST(:today AS date)
        AND (rt.expires_on IS NULL OR rt.expires_on > CAST(:today AS date)))
)
SELECT
    (SELECT count(*) FROM cases c WHERE c.study_id = :study_id
        AND c.state IN ('received', 'qc', 'query', 'reading', 'adjudication',
            'on_hold')) AS open_cases,
    (SELECT coalesce(sum(daily_capacity::float / greatest(studies, 1)), 0)
        FROM readers_here) AS reads_per_day,
    (SELECT count(*) FROM readers_here) AS readers,
    (SELECT coalesce(avg(daily_capacity), 0) FROM readers_here) AS mean_capacity,
    (SELECT extract(epoch FROM avg(c.due_at - c.first_received_at)) / 86400
        FROM cases c WHERE c.study_id = :study_id AND c.due_at IS NOT NULL
        AND c.first_received_at >= CAST(:today AS date) - 90) AS sla_days,
    (SELECT extract(epoch FROM avg(c.completed_at - c.first_received_at)) / 86400
        FROM cases c WHERE c.study_id = :study_id AND c.state = 'done'
        AND c.completed_at >= CAST(:today AS date) - 90) AS lead_days,
    (SELECT avg(CASE WHEN EXISTS (SELECT 1 FROM reads a WHERE a.case_id = c.id
            AND a.kind = 'adjudication' AND a.state <> 'cancelled') THEN 1.0 ELSE 0 END)
        FROM cases c WHERE c.study_id = :study_id AND c.state = 'done'
        AND c.completed_at >= CAST(:today AS date) - 90) AS adjudication_share
"""

EXPECTED_SQL = """
SELECT greatest(0, (s.enrolled_on + t.target_day - CAST(:today AS date)) / 7) AS week,
    count(*) AS visits
FROM subjects s JOIN timepoints t ON t.study_id = s.study_id
WHERE s.study_id = :study_id AND s.enrolled_on IS NOT NULL
    AND t.target_day IS NOT NULL
    AND s.enrolled_on + t.target_day < CAST(:today AS date) + 7 * :weeks
    AND NOT EXISTS (SELECT 1 FROM cases c
        WHERE c.subject_id = s.id AND c.timepoint_id = t.id)
GROUP BY 1
"""

ARRIVALS_SQL = """
SELECT (CAST(c.first_received_at AT TIME ZONE 'UTC' AS date)
        - CAST(:start AS date)) / 7 AS week, count(*) AS cases
FROM cases c
WHERE c.study_id = :study_id AND c.first_received_at >= CAST(:start AS date)
    AND c.first_received_at < CAST(:today AS date)
GROUP BY 1
"""


@dataclass(frozen=True)
class Inputs:
    """The figures a forecast starts from."""

    open_cases: int
    readers: int
    mean_reader_capacity: float
    cases_per_week: float
    sla_days: float
    reads_per_case: float
    lead_days: float = 0.0


@dataclass(frozen=True)
class Forecast:
    inputs: Inputs
    weeks: list[date]
    arrivals: list[int]
    backlog: list[float]
    breach_week: date | None


def load_inputs(session: Session, scope: Scope, study_id: int, today: date) -> Inputs:
    scope.require_study(study_id)
    row = session.execute(
        text(INPUTS_SQL), {"study_id": study_id, "today": today}
    ).one()
    reads_per_case = _reads_per_case(session, study_id, row.adjudication_share)
    cases_per_week = float(row.reads_per_day) * WORKING_DAYS_PER_WEEK / reads_per_case
    return Inputs(
        open_cases=int(row.open_cases),
        readers=int(row.readers),
        mean_reader_capacity=float(row.mean_capacity),
        cases_per_week=cases_per_week,
        sla_days=float(row.sla_days) if row.sla_days else DEFAULT_SLA_DAYS,
        reads_per_case=reads_per_case,
        lead_days=float(row.lead_days) if row.lead_days else 0.0,
    )


def _reads_per_case(session: Session, study_id: int, share: float | None) -> float:
    """Return the reads a case needs under the study's current read design.

    A study without a charter counts as a double read with adjudication.
    """
    try:
        design = charter.get_document(session, study_id, None)["read_design"]
    except LookupError:
        design = {"type": "double", "adjudication": True}
    if design["type"] == "single":
        return 1.0
    if not design.get("adjudication", True):
        return 2.0
    return 2 + (DEFAULT_ADJUDICATION_SHARE if share is None else float(share))


def expected_arrivals(
    session: Session, scope: Scope, study_id: int, today: date, weeks: int
) -> list[int]:
    scope.require_study(study_id)
    params = {"study_id": study_id, "today": today, "weeks": weeks}
    counts = [0] * weeks
    for week, visits in session.execute(text(EXPECTED_SQL), params):
        if 0 <= int(week) < weeks:
            counts[int(week)] += int(visits)
    return counts


def project(
    start_backlog: float,
    arrivals: list[int],
    cases_per_week: float,
    lead_days: float = 0.0,
) -> list[float]:
    """Return the open cases at the end of each week.

    That is the queue beyond capacity or, when it is smaller, the work in progress
    that the lead time keeps open (Little's law).
    """
    queue, result = float(start_backlog), []
    for arriving in arrivals:
        queue = max(0.0, queue + arriving - cases_per_week)
        in_progress = arriving / 7 * lead_days
        result.append(max(queue, in_progress))
    return result


def first_breach(backlog: list[float], inputs: Inputs, cases_per_week: float) -> int:
    """Return the index of the first week whose backlog outlasts the SLA, or -1."""
    per_day = cases_per_week / 7
    for index, waiting in enumerate(backlog):
        if per_day <= 0 and waiting > 0:
            return index
        if per_day > 0 and waiting / per_day > inputs.sla_days:
            return index
    return -1


def forecast(
    session: Session,
    scope: Scope,
    study_id: int,
    *,
    weeks: int = 12,
    reader_change: int = 0,
    today: date | None = None,
) -> Forecast:
    """Project the study's backlog, with `reader_change` readers added or removed."""
    return forecasts(
        session,
        scope,
        study_id,
        weeks=weeks,
        reader_changes=(reader_change,),
        today=today,
    )[0]


def forecasts(
    session: Session,
    scope: Scope,
    study_id: int,
    *,
    weeks: int = 12,
    reader_changes: tuple[int, ...] = (0,),
    today: date | None = None,
) -> list[Forecast]:
    """Project the study's backlog once per reader change, querying the inputs once."""
    today = today or datetime.now(UTC).date()
    inputs = load_inputs(session, scope, study_id, today)
    arrivals = expected_arrivals(session, scope, study_id, today, weeks)
    week_starts = [today + timedelta(weeks=index) for index in range(weeks)]
    results = []
    for reader_change in reader_changes:
        extra = reader_change * inputs.mean_reader_capacity * WORKING_DAYS_PER_WEEK
        capacity = max(0.0, inputs.cases_per_week + extra / inputs.reads_per_case)
        backlog = project(inputs.open_cases, arrivals, capacity, inputs.lead_days)
        breach = first_breach(backlog, inputs, capacity)
        results.append(
            Forecast(
                inputs,
                week_starts,
                arrivals,
                backlog,
                week_starts[breach] if breach >= 0 else None,
            )
        )
    return results


@dataclass(frozen=True)
class Backtest:
    weeks: list[date]
    actual: list[int]
    predicted: list[float]
    mean_absolute_error: float | None


def backtest(
    session: Session,
    scope: Scope,
    study_id: int,
    *,
    weeks: int = 8,
    today: date | None = None,
) -> Backtest:
    """Replay the last `weeks` weeks with real arrivals and today's capacity."""
    today = today or datetime.now(UTC).date()
    start = today - timedelta(weeks=weeks)
    inputs = load_inputs(session, scope, study_id, today)
    trend = portfolio.backlog_trend(
        session, scope, start=start - timedelta(days=1), end=today, study_id=study_id
    )
    by_day = {point.day: point.open_cases for point in trend}
    arrivals = [0] * weeks
    params = {"study_id": study_id, "start": start, "today": today}
    for week, count in session.execute(text(ARRIVALS_SQL), params):
        if 0 <= int(week) < weeks:
            arrivals[int(week)] = int(count)
    start_backlog = by_day.get(start - timedelta(days=1), 0)
    predicted = project(
        start_backlog, arrivals, inputs.cases_per_week, inputs.lead_days
    )
    ends = [
        start + timedelta(weeks=index + 1) - timedelta(days=1) for index in range(weeks)
    ]
    actual = [by_day.get(day, 0) for day in ends]
    errors = [abs(p - a) for p, a in zip(predicted, actual, strict=True)]
    mae = sum(errors) / len(errors) if errors else None
    return Backtest(ends, actual, predicted, mae)
