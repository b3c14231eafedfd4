"""Column generation for the GAP: a tighter proven bound and a dive to a near-optimal start.

The GAP's own LP relaxation (one ``x[i, j]`` per pair) is weak on tightly packed instances: on
OR-Library's d20100 it proves 6,142.5 against the optimum 6,185, and the MIP solvers' search
starts far from good packings. Reformulated per agent (Dantzig–Wolfe), a *column* is one agent's
whole set of jobs within its capacity, and the master problem picks at most one column per agent
so that every job is covered exactly once:

    min  Σ_k c_k λ_k
    s.t. Σ_k a_jk λ_k = 1      for every job j      (dual π_j)
         Σ_{k of i} λ_k ≤ 1    for every agent i     (dual μ_i ≤ 0)
         λ ≥ 0

Its LP relaxation is as strong as the Lagrangian relaxation of the job rows (on d20100 it
proves 6,176). HiGHS solves the master LP; a column of negative reduced cost is found per agent
by a 0–1 knapsack over the jobs' profits ``π_j − c_ij`` (OR-Tools' knapsack solver). Every dual
vector tried gives a proven lower bound (see :func:`lagrangian_bound`), whether or not the
column generation converged.

The dive ("pure diving" of branch and price): fix the master's most chosen column (every column
at 1, or else the largest), remove its agent and jobs, generate columns again for what is left,
and repeat. It stops when every agent is fixed, or when what is left can no longer be covered
(then the caller re-solves the last fixed agents and the uncovered jobs exactly, with CP-SAT).
Every solver here is a real one: HiGHS for the LPs, OR-Tools for the knapsacks; this module only
decides which problems to hand them.

Everything here minimises; a maximisation is passed in with its costs negated.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import highspy
import numpy as np
from ortools.algorithms.python import knapsack_solver

from wulian.optimizer.lexmip import quiet_stdout

# Profits ``π_j − c_ij`` are reals; the knapsack solver takes integers. They are scaled by this
# and rounded down, and the bound then adds what the rounding could have lost (at most one unit
# of 1/_PROFIT_SCALE per item) to the solver's optimal value, so the bound stays proven.
_PROFIT_SCALE = 1e4
# Knapsacks with at most this many items × capacity units go to OR-Tools' dynamic programming
# (fast on OR-Library's capacities: 200 items × 1,600 units at most); larger ones to its branch
# and bound. Either is stopped at the deadline, and a knapsack not proven then gives no bound.
_DYNAMIC_PROGRAMMING_CELLS = 2_000_000
# The knapsack solver sums profits in 64-bit integers, and a scaled profit must be a whole
# number a double holds exactly; costs too large for either skip column generation.
_LARGEST_PROFIT_SUM = 2.0**62
_LARGEST_EXACT = 2.0**53
# A column is "at 1" in the master's solution above this value; the dive fixes all of those.
_AT_ONE = 1.0 - 1e-6
# A reduced cost below this is negative (HiGHS' duals carry float noise).
_NEGATIVE = -1e-6
# Every job has an artificial cover (a column of its own, dearer than any assignment) so that
# every restricted master is feasible. More of it than this in a converged master means the
# remaining jobs cannot be covered by the remaining agents.
_ARTIFICIAL_LEFT = 1e-6


@dataclass
class Dive:
    """What :func:`column_dive` found.

    ``bound`` is a proven lower bound on the minimum (``-inf`` when none was found);
    ``assignment`` the agent of each job (``-1`` for jobs left uncovered), or ``None`` when the
    dive did not run or did not finish; ``fixed`` the agents the dive fixed, in order;
    ``root_converged`` whether the root's column generation finished (so the bound is the
    master LP's, less rounding); ``columns`` how many columns the root generated.
    """

    bound: float = -math.inf
    assignment: np.ndarray | None = None
    fixed: list[int] = field(default_factory=list)
    root_converged: bool = False
    columns: int = 0


class _Master:
    """The restricted master LP for the agents and jobs still open, on HiGHS."""

    def __init__(self, cost: np.ndarray, agents: np.ndarray, jobs: np.ndarray,
                 artificial_cost: float):
        self.cost = cost
        self.agents, self.jobs = agents, jobs
        n = cost.shape[1]
        self.row_of_job = np.full(n, -1, dtype=np.int32)
        self.row_of_job[jobs] = np.arange(len(jobs), dtype=np.int32)
        self.row_of_agent = np.full(cost.shape[0], -1, dtype=np.int32)
        self.row_of_agent[agents] = len(jobs) + np.arange(len(agents), dtype=np.int32)
        with quiet_stdout():
            self.highs = highspy.Highs()
        h = self.highs
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        # Columns are added between solves: without presolve HiGHS re-starts from its last basis.
        h.setOptionValue("presolve", "off")
        h.setOptionValue("simplex_strategy", 4)
        rows = len(jobs) + len(agents)
        empty = np.zeros(0, dtype=np.int32)
        lower = np.concatenate([np.ones(len(jobs)), np.full(len(agents), -highspy.kHighsInf)])
        h.addRows(rows, lower, np.ones(rows), 0, empty, empty, np.zeros(0))
        # One artificial column per job: the master is feasible from the start.
        h.addCols(len(jobs), np.full(len(jobs), artificial_cost), np.zeros(len(jobs)),
                  np.full(len(jobs), highspy.kHighsInf), len(jobs),
                  np.arange(len(jobs), dtype=np.int32), np.arange(len(jobs), dtype=np.int32),
                  np.ones(len(jobs)))
        self.columns: list[tuple[int, tuple[int, ...]]] = []
        self.known: set[tuple[int, tuple[int, ...]]] = set()

    def add(self, columns: list[tuple[int, tuple[int, ...]]]) -> int:
        """Add the columns not there yet; returns how many were added."""
        new = [c for c in dict.fromkeys(columns) if c not in self.known]
        if not new:
            return 0
        starts: list[int] = []
        indices: list[int] = []
        costs: list[float] = []
        for agent, jobs in new:
            starts.append(len(indices))
            indices.extend(self.row_of_job[list(jobs)].tolist())
            indices.append(int(self.row_of_agent[agent]))
            costs.append(float(self.cost[agent, list(jobs)].sum()))
        self.highs.addCols(len(new), np.array(costs), np.zeros(len(new)),
                           np.full(len(new), highspy.kHighsInf), len(indices),
                           np.array(starts, dtype=np.int32), np.array(indices, dtype=np.int32),
                           np.ones(len(indices)))
        self.columns.extend(new)
        self.known.update(new)
        return len(new)

    def solve(self, deadline: float
              ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, float] | None:
        """Solve the LP: (value, job duals by job, agent duals, column values, artificial use),
        or None when the deadline stopped it."""
        seconds = deadline - time.perf_counter()
        if seconds <= 0:
            return None
        self.highs.setOptionValue("time_limit", seconds)
        self.highs.run()
        if self.highs.getModelStatus() == highspy.HighsModelStatus.kTimeLimit:
            return None
        if self.highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"HiGHS did not solve the GAP master LP: "
                               f"{self.highs.modelStatusToString(self.highs.getModelStatus())}")
        solution = self.highs.getSolution()
        dual = np.asarray(solution.row_dual)
        values = np.asarray(solution.col_value)
        job_dual = np.zeros(self.cost.shape[1])
        job_dual[self.jobs] = dual[:len(self.jobs)]
        artificial = float(values[:len(self.jobs)].sum())
        return (self.highs.getInfo().objective_function_value, job_dual,
                dual[len(self.jobs):], values[len(self.jobs):], artificial)


class Pricing:
    """One knapsack per agent: the agent's best set of open jobs at given job prices."""

    def __init__(self, cost: np.ndarray, weight: np.ndarray, capacity: np.ndarray):
        self.cost, self.weight, self.capacity = cost, weight, capacity
        n = cost.shape[1]
        dynamic = knapsack_solver.SolverType.KNAPSACK_DYNAMIC_PROGRAMMING_SOLVER
        branching = knapsack_solver.SolverType.KNAPSACK_MULTIDIMENSION_BRANCH_AND_BOUND_SOLVER
        self.solvers = [knapsack_solver.KnapsackSolver(
            dynamic if n * int(c) <= _DYNAMIC_PROGRAMMING_CELLS else branching, f"agent{i}")
            for i, c in enumerate(capacity)]

    def best_set(self, agent: int, prices: np.ndarray, open_jobs: np.ndarray, deadline: float
                 ) -> tuple[tuple[int, ...], float | None]:
        """The jobs of the agent's best set and a proven lower bound on its reduced cost
        ``min over sets S of Σ_{j∈S} (c_ij − π_j)`` (≤ 0: the empty set counts), or None for
        the bound when the knapsack solver was stopped by the deadline before its proof."""
        profit = prices - self.cost[agent]
        weight = self.weight[agent]
        usable = (profit > 0) & open_jobs & (weight <= self.capacity[agent])
        # A job that weighs nothing is in every best set: it is taken directly (OR-Tools' dynamic
        # programming can leave such items out of the set it reports, though not of its value).
        weightless = np.flatnonzero(usable & (weight == 0))
        items = np.flatnonzero(usable & (weight > 0))
        gain = float(profit[weightless].sum())
        if items.size == 0:
            return tuple(weightless.tolist()), -gain
        solver = self.solvers[agent]
        solver.init(np.floor(profit[items] * _PROFIT_SCALE).astype(np.int64).tolist(),
                    [weight[items].tolist()], [int(self.capacity[agent])])
        solver.set_time_limit(max(deadline - time.perf_counter(), 1e-3))
        value = solver.solve()  # the best total of the rounded-down profits
        chosen = tuple(sorted(weightless.tolist() + [int(items[k]) for k in range(items.size)
                                                     if solver.best_solution_contains(k)]))
        if not solver.is_solution_optimal():
            return chosen, None
        # No set gains more than the solver's best over the rounded-down profits plus one
        # rounding unit per item.
        return chosen, -gain - (value + items.size) / _PROFIT_SCALE


def lagrangian_bound(prices: np.ndarray, open_jobs: np.ndarray, agents: np.ndarray,
                     pricing: Pricing, deadline: float
                     ) -> tuple[float | None, list[tuple[int, tuple[int, ...]]]]:
    """``L(π) = Σ_j π_j + Σ_i min_S Σ_{j∈S} (c_ij − π_j)``: for any prices π a lower bound on the
    minimum (relax the job rows with multipliers π; each agent then picks its own best set).
    Also returns each agent's best set, the columns to offer the master. The bound is None when
    the deadline cut the pass short (an agent not priced, or a knapsack not proven)."""
    bound: float | None = float(prices[open_jobs].sum())
    sets: list[tuple[int, tuple[int, ...]]] = []
    for agent in agents:
        if time.perf_counter() > deadline:
            return None, sets
        chosen, reduced = pricing.best_set(int(agent), prices, open_jobs, deadline)
        bound = None if bound is None or reduced is None else bound + reduced
        if chosen:
            sets.append((int(agent), chosen))
    return bound, sets


def _generate(master: _Master, pricing: Pricing, open_jobs: np.ndarray, deadline: float,
              smoothing: float) -> tuple[bool, float, np.ndarray, float]:
    """Column generation on ``master`` until no column prices out or the deadline.

    After the first round, prices are smoothed towards the best Lagrangian prices so far
    (Wentges' stabilisation), which cuts the number of rounds on these degenerate masters; when
    the smoothed prices find nothing, the master's own duals are tried before stopping.
    Returns (converged, best bound, column values, artificial use).
    """
    best_bound, best_prices = -math.inf, None
    agent_row = {int(a): k for k, a in enumerate(master.agents)}
    while True:
        solved = master.solve(deadline)
        if solved is None:
            return False, best_bound, np.zeros(0), math.inf
        _, duals, agent_duals, values, artificial = solved
        found = 0
        tries = [duals] if best_prices is None else [
            smoothing * best_prices + (1 - smoothing) * duals, duals]
        for prices in tries:
            bound, sets = lagrangian_bound(prices, open_jobs, master.agents, pricing, deadline)
            if bound is None:
                return False, best_bound, values, artificial
            if bound > best_bound:
                best_bound, best_prices = bound, prices
            # A set enters when its reduced cost at the master's own duals is negative.
            entering = [(a, s) for a, s in sets
                        if pricing.cost[a, list(s)].sum() - duals[list(s)].sum()
                        - agent_duals[agent_row[a]] < _NEGATIVE]
            found = master.add(entering)
            if found or time.perf_counter() > deadline:
                break
        if not found:
            return time.perf_counter() <= deadline, best_bound, values, artificial


def column_dive(cost: np.ndarray, weight: np.ndarray, capacity: np.ndarray, *,
                root_deadline: float, deadline: float, smoothing: float = 0.8) -> Dive:
    """The root's proven bound, then a dive to an assignment, each within its deadline.

    ``cost`` is minimised. The root's column generation stops at ``root_deadline``; the dive
    runs only when the root converged, and is abandoned at ``deadline`` (``assignment`` is then
    ``None``).
    """
    m, n = cost.shape
    result = Dive()
    if n == 0 or m == 0:
        return result
    cost = cost.astype(np.float64)
    largest = float(np.abs(cost).max()) + 1.0
    # An artificial cover dearer than any whole assignment: used only when nothing else fits.
    artificial_cost = largest * n
    # A job's price never passes its artificial cover's cost, so no profit passes this.
    scaled_profit = (artificial_cost + largest) * _PROFIT_SCALE
    if scaled_profit >= _LARGEST_EXACT or scaled_profit * n >= _LARGEST_PROFIT_SUM:
        return result
    pricing = Pricing(cost, weight, capacity)
    agents = np.arange(m)
    open_jobs = np.ones(n, dtype=bool)
    master = _Master(cost, agents, np.arange(n), artificial_cost)
    converged, bound, values, artificial = _generate(master, pricing, open_jobs, root_deadline,
                                                     smoothing)
    result.bound, result.root_converged = bound, converged
    result.columns = len(master.columns)
    if not converged:
        return result

    assignment = np.full(n, -1, dtype=np.int64)
    pool = dict.fromkeys(master.columns)  # every column generated so far, in order
    while True:
        if artificial > _ARTIFICIAL_LEFT:
            break  # what is left cannot be covered: the caller repairs it
        order = np.argsort(-values, kind="stable")
        chosen = [k for k in order if values[k] > _AT_ONE] or [int(order[0])]
        taken: set[int] = set()
        for k in chosen:
            agent, jobs = master.columns[k]
            if taken.intersection(jobs):
                continue
            taken.update(jobs)
            assignment[list(jobs)] = agent
            result.fixed.append(agent)
        open_jobs = assignment < 0
        agents = np.setdiff1d(np.arange(m), result.fixed)
        if not open_jobs.any() or agents.size == 0:
            break
        master = _Master(cost, agents, np.flatnonzero(open_jobs), artificial_cost)
        master.add([(a, jobs) for a, jobs in pool
                    if a not in result.fixed and open_jobs[list(jobs)].all()])
        converged, _, values, artificial = _generate(master, pricing, open_jobs, deadline,
                                                     smoothing)
        if not converged:
            return result
        pool.update(dict.fromkeys(master.columns))
    result.assignment = assignment
    return result
