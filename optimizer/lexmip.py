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
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np

from wulian.optimizer.checks import (
    check_choice,
    check_flag,
    check_seconds,
    check_seed,
    check_whole,
)
from wulian.optimizer.dual_bound import lagrangian, lp_arrays
from wulian.optimizer.search import solve_reduced
from wulian.optimizer.status import Status

# An earlier level is held at its optimum up to this relative tolerance (plus an absolute
# 1e-9): HiGHS' own feasibility tolerance is 1e-7, so a tighter hold could make the model
# infeasible by rounding alone.
HOLD_RELATIVE = 1e-7
MAX_NODES = 500  # branch-and-bound nodes per MIP (deterministic work limit)
# An exact search's share (``solve_lexicographic(search_seconds=…)``): of what is left, an
# equal part per level still to solve that is certified (``Level.certify``): travel and
# continuity, searched only on small models, take nothing from the colours and money.
# A level that is not certified (``Level.certify=False``: travel and continuity) is still
# bounded and searched when the levels before it took at most this share of the search time.
UNCERTIFIED_SHARE = 0.02
# The slowest pace (CPU seconds per wall second) an exact search's share is stretched for: at
# most ten times its CPU share in wall-clock seconds, however loaded the machine.
MIN_PACE = 0.1
SENSES = ("max", "min")  # Level.sense
# A level is proven optimal when its value is within this of its bound (relative, and absolute
# below 1); the exact search stops at half of it (SCIP's gap on its own objective, which shares
# the level's sign, so the level's gap is no larger).
PROVEN_GAP = 1e-6


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
    """One objective: ``sense`` is ``max`` or ``min``; ``cost`` has one entry per column.

    ``hold_cols``: how the level is held once solved. ``None`` adds one row holding the
    objective at its value. An array of column indices instead fixes each of those columns at
    the value it reached (for a colour: each need's unserved units), which keeps the level at
    its value while leaving the MIP its easy structure; each later level then certifies, with
    an LP relaxation holding every earlier level by value only, that nothing was lost.
    """

    name: str
    sense: str
    cost: np.ndarray
    hold_cols: np.ndarray | None = None
    certify: bool = True  # bound it on large models too (see solve_lexicographic)
    # Columns held at their lower bound while this level is solved: columns with no cost in
    # it that only use up capacity (a later colour's arcs), so the optimum is the same with
    # them idle, and HiGHS solves a much smaller model. Released for the levels after.
    idle_cols: np.ndarray | None = None

    def __post_init__(self):
        check_choice("Level", "sense", self.sense, SENSES)
        check_flag("Level", "certify", self.certify)


@dataclass
class LevelResult:
    name: str
    sense: str
    value: float
    bound: float
    status: Status
    seconds: float

    def __post_init__(self):
        self.status = Status(self.status)  # a solver's word is one of the project's statuses

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
    status: Status
    build_seconds: float
    solve_seconds: float


@contextlib.contextmanager
def quiet_stdout():
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


def new_highs(threads: int, time_limit: float, seed: int) -> highspy.Highs:
    """A silent HiGHS instance with the options every model of the package uses."""
    with quiet_stdout():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("random_seed", int(seed))
    h.setOptionValue("threads", int(threads))
    h.setOptionValue("mip_rel_gap", 1e-7)
    # A node limit, not only a time limit: the same input then gives the same plan whatever
    # else the machine is doing. The time limit stays as a safety net.
    h.setOptionValue("mip_max_nodes", int(os.environ.get("WULIAN_MAX_NODES", MAX_NODES)))
    h.setOptionValue("mip_abs_gap", 1e-7)
    if time_limit > 0:
        h.setOptionValue("time_limit", float(time_limit))
    return h


def csr(rows: Rows, n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise sparse matrix: (row starts, column of each entry, value, row of each entry)."""
    r = np.concatenate(rows.row) if rows.row else np.zeros(0, np.int64)
    c = np.concatenate(rows.col) if rows.col else np.zeros(0, np.int64)
    v = np.concatenate(rows.val) if rows.val else np.zeros(0)
    keep = v != 0
    r, c, v = r[keep], c[keep], v[keep]
    order = np.lexsort((c, r))
    r, c, v = r[order], c[order], v[order]
    starts = np.searchsorted(r, np.arange(rows.count)).astype(np.int32)
    return starts, c.astype(np.int32), v, r


_STATUS = {
    highspy.HighsModelStatus.kOptimal: Status.OPTIMAL,
    highspy.HighsModelStatus.kTimeLimit: Status.TIME_LIMIT,
    highspy.HighsModelStatus.kInfeasible: Status.INFEASIBLE,
}


def solve_lexicographic(lower: np.ndarray, upper: np.ndarray, integer: np.ndarray,
                        rows: Rows, levels: Sequence[Level], *, time_limit: float = 0.0,
                        threads: int = 1, seed: int = 0, dual_levels: Sequence[str] = (),
                        exact: bool = True, certify: bool = True,
                        search_seconds: float = 0.0, branch_and_bound: bool = True
                        ) -> LexResult:
    """Solve the levels in order, each holding the earlier ones at the value they reached.

    Each level is first solved with the earlier levels held as cheaply as the structure allows
    (``Level.hold_cols``: columns fixed at their value). Then an LP relaxation that holds every
    earlier level by value only bounds what the exact lexicographic model could reach; when the
    answer is within 10⁻⁶ of that bound it is proven optimal. Otherwise the exact model (earlier
    levels held by value rows) is searched from the answer in hand, within the time limit, and
    the level reports the best proven bound, so the answer says how far from optimal it can be.

    Values are computed from the solution rounded to whole base units, so a later level never
    holds an earlier one at a value that only a fractional solution reaches.

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
        Seconds for each HiGHS call (0: none).
    dual_levels
        Levels whose LP relaxation is also solved, to report row duals (marginal values).
    exact
        Search the whole exact model by branch and bound whenever the LP relaxation is not
        whole (the reference path: no repair, no time share). Without it, a level gets the
        repair's answer, and then, while ``search_seconds`` last, an exact search.
    search_seconds
        Seconds of exact search the levels share (0: none; ``inf``: no limit). A level that its
        fixed answer and LP bound do not prove gets, of what is left, an equal share with the
        levels after it: the exact model's LP relaxation (earlier levels held by value rows)
        gives a bound ``B`` and reduced costs ``d``; every integer column with ``|d_j|`` above
        the gap ``|B − value|`` is at its LP value in every answer at least as good as the one
        in hand (reduced-cost fixing, exact), so branch and bound runs over only the others,
        until proven or out of time. Its bound, with the answer in hand, bounds the level.
    certify
        Bound each level held after a fixed one by an LP that holds earlier levels by value
        only. Without it (a part of a decomposed model, whose bounds would not bound the whole)
        such a level reports no bound, and a level held by value whose repair finds no whole
        answer keeps the previous level's answer instead of searching.
    branch_and_bound
        With ``search_seconds > 0``: whether a level still open is searched by branch and
        bound (SCIP) on its share. Without it the levels keep everything else a search brings
        (the holds each level's exact LP implies, ``imply``; repairs over the columns those
        leave free; every colour's certification LP and its bound), but nothing stops on a
        clock: the same input gives the same answer at any load, at a fixed amount of work
        (HiGHS' node limits), and levels that are not certified get no bound.

    Returns
    -------
    LexResult
    """
    check_seconds("solve_lexicographic", "time_limit", time_limit, zero=("不限", "none"))
    check_whole("solve_lexicographic", "threads", threads)  # 0: HiGHS chooses
    check_seed("solve_lexicographic", "seed", seed)
    start = time.perf_counter()
    n = len(lower)
    # Copies: the bounds of the exact model, tightened as levels are proven (``imply``).
    col_lo = np.array(lower, float)
    col_hi = np.array(upper, float)
    h = new_highs(threads, time_limit, seed)
    inf = highspy.kHighsInf
    h.addCols(n, np.zeros(n), col_lo, col_hi, 0, np.zeros(n, np.int32), np.zeros(0, np.int32),
              np.zeros(0))
    a_start, a_index, a_value, a_row = csr(rows, n)
    lo = np.concatenate(rows.lower) if rows.lower else np.zeros(0)
    hi = np.concatenate(rows.upper) if rows.upper else np.zeros(0)
    on_eq = (lo == hi)[a_row]
    eq_row_of, eq_col = a_row[on_eq], a_index[on_eq].astype(np.int64)  # equality rows' entries
    h.addRows(rows.count, np.where(np.isfinite(lo), lo, -inf), np.where(np.isfinite(hi), hi, inf),
              len(a_index), a_start, a_index, a_value)
    int_mask = np.asarray(integer, bool)
    int_cols = np.flatnonzero(int_mask).astype(np.int32)
    # Rows whose activity is whole in every whole answer (whole coefficients on whole columns)
    # and whose finite sides are whole: a multiplier above a level's gap holds them at a side.
    whole_entry = (np.abs(a_value - np.round(a_value))
                   <= 1e-9 * np.maximum(1.0, np.abs(a_value))) & int_mask[a_index]
    finite_lo, finite_hi = np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)
    whole_side = (np.abs(finite_lo - np.round(finite_lo)) <= 1e-9)
    whole_side &= (np.abs(finite_hi - np.round(finite_hi)) <= 1e-9)
    whole_row = whole_side & (np.bincount(a_row, weights=~whole_entry,
                                          minlength=rows.count) == 0)
    build = time.perf_counter() - start
    current: Level = levels[0]

    def run(seconds: float = 0.0) -> None:
        # HiGHS measures its time limit against the instance's total run time, so each call
        # gets the limit on top of what earlier calls used.
        limits = [t for t in (time_limit, seconds) if t > 0]
        limit = min(limits) if limits else 0.0
        if 0 < limit < float("inf"):
            h.setOptionValue("time_limit", h.getRunTime() + float(limit))
        t = time.perf_counter()
        h.run()
        if os.environ.get("WULIAN_TRACE"):
            print(f"  {current.name}: {h.getModelStatus()} "
                  f"{h.getInfo().objective_function_value} {time.perf_counter() - t:.2f}s",
                  flush=True)

    integrality = [highspy.HighsVarType.kContinuous]  # as HiGHS holds it now

    def set_integrality(kind) -> None:
        if len(int_cols) and integrality[0] != kind:  # a change costs a pass over the columns
            h.changeColsIntegrality(len(int_cols), int_cols, np.full(len(int_cols), kind))
            integrality[0] = kind

    def lp_bound() -> float:
        """The LP relaxation's optimal value; NaN when HiGHS cannot finish it within the time
        limit (then nothing is claimed for the level)."""
        set_integrality(highspy.HighsVarType.kContinuous)
        run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            last_lp.clear()
            return float("nan")
        remember_lp(exact_model=True)
        return float(h.getInfo().objective_function_value)

    last_lp: dict = {}  # the LP relaxation just solved: value, columns, reduced costs

    def remember_lp(exact_model: bool) -> None:
        """Keep the LP just solved: its value and columns, and its weak duality written out
        (``optimizer.dual_bound.lagrangian``: reduced costs recomputed from the row duals,
        the bound over the bounds as they stand and over the exact model's). ``exact_model``:
        the LP is the exact model's (earlier levels held by value rows, not by fixed columns),
        so what it implies holds for every later level too."""
        solution = h.getSolution()
        last_lp.clear()
        last_lp.update(value=float(h.getInfo().objective_function_value),
                       x=np.asarray(solution.col_value, float), exact=exact_model)
        if not (solution.dual_valid and searching and level_bounded[0] and exact_model):
            return  # only a search and what a level implies read it
        cost, lo_now, hi_now, r_lo, r_hi, entry_col, entry_row, entry_value = lp_arrays(h)
        weak = lagrangian(cost, lo_now, hi_now, r_lo, r_hi, entry_col, entry_row, entry_value,
                          np.asarray(solution.row_dual, float), maximise=current.sense == "max")
        up, down = weak.d > 0, weak.d < 0
        # The same multipliers over the exact model's bounds (idle columns released).
        whole = weak.bound + float(np.sum(np.where(up, weak.d * (col_hi - hi_now), 0.0))
                                   + np.sum(np.where(down, weak.d * (col_lo - lo_now), 0.0)))
        last_lp.update(weak=weak, bound_now=weak.bound, bound_exact=whole,
                       row_lo=r_lo, row_hi=r_hi)

    def exact_search(x_in: np.ndarray, value: float, seconds: float
                     ) -> tuple[Status, np.ndarray, float] | None:
        """Branch and bound (SCIP, ``optimizer/search.py``) on the model as it stands (the
        exact model: earlier levels held by value rows), after reduced-cost fixing against
        the LP in ``last_lp``, within ``seconds``, from the answer in hand. Returns (status,
        best whole answer, proven bound), or ``None`` when nothing was learnt.

        Weak duality from the LP's row duals (``optimizer.dual_bound.lagrangian``): every
        feasible ``x`` has ``cost·x ≤ B − Σ_j |d_j| |x_j − b_j|`` (maximising; ``b_j`` the
        bound column ``j``'s reduced cost points to, ``B`` the bound the duals give); an
        answer at least as good as ``value`` therefore keeps every whole column with
        ``|d_j| > B − value`` at ``b_j``. The answer in hand is one of them, so the search
        space holds it and everything better: its optimum is the level's, and its bound
        (never above the LP's) with ``value`` bounds the level.
        """
        if not last_lp or "weak" not in last_lp or seconds <= 0:
            return None
        lp_value, weak = last_lp["value"], last_lp["weak"]
        sign = 1.0 if current.sense == "max" else -1.0
        gap = last_lp["bound_now"] - sign * value
        if not np.isfinite(gap):
            return None
        margin = max(gap, 0.0) * (1 + 1e-9) + 1e-9
        up = int_mask & (weak.d > margin) & (cur_lo < cur_hi)
        down = int_mask & (weak.d < -margin) & (cur_lo < cur_hi)
        up &= np.abs(x_in - cur_hi) < 0.5  # the answer in hand agrees (numerics aside)
        down &= np.abs(x_in - cur_lo) < 0.5
        at = np.where(up, cur_hi, cur_lo)
        fix = up | down
        lo_s, hi_s = cur_lo.copy(), cur_hi.copy()
        lo_s[fix], hi_s[fix] = at[fix], at[fix]
        model = h.getLp()
        matrix = model.a_matrix_
        starts = np.asarray(matrix.start_, np.int64)
        a_col = np.repeat(np.arange(n), np.diff(starts))
        t = time.perf_counter()
        found = solve_reduced(lo_s, hi_s, int_mask, np.asarray(current.cost, float),
                              current.sense == "max", a_col,
                              np.asarray(matrix.index_, np.int64),
                              np.asarray(matrix.value_, float),
                              np.asarray(model.row_lower_, float),
                              np.asarray(model.row_upper_, float), x_in,
                              min(seconds, time_limit) if time_limit > 0 else seconds,
                              seed=seed, threads=threads, gap=PROVEN_GAP / 2)
        if os.environ.get("WULIAN_TRACE"):
            print(f"  search {current.name} ({seconds:.2f} s given): {found.status}, "
                  f"{int((lo_s < hi_s).sum())} of {n} "
                  f"free, {time.perf_counter() - t:.2f}s", flush=True)
        if found.status in ("infeasible", "failed"):
            return None  # infeasible by numerics only: the answer in hand is in its space
        if not np.isfinite(found.bound) or abs(found.bound) >= 1e19:  # SCIP's "no bound"
            found.bound = lp_value
        x_best, best = x_in, value
        if found.x is not None:
            v2 = float(np.asarray(current.cost, float) @ found.x)
            if better(current, v2, best):
                x_best, best = found.x, v2
        # Nothing better than ``value`` lies outside the search space: the level's bound is
        # the better of the answer in hand and the search's bound, and never beyond the LP's.
        if current.sense == "max":
            bound = min(lp_value, max(best, found.bound))
        else:
            bound = max(lp_value, min(best, found.bound))
        proven = close_enough(best, bound)
        status = Status.OPTIMAL if proven else (
            Status.TIME_LIMIT if found.status == "time_limit" else Status.FEASIBLE)
        return status, x_best, bound + 0.0

    def solve(lp: tuple[float, np.ndarray] | None = None) -> tuple[Status, np.ndarray, float]:
        """(status, rounded solution, proven bound) of the model as it stands.

        The LP relaxation first (unless ``lp`` already holds it): on this network-like model
        it is often integral already, and then it is the MIP optimum with its own bound.
        Otherwise branch and bound; its bound never beats the LP's.
        """
        if lp is None:
            set_integrality(highspy.HighsVarType.kContinuous)
            run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                # The relaxation did not finish in time: let branch and bound, which reports
                # its own incumbent and bound at a time limit, take it from here.
                return search(float("inf") if current.sense == "max" else float("-inf"))
            lp = (float(h.getInfo().objective_function_value),
                  np.asarray(h.getSolution().col_value, float))
            remember_lp(exact_model=not len(fixed))
        lp_value, x = lp
        x = x.copy()
        # Relative as well as absolute: a column of cents reads 50724.00001 from the LP.
        fractional = int_mask & (np.abs(x - np.round(x)) > 1e-9 * np.maximum(1.0, np.abs(x)))
        if not fractional.any():
            x[int_mask] = np.round(x[int_mask])
            return Status.OPTIMAL, x, lp_value + 0.0
        if not exact:
            repaired = repair(x, fractional, lp_value)
            if repaired is not None:
                return repaired
        return search(lp_value)

    def search(lp_value: float) -> tuple[Status, np.ndarray, float]:
        """Branch and bound; when it stops without any whole answer, the previous level's
        answer (it keeps every earlier level, so it is feasible here) with status time_limit."""
        if incumbent is None:
            return branch(lp_value)
        if not level_bounded[0] and current.hold_cols is None:
            # A level held by value (money, travel, continuity in the allocation) may keep
            # the previous answer; a coverage level must still be searched.
            return Status.FEASIBLE, incumbent.copy(), lp_value + 0.0
        status, x, bound = branch(lp_value, quiet_failure=True)
        if status in (Status.INFEASIBLE, Status.ERROR):
            return Status.TIME_LIMIT, incumbent.copy(), lp_value + 0.0
        return status, x, bound

    def repair(x_lp: np.ndarray, fractional: np.ndarray, lp_value: float
               ) -> tuple[Status, np.ndarray, float] | None:
        """Branch and bound on a neighbourhood of the fractional columns, every other column at
        its LP value.

        Budgets, yuan caps and volunteer hours are the only rows that break the network's
        integrality, so few columns are fractional and this small MIP is quick. The first
        neighbourhood frees the other columns of the fractional columns' needs (so a need can be
        rerouted or left unserved by a whole unit); when that has no whole answer, every column
        of every row a fractional column is in; then every column where the LP left the last
        whole answer, the others kept at that answer (so one whole answer exists). A level
        that is not certified (``Level.certify=False``: travel, continuity) tries that last
        neighbourhood second, and since it always has a whole answer, the wide one never: a
        better travel or continuity the wide one would find is given up for the time (on the
        city, travel 0.002 % longer and continuity 5 more, session 13). The LP value stays
        the bound, so the answer says how far it may be. ``None`` when none has a whole answer.
        """
        rounded = np.where(int_mask, np.round(x_lp), x_lp)
        free = fractional.copy()
        free[eq_col[np.isin(eq_row_of, np.unique(eq_row_of[fractional[eq_col]]))]] = True
        wide = fractional.copy()
        wide[a_index[np.isin(a_row, np.unique(a_row[fractional[a_index]]))]] = True
        # ... and the rest of those columns' needs, so a need in a full row can give way.
        wide[eq_col[np.isin(eq_row_of, np.unique(eq_row_of[wide[eq_col]]))]] = True
        tries = [(free, rounded), (wide, rounded)]
        if incumbent is not None:
            # A level held by value rows (money, travel) rarely rounds: the LP sits exactly on
            # them. Every column the LP moved away from the last whole answer, with the rest of
            # their needs, is free; the others keep that answer, so it is a whole answer here.
            moved = fractional | (np.abs(rounded - incumbent) > 1e-9)
            moved[eq_col[np.isin(eq_row_of, np.unique(eq_row_of[moved[eq_col]]))]] = True
            tries.append((moved, incumbent))
            # Travel and continuity (not certified: on a large model not searched): on the district
            # demo the wide neighbourhood took 0.4-0.7 s to find travel's answer (10,977 free
            # columns) and to find none for continuity (10,373); from the last answer the same
            # values came from 6,105 and 3,715 free columns in half the time.
            if not current.certify:
                tries.insert(1, tries.pop())
        for neighbourhood, start in tries:
            t = time.perf_counter()
            status, x = branch_on(neighbourhood, start)
            if os.environ.get("WULIAN_TRACE"):
                print(f"  repair: {fractional.sum()} fractional, {neighbourhood.sum()} free "
                      f"of {n}: {status}, {time.perf_counter() - t:.2f}s")
            if status not in (Status.INFEASIBLE, Status.ERROR):
                value = float(np.asarray(current.cost, float) @ x)
                if incumbent is not None:
                    # Stopped at its node limit, the search may hold a worse answer than the
                    # one it started from.
                    kept = float(np.asarray(current.cost, float) @ incumbent)
                    if better(current, kept, value):
                        x, value = incumbent.copy(), kept
                close = close_enough(value, lp_value)
                return (Status.OPTIMAL if close else Status.FEASIBLE), x, lp_value + 0.0
        return None

    def branch_on(free: np.ndarray, start: np.ndarray) -> tuple[Status, np.ndarray]:
        """Branch and bound on the columns ``free`` only, every other column at ``start``: a
        MIP of just those columns and the rows they are in (earlier levels' value rows
        included), what the fixed columns put in a row moved into its bounds. HiGHS' MIP on
        the whole model with the other columns fixed by their bounds spent most of a street's
        repair time setting up that model. ``(infeasible, start)`` when there is no whole
        answer, as when ``start`` breaks a row none of ``free`` is in.

        Where levels imply holds (a searched solve), a column their holds fix is not free:
        it can take one value only, and on the district demo half of a money or travel
        repair's 10,000 free columns were such columns, in the MIP for nothing."""
        if searching and level_bounded[0]:
            settled = cur_lo >= cur_hi
            free = free & ~settled
            start = np.where(settled, cur_lo, start)
        lp = h.getLp()
        m = lp.a_matrix_
        starts = np.asarray(m.start_, np.int64)
        index = np.asarray(m.index_, np.int64)
        value = np.asarray(m.value_, float)
        n_rows = lp.num_row_
        if m.format_ == highspy.MatrixFormat.kColwise:
            col_of, row_of = np.repeat(np.arange(n), np.diff(starts)), index
        else:
            row_of, col_of = np.repeat(np.arange(n_rows), np.diff(starts)), index
        row_lo = np.asarray(lp.row_lower_, float)
        row_hi = np.asarray(lp.row_upper_, float)
        on_free = free[col_of]
        fixed_part = np.bincount(row_of[~on_free], minlength=n_rows,
                                 weights=value[~on_free] * start[col_of[~on_free]])
        touched = np.zeros(n_rows, bool)
        touched[row_of[on_free]] = True
        tolerance = h.getOptions().primal_feasibility_tolerance
        broken = (fixed_part < row_lo - tolerance) | (fixed_part > row_hi + tolerance)
        if (broken & ~touched).any():
            return Status.INFEASIBLE, start
        cols = np.flatnonzero(free)
        rows_in = np.flatnonzero(touched)
        col_at = np.full(n, -1)
        col_at[cols] = np.arange(len(cols))
        row_at = np.full(n_rows, -1)
        row_at[rows_in] = np.arange(len(rows_in))
        r, c, v = row_at[row_of[on_free]], col_at[col_of[on_free]], value[on_free]
        order = np.lexsort((c, r))
        r, c, v = r[order], c[order], v[order]
        sub = new_highs(threads, time_limit, seed)
        sub.addVars(len(cols), cur_lo[cols], cur_hi[cols])
        sub.addRows(len(rows_in), row_lo[rows_in] - fixed_part[rows_in],
                    row_hi[rows_in] - fixed_part[rows_in], len(v),
                    np.searchsorted(r, np.arange(len(rows_in))).astype(np.int32),
                    c.astype(np.int32), v)
        sub.changeColsCost(len(cols), np.arange(len(cols), dtype=np.int32),
                           np.asarray(current.cost, float)[cols])
        sub.changeObjectiveSense(highspy.ObjSense.kMaximize if current.sense == "max"
                                 else highspy.ObjSense.kMinimize)
        whole = np.flatnonzero(int_mask[cols]).astype(np.int32)
        if len(whole):
            sub.changeColsIntegrality(len(whole), whole,
                                      np.full(len(whole), highspy.HighsVarType.kInteger))
        sub.run()
        status = _STATUS.get(sub.getModelStatus(), Status.ERROR)
        if status == Status.TIME_LIMIT and sub.getInfo().primal_solution_status != 2:
            status = Status.ERROR  # stopped before any feasible answer: nothing to hold
        if status in (Status.INFEASIBLE, Status.ERROR):
            return status, start
        x = start.copy()
        x[cols] = np.asarray(sub.getSolution().col_value, float)
        x[int_mask] = np.round(x[int_mask])
        return status, x

    def branch(lp_value: float, quiet_failure: bool = False) -> tuple[Status, np.ndarray, float]:
        """Branch and bound on the model as it stands; its bound never beats ``lp_value``."""
        set_integrality(highspy.HighsVarType.kInteger)
        # No warm start: with a start given by setSolution, HiGHS 1.16 was seen to report the
        # better objective of its search while handing back the start's columns.
        run()
        model_status = h.getModelStatus()
        status = _STATUS.get(model_status, Status.ERROR)
        info = h.getInfo()
        if status == Status.TIME_LIMIT and info.primal_solution_status != 2:
            status = Status.ERROR  # stopped before any feasible answer: nothing to hold
        if status in (Status.INFEASIBLE, Status.ERROR):
            if quiet_failure:
                return status, np.zeros(n), lp_value
            raise RuntimeError(f"level {current.name}: HiGHS returned {model_status}")
        x = np.asarray(h.getSolution().col_value, float)
        x[int_mask] = np.round(x[int_mask])
        bound = float(info.mip_dual_bound)
        bound = min(bound, lp_value) if current.sense == "max" else max(bound, lp_value)
        return status, x, bound + 0.0  # + 0.0: no "-0.0"

    row_lo_now, row_hi_now = lo.copy(), hi.copy()  # the rows' sides as they stand

    def imply(level: Level, value: float, x_now: np.ndarray) -> None:
        """Hold the level just solved by what its exact LP implies, on top of its value row.

        Every later answer keeps the level at ``value`` (less its hold's slack), so by weak
        duality from the level's exact LP (``last_lp``: earlier levels held by value rows,
        bound ``B`` over the exact model's bounds) its columns and rows together stray at most
        ``g = B − value + slack`` from the LP's optimum: every whole column whose reduced cost
        exceeds ``g`` stays at the bound it points to, and every row of whole activity whose
        multiplier exceeds ``g`` stays at its side (``optimizer.dual_bound.Lagrangian``). Exact,
        for whole answers only: so the later levels' LPs and searches lose nothing, but can no
        longer buy a later level with a fraction of an earlier one, which the value row alone
        lets an LP do (on the district demo that made money's LP 0.28 % too good, and SCIP could
        not prove yellow in two minutes). A level proven by its LP leaves ``g`` at the hold's
        slack, and its optimal face is then held exactly. ``x_now`` (the level's answer) must
        agree with every fixing; where rounding says otherwise nothing is fixed."""
        weak = last_lp["weak"]
        sign = 1.0 if level.sense == "max" else -1.0
        gap = last_lp["bound_exact"] - sign * value + hold_slack(level, value)
        if not np.isfinite(gap):
            return
        margin = max(gap, 0.0) * (1 + 1e-9) + 1e-9
        free = int_mask & (col_lo < col_hi)
        up = free & (weak.d > margin) & (np.abs(x_now - col_hi) <= 1e-6)
        down = free & (weak.d < -margin) & (np.abs(x_now - col_lo) <= 1e-6)
        col_lo[up] = col_hi[up]
        col_hi[down] = col_lo[down]
        cols = np.flatnonzero(up | down).astype(np.int32)
        cur_lo[cols] = np.maximum(cur_lo[cols], col_lo[cols])
        cur_hi[cols] = np.minimum(cur_hi[cols], col_hi[cols])
        if len(cols):
            h.changeColsBounds(len(cols), cols, cur_lo[cols], cur_hi[cols])
        y = weak.y[:rows.count]
        activity = np.bincount(a_row, weights=a_value * x_now[a_index], minlength=rows.count)
        open_row = whole_row & (row_lo_now < row_hi_now)
        to_hi = open_row & (y > margin) & np.isfinite(row_hi_now)
        to_hi &= np.abs(activity - row_hi_now) <= 1e-6
        to_lo = open_row & (y < -margin) & np.isfinite(row_lo_now)
        to_lo &= np.abs(activity - row_lo_now) <= 1e-6
        row_lo_now[to_hi] = row_hi_now[to_hi]
        row_hi_now[to_lo] = row_lo_now[to_lo]
        held_rows = np.flatnonzero(to_hi | to_lo).astype(np.int32)
        for row in held_rows.tolist():  # a few dozen rows
            h.changeRowBounds(row, row_lo_now[row], row_hi_now[row])
        if os.environ.get("WULIAN_TRACE"):
            print(f"  implied by {level.name}: gap {gap:.3g}, {int(up.sum())} columns at their "
                  f"upper bound, {int(down.sum())} at their lower, {len(held_rows)} rows at a "
                  f"side; {int((col_lo < col_hi).sum())} of {n} columns free", flush=True)

    def hold_slack(level: Level, value: float) -> float:
        # Loose enough for HiGHS' tolerances, tight enough that not even the smallest unit of
        # the level (one cent of the largest need) can be traded away.
        cost = np.abs(np.asarray(level.cost, float))
        smallest = cost[cost > 0].min() if (cost > 0).any() else 1.0
        return min(HOLD_RELATIVE * max(1.0, abs(value)), 0.1 * smallest) + 1e-9

    def value_row(level: Level, value: float) -> tuple[float, float, np.ndarray, np.ndarray]:
        """(lower, upper, columns, coefficients) of the row holding ``level`` at ``value``."""
        cost = np.asarray(level.cost, float)
        nz = np.flatnonzero(cost).astype(np.int32)
        slack = hold_slack(level, value)
        lo_, hi_ = (value - slack, inf) if level.sense == "max" else (-inf, value + slack)
        return lo_, hi_, nz, cost[nz]

    def add_value_row(level: Level, value: float) -> None:
        lo_, hi_, nz, coef = value_row(level, value)
        h.addRow(lo_, hi_, len(nz), nz, coef)

    def certify_later() -> tuple[threading.Thread, dict]:
        """The certification LP (fixed columns released, earlier colours held by value rows)
        on a copy of the model, solved in a thread while the next level goes on: on a large
        model it only reports a bound, it decides nothing (and HiGHS frees the GIL)."""
        copy = new_highs(1, time_limit, seed)
        copy.passModel(h.getModel())
        copy.changeColsIntegrality(n, all_cols, np.full(n, highspy.HighsVarType.kContinuous))
        copy.changeColsBounds(len(fixed), fixed, col_lo[fixed], col_hi[fixed])
        for earlier, earlier_value in held:
            if earlier.hold_cols is not None:
                lo_, hi_, nz, coef = value_row(earlier, earlier_value)
                copy.addRow(lo_, hi_, len(nz), nz, coef)
        box: dict = {}

        def work() -> None:
            copy.run()
            if copy.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                box["bound"] = float(copy.getInfo().objective_function_value)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        return thread, box

    def bounded(level: Level) -> bool:
        """Is the level certified? Always with ``exact``; a level marked ``certify=False`` only
        while the levels before it took a small part of the search time (a small model)."""
        if not certify:
            return False
        if level.certify or exact:
            return True
        return search_seconds > 0 and branch_and_bound and (
            time.perf_counter() - solve_start <= UNCERTIFIED_SHARE * search_seconds)

    def close_enough(value: float, bound: float) -> bool:
        return abs(bound - value) <= PROVEN_GAP * max(1.0, abs(value))

    def better(level: Level, a: float, b: float) -> bool:
        return a > b if level.sense == "max" else a < b

    results: list[LevelResult] = []
    duals: dict[str, np.ndarray] = {}
    x: np.ndarray | None = None
    overall = Status.OPTIMAL
    solve_start = time.perf_counter()
    cpu_start = time.process_time()
    all_cols = np.arange(n, dtype=np.int32)
    held: list[tuple[Level, float]] = []  # earlier levels and the values they reached
    fixed = np.zeros(0, dtype=np.int32)  # columns fixed at their value (bounds: col_lo/hi)
    cur_lo, cur_hi = col_lo.copy(), col_hi.copy()  # the bounds as they stand

    incumbent: np.ndarray | None = None  # the last whole answer, feasible for every level
    pending: list[tuple[int, threading.Thread, dict]] = []  # certificates being solved
    level_bounded = [True]  # bounded(current), decided once per level
    search_left = float(search_seconds)
    searching = search_seconds > 0 and not exact
    for k, level in enumerate(levels):
        current = level
        level_bounded[0] = bounded(level)
        last_lp.clear()
        incumbent = x  # idle columns are at their lower bound in it, so it stays feasible
        t0 = time.perf_counter()
        idle = (np.zeros(0, np.int32) if level.idle_cols is None
                else np.asarray(level.idle_cols, dtype=np.int32))
        if len(idle):
            h.changeColsBounds(len(idle), idle, col_lo[idle], col_lo[idle])
            cur_hi[idle] = col_lo[idle]
        cost = np.asarray(level.cost, float)
        sense = highspy.ObjSense.kMaximize if level.sense == "max" else highspy.ObjSense.kMinimize
        h.changeObjectiveSense(sense)
        h.changeColsCost(n, all_cols, cost)
        relaxed = None  # the level's LP relaxation, when solved already
        if level.name in dual_levels:
            set_integrality(highspy.HighsVarType.kContinuous)
            run()
            if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                duals[level.name] = np.asarray(h.getSolution().row_dual, float)[:rows.count]
                # The same LP solve() starts from: not run twice (a run of no pivot still
                # sets up and checks the basis, on a street about a fifth of its LP time).
                relaxed = (float(h.getInfo().objective_function_value),
                           np.asarray(h.getSolution().col_value, float))
                remember_lp(exact_model=not len(fixed))
        status, x, bound = solve(relaxed)
        value = float(cost @ x)

        def search_level(k: int = k, cost: np.ndarray = cost) -> None:
            """The exact search, on its share of the time left, from the answer in hand. A
            search that cannot bound its level at all in its share (SCIP still at the root)
            ends the searching of this solve: the levels after it are as large."""
            nonlocal status, x, bound, value, search_left
            if search_left <= 0 or x is None or not branch_and_bound:
                return  # no search, or no answer in hand to search from
            share = search_left / max(1, sum(lv.certify for lv in levels[k:]))
            if share <= 0.05:
                return
            # A search's share is CPU seconds of this process: what it used is counted so,
            # and SCIP, which takes a wall-clock limit, gets the share stretched by the pace
            # this solve has run at so far (CPU over wall). On a shared machine (the district
            # demo's searches ran at a quarter to a third of a core at load 5-8) a wall-clock
            # share lost yellow's and green's proofs to the load, not to their difficulty.
            t = time.process_time()
            wall = time.perf_counter() - solve_start
            pace = min(1.0, max(MIN_PACE, (t - cpu_start) / wall)) if wall > 0.05 else 1.0
            assert x is not None  # solve() gave the level its answer
            found = exact_search(x, value, share / pace)
            search_left -= time.process_time() - t
            if found is None:
                return
            if not np.isfinite(found[2]) or found[2] == bound:
                search_left = 0.0
            status, x, bound = found
            value = float(cost @ x)

        if len(fixed) and not level_bounded[0]:
            bound = float("nan")  # the fixed model's bound is no bound of the whole
            status = Status.FEASIBLE
        elif len(fixed) and not exact and not searching:
            pending.append((len(results), *certify_later()))
            bound, status = float("nan"), Status.FEASIBLE  # until the certificate is in
        elif len(fixed):
            # Certify: release the fixed columns, hold earlier levels by value only, bound by
            # the LP relaxation.
            h.changeColsBounds(len(fixed), fixed, col_lo[fixed], col_hi[fixed])
            cur_lo[fixed], cur_hi[fixed] = col_lo[fixed], col_hi[fixed]
            first_value_row = h.getNumRow()
            for earlier, earlier_value in held:
                if earlier.hold_cols is not None:
                    add_value_row(earlier, earlier_value)
            bound = lp_bound()
            if close_enough(value, bound):
                status = Status.OPTIMAL
            elif searching and not np.isnan(bound):
                status = Status.FEASIBLE
                search_level()
            elif not exact or np.isnan(bound):
                status = Status.FEASIBLE  # the bound (if any) says how far it can be
            else:
                # Fixing may have lost something, or the relaxation is loose: search the exact
                # model from the answer in hand, within the time limit.
                incumbent = x
                status, x2, mip_bound = solve()
                value2 = float(cost @ x2)
                if better(level, value2, value):
                    x, value = x2, value2
                bound = min(bound, mip_bound) if level.sense == "max" else max(bound, mip_bound)
                status = Status.OPTIMAL if close_enough(value, bound) else (
                    Status.TIME_LIMIT if status == Status.TIME_LIMIT else Status.FEASIBLE)
            extra = np.arange(first_value_row, h.getNumRow(), dtype=np.int32)
            h.deleteRows(len(extra), extra)
            h.changeColsBounds(len(fixed), fixed, x[fixed], x[fixed])
            cur_lo[fixed], cur_hi[fixed] = x[fixed], x[fixed]
        elif searching and level_bounded[0] and status != Status.OPTIMAL:
            search_level()  # no column fixed: the LP solve() began with is the exact model's
        if status != Status.OPTIMAL and overall != Status.TIME_LIMIT:
            overall = Status.TIME_LIMIT if status == Status.TIME_LIMIT else Status.FEASIBLE
        if searching and level_bounded[0] and last_lp.get("exact") and "weak" in last_lp:
            imply(level, value, x)
        if len(idle):
            h.changeColsBounds(len(idle), idle, cur_lo[idle], col_hi[idle])
            cur_hi[idle] = col_hi[idle]
        results.append(LevelResult(level.name, level.sense, value, bound, status,
                                   time.perf_counter() - t0))
        held.append((level, value))
        if level.hold_cols is None:
            add_value_row(level, value)
        else:
            hold = np.asarray(level.hold_cols, dtype=np.int32)
            fixed = np.concatenate([fixed, hold])
            h.changeColsBounds(len(hold), hold, x[hold], x[hold])
            cur_lo[hold], cur_hi[hold] = x[hold], x[hold]
    for index, thread, box in pending:
        thread.join()
        done = results[index]
        done.bound = box.get("bound", float("nan")) + 0.0
        if close_enough(done.value, done.bound):
            done.status = Status.OPTIMAL
    statuses = {r.status for r in results}
    overall = (Status.TIME_LIMIT if Status.TIME_LIMIT in statuses else
               Status.OPTIMAL if statuses <= {Status.OPTIMAL} else Status.FEASIBLE)
    return LexResult(x=x if x is not None else np.zeros(n), levels=results, duals=duals,
                     status=overall, build_seconds=build,
                     solve_seconds=time.perf_counter() - solve_start)
