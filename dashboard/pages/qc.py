"""QC review page: review queue, pass or fail, open queries, first-pass rates."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from core import qc_review
from core.lifecycle import WorkflowError
from core.qc_review import QC_ROLES
from dashboard import components as ui
from dashboard.access import secure_callback
from dashboard.context import current_scope, local_time, read_session, runtime

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/qc", name="QC review", order=3, roles=QC_ROLES)


# Ids read better without the thousands separator of `ui.number_column`.
def _id_column(field: str, header: str) -> dict[str, Any]:
    return ui.column(field, header, type="numericColumn", width=100)


def _time_column(field: str, header: str) -> dict[str, Any]:
    return ui.column(field, header, width=190)


QUEUE_COLUMNS = [
    _id_column("case_id", "Case"),
    ui.column("protocol_id", "Study"),
    ui.column("site_code", "Site"),
    ui.column("subject_code", "Subject"),
    ui.column("timepoint", "Timepoint"),
    _time_column("waiting_since", "In QC since"),
    _time_column("due", "Case due"),
    ui.number_column("failed_checks", "Failed checks"),
    ui.column("blocking_failures", "Blocking failures", flex=2),
]
CHECK_COLUMNS = [
    ui.column("check", "Check or ingest finding"),
    ui.column("result", "Result", width=110),
    ui.column("blocking", "Blocking", width=110),
    ui.column("detail", "Detail", flex=2, wrapText=True, autoHeight=True),
]
QUERY_COLUMNS = [
    _id_column("query_id", "Query"),
    _id_column("case_id", "Case"),
    ui.column("protocol_id", "Study"),
    ui.column("site_code", "Site"),
    ui.column("subject_code", "Subject"),
    ui.column("timepoint", "Timepoint"),
    ui.column("reason_code", "Reason"),
    ui.column("text", "Note", flex=2, wrapText=True, autoHeight=True),
    _time_column("opened", "Opened"),
    ui.number_column("age_days", "Age (d)", 1),
]
FIRST_PASS_COLUMNS = [
    ui.column("protocol_id", "Study"),
    ui.column("site", "Site"),
    ui.number_column("decided", "Cases decided"),
    ui.number_column("passed_first_time", "Passed first time"),
    ui.number_column("first_pass_pct", "First-pass rate (%)", 1),
]
ACTION_MESSAGES = ("qc-decision-message", "qc-resolve-message")


def layout(**_: Any) -> html.Div:
    return html.Div(
        [
            html.H2("QC review"),
            ui.refresh_interval("qc-interval"),
            dcc.Store(id="qc-marker"),
            html.H3("Cases waiting for review (oldest first)"),
            ui.grid("qc-queue", ui.fit_columns(QUEUE_COLUMNS), height=300),
            html.H3("Review a case"),
            html.Div(
                dcc.Dropdown(
                    id="qc-case",
                    placeholder="Choose a case from the queue",
                    style={"width": "560px"},
                ),
                className="controls",
            ),
            html.Div(id="qc-case-summary"),
            ui.grid("qc-checks", ui.fit_columns(CHECK_COLUMNS), height=340),
            _decision_form(),
            html.H3("Open queries"),
            ui.grid("qc-queries", ui.fit_columns(QUERY_COLUMNS), height=260),
            _resolve_form(),
            html.H3("QC first-pass rate"),
            html.P(
                "A case counts once QC has passed it or opened a query on it; it "
                "passed first time when it never had a query.",
                className="method",
            ),
            ui.grid("qc-first-pass", ui.fit_columns(FIRST_PASS_COLUMNS), height=300),
        ]
    )


def _decision_form() -> html.Div:
    return html.Div(
        [
            html.Div(
                [
                    dcc.Input(
                        id="qc-override-reason",
                        placeholder="Reason (needed to pass over blocking failures)",
                        style={"width": "400px"},
                    ),
                    html.Button("Pass", id="qc-pass", n_clicks=0),
                ],
                className="controls",
            ),
            html.Div(
                [
                    dcc.Dropdown(id="qc-fail-reason", placeholder="Failure reason"),
                    dcc.Input(
                        id="qc-fail-note",
                        placeholder="Note to the site",
                        style={"width": "400px"},
                    ),
                    html.Button("Fail and open query", id="qc-fail", n_clicks=0),
                ],
                className="controls",
            ),
            html.Div(id="qc-decision-message", role="status"),
        ]
    )


def _resolve_form() -> html.Div:
    return html.Div(
        [
            dcc.Input(
                id="qc-query-id",
                type="number",
                placeholder="Query id",
                style={"width": "140px"},
            ),
            dcc.Input(
                id="qc-resolution",
                placeholder="Resolution (required)",
                style={"width": "400px"},
            ),
            html.Button("Resolve", id="qc-resolve", n_clicks=0),
            html.Span(id="qc-resolve-message", role="status"),
        ],
        className="controls",
    )


ui.register_change_marker("qc", QC_ROLES)


@secure_callback(
    Output(ui.grid_id("qc-queue"), "rowData"),
    Output("qc-case", "options"),
    Output(ui.grid_id("qc-queries"), "rowData"),
    Output(ui.grid_id("qc-first-pass"), "rowData"),
    Input("qc-marker", "data"),
    *(Input(name, "children") for name in ACTION_MESSAGES),
    roles=QC_ROLES,
)
def update_lists(*_: Any) -> tuple[Any, ...]:
    scope = current_scope()
    with read_session() as session:
        queue = qc_review.review_queue(session, scope)
        queries = qc_review.open_queries(session, scope, now=datetime.now(UTC))
        rates = qc_review.first_pass_rates(session, scope)
    for row in queue:
        row["waiting_since"] = local_time(row["waiting_since"])
        row["due"] = local_time(row.pop("due_at"))
    options = [
        {
            "label": f"Case {row['case_id']}: {row['protocol_id']} {row['site_code']} "
            f"{row['subject_code']} {row['timepoint']}",
            "value": row["case_id"],
        }
        for row in queue
    ]
    for row in queries:
        row["opened"] = local_time(row.pop("opened_at"))
        row["age_days"] = row.pop("age_hours") / 24
    for row in rates:
        row["site"] = row.pop("site_code") or "All sites"
    return queue, options, queries, rates


@secure_callback(
    Output("qc-case-summary", "children"),
    Output(ui.grid_id("qc-checks"), "rowData"),
    Output("qc-fail-reason", "options"),
    Input("qc-case", "value"),
    roles=QC_ROLES,
)
def show_case(case_id: Any) -> tuple[Any, ...]:
    if case_id is None:
        return "Choose a case to see its automated checks.", [], []
    scope = current_scope()
    with read_session() as session:
        try:
            checks = qc_review.case_checks(session, scope, int(case_id))
            reasons = qc_review.failure_reasons(session, scope, int(case_id))
        except LookupError as exc:
            return f"Not found: {exc}.", [], []
    rows = [
        {
            "check": row["check"],
            "result": "passed" if row["passed"] else "failed",
            "blocking": "yes" if row["blocking"] and not row["passed"] else "",
            "detail": row["detail"],
        }
        for row in checks
    ]
    failed = sum(1 for row in checks if not row["passed"])
    run_at = local_time(checks[0]["run_at"]) if checks else "never"
    summary = (
        f"Case {int(case_id)}: {len(checks)} checks in the automated run of {run_at}, "
        f"{failed} failed."
    )
    return summary, rows, [{"label": r, "value": r} for r in reasons]


@secure_callback(
    Output("qc-decision-message", "children"),
    Input("qc-pass", "n_clicks"),
    Input("qc-fail", "n_clicks"),
    State("qc-case", "value"),
    State("qc-override-reason", "value"),
    State("qc-fail-reason", "value"),
    State("qc-fail-note", "value"),
    roles=QC_ROLES,
    prevent_initial_call=True,
)
def decide(
    pass_clicks: int,
    fail_clicks: int,
    case_id: Any,
    override_reason: str | None,
    reason_code: str | None,
    note: str | None,
) -> str:
    clicked = dash.ctx.triggered_id
    if clicked not in ("qc-pass", "qc-fail") or not (pass_clicks or fail_clicks):
        raise dash.exceptions.PreventUpdate
    if case_id is None:
        return "Choose a case from the queue first."
    if clicked == "qc-fail" and not reason_code:
        return "Not failed: choose a failure reason."
    scope = current_scope()
    try:
        with runtime().sessions.begin() as session:
            if clicked == "qc-pass":
                read_ids = qc_review.pass_case(
                    session, scope, int(case_id), (override_reason or "").strip()
                )
            else:
                query_id = qc_review.fail_case(
                    session, scope, int(case_id), str(reason_code), note or ""
                )
    except (WorkflowError, LookupError) as exc:
        log.info("QC decision on case %s rejected: %s", case_id, exc)
        return f"Case {int(case_id)} not changed: {exc}."
    if clicked == "qc-pass":
        return f"Case {int(case_id)} passed QC; created {len(read_ids)} read tasks."
    return f"Case {int(case_id)} failed QC; query {query_id} opened to the site."


@secure_callback(
    Output("qc-resolve-message", "children"),
    Input("qc-resolve", "n_clicks"),
    State("qc-query-id", "value"),
    State("qc-resolution", "value"),
    roles=QC_ROLES,
    prevent_initial_call=True,
)
def resolve(clicks: int, query_id: Any, resolution: str | None) -> str:
    if not clicks:
        raise dash.exceptions.PreventUpdate
    if query_id is None:
        return "Enter the id of the query to resolve."
    try:
        with runtime().sessions.begin() as session:
            qc_review.resolve_query(
                session, current_scope(), int(query_id), resolution or ""
            )
    except (WorkflowError, LookupError) as exc:
        log.info("Query %s not resolved: %s", query_id, exc)
        return f"Query {int(query_id)} not resolved: {exc}."
    return f"Query {int(query_id)} resolved; its case is back in received."
