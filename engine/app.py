"""Assembling the engine from its settings: database, workflows, staff and clock."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine

from notifications.message import Transport

from .cases import Cases
from .catalogue import Catalogue
from .clock import Clock, SystemClock
from .config import Settings
from .directory import Directory
from .dispatch import Dispatcher
from .documents import Documents
from .messages import Messages
from .plans import Plans
from .store.database import connect, ensure_schema
from .store.repository import Store
from .sweep import Sweeper


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
    def store(self) -> Store:
        return Store(self.engine)

    @cached_property
    def cases(self) -> Cases:
        return Cases(self.store, self.catalogue, self.directory, self.clock)

    @cached_property
    def messages(self) -> Messages:
        return Messages(self.settings.templates_path(), self.settings.council.name)

    @cached_property
    def sweeper(self) -> Sweeper:
        return Sweeper(self.store, self.catalogue, self.directory, self.clock, self.messages, self.settings)

    @cached_property
    def plans(self) -> Plans:
        return Plans(self.store, self.directory, self.clock)

    @cached_property
    def documents(self) -> Documents:
        return Documents(self.store, self.catalogue, self.directory, self.clock, self.settings)

    def dispatcher(self, transport: Transport | None = None) -> Dispatcher:
        return Dispatcher(
            self.store, self.messages, self.catalogue, self.directory, self.clock, self.settings, transport
        )


def build(settings: Settings, clock: Clock | None = None) -> App:
    return App(settings, clock or SystemClock())
