"""Which solver a component gets (flow, CP-SAT or the heuristic) and its levels' reports:
status, bound and seconds per level. docs/matching.md ("Solving a component") has the table of
methods.
"""

from __future__ import annotations

import time

import numpy as np

from wulian.optimizer.status import Status
from wulian.optimizer.visits.bounds import (
    component_bounds,
    load_floor,
    lp_bounds,
    travel_floor,
)
from wulian.optimizer.visits.component import Component, PairTable, class_counts, load_value
from wulian.optimizer.visits.exact import solve_cp_sat, solve_flow
from wulian.optimizer.visits.heuristic import (
    complete_plan,
    displace_component,
    heuristic_plan,
    polish,
    room_left,
)
from wulian.optimizer.visits.params import MatchParams


def _exact_reports(comp: Component, pairs: PairTable, x: np.ndarray, seconds: float) -> list:
    """Every level of an exactly solved component, its bound its value."""
    held = class_counts(comp, pairs, x)
    reports: list[tuple[int | str, Status, int, float]] = [
        (int(k), Status.OPTIMAL, int(held[k]), 0.0) for k in np.unique(comp.g_class)]
    reports += [("travel", Status.OPTIMAL, int(pairs.metres @ x), 0.0),
                ("continuity", Status.OPTIMAL, int(pairs.cont @ x), 0.0),
                ("load", Status.OPTIMAL, load_value(comp, pairs, x), 0.0)]
    reports[0] = (*reports[0][:3], seconds)
    return reports


def _heuristic_reports(comp: Component, pairs: PairTable, x: np.ndarray, seconds: float,
                       lp: bool = False) -> list:
    """Every level of a component solved by the heuristic: its value against the component's
    valid bounds (optimal only where it meets one); with ``lp``, each bound is the tighter of
    the slot relaxation's and the LP relaxation's (``bounds.lp_bounds``)."""
    full = component_bounds(comp, pairs)
    held = class_counts(comp, pairs, x)
    tight = lp_bounds(comp, pairs, x) if lp else {}
    reports = []

    def add(name, value, valid, sense):
        if name in tight:
            valid = min(valid, tight[name]) if sense == "max" else max(valid, tight[name])
        met = value >= valid if sense == "max" else value <= valid
        reports.append((name, Status.OPTIMAL if met else Status.FEASIBLE,
                        value if met else valid, 0.0))

    for k in np.unique(comp.g_class):
        before = int(held[:k].sum())
        add(int(k), int(held[k]), int(min(full["n_max"][k], full["prefix"][k] - before)), "max")
    add("travel", int(pairs.metres @ x), travel_floor(comp, pairs, held), "min")
    add("continuity", int(pairs.cont @ x), full["continuity"], "max")
    add("load", load_value(comp, pairs, x),
        load_floor(comp.pinned_units, comp.g_units, comp.g_count, comp.g_class, held), "min")
    reports[0] = (*reports[0][:3], seconds)
    return reports


def fits(comp: Component, pairs: PairTable, x: np.ndarray) -> bool:
    """Whether counts per pair ``x`` are a plan: within each pair's upper bound, each group's
    visits and each volunteer's free slots and hours."""
    if (x < 0).any() or (x > pairs.upper).any():
        return False
    placed = np.bincount(pairs.group, weights=x, minlength=len(comp.g_count))
    slots_left, units_left = room_left(comp, pairs, x)
    return bool((placed <= comp.g_count).all() and (slots_left >= 0).all()
                and (units_left >= 0).all())


def better(comp: Component, pairs: PairTable, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether plan ``a`` is lexicographically better than ``b``: more visits of the first
    class where they differ, else (same counts) less travel, more continuity, less load."""
    ca, cb = class_counts(comp, pairs, a), class_counts(comp, pairs, b)
    differ = np.flatnonzero(ca != cb)
    if len(differ):
        return bool(ca[differ[0]] > cb[differ[0]])
    key = lambda x: (int(pairs.metres @ x), -int(pairs.cont @ x),  # noqa: E731
                     load_value(comp, pairs, x))
    return key(a) < key(b)


def solve_component(comp: Component, pairs: PairTable, params: MatchParams,
                    with_bounds: bool = True, hint: np.ndarray | None = None
                    ) -> tuple[np.ndarray, list, str, int]:
    """Counts per pair of one component, its level reports (level, status, bound, seconds in
    the component's model units), the method used and the pairs CP-SAT was given.

    Without ``with_bounds`` (the component is part of a cut or pruned region, whose bounds come
    from the whole model), a mixed component goes to the heuristic (unless ``method`` is
    ``cp_sat``), which then skips its own bounds and reports its levels ``feasible``.

    ``hint`` (counts per pair, a plan, e.g. an earlier round's placements) is a second
    starting point of the heuristic: completed, exchanged and polished like the first, and
    taken when it ends lexicographically better. The bounds are those of the plan kept (holds
    at its own values), so they hold whichever it is."""
    start = time.perf_counter()
    lengths = np.unique(comp.g_units)
    if len(lengths) <= 1 and params.method in ("auto", "flow"):
        try:
            x = complete_plan(comp, pairs, solve_flow(comp, pairs))
            reports = _exact_reports(comp, pairs, x, time.perf_counter() - start)
            return x, reports, "min_cost_flow", 0
        except OverflowError:  # an instance too large for exact separated costs
            pass
    # CP-SAT's proofs count only where the component is the whole story (``with_bounds``):
    # in a cut or pruned region the bounds are the whole model's, so time goes elsewhere.
    if params.method == "cp_sat" or len(lengths) <= 1 \
            or (with_bounds and len(pairs.group) <= params.cp_sat_below):
        x, reports, cp_pairs = solve_cp_sat(comp, pairs, params)
        return complete_plan(comp, pairs, x), reports, "cp_sat", cp_pairs
    x = displace_component(comp, pairs, complete_plan(comp, pairs, heuristic_plan(comp, pairs)))
    polished = False
    if hint is not None and hint.any() and fits(comp, pairs, hint):
        xs = displace_component(comp, pairs, complete_plan(comp, pairs, hint))
        # Polishing keeps each class's visits: when the two plans' coverage differs it
        # decides before polishing, and only the plan kept is polished.
        if (class_counts(comp, pairs, xs) == class_counts(comp, pairs, x)).all():
            x, xs, polished = polish(comp, pairs, x), polish(comp, pairs, xs), True
        if better(comp, pairs, xs, x):
            x = xs
    if not polished:
        x = polish(comp, pairs, x)
    if not with_bounds or not params.bounds:
        reports = [(name, Status.FEASIBLE, 0, 0.0) for name in
                   [*map(int, np.unique(comp.g_class)), "travel", "continuity", "load"]]
        reports[0] = (*reports[0][:3], time.perf_counter() - start)
        return x, reports, "heuristic", 0
    lp = 0 < params.lp_bounds_visits <= int(comp.g_count.sum())
    return x, _heuristic_reports(comp, pairs, x, time.perf_counter() - start, lp), "heuristic", 0
