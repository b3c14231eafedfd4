"""The budget lab's aggregate: the weekly model with its needs grouped, and its LP.

Needs are grouped by street × service × colour × the set of offers they may use (the arcs of
``optimizer.eligibility``, as in the weekly model) and, inside a group, into segments of one
urgency and one quantity. :func:`aggregate` builds the columns (:class:`AggregateColumns`),
:func:`aggregate_lp` the rows, bounds and level objectives (:class:`AggregateLP`).
docs/model.md §2 has the mathematics and what the aggregation relaxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wulian.optimizer.allocation import (
    TIER_LEVELS,
    AllocationInput,
    add_volunteer_hour_rows,
    hours_per_unit,
)
from wulian.optimizer.eligibility import (
    arc_upper,
    fund_household_units,
    offer_arcs,
    offer_household_units,
    pool_of,
)
from wulian.optimizer.lexmip import Rows, csr

RED = TIER_LEVELS[0]


@dataclass
class AggregateColumns:
    """Segments, groups (street × service × colour × signature) and group arcs: what the
    aggregate LP's columns stand for (:class:`AggregateLP` says where they sit)."""

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


def aggregate(data: AllocationInput, needs: pd.DataFrame, offers: pd.DataFrame,
               funds: pd.DataFrame, pools: pd.DataFrame) -> tuple[AggregateColumns, dict]:
    """Group the needs and their arcs (docs/model.md §2): the columns, and the sizes
    (``BudgetModel.sizes``)."""
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
    agg = AggregateColumns(
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



@dataclass
class AggregateLP:
    """The aggregate as one LP: where each family of columns and rows sits, the matrix, the
    bounds as they stand and each level's objective.

    Columns: the segments (``seg``), the group arcs (``arc``), the equity dial's largest
    shortfall below a floor (``short``) and the city's red fill rate (``city``), in that
    order. ``rows`` holds the rows as built (the scenario's bounds); ``col_lo`` … ``row_hi``
    the bounds as they stand (``BudgetModel.set_demand`` and ``set_supply`` change them, and
    ``set_demand`` the red coefficients of ``matrix``; budgets are put in per solve)."""

    seg: slice
    arc: slice
    short: int
    city: int
    rows: Rows
    matrix: tuple[np.ndarray, np.ndarray, np.ndarray]  # (row, column, value), by row
    col_lo: np.ndarray
    col_hi: np.ndarray
    row_lo: np.ndarray
    row_hi: np.ndarray
    fund_rows: np.ndarray  # the budget rows
    seg_tier: np.ndarray  # each segment's colour, as its position in TIER_LEVELS
    objectives: dict[str, np.ndarray]  # level (a colour, money, equity) → cost per column

    @property
    def n_cols(self) -> int:
        return len(self.col_lo)

    def family(self, name: str) -> slice:
        return self.rows.family(name)

    def family_index(self, name: str) -> int:
        """The position of a family in ``rows``' lists (``rows.row[i]`` …)."""
        return [k for k, (family, _, _) in enumerate(self.rows.names) if family == name][0]


def aggregate_lp(data: AllocationInput, agg: AggregateColumns, offers: pd.DataFrame,
                 funds: pd.DataFrame, pools: pd.DataFrame) -> AggregateLP:
    """The aggregate's LP: its rows (group, offer, fund, group × fund household cap, pool and
    street hours, the equity dial's city, floor and deviation rows), its bounds as the
    scenario gives them and each level's objective."""
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
    n = agg.n_cols
    # The whole matrix once, row by row (what every level's LP is cut from).
    _, col, val, row = csr(rows, n)
    fund = rows.family("fund")
    tier_code = pd.Series(np.arange(len(TIER_LEVELS)), index=list(TIER_LEVELS))
    return AggregateLP(
        seg=slice(s0, a0), arc=slice(a0, r0), short=r0, city=z, rows=rows,
        matrix=(row, col.astype(np.int64), val),
        col_lo=np.zeros(n), col_hi=np.concatenate([agg.seg_needs, agg.arc_upper, [0.0, 1.0]]),
        row_lo=np.concatenate(rows.lower) if rows.lower else np.zeros(0),
        row_hi=np.concatenate(rows.upper) if rows.upper else np.zeros(0),
        fund_rows=np.arange(fund.start, fund.stop, dtype=np.int32),
        seg_tier=tier_code.reindex(agg.group_tier[agg.seg_group]).to_numpy(),
        objectives=_level_costs(agg, slice(s0, a0), slice(a0, r0), r0))


def _level_costs(agg: AggregateColumns, seg: slice, arc: slice, short: int
                 ) -> dict[str, np.ndarray]:
    """Each level's cost of each column: a colour weighs its segments by urgency, money the
    arcs by yuan charged, the equity dial the largest shortfall."""
    n = agg.n_cols
    costs = {}
    seg_tier = agg.group_tier[agg.seg_group]
    for t in TIER_LEVELS:
        c = np.zeros(n)
        c[seg] = np.where(seg_tier == t, agg.seg_urgency, 0.0)
        costs[t] = c
    costs["money"] = np.zeros(n)
    costs["money"][arc] = agg.arc_charge
    costs["equity"] = np.zeros(n)
    costs["equity"][short] = 1.0
    return costs

