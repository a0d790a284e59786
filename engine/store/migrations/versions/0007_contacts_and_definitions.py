"""Contacts get a postal address, a preferred way of contact, an interpreter's language and an
accessible format (letters need an address, which the outbox keeps with a letter); the text of each
workflow definition version a case has used is kept, so a case runs on its own version when the
file changes or breaks.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact") as batch:
        batch.add_column(sa.Column("address", sa.Text(), nullable=True))
        batch.add_column(sa.Column("prefers", sa.String(10), nullable=False, server_default="email"))
        batch.add_column(sa.Column("interpreter", sa.String(60), nullable=True))
        batch.add_column(sa.Column("accessible_format", sa.String(40), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("recipient_address", sa.Text(), nullable=True))
    op.create_table(
        "workflow_definition",
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workflow_definition")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("recipient_address")
    with op.batch_alter_table("contact") as batch:
        batch.drop_column("accessible_format")
        batch.drop_column("interpreter")
        batch.drop_column("prefers")
        batch.drop_column("address")
