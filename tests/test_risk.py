"""Breach prediction on histories whose right answers are known by construction: the survival curve's
own figures, slow cases still open counted (not forgotten), the stage a case is stuck at telling apart
cases the limit alone cannot, too little history giving no estimate, and the backtest counting
breaches caught, missed and false alarms as it should."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.risk import MIN_AT_RISK, Limit, Survival, backtest, learn

K = ("needs_assessment", "final_plan")
DAY0 = date(2025, 1, 6)


def limit(n: int, start: date, closes_after: int | None, *, allowed: int = 42, stages: tuple = ()) -> Limit:
    closed = start + timedelta(days=closes_after) if closes_after is not None else None
    return Limit(n, K, start, start + timedelta(days=allowed), closed, stages)


def test_the_survival_curve_is_kaplan_meier() -> None:
    # Ended at 1, 2, 3; one still going when last seen at 2.
    curve = Survival([(1, True), (2, True), (2, False), (3, True)])
    assert curve.at(0) == 1.0
    assert curve.at(1) == pytest.approx(0.75)  # 4 at risk, 1 ended
    assert curve.at(2.5) == pytest.approx(0.5)  # then 3 at risk, 1 ended
    assert curve.at(3) == pytest.approx(0.0)  # the one left ends
    assert curve.beyond(2) == 1 and curve.beyond(0) == 4


def test_half_late_gives_even_odds_at_the_start_and_certainty_once_past_the_quick_ones() -> None:
    past = [limit(n, DAY0, 30 if n % 2 else 50) for n in range(20)]  # 10 on time (day 30), 10 late (day 50)
    start = DAY0 + timedelta(days=100)
    today = start + timedelta(days=10)
    model = learn([*past, limit(99, start, None)], today)
    early = model.chance(limit(99, start, None))
    assert early.basis == "limit" and early.percent == 50 and early.from_limits == 20  # not itself: not known yet
    later = learn([*past, limit(98, DAY0 + timedelta(days=80), None)], DAY0 + timedelta(days=80 + 35))
    found = later.chance(limit(98, DAY0 + timedelta(days=80), None))
    # Day 35: only the 10 late ones were still open on day 35, so all of those like it ran late.
    assert found.percent == 100 and found.from_limits == 10 and "Day 35 of 42" in found.why


def test_slow_cases_still_open_are_counted_not_forgotten() -> None:
    # 10 met on day 30; 10 still open on day 60 (already late). Counting only finished limits would
    # say none is ever late.
    past = [limit(n, DAY0, 30) for n in range(10)] + [limit(10 + n, DAY0, None) for n in range(10)]
    today = DAY0 + timedelta(days=60)
    target = limit(99, today - timedelta(days=35), None)
    assert learn([*past, target], today).chance(target).percent == 100


def test_the_stage_a_case_is_stuck_at_tells_apart_what_the_limit_alone_cannot() -> None:
    def stages(start: date, drafting_on: int) -> tuple:
        return ((start, "assessing"), (start + timedelta(days=drafting_on), "drafting"))

    # Quick ones reach drafting on day 5 and finish on day 30; slow ones reach it on day 35, finish on 50.
    past = [limit(n, DAY0, 30, stages=stages(DAY0, 5)) for n in range(10)]
    past += [limit(10 + n, DAY0, 50, stages=stages(DAY0, 35)) for n in range(10)]
    start = DAY0 + timedelta(days=200)
    today = start + timedelta(days=20)
    stuck = limit(90, start, None, stages=((start, "assessing"),))  # still assessing on day 20
    moving = limit(91, start, None, stages=stages(start, 5))  # drafting since day 5
    model = learn([*past, stuck, moving], today)
    s, m = model.chance(stuck), model.chance(moving)
    assert s.basis == "stage" and s.percent == 100 and "“Assessing”" in s.why
    assert m.basis == "stage" and m.percent == 0
    # The limit alone (day 20 of 42) cannot tell them apart: even odds for both.
    assert learn(past, today).chance(limit(92, start, None)).percent == 50


def test_too_little_history_gives_no_estimate() -> None:
    past = [limit(n, DAY0, 50) for n in range(MIN_AT_RISK - 1)]
    today = DAY0 + timedelta(days=100)
    found = learn(past, today).chance(limit(99, today - timedelta(days=3), None))
    assert found.chance is None and found.basis == "none" and "Not enough" in found.why
    # One more finished, and there is an answer: it was the count, not something else, that held it back.
    more = learn([*past, limit(50, DAY0, 50)], today).chance(limit(99, today - timedelta(days=3), None))
    assert more.percent == 100 and more.from_limits == MIN_AT_RISK


def test_a_new_service_with_every_limit_still_open_flags_nothing() -> None:
    # Go-live: twenty requests, all a few days old and open. None has reached its last day, so none
    # says whether such limits are met or missed: no estimate, never "100%".
    today = DAY0 + timedelta(days=5)
    stages = ((DAY0, "request_received"),)
    opened = [limit(n, DAY0 + timedelta(days=n % 5), None, stages=stages) for n in range(20)]
    model = learn(opened, today)
    assert all(model.chance(lim).chance is None for lim in opened)
    # Once ten of them are past their last day still open, those ten are evidence of lateness.
    later = DAY0 + timedelta(days=50)
    newer = limit(99, later - timedelta(days=3), None, stages=((later - timedelta(days=3), "request_received"),))
    assert learn([*opened, newer], later).chance(newer).percent == 100


def test_the_backtest_counts_breaches_caught_and_missed_and_false_alarms() -> None:
    # A limit starts every week for two years: every third one is slow and stays assessing (missed),
    # the others move to drafting on day 5 and are met on day 20.
    limits = []
    for n in range(104):
        start = DAY0 + timedelta(weeks=n)
        if n % 3 == 0:
            limits.append(limit(n, start, 60, stages=((start, "assessing"), (start + timedelta(days=55), "drafting"))))
        else:
            limits.append(limit(n, start, 20, stages=((start, "assessing"), (start + timedelta(days=5), "drafting"))))
    result = backtest(limits, DAY0 + timedelta(days=365), DAY0 + timedelta(days=600), lead_days=28)
    d = result.as_dict()
    # Asked on day 14 (28 days before day 42): the slow ones are still assessing after 14 days, which
    # only slow ones ever were; the quick ones are drafting.
    assert d["breaches"] > 0 and d["breaches_not_flagged"] == 0 and d["false_alarms"] == 0
    assert d["breaches_flagged"] == d["breaches"] and d["share_of_breaches_flagged"] == 1.0
    assert d["limits_asked"] == d["breaches"] + d["met_and_not_flagged"]
    assert d["brier_score"] < d["brier_score_of_past_rate"]
    # Nothing after the period's end is known: a limit due later is never asked about.
    assert backtest(limits, DAY0 + timedelta(days=900), DAY0 + timedelta(days=1000)).asked == 0


def _by_hand(samples: list[tuple[int, bool]], t: float) -> float:
    """S(t) as the textbook writes it: over each time an ending happened by ``t``, the share of those
    still at risk then that did not end there."""
    s = 1.0
    for u in sorted({x for x, ended in samples if ended and x <= t}):
        at_risk = sum(1 for x, _e in samples if x >= u)
        s *= 1.0 - sum(1 for x, e in samples if e and x == u) / at_risk
    return s


@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 60), st.booleans()), max_size=300),
    st.lists(st.integers(0, 45), min_size=1, max_size=12),
)
@settings(max_examples=150, deadline=None)
def test_each_stages_curves_are_those_of_the_limits_that_stayed_as_long(
    samples: list[tuple[int, int, bool]], asked: list[int]
) -> None:
    """The curves a stage's limits share, made from tallies kept along the way, answer exactly as a
    curve made afresh from the limits that stayed at least as long, and as the textbook's formula."""
    model = learn([], DAY0)
    model.by_stage[(K, "drafting")] = samples
    for spent in asked:  # in any order: a curve made after a longer or shorter one is the same
        curve, like = model._stayed(K, "drafting", spent)
        stayed = [(r, ended) for stay, r, ended in samples if stay >= spent]
        afresh = Survival(stayed)
        assert like == len(stayed) == curve.count
        for t in (-1, 0, 1, 5, 17.5, 30, 59, 60, 61):
            assert curve.at(t) == afresh.at(t) == pytest.approx(_by_hand(stayed, t))
            assert curve.beyond(t) == afresh.beyond(t) == sum(1 for r, _e in stayed if r > t)
            for limit in (0, 10, 42):
                known = curve.known(t, limit)
                ended = sum(1 for r, e in stayed if e and r > t)
                going = sum(1 for r, e in stayed if not e and r > max(t, limit))
                assert known == afresh.known(t, limit) == (ended + going, ended)
