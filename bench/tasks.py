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
    from planning.generate import generate_scenario
    from planning.io import write_tables

    start = time.perf_counter()
    tables = generate_scenario(preset, seed=0)
    generated = time.perf_counter() - start
    write_tables(tables, out, "csv")
    return {"seconds": generated, "seconds_with_write": time.perf_counter() - start,
            "rows": {name: len(frame) for name, frame in tables.items()}}


def load(path: str) -> dict:
    from planning.io import read_raw
    from planning.validate import validate_tables

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
    from demand.policy import Policy
    from demand.scoring import score_households
    from planning.scenario import load_scenario

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

    from planning.allocate import run_allocation
    from planning.scenario import load_scenario

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
            "levels": {k: [v["value"], v["bound"], v["status"]]
                       for k, v in info["levels"].items()}}


def reference(path: str) -> dict:
    """The independent formulation of the tests (PuLP + CBC, one exact lexicographic MIP)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from reference_model import reference_levels

    from planning.scenario import load_scenario

    scenario = load_scenario(path)
    start = time.perf_counter()
    levels = reference_levels(scenario)
    return {"seconds": time.perf_counter() - start, "levels": levels}


TASKS = {"generate": generate, "load": load, "read_only": read_only, "score": score,
         "allocate": allocate, "reference": reference}

if __name__ == "__main__":
    name, *args = sys.argv[1:]
    measured = TASKS[name](*args)
    measured["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(measured))
