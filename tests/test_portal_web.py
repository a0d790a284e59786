# ruff: noqa: F811 - the browser and page fixtures come from test_web
"""The online service in a real headless Chromium against `ehcp serve`, on SQLite and PostgreSQL, with
its email through a real SMTP server on loopback: a parent signs in by link and code, sees only their
case, gives views for section A and comments on the draft within the 15 days; an educational
psychologist answers an advice request and the limit is met; another family reaches nothing of
theirs; used and old links are refused; a file that is not what its name says is refused; axe-core
checks every page; and no email's subject or preview names the child or says what was decided.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from servers import SmtpServer, free_port
from test_uploads import PDF, png
from test_web import CHROMIUM, PASSWORD, STAFF, accessible, browser, page, serving  # noqa: F401 - fixtures

from engine.actor import Actor
from engine.app import App
from engine.clock import FixedClock, SystemClock
from engine.config import load_settings
from engine.demo import generated_plan
from engine.portal import Portal
from engine.store.repository import ContactRecord
from engine.web.accounts import Accounts

CW = Actor("casey.demo", "caseworker")
NAMES = ("Ada Quillfeather", "Bea Marchbanks", "Cai Tollemache")  # the children: never in a subject or preview


@dataclass
class Site:
    url: str
    smtp: SmtpServer
    config: Path
    cases: dict[str, int]
    staff_secret: str = ""

    def mail_to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.smtp.handler.received if address in r.rcpt_tos]

    def last_to(self, address: str) -> EmailMessage:
        found = self.mail_to(address)
        assert found, f"nothing was sent to {address}"
        return found[-1]

    def text(self, message: EmailMessage) -> str:
        part = message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())

    def link(self, address: str) -> str:
        """The link in the newest email to ``address`` that holds one."""
        for message in reversed(self.mail_to(address)):
            found = re.search(r"https?://\S+/portal/link/[A-Za-z0-9_-]+", self.text(message))
            if found:
                return found.group(0)
        raise AssertionError(f"no link was sent to {address}")

    def code(self, address: str, after: int = 0) -> str:
        """The code in the first email to ``address`` after its first ``after`` that holds one; the
        service sends it off the request, so it may take a moment to arrive."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for message in self.mail_to(address)[after:]:
                found = re.search(r"\b(\d{6})\b", self.text(message))
                if found:
                    return found.group(1)
            time.sleep(0.05)
        raise AssertionError(f"no code was sent to {address}")


@pytest.fixture
def site(database_url: str, tmp_path: Path) -> Iterator[Site]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    smtp = SmtpServer()
    smtp.start()
    port = free_port()
    data = {
        "database_url": database_url,
        "workflows_dir": str(ROOT / "workflows"),
        "templates_dir": str(ROOT / "templates"),
        "documents_dir": str(tmp_path / "documents"),
        "staff": STAFF,
        "accounts": {"*": "casey.demo"},
        "notifications": {"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": smtp.port, "tls": "none"}},
        "web": {"port": port},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    settings = load_settings(config)
    today = SystemClock().today()
    app = App(settings, FixedClock(today - timedelta(days=30)), create=True)
    clock = app.clock
    assert isinstance(clock, FixedClock)

    def open_case(name: str, family: str) -> int:
        return app.cases.open_case(
            name=name,
            date_of_birth=date(today.year - 8, 2, 3),
            workflow="needs_assessment",
            actor=CW,
            inputs={"request_received_on": clock.today(), "requested_by": "parent"},
            contacts=[
                ContactRecord("parent", f"Parent {family}", f"parent.{family}@example.org"),
                ContactRecord("educational_psychologist", "Demo EP service", f"ep.{family}@example.org"),
            ],
            caseworker="casey.demo",
        ).case_id

    cases = {"a": open_case(NAMES[0], "a"), "b": open_case(NAMES[1], "b"), "c": open_case(NAMES[2], "c")}
    cases["d"] = open_case("Dot Fenwick-Ashby", "d")  # being assessed: the caseworker asks for advice in the browser
    app.cases.add_contact(cases["d"], ContactRecord("health", "Demo ICB", None, address="1 Demo Street"), actor=CW)
    portal = Portal(app)
    for family in ("a", "b"):  # assessed, a plan decided, the draft sent three days ago
        case_id = cases[family]
        clock.set(today - timedelta(days=20))
        app.cases.fire(case_id, "agree_to_assess", actor=CW)
        app.cases.fire(case_id, "decide_to_issue", actor=CW)
        app.plans.edit(case_id, generated_plan(__import__("random").Random(2), "Ada"), actor=CW)
        clock.set(today - timedelta(days=3))
        app.cases.fire(case_id, "issue_draft_plan", actor=CW)
    clock.set(today - timedelta(days=7))
    app.cases.fire(cases["c"], "agree_to_assess", actor=CW)
    app.cases.fire(cases["d"], "agree_to_assess", actor=CW)
    clock.set(today)
    app.documents.process()  # the draft plans and letters, as PDFs
    with app.store.unit() as unit:
        ids = {f: int(unit.fetch("SELECT id FROM contact WHERE case_id = :c AND role = :r",
                                 {"c": cases[f], "r": "parent"})[0][0]) for f in ("a", "b")}  # fmt: skip
        ep = int(unit.fetch("SELECT id FROM contact WHERE case_id = :c AND role = 'educational_psychologist'",
                            {"c": cases["c"]})[0][0])  # fmt: skip
    for family in ("a", "b"):
        portal.invite(cases[family], ids[family], actor=CW)
    portal.request_advice(cases["c"], ep, actor=CW, requested_on=today - timedelta(days=7))
    app.dispatcher().dispatch()  # the invitations, through the SMTP server
    secret = Accounts(app.engine, app.directory, SystemClock(), settings.web).set_password("casey.demo", PASSWORD)
    app.engine.dispose()
    try:
        with serving(config, port) as url:
            yield Site(url, smtp, config, cases, secret)
    finally:
        smtp.stop()


def sign_in_by_link(page: Any, site: Site, address: str, link: str | None = None, check: bool = False) -> None:
    page.goto(link or site.link(address))
    if check:
        accessible(page, "portal-link")
    before = len(site.mail_to(address))
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Check your email for a code").wait_for()  # raises unless it shows
    if check:
        accessible(page, "portal-code")
    page.get_by_label("Code").fill(site.code(address, before))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your page").wait_for()  # raises unless it shows


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z'’-]*", text)


def syllables(word: str) -> int:
    word = word.lower().strip("'’-")
    groups = re.findall(r"[aeiouy]+", word)
    count = len(groups) - (1 if word.endswith("e") and not word.endswith(("le", "ee")) and len(groups) > 1 else 0)
    return max(1, count)


def reading_grade(text: str) -> float:
    """The Flesch-Kincaid grade of a text: US school grade; add 5 for a reading age in years."""
    sentences = max(1, len(re.findall(r"[.!?:](\s|$)", text)) + text.count("\n- "))
    found = words(text)
    return 0.39 * len(found) / sentences + 11.8 * sum(syllables(w) for w in found) / len(found) - 15.59


def test_a_parent_signs_in_sees_their_case_and_sends_views_and_comments(page: Any, site: Site) -> None:
    page.goto(site.url + "/portal/home")
    assert page.url.startswith(site.url + "/portal?") or page.url.endswith("/portal")  # nothing without signing in
    accessible(page, "portal-sign-in")
    first_link = site.link("parent.a@example.org")
    sign_in_by_link(page, site, "parent.a@example.org", first_link, check=True)
    accessible(page, "portal-home")
    home = page.locator("main").inner_text()
    assert NAMES[0] in home and NAMES[1] not in home and NAMES[2] not in home

    page.get_by_role("link", name=NAMES[0]).click()
    accessible(page, "portal-case")
    main = page.locator("main").inner_text()
    assert "Where things are now" in main and "What we must do, and by when" in main
    last_day = SystemClock().today() - timedelta(days=3) + timedelta(days=14)
    assert f"{last_day.day} {last_day:%B %Y}" in main, "the last day to comment on the draft"
    assert "Casey Demo" in main and "casey.demo@example.org" in main, "who their caseworker is"
    assert "Draft EHC plan (PDF)" in main
    prose = "\n".join(p for p in page.locator("main p, main li").all_inner_texts() if "The law:" not in p)
    grade = reading_grade(re.sub(r"The law: [^.]*\.", "", prose))
    assert grade <= 9.0, f"the family's page reads at grade {grade:.1f}"  # a reading age of about 14
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Draft EHC plan")).click()
    assert download.value.suggested_filename.startswith(f"case-{site.cases['a']}-")

    # Views for section A, with a drawing.
    page.get_by_role("link", name=re.compile("Tell us about your child")).click()
    accessible(page, "portal-views")
    page.get_by_label("What people like and admire about your child").fill("Kind, funny, loves trains.")
    page.get_by_label("Your child’s own words").fill("I like the red trains best.")
    page.locator("#files").set_input_files([{"name": "drawing.png", "mimeType": "image/png", "buffer": png()}])
    page.get_by_role("button", name="Send").click()
    page.get_by_role("heading", name="Sent").wait_for()  # raises unless it shows
    accessible(page, "portal-sent")
    page.get_by_role("link", name="Back to the case").click()

    # A file that is not what its name says is refused, on its field, and nothing is kept.
    page.get_by_role("link", name=re.compile("Comment on the draft plan")).click()
    accessible(page, "portal-comments")
    page.get_by_label("Your comments on the draft plan").fill("Section F needs weekly speech therapy.")
    page.locator("#files").set_input_files([{"name": "report.pdf", "mimeType": "application/pdf", "buffer": png()}])
    page.get_by_role("button", name="Send my comments").click()
    assert "not a PDF" in page.locator("#files-error").inner_text()
    assert page.title().startswith("Error:")
    accessible(page, "portal-comments-error")

    # Comments, the school asked for and a meeting, within the 15 days.
    page.get_by_label("Your comments on the draft plan").fill("Section F needs weekly speech therapy.")
    page.get_by_label("The school or college you want us to name (optional)").fill("Demo Academy")
    page.get_by_label(re.compile("I would like a meeting")).check()
    page.locator("#files").set_input_files([{"name": "letter.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    page.get_by_role("button", name="Send my comments").click()
    panel = page.locator(".govuk-panel").inner_text()
    today = SystemClock().today()
    assert "Comments on the draft plan" in panel and f"{today.day} {today:%B %Y}" in panel
    assert "This was on time" in page.locator("main").inner_text()

    # The caseworker sees them, with the day they arrived, on the case's record.
    app = App(load_settings(site.config), FixedClock(today))
    try:
        sent = Portal(app).for_case(site.cases["a"])["sent"]
        assert [s["kind"] for s in sent] == ["Comments on the draft plan", "Views for section A of the plan"]
        assert ("The school or college asked for", "Demo Academy") in sent[0]["answers"]
        assert sent[0]["received_on"] == today and not sent[0]["late"]
        assert sent[1]["files"][0]["name"] == "drawing.png"
        with app.store.unit() as unit:
            triggers = [r[0] for r in unit.fetch(
                "SELECT trigger FROM history WHERE case_id = :c ORDER BY id", {"c": site.cases["a"]})]  # fmt: skip
        assert triggers[-2:] == ["views_received_online", "comments_received_online"]
    finally:
        app.engine.dispose()

    # The first link, used, signs no one in again.
    page.context.clear_cookies()
    page.goto(first_link)
    page.get_by_role("heading", name="This link cannot be used").wait_for()  # raises unless it shows
    accessible(page, "portal-dead-link")


def test_another_family_reaches_nothing_of_the_first(page: Any, site: Site) -> None:
    # Family A signs in and sends a file; the addresses of their pages are noted.
    sign_in_by_link(page, site, "parent.a@example.org")
    page.get_by_role("link", name=NAMES[0]).click()
    case_url = page.url
    document_url = page.get_by_role("link", name=re.compile("Draft EHC plan")).get_attribute("href")
    page.get_by_role("link", name=re.compile("Tell us about your child")).click()
    views_url = page.url
    page.locator("#files").set_input_files([{"name": "drawing.png", "mimeType": "image/png", "buffer": png()}])
    page.get_by_role("button", name="Send").click()
    app = App(load_settings(site.config), FixedClock(SystemClock().today()))
    try:
        file_id = Portal(app).for_case(site.cases["a"])["sent"][0]["files"][0]["id"]
    finally:
        app.engine.dispose()
    public_id = case_url.rsplit("/", 1)[1]
    own = page.request.get(f"{case_url}/files/{file_id}")  # their own file: a download, sandboxed
    assert own.status == 200 and own.body() == png()
    assert own.headers["content-disposition"].startswith("attachment;")
    assert own.headers["content-security-policy"].startswith("sandbox")
    app = App(load_settings(site.config), FixedClock(SystemClock().today()))
    try:  # the psychologist's request on case c: another person's, so not b's either
        request_id = Portal(app).advice_requests(site.cases["c"])[0]["id"]
    finally:
        app.engine.dispose()
    a_link = site.link("parent.a@example.org")  # a's invitation, already used above
    page.context.clear_cookies()

    # Family B, signed in, asks for each of them: every answer is "Page not found".
    sign_in_by_link(page, site, "parent.b@example.org")
    assert NAMES[0] not in page.locator("main").inner_text()
    for url in (case_url, site.url + str(document_url), views_url, f"{case_url}/files/{file_id}",
                f"{site.url}/portal/cases/{public_id}/comments", f"{site.url}/portal/advice/{request_id}",
                f"{site.url}/portal/advice/{request_id}/letter.pdf"):  # fmt: skip
        response = page.goto(url)
        assert response.status == 404, url
        page.get_by_role("heading", name="Page not found").wait_for()  # raises unless it shows
        assert NAMES[0] not in page.content()
    # The staff API and pages are not theirs either: a family's sign-in is no staff sign-in.
    response = page.goto(f"{site.url}/api/cases/{site.cases['a']}")
    assert response.status == 401
    page.goto(f"{site.url}/cases/{site.cases['a']}")
    assert page.url.endswith("/sign-in")
    # Nobody sends a big body to a page that takes no files (nor to any page before signing in).
    import urllib.error
    import urllib.request

    big = urllib.request.Request(f"{site.url}/portal/code", data=b"x" * 2_000_000, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(big, timeout=10)
    assert refused.value.code == 413
    # A link already used (a's) signs no one in, whoever has it.
    page.goto(a_link)
    page.get_by_role("heading", name="This link cannot be used").wait_for()  # raises unless it shows
    accessible(page, "portal-not-found")


def test_an_old_link_is_refused_and_a_new_one_can_be_asked_for(page: Any, site: Site) -> None:
    link = site.link("parent.b@example.org")
    app = App(load_settings(site.config), FixedClock(SystemClock().today()))
    try:  # the invitation's days have passed: a minute ago by the server's clock (a FixedClock's now is noon)
        with app.store.unit() as unit:
            unit.execute("UPDATE portal_link SET expires_at = :x", {"x": SystemClock().now() - timedelta(minutes=1)})
    finally:
        app.engine.dispose()
    page.goto(link)
    page.get_by_role("heading", name="This link cannot be used").wait_for()  # raises unless it shows
    page.get_by_role("link", name="Ask for a new link").click()
    before = len(site.mail_to("nobody@example.org"))
    page.get_by_label("Email address").fill("nobody@example.org")
    page.get_by_role("button", name="Send me a link").click()
    unknown = page.locator("main").inner_text()
    assert len(site.mail_to("nobody@example.org")) == before, "no mail to an address with no access"
    page.goto(site.url + "/portal")
    sent_before = len(site.mail_to("parent.b@example.org"))
    page.get_by_label("Email address").fill("parent.b@example.org")
    page.get_by_role("button", name="Send me a link").click()
    assert page.locator("main").inner_text() == unknown, "the same answer whether or not the address is known"
    accessible(page, "portal-check-email")
    for _ in range(300):  # sent off the request: it arrives a moment later
        if len(site.mail_to("parent.b@example.org")) > sent_before:
            break
        time.sleep(0.05)
    new_link = site.link("parent.b@example.org")
    assert new_link != link
    sign_in_by_link(page, site, "parent.b@example.org", new_link)
    assert NAMES[1] in page.locator("main").inner_text()


def test_an_educational_psychologist_answers_and_the_limit_is_met(page: Any, site: Site) -> None:
    message = site.last_to("ep.c@example.org")
    assert "Cai" not in str(message["Subject"])
    sign_in_by_link(page, site, "ep.c@example.org")
    page.get_by_role("link", name=NAMES[2]).click()
    accessible(page, "portal-advice")
    main = page.locator("main").inner_text()
    due = SystemClock().today() - timedelta(days=7) + timedelta(weeks=6)
    assert f"{due.day} {due:%B %Y}" in main and "regulation 8" in main
    letter = page.request.get(page.url + "/letter.pdf")  # the letter asking a psychologist for advice
    assert letter.status == 200 and letter.body().startswith(b"%PDF")
    page.get_by_label("Your advice and information").fill("Needs a quiet space and visual timetables.")
    page.locator("#files").set_input_files([{"name": "ep-report.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    page.get_by_role("button", name="Send advice").click()
    page.get_by_role("heading", name="Sent").wait_for()  # raises unless it shows
    assert "This was on time" in page.locator("main").inner_text()
    page.get_by_role("link", name="Back to your page").click()
    assert "There is nothing for you here now" in page.locator("main").inner_text(), "access ends with the request"
    app = App(load_settings(site.config), FixedClock(SystemClock().today()))
    try:
        with app.store.unit() as unit:
            state = unit.fetch("SELECT state FROM workflow_instance WHERE case_id = :c", {"c": site.cases["c"]})[0][0]
            status, closed = unit.fetch(
                "SELECT status, closed_on FROM deadline WHERE case_id = :c AND name = 'advice'", {"c": site.cases["c"]}
            )[0]
    finally:
        app.engine.dispose()
    assert state == "advice_received"
    assert status == "met" and str(closed)[:10] == SystemClock().today().isoformat()


def test_no_email_names_the_child_or_says_what_was_decided(page: Any, site: Site) -> None:
    sign_in_by_link(page, site, "parent.a@example.org")  # an invitation, a code; more by the sweep below
    app = App(load_settings(site.config), FixedClock(SystemClock().today()))
    try:
        app.cases.fire(site.cases["c"], "decide_to_issue", actor=CW)  # a decision, to the family
        app.dispatcher().dispatch()
    finally:
        app.engine.dispose()
    received = site.smtp.handler.received
    assert len(received) >= 5
    decisions = re.compile(r"\b(decid|refus|not to|will not|assess|issue|tribunal|mediation|cease|autis|adhd)", re.I)
    for r in received:
        subject = str(r.message["Subject"])
        preview = " ".join(site.text(r.message).split())[:150]
        for name in NAMES:
            for part in name.split():
                assert part not in subject and part not in preview, (subject, preview)
        assert not decisions.search(subject), subject
        assert not decisions.search(preview), preview


def test_a_caseworker_asks_advisers_at_once_and_sees_what_is_missing(page: Any, site: Site) -> None:
    import pyotp

    page.goto(site.url + "/sign-in")
    page.get_by_label("Staff id or email address").fill("casey.demo")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Security code").fill(pyotp.TOTP(site.staff_secret).now())
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{site.url}/cases/{site.cases['d']}")
    page.get_by_role("link", name="Ask an adviser for advice").click()
    accessible(page, "staff-ask-advice")
    page.get_by_label(re.compile("Demo EP service")).check()
    page.get_by_label(re.compile("Demo ICB")).check()
    page.get_by_role("button", name="Ask for advice").click()
    due = SystemClock().today() + timedelta(weeks=6)
    page.get_by_text(f"Advice asked of 2: due by {due:%A} {due.day} {due:%B %Y}").wait_for()  # raises unless it shows
    table = page.get_by_role("table", name=re.compile("Advice asked for")).inner_text()
    assert table.count("Missing") == 2 and "by post or email" in table
    accessible(page, "staff-case-online")
    page.get_by_role("button", name="Record it arrived today from Demo ICB").click()
    table = page.get_by_role("table", name=re.compile("Advice asked for")).inner_text()
    assert table.count("Missing") == 1
    app = App(load_settings(site.config), FixedClock(SystemClock().today()))
    try:  # the psychologist's invitation is queued for the sweep (the server here runs none): it holds a link
        with app.store.unit() as unit:
            [(body,)] = unit.fetch(
                "SELECT body FROM outbox WHERE template = 'portal_advice_request' AND recipient_email = :e",
                {"e": "ep.d@example.org"},
            )
    finally:
        app.engine.dispose()
    assert "/portal/link/" in body
