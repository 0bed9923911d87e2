"""Backtest of the breach predictor on finished cases.

Method: finished cases are split by arrival time. The model's rates come only from
reads signed before the split instant, and each case that arrived after it is
replayed at a snapshot instant, `SNAPSHOT_SHARE` of the way through its SLA window.
At that instant its outstanding reads are those created and not yet signed, with the
reader known only if already assigned. A case that finished before its snapshot is
left out, because nothing was left to predict. A breach is `completed_at > due_at`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.access import Scope, study_filter
from core.models import Study, TriageBacktest
from core.triage import MODALITY_SQL, PREDICTION_SQL, RATES_SQL, model_params

log = logging.getLogger(__name__)

SNAPSHOT_SHARE = 0.5
TRAIN_SHARE = 0.7
THRESHOLDS = (0.3, 0.5, 0.7)

_SPLIT_SQL = """
SELECT percentile_disc(:share) WITHIN GROUP (ORDER BY first_received_at)
FROM cases
WHERE state = 'done' AND due_at IS NOT NULL AND completed_at IS NOT NULL
  AND (CAST(:study AS integer) IS NULL OR study_id = :study)
"""

_PAST_READS = {
    "outstanding": "r.created_at <= s.at AND r.state <> 'cancelled' "
    "AND (r.signed_at IS NULL OR r.signed_at > s.at)",
    "reader": "(CASE WHEN r.assigned_at <= s.at THEN r.reader_id END)",
}

_BACKTEST_SQL = (
    "WITH "
    + MODALITY_SQL
    + ", "
    + RATES_SQL
    + """,
finished AS (
    SELECT c.id, c.study_id, c.due_at, c.completed_at, c.urgent,
           false AS is_baseline,
           c.first_received_at + (c.due_at - c.first_received_at) * :snapshot AS at
    FROM cases c
    WHERE c.state = 'done' AND c.due_at IS NOT NULL AND c.completed_at IS NOT NULL
      AND c.first_received_at >= :now
      AND (CAST(:study AS integer) IS NULL OR c.study_id = :study)
),
scope AS (
    SELECT f.*,
           CASE WHEN EXISTS (SELECT 1 FROM reads a WHERE a.case_id = f.id
                             AND a.kind = 'adjudication' AND a.created_at <= f.at)
                THEN 'adjudication'
                WHEN EXISTS (SELECT 1 FROM reads a WHERE a.case_id = f.id
                             AND a.kind = 'primary' AND a.created_at <= f.at)
                THEN 'reading'
                ELSE 'qc' END AS state
    FROM finished f
    WHERE f.completed_at > f.at
), """
    + PREDICTION_SQL.format(**_PAST_READS)
    + """
SELECT sc.breach_probability AS probability,
       f.completed_at > f.due_at AS breached
FROM scored sc JOIN finished f ON f.id = sc.id
"""
)


@dataclass(frozen=True)
class Quality:
    threshold: float
    cases: int
    breaches: int
    predicted: int
    true_positives: int

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.breaches if self.breaches else None


def _quality(outcomes: list[tuple[float, bool]], threshold: float) -> Quality:
    flagged = [
        breached for probability, breached in outcomes if probability >= threshold
    ]
    return Quality(
        threshold=threshold,
        cases=len(outcomes),
        breaches=sum(1 for _, breached in outcomes if breached),
        predicted=len(flagged),
        true_positives=sum(1 for breached in flagged if breached),
    )


def run_backtest(
    session: Session,
    *,
    study_id: int | None = None,
    threshold: float = 0.5,
    history_days: int = 180,
) -> TriageBacktest | None:
    """Replay finished cases through the model and store precision and recall.

    Returns None when the study has no finished cases to split.
    """
    split = session.scalar(text(_SPLIT_SQL), {"share": TRAIN_SHARE, "study": study_id})
    if split is None:
        return None
    params = model_params(split, split - timedelta(days=history_days)) | {
        "study": study_id,
        "snapshot": SNAPSHOT_SHARE,
    }
    session.execute(text("SET LOCAL jit = off"))
    outcomes = [
        (float(row.probability), bool(row.breached))
        for row in session.execute(text(_BACKTEST_SQL), params)
    ]
    chosen = _quality(outcomes, threshold)
    table = [_quality(outcomes, t).__dict__ for t in sorted({*THRESHOLDS, threshold})]
    result = TriageBacktest(
        study_id=study_id,
        threshold=threshold,
        cases=chosen.cases,
        breaches=chosen.breaches,
        predicted=chosen.predicted,
        true_positives=chosen.true_positives,
        precision=chosen.precision,
        recall=chosen.recall,
        detail={
            "split_at": split.isoformat(),
            "snapshot_share": SNAPSHOT_SHARE,
            "train_share": TRAIN_SHARE,
            "thresholds": table,
        },
    )
    session.add(result)
    session.flush()
    log.info(
        "Backtest of study %s: %d cases, precision %s, recall %s",
        study_id,
        chosen.cases,
        chosen.precision,
        chosen.recall,
    )
    return result


def latest_backtests(session: Session) -> list[TriageBacktest]:
    """Return the newest backtest of each study and of all studies together."""
    newest = select(func.max(TriageBacktest.id)).group_by(TriageBacktest.study_id)
    statement = (
        select(TriageBacktest)
        .where(TriageBacktest.id.in_(newest))
        .order_by(TriageBacktest.study_id.nulls_first())
    )
    return list(session.scalars(statement))


def run_all_backtests(
    session: Session, *, threshold: float = 0.5
) -> list[tuple[int | None, TriageBacktest | None]]:
    """Backtest all studies together and then each study; None where none finished."""
    study_ids = list(session.scalars(select(Study.id).order_by(Study.id)))
    return [
        (study_id, run_backtest(session, study_id=study_id, threshold=threshold))
        for study_id in [None, *study_ids]
    ]


_FIGURES_SQL = """
SELECT DISTINCT ON (b.study_id) b.study_id, s.protocol_id AS study, b.run_at,
       b.threshold, b.cases, b.breaches, b.predicted, b.true_positives,
       b.precision, b.recall, b.detail
FROM triage_backtests b LEFT JOIN studies s ON s.id = b.study_id
WHERE (b.study_id IS NULL AND :all_studies) OR {in_scope}
ORDER BY b.study_id NULLS FIRST, b.id DESC
"""


def backtest_figures(session: Session, scope: Scope) -> list[dict[str, Any]]:
    """Return the newest backtest of each study in the scope, one row per threshold.

    The backtest over all studies together is included only for scopes that see
    every study.
    """
    sql = _FIGURES_SQL.format(in_scope=study_filter("b.study_id"))
    rows = session.execute(text(sql), scope.sql_params()).mappings()
    figures: list[dict[str, Any]] = []
    for row in rows:
        for entry in row["detail"].get("thresholds", []):
            quality = Quality(**entry)
            figures.append(
                {
                    "study": row["study"] or "all studies",
                    "run_at": row["run_at"],
                    "threshold": quality.threshold,
                    "chosen": quality.threshold == row["threshold"],
                    "cases": quality.cases,
                    "breaches": quality.breaches,
                    "predicted": quality.predicted,
                    "true_positives": quality.true_positives,
                    "precision": quality.precision,
                    "recall": quality.recall,
                }
            )
    return figures
