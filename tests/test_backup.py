"""A backup taken while the service runs, restored over later changes, on SQLite and PostgreSQL; a
downgrade that would drop a council's data is refused until the council says it has a backup."""

from __future__ import annotations

import stat
from datetime import date
from pathlib import Path

import yaml
from conftest import CW, ROOT, STAFF
from typer.testing import CliRunner

from engine.app import App
from engine.cli import app as cli
from engine.clock import FixedClock
from engine.config import Settings


def _history(application: App) -> int:
    with application.store.unit() as unit:
        return int(unit.fetch("SELECT COUNT(*) FROM history", {})[0][0])


def test_a_backup_restores_the_caseload_and_a_downgrade_with_data_is_refused(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, workflows_dir=str(ROOT / "workflows"), staff=STAFF)
    application = App(settings, FixedClock(date(2025, 1, 6)), create=True)
    case = application.cases.open_case(
        name="Generated Child", date_of_birth=date(2016, 4, 4), workflow="needs_assessment", actor=CW,
        caseworker="cw",
    ).case_id  # fmt: skip
    before = _history(application)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude={"base_dir"})))
    runner = CliRunner()

    def ehcp(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, ["--config", str(config), *args])
        return result.exit_code, result.stdout + result.stderr

    out = tmp_path / "backups" / "cases.bak"
    code, text = ehcp("backup", "--out", str(out))
    assert code == 0, text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    code, text = ehcp("backup", "--out", str(out))
    assert code == 1 and "exists" in text
    application.clock = FixedClock(date(2025, 2, 10))  # type: ignore[misc]
    application.cases.clock = application.clock
    application.cases.fire(case, "agree_to_assess", actor=CW)
    assert _history(application) > before
    application.engine.dispose()
    code, text = ehcp("restore", str(out))
    assert code == 1 and "--yes" in text
    code, text = ehcp("restore", str(out), "--yes")
    assert code == 0, text
    again = App(settings, FixedClock(date(2025, 2, 10)))
    assert _history(again) == before
    again.engine.dispose()
    code, text = ehcp("db", "downgrade", "0006")
    assert code == 2 and "can drop data" in text and "ehcp backup" in text
    code, text = ehcp("db", "downgrade", "0006", "--allow-data-loss")
    assert code == 0, text
