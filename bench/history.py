"""Synthetic read history for the backtest: finished cases with known outcomes.

Readers differ in speed (a log-normal factor), MR reads take 1.4 times as long as CT
reads, read times and waits are exponential, and 35% of cases need adjudication.
The case SLA is `TOTAL_HOURS`, so slow readers and adjudications cause breaches.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, text

from bench.common import SEED_STUDY_SQL

TOTAL_HOURS = 120
CHARTER = {
    "criteria": "RECIST 1.1",
    "sla": {"total_hours": TOTAL_HOURS, "qc_hours": 24, "read_hours": 72},
}

_HISTORY_SQL = """
SELECT setseed(:seed);
INSERT INTO readers (id, name, daily_capacity)
SELECT g, 'Reader ' || g, 20 FROM generate_series(1, :readers) g;
CREATE TEMP TABLE speed AS
SELECT id AS reader_id,
       exp(0.5 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) AS factor
FROM readers;
INSERT INTO subjects (id, study_id, site_id, subject_code)
SELECT g, 1, 1, 'B-' || g FROM generate_series(1, :cases / 5 + 1) g;
INSERT INTO cases (id, study_id, site_id, subject_id, timepoint_id, state,
                   charter_version, first_received_at, last_received_at, due_at)
SELECT g, 1, 1, (g - 1) / 5 + 1, (g - 1) % 5 + 1, 'done', 1, t, t,
       t + make_interval(hours => :total)
FROM generate_series(1, :cases) g,
     LATERAL (SELECT CAST(:start AS timestamptz)
                     + random() * interval '365 days' + g * interval '0 s' AS t) r;
INSERT INTO exams (id, case_id, study_instance_uid)
SELECT id, id, '2.25.' || id FROM cases;
INSERT INTO series (exam_id, series_instance_uid, modality)
SELECT id, '2.25.9' || id, CASE WHEN random() < 0.3 THEN 'MR' ELSE 'CT' END
FROM exams;
CREATE TEMP TABLE plan AS
SELECT c.id AS case_id,
       c.first_received_at + random() * interval '20 hours' AS qc_done,
       1 + floor(random() * :readers)::int AS r1,
       floor(random() * (:readers - 1))::int AS offset2,
       floor(random() * (:readers - 2))::int AS offset3,
       random() < 0.35 AS adjudicated,
       CASE WHEN s.modality = 'MR' THEN 1.4 ELSE 1.0 END AS size
FROM cases c JOIN series s ON s.exam_id = c.id;
CREATE TEMP TABLE planned_reads AS
SELECT p.case_id, k.kind,
       CASE k.kind WHEN 'primary' THEN p.r1
                   ELSE (p.r1 + p.offset2) % :readers + 1 END AS reader_id,
       p.qc_done AS created_at,
       p.qc_done + (-ln(1 - random()) * 6) * interval '1 hour' AS assigned_at,
       p.size
FROM plan p CROSS JOIN (VALUES ('primary'), ('secondary')) k(kind);
INSERT INTO reads (case_id, kind, state, reader_id, created_at, assigned_at,
                   signed_at)
SELECT q.case_id, q.kind, 'signed', q.reader_id, q.created_at, q.assigned_at,
       q.assigned_at + (s.factor * q.size * -ln(1 - random()) * 18)
                       * interval '1 hour'
FROM planned_reads q JOIN speed s ON s.reader_id = q.reader_id;
INSERT INTO reads (case_id, kind, state, reader_id, created_at, assigned_at,
                   signed_at)
SELECT p.case_id, 'adjudication', 'signed', a.reader_id, d.done,
       d.done + (-ln(1 - random()) * 6) * interval '1 hour',
       d.done + (-ln(1 - random()) * 6) * interval '1 hour'
              + (sp.factor * p.size * -ln(1 - random()) * 12) * interval '1 hour'
FROM plan p
JOIN LATERAL (SELECT max(signed_at) AS done FROM reads r
              WHERE r.case_id = p.case_id) d ON true
JOIN LATERAL (SELECT (p.r1 + p.offset2 + 1 + p.offset3) % :readers + 1
              AS reader_id) a ON true
JOIN speed sp ON sp.reader_id = a.reader_id
WHERE p.adjudicated;
UPDATE cases c SET completed_at = d.done, state_changed_at = d.done
FROM (SELECT case_id, max(signed_at) AS done FROM reads GROUP BY case_id) d
WHERE d.case_id = c.id;
SELECT setval('reads_id_seq', (SELECT max(id) FROM reads));
ANALYZE;
"""


def generate_history(
    conn: Connection, *, cases: int, readers: int, seed: float = 0.42
) -> None:
    """Fill an empty, migrated database with one study's finished cases."""
    conn.execute(text(SEED_STUDY_SQL), {"document": json.dumps(CHARTER)})
    for statement in _HISTORY_SQL.split(";\n"):
        if statement.strip():
            conn.execute(
                text(statement),
                {
                    "seed": seed,
                    "readers": readers,
                    "cases": cases,
                    "total": TOTAL_HOURS,
                    "start": "2025-06-01T00:00:00+00:00",
                },
            )
