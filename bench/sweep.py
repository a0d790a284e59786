"""How long a sweep takes over a large caseload's open deadlines (SQLite file, WAL).

    .venv/bin/python bench/sweep.py                      # 100,000 open deadlines, 5 runs of each sweep
    .venv/bin/python bench/sweep.py --deadlines 20000 --runs 3

The caseload is written in bulk (33,334 needs assessments in their first weeks, each with its three
open statutory deadlines, requests received over the last year), then three sweeps are timed,
each from a fresh copy of the same database file:

- quiet: a day on which nothing has fallen due since the last sweep (the index finds nothing);
- daily: the next day's sweep in normal running: the reminders, breaches and escalations of one
  day, as a council running the scheduler every few minutes would see them in its first run of
  the day;
- catch-up: the first sweep after 30 days with no scheduler, where every alert of a month falls
  due at once (stale reminders are recorded as skipped, breaches once, escalations once).

The sweep queues messages (rendered from their templates) but does not send them: sending is
the dispatcher's, and is bound by the mail server, not the database.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from engine import alerts  # noqa: E402
from engine.app import App  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.config import Settings, StaffMember  # noqa: E402
from engine.store.database import connect, ensure_schema  # noqa: E402

STAFF = [
    StaffMember(id=f"cw{i}", name=f"Caseworker {i}", email=f"cw{i}@example.org", role="caseworker", manager="tm")
    for i in range(40)
] + [
    StaffMember(id="tm", name="Team Manager", email="tm@example.org", role="team_manager"),
    StaffMember(id="hos", name="Head of Service", email="hos@example.org", role="head_of_service"),
]


def settings(url: str) -> Settings:
    return Settings(
        database_url=url,
        workflows_dir=str(ROOT / "workflows"),
        templates_dir=str(ROOT / "templates"),
        staff=STAFF,
    )


def build(path: Path, deadlines: int, today: date) -> int:
    """Write the caseload in bulk; returns the number of open deadlines."""
    url = f"sqlite:///{path}"
    engine = connect(url)
    ensure_schema(engine)
    app = App(settings(url), FixedClock(today))
    definition = app.catalogue.latest("needs_assessment")
    names = ["decide_whether_to_assess", "notify_not_to_issue", "final_plan"]
    weeks = {"decide_whether_to_assess": 6, "notify_not_to_issue": 16, "final_plan": 20}
    specs = {n: definition.deadline(n) for n in names}
    cases = -(-deadlines // len(names))
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    raw = engine.raw_connection()
    cur = raw.cursor()
    case_rows, instance_rows, deadline_rows = [], [], []
    for i in range(1, cases + 1):
        received = today - timedelta(days=i % 140)  # requests received over the last 20 weeks
        case_rows.append((i, f"Child {i}", "2016-09-01", f"cw{i % 40}", now, "bench"))
        instance_rows.append((i, i, "needs_assessment", definition.version, "request_received", received.isoformat()))
        for n in names:
            due = received + timedelta(weeks=weeks[n])
            first = alerts.first_alert_on(definition, specs[n], "council", due)
            deadline_rows.append(
                (i, i, n, specs[n].title, received.isoformat(), due.isoformat(), specs[n].source, first.isoformat())
            )
    cur.executemany(
        "INSERT INTO ehc_case (id, name, date_of_birth, caseworker, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
        case_rows,
    )
    cur.executemany(
        "INSERT INTO workflow_instance (id, case_id, workflow, definition_version, state, version, facts, opened_on, "
        "last_event_on) VALUES (?, ?, ?, ?, ?, 1, '{}', ?, ?)",
        [(*r, r[5]) for r in instance_rows],
    )
    cur.executemany(
        "INSERT INTO deadline (instance_id, case_id, name, title, starts_on, due_on, source, basis, party, status, "
        "opened_by_seq, next_alert_on) VALUES (?, ?, ?, ?, ?, ?, ?, 'statutory', 'council', 'open', 1, ?)",
        deadline_rows,
    )
    raw.commit()
    cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    engine.dispose()
    return len(deadline_rows)


def sweep_once(template: Path, work: Path, as_of: date, warm_to: date | None) -> tuple[float, int, int, int]:
    shutil.copy(template, work)
    app = App(settings(f"sqlite:///{work}"), FixedClock(warm_to or as_of))
    if warm_to is not None:  # bring the copy up to the day before, untimed
        app.sweeper.sweep(warm_to)
    sweeper = app.sweeper  # the schema check and the workflows' load happen at start-up, not per sweep
    with app.engine.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM deadline WHERE next_alert_on IS NOT NULL").scalar()
    started = time.perf_counter()
    report = sweeper.sweep(as_of)
    elapsed = time.perf_counter() - started
    app.engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    return elapsed, report.examined, len(report.messages), len(report.breaches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deadlines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    today = date(2026, 3, 2)
    with tempfile.TemporaryDirectory(prefix="ehcp-sweep-") as tmp:
        template = Path(tmp) / "caseload.sqlite"
        t0 = time.perf_counter()
        total = build(template, args.deadlines, today)
        print(
            f"built {total:,} open deadlines in {time.perf_counter() - t0:.1f} s ({template.stat().st_size >> 20} MB)"
        )
        # Bring the template to "swept up to yesterday", so the daily sweep sees one day's alerts.
        seeded = Path(tmp) / "seeded.sqlite"
        shutil.copy(template, seeded)
        app = App(settings(f"sqlite:///{seeded}"), FixedClock(today))
        t0 = time.perf_counter()
        first = app.sweeper.sweep(today - timedelta(days=1))
        print(
            f"first sweep of the whole backlog: {time.perf_counter() - t0:.1f} s, {first.examined:,} deadlines, "
            f"{len(first.messages):,} messages, {len(first.breaches):,} breaches"
        )
        raw = app.engine.raw_connection()
        raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw.close()
        app.engine.dispose()
        work = Path(tmp) / "run.sqlite"
        scenarios = [
            ("quiet (nothing new since the last sweep)", seeded, today - timedelta(days=1), None),
            ("daily (one day's alerts)", seeded, today, None),
            ("catch-up (30 days without a sweep)", seeded, today + timedelta(days=30), None),
        ]
        head = f"{'median ms':>10} {'min ms':>8} {'examined':>9} {'messages':>9} {'breaches':>9}"
        print(f"\n{'sweep':44} {head}  per deadline")
        for label, source, as_of, warm in scenarios:
            runs = [sweep_once(source, work, as_of, warm) for _ in range(args.runs)]
            times = [r[0] for r in runs]
            med = statistics.median(times)
            _, examined, messages, breaches = runs[0]
            per = f"{med / examined * 1e6:,.0f} µs" if examined else "-"
            print(
                f"{label:44} {med * 1e3:10.1f} {min(times) * 1e3:8.1f} {examined:9,} {messages:9,} {breaches:9,}  {per}"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\nover {total:,} open deadlines; peak RSS {peak:.0f} MB; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
