"""EHC plans as versioned data; documents rendered, stored and found by the hash of their inputs.

- ``plan_version``: a case's plan, one row per version, its sections (A to K) as JSON. A draft
  can be edited; once it is sent to the family (``shared``: a draft plan, proposed amendments) or
  issued, the database refuses any change to it (triggers, SQLite and PostgreSQL), and the next
  change starts a new draft version.
- ``plan_edit``: who changed which section of which version, when, from what to what;
  append-only like the history.
- ``document``: ``decision`` (which letter), ``inputs_sha256`` (an unchanged document is never
  rendered twice), ``error``, ``claimed_at`` (a worker rendering it); a document made on demand
  belongs to no step, so its instance and history entry may be empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_MOMENT = sa.DateTime(timezone=True)


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table(
        "plan_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("sections", sa.Text(), nullable=False),
        sa.Column("based_on", sa.Integer(), nullable=True),
        sa.Column("created_at", _MOMENT, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("updated_at", _MOMENT, nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=True),
        sa.Column("issued_by", sa.String(100), nullable=True),
        sa.Column("instance_id", sa.Integer(), sa.ForeignKey("workflow_instance.id"), nullable=True),
        sa.Column("history_seq", sa.Integer(), nullable=True),
        sa.UniqueConstraint("case_id", "version", name="uq_plan_version_case_version"),
    )
    op.create_index("ix_plan_version_case_id", "plan_version", ["case_id"])
    op.create_table(
        "plan_edit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("section", sa.String(4), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("at", _MOMENT, nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
    )
    op.create_index("ix_plan_edit_case_id", "plan_edit", ["case_id"])
    with op.batch_alter_table("document") as batch:
        batch.alter_column("instance_id", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("history_seq", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("decision", sa.String(40), nullable=True))
        batch.add_column(sa.Column("inputs_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("claimed_at", _MOMENT, nullable=True))
    # Only the documents still to render, and only the rendered ones' input hashes.
    op.create_index("ix_document_queued", "document", ["id"], **_where("status = 'queued'"))
    op.create_index("ix_document_rendering", "document", ["claimed_at"], **_where("status = 'rendering'"))
    op.create_index("ix_document_inputs_sha256", "document", ["inputs_sha256"], **_where("inputs_sha256 IS NOT NULL"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION plan_issued_is_final() RETURNS trigger AS $$ BEGIN "
            "IF OLD.status <> 'draft' THEN RAISE EXCEPTION 'a plan sent or issued cannot be changed'; END IF; "
            "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER plan_issued_is_final BEFORE UPDATE OR DELETE ON plan_version "
            "FOR EACH ROW EXECUTE FUNCTION plan_issued_is_final()"
        )
        op.execute(
            "CREATE FUNCTION plan_edit_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'plan edits are append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER plan_edit_append_only BEFORE UPDATE OR DELETE ON plan_edit "
            "FOR EACH ROW EXECUTE FUNCTION plan_edit_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER plan_issued_no_{event.lower()} BEFORE {event} ON plan_version "
                "WHEN OLD.status <> 'draft' BEGIN SELECT RAISE(ABORT, 'a plan sent or issued cannot be changed'); END"
            )
            op.execute(
                f"CREATE TRIGGER plan_edit_no_{event.lower()} BEFORE {event} ON plan_edit "
                "BEGIN SELECT RAISE(ABORT, 'plan edits are append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS plan_edit_append_only ON plan_edit")
        op.execute("DROP FUNCTION IF EXISTS plan_edit_append_only()")
        op.execute("DROP TRIGGER IF EXISTS plan_issued_is_final ON plan_version")
        op.execute("DROP FUNCTION IF EXISTS plan_issued_is_final()")
    op.drop_index("ix_document_inputs_sha256", table_name="document")
    op.drop_index("ix_document_rendering", table_name="document")
    op.drop_index("ix_document_queued", table_name="document")
    op.execute("DELETE FROM document WHERE instance_id IS NULL OR history_seq IS NULL")
    with op.batch_alter_table("document") as batch:
        batch.drop_column("claimed_at")
        batch.drop_column("error")
        batch.drop_column("inputs_sha256")
        batch.drop_column("decision")
        batch.alter_column("history_seq", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("instance_id", existing_type=sa.Integer(), nullable=False)
    op.drop_index("ix_plan_edit_case_id", table_name="plan_edit")
    op.drop_table("plan_edit")
    op.drop_index("ix_plan_version_case_id", table_name="plan_version")
    op.drop_table("plan_version")
