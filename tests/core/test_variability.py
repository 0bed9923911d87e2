from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core import variability
from core.models import Read
from tests.core.workflow_data import load_charter, make_case, make_reader

# (R1 reader, R1 response, R2 reader, R2 response, reader the adjudicator chose)
PAIRS = [
    ("alice", "PR", "bob", "PR", None),
    ("alice", "PR", "bob", "SD", "alice"),
    ("alice", "SD", "bob", "SD", None),
    ("alice", "PD", "dave", "SD", "dave"),
    ("alice", "SD", "dave", "SD", None),
]


def _signed(case_id: int, kind: str, reader_id: int, response: str) -> Read:
    return Read(
        case_id=case_id,
        kind=kind,
        state="signed",
        reader_id=reader_id,
        response=response,
    )


@pytest.fixture
def study_id(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        study_id = load_charter(session)
        readers = {
            name: make_reader(session, study_id, name)[1]
            for name in ("alice", "bob", "carol", "dave")
        }
        for i, (r1, r1_response, r2, r2_response, chosen) in enumerate(PAIRS):
            case_id = make_case(session, study_id, f"301-{i:04d}")
            first = _signed(case_id, "primary", readers[r1], r1_response)
            second = _signed(case_id, "secondary", readers[r2], r2_response)
            session.add_all([first, second])
            session.flush()
            if chosen is not None:
                picked = first if chosen == r1 else second
                session.add(
                    Read(
                        case_id=case_id,
                        kind="adjudication",
                        state="signed",
                        reader_id=readers["carol"],
                        chosen_read_id=picked.id,
                        response=picked.response,
                    )
                )
    return study_id


def test_adjudication_rate_per_reader(
    sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions() as session:
        rows = variability.adjudication_rate_per_reader(session, study_id)
    by_name = {row["reader_name"]: row for row in rows}
    assert by_name["Dr Alice"]["cases"] == 5
    assert by_name["Dr Alice"]["adjudicated"] == 2
    assert by_name["Dr Alice"]["rate"] == 0.4
    assert by_name["Dr Bob"]["rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert by_name["Dr Dave"]["rate"] == 0.5
    assert "Dr Carol" not in by_name


def test_adjudication_rate_per_pair(
    sessions: sessionmaker[Session], study_id: int
) -> None:
    with sessions() as session:
        rows = variability.adjudication_rate_per_pair(session, study_id)
    assert [(row["cases"], row["adjudicated"]) for row in rows] == [(3, 1), (2, 1)]


def test_adjudicator_agreement(sessions: sessionmaker[Session], study_id: int) -> None:
    with sessions() as session:
        rows = variability.adjudicator_agreement(session, study_id)
    by_name = {row["reader_name"]: (row["adjudicated"], row["agreed"]) for row in rows}
    assert by_name == {"Dr Alice": (2, 1), "Dr Bob": (1, 0), "Dr Dave": (1, 1)}


def test_cohens_kappa(sessions: sessionmaker[Session], study_id: int) -> None:
    # p_o = 3/5. Marginals R1 {PR 2, SD 2, PD 1}, R2 {PR 1, SD 4}:
    # p_e = (2*1 + 2*4 + 1*0) / 25 = 0.4, so kappa = (0.6 - 0.4) / 0.6 = 1/3.
    with sessions() as session:
        result = variability.cohens_kappa(session, study_id)
    assert result["cases"] == 5
    assert result["observed_agreement"] == pytest.approx(0.6)
    assert result["expected_agreement"] == pytest.approx(0.4)
    assert result["kappa"] == pytest.approx(1 / 3)


def test_kappa_without_cases(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study_id = load_charter(session, "ONC-214")
    with sessions() as session:
        result = variability.cohens_kappa(session, study_id)
    assert result["cases"] == 0
    assert result["kappa"] is None
