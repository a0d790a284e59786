"""The workflow definitions a council runs: every version, each with its one shared machine."""

from __future__ import annotations

from pathlib import Path

from .definition.load import check_files
from .definition.model import WorkflowDefinition
from .errors import DefinitionError, NotFound, Problem
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

    @classmethod
    def from_folder(cls, folder: Path) -> Catalogue:
        if not folder.is_dir():
            raise DefinitionError([Problem(str(folder), None, "", "no such workflows folder")])
        loaded, problems = check_files(workflow_files(folder))
        if problems:
            raise DefinitionError(problems)
        return cls(loaded)

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
