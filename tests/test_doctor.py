"""Files holding case data are the service's alone, whatever the umask; `ehcp doctor` finds what is
not, secrets written into configuration files, and logins over plain text."""

from __future__ import annotations

import getpass
import os
import stat
from pathlib import Path

import yaml
from conftest import ROOT
from typer.testing import CliRunner

from engine.cli import app


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private_and_doctor_reports_what_is_not(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["database_url"] = f"sqlite:///{tmp_path / 'data' / 'cases.sqlite'}"
    data["workflows_dir"] = str(ROOT / "workflows")
    data["templates_dir"] = str(ROOT / "templates")
    data["documents_dir"] = str(tmp_path / "data" / "documents")
    data["notifications"]["outbox_dir"] = str(tmp_path / "data" / "outbox")
    data["accounts"] = {getpass.getuser(): "casey.demo"}  # each account mapped, as a council's would be
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    runner = CliRunner()
    previous = os.umask(0o022)  # an account whose files others could read
    try:
        assert runner.invoke(app, ["--config", str(config), "db", "init"]).exit_code == 0
        opened = runner.invoke(
            app,
            ["--config", str(config), "case", "open", "--name", "Generated Child", "--dob", "2016-04-04",
             "--caseworker", "casey.demo", "--contact", "parent:Generated Parent:p@example.org"],
        )  # fmt: skip
        assert opened.exit_code == 0, opened.stderr
        assert runner.invoke(app, ["--config", str(config), "tick"]).exit_code == 0
    finally:
        os.umask(previous)
    database = tmp_path / "data" / "cases.sqlite"
    assert _mode(database) == 0o600 and _mode(database.parent) == 0o700
    made = [p for p in (tmp_path / "data").rglob("*")]
    assert made and all(_mode(p) & 0o077 == 0 for p in made), [(p, oct(_mode(p))) for p in made if _mode(p) & 0o077]
    result = runner.invoke(app, ["--config", str(config), "doctor"])
    assert result.exit_code == 0 and "no problems found" in result.stdout, result.stdout
    # Something copied in readable by others, a password in the file, a login in plain text.
    database.chmod(0o644)
    data["notifications"]["smtp"] = {"host": "relay", "port": 25, "tls": "none", "username": "u", "password": "s3cret"}
    data["notifications"]["transport"] = "smtp"
    config.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["--config", str(config), "doctor"])
    assert result.exit_code == 1
    assert f"problem: {database}: the database (every child's record) can be read by other accounts" in result.stdout
    assert "problem: notifications.smtp: a login over plain text" in result.stdout
    assert "a secret is written in a file" in result.stdout and "s3cret" not in result.stdout
