"""One answer to "where does this deadline stand today?", for every view and the sweep."""

from __future__ import annotations

from datetime import date, timedelta

from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st

from engine import alerts
from engine.catalogue import Catalogue
from engine.standing import standing

CATALOGUE = Catalogue.from_folder(ROOT / "workflows")
DUE = date(2025, 2, 17)


def at(as_of: date, **kw: object) -> tuple[str, int, str]:
    s = standing(**{"status": "open", "due_on": DUE, "closed_on": None, "party": "council", "as_of": as_of, **kw})
    return s.state, s.days, s.label


def test_an_open_limit_is_due_then_due_today_then_overdue_by_the_days_since_its_last_day() -> None:
    assert at(date(2025, 2, 10)) == ("due", 7, "due in 7 days")
    assert at(date(2025, 2, 16)) == ("due", 1, "due in 1 day")
    assert at(DUE) == ("due_today", 0, "due today")
    assert at(date(2025, 2, 18)) == ("overdue", 1, "overdue (1 day late)")
    # The sweep may already have marked it breached: the view says the same either way.
    assert (
        at(date(2026, 10, 3), status="breached") == at(date(2026, 10, 3)) == ("overdue", 593, "overdue (593 days late)")
    )


def test_a_limit_met_after_its_last_day_is_met_late_not_both_met_and_breached() -> None:
    late = {"status": "breached", "closed_on": date(2025, 2, 20)}
    assert at(date(2025, 3, 1), **late) == ("met_late", 3, "met late (3 days)")
    assert at(date(2025, 3, 1), status="met", closed_on=DUE) == ("met", 0, "met")
    assert at(date(2025, 3, 1), status="cancelled", closed_on=date(2025, 2, 1)) == ("cancelled", 0, "cancelled")
    assert at(date(2025, 3, 1), status="breached", closed_on=date(2025, 2, 20), excused=True)[2] == (
        "met late (3 days) (excused)"
    )


def test_a_familys_period_ends_and_is_never_late() -> None:
    assert at(date(2025, 3, 1), party="family") == ("ended", 12, "ended")
    assert at(date(2025, 3, 1), party="family", status="met", closed_on=date(2025, 2, 20)) == ("met", 0, "met")


@given(st.integers(-400, 400))
def test_the_views_overdue_day_is_the_sweeps_breach_day(offset: int) -> None:
    definition = CATALOGUE.latest("needs_assessment")
    spec = definition.deadline("decide_whether_to_assess")
    breach_day = next(p.on for p in alerts.plan(definition, spec, "council", DUE) if p.kind is alerts.AlertKind.BREACH)
    as_of = DUE + timedelta(days=offset)
    assert (at(as_of)[0] == "overdue") == (as_of >= breach_day)
