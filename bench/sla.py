"""Benchmark: one SLA sweep over 1,000,000 cases of which 100,000 are open.

    DATABASE_URL=postgresql://... python -m bench.sla [--cases N] [--open N]

Creates its own database and generates with SQL: finished cases with two signed
reads each (the last 180 days of them feed the model), open cases spread over the
workflow states with reads assigned to 200 readers, and one exam and series per
case. Times one fit of the triage rates (`core.triage.fit_rates`, an hourly job),
then one call of `core.sla.sweep` including its commit, twice: the first raises
the alerts, the second finds them present.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.common import SEED_STUDY_SQL, bench_database, machine_line
from core.sla import sweep
from core.triage import fit_rates

CHARTER = {"sla": {"total_hours": 240, "qc_hours": 24, "read_hours": 72}}

_DATA_SQL = """
SELECT setseed(0.7);
INSERT INTO readers (id, name) SELECT g, 'Reader ' || g FROM generate_series(1, 200) g;
INSERT INTO subjects (id, study_id, site_id, subject_code)
SELECT g, 1, 1, 'B-' || g FROM generate_series(1, :cases / 5 + 1) g;
INSERT INTO cases (id, study_id, site_id, subject_id, timepoint_id, state,
                   charter_version, first_received_at, last_received_at, due_at,
                   completed_at)
SELECT g, 1, 1, (g - 1) / 5 + 1, (g - 1) % 5 + 1,
       CASE WHEN g <= :open THEN (ARRAY['received', 'qc', 'reading', 'reading',
                                        'reading', 'adjudication'])[1 + g % 6]
            ELSE 'done' END,
       1, t, t, t + interval '240 hours',
       CASE WHEN g > :open THEN t + random() * interval '300 hours' END
FROM generate_series(1, :cases) g,
     LATERAL (SELECT CASE WHEN g <= :open
                          THEN now() - random() * interval '300 hours'
                          ELSE now() - interval '300 hours'
                               - random() * interval '700 days' END
                     + g * interval '0 s' AS t) r;
INSERT INTO exams (id, case_id, study_instance_uid)
SELECT id, id, '2.25.' || id FROM cases;
INSERT INTO series (exam_id, series_instance_uid, modality)
SELECT id, '2.25.9' || id, CASE WHEN id % 3 = 0 THEN 'MR' ELSE 'CT' END FROM exams;
INSERT INTO reads (case_id, kind, state, reader_id, created_at, assigned_at,
                   signed_at, due_at)
SELECT c.id, k.kind,
       CASE WHEN c.state = 'done' THEN 'signed'
            WHEN c.state IN ('received', 'qc') THEN 'unassigned'
            ELSE 'assigned' END,
       CASE WHEN c.state IN ('received', 'qc') THEN NULL
            ELSE 1 + (c.id * 7 + length(k.kind)) % 200 END,
       c.first_received_at + interval '12 hours',
       CASE WHEN c.state IN ('received', 'qc') THEN NULL
            ELSE c.first_received_at + interval '18 hours' END,
       CASE WHEN c.state = 'done' THEN c.completed_at END,
       CASE WHEN c.state IN ('received', 'qc') THEN NULL
            ELSE c.first_received_at + interval '90 hours' END
FROM cases c CROSS JOIN (VALUES ('primary'), ('secondary')) k(kind)
WHERE c.state <> 'received';
UPDATE readers r SET open_reads = n
FROM (SELECT reader_id, count(*) AS n FROM reads WHERE state = 'assigned'
      GROUP BY reader_id) a WHERE a.reader_id = r.id;
VACUUM ANALYZE;
"""


def run(cases: int, open_cases: int) -> dict[str, object]:
    with bench_database("bench_sla") as engine:
        started = time.perf_counter()
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        with autocommit.connect() as conn:
            conn.execute(text(SEED_STUDY_SQL), {"document": json.dumps(CHARTER)})
            for statement in _DATA_SQL.split(";\n"):
                if statement.strip():
                    conn.execute(text(statement), {"cases": cases, "open": open_cases})
        generated = time.perf_counter() - started
        started = time.perf_counter()
        with Session(engine) as session, session.begin():
            fit_rates(session, datetime.now(UTC))
        fitted = time.perf_counter() - started
        timings = []
        created = []
        for _ in range(2):
            started = time.perf_counter()
            with Session(engine) as session, session.begin():
                created.append(sweep(session, datetime.now(UTC)))
            timings.append(round(time.perf_counter() - started, 3))
        return {
            "cases": cases,
            "open_cases": open_cases,
            "generate_seconds": round(generated, 1),
            "fit_seconds": round(fitted, 3),
            "sweep_seconds": timings,
            "alerts_created": created,
            "machine": machine_line(engine),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(run(args.cases, args.open), indent=2))


if __name__ == "__main__":
    main()
