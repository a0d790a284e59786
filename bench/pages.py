"""How long the staff web application's busiest pages take over a county's caseload.

    .venv/bin/python bench/pages.py                        # 8,000 plans, 1,500 requests a year, SQLite
    .venv/bin/python bench/pages.py --plans 2000 --requests 400 --days 120 --runs 3

A county is generated and run through its last ``--days`` days by the simulator (engine/simulate.py:
reviews held, requests assessed, every sweep run), with 40 caseworkers in four teams, their four
team managers and a head of service. Then each page is asked for, signed in as a caseworker, a team
manager and the head of service, through the application itself (Flask's test client: no network,
no browser), ``--runs`` times after one request to warm it; the median is printed with the rows the
page listed and the size of the HTML.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import pyotp  # noqa: E402
from sqlalchemy import text  # noqa: E402

from engine.app import App  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.config import Settings, StaffMember  # noqa: E402
from engine.simulate import simulate  # noqa: E402
from engine.store import database  # noqa: E402
from engine.web.accounts import Accounts  # noqa: E402
from engine.web.views import create_app  # noqa: E402

TEAMS = 4
STAFF = (
    [
        StaffMember(id=f"tm{t}", name=f"Manager {t}", email=f"tm{t}@example.org", role="team_manager")
        for t in range(TEAMS)
    ]
    + [
        StaffMember(
            id=f"cw{i}", name=f"Caseworker {i}", email=f"cw{i}@example.org", role="caseworker", manager=f"tm{i % TEAMS}"
        )  # fmt: skip
        for i in range(40)
    ]
    + [StaffMember(id="hos", name="Head of Service", email="hos@example.org", role="head_of_service")]
)
PASSWORD = "a long enough pass phrase for the benchmark"
AS = {"caseworker": "cw1", "team manager": "tm1", "head of service": "hos"}
PAGES = [  # (label, address, who may ask)
    ("case list", "/cases", ("caseworker", "team manager", "head of service")),
    ("case list, overdue only", "/cases?overdue=yes", ("caseworker", "team manager", "head of service")),
    ("case list, searched by name", "/cases?q=Child+12", ("caseworker", "team manager", "head of service")),
    ("a case", "/cases/{case}", ("caseworker", "team manager", "head of service")),
    ("team board", "/team", ("team manager", "head of service")),
    ("at risk", "/reports/at-risk", ("team manager", "head of service")),
    ("timeliness report", "/reports", ("team manager", "head of service")),
    ("API: cases", "/api/cases", ("caseworker", "team manager", "head of service")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plans", type=int, default=8000)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="a folder to keep the county in, and to use again if it is there")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ehcp-pages-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        again = (folder / "county.sqlite").exists()
        settings = Settings(
            database_url=f"sqlite:///{folder / 'county.sqlite'}",
            workflows_dir=str(ROOT / "workflows"),
            templates_dir=str(ROOT / "templates"),
            documents_dir=str(folder / "documents"),
            staff=STAFF,
        )
        database.initialise(settings.owner_database(), settings.database())
        start = date(2026, 12, 2) - timedelta(days=args.days)
        clock = FixedClock(start)
        core = App(settings, clock)
        if again:
            clock.set(start + timedelta(days=args.days - 1))
            print(f"the county in {folder}, as simulated before")
        else:
            t0 = time.perf_counter()
            year = simulate(core, clock, plans=args.plans, requests=args.requests, start=start, days=args.days)
            print(f"simulated {year.plans:,} plans and {year.requests:,} requests over {args.days} days "
                  f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip
        with core.engine.connect() as conn:
            open_cases = conn.execute(
                text("SELECT count(DISTINCT case_id) FROM workflow_instance WHERE closed_on IS NULL")
            ).scalar()
            case = conn.execute(text("SELECT id FROM ehc_case WHERE caseworker = 'cw1' ORDER BY id LIMIT 1")).scalar()
        print(f"{open_cases:,} cases open on {clock.today()}; the caseworker holds a 40th, a manager's team a 4th\n")
        from engine.outlook import at_risk

        started = time.perf_counter()
        made = at_risk(core, clock.today())
        took = time.perf_counter() - started
        print(f"the at-risk answer made afresh: {took:.1f} s for {len(made.rows):,} open limits (the pages that")
        print("mark risks keep it a minute; the first asked for after the record has changed waits for it)\n")
        flask = create_app(settings, clock, engine_app=core)
        accounts = Accounts(core.engine, core.directory, clock, settings.web)
        print(f"{'page':30} {'as':16} {'median ms':>10} {'rows':>6} {'KB':>7}")
        for label, address, who in PAGES:
            for role in who:
                client = signed_in(flask, accounts, AS[role], clock)
                url = address.format(case=case)
                assert client.get(url).status_code == 200, (url, role)
                times = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    page = client.get(url)
                    times.append(time.perf_counter() - started)
                body = page.get_data(as_text=True)
                api = url.startswith("/api")
                rows = len(page.json or []) if api else len(re.findall(r"<tr class=\"govuk-table__row\"", body))
                print(f"{label:30} {role:16} {statistics.median(times) * 1e3:10.0f} {rows:6,} {len(body) / 1024:7.0f}")
        core.engine.dispose()


def signed_in(flask: object, accounts: Accounts, staff_id: str, clock: FixedClock) -> object:
    """A test client signed in as ``staff_id`` through the sign-in forms (password, then the code)."""
    client = flask.test_client()  # type: ignore[attr-defined]
    secret = accounts.set_password(staff_id, PASSWORD)

    def token(page: str) -> str:
        return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    page = client.get("/sign-in").get_data(as_text=True)
    client.post("/sign-in", data={"login": staff_id, "password": PASSWORD, "csrf_token": token(page)})
    page = client.get("/sign-in/code").get_data(as_text=True)
    done = client.post("/sign-in/code", data={"code": pyotp.TOTP(secret).at(clock.now()), "csrf_token": token(page)})
    assert done.status_code == 302, done.get_data(as_text=True)[:500]
    return client


if __name__ == "__main__":
    main()
