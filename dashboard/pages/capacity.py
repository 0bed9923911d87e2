"""Capacity forecast page: projected backlog and breach dates, with a what-if."""

from __future__ import annotations

from typing import Any

import dash
import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from core import forecast, study
from dashboard import components as ui
from dashboard.access import secure_callback
from dashboard.context import current_scope, read_session

ROLES = ("admin", "leadership", "study_manager")

dash.register_page(__name__, path="/capacity", name="Capacity", order=3, roles=ROLES)

METHOD = (
    "Method: expected arrivals are the visits of enrolled subjects (enrolment day "
    "plus the timepoint's target day) that have no case yet; late visits count in "
    "the first week. Weekly capacity is each active trained reader's daily capacity "
    "times 5 working days, shared evenly across the reader's studies and divided by "
    "reads per case (1 for a single read, 2 for a double read without "
    "adjudication, else 2 plus the adjudication share of the last 90 days). The "
    "queue beyond capacity carries over week to week. A week's open cases are the "
    "larger of that queue and the work in progress, which is arrivals per day times "
    "the mean lead time (arrival to done) of the last 90 days. A breach is expected "
    "when the backlog takes longer to clear than the study's mean SLA window. The "
    "back-test replays the last 8 weeks with their real arrivals and today's "
    "capacity."
)


def layout(**_: Any) -> html.Div:
    with read_session() as session:
        studies = study.studies_in_scope(session, current_scope())
    options = [{"label": row["protocol_id"], "value": row["id"]} for row in studies]
    return html.Div(
        [
            html.H2("Capacity forecast"),
            html.Div(
                [
                    dcc.Dropdown(
                        id="capacity-study",
                        options=options,
                        value=options[0]["value"] if options else None,
                        clearable=False,
                    ),
                    html.Label("Weeks ahead"),
                    dcc.Input(
                        id="capacity-weeks", type="number", value=12, min=1, max=52
                    ),
                    html.Label("Readers added (negative to remove)"),
                    dcc.Input(
                        id="capacity-readers", type="number", value=0, min=-50, max=50
                    ),
                ],
                className="controls",
            ),
            html.Div(id="capacity-summary", role="status"),
            dcc.Graph(id="capacity-projection"),
            html.Div(id="capacity-backtest-summary", role="status"),
            dcc.Graph(id="capacity-backtest"),
            html.P(METHOD, className="method"),
        ]
    )


@secure_callback(
    Output("capacity-summary", "children"),
    Output("capacity-projection", "figure"),
    Input("capacity-study", "value"),
    Input("capacity-weeks", "value"),
    Input("capacity-readers", "value"),
    roles=ROLES,
)
def update(study_id: Any, weeks: Any, readers: Any) -> tuple[Any, ...]:
    if study_id is None:
        raise dash.exceptions.PreventUpdate
    weeks = min(max(int(weeks or 12), 1), 52)
    change = min(max(int(readers or 0), -50), 50)
    with read_session() as session:
        base, what_if = forecast.forecasts(
            session,
            current_scope(),
            int(study_id),
            weeks=weeks,
            reader_changes=(0, change),
        )
    return _summary(base, what_if, change), _projection(base, what_if, change)


# The back-test depends on the study alone, so changing the what-if skips it.
@secure_callback(
    Output("capacity-backtest-summary", "children"),
    Output("capacity-backtest", "figure"),
    Input("capacity-study", "value"),
    roles=ROLES,
)
def update_backtest(study_id: Any) -> tuple[Any, ...]:
    if study_id is None:
        raise dash.exceptions.PreventUpdate
    with read_session() as session:
        test = forecast.backtest(session, current_scope(), int(study_id))
    error = (
        "n/a"
        if test.mean_absolute_error is None
        else f"{test.mean_absolute_error:,.1f} cases"
    )
    summary = f"Back-test mean absolute error of the weekly backlog: {error}."
    return summary, _backtest_figure(test)


def _summary(
    base: forecast.Forecast, what_if: forecast.Forecast, change: int
) -> list[Any]:
    inputs = base.inputs

    def breach(result: forecast.Forecast) -> str:
        return str(result.breach_week) if result.breach_week else "none expected"

    return [
        html.Div(
            f"Open cases now: {inputs.open_cases:,}; {inputs.readers} trained "
            f"readers; capacity {inputs.cases_per_week:,.1f} cases/week; "
            f"SLA window {inputs.sla_days:.1f} days."
        ),
        html.Div(
            f"Expected breach week: {breach(base)}; with {change:+d} readers: "
            f"{breach(what_if)}."
        ),
    ]


def _projection(
    base: forecast.Forecast, what_if: forecast.Forecast, change: int
) -> go.Figure:
    fig = ui.figure("Projected backlog at each week end", "week starting", "cases")
    fig.add_trace(go.Bar(name="expected arrivals", x=base.weeks, y=base.arrivals))
    fig.add_trace(go.Scatter(name="backlog", x=base.weeks, y=base.backlog))
    fig.add_trace(
        go.Scatter(
            name=f"backlog with {change:+d} readers",
            x=what_if.weeks,
            y=what_if.backlog,
            line={"dash": "dash"},
        )
    )
    return fig


def _backtest_figure(test: forecast.Backtest) -> go.Figure:
    fig = ui.figure("Back-test: projected and real backlog", "week end", "cases")
    fig.add_trace(go.Scatter(name="real", x=test.weeks, y=test.actual))
    fig.add_trace(go.Scatter(name="projected", x=test.weeks, y=test.predicted))
    return fig
