"""Faults, bounded in time, on SQLite and PostgreSQL (issue 16, part 4): workers sweeping, sending and
taking steps at the same time, each killed (SIGKILL) at a random moment, again and again for a
simulated month, with the mail server down for part of it. Then one clean run, and the record must
be whole: the database's own check passes, every instance's state is its last history entry's, the
hash chain is intact, every breach is recorded once with its entry, nothing is left queued or
half-sent, and every message reached the mail server once, but for the one repeat the design
allows (a worker killed between sending and recording it), which carries the same Message-ID."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers import SmtpServer
from sqlalchemy import text
from test_delivery import CW, open_case, settings

from engine import audit
from engine.app import App
from engine.clock import FixedClock
from engine.errors import EhcpError

START = date(2026, 3, 2)
DAYS = 30
CASES = 60
STEPS = ("agree_to_assess", "record_advice_received", "decide_to_issue", "refuse_to_assess")


def run_and_kill(workers: list[Any], after: float) -> int:
    """Start the workers, kill with SIGKILL those still working ``after`` seconds on; how many were."""
    for w in workers:
        w.start()
    time.sleep(after)
    killed = 0
    for w in workers:
        if w.is_alive():
            os.kill(w.pid, signal.SIGKILL)
            killed += 1
    for w in workers:
        w.join(30)
    return killed


def _worker(url: str, outbox: str, port: int, day: str, seed: int, role: str) -> None:
    """One worker's run (in a forked process): a sweep then sending, or a few steps on random cases."""
    app = App(settings(url, Path(outbox), port, batch=5, attempts=20), FixedClock(date.fromisoformat(day)))
    rng = random.Random(seed)
    if role == "sweep":
        app.sweeper.sweep()
        app.dispatcher().dispatch()
    else:
        for _ in range(10):
            case_id = rng.randint(1, CASES)
            trigger = rng.choice(STEPS)
            inputs = {"reasons": "Generated reasons."} if trigger == "refuse_to_assess" else {}
            try:
                app.cases.fire(case_id, trigger, actor=CW, inputs=inputs)
            except EhcpError:
                pass  # not a step the case can take now: as a caseworker would be told
    app.engine.dispose()
    os._exit(0)


@pytest.mark.parametrize("seed", [16])
def test_workers_killed_at_random_leave_every_message_sent_once_and_the_record_whole(
    database_url: str, tmp_path: Path, smtp_server: SmtpServer, seed: int
) -> None:
    clock = FixedClock(START)
    app = App(settings(database_url, tmp_path / "outbox", smtp_server.port, batch=5, attempts=20), clock, create=True)
    for i in range(CASES):
        open_case(app, f"Child {i}", parent_email=f"parent{i}@example.org")
    app.engine.dispose()
    rng = random.Random(seed)
    ctx = multiprocessing.get_context("fork")  # a fork starts at once: the kills land in the work, not in imports
    kills = 0
    deadline = time.monotonic() + 40  # bounded, whatever the machine
    for n in range(DAYS):
        if time.monotonic() > deadline:
            break
        day = (START + timedelta(days=n * 3)).isoformat()
        if n == 8:
            smtp_server.stop()  # down for a few days: sending fails and is tried again later
        if n == 11:
            smtp_server.start()
        workers = [
            ctx.Process(target=_worker, args=(database_url, str(tmp_path / "outbox"), smtp_server.port, day,
                                              rng.randrange(10**6), role))
            for role in ("sweep", "sweep", "steps")
        ]  # fmt: skip
        before = len(smtp_server.handler.received)
        kills += run_and_kill(workers, rng.uniform(0.01, 0.4))
        # Within one day no message goes twice, however many workers send at once: a message cut off
        # between sending and recording goes again only once its lease has run out, on a later day.
        today = Counter(str(m.message["X-EHCP-Key"]) for m in smtp_server.handler.received[before:])
        assert all(count == 1 for count in today.values()), [k for k, c in today.items() if c > 1]
    assert kills >= 3, "workers must have been killed mid-work for this to test anything"

    # One clean run after the last day, past the sending lease and every retry's wait.
    clock.set(START + timedelta(days=DAYS * 3 + 2))
    app = App(settings(database_url, tmp_path / "outbox", smtp_server.port, batch=5, attempts=20), clock)
    app.sweeper.sweep()
    for _ in range(4):
        app.dispatcher().dispatch()
        clock.advance()

    with app.engine.connect() as conn:
        if database_url.startswith("sqlite"):
            assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        breached = conn.execute(text("SELECT count(*) FROM deadline WHERE breached_on IS NOT NULL")).scalar_one()
        entries = conn.execute(text("SELECT count(*) FROM history WHERE trigger = 'deadline_breached'")).scalar_one()
        assert breached == entries > 0
        status = Counter(dict(conn.execute(text("SELECT status, count(*) FROM outbox GROUP BY status")).all()))
        assert status["queued"] == 0 and status["sending"] == 0, status
        sent = {
            r[0]: r[1]
            for r in conn.execute(
                text("SELECT key, provider_id FROM outbox WHERE status = 'sent' AND channel = 'email'")
            )
        }
    checked = audit.verify(app.engine)  # the chain whole, and every state and version its last entry's
    assert checked.intact, checked.breaks
    app.engine.dispose()

    received = smtp_server.handler.received
    keys = Counter(str(m.message["X-EHCP-Key"]) for m in received)
    ids_by_key: dict[str, set[str]] = {}
    for m in received:
        ids_by_key.setdefault(str(m.message["X-EHCP-Key"]), set()).add(str(m.message["Message-ID"]).strip())
    assert set(keys) == set(sent), "every message marked sent reached the server, and nothing else did"
    repeats = sum(n - 1 for n in keys.values())
    assert repeats <= kills, (repeats, kills)  # only a worker killed after sending can make one
    assert all(len(ids) == 1 for ids in ids_by_key.values()), "a repeat carries the same Message-ID"


def _step_at_once(url: str, outbox: str, barrier: object, out: object, who: str) -> None:
    from engine.actor import Actor

    app = App(settings(url, Path(outbox), 0, transport="folder"), FixedClock(START + timedelta(days=20)))
    barrier.wait()  # type: ignore[attr-defined]
    try:
        app.cases.fire(1, "agree_to_assess", actor=Actor(who, "caseworker"))
        out.put((who, "done"))  # type: ignore[attr-defined]
    except EhcpError as exc:
        out.put((who, type(exc).__name__ + ": " + str(exc)))  # type: ignore[attr-defined]
    app.engine.dispose()
    out.close()  # type: ignore[attr-defined]
    out.join_thread()  # type: ignore[attr-defined]  # the answer is on its way before the process goes
    os._exit(0)


def test_two_caseworkers_taking_the_same_step_at_the_same_moment_one_wins_the_other_is_told(
    database_url: str, tmp_path: Path
) -> None:
    clock = FixedClock(START)
    app = App(settings(database_url, tmp_path / "outbox", 0, transport="folder"), clock, create=True)
    open_case(app, "Child Zero", parent_email="parent@example.org")
    app.engine.dispose()
    ctx = multiprocessing.get_context("fork")
    for _ in range(3):  # the race is the machine's to decide: it must come out whole every time
        barrier, out = ctx.Barrier(2), ctx.Queue()
        workers = [
            ctx.Process(target=_step_at_once, args=(database_url, str(tmp_path / "outbox"), barrier, out, who))
            for who in ("cw", "cw2")
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert [w.exitcode for w in workers] == [0, 0]
        results = dict(out.get(timeout=5) for _ in workers)
        if "done" in results.values():
            break
    assert sorted(results.values()).count("done") <= 1
    told = [r for r in results.values() if r != "done"]
    assert all(r.startswith(("TransitionRefused", "ConflictError")) for r in told), told
    app = App(settings(database_url, tmp_path / "outbox", 0, transport="folder"), clock)
    with app.engine.connect() as conn:
        agreed = conn.execute(text("SELECT count(*) FROM history WHERE trigger = 'agree_to_assess'")).scalar_one()
        state = conn.execute(text("SELECT state FROM workflow_instance WHERE case_id = 1")).scalar_one()
    assert agreed == 1 and state == "assessing"
    assert audit.verify(app.engine).intact
    app.engine.dispose()


def test_the_database_unreachable_for_a_while_is_one_clear_line_and_nothing_is_lost(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """PostgreSQL stopped under a running service: `ehcp tick` says so in one line and exits 2, losing
    nothing; started again, the next tick does the work that was due, each message once."""
    import yaml
    from servers import PostgresCluster, create_database, postgres_bin
    from typer.testing import CliRunner

    from engine.cli import app as cli
    from engine.store.database import initialise

    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed (scripts/test.sh installs them)")
    cluster = PostgresCluster(bindir)
    cluster.start()
    try:
        url = create_database(cluster.url, "county")
        initialise(url)
        clock = FixedClock(START)
        engine_app = App(settings(url, tmp_path / "outbox", smtp_server.port), clock)
        for i in range(5):
            open_case(engine_app, f"Child {i}", parent_email=f"parent{i}@example.org")
        engine_app.engine.dispose()
        data = engine_app.settings.model_dump(mode="json", exclude={"base_dir", "secrets_in_file"})
        data["accounts"] = {"*": "cw"}
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        config.chmod(0o600)
        day = (START + timedelta(days=50)).isoformat()  # the decisions' 6 weeks have passed: breaches, escalations

        cluster.stop()
        down = CliRunner().invoke(cli, ["--config", str(config), "tick", "--as-of", day])
        assert down.exit_code == 2 and "Traceback" not in down.output, down.output
        assert len(down.stderr.strip().splitlines()) == 1 and "database" in down.stderr.lower(), down.stderr
        assert smtp_server.handler.received == []

        cluster.start()
        up = CliRunner().invoke(cli, ["--config", str(config), "tick", "--as-of", day])
        assert up.exit_code == 0, up.output
        again = CliRunner().invoke(cli, ["--config", str(config), "tick", "--as-of", day])
        assert again.exit_code == 0
        keys = Counter(str(m.message["X-EHCP-Key"]) for m in smtp_server.handler.received)
        assert keys and all(n == 1 for n in keys.values())
        check = App(settings(url, tmp_path / "outbox", smtp_server.port), clock)
        with check.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM deadline WHERE breached_on IS NOT NULL")).scalar_one() == 5
            assert conn.execute(text("SELECT count(*) FROM outbox WHERE status = 'queued'")).scalar_one() == 0
        check.engine.dispose()
    finally:
        cluster.remove()


def _render(url: str, outbox: str, documents: str) -> None:
    base = settings(url, Path(outbox), 0, transport="folder")
    app = App(base.model_copy(update={"documents_dir": documents}), FixedClock(START + timedelta(days=1)))
    app.documents.process()
    app.engine.dispose()
    os._exit(0)


def test_document_workers_killed_at_random_leave_every_document_made_once(database_url: str, tmp_path: Path) -> None:
    """The decision letters eight steps queued, rendered by two workers at a time that are killed at
    random moments; then a clean run after the claims' lease: every document is made, once, and its
    file is the one recorded."""
    from engine.documents import read_stored

    documents = str(tmp_path / "documents")
    base = settings(database_url, tmp_path / "outbox", 0, transport="folder")
    clock = FixedClock(START)
    app = App(base.model_copy(update={"documents_dir": documents}), clock, create=True)
    for i in range(8):
        case_id = open_case(app, f"Child {i}", parent_email=f"parent{i}@example.org")
        app.cases.fire(case_id, "agree_to_assess", actor=CW)
    with app.engine.connect() as conn:
        queued = conn.execute(text("SELECT count(*) FROM document WHERE status = 'queued'")).scalar_one()
    assert queued >= 8
    app.engine.dispose()
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(16)
    kills = 0
    for _ in range(6):
        workers = [
            ctx.Process(target=_render, args=(database_url, str(tmp_path / "outbox"), documents)) for _ in (1, 2)
        ]
        kills += run_and_kill(workers, rng.uniform(0.2, 1.5))
    clock.set(START + timedelta(days=3))  # past the lease of any claim a killed worker left
    app = App(base.model_copy(update={"documents_dir": documents}), clock)
    app.documents.process()
    with app.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, status, path, sha256 FROM document ORDER BY id")).all()
    app.engine.dispose()
    assert len(rows) == queued and {r[1] for r in rows} == {"ready"}, rows
    for _id, _status, path, digest in rows:
        assert read_stored(path, digest).startswith(b"%PDF-")
    assert kills >= 1
