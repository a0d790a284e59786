"""Golden dates: a table worked out by hand from the regulations (tests/golden/*.yaml), not from
the code, checked against the shipped workflow files run through the engine's own core.

Each row names a rule (workflow.deadline), the dates it is counted from and the expected last day.
The recipes below only say which steps lead to the deadline; the arithmetic is the engine's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import phases
from engine.catalogue import Catalogue
from engine.machine import Actor, OpenDeadline, Outcome, Snapshot

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = Catalogue.from_folder(ROOT / "workflows")
CW = Actor("golden", "caseworker")
TM = Actor("golden-manager", "team_manager")
LATER = date(2040, 1, 1)  # steps are recorded long after: only the dates given count

Steps = list[tuple[str, dict[str, Any]]]


def _d(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def run(workflow: str, start: dict[str, Any], steps: Steps, deadline: str, dob: date = date(2015, 2, 3)) -> date:
    """Start ``workflow``, take ``steps``, and return the due date of ``deadline`` as last counted."""
    definition = CATALOGUE.latest(workflow)
    machine = CATALOGUE.machine(definition.name, definition.version)
    outcome: Outcome = machine.start(start, CW, LATER, context={"date_of_birth": dob})
    due: dict[str, date] = {}
    deadlines: dict[str, OpenDeadline] = {}

    def absorb(o: Outcome) -> None:
        for name in o.met + o.cancelled:
            deadlines.pop(name, None)
        for d in o.opened:
            due[d.name] = d.due_on
            deadlines[d.name] = OpenDeadline(d.name, d.due_on, "open")

    absorb(outcome)
    for trigger, inputs in steps:
        snap = Snapshot(outcome.to_state, outcome.facts, dict(deadlines), LATER)
        spec = machine.transition(trigger, outcome.to_state)
        actor = CW if spec is None or CW.role in spec.roles else TM  # only a team manager concedes an appeal
        outcome = machine.decide(snap, trigger, inputs, actor, LATER)
        absorb(outcome)
    assert deadline in due, f"{deadline} was not opened by {[s[0] for s in steps] or 'the start'}"
    return due[deadline]


def before(day: Any, days: int) -> date:
    return _d(day) - timedelta(days=days)


def needs_assessment(name: str, g: dict[str, Any]) -> date:
    if "request_received_on" in g:
        return run("needs_assessment", {"request_received_on": g["request_received_on"]}, [], name)
    start = {
        "request_received_on": before(g.get("advice_requested_on") or g.get("draft_served_on") or g["consulted_on"], 90)
    }
    if name == "advice":
        return run(
            "needs_assessment", start, [("agree_to_assess", {"advice_requested_on": g["advice_requested_on"]})], name
        )
    steps: Steps = [("agree_to_assess", {}), ("decide_to_issue", {})]
    if name == "family_representations":
        return run(
            "needs_assessment", start, [*steps, ("issue_draft_plan", {"draft_served_on": g["draft_served_on"]})], name
        )
    steps.append(("issue_draft_plan", {"draft_served_on": before(g["consulted_on"], 3)}))
    steps.append(("consult_institutions", {"institutions": "Generated School", "consulted_on": g["consulted_on"]}))
    return run("needs_assessment", start, steps, name)


def annual_review(name: str, g: dict[str, Any]) -> date:
    if name == "review":
        return run("annual_review", {"period_starts_on": g["period_starts_on"]}, [], name)
    meeting = _d(g["meeting_on"]) if "meeting_on" in g else before(g["notice_sent_on"], 10)
    start = {"period_starts_on": before(meeting, 300)}
    steps: Steps = [("arrange_meeting", {"meeting_on": meeting, "invitations_sent_on": before(meeting, 30)})]
    if name not in ("invitations", "advice_circulated"):
        steps.append(("hold_meeting", {"meeting_held_on": meeting}))
    if name in ("amendment_representations", "amended_plan"):
        steps.append(("propose_amendments", {"decision_sent_on": g["notice_sent_on"]}))
    return run("annual_review", start, steps, name)


def phase_transfer(name: str, g: dict[str, Any]) -> date:
    """The move's dates live in the phase transfer the annual review starts when the move is recorded."""
    if name == "deadline":
        return run(
            "phase_transfer", {"transfer_kind": g["kind"], "transfer_on": g["transfer_on"]}, [], "phase_transfer"
        )
    kind = {"primary_to_secondary_deadline": "primary_to_secondary", "post16_deadline": "secondary_to_post16"}[name]
    dob = _d(g["date_of_birth"])
    for year in range(dob.year, dob.year + 20):
        transfer = phases.transfer_in(dob, year)
        if transfer is not None and transfer.kind == kind:
            # The engine finds the move from the date of birth (the review records it and starts this).
            start = {"transfer_kind": kind, "transfer_on": transfer.moves_on}
            return run("phase_transfer", start, [], "phase_transfer", dob)
    raise AssertionError(f"no {kind} move found for {dob}")


def cease(name: str, g: dict[str, Any]) -> date:
    decided = {"decision_sent_on": g["decision_sent_on"], "reasons": "Generated", "consulted": "yes"}
    start = {"reason": "no_longer_necessary", "considering_from": before(g["decision_sent_on"], 20)}
    return run("cease", start, [("decide_to_cease", decided)], name)


ORDERS = {
    "order_notify_will_assess": "assess",
    "order_no_plan_after_assess": "assess",
    "order_final_plan_after_assess": "assess",
    "order_draft_plan": "make_plan",
    "order_final_plan": "make_plan",
    "order_amend_plan": "amend_plan",
    "order_amend_school_only": "amend_school_only",
    "order_reconsider": "reconsider",
}


def disagreement(name: str, g: dict[str, Any]) -> date:
    anchor = g.get("decision_sent_on") or before(
        g.get("told_on") or g.get("mediation_ended_on") or g.get("order_made_on") or g["told_tribunal_on"],
        200 if ("order_made_on" in g or "told_tribunal_on" in g) else 10,
    )
    start = {"decision": "not_to_assess", "decision_sent_on": anchor}
    if name in ("contact_mediation_adviser",) or (name == "appeal_window" and not g.get("certificate_issued_on")):
        return run("disagreement", start, [], name)
    if name == "appeal_window":
        cert = g["certificate_issued_on"]
        steps: Steps = [
            ("decline_mediation", {"told_on": cert}),
            ("issue_certificate", {"certificate_issued_on": cert}),
        ]
        return run("disagreement", start, steps, name)
    if name == "certificate_no_mediation":
        return run("disagreement", start, [("decline_mediation", {"told_on": g["told_on"]})], name)
    if name == "mediation":
        return run("disagreement", start, [("request_mediation", {"told_on": g["told_on"]})], name)
    if name == "certificate_after_mediation":
        ended = g["mediation_ended_on"]
        steps = [
            ("request_mediation", {"told_on": before(ended, 5)}),
            ("hold_mediation", {"mediation_ended_on": ended}),
        ]
        return run("disagreement", start, steps, name)
    # An order of the tribunal (reg 44), or the council telling the tribunal it will not oppose (reg 45).
    conceded = "told_tribunal_on" in g
    made = _d(g["told_tribunal_on"] if conceded else g["order_made_on"])
    steps = [
        ("decline_mediation", {"told_on": before(made, 150)}),
        ("issue_certificate", {"certificate_issued_on": before(made, 148)}),
        ("lodge_appeal", {"lodged_on": before(made, 140)}),
        ("concede_appeal" if conceded else "record_order", {"order": ORDERS[name], "order_made_on": made}),
    ]
    return run("disagreement", start, steps, name)


RULES: dict[str, Callable[[str, dict[str, Any]], date]] = {
    "needs_assessment": needs_assessment,
    "annual_review": annual_review,
    "phase_transfer": phase_transfer,
    "cease": cease,
    "disagreement": disagreement,
}


def _rows() -> list[Any]:
    rows = []
    for path in sorted((ROOT / "tests" / "golden").glob("*.yaml")):
        for row in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            rows.append(pytest.param(row, id=f"{path.stem}:{row['id']}"))
    return rows


ROWS = _rows()


def test_the_table_is_big_enough_and_covers_every_rule() -> None:
    assert len(ROWS) >= 30
    rules = {p.values[0]["rule"] for p in ROWS}
    shipped = ("needs_assessment", "annual_review", "phase_transfer", "cease", "disagreement")
    for workflow in shipped + ("mediation_agreement", "reassessment", "transfer_out", "transfer_in"):
        assert any(r.startswith(workflow + ".") for r in rules), workflow


def recipe(workflow: str, name: str, row: dict[str, Any]) -> date:
    """A row that spells out its own steps: ``start`` (the workflow's inputs) and ``steps``
    (``[trigger, {inputs}]`` in order, taken by a caseworker, or a team manager where only one may).
    The dates in them are the ones the row's ``given`` names; the due date is the engine's."""
    steps = [(trigger, dict(inputs or {})) for trigger, inputs in row.get("steps") or []]
    dob = _d(row["dob"]) if "dob" in row else date(2015, 2, 3)
    return run(workflow, dict(row["start"]), steps, name, dob)


@pytest.mark.parametrize("row", ROWS)
def test_golden_date(row: dict[str, Any]) -> None:
    workflow, _, name = row["rule"].partition(".")
    got = recipe(workflow, name, row) if "start" in row else RULES[workflow](name, row["given"])
    assert got == _d(row["expect"]), f"{row['id']}: {row.get('why', '')} ({row.get('source', '')})"
