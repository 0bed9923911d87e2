"""Shared page parts: data grids, chart layout and number formatting."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dash
import dash_ag_grid as dag
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from core import portfolio
from core.models import CASE_STATES
from dashboard.access import secure_callback
from dashboard.context import current_scope, read_session, runtime

RANGE_OPTIONS = [
    {"label": "Last 7 days", "value": 7},
    {"label": "Last 30 days", "value": 30},
    {"label": "Last 90 days", "value": 90},
    {"label": "Last 365 days", "value": 365},
]


def column(field: str, header: str, **options: Any) -> dict[str, Any]:
    return {"field": field, "headerName": header, **options}


def time_column(field: str, header: str, **options: Any) -> dict[str, Any]:
    """Return a column for local times, wide enough for the time zone name."""
    return column(field, header, minWidth=230, **options)


def number_column(
    field: str, header: str, digits: int = 0, **options: Any
) -> dict[str, Any]:
    formatter = f"params.value == null ? '' : d3.format(',.{digits}f')(params.value)"
    return column(
        field,
        header,
        type="numericColumn",
        filter="agNumberColumnFilter",
        valueFormatter={"function": formatter},
        **options,
    )


def id_column(field: str, header: str, **options: Any) -> dict[str, Any]:
    """Return a column of database ids: filtered as numbers, shown without commas."""
    return column(
        field,
        header,
        type="numericColumn",
        filter="agNumberColumnFilter",
        **options,
    )


def fit_columns(columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Let the columns without a fixed width share the grid's width."""
    return [c if "width" in c or "flex" in c else {**c, "flex": 1} for c in columns]


def grid_id(name: str) -> dict[str, str]:
    """Return the id of a grid; callbacks write to `Output(grid_id(name), ...)`."""
    return {"type": "grid", "name": name}


def grid(
    name: str,
    columns: list[dict[str, Any]],
    height: int = 360,
    *,
    selectable: bool = False,
) -> html.Div:
    """Return a sortable, filterable grid with a CSV export button.

    A selectable grid has a checkbox per row and keeps the selection across
    refreshes by the rows' `id` field; callbacks read `selectedRows`.
    """
    options: dict[str, Any] = {"animateRows": False, "pagination": True}
    extra: dict[str, Any] = {}
    if selectable:
        options["rowSelection"] = {"mode": "multiRow"}
        extra["getRowId"] = "params.data.id"
    return html.Div(
        [
            html.Button(
                "Export CSV",
                id={"type": "csv-export", "name": name},
                n_clicks=0,
                className="csv-button",
            ),
            dag.AgGrid(
                id=grid_id(name),
                columnDefs=columns,
                rowData=[],
                defaultColDef={"sortable": True, "filter": True, "resizable": True},
                dashGridOptions=options,
                csvExportParams={"fileName": f"{name}.csv"},
                style={"height": f"{height}px"},
                **extra,
            ),
        ],
        className="grid-block",
    )


def figure(title: str, x_title: str = "", y_title: str = "") -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
        height=340,
        template="plotly_white",
        legend={"orientation": "h", "y": -0.25},
    )
    # Every chart counts cases or hours, so the axis never needs negative values.
    fig.update_yaxes(rangemode="tozero")
    return fig


def register_change_marker(page: str, roles: Iterable[str]) -> None:
    """Register the callback that moves `<page>-marker` when the user's data changes.

    It runs on each `<page>-interval` tick and leaves the marker as it is when
    nothing in the user's scope changed, so the page's heavy callbacks, which take
    the marker as an input, run only after a change.
    """

    @secure_callback(
        Output(f"{page}-marker", "data"),
        Input(f"{page}-interval", "n_intervals"),
        State(f"{page}-marker", "data"),
        roles=roles,
    )
    def refresh_marker(_: int, previous: str | None) -> Any:
        with read_session() as session:
            marker = portfolio.change_marker(session, current_scope())
        return dash.no_update if marker == previous else marker


def refresh_interval(interval_id: str) -> dcc.Interval:
    seconds = runtime().settings.refresh_seconds
    return dcc.Interval(id=interval_id, interval=seconds * 1000, n_intervals=0)


SITE_COLUMNS = [
    column("site_code", "Site"),
    column("name", "Name"),
    number_column("arrivals", "Arrivals in range"),
    number_column("qc_first_pass_pct", "QC first pass (%)", 1),
    number_column("open_queries", "Open queries"),
    number_column("oldest_query_days", "Oldest query (d)", 1),
    number_column("late_timepoints", "Late timepoints"),
    number_column("due_timepoints", "Timepoints in window"),
]


# One colour per case state on every chart, so a state keeps its colour whichever
# states a study happens to have (Plotly's default palette, in state order).
STATE_COLORS = dict(
    zip(
        CASE_STATES,
        (
            "#636efa",
            "#ef553b",
            "#00cc96",
            "#ab63fa",
            "#ffa15a",
            "#19d3f3",
            "#ff6692",
            "#b6e880",
        ),
        strict=False,
    )
)


def pipeline_figure(rows: list[dict[str, Any]]) -> go.Figure:
    fig = figure("Cases by timepoint and state", "timepoint", "cases")
    timepoints = list(dict.fromkeys(row["timepoint"] for row in rows))
    for state in CASE_STATES:
        counts = {r["timepoint"]: r["cases"] for r in rows if r["state"] == state}
        if counts:
            values = [counts.get(point, 0) for point in timepoints]
            fig.add_trace(
                go.Bar(
                    name=state,
                    x=timepoints,
                    y=values,
                    marker_color=STATE_COLORS.get(state),
                )
            )
    fig.update_layout(barmode="stack")
    return fig
