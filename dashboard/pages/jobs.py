"""Jobs page: each periodic job's last successful run, with a stale-job warning."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, html

from core.jobstatus import STALE_AFTER_INTERVALS, job_health
from dashboard import components as ui
from dashboard.access import secure_callback
from dashboard.context import local_time, read_session, runtime
from jobs.scheduler import default_jobs

ROLES = ("admin", "leadership", "study_manager")

dash.register_page(__name__, path="/jobs", name="Jobs", order=7, roles=ROLES)

COLUMNS = [
    ui.column("job", "Job"),
    ui.number_column("interval_seconds", "Interval (s)"),
    ui.column("last_success", "Last successful run"),
    ui.column("status", "Status"),
]


def layout(**_: Any) -> html.Div:
    return html.Div(
        [
            html.H2("Jobs"),
            ui.refresh_interval("jobs-interval"),
            html.Div(id="jobs-warning", role="alert"),
            ui.grid("jobs", COLUMNS, height=480),
            html.P(
                f"A job is stale when its last successful run is older than "
                f"{STALE_AFTER_INTERVALS} of its intervals, or it has never "
                "succeeded. The jobs process runs separately from the dashboard.",
                className="method",
            ),
        ]
    )


@secure_callback(
    Output("jobs-warning", "children"),
    Output(ui.grid_id("jobs"), "rowData"),
    Input("jobs-interval", "n_intervals"),
    roles=ROLES,
)
def update(_: int) -> tuple[Any, ...]:
    intervals = {
        spec.name: spec.interval_seconds for spec in default_jobs(runtime().settings)
    }
    with read_session() as session:
        health = job_health(session, intervals, datetime.now(UTC))
    rows = [
        {
            "job": item.job,
            "interval_seconds": item.interval_seconds,
            "last_success": local_time(item.last_success) or "never",
            "status": "stale" if item.stale else "ok",
        }
        for item in health
    ]
    stale = [item.job for item in health if item.stale]
    if not stale:
        return "", rows
    warning = f"Stale jobs: {', '.join(stale)}. Check that the jobs process runs."
    return html.Strong(warning, className="warning"), rows
