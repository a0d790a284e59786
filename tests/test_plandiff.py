"""Tracked changes between plan versions, as the notice of proposed amendments shows them.

Expected runs, counts and renderings are written by hand from the example plans, never produced
by the code under test.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.plandiff import SECTION_TITLES, Block, Change, SectionDiff, diff_plan, to_html, to_text

PLAN = {
    "A": "Sam loves trains and wants to be a driver.",
    "B": "### Communication and interaction\n\nSam has a severe language disorder.",
    "E": "- By July 2026 Sam will ask for help in class using a sentence.",
    "F": (
        "### Speech and language therapy\n\n"
        "- 3 sessions of speech and language therapy each week, 30 minutes each\n"
        "- A visual timetable in every lesson\n"
        "- Pre-teaching of new vocabulary, 15 minutes daily"
    ),
    "I": "Oakfield Primary School (community mainstream school)",
}


def section(diffs: list[SectionDiff], letter: str) -> SectionDiff:
    [found] = [d for d in diffs if d.letter == letter]
    return found


def changed_letters(diffs: list[SectionDiff]) -> list[str]:
    return [d.letter for d in diffs if d.changed]


def with_section(letter: str, text: str) -> dict[str, str]:
    return {**PLAN, letter: text}


def test_identical_plans_have_no_changes() -> None:
    diffs = diff_plan(PLAN, dict(PLAN))
    assert changed_letters(diffs) == []
    assert all(d.added_words == 0 and d.removed_words == 0 for d in diffs)
    assert all(b.status == "unchanged" for d in diffs for b in d.blocks)
    assert to_text(diffs) == "No section of the plan has changed.\n"
    assert "<ins>" not in to_html(diffs, only_changed=False)
    assert "<del>" not in to_html(diffs, only_changed=False)


def test_sections_come_in_statute_order_with_their_titles() -> None:
    shuffled = {k: PLAN[k] for k in reversed(list(PLAN))}
    diffs = diff_plan(shuffled, {})
    assert [d.letter for d in diffs] == ["A", "B", "C", "D", "E", "F", "G", "H1", "H2", "I", "J", "K"]
    assert list(SECTION_TITLES) == [d.letter for d in diffs]
    assert section(diffs, "F").title == "Section F: Special educational provision"
    assert section(diffs, "I").title == "Section I: Placement: the school or other institution"
    assert section(diffs, "H1").title == (
        "Section H1: Social care provision under section 2 of the Chronically Sick and Disabled Persons Act 1970"
    )


def test_a_bullet_added_to_f() -> None:
    new = with_section("F", PLAN["F"] + "\n- Lunchtime support from a trained assistant")
    diffs = diff_plan(PLAN, new)
    assert changed_letters(diffs) == ["F"]
    f = section(diffs, "F")
    assert f.blocks[-1] == Block("item", (Change("added", "Lunchtime support from a trained assistant"),), "added")
    assert [b.status for b in f.blocks] == ["unchanged", "unchanged", "unchanged", "unchanged", "added"]
    assert (f.added_words, f.removed_words) == (6, 0)
    assert "- [added: Lunchtime support from a trained assistant]" in to_text(diffs)


def test_a_bullet_removed_from_f() -> None:
    new = with_section("F", PLAN["F"].replace("- A visual timetable in every lesson\n", ""))
    diffs = diff_plan(PLAN, new)
    assert changed_letters(diffs) == ["F"]
    f = section(diffs, "F")
    assert f.blocks[2] == Block("item", (Change("removed", "A visual timetable in every lesson"),), "removed")
    assert (f.added_words, f.removed_words) == (0, 6)
    assert "- [removed: A visual timetable in every lesson]" in to_text(diffs)


def test_a_word_changed_within_a_bullet_is_shown_in_that_bullet() -> None:
    new = with_section("F", PLAN["F"].replace("3 sessions", "2 sessions"))
    diffs = diff_plan(PLAN, new)
    f = section(diffs, "F")
    assert len(f.blocks) == 4
    assert f.blocks[1] == Block(
        "item",
        (
            Change("removed", "3"),
            Change("added", "2"),
            Change("unchanged", " sessions of speech and language therapy each week, 30 minutes each"),
        ),
        "changed",
    )
    assert (f.added_words, f.removed_words) == (1, 1)
    assert to_text(diffs) == (
        "Section F: Special educational provision\n"
        "Changed: 1 word added, 1 removed\n"
        "\n"
        "### Speech and language therapy\n"
        "\n"
        "- [removed: 3] [added: 2] sessions of speech and language therapy each week, 30 minutes each\n"
        "- A visual timetable in every lesson\n"
        "- Pre-teaching of new vocabulary, 15 minutes daily\n"
    )


def test_an_edited_bullet_pairs_with_its_old_version_not_removed_and_added() -> None:
    new = with_section(
        "F",
        PLAN["F"]
        .replace("A visual timetable in every lesson", "A visual timetable in every lesson and at lunch")
        .replace("15 minutes daily", "20 minutes twice a week"),
    )
    f = section(diff_plan(PLAN, new), "F")
    assert [b.status for b in f.blocks] == ["unchanged", "unchanged", "changed", "changed"]
    assert f.blocks[2].changes == (
        Change("unchanged", "A visual timetable in every lesson"),
        Change("added", " and at lunch"),
    )
    assert f.blocks[3].changes == (
        Change("unchanged", "Pre-teaching of new vocabulary, "),
        Change("removed", "15"),
        Change("added", "20"),
        Change("unchanged", " minutes "),
        Change("removed", "daily"),
        Change("added", "twice a week"),
    )


def test_a_rewritten_bullet_among_others_shows_as_removed_and_added() -> None:
    new = with_section("F", PLAN["F"].replace("A visual timetable in every lesson", "Weekly swimming with a 1:1 adult"))
    f = section(diff_plan(PLAN, new), "F")
    assert [b.status for b in f.blocks] == ["unchanged", "unchanged", "removed", "added", "unchanged"]


def test_an_empty_section_gains_text() -> None:
    new = {**PLAN, "H1": "- A short break of one night a month at Elm House"}
    diffs = diff_plan(PLAN, new)
    assert changed_letters(diffs) == ["H1"]
    h1 = section(diffs, "H1")
    assert h1.blocks == (Block("item", (Change("added", "A short break of one night a month at Elm House"),), "added"),)
    assert (h1.added_words, h1.removed_words) == (11, 0)


def test_a_section_emptied_loses_all_its_text() -> None:
    new = {**PLAN, "A": ""}
    a = section(diff_plan(PLAN, new), "A")
    assert a.blocks == (
        Block("paragraph", (Change("removed", "Sam loves trains and wants to be a driver."),), "removed"),
    )
    assert (a.changed, a.added_words, a.removed_words) == (True, 0, 9)


def test_placement_changed_in_section_i() -> None:
    new = with_section("I", "Riverside Academy (academy, specialist resource base for communication)")
    diffs = diff_plan(PLAN, new)
    assert changed_letters(diffs) == ["I"]
    text = to_text(diffs)
    assert "[removed: Oakfield Primary School (community mainstream school)]" in text
    assert "[added: Riverside Academy (academy, specialist resource base for communication)]" in text
    i = section(diffs, "I")
    assert (i.added_words, i.removed_words) == (8, 6)


def test_word_counts_over_several_blocks() -> None:
    # Counted by hand: "3" -> "2" (1 added, 1 removed); "and at lunch" (3 added);
    # the removed bullet "Pre-teaching of new vocabulary, 15 minutes daily" is 7 words
    # ("Pre-teaching" is one word); the new heading "Occupational therapy" is 2 words.
    new = with_section(
        "F",
        "### Speech and language therapy\n\n"
        "- 2 sessions of speech and language therapy each week, 30 minutes each\n"
        "- A visual timetable in every lesson and at lunch\n\n"
        "### Occupational therapy",
    )
    f = section(diff_plan(PLAN, new), "F")
    assert (f.added_words, f.removed_words) == (1 + 3 + 2, 1 + 7)
    assert to_text(diff_plan(PLAN, new)).splitlines()[1] == "Changed: 6 words added, 8 removed"


def test_rewrapping_a_paragraph_is_not_a_change() -> None:
    new = with_section("A", "Sam loves trains\nand wants to be   a driver.\n")
    assert changed_letters(diff_plan(PLAN, new)) == []


def test_reversing_old_and_new_swaps_added_and_removed() -> None:
    new = with_section("F", PLAN["F"].replace("3 sessions", "2 sessions") + "\n- Lunchtime support")
    new = {**new, "H2": "Help with travel to school", "I": "Riverside Academy"}
    forward, backward = diff_plan(PLAN, new), diff_plan(new, PLAN)
    swap = {"added": "removed", "removed": "added", "unchanged": "unchanged", "changed": "changed"}
    for there, back in zip(forward, backward, strict=True):
        assert (there.added_words, there.removed_words) == (back.removed_words, back.added_words)
        # Where a block is replaced outright the removed one is listed first either way round,
        # so compare the blocks as a collection.
        assert sorted(
            (swap[b.status], b.kind, sorted((swap[c.kind], c.text) for c in b.changes)) for b in there.blocks
        ) == sorted((b.status, b.kind, sorted((c.kind, c.text) for c in b.changes)) for b in back.blocks)
    assert [b.status for b in section(backward, "I").blocks] == ["removed", "added"]
    assert section(backward, "I").blocks[0].changes == (Change("removed", "Riverside Academy"),)


def test_the_same_inputs_give_the_same_output() -> None:
    new = with_section("F", PLAN["F"].replace("3 sessions", "2 sessions"))
    assert to_html(diff_plan(PLAN, new)) == to_html(diff_plan(dict(PLAN), dict(new)))


def test_an_unknown_section_is_refused_not_dropped() -> None:
    try:
        diff_plan(PLAN, {**PLAN, "L": "Something"})
    except ValueError as e:
        assert "'L'" in str(e) and "H1" in str(e)
    else:
        raise AssertionError("an unknown section was accepted")


# --- HTML ------------------------------------------------------------------------------------


class _Structure(HTMLParser):
    """Checks every element is closed in order and that no inline style is used."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.styles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(tag)
        self.tags.append(tag)
        self.styles += sum(1 for name, _ in attrs if name == "style")

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"</{tag}> closes nothing open"


def parse(fragment: str) -> _Structure:
    checker = _Structure()
    checker.feed(fragment)
    checker.close()
    assert checker.stack == []
    return checker


def test_html_marks_changes_with_words_a_screen_reader_says() -> None:
    new = with_section("F", PLAN["F"].replace("3 sessions", "2 sessions"))
    page = to_html(diff_plan(PLAN, new))
    assert (
        '<li><del><span class="visually-hidden">[removed: </span>3<span class="visually-hidden">]</span></del> '
        '<ins><span class="visually-hidden">[added: </span>2<span class="visually-hidden">]</span></ins>'
        " sessions of speech and language therapy each week, 30 minutes each</li>"
    ) in page
    assert "<h2>Section F: Special educational provision</h2>\n<p>Changed: 1 word added, 1 removed</p>" in page
    assert "<h3>Speech and language therapy</h3>" in page
    structure = parse(page)
    assert structure.styles == 0
    assert structure.tags.count("ul") == 1 and structure.tags.count("li") == 3


def test_a_whole_added_item_has_one_marker() -> None:
    new = with_section("F", PLAN["F"] + "\n- Lunchtime support from a trained assistant")
    page = to_html(diff_plan(PLAN, new))
    assert (
        '<li class="block-added"><ins><span class="visually-hidden">[added: </span>'
        'Lunchtime support from a trained assistant<span class="visually-hidden">]</span></ins></li>'
    ) in page
    assert page.count("[added: ") == 1


def test_a_whole_removed_paragraph_has_one_marker() -> None:
    new = with_section("I", "")
    page = to_html(diff_plan(PLAN, new))
    assert '<p class="block-removed"><del><span class="visually-hidden">[removed: </span>Oakfield' in page
    assert page.count("[removed: ") == 1


def test_html_escapes_plan_text() -> None:
    new = with_section("A", 'Sam said <script>alert("hi")</script> & laughed.')
    page = to_html(diff_plan(PLAN, new), only_changed=False)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page and "&amp;" in page
    assert "script" not in parse(page).tags


def test_html_leaves_out_unchanged_sections_unless_asked() -> None:
    new = with_section("F", PLAN["F"].replace("3 sessions", "2 sessions"))
    diffs = diff_plan(PLAN, new)
    changed_only = to_html(diffs)
    everything = to_html(diffs, only_changed=False)
    assert changed_only.count("<h2>") == 1
    assert everything.count("<h2>") == 12
    assert everything.count("<p>No change</p>") == 11
    assert "<h2>Section K: Advice and information gathered during the assessment</h2>" in everything
    assert "Sam loves trains and wants to be a driver." in everything
    assert "Sam loves trains" not in changed_only
    assert parse(everything).styles == 0


def test_no_changes_at_all_says_so_in_html() -> None:
    assert to_html(diff_plan(PLAN, PLAN)) == "<p>No section of the plan has changed.</p>\n"


# --- Property: the runs rebuild both versions ---------------------------------------------------

WORDS = [
    "3",
    "2",
    "sessions",
    "of",
    "speech",
    "therapy",
    "a",
    "week",
    "the",
    "child's",
    "1:1",
    "(daily)",
    "<b>",
    "&",
    "Ms",
    "Khan.",
]
words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8)
spaces = st.sampled_from([" ", "  ", "\n"])
blocks = st.lists(st.tuples(st.sampled_from(["heading", "item", "paragraph"]), words), max_size=6)


@st.composite
def section_texts(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """A section's text and, written out independently, the blocks it holds."""
    parts: list[str] = []
    expected: list[tuple[str, str]] = []
    for kind, ws in draw(blocks):
        body = ws[0] + "".join(draw(spaces) + w for w in ws[1:])
        if kind == "heading":
            body = body.replace("\n", " ")  # a heading is one line
        prefix = {"heading": "### ", "item": "- ", "paragraph": ""}[kind]
        parts.append(prefix + body)
        expected.append((kind, " ".join(ws)))
    return "\n\n".join(parts), expected


def rebuild(blocks: tuple[Block, ...], keep: str) -> list[tuple[str, str]]:
    """The blocks of one version, from the runs its side keeps, with whitespace normalised."""
    gone = "removed" if keep == "added" else "added"
    return [
        (b.kind, " ".join("".join(c.text for c in b.changes if c.kind in ("unchanged", keep)).split()))
        for b in blocks
        if b.status != gone
    ]


@settings(max_examples=300, deadline=None)
@given(section_texts(), section_texts())
def test_runs_rebuild_the_old_and_new_text_block_by_block(
    old: tuple[str, list[tuple[str, str]]], new: tuple[str, list[tuple[str, str]]]
) -> None:
    [f] = [d for d in diff_plan({"F": old[0]}, {"F": new[0]}) if d.letter == "F"]
    assert rebuild(f.blocks, "added") == new[1]
    assert rebuild(f.blocks, "removed") == old[1]
    assert f.changed == (old[1] != new[1])
    for b in f.blocks:
        kinds = [c.kind for c in b.changes]
        assert all(a != c for a, c in zip(kinds, kinds[1:], strict=False)), "adjacent runs of one kind"
    assert re.sub(r"\s+", "", to_text([f])) != "" and parse(to_html([f], only_changed=False)).styles == 0


def test_words_kept_between_changes_stay_visible_and_a_rewritten_phrase_reads_whole() -> None:
    old = {"F": "- Weekly sessions with the speech therapist, 30 minutes\n\nReviewed termly with parents."}
    new = {
        "F": "- Fortnightly sessions with the occupational therapist, 45 minutes\n\n"
        "Reviewed every half term with Sam and parents."
    }
    assert to_text(diff_plan(old, new)).splitlines()[3:] == [
        "- [removed: Weekly] [added: Fortnightly] sessions with the [removed: speech] [added: occupational]"
        " therapist, [removed: 30] [added: 45] minutes",
        "",
        "Reviewed [removed: termly with] [added: every half term with Sam and] parents.",
    ]
