"""Read YAML keeping the line of every value, so a mistake can be reported as file:line: field."""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import Problem

Path = tuple[str | int, ...]
# The tags of plain text, numbers, dates, lists and mappings: the only ones a file may carry.
PLAIN = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq",
}  # fmt: skip


class LineMap:
    """Line numbers (1-based) of every mapping key and sequence item, by path."""

    def __init__(self) -> None:
        self._lines: dict[Path, int] = {}

    def record(self, path: Path, line: int) -> None:
        self._lines.setdefault(path, line)

    def line(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest recorded parent."""
        probe = tuple(path)
        while probe:
            if probe in self._lines:
                return self._lines[probe]
            probe = probe[:-1]
        return self._lines.get((), None)


def field_name(path: Path) -> str:
    """``("transitions", 3, "to")`` -> ``transitions[3].to``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _compose(text: str) -> yaml.Node | None:
    """The node tree, by libyaml where it is installed: the workflows load five times faster, and
    every command that reads a case loads them. Text libyaml cannot take (a lone surrogate) goes
    to the pure-Python parser, which reports it as a YAML error."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.compose(text, Loader=fast)
        except UnicodeEncodeError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def read_yaml(text: str, file: str) -> tuple[Any, LineMap, list[Problem]]:
    """Parse YAML text into plain Python values and a LineMap; syntax errors become Problems."""
    lines = LineMap()
    problems: list[Problem] = []
    try:
        node = _compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        position = getattr(exc, "position", None)  # a character YAML refuses: the reader gives its offset
        if line is None and isinstance(position, int):
            line = text.count("\n", 0, position) + 1
        if isinstance(exc, yaml.reader.ReaderError):
            reason = f"a character YAML does not allow (code {exc.character:#x})"
        else:
            reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, lines, [Problem(file, line, "", f"not valid YAML: {reason}")]
    if node is None:
        return None, lines, [Problem(file, 1, "", "the file is empty")]
    constructor = yaml.SafeLoader("")
    seen: set[int] = set()

    def build(n: yaml.Node, path: Path) -> Any:
        lines.record(path, n.start_mark.line + 1)
        # An alias (*name) makes the parser hand back a node it has already given: refused, since
        # a few bytes of aliases can expand to gigabytes ("billion laughs") or refer to themselves.
        if id(n) in seen:
            if not any(p.message.startswith("aliases") for p in problems):  # once a file is enough
                message = "aliases (*name) are not allowed: write the value out"
                problems.append(Problem(file, n.start_mark.line + 1, field_name(path), message))
            return None
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode | yaml.SequenceNode) and n.tag not in PLAIN:
            # A tag (!name) on a mapping or a list: nothing a workflow or a plan needs, and never run.
            problems.append(
                Problem(file, n.start_mark.line + 1, field_name(path), f"the tag '{n.tag}' is not allowed (no tags)")
            )
            return None
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in PLAIN:
                    if not isinstance(key_node, yaml.ScalarNode):
                        why = "a key must be plain text, not a list or a mapping"
                    elif key_node.tag == "tag:yaml.org,2002:merge":
                        why = "merge keys (<<) are not allowed: write the keys out"
                    else:
                        why = f"a key must be plain text: the tag '{key_node.tag}' is not allowed"
                    problems.append(Problem(file, key_node.start_mark.line + 1, field_name(path), why))
                    continue
                try:
                    key = constructor.construct_object(key_node, deep=True)
                except (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
                    problems.append(Problem(file, key_node.start_mark.line + 1, field_name(path), f"bad key: {exc}"))
                    continue
                if not isinstance(key, str):
                    key = str(key)
                child = path + (key,)
                if key in out:
                    problems.append(Problem(file, key_node.start_mark.line + 1, field_name(child), "written twice"))
                lines.record(child, key_node.start_mark.line + 1)
                out[key] = build(value_node, child)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, path + (i,)) for i, item in enumerate(n.value)]
        try:
            return constructor.construct_object(n, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            # e.g. an impossible date such as 2025-02-30, "!!int one", a number of 5,000 digits
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            problems.append(Problem(file, n.start_mark.line + 1, field_name(path), f"bad value: {reason}"))
            return None

    return build(node, ()), lines, problems
