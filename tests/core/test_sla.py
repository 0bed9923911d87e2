"""SLA sweep, alert delivery to a real SMTP server and webhook, digests across DST."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core import alerts, sla
from core.config import Settings
from core.models import Alert, AlertDigest, AuditEntry
from tests.factories import NOW, make_case, make_study, make_user


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: object, session: object, envelope) -> str:  # noqa: ANN001
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, _Inbox]]:
    inbox = _Inbox()
    # aiosmtpd's Controller connects to its own port at start, so it needs a real
    # port number: take a free one from the OS.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def _alerts(session: Session) -> set[tuple[str, str]]:
    return {(a.step, a.kind) for a in session.scalars(select(Alert))}


def test_sweep_marks_breaches_once(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        late = make_case(
            session, study, "301-0001", received=NOW - timedelta(hours=300)
        )
        qc = make_case(
            session, study, "301-0002", received=NOW - timedelta(hours=30), state="qc"
        )
        make_case(session, study, "301-0003", received=NOW - timedelta(hours=1))
    with sessions.begin() as session:
        first = sla.sweep(session, NOW)
    with sessions.begin() as session:
        second = sla.sweep(session, NOW)
    with sessions() as session:
        by_case = {(a.case_id, a.step, a.kind) for a in session.scalars(select(Alert))}
    assert (late.id, "total", "breached") in by_case
    assert (qc.id, "qc", "breached") in by_case
    assert first == len(by_case)
    assert second == 0


def test_sweep_predicts_slow_reader(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        # 200 h of a 240 h window gone, reads unassigned and predicted at 24 h+.
        case = make_case(
            session, study, "301-0004", received=NOW - timedelta(hours=230)
        )
    with sessions.begin() as session:
        sla.sweep(session, NOW)
    with sessions() as session:
        kinds = {
            (a.step, a.kind)
            for a in session.scalars(select(Alert))
            if a.case_id == case.id
        }
    assert kinds == {("total", "at_risk")}


def test_alerts_reach_email_and_webhook(
    sessions: sessionmaker[Session],
    settings: Settings,
    smtp: tuple[int, _Inbox],
    webhook: tuple[str, list[dict[str, object]]],
) -> None:
    port, inbox = smtp
    url, posted = webhook
    settings = replace(settings, smtp_host="127.0.0.1", smtp_port=port, webhook_url=url)
    with sessions.begin() as session:
        study = make_study(session)
        make_user(session, "manager", "study_manager", study=study)
        case = make_case(
            session, study, "301-0777", received=NOW - timedelta(hours=300)
        )
        sla.sweep(session, NOW)
    with sessions.begin() as session:
        delivered = alerts.deliver(session, settings)
    with sessions.begin() as session:
        again = alerts.deliver(session, settings)
    assert delivered == 2
    assert again == 0
    recipients, content = inbox.messages[0]
    assert recipients == ["manager@cro.example"]
    assert f"case {case.id}" in content
    assert "ONC-301" in content
    assert "total breached" in content
    assert case.due_at is not None
    assert case.due_at.isoformat() in content
    assert "301-0777" not in content
    assert posted[0]["case_id"] == case.id
    assert posted[0]["study"] == "ONC-301"
    assert posted[0]["step"] == "total"
    assert posted[0]["due_at"] == case.due_at.isoformat()
    assert "301-0777" not in json.dumps(posted)


def test_breach_escalates_after_delay(
    sessions: sessionmaker[Session], settings: Settings, smtp: tuple[int, _Inbox]
) -> None:
    port, inbox = smtp
    settings = replace(
        settings, smtp_host="127.0.0.1", smtp_port=port, escalation_hours=4
    )
    with sessions.begin() as session:
        study = make_study(session)
        make_case(session, study, "301-0005", received=NOW - timedelta(hours=300))
        sla.sweep(session, NOW)
        created = session.scalar(select(func.min(Alert.created_at)))
    assert created is not None
    with sessions.begin() as session:
        early = alerts.escalate(session, settings, created + timedelta(hours=3))
    with sessions.begin() as session:
        late = alerts.escalate(session, settings, created + timedelta(hours=5))
    assert early == 0
    assert late == 1
    assert inbox.messages[-1][0] == ["lead@cro.example"]


def test_acknowledge_is_audited(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        study = make_study(session)
        make_case(session, study, "301-0006", received=NOW - timedelta(hours=300))
        sla.sweep(session, NOW)
        alert_id = session.scalars(select(Alert.id)).first()
    assert alert_id is not None
    with sessions.begin() as session:
        alerts.acknowledge(session, alert_id, actor="manager", now=NOW)
    with pytest.raises(alerts.AlertError), sessions.begin() as session:
        alerts.acknowledge(session, alert_id, actor="manager", now=NOW)
    with sessions() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "alert.acknowledge")
        ).one()
    assert entry.actor == "manager"
    assert entry.entity_id == str(alert_id)


def _drive_digests(
    sessions: sessionmaker[Session],
    settings: Settings,
    timezone: str,
    start: date,
) -> dict[date, int]:
    """Run the digest step every 20 minutes for three local days; count per date."""
    with sessions.begin() as session:
        make_user(session, "manager", "study_manager", timezone=timezone)
    sent: list[str] = []

    def record(settings: Settings, to: list[str], subject: str, body: str) -> None:
        sent.append(subject)

    zone = ZoneInfo(timezone)
    now = datetime(start.year, start.month, start.day, tzinfo=zone).astimezone(UTC)
    end = now + timedelta(days=3)
    while now < end:
        with sessions.begin() as session:
            alerts.send_digests(session, settings, now, send=record)
        now += timedelta(minutes=20)
    with sessions() as session:
        rows = session.execute(
            select(AlertDigest.local_date, func.count()).group_by(
                AlertDigest.local_date
            )
        )
        counts = {day: count for day, count in rows}
    assert len(sent) == sum(counts.values())
    return counts


@pytest.mark.parametrize("timezone", ["America/Los_Angeles", "America/New_York"])
@pytest.mark.parametrize("hour", [1, 2, 8])
def test_digest_spring_forward(
    sessions: sessionmaker[Session], settings: Settings, timezone: str, hour: int
) -> None:
    settings = replace(settings, digest_hour=hour)
    counts = _drive_digests(sessions, settings, timezone, date(2026, 3, 7))
    assert counts == {
        date(2026, 3, 7): 1,
        date(2026, 3, 8): 1,
        date(2026, 3, 9): 1,
    }


@pytest.mark.parametrize("timezone", ["America/Los_Angeles", "America/New_York"])
@pytest.mark.parametrize("hour", [1, 2, 8])
def test_digest_fall_back(
    sessions: sessionmaker[Session], settings: Settings, timezone: str, hour: int
) -> None:
    settings = replace(settings, digest_hour=hour)
    counts = _drive_digests(sessions, settings, timezone, date(2026, 10, 31))
    assert counts == {
        date(2026, 10, 31): 1,
        date(2026, 11, 1): 1,
        date(2026, 11, 2): 1,
    }
