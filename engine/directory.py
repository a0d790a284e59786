"""Who is asking: the council's staff, from config.yaml, each with a role."""

from __future__ import annotations

from .actor import Actor
from .config import StaffMember
from .errors import NotAuthorised


class Directory:
    def __init__(self, staff: list[StaffMember], team_inbox: str | None = None):
        self.team_inbox = team_inbox  # the caseworker's messages of a case not yet allocated
        self._by_id = {s.id: s for s in staff}
        self._by_email = {s.email.strip().lower(): s for s in staff}

    def actor(self, user_id: str | None) -> Actor:
        """The Actor for a user id; anyone not listed as staff is refused."""
        if not user_id:
            raise NotAuthorised("say who you are: --by USER, EHCP_USER, or 'user' in config.yaml")
        member = self._by_id.get(user_id)
        if member is None:
            raise NotAuthorised(f"'{user_id}' is not a member of staff in config.yaml")
        return Actor(member.id, member.role)

    def member(self, user_id: str) -> StaffMember | None:
        return self._by_id.get(user_id)

    def find(self, who: str | None) -> StaffMember | None:
        """The member of staff a case names as its caseworker: a staff id, or an email address."""
        if not who:
            return None
        return self._by_id.get(who) or self._by_email.get(who.strip().lower())

    def digest_readers(self) -> list[StaffMember]:
        return [s for s in self._by_id.values() if s.digest]

    def with_role(self, role: str) -> list[StaffMember]:
        return [s for s in self._by_id.values() if s.role == role]
