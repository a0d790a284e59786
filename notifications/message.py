"""What a transport is given to send, and how it says it could not.

The engine renders each outbox row into an :class:`Email` (or a :class:`Letter` for a contact with
no email address) and hands it to one transport. A transport returns only when the message has
been accepted (the SMTP server said 250, GOV.UK Notify answered 201, the file is on disk); it
raises :class:`TemporaryFailure` when trying again later may work (server down, timeout, 5xx,
rate limit) and :class:`PermanentFailure` when it never will (an address refused, a bad API key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Email:
    key: str  # the outbox row's unique key: the Message-ID's left part, Notify's reference
    to: str
    to_name: str | None
    subject: str
    text: str
    html: str | None
    template: str  # the message template's name, e.g. "deadline_reminder"
    sender: str  # "Name <address>" or an address
    reply_to: str | None = None
    personalisation: dict[str, str] = field(default_factory=dict)  # for Notify: subject, body and more


@dataclass(frozen=True)
class Letter:
    key: str
    to_name: str | None
    subject: str
    html: str  # a complete HTML page, printed to PDF


class SendFailure(Exception):
    """The transport could not hand the message over; the text says why, without personal data."""


class TemporaryFailure(SendFailure):
    """Trying again later may work."""


class PermanentFailure(SendFailure):
    """Trying again will not help."""


class Transport(Protocol):
    name: str

    def send(self, message: Email) -> str:
        """Hand the message over; return the provider's id for it (Message-ID, Notify id, file name)."""
        ...
