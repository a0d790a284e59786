"""Each statutory workflow walked end to end through the command line, the clock moved forward
step by step, asserting every state, history entry and deadline the law gives.

Dates here are worked out by hand from the regulations (see tests/golden/ for the full table).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from walking import Cli, deadlines, open_case, states, steps, walk_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return walk_config(tmp_path)


@pytest.fixture
def cli(config: Path) -> Cli:
    return Cli(config)


def test_needs_assessment_received_before_christmas_shows_each_statutory_date(cli: Cli) -> None:
    case = open_case(cli, "2024-12-20")
    view = cli.show(case, "2024-12-20")
    d = {x["name"]: x for x in view["deadlines"]}
    # Request received Fri 20 Dec 2024: 6, 16 and 20 weeks all from that day (rules s.2 worked example).
    assert (d["decide_whether_to_assess"]["due"], d["decide_whether_to_assess"]["regulation"]) == (
        "2025-01-31",
        "CFA 2014 s.36(5); SEND Regulations 2014 reg 5(1)",
    )
    assert (d["notify_not_to_issue"]["due"], d["notify_not_to_issue"]["regulation"]) == (
        "2025-04-11",
        "SEND Regulations 2014 reg 10(1)",
    )
    assert (d["final_plan"]["due"], d["final_plan"]["regulation"]) == ("2025-05-09", "SEND Regulations 2014 reg 13(2)")
    assert all(x["basis"] == "statutory" and x["status"] == "open" for x in d.values())
    assert d["final_plan"]["days_left"] == 140


def test_needs_assessment_to_final_plan_then_the_first_review_is_scheduled(cli: Cli) -> None:
    case = open_case(cli, "2025-01-06")
    cli.fire(case, "agree_to_assess", "2025-02-10")
    cli.fire(case, "record_advice_received", "2025-03-20")
    cli.fire(case, "decide_to_issue", "2025-04-01")
    cli.fire(case, "issue_draft_plan", "2025-04-11")
    # The family's 15 days begin with Fri 11 Apr: they end Fri 25 Apr; the final plan must wait.
    err = cli.fire(case, "issue_final_plan", "2025-04-24", "named_institution=Demo School", ok=False)
    assert "15 days" in err and "reg 13(1)" in err
    cli.fire(case, "consult_institutions", "2025-04-14", "institutions=Demo School")
    cli.fire(case, "record_institution_response", "2025-04-28")
    out = cli.fire(case, "issue_final_plan", "2025-05-19", "named_institution=Demo School")
    assert "started annual_review" in out
    view = cli.show(case)
    # The plan's content can be appealed (CFA 2014 s.51(2)(c)): a disagreement opens beside the review.
    assert states(view) == [
        ("needs_assessment", "final_plan_issued", True),
        ("annual_review", "review_due", False),
        ("disagreement", "window_open", False),
    ]
    # Issued Mon 19 May 2025: 2 months is Sat 19 Jul, so the tribunal takes it on Mon 21 Jul (TPR r.12(2)).
    assert deadlines(view, "disagreement") == {
        "contact_mediation_adviser": [("2025-07-19", "open")],
        "appeal_window": [("2025-07-21", "open")],
    }
    assert steps(view, "needs_assessment") == [
        ("2025-01-06", "start", "request_received"),
        ("2025-02-10", "agree_to_assess", "assessing"),
        ("2025-03-20", "record_advice_received", "advice_received"),
        ("2025-04-01", "decide_to_issue", "drafting"),
        ("2025-04-11", "issue_draft_plan", "draft_issued"),
        ("2025-04-14", "consult_institutions", "consulting"),
        ("2025-04-28", "record_institution_response", "consulting"),
        ("2025-05-19", "issue_final_plan", "final_plan_issued"),
    ]
    assert deadlines(view, "needs_assessment") == {
        "decide_whether_to_assess": [("2025-02-17", "met")],
        "advice": [("2025-03-24", "met")],  # 6 weeks from the request for advice, Mon 10 Feb
        "notify_not_to_issue": [("2025-04-28", "cancelled")],  # a decision to issue ends it
        "family_representations": [("2025-04-25", "met")],
        "institution_response": [("2025-04-29", "met")],  # 15 days from Mon 14 Apr (guidance)
        "final_plan": [("2025-05-26", "met")],  # 20 weeks: Mon 26 May 2025, a bank holiday, still that day
    }
    # The plan was made on 19 May 2025: reviewed within the 12 months starting that day.
    assert deadlines(view, "annual_review") == {"review": [("2026-05-18", "open")]}


def test_a_late_final_plan_is_breached_and_an_exception_is_recorded_and_counted(cli: Cli) -> None:
    case = open_case(cli, "2025-01-06")
    cli.fire(case, "agree_to_assess", "2025-02-10")
    cli.fire(case, "decide_to_issue", "2025-04-01")
    cli.fire(case, "issue_draft_plan", "2025-05-20")
    # Naming a school that was never consulted is refused (CFA 2014 s.39), unless the reason is given.
    err = cli.fire(case, "issue_final_plan", "2025-06-05", "named_institution=Demo School", ok=False)
    assert "s.39(2)" in err and "no_consultation_reason" in err
    cli.fire(
        case, "issue_final_plan", "2025-06-05", "named_institution=Demo School",
        "no_consultation_reason=The school named is the one the child attends; it took part in the assessment",
    )  # fmt: skip
    # A head the regulations do not allow for this limit is refused, and says which are.
    err = cli("case", "exception", str(case), "final_plan", "--head", "representations", "--reason", "x", ok=False)
    assert "allowed: school_closure, personal_circumstances, absence_from_area" in err
    # The family's own period cannot be excused: there is no exception to it.
    err = cli(
        "case", "exception", str(case), "family_representations", "--head", "absence_from_area", "--reason", "x",
        ok=False,
    )  # fmt: skip
    assert "no exception" in err
    out = cli(
        "case", "exception", str(case), "final_plan", "--head", "personal_circumstances",
        "--reason", "Child in hospital for five weeks in April", "--on", "2025-06-05",
    )  # fmt: skip
    assert "excused" in out
    view = cli.show(case)
    final = next(d for d in view["deadlines"] if d["name"] == "final_plan")
    assert final["due"] == "2025-05-26" and final["status"] == "breached" and final["excused"] is True
    assert final["exception"] == {
        "head": "personal_circumstances",
        "reason": "Child in hospital for five weeks in April",
        "by": "casey.demo",
        "on": "2025-06-05",
    }
    assert view["history"][-1]["trigger"] == "record_exception"
    assert view["history"][-1]["inputs"] == {"deadline": "final_plan", "head": "personal_circumstances"}
    # A second case on time; timeliness with and without exceptions, as the SEN2 return counts it.
    other = open_case(cli, "2025-01-06")
    for trigger, on in (("agree_to_assess", "2025-02-10"), ("decide_to_issue", "2025-03-01")):
        cli.fire(other, trigger, on)
    cli.fire(other, "issue_draft_plan", "2025-03-10")
    cli.fire(other, "issue_final_plan", "2025-04-01", "named_institution=Demo School", "no_consultation_reason=x")
    report = json.loads(cli("report", "--json"))
    assert (report["closed"], report["on_time"], report["with_exception"]) == (2, 1, 1)
    assert report["excluding_exceptions"] == {"closed": 1, "on_time": 1, "on_time_percent": 100.0}
    # Twice is refused: the record stands.
    err = cli("case", "exception", str(case), "final_plan", "--head", "absence_from_area", "--reason", "y", ok=False)
    assert "already has an exception" in err


def test_refusal_to_assess_goes_through_mediation_to_an_appeal_and_an_order(cli: Cli) -> None:
    case = open_case(cli, "2025-01-06")
    out = cli.fire(case, "refuse_to_assess", "2025-02-14", "reasons=Needs met from the school's resources")
    assert "started disagreement" in out
    view = cli.show(case)
    assert states(view) == [("needs_assessment", "not_assessing", True), ("disagreement", "window_open", False)]
    # Decision sent Fri 14 Feb 2025: 2 months to the mediation adviser and to appeal (14 Apr).
    assert deadlines(view, "disagreement") == {
        "contact_mediation_adviser": [("2025-04-14", "open")],
        "appeal_window": [("2025-04-14", "open")],
    }
    cli.fire(case, "request_mediation", "2025-03-03")
    cli.fire(case, "hold_mediation", "2025-03-28")  # within 30 days of Mon 3 Mar (2 Apr)
    cli.fire(case, "issue_certificate", "2025-04-02")  # 3 working days after Fri 28 Mar: Wed 2 Apr
    view = cli.show(case)
    # Later of 2 months from the decision (14 Apr) and 1 month from the certificate (2 May).
    assert deadlines(view, "disagreement")["appeal_window"] == [("2025-05-02", "open")]
    assert deadlines(view, "disagreement")["mediation"] == [("2025-04-02", "met")]
    assert deadlines(view, "disagreement")["certificate_after_mediation"] == [("2025-04-02", "met")]
    cli.fire(case, "lodge_appeal", "2025-04-25", "response_due_on=2025-06-06")
    cli.fire(case, "send_response", "2025-06-02")
    cli.fire(case, "record_order", "2025-09-15", "order=assess")
    view = cli.show(case)
    d = deadlines(view, "disagreement")
    # Order of Mon 15 Sep 2025: notify within 2 weeks, no plan within 10, final plan within 14 (reg 44(2)).
    assert d["order_notify_will_assess"] == [("2025-09-29", "open")]
    assert d["order_no_plan_after_assess"] == [("2025-11-24", "open")]
    assert d["order_final_plan_after_assess"] == [("2025-12-22", "open")]
    assert d["response_to_appeal"] == [("2025-06-06", "met")]
    cli.fire(case, "notify_will_assess", "2025-09-26")
    cli.fire(case, "issue_plan_after_order", "2025-12-19")
    view = cli.show(case)
    d = deadlines(view, "disagreement")
    assert d["order_final_plan_after_assess"] == [("2025-12-22", "met")]
    assert d["order_no_plan_after_assess"] == [("2025-11-24", "cancelled")]
    assert states(view)[-1] == ("disagreement", "order_complied", True)
    assert [s[1] for s in steps(view, "disagreement")] == [
        "start",
        "request_mediation",
        "hold_mediation",
        "issue_certificate",
        "lodge_appeal",
        "send_response",
        "record_order",
        "notify_will_assess",
        "issue_plan_after_order",
    ]


def test_a_refusal_to_issue_closes_only_when_the_appeal_window_has_passed(cli: Cli) -> None:
    case = open_case(cli, "2024-11-04")
    cli.fire(case, "agree_to_assess", "2024-12-02")
    cli.fire(case, "decide_not_to_issue", "2024-12-31", "reasons=Needs can be met without a plan")
    # Decision 31 Dec 2024: 2 months is 28 Feb 2025 (no 31 February).
    err = cli.fire(case, "close_window", "2025-02-28", ok=False)
    assert "can still appeal" in err and "2025-02-28" in err
    # Only about the school? No: an appeal about anything else needs a certificate first.
    err = cli.fire(case, "lodge_placement_appeal", "2025-01-10", ok=False)
    assert "certificate" in err
    # A family who contacted the mediation adviser in time gets a certificate and a month more.
    err = cli.fire(case, "close_window", "2025-03-01", ok=False)
    assert "adviser_not_contacted" in err and "20(1)(c)(ii)" in err
    cli.fire(case, "close_window", "2025-03-01", "adviser_not_contacted=yes")
    view = cli.show(case)
    assert states(view)[-1] == ("disagreement", "closed_without_appeal", True)
    assert deadlines(view, "disagreement")["appeal_window"] == [("2025-02-28", "cancelled")]


def test_annual_review_amendment_crosses_the_year_end_and_schedules_the_next_review(cli: Cli) -> None:
    case = open_case(cli, "2025-01-10", "period_starts_on=2025-01-10", workflow="annual_review")
    view = cli.show(case)
    assert deadlines(view) == {"review": [("2026-01-09", "open")]}
    cli.fire(case, "arrange_meeting", "2025-11-03", "meeting_on=2025-11-20")
    cli.fire(case, "circulate_advice", "2025-11-05")
    cli.fire(case, "hold_meeting", "2025-11-20")
    cli.fire(case, "receive_report", "2025-12-02")
    cli.fire(case, "propose_amendments", "2025-12-15")
    view = cli.show(case)
    assert deadlines(view) == {
        "review": [("2026-01-09", "met")],
        "invitations": [("2025-11-06", "met")],  # meeting Thu 20 Nov less 2 weeks, sent Mon 3 Nov
        "advice_circulated": [("2025-11-06", "met")],
        "report": [("2025-12-04", "met")],
        "review_decision": [("2025-12-18", "met")],
        # Notice Mon 15 Dec 2025: 15 days beginning that day end Mon 29 Dec; 8 weeks: Mon 9 Feb 2026.
        "amendment_representations": [("2025-12-29", "open")],
        "amended_plan": [("2026-02-09", "open")],
    }
    err = cli.fire(case, "issue_amended_plan", "2025-12-29", "named_institution=Demo School", ok=False)
    assert "reg 22(2)(c)" in err
    out = cli.fire(case, "issue_amended_plan", "2026-01-20", "named_institution=Demo School")
    assert "started annual_review" in out
    view = cli.show(case)
    assert states(view) == [
        ("annual_review", "plan_amended", True),
        ("annual_review", "review_due", False),
        ("disagreement", "window_open", False),  # the amended plan's content can be appealed
    ]
    # The next 12 months start with the date of the council's decision (15 Dec 2025) by default.
    review = [d for d in view["deadlines"] if d["status"] == "open" and d["workflow"] == "annual_review"]
    assert review[0]["due"] == "2026-12-14"
    # Issued Tue 20 Jan 2026: the time to appeal the amended plan ends Fri 20 Mar 2026.
    assert deadlines(view, "disagreement")["appeal_window"] == [("2026-03-20", "open")]


def test_a_review_decision_to_cease_runs_the_cease_and_waits_for_the_appeal_window(cli: Cli) -> None:
    case = open_case(cli, "2025-03-10", "period_starts_on=2025-03-10", workflow="annual_review", dob="2005-06-01")
    cli.fire(case, "arrange_meeting", "2026-01-05", "meeting_on=2026-01-26")
    cli.fire(case, "hold_meeting", "2026-01-26")
    cli.fire(case, "propose_to_cease", "2026-02-16", "cease_reason=left_education_or_training")
    view = cli.show(case)
    assert states(view)[-1] == ("cease", "considering", False)
    err = cli.fire(case, "decide_to_cease", "2026-03-02", "reasons=Left college", "consulted=no", ok=False)
    assert "reg 31(1)" in err
    # Aged 20 and left college: only after a review found no wish to return (reg 30(1)).
    err = cli.fire(case, "decide_to_cease", "2026-03-02", "reasons=Left college", "consulted=yes", ok=False)
    assert "reg 30(1)" in err
    cli.fire(
        case, "decide_to_cease", "2026-03-02", "reasons=Left college", "consulted=yes", "review_found_no_return=yes"
    )
    view = cli.show(case)
    assert states(view)[-2:] == [("cease", "decided_to_cease", False), ("disagreement", "window_open", False)]
    # Decision Mon 2 Mar 2026: 2 months is Sat 2 May; Mon 4 May is a bank holiday, so the family may
    # appeal until 5pm on Tue 5 May 2026 (TPR r.12(2)). The plan stays until then: only the
    # disagreement can end it, and a person cannot.
    assert "appeal_window" not in deadlines(view, "cease")
    assert deadlines(view, "disagreement")["appeal_window"] == [("2026-05-05", "open")]
    err = cli.fire(case, "appeal_window_closed", "2026-05-02", workflow="cease", ok=False)
    assert "taken only by another workflow" in err
    err = cli.fire(case, "close_window", "2026-05-05", "adviser_not_contacted=yes", ok=False)
    assert "can still appeal" in err and "2026-05-05" in err
    out = cli.fire(case, "close_window", "2026-05-06", "adviser_not_contacted=yes")
    assert "cease" in out and "appeal_window_closed -> ceased" in out
    view = cli.show(case)
    assert states(view)[-2:] == [("cease", "ceased", True), ("disagreement", "closed_without_appeal", True)]
    entry = [h for h in view["history"] if h["workflow"] == "cease"][-1]
    assert (entry["trigger"], entry["role"], entry["note"]) == (
        "appeal_window_closed",
        "workflow",
        f"signalled by close_window of instance {view['workflows'][-1]['instance']}",
    )


def test_an_appeal_against_ceasing_keeps_the_plan_and_an_upheld_appeal_restarts_reviews(cli: Cli) -> None:
    case = open_case(cli, "2025-03-10", "period_starts_on=2025-03-10", workflow="annual_review", dob="2005-06-01")
    cli.fire(case, "arrange_meeting", "2026-01-05", "meeting_on=2026-01-26")
    cli.fire(case, "hold_meeting", "2026-01-26")
    cli.fire(case, "propose_to_cease", "2026-02-16", "cease_reason=no_longer_necessary")
    # Aged 20: the council must have regard to whether the plan's outcomes were achieved (s.45).
    err = cli.fire(case, "decide_to_cease", "2026-03-02", "reasons=Outcomes met", "consulted=yes", ok=False)
    assert "19 or over" in err
    cli.fire(case, "decide_to_cease", "2026-03-02", "reasons=Outcomes met", "consulted=yes", "outcomes_considered=yes")
    cli.fire(case, "decline_mediation", "2026-04-01")
    out = cli.fire(case, "issue_certificate", "2026-04-06")  # Easter Monday in between: still on time
    assert "mediation_certificate_issued -> decided_to_cease" in out
    view = cli.show(case)
    # Certificate Mon 6 Apr 2026 + 1 month = Wed 6 May, later than 5 May.
    assert deadlines(view, "disagreement")["appeal_window"] == [("2026-05-06", "open")]
    # Wed 1 Apr + 3 working days: Thu 2, Tue 7, Wed 8 (Good Friday 3 Apr, the weekend and Easter Monday skipped).
    assert deadlines(view, "disagreement")["certificate_no_mediation"] == [("2026-04-08", "met")]
    cli.fire(case, "lodge_appeal", "2026-05-01")
    assert states(cli.show(case))[-2] == ("cease", "appeal_pending", False)
    out = cli.fire(case, "record_order", "2026-09-10", "order=continue_to_maintain")
    assert "appeal_upheld -> plan_continues" in out and "started annual_review" in out
    view = cli.show(case)
    assert [s for s in states(view) if not s[2]] == [
        ("disagreement", "order_made", False),
        ("annual_review", "review_due", False),
    ]
    # The plan continues: the next review runs from the review decision of 16 Feb 2026.
    assert deadlines(view, "annual_review")["review"][-1] == ("2027-02-15", "open")


def test_phase_transfers_are_found_from_the_date_of_birth_and_tighten_the_review(cli: Cli) -> None:
    # Born 3 Feb 2015: Year 6 in 2025/26, secondary school from September 2026 (rules s.5).
    y6 = open_case(cli, "2025-06-01", "period_starts_on=2025-06-01", workflow="annual_review")
    # Born 10 Oct 2014: the same cohort (born 1 Sep 2014 to 31 Aug 2015), so Year 6 too.
    also = open_case(cli, "2025-06-01", "period_starts_on=2025-06-01", workflow="annual_review", dob="2014-10-10")
    # Born 1 Sep 2015: the first day of the next cohort, Year 5 in 2025/26: no move this year.
    young = open_case(cli, "2025-06-01", "period_starts_on=2025-06-01", workflow="annual_review", dob="2015-09-01")
    # Born 5 May 2010: Year 11 in 2025/26, post-16 from September 2026: 31 March.
    y11 = open_case(cli, "2025-06-01", "period_starts_on=2025-06-01", workflow="annual_review", dob="2010-05-05")
    rows = json.loads(cli("transfers", "--academic-year", "2025/26", "--json", "--on", "2025-09-08"))
    found = {r["case"]: (r["year_group"], r["transfer"], r["deadline"]) for r in rows}
    assert found == {
        y6: ("Year 6", "primary_to_secondary", "2026-02-15"),
        also: ("Year 6", "primary_to_secondary", "2026-02-15"),
        y11: ("Year 11", "secondary_to_post16", "2026-03-31"),
    }
    assert young not in found
    cli("transfers", "--academic-year", "2025/26", "--apply", "--on", "2025-09-08")
    view = cli.show(y6)
    d = deadlines(view)
    assert d["phase_transfer"] == [("2026-02-15", "open")]
    # Counted back from the phase-transfer date: 12 weeks for the decision and the amendment.
    assert d["phase_transfer_meeting"] == [("2025-11-23", "open")]
    assert deadlines(cli.show(y11))["phase_transfer"] == [("2026-03-31", "open")]
    # The move runs beside the review; the review's steps settle it, in their own transactions.
    assert states(view)[-1] == ("phase_transfer", "transfer_identified", False)
    cli.fire(y6, "arrange_meeting", "2025-10-01", "meeting_on=2025-11-03")
    out = cli.fire(y6, "hold_meeting", "2025-11-03")
    assert "phase_transfer" in out and "meeting_held" in out
    cli.fire(y6, "receive_report", "2025-11-10")
    cli.fire(y6, "propose_amendments", "2025-11-24")
    cli.fire(y6, "issue_amended_plan", "2026-01-12", "named_institution=Demo Secondary School", "family_responded=yes")
    view = cli.show(y6)
    assert ("phase_transfer", "placement_settled", True) in states(view)
    d = deadlines(view, "phase_transfer")
    assert d["phase_transfer"] == [("2026-02-15", "met")] and d["phase_transfer_meeting"] == [("2025-11-23", "met")]
    again = json.loads(cli("transfers", "--academic-year", "2025/26", "--apply", "--json", "--on", "2025-09-09"))
    assert all(r["action"].startswith("already recorded") for r in again)


def test_a_child_under_five_gets_the_shorter_review_of_the_code(cli: Cli) -> None:
    case = open_case(cli, "2025-03-10", "period_starts_on=2025-03-10", workflow="annual_review", dob="2022-01-15")
    d = deadlines(cli.show(case))
    assert d["review_under_five"] == [("2025-09-10", "open")]  # 6 months (CoP 9.178), the council's default
    assert d["review"] == [("2026-03-09", "open")]


def test_withdrawal_and_moving_away_end_the_case_and_close_its_limits(cli: Cli) -> None:
    one = open_case(cli, "2025-01-06")
    cli.fire(one, "withdraw_request", "2025-01-20", "reasons=Family withdrew")
    two = open_case(cli, "2025-01-06")
    cli.fire(two, "agree_to_assess", "2025-02-03")
    cli.fire(two, "move_out_of_area", "2025-03-03", "new_council=Another Council")
    for case, state in ((one, "withdrawn"), (two, "moved_away")):
        view = cli.show(case)
        assert states(view) == [("needs_assessment", state, True)]
        assert {d["status"] for d in view["deadlines"]} <= {"cancelled", "met"}
    err = cli.fire(one, "agree_to_assess", "2025-02-01", ok=False)
    assert "has ended" in err


def test_a_council_changes_its_readings_and_policy_in_config_without_touching_the_law(
    config: Path, tmp_path: Path
) -> None:
    data = yaml.safe_load(config.read_text())
    data["workflows"] = {
        "annual_review": {
            "parameters": {"review_period_from": "meeting_held_on"},
            "escalations": [{"after": "0 days", "to": "head_of_service"}],
        },
        "phase_transfer": {"parameters": {"phase_transfer_reading": "day_before"}},
    }
    config.write_text(yaml.safe_dump(data))
    cli = Cli(config)
    case = open_case(
        cli, "2025-03-01", "period_starts_on=2025-03-01", "transfer_kind=primary_to_secondary",
        "transfer_on=2026-09-01", workflow="annual_review",
    )  # fmt: skip
    assert deadlines(cli.show(case))["phase_transfer"] == [("2026-02-14", "open")]  # "before 15 February"
    cli.fire(case, "arrange_meeting", "2025-10-01", "meeting_on=2025-10-20")
    cli.fire(case, "hold_meeting", "2025-10-20")
    cli.fire(case, "keep_plan", "2025-11-10")
    view = cli.show(case)
    # The next period starts with the meeting (20 Oct 2025), as this council reads s.44(1).
    assert deadlines(view)["review"][-1] == ("2026-10-19", "open")
    reviews = [w for w in view["workflows"] if w["workflow"] == "annual_review"]
    assert reviews[-1]["facts"]["review_period_from"] == "meeting_held_on"
    shown = json.loads(cli("workflows", "show", "annual_review", "--json"))
    assert [e["to"] for e in shown["defaults"]["escalations"]] == [["head_of_service"]]
    # A value the file does not offer is refused with the place to fix.
    data["workflows"]["annual_review"]["parameters"]["review_period_from"] = "whenever"
    config.write_text(yaml.safe_dump(data))
    err = cli("workflows", "list", ok=False)
    assert "workflows.annual_review.parameters.review_period_from: 'whenever' is not one of" in err


def test_a_step_for_one_of_several_open_workflows_finds_it_by_name(cli: Cli) -> None:
    case = open_case(cli, "2025-01-06")
    cli.fire(case, "refuse_to_assess", "2025-02-03", "reasons=Not needed")
    cli("case", "start", str(case), "annual_review", "--on", "2025-02-04", "--set", "period_starts_on=2025-02-04")
    # request_mediation belongs to the disagreement only, arrange_meeting to the review only.
    cli.fire(case, "request_mediation", "2025-02-10")
    cli.fire(case, "arrange_meeting", "2025-02-11", "meeting_on=2025-03-10")
    err = cli.fire(case, "close_review", "2025-02-12", "reasons=x", ok=True)
    assert "closed" in err
    view = cli.show(case)
    assert [s[1] for s in states(view)] == ["not_assessing", "mediation_requested", "closed"]


def test_the_other_branches_of_review_cease_and_disagreement(cli: Cli) -> None:
    # Amendment proposed, then dropped after the family's comments: the next review starts anyway.
    review = open_case(cli, "2025-01-10", "period_starts_on=2025-01-10", workflow="annual_review")
    cli.fire(review, "arrange_meeting", "2025-11-03", "meeting_on=2025-11-20")
    cli.fire(review, "hold_meeting", "2025-11-20")
    cli.fire(review, "propose_amendments", "2025-12-01")
    out = cli.fire(review, "decide_not_to_amend", "2025-12-20", "reasons=The comments showed no change is needed")
    assert "started annual_review" in out
    d = deadlines(cli.show(review))
    assert d["amended_plan"] == [("2026-01-26", "met")]  # reg 22(3)-(4): 8 weeks from Mon 1 Dec
    # A cease considered and not pursued: after a review, the reviews go on from that decision.
    cease = open_case(cli, "2025-03-10", "period_starts_on=2025-03-10", workflow="annual_review", dob="2005-06-01")
    cli.fire(cease, "arrange_meeting", "2026-01-05", "meeting_on=2026-01-26")
    cli.fire(cease, "hold_meeting", "2026-01-26")
    cli.fire(cease, "propose_to_cease", "2026-02-16", "cease_reason=reached_25")
    out = cli.fire(cease, "decide_not_to_cease", "2026-03-02")
    assert "started annual_review" in out
    assert states(cli.show(cease))[-2:] == [("cease", "plan_continues", True), ("annual_review", "review_due", False)]
    # Disagreements: a placement-only appeal needs no certificate; mediation that cannot happen in
    # 30 days gets a certificate; an agreement at mediation; an appeal dismissed; one withdrawn;
    # an appeal the council does not oppose (reg 45) runs the order's limits from telling the tribunal.
    case = open_case(cli, "2025-01-06")
    cli.fire(case, "refuse_to_assess", "2025-02-03", "reasons=Not needed")
    view = cli.show(case)
    parent = view["workflows"][0]["instance"]
    placement = int(
        cli(
            "case", "start", str(case), "disagreement", "--on", "2025-02-04", "--about", str(parent),
            "--set", "decision=plan_content", "--set", "placement_only=yes",
        ).splitlines()[0]
    )  # fmt: skip
    cli.fire(case, "lodge_placement_appeal", "2025-02-10", workflow="disagreement")
    assert any(w["instance"] == placement and w["state"] == "appeal_lodged" for w in cli.show(case)["workflows"])
    err = cli.fire(case, "concede_appeal", "2025-03-03", "order=amend_school_only", workflow="disagreement", ok=False)
    assert "only team_manager may do this" in err
    # The manager tells the administrator, who records it on the manager's behalf: history says both.
    cli.acting_as("alex.demo")(
        "case", "fire", str(case), "concede_appeal", "--on", "2025-03-03", "--by", "morgan.demo",
        "--workflow", "disagreement", "--set", "order=amend_school_only",
    )  # fmt: skip
    conceded = [h for h in cli.show(case)["history"] if h["trigger"] == "concede_appeal"]
    assert [(h["by"], h["role"], h["recorded_by"]) for h in conceded] == [("morgan.demo", "team_manager", "alex.demo")]
    d = deadlines(cli.show(case), "disagreement")
    assert d["order_amend_school_only"] == [("2025-03-17", "open")]  # 2 weeks from telling the tribunal
    cli.fire(case, "issue_amended_plan_after_order", "2025-03-14", workflow="disagreement")
    # The automatic disagreement about the refusal: mediation not possible, then agreement.
    cli.fire(case, "request_mediation", "2025-03-17")
    cli.fire(case, "mediation_not_possible", "2025-04-14")
    d = deadlines(cli.show(case), "disagreement")
    assert d["mediation"] == [("2025-04-16", "cancelled")]
    assert d["certificate_mediation_not_possible"] == [("2025-04-17", "open")]  # Good Friday 18 Apr follows
    cli.fire(case, "issue_certificate", "2025-04-17")
    cli.fire(case, "lodge_appeal", "2025-04-30")
    cli.fire(case, "record_dismissal", "2025-08-01")
    final = [s for s in states(cli.show(case)) if s[0] == "disagreement"]
    assert final == [("disagreement", "appeal_dismissed", True), ("disagreement", "order_complied", True)]
    other = open_case(cli, "2025-01-06")
    cli.fire(other, "refuse_to_assess", "2025-02-03", "reasons=Not needed")
    cli.fire(other, "request_mediation", "2025-02-10")
    cli.fire(other, "hold_mediation", "2025-03-03")
    cli.fire(other, "record_agreement", "2025-03-04", "agreement=The council will assess", "agreement_kind=assess")
    third = open_case(cli, "2025-01-06")
    cli.fire(third, "refuse_to_assess", "2025-02-03", "reasons=Not needed")
    cli.fire(third, "decline_mediation", "2025-02-10")
    cli.fire(third, "issue_certificate", "2025-02-12")
    cli.fire(third, "lodge_appeal", "2025-03-01")
    cli.fire(third, "withdraw_appeal", "2025-05-01")
    # An agreement starts its own limits (reg 42(2): as if the tribunal had ordered an assessment).
    assert states(cli.show(other))[-2:] == [
        ("disagreement", "agreed_at_mediation", False),
        ("mediation_agreement", "agreed", False),
    ]
    assert deadlines(cli.show(other), "mediation_agreement") == {
        "notify_will_assess": [("2025-03-18", "open")],
        "no_plan_after_assess": [("2025-05-13", "open")],
        "final_plan_after_assess": [("2025-06-10", "open")],
    }
    assert states(cli.show(third))[-1] == ("disagreement", "appeal_withdrawn", True)


def test_a_move_between_post16_institutions_mid_year_needs_the_plan_five_months_ahead(cli: Cli) -> None:
    case = open_case(cli, "2026-03-02", "period_starts_on=2026-03-02", workflow="annual_review", dob="2008-04-04")
    cli.fire(case, "record_phase_transfer", "2026-03-09", "transfer_kind=post16_to_post16", "transfer_on=2027-01-06")
    view = cli.show(case)
    assert ("phase_transfer", "transfer_identified", False) in states(view)
    d = deadlines(view, "phase_transfer")
    assert d["phase_transfer"] == [("2026-08-06", "open")]  # reg 18(2): at least five months before the move
    assert d["phase_transfer_meeting"] == [("2026-05-14", "open")]  # 12 weeks earlier (local target)
