"""The staff web application in a real headless Chromium (Debian's, driven by Playwright through
``executable_path``) against a real server process (`ehcp serve`) on SQLite and PostgreSQL, with
axe-core checking every main page. Screenshots of the main pages go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import yaml
from conftest import ROOT
from servers import free_port

from engine.actor import Actor
from engine.app import App
from engine.clock import FixedClock, SystemClock
from engine.config import load_settings
from engine.store.repository import ContactRecord
from engine.web.accounts import Accounts

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "screenshots"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Two teams: Morgan's (Casey, Jo) and Lee's (Pat).
STAFF = [
    {"id": "casey.demo", "name": "Casey Demo", "email": "casey.demo@example.org", "role": "caseworker",
     "manager": "morgan.demo"},
    {"id": "jo.demo", "name": "Jo Demo", "email": "jo.demo@example.org", "role": "caseworker",
     "manager": "morgan.demo"},
    {"id": "morgan.demo", "name": "Morgan Demo", "email": "morgan.demo@example.org", "role": "team_manager"},
    {"id": "pat.other", "name": "Pat Other", "email": "pat.other@example.org", "role": "caseworker",
     "manager": "lee.other"},
    {"id": "lee.other", "name": "Lee Other", "email": "lee.other@example.org", "role": "team_manager"},
    {"id": "sam.demo", "name": "Sam Demo", "email": "sam.demo@example.org", "role": "auditor"},
    {"id": "alex.demo", "name": "Alex Demo", "email": "alex.demo@example.org", "role": "administrator"},
]  # fmt: skip
PASSWORD = "a long demo pass phrase"


@dataclass
class Site:
    url: str
    config: Path
    secrets: dict[str, str]
    ours: int  # a case of Casey's
    theirs: int  # a case of the other team's

    def code(self, staff_id: str) -> str:
        return pyotp.TOTP(self.secrets[staff_id]).now()


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError(f"ehcp serve stopped: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            with urllib.request.urlopen(url + "/sign-in", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("ehcp serve did not start")


@pytest.fixture
def site(database_url: str, tmp_path: Path) -> Iterator[Site]:
    yield from _site(database_url, tmp_path, free_port())


def _site(database_url: str, tmp_path: Path, port: int, oidc: dict[str, str] | None = None) -> Iterator[Site]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    data = {
        "database_url": database_url,
        "workflows_dir": str(ROOT / "workflows"),
        "templates_dir": str(ROOT / "templates"),
        "documents_dir": str(tmp_path / "documents"),
        "staff": STAFF,
        "accounts": {"*": "casey.demo"},
        "notifications": {"transport": "folder", "outbox_dir": str(tmp_path / "outbox")},
        "web": {"port": port, **({"oidc": oidc} if oidc else {})},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    settings = load_settings(config)
    app = App(settings, FixedClock(SystemClock().today() - timedelta(days=40)), create=True)
    accounts = Accounts(app.engine, app.directory, SystemClock(), settings.web)
    secrets = {s["id"]: accounts.set_password(s["id"], PASSWORD) for s in STAFF}

    def open_case(caseworker: str, name: str) -> int:
        return app.cases.open_case(
            name=name,
            date_of_birth=date(2015, 2, 3),
            workflow="needs_assessment",
            actor=Actor(caseworker, "caseworker"),
            inputs={
                "request_received_on": (SystemClock().today() - timedelta(days=40)).isoformat(),
                "requested_by": "parent",
            },
            contacts=[ContactRecord("parent", f"Parent of {name}", "parent@example.org")],
            caseworker=caseworker,
        ).case_id

    ours = open_case("casey.demo", "Generated <b>Child</b> O'Neill")
    theirs = open_case("pat.other", "Other Team Child")
    app.engine.dispose()
    # the test provider speaks http on loopback; a council's, https
    with serving(config, port, {"AUTHLIB_INSECURE_TRANSPORT": "1"} if oidc else {}) as url:
        yield Site(url, config, secrets, ours, theirs)


@contextmanager
def serving(config: Path, port: int, environ: dict[str, str] | None = None) -> Iterator[str]:
    """`ehcp serve` on ``config`` (no scheduler), in a process of its own; yields its address once it answers."""
    env = {**os.environ, "EHCP_CONFIG": str(config), **(environ or {})}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "ehcp"), "serve", "--port", str(port), "--no-scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def sign_in(page: Any, site: Site, staff_id: str, password: str = PASSWORD) -> None:
    page.goto(site.url + "/sign-in")
    page.get_by_label("Staff id or email address").fill(staff_id)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Security code").fill(site.code(staff_id))
    page.get_by_role("button", name="Sign in").click()


def accessible(page: Any, name: str) -> None:
    """axe-core finds no serious or critical problem on the page; a screenshot is kept."""
    from axe_playwright_python.sync_playwright import Axe

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    results = Axe().run(page, options={"runOnly": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]})
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in bad]


def test_a_caseworker_signs_in_with_a_code_and_takes_steps_through_the_forms(page: Any, site: Site) -> None:
    page.goto(site.url + "/cases")
    assert page.url.endswith("/sign-in")  # nothing without signing in
    accessible(page, "sign-in")
    page.get_by_label("Staff id or email address").fill("casey.demo")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    accessible(page, "sign-in-code")
    page.get_by_label("Security code").fill(site.code("casey.demo"))
    page.get_by_role("button", name="Sign in").click()

    # My cases: Casey's own, not the other team's; overdue first, each with its next limit.
    assert page.get_by_role("heading", name="My cases").is_visible()
    table = page.locator("table").inner_text()
    assert f"Case {site.ours}" in table and f"Case {site.theirs}" not in table
    assert "Generated <b>Child</b> O'Neill" in table  # shown as text, never as markup
    accessible(page, "my-cases")
    page.get_by_label("Stage").select_option("request_received")
    page.get_by_role("button", name="Filter cases").click()
    assert f"Case {site.ours}" in page.locator("table").inner_text() and "stage=request_received" in page.url

    page.get_by_role("link", name=f"Case {site.ours}").click()
    assert page.get_by_role("heading", name="Generated <b>Child</b> O'Neill").is_visible()
    main = page.locator("main").inner_text()
    assert "Next: Decide whether to assess, and tell the family" in main and "reg 5(1)" in main
    accessible(page, "case")

    # A step that asks for a date (the date advice was asked for, today when empty) and a note.
    page.get_by_role("link", name="Decide to carry out an EHC needs assessment").click()
    accessible(page, "step-form")
    page.get_by_label("Note for the record (optional)").fill("Panel agreed")
    page.get_by_role("button", name="Decide to carry out an EHC needs assessment").click()
    assert page.get_by_text("Decide to carry out an EHC needs assessment: done").is_visible()
    main = page.locator("main").inner_text()
    assert "Panel agreed" in main and "Agree to assess" in main

    # Errors the GOV.UK way: a summary linking to each field, the message on the field, nothing saved.
    page.get_by_role("link", name="Decide not to issue an EHC plan").click()
    page.locator("#on-day").fill("31")
    page.locator("#on-month").fill("2")
    page.locator("#on-year").fill("2025")
    page.get_by_role("button", name="Decide not to issue an EHC plan").click()
    summary = page.locator(".govuk-error-summary")
    assert summary.is_visible() and "There is a problem" in summary.inner_text()
    links = summary.locator("a")
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == ["#reasons", "#on-day"]
    assert "Enter the reasons for the decision" in page.locator("#reasons-error").inner_text()
    links.nth(1).click()  # the summary takes you to the field
    assert page.evaluate("document.activeElement.id") == "on-day"
    assert "real date" in page.locator("#on-error").inner_text()
    assert page.title().startswith("Error:")
    accessible(page, "step-form-with-errors")
    # The service's own refusal (a date after today) comes back on its field too.
    page.get_by_label(re.compile("reasons for the decision", re.I)).fill("Needs can be met from the school's resources")
    page.locator("#on-day").fill("1")
    page.locator("#on-month").fill("1")
    page.locator("#on-year").fill(str(SystemClock().today().year + 2))
    page.get_by_role("button", name="Decide not to issue an EHC plan").click()
    assert "after today" in page.locator("#on-error").inner_text()
    for part in ("day", "month", "year"):
        page.locator(f"#on-{part}").fill("")
    page.get_by_label("Note for the record (optional)").fill("x" * 10_000)  # over the limit: on its field
    page.get_by_role("button", name="Decide not to issue an EHC plan").click()
    assert "the limit is 2,000" in page.locator("#note-error").inner_text()
    assert "--note" not in page.locator(".govuk-error-summary").inner_text()

    page.get_by_role("link", name=f"Back to case {site.ours}").click()
    page.get_by_role("link", name="Record that the advice and information asked for has arrived").click()
    page.get_by_role("button", name="Record that the advice and information asked for has arrived").click()
    page.get_by_role("link", name="Decide that an EHC plan is needed").click()
    page.get_by_role("button", name="Decide that an EHC plan is needed").click()
    history = page.locator("table").filter(has_text="What happened").inner_text()
    assert "Agree to assess" in history and "Decide to issue" in history


def test_a_step_not_possible_now_says_why_and_what_is(page: Any, site: Site) -> None:
    sign_in(page, site, "casey.demo")
    page.goto(f"{site.url}/cases/{site.ours}")
    instance = page.locator("a[href*='/steps/']").first.get_attribute("href").split("/")[4]
    response = page.goto(f"{site.url}/cases/{site.ours}/workflows/{instance}/steps/issue_final_plan")
    assert response.status == 409
    text = page.locator("main").inner_text()
    assert "This step is not possible now" in text and "Steps you can take now" in text
    accessible(page, "refused-step")


def test_another_teams_case_is_not_found_exactly_as_a_case_that_does_not_exist(page: Any, site: Site) -> None:
    sign_in(page, site, "casey.demo")
    theirs = page.goto(f"{site.url}/cases/{site.theirs}")
    theirs_text = page.locator("main").inner_text()
    missing = page.goto(f"{site.url}/cases/999999")
    assert theirs.status == missing.status == 404
    assert theirs_text == page.locator("main").inner_text()
    accessible(page, "not-found")
    step = page.goto(f"{site.url}/cases/{site.theirs}/workflows/1/steps/agree_to_assess")
    assert step.status == 404


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(page: Any, site: Site) -> None:
    sign_in(page, site, "casey.demo")
    page.goto(f"{site.url}/cases/{site.ours}")
    link = page.locator("a[href*='/steps/agree_to_assess']").get_attribute("href")
    before = page.locator("main").inner_text()
    refused = page.request.post(site.url + link, form={"note": "forged"})
    assert refused.status == 400 and "The form had expired" in refused.text()
    page.goto(f"{site.url}/cases/{site.ours}")
    assert "forged" not in page.locator("main").inner_text() and page.locator("main").inner_text() == before


def test_sign_in_reveals_no_accounts_and_locks_after_repeated_failures(page: Any, site: Site) -> None:
    def attempt(login: str, password: str) -> str:
        page.goto(site.url + "/sign-in")
        page.get_by_label("Staff id or email address").fill(login)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Continue").click()
        return " ".join(page.locator("#login-error").inner_text().split())

    unknown = attempt("nobody.here", "whatever it is")
    wrong = attempt("jo.demo", "not the password")
    assert unknown == wrong  # the same answer whether or not the account exists
    for _ in range(4):
        attempt("jo.demo", "not the password")
    # Locked now: even the right password gets the same answer as a wrong one, or an unknown name.
    assert attempt("jo.demo", PASSWORD) == unknown == attempt("nobody.here", "whatever it is")

    # An administrator sees who is locked out, unlocks them, and sees no case content.
    sign_in(page, site, "alex.demo")
    assert page.get_by_role("heading", name="Staff and sign-in").is_visible()
    accessible(page, "admin-staff")
    row = page.locator("tr", has_text="jo.demo@example.org")
    assert "Locked" in row.inner_text()
    row.get_by_role("button", name="Unlock Jo Demo").click()
    assert "Active" in page.locator("tr", has_text="jo.demo@example.org").inner_text()
    assert page.goto(f"{site.url}/cases").status == 403
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, site, "jo.demo")
    assert "Signed in as Jo Demo" in page.locator("body").inner_text()


def test_a_signed_out_session_is_over_on_the_server_and_a_reset_sends_the_person_a_link(
    page: Any, site: Site, browser: Any
) -> None:
    sign_in(page, site, "jo.demo")
    copied = page.context.cookies()
    page.get_by_role("button", name="Sign out").click()
    thief = browser.new_context()
    thief.add_cookies(copied)  # the cookie as it was before signing out
    assert thief.new_page().goto(f"{site.url}/cases").url.endswith("/sign-in?timed_out=1")
    # A session in use when an administrator resets the account ends with the reset.
    sign_in(page, site, "casey.demo")
    admin = browser.new_context().new_page()
    sign_in(admin, site, "alex.demo")
    admin.locator("tr", has_text="casey.demo@example.org").get_by_role("button", name="Send a set-up link").click()
    banner = admin.locator(".govuk-notification-banner").inner_text()
    assert "a link to set up their sign-in was sent to c***@example.org" in banner
    assert PASSWORD not in admin.content() and "Set-up link sent" in admin.locator("main").inner_text()
    assert page.goto(f"{site.url}/cases").url.endswith("/sign-in?timed_out=1")
    # The link goes to the person's own address (the demo's transport writes it to a folder).
    app = App(load_settings(site.config), SystemClock())
    app.dispatcher().dispatch()
    app.engine.dispose()
    sent = [p.read_text() for p in (site.config.parent / "outbox").glob("*.eml")]
    mail = next(m for m in sent if "Set up your sign-in" in m)
    assert "casey.demo@example.org" in mail
    link = re.search(r"http://127\.0\.0\.1:\d+/sign-in/setup/\S+", mail.replace("=\n", ""))
    assert link is not None
    page.goto(link.group(0))
    accessible(page, "set-up-sign-in")
    page.get_by_label("New password", exact=True).fill("a brand new pass phrase")
    page.get_by_label("The new password again").fill("a brand new pass phrase")
    page.get_by_role("button", name="Continue").click()
    key = page.locator("#key").inner_text()
    assert page.goto(link.group(0)).status == 404  # the link works once
    site.secrets["casey.demo"] = key
    sign_in(page, site, "casey.demo", "a brand new pass phrase")
    assert "Signed in as Casey Demo" in page.locator("body").inner_text()


def test_the_auditor_reads_every_view_and_change_and_changes_nothing(page: Any, site: Site, browser: Any) -> None:
    sign_in(page, site, "casey.demo")
    page.goto(f"{site.url}/cases/{site.ours}")
    auditor = browser.new_context().new_page()
    sign_in(auditor, site, "sam.demo")
    auditor.goto(f"{site.url}/audit?case={site.ours}")
    log = auditor.locator("table").inner_text()
    assert "casey.demo" in log and "viewed case" in log
    accessible(auditor, "audit-log")
    auditor.goto(f"{site.url}/cases/{site.ours}")
    assert auditor.locator("a[href*='/steps/']").count() == 0  # reads, takes no step
    step = auditor.goto(f"{site.url}/cases/{site.ours}/workflows/1/steps/agree_to_assess")
    assert step.status == 403
    admin = browser.new_context().new_page()
    sign_in(admin, site, "alex.demo")
    assert admin.goto(f"{site.url}/cases/{site.ours}").status == 404  # no case content


def test_a_manager_sees_the_team_board_reassigns_a_case_and_corrects_a_mistaken_step(
    page: Any, site: Site, browser: Any
) -> None:
    caseworker = browser.new_context().new_page()
    sign_in(caseworker, site, "casey.demo")
    caseworker.goto(f"{site.url}/cases/{site.ours}")
    caseworker.get_by_role("link", name="Decide not to carry out an assessment").click()
    caseworker.get_by_label(re.compile("reasons", re.I)).fill("Recorded on the wrong case")
    caseworker.get_by_role("button", name="Decide not to carry out an assessment").click()

    sign_in(page, site, "morgan.demo")
    page.get_by_role("link", name="Team board").click()
    board = page.locator("main").inner_text()
    assert "Caseworkers' load" in board and "Casey Demo (casey.demo)" in board and "Pat Other" not in board
    accessible(page, "team-board")

    page.goto(f"{site.url}/cases/{site.ours}")
    page.get_by_role("link", name="Reassign the case").click()
    accessible(page, "reassign")
    page.get_by_role("button", name="Reassign the case").click()  # no reason: refused on its field
    assert "Enter why the case is moving" in page.locator("#reason-error").inner_text()
    page.get_by_label("Jo Demo (jo.demo)").check()
    page.get_by_label("Why is it moving?").fill("Casey is on leave")
    page.get_by_role("button", name="Reassign the case").click()
    assert page.get_by_text(f"Case {site.ours} is now jo.demo's").is_visible()

    page.get_by_role("link", name="Correct the last step, if it was a mistake").click()
    accessible(page, "correct-step")
    page.get_by_label("Why was the step a mistake?").fill("The panel has not met yet")
    page.get_by_role("button", name="Reverse the step").click()
    main = page.locator("main").inner_text()
    assert "The step was reversed" in main and "Correct: The panel has not met yet" in main
    assert "Reassign: Casey is on leave" in main
    assert "Decide to carry out an EHC needs assessment" in main  # the steps of the state it went back to


def test_the_api_answers_as_the_pages_do(page: Any, site: Site) -> None:
    assert page.request.get(f"{site.url}/api/cases").status == 401
    sign_in(page, site, "casey.demo")
    listed = page.request.get(f"{site.url}/api/cases").json()
    assert {r["id"] for r in listed} == {site.ours}
    assert page.request.get(f"{site.url}/api/cases/{site.ours}").json()["name"] == "Generated <b>Child</b> O'Neill"
    theirs = page.request.get(f"{site.url}/api/cases/{site.theirs}")
    missing = page.request.get(f"{site.url}/api/cases/999999")
    assert theirs.status == missing.status == 404 and theirs.json() == missing.json() == {"error": "not found"}


def test_a_caseworker_takes_a_case_from_request_to_final_plan_in_the_browser(page: Any, site: Site) -> None:
    plan = yaml.safe_load((ROOT / "docs" / "examples" / "plan.yaml").read_text())
    sign_in(page, site, "casey.demo")
    page.goto(f"{site.url}/cases/{site.ours}")

    def step(title: str, **fields: str) -> None:
        page.get_by_role("link", name=title, exact=True).click()
        for name, value in fields.items():  # by the input's name, as the workflow file declares it
            if value in ("yes", "no"):
                page.locator(f"input[name='{name}'][value='{value}']").check()
            else:
                page.locator(f"[name='{name}']").fill(value)
        page.get_by_role("button", name=title, exact=True).click()
        assert page.get_by_text(f"{title}: done").is_visible(), page.locator("main").inner_text()[:500]

    step("Decide to carry out an EHC needs assessment")
    # An exception to the 20 weeks, for a reason the regulations allow (reg 13(3)).
    page.get_by_role("link", name=re.compile("Record an exception to Issue the final EHC plan")).click()
    accessible(page, "exception")
    page.get_by_label(re.compile("exceptional personal circumstances", re.I)).check()
    page.get_by_label("What happened").fill("In hospital for five weeks")
    page.get_by_role("button", name="Record the exception").click()
    assert "Exception: personal circumstances: In hospital for five weeks" in page.locator("main").inner_text()
    step("Record that the advice and information asked for has arrived")
    step("Decide that an EHC plan is needed")

    # The plan, section by section, with the quality check beside it.
    page.get_by_role("link", name="The EHC plan, section by section").click()
    for section, text in plan.items():
        if not text:
            continue
        page.get_by_role("link", name=f"Change section {section}", exact=True).click()
        page.locator("#text").fill(text)
        page.get_by_role("button", name=f"Save section {section}").click()
        assert page.get_by_text(f"Section {section} saved in draft version 1").is_visible()
    accessible(page, "plan")
    assert "Speech and language therapy" in page.locator("#section-F").inner_text()
    page.get_by_role("link", name=f"Back to case {site.ours}").click()

    step("Send the draft plan to the family")
    step(
        "Consult the schools or colleges asked for, or that the council intends to name",
        institutions="Demo Primary School",
    )
    step("Issue the final EHC plan", named_institution="Demo Primary School", family_responded="yes")
    main = page.locator("main").inner_text()
    assert "Issue final plan" in main and "Annual review" in main  # the final plan starts its first review

    # The documents the steps queued, made by the worker, downloaded (never shown inline here).
    app = App(load_settings(site.config), SystemClock())
    assert app.documents.process_in_parallel(1) >= 2
    app.engine.dispose()
    page.reload()
    link = page.get_by_role("link", name=re.compile("Final plan .*PDF", re.I)).first
    download = page.request.get(site.url + link.get_attribute("href"))
    assert download.status == 200 and download.body()[:5] == b"%PDF-"
    assert download.headers["content-disposition"].startswith(f'attachment; filename="case-{site.ours}-final-plan')

    # The team manager's report counts it: issued within 20 weeks, with an exception on record.
    page.context.clear_cookies()
    sign_in(page, site, "morgan.demo")
    page.get_by_role("link", name="Reports").click()
    accessible(page, "reports")
    summary = page.locator(".govuk-summary-list").inner_text()
    assert re.search(r"Issued\s+1\b", summary) and "1 (100.0%)" in summary
    assert "0 of 0 (–); 1 with an exception left out" in summary
    charts = page.locator("svg[role='img']")
    assert charts.count() == 4 and "New plans within 20 weeks" in charts.nth(0).locator("title").text_content()
    month = SystemClock().today().strftime("%Y-%m")
    assert month in page.get_by_role("table", name="By month issued").inner_text()


@pytest.fixture
def council_sign_in(database_url: str, tmp_path: Path) -> Iterator[tuple[Site, Any]]:
    """The site, signing staff in through a real OpenID provider on loopback."""
    from oidc_provider import Client, Provider

    port, provider_port = free_port(), free_port()
    client = Client("ehcp-web", "a-client-secret", f"http://127.0.0.1:{port}/sign-in/council/return")
    provider = Provider(
        provider_port,
        client,
        {"jo.demo@example.org": "Jo Demo", "stranger@example.org": "A Stranger", "alex.demo": "Not An Address"},
    )
    provider.start()
    oidc = {"issuer": provider.issuer, "client_id": client.client_id, "client_secret": client.client_secret}
    try:
        for site_ in _site(database_url, tmp_path, port, oidc):
            yield site_, provider
    finally:
        provider.stop()


def test_staff_sign_in_through_the_councils_identity_provider(page: Any, council_sign_in: tuple[Site, Any]) -> None:
    site, provider = council_sign_in
    page.goto(site.url + "/sign-in")
    accessible(page, "sign-in-with-council-account")
    page.get_by_role("button", name="Sign in with your council account").click()
    assert page.url.startswith(provider.issuer + "/authorize")
    page.get_by_label("Work email").fill("jo.demo@example.org")
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/cases") and "Signed in as Jo Demo (caseworker)" in page.locator("body").inner_text()
    assert f"Case {site.ours}" in page.locator("table").inner_text()  # Jo is on Casey's team
    assert provider.codes == {}  # the code was used, once
    # Someone the provider knows but this service's staff list does not: no one is signed in.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in with your council account").click()
    page.get_by_label("Work email").fill("stranger@example.org")
    page.get_by_role("button", name="Sign in").click()
    assert "could not be signed in with your council account" in page.locator("#login-error").inner_text()
    assert page.goto(site.url + "/cases").url.endswith("/sign-in")
    # An email claim that is a staff id, not an address, names no one (the administrator here).
    page.get_by_role("button", name="Sign in with your council account").click()
    page.get_by_label("Work email").fill("alex.demo")
    page.get_by_role("button", name="Sign in").click()
    assert "could not be signed in" in page.locator("#login-error").inner_text()
    assert page.goto(site.url + "/cases").url.endswith("/sign-in")
    # A forged return (no state, no code) signs no one in.
    forged = page.goto(site.url + "/sign-in/council/return?code=made-up&state=made-up")
    assert forged.status == 403 and page.goto(site.url + "/cases").url.endswith("/sign-in")
