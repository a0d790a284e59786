"""Hostile input (issue 16, part 5). The shipped workflow files mutated at random, and YAML written to
break a reader (tags, billion laughs, values Python cannot build), in workflow files and plan files:
the answer is a list of problems with file and line, never a crash, and no tag runs anything. Names,
notes, reasons, plan text and a family's words carrying markup, template syntax and line breaks,
followed into emails (no header injection), letters, web pages, PDFs and the SEN2 return: each comes
out as the text it is, or is refused.

What other files already prove is not repeated: random YAML and random text given to the loader, and
aliases in a workflow file (tests/test_definition.py); a section written twice or an alias in a plan
file (tests/test_casework.py); line breaks and control characters refused in names, notes, reasons,
addresses and plan sections (tests/test_casework.py); markup, a CSS-breaking name and a url() in every
kind of document, fetching nothing (tests/test_hostile_documents.py); names and decisions kept out of
subjects and previews template by template (tests/test_message_privacy.py); a noncharacter in a name
in the SEN2 return (tests/test_sen2.py).

These tests found seven defects, each fixed with them: values YAML types but Python cannot build
(2025-02-30, "!!int one", a 5,000-digit number), tags and merge keys on keys, tags on lists and
mappings silently dropped, a list where a name belongs, files that are not UTF-8, characters YAML
refuses reported without a line, and an email address ending in a line break.
"""

from __future__ import annotations

import json
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyotp
import pytest
import yaml
from conftest import CW, ROOT, STAFF, documents_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader
from servers import SmtpServer
from test_delivery import settings as delivery_settings
from typer.testing import CliRunner

from engine import sen2
from engine.app import App
from engine.cli import app as cli
from engine.clock import FixedClock
from engine.config import Council, WebSettings
from engine.definition.load import load_text
from engine.errors import DefinitionError, InvalidInput, NotFound, Problem
from engine.portal import Portal
from engine.sen2_return import build, check, to_xml
from engine.store.repository import ContactRecord
from engine.web.accounts import Accounts
from engine.web.views import create_app

SHIPPED = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "workflows").glob("*.yaml"))}
CEASE = SHIPPED["cease.yaml"]

# The values that go everywhere below. Template syntax of Jinja ({{ }}, {% %}) and of JavaScript and
# shell (${}) must come out as typed: 7*7777 is 54439, which no page, letter or return otherwise holds.
SUM = "54439"
CHILD = "Zoë <script>pwn()</script> {{ 7*7777 }} {% raw %} ${x} </style>"
PARENT = 'Eve "Boss" <evil@attacker.example>, Bcc: spy@attacker.example'
POSTED = "Letter <b>Parent</b> {{ 7*7777 }}"
ADDRESS = "1 <i>Road</i>\n${x} {{ 7*7777 }}\nDT1 1AA"
REASONS = "<script>pwn()</script>\r\nBcc: spy@attacker.example\r\nSubject: {{ 7*7777 }} {% raw %} ${x}"
STEP = 'no_such_step<ehcp-pwn onclick="pwn()">{{ 7*7777 }}'  # a step's name is part of its address
MARKUP = '</textarea></style><ehcp-pwn onclick="pwn()">{{ 7*7777 }} {% raw %} ${x}</ehcp-pwn>'


# -- 1. the workflow loader, given mutated shipped files -------------------------------------------

# "key: value" on one line (a mapping's item, or the first key of a list item): the value can be swapped.
_VALUE = re.compile(r"^(\s*(?:- )?[^\s:#'\"][^:#]*:) +(\S.*)$")
# What a person could type or paste: no control characters and no lone surrogates or U+FFFE/U+FFFF,
# which no editor writes (those are tried on their own below).
_TYPED = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff")
_INJECTED = _TYPED
# Scalars as mistyped, or as YAML 1.1 reads them differently from how they look.
_WORDS = [
    "yes", "no", "on", "off", "~", "null", "true", "False", ".inf", "-.nan", "0x1F", "0o17", "1_000", "1e400",
    "12:30:00", "''", '""', "|", ">-", "&anchor x", "*undefined", "!custom x", "!!str 5", "!!binary ###",
    "!!python/name:os.system", "%TAG", "@x", "`x", "- x", "? x", "#", "'unclosed", '"\\q"', "{{ 7*7777 }}",
]  # fmt: skip
SCALARS = st.one_of(
    st.sampled_from(_WORDS),
    st.integers().map(str),
    st.floats().map(repr),
    st.dates().map(date.isoformat),
    st.text(max_size=20).map(json.dumps),
    st.text(_TYPED, max_size=20),
)
# A list or mapping where the file has a scalar (a name, a trigger, a state).
COLLECTIONS = st.sampled_from(["[x]", "[[x]]", "{a: b}", "[{a: [b]}]", "[]", "{}"])
MUTATIONS = ("delete", "duplicate", "swap", "value", "truncate", "inject", "indent")


@st.composite
def mutated(draw: Any, values: Any = SCALARS, kinds: tuple[str, ...] = MUTATIONS, most: int = 4) -> tuple[str, str]:
    """A shipped workflow file after one to ``most`` mutations: (file name, text)."""
    name = draw(st.sampled_from(sorted(SHIPPED)))
    lines = SHIPPED[name].split("\n")
    for _ in range(draw(st.integers(1, most))):
        if not lines:
            break
        kind = draw(st.sampled_from(kinds))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "value":
            found = [k for k, line in enumerate(lines) if _VALUE.match(line)]
            if found:
                k = draw(st.sampled_from(found))
                lines[k] = f"{_VALUE.match(lines[k]).group(1)} {draw(values)}"  # type: ignore[union-attr]
        elif kind == "truncate":
            text = "\n".join(lines)
            lines = text[: draw(st.integers(0, len(text)))].split("\n")
        elif kind == "inject":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.text(_INJECTED, min_size=1, max_size=6)) + lines[i][at:]
        else:  # indent: one line moved in or out, or its spaces made tabs
            body = lines[i].lstrip(" ")
            n = len(lines[i]) - len(body)
            shift = draw(st.sampled_from([n + 1, n + 2, max(n - 1, 0), max(n - 2, 0), 0, -1]))
            lines[i] = ("\t" * (n // 2) if shift < 0 else " " * shift) + body
    return name, "\n".join(lines)


FILE_LEVEL = ("not valid YAML", "the file is empty", "the file has no workflow", "a workflow file is a mapping")


def assert_located(problems: list[Problem], file: str, text: str, fields: bool = True) -> None:
    """Every problem names ``file``, a line within it, and (``fields``) the field or that it is about the
    whole file. A key that cannot be read or a tag on the whole document has no field to name."""
    assert problems
    last = len(text.splitlines()) + 1
    for p in problems:
        assert p.file == file, p
        assert isinstance(p.line, int) and 1 <= p.line <= last, f"{p!r} (the file has {last - 1} lines)"
        assert str(p).startswith(f"{file}:{p.line}: "), p
        assert p.message.strip(), p
        assert p.field or p.message.startswith(FILE_LEVEL) or not fields, p


def load_or_problems(text: str, file: str) -> list[Problem]:
    """The problems of ``text`` (none if it loads); any other exception escapes, failing the test."""
    try:
        load_text(text, file)
    except DefinitionError as exc:
        return exc.problems
    return []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_a_mutated_workflow_file_gets_problems_naming_file_line_and_field_never_a_crash(case: tuple[str, str]) -> None:
    name, text = case
    problems = load_or_problems(text, f"workflows/{name}")
    if problems:
        assert_located(problems, f"workflows/{name}", text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(COLLECTIONS, kinds=("value",), most=1))
def test_a_list_or_mapping_in_place_of_a_value_gets_problems_never_a_crash(case: tuple[str, str]) -> None:
    name, text = case
    problems = load_or_problems(text, f"workflows/{name}")
    if problems:
        assert_located(problems, f"workflows/{name}", text)


def edited(text: str, line: int, old: str, new: str) -> str:
    """``text`` with ``old`` replaced by ``new`` on ``line`` (1-based), which must hold it."""
    lines = text.split("\n")
    assert old in lines[line - 1], (line, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("line", "old", "new"),
    [
        pytest.param(6, "title: ", "title: !!binary ", id="base64-that-is-not"),  # the way it should be
        pytest.param(
            5, "version: 1", "version: !!int one", id="int-tag-on-a-word",
        ),
        pytest.param(
            5, "version: 1", "version: !!float one", id="float-tag-on-a-word",
        ),
        pytest.param(
            30, "default: false", "default: !!bool maybe", id="bool-tag-on-a-word",
        ),
        pytest.param(
            6, "title: ", "title: !!timestamp ", id="timestamp-tag-on-words",
        ),
        pytest.param(
            6, "title: Ceasing to maintain an EHC plan", "title: 2025-02-30", id="impossible-date",
        ),
        pytest.param(
            5, "version: 1", "version: " + "9" * 5000, id="integer-of-5000-digits",
        ),
        pytest.param(
            19, "type: choice", "<<: {type: choice}", id="merge-key",
        ),
        pytest.param(
            6, "title: Ceasing to maintain an EHC plan", "? {[a]: 1}\n: x\ntitle: x", id="unhashable-key-in-a-key",
        ),
        pytest.param(
            228, "- name: cease_decision", "- name: [cease_decision]", id="deadline-named-by-a-list",
        ),
    ],
)  # fmt: skip
def test_a_value_the_loader_cannot_take_is_a_problem_on_its_line(line: int, old: str, new: str) -> None:
    text = edited(CEASE, line, old, new)
    problems = load_or_problems(text, "workflows/cease.yaml")
    assert any(p.line == line for p in problems), problems
    assert_located(problems, "workflows/cease.yaml", text, fields=False)


@pytest.mark.parametrize(
    ("line", "old", "new"),
    [
        pytest.param(6, "title: ", "title: !custom ", id="custom-tag-on-a-value"),
        pytest.param(6, "title: Ceasing to maintain an EHC plan", "title: !!python/name:os.system", id="python-name"),
        pytest.param(
            6, "title:", "!custom title:", id="custom-tag-on-a-key",
        ),
        pytest.param(
            21, "options: [", 'options: !!python/object/apply:os.system ["touch {marker}", ', id="python-on-a-list",
        ),
        pytest.param(
            39, "states:", "states: !custom", id="custom-tag-on-a-mapping",
        ),
        pytest.param(
            4, "name: cease", "--- !!python/object/new:os.system\nname: cease", id="python-tag-on-the-document",
        ),
    ],
)  # fmt: skip
def test_a_tag_in_a_workflow_file_is_refused_on_its_line(line: int, old: str, new: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = edited(CEASE, line, old, new.replace("{marker}", str(marker)))
    problems = load_or_problems(text, "workflows/cease.yaml")
    assert not marker.exists()
    assert any(p.line == line and "tag" in p.message for p in problems), problems
    assert_located(problems, "workflows/cease.yaml", text, fields=False)


PYTHON_TAGS = [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/new:os.system ["touch {marker}"]',
    '!!python/object/apply:subprocess.check_call [["touch", "{marker}"]]',
    "!!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path [{marker}]]",
    '!!python/object:__main__.Anything {a: "touch {marker}"}',
    "!!python/module:os",
    "!!python/name:os.system",
]


def test_no_tag_in_a_workflow_or_plan_file_runs_anything(tmp_path: Path) -> None:
    """Whatever the loader answers (a problem, or a crash pinned above), a Python tag never runs: in
    the place of a value, a list item, a key, or the whole document."""
    from engine.definition.source import read_yaml

    marker = tmp_path / "ran"
    answers: set[str] = set()
    for tag in PYTHON_TAGS:
        tag = tag.replace("{marker}", str(marker))
        for text in (
            edited(CEASE, 6, "title: Ceasing to maintain an EHC plan", f"title: {tag}"),
            edited(CEASE, 21, "options: [", f"options: [{tag}, "),
            edited(CEASE, 6, "title:", f"? {tag}\n: x\ntitle:"),
            f"--- {tag}\n" + CEASE,
            f"F: {tag}\n",
        ):
            for reader in (lambda t: load_text(t, "hostile.yaml"), lambda t: read_yaml(t, "plan.yaml")):
                try:
                    reader(text)
                except Exception as exc:  # a crash is pinned by the tests above; here only running counts
                    answers.add(type(exc).__name__)
                assert not marker.exists(), (tag, text[:80])
    assert "DefinitionError" in answers  # the texts were read, and refused


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b", "\ufffe"])
def test_a_character_yaml_refuses_is_a_problem_on_its_line(character: str) -> None:
    text = edited(CEASE, 6, "title: Ceasing", f"title: Ceasing{character}")
    problems = load_or_problems(text, "workflows/cease.yaml")
    assert [p.line for p in problems] == [6], problems


def workflows_check(*args: str) -> Any:
    return CliRunner().invoke(cli, ["workflows", "check", "--json", *args])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_workflows_check_lists_a_mutated_files_problems_with_lines_and_the_others_as_ok(case: tuple[str, str]) -> None:
    name, text = case
    with tempfile.TemporaryDirectory() as folder:
        for other, original in SHIPPED.items():
            (Path(folder) / other).write_text(text if other == name else original, encoding="utf-8")
        result = workflows_check(folder)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        answer = json.loads(result.stdout)
        loaded = {Path(w["file"]).name for w in answer["workflows"]}
        assert loaded >= set(SHIPPED) - {name}
        assert result.exit_code == (0 if answer["ok"] else 1)
        for p in answer["problems"]:
            assert p["file"] == str(Path(folder) / name)
            assert isinstance(p["line"], int) and 1 <= p["line"] <= len(text.splitlines()) + 1, p
            assert p["message"]


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_a_workflow_file_that_is_not_utf8_is_a_problem_naming_the_file(encoding: str, tmp_path: Path) -> None:
    path = tmp_path / "cease.yaml"
    path.write_bytes(edited(CEASE, 6, "title: Ceasing", "title: Cessation é").encode(encoding))
    result = workflows_check(str(path))
    assert isinstance(result.exception, SystemExit), result.exception
    answer = json.loads(result.stdout)
    assert result.exit_code == 1 and answer["problems"]
    assert all(p["file"] == str(path) for p in answer["problems"])


# -- 2. plan files: ehcp plan edit --from FILE ------------------------------------------------------


def billion_laughs(key: str) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level, previous in zip("bcdefghi", "abcdefgh", strict=True):
        text += f"{level}: &{level} [{', '.join([f'*{previous}'] * 9)}]\n"
    return text + f"{key}: *i\n"


@pytest.fixture
def plan_cli(core: App, tmp_path: Path) -> Iterator[tuple[App, int, Any]]:
    """A case being assessed, and ``ehcp plan edit CASE --from FILE`` on the same database."""
    case = core.cases.open_case(
        name="Alex Example", date_of_birth=date(2016, 4, 1), workflow="needs_assessment", actor=CW, caseworker="cw"
    ).case_id
    core.cases.fire(case, "agree_to_assess", actor=CW)
    config = tmp_path / "plan-config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": core.settings.database_url,
                "workflows_dir": str(ROOT / "workflows"),
                "templates_dir": str(ROOT / "templates"),
                "documents_dir": str(tmp_path / "documents"),
                "staff": [s.model_dump() for s in STAFF],
                "accounts": {"*": "cw"},
            }
        )
    )

    def edit(path: Path) -> Any:
        return CliRunner().invoke(cli, ["--config", str(config), "plan", "edit", str(case), "--from", str(path)])

    yield core, case, edit


@pytest.mark.parametrize(
    ("content", "says"),  # says: a pattern the error on stderr matches
    [
        pytest.param(billion_laughs("F"), r"aliases \(\*name\) are not allowed", id="billion-laughs"),
        pytest.param("B: needs\nF: !custom text\n", "tag '!custom'", id="custom-tag-on-a-value"),
        pytest.param('F: !!python/object/apply:os.system ["touch {marker}"]\n', "mapping of section letters|tag",
                     id="python-apply-on-a-value"),
        pytest.param(b"F: Cessation \xe9\n", "cannot read it", id="not-utf8"),
        pytest.param("B: needs\n!custom F: text\n", "tag '!custom'", id="custom-tag-on-a-key"),
        pytest.param("--- !!python/object/new:os.system\nF: text\n", "tag", id="python-tag-on-the-document"),
        pytest.param("B: needs\nF: 2025-02-30\n", "F", id="impossible-date"),
    ],
)  # fmt: skip
def test_a_hostile_plan_file_is_refused_without_a_traceback_and_the_plan_is_unchanged(
    plan_cli: tuple[App, int, Any], content: str | bytes, says: str, tmp_path: Path
) -> None:
    core, case, edit = plan_cli
    marker = tmp_path / "ran"
    path = tmp_path / "sections.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content.replace("{marker}", str(marker)), encoding="utf-8")
    result = edit(path)
    assert not marker.exists()
    assert isinstance(result.exception, SystemExit), result.exception  # refused, not a traceback
    assert result.exit_code == 1 and str(path) in result.stderr and re.search(says, result.stderr), result.stderr
    with pytest.raises(NotFound):
        core.plans.get(case, actor=CW)
    # The same command with a plain file writes the plan: the refusal was the file's.
    path.write_text("B: Generated needs.\nF: Generated provision.\n", encoding="utf-8")
    assert edit(path).exit_code == 0
    assert core.plans.get(case, actor=CW).sections["F"].strip() == "Generated provision."


# -- 3. emails and letters --------------------------------------------------------------------------

ALLOWED_HEADERS = {"From", "To", "Subject", "Date", "Message-ID", "Reply-To", "X-EHCP-Key", "MIME-Version",
                   "Content-Type"}  # fmt: skip
NAME_PARTS = ("Zoë", "pwn", "7777", "{%", "${x}", "</", "<b>", "Eve", "Boss", "attacker", "Bcc")


class Tags(HTMLParser):
    """The elements of a page, and its text as a reader sees it (attribute values included)."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.parts: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.parts += [v for _, v in attrs if v]

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def words(text: str) -> str:
    return " ".join(text.split())


def test_hostile_names_and_reasons_reach_no_header_and_are_text_in_emails_and_letters(
    database_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    clock = FixedClock(date(2026, 1, 5))
    app = App(delivery_settings(database_url, tmp_path / "outbox", smtp_server.port), clock, create=True)
    case = app.cases.open_case(
        name=CHILD, date_of_birth=date(2016, 4, 1), workflow="needs_assessment", actor=CW, caseworker="cw",
        inputs={"request_received_on": clock.today()},
        contacts=[ContactRecord("parent", PARENT, "p@example.org"),
                  ContactRecord("parent", POSTED, None, address=ADDRESS)],
    ).case_id  # fmt: skip
    app.dispatcher().dispatch()
    # Six weeks on with no decision (reg 4(1)): the sweep's reminder, breach and escalation to staff.
    clock.set(date(2026, 2, 18))
    app.sweeper.sweep()
    app.dispatcher().dispatch()
    staff = [r for r in smtp_server.handler.received if "p@example.org" not in r.rcpt_tos]
    assert staff, "no reminder or escalation was sent"
    for received in staff:
        assert CHILD in received.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    app.cases.fire(case, "refuse_to_assess", actor=CW, inputs={"reasons": REASONS}, note=REASONS)
    app.dispatcher().dispatch()
    family = [r for r in smtp_server.handler.received if "p@example.org" in r.rcpt_tos]
    assert len(family) == 2, [r.message["Subject"] for r in smtp_server.handler.received]
    for received in smtp_server.handler.received:
        message: EmailMessage = received.message
        assert len(received.rcpt_tos) == 1  # no name added a recipient
        assert set(message.keys()) <= ALLOWED_HEADERS, message.keys()
        assert re.search(rf"\b[Cc]ase {case}\b", str(message["Subject"])), message["Subject"]  # its number
        for header, value in message.items():
            assert "\r" not in str(value) and "\n" not in str(value), header
            if header != "To":
                assert not any(part in str(value) for part in NAME_PARTS), (header, value)
        (to,) = message["To"].addresses  # one address: the contact's, whatever their name says
        assert to.addr_spec == received.rcpt_tos[0]
    for received in family:
        message = received.message
        assert message["To"].addresses[0].display_name == PARENT
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert CHILD in text and SUM not in text
        page = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        shown = Tags(page)
        assert {tag for tag, _ in shown.tags} <= {"html", "head", "meta", "title", "style", "body", "p", "h1", "br",
                                                   "ul", "li"}, shown.tags  # fmt: skip
        assert words(CHILD) in shown.text and SUM not in page
    refusal = family[1].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Bcc: spy@attacker.example" in refusal  # the reasons, in the body where they belong
    # The contact with no email address gets letters to print: the same values, as text.
    letters = sorted((tmp_path / "outbox" / "letters").glob("*.pdf"))
    assert len(letters) == 2
    for letter in letters:
        reader = PdfReader(str(letter))
        text = words(" ".join(page.extract_text() for page in reader.pages))
        assert POSTED in text and "1 <i>Road</i>" in text and "${x} {{ 7*7777 }}" in text, text
        assert words(CHILD) in text and SUM not in text
        title = str(reader.metadata.title if reader.metadata else "")
        assert title.startswith(f"Case {case}: ") and not any(part in title for part in NAME_PARTS), title
    app.engine.dispose()


def test_every_line_break_and_control_character_in_a_name_is_refused(core: App) -> None:
    """Those that str.splitlines, an email header or a PDF heading treat as a line break, beyond the
    line feed, carriage return and NUL that tests/test_casework.py tries."""
    breaks = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x1b\x7f\x9b\u202e"
    for character in breaks:
        name = f"Alex{character}Bcc: spy@attacker.example"
        with pytest.raises(InvalidInput, match="control character"):
            core.cases.open_case(
                name=name, date_of_birth=date(2016, 4, 1), workflow="needs_assessment", actor=CW, caseworker="cw"
            )
        with pytest.raises(InvalidInput, match="control character"):
            core.cases.open_case(
                name="Alex Example", date_of_birth=date(2016, 4, 1), workflow="needs_assessment", actor=CW,
                caseworker="cw", contacts=[ContactRecord("parent", name, "p@example.org")],
            )  # fmt: skip
    with core.store.unit() as unit:
        assert unit.fetch("SELECT COUNT(*) FROM ehc_case", {})[0][0] == 0


def test_an_email_address_with_a_line_break_is_refused(core: App) -> None:
    with pytest.raises(InvalidInput, match="not an email address"):
        core.cases.open_case(
            name="Alex Example", date_of_birth=date(2016, 4, 1), workflow="needs_assessment", actor=CW,
            caseworker="cw", contacts=[ContactRecord("parent", "Alex Parent", "p@example.org\n")],
        )  # fmt: skip


# -- 4. web pages -------------------------------------------------------------------------------------


def assert_shown_as_text(page: str, *values: str) -> None:
    """No element or attribute came from ``values``, and each is on the page as the text it is."""
    shown = Tags(page)
    assert not [t for t, _ in shown.tags if t == "ehcp-pwn"], "an element from the input"
    assert not [a for _, attrs in shown.tags for a in attrs if a.startswith("on")], "an event handler"
    assert not re.search(r"<script>pwn\(\)", page), "a script from the input"
    assert SUM not in page
    for value in values:
        assert words(value) in shown.text, value


@pytest.fixture
def staff_web(database_url: str, tmp_path: Path) -> Iterator[tuple[App, Any, FixedClock]]:
    """The engine and its web application (Flask's test client, plain http, no CSRF tokens: the browser
    tests check those), and a way to sign the caseworker in by password and code (after the clock has
    moved: a session idles out after 30 minutes)."""
    clock = FixedClock(date(2026, 1, 5))
    core = documents_app(tmp_path, clock, database_url, web=WebSettings(secure_cookies=False))
    flask = create_app(core.settings, clock, engine_app=core)
    flask.config["WTF_CSRF_ENABLED"] = False
    client = flask.test_client()
    secret = Accounts(core.engine, core.directory, clock, core.settings.web).set_password("cw", "a long pass phrase")

    def sign_in() -> Any:
        client.post("/sign-in", data={"login": "cw", "password": "a long pass phrase"})
        signed = client.post("/sign-in/code", data={"code": pyotp.TOTP(secret).at(clock.now())})
        assert signed.status_code == 302 and not signed.headers["Location"].endswith("/sign-in"), signed.data
        return client

    yield core, sign_in, clock
    core.engine.dispose()


def test_names_notes_plan_text_and_a_familys_words_are_text_on_every_page(
    staff_web: tuple[App, Any, FixedClock],
) -> None:
    core, sign_in, clock = staff_web
    case = core.cases.open_case(
        name=CHILD, date_of_birth=date(2016, 4, 1), workflow="needs_assessment", actor=CW, caseworker="cw",
        inputs={"request_received_on": clock.today()},
        contacts=[ContactRecord("parent", PARENT, "parent.web@example.org")],
    ).case_id  # fmt: skip
    clock.set(date(2026, 1, 19))
    core.cases.fire(case, "agree_to_assess", actor=CW, note=MARKUP)
    # A family's own words, sent through the online service (signed in as its link and code would).
    portal = Portal(core)
    with core.store.unit() as unit:
        contact = unit.fetch("SELECT id FROM contact WHERE case_id = :c", {"c": case})[0][0]
    link = portal.demo_link(case, int(contact), "family", actor=CW)
    person = portal.use_link(link.rsplit("/", 1)[1])
    assert person is not None
    (access,) = portal.accesses(person)
    portal.contribute(access, "views", {"about": MARKUP, "own_words": REASONS}, [])
    # The plan's section F, written through its form; search and a refused detail echo what was typed.
    client = sign_in()
    saved = client.post(f"/cases/{case}/plan/F", data={"text": MARKUP})
    assert saved.status_code == 302 and "/plan" in saved.headers["Location"], saved.data
    pages = {
        "cases": client.get("/cases"),
        "search": client.get("/cases", query_string={"q": MARKUP[:90]}),
        "case": client.get(f"/cases/{case}"),
        "plan": client.get(f"/cases/{case}/plan"),
        "section": client.get(f"/cases/{case}/plan/F"),
        "details": client.post(f"/cases/{case}/details", data={"ethnicity": "<ehcp-pwn>", "forename": MARKUP[:99]}),
        "refused": client.post(f"/cases/{case}/workflows/1/steps/{STEP}"),
    }
    expected = {  # the status, and the values each page shows
        "cases": (200, [CHILD]), "search": (200, [MARKUP[:90]]), "case": (200, [CHILD, PARENT, MARKUP, REASONS]),
        "plan": (200, [CHILD, MARKUP]), "section": (200, [MARKUP]), "refused": (409, [STEP]),
        "details": (400, [CHILD, MARKUP[:99], "'<EHCP-PWN>' is not one of"]),  # the code as typed, upper case
    }  # fmt: skip
    for name, response in pages.items():
        status, shown = expected[name]
        assert (response.status_code, response.mimetype) == (status, "text/html"), name
        assert_shown_as_text(response.get_data(as_text=True), *shown)
    api = client.get(f"/api/cases/{case}")
    assert api.mimetype == "application/json" and api.get_json()["name"] == CHILD
    # What the family sees of the case: the child's name, as text.
    family = create_app(core.settings, clock, engine_app=core).test_client()
    token = Accounts(core.engine, core.directory, clock, core.settings.web).start_session(f"portal:{person}", "portal")
    with family.session_transaction() as session:
        session["portal"] = token
    for path in ("/portal/home", f"/portal/cases/{access.public_id}"):
        response = family.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert_shown_as_text(response.get_data(as_text=True), CHILD)


# -- 5. PDFs and the SEN2 return ----------------------------------------------------------------------


def test_template_syntax_in_a_name_plan_and_reasons_is_printed_as_typed_in_pdfs(tmp_path: Path) -> None:
    """tests/test_hostile_documents.py renders every kind with markup and a CSS-breaking name; this adds
    template syntax of Jinja, JavaScript and shells, which must never be evaluated."""
    clock = FixedClock(date(2026, 1, 5))
    app = documents_app(tmp_path, clock)
    case = app.cases.open_case(
        name=CHILD, date_of_birth=date(2016, 4, 1), workflow="needs_assessment", actor=CW, caseworker="cw",
        contacts=[ContactRecord("parent", POSTED, "p@example.org")],
    ).case_id  # fmt: skip
    clock.set(date(2026, 1, 19))
    app.cases.fire(case, "agree_to_assess", actor=CW)
    sections = {s: f"Section {s}: {MARKUP} **{{{{ 7*7777 }}}}**" for s in ("A", "B", "E", "F", "I", "K")}
    app.plans.edit(case, sections, actor=CW)
    record, _ = app.documents.render(case, "draft-plan", actor=CW, version=1)
    text = words(" ".join(page.extract_text() for page in PdfReader(record.path).pages))
    assert words(CHILD) in text and words(MARKUP) in text and "{{ 7*7777 }}" in text, text
    assert SUM not in text
    refused = app.cases.open_case(
        name=CHILD, date_of_birth=date(2016, 4, 1), workflow="needs_assessment", actor=CW, caseworker="cw"
    ).case_id
    app.cases.fire(refused, "refuse_to_assess", actor=CW, inputs={"reasons": REASONS}, note=REASONS)
    letter, _ = app.documents.render(refused, "decision-letter", decision="not-to-assess", actor=CW)
    text = words(" ".join(page.extract_text() for page in PdfReader(letter.path).pages))
    assert words(CHILD) in text and words(REASONS) in text and SUM not in text, text
    app.engine.dispose()


def test_a_sen2_return_with_markup_in_names_stays_well_formed_and_keeps_each_name(
    core: App, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    council = Council(la_code="999", designated_officers={"dmo": "Y", "dco": "Y", "dsco": "N"})
    monkeypatch.setattr(core, "settings", core.settings.model_copy(update={"council": council}))
    # The return's own markup, and a declaration that would expand entities were it read as one.
    split = 'Zoë <!DOCTYPE x [<!ENTITY e "pwn">]> &e; ]]> </Forename><Surname>x O\'Brien-<b>&amp;'
    recorded = {"forename": "</Forename><UPN>A0</UPN>{{ 7*7777 }}", "surname": "&lt; <ehcp-pwn/> ${x}"}
    start = date(2026, 2, 2)
    for name in (split, "Generated Child"):
        clock.set(start)
        case = core.cases.open_case(
            name=name, date_of_birth=date(2016, 3, 1), workflow="needs_assessment", actor=CW, caseworker="cw",
            inputs={"request_received_on": start, "requested_by": "parent"},
        ).case_id  # fmt: skip
        clock.set(start + timedelta(days=30))
        core.cases.fire(case, "refuse_to_assess", actor=CW, inputs={"reasons": REASONS})
        details = {"sex": "F", "ethnicity": "WBRI", "upn_unknown": "UN1", "primary_need": "ASD"}
        sen2.record(core, case, {**details, **(recorded if name != split else {})}, actor=CW)
    reference = date(2027, 1, 21)
    clock.set(reference)
    data = to_xml(build(core, reference))
    assert not [p for p in check(data, 2027) if p.rule == "schema" and p.where == "the file"], check(data, 2027)
    assert b"<!DOCTYPE" not in data and b"<ehcp-pwn" not in data
    people = ET.fromstring(data).findall("Persons/Person")
    assert [(p.findtext("Forename"), p.findtext("Surname")) for p in people] == [
        (split.rpartition(" ")[0], split.rpartition(" ")[2]),
        (recorded["forename"], recorded["surname"]),
    ]
    assert not any(p.find("UPN") is not None for p in people)  # a name cannot add an element
