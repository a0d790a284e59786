"""The workflow definitions a council runs: every version, each with its one shared machine."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .calendar import Duration
from .config import PolicySettings, PolicyStep, WorkflowSettings
from .definition.load import load_text
from .definition.model import Escalation, Policy, Reminder, WorkflowDefinition
from .errors import ConfigError, DefinitionError, NotFound, Problem

if TYPE_CHECKING:
    from .machine import WorkflowMachine


def workflow_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.yaml") if p.is_file())


StoredText = Callable[[str, int], "str | None"]


class Catalogue:
    """Loaded definitions by (name, version); machines are built once, on first use.

    Built ``tolerant`` (as every command but ``ehcp workflows check`` builds it), a broken file is a
    problem listed in ``problems``, not a failure: the other workflows load, and a case on the
    broken one runs on the text of its version kept in the database (``stored``), so one bad edit
    in ``workflows/`` does not stop reminders council-wide.
    """

    def __init__(
        self,
        definitions: list[WorkflowDefinition],
        *,
        tolerant: bool = False,
        texts: Mapping[tuple[str, int], str] | None = None,
        stored: StoredText | None = None,
        settings: tuple[PolicySettings | None, Mapping[str, WorkflowSettings] | None] = (None, None),
    ):
        self._defs: dict[tuple[str, int], WorkflowDefinition] = {}
        self._texts: dict[tuple[str, int], str] = dict(texts or {})
        self._stored = stored
        self._settings = settings
        self.problems: list[Problem] = []
        problems: list[Problem] = []
        for d in definitions:
            if d.key in self._defs:
                other = self._defs[d.key].file
                problems.append(Problem(d.file, None, "version", f"{d.name} version {d.version} is also in {other}"))
            self._defs[d.key] = d
        self._machines: dict[tuple[str, int], WorkflowMachine] = {}
        self._pending: dict[str, Path] = {}  # files not read yet (a tolerant catalogue reads on demand)
        if problems and not tolerant:
            raise DefinitionError(problems)
        self.problems.extend(problems)
        try:
            self._check_links()
        except DefinitionError as exc:
            if not tolerant:
                raise
            self.problems.extend(exc.problems)

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
        *,
        tolerant: bool = False,
        stored: StoredText | None = None,
    ) -> Catalogue:
        """Every workflow in ``folder``, with the council's settings from config.yaml applied.

        ``tolerant``: a broken file is listed in ``problems`` instead of raising; ``stored`` finds
        the text of a version no file holds (the database keeps each version a case has used).
        """
        if not folder.is_dir():
            raise DefinitionError([Problem(str(folder), None, "", "no such workflows folder")])
        files = workflow_files(folder)
        if tolerant:
            # Read on demand: a command about one case reads the files of its workflows alone (a
            # file is found by its name first, every file when that fails).
            stems = {p.stem for p in files}
            for name in overrides or {}:
                if name not in stems:
                    known = ", ".join(sorted(stems))
                    raise ConfigError(f"config.yaml: workflows.{name}: no such workflow; known: {known}")
            catalogue = cls([], tolerant=True, stored=stored, settings=(policy, overrides))
            catalogue._pending = {p.stem: p for p in files}
            return catalogue
        loaded: list[WorkflowDefinition] = []
        problems: list[Problem] = []
        texts: dict[tuple[str, int], str] = {}
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
                definition = load_text(text, str(path))
            except OSError as exc:
                problems.append(Problem(str(path), None, "", f"cannot read the file: {exc.strerror}"))
                continue
            except UnicodeDecodeError as exc:
                problems.append(Problem(str(path), None, "", f"not UTF-8 text (byte {exc.start}): save it as UTF-8"))
                continue
            except DefinitionError as exc:
                problems.extend(exc.problems)
                continue
            loaded.append(definition)
            texts[definition.key] = text
        if problems:
            raise DefinitionError(problems)
        names = {d.name for d in loaded}
        for name in overrides or {}:
            if name not in names:
                raise ConfigError(f"config.yaml: workflows.{name}: no such workflow; known: {', '.join(sorted(names))}")
        return cls(
            [apply_settings(d, policy, (overrides or {}).get(d.name)) for d in loaded],
            texts=texts,
            stored=stored,
            settings=(policy, overrides),
        )

    def _read(self, path: Path) -> None:
        """Load one file on demand; a broken one is a problem, not a failure."""
        try:
            text = path.read_text(encoding="utf-8")
            definition = load_text(text, str(path))
        except OSError as exc:
            self.problems.append(Problem(str(path), None, "", f"cannot read the file: {exc.strerror}"))
            return
        except UnicodeDecodeError as exc:
            self.problems.append(Problem(str(path), None, "", f"not UTF-8 text (byte {exc.start}): save it as UTF-8"))
            return
        except DefinitionError as exc:
            self.problems.extend(exc.problems)
            return
        policy, overrides = self._settings
        definition = apply_settings(definition, policy, (overrides or {}).get(definition.name))
        if definition.key in self._defs:
            other = self._defs[definition.key].file
            message = f"{definition.name} version {definition.version} is also in {other}"
            self.problems.append(Problem(str(path), None, "version", message))
            return
        self._defs[definition.key] = definition
        self._texts[definition.key] = text

    def _need(self, name: str | None = None) -> None:
        """Read the file of workflow ``name`` if it is not read yet (every file, for None or when the
        file is not named after its workflow)."""
        if not self._pending:
            return
        if name is not None:
            if name in self._pending:
                self._read(self._pending.pop(name))
            if any(n == name for n, _ in self._defs):
                return
        for stem in list(self._pending):
            self._read(self._pending.pop(stem))
        try:
            self._check_links()
        except DefinitionError as exc:
            self.problems.extend(exc.problems)

    def complete(self) -> Catalogue:
        """Every file read (and any problem in one known): for a whole-caseload run such as the sweep."""
        self._need()
        return self

    def text(self, name: str, version: int) -> str | None:
        """The YAML text a definition was loaded from (kept with the cases that use it)."""
        return self._texts.get((name, version))

    def names(self) -> list[str]:
        self._need()
        return sorted({name for name, _ in self._defs})

    def latest(self, name: str) -> WorkflowDefinition:
        self._need(name)
        versions = [v for (n, v) in self._defs if n == name]
        if not versions:
            raise NotFound(f"no workflow called '{name}'; known: {', '.join(self.names()) or 'none'}")
        return self._defs[(name, max(versions))]

    def get(self, name: str, version: int) -> WorkflowDefinition:
        if (name, version) not in self._defs:
            self._need(name)
        found = self._defs.get((name, version))
        if found is None and self._stored is not None:
            found = self._from_store(name, version)
        if found is None:
            raise NotFound(f"workflow {name} version {version} is not installed") from None
        return found

    def _from_store(self, name: str, version: int) -> WorkflowDefinition | None:
        """A version no file holds (now broken, changed or removed), from the text kept with its cases."""
        text = self._stored(name, version) if self._stored is not None else None
        if text is None:
            return None
        policy, overrides = self._settings
        definition = apply_settings(
            load_text(text, f"<{name} version {version}, as stored>"), policy, (overrides or {}).get(name)
        )
        self._defs[(name, version)] = definition
        self._texts[(name, version)] = text
        return definition

    def machine(self, name: str, version: int) -> WorkflowMachine:
        key = (name, version)
        m = self._machines.get(key)
        if m is None:
            from .machine import WorkflowMachine  # `transitions`: only for a command that decides a step

            m = self._machines[key] = WorkflowMachine(self.get(name, version))
        return m

    def all(self) -> list[WorkflowDefinition]:
        self._need()
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
