"""A generated demo caseload: made-up children at every stage of the assessment, some overdue.

No real personal data: names are drawn from short lists of common first names and surnames,
email addresses use the reserved example.org domain, and dates are random.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from .app import App
from .cases import Cases
from .clock import FixedClock
from .store import queries
from .store.repository import ContactRecord

FIRST = [
    "Alex",
    "Sam",
    "Jordan",
    "Riley",
    "Charlie",
    "Morgan",
    "Jamie",
    "Taylor",
    "Robin",
    "Ellis",
    "Frankie",
    "Harley",
    "Kai",
    "Noor",
    "Oakley",
    "Remi",
    "Sasha",
    "Toby",
    "Zara",
    "Ivy",
]
LAST = [
    "Ashdown",
    "Brook",
    "Carrow",
    "Dunmore",
    "Elsworth",
    "Fenby",
    "Garland",
    "Hexley",
    "Ingram",
    "Jessop",
    "Kerridge",
    "Lowther",
    "Marden",
    "Northam",
    "Oldfield",
    "Pellow",
    "Quarry",
    "Rendle",
]

# The paths a request can take, as (trigger, inputs, typical days after the previous step).
HAPPY = [
    ("agree_to_assess", {}, 35),
    ("record_advice_received", {}, 45),
    ("decide_to_issue", {}, 14),
    ("issue_draft_plan", {}, 21),
    ("consult_institutions", {"institutions": "Demo Primary School"}, 10),
    ("issue_final_plan", {"named_institution": "Demo Primary School"}, 18),
]
REFUSED = [("refuse_to_assess", {"reasons": "Needs can be met from the school's own resources."}, 38)]
NOT_ISSUED = HAPPY[:2] + [("decide_not_to_issue", {"reasons": "Provision can be made without a plan."}, 20)]
WITHDRAWN = HAPPY[:1] + [("withdraw_request", {"reasons": "The family withdrew the request."}, 30)]


def seed_caseload(app: App, count: int, seed: int, today: date) -> int:
    """Create ``count`` cases if the database has none; returns how many were created."""
    if queries.list_cases(app.engine):
        return 0
    rng = random.Random(seed)
    clock = FixedClock(today)
    cases = Cases(app.cases.store, app.catalogue, app.directory, clock)
    caseworkers: list[str | None] = [s.id for s in app.settings.staff if s.role == "caseworker"] or [None]
    actor = caseworkers[0] or app.settings.user
    for _ in range(count):
        received = today - timedelta(days=rng.randint(3, 200))
        clock.set(received)
        child = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        surname = child.split()[1]
        age_days = rng.randint(3 * 365, 15 * 365)
        parent = ContactRecord(
            "parent", f"Parent of {child}", f"parent.{surname.lower()}{rng.randint(1, 999)}@example.org"
        )
        school = ContactRecord("school", "Demo Primary School", "senco@demo-primary.example.org")
        worker = rng.choice(caseworkers)
        opened = cases.open_case(
            name=child,
            date_of_birth=received - timedelta(days=age_days),
            workflow="needs_assessment",
            actor_id=worker or actor,
            inputs={"request_received_on": received, "requested_by": rng.choice(["parent", "school"])},
            contacts=[parent, school] if rng.random() < 0.8 else [ContactRecord("parent", f"Parent of {child}", None)],
            caseworker=worker,
        )
        path = rng.choices([HAPPY, REFUSED, NOT_ISSUED, WITHDRAWN], weights=[70, 12, 10, 8])[0]
        # About one case in three is handled slowly, as too many are: those breach their limits.
        pace = 1.9 if rng.random() < 0.35 else 1.0
        day = received
        for trigger, inputs, gap in path:
            day = day + timedelta(days=max(1, int(rng.gauss(gap * pace, gap / 3))))
            if day > today:
                break
            clock.set(day)
            given: dict[str, object] = dict(inputs)
            if trigger == "issue_final_plan":
                given["family_responded"] = True
            cases.fire(opened.case_id, trigger, actor_id=worker or actor, inputs=given)
    return count
