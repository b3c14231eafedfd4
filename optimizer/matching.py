"""The generalised assignment problem (GAP), solved exactly with OR-Tools CP-SAT.

``m`` agents with capacities, ``n`` jobs: assigning job ``j`` to agent ``i`` costs
``cost[i, j]`` and uses ``weight[i, j]`` of agent ``i``'s capacity; every job goes to exactly one
agent. This is the generic core under the allocation's matching steps, and it is proven on the
public OR-Library instances (``tests/test_gap_benchmarks.py``, ``python -m bench.gap``).

CP-SAT works on integers only, so the data must be whole numbers (OR-Library's are); scaling a
fractional model to integers is the caller's decision, never done silently here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ortools.sat.python import cp_model

from optimizer.status import Status

# CP-SAT reports objective values and bounds as doubles: integers beyond 2**53 would no longer
# be exact, and an objective that is silently rounded can no longer be checked against a bound.
_LARGEST_EXACT = 2**53

# CP-SAT only says FEASIBLE or UNKNOWN, not why it stopped; a wall time this close to the limit
# means the clock stopped it (it checks the limit between steps, so it may stop a hair early).
_HIT_LIMIT = 0.99


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
        The best bound CP-SAT proved: no assignment beats it (a lower bound when minimising, an
        upper bound when maximising). Equals ``objective`` when proven optimal or infeasible;
        the trivial ``-inf`` (minimising) or ``+inf`` (maximising) on ``error``.
    gap
        ``|objective - bound| / max(1, |objective|)``; ``0`` when optimal, ``inf`` with no
        solution.
    status
        ``optimal``, ``feasible``, ``infeasible``, ``time_limit`` (a solution or none, stopped by
        the clock) or ``error``.
    seconds
        Wall time of the whole call, building the model included.
    """

    assignment: np.ndarray
    objective: float
    bound: float
    gap: float
    status: Status
    seconds: float


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
    capacity row per agent, solved by CP-SAT.

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
        Seconds CP-SAT may search (``max_time_in_seconds``).
    seed
        CP-SAT's ``random_seed``.
    workers
        CP-SAT's ``num_workers`` (parallel search threads).

    Returns
    -------
    GapResult
        The assignment, its objective, CP-SAT's proven bound, the relative gap, the status and
        the wall time.

    Raises
    ------
    ValueError
        On non-integer, NaN, infinite or negative data (weights, capacities), shapes that do not
        match, or a non-positive time limit or worker count.

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
    if not (time_limit > 0 and math.isfinite(time_limit)):
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
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

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit)
    solver.parameters.random_seed = int(seed)
    solver.parameters.num_workers = int(workers)
    cp_status = solver.solve(model)
    hit_limit = solver.wall_time >= _HIT_LIMIT * time_limit

    if cp_status == cp_model.INFEASIBLE:
        worst = -math.inf if maximize else math.inf
        return _no_solution(n, maximize, Status.INFEASIBLE, worst, start)
    if cp_status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        # UNKNOWN: stopped (by the clock, as a rule) before any solution; MODEL_INVALID: a bug
        # here, since the data were checked.
        stopped = cp_status == cp_model.UNKNOWN and hit_limit
        # Without a proof of anything, the only honest bound is the trivial one.
        bound = solver.best_objective_bound if stopped else (math.inf if maximize else -math.inf)
        return _no_solution(n, maximize, Status.TIME_LIMIT if stopped else Status.ERROR,
                            float(bound), start)

    chosen = solver.boolean_values(pd.Series(x)).to_numpy(dtype=bool)
    assignment = np.full(n, -1, dtype=np.int64)
    assignment[job_of_pair[chosen]] = agent_of_pair[chosen]
    assignment.setflags(write=False)
    # The objective is recomputed from the data in exact integers, never taken from the solver's
    # double, so what is reported is what the assignment costs.
    objective = float(cost[assignment, np.arange(n)].sum()) if n else 0.0

    if cp_status == cp_model.OPTIMAL:
        status, bound = Status.OPTIMAL, objective
    else:
        status = Status.TIME_LIMIT if hit_limit else Status.FEASIBLE
        bound = float(solver.best_objective_bound)
    gap = abs(objective - bound) / max(1.0, abs(objective))
    return GapResult(assignment=assignment, objective=objective, bound=bound, gap=gap,
                     status=status, seconds=time.perf_counter() - start)


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
