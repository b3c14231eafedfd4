"""Less travel once every visit is placed (docs/matching.md, "Session 9" and "Session 15"):
a repair of a cut or pruned model's plan guided by the pattern LP.

When every unpinned visit is placed, coverage is settled and travel is a transportation problem
with two capacities per volunteer (slots, hours) over *keys* (a location and what its visits
need; groups of one key differ only in class and last volunteer). Its pattern LP over every
pair (``patterns.pattern_lp``: each volunteer's counts by length under a combination of their
whole patterns weighing at most one) is whole except at the volunteers whose patterns mix; its
whole columns elsewhere are kept and the rest of the visits are placed by a small MIP (HiGHS, a
deterministic node limit) in what is left of each volunteer. With ``search``, the restricted
model (each key's nearest volunteers and the plan's pairs) is then solved as one MIP started
from the better plan (session 12). Each result replaces the plan only when it is checked and
travels less; the plan's continuity and load follow.
"""

from __future__ import annotations

import highspy
import numpy as np

from wulian.optimizer.lexmip import quiet_stdout
from wulian.optimizer.visits.bounds import key_pairs, pair_positions
from wulian.optimizer.visits.component import (
    FlowCostRange,
    flow_costs_fit,
    solve_min_cost_flow,
)
from wulian.optimizer.visits.patterns import continuity_caps, pattern_lp
from wulian.optimizer.visits.settled import placement_rows, quiet_highs, start_from

#: Most sweeps over the visit lengths of the exchange by length (``improve_by_length``; on the
#: demo's final matching the second sweep changes nothing).
LENGTH_SWEEPS = 4
#: Each key's nearest volunteers the search looks at (with the pairs the plan uses).
NEAREST = 20
#: Reduced cost (metres, in the pattern LP) of the pairs the residual MIP looks at first.
RESIDUAL_PRICE = 600
#: Branch-and-bound nodes of the residual MIP and of the search over every kept pair: work
#: limits, so the result is reproducible.
RESIDUAL_NODES = 500
SEARCH_NODES = 20
#: The continuity search's pairs beyond the plan's and those that can carry continuity: the
#: pattern LP prices them within this many metres (on the default plan of the demo's final
#: matching: 6,889 pairs, continuity 18 → 39 at no more travel; within 100 m: 34; 600 m: 39;
#: docs/matching.md, "Session 17"); and its node limit.
CONTINUITY_PRICE = 300
CONTINUITY_NODES = 20


def _solve(key, vol, metres, demand, slots, units, unit_of_key, integer: bool,
           start: np.ndarray | None = None, nodes: int = 500,
           sub_mips: bool = True) -> np.ndarray | None:
    """Counts per pair of ``min Σ metres·x`` with each key's ``demand`` placed, at most
    ``slots`` visits and ``units`` hour units per volunteer; ``None`` when not solved.
    ``start`` (counts per pair, a plan) is the MIP's first incumbent; ``sub_mips`` runs HiGHS'
    RINS and RENS heuristics."""
    n = len(key)
    h = quiet_highs()
    h.setOptionValue("mip_max_nodes", nodes)
    h.addCols(n, metres.astype(float), np.zeros(n), demand[key].astype(float), 0,
              np.zeros(n, np.int32), np.zeros(0, np.int32), np.zeros(0))
    if integer:
        h.changeColsIntegrality(n, np.arange(n, dtype=np.int32),
                                np.full(n, highspy.HighsVarType.kInteger))
        # Solved at its root (LP and cuts). The residual MIP skips the sub-MIP heuristics
        # RINS and RENS: on the demo's final matching they took 0.4 of its 3.0 s of CPU and
        # found nothing the root and feasibility jump did not; the search needs them (26 s
        # of CPU without, 21 with, the same plan). (Session 15; in session 12 feasibility
        # jump had taken 0.8 of the residual MIP's 1.5 s, and was off.)
        h.setOptionValue("mip_heuristic_run_rins", sub_mips)
        h.setOptionValue("mip_heuristic_run_rens", sub_mips)
    placement_rows(h, key, vol, unit_of_key[key], demand, slots, units)
    if start is not None:
        start_from(h, start)
    with quiet_stdout():
        h.run()
    solution = h.getSolution()
    if not solution.value_valid:
        return None
    x = np.asarray(solution.col_value, float)
    if integer:  # any whole answer the node limit left is checked by the caller
        return np.round(x)
    return x if h.getModelStatus() == highspy.HighsModelStatus.kOptimal else None


def improve_travel(arrays, used: tuple[np.ndarray, np.ndarray, np.ndarray],
                   search: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``used`` (group, volunteer, count of each placed pair; every unpinned visit placed)
    with less travel when the repair (and, with ``search``, the search after it) finds it,
    else ``used`` itself."""
    listed = key_pairs(arrays)
    if listed is None:
        return used
    group_key, key_units, key_count, key_arc, vol_arc, metres = listed
    ug, uv, uc = used
    n_vol = len(arrays.vol_ids)
    # The search's pairs: each key's NEAREST, and every (key, volunteer) the plan uses.
    order = np.lexsort((vol_arc, metres, key_arc))
    rank = np.empty(len(key_arc), np.int64)
    rank[order] = np.arange(len(key_arc)) - np.searchsorted(key_arc[order], key_arc[order])
    keep_mask = (rank < NEAREST) | np.isin(key_arc * n_vol + vol_arc, group_key[ug] * n_vol + uv)
    plan_metres = int(arrays.pair_metres(ug, uv) @ uc)
    solved = pattern_lp(arrays)
    if solved is not None:
        # The pattern LP over every pair (optimizer/visits/patterns.py): its part visits sit
        # at the volunteers whose patterns mix. Keep its whole columns elsewhere; the visits
        # of the volunteers it leaves fractional (a part visit, or part counts of a length)
        # go to the residual MIP (keeping those volunteers' whole columns left too little
        # room to place the part visits on the demo).
        x = solved[0]
        part = np.abs(x - np.round(x)) > 1e-6
        _, cell = np.unique(vol_arc * (key_units.max() + 1) + key_units[key_arc],
                            return_inverse=True)  # (volunteer, length)
        by_length = np.bincount(cell, weights=x)
        mixed = np.zeros(n_vol, bool)
        mixed[vol_arc[part | (np.abs(by_length - np.round(by_length)) > 1e-6)[cell]]] = True
        whole = np.where(part | mixed[vol_arc], 0.0, np.round(x))
        key, vol, cost = key_arc, vol_arc, metres
        priced = solved[2] < RESIDUAL_PRICE
    else:
        # Too many patterns to list (patterns.MAX_PATTERNS): the LP with hours over the kept
        # pairs (session 9's repair), its whole columns kept.
        key, vol, cost = key_arc[keep_mask], vol_arc[keep_mask], metres[keep_mask]
        relaxed = _solve(key, vol, cost, key_count, arrays.free_slots, arrays.free_units,
                         key_units, integer=False)
        if relaxed is None:
            return _search(arrays, used, listed, keep_mask, plan_metres) if search else used
        whole = np.where(np.abs(relaxed - np.round(relaxed)) > 1e-6, 0.0, np.round(relaxed))
        priced = None
    left = key_count - np.bincount(key, weights=whole, minlength=len(key_count)).astype(np.int64)
    if left.any():
        slots = arrays.free_slots - np.bincount(vol, weights=whole, minlength=n_vol)
        units = arrays.free_units - np.bincount(vol, weights=whole * key_units[key],
                                                minlength=n_vol)
        open_ = (left[key_arc] > 0) & (slots[vol_arc] >= 1) \
            & (units[vol_arc] >= key_units[key_arc])
        # Over the open pairs with room that the LP prices within RESIDUAL_PRICE first (on the
        # demo 1,738 pairs, 1.2 s of CPU; each key's 20 nearest: 5,459 pairs, 2.7 s; every
        # pair with room: 10,298, 4.1 s; the same travel), then every pair with room.
        rest = None
        for pairs in ((open_,) if priced is None else (open_ & priced, open_)):
            rest = _solve(np.searchsorted(np.flatnonzero(left), key_arc[pairs]),
                          vol_arc[pairs], metres[pairs], left[left > 0], slots, units,
                          key_units[left > 0], integer=True, nodes=RESIDUAL_NODES,
                          sub_mips=False)
            if rest is not None:
                break
        if rest is None:
            return _search(arrays, used, listed, keep_mask, plan_metres) if search else used
        key = np.concatenate([key, key_arc[pairs]])
        vol = np.concatenate([vol, vol_arc[pairs]])
        cost = np.concatenate([cost, metres[pairs]])
        whole = np.concatenate([whole, rest])
    # Checked, not trusted: every visit of every key placed, within slots and hours.
    placed = np.bincount(key, weights=whole, minlength=len(key_count))
    busy = np.bincount(vol, weights=whole, minlength=n_vol)
    hours = np.bincount(vol, weights=whole * key_units[key], minlength=n_vol)
    if (whole < 0).any() or (placed != key_count).any() or (busy > arrays.free_slots).any() \
            or (hours > arrays.free_units).any():
        return _search(arrays, used, listed, keep_mask, plan_metres) if search else used
    if int(cost @ whole) < plan_metres:
        ug, uv, uc = _to_groups(arrays, group_key, key, vol, whole.astype(np.int64))
        plan_metres = int(cost @ whole)
    # Then the whole restricted model as one MIP, started from the better plan: the LP's
    # fractional part is fragmented capacity that only a search over every kept pair can
    # use (docs/matching.md, "Session 12": 1,239.2 → 1,210.4 km on the demo's final
    # matching, the optimum of the restricted model).
    if not search:
        return ug, uv, uc
    return _search(arrays, (ug, uv, uc), listed, keep_mask, plan_metres)


def _search(arrays, used, listed, keep: np.ndarray, plan_metres: int):
    """``used`` improved by the MIP over the kept key pairs and those ``used`` has, with
    ``used`` as its start (:data:`SEARCH_NODES` nodes at most); ``used`` itself unless the MIP
    ends with a checked plan that travels less."""
    group_key, key_units, key_count, key_arc, vol_arc, metres = listed
    ug, uv, uc = used
    n_vol = len(arrays.vol_ids)
    code = key_arc * n_vol + vol_arc
    keep = keep | np.isin(code, group_key[ug] * n_vol + uv)
    sel = np.flatnonzero(keep)
    key, vol, cost = key_arc[sel], vol_arc[sel], metres[sel]
    start = np.zeros(len(sel), np.int64)
    np.add.at(start, pair_positions(key, vol, n_vol, group_key[ug], uv), uc)
    x = _solve(key, vol, cost, key_count, arrays.free_slots, arrays.free_units, key_units,
               integer=True, start=start, nodes=SEARCH_NODES)
    if x is None or int(cost @ x) >= plan_metres:
        return used
    placed = np.bincount(key, weights=x, minlength=len(key_count))
    busy = np.bincount(vol, weights=x, minlength=n_vol)
    hours = np.bincount(vol, weights=x * key_units[key], minlength=n_vol)
    if (x < 0).any() or (placed != key_count).any() or (busy > arrays.free_slots).any() \
            or (hours > arrays.free_units).any():
        return used
    return _to_groups(arrays, group_key, key, vol, x.astype(np.int64))


def _to_groups(arrays, group_key, key, vol, count):
    """Counts per (key, volunteer) dealt to the key's groups: a group's last volunteer first
    (continuity, the next level), then in group order."""
    pairs = np.flatnonzero(count > 0)
    out_g, out_v, out_c = [], [], []
    groups_of: dict[int, list[int]] = {}
    for group in np.flatnonzero(group_key >= 0).tolist():
        groups_of.setdefault(int(group_key[group]), []).append(group)
    room = arrays.g_count.astype(np.int64).copy()
    # Last volunteers first, over every pair, then the rest.
    for last_first in (True, False):
        for p in pairs:
            k, v = int(key[p]), int(vol[p])
            for g in groups_of[k]:
                if count[p] == 0:
                    break
                if last_first and arrays.g_last[g] != v:
                    continue
                take = min(int(count[p]), int(room[g]))
                if take:
                    out_g.append(g)
                    out_v.append(v)
                    out_c.append(take)
                    room[g] -= take
                    count[p] -= take
    assert not count.any() and not room.any(), "every visit dealt"
    return (np.asarray(out_g, np.int64), np.asarray(out_v, np.int64),
            np.asarray(out_c, np.int64))


def improve_continuity(arrays, used: tuple[np.ndarray, np.ndarray, np.ndarray]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``used`` (placing every unpinned visit) with more visits by their household's last
    volunteer and no more travel, when a MIP finds it: the most continuity with travel at most
    the plan's, over the pairs the pattern LP prices within :data:`CONTINUITY_PRICE`, the
    pairs the plan uses and every pair that can carry continuity (HiGHS, from the plan,
    :data:`CONTINUITY_NODES` nodes). A plan of at most the plan's travel with more continuity
    is better lexicographically whatever its travel (docs/matching.md, "Session 17"); it is
    checked, not trusted, and ``used`` is returned unless it has more continuity."""
    listed = key_pairs(arrays)
    solved = pattern_lp(arrays)
    if listed is None or solved is None:
        return used
    group_key, key_units, key_count, key_arc, vol_arc, metres = listed
    ug, uv, uc = used
    n, n_keys, n_vol = len(key_arc), len(key_count), len(arrays.vol_ids)
    at = pair_positions(key_arc, vol_arc, n_vol, group_key[ug], uv)
    plan = np.zeros(n, np.int64)
    np.add.at(plan, at, uc)
    plan_cont = np.zeros(n, np.int64)
    np.add.at(plan_cont, at, uc * (arrays.g_last[ug] == uv))
    travel_plan = int(metres @ plan)
    continuity_plan = int(plan_cont.sum())
    upper = np.minimum(key_count[key_arc], np.minimum(
        arrays.free_slots[vol_arc], arrays.free_units[vol_arc] // key_units[key_arc]))
    cap = np.minimum(continuity_caps(arrays, listed), upper)
    sel = np.flatnonzero((solved[2] < CONTINUITY_PRICE) | (plan > 0) | (cap > 0))
    cont = np.flatnonzero(cap > 0)
    # Columns: each selected pair's other visits, then each continuity pair's continuity
    # visits (both whole); rows: each key's visits, each volunteer's slots and hour units,
    # travel at most the plan's.
    key = np.concatenate([key_arc[sel], key_arc[cont]])
    vol = np.concatenate([vol_arc[sel], vol_arc[cont]])
    cost = np.concatenate([np.zeros(len(sel)), -np.ones(len(cont))])
    k = len(key)
    h = quiet_highs()
    h.setOptionValue("mip_max_nodes", CONTINUITY_NODES)
    h.addCols(k, cost, np.zeros(k), np.concatenate([upper[sel], cap[cont]]).astype(float), 0,
              np.zeros(k, np.int32), np.zeros(0, np.int32), np.zeros(0))
    h.changeColsIntegrality(k, np.arange(k, dtype=np.int32),
                            np.full(k, highspy.HighsVarType.kInteger))
    placement_rows(h, key, vol, key_units[key], key_count, arrays.free_slots, arrays.free_units)
    pair_metres = np.concatenate([metres[sel], metres[cont]]).astype(float)
    h.addRow(-highspy.kHighsInf, float(travel_plan), k, np.arange(k, dtype=np.int32),
             pair_metres)
    start_from(h, np.concatenate([(plan - plan_cont)[sel], plan_cont[cont]]))
    with quiet_stdout():
        h.run()
    solution = h.getSolution()
    if not solution.value_valid:
        return used
    x = np.round(np.asarray(solution.col_value, float)).astype(np.int64)
    # Checked: every visit of every key placed, within slots and hours, no more travel.
    placed = np.bincount(key, weights=x, minlength=n_keys)
    busy = np.bincount(vol, weights=x, minlength=n_vol)
    hours = np.bincount(vol, weights=x * key_units[key], minlength=n_vol)
    if (x < 0).any() or (placed != key_count).any() or (busy > arrays.free_slots).any() \
            or (hours > arrays.free_units).any() or int(pair_metres @ x) > travel_plan:
        return used
    counts = np.zeros(n, np.int64)  # per key pair, both columns together
    np.add.at(counts, np.concatenate([sel, cont]), x)
    kept = np.flatnonzero(counts > 0)
    better = _to_groups(arrays, group_key, key_arc[kept], vol_arc[kept], counts[kept])
    bg, bv, bc = better
    if int(((arrays.g_last[bg] == bv) * bc).sum()) <= continuity_plan:
        return used
    return better


def improve_by_length(arrays, used: tuple[np.ndarray, np.ndarray, np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``used`` (placing every unpinned visit) lexicographically better where an exchange
    within one visit length finds it: the visits of one length are placed again by one exact
    min-cost flow (OR-Tools) with every other length's visits held where they are, over every
    pair of the whole model, by least travel, then most continuity, then least load; length
    after length until a sweep changes nothing (at most :data:`LENGTH_SWEEPS`).

    With the other lengths held, a volunteer takes at most what their slots and hours have
    left of this length, and their ``j``-th visit of it adds ``(B + jL)² − (B + (j−1)L)²`` to
    load (``B`` their pinned and other hours: convex, so the flow takes them in order); the
    costs are separated as in ``exact.solve_flow`` (a metre outweighs any continuity and load
    difference, a continuity visit any load difference), so each flow is the exact
    lexicographic optimum of its length given the others, and the plan it starts from is one of
    its flows: never worse. (The pattern LP's repair places each volunteer's visits by their
    counts; travel between its counts is what this improves: on the demo's final matching
    1,195.41 → 1,194.34 km, 0.2 s of CPU; docs/matching.md, "Session 18".) Checked, not
    trusted; ``used`` itself when nothing improves or the costs would not fit the flow's
    integers."""
    listed = key_pairs(arrays)
    if listed is None:
        return used
    group_key, key_units, key_count, key_arc, vol_arc, metres = listed
    ug, uv, uc = used
    n, n_keys, n_vol = len(key_arc), len(key_count), len(arrays.vol_ids)
    x = np.zeros(n, np.int64)
    np.add.at(x, pair_positions(key_arc, vol_arc, n_vol, group_key[ug], uv), uc)
    upper = np.minimum(key_count[key_arc], np.minimum(
        arrays.free_slots[vol_arc], arrays.free_units[vol_arc] // key_units[key_arc]))
    cont_cap = np.minimum(continuity_caps(arrays, listed), upper)
    arc_units = key_units[key_arc]
    pinned = arrays.pinned_units.astype(np.int64)

    def levels(counts: np.ndarray) -> tuple[int, int, int]:
        """(travel, −continuity, load): smaller is better, compared in order."""
        hours = pinned + np.bincount(vol_arc, weights=counts * arc_units,
                                     minlength=n_vol).astype(np.int64)
        return (int(metres @ counts), -int(np.minimum(counts, cont_cap).sum()),
                int((hours ** 2).sum()))

    start = levels(x)
    sink = n_keys + n_vol
    for _ in range(LENGTH_SWEEPS):
        changed = False
        for length in np.unique(arc_units[x > 0]).tolist():
            sel = np.flatnonzero(arc_units == length)
            others = x.copy()
            others[sel] = 0
            slots = arrays.free_slots - np.bincount(vol_arc, weights=others, minlength=n_vol)
            hours = np.bincount(vol_arc, weights=others * arc_units, minlength=n_vol)
            reach = np.bincount(vol_arc[sel], weights=upper[sel], minlength=n_vol)
            cap = np.minimum(np.minimum(slots, (arrays.free_units - hours) // length),
                             reach).astype(np.int64)
            # One unit arc per visit a volunteer could take of this length, to the sink.
            step_vol = np.repeat(np.arange(n_vol), cap)
            j = np.arange(len(step_vol)) - np.repeat(np.cumsum(cap) - cap, cap) + 1
            base = pinned[step_vol] + hours[step_vol].astype(np.int64)
            step_cost = (base + j * length) ** 2 - (base + (j - 1) * length) ** 2
            cont = sel[cont_cap[sel] > 0]  # a continuity arc beside each pair that has one
            # Python integers first: the check itself must not overflow.
            top_load = int(step_cost.sum())
            q = top_load + 1
            t = q * int(cont_cap[cont].sum()) + top_load + 1
            top = t * int(metres[sel].max(initial=0)) + q
            total = int(x[sel].sum())
            if not flow_costs_fit(top, sink + 1, total):
                continue  # too large to separate exactly: this length stays as it is
            keys = np.flatnonzero(key_units == length)
            supplies = {int(k): int(key_count[k]) for k in keys}
            supplies[sink] = -int(key_count[keys].sum())
            try:
                flow = solve_min_cost_flow(
                    np.concatenate([key_arc[sel], key_arc[cont], n_keys + step_vol]),
                    np.concatenate([n_keys + vol_arc[sel], n_keys + vol_arc[cont],
                                    np.full(len(step_vol), sink)]),
                    np.concatenate([upper[sel], cont_cap[cont],
                                    np.ones(len(step_vol), np.int64)]),
                    np.concatenate([t * metres[sel], t * metres[cont] - q, step_cost]),
                    supplies)
            except FlowCostRange:
                continue  # refused by OR-Tools all the same: this length stays as it is
            new = others
            new[sel] = flow[:len(sel)]
            np.add.at(new, cont, flow[len(sel):len(sel) + len(cont)])
            if levels(new) < levels(x):
                x, changed = new, True
        if not changed:
            break
    # Checked: every visit of every key placed, within slots and hours, better in order.
    placed = np.bincount(key_arc, weights=x, minlength=n_keys)
    busy = np.bincount(vol_arc, weights=x, minlength=n_vol)
    hours_used = np.bincount(vol_arc, weights=x * arc_units, minlength=n_vol)
    if (x < 0).any() or (placed != key_count).any() or (busy > arrays.free_slots).any() \
            or (hours_used > arrays.free_units).any() or not levels(x) < start:
        return used
    kept = np.flatnonzero(x > 0)
    return _to_groups(arrays, group_key, key_arc[kept], vol_arc[kept], x[kept])
