"""EHC plans as versioned data: sections A to K, a draft that caseworkers edit, versions frozen
once the family has seen them.

A version's life: ``draft`` (editable; ``ehcp plan edit``), then ``shared`` when a step sends it to
the family as a draft plan or as proposed amendments, or ``issued`` when a step issues it as the
final or amended plan. Shared and issued versions never change (the database refuses it); the
next edit starts a new draft based on the latest version. Every edit is kept: who changed which
section, when, from what to what.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .actor import Actor, may_change_cases
from .clock import Clock
from .directory import Directory
from .errors import InvalidInput, NotFound
from .inputs import free_text
from .plandiff import SECTION_TITLES as _TITLES
from .store.repository import Store, Unit, as_date

SECTIONS: tuple[str, ...] = ("A", "B", "C", "D", "E", "F", "G", "H1", "H2", "I", "J", "K")

# The statute's headings (SEND Regulations 2014 reg 12(1)), shared with the tracked-changes view.
SECTION_TITLES: dict[str, str] = dict(_TITLES)

# Document kinds (as the workflow files name them) that send a version to the family or issue it.
SECTION_LIMIT = 50_000  # characters in one section: a plan is a few pages, and every one is rendered
SHARING_KINDS = ("draft_plan", "amendment_notice")
ISSUING_KINDS = ("final_plan", "final_amended_plan")


@dataclass(frozen=True)
class PlanRecord:
    case_id: int
    version: int
    status: str
    sections: dict[str, str]
    based_on: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    issued_on: date | None
    issued_by: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "version": self.version,
            "status": self.status,
            "based_on": self.based_on,
            "issued_on": self.issued_on.isoformat() if self.issued_on else None,
            "issued_by": self.issued_by,
            "sections": {s: self.sections.get(s, "") for s in SECTIONS},
        }


def section_letter(text: str) -> str:
    letter = text.strip().upper()
    if letter not in SECTIONS:
        raise InvalidInput(f"--section: '{text}' is not a section of an EHC plan; sections: {', '.join(SECTIONS)}")
    return letter


_COLUMNS = "case_id, version, status, sections, based_on, created_by, created_at, updated_at, issued_on, issued_by"


def _record(row: Any) -> PlanRecord:
    return PlanRecord(
        case_id=row[0],
        version=row[1],
        status=row[2],
        sections=json.loads(row[3]),
        based_on=row[4],
        created_by=row[5],
        created_at=row[6] if isinstance(row[6], datetime) else datetime.fromisoformat(str(row[6])),
        updated_at=row[7] if isinstance(row[7], datetime) else datetime.fromisoformat(str(row[7])),
        issued_on=as_date(row[8]) if row[8] is not None else None,
        issued_by=row[9],
    )


def load(unit: Unit, case_id: int, version: int | None = None) -> PlanRecord | None:
    """A version of the case's plan (the latest when ``version`` is None)."""
    if version is None:
        rows = unit.fetch(
            f"SELECT {_COLUMNS} FROM plan_version WHERE case_id = :c ORDER BY version DESC LIMIT 1", {"c": case_id}
        )
    else:
        rows = unit.fetch(
            f"SELECT {_COLUMNS} FROM plan_version WHERE case_id = :c AND version = :v", {"c": case_id, "v": version}
        )
    return _record(rows[0]) if rows else None


def latest_issued(unit: Unit, case_id: int, before: int | None = None) -> PlanRecord | None:
    rows = unit.fetch(
        f"SELECT {_COLUMNS} FROM plan_version WHERE case_id = :c AND status = 'issued' AND version < :v "
        "ORDER BY version DESC LIMIT 1",
        {"c": case_id, "v": before if before is not None else 1 << 30},
    )
    return _record(rows[0]) if rows else None


def _clean(sections: Mapping[str, str]) -> dict[str, str]:
    """Sections by letter, each text with Unix line ends and one final newline ("" when empty)."""
    return {section_letter(k): v.replace("\r\n", "\n").strip() + "\n" if v.strip() else "" for k, v in sections.items()}


def _add_version(
    unit: Unit,
    case_id: int,
    after: PlanRecord | None,
    status: str,
    sections: Mapping[str, str],
    actor: str,
    now: datetime,
    issued_on: date | None = None,
    instance_id: int | None = None,
    seq: int | None = None,
) -> int:
    """A new version after ``after`` (the case's latest, if any); returns its number."""
    version = after.version + 1 if after else 1
    unit.execute(
        "INSERT INTO plan_version (case_id, version, status, sections, based_on, created_at, created_by, updated_at, "
        "issued_on, issued_by, instance_id, history_seq) VALUES (:c, :v, :s, :sections, :based, :now, :actor, :now, "
        ":on, :by, :iid, :seq)",
        {
            "c": case_id,
            "v": version,
            "s": status,
            "sections": json.dumps(dict(sections), sort_keys=True),
            "based": after.version if after else None,
            "now": now,
            "actor": actor,
            "on": issued_on,
            "by": actor if issued_on else None,
            "iid": instance_id,
            "seq": seq,
        },
    )
    return version


def freeze(
    unit: Unit, case_id: int, status: str, on: date, actor: str, now: datetime, instance_id: int, seq: int
) -> int | None:
    """Send (``shared``) or issue the case's current version, in the step's transaction; returns its number.

    A draft becomes the version sent; when the latest version is already frozen (no edits since),
    a copy of it is the version issued, so an issued plan is always its own row. A case whose plan
    is not kept here (no version at all) has nothing to freeze."""
    current = load(unit, case_id)
    if current is None:
        return None
    if current.status == "draft":
        unit.execute(
            "UPDATE plan_version SET status = :s, issued_on = :on, issued_by = :actor, instance_id = :iid, "
            "history_seq = :seq, updated_at = :now WHERE case_id = :c AND version = :v",
            {
                "s": status,
                "on": on,
                "actor": actor,
                "iid": instance_id,
                "seq": seq,
                "now": now,
                "c": case_id,
                "v": current.version,
            },
        )
        return current.version
    return _add_version(unit, case_id, current, status, current.sections, actor, now, on, instance_id, seq)


class Plans:
    def __init__(self, store: Store, directory: Directory, clock: Clock):
        self.store = store
        self.directory = directory
        self.clock = clock

    def get(self, case_id: int, version: int | None = None, *, actor: Actor) -> PlanRecord:
        with self.store.unit() as unit:
            unit.instances(case_id)  # NotFound for an unknown case
            plan = load(unit, case_id, version)
        if plan is None:
            raise NotFound(
                f"case {case_id} has no plan version {version}" if version else f"case {case_id} has no plan yet"
            )
        return plan

    def versions(self, case_id: int, *, actor: Actor) -> list[PlanRecord]:
        with self.store.unit() as unit:
            unit.instances(case_id)
            return [
                _record(r)
                for r in unit.fetch(
                    f"SELECT {_COLUMNS} FROM plan_version WHERE case_id = :c ORDER BY version", {"c": case_id}
                )
            ]

    def edit(self, case_id: int, sections: Mapping[str, str], *, actor: Actor) -> PlanRecord:
        """Write sections into the case's draft (a new draft, based on the latest version, if there is none)."""
        may_change_cases(actor, "edit a plan")
        if actor.role not in ("caseworker", "team_manager"):
            raise InvalidInput(f"{actor.id} ({actor.role}) cannot edit plans: caseworkers and team managers can")
        for letter, text in sections.items():
            try:
                free_text(text, f"section {letter}", SECTION_LIMIT)
            except ValueError as exc:
                raise InvalidInput(f"--section {letter}: {exc}") from None
        changes = _clean(sections)
        if not changes:
            raise InvalidInput("nothing to change: give --section and --file, or --from a YAML or JSON file")
        now = self.clock.now()
        with self.store.unit() as unit:
            unit.instances(case_id)
            current = load(unit, case_id)
            if current is None or current.status != "draft":
                base = dict(current.sections) if current else {}
                version = _add_version(unit, case_id, current, "draft", base, actor.id, now)
            else:
                version, base = current.version, dict(current.sections)
            merged = dict(base)
            for letter, text in changes.items():
                if base.get(letter, "") == text:
                    continue
                unit.execute(
                    "INSERT INTO plan_edit (case_id, version, section, actor, recorded_by, at, before, after) "
                    "VALUES (:c, :v, :s, :actor, :recorded_by, :now, :before, :after)",
                    {
                        "c": case_id,
                        "v": version,
                        "s": letter,
                        "actor": actor.id,
                        "recorded_by": actor.recorded_by,
                        "now": now,
                        "before": base.get(letter),
                        "after": text,
                    },
                )
                merged[letter] = text
            unit.execute(
                "UPDATE plan_version SET sections = :sections, updated_at = :now WHERE case_id = :c AND version = :v "
                "AND status = 'draft'",
                {"sections": json.dumps(merged, sort_keys=True), "now": now, "c": case_id, "v": version},
            )
            plan = load(unit, case_id, version)
        assert plan is not None
        return plan

    def record_issued(self, case_id: int, sections: Mapping[str, str], issued_on: date, *, actor: Actor) -> PlanRecord:
        """Record a plan issued before the case was kept here (a council bringing its plans in): it
        becomes an issued version, the base of the next review's amendments."""
        may_change_cases(actor, "record an issued plan")
        now = self.clock.now()
        with self.store.unit() as unit:
            unit.instances(case_id)
            current = load(unit, case_id)
            version = _add_version(unit, case_id, current, "issued", _clean(sections), actor.id, now, issued_on)
            plan = load(unit, case_id, version)
        assert plan is not None
        return plan

    def edits(self, case_id: int, *, actor: Actor) -> list[dict[str, Any]]:
        with self.store.unit() as unit:
            rows = unit.fetch(
                "SELECT version, section, actor, at, before, after FROM plan_edit WHERE case_id = :c ORDER BY id",
                {"c": case_id},
            )
        return [
            {"version": r[0], "section": r[1], "by": r[2], "at": str(r[3]), "before": r[4], "after": r[5]} for r in rows
        ]
