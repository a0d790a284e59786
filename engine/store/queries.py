"""The read side: cases, their history and deadlines as plain JSON-ready dictionaries."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from ..errors import NotFound
from ..standing import is_overdue, standing
from .models import Case, Contact, Deadline, Document, HistoryEntry, OutboxMessage, WorkflowInstance


def _moment(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite returns the stored UTC moment without its zone
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def deadline_dict(d: Deadline, as_of: date | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": d.name,
        "title": d.title,
        "starts": _day(d.starts_on),
        "due": _day(d.due_on),
        "status": d.status,
        "regulation": d.source,
        "basis": d.basis,
        "party": d.party,
        "closed": _day(d.closed_on),
        "excused": d.exception_head is not None,
        "exception": (
            {"head": d.exception_head, "reason": d.exception_reason, "by": d.exception_by, "on": _day(d.exception_on)}
            if d.exception_head
            else None
        ),
    }
    if as_of is not None:
        if d.closed_on is None:
            out["days_left"] = (d.due_on - as_of).days
        now = standing(
            status=d.status,
            due_on=d.due_on,
            closed_on=d.closed_on,
            party=d.party,
            as_of=as_of,
            excused=d.exception_head is not None,
        )
        out["standing"] = {"state": now.state, "days": now.days, "label": now.label}
    return out


def case_view(engine: Engine, case_id: int, as_of: date | None = None) -> dict[str, Any]:
    with Session(engine) as s:
        case = s.get(Case, case_id)
        if case is None:
            raise NotFound(f"no case {case_id}")
        contacts = s.exec(select(Contact).where(Contact.case_id == case_id).order_by(col(Contact.id))).all()
        instances = s.exec(
            select(WorkflowInstance).where(WorkflowInstance.case_id == case_id).order_by(col(WorkflowInstance.id))
        ).all()
        history = s.exec(  # through the instances' (instance_id, seq) index
            select(HistoryEntry)
            .where(col(HistoryEntry.instance_id).in_([i.id for i in instances]))
            .order_by(col(HistoryEntry.id))
        ).all()
        deadlines = s.exec(
            select(Deadline).where(Deadline.case_id == case_id).order_by(col(Deadline.due_on), col(Deadline.id))
        ).all()
        outbox = s.exec(
            select(OutboxMessage).where(OutboxMessage.case_id == case_id).order_by(col(OutboxMessage.id))
        ).all()
        documents = s.exec(select(Document).where(Document.case_id == case_id).order_by(col(Document.id))).all()
    names = {i.id: i.workflow for i in instances}
    workflows = [
        {
            "instance": i.id,
            "parent": i.parent_id,
            "workflow": i.workflow,
            "definition_version": i.definition_version,
            "state": i.state,
            "version": i.version,
            "opened": _day(i.opened_on),
            "closed": _day(i.closed_on),
            "facts": json.loads(i.facts),
        }
        for i in instances
    ]
    current = next((w for w in reversed(workflows) if w["closed"] is None), workflows[-1] if workflows else None)
    return {
        "id": case.id,
        "name": case.name,
        "date_of_birth": _day(case.date_of_birth),
        "caseworker": case.caseworker,
        "year_group_offset": case.year_group_offset,
        "school_pattern": case.school_pattern,
        "created": _moment(case.created_at),
        "contacts": [
            {
                "role": c.role,
                "name": c.name,
                "email": c.email,
                "address": c.address,
                "prefers": c.prefers,
                "interpreter": c.interpreter,
                "accessible_format": c.accessible_format,
            }
            for c in contacts
        ],
        "workflow": current["workflow"] if current else None,
        "state": current["state"] if current else None,
        "version": current["version"] if current else None,
        "workflows": workflows,
        "history": [
            {
                "seq": h.seq,
                "workflow": names.get(h.instance_id),
                "at": _moment(h.at),
                "on": _day(h.occurred_on),
                "by": h.actor,
                "role": h.actor_role,
                "trigger": h.trigger,
                "from": h.from_state,
                "to": h.to_state,
                "inputs": json.loads(h.inputs),
                "note": h.note,
            }
            for h in history
        ],
        "deadlines": [
            dict(deadline_dict(d, as_of), workflow=names.get(d.instance_id), instance=d.instance_id) for d in deadlines
        ],
        "outbox": [
            {
                "key": m.key,
                "template": m.template,
                "to": m.recipient_email or m.recipient_name,
                "role": m.recipient_role,
                "channel": m.channel,
                "status": m.status,
                "note": m.last_error,
            }
            for m in outbox
        ],
        "documents": [
            {"kind": d.kind, "status": d.status, "created": _moment(d.created_at), "sha256": d.sha256}
            for d in documents
        ],
    }


def list_cases(engine: Engine, state: str | None = None, workflow: str | None = None) -> list[dict[str, Any]]:
    with Session(engine) as s:
        next_due = (
            select(Deadline.instance_id, func.min(Deadline.due_on).label("next_due"))
            .where(col(Deadline.closed_on).is_(None), Deadline.party == "council")
            .group_by(col(Deadline.instance_id))
            .subquery()
        )
        query = (
            select(Case, WorkflowInstance, next_due.c.next_due)
            .join(WorkflowInstance, col(WorkflowInstance.case_id) == col(Case.id))
            .join(next_due, next_due.c.instance_id == WorkflowInstance.id, isouter=True)
            .order_by(col(Case.id), col(WorkflowInstance.id))
        )
        if state:
            query = query.where(WorkflowInstance.state == state)
        if workflow:
            query = query.where(WorkflowInstance.workflow == workflow)
        rows = s.exec(query).all()
    return [
        {
            "id": case.id,
            "name": case.name,
            "date_of_birth": _day(case.date_of_birth),
            "workflow": inst.workflow,
            "state": inst.state,
            "open": inst.closed_on is None,
            "next_due": _day(nd) if isinstance(nd, date) else nd,
            "caseworker": case.caseworker,
        }
        for case, inst, nd in rows
    ]


def due(engine: Engine, as_of: date, today: date | None = None) -> list[dict[str, Any]]:
    """Open deadlines due on or before ``as_of``, soonest first (uses the open deadlines' due index);
    each stands as it does ``today`` (``as_of`` when not given)."""
    today = today or as_of
    with Session(engine) as s:
        rows = s.exec(
            select(Deadline, Case.name, WorkflowInstance.workflow, WorkflowInstance.state)
            .join(Case, col(Case.id) == col(Deadline.case_id))
            .join(WorkflowInstance, col(WorkflowInstance.id) == col(Deadline.instance_id))
            .where(col(Deadline.status).in_(("open", "breached")), col(Deadline.closed_on).is_(None))
            .where(Deadline.party != "family")  # the family's periods are theirs, not the council's to meet
            .where(col(Deadline.due_on) <= as_of)
            .order_by(col(Deadline.due_on), col(Deadline.id))
        ).all()
    return [
        dict(
            deadline_dict(d, today),
            case_id=d.case_id,
            case_name=name,
            workflow=wf,
            state=st,
            overdue=is_overdue(d.due_on, today),
        )
        for d, name, wf, st in rows
    ]


def review_candidates(engine: Engine) -> list[dict[str, Any]]:
    """Every case with its date of birth, year group offset, school pattern and open annual review."""
    with Session(engine) as s:
        reviews = (
            select(WorkflowInstance.case_id, func.max(WorkflowInstance.id).label("review"))
            .where(WorkflowInstance.workflow == "annual_review", col(WorkflowInstance.closed_on).is_(None))
            .group_by(col(WorkflowInstance.case_id))
            .subquery()
        )
        # A move already recorded: the case's latest phase transfer date, open, settled, or called
        # off (a family who said the child is not moving is not asked again by the next run).
        phase = (
            select(Deadline.case_id, func.max(Deadline.due_on).label("phase_due"))
            .join(WorkflowInstance, col(Deadline.instance_id) == WorkflowInstance.id)
            .where(WorkflowInstance.workflow == "phase_transfer", Deadline.name == "phase_transfer")
            .group_by(col(Deadline.case_id))
            .subquery()
        )
        rows = s.exec(
            select(Case, reviews.c.review, phase.c.phase_due)
            .join(reviews, reviews.c.case_id == Case.id, isouter=True)
            .join(phase, phase.c.case_id == Case.id, isouter=True)
            .order_by(col(Case.id))
        ).all()
    return [
        {
            "id": case.id,
            "name": case.name,
            "date_of_birth": case.date_of_birth,
            "year_group_offset": case.year_group_offset,
            "school_pattern": case.school_pattern,
            "review": review,
            "phase_due": phase_due
            if isinstance(phase_due, date) or phase_due is None
            else date.fromisoformat(phase_due),
        }
        for case, review, phase_due in rows
    ]


def timeliness(engine: Engine, name: str, since: date | None = None, until: date | None = None) -> dict[str, Any]:
    """How many limits called ``name`` were met in time, with and without exceptions counted.

    As the Department for Education counts new plans within 20 weeks: all closed limits, and those
    without an exception recorded.
    """
    with Session(engine) as s:
        query = select(Deadline).where(Deadline.name == name, col(Deadline.status).in_(("met", "breached")))
        if since is not None:
            query = query.where(col(Deadline.closed_on) >= since)
        if until is not None:
            query = query.where(col(Deadline.closed_on) <= until)
        rows = s.exec(query).all()
    total = len(rows)
    on_time = sum(1 for d in rows if d.status == "met")
    plain = [d for d in rows if d.exception_head is None]
    plain_on_time = sum(1 for d in plain if d.status == "met")

    def pct(a: int, b: int) -> float | None:
        return round(100.0 * a / b, 1) if b else None

    return {
        "deadline": name,
        "closed": total,
        "on_time": on_time,
        "on_time_percent": pct(on_time, total),
        "with_exception": total - len(plain),
        "excluding_exceptions": {
            "closed": len(plain),
            "on_time": plain_on_time,
            "on_time_percent": pct(plain_on_time, len(plain)),
        },
    }


def outbox(engine: Engine, *, status: str | None, case_id: int | None, limit: int) -> list[dict[str, Any]]:
    """Messages, newest first: ``key``, ``to``, ``subject``, ``status`` and what happened to each."""
    with Session(engine) as s:
        query = select(OutboxMessage)
        if status is not None:
            query = query.where(OutboxMessage.status == status)
        if case_id is not None:
            query = query.where(OutboxMessage.case_id == case_id)
        rows = s.exec(query.order_by(col(OutboxMessage.id).desc()).limit(limit)).all()
        return [
            {
                "id": m.id,
                "key": m.key,
                "kind": m.kind,
                "case_id": m.case_id,
                "template": m.template,
                "to": m.recipient_email or (f"letter to {m.recipient_name}" if m.recipient_name else None),
                "recipient_role": m.recipient_role,
                "channel": m.channel,
                "subject": m.subject,
                "status": m.status,
                "attempts": m.attempts,
                "created": _moment(m.created_at),
                "sent": _moment(m.sent_at),
                "next_attempt": _moment(m.next_attempt_at),
                "detail": m.last_error,
                "provider_id": m.provider_id,
            }
            for m in rows
        ]


def queued_documents(engine: Engine) -> list[int]:
    with Session(engine) as s:
        return list(s.exec(select(Document.id).where(Document.status == "queued")).all())  # type: ignore[arg-type]
