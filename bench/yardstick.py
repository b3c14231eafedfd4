"""The yardstick of issue 14: one min-cost flow as large as the city's allocation, and the
city's ``wulian allocate`` timed against it on the same machine, in the same run.

The yardstick is OR-Tools' ``SimpleMinCostFlow`` on a seeded transportation network with as
many arcs as the city's model (about 1.15 M): offers → needs, each need's arc to a sink earning
a fixed reward (a negative cost), idle supply straight from each offer to the sink. Built from
numpy arrays and solved once. It measures what this machine, with its load at the time, gives
a solver of a model this size, so the city's time can be read as a ratio, not as seconds that
mean something else on another machine.

    python -m bench.yardstick                      # the yardstick alone
    python -m bench.yardstick --city DIR [--runs N] # and `wulian allocate DIR`, its ratio,
                                                    # levels, bounds, gaps and peak memory

The city's folder is made by ``wulian generate --preset city --seed 0 --out DIR --format
parquet`` (about 25 s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench import children_cpu

ARCS = 1_150_000
NEEDS = 500_000
OFFERS = 3_200


def network(seed: int = 0, arcs: int = ARCS, needs: int = NEEDS, offers: int = OFFERS):
    """(tails, heads, capacities, costs, supplies) of the seeded transportation network:
    nodes 0 … offers−1 are offers, then the needs, then the sink."""
    rng = np.random.default_rng(seed)
    sink = offers + needs
    quantity = rng.integers(1, 6, needs)
    supply = rng.integers(50, 500, offers)
    n_pairs = arcs - needs - offers
    pair_offer = rng.integers(0, offers, n_pairs)
    pair_need = rng.integers(0, needs, n_pairs)
    tails = np.concatenate([pair_offer, offers + np.arange(needs), np.arange(offers)])
    heads = np.concatenate([offers + pair_need, np.full(needs, sink), np.full(offers, sink)])
    capacities = np.concatenate([quantity[pair_need], quantity, supply])
    reward = rng.integers(1, 1_000, needs)
    costs = np.concatenate([rng.integers(0, 10, n_pairs), -reward, np.zeros(offers, np.int64)])
    supplies = np.zeros(sink + 1, np.int64)
    supplies[:offers] = supply
    supplies[sink] = -supply.sum()
    return (tails.astype(np.int32), heads.astype(np.int32), capacities.astype(np.int64),
            costs.astype(np.int64), supplies)


def yardstick(seed: int = 0, arcs: int = ARCS) -> dict:
    """Build and solve the network once; seconds from arrays to the optimum."""
    from ortools.graph.python import min_cost_flow

    tails, heads, capacities, costs, supplies = network(seed, arcs)
    start = time.perf_counter()
    flow = min_cost_flow.SimpleMinCostFlow()
    flow.add_arcs_with_capacity_and_unit_cost(tails, heads, capacities, costs)
    flow.set_nodes_supplies(np.arange(len(supplies), dtype=np.int32), supplies)
    status = flow.solve()
    seconds = time.perf_counter() - start
    if status != flow.OPTIMAL:
        raise RuntimeError(f"yardstick: min-cost flow status {status}")
    return {"arcs": int(len(tails)), "seconds": seconds, "cost": int(flow.optimal_cost())}


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants (Linux /proc)."""
    total = 0
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    stack = [pid]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total


def allocate_city(folder: Path) -> dict:
    """``wulian allocate FOLDER`` end to end (a process of its own), with the peak resident
    memory of it and its workers, its CPU time (it and its workers: the machine is shared, so
    wall time alone says more about the load than about the code), the load average while it
    ran, and its run.json."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "wulian.api.cli", "allocate", str(folder), "--out", out,
               "--store", f"sqlite:///{out}/runs.sqlite"]
        cpu_before = children_cpu()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        peak = [0]
        loads: list[float] = []

        def sample() -> None:
            while proc.poll() is None:
                peak[0] = max(peak[0], _tree_rss(proc.pid))
                loads.append(os.getloadavg()[0])
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, err = proc.communicate()
        seconds = time.perf_counter() - start
        sampler.join()
        if proc.returncode:
            raise RuntimeError(f"wulian allocate failed:\n{err[-2000:]}")
        info = json.loads((Path(out) / "run.json").read_text())
    return {"seconds": seconds, "cpu_seconds": children_cpu() - cpu_before,
            "peak_mib": peak[0] / 2**20, "run": info,
            "load_mean": float(np.mean(loads)) if loads else os.getloadavg()[0],
            "load_max": max(loads, default=os.getloadavg()[0])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.yardstick")
    parser.add_argument("--arcs", type=int, default=ARCS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--city", type=Path, help="a city scenario folder to allocate")
    parser.add_argument("--runs", type=int, default=1, help="city runs (each timed)")
    args = parser.parse_args(argv)
    stick = yardstick(args.seed, args.arcs)
    print(f"yardstick: SimpleMinCostFlow, {stick['arcs']:,} arcs, solved in "
          f"{stick['seconds']:.2f} s")
    if args.city is None:
        return
    for k in range(args.runs):
        city = allocate_city(args.city)
        info = city["run"]
        print(f"city run {k + 1}: wulian allocate {city['seconds']:.1f} s end to end "
              f"({info['seconds']['wall']:.1f} s inside the run), {city['cpu_seconds']:.1f} s "
              f"CPU, peak {city['peak_mib']:,.0f} MiB, load {city['load_mean']:.1f} (max "
              f"{city['load_max']:.1f}); ratio to the yardstick "
              f"{city['seconds'] / stick['seconds']:.2f} (target ≤ 2.5)")
        print(f"  decomposition seconds: {info.get('decomposition', {}).get('seconds')}")
        for name, level in info["levels"].items():
            bound, gap = level["bound"], level["gap"]
            print(f"  {name:<10} value {level['value']:>18,.4f}  bound "
                  f"{'—' if bound is None else f'{bound:,.4f}':>18}  gap "
                  f"{'—' if gap is None else f'{100 * gap:.3f} %':>9}  {level['status']}")
    again = yardstick(args.seed, args.arcs)
    print(f"yardstick again after the city: {again['seconds']:.2f} s")


if __name__ == "__main__":
    main()
