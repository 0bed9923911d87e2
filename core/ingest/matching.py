"""Match instances to cases by the DICOM PS3.3 C.7.1.3 clinical trial attributes.

(0012,0020) Protocol ID finds the study, (0012,0030) Site ID the site in it,
(0012,0040) Subject ID (or (0012,0042) Subject Reading ID) the subject and
(0012,0050) Time Point ID the timepoint. A new subject at a known site is enrolled;
anything else unknown or missing leaves the instance unmatched with a finding, so
nothing is merged by guesswork.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core import audit
from core.ingest.header import TrialIds
from core.ingest.values import Finding, shorten
from core.models import Case, Charter, Site, Study, Subject, Timepoint

ACTOR = "system:ingest"
# Longest subject code the subjects table stores; the LO maximum of DICOM PS3.5.
MAX_CODE_LENGTH = 64


@dataclass
class Match:
    """The case an instance belongs to, or the findings saying why there is none."""

    case_id: int | None = None
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Matcher:
    """Resolves trial attributes to cases within one batch transaction."""

    session: Session
    cases_created: int = 0
    _studies: dict[str, Study | None] = field(default_factory=dict)
    _sites: dict[tuple[int, str], Site | None] = field(default_factory=dict)
    _subjects: dict[tuple[int, str], Subject | None] = field(default_factory=dict)
    _timepoints: dict[tuple[int, str], Timepoint | None] = field(default_factory=dict)
    _cases: dict[tuple[int, int], int] = field(default_factory=dict)
    _sla_hours: dict[int, float | None] = field(default_factory=dict)

    def match(self, trial: TrialIds, received_at: datetime) -> Match:
        """Return the instance's case, creating the subject or case when new."""
        result = Match()
        study = self._study(trial.protocol, result)
        if study is None:
            return result
        site = self._site(study, trial.site, result)
        timepoint = self._timepoint(study, trial.timepoint, result)
        if site is None or timepoint is None:
            return result
        subject = self._subject(study, site, trial.subject, result)
        if subject is None:
            return result
        if subject.site_id != site.id:
            result.findings.append(
                Finding(
                    "subject_site_mismatch",
                    f"subject {shorten(subject.subject_code)!r} is enrolled at another "
                    f"site than {shorten(site.site_code)!r}; the case keeps the "
                    "enrolment site",
                    "ClinicalTrialSiteID",
                )
            )
        result.case_id = self._case(study, subject, timepoint, received_at)
        return result

    def _study(self, protocol: str | None, result: Match) -> Study | None:
        if protocol is None:
            result.findings.append(_unmatched("study", "ClinicalTrialProtocolID", None))
            return None
        if protocol not in self._studies:
            self._studies[protocol] = self.session.scalar(
                select(Study).where(Study.protocol_id == protocol)
            )
        study = self._studies[protocol]
        if study is None:
            result.findings.append(
                _unmatched("study", "ClinicalTrialProtocolID", protocol)
            )
        return study

    def _site(self, study: Study, code: str | None, result: Match) -> Site | None:
        if code is None:
            result.findings.append(_unmatched("site", "ClinicalTrialSiteID", None))
            return None
        key = (study.id, code)
        if key not in self._sites:
            self._sites[key] = self.session.scalar(
                select(Site).where(Site.study_id == study.id, Site.site_code == code)
            )
        site = self._sites[key]
        if site is None:
            result.findings.append(_unmatched("site", "ClinicalTrialSiteID", code))
        return site

    def _timepoint(
        self, study: Study, code: str | None, result: Match
    ) -> Timepoint | None:
        if code is None:
            result.findings.append(
                _unmatched("timepoint", "ClinicalTrialTimePointID", None)
            )
            return None
        key = (study.id, code)
        if key not in self._timepoints:
            self._timepoints[key] = self.session.scalar(
                select(Timepoint).where(
                    Timepoint.study_id == study.id, Timepoint.code == code
                )
            )
        timepoint = self._timepoints[key]
        if timepoint is None:
            result.findings.append(
                _unmatched("timepoint", "ClinicalTrialTimePointID", code)
            )
        return timepoint

    def _subject(
        self, study: Study, site: Site | None, code: str | None, result: Match
    ) -> Subject | None:
        if code is None:
            result.findings.append(
                _unmatched("subject", "ClinicalTrialSubjectID", None)
            )
            return None
        key = (study.id, code)
        if key not in self._subjects:
            self._subjects[key] = self.session.scalar(
                select(Subject).where(
                    Subject.study_id == study.id, Subject.subject_code == code
                )
            )
        subject = self._subjects[key]
        if subject is None and len(code) > MAX_CODE_LENGTH:
            result.findings.append(
                Finding(
                    "unmatched_subject",
                    f"ClinicalTrialSubjectID is {len(code)} characters, longer than "
                    f"a subject code ({MAX_CODE_LENGTH}), so it was not enrolled",
                    "ClinicalTrialSubjectID",
                )
            )
            return None
        if subject is None and site is not None:
            subject = self._enrol(study, site, code)
            self._subjects[key] = subject
        if subject is None:
            result.findings.append(
                _unmatched("subject", "ClinicalTrialSubjectID", code)
            )
        return subject

    def _enrol(self, study: Study, site: Site, code: str) -> Subject:
        """Create a subject first seen at a known site: enrolment, not guesswork."""
        subject = Subject(study_id=study.id, site_id=site.id, subject_code=code)
        self.session.add(subject)
        self.session.flush()
        audit.record(
            self.session,
            actor=ACTOR,
            action="subject.created",
            entity_type="subject",
            entity_id=subject.id,
            study_id=study.id,
            new={"subject_code": code, "site_id": site.id},
            reason="first instance received for this subject",
        )
        return subject

    def _case(
        self,
        study: Study,
        subject: Subject,
        timepoint: Timepoint,
        received_at: datetime,
    ) -> int:
        key = (subject.id, timepoint.id)
        case_id = self._cases.get(key)
        if case_id is not None:
            return case_id
        case_id = self._create_case(study, subject, timepoint, received_at)
        if case_id is None:
            case_id = self.session.scalar(
                select(Case.id).where(
                    Case.subject_id == subject.id, Case.timepoint_id == timepoint.id
                )
            )
            assert case_id is not None
        self._cases[key] = case_id
        return case_id

    def _create_case(
        self,
        study: Study,
        subject: Subject,
        timepoint: Timepoint,
        received_at: datetime,
    ) -> int | None:
        """Insert the case unless it exists; return its id only when created here."""
        due_at = self._due_at(study, received_at)
        values = {
            "study_id": study.id,
            "site_id": subject.site_id,
            "subject_id": subject.id,
            "timepoint_id": timepoint.id,
            "state": "received",
            "charter_version": study.charter_version,
            "first_received_at": received_at,
            "last_received_at": received_at,
            "due_at": due_at,
        }
        case_id = self.session.scalar(
            insert(Case)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["subject_id", "timepoint_id"])
            .returning(Case.id)
        )
        if case_id is None:
            return None
        self.cases_created += 1
        audit.record(
            self.session,
            actor=ACTOR,
            action="case.created",
            entity_type="case",
            entity_id=case_id,
            study_id=study.id,
            new=values,
            reason="first instance received for this subject timepoint",
        )
        return case_id

    def _due_at(self, study: Study, received_at: datetime) -> datetime | None:
        """Return arrival + the charter's `sla.total_hours`, when the charter has it."""
        if study.id not in self._sla_hours:
            self._sla_hours[study.id] = self._total_hours(study)
        hours = self._sla_hours[study.id]
        return None if hours is None else received_at + timedelta(hours=hours)

    def _total_hours(self, study: Study) -> float | None:
        if study.charter_version is None:
            return None
        document = self.session.scalar(
            select(Charter.document).where(
                Charter.study_id == study.id, Charter.version == study.charter_version
            )
        )
        hours = (document or {}).get("sla", {}).get("total_hours")
        if not isinstance(hours, int | float) or isinstance(hours, bool):
            return None
        return float(hours)

    def touched_case_ids(self) -> list[int]:
        return sorted(set(self._cases.values()))


def _unmatched(what: str, keyword: str, value: str | None) -> Finding:
    if value is None:
        message = f"{keyword} is missing or empty, so the {what} is unknown"
    else:
        message = f"{keyword} {shorten(value)!r} matches no {what} of record"
    return Finding(f"unmatched_{what}", message, keyword)
