"""Reader variability figures per study, computed in SQL.

Each figure counts only cases whose R1 and R2 reads are both signed. The figures
name readers, so they are for staff and must never reach a sponsor's view.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

# One row per case with both primary reads signed, and its live adjudication, if any.
_PAIRS = """
WITH pairs AS (
    SELECT c.id AS case_id,
           r1.reader_id AS r1_reader, r1.id AS r1_read, r1.response AS r1_response,
           r2.reader_id AS r2_reader, r2.id AS r2_read, r2.response AS r2_response,
           adj.id AS adjudication_read, adj.state AS adjudication_state,
           adj.chosen_read_id
    FROM cases c
    JOIN reads r1 ON r1.case_id = c.id AND r1.kind = 'primary' AND r1.state = 'signed'
    JOIN reads r2 ON r2.case_id = c.id AND r2.kind = 'secondary' AND r2.state = 'signed'
    LEFT JOIN reads adj ON adj.case_id = c.id AND adj.kind = 'adjudication'
                       AND adj.state <> 'cancelled'
    WHERE c.study_id = :study_id
)
"""

ADJUDICATION_RATE_PER_READER = (
    _PAIRS
    + """
, per_reader AS (
    SELECT r1_reader AS reader_id, adjudication_read FROM pairs
    UNION ALL
    SELECT r2_reader, adjudication_read FROM pairs
)
SELECT p.reader_id, rd.name AS reader_name, count(*) AS cases,
       count(p.adjudication_read) AS adjudicated,
       round(count(p.adjudication_read)::numeric / count(*), 4)::float AS rate
FROM per_reader p JOIN readers rd ON rd.id = p.reader_id
GROUP BY p.reader_id, rd.name
ORDER BY p.reader_id
"""
)

ADJUDICATION_RATE_PER_PAIR = (
    _PAIRS
    + """
SELECT least(r1_reader, r2_reader) AS reader_a,
       greatest(r1_reader, r2_reader) AS reader_b,
       count(*) AS cases, count(adjudication_read) AS adjudicated,
       round(count(adjudication_read)::numeric / count(*), 4)::float AS rate
FROM pairs
GROUP BY 1, 2
ORDER BY 1, 2
"""
)

# How often the adjudicator chose each reader's assessment when that reader's case
# was adjudicated and signed.
ADJUDICATOR_AGREEMENT = (
    _PAIRS
    + """
, decided AS (
    SELECT r1_reader AS reader_id, chosen_read_id = r1_read AS agreed FROM pairs
     WHERE adjudication_state = 'signed'
    UNION ALL
    SELECT r2_reader, chosen_read_id = r2_read FROM pairs
     WHERE adjudication_state = 'signed'
)
SELECT d.reader_id, rd.name AS reader_name, count(*) AS adjudicated,
       count(*) FILTER (WHERE agreed) AS agreed,
       round(avg(agreed::int), 4)::float AS rate
FROM decided d JOIN readers rd ON rd.id = d.reader_id
GROUP BY d.reader_id, rd.name
ORDER BY d.reader_id
"""
)

# Cohen's kappa = (p_o - p_e) / (1 - p_e): p_o is the share of cases where R1 and
# R2 gave the same timepoint response, p_e the agreement expected by chance from
# each reader's own response frequencies. Baseline reads have no response and
# are left out.
COHENS_KAPPA = (
    _PAIRS
    + """
, rated AS (
    SELECT r1_response, r2_response FROM pairs
     WHERE r1_response IS NOT NULL AND r2_response IS NOT NULL
), n AS (SELECT count(*)::float AS total FROM rated
), observed AS (
    SELECT count(*) FILTER (WHERE r1_response = r2_response) / nullif(n.total, 0) AS p
    FROM rated, n GROUP BY n.total
), marginals AS (
    SELECT category,
           count(*) FILTER (WHERE side = 1) AS r1_count,
           count(*) FILTER (WHERE side = 2) AS r2_count
    FROM (SELECT r1_response AS category, 1 AS side FROM rated
          UNION ALL SELECT r2_response, 2 FROM rated) sides
    GROUP BY category
), expected AS (
    SELECT sum(r1_count * r2_count) / nullif(n.total * n.total, 0) AS p
    FROM marginals, n GROUP BY n.total
)
SELECT n.total::int AS cases, observed.p AS observed_agreement,
       expected.p AS expected_agreement,
       CASE WHEN expected.p < 1 THEN (observed.p - expected.p) / (1 - expected.p) END
           AS kappa
FROM n LEFT JOIN observed ON true LEFT JOIN expected ON true
"""
)


def _rows(session: Session, sql: str, study_id: int) -> list[dict[str, Any]]:
    result = session.execute(text(sql), {"study_id": study_id}).mappings()
    return [dict(row) for row in result]


def adjudication_rate_per_reader(
    session: Session, study_id: int
) -> list[dict[str, Any]]:
    """Return each reader's double-read cases, the adjudicated ones and the rate."""
    return _rows(session, ADJUDICATION_RATE_PER_READER, study_id)


def adjudication_rate_per_pair(session: Session, study_id: int) -> list[dict[str, Any]]:
    """Return the adjudication rate of each reader pair, lower reader id first."""
    return _rows(session, ADJUDICATION_RATE_PER_PAIR, study_id)


def adjudicator_agreement(session: Session, study_id: int) -> list[dict[str, Any]]:
    """Return how often the adjudicator chose each reader's assessment."""
    return _rows(session, ADJUDICATOR_AGREEMENT, study_id)


def cohens_kappa(session: Session, study_id: int) -> dict[str, Any]:
    """Return R1/R2 agreement on timepoint response: cases, p_o, p_e and kappa.

    Kappa is None when there are no rated cases or chance agreement is 1.
    """
    return _rows(session, COHENS_KAPPA, study_id)[0]
