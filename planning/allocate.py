"""A weekly allocation run: Scenario → optimizer → output tables with provenance.

Outputs (DESIGN §3, §5): ``allocations``, ``unmet``, ``plans`` (救助套餐, one row per
household), ``utilisation`` (offers, funds, volunteer pools), ``summary`` (centre × colour) and
``run`` (the provenance written as run.json).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from multiprocessing import get_context

import numpy as np
import pandas as pd

from wulian.contract import vocab
from wulian.optimizer.allocation import (
    LEVELS,
    AllocationInput,
    AllocationParams,
    AllocationResult,
    allocate,
    member_mask,
    positions,
    resource_use,
)
from wulian.optimizer.decompose import allocate_by_district, districts_of
from wulian.planning.engines import default_workers
from wulian.planning.io import Outputs
from wulian.planning.scenario import Scenario
from wulian.planning.store import RunStore, StoredRun

OUTPUT_TABLES = ("allocations", "unmet", "plans", "utilisation", "summary")
# A coordinator's re-run of one centre's subtree searches exactly for at most this long in all
# (unless its parameters say otherwise), so a street answers within its second.
RERUN_SEARCH_SECONDS = 0.5


@dataclass
class Run(Outputs):
    """One allocation run: its output tables and its provenance (``info``, run.json)."""

    result: AllocationResult = field(repr=False)


def allocation_input(scenario: Scenario, week: str | None = None,
                     centre: str | None = None, held: StoredRun | None = None
                     ) -> AllocationInput:
    """The optimizer's view of a scenario: needs joined with their household's colour,
    categories and location; optionally one week and one centre's subtree."""
    hh = scenario.households.set_index("household_id")
    stations = scenario.centres.set_index("centre_id")
    needs = scenario.needs
    if week:
        needs = needs[needs["week"] == week]
    if centre:  # the subtree's households first, so the joins below stay small
        hh = hh[member_mask(hh["station_id"], scenario.hierarchy.subtree(centre).to_numpy())]
        needs = needs[member_mask(needs["household_id"], hh.index.to_numpy(object))]
    # Each need's household row, found once (a map per column costs a city seconds).
    row = pd.Index(hh.index.to_numpy(object)).get_indexer(needs["household_id"].to_numpy(object))
    known = row >= 0

    def of_household(column: str) -> pd.Series:
        return pd.Series(hh[column].to_numpy()[row], index=needs.index).where(known)

    station = of_household("station_id")
    lat = of_household("lat").fillna(station.map(stations["lat"]))
    lon = of_household("lon").fillna(station.map(stations["lon"]))
    needs = needs.assign(station_id=station, categories=of_household("categories"),
                         tier=of_household("tier"), lat=lat, lon=lon)
    pins = scenario.pins[member_mask(scenario.pins["need_id"], needs["need_id"])]
    used = _used_elsewhere(scenario, held, needs["need_id"]) if held else ({}, {}, {})
    return AllocationInput(
        needs=needs.reset_index(drop=True), services=scenario.services,
        offers=scenario.offers, providers=scenario.providers, funds=scenario.funds,
        volunteers=scenario.volunteers, history=scenario.history, pins=pins,
        hierarchy=scenario.hierarchy, used_capacity=used[0], used_budget=used[1],
        used_pool_hours=used[2])


def _used_elsewhere(scenario: Scenario, held: StoredRun, needs_here: pd.Series
                    ) -> tuple[dict, dict, dict]:
    """Capacity, budget and volunteer hours that the held run gave to needs outside this run."""
    alloc = held.tables["allocations"]
    outside = alloc[~member_mask(alloc["need_id"], needs_here.to_numpy(object))]
    return tuple(used.to_dict() for used in resource_use(scenario.services, outside))


def _solver_versions() -> dict[str, str]:
    return {"highs": version("highspy"), "python": platform.python_version(),
            "wulian": version("wulian")}


def run_allocation(scenario: Scenario, *, week: str | None = None, centre: str | None = None,
                   params: AllocationParams | None = None, store: RunStore | None = None,
                   volunteer_limits: tuple[dict, dict] | None = None, save: bool = True,
                   before_save: Callable[[Run], None] | None = None,
                   only_allocations: bool = False, pool: Executor | None = None,
                   with_plan: Callable[[Run], None] | None = None,
                   beside_pool: Executor | None = None,
                   core_free: Callable[[], None] | None = None) -> Run:
    """Allocate the scenario's needs (of ``week``, within ``centre``'s subtree) and explain.

    With a ``store``, the run is recorded there (whole, or not at all; not when ``save`` is
    false), and a run for one centre's subtree holds the rest of the network at the latest
    stored whole-network run on the same input: it uses only the capacity, budget and
    volunteer hours left over. ``volunteer_limits`` — (pool_id → hours the matching found
    missing, need_id → most units from pools) — is what ``planning.match.plan_week`` learnt
    from the week's matching. With ``only_allocations`` the run's tables are its
    ``allocations`` and the result's own ``unmet`` only (``plan_week``'s rounds and a week's
    open, which reconcile the run with its matching: the rest is built for the last round,
    :func:`run_tables`).

    ``pool``, if given, runs a decomposed run's parts (instead of a pool of ``params.workers``
    made and shut here): a week's open keeps one pool for its allocation and its matching.
    ``with_plan``, if given, is called once with an early run — its ``allocations`` (the
    final ones) and the ``info`` keys ``status``, ``input_digest`` and ``parameters`` — as
    soon as the plan is whole: in a decomposed run before the levels after red are bounded
    and the city's reasons said again (these change only the levels and the reasons, the
    result's own, when this returns), so the caller can start work that needs the plan
    alone beside them (a week's open starts its matching); otherwise after the allocation.
    ``beside_pool`` and ``core_free`` (a decomposed run's): what runs the pool's tasks once the
    plan is handed over (the reasons said again, the later levels' priced bounds) instead of
    ``pool``, and what is called once the bound LPs in this process are done
    (``optimizer.decompose.allocate_by_district``'s ``beside_map_fn`` and ``on_core_free``).
    """
    params = params or AllocationParams()
    if centre and params.search_seconds is None:
        params = replace(params, search_seconds=RERUN_SEARCH_SECONDS)
    start = time.perf_counter()
    held = None
    if centre and store is not None:
        held = _latest_whole_run(store, scenario.digest)
    data = allocation_input(scenario, week, centre, held)
    if volunteer_limits:
        missing, caps = volunteer_limits
        used = dict(data.used_pool_hours)
        for pool_id, hours in missing.items():
            used[pool_id] = used.get(pool_id, 0.0) + hours
        data = replace(data, used_pool_hours=used, pool_caps=dict(caps))
    parameters = {**asdict(params), "week": week, "centre": centre}
    early: list[Run] = []  # the run given to ``with_plan``, once

    def plan_done(result: AllocationResult) -> None:
        if with_plan is not None and not early:
            early.append(Run(tables={"allocations": _allocations(scenario, result)},
                             info={"status": str(result.status),
                                   "input_digest": scenario.digest, "parameters": parameters},
                             result=result))
            with_plan(early[0])

    decomposition = None
    if _decompose(data, params):
        workers = params.workers or default_workers()
        beside = {"on_plan": plan_done, "on_core_free": core_free,
                  "beside_map_fn": beside_pool.map if beside_pool is not None else None}
        if pool is not None:
            result, decomposition = allocate_by_district(data, params, map_fn=pool.map,
                                                         **beside)
        elif workers == 1:
            result, decomposition = allocate_by_district(data, params, **beside)
        else:
            # Fresh (spawned) workers: a fork would copy this process's memory and solver
            # threads; a script that allocates a city needs the ``__main__`` guard for it.
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as own:
                result, decomposition = allocate_by_district(data, params, map_fn=own.map,
                                                             **beside)
    else:
        result = allocate(data, params)
    plan_done(result)  # (when no decomposition called it)
    # The bounds changed only the levels: the early run's allocations are the run's.
    tables = {"allocations": early[0].tables["allocations"] if early
              else _allocations(scenario, result), "unmet": result.unmet}
    if not only_allocations:
        tables = run_tables(scenario, result, tables["allocations"])
    levels = {lv.name: {"sense": lv.sense, "value": lv.value, "bound": lv.bound,
                        "gap": lv.gap, "status": str(lv.status), "seconds": round(lv.seconds, 3),
                        "proven": lv.status == "optimal",
                        "words": level_words(lv.name, lv.sense, str(lv.status), lv.value,
                                             lv.bound, lv.gap)}
              for lv in result.levels}
    info = {
        "status": str(result.status),
        "levels": levels,
        "proof": proof_summary(levels),
        "level_order": list(LEVELS),
        "input_digest": scenario.digest,
        "policy": {"name": scenario.policy.name, "version": scenario.policy.version,
                   "digest": scenario.policy.digest()},
        "solver": {"name": "HiGHS (lexicographic MIP)" + (", by district" if decomposition
                                                          else ""),
                   "versions": _solver_versions()},
        "decomposition": decomposition,
        "parameters": parameters,
        "held_run": held.run_id if held else None,
        "sizes": result.sizes,
        "seconds": {"build": round(result.build_seconds, 3),
                    "solve": round(result.solve_seconds, 3),
                    "wall": round(time.perf_counter() - start, 3)},
    }
    run = Run(tables=tables, info=info, result=result)
    if before_save is not None:  # e.g. write the tables first: a store that fails loses no plan
        before_save(run)
    if store is not None and save:
        record_run(store, scenario, run)
    return run


def run_tables(scenario: Scenario, result: AllocationResult,
               allocations: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """A run's tables from its result (``allocations``: that table, when already built)."""
    return {"allocations": _allocations(scenario, result) if allocations is None else allocations,
            "unmet": result.unmet,
            "plans": plans_table(scenario, result),
            "utilisation": _utilisation(result),
            "summary": summary_table(scenario, result)}


def record_run(store: RunStore, scenario: Scenario, run: Run) -> None:
    """Record ``run`` in ``store`` (its id goes into ``run.info``)."""
    run.info["run_id"] = store.save(run.info, run.tables, scenario=scenario.path)


LEVEL_NAMES = {**vocab.TIERS, "money": ("资金", "money"), "travel": ("路程", "travel"),
               "continuity": ("服务连续性", "continuity")}


def _number(name: str, v: float) -> str:
    return f"¥{v:,.2f}" if name == "money" else (f"{v:,.1f} km" if name == "travel"
                                                 else f"{v:,.2f}")


def _percent(gap: float) -> str:
    """A gap as a coordinator reads it: never "0.00 %" for a gap that is not zero."""
    p = 100 * gap
    return f"{p:.2f} %" if p >= 0.01 else ("< 0.01 %" if p > 0 else "0 %")


def level_words(name: str, sense: str, status: str, value: float, bound: float,
                gap: float) -> dict[str, str]:
    """Whether a level is proven, and how far it may be from the best if not, in words a
    coordinator reads (Chinese and English): a colour's value is "Σ urgency × served ÷
    needed", money is yuan; the bound is what no plan can beat."""
    zh_name, en_name = LEVEL_NAMES.get(name, (name, name))
    if status == "optimal":
        better = "更少" if sense == "min" else "更多"
        return {"zh": f"{zh_name}:已证明最优——没有任何方案能做得{better}。",
                "en": f"{en_name}: proven optimal — no plan can do "
                      f"{'with less' if sense == 'min' else 'better'}."}
    late = status == "time_limit"
    if not np.isfinite(bound) or not np.isfinite(gap):
        return {"zh": f"{zh_name}:未证明最优,也没有界——离最优多远未知"
                      f"{'(求解达到时间上限)' if late else ''}。",
                "en": f"{en_name}: not proven optimal, and not bounded — how far it is from "
                      f"the best is not known{' (the solver ran out of time)' if late else ''}."}
    if sense == "min":
        zh = (f"{zh_name}:未证明最优——最多比最少可能多 {_percent(gap)}"
              f"(任何方案都不少于 {_number(name, bound)})")
        en = (f"{en_name}: not proven optimal — at most {_percent(gap)} above the least "
              f"possible (no plan needs less than {_number(name, bound)})")
    else:
        zh = (f"{zh_name}:未证明最优——最多比最好可能少 {_percent(gap)}"
              f"(任何方案都不超过 {_number(name, bound)})")
        en = (f"{en_name}: not proven optimal — at most {_percent(gap)} below the best "
              f"possible (no plan reaches more than {_number(name, bound)})")
    if late:
        zh, en = zh + ",求解达到时间上限", en + "; the solver ran out of time"
    return {"zh": zh + "。", "en": en + "."}


def proof_summary(levels: dict) -> dict:
    """Which levels are proven and the gap of each that is not, for run.json and the
    summary: ``proven`` (names), ``not_proven`` (name → gap, ``None`` when unbounded) and one
    sentence in each language."""
    proven = [name for name, lv in levels.items() if lv["status"] == "optimal"]
    not_proven = {name: (lv["gap"] if np.isfinite(lv["gap"]) else None)
                  for name, lv in levels.items() if lv["status"] != "optimal"}

    def names(which, k: int) -> list[str]:
        return [LEVEL_NAMES.get(n, (n, n))[k] for n in which]

    def gap_text(name: str, k: int) -> str:
        gap = not_proven[name]
        label = LEVEL_NAMES.get(name, (name, name))[k]
        if gap is None:
            return f"{label}({'无界' if k == 0 else 'no bound'})"
        return f"{label}({'至多差' if k == 0 else 'within '} {_percent(gap)})"

    if not not_proven:
        zh, en = "每一层都已证明最优。", "Every level is proven optimal."
    else:
        zh = (("已证明最优:" + "、".join(names(proven, 0)) + ";" if proven else "")
              + "未证明:" + "、".join(gap_text(n, 0) for n in not_proven) + "。")
        en = (("Proven optimal: " + ", ".join(names(proven, 1)) + ". " if proven else "")
              + "Not proven: " + ", ".join(gap_text(n, 1) for n in not_proven) + ".")
    return {"proven": proven, "not_proven": not_proven, "zh": zh, "en": en}


def _decompose(data: AllocationInput, params: AllocationParams) -> bool:
    """District by district when asked, or (auto) when the week is large and spans districts."""
    if params.decompose == "never":
        return False
    several = len(set(districts_of(data)) - {""}) > 1
    if params.decompose == "always":
        return several
    return several and len(data.needs) > params.decompose_above


def _latest_whole_run(store: RunStore, digest: str) -> StoredRun | None:
    runs = store.list()
    whole = runs[(runs["input_digest"] == digest) & (runs["centre"] == "")
                 & (runs["kind"] == "allocate")]
    if whole.empty:
        return None
    # Only its allocations matter here (what it gave to needs outside the subtree); a city's
    # other tables are large, so they are not read.
    run_id = int(whole["run_id"].iloc[0])
    return StoredRun(run_id, {}, {"allocations": store.table(run_id, "allocations")})


def _allocations(scenario: Scenario, result: AllocationResult) -> pd.DataFrame:
    a = result.allocations
    offers = scenario.offers.set_index("offer_id")
    providers = scenario.providers.set_index("provider_id")
    provider = a["source_id"].map(offers["provider_id"])
    linkage = provider.map(providers["linkage"]).where(a["source_kind"] == "offer", "volunteer")
    return a.assign(provider_id=provider.fillna(""), linkage=linkage)


def plans_table(scenario: Scenario, result: AllocationResult) -> pd.DataFrame:
    """One row per household: its assistance package (救助套餐) in words and numbers."""
    served = result.need_served
    alloc = _allocations(scenario, result)
    names = scenario.services.set_index("service_id")["name_zh"]
    # Each allocation's need, by position (the city has 600,000 rows: ids are looked up once).
    need = positions(alloc["need_id"], served["need_id"])
    household = served["household_id"].to_numpy(object)[need]
    service = served["service_id"].to_numpy(object)[need]
    # Who serves, in words, per distinct source: the linkage and the provider's name, or the
    # volunteers of a street (its id when a name is missing).
    source, sources = pd.factorize(alloc["source_id"].to_numpy(object))
    first = np.unique(source, return_index=True)[1]
    provider_name = scenario.providers.set_index("provider_id")["name"]
    centre_name = scenario.centres.set_index("centre_id")["name"]
    street = pd.Series(sources).str.split(":").str[1]
    who = pd.Series(alloc["provider_id"].to_numpy(object)[first]).map(provider_name).where(
        alloc["source_kind"].to_numpy(object)[first] == "offer",
        street.map(centre_name) + "志愿者").fillna(pd.Series(sources))
    linkage_zh = pd.Series(alloc["linkage"].to_numpy(object)[first]).map(
        {k: zh for k, (zh, _) in vocab.LINKAGES.items()})
    source_text = (linkage_zh + "·" + who).to_numpy(object)
    units, at = np.unique(alloc["units"].to_numpy(float), return_inverse=True)
    units_text = np.array([f" ×{u:g}" for u in units], dtype=object)  # few distinct amounts
    service_text = names.reindex(pd.unique(service)).to_numpy(object) + "←"
    service_code = pd.Index(pd.unique(service)).get_indexer(service)
    item = service_text[service_code] + source_text[source] + units_text[at]
    package = _joined(household, item)
    unmet = served[served["reason"] != ""]
    unmet_text = _joined(unmet["household_id"].to_numpy(object),
                         (unmet["service_id"].map(names) + "(" + unmet["reason"] + ")")
                         .to_numpy(object))
    served = served.assign(full=(served["fraction"] >= 1 - 1e-9).astype(np.int64))
    grouped = served.groupby(served["household_id"].to_numpy(object), sort=True)
    plans = pd.DataFrame({
        "needs": grouped.size(),
        "fully_served": grouped["full"].sum(),
        "fill_rate": grouped["fraction"].mean(),
        "money": grouped["money"].sum().round(2),
    })
    plans.index.name = "household_id"
    hh = scenario.households
    hh = hh[member_mask(hh["household_id"], plans.index.to_numpy(object))]  # a street's few
    at_household = positions(plans.index, hh["household_id"])
    plans.insert(0, "tier", hh["tier"].to_numpy(object)[at_household])
    plans.insert(0, "station_id", hh["station_id"].to_numpy(object)[at_household])
    plans["package"] = package.reindex(plans.index).fillna("")
    plans["unmet"] = unmet_text.reindex(plans.index).fillna("")
    return plans.reset_index()


def _joined(keys: np.ndarray, items: np.ndarray) -> pd.Series:
    """key → its items, sorted, joined by "; " (one string per key; a pandas groupby-join
    builds a Series per group, seconds for a city's 300,000 households)."""
    if not len(keys):
        return pd.Series(dtype=object)
    key, key_ids = pd.factorize(keys)
    rank = pd.factorize(items, sort=True)[0]  # items' codes in sorted order
    order = np.lexsort((rank, key))
    key, item = key[order], items[order].tolist()
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    return pd.Series(["; ".join(item[a:b]) for a, b in zip(starts.tolist(), ends.tolist(),
                                                            strict=True)],
                     index=key_ids[key[starts]])


def _utilisation(result: AllocationResult) -> pd.DataFrame:
    """Per offer, fund and volunteer pool: capacity, used, left and marginal value."""
    o = result.offer_use.rename(columns={"offer_id": "resource_id", "capacity": "available"})
    f = result.fund_use.rename(columns={"fund_id": "resource_id", "budget": "available"})
    p = result.pool_use.rename(columns={"pool_id": "resource_id", "hours": "available"})
    frames = [o.assign(kind="offer", unit=""), f.assign(kind="fund", unit="yuan"),
              p.assign(kind="volunteer_pool", unit="hour")]
    cols = ["kind", "resource_id", "unit", "available", "used", "left", "marginal_value",
            "marginal_level"]
    return pd.concat([fr[cols] for fr in frames], ignore_index=True)


def summary_table(scenario: Scenario, result: AllocationResult) -> pd.DataFrame:
    """Per street centre × colour: needs, units needed and served, fill rate, money."""
    served = result.need_served
    street = scenario.hierarchy.ancestor(served["station_id"].to_numpy(), "street")
    district = scenario.hierarchy.ancestor(served["station_id"].to_numpy(), "district")
    frame = served.assign(street_id=street, district_id=district,
                          full=(served["fraction"] >= 1 - 1e-9).astype(np.int64))
    summary = frame.groupby(["district_id", "street_id", "tier"], sort=True).agg(
        needs=("need_id", "size"), fully_served=("full", "sum"),
        fill_rate=("fraction", "mean"), money=("money", "sum")).reset_index()
    order = {t: i for i, t in enumerate(vocab.TIER_ORDER)}
    summary["money"] = summary["money"].round(2)
    return summary.sort_values(["district_id", "street_id", "tier"],
                               key=lambda s: s.map(order) if s.name == "tier" else s,
                               kind="stable").reset_index(drop=True)


def fill_rate_by_tier(run: Run) -> pd.Series:
    """Mean served fraction of the needs of each colour (unit-free: every need counts once)."""
    served = run.result.need_served
    return served.groupby("tier")["fraction"].mean().reindex(list(vocab.TIER_ORDER))


def money_by_fund(run: Run) -> pd.DataFrame:
    return run.result.fund_use.sort_values("used", ascending=False).reset_index(drop=True)


def unmet_by_reason(run: Run) -> pd.Series:
    return run.unmet.groupby("reason")["units"].size().sort_values(ascending=False)


__all__ = ["Run", "allocation_input", "run_allocation", "fill_rate_by_tier", "money_by_fund",
           "unmet_by_reason", "OUTPUT_TABLES", "level_words", "proof_summary"]
