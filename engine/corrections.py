"""Correcting a step recorded by mistake: reversed on the record, never erased.

A correction reverses the last step (or the last N) of one workflow of a case, in one transaction:

- a correcting history entry (who, when, why, and which entries it reverses); the entries it
  reverses stay, so the history remains append-only and shows both;
- the state and facts the instance had before those steps, found by deciding its start and the
  steps that remain again (the core is pure, so this gives every deadline's dates exactly);
- the deadlines those steps opened are cancelled, those they met or cancelled are open again, and
  those they counted again get their earlier dates back;
- the messages and documents they queued that have not gone out are cancelled; those that went
  are listed, since a letter that reached a family cannot be unsent (``tell_family`` queues a
  message saying the record was corrected);
- what the steps did to other workflows of the case goes with them: a workflow they started, and
  that has done nothing since, is closed; a step they caused by a signal is corrected too.

Only a team manager may correct a step recorded before today, or one whose messages went out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .actor import Actor
from .cases import reason_on_record
from .catalogue import Catalogue
from .clock import Clock, london_date
from .directory import Directory
from .errors import ConflictError, InvalidInput, NotAuthorised
from .inputs import to_json
from .machine import PastStep
from .recipients import resolve
from .roles import WORKFLOW_ROLE
from .store.chain import entry_hash
from .store.repository import Store, Unit, as_date, as_moment

CORRECT = "correct"
# Not steps of the workflow (reassign again, or record the details again, to undo).
NOT_STEPS = ("start", CORRECT, "deadline_breached", "reassign", "record_details")
GONE = ("sent", "sending", "failed")


@dataclass(frozen=True)
class Entry:
    id: int
    instance_id: int
    seq: int
    at: datetime
    on: date
    actor: str
    role: str
    trigger: str
    inputs: dict[str, Any]
    note: str | None


@dataclass(frozen=True)
class Reversal:
    """What a correction did to one workflow of the case."""

    instance_id: int
    workflow: str
    reversed: tuple[tuple[int, str, str], ...]  # (seq, step, date) of each entry reversed
    from_state: str
    to_state: str
    closed: bool = False  # a workflow a reversed step started, closed with it


@dataclass
class Corrected:
    case_id: int
    instance_id: int
    seq: int
    reversals: list[Reversal] = field(default_factory=list)
    cancelled_messages: list[str] = field(default_factory=list)
    already_sent: list[tuple[str, str, str]] = field(default_factory=list)  # (template, to, status)
    deadlines_reopened: list[str] = field(default_factory=list)
    deadlines_cancelled: list[str] = field(default_factory=list)
    documents_cancelled: list[str] = field(default_factory=list)
    documents_made: list[str] = field(default_factory=list)
    told_family: int = 0


class Corrections:
    def __init__(self, store: Store, catalogue: Catalogue, directory: Directory, clock: Clock):
        self.store = store
        self.catalogue = catalogue
        self.directory = directory
        self.clock = clock

    def correct(
        self,
        case_id: int,
        *,
        steps: int = 1,
        reason: str,
        actor: Actor,
        workflow: str | None = None,
        tell_family: bool = False,
    ) -> Corrected:
        """Reverse the last ``steps`` steps of the case's most recent workflow (or the one named)."""
        if actor.role not in ("caseworker", "team_manager"):
            raise NotAuthorised(f"only a caseworker or team manager may correct a step; you are {actor.role}")
        reason = reason_on_record(reason, "say why the step was a mistake")
        if steps < 1:
            raise InvalidInput("--steps: at least 1")
        today, now = self.clock.today(), self.clock.now()
        with self.store.unit() as unit:
            instance_id = self._choose(unit, case_id, workflow)
            targets = self._targets(unit, instance_id, steps)
            plan: list[tuple[int, list[Entry], bool]] = []
            self._plan(unit, case_id, instance_id, targets, plan)
            touched = [(iid, e) for iid, entries, _ in plan for e in entries]
            gone = self._gone(unit, touched)
            recorded_before = [e for _, e in touched if london_date(e.at) < today]
            # A caseworker does not undo a decision a manager took (conceding an appeal, say).
            senior = [e for _, e in touched if e.role in ("team_manager", "head_of_service")]
            if (gone or recorded_before or senior) and actor.role != "team_manager":
                why = (
                    "its messages have gone out"
                    if gone
                    else f"{senior[0].actor} ({senior[0].role.replace('_', ' ')}) took it"
                    if senior
                    else "it was recorded before today"
                )
                raise NotAuthorised(
                    f"only a team manager may correct this step: {why}; ask your team manager to correct it"
                )
            result = Corrected(case_id, instance_id, 0)
            for iid, entries, close in plan:
                seq, reversal = self._reverse(unit, iid, entries, close, reason, actor, today, now)
                if iid == instance_id:
                    result.seq = seq
                result.reversals.append(reversal)
                self._undo_effects(unit, iid, [e.seq for e in entries], seq, reversal.closed, today, result)
            if tell_family:
                result.told_family = self._tell_family(unit, case_id, instance_id, result.seq, now)
        return result

    # -- choosing what to reverse --------------------------------------------------------------

    def _choose(self, unit: Unit, case_id: int, workflow: str | None) -> int:
        """The workflow named (its open instance, or its latest), or the one with the case's last step."""
        instances = unit.instances(case_id)  # raises NotFound for an unknown case
        if workflow is not None:
            named = [i for i in instances if i[1] == workflow]
            if not named:
                raise InvalidInput(f"case {case_id} has no {workflow} workflow")
            open_ones = [i for i in named if i[3] is None]
            return (open_ones or named)[-1][0]
        rows = unit.fetch(
            "SELECT instance_id, seq FROM history WHERE case_id = :c AND actor_role <> :auto "
            "AND trigger NOT IN ('start', 'correct', 'deadline_breached') ORDER BY id DESC",
            {"c": case_id, "auto": WORKFLOW_ROLE},
        )
        for iid, seq in rows:  # the newest person's step that still stands (not one already reversed)
            if any(e.seq == seq for e in self._steps(unit, iid)):
                return int(iid)
        raise InvalidInput(
            f"case {case_id} has no step to correct; a workflow started by mistake is closed with "
            f"ehcp case correct {case_id} --workflow NAME"
        )

    def _history(self, unit: Unit, instance_id: int) -> list[Entry]:
        rows = unit.fetch(
            "SELECT id, instance_id, seq, at, occurred_on, actor, actor_role, trigger, inputs, note FROM history "
            "WHERE instance_id = :i ORDER BY seq",
            {"i": instance_id},
        )
        return [
            Entry(r[0], r[1], r[2], as_moment(r[3]), as_date(r[4]), r[5], r[6], r[7], json.loads(r[8] or "{}"), r[9])
            for r in rows
        ]

    def _effective(self, unit: Unit, instance_id: int) -> list[Entry]:
        """The instance's entries that stand: not corrections, and not reversed by one."""
        entries = self._history(unit, instance_id)
        reversed_seqs = {s for e in entries if e.trigger == CORRECT for s in e.inputs.get("reverses", [])}
        return [e for e in entries if e.trigger != CORRECT and e.seq not in reversed_seqs]

    def _steps(self, unit: Unit, instance_id: int) -> list[Entry]:
        return [e for e in self._effective(unit, instance_id) if e.trigger not in NOT_STEPS]

    def _targets(self, unit: Unit, instance_id: int, steps: int) -> list[Entry]:
        found = self._steps(unit, instance_id)
        if not found and steps == 1:
            start = next((e for e in self._effective(unit, instance_id) if e.trigger == "start"), None)
            if start is not None and not (start.note or "").startswith("started by "):
                return [start]  # a workflow started by hand (or a case opened) by mistake: closed
        if len(found) < steps:
            raise InvalidInput(
                f"instance {instance_id} has {len(found)} step(s) that can be corrected, not {steps}; "
                "a workflow's start is undone by correcting the step that started it"
            )
        targets = found[-steps:]
        caused = [e for e in targets if e.role == WORKFLOW_ROLE]
        if caused:
            raise InvalidInput(
                f"'{caused[0].trigger}' followed from another workflow's step ({caused[0].note}): correct that "
                "step, and this one is corrected with it"
            )
        return targets

    def _plan(
        self,
        unit: Unit,
        case_id: int,
        instance_id: int,
        targets: list[Entry],
        plan: list[tuple[int, list[Entry], bool]],
    ) -> None:
        """The reversals a correction makes: this instance's steps, and what they did to others."""
        plan.append((instance_id, targets, targets[0].trigger == "start"))
        effective = self._effective(unit, instance_id)
        for target in targets:
            # What it caused was written right after it, before the instance's next step (a breach
            # the sweep recorded carries the day it happened, not when it was written: not a step).
            later = [e.at for e in effective if e.seq > target.seq and e.trigger not in NOT_STEPS]
            until = min(later) if later else None
            for other, entry in self._follow_ons(unit, case_id, instance_id, target, until):
                if any(p[0] == other for p in plan):
                    continue
                steps = self._steps(unit, other)
                if entry.trigger == "start":  # a workflow the step started: closed if it has done nothing
                    if steps:
                        raise InvalidInput(
                            f"the step '{target.trigger}' started instance {other}, which has steps of its own "
                            f"since ({', '.join(e.trigger for e in steps)}): correct those first "
                            f"(ehcp case correct {case_id} --workflow ...)"
                        )
                    plan.append((other, [entry], True))
                    self._plan_children(unit, case_id, other, entry, plan)
                elif steps and steps[-1].seq == entry.seq:  # a step it caused by a signal, still the last
                    self._plan(unit, case_id, other, [entry], plan)
                else:
                    raise InvalidInput(
                        f"the step '{target.trigger}' moved instance {other} ('{entry.trigger}'), which has "
                        "moved on since: correct its later steps first"
                    )

    def _plan_children(
        self, unit: Unit, case_id: int, instance_id: int, start: Entry, plan: list[tuple[int, list[Entry], bool]]
    ) -> None:
        """A workflow closed with a correction closes the workflows its own start started."""
        for other, entry in self._follow_ons(unit, case_id, instance_id, start, None):
            if entry.trigger == "start" and not any(p[0] == other for p in plan):
                if self._steps(unit, other):
                    raise InvalidInput(f"instance {other} has steps of its own: correct those first")
                plan.append((other, [entry], True))
                self._plan_children(unit, case_id, other, entry, plan)

    def _follow_ons(
        self, unit: Unit, case_id: int, instance_id: int, step: Entry, until: datetime | None
    ) -> list[tuple[int, Entry]]:
        """Entries of other instances a step caused: their start, or a step by signal (as their notes say)."""
        notes = (
            f"started by {step.trigger} of instance {instance_id}",
            f"signalled by {step.trigger} of instance {instance_id}",
        )
        rows = unit.fetch(
            "SELECT instance_id, seq FROM history WHERE case_id = :c AND instance_id <> :i AND note IN (:a, :b) "
            "ORDER BY id",
            {"c": case_id, "i": instance_id, "a": notes[0], "b": notes[1]},
        )
        found = []
        for other, seq in rows:
            entry = next(e for e in self._history(unit, other) if e.seq == seq)
            if entry.at >= step.at and (until is None or entry.at < until):
                if entry.seq in {e.seq for e in self._effective(unit, other)}:
                    found.append((int(other), entry))
        return found

    def _gone(self, unit: Unit, touched: Sequence[tuple[int, Entry]]) -> list[tuple[str, str, str]]:
        out = []
        for iid, e in touched:
            for template, to, status in unit.fetch(
                "SELECT template, COALESCE(recipient_email, recipient_name, recipient_role), status FROM outbox "
                "WHERE instance_id = :i AND history_seq = :s ORDER BY id",
                {"i": iid, "s": e.seq},
            ):
                if status in GONE:
                    out.append((template, to, status))
        return out

    # -- reversing -----------------------------------------------------------------------------

    def _reverse(
        self,
        unit: Unit,
        instance_id: int,
        entries: list[Entry],
        close: bool,
        reason: str,
        actor: Actor,
        today: date,
        now: datetime,
    ) -> tuple[int, Reversal]:
        record = unit.load(instance_id)
        seqs = [e.seq for e in entries]
        reversed_list = tuple((e.seq, e.trigger, e.on.isoformat()) for e in entries)
        if close:
            # A workflow started by a reversed step: it never should have run, so it closes where it is.
            state, facts, last_on, closed_on = record.state, record.facts, record.last_event_on, today
            note = f"closed: the step that started it was corrected ({reason})"
        else:
            machine = self.catalogue.machine(record.workflow, record.definition_version)
            definition = machine.definition
            effective = self._effective(unit, instance_id)
            start = next(e for e in effective if e.trigger == "start")
            keep = [
                PastStep(e.trigger, e.inputs, e.on, e.role)
                for e in effective
                if e.trigger not in NOT_STEPS and e.seq < min(seqs)
            ]
            replayed = machine.replay(
                start.inputs,
                start.on,
                keep,
                parameters={k: record.facts[k] for k in definition.parameters if k in record.facts},
                context={k: record.facts[k] for k in ("date_of_birth",) if k in record.facts},
            )
            state, facts, last_on, closed_on = replayed.state, replayed.facts, replayed.last_on, None
            if definition.states[state].final:
                closed_on = record.closed_on or today
            note = reason
            self._restore_dates(unit, instance_id, replayed.open_due, machine)
        seq = record.version + 1
        entry: dict[str, Any] = {
            "instance_id": instance_id,
            "case_id": record.case_id,
            "seq": seq,
            "at": now,
            "occurred_on": today,
            "actor": actor.id,
            "actor_role": actor.role,
            "recorded_by": actor.recorded_by,
            "trigger": "correct",
            "from_state": record.state,
            "to_state": state,
            "inputs": json.dumps({"reverses": seqs, "steps": [e.trigger for e in entries]}),
            "note": note,
        }
        entry["hash"] = entry_hash(record.history_hash, **entry)
        moved = unit.execute(
            "UPDATE workflow_instance SET state = :state, version = :seq, facts = :facts, last_event_on = :last, "
            "closed_on = :closed, history_hash = :hash WHERE id = :id AND version = :version",
            {
                "state": state,
                "seq": seq,
                "hash": entry["hash"],
                "facts": json.dumps(to_json(facts), sort_keys=True),
                "last": last_on,
                "closed": closed_on,
                "id": instance_id,
                "version": record.version,
            },
        )
        if moved != 1:
            raise ConflictError(f"case {record.case_id} was changed by someone else meanwhile; nothing was saved")
        unit.insert_history(entry)
        return seq, Reversal(instance_id, record.workflow, reversed_list, record.state, state, close)

    def _restore_dates(self, unit: Unit, instance_id: int, due: dict[str, date], machine: Any) -> None:
        """Deadlines a reversed step counted again get back the dates they had before it."""
        for row_id, name, due_on in unit.fetch(
            "SELECT id, name, due_on FROM deadline WHERE instance_id = :i AND closed_on IS NULL", {"i": instance_id}
        ):
            wanted = due.get(name)
            if wanted is not None and as_date(due_on) != wanted:
                unit.execute(
                    "UPDATE deadline SET due_on = :due, next_alert_on = :alert WHERE id = :id",
                    {"due": wanted, "alert": machine.first_alert_of(name, wanted), "id": row_id},
                )

    def _undo_effects(
        self, unit: Unit, instance_id: int, seqs: list[int], seq: int, closing: bool, today: date, result: Corrected
    ) -> None:
        record = unit.load(instance_id)
        machine = self.catalogue.machine(record.workflow, record.definition_version)
        marks = ", ".join(f":s{k}" for k in range(len(seqs)))
        params: dict[str, Any] = {"i": instance_id, **{f"s{k}": s for k, s in enumerate(seqs)}}
        rows = unit.fetch(
            "SELECT id, name, due_on, opened_by_seq, closed_by_seq, closed_on FROM deadline WHERE instance_id = :i",
            {"i": instance_id},
        )
        for row_id, name, due_on, opened, closed_by, closed_on in rows:
            if opened in seqs or (closing and closed_on is None):
                unit.execute(
                    "UPDATE deadline SET status = 'cancelled', closed_on = :on, closed_by_seq = :seq, "
                    "next_alert_on = NULL WHERE id = :id",
                    {"on": today, "seq": seq, "id": row_id},
                )
                result.deadlines_cancelled.append(name)
            elif closed_by in seqs:
                due = as_date(due_on)
                # Open again; breached still, if the sweep had recorded its breach before the step met it.
                unit.execute(
                    "UPDATE deadline SET status = CASE WHEN breached_on IS NOT NULL THEN 'breached' ELSE 'open' END, "
                    "closed_on = NULL, closed_by_seq = NULL, next_alert_on = :alert WHERE id = :id",
                    {"alert": machine.first_alert_of(name, due), "id": row_id},
                )
                result.deadlines_reopened.append(name)
        for entry in self._history(unit, instance_id):
            if entry.seq in seqs and entry.trigger == "record_exception":
                unit.execute(
                    "UPDATE deadline SET exception_head = NULL, exception_reason = NULL, exception_by = NULL, "
                    "exception_on = NULL WHERE instance_id = :i AND name = :n",
                    {"i": instance_id, "n": entry.inputs.get("deadline")},
                )
        where = f"instance_id = :i AND history_seq IN ({marks})"
        if closing:
            where = "instance_id = :i"
        for template, to, status in unit.fetch(
            f"SELECT template, COALESCE(recipient_email, recipient_name, recipient_role), status FROM outbox "
            f"WHERE {where} ORDER BY id",
            params,
        ):
            if status in ("queued", "to_address"):
                result.cancelled_messages.append(template)
            elif status in GONE:
                result.already_sent.append((template, to, status))
        unit.execute(
            f"UPDATE outbox SET status = 'cancelled', last_error = 'its step was corrected' WHERE {where} "
            "AND status IN ('queued', 'to_address')",
            params,
        )
        # Reminders and escalations queued for the limits just cancelled do not go either.
        unit.execute(
            "UPDATE outbox SET status = 'cancelled', last_error = 'its deadline was cancelled by a correction' "
            "WHERE status = 'queued' AND deadline_id IN (SELECT id FROM deadline WHERE instance_id = :i "
            "AND status = 'cancelled')",
            {"i": instance_id},
        )
        for kind, status in unit.fetch(f"SELECT kind, status FROM document WHERE {where} ORDER BY id", params):
            (result.documents_cancelled if status in ("queued", "rendering") else result.documents_made).append(kind)
        unit.execute(
            f"UPDATE document SET status = 'cancelled' WHERE {where} AND status IN ('queued', 'rendering')", params
        )

    def _tell_family(self, unit: Unit, case_id: int, instance_id: int, seq: int, now: datetime) -> int:
        info = unit.case_info(case_id)
        recipients = resolve(["parent", "young_person"], info.caseworker, info.contacts, self.directory)
        for r in recipients:
            unit.queue_step_message(instance_id, case_id, seq, "step_corrected", r, now)
        return len([r for r in recipients if r.status == "queued"])
