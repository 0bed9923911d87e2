"""Every page and every callback against every role, plus forged cross-study calls."""

from __future__ import annotations

from typing import Any

import dash
import flask
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.models import Alert, AuditEntry
from tests.dashboard.conftest import (
    USERS,
    Workload,
    World,
    callback_body,
    csrf_header,
    login,
)

EVERY_ROLE = {
    "admin",
    "leadership",
    "study_manager",
    "qc_reviewer",
    "reader",
    "sponsor",
}
PAGE_ROLES = {
    "/": EVERY_ROLE,
    "/portfolio": {"admin", "leadership"},
    "/study": {"admin", "leadership", "study_manager"},
    "/capacity": {"admin", "leadership", "study_manager"},
    "/alerts": {"admin", "leadership", "study_manager"},
    "/triage": {"admin", "leadership", "study_manager"},
    "/readers": {"admin", "study_manager"},
    "/jobs": {"admin", "leadership", "study_manager"},
    "/sponsor": {"admin", "sponsor"},
    "/quarantine": {"admin", "leadership", "study_manager", "qc_reviewer"},
    "/case": {"admin", "leadership", "study_manager", "qc_reviewer", "reader"},
    "/qc": {"admin", "study_manager", "qc_reviewer"},
    "/reads": {"reader"},
}
# Callbacks that change data or decode images are narrower than their page.
OUTPUT_ROLES = {
    "study-reassign-message": {"admin", "study_manager"},
    "study-hold-message": {"admin", "study_manager"},
    "study-ack-message": {"admin", "study_manager"},
    "alerts-message": {"admin", "study_manager"},
    "quarantine-message": {"admin", "study_manager", "qc_reviewer"},
    "case-image": {"admin", "qc_reviewer", "reader"},
}


def _page_of(component_id: Any) -> str:
    name = component_id["name"] if isinstance(component_id, dict) else component_id
    return "/" + str(name).split("-")[0]


def _expected_roles(outputs: list[dash.Output]) -> set[str]:
    first = outputs[0].component_id
    if isinstance(first, str) and first in OUTPUT_ROLES:
        return OUTPUT_ROLES[first]
    return PAGE_ROLES[_page_of(first)]


def _input_values(username: str, world: World, work: Workload) -> dict[str, Any]:
    own_study = world.study_b if username == "sponsor_b" else world.study_a
    return {
        "study-select.value": own_study,
        "sponsor-select.value": own_study,
        "capacity-study.value": own_study,
        "case-id.value": work.case_a,
        "qc-case.value": work.case_a,
        "portfolio-range.value": 30,
        "study-range.value": 30,
        "sponsor-range.value": 30,
        "portfolio-group.value": "study",
        "capacity-weeks.value": 12,
        "capacity-readers.value": 0,
        "alerts-study.value": own_study,
        "alerts-show-acknowledged.value": [1],
        "triage-study.value": own_study,
        "readers-select.value": work.spare_reader,
    }


def _server_callbacks(app: dash.Dash) -> list[tuple[str, dict[str, Any]]]:
    """Return every server callback except Dash's page router (tested by path)."""
    return [
        (callback_id, spec)
        for callback_id, spec in app.callback_map.items()
        if spec.get("callback") is not None and "_pages_content" not in callback_id
    ]


def _body(spec: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    outputs = spec["output"] if isinstance(spec["output"], list) else [spec["output"]]

    def value(item: dict[str, Any]) -> Any:
        key = f"{item['id']}.{item['property']}"
        return 0 if item["property"] == "n_clicks" else values.get(key)

    return callback_body(
        [(o.component_id, o.component_property) for o in outputs],
        [(i["id"], i["property"], value(i)) for i in spec["inputs"]],
        [(s["id"], s["property"], value(s)) for s in spec["state"]],
    )


def _client(server: flask.Flask, username: str) -> FlaskClient:
    client = server.test_client()
    assert login(client, username) == 302
    return client


def _post(client: FlaskClient, body: dict[str, Any]) -> Any:
    return client.post(
        "/_dash-update-component", json=body, headers=csrf_header(client)
    )


def _router_body(path: str) -> dict[str, Any]:
    return callback_body(
        [("_pages_content", "children"), ("_pages_store", "data")],
        [("_pages_location", "pathname", path), ("_pages_location", "search", "")],
    )


@pytest.mark.parametrize("username", sorted(USERS))
def test_pages_by_role(
    server: flask.Flask, world: World, workload: Workload, username: str
) -> None:
    role = USERS[username][0]
    client = _client(server, username)
    for path, roles in PAGE_ROLES.items():
        expected = 200 if role in roles else 403
        assert client.get(path).status_code == expected, path
        routed = _post(client, _router_body(path))
        assert routed.status_code == expected, f"router {path}"


@pytest.mark.parametrize("username", sorted(USERS))
def test_callbacks_by_role(
    dash_app: dash.Dash,
    world: World,
    workload: Workload,
    sessions: sessionmaker[Session],
    username: str,
) -> None:
    role = USERS[username][0]
    client = _client(dash_app.server, username)
    values = _input_values(username, world, workload)
    callbacks = _server_callbacks(dash_app)
    assert len(callbacks) >= 15
    with sessions() as session:
        audit_before = session.scalar(select(func.max(AuditEntry.id)))
    for callback_id, spec in callbacks:
        outputs = (
            spec["output"] if isinstance(spec["output"], list) else [spec["output"]]
        )
        response = _post(client, _body(spec, values))
        if role in _expected_roles(outputs):
            assert response.status_code in (200, 204), callback_id
        else:
            assert response.status_code == 403, callback_id
            assert response.get_json() == {"error": "forbidden"}
    with sessions() as session:
        written = session.scalars(
            select(AuditEntry.action).where(AuditEntry.id > audit_before)
        ).all()
    # Only the denials are audited; no callback changed data without a click.
    assert set(written) <= {"access.denied"}


def _denied(response: Any) -> None:
    assert response.status_code == 403
    assert response.get_json() == {"error": "forbidden"}


def test_forged_study_callback_is_403(
    server: flask.Flask, world: World, workload: Workload
) -> None:
    client = _client(server, "manager_a")
    body = callback_body(
        [("study-pipeline", "figure")]
        + [
            ({"name": "study-risk", "type": "grid"}, "rowData"),
            ({"name": "study-alerts", "type": "grid"}, "rowData"),
        ],
        [("study-marker", "data", None), ("study-select", "value", world.study_b)]
        + [
            (name, "children", None)
            for name in (
                "study-reassign-message",
                "study-hold-message",
                "study-ack-message",
            )
        ],
    )
    _denied(_post(client, body))
    body["inputs"][1]["value"] = world.study_a
    assert _post(client, body).status_code == 200


def test_forged_sponsor_callback_is_403(
    server: flask.Flask, world: World, workload: Workload
) -> None:
    for username, other_study in (
        ("sponsor_a", world.study_b),
        ("sponsor_b", world.study_a),
    ):
        client = _client(server, username)
        body = callback_body(
            [
                ("sponsor-cards", "children"),
                ("sponsor-pipeline", "figure"),
                ({"name": "sponsor-sites", "type": "grid"}, "rowData"),
            ],
            [
                ("sponsor-marker", "data", None),
                ("sponsor-select", "value", other_study),
                ("sponsor-range", "value", 30),
            ],
        )
        _denied(_post(client, body))


def test_sponsor_cannot_request_readers(
    server: flask.Flask, world: World, workload: Workload
) -> None:
    client = _client(server, "sponsor_a")
    body = callback_body(
        [({"name": "study-readers", "type": "grid"}, "rowData")],
        [("study-select", "value", world.study_a)],
    )
    _denied(_post(client, body))


def test_forged_router_for_other_study(
    server: flask.Flask, world: World, workload: Workload
) -> None:
    client = _client(server, "manager_a")
    body = callback_body(
        [("_pages_content", "children"), ("_pages_store", "data")],
        [
            ("_pages_location", "pathname", "/study"),
            ("_pages_location", "search", f"?study={world.study_b}"),
        ],
    )
    _denied(_post(client, body))


def test_forged_acknowledge_other_study(
    server: flask.Flask,
    world: World,
    workload: Workload,
    sessions: sessionmaker[Session],
) -> None:
    client = _client(server, "manager_a")
    body = callback_body(
        [("study-ack-message", "children")],
        [("study-ack", "n_clicks", 1)],
        [("study-ack-alert", "value", workload.alert_b)],
    )
    _denied(_post(client, body))
    with sessions() as session:
        alert = session.get(Alert, workload.alert_b)
        assert alert is not None
        assert alert.acknowledged_at is None
        denials = session.scalar(
            select(func.count()).where(AuditEntry.action == "access.denied")
        )
    assert denials == 1


def test_reader_cannot_open_other_case(
    server: flask.Flask, world: World, workload: Workload
) -> None:
    client = _client(server, "reader_a")
    body = callback_body(
        [
            ("case-summary", "children"),
            ({"name": "case-timeline", "type": "grid"}, "rowData"),
        ],
        [("case-id", "value", workload.case_b)],
    )
    _denied(_post(client, body))


def test_malformed_callback_value_is_400(
    server: flask.Flask, world: World, workload: Workload
) -> None:
    client = _client(server, "manager_a")
    body = callback_body(
        [
            ("case-summary", "children"),
            ({"name": "case-timeline", "type": "grid"}, "rowData"),
        ],
        [("case-id", "value", "abc")],
    )
    response = _post(client, body)
    assert response.status_code == 400
    assert "case-id.value" in response.get_json()["error"]
