"""Every kind of document rendered with hostile values (a name that tries to end the CSS string of the
page heading, load a URL and hide the rights section; markup in reasons and plan text): the PDF still
says everything a family must read, shows the values as text, and nothing is fetched from anywhere."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import CW, ROOT, documents_app
from pypdf import PdfReader

from engine.clock import FixedClock
from engine.documents import DECISIONS, _project_only_fetcher
from engine.errors import InvalidInput
from engine.store.repository import ContactRecord


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    """A web server on loopback that records every request: a document must never reach it."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], hits
    server.shutdown()
    server.server_close()


def text_of(path: str | Path) -> str:
    return " ".join(" ".join(page.extract_text() for page in PdfReader(str(path)).pages).split())


def test_every_document_kind_keeps_its_sections_and_fetches_nothing(
    tmp_path: Path, listener: tuple[int, list[str]]
) -> None:
    port, hits = listener
    leak = f"http://127.0.0.1:{port}/leak"
    name = f'Zoë "}} *{{background:url({leak})}} .rights{{display:none}} </style>'
    assert len(name) <= 100
    markup = f'<script>alert(1)</script><img src="{leak}"> **bold** url({leak})'
    clock = FixedClock(date(2026, 1, 5))
    app = documents_app(tmp_path, clock)
    # Control characters are refused at intake (a carriage return ended the CSS string before).
    with pytest.raises(InvalidInput, match="control character"):
        app.cases.open_case(
            name="Zoë\r} html{x}", date_of_birth=date(2016, 4, 1), workflow="needs_assessment", actor=CW,
            caseworker="cw",
        )  # fmt: skip
    case = app.cases.open_case(
        name=name,
        date_of_birth=date(2016, 4, 1),
        workflow="needs_assessment",
        actor=CW,
        contacts=[ContactRecord("parent", f"{name[:60]} parent", "p@example.org")],
        caseworker="cw",
    ).case_id
    clock.set(date(2026, 1, 19))
    app.cases.fire(case, "agree_to_assess", actor=CW)
    sections = {s: f"Section {s} text. {markup}" for s in ("A", "B", "C", "D", "E", "G", "H1", "H2", "J", "K")}
    sections["F"] = "- Speech and language therapy from a therapist: 2 sessions of 30 minutes each week, in school."
    app.plans.edit(case, sections, actor=CW)
    clock.set(date(2026, 3, 2))
    app.cases.fire(case, "decide_to_issue", actor=CW)
    app.cases.fire(case, "issue_draft_plan", actor=CW)
    app.cases.fire(case, "consult_institutions", actor=CW, inputs={"institutions": markup})
    clock.set(date(2026, 3, 20))
    app.cases.fire(
        case,
        "issue_final_plan",
        actor=CW,
        inputs={"named_institution": markup, "family_responded": "yes"},
        accept_quality="Generated test plan",
    )
    clock.set(date(2027, 1, 4))
    app.cases.fire(case, "arrange_meeting", actor=CW, inputs={"meeting_on": date(2027, 1, 25)})
    clock.set(date(2027, 1, 25))
    app.cases.fire(case, "hold_meeting", actor=CW)
    app.plans.edit(case, {"F": sections["F"].replace("2 sessions", "3 sessions")}, actor=CW)
    clock.set(date(2027, 2, 8))
    app.cases.fire(case, "propose_amendments", actor=CW)
    rendered = [(kind, None) for kind in ("draft-plan", "final-plan", "amendment-notice", "advice-request")]
    rendered += [("decision-letter", decision) for decision in DECISIONS]
    rights = {"final-plan", "not-to-assess", "not-to-issue", "review-keep", "not-to-amend", "to-cease"}
    rights |= {"not-to-reassess"}
    for kind, decision in rendered:
        version = 1 if kind == "draft-plan" else None
        record, _ = app.documents.render(case, kind, actor=CW, decision=decision, version=version)
        words = text_of(record.path)
        label = decision or kind
        assert "Zoë" in words and "</style>" in words, label  # the name, shown as text
        assert "\\" not in words, label  # no CSS escape shows
        if label in rights:
            assert "Your right to mediation and to appeal" in words or "Your rights" in words, label
            assert "5pm on" in words or "ended on" in words, label
        if kind in ("draft-plan", "final-plan"):
            assert "Section K" in words and "<script>alert(1)</script>" in words, label
    for document in app.documents.process():  # the documents the steps queued, rendered too
        assert "Zoë" in text_of(document.path), document.kind
    assert hits == [], hits
    app.engine.dispose()


def test_the_renderer_loads_only_the_project_s_files(tmp_path: Path, listener: tuple[int, list[str]]) -> None:
    port, hits = listener
    secret = tmp_path / "secret.css"
    secret.write_text("body { background: red }")
    app = documents_app(tmp_path, FixedClock(date(2026, 1, 5)))
    page = (
        f'<html><head><link rel="stylesheet" href="http://127.0.0.1:{port}/style.css">'
        f'<link rel="stylesheet" href="{secret.as_uri()}"></head>'
        f'<body><img src="http://127.0.0.1:{port}/pixel.png" alt="x"><p>Text stays.</p></body></html>'
    )
    assert "Text stays." in text_of_bytes(app.documents.pdf(page), tmp_path)
    assert hits == []
    fetcher = _project_only_fetcher(app.documents._allowed_files())  # noqa: SLF001 - the rule itself
    with pytest.raises(ValueError, match="only the project's templates"):
        fetcher.fetch(secret.as_uri())
    with pytest.raises(ValueError, match="only the project's templates"):
        fetcher.fetch(f"http://127.0.0.1:{port}/x")
    assert fetcher.fetch((ROOT / "templates" / "documents" / "base.html").as_uri()) is not None
    app.engine.dispose()


def text_of_bytes(data: bytes, folder: Path) -> str:
    path = folder / "page.pdf"
    path.write_bytes(data)
    return text_of(path)


def test_a_document_over_its_time_limit_is_tried_once_more_then_failed_and_the_sweep_goes_on(
    tmp_path: Path,
) -> None:
    from engine.scheduler import run_once

    clock = FixedClock(date(2026, 1, 5))
    app = documents_app(tmp_path, clock, render_timeout_seconds=0.01)
    case = app.cases.open_case(
        name="Generated Child", date_of_birth=date(2016, 4, 1), workflow="needs_assessment", actor=CW,
        caseworker="cw", contacts=[ContactRecord("parent", "Generated Parent", "p@example.org")],
    ).case_id  # fmt: skip
    clock.set(date(2026, 3, 1))  # the 6 weeks have passed: the sweep has a breach to record
    ticked = run_once(app, send=False)
    assert len(ticked.swept.breaches) == 1  # swept first, whatever the documents do
    assert (ticked.rendered, ticked.not_rendered) == (0, 1)
    listed = app.documents.list(case, actor=CW)
    assert [(d["status"], "longer than 0.01 seconds" in d["error"]) for d in listed] == [("failed", True)]
    with app.engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT attempts FROM document")).scalar_one() == 2
    app.engine.dispose()
