"""The demo's QC reviewer and readers reach their pages, and only those."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import flask
from sqlalchemy.orm import Session, sessionmaker

from core import charter, demo, qc, reads
from tests.core.workflow_data import make_case
from tests.dashboard.conftest import callback_body, csrf_header, login


def test_demo_users_reach_qc_and_reads(
    server: flask.Flask, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    passwords = demo.demo_passwords(tmp_path / "demo-users.json")
    with sessions.begin() as session:
        study_ids = demo.load_charters(session)
        reader_ids = demo.create_users(session, study_ids, passwords)
        # reader01 trains on the second, third and fourth demo studies.
        protocol = demo.DEMO_STUDIES[1].protocol_id
        document = charter.get_document(session, study_ids[protocol], None)
        series = demo.series_for(document, "BASELINE")
        case_id = make_case(session, study_ids[protocol], "118-0001", series=series)
        assert qc.auto_qc_case(session, case_id, now=datetime.now(UTC))
        # The test images leave out the Clinical Trial Sponsor Name that this
        # charter requires, so passing them is an override with a reason.
        r1, _ = qc.pass_case(
            session, case_id, actor="qc", reason="test images without sponsor"
        )
        reads.assign_read(session, r1, reader_ids["reader01"], actor="manager")

    qc_client = server.test_client()
    assert login(qc_client, "qc", passwords["qc"]) == 302
    assert qc_client.get("/qc").status_code == 200
    assert qc_client.get("/reads").status_code == 403
    queue = callback_body(
        [
            ({"name": "qc-queue", "type": "grid"}, "rowData"),
            ("qc-case", "options"),
            ({"name": "qc-queries", "type": "grid"}, "rowData"),
            ({"name": "qc-first-pass", "type": "grid"}, "rowData"),
        ],
        [
            ("qc-marker", "data", None),
            ("qc-decision-message", "children", None),
            ("qc-resolve-message", "children", None),
        ],
    )
    response = qc_client.post(
        "/_dash-update-component", json=queue, headers=csrf_header(qc_client)
    )
    assert response.status_code == 200

    reader = server.test_client()
    assert login(reader, "reader01", passwords["reader01"]) == 302
    assert reader.get("/reads").status_code == 200
    assert reader.get("/qc").status_code == 403
    worklist = callback_body(
        [
            ({"name": "reads-worklist", "type": "grid"}, "rowData"),
            ("reads-select", "options"),
        ],
        [("reads-marker", "data", None)]
        + [
            (name, "children", None)
            for name in (
                "reads-save-message",
                "reads-sign-message",
                "reads-adjudication-message",
            )
        ],
        [("reads-select", "value", None)],
    )
    response = reader.post(
        "/_dash-update-component", json=worklist, headers=csrf_header(reader)
    )
    assert response.status_code == 200
    rows = response.get_json()["response"]['{"name":"reads-worklist","type":"grid"}']
    assert [row["read_id"] for row in rows["rowData"]] == [r1]
