"""SLA alerts: the sweep that marks cases at risk or breached, and their delivery.

Steps and their due times (charter `sla` block, see `core.charter_sla`):

- `total`: the case's stored `due_at`.
- `qc`: first instance + `qc_hours`, while the case is received, in QC or queried.
- `read` / `adjudication`: the earliest `due_at` of the case's open reads of that
  kind, set when the read is assigned.

Kinds: `breached` once a due time has passed with the step open; `at_risk` before
that, when the breach probability from `core.triage` reaches the threshold (`total`
and read steps) or, for QC, once 75% of the QC window has passed. A unique
constraint on (case, step, kind) makes each alert exist once, whichever jobs process
inserts it first. Cases on hold are skipped because their clock is paused.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.charter_sla import study_targets
from core.triage import (
    LIVE_READS,
    PREDICTION_SQL,
    SCOPED_MODALITY_SQL,
    STORED_RATES_SQL,
    model_params,
)

log = logging.getLogger(__name__)

QC_AT_RISK_SHARE = 0.75
OPEN_STATES = "('received', 'qc', 'query', 'reading', 'adjudication')"

_SWEEP_SQL = (
    "WITH "
    + STORED_RATES_SQL
    + f""",
targets AS (
    SELECT * FROM unnest(CAST(:study_ids AS integer[]), CAST(:qc_hours AS float8[]))
        AS t(study_id, qc_hours)
),
scope AS (
    SELECT c.id, c.study_id, c.due_at, c.state, c.urgent, false AS is_baseline,
           CAST(:at AS timestamptz) AS at
    FROM cases c
    WHERE c.state IN {OPEN_STATES} AND c.due_at IS NOT NULL
), """
    + SCOPED_MODALITY_SQL
    + ", "
    + PREDICTION_SQL.format(**LIVE_READS)
    + f""",
read_due AS (
    SELECT case_id,
           CASE WHEN kind = 'adjudication' THEN 'adjudication' ELSE 'read' END
             AS step,
           min(due_at) AS due_at,
           bool_or(:at + make_interval(secs => hours * 3600) > due_at) AS late
    FROM case_reads
    WHERE state IN ('assigned', 'in_progress') AND due_at IS NOT NULL
      AND kind IN ('primary', 'secondary', 'adjudication')
    GROUP BY 1, 2
),
candidates AS (
    SELECT id AS case_id, 'total' AS step,
           CASE WHEN due_at <= :at THEN 'breached' ELSE 'at_risk' END AS kind,
           due_at
    FROM scored
    WHERE due_at <= :at OR breach_probability >= :threshold
    UNION ALL
    SELECT case_id, step,
           CASE WHEN due_at <= :at THEN 'breached' ELSE 'at_risk' END, due_at
    FROM read_due WHERE due_at <= :at OR late
    UNION ALL
    SELECT c.id, 'qc',
           CASE WHEN q.due_at <= :at THEN 'breached' ELSE 'at_risk' END, q.due_at
    FROM cases c
    JOIN targets t ON t.study_id = c.study_id
    CROSS JOIN LATERAL (
        SELECT c.first_received_at + make_interval(secs => t.qc_hours * 3600)
          AS due_at) q
    WHERE c.state IN ('received', 'qc', 'query')
      AND c.first_received_at
          + make_interval(secs => t.qc_hours * 3600 * {QC_AT_RISK_SHARE}) <= :at
)
INSERT INTO alerts (case_id, step, kind, due_at)
SELECT case_id, step, kind, due_at FROM candidates
ON CONFLICT (case_id, step, kind) DO NOTHING
"""
)


def sweep(
    session: Session,
    now: datetime,
    *,
    threshold: float = 0.5,
) -> int:
    """Insert the at-risk and breached alerts due at `now`; return how many are new."""
    study_ids = list(
        session.scalars(
            text(f"SELECT DISTINCT study_id FROM cases WHERE state IN {OPEN_STATES}")
        )
    )
    targets = study_targets(session, set(study_ids))
    params = model_params(now, now) | {
        "at": now,
        "threshold": threshold,
        "study_ids": study_ids,
        "qc_hours": [targets[sid].qc_hours for sid in study_ids],
    }
    # The planner's row estimates for this statement trigger JIT compilation, which
    # costs about a second and saves nothing at these row counts (measured).
    session.execute(text("SET LOCAL jit = off"))
    result = session.execute(text(_SWEEP_SQL), params)
    created = int(getattr(result, "rowcount", 0))
    if created:
        log.info("SLA sweep raised %d new alerts", created)
    return created
