"""SLA alerts page: open (and optionally acknowledged) alerts, with acknowledgement."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from core import actions, alerts, study
from dashboard import components as ui
from dashboard.access import secure_callback
from dashboard.context import current_scope, local_time, read_session, runtime

ROLES = ("admin", "leadership", "study_manager")
ACK_ROLES = actions.MANAGER_ROLES
ALL_STUDIES = "all"

dash.register_page(__name__, path="/alerts", name="Alerts", order=3, roles=ROLES)

COLUMNS = [
    ui.id_column("id", "Alert", width=100),
    ui.column("study", "Study"),
    ui.column("case", "Case", cellRenderer="markdown"),
    ui.column("step", "Step"),
    ui.column("kind", "Kind"),
    ui.column("due", "Due"),
    ui.column("raised", "Raised"),
    ui.column("emailed", "Emailed"),
    ui.column("escalated", "Escalated"),
    ui.column("acknowledged", "Acknowledged"),
]


def layout(**_: Any) -> html.Div:
    with read_session() as session:
        studies = study.studies_in_scope(session, current_scope())
    options = [{"label": "All my studies", "value": ALL_STUDIES}]
    options += [{"label": row["protocol_id"], "value": row["id"]} for row in studies]
    return html.Div(
        [
            html.H2("SLA alerts"),
            html.Div(
                [
                    dcc.Dropdown(
                        id="alerts-study",
                        options=options,
                        value=ALL_STUDIES,
                        clearable=False,
                    ),
                    dcc.Checklist(
                        id="alerts-show-acknowledged",
                        options=[{"label": "Show acknowledged", "value": 1}],
                        value=[],
                    ),
                ],
                className="controls",
            ),
            ui.refresh_interval("alerts-interval"),
            dcc.Store(id="alerts-marker"),
            ui.grid("alerts", COLUMNS, height=420, selectable=True),
            html.Div(
                [
                    html.Button(
                        "Acknowledge selected", id="alerts-acknowledge", n_clicks=0
                    ),
                    html.Span(id="alerts-message", role="status"),
                ],
                className="controls",
            ),
            html.P(
                "Breaches come first, then at-risk alerts, each by due time. An "
                "unacknowledged breach is emailed to the study's leadership contact "
                "after the configured escalation delay.",
                className="method",
            ),
        ]
    )


ui.register_change_marker("alerts", ROLES)


@secure_callback(
    Output(ui.grid_id("alerts"), "rowData"),
    Input("alerts-marker", "data"),
    Input("alerts-study", "value"),
    Input("alerts-show-acknowledged", "value"),
    Input("alerts-message", "children"),
    roles=ROLES,
)
def update_list(_: Any, study_id: Any, show: Any, *__: Any) -> list[dict[str, Any]]:
    scope = current_scope()
    chosen = None if study_id in (None, ALL_STUDIES) else int(study_id)
    with read_session() as session:
        rows = alerts.list_alerts(
            session, scope.studies_for(chosen), open_only=not show
        )
    case_path = dash.get_relative_path("/case")
    for row in rows:
        row["case"] = f"[{row['case_id']}]({case_path}?case={row['case_id']})"
        row["due"] = local_time(row.pop("due_at"))
        row["raised"] = local_time(row.pop("created_at"))
        row["emailed"] = local_time(row.pop("emailed_at"))
        row["escalated"] = local_time(row.pop("escalated_at"))
        acknowledged = local_time(row.pop("acknowledged_at"))
        by = row.pop("acknowledged_by")
        row["acknowledged"] = f"{acknowledged} by {by}" if by else ""
    return rows


@secure_callback(
    Output("alerts-message", "children"),
    Input("alerts-acknowledge", "n_clicks"),
    State(ui.grid_id("alerts"), "selectedRows"),
    roles=ACK_ROLES,
    prevent_initial_call=True,
)
def acknowledge(clicks: int, selected: list[dict[str, Any]] | None) -> str:
    if not clicks:
        raise dash.exceptions.PreventUpdate
    alert_ids = [int(row["id"]) for row in selected or []]
    if not alert_ids:
        return "Select one or more alerts first."
    done: list[str] = []
    failed: list[str] = []
    # One transaction per alert: one already acknowledged by someone else must not
    # undo the others.
    for alert_id in alert_ids:
        try:
            with runtime().sessions.begin() as session:
                actions.acknowledge_alert(session, current_scope(), alert_id)
        except actions.ActionError as exc:
            failed.append(str(exc))
            continue
        done.append(str(alert_id))
    message = f"Acknowledged {len(done)} of {len(alert_ids)} alerts"
    if done:
        message += f" ({', '.join(done)})"
    if failed:
        message += "; not done: " + "; ".join(failed)
    return message + "."
