"""Reminders, breaches and escalations swept from the deadlines, and delivered exactly once.

Real parts: the shipped workflows, a SQLite file and a PostgreSQL server, aiosmtpd on loopback,
letters parsed back from PDF; GOV.UK Notify is a stub at its HTTP boundary (tests/servers.py).
"""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import CW, ROOT, STAFF
from pypdf import PdfReader
from servers import NotifyStub, SmtpServer
from sqlalchemy import text
from typer.testing import CliRunner

from engine import alerts
from engine.app import App
from engine.cli import app as cli
from engine.clock import FixedClock
from engine.config import (
    NotificationSettings,
    RetrySettings,
    SchedulerSettings,
    Settings,
    SmtpSettings,
    StaffMember,
)
from engine.store.repository import ContactRecord

START = date(2026, 1, 5)  # a Monday: the council receives the request


def settings(
    database_url: str, outbox: Path, port: int = 0, staff: list[StaffMember] | None = None, **kw: Any
) -> Settings:
    return Settings(
        database_url=database_url,
        workflows_dir=str(ROOT / "workflows"),
        templates_dir=str(ROOT / "templates"),
        staff=staff or STAFF,
        notifications=NotificationSettings(
            transport=kw.pop("transport", "smtp"),
            sender="SEND team <send@council.example.org>",
            outbox_dir=str(outbox),
            smtp=SmtpSettings(host="127.0.0.1", port=port, tls="none", timeout=3),
            retry=RetrySettings(attempts=kw.pop("attempts", 3), first_delay_seconds=60),
        ),
        scheduler=SchedulerSettings(sweep_batch=kw.pop("batch", 500)),
    )


def open_case(app: App, name: str = "Alex Example", parent_email: str | None = None, caseworker: str = "cw") -> int:
    """A request received today. The notices that the assessment is being considered (reg 4(2)) went
    out when it arrived, by another channel than the one each scenario tests, so a scenario starts
    with nothing of the opening step left to send."""
    contacts = [ContactRecord("parent", f"Parent of {name}", parent_email)] if parent_email is not None else []
    case_id = app.cases.open_case(
        name=name,
        date_of_birth=date(2018, 3, 1),
        workflow="needs_assessment",
        actor=CW,
        inputs={"request_received_on": app.clock.today()},
        contacts=contacts,
        caseworker=caseworker,
    ).case_id
    with app.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE outbox SET status = 'skipped', last_error = 'sent when the request arrived' "
                "WHERE case_id = :c AND history_seq = 1 AND status = 'queued'"
            ),
            {"c": case_id},
        )
    return case_id


def alerts_in_outbox(app: App) -> list[tuple[Any, ...]]:
    """(case, deadline, kind, step, recipient, alert date, status) of every reminder and escalation."""
    with app.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT o.case_id, d.name, o.kind, o.key, o.recipient_email, o.alert_on, o.status FROM outbox o "
                "JOIN deadline d ON d.id = o.deadline_id ORDER BY o.id"
            )
        ).fetchall()
    return [(r[0], r[1], r[2], r[3].split(":")[3], r[4], str(r[5]), r[6]) for r in rows]


def history_of(app: App, trigger: str) -> list[tuple[Any, ...]]:
    with app.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text("SELECT case_id, inputs, occurred_on, actor FROM history WHERE trigger = :t ORDER BY id"),
                {"t": trigger},
            )
        ]


# -- the plan: pure ----------------------------------------------------------------------------


def test_the_plan_of_a_council_limit_reminds_breaches_and_escalates_on_the_right_days() -> None:
    from engine.catalogue import Catalogue

    definition = Catalogue.from_folder(ROOT / "workflows").latest("needs_assessment")
    spec = definition.deadline("decide_whether_to_assess")
    points = alerts.plan(definition, spec, "council", date(2026, 2, 16))
    assert [(p.kind.value, p.step, p.on.isoformat(), p.to) for p in points] == [
        ("reminder", "2w", "2026-02-02", ("caseworker",)),
        ("reminder", "3wd", "2026-02-11", ("caseworker",)),  # Fri 13, Thu 12, Wed 11
        ("breach", "0d", "2026-02-17", ()),
        ("escalation", "0d", "2026-02-17", ("team_manager",)),
        ("escalation", "2w", "2026-03-03", ("head_of_service",)),
    ]
    # Working days skip bank holidays: 3 working days before Tuesday 7 April 2026 jump Easter
    # Monday and Good Friday: Thursday 2, Wednesday 1, Tuesday 31 March.
    easter = alerts.plan(definition, spec, "council", date(2026, 4, 7))
    assert easter[1].on == date(2026, 3, 31)
    # A family's period is never breached and, by default, nobody is chased about it.
    assert alerts.plan(definition, definition.deadline("family_representations"), "family", date(2026, 3, 1)) == []


def test_catching_up_skips_stale_reminders_records_the_breach_once_and_escalates_once() -> None:
    from engine.catalogue import Catalogue

    definition = Catalogue.from_folder(ROOT / "workflows").latest("needs_assessment")
    spec = definition.deadline("decide_whether_to_assess")
    due_on = date(2026, 2, 16)
    # Nothing swept from 1 February to 10 March: both reminders are stale, both escalations go.
    late = alerts.due(definition, spec, "council", due_on, "open", date(2026, 2, 2), date(2026, 3, 10))
    assert [p.step for p, _ in late.skip] == ["2w", "3wd"]
    assert all("had passed" in why for _, why in late.skip)
    assert [(p.kind.value, p.step) for p in late.send] == [("escalation", "0d"), ("escalation", "2w")]
    assert late.breach_on == date(2026, 2, 17) and late.next_alert_on is None
    # Down from 1 to 12 February, deadline still ahead: only the latest reminder goes.
    mid = alerts.due(definition, spec, "council", due_on, "open", date(2026, 2, 2), date(2026, 2, 12))
    assert [p.step for p in mid.send] == ["3wd"]
    assert [p.step for p, why in mid.skip if "later reminder" in why] == ["2w"]
    assert mid.breach_on is None and mid.next_alert_on == date(2026, 2, 17)
    # Already recorded as breached: not again.
    again = alerts.due(definition, spec, "council", due_on, "breached", date(2026, 2, 17), date(2026, 2, 17))
    assert again.breach_on is None


# -- a year, day by day ------------------------------------------------------------------------


def _expected_year() -> set[tuple[Any, ...]]:
    a, b, c = 1, 2, 3
    cw, tm, hos = "cw@example.org", "tm@example.org", "hos@example.org"
    both_later = [
        ("notify_not_to_issue", "reminder", "2w", cw, "2026-04-13"),
        ("notify_not_to_issue", "reminder", "3wd", cw, "2026-04-22"),
        ("notify_not_to_issue", "escalation", "0d", tm, "2026-04-28"),
        ("notify_not_to_issue", "escalation", "2w", hos, "2026-05-12"),
        ("final_plan", "reminder", "2w", cw, "2026-05-11"),
        ("final_plan", "reminder", "3wd", cw, "2026-05-20"),
        ("final_plan", "escalation", "0d", tm, "2026-05-26"),
        ("final_plan", "escalation", "2w", hos, "2026-06-09"),
    ]
    rows = {
        a: [
            ("decide_whether_to_assess", "reminder", "2w", cw, "2026-02-02"),
            ("decide_whether_to_assess", "reminder", "3wd", cw, "2026-02-11"),
            ("decide_whether_to_assess", "escalation", "0d", tm, "2026-02-17"),
            ("decide_whether_to_assess", "escalation", "2w", hos, "2026-03-03"),
            *both_later,
        ],
        # Decided on time (10 February): one reminder; then the advisers' 6 weeks run late.
        b: [
            ("decide_whether_to_assess", "reminder", "2w", cw, "2026-02-02"),
            ("advice", "reminder", "1w", cw, "2026-03-17"),
            ("advice", "escalation", "0d", cw, "2026-03-25"),
            ("advice", "escalation", "2w", tm, "2026-04-08"),
            *both_later,
        ],
        # Decided late (20 February): the team manager was told; the head of service is not.
        c: [
            ("decide_whether_to_assess", "reminder", "2w", cw, "2026-02-02"),
            ("decide_whether_to_assess", "reminder", "3wd", cw, "2026-02-11"),
            ("decide_whether_to_assess", "escalation", "0d", tm, "2026-02-17"),
            ("advice", "reminder", "1w", cw, "2026-03-27"),
            ("advice", "escalation", "0d", cw, "2026-04-04"),
            ("advice", "escalation", "2w", tm, "2026-04-18"),
            *both_later,
        ],
    }
    return {(case, *row, "sent") for case, items in rows.items() for row in items}


def test_a_year_of_daily_sweeps_sends_exactly_the_expected_reminders_and_escalations(
    database_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    clock = FixedClock(START)
    app = App(settings(database_url, tmp_path / "outbox", smtp_server.port), clock, create=True)
    ids = [open_case(app, n) for n in ("Ada Able", "Ben Brook", "Cal Crane")]
    assert ids == [1, 2, 3]
    steps = {date(2026, 2, 10): (2, "agree_to_assess"), date(2026, 2, 20): (3, "agree_to_assess")}
    while clock.today() <= date(2026, 12, 31):
        if clock.today() in steps:
            case_id, trigger = steps[clock.today()]
            app.cases.fire(case_id, trigger, actor=CW)
        app.sweeper.sweep()
        app.dispatcher().dispatch()
        clock.advance()
    got = alerts_in_outbox(app)
    expected = _expected_year()
    got_rows = {(c, name, kind, step, to, on, status) for c, name, kind, step, to, on, status in got}
    assert got_rows == expected
    assert len(got) == len(expected)  # none twice
    # Every one arrived once, on loopback, with the deadline's date in its text.
    received = smtp_server.handler.received
    assert len(received) == len(expected)
    assert len({str(r.message["Message-ID"]).strip() for r in received}) == len(expected)
    # A staff message's subject names the case by its reference, never the child (a shared inbox
    # shows subjects): Ada Able's case is case 1.
    assert not any("Ada Able" in str(r.message["Subject"]) for r in received)
    one = next(
        r.message
        for r in received
        if "for case 1 " in str(r.message["Subject"]) and "Reminder" in str(r.message["Subject"])
    )
    body = one.get_body(("plain",))
    assert body is not None
    source = app.catalogue.latest("needs_assessment").deadline("decide_whether_to_assess").source
    assert "- By: Monday 16 February 2026 (14 days left)" in body.get_content()
    assert f"- Legal basis: {source}" in body.get_content()
    # Breaches: recorded once each, dated the day after the due date, by the scheduler.
    breaches = Counter((r[0], json.loads(r[1])["deadline"], str(r[2])) for r in history_of(app, "deadline_breached"))
    assert breaches == Counter(
        {
            (1, "decide_whether_to_assess", "2026-02-17"): 1,
            (1, "notify_not_to_issue", "2026-04-28"): 1,
            (1, "final_plan", "2026-05-26"): 1,
            (2, "advice", "2026-03-25"): 1,
            (2, "notify_not_to_issue", "2026-04-28"): 1,
            (2, "final_plan", "2026-05-26"): 1,
            (3, "decide_whether_to_assess", "2026-02-17"): 1,
            (3, "advice", "2026-04-04"): 1,
            (3, "notify_not_to_issue", "2026-04-28"): 1,
            (3, "final_plan", "2026-05-26"): 1,
        }
    )


# -- catching up -------------------------------------------------------------------------------


def test_a_sweep_after_weeks_of_downtime_records_the_true_breach_date_and_skips_stale_reminders(
    database_url: str, tmp_path: Path
) -> None:
    clock = FixedClock(START)
    app = App(settings(database_url, tmp_path / "outbox", transport="folder"), clock, create=True)
    case_id = open_case(app)
    clock.set(date(2026, 3, 10))
    report = app.sweeper.sweep()
    assert [(b["deadline"], b["breached_on"]) for b in report.breaches] == [
        ("decide_whether_to_assess", date(2026, 2, 17))
    ]
    got = {(name, kind, step, status) for _, name, kind, step, _, _, status in alerts_in_outbox(app)}
    assert got == {
        ("decide_whether_to_assess", "reminder", "2w", "skipped"),
        ("decide_whether_to_assess", "reminder", "3wd", "skipped"),
        ("decide_whether_to_assess", "escalation", "0d", "queued"),
        ("decide_whether_to_assess", "escalation", "2w", "queued"),
    }
    assert [str(r[2]) for r in history_of(app, "deadline_breached")] == ["2026-02-17"]
    with app.engine.connect() as conn:
        status = conn.execute(
            text("SELECT status, breached_on, closed_on FROM deadline WHERE case_id = :c AND name = :n"),
            {"c": case_id, "n": "decide_whether_to_assess"},
        ).one()
    assert (status[0], str(status[1]), status[2]) == ("breached", "2026-02-17", None)
    # The same day again, or the next: nothing new.
    assert app.sweeper.sweep().messages == []
    clock.advance()
    assert app.sweeper.sweep().messages == []
    # Meeting it late keeps it on record as breached, and stops its alerts.
    app.cases.fire(case_id, "agree_to_assess", actor=CW)
    with app.engine.connect() as conn:
        row = conn.execute(
            text("SELECT status, next_alert_on, closed_on FROM deadline WHERE case_id = :c AND name = :n"),
            {"c": case_id, "n": "decide_whether_to_assess"},
        ).one()
    assert row[0] == "breached" and row[1] is None and str(row[2]) == "2026-03-11"


# -- the outbox: exactly once, through failures ------------------------------------------------


def test_a_mail_server_that_is_down_for_a_while_gets_everything_once_when_it_is_back(
    database_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    clock = FixedClock(START)
    app = App(settings(database_url, tmp_path / "outbox", smtp_server.port, attempts=6), clock, create=True)
    for n in ("Ada Able", "Ben Brook"):
        open_case(app, n, parent_email=f"parent.{n.split()[0].lower()}@example.org")
    smtp_server.stop()
    clock.set(date(2026, 2, 2))  # the first reminders fall due; one family hears the council will assess
    app.cases.fire(1, "agree_to_assess", actor=CW)
    app.sweeper.sweep()
    first = app.dispatcher().dispatch()
    assert first.count("sent") == 0 and first.count("retry") == 2  # one family message, one reminder
    again = app.dispatcher().dispatch()  # the same moment: nothing is due for another try yet
    assert again.attempts == []
    smtp_server.start()
    clock.advance()  # the back-off has passed
    back = app.dispatcher().dispatch()
    assert back.count("sent") == 2
    assert app.dispatcher().dispatch().attempts == []
    assert sorted(str(r.message["To"]) for r in smtp_server.handler.received) == [
        "Case Worker <cw@example.org>",
        "Parent of Ada Able <parent.ada@example.org>",
    ]
    with app.engine.connect() as conn:
        statuses = conn.execute(
            text("SELECT status, attempts FROM outbox WHERE status NOT IN ('skipped', 'to_address')")
        ).fetchall()
    assert sorted(tuple(r) for r in statuses) == [("sent", 2)] * 2


def test_a_message_that_cannot_be_delivered_is_failed_after_the_last_attempt_and_the_team_manager_told(
    database_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    clock = FixedClock(START)
    app = App(settings(database_url, tmp_path / "outbox", smtp_server.port, attempts=3), clock, create=True)
    open_case(app, parent_email="nobody@example.org")
    app.cases.fire(1, "agree_to_assess", actor=CW)
    smtp_server.handler.refuse["nobody@example.org"] = "450 4.2.0 mailbox busy"
    for _ in range(3):
        app.dispatcher().dispatch()
        clock.advance()
    rows = json.loads(_cli(app, "outbox", "--json"))
    family = next(r for r in rows if r["kind"] == "step" and r["status"] not in ("skipped", "to_address"))
    assert (family["status"], family["attempts"]) == ("failed", 3)
    assert "450" in family["detail"] and "nobody@example.org" not in family["detail"]
    alert = next(r for r in rows if r["kind"] == "alert")
    assert alert["to"] == "tm@example.org" and alert["status"] == "sent"
    delivered = [r.message for r in smtp_server.handler.received]
    assert [str(m["To"]) for m in delivered] == ["Team Manager <tm@example.org>"]
    text_part = delivered[0].get_body(("plain",))
    assert text_part is not None and "could not be delivered after 3 attempts" in text_part.get_content()


def test_a_permanent_refusal_fails_at_once(database_url: str, tmp_path: Path, smtp_server: SmtpServer) -> None:
    clock = FixedClock(START)
    app = App(settings(database_url, tmp_path / "outbox", smtp_server.port, attempts=5), clock, create=True)
    open_case(app, parent_email="gone@example.org")
    app.cases.fire(1, "agree_to_assess", actor=CW)
    smtp_server.handler.refuse["gone@example.org"] = "550 5.1.1 <gone@example.org>: no such user"
    report = app.dispatcher().dispatch()
    assert [a.status for a in report.attempts] == ["failed", "sent"]  # the family's message, then the alert
    # The failure shows where people look, not only in the alert the relay might refuse too ...
    assert "1 message(s) could not be delivered" in _cli(app, "due", "--as-of", "2026-01-05")
    # ... and once the address is put right at the relay, it is sent again with the same Message-ID.
    del smtp_server.handler.refuse["gone@example.org"]
    assert "queued again: 1 message(s)" in _cli(app, "outbox", "retry", "--all")
    again = app.dispatcher().dispatch()
    assert [a.status for a in again.attempts] == ["sent"] and again.attempts[0].key == report.attempts[0].key
    assert "could not be delivered" not in _cli(app, "due", "--as-of", "2026-01-05")


class _CrashAfterSending:
    """A real SMTP transport, then the process 'dies' before the dispatcher can mark the message sent."""

    name = "smtp"

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def send(self, message: Any) -> str:
        self.inner.send(message)
        raise KeyboardInterrupt  # not an Exception: nothing in the dispatcher catches it


def test_a_crash_between_sending_and_marking_sent_repeats_that_one_message_after_the_lease(
    database_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    from engine.dispatch import make_transport

    clock = FixedClock(START)
    app = App(settings(database_url, tmp_path / "outbox", smtp_server.port), clock, create=True)
    open_case(app, parent_email="pat@example.org")
    app.cases.fire(1, "agree_to_assess", actor=CW)
    with pytest.raises(KeyboardInterrupt):
        app.dispatcher(_CrashAfterSending(make_transport(app.settings))).dispatch()
    assert len(smtp_server.handler.received) == 1
    # Within the lease, a new dispatcher leaves the message alone: it may still be on its way.
    assert app.dispatcher().dispatch().attempts == []
    assert [r["status"] for r in json.loads(_cli(app, "outbox", "--json")) if r["status"] == "sending"] == ["sending"]
    # After it, the message is sent again: the one repeat the design allows (same Message-ID).
    clock.advance()
    report = app.dispatcher().dispatch()
    assert report.recovered == 1 and report.count("sent") == 1
    ids = [str(r.message["Message-ID"]).strip() for r in smtp_server.handler.received]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert app.dispatcher().dispatch().attempts == []


def test_only_the_record_of_a_message_sent_skips_waiting_for_the_disk(database_url: str, tmp_path: Path) -> None:
    """On PostgreSQL the sent record's transaction alone commits without waiting for the disk (its loss
    in a server crash is the repeat above); every other transaction, the claim included, waits."""
    app = App(settings(database_url, tmp_path / "outbox"), FixedClock(START), create=True)
    open_case(app, parent_email="pat@example.org")
    app.cases.fire(1, "agree_to_assess", actor=CW)
    postgres = not database_url.startswith("sqlite")

    def durable(unit: Any) -> str | None:
        return str(unit.fetch("SHOW synchronous_commit", {})[0][0]) if postgres else None

    with app.store.unit() as unit:
        (claimed,) = unit.claim_due_messages(app.clock.now(), 1)
        assert durable(unit) in ("on", None)
    with app.store.unit() as unit:
        unit.mark_sent(claimed, app.clock.now(), "provider-1", "Subject", "Body")
        assert durable(unit) == ("off" if postgres else None)
    with app.store.unit() as unit:  # SET LOCAL: the next transaction on the same connection waits again
        assert durable(unit) in ("on", None)
        assert unit.fetch("SELECT status FROM outbox WHERE id = :i", {"i": claimed})[0][0] == "sent"


def _sweep_in_another_process(url: str, outbox: str, day: str, barrier: Any, out: Any) -> None:
    app = App(settings(url, Path(outbox), transport="folder", batch=7), FixedClock(date.fromisoformat(day)))
    barrier.wait()
    report = app.sweeper.sweep()
    out.put((len(report.messages), len(report.breaches)))
    app.engine.dispose()


def test_two_sweeps_in_parallel_processes_queue_each_message_once(database_url: str, tmp_path: Path) -> None:
    clock = FixedClock(START)
    app = App(settings(database_url, tmp_path / "outbox", transport="folder"), clock, create=True)
    for i in range(30):
        open_case(app, f"Child {i}")
    app.engine.dispose()
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=_sweep_in_another_process, args=(database_url, str(tmp_path / "outbox"), "2026-03-10", barrier, out)
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    results = [out.get(timeout=5) for _ in procs]
    # Per case: 2 stale reminders (skipped) + 2 escalations; one breach.
    assert sum(r[0] for r in results) == 30 * 4
    assert sum(r[1] for r in results) == 30
    rows = alerts_in_outbox(app)
    assert len(rows) == 30 * 4 and len({r[:4] + (r[4],) for r in rows}) == 30 * 4
    assert len(history_of(app, "deadline_breached")) == 30


def test_a_worker_leaves_the_sweep_to_the_one_sweeping_and_sends(database_url: str, tmp_path: Path) -> None:
    """Several scheduler processes share a database: one sweeps at a time; the others send."""
    from engine.scheduler import SchedulerLock, run_once
    from engine.sweep import describe

    clock = FixedClock(START)
    app = App(settings(database_url, tmp_path / "outbox", transport="folder"), clock, create=True)
    for i in range(3):
        open_case(app, f"Child {i}")
    clock.set(date(2026, 3, 10))
    other = App(app.settings, clock)
    sweeping = SchedulerLock(other, "sweep")
    assert sweeping.acquire()
    try:
        assert not SchedulerLock(app, "sweep").acquire()  # one at a time
        ticked = run_once(app, documents=False)
        assert ticked.swept.elsewhere and ticked.swept.examined == 0 and ticked.sent is not None
        assert alerts_in_outbox(app) == [] and history_of(app, "deadline_breached") == []
        assert list(describe(ticked.swept)) == ["not swept 2026-03-10: another process is sweeping this database now"]
    finally:
        sweeping.release()
    ticked = run_once(app, documents=False)  # its turn now
    assert not ticked.swept.elsewhere and len(ticked.swept.messages) == 3 * 4
    assert len(history_of(app, "deadline_breached")) == 3
    other.engine.dispose()
    app.engine.dispose()


# -- letters, digests, Notify and the command line ---------------------------------------------


def test_a_contact_without_an_email_address_gets_a_letter_to_print(database_url: str, tmp_path: Path) -> None:
    clock = FixedClock(START)
    app = App(settings(database_url, tmp_path / "outbox", transport="folder"), clock, create=True)
    other = app.cases.open_case(
        name="Eve Elm",
        date_of_birth=date(2017, 5, 2),
        workflow="needs_assessment",
        actor=CW,
        inputs={"request_received_on": clock.today()},
        contacts=[ContactRecord("parent", "Parent of Eve", None, address="7 Sample Lane\nDemotown\nDT3 4AA")],
        caseworker="cw",
    ).case_id
    app.cases.fire(
        other, "refuse_to_assess", actor=CW, inputs={"reasons": "Needs can be met from the school's resources."}
    )
    app.dispatcher().dispatch()
    # The letter that the assessment is being considered (reg 4(2)), then the decision.
    letters = sorted((tmp_path / "outbox" / "letters").glob("*.pdf"))
    assert [p.name.split(".")[2] for p in letters] == ["assessment_considered", "decision_not_to_assess"]
    reader = PdfReader(str(letters[1]))
    words = " ".join(page.extract_text() for page in reader.pages)
    assert "Parent of Eve" in words and "Eve Elm" in words and "7 Sample Lane" in words and "DT3 4AA" in words
    assert "appeal" in words and "Tribunal" in words
    # The appeal deadline the engine computed is in the letter: two months from the decision.
    assert "until Thursday 5 March 2026" in words and "by 5pm" in words
    # Titled with the message's subject, which a print queue shows: the case, never the child.
    assert reader.metadata is not None and str(reader.metadata.title).startswith("Case 1: a new letter")
    assert "Eve" not in str(reader.metadata.title)


def test_a_caseworker_who_asks_for_a_digest_gets_one_a_working_day_instead_of_single_reminders(
    database_url: str, tmp_path: Path
) -> None:
    staff = [
        *STAFF[:1],
        StaffMember(id="cw2", name="Dee Digest", email="cw2@example.org", role="caseworker", digest=True),
        *STAFF[2:],
    ]
    clock = FixedClock(START)
    app = App(settings(database_url, tmp_path / "outbox", transport="folder", staff=staff), clock, create=True)
    open_case(app, "Fay Fern", caseworker="cw2")
    open_case(app, "Gus Gale", caseworker="cw")
    kinds: Counter[tuple[str, str, str]] = Counter()
    while clock.today() <= date(2026, 2, 20):
        report = app.sweeper.sweep()
        app.sweeper.sweep()  # twice a day: still one digest
        for m in report.messages:
            kinds[(m.kind, m.to, m.status)] += 1
        clock.advance()
    # Reminders to the digest reader are kept as skipped; Gus's caseworker gets them singly.
    assert kinds[("reminder", "cw2@example.org", "skipped")] == 2
    assert kinds[("reminder", "cw@example.org", "queued")] == 2
    # Digests: working days on which Fay's deadline was within 14 days or overdue (2 Feb to 20 Feb).
    digest_days = [d for d in (date(2026, 2, 2) + timedelta(days=i) for i in range(19)) if d.weekday() < 5]
    assert kinds[("digest", "cw2@example.org", "queued")] == len(digest_days)
    with app.engine.connect() as conn:
        subject = conn.execute(text("SELECT subject FROM outbox WHERE key = 'digest:2026-02-17:cw2'")).scalar_one()
    assert subject == "Your SEND deadlines for Tuesday 17 February 2026: 1 overdue, 0 due soon"


def test_notify_is_used_when_configured_and_sends_what_the_template_says(
    database_url: str, tmp_path: Path, notify: tuple[NotifyStub, str]
) -> None:
    stub, url = notify
    clock = FixedClock(START)
    base = settings(database_url, tmp_path / "outbox", transport="notify")
    template_id = "f33517ff-2a88-4f6e-b855-c550268ce08a"
    n = base.notifications.model_copy(
        update={
            "notify": base.notifications.notify.model_copy(
                update={"api_key": stub.api_key, "base_url": url, "template_id": template_id}
            )
        }
    )
    app = App(base.model_copy(update={"notifications": n}), clock, create=True)
    open_case(app, "Hal Hart", parent_email="hal.parent@example.org")
    app.cases.fire(1, "agree_to_assess", actor=CW)
    report = app.dispatcher().dispatch()
    assert report.count("sent") == 1
    (request,) = stub.requests
    assert request["email_address"] == "hal.parent@example.org" and request["template_id"] == template_id
    # No name or decision where a shared mailbox shows it: the subject and the body's first lines.
    assert request["personalisation"]["subject"] == "Case 1: a new letter from the Demo County Council SEND service"
    body = request["personalisation"]["body"]
    assert body.startswith(
        "This message is from Demo County Council's SEND service about case 1. It says what has happened,"
    )
    assert "when you sign in at http://127.0.0.1:8080/portal\n" in body
    assert "Dear Parent of Hal Hart," in body
    assert "We have decided to carry out an education, health and care needs assessment for Hal Hart." in body
    assert "- Advice and information from each adviser: by Monday 16 February 2026" in body
    assert "contact Case Worker at cw@example.org" in body
    # The reference is the outbox key: it names the step and template, never the address.
    assert request["reference"].startswith("1:2:decision_to_assess:parent:")
    assert "hal.parent" not in request["reference"]


def _cli(app: App, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the command line against an App's settings (written to a config file)."""
    import yaml

    folder = Path(app.settings.notifications.outbox_dir).parent
    path = folder / "config.yaml"
    data = app.settings.model_dump(mode="json", exclude={"base_dir", "secrets_in_file"})
    data["accounts"] = {"*": "cw"}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(path), *args], env=env or {})
    assert result.exit_code == 0, result.output + str(result.exception)
    return result.output


def test_ehcp_tick_delivers_due_reminders_over_smtp_once_and_outbox_shows_each(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    url = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    clock = FixedClock(START)
    app = App(settings(url, tmp_path / "outbox", transport="folder"), clock, create=True)
    open_case(app, "Ida Isle")
    app.engine.dispose()
    env = {
        "EHCP_TRANSPORT": "smtp",
        "EHCP_SMTP_HOST": "127.0.0.1",
        "EHCP_SMTP_PORT": str(smtp_server.port),
        "EHCP_SMTP_TLS": "none",
    }
    out = _cli(app, "tick", "--as-of", "2026-02-02", env=env)
    assert "messages queued: 1" in out and "sent 1" in out
    (got,) = smtp_server.handler.received
    assert str(got.message["To"]) == "Case Worker <cw@example.org>"
    assert str(got.message["Subject"]) == (
        "Reminder: Decide whether to assess, and tell the family for case 1 is due Monday 16 February 2026"
    )
    again = _cli(app, "tick", "--as-of", "2026-02-02", env=env)
    assert "messages queued: 0" in again and "sent 0" in again
    assert len(smtp_server.handler.received) == 1
    rows = [r for r in json.loads(_cli(app, "outbox", "--json", env=env)) if r["kind"] != "step"]
    assert [(r["key"].split(":")[2:4], r["to"], r["status"]) for r in rows] == [
        (["reminder", "2w"], "cw@example.org", "sent")
    ]
    assert rows[0]["subject"].startswith("Reminder: Decide whether to assess")


def test_the_scheduler_runs_the_sweep_and_sends_at_once_then_every_interval(tmp_path: Path) -> None:
    import time

    from engine.scheduler import JOB_ID, scheduler_for

    url = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    clock = FixedClock(START)
    app = App(settings(url, tmp_path / "outbox", transport="folder"), clock, create=True)
    open_case(app, "Jo Jay")
    clock.set(date(2026, 2, 2))
    scheduler = scheduler_for(app, interval_minutes=5, background=True)
    job = scheduler.get_job(JOB_ID)
    assert job.trigger.interval == timedelta(minutes=5) and job.max_instances == 1 and job.coalesce
    scheduler.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not list((tmp_path / "outbox").glob("*.eml")):
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    assert [r[2:4] + (r[6],) for r in alerts_in_outbox(app)] == [("reminder", "2w", "sent")]
