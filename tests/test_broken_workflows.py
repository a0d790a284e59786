"""One broken workflow file does not stop the service: the other workflows load, a case on the broken
one runs on the text of its version kept in the database, and every command says what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from conftest import ROOT
from typer.testing import CliRunner

from engine.cli import app
from engine.store.database import initialise


def _cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_broken_file_is_reported_and_cases_carry_on_on_their_stored_version(tmp_path: Path) -> None:
    workflows = tmp_path / "workflows"
    shutil.copytree(ROOT / "workflows", workflows)
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["database_url"] = f"sqlite:///{tmp_path / 'w.sqlite'}"
    data["workflows_dir"] = str(workflows)
    data["templates_dir"] = str(ROOT / "templates")
    data["notifications"]["outbox_dir"] = str(tmp_path / "outbox")
    data["documents_dir"] = str(tmp_path / "documents")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    initialise(data["database_url"])
    opening = ["case", "open", "--name", "Generated Child", "--dob", "2016-04-04", "--caseworker", "casey.demo"]
    code, out, err = _cli(config, *opening, "--on", "2025-01-06")
    assert code == 0, err
    case = out.strip()
    code, out, err = _cli(config, *opening, "--workflow", "annual_review", "--set", "period_starts_on=2025-01-06")
    other = out.strip()
    # Someone saves a broken edit of the needs assessment.
    broken = workflows / "needs_assessment.yaml"
    broken.write_text(broken.read_text().replace("initial: request_received", "initial: [request_received"))
    code, out, err = _cli(config, "workflows", "check")
    assert code == 1 and "needs_assessment.yaml" in out + err
    # The case on it shows and moves on, on the version kept with it; the command warns once.
    code, out, err = _cli(config, "case", "show", case)
    assert code == 0 and "Decide whether to assess" in out
    assert err.count("warning:") == 1 and "needs_assessment.yaml" in err and "Traceback" not in err
    code, out, err = _cli(config, "case", "fire", case, "agree_to_assess", "--on", "2025-02-10")
    assert code == 0, err
    assert "request_received -> assessing" in out
    # Cases on other workflows, and the sweep, are not stopped.
    code, out, err = _cli(config, "case", "fire", other, "arrange_meeting", "--set", "meeting_on=2025-12-01")
    assert code == 0, err
    code, out, err = _cli(config, "tick", "--as-of", "2025-03-01")
    assert code == 0 and "warning:" in err
    # A new case cannot start on the broken workflow, and is told why.
    code, out, err = _cli(config, *opening)
    assert code == 1 and "no workflow called 'needs_assessment'" in err and "warning:" in err
