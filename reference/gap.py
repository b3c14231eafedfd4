"""The GAP as a plain PuLP model, written from its definition, and where the benchmarks live.

The compact model (one binary per agent × job pair that fits, each job exactly once, each
agent's capacity) is the independent formulation the GAP tests check ``optimizer.matching`` and
``optimizer.gap_columns`` against, and the PuLP + CBC reference ``python -m bench.gap`` races.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pulp


def gap_folder() -> Path | None:
    """``shared/benchmarks/gap`` beside the repository (as CI lays it out), or on this machine."""
    for folder in (Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "gap",
                   Path("/work/shared/benchmarks/gap")):
        if (folder / "reference.csv").is_file():
            return folder
    return None


def compact_model(cost, weight, capacity) -> pulp.LpProblem:
    """Minimise Σ cost·x over binaries x[i, j]: each job on one agent, each capacity kept."""
    cost, weight, capacity = np.asarray(cost), np.asarray(weight), np.asarray(capacity)
    m, n = cost.shape
    problem = pulp.LpProblem("gap", pulp.LpMinimize)
    x = {(i, j): problem.add_variable(f"x_{i}_{j}", cat=pulp.LpBinary)
         for i in range(m) for j in range(n) if weight[i, j] <= capacity[i]}
    problem.setObjective(pulp.lpSum(int(cost[i, j]) * var for (i, j), var in x.items()))
    for j in range(n):
        problem.addConstraint(pulp.lpSum(x[i, j] for i in range(m) if (i, j) in x) == 1)
    for i in range(m):
        problem.addConstraint(pulp.lpSum(int(weight[i, j]) * x[i, j]
                                         for j in range(n) if (i, j) in x) <= int(capacity[i]))
    return problem


def exact_minimum(cost, weight, capacity) -> float | None:
    """The compact model's minimum by HiGHS (through PuLP), or None when infeasible.

    Not CBC: PuLP's bundled CBC 2.10.3 calls 639 optimal on a 5 × 16 instance of
    tests/test_gap_columns.py (``_instance(4, agents=5, jobs=16)``) whose minimum is 637, an
    assignment its own model accepts; with its cuts off it finds 637.
    """
    problem = compact_model(cost, weight, capacity)
    status = problem.solve(pulp.HiGHS(msg=False, gapRel=0.0, gapAbs=0.0, threads=1))
    if pulp.LpStatus[status] != "Optimal":
        return None
    return float(round(pulp.value(problem.objective)))
