from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import charter
from core.models import AuditEntry, Charter, Study, Timepoint
from tests.core.workflow_data import CHARTERS, load_charter, make_case

ONC_301 = (CHARTERS / "ONC-301.yaml").read_text()


@pytest.mark.parametrize("path", sorted(CHARTERS.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_charter_is_valid(path: object) -> None:
    document = charter.parse(CHARTERS.joinpath(str(path)).read_text())
    assert document["sla"]["total_hours"] > 0
    assert document["response_criteria"] == "RECIST 1.1"


def test_invalid_charter_names_field_and_value() -> None:
    broken = ONC_301.replace(
        "max_slice_thickness_mm: 5.0", "max_slice_thickness_mm: thin"
    )
    broken = broken.replace("type: double", "type: triple")
    with pytest.raises(charter.CharterError) as caught:
        charter.parse(broken)
    problems = caught.value.problems
    assert "qc.max_slice_thickness_mm is 'thin', not a number" in problems
    assert any("read_design.type is 'triple'" in p for p in problems)


def test_charter_without_total_hours_rejected() -> None:
    broken = ONC_301.replace("total_hours: 120", "")
    with pytest.raises(charter.CharterError, match="sla.total_hours is missing"):
        charter.parse(broken)


def test_load_creates_study_and_timepoints(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study_id = load_charter(session)
    with sessions() as session:
        study = session.get(Study, study_id)
        codes = session.scalars(
            select(Timepoint.code)
            .where(Timepoint.study_id == study_id)
            .order_by(Timepoint.ordinal)
        ).all()
        baseline = session.scalar(select(Timepoint.code).where(Timepoint.is_baseline))
    assert study is not None
    assert study.charter_version == 1
    assert codes == ["BASELINE", "W8", "W16", "W24", "UNSCHED", "EOT"]
    assert baseline == "BASELINE"


def test_change_requires_reason(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        load_charter(session)
    with pytest.raises(charter.CharterError, match="reason is required"):
        with sessions.begin() as session:
            charter.load(session, "ONC-301", ONC_301, actor="test.manager")
    with sessions() as session:
        versions = session.scalars(select(Charter.version)).all()
    assert versions == [1]


def test_change_lists_affected_open_cases(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study_id = load_charter(session)
        case_id = make_case(session, study_id, "301-0001")
    changed = ONC_301.replace("total_hours: 120", "total_hours: 96")
    with sessions.begin() as session:
        result = charter.load(
            session, "ONC-301", changed, actor="test.manager", reason="SLA amendment 2"
        )
    with sessions() as session:
        entry = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "charter.load")
            .order_by(AuditEntry.id.desc())
        ).first()
        kept = charter.get_document(session, study_id, 1)
        current = charter.get_document(session, study_id, None)
    assert result.version == 2
    assert result.affected_case_ids == [case_id]
    assert entry is not None
    assert entry.reason == "SLA amendment 2"
    assert entry.new_values == {"charter_version": 2, "affected_open_cases": [case_id]}
    assert kept["sla"]["total_hours"] == 120
    assert current["sla"]["total_hours"] == 96


def test_load_rejects_other_study(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(charter.CharterError, match="'ONC-301' in the charter"):
        with sessions.begin() as session:
            charter.load(session, "ONC-999", ONC_301, actor="test.manager")
