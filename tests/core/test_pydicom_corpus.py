"""Every file of pydicom's test corpus, dropped at once, ends as its table says."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pydicom.data
from sqlalchemy import select

from core.ingest import ingest_folder
from core.models import Exam, Instance, QuarantinedFile, Series
from core.runtime import Runtime
from tests.core.pydicom_corpus import (
    EXPECTED,
    Conflict,
    Duplicate,
    Quarantined,
    Stored,
)

CORPUS = Path(pydicom.data.__file__).parent / "test_files"


def _corpus_files() -> dict[str, str]:
    """Return each corpus file's path relative to the corpus, with its SHA-256."""
    return {
        str(path.relative_to(CORPUS)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(CORPUS.rglob("*"))
        if path.is_file()
    }


def test_table_covers_every_corpus_file() -> None:
    assert sorted(_corpus_files()) == sorted(EXPECTED)


def test_corpus_outcomes_file_by_file(runtime: Runtime) -> None:
    files = _corpus_files()
    shutil.copytree(CORPUS, runtime.settings.drop_dir, dirs_exist_ok=True)

    report = ingest_folder(runtime, runtime.settings.drop_dir)

    with runtime.sessions() as session:
        stored = {
            sha: (sop, series, study)
            for sha, sop, series, study in session.execute(
                select(
                    Instance.content_sha256,
                    Instance.sop_instance_uid,
                    Series.series_instance_uid,
                    Exam.study_instance_uid,
                )
                .join(Series, Series.id == Instance.series_id)
                .join(Exam, Exam.id == Series.exam_id)
            )
        }
        quarantined = {
            sha: (code, sop)
            for sha, code, sop in session.execute(
                select(
                    QuarantinedFile.content_sha256,
                    QuarantinedFile.reason_code,
                    QuarantinedFile.sop_instance_uid,
                )
            )
        }
    stored_uids = {uids[0] for uids in stored.values()}
    for name, sha in files.items():
        expected = EXPECTED[name]
        if isinstance(expected, Stored):
            assert stored.get(sha) == tuple(expected), name
        elif isinstance(expected, Duplicate):
            assert expected.sop_instance_uid in stored_uids, name
            assert sha not in quarantined, name
        elif isinstance(expected, Conflict):
            assert quarantined.get(sha) == ("sop_conflict", expected.sop_instance_uid)
        else:
            assert isinstance(expected, Quarantined)
            assert quarantined.get(sha, (None,))[0] == expected.reason_code, name

    counts = {kind: 0 for kind in (Stored, Duplicate, Conflict, Quarantined)}
    for expected in EXPECTED.values():
        counts[type(expected)] += 1
    assert report.ingested == counts[Stored]
    assert report.duplicates == counts[Duplicate]
    assert report.conflicts == counts[Conflict]
    assert report.quarantined == counts[Quarantined]
    assert [p for p in runtime.settings.drop_dir.rglob("*") if p.is_file()] == []
