"""The workflow definitions a council runs: every version, each with its one shared machine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .calendar import Duration
from .config import PolicySettings, PolicyStep, WorkflowSettings
from .definition.load import check_files
from .definition.model import Escalation, Policy, Reminder, WorkflowDefinition
from .errors import ConfigError, DefinitionError, NotFound, Problem
from .machine import WorkflowMachine


def workflow_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.yaml") if p.is_file())


class Catalogue:
    """Loaded definitions by (name, version); machines are built once, on first use."""

    def __init__(self, definitions: list[WorkflowDefinition]):
        self._defs: dict[tuple[str, int], WorkflowDefinition] = {}
        problems: list[Problem] = []
        for d in definitions:
            if d.key in self._defs:
                other = self._defs[d.key].file
                problems.append(Problem(d.file, None, "version", f"{d.name} version {d.version} is also in {other}"))
            self._defs[d.key] = d
        if problems:
            raise DefinitionError(problems)
        self._machines: dict[tuple[str, int], WorkflowMachine] = {}

        self._check_links()

    def _check_links(self) -> None:
        """Workflows that start others must name real ones, with inputs they take."""
        problems: list[Problem] = []
        for d in self._defs.values():
            actions = [(f"states.{n}.on_enter", s.on_enter) for n, s in d.states.items()]
            actions += [(f"transitions[{t.trigger}].actions", t.actions) for t in d.transitions]
            for where, action in actions:
                signals = [("signal_children", s) for s in action.signal_children]
                signals += [("signal_case", s) for s in action.signal_case]
                for field, sig in signals:
                    if sig.workflow not in {n for n, _ in self._defs}:
                        problems.append(
                            Problem(d.file, None, f"{where}.{field}", f"no workflow called '{sig.workflow}'")
                        )
                    elif sig.trigger not in self.latest(sig.workflow).triggers():
                        message = f"'{sig.workflow}' has no trigger '{sig.trigger}'"
                        problems.append(Problem(d.file, None, f"{where}.{field}", message))
                for start in action.start:
                    names = {n for n, _ in self._defs}
                    if start.workflow not in names:
                        problems.append(
                            Problem(d.file, None, f"{where}.start", f"no workflow called '{start.workflow}'")
                        )
                        continue
                    child = self.latest(start.workflow)
                    for key in start.inputs:
                        if key not in child.inputs:
                            message = f"'{start.workflow}' takes no input '{key}' (it takes: {', '.join(child.inputs)})"
                            problems.append(Problem(d.file, None, f"{where}.start.inputs", message))
        if problems:
            raise DefinitionError(problems)

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        policy: PolicySettings | None = None,
        overrides: Mapping[str, WorkflowSettings] | None = None,
    ) -> Catalogue:
        """Every workflow in ``folder``, with the council's settings from config.yaml applied."""
        if not folder.is_dir():
            raise DefinitionError([Problem(str(folder), None, "", "no such workflows folder")])
        loaded, problems = check_files(workflow_files(folder))
        if problems:
            raise DefinitionError(problems)
        names = {d.name for d in loaded}
        for name in overrides or {}:
            if name not in names:
                raise ConfigError(f"config.yaml: workflows.{name}: no such workflow; known: {', '.join(sorted(names))}")
        return cls([apply_settings(d, policy, (overrides or {}).get(d.name)) for d in loaded])

    def names(self) -> list[str]:
        return sorted({name for name, _ in self._defs})

    def latest(self, name: str) -> WorkflowDefinition:
        versions = [v for (n, v) in self._defs if n == name]
        if not versions:
            raise NotFound(f"no workflow called '{name}'; known: {', '.join(self.names()) or 'none'}")
        return self._defs[(name, max(versions))]

    def get(self, name: str, version: int) -> WorkflowDefinition:
        try:
            return self._defs[(name, version)]
        except KeyError:
            raise NotFound(f"workflow {name} version {version} is not installed") from None

    def machine(self, name: str, version: int) -> WorkflowMachine:
        key = (name, version)
        m = self._machines.get(key)
        if m is None:
            m = self._machines[key] = WorkflowMachine(self.get(name, version))
        return m

    def all(self) -> list[WorkflowDefinition]:
        return [self._defs[k] for k in sorted(self._defs)]


def _steps(kind: type[Reminder] | type[Escalation], steps: list[PolicyStep], where: str) -> list[Any]:
    out = []
    for i, step in enumerate(steps):
        try:
            out.append(kind.model_validate(step.model_dump(exclude_none=True)))
        except ValidationError as exc:
            message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"config.yaml: {where}[{i}]: {message}") from None
    return out


def apply_settings(
    definition: WorkflowDefinition, policy: PolicySettings | None, own: WorkflowSettings | None
) -> WorkflowDefinition:
    """The definition with a council's reminder policy and readings of open points.

    Only the policy and the parameters change: the law in the file (limits, sources) cannot be
    changed from config.yaml.
    """
    reminders = definition.defaults.reminders
    escalations = definition.defaults.escalations
    for where, layer in (("policy", policy), (f"workflows.{definition.name}", own)):
        if layer is None:
            continue
        if layer.reminders is not None:
            reminders = _steps(Reminder, layer.reminders, f"{where}.reminders")
        if layer.escalations is not None:
            escalations = _steps(Escalation, layer.escalations, f"{where}.escalations")
    parameters = dict(definition.parameters)
    for key, value in (own.parameters if own else {}).items():
        spec = parameters.get(key)
        where = f"config.yaml: workflows.{definition.name}.parameters.{key}"
        if spec is None:
            raise ConfigError(f"{where}: no such parameter; known: {', '.join(parameters) or 'none'}")
        if spec.options and value not in spec.options:
            raise ConfigError(f"{where}: '{value}' is not one of {', '.join(spec.options)}")
        if spec.duration:
            try:
                Duration.parse(value)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        parameters[key] = spec.model_copy(update={"default": value})
    return definition.model_copy(
        update={"defaults": Policy(reminders=reminders, escalations=escalations), "parameters": parameters}
    )
