"""How long a sweep takes over a large caseload's open deadlines (SQLite file, WAL).

    .venv/bin/python bench/sweep.py                      # 100,000 open deadlines, 5 runs of each sweep
    .venv/bin/python bench/sweep.py --deadlines 20000 --runs 3
    .venv/bin/python bench/sweep.py --postgres           # the same on a throw-away PostgreSQL cluster

The caseload is written in bulk (33,334 needs assessments in their first weeks, each with its three
open statutory deadlines, requests received over the last year), then three sweeps are timed,
each from a fresh copy of the same database file:

- quiet: a day on which nothing has fallen due since the last sweep (the index finds nothing);
- daily: the next day's sweep in normal running: the reminders, breaches and escalations of one
  day, as a council running the scheduler every few minutes would see them in its first run of
  the day;
- catch-up: the first sweep after 30 days with no scheduler, where every alert of a month falls
  due at once (stale reminders are recorded as skipped, breaches once, escalations once).

The sweep queues messages (rendered when they are sent) but does not send them: sending is the
dispatcher's, and is bound by the mail server, not the database.

Beside each sweep, three baselines from the same run: the bare driver writing the same rows in one
transaction (no decisions, no guards); the database's floor, the same rows already inside the
database written by one statement a table (no client at all: what no sweep can beat on this
database and machine); and the naive scan, every open deadline read and worked out in Python.
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from engine import alerts, calendar  # noqa: E402
from engine.app import App  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.config import Settings, StaffMember  # noqa: E402
from engine.store.database import Checkpointer, connect, ensure_schema  # noqa: E402
from engine.store.repository import as_date  # noqa: E402

STAFF = [
    StaffMember(id=f"cw{i}", name=f"Caseworker {i}", email=f"cw{i}@example.org", role="caseworker", manager="tm")
    for i in range(40)
] + [
    StaffMember(id="tm", name="Team Manager", email="tm@example.org", role="team_manager"),
    StaffMember(id="hos", name="Head of Service", email="hos@example.org", role="head_of_service"),
]


BATCH: dict[str, int] = {}  # --batch: the scheduler's sweep_batch, when given


def settings(url: str) -> Settings:
    return Settings(
        database_url=url,
        workflows_dir=str(ROOT / "workflows"),
        templates_dir=str(ROOT / "templates"),
        staff=STAFF,
        scheduler={"sweep_batch": BATCH["rows"]} if BATCH else {},  # type: ignore[arg-type]
    )


def build(url: str, deadlines: int, today: date) -> int:
    """Write the caseload in bulk; returns the number of open deadlines."""
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
    mark = "?" if url.startswith("sqlite") else "%s"
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
        "INSERT INTO ehc_case (id, name, date_of_birth, caseworker, created_at, created_by) "
        "VALUES (?, ?, ?, ?, ?, ?)".replace("?", mark),
        case_rows,
    )
    cur.executemany(
        "INSERT INTO workflow_instance (id, case_id, workflow, definition_version, state, version, facts, opened_on, "
        "last_event_on) VALUES (?, ?, ?, ?, ?, 1, '{}', ?, ?)".replace("?", mark),
        [(*r, r[5]) for r in instance_rows],
    )
    cur.executemany(
        "INSERT INTO deadline (instance_id, case_id, name, title, starts_on, due_on, source, basis, party, status, "
        "opened_by_seq, next_alert_on) VALUES (?, ?, ?, ?, ?, ?, ?, 'statutory', 'council', 'open', 1, ?)".replace(
            "?", mark
        ),
        deadline_rows,
    )
    if mark == "%s":  # the ids were given: move the sequences past them
        for table in ("ehc_case", "workflow_instance"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    raw.commit()
    if mark == "?":
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    engine.dispose()
    return len(deadline_rows)


class Copies:
    """Databases made from one another: SQLite files copied, or PostgreSQL databases made from a template."""

    def __init__(self, folder: Path, server: str | None):
        self.folder, self.server = folder, server

    def url(self, name: str) -> str:
        return f"{self.server}/{name}" if self.server else f"sqlite:///{self.folder / name}.sqlite"

    def copy(self, source: str, target: str) -> str:
        self.drop(target)
        if self.server is None:
            shutil.copy(self.folder / f"{source}.sqlite", self.folder / f"{target}.sqlite")
        else:
            self._admin(f"CREATE DATABASE {target} TEMPLATE {source}")
        return self.url(target)

    def create(self, name: str) -> str:
        if self.server is not None:
            self._admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop(self, name: str) -> None:
        if self.server is None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.folder / name}.sqlite{suffix}").unlink(missing_ok=True)
        else:
            self._admin(f"DROP DATABASE IF EXISTS {name}")

    def settle(self, app: App) -> None:
        """Leave the database as a file or template another can be made from; on PostgreSQL vacuumed
        and analysed, as autovacuum would have it after a first sweep that moved two rows in five
        (dead index entries left by the backlog would otherwise slow the next query for what is due
        until a scan had marked them, which a scheduler sweeping every few minutes does at once)."""
        app.engine.dispose()
        if self.server is None:
            raw = app.engine.raw_connection()
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            raw.commit()
            raw.close()
            app.engine.dispose()
        else:
            self._admin("VACUUM ANALYZE", database=app.engine.url.database)

    def _admin(self, statement: str, database: str | None = "postgres") -> None:
        from sqlalchemy import create_engine, text

        admin = create_engine(f"{self.server}/{database}", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(statement))
        admin.dispose()


def sweep_once(copies: Copies, source: str, as_of: date) -> tuple[float, int, int, int, Writes]:
    """One sweep as ``ehcp scheduler run`` makes it (SQLite: the log copied back on a thread of its
    own), timed from a fresh copy; returns its time, counts, and what it wrote (for the replay)."""
    url = copies.copy(source, "run")
    app = App(settings(url), FixedClock(as_of))
    app.background_checkpoints = True
    sweeper = app.sweeper  # the schema check and the workflows' load happen at start-up, not per sweep
    calendar.is_working_day(as_of)  # as do the bank holidays' (the holidays package: ~0.1 s)
    with app.engine.connect() as conn:
        marks = Marks.read(conn, as_of)
    checkpointer = Checkpointer(app.engine).start()
    started = time.perf_counter()
    with Checkpointer.held_off(app.engine):  # as engine.scheduler.run_once sweeps
        report = sweeper.sweep(as_of)
    elapsed = time.perf_counter() - started
    checkpointer.stop()
    with app.engine.connect() as conn:
        writes = Writes.read(conn, marks)
    app.engine.dispose()
    copies.drop("run")
    return elapsed, report.examined, len(report.messages), len(report.breaches), writes


class Marks(NamedTuple):
    """Where the tables ended before a sweep, and the rows it was to work on."""

    outbox: int
    history: int
    due: list[int]

    @staticmethod
    def read(conn: Any, as_of: date) -> Marks:
        one = conn.exec_driver_sql
        return Marks(
            one("SELECT coalesce(max(id), 0) FROM outbox").scalar(),
            one("SELECT coalesce(max(id), 0) FROM history").scalar(),
            [r[0] for r in conn.execute(text(DUE_IDS), {"today": as_of})],
        )


DUE_IDS = "SELECT id FROM deadline WHERE next_alert_on <= :today AND closed_on IS NULL ORDER BY next_alert_on, id"
OUTBOX = ("key", "case_id", "instance_id", "kind", "deadline_id", "alert_on", "template", "recipient_role",
          "recipient_name", "recipient_email", "channel", "status", "created_at", "last_error", "attempts")  # fmt: skip
HISTORY = ("instance_id", "case_id", "seq", "at", "occurred_on", "actor", "actor_role", "trigger", "from_state",
           "to_state", "inputs", "note", "hash")  # fmt: skip


class Writes(NamedTuple):
    """Every row a sweep wrote, as the driver reads it back: replayed on a fresh copy, it gives the
    database's own cost of the same work."""

    due: list[int]
    deadlines: list[tuple[Any, ...]]
    instances: list[tuple[Any, ...]]
    history: list[tuple[Any, ...]]
    outbox: list[tuple[Any, ...]]

    @staticmethod
    def read(conn: Any, marks: Marks) -> Writes:
        raw = conn.connection.dbapi_connection.cursor()
        mark = "?" if conn.dialect.name == "sqlite" else "%s"

        def rows(sql: str, *params: Any) -> list[tuple[Any, ...]]:
            raw.execute(sql.replace("?", mark), params)
            return [tuple(r) for r in raw.fetchall()]

        due = set(marks.due)
        deadlines = [r for r in rows("SELECT next_alert_on, status, breached_on, id FROM deadline") if r[3] in due]
        history = rows(f"SELECT {', '.join(HISTORY)} FROM history WHERE id > ? ORDER BY id", marks.history)
        moved = {h[0] for h in history}
        instances = [r for r in rows("SELECT version, history_hash, id FROM workflow_instance") if r[2] in moved]
        outbox = rows(f"SELECT {', '.join(OUTBOX)} FROM outbox WHERE id > ? ORDER BY id", marks.outbox)
        return Writes(marks.due, deadlines, instances, history, outbox)


def replay_once(copies: Copies, source: str, as_of: date, writes: Writes) -> float:
    """The same rows written by the bare driver in one transaction, with the same settings, after
    the same query for what is due: no decisions, no guards, no Python but the driver's."""
    with _bare(copies, source, "replay") as (raw, cur, mark):

        def many(sql: str, rows: list[tuple[Any, ...]]) -> None:
            if rows:
                cur.executemany(sql.replace("?", mark), rows)

        started = time.perf_counter()
        cur.execute(DUE_IDS.replace(":today", mark), (as_of.isoformat(),))
        cur.fetchall()
        many("UPDATE deadline SET next_alert_on = ?, status = ?, breached_on = ? WHERE id = ?", writes.deadlines)
        many(f"INSERT INTO history ({', '.join(HISTORY)}) VALUES ({', '.join('?' * len(HISTORY))})", writes.history)
        many("UPDATE workflow_instance SET version = ?, history_hash = ? WHERE id = ?", writes.instances)
        many(f"INSERT INTO outbox ({', '.join(OUTBOX)}) VALUES ({', '.join('?' * len(OUTBOX))})", writes.outbox)
        raw.commit()
        return time.perf_counter() - started


@contextmanager
def _bare(copies: Copies, source: str, name: str) -> Iterator[tuple[Any, Any, str]]:
    """A fresh copy ``name`` of ``source`` through the bare driver, with the same settings as the sweep's,
    its due index read once as the sweep's would be: (connection, cursor, parameter marker); dropped after."""
    url = copies.copy(source, name)
    engine = connect(url, background_checkpoints=True)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT count(*) FROM deadline WHERE next_alert_on IS NOT NULL")
        cur.fetchall()
        yield raw, cur, "?" if url.startswith("sqlite") else "%s"
    finally:
        raw.close()
        engine.dispose()
        copies.drop(name)


def floor_once(copies: Copies, source: str, as_of: date, writes: Writes) -> float:
    """The database's own floor: the same rows, put inside the database first (in temporary tables,
    untimed), then written by one statement a table in one transaction after the same query for what
    is due: no client, no driver, no round trip a row. No sweep, however written, writes these rows
    in less time on the same database."""
    with _bare(copies, source, "floor") as (raw, cur, mark):
        staged = {
            "t_deadline": ("deadline", ("next_alert_on", "status", "breached_on", "id"), writes.deadlines),
            "t_history": ("history", HISTORY, writes.history),
            "t_instance": ("workflow_instance", ("version", "history_hash", "id"), writes.instances),
            "t_outbox": ("outbox", OUTBOX, writes.outbox),
        }
        for temp, (table, columns, rows) in staged.items():
            cur.execute(f"CREATE TEMPORARY TABLE {temp} AS SELECT {', '.join(columns)} FROM {table} WHERE 1 = 0")
            if rows:
                cur.executemany(f"INSERT INTO {temp} VALUES ({', '.join([mark] * len(columns))})", rows)
            cur.execute(f"ANALYZE {temp}")
        if mark == "%s":  # PostgreSQL's planner would hash the staged rows and read every deadline (110 ms
            cur.execute("SET enable_hashjoin = off")  # more at 770,000 than a lookup by id a row)
            cur.execute("SET enable_mergejoin = off")
        raw.commit()
        started = time.perf_counter()
        cur.execute(DUE_IDS.replace(":today", mark), (as_of.isoformat(),))
        cur.fetchall()
        cur.execute(
            "UPDATE deadline SET next_alert_on = t.next_alert_on, status = t.status, breached_on = t.breached_on "
            "FROM t_deadline AS t WHERE deadline.id = t.id"
        )
        cur.execute(f"INSERT INTO history ({', '.join(HISTORY)}) SELECT {', '.join(HISTORY)} FROM t_history")
        cur.execute(
            "UPDATE workflow_instance SET version = t.version, history_hash = t.history_hash "
            "FROM t_instance AS t WHERE workflow_instance.id = t.id"
        )
        cur.execute(f"INSERT INTO outbox ({', '.join(OUTBOX)}) SELECT {', '.join(OUTBOX)} FROM t_outbox")
        raw.commit()
        return time.perf_counter() - started


def naive_once(copies: Copies, source: str, as_of: date) -> tuple[float, int]:
    """The naive baseline: every open deadline read, and what falls due worked out for each in
    Python, one row at a time; it writes nothing, so it is faster than a naive sweep would be."""
    app = App(settings(copies.url(source)), FixedClock(as_of))
    catalogue = app.catalogue
    calendar.is_working_day(as_of)
    with app.engine.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM deadline WHERE next_alert_on IS NOT NULL").scalar()
        started = time.perf_counter()
        found = 0
        rows = conn.exec_driver_sql(
            "SELECT d.name, d.party, d.due_on, d.status, d.next_alert_on, i.workflow, i.definition_version "
            "FROM deadline d JOIN workflow_instance i ON i.id = d.instance_id WHERE d.closed_on IS NULL"
        )
        for name, party, due_on, status, since, workflow, version in rows:
            if since is None:
                continue
            definition = catalogue.get(workflow, version)
            due = alerts.due(
                definition, definition.deadline(name), party, as_date(due_on), status, as_date(since), as_of
            )
            found += bool(due.send or due.skip or due.breach_on)
        elapsed = time.perf_counter() - started
    app.engine.dispose()
    return elapsed, found


@contextmanager
def postgres_cluster(folder: Path, settings: Sequence[str] = ()) -> Iterator[str]:
    """A throw-away PostgreSQL cluster on loopback (Debian's binaries, run as the postgres user when
    this runs as root, as initdb refuses root), with the server's own defaults (fsync on) but for
    ``settings`` ("name=value" each)."""
    bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent
    data = folder / "pg"
    os.chmod(folder, 0o777)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(as_postgres + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1" + "".join(f" -c {kv}" for kv in settings)
    subprocess.run(as_postgres + [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l",
                                  str(folder / "pg.log"), "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(as_postgres + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deadlines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="on a throw-away PostgreSQL cluster, not SQLite")
    parser.add_argument("--pg-set", action="append", default=[], metavar="NAME=VALUE",
                        help="a server setting for that cluster, e.g. shared_buffers=1GB (repeatable)")  # fmt: skip
    parser.add_argument("--batch", type=int, help="rows a sweep works a transaction (scheduler.sweep_batch)")
    args = parser.parse_args()
    if args.batch:
        BATCH["rows"] = args.batch
    with tempfile.TemporaryDirectory(prefix="ehcp-sweep-") as tmp:
        if args.postgres:
            with postgres_cluster(Path(tmp), args.pg_set) as server:
                run(Copies(Path(tmp), server), args.deadlines, args.runs, "PostgreSQL")
        else:
            run(Copies(Path(tmp), None), args.deadlines, args.runs, "SQLite")


def run(copies: Copies, deadlines: int, runs: int, kind: str) -> None:
    today = date(2026, 3, 2)
    t0 = time.perf_counter()
    total = build(copies.create("caseload"), deadlines, today)
    print(f"{kind}: built {total:,} open deadlines in {time.perf_counter() - t0:.1f} s")
    # Bring a copy to "swept up to yesterday", so the daily sweep sees one day's alerts.
    app = App(settings(copies.copy("caseload", "seeded")), FixedClock(today))
    t0 = time.perf_counter()
    first = app.sweeper.sweep(today - timedelta(days=1))
    print(
        f"first sweep of the whole backlog: {time.perf_counter() - t0:.1f} s, {first.examined:,} deadlines, "
        f"{len(first.messages):,} messages, {len(first.breaches):,} breaches"
    )
    copies.settle(app)
    scenarios = [
        ("quiet (nothing new since the last sweep)", today - timedelta(days=1)),
        ("daily (one day's alerts)", today),
        ("catch-up (30 days without a sweep)", today + timedelta(days=30)),
    ]
    scenarios_done: list[tuple[str, date, float]] = []
    print(
        f"\n{'sweep':40} {'median ms':>10} {'min ms':>8} {'examined':>9} {'messages':>9} {'breaches':>9}  per deadline"
    )
    replays, floors = {}, {}
    for label, as_of in scenarios:
        done = [sweep_once(copies, "seeded", as_of) for _ in range(runs)]
        times = [r[0] for r in done]
        med = statistics.median(times)
        _, examined, messages, breaches, writes = done[0]
        replays[label] = statistics.median(replay_once(copies, "seeded", as_of, writes) for _ in range(runs))
        floors[label] = statistics.median(floor_once(copies, "seeded", as_of, writes) for _ in range(runs))
        per = f"{med / examined * 1e6:,.0f} µs" if examined else "-"
        print(f"{label:40} {med * 1e3:10.1f} {min(times) * 1e3:8.1f} {examined:9,} {messages:9,} {breaches:9,}  {per}")
        scenarios_done.append((label, as_of, med))
    print(
        f"\n{'beside the baselines':40} {'sweep ms':>9} {'bare writes':>12} {'ratio':>6} {'db floor':>9} "
        f"{'ratio':>6} {'naive ms':>9} {'naive/sweep':>12} {'naive/floor':>12}"
    )
    naive = {}
    for label, as_of, med in scenarios_done:
        if as_of not in naive:
            naive[as_of] = statistics.median(naive_once(copies, "seeded", as_of)[0] for _ in range(max(1, runs // 2)))
        bare, floor = replays[label], floors[label]
        print(f"{label:40} {med * 1e3:9.1f} {bare * 1e3:12.1f} {med / bare:6.2f} {floor * 1e3:9.1f} "
              f"{med / floor:6.2f} {naive[as_of] * 1e3:9.0f} {naive[as_of] / med:11.1f}x "
              f"{naive[as_of] / floor:11.1f}x")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nover {total:,} open deadlines; peak RSS {peak:.0f} MB; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
