"""Budget lab (预算实验室): the weekly allocation aggregated small enough for a slider.

The model is ``docs/model.md`` §1 — same arcs, same rows, same lexicographic colour levels and
then least money — with the needs aggregated and solved as a linear programme with HiGHS
(``highspy``). Each level's LP is built once (see "Solving a level" below); a new budget or
equity dial changes only bounds, and each level starts from its optimal basis in the baseline
solve made at build time, so a slider's re-solve is a warm start of a few simplex iterations —
or none, where that basis is still optimal.

What is aggregated, and why it is a relaxation
----------------------------------------------
Needs are grouped by **street centre × service × colour × admissibility signature**. The
signature is the set of offers the need may use (coverage, categories, colour, the paying
fund's reach and earmark: exactly the arcs of the exact model). The street fixes the volunteer
pool (pools are per street × service) and is the unit of the equity dial. So every need of a
group has the very same sources: a group's arcs are the exact model's arcs with the need
replaced by the group, and nothing about *who may serve whom* is lost.

Inside a group, needs are split into **segments** of one urgency and one quantity: such needs
are interchangeable. A segment's variable ``φ`` counts fully served needs (the sum of their
served fractions, ``0 ≤ φ ≤ needs in the segment``) and uses ``φ × q`` units, ``q`` their
quantity; its weight in a colour level is its urgency. The LP serves the segments of highest
urgency ÷ quantity first, so a group's value is exactly the LP value of its needs (the exact
model's objective, not an approximation of it), and each segment's fill is the fill of each of
its needs.

What the aggregation relaxes (every relaxed row is implied by the exact model's rows, so the
aggregate's optimum is never worse than the exact one):

- **integrality**: units and cents are continuous;
- **per-household caps** become group caps: an offer's ``max_per_household`` bounds a group's
  units by ``cap × households in the group`` (and each need's arc by ``min(q, cap)``); a fund's
  ``max_per_household`` bounds what the group's offers charging it spend by ``cap × households
  in the group``. A household whose needs fall in several groups (several services) shares the
  cap across them in the exact model, not here;
- **pins** (coordinators' weekly decisions) are not budget questions and are left out;
- the later levels of the weekly run (travel, continuity) decide nothing about coverage or
  money and are left out.

So the colour values satisfy: aggregate ≥ exact lexicographically (the red value is ≥ the
exact red value; a later colour can come out lower only when an earlier one came out higher);
with one need per group and no household holding two needs that share a capped offer or fund,
the aggregate *is* the exact model's LP relaxation (equal values).

Levels
------
Red, orange, yellow and green coverage (Σ urgency × served ÷ needed over the colour's needs),
each maximised, then money (yuan charged to funds) minimised. A solved level is held by
restricting the model to its optimal face rather than by a "value ≥ optimum − tolerance" row:
by complementary slackness with the level's optimal duals, every optimal solution has each
column of non-zero reduced cost at its bound and each row of non-zero dual at its bound, so
fixing exactly those keeps every optimum and nothing else. That is exact, keeps the model
sparse (a dense value row made the city's later levels ten times slower), and leaves no
tolerance for a later colour to buy: with weights per yuan that differ by orders of magnitude
between needs, a relative tolerance of 10⁻⁷ on red could otherwise buy whole units of orange.

Solving a level
---------------
A level does not need the whole model (:class:`_View`): a segment enters it only through its
group's row (and, if red, the equity dial's rows), and a colour's objective weighs only its own
segments. So each level is solved in an LP with the arcs and its own colour's segments only
(money: the arcs), the other groups held by their rows' bounds (Σ q × lower ≤ Σ arcs ≤ Σ q ×
upper of their segments: the exact projection), and its optimal face carried back to the whole
model. On the city that is a third of the columns, and HiGHS' cost even for a run of no pivot
grows with them. Each level's LP keeps the optimal basis it had in the baseline solve; a solve
first checks whether that basis is still optimal with the bounds as they stand (its duals do not
depend on bounds, its basic values take one solve with the basis) and takes the answer from it
if so, else runs HiGHS from it. Either way the answer depends on the inputs alone, not on what
was solved before. Segments a level's LP left out are rebuilt from their group's units in the
end (see ``BudgetModel._assemble``).

Marginal values
---------------
For each fund, the dual of its budget row at the first colour level where it is non-zero is the
gain in that level's objective (Σ urgency × served ÷ needed) per yuan. It is also given in
fill-rate points per ¥10,000 (fill rate: the mean served fraction over the colour's needs;
points: percentage points): one more yuan moves the level's basic columns by ``B⁻¹ e_f``, and
the colour's filled needs by ``1_Pᵀ B⁻¹ e_f`` (``P``: the colour's basic segments), read for
every fund at once from one transposed solve with the basis matrix. Both are exact for budget
changes that keep the level's optimal basis (the tests check them against finite differences).

Equity dial
-----------
``EquityDial(floor=F)``: every street's red fill rate ≥ ``F``. A street that cannot reach ``F``
even with everything that may serve it (its red needs alone against all capacities and
budgets: ``max_alone``, from one LP whose blocks are the streets) is held to ``max_alone``
instead, and said so (``reason = cannot_reach_alone``). When the streets' floors cannot all be
met together (they share supply), the largest shortfall below a floor is minimised first, and
every street is held to its floor less that shortfall (``shared_supply``), so the model is
never infeasible.
``EquityDial(deviation=D)``: every street's red fill rate within ``D`` of the city-wide red fill
rate; a street that cannot reach ``city − D`` alone may stay below by what it lacks against the
undialled city rate (one street cannot level everyone down by itself).
The price of fairness (:func:`price_of_fairness`) is what the dial costs against the same
budgets without it: weighted coverage per colour, fill-rate points and money.

Pure: DataFrames and arrays in, results out; no files, no database, no UI.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import highspy
import numpy as np
import pandas as pd

from wulian.optimizer.allocation import (
    TIER_LEVELS,
    AllocationInput,
    add_volunteer_hour_rows,
    hours_per_unit,
    offer_table,
    prepare_needs,
    street_volunteer_hours,
    volunteer_pools,
)
from wulian.optimizer.eligibility import (
    arc_upper,
    fund_household_units,
    offer_arcs,
    offer_household_units,
    pool_of,
)
from wulian.optimizer.lexmip import Rows, csr, new_highs
from wulian.optimizer.status import Status

RED = TIER_LEVELS[0]
DUAL_TOLERANCE = 1e-9  # a dual smaller than this is "does not matter at this level"
POINTS_PER_10K = 1e4 * 100  # fraction per yuan → percentage points per ¥10,000
# A level's bound (BudgetModel.level_bounds) holds each earlier colour at its reached value
# less this, relative to max(1, |value|). Any slack ≥ 0 keeps the bound a bound (it only
# loosens it); this one only keeps the rounding of a float sum from making the LP infeasible.
# lexmip's hold (10⁻⁷, capped by 0.1 × the smallest weight) is for holding a level while the
# next is searched; as a bound's slack it let an earlier colour's tolerance buy a later one
# (weights per unit differ by up to 10⁶ between a cash need and a visit): on a small
# scenario whose yellow is 0 with nothing left to give, its bound came out 2·10⁻⁶, not 0.
BOUND_SLACK = 1e-9
_INF = highspy.kHighsInf


# ----------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class EquityDial:
    """The equity dial: a floor on every street's red fill rate, or a bound on its deviation
    from the city-wide red fill rate (at most one of the two; neither means the dial is off).

    Attributes
    ----------
    floor
        ``F`` in [0, 1]: each street's red fill rate ≥ F (capped at what the street can reach).
    deviation
        ``D`` in [0, 1]: |street red fill rate − city red fill rate| ≤ D.
    """

    floor: float | None = None
    deviation: float | None = None

    def __post_init__(self) -> None:
        if self.floor is not None and self.deviation is not None:
            raise ValueError("the equity dial takes a floor or a deviation, not both")
        for name in ("floor", "deviation"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"equity {name} must lie in [0, 1], not {value}")

    @property
    def active(self) -> bool:
        return self.floor is not None or self.deviation is not None

    def describe(self) -> str:
        if self.floor is not None:
            return f"red floor {self.floor:.0%}"
        if self.deviation is not None:
            return f"red deviation ≤ {self.deviation:.0%}"
        return "off"


@dataclass
class BudgetSolution:
    """One solve of the budget lab.

    Attributes
    ----------
    colours
        One row per colour: ``colour, needs, value`` (Σ urgency × served ÷ needed),
        ``max_value`` (every need served), ``fill_rate`` (mean served fraction).
    funds
        One row per fund: ``fund_id, budget, used, left, marginal_value`` (level value per
        yuan), ``marginal_level`` (the colour where it first matters, "" when nowhere),
        ``points_per_10k`` (that colour's fill rate, percentage points per ¥10,000).
    groups
        One row per street × service × colour: ``street_id, service_id, colour, needs,
        needed, served`` (units), ``filled`` (Σ served fractions), ``fill_rate, money``.
    streets
        One row per street with red needs: ``street_id, red_needs, fill_rate`` (red),
        ``floor`` (the lower bound the dial held it to, NaN when off), ``max_alone`` (its red
        fill rate with everything that may serve it; NaN when the dial is off), ``capped``
        (the dial's full requirement could not be held there) and ``reason``
        (``cannot_reach_alone``, ``shared_supply`` or "").
    money
        Yuan charged to funds.
    equity
        The dial this solution was solved with.
    price_of_fairness
        With the dial on: :func:`price_of_fairness` against the same budgets without it.
    status
        ``optimal``, or ``error`` with ``message``.
    seconds
        Wall time of the solve (every level, and the undialled solve when the dial is on).
    shortfall
        Floor dial: the largest shortfall below a street's floor the streets had to share
        (0 when every floor is met).
    message
        What went wrong, when ``status`` is ``error``.
    segment_filled, arc_flow
        The solution's columns: fully served needs per segment (φ) and units per group arc,
        in the model's order (``BudgetModel.agg``), for callers that aggregate differently.
    """

    colours: pd.DataFrame
    funds: pd.DataFrame
    groups: pd.DataFrame
    streets: pd.DataFrame
    money: float
    equity: EquityDial
    price_of_fairness: pd.DataFrame | None
    status: str
    seconds: float
    shortfall: float = 0.0
    message: str = ""
    segment_filled: np.ndarray | None = None
    arc_flow: np.ndarray | None = None

    def fill_rates(self) -> pd.Series:
        """Fill rate per colour, indexed by colour in priority order."""
        return self.colours.set_index("colour")["fill_rate"]

    def values(self) -> pd.Series:
        """Level value per colour (Σ urgency × served ÷ needed)."""
        return self.colours.set_index("colour")["value"]


# ----------------------------------------------------------------------------- the aggregate


@dataclass
class _Aggregate:
    """Columns and their meaning; the LP's columns are segments, group arcs, the equity
    dial's largest shortfall and the city red fill rate, in that order."""

    # segments
    seg_group: np.ndarray
    seg_urgency: np.ndarray
    seg_needs: np.ndarray  # needs in the segment (upper bound of φ)
    seg_quantity: np.ndarray  # units one need of the segment counts for
    # groups (street × service × colour × signature)
    group_street: np.ndarray
    group_service: np.ndarray
    group_tier: np.ndarray
    group_needed: np.ndarray  # units the group's needs ask for (true quantities)
    group_households: np.ndarray  # distinct households with a need in the group
    # group arcs
    arc_group: np.ndarray
    arc_offer: np.ndarray  # -1 for a pool arc
    arc_pool: np.ndarray  # -1 for an offer arc
    arc_fund: np.ndarray  # -1 when nothing is charged
    arc_charge: np.ndarray  # yuan per unit charged to the fund
    arc_upper: np.ndarray
    # streets with red needs (the equity dial's rows)
    red_streets: np.ndarray
    red_street_needs: np.ndarray
    # What BudgetModel.set_demand needs to rescale the bounds when the number of needs in each
    # segment changes: the segment of each need (in prepare_needs order); each (segment, offer
    # arc) pair with the bound one need of the segment has on the arc; each offer arc's units
    # per household (offer and fund household caps; inf when none).
    need_segment: np.ndarray | None = None
    pair_arc: np.ndarray | None = None
    pair_segment: np.ndarray | None = None
    pair_bound: np.ndarray | None = None
    arc_household_units: np.ndarray | None = None

    @property
    def n_segments(self) -> int:
        return len(self.seg_group)

    @property
    def n_arcs(self) -> int:
        return len(self.arc_group)

    @property
    def n_cols(self) -> int:
        return self.n_segments + self.n_arcs + 2


def _signature(n_needs: int, arc_need: np.ndarray, arc_offer: np.ndarray, n_offers: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes per need of the set of offers it may use (XOR of a random key per
    offer): needs with equal hashes have the same arcs, up to a 2⁻¹²⁸ chance."""
    rng = np.random.default_rng(20260)  # fixed: the same input always groups the same way
    keys = rng.integers(1, np.iinfo(np.int64).max, size=(2, max(n_offers, 1)), dtype=np.int64)
    out = []
    for key in keys:
        h = np.zeros(n_needs, np.int64)
        if len(arc_need):
            order = np.argsort(arc_need, kind="stable")
            need_sorted = arc_need[order]
            starts = np.flatnonzero(np.r_[True, need_sorted[1:] != need_sorted[:-1]])
            h[need_sorted[starts]] = np.bitwise_xor.reduceat(key[arc_offer[order]], starts)
        out.append(h)
    return out[0], out[1]


def _codes(values: np.ndarray, sort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(code of each value, the distinct values): with ``sort``, the values sorted and the
    codes in their order, so sorting by code sorts by value (as a groupby on the values
    themselves would); else in order of first appearance (cheaper)."""
    codes, uniques = pd.factorize(np.asarray(values), sort=sort)
    return codes.astype(np.int64), np.asarray(uniques)


def _aggregate(data: AllocationInput, needs: pd.DataFrame, offers: pd.DataFrame,
               funds: pd.DataFrame, pools: pd.DataFrame) -> tuple[_Aggregate, dict]:
    """Group the needs and their arcs (see the module docstring)."""
    h = data.hierarchy
    n = len(needs)
    scale = needs["scale"].to_numpy(float)
    q = needs["base_quantity"].to_numpy(float) / scale  # the exact model's quantity, unscaled
    # Ids as integer codes, in the ids' sort order where that orders the groups (a groupby on
    # the strings themselves was a good part of the city's build); streets looked up once per
    # station.
    station, stations = _codes(needs["station_id"].to_numpy(), sort=False)
    street_code, streets = _codes(h.ancestor(stations, "street"))
    street_code = street_code[station]
    street = streets[street_code]
    service_code, services = _codes(needs["service_id"].to_numpy())
    service = services[service_code]
    tier_code, tiers = _codes(needs["tier"].to_numpy())
    tier = tiers[tier_code]

    admissible = offer_arcs(needs, offers, funds, h)  # need by need
    n_i, o_i, f_i = admissible.need, admissible.offer, admissible.fund
    h1, h2 = _signature(n, n_i, o_i, len(offers))
    group_of = pd.DataFrame({"street": street_code, "service": service_code, "tier": tier_code,
                             "h1": h1, "h2": h2}).groupby(["street", "service", "tier", "h1",
                                                           "h2"], sort=True)
    group = group_of.ngroup().to_numpy()
    n_groups = group_of.ngroups
    first = np.unique(group, return_index=True)[1]  # one need standing for each group

    # Segments: one urgency × one quantity inside a group (their needs are interchangeable).
    seg_of = pd.DataFrame({"group": group, "urgency": needs["urgency"].to_numpy(),
                           "quantity": q}).groupby(["group", "urgency", "quantity"], sort=True)
    segment = seg_of.ngroup().to_numpy()
    n_seg = seg_of.ngroups
    seg_needs = np.bincount(segment, minlength=n_seg).astype(float)
    seg_quantity = np.zeros(n_seg)
    seg_quantity[segment] = q
    seg_group = np.zeros(n_seg, np.int64)
    seg_group[segment] = group
    seg_urgency = np.zeros(n_seg, float)
    seg_urgency[segment] = needs["urgency"].to_numpy(float)

    # Households per group: the per-household caps become group caps.
    household = _codes(needs["household_id"].to_numpy(), sort=False)[0]
    group_households = np.bincount(
        np.unique(group * (household.max(initial=0) + 1) + household) //
        (household.max(initial=0) + 1), minlength=n_groups).astype(float)

    # Offer arcs: each need's bound min(q, offer's household cap, fund's household cap ÷ cost)
    # summed over the group, and at most cap × households.
    cost = offers["unit_cost"].to_numpy(float)
    cap_offer = offers["base_cap_household"].to_numpy(float) / offers["scale"].to_numpy(float)
    cap_fund = funds["max_per_household"].to_numpy(float) if len(funds) else np.zeros(0)
    per_need = arc_upper(q[n_i], offer_household_units(offers, base_units=False)[o_i],
                         fund_household_units(funds, f_i, cost[o_i]))
    arcs = pd.DataFrame({"group": group[n_i], "offer": o_i, "upper": per_need}) \
        .groupby(["group", "offer"], sort=True)["upper"].sum().reset_index()
    a_group = arcs["group"].to_numpy()
    a_offer = arcs["offer"].to_numpy()
    upper = arcs["upper"].to_numpy(float)
    upper = np.minimum(upper, np.where(np.isnan(cap_offer[a_offer]), np.inf,
                                       cap_offer[a_offer] * group_households[a_group]))
    offer_fund = pd.Series(f_i).groupby(o_i).first()
    a_fund = offer_fund.reindex(a_offer).fillna(-1).to_numpy(np.int64)
    a_charge = np.where(a_fund >= 0, cost[a_offer], 0.0)
    has_fund_cap = a_fund >= 0
    fcap = np.full(len(a_group), np.inf)
    fcap[has_fund_cap] = cap_fund[a_fund[has_fund_cap]] * group_households[a_group[has_fund_cap]]
    fcap = np.where(np.isnan(fcap), np.inf, fcap)
    upper = np.minimum(upper, np.where(a_charge > 0, fcap / np.maximum(a_charge, 1e-300),
                                       np.inf))
    # Units one household may take on each offer arc: the offer's cap and its fund's.
    hh_units = np.minimum(offer_household_units(offers, base_units=False)[a_offer],
                          fund_household_units(funds, a_fund, a_charge))
    # Each (segment, offer arc) pair: one need of the segment may take per_need on the arc
    # (the same for every need of the segment: one quantity, one offer).
    pairs = pd.DataFrame({"seg": segment[n_i], "offer": o_i, "bound": per_need}) \
        .groupby(["seg", "offer"], sort=True)["bound"].first().reset_index()
    arc_index = pd.Series(np.arange(len(a_group)),
                          index=pd.MultiIndex.from_arrays([a_group, a_offer]))
    pair_arc = arc_index.reindex(pd.MultiIndex.from_arrays(
        [seg_group[pairs["seg"].to_numpy()], pairs["offer"].to_numpy()])).to_numpy(np.int64)

    # Pool arcs: the group's street × service pool, bounded by what the group asks.
    group_q = np.bincount(group, weights=q, minlength=n_groups)
    pool_of_group = pool_of(pools, street[first], service[first])
    p_groups = np.flatnonzero(pool_of_group >= 0)
    p_pool = pool_of_group[p_groups]

    red = tier[first] == RED
    red_needs = pd.Series(np.bincount(group, minlength=n_groups).astype(float)[red]) \
        .groupby(street[first][red]).sum()
    agg = _Aggregate(
        seg_group=seg_group, seg_urgency=seg_urgency, seg_needs=seg_needs,
        seg_quantity=seg_quantity,
        group_street=street[first], group_service=service[first], group_tier=tier[first],
        group_needed=group_q, group_households=group_households,
        arc_group=np.concatenate([a_group, p_groups]).astype(np.int64),
        arc_offer=np.concatenate([a_offer, np.full(len(p_groups), -1)]).astype(np.int64),
        arc_pool=np.concatenate([np.full(len(a_group), -1), p_pool]).astype(np.int64),
        arc_fund=np.concatenate([a_fund, np.full(len(p_groups), -1)]).astype(np.int64),
        arc_charge=np.concatenate([a_charge, np.zeros(len(p_groups))]),
        arc_upper=np.concatenate([upper, group_q[p_groups]]),
        red_streets=red_needs.index.to_numpy(), red_street_needs=red_needs.to_numpy(float),
        need_segment=segment, pair_arc=pair_arc, pair_segment=pairs["seg"].to_numpy(np.int64),
        pair_bound=pairs["bound"].to_numpy(float), arc_household_units=hh_units,
    )
    sizes = {"needs": n, "groups": n_groups, "segments": n_seg, "arcs": agg.n_arcs,
             "exact_arcs": len(n_i) + int(np.isin(group, p_groups).sum()),
             "offers": len(offers), "funds": len(funds), "pools": len(pools)}
    return agg, sizes


# ----------------------------------------------------------------------------- the model


@dataclass
class _Layout:
    """Where each family of columns and rows sits."""

    seg: slice
    arc: slice
    short: int  # the equity dial's largest shortfall below a floor
    city: int
    rows: Rows

    def family(self, name: str) -> slice:
        return self.rows.family(name)


class BudgetModel:
    """The aggregated allocation, built once, re-solved with new budgets and equity dials.

    Build it with :func:`build_budget_model`. :meth:`solve` changes only bounds of each
    level's LP (a :class:`_View`, one HiGHS instance each) and starts each level from that
    level's optimal basis in the baseline solve made at build time: a slider's re-solve is a
    warm start of a few simplex iterations (none where the basis is still optimal), and equal
    inputs give equal answers whatever was solved before.
    """

    def __init__(self, agg: _Aggregate, funds: pd.DataFrame, offers: pd.DataFrame,
                 pools: pd.DataFrame, rows: Rows, layout: _Layout, sizes: dict, *,
                 threads: int, seed: int, time_limit: float):
        self.agg = agg
        self.fund_ids = funds["fund_id"].to_numpy()
        self.offer_ids = offers["offer_id"].to_numpy()
        self.pool_ids = pools["pool_id"].to_numpy() if len(pools) else np.zeros(0, object)
        self.pool_hours_per_unit = (pools["hours_per_unit"].to_numpy(float) if len(pools)
                                    else np.zeros(0))
        # Street of each street_hours row and its hours (set by build_budget_model).
        self.hour_streets = np.zeros(0, object)
        self.street_hours = np.zeros(0)
        self._base_households = agg.group_households.copy()
        self._base_group_needs = np.bincount(agg.seg_group, weights=agg.seg_needs,
                                             minlength=len(agg.group_street))
        self.base_budgets = pd.Series(funds["budget"].to_numpy(float), index=self.fund_ids,
                                      name="budget")
        self.sizes = sizes
        self.build_seconds = 0.0
        self._layout = layout
        self._rows = rows
        self._time_limit = time_limit
        self._threads, self._seed = threads, seed
        n = agg.n_cols
        self._col_lo = np.zeros(n)
        self._col_hi = np.concatenate([agg.seg_needs, agg.arc_upper, [0.0, 1.0]])
        self._row_lo = np.concatenate(rows.lower) if rows.lower else np.zeros(0)
        self._row_hi = np.concatenate(rows.upper) if rows.upper else np.zeros(0)
        fund = layout.family("fund")
        self._fund_rows = np.arange(fund.start, fund.stop, dtype=np.int32)
        self._objectives = self._level_costs()
        # The whole matrix once, row by row (what every level's view is cut from).
        _, col, val, row = csr(rows, n)
        self._coo = (row, col.astype(np.int64), val)
        # Each level's LP (a view of the model, see _View), by the colours whose segments it
        # keeps and whether the equity dial is on. The dial-off views are built and solved by
        # the baseline solve (whose bases start every later solve); the dial's on demand.
        self._views: dict[tuple, _View] = {}
        self._baseline_done = False
        self._alone: _AloneModel | None = None
        self._prepare_reports()

    def _level_costs(self) -> dict[str, np.ndarray]:
        agg, lay = self.agg, self._layout
        n = agg.n_cols
        costs = {}
        seg_tier = agg.group_tier[agg.seg_group]
        for t in TIER_LEVELS:
            c = np.zeros(n)
            c[lay.seg] = np.where(seg_tier == t, agg.seg_urgency, 0.0)
            costs[t] = c
        costs["money"] = np.zeros(n)
        costs["money"][lay.arc] = agg.arc_charge
        costs["equity"] = np.zeros(n)
        costs["equity"][lay.short] = 1.0
        return costs

    def _prepare_reports(self) -> None:
        """Everything the result tables need that does not change between solves."""
        agg = self.agg
        report = pd.DataFrame({"street_id": agg.group_street, "service_id": agg.group_service,
                               "colour": agg.group_tier})
        keys = report.groupby(["street_id", "service_id", "colour"], sort=True)
        self._report_of_group = keys.ngroup().to_numpy()
        self._report = keys.size().reset_index()[["street_id", "service_id", "colour"]]
        tier_code = pd.Series(np.arange(len(TIER_LEVELS)), index=list(TIER_LEVELS))
        self._seg_tier = tier_code.reindex(agg.group_tier[agg.seg_group]).to_numpy()
        street_code = pd.Series(np.arange(len(agg.red_streets)), index=agg.red_streets)
        self._red_seg = np.flatnonzero(self._seg_tier == 0)
        self._red_seg_street = street_code.reindex(
            agg.group_street[agg.seg_group[self._red_seg]]).to_numpy().astype(np.int64)
        self._count_reports()

    def _count_reports(self) -> None:
        """The needs counted into the result tables (again after :meth:`set_demand`)."""
        agg = self.agg
        n_rep = len(self._report)
        seg_report = self._report_of_group[agg.seg_group]
        self._report["needs"] = np.bincount(seg_report, weights=agg.seg_needs,
                                            minlength=n_rep).round().astype(np.int64)
        self._report["needed"] = np.bincount(self._report_of_group, weights=agg.group_needed,
                                             minlength=n_rep)
        self._tier_needs = np.bincount(self._seg_tier, weights=agg.seg_needs,
                                       minlength=len(TIER_LEVELS))
        self._tier_max = np.bincount(self._seg_tier, weights=agg.seg_needs * agg.seg_urgency,
                                     minlength=len(TIER_LEVELS))

    # -- demand and supply ------------------------------------------------------------------

    def set_demand(self, seg_needs: np.ndarray) -> None:
        """Put a new number of needs in each segment (fractional counts allowed: expected
        needs), for what-if demand such as the quarterly plan's weeks.

        Everything that counts needs follows: φ's bounds, each group's units, each offer arc's
        bound (Σ over its segments of needs × one need's bound, and at most the household cap
        × the group's households, which scale with the group's needs), the group × fund
        household-cap rows, the colour totals and the red fill-rate rows of the equity dial.
        The model's structure (groups, arcs, rows) stays; each solve still starts from the
        baseline's bases.

        Parameters
        ----------
        seg_needs
            Needs per segment, in ``agg`` order, each ≥ 0.

        Raises
        ------
        ValueError
            When the length is wrong or a count is negative or not finite.
        """
        agg, lay = self.agg, self._layout
        seg_needs = np.asarray(seg_needs, float)
        if seg_needs.shape != agg.seg_needs.shape or not np.all(np.isfinite(seg_needs)) \
                or (seg_needs < 0).any():
            raise ValueError("seg_needs: one finite count ≥ 0 per segment")
        n_groups = len(agg.group_street)
        group_needs = np.bincount(agg.seg_group, weights=seg_needs, minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(self._base_group_needs > 0, group_needs / self._base_group_needs,
                             0.0)
        old_households = agg.group_households
        agg.seg_needs = seg_needs.copy()
        agg.group_households = self._base_households * ratio
        agg.group_needed = np.bincount(agg.seg_group, weights=seg_needs * agg.seg_quantity,
                                       minlength=n_groups)
        upper = agg.arc_upper.copy()
        offer_arc = agg.arc_offer >= 0
        n_offer_arcs = int(offer_arc.sum())  # offer arcs come first, then pool arcs
        offer_upper = np.bincount(agg.pair_arc, weights=seg_needs[agg.pair_segment]
                                  * agg.pair_bound, minlength=n_offer_arcs)
        with np.errstate(invalid="ignore"):
            hh_cap = agg.arc_household_units * agg.group_households[agg.arc_group[:n_offer_arcs]]
        upper[:n_offer_arcs] = np.minimum(offer_upper, np.where(np.isnan(hh_cap), np.inf,
                                                                hh_cap))
        upper[n_offer_arcs:] = agg.group_needed[agg.arc_group[n_offer_arcs:]]
        agg.arc_upper = upper
        self._col_hi[lay.seg] = seg_needs
        self._col_hi[lay.arc] = upper
        # Group × fund household caps: cap × households, so they follow the households.
        try:
            gf = lay.family("group_fund")
        except KeyError:
            gf = None
        if gf is not None and gf.stop > gf.start:
            i = [k for k, (name, _, _) in enumerate(self._rows.names) if name == "group_fund"][0]
            row, col = self._rows.row[i], self._rows.col[i]
            group_of_row = pd.Series(agg.arc_group[col - lay.arc.start]).groupby(row).first()
            old = old_households[group_of_row.to_numpy()]
            new = agg.group_households[group_of_row.to_numpy()]
            hi = self._row_hi[group_of_row.index.to_numpy()]
            with np.errstate(invalid="ignore", divide="ignore"):
                scaled = np.where(old > 0, hi * new / old, 0.0)
            self._row_hi[group_of_row.index.to_numpy()] = scaled
        # Red totals: the city and street red fill-rate rows' weights are 1 ÷ red needs.
        seg_tier = agg.group_tier[agg.seg_group]
        red = np.flatnonzero(seg_tier == RED)
        street_code = pd.Series(np.arange(len(agg.red_streets)), index=agg.red_streets)
        red_street = street_code.reindex(agg.group_street[agg.seg_group[red]]).to_numpy() \
            .astype(np.int64) if len(agg.red_streets) else np.zeros(0, np.int64)
        agg.red_street_needs = np.bincount(red_street, weights=seg_needs[red],
                                           minlength=len(agg.red_streets))
        n_red = seg_needs[red].sum()
        # A colour or street left without needs gets weight 0 (its φ are all 0 anyway).
        some = agg.red_street_needs > 1e-9
        per_street = np.divide(1.0, agg.red_street_needs, out=np.zeros(len(some)), where=some)
        city_weight = 1.0 / n_red if n_red > 1e-9 else 0.0
        # The red segments' coefficients in the city, floor and deviation rows: in the matrix
        # every view is cut from, and in the views already built (only the dial's hold them).
        row, col, val = self._coo
        seg_of_col = np.full(agg.n_cols, -1)
        seg_of_col[lay.seg.start + red] = np.arange(len(red))
        k = seg_of_col[col]
        city = lay.family("city_red")
        dial_rows = (row >= city.start) & (row < lay.family("deviation").stop) & (k >= 0)
        pos = np.flatnonzero(dial_rows)
        val[pos] = np.where(row[pos] == city.start, city_weight,
                            per_street[red_street[k[pos]]])
        for view in self._views.values():
            view.change_coefficients(pos, val[pos])
        self._count_reports()
        self._alone = None  # rebuilt from the new counts when a dial asks for it

    def set_supply(self, capacity: Mapping[str, float] | None = None,
                   street_hours: Mapping[str, float] | None = None,
                   pools: Mapping[str, float] | None = None) -> None:
        """Put new offer capacities (offer_id → units), volunteer hours per street
        (street_id → hours across its pools) and per pool (pool_id → hours, turned into the
        whole units of the service its ``pool`` row counts) in place of the scenario's; ids not
        named keep theirs. The budgets stay an argument of :meth:`solve`.

        Raises
        ------
        KeyError
            When an id is not one of the model's offers or volunteer streets.
        ValueError
            When a value is negative.
        """
        for ids, values, family in ((self.offer_ids, capacity, "offer"),
                                    (self.hour_streets, street_hours, "street_hours"),
                                    (self.pool_ids, pools, "pool")):
            if not values:
                continue
            index = pd.Series(np.arange(len(ids)), index=ids)
            given = pd.Series(values, dtype=float)
            unknown = sorted(set(given.index) - set(index.index))
            if unknown:
                raise KeyError(f"unknown {family} id(s): {', '.join(map(str, unknown[:5]))}")
            if (given < 0).any():
                raise ValueError(f"{family}: values must be ≥ 0")
            at = index[given.index].to_numpy()
            value = given.to_numpy()
            if family == "pool":  # the pool row counts whole units of the service
                value = np.floor(value / self.pool_hours_per_unit[at] + 1e-9)
            self._row_hi[self._layout.family(family).start + at] = value

    def row_bounds(self, family: str) -> np.ndarray:
        """The upper bounds of a family of rows (``offer``, ``pool``, ``street_hours`` …) as
        they stand (budgets excepted: those are an argument of :meth:`solve`)."""
        return self._row_hi[self._layout.family(family)].copy()

    def row_activity(self, family: str, solution: BudgetSolution) -> np.ndarray:
        """What ``solution`` uses of each row of a family (its left-hand side), in the
        family's order: compare it with :meth:`row_bounds` to see which rows bind."""
        lay = self._layout
        rows = self._layout.family(family)
        i = [k for k, (name, _, _) in enumerate(self._rows.names) if name == family][0]
        x = np.zeros(self.agg.n_cols)
        x[lay.seg] = solution.segment_filled
        x[lay.arc] = solution.arc_flow
        row, col, val = self._rows.row[i], self._rows.col[i], self._rows.val[i]
        return np.bincount(row - rows.start, weights=val * x[col],
                           minlength=rows.stop - rows.start)

    # -- budgets ---------------------------------------------------------------------------

    def budgets(self, budgets: Mapping[str, float] | None = None) -> pd.Series:
        """The scenario's budgets with ``budgets`` (fund_id → yuan) put over them.

        Raises
        ------
        KeyError
            When ``budgets`` names a fund the scenario does not have.
        ValueError
            When a budget is negative or not a number.
        """
        out = self.base_budgets.copy()
        if budgets:
            unknown = sorted(set(budgets) - set(out.index))
            if unknown:
                raise KeyError(f"unknown fund(s): {', '.join(map(str, unknown))}")
            given = pd.Series(budgets, dtype=float)
            if not (given >= 0).all():
                raise ValueError("budgets must be numbers ≥ 0")
            out[given.index] = given.to_numpy()
        return out

    # -- solving ---------------------------------------------------------------------------

    def solve(self, budgets: Mapping[str, float] | None = None,
              equity: EquityDial | None = None) -> BudgetSolution:
        """Solve for ``budgets`` (fund_id → yuan; funds not named keep the scenario's budget)
        with the equity dial ``equity`` (off when ``None``).

        Returns
        -------
        BudgetSolution
            With the dial on, ``price_of_fairness`` compares it with the same budgets without
            the dial (solved too, so a dialled solve takes about twice as long, plus one LP
            that gives every street's ``max_alone`` at once).
        """
        start = time.perf_counter()
        equity = equity or EquityDial()
        b = self.budgets(budgets)
        try:
            free = self._solve_levels(b, None, None)
            if not equity.active:
                free.seconds = time.perf_counter() - start
                return free
            if self._alone is None:
                self._alone = _AloneModel(self)
            max_alone = self._alone.solve(b)
            fair = self._solve_levels(b, equity, (max_alone, free))
            fair.price_of_fairness = price_of_fairness(fair, free)
            fair.seconds = time.perf_counter() - start
            return fair
        except RuntimeError as exc:
            return _error_solution(self, b, equity, str(exc), time.perf_counter() - start)

    # -- the levels --------------------------------------------------------------------------

    def _view(self, level: str, dial: bool) -> _View:
        """The LP ``level`` is solved in (see :class:`_View`): it keeps the arcs and the
        segments of the level's own colour (money and the dial's shortfall: none), and with the
        dial on the red segments and the dial's rows too."""
        colours = frozenset(() if level in ("money", "equity") else (level,)) | \
            (frozenset((RED,)) if dial else frozenset())
        view = self._views.get((colours, dial))
        if view is None:
            view = self._views[(colours, dial)] = _View(self, colours, dial)
        return view

    def _run(self, view: _View, level: str, before: tuple[_View, _Stored] | None) -> None:
        """Solve ``view`` as it stands for ``level`` with HiGHS, from the level's start basis:
        the baseline's optimum of the level (the dial's views: one made from those); in the
        baseline itself, from the optimum of the level ``before`` it."""
        h = view.highs
        key = RED if level == "equity" else level  # the dial's shortfall starts from red's
        start = view.basis.get(key)
        if start is None and view.dial:
            start = view.basis[key] = self._dial_basis(view, key)
        if start is None and before is not None:
            start = self._chain_basis(*before, view)
        if view.factored:
            view.factored = False  # stored_answer set the start basis (see there)
        elif start is not None:
            # Forget the solver's state (factorisation, edge weights, the random stream of
            # its perturbations): the run depends on the model and the start basis alone.
            h.clearSolver()
            h.setBasis(start)
        if self._time_limit > 0:
            h.setOptionValue("time_limit", h.getRunTime() + self._time_limit)
        view.held = None
        h.run()
        status = h.getModelStatus()
        # A view with no columns (a week without needs) is "empty": its optimum is all zero.
        if status not in (highspy.HighsModelStatus.kOptimal,
                          highspy.HighsModelStatus.kModelEmpty):
            raise RuntimeError(f"level {level}: HiGHS returned {h.modelStatusToString(status)}")

    def _chain_basis(self, source: _View, stored: _Stored, view: _View) -> highspy.HighsBasis:
        """The baseline's start for a level: the optimal basis of the level before (``stored``,
        of ``source``) carried over to ``view`` — what both hold keeps its status; the
        segments ``view`` adds sit where their group's row sat (the group's first one basic
        in the row's place when the row was basic); a group ``view`` holds by its row alone
        has that row basic when one of its segments was, else at the bound its segments sat
        at. The dual simplex goes on from the level before instead of from nothing (HiGHS
        completes the basis should the count or rank be off); on the city this also halves
        the baseline's pivots, and bases found this way start re-solves well (see _View)."""
        agg, lay = self.agg, self._layout
        col = np.zeros(agg.n_cols, np.int8)
        row = np.zeros(self._rows.count, np.int8)
        col[source.cols] = stored.col_status
        row[source.rows] = stored.row_status
        group0 = lay.family("group").start
        added = view.seg[(view.seg >= 0) & (source.col_of[view.cols] < 0)]
        if len(added):
            g = agg.seg_group[added]
            held = row[group0 + g]
            status = np.where(held == _UPPER, _UPPER, _LOWER).astype(np.int8)
            first = np.r_[True, g[1:] != g[:-1]]  # segments are in group order
            status[first & (held == _BASIC)] = _BASIC
            col[lay.seg.start + added] = status
            row[group0 + g] = _LOWER
        gone = source.seg[(source.seg >= 0) & (view.col_of[source.cols] < 0)]
        if len(gone):
            g = agg.seg_group[gone]
            status = col[lay.seg.start + gone]
            n_groups = len(agg.group_street)
            count = np.bincount(g, minlength=n_groups)
            basic = np.bincount(g, weights=status == _BASIC, minlength=n_groups)
            upper = np.bincount(g, weights=status == _UPPER, minlength=n_groups)
            lower = np.bincount(g, weights=status == _LOWER, minlength=n_groups)
            groups = np.unique(g)
            inside = (basic[groups] > 0) | ((upper[groups] < count[groups]) &
                                            (lower[groups] < count[groups]))
            row[group0 + groups] = np.where(inside, _BASIC, np.where(
                upper[groups] == count[groups], _UPPER, _LOWER))
        return _basis_of(col[view.cols], row[view.rows])

    def _dial_basis(self, view: _View, level: str) -> highspy.HighsBasis:
        """A start basis for ``level`` in a dial view, made from the baseline bases of the
        dial-off views (so it does not depend on what was solved before): every column and
        row the dial-off view of the level holds keeps its status; each red group that view
        held by its row alone gets its red segments back — all at the bound its row sat at,
        or, where the row was basic, one segment basic in its place (the one basic at the red
        level, else the group's first) and the others as they were at the red level; the
        city's red fill rate is basic and its row not, the floor and deviation rows are basic
        and the shortfall at 0. The count of basic variables matches the rows, and the basis
        is triangular over the dial-off one, so it is a basis."""
        agg, lay = self.agg, self._layout
        source = self._views[(frozenset(() if level == "money" else (level,)), False)]
        col = np.zeros(agg.n_cols, np.int8)
        row = np.zeros(self._rows.count, np.int8)
        col[source.cols] = source.stored[level].col_status
        row[source.rows] = source.stored[level].row_status
        if level != RED:
            red_view = self._views[(frozenset((RED,)), False)]
            segs = np.flatnonzero(self._seg_tier == 0)
            at_red = red_view.stored[RED].col_status[red_view.col_of[lay.seg.start + segs]]
            g = agg.seg_group[segs]
            g_row = lay.family("group").start + g
            held = row[g_row]
            was_basic = at_red == _BASIC
            status = np.where(held == _BASIC, np.where(was_basic, _LOWER, at_red),
                              np.where(held == _UPPER, _UPPER, _LOWER)).astype(np.int8)
            order = np.lexsort((segs, ~was_basic, g))
            first = order[np.r_[True, g[order][1:] != g[order][:-1]]]
            status[first[held[first] == _BASIC]] = _BASIC
            col[lay.seg.start + segs] = status
            row[g_row] = _LOWER
        row[lay.family("city_red")] = _LOWER
        col[lay.city] = _BASIC
        row[lay.family("floor")] = _BASIC
        row[lay.family("deviation")] = _BASIC
        col[lay.short] = _LOWER
        return _basis_of(col[view.cols], row[view.rows])

    def _fix_optimal_face(self, view: _View, col_dual: np.ndarray, col_value: np.ndarray,
                          row_dual: np.ndarray, row_value: np.ndarray, col_lo: np.ndarray,
                          col_hi: np.ndarray, row_lo: np.ndarray, row_hi: np.ndarray) -> None:
        """Hold the level just solved at its optimum by restricting the model to its optimal
        face. Every optimal solution satisfies complementary slackness with the optimal duals
        in hand: each column of non-zero reduced cost sits at its bound and each row of
        non-zero dual at its bound, in *every* optimal solution. Fixing those (instead of a
        dense "value ≥ optimum − tolerance" row) is exact, keeps the model sparse and lets no
        later level buy anything with an earlier level's value, not even a tolerance's worth.

        The bounds are the whole model's (``view`` solved a projection of it). A row of the
        view that stands for a group whose segments it left out, at its lower bound
        (Σ arcs = Σ q × the segments' lower bounds), holds every one of those segments at
        its lower bound, and likewise at the upper: that is the same face in the whole model.
        """
        cols = np.flatnonzero(np.abs(col_dual) > DUAL_TOLERANCE)
        full = view.cols[cols]
        x = col_value[cols]
        lo, hi = col_lo[full], col_hi[full]
        col_lo[full] = col_hi[full] = np.where(np.abs(x - lo) <= np.abs(x - hi), lo, hi)
        rows = np.flatnonzero(np.abs(row_dual) > DUAL_TOLERANCE)
        r = row_value[rows]
        lo, hi = view.now["row_lo"][rows], view.now["row_hi"][rows]
        lower_side = ~np.isfinite(hi) | (np.isfinite(lo) & (np.abs(r - lo) <= np.abs(r - hi)))
        full = view.rows[rows]
        row_lo[full] = row_hi[full] = np.where(lower_side, row_lo[full], row_hi[full])
        if len(view.coll_col) and len(rows):
            side = np.zeros(len(view.rows), np.int8)
            side[rows] = np.where(lower_side, 1, 2)
            s = side[view.coll_row]
            sel = s > 0
            j, a = view.coll_col[sel], view.coll_val[sel]
            # At the row's lower bound each left-out column makes a·x as large as it can.
            take_hi = (a > 0) == (s[sel] == 1)
            col_lo[j] = col_hi[j] = np.where(take_hi, col_hi[j], col_lo[j])

    def _solve_levels(self, budgets: pd.Series, equity: EquityDial | None,
                      context: tuple[np.ndarray, BudgetSolution] | None) -> BudgetSolution:
        """Equity (when the floor dial is on), red, orange, yellow, green, then money, each
        on the optimal face of the levels before it; fund duals at every colour level."""
        t0 = time.perf_counter()
        agg = self.agg
        col_lo, col_hi = self._col_lo.copy(), self._col_hi.copy()
        row_lo, row_hi = self._row_lo.copy(), self._row_hi.copy()
        row_hi[self._fund_rows] = budgets.to_numpy(float)
        target = self._dial_bounds(equity, context, col_hi, row_lo, row_hi)
        dial = equity is not None and equity.active
        baseline = not self._baseline_done

        levels = list(TIER_LEVELS) + ["money"]
        if equity is not None and equity.floor is not None and len(agg.red_streets):
            levels.insert(0, "equity")
        values: dict[str, float] = {}
        n_funds = len(self.fund_ids)
        points, marginal = np.zeros(n_funds), np.zeros(n_funds)
        level_of = np.full(n_funds, "", dtype=object)
        # Each segment's φ where its own colour was solved, and whether it was basic there:
        # where later levels leave it out, its value is rebuilt from these (see _assemble).
        own = np.zeros(agg.n_segments)
        own_basic = np.zeros(agg.n_segments, bool)
        before = None
        ran = False
        for level in levels:
            view = self._view(level, dial)
            maximise = level not in ("money", "equity")
            view.load(col_lo, col_hi, row_lo, row_hi, self._objectives[level],
                      maximise=maximise)
            # Once a level has needed HiGHS, the later levels' faces have moved with it, and
            # on the city their stored bases never passed the check after that: it is not
            # tried. (Only the time depends on this: from a stored basis that is still
            # optimal HiGHS makes no pivot and gives the same answer.)
            answer = None if baseline or ran else view.stored_answer(level, maximise)
            if answer is None:
                self._run(view, level, before)
                ran = True
                h = view.highs
                if h.getModelStatus() == highspy.HighsModelStatus.kModelEmpty:
                    # No columns (a week without needs): zero, every row's slack basic.
                    n_rows = len(view.now["row_lo"])
                    col_value, row_dual = np.zeros(len(view.now["col_lo"])), np.zeros(n_rows)
                    basic = -1 - np.arange(n_rows)
                else:
                    sol = h.getSolution()
                    col_value = np.asarray(sol.col_value, float)
                    row_dual = np.asarray(sol.row_dual, float)
                    basic = np.asarray(h.getBasicVariables()[1])
                # Row activities and reduced costs from the columns and the row duals
                # (A x, c − Aᵀ y): cheaper than converting HiGHS' lists of them.
                row_value, col_dual = view.activity(col_value), view.reduced_costs(row_dual)
                values[level] = float(h.getInfo().objective_function_value
                                      if len(col_value) else 0.0)
                if baseline:
                    before = (view, view.store(level, col_value, row_value, col_dual, row_dual,
                                               basic, maximise))
            else:
                col_value, row_value, col_dual, row_dual, basic = answer
                # (an elementwise sum: a BLAS dot product left its threads spinning)
                values[level] = float((view.now["cost"] * col_value).sum())
            if level == "money":
                break
            if level in TIER_LEVELS:
                t = TIER_LEVELS.index(level)
                mine = view.own[t]
                own[view.seg[mine]] = col_value[mine]
                basic_cols = basic[basic >= 0]
                own_basic[view.seg[basic_cols[view.tier[basic_cols] == t]]] = True
                dual = np.abs(row_dual[view.fund_rows])
                new = (level_of == "") & (dual > DUAL_TOLERANCE)
                if new.any():
                    marginal[new] = dual[new]
                    level_of[new] = level
                    points[new] = self._fill_sensitivity(view, t, basic, np.flatnonzero(new))
            self._fix_optimal_face(view, col_dual, col_value, row_dual, row_value, col_lo,
                                   col_hi, row_lo, row_hi)
        x = self._assemble(view, col_value, row_value, own, own_basic, col_lo, col_hi, row_lo)
        self.last_x = x
        self._baseline_done = True
        sol = self._solution(x, budgets, values, marginal, level_of, points,
                             equity or EquityDial(), target, context)
        sol.seconds = time.perf_counter() - t0
        return sol

    def _assemble(self, view: _View, col_value: np.ndarray, row_value: np.ndarray,
                  own: np.ndarray, own_basic: np.ndarray, col_lo: np.ndarray,
                  col_hi: np.ndarray, row_lo: np.ndarray) -> np.ndarray:
        """The whole model's columns from the last level's answer (``view``): what it holds
        as it is; each segment it left out from its group's row, which says how many units
        (Σ arcs) the group's left-out segments take. Those start at their φ where their own
        colour was solved (within the bounds the later levels left them); what the units
        differ by moves through the segments still free — by then all of one group's free
        segments weigh the same per unit in their colour (a non-zero reduced cost fixed the
        others), so where they go changes no level's value. The others move first — to fill
        as many needs as the units allow, those of least quantity gain first and those of
        most lose first — and the one basic at its colour's level last: it keeps what that
        level gave it, so a budget's small change still moves it as the basis says (the fill
        rate's points per ¥10,000 are read from that basis). With one free segment in a
        group (no tie) the answer is the only one."""
        lay = self._layout
        x = np.zeros(self.agg.n_cols)
        x[view.cols] = col_value
        if not len(view.coll_col):
            return x
        j, k, a = view.coll_col, view.coll_row, view.coll_val
        seg = j - lay.seg.start
        lo, hi = col_lo[j], col_hi[j]
        xj = np.clip(own[seg], lo, hi)
        # Each row with left-out columns is an equality: they must make up what the rest
        # does not.
        rest = row_lo[view.rows] - row_value
        residual = rest - np.bincount(k, weights=a * xj, minlength=len(view.rows))
        r = residual[k]
        move = np.flatnonzero(r != 0)
        if len(move):
            km, am, rm, xm = k[move], a[move], r[move], xj[move]
            span = np.stack([am * (hi[move] - xm), am * (lo[move] - xm)])
            cap = np.where(rm > 0, span.max(axis=0), -span.min(axis=0))  # room, ≥ 0
            key = np.where(rm > 0, np.abs(am), -np.abs(am))
            order = np.lexsort((j[move], key, own_basic[seg[move]], km))
            cap_o, k_o, r_o = cap[order], km[order], rm[order]
            before = np.cumsum(cap_o) - cap_o
            first = np.r_[True, k_o[1:] != k_o[:-1]]
            before -= before[np.flatnonzero(first)][np.cumsum(first) - 1]
            units = np.clip(np.abs(r_o) - before, 0.0, cap_o)
            moved = xm.copy()
            moved[order] += np.sign(r_o) * units / am[order]
            xj[move] = np.clip(moved, lo[move], hi[move])
        x[j] = xj
        return x

    def _fill_sensitivity(self, view: _View, t: int, basic: np.ndarray,
                          funds: np.ndarray) -> np.ndarray:
        """Fill-rate points per ¥10,000 of colour ``t`` for one more yuan in each of
        ``funds``, from the level's optimal basis ``B``: one more yuan in fund ``f`` moves the
        basic columns by ``B⁻¹ e_f``, so the colour's filled needs move by ``1_Pᵀ B⁻¹ e_f``
        (``P``: the basic segments of the colour) — one transposed solve ``B⁻ᵀ 1_P`` for all
        funds. (``basic``: the view's basic variables, columns ≥ 0, rows as −1 − row.)"""
        pos = np.flatnonzero(basic >= 0)
        pos = pos[view.tier[basic[pos]] == t]
        indicator = np.zeros(len(basic))
        indicator[pos] = 1.0
        per_row = np.asarray(view.highs.getBasisTransposeSolve(indicator)[1], float)
        return per_row[view.fund_rows[funds]] / self._tier_needs[t] * POINTS_PER_10K

    def _dial_bounds(self, equity: EquityDial | None,
                     context: tuple[np.ndarray, BudgetSolution] | None, col_hi: np.ndarray,
                     row_lo: np.ndarray, row_hi: np.ndarray) -> np.ndarray:
        """Put the dial into the bounds of the floor or deviation rows and of the shortfall
        column; returns what each red street is held to before any shortfall: its floor
        (floor dial) or how far below ``city − D`` it may stay (deviation dial), NaN when off.
        """
        lay, agg = self._layout, self.agg
        n_r = len(agg.red_streets)
        target = np.full(n_r, np.nan)
        if n_r == 0 or equity is None or not equity.active:
            return target
        # A street exactly at its reachable maximum must stay feasible through rounding.
        tol = 1e-9
        max_alone, free = context
        if equity.floor is not None:
            target = np.minimum(equity.floor, np.maximum(max_alone - tol, 0.0))
            row_lo[lay.family("floor")] = target
            col_hi[lay.short] = target.max()
        else:
            d = equity.deviation
            city_free = float(free.fill_rates().get(RED, 0.0))
            target = np.maximum(0.0, city_free - d - max_alone + tol)  # what it lacks alone
            row_lo[lay.family("deviation")] = -d - target
            row_hi[lay.family("deviation")] = d
        return target

    def use_by_street(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """What the last solve gave each street centre's needs: units of each offer
        (``street_id, offer_id, units``) and yuan of each fund (``street_id, fund_id, yuan``)."""
        agg, lay = self.agg, self._layout
        y = np.clip(self.last_x[lay.arc], 0.0, agg.arc_upper)
        street = agg.group_street[agg.arc_group]
        o = (agg.arc_offer >= 0) & (y > 0)
        offers = pd.DataFrame({"street_id": street[o], "offer_id": self.offer_ids[agg.arc_offer[o]],
                               "units": y[o]})
        f = (agg.arc_fund >= 0) & (y > 0)
        funds = pd.DataFrame({"street_id": street[f], "fund_id": self.fund_ids[agg.arc_fund[f]],
                              "yuan": (y * agg.arc_charge)[f]})
        return (offers.groupby(["street_id", "offer_id"], as_index=False)["units"].sum(),
                funds.groupby(["street_id", "fund_id"], as_index=False)["yuan"].sum())

    # -- bounds for an answer of the exact model ---------------------------------------------

    def level_bounds(self, reached: Mapping[str, float],
                     budgets: Mapping[str, float] | None = None, *,
                     workers: int = 1) -> dict[str, float]:
        """Bounds on the exact model's orange, yellow, green and money levels, given the
        values ``reached`` (colour → Σ urgency × served ÷ needed) that an answer of the exact
        model reached at the colour levels before each: ``optimizer.lexmip``'s certification
        (an LP relaxation holding every earlier level at its achieved value), on the
        aggregate.

        The bound of a colour level is the optimum of the aggregate LP for that colour with
        every earlier colour held by a value row at ``reached − slack`` (``BOUND_SLACK`` ×
        max(1, |value|)); money's is the least money with every colour held. Every answer of
        the exact model is a solution of the aggregate with the same colour values and the
        same money (each row the aggregate relaxes is implied by the exact model's rows, see
        the module docstring), so no exact answer that keeps the earlier colours at
        ``reached`` does better than these: a colour's bound is an upper bound, money's a
        lower bound. The slack only loosens them. Unlike :meth:`solve`, an earlier colour is
        held by a value row, not by its optimal face: ``reached`` is in general below the
        aggregate's optimum, whose face would cut off answers the exact model has.

        Each level's LP keeps only the segments of the colours it weighs or holds (a
        :class:`_View`, the others held by their group rows' bounds, an exact projection) and
        is solved once, from nothing, with presolve: nothing the lab stores is near its
        answer (on the city, holding red 0.4 % below the aggregate's red moved orange by 4 %
        and green by 100 %, and warm starts from the lab's optima or from the level before
        took as many pivots as a cold start, without presolve's help).

        Parameters
        ----------
        reached
            The value reached at each of red, orange and yellow (and green for money).
        budgets
            fund_id → yuan, as in :meth:`solve`: give what the exact model had (its budgets
            less what other runs used, to the cent), else the bounds hold for the scenario's
            budgets.
        workers
            Threads solving the four LPs side by side.

        Returns
        -------
        dict
            ``orange``, ``yellow``, ``green``, ``money`` → bound; NaN where the LP has none:
            infeasible (the earlier values are more than the aggregate can reach, which for a
            true relaxation never happens) or out of time (``time_limit``).
        """
        agg = self.agg
        row_hi = self._row_hi.copy()
        row_hi[self._fund_rows] = self.budgets(budgets).to_numpy(float)
        levels = (*TIER_LEVELS[1:], "money")
        lps = []
        for k, level in enumerate(levels, start=1):
            view = _View(self, frozenset(TIER_LEVELS[:k + 1]), dial=False)
            h = view.highs
            # A _View is set up for warm re-solves (no presolve, devex); this LP is solved
            # once from nothing, where presolve and HiGHS' default pricing are faster.
            h.setOptionValue("presolve", "on")
            h.setOptionValue("simplex_dual_edge_weight_strategy", -1)
            if self._time_limit > 0:
                h.setOptionValue("time_limit", float(self._time_limit))
            view.load(self._col_lo, self._col_hi, self._row_lo, row_hi,
                      self._objectives[level], maximise=level != "money")
            for colour in TIER_LEVELS[:k]:
                cols = view.own[TIER_LEVELS.index(colour)]
                value = float(reached[colour])
                slack = BOUND_SLACK * max(1.0, abs(value))
                h.addRow(value - slack, _INF, len(cols), cols.astype(np.int32),
                         agg.seg_urgency[view.seg[cols]])
            lps.append(h)  # (the view's own arrays are no longer needed)

        def bound(h: highspy.Highs) -> float:
            h.run()
            status = h.getModelStatus()
            if status == highspy.HighsModelStatus.kOptimal:
                return float(h.getInfo().objective_function_value)
            if status == highspy.HighsModelStatus.kModelEmpty:  # a week without needs
                return 0.0
            return float("nan")  # infeasible, or out of time

        # The four LPs are independent: HiGHS frees the GIL while it runs, so threads solve
        # them side by side (each its own instance, single-threaded: the same answers). The
        # later levels' LPs are the larger: they go first.
        with ThreadPoolExecutor(max(1, min(workers, len(lps)))) as pool:
            found = list(pool.map(bound, lps[::-1]))[::-1]
        return dict(zip(levels, found, strict=True))

    # -- results ---------------------------------------------------------------------------

    def _solution(self, x: np.ndarray, budgets: pd.Series, values: dict, marginal: np.ndarray,
                  level_of: np.ndarray, points: np.ndarray, equity: EquityDial,
                  target: np.ndarray, context) -> BudgetSolution:
        agg, lay = self.agg, self._layout
        phi = np.clip(x[lay.seg], 0.0, agg.seg_needs)
        y = np.clip(x[lay.arc], 0.0, agg.arc_upper)
        n_rep = len(self._report)
        seg_report = self._report_of_group[agg.seg_group]
        arc_report = self._report_of_group[agg.arc_group]
        groups = self._report.copy()
        groups["served"] = np.bincount(arc_report, weights=y, minlength=n_rep)
        groups["filled"] = np.bincount(seg_report, weights=phi, minlength=n_rep)
        groups["fill_rate"] = groups["filled"] / groups["needs"]
        groups["money"] = np.bincount(arc_report, weights=y * agg.arc_charge, minlength=n_rep)

        filled = np.bincount(self._seg_tier, weights=phi, minlength=len(TIER_LEVELS))
        with np.errstate(invalid="ignore", divide="ignore"):
            fill = np.where(self._tier_needs > 0, filled / self._tier_needs, np.nan)
        colours = pd.DataFrame({
            "colour": list(TIER_LEVELS), "needs": self._tier_needs.round().astype(np.int64),
            "value": [values[t] for t in TIER_LEVELS], "max_value": self._tier_max,
            "fill_rate": fill,
        })

        charged = agg.arc_fund >= 0
        used = np.bincount(agg.arc_fund[charged], weights=(y * agg.arc_charge)[charged],
                           minlength=len(self.fund_ids))
        b = budgets.to_numpy(float)
        funds = pd.DataFrame({
            "fund_id": self.fund_ids, "budget": b, "used": used, "left": b - used,
            "marginal_value": marginal, "marginal_level": level_of, "points_per_10k": points,
        })

        n_r = len(agg.red_streets)
        filled_r = np.bincount(self._red_seg_street, weights=phi[self._red_seg], minlength=n_r)
        fill_r = filled_r / np.maximum(agg.red_street_needs, 1.0)
        max_alone = context[0] if context is not None else np.full(n_r, np.nan)
        floor = np.full(n_r, np.nan)
        reason = np.full(n_r, "", dtype=object)
        short = float(max(x[lay.short], 0.0))
        slack = 1e-7
        if equity.floor is not None:
            floor = target - short
            reason[(target < equity.floor - slack) & ~np.isnan(target)] = "cannot_reach_alone"
            reason[(reason == "") & (fill_r < equity.floor - slack)] = "shared_supply"
        elif equity.deviation is not None:
            floor = np.maximum(fill[0] - equity.deviation - target, 0.0)
            reason[target > slack] = "cannot_reach_alone"
        streets = pd.DataFrame({
            "street_id": agg.red_streets, "red_needs": agg.red_street_needs.astype(np.int64),
            "fill_rate": fill_r, "floor": floor, "max_alone": max_alone,
            "capped": reason != "", "reason": reason,
        })
        return BudgetSolution(colours=colours, funds=funds, groups=groups, streets=streets,
                              money=float(used.sum()), equity=equity, price_of_fairness=None,
                              status=str(Status.OPTIMAL), seconds=0.0, shortfall=short,
                              segment_filled=phi, arc_flow=y)


_STATUS_OF = (highspy.HighsBasisStatus.kLower, highspy.HighsBasisStatus.kBasic,
              highspy.HighsBasisStatus.kUpper, highspy.HighsBasisStatus.kZero)
_LOWER, _BASIC, _UPPER, _ZERO = 0, 1, 2, 3
PRIMAL_TOLERANCE = 1e-7  # HiGHS' primal and dual feasibility tolerances (its defaults)
DUAL_FEASIBILITY = 1e-7


def _basis_of(col_status: np.ndarray, row_status: np.ndarray, *,
              alien: bool = True) -> highspy.HighsBasis:
    """A HiGHS basis from statuses as small integers (HiGHS' enum values). ``alien``: HiGHS
    checks it by factorising it and, should the count of basic variables or the rank be off,
    completes it (deterministically) rather than refusing it; a basis known to be one (an
    optimum's) is not marked, as the check costs milliseconds on the city each time."""
    basis = highspy.HighsBasis()
    basis.col_status = [_STATUS_OF[s] for s in col_status.tolist()]
    basis.row_status = [_STATUS_OF[s] for s in row_status.tolist()]
    basis.valid = True
    basis.alien = alien
    return basis


@dataclass
class _Stored:
    """A level's optimal basis in the baseline solve, kept to start every later solve of the
    level: as HiGHS takes it, as statuses (small integers), and its reduced costs and row
    duals, which depend on the basis and the level's costs only — not on any bound."""

    basis: highspy.HighsBasis
    col_status: np.ndarray
    row_status: np.ndarray
    col_dual: np.ndarray
    row_dual: np.ndarray


class _View:
    """The LP one level is solved in: the model projected on the columns the level needs.

    A segment enters the model only through its group's row (Σ arcs = Σ q φ) and, if red,
    through the equity dial's rows; a colour level weighs only its own colour's segments and
    the money level none. So, with the dial off, a level can leave out the segments of every
    other colour — their group's row keeps Σ q × their lower bounds ≤ Σ arcs ≤ Σ q × their
    upper bounds, the exact projection of their box on that sum — and the dial's rows and
    columns (free then). Its LP is the model's projected on the columns it keeps: the same
    optimum, the same optimal face on those columns, the same fund duals. On the city it has
    a third of the columns, and HiGHS' cost of a run, even one of no pivot (setting the basis
    up, checking the answer), grows with them. With the dial on the red segments stay in, and
    the dial's rows with them.

    Each view is one HiGHS instance; ``basis`` holds the start basis of each level solved in
    it, ``stored`` (dial off) the baseline's optimum behind it. Bounds are the whole model's,
    mapped in by :meth:`load`."""

    def __init__(self, model: BudgetModel, colours: frozenset, dial: bool):
        agg, lay, rows = model.agg, model._layout, model._rows
        n = agg.n_cols
        keep_col = np.ones(n, bool)
        keep_col[lay.seg] = np.isin(model._seg_tier, [TIER_LEVELS.index(c) for c in colours])
        keep_row = np.ones(rows.count, bool)
        if not dial:
            keep_col[lay.short] = keep_col[lay.city] = False
            for family in ("city_red", "floor", "deviation"):
                keep_row[lay.family(family)] = False
        self.dial = dial
        self.cols = np.flatnonzero(keep_col)
        self.rows = np.flatnonzero(keep_row)
        self.col_of = np.full(n, -1)
        self.col_of[self.cols] = np.arange(len(self.cols))
        self.row_of = np.full(rows.count, -1)
        self.row_of[self.rows] = np.arange(len(self.rows))
        row, col, val = model._coo
        in_row = keep_row[row]
        kept = in_row & keep_col[col]
        left_out = in_row & ~keep_col[col]
        # The columns left out that sit in a row kept: segments, each in its group's row only
        # (an equality), which is what makes the projection exact.
        self.coll_col = col[left_out]
        self.coll_row = self.row_of[row[left_out]]
        self.coll_val = val[left_out]
        self.coll_negative = bool((self.coll_val < 0).all())
        if (self.coll_col < lay.seg.start).any() or (self.coll_col >= lay.seg.stop).any() \
                or np.bincount(self.coll_col - lay.seg.start).max(initial=0) > 1 \
                or (model._row_lo[self.rows[self.coll_row]]
                    != model._row_hi[self.rows[self.coll_row]]).any():
            raise AssertionError("a view left out a column that is not a group's segment")
        is_seg = (self.cols >= lay.seg.start) & (self.cols < lay.seg.stop)
        self.seg = np.where(is_seg, self.cols - lay.seg.start, -1)  # segment of each column
        self.tier = np.where(is_seg, model._seg_tier[np.where(is_seg, self.seg, 0)], -1)
        self.own = {t: np.flatnonzero(self.tier == t) for t in range(len(TIER_LEVELS))}
        self.fund_rows = self.row_of[model._fund_rows]
        self.basis: dict[str, highspy.HighsBasis] = {}
        self.stored: dict[str, _Stored] = {}
        # What the instance holds besides the model: ``held``, the level whose stored basis
        # it holds factorised, no run since (``held_basic``: its basic variables);
        # ``factored``, whether that was set up in this very solve, from a clean state.
        self.held: str | None = None
        self.held_basic = np.zeros(0, np.int64)
        self.factored = False

        h = self.highs = new_highs(model._threads, 0.0, model._seed)
        # Every basis a view stores comes from the simplex itself: the baseline's first level
        # is solved without presolve (on the city that was also the faster way) and each
        # later level goes on from the level before (see BudgetModel._chain_basis). A basis
        # put together by postsolve (equality rows basic at zero, their columns nonbasic)
        # made re-solves after a fund moved by a quarter take thousands of pivots instead of
        # hundreds.
        h.setOptionValue("presolve", "off")
        # Devex dual pricing: a run starts from a basis just set, for which HiGHS' default
        # (dual steepest edge) first computes every row's exact weight — one solve with the
        # basis per row of the level's LP. The re-solves are a few hundred pivots at most, and
        # on the city devex took about 8% less time over them (worst: 0.47 s against 0.51 s
        # CPU), for the same level values to HiGHS' tolerances.
        h.setOptionValue("simplex_dual_edge_weight_strategy", 1)
        n_cols, n_rows = len(self.cols), len(self.rows)
        lo, hi = model._col_lo[self.cols], model._col_hi[self.cols]
        h.addCols(n_cols, np.zeros(n_cols), lo, hi, 0, np.zeros(n_cols, np.int32),
                  np.zeros(0, np.int32), np.zeros(0))
        # The view's matrix (entries in whole-model order, so by row), kept in step with
        # the instance's by change_coefficients.
        self.kept = np.flatnonzero(kept)
        self.matrix = (self.row_of[row[kept]], self.col_of[col[kept]], val[kept].copy())
        r, c, v = self.matrix
        nonzero = v != 0  # set_demand may have zeroed a red coefficient
        r, c, v = r[nonzero], c[nonzero], v[nonzero]
        starts = np.searchsorted(r, np.arange(n_rows)).astype(np.int32)
        row_lo, row_hi = self._row_bounds(model._col_lo, model._col_hi, model._row_lo,
                                          model._row_hi)
        h.addRows(n_rows, np.where(np.isfinite(row_lo), row_lo, -_INF),
                  np.where(np.isfinite(row_hi), row_hi, _INF), len(c), starts,
                  c.astype(np.int32), v)
        # What the HiGHS instance holds now, so each change sends only what differs.
        self.now = {"col_lo": lo.copy(), "col_hi": hi.copy(), "row_lo": row_lo,
                    "row_hi": row_hi, "cost": np.zeros(n_cols)}

    def _row_bounds(self, col_lo: np.ndarray, col_hi: np.ndarray, row_lo: np.ndarray,
                    row_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The kept rows' bounds, less what the left-out columns can contribute."""
        lo, hi = row_lo[self.rows], row_hi[self.rows]
        if len(self.coll_col):
            a, j = self.coll_val, self.coll_col
            # The most and the least each left-out column can put in: a × its lower and upper
            # bound when a < 0 (segments in their group's row, −q, always are).
            most, least = a * col_lo[j], a * col_hi[j]
            if not self.coll_negative:
                most, least = np.maximum(most, least), np.minimum(most, least)
            n = len(self.rows)
            lo = lo - np.bincount(self.coll_row, weights=most, minlength=n)
            hi = hi - np.bincount(self.coll_row, weights=least, minlength=n)
        return lo, hi

    def load(self, col_lo: np.ndarray, col_hi: np.ndarray, row_lo: np.ndarray,
             row_hi: np.ndarray, cost: np.ndarray, *, maximise: bool) -> None:
        """Send the whole model's bounds (as they stand in this solve) and a level's costs,
        only where they differ from what the instance holds."""
        h, now = self.highs, self.now
        lo, hi = col_lo[self.cols], col_hi[self.cols]
        idx = np.flatnonzero((lo != now["col_lo"]) | (hi != now["col_hi"]))
        if len(idx):
            h.changeColsBounds(len(idx), idx.astype(np.int32), lo[idx], hi[idx])
            now["col_lo"][idx] = lo[idx]
            now["col_hi"][idx] = hi[idx]
        lo, hi = self._row_bounds(col_lo, col_hi, row_lo, row_hi)
        idx = np.flatnonzero((lo != now["row_lo"]) | (hi != now["row_hi"]))
        if len(idx):
            h.changeRowsBounds(len(idx), idx.astype(np.int32),
                               np.where(np.isfinite(lo[idx]), lo[idx], -_INF),
                               np.where(np.isfinite(hi[idx]), hi[idx], _INF))
            now["row_lo"][idx] = lo[idx]
            now["row_hi"][idx] = hi[idx]
        c = cost[self.cols]
        idx = np.flatnonzero(c != now["cost"])
        if len(idx):
            h.changeColsCost(len(idx), idx.astype(np.int32), c[idx])
            now["cost"] = c
        h.changeObjectiveSense(highspy.ObjSense.kMaximize if maximise
                               else highspy.ObjSense.kMinimize)

    def store(self, level: str, col_value: np.ndarray, row_value: np.ndarray,
              col_dual: np.ndarray, row_dual: np.ndarray, basic: np.ndarray,
              maximise: bool) -> _Stored:
        """Keep the optimum just found as the level's start in every later solve.

        The statuses are read off the answer (basic variables from HiGHS, the others at the
        bound they sit at), which is faster than converting HiGHS' basis object. A fixed
        nonbasic variable sits at both bounds: it is marked at the one its dual points to
        (upper where sense × dual > 0), so that, should a later solve leave it free, the basis
        stays dual feasible there."""
        sense = 1.0 if maximise else -1.0
        status = []
        for value, dual, lo, hi, is_basic in (
                (col_value, col_dual, self.now["col_lo"], self.now["col_hi"],
                 basic[basic >= 0]),
                (row_value, row_dual, self.now["row_lo"], self.now["row_hi"],
                 -1 - basic[basic < 0])):
            s = np.where(np.abs(value - hi) < np.abs(value - lo), _UPPER, _LOWER)
            s = np.where(lo == hi, np.where(sense * dual > 0, _UPPER, _LOWER), s)
            s = np.where(~np.isfinite(lo) & ~np.isfinite(hi), _ZERO, s).astype(np.int8)
            s[is_basic] = _BASIC
            status.append(s)
        stored = _Stored(_basis_of(*status, alien=False), status[0], status[1], col_dual,
                         row_dual)
        self.stored[level] = stored
        self.basis[level] = stored.basis
        return stored

    def stored_answer(self, level: str, maximise: bool) -> tuple | None:
        """The level's answer straight from its stored optimal basis, when that basis is still
        optimal with the bounds as they stand (the instance's): ``col_value, row_value,
        col_dual, row_dual, basic``, or ``None`` when it is not (or there is none).

        A basis's reduced costs and duals depend on the costs, not the bounds, so it stays
        dual feasible as long as every nonbasic variable that is not fixed sits at a finite
        bound its reduced cost agrees with (HiGHS' tolerance). Then it is optimal if the
        basic variables, solved from the nonbasic ones' bounds (one solve with the basis,
        ``B z = −A_N x_N + r_N``, HiGHS' logicals being minus the row activities), lie
        within their bounds. That is the answer HiGHS gives from that basis in no pivot — a
        run from the stored basis changes nothing — at a fraction of a run's cost (on the
        city a run of no pivot costs tens of milliseconds: it sets the whole LP up again and
        checks the answer). Equal bounds give the same answer whatever was solved before."""
        stored = self.stored.get(level)
        self.factored = False
        if stored is None:
            return None
        sense = 1.0 if maximise else -1.0
        now = self.now
        values = []
        for status, dual, lo, hi in ((stored.col_status, stored.col_dual, now["col_lo"],
                                      now["col_hi"]),
                                     (stored.row_status, stored.row_dual, now["row_lo"],
                                      now["row_hi"])):
            free = lo != hi
            d = sense * dual
            at_lo = (status == _LOWER) & free
            at_hi = (status == _UPPER) & free
            if (at_lo & (~np.isfinite(lo) | (d > DUAL_FEASIBILITY))).any() or \
                    (at_hi & (~np.isfinite(hi) | (d < -DUAL_FEASIBILITY))).any() or \
                    ((status == _ZERO) & (np.isfinite(lo) | np.isfinite(hi))).any():
                return None
            values.append(np.where(status == _UPPER, hi,
                                   np.where(status == _LOWER, lo, 0.0)))
        x, r_bound = values
        x[stored.col_status == _BASIC] = 0.0
        nonbasic_row = stored.row_status != _BASIC
        a_row, a_col, a_val = self.matrix
        n_rows = len(self.rows)
        rhs = np.where(nonbasic_row, r_bound, 0.0) - \
            np.bincount(a_row, weights=a_val * x[a_col], minlength=n_rows)
        h = self.highs
        if self.held != level:
            h.clearSolver()
            h.setBasis(stored.basis)
            self.held_basic = np.asarray(h.getBasicVariables()[1])  # factorises the basis
            self.held = level
            # Should the basis not be optimal, the run starts right here: from the same
            # clean state and basis as otherwise, with the factorisation it would make first
            # already made.
            self.factored = True
        # Else the instance still holds this basis, factorised, from the last solve (no run
        # since): the same factors as a fresh factorisation, so the same answer.
        basic = self.held_basic
        z = np.asarray(h.getBasisSolve(rhs)[1], float)
        cols = basic >= 0
        x[basic[cols]] = z[cols]
        lo, hi = now["col_lo"], now["col_hi"]
        row_value = self.activity(x)
        if ((x < lo - PRIMAL_TOLERANCE) | (x > hi + PRIMAL_TOLERANCE)).any() or \
                ((row_value < now["row_lo"] - PRIMAL_TOLERANCE) |
                 (row_value > now["row_hi"] + PRIMAL_TOLERANCE)).any():
            return None
        return x, row_value, stored.col_dual, stored.row_dual, basic

    def activity(self, x: np.ndarray) -> np.ndarray:
        """Each row's activity ``A x``."""
        a_row, a_col, a_val = self.matrix
        return np.bincount(a_row, weights=a_val * x[a_col], minlength=len(self.rows))

    def reduced_costs(self, row_dual: np.ndarray) -> np.ndarray:
        """Each column's reduced cost ``c − Aᵀ y`` for the costs loaded."""
        a_row, a_col, a_val = self.matrix
        return self.now["cost"] - np.bincount(a_col, weights=a_val * row_dual[a_row],
                                              minlength=len(self.cols))

    def change_coefficients(self, pos: np.ndarray, val: np.ndarray) -> None:
        """Put new values into entries of the whole model's matrix (``pos``: their places in
        ``BudgetModel._coo``) where this view holds them."""
        if not len(self.kept):
            return
        at = np.minimum(np.searchsorted(self.kept, pos), len(self.kept) - 1)
        mine = np.flatnonzero(self.kept[at] == pos)
        r, c, v = self.matrix
        v[at[mine]] = val[mine]
        self.held = None  # (only dial views hold these rows, and they store no basis)
        for i in at[mine]:  # only the dial's views hold any: one call per entry
            self.highs.changeCoeff(int(r[i]), int(c[i]), float(v[i]))


def _new_model(n_cols: int, col_lo: np.ndarray, col_hi: np.ndarray, rows: Rows, threads: int,
               seed: int) -> highspy.Highs:
    h = new_highs(threads, 0.0, seed)
    h.addCols(n_cols, np.zeros(n_cols), col_lo, col_hi, 0, np.zeros(n_cols, np.int32),
              np.zeros(0, np.int32), np.zeros(0))
    start, index, value, _ = csr(rows, n_cols)
    lo = np.concatenate(rows.lower) if rows.lower else np.zeros(0)
    hi = np.concatenate(rows.upper) if rows.upper else np.zeros(0)
    h.addRows(rows.count, np.where(np.isfinite(lo), lo, -_INF),
              np.where(np.isfinite(hi), hi, _INF), len(index), start, index, value)
    return h


def _error_solution(model: BudgetModel, budgets: pd.Series, equity: EquityDial, message: str,
                    seconds: float) -> BudgetSolution:
    colours = pd.DataFrame({"colour": list(TIER_LEVELS), "needs": 0, "value": np.nan,
                            "max_value": np.nan, "fill_rate": np.nan})
    funds = pd.DataFrame({"fund_id": model.fund_ids, "budget": budgets.to_numpy(float),
                          "used": np.nan, "left": np.nan, "marginal_value": np.nan,
                          "marginal_level": "", "points_per_10k": np.nan})
    return BudgetSolution(colours=colours, funds=funds, groups=pd.DataFrame(),
                          streets=pd.DataFrame(), money=float("nan"), equity=equity,
                          price_of_fairness=None, status=str(Status.ERROR), seconds=seconds,
                          message=message)


class _AloneModel:
    """Each red street alone against every capacity and budget: the red columns of the
    aggregate, with every resource row copied once per street that uses it, so the LP splits
    into one independent block per street and one solve gives every street's maximum."""

    def __init__(self, model: BudgetModel):
        agg, lay, rows = model.agg, model._layout, model._rows
        seg_red = agg.group_tier[agg.seg_group] == RED
        arc_red = agg.group_tier[agg.arc_group] == RED
        keep_col = np.zeros(agg.n_cols, bool)
        keep_col[lay.seg] = seg_red
        keep_col[lay.arc] = arc_red
        col_street = np.full(agg.n_cols, "", dtype=object)
        col_street[lay.seg] = agg.group_street[agg.seg_group]
        col_street[lay.arc] = agg.group_street[agg.arc_group]
        families = ("group", "offer", "fund", "group_fund", "pool", "street_hours")
        r_all, c_all, v_all = [], [], []
        for fam in families:
            if not any(name == fam for name, _, _ in rows.names):
                continue
            i = [k for k, (name, _, _) in enumerate(rows.names) if name == fam][0]
            r, c, v = rows.row[i], rows.col[i], rows.val[i]
            keep = keep_col[c]
            r_all.append(r[keep])
            c_all.append(c[keep])
            v_all.append(v[keep])
        r = np.concatenate(r_all)
        c = np.concatenate(c_all)
        v = np.concatenate(v_all)
        key = pd.DataFrame({"row": r, "street": col_street[c]})
        new_row = key.groupby(["row", "street"], sort=True).ngroup().to_numpy()
        self.orig_row = pd.Series(r).groupby(new_row).first().to_numpy()
        cols = np.flatnonzero(keep_col)
        new_col = np.full(agg.n_cols, -1)
        new_col[cols] = np.arange(len(cols))
        lo, hi = model._row_lo[self.orig_row], model._row_hi[self.orig_row]
        sub = Rows()
        sub.add("copy", new_row, new_col[c], v, lo, hi)
        self.n = len(cols)
        self.rows = sub
        self.model = model
        # Objective: Σ over red streets of the street's fill rate (blocks are independent).
        street_code = pd.Series(np.arange(len(agg.red_streets)), index=agg.red_streets)
        seg_cols = np.flatnonzero(seg_red)
        self.seg_new = new_col[lay.seg.start + seg_cols]
        self.seg_street = street_code.reindex(
            agg.group_street[agg.seg_group[seg_cols]]).to_numpy().astype(np.int64)
        cost = np.zeros(self.n)
        cost[self.seg_new] = 1.0 / agg.red_street_needs[self.seg_street]
        fund_rows = model._fund_rows
        self.fund_copy = np.flatnonzero(np.isin(self.orig_row, fund_rows)).astype(np.int32)
        self.fund_of_copy = self.orig_row[self.fund_copy] - fund_rows[0] if len(fund_rows) \
            else np.zeros(0, np.int64)
        self.highs = _new_model(self.n, np.zeros(self.n), model._col_hi[cols], sub,
                                model._threads, model._seed)
        self.highs.changeObjectiveSense(highspy.ObjSense.kMaximize)
        self.highs.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), cost)
        # Solved once with the scenario's budgets; every solve starts from that basis, so the
        # answer does not depend on what was solved before.
        self.start_basis = None
        self.solve(model.base_budgets)
        self.start_basis = self.highs.getBasis()

    def solve(self, budgets: pd.Series) -> np.ndarray:
        """Each red street's red fill rate with everything that may serve it."""
        agg = self.model.agg
        h = self.highs
        if len(self.fund_copy):
            upper = budgets.to_numpy(float)[self.fund_of_copy]
            h.changeRowsBounds(len(self.fund_copy), self.fund_copy,
                               np.full(len(self.fund_copy), -_INF), upper)
        if self.start_basis is not None:
            h.clearSolver()
            h.setBasis(self.start_basis)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"max_alone: HiGHS returned {h.getModelStatus()}")
        x = np.asarray(h.getSolution().col_value, float)
        filled = np.bincount(self.seg_street, weights=x[self.seg_new],
                             minlength=len(agg.red_streets))
        return np.clip(filled / agg.red_street_needs, 0.0, 1.0)


# ----------------------------------------------------------------------------- building


def build_budget_model(data: AllocationInput, *, threads: int = 1, seed: int = 0,
                       time_limit: float = 0.0) -> BudgetModel:
    """Aggregate ``data`` (see the module docstring) and build the LP once.

    Parameters
    ----------
    data
        The allocation's input (``planning.allocate.allocation_input``); pins are ignored.
    threads, seed, time_limit
        HiGHS options (``time_limit`` per level in seconds, 0 for none).

    Returns
    -------
    BudgetModel
        Already solved once with the scenario's budgets: that basis starts every later solve.
    """
    t0 = time.perf_counter()
    needs = prepare_needs(data)
    offers = offer_table(data)
    funds = data.funds.reset_index(drop=True)
    pools = volunteer_pools(data)
    agg, sizes = _aggregate(data, needs, offers, funds, pools)
    rows, layout = _rows(data, agg, offers, funds, pools)
    sizes["rows"] = rows.count
    sizes["columns"] = agg.n_cols
    model = BudgetModel(agg, funds, offers, pools, rows, layout, sizes, threads=threads,
                        seed=seed, time_limit=time_limit)
    if agg.arc_pool.max(initial=-1) >= 0:
        model.hour_streets, model.street_hours = street_volunteer_hours(data)
    model._solve_levels(model.base_budgets, None, None)  # the basis every solve starts from
    model.build_seconds = time.perf_counter() - t0
    return model


def _rows(data: AllocationInput, agg: _Aggregate, offers: pd.DataFrame, funds: pd.DataFrame,
          pools: pd.DataFrame) -> tuple[Rows, _Layout]:
    rows = Rows()
    s0, a0 = 0, agg.n_segments
    r0 = a0 + agg.n_arcs
    z = r0 + 1
    seg_cols = np.arange(s0, a0)
    arc_cols = np.arange(a0, r0)
    n_groups = len(agg.group_street)
    # Each group: what its arcs bring = what its segments use (φ × the segment's quantity).
    rows.add("group", np.concatenate([agg.arc_group, agg.seg_group]),
             np.concatenate([arc_cols, seg_cols]),
             np.concatenate([np.ones(agg.n_arcs), -agg.seg_quantity]),
             np.zeros(n_groups), np.zeros(n_groups))
    o = agg.arc_offer >= 0
    capacity = offers["base_capacity"].to_numpy(float) / offers["scale"].to_numpy(float)
    rows.add("offer", agg.arc_offer[o], arc_cols[o], np.ones(o.sum()),
             np.full(len(offers), -np.inf), capacity)
    f = agg.arc_fund >= 0
    rows.add("fund", agg.arc_fund[f], arc_cols[f], agg.arc_charge[f],
             np.full(len(funds), -np.inf), funds["budget"].to_numpy(float))
    # A group whose offers charge one capped fund share the fund's household caps (a single
    # such offer is already bounded by its column).
    cap = funds["max_per_household"].to_numpy(float) if len(funds) else np.zeros(0)
    fc = f & ~np.isnan(cap[np.maximum(agg.arc_fund, 0)] if len(cap) else np.ones(len(f)))
    if fc.any():
        pair = pd.DataFrame({"g": agg.arc_group[fc], "f": agg.arc_fund[fc]})
        code = pair.groupby(["g", "f"], sort=True).ngroup().to_numpy()
        shared = np.bincount(code)[code] > 1
        if shared.any():
            code2 = pd.factorize(code[shared], sort=True)[0]
            households = agg.group_households
            limit = pd.Series(cap[agg.arc_fund[fc][shared]] *
                              households[agg.arc_group[fc][shared]]).groupby(code2).first()
            rows.add("group_fund", code2, arc_cols[fc][shared], agg.arc_charge[fc][shared],
                     np.full(len(limit), -np.inf), limit.to_numpy())
    p = agg.arc_pool >= 0
    if p.any():
        hours = hours_per_unit(data.services, agg.group_service[agg.arc_group[p]])
        add_volunteer_hour_rows(rows, data, pools, agg.arc_pool[p], arc_cols[p], hours)
    seg_tier = agg.group_tier[agg.seg_group]
    n_r = len(agg.red_streets)
    # City red fill rate z = Σ red φ ÷ red needs; per street: floor and deviation rows.
    red = np.flatnonzero(seg_tier == RED)
    n_red = agg.seg_needs[red].sum()
    rows.add("city_red", np.zeros(len(red) + 1), np.concatenate([seg_cols[red], [z]]),
             np.concatenate([np.full(len(red), 1.0 / max(n_red, 1.0)), [-1.0]]),
             np.zeros(1), np.zeros(1))
    street_code = pd.Series(np.arange(n_r), index=agg.red_streets)
    red_street = street_code.reindex(agg.group_street[agg.seg_group[red]]).to_numpy() \
        .astype(np.int64) if n_r else np.zeros(0, np.int64)
    per_street = 1.0 / agg.red_street_needs[red_street] if n_r else np.zeros(0)
    # Floor rows: street red fill rate + the largest shortfall t ≥ the street's floor.
    rows.add("floor", np.concatenate([red_street, np.arange(n_r)]),
             np.concatenate([seg_cols[red], np.full(n_r, r0)]),
             np.concatenate([per_street, np.ones(n_r)]), np.full(n_r, -np.inf),
             np.full(n_r, np.inf))
    rows.add("deviation", np.concatenate([red_street, np.arange(n_r)]),
             np.concatenate([seg_cols[red], np.full(n_r, z)]),
             np.concatenate([per_street, -np.ones(n_r)]), np.full(n_r, -np.inf),
             np.full(n_r, np.inf))
    layout = _Layout(seg=slice(s0, a0), arc=slice(a0, r0), short=r0, city=z, rows=rows)
    return rows, layout


# ----------------------------------------------------------------------------- comparisons


def price_of_fairness(fair: BudgetSolution, free: BudgetSolution) -> pd.DataFrame:
    """What the equity dial costs: per level, the value without the dial, with it, and the
    price (what is lost: colour values and fill rates go down, money goes up).

    Returns
    -------
    pandas.DataFrame
        ``level, measure, without_dial, with_dial, price`` for each colour's ``value`` (Σ
        urgency × served ÷ needed) and ``fill_points`` (fill rate in percentage points), and
        the ``money`` level's yuan. Lexicographically the price is ≥ 0: the red price is never
        negative, and a later colour can gain only where an earlier one lost.
    """
    rows = []
    for t in TIER_LEVELS:
        a = float(free.values()[t])
        b = float(fair.values()[t])
        rows.append((t, "value", a, b, a - b))
        a = float(free.fill_rates()[t]) * 100
        b = float(fair.fill_rates()[t]) * 100
        rows.append((t, "fill_points", a, b, a - b))
    rows.append(("money", "yuan", free.money, fair.money, fair.money - free.money))
    return pd.DataFrame(rows, columns=["level", "measure", "without_dial", "with_dial", "price"])


__all__ = ["EquityDial", "BudgetSolution", "BudgetModel", "build_budget_model",
           "price_of_fairness", "POINTS_PER_10K"]
