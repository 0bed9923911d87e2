"""Case page: the audit timeline of one case and, on request, an image thumbnail."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from core import case_history
from dashboard import components as ui
from dashboard.access import secure_callback
from dashboard.context import current_scope, local_time, read_session, runtime

ROLES = ("admin", "leadership", "study_manager", "qc_reviewer", "reader")
IMAGE_ROLES = ("admin", "qc_reviewer", "reader")

dash.register_page(__name__, path="/case", name="Case", order=6, roles=ROLES)

COLUMNS = [
    ui.time_column("at", "Time"),
    ui.column("actor", "By"),
    ui.column("action", "Event"),
    ui.column("entity", "Record"),
    ui.column("change", "Change", flex=2, wrapText=True, autoHeight=True),
    ui.column("reason", "Reason", flex=1, wrapText=True, autoHeight=True),
]


def layout(case: str | None = None, **_: Any) -> html.Div:
    case_id = int(case) if case and case.isdigit() else None
    return html.Div(
        [
            html.H2(f"Case {case_id}" if case_id else "Case"),
            html.Div(
                [
                    dcc.Input(
                        id="case-id",
                        type="number",
                        value=case_id,
                        placeholder="Case id",
                    ),
                ],
                className="controls",
            ),
            html.Div(id="case-summary"),
            ui.grid("case-timeline", COLUMNS, height=420),
            html.Button("Show image", id="case-show-image", n_clicks=0),
            html.Div(id="case-image"),
        ]
    )


def _change(row: dict[str, Any]) -> str:
    parts = []
    if row["old_values"]:
        parts.append("from " + json.dumps(row["old_values"], sort_keys=True))
    if row["new_values"]:
        parts.append("to " + json.dumps(row["new_values"], sort_keys=True))
    return " ".join(parts)


@secure_callback(
    Output("case-summary", "children"),
    Output(ui.grid_id("case-timeline"), "rowData"),
    Input("case-id", "value"),
    roles=ROLES,
)
def update_timeline(case_id: Any) -> tuple[Any, ...]:
    if case_id is None:
        return "Enter a case id.", []
    with read_session() as session:
        case = case_history.load_case(session, current_scope(), int(case_id))
        if case is None:
            return f"Case {int(case_id)} not found.", []
        rows = case_history.timeline(session, current_scope(), int(case_id))
        summary = (
            f"State {case.state}; first instance received "
            f"{local_time(case.first_received_at)}; due {local_time(case.due_at)}"
        )
    timeline = [
        {
            "at": local_time(row["at"], "%Y-%m-%d %H:%M:%S"),
            "actor": row["actor"],
            "action": row["action"],
            "entity": f"{row['entity_type']} {row['entity_id']}",
            "change": _change(row),
            "reason": row["reason"] or "",
        }
        for row in rows
    ]
    return summary, timeline


@secure_callback(
    Output("case-image", "children"),
    Input("case-show-image", "n_clicks"),
    State("case-id", "value"),
    roles=IMAGE_ROLES,
    prevent_initial_call=True,
)
def show_image(clicks: int, case_id: Any) -> Any:
    if not clicks or case_id is None:
        raise dash.exceptions.PreventUpdate
    with read_session() as session:
        instance = case_history.representative_instance(
            session, current_scope(), int(case_id)
        )
        archive_path = instance.archive_path if instance else None
    if archive_path is None:
        return "No archived image for this case."
    path = Path(archive_path)
    if not path.is_absolute():
        path = runtime().settings.archive_dir / path
    try:
        png = case_history.render_thumbnail(path)
    except (OSError, ValueError, AttributeError) as exc:
        return f"The image could not be rendered: {type(exc).__name__}."
    source = "data:image/png;base64," + base64.b64encode(png).decode()
    return html.Img(src=source, alt=f"Thumbnail of case {int(case_id)}")
