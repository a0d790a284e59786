"""Time is an input: a fixed clock gives the same date whatever the season; moments are UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime

from engine.clock import FixedClock, london_date


def test_a_fixed_clock_is_noon_in_london_on_its_date_in_summer_and_winter() -> None:
    for day in (date(2025, 1, 15), date(2025, 7, 15), date(2025, 3, 30), date(2025, 10, 26)):
        clock = FixedClock(day)
        moment = clock.now()
        assert moment.tzinfo is not None and moment.utcoffset() == UTC.utcoffset(None)
        assert london_date(moment) == day


def test_moments_near_midnight_take_the_london_date_across_the_clock_change() -> None:
    # 23:30 UTC on 30 Mar 2025 is 00:30 BST on 31 Mar; in winter 23:30 UTC is still the same day.
    assert london_date(datetime(2025, 3, 30, 23, 30, tzinfo=UTC)) == date(2025, 3, 31)
    assert london_date(datetime(2025, 1, 30, 23, 30, tzinfo=UTC)) == date(2025, 1, 30)


def test_moments_on_one_simulated_day_keep_their_order() -> None:
    clock = FixedClock(date(2025, 1, 6))
    assert clock.now() < clock.now()
    clock.advance(365)
    assert clock.today() == date(2026, 1, 6)
