"""SQLite: an INSERT that replaces a row (INSERT OR REPLACE, REPLACE) deletes the old row without
firing its table's DELETE triggers, so it could rewrite a history entry or an issued plan. A
BEFORE INSERT trigger refuses any insert that would meet an existing row of the history, the plan
edits, or a plan version that has been shared or issued. (PostgreSQL has no replacing insert; its
INSERT ... ON CONFLICT DO UPDATE fires the UPDATE triggers that already refuse it.)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

GUARDS = {
    "history_no_replace": (
        "history",
        # Two lookups, each by its own index (an OR in one subquery would scan the table every step).
        "(NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM history WHERE id = NEW.id)) "
        "OR EXISTS (SELECT 1 FROM history WHERE instance_id = NEW.instance_id AND seq = NEW.seq)",
        "history is append-only",
    ),
    "plan_edit_no_replace": (
        "plan_edit",
        "NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM plan_edit WHERE id = NEW.id)",
        "plan edits are append-only",
    ),
    "plan_issued_no_replace": (
        "plan_version",
        "(NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM plan_version WHERE id = NEW.id AND status <> 'draft')) "
        "OR EXISTS (SELECT 1 FROM plan_version WHERE case_id = NEW.case_id AND version = NEW.version "
        "AND status <> 'draft')",
        "a plan sent or issued cannot be changed",
    ),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, (table, when, message) in GUARDS.items():
        op.execute(
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN {when} BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in GUARDS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
