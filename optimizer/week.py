"""The combined week as one model (issue 19; docs/matching.md, "One plan"): the allocation and
the volunteer matching together, so that what a volunteer pool gives a need is visits a named
volunteer can make, and the week's monitoring visits take their hours by colour.

The allocation's model (``optimizer.allocation.build_model``: arcs, unserved columns, rows) is
extended with one column per (visit, volunteer within reach) — slots are interchangeable
(docs/matching.md), so a volunteer has two capacities, free slots and hours — and one per due
household's monitoring. A need's pool arc carries exactly the units of its placed visits:
services counted in visits give one visit per unit, services counted in hours visits of the
service's ``visit_hours``, only the last one shorter. A due household is monitored when any
visit to it is placed (a service visit doubles as the monitoring visit, as the matching does).

Levels, colour by colour: the colour's due households monitored, then the allocation's
coverage of the colour. The answer is used for what it decides that the allocation alone
cannot see (each need's pool units); the allocation and the matching are then run as ever with
those units as caps (``planning.match.plan_week``). Built for small weeks, where branch and
bound proves every level in a fraction of a second; a caller gives it a size limit and a time
limit and falls back to the rounds when either is passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from wulian.optimizer.allocation import (
    AllocationInput,
    build_levels,
    build_model,
    hours_per_unit,
)
from wulian.optimizer.eligibility import capable
from wulian.optimizer.geo import haversine_km
from wulian.optimizer.lexmip import Level, solve_lexicographic
from wulian.optimizer.status import Status

TIERS = ("red", "orange", "yellow", "green")
# Most household × volunteer distances worked out to size a week (a few street's worth).
REACH_CELLS = 2_000_000
# Households whose reach is worked out at a time while a week is sized.
SIZE_BLOCK = 256


@dataclass
class WeekModel:
    """The combined week's answer: each level's value and status, and per need with a pool
    arc the units its placed visits carry."""

    levels: dict[str, tuple[float, Status]]
    pool_units: dict[str, float]
    monitored: list[str]  # due households a visit reaches in the answer
    # The answer's volunteer of each placed service visit, by the matching's visit id
    # (``need_id#k``, k from 1 in the order the need's visits are made).
    visit_volunteers: dict[str, str]
    columns: int

    @property
    def proven(self) -> bool:
        return all(status == Status.OPTIMAL for _, status in self.levels.values())


class _Columns:
    """Columns appended after the allocation's: bounds and integrality, by blocks."""

    def __init__(self, first: int):
        self.count = first
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []

    def add(self, n: int, upper, integer: bool = True) -> np.ndarray:
        index = np.arange(self.count, self.count + n)
        self.count += n
        self.lower.append(np.zeros(n))
        self.upper.append(np.broadcast_to(np.asarray(upper, float), (n,)).copy())
        self.integer.append(np.full(n, integer))
        return index


def solve_week(data: AllocationInput, places: pd.DataFrame, due: np.ndarray,
               monitoring_hours: float, *, max_columns: int = 20_000,
               time_limit: float = 0.0) -> WeekModel | None:
    """Solve the combined week lexicographically; ``None`` when its model would have more than
    ``max_columns`` columns (the caller keeps its rounds).

    ``places``: every household of the week (index ``household_id``) with ``lat``, ``lon``,
    ``tier``; ``due``: the households due a monitoring visit; ``monitoring_hours``: a monitoring
    visit's length. Volunteers are ``data.volunteers`` (any of them within reach may make any
    visit, as in the matching). Pins are not modelled: a week with pins keeps the rounds.
    ``time_limit``: seconds per solver call (0: none; HiGHS' node limit still bounds each MIP).
    """
    if len(data.pins):
        return None
    vols = data.volunteers.reset_index(drop=True)
    in_person = data.services.loc[data.services["delivery"] == "in_person", "service_id"]
    served = data.needs[data.needs["service_id"].isin(in_person)]
    households = pd.Index(pd.unique(np.concatenate([
        served["household_id"].to_numpy(object), np.asarray(due, dtype=object)])))
    if len(households) * len(vols) > REACH_CELLS:
        return None  # a district or a city: even who reaches whom is too large to list
    services = data.services.reset_index(drop=True)
    able = capable(vols, services)  # volunteer × service
    # The size before anything is built: each need's visits (at most its quantity, twice the
    # columns when counted in hours) with the capable volunteers within reach, and each due
    # household's monitoring with every volunteer within reach. Summed over blocks of
    # households, so that a week far too large (the demo's district) stops at its first
    # blocks instead of listing who reaches whom for all of them.
    row = households.get_indexer(served["household_id"])
    col = pd.Index(services["service_id"]).get_indexer(served["service_id"])
    due_row = households.get_indexer(due)
    quantity = served["quantity"].to_numpy(float)
    lat = places["lat"].reindex(households).to_numpy(float)
    lon = places["lon"].reindex(households).to_numpy(float)
    reach_km = vols["max_travel_km"].to_numpy(float)[None, :] + 1e-9
    blocks, estimate = [], 0.0
    for first in range(0, len(households), SIZE_BLOCK):
        last = min(first + SIZE_BLOCK, len(households))
        # Who is within whose reach (household × volunteer), for the size and the columns.
        within = haversine_km(lat[first:last, None], lon[first:last, None],
                              vols["lat"].to_numpy(float)[None, :],
                              vols["lon"].to_numpy(float)[None, :]) <= reach_km
        blocks.append(within)
        mine = (row >= first) & (row < last)
        pairs = (within[row[mine] - first] & able[:, col[mine]].T).sum(axis=1)
        monitored = due_row[(due_row >= first) & (due_row < last)] - first
        estimate += float((2 * quantity[mine] * pairs).sum()) + float(within[monitored].sum())
        if estimate > max_columns:
            return None
    within = np.concatenate(blocks) if blocks else np.zeros((0, len(vols)), bool)
    built = build_model(data)
    needs, model, rows = built.needs, built.model, built.rows
    n_arcs, n_needs = len(model.need), len(needs)
    slots = vols["availability"].fillna("").str.split(";").map(
        lambda cells: sum(1 for c in cells if c)).to_numpy(float)
    max_hours = vols["max_hours"].to_numpy(float)
    service_of_need = pd.Index(services["service_id"]).get_indexer(needs["service_id"])

    def reach(household: str) -> np.ndarray:
        return within[households.get_loc(household)]

    pool_arcs = np.flatnonzero(model.pool >= 0)
    arc_need = model.need[pool_arcs]
    unit = needs["unit"].to_numpy()[arc_need]
    length = hours_per_unit(data.services, needs["service_id"].to_numpy()[arc_need])
    visit_length = services.set_index("service_id")["visit_hours"].reindex(
        needs["service_id"].to_numpy()[arc_need]).to_numpy(float)
    quantity = needs["base_quantity"].to_numpy(float)[arc_need]
    by_hour = unit == "hour"
    count = np.where(by_hour, np.ceil(quantity / np.where(by_hour, visit_length, 1) - 1e-9),
                     quantity).astype(np.int64)

    cols = _Columns(n_arcs + n_needs)
    slot_cols: list[np.ndarray] = []
    slot_vol: list[np.ndarray] = []
    hour_cols: list[np.ndarray] = []
    hour_vol: list[np.ndarray] = []
    hour_coef: list[np.ndarray] = []
    visits_of: dict[str, list[np.ndarray]] = {}  # household → its visit columns
    visit_columns: list[tuple[str, np.ndarray, np.ndarray]] = []  # (visit id, columns, who)
    for arc, need, k_visits, hourly, span in zip(pool_arcs, arc_need, count, by_hour,
                                                 np.where(by_hour, visit_length, length),
                                                 strict=True):
        household = str(needs.at[need, "household_id"])
        who = np.flatnonzero(able[:, int(service_of_need[need])] & reach(household))
        placed_cols, length_cols = [], []
        for k in range(k_visits):
            y = cols.add(len(who), 1.0)
            visit_columns.append((f"{needs.at[need, 'need_id']!s}#{k + 1}", y, who))
            visits_of.setdefault(household, []).append(y)
            slot_cols.append(y)
            slot_vol.append(who)
            # A visit by at most one volunteer: its "placed" is Σ y.
            rows.add("visit", np.zeros(len(y)), y, np.ones(len(y)), np.array([-np.inf]),
                     np.array([1.0]))
            placed_cols.append(y)
            if hourly:
                # Its hours, by whom: up to a full visit, and when placed at least the
                # shortest last visit whole hours can leave (1 ÷ the denominator of the
                # visit's length: 1 h for 2 h visits, ½ h for 1½ h ones), so that no visit of
                # no hours counts as a household's monitoring.
                shortest = 1.0 / Fraction(float(span)).limit_denominator(60).denominator
                h = cols.add(len(who), span, integer=False)
                rows.add("visit_hours", np.arange(len(y)).repeat(2),
                         np.column_stack([h, y]).ravel(),
                         np.tile([1.0, -span], len(y)), np.full(len(y), -np.inf),
                         np.zeros(len(y)))
                rows.add("visit_hours_least", np.arange(len(y)).repeat(2),
                         np.column_stack([h, y]).ravel(),
                         np.tile([1.0, -shortest], len(y)), np.zeros(len(y)),
                         np.full(len(y), np.inf))
                hour_cols.append(h)
                hour_vol.append(who)
                hour_coef.append(np.ones(len(y)))
                length_cols.append(h)
            else:
                hour_cols.append(y)
                hour_vol.append(who)
                hour_coef.append(np.full(len(y), span))
        # Visits in order: the next placed only when this one is (and, by the hour, full).
        for k in range(k_visits - 1):
            this, after = placed_cols[k], placed_cols[k + 1]
            if hourly:
                rows.add("visit_order", np.zeros(len(length_cols[k]) + len(after)),
                          np.concatenate([length_cols[k], after]),
                          np.concatenate([np.ones(len(length_cols[k])),
                                          np.full(len(after), -span)]),
                         np.array([0.0]), np.array([np.inf]))
            else:
                rows.add("visit_order", np.zeros(len(this) + len(after)),
                          np.concatenate([this, after]),
                          np.concatenate([np.ones(len(this)), -np.ones(len(after))]),
                          np.array([0.0]), np.array([np.inf]))
        # The pool arc carries exactly the units of its placed visits.
        parts = np.concatenate(length_cols if hourly else placed_cols) if k_visits else \
            np.zeros(0, np.int64)
        rows.add("pool_visits", np.zeros(len(parts) + 1, np.int64),
                  np.concatenate([[arc], parts]),
                  np.concatenate([[1.0], -np.ones(len(parts))]), np.array([0.0]), np.array([0.0]))
    monitored = {}
    for household in due:
        who = np.flatnonzero(reach(household))
        alone = cols.add(len(who), 1.0)
        slot_cols.append(alone)
        slot_vol.append(who)
        hour_cols.append(alone)
        hour_vol.append(who)
        hour_coef.append(np.full(len(who), monitoring_hours))
        m = cols.add(1, 1.0)
        monitored[household] = int(m[0])
        # Monitored only when some visit to the household is placed.
        by = np.concatenate([alone, *visits_of.get(household, [])])
        rows.add("monitored", np.zeros(len(by) + 1, np.int64), np.concatenate([m, by]),
                  np.concatenate([[1.0], -np.ones(len(by))]), np.array([-np.inf]), np.array([0.0]))
    if slot_cols:
        rows.add("volunteer_slots", np.concatenate(slot_vol), np.concatenate(slot_cols),
                  np.ones(sum(map(len, slot_cols))), np.full(len(vols), -np.inf), slots)
        rows.add("volunteer_hours", np.concatenate(hour_vol), np.concatenate(hour_cols),
                  np.concatenate(hour_coef), np.full(len(vols), -np.inf), max_hours + 1e-9)

    n = cols.count
    alloc_levels = {lv.name: lv for lv in build_levels(needs, model)}
    levels = []
    for tier in TIERS:
        watch = np.zeros(n)
        watch[[c for h, c in monitored.items() if places.at[h, "tier"] == tier]] = 1.0
        levels.append(Level(f"{tier}:monitoring", "max", watch))
        cover = np.zeros(n)
        cover[:n_arcs + n_needs] = alloc_levels[tier].cost
        levels.append(Level(f"{tier}:coverage", "max", cover))
    q = needs["base_quantity"].to_numpy(float)
    lower = np.concatenate([model.lower, np.zeros(n_needs), *cols.lower])
    upper = np.concatenate([model.upper, q, *cols.upper])
    integer = np.concatenate([np.ones(n_arcs + n_needs, bool), *cols.integer])
    result = solve_lexicographic(lower, upper, integer, rows, levels, time_limit=time_limit,
                                 exact=True)
    x = result.x
    pool_units = pd.Series(x[pool_arcs]).groupby(
        needs["need_id"].to_numpy()[arc_need]).sum().round(9)
    return WeekModel(
        levels={lv.name: (lv.value, lv.status) for lv in result.levels},
        pool_units={str(k): float(v) for k, v in pool_units.items()},
        monitored=sorted(h for h, c in monitored.items() if x[c] > 0.5),
        visit_volunteers={visit: str(vols.at[who[np.argmax(x[y])], "volunteer_id"])
                          for visit, y, who in visit_columns if len(y) and x[y].max() > 0.5},
        columns=n)
