"""The generalised assignment problem (GAP), solved with OR-Tools CP-SAT and HiGHS.

``m`` agents with capacities, ``n`` jobs: assigning job ``j`` to agent ``i`` costs
``cost[i, j]`` and uses ``weight[i, j]`` of agent ``i``'s capacity; every job goes to exactly one
agent. This is the generic core under the allocation's matching steps, and it is proven on the
public OR-Library instances (``tests/test_gap_benchmarks.py``, ``python -m bench.gap``).

CP-SAT on the whole model proves the small and easy instances optimal at once. What it does not
finish early goes to a portfolio of real solvers sharing one clock: HiGHS' branch and cut on the
same model in one thread; in the other, first column generation on the agents' job sets
(HiGHS for the master LP, OR-Tools' knapsack solver for the columns; optimizer/gap_columns.py),
whose proven bound is far tighter than the LP relaxation's on tightly packed instances and whose
dive gives a near-optimal assignment, then CP-SAT re-solving the jobs of a few agents at a time
(a neighbourhood search: every move is found by CP-SAT). Improvements pass between the threads.
The reported bound is the tightest of CP-SAT's, HiGHS' and column generation's proven bounds.

CP-SAT works on integers only, so the data must be whole numbers (OR-Library's are); scaling a
fractional model to integers is the caller's decision, never done silently here.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import highspy
import numpy as np
import pandas as pd
from ortools.sat.python import cp_model

from wulian.optimizer.checks import check_flag, check_seconds, check_seed, check_whole
from wulian.optimizer.gap_columns import column_dive
from wulian.optimizer.interrupt import solve_interruptibly
from wulian.optimizer.lexmip import quiet_stdout
from wulian.optimizer.status import Status

# CP-SAT reports objective values and bounds as doubles: integers beyond 2**53 would no longer
# be exact, and an objective that is silently rounded can no longer be checked against a bound.
_LARGEST_EXACT = 2**53

# CP-SAT only says FEASIBLE or UNKNOWN, not why it stopped; a wall time this close to the limit
# means the clock stopped it (it checks the limit between steps, so it may stop a hair early).
_HIT_LIMIT = 0.99

# The portfolio's settings (see solve_gap). Not tuned per instance: one setting for every input.
# CP-SAT alone on the whole model first, for this share of the time limit: the easy instances
# (all of OR-Library's gap1–gap12, most of types A–C) are proven optimal well within it.
_FIRST_SHARE = 0.15
# Each neighbourhood re-solve gets at most this many seconds and starts with this many agents;
# the number grows by one after a neighbourhood is proven optimal and shrinks by one after one
# that ran out of time, so it settles where CP-SAT can still finish most of them.
_NEIGHBOURHOOD_SECONDS = 0.1
_NEIGHBOURHOOD_AGENTS = 3
# Before the neighbourhood search, column generation (optimizer/gap_columns.py) must prove its
# bound by this share of the time limit (counted from the call's start), its dive must end by
# the second share, and CP-SAT's repair of what the dive left uncovered by the third, each try
# taking at most _REPAIR_SECONDS.
_ROOT_SHARE = 0.4
_DIVE_SHARE = 0.55
_REPAIR_SHARE = 0.65
_REPAIR_SECONDS = 0.5
# HiGHS' tolerances on its bound: a float bound is rounded to the integer it proves only after
# this relative slack, so the rounding can never cut off an optimum.
_BOUND_SLACK = 1e-6
# Seconds kept back before the deadline for the solvers to stop and the result to be read.
_MARGIN = 0.05


@dataclass(frozen=True, eq=False)
class GapResult:
    """The outcome of :func:`solve_gap`.

    Attributes
    ----------
    assignment
        Length ``n``: the agent of each job; ``-1`` for every job when there is no solution.
    objective
        Total cost of ``assignment``, recomputed from the data. With no solution: ``+inf`` when
        minimising, ``-inf`` when maximising, so a missing answer can never look like a good one.
    bound
        The best bound CP-SAT, HiGHS or column generation proved: no assignment beats it (a
        lower bound when minimising, an upper bound when maximising). Equals ``objective`` when
        proven optimal or infeasible; the trivial ``-inf`` (minimising) or ``+inf``
        (maximising) on ``error``.
    gap
        ``|objective - bound| / max(1, |objective|)``; ``0`` when optimal, ``inf`` with no
        solution.
    status
        ``optimal``, ``feasible``, ``infeasible``, ``time_limit`` (a solution or none, stopped by
        the clock) or ``error``.
    seconds
        Wall time of the whole call, building the model included.
    improvements
        Each better assignment as it was found: (seconds since the call started, objective),
        the last one being ``objective``. Benchmarks read the time to reach a target from it.
    """

    assignment: np.ndarray
    objective: float
    bound: float
    gap: float
    status: Status
    seconds: float
    improvements: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, eq=False)
class GapInstance:
    """One GAP instance: ``cost`` and ``weight`` are agents × jobs, ``capacity`` per agent."""

    name: str
    index: int  # 0-based position in its file
    cost: np.ndarray
    weight: np.ndarray
    capacity: np.ndarray

    @property
    def agents(self) -> int:
        return self.cost.shape[0]

    @property
    def jobs(self) -> int:
        return self.cost.shape[1]


def _whole_numbers(name: str, values, ndim: int) -> np.ndarray:
    """``values`` as a read-only int64 array of ``ndim`` dimensions, or a ValueError saying why."""
    array = np.asarray(values)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {array.shape}")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer)
                                   or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        # Floats that are whole numbers (what pandas gives after a merge) are accepted as such;
        # anything fractional, NaN or infinite is refused, since CP-SAT would need a scaling.
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError(f"{name} must hold whole numbers (CP-SAT is integer-only); "
                             "scale fractional data to integers first")
        if np.any(np.abs(array) >= _LARGEST_EXACT):
            raise ValueError(f"{name} has values beyond 2**53")
    integers = array.astype(np.int64)
    integers.setflags(write=False)
    return integers


def _check_gap_data(cost, weight, capacity) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cost = _whole_numbers("cost", cost, 2)
    weight = _whole_numbers("weight", weight, 2)
    capacity = _whole_numbers("capacity", capacity, 1)
    if weight.shape != cost.shape:
        raise ValueError(f"weight has shape {weight.shape}, cost {cost.shape}: "
                         "both must be agents × jobs")
    if capacity.shape != (cost.shape[0],):
        raise ValueError(f"capacity has length {capacity.shape[0]}, "
                         f"expected one per agent ({cost.shape[0]})")
    # A negative weight would let an agent gain capacity by taking a job, a negative capacity is
    # a typo: neither is a GAP. Negative costs are harmless (each job is assigned exactly once).
    if np.any(weight < 0):
        raise ValueError("weight must not be negative")
    if np.any(capacity < 0):
        raise ValueError("capacity must not be negative")
    if cost.size and np.abs(cost).max(axis=0).sum() >= _LARGEST_EXACT:
        raise ValueError("cost too large: the objective could exceed 2**53")
    return cost, weight, capacity


def _no_solution(n: int, maximize: bool, status: Status, bound: float,
                 start: float) -> GapResult:
    worst = -math.inf if maximize else math.inf
    unassigned = np.full(n, -1, dtype=np.int64)
    unassigned.setflags(write=False)
    return GapResult(assignment=unassigned, objective=worst, bound=bound, gap=math.inf,
                     status=status, seconds=time.perf_counter() - start)


def solve_gap(cost, weight, capacity, *, maximize: bool = False, time_limit: float = 10.0,
              seed: int = 0, workers: int = 2) -> GapResult:
    """Assign every job to exactly one agent within the agents' capacities, at best cost.

    The model has one boolean ``x[i, j]`` per pair that can fit at all (a job heavier than an
    agent's whole capacity is never offered to it), one exactly-one constraint per job and one
    capacity row per agent. CP-SAT solves it with ``workers`` threads for the first 15 % of
    ``time_limit``; most instances are proven optimal there. If not (and ``workers >= 2``), the
    rest of the time goes to two threads sharing one incumbent: HiGHS' branch and cut on the
    same model; and column generation over the agents' job sets (its bound by 40 % of the time
    limit, its dive to an assignment by 55 %; what the dive leaves uncovered CP-SAT re-assigns
    by 65 %),
    then a CP-SAT neighbourhood search that frees the jobs of a few random agents at a time and
    lets CP-SAT re-assign them. Every solution proposed is checked against the data; the bound
    reported is the tightest of CP-SAT's, HiGHS' and column generation's proven bounds, and the
    search stops early when an assignment meets one. With the portfolio the answer depends on
    thread timing, so it may differ from run to run.

    Parameters
    ----------
    cost, weight
        Integer arrays, agents × jobs (``m × n``). ``weight`` must be non-negative; ``cost`` may
        be any integer.
    capacity
        Non-negative integer array of length ``m``.
    maximize
        Maximise the total cost (OR-Library's gap1–gap12 optima are maximisation values)
        instead of minimising it.
    time_limit
        Seconds for the whole call, all solvers and model building together.
    seed
        CP-SAT's and HiGHS' ``random_seed``, and the neighbourhoods' random choice.
    workers
        CP-SAT's ``num_workers`` in the first phase; with ``1``, CP-SAT alone gets the whole
        time limit. The portfolio always runs two threads (HiGHS, and CP-SAT with one worker).

    Returns
    -------
    GapResult
        The assignment, its objective, the best proven bound, the relative gap, the status and
        the wall time.

    Raises
    ------
    ValueError
        On non-integer, NaN, infinite or negative data (weights, capacities), shapes that do not
        match, or a time limit, seed, worker count or ``maximize`` out of range (the message in
        Chinese and English).

    Examples
    --------
    Two agents, three jobs. Agent 1 can hold 2 units, so it cannot take both jobs 0 and 2 (its
    cheapest), and job 1 (weight 3 there) never fits it at all:

    >>> result = solve_gap(cost=[[4, 1, 3], [2, 5, 2]],
    ...                    weight=[[3, 2, 2], [1, 3, 2]],
    ...                    capacity=[4, 2])
    >>> result.status, result.objective, result.assignment.tolist()
    (<Status.OPTIMAL: 'optimal'>, 6.0, [1, 0, 0])
    >>> result.bound
    6.0
    """
    start = time.perf_counter()
    cost, weight, capacity = _check_gap_data(cost, weight, capacity)
    check_seconds("solve_gap", "time_limit", time_limit)
    check_seed("solve_gap", "seed", seed)
    check_whole("solve_gap", "workers", workers, minimum=1)
    check_flag("solve_gap", "maximize", maximize)
    m, n = cost.shape

    agent_of_pair, job_of_pair = np.nonzero(weight <= capacity[:, None])
    jobs_offered = np.bincount(job_of_pair, minlength=n)
    if n and jobs_offered.min() == 0:
        # A job no agent can hold: infeasible by the data alone, no search needed.
        worst = -math.inf if maximize else math.inf
        return _no_solution(n, maximize, Status.INFEASIBLE, worst, start)

    model = cp_model.CpModel()
    x = model.new_bool_var_series("x", pd.RangeIndex(len(agent_of_pair))).to_numpy()

    # np.nonzero lists the pairs agent by agent, so each agent's pairs are one contiguous slice;
    # a stable sort by job gives each job's pairs as contiguous slices too.
    agent_starts = np.searchsorted(agent_of_pair, np.arange(m + 1))
    by_job = np.argsort(job_of_pair, kind="stable")
    job_starts = np.searchsorted(job_of_pair[by_job], np.arange(n + 1))

    for j in range(n):
        model.add_exactly_one(x[by_job[job_starts[j]:job_starts[j + 1]]].tolist())
    pair_weight = weight[agent_of_pair, job_of_pair]
    for i in range(m):
        pairs = slice(agent_starts[i], agent_starts[i + 1])
        # An agent that can take every job it is offered needs no row; presolve would drop it,
        # but not building it keeps large easy models small.
        if pair_weight[pairs].sum() > capacity[i]:
            model.add(cp_model.LinearExpr.weighted_sum(x[pairs].tolist(),
                                                       pair_weight[pairs].tolist())
                      <= int(capacity[i]))
    total = cp_model.LinearExpr.weighted_sum(x.tolist(),
                                             cost[agent_of_pair, job_of_pair].tolist())
    if maximize:
        model.maximize(total)
    else:
        model.minimize(total)

    # With one worker there is no second thread for the portfolio: CP-SAT gets the whole time.
    portfolio = workers >= 2
    first_limit = _FIRST_SHARE * time_limit if portfolio else time_limit
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(first_limit)
    solver.parameters.random_seed = int(seed)
    solver.parameters.num_workers = int(workers)
    solver.parameters.catch_sigint_signal = False  # Ctrl-C is Python's (optimizer/interrupt.py)
    found = _Improvements(start)
    cp_status = solve_interruptibly(lambda: solver.solve(model, found), solver.stop_search)
    # CP-SAT answers UNKNOWN (nothing found, nothing proven) only when a limit or a stop ended
    # its search; on a busy machine a short limit can end it well before its own clock shows
    # the limit (0.033 s of 0.045 s seen), so UNKNOWN counts as stopped by the clock.
    hit_limit = (solver.wall_time >= _HIT_LIMIT * first_limit
                 or cp_status == cp_model.UNKNOWN)

    if cp_status == cp_model.INFEASIBLE:
        worst = -math.inf if maximize else math.inf
        return _no_solution(n, maximize, Status.INFEASIBLE, worst, start)
    if cp_status == cp_model.MODEL_INVALID:
        # A bug here, since the data were checked: without a proof of anything, the only honest
        # bound is the trivial one.
        return _no_solution(n, maximize, Status.ERROR, math.inf if maximize else -math.inf, start)

    first = None
    if cp_status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        chosen = solver.boolean_values(pd.Series(x)).to_numpy(dtype=bool)
        first = np.full(n, -1, dtype=np.int64)
        first[job_of_pair[chosen]] = agent_of_pair[chosen]
    cp_bound = float(solver.best_objective_bound)
    if cp_status == cp_model.OPTIMAL:
        assert first is not None  # set just above for OPTIMAL
        return _result(first, cost, maximize, cp_bound, hit_limit, start, found.times,
                       proven=True)
    if not portfolio:
        if first is None:
            return _no_solution(n, maximize, Status.TIME_LIMIT, cp_bound, start)
        return _result(first, cost, maximize, cp_bound, hit_limit, start, found.times)

    deadline = start + time_limit
    search = Portfolio(cost, weight, capacity, agent_of_pair, job_of_pair, maximize, seed, first)
    search.run(deadline, root_deadline=start + _ROOT_SHARE * time_limit,
               dive_deadline=start + _DIVE_SHARE * time_limit,
               repair_deadline=start + _REPAIR_SHARE * time_limit)
    bound = _tighter(_tighter(cp_bound, search.highs_bound, maximize), search.columns_bound,
                     maximize)
    if search.best is None:
        if search.highs_infeasible:
            worst = -math.inf if maximize else math.inf
            return _no_solution(n, maximize, Status.INFEASIBLE, worst, start)
        return _no_solution(n, maximize, Status.TIME_LIMIT, bound, start)
    later = [(seconds - start, float(search.sign * value))
             for seconds, value in search.improvements]
    # Unless HiGHS finished its proof or an assignment met a bound, the portfolio stops only at
    # the deadline.
    return _result(search.best, cost, maximize, bound, not search.highs_finished, start,
                   found.times + later)


def _proven_integer(lower: float) -> int:
    """The whole number a float lower bound on an integer objective proves: rounded up after a
    slack for the solvers' float tolerances, so the rounding never cuts off an optimum."""
    return math.ceil(lower - _BOUND_SLACK * max(1.0, abs(lower)))


def _tighter(a: float, b: float, maximize: bool) -> float:
    """The tighter of two proven bounds: the lower of two upper bounds, the higher of two lower."""
    return min(a, b) if maximize else max(a, b)


def _result(assignment: np.ndarray, cost: np.ndarray, maximize: bool, bound: float,
            hit_limit: bool, start: float, improvements: list[tuple[float, float]],
            proven: bool = False) -> GapResult:
    """The result for a feasible ``assignment``: optimal when ``proven`` (CP-SAT said so) or when
    the bound proven for it reaches its value."""
    n = cost.shape[1]
    assignment = assignment.astype(np.int64, copy=True)
    assignment.setflags(write=False)
    # The objective is recomputed from the data in exact integers, never taken from a solver's
    # double, so what is reported is what the assignment costs.
    objective = float(cost[assignment, np.arange(n)].sum()) if n else 0.0
    # Every bound is a whole number proven by a solver: one past the assignment in hand would be
    # a false proof, never rounding, so it is refused rather than clamped.
    if not proven and (bound < objective - 0.5 if maximize else bound > objective + 0.5):
        raise RuntimeError(f"a proven bound {bound} passes an assignment's value {objective}")
    bound = objective if proven else (max(bound, objective) if maximize else min(bound, objective))
    if bound == objective:
        status = Status.OPTIMAL
    else:
        status = Status.TIME_LIMIT if hit_limit else Status.FEASIBLE
    gap = abs(objective - bound) / max(1.0, abs(objective))
    # CP-SAT's callback reports its objective as a double: the last entry is the exact value.
    improvements = [(seconds, value) for seconds, value in improvements
                    if (value < objective) == maximize or value == objective]
    if not improvements or improvements[-1][1] != objective:
        improvements.append((time.perf_counter() - start, objective))
    return GapResult(assignment=assignment, objective=objective, bound=bound, gap=gap,
                     status=status, seconds=time.perf_counter() - start,
                     improvements=tuple(improvements))


class _Improvements(cp_model.CpSolverSolutionCallback):
    """CP-SAT's improving solutions as they come: (seconds since ``start``, objective)."""

    def __init__(self, start: float):
        super().__init__()
        self.start = start
        self.times: list[tuple[float, float]] = []

    def on_solution_callback(self) -> None:
        self.times.append((time.perf_counter() - self.start, float(round(self.objective_value))))


class Portfolio:
    """HiGHS' branch and cut, column generation and a CP-SAT neighbourhood search on one GAP,
    sharing one incumbent.

    HiGHS runs on the whole model in a thread of its own; it starts from the incumbent, hands its
    improving solutions over, and takes the other thread's improvements as user solutions. The
    calling thread first runs column generation (its bound, and its dive's assignment, repaired
    by CP-SAT where the dive left jobs uncovered), then the neighbourhood search: it repeatedly
    frees every job of a few random agents and lets CP-SAT re-assign them, to those agents or to
    whatever capacity the other agents have left, at best cost; it keeps the result when it is no
    worse. Every assignment proposed is checked against the data before it is kept.

    OR-Tools' knapsack solver holds Python's GIL while it runs, so during column generation
    HiGHS' thread waits at each of its callbacks; measured on d20100, the portfolio still ends
    far better with column generation than without.
    """

    def __init__(self, cost: np.ndarray, weight: np.ndarray, capacity: np.ndarray,
                 agent_of_pair: np.ndarray, job_of_pair: np.ndarray, maximize: bool, seed: int,
                 first: np.ndarray | None) -> None:
        self.cost, self.weight, self.capacity = cost, weight, capacity
        self.agent_of_pair, self.job_of_pair = agent_of_pair, job_of_pair
        self.sign = -1 if maximize else 1  # both solvers minimise sign × cost
        self.seed = int(seed)
        self.lock = threading.Lock()
        self.best = first if first is not None and self.feasible(first) else None
        self.best_value = self._value(self.best) if self.best is not None else math.inf
        self.given_to_highs = math.inf  # value (sign × cost) of the last incumbent HiGHS got
        self.stop = threading.Event()
        self.highs_bound = -self.sign * math.inf  # trivial until HiGHS reports
        self.highs_infeasible = False
        self.highs_finished = False  # HiGHS proved optimality or infeasibility
        self.highs_error: BaseException | None = None
        self.columns_bound = -self.sign * math.inf  # trivial until column generation reports
        self.columns_lowest = -math.inf  # the same bound on sign × cost
        self.improvements: list[tuple[float, int]] = []  # (perf_counter, sign × cost) each time

    def _value(self, assignment: np.ndarray) -> int:
        n = self.cost.shape[1]
        return self.sign * int(self.cost[assignment, np.arange(n)].sum())

    def feasible(self, assignment: np.ndarray) -> bool:
        n = self.cost.shape[1]
        if assignment.shape != (n,) or (n and assignment.min() < 0):
            return False
        load = np.bincount(assignment, weights=self.weight[assignment, np.arange(n)],
                           minlength=len(self.capacity))
        return bool(np.all(load <= self.capacity))

    def _offer(self, assignment: np.ndarray | None, strictly_better: bool) -> bool:
        """Keep ``assignment`` if it is feasible and better (or, if allowed, no worse)."""
        if assignment is None or not self.feasible(assignment):
            return False
        value = self._value(assignment)
        with self.lock:
            if value < self.best_value or (value == self.best_value and not strictly_better):
                if value < self.best_value:
                    self.improvements.append((time.perf_counter(), value))
                self.best, self.best_value = assignment, value
                return True
        return False

    def _as_columns(self, assignment: np.ndarray) -> np.ndarray:
        return (assignment[self.job_of_pair] == self.agent_of_pair).astype(np.float64)

    def _from_columns(self, values) -> np.ndarray:
        chosen = np.asarray(values, dtype=np.float64) > 0.5
        assignment = np.full(self.cost.shape[1], -1, dtype=np.int64)
        assignment[self.job_of_pair[chosen]] = self.agent_of_pair[chosen]
        return assignment

    def _highs(self, deadline: float) -> highspy.Highs:
        m, n = self.cost.shape
        agents, jobs = self.agent_of_pair, self.job_of_pair
        pairs = len(agents)
        with quiet_stdout():
            h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        h.setOptionValue("random_seed", self.seed)
        # A little before the deadline: HiGHS checks its clock between steps, not continuously.
        h.setOptionValue("time_limit", max(deadline - time.perf_counter() - _MARGIN, 1e-3))
        # The objective is a whole number: a gap below 1 proves optimality, a relative gap
        # could stop HiGHS short of it.
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", 0.5)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = pairs, n + m
        lp.col_cost_ = self.sign * self.cost[agents, jobs].astype(np.float64)
        lp.col_lower_, lp.col_upper_ = np.zeros(pairs), np.ones(pairs)
        # Rows 0..n-1: each job exactly once; rows n..n+m-1: each agent's capacity.
        lp.row_lower_ = np.concatenate([np.ones(n), np.full(m, -highspy.kHighsInf)])
        lp.row_upper_ = np.concatenate([np.ones(n), self.capacity.astype(np.float64)])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.arange(0, 2 * pairs + 1, 2, dtype=np.int32)
        rows = np.empty(2 * pairs, dtype=np.int32)
        rows[0::2], rows[1::2] = jobs, n + agents
        values = np.empty(2 * pairs)
        values[0::2], values[1::2] = 1.0, self.weight[agents, jobs]
        lp.a_matrix_.index_, lp.a_matrix_.value_ = rows, values
        lp.integrality_ = [highspy.HighsVarType.kInteger] * pairs
        h.passModel(lp)
        if self.best is not None:
            start = highspy.HighsSolution()
            start.col_value = self._as_columns(self.best).tolist()
            start.value_valid = True
            h.setSolution(start)
            self.given_to_highs = self.best_value

        def interrupt(event):
            if self.stop.is_set():
                event.interrupt()

        def improving(event):
            self._offer(self._from_columns(event.data_out.mip_solution), strictly_better=True)

        def user_solution(event):
            with self.lock:
                if self.best is None or self.best_value >= self.given_to_highs:
                    return
                self.given_to_highs, best = self.best_value, self.best
            event.data_in.setSolution(self._as_columns(best))

        h.cbMipInterrupt.subscribe(interrupt)
        h.cbMipImprovingSolution.subscribe(improving)
        h.cbMipUserSolution.subscribe(user_solution)
        return h

    def _run_highs(self, h: highspy.Highs) -> None:
        try:
            h.run()
            status = h.getModelStatus()
            if status == highspy.HighsModelStatus.kInfeasible:
                self.highs_infeasible = True
            info = h.getInfo()
            if info.primal_solution_status == 2:  # kSolutionStatusFeasible
                self._offer(self._from_columns(h.getSolution().col_value), strictly_better=True)
            bound = float(info.mip_dual_bound)
            if math.isfinite(bound):
                # HiGHS minimises sign × cost: its lower bound as the whole number it proves, in
                # the caller's sense.
                self.highs_bound = float(self.sign * _proven_integer(bound))
            if status in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kInfeasible):
                self.highs_finished = True
                self.stop.set()
        except BaseException as error:  # reported by run(), never lost in the thread
            self.highs_error = error
            self.stop.set()

    def neighbourhood(self, current: np.ndarray, agents: np.ndarray, seconds: float,
                      seed: int) -> tuple[np.ndarray | None, bool]:
        """CP-SAT re-assigns the jobs of ``agents`` and any job not assigned yet (``-1`` in
        ``current``): (the new assignment or None, proven)."""
        m, n = self.cost.shape
        free = np.flatnonzero(np.isin(current, agents) | (current < 0))
        if free.size == 0:
            return None, True
        held = np.flatnonzero(current >= 0)
        load = np.bincount(current[held], weights=self.weight[current[held], held], minlength=m)
        room = self.capacity - load
        room[agents] = self.capacity[agents]
        pair_agent = np.repeat(np.arange(m), free.size)
        pair_job = np.tile(free, m)
        fits = self.weight[pair_agent, pair_job] <= room[pair_agent]
        pair_agent, pair_job = pair_agent[fits], pair_job[fits]
        model = cp_model.CpModel()
        y = model.new_bool_var_series("y", pd.RangeIndex(len(pair_agent))).to_numpy()
        order = np.argsort(pair_job, kind="stable")
        starts = np.searchsorted(pair_job[order], free)
        ends = np.searchsorted(pair_job[order], free, side="right")
        for begin, end in zip(starts, ends, strict=True):
            model.add_exactly_one(y[order[begin:end]].tolist())
        weights = self.weight[pair_agent, pair_job]
        agent_starts = np.searchsorted(pair_agent, np.arange(m + 1))
        for i in range(m):
            rows = slice(agent_starts[i], agent_starts[i + 1])
            if weights[rows].sum() > room[i]:
                model.add(cp_model.LinearExpr.weighted_sum(y[rows].tolist(),
                                                           weights[rows].tolist())
                          <= int(room[i]))
        model.minimize(cp_model.LinearExpr.weighted_sum(
            y.tolist(), (self.sign * self.cost[pair_agent, pair_job]).tolist()))
        for var, hinted in zip(y, current[pair_job] == pair_agent, strict=True):
            model.add_hint(var, bool(hinted))
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.parameters.max_time_in_seconds = float(seconds)
        solver.parameters.random_seed = seed
        solver.parameters.catch_sigint_signal = False
        status = solve_interruptibly(lambda: solver.solve(model), solver.stop_search)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None, False
        chosen = solver.boolean_values(pd.Series(y)).to_numpy(dtype=bool)
        moved = current.copy()
        moved[pair_job[chosen]] = pair_agent[chosen]
        return moved, status == cp_model.OPTIMAL

    def dive(self, root_deadline: float, dive_deadline: float, repair_deadline: float,
             random) -> None:
        """Column generation's bound, and its dive's assignment offered as an incumbent.

        When the dive ends with jobs it could not cover, CP-SAT re-assigns them together with
        the jobs of the agents fixed last (one more agent each time it finds no answer).
        """
        try:
            dive = column_dive(self.sign * self.cost, self.weight, self.capacity,
                               root_deadline=root_deadline, deadline=dive_deadline)
        except RuntimeError:
            # HiGHS could not solve a master LP: the search goes on without column generation's
            # help (its bound and start), which only ever made it faster.
            return
        if math.isfinite(dive.bound):
            self.columns_lowest = _proven_integer(dive.bound)
            self.columns_bound = float(self.sign * self.columns_lowest)
        if dive.assignment is None:
            return
        open_agents = np.setdiff1d(np.arange(self.cost.shape[0]), dive.fixed)
        for undo in range(len(dive.fixed) + 1):
            seconds = min(_REPAIR_SECONDS, repair_deadline - time.perf_counter())
            if self.stop.is_set() or seconds <= 0.01:
                return
            agents = np.concatenate([open_agents, dive.fixed[len(dive.fixed) - undo:]])
            if undo == 0 and dive.assignment.min() >= 0:
                self._offer(dive.assignment, strictly_better=False)
                return
            moved, _ = self.neighbourhood(dive.assignment, agents.astype(np.int64), seconds,
                                          int(random.integers(2**31 - 1)))
            if moved is not None:
                self._offer(moved, strictly_better=False)
                return

    def run(self, deadline: float, root_deadline: float, dive_deadline: float,
            repair_deadline: float) -> None:
        """HiGHS in its thread until ``deadline`` (or its proof); in this one, the column
        generation's root until ``root_deadline``, its dive until ``dive_deadline`` and the
        dive's repair until ``repair_deadline``, then the neighbourhood search."""
        h = self._highs(deadline)
        thread = threading.Thread(target=self._run_highs, args=(h,), daemon=True)
        thread.start()
        m = self.cost.shape[0]
        random = np.random.default_rng(self.seed)
        size = _NEIGHBOURHOOD_AGENTS
        try:
            self.dive(root_deadline, dive_deadline, repair_deadline, random)
            # An incumbent that meets column generation's bound is optimal: nothing left to do.
            while not self.stop.is_set() and self.best_value > self.columns_lowest:
                seconds = min(_NEIGHBOURHOOD_SECONDS, deadline - time.perf_counter() - _MARGIN)
                if seconds <= 0.01:
                    break
                with self.lock:
                    current = self.best
                if current is None:  # nothing to improve yet: wait for HiGHS' first solution
                    self.stop.wait(0.01)
                    continue
                agents = random.choice(m, size=min(size, m), replace=False)
                moved, proven = self.neighbourhood(current, agents, seconds,
                                                   int(random.integers(2**31 - 1)))
                self._offer(moved, strictly_better=False)
                size = min(m, size + 1) if proven else max(2, size - 1)
        finally:
            self.stop.set()
            thread.join()
        if self.highs_error is not None:
            raise RuntimeError("HiGHS failed on the GAP model") from self.highs_error


def read_orlib_gap(path: str | Path) -> list[GapInstance]:
    """Read a file of GAP instances in Beasley's OR-Library format.

    The format: the number of instances ``P``; then for each, ``m`` and ``n``, the cost matrix
    (``m`` rows of ``n``), the resource (weight) matrix (``m`` rows of ``n``) and the ``m``
    capacities. Numbers are separated by white space; line breaks carry no meaning.

    Parameters
    ----------
    path
        The file, e.g. ``gap1.txt``.

    Returns
    -------
    list of GapInstance
        In file order, named ``<file stem>-<1-based position>`` (``gap1-1`` … ``gap1-5``).

    Raises
    ------
    ValueError
        When the file is not whole numbers, is cut short or has numbers left over.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     file = Path(folder) / "tiny.txt"
    ...     _ = file.write_text("1\\n2 3\\n4 1 3\\n2 5 2\\n3 2 2\\n1 3 2\\n4 2\\n")
    ...     [instance] = read_orlib_gap(file)
    >>> instance.name, instance.agents, instance.jobs, instance.capacity.tolist()
    ('tiny-1', 2, 3, [4, 2])
    """
    path = Path(path)
    words = path.read_text().split()
    try:
        numbers = [int(word) for word in words]
    except ValueError as error:
        raise ValueError(f"{path}: not an OR-Library GAP file ({error})") from None

    position = 0

    def take(count: int) -> np.ndarray:
        nonlocal position
        if count < 0 or position + count > len(numbers):
            raise ValueError(f"{path}: ends after {len(numbers)} numbers, in the middle of an "
                             "instance")
        taken = np.array(numbers[position:position + count], dtype=np.int64)
        position += count
        return taken

    instances = []
    (count,) = take(1)
    for index in range(count):
        m, n = take(2)
        if m < 1 or n < 1:
            raise ValueError(f"{path}: instance {index} has {m} agents and {n} jobs")
        cost = take(m * n).reshape(m, n)
        weight = take(m * n).reshape(m, n)
        capacity = take(m)
        for array in (cost, weight, capacity):
            array.setflags(write=False)
        instances.append(GapInstance(name=f"{path.stem}-{index + 1}", index=index, cost=cost,
                                     weight=weight, capacity=capacity))
    if position != len(numbers):
        raise ValueError(f"{path}: {len(numbers) - position} numbers left after "
                         f"{count} instances")
    return instances
