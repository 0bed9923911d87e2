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


@dataclass
class Workload:
    """Ids of the workflow rows that `workload` adds to study A and study B."""

    case_a: int
    case_b: int
    read_a: int
    alert_a: int
    alert_b: int
    spare_reader: int


@pytest.fixture
def workload(world: World, sessions: sessionmaker[Session]) -> Workload:
    """Add cases, readers, reads, a query and alerts to both studies."""
    from datetime import UTC, date, datetime, timedelta

    from sqlalchemy import select

    from core.models import Alert, Query, Read, Reader, ReaderTraining, Study, User
    from tests.web_factories import make_case

    now = datetime.now(UTC)
    with sessions.begin() as session:
        a = session.get(Study, world.study_a)
        b = session.get(Study, world.study_b)
        assert a is not None and b is not None
        readers = [Reader(name=f"Dr Reader {i}", daily_capacity=10) for i in range(3)]
        # reader_a reads as Dr Reader 0, so the case page has a read of theirs.
        readers[0].user_id = session.scalar(
            select(User.id).where(User.username == "reader_a")
        )
        session.add_all(readers)
        session.flush()
        for reader in readers:
            session.add(
                ReaderTraining(
                    reader_id=reader.id,
                    study_id=a.id,
                    criteria="RECIST 1.1",
                    trained_on=date(2026, 1, 5),
                )
            )
        for i in range(6):
            make_case(
                session,
                a,
                f"301-{i:04d}",
                state="done",
                received=now - timedelta(days=6),
                due=now - timedelta(days=1),
                completed=now - timedelta(days=6, hours=-30 - 10 * i),
            )
        case_a = make_case(
            session,
            a,
            "301-0100",
            state="reading",
            received=now - timedelta(hours=50),
            due=now - timedelta(hours=2),
        )
        make_case(
            session,
            a,
            "301-0101",
            state="qc",
            received=now - timedelta(hours=5),
            due=now + timedelta(hours=20),
        )
        case_b = make_case(
            session,
            b,
            "110-0001",
            state="reading",
            received=now - timedelta(hours=30),
            due=now + timedelta(hours=3),
        )
        read = Read(
            case_id=case_a.id,
            kind="primary",
            state="assigned",
            reader_id=readers[0].id,
            assigned_at=now - timedelta(hours=20),
        )
        session.add(read)
        session.add(
            Query(
                case_id=case_a.id,
                reason_code="slice_thickness",
                text="Slices thicker than 5 mm",
                opened_by="qc_a",
            )
        )
        alert_a = Alert(
            case_id=case_a.id, step="case", kind="breached", due_at=case_a.due_at
        )
        alert_b = Alert(
            case_id=case_b.id, step="case", kind="at_risk", due_at=case_b.due_at
        )
        session.add_all([alert_a, alert_b])
        session.flush()
        return Workload(
            case_a.id, case_b.id, read.id, alert_a.id, alert_b.id, readers[1].id
        )
