"""Parts of the reader page: the entry and adjudication forms and the read summary.

Everything here renders data that `core.reads.read_view` already limited to what the
logged-in reader may see. The page module `dashboard.pages.reads` owns the callbacks.
"""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from core import reads, recist
from dashboard import recist_form as form
from dashboard.context import local_time

KIND_LABELS = {
    "primary": "R1 (primary read)",
    "secondary": "R2 (secondary read)",
    "adjudication": "Adjudication",
    "reread": "Re-read",
}


def target_row(row: int) -> html.Tr:
    return html.Tr(
        [
            html.Td(str(row)),
            html.Td(
                dcc.Input(
                    id=form.field_id(row, "site"),
                    placeholder="Site, e.g. liver segment 4",
                    style={"width": "260px"},
                )
            ),
            html.Td(
                dcc.Input(
                    id=form.field_id(row, "mm"),
                    type="number",
                    placeholder="mm",
                    style={"width": "120px"},
                )
            ),
            html.Td(
                dcc.Checklist(
                    id=form.field_id(row, "flags"),
                    options=form.FLAG_OPTIONS,
                    value=[],
                    inline=True,
                )
            ),
        ]
    )


def entry_form() -> list[Any]:
    header = html.Tr(
        [
            html.Th("Target lesion"),
            html.Th("Site"),
            html.Th("Longest diameter, or short axis of a node (mm)"),
            html.Th("Marks"),
        ]
    )
    rows = [target_row(row) for row in range(1, form.TARGET_ROWS + 1)]
    return [
        html.H3("RECIST 1.1 assessment"),
        html.Table([html.Thead(header), html.Tbody(rows)], className="lesions"),
        html.Div(
            [
                html.Label("Non-target lesions", htmlFor="reads-non-target"),
                dcc.Dropdown(
                    id="reads-non-target",
                    options=form.NON_TARGET_OPTIONS,
                    clearable=False,
                ),
                html.Label("New lesions", htmlFor="reads-new-lesions"),
                dcc.Dropdown(
                    id="reads-new-lesions",
                    options=form.NEW_LESION_OPTIONS,
                    clearable=False,
                ),
                html.Button("Save assessment", id="reads-save", n_clicks=0),
            ],
            className="controls",
        ),
        html.Div(id="reads-save-message", role="status"),
        html.H3("Sign"),
        html.P(f"Signature meaning: {reads.READ_MEANING}."),
        html.Div(
            [
                dcc.Input(
                    id="reads-sign-password",
                    type="password",
                    placeholder="Re-enter your password",
                    autoComplete="current-password",
                    style={"width": "300px"},
                ),
                html.Button("Sign and lock", id="reads-sign", n_clicks=0),
            ],
            className="controls",
        ),
        html.Div(id="reads-sign-message", role="status"),
    ]


def adjudication_form() -> list[Any]:
    return [
        html.H3("Adjudication: choose one assessment"),
        html.Div(id="reads-candidates", className="charts"),
        html.Div(
            [
                dcc.RadioItems(id="reads-choice", options=[], inline=True),
                dcc.Input(
                    id="reads-adjudication-reason",
                    placeholder="Reason for the choice (required)",
                    style={"width": "400px"},
                ),
            ],
            className="controls",
        ),
        html.P(f"Signature meaning: {reads.ADJUDICATION_MEANING}."),
        html.Div(
            [
                dcc.Input(
                    id="reads-adjudication-password",
                    type="password",
                    placeholder="Re-enter your password",
                    autoComplete="current-password",
                    style={"width": "300px"},
                ),
                html.Button("Choose and sign", id="reads-adjudicate", n_clicks=0),
            ],
            className="controls",
        ),
        html.Div(id="reads-adjudication-message", role="status"),
    ]


def summary(view: dict[str, Any]) -> list[Any]:
    lines = [
        html.Strong(
            f"Read {view['read_id']}: subject {view['subject_code']}, "
            f"timepoint {view['timepoint']}, {KIND_LABELS.get(view['kind'], '')}"
        ),
        html.Div(f"State: {view['state']}"),
    ]
    history = view["history"]
    if history:
        lines.append(html.Div(history_text(history)))
    if view["kind"] != "adjudication" and view["assessment"]:
        lines.append(html.Div(response_text(view)))
    if view["signed_at"] is not None:
        lines.append(
            html.Div(
                f"Signed by {view['signature_name']} at "
                f"{local_time(view['signed_at'], '%Y-%m-%d %H:%M:%S')}; meaning: "
                f"{view['signature_meaning']}"
            )
        )
    return lines


def history_text(history: dict[str, Any]) -> str:
    def mm(value: float | None) -> str:
        return "not evaluable" if value is None else f"{value:g} mm"

    sites = ", ".join(t["site"] for t in history["baseline_targets"]) or "none"
    baseline = mm(history["baseline_sum"])
    nadir = mm(history["nadir_sum"])
    return (
        f"Earlier signed timepoints of this read track: baseline sum {baseline}, "
        f"nadir {nadir}. Baseline target lesions: {sites}."
    )


def response_text(view: dict[str, Any]) -> str:
    assessment = recist.parse_assessment(view["assessment"])
    total = recist.sum_of_diameters(assessment.targets)
    sum_text = "not evaluable" if total is None else f"{total:g} mm"
    if view["response"] is None:
        response = "none at baseline (RECIST 1.1 records baseline measurements only)"
    else:
        response = view["response"]
    return f"Sum of diameters {sum_text}; timepoint response: {response}"


def candidate_panel(candidate: dict[str, Any]) -> html.Div:
    """Render one primary assessment for the adjudicator, without its reader."""
    assessment = candidate["assessment"] or {}
    rows = [
        html.Tr(
            [
                html.Td(lesion["site"]),
                html.Td(lesion_size(lesion)),
                html.Td("node" if lesion.get("is_node") else ""),
            ]
        )
        for lesion in assessment.get("targets", [])
    ]
    header = html.Tr([html.Th("Site"), html.Th("Size (mm)"), html.Th("")])
    return html.Div(
        [
            html.H4(f"Assessment {candidate['label']}"),
            html.Table([html.Thead(header), html.Tbody(rows)], className="lesions"),
            html.Div(f"Non-target lesions: {assessment.get('non_target', '')}"),
            html.Div(f"New lesions: {assessment.get('new_lesions', '')}"),
            html.Strong(f"Timepoint response: {candidate['response'] or 'baseline'}"),
        ],
        className="card",
    )


def lesion_size(lesion: dict[str, Any]) -> str:
    if lesion.get("too_small"):
        return "too small (5)"
    if lesion.get("diameter_mm") is None:
        return "not evaluated"
    return f"{lesion['diameter_mm']:g}"
