"""The web process survives killed connections and leaves none idle in transaction."""

from __future__ import annotations

import flask
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from tests.dashboard.conftest import Workload, World, callback_body, csrf_header, login

SUMMARY = callback_body(
    [
        ({"name": "portfolio", "type": "grid"}, "rowData"),
        ("portfolio-states", "figure"),
        ("portfolio-turnaround", "figure"),
    ],
    [
        ("portfolio-marker", "data", "x"),
        ("portfolio-range", "value", 30),
        ("portfolio-group", "value", "study"),
    ],
)


def _admin(database_url: str) -> Engine:
    """Return an engine outside the app's pool, so its backend is not the app's."""
    return create_engine(database_url, poolclass=NullPool)


def _backends(database_url: str, where: str) -> int:
    with _admin(database_url).connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                    f"current_database() AND pid <> pg_backend_pid() AND {where}"
                )
            ).scalar_one()
        )


def test_page_works_after_connections_killed(
    server: flask.Flask, database_url: str, world: World, workload: Workload
) -> None:
    client = server.test_client()
    login(client, "leader")
    assert client.get("/portfolio").status_code == 200
    with _admin(database_url).connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    assert killed >= 1
    assert client.get("/portfolio").status_code == 200
    response = client.post(
        "/_dash-update-component", json=SUMMARY, headers=csrf_header(client)
    )
    assert response.status_code == 200


def test_no_idle_transactions_after_reads(
    server: flask.Flask, database_url: str, world: World, workload: Workload
) -> None:
    client = server.test_client()
    login(client, "leader")
    for _ in range(100):
        assert client.get("/portfolio").status_code == 200
        response = client.post(
            "/_dash-update-component", json=SUMMARY, headers=csrf_header(client)
        )
        assert response.status_code == 200
    # The app's pooled connections stay open, so the check below sees them.
    assert _backends(database_url, "application_name = 'imagingops-tests'") >= 1
    assert _backends(database_url, "state LIKE 'idle in transaction%'") == 0
