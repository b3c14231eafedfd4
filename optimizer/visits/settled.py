"""Once every visit is placed: bounds of travel and continuity over every pair of the whole
model (docs/matching.md, "Session 12: weak bounds and weak plans, measured").

With coverage settled (every unpinned visit placed), travel and continuity are a
transportation problem with two capacities per volunteer (slots, hour units) over *keys* (a
location and what its visits need: ``bounds.key_pairs``). Its LP relaxation over every pair
bounds travel (1,198.6 km on the demo's final matching with the hours rows' Chvátal–Gomory
cuts, where the hours flow gives 1,034.5 and the optimum is at least 1,207.0); with travel
held at the plan's, it bounds continuity.
"""

from __future__ import annotations

import math

import highspy
import numpy as np

from wulian.optimizer.lexmip import quiet_stdout
from wulian.optimizer.visits.bounds import key_pairs, pair_positions
from wulian.optimizer.visits.prepare import VisitArrays

#: Divisors of the hours rows' Chvátal–Gomory cuts (in hour units: half-hours on the demo).
CG_DIVISORS = (2, 3, 4)


def quiet_highs() -> highspy.Highs:
    """A HiGHS instance without output, single-threaded and seeded: reproducible."""
    with quiet_stdout():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    return h


def add_rows(h, index, coef, lower, upper, n_rows, n_cols):
    """Rows ``lower ≤ Σ coef·x ≤ upper`` over columns 0 … n_cols − 1, row ``index[j]``
    holding column ``j``."""
    order = np.argsort(index, kind="stable")
    starts = np.searchsorted(index[order], np.arange(n_rows))
    h.addRows(n_rows, lower, upper, n_cols, starts.astype(np.int32),
              order.astype(np.int32), coef[order].astype(float))


def placement_rows(h, key, vol, units, demand, slots, free_units) -> None:
    """The rows every placement of whole visits keeps, over columns ``j`` of (``key[j]``,
    ``vol[j]``) pairs whose visits take ``units[j]`` hour units each: each key's ``demand``
    placed, at most ``slots`` visits and ``free_units`` hour units per volunteer."""
    n, inf = len(key), highspy.kHighsInf
    demand = np.asarray(demand, float)
    add_rows(h, key, np.ones(n), demand, demand, len(demand), n)
    add_rows(h, vol, np.ones(n), np.full(len(slots), -inf), slots.astype(float), len(slots), n)
    add_rows(h, vol, units.astype(float), np.full(len(slots), -inf),
             free_units.astype(float), len(slots), n)


def start_from(h, values: np.ndarray) -> None:
    """``values`` (a checked plan) as the MIP's first incumbent."""
    given = highspy.HighsSolution()
    given.col_value = np.asarray(values, float).tolist()
    given.value_valid = True
    h.setSolution(given)


def settled_bounds(arrays: VisitArrays, used: tuple[np.ndarray, np.ndarray, np.ndarray]
                   ) -> dict:
    """Bounds of travel and continuity over every pair of the whole model when ``used``
    places every unpinned visit (continuity with travel held at the plan's):
    the LP relaxation with hours by *key* (``bounds.key_pairs``: groups of one key differ, once
    every visit is placed, only in their last volunteer), with a continuity column per group
    whose last volunteer has a pair with its key, at most the key's visits that volunteer
    makes. Returns {level: bound} in the model's units (metres, visits); empty when
    the pairs are too many to list or an LP is not solved."""
    listed = key_pairs(arrays)
    if listed is None:
        return {}
    group_key, key_units, key_count, key_arc, vol_arc, metres = listed
    n_vol = len(arrays.vol_ids)
    ug, uv, uc = used
    inf = highspy.kHighsInf
    n = len(key_arc)
    code = key_arc * n_vol + vol_arc
    by_code = np.argsort(code, kind="stable")
    # The plan on the key pairs, and its travel, continuity and units per volunteer.
    x_plan = np.zeros(n)
    np.add.at(x_plan, pair_positions(key_arc, vol_arc, n_vol, group_key[ug], uv), uc)
    travel_plan = float(metres @ x_plan)
    # Continuity columns: groups whose last volunteer has a pair with the group's key.
    g = np.flatnonzero((arrays.g_count > 0) & (group_key >= 0) & (arrays.g_last >= 0))
    want = group_key[g] * n_vol + arrays.g_last[g]
    at = np.searchsorted(code[by_code], want)
    found = (at < n) & (code[by_code][np.minimum(at, n - 1)] == want)
    g, link = g[found], by_code[at[found]]  # the group and its key pair
    n_cont = len(g)
    units = key_units[key_arc].astype(float)
    upper = np.minimum(key_count[key_arc], np.minimum(
        arrays.free_slots[vol_arc], arrays.free_units[vol_arc] // key_units[key_arc]))
    def model(cuts: bool) -> highspy.Highs:
        """The LP: the pairs and continuity columns, each key's visits, each volunteer's
        slots and hours, the continuity links, and with ``cuts`` the hours rows' cuts."""
        h = quiet_highs()
        h.addCols(n, metres.astype(float), np.zeros(n), upper.astype(float), 0,
                  np.zeros(n, np.int32), np.zeros(0, np.int32), np.zeros(0))
        h.addCols(n_cont, np.zeros(n_cont), np.zeros(n_cont), arrays.g_count[g].astype(float),
                  0, np.zeros(n_cont, np.int32), np.zeros(0, np.int32), np.zeros(0))
        placement_rows(h, key_arc, vol_arc, units, key_count, arrays.free_slots,
                       arrays.free_units)
        # Σ continuity columns of (key, volunteer) − that pair's column ≤ 0.
        h.addRows(m, np.full(m, -inf), np.zeros(m), len(order),
                  np.searchsorted(idx[order], np.arange(m)).astype(np.int32),
                  col[order].astype(np.int32), coef[order])
        if cuts:
            # Chvátal–Gomory rows of each volunteer's hours: Σ ⌊u_k ÷ d⌋·x ≤ ⌊H_i ÷ d⌋ holds
            # for every whole plan (its left side is whole and at most H_i ÷ d) and cuts off
            # the LP's part visits (on the demo the bound rises 1,193.66 → 1,198.58 km; d = 5,
            # 6, 8 or mixing in the slots row added nothing or little there).
            for d in CG_DIVISORS:
                add_rows(h, vol_arc, (key_units[key_arc] // d).astype(float),
                          np.full(n_vol, -inf), (arrays.free_units // d).astype(float),
                          n_vol, n)
        return h

    def solve(h: highspy.Highs) -> float | None:
        with quiet_stdout():
            h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        return float(h.getInfo().objective_function_value)

    pairs_linked, row_of = np.unique(link, return_inverse=True)
    m = len(pairs_linked)
    idx = np.concatenate([row_of, np.arange(m)])
    col = np.concatenate([n + np.arange(n_cont), pairs_linked])
    coef = np.concatenate([np.ones(n_cont), -np.ones(m)])
    order = np.argsort(idx, kind="stable")
    bounds: dict = {}
    value = solve(model(cuts=True))
    if value is not None:
        bounds["travel"] = math.ceil(value - 1e-6)
    # Continuity on the LP without the cuts: with them its LP took 65 s of CPU instead of
    # 0.4 s on the demo. Travel first, so continuity starts from that basis.
    h = model(cuts=False)
    if solve(h) is None:
        return bounds
    pair_cols = np.arange(n, dtype=np.int32)
    h.addRow(-inf, travel_plan, n, pair_cols, metres.astype(float))
    cont_cols = (n + np.arange(n_cont)).astype(np.int32)
    h.changeColsCost(n, pair_cols, np.zeros(n))
    h.changeColsCost(n_cont, cont_cols, -np.ones(n_cont))
    # Primal simplex: the travel LP's basis stays primal feasible under a hold at the plan's
    # travel. The dual simplex took 102 s of CPU instead of about 20 once the session-15
    # travel repair brought the plan within 1 % of the pattern LP on the demo.
    h.setOptionValue("simplex_strategy", 4)
    value = solve(h)
    if value is not None:
        bounds["continuity"] = math.floor(-value + 1e-6)
    return bounds
