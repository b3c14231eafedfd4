"""The matching from tables to tables: :func:`match_visits` prepares the arrays, plans and
solves the regions, repairs across their borders, deals each volunteer's visits into slots
and reports every level with its bound. docs/matching.md has the model and how it is cut.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from wulian.optimizer.geo import haversine_km
from wulian.optimizer.lexmip import LevelResult
from wulian.optimizer.status import Status
from wulian.optimizer.visits.combine import combine_reports, join_candidates, repair
from wulian.optimizer.visits.params import (
    CLASSES,
    SLOTS,
    VISIT_COLUMNS,
    MatchParams,
    PartRunner,
    VisitMatch,
)
from wulian.optimizer.visits.prepare import VisitArrays, prepare
from wulian.optimizer.visits.reasons import unplaced_reasons
from wulian.optimizer.visits.regions import RegionInput, plan_regions, solve_region
from wulian.optimizer.visits.travel import (
    improve_by_length,
    improve_continuity,
    improve_travel,
)


def match_visits(visits: pd.DataFrame, volunteers: pd.DataFrame,
                 params: MatchParams | None = None,
                 run_parts: PartRunner | None = None,
                 start: np.ndarray | None = None) -> VisitMatch:
    """Match the week's visits to volunteers and half-day slots, lexicographically.

    Parameters
    ----------
    visits
        One row per visit with at least :data:`VISIT_COLUMNS`: ``hours`` its length,
        ``skills`` a ';'-list, ``safeguarding`` a bool, ``tier`` and ``urgency`` its priority,
        ``lat``/``lon`` the household, ``last_volunteer``, ``pin_volunteer`` and ``pin_slot``
        ("" when none).
    volunteers
        The contract's ``volunteers`` table.
    params
        Solver choice, limits and decomposition.
    run_parts
        Runs the regions: ``run_parts(task, payload, keys)`` → ``{key: task(payload, key)}``
        (``planning.match`` passes a process pool); by default, one after another here. Only
        called when there are several regions.
    start
        Per visit, a volunteer id ("" for none): a plan to start from besides the heuristic's
        own (``planning.match.plan_week`` gives the previous round's placements). Pinned
        visits ignore it; a component takes the plan it leads to only when that ends
        lexicographically better, and reports the bounds of the plan it keeps.

    Returns
    -------
    VisitMatch
        Assignments, unplaced visits with reasons, load per volunteer and the levels.

    Raises
    ------
    PinError
        When a pin cannot be kept; every such pin is listed.
    """
    params = params or MatchParams()
    t0 = time.perf_counter()
    missing = [c for c in VISIT_COLUMNS if c not in visits.columns]
    if missing:
        raise ValueError(f"visits lack columns {missing}")
    visits = visits.reset_index(drop=True)
    arrays = prepare(visits, volunteers)
    if params.method == "flow" and len(np.unique(arrays.g_units)) > 1:
        raise ValueError("method='flow' needs visits of one length; use 'cp_sat' or 'auto'")
    shortest = int(arrays.g_units.min()) if len(arrays.g_units) else 1
    relax_cap = np.minimum(arrays.free_slots,
                           arrays.free_units // max(shortest, 1)).astype(np.int64)
    able = relax_cap > 0
    loc_region, vol_region, split = plan_regions(arrays, able, params)
    n_regions = int(loc_region.max()) + 1 if len(loc_region) else 0
    shared = RegionInput(
        params=params, vol_lat=arrays.vol_lat, vol_lon=arrays.vol_lon,
        vol_reach=arrays.vol_reach, vol_skills=arrays.vol_skills,
        vol_checked=arrays.vol_checked, free_slots=arrays.free_slots,
        free_units=arrays.free_units, pinned_units=arrays.pinned_units, relax_cap=relax_cap,
        loc_lat=arrays.loc_lat, loc_lon=arrays.loc_lon, g_loc=arrays.g_loc,
        g_units=arrays.g_units, g_class=arrays.g_class, g_count=arrays.g_count,
        g_skills=arrays.g_skills, g_safe=arrays.g_safe, g_last=arrays.g_last,
        loc_region=loc_region, vol_region=vol_region, split=split, regions=n_regions,
        start=_start_pairs(arrays, start))
    weight = np.bincount(loc_region[arrays.g_loc], weights=arrays.g_count, minlength=n_regions)
    keys = sorted(range(n_regions), key=lambda r: (-weight[r], r))  # longest first
    build = time.perf_counter() - t0

    t1 = time.perf_counter()
    if n_regions > 1 and run_parts is not None:
        results = run_parts(solve_region, shared, keys)
    else:
        results = {r: solve_region(shared, r) for r in keys}
    regions = [results[r] for r in range(n_regions)]
    empty = np.zeros(0, np.int64)
    used = (np.concatenate([empty, *(res.group for res in regions)]),
            np.concatenate([empty, *(res.vol for res in regions)]),
            np.concatenate([empty, *(res.count for res in regions)]))
    exact = all(res.exact for res in regions)
    reach_any = np.zeros(len(arrays.g_count), bool)
    for res in regions:
        reach_any[res.groups] = res.reach_any
    used, slot_any, exchanges = repair(arrays, used, join_candidates(arrays, regions),
                                       exchange=not exact)
    if params.travel_repair and not exact and int(used[2].sum()) == int(arrays.g_count.sum()):
        # Every visit placed in a cut or pruned model (a district's final round): travel is a
        # transportation problem the LP nearly solves (optimizer/visits/travel.py).
        used = improve_by_length(arrays, improve_travel(arrays, used,
                                                        search=params.travel_search))
        if params.travel_search:  # then the most continuity at that travel (session 17)
            used = improve_by_length(arrays, improve_continuity(arrays, used))
    if params.bounds:
        reports = combine_reports(arrays, regions, exact, used, relax_cap, able,
                                  settled=params.settled_bounds)
    else:  # the plan only: no level claims a bound
        reports = {name: (Status.FEASIBLE, np.nan, 0.0) for name in
                   [*map(int, np.unique(arrays.g_class)), "travel", "continuity", "load"]}
    solve = time.perf_counter() - t1

    vol, slot = _assign_visits(arrays, used)
    levels = _level_results(arrays, used, vol, reports)
    placed = vol >= 0
    loc = arrays.visit_loc[placed]
    km = np.full(len(vol), np.nan)
    km[placed] = haversine_km(arrays.vol_lat[vol[placed]], arrays.vol_lon[vol[placed]],
                              arrays.loc_lat[loc], arrays.loc_lon[loc])
    hours = visits["hours"].to_numpy(float)
    assignments = pd.DataFrame({
        "visit_id": visits["visit_id"].to_numpy()[placed],
        "volunteer_id": arrays.vol_ids[vol[placed]],
        "slot": np.array(SLOTS, dtype=object)[slot[placed]],
        "hours": hours[placed],
        "km": np.round(km[placed], 3),
    })
    unplaced = pd.DataFrame({"visit_id": visits["visit_id"].to_numpy()[~placed],
                             "reason": unplaced_reasons(arrays, vol, reach_any, slot_any)})
    n_vol = len(arrays.vol_ids)
    load = pd.DataFrame({
        "volunteer_id": arrays.vol_ids,
        "hours": np.bincount(vol[placed], weights=hours[placed], minlength=n_vol),
        "visits": np.bincount(vol[placed], minlength=n_vol),
        "km": np.round(np.bincount(vol[placed], weights=km[placed], minlength=n_vol), 3),
        "max_hours": volunteers["max_hours"].to_numpy(float),
        "available_slots": arrays.vol_avail.sum(axis=1),
    })
    statuses = {lv.status for lv in levels}
    status = (Status.OPTIMAL if statuses <= {Status.OPTIMAL}
              else Status.TIME_LIMIT if Status.TIME_LIMIT in statuses else Status.FEASIBLE)
    methods: dict = {}
    for res in regions:
        for name, n in res.methods.items():
            methods[name] = methods.get(name, 0) + n
    method = "+".join(sorted(methods)) if methods else "none"
    sizes = {"visits": len(visits), "pinned": int((arrays.pin_vol >= 0).sum()),
             "groups": len(arrays.g_count), "volunteers": n_vol,
             "pairs": sum(res.sizes["pairs"] for res in regions),
             "cp_sat_pairs": sum(res.sizes["cp_sat_pairs"] for res in regions),
             "regions": n_regions,
             "components": sum(res.sizes["components"] for res in regions)}
    decomposition = {
        "exact": exact, "cut": split, "regions": n_regions,
        "pruned_regions": sum(bool(res.sizes["kept_per_group"]) for res in regions),
        "repaired_visits": int(used[2].sum() - sum(int(res.count.sum()) for res in regions)),
        "exchanges": exchanges,
        "methods": methods,
        "region_seconds": [round(res.seconds, 3) for res in regions],
        "region_visits": [int(w) for w in weight],
    }
    return VisitMatch(
        assignments=assignments, unplaced=unplaced, load=load, levels=levels, status=status,
        method=method, sizes=sizes, build_seconds=build, solve_seconds=solve,
        decomposition=decomposition)


def _start_pairs(arrays, start) -> tuple | None:
    """A per-visit starting plan (volunteer ids, "" none) as (group, volunteer, count)."""
    if start is None:
        return None
    vol = pd.Series(np.arange(len(arrays.vol_ids)), index=arrays.vol_ids).reindex(
        np.asarray(start, dtype=object)).fillna(-1).to_numpy(np.int64)
    use = (vol >= 0) & (arrays.visit_group >= 0)
    if not use.any():
        return None
    code, count = np.unique(arrays.visit_group[use] * len(arrays.vol_ids) + vol[use],
                            return_counts=True)
    return (code // len(arrays.vol_ids), code % len(arrays.vol_ids), count.astype(np.int64))


def _assign_visits(arrays: VisitArrays, used: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Volunteer and slot index of each visit (-1 when unplaced)."""
    ug, uv, uc = used
    n = len(arrays.visit_group)
    vol = arrays.pin_vol.copy()
    # Each group's visits, in table order, go to its pairs' volunteers in volunteer order.
    free = np.flatnonzero(arrays.visit_group >= 0)
    free = free[np.lexsort((free, arrays.visit_group[free]))]
    group = arrays.visit_group[free]
    rank = np.arange(len(free)) - np.searchsorted(group, group)
    order = np.lexsort((uv, ug))
    who = np.repeat(uv[order], uc[order])
    grp = np.repeat(ug[order], uc[order])
    who_rank = np.arange(len(grp)) - np.searchsorted(grp, grp)
    key = pd.MultiIndex.from_arrays([grp, who_rank])
    target = pd.Series(who, index=key).reindex(
        pd.MultiIndex.from_arrays([group, rank]))
    vol[free] = target.fillna(-1).to_numpy(np.int64)

    # Slots: pinned ones first, then each volunteer's other visits (best class first) take
    # their free available slots in calendar order.
    slot = np.where(vol >= 0, arrays.pin_slot, -1)
    open_slots = arrays.vol_avail & ~arrays.pinned_slot_taken
    sv, st = np.nonzero(open_slots)
    slot_rank = np.arange(len(sv)) - np.searchsorted(sv, sv)
    todo = np.flatnonzero((vol >= 0) & (slot < 0))
    todo = todo[np.lexsort((todo, arrays.visit_class[todo], vol[todo]))]
    todo_rank = np.arange(len(todo)) - np.searchsorted(vol[todo], vol[todo])
    table = pd.Series(st, index=pd.MultiIndex.from_arrays([sv, slot_rank]))
    got = table.reindex(pd.MultiIndex.from_arrays([vol[todo], todo_rank]))
    if got.isna().any():  # cannot happen: the model counts each volunteer's free slots
        raise RuntimeError("a volunteer was given more visits than free slots")
    slot[todo] = got.to_numpy(np.int64)
    assert len(vol) == n
    return vol, slot


def _level_results(arrays: VisitArrays, used: tuple, vol: np.ndarray, reports: dict
                   ) -> list[LevelResult]:
    """Every level's value recomputed from the final plan, with its bound and status.

    ``reports`` holds each level's (status, bound, seconds), bounds in the model's units over
    the unpinned visits. Pinned visits add the same constant to a level's value and its bound.
    """
    ug, uv, uc = used
    placed = vol >= 0
    pinned = arrays.pin_vol >= 0
    n_vol = len(arrays.vol_ids)
    pin_class = np.bincount(arrays.visit_class[pinned], minlength=len(CLASSES))
    loc = arrays.visit_loc[pinned]
    who = arrays.pin_vol[pinned]
    pin_km = haversine_km(arrays.vol_lat[who], arrays.vol_lon[who], arrays.loc_lat[loc],
                          arrays.loc_lon[loc])
    pin_m = int(np.round(pin_km * 1000.0).sum())
    pin_cont = int((arrays.pin_vol[pinned] == arrays.visit_last[pinned]).sum())
    per_class = np.bincount(arrays.visit_class[placed], minlength=len(CLASSES))
    units = np.bincount(vol[placed], weights=arrays.visit_units[placed], minlength=n_vol)
    values = {f"cover:{t}:{u}": float(per_class[c]) for c, (t, u) in enumerate(CLASSES)
              if (arrays.visit_class == c).any()}
    values["travel"] = (int(arrays.pair_metres(ug, uv) @ uc) + pin_m) / 1000.0
    values["continuity"] = float(int(((arrays.g_last[ug] == uv) * uc).sum()) + pin_cont)
    values["load"] = float((units ** 2).sum()) / arrays.scale ** 2

    found = {}
    for key, (status, bound, seconds) in reports.items():
        if isinstance(key, int | np.integer):
            t, u = CLASSES[int(key)]
            name, bound = f"cover:{t}:{u}", bound + pin_class[int(key)]
        elif key == "travel":
            name, bound = key, (bound + pin_m) / 1000.0
        elif key == "continuity":
            name, bound = key, bound + pin_cont
        else:
            name, bound = key, bound / arrays.scale ** 2
        found[name] = (status, bound, seconds)
    out = []
    for name, value in values.items():
        sense = "min" if name in ("travel", "load") else "max"
        status, bound, seconds = found.get(name, (Status.OPTIMAL, value, 0.0))
        if status == Status.OPTIMAL:
            bound = value
        out.append(LevelResult(name=name, sense=sense, value=value, bound=float(bound),
                               status=Status(status), seconds=round(seconds, 3)))
    return out
