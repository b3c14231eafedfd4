"""One plan for the week (issue 19): the allocation alone against the allocation with the
volunteer matching in rounds (``planning.match.plan_week``), in the same process, one after
the other.

Usage::

    python -m bench.plan [--preset district|city] [--data DIR]

Printed: the wall seconds of each and their ratio (issue 19's target: ≤ 2× the allocation
alone on the city week; the district's allocation and matching ≤ 10 s), the rounds (service
visits promised, left unplaced, seconds of the allocation and of the matching), the
allocation's colour levels with and without the matching's limits, and the final matching's
proof. The machine's load average is printed before and after: on a shared machine the times
move with it.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from bench import preset_folder
from bench.match import loadavg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="district", choices=("district", "city"))
    parser.add_argument("--data", default=None, help="a folder holding the preset")
    args = parser.parse_args(argv)

    from wulian.planning.allocate import run_allocation
    from wulian.planning.match import plan_week
    from wulian.planning.scenario import load_scenario

    tmp = tempfile.mkdtemp(prefix="wulian-plan-")
    folder = preset_folder(args.preset, args.data, tmp)
    print(f"preset {args.preset} ({folder}); load average before: {loadavg()}")
    scenario = load_scenario(folder)
    start = time.perf_counter()
    alone = run_allocation(scenario)
    t_alone = time.perf_counter() - start
    start = time.perf_counter()
    plan = plan_week(scenario)
    t_plan = time.perf_counter() - start
    print(f"allocation alone: {t_alone:.1f} s; allocation with matching (one plan): "
          f"{t_plan:.1f} s; ratio {t_plan / t_alone:.2f}×")
    print("round  service visits  unplaced  allocation s  matching s")
    for r in plan.rounds:
        print(f"{r['round']:>5}  {r['service_visits']:>14,}  {r['unplaced_service_visits']:>8,}"
              f"  {r['allocation_seconds']:>12.1f}  {r['matching_seconds']:>10.1f}")
    print("level      alone           one plan        (allocation's value; the plan's "
          "allocation has the matching's limits)")
    for a, b in zip(alone.result.levels, plan.run.result.levels, strict=True):
        print(f"{a.name:<10} {a.value:>14,.3f}  {b.value:>14,.3f}  {b.status}")
    print(f"matching: {plan.match.info['proof']['words_en']}")
    print(f"load average after: {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
