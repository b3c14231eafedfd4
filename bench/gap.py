"""The GAP core (``optimizer.matching.solve_gap``) on OR-Library's GAP instances.

``solve_gap`` runs CP-SAT on the whole model first, then (what is not proven optimal by then) a
portfolio in two threads: HiGHS' branch and cut, and column generation's bound and dive followed
by a CP-SAT neighbourhood search, all within the one limit.

Usage: ``python -m bench.gap [--both] [--small] [--time-limit S] [--workers W] [--files ...]
[--cbc-limit S | --no-cbc]``

* default: gapa–gapd (24 instances, 100–200 jobs) minimised, each with the time limit (10 s),
  against the best known values; summary: how many within 1 % of best known, the worst gap.
  Side by side, in the same run: a plain PuLP model of the same instance (one binary per pair)
  solved by CBC, single-threaded, with its own limit (30 s). For both, the time at which the
  first assignment within 1 % of best known was found (ours from ``GapResult.improvements``,
  CBC's from the integer solutions its log reports).
* ``--both``: the same in the maximisation sense too.
* ``--small``: gap1–gap12 (60 instances) in both senses, one row per file: how many reach the
  published optimum with proof, and the time taken.

The instances are read from ``shared/benchmarks/gap`` beside the repository.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pulp
from rich.console import Console
from rich.table import Table

from reference.gap import compact_model, gap_folder
from wulian.optimizer.matching import GapInstance, GapResult, read_orlib_gap, solve_gap
from wulian.optimizer.status import Status

console = Console(highlight=False, width=max(Console().width, 160))

LARGE_FILES = ["gapa.txt", "gapb.txt", "gapc.txt", "gapd.txt"]
SMALL_FILES = [f"gap{k}.txt" for k in range(1, 13)]
NEAR = 1.0  # per cent of best known that counts as "within reach"


def benchmark_folder() -> Path:
    folder = gap_folder()
    if folder is None:
        raise SystemExit("shared/benchmarks/gap not found beside the repository nor at "
                         "/work/shared")
    return folder


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


# CBC's log line for each new incumbent, whichever part of CBC found it (Cbc0004I, Cbc0012I,
# Cbc0016I, …), e.g. "Cbc0012I Integer solution of 6849 found by feasibility pump after 0
# iterations and 0 nodes (0.16 seconds)".
CBC_INCUMBENT = re.compile(
    r"Cbc\d{4}I Integer solution of (\S+) found.*?\(([\d.]+) seconds\)")


def cbc_reference(instance: GapInstance, sense: str, time_limit: float
                  ) -> tuple[float, bool, list[tuple[float, float]]]:
    """The plain compact model in PuLP (``reference/gap.py``), solved by CBC with its
    defaults (one thread, ``time_limit`` seconds): (best value, proven optimal, [(CBC's seconds,
    value) per new incumbent]). CBC's seconds count from its own start, so they leave out PuLP
    building the model and writing it, which ours include."""
    sign = 1 if sense == "min" else -1  # CBC minimises sign × cost: no doubt about the log's sense
    problem = compact_model(sign * instance.cost, instance.weight, instance.capacity)
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "cbc.log"
        problem.solve(pulp.COIN_CMD(path=pulp.PULP_CBC_CMD.pulp_cbc_path, msg=False,
                                    timeLimit=time_limit, threads=1, logPath=str(log)))
        text = log.read_text()
    found = [(float(seconds), sign * float(value))
             for value, seconds in CBC_INCUMBENT.findall(text)]
    # PuLP says "Optimal" also when CBC stopped on its clock with a solution: read CBC's own word.
    proven = "Result - Optimal solution found" in text
    objective = pulp.value(problem.objective) if found else None
    best = (sign * float(objective) if objective is not None
            else (math.inf if sense == "min" else -math.inf))
    return best, proven, found


def seconds_to_reach(improvements, best: float, sense: str) -> float:
    """When the first value within NEAR % of ``best`` was found (inf: never)."""
    return next((seconds for seconds, value in improvements
                 if percent_worse(value, best, sense) <= NEAR), math.inf)


def _median(values: np.ndarray) -> str:
    return f"{np.median(values):.1f}" if values.size else "—"


def _seconds(value: float) -> str:
    return "—" if math.isinf(value) else f"{value:.1f}"


def _number(value: float) -> str:
    return "—" if math.isinf(value) else f"{value:,.0f}"


def _status(result: GapResult) -> str:
    colour = {Status.OPTIMAL: "green", Status.FEASIBLE: "yellow",
              Status.TIME_LIMIT: "yellow"}.get(result.status, "red")
    return f"[{colour}]{result.status}[/{colour}]"


def large(folder: Path, files: list[str], senses: list[str], time_limit: float,
          workers: int, cbc_limit: float | None) -> None:
    reference = read_reference(folder)
    table = Table(title=f"GAP · OR-Library types A–D · CP-SAT ({workers} workers), then "
                        f"HiGHS + column generation + CP-SAT portfolio · {time_limit:g} s per "
                        f"instance in all" + (f"; PuLP + CBC ≤ {cbc_limit:g} s" if cbc_limit
                                              else ""),
                  title_justify="left")
    columns = ["instance", "sense", "agents × jobs", "best known", "ours", "bound",
               "gap to best %", "status", "seconds", f"to {NEAR:g} % s"]
    if cbc_limit:
        columns += ["CBC", "CBC gap %", f"CBC to {NEAR:g} % s"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("instance", "sense", "status")
                         else "right")
    reached: dict[str, list[tuple[float, float]]] = {sense: [] for sense in senses}
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
                    ours_reach = seconds_to_reach(result.improvements, best, sense)
                    cells = [row["name"], sense, f"{instance.agents} × {instance.jobs}",
                             _number(best) + ("" if proven else "*"),
                             _number(result.objective), _number(result.bound),
                             "—" if math.isinf(gap) else f"{gap:.2f}", _status(result),
                             f"{result.seconds:.1f}", _seconds(ours_reach)]
                    if cbc_limit:
                        value, cbc_proven, found = cbc_reference(instance, sense, cbc_limit)
                        cbc_gap = percent_worse(value, best, sense)
                        cbc_reach = seconds_to_reach(found, best, sense)
                        reached[sense].append((ours_reach, cbc_reach))
                        cells += [_number(value) + (" ✓" if cbc_proven else ""),
                                  "—" if math.isinf(cbc_gap) else f"{cbc_gap:.2f}",
                                  _seconds(cbc_reach)]
                    table.add_row(*cells)
    console.print(table)
    console.print("* best known, not proven optimal. gap to best: how far ours is behind the "
                  f"best known value, in per cent of it. to {NEAR:g} % s: when the first "
                  f"assignment within {NEAR:g} % of best known was found (— never)."
                  + (" ✓: CBC proved it optimal. CBC's seconds are its own, from its start "
                     "(PuLP building the model not counted)." if cbc_limit else ""))
    for sense, rows in outcomes.items():
        near = sum(gap <= NEAR for gap, *_ in rows)
        worst_gap, worst_name, *_ = max(rows)
        optimal = sum(proven for _, _, proven, _ in rows)
        seconds = sum(taken for *_, taken in rows)
        console.print(f"[bold]{sense}: {near}/{len(rows)} within {NEAR:g} % of best known in "
                      f"{time_limit:g} s[/bold]; {optimal} proven optimal; worst gap "
                      f"{worst_gap:.2f} % ({worst_name}); {seconds:.0f} s in all.")
        if reached[sense]:
            ours = np.array([a for a, _ in reached[sense]])
            cbc = np.array([b for _, b in reached[sense]])
            both = np.isfinite(ours) & np.isfinite(cbc)
            console.print(f"  within {NEAR:g} %: ours {np.isfinite(ours).sum()}/{len(ours)}, "
                          f"PuLP + CBC {np.isfinite(cbc).sum()}/{len(cbc)} (within "
                          f"{cbc_limit:g} s); where both did, median {_median(ours[both])} s "
                          f"against {_median(cbc[both])} s.")


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
    parser.add_argument("--cbc-limit", type=float, default=30.0,
                        help="seconds for the PuLP + CBC reference on each instance")
    parser.add_argument("--no-cbc", action="store_true", help="skip the PuLP + CBC reference")
    args = parser.parse_args(argv)
    folder = benchmark_folder()
    if args.small:
        small(folder, args.time_limit, args.workers)
    else:
        large(folder, args.files, ["min", "max"] if args.both else ["min"], args.time_limit,
              args.workers, None if args.no_cbc else args.cbc_limit)


if __name__ == "__main__":
    main(sys.argv[1:])
