"""Budget lab (预算实验室): the weekly allocation aggregated small enough for a slider.

The weekly model (docs/model.md §1) with its needs grouped, solved as a lexicographic LP with
HiGHS, then re-solved for new budgets, equity dials, demand and supply from stored bases.
docs/model.md §2 has the mathematics. The modules:

- ``aggregate``: needs grouped by street × service × colour × admissible offers, segments,
  group arcs, and the LP's rows and level objectives;
- ``levels``: :class:`BudgetModel` (:func:`build_budget_model`), the levels solved in order,
  :class:`BudgetSolution`;
- ``equity``: :class:`EquityDial`, each street's reach alone, :func:`price_of_fairness`;
- ``warm``: each level's LP, its stored optimal bases and the start bases made from them.

Pure: DataFrames and arrays in, results out; no files, no database, no UI.
"""

from wulian.optimizer.budget.aggregate import AggregateColumns, AggregateLP
from wulian.optimizer.budget.equity import EquityDial, price_of_fairness
from wulian.optimizer.budget.levels import (
    POINTS_PER_10K,
    BudgetModel,
    BudgetSolution,
    build_budget_model,
)

__all__ = ["EquityDial", "BudgetSolution", "BudgetModel", "build_budget_model",
           "price_of_fairness", "POINTS_PER_10K", "AggregateColumns", "AggregateLP"]
