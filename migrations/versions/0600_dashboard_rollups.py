"""Dashboard rollup tables and covering indexes for its figures

Revision ID: 0600
Revises: 0302
Create Date: 2026-12-04 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0600"
down_revision = "0302"
branch_labels = None
depends_on = None

OPEN_STATES = "state IN ('received', 'qc', 'query', 'reading', 'adjudication', 'on_hold')"


def upgrade() -> None:
    # Open-case counts, age buckets, past-due counts and the open-query join
    # read only the index.
    op.drop_index("ix_cases_open_study_state", table_name="cases")
    op.create_index(
        "ix_cases_open_study_state",
        "cases",
        ["study_id", "state"],
        postgresql_include=["first_received_at", "due_at", "id"],
        postgresql_where=sa.text(OPEN_STATES),
    )
    # Turnaround and SLA figures of cases done in a date range, across studies.
    op.create_index(
        "ix_cases_done_completed",
        "cases",
        ["completed_at"],
        postgresql_include=["study_id", "first_received_at", "due_at"],
        postgresql_where=sa.text("state = 'done'"),
    )
    # QC and adjudication figures of cases received in a date range.
    op.create_index(
        "ix_cases_received",
        "cases",
        ["first_received_at"],
        postgresql_include=["study_id", "state"],
    )
    # Cancellations after the daily rollup's mark, for the backlog trend.
    op.create_index(
        "ix_cases_cancelled_changed",
        "cases",
        ["state_changed_at"],
        postgresql_include=["study_id"],
        postgresql_where=sa.text("state = 'cancelled'"),
    )
    op.drop_index("ix_queries_open", table_name="queries")
    op.create_index(
        "ix_queries_open",
        "queries",
        ["case_id"],
        postgresql_include=["opened_at"],
        postgresql_where=sa.text("state = 'open'"),
    )
    # A study's subjects in id order, for the missing-visit anti-joins.
    op.create_index("ix_subjects_study_id_id", "subjects", ["study_id", "id"])
    _create_rollup_tables()


def _create_rollup_tables() -> None:
    op.create_table(
        "dashboard_figures",
        sa.Column("group_kind", sa.String(length=16), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("range_days", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_cases", sa.Integer(), nullable=False),
        sa.Column("median_hours", sa.Float(), nullable=True),
        sa.Column("p90_hours", sa.Float(), nullable=True),
        sa.Column("sla_met_pct", sa.Float(), nullable=True),
        sa.Column("qc_first_pass_pct", sa.Float(), nullable=True),
        sa.Column("adjudication_pct", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "group_kind IN ('study', 'sponsor')",
            name=op.f("ck_dashboard_figures_group_kind"),
        ),
        sa.PrimaryKeyConstraint(
            "group_kind", "group_id", "range_days", name=op.f("pk_dashboard_figures")
        ),
    )
    op.create_table(
        "case_daily_counts",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("arrivals", sa.Integer(), nullable=False),
        sa.Column("closures", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_case_daily_counts_study_id_studies"),
        ),
        sa.PrimaryKeyConstraint("study_id", "day", name=op.f("pk_case_daily_counts")),
    )
    op.create_table(
        "rollup_marks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("counted_before", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rollup_marks")),
    )


def downgrade() -> None:
    op.drop_table("rollup_marks")
    op.drop_table("case_daily_counts")
    op.drop_table("dashboard_figures")
    op.drop_index("ix_subjects_study_id_id", table_name="subjects")
    op.drop_index("ix_queries_open", table_name="queries")
    op.create_index(
        "ix_queries_open",
        "queries",
        ["case_id"],
        postgresql_where=sa.text("state = 'open'"),
    )
    op.drop_index("ix_cases_cancelled_changed", table_name="cases")
    op.drop_index("ix_cases_received", table_name="cases")
    op.drop_index("ix_cases_done_completed", table_name="cases")
    op.drop_index("ix_cases_open_study_state", table_name="cases")
    op.create_index(
        "ix_cases_open_study_state",
        "cases",
        ["study_id", "state"],
        postgresql_where=sa.text(OPEN_STATES),
    )
