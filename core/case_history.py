"""A case's timeline from the audit trail and a thumbnail of one of its images."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.access import AccessDenied, Scope
from core.models import Case, Exam, Instance, Read, Reader, Series, User

# Audit values that carry read results; hidden from scopes without `sees_results`.
RESULT_KEYS = frozenset({"response", "assessment", "chosen_read_id", "lesions"})
READER_KEYS = frozenset({"reader_id", "reader", "signature_name"})

TIMELINE_SQL = """
SELECT a.id, a.at, a.actor, a.action, a.entity_type, a.entity_id, a.old_values,
    a.new_values, a.reason
FROM audit_log a
WHERE a.study_id = :study_id AND (
    (a.entity_type = 'case' AND a.entity_id = CAST(:case_id AS text))
    OR (a.entity_type = 'read' AND a.entity_id IN
        (SELECT CAST(id AS text) FROM reads WHERE case_id = :case_id))
    OR (a.entity_type = 'query' AND a.entity_id IN
        (SELECT CAST(id AS text) FROM queries WHERE case_id = :case_id))
    OR (a.entity_type = 'alert' AND a.entity_id IN
        (SELECT CAST(id AS text) FROM alerts WHERE case_id = :case_id))
)
ORDER BY a.id
LIMIT 1000
"""


def load_case(session: Session, scope: Scope, case_id: int) -> Case | None:
    """Return the case if it exists and its study is in the scope.

    A reader reaches only cases with a read of their own, so a blinded reader
    never browses other sites' or other readers' cases of the study.
    """
    case = session.get(Case, case_id)
    if case is not None:
        scope.require_study(case.study_id)
        if scope.role == "reader" and not own_read_ids(session, scope, case_id):
            raise AccessDenied(f"case {case_id} has no read of {scope.username}")
    return case


def own_read_ids(session: Session, scope: Scope, case_id: int) -> set[int]:
    """Return the ids of the case's reads assigned to the scope's own reader."""
    rows = session.scalars(
        select(Read.id)
        .join(Reader, Reader.id == Read.reader_id)
        .join(User, User.id == Reader.user_id)
        .where(Read.case_id == case_id, User.username == scope.username)
    )
    return set(rows)


def _redact(values: dict[str, Any] | None, hidden: frozenset[str]) -> Any:
    if values is None:
        return None
    return {k: ("(hidden)" if k in hidden else v) for k, v in values.items()}


def timeline(session: Session, scope: Scope, case_id: int) -> list[dict[str, Any]]:
    """Return the audit rows of a case and its reads, queries and alerts.

    Result values are hidden from scopes that may not see results, and reader ids
    and actors of read events from scopes that may not see reader identities.
    """
    case = load_case(session, scope, case_id)
    if case is None:
        return []
    hidden = frozenset() if scope.sees_results else RESULT_KEYS
    if not scope.sees_reader_identities:
        hidden |= READER_KEYS
    params = {"study_id": case.study_id, "case_id": case_id}
    rows = [dict(row) for row in session.execute(text(TIMELINE_SQL), params).mappings()]
    if scope.role == "reader":
        return _blind_for_reader(rows, own_read_ids(session, scope, case_id), scope)
    for row in rows:
        row["old_values"] = _redact(row["old_values"], hidden)
        row["new_values"] = _redact(row["new_values"], hidden)
        if not scope.sees_reader_identities and row["entity_type"] == "read":
            row["actor"] = "(reader)"
    return rows


def _blind_for_reader(
    rows: list[dict[str, Any]], own_reads: set[int], scope: Scope
) -> list[dict[str, Any]]:
    """Keep a reader's own read events and hide whatever reveals the other reads.

    The other reads' rows go, and so do results, reader identities, whether the
    reads were discordant, and the names and reasons of other users acting on the
    case.
    """
    hidden = RESULT_KEYS | READER_KEYS | {"discordant", "chosen_kind"}
    own = {str(read_id) for read_id in own_reads}
    blinded = []
    for row in rows:
        if row["entity_type"] == "read" and row["entity_id"] not in own:
            continue
        row["old_values"] = _redact(row["old_values"], hidden)
        row["new_values"] = _redact(row["new_values"], hidden)
        if row["actor"] != scope.username:
            # Another user's reason may quote an assessment, as an adjudicator's does.
            row["actor"] = "(another user)"
            row["reason"] = "(hidden)" if row["reason"] else row["reason"]
        blinded.append(row)
    return blinded


def representative_instance(
    session: Session, scope: Scope, case_id: int
) -> Instance | None:
    """Return the middle instance of the case's largest series, if any."""
    if load_case(session, scope, case_id) is None:
        return None
    series_sizes = (
        select(Instance.series_id, Instance.id)
        .join(Series, Series.id == Instance.series_id)
        .join(Exam, Exam.id == Series.exam_id)
        .where(Exam.case_id == case_id)
    )
    rows = session.execute(series_sizes).all()
    if not rows:
        return None
    by_series: dict[int, list[int]] = {}
    for series_id, instance_id in rows:
        by_series.setdefault(series_id, []).append(instance_id)
    largest = max(by_series.values(), key=len)
    return session.get(Instance, sorted(largest)[len(largest) // 2])


def render_thumbnail(path: Path, size: int = 256) -> bytes:
    """Decode a DICOM file's first frame and return it as a grey-scale PNG.

    The pixels are windowed to the 1st and 99th percentiles and shrunk by
    striding to at most `size` pixels on the longer side.
    """
    import numpy as np
    import pydicom

    dataset = pydicom.dcmread(path)
    pixels = dataset.pixel_array
    if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4):
        pixels = pixels[0]  # first frame of a multi-frame image
    if pixels.ndim == 3:
        pixels = pixels.mean(axis=-1)
    step = max(1, int(np.ceil(max(pixels.shape) / size)))
    pixels = pixels[::step, ::step].astype(np.float64)
    low, high = np.percentile(pixels, [1, 99])
    scaled = np.clip((pixels - low) / max(high - low, 1e-9), 0.0, 1.0) * 255
    if str(getattr(dataset, "PhotometricInterpretation", "")) == "MONOCHROME1":
        scaled = 255 - scaled
    return _png(scaled.astype(np.uint8))


def _png(image: Any) -> bytes:
    """Encode an 8-bit grey-scale array as PNG (ISO/IEC 15948) without Pillow."""
    height, width = image.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
