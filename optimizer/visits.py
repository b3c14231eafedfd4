"""Volunteer matching: the visits of one week → (volunteer, half-day slot).

Pure model: DataFrames in, DataFrames out; no files, no database, no UI (DESIGN §2, §4.3).
``planning/match.py`` builds the visits from an allocation run and explains the result.

The problem
-----------
Each visit ``v`` has a household location, a length ``h_v`` in hours, the skills it needs (all
of them), whether it needs a background-checked volunteer (a ``safeguarding`` service), a
priority class (the household's colour, then the urgency) and possibly the household's last
volunteer (continuity) and a pin. Each volunteer ``i`` has a home, skills, a background check,
``max_hours`` ``H_i``, ``max_travel_km`` ``D_i`` and the half-day slots ``A_i`` they are
available in. A visit may go to volunteer ``i`` in slot ``t`` when

- ``i`` has every skill the visit needs, and a background check when it needs one;
- the great-circle distance from ``i``'s home to the household is at most ``D_i``;
- ``t ∈ A_i``; ``i`` makes at most one visit per slot; ``Σ h_v ≤ H_i`` over ``i``'s visits.

Pins (a visit's volunteer, optionally its slot) are kept; a pin that cannot be kept is refused
before solving with every reason (:class:`VisitPinError`).

**Slots are interchangeable.** No visit prefers one slot to another (only a pin names one), so
whether volunteer ``i`` can take a set of visits depends only on their number (at most ``i``'s
free available slots ``S_i``) and their hours (at most ``H_i``). The model therefore assigns
visits to volunteers under these two limits and deals each volunteer's visits into their free
available slots in calendar order afterwards, which is always possible; the tests re-derive
the optimum on an explicit visit × volunteer × slot formulation.

**Identical visits are one group.** Visits with the same location, length, skills, check,
priority class and last volunteer are interchangeable for every constraint and every level
(households placed at their station share its location), so the model has one integer
variable per (group, volunteer) pair: how many of the group's visits the volunteer makes.

Objective, lexicographic
------------------------
1. **coverage**, one level per priority class in order (red urgency 3, red 2, red 1, orange 3,
   …, green 1): the number of the class's visits placed, maximised;
2. **travel**: Σ distance from the volunteer's home to the household, minimised, counted in
   whole metres (each pair's haversine rounded to the metre: the objective's exact unit);
3. **continuity**: the number of visits made by the household's last volunteer, maximised;
4. **load**: ``Σ_i hours_i²``, minimised — a convex cost per hour (the marginal cost of an
   hour grows with the hours a volunteer already has), so load is balanced without a quota.

Solving, and why each is exact
------------------------------
*All visits of one length* ``L`` (the case of unit visits) make the problem a b-matching, solved
by two OR-Tools ``SimpleMinCostFlow`` calls on arcs built as numpy arrays:

- *Coverage.* source → group (capacity: its visits, cost ``−w_k`` for class ``k``), group →
  volunteer (capacity ``min(n_g, c_i)``), volunteer → sink (capacity ``c_i = min(S_i,
  ⌊H_i / L⌋)``), and source → sink for visits left out. The sets of visits that can be placed
  together are the independent sets of a matroid (a gammoid: the sources that can each send a
  unit through the network), so the greedy basis is *Gale-optimal*: it places the most visits
  possible in every prefix of the class order at once. Any maximum-weight set for weights that
  strictly decrease with the class (``w_k = K − k``) has exactly the greedy counts (its sorted
  weights equal the greedy basis's), so one flow gives the lexicographic coverage counts
  ``g_k`` exactly, with no large weights.
- *Travel, continuity, load.* Each class node then supplies exactly ``g_k`` (so only
  coverage-optimal placements are feasible: the lexicographic face is a network of its own),
  group → volunteer arcs cost ``T·metres − Q·[last volunteer]`` and volunteer → sink becomes
  parallel unit arcs, the ``j``-th costing ``(P_i + jL)² − (P_i + (j−1)L)²`` (``P_i`` pinned
  hours; convex, so the flow fills them in order). With ``Λ`` the largest possible load cost,
  ``Q = Λ + 1`` and ``T = Q·C + Λ + 1`` (``C`` the most visits continuity could count), one
  metre outweighs any continuity and load difference and one continuity visit any load
  difference: the three levels are separated provably, so one flow solves them exactly.

  The flow is used only when ``T`` and the other costs, scaled as OR-Tools does, fit in int64;
  otherwise (very large instances) CP-SAT takes over.

*Visits of different lengths* make it a generalised assignment problem with a second capacity
(slots), no longer a matroid; OR-Tools CP-SAT solves it level by level by **sequential solves
holding earlier levels**: each level is optimised with every earlier level held at the value it
reached (a row ``≥`` or ``≤`` that value), one coverage class per solve (so objective
coefficients stay 0/1 and CP-SAT's bound is a bound on the class itself), the previous solution
given as a hint. The first solution comes from :func:`_heuristic` (class by class, a
max-flow-min-cost with hours counted conservatively). Each solve has a *deterministic* time
limit (``time_limit``, CP-SAT's deterministic time, about seconds of one core), so even a
time-limited answer is reproducible; a level not proven optimal is held at the value found, and
every later level is then optimal only *given* that value.

Large models: beyond ``max_pairs`` (group, volunteer) pairs, CP-SAT is given each group's
nearest volunteers plus the pairs in use (a single CP-SAT worker cannot even presolve a district
of half a million pairs within seconds). Its proofs then hold for that restriction only, so a
level is called optimal only when its value meets a bound valid for the *full* model
(:func:`_bounds`): per class, the fewer of the visits within reach and a prefix bound from a
coverage flow that counts hours at each volunteer's shortest visit (a relaxation, matroid again,
so one flow bounds every prefix of the class order); travel, each placed visit at its nearest
volunteer; continuity, the visits whose last volunteer could make them; load, the fewest hours
the held counts need, spread evenly. Otherwise the level reports that bound and its gap. On a
model within ``max_pairs`` (every test instance) CP-SAT's own proof is used, and a level that
already meets a valid bound is not solved again.

``optimizer.matching.solve_gap`` is not reused: it assigns every job exactly once against one
capacity, while here visits may stay unplaced, class by class, against two capacities (hours and
slots).

After solving, any unplaced visit that still fits a volunteer (a free slot and enough hours) is
placed greedily, nearest volunteer first; on an optimal answer this never happens (placing it
would raise coverage), on a time-limited one it makes the reasons below true.

Reasons for unplaced visits
---------------------------
Each unplaced visit gets the first reason that applies, over *qualified* volunteers:

1. ``no_volunteer_with_skill``: no volunteer in the data has every skill the visit needs;
2. ``no_safeguarding_check``: the visit needs a background check and no volunteer with the
   skills has one;
3. ``beyond_travel_limit``: volunteers with the skills (and check) exist, but none lives within
   their own ``max_travel_km`` of the household;
4. ``no_available_slot``: every such volunteer within reach has no available slot left free in
   the final plan (all taken by other visits, or no availability at all);
5. ``hours_exhausted``: some such volunteer within reach has a free slot, but each of them has
   fewer hours left (``max_hours`` less the hours of their visits) than the visit takes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from ortools.graph.python import min_cost_flow
from ortools.sat.python import cp_model

from contract import vocab
from optimizer.lexmip import LevelResult
from optimizer.status import Status

SLOTS: tuple[str, ...] = tuple(vocab.SLOTS)
REASONS: tuple[str, ...] = ("no_volunteer_with_skill", "no_safeguarding_check",
                            "beyond_travel_limit", "no_available_slot", "hours_exhausted")
URGENCIES: tuple[int, ...] = (3, 2, 1)
#: Priority classes, best first: (colour, urgency).
CLASSES: tuple[tuple[str, int], ...] = tuple((t, u) for t in vocab.TIER_ORDER for u in URGENCIES)
EARTH_KM = 6371.0088
#: Columns a visits table must have (others pass through untouched).
VISIT_COLUMNS: tuple[str, ...] = ("visit_id", "household_id", "tier", "urgency", "hours",
                                  "skills", "safeguarding", "lat", "lon", "last_volunteer",
                                  "pin_volunteer", "pin_slot")
# A distance equal to the travel limit is within it; this absorbs the last bits of rounding.
_KM_TOLERANCE = 1e-9
# SimpleMinCostFlow works in int64 and scales costs by (nodes + 1): keep |cost| × (nodes + 1)
# and the objective well inside it, or fall back to CP-SAT.
_FLOW_COST_LIMIT = 2**62


@dataclass(frozen=True)
class MatchParams:
    """Parameters of the volunteer matching; ``planning.match`` uses the monitoring ones.

    Attributes
    ----------
    monitoring_hours
        Length of a monitoring visit in hours.
    monitoring_urgency
        Urgency a monitoring-only visit is ranked with inside its colour (a routine check
        ranks like a need of medium urgency); a service visit that also counts as the
        monitoring visit takes the higher of the two.
    monitoring_scope
        ``"all"``: every household in scope whose cycle has come round; ``"open_needs"``: only
        those with a need open in the week.
    method
        ``"auto"`` (min-cost flow when all visits have one length, else CP-SAT), ``"flow"`` or
        ``"cp_sat"``.
    time_limit
        CP-SAT deterministic time per solve (about seconds of one core).
    max_pairs
        Most (group, volunteer) pairs CP-SAT is given; beyond it, each group keeps its nearest
        volunteers (and the pairs in use), and optimality is claimed only against bounds of the
        full model.
    workers
        CP-SAT search workers; 1 keeps the answer reproducible.
    seed
        CP-SAT random seed.
    """

    monitoring_hours: float = 1.0
    monitoring_urgency: int = 2
    monitoring_scope: str = "all"
    method: str = "auto"
    time_limit: float = 5.0
    max_pairs: int = 40_000
    workers: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("auto", "flow", "cp_sat"):
            raise ValueError(f"method must be auto, flow or cp_sat, not {self.method!r}")
        if self.monitoring_scope not in ("all", "open_needs"):
            raise ValueError("monitoring_scope must be all or open_needs, "
                             f"not {self.monitoring_scope!r}")
        if self.monitoring_urgency not in URGENCIES:
            raise ValueError(f"monitoring_urgency must be 1, 2 or 3, not {self.monitoring_urgency}")
        if not (self.monitoring_hours > 0 and math.isfinite(self.monitoring_hours)):
            raise ValueError(f"monitoring_hours must be positive, not {self.monitoring_hours}")
        if self.max_pairs < 1:
            raise ValueError(f"max_pairs must be positive, not {self.max_pairs}")
        if not (self.time_limit > 0 and math.isfinite(self.time_limit)):
            raise ValueError(f"time_limit must be positive, not {self.time_limit}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")


class VisitPinError(ValueError):
    """Pins that cannot be kept; ``problems`` says which pin and why, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass
class VisitMatch:
    """The outcome of :func:`match_visits`.

    Attributes
    ----------
    assignments
        One row per placed visit: ``visit_id, volunteer_id, slot, hours, km`` (one way, home to
        household), in the order of the visits table.
    unplaced
        One row per unplaced visit: ``visit_id, reason``.
    load
        One row per volunteer: ``volunteer_id, hours, visits, km, max_hours,
        available_slots``.
    levels
        One :class:`~optimizer.lexmip.LevelResult` per level: ``cover:<colour>:<urgency>`` for
        each class with visits, then ``travel`` (km), ``continuity`` (visits), ``load``
        (hours²); values recomputed from the final plan.
    status
        ``optimal`` when every level is proven, else ``time_limit`` or ``feasible``.
    method
        ``min_cost_flow`` or ``cp_sat`` (``none`` when there is nothing to place).
    sizes
        Counts: visits, pinned, groups, volunteers, pairs.
    build_seconds, solve_seconds
        Wall time building the model, and solving it.
    """

    assignments: pd.DataFrame
    unplaced: pd.DataFrame
    load: pd.DataFrame
    levels: list[LevelResult]
    status: Status
    method: str
    sizes: dict[str, int] = field(default_factory=dict)
    build_seconds: float = 0.0
    solve_seconds: float = 0.0


# ----------------------------------------------------------------------------- helpers


def bits(cells: pd.Series | np.ndarray, vocabulary) -> np.ndarray:
    """Each ';'-list cell as an int64 bit mask over ``vocabulary`` (empty cell → 0)."""
    position = {code: 1 << i for i, code in enumerate(vocabulary)}
    cells = pd.Series(np.asarray(cells, dtype=object)).fillna("").astype(str)
    masks = {cell: sum(position[c] for c in cell.split(";") if c) for cell in pd.unique(cells)}
    return cells.map(masks).to_numpy(dtype=np.int64)


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km, elementwise."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlmb = np.radians(np.asarray(lon2, float) - np.asarray(lon1, float))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def hour_scale(hours: np.ndarray) -> tuple[int, bool]:
    """The smallest ``s`` in 1…60 making every ``hours × s`` whole (half-hours give 2).

    Returns ``(s, exact)``; when no such ``s`` exists, ``(60, False)``: minutes, with visit
    lengths rounded up (never under-counting a volunteer's hours).
    """
    hours = np.asarray(hours, float)
    for s in range(1, 61):
        scaled = hours * s
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6):
            return s, True
    return 60, False


def _pairs_within(loc_lat: np.ndarray, loc_lon: np.ndarray, vol_lat: np.ndarray,
                  vol_lon: np.ndarray, reach_km: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """(location, volunteer, km) for every volunteer within their reach of a location.

    A grid of cells at least as wide as the longest reach puts every such pair in neighbouring
    cells, so only those are compared: the work follows the pairs that exist, not locations ×
    volunteers.
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if not len(loc_lat) or not len(vol_lat):
        return empty
    reach = float(np.max(reach_km)) + 1e-6
    top = np.radians(min(89.0, max(np.abs(loc_lat).max(), np.abs(vol_lat).max())
                         + reach / 110.0))
    # One degree of latitude is at least 110.5 km, of longitude at least 111 km × cos(latitude)
    # up to the highest latitude a path can reach, so cells of these sizes in degrees are at
    # least ``reach`` km wide.
    cell_lat = reach / 110.5
    cell_lon = reach / (111.0 * math.cos(top))
    loc = pd.DataFrame({"ci": np.floor(loc_lat / cell_lat).astype(np.int64),
                        "cj": np.floor(loc_lon / cell_lon).astype(np.int64),
                        "loc": np.arange(len(loc_lat))})
    vci = np.floor(vol_lat / cell_lat).astype(np.int64)
    vcj = np.floor(vol_lon / cell_lon).astype(np.int64)
    shift = np.array([(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)])
    vol = pd.DataFrame({"ci": (vci[:, None] + shift[None, :, 0]).ravel(),
                        "cj": (vcj[:, None] + shift[None, :, 1]).ravel(),
                        "vol": np.repeat(np.arange(len(vol_lat)), len(shift))})
    pairs = loc.merge(vol, on=["ci", "cj"], how="inner")
    li, vi = pairs["loc"].to_numpy(), pairs["vol"].to_numpy()
    km = haversine_km(vol_lat[vi], vol_lon[vi], loc_lat[li], loc_lon[li])
    keep = km <= reach_km[vi] + _KM_TOLERANCE
    order = np.lexsort((vi[keep], li[keep]))
    return li[keep][order], vi[keep][order], km[keep][order]


@dataclass
class _Data:
    """The model's arrays. Groups are sets of interchangeable unpinned visits."""

    scale: int  # hour units per hour
    # volunteers
    vol_ids: np.ndarray
    vol_skills: np.ndarray
    vol_checked: np.ndarray
    vol_avail: np.ndarray  # bool, volunteers × slots
    vol_max_units: np.ndarray  # max_hours in hour units
    pinned_units: np.ndarray  # hours of pinned visits, in units
    pinned_count: np.ndarray
    pinned_slot_taken: np.ndarray  # bool, volunteers × slots
    free_slots: np.ndarray  # S_i: available slots not taken by pins
    free_units: np.ndarray  # H_i less pinned hours
    # visits
    visit_units: np.ndarray
    visit_class: np.ndarray
    visit_loc: np.ndarray
    visit_group: np.ndarray  # -1 for pinned visits
    visit_last: np.ndarray  # volunteer index of the household's last volunteer, -1 none
    pin_vol: np.ndarray  # volunteer index, -1 when not pinned
    pin_slot: np.ndarray  # slot index, -1 when none
    loc_lat: np.ndarray
    loc_lon: np.ndarray
    # groups
    g_units: np.ndarray
    g_class: np.ndarray
    g_count: np.ndarray
    g_loc: np.ndarray
    g_skills: np.ndarray
    g_safe: np.ndarray
    g_last: np.ndarray  # volunteer index of the last volunteer, -1 none
    # reach pairs (group, volunteer) with skills, check and distance fine, any capacity
    r_group: np.ndarray
    r_vol: np.ndarray
    r_km: np.ndarray
    # location → volunteer distances (all within reach), for the pinned visits' km
    loc_pairs: pd.Series


def _prepare(visits: pd.DataFrame, volunteers: pd.DataFrame) -> _Data:
    """Arrays of the model, pins checked (raises VisitPinError)."""
    vols = volunteers.reset_index(drop=True)
    n_vol = len(vols)
    vol_ids = vols["volunteer_id"].astype(str).to_numpy()
    vol_index = pd.Series(np.arange(n_vol), index=vol_ids)
    avail_bits = bits(vols["availability"], SLOTS)
    vol_avail = (avail_bits[:, None] >> np.arange(len(SLOTS))[None, :]) & 1 == 1
    # Whole hour units for CP-SAT and the flow; volunteers' caps round down to them.
    scale, exact = hour_scale(visits["hours"].to_numpy(float))
    raw_units = visits["hours"].to_numpy(float) * scale
    visit_units = (np.round(raw_units) if exact else np.ceil(raw_units - 1e-6)).astype(np.int64)
    # A volunteer's cap rounds down: a volunteer is never asked for more than max_hours.
    vol_max_units = np.floor(vols["max_hours"].to_numpy(float) * scale + 1e-6).astype(np.int64)

    tier_rank = visits["tier"].map({t: i for i, t in enumerate(vocab.TIER_ORDER)})
    if tier_rank.isna().any():
        raise ValueError("every visit needs a colour (tier) of " + ", ".join(vocab.TIER_ORDER))
    urgency = visits["urgency"].to_numpy(float).astype(np.int64)
    visit_class = (tier_rank.to_numpy(np.int64) * len(URGENCIES)
                   + (max(URGENCIES) - np.clip(urgency, 1, 3)))

    lat = visits["lat"].to_numpy(float)
    lon = visits["lon"].to_numpy(float)
    loc_codes, loc_uniques = pd.factorize(pd.MultiIndex.from_arrays([lat, lon]))
    loc_lat = np.array([u[0] for u in loc_uniques], float) if len(loc_uniques) else np.zeros(0)
    loc_lon = np.array([u[1] for u in loc_uniques], float) if len(loc_uniques) else np.zeros(0)

    li, vi, km = _pairs_within(loc_lat, loc_lon, vols["lat"].to_numpy(float),
                               vols["lon"].to_numpy(float),
                               vols["max_travel_km"].to_numpy(float))
    loc_pairs = pd.Series(km, index=pd.MultiIndex.from_arrays([li, vi]), dtype=float)

    skills = bits(visits["skills"], vocab.SKILLS)
    safe = visits["safeguarding"].to_numpy(bool)
    vol_skills = bits(vols["skills"], vocab.SKILLS)
    vol_checked = vols["background_checked"].to_numpy(bool)
    last = visits["last_volunteer"].fillna("").astype(str)
    last_idx = last.map(vol_index).fillna(-1).to_numpy(np.int64)

    pin_vol_id = visits["pin_volunteer"].fillna("").astype(str).to_numpy()
    pin_slot_id = visits["pin_slot"].fillna("").astype(str).to_numpy()
    pinned = pin_vol_id != ""
    pin_vol = pd.Series(pin_vol_id).map(vol_index).fillna(-1).to_numpy(np.int64)
    slot_index = {s: i for i, s in enumerate(SLOTS)}
    pin_slot = np.array([slot_index.get(s, -1) for s in pin_slot_id], np.int64)
    pinned_units, pinned_count, slot_taken = _check_pins(
        visits["visit_id"].astype(str).to_numpy(), pinned, pin_vol, pin_slot, pin_vol_id,
        pin_slot_id, visit_units, skills, safe, loc_codes, loc_pairs, vol_ids, vol_skills,
        vol_checked, vol_avail, vol_max_units, scale)

    free_slots = np.maximum(vol_avail.sum(axis=1) - pinned_count, 0)
    free_units = np.maximum(vol_max_units - pinned_units, 0)

    # Groups of interchangeable unpinned visits, numbered in order of first appearance.
    free = ~pinned
    key = pd.MultiIndex.from_arrays([loc_codes[free], visit_units[free], skills[free],
                                     safe[free], visit_class[free], last_idx[free]])
    g_codes, g_uniques = pd.factorize(key)
    visit_group = np.full(len(visits), -1, np.int64)
    visit_group[free] = g_codes
    n_groups = len(g_uniques)
    cols = [np.asarray(g_uniques.get_level_values(k)) for k in range(6)] if n_groups else \
        [np.zeros(0, np.int64)] * 6
    g_loc, g_units, g_skills = (cols[0].astype(np.int64), cols[1].astype(np.int64),
                                cols[2].astype(np.int64))
    g_safe, g_class, g_last = cols[3].astype(bool), cols[4].astype(np.int64), \
        cols[5].astype(np.int64)
    g_count = np.bincount(g_codes, minlength=n_groups).astype(np.int64)

    # Reach pairs: group × volunteer within reach, with the skills and the check.
    loc_start = np.searchsorted(li, np.arange(len(loc_lat) + 1))
    per_group = loc_start[g_loc + 1] - loc_start[g_loc]
    r_group = np.repeat(np.arange(n_groups), per_group)
    offsets = np.arange(per_group.sum()) - np.repeat(np.cumsum(per_group) - per_group, per_group)
    take = np.repeat(loc_start[g_loc], per_group) + offsets
    r_vol, r_km = vi[take], km[take]
    ok = (vol_skills[r_vol] & g_skills[r_group]) == g_skills[r_group]
    ok &= ~g_safe[r_group] | vol_checked[r_vol]
    return _Data(
        scale=scale, vol_ids=vol_ids, vol_skills=vol_skills, vol_checked=vol_checked,
        vol_avail=vol_avail, vol_max_units=vol_max_units, pinned_units=pinned_units,
        pinned_count=pinned_count, pinned_slot_taken=slot_taken, free_slots=free_slots,
        free_units=free_units, visit_units=visit_units, visit_class=visit_class,
        visit_loc=loc_codes, visit_group=visit_group, visit_last=last_idx,
        pin_vol=np.where(pinned, pin_vol, -1), pin_slot=np.where(pinned, pin_slot, -1),
        loc_lat=loc_lat, loc_lon=loc_lon,
        g_units=g_units, g_class=g_class, g_count=g_count, g_loc=g_loc, g_skills=g_skills,
        g_safe=g_safe, g_last=g_last, r_group=r_group[ok], r_vol=r_vol[ok], r_km=r_km[ok],
        loc_pairs=loc_pairs)


def _check_pins(ids, pinned, pin_vol, pin_slot, pin_vol_id, pin_slot_id, units, skills, safe,
                loc_codes, loc_pairs, vol_ids, vol_skills, vol_checked, vol_avail,
                vol_max_units, scale):
    """Pinned hours, counts and slots per volunteer; every pin that cannot be kept, refused."""
    n_vol = len(vol_ids)
    problems: list[str] = []
    for v in np.flatnonzero(pinned):  # a loop over the coordinator's pins, not over visits
        i, who = pin_vol[v], pin_vol_id[v]
        if i < 0:
            problems.append(f"pin {ids[v]} → {who}: no such volunteer")
            continue
        if (vol_skills[i] & skills[v]) != skills[v]:
            problems.append(f"pin {ids[v]} → {who}: the volunteer lacks a skill the visit needs")
        if safe[v] and not vol_checked[i]:
            problems.append(f"pin {ids[v]} → {who}: the visit needs a background check")
        if (loc_codes[v], i) not in loc_pairs.index:
            problems.append(f"pin {ids[v]} → {who}: the household is beyond the volunteer's "
                            "travel limit")
        if pin_slot_id[v] and pin_slot[v] < 0:
            problems.append(f"pin {ids[v]} → {who}: unknown slot {pin_slot_id[v]!r}")
        elif pin_slot[v] >= 0 and not vol_avail[i, pin_slot[v]]:
            problems.append(f"pin {ids[v]} → {who}: not available in {pin_slot_id[v]}")
    ok = pinned & (pin_vol >= 0)
    pinned_units = np.bincount(pin_vol[ok], weights=units[ok], minlength=n_vol).astype(np.int64)
    pinned_count = np.bincount(pin_vol[ok], minlength=n_vol).astype(np.int64)
    slot_taken = np.zeros_like(vol_avail)
    with_slot = ok & (pin_slot >= 0)
    pairs = pd.DataFrame({"vol": pin_vol[with_slot], "slot": pin_slot[with_slot]})
    for (i, t), n in pairs.value_counts().sort_index().items():
        slot_taken[i, t] = True
        if n > 1:
            problems.append(f"pins: {n} visits pinned to {vol_ids[i]} in {SLOTS[t]}, "
                            "one visit per slot")
    for i in np.flatnonzero(pinned_count > vol_avail.sum(axis=1)):
        problems.append(f"pins: {pinned_count[i]} visits pinned to {vol_ids[i]}, available in "
                        f"{vol_avail[i].sum()} slots")
    for i in np.flatnonzero(pinned_units > vol_max_units):
        problems.append(f"pins: {pinned_units[i] / scale:g} hours pinned to {vol_ids[i]}, "
                        f"beyond max_hours")
    if problems:
        raise VisitPinError(problems)
    return pinned_units, pinned_count, slot_taken


# ----------------------------------------------------------------------------- the model


@dataclass
class _Arcs:
    """Admissible (group, volunteer) pairs: the model's variables."""

    group: np.ndarray
    vol: np.ndarray
    km: np.ndarray
    metres: np.ndarray  # int64, km rounded to the metre
    upper: np.ndarray  # most of the group's visits the volunteer can make
    cont: np.ndarray  # 1 when the volunteer is the group's last volunteer


def _arcs(d: _Data) -> _Arcs:
    """Reach pairs where the volunteer has room for at least one of the group's visits."""
    g, i = d.r_group, d.r_vol
    per_units = d.free_units[i] // np.maximum(d.g_units[g], 1)
    upper = np.minimum(np.minimum(d.g_count[g], d.free_slots[i]), per_units)
    keep = upper > 0
    g, i, km = g[keep], i[keep], d.r_km[keep]
    return _Arcs(group=g, vol=i, km=km, metres=np.round(km * 1000.0).astype(np.int64),
                 upper=upper[keep].astype(np.int64),
                 cont=(d.g_last[g] == i).astype(np.int64))


def _class_upper(d: _Data, a: _Arcs) -> np.ndarray:
    """Per class: the most of its visits that could be placed at all (a valid bound)."""
    reach = np.bincount(a.group, weights=a.upper, minlength=len(d.g_count))
    per_group = np.minimum(d.g_count, reach)
    return np.bincount(d.g_class, weights=per_group, minlength=len(CLASSES)).astype(np.int64)


def _coverage_flow(d: _Data, a: _Arcs, cap: np.ndarray) -> np.ndarray:
    """Per group, the visits a coverage flow places: source → group (weight ``K − class``),
    group → volunteer (``upper``), volunteer → sink (``cap`` visits), source → sink for the
    visits left out. Lexicographically optimal per class prefix (the matroid argument)."""
    n_groups, n_vol, k = len(d.g_count), len(d.vol_ids), len(CLASSES)
    total = int(d.g_count.sum())
    src, sink, g0, v0 = 0, 1, 2, 2 + n_groups
    tails = np.concatenate([np.full(n_groups, src), g0 + a.group, v0 + np.arange(n_vol), [src]])
    heads = np.concatenate([g0 + np.arange(n_groups), v0 + a.vol, np.full(n_vol, sink), [sink]])
    caps = np.concatenate([d.g_count, a.upper, cap, [total]])
    costs = np.concatenate([-(k - d.g_class), np.zeros(len(a.group) + n_vol + 1, np.int64)])
    return _min_cost_flow(tails, heads, caps, costs, {src: total, sink: -total})[:n_groups]


def _solve_flow(d: _Data, a: _Arcs) -> np.ndarray:
    """Counts per arc, exactly lexicographic, by two min-cost flows (see the module notes)."""
    n_groups, n_vol, k = len(d.g_count), len(d.vol_ids), len(CLASSES)
    length = int(d.g_units[0])
    cap = np.minimum(d.free_slots, d.free_units // length).astype(np.int64)
    placed = _coverage_flow(d, a, cap)
    per_class = np.bincount(d.g_class, weights=placed, minlength=k).astype(np.int64)

    # Travel, continuity, load: class nodes supply exactly the coverage counts.
    c0, g0, v0 = 0, k, k + n_groups
    sink = v0 + n_vol
    used_cap = np.minimum(cap, np.bincount(a.vol, weights=a.upper, minlength=n_vol)
                          .astype(np.int64))
    load_vol = np.repeat(np.arange(n_vol), used_cap)
    j = np.arange(len(load_vol)) - np.repeat(np.cumsum(used_cap) - used_cap, used_cap) + 1
    p = d.pinned_units[load_vol]
    load_cost = length * (2 * p + (2 * j - 1) * length)  # (P + jL)² − (P + (j−1)L)²
    top_load = int(load_cost.sum())  # Λ: no plan's load cost differs by more
    q = top_load + 1
    t = q * int(np.minimum(a.upper, d.g_count[a.group])[a.cont == 1].sum()) + top_load + 1
    tails = np.concatenate([c0 + d.g_class, g0 + a.group, v0 + load_vol])
    heads = np.concatenate([g0 + np.arange(n_groups), v0 + a.vol, np.full(len(load_vol), sink)])
    caps = np.concatenate([d.g_count, a.upper, np.ones(len(load_vol), np.int64)])
    supplies = {c: int(per_class[c]) for c in range(k)}
    supplies[sink] = -int(per_class.sum())
    # Python integers first: the check itself must not overflow.
    top = max(t * int(a.metres.max(initial=0)) + q, int(load_cost.max(initial=0)), 1)
    if top * (sink + 2) >= _FLOW_COST_LIMIT or top * int(per_class.sum()) >= _FLOW_COST_LIMIT:
        raise OverflowError("the separated costs would overflow the flow's int64 arithmetic")
    arc_cost = t * a.metres - q * a.cont
    costs = np.concatenate([np.zeros(n_groups, np.int64), arc_cost, load_cost])
    flow = _min_cost_flow(tails, heads, caps, costs, supplies)
    return flow[n_groups:n_groups + len(a.group)]


def _min_cost_flow(tails, heads, caps, costs, supplies: dict[int, int],
                   max_flow: bool = False) -> np.ndarray:
    """Flows of an OR-Tools SimpleMinCostFlow on numpy arc arrays; optimal or an error.

    With ``max_flow``, the largest flow the supplies allow at least cost instead.
    """
    mcf = min_cost_flow.SimpleMinCostFlow()
    arcs = mcf.add_arcs_with_capacity_and_unit_cost(
        np.asarray(tails, np.int32), np.asarray(heads, np.int32),
        np.asarray(caps, np.int64), np.asarray(costs, np.int64))
    nodes = np.array(sorted(supplies), np.int32)
    mcf.set_nodes_supplies(nodes, np.array([supplies[n] for n in nodes], np.int64))
    status = mcf.solve_max_flow_with_min_cost() if max_flow else mcf.solve()
    if status != mcf.OPTIMAL:
        raise RuntimeError(f"min-cost flow returned status {status}")
    return np.asarray(mcf.flows(arcs), np.int64)


def _heuristic(d: _Data, a: _Arcs) -> np.ndarray:
    """A good first plan for visits of several lengths: class by class, best first, the most
    visits of the class at least travel by a max-flow-min-cost, each volunteer counted for as
    many visits as their hours allow of the longest visit they could take (so the plan is
    always feasible); repeated while a round places more. CP-SAT starts from it."""
    n_vol = len(d.vol_ids)
    x = np.zeros(len(a.group), np.int64)
    slots, units, left = d.free_slots.copy(), d.free_units.copy(), d.g_count.copy()
    arc_class, arc_units = d.g_class[a.group], d.g_units[a.group]
    for k in np.unique(d.g_class):
        while True:
            sel = np.flatnonzero((arc_class == k) & (left[a.group] > 0)
                                 & (arc_units <= units[a.vol]) & (slots[a.vol] > 0))
            longest = np.zeros(n_vol, np.int64)
            np.maximum.at(longest, a.vol[sel], arc_units[sel])
            cap = np.minimum(slots, units // np.maximum(longest, 1))
            sel = sel[cap[a.vol[sel]] > 0]
            if not len(sel):
                break
            groups, g_at = np.unique(a.group[sel], return_inverse=True)
            vols, v_at = np.unique(a.vol[sel], return_inverse=True)
            g0, v0 = 2, 2 + len(groups)
            tails = np.concatenate([np.zeros(len(groups), np.int64), g0 + g_at,
                                    v0 + np.arange(len(vols))])
            heads = np.concatenate([g0 + np.arange(len(groups)), v0 + v_at,
                                    np.ones(len(vols), np.int64)])
            caps = np.concatenate([left[groups], np.minimum(a.upper[sel], left[a.group[sel]]),
                                   cap[vols]])
            costs = np.concatenate([np.zeros(len(groups), np.int64), a.metres[sel],
                                    np.zeros(len(vols), np.int64)])
            total = int(left[groups].sum())
            flow = _min_cost_flow(tails, heads, caps, costs, {0: total, 1: -total},
                                  max_flow=True)[len(groups):len(groups) + len(sel)]
            if not flow.any():
                break
            x[sel] += flow
            np.subtract.at(left, a.group[sel], flow)
            np.subtract.at(slots, a.vol[sel], flow)
            np.subtract.at(units, a.vol[sel], flow * arc_units[sel])
    return x


def _restrict(a: _Arcs, x: np.ndarray, max_pairs: int) -> np.ndarray:
    """Arcs CP-SAT works on: all when at most ``max_pairs``, else each group's nearest
    volunteers (as many per group as the budget allows) plus every arc in use or of
    continuity."""
    n = len(a.group)
    if n <= max_pairs:
        return np.arange(n)
    order = np.lexsort((a.vol, a.metres, a.group))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.searchsorted(a.group[order], a.group[order])
    must = (x > 0) | (a.cont == 1)
    # Arcs kept for each nearest-k: cumulative counts of ranks among the optional arcs.
    per_rank = np.cumsum(np.bincount(rank[~must], minlength=int(rank.max()) + 2))
    k = int(np.searchsorted(per_rank, max_pairs - int(must.sum()), side="right"))
    return np.flatnonzero(must | (rank < k))


def _bounds(d: _Data, a: _Arcs) -> dict:
    """Valid bounds of the full model, whatever CP-SAT is given (see ``_solve_cp_sat``).

    ``prefix[k]``: most visits of classes ≤ k placeable together, from a coverage flow that
    counts each volunteer for ``min(S_i, ⌊H_i / shortest⌋)`` visits (a relaxation: hours can
    only allow fewer); ``near``: per group, the shortest distance to a candidate volunteer.
    """
    shortest = np.full(len(d.vol_ids), np.iinfo(np.int64).max)
    np.minimum.at(shortest, a.vol, d.g_units[a.group])
    cap = np.minimum(d.free_slots, d.free_units // np.maximum(np.minimum(
        shortest, np.iinfo(np.int32).max), 1))
    placed = _coverage_flow(d, a, cap.astype(np.int64))
    per_class = np.bincount(d.g_class, weights=placed, minlength=len(CLASSES))
    near = np.full(len(d.g_count), np.iinfo(np.int64).max)
    np.minimum.at(near, a.group, a.metres)
    cont = np.zeros(len(d.g_count), np.int64)
    np.maximum.at(cont, a.group[a.cont == 1], a.upper[a.cont == 1])
    return {"n_max": _class_upper(d, a), "prefix": np.cumsum(per_class).astype(np.int64),
            "near": near, "continuity": int(np.minimum(cont, d.g_count).sum())}


def _cheapest(values: np.ndarray, counts: np.ndarray, classes: np.ndarray,
              need: np.ndarray) -> int:
    """Σ over classes k of the ``need[k]`` smallest ``values`` among class-k visits (each group
    holding ``counts`` visits of one value): a lower bound on any plan placing ``need``."""
    order = np.lexsort((values, classes))
    v, c, k = values[order], counts[order], classes[order]
    ahead = np.cumsum(c) - c  # visits in groups sorted before this one
    before = ahead - ahead[np.searchsorted(k, k)]  # … of the same class
    take = np.clip(need[k] - before, 0, c)
    return int((v * take).sum())


class _CpSat:
    """The CP-SAT model of the general case, solved level by level with holds and hints."""

    def __init__(self, d: _Data, a: _Arcs, params: MatchParams):
        self.d, self.a, self.params = d, a, params
        m = cp_model.CpModel()
        self.model = m
        n = len(a.group)
        self.y = np.array([m.new_int_var(0, u, "") for u in a.upper.tolist()], dtype=object)
        g_start = np.searchsorted(a.group, np.arange(len(d.g_count) + 1))
        for g in np.flatnonzero(np.bincount(a.group, weights=a.upper, minlength=len(d.g_count))
                                > d.g_count):
            m.add(cp_model.LinearExpr.sum(self.y[g_start[g]:g_start[g + 1]].tolist())
                  <= int(d.g_count[g]))
        by_vol = np.argsort(a.vol, kind="stable")
        v_start = np.searchsorted(a.vol[by_vol], np.arange(len(d.vol_ids) + 1))
        units = d.g_units[a.group]
        self.hours: dict[int, tuple[cp_model.IntVar, int]] = {}
        for i in np.flatnonzero(np.diff(v_start) > 0):  # one pair of rows per volunteer
            pairs = by_vol[v_start[i]:v_start[i + 1]]
            vars_ = self.y[pairs].tolist()
            if a.upper[pairs].sum() > d.free_slots[i]:
                m.add(cp_model.LinearExpr.sum(vars_) <= int(d.free_slots[i]))
            most = int(min(d.free_units[i], (units[pairs] * a.upper[pairs]).sum()))
            h = m.new_int_var(0, most, f"h{i}")
            m.add(h == cp_model.LinearExpr.weighted_sum(vars_, units[pairs].tolist()))
            self.hours[int(i)] = (h, most)
        self.x = np.zeros(n, np.int64)  # the current solution (all zero is feasible)

    def solve(self, expr, maximize: bool, score) -> tuple[Status, float, float]:
        """Optimise ``expr`` from the current solution; (status, bound, seconds), the bound in
        ``expr``'s units. The solution is kept in ``x``; ``score(x)`` is ``expr``'s value, so
        that a time-limited answer worse than the starting one is never taken."""
        start = time.perf_counter()
        m = self.model
        m.clear_hints()
        for var, value in zip(self.y.tolist(), self.x.tolist(), strict=True):
            m.add_hint(var, value)
        if maximize:
            m.maximize(expr)
        else:
            m.minimize(expr)
        solver = cp_model.CpSolver()
        solver.parameters.max_deterministic_time = float(self.params.time_limit)
        solver.parameters.num_workers = int(self.params.workers)
        solver.parameters.random_seed = int(self.params.seed)
        code = solver.solve(m)
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            found = np.array([solver.value(v) for v in self.y.tolist()], np.int64)
            if code == cp_model.OPTIMAL or (score(found) >= score(self.x) if maximize
                                            else score(found) <= score(self.x)):
                self.x = found
            status = Status.OPTIMAL if code == cp_model.OPTIMAL else Status.TIME_LIMIT
            bound = (float(solver.objective_value) if status == Status.OPTIMAL
                     else float(solver.best_objective_bound))
            return status, bound, time.perf_counter() - start
        if code == cp_model.UNKNOWN:
            # Stopped before any solution (in presolve, as a rule): the previous solution stays
            # and nothing is proven, so the bound is the trivial one.
            return (Status.TIME_LIMIT, math.inf if maximize else -math.inf,
                    time.perf_counter() - start)
        raise RuntimeError(f"CP-SAT returned {solver.status_name(code)}")


def _solve_cp_sat(d: _Data, a: _Arcs, params: MatchParams) -> tuple[np.ndarray, list, int]:
    """Counts per arc, level by level, and each level's (level, status, bound, seconds).

    CP-SAT starts from :func:`_heuristic`'s plan. When the model has more than
    ``params.max_pairs`` arcs it works on :func:`_restrict`'s arcs only; its proofs then hold
    for that restriction alone, so a level is reported optimal only when its value meets a
    bound valid for the full model (:func:`_bounds`), and reports that bound otherwise. On the
    full model a CP-SAT proof is a proof. A level already at a valid bound is not re-solved.
    """
    full = _bounds(d, a)
    x_all = _complete(d, a, _heuristic(d, a))
    sub = _restrict(a, x_all, params.max_pairs)
    restricted = len(sub) < len(a.group)
    s = _Arcs(group=a.group[sub], vol=a.vol[sub], km=a.km[sub], metres=a.metres[sub],
              upper=a.upper[sub], cont=a.cont[sub])
    cp = _CpSat(d, s, params)
    cp.x = x_all[sub]
    m, y = cp.model, cp.y
    arc_class = d.g_class[s.group]
    reports: list = []

    def settle(name, value, valid, sense, solved):
        """Status and bound of a level from CP-SAT's answer and the full model's bound."""
        status, bound, seconds = solved if solved else (Status.OPTIMAL, value, 0.0)
        met = value >= valid if sense == "max" else value <= valid
        if met:
            status, bound = Status.OPTIMAL, value
        elif restricted:
            status = Status.TIME_LIMIT if status == Status.TIME_LIMIT else Status.FEASIBLE
            bound = valid
        else:
            bound = min(bound, valid) if sense == "max" else max(bound, valid)
        reports.append((name, status, bound, seconds))

    held = np.zeros(len(CLASSES), np.int64)
    for k in np.unique(d.g_class):
        before = int(held[:k].sum())
        valid = int(min(full["n_max"][k], full["prefix"][k] - before))
        count = cp_model.LinearExpr.sum(y[arc_class == k].tolist())
        solved = None
        if int(cp.x[arc_class == k].sum()) < valid:
            solved = cp.solve(count, True, lambda x, k=k: int(x[arc_class == k].sum()))
        held[k] = int(cp.x[arc_class == k].sum())
        settle(int(k), held[k], valid, "max", solved)
        m.add(count >= int(held[k]))

    # Travel: each class's placed visits at their nearest volunteers at best.
    floor_m = _cheapest(full["near"], d.g_count, d.g_class, held)
    travel = cp_model.LinearExpr.weighted_sum(y.tolist(), s.metres.tolist())
    solved = (cp.solve(travel, False, lambda x: int(s.metres @ x))
              if int(s.metres @ cp.x) > floor_m else None)
    settle("travel", int(s.metres @ cp.x), floor_m, "min", solved)
    m.add(travel <= int(s.metres @ cp.x))

    keep = s.cont == 1
    cont = cp_model.LinearExpr.sum(y[keep].tolist())
    solved = (cp.solve(cont, True, lambda x: int(x[keep].sum()))
              if int(cp.x[keep].sum()) < full["continuity"] else None)
    settle("continuity", int(cp.x[keep].sum()), full["continuity"], "max", solved)
    m.add(cont >= int(cp.x[keep].sum()))

    # Volunteers without arcs keep their pinned hours: a constant of the level.
    idle = np.ones(len(d.vol_ids), bool)
    idle[list(cp.hours)] = False
    idle_load = int((d.pinned_units[idle] ** 2).sum())
    squares, pinned, active = [], 0, 0
    for i, (h, most) in cp.hours.items():  # Σ (P_i + h_i)², one product per volunteer
        p = int(d.pinned_units[i])
        top = p + most
        total = m.new_int_var(p, top, f"t{i}")
        m.add(total == h + p)
        sq = m.new_int_var(p * p, top * top, f"s{i}")
        m.add_multiplication_equality(sq, [total, total])
        squares.append(sq)
        pinned, active = pinned + p, active + 1
    busy = list(cp.hours)

    def load_of(x: np.ndarray) -> int:
        units = np.bincount(s.vol, weights=x * d.g_units[s.group], minlength=len(d.vol_ids))
        return int(((units.astype(np.int64) + d.pinned_units)[busy] ** 2).sum())

    # Fewest hours the held counts can take, spread evenly: Cauchy–Schwarz.
    least = _cheapest(d.g_units, d.g_count, d.g_class, held)
    floor_load = math.ceil((pinned + least) ** 2 / active) if active else 0
    solved = (cp.solve(cp_model.LinearExpr.sum(squares), False, load_of)
              if squares and load_of(cp.x) > floor_load else None)
    if solved:
        solved = (solved[0], solved[1] + idle_load, solved[2])
    load_now = load_of(cp.x)
    settle("load", load_now + idle_load, floor_load + idle_load, "min", solved)

    x = np.zeros(len(a.group), np.int64)
    x[sub] = cp.x
    return x, reports, len(sub)


def _complete(d: _Data, a: _Arcs, x: np.ndarray) -> np.ndarray:
    """Place, nearest volunteer first, any visit that still fits (only ever needed when a
    solve stopped at its time limit), so that every unplaced reason is true."""
    x = x.copy()
    n_vol = len(d.vol_ids)
    slots_left = d.free_slots - np.bincount(a.vol, weights=x, minlength=n_vol).astype(np.int64)
    units_left = d.free_units - np.bincount(a.vol, weights=x * d.g_units[a.group],
                                            minlength=n_vol).astype(np.int64)
    placed = np.bincount(a.group, weights=x, minlength=len(d.g_count)).astype(np.int64)
    left = d.g_count - placed
    order = np.lexsort((np.arange(len(left)), d.g_class))
    start = np.searchsorted(a.group, np.arange(len(left) + 1))  # arcs are sorted by group
    for g in order[left[order] > 0]:  # groups with visits left, best class first
        arcs = np.arange(start[g], start[g + 1])
        for p in arcs[np.lexsort((a.vol[arcs], a.metres[arcs]))]:
            i = a.vol[p]
            fit = min(left[g], slots_left[i], units_left[i] // d.g_units[g], a.upper[p] - x[p])
            if fit > 0:
                x[p] += fit
                left[g] -= fit
                slots_left[i] -= fit
                units_left[i] -= fit * d.g_units[g]
    return x


# ----------------------------------------------------------------------------- outputs


def _assign(d: _Data, a: _Arcs, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Volunteer and slot index of each visit (-1 when unplaced)."""
    n = len(d.visit_group)
    vol = d.pin_vol.copy()
    # Each group's visits, in table order, go to its arcs' volunteers in volunteer order.
    free = np.flatnonzero(d.visit_group >= 0)
    free = free[np.lexsort((free, d.visit_group[free]))]
    rank = np.arange(len(free)) - np.searchsorted(d.visit_group[free], d.visit_group[free])
    used = np.flatnonzero(x > 0)
    used = used[np.lexsort((a.vol[used], a.group[used]))]
    who = np.repeat(a.vol[used], x[used])
    grp = np.repeat(a.group[used], x[used])
    who_rank = np.arange(len(grp)) - np.searchsorted(grp, grp)
    key = pd.MultiIndex.from_arrays([grp, who_rank])
    target = pd.Series(who, index=key).reindex(
        pd.MultiIndex.from_arrays([d.visit_group[free], rank]))
    vol[free] = target.fillna(-1).to_numpy(np.int64)

    # Slots: pinned ones first, then each volunteer's other visits (best class first) take
    # their free available slots in calendar order.
    slot = np.where(vol >= 0, d.pin_slot, -1)
    open_slots = d.vol_avail & ~d.pinned_slot_taken
    sv, st = np.nonzero(open_slots)
    slot_rank = np.arange(len(sv)) - np.searchsorted(sv, sv)
    todo = np.flatnonzero((vol >= 0) & (slot < 0))
    todo = todo[np.lexsort((todo, d.visit_class[todo], vol[todo]))]
    todo_rank = np.arange(len(todo)) - np.searchsorted(vol[todo], vol[todo])
    table = pd.Series(st, index=pd.MultiIndex.from_arrays([sv, slot_rank]))
    got = table.reindex(pd.MultiIndex.from_arrays([vol[todo], todo_rank]))
    if got.isna().any():  # cannot happen: the model counts each volunteer's free slots
        raise RuntimeError("a volunteer was given more visits than free slots")
    slot[todo] = got.to_numpy(np.int64)
    assert len(vol) == n
    return vol, slot


def _reasons(d: _Data, vol: np.ndarray, visit_units: np.ndarray) -> np.ndarray:
    """The first reason that applies to each unplaced visit (see the module notes)."""
    n_vol = len(d.vol_ids)
    placed = vol >= 0
    slots_left = d.vol_avail.sum(axis=1) - np.bincount(vol[placed], minlength=n_vol)
    units_left = d.vol_max_units - np.bincount(vol[placed], weights=visit_units[placed],
                                               minlength=n_vol).astype(np.int64)
    g = np.arange(len(d.g_count))
    skill_any = np.zeros(len(g), bool)
    check_any = np.zeros(len(g), bool)
    for mask, safe in pd.unique(pd.MultiIndex.from_arrays([d.g_skills, d.g_safe])):
        has = (d.vol_skills & mask) == mask
        sel = (d.g_skills == mask) & (d.g_safe == safe)
        skill_any[sel] = has.any()
        check_any[sel] = (has & (d.vol_checked | (not safe))).any()
    reach_any = np.bincount(d.r_group, minlength=len(g)) > 0
    slot_ok = slots_left[d.r_vol] > 0
    slot_any = np.bincount(d.r_group, weights=slot_ok, minlength=len(g)) > 0
    reason = np.select([~skill_any, ~check_any, ~reach_any, ~slot_any],
                       list(REASONS[:4]), REASONS[4]).astype(object)
    fits = slot_ok & (units_left[d.r_vol] >= d.g_units[d.r_group])
    if (np.bincount(d.r_group, weights=fits, minlength=len(g))[d.visit_group[~placed]]
            > 0).any():  # cannot happen after _complete
        raise RuntimeError("an unplaced visit still fits a volunteer")
    return reason[d.visit_group[~placed]]


def match_visits(visits: pd.DataFrame, volunteers: pd.DataFrame,
                 params: MatchParams | None = None) -> VisitMatch:
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
        Solver choice and limits.

    Returns
    -------
    VisitMatch
        Assignments, unplaced visits with reasons, load per volunteer and the levels.

    Raises
    ------
    VisitPinError
        When a pin cannot be kept; every such pin is listed.
    """
    params = params or MatchParams()
    t0 = time.perf_counter()
    missing = [c for c in VISIT_COLUMNS if c not in visits.columns]
    if missing:
        raise ValueError(f"visits lack columns {missing}")
    visits = visits.reset_index(drop=True)
    d = _prepare(visits, volunteers)
    a = _arcs(d)
    lengths = np.unique(d.g_units)
    method = params.method
    if method == "auto":
        method = "flow" if len(lengths) <= 1 else "cp_sat"
    if method == "flow" and len(lengths) > 1:
        raise ValueError("method='flow' needs visits of one length; use 'cp_sat' or 'auto'")
    build = time.perf_counter() - t0
    t1 = time.perf_counter()
    cp_pairs, reports = 0, None
    if not len(d.g_count) or not len(a.group):
        x, method = np.zeros(len(a.group), np.int64), "none"
    elif method == "flow":
        try:
            x = _solve_flow(d, a)
        except OverflowError:  # an instance too large for exact separated costs
            method = "cp_sat"
    if method == "cp_sat":
        x, reports, cp_pairs = _solve_cp_sat(d, a, params)
    x = _complete(d, a, x)
    solve = time.perf_counter() - t1

    vol, slot = _assign(d, a, x)
    levels = _levels(d, a, x, vol, reports)
    placed = vol >= 0
    km = np.full(len(vol), np.nan)
    if placed.any():
        km[placed] = d.loc_pairs.reindex(
            pd.MultiIndex.from_arrays([d.visit_loc[placed], vol[placed]])).to_numpy()
    hours = visits["hours"].to_numpy(float)
    assignments = pd.DataFrame({
        "visit_id": visits["visit_id"].to_numpy()[placed],
        "volunteer_id": d.vol_ids[vol[placed]],
        "slot": np.array(SLOTS, dtype=object)[slot[placed]],
        "hours": hours[placed],
        "km": np.round(km[placed], 3),
    })
    unplaced = pd.DataFrame({"visit_id": visits["visit_id"].to_numpy()[~placed],
                             "reason": _reasons(d, vol, d.visit_units)})
    n_vol = len(d.vol_ids)
    load = pd.DataFrame({
        "volunteer_id": d.vol_ids,
        "hours": np.bincount(vol[placed], weights=hours[placed], minlength=n_vol),
        "visits": np.bincount(vol[placed], minlength=n_vol),
        "km": np.round(np.bincount(vol[placed], weights=km[placed], minlength=n_vol), 3),
        "max_hours": volunteers["max_hours"].to_numpy(float),
        "available_slots": d.vol_avail.sum(axis=1),
    })
    statuses = {lv.status for lv in levels}
    status = (Status.OPTIMAL if statuses <= {Status.OPTIMAL}
              else Status.TIME_LIMIT if Status.TIME_LIMIT in statuses else Status.FEASIBLE)
    return VisitMatch(
        assignments=assignments, unplaced=unplaced, load=load, levels=levels, status=status,
        method={"flow": "min_cost_flow"}.get(method, method),
        sizes={"visits": len(visits), "pinned": int((d.pin_vol >= 0).sum()),
               "groups": len(d.g_count), "volunteers": n_vol, "pairs": len(a.group),
               "cp_sat_pairs": cp_pairs},
        build_seconds=build, solve_seconds=solve)


def _levels(d: _Data, a: _Arcs, x: np.ndarray, vol: np.ndarray,
            reports) -> list[LevelResult]:
    """Every level's value recomputed from the final plan, with its bound and status.

    ``reports`` holds the CP-SAT levels' (level, status, bound, seconds), bounds in the
    model's units over the unpinned visits; ``None`` for the flow, whose levels are exact.
    Pinned visits add the same constant to a level's value and its bound.
    """
    placed = vol >= 0
    pinned = d.pin_vol >= 0
    n_vol = len(d.vol_ids)
    pin_class = np.bincount(d.visit_class[pinned], minlength=len(CLASSES))
    pin_km = d.loc_pairs.reindex(pd.MultiIndex.from_arrays(
        [d.visit_loc[pinned], d.pin_vol[pinned]])).to_numpy(float)
    pin_m = int(np.round(pin_km * 1000.0).sum())
    pin_cont = int((d.pin_vol[pinned] == d.visit_last[pinned]).sum())
    per_class = np.bincount(d.visit_class[placed], minlength=len(CLASSES))
    units = np.bincount(vol[placed], weights=d.visit_units[placed], minlength=n_vol)
    values = {f"cover:{t}:{u}": float(per_class[c]) for c, (t, u) in enumerate(CLASSES)
              if (d.visit_class == c).any()}
    values["travel"] = (int(a.metres @ x) + pin_m) / 1000.0
    values["continuity"] = float(int(a.cont @ x) + pin_cont)
    values["load"] = float((units ** 2).sum()) / d.scale ** 2

    found = {}
    for key, status, bound, seconds in reports or ():
        if isinstance(key, int | np.integer):
            t, u = CLASSES[int(key)]
            name, bound = f"cover:{t}:{u}", bound + pin_class[int(key)]
        elif key == "travel":
            name, bound = key, (bound + pin_m) / 1000.0
        elif key == "continuity":
            name, bound = key, bound + pin_cont
        else:
            name, bound = key, bound / d.scale ** 2
        found[name] = (status, bound, seconds)
    out = []
    for name, value in values.items():
        sense = "min" if name in ("travel", "load") else "max"
        status, bound, seconds = found.get(name, (Status.OPTIMAL, value, 0.0))
        if status == Status.OPTIMAL:
            bound = value
        out.append(LevelResult(name=name, sense=sense, value=value, bound=float(bound),
                               status=str(status), seconds=round(seconds, 3)))
    return out
