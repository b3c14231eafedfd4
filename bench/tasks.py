"""One benchmark task per process, so each one's peak memory is its own.

Run as ``python -m bench.tasks TASK ARGS…``; prints one JSON line with the wall time, the peak
resident memory of the process and what the task measured.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def generate(preset: str, out: str) -> dict:
    from wulian.planning.generate import generate_scenario
    from wulian.planning.io import write_tables

    start = time.perf_counter()
    tables = generate_scenario(preset, seed=0)
    generated = time.perf_counter() - start
    write_tables(tables, out, "csv")
    return {"seconds": generated, "seconds_with_write": time.perf_counter() - start,
            "rows": {name: len(frame) for name, frame in tables.items()}}


def load(path: str) -> dict:
    from wulian.planning.io import read_raw
    from wulian.planning.validate import validate_tables

    start = time.perf_counter()
    raw = read_raw(path)
    _, problems = validate_tables(raw.tables)
    return {"seconds": time.perf_counter() - start, "problems": len(problems + raw.problems)}


def read_only(path: str) -> dict:
    """Reference: pandas reading the same CSV files as text, with no validation."""
    import pandas as pd

    start = time.perf_counter()
    for file in sorted(Path(path).glob("*.csv")):
        pd.read_csv(file, dtype=str, keep_default_na=False)
    return {"seconds": time.perf_counter() - start}


def score(path: str) -> dict:
    from wulian.demand.policy import Policy
    from wulian.demand.scoring import score_households
    from wulian.planning.scenario import load_scenario

    scenario = load_scenario(path)
    start = time.perf_counter()
    result = score_households(scenario.tables["households"], scenario.centres, Policy.load())
    seconds = time.perf_counter() - start
    tiers = scenario.households["tier"].value_counts(normalize=True).round(3).to_dict()
    return {"seconds": seconds, "households": len(scenario.households), "tiers": tiers,
            "M0": float(result.overall.M0)}


def allocate(path: str) -> dict:
    """wulian's weekly allocation, from files to written outputs."""
    import tempfile

    from wulian.planning.allocate import run_allocation
    from wulian.planning.scenario import load_scenario

    start = time.perf_counter()
    scenario = load_scenario(path)
    loaded = time.perf_counter() - start
    run = run_allocation(scenario)
    with tempfile.TemporaryDirectory() as out:
        run.write(out)
    info = run.info
    return {"seconds": time.perf_counter() - start, "load_seconds": loaded,
            "build_seconds": info["seconds"]["build"], "solve_seconds": info["seconds"]["solve"],
            "status": info["status"], "sizes": info["sizes"],
            "decomposition": info.get("decomposition"),
            "levels": {k: [v["value"], v["bound"], v["status"]]
                       for k, v in info["levels"].items()}}


def street_rerun(path: str) -> dict:
    """A coordinator's re-run of one street (the rest held at a stored whole run): the median
    of the streets' wall times, and the slowest."""
    import tempfile

    from wulian.planning.allocate import run_allocation
    from wulian.planning.scenario import load_scenario
    from wulian.planning.store import RunStore

    scenario = load_scenario(path)
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(f"sqlite:///{tmp}/runs.sqlite")
        run_allocation(scenario, store=store)
        streets = scenario.centres.loc[scenario.centres["level"] == "street", "centre_id"]
        seconds = []
        for street in sorted(streets)[:5]:
            start = time.perf_counter()
            run_allocation(scenario, centre=street, store=store)
            seconds.append(time.perf_counter() - start)
    seconds.sort()
    return {"streets": len(seconds), "median": seconds[len(seconds) // 2], "max": seconds[-1]}


def whole_highs(path: str) -> dict:
    """The same model handed whole to HiGHS: each level one MIP over every column, earlier
    levels held by value rows, no fixing and no repair (the textbook lexicographic method)."""
    import os
    from dataclasses import replace

    import numpy as np

    from wulian.optimizer import allocation as al
    from wulian.optimizer.lexmip import solve_lexicographic
    from wulian.planning.allocate import allocation_input
    from wulian.planning.scenario import load_scenario

    os.environ["WULIAN_MAX_NODES"] = str(10**9)  # no node limit: the exact MIP, however long
    data = allocation_input(load_scenario(path))
    start = time.perf_counter()
    needs = al.prepare_needs(data)
    offers = al.offer_table(data)
    pools = al.volunteer_pools(data)
    model, _ = al.build_arcs(data, needs, offers, pools)
    rows = al.build_rows(needs, offers, data.funds.reset_index(drop=True), pools, model, data)
    levels = [replace(level, hold_cols=None) for level in al.build_levels(needs, model)]
    q = needs["base_quantity"].to_numpy(float)
    n = len(model.need) + len(needs)
    result = solve_lexicographic(
        np.concatenate([model.lower, np.zeros(len(needs))]), np.concatenate([model.upper, q]),
        np.ones(n, bool), rows, levels, time_limit=0.0, exact=True)
    return {"seconds": time.perf_counter() - start,
            "levels": {lv.name: lv.value for lv in result.levels}}


def reference(path: str) -> dict:
    """The independent formulation of the tests (PuLP + CBC, one exact lexicographic MIP)."""
    from reference.allocation import reference_levels
    from wulian.planning.scenario import load_scenario

    scenario = load_scenario(path)
    start = time.perf_counter()
    levels = reference_levels(scenario)
    return {"seconds": time.perf_counter() - start, "levels": levels}


def budget_lab(path: str, resolves: str = "8") -> dict:
    """The budget lab of a scenario folder as a fund manager's slider uses it: the build, then
    ``resolves`` re-solves one after another, each with one fund's budget moved, and one with
    every budget scaled by 0.8."""
    import os

    import numpy as np

    from wulian.optimizer.budget import build_budget_model
    from wulian.planning.allocate import allocation_input
    from wulian.planning.scenario import load_scenario

    data = allocation_input(load_scenario(path))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    model = build_budget_model(data)
    build = time.perf_counter() - start
    base = model.base_budgets
    factors = (0.8, 1.25, 0.5, 1.1, 0.9, 2.0, 0.7)
    seconds = []
    for k in range(int(resolves)):
        fund = base.index[(7 * k) % len(base)]
        start = time.perf_counter()
        model.solve({fund: base[fund] * factors[k % len(factors)]})
        seconds.append(time.perf_counter() - start)
    start = time.perf_counter()
    model.solve((base * 0.8).to_dict())
    scaled = time.perf_counter() - start
    return {"build_seconds": build, "resolve_median": float(np.median(seconds)),
            "resolve_max": max(seconds), "resolves": seconds, "all_scaled": scaled,
            "sizes": model.sizes, "loadavg": [load_before, os.getloadavg()[0]]}


TASKS = {"generate": generate, "load": load, "read_only": read_only, "score": score,
         "allocate": allocate, "reference": reference, "street_rerun": street_rerun,
         "whole_highs": whole_highs, "budget_lab": budget_lab}

if __name__ == "__main__":
    name, *args = sys.argv[1:]
    measured = TASKS[name](*args)
    measured["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Worker processes (the districts of a city run): the largest one's peak.
    measured["child_peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(measured))
