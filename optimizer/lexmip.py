"""A lexicographic linear model solved level by level with HiGHS.

The allocation and the budget lab both have one feasible region and an ordered list of
objectives (red coverage, then orange, …, then money, travel, continuity). Level ``k`` is solved
with every earlier level held at its optimum (a row ``objective_j ≥ value_j − tolerance``), which
is exactly what "lexicographic" means: nothing of an earlier level is traded for a later one.

Built from numpy arrays (coordinate triplets), never a Python loop per variable.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np

from optimizer.status import Status

# An earlier level is held at its optimum up to this relative tolerance (plus an absolute
# 1e-9): HiGHS' own feasibility tolerance is 1e-7, so a tighter hold could make the model
# infeasible by rounding alone.
HOLD_RELATIVE = 1e-7


@dataclass
class Rows:
    """Constraint rows as coordinate triplets: ``lower ≤ A x ≤ upper``."""

    row: list[np.ndarray] = field(default_factory=list)
    col: list[np.ndarray] = field(default_factory=list)
    val: list[np.ndarray] = field(default_factory=list)
    lower: list[np.ndarray] = field(default_factory=list)
    upper: list[np.ndarray] = field(default_factory=list)
    names: list[tuple[str, int, int]] = field(default_factory=list)  # (family, first, count)
    count: int = 0

    def add(self, family: str, row: np.ndarray, col: np.ndarray, val: np.ndarray,
            lower: np.ndarray, upper: np.ndarray) -> int:
        """Add ``len(lower)`` rows; ``row`` indexes them from 0. Returns the first row's index."""
        first = self.count
        n = len(lower)
        self.row.append(np.asarray(row, dtype=np.int64) + first)
        self.col.append(np.asarray(col, dtype=np.int64))
        self.val.append(np.asarray(val, dtype=float))
        self.lower.append(np.asarray(lower, dtype=float))
        self.upper.append(np.asarray(upper, dtype=float))
        self.names.append((family, first, n))
        self.count += n
        return first

    def family(self, name: str) -> slice:
        for family, first, n in self.names:
            if family == name:
                return slice(first, first + n)
        raise KeyError(name)


@dataclass(frozen=True)
class Level:
    """One objective: ``sense`` is ``max`` or ``min``; ``cost`` has one entry per column."""

    name: str
    sense: str
    cost: np.ndarray


@dataclass
class LevelResult:
    name: str
    sense: str
    value: float
    bound: float
    status: str
    seconds: float

    @property
    def gap(self) -> float:
        if not np.isfinite(self.bound) or not np.isfinite(self.value):
            return float("nan")
        return abs(self.bound - self.value) / max(1.0, abs(self.value))


@dataclass
class LexResult:
    x: np.ndarray
    levels: list[LevelResult]
    duals: dict[str, np.ndarray]  # level name → row duals of its LP relaxation
    status: str
    build_seconds: float
    solve_seconds: float


@contextlib.contextmanager
def _quiet_fd():
    """HiGHS prints a banner from C++ on creation; keep the user's terminal clean."""
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (e.g. captured by a test runner)
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _new_highs(threads: int, time_limit: float, seed: int) -> highspy.Highs:
    with _quiet_fd():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("random_seed", int(seed))
    h.setOptionValue("threads", int(threads))
    h.setOptionValue("mip_rel_gap", 1e-9)
    h.setOptionValue("mip_abs_gap", 1e-9)
    if time_limit > 0:
        h.setOptionValue("time_limit", float(time_limit))
    return h


def _csr(rows: Rows, n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = np.concatenate(rows.row) if rows.row else np.zeros(0, np.int64)
    c = np.concatenate(rows.col) if rows.col else np.zeros(0, np.int64)
    v = np.concatenate(rows.val) if rows.val else np.zeros(0)
    keep = v != 0
    r, c, v = r[keep], c[keep], v[keep]
    order = np.lexsort((c, r))
    r, c, v = r[order], c[order], v[order]
    starts = np.searchsorted(r, np.arange(rows.count)).astype(np.int32)
    return starts, c.astype(np.int32), v


_STATUS = {
    highspy.HighsModelStatus.kOptimal: Status.OPTIMAL,
    highspy.HighsModelStatus.kTimeLimit: Status.TIME_LIMIT,
    highspy.HighsModelStatus.kInfeasible: Status.INFEASIBLE,
}


def solve_lexicographic(lower: np.ndarray, upper: np.ndarray, integer: np.ndarray,
                        rows: Rows, levels: Sequence[Level], *, time_limit: float = 0.0,
                        threads: int = 1, seed: int = 0,
                        dual_levels: Sequence[str] = ()) -> LexResult:
    """Solve the levels in order, each holding the earlier ones at their optimum.

    Parameters
    ----------
    lower, upper
        Column bounds.
    integer
        Boolean mask of integer columns (whole units, cents).
    rows
        The constraint rows.
    levels
        The objectives, most important first.
    time_limit
        Seconds per level (0: none). A level stopped by it reports ``time_limit`` with the
        best bound HiGHS proved, so the answer says how far from optimal it can be.
    dual_levels
        Levels whose LP relaxation is also solved, to report row duals (marginal values).

    Returns
    -------
    LexResult
    """
    start = time.perf_counter()
    n = len(lower)
    h = _new_highs(threads, time_limit, seed)
    inf = highspy.kHighsInf
    h.addCols(n, np.zeros(n), np.asarray(lower, float), np.asarray(upper, float), 0,
              np.zeros(n, np.int32), np.zeros(0, np.int32), np.zeros(0))
    starts, index, value = _csr(rows, n)
    lo = np.concatenate(rows.lower) if rows.lower else np.zeros(0)
    hi = np.concatenate(rows.upper) if rows.upper else np.zeros(0)
    h.addRows(rows.count, np.where(np.isfinite(lo), lo, -inf), np.where(np.isfinite(hi), hi, inf),
              len(index), starts, index, value)
    int_cols = np.flatnonzero(integer).astype(np.int32)
    build = time.perf_counter() - start

    results: list[LevelResult] = []
    duals: dict[str, np.ndarray] = {}
    x = np.zeros(n)
    overall = Status.OPTIMAL
    solve_start = time.perf_counter()
    all_cols = np.arange(n, dtype=np.int32)
    for level in levels:
        t0 = time.perf_counter()
        sense = highspy.ObjSense.kMaximize if level.sense == "max" else highspy.ObjSense.kMinimize
        h.changeObjectiveSense(sense)
        h.changeColsCost(n, all_cols, np.asarray(level.cost, float))
        if level.name in dual_levels:
            # LP relaxation first, for duals (marginal values); then the integer solve.
            h.changeColsIntegrality(len(int_cols), int_cols,
                                    np.full(len(int_cols), highspy.HighsVarType.kContinuous))
            h.run()
            duals[level.name] = np.asarray(h.getSolution().row_dual, float)
        if len(int_cols):
            h.changeColsIntegrality(len(int_cols), int_cols,
                                    np.full(len(int_cols), highspy.HighsVarType.kInteger))
        h.run()
        model_status = h.getModelStatus()
        status = _STATUS.get(model_status, Status.ERROR)
        info = h.getInfo()
        if status == Status.TIME_LIMIT and info.primal_solution_status != 2:
            status = Status.ERROR  # stopped before any feasible answer: nothing to hold
        if status in (Status.INFEASIBLE, Status.ERROR):
            raise RuntimeError(f"level {level.name}: HiGHS returned {model_status}")
        value = info.objective_function_value
        bound = (info.mip_dual_bound if len(int_cols) else value) + 0.0  # no "-0.0"
        if status == Status.TIME_LIMIT:
            overall = Status.TIME_LIMIT
        x = np.asarray(h.getSolution().col_value, float)
        results.append(LevelResult(level.name, level.sense, float(value), float(bound),
                                   status, time.perf_counter() - t0))
        # Hold this level at what was achieved (not the bound: that may be unreachable).
        cost = np.asarray(level.cost, float)
        nz = np.flatnonzero(cost).astype(np.int32)
        slack = HOLD_RELATIVE * max(1.0, abs(value)) + 1e-9
        if level.sense == "max":
            h.addRow(value - slack, inf, len(nz), nz, cost[nz])
        else:
            h.addRow(-inf, value + slack, len(nz), nz, cost[nz])
    return LexResult(x=x, levels=results, duals=duals, status=overall, build_seconds=build,
                     solve_seconds=time.perf_counter() - solve_start)
