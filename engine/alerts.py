"""When a deadline's reminders, breach and escalations fall: a pure plan from the workflow's policy.

A deadline row stores only the date of its next alert (``next_alert_on``); the sweep asks this
module which alerts fall between that date and today, and what the next one after today is. The
policy itself (``defaults`` in the workflow file, overridden in ``config.yaml``) is never copied
into the database, so a council that changes it changes every alert not yet due.

- A reminder falls ``before`` the due date (``2 weeks``, ``3 working days``).
- The breach falls on the day after the due date, for a limit someone can miss (the council's,
  an adviser's or a school's); a family's period simply ends and is never breached.
- An escalation falls ``after`` the breach (``0 days``: on the day of the breach).

Catching up after the sweep did not run for a while: a reminder is sent only while its deadline
is still ahead (or due today); of several reminders that fell while nobody swept, only the latest
goes out, the others are recorded as skipped; the breach is recorded once, dated the day it
happened; each escalation goes out once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from . import standing
from .calendar import Duration, Unit, add, subtract
from .definition.model import DeadlineSpec, WorkflowDefinition


class AlertKind(StrEnum):
    REMINDER = "reminder"
    BREACH = "breach"
    ESCALATION = "escalation"


@dataclass(frozen=True)
class AlertPoint:
    kind: AlertKind
    on: date
    step: str  # stable across policy edits: "2w", "3wd", "0d"; part of each message's key
    to: tuple[str, ...]
    offset: Duration | None = None


@dataclass(frozen=True)
class Due:
    """What the sweep should do for one deadline today."""

    send: tuple[AlertPoint, ...]
    skip: tuple[tuple[AlertPoint, str], ...]
    breach_on: date | None
    next_alert_on: date | None


_UNIT_TOKEN = {Unit.DAYS: "d", Unit.WEEKS: "w", Unit.MONTHS: "m", Unit.WORKING_DAYS: "wd"}


def step_token(duration: Duration) -> str:
    return f"{duration.amount}{_UNIT_TOKEN[duration.unit]}"


def breaches(party: str) -> bool:
    """Whether missing this party's limit is a breach (everyone's but the family's)."""
    return standing.breaches(party)


def plan(definition: WorkflowDefinition, spec: DeadlineSpec, party: str, due_on: date) -> list[AlertPoint]:
    """Every alert of a deadline due on ``due_on``, in date order (reminders, breach, escalations)."""
    points = [
        AlertPoint(AlertKind.REMINDER, subtract(due_on, r.before), step_token(r.before), tuple(r.to), r.before)
        for r in definition.reminders_for(spec)
    ]
    if breaches(party):
        breach_day = due_on + timedelta(days=1)
        points.append(AlertPoint(AlertKind.BREACH, breach_day, "0d", ()))
        points += [
            AlertPoint(AlertKind.ESCALATION, add(breach_day, e.after), step_token(e.after), tuple(e.to), e.after)
            for e in definition.escalations_for(spec)
        ]
    order = {AlertKind.REMINDER: 0, AlertKind.BREACH: 1, AlertKind.ESCALATION: 2}
    return sorted(points, key=lambda p: (p.on, order[p.kind]))


def first_alert_on(definition: WorkflowDefinition, spec: DeadlineSpec, party: str, due_on: date) -> date | None:
    points = plan(definition, spec, party, due_on)
    return points[0].on if points else None


def due(
    definition: WorkflowDefinition,
    spec: DeadlineSpec,
    party: str,
    due_on: date,
    status: str,
    since: date,
    today: date,
) -> Due:
    """The alerts that fell from ``since`` (the stored next alert date) up to ``today``."""
    points = plan(definition, spec, party, due_on)
    fallen = [p for p in points if since <= p.on <= today]
    later = [p.on for p in points if p.on > today]
    send: list[AlertPoint] = []
    skip: list[tuple[AlertPoint, str]] = []
    reminders = [p for p in fallen if p.kind is AlertKind.REMINDER]
    for i, p in enumerate(reminders):
        if due_on < today:
            skip.append((p, f"not sent: the deadline ({due_on.isoformat()}) had passed before it could go out"))
        elif i < len(reminders) - 1:
            skip.append((p, "not sent: a later reminder for the same deadline went out instead"))
        else:
            send.append(p)
    breach_on = next((p.on for p in fallen if p.kind is AlertKind.BREACH and status == "open"), None)
    send += [p for p in fallen if p.kind is AlertKind.ESCALATION]
    return Due(tuple(send), tuple(skip), breach_on, min(later) if later else None)


def offset_of(definition: WorkflowDefinition, spec: DeadlineSpec, kind: str, step: str) -> Duration | None:
    """The policy's offset behind a message's step token ("2w" -> 2 weeks), if the policy still has it."""
    if kind == AlertKind.REMINDER:
        return next((r.before for r in definition.reminders_for(spec) if step_token(r.before) == step), None)
    return next((e.after for e in definition.escalations_for(spec) if step_token(e.after) == step), None)


def context(
    case: tuple[int, str],
    deadline: dict[str, object],
    workflow_title: str,
    kind: str,
    offset: Duration | None,
    recipient: tuple[str, str],
    as_of: date,
) -> dict[str, object]:
    """What a reminder's or escalation's template is given: the case, the deadline as it stands, and the
    day the sweep found it due (``as_of``), from which the days left or late are counted."""
    due_on = deadline["due_on"]
    assert isinstance(due_on, date)
    return {
        "case": {"id": case[0], "name": case[1]},
        "recipient": {"name": recipient[0], "role": recipient[1]},
        "deadline": {
            **deadline,
            "days_left": (due_on - as_of).days,
            "days_late": max(0, (as_of - due_on).days),
            "breached_on": due_on + timedelta(days=1),
        },
        "workflow": workflow_title,
        "step": str(offset) if offset else "",
        "kind": kind,
        "as_of": as_of,
    }
