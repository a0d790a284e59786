"""The core decides without touching the world: it imports no database, scheduler, email or PDF library."""

from __future__ import annotations

import subprocess
import sys

CORE = ["engine.calendar", "engine.clock", "engine.machine", "engine.definition.load", "engine.inputs"]
SHELL = ["sqlalchemy", "sqlmodel", "alembic", "apscheduler", "weasyprint", "smtplib", "engine.store", "typer"]


def test_the_core_imports_nothing_from_the_shell() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + f"bad = [m for m in {SHELL!r} if m in sys.modules]\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_only_the_clock_asks_for_today(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "engine"
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p.name != "clock.py"
        and any(s in p.read_text() for s in ("date.today()", "datetime.now(", "datetime.utcnow("))
    ]
    assert offenders == []
