"""Reminders, breaches and escalations swept from deadline rows; the outbox as a sending queue.

- ``deadline.next_alert_on`` (indexed): the date of the deadline's next reminder, breach or
  escalation; the sweep reads only the rows whose date has come. ``breached_on``: the day the
  limit was missed, recorded once by the sweep.
- ``outbox``: messages that belong to no step (reminders, escalations, digests, alerts) have no
  history entry, and a caseworker's digest belongs to no single case, so those columns may be
  empty; ``kind``, ``deadline_id`` and ``alert_on`` say what a message is about; the dispatcher
  keeps ``subject``, ``body``, ``provider_id``, ``next_attempt_at`` (back-off) and ``claimed_at``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_MOMENT = sa.DateTime(timezone=True)


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.add_column("deadline", sa.Column("next_alert_on", sa.Date(), nullable=True))
    op.add_column("deadline", sa.Column("breached_on", sa.Date(), nullable=True))
    # Queues' indexes hold only the rows still to be worked on: a row that is done leaves the index.
    op.create_index("ix_deadline_next_alert_on", "deadline", ["next_alert_on"], **_where("next_alert_on IS NOT NULL"))
    # Deadlines opened before this revision: the sweep looks at everything since they opened.
    op.execute("UPDATE deadline SET next_alert_on = starts_on WHERE closed_on IS NULL")
    op.create_index("ix_ehc_case_caseworker", "ehc_case", ["caseworker"])

    op.drop_index("ix_outbox_status", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("case_id", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("instance_id", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("history_seq", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("kind", sa.String(20), nullable=False, server_default="step"))
        batch.add_column(sa.Column("deadline_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("alert_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("subject", sa.String(300), nullable=True))
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))
        batch.add_column(sa.Column("provider_id", sa.String(300), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", _MOMENT, nullable=True))
        batch.add_column(sa.Column("claimed_at", _MOMENT, nullable=True))
        batch.create_foreign_key("fk_outbox_deadline_id", "deadline", ["deadline_id"], ["id"])
    op.create_index("ix_outbox_queued", "outbox", ["id"], **_where("status = 'queued'"))
    op.create_index("ix_outbox_sending", "outbox", ["claimed_at"], **_where("status = 'sending'"))


def downgrade() -> None:
    op.drop_index("ix_outbox_sending", table_name="outbox")
    op.drop_index("ix_outbox_queued", table_name="outbox")
    op.execute("DELETE FROM outbox WHERE case_id IS NULL OR instance_id IS NULL OR history_seq IS NULL")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint("fk_outbox_deadline_id", type_="foreignkey")
        for column in ("claimed_at", "next_attempt_at", "provider_id", "body", "subject", "alert_on"):
            batch.drop_column(column)
        batch.drop_column("deadline_id")
        batch.drop_column("kind")
        batch.alter_column("history_seq", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("instance_id", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("case_id", existing_type=sa.Integer(), nullable=False)
    op.create_index("ix_outbox_status", "outbox", ["status"])
    op.drop_index("ix_ehc_case_caseworker", table_name="ehc_case")
    op.drop_index("ix_deadline_next_alert_on", table_name="deadline")
    with op.batch_alter_table("deadline") as batch:
        batch.drop_column("breached_on")
        batch.drop_column("next_alert_on")
