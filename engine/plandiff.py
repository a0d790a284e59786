"""Tracked changes between two versions of an EHC plan, for the notice of proposed amendments.

After an annual review the council sends the family the existing plan and the changes it
proposes. Some parents read the notice with a screen reader or in a black-and-white print, so a
change must never rest on colour alone: every added or removed run is marked up as ``<ins>`` or
``<del>`` *and* carries words a screen reader says ("[added: ...]", "[removed: ...]").

    >>> diffs = diff_plan({"F": "- 3 sessions a week"}, {"F": "- 2 sessions a week"})
    >>> print(to_text(diffs), end="")
    Section F: Special educational provision
    Changed: 1 word added, 1 removed
    <BLANKLINE>
    - [removed: 3] [added: 2] sessions a week

A section's text is paragraphs separated by blank lines, bullet items starting ``- `` or ``* ``
and ``### `` headings. Each of these is a block; blocks are paired between the versions by text
similarity, so an edited bullet shows its changed words rather than a removed and an added item.
Pure: standard library only, and the same inputs always give the same output.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

SECTION_TITLES: dict[str, str] = {
    "A": "The views, interests and aspirations of the child and their parents, or of the young person",
    "B": "The child's or young person's special educational needs",
    "C": "Health needs related to the special educational needs or disability",
    "D": "Social care needs related to the special educational needs or disability",
    "E": "Outcomes",
    "F": "Special educational provision",
    "G": "Health provision",
    "H1": "Social care provision under section 2 of the Chronically Sick and Disabled Persons Act 1970",
    "H2": "Other social care provision",
    "I": "Placement: the school or other institution",
    "J": "Personal budget",
    "K": "Advice and information gathered during the assessment",
}
"""The sections of a plan in the order reg 12(1) requires, with their headings."""

SIMILARITY_THRESHOLD = 0.5
"""Two blocks at least this similar (difflib ratio over their words) are one block, edited."""

# Pairing blocks inside a replaced stretch compares every old block with every new one. A section
# rewritten wholesale beyond this size is shown as removed and added, which is what it is.
_MAX_PAIRINGS = 40_000

_WORD = r"\w+(?:['’.,:/-]\w+)*"  # "child's", "1,200", "9:30", "12/03/2025", "one-to-one" are one word
_TOKEN = re.compile(rf"{_WORD}|\s+|[^\w\s]")
_WORD_RE = re.compile(_WORD)
_HEADING = re.compile(r"#{1,6}(?:[ \t]+|$)")
_BULLET = re.compile(r"[-*][ \t]+")


@dataclass(frozen=True)
class Change:
    """A run of text that is the same in both versions, or only in the new, or only in the old."""

    kind: str  # "added" | "removed" | "unchanged"
    text: str


@dataclass(frozen=True)
class Block:
    """One heading, bullet item or paragraph, paired between the versions."""

    kind: str  # "heading" | "item" | "paragraph"
    changes: tuple[Change, ...]
    status: str  # "added" | "removed" | "changed" | "unchanged"


@dataclass(frozen=True)
class SectionDiff:
    """The changes to one section of the plan."""

    letter: str
    title: str
    blocks: tuple[Block, ...]
    changed: bool
    added_words: int
    removed_words: int


@dataclass(frozen=True)
class _Source:
    kind: str
    text: str


def diff_plan(old: Mapping[str, str], new: Mapping[str, str]) -> list[SectionDiff]:
    """Compare two versions of a plan, section by section, in statute order.

    Every section is returned, an unchanged one with ``changed=False``. A section missing from a
    version counts as empty. A key that is not a section letter is refused rather than left out,
    because a notice that silently drops a change would misstate the proposed amendments.
    """
    unknown = sorted(set(old) - SECTION_TITLES.keys()) + sorted(set(new) - SECTION_TITLES.keys())
    if unknown:
        raise ValueError(
            f"plan sections: unknown section {', '.join(repr(u) for u in unknown)}; known: {', '.join(SECTION_TITLES)}"
        )
    return [_diff_section(letter, old.get(letter) or "", new.get(letter) or "") for letter in SECTION_TITLES]


def _diff_section(letter: str, old_text: str, new_text: str) -> SectionDiff:
    blocks = tuple(_diff_blocks(_parse(old_text), _parse(new_text)))
    added = sum(_count_words(c.text) for b in blocks for c in b.changes if c.kind == "added")
    removed = sum(_count_words(c.text) for b in blocks for c in b.changes if c.kind == "removed")
    return SectionDiff(
        letter=letter,
        title=f"Section {letter}: {SECTION_TITLES[letter]}",
        blocks=blocks,
        changed=any(b.status != "unchanged" for b in blocks),
        added_words=added,
        removed_words=removed,
    )


# --- Reading a section into blocks -------------------------------------------------------------


def _parse(text: str) -> list[_Source]:
    """Split a section's text into headings, bullet items and paragraphs."""
    blocks: list[_Source] = []
    kind = ""
    lines: list[str] = []

    def close() -> None:
        nonlocal kind, lines
        if lines:
            blocks.append(_Source(kind, "\n".join(lines)))
        kind, lines = "", []

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            close()
        elif heading := _HEADING.match(line):
            close()
            if line[heading.end() :]:
                blocks.append(_Source("heading", line[heading.end() :]))
        elif bullet := _BULLET.match(line):
            close()
            kind, lines = "item", [line[bullet.end() :]]
        else:
            # A line that continues an item or paragraph belongs to it (soft-wrapped text).
            kind = kind or "paragraph"
            lines.append(line)
    close()
    return blocks


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _key(token: str) -> str:
    # Re-wrapping a paragraph is not an amendment: all whitespace compares equal.
    return " " if token.isspace() else token


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD_RE.findall(text)]


def _count_words(text: str) -> int:
    return len(_WORD_RE.findall(text))


# --- Pairing blocks ----------------------------------------------------------------------------


def _diff_blocks(old: list[_Source], new: list[_Source]) -> Iterator[Block]:
    old_keys = [(b.kind, " ".join(b.text.split())) for b in old]
    new_keys = [(b.kind, " ".join(b.text.split())) for b in new]
    matcher = difflib.SequenceMatcher(None, old_keys, new_keys, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for block in new[j1:j2]:
                yield Block(block.kind, (Change("unchanged", block.text),), "unchanged")
        else:
            yield from _pair(old[i1:i2], new[j1:j2])


def _pair(old: list[_Source], new: list[_Source]) -> Iterator[Block]:
    """Pair the blocks of a replaced stretch by similarity, keeping both versions' order.

    A small dynamic programme picks the order-preserving pairing with the greatest total
    similarity; only blocks of the same kind at least ``SIMILARITY_THRESHOLD`` alike may pair.
    """
    n, m = len(old), len(new)
    ratio = [[0.0] * m for _ in range(n)]
    if n * m <= _MAX_PAIRINGS:
        old_words = [_words(b.text) for b in old]
        new_words = [_words(b.text) for b in new]
        for i in range(n):
            matcher = difflib.SequenceMatcher(None, autojunk=False)
            matcher.set_seq2(old_words[i])
            for j in range(m):
                if old[i].kind != new[j].kind:
                    continue
                matcher.set_seq1(new_words[j])
                if matcher.real_quick_ratio() >= SIMILARITY_THRESHOLD and matcher.quick_ratio() >= SIMILARITY_THRESHOLD:
                    ratio[i][j] = matcher.ratio()
    # best[i][j]: the greatest total similarity pairing old[i:] with new[j:].
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            paired = ratio[i][j] + best[i + 1][j + 1] if ratio[i][j] >= SIMILARITY_THRESHOLD else -1.0
            best[i][j] = max(paired, best[i + 1][j], best[i][j + 1])
    i = j = 0
    while i < n or j < m:
        if i < n and j < m and ratio[i][j] >= SIMILARITY_THRESHOLD and best[i][j] == ratio[i][j] + best[i + 1][j + 1]:
            yield _diff_pair(old[i], new[j])
            i, j = i + 1, j + 1
        elif i < n and (j == m or best[i][j] == best[i + 1][j]):
            # Removed blocks come before added ones where either order would do.
            yield Block(old[i].kind, (Change("removed", old[i].text),), "removed")
            i += 1
        else:
            yield Block(new[j].kind, (Change("added", new[j].text),), "added")
            j += 1


# --- Words within a pair of blocks -------------------------------------------------------------


@dataclass
class _Segment:
    """Text the same in both versions (``same``), or what was ``removed`` and ``added`` there."""

    same: str = ""
    removed: str = ""
    added: str = ""

    @property
    def is_change(self) -> bool:
        return bool(self.removed or self.added)


def _diff_pair(old: _Source, new: _Source) -> Block:
    old_tokens, new_tokens = _tokens(old.text), _tokens(new.text)
    matcher = difflib.SequenceMatcher(
        None, [_key(t) for t in old_tokens], [_key(t) for t in new_tokens], autojunk=False
    )
    segments: list[_Segment] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            segments.append(_Segment(same="".join(new_tokens[j1:j2])))
        else:
            segments.append(_Segment(removed="".join(old_tokens[i1:i2]), added="".join(new_tokens[j1:j2])))
    changes = _merge(_runs(_absorb_small_equalities(segments)))
    status = "changed" if any(c.kind != "unchanged" for c in changes) else "unchanged"
    return Block(new.kind, changes, status)


def _absorb_small_equalities(segments: list[_Segment]) -> list[_Segment]:
    """Fold short unchanged text between two changes into them, so a rewritten phrase reads whole.

    Without this, the spaces and small words a rewritten sentence shares with its old version
    split it into many fragments ("[removed: a] [added: x] the [removed: b] [added: y]"). Text
    with no words, or fewer words than the changes on either side, is folded in; a word shared
    between single-word changes stays visible ("[removed: speech] [added: occupational]
    therapist"), because in quantified provision the words kept matter as much as those changed.
    """
    result = list(segments)
    folded = True
    while folded:
        folded = False
        for k in range(1, len(result) - 1):
            before, middle, after = result[k - 1], result[k], result[k + 1]
            if middle.is_change or not (before.is_change and after.is_change):
                continue
            size = _count_words(middle.same)
            either_side = min(
                max(_count_words(before.removed), _count_words(before.added)),
                max(_count_words(after.removed), _count_words(after.added)),
            )
            removed = before.removed + middle.same + after.removed
            added = before.added + middle.same + after.added
            # Keep a gap that would leave one side holding nothing but that gap.
            if (size == 0 or size < either_side) and _count_words(removed) > size and _count_words(added) > size:
                result[k - 1 : k + 2] = [_Segment(removed=removed, added=added)]
                folded = True
                break
    return result


def _runs(segments: list[_Segment]) -> Iterator[Change]:
    for segment in segments:
        if segment.same:
            yield Change("unchanged", segment.same)
        if segment.removed:
            yield Change("removed", segment.removed)
        if segment.added:
            yield Change("added", segment.added)


def _merge(changes: Iterator[Change]) -> tuple[Change, ...]:
    merged: list[Change] = []
    for change in changes:
        if merged and merged[-1].kind == change.kind:
            merged[-1] = Change(change.kind, merged[-1].text + change.text)
        else:
            merged.append(change)
    return tuple(merged)


# --- Rendering -----------------------------------------------------------------------------------


def summary(diff: SectionDiff) -> str:
    """One line for a section: "Changed: 12 words added, 3 removed" or "No change"."""
    if not diff.changed:
        return "No change"
    parts: list[str] = []
    if diff.added_words:
        parts.append(f"{diff.added_words} {'word' if diff.added_words == 1 else 'words'} added")
    if diff.removed_words:
        noun = "" if parts else (" word" if diff.removed_words == 1 else " words")
        parts.append(f"{diff.removed_words}{noun} removed")
    return "Changed: " + (", ".join(parts) if parts else "punctuation only")


def _split_edges(text: str) -> tuple[str, str, str]:
    """Leading whitespace, the text, trailing whitespace: markers go round the words only."""
    core = text.strip()
    if not core:
        return text, "", ""
    start = text.index(core)
    return text[:start], core, text[start + len(core) :]


def _render(block: Block, mark: dict[str, tuple[str, str]], escape: bool) -> str:
    out: list[str] = []
    previous = ""
    for change in block.changes:
        text = html.escape(change.text) if escape else change.text
        if change.kind == "unchanged":
            out.append(text)
        else:
            lead, core, trail = _split_edges(text)
            if not core:
                out.append(text)
                previous = ""
                continue
            if change.kind == "added" and previous == "removed" and not lead and not out[-1].endswith((" ", "\n")):
                lead = " "  # keep "[removed: 3] [added: 2]" from reading (or printing) as one word
            opening, closing = mark[change.kind]
            out.append(f"{lead}{opening}{core}{closing}{trail}")
        previous = change.kind
    return "".join(out)


_HIDDEN = '<span class="visually-hidden">{}</span>'
_HTML_MARKS = {
    "added": ("<ins>" + _HIDDEN.format("[added: "), _HIDDEN.format("]") + "</ins>"),
    "removed": ("<del>" + _HIDDEN.format("[removed: "), _HIDDEN.format("]") + "</del>"),
}
_TEXT_MARKS = {"added": ("[added: ", "]"), "removed": ("[removed: ", "]")}


def to_html(diffs: Sequence[SectionDiff], *, only_changed: bool = True) -> str:
    """The changes as an HTML fragment for the notice of proposed amendments (page or PDF).

    Each section has an ``<h2>`` with its title, then a ``<p>`` summary ("Changed: 12 words added,
    3 removed" or "No change"), then its blocks: headings as ``<h3>``, items as ``<ul><li>``,
    paragraphs as ``<p>``. Added words are ``<ins>``, removed words ``<del>``, each with words a
    screen reader says in ``<span class="visually-hidden">`` (several screen readers do not
    announce ``ins`` and ``del`` at all). A wholly added or removed block has one marker round
    the whole block and the class ``block-added`` or ``block-removed``.

    There are no inline styles; the document's stylesheet gives the look. On screen the hidden
    words are hidden only visually. In print keep them as real, visually subtle text, never
    ``display: none``: the PDF's tags need the real text, and a black-and-white print still says
    what changed. For example::

        ins { text-decoration: underline; text-decoration-thickness: 2px; background: #e5f2ea; }
        del { text-decoration: line-through; background: #fbe9e7; }
        .block-added { border-left: 4px solid #00703c; padding-left: 0.5em; }
        .block-removed { border-left: 4px dashed #d4351c; padding-left: 0.5em; }
        @media screen {
          .visually-hidden { position: absolute !important; width: 1px !important;
            height: 1px !important; margin: 0 !important; padding: 0 !important;
            overflow: hidden !important; clip-path: inset(50%) !important;
            white-space: nowrap !important; border: 0 !important; }
        }
        @media print {
          .visually-hidden { font-size: 0.8em; color: #505a5f; text-decoration: none; }
        }

    ``only_changed``: leave out sections with no change (the default); a page with no changed
    section says so.
    """
    out: list[str] = []
    for diff in diffs:
        if only_changed and not diff.changed:
            continue
        out.append(f"<h2>{html.escape(diff.title)}</h2>")
        out.append(f"<p>{html.escape(summary(diff))}</p>")
        in_list = False
        for block in diff.blocks:
            if in_list and block.kind != "item":
                out.append("</ul>")
                in_list = False
            if block.kind == "item" and not in_list:
                out.append("<ul>")
                in_list = True
            tag = {"heading": "h3", "item": "li", "paragraph": "p"}[block.kind]
            css = f' class="block-{block.status}"' if block.status in ("added", "removed") else ""
            out.append(f"<{tag}{css}>{_render(block, _HTML_MARKS, escape=True)}</{tag}>")
        if in_list:
            out.append("</ul>")
    if not out:
        return "<p>No section of the plan has changed.</p>\n"
    return "\n".join(out) + "\n"


def to_text(diffs: Sequence[SectionDiff], *, only_changed: bool = True) -> str:
    """The changes as plain text, marked "[added: ...]" and "[removed: ...]", for emails.

    ``only_changed``: leave out sections with no change (the default).
    """
    sections: list[str] = []
    for diff in diffs:
        if only_changed and not diff.changed:
            continue
        lines = [diff.title, summary(diff)]
        previous = ""
        for block in diff.blocks:
            text = _render(block, _TEXT_MARKS, escape=False)
            if block.kind == "item":
                if previous != "item":
                    lines.append("")
                lines.append("- " + text.replace("\n", "\n  "))
            else:
                lines.append("")
                lines.append(("### " + text) if block.kind == "heading" else text)
            previous = block.kind
        sections.append("\n".join(lines))
    if not sections:
        return "No section of the plan has changed.\n"
    return "\n\n".join(sections) + "\n"
