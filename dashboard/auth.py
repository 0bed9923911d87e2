"""Login, logout and the request guard that every route and callback passes through.

- Unauthenticated requests to Dash's endpoints (`/_dash-*`, `/_reload-hash`) get a
  401 JSON response; other requests are redirected to the login page.
- A page or callback outside the user's role gets 403; see `dashboard.access`.
- State-changing requests carry a CSRF token: the login and logout forms in a
  hidden field, Dash callbacks in the `X-CSRFToken` header that the Dash renderer
  copies from the `_csrf_token` cookie (double-submit against the session's token).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

import flask
import flask_login
from flask.sessions import SecureCookieSessionInterface

from core import accounts, audit
from core.access import AccessDenied, granted_study_ids
from core.models import User
from dashboard import access
from dashboard.context import WebUser, current_user, runtime

log = logging.getLogger(__name__)

CSRF_COOKIE = "_csrf_token"
CSRF_HEADER = "X-CSRFToken"
DASH_API_PREFIXES = ("/_dash-", "/_reload-hash")
PUBLIC_PATHS = ("/login", "/_favicon.ico")
PUBLIC_PREFIXES = ("/assets/",)
ROUTER_OUTPUT = "_pages_content"

bp = flask.Blueprint("auth", __name__)


class SessionInterface(SecureCookieSessionInterface):
    """Set the session cookie's Secure flag whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: flask.Flask) -> bool:
        return flask.request.is_secure or bool(app.config["SESSION_COOKIE_SECURE"])


def init_login(server: flask.Flask) -> None:
    manager = flask_login.LoginManager()
    manager.session_protection = "strong"
    manager.user_loader(load_user)
    manager.init_app(server)
    server.session_interface = SessionInterface()
    server.register_blueprint(bp)
    server.before_request(guard)
    server.after_request(set_csrf_cookie)
    server.register_error_handler(AccessDenied, access_denied)
    server.register_error_handler(ValueError, invalid_callback_value)
    server.register_error_handler(TypeError, invalid_callback_value)


def load_user(user_id: str) -> WebUser | None:
    with runtime().sessions() as session:
        user = session.get(User, int(user_id))
        if user is None or not user.active:
            return None
        return WebUser(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            timezone=user.timezone,
            study_ids=granted_study_ids(session, user.id),
        )


# --- CSRF -----------------------------------------------------------------------


def csrf_token() -> str:
    token = flask.session.get("csrf_token")
    if not token:
        token = secrets.token_urlsafe(32)
        flask.session["csrf_token"] = token
    return str(token)


def _csrf_ok(submitted: str | None) -> bool:
    expected = flask.session.get("csrf_token")
    return bool(expected and submitted and hmac.compare_digest(expected, submitted))


def set_csrf_cookie(response: flask.Response) -> flask.Response:
    if flask_login.current_user.is_authenticated:
        response.set_cookie(
            CSRF_COOKIE,
            csrf_token(),
            samesite="Strict",
            secure=flask.request.is_secure,
            path=flask.request.script_root or "/",
        )
    return response


# --- Guard ----------------------------------------------------------------------


def _is_dash_api(path: str) -> bool:
    return path.startswith(DASH_API_PREFIXES)


def guard() -> Any:
    """Reject requests without a login, outside the role, or without a CSRF token."""
    path = flask.request.path
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return None
    if not flask_login.current_user.is_authenticated:
        if _is_dash_api(path) or path.startswith("/_dash-component-suites/"):
            return flask.jsonify(error="login required"), 401
        return flask.redirect(flask.url_for("auth.login", next=flask.request.full_path))
    if path.startswith("/_dash-component-suites/") or path in ("/_dash-layout",):
        return None
    if path == "/_dash-update-component":
        return _guard_callback()
    if _is_dash_api(path):
        return None
    return _guard_page(path)


def _guard_page(path: str) -> Any:
    page = access.page_for_path(path)
    if page is None:
        return None  # Dash answers unknown paths with its 404 page.
    if not access.page_allowed(page, current_user().role):
        return deny(f"page {path}")
    return None


def _guard_callback() -> Any:
    if not _csrf_ok(flask.request.headers.get(CSRF_HEADER)):
        return deny("callback without a valid CSRF token")
    body = flask.request.get_json(silent=True) or {}
    outputs = body.get("outputs")
    role = current_user().role
    if _is_router(outputs):
        pathname = _input_value(body, "_pages_location", "pathname") or "/"
        dash_app = flask.current_app.extensions["imagingops.dash"]
        return _guard_page(dash_app.strip_relative_path(pathname) or "/")
    if not access.callback_allowed(outputs, role):
        return deny(f"callback {body.get('output')}")
    return None


def _is_router(outputs: Any) -> bool:
    items = outputs if isinstance(outputs, list) else [outputs]
    return any(isinstance(i, dict) and i.get("id") == ROUTER_OUTPUT for i in items)


def _input_value(body: dict[str, Any], component_id: str, prop: str) -> Any:
    for item in body.get("inputs", []):
        if isinstance(item, dict) and item.get("id") == component_id:
            if item.get("property") == prop:
                return item.get("value")
    return None


def deny(what: str) -> tuple[flask.Response, int]:
    """Log and audit a permission denial and return a 403 JSON response."""
    user = current_user()
    log.warning("Denied %s to user %s (role %s)", what, user.username, user.role)
    with runtime().sessions.begin() as session:
        audit.record(
            session,
            actor=user.username,
            action="access.denied",
            entity_type="user",
            entity_id=user.id,
            new={"request": what[:200], "path": flask.request.path},
        )
    return flask.jsonify(error="forbidden"), 403


def access_denied(error: AccessDenied) -> tuple[flask.Response, int]:
    return deny(str(error))


def invalid_callback_value(error: Exception) -> tuple[flask.Response, int]:
    """Return a 400 naming the inputs when a callback cannot use a posted value.

    The page's own widgets send valid values, so this is a forged or stale request,
    for example a case id "abc". Elsewhere the error is a bug and stays a 500.
    """
    if not flask.request.path.endswith("/_dash-update-component"):
        log.error("Request to %s failed", flask.request.path, exc_info=error)
        return flask.jsonify(error="internal error"), 500
    body = flask.request.get_json(silent=True) or {}
    items = [*body.get("inputs", []), *body.get("state", [])]
    fields = [
        f"{item.get('id')}.{item.get('property')}"
        for item in items
        if isinstance(item, dict)
    ]
    log.warning(
        "Rejected callback for %s: invalid value in %s",
        body.get("output"),
        fields,
        exc_info=error,
    )
    message = f"invalid value in {', '.join(fields) or 'the request'}: {error}"
    return flask.jsonify(error=message), 400


# --- Login and logout -----------------------------------------------------------


def safe_next(target: str | None) -> str:
    """Return `target` if it is a same-site path, else the site root."""
    root = flask.request.script_root + "/"
    if not target:
        return root
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/"):
        return root
    if target.startswith("//") or "\\" in target:
        return root
    return flask.request.script_root + target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    message = ""
    if flask.request.method == "POST":
        if not _csrf_ok(flask.request.form.get("csrf_token")):
            message = "The form expired. Please sign in again."
        else:
            user, message = _check_password(
                flask.request.form.get("username", ""),
                flask.request.form.get("password", ""),
            )
            if user is not None:
                flask.session.clear()
                flask_login.login_user(user)
                csrf_token()
                return flask.redirect(safe_next(flask.request.args.get("next")))
    html = flask.render_template_string(
        LOGIN_TEMPLATE, message=message, csrf_token=csrf_token()
    )
    return html, (401 if message else 200)


LOGIN_MESSAGES = {
    "invalid": "Invalid username or password.",
    "locked": "Too many failed logins: the account is locked for "
    f"{accounts.LOCK_MINUTES} minutes.",
    "inactive": "This account is disabled.",
}


def _check_password(username: str, password: str) -> tuple[WebUser | None, str]:
    with runtime().sessions.begin() as session:
        result = accounts.authenticate(session, username.strip(), password)
        if result.user is None:
            return None, LOGIN_MESSAGES[result.reason]
        user_id = result.user.id
    return load_user(str(user_id)), ""


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    if not _csrf_ok(flask.request.form.get("csrf_token")):
        return flask.jsonify(error="invalid CSRF token"), 403
    flask_login.logout_user()
    flask.session.clear()
    response = flask.redirect(flask.url_for("auth.login"))
    response.delete_cookie(CSRF_COOKIE, path=flask.request.script_root or "/")
    return response


LOGIN_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - ImagingOps</title>
<style>
body { font-family: system-ui, sans-serif; background: #f3f5f8; }
form { max-width: 320px; margin: 12vh auto; background: #fff; padding: 2em;
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.15); }
label { display: block; margin-top: 1em; }
input { width: 100%; padding: .5em; box-sizing: border-box; }
button { margin-top: 1.5em; width: 100%; padding: .6em; }
.error { color: #b00020; }
</style></head>
<body><form method="post">
<h1>ImagingOps</h1>
{% if message %}<p class="error" role="alert">{{ message }}</p>{% endif %}
<input type="hidden" name="csrf_token" value="{{ csrf_token }}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password"
       autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form></body></html>
"""
