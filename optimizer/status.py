"""The project's one status vocabulary for solver outcomes (DESIGN §2)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Outcome of a solve, whatever the solver: every result carries one of these."""

    OPTIMAL = "optimal"  # proven optimal (bound equals value within tolerance)
    FEASIBLE = "feasible"  # a solution, with a bound, not proven optimal
    INFEASIBLE = "infeasible"
    TIME_LIMIT = "time_limit"  # stopped by the time limit; value and bound are reported
    ERROR = "error"
