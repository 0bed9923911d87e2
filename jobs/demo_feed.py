"""Keep the demo portfolio moving: drop a new re-tagged instance every few seconds.

Runs only in the jobs process and only when the database holds the demo portfolio,
so a real deployment never receives demo images.
"""

from __future__ import annotations

import logging
import os
import random
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from core import demo
from core.dicom_synth import retag
from core.models import Case, Site, Sponsor, Study, Subject, Timepoint
from core.runtime import Runtime

log = logging.getLogger(__name__)


def _pick_case(runtime: Runtime) -> tuple[str, str, str, str, str, str] | None:
    """Pick a recent open demo case and return its identifying codes."""
    with runtime.sessions() as session:
        row = session.execute(
            select(
                Sponsor.name,
                Study.protocol_id,
                Site.site_code,
                Subject.subject_code,
                Timepoint.code,
            )
            .join(Study, Study.sponsor_id == Sponsor.id)
            .join(Case, Case.study_id == Study.id)
            .join(Site, Site.id == Case.site_id)
            .join(Subject, Subject.id == Case.subject_id)
            .join(Timepoint, Timepoint.id == Case.timepoint_id)
            .where(Study.is_demo, Case.state.in_(("received", "qc")))
            .order_by(Case.id.desc())
            .limit(50)
        ).all()
    if not row:
        return None
    sponsor, protocol, site, subject, timepoint = random.choice(row)
    modality = next(s.modality for s in demo.DEMO_STUDIES if s.protocol_id == protocol)
    return sponsor, protocol, site, subject, timepoint, modality


def feed_demo_arrival(runtime: Runtime) -> int:
    """Write one new demo instance into the drop folder; return 1 if one was written."""
    picked = _pick_case(runtime)
    if picked is None:
        return 0
    sponsor, protocol, site, subject, timepoint, modality = picked
    staging = runtime.settings.data_dir / "demo-staging"
    staging.mkdir(parents=True, exist_ok=True)
    runtime.settings.drop_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    name = f"demo-{stamp}-{uuid.uuid4().hex[:8]}.dcm"
    retag(
        demo.source_file(modality),
        staging / name,
        sponsor=sponsor,
        protocol=protocol,
        site=site,
        subject=subject,
        timepoint=timepoint,
    )
    # A rename within one file system is atomic: ingest never sees half a file.
    os.replace(staging / name, runtime.settings.drop_dir / name)
    log.info("Demo arrival written for study %s", protocol)
    return 1
