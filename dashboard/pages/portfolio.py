"""Portfolio page for leadership: every study's backlog, turnaround and quality."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from core import portfolio
from core.models import OPEN_CASE_STATES
from dashboard import components as ui
from dashboard.access import secure_callback
from dashboard.context import current_scope, local_time, read_session

ROLES = ("admin", "leadership")

dash.register_page(__name__, path="/portfolio", name="Portfolio", order=1, roles=ROLES)

COLUMNS = [
    ui.column("label", "Study", cellRenderer="markdown", pinned="left"),
    ui.number_column("open_cases", "Open cases"),
    *[
        ui.number_column(state, state.replace("_", " ").title())
        for state in OPEN_CASE_STATES
    ],
    ui.number_column("age_0_2d", "Open < 2 d"),
    ui.number_column("age_2_7d", "Open 2-7 d"),
    ui.number_column("age_7_14d", "Open 7-14 d"),
    ui.number_column("age_14d_plus", "Open >= 14 d"),
    ui.number_column("past_due", "Past due"),
    ui.number_column("done_cases", "Done in range"),
    ui.number_column("median_hours", "Median turnaround (h)", 1),
    ui.number_column("p90_hours", "P90 turnaround (h)", 1),
    ui.number_column("sla_met_pct", "SLA met (%)", 1),
    ui.number_column("qc_first_pass_pct", "QC first pass (%)", 1),
    ui.number_column("adjudication_pct", "Adjudication (%)", 1),
    ui.number_column("open_queries", "Open queries"),
    ui.number_column("oldest_query_days", "Oldest query (d)", 1),
    ui.time_column("figures_at", "Range figures as of"),
]


def layout(**_: Any) -> html.Div:
    return html.Div(
        [
            html.H2("Portfolio"),
            html.Div(
                [
                    dcc.Dropdown(
                        id="portfolio-range",
                        options=ui.RANGE_OPTIONS,
                        value=30,
                        clearable=False,
                    ),
                    dcc.RadioItems(
                        id="portfolio-group",
                        options=[
                            {"label": "Per study", "value": "study"},
                            {"label": "Per sponsor", "value": "sponsor"},
                        ],
                        value="study",
                        inline=True,
                    ),
                ],
                className="controls",
            ),
            ui.refresh_interval("portfolio-interval"),
            dcc.Store(id="portfolio-marker"),
            ui.grid("portfolio", COLUMNS),
            html.Div(
                [
                    dcc.Graph(id="portfolio-states"),
                    dcc.Graph(id="portfolio-turnaround"),
                ],
                className="charts",
            ),
            dcc.Graph(id="portfolio-backlog"),
        ]
    )


ui.register_change_marker("portfolio", ROLES)


@secure_callback(
    Output(ui.grid_id("portfolio"), "rowData"),
    Output("portfolio-states", "figure"),
    Output("portfolio-turnaround", "figure"),
    Input("portfolio-marker", "data"),
    Input("portfolio-range", "value"),
    Input("portfolio-group", "value"),
    roles=ROLES,
)
def update_summary(_: str, days: int, group: str) -> tuple[Any, ...]:
    now = datetime.now(UTC)
    with read_session() as session:
        rows = portfolio.dashboard_summaries(
            session,
            current_scope(),
            now=now,
            days=int(days),
            group="sponsor" if group == "sponsor" else "study",
        )
    for row in rows:
        row["figures_at"] = local_time(row["figures_at"])
    if group != "sponsor":
        study_path = dash.get_relative_path("/study")
        for row in rows:
            row["label"] = f"[{row['label']}]({study_path}?study={row['study_id']})"
    return rows, states_figure(rows), turnaround_figure(rows)


def states_figure(rows: list[dict[str, Any]]) -> go.Figure:
    fig = ui.figure("Open cases by state", "", "cases")
    labels = [_plain(row["label"]) for row in rows]
    for state in OPEN_CASE_STATES:
        fig.add_trace(
            go.Bar(
                name=state,
                x=labels,
                y=[row[state] for row in rows],
                marker_color=ui.STATE_COLORS.get(state),
            )
        )
    fig.update_layout(barmode="stack")
    return fig


def turnaround_figure(rows: list[dict[str, Any]]) -> go.Figure:
    fig = ui.figure("Turnaround of done cases", "", "hours")
    labels = [_plain(row["label"]) for row in rows]
    fig.add_trace(go.Bar(name="median", x=labels, y=[r["median_hours"] for r in rows]))
    fig.add_trace(
        go.Bar(name="90th percentile", x=labels, y=[r["p90_hours"] for r in rows])
    )
    return fig


def _plain(label: str) -> str:
    return label[1 : label.index("]")] if label.startswith("[") else label


@secure_callback(
    Output("portfolio-backlog", "figure"),
    Input("portfolio-marker", "data"),
    Input("portfolio-range", "value"),
    roles=ROLES,
)
def update_backlog(_: str, days: int) -> go.Figure:
    today = datetime.now(UTC).date()
    with read_session() as session:
        points = portfolio.backlog_trend(
            session, current_scope(), start=today - timedelta(days=int(days)), end=today
        )
    fig = ui.figure("Open cases at the end of each day (UTC)", "day", "cases")
    fig.add_trace(
        go.Scatter(
            x=[point.day for point in points],
            y=[point.open_cases for point in points],
            mode="lines",
            name="open cases",
        )
    )
    return fig
