"""Benchmark: assign 10,000 open reads across 200 readers in one job run.

    DATABASE_URL=postgresql://... python -m bench.assignment [--reads N] [--readers N]

Creates its own database, generates the rows with SQL, times one call of
`core.assignment.assign_open_reads` including its commit, and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.common import SEED_STUDY_SQL, bench_database, machine_line
from core.assignment import assign_open_reads

CHARTER = {"criteria": "RECIST 1.1", "sla": {"read_hours": 72}}

_DATA_SQL = """
INSERT INTO readers (id, name, daily_capacity, work_start_hour, work_end_hour,
                     open_reads)
SELECT g, 'Reader ' || g, 40 + (g % 5) * 20, 0, 24, 0
FROM generate_series(1, :readers) g;
INSERT INTO reader_trainings (reader_id, study_id, criteria, trained_on)
SELECT id, 1, 'RECIST 1.1', DATE '2026-01-01' FROM readers;
INSERT INTO subjects (id, study_id, site_id, subject_code)
SELECT g, 1, 1, 'B-' || g FROM generate_series(1, :cases) g;
INSERT INTO cases (id, study_id, site_id, subject_id, timepoint_id, state,
                   charter_version, first_received_at, last_received_at, due_at,
                   urgent)
SELECT g, 1, 1, g, 1 + g % 5, 'reading', 1, now() - interval '2 days',
       now() - interval '2 days', now() + (g % 200) * interval '1 hour',
       g % 50 = 0
FROM generate_series(1, :cases) g;
INSERT INTO reads (case_id, kind, state, created_at)
SELECT c.id, k.kind, 'unassigned', now() - interval '1 day'
FROM cases c CROSS JOIN (VALUES ('primary'), ('secondary')) k(kind);
ANALYZE;
"""


def run(reads: int, readers: int) -> dict[str, object]:
    with bench_database("bench_assign") as engine:
        with engine.begin() as conn:
            conn.execute(text(SEED_STUDY_SQL), {"document": json.dumps(CHARTER)})
            for statement in _DATA_SQL.split(";\n"):
                if statement.strip():
                    conn.execute(
                        text(statement), {"readers": readers, "cases": reads // 2}
                    )
        started = time.perf_counter()
        with Session(engine) as session, session.begin():
            placed = assign_open_reads(session, datetime.now(UTC), limit=reads)
        seconds = time.perf_counter() - started
        with engine.connect() as conn:
            spread = conn.execute(
                text(
                    "SELECT min(open_reads::float / daily_capacity), "
                    "max(open_reads::float / daily_capacity) FROM readers"
                )
            ).one()
        return {
            "reads": reads,
            "readers": readers,
            "assigned": len(placed),
            "seconds": round(seconds, 3),
            "load_share_min": round(spread[0], 3),
            "load_share_max": round(spread[1], 3),
            "machine": machine_line(engine),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=10_000)
    parser.add_argument("--readers", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(run(args.reads, args.readers), indent=2))


if __name__ == "__main__":
    main()
