"""The GAP core (``optimizer.matching.solve_gap``) on OR-Library's GAP instances.

``solve_gap`` runs CP-SAT on the whole model first, then (what is not proven optimal by then) a
portfolio of HiGHS and a CP-SAT neighbourhood search in two threads, all within the one limit.

Usage: ``python -m bench.gap [--both] [--small] [--time-limit S] [--workers W] [--files ...]``

* default: gapa–gapd (24 instances, 100–200 jobs) minimised, each with the time limit (10 s),
  against the best known values; summary: how many within 1 % of best known, the worst gap.
* ``--both``: the same in the maximisation sense too.
* ``--small``: gap1–gap12 (60 instances) in both senses, one row per file: how many reach the
  published optimum with proof, and the time taken.

The instances are read from ``shared/benchmarks/gap`` beside the repository.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from optimizer.matching import GapResult, read_orlib_gap, solve_gap
from optimizer.status import Status

console = Console(highlight=False, width=max(Console().width, 120))

LARGE_FILES = ["gapa.txt", "gapb.txt", "gapc.txt", "gapd.txt"]
SMALL_FILES = [f"gap{k}.txt" for k in range(1, 13)]
NEAR = 1.0  # per cent of best known that counts as "within reach"


def benchmark_folder() -> Path:
    for folder in (Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "gap",
                   Path("/work/shared/benchmarks/gap")):
        if (folder / "reference.csv").is_file():
            return folder
    raise SystemExit("shared/benchmarks/gap not found beside the repository nor at /work/shared")


def read_reference(folder: Path) -> dict[tuple[str, int], dict[str, str]]:
    """``reference.csv`` keyed by (file, 0-based index)."""
    with open(folder / "reference.csv", newline="") as handle:
        return {(row["file"], int(row["index"])): row for row in csv.DictReader(handle)}


def percent_worse(ours: float, best: float, sense: str) -> float:
    """How far ``ours`` is behind ``best``, in per cent of ``best`` (negative: better)."""
    if math.isinf(ours):
        return math.inf
    behind = ours - best if sense == "min" else best - ours
    return 100.0 * behind / abs(best)


def solve(folder: Path, file: str, sense: str, time_limit: float, workers: int):
    """Every instance of ``file`` solved in ``sense``: (instance, result) pairs."""
    for instance in read_orlib_gap(folder / file):
        result = solve_gap(instance.cost, instance.weight, instance.capacity,
                           maximize=sense == "max", time_limit=time_limit, workers=workers)
        yield instance, result


def _number(value: float) -> str:
    return "—" if math.isinf(value) else f"{value:,.0f}"


def _status(result: GapResult) -> str:
    colour = {Status.OPTIMAL: "green", Status.FEASIBLE: "yellow",
              Status.TIME_LIMIT: "yellow"}.get(result.status, "red")
    return f"[{colour}]{result.status}[/{colour}]"


def large(folder: Path, files: list[str], senses: list[str], time_limit: float,
          workers: int) -> None:
    reference = read_reference(folder)
    table = Table(title=f"GAP · OR-Library types A–D · CP-SAT ({workers} workers), then "
                        f"HiGHS + CP-SAT portfolio · {time_limit:g} s per instance in all",
                  title_justify="left")
    for column in ("instance", "sense", "agents × jobs", "best known", "ours", "bound",
                   "gap to best %", "status", "seconds"):
        table.add_column(column, justify="left" if column in ("instance", "sense", "status")
                         else "right")
    # Per sense: (per cent behind best known, instance name, proven optimal, seconds).
    outcomes: dict[str, list[tuple[float, str, bool, float]]] = {sense: [] for sense in senses}
    for sense in senses:
        for file in files:
            with console.status(f"solving {file} ({sense}) …"):
                for instance, result in solve(folder, file, sense, time_limit, workers):
                    row = reference[(file, instance.index)]
                    best = float(row[f"{sense}_value"])
                    proven = row[f"{sense}_status"] == "optimal"
                    gap = percent_worse(result.objective, best, sense)
                    outcomes[sense].append((gap, row["name"], result.status == Status.OPTIMAL,
                                            result.seconds))
                    table.add_row(row["name"], sense, f"{instance.agents} × {instance.jobs}",
                                  _number(best) + ("" if proven else "*"),
                                  _number(result.objective), _number(result.bound),
                                  "—" if math.isinf(gap) else f"{gap:.2f}", _status(result),
                                  f"{result.seconds:.1f}")
    console.print(table)
    console.print("* best known, not proven optimal. gap to best: how far ours is behind the "
                  "best known value, in per cent of it.")
    for sense, rows in outcomes.items():
        near = sum(gap <= NEAR for gap, *_ in rows)
        worst_gap, worst_name, *_ = max(rows)
        optimal = sum(proven for _, _, proven, _ in rows)
        seconds = sum(taken for *_, taken in rows)
        console.print(f"[bold]{sense}: {near}/{len(rows)} within {NEAR:g} % of best known in "
                      f"{time_limit:g} s[/bold]; {optimal} proven optimal; worst gap "
                      f"{worst_gap:.2f} % ({worst_name}); {seconds:.0f} s in all.")


def small(folder: Path, time_limit: float, workers: int) -> None:
    reference = read_reference(folder)
    table = Table(title=f"GAP · OR-Library gap1–gap12, both senses · solve_gap, {workers} workers",
                  title_justify="left")
    for column in ("file", "agents × jobs", "min: optimal = published", "max: optimal = published",
                   "total s", "slowest s"):
        table.add_column(column, justify="left" if column == "file" else "right")
    matched = count = 0
    total_seconds = 0.0
    for file in SMALL_FILES:
        found = {"min": 0, "max": 0}
        seconds: list[float] = []
        size = ""
        with console.status(f"solving {file} …"):
            for sense in ("min", "max"):
                for instance, result in solve(folder, file, sense, time_limit, workers):
                    known = float(reference[(file, instance.index)][f"{sense}_value"])
                    found[sense] += (result.status == Status.OPTIMAL
                                     and result.objective == known)
                    seconds.append(result.seconds)
                    size = f"{instance.agents} × {instance.jobs}"
        instances = len(seconds) // 2
        matched += found["min"] + found["max"]
        count += len(seconds)
        total_seconds += sum(seconds)
        table.add_row(file, size, f"{found['min']}/{instances}", f"{found['max']}/{instances}",
                      f"{sum(seconds):.1f}", f"{max(seconds):.2f}")
    console.print(table)
    console.print(f"[bold]{matched}/{count} solves proven optimal at the published optimum[/bold]"
                  f" ({count // 2} instances × 2 senses); {total_seconds:.1f} s in all.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gap", description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true",
                        help="gap1–gap12 in both senses instead of gapa–gapd")
    parser.add_argument("--both", action="store_true",
                        help="gapa–gapd in the maximisation sense too")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per instance")
    parser.add_argument("--workers", type=int, default=2,
                        help="CP-SAT search threads in the first phase (1: CP-SAT alone)")
    parser.add_argument("--files", nargs="+", choices=LARGE_FILES, default=LARGE_FILES,
                        metavar="FILE", help="some of gapa.txt … gapd.txt")
    args = parser.parse_args(argv)
    folder = benchmark_folder()
    if args.small:
        small(folder, args.time_limit, args.workers)
    else:
        large(folder, args.files, ["min", "max"] if args.both else ["min"], args.time_limit,
              args.workers)


if __name__ == "__main__":
    main(sys.argv[1:])
