"""The tables. SQLModel classes are the schema (Alembic migrations are checked against them) and
the read model; the write path in ``repository.py`` issues its statements directly for speed.

Moments are UTC; dates are dates in England. JSON values are stored as text: the database never
needs to look inside them.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, DateTime, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def _partial(name: str, *columns: str, where: str) -> Index:
    """An index of only the rows still to be worked on (a queue): a row that is done leaves it."""
    return Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))


def _moment() -> Column:  # type: ignore[type-arg]
    return Column(DateTime(timezone=True), nullable=False)


class Case(SQLModel, table=True):
    """A child or young person known to the SEND service."""

    __tablename__ = "ehc_case"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    date_of_birth: date
    caseworker: str | None = Field(default=None, max_length=320, index=True)
    created_at: datetime = Field(sa_column=_moment())
    created_by: str = Field(max_length=100)
    # Years ahead of (+) or behind (-) the year group the date of birth gives (phase transfers).
    year_group_offset: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    school_pattern: str = Field(
        default="primary_secondary", max_length=20, sa_column_kwargs={"server_default": "primary_secondary"}
    )


class CaseDetail(SQLModel, table=True):
    """What the Department for Education's SEN2 return asks about a child that casework itself does
    not record (engine.sen2): one row a case, changed on the record (a history entry each time)."""

    __tablename__ = "case_detail"
    case_id: int = Field(foreign_key="ehc_case.id", primary_key=True)
    surname: str | None = Field(default=None, max_length=100)  # when the case's name does not split plainly
    forename: str | None = Field(default=None, max_length=100)
    sex: str | None = Field(default=None, max_length=1)
    ethnicity: str | None = Field(default=None, max_length=4)
    upn: str | None = Field(default=None, max_length=13)
    uln: str | None = Field(default=None, max_length=10)
    upn_unknown: str | None = Field(default=None, max_length=4)
    postcode: str | None = Field(default=None, max_length=8)
    primary_need: str | None = Field(default=None, max_length=4)
    secondary_need: str | None = Field(default=None, max_length=4)
    setting_urn: str | None = Field(default=None, max_length=6)
    setting_ukprn: str | None = Field(default=None, max_length=8)
    setting_code: str | None = Field(default=None, max_length=4)
    setting_other: str | None = Field(default=None, max_length=200)
    transferred_from_la: str | None = Field(default=None, max_length=3)
    cease_reason: str | None = Field(default=None, max_length=1)
    updated_at: datetime = Field(sa_column=_moment())
    updated_by: str = Field(max_length=100)


class Contact(SQLModel, table=True):
    """A person or organisation connected with a case, by role (parent, school, health...)."""

    __tablename__ = "contact"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    role: str = Field(max_length=40)
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320)
    # A postal address (lines separated by newlines) for letters; how they prefer to be contacted
    # (email or post); a language they need an interpreter or translation in; an accessible
    # format they need (large print, braille, easy read, audio).
    address: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    prefers: str = Field(default="email", max_length=10, sa_column_kwargs={"server_default": "email"})
    interpreter: str | None = Field(default=None, max_length=60)
    accessible_format: str | None = Field(default=None, max_length=40)


class WorkflowDefinitionText(SQLModel, table=True):
    """The text of each workflow definition version that a case has used: a case keeps running on
    its own version even when the file changes or breaks (engine.catalogue)."""

    __tablename__ = "workflow_definition"
    name: str = Field(primary_key=True, max_length=80)
    version: int = Field(primary_key=True)
    sha256: str = Field(max_length=64)
    source: str = Field(sa_column=Column(Text, nullable=False))
    stored_at: datetime = Field(sa_column=_moment())


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
    history_hash: str = Field(default="", max_length=64)  # the latest entry's hash (engine.store.chain)


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
    recorded_by: str | None = Field(default=None, max_length=100)  # an administrator acting on actor's behalf
    trigger: str = Field(max_length=80)
    from_state: str | None = Field(default=None, max_length=80)
    to_state: str = Field(max_length=80)
    inputs: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    hash: str = Field(default="", max_length=64)  # chained to the entry before it (engine.store.chain)


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
        _partial("ix_deadline_next_alert_on", "next_alert_on", where="next_alert_on IS NOT NULL"),
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
    next_alert_on: date | None = None  # next reminder, breach or escalation (a partial index, below)
    breached_on: date | None = None


class OutboxMessage(SQLModel, table=True):
    """A message to send: written in the same transaction as the step or sweep that caused it.

    ``kind``: ``step`` (a state's message), ``reminder``, ``escalation``, ``digest`` or ``alert``
    (a message that could not be delivered). Status: queued, sending, sent, failed, skipped.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        _partial("ix_outbox_queued", "id", where="status = 'queued'"),
        _partial("ix_outbox_sending", "claimed_at", where="status = 'sending'"),
    )
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=400, unique=True, index=True)
    case_id: int | None = Field(default=None, foreign_key="ehc_case.id", index=True)
    instance_id: int | None = Field(default=None, foreign_key="workflow_instance.id")
    history_seq: int | None = None
    kind: str = Field(default="step", max_length=20, sa_column_kwargs={"server_default": "step"})
    deadline_id: int | None = Field(default=None, foreign_key="deadline.id")
    alert_on: date | None = None
    template: str = Field(max_length=80)
    recipient_role: str = Field(max_length=80)  # roles joined by "|" while a message is to_address
    recipient_address: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # a letter's
    recipient_name: str | None = Field(default=None, max_length=200)
    recipient_email: str | None = Field(default=None, max_length=320)
    channel: str = Field(max_length=10)
    status: str = Field(default="queued", max_length=10)
    created_at: datetime = Field(sa_column=_moment())
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    subject: str | None = Field(default=None, max_length=300)
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    provider_id: str | None = Field(default=None, max_length=300)
    next_attempt_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    claimed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class Installation(SQLModel, table=True):
    """One row: this installation's secret, which keys the digests standing for recipients in message
    keys (which reach Message-IDs, logs and GOV.UK Notify references)."""

    __tablename__ = "installation"
    id: int = Field(primary_key=True)
    secret: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_moment())


class Document(SQLModel, table=True):
    """A document: queued with the step that produces it, rendered right after it commits (or made
    on demand); stored by the SHA-256 of its bytes, found again by the hash of its inputs."""

    __tablename__ = "document"
    __table_args__ = (
        _partial("ix_document_queued", "id", where="status = 'queued'"),
        _partial("ix_document_rendering", "claimed_at", where="status = 'rendering'"),
        _partial("ix_document_inputs_sha256", "inputs_sha256", where="inputs_sha256 IS NOT NULL"),
    )
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    instance_id: int | None = Field(default=None, foreign_key="workflow_instance.id")
    history_seq: int | None = None
    kind: str = Field(max_length=80)
    decision: str | None = Field(default=None, max_length=40)
    status: str = Field(default="queued", max_length=10)
    created_at: datetime = Field(sa_column=_moment())
    plan_version: int | None = None
    sha256: str | None = Field(default=None, max_length=64)
    bytes: int | None = None
    path: str | None = Field(default=None, max_length=500)
    inputs_sha256: str | None = Field(default=None, max_length=64)
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # renderings that failed
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    claimed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class PlanVersion(SQLModel, table=True):
    """One version of a case's EHC plan: sections A to K as JSON; immutable once issued."""

    __tablename__ = "plan_version"
    __table_args__ = (UniqueConstraint("case_id", "version", name="uq_plan_version_case_version"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    version: int
    status: str = Field(max_length=10)  # draft or issued
    sections: str = Field(sa_column=Column(Text, nullable=False))
    based_on: int | None = None
    created_at: datetime = Field(sa_column=_moment())
    created_by: str = Field(max_length=100)
    updated_at: datetime = Field(sa_column=_moment())
    issued_on: date | None = None
    issued_by: str | None = Field(default=None, max_length=100)
    instance_id: int | None = Field(default=None, foreign_key="workflow_instance.id")
    history_seq: int | None = None


class PlanEdit(SQLModel, table=True):
    """Append-only: who changed which section of which plan version, when, from what to what."""

    __tablename__ = "plan_edit"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    version: int
    section: str = Field(max_length=4)
    actor: str = Field(max_length=100)
    recorded_by: str | None = Field(default=None, max_length=100)
    at: datetime = Field(sa_column=_moment())
    before: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    after: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class StaffAccount(SQLModel, table=True):
    """A member of staff's local sign-in for the web application (councils without single sign-on,
    and the demo): an argon2 hash of the password, a TOTP secret, and lock-out after failures."""

    __tablename__ = "staff_account"
    staff_id: str = Field(primary_key=True, max_length=100)
    password_hash: str = Field(sa_column=Column(Text, nullable=False))
    totp_secret: str = Field(max_length=64)
    demo: bool = False  # made by 'ehcp demo': its current code may be printed ('ehcp staff code')
    failed: int = 0  # failed sign-ins in a row
    locked_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    last_code_step: int = 0  # the TOTP time step last used: a code works once
    changed_at: datetime = Field(sa_column=_moment())
    setup_hash: str | None = Field(default=None, max_length=64)  # a set-up link sent to the person
    setup_expires: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class WebSession(SQLModel, table=True):
    """A signed-in session of the web application, ended on the server (sign-out, a reset, idle)."""

    __tablename__ = "web_session"
    id: str = Field(primary_key=True, max_length=64)  # the SHA-256 of the token in the cookie
    staff_id: str = Field(max_length=100, index=True)
    how: str = Field(max_length=20)  # password or council
    created_at: datetime = Field(sa_column=_moment())
    last_seen: datetime = Field(sa_column=_moment())
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class AuditEvent(SQLModel, table=True):
    """Append-only: every sign-in, view of a case and change in the web application, who, what, when
    and from where (the database refuses updates and deletes)."""

    __tablename__ = "audit_event"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_moment())
    actor: str = Field(max_length=100, index=True)
    role: str = Field(max_length=40)
    action: str = Field(max_length=40)
    case_id: int | None = Field(default=None, index=True)
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    address: str | None = Field(default=None, max_length=64)


class PortalPerson(SQLModel, table=True):
    """Someone outside the council who signs in to the online service: by an emailed link, then a
    code sent to them (no password). Known by their email address; what they may see is their access."""

    __tablename__ = "portal_person"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    created_at: datetime = Field(sa_column=_moment())
    demo: bool = False  # made by 'ehcp demo': its code may be printed ('ehcp portal code')
    code_hash: str | None = Field(default=None, max_length=64)
    code_expires: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    code_tries: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class PortalAccess(SQLModel, table=True):
    """A person's role on one case (a parent; an adviser asked for advice): it ends when the role does."""

    __tablename__ = "portal_access"
    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=32, unique=True)
    person_id: int = Field(foreign_key="portal_person.id", index=True)
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    contact_id: int = Field(foreign_key="contact.id")
    role: str = Field(max_length=40)
    kind: str = Field(max_length=10)
    invited_by: str = Field(max_length=100)
    invited_at: datetime = Field(sa_column=_moment())
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    ended_by: str | None = Field(default=None, max_length=100)
    end_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class PortalLink(SQLModel, table=True):
    """A sign-in link sent by email: single use, short-lived; only its hash is kept."""

    __tablename__ = "portal_link"
    id: str = Field(primary_key=True, max_length=64)
    person_id: int = Field(foreign_key="portal_person.id", index=True)
    purpose: str = Field(max_length=20)
    created_at: datetime = Field(sa_column=_moment())
    expires_at: datetime = Field(sa_column=_moment())
    used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class AdviceRequest(SQLModel, table=True):
    """A request for advice and information to one adviser, with its own due date (reg 8(1))."""

    __tablename__ = "advice_request"
    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=32, unique=True)
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    instance_id: int = Field(foreign_key="workflow_instance.id")
    contact_id: int = Field(foreign_key="contact.id")
    access_id: int | None = Field(default=None, foreign_key="portal_access.id")
    deadline: str = Field(max_length=80)
    requested_on: date
    due_on: date
    requested_by: str = Field(max_length=100)
    received_on: date | None = None
    received_how: str | None = Field(default=None, max_length=20)
    withdrawn_on: date | None = None


class PortalContribution(SQLModel, table=True):
    """Append-only: what a family member or adviser sent, and the day it reached the council."""

    __tablename__ = "portal_contribution"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    access_id: int = Field(foreign_key="portal_access.id")
    instance_id: int | None = Field(default=None, foreign_key="workflow_instance.id")
    kind: str = Field(max_length=20)
    received_on: date
    received_at: datetime = Field(sa_column=_moment())
    period: str | None = Field(default=None, max_length=80)
    period_due_on: date | None = None
    body: str = Field(sa_column=Column(Text, nullable=False))
    history_seq: int | None = None


class PortalUpload(SQLModel, table=True):
    """Append-only: a file sent with a contribution, checked by its content and stored by its hash."""

    __tablename__ = "portal_upload"
    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=32, unique=True)
    case_id: int = Field(foreign_key="ehc_case.id", index=True)
    access_id: int = Field(foreign_key="portal_access.id")
    contribution_id: int = Field(foreign_key="portal_contribution.id")
    sha256: str = Field(max_length=64)
    size: int
    media_type: str = Field(max_length=100)
    extension: str = Field(max_length=10)
    original_name: str = Field(max_length=255)
    path: str = Field(max_length=500)
    scanned: bool
    received_at: datetime = Field(sa_column=_moment())
