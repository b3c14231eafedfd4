"""The weekly allocation of a whole city, street by street (docs/model.md §1.6).

Every offer and fund of a street or of its stations, and every volunteer pool (one street's
volunteers, who serve that street's households), reaches only that street's households. Only
the offers and funds of districts and of the city are shared between streets. So:

1. **Split.** The budget lab's aggregate LP (``optimizer.budget``, a relaxation of the exact
   model, solved lexicographically on the city) says how much of each shared offer and each
   shared fund the needs of each street get at its optimum. Each street receives that share
   (whole units, whole cents).
2. **Streets.** With its share, each street is an exact weekly allocation of its own
   (``optimizer.allocation.allocate``) over only the supply that reaches it, independent of the
   others: they run in parallel (``map_fn``: a process pool's ``map``, or the built-in one),
   dealt into a few balanced tasks per worker. ``AllocationParams.decompose_by="district"``
   makes the parts districts instead (fewer, larger models: slower in all).
3. **Top-up.** Whatever of a shared offer or fund the streets left is then offered to the
   units that some street left short, for want of capacity or budget, of a service that such
   supply serves and reaches: one more allocation over just those units and just that supply,
   each need keeping its weight. Then every household short of supply (or told that no offer
   is eligible, which a part that sees only its own supply cannot know) gets its reasons
   again, against the city's state rather than its street's share, so every reason holds for
   the city (in the pool, beside the bounds below: reasons change neither the plan nor a
   level's value).

The answer is feasible for the whole model and lexicographic within each part; it is not
proven optimal for the city. Its levels get bounds in the sense ``optimizer.lexmip`` certifies
a level with: red's is the aggregate LP's red optimum (it bounds the exact model's red value);
orange, yellow, green and money get the aggregate LP's optimum of the level with every earlier
colour held at the value this run reached (``BudgetModel.level_bounds``: no exact answer that
keeps those values does better). Those four LPs are solved after the parts, whatever the
city's size, as one LP each level goes on from (on the city 22 s of CPU; docs/model.md §1.6),
each for at most ``bound_seconds``: one that stops there still bounds its level, from the row
duals it had (weak duality, ``optimizer.dual_bound``). So every level from red to money has a
finite bound; travel and continuity have none (``nan``), as in lexmip on large models. Each of
red to money also gets a bound from the exact parts with the supply they share (and, after red, the
earlier colours' value rows) priced at those LPs' duals (``optimizer.priced``, a Lagrangian
bound; each part's LP is read from the model the part is solved with, in its own task); the
tighter of the two is reported. A level is
``optimal`` when its value meets its bound (lexmip's tolerance), else ``feasible`` with the
gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd

from wulian.optimizer.allocation import (
    BUDGET_EXHAUSTED,
    CAPACITY_EXHAUSTED,
    CENTS_PER_YUAN,
    HOUSEHOLD_CAP,
    LEVELS,
    NO_ELIGIBLE_OFFER,
    TIER_LEVELS,
    AllocationInput,
    AllocationParams,
    AllocationResult,
    allocate,
    build_model,
    explain,
    member_mask,
    positions,
    resource_use,
)
from wulian.optimizer.budget import BudgetModel, build_budget_model
from wulian.optimizer.budget.levels import BOUND_SLACK
from wulian.optimizer.checks import check_seconds
from wulian.optimizer.eligibility import charges_fund, covering_pairs, offer_coverage
from wulian.optimizer.flow import Parts
from wulian.optimizer.lexmip import LevelResult
from wulian.optimizer.memory import release_memory
from wulian.optimizer.priced import PartLP, lp_bounds, part_lp, priced_total
from wulian.optimizer.status import Status

# Tasks the parts of a street-by-street run are dealt into (a few per worker, for balance).
PART_TASKS = 24
# Tasks the reasons said again are dealt into: each reads the whole supply, so fewer, larger.
EXPLAIN_TASKS = 4
# Unmet reasons that more shared supply could change (the others are about the household).
SUPPLY_REASONS = (CAPACITY_EXHAUSTED, BUDGET_EXHAUSTED)
# Seconds each of the four LPs bounding the levels after red may run (``BudgetModel.
# level_bounds``, solved after the parts, each level from the basis of the one before; none
# when the run's time limit is none). On the city (384,000 aggregate columns) the four take
# 22 s of CPU together (the first, from nothing, about 5 s). An LP that stops at this limit
# still bounds its level, from the duals it had (looser).
BOUND_SECONDS = 180.0
# A level is optimal when its value is this close to its bound (relative to max(1, |value|),
# as optimizer.lexmip decides it).
OPTIMAL_GAP = 1e-6


def _part_bounds_task(chunk: list[tuple[PartLP, list]]) -> list[list[float]]:
    """A worker's task: the priced bounds of several parts' LPs, each for several
    objectives."""
    return [lp_bounds(*args) for args in chunk]


def _solve_parts(chunk: list[tuple[AllocationInput, AllocationParams,
                                   tuple[pd.Series, pd.Series] | None]]
                 ) -> list[tuple[AllocationResult, PartLP | None, float, float]]:
    """A worker's task: several parts, one after the other (fewer, larger messages). With
    red's prices of the shared supply (offer prices, fund prices), each part's LP with the
    shared rows dropped (``optimizer.priced``) is read from the model the part is solved
    with, and its priced red bound solved at once: (result, LP, red bound, seconds of it);
    the LP comes back for the later levels' priced bounds, so no part is built twice."""
    out = []
    for data, params, red_prices in chunk:
        t = time.perf_counter()
        built = build_model(data)
        build = time.perf_counter() - t
        lp, red, red_seconds = None, float("nan"), 0.0
        if red_prices is not None:
            t = time.perf_counter()
            offer_price, fund_price = red_prices
            lp = part_lp(built, offer_price.index, fund_price.index)
            red = lp_bounds(lp, [({TIER_LEVELS[0]: 1.0}, offer_price, fund_price)])[0]
            red_seconds = time.perf_counter() - t
        result = allocate(data, params, built=built)
        result.build_seconds += build
        out.append((result, lp, red, red_seconds))
    return out


def districts_of(data: AllocationInput) -> np.ndarray:
    """The district of each need."""
    return areas_of(data, "district")


def areas_of(data: AllocationInput, by: str) -> np.ndarray:
    """The centre at level ``by`` (district or street) of each need."""
    return data.hierarchy.ancestor(data.needs["station_id"].to_numpy(), by)


def _shared(data: AllocationInput, by: str) -> tuple[pd.Series, pd.Series]:
    """(offer_id → capacity available, fund_id → budget available) of the supply that reaches
    more than one part: offers covering a centre above level ``by``, and the funds of such
    centres."""
    offers = data.offers
    above = data.hierarchy.ancestor(offer_coverage(data.offers, data.providers), by) == ""
    capacity = (offers["capacity"].to_numpy(float)
                - offers["offer_id"].map(data.used_capacity).fillna(0.0).to_numpy(float))
    shared_offers = pd.Series(np.maximum(capacity, 0.0), index=offers["offer_id"])[above]
    funds = data.funds
    above_fund = data.hierarchy.ancestor(funds["centre_id"].to_numpy(), by) == ""
    budget = (funds["budget"].to_numpy(float)
              - funds["fund_id"].map(data.used_budget).fillna(0.0).to_numpy(float))
    shared_funds = pd.Series(np.maximum(budget, 0.0), index=funds["fund_id"])[above_fund]
    return shared_offers, shared_funds


def _part_inputs(data: AllocationInput, area_of_need: np.ndarray, parts: list[str], by: str,
                 shared_offers: pd.Series, shared_funds: pd.Series, offer_share: pd.Series,
                 fund_share: pd.Series, params: AllocationParams) -> Callable[[int], tuple]:
    """``part(i)``: the i-th part's model input — its needs, its share of the shared supply
    (what is beyond the share counts as used elsewhere), and only the supply that can reach
    it (shared offers, the offers, volunteers and history inside the area), so a worker
    receives and reads a few rows, not the city's. Rows are grouped by part once, so building
    all the parts costs about one pass over the city."""
    offer_area = data.hierarchy.ancestor(offer_coverage(data.offers, data.providers), by)
    shared_offer = data.offers["offer_id"].isin(shared_offers.index).to_numpy()
    vol_area = data.hierarchy.ancestor(data.volunteers["station_id"].to_numpy(), by)
    # History of a household goes with the part of its needs (others are never read).
    area_of_household = pd.Series(area_of_need, index=data.needs["household_id"].to_numpy())
    area_of_household = area_of_household[~area_of_household.index.duplicated()]
    history_area = data.history["household_id"].map(area_of_household).fillna("").to_numpy()
    rows_of = {name: pd.Series(np.arange(len(area)), index=area).groupby(level=0).indices
               for name, area in (("needs", area_of_need), ("volunteers", vol_area),
                                  ("history", history_area))}
    none = np.zeros(0, np.int64)

    def rows(name: str, area: str) -> np.ndarray:
        return np.asarray(rows_of[name].get(area, none))  # in row order already

    # What of each shared offer and fund is beyond a part's share (whole units and cents):
    # one matrix per kind of supply, a row per part.
    capacity = data.offers.set_index("offer_id")["capacity"].astype(float)[shared_offers.index]
    budget = data.funds.set_index("fund_id")["budget"].astype(float)[shared_funds.index]
    offer_scale = _offer_scale(data).reindex(shared_offers.index)

    def shares(share: pd.Series, index: pd.Index) -> pd.DataFrame:
        if share.empty:
            return pd.DataFrame(0.0, index=parts, columns=index)
        wide = share.unstack(fill_value=0.0)  # type: ignore[arg-type]  # pandas-stubs: ints
        return wide.reindex(index=parts, columns=index, fill_value=0.0)

    offer_elsewhere = (capacity - _whole(shares(offer_share, shared_offers.index),
                                         offer_scale)).to_numpy()
    fund_elsewhere = (budget - _whole(shares(fund_share, shared_funds.index), 100.0)).to_numpy()
    offer_ids, fund_ids = shared_offers.index.tolist(), shared_funds.index.tolist()
    pins_by_need = data.pins["need_id"]
    # Hours used elsewhere of each pool ("pool:<street>:<service>"), by the part of its street:
    # a part's pools are its own volunteers', so it carries their hours, not the city's (the
    # plan's held round holds thousands, and each part read them all twice).
    pool_hours: dict[str, dict[str, float]] = {}
    used_ids = list(data.used_pool_hours)
    pool_area = data.hierarchy.ancestor(np.array([pool.split(":")[1] for pool in used_ids],
                                                 dtype=object), by)
    for pool, area in zip(used_ids, pool_area, strict=True):
        pool_hours.setdefault(area, {})[pool] = data.used_pool_hours[pool]

    def part(i: int) -> tuple[AllocationInput, AllocationParams]:
        area = parts[i]
        needs = data.needs.iloc[rows("needs", area)].reset_index(drop=True)
        used_capacity = {**data.used_capacity,
                         **dict(zip(offer_ids, offer_elsewhere[i].tolist(), strict=True))}
        used_budget = {**data.used_budget,
                       **dict(zip(fund_ids, fund_elsewhere[i].tolist(), strict=True))}
        return replace(
            data, needs=needs,
            offers=data.offers[shared_offer | (offer_area == area)].reset_index(drop=True),
            volunteers=data.volunteers.iloc[rows("volunteers", area)].reset_index(drop=True),
            history=data.history.iloc[rows("history", area)].reset_index(drop=True),
            pins=data.pins[member_mask(pins_by_need, needs["need_id"].to_numpy(object))]
            .reset_index(drop=True),
            used_capacity=used_capacity, used_budget=used_budget,
            used_pool_hours=pool_hours.get(area, {}),
            pool_caps=_caps_of(data.pool_caps, needs["need_id"])), params

    return part


def _caps_of(caps: dict[str, float], need_ids: pd.Series) -> dict[str, float]:
    """The pool caps of these needs only. The plan's held rounds cap every need with a pool
    arc, and each part maps its needs through the caps it carries: with the city's 200,000
    caps in each of 292 parts, the held round's build took 144.8 s instead of 62.6 s
    (docs/benchmarks.md, session 14)."""
    if not caps:
        return caps
    return {need: caps[need] for need in need_ids.tolist() if need in caps}


def _chunks(sizes: np.ndarray, n_chunks: int) -> list[list[int]]:
    """Parts dealt into ``n_chunks`` tasks of about equal size, largest first (so the pool's
    last tasks are small and both workers finish together)."""
    chunks: list[list[int]] = [[] for _ in range(min(n_chunks, len(sizes)))]
    load = np.zeros(len(chunks))
    for i in np.argsort(-sizes, kind="stable"):
        k = int(np.argmin(load))
        chunks[k].append(int(i))
        load[k] += sizes[i]
    return [c for c in chunks if c]


def _whole(values: pd.DataFrame, scale: pd.Series | float) -> pd.DataFrame:
    """Round shares down to whole base units (units × scale), so no share exceeds the total."""
    return np.floor(values * scale + 1e-6) / scale  # type: ignore[return-value]  # a frame


def allocate_by_district(data: AllocationInput, params: AllocationParams | None = None, *,
                         map_fn: Callable[[Callable, Iterable], Iterable] = map,
                         bound_seconds: float = BOUND_SECONDS,
                         on_plan: Callable[[AllocationResult], None] | None = None,
                         beside_map_fn: Callable[[Callable, Iterable], Iterable] | None = None,
                         on_core_free: Callable[[], None] | None = None
                         ) -> tuple[AllocationResult, dict]:
    """Allocate a multi-district week as described in the module docstring, in parts of
    ``params.decompose_by`` ("street" or "district").

    ``bound_seconds``: the time limit of each LP bounding a level after red (none when
    ``params.time_limit`` is none); ``params.certify=False`` bounds none of them.

    ``on_plan``, if given, is called with the result once its allocations are final and
    before the later levels are bounded (on the city 19–21 s on a quiet machine: the bounds
    change only ``levels``, in place) and the reasons said again for the city (step 3: put in
    ``need_served`` and ``unmet`` when the bounds are done), so that work needing the plan
    alone can start beside them; it must not change the result. ``beside_map_fn``, if given,
    runs what goes to the pool after that (the reasons said again, the later levels' priced
    bounds) instead of ``map_fn``: a week's open gives the gate its matching's regions go
    through, so that none queues behind all of the others' tasks and the bound LPs keep their
    core. ``on_core_free`` is called once the bound LPs in this process are done, before the
    priced bounds (its core is then free for the work beside them).

    Returns
    -------
    (AllocationResult, info)
        ``info``: the parts, the top-up's size, the aggregate's red bound, how the later
        levels were bounded (``bounds``) and seconds.
    """
    params = params or AllocationParams()  # checked itself, decompose_by too
    check_seconds("allocate_by_district", "bound_seconds", bound_seconds,
                  zero=("不限", "none"))
    by = params.decompose_by
    t0 = time.perf_counter()
    area_of_need = areas_of(data, by)
    parts = sorted(set(area_of_need) - {""})
    shared_offers, shared_funds = _shared(data, by)

    # 1. Split the shared supply as the aggregate optimum uses it.
    lab: BudgetModel | None  # dropped once it has nothing left to bound (below)
    lab = build_budget_model(data, threads=params.threads, seed=params.seed,
                             time_limit=params.time_limit)
    base = lab.solve()
    red_bound = float(base.colours.set_index("colour")["value"][TIER_LEVELS[0]])
    # The aggregate's red prices of the shared supply, per base unit of the exact model
    # (cents for yuan), for the priced bound on red (optimizer.priced).
    offer_dual, fund_dual = lab.red_duals()
    offer_price = (offer_dual.reindex(shared_offers.index).fillna(0.0)
                   / _offer_scale(data).reindex(shared_offers.index))
    fund_price = fund_dual.reindex(shared_funds.index).fillna(0.0) / CENTS_PER_YUAN
    offer_use, fund_use = lab.use_by_street()
    bounding = params.certify
    if bounding:
        lab.release_solvers()  # its levels' LPs would stay in memory while the parts run
    else:
        lab = None
    release_memory()  # those solvers' pages (on the city about half a GiB) before the parts
    offer_use = offer_use.assign(area=data.hierarchy.ancestor(
        offer_use["street_id"].to_numpy(), by))
    offer_share = offer_use[offer_use["offer_id"].isin(shared_offers.index)].groupby(
        ["area", "offer_id"])["units"].sum()
    fund_use = fund_use.assign(area=data.hierarchy.ancestor(
        fund_use["street_id"].to_numpy(), by))
    fund_share = fund_use[fund_use["fund_id"].isin(shared_funds.index)].groupby(
        ["area", "fund_id"])["yuan"].sum()
    split_seconds = time.perf_counter() - t0

    # 2. Each part with its share, in parallel. A chunk's inputs are built as the pool asks
    # for it, so the workers start on the first while the rest are made.
    part_params = replace(params, certify=False)
    part = _part_inputs(data, area_of_need, parts, by, shared_offers, shared_funds, offer_share,
                        fund_share, part_params)
    sizes = pd.Series(area_of_need).value_counts().reindex(parts).to_numpy()
    chunks = _chunks(sizes, len(parts) if by == "district" else PART_TASKS)
    red_prices = (offer_price, fund_price) if bounding else None
    done = list(map_fn(_solve_parts, ([(*part(i), red_prices) for i in chunk]
                                      for chunk in chunks)))
    by_part = {i: r for chunk, rs in zip(chunks, done, strict=True)
               for i, r in zip(chunk, rs, strict=True)}
    results = [by_part[i][0] for i in range(len(parts))]
    # Each part's LP for the priced bounds (None unless bounding), its priced red bound and
    # the seconds that took, inside the part's task.
    part_lps = [by_part[i][1] for i in range(len(parts))]
    part_red = [by_part[i][2] for i in range(len(parts))]
    priced_seconds = sum(by_part[i][3] for i in range(len(parts)))
    merged = _merge(results)
    part_seconds = time.perf_counter() - t0 - split_seconds

    # 3. The top-up: leftover shared supply for the units left short of it (unless the
    # parts' allocations are all the caller reads); the city's reasons are said after.
    top_up_needs = 0
    seen_ids = None
    if params.top_up:
        merged, top_up_needs, seen_ids = _top_up(data, merged, results, shared_offers,
                                                 shared_funds, part_params)

    # The priced bound on red: each part's exact LP with the shared rows priced, solved in
    # the parts' own tasks (above).
    priced_red = float("nan")
    if params.certify:
        priced_red = priced_total(part_red, offer_price, shared_offers * _offer_scale(data)
                                  .reindex(shared_offers.index), fund_price,
                                  (shared_funds * CENTS_PER_YUAN).round())
    aggregate_red_bound = red_bound
    if np.isfinite(priced_red):
        red_bound = min(red_bound, priced_red)
    result = _finish(data, merged, results, red_bound)
    # _finish drops a red bound the value beats (by bounded_level): its note is said here.
    red_note = bounded_level(result.levels[0], red_bound)[1]
    part_gaps = {lv: max((r.levels[i].gap for r in results if np.isfinite(r.levels[i].gap)),
                         default=0.0) for i, lv in enumerate(LEVELS)}
    # The parts' own tables are in ``result`` now: on the city they are hundreds of MiB the
    # bound LPs below need more.
    del results, done, by_part
    release_memory()
    # The city's reasons change only the reasons, and the bounds read only the levels'
    # values: so the reasons are said again beside the bounds (the workers explain while
    # this process's core solves the bound LPs, on the city 3–4 s off the open's path), and
    # the plan is handed over before them, its reasons put in place when they are back.
    beside = ThreadPoolExecutor(1)
    reasons = (beside.submit(_say_again, data, merged["allocations"], merged["need_served"],
                             seen_ids, area_of_need, beside_map_fn or map_fn)
               if seen_ids is not None else None)
    beside.shutdown(wait=False)  # (its thread ends with that task)
    del merged
    freed: list[bool] = []

    def free_core() -> None:
        """``on_core_free``, once: when the bound LPs are done, or at the latest before the
        reasons are waited for (their tasks may be held at the caller's gate for that core)."""
        if on_core_free is not None and not freed:
            freed.append(True)
            on_core_free()

    if on_plan is not None:
        on_plan(result)
    t_bounds = time.perf_counter()
    if bounding:
        seconds = bound_seconds if params.time_limit > 0 else 0.0
        offer_left = shared_offers * _offer_scale(data).reindex(shared_offers.index)
        fund_left = (shared_funds * CENTS_PER_YUAN).round()

        def priced_later(prices: dict[str, tuple], reached: dict[str, float]
                         ) -> dict[str, float]:
            """Each level's bound from the exact parts with the shared rows and the earlier
            colours' value rows priced at the aggregate bound LP's duals (optimizer.priced);
            money's as a lower bound."""
            levels = [lv for lv in (*TIER_LEVELS[1:], "money") if lv in prices]
            objectives = []
            for level in levels:
                offer_dual, fund_dual, held = prices[level]
                weights = {level: 1.0 if level != "money" else -1.0, **held}
                objectives.append((weights, offer_dual.reindex(shared_offers.index).fillna(0.0)
                                   / _offer_scale(data).reindex(shared_offers.index),
                                   fund_dual.reindex(shared_funds.index).fillna(0.0)
                                   / CENTS_PER_YUAN))
            tasks = [[(part_lps[i], objectives) for i in chunk] for chunk in chunks]
            free_core()
            per_part = [b for bs in (beside_map_fn or map_fn)(_part_bounds_task, tasks)
                        for b in bs]
            out = {}
            for j, level in enumerate(levels):
                held_value = sum(price * (reached[c] - BOUND_SLACK * max(1.0, abs(reached[c])))
                                 for c, price in prices[level][2].items())
                total = priced_total([b[j] for b in per_part], objectives[j][1], offer_left,
                                     objectives[j][2], fund_left, held=held_value)
                out[level] = total if level != "money" else -total
            return out

        how, notes, methods = _bound_later_levels(data, result, lab, seconds, priced_later)
    else:
        how, notes, methods = "levels after red not bounded (certify off)", [], {}
    free_core()
    if reasons is not None:
        _put_reasons(result, reasons.result())
        release_memory()  # the thread's copies of the plan's tables, held until now
    lab = None
    part_lps.clear()
    bounds_took = time.perf_counter() - t_bounds
    info = {
        "method": f"{by}s",
        "parts": len(parts),
        "top_up_needs": top_up_needs,
        "aggregate_red_bound": aggregate_red_bound,
        "priced_red_bound": priced_red,
        "bounds": how,
        "bound_methods": methods,
        "part_gaps": part_gaps,
        "seconds": {"split": round(split_seconds, 3), "parts": round(part_seconds, 3),
                    "top_up": round(t_bounds - t0 - split_seconds - part_seconds, 3),
                    "priced_red_bound": round(priced_seconds, 3),
                    "bounds": round(bounds_took, 3)},
    }
    notes = [note for note in [red_note] if note] + notes
    if notes:
        info["bound_problems"] = notes
    return result, info


def _bound_later_levels(data: AllocationInput, result: AllocationResult, lab,
                        seconds: float, priced: Callable | None = None
                        ) -> tuple[str, list[str], dict]:
    """Give orange, yellow, green and money of ``result`` their bounds from the aggregate
    (``BudgetModel.level_bounds``, each colour before them held at the value this run
    reached, each LP for at most ``seconds``), in place; returns how they were bounded, any
    bound that failed to bound, and level → how its LP ended (``optimal``, ``time_limit``:
    from the duals it had, ``trivial``: every need served or no money spent).

    The budgets are those the exact model had: each fund's budget less what other runs used,
    to the cent as the exact model rounds it (the lab's own are the scenario's).

    ``priced(prices, reached)``, if given, gives a second bound per level from the exact
    parts priced at the LPs' duals; the tighter of the two is kept ("priced" is then added to
    the level's method)."""
    funds = data.funds
    left = np.maximum(funds["budget"].to_numpy(float)
                      - funds["fund_id"].map(data.used_budget).fillna(0.0).to_numpy(float), 0.0)
    budgets = dict(zip(funds["fund_id"], np.round(left * 100.0) / 100.0, strict=True))
    reached = {lv.name: lv.value for lv in result.levels}
    methods: dict[str, str] = {}
    prices: dict[str, tuple] = {}
    bounds = lab.level_bounds(reached, budgets, time_limit=seconds,
                              report=methods, prices=prices if priced else None)
    if priced is not None and prices:
        for level, other in priced(prices, reached).items():
            if not np.isfinite(other):
                continue
            tighter = other < bounds[level] if level != "money" else other > bounds[level]
            if tighter or not np.isfinite(bounds[level]):
                bounds[level] = other
                methods[level] = f"{methods[level]}, priced parts"
    notes = []
    for i, lv in enumerate(result.levels):
        if lv.name in bounds:
            level, note = bounded_level(lv, bounds[lv.name])
            result.levels[i] = level
            if note:
                notes.append(note)
    return "aggregate LP, each earlier colour held at the value reached", notes, methods


def bounded_level(level: LevelResult, bound: float) -> tuple[LevelResult, str]:
    """``level`` with ``bound``: optimal when they meet (lexmip's tolerance), else feasible.
    A bound the value beats is no bound (the aggregate would not be a relaxation there): it
    is dropped (nan) and said, never reported."""
    value = level.value
    close = abs(bound - value) <= OPTIMAL_GAP * max(1.0, abs(value))
    beaten = value > bound if level.sense == "max" else value < bound
    note = ""
    if np.isfinite(bound) and beaten and not close:
        note = (f"{level.name}: value {value:.9g} beats the aggregate's bound {bound:.9g}; "
                "bound dropped")
        bound = float("nan")
    status = Status.OPTIMAL if np.isfinite(bound) and close else Status.FEASIBLE
    return replace(level, bound=bound, status=status), note


def _offer_scale(data: AllocationInput) -> pd.Series:
    unit = data.offers["service_id"].map(data.services.set_index("service_id")["unit"])
    return pd.Series(np.where(unit == "yuan", 100.0, 1.0), index=data.offers["offer_id"])


def _merge(results: list[AllocationResult]) -> dict[str, pd.DataFrame]:
    return {name: pd.concat([getattr(r, name) for r in results], ignore_index=True)
            for name in ("allocations", "unmet", "need_served")}


def _reached(data: AllocationInput, need_ids: pd.Series, offer_ids: pd.Index) -> np.ndarray:
    """Per need of ``need_ids``: does one of ``offer_ids`` (of its service) cover it?"""
    if not len(offer_ids) or not len(need_ids):
        return np.zeros(len(need_ids), bool)
    needs = data.needs.iloc[positions(need_ids, data.needs["need_id"])]
    coverage = pd.Series(offer_coverage(data.offers, data.providers), index=data.offers["offer_id"])
    service = data.offers.set_index("offer_id")["service_id"]
    sources = pd.DataFrame({"service_id": service.loc[offer_ids].to_numpy(),
                            "coverage": coverage.loc[offer_ids].to_numpy()})
    reached = np.zeros(len(needs), bool)
    reached[covering_pairs(needs, "coverage", sources, data.hierarchy)[0]] = True
    return reached


def _top_up(data: AllocationInput, merged: dict, results: list[AllocationResult],
            shared_offers: pd.Series, shared_funds: pd.Series, part_params: AllocationParams
            ) -> tuple[dict, int, pd.Index]:
    """The parts' merged tables with the top-up's units added (its result appended to
    ``results``), the number of needs the top-up was given, and the offers a part may have
    seen otherwise than the city (for :func:`_say_again`)."""
    top_up, seen_ids = _top_up_input(data, merged, shared_offers, shared_funds)
    top_up_needs = 0
    if top_up is not None:
        top_up_needs = len(top_up.needs)
        more = allocate(top_up, part_params)
        merged = _add_top_up(merged, more)
        results.append(more)
    return merged, top_up_needs, seen_ids


def _say_again(data: AllocationInput, alloc: pd.DataFrame, served: pd.DataFrame,
               seen_ids: pd.Index, area_of_need: np.ndarray, map_fn: Callable
               ) -> pd.Series | None:
    """need_id → the city's reason, for every need of a household whose reasons a part may
    have said otherwise than the city (None when there is none); ``alloc`` and ``served``:
    the final allocations and need_served, top-up and all."""
    # Each part gave reasons from its own share; say them again for the whole city, with what
    # everyone else uses, for every household short of supply that a part may have seen
    # otherwise than the city (shared supply left over before the top-up) reaches (a
    # household cap applies only when no open source is left, and what is open depends on
    # supply). Where no such supply reaches a need, its part saw all shared supply as the city
    # does: used up, share and all. A part sees only the offers that reach it, so its "no
    # eligible offer" may be "out of coverage" for the city: those are said again too.
    supply_short = served["reason"].isin(SUPPLY_REASONS + (HOUSEHOLD_CAP,)).to_numpy(
        copy=True)
    supply_short[supply_short] = _reached(data, served["need_id"][supply_short], seen_ids)
    again = supply_short | (served["reason"] == NO_ELIGIBLE_OFFER).to_numpy()
    short = set(served.loc[again, "household_id"])
    if not short:
        return None
    return _explain_again(data, alloc, short, area_of_need, map_fn)


def _put_reasons(result: AllocationResult, reasons: pd.Series | None) -> None:
    """``result``'s need_served and unmet with the reasons said again (need_id → reason)."""
    if reasons is None:
        return
    for name in ("need_served", "unmet"):
        table = getattr(result, name)
        again = table["need_id"].map(reasons)
        setattr(result, name, table.assign(reason=again.where(again.notna(), table["reason"])))


def _top_up_input(data: AllocationInput, merged: dict, shared_offers: pd.Series,
                  shared_funds: pd.Series) -> tuple[AllocationInput | None, pd.Index]:
    """The units a part left short of a service that leftover shared supply serves and
    reaches, as needs of their own with only that supply to draw on (None when there is
    nothing to offer or nobody to offer it to), and that supply's offers ("open").

    A need keeps its weight in the colour level (urgency ÷ the units it needed in all), and a
    household that already drew on a capped open offer or fund is left out, so per-household
    caps hold exactly.
    """
    alloc = merged["allocations"]
    offers = data.offers.set_index("offer_id")
    used, spent, _ = resource_use(data.services, alloc)
    left_o = shared_offers - used.reindex(shared_offers.index, fill_value=0.0)
    left_f = shared_funds - spent.reindex(shared_funds.index, fill_value=0.0)
    # Supply of which at least a unit is left: shared offers with capacity left (and budget
    # left in their fund when they charge one), and any offer charged to a shared fund with
    # budget left (and capacity left).
    fund_left = offers["fund_id"].map(left_f)
    capacity_left = offers["capacity"] - used.reindex(offers.index, fill_value=0.0) \
        - offers.index.to_series().map(data.used_capacity).fillna(0.0)
    has_capacity = capacity_left >= 1.0 / _offer_scale(data)
    charged = pd.Series(charges_fund(offers), index=offers.index)
    money_ok = ~charged | ~offers["fund_id"].isin(shared_funds.index) | (fund_left > 0.005)
    open_ = has_capacity & ((offers.index.isin(left_o.index) & money_ok)
                            | (charged & offers["fund_id"].isin(left_f.index[left_f > 0.005])))
    open_ids = offers.index[open_]
    # Offers a part may have seen otherwise than the city does: shared offers with capacity
    # left, and offers charged to a shared fund with money left (money or capacity alone).
    seen_ids = offers.index[(offers.index.isin(left_o.index) & has_capacity)
                            | (charged & offers["fund_id"].isin(left_f.index[left_f > 0.005]))]
    if not len(open_ids):
        return None, seen_ids
    served = merged["need_served"]
    short = served[served["reason"].isin(SUPPLY_REASONS)
                   & served["service_id"].isin(set(offers.loc[open_ids, "service_id"]))]
    capped_offers = open_ids[offers.loc[open_ids, "max_per_household"].notna().to_numpy()]
    funds = data.funds.set_index("fund_id")
    open_funds = set(offers.loc[open_ids, "fund_id"]) - {""}
    capped_funds = [f for f in open_funds if pd.notna(funds.loc[f, "max_per_household"])]
    drew = alloc[alloc["source_id"].isin(capped_offers) | alloc["fund_id"].isin(capped_funds)]
    drew_households = set(served.loc[member_mask(served["need_id"], drew["need_id"]),
                                     "household_id"])
    short = short[~member_mask(short["household_id"], drew_households)]
    # Only needs that some open offer covers (most short needs are far from any).
    reached = _reached(data, short["need_id"], open_ids)
    short = short[reached]
    needs = data.needs.iloc[positions(short["need_id"], data.needs["need_id"])
                            ].reset_index(drop=True)
    if short.empty:
        return None, seen_ids
    remaining = needs["quantity"].to_numpy(float) - short["served"].to_numpy(float)
    needs["urgency"] = needs["urgency"] * remaining / needs["quantity"]
    needs["quantity"] = remaining
    top_up = replace(data, needs=needs,
                     offers=data.offers[data.offers["offer_id"].isin(open_ids)]
                     .reset_index(drop=True),
                     volunteers=data.volunteers.iloc[:0], pins=data.pins.iloc[:0],
                     used_capacity=_add(data.used_capacity, used),
                     used_budget=_add(data.used_budget, spent))
    return top_up, seen_ids


def _add_top_up(merged: dict, more: AllocationResult) -> dict:
    """Pass-one tables with the top-up's units added to the needs it served."""
    alloc = pd.concat([merged["allocations"], more.allocations], ignore_index=True)
    alloc = alloc.groupby(["need_id", "source_id", "source_kind", "fund_id"], as_index=False,
                          sort=True)[["units", "cost", "km"]].sum()
    served = merged["need_served"].copy()
    extra = more.need_served
    at = positions(extra["need_id"], served["need_id"])
    for column in ("served", "money", "km", "continuity"):
        values = served[column].to_numpy(copy=True)
        values[at] += extra[column].to_numpy()
        served[column] = values
    fraction = served["fraction"].to_numpy(copy=True)
    fraction[at] = served["served"].to_numpy()[at] / served["quantity"].to_numpy()[at]
    served["fraction"] = fraction
    unmet = merged["unmet"]
    unmet = pd.concat([unmet[~member_mask(unmet["need_id"], extra["need_id"])], more.unmet],
                      ignore_index=True)
    return {"allocations": alloc, "unmet": unmet, "need_served": served}


def _explain_task(args: tuple[AllocationInput, pd.DataFrame]) -> pd.Series:
    return explain(*args)


def _explain_again(data: AllocationInput, alloc: pd.DataFrame, households: set,
                   area_of_need: np.ndarray, map_fn: Callable) -> pd.Series:
    """need_id → reason for every need of ``households``, against the city's final state.

    Explained in parallel, households grouped by part (all of a household's needs are in its
    part): each task holds what every need outside it uses as used, so its reasons are those
    of the whole city."""
    inside = member_mask(data.needs["household_id"], households)
    needs = data.needs[inside].reset_index(drop=True)
    area = pd.Series(area_of_need[inside])
    total = resource_use(data.services, alloc)
    parts = area.value_counts(sort=False)
    tasks = []
    for chunk in _chunks(parts.to_numpy(), EXPLAIN_TASKS):
        mine = area.isin(parts.index[chunk]).to_numpy()
        chunk_needs = needs[mine].reset_index(drop=True)
        own = alloc[member_mask(alloc["need_id"], chunk_needs["need_id"])]
        own_use = resource_use(data.services, own)
        others = [t.sub(o, fill_value=0.0) for t, o in zip(total, own_use, strict=True)]
        chunk_data = replace(
            data, needs=chunk_needs,
            history=data.history[member_mask(data.history["household_id"],
                                             set(chunk_needs["household_id"]))],
            pins=data.pins.iloc[:0],  # pins bind the solve, not the reasons
            pool_caps=_caps_of(data.pool_caps, chunk_needs["need_id"]),
            used_capacity=_add(data.used_capacity, others[0]),
            used_budget=_add(data.used_budget, others[1]),
            used_pool_hours=_add(data.used_pool_hours, others[2]))
        tasks.append((chunk_data, own))
    return pd.concat(list(map_fn(_explain_task, tasks)))


def _add(base: dict, more: pd.Series) -> dict:
    out = dict(base)
    for key, value in more.items():
        out[key] = out.get(key, 0.0) + float(value)
    return out


def _finish(data: AllocationInput, merged: dict, results: list[AllocationResult],
            red_bound: float) -> AllocationResult:
    """One result for the city: tables in the need order of the input, resources counted from
    the final allocations, level values recomputed from what each need got; red bounded by
    ``red_bound``, the other levels not yet (nan)."""
    order = pd.Series(np.arange(len(data.needs)), index=data.needs["need_id"])
    served = merged["need_served"]
    served = served.iloc[np.argsort(order[served["need_id"]].to_numpy(), kind="stable")]
    served = served.reset_index(drop=True)
    unmet = merged["unmet"]
    unmet = unmet.iloc[np.argsort(order[unmet["need_id"]].to_numpy(), kind="stable")]
    alloc = merged["allocations"].sort_values(["need_id", "source_id"], kind="stable")

    offer_used, fund_used, pool_used = resource_use(data.services, alloc)
    offer_use = _use_table([r.offer_use for r in results], "offer_id", "capacity", offer_used,
                           data, kind="offer")
    fund_use = _use_table([r.fund_use for r in results], "fund_id", "budget", fund_used, data,
                          kind="fund")
    pool_use = _pool_use(results, pool_used)

    values = {t: float((served["urgency"] * served["fraction"])[served["tier"] == t].sum())
              for t in TIER_LEVELS}
    values.update(money=float(served["money"].sum()), travel=float(served["km"].sum()),
                  continuity=float(served["continuity"].sum()))
    seconds = {lv: sum(r.levels[i].seconds for r in results) for i, lv in enumerate(LEVELS)}
    levels = []
    for name in LEVELS:
        sense = "min" if name in ("money", "travel") else "max"
        level = LevelResult(name, sense, values[name], float("nan"), Status.FEASIBLE,
                            seconds[name])
        if name == TIER_LEVELS[0]:  # the later levels are bounded after (or not at all)
            level = bounded_level(level, red_bound)[0]
        levels.append(level)
    statuses = {r.status for r in results}
    status = Status.TIME_LIMIT if Status.TIME_LIMIT in statuses else Status.FEASIBLE
    sizes = {key: sum(r.sizes.get(key, 0) for r in results)
             for key in ("arcs", "rows", *Parts().counts())}
    sizes.update(needs=len(data.needs), offers=len(data.offers), funds=len(data.funds),
                 pools=len(pool_use))
    return AllocationResult(
        allocations=alloc.reset_index(drop=True), unmet=unmet.reset_index(drop=True),
        need_served=served, offer_use=offer_use, fund_use=fund_use, pool_use=pool_use,
        levels=levels, status=status,
        build_seconds=sum(r.build_seconds for r in results),
        solve_seconds=sum(r.solve_seconds for r in results), sizes=sizes)


def _use_table(frames: list[pd.DataFrame], key: str, available: str, used: pd.Series,
                  data: AllocationInput, kind: str) -> pd.DataFrame:
    """Offers or funds: what was available to the whole run, what the final allocations use,
    and the largest marginal value any part saw (where one more unit would help most)."""
    table = data.offers if kind == "offer" else data.funds
    total = table.set_index(key)["capacity" if kind == "offer" else "budget"].astype(float)
    taken = (data.used_capacity if kind == "offer" else data.used_budget)
    total = total - pd.Series(taken, dtype=float).reindex(total.index, fill_value=0.0)
    parts = pd.concat(frames, ignore_index=True)
    best = parts.sort_values("marginal_value", ascending=False, kind="stable") \
        .drop_duplicates(key).set_index(key)
    out = pd.DataFrame({key: total.index})
    if kind == "offer":
        out["service_id"] = table.set_index(key)["service_id"].reindex(total.index).to_numpy()
    out[available] = total.to_numpy()
    out["used"] = used.reindex(total.index, fill_value=0.0).to_numpy()
    if kind == "fund":
        out["used"] = out["used"].round(2)
    out["left"] = (out[available] - out["used"]).round(2 if kind == "fund" else 9)
    out["marginal_value"] = best["marginal_value"].reindex(total.index, fill_value=0.0)\
        .to_numpy()
    out["marginal_level"] = best["marginal_level"].reindex(total.index, fill_value="")\
        .to_numpy()
    return out


def _pool_use(results: list[AllocationResult], pool_used: pd.Series) -> pd.DataFrame:
    """Each pool as the part holding its street saw it, with its hours used by the final
    allocations (``pool_used``; the top-up may have added some)."""
    parts = pd.concat([r.pool_use for r in results], ignore_index=True)
    if parts.empty:
        return results[0].pool_use
    best = parts.sort_values("used", ascending=False, kind="stable").drop_duplicates("pool_id")
    best = best.sort_values("pool_id", kind="stable").set_index("pool_id")
    used = pool_used.reindex(best.index, fill_value=0.0)
    best["left"] = np.maximum(best["left"] - (used - best["used"]), 0.0)
    best["used"] = used
    return best.reset_index()
