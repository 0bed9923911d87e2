"""Triage scores and breach prediction for open cases.

The model is a plain statistical one in SQL. `fit_rates` (an hourly job) stores the
rates below in `triage_study_rates` and `triage_reader_rates`; the SLA sweep and the
triage list read them, and the backtest computes them from history before a past
instant instead:

- Predicted read hours (assignment to signature) for a read is the mean of the
  study's signed reads in the last `HISTORY_DAYS` days by the same reader on the same
  modality, shrunk toward the study mean with a weight of `SHRINK_READS` reads; an
  unassigned read adds the study's mean wait for a reader.
- Predicted remaining hours of a case is the slowest outstanding primary/secondary
  read (R1 and R2 run in parallel), plus the study's adjudication rate times its mean
  adjudication read hours while the adjudication is still to come.
- The spread is the study's standard deviation of read hours. The breach
  probability is P(finish > due) under a normal error, computed with the logistic
  approximation 1 / (1 + exp(-1.702 z)), z = (predicted - hours left) / spread.

Order of work: urgent cases, then baseline (eligibility) timepoints, then the smallest
slack (hours left minus predicted hours). Series, instance and prior-timepoint counts
are shown with the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

HISTORY_DAYS = 180
SHRINK_READS = 5.0
# Used when a study has no signed reads yet: hours per read and their spread.
DEFAULT_READ_HOURS = 24.0
DEFAULT_SPREAD_HOURS = 12.0

# The per-study and per-reader rates; `:since` bounds the history.
RATES_SQL = """
history AS (
    SELECT c.study_id, r.reader_id, r.kind,
           coalesce(m.modality, '') AS modality,
           extract(epoch FROM r.signed_at - r.assigned_at) / 3600.0 AS hours,
           extract(epoch FROM r.assigned_at - r.created_at) / 3600.0 AS wait
    FROM reads r
    JOIN cases c ON c.id = r.case_id
    LEFT JOIN case_modality m ON m.case_id = c.id
    WHERE r.state = 'signed' AND r.signed_at >= :since AND r.signed_at < :now
      AND r.assigned_at IS NOT NULL
),
study_rates AS (
    SELECT study_id,
           avg(hours) FILTER (WHERE kind <> 'adjudication') AS mean_hours,
           coalesce(stddev_samp(hours) FILTER (WHERE kind <> 'adjudication'),
                    :default_spread) AS spread,
           avg(wait) AS mean_wait,
           coalesce(avg(hours) FILTER (WHERE kind = 'adjudication'),
                    avg(hours)) AS adjudication_hours,
           count(*) AS reads
    FROM history GROUP BY study_id
),
reader_rates AS (
    SELECT h.study_id, h.reader_id, h.modality,
           (sum(h.hours) + :shrink * s.mean_hours) / (count(*) + :shrink) AS hours,
           count(*) AS reads
    FROM history h JOIN study_rates s USING (study_id)
    WHERE h.kind <> 'adjudication'
    GROUP BY h.study_id, h.reader_id, h.modality, s.mean_hours
),
adjudication_rates AS (
    SELECT c.study_id,
           avg((EXISTS (SELECT 1 FROM reads a WHERE a.case_id = c.id
                        AND a.kind = 'adjudication'))::int) AS rate
    FROM cases c
    WHERE c.state = 'done' AND c.completed_at >= :since AND c.completed_at < :now
    GROUP BY c.study_id
)
"""

# One row per case in `scope` (a CTE the caller defines with id, study_id, due_at,
# state, urgent, is_baseline and `at`, the instant of the prediction). A read counts
# as outstanding when `{outstanding}` is true, and `{reader}` is its reader at `at`;
# the caller fills both in, for now or for a past instant in the backtest.
PREDICTION_SQL = """
case_reads AS (
    SELECT s.id AS case_id, r.kind, r.state, r.due_at, {reader} AS reader_id,
           coalesce(rr.hours, sr.mean_hours, :default_hours)
             + CASE WHEN {reader} IS NULL
                    THEN coalesce(sr.mean_wait, 0) ELSE 0 END AS hours
    FROM scope s
    JOIN reads r ON r.case_id = s.id
    LEFT JOIN case_modality m ON m.case_id = s.id
    LEFT JOIN study_rates sr ON sr.study_id = s.study_id
    LEFT JOIN reader_rates rr ON rr.study_id = s.study_id
         AND rr.reader_id = {reader} AND rr.modality = coalesce(m.modality, '')
    WHERE {outstanding}
),
read_totals AS (
    SELECT case_id, count(*) AS reads_outstanding,
           max(hours) FILTER (WHERE kind <> 'adjudication') AS paired_hours,
           max(hours) FILTER (WHERE kind = 'adjudication') AS adjudication_hours
    FROM case_reads GROUP BY case_id
),
predicted AS (
    SELECT s.id, s.study_id, s.due_at, s.urgent, s.is_baseline,
           extract(epoch FROM s.due_at - s.at) / 3600.0 AS hours_left,
           coalesce(t.reads_outstanding, 0) AS reads_outstanding,
           -- Before reading starts, a case still needs a wait and a read.
           CASE WHEN s.state IN ('received', 'qc', 'query')
                THEN coalesce(sr.mean_hours, :default_hours)
                     + coalesce(sr.mean_wait, 0)
                ELSE coalesce(t.paired_hours, 0)
           END
             + CASE WHEN t.adjudication_hours IS NOT NULL THEN t.adjudication_hours
                    WHEN s.state = 'adjudication' THEN 0
                    ELSE coalesce(ar.rate, 0.3)
                         * coalesce(sr.adjudication_hours, :default_hours)
               END AS predicted_hours,
           coalesce(sr.spread, :default_spread) AS spread
    FROM scope s
    LEFT JOIN read_totals t ON t.case_id = s.id
    LEFT JOIN study_rates sr ON sr.study_id = s.study_id
    LEFT JOIN adjudication_rates ar ON ar.study_id = s.study_id
),
scored AS (
    SELECT p.*,
           1.0 / (1.0 + exp(-1.702 * greatest(least(
               (p.predicted_hours - p.hours_left) / greatest(p.spread, 0.1),
               30), -30))) AS breach_probability
    FROM predicted p
)
"""

# Reads still to sign now, with their current reader.
LIVE_READS = {
    "outstanding": "r.state IN ('unassigned', 'assigned', 'in_progress')",
    "reader": "r.reader_id",
}

# The rates as last fitted by `fit_rates`, for sweeps over the live portfolio.
STORED_RATES_SQL = """
study_rates AS (
    SELECT study_id, mean_hours, spread, mean_wait, adjudication_hours
    FROM triage_study_rates
),
reader_rates AS (
    SELECT study_id, reader_id, modality, hours FROM triage_reader_rates
),
adjudication_rates AS (
    SELECT study_id, adjudication_rate AS rate FROM triage_study_rates
)
"""

# Open cases' modalities as cached by `fit_rates`; a case that arrived since the
# last fit has none yet and is predicted with its study's rates.
SCOPED_MODALITY_SQL = """
case_modality AS (
    SELECT case_id, modality FROM triage_case_modalities
)
"""

MODALITY_SQL = """
case_modality AS (
    SELECT e.case_id, min(se.modality) AS modality
    FROM exams e JOIN series se ON se.exam_id = e.id
    WHERE e.case_id IS NOT NULL
    GROUP BY e.case_id
)
"""


def model_params(now: datetime, since: datetime) -> dict[str, object]:
    """Return the bind parameters shared by the rate and prediction SQL."""
    return {
        "now": now,
        "since": since,
        "shrink": SHRINK_READS,
        "default_hours": DEFAULT_READ_HOURS,
        "default_spread": DEFAULT_SPREAD_HOURS,
    }


@dataclass(frozen=True)
class TriageRow:
    """One open case's rank and the parts of its score (no subject ids)."""

    case_id: int
    study_id: int
    urgent: bool
    baseline: bool
    hours_left: float
    reads_outstanding: int
    series: int
    instances: int
    prior_timepoints: int
    predicted_hours: float
    slack_hours: float
    breach_probability: float


_TRIAGE_SQL = (
    "WITH "
    + STORED_RATES_SQL
    + """,
scope AS (
    SELECT c.id, c.study_id, c.due_at, c.state, c.urgent, t.is_baseline,
           c.subject_id, t.ordinal, CAST(:at AS timestamptz) AS at
    FROM cases c JOIN timepoints t ON t.id = c.timepoint_id
    WHERE c.state IN ('received', 'qc', 'query', 'reading', 'adjudication')
      AND c.due_at IS NOT NULL
      AND (:all_studies OR c.study_id = ANY(CAST(:study_ids AS integer[])))
), """
    + SCOPED_MODALITY_SQL
    + ", "
    + PREDICTION_SQL.format(**LIVE_READS)
    + """
SELECT sc.id, sc.study_id, sc.urgent, sc.is_baseline, sc.hours_left,
       sc.reads_outstanding, sc.predicted_hours, sc.breach_probability,
       (SELECT count(*) FROM series se JOIN exams e ON e.id = se.exam_id
         WHERE e.case_id = sc.id) AS series,
       (SELECT count(*) FROM instances i JOIN series se ON se.id = i.series_id
         JOIN exams e ON e.id = se.exam_id WHERE e.case_id = sc.id) AS instances,
       (SELECT count(*) FROM cases p JOIN timepoints pt ON pt.id = p.timepoint_id
         JOIN scope s2 ON s2.id = sc.id
         WHERE p.subject_id = s2.subject_id AND pt.ordinal < s2.ordinal)
         AS prior_timepoints
FROM scored sc
ORDER BY sc.urgent DESC, sc.is_baseline DESC,
         sc.hours_left - sc.predicted_hours, sc.id
LIMIT :limit
"""
)


def triage(
    session: Session,
    now: datetime,
    *,
    study_ids: list[int] | None = None,
    limit: int = 200,
) -> list[TriageRow]:
    """Return open cases in work order with the parts of each score.

    `study_ids` limits the cases to those studies; None means every study.
    """
    params = model_params(now, now) | {
        "at": now,
        "all_studies": study_ids is None,
        "study_ids": study_ids or [],
        "limit": limit,
    }
    session.execute(text("SET LOCAL jit = off"))
    rows = session.execute(text(_TRIAGE_SQL), params)
    return [
        TriageRow(
            case_id=row.id,
            study_id=row.study_id,
            urgent=row.urgent,
            baseline=row.is_baseline,
            hours_left=float(row.hours_left),
            reads_outstanding=int(row.reads_outstanding),
            series=int(row.series),
            instances=int(row.instances),
            prior_timepoints=int(row.prior_timepoints),
            predicted_hours=float(row.predicted_hours),
            slack_hours=float(row.hours_left) - float(row.predicted_hours),
            breach_probability=float(row.breach_probability),
        )
        for row in rows
    ]


# Serialises concurrent fits, which delete and re-insert the same keys.
_FIT_LOCK_KEY = 7_310_301

_FIT_STUDY_SQL = (
    "WITH "
    + MODALITY_SQL
    + ", "
    + RATES_SQL
    + """
INSERT INTO triage_study_rates (study_id, mean_hours, spread, mean_wait,
    adjudication_hours, adjudication_rate, reads, fitted_at)
SELECT s.study_id, s.mean_hours, s.spread, s.mean_wait, s.adjudication_hours,
       a.rate, s.reads, :now
FROM study_rates s LEFT JOIN adjudication_rates a USING (study_id)
"""
)

_FIT_READER_SQL = (
    "WITH "
    + MODALITY_SQL
    + ", "
    + RATES_SQL
    + """
INSERT INTO triage_reader_rates (study_id, reader_id, modality, hours, reads)
SELECT study_id, reader_id, modality, hours, reads FROM reader_rates
"""
)


# Adds open cases missing from the cache and drops closed ones.
_CACHE_MODALITY_SQL = """
DELETE FROM triage_case_modalities m USING cases c
WHERE c.id = m.case_id AND c.state NOT IN
      ('received', 'qc', 'query', 'reading', 'adjudication', 'on_hold');
INSERT INTO triage_case_modalities (case_id, modality)
SELECT e.case_id, min(se.modality)
FROM cases c JOIN exams e ON e.case_id = c.id JOIN series se ON se.exam_id = e.id
WHERE c.state IN ('received', 'qc', 'query', 'reading', 'adjudication', 'on_hold')
  AND se.modality IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM triage_case_modalities m WHERE m.case_id = c.id)
GROUP BY e.case_id
"""


def fit_rates(
    session: Session, now: datetime, *, history_days: int = HISTORY_DAYS
) -> int:
    """Refit the stored rates from the reads signed in the last `history_days`.

    Returns the number of studies with a fitted rate. Studies without history keep
    no row, so predictions for them use the defaults.
    """
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FIT_LOCK_KEY})
    session.execute(text("DELETE FROM triage_reader_rates"))
    session.execute(text("DELETE FROM triage_study_rates"))
    params = model_params(now, now - timedelta(days=history_days))
    result = session.execute(text(_FIT_STUDY_SQL), params)
    session.execute(text(_FIT_READER_SQL), params)
    session.execute(text(_CACHE_MODALITY_SQL))
    return int(getattr(result, "rowcount", 0))
