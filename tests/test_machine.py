"""The pure core: which triggers are allowed, why others are refused, what an outcome contains."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.definition.load import load_file
from engine.errors import TransitionRefused
from engine.machine import Actor, OpenDeadline, Outcome, Snapshot, WorkflowMachine

SIMPLE = load_file(Path(__file__).parent / "workflows" / "simple.yaml")
CW = Actor("cw", "caseworker")
TM = Actor("tm", "team_manager")
HOS = Actor("hos", "head_of_service")


@pytest.fixture(scope="module")
def machine() -> WorkflowMachine:
    return WorkflowMachine(SIMPLE)


def snap_after(outcome: Outcome, deadlines: dict[str, OpenDeadline] | None = None) -> Snapshot:
    opened = {d.name: OpenDeadline(d.name, d.due_on, "open") for d in outcome.opened}
    return Snapshot(outcome.to_state, outcome.facts, {**(deadlines or {}), **opened}, outcome.on)


def test_one_machine_serves_every_case(machine: WorkflowMachine) -> None:
    # No model is ever attached to the shared machine: cases are bound for one call only.
    start = machine.start({"received_on": "2025-01-06"}, CW, date(2025, 1, 6))
    machine.decide(snap_after(start), "start_work", {}, CW, date(2025, 1, 7))
    assert machine.machine.models == []


def test_start_opens_the_deadlines_counted_from_the_input(machine: WorkflowMachine) -> None:
    out = machine.start({"received_on": "2025-01-06"}, CW, date(2025, 1, 8))
    assert out.to_state == "received"
    assert [(d.name, d.starts_on, d.due_on) for d in out.opened] == [
        ("start_within", date(2025, 1, 6), date(2025, 2, 17))
    ]


def test_a_date_input_defaults_to_the_day_of_the_event(machine: WorkflowMachine) -> None:
    out = machine.start({}, CW, date(2025, 3, 3))
    assert out.facts["received_on"] == date(2025, 3, 3)


def test_allowed_triggers_depend_on_state_and_role(machine: WorkflowMachine) -> None:
    assert machine.allowed("received", "caseworker") == ["start_work", "drop"]
    assert machine.allowed("waiting", "caseworker") == ["finish", "drop"]
    assert machine.allowed("waiting", "team_manager") == ["approve", "finish", "drop"]
    assert machine.allowed("done", "team_manager") == []


def test_a_trigger_from_the_wrong_state_is_refused_with_the_allowed_ones(machine: WorkflowMachine) -> None:
    start = machine.start({}, CW, date(2025, 1, 6))
    with pytest.raises(TransitionRefused) as info:
        machine.decide(snap_after(start), "finish", {}, CW, date(2025, 1, 7))
    assert info.value.reason == "'finish' is not possible from 'received'"
    assert info.value.allowed == ["start_work", "drop"]
    assert "allowed now: start_work, drop" in str(info.value)


def test_an_unknown_trigger_is_refused(machine: WorkflowMachine) -> None:
    start = machine.start({}, CW, date(2025, 1, 6))
    with pytest.raises(TransitionRefused, match="'launch' is not a step of the simple workflow"):
        machine.decide(snap_after(start), "launch", {}, CW, date(2025, 1, 7))


def test_nothing_happens_after_a_final_state(machine: WorkflowMachine) -> None:
    snap = Snapshot("dropped", {}, {}, date(2025, 1, 6))
    with pytest.raises(TransitionRefused, match="the workflow has ended"):
        machine.decide(snap, "start_work", {}, CW, date(2025, 1, 7))


def test_roles_are_enforced(machine: WorkflowMachine) -> None:
    snap = Snapshot("waiting", {}, {}, date(2025, 1, 6))
    with pytest.raises(TransitionRefused) as info:
        machine.decide(snap, "approve", {"reason": "ok"}, CW, date(2025, 1, 7))
    assert "only team_manager may do this; you are caseworker" in info.value.reason
    assert "approve" not in info.value.allowed
    assert machine.decide(snap, "approve", {"reason": "ok"}, TM, date(2025, 1, 7)).to_state == "approved"
    with pytest.raises(TransitionRefused, match="only caseworker or team_manager"):
        machine.decide(Snapshot("received", {}, {}, None), "start_work", {}, HOS, date(2025, 1, 7))


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({}, "input 'reason' is required"),
        ({"reason": "ok", "colour": "red"}, "unknown input 'colour' (this step takes: reason)"),
        ({"reason": "   "}, "input 'reason': is empty"),
    ],
)
def test_required_and_unknown_inputs(machine: WorkflowMachine, inputs: dict[str, str], reason: str) -> None:
    snap = Snapshot("waiting", {}, {}, date(2025, 1, 6))
    with pytest.raises(TransitionRefused) as info:
        machine.decide(snap, "approve", inputs, TM, date(2025, 1, 7))
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({"started_on": "2025-02-30"}, "input 'started_on': '2025-02-30' is not a date; write it as YYYY-MM-DD"),
        ({"priority": "urgent"}, "input 'priority': 'urgent' is not one of: low, high"),
    ],
)
def test_inputs_are_typed(machine: WorkflowMachine, inputs: dict[str, str], reason: str) -> None:
    with pytest.raises(TransitionRefused) as info:
        machine.decide(Snapshot("received", {}, {}, None), "start_work", inputs, CW, date(2025, 1, 7))
    assert reason in info.value.reason


def test_a_step_cannot_be_dated_before_the_last_one(machine: WorkflowMachine) -> None:
    with pytest.raises(TransitionRefused, match="before the case's last recorded step"):
        machine.decide(Snapshot("received", {}, {}, date(2025, 2, 1)), "start_work", {}, CW, date(2025, 1, 31))


def test_a_condition_refuses_with_its_reason_until_the_period_ends(machine: WorkflowMachine) -> None:
    working = machine.decide(Snapshot("received", {}, {}, None), "start_work", {}, CW, date(2025, 3, 1))
    sent = machine.decide(snap_after(working), "send_proposal", {"served_on": "2025-03-07"}, CW, date(2025, 3, 7))
    family = next(d for d in sent.opened if d.name == "family_period")
    # 15 days beginning with Fri 7 Mar 2025 end on Fri 21 Mar 2025 (rules §9).
    assert family.due_on == date(2025, 3, 21)
    snap = snap_after(sent, snap_after(working).deadlines)
    with pytest.raises(TransitionRefused) as info:
        machine.decide(snap, "finish", {}, CW, date(2025, 3, 21))
    assert "the period 'family_period' runs until 2025-03-21" in info.value.reason
    assert machine.decide(snap, "finish", {}, CW, date(2025, 3, 22)).to_state == "done"
    assert machine.decide(snap, "finish", {"family_agreed": "yes"}, CW, date(2025, 3, 10)).to_state == "done"


def test_an_outcome_meets_cancels_and_opens_deadlines(machine: WorkflowMachine) -> None:
    start = machine.start({"received_on": "2025-01-06"}, CW, date(2025, 1, 6))
    working = machine.decide(snap_after(start), "start_work", {"started_on": "2025-01-31"}, CW, date(2025, 2, 3))
    assert working.met == ["start_within"]
    # 2 months from 31 Jan 2025: the corresponding date, 31 Mar 2025 (counted from the input, not the event).
    assert [(d.name, d.due_on) for d in working.opened] == [("finish_within", date(2025, 3, 31))]
    assert [m.template for m in working.messages] == ["started"] and working.documents == ["working_letter"]


def test_reaching_a_final_state_closes_every_open_limit(machine: WorkflowMachine) -> None:
    deadlines = {
        "finish_within": OpenDeadline("finish_within", date(2025, 3, 31), "open"),
        "manager_target": OpenDeadline("manager_target", date(2025, 3, 12), "breached"),
    }
    out = machine.decide(Snapshot("waiting", {}, deadlines, None), "drop", {}, CW, date(2025, 3, 20))
    assert out.final and out.met == [] and sorted(out.cancelled) == ["finish_within", "manager_target"]


def test_the_steps_a_definition_allows_are_the_triggers_transitions_offers() -> None:
    """The one rule (``WorkflowDefinition.allowed``) against the `transitions` library's own answer."""
    from conftest import ROOT

    from engine.catalogue import Catalogue

    catalogue = Catalogue.from_folder(ROOT / "workflows")
    for d in catalogue.all():
        machine = catalogue.machine(d.name, d.version)
        for state in d.states:
            offered = machine.machine.get_triggers(state)
            for role in (None, "caseworker", "team_manager", "head_of_service", "workflow"):
                expected = [t for t in offered if role is None or role in machine.transition(t, state).roles]
                assert d.allowed(state, role) == expected, (d.name, state, role)
