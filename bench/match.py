"""The volunteer matching's benchmark: the week of a whole preset and of single streets.

Usage::

    python -m bench.match [--preset district|city] [--data DIR] [--repeat R] [--streets N]
                          [--workers N] [--no-serial-check]

What it measures (issue 4's speed targets: the city's week ≤ 60 s and ≤ 4 GiB; one street
≤ 2 s), in a process of its own per preset so that its memory is its own:

* the **week**: ``planning.match.run_matching`` on the allocation of the whole preset, repeated
  ``R`` times (median, fastest, slowest), with the visits, how many were placed, the unplaced by
  reason, every lexicographic level's value, bound, gap and status, and how the model was cut
  into regions (decomposition, the regions' times, the exchanges across their borders);
* **streets**: the same for ``N`` streets spread over the preset (``centre=`` the street; any
  volunteer within reach may serve), median and worst;
* **determinism**: the repeats' assignments compared, and (unless ``--no-serial-check``) one
  more run with every region in this process against the process pool's.

Times are wall seconds of the matching alone: the allocation it starts from is computed first
in the same process (the city's takes minutes) and reported on its own line, never included.
Peak memory is the resident memory of the process and of every process it started (the pool's
workers), sampled every 0.1 s while the matching runs (``bench.quarter.PeakMemory``), next to
what the process held before (scenario and allocation); ``ru_maxrss`` of the process and of its
largest worker are shown too. The machine's load average is printed before and after: on a
shared machine the times move with it.

The district preset is the bundled demo (``data/demo``); the city preset is generated (seed 0)
unless ``--data`` names a folder that holds it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import preset_folder

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"city": {"week": "≤ 60 s, ≤ 4,096 MiB", "street": "≤ 2 s"},
           "district": {"week": "—", "street": "≤ 2 s"}}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _summary(match) -> dict:
    """What the tables show of one matching run."""
    info = match.info
    return {"visits": info["sizes"]["visits"], "placed": info["sizes"]["placed"],
            "unplaced": info["sizes"]["unplaced"],
            "reasons": match.unplaced["reason"].value_counts().sort_index().to_dict(),
            "levels": [{"name": lv.name, "sense": lv.sense, "value": lv.value,
                        "bound": lv.bound, "gap": lv.gap, "status": str(lv.status)}
                       for lv in match.levels],
            "status": str(match.status), "method": match.method,
            "decomposition": info.get("decomposition", {}),
            "pairs": info["sizes"].get("pairs"), "groups": info["sizes"].get("groups"),
            "seconds": info["seconds"]}


def _timed(scenario, run, params, centre=None) -> tuple[float, float, object]:
    """One matching: (wall seconds, sampled peak MiB of this process and its workers, result)."""
    from bench.quarter import PeakMemory
    from wulian.planning.match import run_matching

    with PeakMemory(every=0.1) as mem:
        start = time.perf_counter()
        match = run_matching(scenario, run, centre=centre, params=params)
        wall = time.perf_counter() - start
    return wall, mem.peak / 2**20, match


def _fingerprint(match) -> list:
    return sorted(map(tuple, match.assignments[["visit_id", "volunteer_id", "slot"]]
                      .astype(str).to_numpy().tolist()))


def one(path: str, repeat: int, streets: int, workers: int | None, serial_check: bool,
        allocation: str | None) -> dict:
    """Load, allocate, then match the week ``repeat`` times and ``streets`` streets."""
    import pickle

    import psutil

    from wulian.optimizer.visits import MatchParams
    from wulian.planning.allocate import run_allocation
    from wulian.planning.scenario import load_scenario

    out: dict = {"loadavg_before": loadavg()}
    start = time.perf_counter()
    scenario = load_scenario(path)
    out["load_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    if allocation and Path(allocation).exists():  # development only: a cached allocation
        with open(allocation, "rb") as handle:
            run = pickle.load(handle)
        out["allocation"] = f"cached ({allocation})"
    else:
        run = run_allocation(scenario)
        out["allocation"] = f"{time.perf_counter() - start:.1f} s, {run.info['status']}"
        if allocation:
            with open(allocation, "wb") as handle:
                pickle.dump(run, handle, protocol=5)
    out["baseline_mib"] = psutil.Process().memory_info().rss / 2**20
    params = MatchParams(part_workers=workers or 0)

    walls, peaks, prints = [], [], []
    for _ in range(repeat):
        wall, peak, match = _timed(scenario, run, params)
        walls.append(wall)
        peaks.append(peak)
        prints.append(_fingerprint(match))
    out["week"] = {"walls": walls, "peak_mib": max(peaks), **_summary(match),
                   "repeats_identical": all(p == prints[0] for p in prints)}
    if serial_check:
        wall, peak, serial = _timed(scenario, run, MatchParams(part_workers=1))
        out["week"]["serial"] = {"wall": wall, "peak_mib": peak,
                                 "identical": _fingerprint(serial) == prints[0]}

    centres = scenario.centres
    ids = sorted(centres.loc[centres["level"] == "street", "centre_id"])
    step = max(len(ids) // max(streets, 1), 1)
    rows = []
    for street in ids[::step][:streets]:
        # Twice per street: the first call also pays for one-off costs of the process (its
        # first OR-Tools flow, pandas' caches); the second is what a coordinator's re-run costs.
        first, _, _ = _timed(scenario, run, params, centre=street)
        wall, peak, match = _timed(scenario, run, params, centre=street)
        s = _summary(match)
        rows.append({"street": street, "wall": wall, "first": first, "peak_mib": peak,
                     "visits": s["visits"], "placed": s["placed"], "unplaced": s["unplaced"],
                     "reasons": s["reasons"], "pairs": s["pairs"],
                     "optimal_levels": sum(lv["status"] == "optimal" for lv in s["levels"]),
                     "levels": len(s["levels"]), "method": s["method"]})
    out["streets"] = rows
    out["ru_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["ru_maxrss_children_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out["loadavg_after"] = loadavg()
    out["cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return out


def run_one(path: Path, args) -> dict:
    argv = [sys.executable, "-m", "bench.match", "--one", "--data", str(path),
            "--repeat", str(args.repeat), "--streets", str(args.streets)]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    if args.no_serial_check:
        argv += ["--no-serial-check"]
    if args.allocation:
        argv += ["--allocation", args.allocation]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"bench.match failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(preset: str, r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=max(Console().width, 130))
    week = r["week"]
    walls = week["walls"]
    reasons = lambda d: ", ".join(f"{k} {v:,}" for k, v in d.items()) or "—"  # noqa: E731
    console.print(f"[bold]Volunteer matching · {preset} preset[/] · cores {r['cores']} · "
                  f"load average before {r['loadavg_before']}, after {r['loadavg_after']} · "
                  f"allocation (not counted in the times below): {r['allocation']}")
    table = Table(title="匹配用时 / matching time (wall s, the allocation excluded)",
                  title_justify="left")
    for col in ("run", "wall s median (min–max)", "peak MiB (process + workers)", "visits",
                "placed", "unplaced by reason", "target"):
        table.add_column(col, justify="left" if col in ("run", "unplaced by reason", "target")
                         else "right")
    table.add_row(f"week ×{len(walls)}",
                  f"{statistics.median(walls):.1f} ({min(walls):.1f}–{max(walls):.1f})",
                  f"{week['peak_mib']:,.0f} (before: {r['baseline_mib']:,.0f})",
                  f"{week['visits']:,}", f"{week['placed']:,}", reasons(week["reasons"]),
                  TARGETS[preset]["week"])
    if "serial" in week:
        s = week["serial"]
        table.add_row("week, regions in one process", f"{s['wall']:.1f}",
                      f"{s['peak_mib']:,.0f}", "", "", "", "")
    streets = r["streets"]
    if streets:
        st_walls = sorted(row["wall"] for row in streets)
        worst = max(streets, key=lambda row: row["wall"])
        table.add_row(f"street ×{len(streets)}: median",
                      f"{statistics.median(st_walls):.2f}",
                      f"{max(row['peak_mib'] for row in streets):,.0f}",
                      f"{statistics.median(row['visits'] for row in streets):,.0f}",
                      f"{statistics.median(row['placed'] for row in streets):,.0f}", "",
                      TARGETS[preset]["street"])
        table.add_row(f"street: worst ({worst['street']})", f"{worst['wall']:.2f}",
                      f"{worst['peak_mib']:,.0f}", f"{worst['visits']:,}",
                      f"{worst['placed']:,}", reasons(worst["reasons"]),
                      TARGETS[preset]["street"])
    console.print(table)

    levels = Table(title=f"字典序各层 / lexicographic levels of the week ({week['status']}, "
                         f"{week['method']})", title_justify="left")
    for col in ("level", "sense", "value", "bound", "gap", "status"):
        levels.add_column(col, justify="left" if col in ("level", "sense", "status")
                          else "right")
    for lv in week["levels"]:
        levels.add_row(lv["name"], lv["sense"], f"{lv['value']:,.3f}", f"{lv['bound']:,.3f}",
                       f"{lv['gap']:.2%}", lv["status"])
    console.print(levels)

    dec = week["decomposition"]
    regions = dec.get("region_seconds", [])
    console.print(
        f"decomposition: {dec.get('regions', 0)} regions "
        f"({'exact components' if dec.get('exact') else 'cut and/or pruned: bounds of the whole'}"
        f"), region s median {statistics.median(regions) if regions else 0:.2f} / max "
        f"{max(regions, default=0):.2f} / Σ {sum(regions):.1f}; pairs {week['pairs']:,}; "
        f"exchanges across borders {dec.get('exchanges', 0):,}; visits placed after the "
        f"regions {dec.get('repaired_visits', 0):,}; methods {dec.get('methods', {})}")
    console.print(f"seconds inside run_matching: {week['seconds']}")
    console.print(f"determinism: repeats identical {week['repeats_identical']}"
                  + (f"; regions in one process identical to the pool's "
                     f"{week['serial']['identical']}" if "serial" in week else ""))
    console.print(f"ru_maxrss: process {r['ru_maxrss_mib']:,.0f} MiB (scenario, allocation and "
                  f"matching), largest child process {r['ru_maxrss_children_mib']:,.0f} MiB "
                  "(the allocation's workers included)")
    if streets:
        per = Table(title="每个街道 / per street (second call; first call in brackets)",
                    title_justify="left")
        for col in ("street", "wall s", "visits", "placed", "pairs", "levels optimal",
                    "method"):
            per.add_column(col, justify="left" if col in ("street", "method") else "right")
        for row in streets:
            per.add_row(row["street"], f"{row['wall']:.2f} ({row['first']:.2f})",
                        f"{row['visits']:,}", f"{row['placed']:,}", f"{row['pairs']:,}",
                        f"{row['optimal_levels']}/{row['levels']}", row["method"])
        console.print(per)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.match")
    parser.add_argument("--preset", default="district", choices=["district", "city"])
    parser.add_argument("--data", help="scenario folder (default: data/demo for district, a "
                                       "freshly generated one for city)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the week (median)")
    parser.add_argument("--streets", type=int, default=9, help="streets to match one by one")
    parser.add_argument("--workers", type=int, help="processes for the regions (default one "
                                                    "per core)")
    parser.add_argument("--no-serial-check", action="store_true",
                        help="skip the run with every region in one process")
    parser.add_argument("--allocation", help=argparse.SUPPRESS)  # development: cache file
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.data, args.repeat, args.streets, args.workers,
                             not args.no_serial_check, args.allocation), default=str))
        return
    with tempfile.TemporaryDirectory(prefix="wulian-bench-match-") as tmp:
        path = preset_folder(args.preset, args.data, tmp)
        result = run_one(path, args)
    report(args.preset, result)


if __name__ == "__main__":
    main()
