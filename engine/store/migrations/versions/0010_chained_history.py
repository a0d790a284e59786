"""History entries are chained by hash (each covers the one before it in its workflow instance; the
instance keeps the latest), and say which administrator recorded a step on someone's behalf; plan
edits say so too. A per-installation secret keys the digests that stand for recipients in message keys.

Existing entries are chained in their order, as they stand when this runs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from engine.store.chain import FIELDS, GENESIS, entry_hash

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = ", ".join(FIELDS)


def upgrade() -> None:
    # Added in place (no table rebuilt on SQLite), so the append-only triggers stay.
    op.add_column("history", sa.Column("recorded_by", sa.String(100), nullable=True))
    op.add_column("history", sa.Column("hash", sa.String(64), nullable=False, server_default=""))
    op.add_column("workflow_instance", sa.Column("history_hash", sa.String(64), nullable=False, server_default=""))
    op.add_column("plan_edit", sa.Column("recorded_by", sa.String(100), nullable=True))
    op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    bind = op.get_bind()
    bind.execute(
        sa.text("INSERT INTO installation (id, secret, created_at) VALUES (1, :s, CURRENT_TIMESTAMP)"),
        {"s": secrets.token_hex(32)},
    )
    _chain_existing(bind)


def _chain_existing(bind: sa.Connection) -> None:
    postgres = bind.dialect.name == "postgresql"
    # History refuses updates: let this one through, as its owner, then refuse them again.
    if postgres:
        op.execute("ALTER TABLE history DISABLE TRIGGER history_append_only")
    else:
        op.execute("DROP TRIGGER IF EXISTS history_no_update")
    head: dict[int, str] = {}
    rows = bind.execute(sa.text(f"SELECT id, {COLUMNS} FROM history ORDER BY instance_id, seq")).mappings().all()
    for row in rows:
        fields = {k: row[k] for k in COLUMNS.split(", ")}
        digest = entry_hash(head.get(row["instance_id"], GENESIS), **fields)
        head[row["instance_id"]] = digest
        bind.execute(sa.text("UPDATE history SET hash = :h WHERE id = :id"), {"h": digest, "id": row["id"]})
    for instance_id, digest in head.items():
        bind.execute(
            sa.text("UPDATE workflow_instance SET history_hash = :h WHERE id = :id"), {"h": digest, "id": instance_id}
        )
    if postgres:
        op.execute("ALTER TABLE history ENABLE TRIGGER history_append_only")
    else:
        op.execute(
            "CREATE TRIGGER history_no_update BEFORE UPDATE ON history "
            "BEGIN SELECT RAISE(ABORT, 'history is append-only'); END"
        )


def downgrade() -> None:
    op.drop_table("installation")
    # ALTER TABLE ... DROP COLUMN on both databases (SQLite 3.35 and later): a rebuilt table would lose
    # the triggers that keep history and plan edits append-only.
    for table, column in (
        ("plan_edit", "recorded_by"),
        ("workflow_instance", "history_hash"),
        ("history", "hash"),
        ("history", "recorded_by"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
