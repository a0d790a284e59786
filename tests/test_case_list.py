"""The staff case list over more cases than fit a page, through the web application (Flask's test
client, signed in through the sign-in forms), on SQLite and PostgreSQL: the database chooses, orders
and counts the rows, and what it lists is exactly what ``access.may_see`` lets each person see, page
after page; filters and pages go together; a search by name knows more than ASCII."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from conftest import ROOT
from sqlalchemy import text

from engine.app import App
from engine.clock import FixedClock
from engine.config import Settings, StaffMember
from engine.web.access import may_see
from engine.web.accounts import Accounts
from engine.web.views import PAGE_SIZE, create_app

TODAY = date(2026, 11, 16)
STAFF = [
    StaffMember(id="casey", name="Casey", email="casey@example.org", role="caseworker", manager="morgan"),
    StaffMember(id="jo", name="Jo", email="jo@example.org", role="caseworker", manager="morgan"),
    StaffMember(id="morgan", name="Morgan", email="morgan@example.org", role="team_manager"),
    StaffMember(id="pat", name="Pat", email="pat@example.org", role="caseworker", manager="lee"),
    StaffMember(id="lee", name="Lee", email="lee@example.org", role="team_manager"),
    StaffMember(id="robin", name="Robin", email="robin@example.org", role="head_of_service"),
    StaffMember(id="sam", name="Sam", email="sam@example.org", role="auditor"),
]
PASSWORD = "a long enough pass phrase for the list"
# Who holds each case, in turn: staff ids, Jo by her email address as a person might type it, no one,
# and someone since removed from the staff list.
HOLDERS = ["casey", "jo", "pat", " Jo@Example.ORG", None, "casey", "pat", "gone.person", "jo", "pat"]
NAMES = ["Zoë Ünal", "Amir Khan", "Ada Lovelace-Smith", "Øyvind Berg", "Case Study"]


@dataclass
class Listing:
    core: App
    flask: Any
    cases: dict[int, str | None]  # case id: who holds it


@pytest.fixture
def listing(database_url: str, tmp_path: Path) -> Iterator[Listing]:
    settings = Settings(
        database_url=database_url,
        workflows_dir=str(ROOT / "workflows"),
        templates_dir=str(ROOT / "templates"),
        documents_dir=str(tmp_path / "documents"),
        staff=STAFF,
    )
    clock = FixedClock(TODAY - timedelta(days=200))
    core = App(settings, clock, create=True)
    morgan = core.directory.actor("morgan")
    cases: dict[int, str | None] = {}
    for n in range(160):  # requests over 200 days: their limits fall due on many days, some passed
        clock.set(TODAY - timedelta(days=200 - n))
        holder = HOLDERS[n % len(HOLDERS)]
        case_id = core.cases.open_case(
            name=f"{NAMES[n % len(NAMES)]} {n}",
            date_of_birth=date(2016, 1, 1),
            workflow="needs_assessment",
            actor=morgan,
            inputs={"request_received_on": clock.today(), "requested_by": "parent"},
            caseworker="casey",
        ).case_id
        cases[case_id] = holder
        if n % 7 == 0:  # a closed one: refused, and the family told
            core.cases.fire(case_id, "refuse_to_assess", actor=morgan, inputs={"reasons": "Needs met at school."})
    with core.engine.begin() as conn:  # holders as a council's record has them, not as open_case checks
        for case_id, holder in cases.items():
            conn.execute(text("UPDATE ehc_case SET caseworker = :w WHERE id = :c"), {"w": holder, "c": case_id})
    clock.set(TODAY)
    yield Listing(core, create_app(settings, clock, engine_app=core), cases)
    core.engine.dispose()


def _signed_in(listing: Listing, staff_id: str) -> Any:
    client = listing.flask.test_client()
    core = listing.core
    secret = Accounts(core.engine, core.directory, core.clock, core.settings.web).set_password(staff_id, PASSWORD)

    def token(page: Any) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
        assert found is not None
        return found.group(1)

    client.post("/sign-in", data={"login": staff_id, "password": PASSWORD, "csrf_token": token(client.get("/sign-in"))})
    code = pyotp.TOTP(secret).at(core.clock.now())
    done = client.post("/sign-in/code", data={"code": code, "csrf_token": token(client.get("/sign-in/code"))})
    assert done.status_code == 302 and done.headers["Location"].endswith("/")
    return client


def _page(client: Any, address: str) -> tuple[list[tuple[int, str]], int, dict[str, str]]:
    """The rows a page lists (case and next time limit's words), the total its caption gives, and its
    pagination's links by their words."""
    answer = client.get(address)
    assert answer.status_code == 200, answer.status_code
    html = answer.get_data(as_text=True)
    body = html.split('<tbody class="govuk-table__body">', 1)[1].split("</tbody>", 1)[0] if "<tbody" in html else ""
    rows: list[tuple[int, str]] = []
    for row in body.split("<tr ")[1:]:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        number = re.search(r'href="/cases/(\d+)"', cells[0])
        assert number is not None
        rows.append((int(number.group(1)), cells[3]))
    caption = re.search(r"([\d,]+) open workflows?", html)
    links: dict[str, str] = {}
    nav = re.search(r'<nav class="govuk-pagination.*?</nav>', html, re.S)
    for href, words in re.findall(r'<a[^>]*href="([^"]+)"[^>]*>(.*?)</a>', nav.group(0) if nav else "", re.S):
        plain = " ".join(re.sub(r"<[^>]+>", " ", words).split())
        links[plain] = href.replace("&amp;", "&")
    return rows, int(caption.group(1).replace(",", "")) if caption else 0, links


def _open(listing: Listing) -> set[int]:
    with listing.core.engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT case_id FROM workflow_instance WHERE closed_on IS NULL"))}


def _days(words: str) -> float:
    """How soon a row's next time limit falls, from its words (none: last)."""
    if "None open" in words:
        return float("inf")
    if "Due today" in words:
        return 0
    found = re.search(r"(\d+) days (overdue|left)", words)
    assert found is not None, words
    return -int(found.group(1)) if found.group(2) == "overdue" else int(found.group(1))


@pytest.mark.parametrize("who", ["casey", "morgan", "lee", "robin", "sam"])
def test_every_page_together_lists_exactly_the_cases_the_person_may_see_soonest_first(
    listing: Listing, who: str
) -> None:
    client = _signed_in(listing, who)
    actor = listing.core.directory.actor(who)
    expected = {c for c in _open(listing) if may_see(actor, listing.cases[c], listing.core.directory)}
    assert expected and len(expected) < len(listing.cases) or who in ("robin", "sam")
    seen: list[int] = []
    order: list[float] = []
    address: str | None = "/cases"
    pages = 0
    while address is not None:
        rows, total, links = _page(client, address)
        assert 0 < len(rows) <= PAGE_SIZE
        assert total == len(expected)  # one open workflow a case here
        seen += [case for case, _words in rows]
        order += [_days(words) for _case, words in rows]
        address = links.get("Next page")
        pages += 1
    assert sorted(seen) == sorted(expected), "each case the person may see once, and no other"
    assert order == sorted(order), "the next time limit first, those with none last"
    assert pages == -(-len(expected) // PAGE_SIZE)


def test_a_search_filters_and_pages_together_and_knows_more_than_ascii(listing: Listing) -> None:
    client = _signed_in(listing, "robin")
    rows, total, _links = _page(client, "/cases?q=ZOË")  # "Zoë" in capitals: not what SQLite's lower knows
    zoe = {c for c in _open(listing) if (c - 1) % len(NAMES) == 0}
    assert {case for case, _ in rows} == zoe and total == len(zoe)
    rows, total, _links = _page(client, "/cases?q=case+17")  # case 17, and each whose name has 17 in it
    named = {c for c in _open(listing) if c == 17 or "17" in str(c - 1)}
    assert {case for case, _ in rows} == named and 17 in named
    # A filter that matches more than a page: its pages keep it.
    rows, total, links = _page(client, "/cases?overdue=yes")
    assert total > PAGE_SIZE and len(rows) == PAGE_SIZE
    assert all(_days(words) < 0 for _case, words in rows)
    second = links["Next page"]
    assert parse_qs(urlsplit(second).query) == {"overdue": ["yes"], "page": ["2"]}
    more, again, _ = _page(client, second)
    assert again == total and not {c for c, _ in more} & {c for c, _ in rows}
    assert all(_days(words) < 0 for _case, words in more)


def test_a_page_past_the_end_shows_the_last_and_a_page_that_is_no_number_the_first(listing: Listing) -> None:
    client = _signed_in(listing, "robin")
    first, total, _ = _page(client, "/cases")
    last_number = -(-total // PAGE_SIZE)
    last, _, _ = _page(client, f"/cases?page={last_number}")
    for address in ("/cases?page=999", "/cases?page=99999999999999999999", f"/cases?page={last_number + 1}"):
        assert _page(client, address)[0] == last, address
    for address in ("/cases?page=0", "/cases?page=-1", "/cases?page=²", "/cases?page=abc", "/cases?page="):
        assert _page(client, address)[0] == first, address


def test_a_team_filter_keeps_that_team_and_no_one_else(listing: Listing) -> None:
    client = _signed_in(listing, "robin")
    directory = listing.core.directory
    morgan = directory.actor("morgan")
    for team, colleague in (("morgan", "casey"), ("lee", "pat")):
        rows, total, links = _page(client, f"/cases?team={team}")
        listed = {c for c, _ in rows}
        while "Next page" in links:
            more, _, links = _page(client, links["Next page"])
            listed |= {c for c, _ in more}
        holders = {listing.cases[c] for c in listed}
        assert total == len(listed) and listed
        if team == "morgan":  # Jo by her email address too; no one's and the removed person's are no team's
            assert {h.strip().lower() if h else h for h in holders} == {"casey", "jo", "jo@example.org"}
            assert all(may_see(morgan, h, directory) for h in holders)
        else:
            assert holders == {colleague}


def test_a_head_of_service_narrows_the_team_board_to_one_team(listing: Listing) -> None:
    def board(client: Any, address: str) -> tuple[set[int], set[str], str]:
        answer = client.get(address)
        assert answer.status_code == 200
        html = answer.get_data(as_text=True)
        cases = {int(c) for c in re.findall(r'href="/cases/(\d+)"', html)}
        load = set(re.findall(r'<td class="govuk-table__cell">[^<(]+\((\w[\w.]*)\)</td>', html))
        return cases, load, html

    directory = listing.core.directory
    robin = _signed_in(listing, "robin")
    every, load, html = board(robin, "/team")
    assert load == {"casey", "jo", "pat"} and 'name="team"' in html
    theirs, load, html = board(robin, "/team?team=morgan")
    assert load == {"casey", "jo"} and "Team board: Morgan's team" in unescape(html)
    assert '<option value="morgan" selected>Morgan&#39;s team</option>' in html, "teams are named, not ids"
    assert theirs and theirs < every
    assert {(listing.cases[c] or "").strip().lower() for c in theirs} <= {"casey", "jo", "jo@example.org"}
    assert "Not allocated" not in html, "a case no one holds is no team's"
    others, load, _ = board(robin, "/team?team=lee")
    assert load == {"pat"} and others and not others & theirs
    assert board(robin, "/team?team=nobody")[0] == every, "a team that is not one: every team"
    # A team manager's board is their team's, with nothing to choose.
    morgan = _signed_in(listing, "morgan")
    mine, load, html = board(morgan, "/team?team=lee")
    assert load == {"casey", "jo"} and 'name="team"' not in html
    assert all(may_see(directory.actor("morgan"), listing.cases[c], directory) for c in mine)


def test_a_team_is_shown_by_its_name_or_its_managers() -> None:
    from engine.directory import Directory

    directory = Directory(
        [
            *STAFF,
            StaffMember(id="sam", name="Sam", email="sam@example.org", role="caseworker", team="North"),
            StaffMember(id="ng", name="Nat", email="nat@example.org", role="team_manager", team="North"),
        ]
    )
    assert directory.team_label("morgan") == "Morgan's team"  # the team a manager leads by default
    assert directory.team_label("North") == "North"  # a team config.yaml names
    assert directory.team_label("gone") == "gone"  # a manager since removed: the id is all there is
    alone = Directory([*STAFF, StaffMember(id="kim", name="Kim", email="kim@example.org", role="caseworker")])
    assert alone.team_label("kim") == "Kim"  # a caseworker with no team or manager leads no team
    # A team config.yaml calls "Morgan's team" beside the one Morgan leads: each says which it is.
    alike = Directory([*STAFF, StaffMember(id="al", name="Al", email="al@example.org", role="caseworker",
                                           team="Morgan's team")])  # fmt: skip
    assert alike.team_choices(["morgan", "Morgan's team", "lee"]) == [
        ("lee", "Lee's team"), ("Morgan's team", "Morgan's team (Morgan's team)"), ("morgan", "Morgan's team (morgan)")
    ]  # fmt: skip


def _links(header: str) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', header)}


@pytest.mark.parametrize("who", ["casey", "lee", "robin"])
def test_the_api_pages_follow_one_another_to_exactly_what_the_person_may_see(listing: Listing, who: str) -> None:
    client = _signed_in(listing, who)
    actor = listing.core.directory.actor(who)
    expected = {c for c in _open(listing) if may_see(actor, listing.cases[c], listing.core.directory)}
    seen: list[int] = []
    due: list[str] = []
    address: str | None = "/api/cases?per_page=17"  # pages that do not divide the rows evenly
    pages = 0
    while address is not None:
        answer = client.get(address)
        assert answer.status_code == 200
        assert int(answer.headers["X-Total-Count"]) == len(expected)
        rows = answer.get_json()
        assert 0 < len(rows) <= 17
        seen += [r["id"] for r in rows]
        due += [r["next_due"] or "9999-12-31" for r in rows]
        links = _links(answer.headers["Link"])
        assert parse_qs(urlsplit(links["last"]).query)["page"] == [str(-(-len(expected) // 17))]
        address = links.get("next")
        pages += 1
    assert sorted(seen) == sorted(expected), "each case the person may see once, and no other"
    assert due == sorted(due), "the next time limit first, those with none last"
    assert pages == -(-len(expected) // 17)
    past = client.get(f"/api/cases?per_page=17&page={pages + 1}")  # a client paging on until empty stops
    assert past.status_code == 200 and past.get_json() == [] and "next" not in _links(past.headers["Link"])
    assert len(client.get("/api/cases").get_json()) == min(100, len(expected))  # 100 a page unless asked


def test_the_api_says_what_is_wrong_with_a_page_it_cannot_give(listing: Listing) -> None:
    client = _signed_in(listing, "robin")
    for query in ("page=0", "page=-1", "page=abc", "page=²", "page=", "per_page=0", "per_page=1001",
                  "page=99999999999999999999", "per_page=00000001000000", "page=0000000100000000",
                  "page=000000019999999999999999999999", "page=00000001" + "9" * 5000):  # fmt: skip
        answer = client.get(f"/api/cases?{query}")
        assert answer.status_code == 400, query
        name = query.split("=")[0]
        assert answer.get_json()["error"].startswith(f"{name}: a whole number from 1 to"), query
    assert len(client.get("/api/cases?per_page=00000003").get_json()) == 3  # leading zeros, in range: fine
