"""Who is asking, as the service has established it: a module of its own, so that checking who is
asking (``engine.directory``) does not load the workflow machine (``bench/startup.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """Who is asking, as the service has established it."""

    id: str
    role: str
