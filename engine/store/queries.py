"""The read side: cases, their history and deadlines as plain JSON-ready dictionaries."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from . import reading
from .models import Case, Deadline, Document, OutboxMessage, WorkflowInstance


def _moment(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite returns the stored UTC moment without its zone
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def case_view(engine: Engine, case_id: int, as_of: date | None = None) -> dict[str, Any]:
    with reading.on_engine(engine) as sql:
        return reading.case_view(sql, case_id, as_of)


def list_cases(engine: Engine, state: str | None = None, workflow: str | None = None) -> list[dict[str, Any]]:
    with reading.on_engine(engine) as sql:
        return reading.list_cases(sql, state, workflow)


def due(engine: Engine, as_of: date, today: date | None = None) -> list[dict[str, Any]]:
    """Open deadlines due on or before ``as_of``, soonest first (uses the open deadlines' due index);
    each stands as it does ``today`` (``as_of`` when not given)."""
    with reading.on_engine(engine) as sql:
        return reading.due(sql, as_of, today)


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
