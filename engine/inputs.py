"""Turning what a caseworker typed (``--set key=value``, a form field) into typed values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from .definition.model import InputSpec, InputType

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")  # \Z: "$" would let a final line break through

TEXT_LIMIT = 5_000  # characters in a step's text input (reasons, what was agreed)
NOTE_LIMIT = 2_000  # characters in a step's note
# Control characters other than a line break or a tab: nothing a person types needs them, and in
# a letter's heading, a CSS string or an email header they can change what the text means.
# Bidirectional overrides and isolates are refused too: they make text read differently from what it is.
# So are the characters XML 1.0 cannot carry (lone surrogates, U+FFFE, U+FFFF and the other
# noncharacters): one in a name would make a whole SEN2 return unreadable.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufdd0-\ufdef]")


def unsafe_character(text: str) -> bool:
    """A character no one types and XML cannot hold: a noncharacter (U+FFFE, U+FFFF and their like in
    every plane, U+FDD0 to U+FDEF) or a lone surrogate."""
    return any((ord(c) & 0xFFFE) == 0xFFFE or 0xFDD0 <= ord(c) <= 0xFDEF or 0xD800 <= ord(c) <= 0xDFFF for c in text)


def free_text(text: str, what: str, limit: int) -> str:
    """Free text as it is kept: line ends made Unix, no other control characters, within ``limit``."""
    text = str(text).replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROL.search(text) or unsafe_character(text):
        raise ValueError(f"{what} contains a control character")
    if len(text) > limit:
        raise ValueError(f"{what} is {len(text):,} characters long; the limit is {limit:,}")
    return text


_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"'{text}' is not a date; write it as YYYY-MM-DD") from None


def coerce(spec: InputSpec, value: Any) -> Any:
    """One input value in its declared type; raises ValueError with a plain message."""
    if spec.type is InputType.DATE:
        return value if isinstance(value, date) else parse_date(value)
    if spec.type is InputType.YES_NO:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _YES:
            return True
        if text in _NO:
            return False
        raise ValueError(f"'{value}' is not yes or no")
    if spec.type is InputType.NUMBER:
        try:
            return float(value) if "." in str(value) else int(value)
        except ValueError:
            raise ValueError(f"'{value}' is not a number") from None
    text = free_text(str(value), "the text", TEXT_LIMIT).strip()
    if spec.type is InputType.CHOICE and text not in spec.options:
        raise ValueError(f"'{value}' is not one of: {', '.join(spec.options)}")
    if spec.type is InputType.EMAIL and not EMAIL.match(text):
        raise ValueError(f"'{value}' is not an email address")
    if not text:
        raise ValueError("is empty")
    return text


def resolve(specs: Mapping[str, InputSpec], given: Mapping[str, Any], today: date) -> tuple[dict[str, Any], list[str]]:
    """Typed inputs with defaults applied, and the list of problems (unknown, missing, invalid)."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name in given:
        if name not in specs:
            takes = ", ".join(specs) if specs else "no inputs"
            problems.append(f"unknown input '{name}' (this step takes: {takes})")
    for name, spec in specs.items():
        if name in given and given[name] not in (None, ""):
            try:
                values[name] = coerce(spec, given[name])
            except ValueError as exc:
                problems.append(f"input '{name}': {exc}")
        elif spec.default is not None:
            values[name] = today if spec.default == "today" else spec.default
        elif spec.required:
            label = f" ({spec.label.strip()})" if spec.label else ""
            problems.append(f"input '{name}' is required{label}")
    return values, problems


def to_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs as JSON-ready values (dates as ISO strings)."""
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}


def masked_email(email: str) -> str:
    """An address partly hidden ("p***@example.org"), for a confirmation shown to someone who may not
    see the whole of it."""
    user, _, domain = email.partition("@")
    return f"{user[:1]}***@{domain}"
