"""Bounds of the matching's levels, each valid for the model it is computed on: a component's
(slot relaxation flows, the LP relaxation with hours on HiGHS), a region's share of a cut of the
whole network, and the whole model's continuity bound. docs/matching.md ("Bounds, and what a
bound of a later level means") says why each holds.
"""

from __future__ import annotations

import math

import numpy as np
from ortools.graph.python import max_flow

from wulian.optimizer.geo import KM_TOLERANCE, haversine_km
from wulian.optimizer.visits.component import (
    Component,
    FlowCostRange,
    PairTable,
    class_counts,
    coverage_flow,
    solve_min_cost_flow,
)
from wulian.optimizer.visits.params import CLASSES
from wulian.optimizer.visits.prepare import VisitArrays


def _class_upper(comp: Component, pairs: PairTable) -> np.ndarray:
    """Per class: the most of its visits that could be placed at all (a valid bound)."""
    reach = np.bincount(pairs.group, weights=pairs.upper, minlength=len(comp.g_count))
    per_group = np.minimum(comp.g_count, reach)
    return np.bincount(comp.g_class, weights=per_group, minlength=len(CLASSES)).astype(np.int64)


def component_bounds(comp: Component, pairs: PairTable) -> dict:
    """Valid bounds of the full component, whatever CP-SAT is given (see
    ``exact.solve_cp_sat``).

    ``prefix[k]``: most visits of classes ≤ k placeable together, from a coverage flow that
    counts each volunteer for ``min(S_i, ⌊H_i / shortest⌋)`` visits (a relaxation: hours can
    only allow fewer); ``near``: per group, the shortest distance to a candidate volunteer.
    """
    placed = coverage_flow(comp, pairs, _relax_cap(comp, pairs))
    per_class = np.bincount(comp.g_class, weights=placed, minlength=len(CLASSES))
    near = np.full(len(comp.g_count), np.iinfo(np.int64).max)
    np.minimum.at(near, pairs.group, pairs.metres)
    cont = np.zeros(len(comp.g_count), np.int64)
    np.maximum.at(cont, pairs.group[pairs.cont == 1], pairs.upper[pairs.cont == 1])
    return {"n_max": _class_upper(comp, pairs), "prefix": np.cumsum(per_class).astype(np.int64),
            "near": near, "continuity": int(np.minimum(cont, comp.g_count).sum())}


def cheapest(values: np.ndarray, counts: np.ndarray, classes: np.ndarray,
             need: np.ndarray) -> int:
    """Σ over classes k of the ``need[k]`` smallest ``values`` among class-k visits (each group
    holding ``counts`` visits of one value): a lower bound on any plan placing ``need``."""
    order = np.lexsort((values, classes))
    v, c, k = values[order], counts[order], classes[order]
    ahead = np.cumsum(c) - c  # visits in groups sorted before this one
    before = ahead - ahead[np.searchsorted(k, k)]  # … of the same class
    take = np.clip(need[k] - before, 0, c)
    return int((v * take).sum())


def _relax_cap(comp: Component, pairs: PairTable) -> np.ndarray:
    """Per volunteer, the most visits any plan can give them: ``min(S_i, ⌊H_i ÷ shortest⌋)``
    with the shortest visit they have a pair with (the slot relaxation's capacity)."""
    shortest = np.full(len(comp.vol_ids), np.iinfo(np.int64).max)
    np.minimum.at(shortest, pairs.vol, comp.g_units[pairs.group])
    return np.minimum(comp.free_slots, comp.free_units // np.maximum(np.minimum(
        shortest, np.iinfo(np.int32).max), 1)).astype(np.int64)


def travel_floor(comp: Component, pairs: PairTable, held: np.ndarray,
                 cap: np.ndarray | None = None) -> int:
    """A lower bound on the travel (metres) of any plan placing at least ``held[k]`` visits of
    each class ``k``: the least-cost flow of exactly ``held`` in the slot relaxation (volunteer
    ``i`` takes at most ``cap[i]`` visits, hours otherwise ignored; more visits only add
    travel)."""
    n_groups, n_vol, k = len(comp.g_count), len(comp.vol_ids), len(CLASSES)
    total = int(held.sum())
    if total == 0:
        return 0
    cap = _relax_cap(comp, pairs) if cap is None else cap
    g0, v0 = k, k + n_groups
    sink = v0 + n_vol
    tails = np.concatenate([comp.g_class, g0 + pairs.group, v0 + np.arange(n_vol)])
    heads = np.concatenate([g0 + np.arange(n_groups), v0 + pairs.vol, np.full(n_vol, sink)])
    caps = np.concatenate([comp.g_count, pairs.upper, cap]).astype(np.int64)
    costs = np.concatenate([np.zeros(n_groups, np.int64), pairs.metres,
                            np.zeros(n_vol, np.int64)]).astype(np.int64)
    supplies = {c: int(held[c]) for c in range(k) if held[c]}
    supplies[sink] = -total
    flow = solve_min_cost_flow(tails, heads, caps, costs, supplies)
    return int(flow @ costs)


def load_floor(pinned: np.ndarray, g_units: np.ndarray, g_count: np.ndarray,
               g_class: np.ndarray, held: np.ndarray) -> int:
    """A lower bound on Σ_i (P_i + h_i)² over the volunteers ``pinned`` lists (every one who
    could be given a visit) for any plan placing at least ``held[k]`` visits of each class:
    the larger of Cauchy–Schwarz (the fewest hours the held counts take, spread evenly) and
    Σ P_i² + Σ L_v² over the held visits at their shortest (a volunteer's hours squared are at
    least the sum of their visits' squares)."""
    least = cheapest(g_units, g_count, g_class, held)
    squares = cheapest(g_units * g_units, g_count, g_class, held)
    active = len(pinned)
    total = int(pinned.sum()) + least
    spread = math.ceil(total * total / active) if active else 0
    return max(spread, int((pinned.astype(np.int64) ** 2).sum()) + squares)


def lp_bounds(comp: Component, pairs: PairTable, x: np.ndarray, max_rounds: int = 40,
              seed_pairs: int = 20) -> dict:
    """Bounds of the levels from the LP relaxation with hours (HiGHS), each level with every
    earlier one held at the plan's value: per coverage class the most visits, then the least
    travel, then the most continuity. Far tighter than the slot relaxation where hours bind
    (a volunteer whose hours are spent has slots left that the slot relaxation still counts).

    The LP has one column per (group, volunteer) pair, rows for each group's visits and each
    volunteer's slots and hours, and one hold row per earlier level. Column generation keeps it
    small: it starts from each group's ``seed_pairs`` nearest volunteers, the pairs in use and
    the continuity pairs, and adds every pair whose reduced cost (priced over all pairs in one
    vectorised pass) could improve the level, until none can: only then is the LP value a
    bound of the full model. A level whose generation does not settle within ``max_rounds``
    gets no LP bound. HiGHS runs single-threaded with a warm start level to level, so the
    bounds are reproducible. Returns {level: bound} in the model's units.
    """
    import highspy

    from wulian.optimizer.lexmip import quiet_stdout

    n_groups, n_vol = len(comp.g_count), len(comp.vol_ids)
    n_arcs = len(pairs.group)
    units = comp.g_units[pairs.group].astype(float)
    arc_class = comp.g_class[pairs.group]
    held = class_counts(comp, pairs, x)
    order = np.lexsort((pairs.vol, pairs.metres, pairs.group))
    rank = np.empty(n_arcs, np.int64)
    rank[order] = np.arange(n_arcs) - np.searchsorted(pairs.group[order], pairs.group[order])
    inf = highspy.kHighsInf
    with quiet_stdout():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    # Primal simplex: after a cost change or a new hold row at the plan's value the previous
    # basis stays primal feasible, so each level starts where the last one ended (the dual
    # simplex took ten times longer on the district).
    h.setOptionValue("simplex_strategy", 4)
    n_base = n_groups + 2 * n_vol
    h.addRows(n_base, np.full(n_base, -inf),
              np.concatenate([comp.g_count, comp.free_slots, comp.free_units]).astype(float),
              0, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
    hold_row = np.full(len(CLASSES), -1, np.int64)  # the row holding each class, once added
    extra_rows: dict[str, int] = {}  # "travel" → its hold row
    col_of = np.full(n_arcs, -1, np.int64)
    cols: list[int] = []

    def add(arcs: np.ndarray) -> None:
        """Columns for these arcs, with their entries in every row added so far."""
        arcs = arcs[col_of[arcs] < 0]
        if not len(arcs):
            return
        rows = [pairs.group[arcs], n_groups + pairs.vol[arcs],
                n_groups + n_vol + pairs.vol[arcs]]
        vals = [np.ones(len(arcs)), np.ones(len(arcs)), units[arcs]]
        held_at = hold_row[arc_class[arcs]]
        rows.append(held_at)
        vals.append(np.where(held_at >= 0, 1.0, 0.0))
        if "travel" in extra_rows:
            rows.append(np.full(len(arcs), extra_rows["travel"]))
            vals.append(pairs.metres[arcs].astype(float))
        r = np.stack(rows, axis=1)
        v = np.stack(vals, axis=1)
        keep = (r >= 0) & (v != 0)
        count = keep.sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int32)
        h.addCols(len(arcs), np.zeros(len(arcs)), np.zeros(len(arcs)),
                  pairs.upper[arcs].astype(float), int(count.sum()), starts,
                  r[keep].astype(np.int32), v[keep])
        col_of[arcs] = np.arange(len(cols), len(cols) + len(arcs))
        cols.extend(arcs.tolist())

    add(np.flatnonzero((rank < seed_pairs) | (x > 0) | (pairs.cont == 1)))

    def optimise(cost: np.ndarray) -> float | None:
        """min cost·y over all pairs by column generation; None when it does not settle."""
        for _ in range(max_rounds):
            idx = np.asarray(cols, np.int64)
            h.changeColsCost(len(idx), np.arange(len(idx), dtype=np.int32), cost[idx])
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
            dual = np.asarray(h.getSolution().row_dual)
            price = dual[pairs.group] + dual[n_groups + pairs.vol] \
                + units * dual[n_groups + n_vol + pairs.vol]
            held_at = hold_row[arc_class]
            price = price + np.where(held_at >= 0, dual[np.maximum(held_at, 0)], 0.0)
            if "travel" in extra_rows:
                price = price + pairs.metres * dual[extra_rows["travel"]]
            reduced = cost - price
            enter = np.flatnonzero((col_of < 0) & (reduced < -1e-9))
            if not len(enter):
                return float(h.getInfo().objective_function_value)
            add(enter)
        return None

    bounds: dict = {}
    for k in np.unique(comp.g_class):
        value = optimise(np.where(arc_class == k, -1.0, 0.0))
        if value is not None:
            bounds[int(k)] = math.floor(-value + 1e-6)
        members = np.flatnonzero(arc_class[cols] == k)
        row = h.getNumRow()
        h.addRow(float(held[k]), inf, len(members), members.astype(np.int32),
                 np.ones(len(members)))
        hold_row[k] = row
    value = optimise(pairs.metres.astype(float))
    if value is not None:
        bounds["travel"] = math.ceil(value - 1e-6)
    idx = np.asarray(cols, np.int64)
    row = h.getNumRow()
    h.addRow(-inf, float(pairs.metres @ x), len(idx), np.arange(len(idx), dtype=np.int32),
             pairs.metres[idx].astype(float))
    extra_rows["travel"] = row
    value = optimise(-pairs.cont.astype(float))
    if value is not None:
        bounds["continuity"] = math.floor(-value + 1e-6)
    return bounds


def cut_bounds(comp: Component, pairs: PairTable, cap: np.ndarray, vols: np.ndarray,
               key_of: np.ndarray, key_loc: np.ndarray, reqs: list, ex_pairs: list,
               li: np.ndarray, vi: np.ndarray, n_vol: int) -> tuple[np.ndarray, list]:
    """Per class prefix ``k``: a cut of the whole model's slot relaxation restricted to this
    region's groups of classes ≤ k — the visits it pays for (groups off the source side) and
    the volunteers it cuts (a bool mask over all volunteers).

    The region's own minimum cut (one max-flow per prefix on its arcs, group → volunteer arcs
    uncuttable) is extended to the pairs its model leaves out (``ex_pairs``, per requirement):
    a group left on the source side would let flow through them, so their volunteers join the
    cut. Every group of the region is then either paid for or has every admissible volunteer
    cut, which is what a cut of the whole network needs of it (see
    ``combine.combine_reports``).
    """
    n_groups, n_local, k = len(comp.g_count), len(comp.vol_ids), len(CLASSES)
    paid = np.zeros(k, np.int64)
    cut: list = [np.zeros(n_vol, bool) for _ in range(k)]
    if not n_groups:
        return paid, cut
    big = int(comp.g_count.sum()) + 1
    smf = max_flow.SimpleMaxFlow()
    src, sink, g0, v0 = 0, 1, 2, 2 + n_groups
    source_arcs = smf.add_arcs_with_capacity(
        np.zeros(n_groups, np.int32), (g0 + np.arange(n_groups)).astype(np.int32),
        np.zeros(n_groups, np.int64))
    smf.add_arcs_with_capacity((g0 + pairs.group).astype(np.int32),
                               (v0 + pairs.vol).astype(np.int32),
                               np.full(len(pairs.group), big, np.int64))
    smf.add_arcs_with_capacity((v0 + np.arange(n_local)).astype(np.int32),
                               np.ones(n_local, np.int32), cap.astype(np.int64))
    key_req = np.zeros(len(key_loc), np.int64)
    for j, (_, _, _, keys) in enumerate(reqs):
        key_req[keys] = j
    present = np.unique(comp.g_class)
    at_loc = np.zeros(max(int(li.max(initial=-1)), int(key_loc.max(initial=-1))) + 1, bool)
    for c in present:
        inside = comp.g_class <= c
        smf.set_arcs_capacity(source_arcs, np.where(inside, comp.g_count, 0).astype(np.int64))
        if smf.solve(src, sink) != smf.OPTIMAL:
            raise RuntimeError("max-flow of the coverage bound failed")
        side = np.zeros(2 + n_groups + n_local, bool)
        side[np.asarray(smf.get_source_side_min_cut(), np.int64)] = True
        on_source = side[g0:g0 + n_groups] & inside
        paid[c] = int(comp.g_count[inside & ~on_source].sum())
        mark = cut[c]
        mark[vols[side[v0:v0 + n_local]]] = True
        keys = np.unique(key_of[on_source])
        for j in np.unique(key_req[keys]):  # requirement by requirement, over its left-out pairs
            ex = ex_pairs[j]
            at_loc[key_loc[keys[key_req[keys] == j]]] = True
            mark[vi[ex[at_loc[li[ex]]]]] = True
            at_loc[:] = False
    # A prefix ending in a class the region has none of is the prefix before it.
    for c in range(1, k):
        if c not in present:
            paid[c], cut[c] = paid[c - 1], cut[c - 1]
    return paid, cut


def continuity_bound(arrays: VisitArrays, cap: np.ndarray) -> int:
    """Most visits any plan can give to the household's last volunteer: those whose last
    volunteer qualifies, lives within reach and has room, at most each volunteer's capacity."""
    g = np.flatnonzero(arrays.g_last >= 0)
    i = arrays.g_last[g]
    loc = arrays.g_loc[g]
    km = haversine_km(arrays.vol_lat[i], arrays.vol_lon[i], arrays.loc_lat[loc],
                      arrays.loc_lon[loc])
    ok = ((arrays.vol_skills[i] & arrays.g_skills[g]) == arrays.g_skills[g]) \
        & (arrays.vol_checked[i] | ~arrays.g_safe[g]) \
        & (km <= arrays.vol_reach[i] + KM_TOLERANCE) \
        & (arrays.free_slots[i] >= 1) & (arrays.free_units[i] >= arrays.g_units[g])
    per_vol = np.bincount(i[ok], weights=arrays.g_count[g[ok]], minlength=len(arrays.vol_ids))
    return int(np.minimum(per_vol, cap).sum())


#: Most (location, volunteer) pairs :func:`key_pairs` lists (a district's final instance has
#: about 0.6 M; a city's is never all placed, so never asked).
HOURS_FLOOR_PAIRS = 3_000_000


def key_pairs(arrays: VisitArrays) -> tuple[np.ndarray, ...] | None:
    """Every admissible pair of the whole model (nothing pruned), by *key* (a location and
    what its visits need, length included; groups of one key differ only in class and last
    volunteer, so in nothing travel, hours or slots see): (each group's key, each key's
    length, each key's visits, key of each pair, volunteer of each pair, metres of each pair).
    ``None`` when the pairs would be more than :data:`HOURS_FLOOR_PAIRS`. Worked out once per
    ``arrays`` (``arrays.memo``)."""
    if "key_pairs" not in arrays.memo:
        arrays.memo["key_pairs"] = _key_pairs(arrays)
    return arrays.memo["key_pairs"]


def pair_positions(key_arc: np.ndarray, vol_arc: np.ndarray, n_vol: int, keys: np.ndarray,
                   vols: np.ndarray) -> np.ndarray:
    """Where each (``keys[i]``, ``vols[i]``) pair is among the listed pairs (``key_arc``,
    ``vol_arc``, of :func:`key_pairs` or a part of them). A plan's pair must be listed (the
    listing applies the plan's own admissibility tests): one that is not would be counted on
    another pair, so it stops here instead."""
    code = key_arc * n_vol + vol_arc
    order = np.argsort(code, kind="stable")
    want = keys * n_vol + vols
    at = np.searchsorted(code[order], want)
    found = (at < len(code)) & (code[order][np.minimum(at, len(code) - 1)] == want)
    assert found.all(), f"{int((~found).sum())} of the plan's pairs are not listed"
    return order[at]


def _key_pairs(arrays: VisitArrays) -> tuple[np.ndarray, ...] | None:
    from wulian.optimizer.geo import pairs_within
    from wulian.optimizer.visits.regions import qualified, requirement_keys

    groups = np.flatnonzero(arrays.g_count > 0)
    key_of, key_loc, reqs = requirement_keys(arrays.g_loc[groups], arrays.g_skills[groups],
                                             arrays.g_safe[groups], arrays.g_units[groups])
    key_units = np.zeros(len(key_loc), np.int64)
    for _, _, units, keys in reqs:
        key_units[keys] = units
    key_count = np.bincount(key_of, weights=arrays.g_count[groups],
                            minlength=len(key_loc)).astype(np.int64)
    li, vi, _ = pairs_within(arrays.loc_lat, arrays.loc_lon, arrays.vol_lat, arrays.vol_lon,
                             arrays.vol_reach)
    if len(li) > HOURS_FLOOR_PAIRS:
        return None
    where = np.full(len(arrays.loc_lat), -1, np.int64)
    tails, heads = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for mask, safe, units, keys in reqs:
        where[key_loc[keys]] = keys
        okv = qualified(arrays.vol_skills, arrays.vol_checked, mask, safe) \
            & (arrays.free_slots >= 1) & (arrays.free_units >= units)
        rel = np.flatnonzero(okv[vi] & (where[li] >= 0))
        tails.append(where[li[rel]])
        heads.append(vi[rel])
        where[key_loc[keys]] = -1
    key_arc, vol_arc = np.concatenate(tails), np.concatenate(heads)
    metres = np.round(haversine_km(arrays.vol_lat[vol_arc], arrays.vol_lon[vol_arc],
                                   arrays.loc_lat[key_loc[key_arc]],
                                   arrays.loc_lon[key_loc[key_arc]]) * 1000.0).astype(np.int64)
    group_key = np.full(len(arrays.g_count), -1, np.int64)
    group_key[groups] = key_of
    return group_key, key_units, key_count, key_arc, vol_arc, metres


def hours_travel_floor(arrays: VisitArrays) -> int | None:
    """A lower bound on the travel (metres) of any plan that places *every* unpinned visit,
    over every admissible pair of the whole model (nothing pruned): the least-cost flow of the
    visits' hours, each hour of a visit costing its metres ÷ its length, into volunteers that
    take at most ``min(H_i, S_i × their longest admissible visit)`` hours (a plan's volunteer
    has at most ``S_i`` visits, none longer than that, and at most ``H_i`` hours). Any such
    plan is a flow of this network of the same cost, so the flow's cost bounds its travel;
    unlike the slot relaxation it counts the hours, which is what runs out. ``None`` when the
    pairs are too many to list (:func:`key_pairs`) or their costs too wide for the flow."""
    listed = key_pairs(arrays)
    if listed is None:
        return None
    _, key_units, key_count, key_arc, vol_arc, metres = listed
    if not key_count.sum():
        return 0
    n_keys, n_vol = len(key_units), len(arrays.vol_ids)
    key_hours = key_count * key_units
    # Whole costs: a visit's metres × (lcm ÷ its length) per hour unit, lcm of every length.
    lcm = int(np.lcm.reduce(np.unique(key_units)))
    longest = np.zeros(n_vol, np.int64)
    np.maximum.at(longest, vol_arc, key_units[key_arc])
    cap = np.minimum(arrays.free_units, arrays.free_slots * longest).astype(np.int64)
    v0 = n_keys
    sink = v0 + n_vol
    flow_tails = np.concatenate([key_arc, v0 + np.arange(n_vol)])
    flow_heads = np.concatenate([v0 + vol_arc, np.full(n_vol, sink)])
    caps = np.concatenate([key_hours[key_arc], cap])
    costs = np.concatenate([metres * (lcm // key_units[key_arc]), np.zeros(n_vol, np.int64)])
    supplies = {int(k): int(h) for k, h in enumerate(key_hours) if h}
    supplies[sink] = -int(key_hours.sum())
    try:
        flow = solve_min_cost_flow(flow_tails, flow_heads, caps, costs, supplies)
    except FlowCostRange:  # costs OR-Tools refuses: no floor from this flow
        return None
    except RuntimeError:  # no flow carries every hour: no plan places every visit
        return None
    return -(-int(flow @ costs) // lcm)  # ceil: travel is whole metres
