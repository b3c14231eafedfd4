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


REFERENCE_SECONDS = 600  # a reference that has not finished by then is reported as such


def run(task: str, *args: str, timeout: float | None = None) -> dict | None:
    """Run one task in its own process; ``None`` when it passed ``timeout`` seconds."""
    try:
        done = subprocess.run([sys.executable, "-m", "bench.tasks", task, *args],
                              capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
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


def allocation(preset: str, folder: Path, with_reference: bool) -> None:
    """The weekly allocation from files, and the independent PuLP/CBC formulation."""
    data = folder / preset
    if not data.exists():
        run("generate", preset, str(data))
    with console.status(f"allocating the {preset} preset …"):
        ours = run("allocate", str(data))
    ref = None
    if with_reference:
        with console.status(f"reference: PuLP + CBC on the {preset} preset (≤ 10 min) …"):
            ref = run("reference", str(data), timeout=REFERENCE_SECONDS)
    table = Table(title=f"Weekly allocation · {preset} preset · {ours['sizes']}",
                  title_justify="left")
    for col in ("level", "wulian value", "bound", "status", "reference (PuLP+CBC)"):
        table.add_column(col, justify="left" if col in ("level", "status") else "right")
    for level, (value, bound, status) in ours["levels"].items():
        if ref is None:
            shown = "not run" if not with_reference else "not finished in 10 min"
        else:
            shown = f"{ref['levels'][level]:,.4f}"
        table.add_row(level, f"{value:,.4f}", f"{bound:,.4f}", status, shown)
    console.print(table)
    speed = ("—" if ref is None else f"{ref['seconds'] / ours['solve_seconds']:.1f}×")
    console.print(f"wulian: {ours['seconds']:.1f} s end to end (load {ours['load_seconds']:.1f}"
                  f" s, build {ours['build_seconds']:.2f} s, solve {ours['solve_seconds']:.1f} s,"
                  f" peak {ours['peak_mib']:,.0f} MiB); reference: "
                  + ("not run" if not with_reference else
                     "did not finish in 10 min" if ref is None else
                     f"{ref['seconds']:.1f} s") + f"; reference ÷ wulian solve: {speed}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--preset", default="city", choices=["tiny", "district", "city"])
    parser.add_argument("--keep", help="keep generated scenarios in this folder")
    parser.add_argument("--allocation-preset", default="district",
                        choices=["tiny", "district", "city", "none"],
                        help="preset for the allocation benchmark ('none' skips it)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the PuLP/CBC reference formulation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        foundation(args.preset, folder)
        if args.allocation_preset != "none":
            allocation(args.allocation_preset, folder, not args.no_reference)


if __name__ == "__main__":
    main()
