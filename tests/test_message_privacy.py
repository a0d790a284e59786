"""A message to a family or a professional body says what happened inside it, never where a shared mailbox
shows it: the subject and the first lines of the body (the inbox preview) carry no name, need or decision.

Every template that extends ``_family.txt`` or ``_notice.txt`` is found by reading the files, so a new one
is checked without being listed here.
"""

from __future__ import annotations

import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import ROOT

from engine.catalogue import Catalogue
from engine.messages import Messages

FOLDER = ROOT / "templates" / "messages"
PREVIEW = 150  # characters of the body an inbox shows beside the subject (more than most show)

CHILD = "Zebedee Quill-Marchbanks"
CONTACT = "Ottoline Parent"
CASEWORKER = "Casimir Worker"
NAMES = ("Zebedee", "Quill", "Marchbanks", "Ottoline", "Casimir")
PORTAL = "https://send.demo.example.gov.uk/portal"

# What a shared mailbox must not learn: the decision, the process it belongs to, the child's needs.
DECISION_WORDS = re.compile(
    r"\b(decid\w*|decision\w*|refus\w*|re-?assess\w*|assess\w*|issu\w*|draft\w*|final\w*|amend\w*|ceas\w*"
    r"|end|ended|ending|ends|stop\w*|withdr\w*|tribunal\w*|mediat\w*|appeal\w*|order\w*|review\w*|transfer\w*"
    r"|moved|keep\w*|kept|continu\w*|plans?|EHC\w*|needs?|special educational|diagnos\w*|autis\w*|ADHD"
    r"|dyslexi\w*|disab\w*|agree\w*|consider\w*|will not|won't|not to)\b",
    re.IGNORECASE,
)


def _extends(path: Path) -> str | None:
    found = re.search(r"""\{%-?\s*extends\s+["'](_family|_notice)\.txt["']""", path.read_text(encoding="utf-8"))
    return found.group(1) if found else None


TEMPLATES = {p.stem: kind for p in sorted(FOLDER.glob("*.txt")) if (kind := _extends(p)) is not None}


def _states() -> dict[str, list[tuple[str, str, str]]]:
    """template -> every (workflow, state, description) whose arrival sends it, from the workflow files."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for d in Catalogue.from_folder(ROOT / "workflows").all():
        for name, state in d.states.items():
            for m in state.on_enter.messages:
                where = (d.title, name, " ".join(state.description.split()))
                if where not in out.setdefault(m.template, []):  # one state may send it to several bodies
                    out[m.template].append(where)
    return out


STATES = _states()
# A template no workflow names (a correction, queued by the service itself) is sent from any state.
CASES = [
    pytest.param(template, *where, id=f"{template}-{where[1]}")
    for template in TEMPLATES
    for where in STATES.get(template, [("EHC needs assessment", "assessing", "The council is assessing.")])
]
SETTINGS = [
    pytest.param("Demo County Council", None, id="no-portal"),
    pytest.param("Demo County Council", PORTAL, id="portal"),
    pytest.param("Bury Council", None, id="short-council-name"),  # the shortest preview before "Dear"
]


def _context(workflow: str, state: str, description: str) -> dict[str, object]:
    """What engine.dispatch gives a step's message, for a refusal the family may challenge."""
    return {
        "case": {"id": 12, "name": CHILD},
        "recipient": {"name": CONTACT, "role": "parent"},
        "workflow": workflow,
        "state": {"name": state, "description": description},
        "on": date(2026, 3, 2),
        "trigger": "refuse_to_assess",
        "inputs": {
            "reasons": f"{CHILD}'s autism and ADHD are met at SEN support",
            "steps": ["refuse_to_assess"],
            "decision": "not_to_assess",
            "review_by": "2027-01-15",
            "proposes_assessment": True,
            "advice_sent": True,
            "order": "amend_plan",
            "meeting_on": "2026-06-01",
        },
        "council_deadlines": [
            {"title": "Issue the final plan", "due_on": date(2026, 5, 25), "source": "SEND Regulations 2014 reg 13(2)"}
        ],
        "family_deadlines": [
            {
                "title": "The family's time to contact the mediation adviser before an appeal",
                "due_on": date(2026, 5, 4),
                "source": "CFA 2014 s.55(3)",
            },
            {"title": "Your time to appeal to the tribunal", "due_on": date(2026, 5, 5), "source": "TPR rule 20"},
        ],
        "contact": {"name": CASEWORKER, "email": "casimir.worker@example.org"},
        "sent_on": date(2026, 3, 2),
    }


def _leaks(text: str) -> list[str]:
    return [n for n in NAMES if n.lower() in text.lower()] + [m.group(0) for m in DECISION_WORDS.finditer(text)]


class _Text(HTMLParser):
    """The words of an HTML part, as a mail client reads them for its preview (no style sheet)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.parts.append(data)


def _html_text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return " ".join(" ".join(parser.parts).split())


def test_every_family_and_professional_template_is_found() -> None:
    assert {"decision_to_assess", "decision_not_to_issue", "step_corrected"} <= {
        t for t, kind in TEMPLATES.items() if kind == "_family"
    }
    assert {"not_issuing_notice", "cease_decision_notice"} <= {t for t, kind in TEMPLATES.items() if kind == "_notice"}
    named = {p.stem for p in FOLDER.glob("*.txt") if 'extends "_family.txt"' in p.read_text(encoding="utf-8")}
    assert named <= set(TEMPLATES)


@pytest.mark.parametrize(("council", "portal_url"), SETTINGS)
@pytest.mark.parametrize(("template", "workflow", "state", "description"), CASES)
def test_no_name_need_or_decision_in_the_subject_or_the_preview(
    template: str, workflow: str, state: str, description: str, council: str, portal_url: str | None
) -> None:
    messages = Messages(ROOT / "templates", council, portal_url)
    rendered = messages.render(template, _context(workflow, state, description))
    assert rendered.subject.startswith("Case 12: a ")
    assert _leaks(rendered.subject) == [], rendered.subject
    preview = rendered.text[:PREVIEW]
    assert _leaks(preview) == [], preview
    assert preview.startswith(f"This message is from {council}'s SEND service about case 12.")
    # The HTML part's preview: the council, the subject as a heading, then the same first lines.
    page = _html_text(messages.html(rendered))
    assert _leaks(page[: page.index("Dear")]) == []
    # The message itself still says what happened, to whom, and how to see it online.
    assert CHILD in rendered.text and f"Dear {CONTACT}," in rendered.text
    if TEMPLATES[template] == "_family" and portal_url:
        assert f"when you sign in at {portal_url}\n" in rendered.text
    else:
        assert PORTAL not in rendered.text


def test_a_family_subject_gives_the_first_date_still_open_to_them_or_else_says_who_it_is_from() -> None:
    messages = Messages(ROOT / "templates", "Demo County Council", PORTAL)
    context = _context("EHC needs assessment", "not_assessing", "The council has decided not to assess.")
    context["family_deadlines"] = [
        {"title": "Your time to appeal", "due_on": date(2026, 5, 5), "source": "TPR rule 20"},
        {"title": "Your time to contact a mediation adviser", "due_on": date(2026, 5, 4), "source": "s.55(3)"},
        {"title": "Passed already", "due_on": date(2026, 3, 1), "source": "x"},
    ]
    rendered = messages.render("decision_not_to_assess", context)
    assert rendered.subject == "Case 12: a new letter, with something you can do by Monday 4 May 2026"
    context["family_deadlines"] = []
    rendered = messages.render("decision_not_to_assess", context)
    assert rendered.subject == "Case 12: a new letter from the Demo County Council SEND service"
    assert messages.render("not_issuing_notice", context).subject == (
        "Case 12: a notice from the Demo County Council SEND service"
    )


def test_staff_subjects_name_the_case_never_the_child() -> None:
    messages = Messages(ROOT / "templates", "Demo County Council", PORTAL)
    case = {"id": 12, "name": CHILD}
    deadline = {
        "name": "decide_whether_to_assess",
        "title": "Decide whether to assess, and tell the family",
        "due_on": date(2026, 3, 16),
        "source": "SEND Regulations 2014 reg 4(1)",
        "basis": "statutory",
        "days_left": 3,
        "days_late": 2,
        "breached_on": date(2026, 3, 17),
        "excused": None,
    }
    alert = {"case": case, "recipient": {"name": CASEWORKER, "role": "caseworker"}, "deadline": deadline}
    alert |= {"workflow": "EHC needs assessment", "step": "", "kind": "reminder", "as_of": date(2026, 3, 13)}
    item = {"case_id": 12, "case_name": CHILD, "title": deadline["title"], "due_on": date(2026, 3, 16), "days": 3}
    failed = {"attempts": 3, "subject": "Case 12: a new letter", "template": "decision_to_assess"}
    failed |= {"role": "parent", "name": CONTACT, "error": "550 no such mailbox"}
    rendered = {
        "deadline_reminder": messages.render("deadline_reminder", alert),
        "deadline_escalation": messages.render("deadline_escalation", alert),
        "daily_digest": messages.render(
            "daily_digest",
            {
                "member": {"name": CASEWORKER},
                "overdue": [],
                "soon": [item],
                "as_of": date(2026, 3, 13),
                "horizon": date(2026, 3, 20),
            },
        ),
        "delivery_failed": messages.render(
            "delivery_failed", {"case": case, "recipient": alert["recipient"], "failed": failed}
        ),
    }
    for template, message in rendered.items():
        assert not any(n in message.subject for n in NAMES), (template, message.subject)
        assert CHILD in message.text, template  # staff read the name inside, in their own mailbox
