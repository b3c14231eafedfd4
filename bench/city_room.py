"""Where the room between a street-by-street plan and its bounds comes from (issue 14, item 1).

On a cut-down city (the city preset's shape — city funds, district funds, offers shared by the
streets — on a few districts) this runs:

* the plan as the city gets it (``allocate_by_district``, street by street) with its bounds;
* the whole model as one lexicographic solve (``decompose="never"``): the values a plan can
  reach when nothing is split, each with its own bound;
* for each level after red, the whole exact model with the earlier colours held at the
  values the plan reached, as an LP and as a MIP (HiGHS, time-limited: its best answer and
  its dual bound).

Per level that gives ``value ≤ best given the plan's earlier values (MIP) ≤ its LP ≤ the
reported bound``: what lies between the value and the MIP's answer is the plan's, between
the MIP's bound and the LP integrality's, between the LP and the reported bound the
relaxation's (the aggregate's group caps, the priced bound's prices).

    python -m bench.city_room [--districts 2] [--households 12000] [--seed 0]
                              [--mip-seconds 150]
"""

from __future__ import annotations

import argparse
import time

import highspy
import numpy as np

from wulian.optimizer.allocation import (
    TIER_LEVELS,
    AllocationInput,
    AllocationParams,
    allocate,
    build_levels,
    build_model,
    prepare_needs,
)
from wulian.optimizer.decompose import allocate_by_district
from wulian.optimizer.dual_bound import dual_bound
from wulian.optimizer.lexmip import csr, new_highs
from wulian.planning import generate
from wulian.planning.allocate import allocation_input
from wulian.planning.scenario import Scenario

HOLD = 1e-9  # the slack a held value row gets (as the bounds' own, BOUND_SLACK)


def cut_down_city(districts: int, households: int, seed: int) -> AllocationInput:
    """The city preset's shape on its first ``districts`` districts: its six city funds,
    two district funds and about 80 offers a district, one volunteer per ten households."""
    ids = tuple(f"D{k:02d}" for k in range(1, districts + 1))
    generate.PRESETS["city_cut"] = generate.Preset(
        "city_cut", f"the city's shape on {districts} districts", ids, None, None,
        households=households, needs_per_household=1.67, offers=80 * districts,
        city_funds=6, district_funds=2 * districts, ngos=4, volunteers=households // 10)
    return allocation_input(Scenario.from_tables(generate.generate_scenario("city_cut", seed)))


def held_optimum(data: AllocationInput, level: str, reached: dict[str, float], *,
                 integer: bool, seconds: float) -> tuple[float, float, str]:
    """(best value found, bound, HiGHS status) of ``level`` over the whole exact model with
    every colour before it held at ``reached`` (LP, or MIP when ``integer``)."""
    needs = prepare_needs(data)
    built = build_model(data, needs)
    model, rows = built.model, built.rows
    cost = {lv.name: lv.cost for lv in build_levels(needs, model)}
    n_cols = len(model.need) + len(needs)
    # One thread: HiGHS keeps one scheduler per process, set by the first solve (the runs
    # above used one), and refuses to run an instance asking for another size.
    h = new_highs(1, seconds, 0)
    h.setOptionValue("mip_rel_gap", 1e-6)
    h.addVars(n_cols, np.concatenate([model.lower, np.zeros(len(needs))]),
              np.concatenate([model.upper, needs["base_quantity"].to_numpy(float)]))
    starts, col, val, _ = csr(rows, n_cols)
    inf = highspy.kHighsInf
    lower, upper = np.concatenate(rows.lower), np.concatenate(rows.upper)
    h.addRows(rows.count, np.where(np.isfinite(lower), lower, -inf),
              np.where(np.isfinite(upper), upper, inf), len(val), starts, col, val)
    before = TIER_LEVELS if level == "money" else TIER_LEVELS[:TIER_LEVELS.index(level)]
    for colour in before:
        cols = np.flatnonzero(cost[colour])
        value = reached[colour]
        h.addRow(value - HOLD * max(1.0, abs(value)), inf, len(cols), cols.astype(np.int32),
                 cost[colour][cols])
    sign = -1.0 if level == "money" else 1.0
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.changeColsCost(n_cols, np.arange(n_cols, dtype=np.int32), sign * cost[level])
    if integer:
        h.changeColsIntegrality(n_cols, np.arange(n_cols, dtype=np.int32),
                                np.ones(n_cols, np.uint8))
    h.run()
    info = h.getInfo()
    found = info.objective_function_value if info.primal_solution_status else sign * np.inf
    bound = info.mip_dual_bound if integer else dual_bound(h, maximise=True)
    return sign * found, sign * bound, h.modelStatusToString(h.getModelStatus())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.city_room")
    parser.add_argument("--districts", type=int, default=2)
    parser.add_argument("--households", type=int, default=12_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mip-seconds", type=float, default=150.0)
    args = parser.parse_args(argv)
    data = cut_down_city(args.districts, args.households, args.seed)
    print(f"cut-down city: {args.districts} districts, seed {args.seed}: {len(data.needs):,} "
          f"needs, {len(data.offers):,} offers, {len(data.funds)} funds")
    start, cpu = time.perf_counter(), time.process_time()
    plan, info = allocate_by_district(data, AllocationParams(workers=1, decompose_by="street"))
    print(f"street by street: {time.perf_counter() - start:.1f} s wall, "
          f"{time.process_time() - cpu:.1f} s CPU; bounds {info['bound_methods']}")
    start, cpu = time.perf_counter(), time.process_time()
    whole = allocate(data, AllocationParams(workers=1, decompose="never"))
    print(f"whole model: {time.perf_counter() - start:.1f} s wall, "
          f"{time.process_time() - cpu:.1f} s CPU")
    reached = {lv.name: lv.value for lv in plan.levels}
    for k, lv in enumerate(plan.levels[:len(TIER_LEVELS) + 1]):
        other = whole.levels[k]
        print(f"{lv.name:<7} plan {lv.value:,.4f}  reported bound {lv.bound:,.4f} "
              f"(gap {100 * lv.gap:.3f} %)  whole model {other.value:,.4f} "
              f"(bound {other.bound:,.4f}, {other.status})")
        if k == 0:
            continue
        lp = held_optimum(data, lv.name, reached, integer=False, seconds=args.mip_seconds)
        mip = held_optimum(data, lv.name, reached, integer=True, seconds=args.mip_seconds)
        print(f"        earlier colours held at the plan's: LP {lp[1]:,.4f}; MIP best "
              f"{mip[0]:,.4f}, bound {mip[1]:,.4f} ({mip[2]})")


if __name__ == "__main__":
    main()
