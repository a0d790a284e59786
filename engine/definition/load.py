"""Load workflow files: YAML -> checked, frozen WorkflowDefinition, every mistake with file:line: field.

Two passes, both run on every file so that all mistakes are reported at once: the structure
(pydantic: types, required fields, unknown keys) and the meaning (states, triggers and deadlines
that refer to each other, reachability, final states).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from ..errors import DefinitionError, Problem
from ..roles import ACTING_ROLES, CASE_FACTS, RECIPIENT_ROLES
from .model import CONDITION_KINDS, START, WorkflowDefinition
from .source import LineMap, Path, field_name, read_yaml

_KNOWN_KEYS = {
    "name",
    "version",
    "title",
    "source",
    "description",
    "initial",
    "inputs",
    "defaults",
    "states",
    "transitions",
    "deadlines",
    "final",
    "on_enter",
    "documents",
    "messages",
    "template",
    "to",
    "trigger",
    "from",
    "roles",
    "conditions",
    "type",
    "label",
    "required",
    "options",
    "default",
    "duration",
    "basis",
    "party",
    "opened_by",
    "counted_from",
    "met_by",
    "cancelled_by",
    "reminders",
    "escalations",
    "before",
    "after",
    "note",
    "explain",
    "amount",
    "unit",
    "inclusive",
    "parameters",
    "duration_from",
    "direction",
    "later_of",
    "fixed",
    "day",
    "month",
    "year_of",
    "when",
    "exceptions",
    "start",
    "signal",
    "signal_children",
    "signal_case",
    "if_missing",
    "adjusted_by",
    "for_staff",
    "end_of_academic_year_at_age",
    "workflow",
    "fact",
    "value",
    "actions",
    "on_date",
    "fact_named_by",
    "met_on",
    *CONDITION_KINDS,
}


def load_file(path: str | FsPath) -> WorkflowDefinition:
    """Load and check one workflow file; raises DefinitionError listing every mistake."""
    file = str(path)
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError([Problem(file, None, "", f"cannot read the file: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise DefinitionError(
            [Problem(file, None, "", f"not UTF-8 text (byte {exc.start}): save it as UTF-8")]
        ) from None
    return load_text(text, file)


def load_text(text: str, file: str = "<text>") -> WorkflowDefinition:
    data, lines, problems = read_yaml(text, file)
    if data is None:
        raise DefinitionError(problems or [Problem(file, 1, "", "the file has no workflow in it")])
    if not isinstance(data, dict):
        raise DefinitionError(problems + [Problem(file, 1, "", "a workflow file is a mapping of keys")])
    definition: WorkflowDefinition | None = None
    try:
        definition = WorkflowDefinition.model_validate(data)
    except ValidationError as exc:
        problems.extend(_structure_problems(exc, data, lines, file))
    try:
        problems.extend(_meaning_problems(data, lines, file))
    except (TypeError, AttributeError, KeyError, ValueError):
        # A value of the wrong shape (a list where a name belongs) stops the meaning checks; the
        # structure's problems above say where it is. Without them, say that the file is not usable.
        if not problems:
            problems.append(
                Problem(file, None, "", "a value has the wrong shape (a list or mapping where text belongs)")
            )
    if problems or definition is None:
        raise DefinitionError(_sorted_unique(problems))
    return definition.model_copy(update={"file": file})


def check_files(paths: Iterable[str | FsPath]) -> tuple[list[WorkflowDefinition], list[Problem]]:
    """Load several files, collecting every problem instead of stopping at the first bad file."""
    loaded: list[WorkflowDefinition] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            loaded.append(load_file(path))
        except DefinitionError as exc:
            problems.extend(exc.problems)
    return loaded, problems


def _sorted_unique(problems: list[Problem]) -> list[Problem]:
    seen: dict[tuple[str, int | None, str, str], Problem] = {}
    for p in problems:
        seen.setdefault((p.file, p.line, p.field, p.message), p)
    return sorted(seen.values(), key=lambda p: (p.file, p.line or 0, p.field))


# -- structure ---------------------------------------------------------------------------------


def _data_path(loc: tuple[Any, ...], data: Any) -> Path:
    """Turn a pydantic error location into a path through the YAML data (dropping union tags)."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict):
            key = "from" if part == "source" and "from" in node and "source" not in node else part
            key = "to" if key == "dest" and "to" in node else key
            if key in node:
                path.append(key)
                node = node[key]
            elif last:
                path.append(str(key))
            # otherwise a union tag or model name: not part of the file
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        elif last:
            path.append(part if isinstance(part, (str, int)) else str(part))
    return tuple(path)


def _structure_problems(exc: ValidationError, data: Any, lines: LineMap, file: str) -> list[Problem]:
    out: list[Problem] = []
    for err in exc.errors():
        path = _data_path(tuple(err["loc"]), data)
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(path[-1]) if path else "?"
            close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            message = f"unknown key '{key}'{hint}"
        elif kind == "missing":
            message = "required but missing"
        elif kind in ("union_tag_not_found", "union_tag_invalid"):
            message = "a condition is one of: " + ", ".join(CONDITION_KINDS)
        else:
            text = str(err["msg"])
            text = text.removeprefix("Value error, ")
            message = text[:1].lower() + text[1:]
        out.append(Problem(file, lines.line(path), field_name(path), message))
    return out


# -- meaning -----------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [value]
    return list(value) if isinstance(value, list) else []


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _unknown(kind: str, name: Any, known: Iterable[str]) -> str:
    names = sorted(str(k) for k in known)
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown {kind} '{name}'; {hint}known: {', '.join(names) or 'none'}"


def _meaning_problems(data: dict[str, Any], lines: LineMap, file: str) -> list[Problem]:
    problems: list[Problem] = []

    def add(path: Path, message: str) -> None:
        problems.append(Problem(file, lines.line(path), field_name(path), message))

    states: dict[str, Any] = _mapping(data.get("states"))
    finals = {n for n, s in states.items() if isinstance(s, dict) and s.get("final") is True}
    transitions = [t for t in _as_list(data.get("transitions")) if isinstance(t, dict)]
    raw_transitions = _as_list(data.get("transitions"))
    triggers = {t.get("trigger") for t in transitions if isinstance(t.get("trigger"), str)}
    workflow_inputs: dict[str, Any] = _mapping(data.get("inputs"))

    initial = data.get("initial")
    if isinstance(initial, str) and states and initial not in states:
        add(("initial",), _unknown("state", initial, states))

    edges: dict[str, set[str]] = {name: set() for name in states}
    for i, t in enumerate(raw_transitions):
        if not isinstance(t, dict):
            continue
        base: Path = ("transitions", i)
        sources = _as_list(t.get("from"))
        for j, src in enumerate(sources):
            where = base + ("from",) if isinstance(t.get("from"), str) else base + ("from", j)
            if src not in states:
                add(where, _unknown("state", src, states))
            elif src in finals:
                add(where, f"'{src}' is a final state: nothing can happen after it")
        dest = t.get("to")
        if isinstance(dest, str) and dest not in states:
            add(base + ("to",), _unknown("state", dest, states))
        for src in sources:
            if src in edges and isinstance(dest, str):
                edges[src].add(dest)
        for j, role in enumerate(_as_list(t.get("roles"))):
            if role not in ACTING_ROLES:
                where = base + ("roles",) if isinstance(t.get("roles"), str) else base + ("roles", j)
                add(where, _unknown("role", role, ACTING_ROLES))
        t_inputs = _mapping(t.get("inputs"))
        _check_conditions(t.get("conditions"), base + ("conditions",), t_inputs, data, add)
        if isinstance(t.get("actions"), dict):
            _check_actions(t["actions"], base + ("actions",), data, add)

    # Reachability from the initial state, and states with no way out.
    if isinstance(initial, str) and initial in states:
        seen = {initial}
        frontier = [initial]
        while frontier:
            for nxt in edges.get(frontier.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        for name in states:
            if name not in seen:
                add(("states", name), f"state '{name}' cannot be reached from '{initial}'")
    for name in states:
        if name not in finals and not edges.get(name):
            add(("states", name), f"state '{name}' is not final and has no transition out of it")

    _check_deadlines(data, triggers, workflow_inputs, transitions, add)
    _check_policies(data, add)
    for name, spec in states.items():
        if isinstance(spec, dict) and isinstance(spec.get("on_enter"), dict):
            _check_actions(spec["on_enter"], ("states", name, "on_enter"), data, add)
    return problems


def known_facts(data: dict[str, Any]) -> dict[str, Any]:
    """Every fact an instance of this workflow can hold: inputs, parameters and the case's own."""
    facts: dict[str, Any] = {name: {"type": "date"} for name in CASE_FACTS}
    facts.update({k: {"type": "parameter", **_mapping(v)} for k, v in _mapping(data.get("parameters")).items()})
    facts.update(_mapping(data.get("inputs")))
    for t in _as_list(data.get("transitions")):
        if isinstance(t, dict):
            for k, v in _mapping(t.get("inputs")).items():
                facts.setdefault(k, v)
    return facts


def _check_actions(actions: dict[str, Any], path: Path, data: dict[str, Any], add: Any) -> None:
    for k, msg in enumerate(_as_list(actions.get("messages"))):
        if isinstance(msg, dict):
            _check_recipients(msg.get("to"), path + ("messages", k, "to"), add)
    facts = known_facts(data)
    places: list[tuple[Path, Any]] = [
        (path + ("start", k, "inputs"), s.get("inputs"))
        for k, s in enumerate(_as_list(actions.get("start")))
        if isinstance(s, dict)
    ]
    if isinstance(actions.get("signal"), dict):
        places.append((path + ("signal", "inputs"), actions["signal"].get("inputs")))
    for where, mapping in places:
        for key, source in _mapping(mapping).items():
            if isinstance(source, str) and source not in facts:
                add(where + (key,), _unknown("fact", source, facts))
            named_by = source.get("fact_named_by") if isinstance(source, dict) else None
            if isinstance(named_by, str):
                spec = _mapping(data.get("parameters")).get(named_by)
                if not isinstance(spec, dict):
                    add(
                        where + (key, "fact_named_by"),
                        _unknown("parameter", named_by, _mapping(data.get("parameters"))),
                    )
                else:
                    for option in _as_list(spec.get("options")):
                        if option not in facts:
                            add(where + (key, "fact_named_by"), f"option '{option}' of '{named_by}' is not a fact")
    for k, s in enumerate(_as_list(actions.get("start"))):
        if isinstance(s, dict):
            _check_conditions(s.get("when"), path + ("start", k, "when"), {}, data, add)


def _check_recipients(value: Any, path: Path, add: Any) -> None:
    for j, role in enumerate(_as_list(value)):
        if role not in RECIPIENT_ROLES:
            add(path if isinstance(value, str) else path + (j,), _unknown("recipient role", role, RECIPIENT_ROLES))


def _check_policies(data: dict[str, Any], add: Any) -> None:
    places: list[tuple[Path, Any]] = []
    defaults = data.get("defaults")
    if isinstance(defaults, dict):
        places += [(("defaults", "reminders"), defaults.get("reminders"))]
        places += [(("defaults", "escalations"), defaults.get("escalations"))]
    for i, d in enumerate(_as_list(data.get("deadlines"))):
        if isinstance(d, dict):
            places += [(("deadlines", i, "reminders"), d.get("reminders"))]
            places += [(("deadlines", i, "escalations"), d.get("escalations"))]
    for path, steps in places:
        for k, step in enumerate(_as_list(steps)):
            if isinstance(step, dict):
                _check_recipients(step.get("to"), path + (k, "to"), add)


def _check_conditions(value: Any, path: Path, t_inputs: dict[str, Any], data: dict[str, Any], add: Any) -> None:
    deadline_names = {d.get("name") for d in _as_list(data.get("deadlines")) if isinstance(d, dict)}
    for k, cond in enumerate(_as_list(value)):
        if not isinstance(cond, dict):
            continue
        here = path + (k,)
        if "period_ended" in cond and cond["period_ended"] not in deadline_names:
            add(here + ("period_ended",), _unknown("deadline", cond["period_ended"], [str(n) for n in deadline_names]))
        if "input_is_yes" in cond:
            name = cond["input_is_yes"]
            spec = t_inputs.get(name)
            if spec is None:
                add(here + ("input_is_yes",), _unknown("input of this transition", name, t_inputs))
            elif isinstance(spec, dict) and spec.get("type") != "yes_no":
                add(here + ("input_is_yes",), f"input '{name}' must be of type yes_no to be tested")
        facts = known_facts(data)
        if isinstance(cond.get("input_equals"), dict):
            for name in cond["input_equals"]:
                if name not in facts:
                    add(here + ("input_equals", name), _unknown("input or parameter", name, facts))
        if "given" in cond and cond["given"] not in facts:
            add(here + ("given",), _unknown("input or fact", cond["given"], facts))
        if "age_below" in cond and cond.get("on_date") not in facts:
            add(here + ("on_date",), _unknown("date input", cond.get("on_date"), facts))
        if "any_of" in cond:
            _check_conditions(cond["any_of"], here + ("any_of",), t_inputs, data, add)
        if "not" in cond:
            _check_conditions([cond["not"]], here + ("not",), t_inputs, data, add)


def _check_deadlines(
    data: dict[str, Any],
    triggers: set[Any],
    workflow_inputs: dict[str, Any],
    transitions: list[dict[str, Any]],
    add: Any,
) -> None:
    names: set[str] = set()
    deadlines = [d for d in _as_list(data.get("deadlines")) if isinstance(d, dict)]
    all_names = {d.get("name") for d in deadlines if isinstance(d.get("name"), str)}
    facts = known_facts(data)
    parameters = _mapping(data.get("parameters"))
    for i, d in enumerate(_as_list(data.get("deadlines"))):
        if not isinstance(d, dict):
            continue
        base: Path = ("deadlines", i)
        name = d.get("name")
        if isinstance(name, str):
            variants = [v for v in deadlines if v.get("name") == name]
            if name in names and not all(v.get("when") for v in variants):
                add(base + ("name",), f"deadline '{name}' is defined twice (variants each need 'when')")
            names.add(name)
        _check_conditions(d.get("when"), base + ("when",), {}, data, add)
        ways = ("duration", "duration_from", "later_of", "fixed", "end_of_academic_year_at_age")
        if not any(key in d for key in ways):
            add(base + ("duration",), "required but missing (or count it with later_of or fixed)")
        duration_from = d.get("duration_from")
        if isinstance(duration_from, str):
            spec = parameters.get(duration_from)
            if not isinstance(spec, dict):
                add(base + ("duration_from",), _unknown("parameter", duration_from, parameters))
            elif not spec.get("duration"):
                add(base + ("duration_from",), f"parameter '{duration_from}' is not a duration (duration: true)")
        fixed = d.get("fixed")
        if isinstance(fixed, dict) and isinstance(fixed.get("year_of"), str):
            spec = facts.get(fixed["year_of"])
            if spec is None:
                add(base + ("fixed", "year_of"), _unknown("date input", fixed["year_of"], facts))
            elif isinstance(spec, dict) and spec.get("type") != "date":
                add(base + ("fixed", "year_of"), f"'{fixed['year_of']}' is not a date input")
        for k, period in enumerate(_as_list(d.get("later_of"))):
            if isinstance(period, dict) and isinstance(period.get("counted_from"), str):
                ref = period["counted_from"]
                if ref not in all_names and ref not in facts:
                    add(base + ("later_of", k, "counted_from"), _unknown("date input or deadline", ref, facts))
        for key in ("opened_by", "met_by", "cancelled_by"):
            value = d.get(key)
            for j, trig in enumerate(_as_list(value)):
                where = base + (key,) if isinstance(value, str) else base + (key, j)
                if key == "opened_by" and trig == START:
                    continue
                if trig not in triggers:
                    add(where, _unknown("trigger", trig, [str(t) for t in triggers if t]))
        met_on = d.get("met_on")
        if isinstance(met_on, str):
            spec = facts.get(met_on)
            if spec is None:
                add(base + ("met_on",), _unknown("date input", met_on, facts))
            elif isinstance(spec, dict) and spec.get("type") != "date":
                add(base + ("met_on",), f"'{met_on}' is not a date input")
        counted_from = d.get("counted_from")
        if isinstance(counted_from, str) and counted_from in all_names:
            if counted_from == name:
                add(base + ("counted_from",), "a deadline cannot be counted from itself")
        elif isinstance(counted_from, str):
            openers = _as_list(d.get("opened_by"))
            for opener in openers:
                if opener == START:
                    spec = workflow_inputs.get(counted_from)
                    where_inputs = "the workflow's inputs"
                else:
                    spec = None
                    for t in transitions:
                        if t.get("trigger") == opener and isinstance(t.get("inputs"), dict):
                            spec = t["inputs"].get(counted_from) or spec
                    spec = spec or workflow_inputs.get(counted_from)
                    where_inputs = f"the inputs of '{opener}' or of the workflow"
                if spec is None:
                    add(base + ("counted_from",), f"'{counted_from}' is not among {where_inputs}")
                elif isinstance(spec, dict) and spec.get("type") != "date":
                    add(base + ("counted_from",), f"'{counted_from}' is not a date input")
