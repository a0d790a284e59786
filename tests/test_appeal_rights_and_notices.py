"""Issue 10 walked through the command line: the tribunal's rule on the last day to appeal, a plan kept
while it can still be appealed, appeal rights for every appealable decision, notices to everyone the
regulations name, the age rules for ending a plan, mediation agreements, early reviews and orders.

Every date here was worked out by hand from the legislation (weekdays and England's bank holidays
checked), not read from the engine.
"""

from __future__ import annotations

import email
import email.message
import email.policy
from pathlib import Path
from typing import Any

import pytest
import walking
import yaml
from walking import walk_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return walk_config(
        tmp_path,
        "law",
        templates_dir=str(ROOT / "templates"),
        documents_dir=str(tmp_path / "documents"),
        notifications={
            **yaml.safe_load((ROOT / "config.yaml").read_text())["notifications"],
            "outbox_dir": str(tmp_path / "outbox"),
        },
    )


class Cli(walking.Cli):
    def open(self, on: str, *sets: str, workflow: str, dob: str, contacts: tuple[str, ...] = ()) -> int:
        args = ["case", "open", "--name", "Generated Child", "--dob", dob, "--on", on, "--workflow", workflow]
        args += ["--caseworker", "casey.demo", "--contact", "parent:Generated Parent:parent@example.org"]
        for c in contacts:
            args += ["--contact", c]
        for s in sets:
            args += ["--set", s]
        return int(self(*args).strip())


@pytest.fixture
def cli(config: Path) -> Cli:
    return Cli(config)


def states(view: dict[str, Any]) -> list[tuple[str, str]]:
    return [(w["workflow"], w["state"]) for w in view["workflows"]]


def due(view: dict[str, Any], workflow: str, name: str) -> list[tuple[str, str]]:
    return [(d["due"], d["status"]) for d in view["deadlines"] if d["workflow"] == workflow and d["name"] == name]


def test_the_ipsea_christmas_example_appeal_is_in_time_on_2_january(cli: Cli) -> None:
    case = cli.open("2024-08-20", workflow="needs_assessment", dob="2016-04-04")
    cli.fire(case, "refuse_to_assess", "2024-10-01", "reasons=Generated", "decision_sent_on=2024-10-01")
    cli.fire(case, "decline_mediation", "2024-11-26")
    cli.fire(case, "issue_certificate", "2024-11-29")
    # 2 months: Sun 1 Dec; 1 month from the certificate: Sun 29 Dec 2024, the later, which falls in
    # 25 December-1 January: the appeal is in time on the first working day after 1 January.
    assert due(cli.show(case), "disagreement", "appeal_window") == [("2025-01-02", "open")]
    err = cli.fire(case, "close_window", "2024-12-30", ok=False)
    assert "can still appeal" in err and "2025-01-02" in err
    err = cli.fire(case, "close_window", "2025-01-02", ok=False)
    assert "2025-01-02" in err  # still the last day itself
    cli.fire(case, "lodge_appeal", "2025-01-02")
    assert due(cli.show(case), "disagreement", "appeal_window") == [("2025-01-02", "met")]


def test_a_plan_is_kept_while_mediation_is_pending_even_after_the_two_months(cli: Cli) -> None:
    # The example: decision to cease sent Mon 6 Jan 2025, mediation asked for Thu 20 Feb.
    case = cli.open(
        "2024-12-02", "reason=no_longer_necessary", "considering_from=2024-12-02", workflow="cease", dob="2012-05-05"
    )
    cli.fire(case, "decide_to_cease", "2025-01-06", "reasons=Generated", "consulted=yes")
    cli.fire(case, "request_mediation", "2025-02-20")
    # Fri 7 Mar 2025: the two months (Thu 6 Mar) have passed, but no certificate has come.
    err = cli.fire(case, "appeal_window_closed", "2025-03-07", workflow="cease", ok=False)
    assert "taken only by another workflow" in err
    err = cli.fire(case, "close_window", "2025-03-07", workflow="disagreement", ok=False)
    assert "not possible from 'mediation_requested'" in err
    assert ("cease", "decided_to_cease") in states(cli.show(case))
    cli.fire(case, "hold_mediation", "2025-03-18")
    cli.fire(case, "issue_certificate", "2025-03-20")
    # 1 month from Thu 20 Mar is Sun 20 Apr 2025 (Easter Day); Easter Monday 21 Apr: Tue 22 Apr.
    assert due(cli.show(case), "disagreement", "appeal_window") == [("2025-04-22", "open")]
    err = cli.fire(case, "close_window", "2025-04-22", ok=False)
    assert "can still appeal" in err
    out = cli.fire(case, "close_window", "2025-04-23")
    assert "appeal_window_closed -> ceased" in out
    assert states(cli.show(case))[:2] == [("cease", "ceased"), ("disagreement", "closed_without_appeal")]


def test_keeping_a_plan_after_review_opens_the_appeal_window_and_the_message_gives_the_date(
    cli: Cli, tmp_path: Path
) -> None:
    case = cli.open("2025-01-10", "period_starts_on=2025-01-10", workflow="annual_review", dob="2014-03-03")
    cli.fire(case, "arrange_meeting", "2025-10-01", "meeting_on=2025-10-20")
    cli.fire(case, "hold_meeting", "2025-10-20")
    cli.fire(case, "keep_plan", "2025-11-10")
    view = cli.show(case)
    # CFA 2014 s.51(2)(e). Sent Mon 10 Nov 2025: 2 months is Sat 10 Jan 2026, so Mon 12 Jan (r.12(2)).
    assert ("disagreement", "window_open") in states(view)
    assert due(view, "disagreement", "appeal_window") == [("2026-01-12", "open")]
    dis = next(w for w in view["workflows"] if w["workflow"] == "disagreement")
    assert dis["facts"]["decision"] == "not_to_amend"
    cli("tick", "--as-of", "2025-11-10")
    texts = []
    for path in (tmp_path / "outbox").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        body = message.get_body(("plain",))
        # The subject names neither the child nor the decision: the body says what was decided.
        if body is not None and "we have decided to keep" in body.get_content():
            assert "keep" not in str(message["Subject"])
            texts.append(body.get_content())
    assert texts, "the family's message about keeping the plan was sent"
    joined = " ".join(" ".join(texts).split())
    assert "until Monday 12 January 2026" in joined and "5pm" in joined


def test_notices_go_to_everyone_the_regulations_name_and_wait_for_a_missing_contact(cli: Cli) -> None:
    case = cli.open(
        "2025-01-06", workflow="needs_assessment", dob="2016-04-04",
        contacts=("health:Generated ICB team:icb@example.org",),
    )  # fmt: skip
    view = cli.show(case)
    # Reg 4(2): the health body, social care and the setting are told an assessment is considered.
    notices = {(m["template"], m["role"], m["status"]) for m in view["outbox"]}
    assert ("assessment_considered", "parent", "queued") in notices
    assert ("assessment_considered_notice", "health", "queued") in notices
    assert ("assessment_considered_notice", "social_care", "to_address") in notices
    assert ("assessment_considered_notice", "school|post16_institution|early_years_setting", "to_address") in notices
    shown = cli("case", "show", str(case))
    assert "WAITING FOR A CONTACT" in shown and "school or post16_institution or early_years_setting" in shown
    out = cli("case", "contact", str(case), "school:Generated School:senco@example.org")
    assert "queued assessment_considered_notice" in out
    held = [m for m in cli.show(case)["outbox"] if m["status"] == "to_address"]
    assert [(m["template"], m["role"]) for m in held] == [("assessment_considered_notice", "social_care")]
    # Reg 5(2): the decision goes to all of them; reg 10(2): a decision not to issue to the health body
    # and the setting, not social care.
    cli.fire(case, "agree_to_assess", "2025-02-10")
    cli.fire(case, "decide_not_to_issue", "2025-04-20", "reasons=Generated")
    rows = cli.show(case)["outbox"]
    decided = {(m["role"], m["status"]) for m in rows if m["template"] == "assessment_decision_notice"}
    assert decided == {("health", "queued"), ("social_care", "to_address"), ("school", "queued")}
    not_issuing = {(m["role"], m["status"]) for m in rows if m["template"] == "not_issuing_notice"}
    assert not_issuing == {("health", "queued"), ("school", "queued")}
    # A contact with an unknown role is refused, as on opening.
    err = cli("case", "contact", str(case), "dentist:Generated:d@example.org", ok=False)
    assert "unknown role 'dentist'" in err


def test_the_final_plan_goes_to_the_named_setting_and_the_health_body(cli: Cli) -> None:
    case = cli.open("2025-01-06", workflow="needs_assessment", dob="2016-04-04")
    cli.fire(case, "agree_to_assess", "2025-02-10")
    cli.fire(case, "decide_to_issue", "2025-04-01")
    cli.fire(case, "issue_draft_plan", "2025-04-11")
    cli.fire(case, "consult_institutions", "2025-04-14", "institutions=Generated School")
    cli.fire(case, "issue_final_plan", "2025-05-19", "named_institution=Generated School", "family_responded=yes")
    rows = cli.show(case)["outbox"]
    sent = {(m["role"], m["status"]) for m in rows if m["template"] == "plan_issued_notice"}
    assert sent == {("school|post16_institution|early_years_setting", "to_address"), ("health", "to_address")}


@pytest.mark.parametrize(
    ("dob", "reason", "sets", "refusal"),
    [
        # Aged 15 on the decision: a child who has left education keeps the plan (reg 29(2)).
        ("2010-03-01", "left_education_or_training", (), "reg 29(2)"),
        # Aged 22: the plan cannot end for reaching 25 (CFA s.83(2)).
        ("2003-03-01", "reached_25", (), "under 25"),
        # Aged 19: regard to the outcomes achieved (CFA s.45).
        ("2006-03-01", "no_longer_necessary", (), "19 or over"),
        # Aged 18: left college: only after a review found no wish to return (reg 30(1)).
        ("2007-03-01", "left_education_or_training", (), "reg 30(1)"),
    ],
)
def test_the_age_rules_for_ending_a_plan_are_checked_from_the_date_of_birth(
    cli: Cli, dob: str, reason: str, sets: tuple[str, ...], refusal: str
) -> None:
    case = cli.open("2025-11-03", f"reason={reason}", "considering_from=2025-11-03", workflow="cease", dob=dob)
    err = cli.fire(case, "decide_to_cease", "2025-12-01", "reasons=Generated", "consulted=yes", *sets, ok=False)
    assert refusal in err


def test_the_age_rules_allow_what_the_law_allows(cli: Cli) -> None:
    # Aged 17 and no longer needing the plan: under 18 the only ground (reg 29(1)).
    young = cli.open(
        "2025-11-03", "reason=no_longer_necessary", "considering_from=2025-11-03", workflow="cease", dob="2008-03-01"
    )
    cli.fire(young, "decide_to_cease", "2025-12-01", "reasons=Generated", "consulted=yes")
    # Aged 25 on Mon 1 Dec 2025: no longer a young person.
    older = cli.open(
        "2025-11-03", "reason=reached_25", "considering_from=2025-11-03", workflow="cease", dob="2000-11-30"
    )
    cli.fire(older, "decide_to_cease", "2025-12-01", "reasons=Generated", "consulted=yes")
    for case in (young, older):
        assert ("cease", "decided_to_cease") in states(cli.show(case))


def test_an_agreement_at_mediation_to_keep_the_plan_withdraws_the_decision_to_cease(cli: Cli) -> None:
    case = cli.open(
        "2025-11-03", "reason=no_longer_necessary", "considering_from=2025-11-03", workflow="cease", dob="2012-05-05"
    )
    cli.fire(case, "decide_to_cease", "2025-12-01", "reasons=Generated", "consulted=yes")
    cli.fire(case, "request_mediation", "2025-12-10", "health_issues=yes")
    view = cli.show(case)
    # Wed 10 Dec 2025: 3 working days to tell the health body (Thu 11, Fri 12, Mon 15).
    assert due(view, "disagreement", "tell_health_body") == [("2025-12-15", "open")]
    cli.fire(case, "tell_health_body", "2025-12-12")
    cli.fire(case, "hold_mediation", "2026-01-05")
    cli.fire(
        case, "record_agreement", "2026-01-05", "agreement=The plan continues", "agreement_kind=continue_to_maintain"
    )
    # Reg 42(3): a matter that cannot be appealed is done within 2 weeks: Mon 19 Jan 2026.
    assert due(cli.show(case), "mediation_agreement", "other_matter") == [("2026-01-19", "open")]
    out = cli.fire(case, "withdraw_decision_to_cease", "2026-01-08", "reasons=Agreed at mediation")
    assert "withdraw_decision -> decision_withdrawn" in out
    cli.fire(case, "carry_out", "2026-01-09")
    view = cli.show(case)
    assert states(view) == [
        ("cease", "plan_continues"),
        ("disagreement", "decision_withdrawn"),
        ("mediation_agreement", "carried_out"),
    ]
    assert due(view, "mediation_agreement", "other_matter") == [("2026-01-19", "met")]


def test_an_early_review_asked_for_is_answered_within_the_local_target(cli: Cli) -> None:
    case = cli.open("2025-03-03", "period_starts_on=2025-03-03", workflow="annual_review", dob="2014-03-03")
    cli.fire(case, "request_early_review", "2025-06-02", "early_review_requested_by=school")
    assert due(cli.show(case), "annual_review", "early_review") == [("2025-06-16", "open")]
    cli.fire(case, "arrange_meeting", "2025-06-10", "meeting_on=2025-07-01")
    view = cli.show(case)
    assert due(view, "annual_review", "early_review") == [("2025-06-16", "met")]
    assert due(view, "annual_review", "review") == [("2026-03-02", "open")]  # the 12 months stand


def test_an_ordered_assessment_keeps_the_reg_10_4_grounds(cli: Cli) -> None:
    case = cli.open("2025-01-06", workflow="needs_assessment", dob="2016-04-04")
    cli.fire(case, "refuse_to_assess", "2025-02-14", "reasons=Generated")
    cli.fire(case, "decline_mediation", "2025-02-20")
    cli.fire(case, "issue_certificate", "2025-02-21")
    cli.fire(case, "lodge_appeal", "2025-03-10")
    cli.fire(case, "record_order", "2025-07-01", "order=assess")
    out = cli(
        "case", "exception", str(case), "order_final_plan_after_assess", "--head", "school_closure",
        "--reason", "The school was closed for the summer when advice was asked", "--on", "2025-07-20",
    )  # fmt: skip
    assert "excused: school_closure" in out
    err = cli(
        "case", "exception", str(case), "order_notify_will_assess", "--head", "school_closure", "--reason", "x",
        ok=False,
    )  # fmt: skip
    assert "allowed: personal_circumstances, absence_from_area" in err
