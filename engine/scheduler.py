"""Running the sweep and the dispatcher: once (``ehcp tick``) or every few minutes (APScheduler).

There is one scheduler job, the sweep-and-send, never one job per deadline: the deadlines are
rows, and the sweep reads the ones whose alert date has come (``engine.sweep``). The job is
``max_instances=1`` and ``coalesce=True``, so a slow sweep is never overlapped by the next one in
the same process; sweeps in other processes are safe too, since every write is guarded.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from typing import Any

from .app import App
from .dispatch import DispatchReport
from .progress import Progress, Silent
from .store.database import Checkpointer
from .sweep import SweepReport

log = logging.getLogger(__name__)

JOB_ID = "ehcp-sweep-and-send"


@dataclass(frozen=True)
class Ticked:
    """What one run did: documents rendered (and those that could not be), the sweep, the sending."""

    rendered: int
    not_rendered: int  # failed (``ehcp docs list`` says why) or taken by another worker
    swept: SweepReport
    sent: DispatchReport | None


def run_once(app: App, *, send: bool = True, documents: bool = True, progress: Progress | None = None) -> Ticked:
    """Sweep, send, then render the documents steps queued; ``progress`` shows each phase as it goes."""
    progress = progress or Silent()
    app.catalogue.complete()  # every workflow file read: a broken one is known (and warned of) at once
    app.engine  # noqa: B018 - the database opened and checked first: a missing one is one clear line
    # The sweep and the sending come first: reminders never wait behind a slow document.
    with progress.phase("sweeping deadlines") as advance, SchedulerLock(app, "sweep") as turn:
        if turn:
            with Checkpointer.held_off(app.engine):
                swept = app.sweeper.sweep(on_batch=advance)  # a catch-up's deadlines counted as they go
        else:  # another process sweeps this database now: this one sends and renders what is queued
            swept = SweepReport(app.clock.today(), elsewhere=True)
    sent = None
    if send:
        with progress.phase("sending messages") as advance:
            sent = app.dispatcher().dispatch(on_attempt=lambda _: advance(1))
    rendered = not_rendered = 0
    if documents:
        from .store.queries import queued_documents

        queued = len(queued_documents(app.engine))
        if queued:
            with progress.phase("rendering documents", queued) as advance:
                rendered = len(app.documents.process(on_each=lambda: advance(1)))
            not_rendered = max(queued - rendered, 0)
    return Ticked(rendered, not_rendered, swept, sent)


def _job(app: App) -> None:
    try:
        ticked = run_once(app)
    except Exception:  # a failed sweep must not stop the scheduler: the next run catches up
        log.exception("sweep failed; the next run will catch up")
        return
    swept, sent = ticked.swept, ticked.sent
    if swept.elsewhere:
        log.info("another process is sweeping %s now: this one sent %d", swept.as_of.isoformat(),
                 sent.count("sent") if sent else 0)  # fmt: skip
        return
    log.info(
        "swept %s: %d documents rendered, %d breaches, %d queued, %d sent, %d to retry, %d failed",
        swept.as_of.isoformat(),
        ticked.rendered,
        len(swept.breaches),
        swept.count("queued"),
        sent.count("sent") if sent else 0,
        sent.count("retry") if sent else 0,
        sent.count("failed") if sent else 0,
    )


def scheduler_for(app: App, interval_minutes: float | None = None, background: bool = False) -> Any:
    """An APScheduler scheduler with the sweep-and-send job (a background one for ``ehcp serve``)."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    minutes = interval_minutes or app.settings.scheduler.interval_minutes
    scheduler = (BackgroundScheduler if background else BlockingScheduler)(timezone="Europe/London")
    scheduler.add_job(
        _job,
        "interval",
        args=[app],
        minutes=minutes,
        id=JOB_ID,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=app.clock.now(),  # at once, then every interval
    )
    return scheduler


def run_forever(app: App, interval_minutes: float | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scheduler = scheduler_for(app, interval_minutes)
    checkpointer = Checkpointer(app.engine).start()  # SQLite: copy the log back off the request path
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=True))
    log.info("sweeping every %s minutes; Ctrl-C stops", interval_minutes or app.settings.scheduler.interval_minutes)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        checkpointer.stop()


class SchedulerLock:
    """One process at a time per database for a kind of work, however many run.

    - ``scheduler`` (``ehcp serve``): held for the process's life. The first of several web
      processes to take it runs the scheduler; the others only serve.
    - ``sweep``: held while one sweep runs. Any number of ``ehcp scheduler run`` processes (and
      ``ehcp tick``) share a database: one sweeps while the others send and render. Sending and
      rendering divide their work through the database's claims, and a sweep needs one worker.

    SQLite: an exclusive lock on a file beside the database. PostgreSQL: a session advisory lock on
    a connection held open meanwhile. A process that dies lets go of both."""

    KEYS = {"scheduler": 0x45484350, "sweep": 0x45484353}  # "EHCP", "EHCS"

    def __init__(self, app: App, purpose: str = "scheduler"):
        self.app = app
        self.purpose = purpose
        self.key = self.KEYS[purpose]
        self._held: Any = None

    def acquire(self) -> bool:
        from .store.database import sqlite_file

        file = sqlite_file(self.app.settings.database())
        if file is not None:
            import fcntl

            handle = open(f"{file}.{self.purpose}-lock", "a+")  # noqa: SIM115 - held until released
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
            self._held = handle
            return True
        from sqlalchemy import text

        conn = self.app.engine.connect()
        if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar_one():
            conn.commit()
            self._held = conn
            return True
        conn.close()
        return False

    def release(self) -> None:
        if self._held is None:
            return
        if hasattr(self._held, "invalidate"):  # a pooled connection: its session (and lock) must end
            self._held.invalidate()
        self._held.close()
        self._held = None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()
