"""The dashboard driven as a person would, in Debian's headless Chromium.

Screenshots of every page go to test-output/screenshots/.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import dash
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from core.backtest import run_all_backtests
from core.config import PROJECT_ROOT
from core.models import Alert, AuditEntry, Read, Reader
from tests.dashboard.conftest import Workload, World
from tests.web_factories import PASSWORD

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = PROJECT_ROOT / "test-output" / "screenshots"
# The pages each demo user opens, with text that proves the page rendered data.
JOURNEYS = {
    "admin": [
        "/portfolio",
        "/study",
        "/capacity",
        "/alerts",
        "/triage",
        "/readers",
        "/jobs",
        "/sponsor",
        "/quarantine",
        "/case",
        "/qc",
    ],
    "leader": [
        "/portfolio",
        "/study",
        "/capacity",
        "/alerts",
        "/triage",
        "/quarantine",
    ],
    "manager_a": [
        "/study",
        "/capacity",
        "/alerts",
        "/triage",
        "/readers",
        "/quarantine",
        "/case",
        "/qc",
    ],
    "qc_a": ["/qc", "/quarantine", "/case"],
    "reader_a": ["/reads", "/case"],
    "sponsor_a": ["/sponsor"],
}
PAGE_TEXT = {
    "/portfolio": "ONC-301",
    "/study": "Dr Reader 0",
    "/capacity": "Open cases now",
    "/alerts": "breached",
    "/triage": "ONC-301",
    "/readers": "Dr Reader 0",
    "/jobs": "Stale jobs",
    "/sponsor": "Open cases",
    "/quarantine": "Quarantined files",
    "/case": "State reading",
    "/qc": "301-0101",
    "/reads": "Choose a read to open it.",
}


@pytest.fixture
def base_url(dash_app: dash.Dash) -> Iterator[str]:
    """Serve the app over a real socket on a free loopback port."""
    server = make_server("127.0.0.1", 0, dash_app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def browser() -> Iterator[object]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` to install it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


def _login(page: object, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login")  # type: ignore[attr-defined]
    page.fill("#username", username)  # type: ignore[attr-defined]
    page.fill("#password", PASSWORD)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector(".topbar")  # type: ignore[attr-defined]


def _max_audit_id(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.coalesce(func.max(AuditEntry.id), 0))) or 0


def _screenshot(page: object, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


@pytest.mark.parametrize("username", sorted(JOURNEYS))
def test_pages_render_without_writes(
    browser: object,
    base_url: str,
    world: World,
    workload: Workload,
    sessions: sessionmaker[Session],
    username: str,
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    _login(page, base_url, username)
    audit_after_login = _max_audit_id(sessions)
    for path in JOURNEYS[username]:
        url = f"{base_url}{path}"
        if path == "/case":
            url += f"?case={workload.case_a}"
        elif path == "/study":
            url += f"?study={world.study_a}"
        page.goto(url)
        page.get_by_text(PAGE_TEXT[path]).first.wait_for(timeout=20000)
        page.wait_for_load_state("networkidle")
        shot = _screenshot(page, f"{username}{path.replace('/', '-')}")
        assert shot.stat().st_size > 10_000, shot
        page.reload()
        page.get_by_text(PAGE_TEXT[path]).first.wait_for(timeout=20000)
    # Opening and reloading pages must not write anything.
    assert _max_audit_id(sessions) == audit_after_login
    page.click("#logout-button")
    page.wait_for_selector("#username")
    assert "/login" in page.url


def test_manager_reassigns_and_acknowledges(
    browser: object,
    base_url: str,
    world: World,
    workload: Workload,
    sessions: sessionmaker[Session],
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    _login(page, base_url, "manager_a")
    page.goto(f"{base_url}/study?study={world.study_a}")
    page.get_by_text("Dr Reader 0").first.wait_for(timeout=20000)

    page.fill("#study-reassign-read", str(workload.read_a))
    page.click("#study-reassign-reader")
    page.get_by_text("Dr Reader 1").last.click()
    page.fill("#study-reassign-reason", "Reader 0 is on leave")
    page.click("#study-reassign")
    page.get_by_text(f"Reassign read {workload.read_a}: Done.").wait_for(timeout=20000)

    page.fill("#study-ack-alert", str(workload.alert_a))
    page.click("#study-ack")
    page.get_by_text(f"Acknowledge alert {workload.alert_a}: Done.").wait_for(
        timeout=20000
    )
    _screenshot(page, "manager_a-study-after-actions")

    with sessions() as session:
        read = session.get(Read, workload.read_a)
        alert = session.get(Alert, workload.alert_a)
        actions = session.scalars(
            select(AuditEntry.action).where(
                AuditEntry.action.in_(["read.reassign", "alert.acknowledge"])
            )
        ).all()
    assert read is not None and read.reader_id == workload.spare_reader
    assert alert is not None and alert.acknowledged_by == "manager_a"
    assert sorted(actions) == ["alert.acknowledge", "read.reassign"]


def test_manager_uses_alerts_and_readers(
    browser: object,
    base_url: str,
    world: World,
    workload: Workload,
    sessions: sessionmaker[Session],
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    _login(page, base_url, "manager_a")

    page.goto(f"{base_url}/alerts")
    page.get_by_text("breached").first.wait_for(timeout=20000)
    page.locator(".ag-row .ag-checkbox-input").first.click()
    page.click("#alerts-acknowledge")
    page.get_by_text(f"Acknowledged 1 of 1 alerts ({workload.alert_a}).").wait_for(
        timeout=20000
    )
    _screenshot(page, "manager_a-alerts-after-acknowledge")

    page.goto(f"{base_url}/readers")
    page.get_by_text("Dr Reader 1").first.wait_for(timeout=20000)
    page.click("#readers-select")
    page.get_by_text("Dr Reader 1").last.click()
    # Wait for the chosen reader's profile to load before overwriting a field.
    capacity = page.locator("#readers-daily_capacity")
    expect(capacity).to_have_value("10", timeout=20000)
    capacity.fill("7")
    page.fill("#readers-profile-reason", "Half-time this month")
    page.click("#readers-profile-save")
    page.get_by_text(f"Reader {workload.spare_reader}: Saved.").wait_for(timeout=20000)
    _screenshot(page, "manager_a-readers-after-edit")

    with sessions.begin() as session:
        results = dict(run_all_backtests(session, threshold=0.5))
    replayed = results[world.study_a]
    assert replayed is not None
    page.goto(f"{base_url}/triage")
    chosen = page.locator(".ag-cell[col-id='chosen']", has_text="yes")
    chosen.wait_for(timeout=20000)
    row = page.locator(".ag-row").filter(has=chosen)
    shown_cases = row.locator(".ag-cell[col-id='cases']").inner_text()
    _screenshot(page, "manager_a-triage-backtest")
    assert shown_cases == str(replayed.cases)

    with sessions() as session:
        alert = session.get(Alert, workload.alert_a)
        reader = session.get(Reader, workload.spare_reader)
        entries = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action.in_(["alert.acknowledge", "reader.update"])
            )
        ).all()
    assert alert is not None
    assert alert.acknowledged_by == "manager_a"
    assert reader is not None
    assert reader.daily_capacity == 7
    assert sorted((e.action, e.actor) for e in entries) == [
        ("alert.acknowledge", "manager_a"),
        ("reader.update", "manager_a"),
    ]
    assert [e.reason for e in entries if e.action == "reader.update"] == [
        "Half-time this month"
    ]
