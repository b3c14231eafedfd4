"""Exact solvers of one component: two min-cost flows when its visits have one length, CP-SAT
level by level (earlier levels held) when they do not. docs/matching.md ("Solving a
component") has why each is exact and what a time-limited level reports.
"""

from __future__ import annotations

import math
import time

import numpy as np
from ortools.sat.python import cp_model

from wulian.optimizer.interrupt import solve_interruptibly
from wulian.optimizer.status import Status
from wulian.optimizer.visits.bounds import component_bounds, load_floor, travel_floor
from wulian.optimizer.visits.component import (
    Component,
    PairTable,
    coverage_flow,
    flow_costs_fit,
    solve_min_cost_flow,
)
from wulian.optimizer.visits.heuristic import complete_plan, heuristic_plan
from wulian.optimizer.visits.params import CLASSES, MatchParams


def solve_flow(comp: Component, pairs: PairTable) -> np.ndarray:
    """Counts per pair, exactly lexicographic, by two min-cost flows (all visits of one length;
    docs/matching.md has why the separated costs make the second flow exact)."""
    n_groups, n_vol, k = len(comp.g_count), len(comp.vol_ids), len(CLASSES)
    length = int(comp.g_units[0])
    cap = np.minimum(comp.free_slots, comp.free_units // length).astype(np.int64)
    placed = coverage_flow(comp, pairs, cap)
    per_class = np.bincount(comp.g_class, weights=placed, minlength=k).astype(np.int64)

    # Travel, continuity, load: class nodes supply exactly the coverage counts.
    c0, g0, v0 = 0, k, k + n_groups
    sink = v0 + n_vol
    used_cap = np.minimum(cap, np.bincount(pairs.vol, weights=pairs.upper, minlength=n_vol)
                          .astype(np.int64))
    load_vol = np.repeat(np.arange(n_vol), used_cap)
    j = np.arange(len(load_vol)) - np.repeat(np.cumsum(used_cap) - used_cap, used_cap) + 1
    p = comp.pinned_units[load_vol]
    load_cost = length * (2 * p + (2 * j - 1) * length)  # (P + jL)² − (P + (j−1)L)²
    top_load = int(load_cost.sum())  # Λ: no plan's load cost differs by more
    q = top_load + 1
    most_continuity = int(np.minimum(pairs.upper, comp.g_count[pairs.group])[pairs.cont == 1].sum())
    t = q * most_continuity + top_load + 1
    tails = np.concatenate([c0 + comp.g_class, g0 + pairs.group, v0 + load_vol])
    heads = np.concatenate([g0 + np.arange(n_groups), v0 + pairs.vol,
                            np.full(len(load_vol), sink)])
    caps = np.concatenate([comp.g_count, pairs.upper, np.ones(len(load_vol), np.int64)])
    supplies = {c: int(per_class[c]) for c in range(k)}
    supplies[sink] = -int(per_class.sum())
    # Python integers first: the check itself must not overflow.
    top = max(t * int(pairs.metres.max(initial=0)) + q, int(load_cost.max(initial=0)), 1)
    if not flow_costs_fit(top, sink + 1, int(per_class.sum())):
        raise OverflowError("the separated costs would overflow the flow's int64 arithmetic")
    arc_cost = t * pairs.metres - q * pairs.cont
    costs = np.concatenate([np.zeros(n_groups, np.int64), arc_cost, load_cost])
    flow = solve_min_cost_flow(tails, heads, caps, costs, supplies)
    return flow[n_groups:n_groups + len(pairs.group)]


def _restrict(pairs: PairTable, x: np.ndarray, max_pairs: int) -> np.ndarray:
    """Pairs CP-SAT works on: all when at most ``max_pairs``, else each group's nearest
    volunteers (as many per group as the budget allows) plus every pair in use or of
    continuity."""
    n = len(pairs.group)
    if n <= max_pairs:
        return np.arange(n)
    order = np.lexsort((pairs.vol, pairs.metres, pairs.group))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.searchsorted(pairs.group[order], pairs.group[order])
    must = (x > 0) | (pairs.cont == 1)
    # Arcs kept for each nearest-k: cumulative counts of ranks among the optional arcs.
    per_rank = np.cumsum(np.bincount(rank[~must], minlength=int(rank.max()) + 2))
    k = int(np.searchsorted(per_rank, max_pairs - int(must.sum()), side="right"))
    return np.flatnonzero(must | (rank < k))


class CpSatModel:
    """The CP-SAT model of the general case, solved level by level with holds and hints: one
    integer variable per pair (``y``), each group's and each volunteer's rows, each volunteer's
    hours (``hours``), and the current solution (``x``)."""

    def __init__(self, comp: Component, pairs: PairTable, params: MatchParams):
        self.params = params
        m = cp_model.CpModel()
        self.model = m
        n = len(pairs.group)
        self.y = np.array([m.new_int_var(0, u, "") for u in pairs.upper.tolist()], dtype=object)
        g_start = np.searchsorted(pairs.group, np.arange(len(comp.g_count) + 1))
        reach = np.bincount(pairs.group, weights=pairs.upper, minlength=len(comp.g_count))
        for g in np.flatnonzero(reach > comp.g_count):
            m.add(cp_model.LinearExpr.sum(self.y[g_start[g]:g_start[g + 1]].tolist())
                  <= int(comp.g_count[g]))
        by_vol = np.argsort(pairs.vol, kind="stable")
        v_start = np.searchsorted(pairs.vol[by_vol], np.arange(len(comp.vol_ids) + 1))
        units = comp.g_units[pairs.group]
        self.hours: dict[int, tuple[cp_model.IntVar, int]] = {}
        for i in np.flatnonzero(np.diff(v_start) > 0):  # one pair of rows per volunteer
            mine = by_vol[v_start[i]:v_start[i + 1]]
            vars_ = self.y[mine].tolist()
            if pairs.upper[mine].sum() > comp.free_slots[i]:
                m.add(cp_model.LinearExpr.sum(vars_) <= int(comp.free_slots[i]))
            most = int(min(comp.free_units[i], (units[mine] * pairs.upper[mine]).sum()))
            h = m.new_int_var(0, most, f"h{i}")
            m.add(h == cp_model.LinearExpr.weighted_sum(vars_, units[mine].tolist()))
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
        solver.parameters.catch_sigint_signal = False  # Ctrl-C is Python's (optimizer/interrupt.py)
        code = solve_interruptibly(lambda: solver.solve(m), solver.stop_search)
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


def solve_cp_sat(comp: Component, pairs: PairTable, params: MatchParams
                 ) -> tuple[np.ndarray, list, int]:
    """Counts per pair, level by level, each level's (level, status, bound, seconds), and the
    number of pairs CP-SAT was given.

    CP-SAT starts from ``heuristic.heuristic_plan``'s plan. When the model has more than
    ``params.max_pairs`` pairs it works on :func:`_restrict`'s pairs only; its proofs then hold
    for that restriction alone, so a level is reported optimal only when its value meets a
    bound valid for the full component (``bounds.component_bounds``), and reports that bound
    otherwise. On the full component a CP-SAT proof is a proof. A level already at a valid
    bound is not re-solved.
    """
    full = component_bounds(comp, pairs)
    x_all = complete_plan(comp, pairs, heuristic_plan(comp, pairs))
    sub = _restrict(pairs, x_all, params.max_pairs)
    restricted = len(sub) < len(pairs.group)
    kept = pairs.take(sub)
    cp = CpSatModel(comp, kept, params)
    cp.x = x_all[sub]
    m, y = cp.model, cp.y
    arc_class = comp.g_class[kept.group]
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
    for k in np.unique(comp.g_class):
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
    floor_m = travel_floor(comp, pairs, held)
    travel = cp_model.LinearExpr.weighted_sum(y.tolist(), kept.metres.tolist())
    solved = (cp.solve(travel, False, lambda x: int(kept.metres @ x))
              if int(kept.metres @ cp.x) > floor_m else None)
    settle("travel", int(kept.metres @ cp.x), floor_m, "min", solved)
    m.add(travel <= int(kept.metres @ cp.x))

    keep = kept.cont == 1
    cont = cp_model.LinearExpr.sum(y[keep].tolist())
    solved = (cp.solve(cont, True, lambda x: int(x[keep].sum()))
              if int(cp.x[keep].sum()) < full["continuity"] else None)
    settle("continuity", int(cp.x[keep].sum()), full["continuity"], "max", solved)
    m.add(cont >= int(cp.x[keep].sum()))

    # Volunteers without arcs keep their pinned hours: a constant of the level.
    idle = np.ones(len(comp.vol_ids), bool)
    idle[list(cp.hours)] = False
    idle_load = int((comp.pinned_units[idle] ** 2).sum())
    squares = []
    for i, (h, most) in cp.hours.items():  # Σ (P_i + h_i)², one product per volunteer
        p = int(comp.pinned_units[i])
        top = p + most
        total = m.new_int_var(p, top, f"t{i}")
        m.add(total == h + p)
        sq = m.new_int_var(p * p, top * top, f"s{i}")
        m.add_multiplication_equality(sq, [total, total])
        squares.append(sq)
    busy = list(cp.hours)

    def load_of(x: np.ndarray) -> int:
        units = np.bincount(kept.vol, weights=x * comp.g_units[kept.group],
                            minlength=len(comp.vol_ids))
        return int(((units.astype(np.int64) + comp.pinned_units)[busy] ** 2).sum())

    # A floor over every volunteer of the component (the full model may load any of them).
    floor_load = load_floor(comp.pinned_units, comp.g_units, comp.g_count, comp.g_class, held)
    solved = (cp.solve(cp_model.LinearExpr.sum(squares), False, load_of)
              if squares and load_of(cp.x) + idle_load > floor_load else None)
    if solved:
        solved = (solved[0], solved[1] + idle_load, solved[2])
    load_now = load_of(cp.x)
    settle("load", load_now + idle_load, floor_load, "min", solved)

    x = np.zeros(len(pairs.group), np.int64)
    x[sub] = cp.x
    return x, reports, len(sub)
