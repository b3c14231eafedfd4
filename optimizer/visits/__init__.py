"""Volunteer matching: the visits of one week → (volunteer, half-day slot).

Pure model: DataFrames in, DataFrames out; no files, no database, no UI (DESIGN §2, §4.3).
``planning/match.py`` builds the visits from an allocation run and explains the result;
``docs/matching.md`` has the mathematics (the model in full, why each solver is exact, what a
reported bound means) and the measured figures.

The modules, in the order a run goes through them:

- :mod:`.params` — the vocabulary (slots, classes), :class:`MatchParams`, :class:`VisitMatch`;
- :mod:`.prepare` — the input tables as arrays (:class:`~.prepare.VisitArrays`), pins checked;
- :mod:`.regions` — the city cut into regions, one region's pairs and components solved;
- :mod:`.solve` — which solver a component gets, and its levels' reports;
- :mod:`.component` — a component's arrays and pairs, the flows every solver shares;
- :mod:`.exact` — min-cost flow (one visit length) and CP-SAT level by level;
- :mod:`.heuristic` — greedy plan, completion, exchanges, polish for large mixed components;
- :mod:`.bounds` — valid bounds: slot relaxation, LP with hours, cuts of the whole network,
  the hours flow once every visit is placed;
- :mod:`.combine` — after the regions: repair across borders, bounds of the whole;
- :mod:`.patterns` — with every visit placed, the pattern LP over every pair (each volunteer's
  counts by length under a convex combination of their whole patterns): travel's bound;
- :mod:`.travel` — with every visit placed in a cut or pruned model, travel repaired from the
  pattern LP and searched (HiGHS MIP) from the repaired plan;
- :mod:`.settled` — with every visit placed, travel and continuity bounded by the LP with hours
  over every pair;
- :mod:`.reasons` — why a visit stays unplaced;
- :mod:`.match` — :func:`match_visits`, tables in and out.
"""

from wulian.optimizer.visits.match import match_visits
from wulian.optimizer.visits.params import (
    CANDIDATES,
    CLASSES,
    DECOMPOSE,
    SLOTS,
    URGENCIES,
    VISIT_COLUMNS,
    MatchParams,
    PartRunner,
    VisitMatch,
)
from wulian.optimizer.visits.reasons import REASONS

__all__ = ["CANDIDATES", "CLASSES", "DECOMPOSE", "REASONS", "SLOTS", "URGENCIES",
           "VISIT_COLUMNS", "MatchParams", "PartRunner", "VisitMatch", "match_visits"]
