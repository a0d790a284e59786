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
from .actor import Actor as Actor  # where it always was, for every caller
from .alerts import first_alert_on
from .definition.model import (
    START,
    AgeBelow,
    AnyOf,
    DeadlineSpec,
    Direction,
    Given,
    InputEquals,
    InputIsYes,
    InputSpec,
    MessageAction,
    Not,
    OnEnter,
    PeriodEnded,
    TransitionSpec,
    ValueFrom,
    WorkflowDefinition,
)
from .errors import TransitionRefused
from .inputs import resolve
from .roles import WORKFLOW_ROLE

ConditionFn = Callable[["_Bound"], bool]


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
    recount: bool = False  # the deadline is already open: its dates are counted again
    next_alert_on: date | None = None  # its first reminder, breach or escalation (engine.alerts)


@dataclass(frozen=True)
class StartRequest:
    """Start ``workflow`` on the same case, as a child of this instance, with these inputs."""

    workflow: str
    inputs: dict[str, Any]


@dataclass(frozen=True)
class SignalRequest:
    """Fire ``trigger`` on the instance that started this one, if it can take it."""

    trigger: str
    inputs: dict[str, Any]


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
    starts: list[StartRequest] = field(default_factory=list)
    signal: SignalRequest | None = None
    met_on: dict[str, date] = field(default_factory=dict)  # when a step says a limit was met earlier
    signal_children: list[tuple[str, str]] = field(default_factory=list)  # (workflow, trigger)
    signal_case: list[tuple[str, str]] = field(default_factory=list)  # (workflow, trigger) on the whole case


@dataclass(frozen=True)
class PastStep:
    """A step as the history recorded it, to be decided again (a correction replays the rest)."""

    trigger: str
    inputs: Mapping[str, Any]
    on: date
    role: str


@dataclass(frozen=True)
class Replayed:
    """Where an instance stands after its start and the steps replayed: state, facts, open limits."""

    state: str
    facts: dict[str, Any]
    open_due: dict[str, date]
    last_on: date


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
    if isinstance(cond, InputEquals):
        wanted = {k: (v if isinstance(v, list) else [v]) for k, v in cond.input_equals.items()}
        return lambda b: all(b.facts.get(k) in vs for k, vs in wanted.items())
    if isinstance(cond, AgeBelow):
        years, on = cond.age_below, cond.on_date

        def age_below(b: _Bound) -> bool:
            born, day = _as_date(b.facts.get("date_of_birth")), _as_date(b.facts.get(on))
            return born is not None and day is not None and calendar.age_on(born, day) < years

        return age_below
    if isinstance(cond, Given):
        fact = cond.given
        return lambda b: b.facts.get(fact) not in (None, "")
    if isinstance(cond, AnyOf):
        parts = [_compile(c) for c in cond.any_of]
        return lambda b: any(p(b) for p in parts)
    if isinstance(cond, Not):
        inner = _compile(cond.not_)
        return lambda b: not inner(b)
    raise TypeError(f"unknown condition {cond!r}")  # the loader makes this unreachable


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def _mapped(values: Mapping[str, ValueFrom], facts: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, source in values.items():
        if source.fact_named_by is not None:
            value = facts.get(str(facts.get(source.fact_named_by)))
        elif source.fact is not None:
            value = facts.get(source.fact)
        else:
            value = source.value
        if value is not None:
            out[key] = value
    return out


def _explain(cond: Any, b: _Bound) -> str:
    if cond.explain:
        text = " ".join(cond.explain.split())
        if isinstance(cond, PeriodEnded) and (d := b.deadlines.get(cond.period_ended)) is not None:
            text += f"; the period runs until {d.due_on.isoformat()}"
        return text
    if isinstance(cond, PeriodEnded):
        d = b.deadlines.get(cond.period_ended)
        if d is None:
            return f"the period '{cond.period_ended}' has not started"
        return f"the period '{cond.period_ended}' runs until {d.due_on.isoformat()}"
    if isinstance(cond, InputIsYes):
        return f"input '{cond.input_is_yes}' must be yes"
    if isinstance(cond, InputEquals):
        return " and ".join(f"'{k}' must be {v}" for k, v in cond.input_equals.items())
    if isinstance(cond, AgeBelow):
        return f"the child must be under {cond.age_below} on '{cond.on_date}'"
    if isinstance(cond, Given):
        return f"'{cond.given}' must be given"
    if isinstance(cond, Not):
        return "this must not hold: " + _explain(cond.not_, b)
    return "none of the conditions is met: " + "; or ".join(_explain(c, b) for c in cond.any_of)


class WorkflowMachine:
    """The shared state machine of one definition version, and the decisions made with it."""

    def __init__(self, definition: WorkflowDefinition):
        self.definition = definition
        # A deadline's first alert depends only on its spec and due date: many cases share both.
        self._first_alert: dict[tuple[int, date], date | None] = {}
        self._by_trigger: dict[tuple[str, str], TransitionSpec] = {}
        self._conditions: dict[tuple[str, str], list[tuple[Any, ConditionFn]]] = {}
        for t in definition.transitions:
            for src in t.source:
                self._by_trigger.setdefault((t.trigger, src), t)
                self._conditions[(t.trigger, src)] = [(c, _compile(c)) for c in t.conditions]
        self._opened_by: dict[str, list[DeadlineSpec]] = {}
        self._met_by: dict[str, list[str]] = {}
        self._cancelled_by: dict[str, list[str]] = {}
        self._met_on: dict[str, dict[str, str]] = {}  # trigger -> deadline -> the date input it was met on
        self._when: dict[int, list[ConditionFn]] = {}
        for d in definition.deadlines:
            self._when[id(d)] = [_compile(c) for c in d.when]
            for trig in d.opened_by:
                self._opened_by.setdefault(trig, []).append(d)
            for trig in d.met_by:
                names = self._met_by.setdefault(trig, [])
                if d.name not in names:  # variants of one deadline share their name
                    names.append(d.name)
                if d.met_on:
                    self._met_on.setdefault(trig, {})[d.name] = d.met_on
            for trig in d.cancelled_by:
                if d.name not in self._cancelled_by.setdefault(trig, []):
                    self._cancelled_by[trig].append(d.name)
        self.machine = Machine(
            model=None,
            states=[{"name": name, "on_enter": [self._entered]} for name in definition.states],
            transitions=[
                {
                    "trigger": t.trigger,
                    "source": src,
                    # A step that stays in its state is internal: the state is not entered again.
                    "dest": None if t.dest == src else t.dest,
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
        """Triggers that can be fired from ``state`` (by ``role``, when given): the definition's rule,
        which needs no machine (``case show`` asks it without building one)."""
        return self.definition.allowed(state, role)

    def transition(self, trigger: str, state: str) -> TransitionSpec | None:
        return self._by_trigger.get((trigger, state))

    # -- decisions -----------------------------------------------------------------------------

    def start(
        self,
        inputs: Mapping[str, Any],
        actor: Actor,
        today: date,
        *,
        parameters: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """The outcome of opening a new instance of this workflow.

        ``parameters`` are the council's readings of points the law leaves open (config.yaml);
        ``context`` holds facts about the case the conditions may read (the date of birth).
        Both are kept in the instance's facts.
        """
        values, problems = resolve(self.definition.inputs, inputs, today)
        initial = self.definition.initial
        if problems:
            raise TransitionRefused("(new)", START, "; ".join(problems), [START])
        facts = {**self.definition.parameter_values(), **(parameters or {}), **(context or {}), **values}
        state = self.definition.states[initial]
        starts, signal = self._actions(state.on_enter, facts)
        return Outcome(
            trigger=START,
            from_state=None,
            to_state=initial,
            on=today,
            actor=actor,
            inputs=values,
            facts=facts,
            opened=self._open(START, facts, today, {}),
            messages=list(state.on_enter.messages),
            documents=list(state.on_enter.documents),
            final=state.final,
            starts=starts,
            signal=signal,
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
            if spec.roles == [WORKFLOW_ROLE]:
                raise refuse(
                    "this step is taken only by another workflow of the case (a signal), not by a person: "
                    "it follows from a step of that workflow"
                )
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
        messages = list(spec.actions.messages) + (list(dest.on_enter.messages) if entered else [])
        documents = list(spec.actions.documents) + (list(dest.on_enter.documents) if entered else [])
        starts, signal = self._actions(spec.actions, facts)
        children = [(c.workflow, c.trigger) for c in spec.actions.signal_children]
        case_wide = [(c.workflow, c.trigger) for c in spec.actions.signal_case]
        if entered:
            more, entry_signal = self._actions(dest.on_enter, facts)
            starts += more
            signal = entry_signal or signal
            children += [(c.workflow, c.trigger) for c in dest.on_enter.signal_children]
            case_wide += [(c.workflow, c.trigger) for c in dest.on_enter.signal_case]
        opens = not dest.final and trigger in self._opened_by
        opened = self._open(trigger, facts, today, _still_open(snap.deadlines, met, cancelled)) if opens else []
        met_on = {
            name: day
            for name, key in self._met_on.get(trigger, {}).items()
            if (day := _as_date(facts.get(key))) is not None
        }
        # A step that opens a limit and also meets it (invitations sent as the meeting is
        # arranged) closes it at once, on the date the step says it was done.
        at_once = [d.name for d in opened if d.name in self._met_by.get(trigger, ()) and not d.recount]
        met += [n for n in at_once if n not in met]
        return Outcome(
            trigger=trigger,
            from_state=state,
            to_state=spec.dest,
            on=today,
            actor=actor,
            inputs=values,
            facts=facts,
            opened=opened,
            met=met,
            met_on=met_on,
            cancelled=cancelled,
            messages=messages,
            documents=documents,
            final=dest.final,
            starts=starts,
            signal=signal,
            signal_children=children,
            signal_case=case_wide,
        )

    def replay(
        self,
        start_inputs: Mapping[str, Any],
        started_on: date,
        steps: list[PastStep],
        *,
        parameters: Mapping[str, Any],
        context: Mapping[str, Any],
    ) -> Replayed:
        """Decide the start and ``steps`` again, in order, with the dates and roles they had.

        The steps were allowed when they were taken, so they are allowed again: the core is a pure
        function of its inputs. A correction uses this to find where an instance stood before the
        steps it reverses, deadlines counted again included.
        """
        outcome = self.start(
            start_inputs, Actor("replay", WORKFLOW_ROLE), started_on, parameters=parameters, context=context
        )
        deadlines: dict[str, OpenDeadline] = {}
        last_on = started_on

        def absorb(o: Outcome) -> None:
            for name in o.met + o.cancelled:
                deadlines.pop(name, None)
            for d in o.opened:
                if d.name not in o.met:
                    deadlines[d.name] = OpenDeadline(d.name, d.due_on, "open")

        absorb(outcome)
        for step in steps:
            if step.trigger not in self.machine.events:
                continue  # not a step of the workflow (an exception recorded, a breach swept)
            snap = Snapshot(outcome.to_state, outcome.facts, dict(deadlines), last_on)
            outcome = self.decide(snap, step.trigger, step.inputs, Actor("replay", step.role), step.on)
            absorb(outcome)
            last_on = step.on
        return Replayed(outcome.to_state, dict(outcome.facts), {n: d.due_on for n, d in deadlines.items()}, last_on)

    def first_alert_of(self, name: str, due_on: date) -> date | None:
        """The first reminder, breach or escalation date of the deadline ``name`` due on ``due_on``."""
        return self._first_alert_on(self.definition.deadline(name), due_on)

    def _first_alert_on(self, d: DeadlineSpec, due_on: date) -> date | None:
        key = (id(d), due_on)
        if key not in self._first_alert:
            if len(self._first_alert) > 20_000:
                self._first_alert.clear()
            self._first_alert[key] = first_alert_on(self.definition, d, d.party.value, due_on)
        return self._first_alert[key]

    def _open(
        self, trigger: str, facts: Mapping[str, Any], today: date, current: Mapping[str, OpenDeadline]
    ) -> list[NewDeadline]:
        """The deadlines ``trigger`` opens (or counts again, when already open)."""
        opened: list[NewDeadline] = []
        dues: dict[str, date] = {n: d.due_on for n, d in current.items() if d.status == "open"}
        bound = _Bound("", facts, current, today)
        for d in self._opened_by.get(trigger, ()):
            if any(o.name == d.name for o in opened):
                continue  # another variant of this deadline was chosen
            if d.when and not all(fn(bound) for fn in self._when[id(d)]):
                continue
            dates = self._count(d, facts, dues, today)
            if dates is None:
                continue
            starts_on, due_on = dates
            if d.adjusted_by is not None:
                due_on = calendar.ADJUSTMENTS[d.adjusted_by.value](due_on)
            opened.append(
                NewDeadline(
                    name=d.name,
                    title=d.title,
                    starts_on=starts_on,
                    due_on=due_on,
                    source=d.source,
                    basis=d.basis.value,
                    party=d.party.value,
                    recount=d.name in dues,
                    next_alert_on=self._first_alert_on(d, due_on),
                )
            )
            dues[d.name] = due_on
        return opened

    @staticmethod
    def _from(name: str | None, facts: Mapping[str, Any], dues: Mapping[str, date], today: date) -> date | None:
        if name is None:
            return today
        if name in dues:
            return dues[name]
        return _as_date(facts.get(name))

    def _count(
        self, d: DeadlineSpec, facts: Mapping[str, Any], dues: Mapping[str, date], today: date
    ) -> tuple[date, date] | None:
        """(start, due) of a deadline, or None when a date it is counted from is not known."""
        if d.end_of_academic_year_at_age is not None:
            born = _as_date(facts.get("date_of_birth"))
            if born is None:
                return None
            years = d.end_of_academic_year_at_age
            return calendar.birthday(born, years), calendar.end_of_academic_year_at_age(born, years)
        if d.fixed is not None:
            year_of = _as_date(facts.get(d.fixed.year_of))
            if year_of is None:
                return None
            return year_of, calendar.fixed_date(year_of.year, d.fixed.month, d.fixed.day)
        if d.later_of:
            candidates = []
            for period in d.later_of:
                start = self._from(period.counted_from, facts, dues, today)
                if start is not None:
                    candidates.append((calendar.add(start, period.duration), start))
            if not candidates:
                return None
            due, start = max(candidates)
            return start, due
        start = self._from(d.counted_from, facts, dues, today)
        if start is None:
            return None
        duration = d.duration
        if duration is None:
            duration = calendar.Duration.parse(str(facts.get(d.duration_from or "") or ""))
        if d.direction is Direction.BEFORE:
            return start, calendar.subtract(start, duration)
        return start, calendar.add(start, duration)

    @staticmethod
    def _actions(on_enter: OnEnter, facts: Mapping[str, Any]) -> tuple[list[StartRequest], SignalRequest | None]:
        if not on_enter.start and on_enter.signal is None:
            return [], None  # most steps and states start and signal nothing
        bound = _Bound("", facts, {}, date.min)
        starts = [
            StartRequest(s.workflow, _mapped(s.inputs, facts))
            for s in on_enter.start
            if all(_compile(c)(bound) for c in s.when)
        ]
        signal = on_enter.signal
        return starts, (SignalRequest(signal.trigger, _mapped(signal.inputs, facts)) if signal else None)


def _still_open(deadlines: Mapping[str, OpenDeadline], met: list[str], cancelled: list[str]) -> dict[str, OpenDeadline]:
    closing = set(met) | set(cancelled)
    return {n: d for n, d in deadlines.items() if n not in closing}


def input_specs(definition: WorkflowDefinition, trigger: str) -> Mapping[str, InputSpec]:
    """The inputs a trigger takes (the workflow's own inputs for ``start``)."""
    if trigger == START:
        return definition.inputs
    for t in definition.transitions:
        if t.trigger == trigger:
            return t.inputs
    return {}
