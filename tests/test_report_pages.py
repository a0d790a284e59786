# ruff: noqa: F811 - the browser and page fixtures come from test_web
"""The Reports pages and the at-risk marks, in a real headless Chromium against `ehcp serve`, on a
generated caseload with a year of history (SQLite and PostgreSQL): each page passes axe-core, each
chart has its table, the at-risk list is the one engine.outlook computes for the reader's cases and
no other team's, the team board and the caseworker's list mark the same limits, and the "at risk
only" filter keeps just those."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from servers import free_port
from test_web import CHROMIUM, PASSWORD, STAFF, Site, accessible, browser, page, serving, sign_in  # noqa: F401 - fixtures

from engine.app import App
from engine.clock import FixedClock, SystemClock
from engine.config import load_settings
from engine.demo import seed_caseload
from engine.outlook import at_risk, forecast
from engine.sen2_return import check
from engine.web.access import may_see
from engine.web.accounts import Accounts

HEAD = {"id": "robin.demo", "name": "Robin Demo", "email": "robin.demo@example.org", "role": "head_of_service"}


@pytest.fixture
def caseload(database_url: str, tmp_path: Path) -> Iterator[tuple[Site, App]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    port = free_port()
    data = {
        "database_url": database_url,
        "workflows_dir": str(ROOT / "workflows"),
        "templates_dir": str(ROOT / "templates"),
        "documents_dir": str(tmp_path / "documents"),
        "staff": [*STAFF, HEAD],
        "council": {
            "name": "Demo County Council",
            "la_code": "999",
            "designated_officers": {"dmo": "Y", "dco": "Y", "dsco": "R"},
        },
        "accounts": {"*": "casey.demo"},
        "notifications": {"transport": "folder", "outbox_dir": str(tmp_path / "outbox")},
        "web": {"port": port},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    settings = load_settings(config)
    app = App(settings, FixedClock(SystemClock().today()), create=True)
    seed_caseload(app, 90, seed=7, today=SystemClock().today())
    accounts = Accounts(app.engine, app.directory, SystemClock(), settings.web)
    secrets = {s["id"]: accounts.set_password(s["id"], PASSWORD) for s in [*STAFF, HEAD]}
    with serving(config, port) as url:
        yield Site(url, config, secrets, 0, 0), app
    app.engine.dispose()


def test_the_reports_and_the_at_risk_marks_in_a_browser(page: Any, caseload: tuple[Site, App]) -> None:
    site, app = caseload
    today = SystemClock().today()
    morgan = app.directory.actor("morgan.demo")
    expected = at_risk(app, today, lambda cw: may_see(morgan, cw, app.directory))
    assert expected.flagged, "a year of generated history, a third of it slow: some limits are at risk"
    assert any(r["caseworker"] == "pat.other" for r in at_risk(app, today).flagged), "the other team has some too"

    sign_in(page, site, "morgan.demo")
    page.get_by_role("link", name="Reports").click()
    accessible(page, "report-timeliness")
    years = page.get_by_role("table", name="By calendar year, beside England").inner_text()
    assert str(today.year) in years or str(today.year - 1) in years

    page.get_by_role("link", name="Workload forecast").click()
    page.get_by_role("heading", name="Workload forecast").wait_for()
    accessible(page, "report-forecast")
    plan = forecast(app, today, lambda cw: may_see(morgan, cw, app.directory))
    weeks = page.get_by_role("table", name="Falling due, by week").locator("tbody tr").all_inner_texts()
    assert [int(line.split()[-1]) for line in weeks] == [row["total"] for row in plan.by_week]
    assert page.locator("svg[role='img']").count() == 2

    page.get_by_role("link", name="At risk").click()
    page.get_by_role("heading", name="Time limits at risk").wait_for()
    accessible(page, "report-at-risk")
    table = page.get_by_role("table", name=re.compile(r"^At risk \(\d+\)$"))
    rows = table.locator("tbody tr")
    assert rows.count() == len(expected.flagged)
    shown = set()
    for n in range(rows.count()):
        number = re.search(r"Case (\d+)", rows.nth(n).inner_text())
        assert number is not None
        shown.add((int(number.group(1)), rows.nth(n).locator("strong").inner_text()))
    assert shown == {(r["case"], f"{r['percent']}% at risk") for r in expected.flagged}
    assert "Pat Other" not in table.inner_text() and "pat.other" not in table.inner_text()

    page.get_by_role("link", name="Team board").click()
    board = page.get_by_role("table", name=re.compile(r"^At risk \(\d+\)$"))
    assert board.locator("tbody tr").count() == len(expected.flagged)

    # Casey's list marks her at-risk limits, and the filter keeps only those cases.
    page.context.clear_cookies()
    sign_in(page, site, "casey.demo")
    page.get_by_role("heading", name="My cases").wait_for()
    accessible(page, "cases-at-risk")
    casey = app.directory.actor("casey.demo")
    hers = at_risk(app, today, lambda cw: may_see(casey, cw, app.directory)).flagged
    marked = page.locator("tbody tr", has=page.locator(".govuk-tag", has_text="% at risk"))
    assert marked.count() >= 1
    page.get_by_label("At risk of being missed only").check()
    page.get_by_role("button", name="Filter cases").click()
    page.get_by_role("heading", name="My cases").wait_for()
    listed = {int(m) for m in re.findall(r"Case (\d+)", page.locator("tbody").inner_text())}
    while page.get_by_role("link", name="Next page").count():  # 50 to a page: the filter stays on each
        page.get_by_role("link", name="Next page").click()
        page.get_by_role("heading", name="My cases").wait_for()
        assert page.get_by_label("At risk of being missed only").is_checked()
        listed |= {int(m) for m in re.findall(r"Case (\d+)", page.locator("tbody").inner_text())}
    assert listed == {r["case"] for r in hers}


def test_the_sen2_return_and_a_childs_details_in_a_browser(page: Any, caseload: tuple[Site, App]) -> None:
    site, app = caseload
    sign_in(page, site, "robin.demo")
    # The head of service's team board, narrowed to one team (no script: a form that is sent).
    page.goto(site.url + "/team")
    page.get_by_label("Team", exact=True).select_option(label="Morgan Demo's team")
    page.get_by_role("button", name="Show this team").click()
    page.get_by_role("heading", name="Team board: Morgan Demo's team").wait_for()
    assert "Pat Other" not in page.locator("main").inner_text()
    accessible(page, "team-board-one-team")
    page.get_by_role("link", name="Reports").click()
    page.get_by_role("link", name="SEN2 return").click()
    page.get_by_role("heading", name="The SEN2 return").wait_for()
    accessible(page, "report-sen2")
    assert "passes the schema and every rule" in page.locator("main").inner_text()
    gaps = page.locator("main table").last.inner_text()
    assert "SENtype" in gaps, "the generated caseload leaves some needs unrecorded, and says which cases"
    link = page.get_by_role("button", name="Download the return (XML)")
    download = page.request.get(site.url + link.get_attribute("href"))
    assert download.status == 200 and download.headers["content-disposition"].startswith(
        'attachment; filename="sen2-999-'
    )
    assert check(download.body()) == []

    # A caseworker records a child's details; a wrong check letter is refused and said so.
    page.context.clear_cookies()
    sign_in(page, site, "casey.demo")
    page.get_by_role("heading", name="My cases").wait_for()
    page.locator("tbody tr a").first.click()
    page.get_by_role("link", name="Change the details for the SEN2 return").click()
    page.get_by_role("heading", name="Details for the SEN2 return").wait_for()
    accessible(page, "details")
    page.get_by_label("Unique pupil number (13 characters)").fill("A801200005001")
    page.get_by_label(re.compile("Primary type of need")).select_option("DS")
    page.get_by_role("button", name="Save the details").click()
    summary = page.locator(".govuk-error-summary")
    summary.wait_for()
    assert "check letter" in summary.inner_text()
    page.get_by_label("Unique pupil number (13 characters)").fill("B801200005001")
    page.get_by_role("button", name="Save the details").click()
    page.get_by_text("The details for the SEN2 return are saved").wait_for()
    main = page.locator("main").inner_text()
    assert "B801200005001" in main and "Record details" in main  # on the case, and in its history
