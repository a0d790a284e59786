"""Transitions per second with the full bookkeeping, beside the peers measured in the same run.

    .venv/bin/python bench/transitions.py                 # 2,000 cases x 5 steps = 10,000 transitions, 3 runs
    .venv/bin/python bench/transitions.py --cases 500 --repeats 1 --no-peers

Each transition is one `Cases.fire` call, as a caseworker's command or a web request makes it:
load the instance and its open deadlines, decide with the shared machine, then in ONE committed
transaction move the state (version-guarded), append history, meet/cancel/open deadlines, queue
outbox messages to resolved recipients and queue documents. The SQLite file is in /tmp with WAL
and synchronous=NORMAL, as the peers' harness uses.

The peers (../shared/peers: raw sqlite3, plain SQLModel, `transitions` with SQLModel,
SpiffWorkflow) run the same five-step case in their own virtual environment, interleaved with
ours run by run; the ratios are of medians from this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file is named like the `transitions` library: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from engine.actor import Actor  # noqa: E402
from engine.app import App  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.config import Settings, StaffMember  # noqa: E402
from engine.store.database import Checkpointer  # noqa: E402
from engine.store.repository import ContactRecord  # noqa: E402

PEERS = ROOT.parent / "shared" / "peers"
PEER_ENGINES = ["raw_sqlite", "sqlmodel_floor", "transitions_shared", "spiffworkflow"]
STEPS = ["agree_to_assess", "decide_to_issue", "issue_draft", "consult_school", "issue_final"]
NEEDS_ASSESSMENT = [
    ("agree_to_assess", {}),
    ("record_advice_received", {}),
    ("decide_to_issue", {}),
    ("issue_draft_plan", {}),
    ("consult_institutions", {"institutions": "Demo School"}),
    ("issue_final_plan", {"named_institution": "Demo School", "family_responded": "yes"}),
]


WORKER = Actor("cw", "caseworker")  # as the shell establishes a caseworker


def run_engine(cases: int, workflow: str, workdir: Path) -> dict[str, float]:
    db = workdir / f"bench-{workflow}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    staff = [StaffMember(id="cw", name="Bench Worker", email="cw@example.org", role="caseworker")]
    wf_dir = workdir / f"wf-{workflow}"
    wf_dir.mkdir(exist_ok=True)
    # The statutory workflows start one another (a final plan schedules its first review): copy them all.
    peer = workflow.startswith("peer_case")
    sources = [ROOT / f"bench/{workflow}.yaml"] if peer else sorted((ROOT / "workflows").glob("*.yaml"))
    for source in sources:
        (wf_dir / source.name).write_text(source.read_text())
    clock = FixedClock(date(2025, 1, 6))
    settings = Settings(database_url=f"sqlite:///{db}", workflows_dir=str(wf_dir), staff=staff)
    app = App(settings, clock, background_checkpoints=True, create=True)
    # As the long-running service would: WAL checkpoints on a thread of their own, beside the steps.
    checkpointer = Checkpointer(app.engine).start()
    contacts = [ContactRecord("parent", "Parent", "parent@example.org"), ContactRecord("school", "School", None)]
    started = time.perf_counter()
    ids = [
        app.cases.open_case(
            name=f"Child {i}",
            date_of_birth=date(2015, 1, 1),
            workflow=workflow,
            actor=WORKER,
            contacts=contacts,
            caseworker="cw",
        ).case_id
        for i in range(cases)
    ]
    create_s = time.perf_counter() - started
    steps = [(s, {}) for s in STEPS] if peer else NEEDS_ASSESSMENT
    fire = app.cases.fire
    wall = 0.0
    for trigger, inputs in steps:
        clock.advance(16)  # past the family's 15 days before issue_final
        t0 = time.perf_counter()
        for case_id in ids:
            fire(case_id, trigger, actor=WORKER, inputs=inputs)
        wall += time.perf_counter() - t0
    transitions = cases * len(steps)
    wal_mb = Path(f"{db}-wal").stat().st_size / 2**20
    checkpointer.stop()
    with app.engine.connect() as conn:
        from sqlalchemy import text

        finals = conn.execute(
            text("SELECT count(*) FROM workflow_instance WHERE closed_on IS NOT NULL AND workflow = :w"),
            {"w": workflow},
        ).scalar_one()
        history = conn.execute(text("SELECT count(*) FROM history")).scalar_one()
        outbox = conn.execute(text("SELECT count(*) FROM outbox")).scalar_one()
        open_deadlines = conn.execute(text("SELECT count(*) FROM deadline WHERE closed_on IS NULL")).scalar_one()
    app.engine.dispose()
    # A final plan starts the annual review and the disagreement about its content in the same
    # transaction: two more history rows, and three open deadlines (the review, the time to contact
    # the mediation adviser and the time to appeal) per case.
    started, still_open = (0, 0) if peer else (2, 3)
    expected = (cases, cases * (len(steps) + 1 + started), cases * still_open)
    assert (finals, history, open_deadlines) == expected, ((finals, history, open_deadlines), expected)
    return {
        "engine": f"ehcp:{workflow}",
        "cases": cases,
        "transitions": transitions,
        "wall_s": wall,
        "tps": transitions / wall,
        "us_per_transition": wall / transitions * 1e6,
        "create_s": create_s,
        "outbox_rows": outbox,
        "wal_mb": wal_mb,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_peer(python: str, engine: str, cases: int, workdir: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            python,
            str(PEERS / "bench.py"),
            "--engine",
            engine,
            "--cases",
            str(cases),
            "--db",
            str(workdir / f"peer-{engine}.sqlite"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_self(cases: int, workflow: str, workdir: Path) -> dict[str, float]:
    """Our runs in a child process too, so every figure (memory included) comes from a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", workflow, "--cases", str(cases), "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000, help="cases for the engine (x5 transitions)")
    parser.add_argument("--peer-cases", type=int, default=1000, help="cases for each peer engine")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--peers-python", default=os.environ.get("PEERS_PYTHON", "/tmp/peers-venv/bin/python"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_engine(args.cases, args.child, Path(args.workdir))))
        return
    peers = not args.no_peers
    if peers and not Path(args.peers_python).exists():
        print(
            f"no peers environment at {args.peers_python}; create it with:\n  python3 -m venv /tmp/peers-venv && "
            f"/tmp/peers-venv/bin/pip install -r {PEERS / 'requirements.txt'}\nor run with --no-peers",
            file=sys.stderr,
        )
        sys.exit(2)
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="ehcp-bench-", dir="/tmp") as tmp:
        workdir = Path(tmp)
        for r in range(args.repeats):
            jobs: list[tuple[str, object]] = [
                ("ehcp:peer_case", lambda: run_self(args.cases, "peer_case", workdir)),
                ("ehcp:peer_case_documents", lambda: run_self(args.cases, "peer_case_documents", workdir)),
                ("ehcp:needs_assessment", lambda: run_self(args.cases, "needs_assessment", workdir)),
            ]
            if peers:
                jobs += [
                    (e, (lambda e=e: run_peer(args.peers_python, e, args.peer_cases, workdir))) for e in PEER_ENGINES
                ]
            for name, job in jobs:
                res = job()  # type: ignore[operator]
                results.setdefault(name, []).append(res)
                print(
                    f"run {r + 1} {name:24} {res['tps']:8.0f} tr/s {res['us_per_transition']:7.1f} us/tr",
                    file=sys.stderr,
                )
    med = {name: statistics.median(x["us_per_transition"] for x in runs) for name, runs in results.items()}
    raw = med.get("raw_sqlite")
    spiff = med.get("spiffworkflow")
    print(
        f"\n{'engine':26} {'cases':>6} {'runs':>4} {'tr/s':>8} {'us/tr':>8} {'x raw_sqlite':>12} "
        f"{'spiff / this':>12} {'peak RSS MB':>11}"
    )
    for name, runs in results.items():
        us = med[name]
        print(
            f"{name:26} {int(runs[0]['cases']):6} {len(runs):4} {1e6 / us:8.0f} {us:8.1f} "
            f"{(us / raw if raw else float('nan')):12.2f} {(spiff / us if spiff else float('nan')):12.2f} "
            f"{statistics.median(x['peak_rss_mb'] for x in runs):11.0f}"
        )
    print(
        "\nus/tr = median microseconds per transition; x raw_sqlite = this / raw sqlite3 floor (goal <= 4);"
        "\nspiff / this = how many times faster than SpiffWorkflow (goal >= 10). Every engine commits each"
        "\ntransition on its own; ehcp rows also write deadlines and outbox messages (peer_case_documents"
        "\nand needs_assessment: documents and the plan's versions too)."
    )


if __name__ == "__main__":
    main()
