"""A bound from any dual vector of an LP (weak duality), checked in exact arithmetic's spirit:
nothing the solver claims is trusted but the row multipliers it hands back.

For ``max c·x`` subject to ``lo ≤ A x ≤ hi`` and ``l ≤ x ≤ u``, every vector ``y`` whose
component is ≥ 0 where only ``hi`` is finite and ≤ 0 where only ``lo`` is gives

    c·x = (c − Aᵀy)·x + y·(A x) ≤ Σ_j max(d_j l_j, d_j u_j) + Σ_r max(y_r lo_r, y_r hi_r)

with ``d = c − Aᵀy``, for every feasible ``x`` (each term is bounded by its own box). The
right-hand side is a valid upper bound whatever ``y`` is: an optimal dual makes it the LP's
optimum, a dual the solver left when its time ran out (or one with small infeasibilities
within its tolerances) makes it a larger but still valid one. It is infinite only when a
column with a reduced cost pointing to an infinite bound remains. HiGHS' sign convention for
row duals of a maximisation is not relied on: both ``y`` and ``−y`` are tried and the smaller
finite bound is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np


def _clip(y: np.ndarray, row_lo: np.ndarray, row_hi: np.ndarray) -> np.ndarray:
    """Row multipliers with every sign that points to an infinite side set to zero."""
    y = np.where((y > 0) & ~np.isfinite(row_hi), 0.0, y)
    return np.where((y < 0) & ~np.isfinite(row_lo), 0.0, y)


def _reduced(cost: np.ndarray, col_of_entry: np.ndarray, row_of_entry: np.ndarray,
             value: np.ndarray, y: np.ndarray) -> np.ndarray:
    return cost - np.bincount(col_of_entry, weights=value * y[row_of_entry], minlength=len(cost))


def _bound_of(d: np.ndarray, y: np.ndarray, col_lo: np.ndarray, col_hi: np.ndarray,
              row_lo: np.ndarray, row_hi: np.ndarray) -> float:
    up, down = d > 0, d < 0
    if (up & ~np.isfinite(col_hi)).any() or (down & ~np.isfinite(col_lo)).any():
        return float("inf")
    terms = np.concatenate([
        np.where(up, d * np.where(up, col_hi, 0.0), 0.0)
        + np.where(down, d * np.where(down, col_lo, 0.0), 0.0),
        np.where(y > 0, y * np.where(y > 0, row_hi, 0.0), 0.0)
        + np.where(y < 0, y * np.where(y < 0, row_lo, 0.0), 0.0)])
    # Rounding in the sum of many terms, pushed to the safe side.
    return float(terms.sum() + 1e-12 * np.abs(terms).sum())


def _max_bound(cost: np.ndarray, col_lo: np.ndarray, col_hi: np.ndarray, row_lo: np.ndarray,
               row_hi: np.ndarray, col_of_entry: np.ndarray, row_of_entry: np.ndarray,
               value: np.ndarray, y: np.ndarray) -> float:
    y = _clip(y, row_lo, row_hi)
    d = _reduced(cost, col_of_entry, row_of_entry, value, y)
    return _bound_of(d, y, col_lo, col_hi, row_lo, row_hi)


@dataclass
class Lagrangian:
    """Weak duality written out per column and per row, for ``max c·x`` (a minimisation is
    ``max −c·x``): with the row multipliers ``y`` and reduced costs ``d = c − Aᵀy``, every
    feasible ``x`` has

        c·x = bound − Σ_j (max(d_j l_j, d_j u_j) − d_j x_j)
                    − Σ_r (max(y_r lo_r, y_r hi_r) − y_r (A x)_r)

    and every term of both sums is ≥ 0. So an ``x`` with ``c·x ≥ bound − g`` keeps each column
    within ``g ÷ |d_j|`` of the bound its reduced cost points to, and each row within
    ``g ÷ |y_r|`` of the side its multiplier points to: a whole column with ``|d_j| > g`` sits
    at that bound (reduced-cost fixing), a row of whole activity with ``|y_r| > g`` at that
    side."""

    bound: float  # of max c·x over the box given (col_lo, col_hi); inf when none follows
    d: np.ndarray  # reduced costs, maximising
    y: np.ndarray  # row multipliers, maximising, signs clipped to the finite sides


def lagrangian(cost: np.ndarray, col_lo: np.ndarray, col_hi: np.ndarray, row_lo: np.ndarray,
               row_hi: np.ndarray, col_of_entry: np.ndarray, row_of_entry: np.ndarray,
               value: np.ndarray, y: np.ndarray, *, maximise: bool) -> Lagrangian:
    """The :class:`Lagrangian` of ``y`` (or of ``−y``, whichever bounds tighter: HiGHS' sign
    convention is not relied on) for the LP given as arrays, written as a maximisation."""
    cost = np.asarray(cost, float) * (1.0 if maximise else -1.0)
    best: Lagrangian | None = None
    for sign in (1.0, -1.0):
        ys = _clip(sign * np.asarray(y, float), row_lo, row_hi)
        d = _reduced(cost, col_of_entry, row_of_entry, value, ys)
        found = Lagrangian(_bound_of(d, ys, col_lo, col_hi, row_lo, row_hi), d, ys)
        if best is None or found.bound < best.bound:
            best = found
    assert best is not None
    return best


def lp_arrays(h: highspy.Highs) -> tuple[np.ndarray, ...]:
    """(cost, col_lo, col_hi, row_lo, row_hi, column of each entry, row of each entry, value)
    of the LP held in ``h``, infinite sides as ±inf."""
    lp = h.getLp()
    n_cols = lp.num_col_
    m = lp.a_matrix_
    start = np.asarray(m.start_, np.int64)
    index = np.asarray(m.index_, np.int64)
    value = np.asarray(m.value_, float)
    if m.format_ == highspy.MatrixFormat.kColwise:
        col_of_entry = np.repeat(np.arange(n_cols), np.diff(start))
        row_of_entry = index
    else:
        row_of_entry = np.repeat(np.arange(lp.num_row_), np.diff(start))
        col_of_entry = index
    col_lo, col_hi = np.asarray(lp.col_lower_, float), np.asarray(lp.col_upper_, float)
    row_lo, row_hi = np.asarray(lp.row_lower_, float), np.asarray(lp.row_upper_, float)
    col_lo = np.where(col_lo <= -highspy.kHighsInf, -np.inf, col_lo)
    col_hi = np.where(col_hi >= highspy.kHighsInf, np.inf, col_hi)
    row_lo = np.where(row_lo <= -highspy.kHighsInf, -np.inf, row_lo)
    row_hi = np.where(row_hi >= highspy.kHighsInf, np.inf, row_hi)
    return (np.asarray(lp.col_cost_, float), col_lo, col_hi, row_lo, row_hi, col_of_entry,
            row_of_entry, value)


def dual_bound(h: highspy.Highs, maximise: bool) -> float:
    """A valid bound on the optimum of the LP held in ``h`` (upper when ``maximise``, lower
    otherwise) from the row duals of its last run, whatever its status; NaN when HiGHS holds
    no dual values or no finite bound follows from them."""
    solution = h.getSolution()
    if not solution.dual_valid:
        return float("nan")
    cost, col_lo, col_hi, row_lo, row_hi, col_of_entry, row_of_entry, value = lp_arrays(h)
    return array_bound(cost, col_lo, col_hi, row_lo, row_hi, col_of_entry, row_of_entry, value,
                       np.asarray(solution.row_dual, float), maximise=maximise,
                       offset=float(h.getLp().offset_))


def array_bound(cost: np.ndarray, col_lo: np.ndarray, col_hi: np.ndarray, row_lo: np.ndarray,
                row_hi: np.ndarray, col_of_entry: np.ndarray, row_of_entry: np.ndarray,
                value: np.ndarray, y: np.ndarray, *, maximise: bool, offset: float = 0.0
                ) -> float:
    """The bound of :func:`dual_bound` for an LP given as arrays (infinite sides as ±inf,
    the matrix as entries: column, row, value) and row multipliers ``y``; NaN when no finite
    bound follows from ``y`` or from ``−y``."""
    sign = 1.0 if maximise else -1.0
    found = [_max_bound(sign * cost, col_lo, col_hi, row_lo, row_hi, col_of_entry,
                        row_of_entry, value, s * y) for s in (1.0, -1.0)]
    best = min(found)
    if not np.isfinite(best):
        return float("nan")
    return sign * (best + sign * offset)
