"""The QC review and reader pages through their callbacks, as the browser posts them."""

from __future__ import annotations

import json
from typing import Any

import flask
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core import accounts, reads
from core.models import AuditEntry, Case, Query, Read
from dashboard.recist_form import FORM_FIELDS
from tests.dashboard.conftest import callback_body, csrf_header, login
from tests.dashboard.reading_world import ReadingWorld, build, pass_and_assign
from tests.web_factories import PASSWORD


@pytest.fixture
def reading(sessions: sessionmaker[Session]) -> ReadingWorld:
    return build(sessions)


def _client(server: flask.Flask, username: str) -> FlaskClient:
    client = server.test_client()
    assert login(client, username) == 302
    return client


def _post(client: FlaskClient, body: dict[str, Any]) -> Any:
    return client.post(
        "/_dash-update-component", json=body, headers=csrf_header(client)
    )


def _audit_max(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.coalesce(func.max(AuditEntry.id), 0))) or 0


def _open_read_body(read_id: int) -> dict[str, Any]:
    outputs: list[tuple[object, str]] = [
        ("reads-entry", "style"),
        ("reads-adjudication", "style"),
        ("reads-candidates", "children"),
        ("reads-choice", "options"),
    ]
    outputs += list(FORM_FIELDS)
    return callback_body(
        outputs,
        [("reads-select", "value", read_id)],
    )


def _form_state(
    lesions: list[tuple[str | None, object, list[str]]],
    non_target: str = "non-CR/non-PD",
    new_lesions: str = "no",
) -> list[tuple[object, str, object]]:
    values: list[object] = []
    for index in range(5):
        row = lesions[index] if index < len(lesions) else (None, None, [])
        values += list(row)
    values += [non_target, new_lesions]
    return [(c, p, v) for (c, p), v in zip(FORM_FIELDS, values, strict=True)]


def _save_body(read_id: int, lesions: list[Any]) -> dict[str, Any]:
    return callback_body(
        [("reads-save-message", "children")],
        [("reads-save", "n_clicks", 1)],
        [("reads-select", "value", read_id), *_form_state(lesions)],
    )


def _sign_body(read_id: int, password: str) -> dict[str, Any]:
    return callback_body(
        [("reads-sign-message", "children"), ("reads-sign-password", "value")],
        [("reads-sign", "n_clicks", 1)],
        [
            ("reads-select", "value", read_id),
            ("reads-sign-password", "value", password),
        ],
    )


def _message(response: Any, output: str) -> Any:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"][output]["children"]


def test_reader_cannot_open_other_readers_read(
    server: flask.Flask, reading: ReadingWorld, sessions: sessionmaker[Session]
) -> None:
    w8 = pass_and_assign(sessions, reading, reading.w8_case)
    with sessions.begin() as session:
        reads.save_assessment(
            session,
            w8["primary"],
            {"targets": [{"site": "liver 1", "diameter_mm": 17.5}]},
            user_id=reading.users["alice"],
        )
    bob = _client(server, "bob")

    forged = _post(bob, _open_read_body(w8["primary"]))
    assert forged.status_code == 403
    assert forged.get_json() == {"error": "forbidden"}
    assert "17.5" not in forged.get_data(as_text=True)

    missing = _post(bob, _open_read_body(999_999))
    assert missing.status_code == 403
    own = _post(bob, _open_read_body(w8["secondary"]))
    assert own.status_code == 200
    assert "17.5" not in own.get_data(as_text=True)


def test_reader_cannot_save_or_sign_other_read(
    server: flask.Flask, reading: ReadingWorld, sessions: sessionmaker[Session]
) -> None:
    w8 = pass_and_assign(sessions, reading, reading.w8_case)
    bob = _client(server, "bob")
    before = _audit_max(sessions)

    saved = _post(bob, _save_body(w8["primary"], [("liver 1", 10, [])]))
    signed = _post(bob, _sign_body(w8["primary"], PASSWORD))

    assert saved.status_code == 403
    assert signed.status_code == 403
    with sessions() as session:
        read = session.get(Read, w8["primary"])
        assert read is not None
        assert read.assessment is None
        assert read.state == "assigned"
        written = session.scalars(
            select(AuditEntry.action).where(AuditEntry.id > before)
        ).all()
    assert written == ["access.denied", "access.denied"]


def test_worklist_shows_only_own_reads(
    server: flask.Flask, reading: ReadingWorld, sessions: sessionmaker[Session]
) -> None:
    w8 = pass_and_assign(sessions, reading, reading.w8_case)
    alice = _client(server, "alice")
    body = callback_body(
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
    response = _post(alice, body)
    assert response.status_code == 200
    rows = response.get_json()["response"]['{"name":"reads-worklist","type":"grid"}']
    read_ids = [row["read_id"] for row in rows["rowData"]]
    assert read_ids == [w8["primary"]]
    text = response.get_data(as_text=True)
    assert "treatment_arm" not in text
    assert "Dr Bob" not in text


@pytest.mark.parametrize(
    ("lesions", "expected"),
    [
        ([("liver 1", None, [])], "Target lesion 1 diameter (mm) is missing"),
        (
            [("liver 1", 12, []), ("lung", -3, [])],
            "Target lesion 2 diameter (mm) is -3",
        ),
        ([(None, 12, [])], "Target lesion 1 site is missing"),
    ],
)
def test_bad_assessment_names_field_and_saves_nothing(
    server: flask.Flask,
    reading: ReadingWorld,
    sessions: sessionmaker[Session],
    lesions: list[Any],
    expected: str,
) -> None:
    w8 = pass_and_assign(sessions, reading, reading.w8_case)
    alice = _client(server, "alice")
    before = _audit_max(sessions)

    message = _message(
        _post(alice, _save_body(w8["primary"], lesions)), "reads-save-message"
    )

    assert message.startswith("Not saved: ")
    assert expected in message
    assert _audit_max(sessions) == before
    with sessions() as session:
        read = session.get(Read, w8["primary"])
        assert read is not None
        assert read.assessment is None


def test_reader_saves_and_signs_with_password(
    server: flask.Flask, reading: ReadingWorld, sessions: sessionmaker[Session]
) -> None:
    w8 = pass_and_assign(sessions, reading, reading.w8_case)
    alice = _client(server, "alice")

    saved = _message(
        _post(
            alice, _save_body(w8["primary"], [("liver 1", 18, []), ("liver 2", 12, [])])
        ),
        "reads-save-message",
    )
    # 30 mm from a 50 mm baseline sum is a 40% decrease: PR in RECIST 1.1.
    assert saved == "Saved. Sum of diameters 30 mm; timepoint response: PR."

    wrong = _post(alice, _sign_body(w8["primary"], "not the password"))
    assert _message(wrong, "reads-sign-message") == (
        "Not signed: the password does not match."
    )
    with sessions() as session:
        read = session.get(Read, w8["primary"])
        assert read is not None
        assert read.state == "in_progress"

    signed = _post(alice, _sign_body(w8["primary"], PASSWORD))
    assert _message(signed, "reads-sign-message") == (
        f"Signed read {w8['primary']}; the case is now reading."
    )
    assert signed.get_json()["response"]["reads-sign-password"]["value"] == ""
    with sessions() as session:
        read = session.get(Read, w8["primary"])
        assert read is not None
        assert read.state == "signed"
        assert read.signature_name == "Dr Alice"
        assert read.signature_meaning == reads.READ_MEANING
        assert read.response == "PR"


def test_adjudicator_sees_both_assessments_and_chooses(
    server: flask.Flask, reading: ReadingWorld, sessions: sessionmaker[Session]
) -> None:
    w8 = pass_and_assign(sessions, reading, reading.w8_case)
    with sessions.begin() as session:
        for kind, name, sizes in (
            ("primary", "alice", (18, 12)),
            ("secondary", "bob", (27, 18)),
        ):
            reads.save_assessment(
                session,
                w8[kind],
                {
                    "targets": [
                        {"site": f"liver {i}", "diameter_mm": mm}
                        for i, mm in enumerate(sizes)
                    ],
                    "non_target": "absent",
                },
                user_id=reading.users[name],
            )
            result = reads.sign(
                session, w8[kind], user_id=reading.users[name], password=PASSWORD
            )
        adjudication = result.adjudication_read_id
        assert adjudication is not None
        reads.assign_read(
            session, adjudication, reading.readers["carol"], actor="manager_a"
        )
    carol = _client(server, "carol")

    opened = _post(carol, _open_read_body(adjudication))
    assert opened.status_code == 200
    response = opened.get_json()["response"]
    assert response["reads-adjudication"]["style"] == {}
    assert response["reads-entry"]["style"] == {"display": "none"}
    assert response["reads-choice"]["options"] == [
        {"label": "Assessment A", "value": w8["primary"]},
        {"label": "Assessment B", "value": w8["secondary"]},
    ]
    panels = json.dumps(response["reads-candidates"]["children"])
    assert "Timepoint response: PR" in panels
    assert "Timepoint response: SD" in panels
    assert "Alice" not in panels
    assert "Bob" not in panels

    body = callback_body(
        [
            ("reads-adjudication-message", "children"),
            ("reads-adjudication-password", "value"),
        ],
        [("reads-adjudicate", "n_clicks", 1)],
        [
            ("reads-select", "value", adjudication),
            ("reads-choice", "value", w8["primary"]),
            ("reads-adjudication-reason", "value", "lesion 2 shrank on W8"),
            ("reads-adjudication-password", "value", PASSWORD),
        ],
    )
    message = _message(_post(carol, body), "reads-adjudication-message")
    assert message == f"Adjudicated read {adjudication}; the case is done."
    with sessions() as session:
        case = session.get(Case, reading.w8_case)
        assert case is not None
        assert case.state == "done"


@pytest.mark.parametrize("path", ["/qc", "/reads"])
def test_sponsor_reaches_neither_page(
    server: flask.Flask, reading: ReadingWorld, path: str
) -> None:
    sponsor = _client(server, "sponsor_a")
    assert sponsor.get(path).status_code == 403
    routed = callback_body(
        [("_pages_content", "children"), ("_pages_store", "data")],
        [("_pages_location", "pathname", path), ("_pages_location", "search", "")],
    )
    assert _post(sponsor, routed).status_code == 403


def test_sponsor_cannot_call_page_callbacks(
    server: flask.Flask, reading: ReadingWorld
) -> None:
    sponsor = _client(server, "sponsor_a")
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
    opened = _open_read_body(reading.baseline_reads["primary"])
    for body in (queue, opened):
        response = _post(sponsor, body)
        assert response.status_code == 403
        assert response.get_json() == {"error": "forbidden"}


def _decide_body(case_id: int, button: str, **states: object) -> dict[str, Any]:
    body = callback_body(
        [("qc-decision-message", "children")],
        [(button, "n_clicks", 1)],
        [
            ("qc-case", "value", case_id),
            ("qc-override-reason", "value", states.get("override")),
            ("qc-fail-reason", "value", states.get("reason")),
            ("qc-fail-note", "value", states.get("note")),
        ],
    )
    # Both buttons are inputs of the decision callback; Dash names the clicked one.
    other = "qc-fail" if button == "qc-pass" else "qc-pass"
    body["inputs"].append({"id": other, "property": "n_clicks", "value": 0})
    body["changedPropIds"] = [f"{button}.n_clicks"]
    return body


def test_qc_reviewer_passes_case(
    server: flask.Flask, reading: ReadingWorld, sessions: sessionmaker[Session]
) -> None:
    reviewer = _client(server, "qc_a")
    before = _audit_max(sessions)
    response = _post(reviewer, _decide_body(reading.w8_case, "qc-pass"))
    message = _message(response, "qc-decision-message")
    assert message == f"Case {reading.w8_case} passed QC; created 2 read tasks."
    with sessions() as session:
        case = session.get(Case, reading.w8_case)
        assert case is not None
        assert case.state == "reading"
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.id > before)
        ).all()
    assert actions == [
        "qc.pass",
        "case.state",
        "read.create",
        "read.create",
    ]


def test_qc_fail_opens_query_and_resolve_closes_it(
    server: flask.Flask, reading: ReadingWorld, sessions: sessionmaker[Session]
) -> None:
    reviewer = _client(server, "qc_a")
    without_note = _post(
        reviewer, _decide_body(reading.w8_case, "qc-fail", reason="other")
    )
    assert "the note is missing for reason 'other'" in _message(
        without_note, "qc-decision-message"
    )
    failed = _post(
        reviewer,
        _decide_body(
            reading.w8_case, "qc-fail", reason="image_quality", note="motion blur"
        ),
    )
    with sessions() as session:
        query = session.scalars(select(Query)).one()
    assert _message(failed, "qc-decision-message") == (
        f"Case {reading.w8_case} failed QC; query {query.id} opened to the site."
    )
    assert query.reason_code == "image_quality"
    assert query.text == "motion blur"

    resolve = callback_body(
        [("qc-resolve-message", "children")],
        [("qc-resolve", "n_clicks", 1)],
        [
            ("qc-query-id", "value", query.id),
            ("qc-resolution", "value", "site confirmed the scan is diagnostic"),
        ],
    )
    assert _message(_post(reviewer, resolve), "qc-resolve-message") == (
        f"Query {query.id} resolved; its case is back in received."
    )
    with sessions() as session:
        case = session.get(Case, reading.w8_case)
        closed = session.get(Query, query.id)
        assert case is not None and closed is not None
        assert case.state == "received"
        assert closed.state == "resolved"


def test_forged_qc_pass_in_other_study_is_403(
    server: flask.Flask, reading: ReadingWorld, sessions: sessionmaker[Session]
) -> None:
    reviewer = _client(server, "qc_a")
    response = _post(reviewer, _decide_body(reading.other_study_case, "qc-pass"))
    assert response.status_code == 403
    assert response.get_json() == {"error": "forbidden"}
    checks = callback_body(
        [
            ("qc-case-summary", "children"),
            ({"name": "qc-checks", "type": "grid"}, "rowData"),
            ("qc-fail-reason", "options"),
        ],
        [("qc-case", "value", reading.other_study_case)],
    )
    assert _post(reviewer, checks).status_code == 403
    with sessions() as session:
        case = session.get(Case, reading.other_study_case)
        assert case is not None
        assert case.state == "qc"


def test_qc_lists_only_scoped_cases(server: flask.Flask, reading: ReadingWorld) -> None:
    reviewer = _client(server, "qc_a")
    body = callback_body(
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
    response = _post(reviewer, body).get_json()["response"]
    queue = response['{"name":"qc-queue","type":"grid"}']["rowData"]
    assert [row["case_id"] for row in queue] == [reading.w8_case]
    rates = response['{"name":"qc-first-pass","type":"grid"}']["rowData"]
    assert [(row["protocol_id"], row["site"]) for row in rates] == [
        ("ONC-301", "All sites"),
        ("ONC-301", "S01"),
    ]
    assert rates[0]["first_pass_pct"] == 100.0


def test_wrong_sign_passwords_lock_account(
    server: flask.Flask, reading: ReadingWorld, sessions: sessionmaker[Session]
) -> None:
    w8 = pass_and_assign(sessions, reading, reading.w8_case)
    alice = _client(server, "alice")
    _post(alice, _save_body(w8["primary"], [("liver 1", 18, []), ("liver 2", 12, [])]))
    messages = [
        _message(
            _post(alice, _sign_body(w8["primary"], f"guess {i}")), "reads-sign-message"
        )
        for i in range(accounts.MAX_FAILED_LOGINS)
    ]
    assert messages[0] == "Not signed: the password does not match."
    assert messages[-1] == (
        "Not signed: the password does not match, and the account is now locked "
        f"for {accounts.LOCK_MINUTES} minutes."
    )

    locked = _message(
        _post(alice, _sign_body(w8["primary"], PASSWORD)), "reads-sign-message"
    )
    assert locked.startswith("Not signed: user alice is locked after repeated wrong")
    with sessions() as session:
        read = session.get(Read, w8["primary"])
        assert read is not None
        assert read.state == "in_progress"
        failures = session.scalars(
            select(AuditEntry.action).where(AuditEntry.action == "signature.failed")
        ).all()
    assert len(failures) == accounts.MAX_FAILED_LOGINS


def test_follow_up_form_starts_from_baseline(
    server: flask.Flask, reading: ReadingWorld, sessions: sessionmaker[Session]
) -> None:
    w8 = pass_and_assign(sessions, reading, reading.w8_case)
    alice = _client(server, "alice")

    opened = _post(alice, _open_read_body(w8["primary"]))
    response = opened.get_json()["response"]
    assert response["reads-target-1-site"]["value"] == "liver 1"
    assert response["reads-target-2-site"]["value"] == "liver 2"
    assert response["reads-target-3-site"]["value"] is None
    assert response["reads-target-1-mm"]["value"] is None
    assert response["reads-target-1-flags"]["value"] == []
    # The baseline had non-target lesions, so the reader must assess them.
    assert response["reads-non-target"]["value"] is None

    summary = callback_body(
        [
            ("reads-summary", "children"),
            ("reads-save", "disabled"),
            ("reads-sign", "disabled"),
            ("reads-adjudicate", "disabled"),
        ],
        [("reads-select", "value", w8["primary"])]
        + [
            (name, "children", None)
            for name in (
                "reads-save-message",
                "reads-sign-message",
                "reads-adjudication-message",
            )
        ],
    )
    shown = _post(alice, summary).get_json()["response"]
    text = json.dumps(shown["reads-summary"]["children"])
    assert "baseline sum 50 mm, nadir 50 mm" in text
    assert "Baseline target lesions: liver 1, liver 2." in text
    assert shown["reads-save"]["disabled"] is False
