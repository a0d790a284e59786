"""The engine's exceptions: one base class and a few specific ones, each with a clear message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class EhcpError(Exception):
    """Base class of every error the engine reports to a person rather than as a bug."""


@dataclass(frozen=True)
class Problem:
    """One mistake in a workflow file: where it is and what is wrong."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class DefinitionError(EhcpError):
    """A workflow definition has one or more mistakes; all of them are listed."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class TransitionRefused(EhcpError):
    """A trigger cannot be fired now: says why and which triggers are allowed."""

    def __init__(self, state: str, trigger: str, reason: str, allowed: Sequence[str]):
        self.state = state
        self.trigger = trigger
        self.reason = reason
        self.allowed = list(allowed)
        allowed_text = ", ".join(self.allowed) if self.allowed else "none"
        super().__init__(f"cannot {trigger} in state '{state}': {reason}; allowed now: {allowed_text}")


class ConflictError(EhcpError):
    """Someone else changed the case between reading it and writing to it."""


class ConfigError(EhcpError):
    """The configuration is invalid; the message names the key."""


class DatabaseError(EhcpError):
    """The database cannot be used: its URL is not one, it is not there, it cannot be reached, or its
    schema is not the code's.

    ``url`` is the database's URL with any password hidden; the message says what to do.
    """

    def __init__(self, url: str, message: str):
        self.url = url
        super().__init__(message)


class NotFound(EhcpError):
    """A case, workflow or other record does not exist."""


class InvalidInput(EhcpError):
    """A value given on the command line or in a form is not valid."""


class NotAuthorised(EhcpError):
    """The person asking is not known or may not do this."""


class DamagedFile(EhcpError):
    """A stored document no longer matches the hash recorded when it was made."""
