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


TASKS = {"generate": generate, "load": load, "read_only": read_only, "score": score}

if __name__ == "__main__":
    name, *args = sys.argv[1:]
    measured = TASKS[name](*args)
    measured["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(measured))
