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
"""

from __future__ import annotations

from dataclasses import replace

import highspy
import numpy as np
import pandas as pd

from wulian.optimizer.allocation import (
    CENTS_PER_YUAN,
    TIER_LEVELS,
    AllocationInput,
    build_levels,
    build_model,
    prepare_needs,
)
from wulian.optimizer.dual_bound import dual_bound
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
    needs = prepare_needs(part)
    if needs.empty or not objectives:
        return [0.0] * len(objectives)
    built = build_model(part, needs)
    offers, funds, model, rows = built.offers, built.funds, built.model, built.rows
    level_cost = {lv.name: lv.cost for lv in build_levels(needs, model)}
    n_arcs = len(model.need)
    arcs = np.arange(n_arcs)
    o, f = model.offer >= 0, model.fund >= 0
    lower = np.concatenate(rows.lower)
    upper = np.concatenate(rows.upper)
    _, first_offers, first_funds = objectives[0]
    priced_offer = offers["offer_id"].isin(first_offers.index).to_numpy()
    priced_fund = funds["fund_id"].isin(first_funds.index).to_numpy()
    upper[rows.family("offer").start + np.flatnonzero(priced_offer)] = np.inf
    upper[rows.family("fund").start + np.flatnonzero(priced_fund)] = np.inf
    starts, col, val, _ = csr(rows, n_arcs + len(needs))
    h = new_highs(1, time_limit, 0)
    n_cols = n_arcs + len(needs)
    q = needs["base_quantity"].to_numpy(float)
    h.addVars(n_cols, np.concatenate([model.lower, np.zeros(len(needs))]),
              np.concatenate([model.upper, q]))
    inf = highspy.kHighsInf  # the dropped rows
    h.addRows(rows.count, np.where(np.isfinite(lower), lower, -inf),
              np.where(np.isfinite(upper), upper, inf), len(val), starts, col, val)
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    found = []
    for weights, offer_price, fund_price in objectives:
        cost = np.zeros(n_cols)
        for name, weight in weights.items():
            if weight:
                cost += weight * level_cost[name]
        po = offers["offer_id"].map(offer_price).fillna(0.0).to_numpy(float)
        pf = funds["fund_id"].map(fund_price).fillna(0.0).to_numpy(float)
        cost[arcs[o]] -= po[model.offer[o]]
        cost[arcs[f]] -= pf[model.fund[f]] * model.charge[f] * CENTS_PER_YUAN
        h.changeColsCost(n_cols, np.arange(n_cols, dtype=np.int32), cost)
        h.run()
        if h.getModelStatus() == highspy.HighsModelStatus.kModelEmpty:
            found.append(0.0)
        else:
            found.append(dual_bound(h, maximise=True))
    return found


def bound_inputs(data: AllocationInput, part: AllocationInput) -> AllocationInput:
    """``part`` as the bound needs it: every offer and fund with what the whole week has of
    it (a part's share would drop offers a part got none of, and their arcs with them)."""
    return replace(part, used_capacity=data.used_capacity, used_budget=data.used_budget)


def priced_total(part_bounds: list[float], offer_price: pd.Series, offer_left: pd.Series,
                 fund_price: pd.Series, fund_left_cents: pd.Series, held: float = 0.0) -> float:
    """The Lagrangian bound: the parts' bounds and what the priced rows' right-hand sides
    earn at their prices, less ``held`` (Σ λ_j v_j of value rows moved into the objective)."""
    if not all(np.isfinite(part_bounds)):
        return float("nan")
    earned = float((offer_price * offer_left.reindex(offer_price.index).fillna(0.0)).sum()
                   + (fund_price * fund_left_cents.reindex(fund_price.index).fillna(0.0)).sum())
    return float(np.sum(part_bounds)) + earned - held
