"""Deciding what a trigger does to a workflow instance: the pure core.

One ``transitions.Machine`` is built per definition version and shared by every case. A persisted
instance is bound to it for the length of one call through a small adaptor (``_Bound``) that
carries its state and the facts the conditions read; the machine's events are triggered on the
adaptor directly, so nothing is attached to it and no machine is ever built per case.

``decide`` returns an ``Outcome``: everything the store must write in one transaction. It reads
no database, no clock and no files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from transitions import EventData, Machine

from . import calendar
from .definition.model import (
    START,
    AnyOf,
    DeadlineSpec,
    InputIsYes,
    InputSpec,
    MessageAction,
    PeriodEnded,
    TransitionSpec,
    WorkflowDefinition,
)
from .errors import TransitionRefused
from .inputs import resolve

ConditionFn = Callable[["_Bound"], bool]


@dataclass(frozen=True)
class Actor:
    """Who is asking, as the service has established it."""

    id: str
    role: str


@dataclass(frozen=True)
class OpenDeadline:
    """A deadline of the instance as the core needs to know it."""

    name: str
    due_on: date
    status: str


@dataclass(frozen=True)
class Snapshot:
    """The persisted instance, read before deciding."""

    state: str
    facts: Mapping[str, Any]
    deadlines: Mapping[str, OpenDeadline]
    last_event_on: date | None


@dataclass(frozen=True)
class NewDeadline:
    name: str
    title: str
    starts_on: date
    due_on: date
    source: str
    basis: str
    party: str


@dataclass(frozen=True)
class Outcome:
    """What one trigger does: written by the store in one transaction, or not at all."""

    trigger: str
    from_state: str | None
    to_state: str
    on: date
    actor: Actor
    inputs: dict[str, Any]
    facts: dict[str, Any]
    opened: list[NewDeadline] = field(default_factory=list)
    met: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    messages: list[MessageAction] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    final: bool = False


class _Bound:
    """The adaptor: one instance bound to the shared machine for the length of one call."""

    __slots__ = ("state", "facts", "deadlines", "today", "entered")

    def __init__(self, state: str, facts: Mapping[str, Any], deadlines: Mapping[str, OpenDeadline], today: date):
        self.state = state
        self.facts = facts
        self.deadlines = deadlines
        self.today = today
        self.entered: list[str] = []


def _compile(cond: Any) -> ConditionFn:
    if isinstance(cond, PeriodEnded):
        name = cond.period_ended

        def period_ended(b: _Bound) -> bool:
            d = b.deadlines.get(name)
            return d is not None and (d.status != "open" or b.today > d.due_on)

        return period_ended
    if isinstance(cond, InputIsYes):
        key = cond.input_is_yes
        return lambda b: b.facts.get(key) is True
    if isinstance(cond, AnyOf):
        parts = [_compile(c) for c in cond.any_of]
        return lambda b: any(p(b) for p in parts)
    raise TypeError(f"unknown condition {cond!r}")  # the loader makes this unreachable


def _explain(cond: Any, b: _Bound) -> str:
    if cond.explain:
        return " ".join(cond.explain.split())
    if isinstance(cond, PeriodEnded):
        d = b.deadlines.get(cond.period_ended)
        if d is None:
            return f"the period '{cond.period_ended}' has not started"
        return f"the period '{cond.period_ended}' runs until {d.due_on.isoformat()}"
    if isinstance(cond, InputIsYes):
        return f"input '{cond.input_is_yes}' must be yes"
    return "none of the conditions is met: " + "; or ".join(_explain(c, b) for c in cond.any_of)


class WorkflowMachine:
    """The shared state machine of one definition version, and the decisions made with it."""

    def __init__(self, definition: WorkflowDefinition):
        self.definition = definition
        self._by_trigger: dict[tuple[str, str], TransitionSpec] = {}
        self._conditions: dict[tuple[str, str], list[tuple[Any, ConditionFn]]] = {}
        for t in definition.transitions:
            for src in t.source:
                self._by_trigger.setdefault((t.trigger, src), t)
                self._conditions[(t.trigger, src)] = [(c, _compile(c)) for c in t.conditions]
        self._opened_by: dict[str, list[DeadlineSpec]] = {}
        self._met_by: dict[str, list[str]] = {}
        self._cancelled_by: dict[str, list[str]] = {}
        for d in definition.deadlines:
            for trig in d.opened_by:
                self._opened_by.setdefault(trig, []).append(d)
            for trig in d.met_by:
                self._met_by.setdefault(trig, []).append(d.name)
            for trig in d.cancelled_by:
                self._cancelled_by.setdefault(trig, []).append(d.name)
        self.machine = Machine(
            model=None,
            states=[{"name": name, "on_enter": [self._entered]} for name in definition.states],
            transitions=[
                {
                    "trigger": t.trigger,
                    "source": src,
                    "dest": t.dest,
                    "conditions": [self._condition_checker(t.trigger, src)],
                }
                for t in definition.transitions
                for src in t.source
            ],
            initial=definition.initial,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
        )

    def _condition_checker(self, trigger: str, source: str) -> Callable[[EventData], bool]:
        checks = [fn for _, fn in self._conditions[(trigger, source)]]

        def check(event: EventData) -> bool:
            bound = event.model
            assert isinstance(bound, _Bound)
            return all(fn(bound) for fn in checks)

        return check

    @staticmethod
    def _entered(event: EventData) -> None:
        bound = event.model
        assert isinstance(bound, _Bound)
        bound.entered.append(event.state.name)

    # -- questions -----------------------------------------------------------------------------

    def allowed(self, state: str, role: str | None = None) -> list[str]:
        """Triggers that can be fired from ``state`` (by ``role``, when given)."""
        return [
            trig
            for trig in self.machine.get_triggers(state)
            if role is None or role in self._by_trigger[(trig, state)].roles
        ]

    def transition(self, trigger: str, state: str) -> TransitionSpec | None:
        return self._by_trigger.get((trigger, state))

    # -- decisions -----------------------------------------------------------------------------

    def start(self, inputs: Mapping[str, Any], actor: Actor, today: date) -> Outcome:
        """The outcome of opening a new instance of this workflow."""
        values, problems = resolve(self.definition.inputs, inputs, today)
        initial = self.definition.initial
        if problems:
            raise TransitionRefused("(new)", START, "; ".join(problems), [START])
        facts = dict(values)
        state = self.definition.states[initial]
        return Outcome(
            trigger=START,
            from_state=None,
            to_state=initial,
            on=today,
            actor=actor,
            inputs=values,
            facts=facts,
            opened=self._open(START, facts, today),
            messages=list(state.on_enter.messages),
            documents=list(state.on_enter.documents),
            final=state.final,
        )

    def decide(self, snap: Snapshot, trigger: str, inputs: Mapping[str, Any], actor: Actor, today: date) -> Outcome:
        """What firing ``trigger`` on the instance would do; raises TransitionRefused with the reason."""
        state = snap.state

        def refuse(reason: str) -> TransitionRefused:
            return TransitionRefused(state, trigger, reason, self.allowed(state, actor.role))

        spec = self._by_trigger.get((trigger, state))
        if spec is None:
            if trigger not in self.machine.events:
                raise refuse(f"'{trigger}' is not a step of the {self.definition.name} workflow")
            if self.definition.states[state].final:
                raise refuse(f"the workflow has ended ('{state}' is a final state)")
            raise refuse(f"'{trigger}' is not possible from '{state}'")
        if actor.role not in spec.roles:
            raise refuse(f"only {' or '.join(spec.roles)} may do this; you are {actor.role}")
        if snap.last_event_on is not None and today < snap.last_event_on:
            raise refuse(
                f"the date {today.isoformat()} is before the case's last recorded step "
                f"({snap.last_event_on.isoformat()})"
            )
        values, problems = resolve(spec.inputs, inputs, today)
        if problems:
            raise refuse("; ".join(problems))
        facts = {**snap.facts, **values}
        bound = _Bound(state, facts, snap.deadlines, today)
        if not self.machine.events[trigger].trigger(bound):
            failing = [c for c, fn in self._conditions[(trigger, state)] if not fn(bound)]
            raise refuse("; ".join(_explain(c, bound) for c in failing) or "a condition is not met")
        dest = self.definition.states[spec.dest]
        open_names = {n for n, d in snap.deadlines.items() if d.status in ("open", "breached")}
        met = [n for n in self._met_by.get(trigger, ()) if n in open_names]
        cancelled = [n for n in self._cancelled_by.get(trigger, ()) if n in open_names and n not in met]
        if dest.final:
            # Reaching the end of the workflow closes every limit still running.
            cancelled += sorted(open_names - set(met) - set(cancelled))
        entered = bool(bound.entered)
        return Outcome(
            trigger=trigger,
            from_state=state,
            to_state=spec.dest,
            on=today,
            actor=actor,
            inputs=values,
            facts=facts,
            opened=[] if dest.final else self._open(trigger, facts, today),
            met=met,
            cancelled=cancelled,
            messages=list(dest.on_enter.messages) if entered else [],
            documents=list(dest.on_enter.documents) if entered else [],
            final=dest.final,
        )

    def _open(self, trigger: str, facts: Mapping[str, Any], today: date) -> list[NewDeadline]:
        opened = []
        for d in self._opened_by.get(trigger, ()):
            start = facts.get(d.counted_from, today) if d.counted_from else today
            if not isinstance(start, date):
                start = date.fromisoformat(str(start))
            opened.append(
                NewDeadline(
                    name=d.name,
                    title=d.title,
                    starts_on=start,
                    due_on=calendar.add(start, d.duration),
                    source=d.source,
                    basis=d.basis.value,
                    party=d.party.value,
                )
            )
        return opened


def input_specs(definition: WorkflowDefinition, trigger: str) -> Mapping[str, InputSpec]:
    """The inputs a trigger takes (the workflow's own inputs for ``start``)."""
    if trigger == START:
        return definition.inputs
    for t in definition.transitions:
        if t.trigger == trigger:
            return t.inputs
    return {}
