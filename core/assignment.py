"""Assignment and reassignment of reads to readers.

Method: reads are taken in priority order (urgent cases, then baseline timepoints,
then the earliest case due time) and placed in rounds. Each round solves a min-cost
assignment (`scipy.optimize.linear_sum_assignment`) between the next reads and the
readers that still have headroom, so one reader takes at most one read per round.
The cost of giving a read to a reader is the reader's load after the read, divided
by their daily capacity, which spreads open work in proportion to capacity. Pairs
that break a rule cost `INFEASIBLE` and are never kept:

- qualification: current training for the study (and the charter's criteria);
- availability now: active, inside working hours, not out of office;
- capacity: open reads stay below the daily capacity;
- independence: R1 and R2 of a case differ, and the adjudicator is neither;
- subject consistency: a subject's primary and secondary reads go to the readers who
  read them at the subject's earlier timepoints. Only when that reader has been
  unavailable for longer than the charter's `sla.handover_wait_hours` (counted from
  the read's creation) may another reader take it; that handover is audited.

Concurrency: unassigned reads are claimed with `FOR UPDATE SKIP LOCKED`, then every
active reader row is locked in id order before loads are read, so two jobs processes
never claim the same read, never deadlock, and serialise their load updates. The
read update is conditional on the state it was claimed in, and `readers.open_reads`
changes in the same transaction as the reads and their audit rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from scipy.optimize import linear_sum_assignment
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core import audit
from core.charter_sla import SlaTargets, study_documents, study_targets
from core.models import Read, Reader
from core.readers import (
    absent_reader_ids,
    charter_criteria,
    in_working_hours,
    is_qualified,
)

log = logging.getLogger(__name__)

JOB_ACTOR = "job:assignment"
INFEASIBLE = 1e9
PAIRED_KINDS = ("primary", "secondary")
OTHER_KIND = {"primary": "secondary", "secondary": "primary"}
# A read whose reader has not started it is stalled once this share of its read
# window (assignment to due time) is left.
STALL_FRACTION = 0.25
# Reads placed per solver round; the cost matrix is about ROUND_SIZE squared.
ROUND_SIZE = 400


class AssignmentError(ValueError):
    """A manual assignment breaks a rule; the message names the rule and the ids."""


@dataclass
class PendingRead:
    id: int
    case_id: int
    study_id: int
    subject_id: int
    kind: str
    created_at: datetime
    current_reader: int | None = None
    reason: str = "automatic assignment"


@dataclass
class Placement:
    read: PendingRead
    reader_id: int
    handover_from: int | None = None


@dataclass
class ReaderPool:
    """Active readers as arrays, with loads updated while a batch is placed."""

    ids: np.ndarray
    capacity: np.ndarray
    load: np.ndarray
    available: np.ndarray
    position: dict[int, int]
    qualified: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class ReadContext:
    """Readers already on each case and on each subject's earlier timepoints."""

    case_readers: dict[int, dict[str, int]]
    subject_readers: dict[tuple[int, str], int]


_CLAIM_SQL = """
SELECT r.id, r.case_id, c.study_id, c.subject_id, r.kind, r.created_at, r.reader_id
FROM reads r
JOIN cases c ON c.id = r.case_id
JOIN timepoints t ON t.id = c.timepoint_id
WHERE {where} AND c.state NOT IN ('done', 'cancelled', 'on_hold')
ORDER BY c.urgent DESC, t.is_baseline DESC, c.due_at ASC NULLS LAST, r.id
LIMIT :limit
FOR UPDATE OF r SKIP LOCKED
"""


def _claim(
    session: Session, where: str, params: dict[str, object]
) -> list[PendingRead]:
    rows = session.execute(text(_CLAIM_SQL.format(where=where)), params)
    return [
        PendingRead(
            id=row.id,
            case_id=row.case_id,
            study_id=row.study_id,
            subject_id=row.subject_id,
            kind=row.kind,
            created_at=row.created_at,
            current_reader=row.reader_id,
        )
        for row in rows
    ]


def _lock_readers(session: Session) -> list[Reader]:
    """Lock every active reader in id order: the one lock order all writers share."""
    return list(
        session.scalars(
            select(Reader)
            .where(Reader.active.is_(True))
            .order_by(Reader.id)
            .with_for_update()
        )
    )


def _qualified_ids(
    session: Session, study_ids: set[int], on: date
) -> dict[int, set[int]]:
    documents = study_documents(session, study_ids)
    result: dict[int, set[int]] = {}
    for study_id in study_ids:
        criteria = charter_criteria(documents.get(study_id))
        rows = session.execute(
            text(
                "SELECT reader_id FROM reader_trainings WHERE study_id = :study "
                "AND trained_on <= :on AND (expires_on IS NULL OR expires_on > :on) "
                "AND (CAST(:criteria AS text) IS NULL OR criteria ILIKE :criteria)"
            ),
            {"study": study_id, "on": on, "criteria": criteria},
        )
        result[study_id] = {row.reader_id for row in rows}
    return result


def load_pool(session: Session, study_ids: set[int], now: datetime) -> ReaderPool:
    """Lock the active readers and build their capacity, load and eligibility."""
    readers = _lock_readers(session)
    absent = absent_reader_ids(session, now)
    ids = np.array([r.id for r in readers], dtype=np.int64)
    position = {reader.id: i for i, reader in enumerate(readers)}
    pool = ReaderPool(
        ids=ids,
        capacity=np.array([max(r.daily_capacity, 0) for r in readers], dtype=float),
        load=np.array([r.open_reads for r in readers], dtype=float),
        available=np.array(
            [r.id not in absent and in_working_hours(r, now) for r in readers],
            dtype=bool,
        ),
        position=position,
    )
    for study_id, reader_ids in _qualified_ids(session, study_ids, now.date()).items():
        mask = np.zeros(len(readers), dtype=bool)
        for reader_id in reader_ids & position.keys():
            mask[position[reader_id]] = True
        pool.qualified[study_id] = mask
    return pool


def load_context(session: Session, reads: list[PendingRead]) -> ReadContext:
    """Read the readers on the batch's cases and on its subjects' other cases."""
    case_ids = list({read.case_id for read in reads})
    subject_ids = list({read.subject_id for read in reads})
    case_readers: dict[int, dict[str, int]] = {}
    rows = session.execute(
        text(
            "SELECT case_id, kind, reader_id FROM reads WHERE case_id = ANY(:ids) "
            "AND reader_id IS NOT NULL AND state <> 'cancelled'"
        ),
        {"ids": case_ids},
    )
    for row in rows:
        case_readers.setdefault(row.case_id, {})[row.kind] = row.reader_id
    # The most recently assigned reader of each kind is the subject's current one,
    # so a handover carries forward to the subject's later timepoints.
    rows = session.execute(
        text(
            "SELECT DISTINCT ON (c.subject_id, r.kind) c.subject_id, r.kind, "
            "r.reader_id FROM reads r JOIN cases c ON c.id = r.case_id "
            "WHERE c.subject_id = ANY(:ids) AND r.reader_id IS NOT NULL "
            "AND r.state <> 'cancelled' AND r.kind IN ('primary', 'secondary') "
            "ORDER BY c.subject_id, r.kind, r.assigned_at DESC NULLS LAST, r.id DESC"
        ),
        {"ids": subject_ids},
    )
    subject_readers = {(row.subject_id, row.kind): row.reader_id for row in rows}
    return ReadContext(case_readers, subject_readers)


def _excluded(read: PendingRead, context: ReadContext) -> set[int]:
    """Return the readers independence rules out for this read."""
    on_case = context.case_readers.get(read.case_id, {})
    excluded = {rid for kind, rid in on_case.items() if kind != read.kind}
    if read.kind in OTHER_KIND:
        partner = context.subject_readers.get((read.subject_id, OTHER_KIND[read.kind]))
        if partner is not None:
            excluded.add(partner)
    if read.current_reader is not None:
        excluded.add(read.current_reader)
    return excluded


def _pinned(read: PendingRead, context: ReadContext) -> int | None:
    if read.kind not in PAIRED_KINDS:
        return None
    pinned = context.subject_readers.get((read.subject_id, read.kind))
    return None if pinned == read.current_reader else pinned


def _cost_row(
    read: PendingRead,
    slot_readers: np.ndarray,
    slot_costs: np.ndarray,
    pool: ReaderPool,
    context: ReadContext,
    handover_allowed: bool,
) -> tuple[np.ndarray, int | None]:
    qualified = pool.qualified.get(read.study_id)
    if qualified is None:
        return np.full(slot_readers.size, INFEASIBLE), None
    row = np.where(qualified[slot_readers], slot_costs, INFEASIBLE)
    for reader_id in _excluded(read, context):
        position = pool.position.get(reader_id)
        if position is not None:
            row[slot_readers == position] = INFEASIBLE
    pinned = _pinned(read, context)
    if pinned is None:
        return row, None
    on_pinned = slot_readers == pool.position.get(pinned, -1)
    if not handover_allowed:
        return np.where(on_pinned, row, INFEASIBLE), pinned
    # Prefer the subject's own reader whenever they can take the read.
    row[on_pinned & (row < INFEASIBLE)] -= 1.0
    return row, pinned


def _slots(pool: ReaderPool, requested: int) -> tuple[np.ndarray, np.ndarray]:
    """Open up to a fair share of `requested` slots per reader, costed by load after.

    Slot s of a reader costs (load + s) / capacity, so the solver fills readers in
    proportion to capacity; the share is sized so each round can place every read.
    """
    open_ = np.flatnonzero(pool.available & (pool.load < pool.capacity))
    if open_.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    share = requested * pool.capacity[open_] / pool.capacity[open_].sum()
    counts = np.minimum(
        pool.capacity[open_] - pool.load[open_], np.ceil(share) + 1
    ).astype(np.int64)
    readers = np.repeat(open_, counts)
    steps = np.concatenate([np.arange(1, n + 1) for n in counts])
    costs = (pool.load[readers] + steps) / pool.capacity[readers]
    return readers, costs


def _next_round(pending: list[PendingRead]) -> list[PendingRead]:
    """Take reads for one round, at most one per case and per subject.

    Two reads of one case (or subject) in the same round could land on two slots of
    the same reader, which would break independence.
    """
    batch: list[PendingRead] = []
    cases: set[int] = set()
    subjects: set[int] = set()
    for read in pending:
        if read.case_id in cases or read.subject_id in subjects:
            continue
        batch.append(read)
        cases.add(read.case_id)
        subjects.add(read.subject_id)
        if len(batch) == ROUND_SIZE:
            break
    return batch


def solve(
    reads: list[PendingRead],
    pool: ReaderPool,
    context: ReadContext,
    targets: dict[int, SlaTargets],
    now: datetime,
) -> list[Placement]:
    """Place reads on readers round by round; unplaceable reads are left out."""
    placements: list[Placement] = []
    pending = list(reads)
    while pending:
        batch = _next_round(pending)
        slot_readers, slot_costs = _slots(pool, len(batch))
        if slot_readers.size == 0:
            break
        cost = np.empty((len(batch), slot_readers.size))
        pins: list[int | None] = []
        for i, read in enumerate(batch):
            wait = timedelta(hours=targets[read.study_id].handover_wait_hours)
            allowed = read.current_reader is not None or now - read.created_at >= wait
            cost[i], pin = _cost_row(
                read, slot_readers, slot_costs, pool, context, allowed
            )
            pins.append(pin)
        rows, cols = linear_sum_assignment(cost)
        settled: set[int] = set()
        for i, j in zip(rows, cols, strict=True):
            if cost[i, j] >= INFEASIBLE:
                continue
            reader_id = int(pool.ids[slot_readers[j]])
            pin = pins[i]
            handover = pin if pin is not None and pin != reader_id else None
            placements.append(Placement(batch[i], reader_id, handover))
            _apply(batch[i], reader_id, pool, context)
            settled.add(batch[i].id)
        # A read with no feasible reader waits for the next run of the job.
        settled.update(
            read.id for i, read in enumerate(batch) if not (cost[i] < INFEASIBLE).any()
        )
        pending = [read for read in pending if read.id not in settled]
    return placements


def _apply(
    read: PendingRead, reader_id: int, pool: ReaderPool, context: ReadContext
) -> None:
    pool.load[pool.position[reader_id]] += 1
    context.case_readers.setdefault(read.case_id, {})[read.kind] = reader_id
    if read.kind in PAIRED_KINDS:
        context.subject_readers[(read.subject_id, read.kind)] = reader_id


_ASSIGN_SQL = """
UPDATE reads AS r
SET reader_id = v.reader_id, state = 'assigned', assigned_at = :now,
    started_at = NULL,
    due_at = COALESCE(r.due_at, :now + make_interval(secs => v.hours * 3600))
FROM unnest(CAST(:ids AS integer[]), CAST(:readers AS integer[]),
            CAST(:old AS integer[]), CAST(:hours AS float8[]))
     AS v(id, reader_id, old_reader, hours)
WHERE r.id = v.id
  AND r.reader_id IS NOT DISTINCT FROM v.old_reader
  AND r.state IN ('unassigned', 'assigned', 'in_progress')
"""

_LOAD_SQL = """
UPDATE readers AS d SET open_reads = d.open_reads + v.delta
FROM unnest(CAST(:ids AS integer[]), CAST(:deltas AS integer[])) AS v(id, delta)
WHERE d.id = v.id
"""


def _load_deltas(placements: list[Placement]) -> dict[int, int]:
    deltas: dict[int, int] = {}
    for placement in placements:
        deltas[placement.reader_id] = deltas.get(placement.reader_id, 0) + 1
        old = placement.read.current_reader
        if old is not None:
            deltas[old] = deltas.get(old, 0) - 1
    return deltas


def _audit_entries(placements: list[Placement], actor: str) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for placement in placements:
        read = placement.read
        reassigned = read.current_reader is not None
        entries.append(
            {
                "actor": actor,
                "action": "read.reassign" if reassigned else "read.assign",
                "entity_type": "read",
                "entity_id": read.id,
                "study_id": read.study_id,
                "old": {"reader_id": read.current_reader},
                "new": {"reader_id": placement.reader_id, "state": "assigned"},
                "reason": read.reason,
            }
        )
        if placement.handover_from is not None:
            entries.append(
                {
                    "actor": actor,
                    "action": "subject.handover",
                    "entity_type": "subject",
                    "entity_id": read.subject_id,
                    "study_id": read.study_id,
                    "old": {read.kind: placement.handover_from},
                    "new": {read.kind: placement.reader_id},
                    "reason": f"{read.kind} reader {placement.handover_from} "
                    "unavailable beyond the charter's handover wait",
                }
            )
    return entries


def write_placements(
    session: Session,
    placements: list[Placement],
    targets: dict[int, SlaTargets],
    now: datetime,
    actor: str,
) -> None:
    """Store the placements, the reader loads and their audit rows in one go."""
    if not placements:
        return
    result = session.execute(
        text(_ASSIGN_SQL),
        {
            "now": now,
            "ids": [p.read.id for p in placements],
            "readers": [p.reader_id for p in placements],
            "old": [p.read.current_reader for p in placements],
            "hours": [
                targets[p.read.study_id].read_hours_for(p.read.kind) for p in placements
            ],
        },
    )
    changed = getattr(result, "rowcount", -1)
    if changed != len(placements):
        # The claim locks make this unreachable; failing keeps the batch whole.
        raise RuntimeError(
            f"Assignment updated {changed} of {len(placements)} claimed reads"
        )
    deltas = _load_deltas(placements)
    session.execute(
        text(_LOAD_SQL), {"ids": list(deltas), "deltas": list(deltas.values())}
    )
    audit.record_many(session, _audit_entries(placements, actor))


def assign_open_reads(
    session: Session, now: datetime, *, limit: int = 20_000, actor: str = JOB_ACTOR
) -> list[Placement]:
    """Claim unassigned reads, place them on readers and store the result.

    The caller owns the transaction: commit to keep the placements, roll back to
    leave every claimed read unassigned.
    """
    reads = _claim(session, "r.state = 'unassigned'", {"limit": limit})
    if not reads:
        return []
    studies = {read.study_id for read in reads}
    pool = load_pool(session, studies, now)
    context = load_context(session, reads)
    targets = study_targets(session, studies)
    placements = solve(reads, pool, context, targets, now)
    write_placements(session, placements, targets, now, actor)
    log.info("Assigned %d of %d claimed reads", len(placements), len(reads))
    return placements


_STALLED_WHERE = """
r.state IN ('assigned', 'in_progress') AND r.reader_id IS NOT NULL AND (
  EXISTS (SELECT 1 FROM reader_absences a WHERE a.reader_id = r.reader_id
          AND a.starts_at <= :now AND a.ends_at > :now)
  OR (r.state = 'assigned' AND r.due_at IS NOT NULL AND r.assigned_at IS NOT NULL
      AND r.due_at - :now <= (r.due_at - r.assigned_at) * :fraction)
)
"""


def _stall_reason(session: Session, read: PendingRead, now: datetime) -> str:
    absent = read.current_reader in absent_reader_ids(session, now)
    if absent:
        return f"reader {read.current_reader} is out of office"
    share = int(STALL_FRACTION * 100)
    return f"not started with {share}% or less of the read window left"


def reassign_stalled_reads(
    session: Session, now: datetime, *, limit: int = 5_000, actor: str = JOB_ACTOR
) -> list[Placement]:
    """Move reads whose reader is out of office, or that are unstarted near their due
    time, to another qualified reader; each move is audited with its reason.

    A stalled read with no other reader free stays where it is and is tried again on
    the next run.
    """
    params = {"limit": limit, "now": now, "fraction": STALL_FRACTION}
    reads = _claim(session, _STALLED_WHERE, params)
    if not reads:
        return []
    for read in reads:
        read.reason = "stalled: " + _stall_reason(session, read, now)
    studies = {read.study_id for read in reads}
    pool = load_pool(session, studies, now)
    for read in reads:
        position = pool.position.get(read.current_reader or -1)
        if position is not None:
            pool.load[position] -= 1
    context = load_context(session, reads)
    targets = study_targets(session, studies)
    placements = solve(reads, pool, context, targets, now)
    write_placements(session, placements, targets, now, actor)
    log.info("Reassigned %d of %d stalled reads", len(placements), len(reads))
    return placements


def reassign_read(
    session: Session,
    read_id: int,
    reader_id: int,
    *,
    actor: str,
    reason: str,
    now: datetime,
) -> Read:
    """Move one read to a chosen reader by hand (study managers); a reason is required.

    Raises AssignmentError when the read is closed, the reader lacks current training
    for the study, or the move breaks R1/R2/adjudicator independence.
    """
    if not reason.strip():
        raise AssignmentError("A reason is required to reassign a read")
    where = "r.id = :read AND r.state IN ('unassigned', 'assigned', 'in_progress')"
    reads = _claim(session, where, {"read": read_id, "limit": 1})
    if not reads:
        raise AssignmentError(f"Read {read_id} is not open, or is being changed now")
    read = reads[0]
    _check_manual(session, read, reader_id, now)
    read.reason = reason.strip()
    _lock_readers(session)
    targets = study_targets(session, {read.study_id})
    context = load_context(session, [read])
    pinned = _pinned(read, context)
    handover = pinned if pinned is not None and pinned != reader_id else None
    write_placements(
        session, [Placement(read, reader_id, handover)], targets, now, actor
    )
    updated = session.get(Read, read_id, populate_existing=True)
    assert updated is not None
    return updated


def _check_manual(
    session: Session, read: PendingRead, reader_id: int, now: datetime
) -> None:
    if read.current_reader == reader_id:
        raise AssignmentError(f"Read {read.id} is already with reader {reader_id}")
    reader = session.get(Reader, reader_id)
    if reader is None or not reader.active:
        raise AssignmentError(f"Reader {reader_id} not found or not active")
    criteria = charter_criteria(
        study_documents(session, {read.study_id}).get(read.study_id)
    )
    if not is_qualified(session, reader_id, read.study_id, now.date(), criteria):
        raise AssignmentError(
            f"Reader {reader_id} has no current training for study {read.study_id}"
        )
    context = load_context(session, [read])
    if reader_id in _excluded(read, context):
        raise AssignmentError(
            f"Reader {reader_id} already reads case {read.case_id} or the subject's "
            "other primary read; R1, R2 and the adjudicator must differ"
        )
