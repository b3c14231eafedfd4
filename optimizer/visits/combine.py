"""After the regions: their plans joined, the visits still unplaced offered across region
borders (exchanges, then any volunteer with room), and each level's status and bound for the
whole model. docs/matching.md ("Decomposition", "Bounds") says why the bounds hold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wulian.optimizer.geo import pairs_within
from wulian.optimizer.status import Status
from wulian.optimizer.visits.bounds import (
    cheapest,
    continuity_bound,
    hours_travel_floor,
    load_floor,
)
from wulian.optimizer.visits.heuristic import displace
from wulian.optimizer.visits.params import CLASSES
from wulian.optimizer.visits.patterns import later_bounds, pattern_lp
from wulian.optimizer.visits.prepare import VisitArrays
from wulian.optimizer.visits.regions import (
    NO_METRES,
    RegionResult,
    qualified,
    requirement_keys,
    worse_status,
)
from wulian.optimizer.visits.settled import settled_bounds


def join_candidates(arrays: VisitArrays, regions: list[RegionResult]) -> tuple:
    """The regions' candidate lists joined: per group its key (-1 none), per key the start of
    its nearest qualified volunteers, those volunteers, and whether the list is cut short."""
    cand_of = np.full(len(arrays.g_count), -1, np.int64)
    starts, vols, more = [np.zeros(1, np.int64)], [], []
    keys = at = 0
    for res in regions:
        assert res.candidates is not None  # every region sets its candidates
        need_of, start, vol, cut = res.candidates
        cand_of[res.groups] = need_of + keys
        starts.append(start[1:] + at)
        vols.append(vol)
        more.append(cut)
        keys += len(cut)
        at += len(vol)
    return (cand_of, np.concatenate(starts),
            np.concatenate([np.zeros(0, np.int64), *vols]),
            np.concatenate([np.zeros(0, bool), *more]))


def repair(arrays: VisitArrays, used: tuple[np.ndarray, np.ndarray, np.ndarray],
           candidates: tuple, exchange: bool
           ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, int]:
    """Offer the visits still unplaced to volunteers within reach across region borders and
    past pruned pairs: with ``exchange``, first by ``heuristic.displace`` onto each visit's
    ``CANDIDATES`` nearest qualified volunteers, then to any volunteer with a free slot and
    the hours, best class first, nearest volunteer first. Returns the plan, per group whether a
    qualified volunteer within reach still has a free slot (for the reasons), and the number of
    exchanges."""
    ug, uv, uc = used
    cand_of, cand_start, cand_vol, cand_more = candidates
    n_groups, n_vol, n_loc = len(arrays.g_count), len(arrays.vol_ids), len(arrays.loc_lat)
    left = arrays.g_count - np.bincount(ug, weights=uc, minlength=n_groups).astype(np.int64)
    slots_left = arrays.free_slots - np.bincount(uv, weights=uc,
                                                 minlength=n_vol).astype(np.int64)
    units_left = arrays.free_units - np.bincount(uv, weights=uc * arrays.g_units[ug],
                                                 minlength=n_vol).astype(np.int64)
    exchanges = 0
    if exchange and (left > 0).any():
        (ug, uv, uc), exchanges = displace(arrays.g_class, arrays.g_units, left, slots_left,
                                           units_left, (ug, uv, uc), cand_start, cand_vol,
                                           cand_of)

    # Fill: any volunteer within reach with a free slot and the hours, best class first.
    todo = np.flatnonzero(left > 0)
    shortest = int(arrays.g_units[todo].min()) if len(todo) else 0
    roomy = np.flatnonzero((slots_left >= 1) & (units_left >= shortest))
    if len(todo) and len(roomy):
        gl, gs = arrays.g_loc[todo], arrays.g_skills[todo]
        gc, gu = arrays.g_safe[todo], arrays.g_units[todo]
        locs = np.unique(gl)
        li, vi, km = pairs_within(arrays.loc_lat[locs], arrays.loc_lon[locs],
                                  arrays.vol_lat[roomy], arrays.vol_lon[roomy],
                                  arrays.vol_reach[roomy])
        li, vi = locs[li], roomy[vi]
        key_of, key_loc, reqs = requirement_keys(gl, gs, gc, gu)
        where = np.full(n_loc, -1, np.int64)
        fit_keys, fit_pairs = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for mask, safe, units, keys in reqs:
            where[key_loc[keys]] = keys
            okv = qualified(arrays.vol_skills, arrays.vol_checked, mask, safe) \
                & (units_left >= units)
            rel = np.flatnonzero(okv[vi] & (where[li] >= 0))
            rel = rel[np.lexsort((vi[rel], km[rel], li[rel]))]  # nearest first per location
            fit_keys.append(where[li[rel]])
            fit_pairs.append(rel)
            where[key_loc[keys]] = -1
        fit_key = np.concatenate(fit_keys)  # sorted: keys go by requirement, then location
        fit_pair = np.concatenate(fit_pairs)
        start = np.searchsorted(fit_key, np.arange(len(key_loc) + 1))
        cand = np.flatnonzero((start[1:] > start[:-1])[key_of])
        added: list = []
        for j in cand[np.lexsort((todo[cand], arrays.g_class[todo[cand]]))].tolist():
            g, k = todo[j], key_of[j]
            for p in fit_pair[start[k]:start[k + 1]].tolist():  # nearest first
                i = vi[p]
                fit = min(left[g], slots_left[i], units_left[i] // arrays.g_units[g])
                if fit > 0:
                    added.append((g, i, fit))
                    left[g] -= fit
                    slots_left[i] -= fit
                    units_left[i] -= fit * arrays.g_units[g]
                if not left[g]:
                    break
        if added:
            extra = np.array(added, np.int64)
            total = pd.DataFrame({"g": np.concatenate([ug, extra[:, 0]]),
                                  "v": np.concatenate([uv, extra[:, 1]]),
                                  "c": np.concatenate([uc, extra[:, 2]])}) \
                .groupby(["g", "v"], sort=True)["c"].sum()
            ug = total.index.get_level_values(0).to_numpy(np.int64)
            uv = total.index.get_level_values(1).to_numpy(np.int64)
            uc = total.to_numpy(np.int64)
        # Every fit was taken: a visit left unplaced fits no volunteer within reach.
        fits = np.zeros(len(key_loc), bool)
        for mask, safe, units, keys in reqs:
            where[key_loc[keys]] = keys
            okv = qualified(arrays.vol_skills, arrays.vol_checked, mask, safe) \
                & (slots_left >= 1) & (units_left >= units)
            fits[where[li[okv[vi] & (where[li] >= 0)]]] = True
            where[key_loc[keys]] = -1
        if (fits[key_of] & (left[todo] > 0)).any():  # cannot happen
            raise RuntimeError("an unplaced visit still fits a volunteer")

    # Reasons: a qualified volunteer within reach with a slot still free? The nearest
    # candidates answer for most visits; only where all of a long list are full are the
    # rest looked at.
    slot_any = np.zeros(n_groups, bool)
    todo = np.flatnonzero(left > 0)
    keys = np.unique(cand_of[todo][cand_of[todo] >= 0])
    n = cand_start[keys + 1] - cand_start[keys]
    owner = np.repeat(keys, n)
    idx = np.repeat(cand_start[keys], n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    free_key = np.zeros(len(cand_more), bool)
    free_key[owner[slots_left[cand_vol[idx]] >= 1]] = True
    slot_any[todo] = (cand_of[todo] >= 0) & free_key[np.maximum(cand_of[todo], 0)]
    open_question = todo[(cand_of[todo] >= 0) & ~slot_any[todo]
                         & cand_more[np.maximum(cand_of[todo], 0)]]
    free = np.flatnonzero(slots_left >= 1)
    if len(open_question) and len(free):
        gl, gs = arrays.g_loc[open_question], arrays.g_skills[open_question]
        gc = arrays.g_safe[open_question]
        locs = np.unique(gl)
        li, vi, _ = pairs_within(arrays.loc_lat[locs], arrays.loc_lon[locs],
                                 arrays.vol_lat[free], arrays.vol_lon[free],
                                 arrays.vol_reach[free])
        li, vi = locs[li], free[vi]
        need_of, need_loc, needs = requirement_keys(gl, gs, gc, None)
        at = np.zeros(n_loc, bool)
        found = np.zeros(len(need_loc), bool)
        for mask, safe, _, nkeys in needs:
            at[li[qualified(arrays.vol_skills, arrays.vol_checked, mask, safe)[vi]]] = True
            found[nkeys] = at[need_loc[nkeys]]
            at[:] = False
        slot_any[open_question] = found[need_of]
    return (ug, uv, uc), slot_any, exchanges


def combine_reports(arrays: VisitArrays, regions: list[RegionResult], exact: bool, used: tuple,
                    relax_cap: np.ndarray, able: np.ndarray, settled: bool = False) -> dict:
    """Each level's (status, bound, seconds) over the unpinned visits, in the model's units:
    the sum of the components' when nothing was cut or pruned, else bounds of the whole
    (docs/matching.md, "Bounds")."""
    found: dict = {}
    for res in regions:
        for name, (status, bound, seconds) in res.reports.items():
            got = found.setdefault(name, [Status.OPTIMAL, 0, 0.0])
            got[0] = worse_status(got[0], status)
            got[1] += bound
            got[2] += seconds
    n_vol = len(arrays.vol_ids)
    busy = np.zeros(n_vol, bool)
    for res in regions:
        busy[res.busy_vols] = True
    idle_load = int((arrays.pinned_units[~busy] ** 2).sum())
    if exact:
        if "load" in found:
            found["load"][1] += idle_load
        return {name: tuple(v) for name, v in found.items()}

    ug, uv, uc = used
    k = len(CLASSES)
    held = np.bincount(arrays.g_class[ug], weights=uc, minlength=k).astype(np.int64)
    room = np.zeros(len(arrays.g_count), bool)
    for res in regions:
        room[res.groups[res.room_any]] = True
    n_max = np.bincount(arrays.g_class[room], weights=arrays.g_count[room],
                        minlength=k).astype(np.int64)
    out: dict = {}

    def settle(name, value, bound, sense):
        met = value >= bound if sense == "max" else value <= bound
        status, _, seconds = found.get(name, (Status.OPTIMAL, 0, 0.0))
        if met:
            out[name] = (Status.OPTIMAL, value, seconds)
        else:
            worst = Status.TIME_LIMIT if status == Status.TIME_LIMIT else Status.FEASIBLE
            out[name] = (worst, bound, seconds)

    # Not exact: a region was cut or pruned, so every region has its cut's bounds.
    cut_paid: list[np.ndarray] = []
    cut_vols: list[list] = []
    for res in regions:
        assert res.cut_paid is not None and res.cut_vols is not None
        cut_paid.append(res.cut_paid)
        cut_vols.append(res.cut_vols)
    for c in np.unique(arrays.g_class):
        paid = sum(int(paid_c[c]) for paid_c in cut_paid)
        cut = np.zeros(n_vol, bool)
        for vols_c in cut_vols:
            cut |= vols_c[c]
        prefix = paid + int(relax_cap[cut].sum())
        settle(int(c), int(held[c]), int(min(n_max[c], prefix - held[:c].sum())), "max")
    metres = arrays.pair_metres(ug, uv)
    near = np.full(len(arrays.g_count), NO_METRES)
    for res in regions:
        near[res.groups] = res.near
    travel_bound = cheapest(near, arrays.g_count, arrays.g_class, held)
    cont_bound = continuity_bound(arrays, relax_cap)
    load_bound = None
    if int(held.sum()) == int(arrays.g_count.sum()):
        # Every visit placed (a district's final round): the hours must go somewhere, and
        # the hours flow over every pair bounds that far better than each visit's nearest;
        # the LP with hours over every pair better still, and it bounds continuity under
        # the plan's travel (docs/matching.md, "Session 12").
        by_hours = hours_travel_floor(arrays)
        if by_hours is not None:
            travel_bound = max(travel_bound, by_hours)
        # The pattern LP over every pair holds each volunteer's integer hull of slots and
        # hours (optimizer/visits/patterns.py, docs/matching.md "Session 15"): the tightest.
        solved = pattern_lp(arrays)
        if solved is not None:
            travel_bound = max(travel_bound, solved[1])
        lp = settled_bounds(arrays, used) if settled else {}  # (MatchParams.settled_bounds)
        travel_bound = max(travel_bound, lp.get("travel", travel_bound))
        cont_bound = min(cont_bound, lp.get("continuity", cont_bound))
        # The same pattern LP with the plan's travel held bounds continuity, and with its
        # continuity held too, load (docs/matching.md, "Session 17").
        later = later_bounds(arrays, used)
        cont_bound = min(cont_bound, later.get("continuity", cont_bound))
        load_bound = later.get("load")
    settle("travel", int(metres @ uc), travel_bound, "min")
    settle("continuity", int(((arrays.g_last[ug] == uv) * uc).sum()), cont_bound, "max")
    units = np.bincount(uv, weights=uc * arrays.g_units[ug], minlength=n_vol).astype(np.int64)
    load = int(((units + arrays.pinned_units) ** 2).sum())
    could = arrays.pinned_units > 0
    for res in regions:
        assert res.reach_vols is not None  # every region sets it
        could |= res.reach_vols
    floor = load_floor(arrays.pinned_units[could], arrays.g_units, arrays.g_count,
                       arrays.g_class, held)
    settle("load", load, max(floor, load_bound or floor), "min")
    return out
