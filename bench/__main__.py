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
    """The weekly allocation from files to written outputs; the same model handed whole to
    HiGHS, and the independent PuLP/CBC formulation, each given 10 minutes."""
    data = folder / preset
    if not data.exists():
        run("generate", preset, str(data))
    with console.status(f"allocating the {preset} preset …"):
        ours = run("allocate", str(data))
    refs: dict[str, dict | None] = {}
    if with_reference:
        with console.status(f"reference: the whole model in HiGHS, {preset} (≤ 10 min) …"):
            refs["whole HiGHS"] = run("whole_highs", str(data), timeout=REFERENCE_SECONDS)
        with console.status(f"reference: PuLP + CBC on the {preset} preset (≤ 10 min) …"):
            refs["PuLP+CBC"] = run("reference", str(data), timeout=REFERENCE_SECONDS)
    table = Table(title=f"Weekly allocation · {preset} preset · {ours['sizes']}",
                  title_justify="left")
    for col in ("level", "wulian value", "bound", "status", *refs):
        table.add_column(col, justify="left" if col in ("level", "status") else "right")
    for level, (value, bound, status) in ours["levels"].items():
        shown = [("not finished in 10 min" if ref is None else f"{ref['levels'][level]:,.4f}")
                 for ref in refs.values()]
        table.add_row(level, f"{value:,.4f}", f"{bound:,.4f}", status, *shown)
    console.print(table)
    solve = max(ours["solve_seconds"], 1e-9)
    console.print(
        f"wulian: {ours['seconds']:.1f} s end to end (load {ours['load_seconds']:.1f} s, build "
        f"{ours['build_seconds']:.2f} s = {ours['build_seconds'] / solve:.0%} of solve, solve "
        f"{ours['solve_seconds']:.1f} s; peak {ours['peak_mib']:,.0f} MiB, largest worker "
        f"{ours['child_peak_mib']:,.0f} MiB)" + (f"; {ours['decomposition']}"
                                                  if ours.get("decomposition") else ""))
    for name, ref in refs.items():
        if ref is None:
            console.print(f"{name}: did not finish in 10 min → wulian is more than "
                          f"{REFERENCE_SECONDS / ours['seconds']:.1f}× faster")
        else:
            console.print(f"{name}: {ref['seconds']:.1f} s → {name} ÷ wulian (end to end): "
                          f"{ref['seconds'] / ours['seconds']:.1f}×")
    with console.status(f"a coordinator's street re-run, {preset} …"):
        street = run("street_rerun", str(data))
    console.print(f"street re-run (rest held at the stored run): median {street['median']:.2f} s,"
                  f" slowest {street['max']:.2f} s over {street['streets']} streets "
                  f"(target ≤ 1 s)")


def budget_lab(preset: str, folder: Path) -> None:
    """The budget lab: build, then one-fund re-solves (target ≤ 0.5 s)."""
    data = folder / preset
    if not data.exists():
        run("generate", preset, str(data))
    with console.status(f"budget lab, {preset} preset …"):
        lab = run("budget_lab", str(data))
    console.print(
        f"budget lab ({preset}: {lab['sizes']['groups']:,} groups, {lab['sizes']['columns']:,} "
        f"columns): build {lab['build_seconds']:.1f} s; one fund moved: median "
        f"{lab['resolve_median']:.2f} s, slowest {lab['resolve_max']:.2f} s over "
        f"{len(lab['resolves'])} (target ≤ 0.5 s); every fund × 0.8 {lab['all_scaled']:.2f} s; "
        f"peak {lab['peak_mib']:,.0f} MiB; load average {lab['loadavg'][0]:.1f} → "
        f"{lab['loadavg'][1]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--preset", default="city", choices=["tiny", "district", "city"])
    parser.add_argument("--keep", help="keep generated scenarios in this folder")
    parser.add_argument("--allocation-preset", default="district,city",
                        help="presets for the allocation benchmark, comma-separated "
                             "(tiny, district, city; 'none' skips it)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the PuLP/CBC reference formulation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        foundation(args.preset, folder)
        budget_lab(args.preset, folder)
        for preset in args.allocation_preset.split(","):
            if preset != "none":
                allocation(preset, folder, not args.no_reference)


if __name__ == "__main__":
    main()
