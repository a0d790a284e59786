"""The re-assessment workflow walked through the command line: a request, the council's decision within
15 days, advice, the draft and the family's 15 days, and the final plan within 14 weeks of the
notice that the council would re-assess (CFA 2014 s.44(2)-(3); SEND Regulations 2014 regs 24-27).

Dates are worked out by hand from the regulations (tests/golden/reassessment.yaml has the table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import walking
from walking import Cli, deadlines, states, steps, walk_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return walk_config(tmp_path)


@pytest.fixture
def cli(config: Path) -> Cli:
    return Cli(config)


def started_with(view: dict[str, Any], workflow: str) -> dict[str, Any]:
    """The inputs the named workflow was started with (its first history entry)."""
    inputs: dict[str, Any] = next(h for h in view["history"] if h["workflow"] == workflow)["inputs"]
    return inputs


RE = "reassessment"


def open_case(cli: Cli, on: str, *sets: str, dob: str = "2015-02-03", workflow: str = RE) -> int:
    return walking.open_case(cli, on, *sets, dob=dob, workflow=workflow)


def test_a_case_with_a_plan_is_reassessed_and_the_final_plan_opens_the_appeal_window(cli: Cli) -> None:
    # A plan made on Mon 19 May 2025 after an EHC needs assessment.
    case = open_case(cli, "2025-01-06", workflow="needs_assessment")
    cli.fire(case, "agree_to_assess", "2025-02-10")
    cli.fire(case, "decide_to_issue", "2025-04-01")
    cli.fire(case, "issue_draft_plan", "2025-04-11")
    cli.fire(case, "consult_institutions", "2025-04-14", "institutions=Demo School")
    cli.fire(case, "record_institution_response", "2025-04-28")
    cli.fire(case, "issue_final_plan", "2025-05-19", "named_institution=Demo School")
    # The parent asks for a re-assessment on Wed 1 Oct 2025.
    cli(
        "case", "start", str(case), RE, "--on", "2025-10-01",
        "--set", "requested_by=parent", "--set", "request_received_on=2025-10-01",
    )  # fmt: skip
    view = cli.show(case, "2025-10-01")
    decide = next(d for d in view["deadlines"] if d["name"] == "decide_whether_to_reassess")
    # Within 15 days of receiving the request: Wed 1 Oct + 15 = Thu 16 Oct 2025.
    assert (decide["due"], decide["regulation"], decide["basis"]) == (
        "2025-10-16",
        "SEND Regulations 2014 reg 25(1)",
        "statutory",
    )
    out = cli.fire(
        case, "agree_to_reassess", "2025-10-14",
        "decision_sent_on=2025-10-14", "advice_requested_on=2025-10-14", workflow=RE,
    )  # fmt: skip
    assert "2026-01-20" in out and "reg 27(2)" in out
    cli.fire(case, "record_advice_received", "2025-11-24", workflow=RE)
    cli.fire(case, "decide_to_amend", "2025-12-01", "change=amend", workflow=RE)
    cli.fire(case, "issue_draft_plan", "2025-12-05", "draft_served_on=2025-12-05", workflow=RE)
    cli.fire(case, "consult_institutions", "2025-12-08", "institutions=Demo Special School", workflow=RE)
    cli.fire(case, "record_institution_response", "2025-12-12", "replied_on=2025-12-12", workflow=RE)
    # The family responds on Tue 16 Dec, before their 15 days (5 to 19 Dec) end: the plan can be finalised.
    out = cli.fire(
        case, "issue_final_plan", "2025-12-16",
        "named_institution=Demo Special School", "plan_issued_on=2025-12-16", "family_responded=yes", workflow=RE,
    )  # fmt: skip
    assert "started disagreement" in out
    view = cli.show(case)
    found = states(view)
    assert ("needs_assessment", "final_plan_issued", True) in found
    assert ("annual_review", "review_due", False) in found
    # The re-assessment ended with the plan and started its own disagreement (the newest workflow).
    assert found[-2:] == [(RE, "plan_finalised", True), ("disagreement", "window_open", False)]
    assert steps(view, RE) == [
        ("2025-10-01", "start", "request_received"),
        ("2025-10-14", "agree_to_reassess", "reassessing"),
        ("2025-11-24", "record_advice_received", "advice_received"),
        ("2025-12-01", "decide_to_amend", "drafting"),
        ("2025-12-05", "issue_draft_plan", "draft_issued"),
        ("2025-12-08", "consult_institutions", "consulting"),
        ("2025-12-12", "record_institution_response", "consulting"),
        ("2025-12-16", "issue_final_plan", "plan_finalised"),
    ]
    assert deadlines(view, RE) == {
        "decide_whether_to_reassess": [("2025-10-16", "met")],
        "advice": [("2025-11-25", "met")],  # Tue 14 Oct + 6 weeks
        "final_plan": [("2026-01-20", "met")],  # Tue 14 Oct (the notice) + 14 weeks, not from the request
        "family_representations": [("2025-12-19", "met")],  # 15 days beginning with Fri 5 Dec
        "institution_response": [("2025-12-23", "met")],  # Mon 8 Dec + 15 days (guidance)
    }
    # The content of the final plan can be appealed: two months from Tue 16 Dec 2025 (Mon 16 Feb 2026).
    disagreements = [h for h in view["history"] if h["workflow"] == "disagreement" and h["trigger"] == "start"]
    assert disagreements[-1]["inputs"]["decision"] == "plan_content"
    assert deadlines(view, "disagreement")["appeal_window"][-1] == ("2026-02-16", "open")
    # The annual review the first plan started runs on: a re-assessment is not a review (CFA s.44(1)).
    assert deadlines(view, "annual_review") == {"review": [("2026-05-18", "open")]}


def test_a_refusal_opens_a_disagreement_about_not_reassessing(cli: Cli) -> None:
    case = open_case(cli, "2025-03-03", "requested_by=school", "request_received_on=2025-03-03")
    view = cli.show(case, "2025-03-03")
    assert deadlines(view, RE) == {"decide_whether_to_reassess": [("2025-03-18", "open")]}  # Mon 3 Mar + 15
    # The six-month ground (reg 24) needs the date of the last assessment.
    err = cli.fire(case, "refuse_to_reassess", "2025-03-14", "ground=assessed_within_six_months", "reasons=x", ok=False)
    assert "6 months" in err and "reg 24" in err
    out = cli.fire(
        case, "refuse_to_reassess", "2025-03-14", "ground=assessed_within_six_months",
        "last_assessed_on=2024-11-20", "reasons=Re-assessed in November 2024", "decision_sent_on=2025-03-14",
    )  # fmt: skip
    assert "started disagreement" in out
    view = cli.show(case)
    assert states(view) == [(RE, "not_reassessing", True), ("disagreement", "window_open", False)]
    assert deadlines(view, RE) == {"decide_whether_to_reassess": [("2025-03-18", "met")]}
    assert started_with(view, "disagreement")["decision"] == "not_to_reassess"
    # CFA 2014 s.51(2)(d): two months from the notice of Fri 14 Mar 2025 is Wed 14 May 2025.
    assert deadlines(view, "disagreement")["appeal_window"] == [("2025-05-14", "open")]
    assert deadlines(view, "disagreement")["contact_mediation_adviser"] == [("2025-05-14", "open")]


def test_on_the_councils_own_initiative_there_is_no_15_days_and_the_14_weeks_run_from_its_decision(cli: Cli) -> None:
    case = open_case(cli, "2025-12-01", "requested_by=council_initiative", "request_received_on=2025-12-01")
    assert deadlines(cli.show(case, "2025-12-01"), RE) == {}
    # Nobody asked, so there is nothing to refuse.
    err = cli.fire(case, "refuse_to_reassess", "2025-12-05", "ground=not_necessary", "reasons=x", ok=False)
    assert "only a request can be refused" in err
    cli.fire(
        case, "agree_to_reassess", "2025-12-12",
        "decided_on=2025-12-05", "decision_sent_on=2025-12-12", "advice_requested_on=2025-12-12",
    )  # fmt: skip
    final = next(d for d in cli.show(case)["deadlines"] if d["name"] == "final_plan")
    # Decided Fri 5 Dec 2025: + 14 weeks = Fri 13 Mar 2026.
    assert (final["due"], final["regulation"]) == ("2026-03-13", "SEND Regulations 2014 reg 27(2); CFA 2014 s.44(3)")


def test_a_late_final_plan_is_breached_and_only_reg_27s_exceptions_excuse_it(cli: Cli) -> None:
    case = open_case(cli, "2025-01-06", "requested_by=young_person", "request_received_on=2025-01-06")
    cli.fire(case, "agree_to_reassess", "2025-01-20", "decision_sent_on=2025-01-20", "advice_requested_on=2025-01-20")
    cli.fire(case, "decide_to_amend", "2025-03-10", "change=replace")
    cli.fire(case, "issue_draft_plan", "2025-04-14", "draft_served_on=2025-04-14")
    # A refused step says why, with the regulation: the 15 days beginning Mon 14 Apr end Mon 28 Apr.
    same = "no_consultation_reason=The plan still names Demo School, consulted in 2024"
    err = cli.fire(case, "issue_final_plan", "2025-04-25", "named_institution=Demo School", same, ok=False)
    assert "15 days" in err and "reg 13(1)" in err
    # Naming a school needs its consultation first, or the reason none was needed (ss.39-40).
    err = cli.fire(case, "issue_final_plan", "2025-05-06", "named_institution=Demo School", ok=False)
    assert "consult" in err and "reg 27(1)" in err
    # Due Mon 28 Apr 2025 (14 weeks from the notice of Mon 20 Jan); sent Tue 6 May: late.
    cli.fire(case, "issue_final_plan", "2025-05-06", "named_institution=Demo School", "plan_issued_on=2025-05-06", same)
    view = cli.show(case)
    assert deadlines(view, RE)["final_plan"] == [("2025-04-28", "breached")]
    assert deadlines(view, RE)["family_representations"] == [("2025-04-28", "met")]
    err = cli("case", "exception", str(case), "final_plan", "--head", "representations", "--reason", "x", ok=False)
    assert "allowed: school_closure, personal_circumstances, absence_from_area" in err
    out = cli(
        "case", "exception", str(case), "final_plan", "--head", "absence_from_area",
        "--reason", "Family abroad for five weeks in March", "--on", "2025-05-06",
    )  # fmt: skip
    assert "excused" in out
    final = next(d for d in cli.show(case)["deadlines"] if d["name"] == "final_plan")
    assert final["status"] == "breached" and final["excused"] is True


def test_a_decision_not_to_amend_ends_the_14_weeks_and_opens_a_disagreement(cli: Cli) -> None:
    case = open_case(cli, "2025-06-02", "requested_by=parent", "request_received_on=2025-06-02")
    cli.fire(case, "agree_to_reassess", "2025-06-16", "decision_sent_on=2025-06-16", "advice_requested_on=2025-06-16")
    out = cli.fire(
        case,
        "decide_not_to_amend",
        "2025-08-01",
        "reasons=The plan still meets the needs",
        "decision_sent_on=2025-08-01",
    )
    assert "started disagreement" in out
    view = cli.show(case)
    assert states(view) == [(RE, "not_amended", True), ("disagreement", "window_open", False)]
    assert deadlines(view, RE) == {
        "decide_whether_to_reassess": [("2025-06-17", "met")],  # Mon 2 Jun + 15
        "advice": [("2025-07-28", "breached")],  # Mon 16 Jun + 6 weeks; the advice was never recorded
        "final_plan": [("2025-09-22", "cancelled")],  # Mon 16 Jun + 14 weeks: reg 27(2) is about a plan
    }
    inputs = started_with(view, "disagreement")
    assert (inputs["decision"], inputs["decision_sent_on"]) == ("not_to_amend", "2025-08-01")
