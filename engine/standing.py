"""Where a deadline stands on a given day: one answer for every view and for the sweep.

A deadline row records what happened (open, met, breached, cancelled, and when it closed); how it
stands *as of a day* follows from that and the day. ``case show``, ``case fire``, ``due``, the web
pages and the sweep all ask this module, so no two of them can disagree (a limit "met" in one view
and "breached" in another, or "open -618" in one and "573 days late" in the next).

Pure: no database, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

FAMILY = "family"


def breaches(party: str) -> bool:
    """Whether missing this party's limit is a breach: everyone's but the family's, whose periods
    are a minimum they are given, not a limit they can miss."""
    return party != FAMILY


def is_overdue(due_on: date, as_of: date) -> bool:
    """A limit is missed from the day after its last day."""
    return as_of > due_on


@dataclass(frozen=True)
class Standing:
    """How a deadline stands: ``state`` is one of due, due_today, overdue, ended, met, met_late,
    cancelled; ``days`` is the days left (due), late (overdue, met_late) or 0."""

    state: str
    days: int
    label: str

    @property
    def late(self) -> bool:
        return self.state in ("overdue", "met_late")


def standing(
    *,
    status: str,
    due_on: date,
    closed_on: date | None,
    party: str,
    as_of: date,
    excused: bool = False,
) -> Standing:
    """How the deadline stands on ``as_of``, as words a caseworker reads and a state a program reads."""
    suffix = " (excused)" if excused else ""
    if status == "cancelled":
        return Standing("cancelled", 0, "cancelled" + suffix)
    if closed_on is not None:
        late = (closed_on - due_on).days
        if late > 0 and breaches(party):
            return Standing("met_late", late, f"met late ({_days(late)})" + suffix)
        return Standing("met", 0, "met" + suffix)
    if not is_overdue(due_on, as_of):
        left = (due_on - as_of).days
        if left == 0:
            return Standing("due_today", 0, "due today" + suffix)
        return Standing("due", left, f"due in {_days(left)}" + suffix)
    late = (as_of - due_on).days
    if not breaches(party):
        return Standing("ended", late, "ended" + suffix)
    return Standing("overdue", late, f"overdue ({_days(late)} late)" + suffix)


def _days(n: int) -> str:
    return f"{n} day" + ("" if n == 1 else "s")
