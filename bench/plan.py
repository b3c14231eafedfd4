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

from bench import children_cpu, preset_folder
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
    start, cpu, kids = time.perf_counter(), time.process_time(), children_cpu()
    alone = run_allocation(scenario)
    t_alone, c_alone = time.perf_counter() - start, time.process_time() - cpu
    k_alone = children_cpu() - kids
    start, cpu, kids = time.perf_counter(), time.process_time(), children_cpu()
    plan = plan_week(scenario)
    t_plan, c_plan = time.perf_counter() - start, time.process_time() - cpu
    k_plan = children_cpu() - kids
    print(f"allocation alone: {t_alone:.1f} s ({c_alone:.1f} s CPU + {k_alone:.1f} s in "
          f"workers); allocation with matching (one plan): {t_plan:.1f} s ({c_plan:.1f} s CPU + "
          f"{k_plan:.1f} s in workers); ratio {t_plan / t_alone:.2f}× "
          f"({(c_plan + k_plan) / (c_alone + k_alone):.2f}× in CPU with the workers')")
    print("round  guess  service visits  unplaced  allocation s  matching s  settling: "
          "matchings, s, unplaced in all")
    for r in plan.rounds:
        settle = (f"  {r['settling_matchings']:>9}  {r['settling_seconds']:>4.1f}  "
                  f"{r['settled_unplaced_service_visits']:>6,}" if "settling_matchings" in r
                  else "")
        print(f"{r['round']:>5}  {'yes' if r.get('guess') else 'no':>5}  "
              f"{r['service_visits']:>14,}  {r['unplaced_service_visits']:>8,}"
              f"  {r['allocation_seconds']:>12.1f}  {r['matching_seconds']:>10.1f}{settle}")
    print("level      alone           one plan        (allocation's value; the plan's "
          "allocation has the matching's limits)")
    for a, b in zip(alone.result.levels, plan.run.result.levels, strict=True):
        print(f"{a.name:<10} {a.value:>14,.3f}  {b.value:>14,.3f}  {b.status}")
    print(f"matching: {plan.match.info['proof']['words_en']}")
    print(f"load average after: {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
