"""Triage page: open cases in work order with the parts of each score, and the
measured quality of the breach predictor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, dcc, html

from core import backtest, study, triage
from dashboard import components as ui
from dashboard.access import secure_callback
from dashboard.context import current_scope, local_time, read_session

ROLES = ("admin", "leadership", "study_manager")
ALL_STUDIES = "all"

dash.register_page(__name__, path="/triage", name="Triage", order=3, roles=ROLES)

TRIAGE_COLUMNS = [
    ui.number_column("rank", "Rank", width=80),
    ui.column("case", "Case", cellRenderer="markdown", width=90),
    ui.column("study", "Study", width=110),
    ui.column("urgent", "Urgent", width=90),
    ui.column("baseline", "Baseline", width=100),
    ui.number_column("hours_left", "Hours left (h)", 1),
    ui.number_column("predicted_hours", "Predicted work (h)", 1),
    ui.number_column("slack_hours", "Slack (h)", 1),
    ui.number_column("breach_probability", "Breach probability", 2),
    ui.number_column("reads_outstanding", "Reads outstanding"),
    ui.number_column("series", "Series"),
    ui.number_column("instances", "Instances"),
    ui.number_column("prior_timepoints", "Prior timepoints"),
]
BACKTEST_COLUMNS = [
    ui.column("study", "Study"),
    ui.column("run", "Run"),
    ui.number_column("threshold", "Threshold", 2),
    ui.column("chosen", "Used for alerts"),
    ui.number_column("cases", "Cases replayed"),
    ui.number_column("breaches", "Breaches"),
    ui.number_column("predicted", "Flagged"),
    ui.number_column("true_positives", "Flagged and breached"),
    ui.number_column("precision", "Precision", 3),
    ui.number_column("recall", "Recall", 3),
]
METHOD = (
    "Work order: urgent cases first, then baseline (eligibility) timepoints, then "
    "the least slack, which is the hours left to the due time minus the predicted "
    "hours of work still to do. Predicted work comes from the study's own signed "
    "reads per reader and modality. The backtest replays finished cases halfway "
    "through their SLA window with rates learnt only from earlier reads. Precision "
    "is the share of flagged cases that breached, recall the share of breaches "
    "that were flagged. The jobs process reruns it daily."
)


def layout(**_: Any) -> html.Div:
    with read_session() as session:
        studies = study.studies_in_scope(session, current_scope())
    options = [{"label": "All my studies", "value": ALL_STUDIES}]
    options += [{"label": row["protocol_id"], "value": row["id"]} for row in studies]
    return html.Div(
        [
            html.H2("Triage"),
            dcc.Dropdown(
                id="triage-study", options=options, value=ALL_STUDIES, clearable=False
            ),
            html.H3("Open cases in work order"),
            ui.grid("triage-cases", TRIAGE_COLUMNS, height=420),
            html.H3("Breach prediction backtest"),
            ui.grid("triage-backtest", BACKTEST_COLUMNS, height=260),
            html.P(METHOD, className="method"),
        ]
    )


@secure_callback(
    Output(ui.grid_id("triage-cases"), "rowData"),
    Output(ui.grid_id("triage-backtest"), "rowData"),
    Input("triage-study", "value"),
    roles=ROLES,
)
def update(study_id: Any) -> tuple[Any, ...]:
    scope = current_scope()
    chosen = None if study_id in (None, ALL_STUDIES) else int(study_id)
    study_ids = scope.studies_for(chosen)
    with read_session() as session:
        protocols = {
            row["id"]: row["protocol_id"]
            for row in study.studies_in_scope(session, scope)
        }
        ranked = triage.triage(session, datetime.now(UTC), study_ids=study_ids)
        figures = backtest.backtest_figures(session, scope)
    case_path = dash.get_relative_path("/case")
    cases = []
    for rank, row in enumerate(ranked, start=1):
        cases.append(
            row.__dict__
            | {
                "rank": rank,
                "case": f"[{row.case_id}]({case_path}?case={row.case_id})",
                "study": protocols.get(row.study_id, ""),
                "urgent": "yes" if row.urgent else "",
                "baseline": "yes" if row.baseline else "",
            }
        )
    if chosen is not None:
        figures = [f for f in figures if f["study"] == protocols.get(chosen)]
    for figure in figures:
        figure["run"] = local_time(figure.pop("run_at"))
        figure["chosen"] = "yes" if figure["chosen"] else ""
    return cases, figures
