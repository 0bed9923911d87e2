"""Live refresh: the interval, the change marker and an arrival reaching the page."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import dash
import pydicom
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from core import audit, portfolio
from core.access import make_scope
from core.dicom_synth import retag
from core.ingest.pipeline import ingest_folder
from core.runtime import Runtime
from dashboard.app import create_app
from tests.dashboard.conftest import World, callback_body, csrf_header, login

CT_FILE = Path(pydicom.data.__file__).parent / "test_files" / "CT_small.dcm"
MARKER_OUTPUT = [("portfolio-marker", "data")]
SUMMARY_OUTPUTS = [
    ({"name": "portfolio", "type": "grid"}, "rowData"),
    ("portfolio-states", "figure"),
    ("portfolio-turnaround", "figure"),
]


def _post(client: FlaskClient, body: dict[str, Any]) -> Any:
    return client.post(
        "/_dash-update-component", json=body, headers=csrf_header(client)
    )


def _marker(client: FlaskClient, previous: str | None) -> Any:
    body = callback_body(
        MARKER_OUTPUT,
        [("portfolio-interval", "n_intervals", 1)],
        [("portfolio-marker", "data", previous)],
    )
    return _post(client, body)


def _received_in_study_a(client: FlaskClient, marker: str) -> int:
    body = callback_body(
        SUMMARY_OUTPUTS,
        [
            ("portfolio-marker", "data", marker),
            ("portfolio-range", "value", 30),
            ("portfolio-group", "value", "study"),
        ],
    )
    response = _post(client, body)
    assert response.status_code == 200
    rows = response.get_json()["response"]['{"name":"portfolio","type":"grid"}']
    row = next(r for r in rows["rowData"] if "ONC-301" in r["label"])
    return int(row["received"])


def _intervals(component: Any) -> list[dict[str, Any]]:
    """Return the props of every dcc.Interval in a serialised layout."""
    found = []
    if isinstance(component, dict):
        if component.get("type") == "Interval":
            found.append(component["props"])
        for value in component.values():
            found += _intervals(value)
    elif isinstance(component, list):
        for item in component:
            found += _intervals(item)
    return found


def _page_intervals(client: FlaskClient, path: str) -> list[dict[str, Any]]:
    body = callback_body(
        [("_pages_content", "children"), ("_pages_store", "data")],
        [("_pages_location", "pathname", path), ("_pages_location", "search", "")],
    )
    response = _post(client, body)
    assert response.status_code == 200
    return _intervals(json.loads(response.get_data(as_text=True)))


def test_pages_refresh_every_10_s_by_default(dash_app: dash.Dash, world: World) -> None:
    client = dash_app.server.test_client()
    login(client, "admin")
    for path in ("/portfolio", "/study", "/sponsor", "/quarantine"):
        intervals = _page_intervals(client, path)
        assert [props["interval"] for props in intervals] == [10_000], path


def test_refresh_seconds_setting_sets_interval(runtime: Runtime, world: World) -> None:
    settings = dataclasses.replace(runtime.settings, refresh_seconds=3)
    app = create_app(dataclasses.replace(runtime, settings=settings))
    client = app.server.test_client()
    login(client, "leader")
    intervals = _page_intervals(client, "/portfolio")
    assert [props["interval"] for props in intervals] == [3_000]


def test_unchanged_marker_skips_refresh(dash_app: dash.Dash, world: World) -> None:
    client = dash_app.server.test_client()
    login(client, "leader")
    first = _marker(client, None)
    assert first.status_code == 200
    marker = first.get_json()["response"]["portfolio-marker"]["data"]
    # An empty response updates nothing, so the callbacks that read the marker
    # (and run the heavy queries) do not fire.
    second = _marker(client, marker)
    assert second.status_code == 200
    assert second.get_json()["response"] == {}


def test_arrival_shows_on_next_refresh(
    dash_app: dash.Dash,
    runtime: Runtime,
    sessions: sessionmaker[Session],
    world: World,
) -> None:
    client = dash_app.server.test_client()
    login(client, "leader")
    marker = _marker(client, None).get_json()["response"]["portfolio-marker"]["data"]
    assert _received_in_study_a(client, marker) == 0

    retag(
        CT_FILE,
        runtime.settings.drop_dir / "arrival.dcm",
        sponsor="Acme",
        protocol="ONC-301",
        site="S01",
        subject="301-0777",
        timepoint="BL",
    )
    report = ingest_folder(runtime, runtime.settings.drop_dir)
    assert report.ingested == 1
    assert report.unmatched == 0

    changed = _marker(client, marker)
    assert changed.status_code == 200
    new_marker = changed.get_json()["response"]["portfolio-marker"]["data"]
    assert new_marker != marker
    assert _received_in_study_a(client, new_marker) == 1
    with sessions() as session:
        assert portfolio.change_marker(session) == new_marker


def test_sponsor_marker_ignores_other_studies(
    sessions: sessionmaker[Session], world: World
) -> None:
    scope_a = make_scope("sponsor_a", "sponsor", frozenset({world.study_a}))
    scope_b = make_scope("sponsor_b", "sponsor", frozenset({world.study_b}))
    with sessions() as session:
        before_a = portfolio.change_marker(session, scope_a)
        before_b = portfolio.change_marker(session, scope_b)
        before_all = portfolio.change_marker(session)
    with sessions.begin() as session:
        audit.record(
            session,
            actor="ingest",
            action="case.created",
            entity_type="case",
            entity_id=1,
            study_id=world.study_a,
        )
    with sessions() as session:
        after_a = portfolio.change_marker(session, scope_a)
        after_b = portfolio.change_marker(session, scope_b)
        after_all = portfolio.change_marker(session)
    assert after_a != before_a
    assert after_all != before_all
    assert after_b == before_b
    # A digest: no audit id or arrival time of another study shows through.
    assert len(after_b) == 16
    assert int(after_b, 16) >= 0
