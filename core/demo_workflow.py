"""Drive the demo's ingested cases through QC, reads and adjudication.

Each case gets a simulated timeline (QC after a few hours, reads over the following
days). Steps whose simulated time is still in the future are not taken, so the
newest cases stay in QC or reading as a live backlog would. Every step calls the
same workflow function a person's action calls; afterwards the rows' workflow times
are set to the simulated ones, and one audit row per batch records that. The audit
rows themselves keep their real times.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import audit, charter, qc, reads
from core.lifecycle import WorkflowError
from core.models import Case, Query, Read, ReaderTraining, Timepoint

log = logging.getLogger(__name__)

DEMO_ACTOR = "demo"
QC_FAILURE_RATE = 0.04


@dataclass
class SubjectCourse:
    """A subject's simulated disease course: lesion sizes and its reader pair."""

    lesions: list[float]
    trend: float
    pair: tuple[int, int]
    adjudicator: int
    new_lesion_after: int | None


@dataclass
class Timeline:
    """Simulated times of one case's steps, recorded while driving it."""

    case_id: int
    auto_qc_at: datetime | None = None
    qc_at: datetime | None = None
    read_times: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)
    # Reads created after QC (adjudication), by read id; the others date from QC.
    read_created: dict[int, datetime] = field(default_factory=dict)
    done_at: datetime | None = None
    query_id: int | None = None


class Driver:
    """Drives cases in arrival order so each subject's earlier reads come first."""

    def __init__(
        self,
        session: Session,
        now: datetime,
        reader_users: dict[int, tuple[int, str]],
        seed: int = 115,
    ) -> None:
        self.session = session
        self.now = now
        self.rng = random.Random(seed)
        self.reader_users = reader_users  # reader id -> (user id, password)
        self.courses: dict[int, SubjectCourse] = {}
        self.visits: dict[int, int] = {}
        self.trained = self._trained_readers()
        # Each reader works at a pace of their own (0.55 to 1.8 times the typical
        # read time), so read times depend on who reads, as in a real network. A
        # separate generator keeps the other simulated draws as they were.
        pace_rng = random.Random(seed + 1)
        self.pace = {
            reader_id: math.exp(pace_rng.uniform(-0.6, 0.6))
            for reader_id in sorted({r for ids in self.trained.values() for r in ids})
        }

    def _trained_readers(self) -> dict[int, list[int]]:
        trained: dict[int, list[int]] = {}
        for reader_id, study_id in self.session.execute(
            select(ReaderTraining.reader_id, ReaderTraining.study_id)
        ):
            trained.setdefault(study_id, []).append(reader_id)
        for ids in trained.values():
            ids.sort()
        return trained

    def course(self, subject_id: int, study_id: int) -> SubjectCourse:
        course = self.courses.get(subject_id)
        if course is None:
            trained = self.trained[study_id]
            first, second, third = self.rng.sample(trained, 3)
            kind = self.rng.random()
            # About 30 % of subjects respond, 25 % progress and the rest are stable.
            if kind < 0.3:
                trend = 0.75
            elif kind > 0.75:
                trend = 1.18
            else:
                trend = 1.0
            lesions = [self.rng.uniform(12, 45) for _ in range(self.rng.randint(2, 4))]
            new_after = self.rng.randint(2, 4) if trend > 1.1 else None
            course = SubjectCourse(lesions, trend, (first, second), third, new_after)
            self.courses[subject_id] = course
        return course

    def assessment(self, course: SubjectCourse, visit: int) -> dict[str, Any]:
        """Return one reader's RECIST 1.1 inputs, with measurement noise."""
        factor = course.trend ** min(visit, 4)
        targets = [
            {
                "site": f"lesion {i + 1}",
                "diameter_mm": round(
                    max(size * factor * self.rng.gauss(1, 0.08), 0), 1
                ),
            }
            for i, size in enumerate(course.lesions)
        ]
        new = course.new_lesion_after is not None and visit >= course.new_lesion_after
        return {
            "targets": targets,
            "non_target": "absent",
            "new_lesions": "yes" if new and self.rng.random() < 0.8 else "no",
        }

    def drive(self, case: Case) -> Timeline:
        """Take every step of the case whose simulated time has passed."""
        timeline = Timeline(case.id)
        qc_at = case.first_received_at + timedelta(hours=self.rng.uniform(2, 30))
        if qc_at > self.now:
            return timeline
        if not qc.auto_qc_case(self.session, case.id, now=qc_at):
            return timeline
        timeline.auto_qc_at = qc_at
        # The reviewer's decision comes some hours after automated QC; until then
        # the case waits in the manual review queue, as the newest cases do.
        reviewed_at = qc_at + timedelta(hours=self.rng.uniform(1, 20))
        if reviewed_at > self.now:
            return timeline
        timeline.qc_at = reviewed_at
        # Baselines always pass, because every later read measures against them.
        if self.visits.get(case.subject_id) and self.rng.random() < QC_FAILURE_RATE:
            timeline.query_id = qc.fail_case(
                self.session,
                case.id,
                actor="qc",
                reason_code="image_quality",
                text="Motion artefact on the chest series; please re-scan or re-send.",
            )
            return timeline
        read_ids = qc.pass_case(self.session, case.id, actor="qc")
        self._read(case, read_ids, reviewed_at, timeline)
        return timeline

    def _read(
        self, case: Case, read_ids: list[int], start: datetime, timeline: Timeline
    ) -> None:
        course = self.course(case.subject_id, case.study_id)
        visit = self.visits.get(case.subject_id, 0)
        self.visits[case.subject_id] = visit + 1
        finished: list[datetime] = []
        adjudication_id = None
        for read_id, reader_id in zip(read_ids, course.pair, strict=False):
            assigned = start + timedelta(hours=self.rng.uniform(0.1, 4))
            hours = self.rng.lognormvariate(3.2, 0.7) * self.pace[reader_id]
            signed = assigned + timedelta(hours=hours)
            reads.assign_read(self.session, read_id, reader_id, actor=DEMO_ACTOR)
            timeline.read_times[read_id] = (assigned, signed)
            if signed > self.now:
                continue
            result = self._assess_and_sign(read_id, reader_id, course, visit)
            if result is None:
                continue
            finished.append(signed)
            adjudication_id = result.adjudication_read_id or adjudication_id
            if result.case_state == "done":
                timeline.done_at = max(finished)
        if adjudication_id is not None and len(finished) == 2:
            self._adjudicate(adjudication_id, read_ids, course, max(finished), timeline)

    def _assess_and_sign(
        self, read_id: int, reader_id: int, course: SubjectCourse, visit: int
    ) -> reads.SignResult | None:
        """Assess and sign a read; leave it open when the workflow rejects a step.

        A rejection happens, for example, when an earlier timepoint of the subject is
        still unsigned, and a real reader would wait in the same way.
        """
        user_id, password = self.reader_users[reader_id]
        try:
            with self.session.begin_nested():
                reads.save_assessment(
                    self.session,
                    read_id,
                    self.assessment(course, visit),
                    user_id=user_id,
                )
                return reads.sign(
                    self.session, read_id, user_id=user_id, password=password
                )
        except WorkflowError as exc:
            log.debug("Demo read %d left open: %s", read_id, exc)
            return None

    def _adjudicate(
        self,
        read_id: int,
        primary_ids: list[int],
        course: SubjectCourse,
        start: datetime,
        timeline: Timeline,
    ) -> None:
        assigned = start + timedelta(hours=self.rng.uniform(0.5, 6))
        hours = self.rng.lognormvariate(2.8, 0.6) * self.pace[course.adjudicator]
        signed = assigned + timedelta(hours=hours)
        reads.assign_read(self.session, read_id, course.adjudicator, actor=DEMO_ACTOR)
        timeline.read_created[read_id] = start
        timeline.read_times[read_id] = (assigned, signed)
        if signed > self.now:
            return
        user_id, password = self.reader_users[course.adjudicator]
        chosen = primary_ids[0] if self.rng.random() < 0.55 else primary_ids[1]
        reads.adjudicate(
            self.session,
            read_id,
            user_id=user_id,
            password=password,
            chosen_read_id=chosen,
            reason="Measurements of the chosen reader follow the baseline lesions.",
        )
        timeline.done_at = signed


def apply_timelines(session: Session, timelines: list[Timeline]) -> None:
    """Set the workflow times of driven rows to their simulated values."""
    for timeline in timelines:
        if timeline.qc_at is None:
            if timeline.auto_qc_at is not None:
                session.execute(
                    update(Case)
                    .where(Case.id == timeline.case_id)
                    .values(state_changed_at=timeline.auto_qc_at)
                )
            continue
        state_time = timeline.done_at or timeline.qc_at
        session.execute(
            update(Case)
            .where(Case.id == timeline.case_id)
            .values(state_changed_at=state_time, completed_at=timeline.done_at)
        )
        sla = _case_sla(session, timeline.case_id)
        for read_id, (assigned, signed) in timeline.read_times.items():
            created = timeline.read_created.get(read_id, timeline.qc_at)
            session.execute(
                update(Read)
                .where(Read.id == read_id)
                .values(
                    created_at=created,
                    due_at=_read_due(session, read_id, sla, created),
                    assigned_at=assigned,
                    started_at=assigned + timedelta(minutes=20),
                    signed_at=_signed_or_none(session, read_id, signed),
                )
            )
        if timeline.query_id is not None:
            session.execute(
                update(Query)
                .where(Query.id == timeline.query_id)
                .values(opened_at=timeline.qc_at)
            )
    if timelines:
        audit.record(
            session,
            actor=DEMO_ACTOR,
            action="demo.history_times_set",
            entity_type="case",
            entity_id=f"{timelines[0].case_id}-{timelines[-1].case_id}",
            new={"cases": len(timelines)},
            reason="demo data: workflow times set to the simulated history",
        )


def _case_sla(session: Session, case_id: int) -> dict[str, Any]:
    case = session.get_one(Case, case_id)
    document = charter.get_document(session, case.study_id, case.charter_version)
    sla: dict[str, Any] = document["sla"]
    return sla


def _read_due(
    session: Session, read_id: int, sla: dict[str, Any], created: datetime
) -> datetime | None:
    """Return the read's due time counted from its simulated creation.

    The workflow set it from the real clock, which for a simulated history would
    put every due time days after the read was signed.
    """
    kind = session.scalar(select(Read.kind).where(Read.id == read_id))
    hours = sla.get("adjudication_hours" if kind == "adjudication" else "read_hours")
    return None if hours is None else created + timedelta(hours=hours)


def _signed_or_none(
    session: Session, read_id: int, signed: datetime
) -> datetime | None:
    state = session.scalar(select(Read.state).where(Read.id == read_id))
    return signed if state == "signed" else None


def cases_in_arrival_order(session: Session, study_ids: list[int]) -> list[Case]:
    return list(
        session.scalars(
            select(Case)
            .join(Timepoint, Timepoint.id == Case.timepoint_id)
            .where(Case.study_id.in_(study_ids))
            .order_by(Case.first_received_at)
        )
    )
