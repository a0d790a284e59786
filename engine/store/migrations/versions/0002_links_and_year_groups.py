"""Workflows that start other workflows; a child's year group and school pattern for phase transfers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with an inline REFERENCES clause without rebuilding the table.
        op.execute("ALTER TABLE workflow_instance ADD COLUMN parent_id INTEGER REFERENCES workflow_instance (id)")
    else:
        op.add_column("workflow_instance", sa.Column("parent_id", sa.Integer(), nullable=True))
        op.create_foreign_key(None, "workflow_instance", "workflow_instance", ["parent_id"], ["id"])
    op.create_index("ix_workflow_instance_parent_id", "workflow_instance", ["parent_id"])
    op.add_column("ehc_case", sa.Column("year_group_offset", sa.Integer(), nullable=False, server_default="0"))
    op.add_column(
        "ehc_case",
        sa.Column("school_pattern", sa.String(20), nullable=False, server_default="primary_secondary"),
    )


def downgrade() -> None:
    with op.batch_alter_table("ehc_case") as batch:
        batch.drop_column("school_pattern")
        batch.drop_column("year_group_offset")
    op.drop_index("ix_workflow_instance_parent_id", table_name="workflow_instance")
    with op.batch_alter_table("workflow_instance") as batch:
        batch.drop_column("parent_id")
