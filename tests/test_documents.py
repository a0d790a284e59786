"""Plans and documents: versioned plan data, PDFs parsed back and checked, golden HTML, the queue.

A generated example case (no real child) is stepped through the shipped needs assessment and an
annual review; its plan is docs/examples/plan.yaml.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CW, CW2, ROOT, STAFF, documents_app
from pypdf import PdfReader
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from engine.app import App
from engine.cli import app as cli
from engine.clock import FixedClock
from engine.errors import InvalidInput
from engine.plandiff import diff_plan, to_text
from engine.store.repository import ContactRecord

GOLDEN = Path(__file__).parent / "golden" / "documents"
EXAMPLE = yaml.safe_load((ROOT / "docs" / "examples" / "plan.yaml").read_text())


def make(database_url: str, tmp_path: Path, clock: FixedClock) -> App:
    return documents_app(tmp_path, clock, database_url)


def assessed(app: App, clock: FixedClock) -> int:
    """Sam Example: request 5 January 2026, assessment agreed, plan written, draft sent 13 April."""
    clock.set(date(2026, 1, 5))
    case_id = app.cases.open_case(
        name="Sam Example",
        date_of_birth=date(2017, 9, 14),
        workflow="needs_assessment",
        actor=CW,
        contacts=[ContactRecord("parent", "Alex Example", "alex@example.org")],
        caseworker="cw",
    ).case_id
    clock.set(date(2026, 1, 19))
    app.cases.fire(case_id, "agree_to_assess", actor=CW)
    app.plans.edit(case_id, EXAMPLE, actor=CW)
    clock.set(date(2026, 4, 1))
    app.cases.fire(case_id, "decide_to_issue", actor=CW)
    clock.set(date(2026, 4, 13))
    app.cases.fire(case_id, "issue_draft_plan", actor=CW)
    return case_id


def consulted(app: App, clock: FixedClock, case_id: int) -> None:
    clock.set(date(2026, 4, 20))
    app.cases.fire(case_id, "consult_institutions", actor=CW, inputs={"institutions": "Demo Primary School"})


def issued(app: App, clock: FixedClock) -> int:
    case_id = assessed(app, clock)
    consulted(app, clock, case_id)
    clock.set(date(2026, 5, 15))
    app.cases.fire(case_id, "issue_final_plan", actor=CW, inputs={"named_institution": "Demo Primary School"})
    return case_id


def pages(path: str | Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(str(path)).pages]


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Any:
    a = make(f"sqlite:///{tmp_path / 'cases.sqlite'}", tmp_path, FixedClock(date(2026, 1, 5)))
    yield a
    a.engine.dispose()


# -- plans as data -----------------------------------------------------------------------------


def test_a_plan_is_versioned_and_every_edit_says_who_changed_what(sqlite_app: App) -> None:
    app, clock = sqlite_app, sqlite_app.clock
    assert isinstance(clock, FixedClock)
    case_id = assessed(app, clock)
    versions = app.plans.versions(case_id, actor=CW)
    assert [(v.version, v.status, v.issued_on) for v in versions] == [(1, "shared", date(2026, 4, 13))]
    # The family's comments lead to a change: a new draft, based on the version they saw.
    changed = app.plans.edit(case_id, {"I": "Demo Primary School"}, actor=CW2)
    assert (changed.version, changed.status, changed.based_on) == (2, "draft", 1)
    assert changed.sections["F"] == versions[0].sections["F"]
    edits = app.plans.edits(case_id, actor=CW)
    last = edits[-1]
    assert (last["version"], last["section"], last["by"]) == (2, "I", "cw2")
    assert last["before"].startswith("Demo Primary School (a maintained") and last["after"] == "Demo Primary School\n"
    with pytest.raises(InvalidInput, match="not a section"):
        app.plans.edit(case_id, {"L": "x"}, actor=CW)


def test_a_version_sent_or_issued_cannot_be_changed_even_by_sql(database_url: str, tmp_path: Path) -> None:
    clock = FixedClock(date(2026, 1, 5))
    app = make(database_url, tmp_path, clock)
    case_id = issued(app, clock)
    assert [(v.version, v.status) for v in app.plans.versions(case_id, actor=CW)] == [
        (1, "shared"),
        (2, "issued"),
    ]
    for version in (1, 2):
        with pytest.raises(DBAPIError, match="cannot be changed"), app.engine.begin() as conn:
            conn.execute(
                text("UPDATE plan_version SET sections = '{}' WHERE case_id = :c AND version = :v"),
                {"c": case_id, "v": version},
            )
    with pytest.raises(DBAPIError, match="append-only"), app.engine.begin() as conn:
        conn.execute(text("DELETE FROM plan_edit"))
    # An insert that replaces a row cannot rewrite one either: SQLite's REPLACE deletes the old row
    # without its DELETE trigger; PostgreSQL's ON CONFLICT DO UPDATE fires the UPDATE trigger.
    if app.engine.dialect.name == "sqlite":
        attempts = [
            ("INSERT OR REPLACE INTO history SELECT * FROM history WHERE id = 1", "append-only"),
            ("REPLACE INTO plan_edit SELECT * FROM plan_edit WHERE id = 1", "append-only"),
            ("INSERT OR REPLACE INTO plan_version SELECT * FROM plan_version WHERE version = 2", "cannot be changed"),
        ]
    else:
        attempts = [
            (
                "INSERT INTO history SELECT * FROM history WHERE id = 1 ON CONFLICT (id) DO UPDATE SET actor = 'x'",
                "append-only",
            ),
            (
                "INSERT INTO plan_version SELECT * FROM plan_version WHERE version = 2 "
                "ON CONFLICT (id) DO UPDATE SET sections = '{}'",
                "cannot be changed",
            ),
        ]
    for statement, refusal in attempts:
        with pytest.raises(DBAPIError, match=refusal), app.engine.begin() as conn:
            conn.execute(text(statement))
    with app.engine.connect() as conn:
        assert conn.execute(text("SELECT actor FROM history WHERE id = 1")).scalar_one() == "cw"
    app.engine.dispose()


def test_issuing_a_plan_runs_the_quality_check_and_a_reason_to_go_ahead_is_kept(sqlite_app: App) -> None:
    app, clock = sqlite_app, sqlite_app.clock
    assert isinstance(clock, FixedClock)
    case_id = assessed(app, clock)
    app.plans.edit(case_id, {"F": EXAMPLE["F"] + "- Access to speech and language therapy as required.\n"}, actor=CW)
    consulted(app, clock, case_id)
    clock.set(date(2026, 5, 15))
    with pytest.raises(InvalidInput) as refused:
        app.cases.fire(case_id, "issue_final_plan", actor=CW, inputs={"named_institution": "Demo Primary"})
    assert "not ready to issue" in str(refused.value) and '"Access to"' in str(refused.value)
    assert "nothing was saved" in str(refused.value)
    assert [v.status for v in app.plans.versions(case_id, actor=CW)] == ["shared", "draft"]
    app.cases.fire(
        case_id,
        "issue_final_plan",
        actor=CW,
        inputs={"named_institution": "Demo Primary"},
        accept_quality="Therapy hours agreed at panel; wording corrected at the first review",
    )
    assert [v.status for v in app.plans.versions(case_id, actor=CW)] == ["shared", "issued"]
    with app.engine.connect() as conn:
        note = conn.execute(text("SELECT note FROM history WHERE trigger = 'issue_final_plan'")).scalar_one()
    assert "despite its quality check: Therapy hours agreed at panel" in note


# -- the documents, parsed back ----------------------------------------------------------------


def test_the_draft_plan_is_an_accessible_pdf_marked_draft_on_every_page(sqlite_app: App) -> None:
    app, clock = sqlite_app, sqlite_app.clock
    assert isinstance(clock, FixedClock)
    case_id = assessed(app, clock)
    record, _ = app.documents.render(case_id, "draft-plan", actor=CW)
    texts = pages(record.path)
    assert len(texts) >= 2
    for number, page in enumerate(texts, start=1):
        assert "DRAFT" in page and f"Page {number} of {len(texts)}" in page
        assert "Sam Example, born 14 September 2017" in page
    whole = "\n".join(texts)
    # Sections in the statute's order; a draft names no school in section I.
    found = [m.group(1) for m in re.finditer(r"Section (H1|H2|[A-K]):", whole)]
    assert found == ["A", "B", "C", "D", "E", "F", "G", "H1", "H2", "J", "K"]
    # The engine's date: the family's 15 days from 13 April 2026, counting the first day.
    assert "what you think by Monday 27 April 2026" in " ".join(whole.split())
    reader = PdfReader(record.path)
    root = reader.trailer["/Root"]
    assert root["/Lang"] == "en-GB"
    assert bool(root["/MarkInfo"]["/Marked"]) and "/StructTreeRoot" in root
    assert reader.metadata is not None and reader.metadata.title == "Draft education, health and care plan"

    def titles(items: list[Any]) -> list[str]:
        return [t for o in items for t in (titles(o) if isinstance(o, list) else [o.title])]

    bookmarks = titles(reader.outline)
    assert bookmarks[0] == "Draft education, health and care plan"
    assert [b.split(":")[0] for b in bookmarks if b.startswith("Section")] == [
        f"Section {s}" for s in ("A", "B", "C", "D", "E", "F", "G", "H1", "H2", "J", "K")
    ]


def test_the_final_plan_names_the_placement_and_the_last_date_to_appeal(sqlite_app: App) -> None:
    app, clock = sqlite_app, sqlite_app.clock
    assert isinstance(clock, FixedClock)
    case_id = issued(app, clock)
    record, _ = app.documents.render(case_id, "final-plan", actor=CW)
    assert record.plan_version == 2
    whole = "\n".join(pages(record.path))
    assert "DRAFT" not in whole
    assert "Section I: Placement" in whole and "Demo Primary School" in whole
    assert "Friday 15 May 2026" in whole
    # The disagreement the plan opened gives the date: 2 months from Fri 15 May, Wed 15 Jul 2026.
    assert "must reach the tribunal by 5pm on Wednesday 15 July 2026" in " ".join(whole.split())


def test_a_refusal_letter_states_the_rights_with_the_dates_the_engine_computed(
    database_url: str, tmp_path: Path
) -> None:
    clock = FixedClock(date(2026, 1, 5))
    app = make(database_url, tmp_path, clock)
    case_id = app.cases.open_case(
        name="Dee Dale",
        date_of_birth=date(2016, 5, 2),
        workflow="needs_assessment",
        actor=CW,
        contacts=[ContactRecord("parent", "Pat Dale", "pat@example.org")],
        caseworker="cw",
    ).case_id
    clock.set(date(2026, 2, 10))
    app.cases.fire(
        case_id, "refuse_to_assess", actor=CW, inputs={"reasons": "Needs can be met from the school's resources."}
    )
    done = app.documents.process()
    # The notice that an assessment was being considered (reg 4(2)), then the refusal.
    assert [d.kind for d in done] == ["notice_of_consideration", "decision_not_to_assess"]
    whole = " ".join("\n".join(pages(done[-1].path)).split())
    with app.engine.connect() as conn:
        due = dict(conn.execute(text("SELECT name, due_on FROM deadline WHERE case_id = :c"), {"c": case_id}).all())
    assert str(due["appeal_window"]) == "2026-04-10"
    assert "must reach the tribunal by 5pm on Friday 10 April 2026" in whole
    assert "Needs can be met from the school's resources." in whole
    assert "Dear Pat Dale," in whole and "Tuesday 10 February 2026" in whole


def test_the_amendment_notice_shows_exactly_what_changes_between_the_two_versions(sqlite_app: App) -> None:
    app, clock = sqlite_app, sqlite_app.clock
    assert isinstance(clock, FixedClock)
    case_id = issued(app, clock)
    review = app.cases.allowed_by_instance(case_id, CW)
    assert review  # the final plan started the first annual review
    clock.set(date(2027, 3, 1))
    app.cases.fire(case_id, "arrange_meeting", actor=CW, inputs={"meeting_on": date(2027, 3, 22)})
    clock.set(date(2027, 3, 22))
    app.cases.fire(case_id, "hold_meeting", actor=CW)
    clock.set(date(2027, 3, 29))
    app.cases.fire(case_id, "receive_report", actor=CW)
    new_f = EXAMPLE["F"].replace("3 sessions of 30 minutes", "2 sessions of 30 minutes")
    app.plans.edit(case_id, {"F": new_f}, actor=CW)
    clock.set(date(2027, 4, 5))
    app.cases.fire(case_id, "propose_amendments", actor=CW)
    made = app.documents.process()
    assert [d.decision for d in made if d.kind == "review_decision_amend"] == ["review-amend"]
    (notice,) = [d for d in made if d.kind == "amendment_notice"]
    assert notice.plan_version == 3
    whole = " ".join("\n".join(pages(notice.path)).split())
    assert "[removed: 3" in whole and "[added: 2" in whole
    assert "Section F: Special educational provision" in whole and "Section B:" not in whole
    assert "Monday 19 April 2027" in whole
    # The notice's changes are the diff of the two versions, word for word.
    v2, v3 = (app.plans.get(case_id, v, actor=CW).sections for v in (2, 3))
    expected = to_text(diff_plan(v2, v3))
    for run in re.findall(r"\[(?:added|removed): [^\]]+\]", expected):
        assert " ".join(run.split()) in whole


def test_an_advice_request_gives_the_advisers_due_date(sqlite_app: App) -> None:
    app, clock = sqlite_app, sqlite_app.clock
    assert isinstance(clock, FixedClock)
    case_id = assessed(app, clock)
    record, _ = app.documents.render(case_id, "advice-request", actor=CW, adviser="psychological")
    whole = " ".join("\n".join(pages(record.path)).split())
    assert "Request for psychological advice" in whole
    assert "Please reply by" in whole and "Monday 2 March 2026" in whole  # 6 weeks from 19 January (reg 8(1))


# -- storage: byte-identical, never rendered twice, the queue ----------------------------------


def test_the_same_inputs_give_the_same_bytes_and_are_not_rendered_twice(sqlite_app: App) -> None:
    app, clock = sqlite_app, sqlite_app.clock
    assert isinstance(clock, FixedClock)
    case_id = issued(app, clock)
    first, rendered = app.documents.render(case_id, "final-plan", actor=CW)
    again, _ = app.documents.render(case_id, "final-plan", actor=CW)
    assert (again.sha256, again.path, again.reused, first.reused) == (first.sha256, first.path, True, False)
    # Rendering the same HTML afresh gives identical bytes (fonts' timestamps are pinned).
    assert app.documents.pdf(rendered.html) == Path(first.path).read_bytes()
    # A change to the inputs is a new document.
    app.plans.edit(case_id, {"A": EXAMPLE["A"] + "Sam now also likes swimming.\n"}, actor=CW)
    # A version not issued is never printed as a final plan (it has no DRAFT mark): refused.
    with pytest.raises(InvalidInput, match="has not been issued"):
        app.documents.render(case_id, "final-plan", version=3, actor=CW)
    changed, _ = app.documents.render(case_id, "draft-plan", version=3, actor=CW)
    assert changed.sha256 != first.sha256 and not changed.reused
    # Without a version, the final plan is the one issued, not the newer draft.
    latest, _ = app.documents.render(case_id, "final-plan", actor=CW)
    assert latest.sha256 == first.sha256
    listed = app.documents.list(case_id, actor=CW)
    assert {"kind", "sha256", "bytes", "plan_version", "created"} <= set(listed[-1])


def test_steps_queue_documents_and_the_queue_renders_each_once_even_after_a_crash(
    database_url: str, tmp_path: Path
) -> None:
    clock = FixedClock(date(2026, 1, 5))
    app = make(database_url, tmp_path, clock)
    case_id = assessed(app, clock)
    listed = app.documents.list(case_id, actor=CW)
    assert [(d["kind"], d["decision"], d["workflow_kind"], d["made_by"], d["status"]) for d in listed] == [
        ("decision-letter", "considering-assessment", "notice_of_consideration", "step", "queued"),  # reg 4(2)
        ("decision-letter", "to-assess", "decision_to_assess", "step", "queued"),
        ("advice-request", None, "advice_request", "step", "queued"),
        ("decision-letter", "to-issue", "decision_to_issue", "step", "queued"),
        ("draft-plan", None, "draft_plan", "step", "queued"),
    ]
    assert listed[4]["plan_version"] == 1 and listed[4]["history_seq"] == 4
    # A worker claimed the first and died: it is taken up again once its lease has run out.
    with app.engine.begin() as conn:
        conn.execute(
            text("UPDATE document SET status = 'rendering', claimed_at = :at WHERE id = 1"),
            {"at": FixedClock(date(2026, 4, 13)).now()},
        )
    assert [d.kind for d in app.documents.process()] == [
        "decision_to_assess",
        "advice_request",
        "decision_to_issue",
        "draft_plan",
    ]
    assert app.documents.process() == []
    clock.set(date(2026, 4, 14))
    assert [d.kind for d in app.documents.process()] == ["notice_of_consideration"]
    statuses = [d["status"] for d in app.documents.list(case_id, actor=CW)]
    assert statuses == ["ready"] * 5


# -- golden HTML -------------------------------------------------------------------------------


GOLDEN_DOCS = [
    ("draft-plan", {}),
    ("final-plan", {}),
    ("decision-letter", {"decision": "to-assess"}),
    ("decision-letter", {"decision": "not-to-issue"}),
    ("decision-letter", {"decision": "to-issue"}),
    ("decision-letter", {"decision": "review-amend"}),
    ("advice-request", {"adviser": "educational"}),
    ("amendment-notice", {}),
]


@pytest.mark.parametrize(("kind", "options"), GOLDEN_DOCS, ids=["-".join([k, *o.values()]) for k, o in GOLDEN_DOCS])
def test_each_template_renders_the_golden_html_for_the_example_case(
    sqlite_app: App, kind: str, options: dict[str, str]
) -> None:
    app, clock = sqlite_app, sqlite_app.clock
    assert isinstance(clock, FixedClock)
    case_id = issued(app, clock)
    version = 1 if kind == "draft-plan" else None
    if kind == "amendment-notice":
        new_f = EXAMPLE["F"].replace("3 sessions of 30 minutes", "2 sessions of 45 minutes")
        app.plans.edit(case_id, {"F": new_f, "I": "Demo Junior School"}, actor=CW)
    page = app.documents.html(case_id, kind, version=version, **options).html
    name = "-".join([kind, *options.values()]) + ".html"
    golden = GOLDEN / name
    if os.environ.get("EHCP_UPDATE_GOLDEN") or not golden.exists():
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(page, encoding="utf-8")
        if not os.environ.get("EHCP_UPDATE_GOLDEN"):
            pytest.fail(f"wrote {golden}: check it by eye, then commit it")
    assert page == golden.read_text(encoding="utf-8"), f"{name} differs; EHCP_UPDATE_GOLDEN=1 rewrites it"


# -- the command line --------------------------------------------------------------------------


def test_the_command_line_edits_checks_renders_and_lists(tmp_path: Path) -> None:
    settings = {
        "database_url": f"sqlite:///{tmp_path / 'cli.sqlite'}",
        "workflows_dir": str(ROOT / "workflows"),
        "templates_dir": str(ROOT / "templates"),
        "documents_dir": str(tmp_path / "documents"),
        "staff": [s.model_dump() for s in STAFF],
        "accounts": {"*": "cw"},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings))

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == code, result.output
        return result.output

    run("db", "init")
    run(
        "case",
        "open",
        "--name",
        "Sam Example",
        "--dob",
        "2017-09-14",
        "--workflow",
        "needs_assessment",
        "--on",
        "2026-01-05",
        "--contact",
        "parent:Alex Example:alex@example.org",
        "--caseworker",
        "cw",
    )
    run("case", "fire", "1", "refuse_to_assess", "--on", "2026-02-10", "--set", "reasons=Needs met in school")
    vague = tmp_path / "f.md"
    vague.write_text("### Communication and interaction\n- Regular support from an adult.\n")
    out = run("plan", "edit", "1", "--section", "F", "--file", str(vague))
    assert "draft plan version 1 saved (F)" in out and "vague_provision" not in out and "Vague wording" in out
    assert "Vague wording" in run("plan", "check", "1", code=1)
    pdf = tmp_path / "letter.pdf"
    out = run("docs", "render", "1", "decision-letter", "--decision", "not-to-assess", "--out", str(pdf))
    assert pdf.exists() and "Friday 10 April 2026" in " ".join("\n".join(pages(pdf)).split())
    # --out never writes over a file unless asked to: the one there stays as it was.
    pdf.write_bytes(b"someone else's file")
    refused = CliRunner().invoke(
        cli, ["--config", str(config), "docs", "render", "1", "decision-letter", "--decision", "not-to-assess",
              "--out", str(pdf)],
    )  # fmt: skip
    assert refused.exit_code == 1 and "exists; choose another name, or add --force" in refused.stderr
    assert pdf.read_bytes() == b"someone else's file"
    run("docs", "render", "1", "decision-letter", "--decision", "not-to-assess", "--out", str(pdf), "--force")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    rows = json.loads(run("docs", "list", "1", "--json"))
    assert rows[-1]["kind"] == "decision-letter" and rows[-1]["sha256"] and rows[-1]["bytes"] > 1000
    assert "not-to-assess" in run("docs", "render", "--help")
    err = CliRunner().invoke(cli, ["--config", str(config), "docs", "render", "1", "decision-letter"])
    assert err.exit_code == 1 and "--decision" in err.output


def test_the_councils_logo_from_its_settings_heads_every_document(tmp_path: Path) -> None:
    clock = FixedClock(date(2026, 1, 5))
    app = make(f"sqlite:///{tmp_path / 'cases.sqlite'}", tmp_path, clock)
    council = app.settings.council.model_copy(update={"logo": str(ROOT / "docs" / "examples" / "logo.svg")})
    app = App(app.settings.model_copy(update={"council": council}), clock, create=True)
    case_id = assessed(app, clock)
    rendered = app.documents.html(case_id, "decision-letter", decision="to-assess")
    assert '<img class="logo" src="file://' in rendered.html and 'alt="Demo County Council"' in rendered.html
    record, _ = app.documents.render(case_id, "decision-letter", decision="to-assess", actor=CW)
    page = PdfReader(record.path).pages[0]
    assert "/XObject" in page["/Resources"]  # the logo, drawn
    app.engine.dispose()


def test_several_processes_render_the_queue_each_document_once(tmp_path: Path) -> None:
    """`ehcp docs process --workers N`: each worker renders its documents in a child process of its
    own (time and memory limits), so the workers cannot be daemonic pool processes."""
    clock = FixedClock(date(2026, 1, 5))
    app = make(f"sqlite:///{tmp_path / 'cases.sqlite'}", tmp_path, clock)
    for _ in range(2):
        assessed(app, clock)
    with app.engine.connect() as conn:
        queued = conn.execute(text("SELECT count(*) FROM document WHERE status = 'queued'")).scalar_one()
    assert queued >= 2
    assert app.documents.process_in_parallel(2) == queued
    with app.engine.connect() as conn:
        statuses = [r[0] for r in conn.execute(text("SELECT status FROM document"))]
    assert statuses and set(statuses) == {"ready"}
