"""The budget lab's model: the aggregate solved level by level, re-solved per question.

:func:`build_budget_model` aggregates a week (``aggregate``) and solves it once with the
scenario's budgets; :class:`BudgetModel` then re-solves it for new budgets, equity dials
(``equity``), demand and supply: red, orange, yellow, green, then least money, each level an
LP (``warm``) held at its optimum by fixing its optimal face. :class:`BudgetSolution` is one
answer. docs/model.md §2 has the mathematics.

Pure: DataFrames and arrays in, results out; no files, no database, no UI.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import highspy
import numpy as np
import pandas as pd

from wulian.optimizer.allocation import (
    TIER_LEVELS,
    AllocationInput,
    offer_table,
    prepare_needs,
    street_volunteer_hours,
    volunteer_pools,
)
from wulian.optimizer.budget.aggregate import (
    RED,
    AggregateColumns,
    AggregateLP,
    aggregate,
    aggregate_lp,
)
from wulian.optimizer.budget.equity import (
    EquityDial,
    StreetsAloneLP,
    dial_bounds,
    price_of_fairness,
)
from wulian.optimizer.budget.warm import LevelLP, StoredBasis, chain_basis, dial_basis
from wulian.optimizer.dual_bound import dual_bound
from wulian.optimizer.status import Status

DUAL_TOLERANCE = 1e-9  # a dual smaller than this is "does not matter at this level"
POINTS_PER_10K = 1e4 * 100  # fraction per yuan → percentage points per ¥10,000
# A level's bound (BudgetModel.level_bounds) holds each earlier colour at its reached value
# less this, relative to max(1, |value|). Any slack ≥ 0 keeps the bound a bound (it only
# loosens it); this one only keeps the rounding of a float sum from making the LP infeasible.
# lexmip's hold (10⁻⁷, capped by 0.1 × the smallest weight) is for holding a level while the
# next is searched; as a bound's slack it let an earlier colour's tolerance buy a later one
# (weights per unit differ by up to 10⁶ between a cash need and a visit): on a small
# scenario whose yellow is 0 with nothing left to give, its bound came out 2·10⁻⁶, not 0.
BOUND_SLACK = 1e-9
_INF = highspy.kHighsInf


@dataclass
class BudgetSolution:
    """One solve of the budget lab.

    Attributes
    ----------
    colours
        One row per colour: ``colour, needs, value`` (Σ urgency × served ÷ needed),
        ``max_value`` (every need served), ``fill_rate`` (mean served fraction).
    funds
        One row per fund: ``fund_id, budget, used, left, marginal_value`` (level value per
        yuan), ``marginal_level`` (the colour where it first matters, "" when nowhere),
        ``points_per_10k`` (that colour's fill rate, percentage points per ¥10,000).
    groups
        One row per street × service × colour: ``street_id, service_id, colour, needs,
        needed, served`` (units), ``filled`` (Σ served fractions), ``fill_rate, money``.
    streets
        One row per street with red needs: ``street_id, red_needs, fill_rate`` (red),
        ``floor`` (the lower bound the dial held it to, NaN when off), ``max_alone`` (its red
        fill rate with everything that may serve it; NaN when the dial is off), ``capped``
        (the dial's full requirement could not be held there) and ``reason``
        (``cannot_reach_alone``, ``shared_supply`` or "").
    money
        Yuan charged to funds.
    equity
        The dial this solution was solved with.
    price_of_fairness
        With the dial on: :func:`price_of_fairness` against the same budgets without it.
    status
        ``optimal``, or ``error`` with ``message``.
    seconds
        Wall time of the solve (every level, and the undialled solve when the dial is on).
    shortfall
        Floor dial: the largest shortfall below a street's floor the streets had to share
        (0 when every floor is met).
    message
        What went wrong, when ``status`` is ``error``.
    segment_filled, arc_flow
        The solution's columns: fully served needs per segment (φ) and units per group arc,
        in the model's order (``BudgetModel.agg``), for callers that aggregate differently.
    """

    colours: pd.DataFrame
    funds: pd.DataFrame
    groups: pd.DataFrame
    streets: pd.DataFrame
    money: float
    equity: EquityDial
    price_of_fairness: pd.DataFrame | None
    status: str
    seconds: float
    shortfall: float = 0.0
    message: str = ""
    segment_filled: np.ndarray | None = None
    arc_flow: np.ndarray | None = None

    def fill_rates(self) -> pd.Series:
        """Fill rate per colour, indexed by colour in priority order."""
        return self.colours.set_index("colour")["fill_rate"]

    def values(self) -> pd.Series:
        """Level value per colour (Σ urgency × served ÷ needed)."""
        return self.colours.set_index("colour")["value"]



class BudgetModel:
    """The aggregated allocation, built once, re-solved with new budgets and equity dials.

    Build it with :func:`build_budget_model`. :meth:`solve` changes only bounds of each
    level's LP (a :class:`LevelLP`, one HiGHS instance each) and starts each level from that
    level's optimal basis in the baseline solve made at build time: a slider's re-solve is a
    warm start of a few simplex iterations (none where the basis is still optimal), and equal
    inputs give equal answers whatever was solved before.
    """

    def __init__(self, agg: AggregateColumns, funds: pd.DataFrame, offers: pd.DataFrame,
                 pools: pd.DataFrame, lp: AggregateLP, sizes: dict, *, threads: int,
                 seed: int, time_limit: float):
        self.agg = agg
        self.lp = lp  # the aggregate as one LP, bounds as they stand (see AggregateLP)
        self.fund_ids = funds["fund_id"].to_numpy()
        self.offer_ids = offers["offer_id"].to_numpy()
        self.pool_ids = pools["pool_id"].to_numpy() if len(pools) else np.zeros(0, object)
        self.pool_hours_per_unit = (pools["hours_per_unit"].to_numpy(float) if len(pools)
                                    else np.zeros(0))
        # Street of each street_hours row and its hours (set by build_budget_model).
        self.hour_streets = np.zeros(0, object)
        self.street_hours = np.zeros(0)
        self._base_households = agg.group_households.copy()
        self._base_group_needs = np.bincount(agg.seg_group, weights=agg.seg_needs,
                                             minlength=len(agg.group_street))
        self.base_budgets = pd.Series(funds["budget"].to_numpy(float), index=self.fund_ids,
                                      name="budget")
        self.sizes = sizes
        self.build_seconds = 0.0
        self._time_limit = time_limit
        self._threads, self._seed = threads, seed
        # Each level's LP (a projection of the model, see LevelLP), by the colours whose
        # segments it keeps and whether the equity dial is on. The dial-off views are built and
        # solved by the baseline solve (whose bases start every later solve); the dial's on
        # demand.
        self._views: dict[tuple, LevelLP] = {}
        self._baseline_done = False
        self._alone: StreetsAloneLP | None = None
        self._prepare_reports()

    def _prepare_reports(self) -> None:
        """Everything the result tables need that does not change between solves."""
        agg = self.agg
        report = pd.DataFrame({"street_id": agg.group_street, "service_id": agg.group_service,
                               "colour": agg.group_tier})
        keys = report.groupby(["street_id", "service_id", "colour"], sort=True)
        self._report_of_group = keys.ngroup().to_numpy()
        self._report = keys.size().reset_index()[["street_id", "service_id", "colour"]]
        street_code = pd.Series(np.arange(len(agg.red_streets)), index=agg.red_streets)
        self._red_seg = np.flatnonzero(self.lp.seg_tier == 0)
        self._red_seg_street = street_code.reindex(
            agg.group_street[agg.seg_group[self._red_seg]]).to_numpy().astype(np.int64)
        self._count_reports()

    def _count_reports(self) -> None:
        """The needs counted into the result tables (again after :meth:`set_demand`)."""
        agg = self.agg
        n_rep = len(self._report)
        seg_report = self._report_of_group[agg.seg_group]
        self._report["needs"] = np.bincount(seg_report, weights=agg.seg_needs,
                                            minlength=n_rep).round().astype(np.int64)
        self._report["needed"] = np.bincount(self._report_of_group, weights=agg.group_needed,
                                             minlength=n_rep)
        self._tier_needs = np.bincount(self.lp.seg_tier, weights=agg.seg_needs,
                                       minlength=len(TIER_LEVELS))
        self._tier_max = np.bincount(self.lp.seg_tier, weights=agg.seg_needs * agg.seg_urgency,
                                     minlength=len(TIER_LEVELS))

    # -- demand and supply ------------------------------------------------------------------

    def set_demand(self, seg_needs: np.ndarray) -> None:
        """Put a new number of needs in each segment (fractional counts allowed: expected
        needs), for what-if demand such as the quarterly plan's weeks.

        Everything that counts needs follows: φ's bounds, each group's units, each offer arc's
        bound (Σ over its segments of needs × one need's bound, and at most the household cap
        × the group's households, which scale with the group's needs), the group × fund
        household-cap rows, the colour totals and the red fill-rate rows of the equity dial.
        The model's structure (groups, arcs, rows) stays; each solve still starts from the
        baseline's bases.

        Parameters
        ----------
        seg_needs
            Needs per segment, in ``agg`` order, each ≥ 0.

        Raises
        ------
        ValueError
            When the length is wrong or a count is negative or not finite.
        """
        agg, lp = self.agg, self.lp
        seg_needs = np.asarray(seg_needs, float)
        if seg_needs.shape != agg.seg_needs.shape or not np.all(np.isfinite(seg_needs)) \
                or (seg_needs < 0).any():
            raise ValueError("seg_needs: one finite count ≥ 0 per segment")
        n_groups = len(agg.group_street)
        group_needs = np.bincount(agg.seg_group, weights=seg_needs, minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(self._base_group_needs > 0, group_needs / self._base_group_needs,
                             0.0)
        old_households = agg.group_households
        agg.seg_needs = seg_needs.copy()
        agg.group_households = self._base_households * ratio
        agg.group_needed = np.bincount(agg.seg_group, weights=seg_needs * agg.seg_quantity,
                                       minlength=n_groups)
        upper = agg.arc_upper.copy()
        offer_arc = agg.arc_offer >= 0
        n_offer_arcs = int(offer_arc.sum())  # offer arcs come first, then pool arcs
        # aggregate() fills in what rescaling needs.
        assert agg.pair_arc is not None and agg.pair_segment is not None
        offer_upper = np.bincount(agg.pair_arc, weights=seg_needs[agg.pair_segment]
                                  * agg.pair_bound, minlength=n_offer_arcs)
        with np.errstate(invalid="ignore"):
            hh_cap = agg.arc_household_units * agg.group_households[agg.arc_group[:n_offer_arcs]]
        upper[:n_offer_arcs] = np.minimum(offer_upper, np.where(np.isnan(hh_cap), np.inf,
                                                                hh_cap))
        upper[n_offer_arcs:] = agg.group_needed[agg.arc_group[n_offer_arcs:]]
        agg.arc_upper = upper
        self.lp.col_hi[lp.seg] = seg_needs
        self.lp.col_hi[lp.arc] = upper
        # Group × fund household caps: cap × households, so they follow the households.
        try:
            gf = lp.family("group_fund")
        except KeyError:
            gf = None
        if gf is not None and gf.stop > gf.start:
            i = self.lp.family_index("group_fund")
            row, col = self.lp.rows.row[i], self.lp.rows.col[i]
            group_of_row = pd.Series(agg.arc_group[col - lp.arc.start]).groupby(row).first()
            old = old_households[group_of_row.to_numpy()]
            new = agg.group_households[group_of_row.to_numpy()]
            hi = self.lp.row_hi[group_of_row.index.to_numpy()]
            with np.errstate(invalid="ignore", divide="ignore"):
                scaled = np.where(old > 0, hi * new / old, 0.0)
            self.lp.row_hi[group_of_row.index.to_numpy()] = scaled
        # Red totals: the city and street red fill-rate rows' weights are 1 ÷ red needs.
        seg_tier = agg.group_tier[agg.seg_group]
        red = np.flatnonzero(seg_tier == RED)
        street_code = pd.Series(np.arange(len(agg.red_streets)), index=agg.red_streets)
        red_street = street_code.reindex(agg.group_street[agg.seg_group[red]]).to_numpy() \
            .astype(np.int64) if len(agg.red_streets) else np.zeros(0, np.int64)
        agg.red_street_needs = np.bincount(red_street, weights=seg_needs[red],
                                           minlength=len(agg.red_streets))
        n_red = seg_needs[red].sum()
        # A colour or street left without needs gets weight 0 (its φ are all 0 anyway).
        some = agg.red_street_needs > 1e-9
        per_street = np.divide(1.0, agg.red_street_needs, out=np.zeros(len(some)), where=some)
        city_weight = 1.0 / n_red if n_red > 1e-9 else 0.0
        # The red segments' coefficients in the city, floor and deviation rows: in the matrix
        # every view is cut from, and in the views already built (only the dial's hold them).
        row, col, val = self.lp.matrix
        seg_of_col = np.full(agg.n_cols, -1)
        seg_of_col[lp.seg.start + red] = np.arange(len(red))
        k = seg_of_col[col]
        city = lp.family("city_red")
        dial_rows = (row >= city.start) & (row < lp.family("deviation").stop) & (k >= 0)
        pos = np.flatnonzero(dial_rows)
        val[pos] = np.where(row[pos] == city.start, city_weight,
                            per_street[red_street[k[pos]]])
        for view in self._views.values():
            view.change_coefficients(pos, val[pos])
        self._count_reports()
        self._alone = None  # rebuilt from the new counts when a dial asks for it

    def set_supply(self, capacity: Mapping[str, float] | None = None,
                   street_hours: Mapping[str, float] | None = None,
                   pools: Mapping[str, float] | None = None) -> None:
        """Put new offer capacities (offer_id → units), volunteer hours per street
        (street_id → hours across its pools) and per pool (pool_id → hours, turned into the
        whole units of the service its ``pool`` row counts) in place of the scenario's; ids not
        named keep theirs. The budgets stay an argument of :meth:`solve`.

        Raises
        ------
        KeyError
            When an id is not one of the model's offers or volunteer streets.
        ValueError
            When a value is negative.
        """
        for ids, values, family in ((self.offer_ids, capacity, "offer"),
                                    (self.hour_streets, street_hours, "street_hours"),
                                    (self.pool_ids, pools, "pool")):
            if not values:
                continue
            index = pd.Series(np.arange(len(ids)), index=ids)
            given = pd.Series(values, dtype=float)
            unknown = sorted(set(given.index) - set(index.index))
            if unknown:
                raise KeyError(f"unknown {family} id(s): {', '.join(map(str, unknown[:5]))}")
            if (given < 0).any():
                raise ValueError(f"{family}: values must be ≥ 0")
            at = index[given.index].to_numpy()
            value = given.to_numpy()
            if family == "pool":  # the pool row counts whole units of the service
                value = np.floor(value / self.pool_hours_per_unit[at] + 1e-9)
            self.lp.row_hi[self.lp.family(family).start + at] = value

    def row_bounds(self, family: str) -> np.ndarray:
        """The upper bounds of a family of rows (``offer``, ``pool``, ``street_hours`` …) as
        they stand (budgets excepted: those are an argument of :meth:`solve`)."""
        return self.lp.row_hi[self.lp.family(family)].copy()

    def row_activity(self, family: str, solution: BudgetSolution) -> np.ndarray:
        """What ``solution`` uses of each row of a family (its left-hand side), in the
        family's order: compare it with :meth:`row_bounds` to see which rows bind."""
        lp = self.lp
        rows = self.lp.family(family)
        i = self.lp.family_index(family)
        x = np.zeros(self.agg.n_cols)
        x[lp.seg] = solution.segment_filled
        x[lp.arc] = solution.arc_flow
        row, col, val = self.lp.rows.row[i], self.lp.rows.col[i], self.lp.rows.val[i]
        return np.bincount(row - rows.start, weights=val * x[col],
                           minlength=rows.stop - rows.start)

    # -- budgets ---------------------------------------------------------------------------

    def budgets(self, budgets: Mapping[str, float] | None = None) -> pd.Series:
        """The scenario's budgets with ``budgets`` (fund_id → yuan) put over them.

        Raises
        ------
        KeyError
            When ``budgets`` names a fund the scenario does not have.
        ValueError
            When a budget is negative or not a number.
        """
        out = self.base_budgets.copy()
        if budgets:
            unknown = sorted(set(budgets) - set(out.index))
            if unknown:
                raise KeyError(f"unknown fund(s): {', '.join(map(str, unknown))}")
            given = pd.Series(budgets, dtype=float)
            if not (given >= 0).all():
                raise ValueError("budgets must be numbers ≥ 0")
            out[given.index] = given.to_numpy()
        return out

    # -- solving ---------------------------------------------------------------------------

    def solve(self, budgets: Mapping[str, float] | None = None,
              equity: EquityDial | None = None) -> BudgetSolution:
        """Solve for ``budgets`` (fund_id → yuan; funds not named keep the scenario's budget)
        with the equity dial ``equity`` (off when ``None``).

        Returns
        -------
        BudgetSolution
            With the dial on, ``price_of_fairness`` compares it with the same budgets without
            the dial (solved too, so a dialled solve takes about twice as long, plus one LP
            that gives every street's ``max_alone`` at once).
        """
        start = time.perf_counter()
        equity = equity or EquityDial()
        b = self.budgets(budgets)
        try:
            free = self._solve_levels(b, None, None)
            if not equity.active:
                free.seconds = time.perf_counter() - start
                return free
            if self._alone is None:
                self._alone = StreetsAloneLP(self.agg, self.lp, self.base_budgets,
                                                 threads=self._threads, seed=self._seed)
            max_alone = self._alone.solve(b)
            fair = self._solve_levels(b, equity, (max_alone, free))
            fair.price_of_fairness = price_of_fairness(fair, free)
            fair.seconds = time.perf_counter() - start
            return fair
        except RuntimeError as exc:
            return _error_solution(self, b, equity, str(exc), time.perf_counter() - start)

    # -- the levels --------------------------------------------------------------------------

    def _view(self, level: str, dial: bool) -> LevelLP:
        """The LP ``level`` is solved in (see :class:`LevelLP`): it keeps the arcs and the
        segments of the level's own colour (money and the dial's shortfall: none), and with the
        dial on the red segments and the dial's rows too."""
        colours = frozenset(() if level in ("money", "equity") else (level,)) | \
            (frozenset((RED,)) if dial else frozenset())
        view = self._views.get((colours, dial))
        if view is None:
            view = self._views[(colours, dial)] = LevelLP(
                self.lp, colours, dial, threads=self._threads, seed=self._seed)
        return view

    def _run(self, view: LevelLP, level: str, before: tuple[LevelLP, StoredBasis] | None) -> None:
        """Solve ``view`` as it stands for ``level`` with HiGHS, from the level's start basis:
        the baseline's optimum of the level (the dial's views: one made from those); in the
        baseline itself, from the optimum of the level ``before`` it."""
        h = view.highs
        key = RED if level == "equity" else level  # the dial's shortfall starts from red's
        start = view.basis.get(key)
        if start is None and view.dial:
            start = view.basis[key] = self._dial_start(view, key)
        if start is None and before is not None:
            start = chain_basis(self.agg, self.lp, *before, view)
        if view.factored:
            view.factored = False  # stored_answer set the start basis (see there)
        elif start is not None:
            # Forget the solver's state (factorisation, edge weights, the random stream of
            # its perturbations): the run depends on the model and the start basis alone.
            h.clearSolver()
            h.setBasis(start)
        if self._time_limit > 0:
            h.setOptionValue("time_limit", h.getRunTime() + self._time_limit)
        view.held = None
        h.run()
        status = h.getModelStatus()
        # A view with no columns (a week without needs) is "empty": its optimum is all zero.
        if status not in (highspy.HighsModelStatus.kOptimal,
                          highspy.HighsModelStatus.kModelEmpty):
            raise RuntimeError(f"level {level}: HiGHS returned {h.modelStatusToString(status)}")

    def _dial_start(self, view: LevelLP, level: str) -> highspy.HighsBasis:
        """The start basis of ``level`` in a dial view (:func:`dial_basis`), from the
        baseline's dial-off views."""
        source = self._views[(frozenset(() if level == "money" else (level,)), False)]
        red = self._views[(frozenset((RED,)), False)] if level != RED else source
        return dial_basis(self.agg, self.lp, source, red, view, level)

    def _fix_optimal_face(self, view: LevelLP, col_dual: np.ndarray, col_value: np.ndarray,
                          row_dual: np.ndarray, row_value: np.ndarray, col_lo: np.ndarray,
                          col_hi: np.ndarray, row_lo: np.ndarray, row_hi: np.ndarray) -> None:
        """Hold the level just solved at its optimum by restricting the model to its optimal
        face. Every optimal solution satisfies complementary slackness with the optimal duals
        in hand: each column of non-zero reduced cost sits at its bound and each row of
        non-zero dual at its bound, in *every* optimal solution. Fixing those (instead of a
        dense "value ≥ optimum − tolerance" row) is exact, keeps the model sparse and lets no
        later level buy anything with an earlier level's value, not even a tolerance's worth.

        The bounds are the whole model's (``view`` solved a projection of it). A row of the
        view that stands for a group whose segments it left out, at its lower bound
        (Σ arcs = Σ q × the segments' lower bounds), holds every one of those segments at
        its lower bound, and likewise at the upper: that is the same face in the whole model.
        """
        cols = np.flatnonzero(np.abs(col_dual) > DUAL_TOLERANCE)
        full = view.cols[cols]
        x = col_value[cols]
        lo, hi = col_lo[full], col_hi[full]
        col_lo[full] = col_hi[full] = np.where(np.abs(x - lo) <= np.abs(x - hi), lo, hi)
        rows = np.flatnonzero(np.abs(row_dual) > DUAL_TOLERANCE)
        r = row_value[rows]
        lo, hi = view.now["row_lo"][rows], view.now["row_hi"][rows]
        lower_side = ~np.isfinite(hi) | (np.isfinite(lo) & (np.abs(r - lo) <= np.abs(r - hi)))
        full = view.rows[rows]
        row_lo[full] = row_hi[full] = np.where(lower_side, row_lo[full], row_hi[full])
        if len(view.coll_col) and len(rows):
            side = np.zeros(len(view.rows), np.int8)
            side[rows] = np.where(lower_side, 1, 2)
            s = side[view.coll_row]
            sel = s > 0
            j, a = view.coll_col[sel], view.coll_val[sel]
            # At the row's lower bound each left-out column makes a·x as large as it can.
            take_hi = (a > 0) == (s[sel] == 1)
            col_lo[j] = col_hi[j] = np.where(take_hi, col_hi[j], col_lo[j])

    def _solve_levels(self, budgets: pd.Series, equity: EquityDial | None,
                      context: tuple[np.ndarray, BudgetSolution] | None) -> BudgetSolution:
        """Equity (when the floor dial is on), red, orange, yellow, green, then money, each
        on the optimal face of the levels before it; fund duals at every colour level."""
        t0 = time.perf_counter()
        agg = self.agg
        col_lo, col_hi = self.lp.col_lo.copy(), self.lp.col_hi.copy()
        row_lo, row_hi = self.lp.row_lo.copy(), self.lp.row_hi.copy()
        row_hi[self.lp.fund_rows] = budgets.to_numpy(float)
        target = dial_bounds(self.agg, self.lp, equity, context, col_hi, row_lo, row_hi)
        dial = equity is not None and equity.active
        baseline = not self._baseline_done

        levels = list(TIER_LEVELS) + ["money"]
        if equity is not None and equity.floor is not None and len(agg.red_streets):
            levels.insert(0, "equity")
        values: dict[str, float] = {}
        n_funds = len(self.fund_ids)
        points, marginal = np.zeros(n_funds), np.zeros(n_funds)
        level_of = np.full(n_funds, "", dtype=object)
        # Each segment's φ where its own colour was solved, and whether it was basic there:
        # where later levels leave it out, its value is rebuilt from these (see _assemble).
        own = np.zeros(agg.n_segments)
        own_basic = np.zeros(agg.n_segments, bool)
        before = None
        ran = False
        for level in levels:
            view = self._view(level, dial)
            maximise = level not in ("money", "equity")
            view.load(col_lo, col_hi, row_lo, row_hi, self.lp.objectives[level],
                      maximise=maximise)
            # Once a level has needed HiGHS, the later levels' faces have moved with it, and
            # on the city their stored bases never passed the check after that: it is not
            # tried. (Only the time depends on this: from a stored basis that is still
            # optimal HiGHS makes no pivot and gives the same answer.)
            answer = None if baseline or ran else view.stored_answer(level, maximise)
            if answer is None:
                self._run(view, level, before)
                ran = True
                h = view.highs
                if h.getModelStatus() == highspy.HighsModelStatus.kModelEmpty:
                    # No columns (a week without needs): zero, every row's slack basic.
                    n_rows = len(view.now["row_lo"])
                    col_value, row_dual = np.zeros(len(view.now["col_lo"])), np.zeros(n_rows)
                    basic = -1 - np.arange(n_rows)
                else:
                    sol = h.getSolution()
                    col_value = np.asarray(sol.col_value, float)
                    row_dual = np.asarray(sol.row_dual, float)
                    # highspy's stubs lack getBasicVariables, which it has at runtime.
                    basic = np.asarray(h.getBasicVariables()[1])  # type: ignore[attr-defined]
                # Row activities and reduced costs from the columns and the row duals
                # (A x, c − Aᵀ y): cheaper than converting HiGHS' lists of them.
                row_value, col_dual = view.activity(col_value), view.reduced_costs(row_dual)
                values[level] = float(h.getInfo().objective_function_value
                                      if len(col_value) else 0.0)
                if baseline:
                    before = (view, view.store(level, col_value, row_value, col_dual, row_dual,
                                               basic, maximise))
            else:
                col_value, row_value, col_dual, row_dual, basic = answer
                # (an elementwise sum: a BLAS dot product left its threads spinning)
                values[level] = float((view.now["cost"] * col_value).sum())
            if level == "money":
                break
            if level in TIER_LEVELS:
                t = TIER_LEVELS.index(level)
                mine = view.own[t]
                own[view.seg[mine]] = col_value[mine]
                basic_cols = basic[basic >= 0]
                own_basic[view.seg[basic_cols[view.tier[basic_cols] == t]]] = True
                dual = np.abs(row_dual[view.fund_rows])
                new = (level_of == "") & (dual > DUAL_TOLERANCE)
                if new.any():
                    marginal[new] = dual[new]
                    level_of[new] = level
                    points[new] = self._fill_sensitivity(view, t, basic, np.flatnonzero(new))
            self._fix_optimal_face(view, col_dual, col_value, row_dual, row_value, col_lo,
                                   col_hi, row_lo, row_hi)
        x = self._assemble(view, col_value, row_value, own, own_basic, col_lo, col_hi, row_lo)
        self.last_x = x
        self._baseline_done = True
        result = self._solution(x, budgets, values, marginal, level_of, points,
                                equity or EquityDial(), target, context)
        result.seconds = time.perf_counter() - t0
        return result

    def _assemble(self, view: LevelLP, col_value: np.ndarray, row_value: np.ndarray,
                  own: np.ndarray, own_basic: np.ndarray, col_lo: np.ndarray,
                  col_hi: np.ndarray, row_lo: np.ndarray) -> np.ndarray:
        """The whole model's columns from the last level's answer (``view``): what it holds
        as it is; each segment it left out from its group's row, which says how many units
        (Σ arcs) the group's left-out segments take. Those start at their φ where their own
        colour was solved (within the bounds the later levels left them); what the units
        differ by moves through the segments still free — by then all of one group's free
        segments weigh the same per unit in their colour (a non-zero reduced cost fixed the
        others), so where they go changes no level's value. The others move first — to fill
        as many needs as the units allow, those of least quantity gain first and those of
        most lose first — and the one basic at its colour's level last: it keeps what that
        level gave it, so a budget's small change still moves it as the basis says (the fill
        rate's points per ¥10,000 are read from that basis). With one free segment in a
        group (no tie) the answer is the only one."""
        lp = self.lp
        x = np.zeros(self.agg.n_cols)
        x[view.cols] = col_value
        if not len(view.coll_col):
            return x
        j, k, a = view.coll_col, view.coll_row, view.coll_val
        seg = j - lp.seg.start
        lo, hi = col_lo[j], col_hi[j]
        xj = np.clip(own[seg], lo, hi)
        # Each row with left-out columns is an equality: they must make up what the rest
        # does not.
        rest = row_lo[view.rows] - row_value
        residual = rest - np.bincount(k, weights=a * xj, minlength=len(view.rows))
        r = residual[k]
        move = np.flatnonzero(r != 0)
        if len(move):
            km, am, rm, xm = k[move], a[move], r[move], xj[move]
            span = np.stack([am * (hi[move] - xm), am * (lo[move] - xm)])
            cap = np.where(rm > 0, span.max(axis=0), -span.min(axis=0))  # room, ≥ 0
            key = np.where(rm > 0, np.abs(am), -np.abs(am))
            order = np.lexsort((j[move], key, own_basic[seg[move]], km))
            cap_o, k_o, r_o = cap[order], km[order], rm[order]
            before = np.cumsum(cap_o) - cap_o
            first = np.r_[True, k_o[1:] != k_o[:-1]]
            before -= before[np.flatnonzero(first)][np.cumsum(first) - 1]
            units = np.clip(np.abs(r_o) - before, 0.0, cap_o)
            moved = xm.copy()
            moved[order] += np.sign(r_o) * units / am[order]
            xj[move] = np.clip(moved, lo[move], hi[move])
        x[j] = xj
        return x

    def _fill_sensitivity(self, view: LevelLP, t: int, basic: np.ndarray,
                          funds: np.ndarray) -> np.ndarray:
        """Fill-rate points per ¥10,000 of colour ``t`` for one more yuan in each of
        ``funds``, from the level's optimal basis ``B``: one more yuan in fund ``f`` moves the
        basic columns by ``B⁻¹ e_f``, so the colour's filled needs move by ``1_Pᵀ B⁻¹ e_f``
        (``P``: the basic segments of the colour) — one transposed solve ``B⁻ᵀ 1_P`` for all
        funds. (``basic``: the view's basic variables, columns ≥ 0, rows as −1 − row.)"""
        pos = np.flatnonzero(basic >= 0)
        pos = pos[view.tier[basic[pos]] == t]
        indicator = np.zeros(len(basic))
        indicator[pos] = 1.0
        # highspy's stubs lack getBasisTransposeSolve, which it has at runtime.
        per_row = np.asarray(view.highs.getBasisTransposeSolve(  # type: ignore[attr-defined]
            indicator)[1], np.float64)
        return per_row[view.fund_rows[funds]] / self._tier_needs[t] * POINTS_PER_10K

    def use_by_street(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """What the last solve gave each street centre's needs: units of each offer
        (``street_id, offer_id, units``) and yuan of each fund (``street_id, fund_id, yuan``)."""
        agg, lp = self.agg, self.lp
        y = np.clip(self.last_x[lp.arc], 0.0, agg.arc_upper)
        street = agg.group_street[agg.arc_group]
        o = (agg.arc_offer >= 0) & (y > 0)
        offers = pd.DataFrame({"street_id": street[o], "offer_id": self.offer_ids[agg.arc_offer[o]],
                               "units": y[o]})
        f = (agg.arc_fund >= 0) & (y > 0)
        funds = pd.DataFrame({"street_id": street[f], "fund_id": self.fund_ids[agg.arc_fund[f]],
                              "yuan": (y * agg.arc_charge)[f]})
        # With as_index=False the sums are frames (the keys as columns); pandas-stubs types
        # them as Series.
        return (cast(pd.DataFrame,
                     offers.groupby(["street_id", "offer_id"], as_index=False)["units"].sum()),
                cast(pd.DataFrame,
                     funds.groupby(["street_id", "fund_id"], as_index=False)["yuan"].sum()))

    # -- bounds for an answer of the exact model ---------------------------------------------

    def red_duals(self) -> tuple[pd.Series, pd.Series]:
        """The red level's row duals at the baseline's optimum (≥ 0, a shadow price per unit
        of the aggregate): (offer_id → per unit of capacity as the offer counts it, fund_id
        → per yuan). Zero for rows that did not bind. Call after :meth:`solve`, before
        :meth:`release_solvers`."""
        view = self._views[(frozenset((RED,)), False)]
        y = np.zeros(self.lp.rows.count)
        y[view.rows] = np.asarray(view.highs.getSolution().row_dual, float)[:len(view.rows)]
        y = np.maximum(y, 0.0)  # a ≤ row of a maximisation: HiGHS' dual is its shadow price
        offer = self.lp.family("offer")
        return (pd.Series(y[offer.start:offer.stop], index=self.offer_ids),
                pd.Series(y[self.lp.fund_rows], index=self.fund_ids))

    def _prices(self, view: LevelLP, h: highspy.Highs, held: tuple, maximise: bool) -> tuple:
        """(offer prices, fund prices, colour → price of its value row) from the duals of a
        bound LP in ``view`` with the value rows of ``held`` added last. HiGHS' dual of a
        binding ``≤`` row is ≥ 0 in a maximisation and ≤ 0 in a minimisation, of a binding
        ``≥`` row the opposite; prices are clipped at 0 (any prices ≥ 0 give a valid bound)."""
        y = np.asarray(h.getSolution().row_dual, float)
        n = len(view.rows)
        on_lp = np.zeros(self.lp.rows.count)
        on_lp[view.rows] = y[:n]
        sign = 1.0 if maximise else -1.0
        offer = self.lp.family("offer")
        return (pd.Series(np.maximum(sign * on_lp[offer.start:offer.stop], 0.0),
                          index=self.offer_ids),
                pd.Series(np.maximum(sign * on_lp[self.lp.fund_rows], 0.0), index=self.fund_ids),
                {colour: max(-sign * float(y[n + j]), 0.0) for j, colour in enumerate(held)})

    def release_solvers(self) -> None:
        """Drop the HiGHS instances the levels and the dial are solved in (on the city about
        half a GiB), keeping the aggregate and its LP's arrays: :meth:`level_bounds` builds
        its own LPs from those. After this only :meth:`level_bounds` may be called."""
        self._views = {}
        self._alone = None

    def level_bounds(self, reached: Mapping[str, float],
                     budgets: Mapping[str, float] | None = None, *,
                     time_limit: float | None = None,
                     report: dict[str, str] | None = None,
                     prices: dict[str, tuple] | None = None) -> dict[str, float]:
        """Bounds on the exact model's orange, yellow, green and money levels, given the
        values ``reached`` (colour → Σ urgency × served ÷ needed) that an answer of the exact
        model reached at the colour levels before each: ``optimizer.lexmip``'s certification
        (an LP relaxation holding every earlier level at its achieved value), on the
        aggregate.

        The bound of a colour level is the optimum of the aggregate LP for that colour with
        every earlier colour held by a value row at ``reached − slack`` (``BOUND_SLACK`` ×
        max(1, |value|)); money's is the least money with every colour held. Every answer of
        the exact model is a solution of the aggregate with the same colour values and the
        same money (each row the aggregate relaxes is implied by the exact model's rows, see
        docs/model.md §2), so no exact answer that keeps the earlier colours at
        ``reached`` does better than these: a colour's bound is an upper bound, money's a
        lower bound. The slack only loosens them. Unlike :meth:`solve`, an earlier colour is
        held by a value row, not by its optimal face: ``reached`` is in general below the
        aggregate's optimum, whose face would cut off answers the exact model has.

        The four are solved in one LP, one after the other: orange from nothing (with
        presolve), then each next level from the basis the one before left, with the colour
        just bounded added as a value row and the level's objective put in (HiGHS' dual
        simplex, warm). Each LP is then the one above: the aggregate with every colour
        before the level held by a value row (the later colours' segments are in it as
        columns of no cost, which changes no optimum), so each bound is what solving it
        alone gives. On the city the chain took 22 s of CPU where four LPs solved alone,
        each from nothing, took 61 s (docs/benchmarks.md, session 10): the basis of one
        level is a few thousand pivots from the next one's optimum.

        Parameters
        ----------
        reached
            The value reached at each of red, orange and yellow (and green for money).
        budgets
            fund_id → yuan, as in :meth:`solve`: give what the exact model had (its budgets
            less what other runs used, to the cent), else the bounds hold for the scenario's
            budgets.
        time_limit
            Seconds each level's LP may run (None: the model's ``time_limit``; 0: none).
        report
            If given, filled with level → how its bound was found: ``optimal`` (the LP
            solved), ``time_limit`` (the LP stopped at its limit: the bound is read from the
            duals it had then, valid but looser), ``trivial`` (stopped with no duals: every
            need of the colour served, or no money spent) or HiGHS' status where there is
            none.
        prices
            If given, filled with level → (offer prices, fund prices, colour → price of its
            held value row) from each LP's duals, for ``optimizer.priced`` (≥ 0 each, in the
            aggregate's units: per unit of capacity as the offer counts it, per yuan).

        Returns
        -------
        dict
            ``orange``, ``yellow``, ``green``, ``money`` → bound; NaN where the LP gives none:
            infeasible (the earlier values are more than the aggregate can reach, which for a
            true relaxation never happens) or stopped with no dual values.

        The bound is not the objective HiGHS reports but the weak-duality bound of the row
        duals it returns (``optimizer.dual_bound``): valid for any duals, equal to the LP's
        optimum at an optimal dual up to HiGHS' dual tolerance, and still valid when the LP
        stops at its time limit (the city's LPs take tens of seconds each).
        """
        agg = self.agg
        row_hi = self.lp.row_hi.copy()
        row_hi[self.lp.fund_rows] = self.budgets(budgets).to_numpy(float)
        levels = (*TIER_LEVELS[1:], "money")
        limit = self._time_limit if time_limit is None else time_limit
        # One view keeping every colour's segments, so each level goes on from the last.
        view = LevelLP(self.lp, frozenset(TIER_LEVELS), dial=False, threads=self._threads,
                       seed=self._seed)
        h = view.highs
        # A LevelLP is set up for warm re-solves (no presolve, devex). The first level is
        # solved from nothing, where presolve and HiGHS' default pricing are faster; the
        # later ones from the basis before it, where presolve would throw that basis away.
        h.setOptionValue("presolve", "on")
        h.setOptionValue("simplex_dual_edge_weight_strategy", -1)
        found: dict[str, tuple[float, str]] = {}
        for k, level in enumerate(levels, start=1):
            maximise = level != "money"
            view.load(self.lp.col_lo, self.lp.col_hi, self.lp.row_lo, row_hi,
                      self.lp.objectives[level], maximise=maximise)
            colour = TIER_LEVELS[k - 1]  # held from this level on (red first)
            cols = view.own[k - 1]
            value = float(reached[colour])
            slack = BOUND_SLACK * max(1.0, abs(value))
            h.addRow(value - slack, _INF, len(cols), cols.astype(np.int32),
                     agg.seg_urgency[view.seg[cols]])
            if limit > 0:  # HiGHS counts its limit from the instance's first run
                h.setOptionValue("time_limit", h.getRunTime() + float(limit))
            h.run()
            h.setOptionValue("presolve", "off")
            status = h.getModelStatus()
            if prices is not None and h.getSolution().dual_valid:
                prices[level] = self._prices(view, h, TIER_LEVELS[:k], maximise)
            if status == highspy.HighsModelStatus.kModelEmpty:  # a week without needs
                found[level] = 0.0, "optimal"
            elif status == highspy.HighsModelStatus.kOptimal:
                found[level] = dual_bound(h, maximise=maximise), "optimal"
            elif status == highspy.HighsModelStatus.kTimeLimit:
                bound = dual_bound(h, maximise=maximise)
                # Stopped with no duals (inside presolve, or before the dual simplex had
                # any): the bound every LP of the aggregate has, every need of the colour
                # served (money: none spent). Valid, and said.
                found[level] = ((bound, "time_limit") if np.isfinite(bound) else
                                ((float(self._tier_max[k]) if maximise else 0.0), "trivial"))
            else:  # infeasible, …: and so is every level after, which holds this one's rows
                found[level] = float("nan"), h.modelStatusToString(status)
        if report is not None:
            report.update({level: found[level][1] for level in levels})
        return {level: found[level][0] for level in levels}

    # -- results ---------------------------------------------------------------------------

    def _solution(self, x: np.ndarray, budgets: pd.Series, values: dict, marginal: np.ndarray,
                  level_of: np.ndarray, points: np.ndarray, equity: EquityDial,
                  target: np.ndarray, context) -> BudgetSolution:
        agg, lp = self.agg, self.lp
        phi = np.clip(x[lp.seg], 0.0, agg.seg_needs)
        y = np.clip(x[lp.arc], 0.0, agg.arc_upper)
        n_rep = len(self._report)
        seg_report = self._report_of_group[agg.seg_group]
        arc_report = self._report_of_group[agg.arc_group]
        groups = self._report.copy()
        groups["served"] = np.bincount(arc_report, weights=y, minlength=n_rep)
        groups["filled"] = np.bincount(seg_report, weights=phi, minlength=n_rep)
        groups["fill_rate"] = groups["filled"] / groups["needs"]
        groups["money"] = np.bincount(arc_report, weights=y * agg.arc_charge, minlength=n_rep)

        filled = np.bincount(self.lp.seg_tier, weights=phi, minlength=len(TIER_LEVELS))
        with np.errstate(invalid="ignore", divide="ignore"):
            fill = np.where(self._tier_needs > 0, filled / self._tier_needs, np.nan)
        colours = pd.DataFrame({
            "colour": list(TIER_LEVELS), "needs": self._tier_needs.round().astype(np.int64),
            "value": [values[t] for t in TIER_LEVELS], "max_value": self._tier_max,
            "fill_rate": fill,
        })

        charged = agg.arc_fund >= 0
        used = np.bincount(agg.arc_fund[charged], weights=(y * agg.arc_charge)[charged],
                           minlength=len(self.fund_ids))
        b = budgets.to_numpy(float)
        funds = pd.DataFrame({
            "fund_id": self.fund_ids, "budget": b, "used": used, "left": b - used,
            "marginal_value": marginal, "marginal_level": level_of, "points_per_10k": points,
        })

        n_r = len(agg.red_streets)
        filled_r = np.bincount(self._red_seg_street, weights=phi[self._red_seg], minlength=n_r)
        fill_r = filled_r / np.maximum(agg.red_street_needs, 1.0)
        max_alone = context[0] if context is not None else np.full(n_r, np.nan)
        floor = np.full(n_r, np.nan)
        reason = np.full(n_r, "", dtype=object)
        short = float(max(x[lp.short], 0.0))
        slack = 1e-7
        if equity.floor is not None:
            floor = target - short
            reason[(target < equity.floor - slack) & ~np.isnan(target)] = "cannot_reach_alone"
            reason[(reason == "") & (fill_r < equity.floor - slack)] = "shared_supply"
        elif equity.deviation is not None:
            floor = np.maximum(fill[0] - equity.deviation - target, 0.0)
            reason[target > slack] = "cannot_reach_alone"
        streets = pd.DataFrame({
            "street_id": agg.red_streets, "red_needs": agg.red_street_needs.astype(np.int64),
            "fill_rate": fill_r, "floor": floor, "max_alone": max_alone,
            "capped": reason != "", "reason": reason,
        })
        return BudgetSolution(colours=colours, funds=funds, groups=groups, streets=streets,
                              money=float(used.sum()), equity=equity, price_of_fairness=None,
                              status=str(Status.OPTIMAL), seconds=0.0, shortfall=short,
                              segment_filled=phi, arc_flow=y)


def _error_solution(model: BudgetModel, budgets: pd.Series, equity: EquityDial, message: str,
                    seconds: float) -> BudgetSolution:
    colours = pd.DataFrame({"colour": list(TIER_LEVELS), "needs": 0, "value": np.nan,
                            "max_value": np.nan, "fill_rate": np.nan})
    funds = pd.DataFrame({"fund_id": model.fund_ids, "budget": budgets.to_numpy(float),
                          "used": np.nan, "left": np.nan, "marginal_value": np.nan,
                          "marginal_level": "", "points_per_10k": np.nan})
    return BudgetSolution(colours=colours, funds=funds, groups=pd.DataFrame(),
                          streets=pd.DataFrame(), money=float("nan"), equity=equity,
                          price_of_fairness=None, status=str(Status.ERROR), seconds=seconds,
                          message=message)


def build_budget_model(data: AllocationInput, *, threads: int = 1, seed: int = 0,
                       time_limit: float = 0.0) -> BudgetModel:
    """Aggregate ``data`` (docs/model.md §2) and build the LP once.

    Parameters
    ----------
    data
        The allocation's input (``planning.allocate.allocation_input``); pins are ignored.
    threads, seed, time_limit
        HiGHS options (``time_limit`` per level in seconds, 0 for none).

    Returns
    -------
    BudgetModel
        Already solved once with the scenario's budgets: that basis starts every later solve.
    """
    t0 = time.perf_counter()
    needs = prepare_needs(data)
    offers = offer_table(data)
    funds = data.funds.reset_index(drop=True)
    pools = volunteer_pools(data)
    agg, sizes = aggregate(data, needs, offers, funds, pools)
    lp = aggregate_lp(data, agg, offers, funds, pools)
    sizes["rows"] = lp.rows.count
    sizes["columns"] = agg.n_cols
    model = BudgetModel(agg, funds, offers, pools, lp, sizes, threads=threads, seed=seed,
                        time_limit=time_limit)
    if agg.arc_pool.max(initial=-1) >= 0:
        model.hour_streets, model.street_hours = street_volunteer_hours(data)
    model._solve_levels(model.base_budgets, None, None)  # noqa: SLF001 - its module builds it
    model.build_seconds = time.perf_counter() - t0
    return model

