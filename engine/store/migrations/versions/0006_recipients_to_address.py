"""Messages the regulations require but a case has no contact for yet (status ``to_address``) keep
every role that may receive them, joined by '|' (the school, college or early years setting named
in a plan is three roles), so ``recipient_role`` grows from 40 to 80 characters. A deadline's
party may be the health body (``health``), which fits the column as it is.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _resize(old: int, new: int) -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column(
            "recipient_role", type_=sa.String(new), existing_type=sa.String(old), existing_nullable=False
        )


def upgrade() -> None:
    _resize(40, 80)


def downgrade() -> None:
    _resize(80, 40)
