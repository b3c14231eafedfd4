"""The budget lab: the aggregated model against the exact allocation, its duals against finite
differences, sweeps, the equity dial, price of fairness, determinism, comparisons and plots;
re-solves against a model built afresh, against the whole model solved from scratch and
against HiGHS runs from the stored bases."""

from __future__ import annotations

import functools
from pathlib import Path

import highspy
import numpy as np
import pandas as pd
import pytest
from scenario_factory import random_scenario

from wulian.optimizer import allocation as exact
from wulian.optimizer import budget as budget_module
from wulian.optimizer.budget import EquityDial
from wulian.optimizer.budget.warm import LevelLP
from wulian.optimizer.lexmip import solve_lexicographic
from wulian.planning.allocate import allocation_input, run_allocation
from wulian.planning.budget import BudgetLab, plot_curve
from wulian.planning.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parent.parent
CLEAN = Path(__file__).parent / "data" / "clean"
COLOURS = ("red", "orange", "yellow", "green")
SEEDS = tuple(range(12))
# Seeds of random_scenario(seed, needs=15, households=30) in which every group holds one need
# and no household has two arcs under one per-household cap: nothing is aggregated away.
UNAGGREGATED_SEEDS = (125, 151, 213)
# Scenarios where some fund's budget binds (a non-zero dual at some colour level).
BINDING = ("clean", "demo", "seed4", "seed5")
TOL = 1e-6


@functools.cache
def scenario(name: str) -> Scenario:
    if name == "clean":
        return load_scenario(CLEAN)
    if name == "demo":
        return load_scenario(ROOT / "data" / "demo")
    if name.startswith("small"):
        return Scenario.from_tables(random_scenario(int(name[5:]), needs=15, households=30))
    return Scenario.from_tables(random_scenario(int(name[4:])))


@functools.cache
def lab(name: str) -> BudgetLab:
    return BudgetLab.from_scenario(scenario(name))


def lexicographic_compare(a: dict, b: dict, tol: float = TOL) -> int:
    """+1 when ``a`` is lexicographically better than ``b`` by colour, -1 worse, 0 equal."""
    for colour in COLOURS:
        scale = max(1.0, abs(a[colour]), abs(b[colour]))
        if a[colour] > b[colour] + tol * scale:
            return 1
        if a[colour] < b[colour] - tol * scale:
            return -1
    return 0


def exact_lp_values(s: Scenario) -> tuple[dict[str, float], bool]:
    """The exact weekly model's LP relaxation (colour levels only), and whether any
    per-household cap row there spans two arcs (which the aggregate relaxes)."""
    data = allocation_input(s)
    needs = exact.prepare_needs(data)
    offers = exact.offer_table(data)
    funds = data.funds.reset_index(drop=True)
    pools = exact.volunteer_pools(data)
    model, _ = exact.build_arcs(data, needs, offers, pools)
    rows = exact.build_rows(needs, offers, funds, pools, model, data)
    shared = False
    for (family, _, count), row in zip(rows.names, rows.row, strict=True):
        if family in ("offer_household", "fund_household") and count:
            shared |= bool((np.bincount(row - row.min()) > 1).any())
    levels = [lv for lv in exact.build_levels(needs, model) if lv.name in COLOURS]
    q = needs["base_quantity"].to_numpy(float)
    n = len(model.need) + len(needs)
    result = solve_lexicographic(np.concatenate([model.lower, np.zeros(len(needs))]),
                                 np.concatenate([model.upper, q]), np.zeros(n, bool), rows,
                                 levels)
    return {lv.name: lv.value for lv in result.levels}, shared


def street_red_fill(groups: pd.DataFrame) -> pd.Series:
    """Each street's red fill rate recomputed from the result table (Σ filled ÷ Σ needs)."""
    red = groups[groups["colour"] == "red"].groupby("street_id")[["filled", "needs"]].sum()
    return red["filled"] / red["needs"]


# ----------------------------------------------------------------------------- vs the exact model


@pytest.mark.parametrize("name", ["clean", *(f"seed{k}" for k in SEEDS)])
def test_aggregate_is_a_relaxation_of_the_exact_allocation(name):
    """The aggregate's colour values are ≥ the exact weekly allocation's, lexicographically
    (so red is ≥ outright; a later colour is lower only where an earlier one is higher)."""
    run = run_allocation(scenario(name))
    exact_values = {c: run.info["levels"][c]["value"] for c in COLOURS}
    values = lab(name).solve().values().to_dict()
    assert values["red"] >= exact_values["red"] - TOL * max(1.0, exact_values["red"])
    assert lexicographic_compare(values, exact_values) >= 0


def test_equal_to_the_exact_allocation_when_nothing_is_aggregated():
    """On the clean scenario every group holds one need with its own arcs and no household
    cap is shared: the aggregate's colour values equal the exact allocation's."""
    model = lab("clean").model
    assert model.sizes["groups"] == model.sizes["needs"]
    assert model.sizes["arcs"] == model.sizes["exact_arcs"]
    run = run_allocation(scenario("clean"))
    values = lab("clean").solve().values()
    for colour in COLOURS:
        assert values[colour] == pytest.approx(run.info["levels"][colour]["value"], abs=TOL)


@pytest.mark.parametrize("seed", UNAGGREGATED_SEEDS)
def test_equal_to_the_exact_lp_relaxation_when_nothing_is_aggregated(seed):
    """With one need per group and no shared household caps, the aggregate is the exact
    model's LP relaxation: equal colour values, level by level."""
    name = f"small{seed}"
    model = lab(name).model
    assert model.sizes["groups"] == model.sizes["needs"]
    lp, shared = exact_lp_values(scenario(name))
    assert not shared
    values = lab(name).solve().values()
    for colour in COLOURS:
        assert values[colour] == pytest.approx(lp[colour], abs=TOL)


# ----------------------------------------------------------------------------- marginal values


@pytest.mark.parametrize("name", BINDING)
def test_dual_predicts_the_change_of_coverage(name):
    """Moving a fund's budget by ±1 yuan changes its marginal colour's value by the budget
    row's dual and that colour's fill rate by the reported points per ¥10,000."""
    the_lab = lab(name)
    base = the_lab.solve()
    marginal = base.funds[base.funds["marginal_level"] != ""]
    assert len(marginal)
    for fund in marginal.itertuples(index=False):
        for delta in (1.0, -1.0):
            moved = the_lab.solve({fund.fund_id: fund.budget + delta})
            level = fund.marginal_level
            change = moved.values()[level] - base.values()[level]
            assert change == pytest.approx(fund.marginal_value * delta, rel=1e-6, abs=1e-9)
            points = (moved.fill_rates()[level] - base.fill_rates()[level]) * 100
            assert points == pytest.approx(fund.points_per_10k * delta / 1e4, rel=1e-6,
                                           abs=1e-9)


def test_a_fund_with_room_left_has_no_marginal_value():
    """A fund that does not spend its whole budget reports no marginal value."""
    funds = lab("demo").solve().funds
    slack = funds[funds["left"] > 1.0]
    assert len(slack)
    assert (slack["marginal_value"] == 0).all()
    assert (slack["marginal_level"] == "").all()


# ----------------------------------------------------------------------------- sweeps


@pytest.mark.parametrize("name", ["clean", "demo", "seed2", "seed8", "seed12"])
def test_sweep_red_fill_rate_is_monotone_in_budget(name):
    """Red fill rate (and red value) never fall as one fund's budget, or all funds together,
    grow."""
    the_lab = lab(name)
    curves = [the_lab.sweep(0.0, 2.0, 9)]
    for fund, budget in the_lab.base_budgets.items():
        curves.append(the_lab.sweep(0.0, 2 * budget, 9, fund))
    for curve in curves:
        red = curve[curve["colour"] == "red"].sort_values("budget")
        assert (np.diff(red["fill_rate"].to_numpy()) >= -1e-9).all()
        assert (np.diff(red["value"].to_numpy()) >= -1e-9).all()


def test_sweep_is_tidy():
    """A sweep has one row per step and colour, with the budget it was solved at."""
    the_lab = lab("demo")
    b = the_lab.base_budgets["F002"]
    curve = the_lab.sweep(0.5 * b, 1.5 * b, 5, "F002")
    assert len(curve) == 5 * len(COLOURS)
    assert list(curve["colour"].iloc[:4]) == list(COLOURS)
    assert np.allclose(curve["budget"].unique(), np.linspace(0.5 * b, 1.5 * b, 5))
    assert (curve["money_used"] <= curve["budget"] + 1e-6).all()
    assert set(curve["fund"]) == {"F002"}


# ----------------------------------------------------------------------------- equity dial


@pytest.mark.parametrize("name", ["demo", "seed3", "seed10"])
@pytest.mark.parametrize("floor", [0.5, 0.9, 1.0])
def test_equity_floor_is_honoured(name, floor):
    """Every street's red fill rate, recomputed from the result table, reaches the floor or,
    where the floor is out of reach alone, the street's own maximum (less the one shortfall
    the streets share when their floors cannot all be met together)."""
    for scale in (1.0, 0.4):
        the_lab = lab(name)
        sol = the_lab.solve({"scale": scale}, {"floor": floor})
        assert sol.status == "optimal"
        streets = sol.streets.set_index("street_id")
        assert len(streets)
        fill = street_red_fill(sol.groups).reindex(streets.index)
        assert np.allclose(fill, streets["fill_rate"])
        target = np.minimum(floor, streets["max_alone"])
        assert (fill >= target - sol.shortfall - 1e-7).all()
        unreachable = streets["max_alone"] < floor - 1e-7
        assert (streets.loc[unreachable, "reason"] == "cannot_reach_alone").all()
        if sol.shortfall <= 1e-9:
            assert (fill >= target - 1e-7).all()


@pytest.mark.parametrize("name", ["demo", "seed3"])
def test_equity_deviation_is_honoured(name):
    """Every street's red fill rate lies within the bound of the city-wide red fill rate
    (below it by more only where the street cannot keep up alone)."""
    deviation = 0.02
    sol = lab(name).solve(equity={"deviation": deviation})
    streets = sol.streets.set_index("street_id")
    fill = street_red_fill(sol.groups).reindex(streets.index)
    city = sol.fill_rates()["red"]
    assert (fill <= city + deviation + 1e-7).all()
    ok = streets["reason"] == ""
    assert (fill[ok] >= city - deviation - 1e-7).all()


@pytest.mark.parametrize("name", ["demo", "seed3", "seed10"])
@pytest.mark.parametrize("dial", [EquityDial(floor=0.95), EquityDial(floor=1.0),
                                  EquityDial(deviation=0.0), EquityDial(deviation=0.05)])
def test_price_of_fairness_is_not_negative(name, dial):
    """The dial never buys red coverage and costs something or nothing, lexicographically:
    the first colour whose value it changes loses."""
    sol = lab(name).solve({"scale": 0.6}, dial)
    pof = sol.price_of_fairness
    value = pof[pof["measure"] == "value"].set_index("level")["price"]
    assert value["red"] >= -TOL
    changed = value[value.abs() > TOL * 100]
    assert changed.empty or changed.iloc[0] > 0


# ----------------------------------------------------------------------------- determinism


def test_same_budgets_give_identical_results():
    """Re-solving the same budgets, after other budgets and dials, gives identical tables."""
    the_lab = lab("demo")
    first = the_lab.solve({"F002": 200_000.0})
    the_lab.solve({"scale": 0.7})
    the_lab.solve(equity={"floor": 0.9})
    again = the_lab.solve({"F002": 200_000.0})
    for table in ("colours", "funds", "groups", "streets"):
        pd.testing.assert_frame_equal(getattr(first, table), getattr(again, table),
                                      check_exact=True)
    dialled = the_lab.solve(equity={"floor": 0.9})
    pd.testing.assert_frame_equal(dialled.streets,
                                  the_lab.solve(equity={"floor": 0.9}).streets, check_exact=True)


def test_solution_respects_budgets_and_needs():
    """No fund spends beyond its budget and no group is served beyond what it needs."""
    the_lab = lab("demo")
    sol = the_lab.solve({"scale": 0.5})
    assert (sol.funds["used"] <= sol.funds["budget"] + 1e-6).all()
    assert (sol.groups["filled"] <= sol.groups["needs"] + 1e-9).all()
    assert (sol.groups["served"] <= sol.groups["needed"] + 1e-6).all()
    assert sol.money == pytest.approx(sol.funds["used"].sum())


def test_bad_budgets_and_dials_are_refused():
    """An unknown fund, a negative budget or a dial out of range is refused with the reason."""
    the_lab = lab("clean")
    with pytest.raises(KeyError, match="F99"):
        the_lab.solve({"F99": 10.0})
    with pytest.raises(ValueError, match="≥ 0"):
        the_lab.solve({"F01": -1.0})
    with pytest.raises(ValueError, match="not both"):
        EquityDial(floor=0.5, deviation=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        the_lab.solve(equity={"floor": 1.5})


# ----------------------------------------------------------------------------- comparisons


def test_compare_returns_one_row_per_named_scenario():
    """compare gives one row per named scenario, in order, with fill rates, money per fund
    and the price of fairness (0 without a dial)."""
    the_lab = lab("demo")
    b = the_lab.base_budgets
    table = the_lab.compare({
        "baseline": {},
        "+20% F001": {"F001": 1.2 * b["F001"]},
        "all −10%": {"scale": 0.9},
        "red floor 95%": {"equity": {"floor": 0.95}},
    })
    assert list(table.index) == ["baseline", "+20% F001", "all −10%", "red floor 95%"]
    assert {f"fill_{c}" for c in COLOURS} <= set(table.columns)
    assert {f"money_{f}" for f in b.index} <= set(table.columns)
    base = the_lab.solve()
    assert table.loc["baseline", "money_total"] == pytest.approx(base.money)
    assert table.loc["baseline", "fill_red"] == pytest.approx(base.fill_rates()["red"])
    assert table.loc["baseline", "pof_red"] == 0.0
    assert table.loc["red floor 95%", "pof_red"] >= -TOL
    assert table.loc["+20% F001", "money_F001"] <= 1.2 * b["F001"] + 1e-6


# ----------------------------------------------------------------------------- plots


def test_plot_curve_writes_a_png(tmp_path):
    """plot_curve writes a PNG of a sweep (without any warning, e.g. a missing glyph)."""
    the_lab = lab("clean")
    curve = the_lab.sweep(0.0, 2 * the_lab.base_budgets["F01"], 5, "F01")
    path = plot_curve(curve, tmp_path / "curves" / "f01.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    all_funds = plot_curve(the_lab.sweep(0.5, 1.5, 3), tmp_path / "all.png")
    assert all_funds.stat().st_size > 1000


# ----------------------------------------------------------------------------- re-solves


def whole_model_levels(model, budgets: pd.Series) -> dict[str, float]:
    """The lexicographic values on the whole aggregate LP in one HiGHS instance, solved from
    scratch — a reference for the lab's own way (each level in its own smaller LP, answers
    from stored bases where they stay optimal, the segments rebuilt afterwards). Each level
    is held by fixing its optimal face (value rows with a tolerance lose exactness: 10⁻⁶ of
    red's value bought 0.2 of orange on the demo)."""
    lp = model.lp
    row, col, val = lp.matrix
    n, m = model.agg.n_cols, lp.rows.count
    col_lo, col_hi = lp.col_lo.copy(), lp.col_hi.copy()
    lo, hi = lp.row_lo.copy(), lp.row_hi.copy()
    hi[lp.fund_rows] = budgets.reindex(model.fund_ids).to_numpy(float)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    inf = highspy.kHighsInf
    h.addCols(n, np.zeros(n), col_lo, col_hi, 0, np.zeros(n, np.int32),
              np.zeros(0, np.int32), np.zeros(0))
    starts = np.searchsorted(row, np.arange(m)).astype(np.int32)
    h.addRows(m, np.where(np.isfinite(lo), lo, -inf), np.where(np.isfinite(hi), hi, inf),
              len(col), starts, col.astype(np.int32), val)
    values = {}
    for level in (*COLOURS, "money"):
        h.changeColsCost(n, np.arange(n, dtype=np.int32), lp.objectives[level])
        h.changeObjectiveSense(highspy.ObjSense.kMinimize if level == "money"
                               else highspy.ObjSense.kMaximize)
        h.run()
        assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        values[level] = h.getInfo().objective_function_value
        sol = h.getSolution()
        x, d = np.array(sol.col_value), np.array(sol.col_dual)
        r, y = np.array(sol.row_value), np.array(sol.row_dual)
        fix = np.flatnonzero(np.abs(d) > 1e-9)
        at = np.where(np.abs(x[fix] - col_lo[fix]) <= np.abs(x[fix] - col_hi[fix]),
                      col_lo[fix], col_hi[fix])
        col_lo[fix] = col_hi[fix] = at
        fix = np.flatnonzero(np.abs(y) > 1e-9)
        lower = ~np.isfinite(hi[fix]) | (np.isfinite(lo[fix]) &
                                         (np.abs(r[fix] - lo[fix]) <= np.abs(r[fix] - hi[fix])))
        lo[fix] = hi[fix] = np.where(lower, lo[fix], hi[fix])
        h.changeColsBounds(n, np.arange(n, dtype=np.int32), col_lo, col_hi)
        h.changeRowsBounds(m, np.arange(m, dtype=np.int32),
                           np.where(np.isfinite(lo), lo, -inf),
                           np.where(np.isfinite(hi), hi, inf))
    return values


RESOLVE = ("demo", "seed1", "seed4", "seed5", "seed9", "small20", "small26", "small28")


def budget_sequence(the_lab: BudgetLab) -> list[dict]:
    """Budgets a fund manager might try in a row: each fund alone down and up, all scaled."""
    base = the_lab.base_budgets
    seq: list[dict] = [{"scale": 0.4}]
    for k, (fund, budget) in enumerate(base.items()):
        seq.append({fund: budget * (0.5 if k % 2 else 1.6)})
        seq.append({fund: budget * 0.8})
    return [*seq, {}, {"scale": 1.3}, {"scale": 0.4}]


@pytest.mark.parametrize("name", RESOLVE)
def test_values_equal_the_whole_model_solved_from_scratch(name):
    """Each colour's value and the money equal those of the whole aggregate LP solved level by
    level from scratch, for every budget of a sequence (re-solved on one model)."""
    the_lab = lab(name)
    for spec in budget_sequence(the_lab)[:7]:
        sol = the_lab.solve(spec)
        ref = whole_model_levels(the_lab.model, sol.funds.set_index("fund_id")["budget"])
        for colour in COLOURS:
            assert sol.values()[colour] == pytest.approx(ref[colour], rel=1e-8, abs=1e-8)
        assert sol.money == pytest.approx(ref["money"], rel=1e-8, abs=1e-6)


@pytest.mark.parametrize("name", RESOLVE)
def test_resolve_after_other_budgets_equals_a_fresh_model(name):
    """Solving budgets after a run of other budgets gives exactly what a model built afresh
    gives for them first: values, money, marginal values, points per ¥10,000, every table."""
    the_lab = lab(name)
    for spec in budget_sequence(the_lab):
        again = the_lab.solve(spec)
        fresh = BudgetLab.from_scenario(scenario(name)).solve(spec)
        for table in ("colours", "funds", "groups", "streets"):
            pd.testing.assert_frame_equal(getattr(again, table), getattr(fresh, table),
                                          check_exact=True)
        assert again.money == fresh.money


@pytest.mark.parametrize("name", RESOLVE)
def test_stored_bases_answer_as_highs_would(name, monkeypatch):
    """Where a level's stored basis is still optimal the lab answers from it without running
    HiGHS: the same answer, to rounding, as running HiGHS from that basis every time."""
    the_lab = lab(name)
    specs = budget_sequence(the_lab)
    shortcut = [the_lab.solve(spec) for spec in specs]
    used = []
    original = LevelLP.stored_answer

    def counting(self, level, maximise):
        answer = original(self, level, maximise)
        used.append(answer is not None)
        return None

    monkeypatch.setattr(LevelLP, "stored_answer", counting)
    for spec, short in zip(specs, shortcut, strict=True):
        run = the_lab.solve(spec)
        for colour in COLOURS:
            assert short.values()[colour] == pytest.approx(run.values()[colour], rel=1e-9,
                                                           abs=1e-9)
        assert short.money == pytest.approx(run.money, rel=1e-9, abs=1e-6)
        pd.testing.assert_frame_equal(short.funds, run.funds, check_exact=False, rtol=1e-7,
                                      atol=1e-9)
        pd.testing.assert_frame_equal(short.groups, run.groups, check_exact=False, rtol=1e-7,
                                      atol=1e-7)
    assert any(used), "no level was answered from its stored basis: the test tests nothing"


@pytest.mark.parametrize("name", ["demo", "seed3", "seed10"])
def test_dial_after_new_demand_does_not_depend_on_order(name):
    """The dial's own LPs (built when a dial is first asked for) answer the same whether they
    were built before or after the demand changed."""
    before = BudgetLab.from_scenario(scenario(name))
    before.solve(equity={"floor": 0.9})  # the dial's LPs built with the scenario's demand
    after = BudgetLab.from_scenario(scenario(name))
    needs = before.model.agg.seg_needs * np.linspace(0.5, 1.5, before.model.sizes["segments"])
    for the_lab in (before, after):
        the_lab.model.set_demand(needs)
    for dial in ({"floor": 0.9}, {"deviation": 0.05}):
        a = before.solve({"scale": 0.7}, dial)
        b = after.solve({"scale": 0.7}, dial)
        assert a.status == b.status == "optimal"
        for colour in COLOURS:
            assert a.values()[colour] == pytest.approx(b.values()[colour], rel=1e-9, abs=1e-9)
        pd.testing.assert_frame_equal(a.streets, b.streets, check_exact=False, rtol=1e-7,
                                      atol=1e-7)


def test_assembled_solution_satisfies_every_row():
    """The solution's columns (segments and arcs, rebuilt from each level's LP) satisfy every
    row of the whole model with the budgets solved for, and give the values reported."""
    the_lab = lab("demo")
    model = the_lab.model
    agg, lp = model.agg, model.lp
    row, col, val = lp.matrix
    dial_rows = np.zeros(lp.rows.count, bool)
    for family in ("city_red", "floor", "deviation"):
        dial_rows[lp.family(family)] = True
    for spec in budget_sequence(the_lab)[:8]:
        sol = the_lab.solve(spec)
        x = np.zeros(agg.n_cols)
        x[lp.seg], x[lp.arc] = sol.segment_filled, sol.arc_flow
        activity = np.bincount(row, weights=val * x[col], minlength=lp.rows.count)
        lo, hi = lp.row_lo.copy(), lp.row_hi.copy()
        hi[lp.fund_rows] = sol.funds["budget"].to_numpy()
        ok = (activity >= lo - 1e-6 * np.maximum(1, np.abs(lo))) & \
            (activity <= hi + 1e-6 * np.maximum(1, np.abs(hi)))
        assert (ok | dial_rows).all()
        tier = agg.group_tier[agg.seg_group]
        for colour in COLOURS:
            value = (agg.seg_urgency * sol.segment_filled)[tier == colour].sum()
            assert value == pytest.approx(sol.values()[colour], rel=1e-9, abs=1e-9)


def test_a_week_without_needs_gives_zero_coverage_not_an_error():
    """A week nobody needs anything in: every level is zero and every fund keeps its budget
    (HiGHS calls a model without columns "empty", which is not a failure)."""
    data = allocation_input(load_scenario(ROOT / "data" / "demo"), week="2031-W01")
    assert data.needs.empty
    model = budget_module.build_budget_model(data)
    fund = model.base_budgets.index[0]
    sol = model.solve({fund: 2 * model.base_budgets[fund] + 1})
    assert sol.status == "optimal", sol.message
    assert (sol.colours["value"] == 0).all() and (sol.colours["needs"] == 0).all()
