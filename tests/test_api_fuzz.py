"""The web interface fuzzed from its OpenAPI description (engine/web/openapi.yaml, served at
/api/openapi.yaml) with Schemathesis, in process over a real SQLite file holding a generated caseload.

Each person signs in through the real forms (password and authenticator code for staff; the online
service's session for a family and an adviser) and every form carries the session's CSRF token, as a
browser's would: the fuzz reaches the views' own checks, and the test counts that it did. Then, for every
operation the description lists, generated requests (valid by the description and not) are sent as a
caseworker, a team manager, the head of service, an auditor, an administrator, a family, an adviser and
someone not signed in, and:

- no answer is a server error (an exception in a view fails the test with its traceback);
- each answer's status, media type and headers are ones the description gives that operation, and the
  API's JSON matches its schema;
- a case someone may not see (another team's, for a caseworker or team manager; any, for an
  administrator; any but their own, for a family or an adviser) is 403 or 404, its child's name is on no
  page they get, and nothing they send changes its history;
- a form with a wrong CSRF token is refused (400) before the view reads it; a request without a session
  gets the sign-in page (or 401 from the API).

Most path parameters, and the fields whose meaning the description gives only in words (a step's inputs,
a date's day, month and year, a contact's id), are drawn from what is in the database: real case,
workflow, step, limit, document, file and request ids, of cases the person may see and of cases they may
not; dates at the edges of what a date can be; numbers that are not what they look like. The rest is what
Schemathesis generates. Operations that end the session by design (signing in, the code page, signing
out) are fuzzed only for someone not signed in.

The fuzz found these defects, each a 500, each fixed with it and pinned by the request that showed it in
test_the_requests_that_found_defects_are_answered_without_a_server_error (on SQLite and PostgreSQL):
- a contact's id of "²" (str.isdigit takes it, int refuses it) or of 30 digits (too big for the
  database) in asking for advice or inviting a family; the same in the audit log's case number and
  (found by reading the same pattern) a step form's version;
- ending someone's online access for a reason with a control character, or of spaces only;
- the timeliness report asked to end in the year 1 (a year before it is no date); a step's date in
  the year 9999 (its time limit is no date);
- any form, to any address and without signing in, holding a part whose name Werkzeug cannot read and
  no CSRF token: Flask-WTF's check failed on the name None;
- and, looked for on PostgreSQL after the fuzz's NUL characters (PostgreSQL refuses a query holding one;
  the fuzz itself runs on SQLite): a NUL in a document's, file's, access's or advice request's id in an
  address, in the audit log's staff id, and in an email address asking the online service for a link.

Two more tests keep the description in step with the application (every route is described, every
described path and method is routed, every path parameter is named) and check it is served to staff only.
"""

from __future__ import annotations

import html
import random
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import schemathesis
import yaml
from conftest import ROOT
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text
from test_uploads import PDF, png

from engine.actor import Actor
from engine.app import App
from engine.clock import FixedClock
from engine.config import Council, NotificationSettings, Settings, StaffMember, WebSettings
from engine.demo import portal_sign_ins, seed_caseload
from engine.portal import Portal
from engine.store.repository import ContactRecord
from engine.web.access import may_see
from engine.web.accounts import Accounts
from engine.web.views import create_app

# A day the generated caseload builds on with these staff and this seed (engine.demo is sensitive to
# both: on some days one of its stories tries to close an appeal window that is still open).
TODAY = date(2026, 1, 12)
PASSWORD = "a long pass phrase"
# Two teams: Morgan's (Casey, Jo) and Lee's (Pat); a head of service, an auditor, an administrator.
STAFF = [
    StaffMember(id="casey.demo", name="Casey Demo", email="casey.demo@example.org", role="caseworker",
                manager="morgan.demo"),
    StaffMember(id="jo.demo", name="Jo Demo", email="jo.demo@example.org", role="caseworker", manager="morgan.demo"),
    StaffMember(id="morgan.demo", name="Morgan Demo", email="morgan.demo@example.org", role="team_manager"),
    StaffMember(id="pat.other", name="Pat Other", email="pat.other@example.org", role="caseworker",
                manager="lee.other"),
    StaffMember(id="lee.other", name="Lee Other", email="lee.other@example.org", role="team_manager"),
    StaffMember(id="robin.demo", name="Robin Demo", email="robin.demo@example.org", role="head_of_service"),
    StaffMember(id="sam.demo", name="Sam Demo", email="sam.demo@example.org", role="auditor"),
    StaffMember(id="alex.demo", name="Alex Demo", email="alex.demo@example.org", role="administrator"),
]  # fmt: skip
STAFF_ROLES = {
    "caseworker": "casey.demo",
    "team_manager": "morgan.demo",
    "head_of_service": "robin.demo",
    "auditor": "sam.demo",
    "administrator": "alex.demo",
}
EXAMPLES = {  # generated requests per operation: the whole file runs in about a minute
    "caseworker": 8,
    "team_manager": 8,
    "head_of_service": 5,
    "auditor": 4,
    "administrator": 8,  # its two forms succeed only for a real staff id (half the time, signed in 4 in 5): 16 tries
    "family": 12,
    "adviser": 12,
    "nobody": 3,
}
STEPS = "/cases/{case_id}/workflows/{instance_id}/steps/{trigger}"
# The most to check, and the adviser's one form that can succeed (about one request in five does: a real
# request of theirs, a signed-in session, no refused file; 12 tries missed one run in about 10): more examples.
MORE = {("GET", STEPS): 2, ("POST", STEPS): 5, ("GET", "/reports"): 3, ("POST", "/portal/advice/{request_id}"): 3}
# What ends or replaces a session by design: fuzzed only for someone not signed in.
SESSION_ENDERS = {
    ("POST", "/sign-in"),
    ("GET", "/sign-in/code"),
    ("POST", "/sign-in/code"),
    ("GET", "/sign-in/council"),
    ("GET", "/sign-in/council/return"),
    ("POST", "/sign-in/setup/{token}"),
    ("POST", "/sign-out"),
    ("POST", "/portal"),
    ("GET", "/portal/code"),
    ("POST", "/portal/code"),
    ("POST", "/portal/link/{token}"),
    ("POST", "/portal/sign-out"),
}
REFUSED = ("The form had expired", "The form could not be read")  # before any view reads the form
DESCRIPTION = ROOT / "engine" / "web" / "openapi.yaml"
DESCRIBED = yaml.safe_load(DESCRIPTION.read_text(encoding="utf-8"))
OPEN = {  # what the description says needs no session
    (method.upper(), path)
    for path, item in DESCRIBED["paths"].items()
    for method, operation in item.items()
    if isinstance(operation, dict) and operation.get("security") == []
}


def _ref(document: dict[str, Any], ref: str) -> Any:
    found: Any = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


def _form_fields(operation: dict[str, Any]) -> set[str]:
    """The fields a form's description names."""
    body = operation.get("requestBody")
    if body is None:
        return set()
    body = _ref(DESCRIBED, body["$ref"]) if "$ref" in body else body
    names: set[str] = set()
    for content in body["content"].values():
        schema = content["schema"]
        schema = _ref(DESCRIBED, schema["$ref"]) if "$ref" in schema else schema
        names |= set(schema.get("properties", {}))
    return names


FIELDS = {
    (method.upper(), path): _form_fields(operation)
    for path, item in DESCRIBED["paths"].items()
    for method, operation in item.items()
    if isinstance(operation, dict)
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# -- the caseload, once ------------------------------------------------------------------------------


@dataclass
class World:
    """A seeded database to copy for each person, and what was made in it for the online service."""

    folder: Path
    database: Path
    family: int  # the online service's person for a parent with access to a case
    adviser: int  # ... and for an educational psychologist with advice requests waiting


def _settings(folder: Path, database: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{database}",
        workflows_dir=str(ROOT / "workflows"),
        templates_dir=str(ROOT / "templates"),
        documents_dir=str(folder / "documents"),
        staff=STAFF,
        council=Council(name="Demo County Council", la_code="999",
                        designated_officers={"dmo": "Y", "dco": "Y", "dsco": "R"}),
        notifications=NotificationSettings(transport="folder", outbox_dir=str(folder / "outbox")),
        web=WebSettings(secure_cookies=False),
    )  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("fuzz")
    database = folder / "seeded.sqlite"
    core = App(_settings(folder, database), FixedClock(TODAY), create=True)
    seed_caseload(core, 60, seed=7, today=TODAY)
    core.documents.process(limit=6)  # some documents ready to download, on cases of both teams
    # The online service: a parent (of a child with a draft plan out for comment, if there is one), who
    # has sent views with files; and the demo's educational psychologist, asked for advice.
    portal = Portal(core)
    with core.engine.connect() as conn:
        case, contact, worker = conn.execute(
            text(
                "SELECT c.id, t.id, c.caseworker FROM ehc_case c JOIN contact t ON t.case_id = c.id "
                "JOIN workflow_instance i ON i.case_id = c.id AND i.closed_on IS NULL "
                "WHERE t.role = 'parent' AND t.email IS NOT NULL AND c.date_of_birth > :young "
                "ORDER BY CASE WHEN i.state = 'draft_issued' THEN 0 ELSE 1 END, c.id LIMIT 1"
            ),
            {"young": TODAY - timedelta(days=12 * 365)},
        ).one()
    links = [("family", portal.demo_link(case, contact, "family", actor=core.directory.actor(worker)))]
    ((_, adviser, link),) = [found for found in portal_sign_ins(core) if "psychologist" in found[0]]
    links.append(("adviser", link))
    # The same adviser asked about three more children (each answer ends that request's access).
    with core.engine.connect() as conn:
        assessing = list(
            conn.execute(
                text(
                    "SELECT i.case_id, c.caseworker FROM workflow_instance i JOIN ehc_case c ON c.id = i.case_id "
                    "WHERE i.state = 'assessing' AND i.closed_on IS NULL AND NOT EXISTS (SELECT 1 FROM contact t "
                    "WHERE t.case_id = c.id AND t.email = :e) ORDER BY i.case_id"
                ),
                {"e": adviser},
            )
        )
    for other, worker in assessing[:3]:
        actor = core.directory.actor(worker)
        psychologist = ContactRecord("educational_psychologist", "Demo EP service", adviser)
        core.cases.add_contact(other, psychologist, actor=actor)
        with core.engine.connect() as conn:
            asked = conn.execute(
                text("SELECT id FROM contact WHERE case_id = :c AND email = :e"), {"c": other, "e": adviser}
            ).scalar_one()
        portal.request_advice(other, asked, actor=actor)
    people = {}
    for who, link in links:
        person = portal.use_link(link.rsplit("/", 1)[1])
        assert person is not None, who
        people[who] = person
    (access,) = [a for a in portal.accesses(people["family"]) if a.kind == "family"]
    portal.contribute(access, "views", {"about": "Likes trains"}, [("drawing.png", png()), ("letter.pdf", PDF)])
    assert len(portal.adviser_requests(people["adviser"])) == 4
    core.engine.dispose()
    yield World(folder, database, people["family"], people["adviser"])


# -- a person, signed in, on their own copy of the database -------------------------------------------


@dataclass
class Person:
    role: str
    core: App
    flask: Flask
    client: Any
    cookie: str  # the session cookie after sign-in, sent with every request (a made-up one replaces it)
    token: str  # the session's CSRF token
    staff_id: str | None = None
    portal_person: int | None = None
    hidden: set[int] = field(default_factory=set)  # cases this person may not see
    secrets: set[str] = field(default_factory=set)  # their children's names
    answers: Counter[tuple[str, str, int, str]] = field(default_factory=Counter)
    sent: int = 0


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def _copy(world: World, name: str) -> Path:
    target = world.folder / f"{name}.sqlite"
    with sqlite3.connect(world.database) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return target


def _person(world: World, role: str, copy: str | None = None) -> Person:
    """``role`` signed in on a copy of the seeded database of its own (named ``copy``, or the role)."""
    settings = _settings(world.folder, _copy(world, copy or role))
    core = App(settings, FixedClock(TODAY))
    portal_person = world.family if role == "family" else world.adviser if role == "adviser" else None
    return _signed_in(core, role, portal_person)


def _signed_in(core: App, role: str, portal_person: int | None = None) -> Person:
    """The web application over ``core``, and ``role`` signed in to it: staff through the sign-in forms,
    a family or an adviser (``portal_person``) with the session their link and code would start."""
    settings = core.settings
    flask = create_app(settings, core.clock, engine_app=core)
    client = flask.test_client()
    if role in STAFF_ROLES:
        staff_id = STAFF_ROLES[role]
        secret = Accounts(core.engine, core.directory, core.clock, settings.web).set_password(staff_id, PASSWORD)
        login = client.get("/sign-in")
        sent = client.post("/sign-in", data={"login": staff_id, "password": PASSWORD, "csrf_token": _token(login.text)})
        assert sent.status_code == 302 and sent.headers["Location"].endswith("/sign-in/code"), sent.text
        page = client.get("/sign-in/code")
        code = pyotp.TOTP(secret).at(core.clock.now())
        signed = client.post("/sign-in/code", data={"code": code, "csrf_token": _token(page.text)})
        assert signed.status_code == 302 and signed.headers["Location"].endswith("/"), signed.text
        home = client.get("/admin/staff" if role == "administrator" else "/cases")
        assert home.status_code == 200, home.text
        actor = core.directory.actor(staff_id)
        with core.engine.connect() as conn:
            cases = list(conn.execute(text("SELECT id, caseworker FROM ehc_case")))
        hidden = {c for c, worker in cases if not may_see(actor, worker, core.directory)}
        person = Person(role, core, flask, client, "", _token(home.text), staff_id=staff_id, hidden=hidden)
    elif portal_person is not None:
        who = portal_person
        accounts = Accounts(core.engine, core.directory, core.clock, settings.web)
        session = accounts.start_session(f"portal:{who}", "portal")
        with client.session_transaction() as s:  # as the link and code would (tests/test_portal_web.py)
            s["portal"] = session
        home = client.get("/portal/home")
        assert home.status_code == 200, home.text
        with core.engine.connect() as conn:
            accesses = conn.execute(text("SELECT case_id FROM portal_access WHERE person_id = :p"), {"p": who})
            mine = {r[0] for r in accesses}
            everyone = {r[0] for r in conn.execute(text("SELECT id FROM ehc_case"))}
        person = Person(role, core, flask, client, "", _token(home.text), portal_person=who, hidden=everyone - mine)
    else:  # nobody: a session with a CSRF token (from the sign-in page), no one signed in
        page = client.get("/sign-in")
        person = Person(role, core, flask, client, "", _token(page.text))
    cookie = client.get_cookie("ehcp_session")
    assert cookie is not None
    person.cookie = cookie.value
    if person.hidden:  # the names of the cases this person may not see (and no case they may has)
        with core.engine.connect() as conn:
            names = list(conn.execute(text("SELECT id, name FROM ehc_case")))
        seen = {name for case, name in names if case not in person.hidden}
        person.secrets = {name for case, name in names if case in person.hidden and name not in seen}
    return person


def _schema(person: Person) -> Any:
    """The description as the application serves it to staff (or, for anyone else, as installed)."""
    if person.staff_id is None:
        return schemathesis.openapi.from_path(DESCRIPTION)
    served = person.client.get("/api/openapi.yaml")
    assert served.status_code == 200 and served.mimetype == "application/yaml", served.status_code
    return schemathesis.openapi.from_dict(yaml.safe_load(served.data))


# -- steering: real ids and meaningful fields, most of the time ----------------------------------------
#
# The choices below come from a random.Random seeded by a Hypothesis draw: what is in the database
# changes as the fuzz acts (a step taken opens other steps), and Hypothesis needs each example to draw
# the same kinds of values in the same order when it replays one.

NUMBERS = ["0", "-1", "²", "٣", "1" * 30, "9" * 19, "١٢", " 7 ", "7.0", "1e3", ""]
YEARS = ["1", "9999"] * 3 + ["0", "-1", "2", "1900", "9998", "10000", "2026 ", "²⁰²⁶", "٢٠٢٦", "9" * 25]
WORDS = "Likes trains and drawing, finds loud rooms hard; wants to be a vet. The meeting on Tuesday suits us."
TEXTS = {  # fields a person writes in: plain words, often, so that the form is more than its error summary
    "reason",
    "text",
    "note",
    "about",
    "important",
    "aspirations",
    "own_words",
    "comments",
    "school",
    "meeting",
    "going_well",
    "not_going_well",
    "change",
    "advice",
    "address",
    "surname",
    "forename",
    "postcode",
}


def _often(rng: random.Random, out_of: int = 4) -> bool:
    """True but for one time in ``out_of``."""
    return rng.randrange(out_of) != 0


def _sometimes(rng: random.Random, real: list[Any], out_of: int = 2) -> Any:
    """One of ``real`` (unless it is empty), but for one time in ``out_of``; else None."""
    return rng.choice(real) if real and _often(rng, out_of) else None


def _number(rng: random.Random, small: int = 400) -> str:
    """A number as typed: a small one, or one of the kinds that are not what they look like."""
    return str(rng.randint(0, small)) if rng.randrange(3) == 0 else rng.choice(NUMBERS)


def _date_parts(rng: random.Random, name: str) -> dict[str, str]:
    """A GOV.UK date input's three fields: a real day near today; a day of a year at the edges of what
    a date can be; or parts that make no date."""
    which = rng.randrange(3)
    if which == 0:
        day = TODAY + timedelta(days=rng.randint(-400, 30))
        parts = (str(day.day), str(day.month), str(day.year))
    elif which == 1:
        parts = (str(rng.choice([1, 28, 31])), str(rng.choice([1, 2, 12])), rng.choice(YEARS))
    else:
        parts = (_number(rng, 32), _number(rng, 13), str(rng.randint(2023, 2028)) if _often(rng, 2) else _number(rng))
    return dict(zip((f"{name}-day", f"{name}-month", f"{name}-year"), parts, strict=True))


def _input_value(rng: random.Random, spec: Any, name: str, junk: str) -> dict[str, str]:
    """A value for one of a step's inputs, of its type mostly."""
    kind = str(spec.type)
    if kind == "date":
        return _date_parts(rng, name)
    typed = {
        "choice": rng.choice(spec.options or [junk]),
        "yes_no": rng.choice(["yes", "no"]),
        "number": str(rng.choice([0, 1, 12, -5, 10**30])) if _often(rng, 2) else _number(rng),
        "email": rng.choice(["someone@example.org", "a@b", "@", "x@example.org\r\nBcc: y"]),
    }.get(kind, junk)
    return {name: typed if _often(rng) else junk}


def _rows(person: Person, sql: str, **params: Any) -> list[Any]:
    with person.core.engine.connect() as conn:
        return [r[0] if len(r) == 1 else tuple(r) for r in conn.execute(text(sql), params)]


def _storable(number: object) -> bool:
    return isinstance(number, int) and 0 < number < 2**63


# Real records whose ids an address takes together: (its case, then the ids in the order of the names).
RECORDS = {
    "sha256": "SELECT case_id, sha256 FROM document WHERE status = 'ready' AND sha256 IS NOT NULL",
    "access_id": "SELECT case_id, public_id FROM portal_access",
    "request_id": "SELECT case_id, public_id FROM advice_request",
    "file_id": "SELECT u.case_id, u.public_id, a.public_id FROM portal_upload u "
    "JOIN portal_access a ON a.id = u.access_id",
    "public_id": "SELECT case_id, public_id FROM portal_access",
    "name": "SELECT d.case_id, d.instance_id, d.name FROM deadline d WHERE d.closed_on IS NULL",
    "trigger": "SELECT case_id, id, workflow, definition_version, state FROM workflow_instance WHERE closed_on IS NULL",
}


def _steer(rng: random.Random, junk: str, case: Any, person: Person) -> None:
    """Replace some generated values with real ones: ids of cases the person may and may not see and of
    their records (documents, files, online accesses, advice requests, time limits, workflows and their
    steps), a step's inputs, contacts and caseworkers, and dates at the edges of what a date can be."""
    path = case.operation.path
    params = case.path_parameters if case.path_parameters is not None else {}
    body = case.body if isinstance(case.body, dict) else None
    query = case.query if case.query is not None else {}
    # A tidy form, a third of the time (half, for the online service's): only its own fields, in plain words
    # and without files (a file's part is named after its field: no type at the end of its name, refused).
    if body is not None and rng.randrange(2 if path.startswith("/portal/") else 3) == 0:
        for name in set(body) - FIELDS.get((case.method.upper(), path), set()) | {"files"}:
            body.pop(name, None)
        for name in TEXTS & set(body):
            body[name] = WORDS
        if "prefers" in body:
            body["prefers"] = "email"
    pool = "any"
    if "case_id" in params:
        pool = rng.choice(["seen"] * 4 + ["hidden"] * 2 + ["absent", "generated"])
        every = _rows(person, "SELECT id FROM ehc_case ORDER BY id")
        seen = [c for c in every if c not in person.hidden]
        choices = {"seen": seen, "hidden": sorted(person.hidden), "absent": [10**6, 10**20]}.get(pool, [])
        if choices:
            params["case_id"] = rng.choice(choices)
    # A real record, mostly: of a case of the pool chosen, with that case; or, with a case that does not
    # exist (or a generated one), of any case.
    kind = next((k for k in RECORDS if k in params), None)
    rows = _rows(person, RECORDS[kind]) if kind else []
    if pool in ("seen", "hidden"):
        rows = [r for r in rows if (r[0] in person.hidden) == (pool == "hidden")]
    elif path.startswith("/portal/") and _often(rng):  # the person's own, mostly; else anyone's
        rows = [r for r in rows if r[0] not in person.hidden]
    record = _sometimes(rng, rows, 4)
    if record is not None:
        if pool in ("seen", "hidden"):
            params["case_id"] = record[0]
        if kind == "file_id":
            params["file_id"] = record[1]
            if "public_id" in params:
                params["public_id"] = record[2]
        elif kind == "name":
            params["instance_id"], params["name"] = record[1], record[2]
        elif kind == "trigger":
            params["instance_id"] = record[1]
            _steer_step(rng, junk, params, body, person, record)
        else:
            params[str(kind)] = record[1]
    if "staff_id" in params:  # not the administrator's own: a reset would end the session being fuzzed
        params["staff_id"] = _sometimes(rng, [s.id for s in STAFF if s.id != person.staff_id]) or params["staff_id"]
    case_id = params.get("case_id")
    if body is not None and "contact" in body and _often(rng, 2):
        known = _rows(person, "SELECT id FROM contact WHERE case_id = :c", c=case_id if _storable(case_id) else None)
        picked = [str(rng.choice(known)) if known and _often(rng, 2) else _number(rng) for _ in range(rng.randrange(4))]
        body["contact"] = picked if path.endswith("/advice") else (picked[0] if picked else "")
        if path.endswith("/advice") and _often(rng, 2):
            body.update(_date_parts(rng, "on"))
    for name in TEXTS & set(body or ()):
        if body is not None and _often(rng, 2):
            body[name] = WORDS[: rng.randint(1, len(WORDS))]
    if body is not None and "to" in body:
        body["to"] = rng.choice([s.id for s in STAFF]) if _often(rng) else junk
    if body is not None and "files" in body and _often(rng, 2):
        body["files"] = [rng.choice([png(), PDF, b"<svg/>", b""]) for _ in range(rng.randint(0, 3))]
    if path == "/reports" and _often(rng, 2):
        for which in rng.choice([["from"], ["to"], ["from", "to"]]):
            query.update(_date_parts(rng, which))
    if path == "/reports/sen2" and _often(rng, 2):
        query.update(_date_parts(rng, "day"))
        if _often(rng, 2):
            query["download"] = "xml"
    if path == "/audit" and _often(rng, 2):
        query["case"] = _number(rng)
    if path == "/cases" and _often(rng, 2):
        query["workflow"] = rng.choice(_rows(person, "SELECT DISTINCT workflow FROM workflow_instance"))
        query["stage"] = rng.choice(_rows(person, "SELECT DISTINCT state FROM workflow_instance"))
        query["overdue"] = rng.choice(["yes", "no"])
        query["at_risk"] = rng.choice(["yes", "no"])
    if query and case.query is None:
        case.query = query


def _steer_step(
    rng: random.Random, junk: str, params: dict[str, Any], body: dict[str, Any] | None, person: Person, row: Any
) -> None:
    """A step of an open workflow (one allowed now, mostly), and values for the inputs it declares."""
    _case, instance, workflow, version, state = row
    definition = person.core.catalogue.get(workflow, version)
    allowed = sorted({t for role in ("caseworker", "team_manager") for t in definition.allowed(state, role)})
    which = rng.randrange(5)  # allowed now, mostly; or another of the workflow's; or the generated one
    if which < 4:
        params["trigger"] = rng.choice(allowed if which < 3 and allowed else sorted(definition.triggers()))
    spec = definition.transition(str(params["trigger"]), state)
    if spec is None or body is None or not _often(rng):
        return
    for name, given_ in spec.inputs.items():
        if _often(rng, 5):
            body.update(_input_value(rng, given_, name, junk))
    if _often(rng, 2):
        body.update(_date_parts(rng, "on"))
    now = _rows(person, "SELECT version FROM workflow_instance WHERE id = :i", i=instance)
    body["version"] = str(now[0]) if now and _often(rng) else _number(rng)


# -- one generated request ------------------------------------------------------------------------------


def _send(data: Any, case: Any, person: Person) -> None:
    """Steer, send with the person's session and CSRF token (or, sometimes, a made-up session or a wrong
    token), check the answer, and count it."""
    # Seeded by a draw, the generated request and a count: Hypothesis draws 0 for half the seeds and
    # repeats its simplest requests, which would be steered alike. (So a failing example replayed may be
    # steered otherwise; the database has moved on by then anyway.)
    person.sent += 1
    seed = data.draw(st.integers(0, 2**32 - 1), label="steering")
    rng = random.Random(f"{seed}|{person.sent}|{case.path_parameters!r}|{case.query!r}|{case.body!r}")
    _steer(rng, data.draw(st.text(max_size=40), label="text"), case, person)
    method, path = case.method.upper(), case.operation.path
    how = data.draw(st.sampled_from(["signed in"] * 16 + ["wrong token"] * 3 + ["made-up session"]), label="how")
    if isinstance(case.body, dict) and how == "signed in":
        case.body["csrf_token"] = person.token
    headers = {"X-CSRFToken": person.token} if how == "signed in" and not isinstance(case.body, dict) else {}
    if how == "wrong token" and isinstance(case.body, dict):
        case.body["csrf_token"] = rng.choice(["", "x", person.token[:-1]])
    # The session is the person's (the cookie the sign-in set); otherwise the one the description's
    # security scheme made up, or none.
    person.client.delete_cookie("ehcp_session")
    if how == "made-up session":
        cookies = {}
    else:
        cookies = {"ehcp_session": person.cookie}
        case.cookies = {}
    response = case.call(session=person.client, headers=headers, cookies=cookies, app=person.flask)
    case.validate_response(response, checks=CHECKS)
    kind = (response.headers.get("content-type") or [""])[0]
    body = response.text if kind.startswith(("text/", "application/json", "application/yaml")) else ""
    status = response.status_code
    refused_token = status == 400 and any(words in body for words in REFUSED)
    if method == "POST" and how == "wrong token" and _routed(person, method, response.request.url):
        assert refused_token, (path, status)
    if how == "made-up session" and (method, path) not in OPEN:
        assert status in (302, 400, 401, 404), (path, status)
        assert status != 400 or refused_token, (path, status)
    # A case this person may not see: not found (or forbidden), never its data, never a change to it.
    case_id = (case.path_parameters or {}).get("case_id")
    if how == "signed in" and isinstance(case_id, int) and case_id in person.hidden:
        assert status in (403, 404) or refused_token, (path, status)
    for name in person.secrets:
        assert name not in body and html.escape(name) not in body, (path, status, name)
    if path == "/api/cases" and status == 200:
        assert not {row["id"] for row in response.json()} & person.hidden
    reached = "CSRF" if refused_token else "form errors" if status == 400 and "govuk-error-summary" in body else "view"
    person.answers[(method, path, status, reached if how == "signed in" else how)] += 1


def _routed(person: Person, method: str, url: str | None) -> bool:
    """Whether the address is one of the application's (else it is 404 before any check of the form)."""
    from urllib.parse import unquote, urlsplit

    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import RequestRedirect

    try:
        person.flask.url_map.bind("localhost").match(unquote(urlsplit(url or "").path), method)
    except (HTTPException, RequestRedirect):
        return False
    return True


def _fuzz(person: Person, schema: Any, examples: int) -> None:
    """Every operation this person may use (someone not signed in: every one), ``examples`` generated
    requests each (more for some); the failures of all of them raised together."""
    operations = [r.ok() for r in schema.get_all_operations()]
    chosen = [
        op
        for op in operations
        if person.role == "nobody"
        or (
            (op.method.upper(), op.path) not in SESSION_ENDERS
            and op.path.startswith("/portal") == (person.role in ("family", "adviser"))
        )
    ]
    assert chosen
    failures: list[Exception] = []
    for operation in chosen:
        label = f"{operation.method.upper()} {operation.path}"
        try:
            _fuzzer(person, operation, examples * MORE.get((operation.method.upper(), operation.path), 1))()
        except Exception as exc:  # noqa: BLE001 - every operation is fuzzed; the failures are raised together
            exc.add_note(f"{label}, fuzzed as {person.role}")
            failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise ExceptionGroup(f"{len(failures)} operations failed, fuzzed as {person.role}", failures)


def _fuzzer(person: Person, operation: Any, examples: int) -> Any:
    """A Hypothesis test of one operation: requests valid by the description and not."""
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # no shrinking: the database has moved on, and a failure is shown as found
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: Any) -> None:
        _send(data, data.draw(strategy, label="request"), person)

    return run


def _by_status(answers: Counter[tuple[str, str, int, str]]) -> Counter[int]:
    found: Counter[int] = Counter()
    for key, n in answers.items():
        found[key[2]] += n
    return found


def _history(person: Person, cases: set[int]) -> list[Any]:
    if not cases:
        return []
    marks = ", ".join(str(c) for c in sorted(cases))
    with person.core.engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT c.id, c.caseworker, COUNT(h.id), MAX(h.id) FROM ehc_case c "
                    "JOIN workflow_instance i ON i.case_id = c.id LEFT JOIN history h ON h.instance_id = i.id "
                    f"WHERE c.id IN ({marks}) GROUP BY c.id, c.caseworker ORDER BY c.id"
                )
            )
        )


# -- the tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(EXAMPLES))
def test_fuzzed_requests_never_get_a_server_error_nor_anyone_elses_case(world: World, role: str) -> None:
    person = _person(world, role)
    schema = _schema(person)
    before = _history(person, person.hidden)
    everything = _history(person, set(_rows(person, "SELECT id FROM ehc_case")))
    _fuzz(person, schema, EXAMPLES[role])
    assert _history(person, person.hidden) == before, "a case this person may not see was changed"

    answers = person.answers
    total = sum(answers.values())
    posted = {k: n for k, n in answers.items() if k[0] == "POST" and k[3] in ("view", "form errors", "CSRF")}
    by_view = {k: n for k, n in posted.items() if k[3] != "CSRF"}
    print(f"{role}: {total} requests; POSTs with the session's token: {sum(posted.values())}, "
          f"answered by the view: {sum(by_view.values())}; statuses {sorted(_by_status(answers).items())}")  # fmt: skip
    assert total > 0
    if role == "nobody":
        return
    # The fuzz reaches the views: most forms sent with the session's token are answered by the view itself.
    assert posted and sum(by_view.values()) >= 0.8 * sum(posted.values()), posted
    # ... and some did what they asked (302), some were shown again with their errors (400 and an error
    # summary), and some named a record that is not there or not theirs (404); an auditor changes nothing.
    statuses = {k[2] for k in by_view}
    errors = any(k[3] == "form errors" for k in by_view)
    if role in ("caseworker", "team_manager", "family", "adviser"):
        assert {302, 404} <= statuses and errors, sorted(by_view.items())
    if role in ("caseworker", "team_manager"):  # a step's form checked, or the step taken
        assert any(k[1] == STEPS and k[2] in (302, 400) for k in by_view), sorted(by_view.items())
    if role == "head_of_service":
        assert {403, 404} <= statuses and (302 in statuses or errors), sorted(by_view.items())
    if role == "auditor":
        assert {403, 404} <= statuses and 302 not in statuses, sorted(by_view.items())
        assert _history(person, set(_rows(person, "SELECT id FROM ehc_case"))) == everything
    if role == "administrator":  # staff accounts only: every case is "not found"
        assert {302, 404} <= statuses, sorted(by_view.items())


def test_the_requests_that_found_defects_are_answered_without_a_server_error(database_url: str, tmp_path: Path) -> None:
    """Each defect the fuzz found (and, on PostgreSQL, the same kind of defect looked for by hand), as
    the request that shows it, on SQLite and PostgreSQL: the fuzz finds each only some of the time."""
    settings = _settings(tmp_path, tmp_path / "unused.sqlite").model_copy(update={"database_url": database_url})
    core = App(settings, FixedClock(TODAY), create=True)
    casey = Actor("casey.demo", "caseworker")

    def open_case(name: str, born: date, parent: str, email: str) -> int:
        return core.cases.open_case(
            name=name, date_of_birth=born, workflow="needs_assessment", actor=casey, caseworker="casey.demo",
            inputs={"request_received_on": TODAY, "requested_by": "parent"},
            contacts=[ContactRecord("parent", parent, email)],
        ).case_id  # fmt: skip

    case = open_case("Generated Child", date(2016, 4, 1), "Generated Parent", "parent@example.org")
    (contact,) = _rows_of(core, "SELECT id FROM contact WHERE case_id = :c", c=case)
    (instance,) = _rows_of(core, "SELECT id FROM workflow_instance WHERE case_id = :c", c=case)
    staff = _signed_in(core, "caseworker")

    def post(path: str, data: dict[str, Any]) -> Any:
        return staff.client.post(path, data={**data, "csrf_token": staff.token})

    # A contact's id that str.isdigit() takes and int() does not, or that no database column holds.
    for number in ("²", "9" * 30):
        assert post(f"/cases/{case}/online/invite", {"contact": number}).status_code == 404
        asked = post(f"/cases/{case}/advice", {"contact": number})
        assert asked.status_code == 400 and "Select who to ask for advice" in asked.text
    # A step's date so near the calendar's end that its time limit (6 weeks on) is no date.
    far = {"advice_requested_on-day": "28", "advice_requested_on-month": "12", "advice_requested_on-year": "9999"}
    refused = post(f"/cases/{case}/workflows/{instance}/steps/agree_to_assess", far)
    assert refused.status_code == 400 and "too far from today" in refused.text
    # The same for the version a step's form was shown at.
    assert post(f"/cases/{case}/workflows/{instance}/steps/agree_to_assess", {"version": "²"}).status_code == 302
    # Ending someone's online access for a reason with a control character in it, or only spaces.
    assert post(f"/cases/{case}/online/invite", {"contact": str(contact)}).status_code == 302
    (access,) = _rows_of(core, "SELECT public_id FROM portal_access WHERE case_id = :c", c=case)
    ended = post(f"/cases/{case}/online/{access}/end", {"reason": "moved away\x07"})
    assert ended.status_code == 302 and ended.headers["Location"].endswith(f"/cases/{case}#online")
    assert "control character" in staff.client.get(f"/cases/{case}").text
    assert post(f"/cases/{case}/online/{access}/end", {"reason": "   "}).status_code == 302
    ended_for = _rows_of(core, "SELECT end_reason FROM portal_access WHERE public_id = :p", p=access)
    assert ended_for == ["ended by the caseworker"]
    # A NUL in an id in an address (PostgreSQL refuses a query holding one): not found.
    for path in (f"/cases/{case}/documents/{'0' * 63}%00.pdf", f"/cases/{case}/files/x%00"):
        assert staff.client.get(path).status_code == 404, path
    for path in (f"/cases/{case}/online/x%00/end", f"/cases/{case}/advice/x%00/received",
                 f"/cases/{case}/advice/x%00/withdraw"):  # fmt: skip
        assert post(path, {}).status_code == 404, path
    # The audit log searched for such a case number, or for a person with a NUL; the timeliness report
    # ending in the year 1.
    head = _signed_in(core, "head_of_service")
    for query in ({"case": "²"}, {"case": "9" * 30}, {"who": "casey\x00"}):
        assert head.client.get("/audit", query_string=query).status_code == 200, query
    ending = {"to-day": "1", "to-month": "1", "to-year": "1"}
    assert head.client.get("/reports", query_string=ending).status_code == 200
    since = {"from-day": "1", "from-month": "1", "from-year": "2026"}
    assert head.client.get("/reports", query_string={**ending, **since}).status_code == 400
    # The online service: a NUL in an email address asking for a link, and in a file's id.
    nobody = _signed_in(core, "nobody")
    refused = nobody.client.post("/portal", data={"email": "parent\x00@example.org", "csrf_token": nobody.token})
    assert refused.status_code == 400 and "correct format" in refused.text
    other = open_case("Generated Other", date(2017, 5, 2), "Other Parent", "other.parent@example.org")
    (parent,) = _rows_of(core, "SELECT id FROM contact WHERE case_id = :c", c=other)
    portal = Portal(core)
    person = portal.use_link(portal.demo_link(other, parent, "family", actor=casey).rsplit("/", 1)[1])
    assert person is not None
    family = _signed_in(core, "family", person)
    (mine,) = [a.public_id for a in portal.accesses(person) if a.closed is None]
    assert family.client.get(f"/portal/cases/{mine}/files/x%00").status_code == 404
    assert family.client.get(f"/portal/cases/{mine}/documents/{'0' * 63}%00.pdf").status_code == 404
    # A form part whose name Werkzeug cannot read, without a token: anyone, signed in or not.
    unnamed = b'--x\r\nContent-Disposition: form-data; name="\n"\r\n\r\nnull\r\n--x--\r\n'
    for client, path in [
        (nobody.client, "/portal"),
        (nobody.client, "/sign-in"),
        (staff.client, f"/cases/{case}/plan/A"),
    ]:
        unread = client.post(path, data=unnamed, content_type="multipart/form-data; boundary=x")
        assert unread.status_code == 400 and "The form could not be read" in unread.text, path
    core.engine.dispose()


def _rows_of(core: App, sql: str, **params: Any) -> list[Any]:
    with core.engine.connect() as conn:
        return [r[0] if len(r) == 1 else tuple(r) for r in conn.execute(text(sql), params)]


def test_every_route_is_described_and_every_description_is_routed(world: World) -> None:
    person = _person(world, "caseworker", "routes")
    described = yaml.safe_load(DESCRIPTION.read_text(encoding="utf-8"))
    assert person.client.get("/api/openapi.yaml").data == DESCRIPTION.read_bytes()
    documented = {
        (method.upper(), path)
        for path, item in described["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    not_described = {"/static/<path:filename>"}  # the stylesheet, fonts and pictures
    routed = set()
    for rule in person.flask.url_map.iter_rules():
        if rule.rule in not_described:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_0-9]+)>", r"{\1}", rule.rule)
        routed |= {(m, path) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    assert routed - documented == set(), "routes the description does not give"
    assert documented - routed == set(), "described but not routed"
    # Every path parameter is described, with the name the route gives it.
    for path, item in described["paths"].items():
        named = set(re.findall(r"{([a-z_0-9]+)}", path))
        for method, operation in item.items():
            if method == "parameters":
                continue
            given_ = {p.get("name") or _ref(described, p["$ref"])["name"] for p in item.get("parameters", [])}
            given_ |= {p.get("name") or _ref(described, p["$ref"])["name"] for p in operation.get("parameters", [])}
            assert named <= given_, (method, path, named - given_)


def test_the_description_is_served_to_signed_in_staff_only(world: World) -> None:
    person = _person(world, "nobody", "served-nobody")
    answer = person.client.get("/api/openapi.yaml")
    assert answer.status_code == 401 and answer.get_json() == {"error": "sign in first"}
    staff = _person(world, "administrator", "served-administrator")
    served = staff.client.get("/api/openapi.yaml")
    assert served.status_code == 200 and served.mimetype == "application/yaml"
    assert served.headers["Cache-Control"] == "no-store"
    schema = schemathesis.openapi.from_dict(yaml.safe_load(served.data))
    schema.validate()  # a valid OpenAPI 3.0 document
