"""Warm re-solves of the budget lab: each level's LP and the optimal bases it keeps.

A level is solved in :class:`LevelLP`, the aggregate projected on the columns that level
needs; it keeps its optimal basis from the baseline solve (:class:`StoredBasis`), answers from
it without HiGHS while it is still optimal, and starts HiGHS from it otherwise.
:func:`chain_basis` and :func:`dial_basis` make the start bases of the baseline's later levels
and of the equity dial's LPs. docs/model.md §2 ("Solving a level, and re-solving") says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np

from wulian.optimizer.allocation import TIER_LEVELS
from wulian.optimizer.budget.aggregate import RED, AggregateColumns, AggregateLP
from wulian.optimizer.lexmip import new_highs

_INF = highspy.kHighsInf

_STATUS_OF = (highspy.HighsBasisStatus.kLower, highspy.HighsBasisStatus.kBasic,
              highspy.HighsBasisStatus.kUpper, highspy.HighsBasisStatus.kZero)
_LOWER, _BASIC, _UPPER, _ZERO = 0, 1, 2, 3
PRIMAL_TOLERANCE = 1e-7  # HiGHS' primal and dual feasibility tolerances (its defaults)
DUAL_FEASIBILITY = 1e-7


def highs_basis(col_status: np.ndarray, row_status: np.ndarray, *,
                alien: bool = True) -> highspy.HighsBasis:
    """A HiGHS basis from statuses as small integers (HiGHS' enum values). ``alien``: HiGHS
    checks it by factorising it and, should the count of basic variables or the rank be off,
    completes it (deterministically) rather than refusing it; a basis known to be one (an
    optimum's) is not marked, as the check costs milliseconds on the city each time."""
    basis = highspy.HighsBasis()
    basis.col_status = [_STATUS_OF[s] for s in col_status.tolist()]
    basis.row_status = [_STATUS_OF[s] for s in row_status.tolist()]
    basis.valid = True
    basis.alien = alien
    return basis


@dataclass
class StoredBasis:
    """A level's optimal basis in the baseline solve, kept to start every later solve of the
    level: as HiGHS takes it, as statuses (small integers), and its reduced costs and row
    duals, which depend on the basis and the level's costs only — not on any bound."""

    basis: highspy.HighsBasis
    col_status: np.ndarray
    row_status: np.ndarray
    col_dual: np.ndarray
    row_dual: np.ndarray


class LevelLP:
    """The LP one level is solved in: the model projected on the columns the level needs.

    A segment enters the model only through its group's row (Σ arcs = Σ q φ) and, if red,
    through the equity dial's rows; a colour level weighs only its own colour's segments and
    the money level none. So, with the dial off, a level can leave out the segments of every
    other colour — their group's row keeps Σ q × their lower bounds ≤ Σ arcs ≤ Σ q × their
    upper bounds, the exact projection of their box on that sum — and the dial's rows and
    columns (free then). Its LP is the model's projected on the columns it keeps: the same
    optimum, the same optimal face on those columns, the same fund duals. On the city it has
    a third of the columns, and HiGHS' cost of a run, even one of no pivot (setting the basis
    up, checking the answer), grows with them. With the dial on the red segments stay in, and
    the dial's rows with them.

    Each view is one HiGHS instance; ``basis`` holds the start basis of each level solved in
    it, ``stored`` (dial off) the baseline's optimum behind it. Bounds are the whole model's,
    mapped in by :meth:`load`."""

    def __init__(self, lp: AggregateLP, colours: frozenset, dial: bool, *, threads: int,
                 seed: int):
        rows = lp.rows
        n = lp.n_cols
        keep_col = np.ones(n, bool)
        keep_col[lp.seg] = np.isin(lp.seg_tier, [TIER_LEVELS.index(c) for c in colours])
        keep_row = np.ones(rows.count, bool)
        if not dial:
            keep_col[lp.short] = keep_col[lp.city] = False
            for family in ("city_red", "floor", "deviation"):
                keep_row[lp.family(family)] = False
        self.dial = dial
        self.cols = np.flatnonzero(keep_col)
        self.rows = np.flatnonzero(keep_row)
        self.col_of = np.full(n, -1)
        self.col_of[self.cols] = np.arange(len(self.cols))
        self.row_of = np.full(rows.count, -1)
        self.row_of[self.rows] = np.arange(len(self.rows))
        row, col, val = lp.matrix
        in_row = keep_row[row]
        kept = in_row & keep_col[col]
        left_out = in_row & ~keep_col[col]
        # The columns left out that sit in a row kept: segments, each in its group's row only
        # (an equality), which is what makes the projection exact.
        self.coll_col = col[left_out]
        self.coll_row = self.row_of[row[left_out]]
        self.coll_val = val[left_out]
        self.coll_negative = bool((self.coll_val < 0).all())
        if (self.coll_col < lp.seg.start).any() or (self.coll_col >= lp.seg.stop).any() \
                or np.bincount(self.coll_col - lp.seg.start).max(initial=0) > 1 \
                or (lp.row_lo[self.rows[self.coll_row]]
                    != lp.row_hi[self.rows[self.coll_row]]).any():
            raise AssertionError("a view left out a column that is not a group's segment")
        is_seg = (self.cols >= lp.seg.start) & (self.cols < lp.seg.stop)
        self.seg = np.where(is_seg, self.cols - lp.seg.start, -1)  # segment of each column
        self.tier = np.where(is_seg, lp.seg_tier[np.where(is_seg, self.seg, 0)], -1)
        self.own = {t: np.flatnonzero(self.tier == t) for t in range(len(TIER_LEVELS))}
        self.fund_rows = self.row_of[lp.fund_rows]
        self.basis: dict[str, highspy.HighsBasis] = {}
        self.stored: dict[str, StoredBasis] = {}
        # What the instance holds besides the model: ``held``, the level whose stored basis
        # it holds factorised, no run since (``held_basic``: its basic variables);
        # ``factored``, whether that was set up in this very solve, from a clean state.
        self.held: str | None = None
        self.held_basic = np.zeros(0, np.int64)
        self.factored = False

        h = self.highs = new_highs(threads, 0.0, seed)
        # Every basis a view stores comes from the simplex itself: the baseline's first level
        # is solved without presolve (on the city that was also the faster way) and each
        # later level goes on from the level before (see chain_basis). A basis
        # put together by postsolve (equality rows basic at zero, their columns nonbasic)
        # made re-solves after a fund moved by a quarter take thousands of pivots instead of
        # hundreds.
        h.setOptionValue("presolve", "off")
        # Devex dual pricing: a run starts from a basis just set, for which HiGHS' default
        # (dual steepest edge) first computes every row's exact weight — one solve with the
        # basis per row of the level's LP. The re-solves are a few hundred pivots at most, and
        # on the city devex took about 8% less time over them (worst: 0.47 s against 0.51 s
        # CPU), for the same level values to HiGHS' tolerances.
        h.setOptionValue("simplex_dual_edge_weight_strategy", 1)
        n_cols, n_rows = len(self.cols), len(self.rows)
        lo, hi = lp.col_lo[self.cols], lp.col_hi[self.cols]
        h.addCols(n_cols, np.zeros(n_cols), lo, hi, 0, np.zeros(n_cols, np.int32),
                  np.zeros(0, np.int32), np.zeros(0))
        # The view's matrix (entries in whole-model order, so by row), kept in step with
        # the instance's by change_coefficients.
        self.kept = np.flatnonzero(kept)
        self.matrix = (self.row_of[row[kept]], self.col_of[col[kept]], val[kept].copy())
        r, c, v = self.matrix
        nonzero = v != 0  # set_demand may have zeroed a red coefficient
        r, c, v = r[nonzero], c[nonzero], v[nonzero]
        starts = np.searchsorted(r, np.arange(n_rows)).astype(np.int32)
        row_lo, row_hi = self._row_bounds(lp.col_lo, lp.col_hi, lp.row_lo, lp.row_hi)
        h.addRows(n_rows, np.where(np.isfinite(row_lo), row_lo, -_INF),
                  np.where(np.isfinite(row_hi), row_hi, _INF), len(c), starts,
                  c.astype(np.int32), v)
        # What the HiGHS instance holds now, so each change sends only what differs.
        self.now = {"col_lo": lo.copy(), "col_hi": hi.copy(), "row_lo": row_lo,
                    "row_hi": row_hi, "cost": np.zeros(n_cols)}

    def _row_bounds(self, col_lo: np.ndarray, col_hi: np.ndarray, row_lo: np.ndarray,
                    row_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The kept rows' bounds, less what the left-out columns can contribute."""
        lo, hi = row_lo[self.rows], row_hi[self.rows]
        if len(self.coll_col):
            a, j = self.coll_val, self.coll_col
            # The most and the least each left-out column can put in: a × its lower and upper
            # bound when a < 0 (segments in their group's row, −q, always are).
            most, least = a * col_lo[j], a * col_hi[j]
            if not self.coll_negative:
                most, least = np.maximum(most, least), np.minimum(most, least)
            n = len(self.rows)
            lo = lo - np.bincount(self.coll_row, weights=most, minlength=n)
            hi = hi - np.bincount(self.coll_row, weights=least, minlength=n)
        return lo, hi

    def load(self, col_lo: np.ndarray, col_hi: np.ndarray, row_lo: np.ndarray,
             row_hi: np.ndarray, cost: np.ndarray, *, maximise: bool) -> None:
        """Send the whole model's bounds (as they stand in this solve) and a level's costs,
        only where they differ from what the instance holds."""
        h, now = self.highs, self.now
        lo, hi = col_lo[self.cols], col_hi[self.cols]
        idx = np.flatnonzero((lo != now["col_lo"]) | (hi != now["col_hi"]))
        if len(idx):
            h.changeColsBounds(len(idx), idx.astype(np.int32), lo[idx], hi[idx])
            now["col_lo"][idx] = lo[idx]
            now["col_hi"][idx] = hi[idx]
        lo, hi = self._row_bounds(col_lo, col_hi, row_lo, row_hi)
        idx = np.flatnonzero((lo != now["row_lo"]) | (hi != now["row_hi"]))
        if len(idx):
            # highspy's stubs lack changeRowsBounds, which it has at runtime.
            h.changeRowsBounds(len(idx), idx.astype(np.int32),  # type: ignore[attr-defined]
                               np.where(np.isfinite(lo[idx]), lo[idx], -_INF),
                               np.where(np.isfinite(hi[idx]), hi[idx], _INF))
            now["row_lo"][idx] = lo[idx]
            now["row_hi"][idx] = hi[idx]
        c = cost[self.cols]
        idx = np.flatnonzero(c != now["cost"])
        if len(idx):
            h.changeColsCost(len(idx), idx.astype(np.int32), c[idx])
            now["cost"] = c
        h.changeObjectiveSense(highspy.ObjSense.kMaximize if maximise
                               else highspy.ObjSense.kMinimize)

    def store(self, level: str, col_value: np.ndarray, row_value: np.ndarray,
              col_dual: np.ndarray, row_dual: np.ndarray, basic: np.ndarray,
              maximise: bool) -> StoredBasis:
        """Keep the optimum just found as the level's start in every later solve.

        The statuses are read off the answer (basic variables from HiGHS, the others at the
        bound they sit at), which is faster than converting HiGHS' basis object. A fixed
        nonbasic variable sits at both bounds: it is marked at the one its dual points to
        (upper where sense × dual > 0), so that, should a later solve leave it free, the basis
        stays dual feasible there."""
        sense = 1.0 if maximise else -1.0
        status = []
        for value, dual, lo, hi, is_basic in (
                (col_value, col_dual, self.now["col_lo"], self.now["col_hi"],
                 basic[basic >= 0]),
                (row_value, row_dual, self.now["row_lo"], self.now["row_hi"],
                 -1 - basic[basic < 0])):
            s = np.where(np.abs(value - hi) < np.abs(value - lo), _UPPER, _LOWER)
            s = np.where(lo == hi, np.where(sense * dual > 0, _UPPER, _LOWER), s)
            s = np.where(~np.isfinite(lo) & ~np.isfinite(hi), _ZERO, s).astype(np.int8)
            s[is_basic] = _BASIC
            status.append(s)
        stored = StoredBasis(highs_basis(*status, alien=False), status[0], status[1],
                             col_dual, row_dual)
        self.stored[level] = stored
        self.basis[level] = stored.basis
        return stored

    def stored_answer(self, level: str, maximise: bool) -> tuple | None:
        """The level's answer straight from its stored optimal basis, when that basis is still
        optimal with the bounds as they stand (the instance's): ``col_value, row_value,
        col_dual, row_dual, basic``, or ``None`` when it is not (or there is none).

        A basis's reduced costs and duals depend on the costs, not the bounds, so it stays
        dual feasible as long as every nonbasic variable that is not fixed sits at a finite
        bound its reduced cost agrees with (HiGHS' tolerance). Then it is optimal if the
        basic variables, solved from the nonbasic ones' bounds (one solve with the basis,
        ``B z = −A_N x_N + r_N``, HiGHS' logicals being minus the row activities), lie
        within their bounds. That is the answer HiGHS gives from that basis in no pivot — a
        run from the stored basis changes nothing — at a fraction of a run's cost (on the
        city a run of no pivot costs tens of milliseconds: it sets the whole LP up again and
        checks the answer). Equal bounds give the same answer whatever was solved before."""
        stored = self.stored.get(level)
        self.factored = False
        if stored is None:
            return None
        sense = 1.0 if maximise else -1.0
        now = self.now
        values = []
        for status, dual, lo, hi in ((stored.col_status, stored.col_dual, now["col_lo"],
                                      now["col_hi"]),
                                     (stored.row_status, stored.row_dual, now["row_lo"],
                                      now["row_hi"])):
            free = lo != hi
            d = sense * dual
            at_lo = (status == _LOWER) & free
            at_hi = (status == _UPPER) & free
            if (at_lo & (~np.isfinite(lo) | (d > DUAL_FEASIBILITY))).any() or \
                    (at_hi & (~np.isfinite(hi) | (d < -DUAL_FEASIBILITY))).any() or \
                    ((status == _ZERO) & (np.isfinite(lo) | np.isfinite(hi))).any():
                return None
            values.append(np.where(status == _UPPER, hi,
                                   np.where(status == _LOWER, lo, 0.0)))
        x, r_bound = values
        x[stored.col_status == _BASIC] = 0.0
        nonbasic_row = stored.row_status != _BASIC
        a_row, a_col, a_val = self.matrix
        n_rows = len(self.rows)
        rhs = np.where(nonbasic_row, r_bound, 0.0) - \
            np.bincount(a_row, weights=a_val * x[a_col], minlength=n_rows)
        h = self.highs
        if self.held != level:
            h.clearSolver()
            h.setBasis(stored.basis)
            # Factorises the basis. (highspy's stubs lack getBasicVariables, which it has.)
            self.held_basic = np.asarray(h.getBasicVariables()[1])  # type: ignore[attr-defined]
            self.held = level
            # Should the basis not be optimal, the run starts right here: from the same
            # clean state and basis as otherwise, with the factorisation it would make first
            # already made.
            self.factored = True
        # Else the instance still holds this basis, factorised, from the last solve (no run
        # since): the same factors as a fresh factorisation, so the same answer.
        basic = self.held_basic
        # highspy's stubs lack getBasisSolve, which it has at runtime.
        z = np.asarray(h.getBasisSolve(rhs)[1], np.float64)  # type: ignore[attr-defined]
        cols = basic >= 0
        x[basic[cols]] = z[cols]
        lo, hi = now["col_lo"], now["col_hi"]
        row_value = self.activity(x)
        if ((x < lo - PRIMAL_TOLERANCE) | (x > hi + PRIMAL_TOLERANCE)).any() or \
                ((row_value < now["row_lo"] - PRIMAL_TOLERANCE) |
                 (row_value > now["row_hi"] + PRIMAL_TOLERANCE)).any():
            return None
        return x, row_value, stored.col_dual, stored.row_dual, basic

    def activity(self, x: np.ndarray) -> np.ndarray:
        """Each row's activity ``A x``."""
        a_row, a_col, a_val = self.matrix
        return np.bincount(a_row, weights=a_val * x[a_col], minlength=len(self.rows))

    def reduced_costs(self, row_dual: np.ndarray) -> np.ndarray:
        """Each column's reduced cost ``c − Aᵀ y`` for the costs loaded."""
        a_row, a_col, a_val = self.matrix
        return self.now["cost"] - np.bincount(a_col, weights=a_val * row_dual[a_row],
                                              minlength=len(self.cols))

    def change_coefficients(self, pos: np.ndarray, val: np.ndarray) -> None:
        """Put new values into entries of the whole model's matrix (``pos``: their places in
        ``AggregateLP.matrix``) where this view holds them."""
        if not len(self.kept):
            return
        at = np.minimum(np.searchsorted(self.kept, pos), len(self.kept) - 1)
        mine = np.flatnonzero(self.kept[at] == pos)
        r, c, v = self.matrix
        v[at[mine]] = val[mine]
        self.held = None  # (only dial views hold these rows, and they store no basis)
        for i in at[mine]:  # only the dial's views hold any: one call per entry
            self.highs.changeCoeff(int(r[i]), int(c[i]), float(v[i]))


def chain_basis(agg: AggregateColumns, lp: AggregateLP, source: LevelLP, stored: StoredBasis,
                view: LevelLP) -> highspy.HighsBasis:
    """The baseline's start for a level: the optimal basis of the level before (``stored``,
    of ``source``) carried over to ``view`` — what both hold keeps its status; the
    segments ``view`` adds sit where their group's row sat (the group's first one basic
    in the row's place when the row was basic); a group ``view`` holds by its row alone
    has that row basic when one of its segments was, else at the bound its segments sat
    at. The dual simplex goes on from the level before instead of from nothing (HiGHS
    completes the basis should the count or rank be off); on the city this also halves
    the baseline's pivots, and bases found this way start re-solves well (see LevelLP)."""
    col = np.zeros(agg.n_cols, np.int8)
    row = np.zeros(lp.rows.count, np.int8)
    col[source.cols] = stored.col_status
    row[source.rows] = stored.row_status
    group0 = lp.family("group").start
    added = view.seg[(view.seg >= 0) & (source.col_of[view.cols] < 0)]
    if len(added):
        g = agg.seg_group[added]
        held = row[group0 + g]
        status = np.where(held == _UPPER, _UPPER, _LOWER).astype(np.int8)
        first = np.r_[True, g[1:] != g[:-1]]  # segments are in group order
        status[first & (held == _BASIC)] = _BASIC
        col[lp.seg.start + added] = status
        row[group0 + g] = _LOWER
    gone = source.seg[(source.seg >= 0) & (view.col_of[source.cols] < 0)]
    if len(gone):
        g = agg.seg_group[gone]
        status = col[lp.seg.start + gone]
        n_groups = len(agg.group_street)
        count = np.bincount(g, minlength=n_groups)
        basic = np.bincount(g, weights=status == _BASIC, minlength=n_groups)
        upper = np.bincount(g, weights=status == _UPPER, minlength=n_groups)
        lower = np.bincount(g, weights=status == _LOWER, minlength=n_groups)
        groups = np.unique(g)
        inside = (basic[groups] > 0) | ((upper[groups] < count[groups]) &
                                        (lower[groups] < count[groups]))
        row[group0 + groups] = np.where(inside, _BASIC, np.where(
            upper[groups] == count[groups], _UPPER, _LOWER))
    return highs_basis(col[view.cols], row[view.rows])


def dial_basis(agg: AggregateColumns, lp: AggregateLP, source: LevelLP, red: LevelLP,
               view: LevelLP, level: str) -> highspy.HighsBasis:
    """A start basis for ``level`` in a dial view, made from the baseline bases of the
    dial-off views (so it does not depend on what was solved before): every column and
    row the dial-off view of the level holds keeps its status; each red group that view
    held by its row alone gets its red segments back — all at the bound its row sat at,
    or, where the row was basic, one segment basic in its place (the one basic at the red
    level, else the group's first) and the others as they were at the red level; the
    city's red fill rate is basic and its row not, the floor and deviation rows are basic
    and the shortfall at 0. The count of basic variables matches the rows, and the basis
    is triangular over the dial-off one, so it is a basis."""
    col = np.zeros(agg.n_cols, np.int8)
    row = np.zeros(lp.rows.count, np.int8)
    col[source.cols] = source.stored[level].col_status
    row[source.rows] = source.stored[level].row_status
    if level != RED:
        segs = np.flatnonzero(lp.seg_tier == 0)
        at_red = red.stored[RED].col_status[red.col_of[lp.seg.start + segs]]
        g = agg.seg_group[segs]
        g_row = lp.family("group").start + g
        held = row[g_row]
        was_basic = at_red == _BASIC
        status = np.where(held == _BASIC, np.where(was_basic, _LOWER, at_red),
                          np.where(held == _UPPER, _UPPER, _LOWER)).astype(np.int8)
        order = np.lexsort((segs, ~was_basic, g))
        first = order[np.r_[True, g[order][1:] != g[order][:-1]]]
        status[first[held[first] == _BASIC]] = _BASIC
        col[lp.seg.start + segs] = status
        row[g_row] = _LOWER
    row[lp.family("city_red")] = _LOWER
    col[lp.city] = _BASIC
    row[lp.family("floor")] = _BASIC
    row[lp.family("deviation")] = _BASIC
    col[lp.short] = _LOWER
    return highs_basis(col[view.cols], row[view.rows])
