"""A generated demo caseload: made-up children at every stage of every workflow, some overdue.

No real personal data: names are drawn from short lists of common first names and surnames,
email addresses use the reserved example.org domain, and dates are random.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from . import phases, sen2
from .app import App
from .cases import Cases
from .clock import FixedClock
from .errors import ConfigError, TransitionRefused
from .plans import Plans
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

Inputs = Callable[[date], dict[str, object]]


def _none(_: date) -> dict[str, object]:
    return {}


def _moving(kind: str) -> Inputs:
    """A move between phases next September (or this one, when the step is before it)."""

    def inputs(day: date) -> dict[str, object]:
        return {"transfer_kind": kind, "transfer_on": date(day.year + (day.month >= 9), 9, 1)}

    return inputs


def _fixed(**values: object) -> Inputs:
    return lambda _day: dict(values)


@dataclass(frozen=True)
class Step:
    trigger: str
    gap: int  # typical days after the previous step
    inputs: Inputs = _none
    min_gap: int = 1  # a step that must wait for a period to end (the time to appeal)


@dataclass(frozen=True)
class Story:
    """A path through the process, from opening a case; a demo case stops somewhere along it.

    A step whose trigger is ``start:WORKFLOW`` starts that workflow on the case (with the step's
    inputs) instead of firing a trigger."""

    name: str
    workflow: str
    steps: tuple[Step, ...]
    min_age: int = 3
    max_age: int = 15
    opening: Inputs | None = None  # the first workflow's inputs, from the day the case opens


SECONDARY = "Demo Secondary School"
SCHOOL = "Demo Primary School"
ASSESSED = (
    Step("agree_to_assess", 35),
    Step("record_advice_received", 45),
)
REVIEWED = (
    Step("arrange_meeting", 5, lambda d: {"meeting_on": d + timedelta(days=21)}),
    Step("circulate_advice", 6),
    Step("hold_meeting", 15),
    Step("receive_report", 10),
)
CEASING = (
    Step("propose_to_cease", 8, _fixed(cease_reason="no_longer_necessary")),
    Step(
        "decide_to_cease",
        21,
        _fixed(reasons="The outcomes in the plan have been achieved.", consulted=True, outcomes_considered=True),
    ),
)
REASSESSMENT_REQUEST = _fixed(requested_by="parent")


def _reassessment_opening(day: date) -> dict[str, object]:
    return {"requested_by": "school", "request_received_on": day}


def _transfer_in_opening(day: date) -> dict[str, object]:
    return {
        "transferred_on": day,
        "plan_made_on": day - timedelta(days=420),
        "last_reviewed_on": day - timedelta(days=75),
        "old_council": "Another Demo Council",
    }


def _moving_away(day: date) -> dict[str, object]:
    return {"moves_on": day + timedelta(days=10), "became_aware_on": day, "new_council": "Another Demo Council"}


def _moving_away_health(day: date) -> dict[str, object]:
    return {**_moving_away(day), "health_body_changes": True}


STORIES: tuple[Story, ...] = (
    Story(
        "plan issued",
        "needs_assessment",
        ASSESSED
        + (
            Step("decide_to_issue", 14),
            Step("issue_draft_plan", 21),
            Step("consult_institutions", 10, _fixed(institutions=SCHOOL)),
            Step("record_institution_response", 9),
            Step("issue_final_plan", 10, _fixed(named_institution=SCHOOL, family_responded=True)),
        ),
    ),
    Story(
        "refused, mediation, appeal, order",
        "needs_assessment",
        (
            Step("refuse_to_assess", 38, _fixed(reasons="Needs can be met from the school's own resources.")),
            Step("request_mediation", 20),
            Step("hold_mediation", 25),
            Step("issue_certificate", 3),
            Step("lodge_appeal", 20, lambda d: {"response_due_on": d + timedelta(days=42)}),
            Step("send_response", 35),
            Step("record_order", 120, _fixed(order="make_plan")),
            Step("issue_draft_after_order", 30),
            Step("issue_plan_after_order", 40),
        ),
    ),
    Story(
        "not issued, no appeal",
        "needs_assessment",
        ASSESSED
        + (
            Step("decide_not_to_issue", 20, _fixed(reasons="Provision can be made without a plan.")),
            Step("decline_mediation", 25),
            Step("issue_certificate", 3),
            Step("close_window", 75, min_gap=70),
        ),
    ),
    Story(
        "refused, agreed at mediation",
        "needs_assessment",
        (
            Step("refuse_to_assess", 40, _fixed(reasons="Needs can be met from the school's own resources.")),
            Step("request_mediation", 15),
            Step("hold_mediation", 24),
            Step(
                "record_agreement", 2, _fixed(agreement="The council will assess after all.", agreement_kind="assess")
            ),
            Step("notify_will_assess", 10),
            Step("carry_out", 80),
        ),
    ),
    Story(
        "refused, mediation about health alone",
        "needs_assessment",
        (
            Step("refuse_to_assess", 38, _fixed(reasons="Needs can be met from the school's own resources.")),
            Step("request_mediation", 20, _fixed(health_only=True)),
            Step("tell_health_body", 2),
            Step("hold_mediation", 25),
            Step("issue_certificate", 3),
            Step("close_window", 40, min_gap=32),
        ),
    ),
    Story(
        "not issued, appeal withdrawn",
        "needs_assessment",
        ASSESSED
        + (
            Step("decide_not_to_issue", 20, _fixed(reasons="Provision can be made without a plan.")),
            Step("decline_mediation", 20),
            Step("issue_certificate", 2),
            Step("lodge_appeal", 25),
            Step("withdraw_appeal", 60),
        ),
    ),
    Story(
        "review closed, moved away",
        "annual_review",
        (Step("close_review", 40, _fixed(reasons="The family moved to another council, which took over the plan.")),),
        4,
        19,
    ),
    Story("withdrawn", "needs_assessment", (Step("withdraw_request", 30, _fixed(reasons="Withdrawn by the family.")),)),
    Story("moved away", "needs_assessment", (Step("agree_to_assess", 30), Step("move_out_of_area", 40))),
    Story("review, plan kept", "annual_review", REVIEWED + (Step("keep_plan", 8),), 4, 19),
    Story(
        "review, plan amended",
        "annual_review",
        REVIEWED
        + (
            Step("propose_amendments", 8),
            Step("issue_amended_plan", 30, _fixed(named_institution=SCHOOL, family_responded=True)),
        ),
        4,
        19,
    ),
    Story(
        "review, amendment dropped",
        "annual_review",
        REVIEWED
        + (
            Step("propose_amendments", 8),
            Step("decide_not_to_amend", 25, _fixed(reasons="The family's comments showed no change is needed.")),
        ),
        4,
        19,
    ),
    Story(
        "review, plan ceased",
        "annual_review",
        REVIEWED + CEASING + (Step("close_window", 75, _fixed(adviser_not_contacted=True), min_gap=70),),
        17,
        23,
    ),
    Story(
        "review, cease appealed",
        "annual_review",
        REVIEWED
        + CEASING
        + (
            Step("request_mediation", 14),
            Step("mediation_not_possible", 28),
            Step("issue_certificate", 3),
            Step("lodge_appeal", 10),
            Step("record_dismissal", 150),
        ),
        17,
        23,
    ),
    Story(
        "move between phases, new school named",
        "annual_review",
        (Step("record_phase_transfer", 5, _moving("primary_to_secondary")),)
        + REVIEWED
        + (
            Step("propose_amendments", 8),
            Step("issue_amended_plan", 30, _fixed(named_institution=SECONDARY, family_responded=True)),
        ),
        10,
        11,
    ),
    Story(
        "move between phases, not happening",
        "annual_review",
        (
            Step("record_phase_transfer", 5, _moving("secondary_to_post16")),
            Step("record_not_moving", 30, _fixed(reasons="Staying in the school's sixth form after all.")),
        ),
        15,
        16,
    ),
    Story(
        "move between phases, review proposes to cease",
        "annual_review",
        (Step("record_phase_transfer", 5, _moving("secondary_to_post16")),) + REVIEWED + CEASING[:1],
        15,
        16,
    ),
    Story(
        "review, cease withdrawn after mediation",
        "annual_review",
        REVIEWED
        + CEASING
        + (
            Step("request_mediation", 14, _fixed(health_issues=True)),
            Step("tell_health_body", 2),
            Step("hold_mediation", 20),
            Step(
                "record_agreement",
                2,
                _fixed(
                    agreement="The plan continues, with more support at college.", agreement_kind="continue_to_maintain"
                ),
            ),
            Step("carry_out", 10),
            Step("withdraw_decision_to_cease", 2, _fixed(reasons="Agreed at mediation: the plan continues.")),
        ),
        17,
        23,
    ),
    Story(
        "review, early review asked for",
        "annual_review",
        (
            Step("request_early_review", 30, _fixed(early_review_requested_by="school")),
            Step("decline_early_review", 10, _fixed(reasons="The annual review is only eight weeks away.")),
        ),
        4,
        19,
    ),
    Story(
        "re-assessment, plan amended",
        "reassessment",
        (
            Step("agree_to_reassess", 12),
            Step("record_advice_received", 40),
            Step("decide_to_amend", 7, _fixed(change="amend")),
            Step("issue_draft_plan", 10),
            Step("consult_institutions", 5, _fixed(institutions=SCHOOL)),
            Step("record_institution_response", 10),
            Step("issue_final_plan", 12, _fixed(named_institution=SCHOOL, family_responded=True)),
        ),
        6,
        18,
        _reassessment_opening,
    ),
    Story(
        "re-assessment refused",
        "reassessment",
        (
            Step(
                "refuse_to_reassess", 12, _fixed(ground="not_necessary", reasons="The plan still describes the needs.")
            ),
        ),
        6,
        18,
        _reassessment_opening,
    ),
    Story(
        "re-assessment, no change",
        "reassessment",
        (
            Step("agree_to_reassess", 12),
            Step("decide_not_to_amend", 45, _fixed(reasons="The advice confirms the plan as it is.")),
        ),
        6,
        18,
        _reassessment_opening,
    ),
    Story(
        "re-assessment withdrawn",
        "reassessment",
        (Step("withdraw_request", 8, _fixed(reasons="The family withdrew the request.")),),
        6,
        18,
        _reassessment_opening,
    ),
    Story(
        "re-assessment closed, plan ended",
        "reassessment",
        (Step("agree_to_reassess", 12), Step("close_reassessment", 20, _fixed(reasons="The plan ended."))),
        6,
        18,
        _reassessment_opening,
    ),
    Story(
        "moving to another council",
        "annual_review",
        (
            Step("start:transfer_out", 20, _moving_away),
            Step("transfer_plan", 10),
            Step("close_transfer", 2),
        ),
        4,
        19,
    ),
    Story(
        "moving to another council, health body changes",
        "annual_review",
        (
            Step("start:transfer_out", 20, _moving_away_health),
            Step("transfer_plan", 10),
            Step("record_health_notice", 5),
        ),
        4,
        19,
    ),
    Story(
        "move to another council called off",
        "annual_review",
        (Step("start:transfer_out", 20, _moving_away), Step("cancel_move", 5, _fixed(reasons="Not moving after all."))),
        4,
        19,
    ),
    Story(
        "plan transferred in from another council",
        "transfer_in",
        (Step("tell_family", 25, lambda d: {"proposes_assessment": False, "review_by": d + timedelta(days=60)}),),
        4,
        19,
        _transfer_in_opening,
    ),
    Story(
        "review, cease not pursued",
        "annual_review",
        REVIEWED + CEASING[:1] + (Step("decide_not_to_cease", 20, _fixed(reasons="Still needed.")),),
        17,
        23,
    ),
)


def _plan(rng: random.Random, count: int) -> list[tuple[Story, int]]:
    """Which story each case follows and how far: every stage of every story at least once."""
    plan = [(story, length) for story in STORIES for length in range(len(story.steps) + 1)]
    while len(plan) < count:
        story = rng.choice(STORIES)
        plan.append((story, rng.choice([len(story.steps)] * 2 + list(range(len(story.steps))))))
    rng.shuffle(plan)
    return plan


# Made-up settings' numbers (a URN is 6 digits): never a real school's.
DEMO_URNS = {SCHOOL: "900001", SECONDARY: "900002"}
ETHNICITIES = ["WBRI"] * 12 + ["WOTH", "MWBC", "MWAS", "AIND", "APKN", "ABAN", "BAFR", "BCRB", "CHNE", "OOTH", "NOBT"]
NEEDS = ["ASD"] * 4 + ["SLCN"] * 3 + ["SEMH"] * 3 + ["MLD", "SPLD", "SLD", "PMLD", "HI", "VI", "PD", "DS", "MSI"]


def generated_details(rng: random.Random, la_code: str) -> dict[str, str]:
    """What the SEN2 return asks about a child, generated: a UPN with a right check letter (from the
    council's code, a made-up school number and a serial), the census's codes, the demo school's
    made-up URN. One child in twenty has no type of need recorded yet, as happens."""
    rest = f"{la_code}{rng.randint(9000, 9999)}{rng.randint(10, 26)}{rng.randint(0, 999):03d}"
    found = {
        "sex": rng.choice("MF"),
        "ethnicity": rng.choice(ETHNICITIES),
        "upn": sen2.upn_check_letter(rest) + rest,
        "setting_urn": DEMO_URNS[SCHOOL],
    }
    if rng.random() >= 0.05:
        found["primary_need"] = rng.choice(NEEDS)
        if rng.random() < 0.3:
            found["secondary_need"] = rng.choice([n for n in NEEDS if n != found["primary_need"]])
    return found


def generated_plan(rng: random.Random, first: str) -> dict[str, str]:
    """A plan written the way the quality check asks: needs in B met by specific, quantified
    provision in F under the same areas, outcomes with time frames, a named school. Generated text."""
    sessions = rng.choice([2, 3])
    minutes = rng.choice([20, 30])
    year = rng.choice([2026, 2027])
    return {
        "A": f'{first} likes drawing, trains and being outside. {first} says: "I want to have friends to play '
        f"with.\" {first}'s family want {first} to enjoy school and to be able to say what {first} needs.",
        "B": "### Communication and interaction\n"
        f"- {first} understands short sentences of up to four key words and speaks in two- to three-word phrases.\n"
        f"- {first} finds it hard to take turns in conversation.\n\n"
        "### Cognition and learning\n"
        f"- {first}'s reading is about two years behind that of children of the same age.",
        "C": f"{first} has glue ear in both ears, monitored by the audiology service.",
        "D": "No social care needs related to special educational needs have been identified.",
        "E": f"- By July {year}, {first} will follow instructions of up to four key words without visual prompts.\n"
        f"- By the next annual review, {first} will take turns in a structured game for 10 minutes.\n"
        f"- By July {year}, {first} will read and spell 35 of the 44 phonemes.",
        "F": provision(first, sessions, minutes),
        "G": "- Review by the audiology service every 6 months, with a hearing test at each review.",
        "H1": "None.",
        "H2": "None.",
        "I": f"{SCHOOL} (a maintained mainstream primary school)",
        "J": "",
        "K": "- Educational psychologist's advice\n- Speech and language therapy advice\n"
        "- Advice from the school\n- Health advice\n- The family's views",
    }


def provision(first: str, sessions: int, minutes: int) -> str:
    return (
        "### Communication and interaction\n"
        f"- Speech and language therapy from a speech and language therapist: {sessions} sessions of {minutes} "
        "minutes each week, in school.\n"
        "- A programme set by the speech and language therapist, delivered by a trained teaching assistant: "
        "4 sessions of 20 minutes each week.\n\n"
        "### Cognition and learning\n"
        f"- Phonics teaching for {first} from a trained teaching assistant, 1:1: 20 minutes each day."
    )


def amended_provision(rng: random.Random, first: str) -> str:
    """The review's proposed change: a different amount of therapy."""
    return provision(first, rng.choice([1, 4]), 45)


def _contacts(rng: random.Random, parent: ContactRecord, school: ContactRecord, child: str) -> list[ContactRecord]:
    """Most families have an email address and a school; some cases also have the health body and
    social care recorded, so the notices the regulations require reach them (the others are held
    for the caseworker to address)."""
    if rng.random() >= 0.8:
        # No email: letters by post, to a generated address in a made-up town.
        street = rng.choice(["Demo Street", "Example Road", "Sample Lane", "Placeholder Close"])
        address = f"{rng.randint(1, 120)} {street}\nDemotown\nDT{rng.randint(1, 9)} {rng.randint(1, 9)}AA"
        return [ContactRecord("parent", f"Parent of {child}", None, address=address, prefers="post")]
    found = [parent, school]
    if rng.random() < 0.6:
        found.append(ContactRecord("health", "Demo ICB SEND team", "send-team@demo-icb.example.org"))
    if rng.random() < 0.5:
        found.append(ContactRecord("social_care", "Demo children's social care", "cwd@demo-council.example.org"))
    return found


def seed_caseload(app: App, count: int, seed: int, today: date) -> int:
    """Create at least ``count`` cases, spread over every stage of every workflow, if the database
    has none; returns how many were created. About a third are handled slowly and run late."""
    if queries.list_cases(app.engine):
        return 0
    rng = random.Random(seed)
    facts = random.Random(seed + 1)  # the SEN2 details, drawn apart so the caseload is as it was
    clock = FixedClock(today)
    cases = Cases(app.cases.store, app.catalogue, app.directory, clock)
    caseworkers = [app.directory.actor(s.id) for s in app.settings.staff if s.role == "caseworker"]
    if not caseworkers:
        raise ConfigError("the demo caseload needs a caseworker among the staff in config.yaml")
    plan = _plan(rng, count)
    plan_book = Plans(app.store, app.directory, clock)
    for story, length in plan:
        # About one case in three is handled slowly, as too many are: those breach their limits.
        pace = 1.9 if rng.random() < 0.35 else 1.0
        gaps = [max(step.min_gap, int(rng.gauss(step.gap * pace, step.gap / 4))) for step in story.steps[:length]]
        waiting = (
            rng.randint(0, int(story.steps[length].gap * pace)) if length < len(story.steps) else rng.randint(0, 90)
        )
        opened_on = today - timedelta(days=sum(gaps) + waiting + 1)
        clock.set(opened_on)
        child = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        surname = child.split()[1]
        age_days = rng.randint(story.min_age * 365, story.max_age * 365)
        parent = ContactRecord(
            "parent", f"Parent of {child}", f"parent.{surname.lower()}{rng.randint(1, 999)}@example.org"
        )
        school = ContactRecord("school", SCHOOL, "senco@demo-primary.example.org")
        worker = rng.choice(caseworkers)
        if story.opening is not None:
            inputs: dict[str, object] = story.opening(opened_on)
        elif story.workflow == "needs_assessment":
            inputs = {
                "request_received_on": opened_on,
                "requested_by": rng.choice(["parent", "school"]),
            }
        else:
            # A plan made, or last reviewed, ten to eleven months before this review began.
            inputs = {"period_starts_on": opened_on - timedelta(days=rng.randint(300, 340))}
        opened = cases.open_case(
            name=child,
            date_of_birth=opened_on - timedelta(days=age_days),
            workflow=story.workflow,
            actor=worker,
            inputs=inputs,
            contacts=_contacts(rng, parent, school, child),
            caseworker=worker.id,
        )
        first = child.split()[0]
        sen2.record(
            app,
            opened.case_id,
            generated_details(facts, app.settings.council.la_code or "999"),
            actor=worker,
            clock=clock,
        )
        if story.workflow in ("annual_review", "reassessment", "transfer_in"):
            # The plan under review, issued before the case was kept here.
            issued_on = opened_on - timedelta(days=330)
            plan_book.record_issued(opened.case_id, generated_plan(rng, first), issued_on, actor=worker)
        day = opened_on
        for step, gap in zip(story.steps, gaps, strict=False):
            day += timedelta(days=gap)
            clock.set(day)
            if step.trigger.startswith("start:"):
                workflow = step.trigger.removeprefix("start:")
                cases.start_workflow(opened.case_id, workflow, actor=worker, inputs=step.inputs(day))
                continue
            if step.trigger == "issue_draft_plan" and story.workflow == "needs_assessment":
                plan_book.edit(opened.case_id, generated_plan(rng, first), actor=worker)
            elif step.trigger in ("propose_amendments", "issue_draft_plan"):
                plan_book.edit(opened.case_id, {"F": amended_provision(rng, first)}, actor=worker)
            if step.min_gap > 1:
                # Waiting out a period (the time to appeal): its last day moves past weekends, bank
                # holidays, Christmas and August (tribunal rule 12), so the story's gap is not always
                # enough. Wait a day at a time; a period still running today leaves the case waiting.
                while day <= today:
                    try:
                        cases.fire(opened.case_id, step.trigger, actor=worker, inputs=step.inputs(day))
                        break
                    except TransitionRefused:
                        day += timedelta(days=1)
                        clock.set(day)
                else:
                    break  # still running today: the case waits for it
                continue
            cases.fire(opened.case_id, step.trigger, actor=worker, inputs=step.inputs(day))
    # Children moving between phases this academic year get their 15 February or 31 March date.
    clock.set(today)
    cases.phase_transfers(phases.academic_year_starting(today), actor=caseworkers[0], apply=True)
    return len(plan)


def portal_sign_ins(app: App) -> list[tuple[str, str, str]]:
    """A family's and an educational psychologist's sign-in links for the demo: the parent of a case
    whose draft plan is out for comment, and an adviser asked for advice on a case being assessed.
    Returns (who, email, link) for each found."""
    from .portal import Portal

    portal = Portal(app)
    found: list[tuple[str, str, str]] = []
    rows = queries.list_cases(app.engine)
    today = app.clock.today()

    def first(workflow: str, state: str) -> dict[str, object] | None:
        for r in rows:
            if r["workflow"] == workflow and r["state"] == state and r["open"]:
                with app.store.unit() as unit:
                    contacts = unit.fetch(
                        "SELECT id, role, email FROM contact WHERE case_id = :c ORDER BY id", {"c": r["id"]}
                    )
                    born = unit.fetch("SELECT date_of_birth FROM ehc_case WHERE id = :c", {"c": r["id"]})[0][0]
                parent = next((c for c in contacts if c[1] == "parent" and c[2]), None)
                if parent is not None and portal.rights_holder(_as_date(born), today) == "parent":
                    return {"case": r, "parent": parent, "contacts": contacts}
        return None

    family = first("needs_assessment", "draft_issued")
    if family is not None:
        case = family["case"]
        actor = app.directory.actor(str(case["caseworker"]))  # type: ignore[index]
        contact = family["parent"]
        link = portal.demo_link(int(case["id"]), int(contact[0]), "family", actor=actor)  # type: ignore[index]
        found.append((f"Parent, case {case['id']} (draft plan out for comment)", str(contact[2]), link))  # type: ignore[index]
    adviser = first("needs_assessment", "assessing")
    if adviser is not None:
        case = adviser["case"]
        case_id = int(case["id"])  # type: ignore[index]
        actor = app.directory.actor(str(case["caseworker"]))  # type: ignore[index]
        email = f"ep.demo{case_id}@demo-psychology.example.org"
        app.cases.add_contact(case_id, ContactRecord("educational_psychologist", "Demo Educational Psychology", email),
                              actor=actor)  # fmt: skip
        with app.store.unit() as unit:
            contact_id = int(unit.fetch(
                "SELECT id FROM contact WHERE case_id = :c AND email = :e", {"c": case_id, "e": email}
            )[0][0])  # fmt: skip
            waiting = unit.fetch("SELECT 1 FROM advice_request WHERE contact_id = :t", {"t": contact_id})
        link = portal.demo_link(case_id, contact_id, "adviser", actor=actor)  # the demo person first
        if not waiting:
            portal.request_advice(case_id, contact_id, actor=actor)
        found.append((f"Educational psychologist, case {case_id} (advice asked for)", email, link))
    return found


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
