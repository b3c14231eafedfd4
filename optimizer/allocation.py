"""Weekly allocation: supply from the five linkages → needs, lexicographically by colour.

One integer column per admissible arc — a need and an offer or volunteer pool that may serve it
(``optimizer.eligibility`` has the rules) — in base units (whole hours, visits and items; cents
for yuan); rows for needs, capacities, per-household caps, budgets and volunteer hours, pins as
bounds; levels red, orange, yellow and green coverage, then least money, least travel, most
continuity. Solved by ``optimizer.flow`` and ``optimizer.lexmip``; unmet units get their reason.
docs/model.md §1 has the mathematics.

Pure: DataFrames and arrays in, DataFrames out; no files, no database, no UI.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from wulian.contract import vocab
from wulian.contract.hierarchy import Hierarchy
from wulian.optimizer.checks import check_choice, check_flag, check_seconds, check_seed, check_whole
from wulian.optimizer.eligibility import (
    accepts,
    arc_upper,
    capable,
    category_bits,
    charges_fund,
    colour_bit,
    colour_bits,
    offer_arcs,
    offer_coverage,
    offer_household_units,
    pool_of,
)
from wulian.optimizer.flow import solve_parts
from wulian.optimizer.geo import haversine_km
from wulian.optimizer.lexmip import Level, LexResult, Rows
from wulian.optimizer.pins import PinError, PinProblem, words
from wulian.optimizer.status import Status

TIER_LEVELS = tuple(vocab.TIER_ORDER)
CENTS_PER_YUAN = 100.0
LEVELS = (*TIER_LEVELS, "money", "travel", "continuity")
# The reasons of unmet units, in the order they are tried (contract.vocab has the codes).
(NO_ELIGIBLE_OFFER, OUT_OF_COVERAGE, HOUSEHOLD_CAP, BUDGET_EXHAUSTED,
 CAPACITY_EXHAUSTED) = vocab.ALLOCATION_REASONS
DECOMPOSE = ("auto", "always", "never")  # AllocationParams.decompose
DECOMPOSE_BY = ("street", "district")  # AllocationParams.decompose_by


@dataclass(frozen=True)
class AllocationInput:
    """What the allocation needs, as validated tables (built by planning from a Scenario).

    ``needs`` carries, beyond the contract columns, the household's ``station_id``,
    ``categories``, final ``tier`` and location ``lat``/``lon``.
    """

    needs: pd.DataFrame
    services: pd.DataFrame
    offers: pd.DataFrame
    providers: pd.DataFrame
    funds: pd.DataFrame
    volunteers: pd.DataFrame
    history: pd.DataFrame
    pins: pd.DataFrame
    hierarchy: Hierarchy
    # Capacity and budget already used by runs outside this one (a coordinator's subtree run
    # holds the rest of the network at the latest stored run): offer_id → units, fund_id → yuan.
    used_capacity: dict[str, float] = field(default_factory=dict)
    used_budget: dict[str, float] = field(default_factory=dict)
    used_pool_hours: dict[str, float] = field(default_factory=dict)  # pool_id → hours
    # Most units each need may take from volunteer pools (need_id → units): the week's
    # matching could place no more of them (planning.match.plan_week moves the rest to
    # other sources).
    pool_caps: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AllocationParams:
    """Solver parameters; every entry point takes them."""

    # Seconds per solver call; 0 means none. Also the exact search's time: a level that its
    # fixed answer and LP bound do not prove is searched exactly (reduced-cost fixing, then
    # branch and bound) on its share of what is left of it (optimizer/lexmip.py,
    # docs/model.md); when that runs out it keeps the repair's answer, its bound and gap.
    time_limit: float = 10.0
    # Seconds of exact search in all, shared by the levels; None: the time limit (none when
    # that is 0). A coordinator's re-run of one centre takes RERUN_SEARCH_SECONDS unless told
    # (planning/allocate.py), so it answers within its second.
    search_seconds: float | None = None
    # Search open levels by branch and bound (SCIP) on their share of ``search_seconds``. Off,
    # a solve keeps the rest of the search's machinery (each level's implied holds, the
    # repairs on the columns they leave free, every colour's certification bound) and stops on
    # no clock, so it is reproducible at any load: one plan's held rounds (planning/match.py,
    # PLAN_ALLOCATION), where SCIP's root alone took 11-13 s of CPU on the district demo and
    # proved no level.
    branch_and_bound: bool = True
    threads: int = 1
    seed: int = 0
    # "auto": a week of more than ``decompose_above`` needs in several districts is solved
    # in parts (streets, or districts: decompose_by) in parallel (optimizer/decompose.py);
    # "always" or "never".
    decompose: str = "auto"
    decompose_above: int = 50_000
    # The parts: "street" (small models, solved far faster in all) or "district".
    decompose_by: str = "street"
    workers: int = 0  # processes for the parts; 0: one per core
    # Bound every level (an extra LP per level); the districts of a decomposed run skip it,
    # since their bounds would not bound the city.
    certify: bool = True
    # A decomposed run's top-up (leftover shared supply for the units the parts left short)
    # and its city-wide reasons for what stays unmet. Off: the parts' allocations and reasons
    # only — plan_week's guess, which reads only what the pools give: the top-up draws on
    # offers alone, so the pools give the same, and the reasons are never read.
    top_up: bool = True
    # Work out why each unmet need is unmet (every part's, in a decomposed run). Off: every
    # reason is "" — plan_week's guess, whose reasons are never read (with top_up off: the
    # top-up finds the units it serves by their reasons).
    reasons: bool = True
    # Solve the model's pure-network components by min-cost flow (optimizer/flow.py); off:
    # everything by HiGHS, as a reference.
    flow: bool = True

    def __post_init__(self):
        where = "AllocationParams"
        check_seconds(where, "time_limit", self.time_limit, zero=("不限", "none"))
        if self.search_seconds is not None:
            check_seconds(where, "search_seconds", self.search_seconds, zero=("不搜索", "none"))
        check_whole(where, "threads", self.threads)  # 0: HiGHS chooses
        check_seed(where, "seed", self.seed)
        check_choice(where, "decompose", self.decompose, DECOMPOSE)
        check_whole(where, "decompose_above", self.decompose_above)
        check_choice(where, "decompose_by", self.decompose_by, DECOMPOSE_BY)
        check_whole(where, "workers", self.workers)
        check_flag(where, "certify", self.certify)
        check_flag(where, "top_up", self.top_up)
        check_flag(where, "reasons", self.reasons)
        if self.top_up and not self.reasons:  # (the top-up finds its units by their reasons)
            raise ValueError(f"{where}.top_up 须与 reasons 同开 / {where}.top_up needs reasons "
                             "(the top-up finds the units it serves by their reasons)")
        check_flag(where, "flow", self.flow)
        check_flag(where, "branch_and_bound", self.branch_and_bound)


@dataclass
class AllocationResult:
    allocations: pd.DataFrame
    unmet: pd.DataFrame
    need_served: pd.DataFrame  # need_id, quantity, served, fraction, tier, urgency, money
    offer_use: pd.DataFrame
    fund_use: pd.DataFrame
    pool_use: pd.DataFrame
    levels: list  # LevelResult
    status: Status
    build_seconds: float
    solve_seconds: float
    sizes: dict[str, int]


# ----------------------------------------------------------------------------- helpers


def member_mask(values: pd.Series | pd.Index, members) -> np.ndarray:
    """``values.isin(members)`` for string ids, in Arrow: pandas' Arrow-string ``isin`` turns
    every member into a pyarrow scalar in Python, which takes seconds for a city's ids."""
    if isinstance(members, (set, frozenset, dict)):
        members = list(members)
    haystack = pa.array(values)
    if not len(members) or pa.types.is_null(haystack.type):  # nothing to find, or no ids
        return np.zeros(len(haystack), bool)
    needles = pa.array(members).cast(haystack.type)
    return pc.is_in(haystack, value_set=needles).to_numpy(zero_copy_only=False)


def positions(ids, column: pd.Series | pd.Index) -> np.ndarray:
    """Row of each of ``ids`` in the id ``column`` (ids as Python strings: a city's
    Arrow-string lookups cost a second each). Every id must be there: a missing one raises
    (numpy would read -1 as the last row)."""
    at = pd.Index(np.asarray(column, dtype=object)).get_indexer(np.asarray(ids, dtype=object))
    if (at < 0).any():
        missing = np.asarray(ids, dtype=object)[at < 0]
        raise KeyError(f"{len(missing)} ids not found, e.g. {missing[:3].tolist()}")
    return at


def resource_use(services: pd.DataFrame, alloc: pd.DataFrame
                 ) -> tuple[pd.Series, pd.Series, pd.Series]:
    """What allocation rows use: offer units by offer, yuan by fund, volunteer hours by pool
    (a visit takes its service's ``visit_hours``, an hourly unit one hour)."""
    o_used = alloc[(alloc["source_kind"] == "offer").to_numpy()].groupby("source_id")[
        "units"].sum()
    f_used = alloc[(alloc["fund_id"] != "").to_numpy()].groupby("fund_id")["cost"].sum()
    pools = alloc[(alloc["source_kind"] == "volunteer_pool").to_numpy()]
    # Per distinct pool ("pool:<street>:<service>"), not per row: a city has 300,000 rows.
    pool, pool_ids = pd.factorize(pools["source_id"].to_numpy(object))
    service = pd.Series(pool_ids).str.split(":").str[2]
    srv = services.set_index("service_id")
    per_unit = service.map(srv["visit_hours"]).where(service.map(srv["unit"]) == "visit", 1.0)
    hours = np.bincount(pool, weights=pools["units"].to_numpy(float)
                        * per_unit.to_numpy(float)[pool], minlength=len(pool_ids))
    p_used = pd.Series(hours, index=pd.Index(pool_ids, name="source_id")).sort_index()
    return o_used, f_used, p_used


def _group_rows(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Row index of each element's group (groups numbered in order of first appearance)."""
    codes, uniques = pd.factorize(keys)
    return codes, len(uniques)


def _household_of_arcs(needs: pd.DataFrame, model: _Model) -> np.ndarray:
    """Per arc, its household as an integer (keys of household × offer or fund groups)."""
    return pd.factorize(needs["household_id"].to_numpy(object))[0][model.need].astype(np.int64)


# ----------------------------------------------------------------------------- model


@dataclass
class _Model:
    """Arcs and their attributes; columns of the linear model are arcs."""

    need: np.ndarray  # need index per arc
    offer: np.ndarray  # offer index per arc, -1 for a pool arc
    pool: np.ndarray  # pool index per arc, -1 for an offer arc
    charge: np.ndarray  # yuan charged to the fund per base unit
    fund: np.ndarray  # fund index per arc, -1 when nothing is charged
    km: np.ndarray  # volunteer travel per base unit
    continuity: np.ndarray  # 1 when the pool holds the household's last volunteer
    upper: np.ndarray  # arc upper bound (base units)
    lower: np.ndarray  # arc lower bound (pins)


def prepare_needs(data: AllocationInput) -> pd.DataFrame:
    """Needs with everything the model reads: service unit, base-unit scale, tier rank."""
    needs = data.needs.reset_index(drop=True)
    services = data.services.set_index("service_id")
    unit = needs["service_id"].map(services["unit"])
    scale = np.where(unit == "yuan", 100, 1)
    return needs.assign(
        unit=unit.to_numpy(),
        scale=scale,
        base_quantity=np.round(needs["quantity"].to_numpy(float) * scale).astype(np.int64),
        cat_bits=category_bits(needs["categories"]),
        tier_bit=colour_bit(needs["tier"]),
    )


def offer_table(data: AllocationInput) -> pd.DataFrame:
    """Offers with everything the models read: coverage centre, base-unit scale, capacity and
    household cap in base units (capacity less what other runs used), whether and what they
    charge their fund per base unit, eligible categories and colours as bit masks."""
    offers = data.offers.reset_index(drop=True)
    services = data.services.set_index("service_id")
    scale = np.where(offers["service_id"].map(services["unit"]) == "yuan", 100, 1)
    charged = charges_fund(offers)
    used = offers["offer_id"].map(data.used_capacity).fillna(0.0).to_numpy(float)
    return offers.assign(
        coverage=offer_coverage(offers, data.providers),
        scale=scale,
        base_capacity=np.maximum(
            np.round((offers["capacity"].to_numpy(float) - used) * scale), 0).astype(np.int64),
        base_cap_household=np.round(offers["max_per_household"].to_numpy(float) * scale),
        charged=charged,
        charge=np.where(charged, offers["unit_cost"].to_numpy(float) / scale, 0.0),
        cat_bits=category_bits(offers["eligible_categories"]),
        tier_bits=colour_bits(offers["eligible_tiers"]),
    )


def _services_with_volunteers(data: AllocationInput) -> set:
    """In-person services some volunteer anywhere could give (pools or not in this run)."""
    services = data.services[data.services["delivery"] == "in_person"]
    if data.volunteers.empty or services.empty:
        return set()
    able = capable(data.volunteers, services)
    return set(services["service_id"].to_numpy()[able.any(axis=0)])


def volunteer_pools(data: AllocationInput) -> pd.DataFrame:
    """Volunteer pools: the capable volunteers of one street for one in-person service.

    A volunteer is capable of a service when their skills include all the service's skills
    and, for a safeguarding service, they are background-checked. Each pool's hours are the
    sum of its members' ``max_hours``; one volunteer's hours are shared across the pools of
    their street through a street row, so no hour is counted twice.

    ``units`` is what the pool can really deliver in the service's own unit: a volunteer gives
    at most one visit per half-day slot they are available in and only whole visits
    (⌊max_hours ÷ visit_hours⌋), whole hours of an hourly service. In units the pool row has
    unit coefficients, which keeps the model's network structure (and its LP nearly integral).
    """
    vols = data.volunteers
    # Only the streets this run has needs in (a coordinator's street, one district of a city).
    vol_street = data.hierarchy.ancestor(vols["station_id"].to_numpy(), "street")
    need_streets = np.unique(data.hierarchy.ancestor(data.needs["station_id"].to_numpy(),
                                                     "street"))
    vols = vols[np.isin(vol_street, need_streets)].reset_index(drop=True)
    services = data.services[data.services["delivery"] == "in_person"].reset_index(drop=True)
    if vols.empty or services.empty:
        return pd.DataFrame(columns=["pool_id", "street", "service_id", "hours", "units",
                                     "hours_per_unit", "lat", "lon", "members"])
    v_idx, s_idx = np.nonzero(capable(vols, services))
    street = data.hierarchy.ancestor(vols["station_id"].to_numpy(), "street")
    hours = vols["max_hours"].to_numpy(float)[v_idx]
    per_visit = services["unit"].to_numpy() == "visit"
    hours_per_unit = np.where(per_visit, services["visit_hours"].to_numpy(float), 1.0)[s_idx]
    slots = vols["availability"].fillna("").str.split(";").map(
        lambda cells: sum(1 for c in cells if c)).to_numpy()[v_idx]
    whole = np.floor(hours / hours_per_unit + 1e-9)
    units = np.where(per_visit[s_idx], np.minimum(whole, slots), whole)
    # One pool per (street, service), in that order; sums and means by bincount (a pandas
    # groupby with a join per group cost a street's run as much as its solves).
    service_ids = services["service_id"].to_numpy(object)
    keys = pd.MultiIndex.from_arrays([street[v_idx], service_ids[s_idx]])
    group, pool_keys = keys.factorize(sort=True)
    assert isinstance(pool_keys, pd.MultiIndex)  # as pandas-stubs cannot tell
    size = np.bincount(group, minlength=len(pool_keys))

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=values, minlength=len(pool_keys))

    volunteer_ids = vols["volunteer_id"].to_numpy(object)[v_idx]
    by_pool = np.lexsort((volunteer_ids, group))
    ordered_ids = volunteer_ids[by_pool].tolist()
    ends = np.cumsum(size)
    pools = pd.DataFrame({
        "street": pool_keys.get_level_values(0).to_numpy(object),
        "service_id": pool_keys.get_level_values(1).to_numpy(object),
        "hours": total(hours), "units": total(units),
        "hours_per_unit": hours_per_unit[by_pool][ends - size],
        "lat": total(vols["lat"].to_numpy(float)[v_idx]) / size,
        "lon": total(vols["lon"].to_numpy(float)[v_idx]) / size,
        "members": [";".join(ordered_ids[a:b]) for a, b in zip(ends - size, ends, strict=True)],
    })
    pools.insert(0, "pool_id", "pool:" + pools["street"] + ":" + pools["service_id"])
    used = pools["pool_id"].map(data.used_pool_hours).fillna(0.0).to_numpy(float)
    pools["hours"] = np.maximum(pools["hours"].to_numpy(float) - used, 0.0)
    pools["units"] = np.maximum(
        pools["units"].to_numpy(float) - np.ceil(used / pools["hours_per_unit"] - 1e-9), 0.0)
    return pools


def build_arcs(data: AllocationInput, needs: pd.DataFrame, offers: pd.DataFrame,
               pools: pd.DataFrame) -> tuple[_Model, dict]:
    """Every admissible (need, source) arc, and per need the counts the reasons are made of."""
    h = data.hierarchy
    funds = data.funds.reset_index(drop=True)

    # Offers: the rules of optimizer.eligibility, the columns in order of the coverage centre's
    # level, then need, then offer.
    arcs = offer_arcs(needs, offers, funds, h).by_level()
    n_i, o_i, f_i = arcs.need, arcs.offer, arcs.fund
    upper_offer = arc_upper(needs["base_quantity"].to_numpy()[n_i],
                            offer_household_units(offers)[o_i])

    # Pools: the household's street, an in-person service with capable volunteers.
    street = h.ancestor(needs["station_id"].to_numpy(), "street")
    p_of_need = pool_of(pools, street, needs["service_id"].to_numpy())
    pn_i = np.flatnonzero(p_of_need >= 0)
    pp_i = p_of_need[pn_i]
    services = data.services.set_index("service_id")
    unit = needs["unit"].to_numpy()[pn_i]
    visit_hours = needs["service_id"].map(services["visit_hours"]).to_numpy(float)[pn_i]
    trips_per_unit = np.where(unit == "visit", 1.0, 1.0 / np.maximum(visit_hours, 1e-9))
    km = haversine_km(pools["lat"].to_numpy(float)[pp_i], pools["lon"].to_numpy(float)[pp_i],
                      needs["lat"].to_numpy(float)[pn_i], needs["lon"].to_numpy(float)[pn_i])
    km_per_unit = 2 * km * trips_per_unit  # there and back
    last = data.history.sort_values("week").drop_duplicates("household_id", keep="last")
    last_vol = needs["household_id"].map(last.set_index("household_id")["volunteer_id"])
    members = pools["members"].to_numpy()[pp_i] if len(pools) else np.array([], dtype=object)
    lv = last_vol.to_numpy()[pn_i]
    continuity = np.array([isinstance(v, str) and v in m.split(";")
                           for v, m in zip(lv, members, strict=True)], dtype=float)

    n_arcs_offer = len(n_i)
    model = _Model(
        need=np.concatenate([n_i, pn_i]).astype(np.int64),
        offer=np.concatenate([o_i, np.full(len(pn_i), -1)]).astype(np.int64),
        pool=np.concatenate([np.full(n_arcs_offer, -1), pp_i]).astype(np.int64),
        charge=np.concatenate([offers["charge"].to_numpy()[o_i], np.zeros(len(pn_i))]),
        fund=np.concatenate([f_i, np.full(len(pn_i), -1)]).astype(np.int64),
        km=np.concatenate([np.zeros(n_arcs_offer), km_per_unit]),
        continuity=np.concatenate([np.zeros(n_arcs_offer), continuity]),
        upper=np.concatenate([upper_offer, _pool_upper(data, needs)[pn_i]]),
        lower=np.zeros(n_arcs_offer + len(pn_i)),
    )
    return model, {"street": street}


def _pool_upper(data: AllocationInput, needs: pd.DataFrame) -> np.ndarray:
    """Per need, the most base units its volunteer-pool arc may carry: the need, or less where
    ``data.pool_caps`` says the matching could place no more."""
    upper = needs["base_quantity"].to_numpy().astype(float)
    if data.pool_caps:
        cap = needs["need_id"].map(data.pool_caps).to_numpy(dtype=float, na_value=np.inf)
        upper = np.minimum(upper, np.maximum(np.floor(cap * needs["scale"].to_numpy() + 1e-9),
                                             0.0))
    return upper


def apply_pins(data: AllocationInput, needs: pd.DataFrame, offers: pd.DataFrame,
                pools: pd.DataFrame, model: _Model, street: np.ndarray) -> None:
    """Pins become lower bounds on their arcs; a pin with no admissible arc is an error that
    names the rule it breaks (:func:`_offer_refusal`, :func:`_volunteer_refusal`)."""
    pins = data.pins
    if pins.empty:
        return
    need_index = pd.Series(np.arange(len(needs)), index=needs["need_id"])
    offer_index = pd.Series(np.arange(len(offers)), index=offers["offer_id"])
    pool_index = pd.Series(np.arange(len(pools)), index=pools["pool_id"].to_numpy())
    problems: list[PinProblem] = []
    arc_of = pd.Series(np.arange(len(model.need)),
                       index=pd.MultiIndex.from_arrays([model.need, model.offer, model.pool]))
    pin: Any  # a row of pins (pandas-stubs types each field as any scalar at all)
    for pin in pins.itertuples(index=False):  # a loop over the coordinator's pins, not needs
        n = need_index.get(pin.need_id)
        if n is None:
            problems.append(PinProblem("need_not_in_run", pin.need_id))
            continue
        scale = needs["scale"].iat[n]
        if pin.offer_id:
            o = offer_index.get(pin.offer_id)
            arc = None if o is None else arc_of.get((n, o, -1))
            if arc is None:
                problems.append(_offer_refusal(data, needs, n, offers, o, pin.offer_id))
                continue
        else:
            refusal = _volunteer_refusal(data, needs, n, pools, pool_index, street[n],
                                         pin.volunteer_id)
            if refusal is not None:
                problems.append(refusal)
                continue
            pool = pool_index[f"pool:{street[n]}:{needs['service_id'].iat[n]}"]
            arc = arc_of.get((n, -1, pool))
            if arc is None:  # a pool of the street and service always has the arc
                problems.append(PinProblem("source_other", pin.need_id, pin.volunteer_id))
                continue
        units = round(pin.units * scale)
        model.lower[arc] += units
        if model.lower[arc] > model.upper[arc]:
            problems.append(PinProblem("units_above_cap", pin.need_id, facts={
                "units": f"{pin.units:g}", "most": f"{model.upper[arc] / scale:g}"}))
    if problems:
        raise PinError(problems)


def _offer_refusal(data: AllocationInput, needs: pd.DataFrame, n: int, offers: pd.DataFrame,
                   o: int | None, offer_id: str) -> PinProblem:
    """Why need ``n`` may not take from offer ``o``: the first rule of ``offer_arcs`` it
    breaks, in the order ``optimizer.eligibility`` states them (service, coverage, categories,
    colour, the paying fund's reach and earmark) — the order of the pin form's reasons
    (``planning.session.pin_sources``), so both name the same condition."""
    need_id = str(needs["need_id"].iat[n])
    if o is None:
        return PinProblem("offer_not_in_run", need_id, offer_id)
    offer = offers.iloc[o]
    wanted, station = str(needs["service_id"].iat[n]), str(needs["station_id"].iat[n])
    if offer["service_id"] != wanted:
        return PinProblem("offer_service", need_id, offer_id,
                          {"offered": offer["service_id"], "wanted": wanted})
    if not data.hierarchy.covers(np.array([offer["coverage"]]), np.array([station]))[0]:
        return PinProblem("offer_coverage", need_id, offer_id,
                          {"coverage": offer["coverage"], "station": station})
    if not accepts(offer["cat_bits"], 0, needs["cat_bits"].iat[n], 0):
        return PinProblem("offer_categories", need_id, offer_id, {
            "accepted": words(offer["eligible_categories"], vocab.CATEGORIES)})
    if not accepts(0, offer["tier_bits"], 0, needs["tier_bit"].iat[n]):
        return PinProblem("offer_colour", need_id, offer_id, {
            "accepted": words(offer["eligible_tiers"], vocab.TIERS),
            "colour": vocab.TIERS.get(tier := str(needs["tier"].iat[n]), tier)})
    funds = data.funds.set_index("fund_id")
    if offer["charged"] and offer["fund_id"] in funds.index:
        fund = funds.loc[offer["fund_id"]]
        facts = {"fund": offer["fund_id"], "fund_centre": fund["centre_id"],
                 "station": station, "wanted": wanted}
        if not data.hierarchy.covers(np.array([fund["centre_id"]]), np.array([station]))[0]:
            return PinProblem("fund_reach", need_id, offer_id, facts)
        earmarks = [s for s in str(fund["earmarked_services"] or "").split(";") if s]
        if earmarks and wanted not in earmarks:
            return PinProblem("fund_earmark", need_id, offer_id, facts)
    return PinProblem("source_other", need_id, offer_id)


def _volunteer_refusal(data: AllocationInput, needs: pd.DataFrame, n: int, pools: pd.DataFrame,
                       pool_index: pd.Series, street: str, volunteer_id: str
                       ) -> PinProblem | None:
    """Why need ``n`` may not take from ``volunteer_id``'s pool (``None``: it may): an unknown
    volunteer, another street, a skill or the check missing, no pool of the service there."""
    need_id, wanted = str(needs["need_id"].iat[n]), str(needs["service_id"].iat[n])
    vols = data.volunteers.set_index("volunteer_id")
    if volunteer_id not in vols.index:
        return PinProblem("volunteer_unknown", need_id, volunteer_id)
    vstreet = data.hierarchy.ancestor(np.array([vols.at[volunteer_id, "station_id"]]),
                                      "street")[0]
    if vstreet != street:
        return PinProblem("volunteer_street", need_id, volunteer_id,
                          {"volunteer_street": vstreet, "street": street})
    # The volunteer's own capability first (what the coordinator can change by choosing
    # another volunteer), as ``capable`` decides it: every skill, and the check if needed.
    service = data.services.set_index("service_id").loc[wanted]
    needed = {s for s in str(service["skills"] or "").split(";") if s}
    has = {s for s in str(vols.at[volunteer_id, "skills"] or "").split(";") if s}
    if not needed <= has:
        return PinProblem("volunteer_skills", need_id, volunteer_id)
    if bool(service["safeguarding"]) and not bool(vols.at[volunteer_id, "background_checked"]):
        return PinProblem("volunteer_check", need_id, volunteer_id)
    pool = pool_index.get(f"pool:{street}:{wanted}")
    if pool is None:  # an in-person service only has pools (a cash or in-kind one has none)
        return PinProblem("volunteer_no_pool", need_id, volunteer_id,
                          {"street": street, "wanted": wanted})
    if volunteer_id not in str(pools["members"].iat[pool]).split(";"):
        return PinProblem("source_other", need_id, volunteer_id)
    return None


def build_rows(needs, offers, funds, pools, model: _Model, data: AllocationInput) -> Rows:
    """The weekly model's rows (docs/model.md §1, "Rows"), pins excepted (bounds of arcs)."""
    rows = Rows()
    n_arcs = len(model.need)
    arcs = np.arange(n_arcs)
    # Each need: Σ arcs + unserved = quantity. Unserved units are a column of their own (after
    # the arcs), so holding a colour is fixing its needs' unserved columns.
    n_needs = len(needs)
    q = needs["base_quantity"].to_numpy(float)
    rows.add("need", np.concatenate([model.need, np.arange(n_needs)]),
             np.concatenate([arcs, n_arcs + np.arange(n_needs)]), np.ones(n_arcs + n_needs), q, q)
    # Each offer: Σ arcs ≤ capacity left.
    o = model.offer >= 0
    rows.add("offer", model.offer[o], arcs[o], np.ones(o.sum()), np.full(len(offers), -np.inf),
             offers["base_capacity"].to_numpy(float))
    # A household with several needs of one service shares the offer's per-household cap.
    hh = _household_of_arcs(needs, model)
    capped = o & ~np.isnan(offers["base_cap_household"].to_numpy()[np.maximum(model.offer, 0)])
    if capped.any():
        group, count = _group_rows(hh[capped] * len(offers) + model.offer[capped])
        sizes = np.bincount(group, minlength=count)
        shared = sizes[group] > 1
        if shared.any():
            g2, c2 = _group_rows(group[shared])
            cap = offers["base_cap_household"].to_numpy()[model.offer[capped][shared]]
            first_cap = pd.Series(cap).groupby(g2).first().to_numpy()
            rows.add("offer_household", g2, arcs[capped][shared], np.ones(shared.sum()),
                     np.full(c2, -np.inf), first_cap)
    # Each fund: Σ charge × units ≤ budget left; per household ≤ max_per_household. In cents
    # (CENTS_PER_YUAN): a cash need's column then has coefficient 1 and the budget is a whole
    # number, where yuan rows (0.01 beside 3,457.85, budgets of millions) led HiGHS' MIP
    # presolve to call feasible models infeasible.
    f = model.fund >= 0
    used = funds["fund_id"].map(data.used_budget).fillna(0.0).to_numpy(float)
    rows.add("fund", model.fund[f], arcs[f], model.charge[f] * CENTS_PER_YUAN,
             np.full(len(funds), -np.inf),
             np.round(np.maximum(funds["budget"].to_numpy(float) - used, 0.0) * CENTS_PER_YUAN))
    fcap = funds["max_per_household"].to_numpy(float)
    fc = f & ~np.isnan(fcap[np.maximum(model.fund, 0)])
    if fc.any():
        group, count = _group_rows(hh[fc] * len(funds) + model.fund[fc])
        cap = pd.Series(fcap[model.fund[fc]]).groupby(group).first().to_numpy()
        rows.add("fund_household", group, arcs[fc], model.charge[fc] * CENTS_PER_YUAN,
                 np.full(count, -np.inf), np.round(cap * CENTS_PER_YUAN))
    # Volunteer hours: per pool, and per street across its pools (a volunteer's hours once).
    p = model.pool >= 0
    if p.any():
        add_volunteer_hour_rows(rows, data, pools, model.pool[p], arcs[p],
                                _arc_hours_per_unit(needs, model, data)[p])
    return rows


@dataclass
class Built:
    """A week's model as a solve builds it: the needs, offers, funds and volunteer pools as
    tables, the arcs with their pins applied, and the rows."""

    needs: pd.DataFrame
    offers: pd.DataFrame
    funds: pd.DataFrame
    pools: pd.DataFrame
    model: _Model
    rows: Rows


def build_model(data: AllocationInput, needs: pd.DataFrame | None = None) -> Built:
    """Build the week's model (the solve's and the priced bounds' one); ``needs``: the needs
    already prepared (``prepare_needs``), when the caller has them."""
    needs = prepare_needs(data) if needs is None else needs
    offers = offer_table(data)
    funds = data.funds.reset_index(drop=True)
    pools = volunteer_pools(data)
    model, extra = build_arcs(data, needs, offers, pools)
    apply_pins(data, needs, offers, pools, model, extra["street"])
    rows = build_rows(needs, offers, funds, pools, model, data)
    return Built(needs, offers, funds, pools, model, rows)


def add_volunteer_hour_rows(rows: Rows, data: AllocationInput, pools: pd.DataFrame,
                            pool_of_col: np.ndarray, cols: np.ndarray,
                            hours_per_unit: np.ndarray) -> None:
    """Volunteer hours, per pool and per street across its pools (a volunteer's hours count
    once): the rows every model that serves needs from pools shares."""
    # In the service's unit (whole visits a pool's members can give in their slots).
    rows.add("pool", pool_of_col, cols, np.ones(len(cols)), np.full(len(pools), -np.inf),
             pools["units"].to_numpy(float))
    streets, street_hours = street_volunteer_hours(data)
    street_index = pd.Series(np.arange(len(streets)), index=streets)
    street_of_col = pools["street"].map(street_index).to_numpy()[pool_of_col]
    rows.add("street_hours", street_of_col, cols, hours_per_unit,
             np.full(len(streets), -np.inf), street_hours)


def street_volunteer_hours(data: AllocationInput) -> tuple[np.ndarray, np.ndarray]:
    """(street ids, hours): hours of each street's volunteers, less what runs outside this one
    used."""
    vols = data.volunteers
    street = data.hierarchy.ancestor(vols["station_id"].to_numpy(), "street")
    total = pd.Series(vols["max_hours"].to_numpy(float)).groupby(street).sum()
    if data.used_pool_hours:
        used = pd.Series(data.used_pool_hours)
        used_street = used.groupby(used.index.str.split(":").str[1]).sum()
        total = (total - used_street.reindex(total.index, fill_value=0.0)).clip(lower=0.0)
    return total.index.to_numpy(), total.to_numpy()


def build_levels(needs: pd.DataFrame, model: _Model) -> list[Level]:
    """The weekly model's levels, in order: the colours, money, travel, continuity."""
    weight = needs["urgency"].to_numpy(float) / needs["base_quantity"].to_numpy(float)
    tier = needs["tier"].to_numpy()[model.need]
    w = weight[model.need]
    need_tier = needs["tier"].to_numpy()
    n_arcs = len(model.need)
    unserved = np.zeros(len(needs))  # the unserved columns carry no cost of their own

    def cost(arc_cost: np.ndarray) -> np.ndarray:
        return np.concatenate([arc_cost, unserved])

    # A colour is held by fixing its needs' unserved columns (after the arcs).
    # While a colour is solved, the arcs of the colours after it stay at their lower bound
    # (pins): they add nothing to it and only use up capacity.
    rank = pd.Series(np.arange(len(TIER_LEVELS)), index=list(TIER_LEVELS))
    arc_rank = rank.reindex(tier).to_numpy()
    levels = [Level(t, "max", cost(np.where(tier == t, w, 0.0)),
                    hold_cols=n_arcs + np.flatnonzero(need_tier == t),
                    idle_cols=np.flatnonzero(arc_rank > k))
              for k, t in enumerate(TIER_LEVELS)]
    levels.append(Level("money", "min", cost(model.charge)))
    # Travel and continuity refine a plan whose coverage and money are settled: they are
    # searched but not bounded (their certification LPs cost more than the rest of the solve).
    levels.append(Level("travel", "min", cost(model.km), certify=False))
    levels.append(Level("continuity", "max", cost(model.continuity), certify=False))
    return levels


# ----------------------------------------------------------------------------- reasons


def _reasons(needs, offers, funds, pools, model: _Model, x: np.ndarray, data: AllocationInput,
             served: np.ndarray, pool_left: np.ndarray | None = None) -> np.ndarray:
    """The first reason that applies to each need with unmet units ("" when fully served).

    ``no_eligible_offer``: no source of the service accepts the household (categories,
    colour), wherever it is; ``out_of_coverage``: eligible sources exist, none reaches the
    household; ``household_cap``: every reaching source still open is capped for this
    household; ``budget_exhausted``: reaching offers have capacity left but their funds are
    spent; ``capacity_exhausted``: everything reaching the household is full.

    ``pool_left``: :func:`_pool_left`'s hours left per pool, when the caller has them.
    """
    n = len(needs)
    unmet = needs["base_quantity"].to_numpy() - served > 0.5
    reason = np.full(n, "", dtype=object)
    if not unmet.any():
        return reason
    eps = 1e-6
    # Capacity and budget left after the solve.
    offer_used = np.bincount(model.offer[model.offer >= 0], weights=x[model.offer >= 0],
                             minlength=len(offers))
    offer_left = offers["base_capacity"].to_numpy(float) - offer_used
    f = model.fund >= 0
    fund_used = np.bincount(model.fund[f], weights=(model.charge * x)[f], minlength=len(funds))
    fund_left = funds["budget"].to_numpy(float) - \
        funds["fund_id"].map(data.used_budget).fillna(0.0).to_numpy(float) - fund_used
    if pool_left is None:
        _, pool_left = _pool_left(needs, pools, model, x, data)

    # Eligibility anywhere (ignoring coverage): per service, does any offer accept the need?
    volunteer_services = _services_with_volunteers(data)
    eligible_any = np.zeros(n, bool)
    idx_unmet = np.flatnonzero(unmet)
    unmet_service = needs["service_id"].to_numpy(object)[idx_unmet]
    offer_service = offers["service_id"].to_numpy(object)
    offer_cat, offer_tier = offers["cat_bits"].to_numpy(), offers["tier_bits"].to_numpy()
    need_cat, need_tier = needs["cat_bits"].to_numpy(), needs["tier_bit"].to_numpy()
    for service in pd.unique(unmet_service):  # a loop over services, not needs
        rows = idx_unmet[unmet_service == service]
        of = np.flatnonzero(offer_service == service)
        if len(of):
            eligible_any[rows] = accepts(offer_cat[of][None, :], offer_tier[of][None, :],
                                         need_cat[rows][:, None], need_tier[rows][:, None]
                                         ).any(axis=1)
        if service in volunteer_services:
            eligible_any[rows] = True  # volunteers accept any household
    # Per arc: does its source have room for one more unit (capacity, or a volunteer's hours)?
    is_offer = model.offer >= 0
    has_capacity = np.zeros(len(x), bool)
    has_capacity[is_offer] = offer_left[model.offer[is_offer]] >= 1 - eps
    if len(pools):
        p = ~is_offer
        hours = _arc_hours_per_unit(needs, model, data)[p]
        has_capacity[p] = pool_left[model.pool[p]] >= hours - eps
    hh_capped = _household_capped(needs, offers, funds, model, x) | (x >= model.upper - eps)
    budget_short = np.zeros(len(x), bool)
    fa = model.fund >= 0
    budget_short[fa] = fund_left[model.fund[fa]] < model.charge[fa] - eps
    reaching = np.bincount(model.need, minlength=n) > 0
    open_any = np.bincount(model.need, weights=has_capacity.astype(float), minlength=n)
    open_capped = np.bincount(model.need, weights=(has_capacity & hh_capped).astype(float),
                              minlength=n)
    open_budget = np.bincount(model.need, weights=(has_capacity & ~hh_capped & budget_short)
                              .astype(float), minlength=n)
    reason[unmet & ~eligible_any] = NO_ELIGIBLE_OFFER
    rest = unmet & eligible_any
    reason[rest & ~reaching] = OUT_OF_COVERAGE
    rest &= reaching
    # Every open source is capped for this household → household_cap.
    cap_all = rest & (open_any > 0) & (open_capped >= open_any - 0.5)
    reason[cap_all] = HOUSEHOLD_CAP
    rest &= ~cap_all
    budget = rest & (open_budget > 0)
    reason[budget] = BUDGET_EXHAUSTED
    rest &= ~budget
    reason[rest] = CAPACITY_EXHAUSTED
    return reason


def hours_per_unit(services: pd.DataFrame, service_ids: np.ndarray) -> np.ndarray:
    """A volunteer's hours per unit of each of ``service_ids``: ``visit_hours`` for a visit,
    1 for an hour."""
    # Worked out once per distinct service (a street's thousands of needs have a few dozen).
    code, distinct = pd.factorize(np.asarray(service_ids, dtype=object))
    s = services.set_index("service_id")
    unit = s["unit"].reindex(distinct).to_numpy()
    hours = np.where(unit == "visit", s["visit_hours"].reindex(distinct).to_numpy(float), 1.0)
    return np.where(code >= 0, hours[np.maximum(code, 0)], 1.0)


def _arc_hours_per_unit(needs, model: _Model, data: AllocationInput) -> np.ndarray:
    """Per arc: a volunteer's hours one unit of the need takes."""
    return hours_per_unit(data.services, needs["service_id"].to_numpy())[model.need]


def _pool_left(needs, pools, model: _Model, x: np.ndarray, data: AllocationInput):
    """Hours used and left per pool (left also bounded by the street's hours left)."""
    if not len(pools):
        return np.zeros(0), np.zeros(0)
    p = model.pool >= 0
    hpu = _arc_hours_per_unit(needs, model, data)[p]
    used = np.bincount(model.pool[p], weights=x[p] * hpu, minlength=len(pools))
    used_units = np.bincount(model.pool[p], weights=x[p], minlength=len(pools))
    left = np.minimum(pools["hours"].to_numpy(float) - used,
                      (pools["units"].to_numpy(float) - used_units)
                      * pools["hours_per_unit"].to_numpy(float))
    # A pool also runs dry when its street's volunteers have no hours left.
    streets, street_hours = street_volunteer_hours(data)
    street_used = pd.Series(used).groupby(pools["street"].to_numpy()).sum()
    street_left = pd.Series(street_hours, index=streets) - street_used.reindex(streets,
                                                                               fill_value=0)
    left = np.minimum(left, pools["street"].map(street_left).to_numpy(float))
    return used, left


def _household_capped(needs, offers, funds, model: _Model, x: np.ndarray) -> np.ndarray:
    """Per arc: is it stopped by a per-household cap (the offer's or its fund's)?"""
    eps = 1e-6
    capped = np.zeros(len(x), bool)
    o = model.offer >= 0
    hh = _household_of_arcs(needs, model)
    cap = offers["base_cap_household"].to_numpy()[np.maximum(model.offer, 0)]
    has = o & ~np.isnan(cap)
    if has.any():
        group, count = _group_rows(hh[has] * len(offers) + model.offer[has])
        got = np.bincount(group, weights=x[has], minlength=count)[group]
        capped[np.flatnonzero(has)] = got >= cap[has] - eps
    f = model.fund >= 0
    fcap = funds["max_per_household"].to_numpy(float)[np.maximum(model.fund, 0)]
    hasf = f & ~np.isnan(fcap)
    if hasf.any():
        group, count = _group_rows(hh[hasf] * len(funds) + model.fund[hasf])
        spent = np.bincount(group, weights=(x * model.charge)[hasf], minlength=count)[group]
        capped[np.flatnonzero(hasf)] |= spent > fcap[hasf] - model.charge[hasf] + eps
    return capped


# ----------------------------------------------------------------------------- entry point


def allocate(data: AllocationInput, params: AllocationParams | None = None, *,
             built: Built | None = None) -> AllocationResult:
    """Solve the weekly allocation exactly (lexicographic; min-cost flow on its network
    components, MIP by HiGHS on the rest) and explain what is unmet.

    ``built``: the model of ``data`` (``build_model(data)``), when the caller has built it
    (a decomposed run reads the part's LP from it too); else it is built here.

    Raises
    ------
    PinError
        When a pin names a source that may not serve its need, or more units than allowed.
    """
    params = params or AllocationParams()
    t0 = time.perf_counter()
    built = build_model(data) if built is None else built
    needs, offers, funds, pools = built.needs, built.offers, built.funds, built.pools
    model, rows = built.model, built.rows
    levels = build_levels(needs, model)
    prep = time.perf_counter() - t0
    q = needs["base_quantity"].to_numpy(float)
    n_cols = len(model.need) + len(needs)
    # Components that are pure networks go to a min-cost flow, the rest to HiGHS
    # (optimizer/flow.py), which searches exactly within the time limit.
    result, parts = solve_parts(
        np.concatenate([model.lower, np.zeros(len(needs))]), np.concatenate([model.upper, q]),
        np.ones(n_cols, bool), rows, levels, flow=params.flow, time_limit=params.time_limit,
        threads=params.threads, seed=params.seed, dual_levels=TIER_LEVELS,
        exact=False, certify=params.certify, search_seconds=search_seconds(params),
        branch_and_bound=params.branch_and_bound)
    x = result.x[:len(model.need)]  # the arcs; whole base units
    out = _outputs(data, needs, offers, funds, pools, model, rows, x, result,
                   prep + result.build_seconds, reasons=params.reasons)
    out.sizes.update(parts.counts())
    return out


def search_seconds(params: AllocationParams) -> float:
    """The exact search's time for one solve: ``search_seconds``, else the time limit (none:
    no limit)."""
    if params.search_seconds is not None:
        return params.search_seconds
    return params.time_limit if params.time_limit > 0 else float("inf")


def explain(data: AllocationInput, allocations: pd.DataFrame) -> pd.Series:
    """need_id → the reason of each need of ``data`` with unmet units ("" when fully served),
    given what ``allocations`` (need_id, source_id, units) gives them, with whatever other
    needs use already counted in ``data.used_*``. The rules are those of a solve."""
    needs = prepare_needs(data)
    offers = offer_table(data)
    funds = data.funds.reset_index(drop=True)
    pools = volunteer_pools(data)
    model, _ = build_arcs(data, needs, offers, pools)
    source = np.where(model.offer >= 0,
                      offers["offer_id"].to_numpy()[np.maximum(model.offer, 0)],
                      pools["pool_id"].to_numpy()[np.maximum(model.pool, 0)]
                      if len(pools) else "")
    arc = pd.Series(np.arange(len(model.need)), index=pd.MultiIndex.from_arrays(
        [needs["need_id"].to_numpy()[model.need], source]))
    given = allocations[member_mask(allocations["need_id"], needs["need_id"])]
    at = arc.reindex(pd.MultiIndex.from_arrays([given["need_id"], given["source_id"]]))
    if at.isna().any():
        raise ValueError("allocations name arcs the model does not have")
    scale = needs["scale"].to_numpy()[model.need]
    x = np.zeros(len(model.need))
    np.add.at(x, at.to_numpy(int), given["units"].to_numpy(float))
    x = np.round(x * scale)
    served = np.bincount(model.need, weights=x, minlength=len(needs))
    reason = _reasons(needs, offers, funds, pools, model, x, data, served)
    return pd.Series(reason, index=needs["need_id"].to_numpy())


def _outputs(data, needs, offers, funds, pools, model: _Model, rows: Rows, x: np.ndarray,
             result: LexResult, build_seconds: float, reasons: bool = True) -> AllocationResult:
    scale = needs["scale"].to_numpy()
    served = np.bincount(model.need, weights=x, minlength=len(needs))
    used = x > 0
    arc_scale = scale[model.need]
    source = np.where(model.offer >= 0,
                      offers["offer_id"].to_numpy()[np.maximum(model.offer, 0)],
                      pools["pool_id"].to_numpy()[np.maximum(model.pool, 0)]
                      if len(pools) else "")
    fund_id = np.where(model.fund >= 0, funds["fund_id"].to_numpy()[np.maximum(model.fund, 0)]
                       if len(funds) else "", "")
    allocations = pd.DataFrame({
        "need_id": needs["need_id"].to_numpy()[model.need],
        "source_id": source,
        "source_kind": np.where(model.offer >= 0, "offer", "volunteer_pool"),
        "units": x / arc_scale,
        "cost": np.round(x * model.charge, 2),
        "fund_id": fund_id,
        "km": np.round(x * model.km, 3),
    })[used].sort_values(["need_id", "source_id"], kind="stable").reset_index(drop=True)

    pool_hours = _pool_left(needs, pools, model, x, data)
    reason = (_reasons(needs, offers, funds, pools, model, x, data, served, pool_hours[1])
              if reasons else np.full(len(needs), "", dtype=object))
    left = needs["base_quantity"].to_numpy() - served
    unmet = pd.DataFrame({"need_id": needs["need_id"], "units": left / scale,
                          "reason": reason})[left > 0.5].reset_index(drop=True)
    money = np.bincount(model.need, weights=x * model.charge, minlength=len(needs))
    per_need = {name: np.bincount(model.need, weights=x * getattr(model, name),
                                  minlength=len(needs)) for name in ("km", "continuity")}
    need_served = pd.DataFrame({
        "need_id": needs["need_id"], "household_id": needs["household_id"],
        "station_id": needs["station_id"], "service_id": needs["service_id"],
        "tier": needs["tier"], "urgency": needs["urgency"], "quantity": needs["quantity"],
        "served": served / scale, "fraction": served / needs["base_quantity"].to_numpy(),
        "money": np.round(money, 2), "reason": reason,
        "km": per_need["km"], "continuity": per_need["continuity"],
    })

    duals = result.duals
    offer_used = np.bincount(model.offer[model.offer >= 0], weights=x[model.offer >= 0],
                             minlength=len(offers))
    o_rows = rows.family("offer")
    offer_use = pd.DataFrame({
        "offer_id": offers["offer_id"], "service_id": offers["service_id"],
        "capacity": offers["base_capacity"] / offers["scale"],
        "used": offer_used / offers["scale"],
        "left": (offers["base_capacity"] - offer_used) / offers["scale"],
        "marginal_value": _first_dual(duals, o_rows) * offers["scale"].to_numpy(),
        "marginal_level": _first_dual_level(duals, o_rows),
    })
    f = model.fund >= 0
    fund_used = np.bincount(model.fund[f], weights=(x * model.charge)[f], minlength=len(funds))
    f_rows = rows.family("fund")
    budget = funds["budget"].to_numpy(float) - \
        funds["fund_id"].map(data.used_budget).fillna(0.0).to_numpy(float)
    fund_use = pd.DataFrame({
        "fund_id": funds["fund_id"], "budget": budget, "used": np.round(fund_used, 2),
        "left": np.round(budget - fund_used, 2),
        "marginal_value": _first_dual(duals, f_rows) * CENTS_PER_YUAN,  # per yuan
        "marginal_level": _first_dual_level(duals, f_rows),
    })
    if len(pools):
        used_h, left_h = pool_hours
        # No pool row exists when no need in this run can use a pool.
        has_rows = any(name == "pool" for name, _, _ in rows.names)
        p_rows = rows.family("pool") if has_rows else slice(0, 0)
        pool_use = pd.DataFrame({
            "pool_id": pools["pool_id"], "street": pools["street"],
            "service_id": pools["service_id"], "hours": pools["hours"], "used": used_h,
            "left": np.maximum(left_h, 0.0), "volunteers": pools["members"].str.count(";") + 1,
            "marginal_value": _first_dual(duals, p_rows) if has_rows else 0.0,
            "marginal_level": _first_dual_level(duals, p_rows) if has_rows else "",
        })
    else:
        pool_use = pd.DataFrame(columns=["pool_id", "street", "service_id", "hours", "used",
                                         "left", "volunteers", "marginal_value",
                                         "marginal_level"])
    return AllocationResult(
        allocations=allocations, unmet=unmet, need_served=need_served, offer_use=offer_use,
        fund_use=fund_use, pool_use=pool_use, levels=result.levels, status=result.status,
        build_seconds=build_seconds, solve_seconds=result.solve_seconds,
        sizes={"needs": len(needs), "offers": len(offers), "funds": len(funds),
               "pools": len(pools), "arcs": len(model.need), "rows": rows.count},
    )


def _first_dual(duals: dict, rows: slice) -> np.ndarray:
    """Marginal value of one more unit of a row: its dual at the first colour level where it
    is non-zero (the level the resource matters most to), in that level's units."""
    out = np.zeros(rows.stop - rows.start)
    done = np.zeros_like(out, dtype=bool)
    for level in TIER_LEVELS:
        if level not in duals:
            continue
        d = np.abs(duals[level][rows])
        new = ~done & (d > 1e-9)
        out[new] = d[new]
        done |= new
    return out


def _first_dual_level(duals: dict, rows: slice) -> np.ndarray:
    out = np.full(rows.stop - rows.start, "", dtype=object)
    for level in TIER_LEVELS:
        if level not in duals:
            continue
        new = (out == "") & (np.abs(duals[level][rows]) > 1e-9)
        out[new] = level
    return out
