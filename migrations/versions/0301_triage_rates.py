"""Fitted triage rates per study and per reader and modality

Revision ID: 0301
Revises: 0300
Create Date: 2026-12-04 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0301"
down_revision = "0300"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "triage_study_rates",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("mean_hours", sa.Float(), nullable=True),
        sa.Column("spread", sa.Float(), nullable=True),
        sa.Column("mean_wait", sa.Float(), nullable=True),
        sa.Column("adjudication_hours", sa.Float(), nullable=True),
        sa.Column("adjudication_rate", sa.Float(), nullable=True),
        sa.Column("reads", sa.Integer(), nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_triage_study_rates_study_id_studies"),
        ),
        sa.PrimaryKeyConstraint("study_id", name=op.f("pk_triage_study_rates")),
    )
    op.create_table(
        "triage_reader_rates",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.Column("reads", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reader_id"],
            ["readers.id"],
            name=op.f("fk_triage_reader_rates_reader_id_readers"),
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_triage_reader_rates_study_id_studies"),
        ),
        sa.PrimaryKeyConstraint(
            "study_id", "reader_id", "modality", name=op.f("pk_triage_reader_rates")
        ),
    )


def downgrade() -> None:
    op.drop_table("triage_reader_rates")
    op.drop_table("triage_study_rates")
