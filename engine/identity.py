"""Who is using the command line: the operating-system account running it, mapped to a member of
staff in config.yaml (``accounts``), never a name someone types.

The account is the process's real user. When a council has staff run the command as the service's
own account through ``sudo`` (the database being readable by that account alone), the account is the
one ``sudo`` names (``SUDO_USER``), trusted only when the command runs as root or as the
``service_account`` config.yaml names: ``sudo`` sets that variable itself and clears the one a user
might set. ``--by`` names someone else only for an administrator, and history records both.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping

from .actor import Actor
from .config import Settings
from .directory import Directory
from .errors import NotAuthorised


def os_account(settings: Settings, environ: Mapping[str, str] | None = None, uid: int | None = None) -> str:
    """The operating-system account the command runs for."""
    env = os.environ if environ is None else environ
    real = os.getuid() if uid is None else uid
    try:
        account = pwd.getpwuid(real).pw_name
    except KeyError:
        raise NotAuthorised(f"the operating-system user {real} has no account name") from None
    via = env.get("SUDO_USER")
    if via and (real == 0 or (settings.service_account is not None and account == settings.service_account)):
        return via
    return account


def command_line_actor(
    settings: Settings,
    directory: Directory,
    by: str | None = None,
    environ: Mapping[str, str] | None = None,
    uid: int | None = None,
) -> Actor:
    """The member of staff the command acts for, proven by the account running it."""
    env = os.environ if environ is None else environ
    if env.get("EHCP_USER"):
        raise NotAuthorised(
            "EHCP_USER does not choose who acts: the command acts for your operating-system account, "
            "mapped to a member of staff under accounts: in config.yaml (docs/security.md)"
        )
    account = os_account(settings, env, uid)
    staff_id = settings.accounts.get(account) or settings.accounts.get("*")
    if staff_id is None:
        raise NotAuthorised(
            f"the operating-system account '{account}' is not mapped to a member of staff (accounts: in config.yaml)"
        )
    proven = directory.actor(staff_id)
    return directory.on_behalf(proven, by) if by else proven
