"""Login is enforced by the Flask server for pages and the Dash callback endpoint."""

from __future__ import annotations

import logging

import flask
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core import accounts
from core.models import AuditEntry
from tests.dashboard.conftest import World, callback_body, csrf_header, login
from tests.web_factories import PASSWORD

MARKER_CALLBACK = callback_body(
    [("portfolio-marker", "data")],
    [("portfolio-interval", "n_intervals", 0)],
    [("portfolio-marker", "data", None)],
)


def test_page_redirects_to_login(server: flask.Flask, world: World) -> None:
    response = server.test_client().get("/portfolio")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/portfolio")


def test_callback_without_login_is_401(server: flask.Flask, world: World) -> None:
    response = server.test_client().post(
        "/_dash-update-component", json=MARKER_CALLBACK
    )
    assert response.status_code == 401
    assert response.get_json() == {"error": "login required"}


def test_layout_without_login_is_401(server: flask.Flask, world: World) -> None:
    assert server.test_client().get("/_dash-layout").status_code == 401


def test_login_then_callback_answers(server: flask.Flask, world: World) -> None:
    client = server.test_client()
    assert login(client, "leader") == 302
    response = client.post(
        "/_dash-update-component", json=MARKER_CALLBACK, headers=csrf_header(client)
    )
    assert response.status_code == 200
    assert "portfolio-marker" in response.get_json()["response"]


def test_callback_without_csrf_token_is_403(server: flask.Flask, world: World) -> None:
    client = server.test_client()
    login(client, "leader")
    response = client.post("/_dash-update-component", json=MARKER_CALLBACK)
    assert response.status_code == 403


def test_wrong_password_is_rejected(server: flask.Flask, world: World) -> None:
    client = server.test_client()
    assert login(client, "leader", "wrong password") == 401
    assert client.get("/portfolio").status_code == 302


def test_login_next_stays_on_site(server: flask.Flask, world: World) -> None:
    targets = {
        "/portfolio": "/portfolio",
        "https://evil.example/": "/",
        "//evil.example/x": "/",
        "/\\evil.example": "/",
    }
    for target, expected in targets.items():
        client = server.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        response = client.post(
            f"/login?next={target}",
            data={
                "username": "leader",
                "password": "correct horse battery",
                "csrf_token": token,
            },
        )
        assert response.headers["Location"] == expected, target


def test_login_form_needs_csrf_token(server: flask.Flask, world: World) -> None:
    client = server.test_client()
    client.get("/login")
    response = client.post(
        "/login", data={"username": "leader", "password": "correct horse battery"}
    )
    assert response.status_code == 401
    assert client.get("/portfolio").status_code == 302


def test_session_cookie_flags(server: flask.Flask, world: World) -> None:
    client = server.test_client()
    page = client.get("/login", base_url="https://example.test")
    cookies = page.headers.getlist("Set-Cookie")
    cookie = next(value for value in cookies if value.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie


def test_prefix_from_proxy_reaches_redirects(server: flask.Flask, world: World) -> None:
    response = server.test_client().get(
        "/portfolio", headers={"X-Forwarded-Prefix": "/imaging"}
    )
    assert response.headers["Location"].startswith("/imaging/login?next=")


def test_logout_ends_session(server: flask.Flask, world: World) -> None:
    client = server.test_client()
    login(client, "leader")
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/portfolio").status_code == 302


def test_logins_are_audited(
    server: flask.Flask, world: World, sessions: sessionmaker[Session]
) -> None:
    client = server.test_client()
    login(client, "leader", "wrong password")
    login(client, "leader")
    with sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.action.like("login.%"))
        ).all()
        denied = session.scalar(
            select(func.count()).where(AuditEntry.action == "access.denied")
        )
    assert actions == ["login.failed", "login.ok"]
    assert denied == 0


def test_login_locks_after_failures(
    server: flask.Flask, world: World, sessions: sessionmaker[Session]
) -> None:
    client = server.test_client()
    for _ in range(accounts.MAX_FAILED_LOGINS):
        assert login(client, "leader", "wrong password") == 401
    # The right password no longer opens the account while it is locked.
    assert login(client, "leader") == 401
    page = client.get("/login")
    assert client.get("/portfolio").status_code == 302
    assert page.status_code == 200
    with sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.action.like("login.%"))
            .order_by(AuditEntry.id)
        ).all()
    assert actions == ["login.failed"] * accounts.MAX_FAILED_LOGINS + ["login.locked"]


def test_locked_login_names_the_lock(server: flask.Flask, world: World) -> None:
    client = server.test_client()
    for _ in range(accounts.MAX_FAILED_LOGINS):
        login(client, "leader", "wrong password")
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        "/login",
        data={"username": "leader", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 401
    assert "locked" in response.get_data(as_text=True)


def test_cookies_over_plain_http(server: flask.Flask, world: World) -> None:
    client = server.test_client()
    page = client.get("/login")
    cookies = page.headers.getlist("Set-Cookie")
    session_cookie = next(value for value in cookies if value.startswith("session="))
    assert "Secure" not in session_cookie
    assert "HttpOnly" in session_cookie
    login(client, "leader")
    cookies = client.get("/portfolio").headers.getlist("Set-Cookie")
    csrf_cookie = next(value for value in cookies if value.startswith("_csrf_token="))
    assert "SameSite=Strict" in csrf_cookie
    assert "Secure" not in csrf_cookie


def test_csrf_cookie_secure_over_https(server: flask.Flask, world: World) -> None:
    client = server.test_client()
    login(client, "leader")
    response = client.get("/portfolio", headers={"X-Forwarded-Proto": "https"})
    cookies = response.headers.getlist("Set-Cookie")
    csrf_cookie = next(value for value in cookies if value.startswith("_csrf_token="))
    assert "Secure" in csrf_cookie


def test_logout_needs_csrf_token(server: flask.Flask, world: World) -> None:
    client = server.test_client()
    login(client, "leader")
    assert client.post("/logout").status_code == 403
    assert client.get("/portfolio").status_code == 200


def test_prefix_from_proxy_reaches_login_redirect(
    server: flask.Flask, world: World
) -> None:
    client = server.test_client()
    headers = {"X-Forwarded-Prefix": "/imaging"}
    page = client.get("/login", headers=headers).get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        "/login?next=/portfolio",
        data={"username": "leader", "password": PASSWORD, "csrf_token": token},
        headers=headers,
    )
    assert response.headers["Location"] == "/imaging/portfolio"


def test_denial_is_logged_and_audited(
    server: flask.Flask,
    world: World,
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = server.test_client()
    login(client, "sponsor_a")
    with caplog.at_level(logging.WARNING, logger="dashboard.auth"):
        assert client.get("/portfolio").status_code == 403
    assert "Denied page /portfolio to user sponsor_a" in caplog.text
    with sessions() as session:
        denial = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "access.denied")
        ).one()
    assert denial.actor == "sponsor_a"
    assert denial.new_values == {"request": "page /portfolio", "path": "/portfolio"}


def test_logins_are_logged(
    server: flask.Flask, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    client = server.test_client()
    with caplog.at_level(logging.INFO, logger="core.accounts"):
        login(client, "leader", "wrong password")
        login(client, "leader")
    assert "Failed password check (login.failed) for user leader" in caplog.text
    assert "User leader logged in" in caplog.text
    assert "correct horse" not in caplog.text
