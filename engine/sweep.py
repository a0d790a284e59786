"""The sweep: reminders, breaches and escalations that have fallen due, queued exactly once.

Deadlines are rows; each open one carries the date of its next alert (``next_alert_on``,
indexed). A sweep reads only the rows whose date has come, in batches, and for each works out
from the workflow's policy (``engine.alerts``) what fell since: it records a breach in the
history, queues the messages, and moves ``next_alert_on`` on, all in the batch's transaction.

Exactly once, whatever runs at the same time:
- a row is claimed by ``UPDATE ... SET next_alert_on = :new WHERE id = :id AND next_alert_on = :old``;
  a second sweep that read the same row finds it changed and leaves it;
- a breach is recorded by ``... SET status = 'breached' WHERE status = 'open'``, so once;
- every message has a unique key (deadline, kind, step, recipient) and is inserted with
  ``ON CONFLICT (key) DO NOTHING``; a digest's key is (day, caseworker).
A sweep after days of downtime catches up by the same rules (see ``engine.alerts``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import OperationalError

from . import alerts
from .alerts import AlertKind, AlertPoint
from .calendar import is_working_day
from .catalogue import Catalogue
from .clock import Clock
from .config import Settings
from .directory import Directory
from .errors import NotFound
from .messages import Messages, plural
from .recipients import resolve
from .store.repository import ContactRecord, Recipient, Store, Unit, as_date

log = logging.getLogger(__name__)

SCHEDULER_ACTOR = "scheduler"
SCHEDULER_ROLE = "system"
TEMPLATE = {AlertKind.REMINDER: "deadline_reminder", AlertKind.ESCALATION: "deadline_escalation"}


@dataclass(frozen=True)
class Queued:
    key: str
    kind: str
    template: str
    case_id: int | None
    to: str
    status: str
    reason: str | None = None


@dataclass
class SweepReport:
    as_of: date
    examined: int = 0
    breaches: list[dict[str, Any]] = field(default_factory=list)
    messages: list[Queued] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for m in self.messages if m.status == status)


@dataclass(frozen=True)
class _Row:
    id: int
    instance_id: int
    case_id: int
    name: str
    title: str
    due_on: date
    status: str
    party: str
    source: str
    basis: str
    next_alert_on: date
    exception_head: str | None
    workflow: str
    definition_version: int
    state: str
    case_name: str
    caseworker: str | None


_DUE_ROWS = (
    "SELECT d.id, d.instance_id, d.case_id, d.name, d.title, d.due_on, d.status, d.party, d.source, d.basis, "
    "d.next_alert_on, d.exception_head, i.workflow, i.definition_version, i.state, c.name, c.caseworker "
    "FROM deadline d JOIN workflow_instance i ON i.id = d.instance_id JOIN ehc_case c ON c.id = d.case_id "
    "WHERE d.next_alert_on <= :today AND d.closed_on IS NULL ORDER BY d.next_alert_on, d.id LIMIT :limit"
)


class Sweeper:
    def __init__(
        self,
        store: Store,
        catalogue: Catalogue,
        directory: Directory,
        clock: Clock,
        messages: Messages,
        settings: Settings,
    ):
        self.store = store
        self.catalogue = catalogue
        self.directory = directory
        self.clock = clock
        self.messages = messages
        self.settings = settings

    def sweep(self, as_of: date | None = None) -> SweepReport:
        today = as_of or self.clock.today()
        report = SweepReport(today)
        batch = self.settings.scheduler.sweep_batch
        while True:
            with self.store.unit() as unit:
                rows = [_row(r) for r in unit.fetch(_DUE_ROWS, {"today": today, "limit": batch})]
            if not rows:
                break
            self._retrying(lambda rows=rows: self._batch(rows, today, report))
            report.examined += len(rows)
        self._retrying(lambda: self._digests(today, report))
        return report

    def _retrying(self, work: Any) -> None:
        """Run one batch; a deadlock or lock timeout (PostgreSQL, under load) rolls it back: try again.
        Every write in a batch is guarded, so a repeat does nothing twice."""
        for attempt in range(5):
            try:
                work()
                return
            except OperationalError:
                if attempt == 4:
                    raise
                log.warning("sweep batch rolled back by the database; trying again")

    def _batch(self, rows: Sequence[_Row], today: date, report: SweepReport) -> None:
        """One batch in one transaction, in a few statements whatever its size: the instances of the
        rows breached locked (as a step locks them), every row claimed, the breaches recorded with
        their history entries chained, and every message queued; messages are rendered when sent."""
        now = self.clock.now()
        plans: dict[tuple[Any, ...], alerts.Due] = {}
        with self.store.unit() as unit:
            contacts = unit.contacts_of({r.case_id for r in rows})
            due_rows: list[tuple[_Row, alerts.Due]] = []
            for r in rows:
                found = self._plan(unit, r, today, plans, report)
                if found is not None:
                    due_rows.append((r, found))
            # The instances first, as a step locks them, so a sweep and a step never wait on each other in a circle.
            held = unit.lock_instances([r.instance_id for r, due in due_rows if due.breach_on is not None])
            claimed = unit.claim_alerts([(r.id, r.next_alert_on, due.next_alert_on) for r, due in due_rows])
            ready = [(r, due) for r, due in due_rows if r.id in claimed]
            breached = unit.mark_breaches(
                [(r.id, due.breach_on) for r, due in ready if due.breach_on is not None and r.instance_id in held]
            )
            entries = []
            for r, due in ready:
                if r.id in breached:
                    assert due.breach_on is not None
                    entries.append(
                        {"instance_id": r.instance_id, "case_id": r.case_id, "at": now, "occurred_on": due.breach_on,
                         "actor": SCHEDULER_ACTOR, "actor_role": SCHEDULER_ROLE, "trigger": "deadline_breached",
                         "inputs": {"deadline": r.name, "due_on": r.due_on.isoformat()},
                         "note": f"{r.title}: due {r.due_on.isoformat()}, not done by then"}
                    )  # fmt: skip
                    report.breaches.append(
                        {"case": r.case_id, "deadline": r.name, "due": r.due_on.isoformat(),
                         "breached_on": due.breach_on}
                    )  # fmt: skip
            unit.append_histories(entries, held)
            messages: list[dict[str, Any]] = []
            tokens: dict[tuple[str, str | None, str | None], str] = {}
            for r, due in ready:
                people = contacts.get(r.case_id, [])
                for point, reason in due.skip:
                    messages += self._messages(unit, r, point, now, people, tokens, skip_reason=reason)
                for point in due.send:
                    messages += self._messages(unit, r, point, now, people, tokens)
            queued = unit.queue_messages(messages)
            for m in messages:
                if m["key"] in queued:
                    report.messages.append(
                        Queued(m["key"], m["kind"], m["template"], m["case_id"], m["who"], m["status"], m["last_error"])
                    )

    def _plan(
        self, unit: Unit, r: _Row, today: date, plans: dict[tuple[Any, ...], alerts.Due], report: SweepReport
    ) -> alerts.Due | None:
        """What fell due for the row (the same answer for every row alike, worked out once)."""
        key = (r.workflow, r.definition_version, r.name, r.party, r.due_on, r.status, r.next_alert_on)
        if key in plans:
            return plans[key]
        try:
            definition = self.catalogue.get(r.workflow, r.definition_version)
            spec = definition.deadline(r.name)
        except (KeyError, NotFound):  # a definition withdrawn or renamed: say so, stop alerting
            unit.claim_alert(r.id, r.next_alert_on, None)
            report.problems.append(
                f"case {r.case_id}: deadline '{r.name}' of {r.workflow} v{r.definition_version} is not in the "
                "loaded workflows; its alerts are stopped"
            )
            return None
        plans[key] = alerts.due(definition, spec, r.party, r.due_on, r.status, r.next_alert_on, today)
        return plans[key]

    def _messages(
        self,
        unit: Unit,
        r: _Row,
        point: AlertPoint,
        now: datetime,
        contacts: list[ContactRecord],
        tokens: dict[tuple[str, str | None, str | None], str],
        skip_reason: str | None = None,
    ) -> list[dict[str, Any]]:
        """The outbox rows for one alert: one a recipient, keyed so it is queued once (``tokens``: each
        recipient's keyed digest, made once a batch)."""
        out = []
        for rec in resolve(point.to, r.caseworker, contacts, self.directory):
            who = (rec.role, rec.email, rec.name)
            token = tokens.get(who)
            if token is None:
                token = tokens[who] = rec.token(unit.secret)
            status, reason = rec.status, rec.reason
            if skip_reason is not None:
                status, reason = "skipped", skip_reason
            elif point.kind is AlertKind.REMINDER and self._digests_for(rec):
                status, reason = "skipped", "in the recipient's daily digest instead"
            out.append(
                {
                    "key": f"deadline:{r.id}:{point.kind.value}:{point.step}:{token}",
                    "case_id": r.case_id,
                    "instance_id": r.instance_id,
                    "kind": point.kind.value,
                    "deadline_id": r.id,
                    "alert_on": point.on,
                    "template": TEMPLATE[point.kind],
                    "recipient_role": rec.role,
                    "recipient_name": rec.name,
                    "recipient_email": rec.email,
                    "channel": rec.channel,
                    "status": status,
                    "created_at": now,
                    "last_error": reason,
                    "who": _who(rec),
                }
            )
        return out

    def _digests_for(self, rec: Recipient) -> bool:
        member = self.directory.find(rec.email)
        return bool(member and member.digest)

    # -- digests -------------------------------------------------------------------------------

    def _digests(self, today: date, report: SweepReport) -> None:
        """One digest per reader per working day, listing their cases' due and overdue deadlines."""
        readers = self.directory.digest_readers()
        if not readers or not is_working_day(today):
            return
        horizon = today + timedelta(days=self.settings.notifications.digest_days)
        now = self.clock.now()
        with self.store.unit() as unit:
            for member in readers:
                items = unit.caseload_deadlines((member.id, member.email), horizon)
                if not items:
                    continue
                overdue = [i for i in items if i["due_on"] < today]
                soon = [i for i in items if i["due_on"] >= today]
                for i in items:
                    i["days"] = (i["due_on"] - today).days
                rendered = self.messages.render(
                    "daily_digest",
                    {"member": member, "overdue": overdue, "soon": soon, "as_of": today, "horizon": horizon},
                )
                rec = Recipient("caseworker", member.name, member.email)
                key = f"digest:{today.isoformat()}:{member.id}"
                if unit.queue_message(
                    key=key,
                    kind="digest",
                    case_id=None,
                    instance_id=None,
                    deadline_id=None,
                    alert_on=today,
                    template="daily_digest",
                    recipient=rec,
                    status="queued",
                    reason=None,
                    rendered=rendered,
                    now=now,
                ):
                    report.messages.append(Queued(key, "digest", "daily_digest", None, member.email, "queued"))


def _who(rec: Recipient) -> str:
    return rec.email or f"{rec.role}:{rec.name or '-'}"


def _row(r: Sequence[Any]) -> _Row:
    return _Row(
        id=r[0],
        instance_id=r[1],
        case_id=r[2],
        name=r[3],
        title=r[4],
        due_on=as_date(r[5]),
        status=r[6],
        party=r[7],
        source=r[8],
        basis=r[9],
        next_alert_on=as_date(r[10]),
        exception_head=r[11],
        workflow=r[12],
        definition_version=r[13],
        state=r[14],
        case_name=r[15],
        caseworker=r[16],
    )


def describe(report: SweepReport) -> Iterable[str]:
    yield (
        f"swept {report.as_of.isoformat()}: {plural(report.examined, 'deadline')} with alerts due; "
        f"breaches recorded: {len(report.breaches)}; messages queued: {report.count('queued')}, "
        f"skipped: {report.count('skipped')}"
    )
