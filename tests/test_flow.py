"""The network components of the allocation, solved by min-cost flow (optimizer/flow.py).

Each level's value with the flow must equal HiGHS' on the same model and the independent
reference (reference/allocation.py); hand-made networks have known answers, duals and pins;
the same input gives the same plan; a flow that fails its check is handed to HiGHS.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest
from scenario_factory import random_scenario

from reference import allocation as rm
from wulian.optimizer import flow
from wulian.optimizer.allocation import TIER_LEVELS, AllocationParams, allocate
from wulian.optimizer.lexmip import Level, Rows
from wulian.planning.allocate import allocation_input
from wulian.planning.scenario import Scenario

SEEDS = tuple(range(30))
PIN_SEEDS = tuple(range(0, 30, 3))
ABS = 1e-6
REL = 1e-6


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(abs(a), abs(b)) + ABS


def network_tables(seed: int) -> dict[str, pd.DataFrame]:
    """The factory scenario with nothing charged to funds and no volunteers: every
    component is a network."""
    tables = random_scenario(seed)
    tables["offers"] = tables["offers"].assign(unit_cost=0.0)
    tables["volunteers"] = tables["volunteers"].iloc[:0]
    tables["history"] = tables["history"].iloc[:0]
    return tables


def with_pins(tables: dict[str, pd.DataFrame], seed: int) -> dict[str, pd.DataFrame] | None:
    """Up to three one-unit pins on offer arcs the unpinned reference optimum leaves empty,
    kept only while the reference can honour them all; None when none can be kept."""
    scenario = Scenario.from_tables(tables)
    ref = rm.build(scenario)
    _, amounts = rm.solve(ref)
    rng = np.random.default_rng(seed)
    empty = [a for a in ref.arcs if a.kind == "offer" and amounts[(a.need_id, a.source_id)] == 0]
    rows: list[dict] = []
    for i in rng.permutation(len(empty)):
        if len(rows) == 3:
            break
        arc = empty[i]
        candidate = [*rows, dict(need_id=arc.need_id, offer_id=arc.source_id, volunteer_id="",
                                 units=1 / ref.needs[arc.need_id].scale, slot="")]
        pins = [(r["need_id"], r["offer_id"], 1) for r in candidate]
        try:
            rm.solve(rm.Reference(**{**ref.__dict__, "pins": pins}))
        except rm.InfeasiblePins:
            continue
        rows = candidate
    if not rows:
        return None
    return {**tables, "pins": pd.DataFrame(rows, columns=list(tables["pins"].columns))}


@functools.cache
def solved(kind: str, seed: int):
    """(flow result, HiGHS-only result, reference levels) of one scenario."""
    tables = random_scenario(seed) if kind == "mixed" else network_tables(seed)
    if kind == "pinned":
        tables = with_pins(tables, seed)
        if tables is None:
            return None
    scenario = Scenario.from_tables(tables)
    data = allocation_input(scenario)
    return (allocate(data, AllocationParams(flow=True)),
            allocate(data, AllocationParams(flow=False)), rm.reference_levels(scenario))


def _mismatches(result, levels: dict[str, float]) -> list[str]:
    return [f"{lv.name}: {lv.value} ≠ {levels[lv.name]}" for lv in result.levels
            if not _close(lv.value, levels[lv.name])]


# ---------------------------------------------------------------------------- seeded scenarios


@pytest.mark.parametrize("kind", ["network", "mixed"])
@pytest.mark.parametrize("seed", SEEDS)
def test_levels_equal_highs_and_reference(kind, seed):
    """Level by level, the flow path reaches HiGHS' value and the reference optimum."""
    with_flow, highs_only, reference = solved(kind, seed)
    assert not _mismatches(with_flow, reference), f"{kind} {seed} vs reference"
    assert not _mismatches(with_flow, {lv.name: lv.value for lv in highs_only.levels})
    if kind == "network":  # every column went to the flow, and it proved every level
        assert with_flow.sizes["highs_columns"] == 0
        assert with_flow.sizes["flow_columns"] == with_flow.sizes["arcs"] + \
            with_flow.sizes["needs"]
        assert with_flow.status == "optimal"
        assert all(lv.bound == pytest.approx(lv.value, rel=1e-9, abs=1e-9)
                   for lv in with_flow.levels)
    assert highs_only.sizes["flow_columns"] == 0


def test_mixed_scenarios_use_both_paths():
    """Among the mixed scenarios, some split their columns between the flow and HiGHS."""
    both = [s for s in SEEDS if solved("mixed", s)[0].sizes["flow_columns"] > 0
            and solved("mixed", s)[0].sizes["highs_columns"] > 0]
    assert len(both) >= len(SEEDS) // 2


@pytest.mark.parametrize("seed", PIN_SEEDS)
def test_pinned_levels_equal_highs_and_reference(seed):
    """With pins (lower bounds sent first), the flow still reaches each level's optimum."""
    got = solved("pinned", seed)
    assert got is not None, "PIN_SEEDS are chosen so that every scenario has a pin to keep"
    with_flow, highs_only, reference = got
    assert with_flow.sizes["highs_columns"] == 0
    assert not _mismatches(with_flow, reference)
    assert not _mismatches(with_flow, {lv.name: lv.value for lv in highs_only.levels})


def test_pins_are_kept_in_the_tables():
    """Every pinned arc carries at least its pinned units in the flow's allocations."""
    seen = 0
    for seed in PIN_SEEDS:
        tables = with_pins(network_tables(seed), seed)
        if tables is None:
            continue
        result = solved("pinned", seed)[0]
        got = result.allocations.set_index(["need_id", "source_id"])["units"]
        for pin in tables["pins"].itertuples():
            assert got.get((pin.need_id, pin.offer_id), 0.0) >= pin.units - 1e-9
            seen += 1
    assert seen


@pytest.mark.parametrize("kind", ["network", "mixed"])
def test_same_input_same_plan(kind):
    """The same input gives identical allocations, level values and marginal values."""
    for seed in (2, 9, 19):
        tables = random_scenario(seed) if kind == "mixed" else network_tables(seed)
        data = allocation_input(Scenario.from_tables(tables))
        a, b = allocate(data), allocate(data)
        pd.testing.assert_frame_equal(a.allocations, b.allocations)
        pd.testing.assert_frame_equal(a.offer_use, b.offer_use)
        assert [lv.value for lv in a.levels] == [lv.value for lv in b.levels]


# ---------------------------------------------------------------------------- hand-made networks


def _network(cols: list[tuple[int, int | None]], q: list[int], cap: list[int],
             household: list[tuple[list[int], int]] = ()) -> tuple[np.ndarray, Rows]:
    """Rows of a network: ``cols`` (need, offer or None) are the arcs, then one unserved
    column per need; household rows are (arc columns, cap). Returns (upper bounds, rows)."""
    n_arcs, n_needs = len(cols), len(q)
    rows = Rows()
    need = np.array([c[0] for c in cols] + list(range(n_needs)))
    rows.add("need", need, np.arange(n_arcs + n_needs), np.ones(n_arcs + n_needs), q, q)
    with_offer = [i for i, c in enumerate(cols) if c[1] is not None]
    rows.add("offer", [cols[i][1] for i in with_offer], with_offer, np.ones(len(with_offer)),
             np.full(len(cap), -np.inf), cap)
    if household:
        r = [k for k, (members, _) in enumerate(household) for _ in members]
        c = [i for members, _ in household for i in members]
        rows.add("offer_household", r, c, np.ones(len(c)), np.full(len(household), -np.inf),
                 [h for _, h in household])
    upper = np.array([min(q[n], cap[o]) if o is not None else q[n] for n, o in cols] + q, float)
    return upper, rows


def _solve(upper, rows, levels, lower=None, flow_on=True):
    lower = np.zeros(len(upper)) if lower is None else lower
    return flow.solve_parts(lower, upper, np.ones(len(upper), bool), rows, levels,
                            flow=flow_on, dual_levels=TIER_LEVELS)


def _weights(n_cols: int, weights: dict[int, float]) -> np.ndarray:
    cost = np.zeros(n_cols)
    for col, w in weights.items():
        cost[col] = w
    return cost


def test_ties_of_an_earlier_level_are_left_to_the_next():
    """A red need served by A or B equally; only B serves the orange need: the red level is
    held by its optimal face, not by its first flow, so orange is served too; the last,
    minimised level picks the cheaper of two equal green offers."""
    # arcs: n0←A, n0←B, n1←B, n2←C, n2←D; then unserved n0, n1, n2
    upper, rows = _network([(0, 0), (0, 1), (1, 1), (2, 2), (2, 3)], [1, 1, 1], [1, 1, 1, 1])
    n = len(upper)
    levels = [Level("red", "max", _weights(n, {0: 1, 1: 1})),
              Level("orange", "max", _weights(n, {2: 1})),
              Level("green", "max", _weights(n, {3: 1, 4: 1})),
              Level("money", "min", _weights(n, {3: 5, 4: 2}))]
    result, parts = _solve(upper, rows, levels)
    assert parts.flow_columns == n and parts.components == 2
    assert [lv.value for lv in result.levels] == [1, 1, 1, 2]
    assert [lv.bound for lv in result.levels] == [1, 1, 1, 2]
    assert result.x.tolist() == [1, 0, 1, 0, 1, 0, 0, 0]
    highs, _ = _solve(upper, rows, levels, flow_on=False)
    assert [lv.value for lv in highs.levels] == [1, 1, 1, 2]


def _weighted():
    """n0 red (2 units, urgency 1), n1 red (1 unit, urgency 3), n2 orange (2 units, urgency
    2); A (2 units) serves n0 and n1, B (2 units) serves n1 and n2."""
    upper, rows = _network([(0, 0), (1, 0), (1, 1), (2, 1)], [2, 1, 2], [2, 2])
    n = len(upper)
    levels = [Level("red", "max", _weights(n, {0: 0.5, 1: 3, 2: 3})),
              Level("orange", "max", _weights(n, {3: 1.0}))]
    return upper, rows, levels


def test_weighted_network_answer_and_marginal_values():
    """Red serves both red needs (n1 from B), orange gets B's last unit; one more unit of A
    or of B is worth nothing to red and one orange unit (weight 1) to orange."""
    upper, rows, levels = _weighted()
    result, _ = _solve(upper, rows, levels)
    assert [lv.value for lv in result.levels] == [4.0, 1.0]
    assert result.x.tolist() == [2, 0, 1, 1, 0, 0, 1]
    offer_rows = rows.family("offer")
    assert result.duals["red"][offer_rows].tolist() == [0.0, 0.0]
    assert result.duals["orange"][offer_rows].tolist() == [1.0, 1.0]


def test_household_cap_in_the_network():
    """A per-household row on B (n1 and n2 share one unit): red keeps n1, orange gets none."""
    _, _, levels = _weighted()
    upper, rows = _network([(0, 0), (1, 0), (1, 1), (2, 1)], [2, 1, 2], [2, 2],
                           household=[([2, 3], 1)])
    result, parts = _solve(upper, rows, levels)
    assert parts.flow_columns == len(upper)
    assert [lv.value for lv in result.levels] == [4.0, 0.0]
    highs, _ = _solve(upper, rows, levels, flow_on=False)
    assert [lv.value for lv in highs.levels] == [4.0, 0.0]


def test_pins_are_sent_first():
    """A pin of n1 on A (a unit red would rather give n0) costs red 0.5 and frees B for
    orange: red 3.5, orange 2."""
    upper, rows, levels = _weighted()
    lower = np.zeros(len(upper))
    lower[1] = 1
    result, parts = _solve(upper, rows, levels, lower=lower)
    assert parts.flow_columns == len(upper)
    assert [lv.value for lv in result.levels] == [3.5, 2.0]
    assert result.x[1] == 1


def test_a_network_without_costs_still_meets_every_need_row():
    """When no level costs anything on the network, its answer is still a flow: each need's
    arcs and unserved column add up to the need (here one need of 3 with one offer of 2)."""
    upper, rows = _network([(0, 0)], [3], [2])
    levels = [Level("red", "max", np.zeros(len(upper))),
              Level("money", "min", np.zeros(len(upper)))]
    result, parts = _solve(upper, rows, levels)
    assert parts.flow_columns == len(upper)
    assert result.x.sum() == 3 and result.x[0] <= 2


def test_non_networks_go_to_highs():
    """A component with a fund row or a non-unit coefficient is not a network; one with only
    need and offer rows is."""
    upper, rows = _network([(0, 0), (1, 1)], [1, 1], [1, 1])
    rows.add("fund", [0], [1], [2.5], [-np.inf], [10])  # the second arc charges a fund
    _, _, is_net = flow.network_mask(np.zeros(len(upper)), upper, rows)
    assert is_net.tolist() == [True, False, True, False]
    upper, rows = _network([(0, 0)], [1], [1])
    rows.val[1] = np.array([2.0])  # the offer row weighs its arc 2
    _, _, is_net = flow.network_mask(np.zeros(len(upper)), upper, rows)
    assert not is_net.any()


# ---------------------------------------------------------------------------- scaling, fall-back


@pytest.mark.parametrize("n_nodes", [3, 1_000, 1_000_000])
def test_scaling_stays_in_range_and_is_the_finest(n_nodes):
    """The power-of-two scale keeps costs exact in a double and OR-Tools' products in int64,
    and no finer scale would."""
    rng = np.random.default_rng(n_nodes)
    cost = rng.uniform(-3, 3, 50) / rng.integers(1, 10**6, 50)
    room = rng.integers(1, 10**5, 50)
    k = flow.scale_exponent(cost, room, n_nodes)

    def fits(k: int) -> bool:
        top = float(np.abs(cost).max()) * 2.0**k
        return (top <= 2**53 and top * (2 * n_nodes + 4) <= flow.FLOW_COST_LIMIT
                and float(np.abs(cost) @ room) * 2.0**k <= flow.FLOW_COST_LIMIT / 2)

    assert fits(k) and not fits(k + 1)
    assert math.isclose(np.ldexp(1.0, k) * 2.0**-k, 1.0)


def test_a_failed_check_falls_back_to_highs(monkeypatch):
    """When no flow passes its optimality check, every component goes to HiGHS, which
    reaches the same values: the flow never returns a worse answer silently."""
    data = allocation_input(Scenario.from_tables(network_tables(3)))
    reference = solved("network", 3)[2]
    monkeypatch.setattr(flow, "GAP_TOLERANCE", -1.0)
    result = allocate(data)
    assert result.sizes["flow_columns"] == 0
    assert result.sizes["flow_fallbacks"] == result.sizes["components"]
    assert not _mismatches(result, reference)


def test_a_flow_failure_falls_back_to_highs(monkeypatch):
    """When OR-Tools cannot solve the flow at all, HiGHS solves the whole model."""
    data = allocation_input(Scenario.from_tables(network_tables(5)))
    reference = solved("network", 5)[2]
    monkeypatch.setattr(flow, "SCALE_TRIES", 0)
    result = allocate(data)
    assert result.sizes["flow_columns"] == 0
    assert not _mismatches(result, reference)
