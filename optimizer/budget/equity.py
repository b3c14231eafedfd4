"""The budget lab's equity dial and its price of fairness.

:class:`EquityDial` is a floor on every street's red fill rate or a bound on its deviation
from the city's; :func:`dial_bounds` puts it into the LP's bounds, :class:`StreetsAloneLP`
gives what each street could reach alone (``max_alone``), and :func:`price_of_fairness` what
the dial costs against the same budgets without it. docs/model.md §2 ("Equity dial") has the
rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import highspy
import numpy as np
import pandas as pd

from wulian.optimizer.allocation import TIER_LEVELS
from wulian.optimizer.budget.aggregate import RED, AggregateColumns, AggregateLP
from wulian.optimizer.lexmip import Rows, csr, new_highs

if TYPE_CHECKING:
    from wulian.optimizer.budget.levels import BudgetSolution

_INF = highspy.kHighsInf


@dataclass(frozen=True)
class EquityDial:
    """The equity dial: a floor on every street's red fill rate, or a bound on its deviation
    from the city-wide red fill rate (at most one of the two; neither means the dial is off).

    Attributes
    ----------
    floor
        ``F`` in [0, 1]: each street's red fill rate ≥ F (capped at what the street can reach).
    deviation
        ``D`` in [0, 1]: |street red fill rate − city red fill rate| ≤ D.
    """

    floor: float | None = None
    deviation: float | None = None

    def __post_init__(self) -> None:
        if self.floor is not None and self.deviation is not None:
            raise ValueError("the equity dial takes a floor or a deviation, not both")
        for name in ("floor", "deviation"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"equity {name} must lie in [0, 1], not {value}")

    @property
    def active(self) -> bool:
        return self.floor is not None or self.deviation is not None

    def describe(self) -> str:
        if self.floor is not None:
            return f"red floor {self.floor:.0%}"
        if self.deviation is not None:
            return f"red deviation ≤ {self.deviation:.0%}"
        return "off"



def dial_bounds(agg: AggregateColumns, lp: AggregateLP, equity: EquityDial | None,
                context: tuple[np.ndarray, BudgetSolution] | None, col_hi: np.ndarray,
                row_lo: np.ndarray, row_hi: np.ndarray) -> np.ndarray:
    """Put the dial into the bounds of the floor or deviation rows and of the shortfall
    column; returns what each red street is held to before any shortfall: its floor
    (floor dial) or how far below ``city − D`` it may stay (deviation dial), NaN when off.
    """
    n_r = len(agg.red_streets)
    target = np.full(n_r, np.nan)
    if n_r == 0 or equity is None or not equity.active:
        return target
    # A street exactly at its reachable maximum must stay feasible through rounding.
    tol = 1e-9
    assert context is not None  # an active dial comes with max_alone and the undialled solve
    max_alone, free = context
    if equity.floor is not None:
        target = np.minimum(equity.floor, np.maximum(max_alone - tol, 0.0))
        row_lo[lp.family("floor")] = target
        col_hi[lp.short] = target.max()
    else:
        d = equity.deviation
        assert d is not None  # active, and not the floor
        city_free = float(free.fill_rates().get(RED, 0.0))
        target = np.maximum(0.0, city_free - d - max_alone + tol)  # what it lacks alone
        row_lo[lp.family("deviation")] = -d - target
        row_hi[lp.family("deviation")] = d
    return target


class StreetsAloneLP:
    """Each red street alone against every capacity and budget: the red columns of the
    aggregate, with every resource row copied once per street that uses it, so the LP splits
    into one independent block per street and one solve gives every street's maximum."""

    def __init__(self, agg: AggregateColumns, lp: AggregateLP, base_budgets: pd.Series, *,
                 threads: int, seed: int):
        rows = lp.rows
        seg_red = agg.group_tier[agg.seg_group] == RED
        arc_red = agg.group_tier[agg.arc_group] == RED
        keep_col = np.zeros(agg.n_cols, bool)
        keep_col[lp.seg] = seg_red
        keep_col[lp.arc] = arc_red
        col_street = np.full(agg.n_cols, "", dtype=object)
        col_street[lp.seg] = agg.group_street[agg.seg_group]
        col_street[lp.arc] = agg.group_street[agg.arc_group]
        families = ("group", "offer", "fund", "group_fund", "pool", "street_hours")
        r_all, c_all, v_all = [], [], []
        for fam in families:
            if not any(name == fam for name, _, _ in rows.names):
                continue
            i = lp.family_index(fam)
            r, c, v = rows.row[i], rows.col[i], rows.val[i]
            keep = keep_col[c]
            r_all.append(r[keep])
            c_all.append(c[keep])
            v_all.append(v[keep])
        r = np.concatenate(r_all)
        c = np.concatenate(c_all)
        v = np.concatenate(v_all)
        key = pd.DataFrame({"row": r, "street": col_street[c]})
        new_row = key.groupby(["row", "street"], sort=True).ngroup().to_numpy()
        self.orig_row = pd.Series(r).groupby(new_row).first().to_numpy()
        cols = np.flatnonzero(keep_col)
        new_col = np.full(agg.n_cols, -1)
        new_col[cols] = np.arange(len(cols))
        lo, hi = lp.row_lo[self.orig_row], lp.row_hi[self.orig_row]
        sub = Rows()
        sub.add("copy", new_row, new_col[c], v, lo, hi)
        self.n = len(cols)
        self.rows = sub
        self.agg = agg
        # Objective: Σ over red streets of the street's fill rate (blocks are independent).
        street_code = pd.Series(np.arange(len(agg.red_streets)), index=agg.red_streets)
        seg_cols = np.flatnonzero(seg_red)
        self.seg_new = new_col[lp.seg.start + seg_cols]
        self.seg_street = street_code.reindex(
            agg.group_street[agg.seg_group[seg_cols]]).to_numpy().astype(np.int64)
        cost = np.zeros(self.n)
        cost[self.seg_new] = 1.0 / agg.red_street_needs[self.seg_street]
        fund_rows = lp.fund_rows
        self.fund_copy = np.flatnonzero(np.isin(self.orig_row, fund_rows)).astype(np.int32)
        self.fund_of_copy = self.orig_row[self.fund_copy] - fund_rows[0] if len(fund_rows) \
            else np.zeros(0, np.int64)
        self.highs = _whole_highs(self.n, np.zeros(self.n), lp.col_hi[cols], sub, threads,
                                  seed)
        self.highs.changeObjectiveSense(highspy.ObjSense.kMaximize)
        self.highs.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), cost)
        # Solved once with the scenario's budgets; every solve starts from that basis, so the
        # answer does not depend on what was solved before.
        self.start_basis = None
        self.solve(base_budgets)
        self.start_basis = self.highs.getBasis()

    def solve(self, budgets: pd.Series) -> np.ndarray:
        """Each red street's red fill rate with everything that may serve it."""
        agg = self.agg
        h = self.highs
        if len(self.fund_copy):
            upper = budgets.to_numpy(float)[self.fund_of_copy]
            # highspy's stubs lack changeRowsBounds, which it has at runtime.
            h.changeRowsBounds(len(self.fund_copy), self.fund_copy,  # type: ignore[attr-defined]
                               np.full(len(self.fund_copy), -_INF), upper)
        if self.start_basis is not None:
            h.clearSolver()
            h.setBasis(self.start_basis)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"max_alone: HiGHS returned {h.getModelStatus()}")
        x = np.asarray(h.getSolution().col_value, float)
        filled = np.bincount(self.seg_street, weights=x[self.seg_new],
                             minlength=len(agg.red_streets))
        return np.clip(filled / agg.red_street_needs, 0.0, 1.0)


def _whole_highs(n_cols: int, col_lo: np.ndarray, col_hi: np.ndarray, rows: Rows,
                 threads: int, seed: int) -> highspy.Highs:
    """A HiGHS instance holding ``rows`` over ``n_cols`` columns."""
    h = new_highs(threads, 0.0, seed)
    h.addCols(n_cols, np.zeros(n_cols), col_lo, col_hi, 0, np.zeros(n_cols, np.int32),
              np.zeros(0, np.int32), np.zeros(0))
    start, index, value, _ = csr(rows, n_cols)
    lo = np.concatenate(rows.lower) if rows.lower else np.zeros(0)
    hi = np.concatenate(rows.upper) if rows.upper else np.zeros(0)
    h.addRows(rows.count, np.where(np.isfinite(lo), lo, -_INF),
              np.where(np.isfinite(hi), hi, _INF), len(index), start, index, value)
    return h


def price_of_fairness(fair: BudgetSolution, free: BudgetSolution) -> pd.DataFrame:
    """What the equity dial costs: per level, the value without the dial, with it, and the
    price (what is lost: colour values and fill rates go down, money goes up).

    Returns
    -------
    pandas.DataFrame
        ``level, measure, without_dial, with_dial, price`` for each colour's ``value`` (Σ
        urgency × served ÷ needed) and ``fill_points`` (fill rate in percentage points), and
        the ``money`` level's yuan. Lexicographically the price is ≥ 0: the red price is never
        negative, and a later colour can gain only where an earlier one lost.
    """
    rows = []
    for t in TIER_LEVELS:
        a = float(free.values()[t])
        b = float(fair.values()[t])
        rows.append((t, "value", a, b, a - b))
        a = float(free.fill_rates()[t]) * 100
        b = float(fair.fill_rates()[t]) * 100
        rows.append((t, "fill_points", a, b, a - b))
    rows.append(("money", "yuan", free.money, fair.money, fair.money - free.money))
    return pd.DataFrame(rows, columns=["level", "measure", "without_dial", "with_dial", "price"])

