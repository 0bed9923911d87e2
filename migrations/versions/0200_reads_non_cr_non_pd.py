"""allow the RECIST 1.1 response non-CR/non-PD on reads

Revision ID: 0200
Revises: 0001
Create Date: 2026-12-04 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0200"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD_VALUES = "'CR', 'PR', 'SD', 'PD', 'NE'"
NEW_VALUES = "'CR', 'PR', 'SD', 'PD', 'NE', 'non-CR/non-PD'"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_reads_response"), "reads", type_="check")
    op.alter_column(
        "reads", "response", type_=sa.String(length=16), existing_nullable=True
    )
    op.create_check_constraint(
        "response", "reads", f"response IS NULL OR response IN ({NEW_VALUES})"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_reads_response"), "reads", type_="check")
    op.execute("UPDATE reads SET response = 'SD' WHERE response = 'non-CR/non-PD'")
    op.alter_column(
        "reads", "response", type_=sa.String(length=4), existing_nullable=True
    )
    op.create_check_constraint(
        "response", "reads", f"response IS NULL OR response IN ({OLD_VALUES})"
    )
