"""`make bench`: run every benchmark in its own process and print the tables.

Usage: ``python -m bench [--preset city|district|tiny] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(highlight=False, width=max(Console().width, 120))


def run(task: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.tasks", task, *args],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench task {task} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def foundation(preset: str, folder: Path) -> None:
    """Generate, load + validate, score: the figures the foundation issue asks for."""
    data = folder / preset
    rows = []
    with console.status(f"generating the {preset} preset …"):
        gen = run("generate", preset, str(data))
    rows.append(("generate", f"{gen['seconds']:.1f}", f"{gen['peak_mib']:,.0f}", "≤ 60 s",
                 f"+ write CSV: {gen['seconds_with_write']:.1f} s"))
    with console.status("loading and validating from CSV …"):
        load = run("load", str(data))
        ref = run("read_only", str(data))
    rows.append(("load + validate (CSV)", f"{load['seconds']:.1f}", f"{load['peak_mib']:,.0f}",
                 "≤ 10 s, ≤ 2,048 MiB",
                 f"{load['problems']} problems; reference pandas read only: "
                 f"{ref['seconds']:.1f} s, {ref['peak_mib']:,.0f} MiB"))
    with console.status("scoring and colouring …"):
        sc = run("score", str(data))
    rows.append(("score + colour (AF)", f"{sc['seconds']:.2f}", f"{sc['peak_mib']:,.0f}", "—",
                 f"M0 {sc['M0']:.3f}; tiers {sc['tiers']}"))

    sizes = ", ".join(f"{k} {v:,}" for k, v in gen["rows"].items())
    table = Table(title=f"Foundation · {preset} preset ({sizes})", title_justify="left")
    for col in ("task", "wall s", "peak MiB", "target", "notes"):
        table.add_column(col, justify="right" if col in ("wall s", "peak MiB") else "left")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--preset", default="city", choices=["tiny", "district", "city"])
    parser.add_argument("--keep", help="keep generated scenarios in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        foundation(args.preset, folder)


if __name__ == "__main__":
    main()
