"""Date law: durations in days, weeks, months and working days, and England's working days.

Pure functions of dates. The rules are those of the SEND Regulations 2014 and the general law of
time limits (see docs/workflow-format.md, "Counting time"):

- ``N days`` / ``N weeks`` after D: D + N days (weeks are seven calendar days).
- ``N months`` after D: the corresponding date N months later, or that month's last day when it
  has no such date (the corresponding-date rule, Dodds v Walker [1981] 1 WLR 1441).
- ``inclusive`` ("a period of N ... beginning/starting with the day D"): D is day 1, so the
  period ends one day earlier than the plain rule gives.
- ``N working days`` after D: count forward N working days, D itself not counted. A working day
  is not a Saturday, Sunday, Christmas Day, Good Friday or a bank holiday in England (reg 2(1)).
  ``inclusive`` ("N working days beginning with D"): D is day 1 if it is a working day.

A statutory date is never moved onto a working day: a limit that ends on a Saturday ends then.
The one exception is the tribunal's own rule for the last day to appeal (``tribunal_appeal_day``).
"""

from __future__ import annotations

import calendar as _stdcal
import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache

from dateutil.easter import easter


class Unit(StrEnum):
    DAYS = "days"
    WEEKS = "weeks"
    MONTHS = "months"
    WORKING_DAYS = "working_days"


_UNIT_WORDS = {
    "day": Unit.DAYS,
    "days": Unit.DAYS,
    "calendar day": Unit.DAYS,
    "calendar days": Unit.DAYS,
    "week": Unit.WEEKS,
    "weeks": Unit.WEEKS,
    "month": Unit.MONTHS,
    "months": Unit.MONTHS,
    "working day": Unit.WORKING_DAYS,
    "working days": Unit.WORKING_DAYS,
    "working_day": Unit.WORKING_DAYS,
    "working_days": Unit.WORKING_DAYS,
}

_DURATION = re.compile(r"^\s*(\d+)\s+([a-z_ ]+?)\s*$")


@dataclass(frozen=True)
class Duration:
    """A length of time as the law states it: ``6 weeks``, ``15 days``, ``3 working days``."""

    amount: int
    unit: Unit
    inclusive: bool = False

    @classmethod
    def parse(cls, text: str, inclusive: bool = False) -> Duration:
        """Parse ``"6 weeks"``; raises ValueError naming the accepted units when it cannot."""
        match = _DURATION.match(str(text).lower())
        if not match or match.group(2) not in _UNIT_WORDS:
            raise ValueError(
                f"'{text}' is not a duration; write a whole number and a unit, "
                "e.g. '6 weeks', '15 days', '2 months', '3 working days'"
            )
        unit = _UNIT_WORDS[match.group(2)]
        return cls(int(match.group(1)), unit, inclusive)

    def __str__(self) -> str:
        word = self.unit.value.replace("_", " ")
        if self.amount == 1:
            word = word[:-1]
        return f"{self.amount} {word}" + (" (beginning with the first day)" if self.inclusive else "")


def add_months(start: date, months: int) -> date:
    """The corresponding date ``months`` later (or earlier), clamped to the month's last day."""
    index = start.year * 12 + (start.month - 1) + months
    year, month0 = divmod(index, 12)
    last = _stdcal.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(start.day, last))


@lru_cache(maxsize=256)
def bank_holidays(year: int) -> frozenset[date]:
    """England's bank holidays in ``year``, with Christmas Day and Good Friday always included.

    Known offline: the ``holidays`` package computes the usual days and lists the one-off ones.
    """
    import holidays  # ~30 ms to import: only when a working day is counted, not for every command

    days = set(holidays.country_holidays("GB", subdiv="ENG", years=year).keys())
    days.add(date(year, 12, 25))
    days.add(easter(year) - timedelta(days=2))
    return frozenset(days)


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in bank_holidays(day.year)


def add_working_days(start: date, count: int) -> date:
    """``count`` working days after ``start`` (``start`` itself not counted); negative counts back."""
    step = 1 if count >= 0 else -1
    remaining = abs(count)
    day = start
    while remaining:
        day += timedelta(days=step)
        if is_working_day(day):
            remaining -= 1
    return day


def add(start: date, duration: Duration) -> date:
    """The last day of a period of ``duration`` counted from ``start``."""
    if duration.unit is Unit.WORKING_DAYS:
        if duration.inclusive:
            # "N working days beginning with D" (reg 15(2)): D is day 1 when it is a working day,
            # otherwise the first working day after it is; so count from the day before.
            return add_working_days(start - timedelta(days=1), duration.amount)
        return add_working_days(start, duration.amount)
    if duration.unit is Unit.MONTHS:
        end = add_months(start, duration.amount)
        if duration.inclusive and end.day < start.day:
            # "12 months starting with 29 February" has no corresponding day: it ends on the
            # last day of the month (the day before the 1 March that would follow).
            return end
    else:
        days = duration.amount * (7 if duration.unit is Unit.WEEKS else 1)
        end = start + timedelta(days=days)
    return end - timedelta(days=1) if duration.inclusive else end


def fixed_date(year: int, month: int, day: int) -> date:
    """``day`` ``month`` in ``year``; 29 February in a common year is the 28th."""
    last = _stdcal.monthrange(year, month)[1]
    return date(year, month, min(day, last))


def age_on(born: date, day: date) -> int:
    """Whole years of age on ``day`` (a child born on 29 February has a birthday on 1 March)."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def birthday(born: date, years: int) -> date:
    """The day a person born on ``born`` reaches ``years`` (born on 29 February: 1 March in a common year)."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return date(born.year + years, 3, 1)


def end_of_academic_year_at_age(born: date, years: int) -> date:
    """31 July ending the academic year (1 August to 31 July) in which a person reaches ``years``.

    CFA 2014 s.46 lets a council keep a young person's plan to the end of the academic year in which
    they turn 25; for further education that year ends on 31 July (SEND Regulations 2014 reg 46).
    """
    day = birthday(born, years)
    return date(day.year if day.month <= 7 else day.year + 1, 7, 31)


def end_of_compulsory_school_age(born: date) -> date:
    """The last day of compulsory school age: the last Friday in June of the school year (1 September to
    31 August) in which the child turns 16 (Education Act 1996 s.8 and the Education (School Leaving
    Date) Order 1997). From the next day they are a young person, who holds the rights under Part 3 of
    the Children and Families Act 2014 themselves (s.83(2))."""
    sixteen = birthday(born, 16)
    year = sixteen.year + 1 if sixteen.month >= 9 else sixteen.year
    last = date(year, 6, 30)
    return last - timedelta(days=(last.weekday() - 4) % 7)


def subtract(end: date, duration: Duration) -> date:
    """The day ``duration`` before ``end`` (for reminders and notice periods counted backwards)."""
    if duration.unit is Unit.WORKING_DAYS:
        return add_working_days(end, -duration.amount)
    if duration.unit is Unit.MONTHS:
        return add_months(end, -duration.amount)
    days = duration.amount * (7 if duration.unit is Unit.WEEKS else 1)
    return end - timedelta(days=days)


# The date from which the Tribunal Procedure (First-tier Tribunal) (HESC) Rules 2008 rule 12(3) took
# its present form for special educational needs cases (SI 2020/651, in force 21 July 2020).
TRIBUNAL_RULE_12_FROM = date(2020, 7, 21)


def tribunal_appeal_day(last_day: date) -> date:
    """The last day on which an appeal to the SEND Tribunal is in time, given the day its period ends.

    Tribunal Procedure (First-tier Tribunal) (HESC Chamber) Rules 2008, rule 12 as it applies to
    special educational needs cases since 21 July 2020:

    - r.12(2): an act required by a rule to be done on or by a particular day, where that day is
      not a working day, is done in time if done on the next working day;
    - r.12(3)(a): where the time for the notice of appeal ends on a day from 25 December to
      1 January inclusive, or on any day in August, it is in time if received on the first
      working day after 1 January or 31 August.

    (r.12(1): by 5pm on the day. That is a time of day, said in the letters, not a date.)
    """
    if last_day.month == 8:
        return add_working_days(date(last_day.year, 8, 31), 1)
    if last_day.month == 12 and last_day.day >= 25:
        return add_working_days(date(last_day.year + 1, 1, 1), 1)
    if last_day.month == 1 and last_day.day == 1:
        return add_working_days(last_day, 1)
    if not is_working_day(last_day):
        return add_working_days(last_day, 1)
    return last_day


ADJUSTMENTS = {"tribunal_appeal": tribunal_appeal_day}
"""The rules of a last day a workflow file can name (``adjusted_by``), by name."""
