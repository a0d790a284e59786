"""The first schema: cases, contacts, workflow instances, history, deadlines, outbox, documents.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MOMENT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ehc_case",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("caseworker", sa.String(320), nullable=True),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
    )
    op.create_table(
        "contact",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
    )
    op.create_index("ix_contact_case_id", "contact", ["case_id"])
    op.create_table(
        "workflow_instance",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), nullable=False),
        sa.Column("workflow", sa.String(80), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("last_event_on", sa.Date(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
    )
    op.create_index("ix_workflow_instance_case_id", "workflow_instance", ["case_id"])
    op.create_index("ix_workflow_instance_state", "workflow_instance", ["state"])
    op.create_table(
        "history",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("instance_id", sa.Integer(), sa.ForeignKey("workflow_instance.id"), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", MOMENT, nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("actor_role", sa.String(40), nullable=False),
        sa.Column("trigger", sa.String(80), nullable=False),
        sa.Column("from_state", sa.String(80), nullable=True),
        sa.Column("to_state", sa.String(80), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.UniqueConstraint("instance_id", "seq", name="uq_history_instance_seq"),
    )
    op.create_index("ix_history_case_id", "history", ["case_id"])
    op.create_table(
        "deadline",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("instance_id", sa.Integer(), sa.ForeignKey("workflow_instance.id"), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("basis", sa.String(20), nullable=False),
        sa.Column("party", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("opened_by_seq", sa.Integer(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("closed_by_seq", sa.Integer(), nullable=True),
        sa.Column("exception_head", sa.String(40), nullable=True),
        sa.Column("exception_reason", sa.Text(), nullable=True),
        sa.Column("exception_by", sa.String(100), nullable=True),
        sa.Column("exception_on", sa.Date(), nullable=True),
    )
    op.create_index("ix_deadline_case_id", "deadline", ["case_id"])
    op.create_index("ix_deadline_status_due_on", "deadline", ["status", "due_on"])
    op.create_index("ix_deadline_instance_open", "deadline", ["instance_id", "closed_on"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), nullable=False),
        sa.Column("instance_id", sa.Integer(), sa.ForeignKey("workflow_instance.id"), nullable=False),
        sa.Column("history_seq", sa.Integer(), nullable=False),
        sa.Column("template", sa.String(80), nullable=False),
        sa.Column("recipient_role", sa.String(40), nullable=False),
        sa.Column("recipient_name", sa.String(200), nullable=True),
        sa.Column("recipient_email", sa.String(320), nullable=True),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", MOMENT, nullable=True),
    )
    op.create_index("ix_outbox_key", "outbox", ["key"], unique=True)
    op.create_index("ix_outbox_case_id", "outbox", ["case_id"])
    op.create_index("ix_outbox_status", "outbox", ["status"])
    op.create_table(
        "document",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), nullable=False),
        sa.Column("instance_id", sa.Integer(), sa.ForeignKey("workflow_instance.id"), nullable=False),
        sa.Column("history_seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(80), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("bytes", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(500), nullable=True),
    )
    op.create_index("ix_document_case_id", "document", ["case_id"])
    _history_append_only()


def _history_append_only() -> None:
    """History is the legal record of the case: the database itself refuses to change it."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION history_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'history is append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON history "
            "FOR EACH ROW EXECUTE FUNCTION history_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER history_no_{event.lower()} BEFORE {event} ON history "
                "BEGIN SELECT RAISE(ABORT, 'history is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS history_append_only ON history")
        op.execute("DROP FUNCTION IF EXISTS history_append_only()")
    for table in ("document", "outbox", "deadline", "history", "workflow_instance", "contact", "ehc_case"):
        op.drop_table(table)
