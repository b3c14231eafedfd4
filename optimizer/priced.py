"""A bound on the city's red level from the exact parts, with the shared supply priced
(issue 14, item 4; docs/model.md §1.6).

The aggregate's red bound relaxes per-household caps to group caps, which on a part of the
city put it 0.29 % above the exact red optimum. The exact model's red LP decomposes by street
once the rows that couple the streets — the capacity rows of shared offers and the budget
rows of shared funds — are moved into the objective with prices ``π ≥ 0`` (Lagrangian
relaxation):

    red* ≤ Σ_parts max { c·x_p − π·(A_shared x_p) : x_p ∈ LP of the part, shared rows dropped }
           + π·b_shared

for every ``π ≥ 0`` (weak duality: each coupled row's slack earns its price). Each part's LP
keeps every other row of the exact model — its household caps, its own offers, funds and
volunteer hours — and is bounded by ``optimizer.dual_bound`` (so HiGHS' tolerances cannot make
it too low). The prices are the aggregate's red duals on the same rows, per base unit: any
prices give a valid bound; good ones a tight one.

The later levels the same way, with the earlier colours' value rows ``z_j ≥ v_j`` (they couple
every street too) moved into the objective at prices ``λ_j ≥ 0``: level ``k``'s bound is
``Σ_parts max (c_k + Σ_j λ_j c_j − π A_shared) x_p + π·b_shared − Σ_j λ_j v_j`` (money:
maximise ``−money``, and the bound is a lower one), with ``π`` and ``λ`` the duals of the
aggregate's bound LP of that level (``BudgetModel.level_bounds(prices=…)``).

A part's LP is read once, as arrays, from the model the part is solved with
(:func:`part_lp`), and re-priced and re-solved for each level (:func:`lp_bounds`).
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
import pandas as pd

from wulian.optimizer.allocation import (
    CENTS_PER_YUAN,
    TIER_LEVELS,
    AllocationInput,
    Built,
    build_levels,
    build_model,
)
from wulian.optimizer.dual_bound import array_bound
from wulian.optimizer.lexmip import csr, new_highs


def part_red_bound(part: AllocationInput, offer_price: pd.Series, fund_price: pd.Series,
                   time_limit: float = 0.0) -> float:
    """Upper bound on ``max red − π·(shared use)`` over the LP of ``part``'s exact model with
    the rows of the priced offers (``offer_price``: offer_id → per base unit) and funds
    (``fund_price``: fund_id → per cent) dropped. NaN when HiGHS gives no bound."""
    return part_bounds(part, [({TIER_LEVELS[0]: 1.0}, offer_price, fund_price)],
                       time_limit)[0]


def part_bounds(part: AllocationInput,
                objectives: list[tuple[dict[str, float], pd.Series, pd.Series]],
                time_limit: float = 0.0) -> list[float]:
    """For each objective (level → weight, offer prices, fund prices): an upper bound on
    ``max Σ weight × level − π·(shared use)`` over the LP of ``part``'s exact model, the rows
    of every priced offer and fund dropped (those of the first objective: all objectives
    price the same rows). One model, one HiGHS instance, re-solved per objective."""
    if not objectives:
        return []
    _, first_offers, first_funds = objectives[0]
    lp = part_lp(build_model(part), first_offers.index, first_funds.index)
    return lp_bounds(lp, objectives, time_limit)


@dataclass
class PartLP:
    """A part's exact model as the priced bounds read it: its LP relaxation with the rows of
    the priced (shared) offers and funds dropped, as arrays. Made once from the model the
    part is solved with (``part_lp``), it is re-priced and re-solved for every level without
    building the model again (on the city the build was most of a priced bound's time).

    Columns are the model's: its arcs, then one unserved column per need."""

    col_lo: np.ndarray
    col_hi: np.ndarray
    row_lo: np.ndarray  # −inf where a row has no lower side
    row_hi: np.ndarray  # +inf where none, and on every dropped row
    starts: np.ndarray  # row-wise matrix (lexmip.csr)
    index: np.ndarray
    value: np.ndarray
    colour: np.ndarray  # per column: the colour level's cost (urgency ÷ base units), 0 on
    #                     unserved columns
    tier: np.ndarray  # per column: the colour's rank in TIER_LEVELS, −1 on unserved columns
    money: np.ndarray  # per column: the money level's cost (yuan per base unit)
    offer: np.ndarray  # per column: position in ``offer_ids`` of its priced offer, else −1
    fund: np.ndarray  # per column: position in ``fund_ids`` of its priced fund, else −1
    offer_ids: np.ndarray  # the priced offers this part's arcs draw on
    fund_ids: np.ndarray  # the priced funds they charge

    def cost(self, weights: dict[str, float], offer_price: pd.Series,
             fund_price: pd.Series) -> np.ndarray:
        """Σ weight × level, less each column's use of the priced rows at their prices
        (offer prices per base unit, fund prices per cent)."""
        cost = np.zeros(len(self.col_lo))
        for name, weight in weights.items():
            if not weight:
                continue
            if name in TIER_LEVELS:
                cost += weight * np.where(self.tier == TIER_LEVELS.index(name), self.colour, 0.0)
            elif name == "money":
                cost += weight * self.money
            else:
                raise ValueError(f"PartLP.cost: no level {name!r} in a priced bound")
        po = offer_price.reindex(self.offer_ids).fillna(0.0).to_numpy(float)
        pf = fund_price.reindex(self.fund_ids).fillna(0.0).to_numpy(float)
        o, f = self.offer >= 0, self.fund >= 0
        cost[o] -= po[self.offer[o]]
        cost[f] -= pf[self.fund[f]] * self.money[f] * CENTS_PER_YUAN
        return cost


def part_lp(built: Built, offer_ids: pd.Index | np.ndarray, fund_ids: pd.Index | np.ndarray
            ) -> PartLP:
    """``built``'s LP relaxation with the rows of the offers ``offer_ids`` and the funds
    ``fund_ids`` dropped (what their arcs use is priced instead, :meth:`PartLP.cost`).

    The right-hand sides of the dropped rows are never read, so the model a part is solved
    with (its share of the shared supply) gives the same LP as one built with the whole
    week's: every other row, arc and bound is the same in both."""
    needs, offers, funds, model, rows = (built.needs, built.offers, built.funds, built.model,
                                         built.rows)
    n_arcs, n_needs = len(model.need), len(needs)
    n_cols = n_arcs + n_needs
    lower = np.concatenate(rows.lower) if rows.lower else np.zeros(0)
    upper = np.concatenate(rows.upper) if rows.upper else np.zeros(0)
    priced_offer = offers["offer_id"].isin(offer_ids).to_numpy()
    priced_fund = funds["fund_id"].isin(fund_ids).to_numpy()
    upper[rows.family("offer").start + np.flatnonzero(priced_offer)] = np.inf
    upper[rows.family("fund").start + np.flatnonzero(priced_fund)] = np.inf
    starts, index, value, _ = csr(rows, n_cols)
    levels = {lv.name: lv.cost for lv in build_levels(needs, model)}
    tier_rank = pd.Series(np.arange(len(TIER_LEVELS)), index=list(TIER_LEVELS))
    tier = np.full(n_cols, -1, np.int8)
    tier[:n_arcs] = tier_rank.reindex(needs["tier"].to_numpy()[model.need]).to_numpy()
    colour = np.sum([levels[t] for t in TIER_LEVELS], axis=0)

    def local(index_of: np.ndarray, priced: np.ndarray) -> np.ndarray:
        # Per column, the position of its arc's row among the priced rows (−1: none).
        code = np.full(len(priced), -1)
        code[priced] = np.arange(int(priced.sum()))
        at = np.full(n_cols, -1)
        has = np.flatnonzero(index_of >= 0)
        at[has] = code[index_of[has]]
        return at

    offer_at = local(model.offer, priced_offer)
    fund_at = local(model.fund, priced_fund)
    return PartLP(
        col_lo=np.concatenate([model.lower, np.zeros(n_needs)]),
        col_hi=np.concatenate([model.upper, needs["base_quantity"].to_numpy(float)]),
        row_lo=lower, row_hi=upper, starts=starts, index=index, value=value,
        colour=colour, tier=tier, money=levels["money"], offer=offer_at, fund=fund_at,
        offer_ids=offers["offer_id"].to_numpy(object)[priced_offer],
        fund_ids=funds["fund_id"].to_numpy(object)[priced_fund])


def lp_bounds(lp: PartLP, objectives: list[tuple[dict[str, float], pd.Series, pd.Series]],
              time_limit: float = 0.0) -> list[float]:
    """For each objective (level → weight, offer prices, fund prices): an upper bound on the
    maximum of :meth:`PartLP.cost` over ``lp``, read from the row duals HiGHS returns
    (weak duality, ``optimizer.dual_bound``); NaN when it returns none. One HiGHS instance,
    re-solved per objective from the answer before."""
    n_cols, n_rows = len(lp.col_lo), len(lp.row_lo)
    if n_cols == 0:
        return [0.0] * len(objectives)
    inf = highspy.kHighsInf
    h = new_highs(1, time_limit, 0)
    h.addVars(n_cols, lp.col_lo, lp.col_hi)
    h.addRows(n_rows, np.where(np.isfinite(lp.row_lo), lp.row_lo, -inf),
              np.where(np.isfinite(lp.row_hi), lp.row_hi, inf), len(lp.value), lp.starts,
              lp.index, lp.value)
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    row_of_entry = np.repeat(np.arange(n_rows), np.diff(np.append(lp.starts, len(lp.index))))
    found = []
    for weights, offer_price, fund_price in objectives:
        cost = lp.cost(weights, offer_price, fund_price)
        h.changeColsCost(n_cols, np.arange(n_cols, dtype=np.int32), cost)
        h.run()
        solution = h.getSolution()
        if not solution.dual_valid:
            found.append(float("nan"))
            continue
        found.append(array_bound(cost, lp.col_lo, lp.col_hi, lp.row_lo, lp.row_hi,
                                 lp.index.astype(np.int64), row_of_entry, lp.value,
                                 np.asarray(solution.row_dual, float), maximise=True))
    return found


def priced_total(part_bounds: list[float], offer_price: pd.Series, offer_left: pd.Series,
                 fund_price: pd.Series, fund_left_cents: pd.Series, held: float = 0.0) -> float:
    """The Lagrangian bound: the parts' bounds and what the priced rows' right-hand sides
    earn at their prices, less ``held`` (Σ λ_j v_j of value rows moved into the objective)."""
    if not all(np.isfinite(part_bounds)):
        return float("nan")
    earned = float((offer_price * offer_left.reindex(offer_price.index).fillna(0.0)).sum()
                   + (fund_price * fund_left_cents.reindex(fund_price.index).fillna(0.0)).sum())
    return float(np.sum(part_bounds)) + earned - held
