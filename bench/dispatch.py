"""How fast the dispatcher sends, beside the mail transport alone, and with 1, 2 and 4 dispatchers.

    .venv/bin/python bench/dispatch.py                     # SQLite; about 18,000 messages queued
    .venv/bin/python bench/dispatch.py --postgres          # PostgreSQL, with 1, 2 and 4 dispatchers at once

A caseload is built and swept as bench/sweep.py does (one day's alerts over ``--deadlines`` open
deadlines: 770,000 gives England's day, about 18,000 messages; the default, 100,000, about 2,400;
``--messages`` queues that many by sweeping a catch-up instead). Then, each from a fresh copy:

- **the transport alone**: the same number of emails, built once, sent through the same SMTP
  transport to an aiosmtpd server on loopback in another process (what the mail server allows);
- **the dispatcher**: everything queued sent by ``ehcp``'s dispatcher (claim, render the template,
  send, record it sent), one process; the difference from the transport alone, per message, is the
  database's and the rendering's work;
- with ``--postgres``, 1, 2 and 4 dispatcher processes at once on the same database.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from engine.app import App  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.config import NotificationSettings, SmtpSettings  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_sweep", ROOT / "bench" / "sweep.py")
assert _spec is not None and _spec.loader is not None
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)  # the caseload and the copies (bench/ holds a transitions.py: not on the path)

TODAY = date(2026, 3, 2)


def smtp_sink(port: int, ready: object) -> None:
    """An aiosmtpd server that takes every message and keeps nothing (another process)."""
    from aiosmtpd.controller import Controller

    class Take:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
            return "250 OK"

    controller = Controller(Take(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()  # type: ignore[attr-defined]
    while True:
        time.sleep(3600)


def settings_for(url: str, port: int, outbox: Path) -> object:
    base = sweep.settings(url)
    smtp = SmtpSettings(host="127.0.0.1", port=port, tls="none", timeout=10)
    notifications = NotificationSettings(transport="smtp", sender="SEND team <send@council.example.org>",
                                         outbox_dir=str(outbox), smtp=smtp)  # fmt: skip
    return base.model_copy(update={"notifications": notifications})


def dispatch_all(url: str, port: int, outbox: str, out: object) -> None:
    app = App(settings_for(url, port, Path(outbox)), FixedClock(TODAY))  # type: ignore[arg-type]
    started = time.perf_counter()
    report = app.dispatcher().dispatch()
    out.put((time.perf_counter() - started, report.count("sent")))  # type: ignore[attr-defined]
    app.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deadlines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    port = _free_port()
    ready = ctx.Event()
    server = ctx.Process(target=smtp_sink, args=(port, ready), daemon=True)
    server.start()
    ready.wait(30)
    try:
        with tempfile.TemporaryDirectory(prefix="ehcp-dispatch-") as tmp:
            if args.postgres:
                with sweep.postgres_cluster(Path(tmp)) as url:
                    run(sweep.Copies(Path(tmp), url), port, Path(tmp), args, [1, 2, 4])
            else:
                run(sweep.Copies(Path(tmp), None), port, Path(tmp), args, [1])
    finally:
        server.terminate()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(copies: object, port: int, folder: Path, args: argparse.Namespace, workers: list[int]) -> None:
    c = copies  # sweep.Copies
    kind = "PostgreSQL" if c.server else "SQLite"  # type: ignore[attr-defined]
    sweep.build(c.create("caseload"), args.deadlines, TODAY)  # type: ignore[attr-defined]
    app = App(sweep.settings(c.copy("caseload", "queued")), FixedClock(TODAY - timedelta(days=1)))  # type: ignore[attr-defined]
    app.sweeper.sweep(TODAY - timedelta(days=1))
    with app.engine.begin() as conn:  # yesterday's alerts as sent: only today's are left to send
        conn.exec_driver_sql("UPDATE outbox SET status = 'sent' WHERE status = 'queued'")
    app.sweeper.sweep(TODAY)
    c.settle(app)  # type: ignore[attr-defined]
    counting = App(sweep.settings(c.url("queued")), FixedClock(TODAY))  # type: ignore[attr-defined]
    with counting.engine.connect() as conn:
        queued = conn.exec_driver_sql("SELECT count(*) FROM outbox WHERE status = 'queued'").scalar_one()
    counting.engine.dispose()  # a template PostgreSQL copies must have no one connected
    print(f"{kind}: {queued:,} messages queued (one day's alerts over {args.deadlines:,} open deadlines)")

    ctx = multiprocessing.get_context("spawn")
    results_by_workers: dict[int, float] = {}
    for n in workers:
        times = []
        for _ in range(args.runs):
            url = c.copy("queued", "run")  # type: ignore[attr-defined]
            out = ctx.Queue()
            procs = [ctx.Process(target=dispatch_all, args=(url, port, str(folder / "outbox"), out)) for _ in range(n)]
            started = time.perf_counter()
            for p in procs:
                p.start()
            results = [out.get(timeout=3600) for _ in procs]
            for p in procs:
                p.join()
            wall = time.perf_counter() - started
            sent = sum(r[1] for r in results)
            assert sent == queued, (sent, queued)
            times.append(max(r[0] for r in results) if n == 1 else wall)
            c.drop("run")  # type: ignore[attr-defined]
        took = statistics.median(times)
        results_by_workers[n] = took
    alone = transport_alone(c, port, queued, args.runs)
    print(f"  the transport alone:     {alone:6.2f} s  ({alone / queued * 1e3:.2f} ms a message: the same emails, "
          "built once, sent through the same SMTP transport)")  # fmt: skip
    for n, took in results_by_workers.items():
        extra = (took - alone) / queued * 1e3
        print(f"  {n} dispatcher{'s' if n > 1 else ' '}:          {took:6.2f} s  ({queued / took:,.0f} a second; "
              f"{extra:+.2f} ms a message beyond the transport: the database and the rendering)")  # fmt: skip


def transport_alone(c: object, port: int, queued: int, runs: int) -> float:
    """The time to send ``queued`` copies of a real sent message (its text and HTML) through SMTP."""
    from engine.messages import Rendered
    from notifications.message import Email
    from notifications.smtp import SmtpTransport

    app = App(sweep.settings(c.url("queued")), FixedClock(TODAY))  # type: ignore[attr-defined]
    with app.engine.connect() as conn:
        template = conn.exec_driver_sql("SELECT template FROM outbox WHERE status = 'queued' LIMIT 1").scalar_one()
    rendered = Rendered("Case 1: a reminder, with something to do by 16 March 2026", "A reminder.\n" * 30)
    html = app.messages.html(rendered)
    app.engine.dispose()
    transport = SmtpTransport("127.0.0.1", port, "none", timeout=10)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        for n in range(queued):
            transport.send(Email(key=f"bench:{n}", to=f"cw{n % 40}@example.org", to_name=f"Caseworker {n % 40}",
                                 subject=rendered.subject, text=rendered.text, html=html, template=template,
                                 sender="SEND team <send@council.example.org>"))  # fmt: skip
        times.append(time.perf_counter() - started)
    return statistics.median(times)


if __name__ == "__main__":
    main()
