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
from pathlib import Path

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
    trusted_configuration(settings, uid)
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


def trusted_configuration(settings: Settings, uid: int | None = None) -> None:
    """The configuration file says who is who, and with what role: it must be the running account's
    own (or root's) and writable by it alone, so that no one can name a file of their own
    (``--config``, ``EHCP_CONFIG``) to the service's account and act as someone else.

    Raises:
        NotAuthorised: the file belongs to another account, or others may change it.
    """
    file = settings.config_file
    if file is None or not file.exists():
        return
    info = file.stat()
    real = os.getuid() if uid is None else uid
    if info.st_uid not in (0, real) or info.st_mode & 0o022:
        raise NotAuthorised(
            f"{file}: the configuration says who may do what, so it must belong to the account running the "
            f"command (or root) and be writable by it alone (it is mode {info.st_mode & 0o777:o}, owner uid "
            f"{info.st_uid})"
        )


def _owner_of_data(settings: Settings) -> int | None:
    """The owner of a SQLite database (or, before it is made, of the nearest folder it will be in)."""
    from .store.database import sqlite_file

    file = sqlite_file(settings.database())
    if file is None:
        return None
    path: Path = file
    while not path.exists() and path != path.parent:
        path = path.parent
    return path.stat().st_uid


def operator(
    settings: Settings,
    directory: Directory,
    what: str,
    environ: Mapping[str, str] | None = None,
    uid: int | None = None,
) -> str:
    """Who may do ``what`` to the whole installation (the sweep, backups and restores, the schema):
    the service's own account (``service_account``, root, or the account owning the SQLite file)
    running the command itself, or a member of staff with the administrator role. Returns who, for
    the record.

    Raises:
        NotAuthorised: anyone else, named with their role.
    """
    env = os.environ if environ is None else environ
    trusted_configuration(settings, uid)
    real = os.getuid() if uid is None else uid
    account = pwd.getpwuid(real).pw_name
    through_sudo = bool(env.get("SUDO_USER")) and (real == 0 or account == settings.service_account)
    if not through_sudo and (real == 0 or account == settings.service_account or _owner_of_data(settings) == real):
        return account
    actor = command_line_actor(settings, directory, environ=env, uid=uid)
    if actor.role == "administrator" and actor.recorded_by is None:
        return actor.id
    raise NotAuthorised(
        f"{what} is for the service's own account or an administrator; you are {actor.id} "
        f"({actor.role.replace('_', ' ')})"
    )
