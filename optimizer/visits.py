"""Volunteer matching: the visits of one week → (volunteer, half-day slot).

Pure model: DataFrames in, DataFrames out; no files, no database, no UI (DESIGN §2, §4.3).
``planning/match.py`` builds the visits from an allocation run and explains the result;
``docs/matching.md`` has the mathematics and the measured figures.

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

Decomposition: independent parts, solved in parallel
----------------------------------------------------
Every level is a sum over visits (coverage, travel, continuity) or over volunteers (load), and
every constraint touches one volunteer or one group, so wherever the graph of admissible
(visit, volunteer) pairs falls apart into connected components the problem does too: the
lexicographic optimum of the whole is the union of the components' optima (level by level:
the whole reaches the sum of the parts' best values only if every part does). The model is cut
in three steps (:func:`_plan_regions`, :func:`solve_region`):

1. **Coarse components, exact.** Cells as wide as the longest travel limit: a volunteer can
   only reach locations in their own cell or the eight around it, so cells linked that way
   (a location cell next to a volunteer cell) give components that no admissible pair crosses.
2. **Regions.** A coarse component with more than ``part_visits`` visits (a city's centre is
   one) is bisected along its longer side at the median visit, recursively; a volunteer
   belongs to the region of their home. Pairs across a cut are left out of both regions: an
   **approximation**, reported as such. Each region is a task for a process pool
   (``planning.engines``, through ``run_parts``); the regions' answers come back keyed, so the
   order they finish in never changes the plan.
3. **Inside a region**, the exact components of its pairs are solved one by one. When a region
   has more than ``max_arcs`` pairs, each group keeps only its ``K`` nearest volunteers of the
   region (``K`` as large as the budget allows) and its last volunteer: an approximation
   again.

After the regions, visits still unplaced are offered to any volunteer with a free slot and
enough hours within reach across region borders (nearest first, best class first), so that
every unplaced reason is true of the whole plan.

**Bounds stay true.** When no cut and no pruning was made, every level's bound is the sum of
the components' bounds. Otherwise each level gets a bound valid for the *whole* model
(:func:`_cut_bounds`, :func:`_combine`): coverage from a cut of the slot relaxation (a
capacity ``c_i = min(S_i, ⌊H_i ÷ shortest visit⌋)`` per volunteer, so it is a max-flow) built
from each region's own minimum cut (the groups it pays for, the volunteers it cuts) and
extended to the pairs left out: a group on the source side gets the volunteers of its left-out
pairs added to the cut; the union of the regions' cut volunteers is counted once, so the sum is
the value of one cut of the whole network; travel from each class's held visits at their
nearest volunteer with room; continuity from the visits whose last volunteer could make them;
load from Cauchy–Schwarz and the visits' own squares. A bound of a later level holds for plans
at least as good as the plan found on every earlier level (the lexicographic hold; part by part
when the parts' own bounds are summed).

Solving a component, and why each is exact
------------------------------------------
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
(slots), no longer a matroid. A component with at most ``max_pairs`` pairs (and every one when
``method="cp_sat"``) goes to OR-Tools CP-SAT, level by level, by **sequential solves holding
earlier levels**: each level is optimised with every earlier level held at the value it
reached (a row ``≥`` or ``≤`` that value), one coverage class per solve (so objective
coefficients stay 0/1 and CP-SAT's bound is a bound on the class itself), the previous solution
given as a hint. The first solution comes from :func:`_heuristic`. Each solve has a
*deterministic* time limit (``time_limit``, CP-SAT's deterministic time, about seconds of one
core), so even a time-limited answer is reproducible; a level not proven optimal is held at the
value found, and every later level is then optimal only *given* that value.

A larger component is solved by :func:`_heuristic` (class by class, best first, max-flow
min-cost rounds with each volunteer counted for what their hours allow, then the visits that
still fit), :func:`_displace` (exchanges that only improve coverage lexicographically) and
:func:`_polish` (with each volunteer's number of visits of each length fixed, coverage and load
are fixed too, and travel then continuity are one exact min-cost flow per visit length). Its
levels report the component's valid bounds (:func:`_bounds`, :func:`_travel_floor`, and for a
component of at least ``lp_bounds_visits`` visits the LP relaxation with hours,
:func:`_lp_bounds`) and their gaps; none is called optimal unless it meets its bound.

With ``method="cp_sat"`` beyond ``max_pairs``, CP-SAT is given each group's nearest volunteers
plus the pairs in use, and a level is called optimal only when its value meets a bound valid
for the full component: per class, the fewer of the visits within reach and a prefix bound
from the slot relaxation's coverage flow (a relaxation, matroid again, so one flow bounds every
prefix of the class order); travel, the relaxation's min-cost flow for the held counts;
continuity, the visits whose last volunteer could make them; load, the fewest hours the held
counts need, spread evenly.

``optimizer.matching.solve_gap`` is not reused: it assigns every job exactly once against one
capacity, while here visits may stay unplaced, class by class, against two capacities (hours and
slots).

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
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from ortools.graph.python import max_flow, min_cost_flow
from ortools.sat.python import cp_model

from wulian.contract import vocab
from wulian.optimizer.lexmip import LevelResult
from wulian.optimizer.status import Status

SLOTS: tuple[str, ...] = tuple(vocab.SLOTS)
REASONS: tuple[str, ...] = vocab.MATCHING_REASONS
URGENCIES: tuple[int, ...] = (3, 2, 1)
#: Priority classes, best first: (colour, urgency).
CLASSES: tuple[tuple[str, int], ...] = tuple((t, u) for t in vocab.TIER_ORDER for u in URGENCIES)
EARTH_KM = 6371.0088
#: Columns a visits table must have (others pass through untouched).
VISIT_COLUMNS: tuple[str, ...] = ("visit_id", "household_id", "tier", "urgency", "hours",
                                  "skills", "safeguarding", "lat", "lon", "last_volunteer",
                                  "pin_volunteer", "pin_slot")
DECOMPOSE = ("auto", "components", "never")
# A distance equal to the travel limit is within it; this absorbs the last bits of rounding.
_KM_TOLERANCE = 1e-9
# SimpleMinCostFlow works in int64 and scales costs by (nodes + 1): keep |cost| × (nodes + 1)
# and the objective well inside it, or fall back to CP-SAT.
_FLOW_COST_LIMIT = 2**62
_NO_METRES = np.iinfo(np.int64).max  # "no such volunteer" in a nearest-distance array
#: Nearest qualified volunteers each visit may be exchanged onto after the regions.
CANDIDATES = 40

#: ``run_parts(task, payload, keys)`` → ``{key: task(payload, key)}``: how regions are run
#: (``planning.match`` passes a process pool; by default they run one after another here).
PartRunner = Callable[[Callable[[Any, Hashable], Any], Any, Sequence[Hashable]], dict]


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
        ``"auto"`` (min-cost flow for a component whose visits have one length; CP-SAT for a
        mixed one of at most ``cp_sat_below`` pairs; the flow heuristic with bounds beyond),
        ``"flow"`` (every visit one length) or ``"cp_sat"`` (CP-SAT for every mixed component).
    time_limit
        CP-SAT deterministic time per solve (about seconds of one core).
    max_pairs
        Most (group, volunteer) pairs CP-SAT is given with ``method="cp_sat"``: beyond, each
        group keeps its nearest volunteers (and the pairs in use), and optimality is claimed
        only against bounds of the full component.
    cp_sat_below
        With ``method="auto"``, a mixed component of at most this many pairs goes to CP-SAT
        (fifteen sequential solves prove a small one optimal in well under a second; a few
        thousand pairs already take seconds per level), a larger one to the heuristic.
    lp_bounds_visits
        A component solved by the heuristic, not cut nor pruned, with at least this many
        visits gets its bounds from the LP relaxation with hours as well (HiGHS, column
        generation; seconds on a district, where the later classes' gaps are; 0: never).
    workers
        CP-SAT search workers; 1 keeps the answer reproducible.
    seed
        CP-SAT random seed.
    decompose
        ``"auto"``: exact components, and a component of more than ``part_visits`` visits cut
        into regions (approximate, bounds stay valid); ``"components"``: exact components only;
        ``"never"``: one model (still split into its exact components inside, unless
        ``method`` needs the whole).
    part_visits
        Most visits of one region when a component is cut.
    max_arcs, arcs_per_visit
        A region's model keeps at most ``B = min(max_arcs, arcs_per_visit × visits)`` (group,
        volunteer) pairs — each group its nearest volunteers of the region and its last
        volunteer (approximate, bounds valid) — once it would hold more than ``max_arcs`` or
        ``10 B`` pairs: a street's visits reach thousands of volunteers, of whom a few dozen
        each can matter.
    part_workers
        Processes for the regions (0: one per core; 1: all in this process); used by the
        caller's ``run_parts``.
    """

    monitoring_hours: float = 1.0
    monitoring_urgency: int = 2
    monitoring_scope: str = "all"
    method: str = "auto"
    time_limit: float = 5.0
    max_pairs: int = 40_000
    cp_sat_below: int = 2_000
    lp_bounds_visits: int = 2_000
    workers: int = 1
    seed: int = 0
    decompose: str = "auto"
    part_visits: int = 25_000
    max_arcs: int = 500_000
    arcs_per_visit: int = 30
    part_workers: int = 0

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
        if self.decompose not in DECOMPOSE:
            raise ValueError(f"decompose must be one of {', '.join(DECOMPOSE)}, "
                             f"not {self.decompose!r}")
        if self.part_visits < 1 or self.max_arcs < 1 or self.arcs_per_visit < 1:
            raise ValueError("part_visits, max_arcs and arcs_per_visit must be positive")
        if self.lp_bounds_visits < 0:
            raise ValueError(f"lp_bounds_visits must be 0 or more, not {self.lp_bounds_visits}")
        if self.part_workers < 0:
            raise ValueError(f"part_workers must be 0 or more, not {self.part_workers}")


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
        ``min_cost_flow``, ``cp_sat``, ``heuristic`` or, when components were solved in
        different ways, those joined by ``+`` (``none`` when there is nothing to place).
    sizes
        Counts: visits, pinned, groups, volunteers, pairs, regions, components, ….
    build_seconds, solve_seconds
        Wall time building the model, and solving it.
    decomposition
        How the model was cut: regions, whether exact, the regions' sizes and times.
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
    decomposition: dict = field(default_factory=dict)


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


def pairs_within(loc_lat: np.ndarray, loc_lon: np.ndarray, vol_lat: np.ndarray,
                 vol_lon: np.ndarray, reach_km: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                      np.ndarray]:
    """(location, volunteer, km) for every volunteer within their reach of a location, sorted
    by location then volunteer.

    Cells a quarter of the longest reach wide: each volunteer looks only at the cells their own
    reach can touch (a 2 km volunteer at 9 cells, a 15 km one at up to 81), so the distances
    computed stay within a small factor of the pairs that exist, whatever the mix of reaches.
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    loc_lat, loc_lon = np.asarray(loc_lat, float), np.asarray(loc_lon, float)
    vol_lat, vol_lon = np.asarray(vol_lat, float), np.asarray(vol_lon, float)
    reach_km = np.asarray(reach_km, float)
    if not len(loc_lat) or not len(vol_lat):
        return empty
    longest = float(np.max(reach_km)) + 1e-6
    if not longest > 0:
        return empty
    top = np.radians(min(89.0, max(np.abs(loc_lat).max(), np.abs(vol_lat).max())
                         + longest / 110.0))
    # One degree of latitude is at least 110.5 km, of longitude at least 111 km × cos(latitude)
    # up to the highest latitude a path can reach, so a cell of these sizes in degrees is at
    # least ``side`` km wide, and a volunteer reaching ``D`` km never leaves the ⌈D / side⌉
    # cells around their own.
    side = longest / 4.0
    cell_lat = side / 110.5
    cell_lon = side / (111.0 * math.cos(top))
    lci = np.floor(loc_lat / cell_lat).astype(np.int64)
    lcj = np.floor(loc_lon / cell_lon).astype(np.int64)
    base_i, base_j = int(lci.min()) - 5, int(lcj.min()) - 5
    width = int(lcj.max()) - base_j + 11
    loc_key = (lci - base_i) * width + (lcj - base_j)
    loc_order = np.argsort(loc_key, kind="stable")
    sorted_key = loc_key[loc_order]
    vci = np.floor(vol_lat / cell_lat).astype(np.int64)
    vcj = np.floor(vol_lon / cell_lon).astype(np.int64)
    radius = np.ceil(reach_km / side - 1e-9).astype(np.int64)
    # Volunteers whose reach box misses every location cell are dropped before expanding.
    near = ((vci + radius >= lci.min()) & (vci - radius <= lci.max())
            & (vcj + radius >= lcj.min()) & (vcj - radius <= lcj.max()))
    li_parts, vi_parts = [], []
    for r in np.unique(radius[near]):
        who = np.flatnonzero(near & (radius == r))
        steps = np.arange(-int(r), int(r) + 1)
        di, dj = np.repeat(steps, len(steps)), np.tile(steps, len(steps))
        ci = (vci[who, None] + di[None, :]) - base_i
        cj = (vcj[who, None] + dj[None, :]) - base_j
        inside = (ci >= 0) & (cj >= 0) & (cj < width)
        key = (ci * width + cj)[inside]
        owner = np.broadcast_to(who[:, None], ci.shape)[inside]
        lo = np.searchsorted(sorted_key, key, side="left")
        hi = np.searchsorted(sorted_key, key, side="right")
        count = hi - lo
        hit = count > 0
        lo, count, owner = lo[hit], count[hit], owner[hit]
        offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        li_parts.append(loc_order[np.repeat(lo, count) + offset])
        vi_parts.append(np.repeat(owner, count))
    if not li_parts:
        return empty
    li, vi = np.concatenate(li_parts), np.concatenate(vi_parts)
    km = haversine_km(vol_lat[vi], vol_lon[vi], loc_lat[li], loc_lon[li])
    keep = km <= reach_km[vi] + _KM_TOLERANCE
    li, vi, km = li[keep], vi[keep], km[keep]
    order = np.argsort(li * len(vol_lat) + vi, kind="stable")
    return li[order], vi[order], km[order]


def components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Connected components of the graph on nodes ``0 … n−1`` with edges ``(u, v)``: each
    node's label, the smallest node of its component.

    Hooking and pointer jumping on numpy arrays (each round hooks every edge's larger root
    under its smaller one, then every node jumps to its root), so it takes a few vectorised
    rounds however long the graph's paths are.
    """
    parent = np.arange(n, dtype=np.int64)
    u, v = np.asarray(u, np.int64), np.asarray(v, np.int64)
    while True:
        pu, pv = parent[u], parent[v]
        differ = pu != pv
        if not differ.any():
            return parent
        np.minimum.at(parent, np.maximum(pu[differ], pv[differ]),
                      np.minimum(pu[differ], pv[differ]))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped


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
    vol_lat: np.ndarray
    vol_lon: np.ndarray
    vol_reach: np.ndarray  # max_travel_km
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


def _prepare(visits: pd.DataFrame, volunteers: pd.DataFrame) -> _Data:
    """Arrays of the model, pins checked (raises VisitPinError). No pairs: those are built
    region by region (:func:`solve_region`), so the whole never has to fit in memory."""
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
    vol_lat = vols["lat"].to_numpy(float)
    vol_lon = vols["lon"].to_numpy(float)
    vol_reach = vols["max_travel_km"].to_numpy(float)

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
        pin_slot_id, visit_units, skills, safe, lat, lon, vol_ids, vol_skills, vol_checked,
        vol_avail, vol_max_units, vol_lat, vol_lon, vol_reach, scale)

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
    return _Data(
        scale=scale, vol_ids=vol_ids, vol_skills=vol_skills, vol_checked=vol_checked,
        vol_avail=vol_avail, vol_max_units=vol_max_units, vol_lat=vol_lat, vol_lon=vol_lon,
        vol_reach=vol_reach, pinned_units=pinned_units, pinned_count=pinned_count,
        pinned_slot_taken=slot_taken, free_slots=free_slots, free_units=free_units,
        visit_units=visit_units, visit_class=visit_class, visit_loc=loc_codes,
        visit_group=visit_group, visit_last=last_idx,
        pin_vol=np.where(pinned, pin_vol, -1), pin_slot=np.where(pinned, pin_slot, -1),
        loc_lat=loc_lat, loc_lon=loc_lon,
        g_units=g_units, g_class=g_class, g_count=g_count, g_loc=g_loc, g_skills=g_skills,
        g_safe=g_safe, g_last=g_last)


def _check_pins(ids, pinned, pin_vol, pin_slot, pin_vol_id, pin_slot_id, units, skills, safe,
                lat, lon, vol_ids, vol_skills, vol_checked, vol_avail, vol_max_units, vol_lat,
                vol_lon, vol_reach, scale):
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
        km = float(haversine_km(vol_lat[i], vol_lon[i], lat[v], lon[v]))
        if not km <= vol_reach[i] + _KM_TOLERANCE:
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


# ----------------------------------------------------------------------------- one component


@dataclass
class _Part:
    """One independent component: its groups and volunteers, indexed from 0.

    ``vol_ids`` holds the volunteers' indices in the whole model (only its length is used by
    the solvers); the rest are per local volunteer or per local group.
    """

    vol_ids: np.ndarray
    free_slots: np.ndarray
    free_units: np.ndarray
    pinned_units: np.ndarray
    g_count: np.ndarray
    g_class: np.ndarray
    g_units: np.ndarray


@dataclass
class _Arcs:
    """Admissible (group, volunteer) pairs: the model's variables, sorted by group."""

    group: np.ndarray
    vol: np.ndarray
    km: np.ndarray
    metres: np.ndarray  # int64, km rounded to the metre
    upper: np.ndarray  # most of the group's visits the volunteer can make
    cont: np.ndarray  # 1 when the volunteer is the group's last volunteer

    def take(self, sel: np.ndarray) -> _Arcs:
        return _Arcs(group=self.group[sel], vol=self.vol[sel], km=self.km[sel],
                     metres=self.metres[sel], upper=self.upper[sel], cont=self.cont[sel])


def _class_upper(d: _Part, a: _Arcs) -> np.ndarray:
    """Per class: the most of its visits that could be placed at all (a valid bound)."""
    reach = np.bincount(a.group, weights=a.upper, minlength=len(d.g_count))
    per_group = np.minimum(d.g_count, reach)
    return np.bincount(d.g_class, weights=per_group, minlength=len(CLASSES)).astype(np.int64)


def _coverage_flow(d: _Part, a: _Arcs, cap: np.ndarray) -> np.ndarray:
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


def _solve_flow(d: _Part, a: _Arcs) -> np.ndarray:
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


def _heuristic(d: _Part, a: _Arcs) -> np.ndarray:
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


def _bounds(d: _Part, a: _Arcs) -> dict:
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

    def __init__(self, d: _Part, a: _Arcs, params: MatchParams):
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


def _solve_cp_sat(d: _Part, a: _Arcs, params: MatchParams) -> tuple[np.ndarray, list, int]:
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

    # Travel: the slot relaxation's least travel for the held counts (a flow on every pair).
    floor_m = _travel_floor(d, a, held)
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
    squares = []
    for i, (h, most) in cp.hours.items():  # Σ (P_i + h_i)², one product per volunteer
        p = int(d.pinned_units[i])
        top = p + most
        total = m.new_int_var(p, top, f"t{i}")
        m.add(total == h + p)
        sq = m.new_int_var(p * p, top * top, f"s{i}")
        m.add_multiplication_equality(sq, [total, total])
        squares.append(sq)
    busy = list(cp.hours)

    def load_of(x: np.ndarray) -> int:
        units = np.bincount(s.vol, weights=x * d.g_units[s.group], minlength=len(d.vol_ids))
        return int(((units.astype(np.int64) + d.pinned_units)[busy] ** 2).sum())

    # A floor over every volunteer of the component (the full model may load any of them).
    floor_load = _load_floor(d.pinned_units, d.g_units, d.g_count, d.g_class, held)
    solved = (cp.solve(cp_model.LinearExpr.sum(squares), False, load_of)
              if squares and load_of(cp.x) + idle_load > floor_load else None)
    if solved:
        solved = (solved[0], solved[1] + idle_load, solved[2])
    load_now = load_of(cp.x)
    settle("load", load_now + idle_load, floor_load, "min", solved)

    x = np.zeros(len(a.group), np.int64)
    x[sub] = cp.x
    return x, reports, len(sub)


def _complete(d: _Part, a: _Arcs, x: np.ndarray) -> np.ndarray:
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


def _relax_cap(d: _Part, a: _Arcs) -> np.ndarray:
    """Per volunteer, the most visits any plan can give them: ``min(S_i, ⌊H_i ÷ shortest⌋)``
    with the shortest visit they have a pair with (the slot relaxation's capacity)."""
    shortest = np.full(len(d.vol_ids), np.iinfo(np.int64).max)
    np.minimum.at(shortest, a.vol, d.g_units[a.group])
    return np.minimum(d.free_slots, d.free_units // np.maximum(np.minimum(
        shortest, np.iinfo(np.int32).max), 1)).astype(np.int64)


def _travel_floor(d: _Part, a: _Arcs, held: np.ndarray, cap: np.ndarray | None = None) -> int:
    """A lower bound on the travel (metres) of any plan placing at least ``held[k]`` visits of
    each class ``k``: the least-cost flow of exactly ``held`` in the slot relaxation (volunteer
    ``i`` takes at most ``cap[i]`` visits, hours otherwise ignored; more visits only add
    travel)."""
    n_groups, n_vol, k = len(d.g_count), len(d.vol_ids), len(CLASSES)
    total = int(held.sum())
    if total == 0:
        return 0
    cap = _relax_cap(d, a) if cap is None else cap
    g0, v0 = k, k + n_groups
    sink = v0 + n_vol
    tails = np.concatenate([d.g_class, g0 + a.group, v0 + np.arange(n_vol)])
    heads = np.concatenate([g0 + np.arange(n_groups), v0 + a.vol, np.full(n_vol, sink)])
    caps = np.concatenate([d.g_count, a.upper, cap]).astype(np.int64)
    costs = np.concatenate([np.zeros(n_groups, np.int64), a.metres,
                            np.zeros(n_vol, np.int64)]).astype(np.int64)
    supplies = {c: int(held[c]) for c in range(k) if held[c]}
    supplies[sink] = -total
    flow = _min_cost_flow(tails, heads, caps, costs, supplies)
    return int(flow @ costs)


def _polish(d: _Part, a: _Arcs, x: np.ndarray) -> np.ndarray:
    """The least travel, then the most continuity, keeping each volunteer's number of visits of
    each length and each class's number of visits of each length: coverage and every
    volunteer's hours (so load) stay as they are, and what is left is one exact min-cost flow
    per visit length (class → group → volunteer, volunteer capacity their count of that
    length; arc cost ``(C + 1)·metres − [last volunteer]``, so a metre outweighs any
    continuity)."""
    x = x.copy()
    n_groups, n_vol, k = len(d.g_count), len(d.vol_ids), len(CLASSES)
    arc_units = d.g_units[a.group]
    for length in np.unique(arc_units[x > 0]):
        sel = np.flatnonzero(arc_units == length)
        have = np.bincount(a.vol[sel], weights=x[sel], minlength=n_vol).astype(np.int64)
        per_class = np.bincount(d.g_class[a.group[sel]], weights=x[sel],
                                minlength=k).astype(np.int64)
        total = int(per_class.sum())
        weight = total + 1  # more than any continuity difference
        if weight * int(a.metres[sel].max(initial=0)) * (k + n_groups + n_vol + 2) \
                >= _FLOW_COST_LIMIT:
            continue  # too large to separate exactly; keep the plan as it is
        g0, v0 = k, k + n_groups
        sink = v0 + n_vol
        tails = np.concatenate([d.g_class, g0 + a.group[sel], v0 + np.arange(n_vol)])
        heads = np.concatenate([g0 + np.arange(n_groups), v0 + a.vol[sel],
                                np.full(n_vol, sink)])
        caps = np.concatenate([np.where(d.g_units == length, d.g_count, 0), a.upper[sel],
                               have])
        costs = np.concatenate([np.zeros(n_groups, np.int64),
                                weight * a.metres[sel] - a.cont[sel],
                                np.zeros(n_vol, np.int64)])
        supplies = {c: int(per_class[c]) for c in range(k) if per_class[c]}
        supplies[sink] = -total
        flow = _min_cost_flow(tails, heads, caps, costs, supplies)
        x[sel] = flow[n_groups:n_groups + len(sel)]
    return x


def _load_floor(pinned: np.ndarray, g_units: np.ndarray, g_count: np.ndarray,
                g_class: np.ndarray, held: np.ndarray) -> int:
    """A lower bound on Σ_i (P_i + h_i)² over the volunteers ``pinned`` lists (every one who
    could be given a visit) for any plan placing at least ``held[k]`` visits of each class:
    the larger of Cauchy–Schwarz (the fewest hours the held counts take, spread evenly) and
    Σ P_i² + Σ L_v² over the held visits at their shortest (a volunteer's hours squared are at
    least the sum of their visits' squares)."""
    least = _cheapest(g_units, g_count, g_class, held)
    squares = _cheapest(g_units * g_units, g_count, g_class, held)
    active = len(pinned)
    total = int(pinned.sum()) + least
    spread = math.ceil(total * total / active) if active else 0
    return max(spread, int((pinned.astype(np.int64) ** 2).sum()) + squares)


def _class_counts(d: _Part, a: _Arcs, x: np.ndarray) -> np.ndarray:
    return np.bincount(d.g_class[a.group], weights=x, minlength=len(CLASSES)).astype(np.int64)


def _load_value(d: _Part, a: _Arcs, x: np.ndarray) -> int:
    """Σ (pinned + planned units)² over the part's volunteers."""
    units = np.bincount(a.vol, weights=x * d.g_units[a.group], minlength=len(d.vol_ids))
    return int(((units.astype(np.int64) + d.pinned_units) ** 2).sum())


def _exact_reports(d: _Part, a: _Arcs, x: np.ndarray, seconds: float) -> list:
    """Every level of an exactly solved part, its bound its value."""
    held = _class_counts(d, a, x)
    reports = [(int(k), Status.OPTIMAL, int(held[k]), 0.0) for k in np.unique(d.g_class)]
    reports += [("travel", Status.OPTIMAL, int(a.metres @ x), 0.0),
                ("continuity", Status.OPTIMAL, int(a.cont @ x), 0.0),
                ("load", Status.OPTIMAL, _load_value(d, a, x), 0.0)]
    reports[0] = (*reports[0][:3], seconds)
    return reports


def _heuristic_reports(d: _Part, a: _Arcs, x: np.ndarray, seconds: float,
                       lp: bool = False) -> list:
    """Every level of a part solved by the heuristic: its value against the part's valid
    bounds (optimal only where it meets one); with ``lp``, each bound is the tighter of the
    slot relaxation's and the LP relaxation's (:func:`_lp_bounds`)."""
    full = _bounds(d, a)
    held = _class_counts(d, a, x)
    tight = _lp_bounds(d, a, x) if lp else {}
    reports = []

    def add(name, value, valid, sense):
        if name in tight:
            valid = min(valid, tight[name]) if sense == "max" else max(valid, tight[name])
        met = value >= valid if sense == "max" else value <= valid
        reports.append((name, Status.OPTIMAL if met else Status.FEASIBLE,
                        value if met else valid, 0.0))

    for k in np.unique(d.g_class):
        before = int(held[:k].sum())
        add(int(k), int(held[k]), int(min(full["n_max"][k], full["prefix"][k] - before)), "max")
    add("travel", int(a.metres @ x), _travel_floor(d, a, held), "min")
    add("continuity", int(a.cont @ x), full["continuity"], "max")
    add("load", _load_value(d, a, x), _load_floor(d.pinned_units, d.g_units, d.g_count,
                                                  d.g_class, held), "min")
    reports[0] = (*reports[0][:3], seconds)
    return reports


def _solve_component(d: _Part, a: _Arcs, params: MatchParams, with_bounds: bool = True
                     ) -> tuple[np.ndarray, list, str, int]:
    """Counts per arc of one component, its level reports (level, status, bound, seconds in
    the component's model units), the method used and the pairs CP-SAT was given.

    Without ``with_bounds`` (the component is part of a cut or pruned region, whose bounds come
    from the whole model), a mixed component goes to the heuristic (unless ``method`` is
    ``cp_sat``), which then skips its own bounds and reports its levels ``feasible``."""
    start = time.perf_counter()
    lengths = np.unique(d.g_units)
    if len(lengths) <= 1 and params.method in ("auto", "flow"):
        try:
            x = _complete(d, a, _solve_flow(d, a))
            return x, _exact_reports(d, a, x, time.perf_counter() - start), "min_cost_flow", 0
        except OverflowError:  # an instance too large for exact separated costs
            pass
    # CP-SAT's proofs count only where the component is the whole story (``with_bounds``):
    # in a cut or pruned region the bounds are the whole model's, so time goes elsewhere.
    if params.method == "cp_sat" or len(lengths) <= 1 \
            or (with_bounds and len(a.group) <= params.cp_sat_below):
        x, reports, cp_pairs = _solve_cp_sat(d, a, params)
        return _complete(d, a, x), reports, "cp_sat", cp_pairs
    x = _polish(d, a, _displace_arcs(d, a, _complete(d, a, _heuristic(d, a))))
    if not with_bounds:
        reports = [(name, Status.FEASIBLE, 0, 0.0) for name in
                   [*map(int, np.unique(d.g_class)), "travel", "continuity", "load"]]
        reports[0] = (*reports[0][:3], time.perf_counter() - start)
        return x, reports, "heuristic", 0
    lp = 0 < params.lp_bounds_visits <= int(d.g_count.sum())
    return x, _heuristic_reports(d, a, x, time.perf_counter() - start, lp), "heuristic", 0


def _displace(g_class: np.ndarray, g_units: np.ndarray, left: np.ndarray,
              slots_left: np.ndarray, units_left: np.ndarray, used: tuple,
              cand_start: np.ndarray, cand_vol: np.ndarray, cand_of: np.ndarray
              ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], int]:
    """Exchanges that can only improve coverage, lexicographically: an unplaced visit of class
    ``k`` goes to a volunteer who can take it once some of their visits of classes worse than
    ``k`` are taken off (worst class first, longest first, fewest possible). Class ``k`` gains
    one visit and only worse classes lose, so every exchange is a lexicographic improvement
    (and the process ends). Greedy, best class first, each visit trying its candidate
    volunteers nearest first: ``cand_vol[cand_start[c]:cand_start[c + 1]]`` for the group's
    candidate list ``c = cand_of[g]`` (-1: none).

    ``left``, ``slots_left`` and ``units_left`` are updated in place; returns the plan as
    (group, volunteer, count) and the number of exchanges.
    """
    ug, uv, uc = used
    items: dict[int, dict[int, int]] = {}
    for g, i, c in zip(ug.tolist(), uv.tolist(), uc.tolist(), strict=True):
        mine = items.setdefault(i, {})
        mine[g] = mine.get(g, 0) + c
    # Each volunteer's worst class planned (-1: none), so that a volunteer with nothing worse
    # to take off and no room is passed over without a look at their visits.
    worst = np.full(len(slots_left), -1, np.int64)
    np.maximum.at(worst, uv, g_class[ug])
    exchanges = 0
    todo = np.flatnonzero((left > 0) & (cand_of >= 0))
    for g in todo[np.lexsort((todo, g_class[todo]))].tolist():
        k, need = int(g_class[g]), int(g_units[g])
        c = int(cand_of[g])
        cands = cand_vol[cand_start[c]:cand_start[c + 1]]
        cands = cands[(worst[cands] > k) | ((slots_left[cands] >= 1)
                                            & (units_left[cands] >= need))]
        for i in cands.tolist():
            if not left[g]:
                break
            while left[g]:
                mine = items.setdefault(i, {})
                free_s, free_u = int(slots_left[i]), int(units_left[i])
                off: list = []
                if free_s < 1 or free_u < need:
                    worse = sorted((h for h in mine if g_class[h] > k),
                                   key=lambda h: (-g_class[h], -g_units[h], h))
                    for h in worse:
                        for _ in range(mine[h]):
                            if free_s >= 1 and free_u >= need:
                                break
                            off.append(h)
                            free_s += 1
                            free_u += int(g_units[h])
                    if free_s < 1 or free_u < need:
                        break  # this volunteer cannot make room: the next one
                for h in off:
                    mine[h] -= 1
                    if not mine[h]:
                        del mine[h]
                    left[h] += 1
                mine[g] = mine.get(g, 0) + 1
                left[g] -= 1
                slots_left[i] = free_s - 1
                units_left[i] = free_u - need
                exchanges += bool(off)
                worst[i] = max(g_class[h] for h in mine)
    out = [(g, i, c) for i, mine in items.items() for g, c in mine.items()]
    arr = np.array(out, np.int64).reshape(-1, 3)
    order = np.lexsort((arr[:, 1], arr[:, 0]))
    arr = arr[order]
    return (arr[:, 0], arr[:, 1], arr[:, 2]), exchanges


def _displace_arcs(d: _Part, a: _Arcs, x: np.ndarray) -> np.ndarray:
    """:func:`_displace` on one component's arcs (each group's volunteers nearest first), then
    :func:`_complete` for the visits taken off; counts per arc."""
    n_vol = len(d.vol_ids)
    left = d.g_count - np.bincount(a.group, weights=x, minlength=len(d.g_count)).astype(np.int64)
    slots_left = d.free_slots - np.bincount(a.vol, weights=x, minlength=n_vol).astype(np.int64)
    units_left = d.free_units - np.bincount(a.vol, weights=x * d.g_units[a.group],
                                            minlength=n_vol).astype(np.int64)
    order = np.lexsort((a.vol, a.metres, a.group))
    start = np.searchsorted(a.group[order], np.arange(len(d.g_count) + 1))
    has = start[1:] > start[:-1]
    used = (a.group[x > 0], a.vol[x > 0], x[x > 0])
    (ug, uv, uc), _ = _displace(d.g_class, d.g_units, left, slots_left, units_left, used,
                                start, a.vol[order], np.where(has, np.arange(len(has)), -1))
    code = a.group * n_vol + a.vol  # arcs are sorted by (group, volunteer)
    out = np.zeros(len(a.group), np.int64)
    out[np.searchsorted(code, ug * n_vol + uv)] = uc
    return _complete(d, a, out)


def _lp_bounds(d: _Part, a: _Arcs, x: np.ndarray, max_rounds: int = 40,
               seed_pairs: int = 20) -> dict:
    """Bounds of the levels from the LP relaxation with hours (HiGHS), each level with every
    earlier one held at the plan's value: per coverage class the most visits, then the least
    travel, then the most continuity. Far tighter than the slot relaxation where hours bind
    (a volunteer whose hours are spent has slots left that the slot relaxation still counts).

    The LP has one column per (group, volunteer) pair, rows for each group's visits and each
    volunteer's slots and hours, and one hold row per earlier level. Column generation keeps it
    small: it starts from each group's ``seed_pairs`` nearest volunteers, the pairs in use and
    the continuity pairs, and adds every pair whose reduced cost (priced over all pairs in one
    vectorised pass) could improve the level, until none can: only then is the LP value a
    bound of the full model. A level whose generation does not settle within ``max_rounds``
    gets no LP bound. HiGHS runs single-threaded with a warm start level to level, so the
    bounds are reproducible. Returns {level: bound} in the model's units.
    """
    import highspy

    from wulian.optimizer.lexmip import quiet_stdout

    n_groups, n_vol = len(d.g_count), len(d.vol_ids)
    n_arcs = len(a.group)
    units = d.g_units[a.group].astype(float)
    arc_class = d.g_class[a.group]
    held = _class_counts(d, a, x)
    order = np.lexsort((a.vol, a.metres, a.group))
    rank = np.empty(n_arcs, np.int64)
    rank[order] = np.arange(n_arcs) - np.searchsorted(a.group[order], a.group[order])
    inf = highspy.kHighsInf
    with quiet_stdout():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    # Primal simplex: after a cost change or a new hold row at the plan's value the previous
    # basis stays primal feasible, so each level starts where the last one ended (the dual
    # simplex took ten times longer on the district).
    h.setOptionValue("simplex_strategy", 4)
    n_base = n_groups + 2 * n_vol
    h.addRows(n_base, np.full(n_base, -inf),
              np.concatenate([d.g_count, d.free_slots, d.free_units]).astype(float),
              0, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
    hold_row = np.full(len(CLASSES), -1, np.int64)  # the row holding each class, once added
    extra_rows: dict[str, int] = {}  # "travel" → its hold row
    col_of = np.full(n_arcs, -1, np.int64)
    cols: list[int] = []

    def add(arcs: np.ndarray) -> None:
        """Columns for these arcs, with their entries in every row added so far."""
        arcs = arcs[col_of[arcs] < 0]
        if not len(arcs):
            return
        rows = [a.group[arcs], n_groups + a.vol[arcs], n_groups + n_vol + a.vol[arcs]]
        vals = [np.ones(len(arcs)), np.ones(len(arcs)), units[arcs]]
        held_at = hold_row[arc_class[arcs]]
        rows.append(held_at)
        vals.append(np.where(held_at >= 0, 1.0, 0.0))
        if "travel" in extra_rows:
            rows.append(np.full(len(arcs), extra_rows["travel"]))
            vals.append(a.metres[arcs].astype(float))
        r = np.stack(rows, axis=1)
        v = np.stack(vals, axis=1)
        keep = (r >= 0) & (v != 0)
        count = keep.sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int32)
        h.addCols(len(arcs), np.zeros(len(arcs)), np.zeros(len(arcs)),
                  a.upper[arcs].astype(float), int(count.sum()), starts,
                  r[keep].astype(np.int32), v[keep])
        col_of[arcs] = np.arange(len(cols), len(cols) + len(arcs))
        cols.extend(arcs.tolist())

    add(np.flatnonzero((rank < seed_pairs) | (x > 0) | (a.cont == 1)))

    def optimise(cost: np.ndarray) -> float | None:
        """min cost·y over all pairs by column generation; None when it does not settle."""
        for _ in range(max_rounds):
            idx = np.asarray(cols, np.int64)
            h.changeColsCost(len(idx), np.arange(len(idx), dtype=np.int32), cost[idx])
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
            dual = np.asarray(h.getSolution().row_dual)
            price = dual[a.group] + dual[n_groups + a.vol] + units * dual[n_groups + n_vol
                                                                         + a.vol]
            held_at = hold_row[arc_class]
            price = price + np.where(held_at >= 0, dual[np.maximum(held_at, 0)], 0.0)
            if "travel" in extra_rows:
                price = price + a.metres * dual[extra_rows["travel"]]
            reduced = cost - price
            enter = np.flatnonzero((col_of < 0) & (reduced < -1e-9))
            if not len(enter):
                return float(h.getInfo().objective_function_value)
            add(enter)
        return None

    bounds: dict = {}
    for k in np.unique(d.g_class):
        value = optimise(np.where(arc_class == k, -1.0, 0.0))
        if value is not None:
            bounds[int(k)] = math.floor(-value + 1e-6)
        members = np.flatnonzero(arc_class[cols] == k)
        row = h.getNumRow()
        h.addRow(float(held[k]), inf, len(members), members.astype(np.int32),
                 np.ones(len(members)))
        hold_row[k] = row
    value = optimise(a.metres.astype(float))
    if value is not None:
        bounds["travel"] = math.ceil(value - 1e-6)
    idx = np.asarray(cols, np.int64)
    row = h.getNumRow()
    h.addRow(-inf, float(a.metres @ x), len(idx), np.arange(len(idx), dtype=np.int32),
             a.metres[idx].astype(float))
    extra_rows["travel"] = row
    value = optimise(-a.cont.astype(float))
    if value is not None:
        bounds["continuity"] = math.floor(-value + 1e-6)
    return bounds


# ----------------------------------------------------------------------------- regions


@dataclass
class _Shared:
    """What every region needs, shipped once to each worker process: volunteers, locations
    and groups of the whole model, and which region each location and volunteer is in."""

    params: MatchParams
    vol_lat: np.ndarray
    vol_lon: np.ndarray
    vol_reach: np.ndarray
    vol_skills: np.ndarray
    vol_checked: np.ndarray
    free_slots: np.ndarray
    free_units: np.ndarray
    pinned_units: np.ndarray
    relax_cap: np.ndarray  # slot relaxation's capacity with the shortest visit of the model
    loc_lat: np.ndarray
    loc_lon: np.ndarray
    g_loc: np.ndarray
    g_units: np.ndarray
    g_class: np.ndarray
    g_count: np.ndarray
    g_skills: np.ndarray
    g_safe: np.ndarray
    g_last: np.ndarray
    loc_region: np.ndarray
    vol_region: np.ndarray  # -1: in no region (can take no visit)
    split: bool  # a component was cut into regions
    regions: int


@dataclass
class _RegionResult:
    """A region's plan (used pairs, whole-model indices), its components' level reports and,
    when bounds of the whole are needed, the ingredients of those."""

    group: np.ndarray
    vol: np.ndarray
    count: np.ndarray
    reports: dict  # level → [status, bound, seconds] summed over the components
    exact: bool  # no cut and no pruning: the reports are bounds of the whole
    groups: np.ndarray  # the region's groups
    reach_any: np.ndarray  # per region group: a qualified volunteer within reach exists
    room_any: np.ndarray  # … one with room for one of its visits
    cut_paid: np.ndarray | None = None  # per class prefix: visits the region's cut pays for
    cut_vols: list | None = None  # per class prefix: bool mask of volunteers it cuts
    near: np.ndarray | None = None  # per region group: metres to its nearest volunteer with room
    # Per region group its (location, requirement) key; per key its nearest qualified
    # volunteers (CSR: starts, volunteers) and whether there are more than those.
    candidates: tuple | None = None
    busy_vols: np.ndarray | None = None  # volunteers with a pair in the region's model
    reach_vols: np.ndarray | None = None  # bool mask: volunteers any of its visits could go to
    sizes: dict = field(default_factory=dict)
    methods: dict = field(default_factory=dict)
    seconds: float = 0.0


def _keys(loc: np.ndarray, skills: np.ndarray, safe: np.ndarray, units: np.ndarray | None
          ) -> tuple[np.ndarray, np.ndarray, list]:
    """Keys of groups: a location and what its visits need (skills, check and, unless
    ``units`` is None, length). Returns each group's key, each key's location and the
    requirements (one per distinct need, keys numbered by requirement, then location)."""
    units = np.zeros(len(loc), np.int64) if units is None else units
    frame = pd.DataFrame({"s": skills, "c": safe, "u": units, "l": loc})
    combo, combos = pd.factorize(pd.MultiIndex.from_frame(frame[["s", "c", "u"]]), sort=True)
    code = pd.MultiIndex.from_arrays([combo, loc])
    key_of, uniques = pd.factorize(code, sort=True)
    key_combo = np.asarray(uniques.get_level_values(0), np.int64) if len(uniques) else \
        np.zeros(0, np.int64)
    key_loc = np.asarray(uniques.get_level_values(1), np.int64) if len(uniques) else \
        np.zeros(0, np.int64)
    requirements = [(int(m), bool(c), int(u), np.flatnonzero(key_combo == j))
                    for j, (m, c, u) in enumerate(combos)]
    return key_of.astype(np.int64), key_loc, requirements


def _qualified(vol_skills: np.ndarray, vol_checked: np.ndarray, mask: int, safe: bool
               ) -> np.ndarray:
    """Volunteers with every skill of ``mask`` (and a background check when ``safe``)."""
    return ((vol_skills & mask) == mask) & (vol_checked | (not safe))


def _arc_budget(count: np.ndarray, groups_per_key: np.ndarray, budget: int) -> int:
    """The largest ``K`` with Σ_key min(count, K) × groups ≤ budget (at least 1): how many of
    its nearest volunteers each group keeps. ``count.max()`` when everything fits."""
    top = int(count.max(initial=0))
    if int(count @ groups_per_key) <= budget or top <= 1:
        return max(top, 1)
    lo, hi = 1, top
    while lo < hi:  # a bisection over K; each step one vectorised sum
        mid = (lo + hi + 1) // 2
        if int(np.minimum(count, mid) @ groups_per_key) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def solve_region(s: _Shared, r: int) -> _RegionResult:
    """Build region ``r``'s pairs, solve its exact components one by one, and (when the whole
    model is cut or pruned) work out its share of the whole model's bounds.

    A module-level function of picklable arguments: the process pool runs it by name. The
    pairs of the region's locations with *every* volunteer are looked at requirement by
    requirement (a few vectorised passes), never expanded to groups × volunteers: only the
    pairs the region's model keeps are.
    """
    start = time.perf_counter()
    p = s.params
    n_vol, n_loc = len(s.vol_lat), len(s.loc_lat)
    locs = np.flatnonzero(s.loc_region == r)
    groups = np.flatnonzero(s.loc_region[s.g_loc] == r)
    n_groups = len(groups)
    mine = s.vol_region == r

    # Every volunteer within reach of the region's locations, nearest first per location.
    li, vi, km = pairs_within(s.loc_lat[locs], s.loc_lon[locs], s.vol_lat, s.vol_lon,
                              s.vol_reach)
    li = locs[li]
    order = np.argsort(li * 1e5 + km, kind="stable")  # km < 1e5: by location, then distance
    li, vi, km = li[order], vi[order], km[order]
    gl, gs, gc, gu = s.g_loc[groups], s.g_skills[groups], s.g_safe[groups], s.g_units[groups]

    # Per (location, requirement): is any qualified volunteer within reach at all (room or
    # not), and its nearest ones (the candidates of exchanges and of the reasons' check).
    need_of, need_loc, needs = _keys(gl, gs, gc, None)
    where = np.full(n_loc, -1, np.int64)
    n_qualified = np.zeros(len(need_loc), np.int64)
    cand_key, cand_vol = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for mask, safe, _, keys in needs:
        where[need_loc[keys]] = keys
        rel = np.flatnonzero(_qualified(s.vol_skills, s.vol_checked, mask, safe)[vi]
                             & (where[li] >= 0))
        lr = li[rel]
        n_qualified += np.bincount(where[lr], minlength=len(need_loc))
        top = rel[(np.arange(len(rel)) - np.searchsorted(lr, lr)) < CANDIDATES]
        cand_key.append(where[li[top]])
        cand_vol.append(vi[top])
        where[need_loc[keys]] = -1
    reach_any = (n_qualified > 0)[need_of]
    cand_key = np.concatenate(cand_key)  # sorted: keys go by requirement, then location
    candidates = (need_of, np.searchsorted(cand_key, np.arange(len(need_loc) + 1)),
                  np.concatenate(cand_vol), n_qualified > CANDIDATES)

    # Pairs with room, requirement by requirement; each key keeps its nearest K of the region.
    key_of, key_loc, reqs = _keys(gl, gs, gc, gu)
    n_keys = len(key_loc)
    room_key = np.zeros(n_keys, bool)
    count = np.zeros(n_keys, np.int64)
    pair_mine = mine[vi]
    ok_pairs, mine_pairs = [], []
    for mask, safe, units, keys in reqs:
        where[key_loc[keys]] = keys
        okv = _qualified(s.vol_skills, s.vol_checked, mask, safe) \
            & (s.free_slots >= 1) & (s.free_units >= units)
        rel = np.flatnonzero(okv[vi] & (where[li] >= 0))
        room_key[where[li[rel]]] = True
        mrel = rel[pair_mine[rel]]
        count += np.bincount(where[li[mrel]], minlength=n_keys)
        ok_pairs.append(rel)
        mine_pairs.append(mrel)
        where[key_loc[keys]] = -1
    room_any = room_key[key_of]
    reach_vols = np.zeros(n_vol, bool)  # volunteers who could take one of the region's visits
    for rel in ok_pairs:
        reach_vols[vi[rel]] = True
    per_key = np.bincount(key_of, minlength=n_keys)
    # Pruned when the model would exceed max_arcs, or hold more than ten times the pairs a
    # pruned one keeps (a street of a city centre reaches thousands of volunteers: the far
    # ones rarely matter and cost seconds).
    full = int(count @ per_key)
    budget = min(p.max_arcs, p.arcs_per_visit * int(s.g_count[groups].sum()))
    k_keep = _arc_budget(count, per_key, budget) \
        if p.decompose != "never" and full > min(p.max_arcs, 10 * budget) \
        else int(count.max(initial=1))
    pruned = bool(count.max(initial=0) > k_keep)

    kept_key, kept_pair, ex_pairs = [], [], []
    near = np.full(n_keys, _NO_METRES)  # nearest volunteer with room, of the whole model
    for (*_, keys), rel in zip(reqs, ok_pairs, strict=True):
        if len(rel):
            lr = li[rel]
            first = np.flatnonzero(np.r_[True, lr[1:] != lr[:-1]])
            where[key_loc[keys]] = keys
            near[where[lr[first]]] = np.round(km[rel[first]] * 1000.0).astype(np.int64)
            where[key_loc[keys]] = -1
    scratch = np.zeros(len(li), bool)
    for (*_, keys), rel, mrel in zip(reqs, ok_pairs, mine_pairs, strict=True):
        where[key_loc[keys]] = keys
        lm = li[mrel]
        keep = mrel[(np.arange(len(mrel)) - np.searchsorted(lm, lm)) < k_keep]
        kept_key.append(where[li[keep]])
        kept_pair.append(keep)
        scratch[keep] = True
        ex_pairs.append(rel[~scratch[rel]])  # pairs of the whole model the region leaves out
        scratch[keep] = False
        where[key_loc[keys]] = -1
    kk_key = np.concatenate([np.zeros(0, np.int64), *kept_key])  # sorted: keys go by requirement
    kk_pair = np.concatenate([np.zeros(0, np.int64), *kept_pair])

    # Arcs: each group takes its key's kept pairs, plus its last volunteer when left out.
    first = np.searchsorted(kk_key, np.arange(n_keys + 1))
    each = (first[1:] - first[:-1])[key_of]
    arc_j = np.repeat(np.arange(n_groups), each)
    offset = np.arange(len(arc_j)) - np.repeat(np.cumsum(each) - each, each)
    take = kk_pair[np.repeat(first[key_of], each) + offset]
    arc_vol, arc_km = vi[take], km[take]
    last = s.g_last[groups]
    cand = np.flatnonzero((last >= 0) & mine[np.maximum(last, 0)])
    if len(cand):
        lv, lg = last[cand], cand
        lkm = haversine_km(s.vol_lat[lv], s.vol_lon[lv], s.loc_lat[gl[lg]], s.loc_lon[gl[lg]])
        ok = (lkm <= s.vol_reach[lv] + _KM_TOLERANCE) \
            & ((s.vol_skills[lv] & gs[lg]) == gs[lg]) & (s.vol_checked[lv] | ~gc[lg]) \
            & (s.free_slots[lv] >= 1) & (s.free_units[lv] >= gu[lg])
        ok &= ~np.isin(key_of[lg] * n_vol + lv, kk_key * n_vol + vi[kk_pair])
        arc_j = np.concatenate([arc_j, lg[ok]])
        arc_vol = np.concatenate([arc_vol, lv[ok]])
        arc_km = np.concatenate([arc_km, lkm[ok]])
    order = np.lexsort((arc_vol, arc_j))
    arc_j, arc_vol, arc_km = arc_j[order], arc_vol[order], arc_km[order]
    units = gu[arc_j]
    upper = np.minimum(np.minimum(s.g_count[groups][arc_j], s.free_slots[arc_vol]),
                       s.free_units[arc_vol] // np.maximum(units, 1)).astype(np.int64)
    vols, arc_v = np.unique(arc_vol, return_inverse=True)
    arcs = _Arcs(group=arc_j, vol=arc_v.ravel(), km=arc_km,
                 metres=np.round(arc_km * 1000.0).astype(np.int64), upper=upper,
                 cont=(last[arc_j] == arc_vol).astype(np.int64))
    region = _Part(vol_ids=vols, free_slots=s.free_slots[vols], free_units=s.free_units[vols],
                   pinned_units=s.pinned_units[vols], g_count=s.g_count[groups],
                   g_class=s.g_class[groups], g_units=gu)
    exact = not (s.split or pruned)

    # Exact components of the region's model, each solved on its own (one model when the
    # caller asked for no decomposition).
    x = np.zeros(len(arc_j), np.int64)
    label = components(n_groups + len(vols), arc_j, n_groups + arcs.vol)
    comp_of_arc = label[arc_j]
    by_comp = np.argsort(comp_of_arc, kind="stable")
    edges = np.append(np.searchsorted(comp_of_arc[by_comp], np.unique(comp_of_arc)),
                      len(by_comp))
    pieces = [by_comp[edges[c]:edges[c + 1]] for c in range(len(edges) - 1)]
    if p.decompose == "never" and pieces:
        pieces = [np.arange(len(arc_j))]
    reports: dict = {}
    methods: dict = {}
    cp_pairs = 0
    for sel in pieces:
        sel = np.sort(sel)
        cg, gj = np.unique(arc_j[sel], return_inverse=True)
        cv, vj = np.unique(arcs.vol[sel], return_inverse=True)
        part = _Part(vol_ids=vols[cv], free_slots=region.free_slots[cv],
                     free_units=region.free_units[cv], pinned_units=region.pinned_units[cv],
                     g_count=region.g_count[cg], g_class=region.g_class[cg],
                     g_units=region.g_units[cg])
        sub = arcs.take(sel)
        sub.group, sub.vol = gj.ravel(), vj.ravel()
        xc, rep, method, pairs = _solve_component(part, sub, p, with_bounds=exact)
        x[sel] = xc
        cp_pairs += pairs
        methods[method] = methods.get(method, 0) + 1
        for name, status, bound, seconds in rep:
            got = reports.setdefault(name, [Status.OPTIMAL, 0, 0.0])
            got[0] = _worse(got[0], status)
            got[1] += bound
            got[2] += seconds

    result = _RegionResult(
        group=groups[arc_j[x > 0]], vol=arc_vol[x > 0], count=x[x > 0], reports=reports,
        exact=exact, groups=groups, reach_any=reach_any, room_any=room_any,
        sizes={"pairs": len(arc_j), "components": len(pieces), "cp_sat_pairs": cp_pairs,
               "kept_per_group": k_keep if pruned else 0, "groups": n_groups,
               "volunteers": int(mine.sum()), "reach_pairs": len(li)},
        methods=methods, busy_vols=vols, reach_vols=reach_vols)
    result.near = near[key_of]
    result.candidates = candidates
    if not exact or s.regions > 1:
        cap = s.relax_cap[vols]
        result.cut_paid, result.cut_vols = _cut_bounds(
            region, arcs, cap, vols, key_of, key_loc, reqs, ex_pairs, li, vi, n_vol)
    result.seconds = time.perf_counter() - start
    return result


def _worse(a: Status, b: Status) -> Status:
    rank = {Status.OPTIMAL: 0, Status.FEASIBLE: 1, Status.TIME_LIMIT: 2}
    return a if rank[Status(a)] >= rank[Status(b)] else b


def _cut_bounds(d: _Part, a: _Arcs, cap: np.ndarray, vols: np.ndarray, key_of: np.ndarray,
                key_loc: np.ndarray, reqs: list, ex_pairs: list, li: np.ndarray,
                vi: np.ndarray, n_vol: int) -> tuple[np.ndarray, list]:
    """Per class prefix ``k``: a cut of the whole model's slot relaxation restricted to this
    region's groups of classes ≤ k — the visits it pays for (groups off the source side) and
    the volunteers it cuts (a bool mask over all volunteers).

    The region's own minimum cut (one max-flow per prefix on its arcs, group → volunteer arcs
    uncuttable) is extended to the pairs its model leaves out (``ex_pairs``, per requirement):
    a group left on the source side would let flow through them, so their volunteers join the
    cut. Every group of the region is then either paid for or has every admissible volunteer
    cut, which is what a cut of the whole network needs of it (see :func:`_combine`).
    """
    n_groups, n_local, k = len(d.g_count), len(d.vol_ids), len(CLASSES)
    paid = np.zeros(k, np.int64)
    cut: list = [np.zeros(n_vol, bool) for _ in range(k)]
    if not n_groups:
        return paid, cut
    big = int(d.g_count.sum()) + 1
    smf = max_flow.SimpleMaxFlow()
    src, sink, g0, v0 = 0, 1, 2, 2 + n_groups
    source_arcs = smf.add_arcs_with_capacity(
        np.zeros(n_groups, np.int32), (g0 + np.arange(n_groups)).astype(np.int32),
        np.zeros(n_groups, np.int64))
    smf.add_arcs_with_capacity((g0 + a.group).astype(np.int32), (v0 + a.vol).astype(np.int32),
                               np.full(len(a.group), big, np.int64))
    smf.add_arcs_with_capacity((v0 + np.arange(n_local)).astype(np.int32),
                               np.ones(n_local, np.int32), cap.astype(np.int64))
    key_req = np.zeros(len(key_loc), np.int64)
    for j, (_, _, _, keys) in enumerate(reqs):
        key_req[keys] = j
    present = np.unique(d.g_class)
    at_loc = np.zeros(max(int(li.max(initial=-1)), int(key_loc.max(initial=-1))) + 1, bool)
    for c in present:
        inside = d.g_class <= c
        smf.set_arcs_capacity(source_arcs, np.where(inside, d.g_count, 0).astype(np.int64))
        if smf.solve(src, sink) != smf.OPTIMAL:
            raise RuntimeError("max-flow of the coverage bound failed")
        side = np.zeros(2 + n_groups + n_local, bool)
        side[np.asarray(smf.get_source_side_min_cut(), np.int64)] = True
        on_source = side[g0:g0 + n_groups] & inside
        paid[c] = int(d.g_count[inside & ~on_source].sum())
        mark = cut[c]
        mark[vols[side[v0:v0 + n_local]]] = True
        keys = np.unique(key_of[on_source])
        for j in np.unique(key_req[keys]):  # requirement by requirement, over its left-out pairs
            ex = ex_pairs[j]
            at_loc[key_loc[keys[key_req[keys] == j]]] = True
            mark[vi[ex[at_loc[li[ex]]]]] = True
            at_loc[:] = False
    # A prefix ending in a class the region has none of is the prefix before it.
    for c in range(1, k):
        if c not in present:
            paid[c], cut[c] = paid[c - 1], cut[c - 1]
    return paid, cut


# ----------------------------------------------------------------------------- the whole


def _cells(lat: np.ndarray, lon: np.ndarray, side_km: float, top: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Grid cells at least ``side_km`` wide (see :func:`pairs_within`)."""
    return (np.floor(lat / (side_km / 110.5)).astype(np.int64),
            np.floor(lon / (side_km / (111.0 * math.cos(top)))).astype(np.int64))


def _plan_regions(d: _Data, able: np.ndarray, params: MatchParams
                  ) -> tuple[np.ndarray, np.ndarray, bool]:
    """The region of every location and volunteer (-1: in none, as a volunteer who can take no
    visit), and whether a component had to be cut (see the module notes)."""
    n_loc = len(d.loc_lat)
    loc_region = np.zeros(n_loc, np.int64)
    vol_region = np.where(able, 0, -1).astype(np.int64)
    if params.decompose == "never" or n_loc == 0 or not able.any():
        return loc_region, vol_region, False
    reach = float(d.vol_reach[able].max()) + 1e-6
    top = np.radians(min(89.0, max(np.abs(d.loc_lat).max(), np.abs(d.vol_lat[able]).max())
                         + reach / 110.0))
    lci, lcj = _cells(d.loc_lat, d.loc_lon, reach, top)
    who = np.flatnonzero(able)
    vci, vcj = _cells(d.vol_lat[who], d.vol_lon[who], reach, top)
    # Cells as nodes; a volunteer's cell is linked to every location cell among its nine.
    cell_i = np.concatenate([lci, vci])
    cell_j = np.concatenate([lcj, vcj])
    node, cell_of = np.unique(np.stack([cell_i, cell_j], axis=1), axis=0, return_inverse=True)
    cell_of = cell_of.ravel()
    loc_node, vol_node = cell_of[:n_loc], cell_of[n_loc:]
    has_loc = np.zeros(len(node), bool)
    has_loc[loc_node] = True
    code = node[:, 0] * (int(node[:, 1].max()) - int(node[:, 1].min()) + 3) + node[:, 1]
    width = int(node[:, 1].max()) - int(node[:, 1].min()) + 3
    lookup = pd.Series(np.arange(len(node)), index=code)
    vol_cells = np.unique(vol_node)
    tails, heads = [], []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            target = (node[vol_cells, 0] + di) * width + node[vol_cells, 1] + dj
            hit = lookup.reindex(target).to_numpy()
            ok = ~np.isnan(hit)
            hit_nodes = hit[ok].astype(np.int64)
            near_loc = has_loc[hit_nodes]
            tails.append(vol_cells[ok][near_loc])
            heads.append(hit_nodes[near_loc])
    tails, heads = np.concatenate(tails), np.concatenate(heads)
    label = components(len(node), tails, heads)
    linked = np.zeros(len(node), bool)
    linked[tails] = True
    loc_comp = label[loc_node]
    vol_comp = np.where(linked[vol_node], label[vol_node], -1)

    weight = np.bincount(d.g_loc, weights=d.g_count, minlength=n_loc)
    split = False
    region = 0
    vol_region[:] = -1
    comps, first = np.unique(loc_comp, return_index=True)
    for comp in comps[np.argsort(first)]:  # components in order of their first location
        locs = np.flatnonzero(loc_comp == comp)
        vols = who[vol_comp == comp]
        pieces: list = []
        if params.decompose == "auto" and weight[locs].sum() > params.part_visits:
            _bisect(d, locs, vols, weight, params.part_visits, pieces)
        else:
            pieces.append((locs, vols))
        split |= len(pieces) > 1
        for locs_r, vols_r in pieces:
            loc_region[locs_r] = region
            vol_region[vols_r] = region
            region += 1
    return loc_region, vol_region, split


def _bisect(d: _Data, locs: np.ndarray, vols: np.ndarray, weight: np.ndarray, limit: int,
            out: list) -> None:
    """Cut ``locs`` (and the volunteers living on each side) along the longer side at the
    median visit, until each piece has at most ``limit`` visits; pieces are appended in order."""
    total = float(weight[locs].sum())
    if total <= limit or len(locs) <= 1:
        out.append((locs, vols))
        return
    lat, lon = d.loc_lat[locs], d.loc_lon[locs]
    tall = (lat.max() - lat.min()) * 110.6
    wide = (lon.max() - lon.min()) * 111.3 * math.cos(math.radians(float(lat.mean())))
    coord, vol_coord = (lat, d.vol_lat[vols]) if tall >= wide else (lon, d.vol_lon[vols])
    order = np.lexsort((locs, coord))
    cum = np.cumsum(weight[locs[order]])
    at = int(np.clip(np.searchsorted(cum, total / 2.0), 0, len(locs) - 2))
    threshold = (coord[order[at]] + coord[order[at + 1]]) / 2.0
    left = vol_coord < threshold
    _bisect(d, locs[order[:at + 1]], vols[left], weight, limit, out)
    _bisect(d, locs[order[at + 1:]], vols[~left], weight, limit, out)


def _candidates(d: _Data, regions: list[_RegionResult]) -> tuple:
    """The regions' candidate lists joined: per group its key (-1 none), per key the start of
    its nearest qualified volunteers, those volunteers, and whether the list is cut short."""
    cand_of = np.full(len(d.g_count), -1, np.int64)
    starts, vols, more = [np.zeros(1, np.int64)], [], []
    keys = at = 0
    for res in regions:
        need_of, start, vol, cut = res.candidates
        cand_of[res.groups] = need_of + keys
        starts.append(start[1:] + at)
        vols.append(vol)
        more.append(cut)
        keys += len(cut)
        at += len(vol)
    return (cand_of, np.concatenate(starts),
            np.concatenate([np.zeros(0, np.int64), *vols]),
            np.concatenate([np.zeros(0, bool), *more]))


def _repair(d: _Data, used: tuple[np.ndarray, np.ndarray, np.ndarray], candidates: tuple,
            exchange: bool) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray,
                                     int]:
    """Offer the visits still unplaced to volunteers within reach across region borders and
    past pruned pairs: with ``exchange``, first by :func:`_displace` onto each visit's
    :data:`CANDIDATES` nearest qualified volunteers, then to any volunteer with a free slot and
    the hours, best class first, nearest volunteer first. Returns the plan, per group whether a
    qualified volunteer within reach still has a free slot (for the reasons), and the number of
    exchanges."""
    ug, uv, uc = used
    cand_of, cand_start, cand_vol, cand_more = candidates
    n_groups, n_vol, n_loc = len(d.g_count), len(d.vol_ids), len(d.loc_lat)
    left = d.g_count - np.bincount(ug, weights=uc, minlength=n_groups).astype(np.int64)
    slots_left = d.free_slots - np.bincount(uv, weights=uc, minlength=n_vol).astype(np.int64)
    units_left = d.free_units - np.bincount(uv, weights=uc * d.g_units[ug],
                                            minlength=n_vol).astype(np.int64)
    exchanges = 0
    if exchange and (left > 0).any():
        (ug, uv, uc), exchanges = _displace(d.g_class, d.g_units, left, slots_left, units_left,
                                            (ug, uv, uc), cand_start, cand_vol, cand_of)

    # Fill: any volunteer within reach with a free slot and the hours, best class first.
    todo = np.flatnonzero(left > 0)
    shortest = int(d.g_units[todo].min()) if len(todo) else 0
    roomy = np.flatnonzero((slots_left >= 1) & (units_left >= shortest))
    if len(todo) and len(roomy):
        gl, gs, gc, gu = d.g_loc[todo], d.g_skills[todo], d.g_safe[todo], d.g_units[todo]
        locs = np.unique(gl)
        li, vi, km = pairs_within(d.loc_lat[locs], d.loc_lon[locs], d.vol_lat[roomy],
                                  d.vol_lon[roomy], d.vol_reach[roomy])
        li, vi = locs[li], roomy[vi]
        key_of, key_loc, reqs = _keys(gl, gs, gc, gu)
        where = np.full(n_loc, -1, np.int64)
        fit_key, fit_pair = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for mask, safe, units, keys in reqs:
            where[key_loc[keys]] = keys
            okv = _qualified(d.vol_skills, d.vol_checked, mask, safe) & (units_left >= units)
            rel = np.flatnonzero(okv[vi] & (where[li] >= 0))
            rel = rel[np.lexsort((vi[rel], km[rel], li[rel]))]  # nearest first per location
            fit_key.append(where[li[rel]])
            fit_pair.append(rel)
            where[key_loc[keys]] = -1
        fit_key = np.concatenate(fit_key)  # sorted: keys go by requirement, then location
        fit_pair = np.concatenate(fit_pair)
        start = np.searchsorted(fit_key, np.arange(len(key_loc) + 1))
        cand = np.flatnonzero((start[1:] > start[:-1])[key_of])
        added: list = []
        for j in cand[np.lexsort((todo[cand], d.g_class[todo[cand]]))].tolist():
            g, k = todo[j], key_of[j]
            for p in fit_pair[start[k]:start[k + 1]].tolist():  # nearest first
                i = vi[p]
                fit = min(left[g], slots_left[i], units_left[i] // d.g_units[g])
                if fit > 0:
                    added.append((g, i, fit))
                    left[g] -= fit
                    slots_left[i] -= fit
                    units_left[i] -= fit * d.g_units[g]
                if not left[g]:
                    break
        if added:
            extra = np.array(added, np.int64)
            total = pd.DataFrame({"g": np.concatenate([ug, extra[:, 0]]),
                                  "v": np.concatenate([uv, extra[:, 1]]),
                                  "c": np.concatenate([uc, extra[:, 2]])}) \
                .groupby(["g", "v"], sort=True)["c"].sum()
            ug = total.index.get_level_values(0).to_numpy(np.int64)
            uv = total.index.get_level_values(1).to_numpy(np.int64)
            uc = total.to_numpy(np.int64)
        # Every fit was taken: a visit left unplaced fits no volunteer within reach.
        fits = np.zeros(len(key_loc), bool)
        for mask, safe, units, keys in reqs:
            where[key_loc[keys]] = keys
            okv = _qualified(d.vol_skills, d.vol_checked, mask, safe) & (slots_left >= 1) \
                & (units_left >= units)
            fits[where[li[okv[vi] & (where[li] >= 0)]]] = True
            where[key_loc[keys]] = -1
        if (fits[key_of] & (left[todo] > 0)).any():  # cannot happen
            raise RuntimeError("an unplaced visit still fits a volunteer")

    # Reasons: a qualified volunteer within reach with a slot still free? The nearest
    # candidates answer for most visits; only where all of a long list are full are the
    # rest looked at.
    slot_any = np.zeros(n_groups, bool)
    todo = np.flatnonzero(left > 0)
    keys = np.unique(cand_of[todo][cand_of[todo] >= 0])
    n = cand_start[keys + 1] - cand_start[keys]
    owner = np.repeat(keys, n)
    idx = np.repeat(cand_start[keys], n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    free_key = np.zeros(len(cand_more), bool)
    free_key[owner[slots_left[cand_vol[idx]] >= 1]] = True
    slot_any[todo] = (cand_of[todo] >= 0) & free_key[np.maximum(cand_of[todo], 0)]
    open_question = todo[(cand_of[todo] >= 0) & ~slot_any[todo]
                         & cand_more[np.maximum(cand_of[todo], 0)]]
    free = np.flatnonzero(slots_left >= 1)
    if len(open_question) and len(free):
        gl, gs, gc = d.g_loc[open_question], d.g_skills[open_question], d.g_safe[open_question]
        locs = np.unique(gl)
        li, vi, _ = pairs_within(d.loc_lat[locs], d.loc_lon[locs], d.vol_lat[free],
                                 d.vol_lon[free], d.vol_reach[free])
        li, vi = locs[li], free[vi]
        need_of, need_loc, needs = _keys(gl, gs, gc, None)
        at = np.zeros(n_loc, bool)
        found = np.zeros(len(need_loc), bool)
        for mask, safe, _, nkeys in needs:
            at[li[_qualified(d.vol_skills, d.vol_checked, mask, safe)[vi]]] = True
            found[nkeys] = at[need_loc[nkeys]]
            at[:] = False
        slot_any[open_question] = found[need_of]
    return (ug, uv, uc), slot_any, exchanges


def _combine(d: _Data, regions: list[_RegionResult], exact: bool, used: tuple,
             relax_cap: np.ndarray, able: np.ndarray) -> dict:
    """Each level's (status, bound, seconds) over the unpinned visits, in the model's units:
    the sum of the components' when nothing was cut or pruned, else bounds of the whole
    (see the module notes)."""
    found: dict = {}
    for res in regions:
        for name, (status, bound, seconds) in res.reports.items():
            got = found.setdefault(name, [Status.OPTIMAL, 0, 0.0])
            got[0] = _worse(got[0], status)
            got[1] += bound
            got[2] += seconds
    n_vol = len(d.vol_ids)
    busy = np.zeros(n_vol, bool)
    for res in regions:
        busy[res.busy_vols] = True
    idle_load = int((d.pinned_units[~busy] ** 2).sum())
    if exact:
        if "load" in found:
            found["load"][1] += idle_load
        return {name: tuple(v) for name, v in found.items()}

    ug, uv, uc = used
    k = len(CLASSES)
    held = np.bincount(d.g_class[ug], weights=uc, minlength=k).astype(np.int64)
    room = np.zeros(len(d.g_count), bool)
    for res in regions:
        room[res.groups[res.room_any]] = True
    n_max = np.bincount(d.g_class[room], weights=d.g_count[room], minlength=k).astype(np.int64)
    out: dict = {}

    def settle(name, value, bound, sense):
        met = value >= bound if sense == "max" else value <= bound
        status, _, seconds = found.get(name, (Status.OPTIMAL, 0, 0.0))
        if met:
            out[name] = (Status.OPTIMAL, value, seconds)
        else:
            worst = Status.TIME_LIMIT if status == Status.TIME_LIMIT else Status.FEASIBLE
            out[name] = (worst, bound, seconds)

    for c in np.unique(d.g_class):
        paid = sum(int(res.cut_paid[c]) for res in regions)
        cut = np.zeros(n_vol, bool)
        for res in regions:
            cut |= res.cut_vols[c]
        prefix = paid + int(relax_cap[cut].sum())
        settle(int(c), int(held[c]), int(min(n_max[c], prefix - held[:c].sum())), "max")
    metres = _metres(d, ug, uv)
    near = np.full(len(d.g_count), _NO_METRES)
    for res in regions:
        near[res.groups] = res.near
    settle("travel", int(metres @ uc), _cheapest(near, d.g_count, d.g_class, held), "min")
    settle("continuity", int(((d.g_last[ug] == uv) * uc).sum()),
           _continuity_bound(d, relax_cap), "max")
    units = np.bincount(uv, weights=uc * d.g_units[ug], minlength=n_vol).astype(np.int64)
    load = int(((units + d.pinned_units) ** 2).sum())
    could = d.pinned_units > 0
    for res in regions:
        could |= res.reach_vols
    settle("load", load, _load_floor(d.pinned_units[could], d.g_units, d.g_count, d.g_class,
                                     held), "min")
    return out


def _metres(d: _Data, group: np.ndarray, vol: np.ndarray) -> np.ndarray:
    """Metres of (group, volunteer) pairs, as the arcs count them."""
    loc = d.g_loc[group]
    km = haversine_km(d.vol_lat[vol], d.vol_lon[vol], d.loc_lat[loc], d.loc_lon[loc])
    return np.round(km * 1000.0).astype(np.int64)


def _continuity_bound(d: _Data, cap: np.ndarray) -> int:
    """Most visits any plan can give to the household's last volunteer: those whose last
    volunteer qualifies, lives within reach and has room, at most each volunteer's capacity."""
    g = np.flatnonzero(d.g_last >= 0)
    i = d.g_last[g]
    km = haversine_km(d.vol_lat[i], d.vol_lon[i], d.loc_lat[d.g_loc[g]], d.loc_lon[d.g_loc[g]])
    ok = ((d.vol_skills[i] & d.g_skills[g]) == d.g_skills[g]) \
        & (d.vol_checked[i] | ~d.g_safe[g]) & (km <= d.vol_reach[i] + _KM_TOLERANCE) \
        & (d.free_slots[i] >= 1) & (d.free_units[i] >= d.g_units[g])
    per_vol = np.bincount(i[ok], weights=d.g_count[g[ok]], minlength=len(d.vol_ids))
    return int(np.minimum(per_vol, cap).sum())


# ----------------------------------------------------------------------------- outputs


def _assign(d: _Data, used: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Volunteer and slot index of each visit (-1 when unplaced)."""
    ug, uv, uc = used
    n = len(d.visit_group)
    vol = d.pin_vol.copy()
    # Each group's visits, in table order, go to its pairs' volunteers in volunteer order.
    free = np.flatnonzero(d.visit_group >= 0)
    free = free[np.lexsort((free, d.visit_group[free]))]
    rank = np.arange(len(free)) - np.searchsorted(d.visit_group[free], d.visit_group[free])
    order = np.lexsort((uv, ug))
    who = np.repeat(uv[order], uc[order])
    grp = np.repeat(ug[order], uc[order])
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


def _reasons(d: _Data, vol: np.ndarray, reach_any: np.ndarray,
             slot_any: np.ndarray) -> np.ndarray:
    """The first reason that applies to each unplaced visit (see the module notes);
    ``reach_any``/``slot_any`` per group: a qualified volunteer within reach at all / with a
    slot still free (the regions and :func:`_repair` work them out)."""
    placed = vol >= 0
    g = np.arange(len(d.g_count))
    skill_any = np.zeros(len(g), bool)
    check_any = np.zeros(len(g), bool)
    for mask, safe in pd.unique(pd.MultiIndex.from_arrays([d.g_skills, d.g_safe])):
        has = (d.vol_skills & mask) == mask
        sel = (d.g_skills == mask) & (d.g_safe == safe)
        skill_any[sel] = has.any()
        check_any[sel] = (has & (d.vol_checked | (not safe))).any()
    reason = np.select([~skill_any, ~check_any, ~reach_any, ~slot_any],
                       list(REASONS[:4]), REASONS[4]).astype(object)
    return reason[d.visit_group[~placed]]


def match_visits(visits: pd.DataFrame, volunteers: pd.DataFrame,
                 params: MatchParams | None = None,
                 run_parts: PartRunner | None = None) -> VisitMatch:
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
    if params.method == "flow" and len(np.unique(d.g_units)) > 1:
        raise ValueError("method='flow' needs visits of one length; use 'cp_sat' or 'auto'")
    shortest = int(d.g_units.min()) if len(d.g_units) else 1
    relax_cap = np.minimum(d.free_slots, d.free_units // max(shortest, 1)).astype(np.int64)
    able = relax_cap > 0
    loc_region, vol_region, split = _plan_regions(d, able, params)
    n_regions = int(loc_region.max()) + 1 if len(loc_region) else 0
    shared = _Shared(
        params=params, vol_lat=d.vol_lat, vol_lon=d.vol_lon, vol_reach=d.vol_reach,
        vol_skills=d.vol_skills, vol_checked=d.vol_checked, free_slots=d.free_slots,
        free_units=d.free_units, pinned_units=d.pinned_units, relax_cap=relax_cap,
        loc_lat=d.loc_lat, loc_lon=d.loc_lon, g_loc=d.g_loc, g_units=d.g_units,
        g_class=d.g_class, g_count=d.g_count, g_skills=d.g_skills, g_safe=d.g_safe,
        g_last=d.g_last, loc_region=loc_region, vol_region=vol_region, split=split,
        regions=n_regions)
    weight = np.bincount(loc_region[d.g_loc], weights=d.g_count, minlength=n_regions)
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
    reach_any = np.zeros(len(d.g_count), bool)
    for res in regions:
        reach_any[res.groups] = res.reach_any
    used, slot_any, exchanges = _repair(d, used, _candidates(d, regions), exchange=not exact)
    reports = _combine(d, regions, exact, used, relax_cap, able)
    solve = time.perf_counter() - t1

    vol, slot = _assign(d, used)
    levels = _levels(d, used, vol, reports)
    placed = vol >= 0
    loc = d.visit_loc[placed]
    km = np.full(len(vol), np.nan)
    km[placed] = haversine_km(d.vol_lat[vol[placed]], d.vol_lon[vol[placed]], d.loc_lat[loc],
                              d.loc_lon[loc])
    hours = visits["hours"].to_numpy(float)
    assignments = pd.DataFrame({
        "visit_id": visits["visit_id"].to_numpy()[placed],
        "volunteer_id": d.vol_ids[vol[placed]],
        "slot": np.array(SLOTS, dtype=object)[slot[placed]],
        "hours": hours[placed],
        "km": np.round(km[placed], 3),
    })
    unplaced = pd.DataFrame({"visit_id": visits["visit_id"].to_numpy()[~placed],
                             "reason": _reasons(d, vol, reach_any, slot_any)})
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
    methods: dict = {}
    for res in regions:
        for name, n in res.methods.items():
            methods[name] = methods.get(name, 0) + n
    method = "+".join(sorted(methods)) if methods else "none"
    sizes = {"visits": len(visits), "pinned": int((d.pin_vol >= 0).sum()),
             "groups": len(d.g_count), "volunteers": n_vol,
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


def _levels(d: _Data, used: tuple, vol: np.ndarray, reports: dict) -> list[LevelResult]:
    """Every level's value recomputed from the final plan, with its bound and status.

    ``reports`` holds each level's (status, bound, seconds), bounds in the model's units over
    the unpinned visits. Pinned visits add the same constant to a level's value and its bound.
    """
    ug, uv, uc = used
    placed = vol >= 0
    pinned = d.pin_vol >= 0
    n_vol = len(d.vol_ids)
    pin_class = np.bincount(d.visit_class[pinned], minlength=len(CLASSES))
    loc = d.visit_loc[pinned]
    pin_km = haversine_km(d.vol_lat[d.pin_vol[pinned]], d.vol_lon[d.pin_vol[pinned]],
                          d.loc_lat[loc], d.loc_lon[loc])
    pin_m = int(np.round(pin_km * 1000.0).sum())
    pin_cont = int((d.pin_vol[pinned] == d.visit_last[pinned]).sum())
    per_class = np.bincount(d.visit_class[placed], minlength=len(CLASSES))
    units = np.bincount(vol[placed], weights=d.visit_units[placed], minlength=n_vol)
    values = {f"cover:{t}:{u}": float(per_class[c]) for c, (t, u) in enumerate(CLASSES)
              if (d.visit_class == c).any()}
    values["travel"] = (int(_metres(d, ug, uv) @ uc) + pin_m) / 1000.0
    values["continuity"] = float(int(((d.g_last[ug] == uv) * uc).sum()) + pin_cont)
    values["load"] = float((units ** 2).sum()) / d.scale ** 2

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
