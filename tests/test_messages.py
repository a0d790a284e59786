"""Every message a workflow names exists, renders in plain words, and a family's says what it must."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from conftest import ROOT

from engine.catalogue import Catalogue
from engine.messages import Messages, long_date

STAFF_MESSAGES = {"deadline_reminder", "deadline_escalation", "daily_digest", "delivery_failed"}
# Queued by the service itself: a correction, a reset sign-in, and the online service's (engine.portal).
ENGINE_MESSAGES = {
    "step_corrected",
    "sign_in_setup",
    "portal_invitation",
    "portal_advice_request",
    "portal_link",
    "portal_code",
    "portal_received",
}
CHALLENGEABLE = {
    "decision_not_to_assess",
    "decision_not_to_issue",
    "final_plan_issued",
    "review_decision_keep",
    "amended_plan_issued",
    "decision_not_to_amend",
    "decision_to_cease",
    "reassessment_refused",
    "reassessment_final_plan",
    "reassessment_not_amended",
}


def _named() -> dict[str, tuple[str, str, str]]:
    """template -> (workflow, state, description), from every state's on_enter messages."""
    out: dict[str, tuple[str, str, str]] = {}
    for d in Catalogue.from_folder(ROOT / "workflows").all():
        for name, state in d.states.items():
            for m in state.on_enter.messages:
                out.setdefault(m.template, (d.title, name, " ".join(state.description.split())))
    return out


def _context(workflow: str, state: str, description: str) -> dict[str, object]:
    return {
        "case": {"id": 41, "name": "Alex Example"},
        "recipient": {"name": "Sam Example", "role": "parent"},
        "workflow": workflow,
        "state": {"name": state, "description": description},
        "on": date(2026, 3, 2),
        "trigger": "x",
        "inputs": {},
        "council_deadlines": [
            {"title": "Issue the final plan", "due_on": date(2026, 5, 25), "source": "SEND Regulations 2014 reg 13(2)"}
        ],
        "family_deadlines": [
            {"title": "Your time to appeal", "due_on": date(2026, 5, 2), "source": "TPR 2008 rule 20(1)"}
        ],
        "contact": {"name": "Casey Demo", "email": "casey.demo@example.org"},
        "sent_on": date(2026, 3, 2),
    }


NAMED = _named()


def _is_notice(template: str) -> bool:
    """A statutory notice to a professional body (it extends _notice.txt), not a family's message."""
    text = (ROOT / "templates" / "messages" / f"{template}.txt").read_text(encoding="utf-8")
    return text.startswith('{% extends "_notice.txt" %}')


NOTICES = sorted(t for t in NAMED if _is_notice(t))


@pytest.mark.parametrize("template", sorted(t for t in NAMED if not _is_notice(t)))
def test_every_message_a_workflow_names_renders_for_a_family(template: str) -> None:
    messages = Messages(ROOT / "templates", "Demo County Council")
    workflow, state, description = NAMED[template]
    rendered = messages.render(template, _context(workflow, state, description))
    # A family's mailbox may be shared: the subject gives the case reference and the date, never the
    # child (tests/test_message_privacy.py checks every message for names and decisions).
    assert rendered.subject.startswith("Case 41: a ") and "Alex Example" not in rendered.subject
    assert "\n" not in rendered.subject
    text = rendered.text
    assert text.startswith("This message is from Demo County Council's SEND service about case 41.")
    assert "\n\nDear Sam Example,\n\n" in text and "Alex Example" in text
    assert description in text  # what it means, in the workflow file's own plain words
    assert "- Issue the final plan: by Monday 25 May 2026 (SEND Regulations 2014 reg 13(2))" in text
    assert "- Your time to appeal: until Saturday 2 May 2026 (TPR 2008 rule 20(1))" in text
    assert "contact Casey Demo at casey.demo@example.org" in text
    assert ("right to mediation and to appeal" in text) == (template in CHALLENGEABLE)
    assert "{{" not in text and "{%" not in text and "\n\n\n" not in text
    html = messages.html(rendered)
    assert '<html lang="en-GB">' in html and "<ul><li>" in html and "<script" not in html


@pytest.mark.parametrize("template", NOTICES)
def test_every_notice_to_a_professional_body_names_its_regulation_and_no_child_in_the_subject(template: str) -> None:
    messages = Messages(ROOT / "templates", "Demo County Council")
    workflow, state, description = NAMED[template]
    rendered = messages.render(template, _context(workflow, state, description))
    # A shared inbox at a school or health body sees the subject: a case reference, not a name.
    assert "Alex Example" not in rendered.subject and "41" in rendered.subject
    text = rendered.text
    assert text.startswith("This message is from Demo County Council's SEND service about case 41.")
    assert "\n\nDear Sam Example,\n\n" in text and "Alex Example" in text
    assert "Regulations 2014, regulation" in text  # the law that says they must be told
    assert "- Issue the final plan: by Monday 25 May 2026 (SEND Regulations 2014 reg 13(2))" in text
    assert "Your time to appeal" not in text and "right to mediation and to appeal" not in text
    assert "{{" not in text and "{%" not in text and "\n\n\n" not in text


def test_no_message_template_is_unused_and_none_is_missing() -> None:
    files = {p.stem for p in (ROOT / "templates" / "messages").glob("*.txt") if not p.stem.startswith("_")}
    assert files == set(NAMED) | STAFF_MESSAGES | ENGINE_MESSAGES


def test_a_message_sent_late_never_gives_a_past_date_as_one_still_to_come() -> None:
    context = _context("EHC needs assessment", "request_received", "The council has received a request.")
    context["sent_on"] = date(2026, 5, 10)  # after both dates of the context
    text = Messages(ROOT / "templates", "Demo County Council").render("final_plan_issued", context).text
    assert "- Issue the final plan: was due by Monday 25 May 2026" not in text  # 25 May is still to come
    assert "- Issue the final plan: by Monday 25 May 2026" in text
    assert "- Your time to appeal: ended on Saturday 2 May 2026 (TPR 2008 rule 20(1))" in text
    assert "until Saturday 2 May 2026" not in text


def test_the_correction_message_says_which_step_was_reversed_and_where_things_stand() -> None:
    context = _context("EHC needs assessment", "request_received", "The council has received a request.")
    context["inputs"] = {"reverses": [2], "steps": ["refuse_to_assess"]}
    rendered = Messages(ROOT / "templates", "Demo County Council").render("step_corrected", context)
    assert rendered.subject.startswith("Case 41: a correction to an earlier letter")
    assert "Alex Example" not in rendered.subject and "Alex Example" in rendered.text
    assert "(refuse to assess)" in rendered.text and "please disregard that message" in rendered.text
    assert "The council has received a request." in rendered.text


def test_html_part_escapes_what_it_is_given() -> None:
    from engine.messages import Rendered

    html = Messages(ROOT / "templates", "Council <b>").html(Rendered("A & B", "Dear <x>,\n\n- one & two\n"))
    assert "<b>" not in html and "&lt;x&gt;" in html and "<li>one &amp; two</li>" in html


def test_long_dates_read_as_gov_uk_writes_them() -> None:
    assert long_date(date(2026, 2, 2)) == "Monday 2 February 2026"


def test_demo_sends_every_message_it_queues(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from engine.cli import app

    config = tmp_path / "config.yaml"
    config.write_text(
        (ROOT / "config.yaml")
        .read_text()
        .replace(
            "workflows_dir: workflows", f"workflows_dir: {ROOT / 'workflows'}\ntemplates_dir: {ROOT / 'templates'}"
        )
    )
    result = CliRunner().invoke(app, ["--config", str(config), "demo", "--cases", "40", "--as-of", "2026-06-01"])
    assert result.exit_code == 0, result.output
    assert "The sweep (ehcp tick --as-of 2026-06-01)" in result.output
    out = CliRunner().invoke(app, ["--config", str(config), "outbox", "--json", "--limit", "100000"])
    import json

    rows = json.loads(out.output)
    statuses = {r["status"] for r in rows}
    # Held for want of a contact: the notices the regulations name to the health body, social care or a
    # setting that a case has not recorded (listed on the case until a contact is added).
    waiting = ("sent", "skipped", "to_address")
    assert statuses <= set(waiting), [r for r in rows if r["status"] not in waiting][:3]
    assert "to_address" in statuses
    kinds = {r["kind"] for r in rows}
    assert {"step", "reminder", "escalation", "digest"} <= kinds
    assert list((tmp_path / "data" / "outbox").glob("*.eml")) and list(
        (tmp_path / "data" / "outbox" / "letters").glob("*.pdf")
    )
