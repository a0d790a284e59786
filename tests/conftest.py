"""Fixtures: a clock, a real SQLite file, a real PostgreSQL server, and the engine assembled on them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import date
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from servers import NotifyStub, PostgresCluster, SmtpServer, create_database, notify_handler, postgres_bin

from engine.actor import Actor
from engine.app import App
from engine.clock import FixedClock
from engine.config import Settings, StaffMember

ROOT = Path(__file__).resolve().parent.parent
TEST_WORKFLOWS = Path(__file__).resolve().parent / "workflows"

# The Actors of the staff below, as the shell (engine.identity, the web sign-in) establishes them.
CW = Actor("cw", "caseworker")
CW2 = Actor("cw2", "caseworker")
TM = Actor("tm", "team_manager")
HOS = Actor("hos", "head_of_service")

STAFF = [
    StaffMember(id="cw", name="Case Worker", email="cw@example.org", role="caseworker"),
    StaffMember(id="cw2", name="Second Worker", email="cw2@example.org", role="caseworker"),
    StaffMember(id="tm", name="Team Manager", email="tm@example.org", role="team_manager"),
    StaffMember(id="hos", name="Head of Service", email="hos@example.org", role="head_of_service"),
]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(date(2025, 1, 6))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on loopback; yields a URL prefix without the database name."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed (scripts/test.sh installs them)")
    cluster = PostgresCluster(bindir)
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.remove()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cases.sqlite'}"
        return
    server: str = request.getfixturevalue("postgres_server")
    yield create_database(server, f"t_{uuid.uuid4().hex[:12]}")


def documents_app(tmp_path: Path, clock: FixedClock, database_url: str | None = None, **settings: object) -> App:
    """The engine on ``database_url`` (a new SQLite file in ``tmp_path`` when none), with the shipped
    workflows and templates, so its documents render; ``settings`` are any others (render limits, say)."""
    chosen = Settings(
        database_url=database_url or f"sqlite:///{tmp_path / 'documents.sqlite'}",
        workflows_dir=str(ROOT / "workflows"),
        templates_dir=str(ROOT / "templates"),
        documents_dir=str(tmp_path / "documents"),
        staff=STAFF,
        **settings,  # type: ignore[arg-type]
    )
    return App(chosen, clock, create=True)


@pytest.fixture
def core(database_url: str, clock: FixedClock, tmp_path: Path) -> Iterator[App]:
    """The whole engine as shipped (workflows, templates, documents) on SQLite and PostgreSQL."""
    a = documents_app(tmp_path, clock, database_url)
    yield a
    a.engine.dispose()


def make_app(database_url: str, clock: FixedClock, workflows: Path = TEST_WORKFLOWS) -> App:
    settings = Settings(database_url=database_url, workflows_dir=str(workflows), staff=STAFF)
    return App(settings, clock, create=True)


@pytest.fixture
def app(database_url: str, clock: FixedClock) -> Iterator[App]:
    a = make_app(database_url, clock)
    yield a
    a.engine.dispose()


@pytest.fixture
def shipped_app(database_url: str, clock: FixedClock) -> Iterator[App]:
    a = make_app(database_url, clock, ROOT / "workflows")
    yield a
    a.engine.dispose()


# -- servers on loopback (tests/servers.py) ----------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def notify(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[NotifyStub, str]]:
    """A stub of Notify's API on loopback; yields it and its base URL."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    stub = NotifyStub(service_id=str(uuid.uuid4()), secret=str(uuid.uuid4()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), notify_handler(stub))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield stub, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
