"""Exact search on a level's reduced model: SCIP (through OR-Tools) on the columns that
reduced-cost fixing leaves free.

``optimizer/lexmip.py`` holds earlier levels by value rows when it searches the exact model:
dense rows whose weights ``u_n / q_n`` run from 10⁻⁶ (a need counted in cents) to 3, beside
fund rows in cents (up to thousands per unit). HiGHS 1.16 spends seconds at the root of such a
model of a few hundred columns (measured: 4–11 s for a 381-column yellow level, whatever its
heuristic, presolve, symmetry or restart options), where SCIP proves the same level in
0.2–0.6 s and CBC in 0.01 s (CBC's preprocessing is known to cut off optima of these models:
``reference/allocation.py``). SCIP ships inside OR-Tools, already a dependency (min-cost flow).

The model is passed by arrays (``ModelBuilderHelper``: a vectorised variable array, one call
per row with its terms), only the free columns: fixed columns move into the row bounds, rows
left without a free column are dropped.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from ortools.linear_solver.python import model_builder_helper as mbh

from wulian.optimizer.interrupt import solve_interruptibly

# SCIP's tolerances are relative to a row's size: a budget of 240 million cents could be read
# as kept 240 cents over. Every answer is checked again on the rows themselves (whole columns
# in whole-number rows: exact) with this absolute tolerance, and refused when it breaks one.
CHECK_TOLERANCE = 1e-6
# SCIP's feasibility tolerance, relative: tight for budget rows of hundreds of millions of
# cents, not so tight that SoPlex fails on the value rows (weights from 10⁻⁷ per cent to 3):
# at 10⁻⁹ the district demo's money search met "unresolved numerical troubles" at the root and
# stayed there for 30 s; at 10⁻⁸ it proved money in 3 s.
FEASIBILITY_TOLERANCE = 1e-8
# Measured on the district demo's yellow, green and money searches (CPU seconds, SCIP alone):
# no restart (a restart re-solved the root LP from scratch: 13,000 more simplex iterations
# for money) and SCIP's presolvers that found nothing here left out — 5.6 s → 4.3 s in all.
# SCIP's cut separators: these levels are proven at the root, a few cut rounds past their LP,
# by Gomory's cuts (without them none of the demo's three was proven in 60 s) and, on some
# seeded mid-size scenarios, aggregation's (MIR, flow cover: without them one orange search
# took 0.5 s instead of 0.06). The other separators' rounds (zero-half, clique, multi-commodity
# flow, implied bounds, knapsack cover, rapid learning's sub-SCIP) found nothing that counted
# and cost a third of the demo's searches: 4.9-5.2 s → 3.3-3.6 s of CPU for the three, back
# to back at load 7-8 (docs/benchmarks.md, session 13).
SETTINGS = (
    "presolving/maxrestarts = 0\n"
    "propagating/probing/maxprerounds = 0\n"
    "presolving/domcol/maxrounds = 0\n"
    "presolving/sparsify/maxrounds = 0\n"
    "presolving/dualsparsify/maxrounds = 0\n"
    "presolving/tworowbnd/maxrounds = 0\n"
    "presolving/gateextraction/maxrounds = 0\n"
    "constraints/components/maxprerounds = 0\n"
    "separating/zerohalf/freq = -1\n"
    "separating/clique/freq = -1\n"
    "separating/mcf/freq = -1\n"
    "separating/impliedbounds/freq = -1\n"
    "separating/knapsackcover/freq = -1\n"
    "separating/rapidlearning/freq = -1\n")


@dataclass
class SearchResult:
    status: str  # "optimal", "time_limit", "infeasible", "failed"
    x: np.ndarray | None  # the best whole answer over every column, or None
    bound: float  # proven bound of the objective (over the free columns, fixed part added)


def solve_reduced(col_lo: np.ndarray, col_hi: np.ndarray, integer: np.ndarray,
                  cost: np.ndarray, maximise: bool, a_col: np.ndarray, a_row: np.ndarray,
                  a_val: np.ndarray, row_lo: np.ndarray, row_hi: np.ndarray,
                  hint: np.ndarray | None, seconds: float, seed: int = 0,
                  threads: int = 1, gap: float = 1e-9) -> SearchResult:
    """Optimise ``cost · x`` over ``row_lo ≤ A x ≤ row_hi``, ``col_lo ≤ x ≤ col_hi`` (whole
    where ``integer``), ``A`` given by triplets; columns with ``col_lo == col_hi`` are fixed
    and left out of SCIP's model. ``hint``: a feasible answer to start from. ``gap``: SCIP stops
    once its bound is within ``gap`` of its best answer, relatively or absolutely."""
    start = time.perf_counter()
    n = len(col_lo)
    free = col_lo < col_hi
    fixed_x = np.where(free, 0.0, col_lo)
    # Fixed columns' part of each row, into the row bounds.
    on_fixed = ~free[a_col]
    shift = np.bincount(a_row[on_fixed], weights=a_val[on_fixed] * fixed_x[a_col[on_fixed]],
                        minlength=len(row_lo))
    lo_r, hi_r = row_lo - shift, row_hi - shift
    keep = ~on_fixed
    r, c, v = a_row[keep], a_col[keep], a_val[keep]
    index = np.full(n, -1, np.int64)
    cols = np.flatnonzero(free)
    index[cols] = np.arange(len(cols))
    constant = float(cost @ fixed_x)
    if not len(cols):
        return SearchResult("optimal", fixed_x, constant)

    # OR-Tools' helper layer, which ``model_builder`` wraps: the wrapper read the answer back
    # one variable at a time through pandas (and importing it costs as much again); the
    # helper gives it as one array. The model is the same, row for row and term for term.
    model = mbh.ModelBuilderHelper()
    # (OR-Tools' stubs type these arrays' shape as their dtype: no array passes them.)
    model.add_var_array_with_bounds(col_lo[cols].astype(float),  # type: ignore[arg-type]
                                    col_hi[cols].astype(float),  # type: ignore[arg-type]
                                    np.asarray(integer, bool)[cols],  # type: ignore[arg-type]
                                    "x")
    model.set_objective_coefficients(np.arange(len(cols)).tolist(), cost[cols].tolist())
    model.set_maximize(bool(maximise))
    variables = [mbh.Variable(model, j) for j in range(len(cols))]
    order = np.argsort(r, kind="stable")
    r, c, v = r[order], index[c[order]], v[order]
    rows, starts = np.unique(r, return_index=True)
    ends = np.r_[starts[1:], len(r)]
    inf = float("inf")
    row_lower = np.where(np.isfinite(lo_r[rows]), lo_r[rows], -inf).tolist()
    row_upper = np.where(np.isfinite(hi_r[rows]), hi_r[rows], inf).tolist()
    terms, coefficients = [variables[j] for j in c.tolist()], v.tolist()
    for lo, hi, a, b in zip(row_lower, row_upper, starts.tolist(), ends.tolist(), strict=True):
        ct = model.add_linear_constraint()
        model.set_constraint_lower_bound(ct, lo)
        model.set_constraint_upper_bound(ct, hi)
        model.add_terms_to_constraint(ct, terms[a:b], coefficients[a:b])
    if hint is not None:
        for j, value in enumerate(hint[cols].tolist()):
            model.add_hint(j, value)

    solver = mbh.ModelSolverHelper("SCIP")
    if not solver.solver_is_supported():
        return SearchResult("failed", None, float("nan"))
    if np.isfinite(seconds) and seconds > 0:
        solver.set_time_limit_in_seconds(float(seconds))
    solver.set_solver_specific_parameters(
        f"randomization/randomseedshift = {int(seed)}\n"
        f"parallel/maxnthreads = {max(1, int(threads))}\n"
        f"limits/gap = {gap:g}\n"
        f"limits/absgap = {gap:g}\n"
        f"numerics/feastol = {FEASIBILITY_TOLERANCE:g}\n"
        + SETTINGS +
        "misc/catchctrlc = FALSE\n")  # Ctrl-C is Python's: see optimizer/interrupt.py
    built = time.perf_counter()
    solve_interruptibly(lambda: solver.solve(model), solver.interrupt_solve)
    status = solver.status()
    if os.environ.get("WULIAN_TRACE"):
        print(f"  SCIP: {len(cols)} columns, {len(rows)} rows, built in {built - start:.2f}s, "
              f"{status} in {time.perf_counter() - built:.2f}s, bound "
              f"{solver.best_objective_bound() + constant}", flush=True)
    best_bound = float(solver.best_objective_bound()) + constant
    if status == mbh.SolveStatus.INFEASIBLE:
        return SearchResult("infeasible", None, best_bound)
    if status not in (mbh.SolveStatus.OPTIMAL, mbh.SolveStatus.FEASIBLE):
        if os.environ.get("WULIAN_TRACE"):
            print(f"  SCIP: {status}", flush=True)
        return SearchResult("failed", None, best_bound)
    x = fixed_x.copy()
    values = np.asarray(solver.variable_values(), float)  # in index order
    x[cols] = np.where(np.asarray(integer, bool)[cols], np.round(values), values)
    activity = np.bincount(a_row, weights=a_val * x[a_col], minlength=len(row_lo))
    broken = (activity < row_lo - CHECK_TOLERANCE) | (activity > row_hi + CHECK_TOLERANCE)
    if broken.any() or (x < col_lo - 1e-9).any() or (x > col_hi + 1e-9).any():
        if os.environ.get("WULIAN_TRACE"):
            worst = np.flatnonzero(broken)[:3]
            print(f"  SCIP answer refused: rows {worst.tolist()} at {activity[worst]} outside "
                  f"[{row_lo[worst]}, {row_hi[worst]}]", flush=True)
        return SearchResult("failed", None, best_bound)
    proven = status == mbh.SolveStatus.OPTIMAL
    return SearchResult("optimal" if proven else "time_limit", x, best_bound)
