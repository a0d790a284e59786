"""The one source of "today" and "now" for the whole engine.

Nothing else calls ``date.today()`` or ``datetime.now()``: the service takes a clock, so tests and
simulations can run a case through a year in a second. Dates of the process are local dates in
England (Europe/London); moments are stored as timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware, in UTC."""
        ...

    def today(self) -> date:
        """Today's date in England."""
        ...


def london_date(moment: datetime) -> date:
    """The date in England at a UTC moment (the clocks changing moves the hour, never the date rule)."""
    return moment.astimezone(LONDON).date()


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return london_date(self.now())


@dataclass
class FixedClock:
    """A clock set to a date, for ``--on DATE``, tests and simulations; ``advance`` moves it on.

    ``now()`` is noon in London on that date, so every moment recorded on the day has that date,
    whether or not British Summer Time is in force.
    """

    current: date
    _tick: int = field(default=0, repr=False)
    _noon: tuple[date, datetime] | None = field(default=None, repr=False)

    def today(self) -> date:
        return self.current

    def now(self) -> datetime:
        # A microsecond per call keeps moments recorded on one simulated day in order.
        self._tick += 1
        if self._noon is None or self._noon[0] != self.current:
            self._noon = (self.current, datetime.combine(self.current, time(12, 0), tzinfo=LONDON).astimezone(UTC))
        return self._noon[1] + timedelta(microseconds=self._tick)

    def advance(self, days: int = 1) -> None:
        self.current = self.current + timedelta(days=days)

    def set(self, day: date) -> None:
        self.current = day
