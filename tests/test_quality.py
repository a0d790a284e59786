"""The EHC plan quality check (engine/quality.py): CoP 9.69 (provision specific and quantified, each
need in B matched in F), reg 12(1)(e) (outcomes with time frames) and reg 12(1)(i) (the school named).

The plans here are generated: no real child. Expected findings are written by hand from the rules.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from engine.quality import (
    Finding,
    area_of_need,
    blocking,
    check,
    has_time_frame,
    missing_quantities,
    names_an_institution,
    vague_wording,
)

GOOD_PLAN = {
    "A": (
        "Alex is 9 and in Year 4. Alex enjoys football, drawing and anything about dinosaurs.\n\n"
        'Alex says: "I like it when people wait for me to finish talking." Alex\'s parents want Alex to make '
        "friends at school and to enjoy reading."
    ),
    "B": """
### Communication and interaction
- Alex has a severe expressive language disorder: Alex speaks in sentences of 3 to 4 words and finds it
  hard to retell events in order.
- Alex finds it hard to follow spoken instructions of more than two steps.

### Cognition and learning
- Alex reads well below the level expected for Year 4: Alex decodes simple words but reads slowly.

### Social, emotional and mental health
- Alex becomes anxious at unstructured times and often plays alone at lunchtime.
""",
    "C": "No health care needs related to Alex's special educational needs have been identified.",
    "D": "No social care needs related to Alex's special educational needs have been identified.",
    "E": """
By the end of Year 5 (July 2027), Alex will:

- describe a picture in sentences of 6 or more words;
- retell a short story in the right order, using a story map.

Other outcomes:

- Alex will follow three-step spoken instructions in class without an adult repeating them, by the next
  annual review.
- Alex will read a Year 4 book aloud at 60 words a minute by July 2027.
- Alex will join a game with two classmates at lunchtime on at least three days a week, within 12 months.
""",
    "F": """
### Communication and interaction
- Speech and language therapy from a speech and language therapist, 3 sessions of 30 minutes each week, in school.
- A language programme set by the speech and language therapist and delivered by a trained teaching
  assistant, 20 minutes daily.
- Instructions broken into single steps with a visual prompt, by the class teacher and teaching assistant,
  throughout the school day.

### Cognition and learning
- Phonics catch-up, 15 minutes each day, one-to-one with a teaching assistant trained in the programme.

### Social, emotional and mental health
- A lunchtime social skills group of 4 pupils, led by a learning support assistant, 30 minutes twice a week.
""",
    "G": "None identified.",
    "H1": "None identified.",
    "H2": "None identified.",
    "I": "Riverside Primary School, a maintained mainstream primary school",
    "J": "",
    "K": "Appendix 1: advice from the speech and language therapist, the educational psychologist and the school.",
}

VAGUE_PLAN = {
    **GOOD_PLAN,
    "B": """
### Communication and interaction
- Alex has speech and language difficulties.

### Social, emotional and mental health
- Alex is anxious.
""",
    "E": "- Alex will improve his speech.",
    "F": """
### Communication and interaction
- Access to speech and language therapy as required.
- Regular support from an adult.
""",
}


ONE_NEED = "### Communication and interaction\n- Alex speaks in sentences of 3 to 4 words."


def rules(findings: list[Finding]) -> list[tuple[str, str, str | None]]:
    return [(f.rule, f.section, f.item) for f in findings]


def with_sections(**changes: str) -> dict[str, str]:
    return {**GOOD_PLAN, **changes}


# --- whole plans -------------------------------------------------------------------------------


def test_a_good_plan_has_no_findings() -> None:
    assert check(GOOD_PLAN, final=True) == []


def test_the_plan_inspectors_criticise_is_blocked_for_each_defect() -> None:
    access = "Access to speech and language therapy as required."
    regular = "Regular support from an adult."
    findings = check(VAGUE_PLAN, final=True)
    assert rules(findings) == [
        ("outcome_without_time_frame", "E", "Alex will improve his speech."),
        ("need_without_provision", "F", None),
        ("vague_provision", "F", access),
        ("unquantified_provision", "F", access),
        ("vague_provision", "F", regular),
        ("unquantified_provision", "F", regular),
    ]
    assert blocking(findings) == findings
    messages = [f.message for f in findings]
    assert '"Social, emotional and mental health"' in messages[1]
    assert '"Access to", "as required"' in messages[2]
    assert messages[3] == f'Does not say how often, for how long or who delivers it: "{access}"'
    assert '"Regular"' in messages[4]
    assert messages[5] == f'Does not say how often or for how long: "{regular}"'


def test_blocking_keeps_only_errors() -> None:
    error = Finding("vague_provision", "F", "error", "m", "x")
    warning = Finding("empty_section", "A", "warning", "m")
    assert blocking([warning, error, warning]) == [error]


def test_section_keys_are_read_case_insensitively() -> None:
    assert check({k.lower(): v for k, v in GOOD_PLAN.items()}, final=True) == []


# --- 1. each need in B has provision in F ------------------------------------------------------


@pytest.mark.parametrize(
    ("needs", "provision", "expected"),
    [
        ("### Cognition and learning\n- Reads slowly.", "### Cognition and learning\n- P", []),
        ("### Cognition and learning\n- Reads slowly.", "### Communication and interaction\n- P", ["need", "prov"]),
        ("### SEMH\n- Anxious.", "### Social, emotional and mental health\n- P", []),
        ("### Sensory and physical\n- Hearing loss.", "### Physical and sensory needs\n- P", []),
        ("### Sensory and/or physical needs\n- Hearing loss.", "### sensory & physical\n- P", []),
        ("### Speech, language and communication\n- X", "### Communication & interaction\n- P", []),
        ("### Independence needs\n- Cannot dress.", "### independence\n- P", []),
        ("### Independence\n- Cannot dress.", "### Self-care\n- P", ["need", "prov"]),
        # a heading with nothing under it in F is no provision
        (
            "### Cognition and learning\n- Reads slowly.",
            "### Cognition and learning\n\n### SEMH\n- P",
            ["need", "prov"],
        ),
    ],
)
def test_areas_of_need_are_matched_after_normalising(needs: str, provision: str, expected: list[str]) -> None:
    findings = [
        f for f in check(with_sections(B=needs, F=provision), final=True) if f.rule.endswith(("_provision", "_need"))
    ]
    short = {"need_without_provision": "need", "provision_without_need": "prov"}
    assert [short[f.rule] for f in findings if f.rule in short] == expected
    assert [f.severity for f in findings if f.rule in short] == [
        "error" if e == "need" else "warning" for e in expected
    ]


@pytest.mark.parametrize(
    ("heading", "area"),
    [
        ("Communication and interaction", "Communication and interaction"),
        ("SLCN", "Communication and interaction"),
        ("Social communication", "Communication and interaction"),
        ("Cognition & Learning", "Cognition and learning"),
        ("Social, emotional and mental health", "Social, emotional and mental health"),
        ("semh", "Social, emotional and mental health"),
        ("Emotional wellbeing", "Social, emotional and mental health"),
        ("Sensory and/or physical needs", "Sensory and/or physical needs"),
        ("Physical and Sensory", "Sensory and/or physical needs"),
        ("Hearing impairment", "Sensory and/or physical needs"),
        ("Preparing for adulthood", "Preparing for adulthood"),
    ],
)
def test_area_headings_are_read_as_the_four_broad_areas(heading: str, area: str) -> None:
    assert area_of_need(heading)[1] == area


@pytest.mark.parametrize("letter", ["B", "E", "F"])
@pytest.mark.parametrize("text", ["", "  \n", "### Communication and interaction\n"])
def test_an_empty_b_e_or_f_blocks(letter: str, text: str) -> None:
    findings = check(with_sections(**{letter: text}), final=True)
    missing = [f for f in findings if f.rule == "section_missing"]
    assert [(f.section, f.severity) for f in missing] == [(letter, "error")]
    # with B or F empty there is nothing to match: no finding per area
    assert not [f for f in findings if f.rule in {"need_without_provision", "provision_without_need"}]


def test_a_missing_key_is_an_empty_section() -> None:
    plan = {k: v for k, v in GOOD_PLAN.items() if k != "F"}
    assert [(f.rule, f.section) for f in check(plan, final=True)] == [("section_missing", "F")]


def test_text_under_no_area_heading_is_a_warning() -> None:
    findings = check(with_sections(B="Alex finds reading hard.\n\n" + GOOD_PLAN["B"]), final=True)
    assert rules(findings) == [("area_heading_missing", "B", "Alex finds reading hard.")]
    assert findings[0].severity == "warning"


# --- 2. vague wording in F ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ("Access to a quiet room", ["Access to"]),
        ("Opportunities for small group work", ["Opportunities for"]),
        ("An opportunity to practise", ["opportunity to"]),
        ("Therapy as required", ["as required"]),
        ("Breaks as needed", ["as needed"]),
        ("Adult help as appropriate", ["as appropriate"]),
        ("Support as appropriate", ["Support as appropriate"]),
        ("Regular check-ins", ["Regular"]),
        ("Seen regularly by the SENCo", ["regularly"]),
        ("Small group work where possible", ["where possible"]),
        ("A laptop if necessary", ["if necessary"]),
        ("Alex may use a laptop", ["may"]),
        ("Alex should have a visual timetable", ["should have"]),
        ("Ongoing support from staff", ["Ongoing support"]),
        ("Some 1:1 time", ["Some"]),
        ("Up to 30 minutes a day", ["Up to"]),
        ("ACCESS TO therapy, AS REQUIRED", ["ACCESS TO", "AS REQUIRED"]),
        ("Regular, regular sessions", ["Regular"]),
    ],
)
def test_vague_wording_is_found_and_quoted(text: str, phrases: list[str]) -> None:
    assert vague_wording(text) == phrases
    findings = check(with_sections(B=ONE_NEED, F=f"### Communication and interaction\n- {text}"), final=True)
    vague = [f for f in findings if f.rule == "vague_provision"]
    assert [(f.severity, f.item) for f in vague] == [("error", text)]
    assert all(f'"{p}"' in vague[0].message for p in phrases)


@pytest.mark.parametrize(
    "text",
    [
        "A visit from the mayor",  # "may" only as a word
        "Maya, a peer mentor, 10 minutes daily",
        "A handsome reward chart",  # "some" only as a word
        "Someone trained in Makaton; something to fidget with; sometimes",
        "Irregular verbs taught explicitly",  # "regular" only as a word
        "From May 2026, 30 minutes weekly",  # May the month
        "Reviewed on 31 May by the SENCo",
        "Reviewed in May and at the end of May",
        "Starting after May half term",
        "Taught by Mrs May, the class teacher",
        "Step-free access to every classroom",  # physical access is specific
        "Wheelchair access to the hall",
        "Home-school book kept up to date daily",
        "Up-to-date risk assessment",
        "A passport to independence",
        "Assessment by the teacher",
    ],
)
def test_vague_wording_does_not_match_inside_other_words_or_months(text: str) -> None:
    assert vague_wording(text) == []


# --- 3. provision specified and quantified -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("Speech and language therapy from a speech and language therapist, 3 sessions of 30 minutes each week", []),
        ("Precision teaching by a teaching assistant, 10 minutes daily", []),
        ("45-minute sessions with the SENCo, twice a term", []),
        ("Occupational therapy programme from an OT, 1 hour fortnightly", []),
        ("1:1 reading with an adult for half an hour every morning", []),
        ("Physiotherapist: stretches, 20 mins, 3 times a week", []),
        ("Mentoring by a learning support assistant on Mondays and Thursdays, 15 minutes", []),
        ("Small group led by the class teacher, 4 sessions per week of 25 minutes", []),
        ("Sessions with an educational psychologist termly, one hour each", []),
        ("Specialist teacher for the deaf, 2 hours a week", []),
        ("Staff trained in Makaton sign with Alex throughout the school day", []),
        ("Full-time place in a specialist setting, taught by qualified teachers", []),
        ("A TA sits with Alex in every lesson", []),
        ("Therapy from a speech and language therapist", ["how often", "for how long"]),
        ("30 minutes of speech therapy weekly", ["who delivers it"]),
        ("Daily support from a teaching assistant", ["for how long"]),
        ("Sessions of 30 minutes with a teaching assistant", ["how often"]),
        ("Full-time place in a specialist setting", ["who delivers it"]),
        ("Language support in a Year 4 class", ["how often", "for how long", "who delivers it"]),
        ("Speech and language therapy", ["how often", "for how long", "who delivers it"]),
    ],
)
def test_provision_says_how_often_for_how_long_and_who(text: str, missing: list[str]) -> None:
    assert missing_quantities(text) == missing
    findings = check(with_sections(B=ONE_NEED, F=f"### Communication and interaction\n- {text}"), final=True)
    assert [f.rule for f in findings if f.rule != "vague_provision"] == (["unquantified_provision"] if missing else [])
    unquantified = [f for f in findings if f.rule == "unquantified_provision"]
    assert [f.item for f in unquantified] == ([text] if missing else [])
    for part in missing:
        assert part in unquantified[0].message


def test_a_lead_in_and_nested_bullets_are_read_with_each_provision() -> None:
    provision = """
### Communication and interaction
Delivered by a speech and language therapist:

- Therapy in school, 3 sessions of 30 minutes each week.
- Advice to staff, 1 hour each term.
- A written programme
  - reviewed with the class teacher for 20 minutes every half term.

**Programme**

- Language group, 30 minutes daily.
"""
    findings = check(with_sections(B=ONE_NEED, F=provision), final=True)
    assert rules(findings) == [
        ("unquantified_provision", "F", "Language group, 30 minutes daily."),
    ]


@pytest.mark.parametrize("marker", ["-", "*", "+", "1.", "2)"])
def test_every_list_marker_starts_an_item(marker: str) -> None:
    provision = (
        f"### Communication and interaction\r\n{marker} Therapy weekly\r\n{marker} Group daily, 20 minutes, by a TA"
    )
    findings = check(with_sections(B=ONE_NEED, F=provision), final=True)
    assert rules(findings) == [("unquantified_provision", "F", "Therapy weekly")]


def test_a_lead_in_is_checked_for_vague_wording_but_not_for_quantities() -> None:
    provision = "### Communication and interaction\nRegular sessions:\n- Therapy from a SaLT, 30 minutes weekly"
    findings = check(with_sections(B=ONE_NEED, F=provision), final=True)
    assert rules(findings) == [("vague_provision", "F", "Regular sessions:")]


def test_each_table_row_is_a_provision_and_the_header_is_not() -> None:
    provision = """
### Communication and interaction
| Provision | How often | Who |
|---|---|---|
| Speech and language therapy, 30 minutes | weekly | speech and language therapist |
| Language group | as needed | teaching assistant |
"""
    row = "Language group, as needed, teaching assistant"
    assert rules(check(with_sections(B=ONE_NEED, F=provision), final=True)) == [
        ("vague_provision", "F", row),
        ("unquantified_provision", "F", row),
    ]


# --- 4. outcomes with a time frame -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Alex will read 100 common words by July 2027",
        "by the end of Year 6",
        "by the end of key stage 2",
        "by the end of KS2",
        "within 12 months",
        "within a year",
        "by the next annual review",
        "by her second annual review",
        "by summer term 2027",
        "by the end of the spring term",
        "by age 16",
        "by the age of 16",
        "31/07/2027",
        "by 31 July 2027",
        "in 6 months",
        "over the next two terms",
        "by the end of the academic year",
        "by the end of this term",
        "by the time Alex leaves primary school",
        "by Christmas",
        "before transfer to secondary school",
        "during 2026/27",
    ],
)
def test_outcomes_with_a_time_frame_pass(text: str) -> None:
    assert has_time_frame(text)
    assert check(with_sections(E=f"- Alex will use a visual timetable {text}."), final=True) == []


@pytest.mark.parametrize(
    "text",
    [
        "Alex will improve his speech.",
        "Alex will read 100 common words.",
        "Alex will play with peers at nursery.",  # a place, not a time
        "Alex will be in a Year 4 class with friends.",
        "Alex will use 6 words a sentence.",
        "Alex will need less adult support.",
    ],
)
def test_outcomes_without_a_time_frame_block(text: str) -> None:
    assert not has_time_frame(text)
    findings = check(with_sections(E=f"- {text}"), final=True)
    assert [(f.rule, f.severity, f.item) for f in findings] == [("outcome_without_time_frame", "error", text)]
    assert f'"{text}"' in findings[0].message


def test_a_heading_or_lead_in_gives_its_time_frame_to_the_outcomes_under_it() -> None:
    outcomes = """
By July 2027, Alex will:
- write three sentences.

Alex will also:
- swim 25 metres.

### By the end of key stage 2
- Alex will read fluently.
"""
    assert rules(check(with_sections(E=outcomes), final=True)) == [
        ("outcome_without_time_frame", "E", "swim 25 metres."),
    ]


def test_outcomes_written_as_paragraphs_are_checked_when_there_are_no_bullets() -> None:
    findings = check(with_sections(E="Alex will read fluently.\n\nAlex will swim by July 2027."), final=True)
    assert rules(findings) == [("outcome_without_time_frame", "E", "Alex will read fluently.")]


# --- 5. the school or setting named in a final plan -------------------------------------------


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        ("Riverside Primary School", []),
        ("St Mary's C of E Academy, a mainstream academy", []),
        ("Oakfield School (a maintained special school) from September 2026", []),
        ("", [("placement_not_named", "error")]),
        ("   ", [("placement_not_named", "error")]),
        ("To be confirmed", [("placement_not_named", "error")]),
        ("TBC", [("placement_not_named", "error")]),
        ("School: TBA following consultation", [("placement_not_named", "error")]),
        ("Awaiting responses from schools", [("placement_not_named", "error")]),
        ("a maintained mainstream primary school", [("placement_type_only", "warning")]),
        ("Special school for children with autism", [("placement_type_only", "warning")]),
        ("Type of school only", [("placement_type_only", "warning")]),
    ],
)
def test_a_final_plan_names_the_school(placement: str, expected: list[tuple[str, str]]) -> None:
    findings = check(with_sections(I=placement), final=True)
    assert [(f.rule, f.severity) for f in findings] == expected
    assert all(f.section == "I" for f in findings)


@pytest.mark.parametrize("placement", ["", "TBC", "a maintained mainstream primary school"])
def test_a_draft_plan_leaves_section_i_alone(placement: str) -> None:
    assert check(with_sections(I=placement), final=False) == []


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Riverside Primary School", True),
        ("Mainstream secondary school with an ASD resource base", False),
        ("a Church of England primary school", False),
        ("Non-maintained special school, post-16", False),
    ],
)
def test_a_name_is_a_capitalised_word_beyond_a_type(text: str, named: bool) -> None:
    assert names_an_institution(text) is named


# --- 6. sections that should not be left empty ------------------------------------------------


@pytest.mark.parametrize("letter", ["A", "C", "D", "G", "H1", "H2", "K"])
def test_an_empty_section_is_a_warning(letter: str) -> None:
    findings = check(with_sections(**{letter: " - "}), final=True)
    assert [(f.rule, f.section, f.severity) for f in findings] == [("empty_section", letter, "warning")]
    assert blocking(findings) == []


def test_section_j_may_be_empty() -> None:
    plan = {k: v for k, v in GOOD_PLAN.items() if k != "J"}
    assert check(plan, final=True) == []


# --- messages and purity ----------------------------------------------------------------------


def test_messages_quote_at_most_80_characters() -> None:
    long_item = "Access to " + "very " * 40 + "long provision"
    plan = with_sections(B=ONE_NEED, F=f"### Communication and interaction\n- {long_item}")
    finding = next(f for f in check(plan, final=True) if f.rule == "unquantified_provision")
    quoted = finding.message.split(": ", 1)[1]
    assert quoted.startswith('"Access to very') and quoted.endswith('…"')
    assert len(quoted) <= 82
    assert finding.item == long_item


def test_findings_come_in_section_order() -> None:
    findings = check({"F": "### SEMH\n- Regular support", "A": "", "I": ""}, final=True)
    sections = [f.section for f in findings]
    assert sections == sorted(sections, key=["A", "B", "C", "D", "E", "F", "G", "H1", "H2", "I", "J", "K"].index)


def test_the_quality_check_imports_only_the_standard_library() -> None:
    source = Path(__file__).resolve().parent.parent / "engine" / "quality.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "imports nothing from the engine"
            imported.add((node.module or "").split(".")[0])
    assert imported - {"__future__"} <= set(sys.stdlib_module_names)
