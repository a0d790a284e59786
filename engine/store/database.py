"""Connecting to the database and keeping its schema at the newest migration."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from ..errors import ConfigError, EhcpError

MIGRATIONS = Path(__file__).parent / "migrations"


def connect(url: str, *, background_checkpoints: bool = False) -> Engine:
    """An Engine for ``url``; SQLite files get WAL, foreign keys and a busy timeout.

    ``background_checkpoints``: a long-running process that runs a ``Checkpointer`` beside its
    requests takes the copying of the write-ahead log back into the database file, and its sync,
    off the request path; its request connections then checkpoint only as a backstop, if the log
    has grown to ~400 MB because nothing else did.
    """
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(f"database_url: '{url}' is not a database URL") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(parsed)
    except Exception as exc:
        raise ConfigError(f"database_url: cannot use '{parsed.render_as_string()}': {exc}") from None
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_connection.cursor()
            # A new file gets 1 KiB pages (SQLite's default before 3.12): a step puts one page of
            # each table and index it writes into the log, and a smaller page is less to checksum
            # and copy there (about a tenth of a step). A file that exists keeps its page size.
            cur.execute("PRAGMA page_size=1024")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            # Checkpoint the write-ahead log every ~40 MB instead of ~4 MB: pages written by many
            # steps (index roots, the newest history page) are copied back once, not each time.
            page = cur.execute("PRAGMA page_size").fetchone()[0]
            cur.execute(f"PRAGMA wal_autocheckpoint={(400 if background_checkpoints else 40) * 2**20 // page}")
            cur.close()

    return engine


class Checkpointer:
    """Copies the SQLite write-ahead log back into the database file on a thread of its own.

    For a long-running process whose engine was made with ``background_checkpoints=True``: every
    ``interval`` seconds, two PASSIVE checkpoints (which never make a step wait) copy what the
    steps wrote, the second what they wrote during the first; then a FULL one copies the last few
    pages, holding the steps back for that short while only, so that the next step starts the log
    again from its beginning instead of growing it. Waits at most ``wait_ms`` for a writer or a
    reader and, if that is not enough, tries again at the next interval. Only for SQLite.
    """

    def __init__(self, engine: Engine, interval: float = 0.25, wait_ms: int = 50):
        self.engine = engine
        self.interval = interval
        self.wait_ms = wait_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpointer", daemon=True)

    def start(self) -> Checkpointer:
        if self.engine.dialect.name == "sqlite":
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()

    def _run(self) -> None:
        raw = self.engine.raw_connection()
        raw.detach()  # its own connection, with its own busy timeout: never handed to a request
        try:
            cur = raw.cursor()
            cur.execute(f"PRAGMA busy_timeout={self.wait_ms}")
            while not self._stop.wait(self.interval):
                self.checkpoint(cur)
        finally:
            raw.close()

    @staticmethod
    def checkpoint(cur: Any, passes: int = 2) -> tuple[int, int]:
        """(pages in the log, pages copied): PASSIVE passes, then a FULL one for what they left."""
        for _ in range(passes):
            busy, log, done = cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy:
                return log, done
        busy, log, done = cur.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
        return log, done


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (the newest by default)."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def ensure_schema(engine: Engine) -> None:
    """A new, empty database is created at the newest schema; an older one must be upgraded on purpose."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        if inspect(engine).get_table_names():
            raise EhcpError("the database has tables but no schema version; is it this system's database?")
        migrate(engine)
        return
    raise EhcpError(f"the database schema is at {current}, the code needs {head}: run 'ehcp db upgrade'")
