"""A county's year, simulated through the engine itself: ``ehcp simulate`` and bench/county_year.py.

A generated council with ``plans`` EHC plans in force and ``requests`` new requests a year is run
day by day from ``start``:

- the plans' annual reviews are held as their 12 months come round: invitations about eight weeks
  before the last day, the meeting three weeks later, the decision two weeks after that, each case at
  its own pace (a log-normal factor, one case in eight much slower), so some are late;
- requests arrive every day and go through the assessment by the paths of the demo's stories (a
  quarter refused, a sixth not issued, the rest to a final plan), at their own pace, slower in August
  and over Christmas; steps not due by the last day are not taken;
- every day the sweep runs (reminders, breaches, escalations) and the dispatcher sends what it
  queued to a sink that counts them, as a mail server would take them;
- documents the steps queue stay queued (rendering is measured by bench/documents.py).

No real personal data: names are numbered, addresses use example.org. The same simulator feeds
bench/breach_prediction.py.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from notifications.message import Email

from .app import App
from .cases import Cases
from .clock import FixedClock
from .demo import SCHOOL, generated_plan
from .errors import ConfigError, EhcpError
from .plans import Plans
from .store import queries
from .store.repository import ContactRecord, as_date

# The assessment's paths: (trigger, typical days after the step before).
PATHS = {
    "plan": [("agree_to_assess", 35), ("record_advice_received", 42), ("decide_to_issue", 14),
             ("issue_draft_plan", 21), ("consult_institutions", 10), ("record_institution_response", 9),
             ("issue_final_plan", 10)],
    "refused": [("refuse_to_assess", 38)],
    "not_issued": [("agree_to_assess", 35), ("record_advice_received", 42), ("decide_not_to_issue", 20)],
}  # fmt: skip
WEIGHTS = (0.6, 0.25, 0.15)
INPUTS: dict[str, dict[str, object]] = {
    "refuse_to_assess": {"reasons": "Needs can be met from the school's own resources."},
    "decide_not_to_issue": {"reasons": "Provision can be made without a plan."},
    "consult_institutions": {"institutions": SCHOOL},
    "issue_final_plan": {"named_institution": SCHOOL, "family_responded": True},
}


def slower(day: date) -> float:
    """August and the Christmas fortnight: everything takes longer."""
    if day.month == 8 or (day.month == 12 and day.day >= 20) or (day.month == 1 and day.day <= 3):
        return 1.5
    return 1.0


def pace(rng: random.Random) -> float:
    """A case's own pace: most near the typical time, one in eight much slower."""
    return math.exp(rng.gauss(0.0, 0.35)) * (1.9 if rng.random() < 0.12 else 1.0)


class Sink:
    """Takes every message, as a mail server would, and counts them."""

    name = "sink"

    def __init__(self) -> None:
        self.sent = 0

    def send(self, message: Email) -> str:
        self.sent += 1
        return f"sink-{self.sent}"


@dataclass
class Year:
    """What happened, and where the time went."""

    start: date
    days: int
    plans: int = 0
    requests: int = 0
    steps: int = 0
    breaches: int = 0
    messages: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    by_week: list[dict[str, Any]] = field(default_factory=list)


def _contacts(n: int) -> list[ContactRecord]:
    return [
        ContactRecord("parent", f"Parent of Simulated Child {n}", f"parent{n}@example.org"),
        ContactRecord("school", SCHOOL, "senco@demo-primary.example.org"),
    ]


def simulate(
    app: App,
    clock: FixedClock,
    *,
    plans: int,
    requests: int,
    start: date,
    days: int,
    seed: int = 2014,
    on_day: Callable[[date, Year], None] | None = None,
) -> Year:
    """Run the year on ``app`` (whose clock is ``clock``), into a database with no cases yet."""
    if queries.list_cases(app.engine):
        raise ConfigError("the simulation needs an empty database: it would mix with the cases there")
    workers = [app.directory.actor(s.id) for s in app.settings.staff if s.role == "caseworker"]
    if not workers:
        raise ConfigError("the simulation needs a caseworker among the staff in config.yaml")
    rng = random.Random(seed)
    cases = Cases(app.cases.store, app.catalogue, app.directory, clock)
    book = Plans(app.store, app.directory, clock)
    year = Year(start, days)
    last = start + timedelta(days=days - 1)
    events: list[tuple[date, int, str, int, Any]] = []  # (day, order, what, case, detail)
    order = iter(range(10**9))

    def at(day: date, what: str, case_id: int, detail: Any = None) -> None:
        if day <= last:
            heapq.heappush(events, (day, next(order), what, case_id, detail))

    def review(case_id: int, due: date, speed: float) -> None:
        """The review's steps, from about eight weeks before its last day (later at a slow pace): the
        invitations three weeks ahead of the meeting, the advice sent out soon after, the school's
        report within two weeks of the meeting, and the decision (within four weeks, at a good pace)."""
        invite = due - timedelta(days=round(56 / speed**0.5 * math.exp(rng.gauss(0, 0.1))))
        invite = max(invite, start + timedelta(days=rng.randint(0, 20)))  # a backlog is worked through
        meeting = invite + timedelta(days=21)
        at(invite, "arrange_meeting", case_id, {"meeting_on": meeting})
        at(invite + timedelta(days=4), "circulate_advice", case_id, None)
        at(meeting, "hold_meeting", case_id, None)
        at(meeting + timedelta(days=max(1, round(10 * speed**0.5))), "receive_report", case_id, None)
        decided = meeting + timedelta(days=max(12, round(18 * speed * math.exp(rng.gauss(0, 0.25)))))
        at(decided, "keep_plan", case_id)

    started = time.perf_counter()
    clock.set(start - timedelta(days=1))
    for n in range(plans):
        worker = workers[n % len(workers)]
        # A plan made or last reviewed in the year before: its review falls due through this one.
        period = start - timedelta(days=365 - int(rng.random() * 365))
        case_id = cases.open_case(
            name=f"Simulated Child {n}", date_of_birth=start - timedelta(days=rng.randint(6 * 365, 15 * 365)),
            workflow="annual_review", actor=worker, inputs={"period_starts_on": period}, contacts=_contacts(n),
            caseworker=worker.id,
        ).case_id  # fmt: skip
        book.record_issued(case_id, generated_plan(rng, "Child"), period, actor=worker)
        with app.store.unit() as unit:  # the review's last day, as the workflow counts the 12 months
            (found,) = unit.fetch("SELECT due_on FROM deadline WHERE case_id = :c AND name = 'review'", {"c": case_id})
        review(case_id, as_date(found[0]), pace(rng))
    year.plans = plans
    year.seconds["the plans in force, made"] = time.perf_counter() - started
    for phase in ("steps", "sweeps", "sending"):
        year.seconds[phase] = 0.0
    arrivals = sorted(start + timedelta(days=int(rng.random() * days)) for _ in range(int(requests * days / 365)))
    for n, day in enumerate(arrivals):
        at(day, "request", plans + n, (pace(rng), rng.choices(list(PATHS), weights=WEIGHTS)[0]))
    sink = Sink()
    week: Counter[str] = Counter()
    day = start
    while day <= last:
        clock.set(day)
        t0 = time.perf_counter()
        while events and events[0][0] <= day:  # one set before the start is taken on the first day
            _day, _n, what, case_id, detail = heapq.heappop(events)
            if what == "request":
                speed, path = detail
                worker = workers[case_id % len(workers)]
                opened = cases.open_case(
                    name=f"Simulated Child {case_id}",
                    date_of_birth=day - timedelta(days=rng.randint(3 * 365, 14 * 365)),
                    workflow="needs_assessment", actor=worker,
                    inputs={"request_received_on": day, "requested_by": rng.choice(["parent", "school"])},
                    contacts=_contacts(case_id), caseworker=worker.id,
                ).case_id  # fmt: skip
                year.requests += 1
                step_day = day
                for trigger, typical in PATHS[path]:
                    gap = typical * speed * slower(step_day) * math.exp(rng.gauss(0, 0.25))
                    step_day += timedelta(days=max(1, round(gap)))
                    at(step_day, "assess", opened, (trigger, speed))
                continue
            worker = workers[case_id % len(workers)]
            try:
                if what == "assess":
                    trigger, speed = detail
                    if trigger == "issue_draft_plan":
                        book.edit(case_id, generated_plan(rng, "Child"), actor=worker)
                    cases.fire(case_id, trigger, actor=worker, inputs=INPUTS.get(trigger, {}))
                    if trigger == "issue_final_plan":
                        review(case_id, day + timedelta(days=364), speed)
                else:
                    cases.fire(case_id, what, actor=worker, inputs=detail or {}, workflow="annual_review")
            except EhcpError as exc:  # a step the case could not take then: counted, and the year goes on
                year.refused[f"{what}: {str(exc).split(':')[0]}"] += 1
                continue
            year.steps += 1
            week["steps"] += 1
        t1 = time.perf_counter()
        swept = app.sweeper.sweep(day)
        t2 = time.perf_counter()
        sent = app.dispatcher(sink).dispatch()
        t3 = time.perf_counter()
        year.seconds["steps"] += t1 - t0
        year.seconds["sweeps"] += t2 - t1
        year.seconds["sending"] += t3 - t2
        year.breaches += len(swept.breaches)
        year.messages += sent.count("sent")
        week["breaches"] += len(swept.breaches)
        week["messages"] += sent.count("sent")
        if (day - start).days % 7 == 6 or day == last:
            year.by_week.append({"week_of": (day - timedelta(days=(day - start).days % 7)).isoformat(), **week})
            week = Counter()
        if on_day is not None:
            on_day(day, year)
        day += timedelta(days=1)
    return year
