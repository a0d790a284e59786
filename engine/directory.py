"""The council's staff, from config.yaml, each with a role: the Actor of a member of staff once the
shell has established who is asking (``engine.identity``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .actor import Actor
from .config import StaffMember
from .errors import NotAuthorised


class Directory:
    def __init__(self, staff: list[StaffMember], team_inbox: str | None = None):
        self.team_inbox = team_inbox  # the caseworker's messages of a case not yet allocated
        self._by_id = {s.id: s for s in staff}
        self._by_email = {s.email.strip().lower(): s for s in staff}

    def actor(self, staff_id: str) -> Actor:
        """The Actor of a member of staff whose identity the caller has already established; anyone
        not listed as staff is refused."""
        member = self._by_id.get(staff_id)
        if member is None:
            raise NotAuthorised(f"'{staff_id}' is not a member of staff in config.yaml")
        return Actor(member.id, member.role)

    def on_behalf(self, proven: Actor, staff_id: str) -> Actor:
        """``staff_id``'s Actor, for a step an administrator (``proven``) records on their behalf."""
        if staff_id == proven.id:
            return proven
        if proven.role != "administrator":
            raise NotAuthorised(
                f"--by is for an administrator recording a step on someone's behalf; you are {proven.id} "
                f"({proven.role.replace('_', ' ')})"
            )
        member = self._by_id.get(staff_id)
        if member is None:
            raise NotAuthorised(f"--by: '{staff_id}' is not a member of staff in config.yaml")
        return Actor(member.id, member.role, recorded_by=proven.id)

    def member(self, user_id: str) -> StaffMember | None:
        return self._by_id.get(user_id)

    def find(self, who: str | None) -> StaffMember | None:
        """The member of staff a case names as its caseworker: a staff id, or an email address."""
        if not who:
            return None
        return self._by_id.get(who) or self._by_email.get(who.strip().lower())

    def digest_readers(self) -> list[StaffMember]:
        return [s for s in self._by_id.values() if s.digest]

    def team_label(self, team: str) -> str:
        """How a team is shown: the name config.yaml gives it; for the team a manager leads by default
        (named by the manager's staff id), "<the manager's name>'s team"; for a caseworker with no
        team or manager, their name."""
        if any(s.team == team for s in self._by_id.values()):
            return team
        lead = self._by_id.get(team)
        if lead is None:
            return team
        return f"{lead.name}'s team" if lead.role == "team_manager" else lead.name

    def team_choices(self, teams: Iterable[str]) -> list[tuple[str, str]]:
        """(team, label) for a select, in the labels' order; two teams that would read alike (a team
        config.yaml names "Morgan's team" beside the team Morgan leads) each say which they are."""
        labels = {t: self.team_label(t) for t in set(teams)}
        times = Counter(labels.values())
        shown = {t: f"{label} ({t})" if times[label] > 1 else label for t, label in labels.items()}
        return sorted(shown.items(), key=lambda choice: (choice[1], choice[0]))

    def with_role(self, role: str) -> list[StaffMember]:
        return [s for s in self._by_id.values() if s.role == role]
