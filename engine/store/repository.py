"""The write path: load an instance and write an Outcome in one transaction.

Statements are issued on the DBAPI cursor of a driver connection (taken from SQLAlchemy's pool
once, then kept by the Store between units) rather than through the ORM's unit of work: a
transition is five to eight small statements, and the ORM's per-object bookkeeping would cost
several times the database work itself (see docs/benchmarks.md). The SQLModel classes in
``models.py`` remain the schema and the read model.

Concurrency: the instance row carries a ``version``. The UPDATE that moves the state is guarded by
the version read before deciding; if another caseworker's change committed in between, it matches
no row and the whole unit is rolled back with a ConflictError. On SQLite the read happens before
the write transaction begins, so no stale snapshot is held; on PostgreSQL the guarded UPDATE waits
for the other transaction and then finds the version changed.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, event

from ..actor import Actor
from ..errors import ConflictError, DatabaseError, NotFound
from ..inputs import to_json
from ..machine import NewDeadline, OpenDeadline, Outcome, Snapshot
from .chain import GENESIS, entry_hash

_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class InstanceRecord:
    id: int
    case_id: int
    workflow: str
    definition_version: int
    state: str
    version: int
    facts: dict[str, Any]
    last_event_on: date
    closed_on: date | None
    deadlines: dict[str, OpenDeadline]
    parent_id: int | None = None
    facts_json: str = ""  # the stored text of ``facts``: written again as it is when a step adds none
    history_hash: str = GENESIS  # the hash of the instance's latest history entry (engine.store.chain)

    def snapshot(self) -> Snapshot:
        return Snapshot(self.state, self.facts, self.deadlines, self.last_event_on)


@dataclass(frozen=True)
class Recipient:
    """Who a queued message goes to; a message nobody can receive is kept as 'skipped' with why.

    ``email`` is None for someone written to by post (no email address, or they prefer post); a
    letter goes to ``address``."""

    role: str
    name: str | None
    email: str | None
    status: str = "queued"
    reason: str | None = None
    address: str | None = None

    @property
    def channel(self) -> str:
        return "email" if self.email else "letter"

    def token(self, secret: bytes) -> str:
        """The recipient's part of a message key: a digest keyed with the installation's secret, so
        keys (which reach logs, Message-IDs and GOV.UK Notify references) never carry an email address
        or a name, and cannot be matched against a guessed address without the secret."""
        who = (self.email or f"{self.role}:{self.name or '-'}").strip().lower()
        return hmac.new(secret, who.encode(), hashlib.sha256).hexdigest()[:16]


CONTACT_PREFERENCES = ("email", "post")


@dataclass(frozen=True)
class ContactRecord:
    role: str
    name: str
    email: str | None
    address: str | None = None  # postal address, lines separated by newlines
    prefers: str = "email"  # email or post
    interpreter: str | None = None  # a language they need messages and meetings in
    accessible_format: str | None = None  # large print, braille, easy read, audio...

    @property
    def by_post(self) -> bool:
        return self.prefers == "post" or not self.email


@dataclass(frozen=True)
class NewCase:
    name: str
    date_of_birth: date
    caseworker: str | None
    contacts: Sequence[ContactRecord]
    year_group_offset: int = 0
    school_pattern: str = "primary_secondary"


@dataclass(frozen=True)
class CaseInfo:
    """What a step needs to know about the case: who to write to, and the child's date of birth."""

    caseworker: str | None
    date_of_birth: date
    contacts: list[ContactRecord]


@dataclass(frozen=True)
class ExceptionRecord:
    deadline: str
    head: str
    reason: str


class Unit:
    """One database transaction over one of the Store's connections."""

    def __init__(self, store: Store, raw: Any):
        self._store = store
        self._raw = raw
        self._cur = raw.cursor()

    @property
    def secret(self) -> bytes:
        """The installation's secret (keys the recipient digests), read once per Store."""
        if self._store.secret is None:
            row = self._exec("SELECT secret FROM installation WHERE id = 1").fetchone()
            if row is None:
                raise DatabaseError("", "the database has no installation secret: run 'ehcp db upgrade'")
            self._store.secret = bytes.fromhex(row[0])
        return self._store.secret

    def _exec(self, sql: str, params: Mapping[str, Any] | None = None, *, encoded: bool = False) -> Any:
        """Run one statement; ``encoded``: the parameters hold no dates, or hold them as ``Store.value`` gives."""
        self._cur.execute(self._store.sql(sql), params if encoded else self._store.encode(params or {}))
        return self._cur

    def _many(self, sql: str, rows: Sequence[Mapping[str, Any]], *, encoded: bool = False) -> None:
        if rows:
            if not encoded:
                encode = self._store.encode
                rows = [encode(r) for r in rows]
            self._cur.executemany(self._store.sql(sql), rows)

    # -- reading -------------------------------------------------------------------------------

    _INSTANCE = (
        "SELECT id, case_id, workflow, definition_version, state, version, facts, last_event_on, closed_on, "
        "parent_id, history_hash FROM workflow_instance "
    )

    def load(self, instance_id: int) -> InstanceRecord:
        row = self._exec(self._INSTANCE + "WHERE id = :id", {"id": instance_id}).fetchone()
        if row is None:
            raise NotFound(f"no workflow instance {instance_id}")
        return self._record_of(row)

    _OPEN_WITH_DEADLINES = (
        "SELECT i.id, i.case_id, i.workflow, i.definition_version, i.state, i.version, i.facts, i.last_event_on, "
        "i.closed_on, i.parent_id, i.history_hash, d.name, d.due_on, d.status FROM workflow_instance i "
        "LEFT JOIN deadline d ON d.instance_id = i.id AND d.closed_on IS NULL "
        "WHERE i.case_id = :cid AND i.closed_on IS NULL"
    )

    def load_open(self, case_id: int, workflow: str | None) -> InstanceRecord | None:
        """The case's one open instance (of ``workflow``, if named) with its open deadlines, in one
        query; None when there is no open instance or more than one."""
        if workflow is None:
            rows = self._exec(self._OPEN_WITH_DEADLINES, {"cid": case_id}, encoded=True).fetchall()
        else:
            rows = self._exec(
                self._OPEN_WITH_DEADLINES + " AND i.workflow = :wf", {"cid": case_id, "wf": workflow}, encoded=True
            ).fetchall()
        if not rows or any(r[0] != rows[0][0] for r in rows):
            return None
        deadlines = {r[11]: OpenDeadline(r[11], as_date(r[12]), r[13]) for r in rows if r[11] is not None}
        return self._record_of(rows[0], deadlines)

    def _record_of(self, row: Any, deadlines: dict[str, OpenDeadline] | None = None) -> InstanceRecord:
        if deadlines is None:
            deadlines = {
                name: OpenDeadline(name, as_date(due), status)
                for name, due, status in self._exec(
                    "SELECT name, due_on, status FROM deadline WHERE instance_id = :id AND closed_on IS NULL",
                    {"id": row[0]},
                ).fetchall()
            }
        return InstanceRecord(
            id=row[0],
            case_id=row[1],
            workflow=row[2],
            definition_version=row[3],
            state=row[4],
            version=row[5],
            facts=json.loads(row[6]),
            facts_json=row[6],
            last_event_on=as_date(row[7]),
            closed_on=as_date(row[8]) if row[8] is not None else None,
            deadlines=deadlines,
            parent_id=row[9],
            history_hash=row[10],
        )

    def instances(self, case_id: int) -> list[tuple[int, str, str, date | None]]:
        rows = self._exec(
            "SELECT id, workflow, state, closed_on FROM workflow_instance WHERE case_id = :case_id ORDER BY id",
            {"case_id": case_id},
        ).fetchall()
        if not rows and self._exec("SELECT 1 FROM ehc_case WHERE id = :id", {"id": case_id}).fetchone() is None:
            raise NotFound(f"no case {case_id}")
        return [(r[0], r[1], r[2], as_date(r[3]) if r[3] is not None else None) for r in rows]

    def set_caseworker(self, case_id: int, caseworker: str) -> None:
        self._exec("UPDATE ehc_case SET caseworker = :w WHERE id = :id", {"w": caseworker, "id": case_id})

    def open_children(self, instance_id: int, workflow: str) -> list[int]:
        """The open instances of ``workflow`` that this instance started."""
        rows = self._exec(
            "SELECT id FROM workflow_instance WHERE parent_id = :p AND workflow = :w AND closed_on IS NULL ORDER BY id",
            {"p": instance_id, "w": workflow},
        ).fetchall()
        return [r[0] for r in rows]

    def case_info(self, case_id: int) -> CaseInfo:
        """The case's caseworker, date of birth and contacts (one query)."""
        rows = self._exec(
            "SELECT c.caseworker, c.date_of_birth, t.role, t.name, t.email, t.address, t.prefers, t.interpreter, "
            "t.accessible_format FROM ehc_case c LEFT JOIN contact t ON t.case_id = c.id WHERE c.id = :id "
            "ORDER BY t.id",
            {"id": case_id},
            encoded=True,
        ).fetchall()
        if not rows:
            raise NotFound(f"no case {case_id}")
        return CaseInfo(
            rows[0][0],
            as_date(rows[0][1]),
            [ContactRecord(r[2], r[3], r[4], r[5], r[6] or "email", r[7], r[8]) for r in rows if r[2]],
        )

    def deadline_row(self, instance_id: int, name: str) -> tuple[int, str, date, str | None] | None:
        """(id, status, due_on, exception_head) of the instance's latest deadline called ``name``."""
        row = self._exec(
            "SELECT id, status, due_on, exception_head FROM deadline WHERE instance_id = :iid AND name = :name "
            "ORDER BY id DESC LIMIT 1",
            {"iid": instance_id, "name": name},
        ).fetchone()
        return None if row is None else (row[0], row[1], as_date(row[2]), row[3])

    def fetch(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        return list(self._exec(sql, params).fetchall())

    def execute(self, sql: str, params: Mapping[str, Any]) -> int:
        """Run a statement; the number of rows it changed."""
        return int(self._exec(sql, params).rowcount)

    def contacts_of(self, case_ids: set[int]) -> dict[int, list[ContactRecord]]:
        """The contacts of several cases, in one query a 500."""
        out: dict[int, list[ContactRecord]] = {}
        ids = sorted(case_ids)
        for start in range(0, len(ids), 500):
            rows = self.by_ids(
                "SELECT case_id, role, name, email, address, prefers, interpreter, accessible_format FROM contact "
                "WHERE case_id {ids} ORDER BY id",
                ids[start : start + 500],
            )
            for r in rows:
                out.setdefault(r[0], []).append(ContactRecord(r[1], r[2], r[3], r[4], r[5] or "email", r[6], r[7]))
        return out

    def caseload_deadlines(self, caseworker: tuple[str, ...], horizon: date) -> list[dict[str, Any]]:
        """Open deadlines due by ``horizon`` (or overdue) on the cases of a caseworker (id or email)."""
        marks = ", ".join(f":w{i}" for i in range(len(caseworker)))
        rows = self._exec(
            "SELECT c.id, c.name, d.title, d.due_on, d.status, d.source FROM deadline d "
            f"JOIN ehc_case c ON c.id = d.case_id WHERE c.caseworker IN ({marks}) AND d.closed_on IS NULL "
            "AND d.party <> 'family' AND d.due_on <= :horizon ORDER BY d.due_on, c.id",
            {**{f"w{i}": v for i, v in enumerate(caseworker)}, "horizon": horizon},
        ).fetchall()
        return [
            {"case_id": r[0], "case_name": r[1], "title": r[2], "due_on": as_date(r[3]), "status": r[4], "source": r[5]}
            for r in rows
        ]

    def step_deadlines(self, instance_id: int, seq: int, on: date) -> list[dict[str, Any]]:
        """The deadlines a step opened: its own, and those of the workflows it started that day."""
        rows = self._exec(
            "SELECT d.name, d.title, d.due_on, d.source, d.basis, d.party FROM deadline d "
            "WHERE (d.instance_id = :iid AND d.opened_by_seq = :seq) OR (d.opened_by_seq = 1 AND "
            "d.instance_id IN (SELECT id FROM workflow_instance WHERE parent_id = :iid AND opened_on = :on)) "
            "ORDER BY d.due_on, d.id",
            {"iid": instance_id, "seq": seq, "on": on},
        ).fetchall()
        return [
            {"name": r[0], "title": r[1], "due_on": as_date(r[2]), "source": r[3], "basis": r[4], "party": r[5]}
            for r in rows
        ]

    # -- writing -------------------------------------------------------------------------------

    def queue_step_message(
        self, instance_id: int, case_id: int, seq: int, template: str, recipient: Recipient, now: datetime
    ) -> None:
        """Queue a message about a history entry written outside ``apply`` (a correction)."""
        self._exec(
            "INSERT INTO outbox (key, case_id, instance_id, history_seq, template, recipient_role, recipient_name, "
            "recipient_email, recipient_address, channel, status, created_at, attempts, last_error) VALUES (:key, "
            ":cid, :iid, :seq, :template, :role, :name, :email, :address, :channel, :status, :now, 0, :reason) "
            "ON CONFLICT (key) DO NOTHING",
            {
                "key": f"{instance_id}:{seq}:{template}:{recipient.role}:{recipient.token(self.secret)}",
                "cid": case_id,
                "iid": instance_id,
                "seq": seq,
                "template": template,
                "role": recipient.role,
                "name": recipient.name,
                "email": recipient.email,
                "address": recipient.address,
                "channel": recipient.channel,
                "status": recipient.status,
                "now": now,
                "reason": recipient.reason,
            },
        )

    def remember_definition(self, name: str, version: int, text: str, now: datetime) -> None:
        """Keep the text of a workflow version a case uses (once: the first text stored stands)."""
        self._exec(
            "INSERT INTO workflow_definition (name, version, sha256, source, stored_at) VALUES (:n, :v, :h, :t, :at) "
            "ON CONFLICT (name, version) DO NOTHING",
            {"n": name, "v": version, "h": hashlib.sha256(text.encode()).hexdigest(), "t": text, "at": now},
        )

    def stored_definition(self, name: str, version: int) -> str | None:
        row = self._exec(
            "SELECT source FROM workflow_definition WHERE name = :n AND version = :v", {"n": name, "v": version}
        ).fetchone()
        return None if row is None else str(row[0])

    def add_contact(self, case_id: int, contact: ContactRecord) -> ContactRecord:
        """Add a contact, or update the one of the same role and name, keeping what ``contact`` leaves
        as None (and ``prefers`` as ""); the contact as it is now stored."""
        row = _contact_row(case_id, contact)
        row["prefers"] = contact.prefers or None
        updated = self._exec(
            "UPDATE contact SET email = COALESCE(:email, email), address = COALESCE(:address, address), "
            "prefers = COALESCE(:prefers, prefers), interpreter = COALESCE(:interpreter, interpreter), "
            "accessible_format = COALESCE(:format, accessible_format) "
            "WHERE case_id = :case_id AND role = :role AND name = :name",
            row,
        ).rowcount
        if not updated:
            row["prefers"] = contact.prefers or "email"
            self._exec(
                "INSERT INTO contact (case_id, role, name, email, address, prefers, interpreter, accessible_format) "
                "VALUES (:case_id, :role, :name, :email, :address, :prefers, :interpreter, :format)",
                row,
            )
        stored = self._exec(
            "SELECT role, name, email, address, prefers, interpreter, accessible_format FROM contact "
            "WHERE case_id = :case_id AND role = :role AND name = :name ORDER BY id LIMIT 1",
            {"case_id": case_id, "role": contact.role, "name": contact.name},
        ).fetchone()
        return ContactRecord(stored[0], stored[1], stored[2], stored[3], stored[4] or "email", stored[5], stored[6])

    def messages_to_address(self, case_id: int) -> list[tuple[int, str, str, str | None]]:
        """(id, roles joined by '|', template, the contact's name if it is one without an address) of the
        case's messages held for want of a contact or of a postal address."""
        rows = self._exec(
            "SELECT id, recipient_role, template, recipient_name FROM outbox WHERE case_id = :c "
            "AND status = 'to_address' ORDER BY id",
            {"c": case_id},
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def address_message(self, message_id: int, recipient: Recipient) -> None:
        """Give a held message its recipient and queue it (its key, and so its Message-ID, stay)."""
        self._exec(
            "UPDATE outbox SET recipient_role = :role, recipient_name = :name, recipient_email = :email, "
            "recipient_address = :address, channel = :channel, status = 'queued', last_error = NULL "
            "WHERE id = :id AND status = 'to_address'",
            {
                "role": recipient.role,
                "name": recipient.name,
                "email": recipient.email,
                "address": recipient.address,
                "channel": recipient.channel,
                "id": message_id,
            },
        )

    def create_case(self, case: NewCase, actor: str, now: datetime) -> int:
        case_id: int = self._exec(
            "INSERT INTO ehc_case (name, date_of_birth, caseworker, created_at, created_by, year_group_offset, "
            "school_pattern) VALUES (:name, :dob, :caseworker, :now, :actor, :offset, :pattern) RETURNING id",
            {
                "name": case.name,
                "dob": case.date_of_birth,
                "caseworker": case.caseworker,
                "now": now,
                "actor": actor,
                "offset": case.year_group_offset,
                "pattern": case.school_pattern,
            },
        ).fetchone()[0]
        self._many(
            "INSERT INTO contact (case_id, role, name, email, address, prefers, interpreter, accessible_format) "
            "VALUES (:case_id, :role, :name, :email, :address, :prefers, :interpreter, :format)",
            [_contact_row(case_id, c) for c in case.contacts],
        )
        return case_id

    def start_instance(
        self,
        case_id: int,
        workflow: str,
        definition_version: int,
        outcome: Outcome,
        note: str | None,
        recipients: Sequence[tuple[str, Recipient]],
        now: datetime,
        parent_id: int | None = None,
    ) -> int:
        instance_id: int = self._exec(
            "INSERT INTO workflow_instance (case_id, workflow, definition_version, state, version, facts, "
            "opened_on, last_event_on, closed_on, parent_id, history_hash) VALUES (:case_id, :workflow, :dv, :state, "
            "1, :facts, :on, :on, :closed, :parent, '') RETURNING id",
            {
                "parent": parent_id,
                "case_id": case_id,
                "workflow": workflow,
                "dv": definition_version,
                "state": outcome.to_state,
                "facts": json.dumps(to_json(outcome.facts), sort_keys=True),
                "on": outcome.on,
                "closed": outcome.on if outcome.final else None,
            },
        ).fetchone()[0]
        entry = self._entry(instance_id, case_id, 1, GENESIS, outcome, note, now)
        self._exec(
            "UPDATE workflow_instance SET history_hash = :h WHERE id = :id", {"h": entry["hash"], "id": instance_id}
        )
        self._record(instance_id, case_id, 1, outcome, entry, recipients)
        return instance_id

    def apply(
        self,
        instance: InstanceRecord,
        outcome: Outcome,
        note: str | None,
        recipients: Sequence[tuple[str, Recipient]],
        now: datetime,
    ) -> int:
        """Write the outcome; raises ConflictError if the instance changed since it was loaded."""
        seq = instance.version + 1
        same = not outcome.inputs and instance.facts_json and outcome.facts == instance.facts
        on = self._store.value(outcome.on)
        entry = self._entry(instance.id, instance.case_id, seq, instance.history_hash, outcome, note, now)
        updated = self._exec(
            "UPDATE workflow_instance SET state = :state, version = :seq, facts = :facts, "
            "last_event_on = :on, closed_on = :closed, history_hash = :hash WHERE id = :id AND version = :version",
            {
                "state": outcome.to_state,
                "seq": seq,
                "hash": entry["hash"],
                "facts": instance.facts_json if same else json.dumps(to_json(outcome.facts), sort_keys=True),
                "on": on,
                "closed": on if outcome.final else None,
                "id": instance.id,
                "version": instance.version,
            },
            encoded=True,
        ).rowcount
        if updated != 1:
            raise ConflictError(
                f"case {instance.case_id} was changed by someone else while you were working on it; "
                "nothing was saved: look at the case again and repeat the step if it is still right"
            )
        self._record(instance.id, instance.case_id, seq, outcome, entry, recipients)
        return seq

    def record_exception(
        self,
        instance: InstanceRecord,
        exception: ExceptionRecord,
        deadline_id: int,
        actor: Actor,
        on: date,
        now: datetime,
    ) -> int:
        """Mark a deadline excused, with a history entry, guarded by the instance's version."""
        seq = self.append_history(
            instance_id=instance.id,
            case_id=instance.case_id,
            after=(instance.version, instance.history_hash),
            at=now,
            on=on,
            actor=actor.id,
            role=actor.role,
            recorded_by=actor.recorded_by,
            trigger="record_exception",
            state=instance.state,
            inputs={"deadline": exception.deadline, "head": exception.head},
            note=exception.reason,
        )
        self._exec(
            "UPDATE deadline SET exception_head = :head, exception_reason = :reason, exception_by = :actor, "
            "exception_on = :on WHERE id = :id",
            {"head": exception.head, "reason": exception.reason, "actor": actor.id, "on": on, "id": deadline_id},
        )
        return seq

    # -- the sweep -----------------------------------------------------------------------------

    def claim_alert(self, deadline_id: int, old: date, new: date | None) -> bool:
        """Move a deadline's next alert on; False when another sweep (or a step) got there first."""
        return bool(
            self._exec(
                "UPDATE deadline SET next_alert_on = :new WHERE id = :id AND next_alert_on = :old "
                "AND closed_on IS NULL",
                {"new": new, "id": deadline_id, "old": old},
            ).rowcount
            == 1
        )

    def _positional(self, sql: str, values: Sequence[Any]) -> Any:
        """Run a statement with many parameters, marked ``?`` in order: bound by position, as a driver
        binds thousands of them quickly (by name, each is looked up among all the others)."""
        self._cur.execute(sql if self._store._sqlite else sql.replace("?", "%b"), values)  # binary: no quoting
        return self._cur

    def _tables(
        self, rows: Sequence[Sequence[Any]], columns: Sequence[tuple[str, str]]
    ) -> Iterator[tuple[str, Any, int]]:
        """``rows`` as tables a statement can read from, 500 rows each, named ``v`` with ``columns``
        (name, PostgreSQL type): (the FROM item's SQL, its parameters, its rows). On SQLite a VALUES list; on
        PostgreSQL one array a column (``unnest``), since the driver parses a statement's markers in
        Python and thousands of them cost more than the statement."""
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            if self._store._sqlite:  # SQLite calls a VALUES list's columns column1, column2 ...
                names = ", ".join(f"column{n} AS {name}" for n, (name, _type) in enumerate(columns, start=1))
                row = "(" + ", ".join(["?"] * len(columns)) + ")"
                yield (
                    f"(SELECT {names} FROM (VALUES {', '.join([row] * len(chunk))})) AS v",
                    self._flat(chunk, columns),
                    len(chunk),
                )
            else:
                arrays = ", ".join(f"?::{kind}[]" for _name, kind in columns)
                names = ", ".join(name for name, _kind in columns)
                yield f"unnest({arrays}) AS v ({names})", [list(c) for c in zip(*chunk, strict=True)], len(chunk)

    def _flat(self, rows: Sequence[Sequence[Any]], columns: Sequence[tuple[str, str]]) -> list[Any]:
        """Rows' values in one list as SQLite takes them: the dates and moments of the date columns
        converted (a batch shares a few, each converted once), the rest as they are."""
        dated = [n for n, (_name, kind) in enumerate(columns) if kind in ("date", "timestamptz")]
        if not dated:
            return list(itertools.chain.from_iterable(rows))
        value = self._store.value
        converted: dict[Any, Any] = {}

        def convert(v: Any) -> Any:
            c = converted.get(v, converted)
            if c is converted:
                c = converted[v] = value(v)
            return c

        values = [list(c) for c in zip(*rows, strict=True)]
        for n in dated:
            values[n] = [convert(v) for v in values[n]]
        return list(itertools.chain.from_iterable(zip(*values, strict=True)))

    def by_ids(self, sql: str, ids: Sequence[int], *values: Any) -> list[Any]:
        """Rows of ``sql`` whose ``{ids}`` stands for a condition on the ids given (SQLite: an IN list;
        PostgreSQL: ``= ANY`` of one array), its other parameters marked ``?`` after it, in order."""
        if self._store._sqlite:
            sql = sql.replace("{ids}", f"IN ({', '.join(['?'] * len(ids))})")
            return list(self._positional(sql, [*ids, *(self._store.value(v) for v in values)]).fetchall())
        return list(self._positional(sql.replace("{ids}", "= ANY(?)"), [list(ids), *values]).fetchall())

    def claim_alerts(self, claims: Sequence[tuple[int, date, date | None]]) -> set[int]:
        """Move many deadlines' next alerts on, one statement a chunk: (id, old, new) each; returns the
        ids claimed (another sweep, or a step, may have moved some first: those are left alone)."""
        claimed: set[int] = set()
        for table, values, _count in self._tables(claims, (("id", "int"), ("old", "date"), ("new", "date"))):
            sql = (
                f"UPDATE deadline SET next_alert_on = v.new FROM {table} WHERE deadline.id = v.id "
                "AND deadline.next_alert_on = v.old AND deadline.closed_on IS NULL RETURNING deadline.id"
            )
            claimed |= {row[0] for row in self._positional(sql, values).fetchall()}
        return claimed

    _OUTBOX = (("key", "text"), ("case_id", "int"), ("instance_id", "int"), ("kind", "text"), ("deadline_id", "int"),
               ("alert_on", "date"), ("template", "text"), ("recipient_role", "text"), ("recipient_name", "text"),
               ("recipient_email", "text"), ("channel", "text"), ("status", "text"), ("created_at", "timestamptz"),
               ("last_error", "text"))  # fmt: skip

    def queue_messages(self, rows: Sequence[Sequence[Any]]) -> set[str]:
        """Queue many messages, one statement a chunk, each unless its key is in the outbox already;
        returns the keys queued now. Each row: the values of ``_OUTBOX``'s columns in its order (the
        ``queue_message`` fields); the text is rendered when the message is sent."""
        queued: set[str] = set()
        names = ", ".join(name for name, _kind in self._OUTBOX)
        for table, values, _count in self._tables(rows, self._OUTBOX):
            sql = (  # "WHERE true": SQLite reads ON CONFLICT after a bare SELECT as part of a join
                f"INSERT INTO outbox ({names}, history_seq, attempts) SELECT *, NULL, 0 FROM {table} "
                "WHERE true ON CONFLICT (key) DO NOTHING RETURNING key"
            )
            queued.update(r[0] for r in self._positional(sql, values).fetchall())
        return queued

    def lock_instances(self, instance_ids: Sequence[int]) -> dict[int, tuple[int, str, str]]:
        """Hold many instances' rows, as steps do, without changing them, in id order (so two sweeps
        never wait on each other in a circle): id -> (version, state, history hash)."""
        held: dict[int, tuple[int, str, str]] = {}
        ids = sorted(set(instance_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join(["?"] * len(chunk))
            if self._store._sqlite:  # one writer at a time: the update takes the database's write lock
                sql = (
                    f"UPDATE workflow_instance SET version = version WHERE id IN ({marks}) "
                    "RETURNING id, version, state, history_hash"
                )
            else:
                sql = (
                    "SELECT id, version, state, history_hash FROM workflow_instance WHERE id = ANY(?) "
                    "ORDER BY id FOR UPDATE"
                )
            found = self._positional(sql, chunk if self._store._sqlite else [chunk]).fetchall()
            held |= {r[0]: (r[1], r[2], r[3]) for r in found}
        return held

    def mark_breaches(self, breaches: Sequence[tuple[int, date]]) -> set[int]:
        """Record many breaches, each once: (deadline id, the day it happened); returns the ids marked
        now (one already breached, or closed meanwhile, is left alone)."""
        marked: set[int] = set()
        for table, values, _count in self._tables(breaches, (("id", "int"), ("day", "date"))):
            sql = (
                f"UPDATE deadline SET status = 'breached', breached_on = v.day FROM {table} WHERE deadline.id = v.id "
                "AND deadline.status = 'open' AND deadline.closed_on IS NULL RETURNING deadline.id"
            )
            marked |= {r[0] for r in self._positional(sql, values).fetchall()}
        return marked

    def append_histories(self, entries: Sequence[Mapping[str, Any]], held: Mapping[int, tuple[int, str, str]]) -> None:
        """Many history entries that leave their instances' states as they are (breaches), each
        chained after the one before it in its instance (``held``: each instance's version and latest
        hash, as read under its lock); the instances move on, guarded by their versions. Each entry:
        instance_id, case_id, at, occurred_on, actor, actor_role, trigger, inputs (a mapping), note."""
        if not entries:
            return
        tips = {iid: (version, last) for iid, (version, _state, last) in held.items()}
        rows = []
        for e in entries:
            version, previous = tips[e["instance_id"]]
            state = held[e["instance_id"]][1]
            row: dict[str, Any] = {
                "instance_id": e["instance_id"], "case_id": e["case_id"], "seq": version + 1, "at": e["at"],
                "occurred_on": e["occurred_on"], "actor": e["actor"], "actor_role": e["actor_role"],
                "recorded_by": None, "trigger": e["trigger"], "from_state": state, "to_state": state,
                "inputs": json.dumps(e["inputs"], sort_keys=True), "note": e["note"],
            }  # fmt: skip
            row["hash"] = entry_hash(previous, **row)
            tips[e["instance_id"]] = (version + 1, row["hash"])
            rows.append(row)
        moves = [(iid, held[iid][0], version, last) for iid, (version, last) in tips.items() if version != held[iid][0]]
        for table, values, count in self._tables(
            moves, (("id", "int"), ("old", "int"), ("new", "int"), ("hash", "text"))
        ):
            sql = (
                f"UPDATE workflow_instance SET version = v.new, history_hash = v.hash FROM {table} "
                "WHERE workflow_instance.id = v.id AND workflow_instance.version = v.old RETURNING workflow_instance.id"
            )
            if len(self._positional(sql, values).fetchall()) != count:
                raise ConflictError("a case was changed by someone else during the sweep; nothing was saved")
        columns = (("instance_id", "int"), ("case_id", "int"), ("seq", "int"), ("at", "timestamptz"),
                   ("occurred_on", "date"), ("actor", "text"), ("actor_role", "text"), ("recorded_by", "text"),
                   ("trigger", "text"), ("from_state", "text"), ("to_state", "text"), ("inputs", "text"),
                   ("note", "text"), ("hash", "text"))  # fmt: skip
        names = [name for name, _kind in columns]
        for table, values, _count in self._tables([tuple(r[name] for name in names) for r in rows], columns):
            self._positional(f"INSERT INTO history ({', '.join(names)}) SELECT * FROM {table}", values)

    def lock_instance(self, instance_id: int) -> tuple[int, str, str] | None:
        """Hold the instance's row, as a step does, without changing it: (version, state, history hash)."""
        row = self._exec(
            "UPDATE workflow_instance SET version = version WHERE id = :id RETURNING version, state, history_hash",
            {"id": instance_id},
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def mark_breached(self, deadline_id: int, on: date) -> bool:
        return bool(
            self._exec(
                "UPDATE deadline SET status = 'breached', breached_on = :on WHERE id = :id AND status = 'open' "
                "AND closed_on IS NULL",
                {"on": on, "id": deadline_id},
            ).rowcount
            == 1
        )

    def append_history(
        self,
        *,
        instance_id: int,
        case_id: int,
        after: tuple[int, str],
        at: datetime,
        on: date,
        actor: str,
        role: str,
        trigger: str,
        state: str,
        inputs: Mapping[str, Any],
        note: str | None,
        recorded_by: str | None = None,
    ) -> int:
        """A history entry that leaves the state as it is (an exception, a breach), after the entry
        ``after`` = (seq, hash) that the caller read; the instance moves on to it, guarded by its
        version. Returns the new entry's seq."""
        version, previous = after
        row: dict[str, Any] = {
            "instance_id": instance_id,
            "case_id": case_id,
            "seq": version + 1,
            "at": at,
            "occurred_on": on,
            "actor": actor,
            "actor_role": role,
            "recorded_by": recorded_by,
            "trigger": trigger,
            "from_state": state,
            "to_state": state,
            "inputs": json.dumps(inputs, sort_keys=True),
            "note": note,
        }
        row["hash"] = entry_hash(previous, **row)
        moved = self._exec(
            "UPDATE workflow_instance SET version = :seq, history_hash = :hash WHERE id = :id AND version = :version",
            {"seq": version + 1, "hash": row["hash"], "id": instance_id, "version": version},
        ).rowcount
        if moved != 1:
            raise ConflictError(
                f"case {case_id} was changed by someone else while you were working on it; nothing was saved"
            )
        self.insert_history(row)
        return version + 1

    def insert_history(self, row: Mapping[str, Any], *, encoded: bool = False) -> None:
        """One history entry, as ``append_history`` or ``_entry`` made it (with its chained hash)."""
        self._exec(
            "INSERT INTO history (instance_id, case_id, seq, at, occurred_on, actor, actor_role, recorded_by, "
            "trigger, from_state, to_state, inputs, note, hash) VALUES (:instance_id, :case_id, :seq, :at, "
            ":occurred_on, :actor, :actor_role, :recorded_by, :trigger, :from_state, :to_state, :inputs, :note, "
            ":hash)",
            row,
            encoded=encoded,
        )

    def queue_message(
        self,
        *,
        key: str,
        kind: str,
        case_id: int | None,
        instance_id: int | None,
        deadline_id: int | None,
        alert_on: date | None,
        template: str,
        recipient: Recipient,
        status: str,
        reason: str | None,
        rendered: Any,
        now: datetime,
    ) -> bool:
        """Queue one message unless its key is already in the outbox; True when it was queued now."""
        return bool(
            self._exec(
                "INSERT INTO outbox (key, case_id, instance_id, history_seq, kind, deadline_id, alert_on, template, "
                "recipient_role, recipient_name, recipient_email, channel, status, created_at, attempts, last_error, "
                "subject, body) VALUES (:key, :cid, :iid, NULL, :kind, :did, :alert_on, :template, :role, :name, "
                ":email, :channel, :status, :now, 0, :reason, :subject, :body) ON CONFLICT (key) DO NOTHING",
                {
                    "key": key,
                    "cid": case_id,
                    "iid": instance_id,
                    "kind": kind,
                    "did": deadline_id,
                    "alert_on": alert_on,
                    "template": template,
                    "role": recipient.role,
                    "name": recipient.name,
                    "email": recipient.email,
                    "channel": recipient.channel,
                    "status": status,
                    "now": now,
                    "reason": reason,
                    "subject": rendered.subject if rendered is not None else None,
                    "body": rendered.text if rendered is not None else None,
                },
            ).rowcount
            == 1
        )

    # -- the dispatcher ------------------------------------------------------------------------

    def release_stale_claims(self, older_than: datetime) -> int:
        """Messages left 'sending' by a dispatcher that stopped: queued again (see engine.dispatch)."""
        return int(
            self._exec(
                "UPDATE outbox SET status = 'queued', next_attempt_at = NULL WHERE status = 'sending' "
                "AND claimed_at < :t",
                {"t": older_than},
            ).rowcount
        )

    def claim_due_messages(self, now: datetime, limit: int) -> list[int]:
        """Claim up to ``limit`` messages due to be sent, in one statement, oldest first; on PostgreSQL
        rows another dispatcher is claiming are skipped rather than waited for."""
        lock = "" if self._store._sqlite else " FOR UPDATE SKIP LOCKED"
        rows = self._exec(
            "UPDATE outbox SET status = 'sending', claimed_at = :now, attempts = attempts + 1 WHERE id IN ("
            "SELECT id FROM outbox WHERE status = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= :now) "
            f"ORDER BY id LIMIT :limit{lock}) AND status = 'queued' RETURNING id",
            {"now": now, "limit": limit},
        ).fetchall()
        return sorted(r[0] for r in rows)

    def claim_message(self, message_id: int, now: datetime) -> bool:
        return bool(
            self._exec(
                "UPDATE outbox SET status = 'sending', claimed_at = :now, attempts = attempts + 1 "
                "WHERE id = :id AND status = 'queued'",
                {"now": now, "id": message_id},
            ).rowcount
            == 1
        )

    def mark_sent(self, message_id: int, now: datetime, provider_id: str, subject: str, body: str) -> None:
        """Record a message sent. On PostgreSQL this transaction alone does not wait for the disk
        (``synchronous_commit`` off): the database server crashing in the moment after could lose the
        record, and the message, still claimed, is sent again when its lease runs out, as after a
        dispatcher's crash between sending and recording (the repeat engine.dispatch documents).
        Waiting for the disk once a message cost more than the rest of its database work."""
        if not self._store._sqlite:
            self._exec("SET LOCAL synchronous_commit TO OFF", {})
        self._exec(
            "UPDATE outbox SET status = 'sent', sent_at = :now, provider_id = :pid, subject = :subject, "
            "body = :body, last_error = NULL WHERE id = :id AND status = 'sending'",
            {"now": now, "pid": provider_id[:300], "subject": subject[:300], "body": body, "id": message_id},
        )

    def retry_later(self, message_id: int, at: datetime, error: str) -> None:
        self._exec(
            "UPDATE outbox SET status = 'queued', next_attempt_at = :at, last_error = :error "
            "WHERE id = :id AND status = 'sending'",
            {"at": at, "error": error, "id": message_id},
        )

    def mark_failed(self, message_id: int, error: str) -> None:
        self._exec(
            "UPDATE outbox SET status = 'failed', last_error = :error WHERE id = :id AND status = 'sending'",
            {"error": error, "id": message_id},
        )

    def _entry(
        self,
        instance_id: int,
        case_id: int,
        seq: int,
        previous: str,
        outcome: Outcome,
        note: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        """The history entry of a step, with its hash chained to ``previous``."""
        row: dict[str, Any] = {
            "instance_id": instance_id,
            "case_id": case_id,
            "seq": seq,
            "at": now,
            "occurred_on": outcome.on,
            "actor": outcome.actor.id,
            "actor_role": outcome.actor.role,
            "recorded_by": outcome.actor.recorded_by,
            "trigger": outcome.trigger,
            "from_state": outcome.from_state,
            "to_state": outcome.to_state,
            "inputs": json.dumps(to_json(outcome.inputs), sort_keys=True) if outcome.inputs else "{}",
            "note": note,
        }
        row["hash"] = entry_hash(previous, **row)
        return row

    def _record(
        self,
        instance_id: int,
        case_id: int,
        seq: int,
        outcome: Outcome,
        entry: Mapping[str, Any],
        recipients: Sequence[tuple[str, Recipient]],
    ) -> None:
        value = self._store.value
        on, at = value(outcome.on), value(entry["at"])
        self.insert_history({**entry, "at": at, "occurred_on": on}, encoded=True)
        self._many(
            "INSERT INTO deadline (instance_id, case_id, name, title, starts_on, due_on, source, basis, party, "
            "status, opened_by_seq, next_alert_on) VALUES (:iid, :cid, :name, :title, :starts_on, :due_on, :source, "
            ":basis, :party, 'open', :seq, :next_alert_on)",
            [_deadline_row(instance_id, case_id, seq, d, value) for d in outcome.opened if not d.recount],
            encoded=True,
        )
        # A limit counted again (an appeal window after a mediation certificate) keeps its row.
        self._many(
            "UPDATE deadline SET starts_on = :starts_on, due_on = :due_on, next_alert_on = :next_alert_on "
            "WHERE instance_id = :iid AND name = :name AND closed_on IS NULL",
            [
                {
                    "starts_on": value(d.starts_on),
                    "due_on": value(d.due_on),
                    "next_alert_on": value(d.next_alert_on) if d.next_alert_on else None,
                    "iid": instance_id,
                    "name": d.name,
                }
                for d in outcome.opened
                if d.recount
            ],
            encoded=True,
        )
        closing = [(name, "met") for name in outcome.met] + [(name, "cancelled") for name in outcome.cancelled]
        # A limit met after its last day stays on record as breached (closed, but late). A family's
        # period is a minimum they are given, not a limit anyone can miss: it simply ends.
        self._many(
            "UPDATE deadline SET status = CASE WHEN :how = 'met' AND due_on < :on AND party <> 'family' "
            "THEN 'breached' "
            "WHEN :how = 'met' THEN 'met' ELSE 'cancelled' END, closed_on = :on, closed_by_seq = :seq, "
            "next_alert_on = NULL "
            "WHERE instance_id = :iid AND name = :name AND closed_on IS NULL",
            [
                {
                    "how": how,
                    "on": value(outcome.met_on[name]) if name in outcome.met_on else on,
                    "seq": seq,
                    "iid": instance_id,
                    "name": name,
                }
                for name, how in closing
            ],
            encoded=True,
        )
        self._many(
            "INSERT INTO outbox (key, case_id, instance_id, history_seq, template, recipient_role, recipient_name, "
            "recipient_email, recipient_address, channel, status, created_at, attempts, last_error) VALUES (:key, "
            ":cid, :iid, :seq, :template, :role, :name, :email, :address, :channel, :status, :now, 0, :reason)",
            [
                {
                    "key": f"{instance_id}:{seq}:{template}:{r.role}:{r.token(self.secret)}",
                    "cid": case_id,
                    "iid": instance_id,
                    "seq": seq,
                    "template": template,
                    "role": r.role,
                    "name": r.name,
                    "email": r.email,
                    "address": r.address,
                    "channel": r.channel,
                    "status": r.status,
                    "now": at,
                    "reason": r.reason,
                }
                for template, r in recipients
            ],
            encoded=True,
        )
        self._many(
            "INSERT INTO document (case_id, instance_id, history_seq, kind, status, created_at) "
            "VALUES (:cid, :iid, :seq, :kind, 'queued', :now)",
            [{"cid": case_id, "iid": instance_id, "seq": seq, "kind": k, "now": at} for k in outcome.documents],
            encoded=True,
        )


def _deadline_row(
    instance_id: int, case_id: int, seq: int, d: NewDeadline, value: Callable[[Any], Any]
) -> dict[str, Any]:
    return {
        "iid": instance_id,
        "cid": case_id,
        "name": d.name,
        "title": d.title,
        "starts_on": value(d.starts_on),
        "due_on": value(d.due_on),
        "source": d.source,
        "basis": d.basis,
        "party": d.party,
        "seq": seq,
        "next_alert_on": value(d.next_alert_on) if d.next_alert_on else None,
    }


def _contact_row(case_id: int, c: ContactRecord) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "role": c.role,
        "name": c.name,
        "email": c.email,
        "address": c.address,
        "prefers": c.prefers,
        "interpreter": c.interpreter,
        "format": c.accessible_format,
    }


def as_date(value: Any) -> date:
    return value if isinstance(value, date) else _parse_day(str(value))


def as_moment(value: Any) -> datetime:
    """A stored moment, aware (SQLite keeps UTC without its zone)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# A caseload's dates repeat (every deadline opened today is due on one of a few days): keep the
# conversions of the last few thousand.
_parse_day = lru_cache(maxsize=8192)(date.fromisoformat)
_iso_day = lru_cache(maxsize=8192)(date.isoformat)


class Store:
    """Hands out units of work over an Engine, speaking its driver's parameter style."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        style = engine.dialect.paramstyle
        self._pyformat = style in ("pyformat", "format")
        self._cache: dict[str, str] = {}
        self.secret: bytes | None = None  # the installation's secret, read by the first unit that needs it
        # The driver connections of units between two units: taken from the engine's pool once and
        # kept here, as the pool would keep them, without its checkout and checkin on every step
        # (about a tenth of a step's time). Closed with the engine (Engine.dispose).
        self._idle: list[Any] = []
        event.listen(engine, "engine_disposed", self._close_idle)

    def _close_idle(self, _engine: Engine) -> None:
        while self._idle:
            self._idle.pop().close()

    def _connection(self) -> Any:
        try:
            return self._idle.pop()
        except IndexError:
            pooled = self.engine.raw_connection()
            raw = pooled.dbapi_connection
            pooled.detach()  # the pool no longer counts it: it is this store's until closed
            return raw

    def sql(self, statement: str) -> str:
        cached = self._cache.get(statement)
        if cached is None:
            cached = _PARAM.sub(r"%(\1)s", statement) if self._pyformat else statement
            self._cache[statement] = cached
        return cached

    def value(self, value: Any) -> Any:
        """One parameter as the driver takes it. SQLite has no date types: dates and moments are
        stored as SQLAlchemy's SQLite dialect stores them, so that the ORM reads them."""
        if not self._sqlite or not isinstance(value, date):  # a datetime is a date too
            return value
        if isinstance(value, datetime):
            if value.tzinfo is not UTC:  # the engine's clocks give UTC already
                value = value.astimezone(UTC)
            return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return _iso_day(value)

    def encode(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        if not self._sqlite:
            return params
        out: dict[str, Any] | None = None
        for key, value in params.items():
            if isinstance(value, date):
                if out is None:
                    out = dict(params)
                out[key] = self.value(value)
        return params if out is None else out

    @contextmanager
    def unit(self) -> Iterator[Unit]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        raw = self._connection()
        try:
            yield Unit(self, raw)
            raw.commit()
        except BaseException:
            try:
                raw.rollback()
            except BaseException:
                raw.close()  # a connection that cannot roll back is not used again
                raise
            self._idle.append(raw)
            raise
        self._idle.append(raw)
