"""The quarterly plan's benchmark: wall time, peak memory, per-street task times, the serial
fraction and the speed-up Amdahl's law predicts on N machines; both engines side by side.

Usage::

    python -m bench.quarter [--preset district|city] [--engine local|ray|both]
                            [--data DIR] [--quarter 2027Q1] [--workers N]

Each engine runs in a process of its own, so its peak memory is its own: the resident memory
of that process and every process it started (pool workers; Ray's raylet, object store and
workers), sampled every 0.2 s with psutil. The district preset is the bundled demo; the city
preset is generated (seed 0) unless ``--data`` names a folder that holds it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import preset_folder

ROOT = Path(__file__).resolve().parent.parent
MACHINES = (1, 2, 4, 8, 16)


class PeakMemory:
    """Peak resident memory of this process and all its descendants, sampled in a thread."""

    def __init__(self, every: float = 0.2):
        import psutil

        self._me = psutil.Process()
        self._every = every
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        """The resident memory of this process and its descendants now, in bytes."""
        import psutil

        total = 0
        for proc in [self._me, *self._me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self._every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())


def one(path: str, engine: str, quarter: str, workers: int | None) -> dict:
    """Load the scenario and plan the quarter on one engine (in this process)."""
    from wulian.planning.quarter import plan_quarter
    from wulian.planning.scenario import load_scenario

    with PeakMemory() as mem:
        start = time.perf_counter()
        scenario = load_scenario(path)
        loaded = time.perf_counter() - start
        plan = plan_quarter(scenario, quarter, engine=engine, workers=workers)
        wall = time.perf_counter() - start
    info = plan.info
    fill = plan.explanation.set_index("colour")["fill_rate"].to_dict()
    return {"engine": engine, "workers": info["engine"]["workers"], "load": loaded,
            "wall": wall, "plan": info["seconds"]["wall"], "split": info["seconds"]["split"],
            "parallel": info["seconds"]["parallel"], "serial": info["seconds"]["serial"],
            "tasks": info["tasks"], "serial_fraction": info["serial_fraction"],
            "serial_share": info["serial_share"], "streets": info["streets"],
            "overhead": info["engine_overhead"],
            "peak_mib": mem.peak / 2**20, "fill": fill,
            "funds_share": float(plan.funds["planned"].sum()
                                 / plan.funds["quarter_budget"].sum()),
            "gap_hours": float(plan.volunteers["gap"].sum())}


def amdahl(serial_fraction: float, workers: int) -> float:
    """Speed-up over one worker with ``workers`` workers: 1 ÷ (s + (1 − s) ÷ workers)."""
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / workers)


def run_one(path: Path, engine: str, quarter: str, workers: int | None) -> dict:
    argv = [sys.executable, "-m", "bench.quarter", "--one", engine, "--data", str(path),
            "--quarter", quarter]
    if workers:
        argv += ["--workers", str(workers)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"bench.quarter {engine} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(preset: str, results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=max(Console().width, 120))
    table = Table(title=f"Quarterly plan · {preset} preset · {results[0]['streets']} streets "
                        "× 13 weeks", title_justify="left")
    cols = ("engine", "workers", "wall s (load + plan)", "peak MiB", "split s", "parallel s",
            "engine overhead s", "task s median / p90 / max", "Σ tasks s", "serial fraction",
            "target")
    for col in cols:
        table.add_column(col, justify="left" if col in ("engine", "target") else "right")
    for r in results:
        t = r["tasks"]
        target = "≤ 600 s, ≤ 8,192 MiB" if preset == "city" else "—"
        table.add_row(r["engine"], str(r["workers"]),
                      f"{r['wall']:.1f} ({r['load']:.1f} + {r['plan']:.1f})",
                      f"{r['peak_mib']:,.0f}", f"{r['split']:.1f}", f"{r['parallel']:.1f}",
                      f"{r['overhead']:.1f}",
                      f"{t['median']:.2f} / {t['p90']:.2f} / {t['max']:.2f}",
                      f"{t['sum']:.1f}", f"{r['serial_fraction']:.3f}", target)
    console.print(table)
    base = results[0]
    cores = max(base["workers"], 1)
    pred = Table(title="Predicted on N machines (Amdahl, from the local run's serial fraction; "
                       f"{cores} cores each)", title_justify="left")
    pred.add_column("machines", justify="right")
    pred.add_column("workers", justify="right")
    pred.add_column("speed-up vs 1 worker", justify="right")
    pred.add_column("plan s (serial + Σ tasks ÷ workers, ≥ longest task)", justify="right")
    serial = base["serial"] + base["load"]
    s = serial / (serial + base["tasks"]["sum"])
    for n in MACHINES:
        w = n * cores
        wall = max(serial + base["tasks"]["sum"] / w, serial + base["tasks"]["max"])
        pred.add_row(str(n), str(w), f"{amdahl(s, w):.1f}×", f"{wall:.0f}")
    console.print(pred)
    console.print("fill rate over the quarter: " + ", ".join(
        f"{c} {v:.1%}" for c, v in base["fill"].items())
        + f"; funds spent {base['funds_share']:.1%} of the quarter's budget; volunteer gap "
          f"{base['gap_hours']:,.0f} hours; serial share of wall {base['serial_share']:.1%}")
    if len(results) > 1:
        same = all(r["fill"] == base["fill"] for r in results)
        console.print(f"engines agree on the fill rates: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quarter")
    parser.add_argument("--preset", default="district", choices=["district", "city"])
    parser.add_argument("--engine", default="both", choices=["local", "ray", "both"])
    parser.add_argument("--data", help="scenario folder (default: data/demo for district, a "
                                       "freshly generated one for city)")
    parser.add_argument("--quarter", default="2027Q1")
    parser.add_argument("--workers", type=int, help="workers (default one per core)")
    parser.add_argument("--one", choices=["local", "ray"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.data, args.one, args.quarter, args.workers)))
        return
    engines = ["local", "ray"] if args.engine == "both" else [args.engine]
    with tempfile.TemporaryDirectory(prefix="wulian-bench-quarter-") as tmp:
        path = preset_folder(args.preset, args.data, tmp)
        results = [run_one(path, e, args.quarter, args.workers) for e in engines]
    report(args.preset, results)


if __name__ == "__main__":
    main()
