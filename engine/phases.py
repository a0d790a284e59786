"""Phase transfers: which children move between phases of education in a given academic year.

Pure functions of dates. England's academic year runs from 1 September to 31 August. A child
born between 1 September of year Y-5 and 31 August of year Y-4 starts Reception in September of
year Y (SEND rules, section 5). A child educated out of their chronological year group carries an
offset (one year behind: -1). Which moves a child makes depends on the local pattern of schools.

The time limit itself is in the annual review workflow (SEND Regulations 2014 reg 18): the plan
naming the new school must be amended by 15 February of the calendar year of the move, or by
31 March for a move from secondary school into post-16 education.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# Year group (Reception = 0) a child starts when making each move, by local school pattern.
PATTERNS: dict[str, dict[int, str]] = {
    "primary_secondary": {0: "early_years_to_school", 7: "primary_to_secondary", 12: "secondary_to_post16"},
    "infant_junior": {
        0: "early_years_to_school",
        3: "infant_to_junior",
        7: "primary_to_secondary",
        12: "secondary_to_post16",
    },
    "three_tier": {
        0: "early_years_to_school",
        5: "primary_to_middle",
        9: "middle_to_secondary",
        12: "secondary_to_post16",
    },
}

YEAR_NAMES = {-1: "Nursery", 0: "Reception"}


def academic_year_starting(day: date) -> int:
    """The calendar year in which the academic year containing ``day`` began."""
    return day.year if day.month >= 9 else day.year - 1


def parse_academic_year(text: str) -> int:
    """``2026/27`` or ``2026`` -> 2026 (the year it begins); raises ValueError otherwise."""
    head, _, tail = text.strip().partition("/")
    try:
        start = int(head)
        end = int(tail) if tail else start + 1
    except ValueError:
        raise ValueError(f"'{text}' is not an academic year; write it as 2026/27") from None
    if start < 1900 or end % 100 != (start + 1) % 100:
        raise ValueError(f"'{text}' is not an academic year; the second year follows the first (2026/27)")
    return start


def year_group(date_of_birth: date, academic_year: int, offset: int = 0) -> int:
    """The year group (Reception = 0, Year 1 = 1, Nursery = -1) in the academic year beginning
    in September of ``academic_year``."""
    return academic_year - academic_year_starting(date_of_birth) - 5 + offset


def year_name(group: int) -> str:
    return YEAR_NAMES.get(group, f"Year {group}" if group > 0 else f"{-group} years before Reception")


@dataclass(frozen=True)
class Transfer:
    kind: str
    moves_on: date  # 1 September of the academic year the child starts in the new phase
    from_year: int  # the year group the child is in during the year before the move
    deadline: date  # reg 18: 15 February, or 31 March into post-16, in the calendar year of the move


def deadline_for(kind: str, moves_on: date) -> date:
    """The reg 18 date for a move (the council's 'on the date' reading)."""
    if kind == "secondary_to_post16":
        return date(moves_on.year, 3, 31)
    return date(moves_on.year, 2, 15)


def transfer_in(
    date_of_birth: date, academic_year: int, pattern: str = "primary_secondary", offset: int = 0
) -> Transfer | None:
    """The move at the end of the academic year beginning in ``academic_year``, if there is one.

    This is the year in which the review and amendment must be done: the child moves on the
    following 1 September, and the reg 18 date falls in this academic year.
    """
    moves = PATTERNS.get(pattern)
    if moves is None:
        raise ValueError(f"unknown school pattern '{pattern}'; known: {', '.join(PATTERNS)}")
    group_now = year_group(date_of_birth, academic_year, offset)
    kind = moves.get(group_now + 1)
    if kind is None:
        return None
    moves_on = date(academic_year + 1, 9, 1)
    return Transfer(kind, moves_on, group_now, deadline_for(kind, moves_on))
