"""What the volunteer matching is asked and what it answers: the vocabulary of its tables
(slots, priority classes, the visits table's columns), :class:`MatchParams` and
:class:`VisitMatch`. docs/matching.md says what each parameter does to the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pandas as pd

from wulian.contract import vocab
from wulian.optimizer.lexmip import LevelResult
from wulian.optimizer.status import Status

SLOTS: tuple[str, ...] = tuple(vocab.SLOTS)
URGENCIES: tuple[int, ...] = (3, 2, 1)
#: Priority classes, best first: (colour, urgency).
CLASSES: tuple[tuple[str, int], ...] = tuple((t, u) for t in vocab.TIER_ORDER for u in URGENCIES)
#: Columns a visits table must have (others pass through untouched).
VISIT_COLUMNS: tuple[str, ...] = ("visit_id", "household_id", "tier", "urgency", "hours",
                                  "skills", "safeguarding", "lat", "lon", "last_volunteer",
                                  "pin_volunteer", "pin_slot")
DECOMPOSE = ("auto", "components", "never")
#: Nearest qualified volunteers each visit may be exchanged onto after the regions.
CANDIDATES = 40

_Key = TypeVar("_Key", bound=Hashable)
_Out = TypeVar("_Out")


class PartRunner(Protocol):
    """``run_parts(task, payload, keys)`` → ``{key: task(payload, key)}``: how regions are run
    (``planning.match`` passes a process pool; by default they run one after another here)."""

    def __call__(self, task: Callable[[Any, _Key], _Out], payload: Any, keys: Sequence[_Key],
                 /) -> dict[_Key, _Out]: ...


@dataclass(frozen=True)
class MatchParams:
    """Parameters of the volunteer matching; ``planning.match`` uses the monitoring ones.

    A visit's length is in the visits table (``hours``); a monitoring visit's is the policy's
    ``quarter.monitoring_hours``, which ``planning.match`` puts there.

    Attributes
    ----------
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
    travel_repair
        When a cut or pruned model places every visit, repair its travel from the pattern LP
        over every pair (``optimizer/visits/travel.py``, ``patterns.py``; about 1.6 s of CPU on
        the district's final matching, 1,229 → 1,195 km there, within 0.45 % of the LP's
        bound), then exchange visits within each length by exact min-cost flows
        (``travel.improve_by_length``, session 18: 1,195.4 → 1,194.3 km there, 0.2 s of
        CPU). ``plan_week`` turns it off for the matchings whose plan it does not report.
    travel_search
        With ``travel_repair``, then search the restricted model from the repaired plan (HiGHS
        MIP, 20 nodes): on the district demo 1,195 → 1,194 km for about 20 s more CPU; then
        the most continuity at the plan's travel (``travel.improve_continuity``, session 17:
        with ``wulian match data/demo --prove-travel`` 14 → 21 at no more travel, about 12 s
        more CPU). Off by
        default: ``wulian demo`` and a city week's open must stay quick (issue 19), and the
        search's size on a city's pruned model is not measured (docs/matching.md).
    settled_bounds
        When every visit is placed, bound travel and continuity by the LP with hours over every
        pair (``optimizer/visits/settled.py``): on the district demo continuity's bound 1,163
        → 84 for about 3 s more CPU (its travel bound, 1,185 km, is below the pattern LP's
        1,190 since session 15). Off by default, as above.
    bounds
        Work out every level's bound (off: the plan only, the same plan, every level reported
        ``feasible`` with no bound). ``plan_week`` turns it off for the matchings whose plan
        only tells the next round what can be placed (a guess's, the settling's): their
        bounds cost a second on the district and are never read.
    """

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
    travel_repair: bool = True
    travel_search: bool = False
    settled_bounds: bool = False
    bounds: bool = True

    def __post_init__(self) -> None:
        if self.method not in ("auto", "flow", "cp_sat"):
            raise ValueError(f"method must be auto, flow or cp_sat, not {self.method!r}")
        if self.monitoring_scope not in ("all", "open_needs"):
            raise ValueError("monitoring_scope must be all or open_needs, "
                             f"not {self.monitoring_scope!r}")
        if self.monitoring_urgency not in URGENCIES:
            raise ValueError(f"monitoring_urgency must be 1, 2 or 3, not {self.monitoring_urgency}")
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
