"""A synthetic year of portfolio history, generated inside PostgreSQL.

The shape: 25 sponsors own 100 studies; each study has 20 sites, 2,000 subjects and
six timepoints (baseline, then every 8 weeks), and each subject has cases at the
first five, so `cases` = 1,000,000 gives 200,000 subjects. First arrivals spread
evenly over the last 365 days. Cases older than 14 days are mostly done; newer ones
are spread over the open states. Done cases carry signed primary and secondary
reads, 30% of them an adjudication, and each case has one exam, series, instance
and audit row, so the change marker and the case page read realistic tables.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

SPONSORS = 25
STUDIES = 100
SITES_PER_STUDY = 20
TIMEPOINTS = 6
READERS = 200
STUDIES_PER_READER = 10

_STATEMENTS = [
    "SELECT setseed(0.42)",
    """
    INSERT INTO sponsors (id, name)
    SELECT g, 'Sponsor ' || g FROM generate_series(1, :sponsors) g
    """,
    """
    INSERT INTO studies (id, sponsor_id, protocol_id, title, charter_version)
    SELECT g, (g - 1) % :sponsors + 1, 'P-' || lpad(g::text, 3, '0'),
        'Study ' || g, 1
    FROM generate_series(1, :studies) g
    """,
    """
    INSERT INTO timepoints (id, study_id, code, ordinal, target_day, window_days,
        is_baseline)
    SELECT (s - 1) * :timepoints + t + 1, s,
        CASE WHEN t = 0 THEN 'BL' ELSE 'W' || (8 * t) END, t, 56 * t, 7, t = 0
    FROM generate_series(1, :studies) s, generate_series(0, :timepoints - 1) t
    """,
    """
    INSERT INTO sites (id, study_id, site_code, name)
    SELECT g, (g - 1) / :sites_per_study + 1,
        'S' || lpad(((g - 1) % :sites_per_study + 1)::text, 3, '0'), 'Site ' || g
    FROM generate_series(1, :studies * :sites_per_study) g
    """,
    """
    INSERT INTO subjects (id, study_id, site_id, subject_code, enrolled_on)
    SELECT g, st, (st - 1) * :sites_per_study + g % :sites_per_study + 1,
        'S-' || g, CAST(now() AS date) - CAST(random() * 400 AS integer)
    FROM generate_series(1, :subjects) g,
        LATERAL (SELECT (g - 1) / (:subjects / :studies) + 1 AS st) x
    """,
    # Older cases are mostly done; the last 14 days hold most of the open work.
    """
    CREATE TEMP TABLE case_plan AS
    SELECT g AS id, su.study_id, su.site_id, su.id AS subject_id,
        (su.study_id - 1) * :timepoints + (g - 1) % 5 + 1 AS timepoint_id,
        now() - random() * interval '365 days' AS received, random() AS roll,
        random() AS roll2
    FROM generate_series(1, :cases) g JOIN subjects su ON su.id = (g - 1) / 5 + 1
    """,
    """
    INSERT INTO cases (id, study_id, site_id, subject_id, timepoint_id, state,
        charter_version, first_received_at, last_received_at, due_at, completed_at,
        state_changed_at, urgent)
    SELECT id, study_id, site_id, subject_id, timepoint_id, state, 1, received,
        received, received + interval '120 hours',
        CASE WHEN state = 'done' THEN least(now(), received
            + (-ln(1 - roll2) * 80 + 4) * interval '1 hour') END,
        CASE WHEN state = 'done' THEN least(now(), received
            + (-ln(1 - roll2) * 80 + 4) * interval '1 hour') ELSE received END,
        roll < 0.01
    FROM (
        SELECT p.*, CASE
            WHEN received < now() - interval '14 days' THEN CASE
                WHEN roll < 0.97 THEN 'done' WHEN roll < 0.98 THEN 'cancelled'
                WHEN roll < 0.99 THEN 'on_hold' ELSE 'query' END
            WHEN roll < 0.10 THEN 'received' WHEN roll < 0.25 THEN 'qc'
            WHEN roll < 0.35 THEN 'query' WHEN roll < 0.75 THEN 'reading'
            WHEN roll < 0.90 THEN 'adjudication' ELSE 'done' END AS state
        FROM case_plan p
    ) planned
    """,
    """
    INSERT INTO readers (id, name, timezone, daily_capacity)
    SELECT g, 'Reader ' || g, 'Europe/Berlin', 20 FROM generate_series(1, :readers) g
    """,
    """
    INSERT INTO reader_trainings (reader_id, study_id, criteria, trained_on)
    SELECT r, (r * 7 + k * 10) % :studies + 1, 'RECIST 1.1', DATE '2025-01-06'
    FROM generate_series(1, :readers) r,
        generate_series(0, :studies_per_reader - 1) k
    """,
    """
    INSERT INTO reads (case_id, kind, state, reader_id, created_at, assigned_at,
        signed_at)
    SELECT c.id, k.kind,
        CASE WHEN c.state IN ('done', 'adjudication') THEN 'signed'
            ELSE 'assigned' END,
        (c.id * 7 + k.offset_) % :readers + 1, c.first_received_at,
        c.first_received_at + interval '6 hours',
        CASE WHEN c.state IN ('done', 'adjudication') THEN
            least(now(), c.first_received_at + interval '30 hours') END
    FROM cases c CROSS JOIN (VALUES ('primary', 0), ('secondary', 1)) k(kind, offset_)
    WHERE c.state IN ('reading', 'adjudication', 'done')
    """,
    """
    INSERT INTO reads (case_id, kind, state, reader_id, created_at, assigned_at,
        signed_at)
    SELECT c.id, 'adjudication', CASE WHEN c.state = 'done' THEN 'signed'
            ELSE 'assigned' END,
        (c.id * 7 + 2) % :readers + 1, c.first_received_at + interval '30 hours',
        c.first_received_at + interval '31 hours',
        CASE WHEN c.state = 'done' THEN c.completed_at END
    FROM cases c
    WHERE c.state = 'adjudication' OR (c.state = 'done' AND c.id % 10 < 3)
    """,
    """
    INSERT INTO queries (case_id, reason_code, text, state, opened_by, opened_at,
        resolved_at)
    SELECT c.id, 'slice_thickness', 'Slices thicker than 5 mm',
        CASE WHEN c.state = 'query' THEN 'open' ELSE 'resolved' END, 'qc',
        c.first_received_at + interval '2 hours',
        CASE WHEN c.state <> 'query' THEN c.first_received_at + interval '20 hours'
        END
    FROM cases c WHERE c.state = 'query' OR c.id % 12 = 0
    """,
    """
    INSERT INTO alerts (case_id, step, kind, due_at, created_at)
    SELECT c.id, 'case', 'breached', c.due_at, c.due_at
    FROM cases c
    WHERE c.state IN ('received', 'qc', 'query', 'reading', 'adjudication')
        AND c.due_at < now()
    """,
    """
    INSERT INTO exams (id, case_id, study_instance_uid)
    SELECT id, id, '2.25.1' || id FROM cases
    """,
    """
    INSERT INTO series (id, exam_id, series_instance_uid, modality)
    SELECT id, id, '2.25.2' || id, CASE WHEN id % 3 = 0 THEN 'MR' ELSE 'CT' END
    FROM cases
    """,
    """
    INSERT INTO instances (id, series_id, sop_instance_uid, content_sha256,
        size_bytes, archive_path, source, received_at)
    SELECT c.id, c.id, '2.25.3' || c.id, md5(c.id::text) || md5(c.id::text),
        524288, 'bench/' || c.id || '.dcm', 'bench', c.first_received_at
    FROM cases c
    """,
    """
    INSERT INTO audit_log (id, at, actor, action, entity_type, entity_id, study_id,
        new_values, prev_hash, row_hash)
    SELECT c.id, c.first_received_at, 'ingest', 'case.create', 'case', c.id::text,
        c.study_id, jsonb_build_object('state', 'received'),
        md5((c.id - 1)::text) || md5((c.id - 1)::text),
        md5(c.id::text) || md5(c.id::text)
    FROM cases c
    """,
]

_SEQUENCES = [
    "sponsors",
    "studies",
    "timepoints",
    "sites",
    "subjects",
    "cases",
    "readers",
    "exams",
    "series",
    "instances",
    "audit_log",
]


def generate_portfolio(conn: Connection, *, cases: int) -> None:
    """Fill an empty, migrated database with `cases` cases (a multiple of 500)."""
    params = {
        "sponsors": SPONSORS,
        "studies": STUDIES,
        "sites_per_study": SITES_PER_STUDY,
        "timepoints": TIMEPOINTS,
        "readers": READERS,
        "studies_per_reader": STUDIES_PER_READER,
        "cases": cases,
        "subjects": cases // 5,
    }
    for statement in _STATEMENTS:
        conn.execute(text(statement), params)
    for table in _SEQUENCES:
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        )
    conn.execute(text("ANALYZE"))
