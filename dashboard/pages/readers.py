"""Reader network admin: profiles, per-study training and out-of-office periods.

Every edit requires a reason and is audited in the transaction that makes it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from core import reader_admin, study
from core.readers import ReaderError
from dashboard import components as ui
from dashboard.access import secure_callback
from dashboard.context import current_scope, local_time, read_session, runtime

ROLES = reader_admin.ADMIN_ROLES
MESSAGES = (
    "readers-profile-message",
    "readers-training-message",
    "readers-absence-message",
    "readers-add-message",
)
PROFILE_FIELDS = (
    ("daily_capacity", "Capacity (reads/day)"),
    ("timezone", "Time zone (IANA)"),
    ("work_start_hour", "Work starts (local hour)"),
    ("work_end_hour", "Work ends (local hour, 24 = midnight)"),
)

dash.register_page(__name__, path="/readers", name="Readers", order=4, roles=ROLES)

READER_COLUMNS = [
    ui.id_column("reader_id", "Id", width=80),
    ui.column("name", "Reader"),
    ui.column("current_training", "Current training", minWidth=220, flex=2),
    ui.number_column("daily_capacity", "Capacity (reads/day)"),
    ui.number_column("open_reads", "Open reads"),
    ui.column("timezone", "Time zone"),
    ui.column("hours", "Working hours (local)"),
    ui.column("status", "Status"),
]
TRAINING_COLUMNS = [
    ui.column("study", "Study"),
    ui.column("criteria", "Criteria"),
    ui.column("trained_on", "Trained on"),
    ui.column("expires_on", "Expires on"),
    ui.column("current", "Current"),
]
ABSENCE_COLUMNS = [
    ui.column("starts", "Starts"),
    ui.column("ends", "Ends"),
    ui.column("note", "Reason", flex=2),
]


def _field(label: str, component: Any) -> html.Div:
    """Return a labelled form field."""
    return html.Div(
        [html.Label(label, htmlFor=component.id), component], className="field"
    )


def layout(**_: Any) -> html.Div:
    with read_session() as session:
        studies = study.studies_in_scope(session, current_scope())
    study_options = [{"label": s["protocol_id"], "value": s["id"]} for s in studies]
    return html.Div(
        [
            html.H2("Reader network"),
            ui.grid("readers-list", READER_COLUMNS, height=320),
            html.Div(
                [
                    html.Label("Reader", htmlFor="readers-select"),
                    dcc.Dropdown(id="readers-select", placeholder="Choose a reader"),
                ],
                className="controls",
            ),
            html.H3("Profile"),
            _profile_form(),
            html.H3("Training"),
            ui.grid("readers-training", TRAINING_COLUMNS, height=200),
            _training_form(study_options),
            html.H3("Out of office"),
            ui.grid("readers-absences", ABSENCE_COLUMNS, height=200),
            _absence_form(),
            html.H3("Add a reader with a first training record"),
            _add_form(study_options),
        ]
    )


def _profile_form() -> html.Div:
    fields: list[Any] = []
    for field, label in PROFILE_FIELDS:
        kind = "text" if field == "timezone" else "number"
        fields.append(_field(label, dcc.Input(id=f"readers-{field}", type=kind)))
    fields += [
        dcc.Checklist(id="readers-active", options=[{"label": "Active", "value": 1}]),
        _field("Reason", dcc.Input(id="readers-profile-reason")),
        html.Button("Save profile", id="readers-profile-save", n_clicks=0),
        html.Span(id="readers-profile-message", role="status"),
    ]
    return html.Div(fields, className="controls")


def _training_fields(
    prefix: str, study_options: list[dict[str, Any]]
) -> list[html.Div]:
    return [
        _field("Study", dcc.Dropdown(id=f"{prefix}-study", options=study_options)),
        _field("Criteria", dcc.Input(id=f"{prefix}-criteria", value="RECIST 1.1")),
        _field(
            "Trained on",
            dcc.DatePickerSingle(id=f"{prefix}-trained", display_format="YYYY-MM-DD"),
        ),
        _field(
            "Expires on (empty: no expiry)",
            dcc.DatePickerSingle(id=f"{prefix}-expires", display_format="YYYY-MM-DD"),
        ),
        _field("Reason", dcc.Input(id=f"{prefix}-reason")),
    ]


def _training_form(study_options: list[dict[str, Any]]) -> html.Div:
    return html.Div(
        [
            *_training_fields("readers-training", study_options),
            html.Button("Record training", id="readers-training-save", n_clicks=0),
            html.Span(id="readers-training-message", role="status"),
        ],
        className="controls",
    )


def _absence_form() -> html.Div:
    return html.Div(
        [
            _field(
                "First day away (reader's time zone)",
                dcc.DatePickerSingle(
                    id="readers-absence-start", display_format="YYYY-MM-DD"
                ),
            ),
            _field(
                "Last day away",
                dcc.DatePickerSingle(
                    id="readers-absence-end", display_format="YYYY-MM-DD"
                ),
            ),
            _field("Reason", dcc.Input(id="readers-absence-reason")),
            html.Button("Add absence", id="readers-absence-save", n_clicks=0),
            html.Span(id="readers-absence-message", role="status"),
        ],
        className="controls",
    )


def _add_form(study_options: list[dict[str, Any]]) -> html.Div:
    return html.Div(
        [
            _field("Name", dcc.Input(id="readers-add-name")),
            _field("Email", dcc.Input(id="readers-add-email", type="email")),
            _field(
                "Time zone (IANA)", dcc.Input(id="readers-add-timezone", value="UTC")
            ),
            _field(
                "Capacity (reads/day)",
                dcc.Input(id="readers-add-capacity", type="number", value=20, min=0),
            ),
            *_training_fields("readers-add", study_options),
            html.Button("Add reader", id="readers-add-save", n_clicks=0),
            html.Span(id="readers-add-message", role="status"),
        ],
        className="controls",
    )


@secure_callback(
    Output(ui.grid_id("readers-list"), "rowData"),
    Output("readers-select", "options"),
    *[Input(name, "children") for name in MESSAGES],
    roles=ROLES,
)
def update_list(*_: Any) -> tuple[Any, ...]:
    with read_session() as session:
        rows = reader_admin.readers_in_scope(
            session, current_scope(), datetime.now(UTC)
        )
    for row in rows:
        row["hours"] = f"{row['work_start_hour']:02d}-{row['work_end_hour']:02d}"
        row["status"] = _status(row)
    options = [{"label": r["name"], "value": r["reader_id"]} for r in rows]
    return rows, options


def _status(row: dict[str, Any]) -> str:
    if not row["active"]:
        return "inactive"
    return "out of office" if row["out_of_office"] else "active"


@secure_callback(
    Output(ui.grid_id("readers-training"), "rowData"),
    Output(ui.grid_id("readers-absences"), "rowData"),
    *[Output(f"readers-{field}", "value") for field, _ in PROFILE_FIELDS],
    Output("readers-active", "value"),
    Input("readers-select", "value"),
    *[Input(name, "children") for name in MESSAGES[:3]],
    roles=ROLES,
)
def show_reader(reader_id: Any, *_: Any) -> tuple[Any, ...]:
    if reader_id is None:
        raise dash.exceptions.PreventUpdate
    scope = current_scope()
    now = datetime.now(UTC)
    with read_session() as session:
        reader = reader_admin.require_reader(session, scope, int(reader_id))
        training = reader_admin.trainings(session, scope, reader.id, now.date())
        away = reader_admin.absences(session, scope, reader.id, now - timedelta(30))
        profile = [getattr(reader, field) for field, _ in PROFILE_FIELDS]
        active = [1] if reader.active else []
    for row in training:
        row["current"] = "yes" if row["current"] else "no"
    for row in away:
        row["starts"] = local_time(row.pop("starts_at"))
        row["ends"] = local_time(row.pop("ends_at"))
    return training, away, *profile, active


def _run(action: Any, *args: Any) -> str:
    try:
        with runtime().sessions.begin() as session:
            action(session, current_scope(), *args)
    except ReaderError as exc:
        return f"Not saved: {exc}."
    return "Saved."


def _day(value: str | None, field: str) -> date:
    if not value:
        raise ReaderError(f"{field} is missing; choose a date")
    return date.fromisoformat(value[:10])


@secure_callback(
    Output("readers-profile-message", "children"),
    Input("readers-profile-save", "n_clicks"),
    State("readers-select", "value"),
    *[State(f"readers-{field}", "value") for field, _ in PROFILE_FIELDS],
    State("readers-active", "value"),
    State("readers-profile-reason", "value"),
    roles=ROLES,
    prevent_initial_call=True,
)
def save_profile(clicks: int, reader_id: Any, *values: Any) -> str:
    if not clicks:
        raise dash.exceptions.PreventUpdate
    if reader_id is None:
        return "Choose a reader first."
    *profile, active, reason = values
    changes = {
        field: value for (field, _), value in zip(PROFILE_FIELDS, profile, strict=True)
    }
    changes["active"] = bool(active)
    message = _run(reader_admin.edit_reader, int(reader_id), changes, reason or "")
    return f"Reader {int(reader_id)}: {message}"


@secure_callback(
    Output("readers-training-message", "children"),
    Input("readers-training-save", "n_clicks"),
    State("readers-select", "value"),
    State("readers-training-study", "value"),
    State("readers-training-criteria", "value"),
    State("readers-training-trained", "date"),
    State("readers-training-expires", "date"),
    State("readers-training-reason", "value"),
    roles=ROLES,
    prevent_initial_call=True,
)
def save_training(
    clicks: int,
    reader_id: Any,
    study_id: Any,
    criteria: str | None,
    trained: str | None,
    expires: str | None,
    reason: str | None,
) -> str:
    if not clicks:
        raise dash.exceptions.PreventUpdate
    if reader_id is None or study_id is None:
        return "Choose a reader and a study first."
    try:
        trained_on = _day(trained, "trained_on")
    except ReaderError as exc:
        return f"Not saved: {exc}."
    expires_on = _day(expires, "expires_on") if expires else None
    message = _run(
        reader_admin.train_reader,
        int(reader_id),
        int(study_id),
        criteria or "",
        trained_on,
        expires_on,
        reason or "",
    )
    return f"Training of reader {int(reader_id)}: {message}"


@secure_callback(
    Output("readers-absence-message", "children"),
    Input("readers-absence-save", "n_clicks"),
    State("readers-select", "value"),
    State("readers-absence-start", "date"),
    State("readers-absence-end", "date"),
    State("readers-absence-reason", "value"),
    roles=ROLES,
    prevent_initial_call=True,
)
def save_absence(
    clicks: int,
    reader_id: Any,
    first: str | None,
    last: str | None,
    reason: str | None,
) -> str:
    if not clicks:
        raise dash.exceptions.PreventUpdate
    if reader_id is None:
        return "Choose a reader first."
    try:
        first_day = _day(first, "first day away")
        last_day = _day(last, "last day away")
    except ReaderError as exc:
        return f"Not saved: {exc}."
    message = _run(
        reader_admin.add_absence, int(reader_id), first_day, last_day, reason or ""
    )
    return f"Absence of reader {int(reader_id)}: {message}"


@secure_callback(
    Output("readers-add-message", "children"),
    Input("readers-add-save", "n_clicks"),
    State("readers-add-name", "value"),
    State("readers-add-email", "value"),
    State("readers-add-timezone", "value"),
    State("readers-add-capacity", "value"),
    State("readers-add-study", "value"),
    State("readers-add-criteria", "value"),
    State("readers-add-trained", "date"),
    State("readers-add-expires", "date"),
    State("readers-add-reason", "value"),
    roles=ROLES,
    prevent_initial_call=True,
)
def add_reader(clicks: int, *values: Any) -> str:
    if not clicks:
        raise dash.exceptions.PreventUpdate
    name, email, timezone, capacity, study_id, criteria, *rest = values
    trained, expires, reason = rest
    if study_id is None:
        return "Choose the study of the reader's first training."
    profile = {
        "name": name,
        "email": email,
        "timezone": timezone or "UTC",
        "daily_capacity": capacity,
    }
    try:
        training = {
            "study_id": int(study_id),
            "criteria": criteria or "",
            "trained_on": _day(trained, "trained_on"),
            "expires_on": _day(expires, "expires_on") if expires else None,
        }
    except ReaderError as exc:
        return f"Not saved: {exc}."
    message = _run(reader_admin.create_reader, profile, training, reason or "")
    return f"New reader {name or ''}: {message}"
