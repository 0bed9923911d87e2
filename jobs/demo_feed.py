"""Keep the demo portfolio moving: new demo images arrive every few seconds.

Each run writes into the drop folder either the images of a subject's next
scheduled visit (a new case) or one more instance in a series of a recent case.
The drop folder scan then ingests them like any site's upload. The step writes
nothing unless the database contains demo studies, so a real deployment never
receives demo images.
"""

from __future__ import annotations

import logging
import os
import random
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import exists, func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session, aliased

from core import charter
from core.demo import series_for
from core.demo_images import ImageWriter, SeriesPlace
from core.models import (
    Case,
    Exam,
    Instance,
    Series,
    Site,
    Sponsor,
    Study,
    Subject,
    Timepoint,
)
from core.runtime import Runtime

log = logging.getLogger(__name__)

NEW_CASE_SHARE = 0.5
# An arbitrary key for pg_try_advisory_xact_lock, next to the ingest jobs' keys.
FEED_LOCK_KEY = 7_310_303
_writer: ImageWriter | None = None


def _image_writer(session: Session) -> ImageWriter:
    global _writer
    if _writer is None:
        sponsor_of: dict[str, str] = dict(
            session.execute(
                select(Study.protocol_id, Sponsor.name).join(
                    Sponsor, Sponsor.id == Study.sponsor_id
                )
            ).all()
        )
        _writer = ImageWriter(sponsor_of)
    return _writer


def _next_visit(
    session: Session,
) -> tuple[str, str, str, str, int] | None:
    """Pick a random demo subject's first scheduled visit that has no case yet.

    Returns (protocol, site code, subject code, visit code, study id).
    """
    later = aliased(Timepoint)
    first_missing = (
        select(
            Study.protocol_id,
            Site.site_code,
            Subject.subject_code,
            later.code,
            Study.id,
        )
        .ext(distinct_on(Subject.id))
        .join(Subject, Subject.study_id == Study.id)
        .join(Site, Site.id == Subject.site_id)
        .join(later, later.study_id == Study.id)
        .where(
            Study.is_demo,
            later.target_day.is_not(None),
            ~exists().where(
                Case.subject_id == Subject.id, Case.timepoint_id == later.id
            ),
        )
        .order_by(Subject.id, later.ordinal)
        .subquery()
    )
    row = session.execute(
        select(first_missing).order_by(func.random()).limit(1)
    ).first()
    if row is None:
        return None
    protocol, site, subject, visit, study_id = row
    return protocol, site, subject, visit, study_id


def _recent_series(
    session: Session, rng: random.Random
) -> tuple[SeriesPlace, str, str, str, str, int] | None:
    """Pick a series of a recent demo case that is still before its reads."""
    rows = session.execute(
        select(
            Exam.study_instance_uid,
            Series.series_instance_uid,
            Series.series_number,
            Series.modality,
            Series.body_part,
            Study.protocol_id,
            Site.site_code,
            Subject.subject_code,
            Timepoint.code,
            select(func.count(Instance.id))
            .where(Instance.series_id == Series.id)
            .scalar_subquery(),
        )
        .join(Exam, Exam.id == Series.exam_id)
        .join(Case, Case.id == Exam.case_id)
        .join(Study, Study.id == Case.study_id)
        .join(Site, Site.id == Case.site_id)
        .join(Subject, Subject.id == Case.subject_id)
        .join(Timepoint, Timepoint.id == Case.timepoint_id)
        .where(Study.is_demo, Case.state.in_(("received", "qc")))
        .order_by(Case.id.desc())
        .limit(40)
    ).all()
    if not rows:
        return None
    study_uid, series_uid, number, modality, body_part, *codes, count = rng.choice(rows)
    place = SeriesPlace(study_uid, series_uid, number or 1, modality, body_part or "")
    protocol, site, subject, visit = codes
    return place, protocol, site, subject, visit, count + 1


def feed_demo_arrival(runtime: Runtime, *, rng: random.Random | None = None) -> int:
    """Write demo images into the drop folder; return how many files were written."""
    rng = rng or random.Random()
    now = datetime.now(UTC)
    with runtime.sessions() as session:
        if not session.scalar(select(exists().where(Study.is_demo))):
            return 0
        # One jobs process feeds at a time; the lock ends with this transaction.
        locked = session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": FEED_LOCK_KEY}
        )
        if not locked:
            return 0
        writer = _image_writer(session)
        # The scan skips this hidden folder inside the drop folder. A rename within
        # one file system is atomic, so the scan never reads half a file.
        staging = runtime.settings.drop_dir / ".demo-staging"
        staging.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        visit = _next_visit(session) if rng.random() < NEW_CASE_SHARE else None
        if visit is not None:
            protocol, site, subject, code, study_id = visit
            document = charter.get_document(session, study_id, None)
            written = list(
                writer.write_case(
                    staging,
                    protocol=protocol,
                    site=site,
                    subject=subject,
                    timepoint=code,
                    taken_at=now,
                    series=series_for(document, code),
                )
            )
        else:
            picked = _recent_series(session, rng)
            if picked is None:
                return 0
            place, protocol, site, subject, code, number = picked
            written = [
                writer.write_instance(
                    staging,
                    place,
                    protocol=protocol,
                    site=site,
                    subject=subject,
                    timepoint=code,
                    taken_at=now,
                    instance_number=number,
                )
            ]
    for path in written:
        os.replace(path, runtime.settings.drop_dir / path.name)
    log.info("Demo arrival: %d file(s) for study %s", len(written), protocol)
    return len(written)
