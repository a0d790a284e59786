"""How throughput grows with the number of worker processes on one database: steps on cases, and the document queue.

    .venv/bin/python bench/workers.py                      # PostgreSQL and SQLite; 1, 2 and 4 workers (~2.5 min)
    .venv/bin/python bench/workers.py --no-sqlite --cases 1000 --runs 5
    .venv/bin/python bench/workers.py --documents 0        # steps only
    .venv/bin/python bench/workers.py --same-cases 0       # without the workers on the same cases
    .venv/bin/python bench/workers.py --doc-runs 3         # the documents: 3 runs (default 2)

Each worker is a process of its own (multiprocessing, 'spawn', started once and given a job a run),
with its own App and connections, as web workers and `ehcp docs process` are. For each run every
worker builds its App on a fresh copy of the database and connects; the clock starts when all are
ready and stops when the last one finishes. Runs are interleaved (1, 2, 4 workers, then again).

- **steps**: ``--cases`` cases of the peers' five-step case (bench/peer_case.yaml), each step one
  ``Cases.fire`` as bench/transitions.py drives it (one committed transaction: state, history,
  deadlines, outbox). The same cases are split between 1, 2 and 4 workers, each taking its own
  disjoint share; transitions a second, the median of ``--runs`` runs, each on a fresh copy of
  the database. Then the most workers take every step on the same ``--same-cases`` cases at once,
  in the same order: each step must be recorded once, the losers told with a ConflictError or a
  TransitionRefused, and nothing lost.
- **documents**: ``--documents`` documents queued by real steps (bench/peer_case_documents.yaml
  queues a decision letter, the draft and the final plan per case), then 1, 2 and 4 processes
  each run ``Documents.process()`` (what `ehcp docs process` runs) at once; wall time, and each
  document must be made exactly once: every row ready, one WeasyPrint render per document, no
  document claimed by two workers, one file per document whose hash is the one recorded.

After every run the record is checked as tests/test_faults.py checks it: every instance's state is
its last history entry's, the hash chain is intact (`ehcp audit verify`), each step recorded once
(and on SQLite, `PRAGMA integrity_check`). A failed check is printed and the script exits 1.

Beside each figure, the CPU seconds of the workers (with their renderers), of the PostgreSQL server,
and of other work on the machine during the run (from /proc): on a shared machine a run that other
work slowed shows it there. The cores free at the start and the end are measured too.
PostgreSQL is a throw-away cluster (bench/sweep.py's, fsync on); SQLite a file in /tmp (WAL), with
one checkpointer beside the workers as the scheduler runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import multiprocessing
import os
import platform
import queue
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds a transitions.py, named like the `transitions` library: keep its folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from engine import audit  # noqa: E402
from engine.app import App  # noqa: E402
from engine.clock import FixedClock, SystemClock  # noqa: E402
from engine.config import Settings, StaffMember  # noqa: E402
from engine.errors import ConflictError, TransitionRefused  # noqa: E402
from engine.store.repository import ContactRecord  # noqa: E402


def _load(name: str, file: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sweep = _load("bench_sweep", "sweep.py")  # postgres_cluster and Copies
bench_transitions = _load("bench_transitions", "transitions.py")  # the peer case's steps and actor

STEPS: list[str] = bench_transitions.STEPS
WORKER = bench_transitions.WORKER
START = date(2025, 1, 6)
STAFF = [StaffMember(id="cw", name="Bench Worker", email="cw@example.org", role="caseworker")]
CONTACTS = [ContactRecord("parent", "Parent", "parent@example.org"), ContactRecord("school", "School", None)]
TIMEOUT = 900  # seconds: a worker that takes longer than this has hung


def settings(url: str, folder: Path) -> Settings:
    return Settings(
        database_url=url,
        workflows_dir=str(folder / "workflows"),
        templates_dir=str(ROOT / "templates"),
        documents_dir=str(folder / "documents"),
        staff=STAFF,
    )


# -- the workers (each a spawned process) ------------------------------------------------------


def _cpu() -> float:
    """CPU seconds of this process and of the children it has waited for (the renderers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _ready(app: App) -> None:
    """What a long-running worker has done before its first request: connected, workflows loaded."""
    with app.store.unit() as unit:
        unit.fetch("SELECT 1", {})
    for name in ("peer_case", "peer_case_documents"):
        app.catalogue.machine(name, app.catalogue.latest(name).version)


def serve(jobs: Any, out: Any) -> None:
    """A worker process: takes jobs (a database to work on) until it is sent None. For each it builds an
    App, says it is ready, waits for "go", works, and reports, as a long-running worker would."""
    while (job := jobs.get()) is not None:
        try:
            work, args = job
            app, run = (steps_job if work == "steps" else documents_job)(*args)
            _ready(app)
            out.put({"ready": os.getpid()})
            if jobs.get(timeout=TIMEOUT) != "go":
                raise RuntimeError("not told to go")
            started, cpu = time.monotonic(), _cpu()
            report = run()
            report |= {"ok": True, "started": started, "ended": time.monotonic(), "cpu": _cpu() - cpu}
            app.engine.dispose()
            out.put(report)
        except BaseException:
            out.put({"ok": False, "error": traceback.format_exc()})


def steps_job(url: str, folder: str, case_ids: list[int]) -> tuple[App, Any]:
    """Every step of the peer case on ``case_ids``, step by step as bench/transitions.py takes them."""
    clock = FixedClock(START)
    app = App(settings(url, Path(folder)), clock, background_checkpoints=url.startswith("sqlite"))

    def run() -> dict[str, Any]:
        done: list[tuple[int, str]] = []
        conflicts = refused = 0
        fire = app.cases.fire
        for trigger in STEPS:
            clock.advance(16)  # past the family's 15 days before issue_final
            for case_id in case_ids:
                try:
                    fire(case_id, trigger, actor=WORKER)
                    done.append((case_id, trigger))
                except ConflictError:
                    conflicts += 1
                except TransitionRefused:
                    refused += 1
        return {"done": done, "conflicts": conflicts, "refused": refused}

    return app, run


def documents_job(url: str, folder: str) -> tuple[App, Any]:
    """``Documents.process()``, as `ehcp docs process` runs it, counting the renders it makes."""
    import weasyprint  # noqa: F401  # imported before the clock starts, as a running scheduler has it

    app = App(settings(url, Path(folder)), SystemClock())
    documents = app.documents
    renders: list[int] = []
    pdf = documents.pdf

    def counted(page: str) -> bytes:
        renders.append(1)
        return pdf(page)

    documents.pdf = counted  # type: ignore[method-assign]

    def run() -> dict[str, Any]:
        made = documents.process()
        return {"ids": [d.id for d in made], "renders": len(renders)}

    return app, run


class Pool:
    """Worker processes ('spawn'), started once and given a job a run, so that the script's time is not
    the starting of Python, SQLAlchemy and WeasyPrint in every worker again. Not daemonic: a worker
    renders each document in a child of its own (engine.rendering)."""

    def __init__(self, size: int):
        self.size = size
        self.procs: list[Any] = []
        self.jobs: list[Any] = []

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.out = ctx.Queue()
        self.jobs = [ctx.Queue() for _ in range(self.size)]
        self.procs = [ctx.Process(target=serve, args=(q, self.out)) for q in self.jobs]
        for p in self.procs:
            p.start()

    def close(self) -> None:
        for q, p in zip(self.jobs, self.procs, strict=False):
            if p.is_alive():
                q.put(None)
        for p in self.procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join()
        self.procs = []

    def run(
        self, work: str, args_for: list[tuple[Any, ...]], checkpoint_url: str | None, server: int | None
    ) -> tuple[float, list[Any], dict[str, float]]:
        """One job a worker at once: the wall time from every worker ready to the last one done; each
        worker's report (``{"ok": False, "error": ...}`` for one that failed or died); and the CPU
        seconds meanwhile of the database server (the postmaster ``server`` and its children) and
        of everything else on the machine that was not this run."""
        if not self.procs:
            self.start()
        procs = self.procs[: len(args_for)]
        for q, args in zip(self.jobs, args_for, strict=False):
            q.put((work, args))
        checkpointer = None
        if checkpoint_url is not None:  # one checkpointer beside the workers, as the scheduler runs it
            from engine.store.database import Checkpointer, connect

            cp_engine = connect(checkpoint_url, background_checkpoints=True)
            checkpointer = Checkpointer(cp_engine).start()
        started = time.monotonic()
        before = after = _cpu_now(server)
        try:
            ready, results = _collect(self.out, procs, lambda m: "ready" in m)
            if not results:  # every worker ready: go
                before = _cpu_now(server)
                started = time.monotonic()
                for q in self.jobs[: len(procs)]:
                    q.put("go")
                done, failed = _collect(self.out, procs, lambda m: "ok" in m)
                after = _cpu_now(server)
                results = done + failed
        finally:
            if checkpointer is not None:
                checkpointer.stop()
                cp_engine.dispose()
        if len(results) < len(procs) or not all(r["ok"] for r in results):
            for p in self.procs:  # a worker failed: start afresh for the next run
                p.kill()
                p.join()
            self.procs = []
            results += [{"ok": False, "error": "a worker did not report"}] * (len(procs) - len(results))
        ended = max((r["ended"] for r in results if r["ok"]), default=time.monotonic())
        busy, db, own = (a - b for a, b in zip(after, before, strict=True))
        workers = sum(r["cpu"] for r in results if r["ok"])
        return ended - started, results, {"server": max(0.0, db), "others": max(0.0, busy - db - own - workers)}


def _cpu_now(server: int | None) -> tuple[float, float, float]:
    """CPU seconds so far: the whole machine's busy time, the database server's (Linux /proc), this process's."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / tick  # all but idle and iowait (guest time is in user)
    db = 0.0
    if server is not None:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile: its time is in the postmaster's children's now
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == server:  # its own, and its children's that have ended (the connections closed)
                db += sum(int(x) for x in fields[11:15]) / tick
            elif ppid == server:
                db += (int(fields[11]) + int(fields[12])) / tick
    own = resource.getrusage(resource.RUSAGE_SELF)
    return busy, db, own.ru_utime + own.ru_stime


def _spin(barrier: Any, seconds: float, out: Any) -> None:
    barrier.wait(60)
    cpu, until = time.process_time(), time.monotonic() + seconds
    while time.monotonic() < until:
        pass
    out.put(time.process_time() - cpu)


def cores_free(seconds: float = 1.5) -> float:
    """How many cores' worth of CPU one busy process per core gets for ``seconds``: below the number of
    cores, other work on the machine had the rest (and had it during the runs too, most likely)."""
    ctx = multiprocessing.get_context("spawn")
    n = os.cpu_count() or 1
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_spin, args=(barrier, seconds, out)) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        used = sum(out.get(timeout=60) for _ in procs)
    except queue.Empty:
        used = float("nan")
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
    return float(used) / seconds


def _collect(out: Any, procs: list[Any], wanted: Any) -> tuple[list[Any], list[Any]]:
    """One ``wanted`` message from each worker (and any failure reports), noticing a worker that died
    without a word (killed, or failed while Python started it) instead of waiting for it."""
    got: list[Any] = []
    failed: list[Any] = []
    limit = time.monotonic() + TIMEOUT
    while len(got) + len(failed) < len(procs):
        try:
            message = out.get(timeout=1)
        except queue.Empty:
            dead = [p for p in procs if not p.is_alive()]
            if dead or time.monotonic() > limit:
                codes = ", ".join(f"pid {p.pid} exit code {p.exitcode}" for p in dead) or "timed out"
                failed.append({"ok": False, "error": f"worker(s) stopped without reporting: {codes}"})
                break
            continue
        (got if wanted(message) else failed).append(message)
    return got, failed


# -- checks --------------------------------------------------------------------------------------


def check_record(url: str, folder: Path) -> list[str]:
    """What tests/test_faults.py checks of the record: states match history, the chain intact."""
    problems: list[str] = []
    app = App(settings(url, folder), FixedClock(START))
    with app.engine.connect() as conn:
        if url.startswith("sqlite"):
            result = conn.execute(text("PRAGMA integrity_check")).scalar_one()
            if result != "ok":
                problems.append(f"PRAGMA integrity_check: {result}")
        twice = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT instance_id, trigger FROM history GROUP BY instance_id, trigger "
                "HAVING count(*) > 1) AS t"
            )
        ).scalar_one()
        if twice:
            problems.append(f"{twice} step(s) recorded twice on one instance")
    verified = audit.verify(app.engine)  # the chain whole, and every state and version its last entry's
    if not verified.intact:
        problems.append(f"audit verify: {len(verified.breaks)} break(s): {verified.breaks[:3]}")
    app.engine.dispose()
    return problems


def check_steps(url: str, folder: Path, cases: int, results: list[Any], contended: bool) -> list[str]:
    problems = check_record(url, folder)
    app = App(settings(url, folder), FixedClock(START))
    with app.engine.connect() as conn:
        finals = conn.execute(
            text("SELECT count(*) FROM workflow_instance WHERE closed_on IS NOT NULL AND state = 'final_plan_issued'")
        ).scalar_one()
        sql = text("SELECT trigger, count(*) FROM history GROUP BY trigger")
        entries = Counter({str(t): int(n) for t, n in conn.execute(sql)})
    app.engine.dispose()
    done = Counter(t for r in results for _, t in r["done"])
    claimed = Counter(x for r in results for x in r["done"])
    if finals != cases:
        problems.append(f"{finals} of {cases} cases reached the final state")
    for trigger in STEPS:
        if entries[trigger] != cases or done[trigger] != cases:
            problems.append(f"{trigger}: {entries[trigger]} history entries, {done[trigger]} reported done, "
                            f"{cases} expected")  # fmt: skip
    if any(n > 1 for n in claimed.values()):
        problems.append(f"{sum(n > 1 for n in claimed.values())} step(s) reported done by two workers")
    if not contended and any(r["conflicts"] or r["refused"] for r in results):
        problems.append("conflicts or refusals on disjoint cases")
    return problems


def check_documents(url: str, folder: Path, queued: list[int], results: list[Any]) -> list[str]:
    from engine.documents import _intact

    problems = check_record(url, folder)
    app = App(settings(url, folder), FixedClock(START))
    with app.engine.connect() as conn:
        sql = text("SELECT status, count(*) FROM document GROUP BY status")
        status = Counter({str(k): int(n) for k, n in conn.execute(sql)})
        rows = conn.execute(text("SELECT id, sha256, path FROM document WHERE status = 'ready'")).all()
    app.engine.dispose()
    made = [i for r in results for i in r["ids"]]
    renders = sum(r["renders"] for r in results)
    twice = [i for i, n in Counter(made).items() if n > 1]
    if twice:
        problems.append(f"documents made by two workers: {sorted(twice)[:10]}")
    if sorted(set(made)) != sorted(queued):
        problems.append(f"made {len(set(made))} distinct documents of {len(queued)} queued "
                        f"(missing {sorted(set(queued) - set(made))[:10]})")  # fmt: skip
    if renders != len(queued):
        problems.append(f"{renders} WeasyPrint renders for {len(queued)} documents")
    if status != Counter({"ready": len(queued)}):
        problems.append(f"document rows by status: {dict(status)}, expected {len(queued)} ready")
    files = sorted((folder / "documents").glob("*"))
    pdfs = [f for f in files if f.suffix == ".pdf"]
    if len(pdfs) != len(queued) or len(files) != len(pdfs):
        problems.append(f"{len(pdfs)} PDF files (and {len(files) - len(pdfs)} others) for {len(queued)} documents")
    if len({r[1] for r in rows}) != len(rows):
        problems.append("two documents with the same bytes")
    damaged = [r[0] for r in rows if not _intact(Path(r[2]), r[1])]
    if damaged:
        problems.append(f"documents whose file is missing or not the one recorded: {damaged[:10]}")
    return problems


# -- building --------------------------------------------------------------------------------------


def build(copies: Any, name: str, folder: Path, workflow: str, cases: int, steps: list[str]) -> str:
    """A database with ``cases`` open cases of ``workflow`` (and ``steps`` taken on each), left as a
    file or template to copy."""
    url: str = copies.create(name)
    clock = FixedClock(START)
    app = App(settings(url, folder), clock, create=True)
    ids = [
        app.cases.open_case(name=f"Child {i}", date_of_birth=date(2015, 1, 1), workflow=workflow, actor=WORKER,
                            contacts=CONTACTS, caseworker="cw").case_id
        for i in range(cases)
    ]  # fmt: skip
    if steps:  # the draft and the final plan are made from the case's plan: write one (a few pages)
        for i, case_id in enumerate(ids):
            app.plans.edit(case_id, plan(i), actor=WORKER)
    for trigger in steps:
        clock.advance(16)
        for case_id in ids:
            app.cases.fire(case_id, trigger, actor=WORKER)
    copies.settle(app)
    return url


def plan(i: int) -> dict[str, str]:
    """A short generated plan (no real child), different for every case."""
    name = f"Child {i}"
    return {
        "A": f"{name} enjoys drawing, music and being outside, and wants to have friends. " * 3,
        "B": "\n".join(
            f"- {name} needs help to {what}."
            for what in (
                "follow spoken instructions of more than two steps",
                "start a task without an adult",
                "record ideas in writing",
            )
        ),
        "E": "\n".join(
            f"- By July 2026, {name} will {goal}, as measured at the half-termly review."
            for goal in ("read a short passage aloud", "ask an adult for help when stuck")
        ),
        "F": f"- Small-group work with a trained teaching assistant: {2 + i % 3} sessions of 30 minutes each week.",
        "I": "Demo Primary School (a maintained mainstream primary school)",
    }


def fresh_documents(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder / "documents", ignore_errors=True)


def machine_facts(pg_url: str | None) -> list[str]:
    import weasyprint

    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "engine"],
                                 capture_output=True, text=True, check=True).stdout.split("\n")  # fmt: skip
        if any(changed):  # someone's work in progress is what was measured: say so
            commit += f" (uncommitted changes in {', '.join(line[3:] for line in changed if line)})"
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    pg = "not run"
    if pg_url is not None:
        from sqlalchemy import create_engine

        engine = create_engine(f"{pg_url}/postgres")
        with engine.connect() as conn:
            pg = conn.execute(text("SHOW server_version")).scalar_one() + " (throw-away cluster, fsync on)"
        engine.dispose()
    cores = os.cpu_count() or 1
    return [
        f"machine: {cores} cores ({platform.machine()}, {platform.system()} {platform.release()}); "
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}; PostgreSQL {pg}; "
        f"WeasyPrint {weasyprint.__version__}",
        f"code: commit {commit}",
        f"{cores} cores: the workers, the PostgreSQL server and the renderers share them, so more than "
        f"{cores}x over one worker cannot be expected.",
    ]


# -- running ----------------------------------------------------------------------------------------


def split(ids: list[int], n: int) -> list[list[int]]:
    return [ids[i::n] for i in range(n)]


def bench(copies: Any, folder: Path, kind: str, args: argparse.Namespace, pool: Pool, rows: list[dict[str, Any]],
          problems: list[str]) -> None:  # fmt: skip
    """The measurements on one database; runs interleaved (1, 2, 4 workers, then again), as the
    machine's speed drifts."""
    checkpoint = (lambda u: u) if copies.server is None else (lambda u: None)
    server = None  # the postmaster's pid, for its CPU time
    if copies.server is not None:
        server = int((folder / "pg" / "postmaster.pid").read_text().split()[0])
    ids = list(range(1, args.cases + 1))

    def measure(work: str, counts: list[int], runs: int, source: str, units: int, start: Any, check: Any) -> None:
        done: dict[int, list[tuple[float, float, list[Any], dict[str, float]]]] = {n: [] for n in counts}
        failures = Counter[int]()
        for r in range(runs):
            for n in counts:
                url = copies.copy(source, "run")
                fresh_documents(folder)
                wall, results, other = start(url, n)
                failed = [x["error"] for x in results if not x["ok"]]
                found = failed or check(url, results)
                problems.extend(f"{kind} {work}, {n} worker(s), run {r + 1}: {p}" for p in found)
                failures[n] += bool(found)
                cpu = sum(x["cpu"] for x in results if x["ok"])
                done[n].append((wall, cpu, results, other))
                state = "FAILED" if found else "checks ok"
                print(f"  {kind} {work}, {n} worker(s), run {r + 1}: {wall:.2f} s; CPU s: workers {cpu:.2f}, "
                      f"database server {other['server']:.2f}, other work {other['others']:.2f}; {state}",
                      file=sys.stderr)  # fmt: skip
                copies.drop("run")
        for n in counts:
            walls = [w for w, _, _, _ in done[n]]
            last = done[n][-1][2]
            rows.append({"work": work, "db": kind, "workers": n, "wall": statistics.median(walls), "units": units,
                         "cpu": statistics.median(c for _, c, _, _ in done[n]),
                         "server": statistics.median(o["server"] for *_, o in done[n]),
                         "others": statistics.median(o["others"] for *_, o in done[n]), "runs": runs,
                         "spread": (min(walls), max(walls)), "check": "FAILED" if failures[n] else "ok",
                         "note": note(work, last)})  # fmt: skip

    if args.cases:
        t0 = time.monotonic()
        build(copies, "steps", folder, "peer_case", args.cases, [])
        print(f"{kind}: {args.cases:,} peer cases opened in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        transitions = args.cases * len(STEPS)
        measure(
            "steps",
            args.workers,
            args.runs,
            "steps",
            transitions,
            lambda url, n: pool.run("steps", [(url, str(folder), s) for s in split(ids, n)], checkpoint(url), server),
            lambda url, results: check_steps(url, folder, args.cases, results, contended=False),
        )
        if args.same_cases:
            same = min(args.same_cases, args.cases)
            measure(
                "steps, same cases",
                [max(args.workers)],
                1,
                "steps",
                same * len(STEPS),
                lambda url, n: pool.run("steps", [(url, str(folder), ids[:same])] * n, checkpoint(url), server),
                lambda url, results: check_steps(url, folder, same, results, contended=True),
            )
    if args.documents:
        cases = -(-args.documents // 3)  # three documents a case
        t0 = time.monotonic()
        build(copies, "docs", folder, "peer_case_documents", cases, STEPS)
        app = App(settings(copies.url("docs"), folder), FixedClock(START))
        with app.engine.connect() as conn:
            queued = [r[0] for r in conn.execute(text("SELECT id FROM document WHERE status = 'queued' ORDER BY id"))]
        app.engine.dispose()
        print(f"{kind}: {len(queued)} documents queued by the steps of {cases} cases in "
              f"{time.monotonic() - t0:.1f} s", file=sys.stderr)  # fmt: skip
        measure(
            "documents",
            args.workers,
            args.doc_runs,
            "docs",
            len(queued),
            lambda url, n: pool.run("documents", [(url, str(folder))] * n, None, server),
            lambda url, results: check_documents(url, folder, queued, results),
        )
        from pypdf import PdfReader

        made = sorted((folder / "documents").glob("*.pdf"))  # the last run's
        pages = sum(len(PdfReader(f).pages) for f in made)
        rows.append({"work": "pages", "db": kind, "pages": pages, "documents": len(made)})


def note(work: str, results: list[Any]) -> str:
    if work == "documents":
        return "made " + "/".join(str(len(x["ids"])) for x in results if x["ok"])
    if work == "steps, same cases":
        told = sum(x["conflicts"] for x in results if x["ok"]), sum(x["refused"] for x in results if x["ok"])
        done = sum(len(x["done"]) for x in results if x["ok"])
        return f"{done:,} done, {told[0]:,} ConflictError, {told[1]:,} TransitionRefused"
    return ""


def table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'work':18} {'database':10} {'workers':>7} {'runs':>4} {'wall s':>7} {'(min-max)':>13} "
          f"{'a second':>9} {'speed-up':>8} {'CPU s: workers':>14} {'server':>6} {'other':>6}  "
          f"{'checks':6}  note")  # fmt: skip
    base: dict[tuple[str, str], float] = {}
    for row in rows:
        if row["work"] == "pages":
            continue
        rate = row["units"] / row["wall"]
        if row["workers"] == 1:
            base[(row["work"], row["db"])] = rate
        ref = base.get((row["work"], row["db"])) or base.get(("steps", row["db"]))
        speed = f"{rate / ref:.2f}x" if ref else "-"
        spread = f"({row['spread'][0]:.2f}-{row['spread'][1]:.2f})" if row["runs"] > 1 else ""
        server = f"{row['server']:6.1f}" if row["db"] == "PostgreSQL" else f"{'-':>6}"
        print(f"{row['work']:18} {row['db']:10} {row['workers']:7} {row['runs']:4} {row['wall']:7.2f} {spread:>13} "
              f"{rate:9,.1f} {speed:>8} {row['cpu']:14.1f} {server} {row['others']:6.1f}  {row['check']:6}  "
              f"{row['note']}")  # fmt: skip
    print(
        "\n'a second': transitions (each its own committed transaction) or documents made, over the wall time"
        "\nfrom every worker ready to the last one done (median of the runs; min-max beside it). Speed-up:"
        "\nover one worker on the same database (the same-cases run: over one worker on disjoint cases)."
        "\nCPU s, medians: the workers' own (with their renderers'), the PostgreSQL server's, and other work's"
        "\non the machine during the run (not this benchmark's: where that is high, the figures are low)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=400, help="peer cases for the steps (x5 transitions)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each step measurement (median)")
    parser.add_argument("--documents", type=int, default=60, help="documents to queue and make (3 a case)")
    parser.add_argument("--doc-runs", type=int, default=2, help="runs of each document measurement (median)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--same-cases", type=int, default=100,
                        help="cases every worker steps at once, to check conflicts (0: none)")  # fmt: skip
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    if 1 not in args.workers:
        parser.error("--workers must include 1 (the speed-up is over one worker)")
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    started, load, free = time.monotonic(), os.getloadavg(), cores_free()
    pool = Pool(max(args.workers))
    with tempfile.TemporaryDirectory(prefix="ehcp-workers-", dir="/tmp") as tmp, contextlib.closing(pool):
        folder = Path(tmp)
        wf = folder / "workflows"
        wf.mkdir()
        for source in [*sorted((ROOT / "workflows").glob("*.yaml")), ROOT / "bench/peer_case.yaml",
                       ROOT / "bench/peer_case_documents.yaml"]:  # fmt: skip
            (wf / source.name).write_text(source.read_text())
        pg_url = None
        if not args.no_postgres:
            with sweep.postgres_cluster(folder) as pg_url:
                facts = machine_facts(pg_url)
                bench(sweep.Copies(folder, pg_url), folder, "PostgreSQL", args, pool, rows, problems)
                pool.close()  # before the cluster stops
        if not args.no_sqlite:
            (folder / "sqlite").mkdir()
            bench(sweep.Copies(folder / "sqlite", None), folder, "SQLite", args, pool, rows, problems)
        if args.no_postgres:
            facts = machine_facts(None)
    print()
    for line in facts:
        print(line)
    print(f"steps: {args.cases:,} peer cases x {len(STEPS)} steps = {args.cases * len(STEPS):,} transitions, "
          "split evenly between the workers")  # fmt: skip
    for row in rows:
        if row["work"] == "pages":
            print(f"documents ({row['db']}): {row['documents']} queued by steps (a decision letter, the draft and the "
                  f"final plan of each case), {row['pages']} pages in all, PDF/UA-1")  # fmt: skip
    table(rows)
    print(f"\ntotal {time.monotonic() - started:.0f} s; load average (1, 5, 15 min) "
          f"{'/'.join(f'{x:.1f}' for x in load)} before, {'/'.join(f'{x:.1f}' for x in os.getloadavg())} after "
          f"(above {os.cpu_count()}: other work shared the cores)")  # fmt: skip
    print(f"CPU free for this script: {free:.1f} of {os.cpu_count()} cores at the start, {cores_free():.1f} at the end "
          "(one busy process a core for 1.5 s; below the number of cores, other work had the rest)")  # fmt: skip
    if problems:
        print(f"\nFAILED: {len(problems)} check(s):")
        for p in problems:
            print(f"  {p}")
        sys.exit(1)
    print("every check passed: states match history, the hash chain intact, each step once, each document once")


if __name__ == "__main__":
    main()
