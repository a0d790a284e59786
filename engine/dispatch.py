"""The dispatcher: sends what the outbox holds through the configured transport, once.

For each queued message whose time has come:

1. claim it: ``UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id = :id AND
   status = 'queued'`` and commit; a second dispatcher finds it claimed and leaves it;
2. render it if a step queued it (the step's transaction only names the template), and send it;
3. only when the transport has accepted it, mark it ``sent`` (with the provider's id).

A temporary failure (server down, timeout, rate limit) puts it back in the queue with a
back-off (``notifications.retry``: first delay, doubled each time, capped); after the last attempt,
or at once for a permanent failure, it is marked ``failed`` and an alert is queued to the case's
team manager. Nothing is lost while the mail server is down: the messages wait in the queue.

The one edge that can repeat a message: the process dies after the transport accepted it and
before ``sent`` is committed. The claim then stays ``sending`` until its lease
(``notifications.retry.sending_lease_seconds``) runs out and the message is sent again. Marking
it sent before sending would instead lose it on the same crash, and a missed reminder about a
statutory deadline costs more than a repeated one. The repeat carries the same Message-ID (SMTP)
or reference (GOV.UK Notify), both made from the message's key, so it can be recognised. On
PostgreSQL the record of a message sent is committed without waiting for the disk
(``Unit.mark_sent``): the database server's own crash just after could lose it, with the same repeat.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from notifications.message import Email, Letter, PermanentFailure, SendFailure, Transport

from . import alerts
from .actor import Actor, may_change_cases
from .catalogue import Catalogue
from .clock import Clock, london_date
from .config import Settings
from .directory import Directory
from .errors import ConfigError, InvalidInput, NotFound
from .messages import Messages, Rendered
from .recipients import resolve
from .store.repository import Recipient, Store, as_date, as_moment

log = logging.getLogger(__name__)


SECRET_KINDS = ("account", "sign_in")
"""Messages holding a sign-in link or code (a staff set-up link; the online service's links and codes)."""
SECRET_REMOVED = "(This message held a sign-in link or code, removed once it was sent.)\n"


def make_transport(settings: Settings) -> Transport:
    # Each transport's module (and its libraries: requests for Notify) is imported when it is chosen.
    n = settings.notifications
    if n.transport == "smtp":
        from notifications.smtp import SmtpTransport

        s = n.smtp
        try:
            return SmtpTransport(
                s.host, s.port, s.tls, username=s.username, password=s.password, timeout=s.timeout, ca_file=s.ca_file
            )
        except ValueError as exc:  # a setting the transport refuses: one line naming it
            raise ConfigError(f"config.yaml: notifications.smtp.{exc}") from None
    if n.transport == "notify":
        if not n.notify.api_key or not n.notify.template_id:
            raise ConfigError(
                "notifications.notify: GOV.UK Notify needs api_key (or EHCP_NOTIFY_API_KEY) and template_id"
            )
        from notifications.notify import NotifyTransport

        return NotifyTransport(
            n.notify.api_key,
            n.notify.template_id,
            base_url=n.notify.base_url,
            templates=dict(n.notify.templates),
            email_reply_to_id=n.notify.email_reply_to_id,
        )
    from notifications.folder import FolderTransport

    return FolderTransport(settings.outbox_path())


@dataclass(frozen=True)
class Attempt:
    id: int
    key: str
    to: str
    subject: str
    status: str  # sent, retry, failed
    error: str | None = None


@dataclass
class DispatchReport:
    attempts: list[Attempt] = field(default_factory=list)
    recovered: int = 0

    def count(self, status: str) -> int:
        return sum(1 for a in self.attempts if a.status == status)


_ROW = (
    "SELECT o.id, o.key, o.kind, o.case_id, o.instance_id, o.history_seq, o.template, o.recipient_role, "
    "o.recipient_name, o.recipient_email, o.channel, o.attempts, o.subject, o.body, c.name, c.caseworker, "
    "o.recipient_address, o.deadline_id, o.created_at, d.name, d.title, d.due_on, d.source, d.basis, "
    "d.exception_head, di.workflow, di.definition_version FROM outbox o LEFT JOIN ehc_case c ON c.id = o.case_id "
    "LEFT JOIN deadline d ON d.id = o.deadline_id LEFT JOIN workflow_instance di ON di.id = d.instance_id "
    "WHERE o.id = :id"
)  # a reminder's or escalation's deadline comes with it: rendered without another query
_ROWS = _ROW.replace("WHERE o.id = :id", "WHERE o.id {ids}")  # a claimed batch's, read as it is claimed
ALERTS = ("reminder", "escalation")
CLAIM_BATCH = (
    20  # messages a dispatcher claims at once  # queued by the sweep as what they are, rendered here when sent
)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        messages: Messages,
        catalogue: Catalogue,
        directory: Directory,
        clock: Clock,
        settings: Settings,
        transport: Transport | None = None,
    ):
        self.store = store
        self.messages = messages
        self.catalogue = catalogue
        self.directory = directory
        self.clock = clock
        self.settings = settings
        self._transport = transport

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = make_transport(self.settings)
        return self._transport

    def retry_failed(self, ids: Sequence[int] | None, *, actor: Actor) -> list[int]:
        """Queue failed messages again (those named, or all), to be sent on the next dispatch with
        the same key, so the same Message-ID and Notify reference: a relay that refused them can be
        fixed and the messages sent, without sending any twice. Returns the ids queued again."""
        may_change_cases(actor, "send messages again")
        with self.store.unit() as unit:
            failed = [r[0] for r in unit.fetch("SELECT id FROM outbox WHERE status = 'failed' ORDER BY id", {})]
            chosen = failed if ids is None else [i for i in ids if i in set(failed)]
            unknown = [] if ids is None else [i for i in ids if i not in set(failed)]
            if unknown:
                raise InvalidInput(
                    f"no failed message {', '.join(map(str, unknown))}: only failed messages are retried"
                )
            for message_id in chosen:
                unit.execute(
                    "UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = NULL WHERE id = :id "
                    "AND status = 'failed'",
                    {"id": message_id},
                )
        return chosen

    def dispatch(self, limit: int | None = None, on_attempt: Callable[[Attempt], None] | None = None) -> DispatchReport:
        """Send what is due; ``on_attempt`` hears of each message tried (a progress bar counts them)."""
        report = DispatchReport()
        retry = self.settings.notifications.retry
        now = self.clock.now()
        with self.store.unit() as unit:
            report.recovered = unit.release_stale_claims(now - timedelta(seconds=retry.sending_lease_seconds))
        if report.recovered:
            log.warning(
                "%d message(s) were being sent when a dispatcher stopped; they are queued again", report.recovered
            )
        try:
            while limit is None or len(report.attempts) < limit:
                # A few at a time, claimed in one statement: other dispatchers take other rows (on
                # PostgreSQL they skip the rows being claimed), and one commit covers the batch. A
                # dispatcher stopped with some claimed and not sent leaves them to the lease, as one
                # stopped mid-send does: sent later, once.
                room = CLAIM_BATCH if limit is None else min(CLAIM_BATCH, limit - len(report.attempts))
                now = self.clock.now()
                with self.store.unit() as unit:
                    claimed = unit.claim_due_messages(now, room)
                    rows = {row[0]: row for row in unit.by_ids(_ROWS, claimed)} if claimed else {}
                if not claimed:
                    break
                for message_id in claimed:
                    attempt = self._send(message_id, rows.get(message_id))
                    report.attempts.append(attempt)
                    if on_attempt is not None:
                        on_attempt(attempt)
        finally:
            close = getattr(self._transport, "close", None)
            if callable(close):
                close()
        return report

    def send_now(self, message_id: int) -> Attempt | None:
        """Send one queued message at once (a sign-in link or code, which cannot wait for the next sweep);
        None when another dispatcher has it. It fails, and is retried, as any message is."""
        return self._one(message_id)

    def _one(self, message_id: int) -> Attempt | None:
        now = self.clock.now()
        with self.store.unit() as unit:
            if not unit.claim_message(message_id, now):
                return None  # another dispatcher has it
        return self._send(message_id)

    def _send(self, message_id: int, row: Any = None) -> Attempt:
        """Send one message this dispatcher has claimed (``row``: as read with the claim), and record
        what happened."""
        now = self.clock.now()
        if row is None:
            with self.store.unit() as unit:
                row = unit.fetch(_ROW, {"id": message_id})[0]
        (mid, key, kind, case_id, instance_id, seq, template, role, name, email, channel, attempts, subject, body) = (
            row[:14]
        )
        address = row[16]
        recipient = Recipient(role, name, email, address=address)
        rendered: Rendered | None = None
        try:
            if subject is None or body is None:
                made = self._alert_context(row, recipient) if kind in ALERTS else self._step_context(row, recipient)
                rendered = self.messages.render(template, made)
            else:
                rendered = Rendered(subject, body)
            if channel == "letter":
                from notifications.letters import write_letter  # WeasyPrint: ~0.5 s to import

                path = write_letter(
                    Letter(
                        key, name, rendered.subject, self.messages.letter(rendered, name, london_date(now), address)
                    ),
                    self.settings.outbox_path(),
                )
                provider_id = str(path)
            else:
                provider_id = self.transport.send(self._email(key, template, email, name, rendered))
        except (SendFailure, ConfigError) as exc:  # a missing template is fixed by a deploy: keep trying
            permanent = isinstance(exc, PermanentFailure)
            return self._failed(
                mid, key, email or name or "", rendered, attempts, str(exc), permanent=permanent, row=row
            )
        # A sign-in link or code is not kept once it has gone: the outbox is no way into anyone's account.
        kept = SECRET_REMOVED if kind in SECRET_KINDS else rendered.text
        with self.store.unit() as unit:
            unit.mark_sent(mid, self.clock.now(), provider_id, rendered.subject, kept)
        return Attempt(mid, key, email or name or "", rendered.subject, "sent")

    def _email(self, key: str, template: str, to: str, name: str | None, rendered: Rendered) -> Email:
        n = self.settings.notifications
        return Email(
            key=key,
            to=to,
            to_name=name,
            subject=rendered.subject,
            text=rendered.text,
            html=self.messages.html(rendered),
            template=template,
            sender=n.sender,
            reply_to=n.reply_to,
        )

    def _failed(
        self,
        mid: int,
        key: str,
        to: str,
        rendered: Rendered | None,
        attempts: int,
        error: str,
        *,
        permanent: bool,
        row: Any,
    ) -> Attempt:
        retry = self.settings.notifications.retry
        now = self.clock.now()
        subject = rendered.subject if rendered else ""
        if not permanent and attempts < retry.attempts:
            delay = min(retry.first_delay_seconds * (2 ** (attempts - 1)), retry.max_delay_seconds)
            with self.store.unit() as unit:
                unit.retry_later(mid, now + timedelta(seconds=delay), error)
            log.info("message %d: attempt %d failed (%s); trying again in %.0f s", mid, attempts, error, delay)
            return Attempt(mid, key, to, subject, "retry", error)
        with self.store.unit() as unit:
            unit.mark_failed(mid, error)
            if row[2] in SECRET_KINDS:  # a link or code that was never delivered is not kept either
                unit.execute("UPDATE outbox SET body = :b WHERE id = :id", {"b": SECRET_REMOVED, "id": mid})
            if row[2] != "alert":
                self._alert(unit, row, subject, attempts, error, now)
        log.warning("message %d failed after %d attempt(s): %s", mid, attempts, error)
        return Attempt(mid, key, to, subject, "failed", error)

    def _alert(self, unit: Any, row: Any, subject: str, attempts: int, error: str, now: datetime) -> None:
        """Tell the case's team manager that a message could not be delivered (in the same transaction)."""
        mid, case_id, template, role, name, case_name, caseworker = (
            row[0],
            row[3],
            row[6],
            row[7],
            row[8],
            row[14],
            row[15],
        )
        for rec in resolve(["team_manager"], caseworker, [], self.directory):
            if not rec.email:
                continue
            rendered = self.messages.render(
                "delivery_failed",
                {
                    "recipient": {"name": rec.name or "", "role": rec.role},
                    "case": {"id": case_id, "name": case_name or ""},
                    "failed": {
                        "attempts": attempts,
                        "subject": subject,
                        "template": template,
                        "role": role,
                        "name": name,
                        "error": error,
                    },
                },
            )
            unit.queue_message(
                key=f"failed:{mid}:{rec.token(unit.secret)}",
                kind="alert",
                case_id=case_id,
                instance_id=row[4],
                deadline_id=None,
                alert_on=london_date(now),
                template="delivery_failed",
                recipient=rec,
                status="queued",
                reason=None,
                rendered=rendered,
                now=now,
            )

    def _alert_context(self, row: Any, recipient: Recipient) -> dict[str, Any]:
        """A reminder's or escalation's context: its deadline as it stands, counted from the day the
        sweep found it due (the day it was queued)."""
        key, kind, case_id, case_name, deadline_id, created = row[1], row[2], row[3], row[14], row[17], row[18]
        name, title, due_on, source, basis, excused, workflow, version = row[19:27]
        if name is None:
            raise NotFound(f"outbox message {row[0]}: its deadline ({deadline_id}) is missing")
        definition = self.catalogue.get(workflow, version)
        try:
            offset = alerts.offset_of(definition, definition.deadline(name), kind, key.split(":")[3])
        except KeyError:
            offset = None
        deadline = {"name": name, "title": title, "due_on": as_date(due_on), "source": source, "basis": basis,
                    "excused": excused}  # fmt: skip
        return alerts.context(
            (case_id, case_name or ""),
            deadline,
            definition.title,
            kind,
            offset,
            (recipient.name or "", recipient.role),
            london_date(as_moment(created)),
        )

    def _step_context(self, row: Any, recipient: Recipient) -> dict[str, Any]:
        """What a family message needs: what happened, what happens next and by when, who to contact."""
        case_id, instance_id, seq, case_name, caseworker = row[3], row[4], row[5], row[14], row[15]
        with self.store.unit() as unit:
            step = unit.fetch(
                "SELECT h.to_state, h.occurred_on, h.trigger, h.inputs, i.workflow, i.definition_version "
                "FROM history h JOIN workflow_instance i ON i.id = h.instance_id "
                "WHERE h.instance_id = :iid AND h.seq = :seq",
                {"iid": instance_id, "seq": seq},
            )
            if not step:
                raise NotFound(f"outbox message {row[0]}: its step (instance {instance_id}, entry {seq}) is missing")
            to_state, occurred_on, trigger, inputs, workflow, version = step[0]
            occurred = as_date(occurred_on)
            items = unit.step_deadlines(instance_id, seq, occurred)
        definition = self.catalogue.get(workflow, version)
        state = definition.states.get(to_state)
        member = self.directory.find(caseworker)
        contact = {
            "name": member.name if member else "the SEND team",
            "email": member.email if member else (caseworker or self.settings.notifications.reply_to or ""),
        }
        return {
            "case": {"id": case_id, "name": case_name or ""},
            "recipient": {"name": recipient.name or "", "role": recipient.role},
            "workflow": definition.title,
            "state": {"name": to_state, "description": " ".join((state.description if state else "").split())},
            "on": occurred,
            "trigger": trigger,
            "inputs": json.loads(inputs) if isinstance(inputs, str) else dict(inputs or {}),
            "council_deadlines": [d for d in items if d["party"] != "family"],
            "family_deadlines": [d for d in items if d["party"] == "family"],
            "contact": contact,
            # The day it is written: a date already past is never given as something still to do.
            "sent_on": london_date(self.clock.now()),
        }
