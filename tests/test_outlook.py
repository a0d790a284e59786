"""What is coming, on the record (SQLite and PostgreSQL), with answers known by construction: the
annual reviews that will be late at a team's pace, the work falling due each week, a limit whose
like all ran late flagged at risk from its stage and one whose like all finished early not, and the
command line's forecast, at-risk list and measure."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from conftest import CW
from test_reports import START, assessment
from walking import Cli, walk_config

from engine.app import App
from engine.clock import FixedClock, SystemClock
from engine.outlook import at_risk, forecast

T = date(2026, 3, 2)  # a Monday


def review_case(core: App, clock: FixedClock, due: date) -> int:
    """An annual review whose 12 months end on ``due``, opened ten weeks before T."""
    starts = due.replace(year=due.year - 1) + timedelta(days=1)
    clock.set(T - timedelta(weeks=10))
    case_id = core.cases.open_case(
        name="Generated Child", date_of_birth=date(2014, 5, 1), workflow="annual_review", actor=CW,
        inputs={"period_starts_on": starts}, contacts=[], caseworker="cw",
    ).case_id  # fmt: skip
    with core.store.unit() as unit:
        assert unit.fetch("SELECT due_on FROM deadline WHERE case_id = :c AND name = 'review'", {"c": case_id})[0][
            0
        ] in (
            due,
            due.isoformat(),
        )
    return case_id


def hold_review(core: App, clock: FixedClock, case_id: int, on: date) -> None:
    """Meeting arranged three weeks before ``on``, held, and the plan kept on ``on``."""
    clock.set(on - timedelta(days=21))
    core.cases.fire(case_id, "arrange_meeting", actor=CW, inputs={"meeting_on": on - timedelta(days=2)})
    clock.set(on - timedelta(days=2))
    core.cases.fire(case_id, "hold_meeting", actor=CW)
    clock.set(on)
    core.cases.fire(case_id, "keep_plan", actor=CW)


def test_reviews_late_at_the_pace_of_the_last_12_weeks(core: App, clock: FixedClock) -> None:
    # Six reviews held in the last 12 weeks: a pace of 0.5 a week.
    for n in range(6):
        held = review_case(core, clock, T + timedelta(days=34))
        hold_review(core, clock, held, T - timedelta(days=10 + n))
    # Waiting: one overdue, then due on days 3, 10, 17 and 75. Earliest first at 0.5 a week, the
    # (n+1)th is done on day 14(n+1): days 14, 28, 42, 56 and 70, so only the last is in time.
    dues = [T - timedelta(days=5), T + timedelta(days=3), T + timedelta(days=10), T + timedelta(days=17),
            T + timedelta(days=75)]  # fmt: skip
    waiting = [review_case(core, clock, d) for d in dues]
    clock.set(T)
    found = forecast(core, T)
    (team,) = found.reviews
    assert (team["held_a_week"], team["overdue_now"], team["due_in_period"], team["late_at_this_pace"]) == (
        0.5, 1, 4, 4,
    )  # fmt: skip
    assert [x["case"] for x in team["late"]] == waiting[:4]
    assert team["late"][0]["held_about"] == (T + timedelta(days=14)).isoformat()
    reviews = [row["reviews"] for row in found.by_week]
    assert reviews[:3] == [1, 1, 1] and reviews[10] == 1 and sum(reviews) == 4
    assert found.overdue_now["reviews"] == 1
    # Someone who may see none of these cases sees none of it.
    hidden = forecast(core, T, lambda caseworker: caseworker != "cw")
    assert hidden.reviews == [] and sum(row["total"] for row in hidden.by_week) == 0


def test_a_limit_is_at_risk_when_the_cases_stuck_as_long_at_its_stage_all_ran_late(
    core: App, clock: FixedClock
) -> None:
    earlier = START - timedelta(days=365)
    for _ in range(9):
        assessment(core, clock, 175, start=earlier)  # the draft on day 100, the final plan on day 175: late
    for _ in range(9):
        assessment(core, clock, 126, start=earlier)  # ... or on day 126: in time
    late = assessment(core, clock, 0, draft_only=True)  # a year later, at the draft since day 100
    clock.set(START + timedelta(days=110))
    found = {r["case"]: r for r in at_risk(core, clock.today()).rows if r["deadline"] == "final_plan"}
    row = found[late]
    # 10 days at the draft; of those that stayed at the draft 10 days or more, half finished on day 126
    # (26 days there) and half on day 175 (75 days): 40 days were left, so half ran late.
    assert row["basis"] == "stage" and row["percent"] == 50 and row["at_risk"]
    assert "10 days at “Draft issued” so far, 30 days left" in row["why"]
    clock.set(START + timedelta(days=130))
    row = {r["case"]: r for r in at_risk(core, clock.today()).rows if r["deadline"] == "final_plan"}[late]
    # 30 days there: only the late ones stayed that long.
    assert row["percent"] == 100 and "Of 10 limits like this one" in row["why"]


def test_the_command_line_forecast_at_risk_and_measure(tmp_path: Path) -> None:
    cli = Cli(walk_config(tmp_path))
    out = cli("report", "forecast")
    assert "Falling due from the week of" in out and "WEEK OF" in out
    data = json.loads(cli("report", "forecast", "--json", "--weeks", "4"))
    monday = date.fromisoformat(data["weeks"][0])
    assert monday.weekday() == 0 and len(data["weeks"]) == 4 and len(data["by_week"]) == 4
    assert set(data["overdue_now"]) == {"reviews", "transfers", "advice", "other"}
    assert "0 of 0 open time limits at risk" in cli("report", "at-risk")
    chart = tmp_path / "out" / "at-risk.svg"
    assert "chart written" in cli("report", "at-risk", "--chart", str(chart)) and "<title" in chart.read_text()
    # Council-wide counts are for managers and auditors, as the web's Reports are.
    assert "for managers and auditors" in cli("report", "at-risk", "--measure", ok=False)
    manager = cli.acting_as("morgan.demo")
    measured = json.loads(manager("report", "at-risk", "--measure", "--json"))
    today = SystemClock().today().isoformat()  # the command's today: the date in England, not this machine's
    assert measured["limits_asked"] == 0 and measured["lead_days"] == 28 and measured["to"] < today
    manager("report", "at-risk", "--measure", "--to", today, ok=False)  # outcomes not yet known
