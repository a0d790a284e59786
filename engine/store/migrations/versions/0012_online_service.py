"""The online service for families and the professionals who give advice: the people who sign in
(by an emailed link, then a code), their access to a case (a role on it, which ends), the links
sent to them (hashes only), advice requests with their own due dates, and what people send:
contributions (views, comments on a draft, advice) and uploaded files. Contributions and uploads
are append-only, as history is: each is the record of what was received and when.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

APPEND_ONLY = ("portal_contribution", "portal_upload")


def upgrade() -> None:
    moment = sa.DateTime(timezone=True)
    op.create_table(
        "portal_person",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("demo", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("code_hash", sa.String(64), nullable=True),  # the code sent after a link was used
        sa.Column("code_expires", moment, nullable=True),
        sa.Column("code_tries", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "portal_access",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.String(32), nullable=False, unique=True),  # in URLs: random, not a count
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("portal_person.id"), nullable=False, index=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), nullable=False, index=True),
        sa.Column("contact_id", sa.Integer(), sa.ForeignKey("contact.id"), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),  # family or adviser
        sa.Column("invited_by", sa.String(100), nullable=False),
        sa.Column("invited_at", moment, nullable=False),
        sa.Column("ended_at", moment, nullable=True),
        sa.Column("ended_by", sa.String(100), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
    )
    op.create_table(
        "portal_link",
        sa.Column("id", sa.String(64), primary_key=True),  # the SHA-256 of the token in the link
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("portal_person.id"), nullable=False, index=True),
        sa.Column("purpose", sa.String(20), nullable=False),  # invitation or sign_in
        sa.Column("created_at", moment, nullable=False),
        sa.Column("expires_at", moment, nullable=False),
        sa.Column("used_at", moment, nullable=True),
    )
    op.create_table(
        "advice_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.String(32), nullable=False, unique=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), nullable=False, index=True),
        sa.Column("instance_id", sa.Integer(), sa.ForeignKey("workflow_instance.id"), nullable=False),
        sa.Column("contact_id", sa.Integer(), sa.ForeignKey("contact.id"), nullable=False),
        sa.Column("access_id", sa.Integer(), sa.ForeignKey("portal_access.id"), nullable=True),
        sa.Column("deadline", sa.String(80), nullable=False),  # the workflow's limit it counts towards
        sa.Column("requested_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=True),
        sa.Column("received_how", sa.String(20), nullable=True),  # online, or outside (post, email)
        sa.Column("withdrawn_on", sa.Date(), nullable=True),
    )
    op.create_table(
        "portal_contribution",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), nullable=False, index=True),
        sa.Column("access_id", sa.Integer(), sa.ForeignKey("portal_access.id"), nullable=False),
        sa.Column("instance_id", sa.Integer(), sa.ForeignKey("workflow_instance.id"), nullable=True),
        sa.Column("kind", sa.String(20), nullable=False),  # views, comments, meeting, review, advice
        sa.Column("received_on", sa.Date(), nullable=False),  # the legal date: the day it reached the council
        sa.Column("received_at", moment, nullable=False),
        sa.Column("period", sa.String(80), nullable=True),  # the limit it answers (a comment period, advice)
        sa.Column("period_due_on", sa.Date(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),  # JSON: the answers, by field
        sa.Column("history_seq", sa.Integer(), nullable=True),
    )
    op.create_table(
        "portal_upload",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.String(32), nullable=False, unique=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("ehc_case.id"), nullable=False, index=True),
        sa.Column("access_id", sa.Integer(), sa.ForeignKey("portal_access.id"), nullable=False),
        sa.Column("contribution_id", sa.Integer(), sa.ForeignKey("portal_contribution.id"), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("extension", sa.String(10), nullable=False),
        sa.Column("original_name", sa.String(255), nullable=False),  # shown to staff; never a path or a header
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("scanned", sa.Boolean(), nullable=False),
        sa.Column("received_at", moment, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        if dialect == "postgresql":
            op.execute(
                f"CREATE FUNCTION {table}_append_only() RETURNS trigger AS $$ "
                f"BEGIN RAISE EXCEPTION '{table} is append-only'; END $$ LANGUAGE plpgsql"
            )
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
            )
        else:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
            op.execute(
                f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} WHEN NEW.id IS NOT NULL AND "
                f"EXISTS (SELECT 1 FROM {table} WHERE id = NEW.id) "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
    for table in ("portal_upload", "portal_contribution", "advice_request", "portal_link", "portal_access"):
        op.drop_table(table)
    op.drop_table("portal_person")
