"""Local sign-in for staff (councils without single sign-on, and the demo): a password hashed with
argon2, then a code from an authenticator app (TOTP, RFC 6238). Failed attempts in a row lock the
account for a while; an unknown name and a wrong password get the same answer, after the same work,
so the form does not tell anyone which accounts exist. A code works once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, text

from ..clock import Clock
from ..config import WebSettings
from ..directory import Directory
from ..errors import InvalidInput

_HASHER = PasswordHasher()
# Checked against when the name is unknown, so that both answers take as long.
_DUMMY = _HASHER.hash(secrets.token_urlsafe(16))
MIN_PASSWORD = 12


@dataclass(frozen=True)
class Checked:
    staff_id: str | None  # None: refused
    locked: bool = False


class Accounts:
    def __init__(self, engine: Engine, directory: Directory, clock: Clock, web: WebSettings):
        self.engine, self.directory, self.clock, self.web = engine, directory, clock, web

    # -- setting up --------------------------------------------------------------------------

    def set_password(self, staff_id: str, password: str, *, demo: bool = False, totp_secret: str | None = None) -> str:
        """Give a member of staff a password and a new TOTP secret (returned, for their app)."""
        if self.directory.member(staff_id) is None:
            raise InvalidInput(f"'{staff_id}' is not a member of staff in config.yaml")
        if len(password) < MIN_PASSWORD:
            raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
        secret = totp_secret or pyotp.random_base32()
        row = {
            "id": staff_id,
            "h": _HASHER.hash(password),
            "s": secret,
            "demo": demo,
            "at": self.clock.now(),
        }
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM staff_account WHERE staff_id = :id"), row)
            conn.execute(
                text(
                    "INSERT INTO staff_account (staff_id, password_hash, totp_secret, demo, failed, last_code_step, "
                    "changed_at) VALUES (:id, :h, :s, :demo, 0, 0, :at)"
                ),
                row,
            )
        return secret

    def exists(self, staff_id: str) -> bool:
        return self._row(staff_id) is not None

    def states(self) -> dict[str, dict[str, object]]:
        """Each local account: whether it is locked, and until when."""
        now = self.clock.now()
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(text("SELECT * FROM staff_account")).mappings()]
        return {str(r["staff_id"]): {"locked": self._locked(r, now), "changed_at": r["changed_at"]} for r in rows}

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
            row = conn.execute(text("SELECT * FROM staff_account WHERE staff_id = :id"), {"id": staff_id}).mappings()
            found = row.first()
        return dict(found) if found is not None else None

    def _locked(self, row: dict[str, object], now: datetime) -> bool:
        until = row["locked_until"]
        if until is None:
            return False
        when = until if isinstance(until, datetime) else datetime.fromisoformat(str(until))
        if when.tzinfo is None:
            when = when.replace(tzinfo=now.tzinfo)
        return when > now

    def _failed(self, staff_id: str, failed: int) -> bool:
        """Count one more failure; True when that locks the account."""
        lock = failed + 1 >= self.web.lockout_after
        until = self.clock.now() + timedelta(minutes=self.web.lockout_minutes) if lock else None
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE staff_account SET failed = :f, locked_until = :u WHERE staff_id = :id"),
                {"f": 0 if lock else failed + 1, "u": until, "id": staff_id},
            )
        return lock

    def check_password(self, login: str, password: str) -> Checked:
        """The staff id whose password this is, or a refusal that says nothing about which part was wrong."""
        member = self.directory.find(login.strip())
        row = self._row(member.id) if member is not None else None
        if row is None:
            try:
                _HASHER.verify(_DUMMY, password)
            except VerificationError:
                pass
            return Checked(None)
        now = self.clock.now()
        if self._locked(row, now):
            return Checked(None, locked=True)
        try:
            _HASHER.verify(str(row["password_hash"]), password)
        except (VerificationError, InvalidHashError):
            return Checked(None, locked=self._failed(str(row["staff_id"]), int(str(row["failed"]))))
        return Checked(str(row["staff_id"]))

    def check_code(self, staff_id: str, code: str) -> Checked:
        """The second step: a code from the account's app, used once, within a step either side."""
        row = self._row(staff_id)
        if row is None:
            return Checked(None)
        now = self.clock.now()
        if self._locked(row, now):
            return Checked(None, locked=True)
        totp = pyotp.TOTP(str(row["totp_secret"]))
        code = "".join(code.split())
        step = None
        for offset in (-1, 0, 1):
            at = now + timedelta(seconds=offset * totp.interval)
            if secrets.compare_digest(totp.at(at), code):
                step = totp.timecode(at)
        if step is None or step <= int(str(row["last_code_step"])):
            return Checked(None, locked=self._failed(staff_id, int(str(row["failed"]))))
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE staff_account SET failed = 0, locked_until = NULL, last_code_step = :s WHERE staff_id = :id"
                ),
                {"s": step, "id": staff_id},
            )
        return Checked(staff_id)
