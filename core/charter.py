"""Study charters: YAML documents validated on load and stored as numbered versions.

A charter fixes a study's imaging rules: the visit schedule, the series each visit
requires, QC rules, the read design, response criteria, the discordance rule, SLA
targets in hours and blinding. Versions are never edited: loading stores the next
version, and each case keeps the version it started under.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, SessionTransaction

from core import audit
from core.models import OPEN_CASE_STATES, Case, Charter, Sponsor, Study, Timepoint

log = logging.getLogger(__name__)

READ_DESIGNS = ("single", "double")
# Only RECIST 1.1 has a response calculator so far; the field leaves room for the
# criteria that other studies use.
SUPPORTED_CRITERIA = ("RECIST 1.1",)
DISCORDANCE_RULES = ("response", "progression", "progression_date")
CLINICAL_TRIAL_ATTRIBUTES = ("sponsor", "protocol", "site", "subject", "timepoint")
SLA_STEPS = ("total_hours", "qc_hours", "read_hours", "adjudication_hours")
DEFAULT_FAILURE_REASONS = (
    "missing_series",
    "wrong_modality",
    "slice_thickness",
    "out_of_window",
    "phi_present",
    "image_quality",
    "other",
)


class CharterError(ValueError):
    """A charter document is invalid; `problems` lists each field and value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid charter: " + "; ".join(problems))


@dataclass(frozen=True)
class LoadResult:
    """A stored charter version and the open cases of the study it affects."""

    study_id: int
    version: int
    affected_case_ids: list[int]


def parse(source_text: str) -> dict[str, Any]:
    """Parse and validate YAML text, raising CharterError with every problem found."""
    try:
        document = yaml.safe_load(source_text)
    except yaml.YAMLError as exc:
        raise CharterError([f"invalid YAML: {exc}"]) from None
    if not isinstance(document, dict):
        raise CharterError(["the document must be a mapping of charter fields"])
    problems: list[str] = []
    _check_visits(document, problems)
    _check_required_series(document, problems)
    _check_qc(document, problems)
    _check_reads(document, problems)
    _check_sla(document, problems)
    if problems:
        raise CharterError(problems)
    return _with_defaults(document)


def _field(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _number(
    problems: list[str], path: str, value: Any, *, required: bool, positive: bool
) -> None:
    if value is None:
        if required:
            problems.append(f"{path} is missing")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(f"{path} is {value!r}, not a number")
    elif positive and value <= 0:
        problems.append(f"{path} is {value!r}; it must be greater than 0")


def _check_visits(document: dict[str, Any], problems: list[str]) -> None:
    visits = document.get("visits")
    if not isinstance(visits, list) or not visits:
        problems.append("visits is missing or empty; list each timepoint")
        return
    codes: set[str] = set()
    for i, visit in enumerate(visits):
        path = f"visits[{i}]"
        if not isinstance(visit, dict):
            problems.append(f"{path} is {visit!r}, not a mapping")
            continue
        code = visit.get("code")
        if not isinstance(code, str) or not code.strip():
            problems.append(f"{path}.code is {code!r}; give the Time Point ID")
        elif code in codes:
            problems.append(f"{path}.code {code!r} is used twice")
        else:
            codes.add(code)
        for name in ("target_day", "window_days"):
            value = visit.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int)
            ):
                problems.append(f"{path}.{name} is {value!r}, not a whole number")
    baselines = [v for v in visits if isinstance(v, dict) and v.get("baseline")]
    if len(baselines) != 1:
        problems.append(
            f"visits has {len(baselines)} baseline visits; mark exactly one"
        )


def _check_required_series(document: dict[str, Any], problems: list[str]) -> None:
    required = document.get("required_series") or {}
    if not isinstance(required, dict):
        problems.append(
            "required_series must map a visit code (or 'default') to a list"
        )
        return
    codes = {v.get("code") for v in document.get("visits") or [] if isinstance(v, dict)}
    for key, rules in required.items():
        if key != "default" and key not in codes:
            problems.append(f"required_series.{key} names no visit in visits")
        if not isinstance(rules, list):
            problems.append(f"required_series.{key} is {rules!r}, not a list")
            continue
        for i, rule in enumerate(rules):
            path = f"required_series.{key}[{i}]"
            if not isinstance(rule, dict) or not isinstance(rule.get("modality"), str):
                problems.append(f"{path} needs a modality, such as CT")
                continue
            _number(
                problems,
                f"{path}.min_series",
                rule.get("min_series", 1),
                required=True,
                positive=True,
            )


def _check_qc(document: dict[str, Any], problems: list[str]) -> None:
    qc = document.get("qc") or {}
    if not isinstance(qc, dict):
        problems.append(f"qc is {qc!r}, not a mapping")
        return
    modalities = qc.get("allowed_modalities")
    if not isinstance(modalities, list) or not all(
        isinstance(m, str) for m in modalities
    ):
        problems.append(f"qc.allowed_modalities is {modalities!r}; list modality codes")
    _number(
        problems,
        "qc.max_slice_thickness_mm",
        qc.get("max_slice_thickness_mm"),
        required=False,
        positive=True,
    )
    _number(
        problems,
        "qc.quiet_period_minutes",
        qc.get("quiet_period_minutes"),
        required=False,
        positive=True,
    )
    for name in qc.get("required_attributes") or []:
        if name not in CLINICAL_TRIAL_ATTRIBUTES:
            problems.append(
                f"qc.required_attributes has {name!r}; "
                f"expected some of {CLINICAL_TRIAL_ATTRIBUTES}"
            )
    reasons = qc.get("failure_reasons")
    if reasons is not None and (
        not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons)
    ):
        problems.append(f"qc.failure_reasons is {reasons!r}; list reason codes")


def _check_reads(document: dict[str, Any], problems: list[str]) -> None:
    design = _field(document, "read_design.type")
    if design not in READ_DESIGNS:
        problems.append(
            f"read_design.type is {design!r}; expected one of {READ_DESIGNS}"
        )
    criteria = document.get("response_criteria")
    if criteria not in SUPPORTED_CRITERIA:
        problems.append(
            f"response_criteria is {criteria!r}; supported: {SUPPORTED_CRITERIA}"
        )
    rule = _field(document, "discordance.rule") or "response"
    if rule not in DISCORDANCE_RULES:
        problems.append(
            f"discordance.rule is {rule!r}; expected one of {DISCORDANCE_RULES}"
        )
    if rule == "progression_date":
        _number(
            problems,
            "discordance.max_days",
            _field(document, "discordance.max_days"),
            required=True,
            positive=True,
        )


def _check_sla(document: dict[str, Any], problems: list[str]) -> None:
    sla = document.get("sla")
    if not isinstance(sla, dict):
        problems.append("sla is missing; give at least sla.total_hours")
        return
    for name in SLA_STEPS:
        _number(
            problems,
            f"sla.{name}",
            sla.get(name),
            required=name == "total_hours",
            positive=True,
        )
    for name in sla:
        if name not in SLA_STEPS:
            problems.append(f"sla.{name} is not a known step; expected {SLA_STEPS}")


def _with_defaults(document: dict[str, Any]) -> dict[str, Any]:
    result = dict(document)
    result["required_series"] = document.get("required_series") or {}
    qc = dict(document.get("qc") or {})
    qc.setdefault("acquisition_in_window", True)
    qc.setdefault("phi_blocking", True)
    qc.setdefault("required_attributes", list(CLINICAL_TRIAL_ATTRIBUTES))
    qc.setdefault("failure_reasons", list(DEFAULT_FAILURE_REASONS))
    qc.setdefault("quiet_period_minutes", 120)
    result["qc"] = qc
    read_design = dict(document["read_design"])
    read_design.setdefault("adjudication", read_design["type"] == "double")
    result["read_design"] = read_design
    result["discordance"] = {"rule": "response", **(document.get("discordance") or {})}
    blinding = {"treatment_arm": True, "other_reads": True, "other_sites": True}
    result["blinding"] = {**blinding, **(document.get("blinding") or {})}
    return result


def required_series_for(
    document: dict[str, Any], visit_code: str
) -> list[dict[str, Any]]:
    """Return the series rules of one visit, or the charter's default rules."""
    rules = document["required_series"]
    return list(rules.get(visit_code, rules.get("default", [])))


_DOCUMENTS_KEY = "imagingops.charter_documents"


@event.listens_for(Session, "after_transaction_end")
def _forget_documents(session: Session, transaction: SessionTransaction) -> None:
    # A rolled-back charter load may leave a version number free for another document.
    session.info.pop(_DOCUMENTS_KEY, None)


def get_document(
    session: Session, study_id: int, version: int | None
) -> dict[str, Any]:
    """Return a stored charter version (the study's current one when None).

    A stored version never changes, so the session keeps each document it has read
    until the transaction or savepoint ends. Callers must not modify the document.
    """
    if version is None:
        version = session.scalar(
            select(Study.charter_version).where(Study.id == study_id)
        )
    cache: dict[tuple[int, int | None], dict[str, Any]] = session.info.setdefault(
        _DOCUMENTS_KEY, {}
    )
    document = cache.get((study_id, version))
    if document is None:
        document = session.scalar(
            select(Charter.document).where(
                Charter.study_id == study_id, Charter.version == version
            )
        )
        if document is None:
            raise LookupError(f"study {study_id} has no charter version {version}")
        cache[(study_id, version)] = document
    return document


def load(
    session: Session,
    protocol_id: str,
    source_text: str,
    *,
    actor: str,
    reason: str | None = None,
) -> LoadResult:
    """Validate and store a new charter version of a study, with its audit row.

    The study is created when it does not exist and the charter names its sponsor.
    A change to an existing charter requires a reason.
    """
    document = parse(source_text)
    named = document.get("study")
    if named is not None and named != protocol_id:
        raise CharterError(
            [f"study is {named!r} in the charter but {protocol_id!r} was given"]
        )
    study = session.scalar(
        select(Study).where(Study.protocol_id == protocol_id).with_for_update()
    )
    if study is None:
        study = _create_study(session, protocol_id, document, actor=actor)
    elif study.charter_version is not None and not (reason or "").strip():
        raise CharterError(
            [f"a reason is required to change the charter of {protocol_id}"]
        )
    version = (study.charter_version or 0) + 1
    session.add(
        Charter(
            study_id=study.id,
            version=version,
            document=document,
            source_text=source_text,
            loaded_by=actor,
        )
    )
    _sync_timepoints(session, study.id, document)
    old_version = study.charter_version
    study.charter_version = version
    affected = _open_cases_on_older_version(session, study.id, version)
    audit.record(
        session,
        actor=actor,
        action="charter.load",
        entity_type="study",
        entity_id=study.id,
        study_id=study.id,
        old={"charter_version": old_version},
        new={"charter_version": version, "affected_open_cases": affected},
        reason=reason,
    )
    log.info("Stored charter version %s of study %s", version, study.id)
    return LoadResult(study.id, version, affected)


def _create_study(
    session: Session, protocol_id: str, document: dict[str, Any], *, actor: str
) -> Study:
    sponsor_name = document.get("sponsor")
    if not isinstance(sponsor_name, str) or not sponsor_name.strip():
        raise CharterError(
            [f"study {protocol_id} does not exist, and sponsor is missing to create it"]
        )
    sponsor = session.scalar(select(Sponsor).where(Sponsor.name == sponsor_name))
    if sponsor is None:
        sponsor = Sponsor(name=sponsor_name)
        session.add(sponsor)
        session.flush()
    study = Study(
        sponsor_id=sponsor.id,
        protocol_id=protocol_id,
        title=str(document.get("title") or ""),
    )
    session.add(study)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="study.create",
        entity_type="study",
        entity_id=study.id,
        study_id=study.id,
        new={"protocol_id": protocol_id, "sponsor": sponsor_name},
    )
    return study


def _sync_timepoints(session: Session, study_id: int, document: dict[str, Any]) -> None:
    """Create or update the study's timepoints from the visit schedule."""
    existing = {
        tp.code: tp
        for tp in session.scalars(
            select(Timepoint).where(Timepoint.study_id == study_id)
        )
    }
    for ordinal, visit in enumerate(document["visits"]):
        values = {
            "ordinal": ordinal,
            "target_day": visit.get("target_day"),
            "window_days": visit.get("window_days"),
            "is_baseline": bool(visit.get("baseline", False)),
        }
        timepoint = existing.get(visit["code"])
        if timepoint is None:
            session.add(Timepoint(study_id=study_id, code=visit["code"], **values))
            continue
        for name, value in values.items():
            setattr(timepoint, name, value)
    session.flush()


def _open_cases_on_older_version(
    session: Session, study_id: int, version: int
) -> list[int]:
    """Return the open cases that keep an earlier charter version."""
    rows = session.scalars(
        select(Case.id)
        .where(
            Case.study_id == study_id,
            Case.state.in_(OPEN_CASE_STATES),
            func.coalesce(Case.charter_version, 0) < version,
        )
        .order_by(Case.id)
    )
    return list(rows)


def describe_cases(session: Session, case_ids: list[int]) -> list[dict[str, Any]]:
    """Return the id, state and kept charter version of each case, by id."""
    rows = session.execute(
        select(Case.id, Case.state, Case.charter_version)
        .where(Case.id.in_(case_ids))
        .order_by(Case.id)
    ).mappings()
    return [dict(row) for row in rows]
