"""Write one batch of prepared files as rows, in the caller's transaction.

Rows go in through Core executemany calls, which SQLAlchemy sends as multi-row
INSERT ... ON CONFLICT statements from one cached compilation, so a batch costs a
few round trips whatever its size. Two ingest processes racing on the same exam,
series or instance end with one row each.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.ingest.header import Header, same_values
from core.ingest.matching import Matcher
from core.ingest.prepare import Prepared
from core.ingest.storage import quarantine_path, write_durably
from core.ingest.values import Finding
from core.models import (
    Base,
    Case,
    Exam,
    Instance,
    InstanceFinding,
    QuarantinedFile,
    Series,
)

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """What happened to each file of a batch; counts feed the IngestReport."""

    ingested: int = 0
    duplicates: int = 0
    quarantined: int = 0
    conflicts: int = 0
    unmatched: int = 0
    cases_created: int = 0
    # Inputs whose outcome is committed once the transaction commits.
    done: list[Path] = field(default_factory=list)
    # Archive copies that no row references (conflicts and re-encoded duplicates).
    orphans: list[Path] = field(default_factory=list)


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


@dataclass
class _NewInstance:
    prepared: Prepared
    header: Header
    case_id: int | None
    findings: list[Finding]


def write_batch(
    session: Session, batch: Sequence[Prepared], quarantine_dir: Path
) -> BatchOutcome:
    """Write instance, finding and quarantine rows for one batch of prepared files."""
    outcome = BatchOutcome()
    rejected = [item for item in batch if item.reject_code is not None]
    parsed = [item for item in batch if item.header is not None]
    for item in rejected:
        _quarantine(session, item, item.reject_code or "", item.reject_reason or "")
        outcome.quarantined += 1
        outcome.done.append(item.arrival.path)

    fresh = _split_known(session, parsed, quarantine_dir, outcome)
    if fresh:
        _insert_instances(session, fresh, outcome)
    return outcome


def _split_known(
    session: Session,
    parsed: list[Prepared],
    quarantine_dir: Path,
    outcome: BatchOutcome,
) -> list[Prepared]:
    """Count duplicates, quarantine conflicts and return the instances still new.

    The same SOPInstanceUID with the same SHA-256 is a duplicate; with another
    content it is a conflict: the stored instance stays and the newcomer goes to
    quarantine carrying both hashes.
    """
    uids = {item.header.sop_instance_uid for item in parsed if item.header}
    known: dict[str, _Stored] = {
        uid: _Stored(instance_id, sha, Path(path))
        for instance_id, uid, sha, path in session.execute(
            select(
                Instance.id,
                Instance.sop_instance_uid,
                Instance.content_sha256,
                Instance.archive_path,
            ).where(Instance.sop_instance_uid.in_(uids))
        )
    }
    fresh: list[Prepared] = []
    for item in parsed:
        header = item.header
        assert header is not None and item.stored_path is not None
        seen = known.get(header.sop_instance_uid)
        if seen is None:
            known[header.sop_instance_uid] = _Stored(
                None, header.sha256, item.stored_path
            )
            fresh.append(item)
        elif _same_content(seen, item):
            outcome.duplicates += 1
            outcome.done.append(item.arrival.path)
            if seen.path != item.stored_path:
                outcome.orphans.append(item.stored_path)
        else:
            outcome.orphans.append(item.stored_path)
            _quarantine_conflict(session, item, seen, quarantine_dir)
            outcome.conflicts += 1
            outcome.done.append(item.arrival.path)
    return fresh


@dataclass(frozen=True)
class _Stored:
    """The copy of record of a SOPInstanceUID; `instance_id` is None until inserted."""

    instance_id: int | None
    sha256: str
    path: Path


def _same_content(stored: _Stored, item: Prepared) -> bool:
    assert item.header is not None and item.stored_path is not None
    if stored.sha256 == item.header.sha256:
        return True
    return same_values(stored.path, item.stored_path)


def _quarantine_conflict(
    session: Session,
    item: Prepared,
    seen: _Stored,
    quarantine_dir: Path,
) -> None:
    assert item.header is not None and item.stored_path is not None
    target = quarantine_path(quarantine_dir, item.header.sha256, item.arrival.path.name)
    write_durably(target, item.stored_path.read_bytes())
    item.stored_path = target
    reason = (
        f"SOPInstanceUID is already stored with content SHA-256 {seen.sha256}, but "
        f"this file has SHA-256 {item.header.sha256}. The stored instance was kept."
    )
    _quarantine(
        session, item, "sop_conflict", reason, conflict_instance_id=seen.instance_id
    )


def _quarantine(
    session: Session,
    item: Prepared,
    code: str,
    reason: str,
    *,
    conflict_instance_id: int | None = None,
) -> None:
    """Add a quarantine row unless an open one has the same content and reason."""
    log.warning(
        "Quarantined %s (%s, sha256 %s)", item.arrival.path.name, code, item.sha256
    )
    exists = session.scalar(
        select(QuarantinedFile.id).where(
            QuarantinedFile.content_sha256 == item.sha256,
            QuarantinedFile.reason_code == code,
            QuarantinedFile.released_at.is_(None),
        )
    )
    if exists is not None:
        return
    arrival = item.arrival
    session.add(
        QuarantinedFile(
            original_name=str(arrival.path.name),
            stored_path=str(item.stored_path),
            reason_code=code,
            reason=reason,
            content_sha256=item.sha256,
            sop_instance_uid=item.header.sop_instance_uid if item.header else None,
            conflict_instance_id=conflict_instance_id,
            source=arrival.source,
            calling_ae=arrival.calling_ae,
            calling_host=arrival.calling_host,
            received_at=arrival.received_at,
        )
    )


def _insert_instances(
    session: Session, fresh: list[Prepared], outcome: BatchOutcome
) -> None:
    matcher = Matcher(session)
    rows: list[_NewInstance] = []
    for item in fresh:
        assert item.header is not None
        match = matcher.match(item.header.trial, item.arrival.received_at)
        findings = list(item.header.findings) + match.findings
        rows.append(_NewInstance(item, item.header, match.case_id, findings))
    exam_ids = _upsert_exams(session, rows)
    series_ids = _upsert_series(session, rows, exam_ids)
    _flag_split_cases(session, rows, exam_ids)
    _touch_cases(session, rows)
    inserted = _insert_instance_rows(session, rows, series_ids)
    _insert_findings(session, rows, inserted)

    outcome.cases_created += matcher.cases_created
    for row in rows:
        outcome.done.append(row.prepared.arrival.path)
        if row.header.sop_instance_uid not in inserted:
            outcome.duplicates += 1
            continue
        outcome.ingested += 1
        if row.case_id is None:
            outcome.unmatched += 1


def _upsert_exams(session: Session, rows: list[_NewInstance]) -> dict[str, int]:
    """Insert missing exams, attach unmatched ones to a case, and return their ids."""
    values: dict[str, dict[str, Any]] = {}
    for row in rows:
        uid = row.header.study_instance_uid
        current = values.get(uid)
        if current is None or (current["case_id"] is None and row.case_id is not None):
            values[uid] = {
                "study_instance_uid": uid,
                "case_id": row.case_id,
                "study_date": row.header.study_date,
                "accession_number": row.header.accession_number,
            }
    session.connection().execute(
        insert(_table(Exam)).on_conflict_do_nothing(
            index_elements=["study_instance_uid"]
        ),
        list(values.values()),
    )
    stored = {
        uid: (exam_id, case_id)
        for exam_id, uid, case_id in session.execute(
            select(Exam.id, Exam.study_instance_uid, Exam.case_id).where(
                Exam.study_instance_uid.in_(values)
            )
        )
    }
    for row in rows:
        exam_id, case_id = stored[row.header.study_instance_uid]
        if row.case_id is None or case_id == row.case_id:
            continue
        if case_id is None:
            session.execute(
                update(Exam)
                .where(Exam.id == exam_id, Exam.case_id.is_(None))
                .values(case_id=row.case_id)
            )
            stored[row.header.study_instance_uid] = (exam_id, row.case_id)
        else:
            row.findings.append(_exam_case_conflict(case_id, row.case_id))
    return {uid: exam_id for uid, (exam_id, _) in stored.items()}


def _exam_case_conflict(exam_case: int, instance_case: int) -> Finding:
    return Finding(
        "exam_case_conflict",
        f"the exam belongs to case {exam_case} but this instance's clinical trial "
        f"attributes match case {instance_case}; the exam was not moved",
        "StudyInstanceUID",
    )


def _upsert_series(
    session: Session, rows: list[_NewInstance], exam_ids: dict[str, int]
) -> dict[str, int]:
    values: dict[str, dict[str, Any]] = {}
    for row in rows:
        header = row.header
        values.setdefault(
            header.series_instance_uid,
            {
                "series_instance_uid": header.series_instance_uid,
                "exam_id": exam_ids[header.study_instance_uid],
                "modality": header.modality,
                "body_part": header.body_part,
                "series_number": header.series_number,
                "description": header.series_description,
            },
        )
    session.connection().execute(
        insert(_table(Series)).on_conflict_do_nothing(
            index_elements=["series_instance_uid"]
        ),
        list(values.values()),
    )
    stored = session.execute(
        select(Series.series_instance_uid, Series.id).where(
            Series.series_instance_uid.in_(values)
        )
    )
    return {uid: series_id for uid, series_id in stored}


def _flag_split_cases(
    session: Session, rows: list[_NewInstance], exam_ids: dict[str, int]
) -> None:
    """Flag instances of a case that holds more than one exam (StudyInstanceUID)."""
    case_ids = {row.case_id for row in rows if row.case_id is not None}
    if not case_ids:
        return
    counts = {
        case_id: exams
        for case_id, exams in session.execute(
            select(Exam.case_id, func.count())
            .where(Exam.case_id.in_(case_ids))
            .group_by(Exam.case_id)
        )
    }
    for row in rows:
        exams = counts.get(row.case_id, 0) if row.case_id is not None else 0
        if exams > 1:
            row.findings.append(
                Finding(
                    "case_multiple_exams",
                    f"this subject timepoint was received in {exams} exams "
                    "(different StudyInstanceUIDs); they form one case",
                    "StudyInstanceUID",
                )
            )


def _touch_cases(session: Session, rows: list[_NewInstance]) -> None:
    """Move each case's `last_received_at` forward to its newest arrival."""
    newest: dict[int, datetime] = {}
    for row in rows:
        if row.case_id is None:
            continue
        at = row.prepared.arrival.received_at
        newest[row.case_id] = max(at, newest.get(row.case_id, at))
    if not newest:
        return
    # One executemany, which psycopg2 sends in pages instead of a round trip each.
    table = _table(Case)
    session.connection().execute(
        update(table)
        .where(table.c.id == bindparam("case_id"))
        .values(
            last_received_at=func.greatest(
                table.c.last_received_at, bindparam("received_at")
            )
        ),
        [{"case_id": case_id, "received_at": at} for case_id, at in newest.items()],
    )


def _instance_values(row: _NewInstance, series_id: int) -> dict[str, Any]:
    header = row.header
    arrival = row.prepared.arrival
    return {
        "series_id": series_id,
        "sop_instance_uid": header.sop_instance_uid,
        "sop_class_uid": header.sop_class_uid,
        "transfer_syntax_uid": header.transfer_syntax_uid,
        "content_sha256": header.sha256,
        "size_bytes": header.size_bytes,
        "archive_path": str(row.prepared.stored_path),
        "number_of_frames": header.number_of_frames,
        "slice_thickness_mm": header.slice_thickness_mm,
        "acquisition_date": header.acquisition_date,
        "ct_sponsor": header.trial.sponsor,
        "ct_protocol": header.trial.protocol,
        "ct_site": header.trial.site,
        "ct_subject": header.trial.subject,
        "ct_timepoint": header.trial.timepoint,
        "source": arrival.source,
        "calling_ae": arrival.calling_ae,
        "calling_host": arrival.calling_host,
        "received_at": arrival.received_at,
    }


def _insert_instance_rows(
    session: Session, rows: list[_NewInstance], series_ids: dict[str, int]
) -> dict[str, int]:
    """Insert the instances and return the ids of those this batch created."""
    values = [
        _instance_values(row, series_ids[row.header.series_instance_uid])
        for row in rows
    ]
    table = _table(Instance)
    result = session.connection().execute(
        insert(table)
        .on_conflict_do_nothing(index_elements=["sop_instance_uid"])
        .returning(table.c.sop_instance_uid, table.c.id),
        values,
    )
    return {uid: instance_id for uid, instance_id in result}


def _insert_findings(
    session: Session, rows: Iterable[_NewInstance], inserted: dict[str, int]
) -> None:
    values = [
        {
            "instance_id": inserted[row.header.sop_instance_uid],
            "code": finding.code,
            "message": finding.message,
            "path": finding.path,
            "blocking": finding.blocking,
        }
        for row in rows
        if row.header.sop_instance_uid in inserted
        for finding in row.findings
    ]
    if values:
        session.connection().execute(insert(_table(InstanceFinding)), values)
