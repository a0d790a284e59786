"""The README's tour of the command line, run exactly as written (one command a line), on a fresh
database beside a copy of the project's config: each command succeeds, and those the README says
are refused are refused with one line. `ehcp scheduler run` (which runs until stopped) is left out."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from engine.cli import app


def tour() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## A short tour of the command line", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines, pending = [], ""
    for raw in block.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def test_the_tour_has_the_commands_a_caseworker_uses() -> None:
    joined = "\n".join(tour())
    for needed in ("case open", "case fire", "case correct", "case show", "due", "tick", "docs render"):
        assert needed in joined


def test_the_readme_tour_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    for folder in ("workflows", "templates"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copytree(ROOT / "docs" / "examples", tmp_path / "docs" / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EHCP_CONFIG", str(tmp_path / "config.yaml"))
    runner = CliRunner()
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    variables: dict[str, str] = {}
    for line in tour():
        command, _, comment = line.partition(" #")
        if command.startswith("ehcp scheduler run"):
            continue  # runs until stopped
        target = None
        assignment = re.match(r"^(\w+)=\$\((.*)\)$", command.strip())
        if assignment:
            target, command = assignment.group(1), assignment.group(2)
        for name, value in variables.items():
            command = command.replace(f"${name}", value)
        args = shlex.split(command)
        assert args[0] == "ehcp", line
        result = runner.invoke(app, args[1:])
        refused = "refused" in comment
        expected = 1 if refused or comment.strip().startswith("exit 1") else 0
        assert result.exit_code == expected, f"{line}\n{result.stdout}{result.stderr}"
        assert "Traceback" not in result.stdout + result.stderr, line
        if refused:
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        if target:
            variables[target] = result.stdout.strip()
    assert (tmp_path / "draft.pdf").exists() and (tmp_path / "guide" / "guide.html").exists()
