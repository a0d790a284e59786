"""What the Department for Education's SEN2 return asks about a child that casework does not record
on its own: sex, ethnicity, pupil numbers, the type of need, the setting by its URN or UKPRN, and
the like. Each is checked against the return's own code lists (read from the schema in
engine/schemas, so the lists live in one place) and recorded on the case with a history entry.

``engine.sen2_return`` builds the return itself from the record and these details.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .actor import Actor
from .clock import Clock
from .errors import InvalidInput, NotAuthorised

if TYPE_CHECKING:
    import xmlschema

    from .app import App

SCHEMAS = Path(__file__).parent / "schemas"
UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"  # 23: no I, O or S
POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][A-Z]{2}$")
TRIGGER = "record_details"  # the history entry's trigger: not a step of any workflow


@cache
def schema(year: int | None = None) -> xmlschema.XMLSchema:
    """The return's schema for ``year`` (its collection year), or the newest this installation has."""
    import xmlschema

    return xmlschema.XMLSchema(str(schema_path(year)))


def schema_path(year: int | None = None) -> Path:
    found = sorted(SCHEMAS.glob("sen2-*.xsd"))
    exact = [p for p in found if year is not None and p.stem == f"sen2-{year}"]
    return exact[0] if exact else found[-1]


def codes(type_name: str) -> tuple[str, ...]:
    """A code list of the return (an enumeration in its schema), e.g. ``EthnicityType``."""
    found = schema().types[type_name]
    return tuple(str(v) for v in getattr(found, "enumeration", None) or ())


@cache
def words(type_name: str) -> dict[str, str]:
    """Each code of a list with its meaning (engine/schemas/sen2-codes.yaml), for people to choose from."""
    import yaml

    found = yaml.safe_load((SCHEMAS / "sen2-codes.yaml").read_text(encoding="utf-8")).get(type_name, {})
    return {code: str(found.get(code, code)) for code in codes(type_name)}


def upn_check_letter(rest: str) -> str:
    """The check letter of a unique pupil number from its other 12 characters (the DfE's rule: each
    character times its position, 2 to 13, summed, modulo 23; a letter in the last place counts as
    its place in the 23 letters)."""
    total = 0
    for weight, ch in enumerate(rest, start=2):
        total += weight * (int(ch) if ch.isdigit() else UPN_LETTERS.index(ch))
    return UPN_LETTERS[total % 23]


def upn_problem(upn: str) -> str | None:
    if not re.fullmatch(r"[A-Z][0-9]{11}[0-9A-Z]", upn) or upn[0] not in UPN_LETTERS or upn[12] in "IOS":
        return "a UPN is 13 characters: a letter, 11 digits, then a digit (or a letter in a temporary UPN)"
    if upn[0] != upn_check_letter(upn[1:]):
        return f"the check letter (the first) is wrong: it would be {upn_check_letter(upn[1:])} for the rest"
    return None


@dataclass(frozen=True)
class Field:
    name: str
    option: str  # the command line's option
    label: str  # the web form's label
    codes: str | None = None  # the schema type whose enumeration it must be in

    @property
    def short(self) -> str:
        """The label's first words, for a summary: "Unique pupil number"."""
        return SHORT.get(self.name) or self.label.split(" (")[0]


FIELDS = (
    Field("surname", "--surname", "Surname, as the return shows it (when the case's name does not split plainly)"),
    Field("forename", "--forename", "Forename, as the return should show it"),
    Field("sex", "--sex", "Sex (M or F, as the school census records it)", "SexType"),
    Field("ethnicity", "--ethnicity", "Ethnicity (the census code, e.g. WBRI; REFU refused; NOBT not yet obtained)",
          "EthnicityType"),
    Field("upn", "--upn", "Unique pupil number (13 characters)"),
    Field("uln", "--uln", "Unique learner number (10 digits), for a young person in further education"),
    Field("upn_unknown", "--upn-unknown", "Why there is no UPN or ULN (UN1 under 6, UN2 never at a state school ...)",
          "UPNUnknownType"),
    Field("postcode", "--postcode", "Home postcode"),
    Field("primary_need", "--primary-need", "Primary type of need (e.g. SLCN, ASD, SEMH)", "SENTypeType"),
    Field("secondary_need", "--secondary-need", "Secondary type of need, if any", "SENTypeType"),
    Field("setting_urn", "--setting-urn", "URN of the school or setting named in the plan (6 digits)"),
    Field("setting_ukprn", "--setting-ukprn", "UKPRN of the college or provider named, instead of a URN (8 digits)"),
    Field("setting_code", "--setting-code", "Or the kind of arrangement, when there is no URN or UKPRN (e.g. EHE, OLA)",
          "SENSettingType"),
    Field("setting_other", "--setting-other", "Details of that arrangement (e.g. permanently excluded)"),
    Field("transferred_from_la", "--transferred-from-la", "Code of the council the plan came from (3 digits)"),
    Field("cease_reason", "--cease-reason", "Why the plan ended, as the return counts it (1 to 9)", "CeaseReasonType"),
)  # fmt: skip
BY_NAME = {f.name: f for f in FIELDS}
SHORT = {"surname": "Surname", "forename": "Forename", "setting_code": "Kind of arrangement",
         "setting_ukprn": "UKPRN of the provider named", "setting_other": "Details of the arrangement",
         "transferred_from_la": "Council the plan came from", "cease_reason": "Why the plan ended"}  # fmt: skip


def check(field: Field, value: str) -> str:
    """The value as stored (upper case where codes are), or InvalidInput naming the field."""
    value = value.strip()
    if field.name in ("surname", "forename", "setting_other"):
        from .cases import clean_name

        value = clean_name(value, field.option, field.short.lower())
        limit = 200 if field.name == "setting_other" else 100
        if len(value) > limit:
            raise InvalidInput(
                f"{field.option}: {field.short.lower()} is {len(value)} characters long; the limit is {limit}"
            )
        return value
    value = value.upper().replace(" ", "") if field.name != "postcode" else value.upper()
    if field.codes is not None:
        allowed = codes(field.codes)
        if value not in allowed:
            shown = ", ".join(allowed) if len(allowed) <= 20 else ", ".join(allowed[:12]) + ", ..."
            raise InvalidInput(f"{field.option}: '{value}' is not one of the return's codes ({shown})")
        return value
    problem = {
        "upn": upn_problem(value),
        "uln": None if re.fullmatch(r"[0-9]{10}", value) else "a ULN is 10 digits",
        "postcode": None if POSTCODE.match(value) else "not a UK postcode (like DT1 1AA)",
        "setting_urn": None if re.fullmatch(r"[0-9]{6}", value) else "a URN is 6 digits",
        "setting_ukprn": None if re.fullmatch(r"1[0-9]{7}", value) else "a UKPRN is 8 digits starting with 1",
        "transferred_from_la": None if re.fullmatch(r"[0-9]{3}", value) else "a council's code is 3 digits",
    }[field.name]
    if problem:
        raise InvalidInput(f"{field.option}: {problem}")
    return value


def record(
    core: App, case_id: int, changes: Mapping[str, str | None], *, actor: Actor, clock: Clock | None = None
) -> dict[str, Any]:
    """Record or clear (None or "") details of a case for the return, on the record: the row and a
    history entry naming what changed, in one transaction. Returns the details as they now are.
    ``clock``: the service's own unless given (the demo records its past)."""
    clock = clock or core.clock
    if actor.role not in ("caseworker", "team_manager"):
        raise NotAuthorised(f"only a caseworker or team manager records a child's details; you are {actor.role}")
    unknown = [k for k in changes if k not in BY_NAME]
    if unknown:
        raise InvalidInput(f"not a detail the return asks for: {', '.join(unknown)}")
    clean = {k: (check(BY_NAME[k], v) if v not in (None, "") else None) for k, v in changes.items()}
    now = clock.now()
    with core.store.unit() as unit:
        before = details(unit, case_id)
        changed = {k: v for k, v in clean.items() if before.get(k) != v}
        if not changed:
            return before
        merged = {**before, **changed}
        if merged.get("upn") and merged.get("upn_unknown"):
            raise InvalidInput("--upn-unknown: a reason for no UPN is given only when there is no UPN")
        columns = [f.name for f in FIELDS]
        values = {c: merged.get(c) for c in columns} | {"case_id": case_id, "at": now, "by": actor.id}
        unit.execute("DELETE FROM case_detail WHERE case_id = :case_id", {"case_id": case_id})
        unit.execute(
            f"INSERT INTO case_detail (case_id, {', '.join(columns)}, updated_at, updated_by) "
            f"VALUES (:case_id, {', '.join(':' + c for c in columns)}, :at, :by)",
            values,
        )
        instances = unit.instances(case_id)
        if not instances:
            raise InvalidInput(f"case {case_id} has no workflow to record this against")
        open_ = [i for i in instances if i[3] is None] or instances
        target = unit.load(open_[-1][0])
        unit.append_history(
            instance_id=target.id,
            case_id=case_id,
            after=(target.version, target.history_hash),
            at=now,
            on=clock.today(),
            actor=actor.id,
            role=actor.role,
            recorded_by=actor.recorded_by,
            trigger=TRIGGER,
            state=target.state,
            inputs={k: (v if v is not None else "") for k, v in changed.items()},
            note="details for the SEN2 return",
        )
        return merged


def details(unit: Any, case_id: int) -> dict[str, Any]:
    """The case's details for the return, field by field (None where not recorded)."""
    columns = [f.name for f in FIELDS]
    rows = unit.fetch(f"SELECT {', '.join(columns)} FROM case_detail WHERE case_id = :c", {"c": case_id})
    return dict(zip(columns, rows[0], strict=True)) if rows else dict.fromkeys(columns)
