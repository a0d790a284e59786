"""Correcting a step recorded by mistake, on SQLite and PostgreSQL: the record keeps both the step and
its correction; state, facts, deadlines, messages, documents and the workflows the step started or
moved go back to where they were; who may correct what."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from conftest import CW, HOS, TM
from sqlalchemy import text

from engine.app import App
from engine.clock import FixedClock
from engine.errors import InvalidInput, NotAuthorised
from engine.store import queries
from engine.store.repository import ContactRecord

PARENT = ContactRecord("parent", "Parent Example", "parent@example.org")


def open_request(app: App, clock: FixedClock, on: date = date(2025, 1, 6)) -> int:
    clock.set(on)
    return app.cases.open_case(
        name="Generated Child",
        date_of_birth=date(2016, 4, 1),
        workflow="needs_assessment",
        actor=CW,
        contacts=[PARENT],
        caseworker="cw",
    ).case_id


def view(app: App, case_id: int) -> dict[str, Any]:
    return queries.case_view(app.engine, case_id, app.clock.today())


def deadlines(v: dict[str, Any], workflow: str) -> dict[str, tuple[str, str]]:
    return {d["name"]: (d["due"], d["status"]) for d in v["deadlines"] if d["workflow"] == workflow}


def test_a_step_recorded_by_mistake_is_reversed_on_the_record_and_can_be_taken_again(
    shipped_app: App, clock: FixedClock
) -> None:
    app = shipped_app
    case = open_request(app, clock)
    clock.set(date(2025, 2, 10))
    app.cases.fire(case, "agree_to_assess", actor=CW)  # meant for another child
    before = len(view(app, case)["history"])
    corrected = app.corrections.correct(case, reason="Recorded on the wrong case", actor=CW)
    v = view(app, case)
    assert [(w["workflow"], w["state"]) for w in v["workflows"]] == [("needs_assessment", "request_received")]
    # History stays append-only: the step and its correction are both there.
    assert len(v["history"]) == before + 1
    last = v["history"][-1]
    assert (last["trigger"], last["from"], last["to"], last["note"]) == (
        "correct",
        "assessing",
        "request_received",
        "Recorded on the wrong case",
    )
    assert last["inputs"] == {"reverses": [2], "steps": ["agree_to_assess"]}
    d = deadlines(v, "needs_assessment")
    assert d["decide_whether_to_assess"] == ("2025-02-17", "open")  # met by the step: open again
    assert d["advice"][1] == "cancelled"  # opened by the step: cancelled
    # What it queued and had not gone out does not go.
    statuses = {(m["template"], m["status"]) for m in v["outbox"]}
    assert ("decision_to_assess", "cancelled") in statuses and ("decision_to_assess", "queued") not in statuses
    assert {d["status"] for d in v["documents"] if d["kind"] in ("decision_to_assess", "advice_request")} == {
        "cancelled"
    }
    assert "decision_to_assess" in corrected.cancelled_messages and corrected.already_sent == []
    # The case can go on: the step is taken again, on its right date (the last step is the start again).
    clock.set(date(2025, 2, 12))
    app.cases.fire(case, "agree_to_assess", actor=CW, on=date(2025, 2, 11))
    d = deadlines(view(app, case), "needs_assessment")
    assert d["decide_whether_to_assess"] == ("2025-02-17", "met")


def test_only_a_team_manager_corrects_a_step_from_before_today_or_whose_messages_went(
    shipped_app: App, clock: FixedClock, tmp_path: Any
) -> None:
    app = shipped_app
    case = open_request(app, clock)
    clock.set(date(2025, 2, 10))
    app.cases.fire(case, "refuse_to_assess", actor=CW, inputs={"reasons": "Generated"})
    clock.set(date(2025, 2, 11))
    with pytest.raises(NotAuthorised, match="team manager"):
        app.corrections.correct(case, reason="Wrong decision recorded", actor=CW)
    with pytest.raises(NotAuthorised):
        app.corrections.correct(case, reason="x", actor=HOS)
    with pytest.raises(InvalidInput, match="--reason"):
        app.corrections.correct(case, reason=" ", actor=TM)
    # The family's letter went out: it cannot be unsent, so the correction says so, and tells them.
    with app.engine.begin() as conn:
        conn.execute(text("UPDATE outbox SET status = 'sent' WHERE template = 'decision_not_to_assess'"))
    corrected = app.corrections.correct(case, reason="Panel decided to assess", actor=TM, tell_family=True)
    assert [t for t, _, status in corrected.already_sent if status == "sent"] == ["decision_not_to_assess"]
    assert corrected.told_family == 1
    v = view(app, case)
    # The refusal had started a disagreement; it had done nothing since, so it closes with it.
    assert [(w["workflow"], w["state"], w["closed"] is not None) for w in v["workflows"]] == [
        ("needs_assessment", "request_received", False),
        ("disagreement", "window_open", True),
    ]
    assert {s for n, (_, s) in deadlines(v, "disagreement").items()} == {"cancelled"}
    assert [r.closed for r in corrected.reversals] == [False, True]
    queued = [m for m in v["outbox"] if m["template"] == "step_corrected"]
    assert [(m["role"], m["status"]) for m in queued] == [("parent", "queued")]


def test_a_correction_restores_a_limit_counted_again_and_the_step_a_signal_caused(
    shipped_app: App, clock: FixedClock
) -> None:
    app = shipped_app
    clock.set(date(2025, 11, 3))
    case = app.cases.open_case(
        name="Generated Child",
        date_of_birth=date(2012, 5, 5),
        workflow="cease",
        actor=CW,
        inputs={"reason": "no_longer_necessary", "considering_from": date(2025, 11, 3)},
        contacts=[PARENT],
        caseworker="cw",
    ).case_id
    clock.set(date(2025, 12, 1))
    app.cases.fire(case, "decide_to_cease", actor=CW, inputs={"reasons": "Generated", "consulted": "yes"})
    app.cases.fire(case, "decline_mediation", actor=CW)
    app.cases.fire(case, "issue_certificate", actor=CW, inputs={"certificate_issued_on": date(2025, 12, 1)})
    # Decision Mon 1 Dec 2025: 2 months is Sun 1 Feb 2026, so Mon 2 Feb; the certificate on 1 Dec
    # gives Thu 1 Jan 2026, earlier: the window stays Mon 2 Feb.
    assert deadlines(view(app, case), "disagreement")["appeal_window"] == ("2026-02-02", "open")
    corrected = app.corrections.correct(case, reason="The certificate was for another case", actor=CW)
    v = view(app, case)
    states = [(w["workflow"], w["state"]) for w in v["workflows"]]
    assert states == [("cease", "decided_to_cease"), ("disagreement", "awaiting_certificate")]
    # The certificate had been signalled to the cease: that entry is corrected with it.
    assert {(r.workflow, r.reversed[0][1]) for r in corrected.reversals} == {
        ("disagreement", "issue_certificate"),
        ("cease", "mediation_certificate_issued"),
    }
    d = deadlines(v, "disagreement")
    assert d["certificate_no_mediation"][1] == "open" and d["appeal_window"] == ("2026-02-02", "open")


def test_a_step_that_started_a_workflow_with_steps_of_its_own_is_refused_with_the_way_out(
    shipped_app: App, clock: FixedClock
) -> None:
    app = shipped_app
    case = open_request(app, clock)
    clock.set(date(2025, 2, 10))
    app.cases.fire(case, "refuse_to_assess", actor=CW, inputs={"reasons": "Generated"})
    app.cases.fire(case, "request_mediation", actor=CW)
    with pytest.raises(InvalidInput, match="steps of its own"):
        app.corrections.correct(case, reason="x", actor=CW, workflow="needs_assessment")
    # The case's last step is the disagreement's: corrected first, then the refusal.
    app.corrections.correct(case, reason="Not asked for", actor=CW)
    app.corrections.correct(case, reason="Wrong decision", actor=CW, workflow="needs_assessment")
    assert [(w["workflow"], w["state"]) for w in view(app, case)["workflows"]] == [
        ("needs_assessment", "request_received"),
        ("disagreement", "window_open"),
    ]
    # Nothing is left but the request itself: correcting it closes the case's workflow, as opened
    # by mistake; it was recorded before today, so only a team manager may.
    with pytest.raises(NotAuthorised, match="team manager"):
        app.corrections.correct(case, reason="x", actor=CW, workflow="needs_assessment")


def test_two_steps_are_corrected_at_once_and_an_exception_recorded_with_them(
    shipped_app: App, clock: FixedClock
) -> None:
    app = shipped_app
    case = open_request(app, clock)
    clock.set(date(2025, 2, 10))
    app.cases.fire(case, "agree_to_assess", actor=CW)
    app.cases.record_exception(case, "final_plan", "personal_circumstances", "Generated", actor=CW)
    corrected = app.corrections.correct(case, steps=2, reason="Both on the wrong case", actor=CW)
    assert corrected.reversals[0].reversed == (
        (2, "agree_to_assess", "2025-02-10"),
        (3, "record_exception", "2025-02-10"),
    )
    row = next(d for d in view(app, case)["deadlines"] if d["name"] == "final_plan")
    assert (row["status"], row["excused"]) == ("open", False)


def test_steps_may_not_be_dated_after_today(shipped_app: App, clock: FixedClock) -> None:
    app = shipped_app
    case = open_request(app, clock)
    clock.set(date(2025, 2, 10))
    with pytest.raises(InvalidInput, match="after today"):
        app.cases.fire(case, "agree_to_assess", actor=CW, on=date(2099, 12, 31))
    with pytest.raises(InvalidInput, match="after today"):
        app.cases.open_case(
            name="Generated", date_of_birth=date(2016, 1, 1), workflow="needs_assessment", actor=CW,
            caseworker="cw", on=date(2025, 2, 11),
        )  # fmt: skip
    # Nothing was saved: the case can still take the step today.
    app.cases.fire(case, "agree_to_assess", actor=CW, on=date(2025, 2, 10))


def test_a_second_correction_takes_the_last_step_that_still_stands(shipped_app: App, clock: FixedClock) -> None:
    app = shipped_app
    case = open_request(app, clock)
    clock.set(date(2025, 2, 10))
    app.cases.fire(case, "refuse_to_assess", actor=CW, inputs={"reasons": "Generated"})
    app.cases.fire(case, "request_mediation", actor=CW)
    app.cases.fire(case, "hold_mediation", actor=CW)
    first = app.corrections.correct(case, reason="Mediation not held", actor=CW)
    second = app.corrections.correct(case, reason="Not asked for", actor=CW)
    assert [r.reversed[0][1] for r in (first.reversals[0], second.reversals[0])] == [
        "hold_mediation",
        "request_mediation",
    ]


def test_a_follow_on_is_found_though_the_sweep_recorded_a_breach_since(shipped_app: App, clock: FixedClock) -> None:
    app = shipped_app
    clock.set(date(2025, 12, 1))
    case = app.cases.open_case(
        name="Generated Child", date_of_birth=date(2016, 4, 4), workflow="annual_review", actor=CW,
        inputs={"period_starts_on": date(2024, 1, 1)}, caseworker="cw", contacts=[PARENT],
    ).case_id  # fmt: skip
    clock.set(date(2025, 12, 5))
    transfer = {"transfer_kind": "primary_to_secondary", "transfer_on": date(2027, 9, 1)}
    app.cases.fire(case, "record_phase_transfer", actor=CW, inputs=transfer)
    clock.set(date(2026, 1, 10))
    app.sweeper.sweep()  # records the review's breach, stamped with its own (earlier) day
    clock.set(date(2025, 12, 5))
    done = app.corrections.correct(case, reason="No move planned", actor=TM, workflow="annual_review")
    closed = [(r.workflow, r.closed) for r in done.reversals]
    assert ("phase_transfer", True) in closed
    v = view(app, case)
    assert {s for _, (_, s) in deadlines(v, "phase_transfer").items()} == {"cancelled"}


def test_a_limit_the_sweep_found_breached_stays_breached_when_the_step_that_met_it_is_corrected(
    shipped_app: App, clock: FixedClock
) -> None:
    app = shipped_app
    case = open_request(app, clock)
    clock.set(date(2025, 4, 1))
    app.sweeper.sweep()  # the 6 weeks (17 Feb) were missed: breached
    app.cases.fire(case, "agree_to_assess", actor=CW)  # met late
    app.corrections.correct(case, reason="Wrong case", actor=CW)
    assert deadlines(view(app, case), "needs_assessment")["decide_whether_to_assess"] == ("2025-02-17", "breached")
    app.sweeper.sweep()
    with app.engine.connect() as conn:
        count = conn.execute(text("SELECT COUNT(*) FROM history WHERE trigger = 'deadline_breached'")).scalar_one()
    assert count == 1  # the breach is not recorded twice


def test_a_workflow_started_by_mistake_is_closed_by_a_correction(shipped_app: App, clock: FixedClock) -> None:
    app = shipped_app
    case = open_request(app, clock)
    clock.set(date(2025, 2, 10))
    started = app.cases.start_workflow(
        case, "disagreement", actor=CW, inputs={"decision": "plan_content", "decision_sent_on": date(2025, 2, 10)}
    )
    done = app.corrections.correct(case, reason="Started on the wrong case", actor=CW, workflow="disagreement")
    assert [(r.instance_id, r.closed) for r in done.reversals] == [(started.instance_id, True)]
    v = view(app, case)
    assert [w["closed"] is not None for w in v["workflows"]] == [False, True]
    assert {s for _, (_, s) in deadlines(v, "disagreement").items()} == {"cancelled"}
