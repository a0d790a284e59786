"""The SEN2 return: the person-level XML the Department for Education collects every January, built
from the record (docs/reports.md, "The SEN2 return").

- :func:`build` reads the cases and makes the return for a reference date (the census day): each
  child or young person with a request, assessment or plan to report, in the return's modules
  (Requests, Assessment, NamedPlan, PlanDetail, ActivePlans, PlacementDetail, SENneed). It also
  lists each field the record cannot supply yet, with the cases concerned.
- :func:`to_xml` writes it; :func:`check` checks any SEN2 file against the schema in engine/schemas
  and against the rules below, so a return that would fail is caught here, not in COLLECT.

The collection period is the calendar year before the reference date: requests received in it,
decisions and plans made or ended in it, requests still undecided at its end, and every plan in
force on the reference date (with its last review, phase transfer and placement).

The rules (``RULES``) are the guide's own conditions, as quoted by the public sources the schema was
rebuilt from, and consistency checks of dates and outcomes; the Department's rule numbers are not
public here, so each has this project's number.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from . import __version__, sen2
from .clock import LONDON
from .errors import InvalidInput
from .inputs import unsafe_character
from .store.repository import as_date

if TYPE_CHECKING:
    from .app import App

_XML_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
FIRST_YEAR = 2022  # the first person-level SEN2 return (the collection became person-level for 2022)
# Who asked for the assessment -> RequestSource (1 young person or parent, 2 school or other setting,
# 3 health, 4 social care, 5 other).
SOURCES = {"parent": "1", "young_person": "1", "school": "2", "post16_institution": "2", "brought_to_attention": "5"}
# Why the plan ended (the cease workflow's reason) -> CeaseReason; left_education_or_training needs
# the detail (3 higher education, 4 paid employment, 6 no longer engaging), recorded on the case.
CEASE = {"reached_25": "1", "no_longer_necessary": "2", "moved_to_another_council": "5", "other": "9"}
REVIEW = {"keep_plan": "M", "propose_amendments": "A", "propose_to_cease": "C"}
ASSESS_YES = ("agree_to_assess", "notify_will_assess")


@dataclass
class Gap:
    """A field the record cannot supply, and the cases it is missing for."""

    name: str
    why: str
    cases: list[int] = field(default_factory=list)
    required: bool = False  # the return fails without it


@dataclass
class Return:
    reference_date: date
    period: tuple[date, date]
    header: dict[str, str]
    persons: list[dict[str, Any]] = field(default_factory=list)  # case id and the Person tree
    gaps: dict[str, Gap] = field(default_factory=dict)

    def gap(self, name: str, why: str, case_id: int | None, required: bool = False) -> None:
        found = self.gaps.setdefault(name, Gap(name, why, required=required))
        if case_id is not None and case_id not in found.cases:
            found.cases.append(case_id)

    def counts(self) -> dict[str, int]:
        requests = [r for p in self.persons for r in p["Person"]["Requests"]]
        return {
            "persons": len(self.persons),
            "requests": sum(1 for r in requests if r["RequestOutcome"] != "H"),
            "assessments": sum(
                1 for r in requests if r.get("Assessment") and r["Assessment"]["AssessmentOutcome"] != "H"
            ),
            "plans_issued": sum(
                1 for r in requests if r.get("Assessment") and r["Assessment"]["AssessmentOutcome"] == "Y"
            ),
            "active_plans": sum(1 for r in requests if r.get("ActivePlans") is not None),
            "plans_ceased": sum(
                1 for r in requests if (r.get("Assessment") or {}).get("NamedPlan", {}).get("CeaseDate")
            ),
        }


# -- building ------------------------------------------------------------------------------------


def census_day(year: int) -> date:
    """The return's reference date in ``year``: the third Thursday of January (15 January 2026,
    21 January 2027, as the Department set them)."""
    first = date(year, 1, 1)
    return date(year, 1, 1 + (3 - first.weekday()) % 7 + 14)


def next_census_day(today: date) -> date:
    """The next return's reference date: this January's if it has not passed, else next January's."""
    this = census_day(today.year)
    return this if today <= this else census_day(today.year + 1)


@dataclass
class _Case:
    id: int
    name: str
    born: date
    instances: list[dict[str, Any]] = field(default_factory=list)
    plans: list[tuple[date, int | None]] = field(default_factory=list)  # issued plan versions: (issued on, instance)
    details: dict[str, Any] = field(default_factory=dict)
    address: str | None = None


def build(core: App, reference_date: date) -> Return:
    """The return for ``reference_date`` from the whole record (every case: the return is the
    council's, so this is for whoever the command line's rules allow)."""
    council = core.settings.council
    if council.la_code is None:
        raise InvalidInput("council.la_code: the council's 3-digit code is needed for the return (config.yaml)")
    year = reference_date.year
    if not FIRST_YEAR <= year <= core.clock.today().year + 1:
        raise InvalidInput(
            f"--reference-date: {reference_date.isoformat()} is not a census day this service can report: "
            f"the person-level return began in {FIRST_YEAR}, and the next is in January {core.clock.today().year + 1}"
        )
    period = (date(year - 1, 1, 1), date(year - 1, 12, 31))
    officers = council.designated_officers
    header = {
        "Collection": "SEN2",
        "Year": str(year),
        "ReferenceDate": reference_date.isoformat(),
        "SourceLevel": "L",
        "LEA": council.la_code,
        "SoftwareCode": "ehcp-engine",
        "Release": __version__,
        "SerialNo": "001",
        "DateTime": core.clock.now().astimezone(LONDON).replace(tzinfo=None, microsecond=0).isoformat(),
        "DMO": officers.get("dmo", ""),
        "DCO": officers.get("dco", ""),
        "DSCO": officers.get("dsco", ""),
    }
    out = Return(reference_date, period, header)
    for name in ("dmo", "dco", "dsco"):
        if name not in officers:
            out.gap(name.upper(), f"council.designated_officers.{name} in config.yaml (Y, N or R)", None, True)
    for case in _cases(core, reference_date):
        person = _person(out, case)
        if person is not None:
            out.persons.append({"case": case.id, "Person": person})
    return out


def _cases(core: App, until: date) -> Iterable[_Case]:
    """Every case with what the return needs of it, as recorded by ``until``."""
    with core.store.unit() as unit:
        cases = {
            r[0]: _Case(r[0], r[1], as_date(r[2]))
            for r in unit.fetch("SELECT id, name, date_of_birth FROM ehc_case ORDER BY id", {})
        }
        instances: dict[int, dict[str, Any]] = {}
        for iid, case_id, workflow, facts, opened, parent in unit.fetch(
            "SELECT id, case_id, workflow, facts, opened_on, parent_id FROM workflow_instance ORDER BY id", {}
        ):
            item = {"id": iid, "workflow": workflow, "facts": json.loads(facts or "{}"), "opened_on": as_date(opened),
                    "parent": parent, "steps": [], "deadlines": {}}  # fmt: skip
            instances[iid] = item
            cases[case_id].instances.append(item)
        for iid, on, trigger, to_state, inputs in unit.fetch(
            "SELECT instance_id, occurred_on, trigger, to_state, inputs FROM history "
            "WHERE occurred_on <= :until ORDER BY instance_id, seq",
            {"until": until},
        ):
            instances[iid]["steps"].append((as_date(on), trigger, to_state, json.loads(inputs or "{}")))
        for iid, name, due, closed, excepted in unit.fetch(
            "SELECT instance_id, name, due_on, closed_on, exception_head FROM deadline "
            "WHERE name IN ('final_plan', 'phase_transfer') AND starts_on <= :until",
            {"until": until},
        ):
            instances[iid]["deadlines"][name] = (as_date(due), as_date(closed) if closed else None, excepted)
        for case_id, issued, iid in unit.fetch(
            "SELECT case_id, issued_on, instance_id FROM plan_version "
            "WHERE status = 'issued' AND issued_on IS NOT NULL ORDER BY issued_on",
            {},
        ):
            if as_date(issued) <= until:
                cases[case_id].plans.append((as_date(issued), iid))
        for case_id in cases:
            cases[case_id].details = sen2.details(unit, case_id)
        for case_id, address in unit.fetch(
            "SELECT case_id, address FROM contact WHERE role = 'parent' AND address IS NOT NULL ORDER BY id", {}
        ):
            cases[case_id].address = cases[case_id].address or address
    return cases.values()


def _step(instance: dict[str, Any], *triggers: str) -> tuple[date, dict[str, Any]] | None:
    """The last time one of ``triggers`` was taken in the instance: (day, inputs)."""
    found = None
    for on, trigger, _to, inputs in instance["steps"]:
        if trigger in triggers:
            found = (on, inputs)
    return found


def _entered(instance: dict[str, Any], state: str) -> date | None:
    found = None
    for on, _trigger, to, _inputs in instance["steps"]:
        if to == state:
            found = on
    return found


def _day(value: Any, fallback: date) -> date:
    try:
        return date.fromisoformat(str(value)) if value else fallback
    except ValueError:
        return fallback


@dataclass
class _Spell:
    """One plan's life on this council's record: from its start to its end here (if it has ended)."""

    start: date
    source: int | None  # the needs assessment that made it; None for one made before the record or elsewhere
    transfer_in: dict[str, Any] | None = None
    ended: date | None = None
    reason: str | None = None


def _spells(out: Return, case: _Case) -> list[_Spell]:
    """The case's plans up to the reference date, each with its end: a plan starts with a final plan
    issued after an assessment, with a plan transferred in, or (before the record) with the first
    plan issued; it ends at the first cease or transfer out after it started."""
    reference = out.reference_date
    found: list[_Spell] = []
    for inst in case.instances:
        if inst["workflow"] == "needs_assessment":
            issued = _step(inst, "issue_final_plan")
            if issued is not None:
                found.append(_Spell(_day(issued[1].get("plan_issued_on"), issued[0]), inst["id"]))
        elif inst["workflow"] == "transfer_in":
            moved = _day(inst["facts"].get("transferred_on"), inst["opened_on"])
            if moved <= reference:
                made = _day(inst["facts"].get("plan_made_on"), moved)
                found.append(_Spell(made, None, transfer_in=inst))
    made_here = {s.source for s in found}
    earlier = [on for on, iid in case.plans if iid not in made_here]
    if earlier and (not found or earlier[0] < min(s.start for s in found)):
        found.append(_Spell(earlier[0], None))  # a plan from before the record
    found = sorted((s for s in found if s.start <= reference), key=lambda s: s.start)
    ends = sorted(_ends(out, case))
    for n, spell in enumerate(found):
        following = found[n + 1].start if n + 1 < len(found) else None
        for on, reason in ends:
            if on >= spell.start and (following is None or on <= following):
                spell.ended, spell.reason = on, reason
                break
    return found


def _ends(out: Return, case: _Case) -> list[tuple[date, str | None]]:
    """When the council stopped maintaining a plan, up to the reference date, and why (as the return
    counts it)."""
    found: list[tuple[date, str | None]] = []
    for inst in case.instances:
        if inst["workflow"] == "cease":
            on = _entered(inst, "ceased")
            if on is not None and on <= out.reference_date:
                reason = case.details.get("cease_reason") or CEASE.get(str(inst["facts"].get("reason")))
                if reason is None:
                    out.gap("CeaseReason", "left education or training: which (3 higher education, 4 paid work, "
                            "6 no longer engaging)? Record it on the case", case.id, True)  # fmt: skip
                found.append((on, reason))
        elif inst["workflow"] == "transfer_out":
            step = _step(inst, "transfer_plan")
            if step is not None:
                moved = _day(step[1].get("plan_transferred_on"), step[0])
                if moved <= out.reference_date:
                    found.append((moved, case.details.get("cease_reason") or "5"))
    return found


def _person(out: Return, case: _Case) -> dict[str, Any] | None:
    start, end = out.period
    reference = out.reference_date
    spells = _spells(out, case)
    by_source = {s.source: s for s in spells if s.source is not None}
    latest = spells[-1] if spells else None

    def reported(spell: _Spell) -> bool:
        """A plan is in the return when it started or ended in the period or is in force on the day."""
        in_force = spell.ended is None or spell.ended > reference
        return in_force or start <= spell.start <= end or (spell.ended is not None and start <= spell.ended <= end)

    requests: list[dict[str, Any]] = []
    for inst in (i for i in case.instances if i["workflow"] == "needs_assessment"):
        received = _day(inst["facts"].get("request_received_on"), inst["opened_on"])
        if received > reference:
            continue
        block, finished = _request(out, case, inst, received)
        spell = by_source.get(inst["id"])
        recent = any(start <= d <= end for d in (received, finished) if d is not None)
        undecided = finished is None and received <= end
        if not (recent or undecided or (spell is not None and reported(spell))):
            continue
        requests.append(block)
        if spell is not None:
            _plan(out, case, block, spell, spell is latest)
    for spell in spells:
        if spell.source is None and reported(spell):
            block = {"RequestOutcome": "H", "Assessment": {"AssessmentOutcome": "H", "NamedPlan": {}}}
            requests.append(block)
            _plan(out, case, block, spell, spell is latest)
    if not requests:
        return None
    person = {**_identity(out, case), "Requests": requests}
    if _unsafe(person):
        out.gap("Name", "a character no one types and XML cannot hold (U+FFFE and the like) in the name or "
                "details: correct them", case.id, True)  # fmt: skip
        person = _scrub(person)
    return person


def _unsafe(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_unsafe(v) for v in value.values())
    if isinstance(value, list):
        return any(_unsafe(v) for v in value)
    return isinstance(value, str) and (unsafe_character(value) or bool(_XML_CONTROL.search(value)))


def _scrub(value: Any) -> Any:
    """The same with each character XML cannot hold replaced by U+FFFD, so the file stays readable."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return "".join("\ufffd" if unsafe_character(c) or _XML_CONTROL.match(c) else c for c in value)
    return value


def needed(found: Return) -> list[Problem]:
    """Each field the return fails without, as a problem: a return missing one is not sent."""
    return [
        Problem("needed", f"case {', '.join(str(c) for c in g.cases[:20])}" if g.cases else "the settings", g.why)
        for g in found.gaps.values()
        if g.required
    ]


def _plan(out: Return, case: _Case, block: dict[str, Any], spell: _Spell, latest: bool) -> None:
    """The plan's NamedPlan, and its ActivePlans if it is the case's plan in force on the day."""
    plan = block["Assessment"]["NamedPlan"]
    plan["StartDate"] = spell.start.isoformat()
    detail = _placement(out, case) if latest else None
    if detail:
        plan["PlanDetail"] = [detail]
    if spell.ended is not None and spell.ended <= out.reference_date:
        plan["CeaseDate"] = spell.ended.isoformat()
        if spell.reason:
            plan["CeaseReason"] = spell.reason
    elif latest:
        block["ActivePlans"] = _active(out, case, spell.transfer_in)


def _identity(out: Return, case: _Case) -> dict[str, Any]:
    d = case.details
    forename, _, surname = case.name.strip().rpartition(" ")
    surname, forename = d.get("surname") or surname, d.get("forename") or forename
    if not forename:
        out.gap("Forename", "the case's name is one word: record the forename and surname", case.id, True)
    person: dict[str, Any] = {"Surname": surname, "Forename": forename, "PersonBirthDate": case.born.isoformat()}
    for key, element, why in (("sex", "Sex", "sex not recorded"), ("ethnicity", "Ethnicity", "ethnicity not recorded")):
        if d.get(key):
            person[element] = d[key]
        else:
            out.gap(element, why, case.id, True)
    postcode = d.get("postcode") or _postcode(case.address)
    if postcode:
        person["PostCode"] = postcode
    if d.get("upn"):
        person["UPN"] = d["upn"]
    if d.get("uln"):
        person["UniqueLearnerNumber"] = d["uln"]
    if not d.get("upn") and not d.get("uln"):
        if d.get("upn_unknown"):
            person["UPNunknown"] = d["upn_unknown"]
        else:
            out.gap("UPN", "no UPN, ULN or reason for neither (UPNunknown)", case.id, True)
    return person


def _postcode(address: str | None) -> str | None:
    if not address:
        return None
    last = address.strip().splitlines()[-1].strip().upper()
    return last if sen2.POSTCODE.match(last) and len(last) <= 8 else None


def _flags(disagreements: list[dict[str, Any]], decisions: tuple[str, ...]) -> tuple[str, str]:
    """Mediation and tribunal flags: 1 when the family went to mediation, or appealed, against one of
    the request's own decisions of these kinds."""
    mediation = tribunal = "0"
    for d in disagreements:
        if d["facts"].get("decision") not in decisions:
            continue
        triggers = {t for _on, t, _to, _in in d["steps"]}
        if triggers & {"request_mediation", "hold_mediation", "record_agreement"}:
            mediation = "1"
        if triggers & {"lodge_appeal", "send_response", "record_order", "record_dismissal", "withdraw_appeal"}:
            tribunal = "1"
    return mediation, tribunal


def _request(out: Return, case: _Case, inst: dict[str, Any], received: date) -> tuple[dict[str, Any], date | None]:
    """One Requests block, and the day the request was finished with (decided not to assess,
    withdrawn, or the assessment's outcome), if it has been."""
    facts = inst["facts"]
    block: dict[str, Any] = {"ReceivedDate": received.isoformat()}
    source = SOURCES.get(str(facts.get("requested_by") or ""))
    if source:
        block["RequestSource"] = source
    else:
        out.gap("RequestSource", "who made the request was not recorded", case.id, True)
    yes, no = _step(inst, *ASSESS_YES), _step(inst, "refuse_to_assess")
    withdrawn = _step(inst, "withdraw_request", "move_out_of_area")
    finished: date | None = None
    if yes is not None:
        block["RequestOutcomeDate"] = _day(yes[1].get("decision_sent_on"), yes[0]).isoformat()
        block["RequestOutcome"] = "Y"
    elif no is not None:
        decided = _day(no[1].get("decision_sent_on"), no[0])
        block["RequestOutcomeDate"] = decided.isoformat()
        block["RequestOutcome"] = "N"
        finished = decided
    elif withdrawn is not None:
        block["RequestOutcome"] = "W"
        finished = withdrawn[0]
    else:
        block["RequestOutcome"] = "A"
    # The disagreements this request's own decisions started (a follow-on of its steps).
    disagreements = [i for i in case.instances if i["workflow"] == "disagreement" and i["parent"] == inst["id"]]
    mediation, tribunal = _flags(disagreements, ("not_to_assess",))
    block["RequestMediation"], block["RequestTribunal"] = mediation, tribunal
    if block["RequestOutcome"] != "Y":
        return block, finished
    assessment: dict[str, Any] = {}
    issued, not_issuing = _step(inst, "issue_final_plan"), _step(inst, "decide_not_to_issue")
    if issued is not None:
        on = _day(issued[1].get("plan_issued_on"), issued[0])
        assessment.update(AssessmentOutcome="Y", AssessmentOutcomeDate=on.isoformat())
        finished = on
    elif not_issuing is not None:
        on = _day(not_issuing[1].get("decision_sent_on"), not_issuing[0])
        assessment.update(AssessmentOutcome="N", AssessmentOutcomeDate=on.isoformat())
        finished = on
    elif withdrawn is not None:  # withdrawn, or moved away, after the council agreed to assess
        assessment["AssessmentOutcome"] = "W"
        finished = withdrawn[0]
    else:
        assessment["AssessmentOutcome"] = "A"
    mediation, tribunal = _flags(disagreements, ("not_to_issue",))
    other_m, other_t = _flags(disagreements, ("plan_content",))
    assessment.update(AssessmentMediation=mediation, AssessmentTribunal=tribunal, OtherMediation=other_m,
                      OtherTribunal=other_t)  # fmt: skip
    if assessment["AssessmentOutcome"] == "Y":
        final = inst["deadlines"].get("final_plan")
        assessment["Week20"] = "1" if final is not None and final[2] else "0"
        assessment["NamedPlan"] = {}
    block["Assessment"] = assessment
    return block, finished


def _placement(out: Return, case: _Case) -> dict[str, Any] | None:
    d = case.details
    detail: dict[str, Any] = {}
    if d.get("setting_urn"):
        detail["URN"] = d["setting_urn"]
    elif d.get("setting_ukprn"):
        detail["UKPRN"] = d["setting_ukprn"]
    elif d.get("setting_code"):
        detail["SENSetting"] = d["setting_code"]
        if d.get("setting_other"):
            detail["SENSettingOther"] = d["setting_other"]
    else:
        out.gap("URN", "the setting named in the plan has no URN, UKPRN or kind of arrangement recorded", case.id)
        return None
    detail["PlacementRank"] = "1"
    return detail


def _active(out: Return, case: _Case, transfer_in: dict[str, Any] | None) -> dict[str, Any]:
    """The ActivePlans block: the placement, the needs, the last review and the phase transfer."""
    start, end = out.period
    active: dict[str, Any] = {}
    if (
        transfer_in is not None
        and start <= _day(transfer_in["facts"].get("transferred_on"), transfer_in["opened_on"]) <= end
    ):
        if case.details.get("transferred_from_la"):
            active["TransferLA"] = case.details["transferred_from_la"]
        else:
            out.gap("TransferLA", "the code of the council the plan came from is not recorded", case.id)
    placement = _placement(out, case)
    if placement is not None:
        active["PlacementDetail"] = [placement]
    needs = [n for n in (case.details.get("primary_need"), case.details.get("secondary_need")) if n]
    if needs:
        active["SENneed"] = [{"SENtype": n, "SENtypeRank": str(rank)} for rank, n in enumerate(needs, start=1)]
    else:
        out.gap("SENtype", "the primary type of need is not recorded", case.id)
    reviews = [i for i in case.instances if i["workflow"] == "annual_review"]
    meetings = [_step(i, "hold_meeting") for i in reviews]
    held = [_day(m[1].get("meeting_held_on"), m[0]) for m in meetings if m is not None]
    decisions = []
    for inst in reviews:
        for on, trigger, _to, inputs in inst["steps"]:
            if trigger in REVIEW:
                decisions.append((_day(inputs.get("decision_sent_on"), on), trigger))
    drafts = [d for d, t in decisions if t == "propose_amendments"]
    if held:
        active["ReviewMeeting"] = max(held).isoformat()
    if decisions:
        last = max(decisions)
        active["ReviewOutcome"] = REVIEW[last[1]]
    if drafts:
        active["ReviewDraft"] = max(drafts).isoformat()
    transfers = [i["deadlines"]["phase_transfer"] for i in case.instances if "phase_transfer" in i["deadlines"]]
    if transfers:
        due, closed, _ = max(transfers)
        active["PhaseTransferDueDate"] = due.isoformat()
        if closed is not None and closed <= out.reference_date:
            active["PhaseTransferFinalDate"] = closed.isoformat()
    if decisions:
        active["LastReview"] = max(decisions)[0].isoformat()
    return active


# -- writing -------------------------------------------------------------------------------------

ORDER = {
    "Person": ("Surname", "Forename", "PersonBirthDate", "Sex", "Ethnicity", "PostCode", "UPN", "UniqueLearnerNumber",
               "UPNunknown", "Requests"),
    "Requests": ("ReceivedDate", "RequestSource", "RYA", "RequestOutcomeDate", "RequestOutcome", "RequestMediation",
                 "RequestTribunal", "Exported", "Assessment", "ActivePlans"),
    "Assessment": ("AssessmentOutcome", "AssessmentOutcomeDate", "AssessmentMediation", "AssessmentTribunal",
                   "OtherMediation", "OtherTribunal", "Week20", "NamedPlan"),
    "NamedPlan": ("StartDate", "PlanDetail", "PlanRes", "PlanWBP", "PB", "OA", "DP", "CeaseDate", "CeaseReason"),
    "PlanDetail": ("URN", "UKPRN", "SENSetting", "SENSettingOther", "PlacementRank", "SENunitIndicator",
                   "ResourcedProvisionIndicator"),
    "ActivePlans": ("TransferLA", "PlacementDetail", "SENneed", "ReviewMeeting", "ReviewOutcome", "ReviewDraft",
                    "PhaseTransferDueDate", "PhaseTransferFinalDate", "LastReview"),
    "PlacementDetail": ("URN", "UKPRN", "SENSetting", "SENSettingOther", "PlacementRank", "EntryDate", "LeavingDate",
                        "SENunitIndicator", "ResourcedProvisionIndicator", "Res", "WBP"),
    "SENneed": ("SENtype", "SENtypeRank"),
}  # fmt: skip


def _element(parent: ET.Element, name: str, value: Any) -> None:
    if value is None or value == "":
        return
    if isinstance(value, list):
        for item in value:
            _element(parent, name, item)
        return
    child = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key in ORDER[name]:
            _element(child, key, value.get(key))
    else:
        child.text = str(value)


def to_xml(found: Return) -> bytes:
    """The return as the Department's XML: UTF-8, no namespace, elements in the schema's order."""
    root = ET.Element("Message")
    header = ET.SubElement(root, "Header")
    details = ET.SubElement(header, "CollectionDetails")
    for key in ("Collection", "Year", "ReferenceDate"):
        ET.SubElement(details, key).text = found.header[key]
    source = ET.SubElement(header, "Source")
    for key in ("SourceLevel", "LEA", "SoftwareCode", "Release", "SerialNo", "DateTime", "DMO", "DCO", "DSCO"):
        if found.header[key]:
            ET.SubElement(source, key).text = found.header[key]
    if found.persons:
        persons = ET.SubElement(root, "Persons")
        for p in found.persons:
            _element(persons, "Person", p["Person"])
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"


# -- checking ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    rule: str  # "schema", or a rule's number here
    where: str  # which person (their position in the file) and module
    what: str


MAX_BYTES = 200 * 1024 * 1024  # England's largest council has under 30,000 plans: a few tens of MB
RULES = {
    "S01": "Each child has a UPN, a ULN, or a reason for neither (UPNunknown), and not a reason as well as a number",
    "S02": "A UPN's check letter is right (the DfE's rule for unique pupil numbers)",
    "S03": "A request not historical (H) has its received date and who made it (RequestSource)",
    "S04": "A request decided (Y or N) has the date of the decision, on or after the day it was received",
    "S05": "A request the council agreed to (Y) has an assessment; one refused, withdrawn or undecided has none",
    "S06": "An assessment decided (Y or N) has the date of its outcome, on or after the request's decision",
    "S07": "An assessment that led to a plan (Y or H) has the plan with its start date",
    "S08": "A plan that ended has both the date and the reason; a plan in force on the reference date has not ended",
    "S09": "A placement names one of a URN, a UKPRN or a kind of setting, not more",
    "S10": "Needs: one primary (rank 1), at most one secondary, and not the same type twice",
    "S11": "No date is after the reference date except a phase transfer's due date, nor before the child's birth",
    "S12": "The header's year is the reference date's year",
}


def check(data: bytes, year: int | None = None) -> list[Problem]:
    """Every way ``data`` (a SEN2 file) breaks the schema or the rules; empty when it would pass."""
    if len(data) > MAX_BYTES:
        return [Problem("schema", "the file", f"{len(data):,} bytes: larger than any council's return ({MAX_BYTES:,})")]
    if re.search(rb"<!(DOCTYPE|ENTITY)", data[:65536], re.IGNORECASE) or b"<!ENTITY" in data:
        # A return declares nothing; a declaration could expand entities or fetch files.
        return [Problem("schema", "the file", "it declares a DOCTYPE or entities, which a SEN2 return never does")]
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return [Problem("schema", "the file", f"not well-formed XML: {exc}")]
    found = [_schema_problem(e) for e in sen2.schema(year).iter_errors(data)]
    return found + _rules(root)


def _schema_problem(error: Any) -> Problem:
    """A schema error in words: the element, the value and what is wrong, not the whole code list."""
    elem = getattr(error, "elem", None)
    tag = getattr(elem, "tag", None)
    value = (getattr(elem, "text", None) or "").strip()
    reason = str(error.reason or error.message or error)
    if "must be one of" in reason or "not an element of the set" in reason:
        reason = "is not one of the return's codes"
    elif len(reason) > 200:
        reason = reason[:200] + "..."
    shown = f"{tag} '{value}': " if tag and value and len(value) < 60 else f"{tag}: " if tag else ""
    return Problem("schema", _where(error.path), shown + reason)


def _where(path: str | None) -> str:
    if not path:
        return "the file"
    m = re.search(r"Person\[(\d+)\]", path)
    return (f"person {m.group(1)}: " if m else "") + path.rsplit("/", 1)[-1]


def _text(node: ET.Element | None, name: str) -> str | None:
    found = node.find(name) if node is not None else None
    return found.text.strip() if found is not None and found.text else None


def _date(node: ET.Element | None, name: str) -> date | None:
    value = _text(node, name)
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _rules(root: ET.Element) -> list[Problem]:
    out: list[Problem] = []
    reference = _date(root.find("Header/CollectionDetails"), "ReferenceDate")
    year = _text(root.find("Header/CollectionDetails"), "Year")
    if reference and year and year != str(reference.year):
        out.append(Problem("S12", "header", f"the year is {year} but the reference date is in {reference.year}"))
    for n, person in enumerate(root.findall("Persons/Person"), start=1):
        where = f"person {n}"

        def fail(rule: str, module: str, what: str, _where: str = where) -> None:
            out.append(Problem(rule, f"{_where}: {module}", what))

        upn, uln, unknown = _text(person, "UPN"), _text(person, "UniqueLearnerNumber"), _text(person, "UPNunknown")
        if not upn and not uln and not unknown:
            fail("S01", "Person", "no UPN, ULN or UPNunknown")
        if unknown and (upn or uln):
            fail("S01", "Person", "UPNunknown is given with a UPN or ULN")
        if upn and sen2.upn_problem(upn):
            fail("S02", "Person", f"UPN: {sen2.upn_problem(upn)}")
        born = _date(person, "PersonBirthDate")
        for node in person.iter():
            if (
                node.text
                and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", node.text.strip())
                and node.tag != "PersonBirthDate"
            ):
                try:
                    day = date.fromisoformat(node.text.strip())
                except ValueError:
                    continue  # not a real date: the schema says so
                if reference and day > reference and node.tag != "PhaseTransferDueDate":
                    fail("S11", node.tag, f"{day.isoformat()} is after the reference date")
                if born and day < born:
                    fail("S11", node.tag, f"{day.isoformat()} is before the date of birth")
        for request in person.findall("Requests"):
            _request_rules(request, fail, reference)
    return out


def _request_rules(request: ET.Element, fail: Any, reference: date | None) -> None:
    outcome = _text(request, "RequestOutcome")
    received, decided = _date(request, "ReceivedDate"), _date(request, "RequestOutcomeDate")
    if outcome != "H":
        if received is None:
            fail("S03", "Requests", "no ReceivedDate")
        if _text(request, "RequestSource") is None:
            fail("S03", "Requests", "no RequestSource")
    if outcome in ("Y", "N"):
        if decided is None:
            fail("S04", "Requests", f"RequestOutcome {outcome} without RequestOutcomeDate")
        elif received and decided < received:
            fail("S04", "Requests", "RequestOutcomeDate is before ReceivedDate")
    assessment = request.find("Assessment")
    if outcome == "Y" and assessment is None:
        fail("S05", "Requests", "RequestOutcome Y without an Assessment")
    if outcome in ("N", "A", "W") and assessment is not None:
        fail("S05", "Requests", f"RequestOutcome {outcome} with an Assessment")
    if assessment is None:
        if request.find("ActivePlans") is not None:
            fail("S07", "ActivePlans", "an active plan without the assessment and plan it came from")
        return
    result = _text(assessment, "AssessmentOutcome")
    result_on = _date(assessment, "AssessmentOutcomeDate")
    if result in ("Y", "N"):
        if result_on is None:
            fail("S06", "Assessment", f"AssessmentOutcome {result} without AssessmentOutcomeDate")
        elif decided and result_on < decided:
            fail("S06", "Assessment", "AssessmentOutcomeDate is before RequestOutcomeDate")
    plan = assessment.find("NamedPlan")
    if result in ("Y", "H") and (plan is None or _text(plan, "StartDate") is None):
        fail("S07", "NamedPlan", f"AssessmentOutcome {result} without a plan and its StartDate")
    if result in ("N", "A", "W") and plan is not None:
        fail("S07", "NamedPlan", f"AssessmentOutcome {result} with a plan")
    ceased = _date(plan, "CeaseDate") if plan is not None else None
    if plan is not None and (ceased is None) != (_text(plan, "CeaseReason") is None):
        fail("S08", "NamedPlan", "CeaseDate and CeaseReason go together")
    if ceased and reference and ceased <= reference and request.find("ActivePlans") is not None:
        fail("S08", "ActivePlans", "a plan that ended before the reference date is reported as active")
    placements = (plan.findall("PlanDetail") if plan is not None else []) + request.findall(
        "ActivePlans/PlacementDetail"
    )
    for place in placements:
        named = [k for k in ("URN", "UKPRN", "SENSetting") if _text(place, k)]
        if len(named) != 1:
            fail("S09", place.tag, f"names {len(named)} of URN, UKPRN and SENSetting (one is needed)")
    needs = request.findall("ActivePlans/SENneed")
    ranks = [_text(n, "SENtypeRank") for n in needs]
    types = [_text(n, "SENtype") for n in needs]
    if needs and (ranks.count("1") != 1 or ranks.count("2") > 1 or len(set(types)) != len(types)):
        fail("S10", "SENneed", "needs must be one rank 1, at most one rank 2, and different types")
