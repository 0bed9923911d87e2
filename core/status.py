"""Operational status figures for `app.py status` and health checks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Case, Exam, Instance, JobRun, QuarantinedFile, Series, Study
from core.runtime import Runtime


def _cases_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Case.state, func.count()).group_by(Case.state))
    return {state: count for state, count in rows}


def _unmatched_instances(session: Session) -> int:
    count = session.scalar(
        select(func.count())
        .select_from(Instance)
        .join(Series, Series.id == Instance.series_id)
        .join(Exam, Exam.id == Series.exam_id)
        .where(Exam.case_id.is_(None))
    )
    return count or 0


def _last_successful_runs(session: Session) -> dict[str, str]:
    rows = session.execute(
        select(JobRun.job, func.max(JobRun.finished_at))
        .where(JobRun.ok.is_(True))
        .group_by(JobRun.job)
    )
    return {job: finished.isoformat() for job, finished in rows if finished}


def collect_status(runtime: Runtime) -> dict[str, Any]:
    """Return counts of studies, cases, instances and quarantine, plus job runs."""
    settings = runtime.settings
    with runtime.sessions() as session:
        open_quarantine = session.scalar(
            select(func.count())
            .select_from(QuarantinedFile)
            .where(QuarantinedFile.released_at.is_(None))
        )
        return {
            "studies": session.scalar(select(func.count()).select_from(Study)) or 0,
            "cases_by_state": _cases_by_state(session),
            "instances": session.scalar(select(func.count()).select_from(Instance))
            or 0,
            "unmatched_instances": _unmatched_instances(session),
            "quarantined_open": open_quarantine or 0,
            "last_successful_runs": _last_successful_runs(session),
            "folders": {
                "drop": str(settings.drop_dir),
                "archive": str(settings.archive_dir),
                "quarantine": str(settings.quarantine_dir),
            },
        }
