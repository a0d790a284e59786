"""The service on a real database (a SQLite file, and PostgreSQL): one transaction per step."""

from __future__ import annotations

import threading
import time
from datetime import date
from typing import Any

import pytest
from conftest import CW, CW2, HOS
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from engine.actor import Actor
from engine.app import App
from engine.clock import FixedClock
from engine.config import CaseworkSettings
from engine.definition.model import MessageAction
from engine.errors import ConflictError, InvalidInput, NotAuthorised, NotFound, TransitionRefused
from engine.store import queries
from engine.store.repository import ContactRecord

PARENT = ContactRecord("parent", "Parent One", "parent.one@example.org")
PARENT_NO_EMAIL = ContactRecord("parent", "Parent Two", None, address="1 Example Road\nDemotown\nDT1 1AA")


def open_simple(app: App, contacts: list[ContactRecord] | None = None) -> int:
    return app.cases.open_case(
        name="Test Child",
        date_of_birth=date(2015, 2, 3),
        workflow="simple",
        actor=CW,
        inputs={"received_on": "2025-01-06"},
        contacts=[PARENT] if contacts is None else contacts,
        caseworker="cw",
    ).case_id


def test_the_age_limit_is_that_on_the_day_the_case_opened(app: App, clock: FixedClock) -> None:
    """A case recorded late (``--on`` a past day) is checked as it stood that day: 24 then and older
    now is allowed, 26 then is not. (Checked against today, the record of a past case broke as the
    years passed.)"""
    clock.set(date(2027, 6, 1))

    def open_on(day: date, born: date) -> int:
        return app.cases.open_case(
            name="Test Young Person", date_of_birth=born, workflow="simple", actor=CW,
            inputs={"received_on": day.isoformat()}, caseworker="cw", on=day,
        ).case_id  # fmt: skip

    assert open_on(date(2025, 1, 6), date(2000, 6, 1)) > 0  # 24 on the day; 27 by "today"
    with pytest.raises(InvalidInput, match="more than 25 years ago"):
        open_on(date(2025, 1, 6), date(1998, 6, 1))  # 26 on the day
    with pytest.raises(InvalidInput, match="--on: 2025-01-06 is before the date of birth"):
        open_on(date(2025, 1, 6), date(2025, 3, 1))  # not born yet on the day


def table_counts(app: App) -> dict[str, int]:
    with app.engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("history", "deadline", "outbox", "document", "workflow_instance")
        }


def test_opening_a_case_records_history_and_deadlines(app: App) -> None:
    case_id = open_simple(app)
    view = queries.case_view(app.engine, case_id)
    assert view["state"] == "received" and view["workflow"] == "simple"
    assert [(h["trigger"], h["from"], h["to"], h["by"]) for h in view["history"]] == [("start", None, "received", "cw")]
    assert [(d["name"], d["due"], d["status"], d["regulation"]) for d in view["deadlines"]] == [
        ("start_within", "2025-02-17", "open", "Test reg 1")
    ]


def test_a_step_writes_state_history_deadlines_messages_and_documents(app: App, clock: FixedClock) -> None:
    case_id = open_simple(app)
    clock.set(date(2025, 1, 20))
    fired = app.cases.fire(case_id, "start_work", actor=CW, note="Panel agreed", inputs={"priority": "high"})
    assert fired.seq == 2
    view = queries.case_view(app.engine, case_id)
    assert view["state"] == "working"
    last = view["history"][-1]
    assert (last["trigger"], last["from"], last["to"], last["on"], last["note"]) == (
        "start_work",
        "received",
        "working",
        "2025-01-20",
        "Panel agreed",
    )
    assert last["inputs"] == {"priority": "high", "started_on": "2025-01-20"}
    deadlines = {d["name"]: d for d in view["deadlines"]}
    assert deadlines["start_within"]["status"] == "met" and deadlines["start_within"]["closed"] == "2025-01-20"
    assert deadlines["finish_within"]["due"] == "2025-03-20"
    # The message goes to the parent and the caseworker, each with its own key; the document is queued.
    assert sorted((m["template"], m["role"], m["to"], m["status"]) for m in view["outbox"]) == [
        ("started", "caseworker", "cw@example.org", "queued"),
        ("started", "parent", "parent.one@example.org", "queued"),
    ]
    assert [(d["kind"], d["status"]) for d in view["documents"]] == [("working_letter", "queued")]


def test_a_contact_without_email_gets_a_letter_and_no_recipient_is_recorded_as_skipped(
    app: App, clock: FixedClock
) -> None:
    case_id = open_simple(app, [PARENT_NO_EMAIL])
    app.cases.fire(case_id, "start_work", actor=CW)
    letters = queries.case_view(app.engine, case_id)["outbox"]
    assert ("parent", "Parent Two", "letter", "queued") in [
        (m["role"], m["to"], m["channel"], m["status"]) for m in letters
    ]
    # A letter is never queued without a postal address: it waits, and goes once one is added.
    nowhere = open_simple(app, [ContactRecord("parent", "Parent Three", None)])
    app.cases.fire(nowhere, "start_work", actor=CW)
    held = [m for m in queries.case_view(app.engine, nowhere)["outbox"] if m["role"] == "parent"]
    assert [(m["status"], "postal address" in (m["note"] or "")) for m in held] == [("to_address", True)]
    released = app.cases.add_contact(
        nowhere, ContactRecord("parent", "Parent Three", None, address="2 Example Road\nDemotown"), actor=CW
    )
    assert released == ["started"]
    held = [m for m in queries.case_view(app.engine, nowhere)["outbox"] if m["role"] == "parent"]
    assert {(m["status"], m["channel"]) for m in held} == {("queued", "letter")}
    assert len(queries.case_view(app.engine, nowhere)["contacts"]) == 1  # updated, not added twice
    # A case with no caseworker and no contacts: refused without a team inbox ...
    unallocated = {
        "name": "No Contacts",
        "date_of_birth": date(2015, 2, 3),
        "workflow": "simple",
        "actor": CW,
        "inputs": {"received_on": "2025-01-06"},
    }
    with pytest.raises(InvalidInput, match="team_inbox"):
        app.cases.open_case(**unallocated)  # type: ignore[arg-type]
    # ... and with one, its caseworker's messages go to the inbox; a message nobody can receive
    # (the parent's, with no contact) is kept as skipped with the reason.
    settings = app.settings.model_copy(update={"casework": CaseworkSettings(team_inbox="send-team@example.org")})
    team = App(settings, clock)
    other = team.cases.open_case(**unallocated).case_id  # type: ignore[arg-type]
    team.cases.fire(other, "start_work", actor=CW)
    rows = queries.case_view(app.engine, other)["outbox"]
    assert [(m["template"], m["role"], m["to"], m["status"]) for m in rows] == [
        ("started", "caseworker", "send-team@example.org", "queued")
    ]
    team.engine.dispose()
    none = app.cases._recipients([MessageAction(template="started", to=["caseworker"])], None, [])
    assert [(r.status, r.reason) for _, r in none] == [("skipped", "no recipient with the role caseworker")]


def test_a_limit_met_after_its_last_day_is_recorded_as_breached(app: App, clock: FixedClock) -> None:
    case_id = open_simple(app)
    clock.set(date(2025, 2, 18))  # the 6 weeks ended on 17 Feb 2025
    app.cases.fire(case_id, "start_work", actor=CW)
    d = {x["name"]: x for x in queries.case_view(app.engine, case_id)["deadlines"]}["start_within"]
    assert (d["status"], d["closed"]) == ("breached", "2025-02-18")


def test_a_refused_step_changes_nothing(app: App) -> None:
    case_id = open_simple(app)
    before = table_counts(app)
    with pytest.raises(TransitionRefused):
        app.cases.fire(case_id, "finish", actor=CW)
    with pytest.raises(TransitionRefused, match="you are auditor"):
        app.cases.fire(case_id, "start_work", actor=Actor("sam", "auditor"))
    with pytest.raises(NotFound):
        app.cases.fire(999, "start_work", actor=CW)
    assert table_counts(app) == before


def test_a_failure_half_way_through_a_step_leaves_the_case_exactly_as_it_was(app: App, clock: FixedClock) -> None:
    """Atomicity: the database itself fails on the outbox insert, after state, history and deadlines."""
    case_id = open_simple(app)
    before_view = queries.case_view(app.engine, case_id)
    before = table_counts(app)
    with app.engine.begin() as conn:
        if app.engine.dialect.name == "sqlite":
            conn.execute(
                text("CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END")
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION fail_outbox() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ "
                    "LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text("CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION fail_outbox()")
            )
    clock.set(date(2025, 1, 20))
    with pytest.raises(Exception, match="disk full"):
        app.cases.fire(case_id, "start_work", actor=CW)
    assert table_counts(app) == before
    assert queries.case_view(app.engine, case_id) == before_view
    with app.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER fail_outbox" + (" ON outbox" if app.engine.dialect.name != "sqlite" else "")))
    assert app.cases.fire(case_id, "start_work", actor=CW).outcome.to_state == "working"


def test_history_is_append_only_in_the_database(app: App) -> None:
    open_simple(app)
    for statement in ("UPDATE history SET note = 'changed'", "DELETE FROM history"):
        with pytest.raises(DBAPIError, match="append-only"):
            with app.engine.begin() as conn:
                conn.execute(text(statement))
    assert table_counts(app)["history"] == 1


def test_two_caseworkers_on_the_same_version_one_wins_the_other_gets_a_conflict(app: App) -> None:
    case_id = open_simple(app)
    version = queries.case_view(app.engine, case_id)["version"]
    barrier = threading.Barrier(2)
    results: list[object] = []

    def attempt(user: Actor, trigger: str) -> None:
        barrier.wait()
        try:
            results.append(app.cases.fire(case_id, trigger, actor=user, expected_version=version))
        except Exception as exc:  # collected and checked below
            results.append(exc)

    threads = [threading.Thread(target=attempt, args=a) for a in ((CW, "start_work"), (CW2, "drop"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [r for r in results if not isinstance(r, Exception)]
    losses = [r for r in results if isinstance(r, Exception)]
    assert len(wins) == 1 and len(losses) == 1
    assert isinstance(losses[0], ConflictError), losses[0]
    view = queries.case_view(app.engine, case_id)
    assert len(view["history"]) == 2 and view["version"] == version + 1


def test_a_write_after_someone_else_committed_is_a_conflict_and_writes_nothing(app: App) -> None:
    """The guarded UPDATE itself: a unit that read version 1 cannot write over version 2."""
    case_id = open_simple(app)
    store = app.cases.store
    machine = app.catalogue.machine("simple", 1)
    from engine.machine import Actor

    with store.unit() as unit:
        instance_id = unit.instances(case_id)[0][0]
        stale = unit.load(instance_id)
    app.cases.fire(case_id, "start_work", actor=CW)
    before = table_counts(app)
    outcome = machine.decide(stale.snapshot(), "drop", {}, Actor("cw2", "caseworker"), date(2025, 1, 6))
    with pytest.raises(ConflictError, match="changed by someone else"):
        with store.unit() as unit:
            unit.apply(stale, outcome, None, [], app.clock.now())
    assert table_counts(app) == before


def test_a_case_runs_through_the_whole_workflow_in_simulated_time(app: App, clock: FixedClock) -> None:
    case_id = open_simple(app)
    steps = [
        (date(2025, 1, 20), "start_work", "cw", {}),
        (date(2025, 2, 3), "send_proposal", "cw", {"served_on": "2025-02-03"}),
        (date(2025, 2, 5), "approve", "tm", {"reason": "Fine"}),
        (date(2025, 2, 18), "finish", "tm", {}),
    ]
    for day, trigger, user, inputs in steps:
        clock.set(day)
        app.cases.fire(case_id, trigger, actor=app.directory.actor(user), inputs=inputs)
    view = queries.case_view(app.engine, case_id)
    assert view["state"] == "done"
    assert [h["trigger"] for h in view["history"]] == ["start", "start_work", "send_proposal", "approve", "finish"]
    assert {d["name"]: d["status"] for d in view["deadlines"]} == {
        "start_within": "met",
        "finish_within": "met",
        "manager_target": "met",
        "family_period": "met",
    }
    with pytest.raises(TransitionRefused, match="the workflow has ended"):
        app.cases.fire(case_id, "drop", actor=CW)


def test_due_lists_open_deadlines_soonest_first(app: App, clock: FixedClock) -> None:
    first = open_simple(app)
    clock.set(date(2025, 1, 10))
    second = app.cases.open_case(
        name="Other Child",
        date_of_birth=date(2016, 5, 1),
        workflow="simple",
        actor=CW,
        inputs={"received_on": "2025-01-01"},
        caseworker="cw",
    ).case_id
    rows = queries.due(app.engine, date(2025, 2, 17))
    assert [(r["case_id"], r["due"], r["overdue"]) for r in rows] == [
        (second, "2025-02-12", True),
        (first, "2025-02-17", False),
    ]
    assert queries.due(app.engine, date(2025, 2, 11)) == []


def test_a_case_can_run_several_workflows_and_a_step_must_then_say_which(app: App, clock: FixedClock) -> None:
    case_id = open_simple(app)
    app.cases.start_workflow(case_id, "simple", actor=CW, inputs={"received_on": "2025-01-06"})
    with pytest.raises(InvalidInput, match="several open workflows"):
        app.cases.fire(case_id, "start_work", actor=CW)
    fired = app.cases.fire(case_id, "drop", actor=CW, workflow="simple")
    assert fired.outcome.to_state == "dropped"
    # With one workflow ended, the other is the open one again.
    assert app.cases.fire(case_id, "start_work", actor=CW).instance_id != fired.instance_id
    with pytest.raises(NotFound, match="no case 999"):
        app.cases.start_workflow(999, "simple", actor=CW)


def test_linked_workflows_signals_recounts_and_exceptions_on_each_database(shipped_app: App, clock: FixedClock) -> None:
    """A cease started by a review, its disagreement, a certificate that extends the appeal window
    in both, an appeal that pauses the cease, and an exception: every write path, on SQLite and
    PostgreSQL."""
    cases = shipped_app.cases
    clock.set(date(2025, 3, 10))
    opened = cases.open_case(
        name="Generated Person",
        date_of_birth=date(2005, 6, 1),
        workflow="annual_review",
        actor=CW,
        inputs={"period_starts_on": date(2025, 3, 10)},
        caseworker="cw",
    )
    case = opened.case_id
    for day, trigger, inputs in (
        (date(2026, 1, 5), "arrange_meeting", {"meeting_on": "2026-01-26"}),
        (date(2026, 1, 26), "hold_meeting", {}),
        (date(2026, 2, 16), "propose_to_cease", {"cease_reason": "no_longer_necessary"}),
        # 20 years old: the council had regard to the outcomes achieved (CFA 2014 s.45).
        (
            date(2026, 3, 2),
            "decide_to_cease",
            {"reasons": "Outcomes met", "consulted": "yes", "outcomes_considered": "yes"},
        ),
        (date(2026, 4, 1), "decline_mediation", {}),
    ):
        clock.set(day)
        cases.fire(case, trigger, actor=CW, inputs=inputs)
    clock.set(date(2026, 4, 6))
    fired = cases.fire(case, "issue_certificate", actor=CW)
    assert [(f.kind, f.workflow, f.detail) for f in fired.follow_ons] == [("signalled", "cease", "decided_to_cease")]
    clock.set(date(2026, 5, 1))
    cases.fire(case, "lodge_appeal", actor=CW)
    view = queries.case_view(shipped_app.engine, case)
    by = {(w["workflow"], w["state"]) for w in view["workflows"]}
    assert {("cease", "appeal_pending"), ("disagreement", "appeal_lodged")} <= by
    windows = sorted((d["workflow"], d["due"], d["status"]) for d in view["deadlines"] if d["name"] == "appeal_window")
    # The plan is kept while the disagreement's window runs: the cease has no window of its own.
    assert windows == [("disagreement", "2026-05-06", "met")]
    cease = next(w for w in view["workflows"] if w["workflow"] == "cease")
    dis = next(w for w in view["workflows"] if w["workflow"] == "disagreement")
    review = next(w for w in view["workflows"] if w["workflow"] == "annual_review")
    assert (cease["parent"], dis["parent"]) == (review["instance"], cease["instance"])
    assert cease["version"] == 4  # started, decided, then the certificate and the appeal signalled to it


def test_an_exception_keeps_the_due_date_and_is_in_the_history(shipped_app: App, clock: FixedClock) -> None:
    cases = shipped_app.cases
    opened = cases.open_case(
        name="Generated Child",
        date_of_birth=date(2016, 4, 1),
        workflow="needs_assessment",
        actor=CW,
        caseworker="cw",
    )
    clock.set(date(2025, 3, 3))
    cases.fire(opened.case_id, "agree_to_assess", actor=CW)
    excused = cases.record_exception(
        opened.case_id, "final_plan", "personal_circumstances", "Generated: the family was in hospital", actor=CW
    )
    assert (excused.due_on, excused.status, excused.seq) == (date(2025, 5, 26), "open", 3)
    view = queries.case_view(shipped_app.engine, opened.case_id)
    row = next(d for d in view["deadlines"] if d["name"] == "final_plan")
    assert (row["due"], row["status"], row["excused"]) == ("2025-05-26", "open", True)
    assert view["history"][-1]["trigger"] == "record_exception" and view["history"][-1]["on"] == "2025-03-03"
    with pytest.raises(NotAuthorised):
        cases.record_exception(opened.case_id, "advice", "missed_appointment", "x", actor=HOS)


def test_steps_beside_the_background_checkpointer(app: App, clock: FixedClock) -> None:
    from engine.store.database import Checkpointer

    busy = App(app.settings, clock, background_checkpoints=True, create=True)
    checkpointer = Checkpointer(busy.engine, interval=0.005).start()
    try:
        ids = [open_simple(busy) for _ in range(20)]
        clock.set(date(2025, 1, 20))
        for case_id in ids:
            busy.cases.fire(case_id, "start_work", actor=CW, inputs={"priority": "high"})
    finally:
        checkpointer.stop()
    assert table_counts(busy)["history"] == 40
    if busy.engine.dialect.name == "sqlite":
        raw = busy.engine.raw_connection()
        try:
            cur = raw.cursor()
            # Request connections leave the log to the checkpointer (a backstop at ~400 MB).
            assert (
                cur.execute("PRAGMA wal_autocheckpoint").fetchone()[0] * cur.execute("PRAGMA page_size").fetchone()[0]
                == 400 * 2**20
            )
            log, done = Checkpointer.checkpoint(cur)
            assert log == done  # everything copied back
        finally:
            raw.close()
    busy.engine.dispose()


def test_the_sweep_holds_the_checkpointer_off(app: App, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep writes in many batches: the log is not copied back under it (that made it three times
    slower), and is again as soon as it ends."""
    from engine import scheduler
    from engine.store.database import Checkpointer

    busy = App(app.settings, clock, background_checkpoints=True, create=True)
    open_simple(busy)
    if busy.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no log for the process to copy back")
    checkpointer = Checkpointer(busy.engine, interval=0.002).start()
    seen: list[int] = []
    real = type(busy.sweeper).sweep

    def slow_sweep(self: Any, as_of: date | None = None, **kwargs: Any) -> Any:
        seen.append(checkpointer.checkpoints)
        time.sleep(0.2)  # a hundred intervals
        seen.append(checkpointer.checkpoints)
        return real(self, as_of, **kwargs)

    monkeypatch.setattr(type(busy.sweeper), "sweep", slow_sweep)
    try:
        scheduler.run_once(busy, send=False, documents=False)
        deadline = time.monotonic() + 5
        while checkpointer.checkpoints <= seen[1] and time.monotonic() < deadline:
            time.sleep(0.01)
        after = checkpointer.checkpoints
    finally:
        checkpointer.stop()
        busy.engine.dispose()
    assert seen[1] - seen[0] <= 1  # one begun before the sweep may end during it; no other
    assert after > seen[1]  # and they go on after it
