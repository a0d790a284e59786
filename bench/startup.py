"""How long a caseworker waits for `ehcp case show`, `ehcp case list` and `ehcp due` (wall time).

Runs each as a fresh process on a demo database, interleaved, and prints the median of each with
its ratio to `python -c pass`, the floor every Python command pays. The goal: under 0.3 s each.

    .venv/bin/python bench/startup.py                   # a 40-case demo database in a temporary folder
    .venv/bin/python bench/startup.py --runs 15 --config path/to/config.yaml   # an existing database
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EHCP = Path(sys.executable).parent / "ehcp"
GOAL = 0.3


def demo_config(folder: Path, cases: int) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["database_url"] = f"sqlite:///{folder / 'demo.sqlite'}"
    data["workflows_dir"] = str(ROOT / "workflows")
    data["templates_dir"] = str(ROOT / "templates")
    data["documents_dir"] = str(folder / "documents")
    data["notifications"]["outbox_dir"] = str(folder / "outbox")
    data["council"]["logo"] = str(ROOT / "docs" / "examples" / "logo.svg")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    print(f"seeding a {cases}-case demo database in {folder} ...", file=sys.stderr)
    subprocess.run([str(EHCP), "--config", str(config), "demo", "--cases", str(cases)], check=True, capture_output=True)
    return config


def wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--config", type=Path, help="Use this configuration's database instead of a new demo one.")
    parser.add_argument("--case", type=int, default=5, help="The case `case show` reads.")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCP_")}
    with tempfile.TemporaryDirectory(prefix="ehcp-startup-") as tmp:
        config = args.config or demo_config(Path(tmp), args.cases)
        ehcp = [str(EHCP), "--config", str(config)]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            f"ehcp case show {args.case}": [*ehcp, "case", "show", str(args.case)],
            "ehcp case list": [*ehcp, "case", "list"],
            "ehcp due": [*ehcp, "due"],
        }
        for argv in commands.values():  # warm the file cache and the .pyc files, untimed
            wall(argv, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(wall(argv, env))
    floor = statistics.median(times["python -c pass"])
    print(f"{'command':<22} {'median s':>9} {'x floor':>8}  goal < {GOAL} s  ({args.runs} runs each, interleaved)")
    for name, values in times.items():
        median = statistics.median(values)
        verdict = "" if name.startswith("python") else ("met" if median < GOAL else "NOT met")
        print(f"{name:<22} {median:>9.3f} {median / floor:>8.1f}  {verdict}")


if __name__ == "__main__":
    main()
