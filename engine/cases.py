"""The service: open a case, fire a trigger. Entry points (command line, web) call only this.

The way a trigger travels: load the instance (store) -> decide (pure core) -> write the whole
outcome in one transaction, guarded by the instance's version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from . import plans
from .actor import Actor, may_change_cases
from .catalogue import Catalogue
from .clock import Clock
from .definition.model import MessageAction, WorkflowDefinition
from .directory import Directory
from .errors import ConflictError, InvalidInput, NotAuthorised, NotFound, TransitionRefused
from .inputs import EMAIL, NOTE_LIMIT, free_text, unsafe_character
from .machine import Outcome
from .quality import blocking, check
from .recipients import resolve
from .roles import CONTACT_ROLES, WORKFLOW_ROLE
from .standing import Standing, standing
from .store.repository import (
    CONTACT_PREFERENCES,
    CaseInfo,
    ContactRecord,
    ExceptionRecord,
    InstanceRecord,
    NewCase,
    Recipient,
    Store,
    Unit,
)

SCHOOL_PATTERNS = ("primary_secondary", "infant_junior", "three_tier")
NAME_LIMIT = 100  # characters in a child's or contact's name: every listing and letter heading shows it
_MAX_DEPTH = 4  # workflows starting workflows: a loop in the files must not run away


@dataclass(frozen=True)
class FollowOn:
    """What a step did to another workflow of the case, in the same transaction."""

    kind: str  # "started", "signalled" or "not_signalled"
    workflow: str
    instance_id: int
    trigger: str
    detail: str = ""


@dataclass(frozen=True)
class Opened:
    case_id: int
    instance_id: int
    outcome: Outcome
    follow_ons: tuple[FollowOn, ...] = ()


@dataclass(frozen=True)
class Fired:
    case_id: int
    instance_id: int
    seq: int
    outcome: Outcome
    follow_ons: tuple[FollowOn, ...] = ()
    met: tuple[tuple[str, Standing], ...] = ()  # each limit the step met, and how (on time, or late)


@dataclass(frozen=True)
class Excused:
    case_id: int
    instance_id: int
    seq: int
    deadline: str
    due_on: date
    status: str


# Line breaks and other controls, bidirectional overrides (a name that reads differently from what it
# is), and the characters XML cannot hold (engine.inputs.unsafe_character).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean_name(name: str, option: str, what: str) -> str:
    """A person's name as it is kept: no control characters (a line break would break a letter's
    heading or an email header), at most NAME_LIMIT characters, spaces tidied."""
    if _CONTROL.search(name) or unsafe_character(name):
        raise InvalidInput(f"{option}: {what} contains a line break or another control character")
    tidy = " ".join(name.split())
    if not tidy:
        raise InvalidInput(f"{option}: {what} is empty")
    if len(tidy) > NAME_LIMIT:
        raise InvalidInput(f"{option}: {what} is {len(tidy)} characters long; the limit is {NAME_LIMIT}")
    return tidy


def reason_on_record(reason: str, ask: str) -> str:
    """A reason a person gives for the record (an exception, a correction): free text within the
    note's limit, not empty; ``ask`` says what to write when it is."""
    try:
        reason = free_text(reason, "the reason", NOTE_LIMIT).strip()
    except ValueError as exc:
        raise InvalidInput(f"--reason: {exc}") from None
    if not reason:
        raise InvalidInput(f"--reason: {ask} (it goes on the record)")
    return reason


def parse_contact(text: str) -> ContactRecord:
    """``ROLE:NAME:EMAIL`` (the email may be empty) as given on the command line."""
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[1].strip():
        raise InvalidInput(f"--contact '{text}': write ROLE:NAME:EMAIL (the email may be empty)")
    email = parts[2].strip() if len(parts) > 2 else ""
    return ContactRecord(parts[0].strip(), parts[1].strip(), email or None)


class Cases:
    def __init__(
        self,
        store: Store,
        catalogue: Catalogue,
        directory: Directory,
        clock: Clock,
        *,
        future_tolerance_days: int = 0,
        team_inbox: str | None = None,
    ):
        self.store = store
        self.catalogue = catalogue
        self.directory = directory
        self.clock = clock
        # A step is recorded on or before the day it happened; a council may allow a day or two
        # for steps entered ahead (config.yaml: casework.future_tolerance_days).
        self.future_tolerance_days = future_tolerance_days
        self.team_inbox = team_inbox  # where a case with no caseworker's messages go (casework.team_inbox)
        self._remembered: set[tuple[str, int]] = set()  # definition texts this process has stored

    def _remember(self, unit: Unit, definition: WorkflowDefinition) -> None:
        """Keep the text of the version a new instance runs on, once per process and version."""
        if definition.key in self._remembered:
            return
        text = self.catalogue.text(definition.name, definition.version)
        if text is not None:
            unit.remember_definition(definition.name, definition.version, text, self.clock.now())
        self._remembered.add(definition.key)

    @staticmethod
    def _note(note: str | None) -> str | None:
        if note is None:
            return None
        try:
            return free_text(note, "the note", NOTE_LIMIT).strip() or None
        except ValueError as exc:
            raise InvalidInput(f"--note: {exc}") from None

    def _step_date(self, on: date | None) -> date:
        """The date a step happened: the one given, or today; never after today (and its tolerance)."""
        today = self.clock.today()
        if on is None:
            return today
        latest = today + timedelta(days=self.future_tolerance_days)
        if on > latest:
            allowed = f" (or up to {self.future_tolerance_days} days ahead)" if self.future_tolerance_days else ""
            raise InvalidInput(
                f"--on: {on.isoformat()} is after today ({today.isoformat()}); a step is recorded on or before "
                f"the day it happened{allowed}, so that later steps can follow it"
            )
        return on

    # -- opening -------------------------------------------------------------------------------

    def open_case(
        self,
        *,
        name: str,
        date_of_birth: date,
        workflow: str,
        actor: Actor,
        inputs: Mapping[str, Any] | None = None,
        contacts: Sequence[ContactRecord] = (),
        caseworker: str | None = None,
        note: str | None = None,
        year_group_offset: int = 0,
        school_pattern: str = "primary_secondary",
        on: date | None = None,
    ) -> Opened:
        """Record a new child or young person and start their first workflow, in one transaction.

        ``on`` is the date the case opened (today when not given); it may not be after today.
        """
        may_change_cases(actor, "open a case")
        today = self._step_date(on)
        if on is not None and today < date_of_birth:  # a date of birth after today is said so below
            raise InvalidInput(f"--on: {today.isoformat()} is before the date of birth ({date_of_birth.isoformat()})")
        name = self._check_case(name, date_of_birth, today, contacts, caseworker)  # the age as on the day
        if school_pattern not in SCHOOL_PATTERNS:
            raise InvalidInput(f"--school-pattern: '{school_pattern}' is not one of {', '.join(SCHOOL_PATTERNS)}")
        info = CaseInfo(caseworker, date_of_birth, list(contacts))
        definition, outcome = self._start(workflow, inputs, actor, today, info)
        now = self.clock.now()
        case = NewCase(name.strip(), date_of_birth, caseworker, list(contacts), year_group_offset, school_pattern)
        with self.store.unit() as unit:
            case_id = unit.create_case(case, actor.id, now)
            self._remember(unit, definition)
            recipients = self._recipients(outcome.messages, caseworker, list(contacts))
            instance_id = unit.start_instance(
                case_id, definition.name, definition.version, outcome, note, recipients, now
            )
            follow_ons = self._follow(unit, case_id, instance_id, None, outcome, info, 1)
        return Opened(case_id, instance_id, outcome, tuple(follow_ons))

    def start_workflow(
        self,
        case_id: int,
        workflow: str,
        *,
        actor: Actor,
        inputs: Mapping[str, Any] | None = None,
        note: str | None = None,
        parent_id: int | None = None,
        on: date | None = None,
    ) -> Opened:
        """Start another workflow for an existing case (a case has several over its life).

        ``parent_id`` links it to the instance it belongs to (a disagreement about a decision of
        that instance), so that its signals reach it.
        """
        may_change_cases(actor, "start a workflow")
        with self.store.unit() as unit:
            info = unit.case_info(case_id)  # raises NotFound for an unknown case
            started_on = self._step_date(on)
            if started_on < info.date_of_birth:
                raise InvalidInput(f"--on: {started_on.isoformat()} is before the date of birth")
            definition, outcome = self._start(workflow, inputs, actor, started_on, info)
            self._remember(unit, definition)
            recipients = self._recipients(outcome.messages, info.caseworker, info.contacts)
            instance_id = unit.start_instance(
                case_id, definition.name, definition.version, outcome, note, recipients, self.clock.now(), parent_id
            )
            follow_ons = self._follow(unit, case_id, instance_id, parent_id, outcome, info, 1)
        return Opened(case_id, instance_id, outcome, tuple(follow_ons))

    # -- firing --------------------------------------------------------------------------------

    def fire(
        self,
        case_id: int,
        trigger: str,
        *,
        actor: Actor,
        inputs: Mapping[str, Any] | None = None,
        note: str | None = None,
        workflow: str | None = None,
        expected_version: int | None = None,
        accept_quality: str | None = None,
        on: date | None = None,
    ) -> Fired:
        """Fire ``trigger`` on the case's open workflow (or the one named).

        ``on`` is the date the step happened (today when not given); it may not be after today.
        ``expected_version`` is the version the person was looking at (a web form carries it):
        if the case has moved on since, the step is refused with a ConflictError.
        """
        today = self._step_date(on)
        note = self._note(note)
        with self.store.unit() as unit:
            # The usual case, one open workflow, costs one query; otherwise say which or why not.
            record = unit.load_open(case_id, workflow) or unit.load(
                self._choose_instance(unit, case_id, workflow, trigger)
            )
            instance_id = record.id
            if expected_version is not None and record.version != expected_version:
                raise ConflictError(
                    f"case {case_id} has changed since you looked at it (version {expected_version}, "
                    f"now {record.version}); nothing was saved"
                )
            machine = self.catalogue.machine(record.workflow, record.definition_version)
            outcome = machine.decide(record.snapshot(), trigger, inputs or {}, actor, today)
            recipients: list[tuple[str, Recipient]] = []
            info: CaseInfo | None = None
            if outcome.messages or outcome.starts:
                info = unit.case_info(case_id)
                recipients = self._recipients(outcome.messages, info.caseworker, info.contacts)
            if accept_quality:
                note = f"{note + '; ' if note else ''}plan issued despite its quality check: {accept_quality}"
            seq = unit.apply(record, outcome, note, recipients, self.clock.now())
            met = self._met(machine.definition, record, outcome)
            if outcome.documents:
                self._plan_documents(unit, case_id, instance_id, seq, outcome, accept_quality)
            follow_ons: list[FollowOn] = []
            if outcome.starts or outcome.signal or outcome.signal_children or outcome.signal_case:
                info = info or unit.case_info(case_id)
                follow_ons = self._follow(unit, case_id, instance_id, record.parent_id, outcome, info, 1)
        return Fired(case_id, instance_id, seq, outcome, tuple(follow_ons), met)

    @staticmethod
    def _met(
        definition: WorkflowDefinition, record: InstanceRecord, outcome: Outcome
    ) -> tuple[tuple[str, Standing], ...]:
        """How each limit the step met stands now: met, or met late (as every view says it)."""
        due = {n: d.due_on for n, d in record.deadlines.items()} | {d.name: d.due_on for d in outcome.opened}
        found = []
        for name in outcome.met:
            if name in due:
                closed = outcome.met_on.get(name, outcome.on)
                party = definition.deadline(name).party.value
                found.append(
                    (name, standing(status="met", due_on=due[name], closed_on=closed, party=party, as_of=outcome.on))
                )
        return tuple(found)

    def record_exception(
        self,
        case_id: int,
        deadline: str,
        head: str,
        reason: str,
        *,
        actor: Actor,
        workflow: str | None = None,
        on: date | None = None,
    ) -> Excused:
        """Record that a time limit need not be met for one of the reasons the regulations allow.

        The statutory due date is kept; the deadline is marked excused with its head, reason,
        who recorded it and when, and the step is in the case's history.
        """
        if actor.role not in ("caseworker", "team_manager"):
            raise NotAuthorised(f"only a caseworker or team manager may record an exception; you are {actor.role}")
        reason = reason_on_record(reason, "say why the limit could not be met")
        today = self._step_date(on)
        with self.store.unit() as unit:
            record = self._instance_with_deadline(unit, case_id, deadline, workflow)
            definition = self.catalogue.get(record.workflow, record.definition_version)
            spec = definition.deadline(deadline)
            allowed = [h.value for h in spec.exceptions]
            if head not in allowed:
                known = ", ".join(allowed) if allowed else "none: the law allows no exception to this limit"
                raise InvalidInput(f"--head: '{head}' does not excuse '{deadline}' ({spec.source}); allowed: {known}")
            row = unit.deadline_row(record.id, deadline)
            assert row is not None
            deadline_id, status, due_on, existing = row
            if status == "cancelled":
                raise InvalidInput(f"'{deadline}' was cancelled: there is no limit to excuse")
            if existing:
                raise InvalidInput(f"'{deadline}' already has an exception recorded ({existing})")
            seq = unit.record_exception(
                record,
                ExceptionRecord(deadline, head, reason.strip()),
                deadline_id,
                actor,
                today,
                self.clock.now(),
            )
        return Excused(case_id, record.id, seq, deadline, due_on, status)

    def add_contact(self, case_id: int, contact: ContactRecord, *, actor: Actor) -> list[str]:
        """Add a contact to a case, or update the one of the same role and name: what ``contact``
        leaves as None (an email, an address, an interpreter, a format; ``prefers`` given as "")
        keeps what is stored. The messages that were held for want of a contact in this role, or of
        this contact's address, go to it now, in the same transaction.

        Returns the templates of the messages it released.
        """
        if actor.role not in ("caseworker", "team_manager"):
            raise NotAuthorised(f"only a caseworker or team manager may add a contact; you are {actor.role}")
        self._check_contacts([replace(contact, prefers=contact.prefers or "email")])
        with self.store.unit() as unit:
            unit.case_info(case_id)  # raises NotFound for an unknown case
            stored = unit.add_contact(case_id, contact)
            recipient = resolve([stored.role], None, [stored], self.directory)[0]
            released = []
            if recipient.status == "queued":
                for message_id, roles, template, name in unit.messages_to_address(case_id):
                    if stored.role in roles.split("|") and name in (None, stored.name):
                        unit.address_message(message_id, recipient)
                        released.append(template)
        return released

    def reassign(self, case_id: int, caseworker: str, reason: str, *, actor: Actor) -> str | None:
        """Give the case to another caseworker (a team manager's or head of service's decision), on the
        record: a history entry on the case's latest open workflow says who moved it, from whom, to
        whom and why. Returns the previous caseworker."""
        if actor.role not in ("team_manager", "head_of_service"):
            raise NotAuthorised(f"only a team manager or head of service may reassign a case; you are {actor.role}")
        member = self.directory.find(caseworker)
        if member is None or member.role != "caseworker":
            known = ", ".join(s.id for s in self.directory.with_role("caseworker"))
            raise InvalidInput(f"--to: '{caseworker}' is not a caseworker in config.yaml; caseworkers: {known}")
        reason = reason_on_record(reason, "say why the case is moving")
        with self.store.unit() as unit:
            before = unit.case_info(case_id).caseworker
            if before == member.id:
                raise InvalidInput(f"case {case_id} is already {member.id}'s")
            unit.set_caseworker(case_id, member.id)
            open_ = [(iid, state) for iid, _name, state, closed in unit.instances(case_id) if closed is None]
            if open_:
                record = unit.load(open_[-1][0])
                unit.append_history(
                    instance_id=record.id,
                    case_id=case_id,
                    after=(record.version, record.history_hash),
                    at=self.clock.now(),
                    on=self.clock.today(),
                    actor=actor.id,
                    role=actor.role,
                    recorded_by=actor.recorded_by,
                    trigger="reassign",
                    state=record.state,
                    inputs={"from": before, "to": member.id},
                    note=reason,
                )
        return before

    def _instance_with_deadline(self, unit: Unit, case_id: int, deadline: str, workflow: str | None) -> InstanceRecord:
        instances = unit.instances(case_id)
        candidates = []
        for iid, name, _state, closed in reversed(instances):
            if workflow is not None and name != workflow:
                continue
            if unit.deadline_row(iid, deadline) is not None:
                candidates.append((closed is not None, iid))
        if not candidates:
            raise NotFound(f"case {case_id} has no deadline called '{deadline}'")
        candidates.sort()  # open instances first, then the most recent
        return unit.load(candidates[0][1])

    def allowed(self, case_id: int, actor: Actor, workflow: str | None = None) -> list[str]:
        """The triggers this person may fire on the case now."""
        with self.store.unit() as unit:
            record = unit.load(self._choose_instance(unit, case_id, workflow))
        return self.catalogue.get(record.workflow, record.definition_version).allowed(record.state, actor.role)

    def allowed_by_instance(self, case_id: int, actor: Actor) -> dict[int, list[str]]:
        """For each open workflow of the case, the triggers this person may fire now."""
        out: dict[int, list[str]] = {}
        with self.store.unit() as unit:
            for iid, name, state, closed in unit.instances(case_id):
                if closed is None:
                    record = unit.load(iid)
                    out[iid] = self.catalogue.get(name, record.definition_version).allowed(state, actor.role)
        return out

    # -- helpers -------------------------------------------------------------------------------

    def _start(
        self, workflow: str, inputs: Mapping[str, Any] | None, actor: Actor, today: date, info: CaseInfo
    ) -> tuple[WorkflowDefinition, Outcome]:
        """The newest version of ``workflow`` and the outcome of starting it."""
        definition = self.catalogue.latest(workflow)
        machine = self.catalogue.machine(definition.name, definition.version)
        context = {"date_of_birth": info.date_of_birth}
        return definition, machine.start(inputs or {}, actor, today, context=context)

    def _follow(
        self,
        unit: Unit,
        case_id: int,
        instance_id: int,
        parent_id: int | None,
        outcome: Outcome,
        info: CaseInfo,
        depth: int,
    ) -> list[FollowOn]:
        """Start the workflows a step starts and signal the workflow that started this one.

        All of it in the caller's transaction: if any part fails, nothing of the step is saved.
        """
        if depth > _MAX_DEPTH:
            raise InvalidInput("workflows start each other in a loop; check the 'start' actions in the files")
        done: list[FollowOn] = []
        now = self.clock.now()
        auto = Actor(outcome.actor.id, WORKFLOW_ROLE)
        for request in outcome.starts:
            definition, child = self._start(request.workflow, request.inputs, auto, outcome.on, info)
            self._remember(unit, definition)
            recipients = self._recipients(child.messages, info.caseworker, info.contacts)
            child_id = unit.start_instance(
                case_id,
                definition.name,
                definition.version,
                child,
                f"started by {outcome.trigger} of instance {instance_id}",
                recipients,
                now,
                instance_id,
            )
            done.append(FollowOn("started", definition.name, child_id, "start"))
            done += self._follow(unit, case_id, child_id, instance_id, child, info, depth + 1)
        for workflow, trigger in outcome.signal_children:
            for child_id in unit.open_children(instance_id, workflow):
                done += self._signal(unit, case_id, unit.load(child_id), trigger, {}, outcome, instance_id, info, depth)
        for workflow, trigger in outcome.signal_case:
            for iid, name, _state, closed in unit.instances(case_id):
                if name == workflow and closed is None and iid != instance_id:
                    done += self._signal(unit, case_id, unit.load(iid), trigger, {}, outcome, instance_id, info, depth)
        if outcome.signal is not None and parent_id is not None:
            parent, sig = unit.load(parent_id), outcome.signal
            done += self._signal(unit, case_id, parent, sig.trigger, sig.inputs, outcome, instance_id, info, depth)
        return done

    def _signal(
        self,
        unit: Unit,
        case_id: int,
        target: InstanceRecord,
        trigger: str,
        inputs: Mapping[str, Any],
        outcome: Outcome,
        instance_id: int,
        info: CaseInfo,
        depth: int,
    ) -> list[FollowOn]:
        """Fire ``trigger`` on another workflow of the case as the role ``workflow``, in this transaction;
        a workflow that cannot take it now is left as it is, and the follow-on says why."""
        if target.closed_on is not None:
            return []
        machine = self.catalogue.machine(target.workflow, target.definition_version)
        if machine.transition(trigger, target.state) is None:
            reason = f"it cannot take '{trigger}' in the state '{target.state}'"
            return [FollowOn("not_signalled", target.workflow, target.id, trigger, reason)]
        auto = Actor(outcome.actor.id, WORKFLOW_ROLE)
        try:
            result = machine.decide(target.snapshot(), trigger, inputs, auto, outcome.on)
        except TransitionRefused as refused:
            return [FollowOn("not_signalled", target.workflow, target.id, trigger, refused.reason)]
        recipients = self._recipients(result.messages, info.caseworker, info.contacts)
        note = f"signalled by {outcome.trigger} of instance {instance_id}"
        seq = unit.apply(target, result, note, recipients, self.clock.now())
        if result.documents:
            self._plan_documents(unit, case_id, target.id, seq, result)
        done = [FollowOn("signalled", target.workflow, target.id, trigger, result.to_state)]
        return done + self._follow(unit, case_id, target.id, target.parent_id, result, info, depth + 1)

    def step_within(
        self, unit: Unit, case_id: int, instance_id: int, trigger: str, actor_id: str, on: date, note: str
    ) -> FollowOn:
        """Take ``trigger`` on an instance inside the caller's transaction, as the service itself (the role
        ``workflow``, as a signal is): the step the law's own event makes, such as the last advice asked
        for arriving online. A workflow that cannot take it now is left as it is, and the result says why."""
        record = unit.load(instance_id)
        machine = self.catalogue.machine(record.workflow, record.definition_version)
        if record.closed_on is not None or machine.transition(trigger, record.state) is None:
            return FollowOn("not_signalled", record.workflow, record.id, trigger, f"not possible in '{record.state}'")
        try:
            outcome = machine.decide(record.snapshot(), trigger, {}, Actor(actor_id, WORKFLOW_ROLE), on)
        except TransitionRefused as refused:
            return FollowOn("not_signalled", record.workflow, record.id, trigger, refused.reason)
        info = unit.case_info(case_id)
        recipients = self._recipients(outcome.messages, info.caseworker, info.contacts)
        seq = unit.apply(record, outcome, note, recipients, self.clock.now())
        if outcome.documents:
            self._plan_documents(unit, case_id, record.id, seq, outcome)
        if outcome.starts or outcome.signal or outcome.signal_children or outcome.signal_case:
            self._follow(unit, case_id, record.id, record.parent_id, outcome, info, 1)
        return FollowOn("signalled", record.workflow, record.id, trigger, outcome.to_state)

    def _plan_documents(
        self, unit: Unit, case_id: int, instance_id: int, seq: int, outcome: Outcome, accept_quality: str | None = None
    ) -> None:
        """A step that sends a draft plan or proposed amendments freezes the version the family sees;
        one that issues a final or amended plan issues it. Its documents are tied to that version.

        Before a plan kept here is issued, the quality check runs: its errors refuse the step (nothing
        is saved) unless the person issuing gives a reason to go ahead, which the history keeps."""
        kinds = set(outcome.documents)
        if kinds & set(plans.ISSUING_KINDS):
            status = "issued"
            current = plans.load(unit, case_id)
            if current is not None and not accept_quality:
                errors = blocking(check(current.sections, final=True))
                if errors:
                    listed = "; ".join(f"section {f.section}: {f.message}" for f in errors[:5])
                    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
                    raise InvalidInput(
                        f"plan version {current.version} of case {case_id} is not ready to issue: {listed}{more}. "
                        f"Correct it with 'ehcp plan edit {case_id}', or issue it anyway with "
                        "--accept-quality REASON (the reason is kept in the history); nothing was saved"
                    )
        elif kinds & set(plans.SHARING_KINDS):
            status = "shared"
        else:
            return
        version = plans.freeze(unit, case_id, status, outcome.on, outcome.actor.id, self.clock.now(), instance_id, seq)
        if version is None:
            return
        unit.execute(
            "UPDATE document SET plan_version = :v WHERE instance_id = :iid AND history_seq = :seq",
            {"v": version, "iid": instance_id, "seq": seq},
        )

    def _choose_instance(self, unit: Unit, case_id: int, workflow: str | None, trigger: str | None = None) -> int:
        instances = unit.instances(case_id)
        if workflow is not None:
            chosen = [i for i in instances if i[1] == workflow]
            if not chosen:
                raise NotFound(f"case {case_id} has no {workflow} workflow")
            open_ones = [i for i in chosen if i[3] is None]
            return (open_ones or chosen)[-1][0]
        open_ones = [i for i in instances if i[3] is None]
        if len(open_ones) > 1 and trigger is not None:
            # Several workflows run side by side: the step's name usually says which one it is for.
            takers = [i for i in open_ones if self._takes(unit, i[0], trigger)]
            if len(takers) == 1:
                return takers[0][0]
        if len(open_ones) > 1:
            names = ", ".join(i[1] for i in open_ones)
            raise InvalidInput(f"case {case_id} has several open workflows ({names}); say which with --workflow")
        if not open_ones:
            if not instances:
                raise NotFound(f"case {case_id} has no workflow")
            last = instances[-1]
            return last[0]  # the machine will refuse: its workflow has ended
        return open_ones[0][0]

    def _takes(self, unit: Unit, instance_id: int, trigger: str) -> bool:
        record = unit.load(instance_id)
        machine = self.catalogue.machine(record.workflow, record.definition_version)
        return machine.transition(trigger, record.state) is not None

    def phase_transfers(self, academic_year: int, *, actor: Actor, apply: bool) -> list[dict[str, Any]]:
        """The children who move between phases at the end of ``academic_year``, and their reviews.

        With ``apply``, each one's open annual review records the move (``record_phase_transfer``),
        which starts the phase transfer beside it with the reg 18 date (15 February, or 31 March
        into post-16), each its own transaction.
        """
        if apply:
            may_change_cases(actor, "record phase transfers")
        from . import phases
        from .store.queries import review_candidates

        rows: list[dict[str, Any]] = []
        for c in review_candidates(self.store.engine):
            transfer = phases.transfer_in(
                c["date_of_birth"], academic_year, c["school_pattern"], c["year_group_offset"]
            )
            if transfer is None:
                continue
            row = {
                "case": c["id"],
                "name": c["name"],
                "year_group": phases.year_name(transfer.from_year),
                "transfer": transfer.kind,
                "moves_on": transfer.moves_on.isoformat(),
                "deadline": transfer.deadline.isoformat(),
                "review": c["review"],
            }
            if c["review"] is None:
                row["action"] = "no open annual review (no plan yet, or it has ended)"
            elif c["phase_due"] is not None and c["phase_due"].year == transfer.deadline.year:
                row["action"] = f"already recorded (due {c['phase_due'].isoformat()})"
            elif not apply:
                row["action"] = "to record (run with --apply)"
            else:
                fired = self.fire(
                    c["id"],
                    "record_phase_transfer",
                    actor=actor,
                    workflow="annual_review",
                    inputs={"transfer_kind": transfer.kind, "transfer_on": transfer.moves_on},
                    note=f"phase transfer found for academic year {academic_year}/{(academic_year + 1) % 100:02d}",
                )
                started = [
                    f.instance_id for f in fired.follow_ons if f.kind == "started" and f.workflow == "phase_transfer"
                ]
                with self.store.unit() as unit:
                    found = unit.deadline_row(started[0], "phase_transfer") if started else None
                row["action"] = f"recorded (due {found[2].isoformat()})" if found else "recorded"
            rows.append(row)
        return rows

    def _recipients(
        self, messages: Sequence[MessageAction], caseworker: str | None, contacts: Sequence[ContactRecord]
    ) -> list[tuple[str, Recipient]]:
        return [
            (message.template, r)
            for message in messages
            for r in resolve(message.to, caseworker, contacts, self.directory, message.if_missing.value)
        ]

    @staticmethod
    def _check_contacts(contacts: Sequence[ContactRecord]) -> None:
        for c in contacts:
            clean_name(c.name, "--contact", "a contact's name")
            if c.prefers not in CONTACT_PREFERENCES:
                raise InvalidInput(f"--prefers: '{c.prefers}' is not one of {', '.join(CONTACT_PREFERENCES)}")
            if c.address is not None:
                try:
                    free_text(c.address, "the postal address", 500)
                except ValueError as exc:
                    raise InvalidInput(f"--address: {exc}") from None
            for value, option in ((c.interpreter, "--interpreter"), (c.accessible_format, "--format")):
                if value is not None:
                    clean_name(value, option, "the value")
            if c.role not in CONTACT_ROLES:
                raise InvalidInput(f"--contact: unknown role '{c.role}'; known: {', '.join(CONTACT_ROLES)}")
            if c.email and (len(c.email) > 254 or not EMAIL.match(c.email)):
                raise InvalidInput(f"--contact: '{c.email[:80]}' is not an email address")

    def _check_case(
        self, name: str, dob: date, today: date, contacts: Sequence[ContactRecord], caseworker: str | None
    ) -> str:
        """The name as it will be kept (spaces tidied), once everything about the new case is checked."""
        name = clean_name(name, "--name", "the child's or young person's name")
        if dob > today:
            raise InvalidInput(f"--dob: {dob.isoformat()} is in the future")
        if (today - dob).days > 366 * 26:
            raise InvalidInput(f"--dob: {dob.isoformat()} is more than 25 years ago; EHC plans end at 25")
        Cases._check_contacts(contacts)
        if caseworker is not None and not caseworker.strip():
            raise InvalidInput("--caseworker is empty")
        if caseworker is not None:
            member = self.directory.find(caseworker)
            if member is None:
                known = ", ".join(s.id for s in self.directory.with_role("caseworker")) or "none"
                raise InvalidInput(
                    f"--caseworker: '{caseworker}' is not a member of staff in config.yaml; caseworkers: {known}"
                )
            if member.role not in ("caseworker", "team_manager"):
                raise InvalidInput(f"--caseworker: {member.id} is a {member.role}, not a caseworker or team manager")
        elif not self.team_inbox:
            raise InvalidInput(
                "--caseworker: every case needs a caseworker, or a team inbox in config.yaml "
                "(casework.team_inbox) for cases not yet allocated"
            )
        return name
