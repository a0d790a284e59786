"""Who may see which case, in one place: every page, form and API call of the web application asks
here. A case the person may not see is "not found" (its existence is not revealed); an action their
role does not allow is "forbidden".

- caseworker: the cases they hold, and their team's;
- team manager: their team's cases, and those not yet allocated;
- head of service and auditor: every case (the auditor changes nothing);
- administrator: staff and settings, no case content.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..actor import Actor
from ..directory import Directory
from ..roles import CASEWORK_ROLES

SEES_ALL = ("head_of_service", "auditor")


def team_of(directory: Directory, staff_id: str | None) -> str | None:
    member = directory.find(staff_id) if staff_id else None
    return member.team_name() if member is not None else None


def may_see(actor: Actor, caseworker: str | None, directory: Directory) -> bool:
    """Whether ``actor`` may see a case whose caseworker is ``caseworker`` (a staff id or email)."""
    if actor.role in SEES_ALL:
        return True
    if actor.role not in ("caseworker", "team_manager"):
        return False
    holder = directory.find(caseworker) if caseworker else None
    if holder is None:  # not allocated: the managers allocate it (one held by someone since removed
        return actor.role == "team_manager" and not caseworker  # from the list: the head of service)
    if holder.id == actor.id:
        return True
    return team_of(directory, holder.id) == team_of(directory, actor.id)


def holders_seen(actor: Actor, held_by: Iterable[str | None], directory: Directory) -> list[str | None] | None:
    """Of the values cases hold as their caseworker (``held_by``), those whose cases ``actor`` may see
    (``may_see`` decides each, so a list and a case page never disagree); None when they may see every
    case. A database is then asked for those cases alone."""
    if actor.role in SEES_ALL:
        return None
    return [who for who in held_by if may_see(actor, who, directory)]


def may_change(actor: Actor) -> bool:
    return actor.role in CASEWORK_ROLES
