"""The Dash app factory: Flask server, login, request guard and the page shell."""

from __future__ import annotations

import logging
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import dash
import flask
import flask_login
from dash import MATCH, Input, Output, dcc, html
from werkzeug.middleware.proxy_fix import ProxyFix

from core.runtime import Runtime
from dashboard import access, auth
from dashboard.context import RUNTIME_KEY, current_user

log = logging.getLogger(__name__)

PAGES_FOLDER = Path(__file__).resolve().parent / "pages"


def secret_key(runtime: Runtime) -> str:
    """Return the configured key, or one kept in the data folder for every worker."""
    if runtime.settings.secret_key:
        return runtime.settings.secret_key
    path = runtime.settings.data_dir / "web-secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        log.info("Created a session secret key in %s", path)
    return path.read_text().strip()


def create_server(runtime: Runtime) -> flask.Flask:
    server = flask.Flask(__name__)
    server.config.update(
        SECRET_KEY=secret_key(runtime),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    server.extensions[RUNTIME_KEY] = runtime
    # Trust one proxy's X-Forwarded-For, -Proto, -Host and -Prefix headers.
    server.wsgi_app = ProxyFix(  # type: ignore[method-assign]
        server.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1
    )
    server.before_request(_start_timer)
    server.after_request(_add_server_timing)
    auth.init_login(server)
    return server


def _start_timer() -> None:
    flask.g.request_started = time.perf_counter()


def _add_server_timing(response: flask.Response) -> flask.Response:
    """Report the time spent in this process, for browsers' tools and the benchmark."""
    started = flask.g.get("request_started")
    if started is not None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.2f}"
    return response


def create_app(runtime: Runtime) -> dash.Dash:
    """Build the Dash app with its pages; the caller serves `app.server`."""
    server = create_server(runtime)
    prefix = os.environ.get("IMAGINGOPS_WEB_PREFIX", "").rstrip("/")
    app = dash.Dash(
        __name__,
        server=server,
        use_pages=True,
        pages_folder=str(PAGES_FOLDER),
        # Page layouts need a logged-in user, so Dash must not call them up front
        # to validate callbacks.
        suppress_callback_exceptions=True,
        requests_pathname_prefix=f"{prefix}/",
        routes_pathname_prefix="/",
        title="ImagingOps",
        update_title=None,
        compress=False,
    )
    app.layout = shell
    # Runs in the browser only, so it needs no server-side role check.
    app.clientside_callback(
        "function (clicks) { return clicks > 0; }",
        Output({"type": "grid", "name": MATCH}, "exportDataAsCsv"),
        Input({"type": "csv-export", "name": MATCH}, "n_clicks"),
        prevent_initial_call=True,
    )
    server.extensions["imagingops.dash"] = app
    _claim_page_callbacks(app)
    return app


def _claim_page_callbacks(app: dash.Dash) -> None:
    """Move the pages' `dash.callback` registrations into this app now.

    Dash does this on the app's first request; doing it here instead ties the
    callbacks of the page modules just imported to this app, so a second app built
    in the same process (as tests do) gets its own copy.
    """
    with app.server.test_request_context():
        app._setup_server()


def shell() -> Any:
    """Return the page frame: navigation for the user's role and the page container."""
    if not flask.has_request_context() or not flask_login.current_user.is_authenticated:
        return html.Div(dash.page_container)
    user = current_user()
    links = [
        dcc.Link(page["name"], href=page["relative_path"], className="nav-link")
        for page in access.pages_for_role(user.role)
    ]
    logout = html.Form(
        [
            dcc.Input(type="hidden", name="csrf_token", value=auth.csrf_token()),
            html.Button("Log out", type="submit", id="logout-button"),
        ],
        method="POST",
        action=flask.request.script_root + "/logout",
        className="logout",
    )
    header = html.Header(
        [
            html.Strong("ImagingOps", className="brand"),
            html.Nav(links),
            html.Span(f"{user.display_name} ({user.role})", className="who"),
            logout,
        ],
        className="topbar",
    )
    return html.Div([header, html.Main(dash.page_container)])
