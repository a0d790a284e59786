"""Who a message goes to: a workflow file names roles; the case and config.yaml name the people.

- ``caseworker``: the case's caseworker (a staff id from config.yaml, or an email address), or the
  team inbox (``casework.team_inbox``) while the case has none;
- ``team_manager``: the caseworker's ``manager`` in config.yaml, or every team manager when the
  caseworker has none named;
- ``head_of_service``: every head of service in config.yaml;
- a contact role (``parent``, ``school``...): the case's contacts in that role. A contact with no
  email address gets a letter instead (the channel ``letter``).

A message nobody can receive is kept, as ``skipped``, with the reason, so a missing contact shows.
Where the regulations name the recipient (``if_missing: address`` in the workflow file: the health
body, social care, the school named in a plan), it is kept as ``to_address`` instead: held for the
caseworker, listed on the case, and queued as soon as a contact in one of its roles is added.
"""

from __future__ import annotations

from collections.abc import Sequence

from .directory import Directory
from .roles import CASEWORK_ROLES
from .store.repository import ContactRecord, Recipient

TO_ADDRESS = "to_address"
"""The status of a message the regulations require but the case has no contact for yet (or a letter
to a contact with no postal address)."""


def _contact(c: ContactRecord) -> Recipient:
    """A contact as a recipient: by email, or by post to their address (a letter is never queued
    without one: it waits, as to_address, for the caseworker to add it)."""
    if not c.by_post:
        return Recipient(c.role, c.name, c.email)
    if c.address and c.address.strip():
        return Recipient(c.role, c.name, None, address=c.address.strip())
    reason = f"a letter to {c.name} ({c.role}) needs a postal address: add one with ehcp case contact --address"
    return Recipient(c.role, c.name, None, TO_ADDRESS, reason)


def resolve(
    roles: Sequence[str],
    caseworker: str | None,
    contacts: Sequence[ContactRecord],
    directory: Directory,
    if_missing: str = "skip",
) -> list[Recipient]:
    found: list[Recipient] = []
    for role in roles:
        if role == "caseworker":
            if caseworker:
                member = directory.find(caseworker)
                found.append(Recipient(role, member.name if member else None, member.email if member else caseworker))
            elif directory.team_inbox:  # a case not yet allocated: the team's shared inbox
                found.append(Recipient(role, "SEND team", directory.team_inbox))
        elif role == "team_manager":
            member = directory.find(caseworker)
            manager = directory.member(member.manager) if member and member.manager else None
            people = [manager] if manager else directory.with_role(role)
            found += [Recipient(role, s.name, s.email) for s in people]
        elif role in CASEWORK_ROLES:
            found += [Recipient(role, s.name, s.email) for s in directory.with_role(role)]
        else:
            found += [_contact(c) for c in contacts if c.role == role]
    unique: dict[tuple[str | None, str | None], Recipient] = {}
    for r in found:
        unique.setdefault((r.email, r.name if not r.email else None), r)
    if not unique and roles:
        wanted = " or ".join(roles)
        if if_missing == "address":
            # The roles are kept (joined by '|') so that adding a contact in any of them sends it.
            reason = f"the law names this recipient and the case has no contact with the role {wanted}: add one"
            return [Recipient("|".join(roles), None, None, TO_ADDRESS, reason)]
        return [Recipient(roles[0], None, None, "skipped", f"no recipient with the role {wanted}")]
    return list(unique.values())
