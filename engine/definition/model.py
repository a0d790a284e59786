"""The typed, frozen form of a workflow definition (what a YAML file becomes once it is valid)."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from ..calendar import Duration

NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _name(value: str) -> str:
    if not NAME.match(value):
        raise ValueError(f"'{value}' is not a name; use lower case letters, digits and underscores")
    return value


def _duration(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    if isinstance(value, dict):
        extra = set(value) - {"amount", "unit", "inclusive"}
        if extra:
            raise ValueError(f"unknown key(s) {sorted(extra)}; a duration has amount, unit, inclusive")
        text = f"{value.get('amount')} {value.get('unit')}"
        return Duration.parse(text, bool(value.get("inclusive", False)))
    return Duration.parse(str(value))


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Name = Annotated[str, BeforeValidator(lambda v: _name(str(v)) if isinstance(v, str) else v)]
Names = Annotated[list[Name], BeforeValidator(_one_or_many)]
DurationField = Annotated[Duration, BeforeValidator(_duration)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class InputType(StrEnum):
    DATE = "date"
    TEXT = "text"
    CHOICE = "choice"
    YES_NO = "yes_no"
    NUMBER = "number"
    EMAIL = "email"


class InputSpec(Strict):
    """A value a caseworker gives when firing a trigger (or when a workflow starts)."""

    type: InputType
    label: str = ""
    required: bool = True
    options: list[str] = Field(default_factory=list)
    default: Any = None  # for dates, the word "today": the date of the event

    @model_validator(mode="after")
    def _check(self) -> InputSpec:
        if self.type is InputType.CHOICE and not self.options:
            raise ValueError("a choice input needs 'options'")
        if self.options and self.type is not InputType.CHOICE:
            raise ValueError("'options' is only for a choice input")
        if self.default is not None:
            if self.type is InputType.DATE and self.default != "today":
                raise ValueError("a date input's default can only be 'today' (the date of the event)")
            if self.type is InputType.CHOICE and self.default not in self.options:
                raise ValueError(f"default '{self.default}' is not one of the options {self.options}")
        return self


class MessageAction(Strict):
    """A message queued in the outbox when a state is entered."""

    template: Name
    to: Names


class OnEnter(Strict):
    documents: Names = Field(default_factory=list)
    messages: list[MessageAction] = Field(default_factory=list)


class StateSpec(Strict):
    description: str = Field(min_length=1)
    final: bool = False
    on_enter: OnEnter = Field(default_factory=OnEnter)


class PeriodEnded(Strict):
    kind: ClassVar[str] = "period_ended"
    """True once the last day of a deadline's period has passed (or it was met)."""

    period_ended: Name
    explain: str = ""


class InputIsYes(Strict):
    kind: ClassVar[str] = "input_is_yes"
    """True when a yes/no input of the transition is yes."""

    input_is_yes: Name
    explain: str = ""


class AnyOf(Strict):
    kind: ClassVar[str] = "any_of"
    any_of: list[Condition] = Field(min_length=1)
    explain: str = ""


CONDITION_KINDS = ("period_ended", "input_is_yes", "any_of")


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in CONDITION_KINDS:
            if kind in value:
                return kind
        return None
    return getattr(value, "kind", None)


Condition = Annotated[
    Annotated[PeriodEnded, Tag("period_ended")]
    | Annotated[InputIsYes, Tag("input_is_yes")]
    | Annotated[AnyOf, Tag("any_of")],
    Discriminator(_condition_kind),
]
AnyOf.model_rebuild()


class TransitionSpec(Strict):
    trigger: Name
    source: Names = Field(alias="from")
    dest: Name = Field(alias="to")
    title: str = ""
    roles: Names = Field(min_length=1)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    conditions: list[Condition] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, value: dict[str, InputSpec]) -> dict[str, InputSpec]:
        for key in value:
            _name(key)
        return value


class Reminder(Strict):
    before: DurationField
    to: Names


class Escalation(Strict):
    after: DurationField
    to: Names


class Basis(StrEnum):
    """Where a limit comes from: an Act or regulation, statutory guidance, or the council's own target."""

    STATUTORY = "statutory"
    GUIDANCE = "guidance"
    LOCAL = "local"


class Party(StrEnum):
    """Who must act by the date: the council's own limits breach; others' periods end."""

    COUNCIL = "council"
    FAMILY = "family"
    ADVISER = "adviser"
    SCHOOL = "school"


class DeadlineSpec(Strict):
    name: Name
    title: str = Field(min_length=1)
    duration: DurationField
    source: str = Field(min_length=1)
    basis: Basis
    party: Party = Party.COUNCIL
    opened_by: Names = Field(min_length=1)  # triggers, or the word "start"
    counted_from: Name | None = None  # a date input; default the date of the opening event
    met_by: Names = Field(min_length=1)
    cancelled_by: Names = Field(default_factory=list)
    reminders: list[Reminder] | None = None  # None: the workflow's defaults apply
    escalations: list[Escalation] | None = None
    note: str = ""


class Policy(Strict):
    reminders: list[Reminder] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)


START = "start"


class WorkflowDefinition(Strict):
    """One version of one statutory workflow."""

    name: Name
    version: int = Field(ge=1)
    title: str = Field(min_length=1)
    source: str = Field(min_length=1)
    description: str = ""
    initial: Name
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    defaults: Policy = Field(default_factory=Policy)
    states: dict[str, StateSpec] = Field(min_length=1)
    transitions: list[TransitionSpec] = Field(min_length=1)
    deadlines: list[DeadlineSpec] = Field(default_factory=list)
    file: str = Field(default="", exclude=True)

    @field_validator("states", "inputs")
    @classmethod
    def _key_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            _name(key)
        return value

    # Derived look-ups, filled once at load.
    def state(self, name: str) -> StateSpec:
        return self.states[name]

    def transitions_from(self, state: str) -> list[TransitionSpec]:
        return [t for t in self.transitions if state in t.source]

    def triggers(self) -> list[str]:
        seen: dict[str, None] = {}
        for t in self.transitions:
            seen.setdefault(t.trigger, None)
        return list(seen)

    def deadline(self, name: str) -> DeadlineSpec:
        for d in self.deadlines:
            if d.name == name:
                return d
        raise KeyError(name)

    def reminders_for(self, deadline: DeadlineSpec) -> list[Reminder]:
        if deadline.reminders is not None:
            return deadline.reminders
        return self.defaults.reminders if deadline.party is Party.COUNCIL else []

    def escalations_for(self, deadline: DeadlineSpec) -> list[Escalation]:
        if deadline.escalations is not None:
            return deadline.escalations
        return self.defaults.escalations if deadline.party is Party.COUNCIL else []

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.version)


InputValue = date | str | bool | float | int | None
