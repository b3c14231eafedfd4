"""The weekly allocation proven from outside.

An independent PuLP/CBC model (``reference/allocation.py``) re-derives each lexicographic
level's optimum from the specification, and the output tables are re-checked against the
scenario tables alone: every constraint, every unit accounted for, every unmet reason true.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scenario_factory import random_scenario

from reference import allocation as rm
from wulian.contract import vocab
from wulian.optimizer.allocation import TIER_LEVELS, AllocationParams
from wulian.planning.allocate import run_allocation
from wulian.planning.scenario import Scenario, load_scenario

SEEDS = tuple(range(30))
PIN_SEEDS = (1, 3, 5, 8, 11, 17, 21, 26)
DETERMINISM_SEEDS = (2, 9, 19)
CLEAN = Path(__file__).parent / "data" / "clean"
REASONS = vocab.ALLOCATION_REASONS
ABS = 1e-6  # absolute tolerance on units, yuan and level values
REL = 1e-6


@dataclass
class Case:
    scenario: Scenario
    ref: rm.Reference
    run: object  # planning.allocate.Run, or the exception the library raised
    levels: dict[str, float]  # the reference optimum of each level


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(abs(a), abs(b)) + ABS


def _make_case(scenario: Scenario) -> Case:
    ref = rm.build(scenario)
    try:
        run = run_allocation(scenario)
    except Exception as exc:  # reported by every test of the case
        run = exc
    return Case(scenario, ref, run, rm.solve(ref)[0])


@functools.cache
def case(seed: int) -> Case:
    return _make_case(Scenario.from_tables(random_scenario(seed)))


@functools.cache
def pinned_case(seed: int) -> Case:
    return _make_case(Scenario.from_tables(_with_pins(seed)))


@functools.cache
def clean_case() -> Case:
    return _make_case(load_scenario(CLEAN))


def _run(c: Case):
    if isinstance(c.run, Exception):
        pytest.fail(f"run_allocation raised {c.run!r}")
    return c.run


def _with_pins(seed: int) -> dict[str, pd.DataFrame]:
    """The seed's scenario with up to four pins, preferring arcs the unpinned optimum leaves
    empty, kept only while the reference can honour all of them."""
    tables = random_scenario(seed)
    scenario = Scenario.from_tables(tables)
    ref = rm.build(scenario)
    _, amounts = rm.solve(ref)
    rng = np.random.default_rng(1000 + seed)
    order = sorted(ref.arcs, key=lambda a: (amounts[(a.need_id, a.source_id)] > 0,
                                             float(rng.random())))
    rows: list[dict] = []
    for arc in order:
        if len(rows) == 4:
            break
        need = ref.needs[arc.need_id]
        units = min(need.quantity, 2000 if need.scale == 100 else 1) / need.scale
        if arc.kind == "offer":
            target = dict(offer_id=arc.source_id, volunteer_id="")
        else:
            target = dict(offer_id="", volunteer_id=ref.pools[arc.source_id].members[0])
        candidate = [*rows, dict(need_id=arc.need_id, **target, units=units, slot="")]
        trial = ref_with_pins(ref, candidate)
        try:
            rm.solve(trial)
        except rm.InfeasiblePins:
            continue
        rows = candidate
    assert rows, f"seed {seed}: no pin could be kept"
    tables["pins"] = pd.DataFrame(rows, columns=list(tables["pins"].columns))
    return tables


def ref_with_pins(ref: rm.Reference, rows: list[dict]) -> rm.Reference:
    """A copy of ``ref`` with the given pin rows (pins table columns) in base units."""
    pins = []
    for r in rows:
        need = ref.needs[r["need_id"]]
        if r["offer_id"]:
            source = r["offer_id"]
        else:
            pool = next(p for p in ref.pools.values() if r["volunteer_id"] in p.members)
            source = rm.pool_id(pool.street_id, need.service_id)
        pins.append((need.need_id, source, round(r["units"] * need.scale)))
    return rm.Reference(**{**ref.__dict__, "pins": pins})


# ---------------------------------------------------------------------------------------------
# Reading the output tables back into base units.


@dataclass
class State:
    """What the allocations table says was used, in base units and yuan."""

    amounts: dict[tuple[str, str], float]  # (need, source) → base units
    served: dict[str, float]  # need → base units
    offer_used: dict[str, float]
    offer_household: dict[tuple[str, str], float]
    fund_used: dict[str, float]
    fund_household: dict[tuple[str, str], float]
    pool_hours: dict[str, float]
    pool_units: dict[str, float]
    street_hours: dict[str, float]


def _state(ref: rm.Reference, alloc: pd.DataFrame) -> State:
    st = State(*(defaultdict(float) for _ in range(9)))
    for row in alloc.itertuples(index=False):
        need = ref.needs[row.need_id]
        base = float(row.units) * need.scale
        st.amounts[(row.need_id, row.source_id)] += base
        st.served[row.need_id] += base
        h = need.household_id
        if row.source_kind == "offer":
            offer = ref.offers[row.source_id]
            st.offer_used[offer.offer_id] += base
            st.offer_household[(offer.offer_id, h)] += base
            if offer.fund_id:
                st.fund_used[offer.fund_id] += float(row.cost)
                st.fund_household[(offer.fund_id, h)] += float(row.cost)
        elif row.source_id in ref.pools:
            pool = ref.pools[row.source_id]
            st.pool_hours[pool.pool_id] += base * pool.hours_per_unit
            st.pool_units[pool.pool_id] += base
            st.street_hours[pool.street_id] += base * pool.hours_per_unit
    return st


def _table_problems(ref: rm.Reference, alloc: pd.DataFrame, unmet: pd.DataFrame) -> list[str]:
    """Every way the output tables break the specification's constraints."""
    bad: list[str] = []
    for row in alloc.itertuples(index=False):
        where = f"allocation {row.need_id}←{row.source_id}"
        if row.need_id not in ref.needs:
            bad.append(f"{where}: unknown need")
            continue
        need = ref.needs[row.need_id]
        base = float(row.units) * need.scale
        if not base > 0:
            bad.append(f"{where}: units {row.units} not positive")
        if abs(base - round(base)) > 1e-6:
            bad.append(f"{where}: {row.units} is not a whole number of base units")
        if row.source_kind == "offer":
            if row.source_id not in ref.offers:
                bad.append(f"{where}: unknown offer")
                continue
            broken = ref.offer_rules_broken(row.need_id, row.source_id)
            if broken:
                bad.append(f"{where}: breaks {', '.join(broken)}")
            offer = ref.offers[row.source_id]
            if not _close(float(row.cost), offer.cost_per_base * base):
                bad.append(f"{where}: cost {row.cost} ≠ {offer.cost_per_base * base:.2f}")
            if offer.fund_id and row.fund_id != offer.fund_id:
                bad.append(f"{where}: charged to {row.fund_id!r}, not {offer.fund_id}")
        elif row.source_kind == "volunteer_pool":
            if row.source_id not in ref.pools:
                bad.append(f"{where}: no such pool (capable volunteers of a street)")
                continue
            broken = ref.pool_rules_broken(row.need_id, row.source_id)
            if broken:
                bad.append(f"{where}: breaks {', '.join(broken)}")
            if abs(float(row.cost)) > ABS:
                bad.append(f"{where}: a volunteer pool costs {row.cost}")
        else:
            bad.append(f"{where}: unknown source_kind {row.source_kind!r}")
    if bad:
        return bad

    st = _state(ref, alloc)
    for o in ref.offers.values():
        if st.offer_used[o.offer_id] > o.capacity + ABS:
            bad.append(f"offer {o.offer_id}: {st.offer_used[o.offer_id]} > capacity {o.capacity}")
    for (o, h), used in st.offer_household.items():
        cap = ref.offers[o].max_per_household
        if cap is not None and used > cap + ABS:
            bad.append(f"offer {o}: household {h} gets {used} > cap {cap}")
    for f in ref.funds.values():
        if st.fund_used[f.fund_id] > f.budget + ABS:
            bad.append(f"fund {f.fund_id}: {st.fund_used[f.fund_id]:.2f} > budget {f.budget}")
    for (f, h), used in st.fund_household.items():
        cap = ref.funds[f].max_per_household
        if cap is not None and used > cap + ABS:
            bad.append(f"fund {f}: household {h} gets {used:.2f} yuan > cap {cap}")
    for p in ref.pools.values():
        if st.pool_hours[p.pool_id] > p.hours + ABS:
            bad.append(f"{p.pool_id}: {st.pool_hours[p.pool_id]} h > {p.hours} h")
        if st.pool_units[p.pool_id] > p.units + ABS:
            bad.append(f"{p.pool_id}: {st.pool_units[p.pool_id]} units > {p.units} (slots)")
    for street, hours in ref.street_hours.items():
        if st.street_hours[street] > hours + ABS:
            bad.append(f"street {street}: {st.street_hours[street]} h > {hours} h")
    for need_id, source, units in ref.pins:
        if st.amounts[(need_id, source)] < units - ABS:
            bad.append(f"pin {need_id}←{source} ({units}) not kept: "
                       f"{st.amounts[(need_id, source)]}")

    if unmet["need_id"].duplicated().any():
        bad.append("unmet lists a need twice")
    short = dict(zip(unmet["need_id"], unmet["units"].astype(float), strict=True))
    for row in unmet.itertuples(index=False):
        if row.reason not in REASONS:
            bad.append(f"unmet {row.need_id}: unknown reason {row.reason!r}")
        base = float(row.units) * ref.needs[row.need_id].scale
        if not base > 0 or abs(base - round(base)) > 1e-6:
            bad.append(f"unmet {row.need_id}: {row.units} is not a positive whole amount")
    for n in ref.needs.values():
        left = short.get(n.need_id, 0.0) * n.scale
        if abs(st.served[n.need_id] + left - n.quantity) > 1e-6:
            bad.append(f"need {n.need_id}: served {st.served[n.need_id]} + unmet {left} ≠ "
                       f"quantity {n.quantity}")
    return bad


def _expected_reason(ref: rm.Reference, st: State, need: rm.Need) -> tuple[str, list[str]]:
    """The first reason of the specification that applies to ``need``, and the admissible
    sources that could still give it one more base unit (empty at an optimum)."""
    h = need.household_id
    if not ref.eligible_offers(need) and not ref.pool_exists(need.service_id):
        return "no_eligible_offer", []
    arcs = ref.arcs_of(need.need_id)
    if not arcs:
        return "out_of_coverage", []
    with_room, capped, short, open_ = [], [], [], []
    for arc in arcs:
        if arc.kind == "offer":
            o = ref.offers[arc.source_id]
            room = o.capacity - st.offer_used[o.offer_id] >= 1 - 1e-6
            cap = (o.max_per_household is not None
                   and st.offer_household[(o.offer_id, h)] + 1 > o.max_per_household + 1e-6)
            poor = False
            if o.fund_id:
                f = ref.funds[o.fund_id]
                cap = cap or (f.max_per_household is not None
                              and st.fund_household[(f.fund_id, h)] + o.cost_per_base
                              > f.max_per_household + 1e-7)
                poor = f.budget - st.fund_used[f.fund_id] < o.cost_per_base - 1e-7
        else:
            p = ref.pools[arc.source_id]
            room = (p.hours - st.pool_hours[p.pool_id] >= p.hours_per_unit - 1e-7
                    and p.units - st.pool_units[p.pool_id] >= 1 - 1e-7
                    and ref.street_hours[p.street_id] - st.street_hours[p.street_id]
                    >= p.hours_per_unit - 1e-7)
            cap = poor = False
        if not room:
            continue
        with_room.append(arc.source_id)
        if cap:
            capped.append(arc.source_id)
        elif poor:
            short.append(arc.source_id)
        else:
            open_.append(arc.source_id)
    if with_room and len(capped) == len(with_room):
        return "household_cap", open_
    if short:
        return "budget_exhausted", open_
    return "capacity_exhausted", open_


def _reason_problems(ref: rm.Reference, alloc: pd.DataFrame, unmet: pd.DataFrame) -> list[str]:
    st = _state(ref, alloc)
    bad = []
    for row in unmet.itertuples(index=False):
        need = ref.needs[row.need_id]
        expected, open_ = _expected_reason(ref, st, need)
        if row.reason != expected:
            bad.append(f"unmet {row.need_id} ({need.service_id}, {need.tier}): reason "
                       f"{row.reason}, but the first that applies is {expected}")
        if open_:
            bad.append(f"unmet {row.need_id}: {', '.join(open_)} could still give one more unit")
    return bad


def _levels_from_tables(ref: rm.Reference, alloc: pd.DataFrame) -> dict[str, float]:
    st = _state(ref, alloc)
    values = rm.level_values(ref, st.amounts)
    values["money"] = float(alloc["cost"].sum()) if len(alloc) else 0.0
    return values


def _level_mismatches(expected: dict[str, float], got: dict[str, float]) -> list[str]:
    return [f"{name}: library {got[name]!r}, reference {expected[name]!r}"
            for name in rm.LEVELS if not _close(got[name], expected[name])]


# ---------------------------------------------------------------------------------------------
# Tests.


def test_factory_scenarios_are_valid_and_have_the_promised_shape():
    """Every factory seed passes validation and has the promised sizes and features."""
    for seed in SEEDS:
        t = random_scenario(seed)
        Scenario.from_tables(t)  # raises ValidationError when invalid
        centres = t["centres"]
        levels = centres["level"].value_counts()
        assert levels["city"] == 1 and 1 <= levels["district"] <= 2
        assert 2 <= levels["street"] <= 4 and 4 <= levels["station"] <= 10
        services = t["services"]
        assert 3 <= len(services) <= 5
        assert ((services["unit"] == "visit") & (services["delivery"] == "in_person")
                & (services["skills"] != "")).any()
        assert ((services["unit"] == "yuan") & (services["delivery"] == "cash")).any()
        assert 10 <= len(t["households"]) <= 30 and 15 <= len(t["needs"]) <= 50
        assert 4 <= len(t["offers"]) <= 10 and 2 <= len(t["funds"]) <= 3
        assert 3 <= len(t["volunteers"]) <= 10 and t["pins"].empty
        assert ((t["offers"]["unit_cost"] > 0) & (t["offers"]["fund_id"] != "")).any()
    assert random_scenario(7)["needs"].equals(random_scenario(7)["needs"])


def test_clean_scenario_levels_match_reference():
    """On the hand-made clean scenario every level equals the reference optimum."""
    c = clean_case()
    run = _run(c)
    got = {name: run.info["levels"][name]["value"] for name in rm.LEVELS}
    assert not _level_mismatches(c.levels, got)


@pytest.mark.parametrize("seed", SEEDS)
def test_levels_match_reference(seed):
    """Each of the seven lexicographic levels equals the independent reference optimum."""
    c = case(seed)
    run = _run(c)
    assert list(run.info["levels"])[:7] == list(rm.LEVELS)
    got = {name: run.info["levels"][name]["value"] for name in rm.LEVELS}
    assert not _level_mismatches(c.levels, got), f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_tables_reach_the_optimum(seed):
    """The levels recomputed from the allocations table alone equal the reference optimum."""
    c = case(seed)
    run = _run(c)
    got = _levels_from_tables(c.ref, run.tables["allocations"])
    assert not _level_mismatches(c.levels, got), f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_tables_keep_every_constraint(seed):
    """The output tables keep every constraint, use whole units and account for every unit."""
    c = case(seed)
    run = _run(c)
    bad = _table_problems(c.ref, run.tables["allocations"], run.tables["unmet"])
    assert not bad, f"seed {seed}:\n" + "\n".join(bad)


@pytest.mark.parametrize("seed", SEEDS)
def test_unmet_reasons_are_true(seed):
    """Every unmet need carries the first reason that truly applies; none could get one more."""
    c = case(seed)
    run = _run(c)
    bad = _reason_problems(c.ref, run.tables["allocations"], run.tables["unmet"])
    assert not bad, f"seed {seed}:\n" + "\n".join(bad)


def test_clean_scenario_tables_and_reasons():
    """The clean scenario's tables keep every constraint and pin, and every reason is true."""
    c = clean_case()
    run = _run(c)
    alloc, unmet = run.tables["allocations"], run.tables["unmet"]
    bad = _table_problems(c.ref, alloc, unmet) + _reason_problems(c.ref, alloc, unmet)
    assert not bad, "\n".join(bad)
    assert c.ref.pins, "the clean scenario has a pin"


@pytest.mark.parametrize("seed", PIN_SEEDS)
def test_pins_are_kept_at_the_pinned_optimum(seed):
    """Pins are kept, tables and reasons stay true, and levels equal the pinned reference."""
    c = pinned_case(seed)
    run = _run(c)
    assert c.ref.pins
    alloc, unmet = run.tables["allocations"], run.tables["unmet"]
    bad = _table_problems(c.ref, alloc, unmet) + _reason_problems(c.ref, alloc, unmet)
    got = {name: run.info["levels"][name]["value"] for name in rm.LEVELS}
    bad += _level_mismatches(c.levels, got)
    assert not bad, f"seed {seed} with pins {c.ref.pins}:\n" + "\n".join(bad)


@pytest.mark.parametrize("seed", DETERMINISM_SEEDS)
def test_same_input_gives_identical_tables(seed):
    """Running twice on the same input gives identical output tables."""
    first = _run(case(seed))
    second = run_allocation(Scenario.from_tables(random_scenario(seed)))
    assert set(first.tables) == set(second.tables)
    for name in first.tables:
        pd.testing.assert_frame_equal(first.tables[name], second.tables[name], obj=name)
    for name in rm.LEVELS:
        assert first.info["levels"][name]["value"] == second.info["levels"][name]["value"]


def test_reference_solution_is_feasible_by_the_same_checks():
    """The reference's own optimum passes the table checks, so the checks are not vacuous."""
    for seed in SEEDS[:5]:
        c = case(seed)
        _, amounts = rm.solve(c.ref)
        rows = []
        for (need_id, source), base in amounts.items():
            if base <= 0:
                continue
            need = c.ref.needs[need_id]
            is_offer = source in c.ref.offers
            cost = c.ref.offers[source].cost_per_base * base if is_offer else 0.0
            rows.append(dict(need_id=need_id, source_id=source,
                             source_kind="offer" if is_offer else "volunteer_pool",
                             units=base / need.scale, cost=cost,
                             fund_id=c.ref.offers[source].fund_id if is_offer else ""))
        alloc = pd.DataFrame(rows, columns=["need_id", "source_id", "source_kind", "units",
                                            "cost", "fund_id"])
        st = _state(c.ref, alloc)
        unmet_rows = [dict(need_id=n.need_id,
                           units=(n.quantity - st.served[n.need_id]) / n.scale, reason="")
                      for n in c.ref.needs.values() if n.quantity - st.served[n.need_id] > 0]
        for r in unmet_rows:
            r["reason"] = _expected_reason(c.ref, st, c.ref.needs[r["need_id"]])[0]
        unmet = pd.DataFrame(unmet_rows, columns=["need_id", "units", "reason"])
        bad = _table_problems(c.ref, alloc, unmet) + _reason_problems(c.ref, alloc, unmet)
        assert not bad, f"seed {seed}:\n" + "\n".join(bad)
        values = _levels_from_tables(c.ref, alloc)
        assert not _level_mismatches(c.levels, values)
        assert math.isfinite(values["travel"])


def test_checks_catch_planted_faults():
    """The table and reason checks flag planted faults, so passing them means something."""
    c = clean_case()
    run = _run(c)
    alloc, unmet = run.tables["allocations"], run.tables["unmet"]
    assert not _table_problems(c.ref, alloc, unmet)

    over = alloc.copy()
    over.loc[over["source_id"] == "O02", "units"] += 1  # O02: 3 > cap 2 for household H002
    assert any("cap 2" in p for p in _table_problems(c.ref, over, unmet))

    dropped = alloc[alloc["need_id"] != "N004"].reset_index(drop=True)
    assert any("need N004" in p for p in _table_problems(c.ref, dropped, unmet))

    foreign = alloc.copy()
    foreign.loc[foreign["need_id"] == "N004", "source_id"] = "O02"  # green: not eligible
    foreign.loc[foreign["need_id"] == "N004", ["cost", "fund_id"]] = [0.0, ""]
    assert any("colour" in p for p in _table_problems(c.ref, foreign, unmet))

    wrong = unmet.copy()
    wrong["reason"] = "capacity_exhausted"
    assert len(_reason_problems(c.ref, alloc, wrong)) == len(unmet)
    assert not _reason_problems(c.ref, alloc, unmet)


# ---------------------------------------------------------------------------------------------
# District by district (optimizer/decompose.py): feasible, truthful, bounded.


MULTI_DISTRICT = [s for s in SEEDS if random_scenario(s)["centres"]["level"].eq("district").sum()
                  > 1]


@functools.cache
def decomposed_run(seed: int, by: str = "street"):
    scenario = Scenario.from_tables(random_scenario(seed))
    return run_allocation(scenario, params=AllocationParams(decompose="always", workers=1,
                                                            decompose_by=by))


def _areas_with_needs(seed: int, level: str) -> int:
    """How many centres of ``level`` have needs, walking the centre table's parents."""
    tables = random_scenario(seed)
    centres = tables["centres"].set_index("centre_id")
    station = tables["needs"]["household_id"].map(
        tables["households"].set_index("household_id")["station_id"])
    areas = set()
    for centre in set(station):
        while centres.loc[centre, "level"] != level:
            centre = centres.loc[centre, "parent_id"]
        areas.add(centre)
    return len(areas)


def test_some_seeds_span_several_districts():
    assert len(MULTI_DISTRICT) >= 5


@pytest.mark.parametrize("by", ["street", "district"])
@pytest.mark.parametrize("seed", MULTI_DISTRICT)
def test_decomposed_tables_keep_every_constraint_and_reasons_are_true(seed, by):
    """Solved street by street (or district by district), the city's tables still keep every
    constraint, and every unmet unit's reason is true for the whole city (the residual pass
    sees to that)."""
    c, run = case(seed), decomposed_run(seed, by)
    assert run.info["decomposition"]["parts"] == _areas_with_needs(seed, by) > 1
    assert run.info["decomposition"]["method"] == f"{by}s"
    alloc, unmet = run.tables["allocations"], run.tables["unmet"]
    bad = _table_problems(c.ref, alloc, unmet) + _reason_problems(c.ref, alloc, unmet)
    assert not bad, f"seed {seed}: " + "; ".join(bad[:5])


@pytest.mark.parametrize("by", ["street", "district"])
@pytest.mark.parametrize("seed", MULTI_DISTRICT)
def test_decomposed_levels_are_what_the_tables_say_and_red_is_bounded(seed, by):
    """Reported values equal those recomputed from the tables; the red value never beats the
    exact optimum, and its bound (the tighter of the aggregate's and the priced parts') never
    cuts it off."""
    c, run = case(seed), decomposed_run(seed, by)
    levels = run.info["levels"]
    from_tables = _levels_from_tables(c.ref, run.tables["allocations"])
    for name in (*TIER_LEVELS, "money"):
        assert _close(levels[name]["value"], from_tables[name]), (seed, name)
    assert levels["red"]["value"] <= c.levels["red"] + ABS
    assert levels["red"]["bound"] >= c.levels["red"] - ABS
    decomposition = run.info["decomposition"]
    assert levels["red"]["bound"] == min(decomposition["aggregate_red_bound"],
                                         decomposition["priced_red_bound"])


def test_some_decomposed_runs_top_up_from_leftover_shared_supply():
    """The top-up pass is exercised: some seeds leave shared supply over after the districts."""
    assert any(decomposed_run(s).info["decomposition"]["top_up_needs"] for s in MULTI_DISTRICT)


@pytest.mark.parametrize("seed", MULTI_DISTRICT)
def test_without_the_top_up_the_pools_give_the_same(seed):
    """Without its top-up (``top_up=False``: one plan's guess, which reads only what the
    pools give) a decomposed run gives every need the same units from volunteer pools: the
    top-up draws on leftover offers alone. Nothing is given that the whole run does not give."""
    whole = decomposed_run(seed).tables["allocations"]
    scenario = Scenario.from_tables(random_scenario(seed))
    run = run_allocation(scenario, params=AllocationParams(decompose="always", workers=1,
                                                           top_up=False))
    parts = run.tables["allocations"]
    assert run.info["decomposition"]["top_up_needs"] == 0
    pool = lambda alloc: alloc.loc[alloc["source_kind"] == "volunteer_pool",  # noqa: E731
                                   ["need_id", "source_id", "units"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(pool(parts), pool(whole), check_dtype=False)
    key = ["need_id", "source_id", "fund_id"]
    both = whole[[*key, "units"]].merge(parts[[*key, "units"]], on=key, how="outer",
                                        suffixes=("", "_parts")).fillna(0.0)
    assert (both["units"] >= both["units_parts"] - 1e-9).all()


@pytest.mark.parametrize("seed", MULTI_DISTRICT[:3])
def test_without_reasons_the_same_allocations(seed):
    """``reasons=False`` (one plan's guess, whose reasons are never read): the same
    allocations and levels, whole or in parts (the top-up off, as the guess has it), and every
    unmet need's reason is empty where the run with reasons says one."""
    scenario = Scenario.from_tables(random_scenario(seed))
    for params in (AllocationParams(workers=1, top_up=False),
                   AllocationParams(decompose="always", workers=1, top_up=False)):
        said = run_allocation(scenario, params=params)
        silent = run_allocation(scenario, params=replace(params, reasons=False))
        pd.testing.assert_frame_equal(silent.tables["allocations"], said.tables["allocations"])
        assert [lv.value for lv in silent.result.levels] == \
            [lv.value for lv in said.result.levels]
        assert (said.result.unmet["reason"] != "").any()
        assert (silent.result.unmet["reason"] == "").all()
        assert len(silent.result.unmet) == len(said.result.unmet)


def test_a_decomposed_run_hands_its_plan_over_before_its_reasons_are_said_again():
    """The city's reasons, said again in the pool after the top-up, change neither the plan
    nor a level's value: the plan is handed over before they are (the caller's work and the
    bounds start beside them), and the run ends with them — the same tables and levels as
    the run through the built-in map."""
    seed = MULTI_DISTRICT[0]
    scenario = Scenario.from_tables(random_scenario(seed))
    handed = threading.Event()
    calls: list[bool] = []  # per call of the pool's map: was the plan handed over then

    class Pool:
        """A pool whose every map after the parts' waits (a while) for the plan."""

        def map(self, fn, tasks):
            if calls:
                handed.wait(20)
            calls.append(handed.is_set())
            return list(map(fn, tasks))

    run = run_allocation(scenario, params=AllocationParams(decompose="always", workers=1),
                         pool=Pool(), with_plan=lambda plan: handed.set())
    # the parts, the reasons said again, the later levels' priced bounds
    assert calls == [False, True, True]
    same = decomposed_run(seed)
    for name in ("allocations", "unmet"):
        pd.testing.assert_frame_equal(run.tables[name], same.tables[name])
    levels = lambda r: pd.DataFrame(r.info["levels"]).T[["value", "bound", "status"]]  # noqa: E731
    pd.testing.assert_frame_equal(levels(run), levels(same))


def test_beside_the_bounds_the_pool_never_holds_more_tasks_than_it_can_run():
    """``match_beside_bounds``: once the plan is handed over, the allocation's own pool tasks
    (the reasons said again, the later levels' priced bounds: 4 and 24 on the city) and the
    matching's regions go through one gate, so the pool never holds more of them than its
    workers (less the core the bound LPs hold while they run): no region queues behind all
    of the bounds' tasks. The run is the same as one with the built-in map."""
    from wulian.planning.match import match_beside_bounds

    seed = MULTI_DISTRICT[0]
    scenario = Scenario.from_tables(random_scenario(seed))
    handed = threading.Event()
    lock = threading.Lock()
    held = {"now": 0, "most": 0}  # tasks in the pool once the plan was handed over

    class Counting(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            with lock:
                held["now"] += 1
                if handed.is_set():
                    held["most"] = max(held["most"], held["now"])
            future = super().submit(fn, *args, **kwargs)
            future.add_done_callback(lambda _: self.done())
            return future

        def done(self):
            with lock:
                held["now"] -= 1

    def match(plan, regions):
        handed.set()
        return [f.result() for f in [regions.submit(time.sleep, 0.01) for _ in range(8)]]

    params = AllocationParams(decompose="always", workers=2)
    with Counting(2) as pool:
        run, regions, _ = match_beside_bounds(
            functools.partial(run_allocation, scenario, params=params, pool=pool), match, pool, 2)
    assert len(regions) == 8
    assert 1 <= held["most"] <= 2
    same = decomposed_run(seed)
    for name in ("allocations", "unmet"):
        pd.testing.assert_frame_equal(run.tables[name], same.tables[name])


def test_beside_the_bounds_a_run_without_bounds_still_frees_the_gate_for_its_reasons():
    """With no later levels to bound (``certify`` off) nothing calls ``on_core_free`` from
    the bounds: a gate of no slots (one worker) held the reasons' tasks for ever, and the run
    waited for them (review of session 18: a hang). The gate is freed, at the latest, before
    the reasons are waited for; the run ends, the same as with the built-in map."""
    from wulian.planning.match import match_beside_bounds

    seed = MULTI_DISTRICT[0]
    scenario = Scenario.from_tables(random_scenario(seed))
    params = AllocationParams(decompose="always", workers=1, certify=False)
    ended: dict = {}

    def match(plan, regions):
        return [f.result() for f in [regions.submit(time.sleep, 0.01) for _ in range(3)]]

    def run() -> None:
        with ThreadPoolExecutor(2) as pool:
            ended["run"] = match_beside_bounds(functools.partial(
                run_allocation, scenario, params=params, pool=pool), match, pool, 1)[0]

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert "run" in ended, "the run waited for reasons its gate never let into the pool"
    alone = run_allocation(scenario, params=params)
    for name in ("allocations", "unmet"):
        pd.testing.assert_frame_equal(ended["run"].tables[name], alone.tables[name])


# The checks, for the other reference comparisons (tests/test_allocation_midsize.py).
close, levels_from_tables, table_problems = _close, _levels_from_tables, _table_problems


def test_a_decomposed_run_hands_its_plan_over_before_the_later_levels_are_bounded():
    """``with_plan`` gets the run's final allocations while the levels after red still have no
    bound (the bounds come after, beside whatever the caller started), once; a run that is not
    decomposed hands its plan over after the allocation."""
    scenario = Scenario.from_tables(random_scenario(MULTI_DISTRICT[0]))
    for decompose in ("always", "never"):
        seen = []

        def early(plan, seen=seen):
            seen.append((plan.tables["allocations"].copy(), plan.info["status"],
                         [lv.bound for lv in plan.result.levels]))

        run = run_allocation(scenario, params=AllocationParams(decompose=decompose, workers=1),
                             with_plan=early)
        assert len(seen) == 1, decompose
        allocations, status, bounds = seen[0]
        pd.testing.assert_frame_equal(allocations, run.tables["allocations"])
        assert status == run.info["status"]
        later = dict(zip([lv.name for lv in run.result.levels], bounds, strict=True))
        if decompose == "always":
            assert run.info["decomposition"]["parts"] > 1
            assert all(math.isnan(later[t]) for t in TIER_LEVELS[1:])
            assert all(math.isfinite(run.info["levels"][t]["bound"]) for t in TIER_LEVELS[1:])
        else:
            assert run.info["decomposition"] is None
