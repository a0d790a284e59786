"""Loading workflow files: the shipped ones are valid; every kind of mistake is reported with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.calendar import Duration, Unit
from engine.catalogue import Catalogue, workflow_files
from engine.definition.load import load_file, load_text
from engine.errors import DefinitionError

ROOT = Path(__file__).resolve().parent.parent
BROKEN = Path(__file__).resolve().parent / "broken_workflows"


def problems_of(path: Path) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_file(path)
    return [str(p) for p in info.value.problems]


def test_every_shipped_workflow_is_valid_and_cites_its_sources() -> None:
    files = workflow_files(ROOT / "workflows")
    assert files, "no shipped workflows"
    for f in files:
        d = load_file(f)
        assert d.source
        for deadline in d.deadlines:
            assert deadline.source.strip(), f"{f}: deadline {deadline.name} has no source"
        for name, state in d.states.items():
            assert len(state.description.split()) >= 5, f"{f}: state {name} needs a plain-English description"


def test_needs_assessment_has_the_three_statutory_limits_from_the_request() -> None:
    d = load_file(ROOT / "workflows" / "needs_assessment.yaml")
    limits = {x.name: x for x in d.deadlines}
    # CFA 2014 s.36(5) / reg 5(1); reg 10(1); reg 13(2): all counted from the request being received.
    for name, weeks in (("decide_whether_to_assess", 6), ("notify_not_to_issue", 16), ("final_plan", 20)):
        assert limits[name].duration == Duration(weeks, Unit.WEEKS)
        assert limits[name].counted_from == "request_received_on"
        assert limits[name].opened_by == ["start"]
        assert limits[name].basis.value == "statutory"
    # The family's 15 days begin with the day the draft is served (CFA 2014 s.38; reg 13(1)).
    assert limits["family_representations"].duration == Duration(15, Unit.DAYS, inclusive=True)


def test_a_file_with_many_mistakes_reports_all_of_them_with_lines() -> None:
    found = problems_of(BROKEN / "mistakes.yaml")
    text = "\n".join(found)
    f = str(BROKEN / "mistakes.yaml")
    expected = [
        f"{f}:19: transitions[0].to: unknown state 'wroking'; did you mean 'working'?",  # unknown state
        f"{f}:11: states.orphan: state 'orphan' cannot be reached from 'received'",  # unreachable
        f"{f}:26: transitions[2].from: 'done' is a final state",  # transition from a final state
        f"{f}:32: transitions[3].roles[0]: unknown role 'caseworkr'; did you mean 'caseworker'?",
        f"{f}:36: deadlines[0].duraton: unknown key 'duraton'; did you mean 'duration'?",  # typo in a key
        f"{f}:34: deadlines[0].duration: required but missing (or count it with later_of or fixed)",
        f"{f}:43: deadlines[1].duration: 'six weeks' is not a duration",  # bad duration
        f"{f}:45: deadlines[1].met_by[0]: unknown trigger 'finsh'; did you mean 'finish'?",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in found), f"missing: {line}\n--- got:\n{text}"


def test_a_yaml_syntax_error_names_the_line() -> None:
    found = problems_of(BROKEN / "syntax.yaml")
    assert len(found) == 1
    assert found[0].startswith(f"{BROKEN / 'syntax.yaml'}:4: not valid YAML")


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("initial: nowhere", "initial: unknown state 'nowhere'"),
        ("version: 0", "version: input should be greater than or equal to 1"),
        ("states_extra: 1", "unknown key 'states_extra'"),
    ],
)
def test_single_mistakes_in_an_otherwise_valid_file(snippet: str, expected: str) -> None:
    base = (Path(__file__).parent / "workflows" / "simple.yaml").read_text()
    key = snippet.split(":")[0]
    lines = [ln for ln in base.splitlines() if not ln.startswith(key + ":")]
    text = "\n".join(lines) + "\n" + snippet + "\n"
    with pytest.raises(DefinitionError) as info:
        load_text(text, "t.yaml")
    assert any(expected in str(p) for p in info.value.problems), info.value.problems
    assert all(p.line is not None for p in info.value.problems)


def test_a_key_written_twice_is_a_mistake() -> None:
    base = (Path(__file__).parent / "workflows" / "simple.yaml").read_text()
    with pytest.raises(DefinitionError) as info:
        load_text(base + "title: Again\n", "t.yaml")
    assert any("title: written twice" in str(p) for p in info.value.problems)


def test_a_state_with_no_way_out_is_reported() -> None:
    base = (Path(__file__).parent / "workflows" / "simple.yaml").read_text()
    text = base.replace("  dropped:\n    final: true\n", "  dropped:\n")
    with pytest.raises(DefinitionError) as info:
        load_text(text, "t.yaml")
    assert any("state 'dropped' is not final and has no transition out of it" in str(p) for p in info.value.problems)


def test_the_same_workflow_version_twice_is_refused(tmp_path: Path) -> None:
    simple = Path(__file__).parent / "workflows" / "simple.yaml"
    (tmp_path / "a.yaml").write_text(simple.read_text())
    (tmp_path / "b.yaml").write_text(simple.read_text())
    with pytest.raises(DefinitionError, match="version 1 is also in"):
        Catalogue.from_folder(tmp_path)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_values)
def test_random_yaml_never_crashes_the_loader(value: object) -> None:
    text = yaml.safe_dump(value)
    try:
        load_text(text, "random.yaml")
    except DefinitionError as exc:
        assert exc.problems


@settings(max_examples=100)
@given(st.text(max_size=200))
def test_random_text_never_crashes_the_loader(text: str) -> None:
    try:
        load_text(text, "random.yaml")
    except DefinitionError as exc:
        assert exc.problems


def test_aliases_are_refused_so_a_small_file_cannot_expand_or_refer_to_itself() -> None:
    laughs = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level, previous in zip("bcdefghi", "abcdefgh", strict=True):
        laughs += f"{level}: &{level} [{', '.join([f'*{previous}'] * 9)}]\n"
    for text in (laughs, "name: &x [*x]\n", "name: simple\nversion: &v 1\ntitle: *v\n"):
        with pytest.raises(DefinitionError) as refused:
            load_text(text, "aliases.yaml")
        assert [p.message for p in refused.value.problems if "alias" in p.message] == [
            "aliases (*name) are not allowed: write the value out"
        ]
