"""SQLAlchemy models: the schema of record.

Vocabulary: a *study* is a clinical trial; a DICOM StudyInstanceUID is an *exam*.
A *case* is one subject timepoint's imaging. All times are UTC `timestamptz`.
States are text columns with CHECK constraints, so a later migration can add a state
without rewriting a PostgreSQL enum type.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CASE_STATES = (
    "received",
    "qc",
    "query",
    "reading",
    "adjudication",
    "done",
    "on_hold",
    "cancelled",
)
OPEN_CASE_STATES = ("received", "qc", "query", "reading", "adjudication", "on_hold")
READ_KINDS = ("primary", "secondary", "adjudication", "reread")
READ_STATES = ("unassigned", "assigned", "in_progress", "signed", "cancelled")
ROLES = ("admin", "leadership", "study_manager", "qc_reviewer", "reader", "sponsor")
# RECIST 1.1 responses; "non-CR/non-PD" comes from its Table 2 (non-target only).
RESPONSES = ("CR", "PR", "SD", "PD", "NE", "non-CR/non-PD")


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


# --- Trials ---------------------------------------------------------------


class Sponsor(Base):
    __tablename__ = "sponsors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = _now()


class Study(Base):
    """A clinical trial, keyed by its protocol id (DICOM (0012,0020))."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    sponsor_id: Mapped[int] = mapped_column(ForeignKey("sponsors.id"), index=True)
    protocol_id: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300), default="")
    charter_version: Mapped[int | None] = mapped_column(Integer)
    leadership_email: Mapped[str | None] = mapped_column(String(254))
    is_demo: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = _now()


class Charter(Base):
    """One version of a study's imaging charter; versions are never edited."""

    __tablename__ = "charters"
    __table_args__ = (UniqueConstraint("study_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    source_text: Mapped[str] = mapped_column(Text, default="")
    loaded_by: Mapped[str] = mapped_column(String(150))
    loaded_at: Mapped[datetime] = _now()


class Site(Base):
    """A scanning site of one study, keyed by DICOM (0012,0030) Site ID."""

    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("study_id", "site_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    site_code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    qualified: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _now()


class Subject(Base):
    """A trial participant by pseudonymous id; never a patient name."""

    __tablename__ = "subjects"
    __table_args__ = (
        UniqueConstraint("study_id", "subject_code"),
        # A study's subjects in id order, for the missing-visit anti-joins.
        Index("ix_subjects_study_id_id", "study_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    subject_code: Mapped[str] = mapped_column(String(64))
    enrolled_on: Mapped[date | None] = mapped_column(Date)
    # Readers are blinded to the arm; only the data access layer for admins sees it.
    treatment_arm: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()


class Timepoint(Base):
    """A scheduled visit of a study, keyed by DICOM (0012,0050) Time Point ID."""

    __tablename__ = "timepoints"
    __table_args__ = (UniqueConstraint("study_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    code: Mapped[str] = mapped_column(String(64))
    ordinal: Mapped[int] = mapped_column(Integer, default=0)
    target_day: Mapped[int | None] = mapped_column(Integer)
    window_days: Mapped[int | None] = mapped_column(Integer)
    is_baseline: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class Case(Base):
    """One subject timepoint's imaging: the unit of QC, reading and turnaround."""

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("subject_id", "timepoint_id"),
        CheckConstraint(_in("state", CASE_STATES), name="state"),
        Index(
            "ix_cases_open_study_state",
            "study_id",
            "state",
            postgresql_include=["first_received_at", "due_at", "id"],
            postgresql_where=text(f"{_in('state', OPEN_CASE_STATES)}"),
        ),
        Index("ix_cases_study_received", "study_id", "first_received_at"),
        Index("ix_cases_study_completed", "study_id", "completed_at"),
        # The dashboard's figures over a date range of every study in scope.
        Index(
            "ix_cases_done_completed",
            "completed_at",
            postgresql_include=["study_id", "first_received_at", "due_at"],
            postgresql_where=text("state = 'done'"),
        ),
        Index(
            "ix_cases_received",
            "first_received_at",
            postgresql_include=["study_id", "state"],
        ),
        Index(
            "ix_cases_cancelled_changed",
            "state_changed_at",
            postgresql_include=["study_id"],
            postgresql_where=text("state = 'cancelled'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    timepoint_id: Mapped[int] = mapped_column(ForeignKey("timepoints.id"))
    state: Mapped[str] = mapped_column(String(20), server_default="received")
    charter_version: Mapped[int | None] = mapped_column(Integer)
    # The turnaround clock starts at the first instance's arrival, not StudyDate.
    first_received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state_changed_at: Mapped[datetime] = _now()
    urgent: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    is_demo: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = _now()


# --- DICOM ------------------------------------------------------------------


class Exam(Base):
    """A DICOM study (StudyInstanceUID); `case_id` is null while unmatched."""

    __tablename__ = "exams"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(Text, unique=True)
    study_date: Mapped[date | None] = mapped_column(Date)
    accession_number: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(Text, unique=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    body_part: Mapped[str | None] = mapped_column(String(64))
    series_number: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class Instance(Base):
    """A stored SOP instance; the archived file is the copy of record."""

    __tablename__ = "instances"
    __table_args__ = (Index("ix_instances_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(Text, unique=True)
    sop_class_uid: Mapped[str | None] = mapped_column(Text)
    transfer_syntax_uid: Mapped[str | None] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    archive_path: Mapped[str] = mapped_column(Text)
    number_of_frames: Mapped[int | None] = mapped_column(Integer)
    slice_thickness_mm: Mapped[float | None] = mapped_column(Float)
    acquisition_date: Mapped[date | None] = mapped_column(Date)
    # Clinical trial attributes as sent, kept for matching and for resolving unmatched.
    ct_sponsor: Mapped[str | None] = mapped_column(Text)
    ct_protocol: Mapped[str | None] = mapped_column(Text)
    ct_site: Mapped[str | None] = mapped_column(Text)
    ct_subject: Mapped[str | None] = mapped_column(Text)
    ct_timepoint: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    calling_ae: Mapped[str | None] = mapped_column(String(64))
    calling_host: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InstanceFinding(Base):
    """A header quirk found at ingest (code + plain message); feeds QC."""

    __tablename__ = "instance_findings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)
    blocking: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class QuarantinedFile(Base):
    """A file that could not be ingested, kept with the reason a person can act on."""

    __tablename__ = "quarantined_files"
    __table_args__ = (
        Index(
            "ix_quarantined_files_open",
            "received_at",
            postgresql_where=text("released_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    original_name: Mapped[str] = mapped_column(Text)
    stored_path: Mapped[str] = mapped_column(Text)
    reason_code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    sop_instance_uid: Mapped[str | None] = mapped_column(Text)
    conflict_instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id"))
    source: Mapped[str] = mapped_column(String(16))
    calling_ae: Mapped[str | None] = mapped_column(String(64))
    calling_host: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_by: Mapped[str | None] = mapped_column(String(150))


# --- Readers and reads --------------------------------------------------------


class Reader(Base):
    """A qualified radiologist with capacity, working hours and a time zone."""

    __tablename__ = "readers"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    daily_capacity: Mapped[int] = mapped_column(Integer, server_default=text("20"))
    work_start_hour: Mapped[int] = mapped_column(Integer, server_default=text("8"))
    work_end_hour: Mapped[int] = mapped_column(Integer, server_default=text("18"))
    open_reads: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _now()


class ReaderTraining(Base):
    """A reader's training record for one study's response criteria."""

    __tablename__ = "reader_trainings"
    __table_args__ = (UniqueConstraint("reader_id", "study_id", "criteria"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    criteria: Mapped[str] = mapped_column(String(32))
    trained_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date)


class ReaderAbsence(Base):
    """An out-of-office period of a reader."""

    __tablename__ = "reader_absences"

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text, default="")


class Read(Base):
    """One reader's assessment task on a case."""

    __tablename__ = "reads"
    __table_args__ = (
        CheckConstraint(_in("kind", READ_KINDS), name="kind"),
        CheckConstraint(_in("state", READ_STATES), name="state"),
        CheckConstraint(
            f"response IS NULL OR {_in('response', RESPONSES)}", name="response"
        ),
        # One live read of each kind per case; cancelled ones stay for the record.
        Index(
            "uq_reads_case_kind_live",
            "case_id",
            "kind",
            unique=True,
            postgresql_where=text("state <> 'cancelled' AND kind <> 'reread'"),
        ),
        Index(
            "ix_reads_unassigned",
            "id",
            postgresql_where=text("state = 'unassigned'"),
        ),
        Index("ix_reads_reader_state", "reader_id", "state"),
        # The SLA sweep and triage read only the open reads of open cases.
        Index(
            "ix_reads_open_case",
            "case_id",
            postgresql_where=text("state IN ('unassigned', 'assigned', 'in_progress')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), server_default="unassigned")
    reader_id: Mapped[int | None] = mapped_column(ForeignKey("readers.id"))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assessment: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    response: Mapped[str | None] = mapped_column(String(16))
    signature_name: Mapped[str | None] = mapped_column(String(200))
    signature_meaning: Mapped[str | None] = mapped_column(String(200))
    chosen_read_id: Mapped[int | None] = mapped_column(ForeignKey("reads.id"))
    created_at: Mapped[datetime] = _now()


# --- QC ---------------------------------------------------------------------


class QcCheck(Base):
    """The result of one automated QC check on a case."""

    __tablename__ = "qc_checks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    check: Mapped[str] = mapped_column(String(64))
    passed: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(Text, default="")
    blocking: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    run_at: Mapped[datetime] = _now()


class Query(Base):
    """A QC query raised to the site; closed when the site re-uploads or answers."""

    __tablename__ = "queries"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'resolved', 'cancelled')", name="state"),
        Index(
            "ix_queries_open",
            "case_id",
            postgresql_include=["opened_at"],
            postgresql_where=text("state = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    reason_code: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), server_default="open")
    opened_by: Mapped[str] = mapped_column(String(150))
    opened_at: Mapped[datetime] = _now()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(Text)


# --- Alerts -------------------------------------------------------------------


class Alert(Base):
    """An SLA alert; at most one per (case, step, kind), enforced by the database."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("case_id", "step", "kind"),
        Index(
            "ix_alerts_open",
            "created_at",
            postgresql_where=text("acknowledged_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    step: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    emailed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    webhook_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(150))


# --- Accounts -----------------------------------------------------------------


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    failed_logins: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()


class StudyGrant(Base):
    """Grants a user (study manager, sponsor, reader, QC reviewer) one study."""

    __tablename__ = "study_grants"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)


# --- Audit and operations -----------------------------------------------------


class AuditEntry(Base):
    """An append-only audit row (21 CFR 11.10(e)) chained to the previous row's hash."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_entity", "entity_type", "entity_id"),
        Index("ix_audit_log_study_id", "study_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(150))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    study_id: Mapped[int | None] = mapped_column(Integer)
    old_values: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    new_values: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    reason: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)


class JobRun(Base):
    """One run of a scheduled job, for the last-success and stale-job figures."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_finished", "job", "finished_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ok: Mapped[bool | None] = mapped_column(Boolean)
    items: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)


# --- SLA digests and model quality ----------------------------------------------


class AlertDigest(Base):
    """One daily alert digest sent to a user, at most one per local calendar date."""

    __tablename__ = "alert_digests"
    __table_args__ = (UniqueConstraint("user_id", "local_date"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The date in the user's time zone; claimed before sending, so a re-run skips it.
    local_date: Mapped[date] = mapped_column(Date)
    timezone: Mapped[str] = mapped_column(String(64))
    alerts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = _now()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TriageBacktest(Base):
    """The measured quality of the breach predictor on one study's (or all) history."""

    __tablename__ = "triage_backtests"
    __table_args__ = (Index("ix_triage_backtests_study_run", "study_id", "run_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"))
    run_at: Mapped[datetime] = _now()
    threshold: Mapped[float] = mapped_column(Float)
    cases: Mapped[int] = mapped_column(Integer)
    breaches: Mapped[int] = mapped_column(Integer)
    predicted: Mapped[int] = mapped_column(Integer)
    true_positives: Mapped[int] = mapped_column(Integer)
    precision: Mapped[float | None] = mapped_column(Float)
    recall: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB)


class TriageStudyRate(Base):
    """A study's fitted read-time figures (hours) for triage and breach prediction."""

    __tablename__ = "triage_study_rates"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    mean_hours: Mapped[float | None] = mapped_column(Float)
    spread: Mapped[float | None] = mapped_column(Float)
    mean_wait: Mapped[float | None] = mapped_column(Float)
    adjudication_hours: Mapped[float | None] = mapped_column(Float)
    adjudication_rate: Mapped[float | None] = mapped_column(Float)
    reads: Mapped[int] = mapped_column(Integer)
    fitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TriageReaderRate(Base):
    """A reader's fitted mean read hours on one modality of one study."""

    __tablename__ = "triage_reader_rates"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"), primary_key=True)
    modality: Mapped[str] = mapped_column(String(16), primary_key=True)
    hours: Mapped[float] = mapped_column(Float)
    reads: Mapped[int] = mapped_column(Integer)


class TriageCaseModality(Base):
    """An open case's modality (the least of its series' modalities), cached by the
    triage fit job so SLA sweeps need not scan every exam and series."""

    __tablename__ = "triage_case_modalities"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    modality: Mapped[str] = mapped_column(String(16))


# --- Dashboard rollups ----------------------------------------------------------


class DashboardFigure(Base):
    """Turnaround, SLA, QC and adjudication figures of one study or sponsor over the
    last `range_days` days, computed by the jobs process (`core.rollups`)."""

    __tablename__ = "dashboard_figures"
    __table_args__ = (
        CheckConstraint("group_kind IN ('study', 'sponsor')", name="group_kind"),
    )

    group_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    range_days: Mapped[int] = mapped_column(Integer, primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    done_cases: Mapped[int] = mapped_column(Integer)
    median_hours: Mapped[float | None] = mapped_column(Float)
    p90_hours: Mapped[float | None] = mapped_column(Float)
    sla_met_pct: Mapped[float | None] = mapped_column(Float)
    qc_first_pass_pct: Mapped[float | None] = mapped_column(Float)
    adjudication_pct: Mapped[float | None] = mapped_column(Float)


class CaseDailyCount(Base):
    """Cases of a study opened (first arrival) and closed (done or cancelled) on one
    UTC day, counting only events before `RollupMark.counted_before`."""

    __tablename__ = "case_daily_counts"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    arrivals: Mapped[int] = mapped_column(Integer)
    closures: Mapped[int] = mapped_column(Integer)


class RollupMark(Base):
    """The time up to which a rollup table counted; later events are read live."""

    __tablename__ = "rollup_marks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    counted_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))
