"""The city cut into regions, and one region solved: coarse components from grid cells, large
ones bisected, each region's pairs built and its exact components solved (a process pool runs
:func:`solve_region` by name). docs/matching.md ("Decomposition") says where this is exact and
what it costs where it is not.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wulian.optimizer.geo import KM_TOLERANCE, grid_cells, haversine_km, pairs_within
from wulian.optimizer.graph import components
from wulian.optimizer.status import Status
from wulian.optimizer.visits.bounds import cut_bounds
from wulian.optimizer.visits.component import Component, PairTable
from wulian.optimizer.visits.params import CANDIDATES, MatchParams
from wulian.optimizer.visits.prepare import VisitArrays
from wulian.optimizer.visits.solve import solve_component

NO_METRES = np.iinfo(np.int64).max  # "no such volunteer" in a nearest-distance array


@dataclass
class RegionInput:
    """What every region needs, shipped once to each worker process: volunteers, locations
    and groups of the whole model, and which region each location and volunteer is in."""

    params: MatchParams
    vol_lat: np.ndarray
    vol_lon: np.ndarray
    vol_reach: np.ndarray
    vol_skills: np.ndarray
    vol_checked: np.ndarray
    free_slots: np.ndarray
    free_units: np.ndarray
    pinned_units: np.ndarray
    relax_cap: np.ndarray  # slot relaxation's capacity with the shortest visit of the model
    loc_lat: np.ndarray
    loc_lon: np.ndarray
    g_loc: np.ndarray
    g_units: np.ndarray
    g_class: np.ndarray
    g_count: np.ndarray
    g_skills: np.ndarray
    g_safe: np.ndarray
    g_last: np.ndarray
    loc_region: np.ndarray
    vol_region: np.ndarray  # -1: in no region (can take no visit)
    split: bool  # a component was cut into regions
    regions: int
    # A starting plan (whole-model group, volunteer, count), e.g. an earlier round's: each
    # heuristic component also starts from its part of it (solve.solve_component).
    start: tuple | None = None


@dataclass
class RegionResult:
    """A region's plan (used pairs, whole-model indices), its components' level reports and,
    when bounds of the whole are needed, the ingredients of those."""

    group: np.ndarray
    vol: np.ndarray
    count: np.ndarray
    reports: dict  # level → [status, bound, seconds] summed over the components
    exact: bool  # no cut and no pruning: the reports are bounds of the whole
    groups: np.ndarray  # the region's groups
    reach_any: np.ndarray  # per region group: a qualified volunteer within reach exists
    room_any: np.ndarray  # … one with room for one of its visits
    cut_paid: np.ndarray | None = None  # per class prefix: visits the region's cut pays for
    cut_vols: list | None = None  # per class prefix: bool mask of volunteers it cuts
    near: np.ndarray | None = None  # per region group: metres to its nearest volunteer with room
    # Per region group its (location, requirement) key; per key its nearest qualified
    # volunteers (CSR: starts, volunteers) and whether there are more than those.
    candidates: tuple | None = None
    busy_vols: np.ndarray | None = None  # volunteers with a pair in the region's model
    reach_vols: np.ndarray | None = None  # bool mask: volunteers any of its visits could go to
    sizes: dict = field(default_factory=dict)
    methods: dict = field(default_factory=dict)
    seconds: float = 0.0


def requirement_keys(loc: np.ndarray, skills: np.ndarray, safe: np.ndarray,
                     units: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, list]:
    """Keys of groups: a location and what its visits need (skills, check and, unless
    ``units`` is None, length). Returns each group's key, each key's location and the
    requirements (one per distinct need, keys numbered by requirement, then location)."""
    units = np.zeros(len(loc), np.int64) if units is None else units
    frame = pd.DataFrame({"s": skills, "c": safe, "u": units, "l": loc})
    combo, combos = pd.factorize(pd.MultiIndex.from_frame(frame[["s", "c", "u"]]), sort=True)
    code = pd.MultiIndex.from_arrays([combo, loc])
    key_of, uniques = pd.factorize(code, sort=True)
    key_combo = np.asarray(uniques.get_level_values(0), np.int64) if len(uniques) else \
        np.zeros(0, np.int64)
    key_loc = np.asarray(uniques.get_level_values(1), np.int64) if len(uniques) else \
        np.zeros(0, np.int64)
    requirements = [(int(m), bool(c), int(u), np.flatnonzero(key_combo == j))
                    for j, (m, c, u) in enumerate(combos)]
    return key_of.astype(np.int64), key_loc, requirements


def qualified(vol_skills: np.ndarray, vol_checked: np.ndarray, mask: int, safe: bool
              ) -> np.ndarray:
    """Volunteers with every skill of ``mask`` (and a background check when ``safe``)."""
    return ((vol_skills & mask) == mask) & (vol_checked | (not safe))


def _pair_budget(count: np.ndarray, groups_per_key: np.ndarray, budget: int) -> int:
    """The largest ``K`` with Σ_key min(count, K) × groups ≤ budget (at least 1): how many of
    its nearest volunteers each group keeps. ``count.max()`` when everything fits."""
    top = int(count.max(initial=0))
    if int(count @ groups_per_key) <= budget or top <= 1:
        return max(top, 1)
    lo, hi = 1, top
    while lo < hi:  # a bisection over K; each step one vectorised sum
        mid = (lo + hi + 1) // 2
        if int(np.minimum(count, mid) @ groups_per_key) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def solve_region(shared: RegionInput, r: int) -> RegionResult:
    """Build region ``r``'s pairs, solve its exact components one by one, and (when the whole
    model is cut or pruned) work out its share of the whole model's bounds.

    A module-level function of picklable arguments: the process pool runs it by name. The
    pairs of the region's locations with *every* volunteer are looked at requirement by
    requirement (a few vectorised passes), never expanded to groups × volunteers: only the
    pairs the region's model keeps are.
    """
    start = time.perf_counter()
    p = shared.params
    n_vol, n_loc = len(shared.vol_lat), len(shared.loc_lat)
    locs = np.flatnonzero(shared.loc_region == r)
    groups = np.flatnonzero(shared.loc_region[shared.g_loc] == r)
    n_groups = len(groups)
    mine = shared.vol_region == r

    # Every volunteer within reach of the region's locations, nearest first per location.
    li, vi, km = pairs_within(shared.loc_lat[locs], shared.loc_lon[locs], shared.vol_lat,
                              shared.vol_lon, shared.vol_reach)
    li = locs[li]
    order = np.argsort(li * 1e5 + km, kind="stable")  # km < 1e5: by location, then distance
    li, vi, km = li[order], vi[order], km[order]
    gl, gs = shared.g_loc[groups], shared.g_skills[groups]
    gc, gu = shared.g_safe[groups], shared.g_units[groups]

    # Per (location, requirement): is any qualified volunteer within reach at all (room or
    # not), and its nearest ones (the candidates of exchanges and of the reasons' check).
    need_of, need_loc, needs = requirement_keys(gl, gs, gc, None)
    where = np.full(n_loc, -1, np.int64)
    n_qualified = np.zeros(len(need_loc), np.int64)
    cand_keys, cand_vol = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for mask, safe, _, keys in needs:
        where[need_loc[keys]] = keys
        rel = np.flatnonzero(qualified(shared.vol_skills, shared.vol_checked, mask, safe)[vi]
                             & (where[li] >= 0))
        lr = li[rel]
        n_qualified += np.bincount(where[lr], minlength=len(need_loc))
        top = rel[(np.arange(len(rel)) - np.searchsorted(lr, lr)) < CANDIDATES]
        cand_keys.append(where[li[top]])
        cand_vol.append(vi[top])
        where[need_loc[keys]] = -1
    reach_any = (n_qualified > 0)[need_of]
    cand_key = np.concatenate(cand_keys)  # sorted: keys go by requirement, then location
    candidates = (need_of, np.searchsorted(cand_key, np.arange(len(need_loc) + 1)),
                  np.concatenate(cand_vol), n_qualified > CANDIDATES)

    # Pairs with room, requirement by requirement; each key keeps its nearest K of the region.
    key_of, key_loc, reqs = requirement_keys(gl, gs, gc, gu)
    n_keys = len(key_loc)
    room_key = np.zeros(n_keys, bool)
    count = np.zeros(n_keys, np.int64)
    pair_mine = mine[vi]
    ok_pairs, mine_pairs = [], []
    for mask, safe, units, keys in reqs:
        where[key_loc[keys]] = keys
        okv = qualified(shared.vol_skills, shared.vol_checked, mask, safe) \
            & (shared.free_slots >= 1) & (shared.free_units >= units)
        rel = np.flatnonzero(okv[vi] & (where[li] >= 0))
        room_key[where[li[rel]]] = True
        mrel = rel[pair_mine[rel]]
        count += np.bincount(where[li[mrel]], minlength=n_keys)
        ok_pairs.append(rel)
        mine_pairs.append(mrel)
        where[key_loc[keys]] = -1
    room_any = room_key[key_of]
    reach_vols = np.zeros(n_vol, bool)  # volunteers who could take one of the region's visits
    for rel in ok_pairs:
        reach_vols[vi[rel]] = True
    per_key = np.bincount(key_of, minlength=n_keys)
    # Pruned when the model would exceed max_arcs, or hold more than ten times the pairs a
    # pruned one keeps (a street of a city centre reaches thousands of volunteers: the far
    # ones rarely matter and cost seconds).
    full = int(count @ per_key)
    budget = min(p.max_arcs, p.arcs_per_visit * int(shared.g_count[groups].sum()))
    k_keep = _pair_budget(count, per_key, budget) \
        if p.decompose != "never" and full > min(p.max_arcs, 10 * budget) \
        else int(count.max(initial=1))
    pruned = bool(count.max(initial=0) > k_keep)

    kept_key, kept_pair, ex_pairs = [], [], []
    near = np.full(n_keys, NO_METRES)  # nearest volunteer with room, of the whole model
    for (*_, keys), rel in zip(reqs, ok_pairs, strict=True):
        if len(rel):
            lr = li[rel]
            first = np.flatnonzero(np.r_[True, lr[1:] != lr[:-1]])
            where[key_loc[keys]] = keys
            near[where[lr[first]]] = np.round(km[rel[first]] * 1000.0).astype(np.int64)
            where[key_loc[keys]] = -1
    scratch = np.zeros(len(li), bool)
    for (*_, keys), rel, mrel in zip(reqs, ok_pairs, mine_pairs, strict=True):
        where[key_loc[keys]] = keys
        lm = li[mrel]
        keep = mrel[(np.arange(len(mrel)) - np.searchsorted(lm, lm)) < k_keep]
        kept_key.append(where[li[keep]])
        kept_pair.append(keep)
        scratch[keep] = True
        ex_pairs.append(rel[~scratch[rel]])  # pairs of the whole model the region leaves out
        scratch[keep] = False
        where[key_loc[keys]] = -1
    kk_key = np.concatenate([np.zeros(0, np.int64), *kept_key])  # sorted: keys go by requirement
    kk_pair = np.concatenate([np.zeros(0, np.int64), *kept_pair])

    # Arcs: each group takes its key's kept pairs, plus its last volunteer when left out.
    first = np.searchsorted(kk_key, np.arange(n_keys + 1))
    each = (first[1:] - first[:-1])[key_of]
    arc_j = np.repeat(np.arange(n_groups), each)
    offset = np.arange(len(arc_j)) - np.repeat(np.cumsum(each) - each, each)
    take = kk_pair[np.repeat(first[key_of], each) + offset]
    arc_vol, arc_km = vi[take], km[take]
    last = shared.g_last[groups]
    cand = np.flatnonzero((last >= 0) & mine[np.maximum(last, 0)])
    if len(cand):
        lv, lg = last[cand], cand
        lkm = haversine_km(shared.vol_lat[lv], shared.vol_lon[lv], shared.loc_lat[gl[lg]],
                           shared.loc_lon[gl[lg]])
        ok = (lkm <= shared.vol_reach[lv] + KM_TOLERANCE) \
            & ((shared.vol_skills[lv] & gs[lg]) == gs[lg]) \
            & (shared.vol_checked[lv] | ~gc[lg]) \
            & (shared.free_slots[lv] >= 1) & (shared.free_units[lv] >= gu[lg])
        ok &= ~np.isin(key_of[lg] * n_vol + lv, kk_key * n_vol + vi[kk_pair])
        arc_j = np.concatenate([arc_j, lg[ok]])
        arc_vol = np.concatenate([arc_vol, lv[ok]])
        arc_km = np.concatenate([arc_km, lkm[ok]])
    if shared.start is not None and len(shared.start[0]):
        # The starting plan's pairs stay in the model even when pruning left them out.
        at = np.searchsorted(groups, shared.start[0])
        ours = (at < n_groups) & (groups[np.minimum(at, n_groups - 1)] == shared.start[0])
        sj, sv = at[ours], shared.start[1][ours]
        ok = mine[sv]
        sj, sv = sj[ok], sv[ok]
        skm = haversine_km(shared.vol_lat[sv], shared.vol_lon[sv], shared.loc_lat[gl[sj]],
                           shared.loc_lon[gl[sj]])
        ok = (skm <= shared.vol_reach[sv] + KM_TOLERANCE) \
            & ((shared.vol_skills[sv] & gs[sj]) == gs[sj]) & (shared.vol_checked[sv] | ~gc[sj]) \
            & (shared.free_slots[sv] >= 1) & (shared.free_units[sv] >= gu[sj])
        ok &= ~np.isin(sj * n_vol + sv, arc_j * n_vol + arc_vol)
        arc_j = np.concatenate([arc_j, sj[ok]])
        arc_vol = np.concatenate([arc_vol, sv[ok]])
        arc_km = np.concatenate([arc_km, skm[ok]])
    order = np.lexsort((arc_vol, arc_j))
    arc_j, arc_vol, arc_km = arc_j[order], arc_vol[order], arc_km[order]
    units = gu[arc_j]
    upper = np.minimum(np.minimum(shared.g_count[groups][arc_j], shared.free_slots[arc_vol]),
                       shared.free_units[arc_vol] // np.maximum(units, 1)).astype(np.int64)
    vols, arc_v = np.unique(arc_vol, return_inverse=True)
    arcs = PairTable(group=arc_j, vol=arc_v.ravel(), km=arc_km,
                     metres=np.round(arc_km * 1000.0).astype(np.int64), upper=upper,
                     cont=(last[arc_j] == arc_vol).astype(np.int64))
    region = Component(vol_ids=vols, free_slots=shared.free_slots[vols],
                       free_units=shared.free_units[vols], pinned_units=shared.pinned_units[vols],
                       g_count=shared.g_count[groups], g_class=shared.g_class[groups], g_units=gu)
    exact = not (shared.split or pruned)

    # Exact components of the region's model, each solved on its own (one model when the
    # caller asked for no decomposition).
    x = np.zeros(len(arc_j), np.int64)
    x_start = None
    if shared.start is not None and len(shared.start[0]) and len(arc_j):
        code = groups[arc_j] * n_vol + arc_vol  # sorted: arcs go by group, then volunteer
        sg, sv, sc = shared.start
        at = np.minimum(np.searchsorted(code, sg * n_vol + sv), len(code) - 1)
        found = code[at] == sg * n_vol + sv
        x_start = np.zeros(len(arc_j), np.int64)
        np.add.at(x_start, at[found], sc[found])
    label = components(n_groups + len(vols), arc_j, n_groups + arcs.vol)
    comp_of_arc = label[arc_j]
    by_comp = np.argsort(comp_of_arc, kind="stable")
    edges = np.append(np.searchsorted(comp_of_arc[by_comp], np.unique(comp_of_arc)),
                      len(by_comp))
    pieces = [by_comp[edges[c]:edges[c + 1]] for c in range(len(edges) - 1)]
    if p.decompose == "never" and pieces:
        pieces = [np.arange(len(arc_j))]
    reports: dict = {}
    methods: dict = {}
    cp_pairs = 0
    for sel in pieces:
        sel = np.sort(sel)
        cg, gj = np.unique(arc_j[sel], return_inverse=True)
        cv, vj = np.unique(arcs.vol[sel], return_inverse=True)
        part = Component(vol_ids=vols[cv], free_slots=region.free_slots[cv],
                         free_units=region.free_units[cv], pinned_units=region.pinned_units[cv],
                         g_count=region.g_count[cg], g_class=region.g_class[cg],
                         g_units=region.g_units[cg])
        sub = arcs.take(sel)
        sub.group, sub.vol = gj.ravel(), vj.ravel()
        xc, rep, method, cp_given = solve_component(
            part, sub, p, with_bounds=exact,
            hint=None if x_start is None else x_start[sel])
        x[sel] = xc
        cp_pairs += cp_given
        methods[method] = methods.get(method, 0) + 1
        for name, status, bound, seconds in rep:
            got = reports.setdefault(name, [Status.OPTIMAL, 0, 0.0])
            got[0] = worse_status(got[0], status)
            got[1] += bound
            got[2] += seconds

    result = RegionResult(
        group=groups[arc_j[x > 0]], vol=arc_vol[x > 0], count=x[x > 0], reports=reports,
        exact=exact, groups=groups, reach_any=reach_any, room_any=room_any,
        sizes={"pairs": len(arc_j), "components": len(pieces), "cp_sat_pairs": cp_pairs,
               "kept_per_group": k_keep if pruned else 0, "groups": n_groups,
               "volunteers": int(mine.sum()), "reach_pairs": len(li)},
        methods=methods, busy_vols=vols, reach_vols=reach_vols)
    result.near = near[key_of]
    result.candidates = candidates
    if (not exact or shared.regions > 1) and p.bounds:
        cap = shared.relax_cap[vols]
        result.cut_paid, result.cut_vols = cut_bounds(
            region, arcs, cap, vols, key_of, key_loc, reqs, ex_pairs, li, vi, n_vol)
    result.seconds = time.perf_counter() - start
    return result


def worse_status(a: Status, b: Status) -> Status:
    """The worse of two levels' statuses: time_limit, then feasible, then optimal."""
    rank = {Status.OPTIMAL: 0, Status.FEASIBLE: 1, Status.TIME_LIMIT: 2}
    return a if rank[Status(a)] >= rank[Status(b)] else b


def plan_regions(arrays: VisitArrays, able: np.ndarray, params: MatchParams
                 ) -> tuple[np.ndarray, np.ndarray, bool]:
    """The region of every location and volunteer (-1: in none, as a volunteer who can take no
    visit), and whether a component had to be cut (docs/matching.md, "Decomposition")."""
    n_loc = len(arrays.loc_lat)
    loc_region = np.zeros(n_loc, np.int64)
    vol_region = np.where(able, 0, -1).astype(np.int64)
    if params.decompose == "never" or n_loc == 0 or not able.any():
        return loc_region, vol_region, False
    reach = float(arrays.vol_reach[able].max()) + 1e-6
    top = np.radians(min(89.0, max(np.abs(arrays.loc_lat).max(),
                                   np.abs(arrays.vol_lat[able]).max()) + reach / 110.0))
    lci, lcj = grid_cells(arrays.loc_lat, arrays.loc_lon, reach, top)
    who = np.flatnonzero(able)
    vci, vcj = grid_cells(arrays.vol_lat[who], arrays.vol_lon[who], reach, top)
    # Cells as nodes; a volunteer's cell is linked to every location cell among its nine.
    cell_i = np.concatenate([lci, vci])
    cell_j = np.concatenate([lcj, vcj])
    node, cell_of = np.unique(np.stack([cell_i, cell_j], axis=1), axis=0, return_inverse=True)
    cell_of = cell_of.ravel()
    loc_node, vol_node = cell_of[:n_loc], cell_of[n_loc:]
    has_loc = np.zeros(len(node), bool)
    has_loc[loc_node] = True
    code = node[:, 0] * (int(node[:, 1].max()) - int(node[:, 1].min()) + 3) + node[:, 1]
    width = int(node[:, 1].max()) - int(node[:, 1].min()) + 3
    lookup = pd.Series(np.arange(len(node)), index=code)
    vol_cells = np.unique(vol_node)
    tail_parts, head_parts = [], []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            target = (node[vol_cells, 0] + di) * width + node[vol_cells, 1] + dj
            hit = lookup.reindex(target).to_numpy()
            ok = ~np.isnan(hit)
            hit_nodes = hit[ok].astype(np.int64)
            near_loc = has_loc[hit_nodes]
            tail_parts.append(vol_cells[ok][near_loc])
            head_parts.append(hit_nodes[near_loc])
    tails, heads = np.concatenate(tail_parts), np.concatenate(head_parts)
    label = components(len(node), tails, heads)
    linked = np.zeros(len(node), bool)
    linked[tails] = True
    loc_comp = label[loc_node]
    vol_comp = np.where(linked[vol_node], label[vol_node], -1)

    weight = np.bincount(arrays.g_loc, weights=arrays.g_count, minlength=n_loc)
    split = False
    region = 0
    vol_region[:] = -1
    comps, first = np.unique(loc_comp, return_index=True)
    for comp in comps[np.argsort(first)]:  # components in order of their first location
        locs = np.flatnonzero(loc_comp == comp)
        vols = who[vol_comp == comp]
        pieces: list = []
        if params.decompose == "auto" and weight[locs].sum() > params.part_visits:
            _bisect(arrays, locs, vols, weight, params.part_visits, pieces)
        else:
            pieces.append((locs, vols))
        split |= len(pieces) > 1
        for locs_r, vols_r in pieces:
            loc_region[locs_r] = region
            vol_region[vols_r] = region
            region += 1
    return loc_region, vol_region, split


def _bisect(arrays: VisitArrays, locs: np.ndarray, vols: np.ndarray, weight: np.ndarray,
            limit: int, out: list) -> None:
    """Cut ``locs`` (and the volunteers living on each side) along the longer side at the
    median visit, until each piece has at most ``limit`` visits; pieces are appended in order."""
    total = float(weight[locs].sum())
    if total <= limit or len(locs) <= 1:
        out.append((locs, vols))
        return
    lat, lon = arrays.loc_lat[locs], arrays.loc_lon[locs]
    tall = (lat.max() - lat.min()) * 110.6
    wide = (lon.max() - lon.min()) * 111.3 * math.cos(math.radians(float(lat.mean())))
    coord, vol_coord = (lat, arrays.vol_lat[vols]) if tall >= wide \
        else (lon, arrays.vol_lon[vols])
    order = np.lexsort((locs, coord))
    cum = np.cumsum(weight[locs[order]])
    at = int(np.clip(np.searchsorted(cum, total / 2.0), 0, len(locs) - 2))
    threshold = (coord[order[at]] + coord[order[at + 1]]) / 2.0
    left = vol_coord < threshold
    _bisect(arrays, locs[order[:at + 1]], vols[left], weight, limit, out)
    _bisect(arrays, locs[order[at + 1:]], vols[~left], weight, limit, out)
