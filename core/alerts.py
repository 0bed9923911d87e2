"""Delivery of SLA alerts by email and webhook, escalation, acknowledgement, digests.

Messages carry the alert id, case id, study protocol, step, kind and due time (UTC,
ISO 8601), never subject ids or other patient data. Alerts are claimed with
`FOR UPDATE SKIP LOCKED` and marked sent in the same transaction, so two jobs
processes never send the same alert; a failed send leaves it for the next run.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import audit
from core.config import Settings

log = logging.getLogger(__name__)

SendEmail = Callable[[Settings, list[str], str, str], None]


@dataclass(frozen=True)
class AlertMessage:
    alert_id: int
    case_id: int
    study: str
    step: str
    kind: str
    due_at: str | None

    def line(self) -> str:
        return (
            f"{self.study} case {self.case_id}: {self.step} {self.kind}, "
            f"due {self.due_at or 'not set'}"
        )


class AlertError(ValueError):
    """An alert action is invalid; the message names the alert."""


def send_email(settings: Settings, to: list[str], subject: str, body: str) -> None:
    """Send a plain-text email through the configured SMTP server."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        smtp.send_message(message)


def post_webhook(url: str, payload: dict[str, object]) -> None:
    """POST a JSON payload; an HTTP error status raises urllib.error.HTTPError."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


_CLAIM_SQL = """
SELECT a.id AS alert_id, a.case_id, s.protocol_id AS study, a.step, a.kind,
       a.due_at, c.study_id
FROM alerts a JOIN cases c ON c.id = a.case_id JOIN studies s ON s.id = c.study_id
WHERE {where}
ORDER BY a.id
LIMIT :limit
FOR UPDATE OF a SKIP LOCKED
"""


def _claim(
    session: Session, where: str, params: dict[str, object]
) -> list[tuple[int, AlertMessage]]:
    rows = session.execute(text(_CLAIM_SQL.format(where=where)), params)
    return [
        (
            row.study_id,
            AlertMessage(
                alert_id=row.alert_id,
                case_id=row.case_id,
                study=row.study,
                step=row.step,
                kind=row.kind,
                due_at=row.due_at.isoformat() if row.due_at else None,
            ),
        )
        for row in rows
    ]


def study_manager_emails(session: Session, study_id: int) -> list[str]:
    """Return the email addresses of the active study managers granted the study."""
    rows = session.scalars(
        text(
            "SELECT u.email FROM users u JOIN study_grants g ON g.user_id = u.id "
            "WHERE g.study_id = :study AND u.role = 'study_manager' AND u.active "
            "AND u.email IS NOT NULL ORDER BY u.email"
        ),
        {"study": study_id},
    )
    return list(rows)


def _email_alerts(
    session: Session, settings: Settings, send: SendEmail, limit: int
) -> int:
    claimed = _claim(session, "a.emailed_at IS NULL", {"limit": limit})
    sent: list[int] = []
    for study_id, message in claimed:
        recipients = study_manager_emails(session, study_id)
        if recipients:
            subject = f"[ImagingOps] {message.study} case {message.case_id}: " + (
                f"{message.step} {message.kind}"
            )
            try:
                send(settings, recipients, subject, message.line() + "\n")
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("Email for alert %d failed: %s", message.alert_id, exc)
                continue
        sent.append(message.alert_id)
    _mark(session, "emailed_at", sent)
    return len(sent)


def _post_alerts(session: Session, settings: Settings, limit: int) -> int:
    claimed = _claim(session, "a.webhook_at IS NULL", {"limit": limit})
    sent: list[int] = []
    for _, message in claimed:
        try:
            post_webhook(settings.webhook_url, asdict(message))
        except OSError as exc:
            log.warning("Webhook for alert %d failed: %s", message.alert_id, exc)
            break
        sent.append(message.alert_id)
    _mark(session, "webhook_at", sent)
    return len(sent)


def _mark(session: Session, column: str, alert_ids: list[int]) -> None:
    if alert_ids:
        session.execute(
            text(f"UPDATE alerts SET {column} = now() WHERE id = ANY(:ids)"),
            {"ids": alert_ids},
        )


def deliver(
    session: Session,
    settings: Settings,
    *,
    send: SendEmail = send_email,
    limit: int = 200,
) -> int:
    """Email and post the alerts not yet sent; return the deliveries made.

    Email goes when `smtp_host` is set and the webhook when `webhook_url` is set;
    an alert whose study has no study manager with an email counts as emailed.
    """
    delivered = 0
    if settings.smtp_host:
        delivered += _email_alerts(session, settings, send, limit)
    if settings.webhook_url:
        delivered += _post_alerts(session, settings, limit)
    return delivered


def escalate(
    session: Session,
    settings: Settings,
    now: datetime,
    *,
    send: SendEmail = send_email,
    limit: int = 200,
) -> int:
    """Email the study's leadership contact about breaches unacknowledged too long."""
    if not settings.smtp_host:
        return 0
    where = (
        "a.kind = 'breached' AND a.acknowledged_at IS NULL AND a.escalated_at IS NULL "
        "AND a.created_at <= :cutoff AND s.leadership_email IS NOT NULL"
    )
    cutoff = now - timedelta(hours=settings.escalation_hours)
    claimed = _claim(session, where, {"limit": limit, "cutoff": cutoff})
    escalated: list[int] = []
    for study_id, message in claimed:
        contact = session.scalar(
            text("SELECT leadership_email FROM studies WHERE id = :id"),
            {"id": study_id},
        )
        subject = f"[ImagingOps] Escalation: {message.study} case {message.case_id}"
        body = (
            f"Unacknowledged for {settings.escalation_hours:g} hours:\n"
            + message.line()
            + "\n"
        )
        try:
            send(settings, [contact], subject, body)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("Escalation of alert %d failed: %s", message.alert_id, exc)
            continue
        escalated.append(message.alert_id)
    _mark(session, "escalated_at", escalated)
    return len(escalated)


def acknowledge(session: Session, alert_id: int, *, actor: str, now: datetime) -> None:
    """Acknowledge an alert, audited; acknowledging twice raises AlertError."""
    row = session.execute(
        text(
            "UPDATE alerts a SET acknowledged_at = :now, acknowledged_by = :actor "
            "FROM cases c WHERE a.id = :id AND c.id = a.case_id "
            "AND a.acknowledged_at IS NULL RETURNING c.study_id, a.step, a.kind"
        ),
        {"id": alert_id, "actor": actor, "now": now},
    ).one_or_none()
    if row is None:
        raise AlertError(f"Alert {alert_id} not found or already acknowledged")
    audit.record(
        session,
        actor=actor,
        action="alert.acknowledge",
        entity_type="alert",
        entity_id=alert_id,
        study_id=row.study_id,
        old={"acknowledged_at": None},
        new={"acknowledged_at": now, "step": row.step, "kind": row.kind},
    )


_RECIPIENTS_SQL = """
SELECT id, email, timezone, role FROM users
WHERE active AND email IS NOT NULL AND role IN ('study_manager', 'leadership')
ORDER BY id
"""

_OPEN_ALERTS_SQL = """
SELECT a.id AS alert_id, a.case_id, s.protocol_id AS study, a.step, a.kind, a.due_at
FROM alerts a JOIN cases c ON c.id = a.case_id JOIN studies s ON s.id = c.study_id
WHERE a.acknowledged_at IS NULL
  AND (:all_studies OR c.study_id IN
       (SELECT study_id FROM study_grants WHERE user_id = :user))
ORDER BY a.due_at NULLS LAST, a.id
"""


def _local_date(timezone: str, now: datetime) -> tuple[date, int]:
    local = now.astimezone(ZoneInfo(timezone))
    return local.date(), local.hour


def send_digests(
    session: Session,
    settings: Settings,
    now: datetime,
    *,
    send: SendEmail = send_email,
) -> int:
    """Send each recipient one digest per date of their own time zone.

    The digest goes on the first run at or after `digest_hour` local time. The date
    is claimed by inserting (user, local date) under a unique constraint before
    sending, so a repeated local hour (fall back) or a second jobs process finds the
    date taken, and a skipped local hour (spring forward) still leaves later hours
    of the same date to send it. A failed send rolls back only that recipient's claim.
    """
    sent = 0
    for user in session.execute(text(_RECIPIENTS_SQL)).all():
        local_date, hour = _local_date(user.timezone, now)
        if hour < settings.digest_hour:
            continue
        try:
            # A savepoint per recipient: a failed send releases only their claim.
            with session.begin_nested():
                sent += _send_digest(session, settings, user, local_date, now, send)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning(
                "Digest for user %d failed; retrying next run: %s", user.id, exc
            )
    return sent


def _send_digest(
    session: Session,
    settings: Settings,
    user: Any,
    local_date: date,
    now: datetime,
    send: SendEmail,
) -> int:
    claimed = session.scalar(
        text(
            "INSERT INTO alert_digests (user_id, local_date, timezone) "
            "VALUES (:user, :day, :tz) ON CONFLICT DO NOTHING RETURNING id"
        ),
        {"user": user.id, "day": local_date, "tz": user.timezone},
    )
    if claimed is None:
        return 0
    alerts = _digest_alerts(session, user.id, user.role == "leadership")
    body = "\n".join(message.line() for message in alerts) or "No open alerts."
    send(settings, [user.email], f"[ImagingOps] Daily alerts {local_date}", body)
    session.execute(
        text("UPDATE alert_digests SET sent_at = :now, alerts = :n WHERE id = :id"),
        {"now": now, "n": len(alerts), "id": claimed},
    )
    return 1


def _digest_alerts(
    session: Session, user_id: int, all_studies: bool
) -> list[AlertMessage]:
    rows: Iterable = session.execute(
        text(_OPEN_ALERTS_SQL), {"user": user_id, "all_studies": all_studies}
    )
    return [
        AlertMessage(
            alert_id=row.alert_id,
            case_id=row.case_id,
            study=row.study,
            step=row.step,
            kind=row.kind,
            due_at=row.due_at.isoformat() if row.due_at else None,
        )
        for row in rows
    ]


_LIST_SQL = """
SELECT a.id, s.protocol_id AS study, a.case_id, a.step, a.kind, a.due_at,
       a.created_at, a.emailed_at, a.escalated_at, a.acknowledged_at,
       a.acknowledged_by
FROM alerts a JOIN cases c ON c.id = a.case_id JOIN studies s ON s.id = c.study_id
WHERE (:all_studies OR c.study_id = ANY(CAST(:study_ids AS integer[])))
  AND (NOT :open_only OR a.acknowledged_at IS NULL)
ORDER BY a.acknowledged_at IS NOT NULL, a.kind = 'at_risk', a.due_at, a.id
LIMIT :limit
"""


def list_alerts(
    session: Session,
    study_ids: list[int] | None,
    *,
    open_only: bool = True,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Return alerts of the given studies (None: all), breaches first, for display."""
    rows = session.execute(
        text(_LIST_SQL),
        {
            "all_studies": study_ids is None,
            "study_ids": study_ids or [],
            "open_only": open_only,
            "limit": limit,
        },
    )
    return [dict(row._mapping) for row in rows]
