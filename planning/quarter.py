"""The quarterly plan (季度计划): 13 weeks × every street of the network, in parallel.

``plan_quarter(scenario, "2027Q1")`` plans a quarter in expected values (no random draws, so
the same input gives the same plan, on either engine). ``docs/quarter.md`` has the model and
the figures; in short:

1. **Snapshot.** The scenario's needs (its latest week) are the needs open when the quarter
   starts, and its supply is one week's supply: offer capacities and fund budgets per week.
2. **Budget split (serial).** The budget lab's aggregated LP (``optimizer.budget``) is solved
   once for the whole network on the snapshot. Each fund's weekly budget and each offer's
   weekly capacity is split across the streets: a street gets what the network optimum gave
   it, plus a share of what the optimum left unused in proportion to what the street's needs
   could draw from it. The quarter's budget of a fund is 13 × its weekly budget; each street
   gets its slice every week, and money a street does not spend in a week stays with it for
   its later weeks (never spent ahead of time).
3. **Streets (parallel).** With the split fixed, no resource is shared between streets
   (volunteer pools are per street already), so each street's 13 weeks are one independent
   task: the aggregated LP of the street, built once, solved week after week with that week's
   demand — the needs carried forward (``carry_forward`` × last week's unserved), the new needs
   (``arrival_rate`` × the snapshot, per colour, from the policy's ``[quarter]`` section) — and
   that week's volunteer hours less the monitoring visits each colour's cycle asks for.

Output tables (``QuarterPlan.tables``):

- ``money``: week × street × fund: ``available`` (the week's slice plus what the street carried
  over), ``planned`` (yuan the plan spends);
- ``volunteers``: per station: volunteer hours ``available`` over the quarter, hours needed
  (``monitoring_hours`` + ``service_hours`` planned for volunteers + ``unserved_hours`` of
  in-person needs left open), ``gap`` (needed − available when positive: the recruitment gap),
  ``gap_weeks`` and ``peak_week_gap``;
- ``fill_rate``: week × colour: ``open_needs`` (= ``carried_needs`` + ``new_needs``, expected
  counts), ``served_needs``, ``fill_rate``, ``money``, ``monitoring_visits``;
- ``funds``: per fund: ``weekly_budget``, ``quarter_budget`` (13 ×), ``allotted`` (the slices
  of the streets planned), ``planned``, ``left``, ``share`` (planned ÷ quarter budget);
- ``explanation``: per colour: what limits coverage — unserved needs split by the limit that
  binds on the sources they could use (budget, capacity, volunteers, household caps, no
  eligible supply), the main limit, and one sentence in Chinese and English.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib.metadata import version
from typing import ClassVar

import numpy as np
import pandas as pd

from wulian.contract import vocab
from wulian.optimizer.allocation import AllocationInput
from wulian.optimizer.budget import BudgetModel, build_budget_model
from wulian.optimizer.eligibility import offer_coverage
from wulian.planning.allocate import allocation_input
from wulian.planning.engines import Cancelled, TaskResult, default_workers, run_tasks
from wulian.planning.fmt import count, pct
from wulian.planning.io import Outputs
from wulian.planning.match import weeks_between
from wulian.planning.scenario import Scenario

WEEKS = 13
OUTPUT_TABLES = ("money", "volunteers", "fill_rate", "funds", "explanation")
COLOURS = tuple(vocab.TIER_ORDER)
#: What can limit a colour's coverage, in the order the explanation lists them.
LIMITS: dict[str, tuple[str, str]] = {
    "budget": ("预算不足", "budget"),
    "capacity": ("服务容量不足", "service capacity"),
    "volunteers": ("志愿者时间不足", "volunteer hours"),
    "household_cap": ("每户上限", "per-household caps"),
    "no_supply": ("无可用供给", "no eligible supply"),
    "other": ("其他", "other"),
}
_BINDING = 1e-6  # a resource within this share of its bound counts as exhausted
_QUARTER = re.compile(r"^\s*(\d{4})\s*-?\s*Q([1-4])\s*$", re.IGNORECASE)

__all__ = ["Cancelled", "Quarter", "QuarterError", "QuarterPlan", "parse_quarter",
           "plan_quarter", "split_budget", "OUTPUT_TABLES", "WEEKS"]


# ----------------------------------------------------------------------------- the quarter


class QuarterError(ValueError):
    """A quarter that cannot be read, or a centre the plan cannot be restricted to."""


@dataclass(frozen=True)
class Quarter:
    """A planning quarter: ``year``, ``number`` (1–4) and its 13 ISO weeks.

    The first week is the ISO week of the first Monday on or after the quarter's first day
    (1 January, 1 April, 1 July, 1 October); the plan runs 13 consecutive ISO weeks from it.

    >>> q = parse_quarter("2027Q1")
    >>> q.weeks[0], q.weeks[-1], q.first_monday.isoformat()
    ('2027-W01', '2027-W13', '2027-01-04')
    """

    year: int
    number: int

    @property
    def label(self) -> str:
        return f"{self.year}Q{self.number}"

    @property
    def first_monday(self) -> date:
        first = date(self.year, 3 * (self.number - 1) + 1, 1)
        return first + timedelta(days=(7 - first.weekday()) % 7)

    @property
    def weeks(self) -> tuple[str, ...]:
        out = []
        for k in range(WEEKS):
            iso = (self.first_monday + timedelta(weeks=k)).isocalendar()
            out.append(f"{iso.year}-W{iso.week:02d}")
        return tuple(out)


def parse_quarter(text: str) -> Quarter:
    """Read a quarter written ``2027Q1`` (also ``2027-Q1``, ``2027q1``).

    Raises
    ------
    QuarterError
        When ``text`` is not a year and a quarter 1–4, with a bilingual message.
    """
    match = _QUARTER.match(str(text))
    if not match:
        raise QuarterError(f"无法识别季度 {text!r}:请写成 年份+Q+季度,例如 2027Q1 / "
                           f"not a quarter: {text!r}; write the year, Q and the quarter 1–4, "
                           "e.g. 2027Q1")
    year = int(match.group(1))
    if not 1900 <= year <= 9998:
        raise QuarterError(f"年份超出范围:{year} / year out of range: {year} (1900–9998)")
    return Quarter(year, int(match.group(2)))


# ----------------------------------------------------------------------------- the plan


@dataclass
class QuarterPlan(Outputs):
    """A quarterly plan: its output tables and its provenance (``info``, plan.json)."""

    WORKBOOK: ClassVar[str] = "plan.xlsx"
    INFO_FILE: ClassVar[str] = "plan.json"


@dataclass
class BudgetSplit:
    """Each street's weekly share of every fund (yuan) and every offer (units).

    Attributes
    ----------
    funds
        ``street_id, fund_id, budget`` (yuan per week).
    offers
        ``street_id, offer_id, capacity`` (units per week).
    network
        Fill rate per colour of the network optimum on the snapshot, and its seconds.
    """

    funds: pd.DataFrame
    offers: pd.DataFrame
    network: dict = field(default_factory=dict)


def snapshot_week(scenario: Scenario) -> str:
    """The week whose needs open the quarter: the latest week of the needs table."""
    weeks = scenario.needs["week"]
    return str(max(weeks, key=lambda w: (int(w[:4]), int(w[6:])))) if len(weeks) else ""


def _split(totals: pd.Series, used: pd.DataFrame, potential: pd.DataFrame, key: str,
           value: str) -> pd.DataFrame:
    """Street shares of each resource: what the optimum used there, plus the unused rest in
    proportion to what the street could draw (``used``/``potential``: street_id, key, x)."""
    frame = potential.merge(used, on=["street_id", key], how="outer").fillna(0.0)
    left = (totals - frame.groupby(key)["used"].sum().reindex(totals.index, fill_value=0.0)) \
        .clip(lower=0.0)
    pot_total = frame.groupby(key)["potential"].transform("sum")
    share = np.divide(frame["potential"].to_numpy(float), pot_total.to_numpy(float),
                      out=np.zeros(len(frame)), where=pot_total.to_numpy(float) > 0)
    frame[value] = frame["used"] + frame[key].map(left).fillna(0.0).to_numpy() * share
    frame = frame[frame[value] > 0]
    return frame[["street_id", key, value]].sort_values(["street_id", key]) \
        .reset_index(drop=True)


def split_budget(scenario: Scenario) -> BudgetSplit:
    """Split every fund's weekly budget and every offer's weekly capacity across the streets,
    from one solve of the aggregated LP over the whole network on the snapshot week."""
    start = time.perf_counter()
    week = snapshot_week(scenario)
    data = allocation_input(scenario, week or None)
    if data.needs.empty:
        empty_f = pd.DataFrame(columns=["street_id", "fund_id", "budget"])
        empty_o = pd.DataFrame(columns=["street_id", "offer_id", "capacity"])
        return BudgetSplit(empty_f, empty_o, {"seconds": time.perf_counter() - start})
    model = build_budget_model(data, threads=1, seed=0)
    sol = model.solve()
    agg = model.agg
    y, upper = sol.arc_flow, agg.arc_upper
    street = agg.group_street[agg.arc_group]
    on_offer = agg.arc_offer >= 0
    offer = model.offer_ids[np.maximum(agg.arc_offer, 0)]
    arcs = pd.DataFrame({"street_id": street[on_offer], "offer_id": offer[on_offer],
                         "used": y[on_offer], "potential": upper[on_offer]})
    arcs = arcs.groupby(["street_id", "offer_id"], sort=True).sum().reset_index()
    capacity = scenario.offers.set_index("offer_id")["capacity"].astype(float)
    offers = _split(capacity, arcs[["street_id", "offer_id", "used"]],
                    arcs[["street_id", "offer_id", "potential"]], "offer_id", "capacity")
    charged = agg.arc_fund >= 0
    fund = model.fund_ids[np.maximum(agg.arc_fund, 0)]
    money = pd.DataFrame({"street_id": street[charged], "fund_id": fund[charged],
                          "used": (y * agg.arc_charge)[charged],
                          "potential": (upper * agg.arc_charge)[charged]})
    money = money.groupby(["street_id", "fund_id"], sort=True).sum().reset_index()
    budgets = scenario.funds.set_index("fund_id")["budget"].astype(float)
    funds = _split(budgets, money[["street_id", "fund_id", "used"]],
                   money[["street_id", "fund_id", "potential"]], "fund_id", "budget")
    network = {"fill_rate": {c: float(v) for c, v in sol.fill_rates().items()},
               "money": float(sol.money), "sizes": model.sizes,
               "seconds": round(time.perf_counter() - start, 3)}
    return BudgetSplit(funds, offers, network)


# ----------------------------------------------------------------------------- street tasks


@dataclass
class _Payload:
    """What every worker gets once: the scenario, the split and the quarter."""

    scenario: Scenario
    split: BudgetSplit
    weeks: tuple[str, ...]
    snapshot: str
    token: str  # one per plan: a worker's prepared data is never another plan's


@dataclass
class _Prepared:
    """Per worker, built once from the payload: everything grouped by street."""

    needs: dict
    households: dict
    volunteers: dict
    funds: dict
    offers: dict
    offer_coverage: np.ndarray
    hours_per_unit: pd.Series


_PREPARED: dict[str, _Prepared] = {}


def _prepare(payload: _Payload) -> _Prepared:
    key = payload.token
    if key in _PREPARED:
        return _PREPARED[key]
    _PREPARED.clear()
    sc = payload.scenario
    h = sc.hierarchy
    data = allocation_input(sc, payload.snapshot or None)
    needs = data.needs.assign(street_id=h.ancestor(data.needs["station_id"].to_numpy(),
                                                   "street"))
    hh = sc.households[["household_id", "station_id", "tier"]]
    last = sc.history.groupby("household_id")["week"].max() if len(sc.history) else \
        pd.Series(dtype=object)
    hh = hh.assign(street_id=h.ancestor(hh["station_id"].to_numpy(), "street"),
                   last_week=hh["household_id"].map(last))
    vols = sc.volunteers.assign(street_id=h.ancestor(sc.volunteers["station_id"].to_numpy(),
                                                     "street"))
    services = sc.services.set_index("service_id")
    hours = pd.Series(np.where(services["unit"] == "visit", services["visit_hours"],
                               np.where(services["unit"] == "hour", 1.0, 0.0)),
                      index=services.index).where(services["delivery"] == "in_person", 0.0)
    prepared = _Prepared(
        needs=dict(tuple(needs.groupby("street_id", sort=True))),
        households=dict(tuple(hh.groupby("street_id", sort=True))),
        volunteers=dict(tuple(vols.groupby("street_id", sort=True))),
        funds={s: dict(zip(g["fund_id"], g["budget"], strict=True))
               for s, g in payload.split.funds.groupby("street_id", sort=True)},
        offers={s: dict(zip(g["offer_id"], g["capacity"], strict=True))
                for s, g in payload.split.offers.groupby("street_id", sort=True)},
        offer_coverage=offer_coverage(sc.offers, sc.providers),
        hours_per_unit=hours.fillna(0.0))
    _PREPARED[key] = prepared
    return prepared


def monitoring_schedule(households: pd.DataFrame, monitoring_weeks, weeks: tuple[str, ...]
                        ) -> np.ndarray:
    """Monitoring visits due, households × weeks (0/1), in the order of ``households``
    (``household_id, tier, last_week``: the latest week in history, NaN when none).

    A household is first due when its colour's cycle has passed since its latest visit (in
    the first week when that happened before the quarter), then every cycle. A household with
    no visit in history is first due within its first cycle, staggered by its rank among the
    households of its colour (by id): the ``r``-th is first due in week ``r mod cycle``, so the
    workload is level instead of every never-visited household falling in week one.
    """
    cycle = households["tier"].map(dict(monitoring_weeks)).to_numpy(np.int64)
    since = weeks_between(households["last_week"], weeks[0]).to_numpy(float)
    rank = households.groupby("tier")["household_id"].rank(method="first").to_numpy() - 1
    first = np.where(np.isnan(since), rank % cycle, np.maximum(cycle - np.nan_to_num(since), 0))
    k = np.arange(len(weeks))[None, :]
    first = first.astype(np.int64)[:, None]
    return ((k >= first) & ((k - first) % cycle[:, None] == 0)).astype(np.int64)


def _street_input(sc: Scenario, prep: _Prepared, street: str, needs: pd.DataFrame
                  ) -> AllocationInput:
    h = sc.hierarchy
    cov = prep.offer_coverage
    # Offers that can reach the street: covering it from above, or inside it.
    reach = h.covers(cov, np.full(len(cov), street)) | \
        h.covers(np.full(len(cov), street), cov)
    vols = prep.volunteers.get(street, sc.volunteers.iloc[:0])
    households = needs["household_id"].unique()
    return AllocationInput(
        needs=needs.drop(columns=["street_id"]).reset_index(drop=True), services=sc.services,
        offers=sc.offers[reach].reset_index(drop=True), providers=sc.providers,
        funds=sc.funds, volunteers=vols.drop(columns=["street_id"]).reset_index(drop=True),
        history=sc.history[sc.history["household_id"].isin(households)],
        pins=sc.pins.iloc[:0], hierarchy=h)


def _street_task(payload: _Payload, street: str) -> dict:
    """One street's 13 weeks (see the module docstring); small tables, no household rows."""
    prep = _prepare(payload)
    sc = payload.scenario
    weeks = payload.weeks
    n_weeks = len(weeks)
    rates = sc.policy.quarter
    hh = prep.households.get(street, pd.DataFrame(columns=["household_id", "station_id",
                                                           "tier", "last_week"]))
    due = monitoring_schedule(hh, sc.policy.monitoring_weeks, weeks) if len(hh) else \
        np.zeros((0, n_weeks), np.int64)
    mon_hours = due.sum(axis=0) * rates.monitoring_hours
    vols = prep.volunteers.get(street, sc.volunteers.iloc[:0])
    stations = sorted(set(hh["station_id"]) | set(vols["station_id"]))
    st_index = pd.Series(np.arange(len(stations)), index=stations, dtype=np.int64)
    st_hh = st_index.reindex(hh["station_id"]).to_numpy()
    n_st = len(stations)
    station_mon = np.zeros((n_st, n_weeks))
    for k in range(n_weeks):  # a loop over the 13 weeks
        station_mon[:, k] = np.bincount(st_hh, weights=due[:, k], minlength=n_st)
    station_avail = np.bincount(st_index.reindex(vols["station_id"]).to_numpy(),
                                weights=vols["max_hours"].to_numpy(float), minlength=n_st)
    station_vols = np.bincount(st_index.reindex(vols["station_id"]).to_numpy(),
                               minlength=n_st)
    tier_code = pd.Series(np.arange(len(COLOURS)), index=list(COLOURS))
    mon_by_colour = np.zeros((len(COLOURS), n_weeks))
    if len(hh):
        tiers = tier_code.reindex(hh["tier"]).to_numpy()
        for k in range(n_weeks):
            mon_by_colour[:, k] = np.bincount(tiers, weights=due[:, k], minlength=len(COLOURS))

    fill = np.zeros((n_weeks, len(COLOURS), 5))  # open, carried, new, served, money
    limits = np.zeros((n_weeks, len(COLOURS), len(LIMITS)))
    service_h = np.zeros((n_st, n_weeks))
    unserved_h = np.zeros((n_st, n_weeks))
    money_rows: list[tuple] = []
    needs = prep.needs.get(street)
    if needs is not None and len(needs):
        data = _street_input(sc, prep, street, needs)
        model = build_budget_model(data, threads=1, seed=0)
        _plan_weeks(model, data, prep, street, payload, rates, mon_hours, st_index, fill,
                    limits, service_h, unserved_h, money_rows)
    stations_frame = pd.DataFrame({
        "station_id": np.repeat(np.array(stations, dtype=object), n_weeks),
        "week": np.tile(np.arange(n_weeks), n_st),
        "volunteers": np.repeat(station_vols, n_weeks),
        "available": np.repeat(station_avail, n_weeks),
        "monitoring_visits": station_mon.ravel(),
        "monitoring_hours": station_mon.ravel() * rates.monitoring_hours,
        "service_hours": service_h.ravel(), "open_hours": unserved_h.ravel()})
    return {"fill": fill, "limits": limits, "monitoring": mon_by_colour,
            "stations": stations_frame,
            "money": pd.DataFrame(money_rows, columns=["week", "fund_id", "available",
                                                       "planned"])}


def _plan_weeks(model: BudgetModel, data: AllocationInput, prep: _Prepared, street: str,
                payload: _Payload, rates, mon_hours: np.ndarray, st_index: pd.Series,
                fill: np.ndarray, limits: np.ndarray, service_h: np.ndarray,
                unserved_h: np.ndarray, money_rows: list) -> None:
    """Solve the street's weeks in order, carrying unserved needs and unspent money."""
    agg = model.agg
    tier_code = pd.Series(np.arange(len(COLOURS)), index=list(COLOURS))
    seg_tier = tier_code.reindex(agg.group_tier[agg.seg_group]).to_numpy()
    arrival = np.array([rates.arrival_rate[c] for c in COLOURS])[seg_tier]
    carry = np.array([rates.carry_forward[c] for c in COLOURS])[seg_tier]
    snapshot = agg.seg_needs.copy()
    n_seg, n_arcs = len(snapshot), len(agg.arc_group)
    n_groups = len(agg.group_street)

    # Supply of the street: its slices of offers and funds, its volunteers' hours.
    offer_slice = prep.offers.get(street, {})
    capacity = np.array([offer_slice.get(o, 0.0) for o in model.offer_ids])
    model.set_supply(capacity=dict(zip(model.offer_ids, capacity, strict=True)))
    fund_slice = prep.funds.get(street, {})
    weekly = np.array([fund_slice.get(f, 0.0) for f in model.fund_ids])
    street_hours = model.street_hours.copy()

    # Stations' shares of each segment (the snapshot's needs), to apportion street figures.
    station = st_index.reindex(data.needs["station_id"]).to_numpy()
    pair = pd.DataFrame({"station": station, "seg": agg.need_segment}) \
        .groupby(["station", "seg"], sort=True).size().reset_index(name="n")
    pair_share = pair["n"].to_numpy(float) / snapshot[pair["seg"].to_numpy()]
    pair_station, pair_seg = pair["station"].to_numpy(), pair["seg"].to_numpy()
    n_st = len(st_index)
    hpu_group = prep.hours_per_unit.reindex(agg.group_service).to_numpy(float)
    on_offer = agg.arc_offer >= 0
    on_pool = agg.arc_pool >= 0
    charged = agg.arc_fund >= 0
    arcs_per_group = np.bincount(agg.arc_group, minlength=n_groups)
    seg_of_group_tier = tier_code.reindex(agg.group_tier).to_numpy()

    open_now = snapshot.copy()
    carried = np.zeros(n_seg)
    new = snapshot.copy()
    rollover = np.zeros(len(weekly))
    phi = np.zeros(n_seg)
    for k, week in enumerate(payload.weeks):  # weeks in order: each carries into the next
        if k > 0:
            carried = carry * np.maximum(open_now - phi, 0.0)
            new = arrival * snapshot
            open_now = carried + new
        model.set_demand(open_now)
        if len(model.hour_streets):
            left = np.maximum(street_hours - mon_hours[k], 0.0)
            model.set_supply(street_hours=dict(zip(model.hour_streets, left, strict=True)))
        available = weekly + rollover
        sol = model.solve(dict(zip(model.fund_ids, available, strict=True)))
        if sol.status != "optimal":
            raise RuntimeError(f"街镇 {street} 第 {week} 周求解失败 / street {street}, week "
                               f"{week}: {sol.message}")
        phi = np.minimum(sol.segment_filled, open_now)
        y = sol.arc_flow
        spend_arc = y * agg.arc_charge
        spent = np.bincount(agg.arc_fund[charged], weights=spend_arc[charged],
                            minlength=len(weekly))
        rollover = np.maximum(available - spent, 0.0)
        for f in np.flatnonzero((available > 0) | (spent > 0)):
            money_rows.append((k, model.fund_ids[f], float(available[f]), float(spent[f])))

        fill[k, :, 0] = np.bincount(seg_tier, weights=open_now, minlength=len(COLOURS))
        fill[k, :, 1] = np.bincount(seg_tier, weights=carried, minlength=len(COLOURS))
        fill[k, :, 2] = np.bincount(seg_tier, weights=new, minlength=len(COLOURS))
        fill[k, :, 3] = np.bincount(seg_tier, weights=phi, minlength=len(COLOURS))
        fill[k, :, 4] = np.bincount(seg_of_group_tier[agg.arc_group], weights=spend_arc,
                                    minlength=len(COLOURS))

        # Volunteer hours by station: served from pools, and in-person needs left open.
        served_units = np.bincount(agg.seg_group, weights=phi * agg.seg_quantity,
                                   minlength=n_groups)
        pool_units = np.bincount(agg.arc_group[on_pool], weights=y[on_pool],
                                 minlength=n_groups)
        pool_share = np.divide(pool_units, served_units, out=np.zeros(n_groups),
                               where=served_units > 1e-12)
        seg_hours = agg.seg_quantity * hpu_group[agg.seg_group]
        vol_seg = phi * seg_hours * pool_share[agg.seg_group]
        open_seg = np.maximum(open_now - phi, 0.0) * seg_hours  # left open after the week
        service_h[:, k] = np.bincount(pair_station, weights=pair_share * vol_seg[pair_seg],
                                      minlength=n_st)
        unserved_h[:, k] = np.bincount(pair_station, weights=pair_share * open_seg[pair_seg],
                                       minlength=n_st)

        # What limits each group with needs left open: the binding bound on each of its arcs.
        unserved = np.bincount(agg.seg_group, weights=np.maximum(open_now - phi, 0.0),
                               minlength=n_groups)
        used_offer = np.bincount(agg.arc_offer[on_offer], weights=y[on_offer],
                                 minlength=len(capacity))
        offer_full = used_offer >= capacity - _BINDING * np.maximum(capacity, 1.0)
        fund_full = spent >= available - _BINDING * np.maximum(available, 1.0)
        pool_full = np.zeros(len(model.pool_ids), bool)
        if len(model.pool_ids):
            bound = model.row_bounds("pool")
            pool_full = model.row_activity("pool", sol) >= bound - _BINDING * \
                np.maximum(bound, 1.0)
        if len(model.hour_streets):
            used = model.row_activity("street_hours", sol)
            pool_full |= bool((used >= left - _BINDING * np.maximum(left, 1.0)).any())
        reason = np.zeros((n_arcs, len(LIMITS)))
        names = list(LIMITS)
        reason[:, names.index("budget")] = charged & fund_full[np.maximum(agg.arc_fund, 0)]
        reason[:, names.index("capacity")] = on_offer & offer_full[np.maximum(agg.arc_offer, 0)]
        reason[:, names.index("volunteers")] = on_pool & pool_full[np.maximum(agg.arc_pool, 0)]
        reason[:, names.index("household_cap")] = on_offer & (
            y >= agg.arc_upper - _BINDING * np.maximum(agg.arc_upper, 1.0))
        none = reason.sum(axis=1) == 0
        reason[none, names.index("other")] = 1.0
        reason /= reason.sum(axis=1, keepdims=True)
        weight = unserved[agg.arc_group] / np.maximum(arcs_per_group[agg.arc_group], 1)
        colour_of_arc = seg_of_group_tier[agg.arc_group]
        for j in range(len(LIMITS)):
            limits[k, :, j] += np.bincount(colour_of_arc, weights=weight * reason[:, j],
                                           minlength=len(COLOURS))
        lonely = arcs_per_group == 0
        limits[k, :, names.index("no_supply")] += np.bincount(
            seg_of_group_tier[lonely], weights=unserved[lonely], minlength=len(COLOURS))


# ----------------------------------------------------------------------------- assembling


def _scope_streets(scenario: Scenario, centre: str | None) -> list[str]:
    """Streets of the plan: every street (or those under ``centre``) with households,
    needs or volunteers."""
    centres = scenario.centres
    h = scenario.hierarchy
    if centre is not None:
        known = centres.set_index("centre_id")["level"]
        if centre not in known.index:
            raise QuarterError(f"没有编号为 {centre!r} 的中心 / no centre with id {centre!r}")
        if known[centre] == "station":
            street = h.ancestor(np.array([centre]), "street")[0]
            raise QuarterError(
                f"季度计划的最小单位是街镇中心:{centre} 是站点,请改用其街镇 {street} / the "
                f"quarterly plan's smallest unit is a street centre: {centre} is a station; "
                f"give its street {street}")
    stations = pd.concat([scenario.households["station_id"], scenario.volunteers["station_id"]])
    streets = set(h.ancestor(stations.unique(), "street")) - {""}
    if centre is not None:
        streets &= set(h.subtree(centre))
    return sorted(streets)


def plan_quarter(scenario: Scenario, quarter: str, *, engine: str = "local",
                 address: str | None = None, workers: int | None = None,
                 centre: str | None = None,
                 progress: Callable[[int, int, str], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> QuarterPlan:
    """Plan a quarter: 13 weeks × every street, the streets in parallel on ``engine``.

    Parameters
    ----------
    scenario
        The validated scenario (its needs are the snapshot, its supply one week's).
    quarter
        ``"2027Q1"`` and the like (:func:`parse_quarter`).
    engine
        ``local`` (a process pool, the default) or ``ray``.
    address
        Ray: an existing cluster's address; without it a local Ray is started on demand (or
        the session already running in this process is used).
    workers
        Processes (local) or CPUs of a local Ray; default one per core.
    centre
        Plan only this centre's subtree (city, district or street). The budget split is
        always the whole network's, so a subtree's plan is exactly its part of the whole plan.
    progress
        ``progress(done, total, label)``, called as the split and each street finish.
    cancelled
        Polled between tasks; when it returns true the plan stops and raises
        :class:`Cancelled`.

    Returns
    -------
    QuarterPlan
        The tables (see the module docstring) and ``info``: quarter, weeks, engine, digest,
        policy, solver versions, wall time, per-task times and the serial share.

    Raises
    ------
    QuarterError
        For a quarter that cannot be read, or an unknown or station-level centre.
    Cancelled
        When ``cancelled()`` became true.
    planning.engines.EngineError
        When the engine cannot be started.
    """
    start = time.perf_counter()
    q = parse_quarter(quarter)
    cancelled = cancelled or (lambda: False)
    progress = progress or (lambda done, total, label: None)
    streets = _scope_streets(scenario, centre)
    total = len(streets) + 1
    progress(0, total, "预算拆分 / budget split")
    if cancelled():
        raise Cancelled()
    split = split_budget(scenario)
    split_seconds = time.perf_counter() - start
    progress(1, total, "预算拆分 / budget split")
    if cancelled():
        raise Cancelled()

    payload = _Payload(scenario, split, q.weeks, snapshot_week(scenario), uuid.uuid4().hex)
    # Longest first: streets with more needs start earlier, so no worker idles at the end.
    size = scenario.hierarchy.ancestor(scenario.households["station_id"].to_numpy(), "street")
    weight = pd.Series(size).value_counts()
    order = sorted(streets, key=lambda s: (-int(weight.get(s, 0)), s))
    done = [1]

    def on_done(result: TaskResult) -> None:
        done[0] += 1
        progress(done[0], total, f"街镇 street {result.key}")

    parallel_start = time.perf_counter()
    results, engine_info = run_tasks(_street_task, payload, order, engine=engine,
                                     address=address, workers=workers or default_workers(),
                                     on_done=on_done, cancelled=cancelled)
    parallel_seconds = time.perf_counter() - parallel_start
    assemble_start = time.perf_counter()
    tables = _assemble(scenario, split, q, streets, {k: r.value for k, r in results.items()})
    wall = time.perf_counter() - start
    task_seconds = np.array([results[s].seconds for s in streets])
    serial = wall - parallel_seconds
    info = {
        "kind": "quarter",
        "quarter": q.label, "weeks": list(q.weeks), "snapshot_week": payload.snapshot,
        "centre": centre, "engine": engine_info,
        "input_digest": scenario.digest,
        "policy": {"name": scenario.policy.name, "version": scenario.policy.version,
                   "digest": scenario.policy.digest(),
                   "quarter": scenario.policy.quarter.to_dict(),
                   "monitoring_weeks": dict(scenario.policy.monitoring_weeks)},
        "solver": {"name": "HiGHS (aggregated lexicographic LP, optimizer/budget)",
                   "versions": _versions(engine_info)},
        "split": split.network,
        "streets": len(streets),
        "seconds": {"wall": round(wall, 3), "split": round(split_seconds, 3),
                    "parallel": round(parallel_seconds, 3),
                    "assemble": round(time.perf_counter() - assemble_start, 3),
                    "serial": round(serial, 3)},
        "tasks": _task_stats(task_seconds),
        # Busy time of the busiest worker: what is left of the parallel phase is the engine's
        # own cost (starting workers, shipping the scenario, collecting results).
        "engine_overhead": round(parallel_seconds - max(_busy(results).values(), default=0.0),
                                 3),
        # Share of the wall time spent outside the parallel tasks, and the serial fraction
        # of the work as one worker would do it (Amdahl's s: serial ÷ (serial + Σ tasks)).
        "serial_share": round(serial / wall, 4) if wall > 0 else 0.0,
        "serial_fraction": round(serial / (serial + task_seconds.sum()), 4)
        if serial + task_seconds.sum() > 0 else 0.0,
    }
    return QuarterPlan(tables, info)


def _busy(results: dict) -> dict[int, float]:
    busy: dict[int, float] = {}
    for r in results.values():
        busy[r.pid] = busy.get(r.pid, 0.0) + r.seconds
    return busy


def _versions(engine_info: dict) -> dict[str, str]:
    out = {"highs": version("highspy"), "pandas": pd.__version__, "wulian": version("wulian")}
    if "ray" in engine_info:
        out["ray"] = engine_info["ray"]
    return out


def _task_stats(seconds: np.ndarray) -> dict:
    if not len(seconds):
        return {"count": 0}
    q = np.quantile(seconds, [0.0, 0.5, 0.9, 1.0])
    return {"count": int(len(seconds)), "sum": round(float(seconds.sum()), 3),
            "mean": round(float(seconds.mean()), 4), "min": round(float(q[0]), 4),
            "median": round(float(q[1]), 4), "p90": round(float(q[2]), 4),
            "max": round(float(q[3]), 4)}


def _assemble(scenario: Scenario, split: BudgetSplit, q: Quarter, streets: list[str],
              results: dict) -> dict[str, pd.DataFrame]:
    h = scenario.hierarchy
    weeks = np.array(q.weeks, dtype=object)
    n_weeks = len(weeks)
    district = dict(zip(streets, h.ancestor(np.array(streets, dtype=object), "district"),
                        strict=True))

    # money: week × street × fund
    parts = [results[s]["money"].assign(street_id=s) for s in streets]
    money = pd.concat(parts, ignore_index=True) if parts else \
        pd.DataFrame(columns=["week", "fund_id", "available", "planned", "street_id"])
    money = money.assign(week=weeks[money["week"].to_numpy(np.int64)],
                         district_id=money["street_id"].map(district))
    money = money[["week", "district_id", "street_id", "fund_id", "available", "planned"]] \
        .sort_values(["week", "street_id", "fund_id"]).reset_index(drop=True)
    money["available"] = money["available"].round(2)
    money["planned"] = money["planned"].round(2)

    # fill_rate: week × colour
    fill = sum((results[s]["fill"] for s in streets), np.zeros((n_weeks, len(COLOURS), 5)))
    mon = sum((results[s]["monitoring"] for s in streets), np.zeros((len(COLOURS), n_weeks)))
    rows = []
    for k in range(n_weeks):
        for c, colour in enumerate(COLOURS):
            open_, carried, new, served, spent = fill[k, c]
            rows.append((weeks[k], colour, TIER_ZH[colour], open_, carried, new, served,
                         served / open_ if open_ > 0 else np.nan, spent, int(mon[c, k])))
    fill_rate = pd.DataFrame(rows, columns=["week", "colour", "colour_zh", "open_needs",
                                            "carried_needs", "new_needs", "served_needs",
                                            "fill_rate", "money", "monitoring_visits"])
    for col in ("open_needs", "carried_needs", "new_needs", "served_needs"):
        fill_rate[col] = fill_rate[col].round(6)
    fill_rate["fill_rate"] = fill_rate["fill_rate"].round(8)
    fill_rate["money"] = fill_rate["money"].round(2)

    # volunteers: per station over the quarter
    st = pd.concat([results[s]["stations"].assign(street_id=s) for s in streets],
                   ignore_index=True) if streets else pd.DataFrame(
        columns=["station_id", "week", "volunteers", "available", "monitoring_visits",
                 "monitoring_hours", "service_hours", "open_hours", "street_id"])
    # A week needs the hours of its monitoring and of every in-person need open in it (those
    # served and those left open); the quarter needs its monitoring, what was served, and
    # what is still open at its end (a need left open is counted once, not once a week).
    st["week_needed"] = st["monitoring_hours"] + st["service_hours"] + st["open_hours"]
    st["week_gap"] = (st["week_needed"] - st["available"]).clip(lower=0.0)
    st = st.sort_values(["street_id", "station_id", "week"], kind="stable")
    vol = st.groupby(["street_id", "station_id"], sort=True).agg(
        volunteers=("volunteers", "first"), weekly_available=("available", "first"),
        available=("available", "sum"), monitoring_visits=("monitoring_visits", "sum"),
        monitoring_hours=("monitoring_hours", "sum"), service_hours=("service_hours", "sum"),
        unserved_hours=("open_hours", "last"),
        gap_weeks=("week_gap", lambda g: int((g > 1e-9).sum())),
        peak_week_gap=("week_gap", "max")).reset_index()
    vol["needed"] = vol["monitoring_hours"] + vol["service_hours"] + vol["unserved_hours"]
    vol["gap"] = (vol["needed"] - vol["available"]).clip(lower=0.0)
    vol.insert(0, "district_id", vol["street_id"].map(district))
    vol["volunteers"] = vol["volunteers"].astype(np.int64)
    vol["monitoring_visits"] = vol["monitoring_visits"].round().astype(np.int64)
    for col in ("weekly_available", "available", "monitoring_hours", "service_hours",
                "unserved_hours", "needed", "gap", "peak_week_gap"):
        vol[col] = vol[col].round(4)
    vol = vol[["district_id", "street_id", "station_id", "volunteers", "weekly_available",
               "available", "monitoring_visits", "monitoring_hours", "service_hours",
               "unserved_hours", "needed", "gap", "gap_weeks", "peak_week_gap"]]

    # funds: per fund over the quarter
    f = scenario.funds.set_index("fund_id")
    in_scope = split.funds[split.funds["street_id"].isin(streets)]
    allotted = in_scope.groupby("fund_id")["budget"].sum() * n_weeks
    planned = money.groupby("fund_id")["planned"].sum()
    funds = pd.DataFrame({"fund_id": f.index, "name": f["name"].to_numpy(),
                          "source": f["source"].to_numpy(), "centre_id": f["centre_id"].to_numpy(),
                          "weekly_budget": f["budget"].to_numpy(float)})
    funds["quarter_budget"] = (funds["weekly_budget"] * n_weeks).round(2)
    funds["allotted"] = funds["fund_id"].map(allotted).fillna(0.0).round(2).to_numpy()
    funds["planned"] = funds["fund_id"].map(planned).fillna(0.0).round(2).to_numpy()
    funds["left"] = (funds["allotted"] - funds["planned"]).round(2)
    funds["share"] = np.divide(funds["planned"], funds["quarter_budget"],
                               out=np.zeros(len(funds)),
                               where=funds["quarter_budget"].to_numpy() > 0).round(6)

    limits = sum((results[s]["limits"] for s in streets),
                 np.zeros((n_weeks, len(COLOURS), len(LIMITS))))
    explanation = _explanation(fill, limits)
    return {"money": money, "volunteers": vol, "fill_rate": fill_rate, "funds": funds,
            "explanation": explanation}


TIER_ZH = {code: zh for code, (zh, _) in vocab.TIERS.items()}


def _explanation(fill: np.ndarray, limits: np.ndarray) -> pd.DataFrame:
    """Per colour over the quarter: needs (each counted once, in the week it opens: the
    snapshot's and the new ones), served, still open at the end, and the share of the unserved
    need-weeks each limit accounts for; the main limit and one sentence in Chinese and
    English."""
    rows = []
    names = list(LIMITS)
    for c, colour in enumerate(COLOURS):
        open_ = float(fill[:, c, 2].sum())  # needs that opened during the quarter
        served = float(fill[:, c, 3].sum())
        unserved = max(float(fill[-1, c, 0] - fill[-1, c, 3]), 0.0)  # still open at the end
        by = limits[:, c, :].sum(axis=0)
        total = by.sum()
        share = by / total if total > 1e-9 else np.zeros(len(names))
        rate = served / open_ if open_ > 0 else float("nan")
        zh, en = vocab.TIERS[colour]
        if open_ <= 0:
            main = ""
            text_zh, text_en = f"{zh}:本季度无需求", f"{en}: no needs this quarter"
        elif total <= 1e-9 or unserved <= 1e-6 * open_:
            main = ""
            text_zh = f"{zh}:满足率 {pct(rate)},需求全部满足"
            text_en = f"{en}: fill rate {pct(rate)}, every need served"
        else:
            order = np.argsort(-share, kind="stable")
            main = names[order[0]]
            top = [i for i in order[:2] if share[i] >= 0.1]
            text_zh = f"{zh}:满足率 {pct(rate)},季末仍有 {count(round(unserved))} 项未满足," \
                "主要受限于" \
                + "、".join(f"{LIMITS[names[i]][0]}({pct(share[i], 0)})" for i in top)
            text_en = f"{en}: fill rate {pct(rate)}, {count(round(unserved))} needs still open " \
                "at the end, " \
                "limited mostly by " + " and ".join(
                    f"{LIMITS[names[i]][1]} ({pct(share[i], 0)})" for i in top)
        rows.append({"colour": colour, "colour_zh": zh, "needs": round(open_, 4),
                     "served_needs": round(served, 4), "open_at_end": round(unserved, 4),
                     "fill_rate": round(rate, 6) if open_ > 0 else np.nan,
                     **{f"share_{n}": round(float(share[i]), 6) for i, n in enumerate(names)},
                     "main_limit": main, "summary_zh": text_zh, "summary_en": text_en})
    return pd.DataFrame(rows)
