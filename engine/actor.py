"""Who is asking, as the service has established it: a module of its own, so that checking who is
asking (``engine.directory``) does not load the workflow machine (``bench/startup.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """Who is asking, as the shell has proven it (``engine.identity`` for the command line; the web
    application's sign-in): the service layer takes one of these, never a name someone typed.

    ``recorded_by`` is the administrator who recorded a step on this person's behalf (``--by``): the
    step is checked against this person's role, and history keeps both.
    """

    id: str
    role: str
    recorded_by: str | None = None


def may_change_cases(actor: Actor, what: str) -> None:
    """Only the staff who do casework change a case: an administrator (unless recording on someone's
    behalf, when the Actor is that person) or an auditor cannot.

    Raises:
        NotAuthorised: ``actor`` is not a caseworker, team manager or head of service.
    """
    from .errors import NotAuthorised
    from .roles import CASEWORK_ROLES

    if actor.role not in CASEWORK_ROLES:
        raise NotAuthorised(f"an {actor.role.replace('_', ' ')} may not {what}; casework staff may")
