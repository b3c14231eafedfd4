"""A volunteer-matching run: the allocation's pooled volunteer hours become named visits.

The weekly allocation (``planning/allocate.py``) serves in-person needs from volunteer *pools*
(``pool:<street>:<service>``): hours of a street's capable volunteers, not named people. This
module turns what the pools serve, plus the week's monitoring visits, into visits, matches them
to volunteers and half-day slots with :func:`optimizer.visits.match_visits`, and reconciles the
allocation with the result: a unit the matching cannot place moves to ``unmet`` with the
matching's reason (:func:`reconcile`).

Visits of the week
------------------
*Service visits.* A need served by a pool with ``u`` units becomes, for a service counted in
visits, ``u`` visits of the service's ``visit_hours``; for one counted in hours,
``⌈u / visit_hours⌉`` visits of ``visit_hours`` each but the last, which takes what is left, so
the hours add up to ``u``. A visit needs every skill of the service and, for a
``safeguarding`` service, a background-checked volunteer. Units pinned to a volunteer form
visits of their own, kept with that volunteer (the first of them in the pin's slot, if any).

*Monitoring visits.* A household is due when its colour's monitoring cycle
(``policy.monitoring_weeks``: red 1, orange 2, yellow 4, green 13 weeks by default) has passed
since its latest visit in ``history`` (``week − last week ≥ cycle``), or when it has no visit in
``history`` at all. **Every household in scope is considered** (the run's centre subtree, or
the whole register), not only those with a need open this week: the cycle belongs to the
household's colour, not to a need, and a household whose needs are all met, or who asked for
nothing this week, is exactly the one a coordinator's monitoring is there to keep an eye on
(``MatchParams.monitoring_scope="open_needs"`` narrows it). A monitoring visit takes the
policy's ``quarter.monitoring_hours`` (1 h by default; the quarterly plan counts the same) and
needs no skill. When the household has a service visit this week, that visit also counts as the
monitoring visit (kind ``service+monitoring``): the pinned one if any, else the most urgent,
preferring one without a safeguarding requirement; it takes the higher of its urgency and
``monitoring_urgency``. If that visit stays unplaced while another service visit to the
household is placed, the placed one carries the monitoring instead.

Priority: every visit has its household's colour and an urgency (its need's, or
``monitoring_urgency`` for a monitoring-only visit); see ``docs/matching.md`` for the model.

At city scale the model is cut into regions solved in a process pool (:func:`part_runner`,
``planning.engines``); ``docs/matching.md`` says how, and what the reported bounds mean then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from functools import partial
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from wulian.contract import vocab
from wulian.optimizer.allocation import AllocationParams
from wulian.optimizer.pins import PinError, PinProblem
from wulian.optimizer.status import Status
from wulian.optimizer.visits import SLOTS, MatchParams, VisitMatch, match_visits
from wulian.planning.allocate import Run
from wulian.planning.engines import Slots, default_workers
from wulian.planning.scenario import Scenario

T = TypeVar("T")

KINDS = ("service", "monitoring", "service+monitoring")
ASSIGNMENT_COLUMNS = ("visit_id", "household_id", "need_id", "kind", "service_id",
                      "volunteer_id", "slot", "hours", "km")
UNPLACED_COLUMNS = ("visit_id", "household_id", "need_id", "hours", "reason", "kind",
                    "service_id", "tier")
OUTPUT_TABLES = ("assignments", "schedules", "unplaced", "load")
# How each way of solving a component is named in run provenance (match.json).
SOLVER_NAMES = {"min_cost_flow": "OR-Tools SimpleMinCostFlow", "cp_sat": "OR-Tools CP-SAT",
                "heuristic": "OR-Tools SimpleMinCostFlow heuristic (HiGHS LP bounds on large "
                             "exact parts)",
                "none": "none"}


@dataclass
class MatchResult:
    """A matching run: its visits, output tables, levels and provenance.

    Attributes
    ----------
    visits
        Every visit of the week (placed or not) with ``volunteer_id``/``slot`` ("" when
        unplaced), ``units`` (of its need's unit; 0 for monitoring-only) and ``reason``.
    assignments
        One row per placed visit: ``visit_id, household_id, need_id ("" for monitoring), kind,
        service_id, volunteer_id, slot, hours, km`` (km one way, home to household).
    schedules
        One row per volunteer × available slot, in calendar order: the visit in it, or free.
    unplaced
        One row per unplaced visit with its reason.
    load
        Per volunteer: hours, visits, km, max_hours, utilisation, available_slots.
    spread
        Spread of hours among volunteers with any availability: count, mean, std (population),
        min, max, and the share with no visit.
    levels
        The matching's lexicographic levels (value, bound, gap, status).
    info
        Provenance: week, centre, input digest, parameters, solver, sizes, timings.
    """

    visits: pd.DataFrame
    assignments: pd.DataFrame
    schedules: pd.DataFrame
    unplaced: pd.DataFrame
    load: pd.DataFrame
    spread: dict
    levels: list
    status: Status
    method: str
    info: dict = field(default_factory=dict)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The output tables by name."""
        return {name: getattr(self, name) for name in OUTPUT_TABLES}


# ----------------------------------------------------------------------------- helpers


def _text(mapped: pd.Series) -> np.ndarray:
    """A looked-up text column with "" where nothing was found (whatever dtype it came in)."""
    return mapped.astype(object).where(mapped.notna(), "").to_numpy()


def week_start(week: str) -> date:
    """Monday of an ISO week written ``2026-W49``."""
    year, number = week.split("-W")
    return date.fromisocalendar(int(year), int(number), 1)


def week_of(day: date) -> str:
    """The ISO week ``day`` falls in, written ``2026-W49`` (a need raised without a week is
    raised for the week of the day it is raised: the API's and the command line's rule)."""
    year, number, _ = day.isocalendar()
    return f"{year}-W{number:02d}"


def shift_week(week: str, weeks: int) -> str:
    """The ISO week ``weeks`` after ``week`` (before it when negative)."""
    return week_of(week_start(week) + timedelta(days=7 * weeks))


def next_week(week: str) -> str:
    return shift_week(week, 1)


def weeks_between(earlier: pd.Series, week: str) -> pd.Series:
    """Whole weeks from each ISO week in ``earlier`` to ``week`` (NaN where empty)."""
    this = week_start(week).toordinal()
    starts = {w: week_start(w).toordinal() for w in pd.unique(earlier.dropna())}
    return (this - earlier.map(starts)) // 7


# ----------------------------------------------------------------------------- visits


def _household_places(scenario: Scenario) -> pd.DataFrame:
    """Households with colour, station and location (their station's when they have none)."""
    hh = scenario.households.set_index("household_id")
    centres = scenario.centres.set_index("centre_id")
    lat = hh["lat"].fillna(hh["station_id"].map(centres["lat"]))
    lon = hh["lon"].fillna(hh["station_id"].map(centres["lon"]))
    return pd.DataFrame({"station_id": hh["station_id"], "tier": hh["tier"], "lat": lat,
                         "lon": lon})


def _last_volunteer(history: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per household: the latest week in history and the volunteer of that visit (when one
    week holds several, the last by volunteer id, so the choice is reproducible)."""
    if history.empty:
        return pd.Series(dtype=object), pd.Series(dtype=object)
    last = history.sort_values(["household_id", "week", "volunteer_id"], kind="stable") \
        .drop_duplicates("household_id", keep="last").set_index("household_id")
    return last["week"], last["volunteer_id"]


def _isin(values, targets) -> np.ndarray:
    """``values.isin(targets)`` as a numpy mask, compared as Python objects: Arrow-backed
    strings' own ``isin`` is many times slower on a city's hundreds of thousands of ids."""
    values = pd.Index(np.asarray(values, dtype=object), dtype=object)
    return values.isin(pd.Index(np.asarray(targets, dtype=object), dtype=object))


def _service_visits(scenario: Scenario, allocations: pd.DataFrame,
                    needs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Visits of the needs the allocation serves from volunteer pools (pins kept apart);
    ``needs`` the needs table, or the part of it the allocations can refer to."""
    pool = allocations[allocations["source_kind"] == "volunteer_pool"]
    served = pool.groupby("need_id", sort=True)["units"].sum()
    needs = scenario.needs if needs is None else needs
    needs = needs[_isin(needs["need_id"], served.index)].set_index("need_id").reindex(served.index)
    services = scenario.services.set_index("service_id")

    # Chunks of units: pinned units first (one chunk per pin), then what is left.
    pins = scenario.pins
    pins = pins[(pins["volunteer_id"] != "") & pins["need_id"].isin(served.index)]
    pinned = pins.groupby("need_id")["units"].sum().reindex(served.index, fill_value=0.0)
    over = pinned > served + 1e-9
    if over.any():
        raise PinError([PinProblem("pool_units_short", str(n), facts={
            "units": f"{pinned[n]:g}", "served": f"{served[n]:g}"}) for n in served.index[over]])
    chunks = pd.concat([
        pd.DataFrame({"need_id": pins["need_id"].to_numpy(), "units": pins["units"].to_numpy(),
                      "pin_volunteer": pins["volunteer_id"].to_numpy(),
                      "pin_slot": pins["slot"].to_numpy(), "order": np.arange(len(pins))}),
        pd.DataFrame({"need_id": served.index, "units": (served - pinned).to_numpy(),
                      "pin_volunteer": "", "pin_slot": "", "order": len(pins)}),
    ], ignore_index=True)
    chunks = chunks[chunks["units"] > 1e-9]
    chunks = chunks.sort_values(["need_id", "order"], kind="stable").reset_index(drop=True)
    service = chunks["need_id"].map(needs["service_id"])
    unit = service.map(services["unit"]).to_numpy()
    vh = service.map(services["visit_hours"]).to_numpy(float)
    units = chunks["units"].to_numpy(float)
    by_hour = unit == "hour"
    count = np.where(by_hour, np.ceil(units / vh - 1e-9), np.round(units)).astype(np.int64)

    # One row per visit, vectorised: j-th visit of its chunk, k-th of its need.
    row = np.repeat(np.arange(len(chunks)), count)
    j = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
    need_ids = chunks["need_id"].to_numpy()[row]
    k = np.arange(len(row)) - np.searchsorted(need_ids, need_ids) + 1
    last = j == count[row] - 1
    hours = np.where(by_hour[row] & last, units[row] - (count[row] - 1) * vh[row], vh[row])
    return pd.DataFrame({
        "visit_id": pd.Series(need_ids).astype(str) + "#" + pd.Series(k).astype(str),
        "household_id": needs["household_id"].reindex(need_ids).to_numpy(),
        "need_id": need_ids,
        "service_id": service.to_numpy()[row],
        "kind": "service",
        "urgency": needs["urgency"].reindex(need_ids).to_numpy(float).astype(np.int64),
        "hours": np.round(hours, 9),
        "units": np.where(by_hour[row], np.round(hours, 9), 1.0),
        "skills": service.map(services["skills"]).to_numpy()[row],
        "safeguarding": service.map(services["safeguarding"]).to_numpy(bool)[row],
        "pin_volunteer": chunks["pin_volunteer"].to_numpy()[row],
        "pin_slot": np.where(j == 0, chunks["pin_slot"].to_numpy()[row], ""),
        "seq": k,
    })


def monitoring_due(scenario: Scenario, week: str, centre: str | None, params: MatchParams
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Index, pd.Series]:
    """The households of the run (``centre``'s subtree, or all) with colour, station and
    location; their needs; those due a monitoring visit in ``week`` (never visited, or last
    visited at least their colour's cycle ago; only those with a need open that week when
    ``params.monitoring_scope`` is ``open_needs``); and each household's last volunteer."""
    scope = _household_places(scenario)
    needs = scenario.needs
    if centre:
        scope = scope[_isin(scope["station_id"], scenario.hierarchy.subtree(centre))]
        # A centre's run reads only its households' needs and history (a street of a city).
        needs = needs[_isin(needs["household_id"], scope.index)]
    places = scope
    if params.monitoring_scope == "open_needs":
        scope = scope[_isin(scope.index, needs.loc[needs["week"] == week, "household_id"])]
    history = scenario.history
    if centre:
        history = history[_isin(history["household_id"], places.index)]
    last_week, last_volunteer = _last_volunteer(history)
    since = weeks_between(last_week.reindex(scope.index), week)
    cycle = scope["tier"].map(dict(scenario.policy.monitoring_weeks))
    due = scope.index[(since.isna() | (since >= cycle)).to_numpy()]
    return places, needs, due, last_volunteer


def build_visits(scenario: Scenario, allocations: pd.DataFrame, week: str,
                 centre: str | None = None, params: MatchParams | None = None,
                 monitoring: tuple | None = None) -> pd.DataFrame:
    """The visits of ``week``: pool-served needs' visits and due monitoring visits.

    Parameters
    ----------
    scenario
        The scenario the allocation was run on.
    allocations
        The allocation's ``allocations`` table (rows of ``source_kind`` ``volunteer_pool``
        become visits).
    week
        The ISO week being planned; monitoring cycles are counted up to it.
    centre
        Only households in this centre's subtree (service and monitoring visits alike).
    params
        ``monitoring_urgency`` and ``monitoring_scope`` are used; a monitoring visit takes the
        scenario's policy's ``quarter.monitoring_hours``.
    monitoring
        :func:`monitoring_due`'s answer for the same scenario, week, centre and params, when
        the caller has it already (:func:`plan_week` matches one week several times).

    Returns
    -------
    pandas.DataFrame
        One row per visit: ``visit_id, household_id, station_id, need_id, service_id, kind,
        tier, urgency, hours, units, skills, safeguarding, lat, lon, last_volunteer,
        pin_volunteer, pin_slot``; sorted by colour, urgency, household and visit.
    """
    params = params or MatchParams()
    places, needs, due, last_volunteer = monitoring or monitoring_due(scenario, week, centre,
                                                                      params)
    if centre:
        allocations = allocations[_isin(allocations["need_id"], needs["need_id"])]
    service = _service_visits(scenario, allocations, needs)
    service = service[_isin(service["household_id"], places.index)].reset_index(drop=True)

    # A due household's service visit doubles as its monitoring visit.
    service["due"] = _isin(service["household_id"], due)
    candidates = service[service["due"]].assign(
        _pin=service["pin_volunteer"] == "", _urg=-service["urgency"])
    chosen = candidates.sort_values(["household_id", "_pin", "_urg", "safeguarding", "need_id",
                                     "seq"], kind="stable").drop_duplicates("household_id")
    both = service.index.isin(chosen.index)
    service.loc[both, "kind"] = "service+monitoring"
    service.loc[both, "urgency"] = np.maximum(service.loc[both, "urgency"],
                                              params.monitoring_urgency)
    alone = due[~_isin(due, service["household_id"])]
    monitoring_hours = float(scenario.policy.quarter.monitoring_hours)
    monitoring = pd.DataFrame({
        "visit_id": "monitor:" + pd.Series(alone, dtype=object),
        "household_id": alone, "need_id": "", "service_id": "", "kind": "monitoring",
        "urgency": params.monitoring_urgency, "hours": monitoring_hours,
        "units": 0.0, "skills": "", "safeguarding": False, "pin_volunteer": "", "pin_slot": "",
        "seq": 0, "due": True})
    visits = pd.concat([service, monitoring], ignore_index=True)
    hh = visits["household_id"]
    visits = visits.assign(
        station_id=hh.map(places["station_id"]).to_numpy(), tier=hh.map(places["tier"]),
        lat=hh.map(places["lat"]).to_numpy(float), lon=hh.map(places["lon"]).to_numpy(float),
        last_volunteer=_text(hh.map(last_volunteer)),
        _tier=hh.map(places["tier"]).map({t: i for i, t in enumerate(vocab.TIER_ORDER)}),
        _urg=-visits["urgency"], _mon=visits["need_id"] == "")
    visits = visits.sort_values(["_tier", "_urg", "household_id", "_mon", "need_id", "seq"],
                                kind="stable").reset_index(drop=True)
    columns = ["visit_id", "household_id", "station_id", "need_id", "service_id", "kind",
               "tier", "urgency", "hours", "units", "skills", "safeguarding", "lat", "lon",
               "last_volunteer", "pin_volunteer", "pin_slot"]
    return visits[columns]


# ----------------------------------------------------------------------------- the run


def _week_of(scenario: Scenario, run: Run) -> str:
    """The week a run planned: its ``week`` parameter, else the latest week of its needs."""
    week = (run.info.get("parameters") or {}).get("week")
    if week:
        return week
    needs = scenario.needs
    weeks = needs.loc[_isin(needs["need_id"], run.result.need_served["need_id"]), "week"]
    if weeks.empty:
        raise ValueError("the run has no needs, so no week to match; give week=")
    return max(pd.unique(weeks), key=week_start)


def part_runner(params: MatchParams, pool: Executor | None = None):
    """How :func:`match_visits` runs its regions: in a process pool of
    ``params.part_workers`` processes (0: one per core) from ``planning.engines``, or, with
    one worker, one after another in this process. Regions come back keyed, so the plan is the
    same either way.

    ``pool``, if given, runs them instead (with more than one worker asked): a week's open
    hands over its allocation's pool, so that no second pool's workers are alive beside it
    (each region's task takes the payload along: a city has 8 regions)."""
    from wulian.planning.engines import run_tasks

    workers = params.part_workers or default_workers()
    if workers <= 1:
        return None
    if pool is not None:
        def run_in_pool(task, payload, keys):
            futures = {key: pool.submit(task, payload, key) for key in keys}
            return {key: future.result() for key, future in futures.items()}

        return run_in_pool

    def run_parts(task, payload, keys):
        # Fresh (spawned) workers: a fork would copy this process's memory and solver threads.
        results, _ = run_tasks(task, payload, keys, engine="local", workers=workers)
        return {key: result.value for key, result in results.items()}

    return run_parts


def run_matching(scenario: Scenario, run: Run, *, week: str | None = None,
                 centre: str | None = None, params: MatchParams | None = None,
                 keep: pd.DataFrame | None = None,
                 hold: dict[str, str] | None = None, monitoring: tuple | None = None,
                 schedules: bool = True, pool: Executor | None = None) -> MatchResult:
    """Match the week's visits (pool-served needs and monitoring) to volunteers and slots.

    Parameters
    ----------
    scenario
        The scenario the allocation ran on.
    run
        The allocation run (``planning.allocate.run_allocation``).
    week
        The ISO week; by default the run's ``week`` parameter, else its needs' latest week.
    centre
        Match only the visits of households in this centre's subtree (any volunteer within
        reach may serve them); by default the run's ``centre``.
    params
        Monitoring and solver parameters.
    keep
        Placements to start from (``visit_id, volunteer_id, hours``; :func:`plan_week` gives
        an earlier round's): besides its own first plan, the matching starts from one giving
        each need's service visits, in order, the volunteers of its kept visits in order, and
        keeps whichever ends lexicographically better (with that plan's own bounds).
    hold
        Service visits kept with a volunteer (visit id → volunteer id), as pins without a
        slot: :func:`plan_week` gives the combined week's (``optimizer.week``), whose visits
        and monitoring it proved can all be made together.
    monitoring
        :func:`monitoring_due`'s answer for this week and centre, when the caller has it.
    schedules
        Whether to build the ``schedules`` table (off: an empty one; :func:`plan_week`'s
        matchings whose plan only tells the next round what can be placed).
    pool
        A process pool to run the regions in (:func:`part_runner`), instead of one of its own.

    Returns
    -------
    MatchResult
        Assignments, schedules, unplaced visits with reasons, load and its spread, levels.

    Raises
    ------
    PinError
        When a volunteer pin cannot be kept (every such pin is listed).
    """
    params = params or MatchParams()
    start = time.perf_counter()
    week = week or _week_of(scenario, run)
    centre = centre or (run.info.get("parameters") or {}).get("centre")
    visits = build_visits(scenario, run.tables["allocations"], week, centre, params,
                          monitoring)
    if hold:
        # Held service visits become pins of their volunteer (a coordinator's pins first).
        held = visits["visit_id"].map(hold).fillna("").to_numpy(object)
        visits["pin_volunteer"] = np.where(visits["pin_volunteer"] == "", held,
                                           visits["pin_volunteer"])
    hint = start_from(visits, keep) if keep is not None and len(keep) else None
    vm = match_visits(visits, scenario.volunteers, params, run_parts=part_runner(params, pool),
                      start=hint)

    placed = vm.assignments.set_index("visit_id")
    reason = vm.unplaced.set_index("visit_id")["reason"]
    ids = visits["visit_id"]
    visits = visits.assign(
        volunteer_id=_text(ids.map(placed["volunteer_id"])), slot=_text(ids.map(placed["slot"])),
        km=ids.map(placed["km"]).to_numpy(float), reason=_text(ids.map(reason)))
    visits = _move_monitoring(visits)

    done = visits["volunteer_id"] != ""
    assignments = visits.loc[done, list(ASSIGNMENT_COLUMNS)].reset_index(drop=True)
    unplaced = visits.loc[~done, list(UNPLACED_COLUMNS)].reset_index(drop=True)
    load, spread = _load(vm)
    info = {
        "kind": "match",
        "status": str(vm.status),
        "method": vm.method,
        "week": week,
        "centre": centre,
        "input_digest": scenario.digest,
        "allocation_run": run.info.get("run_id"),
        "allocation_status": run.info.get("status"),
        "policy": {"name": scenario.policy.name, "version": scenario.policy.version,
                   "digest": scenario.policy.digest()},
        "solver": {"name": " + ".join(SOLVER_NAMES.get(m, m) for m in vm.method.split("+")),
                   "versions": {"ortools": version("ortools"), "highs": version("highspy")}},
        "parameters": asdict(params),
        "levels": {lv.name: {"sense": lv.sense, "value": lv.value, "bound": lv.bound,
                             "gap": lv.gap, "status": str(lv.status), "seconds": lv.seconds}
                   for lv in vm.levels},
        "proof": proof_summary(vm.levels),
        "decomposition": vm.decomposition,
        "sizes": {**vm.sizes, "service_visits": int((visits["need_id"] != "").sum()),
                  "monitoring_visits": int(visits["kind"].ne("service").sum()),
                  "placed": int(done.sum()), "unplaced": int((~done).sum())},
        "spread": spread,
        "seconds": {"build": round(vm.build_seconds, 3), "solve": round(vm.solve_seconds, 3),
                    "wall": round(time.perf_counter() - start, 3)},
    }
    table = _schedules(scenario, visits) if schedules else pd.DataFrame()
    return MatchResult(visits=visits, assignments=assignments,
                       schedules=table, unplaced=unplaced, load=load,
                       spread=spread, levels=vm.levels, status=vm.status, method=vm.method,
                       info=info)


def start_from(visits: pd.DataFrame, keep: pd.DataFrame) -> np.ndarray:
    """Per visit, the volunteer of its kept placement ("" none): a need's service visits, in
    order, take the volunteers of its kept visits in order (an earlier round placed visits 1
    and 3 of a need, this round has visits 1 and 2), when no longer than the kept visit."""
    start = np.full(len(visits), "", dtype=object)
    kept = keep[keep["visit_id"].astype(str).str.contains("#", regex=False)]
    service = visits[visits["need_id"] != ""]
    if kept.empty or service.empty:
        return start
    kept = kept.assign(_need=kept["visit_id"].str.rsplit("#", n=1).str[0],
                       _seq=kept["visit_id"].str.rsplit("#", n=1).str[1].astype(int))
    kept = kept.sort_values(["_need", "_seq"], kind="stable")
    kept = kept.assign(_k=kept.groupby("_need").cumcount()).set_index(["_need", "_k"])
    order = service["visit_id"].str.rsplit("#", n=1).str[1].astype(int)
    rank = order.groupby(service["need_id"]).rank(method="first").astype(int) - 1
    at = kept.index.get_indexer(pd.MultiIndex.from_arrays([service["need_id"], rank]))
    ok = (at >= 0) & (service["hours"].to_numpy(float) <= np.where(
        at >= 0, kept["hours"].to_numpy(float)[at], -np.inf) + 1e-9)
    rows = visits.index.get_indexer(service.index[ok])
    start[rows] = kept["volunteer_id"].to_numpy()[at[ok]]
    return start


#: The matching's levels after coverage in a coordinator's words: (Chinese, English, unit).
LATER_LEVEL_WORDS = {"travel": ("路程", "travel", " km"),
                     "continuity": ("服务连续性(原志愿者走访次数)",
                                    "continuity (visits by the household's last volunteer)", ""),
                     "load": ("负荷(各志愿者小时数平方和)", "load (Σ hours² per volunteer)", " h²")}


def proof_summary(levels) -> dict:
    """Which levels are proven optimal and, for each that is not, its value, bound and gap:
    ``{"proven": [...], "open": {level: {value, bound, gap}}, "words_zh", "words_en"}``."""
    proven = [lv.name for lv in levels if lv.status == Status.OPTIMAL]
    open_ = {lv.name: {"value": lv.value, "bound": lv.bound, "gap": lv.gap}
             for lv in levels if lv.status != Status.OPTIMAL}
    cover = [lv for lv in levels if lv.name.startswith("cover:")]
    cover_open = [lv for lv in cover if lv.status != Status.OPTIMAL]
    if not cover_open:
        zh = f"每个优先级的走访数均已证明最优（{len(cover)} 层）"
        en = f"every priority class's visits placed is proven optimal ({len(cover)} levels)"
    else:
        worst = max(cover_open, key=lambda lv: lv.gap)
        zh = (f"{len(cover) - len(cover_open)}/{len(cover)} 个优先级已证明最优；最大差距 "
              f"{worst.name} {worst.gap:.1%}（已安排 {worst.value:g}，至多 {worst.bound:g}）")
        en = (f"{len(cover) - len(cover_open)} of {len(cover)} priority classes proven "
              f"optimal; the widest gap is {worst.name} at {worst.gap:.1%} ({worst.value:g} "
              f"placed, at most {worst.bound:g} possible)")
    rest = [lv for lv in levels if not lv.name.startswith("cover:")]
    for lv in rest:
        zh_name, en_name, unit = LATER_LEVEL_WORDS.get(lv.name, (lv.name, lv.name, ""))
        if lv.status == Status.OPTIMAL:
            zh += f"；{zh_name}已证明最优"
            en += f"; {en_name} proven optimal"
        elif not np.isfinite(lv.bound):
            zh += f"；{zh_name}无可证明的界"
            en += f"; {en_name} has no bound that holds"
        else:
            # The value and how far the best could be, in the level's unit: a percentage of
            # a small count (continuity's 18 visits against at most 1,163) says little.
            value, bound = f"{lv.value:,.1f}".removesuffix(".0"), \
                f"{lv.bound:,.1f}".removesuffix(".0")
            zh_side, en_side = ("至多", "at most") if lv.sense == "max" else ("至少", "at least")
            close = lv.gap < 1.0
            zh += (f"；{zh_name} {value}{unit}（最优{zh_side} {bound}{unit}"
                   + (f"，相差至多 {lv.gap:.1%}" if close else "") + "）")
            en += (f"; {en_name} {value}{unit} (the best is {en_side} {bound}{unit}"
                   + (f", within {lv.gap:.1%}" if close else "") + ")")
    return {"proven": proven, "open": open_, "words_zh": zh, "words_en": en}


# ----------------------------------------------------------------------------- one plan

#: Reasons of an unplaced visit that say the volunteers' time ran out (as opposed to nobody
#: able to make that household's visit at all).
TIME_REASONS = ("no_available_slot", "hours_exhausted")
#: Rounds of allocation and matching before the rest of the difference is reconciled.
PLAN_ROUNDS = 8
#: Rounds in which a need may still take more from pools than in the round before (after
#: them, pool units only shrink; docs/matching.md, "One plan").
FREE_ROUNDS = 0


#: The allocation of :func:`plan_week`'s held rounds, unless told: every level bounded by its
#: certification LP and held by what its exact LP implies, but no branch and bound. Measured on
#: the district demo's held round (docs/benchmarks.md, issue 19, session 12): SCIP's search
#: of orange, yellow, green and money on the plan's model (the matching's pool limits) took
#: 8-10 s of CPU on its wall-clock shares and proved orange only; the root of yellow, green
#: and money alone, cuts and all, took 11-13 s and proved none; without it the same values at
#: every level in 1.4-2 s, and the plan no longer depends on the machine's load.
PLAN_ALLOCATION = AllocationParams(branch_and_bound=False)


@dataclass
class WeekPlan:
    """One plan for the week: the allocation whose volunteer-pool units the matching places,
    the matching, and what each round of :func:`plan_week` learnt."""

    run: Run
    match: MatchResult
    rounds: list[dict]


def plan_week(scenario: Scenario, *, week: str | None = None, centre: str | None = None,
              params=None, match_params: MatchParams | None = None, store=None,
              rounds: int = PLAN_ROUNDS, free_rounds: int = FREE_ROUNDS,
              combined_columns: int | None = None) -> WeekPlan:
    """Allocate and match until every service visit the allocation gives a household is one
    the matching places (issue 19; docs/matching.md, "One plan").

    The allocation counts a street's volunteers as pools of hours and visits; the matching
    knows each volunteer's travel limit, slots and the week's monitoring visits, which take
    their hours by colour before lower colours' services. Each round, a need whose service
    visits the matching could not place may take from its pool only what was placed
    (``pool_caps``), and when the visits failed for want of time (:data:`TIME_REASONS`) the
    pool and its street lose those hours; the allocation is then solved again, lexicographic
    as ever, so the need goes to another source that can serve it (an NGO's hours, a
    department) or stays unmet, and the freed capacity is not promised twice.

    The rounds before the held ones (the first, with :data:`FREE_ROUNDS` = 0) are *guesses*:
    the allocation without exact search and bounds, never the one reported. From then on no
    need with a pool arc may take more from pools than it has, and the matching is *settled*
    alone (:func:`_settle`: matched again with the needs that lost visits held, until none is
    lost) before the next allocation, so that allocation's visits are a part of the settled
    ones; a held round's matching starts from the previous placements (``keep``) and keeps
    the lexicographically better plan. On the district demo that is two rounds.

    A week whose combined model (``optimizer.week``: allocation, visits by volunteer and
    monitoring in one MIP) has at most ``combined_columns`` columns (default
    :data:`COMBINED_COLUMNS`; 0: never) is solved as one model first: when every colour level
    is proven, its pool units cap the needs, its visits' volunteers are held in the first
    round's matching, and that round is a held one (no guess); the rounds go on only if it
    still leaves a service visit unplaced. Limits only
    tighten, so the rounds end; after ``rounds`` any difference left is reconciled as
    :func:`reconciled_tables` does. A need left unmet whose pool the matching limited, and
    whose allocation reason is that every source reaching it is full (or capped), says the
    matching's reason (``hours_exhausted`` …): every other source was used first.

    The held rounds' allocation is ``params``, by default :data:`PLAN_ALLOCATION`: every
    level bounded (certification LPs) and held by what its exact LP implies, but not searched
    by branch and bound, so that, with the settling capped by a count, the plan does not
    depend on the machine's load.

    The rounds' matchings skip the LP bounds (plan-independent, seconds on a district); the
    last round's is run again with ``match_params`` when those bounds are asked for and its
    model was neither cut nor pruned (else it would get the whole model's bounds anyway).
    """
    full, match_params = params or PLAN_ALLOCATION, match_params or MatchParams()
    with rounds_pool(full, match_params) as pool:
        return _plan_rounds(scenario, week, centre, full, match_params, store, rounds,
                            free_rounds, combined_columns, processes=pool)


@contextmanager
def rounds_pool(params: AllocationParams, match_params: MatchParams):
    """One process pool for the allocations and matchings of a week — every round's of
    :func:`plan_week`, a week's open's one (``None`` when either runs in this process alone,
    or they ask for other numbers of workers): the city's plan spawned four pools, two
    workers each, every worker importing wulian again (about 1 s of CPU each). Workers are
    spawned when first used: a week whose allocation is not decomposed and whose matching is
    one region spawns none."""
    workers = params.workers or default_workers()
    if workers <= 1 or (match_params.part_workers or default_workers()) != workers:
        yield None
        return
    # Fresh (spawned) workers: a fork would copy this process's memory and solver threads.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        yield pool


def match_beside_bounds(allocate: Callable[..., Run],
                        match: Callable[[Run, Executor | None], T],
                        pool: Executor | None, workers: int) -> tuple[Run, T, float]:
    """``allocate(with_plan=…)`` (a :func:`~wulian.planning.allocate.run_allocation`), then
    ``match(run, regions)`` on its plan; and when the allocation ended
    (``time.perf_counter``).

    A decomposed allocation bounds its levels after red once its plan is whole (on the city
    19–21 s of one LP chain in this process, HiGHS letting go of the GIL, while ``pool``
    idles); the bounds change only the levels, and the matching needs the plan alone. So with
    a ``pool`` (of ``workers`` processes) the matching starts in a thread as soon as the plan
    is whole, beside the bounds, its regions in the pool less the core the bound LPs hold
    (``regions``, widened once they are done: a city's region takes its worker to
    0.5–0.7 GiB, so no more are in memory at once than can run); the allocation's own pool
    tasks beside the bounds go through the same gate, so regions and they take turns. Both
    read the plan and change nothing in it: the same as one after the other. Without a pool
    (or a run that is not decomposed, which hands its plan over when it is done) the matching
    runs after it."""
    if pool is None:
        run = allocate(with_plan=None)
        allocated = time.perf_counter()
        return run, match(run, None), allocated
    with ThreadPoolExecutor(1) as beside:
        matching: list[Future] = []
        regions = Slots(pool, workers - 1)
        widened: list[bool] = []

        def core_free() -> None:  # the bound LPs are done: their core is the regions' too
            if not widened:
                widened.append(True)
                regions.widen()

        try:
            # The allocation's pool tasks beside the bounds (the reasons said again, then the
            # priced later levels: on the city 4 and 24) go through the regions' gate too:
            # a region queued behind all of them, and they took the bound LPs' core.
            run = allocate(with_plan=lambda early: matching.append(
                beside.submit(match, early, regions)), beside_pool=regions, core_free=core_free)
        finally:
            core_free()  # (a matching waiting for a region never waits for nothing)
        allocated = time.perf_counter()
        return run, matching[0].result(), allocated


def _plan_rounds(scenario: Scenario, week: str | None, centre: str | None,
                 full: AllocationParams, match_params: MatchParams, store, rounds: int,
                 free_rounds: int, combined_columns: int | None, processes: Executor | None
                 ) -> WeekPlan:
    """:func:`plan_week`'s rounds, their allocations and matchings in ``processes`` if given."""
    from wulian.planning.allocate import record_run, run_allocation, run_tables

    # The rounds' matchings skip the LP bounds; those whose plan is not reported (a guess's,
    # the settling's) also skip the travel repair and every other bound (the same plans).
    quick = replace(match_params, lp_bounds_visits=0)
    unreported = replace(quick, travel_repair=False, bounds=False)
    missing: dict[str, float] = {}
    caps: dict[str, float] = {}
    limited: dict[str, str] = {}  # need_id → the matching's reason for limiting its pool
    frozen: set[str] = set()  # needs held at their pool units of an earlier round
    history: list[dict] = []
    previous: pd.DataFrame | None = None  # the previous round's placed service visits
    second: pd.DataFrame | None = None  # the settling's placements before its last
    held_from = free_rounds + 1  # the first round whose service visits the last placed
    pool_needs = pool_needs_of(scenario, week, centre)  # needs with a volunteer-pool arc
    due_of: dict[str, tuple] = {}  # week → monitoring_due's answer: every round's matching

    def monitoring(run: Run) -> tuple:
        planned = week or _week_of(scenario, run)
        if planned not in due_of:
            due_of[planned] = monitoring_due(scenario, planned, centre, match_params)
        return due_of[planned]

    # A round before the held ones only tells the next what the matching can place: it skips
    # the exact search and the bounds (the colour levels' values are the same on the demo,
    # the plan's later levels may differ), and is never the one reported. Only its pools'
    # units are read, so it says no reasons, and a decomposed guess skips the top-up, which
    # draws on offers alone (the same pool units).
    guess = replace(full, certify=False, search_seconds=0.0, top_up=False, reasons=False)
    # A week small enough is first solved as one model (allocation, visits and monitoring
    # together, optimizer/week.py): its pool units are what the allocation may promise, so
    # the first round is a held one and, its matching placing them all, the last.
    combined = _combined_week(scenario, week, centre, match_params,
                              COMBINED_COLUMNS if combined_columns is None else combined_columns)
    if combined is not None and combined.proven:
        caps.update({need: combined.pool_units.get(need, 0.0) for need in pool_needs})
        frozen.update(pool_needs)
        held_from = 0
    def match_round(plan: Run, regions: Executor | None, keep: pd.DataFrame | None,
                    hold: dict[str, str] | None, guessing: bool
                    ) -> tuple[MatchResult, dict[str, str] | None]:
        """A round's matching of ``plan`` (its regions in ``regions``) and the visits it held."""
        try:
            return run_matching(scenario, plan, week=week, centre=centre,
                                params=unreported if guessing else quick, keep=keep,
                                hold=hold, monitoring=monitoring(plan),
                                schedules=not guessing, pool=regions), hold
        except PinError:
            if not hold:
                raise
            # The allocation took other units than the combined week (a tie): match freely.
            return run_matching(scenario, plan, week=week, centre=centre, params=quick,
                                keep=keep, monitoring=monitoring(plan), pool=regions), None

    workers = full.workers or default_workers()
    for r in range(max(rounds, 1)):
        t0 = time.perf_counter()
        guessing = r < held_from and r < rounds - 1
        # A held round's service visits are a part of what the previous round placed; the
        # flow heuristic is not monotone, so the matching also starts from those placements
        # and keeps the lexicographically better plan (docs/matching.md, "One plan").
        keep = previous if r >= held_from else None
        hold = combined.visit_volunteers if r == 0 and held_from == 0 and combined else None
        # The matching starts beside the allocation's bounds (a held round's; a guess has
        # none), as a week's open does: "matching_seconds" is what is left of it after.
        run, (match, hold), t1 = match_beside_bounds(
            partial(run_allocation, scenario, week=week, centre=centre,
                    params=guess if guessing else full, store=store,
                    volunteer_limits=(missing, caps), save=False, only_allocations=True,
                    pool=processes),
            partial(match_round, keep=keep, hold=hold, guessing=guessing),
            processes, workers)
        lost = match.visits[(match.visits["need_id"] != "")
                            & (match.visits["volunteer_id"] == "")]
        switched = False
        if len(lost) and keep is not None and second is not None and len(second) \
                and not guessing and not hold:
            # The settling's last placements are one start among others (the heuristic is
            # not monotone): when the matching from them loses service visits, it starts
            # again from the placements before them and keeps the lexicographically better
            # plan (the same visits; each plan's own levels and bounds), before a whole
            # allocation is spent on the loss (docs/matching.md, "One plan").
            again = run_matching(scenario, run, week=week, centre=centre, params=quick,
                                 keep=second, monitoring=monitoring(run), pool=processes)
            if _lex_better(again, match):
                match, keep, switched = again, second, True
        second = None
        visits = match.visits
        service = visits[visits["need_id"] != ""]
        lost = service[service["volunteer_id"] == ""]
        previous = service.loc[service["volunteer_id"] != "", ["visit_id", "volunteer_id",
                                                               "hours"]]
        history.append({"round": r + 1, "service_visits": len(service),
                        "unplaced_service_visits": len(lost),
                        "unplaced_visits": int((visits["volunteer_id"] == "").sum()),
                        "started_from_previous": keep is not None, "guess": guessing,
                        "second_start": switched,
                        "allocation_seconds": round(t1 - t0, 3),
                        "matching_seconds": round(time.perf_counter() - t1, 3)})
        # The settling's matchings, by the week's size (:data:`SETTLE_VISITS`); a week too
        # large to settle plays its first held round last.
        settling = min(SETTLE_MATCHINGS, SETTLE_VISITS // max(len(visits), 1))
        if (lost.empty and not guessing) or r == rounds - 1 \
                or (not settling and r >= held_from):
            break
        placed = service[service["volunteer_id"] != ""].groupby("need_id")["units"].sum()
        if len(lost) and r + 1 >= held_from and settling:
            # Settle the matching alone first: with the needs that lost visits held at what
            # was placed, a visit that carried its household's monitoring leaves a monitoring
            # visit of its own, which may displace another (lower class) service visit; each
            # of those would otherwise cost a whole allocation.
            t2 = time.perf_counter()
            lost, placed, previous, inner, second = _settle(
                scenario, run, lost, placed, previous, week=match.info["week"], centre=centre,
                params=unreported, monitoring=monitoring(run), matchings=settling, pool=processes)
            history[-1].update({"settled_unplaced_service_visits": len(lost),
                                "settling_matchings": inner,
                                "settling_seconds": round(time.perf_counter() - t2, 3)})
        if r + 1 >= held_from:
            # No need takes more from pools than it has now: the service visits can then
            # only shrink, and a matching that placed a set of visits places any part of
            # it, so the rounds settle.
            given = run.tables["allocations"]
            given = given[given["source_kind"] == "volunteer_pool"].groupby("need_id")[
                "units"].sum()
            for need in pool_needs:
                caps[need] = min(caps.get(need, np.inf), float(given.get(need, 0.0)))
                frozen.add(need)
        for need in pd.unique(lost["need_id"]):
            caps[need] = min(caps.get(need, np.inf), float(placed.get(need, 0.0)))
        main = lost.groupby(["need_id", "reason"])["units"].sum().reset_index().sort_values(
            ["need_id", "units", "reason"], ascending=[True, False, True], kind="stable") \
            .drop_duplicates("need_id")
        limited.update(zip(main["need_id"], main["reason"], strict=True))
        pool = run.tables["allocations"]
        pool = pool[pool["source_kind"] == "volunteer_pool"].drop_duplicates("need_id") \
            .set_index("need_id")["source_id"]
        # (Keeping free also the hour of the monitoring visit a lost visit carried settles in
        # fewer rounds on the demo but serves red less: docs/matching.md, "One plan".)
        short = lost[lost["reason"].isin(TIME_REASONS)]
        for pool_id, hours in short.groupby(short["need_id"].map(pool))["hours"].sum().items():
            missing[pool_id] = missing.get(pool_id, 0.0) + float(hours)
    # A cut or pruned model gets the whole model's bounds, never a component's LP: no re-run.
    exact = bool((match.info.get("decomposition") or {}).get("exact", True))
    if match_params.lp_bounds_visits != quick.lp_bounds_visits and exact:
        # The same plan (the heuristic is deterministic; the LP bounds do not change it),
        # with the bounds the LP adds.
        match = run_matching(scenario, run, week=week, centre=centre, params=match_params,
                             keep=keep, hold=hold, monitoring=monitoring(run), pool=processes)
    if held_from == 0:
        # The combined week capped the pool needs, not a matching's lost visits: a need it
        # left short says why no volunteer could make one more visit, when none could.
        for need, why in _one_more_visit(scenario, match, pool_needs).items():
            limited.setdefault(need, why)
    # Every round's run has only its allocations table; the last one's other tables (unmet,
    # plans, utilisation, summary) are built once, with the matching's reasons.
    result = _limited_reasons(run.result, limited, frozen)
    run = replace(run, result=result,
                  tables=run_tables(scenario, result, run.tables["allocations"]))
    run.info["volunteer_rounds"] = history
    if combined is not None:
        run.info["combined_week"] = {
            "columns": combined.columns, "proven": combined.proven,
            "levels": {name: {"value": round(value, 9), "status": str(status)}
                       for name, (value, status) in combined.levels.items()}}
    run.info["volunteer_limits"] = {"pools_short_hours": {k: round(v, 3) for k, v in
                                                          sorted(missing.items())},
                                    "needs_capped": len(caps)}
    match.info["rounds"] = history
    if hold:
        # Honest about what the matching's later levels (travel, continuity, load) are
        # optimal over: plans keeping these service visits with the combined week's
        # volunteers (the matching's own classes tie a monitoring visit with a service visit
        # that also monitors, so unheld it may drop the service visit: docs/matching.md).
        match.info["held_visits"] = len(hold)
    if store is not None:
        record_run(store, scenario, run)
        match.info["allocation_run"] = run.info.get("run_id")
    return WeekPlan(run=run, match=match, rounds=history)


#: Largest combined week (estimated columns) that :func:`plan_week` solves as one model.
#: Measured on the demo: a street of 130 needs (16,370 columns) proves every level in 4.7 s of
#: CPU where its rounds take 0.8 s and reach the same colour values, so streets keep the
#: rounds; the seeded weeks of the tests (150–500 columns) take 0.1–1 s. No time limit: each
#: MIP stops at HiGHS' node limit (``lexmip.MAX_NODES``), a work limit, so whether a week is
#: proven (and takes this path) does not depend on the machine's load.
COMBINED_COLUMNS = 5_000


def _combined_week(scenario: Scenario, week: str | None, centre: str | None,
                   match_params: MatchParams, max_columns: int):
    """The combined week (``optimizer.week.solve_week``) when it has at most ``max_columns``
    columns, else None."""
    from wulian.optimizer.week import solve_week
    from wulian.planning.allocate import allocation_input

    if max_columns <= 0:
        return None
    data = allocation_input(scenario, week, centre)
    if data.needs.empty:
        return None
    week = week or max(pd.unique(data.needs["week"]), key=week_start)
    places, _, due, _ = monitoring_due(scenario, week, centre, match_params)
    return solve_week(data, places, due.to_numpy(object),
                      float(scenario.policy.quarter.monitoring_hours), max_columns=max_columns)


def pool_needs_of(scenario: Scenario, week: str | None, centre: str | None) -> list[str]:
    """The needs of the run that have a volunteer-pool arc (an in-person service with capable
    volunteers in the household's street, as the allocation builds them): the only ones the
    rounds hold at their pool units, and so the only ones whose shortfall may be the rounds'."""
    from wulian.optimizer.allocation import volunteer_pools
    from wulian.optimizer.eligibility import pool_of
    from wulian.planning.allocate import allocation_input

    data = allocation_input(scenario, week, centre)
    pools = volunteer_pools(data)
    street = scenario.hierarchy.ancestor(data.needs["station_id"].to_numpy(), "street")
    has = pool_of(pools, np.asarray(street, dtype=object), data.needs["service_id"].to_numpy())
    return data.needs["need_id"].to_numpy(object)[has >= 0].tolist()


def _lex_better(a: MatchResult, b: MatchResult) -> bool:
    """Whether matching ``a`` is lexicographically better than ``b`` (of the same visits):
    their levels in order (coverage classes, travel, continuity, load), each by its sense."""
    for la, lb in zip(a.levels, b.levels, strict=True):
        if la.name != lb.name:
            return False
        if abs(la.value - lb.value) > 1e-9 * max(1.0, abs(lb.value)):
            return (la.value > lb.value) == (la.sense == "max")
    return False


#: Matchings alone, at most, that :func:`_settle` runs after a round's.
SETTLE_MATCHINGS = 6
#: Visits, at most, that :func:`_settle`'s matchings take in all: a district's settling (six
#: matchings of the demo's 3,284 visits) and no more. A city week's matching has about 200,000
#: visits; settling it as a district's cost far more than the allocation round it saves (the
#: city's plan ran for 40 minutes in settling: docs/benchmarks.md, issue 19, session 13), so a
#: week whose matching has more visits than this neither settles nor plays a held round after
#: the first (what its first held round's matching leaves unplaced is reconciled). A count of
#: work, not a clock, so the plan stays the same at any load.
SETTLE_VISITS = 25_000


def _settle(scenario: Scenario, run: Run, lost: pd.DataFrame, placed: pd.Series,
            previous: pd.DataFrame, *, week: str, centre: str | None, params: MatchParams,
            monitoring: tuple | None = None, matchings: int = SETTLE_MATCHINGS,
            pool: Executor | None = None
            ) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, int, pd.DataFrame | None]:
    """Match again, without allocating, the round's allocation with every need that lost
    service visits held at the units placed, starting from the placements so far, until no
    service visit is lost (at most ``matchings`` times): (every service visit lost
    on the way, the units placed per need at the end, the placements at the end, matchings
    run, the placements before the last matching: the next round's second start). The next
    allocation holds each need at most at those units, so its visits are a part of the
    settled ones. Capped by a count, not by a clock (a cap of the round's allocation time
    made the number of rounds depend on the machine's load: docs/benchmarks.md, issue 19,
    session 11), so the plan is the same at any load."""
    from types import SimpleNamespace

    alloc = run.tables["allocations"]
    pool = (alloc["source_kind"] == "volunteer_pool").to_numpy()
    caps: dict[str, float] = {}
    every = [lost]
    inner = 0
    before = previous
    while len(lost) and inner < matchings:
        for need in pd.unique(lost["need_id"]):
            caps[need] = float(placed.get(need, 0.0))
        cap = alloc["need_id"].map(caps).to_numpy(dtype=float, na_value=np.inf)
        units = np.where(pool, np.minimum(alloc["units"].to_numpy(float), cap),
                         alloc["units"].to_numpy(float))
        held = alloc.assign(units=units)[~(pool & (units <= 1e-9))]
        stand_in = SimpleNamespace(tables={"allocations": held}, info=run.info)
        try:
            match = run_matching(scenario, stand_in, week=week, centre=centre, params=params,
                                 keep=previous, monitoring=monitoring, schedules=False,
                                 pool=pool)
        except PinError:
            break
        inner += 1
        service = match.visits[match.visits["need_id"] != ""]
        lost = service[service["volunteer_id"] == ""]
        every.append(lost)
        placed = service[service["volunteer_id"] != ""].groupby("need_id")["units"].sum()
        before = previous
        previous = service.loc[service["volunteer_id"] != "", ["visit_id", "volunteer_id",
                                                               "hours"]]
    return (pd.concat(every, ignore_index=True), placed, previous, inner,
            before if inner else None)


def _one_more_visit(scenario: Scenario, match: MatchResult, need_ids: list[str]
                    ) -> dict[str, str]:
    """Per need of ``need_ids``, the matching's reason why no volunteer could make one more
    of its visits after ``match`` (the first that applies, in the order of
    ``vocab.MATCHING_REASONS``: skills, check, reach, a free slot, the hours); needs some
    volunteer could still visit are left out (what held them was not a volunteer)."""
    from wulian.optimizer.eligibility import capable
    from wulian.optimizer.geo import haversine_km

    needs = scenario.needs[_isin(scenario.needs["need_id"], need_ids)]
    if needs.empty:
        return {}
    vols = scenario.volunteers.reset_index(drop=True)
    services = scenario.services.set_index("service_id")
    places = _household_places(scenario)
    placed = match.visits[match.visits["volunteer_id"] != ""]
    busy = placed.groupby("volunteer_id")["hours"].agg(["size", "sum"]).reindex(
        vols["volunteer_id"], fill_value=0)
    slots = vols["availability"].fillna("").str.split(";").map(
        lambda cells: sum(1 for c in cells if c)).to_numpy()
    free_slot = slots - busy["size"].to_numpy() > 0
    hours_left = vols["max_hours"].to_numpy(float) - busy["sum"].to_numpy(float)
    # Per service: volunteers with its skills, and with its background check too.
    able = {s: (capable(vols, services.loc[[s]].assign(safeguarding=False).reset_index())[:, 0],
                capable(vols, services.loc[[s]].reset_index())[:, 0])
            for s in pd.unique(needs["service_id"])}
    reasons = {}
    for need in needs.itertuples(index=False):
        service = services.loc[need.service_id]
        has_skills, skilled = able[need.service_id]
        at = places.loc[need.household_id]
        near = haversine_km(vols["lat"].to_numpy(float), vols["lon"].to_numpy(float),
                            float(at["lat"]), float(at["lon"])) \
            <= vols["max_travel_km"].to_numpy(float) + 1e-9
        # The shortest visit one more unit takes: a whole visit, or one hour of an hourly
        # service (its last visit may be that short).
        length = 1.0 if service["unit"] == "hour" else float(service["visit_hours"])
        stages = [has_skills, skilled, skilled & near, skilled & near & free_slot,
                  skilled & near & free_slot & (hours_left >= length - 1e-9)]
        failed = [i for i, ok in enumerate(stages) if not ok.any()]
        if failed:
            reasons[need.need_id] = vocab.MATCHING_REASONS[failed[0]]
    return reasons


def _limited_reasons(result, limited: dict[str, str], frozen: set[str]):
    """``result`` (an ``AllocationResult``) with the matching's reason on needs whose pool it
    limited and that the allocation left unmet because every source reaching them is full or
    capped; a need only held at its earlier pool units (``frozen``) counts its pool as full,
    not as capped for the household (the cap is the rounds', not an offer's)."""
    if not limited and not frozen:
        return result
    ids = result.need_served["need_id"]
    old = result.need_served["reason"]
    reason = ids.map(limited)
    held = ids.isin(frozen) & reason.isna() & (old == "household_cap")
    reason = reason.where(~held, "capacity_exhausted")
    swap = reason.notna() & old.isin(["capacity_exhausted", "household_cap"])
    if not swap.any():
        return result
    need_served = result.need_served.assign(
        reason=result.need_served["reason"].where(~swap, reason))
    new_reason = need_served.set_index("need_id")["reason"]
    unmet = result.unmet.assign(reason=result.unmet["need_id"].map(new_reason)
                                .fillna(result.unmet["reason"]))
    return replace(result, unmet=unmet, need_served=need_served)


def _move_monitoring(visits: pd.DataFrame) -> pd.DataFrame:
    """A household whose monitoring rode on an unplaced service visit, while another of its
    service visits is placed, gets the monitoring on the placed one (the visit happens)."""
    both = visits["kind"] == "service+monitoring"
    lost = visits.loc[both & (visits["volunteer_id"] == ""), "household_id"]
    placed_service = visits[(visits["kind"] == "service") & (visits["volunteer_id"] != "")
                            & _isin(visits["household_id"], lost)]
    carrier = placed_service.drop_duplicates("household_id")
    kind = visits["kind"].copy()
    kind[both & _isin(visits["household_id"], carrier["household_id"])
         & (visits["volunteer_id"] == "")] = "service"
    kind[carrier.index] = "service+monitoring"
    return visits.assign(kind=kind)


def _load(vm: VisitMatch) -> tuple[pd.DataFrame, dict]:
    """Load per volunteer and the spread of hours among volunteers with any availability."""
    load = vm.load.assign(utilisation=np.round(vm.load["hours"] / vm.load["max_hours"], 4))
    active = load.loc[load["available_slots"] > 0, "hours"].to_numpy(float)
    spread = {"volunteers": len(active), "hours": round(float(active.sum()), 3)}
    if len(active):
        spread.update(mean=round(float(active.mean()), 4), std=round(float(active.std()), 4),
                      min=float(active.min()), max=float(active.max()),
                      idle_share=round(float((active == 0).mean()), 4))
    else:
        spread.update(mean=0.0, std=0.0, min=0.0, max=0.0, idle_share=0.0)
    return load, spread


def _schedules(scenario: Scenario, visits: pd.DataFrame) -> pd.DataFrame:
    """One row per volunteer × available slot, in calendar order: the visit, or free."""
    vols = scenario.volunteers
    cells = vols["availability"].fillna("").str.split(";").explode()
    grid = pd.DataFrame({"volunteer_id": vols["volunteer_id"].reindex(cells.index).to_numpy(),
                         "slot": cells.to_numpy()})
    grid = grid[grid["slot"].isin(SLOTS)]
    order = {s: i for i, s in enumerate(SLOTS)}
    grid = grid.assign(_o=grid["slot"].map(order)).sort_values(
        ["volunteer_id", "_o"], kind="stable").drop(columns="_o")
    placed = visits[visits["volunteer_id"] != ""]
    grid = grid.merge(placed[["volunteer_id", "slot", "visit_id", "household_id", "station_id",
                              "kind", "service_id", "hours", "km"]],
                      on=["volunteer_id", "slot"], how="left")
    names = scenario.services.set_index("service_id")
    grid.insert(2, "slot_zh", grid["slot"].map({s: zh for s, (zh, _) in vocab.SLOTS.items()}))
    grid.insert(3, "slot_en", grid["slot"].map({s: en for s, (_, en) in vocab.SLOTS.items()}))
    service_zh = grid["service_id"].map(names["name_zh"])
    grid["service_zh"] = service_zh.where(grid["kind"] != "monitoring", "走访监测")
    for col in ("visit_id", "household_id", "station_id", "kind", "service_id", "service_zh"):
        grid[col] = _text(grid[col])
    grid["hours"] = grid["hours"].fillna(0.0)
    return grid.reset_index(drop=True)


# ----------------------------------------------------------------------------- reconcile


def reconcile(run: Run, match: MatchResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The allocation's ``allocations`` and ``unmet`` made consistent with the matching.

    A need served by a volunteer pool keeps the units of its placed visits; the units of its
    unplaced visits leave the pool's allocation row and join ``unmet`` with the matching's
    reason (one row per need and reason). Pool rows' ``km`` become the matched visits' travel,
    there and back (as the allocation counts it). Other rows, and the pool rows of needs
    outside the matching's centre, are untouched.

    Parameters
    ----------
    run
        The allocation run the matching was made from.
    match
        The matching's result.

    Returns
    -------
    allocations, unmet
        The updated tables.

    Raises
    ------
    ValueError
        When the matching's visits do not add up to the run's pool units (another run's match).
    """
    alloc = run.tables["allocations"]
    service = match.visits[match.visits["need_id"] != ""]
    pool = alloc["source_kind"] == "volunteer_pool"
    if match.info.get("centre"):  # a centre's matching reconciles that subtree's needs only
        pool &= alloc["need_id"].isin(service["need_id"])
    total = alloc[pool].groupby("need_id")["units"].sum()
    visit_units = service.groupby("need_id")["units"].sum()
    same = np.allclose(visit_units.reindex(total.index).fillna(0.0).to_numpy(),
                       total.to_numpy(), atol=1e-6)
    if not same or not visit_units.index.isin(total.index).all():
        raise ValueError("the matching was not made from this run's volunteer-pool allocations")
    lost = service[service["volunteer_id"] == ""]
    lost_units = lost.groupby("need_id")["units"].sum()
    trips = service[service["volunteer_id"] != ""]
    km = 2 * trips.groupby("need_id")["km"].sum()

    rows = alloc[pool]
    need = rows["need_id"]
    units = rows["units"].to_numpy(float)
    # Take lost units from a need's pool rows in order (one row per need in practice).
    before = rows.groupby("need_id")["units"].cumsum().to_numpy(float) - units
    lost_here = need.map(lost_units).to_numpy(dtype=float, na_value=0.0)
    kept = units - np.clip(lost_here - before, 0.0, units)
    share = kept / np.maximum(rows.groupby("need_id")["units"].transform("sum")
                              .to_numpy(float), 1e-12)
    updated = alloc.copy()
    updated.loc[rows.index, "units"] = kept
    updated.loc[rows.index, "km"] = np.round(
        need.map(km).to_numpy(dtype=float, na_value=0.0) * share, 3)
    updated = updated[~pool | (updated["units"] > 1e-9)].reset_index(drop=True)

    moved = lost.groupby(["need_id", "reason"], sort=True)["units"].sum().reset_index()
    unmet = pd.concat([run.tables["unmet"], moved[["need_id", "units", "reason"]]],
                      ignore_index=True)
    unmet = unmet.sort_values("need_id", kind="stable").reset_index(drop=True)
    return updated, unmet


# ----------------------------------------------------------------------------- workbook

def sheet_names(ids, taken=()) -> list[str]:
    """Excel-valid, unique sheet names for ``ids`` (planning/workbook.py's rule: no
    ``[]:*?/\\``, at most 31 characters, unique ignoring case and distinct from ``taken``)."""
    from wulian.planning.workbook import sheet_name

    used = {str(name) for name in taken}
    return [sheet_name(str(value), used) for value in ids]


def write_workbook(match: MatchResult, path: str | Path,
                   extra: dict[str, pd.DataFrame] | None = None, lang: str = "zh") -> Path:
    """One workbook for people (planning/workbook.py): the matching's tables (and ``extra``
    ones), then one printable sheet per volunteer with any available slot: each slot in
    calendar order with the household, the kind of visit, the service, hours and km (an empty
    household is a free slot); the index sheet gives each volunteer's totals."""
    from wulian.planning.workbook import Sheet, pick
    from wulian.planning.workbook import write_workbook as write

    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        path = path / "matching.xlsx"
    tables = {**match.tables, **(extra or {})}
    tables.pop("schedules")  # its content is the volunteers' sheets
    from wulian.ui.text import SHEET_ABOUT

    sheets = [Sheet(name, frame, SHEET_ABOUT.get(name, "")) for name, frame in tables.items()]
    schedules = match.schedules
    totals = match.load.set_index("volunteer_id")
    columns = ["slot", "household_id", "kind", "service_zh", "hours", "km"]
    for vid in dict.fromkeys(schedules["volunteer_id"]):
        mine = schedules[schedules["volunteer_id"] == vid]
        week = mine[columns].assign(kind=mine["kind"].where(mine["visit_id"] != "", "free"))
        t = totals.loc[vid]
        about = (f"{t['visits']:g} 次走访 · {t['hours']:g} 小时 · {t['km']:.1f} 公里 · "
                 f"上限 {t['max_hours']:g} 小时",
                 f"{t['visits']:g} visits · {t['hours']:g} hours · {t['km']:.1f} km · "
                 f"at most {t['max_hours']:g} hours")
        sheets.append(Sheet(pick(("志愿者 ", "volunteer "), lang, "") + str(vid)
                            if lang != "codes" else str(vid), week.reset_index(drop=True),
                            about))
    result = write(sheets, path, lang, ("五联 · 志愿者匹配", "wulian · volunteer matching"))
    assert isinstance(result, Path)
    return result


def reconciled_tables(scenario: Scenario, run: Run, match: MatchResult,
                      reconciled: tuple[pd.DataFrame, pd.DataFrame] | None = None
                      ) -> dict[str, pd.DataFrame]:
    """The allocation's tables after :func:`reconcile`, with ``plans`` and ``summary`` to match
    (``reconciled``: what :func:`reconcile` gave, when the caller has it already).

    A need whose pool units the matching could not place is served that much less: its served
    units and fraction drop, its reason becomes the matching's (the reason of most lost units,
    when the allocation gave it none), and the household's plan (救助套餐) and the centre ×
    colour summary are rebuilt from the reconciled allocations by the allocation's own
    functions, so the four tables agree.

    Returns
    -------
    dict
        ``allocations``, ``unmet``, ``plans`` and ``summary``.
    """
    from wulian.planning.allocate import plans_table, summary_table

    allocations, unmet = reconciled if reconciled is not None else reconcile(run, match)
    served = run.result.need_served
    lost = match.visits[(match.visits["need_id"] != "") & (match.visits["volunteer_id"] == "")]
    by_reason = lost.groupby(["need_id", "reason"], sort=True)["units"].sum().reset_index()
    main = by_reason.sort_values(["need_id", "units", "reason"], ascending=[True, False, True],
                                 kind="stable").drop_duplicates("need_id").set_index("need_id")
    lost_units = lost.groupby("need_id")["units"].sum()
    gone = served["need_id"].map(lost_units).fillna(0.0).to_numpy(float)
    old = served["served"].to_numpy(float)
    new = np.maximum(old - gone, 0.0)
    fraction = np.where(old > 0, served["fraction"].to_numpy(float) * new / np.where(
        old > 0, old, 1.0), served["fraction"].to_numpy(float))
    reason = served["reason"].where(served["reason"] != "",
                                    _text(served["need_id"].map(main["reason"])))
    need_served = served.assign(served=np.round(new, 9), fraction=fraction, reason=reason)
    raw = allocations.drop(columns=[c for c in ("provider_id", "linkage")
                                    if c in allocations.columns])
    result = replace(run.result, allocations=raw, unmet=unmet, need_served=need_served)
    return {"allocations": allocations, "unmet": unmet, "plans": plans_table(scenario, result),
            "summary": summary_table(scenario, result)}


__all__ = ["MatchParams", "MatchResult", "PinError", "WeekPlan", "build_visits", "plan_week",
           "pool_needs_of", "proof_summary", "reconcile", "start_from",
           "reconciled_tables", "run_matching", "sheet_names", "week_start", "weeks_between",
           "write_workbook", "KINDS", "OUTPUT_TABLES"]
