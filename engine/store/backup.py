"""Backing up and restoring the database, and refusing a downgrade that would drop a council's data.

- SQLite: the standard library's online backup (a consistent copy while the service runs), written
  to a file only the service's account can read; a restore copies it back the same way.
- PostgreSQL: ``pg_dump --format=custom`` and ``pg_restore --clean``, the server's own tools, with
  the password passed in the environment, never on a command line.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from ..errors import DatabaseError, InvalidInput
from .database import connect, missing_guards, missing_guards_in, parse, sqlite_file


def backup(url: str, out: Path, *, force: bool = False) -> Path:
    """A copy of the whole database at ``out`` (mode 0600); refuses to write over a file unless ``force``."""
    if out.exists() and not force:
        raise InvalidInput(f"--out: {out} exists; choose another name, or add --force to write over it")
    out.parent.mkdir(parents=True, exist_ok=True)
    # A new file, ours and 0600 from its first byte: never one someone else made (and may read).
    out.unlink(missing_ok=True)
    os.close(os.open(out, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    file = sqlite_file(url)
    if file is not None:
        if not file.exists():
            raise DatabaseError(str(file), f"no database at {file}")
        _sqlite_copy(file, out)
    else:
        _postgres("pg_dump", url, ["--format=custom", "--no-owner", f"--file={out}"])
    out.chmod(0o600)
    return out


def restore(url: str, source: Path) -> None:
    """The database as ``source`` holds it (what ``backup`` wrote); the current data is replaced."""
    if not source.exists():
        raise InvalidInput(f"{source}: no such backup")
    file = sqlite_file(url)
    if file is not None:
        try:
            check = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
            check.execute("SELECT version_num FROM alembic_version").fetchone()
            names = {r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
            check.close()
        except sqlite3.DatabaseError:
            raise InvalidInput(f"{source}: not a backup of this service's database") from None
        missing = missing_guards_in(names, "sqlite")
        if missing:
            raise InvalidInput(
                f"{source}: its database lacks the guards that keep the record append-only ({', '.join(missing)}): "
                "it has been altered since 'ehcp backup' wrote it; nothing was restored"
            )
        file.parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(source, file)
        file.chmod(0o600)
    else:
        _postgres("pg_restore", url, ["--clean", "--if-exists", "--no-owner", str(source)])
        engine = connect(url)
        try:
            missing = missing_guards(engine)
        finally:
            engine.dispose()
        if missing:
            raise DatabaseError(
                url,
                f"restored, but the backup lacked the guards that keep the record append-only ({', '.join(missing)}): "
                "it was altered after 'ehcp backup' wrote it; restore an earlier backup",
            )


def _sqlite_copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(str(source))
    dst = sqlite3.connect(str(target))
    try:
        with dst:
            src.backup(dst)
    finally:
        dst.close()
        src.close()


def _postgres(tool: str, url: str, args: list[str]) -> None:
    parsed = parse(url)
    program = shutil.which(tool) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))), None)
    if program is None:
        raise DatabaseError(_hidden(url), f"{tool} is not installed (it comes with PostgreSQL's client tools)")
    env = {**os.environ, "PGPASSWORD": parsed.password or ""}
    target = [
        f"--host={parsed.host or 'localhost'}",
        f"--port={parsed.port or 5432}",
        f"--username={parsed.username or 'postgres'}",
        f"--dbname={parsed.database}",
    ]
    done = subprocess.run([str(program), *target, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise DatabaseError(_hidden(url), f"{tool}: {reason}")


def _hidden(url: str) -> str:
    return parse(url).render_as_string(hide_password=True)
