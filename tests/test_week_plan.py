"""One plan for the week (issue 19), checked from the output tables: every volunteer service
visit the allocation's packages promise is placed by the matching, a red monitoring visit is
never left out while a lower colour's visit that its volunteer could have swapped for it is
placed, and reasons stay true — on seeded scenarios where volunteer hours are scarce."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from scenario_factory import WEEK, random_scenario

from reference import allocation as ref_alloc
from reference import matching as ref
from reference import week as ref_week
from wulian.contract import vocab
from wulian.planning.match import plan_week, reconciled_tables
from wulian.planning.scenario import Scenario

# Seeds whose first allocation promises volunteer visits the matching cannot all place once
# hours are cut to a third (checked in test_scarce_hours_are_scarce).
SCARCE_SEEDS = (1, 2, 3, 4, 5, 8, 10, 11)


@functools.cache
def scarce(seed: int) -> Scenario:
    """A seeded scenario with every volunteer's hours cut to a third (at least one hour) and
    more volunteers, so that pools over-promise and monitoring competes with services."""
    tables = random_scenario(seed, volunteers=8, households=30)
    vols = tables["volunteers"]
    vols["max_hours"] = np.maximum(np.floor(vols["max_hours"].to_numpy(float) / 3), 1.0)
    return Scenario.from_tables(tables)


# How plan_week plans: the combined week as one model first (small weeks, as these), or
# the rounds of allocation and matching alone (the district and the city).
MODES = ("combined", "rounds")


@functools.cache
def planned(seed: int, mode: str = "combined"):
    return plan_week(scarce(seed), combined_columns=0 if mode == "rounds" else None)


def test_scarce_hours_are_scarce():
    """The scenarios test something: on most of them the rounds' first matching leaves
    promised service visits unplaced, so the rounds had work to do; and the combined model
    was small enough, and proven, on every one of them."""
    busy = [seed for seed in SCARCE_SEEDS
            if planned(seed, "rounds").rounds[0]["unplaced_service_visits"] > 0]
    assert len(busy) >= len(SCARCE_SEEDS) // 2, busy
    for seed in SCARCE_SEEDS:
        assert planned(seed).run.info["combined_week"]["proven"], seed
        assert "combined_week" not in planned(seed, "rounds").run.info


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", SCARCE_SEEDS)
def test_every_promised_service_visit_is_placed(seed, mode):
    """From the tables: the allocation's volunteer-pool units of each need equal the units of
    its placed visits, no service visit is unplaced, and reconciling changes nothing."""
    sc, plan = scarce(seed), planned(seed, mode)
    alloc = plan.run.tables["allocations"]
    _assert_pool_units_placed(alloc, plan.match.visits)
    assert not (plan.match.unplaced["need_id"] != "").any()
    again = reconciled_tables(sc, plan.run, plan.match)
    assert again["allocations"]["units"].sum() == pytest.approx(alloc["units"].sum())
    assert plan.match.info["rounds"][-1]["unplaced_service_visits"] == 0


def _assert_pool_units_placed(alloc: pd.DataFrame, visits: pd.DataFrame) -> None:
    """Each need's volunteer-pool units in ``alloc`` are the units of its placed service
    visits, and no need has placed visits without pool units."""
    pool = alloc[alloc["source_kind"] == "volunteer_pool"].groupby("need_id")["units"].sum()
    placed = visits[(visits["need_id"] != "") & (visits["volunteer_id"] != "")]
    got = placed.groupby("need_id")["units"].sum()
    assert got.reindex(pool.index, fill_value=0.0).to_numpy() == pytest.approx(pool.to_numpy())
    assert set(got.index) <= set(pool.index)


def _rank(tier: str, urgency: int) -> tuple[int, int]:
    return vocab.TIER_ORDER.index(tier), -int(urgency)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", SCARCE_SEEDS)
def test_red_monitoring_is_never_displaced(seed, mode):
    """No unplaced red visit (monitoring or not) could take the place of a placed visit of a
    lower class: its volunteer qualifies, lives within reach, and would keep within their
    hours after the swap (the freed slot is theirs)."""
    sc, plan = scarce(seed), planned(seed, mode)
    visits = plan.match.visits
    vols = sc.volunteers.set_index("volunteer_id")
    hours = visits[visits["volunteer_id"] != ""].groupby("volunteer_id")["hours"].sum()
    red_left = visits[(visits["volunteer_id"] == "") & (visits["tier"] == "red")]
    placed = visits[visits["volunteer_id"] != ""]
    for miss in red_left.itertuples(index=False):
        lower = placed[[_rank(t, u) > _rank(miss.tier, miss.urgency)
                        for t, u in zip(placed["tier"], placed["urgency"], strict=True)]]
        for row in lower.itertuples(index=False):
            vol = vols.loc[row.volunteer_id]
            ok, _ = ref.admissible(miss, vol)
            fits = hours[row.volunteer_id] - row.hours + miss.hours <= vol["max_hours"] + 1e-9
            assert not (ok and fits), (miss.visit_id, row.visit_id, row.volunteer_id)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", SCARCE_SEEDS)
def test_hours_exhausted_only_after_other_sources(seed, mode):
    """A need unmet with a matching reason (no volunteer had the time, …) had no other source
    left: every offer that may serve it (the independent reference's admissible arcs) is full,
    its fund cannot pay one more unit, or it is capped for the household — recomputed from the
    final allocations table."""
    sc, plan = scarce(seed), planned(seed, mode)
    unmet = plan.run.tables["unmet"]
    short = set(unmet.loc[unmet["reason"].isin(vocab.MATCHING_REASONS), "need_id"])
    if not short:
        return
    spec = ref_alloc.build(sc)
    alloc = plan.run.tables["allocations"]
    offer_rows = alloc[alloc["source_kind"] == "offer"]
    used = offer_rows.groupby("source_id")["units"].sum()
    spent = alloc[alloc["fund_id"] != ""].groupby("fund_id")["cost"].sum()
    household = offer_rows["need_id"].map({n: spec.needs[n].household_id for n in spec.needs})
    got = offer_rows.groupby([household, offer_rows["source_id"]])["units"].sum()
    charged = alloc[alloc["fund_id"] != ""]
    hh_paid = charged.groupby([charged["need_id"].map(
        {n: spec.needs[n].household_id for n in spec.needs}), charged["fund_id"]])["cost"].sum()
    for arc in spec.arcs:
        if arc.kind != "offer" or arc.need_id not in short:
            continue
        need, offer = spec.needs[arc.need_id], spec.offers[arc.source_id]
        left = offer.capacity - used.get(offer.offer_id, 0.0) * need.scale
        full = left < 1 - 1e-6
        capped = offer.max_per_household is not None and \
            got.get((need.household_id, offer.offer_id), 0.0) * need.scale \
            >= offer.max_per_household - 1e-6
        broke = False
        if offer.fund_id:
            fund = spec.funds[offer.fund_id]
            broke = fund.budget - spent.get(offer.fund_id, 0.0) < offer.cost_per_base - 1e-6
            paid = hh_paid.get((need.household_id, offer.fund_id), 0.0)
            capped = capped or (fund.max_per_household is not None and
                                paid > fund.max_per_household - offer.cost_per_base + 1e-6)
        assert full or capped or broke, (arc.need_id, offer.offer_id, left)


def test_reasons_name_the_volunteers_when_pools_were_limited():
    """Across the seeds, needs the matching limited carry a matching reason, not
    ``capacity_exhausted``, in the final tables (unmet and plans agree)."""
    seen = 0
    for seed in SCARCE_SEEDS:
        plan = planned(seed, "rounds")  # the combined model loses no visit to a reason
        unmet = plan.run.tables["unmet"]
        need_reason = plan.run.result.need_served.set_index("need_id")["reason"]
        for row in unmet.itertuples(index=False):
            assert need_reason[row.need_id] == row.reason
        seen += int(unmet["reason"].isin(vocab.MATCHING_REASONS).sum())
    assert seen > 0


def test_demo_promises_only_what_the_matching_places(tmp_path):
    """The district demo through `wulian match`: from the tables it writes, every need's
    volunteer-pool units in ``allocations`` are the units of its placed visits in
    ``assignments``, and ``unplaced`` holds no service visit."""
    import json

    from wulian.api.cli import main
    from wulian.data import demo_folder

    assert main(["match", str(demo_folder()), "--out", str(tmp_path),
                 "--store", f"sqlite:///{tmp_path / 'runs.sqlite'}"]) == 0
    read = lambda name: pd.read_csv(tmp_path / f"{name}.csv", encoding="utf-8-sig",  # noqa: E731
                                    keep_default_na=False)
    alloc, assignments, unplaced = read("allocations"), read("assignments"), read("unplaced")
    services = pd.read_csv(demo_folder() / "services.csv", encoding="utf-8-sig").set_index(
        "service_id")
    service = assignments[assignments["need_id"] != ""]
    units = np.where(service["service_id"].map(services["unit"]) == "hour", service["hours"], 1.0)
    got = pd.Series(units, index=service.index).groupby(service["need_id"]).sum()
    pool = alloc[alloc["source_kind"] == "volunteer_pool"].groupby("need_id")["units"].sum()
    assert len(pool) > 100
    assert got.reindex(pool.index, fill_value=0.0).to_numpy() == pytest.approx(pool.to_numpy())
    assert set(got.index) <= set(pool.index)
    assert (unplaced["need_id"] == "").all()
    info = json.loads((tmp_path / "match.json").read_text(encoding="utf-8"))
    assert info["rounds"][-1]["unplaced_service_visits"] == 0
    assert info["rounds"][0]["unplaced_service_visits"] > 0  # the rounds had work to do
    # A guess, then held rounds that keep what the earlier placed: two rounds on the demo
    # when measured (docs/matching.md, "One plan"); three allowed for a kept plan refused.
    assert info["rounds"][0]["guess"] and len(info["rounds"]) <= 3
    red = [name for name in info["levels"] if name.startswith("cover:red")]
    assert red and all(name in info["proof"]["proven"] for name in red)
    # Travel within 1 % of a bound over every pair (the pattern LP, docs/matching.md,
    # "Session 15"); the bound itself is checked against the independent model on small
    # cases (tests/test_matching.py).
    travel = info["levels"]["travel"]
    assert travel["bound"] <= travel["value"] <= 1.01 * travel["bound"]


# (Seeds 2 and 3 are cut into streets when asked; seed 1 has one street with needs.)
@pytest.mark.parametrize(("seed", "decompose"), [(1, "auto"), (2, "auto"), (3, "auto"),
                                                 (2, "always"), (3, "always")])
def test_pool_caps_hold_a_need_to_what_was_placed(seed, decompose):
    """``volunteer_limits``: a need capped at 0 takes nothing from volunteer pools, a need
    capped at 1 at most one unit, and a tighter model never serves red better — also when
    the city's model is cut into streets (each part carries only its own needs' caps)."""
    from wulian.optimizer.allocation import AllocationParams
    from wulian.planning.allocate import run_allocation

    sc = Scenario.from_tables(random_scenario(seed))
    params = AllocationParams(decompose=decompose, workers=1, decompose_by="street")
    free = run_allocation(sc, params=params)
    alloc = free.tables["allocations"]
    pool = alloc[alloc["source_kind"] == "volunteer_pool"].groupby("need_id")["units"].sum()
    assert len(pool), "the seed serves from volunteer pools"
    zero = pool.index[0]
    others = pool.drop(zero)
    several = others[others > 1.0]  # (a cap of one unit that binds, where there is one)
    one = (several if len(several) else others).index[-1]
    capped = run_allocation(sc, params=params, volunteer_limits=({}, {zero: 0.0, one: 1.0}))
    if decompose == "always":
        assert capped.info["decomposition"]["parts"] >= 2
    rows = capped.tables["allocations"]
    rows = rows[rows["source_kind"] == "volunteer_pool"]
    assert zero not in set(rows["need_id"])
    assert rows.loc[rows["need_id"] == one, "units"].sum() <= 1.0 + 1e-9
    red = {lv.name: lv.value for lv in free.result.levels}["red"]
    assert {lv.name: lv.value for lv in capped.result.levels}["red"] <= red + 1e-6


@pytest.mark.parametrize("by", ["street", "district"])
@pytest.mark.parametrize("seed", [2, 3])
def test_hours_a_pool_lost_hold_in_its_part(seed, by):
    """``volunteer_limits``' hours a pool lost (the matching found them missing) hold when the
    city's model is cut into parts, each carrying only its own pools' hours: a pool all of
    whose hours are gone gives nothing, nor do its street's other pools (a volunteer's hours
    count once across their street's pools)."""
    from wulian.optimizer.allocation import AllocationParams
    from wulian.planning.allocate import run_allocation

    sc = Scenario.from_tables(random_scenario(seed))
    params = AllocationParams(decompose="always", workers=1, decompose_by=by)
    free = run_allocation(sc, params=params)
    pools = free.result.pool_use.set_index("pool_id")
    used = pools["used"].sort_values(kind="stable")
    pool = used.index[-1]  # the pool most used
    assert used[pool] > 0
    short = run_allocation(sc, params=params, volunteer_limits=({pool: 10_000.0}, {}))
    assert short.info["decomposition"]["parts"] >= 2
    rows = short.tables["allocations"]
    street = pools.loc[pool, "street"]
    assert rows[rows["source_id"].str.startswith(f"pool:{street}:")].empty


# ------------------------------------------------------------------ held rounds keep placements


def _held_round(seed: int, drop: int):
    """Scenario ``seed`` (volunteers' hours as generated) with every in-person need served in
    full from volunteer pools, matched (the earlier round); then each need's pool units cut to
    what was placed and ``drop`` needs' taken away (a held round's visits: a part of what
    was placed):
    (scenario, earlier match, stand-in run of the held round)."""
    from types import SimpleNamespace

    from wulian.planning.match import run_matching

    sc = Scenario.from_tables(random_scenario(seed, volunteers=24, households=30))
    in_person = sc.services.loc[sc.services["delivery"] == "in_person", "service_id"]
    needs = sc.needs[sc.needs["service_id"].isin(in_person) & (sc.needs["week"] == WEEK)]

    def stand_in(units: pd.Series):
        alloc = pd.DataFrame({"need_id": units.index, "source_kind": "volunteer_pool",
                              "source_id": "pool", "units": units.to_numpy(float)})
        return SimpleNamespace(tables={"allocations": alloc[alloc["units"] > 0]},
                               info={"parameters": {}})

    first = run_matching(sc, stand_in(needs.set_index("need_id")["quantity"]), week=WEEK)
    visits = first.visits
    placed = visits[(visits["need_id"] != "") & (visits["volunteer_id"] != "")]
    got = placed.groupby("need_id")["units"].sum()
    return sc, first, stand_in(got.iloc[drop:])


@pytest.mark.parametrize("seed,drop", [(3, 0), (5, 1), (9, 0), (11, 1), (12, 0)])
def test_held_round_starts_from_what_was_placed(seed, drop):
    """A held round's service visits are a part of what the earlier round placed. Started
    from those placements, the matching places every one of them unless a plan better for a
    higher class exists (it places more of that class than the start-based plan could); it
    is never lexicographically worse than without the start; and its bounds (its own plan's)
    hold against the independent model. The heuristic is forced (no CP-SAT), which without
    the start loses some of these visits on every seed here."""
    from test_matching import _check_bounds  # noqa: PLC2701 (the suite's own check)

    from wulian.optimizer.visits import MatchParams
    from wulian.planning.match import run_matching

    params = MatchParams(cp_sat_below=0)

    sc, first, held = _held_round(seed, drop)
    previous = first.visits[(first.visits["need_id"] != "") & (first.visits["volunteer_id"] != "")]
    assert len(previous), "the seed places service visits"
    free = run_matching(sc, held, week=WEEK, params=params)
    started = run_matching(sc, held, week=WEEK, params=params,
                           keep=previous[["visit_id", "volunteer_id", "hours"]])
    cover = lambda m: [lv.value for lv in m.levels if lv.name.startswith("cover:")]  # noqa: E731
    assert cover(started) >= cover(free)
    service = started.visits[started.visits["need_id"] != ""]
    assert len(service)
    if (service["volunteer_id"] == "").any():
        assert cover(started) > cover(free)
    lost = lambda m: ((m.visits["need_id"] != "") & (m.visits["volunteer_id"] == "")).sum()  # noqa: E731
    assert lost(free) > 0 and lost(started) == 0  # measured on these seeds
    visits = started.visits.drop(columns=["volunteer_id", "slot", "km", "reason"])
    _check_bounds(visits, sc.volunteers, started)


@pytest.mark.parametrize("seed,drop", [(3, 0), (5, 1), (12, 0)])
def test_a_start_whose_coverage_differs_is_decided_before_polishing(seed, drop, monkeypatch):
    """Polishing (travel, then continuity) keeps each class's visits, so when a held round's
    start and the heuristic's own plan differ in coverage (they do on these seeds) only the
    plan kept is polished: one polish per component, not two, and the same plan as when
    both are polished before they are compared."""
    from wulian.optimizer.visits import MatchParams
    from wulian.optimizer.visits import solve as solve_module
    from wulian.planning.match import run_matching

    sc, first, held = _held_round(seed, drop)
    previous = first.visits[(first.visits["need_id"] != "") & (first.visits["volunteer_id"] != "")]
    keep = previous[["visit_id", "volunteer_id", "hours"]]
    params = MatchParams(cp_sat_below=0, part_workers=1)  # the heuristic, in this process
    calls = {"polish": 0, "heuristic": 0}
    polish, heuristic, displace = (solve_module.polish, solve_module.heuristic_plan,
                                   solve_module.displace_component)

    def counted(name, fn):
        def call(*args):
            calls[name] += 1
            return fn(*args)
        return call

    monkeypatch.setattr(solve_module, "polish", counted("polish", polish))
    monkeypatch.setattr(solve_module, "heuristic_plan", counted("heuristic", heuristic))
    started = run_matching(sc, held, week=WEEK, params=params, keep=keep)
    assert calls["heuristic"] and calls["polish"] == calls["heuristic"]
    # Both plans polished before the comparison (polishing a polished plan changes nothing).
    monkeypatch.setattr(solve_module, "displace_component",
                        lambda comp, pairs, x: polish(comp, pairs, displace(comp, pairs, x)))
    both = run_matching(sc, held, week=WEEK, params=params, keep=keep)
    pd.testing.assert_frame_equal(started.assignments, both.assignments)
    assert [lv.value for lv in started.levels] == [lv.value for lv in both.levels]


def test_start_is_paired_by_order_within_a_need():
    """start_from: the k-th service visit of a need this round takes the volunteer of the
    k-th kept visit of that need (ids may shift when a visit in the middle was lost), never a
    longer visit than the kept one; monitoring visits and needs not kept get none."""
    from wulian.planning.match import start_from

    visits = pd.DataFrame({
        "visit_id": ["N1#1", "N1#2", "monitor:H1", "N2#1", "N3#1"],
        "need_id": ["N1", "N1", "", "N2", "N3"],
        "hours": [2.0, 1.0, 1.0, 2.0, 3.0]})
    keep = pd.DataFrame({"visit_id": ["N1#1", "N1#3", "N3#1"], "volunteer_id": ["V1", "V2", "V3"],
                         "hours": [2.0, 1.0, 2.0]})
    assert list(start_from(visits, keep)) == ["V1", "V2", "", "", ""]


@pytest.mark.parametrize("seed", SCARCE_SEEDS[:4])
def test_only_needs_with_a_pool_are_held(seed):
    """The rounds hold (and may relabel the shortfall of) only needs with a volunteer-pool
    arc: the same needs as the independent reference's pool arcs; a need without one keeps the
    allocation's own reason."""
    from wulian.planning.match import pool_needs_of

    sc = scarce(seed)
    spec = ref_alloc.build(sc)
    with_pool = {a.need_id for a in spec.arcs if a.kind == "volunteer_pool"}
    assert set(pool_needs_of(sc, None, None)) == with_pool
    assert plan_week(sc).run.info["volunteer_limits"]["needs_capped"] <= len(with_pool)


# ------------------------------------------------- the combined week, formulated independently


def _week_levels(sc: Scenario, plan, due: dict[str, str]) -> dict[str, float]:
    """A plan's colour levels read from its output tables: per colour, the due households a
    placed visit reaches (``assignments``), and the coverage of the colour's needs by every
    source (``allocations``: urgency ÷ quantity per unit served, in base units)."""
    spec = ref_alloc.build(sc)
    levels = dict.fromkeys((f"{c}:{part}" for c in ref_week.COLOURS
                            for part in ("monitoring", "coverage")), 0.0)
    for household in set(plan.match.assignments["household_id"]):
        if household in due:
            levels[f"{due[household]}:monitoring"] += 1
    for row in plan.run.tables["allocations"].itertuples(index=False):
        need = spec.needs[row.need_id]
        levels[f"{need.tier}:coverage"] += need.urgency / need.quantity * row.units * need.scale
    return levels


def _first_difference(got: dict[str, float], best: dict[str, float]) -> tuple[str, float,
                                                                              float] | None:
    for name, value in best.items():  # in the reference's lexicographic order
        if abs(got[name] - value) > 1e-6:
            return name, got[name], value
    return None


# Seeds of a few dozen households and volunteers (hours cut to a third as above) besides
# SCARCE_SEEDS: (households, volunteers, seed).
LARGER = ((40, 24, 0), (40, 24, 3), (40, 24, 7))


@functools.cache
def scarce_of(households: int, volunteers: int, seed: int) -> Scenario:
    tables = random_scenario(seed, volunteers=volunteers, households=households)
    vols = tables["volunteers"]
    vols["max_hours"] = np.maximum(np.floor(vols["max_hours"].to_numpy(float) / 3), 1.0)
    return Scenario.from_tables(tables)


@pytest.mark.parametrize("size", [(30, 8, seed) for seed in SCARCE_SEEDS] + list(LARGER))
def test_combined_week_agrees_with_an_independent_formulation(size):
    """wulian's plan (``plan_week``) reaches, at every colour level, the lexicographic
    optimum of the combined week as ``reference/week.py`` formulates it independently (one
    MIP: allocation, each visit by a named volunteer in a named slot, monitoring; HiGHS
    proves each level): red monitoring, red coverage, orange monitoring, … green coverage."""
    sc = scarce_of(*size)
    best = ref_week.solve_week(sc, WEEK)
    plan = plan_week(sc)
    assert _first_difference(_week_levels(sc, plan, best.due), best.levels) is None
    assert not (plan.match.unplaced["need_id"] != "").any()


def test_the_rounds_alone_fall_short_of_the_combined_optimum():
    """The comparison can fail: the rounds of allocation and matching alone (no combined
    model) end lexicographically below the independent optimum on some of these seeds (a
    two-hour visit the matching cannot place is taken away whole, where one hour fits; a
    monitoring visit placed where a service visit would also have monitored)."""
    short = []
    for seed in SCARCE_SEEDS:
        sc = scarce(seed)
        best = ref_week.solve_week(sc, WEEK)
        diff = _first_difference(_week_levels(sc, planned(seed, "rounds"), best.due),
                                 best.levels)
        if diff is not None:
            assert diff[1] < diff[2], (seed, diff)  # never above a proven optimum
            short.append(seed)
    assert short, "the rounds reached the optimum on every seed"


@pytest.mark.parametrize("seed", (2, 8))
def test_the_plan_stops_on_no_clock(seed, monkeypatch):
    """The rounds (a guess, the settling, held rounds) give the same plan when every clock
    reading is an hour after the one before as at the machine's own pace: the settling is
    capped by its count and the held rounds' allocation searches nothing by the clock, so
    the plan does not depend on the machine's load (DESIGN §2). On these seeds the settling
    runs, so a cap by time would have stopped it."""
    import time

    normal = planned(seed, "rounds")
    assert any(r.get("settling_matchings") for r in normal.rounds)
    now = [time.perf_counter()]

    def slow_clock() -> float:
        now[0] += 3600.0
        return now[0]

    monkeypatch.setattr(time, "perf_counter", slow_clock)
    slow = plan_week(scarce(seed), combined_columns=0)
    monkeypatch.undo()
    steps = lambda plan: [{k: v for k, v in r.items() if not k.endswith("seconds")}  # noqa: E731
                          for r in plan.rounds]
    assert steps(slow) == steps(normal)
    pd.testing.assert_frame_equal(slow.run.tables["allocations"],
                                  normal.run.tables["allocations"])
    pd.testing.assert_frame_equal(slow.match.assignments, normal.match.assignments)
    levels = lambda plan: [(lv.value, lv.bound) for lv in plan.run.result.levels]  # noqa: E731
    np.testing.assert_allclose(levels(slow), levels(normal), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("seed", (2, 8))
def test_a_week_too_large_to_settle_plays_one_held_round(seed, monkeypatch):
    """A week whose matching has more visits than the settling may match in all
    (``SETTLE_VISITS``; a city's) neither settles nor plays a held round after the first:
    the guess, then one held round, whose visits are a part of what the guess placed; what
    its matching still leaves unplaced is reconciled, so the packages, recomputed from the
    reconciled tables, are the visits placed. On these seeds the settling runs otherwise."""
    from wulian.planning import match as plan_module

    normal = planned(seed, "rounds")
    assert any(r.get("settling_matchings") for r in normal.rounds)
    monkeypatch.setattr(plan_module, "SETTLE_VISITS", 1)
    plan = plan_week(scarce(seed), combined_columns=0)
    assert [r["guess"] for r in plan.rounds] == [True, False]
    assert not any("settling_matchings" in r for r in plan.rounds)
    guess = lambda r: {k: v for k, v in r.items()  # noqa: E731
                       if not k.endswith("seconds") and not k.startswith("settl")}
    assert guess(plan.rounds[0]) == guess(normal.rounds[0])  # the same guess
    tables = reconciled_tables(scarce(seed), plan.run, plan.match)
    _assert_pool_units_placed(tables["allocations"], plan.match.visits)


@pytest.mark.parametrize("seed", (2, 8))
def test_the_rounds_in_one_pool_plan_as_in_this_process(seed):
    """The rounds' allocations (cut into streets) and matchings in one process pool of two
    workers (as a city's: ``rounds_pool``) give the plan they give in this process alone:
    the same allocations, the same visits with the same volunteers, the same rounds."""
    from dataclasses import replace

    from wulian.optimizer.visits import MatchParams
    from wulian.planning.match import PLAN_ALLOCATION

    def plan(workers: int):
        params = replace(PLAN_ALLOCATION, decompose="always", decompose_by="street",
                         workers=workers)
        return plan_week(scarce(seed), combined_columns=0, params=params,
                         match_params=MatchParams(part_workers=workers))

    alone, pooled = plan(1), plan(2)
    assert pooled.run.info["decomposition"]["parts"] >= 2
    assert len(pooled.rounds) >= 2  # (a later round's allocation in the pool too)
    pd.testing.assert_frame_equal(pooled.run.tables["allocations"],
                                  alone.run.tables["allocations"])
    columns = ["visit_id", "need_id", "volunteer_id", "slot"]
    pd.testing.assert_frame_equal(pooled.match.visits[columns], alone.match.visits[columns])
    seconds = lambda r: {k: v for k, v in r.items() if not k.endswith("seconds")}  # noqa: E731
    assert [seconds(r) for r in pooled.rounds] == [seconds(r) for r in alone.rounds]
    # In the pool, a round's matching runs beside its allocation's bounds: the levels, their
    # bounds and proofs are the same as those bounded before the matching in this process.
    levels = lambda plan: pd.DataFrame(  # noqa: E731
        [(lv.name, lv.value, lv.bound, str(lv.status)) for lv in plan.run.result.levels])
    pd.testing.assert_frame_equal(levels(pooled), levels(alone))
