"""The typed, frozen form of a workflow definition (what a YAML file becomes once it is valid)."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

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


class IfMissing(StrEnum):
    """What happens when a case has no contact in any of a message's roles."""

    SKIP = "skip"  # kept in the outbox as skipped, with the reason
    ADDRESS = "address"  # the regulations name this recipient: held for the caseworker to address


class MessageAction(Strict):
    """A message queued in the outbox when a state is entered."""

    template: Name
    to: Names
    if_missing: IfMissing = IfMissing.SKIP


def _mapping_value(value: Any) -> Any:
    if isinstance(value, str):
        return {"fact": value}
    return value


class ValueFrom(Strict):
    """Where a value passed to another workflow comes from: a fact of this one, or a fixed value."""

    fact: Name | None = None
    value: Any = None
    fact_named_by: Name | None = None  # a parameter whose value is the name of the fact to pass

    @model_validator(mode="after")
    def _one(self) -> ValueFrom:
        if sum(x is not None for x in (self.fact, self.value, self.fact_named_by)) != 1:
            raise ValueError("give a fact name, {value: ...} or {fact_named_by: PARAMETER}")
        return self


Mapped = Annotated[ValueFrom, BeforeValidator(_mapping_value)]


class StartAction(Strict):
    """Start another workflow on the same case, as a child of this instance, in the same transaction."""

    workflow: Name
    inputs: dict[str, Mapped] = Field(default_factory=dict)
    when: list[Condition] = Field(default_factory=list)


class SignalAction(Strict):
    """Fire a trigger on the workflow that started this one (if it can take it now)."""

    trigger: Name
    inputs: dict[str, Mapped] = Field(default_factory=dict)


class ChildSignal(Strict):
    """Fire a trigger on every open workflow of this kind that this one started (if it can take it now)."""

    workflow: Name
    trigger: Name


class OnEnter(Strict):
    documents: Names = Field(default_factory=list)
    messages: list[MessageAction] = Field(default_factory=list)
    start: list[StartAction] = Field(default_factory=list)
    signal: SignalAction | None = None
    signal_children: list[ChildSignal] = Field(default_factory=list)
    signal_case: list[ChildSignal] = Field(default_factory=list)  # every open workflow of the kind on the case


class StateSpec(Strict):
    description: str = Field(min_length=1)  # for the family: plain English, in their messages and letters
    for_staff: str = ""  # for the council's staff: what is true and what the council must do next
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


class InputEquals(Strict):
    kind: ClassVar[str] = "input_equals"
    """True when each named fact (an input or a parameter) has the value given (or one of a list)."""

    input_equals: dict[str, Any] = Field(min_length=1)
    explain: str = ""


class AgeBelow(Strict):
    kind: ClassVar[str] = "age_below"
    """True when the child is younger than ``age_below`` years on the date held in the fact ``on_date``."""

    age_below: int = Field(ge=1, le=30)
    on_date: Name
    explain: str = ""


class Given(Strict):
    kind: ClassVar[str] = "given"
    """True when the named fact (an input of this or an earlier step, or of the start) has a value."""

    given: Name
    explain: str = ""


class AnyOf(Strict):
    kind: ClassVar[str] = "any_of"
    any_of: list[Condition] = Field(min_length=1)
    explain: str = ""


class Not(Strict):
    kind: ClassVar[str] = "not"
    not_: Condition = Field(alias="not")
    explain: str = ""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


CONDITION_KINDS = ("period_ended", "input_is_yes", "input_equals", "age_below", "given", "any_of", "not")


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
    | Annotated[InputEquals, Tag("input_equals")]
    | Annotated[AgeBelow, Tag("age_below")]
    | Annotated[Given, Tag("given")]
    | Annotated[AnyOf, Tag("any_of")]
    | Annotated[Not, Tag("not")],
    Discriminator(_condition_kind),
]
AnyOf.model_rebuild()
Not.model_rebuild()
StartAction.model_rebuild()
OnEnter.model_rebuild()
StateSpec.model_rebuild()


class TransitionSpec(Strict):
    trigger: Name
    source: Names = Field(alias="from")
    dest: Name = Field(alias="to")
    title: str = ""
    roles: Names = Field(min_length=1)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    conditions: list[Condition] = Field(default_factory=list)
    actions: OnEnter = Field(default_factory=OnEnter)  # done by the step itself, whatever the state

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
    HEALTH = "health"  # the responsible commissioning body (an integrated care board)


class Direction(StrEnum):
    AFTER = "after"
    BEFORE = "before"  # "at least two weeks before the meeting": counted back from the date


class Period(Strict):
    """One way of counting a limit: a duration from a date fact, or from another deadline's due date."""

    duration: DurationField
    counted_from: Name | None = None


MONTHS = ("january february march april may june july august september october november december").split()


def _month(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in MONTHS:
        return MONTHS.index(value.strip().lower()) + 1
    return value


class FixedDate(Strict):
    """A date fixed in the calendar, such as 15 February in the calendar year of a date fact."""

    day: int = Field(ge=1, le=31)
    month: Annotated[int, BeforeValidator(_month)] = Field(ge=1, le=12)
    year_of: Name

    @model_validator(mode="after")
    def _real(self) -> FixedDate:
        try:
            date(2028, self.month, self.day)  # a leap year, so 29 February is allowed
        except ValueError:
            raise ValueError(f"{self.day} {MONTHS[self.month - 1].title()} is not a date") from None
        return self


class ExceptionHead(StrEnum):
    """Why a time limit need not be met, in the words of the regulations' exceptions."""

    SCHOOL_CLOSURE = "school_closure"
    PERSONAL_CIRCUMSTANCES = "personal_circumstances"
    ABSENCE_FROM_AREA = "absence_from_area"
    MISSED_APPOINTMENT = "missed_appointment"
    ADVISER_DELAY = "adviser_delay"
    REPRESENTATIONS = "representations"


EXCEPTION_HEADS: dict[str, str] = {
    "school_closure": "the school or college was closed for at least 4 weeks around the request for advice",
    "personal_circumstances": "exceptional personal circumstances of the child, parent or young person",
    "absence_from_area": "the child, parent or young person was away from the area for the qualifying period",
    "missed_appointment": "the child, parent or young person missed an appointment for an examination or test",
    "adviser_delay": "health or social care advice was not received in time through no fault of the council",
    "representations": "the parent or young person asked to make representations about the content",
}


class Adjustment(StrEnum):
    """A named rule that moves a limit's last day once it is counted (engine.calendar)."""

    TRIBUNAL_APPEAL = "tribunal_appeal"  # TPR 2008 rule 12: next working day; August and Christmas


class DeadlineSpec(Strict):
    name: Name
    title: str = Field(min_length=1)
    duration: DurationField | None = None
    duration_from: Name | None = None  # a parameter holding the duration, e.g. "6 months"
    source: str = Field(min_length=1)
    basis: Basis
    party: Party = Party.COUNCIL
    opened_by: Names = Field(min_length=1)  # triggers, or the word "start"; a later opener recounts it
    counted_from: Name | None = None  # a date input or another deadline; default the opening event's date
    direction: Direction = Direction.AFTER
    later_of: list[Period] = Field(default_factory=list)
    fixed: FixedDate | None = None
    end_of_academic_year_at_age: int | None = Field(default=None, ge=1, le=30)  # from the date of birth
    when: list[Condition] = Field(default_factory=list)  # opened only when these hold
    adjusted_by: Adjustment | None = None  # a rule of the last day applied after counting
    met_by: Names = Field(min_length=1)
    met_on: Name | None = None  # a date input saying when it was done; default the step's date
    cancelled_by: Names = Field(default_factory=list)
    exceptions: list[ExceptionHead] = Field(default_factory=list)
    reminders: list[Reminder] | None = None  # None: the workflow's defaults apply
    escalations: list[Escalation] | None = None
    note: str = ""
    # What the online service lets the party do while this limit is open (engine.portal): "comments",
    # the family's comments on a draft or proposed amendments and the school they ask for; "advice",
    # advisers answering advice requests, each with this limit's duration from their own request.
    online: Literal["comments", "advice"] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> DeadlineSpec:
        ways = [
            self.duration is not None or self.duration_from is not None,
            bool(self.later_of),
            self.fixed is not None,
            self.end_of_academic_year_at_age is not None,
        ]
        if sum(ways) != 1:
            raise ValueError(
                "a deadline has exactly one of: duration (or duration_from), later_of, fixed, "
                "end_of_academic_year_at_age"
            )
        if self.duration is not None and self.duration_from is not None:
            raise ValueError("give duration or duration_from, not both")
        counted_elsewhere = self.later_of or self.fixed or self.end_of_academic_year_at_age
        if counted_elsewhere and (self.counted_from or self.direction is Direction.BEFORE):
            raise ValueError("counted_from and direction go with duration; later_of lists its own")
        return self


class Policy(Strict):
    reminders: list[Reminder] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)


class ParameterSpec(Strict):
    """A point the law leaves to the council: a default in the file, changeable in config.yaml.

    The value in force when an instance starts is kept in its facts, so a case keeps the reading
    it started under.
    """

    label: str = Field(min_length=1)
    options: list[str] = Field(default_factory=list)
    duration: bool = False  # the value is a duration such as "6 months"
    default: str
    source: str = ""

    @model_validator(mode="after")
    def _check(self) -> ParameterSpec:
        if self.options and self.default not in self.options:
            raise ValueError(f"default '{self.default}' is not one of the options {self.options}")
        if self.duration:
            Duration.parse(self.default)
        return self


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
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    defaults: Policy = Field(default_factory=Policy)
    states: dict[str, StateSpec] = Field(min_length=1)
    transitions: list[TransitionSpec] = Field(min_length=1)
    deadlines: list[DeadlineSpec] = Field(default_factory=list)
    file: str = Field(default="", exclude=True)

    @field_validator("states", "inputs", "parameters")
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

    def transition(self, trigger: str, state: str) -> TransitionSpec | None:
        """The step ``trigger`` from ``state`` (the first the file gives), or None."""
        return next((t for t in self.transitions if t.trigger == trigger and state in t.source), None)

    def allowed(self, state: str, role: str | None = None) -> list[str]:
        """The steps that can be taken from ``state`` (by ``role``, when given), in the file's order."""
        found: dict[str, None] = {}
        for trigger in dict.fromkeys(t.trigger for t in self.transitions):
            spec = self.transition(trigger, state)
            if spec is not None and (role is None or role in spec.roles):
                found.setdefault(trigger, None)
        return list(found)

    def triggers(self) -> list[str]:
        seen: dict[str, None] = {}
        for t in self.transitions:
            seen.setdefault(t.trigger, None)
        return list(seen)

    def deadline(self, name: str) -> DeadlineSpec:
        """The deadline called ``name`` (the first variant, when several are chosen between by 'when')."""
        for d in self.deadlines:
            if d.name == name:
                return d
        raise KeyError(name)

    def parameter_values(self) -> dict[str, str]:
        return {name: p.default for name, p in self.parameters.items()}

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
