"""History as a hash chain: each entry's hash covers the one before it in its workflow instance and
everything the entry says (who, what, when, why), so an entry changed, removed or inserted afterwards
no longer matches, and ``ehcp audit verify`` says where.

The instance keeps the hash of its latest entry (``workflow_instance.history_hash``): a step reads it
with the instance it already loads and writes the new one in the update that already guards the
instance's version, so the chain costs no extra query and two writers cannot both extend it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any

CHAIN_FORMAT = "ehcp-history-1"
GENESIS = ""  # the "hash before" an instance's first entry
FIELDS = (
    "instance_id",
    "case_id",
    "seq",
    "at",
    "occurred_on",
    "actor",
    "actor_role",
    "recorded_by",
    "trigger",
    "from_state",
    "to_state",
    "inputs",
    "note",
)
"""The history columns an entry's hash covers (with the hash before it)."""


def moment(value: Any) -> str:
    """A stored moment as one text whichever database gave it back (SQLite: naive UTC text)."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.isoformat(timespec="microseconds")


def day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def entry_hash(
    previous: str,
    *,
    instance_id: int,
    case_id: int,
    seq: int,
    at: Any,
    occurred_on: Any,
    actor: str,
    actor_role: str,
    recorded_by: str | None,
    trigger: str,
    from_state: str | None,
    to_state: str,
    inputs: str,
    note: str | None,
) -> str:
    """The hash of one history entry, chained to ``previous`` (the entry before it, or GENESIS)."""
    fields = [
        CHAIN_FORMAT,
        previous,
        instance_id,
        case_id,
        seq,
        moment(at),
        day(occurred_on),
        actor,
        actor_role,
        recorded_by,
        trigger,
        from_state,
        to_state,
        inputs,
        note,
    ]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
