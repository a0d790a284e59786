"""How well the at-risk warnings (engine.risk) would have done on two simulated years of requests for
an EHC needs assessment, run through the real engine on a SQLite file.

    .venv/bin/python bench/breach_prediction.py                   # 1,500 requests a year, two years
    .venv/bin/python bench/breach_prediction.py --requests 600 --lead 14

Requests arrive every day for two years. Each case is worked at its own pace (a log-normal factor:
most near the typical time, some much slower) with day-to-day noise, and everything slows in August
and over Christmas. A quarter are refused, a sixth end in a decision not to issue, the rest in a plan
(with the steps of the demo's stories). Steps after the last day are not taken: the cases still open
then are open, as in a real record.

Then, for every council limit that fell due in the second year, the model is asked ``--lead`` days
ahead (to within a week) with only what had been recorded by then, and its warnings are counted
against what happened: breaches flagged, breaches not flagged, false alarms. Beside it, the same
counts for three plainer ways: flag every limit; the model without the stage (the limit's own days
alone); and the share of each kind missed so far (for the Brier score only). Figures are medians of
nothing: the simulation is seeded and runs once; the time taken is printed for what it is.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from engine.actor import Actor  # noqa: E402
from engine.app import App  # noqa: E402
from engine.cases import Cases  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.config import Settings, StaffMember  # noqa: E402
from engine.demo import generated_plan  # noqa: E402
from engine.outlook import load  # noqa: E402
from engine.plans import Plans  # noqa: E402
from engine.risk import backtest  # noqa: E402
from engine.simulate import INPUTS, PATHS, WEIGHTS, pace, slower  # noqa: E402
from engine.store.database import initialise  # noqa: E402

STAFF = [
    StaffMember(id=f"cw{i}", name=f"Caseworker {i}", email=f"cw{i}@example.org", role="caseworker", manager="tm")
    for i in range(12)
] + [StaffMember(id="tm", name="Team Manager", email="tm@example.org", role="team_manager")]


def simulate(app: App, requests: int, first: date, last: date, seed: int) -> int:
    rng = random.Random(seed)
    clock = FixedClock(first)
    cases = Cases(app.cases.store, app.catalogue, app.directory, clock)
    plans = Plans(app.store, app.directory, clock)
    days = (last - first).days + 1
    count = int(requests * days / 365)
    steps = 0
    for n in range(count):
        received = first + timedelta(days=int(rng.random() * days))
        worker = Actor(f"cw{n % 12}", "caseworker")
        speed = pace(rng)
        path = rng.choices(list(PATHS), weights=WEIGHTS)[0]
        clock.set(received)
        case_id = cases.open_case(
            name=f"Simulated Child {n}", date_of_birth=received - timedelta(days=rng.randint(6 * 365, 14 * 365)),
            workflow="needs_assessment", actor=worker,
            inputs={"request_received_on": received, "requested_by": rng.choice(["parent", "school"])},
            contacts=[], caseworker=worker.id,
        ).case_id  # fmt: skip
        day = received
        issued = None
        for trigger, typical in PATHS[path]:
            gap = max(1, round(typical * speed * slower(day) * math.exp(rng.gauss(0.0, 0.25))))
            day += timedelta(days=gap)
            if day > last:
                break
            clock.set(day)
            if trigger == "issue_draft_plan":
                plans.edit(case_id, generated_plan(rng, "Child"), actor=worker)
            cases.fire(case_id, trigger, actor=worker, inputs=INPUTS.get(trigger, {}))
            steps += 1
            issued = day if trigger == "issue_final_plan" else None
        if issued is not None:
            steps += review(cases, case_id, worker, issued, last, speed, rng)
    return steps


def review(
    cases: Cases, case_id: int, worker: Actor, issued: date, last: date, speed: float, rng: random.Random
) -> int:
    """The first annual review: invitations about ten months on (later for a slow case), the meeting
    three weeks after, the decision two weeks after that, unless the two years end first."""
    arrange = issued + timedelta(days=round(290 * speed**0.5 * math.exp(rng.gauss(0.0, 0.08))))
    meeting = arrange + timedelta(days=21)
    decided = meeting + timedelta(days=max(1, round(14 * speed * math.exp(rng.gauss(0.0, 0.25)))))
    taken = 0
    for day, trigger, inputs in (
        (arrange, "arrange_meeting", {"meeting_on": meeting}),
        (meeting, "hold_meeting", {}),
        (decided, "keep_plan", {}),
    ):
        if day > last:
            break
        cases.clock.set(day)  # type: ignore[attr-defined]
        cases.fire(case_id, trigger, actor=worker, inputs=inputs, workflow="annual_review")
        taken += 1
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1500, help="requests a year (default 1,500)")
    parser.add_argument("--lead", type=int, default=28, help="days ahead the warning is asked (default 28)")
    parser.add_argument("--threshold", type=int, default=50, help="percent at which a limit is at risk")
    parser.add_argument("--seed", type=int, default=2014)
    args = parser.parse_args()
    last = date(2026, 11, 30)
    first = last - timedelta(days=729)
    with tempfile.TemporaryDirectory() as work:
        url = f"sqlite:///{Path(work) / 'simulated.sqlite'}"
        initialise(url)
        app = App(
            Settings(database_url=url, workflows_dir=str(ROOT / "workflows"),
                     templates_dir=str(ROOT / "templates"), staff=STAFF),
            FixedClock(last),
        )  # fmt: skip
        started = time.perf_counter()
        steps = simulate(app, args.requests, first, last, args.seed)
        simulated = time.perf_counter() - started
        limits = [lim for lim in load(app).limits]
        since = last - timedelta(days=364)
        until = last
        started = time.perf_counter()
        model = backtest(limits, since, until, lead_days=args.lead, threshold=args.threshold / 100)
        measured = time.perf_counter() - started
        plain = backtest(limits, since, until, lead_days=args.lead, threshold=args.threshold / 100, stages=False)
        app.engine.dispose()
    print(f"simulated {args.requests:,} requests a year for two years ({first} to {last}): {steps:,} steps "
          f"in {simulated:.1f} s; {len(limits):,} time limits on record")  # fmt: skip
    print(f"asked about each limit due {since} to {until}, {args.lead} to {args.lead + 6} days ahead, "
          f"at risk from {args.threshold}% ({measured:.1f} s)\n")  # fmt: skip
    m, p = model.as_dict(), plain.as_dict()
    asked, breaches = m["limits_asked"], m["breaches"]
    rows = [
        ("the model (stage, then limit)", m["breaches_flagged"], m["breaches_not_flagged"], m["false_alarms"],
         m["share_of_flags_right"], m["brier_score"]),
        ("the limit's own days alone", p["breaches_flagged"], p["breaches_not_flagged"], p["false_alarms"],
         p["share_of_flags_right"], p["brier_score"]),
        ("flag every limit", breaches, 0, asked - breaches - m["no_estimate"],
         round(breaches / asked, 3) if asked else None, None),
        ("the share missed so far", None, None, None, None, m["brier_score_of_past_rate"]),
    ]  # fmt: skip
    print(f"{asked:,} limits asked about; {breaches:,} were missed ({100 * breaches / max(asked, 1):.1f}%); "
          f"{m['no_estimate']} had too little history\n")  # fmt: skip
    print(f"{'':32} {'flagged':>8} {'missed':>8} {'false':>8} {'flags right':>12} {'Brier':>7}")
    for name, caught, missed, false, right, brier in rows:
        cells = " ".join(f"{'-' if c is None else c:>8}" for c in (caught, missed, false))
        share = "-" if right is None else f"{100 * right:.1f}%"
        print(f"{name:32} {cells} {share:>12} {'-' if brier is None else brier:>7}")
    by_limit(m)


def by_limit(found: dict[str, object]) -> None:
    print(f"\n{'by time limit (the model)':44} {'asked':>6} {'missed':>7} {'flagged':>8} {'false':>6}")
    for row in found["by_limit"]:  # type: ignore[attr-defined]
        name = f"{row['workflow']}: {row['deadline']}"
        print(f"{name:44} {row['asked']:>6} {row['missed']:>7} {row['flagged_and_missed']:>8} {row['false_alarms']:>6}")


if __name__ == "__main__":
    main()
