"""The caseworker's guide written from the YAML, and the phase-transfer arithmetic."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from engine import phases
from engine.catalogue import Catalogue
from engine.cli import app

ROOT = Path(__file__).resolve().parent.parent


def test_the_guide_has_every_stage_limit_and_source_and_a_diagram_of_each_workflow(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["workflows_dir"] = str(ROOT / "workflows")
    data["database_url"] = f"sqlite:///{tmp_path / 'g.sqlite'}"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "guide"
    result = CliRunner().invoke(app, ["--config", str(config), "workflows", "guide", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    md = (out / "guide.md").read_text()
    html = (out / "guide.html").read_text()
    catalogue = Catalogue.from_folder(ROOT / "workflows")
    for name in catalogue.names():
        d = catalogue.latest(name)
        assert f"## {d.title}" in md
        for state, spec in d.states.items():
            assert f"#### {state}" in md
            assert " ".join(spec.description.split()) in md
        for limit in d.deadlines:
            assert limit.source in md and limit.title in md
        svg = (out / "diagrams" / f"{name}.svg").read_text()
        root = ET.fromstring(svg)  # well-formed
        assert root.tag.endswith("svg") and all(s in svg for s in d.states)
        assert (out / "diagrams" / f"{name}.mmd").read_text().startswith("stateDiagram-v2")
    # The process reads in order, and the numbers a caseworker needs are there in words.
    assert md.index("## EHC needs assessment") < md.index("## Annual review") < md.index("## Ceasing")
    assert "| Issue the final EHC plan | 20 weeks from request_received_on | statutory | the council |" in md
    assert "15 February in the calendar year of transfer_on" in md
    assert "the later of 2 months from decision_sent_on and 1 month from certificate_issued_on" in md
    assert "**review_period_from** = `decision_sent_on`" in md

    class Check(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []
            self.svgs = 0

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag not in ("meta", "path", "rect", "line", "br", "marker", "defs", "text", "style"):
                self.stack.append(tag)
            self.svgs += tag == "svg"

        def handle_endtag(self, tag: str) -> None:
            if self.stack and self.stack[-1] == tag:
                self.stack.pop()

    check = Check()
    check.feed(html)
    assert check.svgs == len(catalogue.names())
    assert "<table>" in html and "SEND Regulations 2014 reg 13(2)" in html


@pytest.mark.parametrize(
    ("born", "year", "group"),
    [
        (date(2015, 2, 3), 2019, 0),  # rules s.5: Reception September 2019
        (date(2015, 2, 3), 2025, 6),
        (date(2014, 9, 1), 2025, 6),  # the first day of the cohort
        (date(2015, 8, 31), 2025, 6),  # the last day
        (date(2015, 9, 1), 2025, 5),
        (date(2016, 2, 29), 2025, 5),  # a leap-day birthday is an ordinary cohort member (born 2015/16)
    ],
)
def test_year_groups_follow_the_academic_year(born: date, year: int, group: int) -> None:
    assert phases.year_group(born, year) == group


def test_transfers_and_their_reg_18_dates() -> None:
    born = date(2015, 2, 3)
    secondary = phases.transfer_in(born, 2025)
    assert secondary == phases.Transfer("primary_to_secondary", date(2026, 9, 1), 6, date(2026, 2, 15))
    post16 = phases.transfer_in(born, 2030)
    assert post16 == phases.Transfer("secondary_to_post16", date(2031, 9, 1), 11, date(2031, 3, 31))
    assert phases.transfer_in(born, 2026) is None
    assert phases.transfer_in(born, 2018) == phases.Transfer(
        "early_years_to_school", date(2019, 9, 1), -1, date(2019, 2, 15)
    )
    # Infant to junior only where the council has infant and junior schools.
    assert phases.transfer_in(born, 2021) is None
    assert phases.transfer_in(born, 2021, "infant_junior").kind == "infant_to_junior"  # type: ignore[union-attr]
    assert phases.transfer_in(born, 2023, "three_tier").kind == "primary_to_middle"  # type: ignore[union-attr]
    assert phases.transfer_in(born, 2027, "three_tier").kind == "middle_to_secondary"  # type: ignore[union-attr]
    # A child educated a year behind moves a year later.
    assert phases.transfer_in(born, 2025, offset=-1) is None
    assert phases.transfer_in(born, 2026, offset=-1).kind == "primary_to_secondary"  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["2026/27", "2026", " 2026/2027 "])
def test_academic_years_are_read_as_people_write_them(text: str) -> None:
    assert phases.parse_academic_year(text) == 2026


@pytest.mark.parametrize("text", ["26/27x", "2026/29", "next"])
def test_a_bad_academic_year_says_how_to_write_it(text: str) -> None:
    with pytest.raises(ValueError, match="2026/27"):
        phases.parse_academic_year(text)
