"""Study page for study managers: pipeline, sites, readers, risks, alerts, actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from core import actions, study
from dashboard import components as ui
from dashboard.access import secure_callback
from dashboard.context import current_scope, local_time, read_session, runtime

ROLES = ("admin", "leadership", "study_manager")
ACTION_ROLES = ("admin", "study_manager")
ACTION_MESSAGES = ("study-reassign-message", "study-hold-message", "study-ack-message")

dash.register_page(__name__, path="/study", name="Study", order=2, roles=ROLES)

READER_COLUMNS = [
    ui.column("name", "Reader"),
    ui.number_column("open_reads", "Open reads"),
    ui.number_column("daily_capacity", "Capacity (reads/day)"),
    ui.number_column("signed_reads", "Signed in range"),
    ui.number_column("median_read_hours", "Median read time (h)", 1),
    ui.number_column("adjudication_pct", "Adjudicated (%)", 1),
    ui.column("available", "Available now"),
    ui.column("timezone", "Time zone"),
]
RISK_COLUMNS = [
    ui.column("case", "Case", cellRenderer="markdown"),
    ui.column("subject_code", "Subject"),
    ui.column("timepoint", "Timepoint"),
    ui.column("state", "State"),
    ui.time_column("due", "Due"),
    ui.number_column("hours_left", "Hours left (h)", 1),
    ui.number_column("risk_score", "Triage score (share of SLA used)", 2),
]
ALERT_COLUMNS = [
    ui.id_column("alert_id", "Alert"),
    ui.id_column("case_id", "Case"),
    ui.column("subject_code", "Subject"),
    ui.column("step", "Step"),
    ui.column("kind", "Kind"),
    ui.time_column("created", "Raised"),
]
READ_COLUMNS = [
    ui.id_column("read_id", "Read"),
    ui.id_column("case_id", "Case"),
    ui.column("subject_code", "Subject"),
    ui.column("timepoint", "Timepoint"),
    ui.column("kind", "Kind"),
    ui.column("state", "State"),
    ui.column("reader", "Reader"),
]


def _study_options() -> list[dict[str, Any]]:
    with read_session() as session:
        rows = study.studies_in_scope(session, current_scope())
    return [{"label": row["protocol_id"], "value": row["id"]} for row in rows]


def _initial_study(options: list[dict[str, Any]], requested: str | None) -> Any:
    if requested and requested.isdigit():
        current_scope().require_study(int(requested))
        return int(requested)
    return options[0]["value"] if options else None


def layout(study: str | None = None, **_: Any) -> html.Div:
    options = _study_options()
    return html.Div(
        [
            html.H2("Study"),
            html.Div(
                [
                    dcc.Dropdown(
                        id="study-select",
                        options=options,
                        value=_initial_study(options, study),
                        clearable=False,
                    ),
                    dcc.Dropdown(
                        id="study-range",
                        options=ui.RANGE_OPTIONS,
                        value=30,
                        clearable=False,
                    ),
                ],
                className="controls",
            ),
            ui.refresh_interval("study-interval"),
            dcc.Store(id="study-marker"),
            dcc.Graph(id="study-pipeline"),
            html.H3("At-risk and breached cases"),
            ui.grid("study-risk", RISK_COLUMNS, height=300),
            html.H3("Alerts to acknowledge"),
            ui.grid("study-alerts", ALERT_COLUMNS, height=260),
            _ack_form(),
            html.H3("Sites"),
            ui.grid("study-sites", ui.SITE_COLUMNS, height=300),
            html.H3("Readers"),
            ui.grid("study-readers", READER_COLUMNS, height=300),
            html.H3("Open reads"),
            ui.grid("study-reads", READ_COLUMNS, height=300),
            _reassign_form(),
            html.H3("Put a case on hold"),
            _hold_form(),
        ]
    )


def _ack_form() -> html.Div:
    return html.Div(
        [
            dcc.Input(id="study-ack-alert", type="number", placeholder="Alert id"),
            html.Button("Acknowledge", id="study-ack", n_clicks=0),
            html.Span(id="study-ack-message", role="status"),
        ],
        className="controls",
    )


def _reassign_form() -> html.Div:
    return html.Div(
        [
            dcc.Input(id="study-reassign-read", type="number", placeholder="Read id"),
            dcc.Dropdown(id="study-reassign-reader", placeholder="New reader"),
            dcc.Input(id="study-reassign-reason", placeholder="Reason (required)"),
            html.Button("Reassign", id="study-reassign", n_clicks=0),
            html.Span(id="study-reassign-message", role="status"),
        ],
        className="controls",
    )


def _hold_form() -> html.Div:
    return html.Div(
        [
            dcc.Input(id="study-hold-case", type="number", placeholder="Case id"),
            dcc.Input(id="study-hold-reason", placeholder="Reason (required)"),
            html.Button("Put on hold", id="study-hold", n_clicks=0),
            html.Span(id="study-hold-message", role="status"),
        ],
        className="controls",
    )


ui.register_change_marker("study", ROLES)


def _refresh_inputs() -> list[Input]:
    inputs = [Input("study-marker", "data"), Input("study-select", "value")]
    inputs += [Input(name, "children") for name in ACTION_MESSAGES]
    return inputs


@secure_callback(
    Output("study-pipeline", "figure"),
    Output(ui.grid_id("study-risk"), "rowData"),
    Output(ui.grid_id("study-alerts"), "rowData"),
    *_refresh_inputs(),
    roles=ROLES,
)
def update_overview(_: Any, study_id: int | None, *__: Any) -> tuple[Any, ...]:
    if study_id is None:
        raise dash.exceptions.PreventUpdate
    now = datetime.now(UTC)
    scope = current_scope()
    with read_session() as session:
        stages = study.pipeline(session, scope, int(study_id))
        risks = study.at_risk_cases(session, scope, int(study_id), now=now)
        alerts = study.open_alerts(session, scope, int(study_id))
    case_path = dash.get_relative_path("/case")
    for row in risks:
        row["case"] = f"[{row['case_id']}]({case_path}?case={row['case_id']})"
        row["due"] = local_time(row.pop("due_at"))
        row.pop("first_received_at")
    for row in alerts:
        row["created"] = local_time(row.pop("created_at"))
        row["due_at"] = local_time(row["due_at"])
    return ui.pipeline_figure(stages), risks, alerts


def _range_start(now: datetime, days: Any) -> datetime:
    return now - timedelta(days=int(days or 30))


# Sites, readers and open reads are separate callbacks, so the browser requests
# them in parallel and each table fills as soon as its query returns.
@secure_callback(
    Output(ui.grid_id("study-sites"), "rowData"),
    *_refresh_inputs(),
    Input("study-range", "value"),
    roles=ROLES,
)
def update_sites(_: Any, study_id: int | None, *rest: Any) -> list[dict[str, Any]]:
    if study_id is None:
        raise dash.exceptions.PreventUpdate
    now = datetime.now(UTC)
    with read_session() as session:
        return study.sites(
            session,
            current_scope(),
            int(study_id),
            now=now,
            since=_range_start(now, rest[-1]),
        )


@secure_callback(
    Output(ui.grid_id("study-readers"), "rowData"),
    Output("study-reassign-reader", "options"),
    *_refresh_inputs(),
    Input("study-range", "value"),
    roles=ROLES,
)
def update_readers(_: Any, study_id: int | None, *rest: Any) -> tuple[Any, ...]:
    if study_id is None:
        raise dash.exceptions.PreventUpdate
    now = datetime.now(UTC)
    with read_session() as session:
        reader_rows = study.readers(
            session,
            current_scope(),
            int(study_id),
            now=now,
            since=_range_start(now, rest[-1]),
        )
    for row in reader_rows:
        row["available"] = "yes" if row["available"] else "no"
    options = [{"label": r["name"], "value": r["reader_id"]} for r in reader_rows]
    return reader_rows, options


@secure_callback(
    Output(ui.grid_id("study-reads"), "rowData"),
    *_refresh_inputs(),
    roles=ROLES,
)
def update_reads(_: Any, study_id: int | None, *__: Any) -> list[dict[str, Any]]:
    if study_id is None:
        raise dash.exceptions.PreventUpdate
    with read_session() as session:
        reads = study.open_reads(session, current_scope(), int(study_id))
    for row in reads:
        row.pop("due_at")
    return reads


def _run_action(action: Any, *args: Any) -> str:
    try:
        with runtime().sessions.begin() as session:
            action(session, current_scope(), *args)
    except actions.ActionError as exc:
        return f"Not done: {exc}."
    return "Done."


@secure_callback(
    Output("study-reassign-message", "children"),
    Input("study-reassign", "n_clicks"),
    State("study-reassign-read", "value"),
    State("study-reassign-reader", "value"),
    State("study-reassign-reason", "value"),
    roles=ACTION_ROLES,
    prevent_initial_call=True,
)
def reassign(clicks: int, read_id: Any, reader_id: Any, reason: str | None) -> str:
    if not clicks:
        raise dash.exceptions.PreventUpdate
    if read_id is None or reader_id is None:
        return "Enter a read id and choose a reader."
    message = _run_action(actions.reassign_read, int(read_id), int(reader_id), reason)
    return f"Reassign read {int(read_id)}: {message}"


@secure_callback(
    Output("study-hold-message", "children"),
    Input("study-hold", "n_clicks"),
    State("study-hold-case", "value"),
    State("study-hold-reason", "value"),
    roles=ACTION_ROLES,
    prevent_initial_call=True,
)
def hold(clicks: int, case_id: Any, reason: str | None) -> str:
    if not clicks:
        raise dash.exceptions.PreventUpdate
    if case_id is None:
        return "Enter a case id."
    message = _run_action(actions.hold_case, int(case_id), reason or "")
    return f"Hold case {int(case_id)}: {message}"


@secure_callback(
    Output("study-ack-message", "children"),
    Input("study-ack", "n_clicks"),
    State("study-ack-alert", "value"),
    roles=ACTION_ROLES,
    prevent_initial_call=True,
)
def acknowledge(clicks: int, alert_id: Any) -> str:
    if not clicks:
        raise dash.exceptions.PreventUpdate
    if alert_id is None:
        return "Enter an alert id."
    message = _run_action(actions.acknowledge_alert, int(alert_id))
    return f"Acknowledge alert {int(alert_id)}: {message}"
