"""Reader worklist: own open reads, RECIST 1.1 entry, signing and adjudication.

Blinding is enforced in `core.reads`: the worklist holds only the logged-in reader's
reads, and `read_view` raises for a read assigned to anyone else, which this page
turns into a 403 with no data. Nothing here shows the other read of a case, the
treatment arm or another site's reads. An adjudicator gets the two primary
assessments as "A" and "B" without reader names.
"""

from __future__ import annotations

import logging
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from core import accounts, reads, recist
from core.access import AccessDenied
from core.lifecycle import WorkflowError
from dashboard import components as ui
from dashboard import read_panels as panels
from dashboard import recist_form as form
from dashboard.access import secure_callback
from dashboard.context import current_user, local_time, read_session, runtime

log = logging.getLogger(__name__)

ROLES = ("reader",)
HIDDEN = {"display": "none"}
SHOWN: dict[str, str] = {}

dash.register_page(__name__, path="/reads", name="My reads", order=4, roles=ROLES)

WORKLIST_COLUMNS = [
    ui.column("read_id", "Read", type="numericColumn", width=100),
    ui.column("protocol_id", "Study"),
    ui.column("subject_code", "Subject"),
    ui.column("timepoint", "Timepoint"),
    ui.column("task", "Task", width=190),
    ui.column("state", "State"),
    ui.column("urgent", "Urgent", width=100),
    ui.column("due", "Due", width=250),
    ui.column("response", "Saved response"),
]


def layout(**_: Any) -> html.Div:
    return html.Div(
        [
            html.H2("My reads"),
            ui.refresh_interval("reads-interval"),
            dcc.Store(id="reads-marker"),
            html.H3("Open reads (work order: urgent, then baseline, then due time)"),
            ui.grid("reads-worklist", ui.fit_columns(WORKLIST_COLUMNS), height=280),
            html.Div(
                dcc.Dropdown(
                    id="reads-select",
                    placeholder="Open a read",
                    style={"width": "560px"},
                ),
                className="controls",
            ),
            html.Div(id="reads-summary", className="method"),
            html.Div(panels.entry_form(), id="reads-entry", style=HIDDEN),
            html.Div(panels.adjudication_form(), id="reads-adjudication", style=HIDDEN),
        ]
    )


ui.register_change_marker("reads", ROLES)


@secure_callback(
    Output(ui.grid_id("reads-worklist"), "rowData"),
    Output("reads-select", "options"),
    Input("reads-marker", "data"),
    Input("reads-save-message", "children"),
    Input("reads-sign-message", "children"),
    Input("reads-adjudication-message", "children"),
    State("reads-select", "value"),
    roles=ROLES,
)
def update_worklist(*args: Any) -> tuple[Any, ...]:
    selected = args[-1]
    with read_session() as session:
        rows = reads.worklist(session, current_user().id)
    for row in rows:
        row["task"] = panels.KIND_LABELS.get(row.pop("kind"), "")
        row["due"] = local_time(row.pop("due_at"))
        row["urgent"] = "yes" if row["urgent"] else ""
        row.pop("is_baseline")
    options = [
        {
            "label": f"Read {row['read_id']}: {row['protocol_id']} "
            f"{row['subject_code']} {row['timepoint']}, {row['task']}",
            "value": row["read_id"],
        }
        for row in rows
    ]
    if selected is not None and all(row["read_id"] != selected for row in rows):
        options += _closed_read_option(int(selected))
    return rows, options


def _closed_read_option(read_id: int) -> list[dict[str, Any]]:
    """Keep a read that left the worklist (it was just signed) open in the form.

    The dropdown drops a value missing from its options, which would hide the
    signature that was just recorded.
    """
    with read_session() as session:
        try:
            view = reads.read_view(session, read_id, user_id=current_user().id)
        except (PermissionError, LookupError):
            return []
    label = (
        f"Read {read_id}: {view['subject_code']} {view['timepoint']}, "
        f"{panels.KIND_LABELS.get(view['kind'], '')} ({view['state']})"
    )
    return [{"label": label, "value": read_id}]


def _load_view(read_id: int) -> dict[str, Any]:
    """Return the reader's view of a read, or raise AccessDenied (a 403).

    A read assigned to anyone else and a missing read both raise, so a forged
    request can neither see another read nor probe which read ids exist.
    """
    with read_session() as session:
        try:
            return reads.read_view(session, read_id, user_id=current_user().id)
        except (PermissionError, LookupError) as exc:
            raise AccessDenied(str(exc)) from None


@secure_callback(
    Output("reads-summary", "children"),
    Output("reads-save", "disabled"),
    Output("reads-sign", "disabled"),
    Output("reads-adjudicate", "disabled"),
    Input("reads-select", "value"),
    Input("reads-save-message", "children"),
    Input("reads-sign-message", "children"),
    Input("reads-adjudication-message", "children"),
    roles=ROLES,
)
def show_summary(read_id: Any, *_: Any) -> tuple[Any, ...]:
    if read_id is None:
        return "Choose a read to open it.", True, True, True
    view = _load_view(int(read_id))
    # A signed read is locked; the core rejects changes to it in any case.
    locked = view["state"] not in reads.OPEN_READ_STATES
    return panels.summary(view), locked, locked, locked


@secure_callback(
    Output("reads-entry", "style"),
    Output("reads-adjudication", "style"),
    Output("reads-candidates", "children"),
    Output("reads-choice", "options"),
    *(Output(component, prop) for component, prop in form.FORM_FIELDS),
    Input("reads-select", "value"),
    roles=ROLES,
)
def open_read(read_id: Any) -> tuple[Any, ...]:
    if read_id is None:
        return (HIDDEN, HIDDEN, [], [], *form.form_values(None))
    view = _load_view(int(read_id))
    if view["assessment"] is None and view["history"]:
        values = form.baseline_values(view["history"])
    else:
        values = form.form_values(view["assessment"])
    if view["kind"] == "adjudication":
        candidates = view.get("candidates", [])
        options = [
            {"label": f"Assessment {c['label']}", "value": c["read_id"]}
            for c in candidates
        ]
        cards = [panels.candidate_panel(c) for c in candidates]
        return (HIDDEN, SHOWN, cards, options, *values)
    return (SHOWN, HIDDEN, [], [], *values)


@secure_callback(
    Output("reads-save-message", "children"),
    Input("reads-save", "n_clicks"),
    State("reads-select", "value"),
    *(State(component, prop) for component, prop in form.FORM_FIELDS),
    roles=ROLES,
    prevent_initial_call=True,
)
def save(clicks: int, read_id: Any, *values: Any) -> str:
    if not clicks or read_id is None:
        raise dash.exceptions.PreventUpdate
    _load_view(int(read_id))
    rows = [
        form.TargetRow(*values[index : index + 3])
        for index in range(0, 3 * form.TARGET_ROWS, 3)
    ]
    try:
        data = form.assessment_from_form(rows, values[-2], values[-1])
        with runtime().sessions.begin() as session:
            reads.save_assessment(
                session, int(read_id), data, user_id=current_user().id
            )
    except form.FormError as exc:
        return f"Not saved: {exc}."
    except PermissionError as exc:
        raise AccessDenied(str(exc)) from None
    except (recist.AssessmentError, WorkflowError, LookupError) as exc:
        log.info("Assessment of read %s not saved: %s", read_id, exc)
        return f"Not saved: {exc}."
    view = _load_view(int(read_id))
    return f"Saved. {panels.response_text(view)}."


def _wrong_password(read_id: int) -> str:
    """Count a wrong signing password toward the account lock and say so."""
    user = current_user()
    log.warning(
        "Signature of read %s by %s rejected: wrong password", read_id, user.username
    )
    with runtime().sessions.begin() as session:
        locked = accounts.record_failed_signature(session, user.id)
    if locked:
        return (
            "Not signed: the password does not match, and the account is now "
            f"locked for {accounts.LOCK_MINUTES} minutes."
        )
    return "Not signed: the password does not match."


@secure_callback(
    Output("reads-sign-message", "children"),
    Output("reads-sign-password", "value"),
    Input("reads-sign", "n_clicks"),
    State("reads-select", "value"),
    State("reads-sign-password", "value"),
    roles=ROLES,
    prevent_initial_call=True,
)
def sign(clicks: int, read_id: Any, password: str | None) -> tuple[str, str]:
    if not clicks or read_id is None:
        raise dash.exceptions.PreventUpdate
    _load_view(int(read_id))
    if not password:
        return "Not signed: re-enter your password to sign.", ""
    user = current_user()
    try:
        with runtime().sessions.begin() as session:
            result = reads.sign(
                session, int(read_id), user_id=user.id, password=password
            )
    except reads.PasswordMismatch:
        return _wrong_password(int(read_id)), ""
    except reads.SignatureError as exc:
        log.warning("Signature of read %s rejected: %s", read_id, exc)
        return f"Not signed: {exc}.", ""
    except PermissionError as exc:
        raise AccessDenied(str(exc)) from None
    except (WorkflowError, LookupError) as exc:
        log.info("Read %s not signed: %s", read_id, exc)
        return f"Not signed: {exc}.", ""
    return f"Signed read {result.read_id}; the case is now {result.case_state}.", ""


@secure_callback(
    Output("reads-adjudication-message", "children"),
    Output("reads-adjudication-password", "value"),
    Input("reads-adjudicate", "n_clicks"),
    State("reads-select", "value"),
    State("reads-choice", "value"),
    State("reads-adjudication-reason", "value"),
    State("reads-adjudication-password", "value"),
    roles=ROLES,
    prevent_initial_call=True,
)
def adjudicate(
    clicks: int,
    read_id: Any,
    chosen_read_id: Any,
    reason: str | None,
    password: str | None,
) -> tuple[str, str]:
    if not clicks or read_id is None:
        raise dash.exceptions.PreventUpdate
    _load_view(int(read_id))
    if chosen_read_id is None:
        return "Not signed: choose assessment A or B.", ""
    if not (reason or "").strip():
        return "Not signed: the reason for the choice is missing.", ""
    if not password:
        return "Not signed: re-enter your password to sign.", ""
    user = current_user()
    try:
        with runtime().sessions.begin() as session:
            reads.adjudicate(
                session,
                int(read_id),
                user_id=user.id,
                password=password,
                chosen_read_id=int(chosen_read_id),
                reason=reason or "",
            )
    except reads.PasswordMismatch:
        return _wrong_password(int(read_id)), ""
    except reads.SignatureError as exc:
        log.warning("Signature of read %s rejected: %s", read_id, exc)
        return f"Not signed: {exc}.", ""
    except PermissionError as exc:
        raise AccessDenied(str(exc)) from None
    except (WorkflowError, LookupError) as exc:
        log.info("Adjudication read %s not signed: %s", read_id, exc)
        return f"Not signed: {exc}.", ""
    return f"Adjudicated read {int(read_id)}; the case is done.", ""
