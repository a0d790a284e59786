"""A plan moving with a family to another council, walked through the command line: the old
council transfers it (SEND Regulations 2014 reg 15(2)), the old health body tells the new one
(reg 16), and the new council opens the case from the transferred plan with its 6 weeks to tell
the family (reg 15(4)) and the first review by the later of the plan's 12 months and 3 months from
the transfer (reg 15(5)).

Dates here are worked out by hand from the regulations (tests/golden/transfers.yaml has the table).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from walking import Cli, deadlines, open_case, states, steps, walk_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return walk_config(tmp_path)


@pytest.fixture
def cli(config: Path) -> Cli:
    return Cli(config)


def start(cli: Cli, case: int, workflow: str, on: str, *sets: str) -> str:
    args = ["case", "start", str(case), workflow, "--on", on]
    for s in sets:
        args += ["--set", s]
    return cli(*args)


def plan_under_review(cli: Cli) -> int:
    """A plan made on Mon 10 Mar 2025 whose first review meeting is arranged for January 2026."""
    case = open_case(cli, "2025-03-10", "period_starts_on=2025-03-10", workflow="annual_review")
    cli.fire(case, "arrange_meeting", "2025-12-01", "meeting_on=2026-01-20", "invitations_sent_on=2025-12-01")
    return case


def test_a_plan_under_review_moves_away_is_transferred_late_and_its_review_closes(cli: Cli) -> None:
    case = plan_under_review(cli)
    # The council hears on Mon 15 Dec 2025 of a move on Fri 19 Dec: less than 15 working days'
    # notice, so it has 15 working days beginning with 15 Dec: Wed 7 Jan 2026 (rules s.9).
    start(
        cli, case, "transfer_out", "2025-12-15",
        "moves_on=2025-12-19", "became_aware_on=2025-12-15", "new_council=Generated Borough Council",
    )  # fmt: skip
    view = cli.show(case, "2025-12-15")
    assert deadlines(view, "transfer_out") == {"transfer_plan": [("2026-01-07", "open")]}
    plan = next(d for d in view["deadlines"] if d["name"] == "transfer_plan")
    assert (plan["regulation"], plan["basis"], plan["party"]) == (
        "SEND Regulations 2014 reg 15(2)",
        "statutory",
        "council",
    )
    # The review is still running meanwhile: the plan stays with this council until the transfer.
    assert ("annual_review", "meeting_arranged", False) in states(view)

    out = cli.fire(case, "transfer_plan", "2026-01-09", "plan_transferred_on=2026-01-09", workflow="transfer_out")
    assert "annual_review" in out and "closed" in out
    view = cli.show(case, "2026-01-09")
    # Transferred on Fri 9 Jan, two days after Wed 7 Jan: on the record as late.
    assert deadlines(view, "transfer_out") == {"transfer_plan": [("2026-01-07", "breached")]}
    # The old council's review closes in the same step, taken by the workflow for the caseworker.
    assert states(view) == [
        ("annual_review", "closed", True),
        ("transfer_out", "plan_transferred", False),
    ]
    closing = [h for h in view["history"] if h["workflow"] == "annual_review"][-1]
    assert (closing["on"], closing["trigger"], closing["role"], closing["by"]) == (
        "2026-01-09", "plan_transferred", "workflow", "casey.demo",
    )  # fmt: skip
    assert "transfer_plan" in closing["note"]
    review = deadlines(view, "annual_review")
    assert review["review"] == [("2026-03-09", "cancelled")]
    assert review["advice_circulated"] == [("2026-01-06", "cancelled")]
    # The family hears that the plan has gone to their new council.
    assert [m["template"] for m in view["outbox"]][-1] == "transfer_plan_sent"
    # No change of health body: nothing is left, so the record can be closed at once.
    cli.fire(case, "close_transfer", "2026-01-09", workflow="transfer_out")
    view = cli.show(case)
    assert states(view)[-1] == ("transfer_out", "transferred", True)
    assert steps(view, "transfer_out") == [
        ("2025-12-15", "start", "move_recorded"),
        ("2026-01-09", "transfer_plan", "plan_transferred"),
        ("2026-01-09", "close_transfer", "transferred"),
    ]


def test_a_move_known_well_ahead_is_due_on_the_day_of_the_move(cli: Cli) -> None:
    case = plan_under_review(cli)
    # Known on Mon 3 Nov 2025, four weeks before the move on Mon 1 Dec: due on the day of the move.
    start(
        cli, case, "transfer_out", "2025-11-03",
        "moves_on=2025-12-01", "became_aware_on=2025-11-03", "new_council=Generated Borough Council",
    )  # fmt: skip
    cli.fire(case, "transfer_plan", "2025-12-01", workflow="transfer_out")
    view = cli.show(case)
    assert deadlines(view, "transfer_out") == {"transfer_plan": [("2025-12-01", "met")]}
    assert states(view)[0] == ("annual_review", "closed", True)


def test_a_move_that_changes_the_health_body_waits_for_its_notice_and_a_refusal_says_why(cli: Cli) -> None:
    case = plan_under_review(cli)
    start(
        cli, case, "transfer_out", "2025-12-15",
        "moves_on=2025-12-19", "became_aware_on=2025-12-15", "new_council=Generated Borough Council",
        "health_body_changes=yes",
    )  # fmt: skip
    view = cli.show(case, "2025-12-15")
    # The old health body's own limit, by the same rule (reg 16): Wed 7 Jan 2026; its, not the council's.
    health = next(d for d in view["deadlines"] if d["name"] == "health_notice")
    assert (health["due"], health["status"], health["party"], health["regulation"]) == (
        "2026-01-07", "open", "health", "SEND Regulations 2014 reg 16",
    )  # fmt: skip
    cli.fire(case, "transfer_plan", "2025-12-19", workflow="transfer_out")
    # The record cannot be closed while the health body's notice is neither given nor out of time.
    err = cli.fire(case, "close_transfer", "2025-12-22", workflow="transfer_out", ok=False)
    assert "health body" in err and "reg 16" in err and "close_transfer" in err
    cli.fire(case, "record_health_notice", "2026-01-05", "health_notified_on=2026-01-05", workflow="transfer_out")
    view = cli.show(case)
    assert deadlines(view, "transfer_out") == {
        "transfer_plan": [("2026-01-07", "met")],
        "health_notice": [("2026-01-07", "met")],
    }
    assert states(view)[-1] == ("transfer_out", "transferred", True)
    # A step the workflow does not have now is refused, with the steps that are.
    err = cli.fire(case, "transfer_plan", "2026-01-06", workflow="transfer_out", ok=False)
    assert "transferred" in err and "ended" in err


def test_no_health_notice_is_recorded_when_the_health_body_stays_the_same(cli: Cli) -> None:
    case = plan_under_review(cli)
    start(
        cli, case, "transfer_out", "2025-12-15",
        "moves_on=2025-12-19", "became_aware_on=2025-12-15", "new_council=Generated Borough Council",
    )  # fmt: skip
    err = cli.fire(case, "record_health_notice", "2025-12-16", workflow="transfer_out", ok=False)
    assert "does not change the health body" in err and "reg 16" in err
    cli.fire(case, "cancel_move", "2025-12-17", "reasons=The family stayed", workflow="transfer_out")
    view = cli.show(case)
    assert deadlines(view, "transfer_out") == {"transfer_plan": [("2026-01-07", "cancelled")]}
    # The move did not happen: the plan and its review stay here.
    assert ("annual_review", "meeting_arranged", False) in states(view)


def test_a_receiving_council_opens_the_case_from_the_transferred_plan(cli: Cli) -> None:
    # Transferred on Wed 7 Jan 2026; made 1 Oct 2024 and last reviewed Wed 1 Oct 2025.
    case = open_case(
        cli, "2026-01-08",
        "transferred_on=2026-01-07", "plan_made_on=2024-10-01", "last_reviewed_on=2025-10-01",
        "old_council=Generated Borough Council", workflow="transfer_in",
    )  # fmt: skip
    view = cli.show(case, "2026-01-08")
    assert states(view) == [("transfer_in", "plan_received", False), ("annual_review", "review_due", False)]
    # 6 weeks from the transfer: Wed 18 Feb 2026 (reg 15(4)).
    assert deadlines(view, "transfer_in") == {"tell_family": [("2026-02-18", "open")]}
    # The later of 12 months beginning with the last review (Wed 30 Sep 2026) and 3 months beginning
    # with the transfer (Mon 6 Apr 2026): Wed 30 Sep 2026 (reg 15(5)).
    assert deadlines(view, "annual_review")["review"] == [("2026-09-30", "open")]
    # The family must be told whether an assessment is proposed: without it the step is refused.
    err = cli.fire(case, "tell_family", "2026-02-10", "review_by=2026-06-30", workflow="transfer_in", ok=False)
    assert "proposes_assessment" in err
    cli.fire(
        case, "tell_family", "2026-02-10", "proposes_assessment=no", "review_by=2026-06-30", workflow="transfer_in"
    )
    view = cli.show(case)
    assert deadlines(view, "transfer_in") == {"tell_family": [("2026-02-18", "met")]}
    assert states(view) == [("transfer_in", "family_told", True), ("annual_review", "review_due", False)]
    assert [m["template"] for m in view["outbox"]] == ["transfer_notice"]
    # The review runs on in the new council, as if it had made the plan.
    cli.fire(case, "arrange_meeting", "2026-06-01", "meeting_on=2026-06-22", "invitations_sent_on=2026-06-01")
    assert states(cli.show(case))[-1] == ("annual_review", "meeting_arranged", False)


def test_a_plan_never_reviewed_and_transferred_late_in_its_year_gets_three_months(cli: Cli) -> None:
    # Made Fri 31 Jan 2025, never reviewed, transferred on the day of a move on Sun 30 Nov 2025: its
    # own 12 months end on Fri 30 Jan 2026, but the new council has 3 months from the transfer,
    # which end on Sat 28 Feb 2026 (there is no 30 February).
    case = open_case(cli, "2025-12-01", "transferred_on=2025-11-30", "plan_made_on=2025-01-31", workflow="transfer_in")
    view = cli.show(case, "2025-12-01")
    assert deadlines(view, "annual_review")["review"] == [("2026-02-28", "open")]
    assert deadlines(view, "transfer_in") == {"tell_family": [("2026-01-11", "open")]}
    # Told late, on Tue 13 Jan 2026: Sun 30 Nov + 42 days is Sun 11 Jan.
    cli.fire(
        case, "tell_family", "2026-01-13", "proposes_assessment=yes", "review_by=2026-02-27", workflow="transfer_in"
    )
    view = cli.show(case)
    assert deadlines(view, "transfer_in") == {"tell_family": [("2026-01-11", "breached")]}
