"""Sponsor view: operational figures of the sponsor's own studies only.

Sponsors are blinded: this page shows counts, states, turnaround, QC and query
figures and site status, and calls only core functions that return no response
assessments and no reader identities.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
from dash import Input, Output, dcc, html

from core import portfolio, study
from dashboard import components as ui
from dashboard.access import secure_callback
from dashboard.context import current_scope, local_time, read_session

ROLES = ("admin", "sponsor")

dash.register_page(__name__, path="/sponsor", name="Sponsor view", order=4, roles=ROLES)

FIGURES = (
    ("open_cases", "Open cases", "{:,.0f}"),
    ("done_cases", "Done in range", "{:,.0f}"),
    ("median_hours", "Median turnaround", "{:,.1f} h"),
    ("p90_hours", "90th percentile turnaround", "{:,.1f} h"),
    ("sla_met_pct", "Done within SLA", "{:.1f} %"),
    ("qc_first_pass_pct", "QC first pass", "{:.1f} %"),
    ("open_queries", "Open queries", "{:,.0f}"),
    ("past_due", "Open past due", "{:,.0f}"),
)


def layout(**_: Any) -> html.Div:
    with read_session() as session:
        studies = study.studies_in_scope(session, current_scope())
    options = [{"label": row["protocol_id"], "value": row["id"]} for row in studies]
    return html.Div(
        [
            html.H2("Sponsor view"),
            html.Div(
                [
                    dcc.Dropdown(
                        id="sponsor-select",
                        options=options,
                        value=options[0]["value"] if options else None,
                        clearable=False,
                    ),
                    dcc.Dropdown(
                        id="sponsor-range",
                        options=ui.RANGE_OPTIONS,
                        value=30,
                        clearable=False,
                    ),
                ],
                className="controls",
            ),
            ui.refresh_interval("sponsor-interval"),
            dcc.Store(id="sponsor-marker"),
            html.Div(id="sponsor-cards", className="cards"),
            dcc.Graph(id="sponsor-pipeline"),
            html.H3("Sites"),
            ui.grid("sponsor-sites", ui.SITE_COLUMNS, height=320),
        ]
    )


ui.register_change_marker("sponsor", ROLES)


@secure_callback(
    Output("sponsor-cards", "children"),
    Output("sponsor-pipeline", "figure"),
    Output(ui.grid_id("sponsor-sites"), "rowData"),
    Input("sponsor-marker", "data"),
    Input("sponsor-select", "value"),
    Input("sponsor-range", "value"),
    roles=ROLES,
)
def update(_: Any, study_id: int | None, days: int) -> tuple[Any, ...]:
    if study_id is None:
        raise dash.exceptions.PreventUpdate
    scope = current_scope()
    scope.require_study(int(study_id))
    now = datetime.now(UTC)
    since = now - timedelta(days=int(days or 30))
    with read_session() as session:
        rows = portfolio.dashboard_summaries(
            session, scope, now=now, days=int(days or 30)
        )
        stages = study.pipeline(session, scope, int(study_id))
        sites = study.sites(session, scope, int(study_id), now=now, since=since)
    summary = next((row for row in rows if row["study_id"] == int(study_id)), {})
    return _cards(summary), ui.pipeline_figure(stages), sites


def _cards(summary: dict[str, Any]) -> list[html.Div]:
    cards = []
    for field, label, fmt in FIGURES:
        value = summary.get(field)
        text = "n/a" if value is None else fmt.format(value)
        cards.append(html.Div([html.Div(label), html.Strong(text)], className="card"))
    if summary.get("figures_at") is not None:
        as_of = local_time(summary["figures_at"])
        note = f"Turnaround, SLA and QC figures as of {as_of}"
        cards.append(html.Div(note, className="as-of"))
    return cards
