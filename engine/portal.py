"""The online service for families and the professionals who give advice: who may sign in, to what,
and what they may send. The web's portal pages (``engine.web.portal``) are a thin shell over this.

- **Signing in, without a password.** A caseworker invites a parent (or a young person) from the
  case's contacts; an advice request invites its adviser. The invitation holds a link, and anyone
  invited can ask for a new one on the sign-in page (the answer is the same whether or not the
  address is known). A link is single use and short-lived; only its hash is kept. Using it sends a
  6-digit code to the same person, which works once, for minutes, for a few tries.
- **Access is a role on a case**, and ends with the role: the caseworker ends it; the contact is
  changed; the rights pass from the parent to the young person at the end of compulsory school age
  (CFA 2014 s.83(2)), and a young person's access starts then; an adviser's lasts while an advice
  request of theirs is open. A person sees only the cases they have access to; anything else is
  "not found", the same as what does not exist.
- **What is sent is a record.** Each contribution (views for section A, comments on a draft and the
  school asked for, a meeting asked for, views for an annual review, advice) is kept append-only with
  the day it reached the council, which is the legal date, and a history entry on the case, in one
  transaction. Files are checked by their content and stored by hash (``engine.uploads``).
- **Advice.** Each request has its own due date, the workflow's advice limit counted from the day it
  was asked for (reg 8(1)). When the last request of an assessment is answered the service itself
  records that the advice has arrived, which meets the workflow's limit, in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .actor import Actor
from .calendar import add, end_of_compulsory_school_age
from .clock import LONDON, london_date
from .errors import InvalidInput, NotAuthorised, NotFound
from .inputs import free_text, masked_email
from .store.repository import Recipient, Unit, as_date, as_moment

if TYPE_CHECKING:
    from .app import App

FAMILY_ROLES = ("parent", "young_person")
ADVISER_ROLES = (
    "educational_psychologist",
    "school",
    "post16_institution",
    "early_years_setting",
    "health",
    "social_care",
    "other",
)
KINDS = ("views", "comments", "review", "advice")
ANSWER_LIMIT = 20_000  # characters in one answer: several pages of writing
MAX_FILES = 10  # files sent with one contribution

# Plain words for each contribution, for history, staff pages and the family's own list.
KIND_WORDS = {
    "views": "Views for section A of the plan",
    "comments": "Comments on the draft plan",
    "review": "Views for the annual review",
    "advice": "Advice and information",
}
FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "views": (
        ("about", "About the child or young person: what people like and admire about them"),
        ("important", "What is important to them now and in the future"),
        ("aspirations", "Their hopes and aspirations"),
        ("own_words", "In their own words"),
    ),
    "comments": (
        ("comments", "Comments on the draft"),
        ("school", "The school or college asked for"),
        ("meeting", "A meeting asked for"),
    ),
    "review": (
        ("going_well", "What is going well"),
        ("not_going_well", "What is not going well"),
        ("change", "What should change"),
    ),
    "advice": (("advice", "Advice and information"),),
}
DOCUMENT_WORDS = {
    "draft-plan": "Draft EHC plan",
    "final-plan": "EHC plan",
    "amendment-notice": "Changes we propose to the plan",
    "decision-letter": "Letter",
}
LETTER_WORDS = {
    "considering-assessment": "we are thinking about an assessment",
    "to-assess": "we will carry out an assessment",
    "not-to-assess": "our decision about an assessment",
    "to-reassess": "we will carry out a new assessment",
    "not-to-reassess": "our decision about a new assessment",
    "to-issue": "we will write an EHC plan",
    "not-to-issue": "our decision about an EHC plan",
    "review-amend": "after the annual review",
    "review-cease": "after the annual review",
    "review-keep": "after the annual review",
    "not-to-amend": "our decision about changing the plan",
    "to-cease": "our decision about ending the plan",
    "plan-ceased": "the plan has ended",
    "mediation-agreement": "what we agreed at mediation",
}
NOT_FOR_FAMILY = {"consultation-request"}  # to a school or college, not to the family
HISTORY_TRIGGER = {
    "views": "views_received_online",
    "comments": "comments_received_online",
    "review": "review_views_received_online",
    "advice": "advice_received_online",
}


# An advice request still waiting for its answer: not answered or withdrawn, on a workflow that is still
# open and still gathering advice (its advice limit open). An adviser's access lasts only while one does.
_ADVICE_OPEN = (
    "JOIN workflow_instance i ON i.id = a.instance_id AND i.closed_on IS NULL AND a.received_on IS NULL "
    "AND a.withdrawn_on IS NULL JOIN deadline d ON d.instance_id = a.instance_id AND d.name = a.deadline "
    "AND d.closed_on IS NULL AND d.status <> 'cancelled' "
)
DAILY_LIMIT = 30  # contributions one person may send about one case in a day: plenty, and no flood


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _public_id() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, 144 random bits: an id nobody can guess


@dataclass(frozen=True)
class Access:
    """A person's access to one case, and whether it still holds (``closed``: why not)."""

    id: int
    public_id: str
    person_id: int
    case_id: int
    contact_id: int
    role: str
    kind: str
    name: str  # the contact's name
    case_name: str
    closed: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(f"portal:{self.person_id}", self.role)


@dataclass
class CaseForFamily:
    access: Access
    workflows: list[dict[str, Any]] = field(default_factory=list)  # title, where (family words)
    council_deadlines: list[dict[str, Any]] = field(default_factory=list)
    family_deadlines: list[dict[str, Any]] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    caseworker: dict[str, str | None] = field(default_factory=dict)
    comment_period: dict[str, Any] | None = None  # open: its title, last day, instance
    review_open: bool = False
    holder: str = "parent"  # who holds the rights: parent, or young_person
    young_person_from: date | None = None


class Portal:
    def __init__(self, core: App):
        self.core = core
        self.clock = core.clock
        self.settings = core.settings

    # -- inviting -------------------------------------------------------------------------------

    def _staff(self, actor: Actor, what: str) -> None:
        if actor.role not in ("caseworker", "team_manager"):
            raise NotAuthorised(f"only a caseworker or team manager may {what}; you are {actor.role}")

    def _contact(self, unit: Unit, case_id: int, contact_id: int) -> dict[str, Any]:
        rows = unit.fetch(
            "SELECT t.id, t.role, t.name, t.email, c.name, c.date_of_birth FROM contact t "
            "JOIN ehc_case c ON c.id = t.case_id WHERE t.id = :t AND t.case_id = :c",
            {"t": contact_id, "c": case_id},
        )
        if not rows:
            raise NotFound(f"case {case_id} has no contact {contact_id}")
        r = rows[0]
        return {"id": r[0], "role": r[1], "name": r[2], "email": (r[3] or "").strip().lower(), "case_name": r[4],
                "born": as_date(r[5])}  # fmt: skip

    def rights_holder(self, born: date, today: date) -> str:
        """parent until the end of compulsory school age; the young person from the next day."""
        return "young_person" if today > end_of_compulsory_school_age(born) else "parent"

    def invite(self, case_id: int, contact_id: int, *, actor: Actor) -> str:
        """Give a family contact access to the case online, and email them a link. Returns the address,
        partly hidden, for the caseworker's confirmation."""
        self._staff(actor, "invite someone to the online service")
        now, today = self.clock.now(), self.clock.today()
        with self.core.store.unit() as unit:
            contact = self._contact(unit, case_id, contact_id)
            if contact["role"] not in FAMILY_ROLES:
                raise InvalidInput(
                    f"{contact['name']} is a {contact['role'].replace('_', ' ')}: professionals are invited by an "
                    "advice request; a family member (parent or young person) by this invitation"
                )
            if not contact["email"]:
                raise InvalidInput(f"{contact['name']} has no email address: add one to the contact first")
            holder = self.rights_holder(contact["born"], today)
            if contact["role"] != holder:
                last = end_of_compulsory_school_age(contact["born"])
                if holder == "young_person":
                    raise InvalidInput(
                        f"{contact['case_name']} has been over compulsory school age since "
                        f"{(last + timedelta(days=1)).isoformat()}: the rights are the young person's own "
                        "(CFA 2014 s.83(2)); invite them"
                    )
                raise InvalidInput(
                    f"{contact['case_name']} is of compulsory school age until {last.isoformat()}: until then the "
                    "parent holds the rights (CFA 2014 s.83(2)); invite the parent"
                )
            person = self._person(unit, contact["email"], now)
            self._access(unit, person, case_id, contact, "family", actor, now)
            self._history(unit, case_id, actor, "portal_invited", {"role": contact["role"]}, None, today)
            self._send_link(unit, person, contact, "invitation", now, access_word="family")
        return masked_email(contact["email"])

    def _person(self, unit: Unit, email: str, now: datetime, demo: bool = False) -> int:
        rows = unit.fetch("SELECT id FROM portal_person WHERE email = :e", {"e": email})
        if rows:
            return int(rows[0][0])
        return int(
            unit.fetch(
                "INSERT INTO portal_person (email, created_at, demo, code_tries) VALUES (:e, :at, :d, 0) RETURNING id",
                {"e": email, "at": now, "d": demo},
            )[0][0]
        )

    def _access(
        self, unit: Unit, person: int, case_id: int, contact: dict[str, Any], kind: str, actor: Actor, now: datetime
    ) -> int:
        rows = unit.fetch(
            "SELECT id FROM portal_access WHERE person_id = :p AND case_id = :c AND contact_id = :t AND kind = :k "
            "AND ended_at IS NULL",
            {"p": person, "c": case_id, "t": contact["id"], "k": kind},
        )
        if rows:
            return int(rows[0][0])
        return int(
            unit.fetch(
                "INSERT INTO portal_access (public_id, person_id, case_id, contact_id, role, kind, invited_by, "
                "invited_at) VALUES (:pid, :p, :c, :t, :r, :k, :by, :at) RETURNING id",
                {"pid": _public_id(), "p": person, "c": case_id, "t": contact["id"], "r": contact["role"],
                 "k": kind, "by": actor.id, "at": now},
            )[0][0]
        )  # fmt: skip

    def end_access(self, case_id: int, public_id: str, reason: str, *, actor: Actor) -> None:
        """End a person's access to the case (their sessions end with it: every request checks access)."""
        self._staff(actor, "end someone's access")
        reason = free_text(reason, "the reason", 1000).strip()
        if not reason:
            raise InvalidInput("say why the access is ending")
        with self.core.store.unit() as unit:
            changed = unit.execute(
                "UPDATE portal_access SET ended_at = :at, ended_by = :by, end_reason = :why "
                "WHERE public_id = :p AND case_id = :c AND ended_at IS NULL",
                {"at": self.clock.now(), "by": actor.id, "why": reason, "p": public_id, "c": case_id},
            )
            if not changed:
                raise NotFound(f"case {case_id} has no such access open")
            self._history(unit, case_id, actor, "portal_access_ended", {}, reason, self.clock.today())

    # -- advice requests --------------------------------------------------------------------------

    def _advice_instance(self, unit: Unit, case_id: int) -> tuple[int, str, Any]:
        """The case's open workflow with an open advice limit (engine.definition: ``online: advice``)."""
        for instance_id, _name, _state, closed in reversed(unit.instances(case_id)):
            if closed is not None:
                continue
            record = unit.load(instance_id)
            definition = self.core.catalogue.get(record.workflow, record.definition_version)
            for d in definition.deadlines:
                if d.online == "advice" and d.name in record.deadlines:
                    return instance_id, d.name, d
        raise InvalidInput(
            f"case {case_id} is not gathering advice: advice is asked for once the council has decided to assess"
        )

    def request_advice(self, case_id: int, contact_id: int, *, actor: Actor, requested_on: date | None = None) -> str:
        """Ask one adviser for advice: a request with its own due date; an adviser with an email address is
        invited to answer online, one without is written to and their answer recorded when it comes.
        Returns the request's due date, in words."""
        self._staff(actor, "ask for advice")
        now, today = self.clock.now(), self.clock.today()
        asked = requested_on or today
        if asked > today:
            raise InvalidInput("the day advice was asked for cannot be after today")
        with self.core.store.unit() as unit:
            contact = self._contact(unit, case_id, contact_id)
            if contact["role"] not in ADVISER_ROLES:
                raise InvalidInput(
                    f"{contact['name']} is a {contact['role'].replace('_', ' ')}: advice is asked of a professional "
                    f"({', '.join(r.replace('_', ' ') for r in ADVISER_ROLES)})"
                )
            instance_id, name, spec = self._advice_instance(unit, case_id)
            open_ = unit.fetch(
                "SELECT 1 FROM advice_request WHERE instance_id = :i AND contact_id = :t AND received_on IS NULL "
                "AND withdrawn_on IS NULL",
                {"i": instance_id, "t": contact_id},
            )
            if open_:
                raise InvalidInput(f"advice has already been asked of {contact['name']} and has not arrived yet")
            due = add(asked, spec.duration)
            access_id = None
            if contact["email"]:
                person = self._person(unit, contact["email"], now)
                access_id = self._access(unit, person, case_id, contact, "adviser", actor, now)
            unit.execute(
                "INSERT INTO advice_request (public_id, case_id, instance_id, contact_id, access_id, deadline, "
                "requested_on, due_on, requested_by) VALUES (:pid, :c, :i, :t, :a, :d, :on, :due, :by)",
                {"pid": _public_id(), "c": case_id, "i": instance_id, "t": contact_id, "a": access_id, "d": name,
                 "on": asked, "due": due, "by": actor.id},
            )  # fmt: skip
            inputs = {"adviser": contact["role"], "due_on": due.isoformat(), "online": bool(access_id)}
            self._history(unit, case_id, actor, "advice_requested", inputs, None, today, instance_id)
            if access_id is not None:
                self._send_link(unit, person, contact, "invitation", now, access_word="adviser", due=due)
        return due.isoformat()

    def record_advice_outside(self, case_id: int, public_id: str, *, actor: Actor, on: date | None = None) -> None:
        """Record advice that arrived by post or email (not online), on the day it arrived."""
        self._staff(actor, "record advice received")
        today = self.clock.today()
        received = on or today
        if received > today:
            raise InvalidInput("the day the advice arrived cannot be after today")
        with self.core.store.unit() as unit:
            request_id, instance_id = self._waiting_request(unit, case_id, public_id)
            unit.execute(
                "UPDATE advice_request SET received_on = :on, received_how = 'outside' WHERE id = :id",
                {"on": received, "id": request_id},
            )
            self._history(unit, case_id, actor, "advice_recorded", {"received_on": received.isoformat()}, None,
                          today, instance_id)  # fmt: skip
            self._all_in(unit, case_id, instance_id, actor.id, received)

    def withdraw_advice_request(self, case_id: int, public_id: str, *, actor: Actor) -> None:
        """No longer wait for an adviser's advice (asked of the wrong person, or no longer needed): their
        access to the case ends with it."""
        self._staff(actor, "withdraw an advice request")
        today = self.clock.today()
        with self.core.store.unit() as unit:
            request_id, instance_id = self._waiting_request(unit, case_id, public_id)
            unit.execute("UPDATE advice_request SET withdrawn_on = :on WHERE id = :id", {"on": today, "id": request_id})
            self._history(unit, case_id, actor, "advice_request_withdrawn", {}, None, today, instance_id)

    @staticmethod
    def _waiting_request(unit: Unit, case_id: int, public_id: str) -> tuple[int, int]:
        """(id, instance) of the case's advice request still waiting for its answer; NotFound otherwise."""
        rows = unit.fetch(
            "SELECT id, instance_id FROM advice_request WHERE public_id = :p AND case_id = :c "
            "AND received_on IS NULL AND withdrawn_on IS NULL",
            {"p": public_id, "c": case_id},
        )
        if not rows:
            raise NotFound(f"case {case_id} has no such advice request waiting")
        return int(rows[0][0]), int(rows[0][1])

    def _all_in(self, unit: Unit, case_id: int, instance_id: int, actor_id: str, on: date) -> None:
        """Once every advice request of the instance is answered, the advice has arrived: the service
        takes the workflow's step itself, which meets its advice limit on the day the last arrived."""
        waiting = unit.fetch(
            "SELECT 1 FROM advice_request WHERE instance_id = :i AND received_on IS NULL AND withdrawn_on IS NULL",
            {"i": instance_id},
        )
        if not waiting:
            self.core.cases.step_within(
                unit, case_id, instance_id, "record_advice_received", actor_id, on,
                "every adviser asked has answered",
            )  # fmt: skip

    def advice_requests(self, case_id: int) -> list[dict[str, Any]]:
        """The case's advice requests, for its caseworker: who, asked when, due when, arrived when."""
        with self.core.store.unit() as unit:
            rows = unit.fetch(
                "SELECT a.public_id, t.name, t.role, a.requested_on, a.due_on, a.received_on, a.received_how, "
                "a.withdrawn_on, a.access_id FROM advice_request a JOIN contact t ON t.id = a.contact_id "
                "WHERE a.case_id = :c ORDER BY a.id",
                {"c": case_id},
            )
        today = self.clock.today()
        out = []
        for r in rows:
            due, got = as_date(r[4]), as_date(r[5]) if r[5] else None
            out.append({"id": r[0], "name": r[1], "role": r[2], "requested_on": as_date(r[3]), "due_on": due,
                        "received_on": got, "how": r[6], "online": r[8] is not None,
                        "missing": got is None and r[7] is None, "late": (got or today) > due})  # fmt: skip
        return out

    # -- signing in -----------------------------------------------------------------------------

    def _send_link(
        self,
        unit: Unit,
        person: int,
        contact: dict[str, Any] | None,
        purpose: str,
        now: datetime,
        *,
        access_word: str = "",
        due: date | None = None,
    ) -> int:
        """A new single-use link for ``person``, queued to them; returns the message's id."""
        hours = self.settings.portal.invitation_days * 24 if purpose == "invitation" else 0
        expires = now + (timedelta(hours=hours) if hours else timedelta(minutes=self.settings.portal.link_minutes))
        token = self._new_link(unit, person, purpose, expires, now)
        template = {"family": "portal_invitation", "adviser": "portal_advice_request"}.get(access_word, "portal_link")
        rendered = self.core.messages.render(
            template,
            {
                "link": f"{self.settings.web.address()}/portal/link/{token}",
                "sign_in": f"{self.settings.web.address()}/portal",
                "expires": _when(expires),
                "name": contact["name"] if contact else None,
                "due_on": due,
            },
        )
        return self._queue_to(unit, person, template, rendered, f"portal:{purpose}:{person}:{_hash(token)[:16]}", now)

    @staticmethod
    def _new_link(unit: Unit, person: int, purpose: str, expires: datetime, now: datetime) -> str:
        """A new link's token; only its hash is kept."""
        token = secrets.token_urlsafe(32)
        unit.execute(
            "INSERT INTO portal_link (id, person_id, purpose, created_at, expires_at) VALUES (:h, :p, :w, :at, :x)",
            {"h": _hash(token), "p": person, "w": purpose, "at": now, "x": expires},
        )
        return token

    @staticmethod
    def _queue_to(unit: Unit, person: int, template: str, rendered: Any, key: str, now: datetime) -> int:
        """A sign-in message to ``person``'s address, queued; returns its id (the web sends it at once)."""
        email = unit.fetch("SELECT email FROM portal_person WHERE id = :p", {"p": person})[0][0]
        unit.queue_message(
            key=key, kind="sign_in", case_id=None, instance_id=None, deadline_id=None, alert_on=london_date(now),
            template=template, recipient=Recipient("portal", None, email), status="queued", reason=None,
            rendered=rendered, now=now,
        )  # fmt: skip
        return int(unit.fetch("SELECT id FROM outbox WHERE key = :k", {"k": key})[0][0])

    def ask_for_link(self, email: str) -> int | None:
        """A new sign-in link for whoever has access under this address (None, and nothing sent, when
        nobody has: the page says the same either way). Returns the queued message's id."""
        email = email.strip().lower()[:320]
        now = self.clock.now()
        with self.core.store.unit() as unit:
            rows = unit.fetch("SELECT id FROM portal_person WHERE email = :e", {"e": email})
            if not rows or not [a for a in self._accesses(unit, int(rows[0][0])) if a.closed is None]:
                return None
            recent = unit.fetch(
                "SELECT COUNT(*) FROM portal_link WHERE person_id = :p AND purpose = 'sign_in' AND created_at > :since",
                {"p": rows[0][0], "since": now - timedelta(hours=1)},
            )[0][0]
            if int(recent) >= 5:  # a mailbox is not flooded by someone typing the address again and again
                return None
            return self._send_link(unit, int(rows[0][0]), None, "sign_in", now)

    def use_link(self, token: str) -> int | None:
        """The person a link signs in (it is used up now), or None: unknown, used, or out of date."""
        now = self.clock.now()
        with self.core.store.unit() as unit:
            rows = unit.fetch(
                "SELECT person_id, expires_at FROM portal_link WHERE id = :h AND used_at IS NULL", {"h": _hash(token)}
            )
            if not rows or as_moment(rows[0][1]) <= now:
                return None
            if not unit.execute(
                "UPDATE portal_link SET used_at = :at WHERE id = :h AND used_at IS NULL", {"at": now, "h": _hash(token)}
            ):
                return None  # used by a request a moment ago
            return int(rows[0][0])

    def link_is_live(self, token: str) -> bool:
        with self.core.store.unit() as unit:
            rows = unit.fetch(
                "SELECT expires_at FROM portal_link WHERE id = :h AND used_at IS NULL", {"h": _hash(token)}
            )
        return bool(rows) and as_moment(rows[0][0]) > self.clock.now()

    def _code_digest(self, unit: Unit, person: int, code: str) -> str:
        return hmac.new(unit.secret, f"{person}:{code}".encode(), hashlib.sha256).hexdigest()

    def send_code(self, person: int) -> int:
        """A new 6-digit code for ``person``, emailed to them; returns the queued message's id."""
        now = self.clock.now()
        with self.core.store.unit() as unit:
            code = self._new_code(unit, person)
            rendered = self.core.messages.render(
                "portal_code", {"code": code, "minutes": self.settings.portal.code_minutes}
            )
            key = f"portal:code:{person}:{now.isoformat()}:{secrets.token_hex(4)}"
            return self._queue_to(unit, person, "portal_code", rendered, key, now)

    def _new_code(self, unit: Unit, person: int) -> str:
        """A new code for ``person``, replacing any before it: kept as a keyed hash, for minutes, tries reset."""
        code = f"{secrets.randbelow(10**6):06d}"
        unit.execute(
            "UPDATE portal_person SET code_hash = :h, code_expires = :x, code_tries = 0 WHERE id = :p",
            {"h": self._code_digest(unit, person, code),
             "x": self.clock.now() + timedelta(minutes=self.settings.portal.code_minutes), "p": person},
        )  # fmt: skip
        return code

    def check_code(self, person: int, code: str) -> bool | None:
        """True: the code is right (and used up). False: wrong, try again. None: no code to try any more
        (out of date, or too many tries): start again with a new link."""
        now = self.clock.now()
        code = "".join(ch for ch in code if ch.isdigit())[:6]
        with self.core.store.unit() as unit:
            unit.execute(
                "UPDATE portal_person SET code_tries = code_tries + 1 WHERE id = :p AND code_hash IS NOT NULL",
                {"p": person},
            )
            rows = unit.fetch(
                "SELECT code_hash, code_expires, code_tries FROM portal_person WHERE id = :p", {"p": person}
            )
            if not rows or rows[0][0] is None or rows[0][1] is None:
                return None
            stored, expires, tries = rows[0]
            if as_moment(expires) <= now or int(tries) > self.settings.portal.code_tries:
                unit.execute("UPDATE portal_person SET code_hash = NULL WHERE id = :p", {"p": person})
                return None
            if len(code) == 6 and hmac.compare_digest(stored, self._code_digest(unit, person, code)):
                unit.execute("UPDATE portal_person SET code_hash = NULL, code_tries = 0 WHERE id = :p", {"p": person})
                return True
            return False

    def demo_code(self, email: str) -> str:
        """A fresh code for a demo person ('ehcp demo' made them), printed for the demo; never a real person's."""
        email = email.strip().lower()
        with self.core.store.unit() as unit:
            rows = unit.fetch("SELECT id, demo FROM portal_person WHERE email = :e", {"e": email})
        if not rows or not rows[0][1]:
            raise InvalidInput(f"'{email}' is not a demo person: a real person's code is only ever emailed to them")
        with self.core.store.unit() as unit:
            return self._new_code(unit, int(rows[0][0]))

    def demo_link(self, case_id: int, contact_id: int, kind: str, *, actor: Actor) -> str:
        """For 'ehcp demo' only: access for a generated contact, marked demo, and a sign-in link to print
        (a real person's link is only ever emailed to them)."""
        now = self.clock.now()
        with self.core.store.unit() as unit:
            contact = self._contact(unit, case_id, contact_id)
            person = self._person(unit, contact["email"], now, demo=True)
            if not unit.fetch("SELECT demo FROM portal_person WHERE id = :p", {"p": person})[0][0]:
                raise InvalidInput("a demo link is for a person the demo made")
            self._access(unit, person, case_id, contact, kind, actor, now)
            token = self._new_link(
                unit, person, "demo", now + timedelta(days=self.settings.portal.invitation_days), now
            )
        return f"{self.settings.web.address()}/portal/link/{token}"

    # -- access ---------------------------------------------------------------------------------

    def _accesses(self, unit: Unit, person: int) -> list[Access]:
        rows = unit.fetch(
            "SELECT a.id, a.public_id, a.person_id, a.case_id, a.contact_id, a.role, a.kind, a.ended_at, t.email, "
            "t.role, t.name, c.name, c.date_of_birth, p.email FROM portal_access a JOIN portal_person p ON "
            "p.id = a.person_id JOIN ehc_case c ON c.id = a.case_id LEFT JOIN contact t ON t.id = a.contact_id "
            "WHERE a.person_id = :p ORDER BY a.id",
            {"p": person},
        )
        today = self.clock.today()
        out = []
        for r in rows:
            closed = None
            if r[7] is not None:
                closed = "ended"
            elif r[8] is None or (r[8] or "").strip().lower() != r[13] or r[9] != r[5]:
                closed = "contact changed"  # the case no longer names this person in this role
            elif r[6] == "family" and self.rights_holder(as_date(r[12]), today) != r[5]:
                closed = "rights passed" if r[5] == "parent" else "not yet"
            elif r[6] == "adviser" and not unit.fetch(
                "SELECT 1 FROM advice_request a " + _ADVICE_OPEN + "WHERE a.access_id = :a",
                {"a": r[0]},
            ):
                closed = "nothing waiting"
            out.append(Access(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[10] or "", r[11], closed))
        return out

    def accesses(self, person: int) -> list[Access]:
        with self.core.store.unit() as unit:
            return self._accesses(unit, person)

    def access(self, person: int, public_id: str, kind: str | None = None) -> Access:
        """The person's access named by ``public_id`` if it holds now; NotFound otherwise (another family's,
        an ended one, or none at all look the same)."""
        for a in self.accesses(person):
            if a.public_id == public_id and a.closed is None and (kind is None or a.kind == kind):
                return a
        raise NotFound("no such case")

    # -- what a family sees ---------------------------------------------------------------------

    def family_case(self, access: Access) -> CaseForFamily:
        today = self.clock.today()
        view = CaseForFamily(access)
        catalogue = self.core.catalogue
        with self.core.store.unit() as unit:
            case = unit.fetch("SELECT date_of_birth, caseworker FROM ehc_case WHERE id = :c", {"c": access.case_id})[0]
            born = as_date(case[0])
            view.holder = self.rights_holder(born, today)
            view.young_person_from = end_of_compulsory_school_age(born) + timedelta(days=1)
            instances = unit.fetch(
                "SELECT id, workflow, definition_version, state, closed_on FROM workflow_instance "
                "WHERE case_id = :c ORDER BY id",
                {"c": access.case_id},
            )
            deadlines = unit.fetch(
                "SELECT instance_id, name, title, due_on, party, source FROM deadline "
                "WHERE case_id = :c AND closed_on IS NULL AND status <> 'cancelled' ORDER BY due_on",
                {"c": access.case_id},
            )
            documents = unit.fetch(
                "SELECT sha256, kind, decision, created_at, plan_version FROM document "
                "WHERE case_id = :c AND status = 'ready' AND instance_id IS NOT NULL AND history_seq IS NOT NULL "
                "ORDER BY id DESC",
                {"c": access.case_id},
            )
            sent = unit.fetch(
                "SELECT n.id, n.kind, n.received_on, n.period, n.period_due_on, "
                "(SELECT COUNT(*) FROM portal_upload u WHERE u.contribution_id = n.id) FROM portal_contribution n "
                "WHERE n.access_id = :a ORDER BY n.id DESC",
                {"a": access.id},
            )
            own_files = unit.fetch(
                "SELECT contribution_id, public_id, original_name FROM portal_upload WHERE access_id = :a ORDER BY id",
                {"a": access.id},
            )
        files_of: dict[int, list[dict[str, str]]] = {}
        for contribution, public_id, original in own_files:
            files_of.setdefault(contribution, []).append({"id": public_id, "name": original})
        definitions = {}
        for iid, name, version, state, closed in instances:
            definition = catalogue.get(name, version)
            definitions[iid] = definition
            if closed is None:
                spec = definition.states.get(state)
                view.workflows.append({"title": definition.title, "where": spec.description if spec else ""})
                if name == "annual_review":
                    view.review_open = True
        for iid, name, title, due, party, source in deadlines:
            if iid not in definitions:
                continue
            try:
                limit = definitions[iid].deadline(name)
            except KeyError:
                continue
            row = {"title": title, "due_on": as_date(due), "source": source, "past": as_date(due) < today}
            if party == "council":
                view.council_deadlines.append(row)
            elif party == "family":
                view.family_deadlines.append(row)
                if limit.online == "comments" and view.comment_period is None:
                    view.comment_period = {**row, "instance": iid, "name": name}
        seen = set()
        from .documents import WORKFLOW_KINDS

        for sha, stored_kind, stored_decision, created, version in documents:
            # One vocabulary: a step's document is stored by its workflow name, one made on demand by kind.
            kind, decision = WORKFLOW_KINDS.get(stored_kind, (stored_kind, None))
            decision = stored_decision or decision
            if kind not in DOCUMENT_WORDS or decision in NOT_FOR_FAMILY or (kind, decision) in seen:
                continue  # the newest of each: earlier drafts and versions stay with the caseworker
            seen.add((kind, decision))
            words = DOCUMENT_WORDS[kind]
            if decision:
                words = f"{words}: {LETTER_WORDS.get(decision, decision.replace('-', ' '))}"
            view.documents.append(
                {"sha256": sha, "title": words, "on": as_moment(created).astimezone(LONDON).date(), "version": version}
            )
        view.sent = [
            {"kind": KIND_WORDS.get(r[1], r[1]), "received_on": as_date(r[2]),
             "late": bool(r[4]) and as_date(r[2]) > as_date(r[4]), "files": files_of.get(r[0], [])}
            for r in sent
        ]  # fmt: skip
        holder = self.core.directory.find(case[1]) if case[1] else None
        if holder is not None:
            view.caseworker = {"name": holder.name, "email": holder.email}
        else:
            view.caseworker = {"name": "The SEND team", "email": self.core.directory.team_inbox}
        return view

    def adviser_requests(self, person: int) -> list[dict[str, Any]]:
        """The advice requests waiting for this person, across the cases they are asked about."""
        out = []
        for a in self.accesses(person):
            if a.kind != "adviser" or a.closed is not None:
                continue
            with self.core.store.unit() as unit:
                rows = unit.fetch(
                    "SELECT a.public_id, a.requested_on, a.due_on, c.name, c.date_of_birth, t.role "
                    "FROM advice_request a "
                    "JOIN ehc_case c ON c.id = a.case_id JOIN contact t ON t.id = a.contact_id "
                    + _ADVICE_OPEN
                    + "WHERE a.access_id = :a ORDER BY a.id",
                    {"a": a.id},
                )
            for r in rows:
                out.append({"access": a, "id": r[0], "requested_on": as_date(r[1]), "due_on": as_date(r[2]),
                            "case_name": r[3], "born": as_date(r[4]), "case_id": a.case_id, "role": r[5]})  # fmt: skip
        return out

    def advice_request(self, person: int, public_id: str) -> dict[str, Any]:
        for r in self.adviser_requests(person):
            if r["id"] == public_id:
                return r
        raise NotFound("no such request")

    def document_for(self, access: Access, sha256: str) -> tuple[str, bytes]:
        """A document the family may download (the newest of each kind their page lists)."""
        from .documents import read_stored

        if not any(d["sha256"] == sha256 for d in self.family_case(access).documents):
            raise NotFound("no such document")
        with self.core.store.unit() as unit:
            rows = unit.fetch(
                "SELECT kind, path FROM document WHERE case_id = :c AND sha256 = :h AND status = 'ready'",
                {"c": access.case_id, "h": sha256},
            )
        if not rows:
            raise NotFound("no such document")
        return str(rows[0][0]), read_stored(rows[0][1], sha256)

    # -- how the family hears from the council ------------------------------------------------------

    def contact_preference(self, access: Access) -> dict[str, Any]:
        with self.core.store.unit() as unit:
            row = unit.fetch("SELECT prefers, address FROM contact WHERE id = :t", {"t": access.contact_id})[0]
        return {"prefers": row[0] or "email", "address": row[1] or ""}

    def set_contact_preference(self, access: Access, prefers: str, address: str) -> None:
        """Email or post, as the family chooses (letters need an address). Text messages need a transport
        that sends them, which this installation has not: they are not offered."""
        if access.kind != "family":
            raise NotAuthorised("not yours to change")
        if prefers not in ("email", "post"):
            raise InvalidInput("prefers: choose email or post")
        try:
            address = free_text(address or "", "the address", 500).strip()
        except ValueError as exc:
            raise InvalidInput(f"address: {exc}") from None
        with self.core.store.unit() as unit:
            if prefers == "post" and not address:
                stored = unit.fetch("SELECT address FROM contact WHERE id = :t", {"t": access.contact_id})[0][0]
                if not (stored or "").strip():
                    raise InvalidInput("address: enter the address for letters")
            unit.execute(
                "UPDATE contact SET prefers = :p, address = COALESCE(:a, address) WHERE id = :t",
                {"p": prefers, "a": address or None, "t": access.contact_id},
            )
            self._history(unit, access.case_id, access.actor, "contact_preference_changed", {"prefers": prefers},
                          f"chosen online by {access.name}", self.clock.today())  # fmt: skip

    # -- contributions ----------------------------------------------------------------------------

    def contribute(
        self,
        access: Access,
        kind: str,
        answers: dict[str, str],
        files: list[tuple[str, bytes]],
        *,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Keep what a family member or adviser sent, with the day it reached the council, its files and a
        history entry, in one transaction. Returns what the confirmation page says."""
        from . import uploads

        if kind not in KINDS:
            raise InvalidInput(f"unknown contribution '{kind}'")
        if (kind == "advice") != (access.kind == "adviser"):
            raise NotAuthorised("not yours to send")
        allowed = {name for name, _ in FIELDS[kind]}
        clean: dict[str, str] = {}
        for name, value in answers.items():
            if name not in allowed:
                continue
            try:
                text_ = free_text(value or "", "the answer", ANSWER_LIMIT).strip()
            except ValueError as exc:
                raise InvalidInput(f"{name}: {exc}") from None
            if text_:
                clean[name] = text_
        if len(files) > MAX_FILES:
            raise InvalidInput(f"files: send at most {MAX_FILES} files at a time")
        checked = []
        for filename, data in files:
            filename = "".join(ch for ch in filename if ch.isprintable()).strip()[-255:] or "file"
            try:
                found = uploads.check(data, filename, self.settings.uploads)
            except InvalidInput as exc:
                raise InvalidInput(f"files: {exc}") from None
            checked.append((filename, data, found))
        if not clean and not checked:
            raise InvalidInput("answers: write something, or choose a file to send")
        now, today = self.clock.now(), self.clock.today()
        case = self.family_case(access) if access.kind == "family" else None
        if kind == "comments" and (case is None or case.comment_period is None):
            raise InvalidInput("there is no draft plan waiting for your comments now")
        if kind == "review" and (case is None or not case.review_open):
            raise InvalidInput("there is no annual review under way now")
        with self.core.store.unit() as unit:
            sent_today = unit.fetch(
                "SELECT COUNT(*) FROM portal_contribution WHERE access_id = :a AND received_on = :on",
                {"a": access.id, "on": today},
            )[0][0]
        if int(sent_today) >= DAILY_LIMIT:
            raise InvalidInput(f"answers: you have sent {DAILY_LIMIT} times today; send more tomorrow")
        folder = self.settings.base_dir / self.settings.documents_dir
        stored = []
        for name, data, found in checked:  # by hash: the same bytes twice are one file
            sha, path = uploads.store(data, folder)
            stored.append((name, found, sha, path, len(data)))
        try:
            return self._keep(access, kind, clean, stored, case, request_id, now, today)
        except BaseException:
            written = [path for _n, _f, sha, path, _s in stored if not self._referenced(sha)]
            for path in written:  # a file no row refers to is not kept
                Path(path).unlink(missing_ok=True)
            raise

    def _referenced(self, sha: str) -> bool:
        with self.core.store.unit() as unit:
            return bool(unit.fetch("SELECT 1 FROM portal_upload WHERE sha256 = :h LIMIT 1", {"h": sha}))

    def _keep(
        self,
        access: Access,
        kind: str,
        clean: dict[str, str],
        stored: list[tuple[str, Any, str, str, int]],
        case: CaseForFamily | None,
        request_id: str | None,
        now: datetime,
        today: date,
    ) -> dict[str, Any]:
        """The contribution, its files' rows, its history entry and what follows, in one transaction."""
        with self.core.store.unit() as unit:
            period, due, instance_id = None, None, None
            if kind == "comments":
                if case is None or case.comment_period is None:
                    raise InvalidInput("there is no draft plan waiting for your comments now")
                period, due, instance_id = (
                    case.comment_period["name"],
                    case.comment_period["due_on"],
                    case.comment_period["instance"],
                )
            elif kind == "advice":
                rows = unit.fetch(
                    "SELECT a.id, a.instance_id, a.deadline, a.due_on FROM advice_request a "
                    + _ADVICE_OPEN
                    + "WHERE a.public_id = :r AND a.access_id = :a",
                    {"r": request_id or "", "a": access.id},
                )
                if not rows:
                    raise NotFound("no such request")
                request_row, instance_id, period, due = rows[0][0], rows[0][1], rows[0][2], as_date(rows[0][3])
            elif kind == "review":
                if case is None or not case.review_open:
                    raise InvalidInput("there is no annual review under way now")
            instance_id = instance_id or self._latest_open(
                unit, access.case_id, "annual_review" if kind == "review" else None
            )
            late = due is not None and today > due
            inputs: dict[str, Any] = {"files": [s[2] for s in stored], "late": late}
            if kind == "comments":
                inputs["school_asked_for"] = bool(clean.get("school"))
                inputs["meeting_asked_for"] = bool(clean.get("meeting"))
            seq = None
            if instance_id is not None:
                seq = self._history(unit, access.case_id, access.actor, HISTORY_TRIGGER[kind], inputs,
                                    f"sent online by {access.name}", today, instance_id)  # fmt: skip
            contribution = int(
                unit.fetch(
                    "INSERT INTO portal_contribution (case_id, access_id, instance_id, kind, received_on, received_at, "
                    "period, period_due_on, body, history_seq) VALUES (:c, :a, :i, :k, :on, :at, :p, :due, :b, :s) "
                    "RETURNING id",
                    {"c": access.case_id, "a": access.id, "i": instance_id, "k": kind, "on": today, "at": now,
                     "p": period, "due": due, "b": json.dumps(clean), "s": seq},
                )[0][0]
            )  # fmt: skip
            for name, found, sha, path, size in stored:
                unit.execute(
                    "INSERT INTO portal_upload (public_id, case_id, access_id, contribution_id, sha256, size, "
                    "media_type, "
                    "extension, original_name, path, scanned, received_at) VALUES (:pid, :c, :a, :n, :h, :s, :m, :e, "
                    ":o, :path, :sc, :at)",
                    {"pid": _public_id(), "c": access.case_id, "a": access.id, "n": contribution, "h": sha,
                     "s": size, "m": found.media_type, "e": found.extension, "o": name, "path": path,
                     "sc": self.settings.uploads.clamd is not None, "at": now},
                )  # fmt: skip
            if kind == "advice":
                unit.execute(
                    "UPDATE advice_request SET received_on = :on, received_how = 'online' WHERE id = :id",
                    {"on": today, "id": request_row},
                )
                assert instance_id is not None  # an advice request belongs to its workflow
                self._all_in(unit, access.case_id, instance_id, access.actor.id, today)
            self._tell_caseworker(unit, access, kind, contribution, now)
        return {"kind": KIND_WORDS[kind], "received_on": today, "late": late, "due_on": due, "files": len(stored)}

    def _latest_open(self, unit: Unit, case_id: int, workflow: str | None) -> int | None:
        for instance_id, name, _state, closed in reversed(unit.instances(case_id)):
            if closed is None and (workflow is None or name == workflow):
                return instance_id
        return None

    def _history(
        self,
        unit: Unit,
        case_id: int,
        actor: Actor,
        trigger: str,
        inputs: dict[str, Any],
        note: str | None,
        on: date,
        instance_id: int | None = None,
    ) -> int | None:
        """An entry in the case's history (on the given, or latest open, workflow): who, what, when."""
        instance_id = instance_id or self._latest_open(unit, case_id, None)
        if instance_id is None:
            return None
        record = unit.load(instance_id)
        return unit.append_history(
            instance_id=record.id, case_id=case_id, after=(record.version, record.history_hash),
            at=self.clock.now(), on=on, actor=actor.id, role=actor.role, recorded_by=actor.recorded_by,
            trigger=trigger, state=record.state, inputs=inputs, note=note,
        )  # fmt: skip

    def _tell_caseworker(self, unit: Unit, access: Access, kind: str, contribution: int, now: datetime) -> None:
        info = unit.case_info(access.case_id)
        from .recipients import resolve

        rendered = self.core.messages.render(
            "portal_received",
            {"case_id": access.case_id, "what": KIND_WORDS[kind], "role": access.role.replace("_", " "),
             "link": f"{self.settings.web.address()}/cases/{access.case_id}#online"},
        )  # fmt: skip
        for r in resolve(["caseworker"], info.caseworker, [], self.core.directory):
            unit.queue_message(
                key=f"portal:received:{contribution}:{r.token(unit.secret)}", kind="portal", case_id=access.case_id,
                instance_id=None, deadline_id=None, alert_on=london_date(now), template="portal_received",
                recipient=r, status=r.status, reason=r.reason, rendered=rendered, now=now,
            )  # fmt: skip

    # -- for staff ------------------------------------------------------------------------------

    def for_case(self, case_id: int) -> dict[str, Any]:
        """What the case's staff see of the online service: who has access, what was sent, and files."""
        with self.core.store.unit() as unit:
            accesses = unit.fetch(
                "SELECT a.public_id, a.role, a.kind, a.invited_by, a.invited_at, a.ended_at, t.name, a.person_id "
                "FROM portal_access a LEFT JOIN contact t ON t.id = a.contact_id WHERE a.case_id = :c ORDER BY a.id",
                {"c": case_id},
            )
            sent = unit.fetch(
                "SELECT n.id, n.kind, n.received_on, n.period_due_on, n.body, t.name, n.access_id "
                "FROM portal_contribution n "
                "JOIN portal_access a ON a.id = n.access_id LEFT JOIN contact t ON t.id = a.contact_id "
                "WHERE n.case_id = :c ORDER BY n.id DESC",
                {"c": case_id},
            )
            files = unit.fetch(
                "SELECT public_id, contribution_id, original_name, media_type, size FROM portal_upload "
                "WHERE case_id = :c ORDER BY id",
                {"c": case_id},
            )
            contacts = unit.fetch(
                "SELECT id, role, name, email FROM contact WHERE case_id = :c ORDER BY id", {"c": case_id}
            )
        by_contribution: dict[int, list[dict[str, Any]]] = {}
        for f in files:
            by_contribution.setdefault(f[1], []).append({"id": f[0], "name": f[2], "type": f[3], "size": f[4]})
        labels = {k: dict(v) for k, v in FIELDS.items()}
        return {
            "accesses": [
                {"id": r[0], "role": r[1], "kind": r[2], "invited_by": r[3], "invited_at": as_moment(r[4]),
                 "ended": r[5] is not None, "name": r[6]}
                for r in accesses
            ],
            "sent": [
                {"kind": KIND_WORDS.get(r[1], r[1]), "received_on": as_date(r[2]),
                 "late": bool(r[3]) and as_date(r[2]) > as_date(r[3]), "from": r[5],
                 "answers": [(labels.get(r[1], {}).get(k, k), v) for k, v in json.loads(r[4]).items()],
                 "files": by_contribution.get(r[0], [])}
                for r in sent
            ],
            "invitable": [{"id": c[0], "role": c[1], "name": c[2]} for c in contacts if c[1] in FAMILY_ROLES and c[3]],
            "advisers": [{"id": c[0], "role": c[1], "name": c[2], "email": bool(c[3])} for c in contacts
                         if c[1] in ADVISER_ROLES],
        }  # fmt: skip

    def upload(self, case_id: int, public_id: str, access: Access | None = None) -> tuple[str, bytes]:
        """A file sent online, for the case's staff (or the person who sent it): (extension, bytes)."""
        from . import uploads

        with self.core.store.unit() as unit:
            rows = unit.fetch(
                "SELECT extension, path, sha256, access_id FROM portal_upload WHERE public_id = :p AND case_id = :c",
                {"p": public_id, "c": case_id},
            )
        if not rows or (access is not None and rows[0][3] != access.id):
            raise NotFound("no such file")
        return str(rows[0][0]), uploads.read(rows[0][1], rows[0][2])


def _when(moment: datetime) -> str:
    return moment.astimezone(LONDON).strftime("%-d %B %Y at %-I:%M%p").replace("AM", "am").replace("PM", "pm")
