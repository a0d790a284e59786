"""The online service's rules (engine.portal) on SQLite and PostgreSQL: signing in by a single-use link
then a code, access that follows a role on a case (and the rights from parent to young person), the
family's comments within their 15 days, advice that meets the workflow's limit when the last arrives,
files checked by their content, and a record nobody rewrites. The browser walk is tests/test_portal_web.py.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import CW, TM
from test_uploads import PDF, png

from engine.app import App
from engine.calendar import end_of_compulsory_school_age
from engine.clock import FixedClock
from engine.demo import generated_plan
from engine.errors import InvalidInput, NotFound
from engine.portal import Portal
from engine.store.repository import ContactRecord


def open_case(core: App, name: str = "Ada Example", born: date = date(2015, 5, 1), family: str = "a") -> int:
    opened = core.cases.open_case(
        name=name,
        date_of_birth=born,
        workflow="needs_assessment",
        actor=CW,
        inputs={"request_received_on": core.clock.today()},
        contacts=[
            ContactRecord("parent", f"Parent {family.upper()}", f"parent.{family}@example.org"),
            ContactRecord("young_person", name, f"young.{family}@example.org"),
            ContactRecord("educational_psychologist", "Demo EP service", f"ep.{family}@example.org"),
            ContactRecord("health", "Demo ICB", None, address="1 Demo Street\nDemotown", prefers="post"),
        ],
        caseworker="cw",
    )
    return opened.case_id


def contact_id(core: App, case_id: int, role: str) -> int:
    with core.store.unit() as unit:
        return int(
            unit.fetch("SELECT id FROM contact WHERE case_id = :c AND role = :r", {"c": case_id, "r": role})[0][0]
        )


def last_message(core: App, template: str) -> tuple[str, str, str]:
    with core.store.unit() as unit:
        row = unit.fetch(
            "SELECT subject, body, recipient_email FROM outbox WHERE template = :t ORDER BY id DESC LIMIT 1",
            {"t": template},
        )
    assert row, f"no {template} message queued"
    return str(row[0][0]), str(row[0][1]), str(row[0][2])


def link_token(body: str) -> str:
    found = re.search(r"/portal/link/([A-Za-z0-9_-]+)", body)
    assert found, body
    return found.group(1)


def sign_in(core: App, portal: Portal, body: str) -> int:
    person = portal.use_link(link_token(body))
    assert person is not None
    portal.send_code(person)
    code = re.search(r"\b(\d{6})\b", last_message(core, "portal_code")[1])
    assert code
    assert portal.check_code(person, code.group(1)) is True
    return person


def test_a_link_signs_in_once_then_a_code_once(core: App) -> None:
    portal = Portal(core)
    case_id = open_case(core)
    shown = portal.invite(case_id, contact_id(core, case_id, "parent"), actor=CW)
    assert shown == "p***@example.org"
    subject, body, to = last_message(core, "portal_invitation")
    assert to == "parent.a@example.org"
    assert "Ada" not in subject and "Ada" not in body  # the invitation names no child
    token = link_token(body)
    assert portal.link_is_live(token)
    person = portal.use_link(token)
    assert person is not None
    assert portal.use_link(token) is None, "a link works once"
    assert not portal.link_is_live(token)
    portal.send_code(person)
    code = re.search(r"\b(\d{6})\b", last_message(core, "portal_code")[1])
    assert code
    wrong = f"{(int(code.group(1)) + 1) % 10**6:06d}"
    assert portal.check_code(person, wrong) is False
    assert portal.check_code(person, code.group(1)) is True
    assert portal.check_code(person, code.group(1)) is None, "a code works once"


def test_an_old_link_and_too_many_wrong_codes_are_refused(core: App, clock: FixedClock) -> None:
    portal = Portal(core)
    case_id = open_case(core)
    portal.invite(case_id, contact_id(core, case_id, "parent"), actor=CW)
    token = link_token(last_message(core, "portal_invitation")[1])
    clock.set(clock.today() + timedelta(days=core.settings.portal.invitation_days + 1))
    assert portal.use_link(token) is None, "an invitation's link ends"
    # A new link is for someone with access, and the page's answer is the same for anyone else.
    assert portal.ask_for_link("nobody@example.org") is None
    assert portal.ask_for_link("PARENT.A@example.org ") is not None
    person = portal.use_link(link_token(last_message(core, "portal_link")[1]))
    assert person is not None
    portal.send_code(person)
    code = re.search(r"\b(\d{6})\b", last_message(core, "portal_code")[1])
    assert code
    wrong = f"{(int(code.group(1)) + 1) % 10**6:06d}"
    for _ in range(core.settings.portal.code_tries):
        assert portal.check_code(person, wrong) is False
    assert portal.check_code(person, code.group(1)) is None, "after too many tries the right code no longer works"


def test_one_family_never_reaches_another(core: App) -> None:
    portal = Portal(core)
    a = open_case(core, "Ada Example", family="a")
    b = open_case(core, "Bea Example", family="b")
    portal.invite(a, contact_id(core, a, "parent"), actor=CW)
    person_a = sign_in(core, portal, last_message(core, "portal_invitation")[1])
    portal.invite(b, contact_id(core, b, "parent"), actor=CW)
    person_b = sign_in(core, portal, last_message(core, "portal_invitation")[1])
    [access_a] = portal.accesses(person_a)
    [access_b] = portal.accesses(person_b)
    assert access_a.case_id == a and access_b.case_id == b
    with pytest.raises(NotFound):
        portal.access(person_b, access_a.public_id)
    with pytest.raises(NotFound):
        portal.access(person_b, "made-up")
    # Ended by the caseworker: gone, looking the same as never there.
    portal.end_access(a, access_a.public_id, "moved away", actor=CW)
    with pytest.raises(NotFound):
        portal.access(person_a, access_a.public_id)
    assert portal.ask_for_link("parent.a@example.org") is None
    # A changed contact ends it too: the case no longer names this address.
    with core.store.unit() as unit:
        unit.execute(
            "UPDATE contact SET email = 'new.b@example.org' WHERE id = :t", {"t": contact_id(core, b, "parent")}
        )
    with pytest.raises(NotFound):
        portal.access(person_b, access_b.public_id)


@pytest.mark.parametrize(
    ("born", "last_day"),
    [
        (date(2010, 8, 31), date(2026, 6, 26)),  # 16 on 31 August 2026: that school year ends June 2026
        (date(2010, 9, 1), date(2027, 6, 25)),  # 16 on 1 September 2026: the next school year
        (date(2012, 2, 29), date(2028, 6, 30)),  # 16 on 1 March 2028; 30 June 2028 is a Friday
    ],
)
def test_compulsory_school_age_ends_on_the_last_friday_in_june(born: date, last_day: date) -> None:
    assert end_of_compulsory_school_age(born) == last_day
    assert last_day.weekday() == 4


def test_the_rights_pass_from_the_parent_to_the_young_person(core: App, clock: FixedClock) -> None:
    portal = Portal(core)
    born = date(2009, 3, 10)  # compulsory school age ends on Friday 27 June 2025
    case_id = open_case(core, born=born)
    with pytest.raises(InvalidInput, match="parent holds the rights"):
        portal.invite(case_id, contact_id(core, case_id, "young_person"), actor=CW)
    portal.invite(case_id, contact_id(core, case_id, "parent"), actor=CW)
    parent = sign_in(core, portal, last_message(core, "portal_invitation")[1])
    [access] = portal.accesses(parent)
    assert access.closed is None and portal.family_case(access).holder == "parent"
    assert end_of_compulsory_school_age(born) == date(2025, 6, 27)
    clock.set(date(2025, 6, 28))
    [access] = portal.accesses(parent)
    assert access.closed == "rights passed"
    with pytest.raises(NotFound):
        portal.access(parent, access.public_id)
    with pytest.raises(InvalidInput, match="young person's own"):
        portal.invite(case_id, contact_id(core, case_id, "parent"), actor=CW)
    portal.invite(case_id, contact_id(core, case_id, "young_person"), actor=CW)
    young = sign_in(core, portal, last_message(core, "portal_invitation")[1])
    [own] = portal.accesses(young)
    assert own.closed is None and portal.family_case(own).holder == "young_person"


def to_draft(core: App, case_id: int) -> None:
    core.cases.fire(case_id, "agree_to_assess", actor=CW)
    core.cases.fire(case_id, "decide_to_issue", actor=CW)
    core.plans.edit(case_id, generated_plan(__import__("random").Random(1), "Ada"), actor=CW)
    core.cases.fire(case_id, "issue_draft_plan", actor=CW)


def test_comments_on_the_draft_are_dated_the_day_they_arrive(core: App, clock: FixedClock) -> None:
    portal = Portal(core)
    case_id = open_case(core)
    portal.invite(case_id, contact_id(core, case_id, "parent"), actor=CW)
    person = sign_in(core, portal, last_message(core, "portal_invitation")[1])
    [access] = portal.accesses(person)
    assert portal.family_case(access).comment_period is None
    with pytest.raises(InvalidInput, match="no draft plan"):
        portal.contribute(access, "comments", {"comments": "early"}, [])
    to_draft(core, case_id)
    period = portal.family_case(access).comment_period
    assert period is not None and period["due_on"] == clock.today() + timedelta(days=14)  # day 1 is today
    clock.set(clock.today() + timedelta(days=3))
    done = portal.contribute(
        access, "comments", {"comments": "Section F needs more speech therapy.", "school": "Demo Academy"},
        [("letter.pdf", PDF)],
    )  # fmt: skip
    assert done["received_on"] == clock.today() and not done["late"] and done["files"] == 1
    view = core.cases.store  # the history says who sent what, when, on the assessment's record
    with view.unit() as unit:
        rows = unit.fetch(
            "SELECT trigger, occurred_on, actor, actor_role, inputs FROM history WHERE case_id = :c "
            "ORDER BY id DESC LIMIT 1",
            {"c": case_id},
        )
    trigger, on, actor, role, inputs = rows[0]
    assert trigger == "comments_received_online" and str(on)[:10] == clock.today().isoformat()
    assert actor == f"portal:{person}" and role == "parent"
    assert '"school_asked_for": true' in inputs
    staff_view = portal.for_case(case_id)
    assert staff_view["sent"][0]["answers"][1] == ("The school or college asked for", "Demo Academy")
    assert staff_view["sent"][0]["files"][0]["name"] == "letter.pdf"
    clock.set(period["due_on"] + timedelta(days=1))
    late = portal.contribute(access, "comments", {"comments": "One more thing."}, [])
    assert late["late"], "after the 15 days it is kept, and said to be late"
    # The caseworker is told of each.
    assert last_message(core, "portal_received")[2] == "cw@example.org"


def test_the_last_advice_to_arrive_meets_the_limit(core: App, clock: FixedClock) -> None:
    portal = Portal(core)
    case_id = open_case(core)
    ep, health = contact_id(core, case_id, "educational_psychologist"), contact_id(core, case_id, "health")
    with pytest.raises(InvalidInput, match="not gathering advice"):
        portal.request_advice(case_id, ep, actor=CW)
    core.cases.fire(case_id, "agree_to_assess", actor=CW)
    due = portal.request_advice(case_id, ep, actor=CW)
    assert due == (clock.today() + timedelta(weeks=6)).isoformat()
    portal.request_advice(case_id, health, actor=TM)  # no email: written to, its answer recorded by hand
    with pytest.raises(InvalidInput, match="already been asked"):
        portal.request_advice(case_id, ep, actor=CW)
    subject, body, to = last_message(core, "portal_advice_request")
    assert to == "ep.a@example.org" and "Ada" not in subject
    person = sign_in(core, portal, body)
    [waiting] = portal.adviser_requests(person)
    assert waiting["due_on"].isoformat() == due
    clock.set(clock.today() + timedelta(days=10))
    [health_request] = [r for r in portal.advice_requests(case_id) if r["role"] == "health"]
    portal.record_advice_outside(case_id, health_request["id"], actor=CW)
    with core.store.unit() as unit:  # still gathering: the psychologist's advice is missing
        assert unit.fetch("SELECT state FROM workflow_instance WHERE case_id = :c", {"c": case_id})[0][0] == "assessing"
    missing = [r for r in portal.advice_requests(case_id) if r["missing"]]
    assert [r["role"] for r in missing] == ["educational_psychologist"]
    clock.set(clock.today() + timedelta(days=5))
    portal.contribute(waiting["access"], "advice", {"advice": "Needs a quiet space."}, [("report.pdf", PDF)],
                      request_id=waiting["id"])  # fmt: skip
    with core.store.unit() as unit:
        state = unit.fetch("SELECT state FROM workflow_instance WHERE case_id = :c", {"c": case_id})[0][0]
        met = unit.fetch(
            "SELECT status, closed_on FROM deadline WHERE case_id = :c AND name = 'advice'", {"c": case_id}
        )[0]
    assert state == "advice_received"
    assert met[0] == "met" and str(met[1])[:10] == clock.today().isoformat()
    assert portal.adviser_requests(person) == [], "the adviser's access ends with their request"
    with pytest.raises(NotFound):
        portal.advice_request(person, waiting["id"])


def test_a_file_that_is_not_what_its_name_says_is_refused_and_nothing_kept(core: App) -> None:
    portal = Portal(core)
    case_id = open_case(core)
    portal.invite(case_id, contact_id(core, case_id, "parent"), actor=CW)
    [access] = portal.accesses(sign_in(core, portal, last_message(core, "portal_invitation")[1]))
    with pytest.raises(InvalidInput, match="files:"):
        portal.contribute(access, "views", {"about": "Loves trains."}, [("drawing.pdf", png())])
    with pytest.raises(InvalidInput, match="files:"):
        portal.contribute(access, "views", {}, [("page.pdf", b"<html><script>alert(1)</script></html>")])
    with core.store.unit() as unit:
        assert unit.fetch("SELECT COUNT(*) FROM portal_contribution", {})[0][0] == 0
    done = portal.contribute(access, "views", {"about": "Loves trains.", "own_words": "I like red ones"},
                             [("drawing.png", png())])  # fmt: skip
    assert done["files"] == 1
    files = portal.for_case(case_id)["sent"][0]["files"]
    extension, data = portal.upload(case_id, files[0]["id"])
    assert extension == "png" and data == png()
    stored = next((Path(core.settings.documents_dir) / "uploads").rglob("*"))
    assert "drawing" not in str(stored)


def test_what_was_sent_cannot_be_rewritten(core: App) -> None:
    portal = Portal(core)
    case_id = open_case(core)
    portal.invite(case_id, contact_id(core, case_id, "parent"), actor=CW)
    [access] = portal.accesses(sign_in(core, portal, last_message(core, "portal_invitation")[1]))
    portal.contribute(access, "views", {"about": "Loves trains."}, [])
    for statement in ("UPDATE portal_contribution SET body = '{}'", "DELETE FROM portal_contribution"):
        with pytest.raises(Exception, match="append-only"):
            with core.store.unit() as unit:
                unit.execute(statement, {})


def test_a_sent_link_or_code_is_not_kept_in_the_outbox(core: App, tmp_path: Path) -> None:
    portal = Portal(core)
    case_id = open_case(core)
    portal.invite(case_id, contact_id(core, case_id, "parent"), actor=CW)
    token = link_token(last_message(core, "portal_invitation")[1])
    from engine.dispatch import SECRET_REMOVED
    from notifications.folder import FolderTransport

    core.dispatcher(FolderTransport(tmp_path / "out")).dispatch()
    subject, body, _ = last_message(core, "portal_invitation")
    assert body == SECRET_REMOVED and token not in body
    assert any(token in p.read_text() for p in (tmp_path / "out").glob("*.eml")), "it was sent, with its link"


def test_a_family_sees_only_what_a_step_sent_them_never_a_staff_preview(core: App) -> None:
    portal = Portal(core)
    case_id = open_case(core)
    portal.invite(case_id, contact_id(core, case_id, "parent"), actor=CW)
    [access] = portal.accesses(sign_in(core, portal, last_message(core, "portal_invitation")[1]))
    core.cases.fire(case_id, "agree_to_assess", actor=CW)
    core.documents.process()
    titles = [d["title"] for d in portal.family_case(access).documents]
    assert "Letter: we will carry out an assessment" in titles
    # A caseworker's preview of a decision not yet made, and of a draft not yet sent, stay with staff.
    core.documents.render(case_id, "decision-letter", decision="not-to-issue", actor=CW)
    core.plans.edit(case_id, generated_plan(__import__("random").Random(1), "Ada"), actor=CW)
    core.documents.render(case_id, "draft-plan", actor=CW)
    assert [d["title"] for d in portal.family_case(access).documents] == titles
    hidden = [d for d in portal.family_case(access).documents if "not" in d["title"] or "Draft" in d["title"]]
    assert hidden == []


def test_an_advisers_access_ends_when_the_advice_limit_is_met_or_their_request_withdrawn(core: App) -> None:
    portal = Portal(core)
    case_id = open_case(core)
    core.cases.fire(case_id, "agree_to_assess", actor=CW)
    portal.request_advice(case_id, contact_id(core, case_id, "educational_psychologist"), actor=CW)
    person = sign_in(core, portal, last_message(core, "portal_advice_request")[1])
    [waiting] = portal.adviser_requests(person)
    portal.withdraw_advice_request(case_id, waiting["id"], actor=CW)
    assert portal.adviser_requests(person) == []
    with pytest.raises(NotFound):
        portal.contribute(waiting["access"], "advice", {"advice": "late"}, [], request_id=waiting["id"])
    # Asked again, then the caseworker decides without it: the limit is met, and the adviser is out.
    portal.request_advice(case_id, contact_id(core, case_id, "educational_psychologist"), actor=CW)
    [again] = portal.adviser_requests(person)
    core.cases.fire(case_id, "decide_to_issue", actor=CW)
    assert portal.adviser_requests(person) == []
    assert all(a.closed is not None for a in portal.accesses(person))
    with pytest.raises(NotFound):
        portal.contribute(again["access"], "advice", {"advice": "too late"}, [], request_id=again["id"])


def test_a_refused_contribution_leaves_no_file_and_odd_file_names_are_cleaned(core: App, tmp_path: Path) -> None:
    portal = Portal(core)
    case_id = open_case(core)
    portal.invite(case_id, contact_id(core, case_id, "parent"), actor=CW)
    [access] = portal.accesses(sign_in(core, portal, last_message(core, "portal_invitation")[1]))
    uploads = Path(core.settings.documents_dir) / "uploads"
    with pytest.raises(InvalidInput, match="no draft plan"):
        portal.contribute(access, "comments", {"comments": "x"}, [("big.pdf", PDF + b"0" * 100_000)])
    assert not uploads.exists() or not any(p.is_file() for p in uploads.rglob("*"))
    portal.contribute(access, "views", {"about": "Loves trains."}, [("a\x00b\u202e.png", png())])
    [sent] = portal.for_case(case_id)["sent"]
    assert sent["files"][0]["name"] == "ab.png"


def test_a_family_chooses_email_or_post(core: App) -> None:
    portal = Portal(core)
    case_id = open_case(core)
    portal.invite(case_id, contact_id(core, case_id, "parent"), actor=CW)
    [access] = portal.accesses(sign_in(core, portal, last_message(core, "portal_invitation")[1]))
    with pytest.raises(InvalidInput, match="address"):
        portal.set_contact_preference(access, "post", "")
    portal.set_contact_preference(access, "post", "1 Demo Street\nDemotown")
    assert portal.contact_preference(access) == {"prefers": "post", "address": "1 Demo Street\nDemotown"}
    info = core.store
    with info.unit() as unit:
        [contact] = [c for c in unit.case_info(case_id).contacts if c.role == "parent"]
    assert contact.by_post, "the council's next letter goes by post"
    [access] = portal.accesses(access.person_id)
    assert access.closed is None, "choosing post does not end their access online"


def test_a_sign_in_message_that_could_not_be_sent_keeps_no_link(core: App) -> None:
    from engine.dispatch import SECRET_REMOVED
    from notifications.message import PermanentFailure

    class Refusing:
        def send(self, message: object) -> str:
            raise PermanentFailure("550 no such mailbox")

    portal = Portal(core)
    case_id = open_case(core)
    portal.invite(case_id, contact_id(core, case_id, "parent"), actor=CW)
    core.dispatcher(Refusing()).dispatch()  # type: ignore[arg-type]
    with core.store.unit() as unit:
        status, body = unit.fetch("SELECT status, body FROM outbox WHERE template = 'portal_invitation'", {})[0]
    assert status == "failed" and body == SECRET_REMOVED
