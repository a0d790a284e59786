"""The service: open a case, fire a trigger. Entry points (command line, web) call only this.

The way a trigger travels: load the instance (store) -> decide (pure core) -> write the whole
outcome in one transaction, guarded by the instance's version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from .catalogue import Catalogue
from .clock import Clock
from .definition.model import MessageAction, WorkflowDefinition
from .directory import Directory
from .errors import ConflictError, InvalidInput, NotFound
from .inputs import EMAIL
from .machine import Actor, Outcome
from .roles import CONTACT_ROLES, STAFF_ROLES
from .store.repository import ContactRecord, NewCase, Recipient, Store, Unit


@dataclass(frozen=True)
class Opened:
    case_id: int
    instance_id: int
    outcome: Outcome


@dataclass(frozen=True)
class Fired:
    case_id: int
    instance_id: int
    seq: int
    outcome: Outcome


def parse_contact(text: str) -> ContactRecord:
    """``ROLE:NAME:EMAIL`` (the email may be empty) as given on the command line."""
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[1].strip():
        raise InvalidInput(f"--contact '{text}': write ROLE:NAME:EMAIL (the email may be empty)")
    email = parts[2].strip() if len(parts) > 2 else ""
    return ContactRecord(parts[0].strip(), parts[1].strip(), email or None)


class Cases:
    def __init__(self, store: Store, catalogue: Catalogue, directory: Directory, clock: Clock):
        self.store = store
        self.catalogue = catalogue
        self.directory = directory
        self.clock = clock

    # -- opening -------------------------------------------------------------------------------

    def open_case(
        self,
        *,
        name: str,
        date_of_birth: date,
        workflow: str,
        actor_id: str | None,
        inputs: Mapping[str, Any] | None = None,
        contacts: Sequence[ContactRecord] = (),
        caseworker: str | None = None,
        note: str | None = None,
    ) -> Opened:
        """Record a new child or young person and start their first workflow, in one transaction."""
        actor = self.directory.actor(actor_id)
        today = self.clock.today()
        self._check_case(name, date_of_birth, today, contacts, caseworker)
        definition, outcome = self._start(workflow, inputs, actor, today)
        now = self.clock.now()
        case = NewCase(name.strip(), date_of_birth, caseworker, list(contacts))
        with self.store.unit() as unit:
            case_id = unit.create_case(case, actor.id, now)
            recipients = self._recipients(outcome.messages, caseworker, list(contacts))
            instance_id = unit.start_instance(
                case_id, definition.name, definition.version, outcome, note, recipients, now
            )
        return Opened(case_id, instance_id, outcome)

    def start_workflow(
        self,
        case_id: int,
        workflow: str,
        *,
        actor_id: str | None,
        inputs: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> Opened:
        """Start another workflow for an existing case (a case has several over its life)."""
        actor = self.directory.actor(actor_id)
        definition, outcome = self._start(workflow, inputs, actor, self.clock.today())
        with self.store.unit() as unit:
            unit.instances(case_id)  # raises NotFound for an unknown case
            caseworker, contacts = unit.contacts(case_id)
            recipients = self._recipients(outcome.messages, caseworker, contacts)
            instance_id = unit.start_instance(
                case_id, definition.name, definition.version, outcome, note, recipients, self.clock.now()
            )
        return Opened(case_id, instance_id, outcome)

    # -- firing --------------------------------------------------------------------------------

    def fire(
        self,
        case_id: int,
        trigger: str,
        *,
        actor_id: str | None,
        inputs: Mapping[str, Any] | None = None,
        note: str | None = None,
        workflow: str | None = None,
        expected_version: int | None = None,
    ) -> Fired:
        """Fire ``trigger`` on the case's open workflow (or the one named).

        ``expected_version`` is the version the person was looking at (a web form carries it):
        if the case has moved on since, the step is refused with a ConflictError.
        """
        actor = self.directory.actor(actor_id)
        today = self.clock.today()
        with self.store.unit() as unit:
            # The usual case, one open workflow, costs one query; otherwise say which or why not.
            record = unit.load_open(case_id, workflow) or unit.load(self._choose_instance(unit, case_id, workflow))
            instance_id = record.id
            if expected_version is not None and record.version != expected_version:
                raise ConflictError(
                    f"case {case_id} has changed since you looked at it (version {expected_version}, "
                    f"now {record.version}); nothing was saved"
                )
            machine = self.catalogue.machine(record.workflow, record.definition_version)
            outcome = machine.decide(record.snapshot(), trigger, inputs or {}, actor, today)
            recipients: list[tuple[str, Recipient]] = []
            if outcome.messages:
                caseworker, contacts = unit.contacts(case_id)
                recipients = self._recipients(outcome.messages, caseworker, contacts)
            seq = unit.apply(record, outcome, note, recipients, self.clock.now())
        return Fired(case_id, instance_id, seq, outcome)

    def allowed(self, case_id: int, actor_id: str | None, workflow: str | None = None) -> list[str]:
        """The triggers this person may fire on the case now."""
        actor = self.directory.actor(actor_id)
        with self.store.unit() as unit:
            record = unit.load(self._choose_instance(unit, case_id, workflow))
        return self.catalogue.machine(record.workflow, record.definition_version).allowed(record.state, actor.role)

    # -- helpers -------------------------------------------------------------------------------

    def _start(
        self, workflow: str, inputs: Mapping[str, Any] | None, actor: Actor, today: date
    ) -> tuple[WorkflowDefinition, Outcome]:
        """The newest version of ``workflow`` and the outcome of starting it."""
        definition = self.catalogue.latest(workflow)
        machine = self.catalogue.machine(definition.name, definition.version)
        return definition, machine.start(inputs or {}, actor, today)

    @staticmethod
    def _choose_instance(unit: Unit, case_id: int, workflow: str | None) -> int:
        instances = unit.instances(case_id)
        if workflow is not None:
            chosen = [i for i in instances if i[1] == workflow]
            if not chosen:
                raise NotFound(f"case {case_id} has no {workflow} workflow")
            open_ones = [i for i in chosen if i[3] is None]
            return (open_ones or chosen)[-1][0]
        open_ones = [i for i in instances if i[3] is None]
        if len(open_ones) > 1:
            names = ", ".join(i[1] for i in open_ones)
            raise InvalidInput(f"case {case_id} has several open workflows ({names}); say which with --workflow")
        if not open_ones:
            if not instances:
                raise NotFound(f"case {case_id} has no workflow")
            last = instances[-1]
            return last[0]  # the machine will refuse: its workflow has ended
        return open_ones[0][0]

    def _recipients(
        self, messages: Sequence[MessageAction], caseworker: str | None, contacts: Sequence[ContactRecord]
    ) -> list[tuple[str, Recipient]]:
        out: list[tuple[str, Recipient]] = []
        for message in messages:
            found: list[Recipient] = []
            for role in message.to:
                if role == "caseworker":
                    if caseworker:
                        member = self.directory.member(caseworker)
                        email = member.email if member else caseworker
                        found.append(Recipient(role, member.name if member else None, email))
                elif role in STAFF_ROLES:
                    found += [Recipient(role, s.name, s.email) for s in self.directory.with_role(role)]
                else:
                    found += [Recipient(role, c.name, c.email) for c in contacts if c.role == role]
            if not found:
                roles = " or ".join(message.to)
                found = [Recipient(message.to[0], None, None, "skipped", f"no recipient with the role {roles}")]
            out += [(message.template, r) for r in found]
        return out

    @staticmethod
    def _check_case(
        name: str, dob: date, today: date, contacts: Sequence[ContactRecord], caseworker: str | None
    ) -> None:
        if not name.strip():
            raise InvalidInput("--name: the child's or young person's name is empty")
        if dob > today:
            raise InvalidInput(f"--dob: {dob.isoformat()} is in the future")
        if (today - dob).days > 366 * 26:
            raise InvalidInput(f"--dob: {dob.isoformat()} is more than 25 years ago; EHC plans end at 25")
        for c in contacts:
            if c.role not in CONTACT_ROLES:
                raise InvalidInput(f"--contact: unknown role '{c.role}'; known: {', '.join(CONTACT_ROLES)}")
            if c.email and not EMAIL.match(c.email):
                raise InvalidInput(f"--contact: '{c.email}' is not an email address")
        if caseworker is not None and not caseworker.strip():
            raise InvalidInput("--caseworker is empty")
