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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

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
from .roles import CASEWORK_ROLES
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
    elsewhere: bool = False  # not swept here: another process was sweeping the same database

    def count(self, status: str) -> int:
        return sum(1 for m in self.messages if m.status == status)


class _Row(NamedTuple):
    id: int
    instance_id: int
    case_id: int
    name: str
    title: str
    due_on: date
    status: str
    party: str
    next_alert_on: date
    workflow: str
    definition_version: int
    caseworker: str | None


# What is due, in two steps: the ids, in the order of the index on next_alert_on (the sweep
# moves each row it works past today, so it leaves the set), then each batch's rows by id. Asking
# for the rows themselves a batch at a time read again, on PostgreSQL, every due row not yet
# worked and every index entry the batches before had left behind: 3.4 s of a day at 770,000.
_DUE_IDS = (
    "SELECT d.id FROM deadline d WHERE d.next_alert_on <= :today AND d.closed_on IS NULL "
    "ORDER BY d.next_alert_on, d.id LIMIT :limit"
)
_DUE_ROWS = (
    "SELECT d.id, d.instance_id, d.case_id, d.name, d.title, d.due_on, d.status, d.party, d.next_alert_on, "
    "i.workflow, i.definition_version, c.caseworker "
    "FROM deadline d JOIN workflow_instance i ON i.id = d.instance_id JOIN ehc_case c ON c.id = d.case_id "
    "WHERE d.id {ids} AND d.next_alert_on <= ? AND d.closed_on IS NULL ORDER BY d.next_alert_on, d.id"
)
_IDS_AT_ONCE = 100_000  # a catch-up's ids in a few reads, never all of England's in memory at once


def _rows(found: Sequence[Sequence[Any]]) -> list[_Row]:
    """The rows read, their dates parsed (once for each of the few days a batch shares)."""
    days: dict[Any, date] = {}

    def day(v: Any) -> date:
        d = days.get(v)
        if d is None:
            d = days[v] = as_date(v)
        return d

    return [_Row(r[0], r[1], r[2], r[3], r[4], day(r[5]), r[6], r[7], day(r[8]), r[9], r[10], r[11]) for r in found]


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

    def sweep(self, as_of: date | None = None, on_batch: Callable[[int], None] | None = None) -> SweepReport:
        """Everything due by ``as_of`` (today), a batch at a time; ``on_batch`` is told each batch's size."""
        today = as_of or self.clock.today()
        report = SweepReport(today)
        batch = self.settings.scheduler.sweep_batch
        while True:
            with self.store.unit() as unit:
                ids = [r[0] for r in unit.fetch(_DUE_IDS, {"today": today, "limit": _IDS_AT_ONCE})]
            if not ids:
                break
            for start in range(0, len(ids), batch):
                with self.store.unit() as unit:  # rows a step closed or moved meanwhile are left out
                    rows = _rows(unit.by_ids(_DUE_ROWS, ids[start : start + batch], today))
                if rows:
                    self._retrying(lambda rows=rows: self._batch(rows, today, report))
                report.examined += len(rows)
                if on_batch is not None:
                    on_batch(len(rows))
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
            messages: list[tuple[Any, ...]] = []
            whom: list[str] = []
            recipients: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
            for r, due in ready:
                people = contacts.get(r.case_id, [])
                for point, reason in due.skip:
                    self._messages(unit, r, point, now, people, recipients, messages, whom, skip_reason=reason)
                for point in due.send:
                    self._messages(unit, r, point, now, people, recipients, messages, whom)
            queued = unit.queue_messages(messages)
            for m, who in zip(messages, whom, strict=True):
                if m[0] in queued:
                    report.messages.append(Queued(m[0], m[3], m[6], m[1], who, m[11], m[13]))

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
        recipients: dict[tuple[Any, ...], list[tuple[Any, ...]]],
        out: list[tuple[Any, ...]],
        whom: list[str],
        skip_reason: str | None = None,
    ) -> None:
        """The outbox rows for one alert, added to ``out`` (in ``Unit.queue_messages``'s order), one a
        recipient, keyed so it is queued once; ``whom`` gets who each is for. Who receives an alert
        sent to staff alone depends only on the case's caseworker: that answer, with each recipient's
        keyed digest, is worked out once a batch (``recipients``)."""
        staff = all(role in CASEWORK_ROLES for role in point.to)
        key = (point.to, point.kind, r.caseworker) if staff else (point.to, point.kind, r.caseworker, r.case_id)
        found = recipients.get(key)
        if found is None:
            found = recipients[key] = []
            for rec in resolve(point.to, r.caseworker, contacts, self.directory):
                status, reason = rec.status, rec.reason
                if point.kind is AlertKind.REMINDER and self._digests_for(rec):
                    status, reason = "skipped", "in the recipient's daily digest instead"
                found.append((rec.token(unit.secret), rec.role, rec.name, rec.email, rec.channel, status, reason,
                              _who(rec)))  # fmt: skip
            if not staff:  # a case's contacts: not asked again by another case
                del recipients[key]
        kind, template = point.kind.value, TEMPLATE[point.kind]
        for token, role, name, email, channel, status, reason, who in found:
            if skip_reason is not None:
                status, reason = "skipped", skip_reason
            out.append((f"deadline:{r.id}:{kind}:{point.step}:{token}", r.case_id, r.instance_id, kind, r.id,
                        point.on, template, role, name, email, channel, status, now, reason))  # fmt: skip
            whom.append(who)

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


def describe(report: SweepReport) -> Iterable[str]:
    if report.elsewhere:
        yield f"not swept {report.as_of.isoformat()}: another process is sweeping this database now"
        return
    yield (
        f"swept {report.as_of.isoformat()}: {plural(report.examined, 'deadline')} with alerts due; "
        f"breaches recorded: {len(report.breaches)}; messages queued: {report.count('queued')}, "
        f"skipped: {report.count('skipped')}"
    )
