"""Plans for a component too large to prove: a greedy first plan by max-flow-min-cost rounds,
the visits that still fit, exchanges that only improve coverage, and a polish of travel and
continuity that keeps coverage and load. docs/matching.md ("Solving a component") says what each
keeps and why.
"""

from __future__ import annotations

import numpy as np

from wulian.optimizer.visits.component import (
    Component,
    FlowCostRange,
    PairTable,
    flow_costs_fit,
    solve_min_cost_flow,
)
from wulian.optimizer.visits.params import CLASSES


def heuristic_plan(comp: Component, pairs: PairTable) -> np.ndarray:
    """A good first plan for visits of several lengths: class by class, best first, the most
    visits of the class at least travel by a max-flow-min-cost, each volunteer counted for as
    many visits as their hours allow of the longest visit they could take (so the plan is
    always feasible); repeated while a round places more. CP-SAT starts from it."""
    n_vol = len(comp.vol_ids)
    x = np.zeros(len(pairs.group), np.int64)
    slots, units, left = comp.free_slots.copy(), comp.free_units.copy(), comp.g_count.copy()
    arc_class, arc_units = comp.g_class[pairs.group], comp.g_units[pairs.group]
    for k in np.unique(comp.g_class):
        while True:
            sel = np.flatnonzero((arc_class == k) & (left[pairs.group] > 0)
                                 & (arc_units <= units[pairs.vol]) & (slots[pairs.vol] > 0))
            longest = np.zeros(n_vol, np.int64)
            np.maximum.at(longest, pairs.vol[sel], arc_units[sel])
            cap = np.minimum(slots, units // np.maximum(longest, 1))
            sel = sel[cap[pairs.vol[sel]] > 0]
            if not len(sel):
                break
            groups, g_at = np.unique(pairs.group[sel], return_inverse=True)
            vols, v_at = np.unique(pairs.vol[sel], return_inverse=True)
            g0, v0 = 2, 2 + len(groups)
            tails = np.concatenate([np.zeros(len(groups), np.int64), g0 + g_at,
                                    v0 + np.arange(len(vols))])
            heads = np.concatenate([g0 + np.arange(len(groups)), v0 + v_at,
                                    np.ones(len(vols), np.int64)])
            caps = np.concatenate([left[groups],
                                   np.minimum(pairs.upper[sel], left[pairs.group[sel]]),
                                   cap[vols]])
            costs = np.concatenate([np.zeros(len(groups), np.int64), pairs.metres[sel],
                                    np.zeros(len(vols), np.int64)])
            total = int(left[groups].sum())
            flow = solve_min_cost_flow(tails, heads, caps, costs, {0: total, 1: -total},
                                       max_flow=True)[len(groups):len(groups) + len(sel)]
            if not flow.any():
                break
            x[sel] += flow
            np.subtract.at(left, pairs.group[sel], flow)
            np.subtract.at(slots, pairs.vol[sel], flow)
            np.subtract.at(units, pairs.vol[sel], flow * arc_units[sel])
    return x


def room_left(comp: Component, pairs: PairTable, x: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per volunteer, the free slots and hour units the plan ``x`` leaves."""
    n_vol = len(comp.vol_ids)
    slots_left = comp.free_slots - np.bincount(pairs.vol, weights=x,
                                               minlength=n_vol).astype(np.int64)
    units_left = comp.free_units - np.bincount(pairs.vol, weights=x * comp.g_units[pairs.group],
                                               minlength=n_vol).astype(np.int64)
    return slots_left, units_left


def complete_plan(comp: Component, pairs: PairTable, x: np.ndarray) -> np.ndarray:
    """Place, nearest volunteer first, any visit that still fits (only ever needed when a
    solve stopped at its time limit), so that every unplaced reason is true."""
    x = x.copy()
    slots_left, units_left = room_left(comp, pairs, x)
    placed = np.bincount(pairs.group, weights=x, minlength=len(comp.g_count)).astype(np.int64)
    left = comp.g_count - placed
    order = np.lexsort((np.arange(len(left)), comp.g_class))
    start = np.searchsorted(pairs.group, np.arange(len(left) + 1))  # arcs are sorted by group
    # Room only shrinks in the loop: a pair without room for one visit now never gets any,
    # so only the others are looked at (the same plan, without a Python step per such pair).
    open_ = (slots_left[pairs.vol] >= 1) & (units_left[pairs.vol] >= comp.g_units[pairs.group]) \
        & (pairs.upper > x)
    for g in order[left[order] > 0]:  # groups with visits left, best class first
        arcs = np.arange(start[g], start[g + 1])
        arcs = arcs[open_[arcs]]
        for p in arcs[np.lexsort((pairs.vol[arcs], pairs.metres[arcs]))]:
            i = pairs.vol[p]
            fit = min(left[g], slots_left[i], units_left[i] // comp.g_units[g],
                      pairs.upper[p] - x[p])
            if fit > 0:
                x[p] += fit
                left[g] -= fit
                slots_left[i] -= fit
                units_left[i] -= fit * comp.g_units[g]
                if not left[g]:
                    break
    return x


def displace(g_class: np.ndarray, g_units: np.ndarray, left: np.ndarray,
             slots_left: np.ndarray, units_left: np.ndarray, used: tuple,
             cand_start: np.ndarray, cand_vol: np.ndarray, cand_of: np.ndarray
             ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], int]:
    """Exchanges that can only improve coverage, lexicographically: an unplaced visit of class
    ``k`` goes to a volunteer who can take it once some of their visits of classes worse than
    ``k`` are taken off (worst class first, longest first, fewest possible). Class ``k`` gains
    one visit and only worse classes lose, so every exchange is a lexicographic improvement
    (and the process ends). Greedy, best class first, each visit trying its candidate
    volunteers nearest first: ``cand_vol[cand_start[c]:cand_start[c + 1]]`` for the group's
    candidate list ``c = cand_of[g]`` (-1: none).

    ``left``, ``slots_left`` and ``units_left`` are updated in place; returns the plan as
    (group, volunteer, count) and the number of exchanges.
    """
    ug, uv, uc = used
    items: dict[int, dict[int, int]] = {}
    for g, i, c in zip(ug.tolist(), uv.tolist(), uc.tolist(), strict=True):
        mine = items.setdefault(i, {})
        mine[g] = mine.get(g, 0) + c
    # Each volunteer's worst class planned (-1: none), so that a volunteer with nothing worse
    # to take off and no room is passed over without a look at their visits.
    worst = np.full(len(slots_left), -1, np.int64)
    np.maximum.at(worst, uv, g_class[ug])
    exchanges = 0
    todo = np.flatnonzero((left > 0) & (cand_of >= 0))
    for g in todo[np.lexsort((todo, g_class[todo]))].tolist():
        k, need = int(g_class[g]), int(g_units[g])
        c = int(cand_of[g])
        cands = cand_vol[cand_start[c]:cand_start[c + 1]]
        cands = cands[(worst[cands] > k) | ((slots_left[cands] >= 1)
                                            & (units_left[cands] >= need))]
        for i in cands.tolist():
            if not left[g]:
                break
            while left[g]:
                mine = items.setdefault(i, {})
                free_s, free_u = int(slots_left[i]), int(units_left[i])
                off: list = []
                if free_s < 1 or free_u < need:
                    worse = sorted((h for h in mine if g_class[h] > k),
                                   key=lambda h: (-g_class[h], -g_units[h], h))
                    for h in worse:
                        for _ in range(mine[h]):
                            if free_s >= 1 and free_u >= need:
                                break
                            off.append(h)
                            free_s += 1
                            free_u += int(g_units[h])
                    if free_s < 1 or free_u < need:
                        break  # this volunteer cannot make room: the next one
                for h in off:
                    mine[h] -= 1
                    if not mine[h]:
                        del mine[h]
                    left[h] += 1
                mine[g] = mine.get(g, 0) + 1
                left[g] -= 1
                slots_left[i] = free_s - 1
                units_left[i] = free_u - need
                exchanges += bool(off)
                worst[i] = max(g_class[h] for h in mine)
    out = [(g, i, c) for i, mine in items.items() for g, c in mine.items()]
    arr = np.array(out, np.int64).reshape(-1, 3)
    order = np.lexsort((arr[:, 1], arr[:, 0]))
    arr = arr[order]
    return (arr[:, 0], arr[:, 1], arr[:, 2]), exchanges


def displace_component(comp: Component, pairs: PairTable, x: np.ndarray) -> np.ndarray:
    """:func:`displace` on one component's pairs (each group's volunteers nearest first), then
    :func:`complete_plan` for the visits taken off; counts per pair."""
    n_vol = len(comp.vol_ids)
    left = comp.g_count - np.bincount(pairs.group, weights=x,
                                      minlength=len(comp.g_count)).astype(np.int64)
    slots_left, units_left = room_left(comp, pairs, x)
    order = np.lexsort((pairs.vol, pairs.metres, pairs.group))
    start = np.searchsorted(pairs.group[order], np.arange(len(comp.g_count) + 1))
    has = start[1:] > start[:-1]
    used = (pairs.group[x > 0], pairs.vol[x > 0], x[x > 0])
    (ug, uv, uc), _ = displace(comp.g_class, comp.g_units, left, slots_left, units_left, used,
                               start, pairs.vol[order], np.where(has, np.arange(len(has)), -1))
    code = pairs.group * n_vol + pairs.vol  # arcs are sorted by (group, volunteer)
    out = np.zeros(len(pairs.group), np.int64)
    out[np.searchsorted(code, ug * n_vol + uv)] = uc
    return complete_plan(comp, pairs, out)


def polish(comp: Component, pairs: PairTable, x: np.ndarray) -> np.ndarray:
    """The least travel, then the most continuity, keeping each volunteer's number of visits of
    each length and each class's number of visits of each length: coverage and every
    volunteer's hours (so load) stay as they are, and what is left is one exact min-cost flow
    per visit length (class → group → volunteer, volunteer capacity their count of that
    length; arc cost ``(C + 1)·metres − [last volunteer]``, so a metre outweighs any
    continuity)."""
    x = x.copy()
    n_groups, n_vol, k = len(comp.g_count), len(comp.vol_ids), len(CLASSES)
    arc_units = comp.g_units[pairs.group]
    for length in np.unique(arc_units[x > 0]):
        sel = np.flatnonzero(arc_units == length)
        have = np.bincount(pairs.vol[sel], weights=x[sel], minlength=n_vol).astype(np.int64)
        per_class = np.bincount(comp.g_class[pairs.group[sel]], weights=x[sel],
                                minlength=k).astype(np.int64)
        total = int(per_class.sum())
        weight = total + 1  # more than any continuity difference
        if not flow_costs_fit(weight * int(pairs.metres[sel].max(initial=0)),
                              k + n_groups + n_vol + 1, total):
            continue  # too large to separate exactly; keep the plan as it is
        g0, v0 = k, k + n_groups
        sink = v0 + n_vol
        tails = np.concatenate([comp.g_class, g0 + pairs.group[sel], v0 + np.arange(n_vol)])
        heads = np.concatenate([g0 + np.arange(n_groups), v0 + pairs.vol[sel],
                                np.full(n_vol, sink)])
        caps = np.concatenate([np.where(comp.g_units == length, comp.g_count, 0),
                               pairs.upper[sel], have])
        costs = np.concatenate([np.zeros(n_groups, np.int64),
                                weight * pairs.metres[sel] - pairs.cont[sel],
                                np.zeros(n_vol, np.int64)])
        supplies = {c: int(per_class[c]) for c in range(k) if per_class[c]}
        supplies[sink] = -total
        try:
            flow = solve_min_cost_flow(tails, heads, caps, costs, supplies)
        except FlowCostRange:
            continue  # refused by OR-Tools all the same; keep the plan as it is
        x[sel] = flow[n_groups:n_groups + len(sel)]
    return x
