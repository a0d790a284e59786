"""The engine features the statutory workflows need, in general form: limits counted back from a
date or from another limit, the later of two periods, fixed calendar dates, variants chosen by
conditions, parameters, limits met on a stated date, workflows that start others and signal back.
Each is checked in the loader (mistakes named with their line) and in the pure core.
"""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from engine.catalogue import Catalogue, apply_settings
from engine.config import WorkflowSettings
from engine.definition.load import load_text
from engine.errors import ConfigError, DefinitionError
from engine.machine import Actor, OpenDeadline, Outcome, Snapshot, WorkflowMachine

CW = Actor("cw", "caseworker")

BASE = textwrap.dedent(
    """\
    name: features
    version: 1
    title: Feature fixture
    source: Test fixture (no statute)
    initial: open
    inputs:
      decided_on: {type: date, default: today}
      kind: {type: choice, options: [short, long], required: false}
      moves_on: {type: date, required: false}
    parameters:
      reading:
        label: How to read the rule
        options: [plain, strict]
        default: plain
      interval:
        label: How often
        duration: true
        default: 6 months
    states:
      open:
        description: The case is open and waiting.
        on_enter:
          start:
            - workflow: child
              inputs: {sent_on: decided_on, why: {value: test}}
      meeting_set:
        description: A meeting has been arranged for it.
      done:
        final: true
        description: The case is finished now.
        on_enter:
          signal: {trigger: child_done, inputs: {finished_on: decided_on}}
    transitions:
      - trigger: set_meeting
        from: open
        to: meeting_set
        roles: [caseworker]
        inputs:
          meeting_on: {type: date}
          invited_on: {type: date, default: today}
      - trigger: certify
        from: [open, meeting_set]
        to: open
        roles: [caseworker]
        inputs:
          certified_on: {type: date}
      - trigger: finish
        from: [open, meeting_set]
        to: done
        roles: [caseworker, workflow]
    deadlines:
      - name: window
        title: The later of two periods
        later_of:
          - {duration: 2 months, counted_from: decided_on}
          - {duration: 1 month, counted_from: certified_on}
        opened_by: [start, certify]
        met_by: [finish]
        source: Test
        basis: statutory
        party: family
      - name: notice
        title: Counted back from the meeting, met at once on the day invitations went
        duration: 2 weeks
        direction: before
        counted_from: meeting_on
        opened_by: set_meeting
        met_by: set_meeting
        met_on: invited_on
        source: Test
        basis: statutory
      - name: fixed_day
        title: A fixed day in the year of a date
        fixed: {day: 29, month: February, year_of: moves_on}
        when: [{input_equals: {kind: short}}]
        opened_by: start
        met_by: finish
        source: Test
        basis: statutory
      - name: fixed_day
        title: A fixed day in the year of a date
        fixed: {day: 31, month: March, year_of: moves_on}
        when: [{input_equals: {kind: long}}]
        opened_by: start
        met_by: finish
        source: Test
        basis: statutory
      - name: before_fixed
        title: Counted back from another deadline
        duration: 4 weeks
        direction: before
        counted_from: fixed_day
        when: [{not: {input_equals: {reading: strict}}}]
        opened_by: start
        met_by: finish
        source: Test
        basis: local
      - name: regular
        title: From a parameter
        duration_from: interval
        counted_from: decided_on
        opened_by: start
        met_by: finish
        source: Test
        basis: guidance
    """
)

CHILD = textwrap.dedent(
    """\
    name: child
    version: 1
    title: Child fixture
    source: Test fixture (no statute)
    initial: waiting
    inputs:
      sent_on: {type: date}
      why: {type: text, required: false}
    states:
      waiting:
        description: The child workflow is waiting.
      closed:
        final: true
        description: The child workflow is closed.
    transitions:
      - trigger: close
        from: waiting
        to: closed
        roles: [caseworker]
      - trigger: child_done
        from: waiting
        to: closed
        roles: [workflow]
        inputs:
          finished_on: {type: date}
    """
)


def load(text: str = BASE) -> WorkflowMachine:
    return WorkflowMachine(load_text(text, "features.yaml"))


def problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_text(text, "features.yaml")
    return [str(p) for p in info.value.problems]


def after(outcome: Outcome, previous: Snapshot | None = None) -> Snapshot:
    deadlines = dict(previous.deadlines) if previous else {}
    for name in outcome.met + outcome.cancelled:
        deadlines.pop(name, None)
    deadlines.update({d.name: OpenDeadline(d.name, d.due_on, "open") for d in outcome.opened})
    return Snapshot(outcome.to_state, outcome.facts, deadlines, outcome.on)


def test_fixed_dates_variants_parameters_and_deadlines_counted_from_deadlines() -> None:
    m = load()
    start = m.start({"decided_on": "2027-12-31", "kind": "short", "moves_on": "2029-09-01"}, CW, date(2027, 12, 31))
    due = {d.name: d.due_on for d in start.opened}
    assert due == {
        "window": date(2028, 2, 29),  # 31 Dec + 2 months: the last day of February, a leap year
        "fixed_day": date(2029, 2, 28),  # 29 February in a common year is the 28th
        "before_fixed": date(2029, 1, 31),  # 4 weeks before the other deadline's date
        "regular": date(2028, 6, 30),  # the parameter's 6 months
    }
    assert start.facts["reading"] == "plain" and start.facts["interval"] == "6 months"
    long = m.start({"kind": "long", "moves_on": "2029-09-01"}, CW, date(2027, 1, 4))
    assert {d.name: d.due_on for d in long.opened}["fixed_day"] == date(2029, 3, 31)
    neither = m.start({}, CW, date(2027, 1, 4))
    assert {d.name for d in neither.opened} == {"window", "regular"}  # no date to fix the others on


def test_a_later_period_recounts_an_open_limit_only_when_it_ends_later() -> None:
    m = load()
    start = m.start({"decided_on": "2025-01-15"}, CW, date(2025, 1, 15))
    snap = after(start)
    assert snap.deadlines["window"].due_on == date(2025, 3, 15)
    early = m.decide(snap, "certify", {"certified_on": "2025-02-01"}, CW, date(2025, 2, 1))
    assert [(d.name, d.due_on, d.recount) for d in early.opened] == [("window", date(2025, 3, 15), True)]
    late = m.decide(snap, "certify", {"certified_on": "2025-03-01"}, CW, date(2025, 3, 1))
    assert [(d.name, d.due_on, d.recount) for d in late.opened] == [("window", date(2025, 4, 1), True)]


def test_a_limit_counted_back_is_opened_and_met_at_once_on_the_date_given() -> None:
    m = load()
    snap = after(m.start({}, CW, date(2025, 3, 3)))
    on_time = m.decide(
        snap, "set_meeting", {"meeting_on": "2025-03-31", "invited_on": "2025-03-10"}, CW, date(2025, 3, 12)
    )
    assert [(d.name, d.due_on) for d in on_time.opened] == [("notice", date(2025, 3, 17))]
    assert "notice" in on_time.met and on_time.met_on["notice"] == date(2025, 3, 10)


def test_parameters_come_from_config_and_a_bad_value_names_the_place() -> None:
    d = load_text(BASE, "features.yaml")
    strict = apply_settings(d, None, WorkflowSettings(parameters={"reading": "strict", "interval": "3 months"}))
    out = WorkflowMachine(strict).start({"kind": "short", "moves_on": "2029-09-01"}, CW, date(2027, 1, 4))
    names = {x.name: x.due_on for x in out.opened}
    assert "before_fixed" not in names and names["regular"] == date(2027, 4, 4)
    with pytest.raises(
        ConfigError, match=r"workflows.features.parameters.reading: 'loose' is not one of plain, strict"
    ):
        apply_settings(d, None, WorkflowSettings(parameters={"reading": "loose"}))
    with pytest.raises(ConfigError, match=r"workflows.features.parameters.interval: 'often' is not a duration"):
        apply_settings(d, None, WorkflowSettings(parameters={"interval": "often"}))
    with pytest.raises(ConfigError, match=r"no such parameter"):
        apply_settings(d, None, WorkflowSettings(parameters={"nothing": "x"}))


def test_starting_and_signalling_are_requests_the_service_carries_out() -> None:
    m = load()
    start = m.start({"decided_on": "2025-01-15"}, CW, date(2025, 1, 15))
    assert [(s.workflow, s.inputs) for s in start.starts] == [("child", {"sent_on": date(2025, 1, 15), "why": "test"})]
    done = m.decide(after(start), "finish", {}, CW, date(2025, 2, 1))
    assert done.signal is not None and (done.signal.trigger, done.signal.inputs) == (
        "child_done",
        {"finished_on": date(2025, 1, 15)},
    )


def test_the_catalogue_checks_that_started_workflows_exist_and_take_the_inputs(tmp_path: Path) -> None:
    (tmp_path / "features.yaml").write_text(BASE)
    with pytest.raises(DefinitionError, match="no workflow called 'child'"):
        Catalogue.from_folder(tmp_path)
    (tmp_path / "child.yaml").write_text(CHILD.replace("why: {type: text, required: false}", "reason: {type: text}"))
    with pytest.raises(DefinitionError, match="'child' takes no input 'why'"):
        Catalogue.from_folder(tmp_path)
    (tmp_path / "child.yaml").write_text(CHILD)
    assert Catalogue.from_folder(tmp_path).names() == ["child", "features"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("counted_from: fixed_day", "counted_from: fixd_day", "'fixd_day' is not among"),
        ("{day: 29, month: February", "{day: 30, month: February", "30 February is not a date"),
        ("duration_from: interval", "duration_from: reading", "parameter 'reading' is not a duration"),
        ("inputs: {sent_on: decided_on,", "inputs: {sent_on: decidd_on,", "unknown fact 'decidd_on'"),
        ("[{input_equals: {kind: short}}]", "[{input_equals: {knd: short}}]", "unknown input or parameter 'knd'"),
        ("met_on: invited_on", "met_on: meeting", "unknown date input 'meeting'"),
        ("roles: [caseworker, workflow]", "roles: [caseworker, robot]", "unknown role 'robot'"),
        ("    when: [{input_equals: {kind: long}}]\n", "", "deadline 'fixed_day' is defined twice"),
    ],
)
def test_mistakes_in_the_new_features_are_named_with_their_line(old: str, new: str, expected: str) -> None:
    assert old in BASE
    found = problems(BASE.replace(old, new, 1))
    assert any(expected in p for p in found), found
    assert all(p.startswith("features.yaml:") and p.split(":")[1].isdigit() for p in found), found


def test_a_deadline_needs_exactly_one_way_of_counting() -> None:
    old = "    duration_from: interval\n"
    assert old in BASE
    text = BASE.replace(old, old + "    fixed: {day: 1, month: 1, year_of: moves_on}\n")
    assert any("exactly one of" in p for p in problems(text))
