"""The demo feed: new demo images go through the drop folder into cases."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime

from sqlalchemy import func, select, text, update

from core import demo
from core.models import Case, Exam, Instance, Series, Study, Subject, Timepoint
from core.runtime import Runtime
from jobs import demo_feed
from jobs.demo_feed import feed_demo_arrival
from jobs.ingest import scan_drop_folder


class Always(random.Random):
    """A random source whose draws are fixed, to pick the feed's branch."""

    def __init__(self, draw: float) -> None:
        super().__init__(0)
        self.draw = draw

    def random(self) -> float:
        return self.draw


def _ingest_all(runtime: Runtime) -> int:
    # The scan takes only files whose size has been stable; age them.
    long_ago = time.time() - 3600
    for path in runtime.settings.drop_dir.glob("*.dcm"):
        os.utime(path, (long_ago, long_ago))
    return scan_drop_folder(runtime)


def test_feed_writes_nothing_without_demo_studies(runtime: Runtime) -> None:
    assert feed_demo_arrival(runtime) == 0
    assert not list(runtime.settings.drop_dir.glob("*.dcm"))


def test_feed_adds_a_visit_then_an_instance(runtime: Runtime) -> None:
    plan = demo.plan_portfolio(datetime.now(UTC))
    with runtime.sessions.begin() as session:
        study_ids = demo.load_charters(session)
        demo.register_sites_and_subjects(session, study_ids, plan)
        # Keep one study only, so the chosen subject is known in advance.
        session.execute(
            update(Study).where(Study.protocol_id != "ONC-301").values(is_demo=False)
        )

    written = feed_demo_arrival(runtime, rng=Always(0.0))
    baseline = demo.series_for(
        demo.charter.parse(demo.charter_path("ONC-301").read_text()), "BASELINE"
    )
    assert written == len(baseline)
    assert _ingest_all(runtime) == written
    with runtime.sessions() as session:
        case = session.execute(
            select(Study.protocol_id, Timepoint.code, Case.state)
            .join(Study, Study.id == Case.study_id)
            .join(Timepoint, Timepoint.id == Case.timepoint_id)
            .join(Subject, Subject.id == Case.subject_id)
        ).one()
        assert tuple(case) == ("ONC-301", "BASELINE", "received")
        series_count = session.scalar(select(func.count()).select_from(Series))
        assert series_count == len(baseline)

    # The other branch adds one instance to a series of that open case.
    assert feed_demo_arrival(runtime, rng=Always(0.99)) == 1
    assert _ingest_all(runtime) == 1
    with runtime.sessions() as session:
        per_series = session.execute(
            select(func.count(Instance.id))
            .join(Series, Series.id == Instance.series_id)
            .join(Exam, Exam.id == Series.exam_id)
            .group_by(Series.id)
            .order_by(func.count(Instance.id).desc())
        ).scalars()
        assert list(per_series) == [2] + [1] * (len(baseline) - 1)
        assert session.scalar(select(func.count()).select_from(Case)) == 1


def test_feed_waits_for_another_process(runtime: Runtime) -> None:
    """While another process holds the feed's lock, the step writes nothing."""
    plan = demo.plan_portfolio(datetime.now(UTC))
    with runtime.sessions.begin() as session:
        study_ids = demo.load_charters(session)
        demo.register_sites_and_subjects(session, study_ids, plan)
    with runtime.engine.connect() as other:
        other.execute(
            text("SELECT pg_advisory_lock(:key)"), {"key": demo_feed.FEED_LOCK_KEY}
        )
        assert feed_demo_arrival(runtime, rng=Always(0.0)) == 0
        other.execute(
            text("SELECT pg_advisory_unlock(:key)"), {"key": demo_feed.FEED_LOCK_KEY}
        )
    assert feed_demo_arrival(runtime, rng=Always(0.0)) > 0
