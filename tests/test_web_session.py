"""The web application's session rules, in process with the engine's clock: signed out after the
configured idle time, cookies that scripts cannot read, the pages' security headers, and the
audit log refusing changes. (The browser tests in test_web.py cover the rest in Chromium.)"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pyotp
import pytest
from conftest import ROOT, STAFF
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from engine.app import App
from engine.clock import FixedClock
from engine.config import Settings, StaffMember, WebSettings
from engine.web.accounts import Accounts
from engine.web.views import create_app


def _web(tmp_path: Path, clock: FixedClock, staff: list[StaffMember] = STAFF, **web: Any) -> tuple[App, Any]:
    """The engine on a new SQLite file, and the web application over it for Flask's test client
    (plain http: no Secure cookies; no CSRF tokens, which the browser tests check)."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'web.sqlite'}",
        workflows_dir=str(ROOT / "workflows"),
        templates_dir=str(ROOT / "templates"),
        staff=staff,
        web=WebSettings(secure_cookies=False, **web),
    )
    core = App(settings, clock, create=True)
    flask = create_app(settings, clock, engine_app=core)
    flask.config["WTF_CSRF_ENABLED"] = False
    return core, flask.test_client()


def _password(core: App, staff_id: str) -> str:
    """A password for ``staff_id``; the authenticator secret that goes with it."""
    return Accounts(core.engine, core.directory, core.clock, core.settings.web).set_password(
        staff_id, "a long pass phrase"
    )


def test_a_session_idle_too_long_is_signed_out_and_pages_carry_their_security_headers(tmp_path: Path) -> None:
    clock = FixedClock(date(2025, 1, 6))
    core, client = _web(tmp_path, clock, idle_minutes=30)
    secret = _password(core, "cw")
    assert client.get("/cases").headers["Location"].endswith("/sign-in")
    signed = client.post("/sign-in", data={"login": "cw@example.org", "password": "a long pass phrase"})
    assert signed.headers["Location"].endswith("/sign-in/code")
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    done = client.post("/sign-in/code", data={"code": pyotp.TOTP(secret).at(clock.now())})
    assert done.headers["Location"].endswith("/")  # home: the cases (an administrator: the staff)
    page = client.get("/cases")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Frame-Options"] == "DENY"
    # The same code again is refused (a code works once).
    client.post("/sign-out")
    client.post("/sign-in", data={"login": "cw", "password": "a long pass phrase"})
    again = client.post("/sign-in/code", data={"code": pyotp.TOTP(secret).at(clock.now())})
    assert again.status_code == 400 and b"The code is not right" in again.data
    # A day without a request: signed out, and told why.
    clock.advance(1)
    client.post("/sign-in", data={"login": "cw", "password": "a long pass phrase"})
    client.post("/sign-in/code", data={"code": pyotp.TOTP(secret).at(clock.now())})
    assert client.get("/cases").status_code == 200
    clock.advance(1)
    timed_out = client.get("/cases")
    assert timed_out.headers["Location"].endswith("/sign-in?timed_out=1")
    assert b"signed out because you had not used the service" in client.get(timed_out.headers["Location"]).data
    with core.engine.begin() as conn:
        actions = [r[0] for r in conn.execute(text("SELECT action FROM audit_event ORDER BY id"))]
    assert actions[:3] == ["signed_in", "listed_cases", "signed_out"]
    with pytest.raises(DBAPIError, match="append-only"), core.engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET actor = 'someone else'"))


def test_the_production_server_runs_several_workers_of_the_wsgi_application(tmp_path: Path) -> None:
    """As the README deploys it: gunicorn with two workers over engine.web.wsgi, on one database."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    import yaml
    from servers import free_port

    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": f"sqlite:///{tmp_path / 'web.sqlite'}",
                "workflows_dir": str(ROOT / "workflows"),
                "staff": [s.model_dump() for s in STAFF],
            }
        )
    )
    made = App(Settings(database_url=f"sqlite:///{tmp_path / 'web.sqlite'}"), FixedClock(date(2025, 1, 6)), create=True)
    made.engine.dispose()  # the database, made as 'ehcp db init' makes it
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [str(gunicorn), "--workers", "2", "--bind", f"127.0.0.1:{port}", "engine.web.wsgi:application"],
        cwd=ROOT,
        env={**os.environ, "EHCP_CONFIG": str(config)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        pages = []
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/sign-in", timeout=2) as response:
                    pages.append(response.read().decode())
                if len(pages) == 4:
                    break
            except OSError:
                time.sleep(0.1)
        assert len(pages) == 4 and all("Sign in" in p for p in pages)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_one_process_runs_the_scheduler_for_a_database_however_many_serve_it(database_url: str) -> None:
    from engine.scheduler import SchedulerLock

    clock = FixedClock(date(2025, 1, 6))
    first = App(Settings(database_url=database_url), clock, create=True)
    second = App(Settings(database_url=database_url), clock)
    one, other = SchedulerLock(first), SchedulerLock(second)
    try:
        assert one.acquire()
        assert not other.acquire()  # this one only serves
        one.release()
        assert other.acquire()  # and takes over when the first stops
    finally:
        one.release()
        other.release()
        first.engine.dispose()
        second.engine.dispose()


def test_the_stylesheet_carries_the_councils_colour_and_font_from_its_configuration() -> None:
    """scripts/build-assets.sh builds them in; a changed config.yaml without a rebuild fails here."""
    from engine.config import load_settings

    web = load_settings(ROOT / "config.yaml").web
    css = (ROOT / "engine" / "web" / "static" / "app.css").read_text()
    assert web.brand_colour.lower() in css.lower()
    assert web.font.split(",")[0] in css and "GDS Transport" not in css


def test_a_message_that_could_not_be_delivered_is_on_the_managers_board(tmp_path: Path) -> None:
    """The failure alert does not depend on the failing transport alone: the board shows it."""
    from engine.actor import Actor
    from engine.store.repository import ContactRecord

    clock = FixedClock(date(2025, 1, 6))
    core, client = _web(tmp_path, clock, [STAFF[0].model_copy(update={"manager": "tm"}), STAFF[2]])  # cw in tm's team
    case_id = core.cases.open_case(
        name="Generated Child",
        date_of_birth=date(2015, 2, 3),
        workflow="needs_assessment",
        actor=Actor("cw", "caseworker"),
        inputs={"request_received_on": "2025-01-06", "requested_by": "parent"},
        contacts=[ContactRecord("parent", "Generated Parent", "parent@example.org")],
        caseworker="cw",
    ).case_id
    with core.engine.begin() as conn:
        conn.execute(text("UPDATE outbox SET status = 'failed', last_error = '550 mailbox unavailable' WHERE id = 1"))
    secret = _password(core, "tm")
    client.post("/sign-in", data={"login": "tm", "password": "a long pass phrase"})
    client.post("/sign-in/code", data={"code": pyotp.TOTP(secret).at(clock.now())})
    board = client.get("/team").data.decode()
    assert "1 message(s) could not be delivered" in board and f"Case {case_id}" in board
    assert "550 mailbox unavailable" in board


def test_failed_sign_ins_at_once_still_lock_the_account_and_a_code_works_once_however_it_is_sent(
    database_url: str,
) -> None:
    import threading

    clock = FixedClock(date(2025, 1, 6))
    settings = Settings(database_url=database_url, staff=STAFF, web=WebSettings(lockout_after=5))
    core = App(settings, clock, create=True)
    accounts = Accounts(core.engine, core.directory, clock, settings.web)
    secret = accounts.set_password("cw", "a long pass phrase")
    accounts.set_password("tm", "a long pass phrase")
    barrier = threading.Barrier(12)

    def guess() -> None:
        barrier.wait()
        accounts.check_password("tm", "a wrong guess")

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert accounts.states()["tm"]["locked"]  # no failure that raced the locking one unlocked it
    assert accounts.check_password("tm", "a long pass phrase").staff_id is None

    code = pyotp.TOTP(secret).at(clock.now())
    results: list[str | None] = []
    barrier = threading.Barrier(4)

    def use() -> None:
        barrier.wait()
        results.append(accounts.check_code("cw", code).staff_id)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("cw") == 1 and results.count(None) == 3
    core.engine.dispose()
