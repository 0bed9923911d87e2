"""Covering indexes for the dashboard's portfolio and study figures

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
    # Open-case counts, age buckets and past-due counts read only the index.
    op.drop_index("ix_cases_open_study_state", table_name="cases")
    op.create_index(
        "ix_cases_open_study_state",
        "cases",
        ["study_id", "state"],
        postgresql_include=["first_received_at", "due_at"],
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
    op.drop_index("ix_queries_open", table_name="queries")
    op.create_index(
        "ix_queries_open",
        "queries",
        ["case_id"],
        postgresql_include=["opened_at"],
        postgresql_where=sa.text("state = 'open'"),
    )


def downgrade() -> None:
    op.drop_index("ix_queries_open", table_name="queries")
    op.create_index(
        "ix_queries_open",
        "queries",
        ["case_id"],
        postgresql_where=sa.text("state = 'open'"),
    )
    op.drop_index("ix_cases_received", table_name="cases")
    op.drop_index("ix_cases_done_completed", table_name="cases")
    op.drop_index("ix_cases_open_study_state", table_name="cases")
    op.create_index(
        "ix_cases_open_study_state",
        "cases",
        ["study_id", "state"],
        postgresql_where=sa.text(OPEN_STATES),
    )
