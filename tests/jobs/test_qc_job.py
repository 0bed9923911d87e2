"""The automated QC job over a case that ingest has just created."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from core.ingest import ingest_folder
from core.models import Case, QcCheck
from core.runtime import Runtime
from jobs.qc import run_auto_qc
from tests.ingest_fixtures import make_study, synth


def test_auto_qc_checks_ingested_case(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    make_study(runtime.sessions)
    folder = runtime.settings.drop_dir
    synth(folder / "ct.dcm")
    ingest_folder(runtime, folder)
    # Past the charter's quiet period, an incomplete case goes to review as well.
    with runtime.sessions.begin() as session:
        session.execute(
            update(Case).values(last_received_at=datetime.now(UTC) - timedelta(hours=3))
        )

    with caplog.at_level(logging.ERROR, logger="jobs.qc"):
        handled = run_auto_qc(runtime)

    assert "Automated QC failed" not in caplog.text
    assert handled == 1
    with runtime.sessions() as session:
        assert session.scalar(select(Case.state)) == "qc"
        checks = set(session.scalars(select(QcCheck.check)))
    assert checks == {
        "clinical_trial_attributes",
        "ingest:phi_present",
        "modality",
        "required_series",
        "visit_window",
    }
