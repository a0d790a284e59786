"""Local sign-in for staff (councils without single sign-on, and the demo): a password hashed with
argon2, then a code from an authenticator app (TOTP, RFC 6238).

- Failed attempts in a row lock the account for a while; the count is kept by the database itself
  (one atomic update per failure), so attempts sent at once cannot get past it.
- An unknown name, a wrong password and a locked account get the same answer, after the same work,
  so the form tells no one which accounts exist.
- A code works once: the time step it belongs to is claimed by one atomic update.
- An administrator never sees or sets anyone's password: a reset sends the person a set-up link
  (single use, 24 hours), kept here as a hash, and ends their sessions.
- Sessions live on the server (``web_session``): the cookie holds a random token, whose hash names
  the row; signing out, a reset or going idle ends it there, whatever a copied cookie says.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, text

from ..clock import LONDON, Clock, london_date
from ..config import WebSettings
from ..directory import Directory
from ..errors import InvalidInput
from ..inputs import masked_email

if TYPE_CHECKING:
    from ..app import App

_HASHER = PasswordHasher()
# Checked against when the name is unknown or the account locked, so that every answer takes as long.
_DUMMY = _HASHER.hash(secrets.token_urlsafe(16))
UNUSABLE = "!"  # a password hash nothing matches: the account waits for its set-up link
MIN_PASSWORD = 12
SETUP_HOURS = 24


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Checked:
    staff_id: str | None  # None: refused


class Accounts:
    def __init__(self, engine: Engine, directory: Directory, clock: Clock, web: WebSettings):
        self.engine, self.directory, self.clock, self.web = engine, directory, clock, web

    # -- setting up --------------------------------------------------------------------------

    def set_password(self, staff_id: str, password: str, *, demo: bool = False, totp_secret: str | None = None) -> str:
        """Give a member of staff a password and a new TOTP secret (returned, for their app); their
        sessions end. Only the person themselves (the command line, a set-up link) or the demo."""
        if self.directory.member(staff_id) is None:
            raise InvalidInput(f"'{staff_id}' is not a member of staff in config.yaml")
        if len(password) < MIN_PASSWORD:
            raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
        secret = totp_secret or pyotp.random_base32()
        self._store(staff_id, _HASHER.hash(password), secret, demo=demo)
        return secret

    def _store(
        self, staff_id: str, password_hash: str, secret: str, *, demo: bool = False, setup: str | None = None
    ) -> None:
        """The account as given (and, for a reset, the hash of its set-up link's token), its sessions
        ended, in one transaction."""
        now = self.clock.now()
        row = {
            "id": staff_id,
            "h": password_hash,
            "s": secret,
            "demo": demo,
            "at": now,
            "setup": _digest(setup) if setup else None,
            "until": now + timedelta(hours=SETUP_HOURS) if setup else None,
        }
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM staff_account WHERE staff_id = :id"), row)
            conn.execute(
                text(
                    "INSERT INTO staff_account (staff_id, password_hash, totp_secret, demo, failed, last_code_step, "
                    "changed_at, setup_hash, setup_expires) VALUES (:id, :h, :s, :demo, 0, 0, :at, :setup, :until)"
                ),
                row,
            )
            conn.execute(text("UPDATE web_session SET ended_at = :at WHERE staff_id = :id AND ended_at IS NULL"), row)

    def send_setup(self, staff_id: str) -> str:
        """End the account's password and sessions, and make a set-up link's token (returned once,
        to be sent to the person's own address); only its hash is kept."""
        if self.directory.member(staff_id) is None:
            raise InvalidInput(f"'{staff_id}' is not a member of staff in config.yaml")
        token = secrets.token_urlsafe(32)
        self._store(staff_id, UNUSABLE, pyotp.random_base32(), setup=token)
        return token

    def setup_for(self, token: str) -> str | None:
        """The staff id a set-up link is for, while it is unused and in time."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT staff_id, setup_expires FROM staff_account WHERE setup_hash = :h"), {"h": _digest(token)}
            ).first()
        if row is None or not self._later(row[1], self.clock.now()):
            return None
        return str(row[0])

    def use_setup(self, token: str, password: str) -> tuple[str, str] | None:
        """Set the password a set-up link asks for, once: (staff id, new TOTP secret), or None."""
        if len(password) < MIN_PASSWORD:
            raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
        staff_id = self.setup_for(token)
        if staff_id is None:
            return None
        secret = pyotp.random_base32()
        with self.engine.begin() as conn:
            used = conn.execute(
                text(
                    "UPDATE staff_account SET password_hash = :p, totp_secret = :s, setup_hash = NULL, "
                    "setup_expires = NULL, failed = 0, locked_until = NULL, last_code_step = 0, changed_at = :at "
                    "WHERE setup_hash = :h"
                ),
                {"p": _HASHER.hash(password), "s": secret, "at": self.clock.now(), "h": _digest(token)},
            ).rowcount
        return (staff_id, secret) if used == 1 else None

    def exists(self, staff_id: str) -> bool:
        return self._row(staff_id) is not None

    def states(self) -> dict[str, dict[str, object]]:
        """Each local account: whether it is locked, or waiting for its set-up link."""
        now = self.clock.now()
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(text("SELECT * FROM staff_account")).mappings()]
        return {
            str(r["staff_id"]): {
                "locked": self._locked(r, now),
                "waiting": r["password_hash"] == UNUSABLE,
                "changed_at": r["changed_at"],
            }
            for r in rows
        }

    def unlock(self, staff_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE staff_account SET failed = 0, locked_until = NULL WHERE staff_id = :id"), {"id": staff_id}
            )

    def provisioning_uri(self, staff_id: str, secret: str, issuer: str) -> str:
        return pyotp.TOTP(secret).provisioning_uri(name=staff_id, issuer_name=issuer)

    def demo_code(self, staff_id: str) -> str:
        """The current code of a demo account (made by 'ehcp demo'); refused for any other."""
        row = self._row(staff_id)
        if row is None or not row["demo"]:
            raise InvalidInput(f"'{staff_id}' has no demo account: only demo accounts' codes are shown")
        return pyotp.TOTP(str(row["totp_secret"])).at(self.clock.now())

    # -- signing in --------------------------------------------------------------------------

    def _row(self, staff_id: str) -> dict[str, object] | None:
        with self.engine.connect() as conn:
            found = (
                conn.execute(text("SELECT * FROM staff_account WHERE staff_id = :id"), {"id": staff_id})
                .mappings()
                .first()
            )
        return dict(found) if found is not None else None

    @staticmethod
    def _later(value: object, now: datetime) -> bool:
        if value is None:
            return False
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if when.tzinfo is None:
            when = when.replace(tzinfo=now.tzinfo)
        return when > now

    def _locked(self, row: dict[str, object], now: datetime) -> bool:
        return self._later(row["locked_until"], now)

    def _failed(self, staff_id: str) -> None:
        """Count one more failure, in the database itself; the one that reaches the limit locks."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            failed = conn.execute(
                text("UPDATE staff_account SET failed = failed + 1 WHERE staff_id = :id RETURNING failed"),
                {"id": staff_id},
            ).scalar_one_or_none()
            if failed is not None and failed >= self.web.lockout_after:
                conn.execute(
                    text("UPDATE staff_account SET failed = 0, locked_until = :u WHERE staff_id = :id"),
                    {"u": now + timedelta(minutes=self.web.lockout_minutes), "id": staff_id},
                )

    def check_password(self, login: str, password: str) -> Checked:
        """The staff id whose password this is, or a refusal that says nothing about why."""
        member = self.directory.find(login.strip())
        row = self._row(member.id) if member is not None else None
        if row is None or self._locked(row, self.clock.now()) or row["password_hash"] == UNUSABLE:
            try:
                _HASHER.verify(_DUMMY, password)
            except VerificationError:
                pass
            return Checked(None)
        try:
            _HASHER.verify(str(row["password_hash"]), password)
        except (VerificationError, InvalidHashError):
            self._failed(str(row["staff_id"]))
            return Checked(None)
        return Checked(str(row["staff_id"]))

    def check_code(self, staff_id: str, code: str) -> Checked:
        """The second step: a code from the account's app, within a step either side, used once."""
        row = self._row(staff_id)
        now = self.clock.now()
        if row is None or self._locked(row, now):
            return Checked(None)
        totp = pyotp.TOTP(str(row["totp_secret"]))
        code = "".join(code.split())
        step = None
        for offset in (-1, 0, 1):
            at = now + timedelta(seconds=offset * totp.interval)
            if secrets.compare_digest(totp.at(at), code):
                step = totp.timecode(at)
        if step is None:
            self._failed(staff_id)
            return Checked(None)
        with self.engine.begin() as conn:  # the step is claimed once, whatever arrives at the same time
            claimed = conn.execute(
                text(
                    "UPDATE staff_account SET failed = 0, locked_until = NULL, last_code_step = :s "
                    "WHERE staff_id = :id AND last_code_step < :s"
                ),
                {"s": step, "id": staff_id},
            ).rowcount
        if claimed != 1:
            self._failed(staff_id)
            return Checked(None)
        return Checked(staff_id)

    # -- sessions ----------------------------------------------------------------------------

    def start_session(self, staff_id: str, how: str) -> str:
        """A new session's token, for the cookie; the server keeps its hash."""
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO web_session (id, staff_id, how, created_at, last_seen) "
                    "VALUES (:id, :s, :how, :at, :at)"
                ),
                {"id": _digest(token), "s": staff_id, "how": how, "at": now},
            )
        return token

    def session(self, token: str) -> str | None:
        """The staff id of a live session, which is seen now; None once it has ended or gone idle, or
        outlived the longest a session may last."""
        now = self.clock.now()
        idle = now - timedelta(minutes=self.web.idle_minutes)
        oldest = now - timedelta(hours=self.web.session_hours)
        with self.engine.begin() as conn:
            row = conn.execute(
                text("SELECT staff_id, last_seen, created_at FROM web_session WHERE id = :id AND ended_at IS NULL"),
                {"id": _digest(token)},
            ).first()
            if row is None:
                return None
            if not self._later(row[1], idle) or not self._later(row[2], oldest):
                conn.execute(
                    text("UPDATE web_session SET ended_at = :at WHERE id = :id"), {"at": now, "id": _digest(token)}
                )
                return None
            conn.execute(
                text("UPDATE web_session SET last_seen = :at WHERE id = :id"), {"at": now, "id": _digest(token)}
            )
        return str(row[0])

    def end_session(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE web_session SET ended_at = :at WHERE id = :id AND ended_at IS NULL"),
                {"at": self.clock.now(), "id": _digest(token)},
            )


def send_setup_link(core: App, staff_id: str) -> str:
    """Reset a member of staff's sign-in and queue, to their own address in config.yaml, a link to
    set it up again (sent with the next sweep, within minutes). Returns the address, partly hidden,
    for the administrator to see; the link itself is never shown to them."""
    from ..store.repository import Recipient

    member = core.directory.member(staff_id)
    if member is None:
        raise InvalidInput(f"'{staff_id}' is not a member of staff in config.yaml")
    accounts = Accounts(core.engine, core.directory, core.clock, core.settings.web)
    token = accounts.send_setup(staff_id)
    now = core.clock.now()
    expires = now + timedelta(hours=SETUP_HOURS)
    rendered = core.messages.render(
        "sign_in_setup",
        {
            "member": member,
            "link": f"{core.settings.web.address()}/sign-in/setup/{token}",
            "expires": expires.astimezone(LONDON)
            .strftime("%-d %B %Y at %-I:%M%p")
            .replace("AM", "am")
            .replace("PM", "pm"),
        },
    )
    with core.store.unit() as unit:
        unit.queue_message(
            key=f"sign-in-setup:{staff_id}:{now.isoformat()}",
            kind="account",
            case_id=None,
            instance_id=None,
            deadline_id=None,
            alert_on=london_date(now),
            template="sign_in_setup",
            recipient=Recipient(member.role, member.name, member.email),
            status="queued",
            reason=None,
            rendered=rendered,
            now=now,
        )
    return masked_email(member.email)
