"""Column generation for the GAP (optimizer/gap_columns.py): its bounds are proven, its dive keeps
the capacities, and on OR-Library's d20100 its bound is the set-partitioning LP's; and how the
portfolio in optimizer/matching.py uses it (the sense of its bound, the dive's repair).

The optima and LP bounds it is checked against come from independent formulations: the compact
GAP (one 0–1 variable per pair) in PuLP + CBC for the optimum (reference/gap.py) and in
HiGHS for the LP relaxation; each agent's best job set by enumerating every subset.
"""

from __future__ import annotations

import itertools
import math
import time

import highspy
import numpy as np
import pytest

from reference.gap import exact_minimum, gap_folder
from wulian.optimizer.gap_columns import Pricing, column_dive, lagrangian_bound
from wulian.optimizer.matching import Portfolio, read_orlib_gap

GAP_FOLDER = gap_folder()


def _instance(seed: int, agents: int = 4, jobs: int = 12, tight: float = 0.8,
              weightless: float = 0.0):
    """A random GAP in the spirit of OR-Library's type D: costs fall as weights rise, and the
    capacities hold ``tight`` of the average load; a share ``weightless`` of the pairs weigh
    nothing."""
    rng = np.random.default_rng(seed)
    weight = rng.integers(1, 40, size=(agents, jobs))
    weight[rng.random(size=(agents, jobs)) < weightless] = 0
    cost = 60 - weight + rng.integers(-8, 9, size=(agents, jobs))
    capacity = np.maximum(weight.max(axis=0).max(),
                          (tight * weight.sum(axis=1) / agents).astype(int))
    return cost.astype(np.int64), weight.astype(np.int64), capacity.astype(np.int64)


def _compact_lp(cost, weight, capacity) -> float:
    """The compact model's LP relaxation, by HiGHS."""
    m, n = cost.shape
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.addVars(m * n, np.zeros(m * n), np.ones(m * n))
    h.changeColsCost(m * n, np.arange(m * n, dtype=np.int32), cost.ravel().astype(float))
    for j in range(n):
        columns = np.arange(m, dtype=np.int32) * n + j
        h.addRow(1.0, 1.0, m, columns, np.ones(m))
    for i in range(m):
        fits = weight[i] <= capacity[i]
        h.addRow(-highspy.kHighsInf, float(capacity[i]), n,
                 np.arange(i * n, (i + 1) * n, dtype=np.int32), weight[i].astype(float))
        # A pair that cannot fit is never used, as in the integer model.
        for j in np.flatnonzero(~fits):
            h.changeColBounds(i * n + int(j), 0.0, 0.0)
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return h.getInfo().objective_function_value


def _deadlines(seconds: float = 30.0):
    now = time.perf_counter()
    return {"root_deadline": now + seconds, "deadline": now + 2 * seconds}


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("sense", [1, -1], ids=["min", "max"])
@pytest.mark.parametrize("weightless", [0.0, 0.3], ids=["weighed", "weightless"])
def test_root_bound_is_proven_and_at_least_the_lp(seed, sense, weightless):
    """The converged root's bound lies between the compact LP bound and the exact optimum (both
    from independent formulations), for minimised and (negated) maximised costs, also when
    some pairs weigh nothing."""
    cost, weight, capacity = _instance(seed, weightless=weightless)
    cost = sense * cost
    optimum = exact_minimum(cost, weight, capacity)
    assert optimum is not None
    dive = column_dive(cost, weight, capacity, **_deadlines())
    assert dive.root_converged
    assert dive.bound <= optimum + 1e-6
    # Less what the knapsacks' rounding may cost: one 1/10,000 per item per agent.
    assert dive.bound >= _compact_lp(cost, weight, capacity) - cost.size / 1e4 - 1e-6


@pytest.mark.parametrize("seed", range(25))
def test_dive_keeps_every_capacity(seed):
    """The dive's assignment, read alone: jobs only on the agents it fixed, each agent within
    its capacity, each job on at most one agent; complete ones cost at least the optimum."""
    cost, weight, capacity = _instance(seed, agents=5, jobs=16)
    dive = column_dive(cost, weight, capacity, **_deadlines())
    assignment = dive.assignment
    assert assignment is not None and assignment.shape == (16,)
    assert len(set(dive.fixed)) == len(dive.fixed)
    placed = np.flatnonzero(assignment >= 0)
    assert set(assignment[placed].tolist()) <= set(dive.fixed)
    load = np.bincount(assignment[placed], weights=weight[assignment[placed], placed],
                       minlength=5)
    assert np.all(load <= capacity)
    if placed.size == 16:
        assert cost[assignment, np.arange(16)].sum() >= exact_minimum(cost, weight, capacity)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("weightless", [0.0, 0.3], ids=["weighed", "weightless"])
def test_each_agents_best_set_against_every_subset(seed, weightless):
    """Pricing, against enumeration of every subset: the set it finds fits and is best up to
    the rounding it allows for, and the bound it returns is never above the true best (OR-Tools'
    dynamic programming alone leaves some weightless items out of the set it reports)."""
    cost, weight, capacity = _instance(seed, agents=3, jobs=10, weightless=weightless)
    rng = np.random.default_rng(100 + seed)
    prices = rng.uniform(0, 80, size=10)
    open_jobs = rng.random(10) < 0.8
    pricing = Pricing(cost.astype(float), weight, capacity)
    for agent in range(3):
        best = 0.0  # the empty set
        for size in range(1, 11):
            for subset in itertools.combinations(np.flatnonzero(open_jobs), size):
                subset = list(subset)
                if weight[agent, subset].sum() <= capacity[agent]:
                    best = min(best, float((cost[agent, subset] - prices[subset]).sum()))
        chosen, lower = pricing.best_set(agent, prices, open_jobs, time.perf_counter() + 30)
        assert weight[agent, list(chosen)].sum() <= capacity[agent]
        assert all(open_jobs[list(chosen)])
        found = float((cost[agent, list(chosen)] - prices[list(chosen)]).sum()) if chosen else 0.0
        assert lower is not None and lower <= best + 1e-9
        assert found <= best + 10 / 1e4 + 1e-9


@pytest.mark.parametrize("seed", range(10))
def test_any_prices_give_a_lower_bound(seed):
    """L(π) is a lower bound for any prices, not only the master's duals."""
    cost, weight, capacity = _instance(seed, weightless=0.2)
    optimum = exact_minimum(cost, weight, capacity)
    pricing = Pricing(cost.astype(float), weight, capacity)
    rng = np.random.default_rng(seed)
    for _ in range(20):
        prices = rng.normal(40, 30, size=12)
        bound, _ = lagrangian_bound(prices, np.ones(12, dtype=bool), np.arange(4), pricing,
                                    time.perf_counter() + 30)
        assert bound is not None and bound <= optimum + 1e-6


def test_d20100_bound_is_the_set_partitioning_lp():
    """OR-Library's d20100 (optimum 6185): the compact LP proves 6,142.5; column generation's
    bound proves at least 6,176 (its master LP converges to 6,176.1) and never passes 6,185."""
    if GAP_FOLDER is None:
        pytest.fail("shared/benchmarks/gap not found")
    instance = read_orlib_gap(GAP_FOLDER / "gapd.txt")[4]
    dive = column_dive(instance.cost, instance.weight, instance.capacity, **_deadlines(60.0))
    assert dive.root_converged
    assert math.ceil(dive.bound - 1e-6) >= 6176
    assert dive.bound <= 6185


def test_deadline_passed_gives_no_dive():
    """A root deadline already passed: no dive and no bound (a pass cut short proves nothing)."""
    cost, weight, capacity = _instance(3)
    now = time.perf_counter()
    dive = column_dive(cost, weight, capacity, root_deadline=now - 1, deadline=now - 1)
    assert dive.assignment is None and not dive.root_converged
    assert dive.bound == -math.inf


def test_a_pass_cut_short_gives_no_bound():
    """Pricing stopped by its deadline part-way: the columns found so far, but no bound."""
    cost, weight, capacity = _instance(4)
    pricing = Pricing(cost.astype(float), weight, capacity)
    bound, sets = lagrangian_bound(np.full(12, 100.0), np.ones(12, dtype=bool), np.arange(4),
                                   pricing, time.perf_counter() - 1)
    assert bound is None and sets == []


def test_uncoverable_jobs_are_left_open():
    """Three jobs of weight 2 and two agents of capacity 2: the dive fixes what fits and leaves
    the rest at -1 for the caller's repair (which then finds the instance infeasible)."""
    cost = np.array([[1, 2, 3], [3, 2, 1]])
    weight = np.full((2, 3), 2)
    dive = column_dive(cost, weight, np.array([2, 2]), **_deadlines())
    assert dive.assignment is not None
    assert (dive.assignment < 0).sum() >= 1
    assert np.bincount(dive.assignment[dive.assignment >= 0], minlength=2).max() <= 1


@pytest.mark.parametrize(("largest", "jobs"), [(2**45, 2), (2**52, 4096), (5 * 10**8, 1000)])
def test_huge_costs_skip_column_generation(largest, jobs):
    """Costs whose scaled profits could overflow the knapsack solver's integers, or no longer be
    whole numbers in a double: skipped, with no overflow on the way to deciding so."""
    cost = np.ones((2, jobs), dtype=np.int64)
    cost[0, 0] = largest
    dive = column_dive(cost, np.ones((2, jobs), dtype=int), np.array([jobs, jobs]),
                       **_deadlines())
    assert dive.bound == -math.inf and dive.assignment is None


def _portfolio(cost, weight, capacity, maximize: bool) -> Portfolio:
    agent_of_pair, job_of_pair = np.nonzero(weight <= capacity[:, None])
    return Portfolio(cost, weight, capacity, agent_of_pair, job_of_pair, maximize, seed=0,
                     first=None)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("maximize", [False, True], ids=["min", "max"])
def test_portfolio_bound_in_the_callers_sense(seed, maximize):
    """The portfolio turns column generation's bound on sign × cost into the caller's sense:
    below the minimum, above the maximum; its dive's assignment, repaired, is feasible and
    no better than the optimum."""
    cost, weight, capacity = _instance(seed, agents=5, jobs=16)
    search = _portfolio(cost, weight, capacity, maximize)
    now = time.perf_counter()
    search.dive(now + 30, now + 60, now + 90, np.random.default_rng(seed))
    optimum = (-exact_minimum(-cost, weight, capacity) if maximize
               else exact_minimum(cost, weight, capacity))
    assert (search.columns_bound >= optimum) if maximize else (search.columns_bound <= optimum)
    assert search.columns_lowest == search.columns_bound * (-1 if maximize else 1)
    assert search.best is not None and search.feasible(search.best)
    value = float(cost[search.best, np.arange(16)].sum())
    assert (value <= optimum) if maximize else (value >= optimum)


def test_neighbourhood_places_unassigned_jobs():
    """CP-SAT's neighbourhood also places jobs not assigned yet (-1), counting only the jobs
    held elsewhere in the capacities: from a partial assignment it finds a complete one."""
    cost, weight, capacity = _instance(5, agents=4, jobs=12)
    search = _portfolio(cost, weight, capacity, maximize=False)
    optimum = exact_minimum(cost, weight, capacity)
    partial = np.full(12, -1, dtype=np.int64)
    moved, proven = search.neighbourhood(partial, np.zeros(0, dtype=np.int64), 30.0, 0)
    assert proven and search.feasible(moved)
    assert float(cost[moved, np.arange(12)].sum()) == optimum
