"""A county's year, simulated through the engine (engine/simulate.py), timed: the same as

    ehcp simulate --plans 8000 --requests 1500 --days 365

on a fresh SQLite file (or, with --postgres, a throw-away PostgreSQL cluster), printing the wall time
and where it went, the steps, messages and breaches per week, and the timeliness that resulted.

    .venv/bin/python bench/county_year.py
    .venv/bin/python bench/county_year.py --plans 2000 --requests 400 --postgres
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from typer.testing import CliRunner  # noqa: E402

from engine.cli import app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plans", type=int, default=8000)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ehcp-county-") as tmp:
        if args.postgres:
            import importlib.util

            spec = importlib.util.spec_from_file_location("bench_sweep", ROOT / "bench" / "sweep.py")
            assert spec is not None and spec.loader is not None
            sweep = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(sweep)  # its cluster and copies (not on the path: bench/ holds a transitions.py)
            with sweep.postgres_cluster(Path(tmp)) as server:
                run(Path(tmp), sweep.Copies(Path(tmp), server).create("county"), args)
        else:
            run(Path(tmp), f"sqlite:///{Path(tmp) / 'county.sqlite'}", args)


def run(folder: Path, url: str, args: argparse.Namespace) -> None:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data |= {"database_url": url, "workflows_dir": str(ROOT / "workflows"), "templates_dir": str(ROOT / "templates"),
             "documents_dir": str(folder / "documents"), "accounts": {"*": "casey.demo"}}  # fmt: skip
    data["notifications"] = {**data.get("notifications", {}), "outbox_dir": str(folder / "outbox")}
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    config.chmod(0o600)
    result = CliRunner().invoke(app, ["--config", str(config), "simulate", "--plans", str(args.plans),
                                      "--requests", str(args.requests), "--days", str(args.days)])  # fmt: skip
    print(result.stdout + result.stderr, end="")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    print(f"({'PostgreSQL' if url.startswith('postgresql') else 'SQLite'}; Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
