"""The tables. SQLModel classes are the schema (Alembic migrations are checked against them) and
the read model; the write path in ``repository.py`` issues its statements directly for speed.

Moments are UTC; dates are dates in England. JSON values are stored as text: the database never
needs to look inside them.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, DateTime, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def _moment() -> Column:  # type: ignore[type-arg]
    return Column(DateTime(timezone=True), nullable=False)


class Case(SQLModel, table=True):
    """A child or young person known to the SEND service."""

    __tablename__ = "ehc_case"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    date_of_birth: date
    caseworker: str | None = Field(default=None, max_length=320)
    created_at: datetime = Field(sa_column=_moment())
    created_by: str = Field(max_length=100)
    # Years ahead of (+) or behind (-) the year group the date of birth gives (phase transfers).
    year_group_offset: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    school_pattern: str = Field(
        default="primary_secondary", max_length=20, sa_column_kwargs={"server_default": "primary_secondary"}
    )


class Contact(SQLModel, table=True):
    """A person or organisation connected with a case, by role (parent, school, health...)."""

    __tablename__ = "contact"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    role: str = Field(max_length=40)
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320)


class WorkflowInstance(SQLModel, table=True):
    """One run of one workflow for one case; ``version`` guards against concurrent changes."""

    __tablename__ = "workflow_instance"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    parent_id: int | None = Field(default=None, foreign_key="workflow_instance.id", index=True)
    workflow: str = Field(max_length=80)
    definition_version: int
    state: str = Field(max_length=80)
    version: int = 1
    facts: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    opened_on: date
    last_event_on: date
    closed_on: date | None = None


class HistoryEntry(SQLModel, table=True):
    """Append-only: who did what, when and why. The database refuses updates and deletes."""

    __tablename__ = "history"
    __table_args__ = (UniqueConstraint("instance_id", "seq", name="uq_history_instance_seq"),)
    id: int | None = Field(default=None, primary_key=True)
    instance_id: int = Field(foreign_key="workflow_instance.id")
    case_id: int = Field(foreign_key="ehc_case.id")  # read through the instances: one index fewer per step
    seq: int
    at: datetime = Field(sa_column=_moment())
    occurred_on: date
    actor: str = Field(max_length=100)
    actor_role: str = Field(max_length=40)
    trigger: str = Field(max_length=80)
    from_state: str | None = Field(default=None, max_length=80)
    to_state: str = Field(max_length=80)
    inputs: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Deadline(SQLModel, table=True):
    """A time limit of an instance: open until met, breached or cancelled."""

    __tablename__ = "deadline"
    __table_args__ = (
        # Open deadlines only: one that closes leaves the index instead of moving within it.
        Index(
            "ix_deadline_open_due_on",
            "due_on",
            sqlite_where=text("closed_on IS NULL"),
            postgresql_where=text("closed_on IS NULL"),
        ),
        Index("ix_deadline_instance_open", "instance_id", "closed_on"),
    )
    id: int | None = Field(default=None, primary_key=True)
    instance_id: int = Field(foreign_key="workflow_instance.id")
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    name: str = Field(max_length=80)
    title: str = Field(max_length=200)
    starts_on: date
    due_on: date
    source: str = Field(max_length=300)
    basis: str = Field(max_length=20)
    party: str = Field(max_length=20)
    status: str = Field(default="open", max_length=20)
    opened_by_seq: int
    closed_on: date | None = None
    closed_by_seq: int | None = None
    exception_head: str | None = Field(default=None, max_length=40)
    exception_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    exception_by: str | None = Field(default=None, max_length=100)
    exception_on: date | None = None


class OutboxMessage(SQLModel, table=True):
    """A message to send, written in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=400, unique=True, index=True)
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    instance_id: int = Field(foreign_key="workflow_instance.id")
    history_seq: int
    template: str = Field(max_length=80)
    recipient_role: str = Field(max_length=40)
    recipient_name: str | None = Field(default=None, max_length=200)
    recipient_email: str | None = Field(default=None, max_length=320)
    channel: str = Field(max_length=10)
    status: str = Field(default="queued", max_length=10, index=True)
    created_at: datetime = Field(sa_column=_moment())
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class Document(SQLModel, table=True):
    """A document a step produces: queued with the step, rendered right after it commits."""

    __tablename__ = "document"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    instance_id: int = Field(foreign_key="workflow_instance.id")
    history_seq: int
    kind: str = Field(max_length=80)
    status: str = Field(default="queued", max_length=10)
    created_at: datetime = Field(sa_column=_moment())
    plan_version: int | None = None
    sha256: str | None = Field(default=None, max_length=64)
    bytes: int | None = None
    path: str | None = Field(default=None, max_length=500)
