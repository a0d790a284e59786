"""Date law, golden rows written by hand from ../shared/domain/ehcp-rules.md (§2, §4, §9).

Each row: (start, duration, inclusive, expected last day, source). Expected dates come from the
rules' worked examples or were counted on a calendar, never from the code under test.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.calendar import Duration, add, add_months, bank_holidays, is_working_day, subtract, tribunal_appeal_day

GOLDEN = [
    # weeks: D + 7N; a limit ending on a bank holiday still ends that day (rules §9)
    (date(2025, 1, 6), "6 weeks", False, date(2025, 2, 17), "CFA s.36(5), reg 5(1): rules §9 example"),
    (date(2025, 1, 6), "16 weeks", False, date(2025, 4, 28), "reg 10(1): rules §9 example"),
    (date(2025, 1, 6), "20 weeks", False, date(2025, 5, 26), "reg 13(2): ends on the spring bank holiday"),
    (date(2024, 12, 20), "6 weeks", False, date(2025, 1, 31), "reg 5(1): rules §9 more examples"),
    (date(2024, 12, 20), "16 weeks", False, date(2025, 4, 11), "reg 10(1): rules §9 more examples"),
    (date(2024, 12, 20), "20 weeks", False, date(2025, 5, 9), "reg 13(2): rules §9 more examples"),
    (date(2027, 11, 26), "20 weeks", False, date(2028, 4, 14), "reg 13(2): across 29 Feb 2028"),
    (date(2025, 8, 25), "20 weeks", False, date(2026, 1, 12), "reg 13(2): received on a bank holiday"),
    # days, and days "beginning with" the day of service (day 1)
    (date(2025, 3, 7), "15 days", False, date(2025, 3, 22), "CoP 9.81 'within 15 days': rules §9"),
    (date(2025, 3, 7), "15 days", True, date(2025, 3, 21), "CFA s.38, reg 13(1)/22(2)(c): day of service is day 1"),
    # months: corresponding date, else the month's last day (Dodds v Walker)
    (date(2025, 1, 15), "2 months", False, date(2025, 3, 15), "TPR r.20: rules §9"),
    (date(2024, 12, 31), "2 months", False, date(2025, 2, 28), "TPR r.20: no 31 Feb, last day"),
    (date(2025, 3, 1), "1 month", False, date(2025, 4, 1), "TPR r.20: 1 month from the certificate"),
    (date(2024, 1, 31), "1 month", False, date(2024, 2, 29), "month end in a leap year"),
    (date(2025, 3, 10), "12 months", True, date(2026, 3, 9), "CFA s.44(1): 12 months starting with"),
    (date(2028, 2, 29), "12 months", True, date(2029, 2, 28), "CFA s.44(1): 29 Feb start, month end"),
    # working days: D not counted; weekends, Christmas, Boxing Day, Good Friday, bank holidays skipped
    (date(2025, 12, 22), "3 working days", False, date(2025, 12, 29), "reg 34(1): rules §9 example"),
    (date(2025, 4, 17), "1 working day", False, date(2025, 4, 22), "Good Friday and Easter Monday 2025"),
    (date(2022, 9, 16), "1 working day", False, date(2022, 9, 20), "state funeral 19 Sep 2022"),
    (date(2023, 5, 5), "1 working day", False, date(2023, 5, 9), "coronation 8 May 2023"),
    (date(2027, 12, 24), "1 working day", False, date(2027, 12, 29), "substitute days 27-28 Dec 2027"),
    # the clocks changing (30 Mar and 26 Oct 2025) never moves a date
    (date(2025, 3, 29), "1 week", False, date(2025, 4, 5), "BST starts 30 Mar 2025"),
    (date(2025, 10, 25), "3 working days", False, date(2025, 10, 29), "BST ends Sun 26 Oct 2025; from a Saturday"),
]


@pytest.mark.parametrize(
    ("start", "text", "inclusive", "expected", "source"),
    GOLDEN,
    ids=[f"{r[0]}+{r[1]}{'(incl)' if r[2] else ''}" for r in GOLDEN],
)
def test_golden_dates(start: date, text: str, inclusive: bool, expected: date, source: str) -> None:
    assert add(start, Duration.parse(text, inclusive)) == expected, source


def test_counting_backwards_for_notice_periods() -> None:
    # Two weeks' notice of a review meeting on Wed 19 Nov 2025 (reg 20(3)): sent by Wed 5 Nov.
    assert subtract(date(2025, 11, 19), Duration.parse("2 weeks")) == date(2025, 11, 5)
    # 3 working days before Tue 6 May 2025 skip the early May bank holiday (5 May): Wed 30 Apr.
    assert subtract(date(2025, 5, 6), Duration.parse("3 working days")) == date(2025, 4, 30)


def test_england_bank_holidays_are_known_offline() -> None:
    days = bank_holidays(2026)
    for d in (
        date(2026, 1, 1),
        date(2026, 4, 3),
        date(2026, 4, 6),
        date(2026, 5, 4),
        date(2026, 5, 25),
        date(2026, 8, 31),
        date(2026, 12, 25),
        date(2026, 12, 28),
    ):
        assert d in days, d
    assert date(2026, 3, 17) not in days  # St Patrick's Day is a holiday in Northern Ireland only
    assert not is_working_day(date(2026, 12, 26)) and is_working_day(date(2026, 12, 29))


@pytest.mark.parametrize("text", ["six weeks", "3 fortnights", "-2 days", "", "2.5 weeks", "weeks"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        Duration.parse(text)


# "15 working days beginning with the day it became aware" (reg 15(2)): that day is day 1 when it is a
# working day, otherwise the next working day is. Worked by hand (rules section 9).
BEGINNING_WITH = [
    (date(2025, 12, 15), date(2026, 1, 7), "Mon 15 Dec 2025 is day 1; 25, 26 Dec and 1 Jan skipped: Wed 7 Jan"),
    (date(2025, 12, 13), date(2026, 1, 7), "Sat 13 Dec is not a working day: day 1 is Mon 15 Dec, so Wed 7 Jan"),
    (date(2025, 4, 14), date(2025, 5, 7), "Mon 14 Apr 2025: Good Friday 18 Apr, Easter Monday 21 Apr, 5 May skipped"),
]


@pytest.mark.parametrize(("start", "expected", "why"), BEGINNING_WITH)
def test_working_days_beginning_with_a_day_count_that_day(start: date, expected: date, why: str) -> None:
    assert add(start, Duration.parse("15 working days", inclusive=True)) == expected, why


# The last day to appeal to the SEND Tribunal, TPR 2008 rule 12(2) and (3)(a) as in force since 21 July
# 2020. Worked by hand: each period's end, and the day the appeal is still in time.
TRIBUNAL = [
    (date(2024, 12, 29), date(2025, 1, 2), "Sun 29 Dec 2024: 25 Dec-1 Jan, so the first working day after 1 Jan"),
    (date(2025, 8, 15), date(2025, 9, 1), "Fri 15 Aug 2025: in August, so the first working day after 31 Aug"),
    (date(2025, 12, 27), date(2026, 1, 2), "Sat 27 Dec 2025: Fri 2 Jan 2026 (rules section 9)"),
    (date(2025, 3, 15), date(2025, 3, 17), "Sat 15 Mar 2025: the next working day, Mon 17 Mar"),
    (date(2025, 5, 26), date(2025, 5, 27), "Mon 26 May 2025, spring bank holiday: Tue 27 May"),
    (date(2025, 4, 18), date(2025, 4, 22), "Good Friday 18 Apr 2025: Easter Monday skipped too, Tue 22 Apr"),
    (date(2026, 1, 1), date(2026, 1, 2), "Thu 1 Jan 2026: the first working day after 1 Jan"),
    (date(2027, 12, 24), date(2027, 12, 24), "Fri 24 Dec 2027: a working day before 25 Dec, unchanged"),
    (date(2025, 7, 31), date(2025, 7, 31), "Thu 31 Jul 2025: a working day outside the rule, unchanged"),
    (date(2025, 9, 1), date(2025, 9, 1), "Mon 1 Sep 2025: unchanged"),
]


@pytest.mark.parametrize(("end", "expected", "why"), TRIBUNAL)
def test_the_last_day_to_appeal_follows_tribunal_rule_12(end: date, expected: date, why: str) -> None:
    assert tribunal_appeal_day(end) == expected, why


days = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31))


@given(days, st.integers(0, 200))
def test_weeks_are_seven_days_and_inclusive_is_one_less(d: date, n: int) -> None:
    assert add(d, Duration.parse(f"{n} weeks")) - d == timedelta(weeks=n)
    assert add(d, Duration.parse(f"{n + 1} days", True)) == add(d, Duration.parse(f"{n + 1} days")) - timedelta(1)


@given(days, st.integers(0, 36))
def test_months_keep_the_day_or_take_the_last_of_the_month(d: date, n: int) -> None:
    result = add_months(d, n)
    assert (result.year * 12 + result.month) - (d.year * 12 + d.month) == n
    assert result.day == d.day or (result.day < d.day and (result + timedelta(1)).day == 1)


@given(days, st.integers(1, 30))
def test_working_days_land_on_working_days_after_the_start(d: date, n: int) -> None:
    result = add(d, Duration.parse(f"{n} working days"))
    assert result > d and is_working_day(result)
    assert sum(is_working_day(d + timedelta(k)) for k in range(1, (result - d).days + 1)) == n


@given(days)
def test_the_last_day_to_appeal_is_a_working_day_not_earlier_and_after_the_window_it_ended_in(d: date) -> None:
    result = tribunal_appeal_day(d)
    assert result >= d and is_working_day(result)
    # A period that ends in August, or from 25 December to 1 January, runs on past it (r.12(3)(a)) ...
    if d.month == 8:
        assert result > date(d.year, 8, 31)
    if (d.month, d.day) >= (12, 25):
        assert result > date(d.year + 1, 1, 1)
    if (d.month, d.day) == (1, 1):
        assert result > d
    # ... and one that ends outside them only moves to the next working day (r.12(2)): a Saturday
    # 23 December is in time on Wednesday 27 December, a Saturday 30 July on Monday 1 August.
    if d.month != 8 and not ((d.month, d.day) >= (12, 25) or (d.month, d.day) == (1, 1)):
        assert (result - d).days <= 5
