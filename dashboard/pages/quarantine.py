"""Quarantine page: files that could not be ingested, with reason and source."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from core import actions
from core.quarantine import QUARANTINE_ROLES, list_quarantined
from dashboard import components as ui
from dashboard.access import secure_callback
from dashboard.context import current_scope, local_time, read_session, runtime

RELEASE_ROLES = ("admin", "study_manager", "qc_reviewer")

dash.register_page(
    __name__, path="/quarantine", name="Quarantine", order=5, roles=QUARANTINE_ROLES
)

COLUMNS = [
    ui.id_column("id", "Id", width=90),
    ui.column("file", "File"),
    ui.column("reason_code", "Reason code"),
    ui.column("reason", "Reason", flex=2, wrapText=True, autoHeight=True),
    ui.column("source", "Source"),
    ui.time_column("received", "Received"),
]


def layout(**_: Any) -> html.Div:
    return html.Div(
        [
            html.H2("Quarantined files"),
            ui.refresh_interval("quarantine-interval"),
            dcc.Store(id="quarantine-marker"),
            ui.grid("quarantine", COLUMNS, height=420),
            html.H3("Release a file"),
            html.Div(
                [
                    dcc.Input(
                        id="quarantine-file", type="number", placeholder="File id"
                    ),
                    dcc.Input(id="quarantine-reason", placeholder="Reason (required)"),
                    html.Button("Release", id="quarantine-release", n_clicks=0),
                ],
                className="controls",
            ),
            html.Div(id="quarantine-message", role="status"),
        ]
    )


ui.register_change_marker("quarantine", QUARANTINE_ROLES)


@secure_callback(
    Output(ui.grid_id("quarantine"), "rowData"),
    Input("quarantine-marker", "data"),
    Input("quarantine-message", "children"),
    roles=QUARANTINE_ROLES,
)
def update_list(*_: Any) -> list[dict[str, Any]]:
    with read_session() as session:
        rows = list_quarantined(session, current_scope())
    for row in rows:
        row["received"] = local_time(row.pop("received_at"))
        row.pop("released_at")
    return rows


@secure_callback(
    Output("quarantine-message", "children"),
    Input("quarantine-release", "n_clicks"),
    State("quarantine-file", "value"),
    State("quarantine-reason", "value"),
    roles=RELEASE_ROLES,
    prevent_initial_call=True,
)
def release(clicks: int, file_id: int | None, reason: str | None) -> str:
    if not clicks:
        raise dash.exceptions.PreventUpdate
    if file_id is None:
        return "Enter the id of the file to release."
    try:
        with runtime().sessions.begin() as session:
            actions.release_quarantined(
                session, current_scope(), int(file_id), reason or ""
            )
    except actions.ActionError as exc:
        return f"Not released: {exc}."
    return f"Released file {int(file_id)}."
