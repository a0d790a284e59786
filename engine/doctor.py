"""Checking an installation for what would expose children's data: files others can read, secrets
written into files git keeps, logins over plain text. ``ehcp doctor`` prints the findings.

Every file the command line creates is private to the service's account (``PRIVATE_UMASK``:
files 0600, folders 0700, whatever the account's own umask); this looks for the ones that are not
(made before, copied in, or made by another program).
"""

from __future__ import annotations

import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .config import URL_PASSWORD, Settings

PRIVATE_UMASK = 0o077
_SECRET_KEY = re.compile(r"^\s*(password|api_key|secret|token)\s*:\s*(?!null\b|~|$|''|\"\")\S", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    severity: str  # "problem" or "warning"
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.what}"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _private(path: Path, what: str) -> list[Finding]:
    """The file or folder, and what is inside it, readable by the service's account alone."""
    found: list[Finding] = []
    if not path.exists():
        return found
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    shared = [p for p in paths if _mode(p) & 0o077]
    if shared:
        example = shared[0]
        found.append(
            Finding(
                "problem",
                str(example),
                f"{what} can be read by other accounts (mode {_mode(example):o}; {len(shared)} such path(s)): "
                f"chmod -R go-rwx {path}",
            )
        )
    return found


def _tracked_secrets(config_file: Path | None) -> list[Finding]:
    """A password or API key written in a configuration file that git keeps."""
    if config_file is None or not config_file.exists():
        return []
    found = []
    for number, line in enumerate(config_file.read_text(encoding="utf-8").splitlines(), start=1):
        if _SECRET_KEY.match(line) or URL_PASSWORD.search(line):
            tracked = _tracked_by_git(config_file)
            severity = "problem" if tracked else "warning"
            where = "a file git keeps" if tracked else "a file"
            found.append(
                Finding(
                    severity,
                    f"{config_file}:{number}",
                    f"a secret is written in {where}; put it in the environment (EHCP_SMTP_PASSWORD, "
                    "EHCP_NOTIFY_API_KEY, EHCP_DATABASE_URL) instead",
                )
            )
    return found


def _tracked_by_git(path: Path) -> bool:
    try:
        done = subprocess.run(
            ["git", "ls-files", "--error-unmatch", path.name],
            cwd=path.parent,
            capture_output=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def check(settings: Settings, config_file: Path | None) -> list[Finding]:
    """Every finding about this installation, problems first."""
    found: list[Finding] = []
    url = settings.database()
    if url.startswith("sqlite:///"):
        database = Path(url.removeprefix("sqlite:///"))
        found += _private(database, "the database (every child's record)")
        for suffix in ("-wal", "-shm"):
            found += _private(database.with_name(database.name + suffix), "the database's log")
    documents = Path(settings.documents_dir)
    found += _private(documents if documents.is_absolute() else settings.base_dir / documents, "the documents")
    found += _private(settings.outbox_path(), "the outbox (messages and letters)")
    smtp = settings.notifications.smtp
    if settings.notifications.transport == "smtp" and smtp.username and smtp.tls == "none":
        found.append(
            Finding("problem", "notifications.smtp", "a login over plain text (tls: none): use starttls or tls")
        )
    found += _tracked_secrets(config_file)
    found += _identity(settings, config_file)
    if url.startswith("postgresql"):
        found += _database_rights(url)
    found += _guards(url)
    return sorted(found, key=lambda f: f.severity != "problem")


def _identity(settings: Settings, config_file: Path | None) -> list[Finding]:
    """Who the command line acts for comes from config.yaml: it must map accounts one by one, and no
    one but the service's account may change it."""
    found: list[Finding] = []
    where = str(config_file) if config_file is not None else "config.yaml"
    if "*" in settings.accounts:
        found.append(
            Finding(
                "problem",
                f"{where}: accounts",
                f"'*' lets every operating-system account act as {settings.accounts['*']}: for a demo only; "
                "map each member of staff's account instead",
            )
        )
    if config_file is not None and config_file.exists() and _mode(config_file) & 0o022:
        found.append(
            Finding(
                "problem",
                where,
                f"other accounts can change the configuration, and so who they act as (mode {_mode(config_file):o}): "
                f"chmod go-w {config_file}",
            )
        )
    return found


def _database_rights(url: str) -> list[Finding]:
    """On PostgreSQL the service's login should read and write rows only: a login that owns the
    tables (or a superuser) could disable the triggers that keep history append-only."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            superuser, owner, me, member = conn.execute(
                text(
                    "SELECT r.rolsuper, t.tableowner, current_user, "
                    "t.tableowner IS NOT NULL AND pg_has_role(current_user, t.tableowner, 'MEMBER') FROM pg_roles r "
                    "LEFT JOIN pg_tables t ON t.tablename = 'history' AND t.schemaname = current_schema() "
                    "WHERE r.rolname = current_user"
                )
            ).one()
    except SQLAlchemyError as exc:
        return [Finding("warning", "database_url", f"could not check the login's rights ({type(exc).__name__})")]
    finally:
        engine.dispose()
    if superuser or owner == me or member:
        why = (
            "is a superuser"
            if superuser
            else "owns the tables"
            if owner == me
            else f"may act as {owner}, who owns the tables"
        )
        return [
            Finding(
                "problem",
                "database_url",
                f"the service's login {me} {why}: it could disable the triggers that keep history append-only; "
                "run migrations as the owner (database_owner_url) and the service as a login that reads and "
                "writes rows only (docs/security.md)",
            )
        ]
    return []


def _guards(url: str) -> list[Finding]:
    """The triggers that keep history, plan edits, issued plans and the audit log append-only: a
    database restored from an altered copy, or changed by its owner, may lack them."""
    from sqlalchemy.exc import SQLAlchemyError

    from .store.database import connect, missing_guards, sqlite_file

    file = sqlite_file(url)
    if file is not None and not file.exists():
        return []
    engine = connect(url)
    try:
        missing = missing_guards(engine)
    except SQLAlchemyError as exc:
        return [Finding("warning", "database_url", f"could not check the database's guards ({type(exc).__name__})")]
    finally:
        engine.dispose()
    if not missing:
        return []
    return [
        Finding(
            "problem",
            "database",
            f"the guards that keep the record append-only are missing or disabled: {', '.join(missing)}; "
            "restore an earlier backup, or ask for the database to be checked",
        )
    ]
