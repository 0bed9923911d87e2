"""Fixtures for the web tests: named users per role and a logged-in test client."""

from __future__ import annotations

import re
from dataclasses import dataclass

import dash
import flask
import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from core import accounts
from core.runtime import Runtime
from dashboard.app import create_app
from tests.web_factories import PASSWORD, make_study

# username -> (role, protocols granted)
USERS = {
    "admin": ("admin", ()),
    "leader": ("leadership", ()),
    "manager_a": ("study_manager", ("ONC-301",)),
    "qc_a": ("qc_reviewer", ("ONC-301",)),
    "reader_a": ("reader", ("ONC-301",)),
    "sponsor_a": ("sponsor", ("ONC-301",)),
    "sponsor_b": ("sponsor", ("CNS-110",)),
}


@dataclass
class World:
    """The studies and users every web test starts from."""

    study_a: int
    study_b: int


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    with sessions.begin() as session:
        a = make_study(session, "ONC-301", "Acme")
        b = make_study(session, "CNS-110", "Borealis")
        ids = {"ONC-301": a.id, "CNS-110": b.id}
        for username, (role, protocols) in USERS.items():
            accounts.create_user(
                session,
                username,
                PASSWORD,
                role,
                display_name=username.replace("_", " ").title(),
                timezone="Europe/Berlin",
                study_ids=[ids[p] for p in protocols],
            )
        return World(a.id, b.id)


@pytest.fixture
def dash_app(runtime: Runtime) -> dash.Dash:
    return create_app(runtime)


@pytest.fixture
def server(dash_app: dash.Dash) -> flask.Flask:
    return dash_app.server


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> int:
    """Log in through the form and return the response status."""
    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": match[1]},
    )
    return response.status_code


def csrf_header(client: FlaskClient) -> dict[str, str]:
    cookie = client.get_cookie("_csrf_token")
    return {"X-CSRFToken": cookie.value if cookie else ""}


def callback_body(
    outputs: list[tuple[object, str]],
    inputs: list[tuple[object, str, object]],
    state: list[tuple[object, str, object]] = (),  # type: ignore[assignment]
) -> dict[str, object]:
    """Build the JSON body the Dash renderer posts to /_dash-update-component."""

    def key(component_id: object, prop: str) -> str:
        if isinstance(component_id, dict):
            import json

            component_id = json.dumps(
                component_id, sort_keys=True, separators=(",", ":")
            )
        return f"{component_id}.{prop}"

    output_items = [{"id": i, "property": p} for i, p in outputs]
    if len(outputs) == 1:
        output = key(*outputs[0])
    else:
        output = ".." + "...".join(key(i, p) for i, p in outputs) + ".."
    return {
        "output": output,
        "outputs": output_items if len(outputs) > 1 else output_items[0],
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
        "changedPropIds": [key(i, p) for i, p, _ in inputs[:1]],
    }
