"""The EHC plan quality check: what to put right before a plan or amendment is issued.

Inspectors found that plans too often did not reflect the child's needs: needs in section B with
no provision in F, provision that is not "detailed and specific" and "normally quantified"
(CoP 9.69), outcomes without a time frame (reg 12(1)(e)). ``check`` reads a plan's sections and
returns findings for the caseworker; an ``error`` blocks issuing, a ``warning`` is only shown::

    findings = check({"B": "...", "E": "...", "F": "..."}, final=True)
    if blocking(findings): ...  # refuse to issue, show every finding

Pure: standard library only, no database, no templates.

How the plan editor writes the sections (Markdown), so that they can be checked:

- Sections are keyed by their letter: ``A B C D E F G H1 H2 I J K``. A missing key, or text with
  no letter or digit in it, is an empty section.
- B (special educational needs) and F (special educational provision) are grouped under ``### ``
  headings naming the area of need, normally the four broad areas of CoP 6.28:
  "Communication and interaction", "Cognition and learning", "Social, emotional and mental health",
  "Sensory and/or physical needs". Variants ("SEMH", "Physical and sensory", "Speech, language and
  communication") are read as one of the four; any other heading is an area of its own, matched
  between B and F ignoring case and a trailing "needs". ``#`` and ``##`` headings also start an
  area; ``####`` and deeper (or a line that is all bold) are sub-headings inside one.
- Under a heading each need, or each provision, is a bullet (``- ``, ``* ``, ``+ `` or ``1. ``) or
  a paragraph. An indented bullet belongs to the bullet above it. A paragraph ending in ``:`` is a
  lead-in: it is read together with each bullet after it ("Delivered by a teaching assistant:").
  Each row of a Markdown table is an item; the header row is not.
- E (outcomes): each bullet is an outcome (if E has no bullets, each paragraph is). A heading or a
  lead-in ("By the end of Year 6, Ava will:") gives its time frame to the bullets under it.
- I (placement): the name of the school or other institution, or its type; blank in a draft plan.
- J may be empty: no personal budget was requested.

The rules, by id (error unless marked): ``section_missing`` (B, E or F has nothing in it),
``need_without_provision``, ``provision_without_need`` (warning), ``area_heading_missing``
(warning: text in B or F under no area heading cannot be matched), ``vague_provision``,
``unquantified_provision``, ``outcome_without_time_frame``, ``placement_not_named`` (final plans
only), ``placement_type_only`` (warning, final plans only: the law allows a type), ``empty_section``
(warning: A, C, D, G, H1, H2 or K; write "none" rather than leave it blank).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]

ORDER = ("A", "B", "C", "D", "E", "F", "G", "H1", "H2", "I", "J", "K")
TITLES = {
    "A": "views, interests and aspirations",
    "B": "special educational needs",
    "C": "health care needs",
    "D": "social care needs",
    "E": "outcomes",
    "F": "special educational provision",
    "G": "health provision",
    "H1": "social care provision (CSDPA 1970 s.2)",
    "H2": "other social care provision",
    "I": "placement",
    "J": "personal budget",
    "K": "advice and information",
}
WARN_IF_EMPTY = ("A", "C", "D", "G", "H1", "H2", "K")  # B, E, F and I have rules of their own; J may be empty
QUOTE_LIMIT = 80


@dataclass(frozen=True)
class Finding:
    rule: str
    section: str
    severity: Severity
    message: str
    item: str | None = None


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that stop the plan being issued."""
    return [f for f in findings if f.severity == "error"]


def check(sections: Mapping[str, str], *, final: bool) -> list[Finding]:
    """Every finding for a plan's sections, in section order.

    final: the plan (or amended plan) is about to be issued as final, so section I must name the
    school; a draft leaves I blank and it is not checked.
    """
    text = {key.strip().upper(): value or "" for key, value in sections.items()}
    findings: list[Finding] = []
    for letter in WARN_IF_EMPTY:
        if _is_empty(text.get(letter, "")):
            findings.append(
                Finding("empty_section", letter, "warning", f"Section {letter} ({TITLES[letter]}) is empty.")
            )
    needs, provision = _items(text.get("B", "")), _items(text.get("F", ""))
    findings += _matching(needs, provision)
    findings += [_finding for item in provision for _finding in _provision_findings(item)]
    findings += _outcome_findings(_items(text.get("E", "")))
    if final:
        findings += _placement_findings(text.get("I", ""))
    return sorted(findings, key=lambda f: ORDER.index(f.section))


# --- reading the Markdown ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    area: str | None  # the area heading it sits under, as written
    text: str  # the bullet or paragraph, whitespace collapsed
    context: str  # headings and lead-in it is read with
    bullet: bool
    lead_in: bool = False


_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)[\s#]*$")
_BOLD_LINE = re.compile(r"^\s*(\*\*|__)(?P<text>[^*_]+)\1\s*:?\s*$")
_BULLET = re.compile(r"^(?P<indent>\s*)(?:[-*+]|\d{1,2}[.)])\s+(?P<text>.*)$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}")


def _items(markdown: str) -> list[_Item]:
    items: list[_Item] = []
    area: str | None = None
    sub = lead = ""
    lines: list[str] = []  # the open item's lines
    is_bullet = False
    rows = markdown.splitlines()

    def close() -> None:
        nonlocal lead
        if not lines:
            return
        text = " ".join(" ".join(lines).split())
        is_lead = not is_bullet and text.endswith(":")
        if not is_bullet:
            lead = text if is_lead else ""
        context = " ".join(part for part in (area or "", sub, "" if is_lead else lead) if part)
        items.append(_Item(area, text, context, is_bullet, is_lead))
        lines.clear()

    for number, row in enumerate(rows):
        heading, bold, bullet = _HEADING.match(row), _BOLD_LINE.match(row), _BULLET.match(row)
        if heading or bold:
            close()
            lead = ""
            if heading and len(heading.group(1)) <= 3:
                area, sub = heading.group(2).strip(), ""
            else:
                sub = heading.group(2).strip() if heading else bold.group("text").strip() if bold else ""
        elif not row.strip():
            close()
        elif row.lstrip().startswith("|"):
            close()
            header = number + 1 < len(rows) and _TABLE_RULE.match(rows[number + 1]) is not None
            if not _TABLE_RULE.match(row) and not header:
                lines.append(", ".join(cell.strip() for cell in row.strip().strip("|").split("|") if cell.strip()))
                is_bullet = True
                close()
        elif bullet and not (len(bullet.group("indent")) >= 2 and lines and is_bullet):
            close()
            lines.append(bullet.group("text"))
            is_bullet = True
        else:
            if not lines:
                is_bullet = False
            lines.append(row.strip())
    close()
    return items


def _is_empty(text: str) -> bool:
    return not any(ch.isalnum() for ch in text)


def _quote(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > QUOTE_LIMIT:
        text = text[: QUOTE_LIMIT - 1].rsplit(" ", 1)[0] + "…"
    return f'"{text}"'


# --- areas of need: B against F ---------------------------------------------------------------

_AREAS = (  # the four broad areas of need, CoP 6.28; the first that matches a heading wins
    ("Social, emotional and mental health", re.compile(r"\b(?:semh|emotional|mental\s+health|wellbeing|behaviou?r)\b")),
    ("Communication and interaction", re.compile(r"\b(?:communication|interaction|speech|language|slcn)\b")),
    ("Cognition and learning", re.compile(r"\b(?:cognition|cognitive|learning|literacy|numeracy)\b")),
    ("Sensory and/or physical needs", re.compile(r"\b(?:sensory|physical|hearing|vision|visual|motor)\b")),
)


def area_of_need(heading: str) -> tuple[str, str]:
    """(key, name) of the area a heading names: one of the four broad areas, or the heading itself."""
    words = " ".join(re.sub(r"[^a-z0-9/]+", " ", heading.lower().replace("&", " and ")).split())
    for name, pattern in _AREAS:
        if pattern.search(words):
            return name.lower(), name
    return re.sub(r"\s+needs?$", "", words), heading.strip()


def _areas(items: list[_Item]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        if item.area is not None:
            key, name = area_of_need(item.area)
            found.setdefault(key, name)
    return found


def _matching(needs: list[_Item], provision: list[_Item]) -> list[Finding]:
    findings: list[Finding] = []
    for letter, items in (("B", needs), ("F", provision)):
        if not items:
            findings.append(
                Finding("section_missing", letter, "error", f"Section {letter} ({TITLES[letter]}) is empty.")
            )
        loose = [item for item in items if item.area is None]
        if loose:
            message = f"Section {letter} has text under no area of need heading (### ...): {_quote(loose[0].text)}"
            findings.append(Finding("area_heading_missing", letter, "warning", message, loose[0].text))
    if not needs or not provision:
        return findings
    in_b, in_f = _areas(needs), _areas(provision)
    for key, name in in_b.items():
        if key not in in_f:
            message = f'Needs under "{name}" in section B have no provision under that area in section F.'
            findings.append(Finding("need_without_provision", "F", "error", message))
    for key, name in in_f.items():
        if key not in in_b:
            message = f'Provision under "{name}" in section F matches no needs in section B.'
            findings.append(Finding("provision_without_need", "F", "warning", message))
    return findings


# --- provision: specific and quantified (CoP 9.69) --------------------------------------------

_VAGUE = re.compile(
    r"\b(?:support\s+as\s+appropriate|access\s+to|opportunit(?:y|ies)\s+(?:to|for)"
    r"|as\s+(?:required|needed|appropriate|necessary)"
    r"|(?:where|when|if)\s+(?:possible|necessary|needed|required|appropriate)"
    r"|regular(?:ly)?|may|should\s+have|ongoing\s+support|some|up\s+to)\b",
    re.IGNORECASE,
)
_NOT_VAGUE_BEFORE = {  # the phrase, and what before it makes it specific
    "access to": re.compile(r"\b(?:step[- ]free|level|wheelchair|ramped|lift)\s+$", re.IGNORECASE),
    # May the month ("from May 2026", "31 May") or a name ("Mrs May"), not "may" the verb
    "may": re.compile(
        r"(?:\b\d{1,2}(?:st|nd|rd|th)?|\b(?:in|from|until|till|by|since|during|before|after|of|end|mid|early|late)"
        r"|\b(?:mr|mrs|ms|miss|dr)\.?)[\s-]+$",
        re.IGNORECASE,
    ),
}
_NOT_VAGUE_AFTER = {
    "may": re.compile(r"^\s+(?:\d{4}|half[\s-]+term)\b", re.IGNORECASE),
    "up to": re.compile(r"^[\s-]+date\b", re.IGNORECASE),
}

_WORD_NUMBER = r"(?:\d+(?:\.\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|fifteen|twenty|thirty|forty|sixty)"
_DAYS = r"(?:mon|tues|wednes|thurs|fri)day"
_FREQUENCY = re.compile(
    r"\b(?:daily|weekly|fortnightly|monthly|termly|half[\s-]termly|annually|yearly"
    r"|(?:per|a)\s+(?:school\s+)?(?:day|week|fortnight|month|half[\s-]term|term|year(?!\s*(?:\d|group)))"
    r"|(?:each|every)\s+(?:other\s+)?(?:school\s+)?(?:day|week|fortnight|month|half[\s-]term|term"
    rf"|year(?!\s*(?:\d|group))|lesson|morning|afternoon|lunchtime|break(?:\s*time)?|weekday|{_DAYS})"
    rf"|{_DAYS}s|(?:once|twice|{_WORD_NUMBER}\s+times)\s+(?:a|per|each|every)\s+\w+)\b",
    re.IGNORECASE,
)
_DURATION = re.compile(
    rf"\b(?:(?:{_WORD_NUMBER}|an?)[\s-]*(?:minutes?|mins?|hours?|hrs?)"
    r"|half[\s-]+(?:an?[\s-]+)?hour|(?:full|whole|half)[\s-]+days?"
    r"|(?:whole|entire|full)\s+(?:lesson|session|morning|afternoon|lunchtime)s?)\b",
    re.IGNORECASE,
)
_WHOLE_DAY = re.compile(  # counts as saying both how often and for how long
    r"\b(?:full[\s-]+time|throughout\s+(?:the\s+|each\s+|every\s+)?(?:school\s+)?(?:day|week)"
    r"|(?:whole|entire|full)\s+school\s+(?:day|week)|all\s+day|at\s+all\s+times"
    r"|(?:in|across|during|throughout)\s+(?:all|every|each)\s+(?:lessons?|subjects?)"
    r"|across\s+the\s+(?:whole\s+)?curriculum)\b",
    re.IGNORECASE,
)
_WHO = re.compile(
    r"\b(?:assistants?|teachers?|send?cos?"
    r"|therapists?|psychologists?|physiotherapists?|nurses?|adults?|staff"
    r"|practitioners?|key\s*workers?|mentors?|counsellors?|tutors?|instructors?|support\s+workers?|coach(?:es)?"
    r"|[1-9]\s*:\s*[1-9](?![\d:])|one[\s-]to[\s-]one|small\s+group\s+(?:led|run|taught|delivered)\s+by)\b",
    re.IGNORECASE,
)
_WHO_ACRONYM = re.compile(r"\b(?:H?L?TAs?|LSAs?|SaLTs?|SALTs?|SLTs?|OTs?|EPs?|ELSAs?|QTVIs?|QToDs?|ToDs?|SENCOs?)\b")


def vague_wording(text: str) -> list[str]:
    """The vague phrases in a provision, as written ("access to", "as required")."""
    found: list[str] = []
    for match in _VAGUE.finditer(text):
        phrase = " ".join(match.group().lower().split())
        before, after = _NOT_VAGUE_BEFORE.get(phrase), _NOT_VAGUE_AFTER.get(phrase)
        if before is not None and before.search(text[: match.start()]):
            continue
        if after is not None and after.search(text[match.end() :]):
            continue
        if phrase not in (p.lower() for p in found):
            found.append(match.group())
    return found


def missing_quantities(text: str) -> list[str]:
    """What a provision does not say, of: how often, for how long, who delivers it."""
    whole_day = _WHOLE_DAY.search(text) is not None
    missing = []
    if not whole_day and not _FREQUENCY.search(text):
        missing.append("how often")
    if not whole_day and not _DURATION.search(text):
        missing.append("for how long")
    if not _WHO.search(text) and not _WHO_ACRONYM.search(text):
        missing.append("who delivers it")
    return missing


def _provision_findings(item: _Item) -> list[Finding]:
    findings: list[Finding] = []
    phrases = vague_wording(item.text)
    if phrases:
        listed = ", ".join(f'"{p}"' for p in phrases)
        message = f"Vague wording ({listed}); say exactly what will be provided: {_quote(item.text)}"
        findings.append(Finding("vague_provision", "F", "error", message, item.text))
    if not item.lead_in:
        missing = missing_quantities(f"{item.context} {item.text}")
        if missing:
            parts = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " or " + missing[-1]
            message = f"Does not say {parts}: {_quote(item.text)}"
            findings.append(Finding("unquantified_provision", "F", "error", message, item.text))
    return findings


# --- outcomes: each with a time frame (reg 12(1)(e)) ------------------------------------------

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_TIME_FRAME = re.compile(
    r"\b(?:\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|(?:19|20)\d{2}"  # a date, or any year: "July 2027", "2026/27"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}"
    r"|(?:by|before|at|until|till|during|in)\s+(?:(?:the|end|start|beginning|of|this|next|his|her|their)\s+)*"
    r"(?:(?:year|yr)\s*\d{1,2}|key\s+stage\s*\d|ks\s*\d|(?:academic|school)\s+year"
    r"|(?:autumn|spring|summer)(?:\s+(?:half[\s-])?term)?|(?:next|first|second|following)\s+(?:annual\s+)?review"
    rf"|annual\s+review|age\s+(?:of\s+)?\d{{1,2}}|christmas|easter|{_MONTH})"
    # a stage named as a place ("at nursery") is a time only after "by", "before" or "the end of"
    r"|(?:by|before|until|till|end\s+of)\s+(?:(?:the|end|of|time|he|she|they|leaves?|starts?|his|her|their)\s+)*"
    r"(?:reception|nursery|(?:primary|secondary)\s+school|college|sixth\s+form)"
    r"|end\s+of\s+(?:the\s+|this\s+|next\s+)?(?:term|year)|(?:this|next)\s+(?:term|year)"
    r"|(?:within|in|over|after)\s+(?:the\s+(?:next|following)\s+)?(?:\d+|one|two|three|four|five|six|nine|twelve|an?)"
    r"\s+(?:weeks?|months?|(?:half[\s-])?terms?|(?:school\s+)?years?(?!\s*\d))"
    r"|by\s+the\s+time|before\s+(?:transfer|transition|moving|starting|leaving))\b",
    re.IGNORECASE,
)


def has_time_frame(text: str) -> bool:
    """Whether an outcome says by when ("by July 2027", "by the end of Year 6", "within 12 months")."""
    return _TIME_FRAME.search(text) is not None


def _outcome_findings(items: list[_Item]) -> list[Finding]:
    candidates = [item for item in items if not item.lead_in]
    outcomes = [item for item in candidates if item.bullet] or candidates
    if not outcomes:
        return [Finding("section_missing", "E", "error", f"Section E ({TITLES['E']}) has no outcomes.")]
    return [
        Finding(
            "outcome_without_time_frame",
            "E",
            "error",
            f'No time frame (such as "by July 2027"): {_quote(item.text)}',
            item.text,
        )
        for item in outcomes
        if not has_time_frame(f"{item.context} {item.text}")
    ]


# --- placement (reg 12(1)(i)) ------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    r"^\W*(?:(?:name\s+of\s+)?(?:school|setting|placement|institution)\W+)?"
    r"(?:tbc|tba|tbd|to\s+be\s+(?:confirmed|agreed|advised|decided|determined|named)|not\s+(?:yet\s+)?(?:known|named|agreed)"
    r"|unknown|pending|awaiting|none|n/?a|to\s+follow|\?)(?!\w)",
    re.IGNORECASE,
)
_TYPE_WORDS = frozenset(
    """a an any the of for with and or in at to by on from who which that is are will be only type name named
    mainstream maintained non-maintained independent special specialist primary secondary infant junior first middle
    upper high all-through nursery school schools academy college further education sixth form post institution
    setting provision unit resource resourced base centre enhanced pupil referral alternative local authority area
    children child young people pupils students learners autism autistic communication interaction learning
    cognition difficulties complex moderate severe profound multiple social emotional mental health sensory physical
    hearing visual impairment needs day residential boarding weekly placement church england catholic roman voluntary
    aided controlled community foundation trust free faith mixed boys girls reception year class place suitable
    january february march april may june july august september october november december""".split()
)


def names_an_institution(text: str) -> bool:
    """Whether section I names a school or setting, not only a type: a capitalised word beyond a type's words."""
    for word in re.findall(r"[A-Za-z][A-Za-z'’-]*", text):
        word = re.sub(r"(?:['’]s|['’-])$", "", word)
        if word[:1].isupper() and not word.isupper() and word.lower() not in _TYPE_WORDS:
            return True
    return False


def _placement_findings(text: str) -> list[Finding]:
    if _is_empty(text):
        message = "Section I must name the school or setting before the final plan is issued."
        return [Finding("placement_not_named", "I", "error", message)]
    if _PLACEHOLDER.match(text):
        message = f"Section I says {_quote(text)}: name the school or setting before the final plan is issued."
        return [Finding("placement_not_named", "I", "error", message)]
    if not names_an_institution(text):
        message = f"Section I gives a type of school or setting but no name: {_quote(text)}"
        return [Finding("placement_type_only", "I", "warning", message)]
    return []
