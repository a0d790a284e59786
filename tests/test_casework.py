"""Casework a council can trust, at the service (the command line and the web inherit it): names
kept sensibly and printed once-escaped, every case with a known caseworker or the team's inbox."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from conftest import CW, documents_app
from pypdf import PdfReader

from engine.app import App
from engine.cases import NAME_LIMIT
from engine.clock import FixedClock
from engine.errors import InvalidInput, TransitionRefused
from engine.store.repository import ContactRecord


def opened(app: App, name: str, **kw: object) -> int:
    args: dict[str, object] = {
        "name": name,
        "date_of_birth": date(2016, 4, 1),
        "workflow": "needs_assessment",
        "actor": CW,
        "caseworker": "cw",
        **kw,
    }
    return app.cases.open_case(**args).case_id  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("A" * (NAME_LIMIT + 1), f"the limit is {NAME_LIMIT}"),
        ("Alex\nExample", "line break"),
        ("Alex\r}} html{background:url(x)}", "line break"),
        ("Alex\x00Example", "control character"),
    ],
)
def test_a_name_is_refused_with_the_reason_and_nothing_is_saved(shipped_app: App, name: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        opened(shipped_app, name)
    with pytest.raises(InvalidInput, match=problem):
        opened(shipped_app, "Alex Example", contacts=[ContactRecord("parent", name, "p@example.org")])
    assert shipped_app.store.unit  # the database is untouched:
    with shipped_app.store.unit() as unit:
        assert unit.fetch("SELECT COUNT(*) FROM ehc_case", {})[0][0] == 0


def test_a_name_is_kept_with_its_spaces_tidied(shipped_app: App) -> None:
    case = opened(shipped_app, "  Siobhán   O'Brien  ")
    with shipped_app.store.unit() as unit:
        assert unit.fetch("SELECT name FROM ehc_case WHERE id = :c", {"c": case})[0][0] == "Siobhán O'Brien"


def test_an_unknown_caseworker_is_refused_and_says_who_is_known(shipped_app: App) -> None:
    with pytest.raises(InvalidInput, match="'nobody.here' is not a member of staff.*caseworkers: cw, cw2"):
        opened(shipped_app, "Alex Example", caseworker="nobody.here")
    with pytest.raises(InvalidInput, match="hos is a head_of_service"):
        opened(shipped_app, "Alex Example", caseworker="hos")
    assert opened(shipped_app, "Alex Example", caseworker="cw2@example.org")  # by email too


def test_a_name_with_a_quote_is_printed_once_escaped_in_the_pdf_heading(tmp_path: Path) -> None:
    clock = FixedClock(date(2026, 1, 5))
    app = documents_app(tmp_path, clock)
    case = opened(app, 'Siobhán "Shiv" O\'Brien-Åberg')
    record, _ = app.documents.render(case, "decision-letter", decision="considering-assessment", actor=CW)
    text = " ".join(page.extract_text() for page in PdfReader(record.path).pages)
    assert 'Siobhán "Shiv" O\'Brien-Åberg, born 1 April 2016' in text  # the running heading
    assert "&#39;" not in text and "&quot;" not in text and "\\" not in text
    app.engine.dispose()


def test_a_letter_never_asks_for_something_by_a_date_already_past(tmp_path: Path) -> None:
    clock = FixedClock(date(2025, 1, 6))
    app = documents_app(tmp_path, clock)
    case = opened(app, "Alex Example")
    clock.set(date(2025, 2, 10))
    app.cases.fire(case, "refuse_to_assess", actor=CW, inputs={"reasons": "Generated"})
    clock.set(date(2025, 12, 2))  # long after the time to appeal (Thu 10 Apr 2025)
    record, _ = app.documents.render(case, "decision-letter", decision="review-keep", actor=CW)
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(record.path).pages).split())
    assert "Tuesday 2 December 2025" in text
    assert "ended on Thursday 10 April 2025" in text and "must reach the tribunal" not in text
    app.engine.dispose()


def test_notes_reasons_inputs_and_plan_sections_have_limits_and_no_control_characters(shipped_app: App) -> None:
    app = shipped_app
    case = opened(app, "Alex Example")
    with pytest.raises(InvalidInput, match="--note: the note is 2,001 characters long; the limit is 2,000"):
        app.cases.fire(case, "agree_to_assess", actor=CW, note="x" * 2001)
    with pytest.raises(TransitionRefused, match="input 'reasons': the text contains a control character"):
        app.cases.fire(case, "refuse_to_assess", actor=CW, inputs={"reasons": "Fine\x1b[31m"})
    with pytest.raises(TransitionRefused, match="the limit is 5,000"):
        app.cases.fire(case, "refuse_to_assess", actor=CW, inputs={"reasons": "x" * 5001})
    with pytest.raises(InvalidInput, match="--section F: section F is 50,001 characters long"):
        app.plans.edit(case, {"F": "x" * 50_001}, actor=CW)
    with pytest.raises(InvalidInput, match="--reason: the reason contains a control character"):
        app.cases.record_exception(case, "final_plan", "personal_circumstances", "a\x00b", actor=CW)
    # Line breaks are fine where text has paragraphs.
    app.cases.fire(case, "refuse_to_assess", actor=CW, inputs={"reasons": "First.\r\nSecond."}, note="a\nb")


def test_updating_a_contact_keeps_what_is_not_given_and_addresses_are_plain_text(shipped_app: App) -> None:
    app = shipped_app
    case = opened(app, "Alex Example")
    full = ContactRecord("parent", "Alex Parent", "alex@example.org", None, "post", "Polish", "large print")
    app.cases.add_contact(case, full, actor=CW)
    app.cases.add_contact(case, ContactRecord("parent", "Alex Parent", None, "3 Generated Road", ""), actor=CW)
    with app.store.unit() as unit:
        (kept,) = [c for c in unit.case_info(case).contacts if c.name == "Alex Parent"]
    assert kept == ContactRecord(
        "parent", "Alex Parent", "alex@example.org", "3 Generated Road", "post", "Polish", "large print"
    )
    for address in ("1 Road\x1b[31m", "1 Road\u202eEDOCTSOP", "x" * 501):
        with pytest.raises(InvalidInput, match="--address"):
            app.cases.add_contact(case, ContactRecord("parent", "Alex Parent", None, address, ""), actor=CW)
    # A step may not be dated before the child was born.
    with pytest.raises(InvalidInput, match="before the date of birth"):
        opened(app, "Alex Example", on=date(2010, 1, 1))


def test_a_plan_file_with_a_section_twice_or_an_alias_is_refused_with_its_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from engine.cli import app as cli

    twice = tmp_path / "twice.yaml"
    twice.write_text("F: first text\nB: needs\nF: second text\n")
    alias = tmp_path / "alias.yaml"
    alias.write_text("B: &b needs\nF: *b\n")
    config = tmp_path / "config.yaml"
    staff = "[{id: cw, name: C, email: c@example.org, role: caseworker}]"
    config.write_text(f"database_url: sqlite:///{tmp_path / 'x.sqlite'}\nstaff: {staff}\naccounts: {{'*': cw}}\n")
    for path, problem in ((twice, ":3: F: written twice"), (alias, ": F: aliases (*name) are not allowed")):
        result = CliRunner().invoke(cli, ["--config", str(config), "plan", "edit", "1", "--from", str(path)])
        assert result.exit_code in (1, 2) and problem in result.stderr, result.stderr
