"""The SEN2 return: the details it asks for, recorded and checked (pupil numbers by their check
letter, codes from the return's own lists); the return built from histories whose right answers are
known by construction (a plan within the year with an exception, a refusal taken to mediation, a
withdrawal, a request undecided, one from an earlier year left out, a plan transferred in, a plan
ended) on SQLite and PostgreSQL; every rule caught by its own test case; the command line."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import CW, ROOT
from test_reports import assessment
from typer.testing import CliRunner
from walking import Cli, walk_config

from engine import sen2, sen2_return
from engine.actor import Actor
from engine.app import App
from engine.cli import app
from engine.clock import FixedClock
from engine.config import Council
from engine.errors import InvalidInput, NotAuthorised
from engine.sen2_return import build, census_day, check, to_xml

DATA = ROOT / "tests" / "data" / "sen2"
VALID = (DATA / "valid-2026.xml").read_bytes()
CASES = yaml.safe_load((DATA / "rule-cases.yaml").read_text())
REFERENCE = date(2027, 1, 21)
DETAILS = {"sex": "F", "ethnicity": "WBRI", "upn": "B801200005001", "primary_need": "SLCN", "setting_urn": "900001"}


@pytest.mark.parametrize(
    ("upn", "right"),
    [("B801200005001", True), ("A950000178301", True), ("H243278544154", True), ("A801200005001", False),
     ("R247962919251", False), ("X428558133462", False), ("B80120000500", False), ("B80120000500I", False)],
)  # fmt: skip
def test_a_upn_is_checked_by_its_check_letter(upn: str, right: bool) -> None:
    assert (sen2.upn_problem(upn) is None) is right


def test_the_census_day_is_the_third_thursday_of_january() -> None:
    assert [census_day(y) for y in (2024, 2025, 2026, 2027)] == [
        date(2024, 1, 18), date(2025, 1, 16), date(2026, 1, 15), date(2027, 1, 21),
    ]  # fmt: skip


def test_the_made_up_return_passes_and_each_rule_catches_its_own_case() -> None:
    assert check(VALID) == []
    for case in CASES:
        text = VALID.decode()
        assert case["from"] in text, case
        broken = text.replace(case["from"], case["to"], 1).encode()
        found = check(broken)
        assert any(p.rule == case["rule"] and case["says"] in p.what for p in found), (case, found)
    assert check(b"<Message><Header>")[0].what.startswith("not well-formed")


def test_details_are_checked_and_kept_on_the_record(core: App, clock: FixedClock) -> None:
    case_id = assessment(core, clock, None)
    with pytest.raises(InvalidInput, match="--upn: the check letter"):
        sen2.record(core, case_id, {"upn": "A801200005001"}, actor=CW)
    with pytest.raises(InvalidInput, match="--ethnicity: 'XXXX' is not one of the return's codes"):
        sen2.record(core, case_id, {"ethnicity": "xxxx"}, actor=CW)
    with pytest.raises(InvalidInput, match="--surname: surname contains a line break"):
        sen2.record(core, case_id, {"surname": "Smith\nBcc: x"}, actor=CW)
    with pytest.raises(NotAuthorised):
        sen2.record(core, case_id, {"sex": "F"}, actor=Actor("aud", "auditor"))
    found = sen2.record(core, case_id, {**DETAILS, "ethnicity": "wbri", "postcode": "dt1 1aa"}, actor=CW)
    assert found["ethnicity"] == "WBRI" and found["postcode"] == "DT1 1AA"
    with pytest.raises(InvalidInput, match="only when there is no UPN"):
        sen2.record(core, case_id, {"upn_unknown": "UN1"}, actor=CW)
    sen2.record(core, case_id, {"upn": "", "upn_unknown": "UN1"}, actor=CW)  # cleared, and a reason instead
    with core.store.unit() as unit:
        assert sen2.details(unit, case_id)["upn"] is None
        entries = unit.fetch(
            "SELECT trigger, inputs FROM history WHERE case_id = :c AND trigger = 'record_details' ORDER BY id",
            {"c": case_id},
        )
    assert len(entries) == 2 and '"upn": ""' in entries[1][1]
    before = len(entries)
    sen2.record(core, case_id, {"sex": "F"}, actor=CW)  # no change: no entry
    with core.store.unit() as unit:
        assert len(unit.fetch("SELECT id FROM history WHERE trigger = 'record_details'", {})) == before


@pytest.fixture
def council(core: App, monkeypatch: pytest.MonkeyPatch) -> App:
    """The engine, as a council with its code and designated officers set (config.yaml's council:)."""
    settled = Council(la_code="999", designated_officers={"dmo": "Y", "dco": "Y", "dsco": "N"})
    monkeypatch.setattr(core, "settings", core.settings.model_copy(update={"council": settled}))
    return core


def _child(core: App, case_id: int, **extra: str) -> None:
    sen2.record(core, case_id, {**DETAILS, **extra}, actor=CW)


def _persons(data: bytes) -> dict[str, ET.Element]:
    root = ET.fromstring(data)
    return {p.findtext("Forename") or "": p for p in root.findall("Persons/Person")}


def test_the_return_is_built_from_the_record(council: App, clock: FixedClock) -> None:
    core = council
    year = date(2026, 2, 2)  # a Monday in the collection period (2026)
    issued = assessment(core, clock, 126, start=year, excuse=True)  # plan on day 126, an exception on record
    refused_on = year + timedelta(days=30)
    clock.set(year)
    refused = core.cases.open_case(
        name="Refused Child", date_of_birth=date(2016, 3, 1), workflow="needs_assessment", actor=CW,
        inputs={"request_received_on": year, "requested_by": "parent"}, contacts=[], caseworker="cw",
    ).case_id  # fmt: skip
    clock.set(refused_on)
    core.cases.fire(refused, "refuse_to_assess", actor=CW, inputs={"reasons": "Needs met at school"})
    clock.set(refused_on + timedelta(days=10))
    core.cases.fire(refused, "request_mediation", actor=CW, workflow="disagreement")
    withdrawn = assessment(core, clock, None, start=year + timedelta(days=7))
    clock.set(date(2026, 11, 2))
    waiting = core.cases.open_case(
        name="Waiting Child", date_of_birth=date(2019, 3, 1), workflow="needs_assessment", actor=CW,
        inputs={"request_received_on": date(2026, 11, 2), "requested_by": "school"}, contacts=[], caseworker="cw",
    ).case_id  # fmt: skip
    earlier = assessment(core, clock, None, start=date(2025, 3, 3))  # withdrawn in 2025: not in this return
    clock.set(date(2026, 5, 1))
    moved_in = core.cases.open_case(
        name="Moved Child", date_of_birth=date(2012, 3, 1), workflow="transfer_in", actor=CW,
        inputs={"transferred_on": date(2026, 5, 1), "plan_made_on": date(2022, 4, 4)}, contacts=[], caseworker="cw",
    ).case_id  # fmt: skip
    for case_id in (issued, refused, withdrawn, waiting, earlier):
        _child(core, case_id)
    _child(core, moved_in, transferred_from_la="305", secondary_need="ASD")
    clock.set(REFERENCE)
    found = build(core, REFERENCE)
    data = to_xml(found)
    assert check(data, 2027) == [], check(data, 2027)
    counts = found.counts()
    assert (counts["persons"], counts["requests"], counts["plans_issued"], counts["active_plans"]) == (5, 4, 1, 2)
    people = {p["case"]: p["Person"] for p in found.persons}
    assert earlier not in people, "withdrawn in 2025: nothing in 2026 to report"
    plan = people[issued]["Requests"][0]
    assert (plan["ReceivedDate"], plan["RequestOutcome"], plan["RequestSource"]) == ("2026-02-02", "Y", "1")
    a = plan["Assessment"]
    assert (a["AssessmentOutcome"], a["AssessmentOutcomeDate"], a["Week20"]) == ("Y", "2026-06-08", "1")
    assert a["NamedPlan"]["StartDate"] == "2026-06-08" and a["NamedPlan"]["PlanDetail"][0]["URN"] == "900001"
    assert plan["ActivePlans"]["SENneed"] == [{"SENtype": "SLCN", "SENtypeRank": "1"}]
    no = people[refused]["Requests"][0]
    assert (no["RequestOutcome"], no["RequestOutcomeDate"], no["RequestMediation"], no["RequestTribunal"]) == (
        "N", refused_on.isoformat(), "1", "0",
    )  # fmt: skip
    assert "Assessment" not in no
    assert people[withdrawn]["Requests"][0]["RequestOutcome"] == "W"
    assert people[waiting]["Requests"][0]["RequestOutcome"] == "A"
    assert people[waiting]["Requests"][0]["RequestSource"] == "2"
    moved = people[moved_in]["Requests"][0]
    assert moved["RequestOutcome"] == "H" and moved["Assessment"]["AssessmentOutcome"] == "H"
    assert moved["Assessment"]["NamedPlan"]["StartDate"] == "2022-04-04"
    assert moved["ActivePlans"]["TransferLA"] == "305" and len(moved["ActivePlans"]["SENneed"]) == 2
    # The XML in the schema's order, names split from the case's name.
    child = _persons(data)["Generated"]
    assert child.findtext("Surname") == "Child" and child.findtext("UPN") == "B801200005001"
    assert [e.tag for e in child][:5] == ["Surname", "Forename", "PersonBirthDate", "Sex", "Ethnicity"]
    assert found.gaps == {}


def test_what_the_record_cannot_supply_is_listed_with_its_cases_and_fails_the_return(
    council: App, clock: FixedClock
) -> None:
    core = council
    known = assessment(core, clock, None, start=date(2026, 3, 2))
    unknown = assessment(core, clock, None, start=date(2026, 3, 9))
    _child(core, known)
    sen2.record(core, unknown, {"sex": "M"}, actor=CW)
    clock.set(REFERENCE)
    found = build(core, REFERENCE)
    assert found.gaps["Ethnicity"].cases == [unknown] and found.gaps["Ethnicity"].required
    assert found.gaps["UPN"].cases == [unknown]
    problems = check(to_xml(found), 2027)
    schema = [p for p in problems if p.rule == "schema"]
    assert schema and all(p.where.startswith("person 2") for p in schema), problems
    assert {p.rule for p in sen2_return.needed(found)} == {"needed"}


def test_the_command_line_writes_only_a_return_that_passes_for_the_head_of_service(tmp_path: Path) -> None:
    cli = Cli(walk_config(tmp_path))
    out = tmp_path / "returns" / "sen2.xml"
    refused = cli("report", "sen2", "--out", str(out), ok=False)
    assert "for the head of service" in refused and not out.exists()
    head = cli.acting_as("robin.demo")
    printed = head("report", "sen2", "--out", str(out), "--reference-date", "2027-01-21")
    assert "passes the schema and every rule" in printed and out.exists()
    assert os.stat(out).st_mode & 0o077 == 0, "children's details: readable by the service alone"
    assert check(out.read_bytes(), 2027) == []
    head("report", "sen2", "--out", str(out), ok=False)  # not over a file without --force
    broken = tmp_path / "broken.xml"
    broken.write_bytes(VALID.replace(b"<Year>2026</Year>", b"<Year>2025</Year>"))
    result = CliRunner().invoke(app, ["--config", str(cli.config), "report", "sen2", "--check", str(broken)])
    assert result.exit_code == 1 and "S12" in result.stdout and "would fail" in result.stdout
    assert "passes" in cli("report", "sen2", "--check", str(DATA / "valid-2026.xml"))


# -- the builder on hand-made records: a case's plans over the years ------------------------------

REF = date(2027, 1, 21)
KNOWN = {"sex": "F", "ethnicity": "WBRI", "upn_unknown": "UN1", "primary_need": "ASD", "setting_urn": "900001"}


def _na(iid: int, received: date, steps: list) -> dict:
    facts = {"request_received_on": received.isoformat(), "requested_by": "parent"}
    return {"id": iid, "workflow": "needs_assessment", "parent": None, "opened_on": received, "deadlines": {},
            "facts": facts, "steps": steps}  # fmt: skip


def _issued(agreed: date, issued: date) -> list:
    return [(agreed, "agree_to_assess", "assessing", {}), (issued, "issue_final_plan", "final_plan_issued", {})]


def _refused(on: date) -> list:
    return [(on, "refuse_to_assess", "not_assessing", {"decision_sent_on": on.isoformat()})]


def _ceased(iid: int, on: date) -> dict:
    return {"id": iid, "workflow": "cease", "parent": None, "facts": {"reason": "no_longer_necessary"},
            "opened_on": on, "deadlines": {}, "steps": [(on, "appeal_window_closed", "ceased", {})]}  # fmt: skip


def _person_of(instances: list, plans: list, name: str = "Ann Example") -> tuple[dict | None, sen2_return.Return]:
    out = sen2_return.Return(REF, (date(2026, 1, 1), date(2026, 12, 31)), {})
    case = sen2_return._Case(1, name, date(2010, 1, 1), instances, plans, dict(KNOWN))
    return sen2_return._person(out, case), out


def test_a_plan_that_ended_years_ago_is_not_in_the_return() -> None:
    person, _ = _person_of([_na(1, date(2019, 1, 1), _issued(date(2019, 2, 1), date(2019, 6, 1))),
                            _ceased(2, date(2022, 3, 1))], [(date(2019, 6, 1), 1)])  # fmt: skip
    assert person is None


def test_a_second_plan_has_its_own_dates_and_the_first_stays_out() -> None:
    person, _ = _person_of(
        [_na(1, date(2019, 1, 1), _issued(date(2019, 2, 1), date(2019, 6, 1))), _ceased(2, date(2022, 3, 1)),
         _na(3, date(2026, 2, 1), _issued(date(2026, 3, 1), date(2026, 7, 1)))],
        [(date(2019, 6, 1), 1), (date(2026, 7, 1), 3)],
    )  # fmt: skip
    assert person is not None
    (request,) = person["Requests"]
    plan = request["Assessment"]["NamedPlan"]
    assert request["ReceivedDate"] == "2026-02-01" and plan["StartDate"] == "2026-07-01" and "CeaseDate" not in plan
    assert request["ActivePlans"]["SENneed"][0]["SENtype"] == "ASD"


def test_a_plan_that_ended_in_the_year_is_reported_ended_not_in_force() -> None:
    person, _ = _person_of([_na(1, date(2024, 1, 1), _issued(date(2024, 2, 1), date(2024, 6, 1))),
                            _ceased(2, date(2026, 9, 1))], [(date(2024, 6, 1), 1)])  # fmt: skip
    assert person is not None
    (request,) = person["Requests"]
    assert request["Assessment"]["NamedPlan"]["CeaseDate"] == "2026-09-01"
    assert request["Assessment"]["NamedPlan"]["CeaseReason"] == "2" and "ActivePlans" not in request


def test_a_plan_transferred_in_after_the_census_day_is_not_in_force_on_it() -> None:
    moved = {"id": 1, "workflow": "transfer_in", "parent": None, "opened_on": date(2027, 2, 1), "deadlines": {},
             "steps": [], "facts": {"transferred_on": "2027-02-01", "plan_made_on": "2025-09-03"}}  # fmt: skip
    person, _ = _person_of([moved], [])
    assert person is None


def test_mediation_and_appeals_belong_to_the_request_whose_decision_they_challenge() -> None:
    lodged = [(date(2026, 8, 1), "lodge_appeal", "appeal_lodged", {})]
    appeal = {"id": 3, "workflow": "disagreement", "parent": 2, "opened_on": date(2026, 7, 10), "deadlines": {},
              "facts": {"decision": "not_to_assess"}, "steps": lodged}  # fmt: skip
    person, _ = _person_of([_na(1, date(2026, 1, 10), _refused(date(2026, 2, 15))),
                            _na(2, date(2026, 6, 1), _refused(date(2026, 7, 10))), appeal], [])  # fmt: skip
    assert person is not None
    assert [(r["ReceivedDate"], r["RequestTribunal"]) for r in person["Requests"]] == [
        ("2026-01-10", "0"), ("2026-06-01", "1"),
    ]  # fmt: skip


def test_a_one_word_name_is_needed_not_made_up() -> None:
    person, out = _person_of([_na(1, date(2026, 3, 1), _refused(date(2026, 4, 1)))], [], name="Madonna")
    assert person is not None and person["Forename"] == "" and person["Surname"] == "Madonna"
    assert out.gaps["Forename"].required and sen2_return.needed(out)[0].rule == "needed"


def test_a_character_xml_cannot_hold_is_needed_and_the_file_stays_readable() -> None:
    person, out = _person_of([_na(1, date(2026, 3, 1), _refused(date(2026, 4, 1)))], [], name="Zed \uffff Jones")
    assert person is not None and "\uffff" not in person["Forename"] + person["Surname"]
    assert out.gaps["Name"].cases == [1]
    out.persons = [{"case": 1, "Person": person}]
    out.header = dict.fromkeys(("Collection", "Year", "ReferenceDate", "SourceLevel", "LEA", "SoftwareCode", "Release",
                                "SerialNo", "DateTime", "DMO", "DCO", "DSCO"), "")  # fmt: skip
    assert not any("well-formed" in p.what for p in check(to_xml(out)))
    with pytest.raises(InvalidInput, match="control character"):
        sen2.check(sen2.BY_NAME["surname"], "Zed \uffff")


def test_digits_of_other_scripts_are_not_a_upn_and_a_census_day_outside_the_return_s_years_is_refused(
    council: App,
) -> None:
    assert sen2.upn_problem("A²00000000000") and sen2.upn_problem("B٣٣٣٣٣٣٣٣٣٣٣0")
    with pytest.raises(InvalidInput, match="--upn"):
        sen2.check(sen2.BY_NAME["upn"], "A²00000000000")
    for day in (date(1, 1, 15), date(2019, 1, 17), date(9999, 1, 21)):
        with pytest.raises(InvalidInput, match="--reference-date"):
            build(council, day)
