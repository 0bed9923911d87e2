"""SLA jobs: the sweep that raises alerts, their delivery, escalation and digests."""

from __future__ import annotations

from datetime import UTC, datetime

from core import alerts, backtest, sla, triage
from core.runtime import Runtime


def sweep_step(runtime: Runtime) -> int:
    """Raise the at-risk and breached alerts due now; return how many are new."""
    with runtime.sessions.begin() as session:
        return sla.sweep(
            session,
            datetime.now(UTC),
            threshold=runtime.settings.breach_threshold,
        )


def notify_step(runtime: Runtime) -> int:
    """Send new alerts by email and webhook, then escalate old breaches."""
    with runtime.sessions.begin() as session:
        delivered = alerts.deliver(session, runtime.settings)
    with runtime.sessions.begin() as session:
        delivered += alerts.escalate(session, runtime.settings, datetime.now(UTC))
    return delivered


def digest_step(runtime: Runtime) -> int:
    """Send the daily digests due in each recipient's time zone."""
    with runtime.sessions.begin() as session:
        return alerts.send_digests(session, runtime.settings, datetime.now(UTC))


def fit_step(runtime: Runtime) -> int:
    """Refit the triage rates from recent history; return the studies fitted."""
    with runtime.sessions.begin() as session:
        return triage.fit_rates(session, datetime.now(UTC))


def backtest_step(runtime: Runtime) -> int:
    """Backtest the breach predictor per study and overall; return the runs stored."""
    with runtime.sessions.begin() as session:
        results = backtest.run_all_backtests(
            session, threshold=runtime.settings.breach_threshold
        )
    return sum(1 for _, result in results if result is not None)
