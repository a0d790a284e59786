"""Connecting to the database and keeping its schema at the newest migration.

A database is made only on purpose (``ehcp db init``, or ``App(create=True)`` in code); everything
else opens one that exists and is at the code's schema, and says in one line what to do if not.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import DatabaseError

# SQLAlchemy is imported where it is used: a command that reads a SQLite database through
# ``open_sqlite`` never loads it (~0.15 s; bench/startup.py).
if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Engine
    from sqlalchemy.engine import URL

MIGRATIONS = Path(__file__).parent / "migrations"
URL_FORMS = "sqlite:///path/to/file.sqlite or postgresql+psycopg://user@host/db"


def shown(url: str | URL) -> str:
    """``url`` as it may be printed or logged: any password replaced by ***."""
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^/:@]*:)[^@]*@", r"\1***@", url)


def parse(url: str) -> URL:
    """The URL, or a DatabaseError naming it (password hidden) and the forms that work."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError:
        raise DatabaseError(
            shown(url), f"database_url: '{shown(url)}' is not a database URL; write {URL_FORMS}"
        ) from None


def where(url: URL) -> str:
    """How a message names the database: a SQLite file by its path, another by its URL (password hidden)."""
    file = sqlite_file(url)
    return str(file) if file is not None else shown(url)


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    parsed = parse(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None


def connect(url: str, *, background_checkpoints: bool = False) -> Engine:
    """An Engine for ``url``; SQLite files get WAL, foreign keys and a busy timeout.

    Nothing is checked or made here (SQLite makes a missing file at the first connection):
    ``open_database`` and ``initialise`` are the ways in that say what is wrong.

    ``background_checkpoints``: a long-running process that runs a ``Checkpointer`` beside its
    requests takes the copying of the write-ahead log back into the database file, and its sync,
    off the request path; its request connections then checkpoint only as a backstop, if the log
    has grown to ~400 MB because nothing else did.
    """
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    parsed = parse(url)
    try:
        engine = create_engine(parsed)
    except NoSuchModuleError:
        raise DatabaseError(
            shown(parsed),
            f"database_url: '{shown(parsed)}': no database driver '{parsed.drivername}'; write {URL_FORMS}",
        ) from None
    except ImportError as exc:
        raise DatabaseError(
            shown(parsed),
            f"database_url: '{shown(parsed)}' needs the Python package '{exc.name}', which is not installed",
        ) from None
    except ArgumentError as exc:
        raise DatabaseError(shown(parsed), f"database_url: cannot use '{shown(parsed)}': {exc}") from None
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

    A batch writer (the sweep) holds it off while it works (``held_off``): copying back pages that
    the next batch writes again, and holding the writer back each time, made a sweep three times
    slower. The log then grows by what the batch wrote (``wal_autocheckpoint`` bounds it), and is
    copied back at the next interval after.
    """

    _running: ClassVar[dict[int, Checkpointer]] = {}  # by the engine's id: the one running for it

    def __init__(self, engine: Engine, interval: float = 0.25, wait_ms: int = 50):
        self.engine = engine
        self.interval = interval
        self.wait_ms = wait_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpointer", daemon=True)
        self._holds = 0
        self._lock = threading.Lock()
        self.checkpoints = 0  # made so far

    def start(self) -> Checkpointer:
        if self.engine.dialect.name == "sqlite":
            Checkpointer._running[id(self.engine)] = self
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
        if Checkpointer._running.get(id(self.engine)) is self:
            del Checkpointer._running[id(self.engine)]

    @classmethod
    @contextmanager
    def held_off(cls, engine: Engine) -> Iterator[None]:
        """No checkpoint starts on ``engine`` while this is held (a no-op where none runs)."""
        running = cls._running.get(id(engine))
        if running is None:
            yield
            return
        with running._lock:
            running._holds += 1
        try:
            yield
        finally:
            with running._lock:
                running._holds -= 1

    def _run(self) -> None:
        raw = self.engine.raw_connection()
        raw.detach()  # its own connection, with its own busy timeout: never handed to a request
        try:
            cur = raw.cursor()
            cur.execute(f"PRAGMA busy_timeout={self.wait_ms}")
            while not self._stop.wait(self.interval):
                if not self._holds:
                    self.checkpoint(cur)
                    self.checkpoints += 1
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
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    """The newest migration, as Alembic reads the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


_FIELD = re.compile(r"""^(revision|down_revision)\s*(?::[^=]+)?=\s*["']?(\w+)["']?""", re.MULTILINE)


def _migrations() -> tuple[set[str], str | None]:
    """Every revision in migrations/versions and the one head, read from the files' ``revision =`` and
    ``down_revision =`` lines: a command that only opens the database need not import Alembic (~0.1 s).
    Several heads (or none) fall back to Alembic; tests/test_migrations.py checks that both agree."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        fields = dict(_FIELD.findall(script.read_text(encoding="utf-8")))
        if "revision" in fields:
            revisions.add(fields["revision"])
        if fields.get("down_revision", "None") != "None":
            parents.add(fields["down_revision"])
    heads = revisions - parents
    return revisions, next(iter(heads)) if len(heads) == 1 else head_revision()


def code_revision() -> str | None:
    """The schema this code needs: the newest migration."""
    return _migrations()[1]


def current_revision(engine: Engine) -> str | None:
    """The database's schema version (None for a database Alembic has never migrated)."""
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    return ",".join(versions) or None


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (the newest by default)."""
    from alembic import command

    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


KEPT_DATA = (
    "ehc_case",
    "history",
    "plan_version",
    "plan_edit",
    "document",
    "outbox",
    "workflow_definition",
    "contact",
    "staff_account",
    "audit_event",
    "web_session",
)


def downgrade(engine: Engine, revision: str, *, allow_data_loss: bool = False) -> None:
    """Take the schema back to ``revision``. A downgrade drops the tables and columns later
    migrations added, with their data (0004 drops every plan version), so it is refused while the
    database holds a council's data, unless ``allow_data_loss`` (after ``ehcp backup``)."""
    from alembic import command
    from sqlalchemy import inspect, text

    if not allow_data_loss:
        present = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            rows = {
                t: int(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()) for t in KEPT_DATA if t in present
            }
        held = [f"{n} row(s) of {t}" for t, n in rows.items() if n]
        if held:
            raise DatabaseError(
                engine.url.render_as_string(hide_password=True),
                f"a downgrade to {revision} can drop data, and this database holds {', '.join(held)}: "
                "take a backup (ehcp backup), then repeat with --allow-data-loss",
            )

    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _has_tables(engine: Engine) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(engine).get_table_names())


def _foreign(url: str, at: str) -> DatabaseError:
    problem = "has tables but no schema version; is it this system's database?"
    return DatabaseError(url, f"the database at {at} {problem}")


def ensure_schema(engine: Engine) -> None:
    """A new, empty database is created at the newest schema; an older one must be upgraded on purpose."""
    current = current_revision(engine)
    if current is None:
        if _has_tables(engine):
            raise _foreign(shown(engine.url), where(engine.url))
        migrate(engine)
        return
    check_schema(engine, current)


def check_schema(engine: Engine, current: str | None = None) -> None:
    """Raise a DatabaseError, saying which command fixes it, unless the schema is the code's."""
    current = current or current_revision(engine)
    judge_schema(current, lambda: _has_tables(engine), shown(engine.url), where(engine.url))


def judge_schema(current: str | None, has_tables: Callable[[], bool], url: str, at: str) -> None:
    """Raise a DatabaseError, saying which command fixes it, unless ``current`` is the code's schema.

    ``url``: the database as an error carries it (password hidden); ``at``: as its message names it."""
    known, head = _migrations()
    if current == head:
        return
    if current is None:
        if has_tables():
            raise _foreign(url, at)
        raise DatabaseError(url, f"the database at {at} has no tables; create them with 'ehcp db init'")
    if current not in known:
        raise DatabaseError(url, f"the database at {at} has schema {current}, which this code does not know")
    raise DatabaseError(url, f"the database at {at} has schema {current}; the code needs {head}: run 'ehcp db upgrade'")


def _no_file(url: str, file: Path) -> DatabaseError:
    return DatabaseError(
        url, f"no database at {file}; create it with 'ehcp db init' (or check database_url in config.yaml)"
    )


def open_sqlite(url: str, file: Path) -> sqlite3.Connection:
    """A read connection, through the standard library's sqlite3 alone, to the SQLite ``file`` of ``url``
    (a ``sqlite:///`` URL with no password or query): for the commands that only read (``case show``,
    ``case list``, ``due``), which then never import SQLAlchemy. The same checks and one-line errors
    as ``open_database``: the file must exist and be at the code's schema.

    Raises:
        DatabaseError: no such file, not a database, or its schema is not the code's.
    """
    if not file.is_file():
        raise _no_file(url, file)
    try:
        # mode=rw: never makes a file (one removed since the check above is an error, not a new database)
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=rw", uri=True)
    except sqlite3.Error as exc:
        raise DatabaseError(url, f"cannot connect to the database at {file}: {_reason(exc)}") from exc
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        try:
            current = ",".join(sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))) or None
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            current = None

        def has_tables() -> bool:
            return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone() is not None

        judge_schema(current, has_tables, url, str(file))
    except sqlite3.Error as exc:
        conn.close()
        raise DatabaseError(url, f"cannot connect to the database at {file}: {_reason(exc)}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _reason(exc: BaseException | None) -> str:
    return " ".join(str(exc).split("\n")[0].split()) or type(exc).__name__


def reach(url: str, *, create: bool = False, background_checkpoints: bool = False) -> tuple[Engine, str | None]:
    """Connect to the database at ``url`` and read its schema version, without changing anything.

    A SQLite file must exist unless ``create`` (then its folder is made, and SQLite makes the file).

    Raises:
        DatabaseError: the URL is not one (or names a driver that is not installed), there is no such
            SQLite file, or the database cannot be reached (server down, connection refused).
    """
    from sqlalchemy.exc import DBAPIError

    parsed = parse(url)
    file = sqlite_file(parsed)
    if file is not None:
        if create:
            file.parent.mkdir(parents=True, exist_ok=True)
        elif not file.is_file():
            raise _no_file(shown(parsed), file)
    engine = connect(url, background_checkpoints=background_checkpoints)
    try:
        return engine, current_revision(engine)
    except DBAPIError as exc:
        engine.dispose()
        reason = _reason(exc.orig)
        if parsed.password:
            reason = reason.replace(parsed.password, "***")
        raise DatabaseError(shown(parsed), f"cannot connect to the database at {where(parsed)}: {reason}") from exc


def open_database(url: str, *, create: bool = False, background_checkpoints: bool = False) -> Engine:
    """An Engine on a database at the code's schema; ``create`` makes the database if it is not there.

    Raises:
        DatabaseError: a bad URL; not there (and not ``create``), cannot be reached, or its schema is not the
            code's.
    """
    engine, current = reach(url, create=create, background_checkpoints=background_checkpoints)
    try:
        if create and current is None:
            ensure_schema(engine)
        else:
            check_schema(engine, current)
    except BaseException:
        engine.dispose()
        raise
    return engine


@dataclass(frozen=True, slots=True)
class Initialised:
    """What ``initialise`` found and did: the schema versions before (None: a new database) and after."""

    url: str  # a SQLite file's path, or the URL with its password hidden
    before: str | None
    after: str | None
    granted: str | None = None  # the service's login, given rows to read and write only (grant_rows)

    @property
    def created(self) -> bool:
        return self.before is None


def initialise(url: str, service_url: str | None = None) -> Initialised:
    """Make the database (a SQLite file and its folder) if it is not there, and bring its schema to the
    newest; ``url`` is the owner's login, ``service_url`` the service's (``grant_rows``)."""
    engine, before = reach(url, create=True)
    try:
        if before is None and _has_tables(engine):
            raise _foreign(shown(engine.url), where(engine.url))
        if before != code_revision():
            migrate(engine)
        granted = grant_rows(engine, service_url)
        return Initialised(where(engine.url), before, current_revision(engine), granted)
    finally:
        engine.dispose()


def upgrade(url: str, service_url: str | None = None) -> Initialised:
    """Bring an existing database's schema to the newest migration (as ``initialise``)."""
    engine, before = reach(url)
    try:
        if before is None and _has_tables(engine):
            raise _foreign(shown(engine.url), where(engine.url))
        migrate(engine)
        granted = grant_rows(engine, service_url)
        return Initialised(where(engine.url), before, current_revision(engine), granted)
    finally:
        engine.dispose()


# Tables the service may only add rows to: the legal record, and what was decided from it.
APPEND_ONLY = ("history", "plan_edit", "workflow_definition", "audit_event", "portal_contribution", "portal_upload")
# Tables only migrations write.
OWNER_ONLY = ("alembic_version", "installation")


def grant_rows(owner: Engine, service_url: str | None) -> str | None:
    """On PostgreSQL, when the service logs in as another role than the one that owns the tables (and
    ran the migrations): give that role rows to read and write, and nothing else. It cannot alter a
    table, disable a trigger, or change or remove history and plan edits. Returns the role, or None
    when there is nothing to grant (SQLite, or one login for both)."""
    if service_url is None or owner.dialect.name != "postgresql":
        return None
    role = parse(service_url).username
    if not role or role == owner.url.username:
        return None
    who = owner.dialect.identifier_preparer.quote(role)
    from sqlalchemy import text

    with owner.begin() as conn:
        for statement in (
            f"GRANT USAGE ON SCHEMA public TO {who}",
            f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {who}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {who}",
            f"REVOKE UPDATE, DELETE ON {', '.join(APPEND_ONLY)} FROM {who}",
            f"REVOKE INSERT, UPDATE, DELETE ON {', '.join(OWNER_ONLY)} FROM {who}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {who}",
        ):
            conn.execute(text(statement))
    return role


# The triggers that keep the record append-only (migrations 0001, 0004, 0008, 0011, 0012 make them).
GUARDS = {
    "sqlite": (
        "history_no_update",
        "history_no_delete",
        "history_no_replace",
        "plan_edit_no_update",
        "plan_edit_no_delete",
        "plan_edit_no_replace",
        "plan_issued_no_update",
        "plan_issued_no_delete",
        "plan_issued_no_replace",
        "audit_no_update",
        "audit_no_delete",
        "audit_no_replace",
        "portal_contribution_no_update",
        "portal_contribution_no_delete",
        "portal_contribution_no_replace",
        "portal_upload_no_update",
        "portal_upload_no_delete",
        "portal_upload_no_replace",
    ),
    "postgresql": (
        "history_append_only",
        "plan_edit_append_only",
        "plan_issued_is_final",
        "audit_append_only",
        "portal_contribution_append_only",
        "portal_upload_append_only",
    ),
}


def missing_guards_in(names: set[str], dialect: str) -> list[str]:
    return [g for g in GUARDS.get(dialect, ()) if g not in names]


def missing_guards(engine: Engine) -> list[str]:
    """The append-only triggers a database lacks (or, on PostgreSQL, has disabled)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        names = {r[0] for r in conn.execute(text(sql))}
    return missing_guards_in(names, engine.dialect.name)
