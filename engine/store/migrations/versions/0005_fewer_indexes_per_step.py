"""Fewer index pages written per step: each index a step writes is one more page in its commit.

- ``ix_workflow_instance_state`` goes: every step moves its entry, and only the case list's
  optional state filter read it (a case list reads every case anyway).
- ``ix_deadline_status_due_on`` becomes ``ix_deadline_open_due_on``, on ``due_on`` of open
  deadlines only: the due list reads only open ones, and a deadline that closes leaves the index
  instead of moving within it.
- ``ix_history_case_id`` goes: a case's history is read through its instances
  (``uq_history_instance_seq``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OPEN = sa.text("closed_on IS NULL")


def upgrade() -> None:
    op.drop_index("ix_workflow_instance_state", table_name="workflow_instance")
    op.drop_index("ix_history_case_id", table_name="history")
    op.drop_index("ix_deadline_status_due_on", table_name="deadline")
    op.create_index("ix_deadline_open_due_on", "deadline", ["due_on"], sqlite_where=OPEN, postgresql_where=OPEN)


def downgrade() -> None:
    op.drop_index("ix_deadline_open_due_on", table_name="deadline")
    op.create_index("ix_deadline_status_due_on", "deadline", ["status", "due_on"])
    op.create_index("ix_history_case_id", "history", ["case_id"])
    op.create_index("ix_workflow_instance_state", "workflow_instance", ["state"])
