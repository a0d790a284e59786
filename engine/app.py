"""Assembling the engine from its settings: database, workflows, staff and clock.

Each part is built when first asked for, and its module imported then: a command that only reads
cases never loads the PDF, mail or scheduling libraries (``bench/startup.py`` measures it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from .clock import Clock, SystemClock
from .config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from notifications.message import Transport

    from .cases import Cases
    from .catalogue import Catalogue
    from .corrections import Corrections
    from .directory import Directory
    from .dispatch import Dispatcher
    from .documents import Documents
    from .messages import Messages
    from .plans import Plans
    from .store.reading import Sql
    from .store.repository import Store
    from .sweep import Sweeper


@dataclass
class App:
    settings: Settings
    clock: Clock
    # A long-running process runs store.database.Checkpointer beside the requests (see connect).
    background_checkpoints: bool = False
    # Make the database if it is not there (a SQLite file, the schema in an empty database). Only
    # `ehcp db init`, the demo and tests ask for this: a mistyped path must not become a new, empty
    # caseload (store.database.open_database says what is wrong instead).
    create: bool = False

    @cached_property
    def catalogue(self) -> Catalogue:
        from .catalogue import Catalogue

        return Catalogue.from_folder(
            self.settings.workflows_path(),
            self.settings.policy,
            self.settings.workflows,
            tolerant=True,
            stored=self._stored_definition,
        )

    def _stored_definition(self, name: str, version: int) -> str | None:
        with self.store.unit() as unit:
            return unit.stored_definition(name, version)

    @cached_property
    def engine(self) -> Engine:
        from .store.database import open_database

        return open_database(
            self.settings.database(), create=self.create, background_checkpoints=self.background_checkpoints
        )

    @contextmanager
    def read(self) -> Iterator[Sql]:
        """A connection for the read views of ``store.reading``. A SQLite file is read through the standard
        library's sqlite3 alone, checked as ``engine`` checks it (the file is there, at the code's schema),
        so that ``case show``, ``case list`` and ``due`` never import SQLAlchemy; any other database, or
        an App that already has its engine (or may make the database), reads through ``engine``."""
        from .store import reading

        file = None
        if "engine" not in self.__dict__ and not self.create:
            file = reading.sqlite_file(self.settings.database_url, self.settings.base_dir)
        if file is None:
            with reading.on_engine(self.engine) as sql:
                yield sql
            return
        from .store.database import open_sqlite

        conn = open_sqlite(*file)
        try:
            yield reading.Sql(conn.execute)
        finally:
            conn.close()

    @cached_property
    def directory(self) -> Directory:
        from .directory import Directory

        return Directory(self.settings.staff, self.settings.casework.team_inbox)

    @cached_property
    def store(self) -> Store:
        from .store.repository import Store

        return Store(self.engine)

    @cached_property
    def cases(self) -> Cases:
        from .cases import Cases

        casework = self.settings.casework
        return Cases(
            self.store,
            self.catalogue,
            self.directory,
            self.clock,
            future_tolerance_days=casework.future_tolerance_days,
            team_inbox=casework.team_inbox,
        )

    @cached_property
    def corrections(self) -> Corrections:
        from .corrections import Corrections

        return Corrections(self.store, self.catalogue, self.directory, self.clock)

    @cached_property
    def messages(self) -> Messages:
        from .messages import Messages

        return Messages(
            self.settings.templates_path(), self.settings.council.name, self.settings.web.address() + "/portal"
        )

    @cached_property
    def sweeper(self) -> Sweeper:
        from .sweep import Sweeper

        return Sweeper(self.store, self.catalogue, self.directory, self.clock, self.messages, self.settings)

    @cached_property
    def plans(self) -> Plans:
        from .plans import Plans

        return Plans(self.store, self.directory, self.clock)

    @cached_property
    def documents(self) -> Documents:
        from .documents import Documents

        return Documents(self.store, self.catalogue, self.directory, self.clock, self.settings)

    def dispatcher(self, transport: Transport | None = None) -> Dispatcher:
        from .dispatch import Dispatcher

        return Dispatcher(
            self.store, self.messages, self.catalogue, self.directory, self.clock, self.settings, transport
        )


def build(settings: Settings, clock: Clock | None = None, *, create: bool = False) -> App:
    return App(settings, clock or SystemClock(), create=create)
