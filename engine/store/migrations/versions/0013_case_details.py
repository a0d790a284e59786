"""What the SEN2 return asks about a child that casework does not record: sex, ethnicity, pupil
numbers, the type of need, the setting's URN or UKPRN, and the like (engine.sen2). One row a case.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_detail",
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), primary_key=True),
        sa.Column("surname", sa.String(100), nullable=True),
        sa.Column("forename", sa.String(100), nullable=True),
        sa.Column("sex", sa.String(1), nullable=True),
        sa.Column("ethnicity", sa.String(4), nullable=True),
        sa.Column("upn", sa.String(13), nullable=True),
        sa.Column("uln", sa.String(10), nullable=True),
        sa.Column("upn_unknown", sa.String(4), nullable=True),
        sa.Column("postcode", sa.String(8), nullable=True),
        sa.Column("primary_need", sa.String(4), nullable=True),
        sa.Column("secondary_need", sa.String(4), nullable=True),
        sa.Column("setting_urn", sa.String(6), nullable=True),
        sa.Column("setting_ukprn", sa.String(8), nullable=True),
        sa.Column("setting_code", sa.String(4), nullable=True),
        sa.Column("setting_other", sa.String(200), nullable=True),
        sa.Column("transferred_from_la", sa.String(3), nullable=True),
        sa.Column("cease_reason", sa.String(1), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("case_detail")
