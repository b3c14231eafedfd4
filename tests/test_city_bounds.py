"""Bounds of a street-by-street (or district-by-district) run: the aggregate LP holding each
earlier colour at the value reached bounds every later level of the exact model.

``BudgetModel.level_bounds`` claims the aggregate is a relaxation level by level: whatever an
answer of the exact model reached at the colours before a level, no such answer does better
at that level than the aggregate LP with those colours held. Checked here from both sides:
the decomposed answer (feasible for the exact model) never beats its own bounds, and the
whole-model exact answer never beats the bounds held at its own earlier values.
"""

from __future__ import annotations

import functools
import math

import highspy
import numpy as np
import pandas as pd
import pytest
from scenario_factory import random_scenario, shared_funds_scenario

from reference import allocation as reference
from wulian.optimizer.allocation import LEVELS, TIER_LEVELS, AllocationParams
from wulian.optimizer.budget import build_budget_model
from wulian.optimizer.decompose import BOUND_SECONDS, allocate_by_district, bounded_level
from wulian.optimizer.dual_bound import dual_bound
from wulian.optimizer.lexmip import LevelResult
from wulian.optimizer.priced import part_red_bound, priced_total
from wulian.planning.allocate import allocation_input, run_allocation
from wulian.planning.scenario import Scenario

SEEDS = tuple(range(60))
MULTI_DISTRICT = tuple(s for s in SEEDS
                       if random_scenario(s)["centres"]["level"].eq("district").sum() > 1)
BOUNDED = (*TIER_LEVELS[1:], "money")  # the levels level_bounds bounds
REF_SCALE = 0.5  # shared_funds_scenario's scale for the reference's held levels
TOL = 1e-6  # relative to max(1, |value|): lexmip's "optimal" tolerance


def _within(value: float, bound: float, sense: str) -> bool:
    """Does ``value`` keep to ``bound`` (≤ for a maximised level, ≥ for money)?"""
    tol = TOL * max(1.0, abs(value))
    return value <= bound + tol if sense == "max" else value >= bound - tol


@functools.cache
def scenario(seed: int) -> Scenario:
    return Scenario.from_tables(random_scenario(seed))


@functools.cache
def decomposed(seed: int, by: str):
    return run_allocation(scenario(seed), params=AllocationParams(
        decompose="always", workers=1, decompose_by=by))


@functools.cache
def lab(seed: int):
    return build_budget_model(allocation_input(scenario(seed)))


def test_enough_multi_district_scenarios():
    """The relaxation is checked on many multi-district scenarios, not a handful."""
    assert len(MULTI_DISTRICT) >= 20


@pytest.mark.parametrize("by", ["street", "district"])
@pytest.mark.parametrize("seed", MULTI_DISTRICT)
def test_decomposed_levels_lie_within_their_bounds(seed, by):
    """Every level from red to money has a bound, the decomposed answer never beats it, the
    status is optimal exactly when value and bound meet, and travel and continuity stay
    uncertified."""
    run = decomposed(seed, by)
    info = run.info["decomposition"]
    assert "bound_problems" not in info, info.get("bound_problems")
    assert info["bounds"].startswith("aggregate LP")
    for name in LEVELS:
        lv = run.info["levels"][name]
        if name in ("travel", "continuity"):
            assert math.isnan(lv["bound"]) and lv["status"] == "feasible"
            continue
        assert np.isfinite(lv["bound"]), (seed, by, name)
        assert _within(lv["value"], lv["bound"], lv["sense"]), (seed, by, name, lv)
        close = abs(lv["bound"] - lv["value"]) <= TOL * max(1.0, abs(lv["value"]))
        assert lv["status"] == ("optimal" if close else "feasible"), (seed, by, name, lv)


@pytest.mark.parametrize("seed", SEEDS)
def test_exact_answer_lies_within_bounds_held_at_its_own_values(seed):
    """The whole model solved exactly (not decomposed): each later level's value is within
    the aggregate's bound computed with that run's own earlier colour values."""
    run = run_allocation(scenario(seed), params=AllocationParams(decompose="never"))
    levels = run.info["levels"]
    reached = {name: levels[name]["value"] for name in TIER_LEVELS}
    bounds = lab(seed).level_bounds(reached)
    assert set(bounds) == set(BOUNDED)
    for name in BOUNDED:
        assert np.isfinite(bounds[name]), (seed, name)
        assert _within(levels[name]["value"], bounds[name], levels[name]["sense"]), \
            (seed, name, levels[name]["value"], bounds[name])


@pytest.mark.parametrize("seed", MULTI_DISTRICT[:8])
def test_bounds_at_the_aggregate_optimum_are_its_lexicographic_values(seed):
    """Held at the aggregate's own lexicographic optimum, the value-row LPs reach what the lab
    reached by fixing optimal faces: two ways of holding a level agree, so the rows hold what
    they should."""
    model = lab(seed)
    base = model.solve()
    values = base.values()
    bounds = model.level_bounds({t: float(values[t]) for t in TIER_LEVELS})
    for name in TIER_LEVELS[1:]:
        assert bounds[name] == pytest.approx(float(values[name]), rel=TOL, abs=TOL), name
    assert bounds["money"] == pytest.approx(base.money, rel=TOL, abs=TOL)


def test_an_earlier_value_beyond_the_aggregate_gives_no_bound():
    """Red held above the aggregate's red optimum leaves the later LPs infeasible: no bound
    (nan) rather than a number."""
    seed = MULTI_DISTRICT[0]
    model = lab(seed)
    values = model.solve().values()
    reached = {t: float(values[t]) for t in TIER_LEVELS}
    reached["red"] += 1.0
    bounds = model.level_bounds(reached)
    assert all(math.isnan(bounds[name]) for name in BOUNDED), bounds


def test_lower_earlier_values_loosen_the_bounds():
    """Giving up red can only raise what orange may reach (never lower it)."""
    seeds = [s for s in MULTI_DISTRICT if lab(s).solve().values()["red"] > 0.5][:5]
    assert seeds
    loosened = False
    for seed in seeds:
        model = lab(seed)
        values = model.solve().values()
        reached = {t: float(values[t]) for t in TIER_LEVELS}
        tight = model.level_bounds(reached)["orange"]
        reached["red"] -= 0.5
        loose = model.level_bounds(reached)["orange"]
        assert loose >= tight - TOL * max(1.0, tight), seed
        loosened |= loose > tight + TOL * max(1.0, tight)
    assert loosened  # some scenario's orange gains from red given up


@functools.cache
def street_by_street(seed: int, bound_seconds: float):
    """A shared-funds scenario (two districts, a city fund and district funds that the
    streets share; half the midsize tests' size, where SCIP proves the reference's held
    levels in well under a second) allocated street by street, as the city is."""
    data = allocation_input(Scenario.from_tables(shared_funds_scenario(seed, REF_SCALE)))
    return allocate_by_district(data, AllocationParams(workers=1, decompose_by="street"),
                                bound_seconds=bound_seconds)


@pytest.mark.parametrize("bound_seconds", [BOUND_SECONDS, 1e-6])
@pytest.mark.parametrize("seed", range(5))
def test_every_level_bound_holds_against_the_reference(seed, bound_seconds):
    """Decomposed the way the city is, every level from red to money has a finite bound, on
    the right side of its value, and on the right side of the independent formulation's
    exact optimum of that level over every plan that keeps the earlier colours at the values
    the run reached (``reference.allocation.best_given``, SCIP) — the bound's claim. Red's
    and orange's bounds also bound the lexicographic optimum itself (red reached is never
    more than red's optimum). At a time limit of a microsecond the LPs stop at once and the
    bounds come from what they had (duals, or every need served): looser, still valid."""
    result, info = street_by_street(seed, bound_seconds)
    levels = {lv.name: lv for lv in result.levels}
    assert set(info["bound_methods"]) == set(BOUNDED)
    if bound_seconds == BOUND_SECONDS:
        assert all(how.startswith("optimal") for how in info["bound_methods"].values()), \
            info["bound_methods"]
    ref = reference.build(Scenario.from_tables(shared_funds_scenario(seed, REF_SCALE)))
    lexicographic, _ = reference.solve(ref, upto="orange", solver="scip")
    for k, name in enumerate((*TIER_LEVELS, "money")):
        lv = levels[name]
        assert np.isfinite(lv.bound), (seed, name)
        assert _within(lv.value, lv.bound, lv.sense), (seed, name, lv)
        held = {colour: levels[colour].value for colour in TIER_LEVELS[:k]}
        best = reference.best_given(ref, name, held, time_limit=120.0)
        assert _within(best, lv.bound, lv.sense), (seed, name, best, lv.bound)
        if name in ("red", "orange"):
            assert _within(lexicographic[name], lv.bound, lv.sense), (seed, name)
    # The priced bound (the exact parts, shared supply priced) is what red's bound is made
    # of wherever it is tighter than the aggregate's: it must hold by itself.
    assert np.isfinite(info["priced_red_bound"])
    assert _within(lexicographic["red"], info["priced_red_bound"], "max"), seed
    assert levels["red"].bound == min(info["priced_red_bound"], info["aggregate_red_bound"])


@pytest.mark.parametrize("seed", range(5))
def test_every_bound_relaxes_the_exact_lp_held_at_the_run_values(seed):
    """Where a level's room comes from (issue 14, session 9). Every bound of a decomposed
    run relaxes the exact model's LP — the aggregate relaxes its per-household caps, the
    priced bound the rows coupling the parts — so it lies on the far side of the independent
    formulation's LP optimum of the level with the earlier colours held at the values the run
    reached, and that LP on the far side of the run's value: value ≤ held LP ≤ bound (≥ for
    money). What lies between value and held LP is the plan's (and integrality's); what lies
    between held LP and bound, the relaxation's."""
    result, _ = street_by_street(seed, BOUND_SECONDS)
    levels = {lv.name: lv for lv in result.levels}
    ref = reference.build(Scenario.from_tables(shared_funds_scenario(seed, REF_SCALE)))
    for k, name in enumerate((*TIER_LEVELS, "money")):
        lv = levels[name]
        held = {colour: levels[colour].value for colour in TIER_LEVELS[:k]}
        relaxed = reference.best_given(ref, name, held, relaxed=True)
        assert _within(lv.value, relaxed, lv.sense), (seed, name, lv.value, relaxed)
        assert _within(relaxed, lv.bound, lv.sense), (seed, name, relaxed, lv.bound)


@pytest.mark.parametrize("seed", range(3))
def test_a_priced_red_bound_holds_for_any_prices(seed):
    """The Lagrangian bound on red (``optimizer.priced``: capacity and budget rows moved into
    the objective at prices π ≥ 0) bounds the exact red optimum for any prices — none,
    the aggregate's, random ones — here with every offer and fund priced on the whole week."""
    scenario = Scenario.from_tables(shared_funds_scenario(seed, REF_SCALE))
    data = allocation_input(scenario)
    red = reference.solve(reference.build(scenario), upto="red", solver="scip")[0]["red"]
    rng = np.random.default_rng(seed)
    scale = np.where(data.offers["service_id"].map(
        data.services.set_index("service_id")["unit"]) == "yuan", 100.0, 1.0)
    capacity = data.offers["capacity"].to_numpy(float) * scale
    budget = np.round(data.funds["budget"].to_numpy(float) * 100.0)
    found = []
    for size in (0.0, 0.01, 0.1, 1.0):
        offer_price = pd.Series(size * rng.random(len(data.offers)) / scale,
                                index=data.offers["offer_id"])
        fund_price = pd.Series(size * rng.random(len(data.funds)) / 100.0,
                               index=data.funds["fund_id"])
        part = part_red_bound(data, offer_price, fund_price)
        bound = priced_total([part], offer_price, pd.Series(capacity, index=offer_price.index),
                             fund_price, pd.Series(budget, index=fund_price.index))
        assert bound >= red - TOL * max(1.0, red), (seed, size, bound, red)
        found.append(bound)
    assert found[0] >= red  # no prices: every shared row dropped, never tighter


def test_a_dual_bound_holds_wherever_the_simplex_stops():
    """The weak-duality bound read from HiGHS' row duals bounds the LP's optimum after any
    number of simplex iterations, and meets it at the optimum, maximising and minimising."""
    rng = np.random.default_rng(7)
    checked = 0
    for trial in range(20):
        n, m = 30, 12
        a = rng.integers(0, 4, (m, n)).astype(float)
        cost = rng.normal(size=n)
        upper = rng.integers(1, 9, n).astype(float)
        rhs = a.sum(axis=1) * 2.0
        maximise = bool(trial % 2)
        optimum = None
        for limit in (1_000_000, 0, 1, 2, 3, 5, 8):
            h = highspy.Highs()
            h.setOptionValue("output_flag", False)
            h.setOptionValue("presolve", "off")
            h.setOptionValue("simplex_iteration_limit", limit)
            h.addVars(n, np.zeros(n), upper)
            h.changeColsCost(n, np.arange(n, dtype=np.int32), cost)
            for r in range(m):
                h.addRow(-highspy.kHighsInf, rhs[r], n, np.arange(n, dtype=np.int32), a[r])
            if maximise:
                h.changeObjectiveSense(highspy.ObjSense.kMaximize)
            h.run()
            bound = dual_bound(h, maximise)
            if optimum is None:
                assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
                optimum = h.getInfo().objective_function_value
                assert bound == pytest.approx(optimum, rel=1e-9, abs=1e-9)
                continue
            if math.isnan(bound):
                continue
            checked += 1
            assert (bound >= optimum - 1e-9) if maximise else (bound <= optimum + 1e-9), \
                (trial, limit, bound, optimum)
    assert checked >= 40  # most stops gave duals to read a bound from


def test_a_bound_the_value_beats_is_dropped_and_said():
    """A bound on the wrong side of the value is no bound: nan, feasible, and a note."""
    beaten, note = bounded_level(LevelResult("orange", "max", 10.0, float("nan"), "feasible", 0.0),
                                9.0)
    assert math.isnan(beaten.bound) and beaten.status == "feasible" and "orange" in note
    beaten, note = bounded_level(LevelResult("money", "min", 10.0, float("nan"), "feasible", 0.0),
                                11.0)
    assert math.isnan(beaten.bound) and "money" in note
    met, note = bounded_level(LevelResult("money", "min", 10.0, float("nan"), "feasible", 0.0),
                             10.0 - 1e-9)
    assert met.status == "optimal" and met.bound == 10.0 - 1e-9 and not note
    gap, note = bounded_level(LevelResult("green", "max", 10.0, float("nan"), "feasible", 0.0),
                             12.0)
    assert gap.status == "feasible" and gap.gap == pytest.approx(0.2) and not note
