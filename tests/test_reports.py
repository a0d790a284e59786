"""Timeliness from the record, on histories whose right answers are known by construction: plans on
time, on the last day, late, late with an exception; a withdrawn request and a refusal that count for
nothing in the 20 weeks; each stage's days; advice by adviser; visibility; the command line and its
chart (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from pathlib import Path

from conftest import CW, CW2
from walking import Cli, walk_config

from engine.app import App
from engine.charts import bar_chart
from engine.clock import FixedClock
from engine.demo import generated_plan
from engine.portal import Portal
from engine.reports import timeliness
from engine.store.repository import ContactRecord

START = date(2025, 1, 6)  # a Monday: every request below arrives on it


def assessment(
    core: App,
    clock: FixedClock,
    final_day: int | None,
    *,
    who: str = "cw",
    excuse: bool = False,
    start: date = START,
    draft_only: bool = False,
) -> int:
    """A request on ``start``; agreed on day 30, a plan decided on day 60, the draft on day 100 and the
    final plan on ``final_day`` (None: the request is withdrawn on day 30 instead; ``draft_only``: the
    draft and nothing after it)."""
    actor = CW if who == "cw" else CW2
    clock.set(start)
    case_id = core.cases.open_case(
        name="Generated Child", date_of_birth=date(2016, 3, 1), workflow="needs_assessment", actor=actor,
        inputs={"request_received_on": start, "requested_by": "parent"},
        contacts=[ContactRecord("parent", "Generated Parent", "parent@example.org"),
                  ContactRecord("educational_psychologist", "Demo EP", "ep@example.org"),
                  ContactRecord("health", "Demo ICB", "icb@example.org")],
        caseworker=who,
    ).case_id  # fmt: skip
    clock.set(start + timedelta(days=30))
    if final_day is None:
        core.cases.fire(case_id, "withdraw_request", actor=actor)
        return case_id
    core.cases.fire(case_id, "agree_to_assess", actor=actor)
    clock.set(start + timedelta(days=60))
    core.cases.fire(case_id, "decide_to_issue", actor=actor)
    clock.set(start + timedelta(days=100))
    core.plans.edit(case_id, generated_plan(random.Random(case_id), "Child"), actor=actor)
    core.cases.fire(case_id, "issue_draft_plan", actor=actor)
    if draft_only:
        return case_id
    if excuse:
        core.cases.record_exception(case_id, "final_plan", "personal_circumstances", "Family abroad for 6 weeks",
                                    actor=actor)  # fmt: skip
    clock.set(start + timedelta(days=final_day))
    core.cases.fire(
        case_id, "issue_final_plan", actor=actor,
        inputs={"named_institution": "Demo Primary", "no_consultation_reason": "the family's own choice, agreed"},
    )  # fmt: skip
    return case_id


def test_new_plans_within_20_weeks_with_and_without_exceptions_as_the_dfe_counts_them(
    core: App, clock: FixedClock
) -> None:
    assessment(core, clock, 126)  # 18 weeks: on time
    assessment(core, clock, 140)  # 20 weeks, the last day: on time
    assessment(core, clock, 154, who="cw2")  # 22 weeks: late
    assessment(core, clock, 175, excuse=True)  # 25 weeks, with an exception: late, and left out without them
    assessment(core, clock, None)  # withdrawn: no plan, nothing counted
    clock.set(START)
    refused = core.cases.open_case(
        name="Refused Child", date_of_birth=date(2016, 3, 1), workflow="needs_assessment", actor=CW,
        inputs={"request_received_on": START}, contacts=[], caseworker="cw",
    ).case_id  # fmt: skip
    clock.set(START + timedelta(days=40))  # decided late (6 weeks is day 42: on time, in fact)
    core.cases.fire(refused, "refuse_to_assess", actor=CW, inputs={"reasons": "Needs met at school"})

    found = timeliness(core, START, START + timedelta(days=365))
    new = found.as_dict()["new_plans"]
    assert (new["issued"], new["within_20_weeks"], new["percent"]) == (4, 2, 50.0)
    assert new["with_exception"] == 1
    assert new["excluding_exceptions"] == {"count": 3, "on_time": 2, "percent": 66.7}
    assert new["median_weeks"] == 21.0  # 18, 20, 22, 25
    assert dict((b["weeks"], b["plans"]) for b in new["weeks_bands"]) == {
        "up to 10": 0, "11 to 15": 0, "16 to 20": 2, "21 to 25": 2, "26 to 30": 0, "31 to 40": 0, "over 40": 0,
    }  # fmt: skip
    stages = {s["stage"]: s for s in found.stages}
    assert stages["request_received"]["median_days"] == 30
    assert stages["assessing"]["median_days"] == 30
    assert stages["drafting"]["median_days"] == 40
    assert stages["draft_issued"]["median_days"] == 47  # 26, 40, 54, 75
    assert stages["draft_issued"]["longest_days"] == 75
    teams = {t["caseworker"]: (t["count"], t["on_time"]) for t in found.by_caseworker}
    assert teams == {"cw": (3, 2), "cw2": (1, 0)}
    limits = {limit["deadline"]: limit for limit in found.limits if limit["workflow"] == "needs_assessment"}
    final = limits["final_plan"]
    assert (final["on_time"], final["late"], final["late_with_exception"]) == (2, 1, 1)
    assert limits["decide_whether_to_assess"]["closed"] == 5 and limits["decide_whether_to_assess"]["on_time"] == 5
    assert "notify_not_to_issue" not in limits, "cancelled by a decision to issue: no limit to meet"
    assert limits["final_plan"]["source"] == "SEND Regulations 2014 reg 13(2)"
    # Only what was closed in the period: the months before the plans were issued count none of them.
    assert timeliness(core, START, START + timedelta(days=120)).all_plans.count == 0


def test_advice_by_adviser_and_visibility(core: App, clock: FixedClock) -> None:
    portal = Portal(core)
    case_id = assessment(core, clock, None)
    clock.set(START)
    other = core.cases.open_case(
        name="Generated Child", date_of_birth=date(2016, 3, 1), workflow="needs_assessment", actor=CW,
        inputs={"request_received_on": START},
        contacts=[ContactRecord("educational_psychologist", "Demo EP", "ep2@example.org"),
                  ContactRecord("health", "Demo ICB", "icb2@example.org")],
        caseworker="cw",
    ).case_id  # fmt: skip
    core.cases.fire(other, "agree_to_assess", actor=CW)
    with core.store.unit() as unit:
        ids = dict(unit.fetch("SELECT role, id FROM contact WHERE case_id = :c", {"c": other}))
    portal.request_advice(other, ids["educational_psychologist"], actor=CW)
    portal.request_advice(other, ids["health"], actor=CW)
    requests = {r["role"]: r["id"] for r in portal.advice_requests(other)}
    clock.set(START + timedelta(days=20))
    portal.record_advice_outside(other, requests["educational_psychologist"], actor=CW)  # 20 days: on time
    clock.set(START + timedelta(days=50))
    portal.record_advice_outside(other, requests["health"], actor=CW)  # 50 days: after the 6 weeks
    found = timeliness(core, START, START + timedelta(days=365))
    advice = {a["adviser"]: (a["answered"], a["on_time"], a["median_days"]) for a in found.advice}
    assert advice == {"educational_psychologist": (1, 1, 20), "health": (1, 0, 50)}
    # A reader who may see none of cw's cases sees none of these figures.
    hidden = timeliness(core, START, START + timedelta(days=365), lambda caseworker: caseworker != "cw")
    assert hidden.advice == [] and hidden.limits == []
    assert case_id


def test_a_chart_escapes_its_labels_and_draws_each_value_and_the_reference() -> None:
    svg = bar_chart(
        "Weeks <taken>", "A & B", [("<script>", 50.0), ("Empty", None)], unit="%", top=100,
        reference=("England", 46.0), chart_id="c",
    )  # fmt: skip
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "Weeks &lt;taken&gt;" in svg
    assert 'role="img"' in svg and 'aria-labelledby="c-title c-desc"' in svg
    assert re.search(r'<rect x="190" y="34" width="180.0"', svg), "half of the 360 wide scale"
    assert "no data" in svg and "England: 46%" in svg


def test_ehcp_report_timeliness_prints_the_figures_and_writes_the_charts(tmp_path: Path) -> None:
    cli = Cli(walk_config(tmp_path))
    out = cli("report", "timeliness", "--from", "2025-01-01", "--to", "2025-12-31")
    assert "New EHC plans issued: 0" in out and "Where the weeks go" in out
    chart = tmp_path / "charts" / "timeliness.svg"
    printed = cli("report", "timeliness", "--chart", str(chart))
    assert chart.exists() and chart.read_text().count("<title") == 4 and "charts written" in printed
    cli("report", "timeliness", "--chart", str(chart), ok=False)  # not over a file without --force
    assert '"new_plans"' in cli("report", "timeliness", "--json")
    assert "final_plan:" in cli("report")  # the one-limit report as before
