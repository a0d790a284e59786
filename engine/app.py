"""Assembling the engine from its settings: database, workflows, staff and clock."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine

from .cases import Cases
from .catalogue import Catalogue
from .clock import Clock, SystemClock
from .config import Settings
from .directory import Directory
from .store.database import connect, ensure_schema
from .store.repository import Store


@dataclass
class App:
    settings: Settings
    clock: Clock
    # A long-running process runs store.database.Checkpointer beside the requests (see connect).
    background_checkpoints: bool = False

    @cached_property
    def catalogue(self) -> Catalogue:
        return Catalogue.from_folder(self.settings.workflows_path(), self.settings.policy, self.settings.workflows)

    @cached_property
    def engine(self) -> Engine:
        engine = connect(self.settings.database(), background_checkpoints=self.background_checkpoints)
        ensure_schema(engine)
        return engine

    @cached_property
    def directory(self) -> Directory:
        return Directory(self.settings.staff)

    @cached_property
    def cases(self) -> Cases:
        return Cases(Store(self.engine), self.catalogue, self.directory, self.clock)


def build(settings: Settings, clock: Clock | None = None) -> App:
    return App(settings, clock or SystemClock())
