"""A person's mistake or a service that is down: one line on stderr, exit 2, no traceback, no password.

In-process with CliRunner where output and exit code are the point; as a real process where what
the terminal shows matters (Typer prints its own traceback outside the runner).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import app
from engine.store import database

ROOT = Path(__file__).resolve().parent.parent
REFUSED = "postgresql+psycopg://u:secret@127.0.0.1:1/x"  # port 1 on loopback: connection refused


@pytest.fixture
def config(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["database_url"] = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    data["workflows_dir"] = str(ROOT / "workflows")
    data["templates_dir"] = str(ROOT / "templates")
    data["documents_dir"] = str(tmp_path / "documents")
    data["notifications"]["outbox_dir"] = str(tmp_path / "outbox")
    data["council"]["logo"] = str(ROOT / "docs" / "examples" / "logo.svg")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--config", str(config), *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def one_line(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err and "secret" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nonsense", "error: database_url: 'nonsense' is not a database URL; write sqlite:///"),
        ("nosuchdb://u:secret@h/x", "error: database_url: 'nosuchdb://u:***@h/x': no database driver 'nosuchdb'"),
        (REFUSED, "error: cannot connect to the database at postgresql+psycopg://u:***@127.0.0.1:1/x: "),
    ],
)
@pytest.mark.parametrize("command", [["case", "list"], ["case", "show", "1"], ["due"], ["tick"], ["db", "init"]])
def test_a_bad_or_unreachable_database_is_one_line_and_exit_2(
    config: Path, url: str, expected: str, command: list[str]
) -> None:
    code, out, err = run(config, *command, env={"EHCP_DATABASE_URL": url})
    assert one_line(code, err).startswith(expected)
    assert out == ""


def test_a_mistyped_sqlite_path_creates_nothing_and_says_how_to_create_it(config: Path, tmp_path: Path) -> None:
    typo = tmp_path / "dta" / "cases.sqlite"
    for command in (["case", "list"], ["due"], ["case", "show", "3"], ["tick"], ["db", "status"], ["db", "upgrade"]):
        code, _, err = run(config, *command, env={"EHCP_DATABASE_URL": f"sqlite:///{typo}"})
        assert one_line(code, err) == (
            f"error: no database at {typo}; create it with 'ehcp db init' (or check database_url in config.yaml)"
        )
    assert not typo.exists() and not typo.parent.exists()


def test_db_init_creates_the_database_then_the_commands_work(config: Path, tmp_path: Path) -> None:
    code, out, err = run(config, "db", "init")
    assert code == 0, err
    assert out.strip().startswith(f"created the database at {tmp_path / 'cases.sqlite'} (schema ")
    code, out, err = run(config, "case", "list", "--json")
    assert code == 0 and json.loads(out) == [], err
    code, out, _ = run(config, "db", "init")
    assert code == 0 and "already exists; its schema is up to date" in out


def test_a_database_that_needs_migrating_says_which_command_upgrades_it(config: Path, tmp_path: Path) -> None:
    from engine.store.database import connect, downgrade

    run(config, "db", "init")
    engine = connect(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    downgrade(engine, "0004")
    engine.dispose()
    code, _, err = run(config, "case", "list")
    head = database.head_revision()
    assert one_line(code, err).endswith(f"has schema 0004; the code needs {head}: run 'ehcp db upgrade'")
    code, out, err = run(config, "db", "init")
    assert code == 0 and f"already exists; upgraded its schema from 0004 to {head}" in out, err
    code, _, err = run(config, "case", "list")
    assert code == 0, err


def test_a_bad_configuration_file_is_one_line_and_exit_1_as_before(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("database_url: [unclosed\n")
    code, _, err = run(bad, "case", "list")
    assert code == 1 and err.strip().splitlines() == [f"error: {bad}:2: not valid YAML"]


def test_a_refused_step_is_still_exit_1(config: Path) -> None:
    run(config, "db", "init")
    code, _, err = run(config, "case", "show", "999")
    assert code == 1 and err.strip() == "error: no case 999"


def ehcp(config: Path, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCP_")}
    if url is not None:
        env["EHCP_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_a_real_process_prints_one_line_and_debug_shows_the_traceback(config: Path) -> None:
    plain = ehcp(config, "case", "list", url=REFUSED)
    assert one_line(plain.returncode, plain.stderr).startswith("error: cannot connect to the database at ")
    debug = ehcp(config, "--debug", "case", "list", url=REFUSED)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "Connection refused" in debug.stderr
    assert "secret" not in debug.stderr + debug.stdout  # no local variables in the traceback


def open_case(config: Path) -> None:
    run(config, "db", "init")
    code, _, err = run(
        config,
        "case",
        "open",
        "--name",
        "Test Child",
        "--dob",
        "2015-02-03",
        "--on",
        "2026-01-05",
        "--contact",
        "parent:Parent One:parent.one@example.org",
        "--caseworker",
        "casey.demo",
    )
    assert code == 0, err


def test_tick_says_what_it_did_and_progress_stays_off_standard_output(config: Path) -> None:
    open_case(config)
    code, _, err = run(config, "case", "fire", "1", "agree_to_assess", "--on", "2026-01-12")
    assert code == 0, err
    code, out, err = run(config, "tick", "--as-of", "2026-02-10")
    assert code == 0, err
    first = out.splitlines()[0]  # the decision letter and the notices the step queued
    assert re.fullmatch(r"rendered [1-9]\d* document\(s\)", first)
    n = int(first.split()[1])
    done = out.strip().splitlines()[-1]
    assert done.startswith(f"done: {n} document(s) rendered, 0 breach(es) recorded, ") and done.endswith(" sent")
    # Not a terminal: a line of counts for each phase, on stderr. The sweep and the sending come
    # first: reminders never wait behind a slow document.
    assert [line.split(":")[0] for line in err.strip().splitlines()] == [
        "sweeping deadlines",
        "sending messages",
        "rendering documents",
    ]
    assert f"rendering documents: {n} of {n} (" in err
    code, out, err = run(config, "tick", "--as-of", "2026-02-11", "--json")
    assert code == 0, err
    report = json.loads(out)  # nothing but JSON on standard output
    assert report["documents_rendered"] == 0 and "sweeping deadlines: " in err


def test_an_unreachable_mail_server_is_one_line_per_message_and_they_wait(config: Path) -> None:
    open_case(config)
    smtp = {"EHCP_TRANSPORT": "smtp", "EHCP_SMTP_HOST": "127.0.0.1", "EHCP_SMTP_PORT": "1", "EHCP_SMTP_TLS": "none"}
    code, out, err = run(config, "tick", "--as-of", "2026-01-05", env=smtp)
    assert code == 0 and "Traceback" not in out + err
    retry = [line for line in out.splitlines() if line.startswith("  retry ")]
    assert retry and all("via 127.0.0.1:1" in line for line in retry)
    assert "sent 0, to retry " in out
