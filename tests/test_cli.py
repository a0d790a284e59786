"""The command line: what a caseworker or a script sees, exit codes and JSON included."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import app
from engine.store.database import initialise

ROOT = Path(__file__).resolve().parent.parent
BROKEN = Path(__file__).resolve().parent / "broken_workflows"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["database_url"] = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    data["workflows_dir"] = str(ROOT / "workflows")
    data["templates_dir"] = str(ROOT / "templates")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    initialise(data["database_url"])  # as 'ehcp db init': no command makes a database by itself
    return path


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def test_workflows_check_accepts_the_shipped_files(config: Path) -> None:
    code, out, _ = run(config, "workflows", "check")
    assert code == 0 and "needs_assessment v1" in out


def test_workflows_check_rejects_a_broken_file_with_file_line_messages(config: Path) -> None:
    code, out, err = run(config, "workflows", "check", str(BROKEN / "mistakes.yaml"))
    assert code == 1
    assert f"{BROKEN / 'mistakes.yaml'}:19: transitions[0].to: unknown state 'wroking'" in err
    assert "Traceback" not in err + out
    code, out, _ = run(config, "workflows", "check", "--json", str(BROKEN))
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert {"file", "line", "field", "message"} <= set(report["problems"][0])


def test_workflows_show_and_diagram(config: Path, tmp_path: Path) -> None:
    code, out, _ = run(config, "workflows", "show", "needs_assessment")
    assert code == 0 and "SEND Regulations 2014 reg 13(2)" in out and "20 weeks" in out
    code, out, _ = run(config, "workflows", "show", "needs_assessment", "--diagram", "-")
    assert code == 0 and out.startswith("stateDiagram-v2") and "request_received --> assessing: agree_to_assess" in out


def test_a_case_is_opened_stepped_and_shown_with_history_and_deadlines(config: Path) -> None:
    code, out, err = run(
        config,
        "case",
        "open",
        "--name",
        "Test Child",
        "--dob",
        "2015-02-03",
        "--workflow",
        "needs_assessment",
        "--on",
        "2025-01-06",
        "--contact",
        "parent:Parent One:parent.one@example.org",
        "--caseworker",
        "casey.demo",
    )
    assert code == 0, err
    case_id = out.strip()
    assert case_id.isdigit()
    code, out, err = run(
        config, "case", "fire", case_id, "agree_to_assess", "--on", "2025-02-10", "--note", "Panel agreed"
    )
    assert code == 0, err
    assert "request_received -> assessing" in out and "due 2025-03-24" in out
    code, out, _ = run(config, "case", "show", case_id, "--json")
    view = json.loads(out)
    assert view["id"] == int(case_id) and view["state"] == "assessing" and view["workflow"] == "needs_assessment"
    assert [h["trigger"] for h in view["history"]] == ["start", "agree_to_assess"]
    assert view["history"][1]["note"] == "Panel agreed" and view["history"][1]["by"] == "casey.demo"
    by_name = {d["name"]: d for d in view["deadlines"]}
    assert by_name["final_plan"] == {
        **by_name["final_plan"],
        "due": "2025-05-26",
        "status": "open",
        "regulation": "SEND Regulations 2014 reg 13(2)",
    }
    assert by_name["decide_whether_to_assess"]["status"] == "met"
    assert view["contacts"] == [
        {
            "role": "parent",
            "name": "Parent One",
            "email": "parent.one@example.org",
            "address": None,
            "prefers": "email",
            "interpreter": None,
            "accessible_format": None,
        }
    ]
    code, out, _ = run(config, "case", "list", "--json")
    assert json.loads(out)[0]["state"] == "assessing"
    code, out, _ = run(config, "due", "--as-of", "2025-05-27", "--json")
    assert [(r["name"], r["due"], r["overdue"]) for r in json.loads(out)] == [
        ("advice", "2025-03-24", True),
        ("notify_not_to_issue", "2025-04-28", True),
        ("final_plan", "2025-05-26", True),
    ]


def test_errors_are_one_clear_line_and_exit_1(config: Path) -> None:
    code, _, err = run(config, "case", "open", "--name", "A", "--dob", "2015-02-03", "--on", "2025-01-06")
    assert code == 1 and "every case needs a caseworker" in err
    code, _, err = run(config, "case", "open", "--name", "A", "--dob", "2015-02-03", "--caseworker", "nobody.here")
    assert code == 1 and "'nobody.here' is not a member of staff" in err
    code, _, err = run(
        config, "case", "open", "--name", "A", "--dob", "2015-02-03", "--caseworker", "casey.demo", "--on", "2099-12-31"
    )
    assert code == 1 and "is after today" in err
    code, out, _ = run(
        config, "case", "open", "--name", "A", "--dob", "2015-02-03", "--on", "2025-01-06", "--caseworker", "casey.demo"
    )
    case_id = out.strip()
    code, _, err = run(config, "case", "fire", case_id, "agree_to_assess", "--on", "2099-12-31")
    assert code == 1 and "2099-12-31 is after today" in err
    code, _, err = run(config, "case", "fire", case_id, "issue_final_plan", "--on", "2025-01-07")
    assert code == 1
    assert err.strip().splitlines() == [
        "error: cannot issue_final_plan in state 'request_received': 'issue_final_plan' is not possible from "
        "'request_received'; allowed now: agree_to_assess, refuse_to_assess, withdraw_request, move_out_of_area"
    ]
    code, _, err = run(config, "case", "fire", case_id, "refuse_to_assess", "--on", "2025-01-07")
    assert code == 1 and "input 'reasons' is required" in err
    code, _, err = run(config, "case", "fire", case_id, "agree_to_assess", "--by", "intruder")
    assert code == 1 and err.strip() == (
        "error: --by is for an administrator recording a step on someone's behalf; you are casey.demo (caseworker)"
    )
    code, _, err = run(config, "case", "show", "999")
    assert code == 1 and err.strip() == "error: no case 999"
    code, _, err = run(config, "case", "open", "--name", "A", "--dob", "2015-13-01")
    assert code == 1 and "--dob: '2015-13-01' is not a date" in err


def test_bad_usage_exits_2(config: Path) -> None:
    code, _, _ = run(config, "case", "fire")
    assert code == 2


def test_the_installed_command_runs(config: Path) -> None:
    exe = shutil.which("ehcp")
    if exe is None:
        pytest.skip("the ehcp script is not on PATH (install the project first)")
    out = subprocess.run([exe, "--config", str(config), "workflows", "check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_the_demo_caseload_covers_every_stage_of_every_workflow(config: Path) -> None:
    code, out, err = run(config, "demo", "--as-of", "2026-11-24")
    assert code == 0, err
    assert "seeded" in out and "late" in out  # some cases are overdue
    code, out, _ = run(config, "case", "list", "--json")
    seen = {(r["workflow"], r["state"]) for r in json.loads(out)}
    code, listed, _ = run(config, "workflows", "list", "--json")
    for w in json.loads(listed):
        code, shown, _ = run(config, "workflows", "show", w["name"], "--json")
        for state in json.loads(shown)["states"]:
            assert (w["name"], state) in seen, f"no demo case in {w['name']}: {state}"
    # Seeding again changes nothing.
    code, out, _ = run(config, "demo", "--as-of", "2026-11-24")
    assert "already has cases" in out
