"""Open-reads index and cached case modalities for the SLA sweep

Revision ID: 0302
Revises: 0301
Create Date: 2026-12-04 15:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0302"
down_revision = "0301"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "triage_case_modalities",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_triage_case_modalities_case_id_cases"),
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_triage_case_modalities")),
    )
    op.create_index(
        "ix_reads_open_case",
        "reads",
        ["case_id"],
        unique=False,
        postgresql_where=sa.text("state IN ('unassigned', 'assigned', 'in_progress')"),
    )


def downgrade() -> None:
    op.drop_index("ix_reads_open_case", table_name="reads")
    op.drop_table("triage_case_modalities")
