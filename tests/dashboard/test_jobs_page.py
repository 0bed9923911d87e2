"""The jobs page: last successful run per job and the stale-job warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import flask
from sqlalchemy.orm import Session, sessionmaker

from core.models import JobRun
from tests.dashboard.conftest import World, callback_body, csrf_header, login


def test_jobs_page_flags_stale_jobs(
    server: flask.Flask, world: World, sessions: sessionmaker[Session]
) -> None:
    now = datetime.now(UTC)
    with sessions.begin() as session:
        # assign_reads succeeded just now; sla_sweep last succeeded a day ago.
        for job, finished in (
            ("assign_reads", now),
            ("sla_sweep", now - timedelta(days=1)),
        ):
            session.add(
                JobRun(
                    job=job,
                    host="test",
                    started_at=finished,
                    finished_at=finished,
                    ok=True,
                )
            )

    client = server.test_client()
    assert login(client, "leader") == 302
    body = callback_body(
        [("jobs-warning", "children"), ({"name": "jobs", "type": "grid"}, "rowData")],
        [("jobs-interval", "n_intervals", 0)],
    )
    response = client.post(
        "/_dash-update-component", json=body, headers=csrf_header(client)
    )
    assert response.status_code == 200

    outputs = response.get_json()["response"]
    rows = {
        row["job"]: row for row in outputs['{"name":"jobs","type":"grid"}']["rowData"]
    }
    warning = outputs["jobs-warning"]["children"]["props"]["children"]
    assert rows["assign_reads"]["status"] == "ok"
    assert rows["sla_sweep"]["status"] == "stale"
    assert rows["auto_qc"]["last_success"] == "never"
    assert rows["auto_qc"]["status"] == "stale"
    assert "sla_sweep" in warning
    assert "auto_qc" in warning
    assert "assign_reads" not in warning
