"""What the command-line walks share: a config on a fresh database, a runner that checks exit codes
(and that a refusal is one line with no traceback), and readers of `ehcp case show --json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from engine.cli import app
from engine.store.database import initialise

ROOT = Path(__file__).resolve().parent.parent


def walk_config(tmp_path: Path, name: str = "walk", **settings: Any) -> Path:
    """The project's config.yaml on a new SQLite file in ``tmp_path`` (made as 'ehcp db init' makes it)."""
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["database_url"] = f"sqlite:///{tmp_path / f'{name}.sqlite'}"
    data["workflows_dir"] = str(ROOT / "workflows")
    data.update(settings)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    initialise(data["database_url"])  # no command makes a database by itself
    return path


class Cli:
    def __init__(self, config: Path):
        self.config = config

    def __call__(self, *args: str, ok: bool = True) -> str:
        result = CliRunner().invoke(app, ["--config", str(self.config), *args])
        if ok:
            assert result.exit_code == 0, f"{args}: {result.stderr or result.stdout}"
            return result.stdout
        assert result.exit_code == 1, f"{args} should have been refused: {result.stdout}"
        assert "Traceback" not in result.stderr + result.stdout
        return result.stderr

    def acting_as(self, staff_id: str) -> Cli:
        """The same configuration with every operating-system account mapped to ``staff_id``: the
        command line as another member of staff's account would run it."""
        data = yaml.safe_load(self.config.read_text())
        data["accounts"] = {"*": staff_id}
        path = self.config.with_name(f"config-{staff_id}.yaml")
        path.write_text(yaml.safe_dump(data))
        return Cli(path)

    def fire(self, case: int, trigger: str, on: str, *sets: str, workflow: str | None = None, ok: bool = True) -> str:
        args = ["case", "fire", str(case), trigger, "--on", on]
        for s in sets:
            args += ["--set", s]
        if workflow:
            args += ["--workflow", workflow]
        return self(*args, ok=ok)

    def show(self, case: int, as_of: str = "2030-01-01") -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self("case", "show", str(case), "--json", "--as-of", as_of))
        return data


def deadlines(view: dict[str, Any], workflow: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """name -> [(due, status), ...] in the order they were opened."""
    out: dict[str, list[tuple[str, str]]] = {}
    for d in sorted(view["deadlines"], key=lambda d: (d["starts"], d["due"])):
        if workflow is None or d["workflow"] == workflow:
            out.setdefault(d["name"], []).append((d["due"], d["status"]))
    return out


def states(view: dict[str, Any]) -> list[tuple[str, str, bool]]:
    return [(w["workflow"], w["state"], w["closed"] is not None) for w in view["workflows"]]


def steps(view: dict[str, Any], workflow: str) -> list[tuple[str, str, str]]:
    return [(h["on"], h["trigger"], h["to"]) for h in view["history"] if h["workflow"] == workflow]


def open_case(cli: Cli, on: str, *sets: str, dob: str = "2015-02-03", workflow: str = "needs_assessment") -> int:
    args = ["case", "open", "--name", "Generated Child", "--dob", dob, "--on", on, "--workflow", workflow]
    args += ["--contact", "parent:Generated Parent:parent@example.org", "--caseworker", "casey.demo"]
    for s in sets:
        args += ["--set", s]
    return int(cli(*args).strip())
