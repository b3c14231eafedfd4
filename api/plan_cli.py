"""``wulian plan``: the quarterly plan from the command line (a thin shell over
``planning.quarter``), with a progress bar and a short bilingual summary."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from wulian.api.console import CliError, console, frame_table, load_or_report
from wulian.planning.engines import ENGINES, EngineError
from wulian.planning.fmt import count, pct, yuan
from wulian.planning.io import FORMATS


def add_command(sub) -> None:
    """Register ``plan`` on the ``wulian`` sub-command parser."""
    p = sub.add_parser("plan", help="季度计划 / the quarterly plan: 13 weeks × every street, "
                                    "in parallel")
    p.add_argument("path", help="scenario: folder of CSV or Parquet files, or one .xlsx")
    p.add_argument("--quarter", required=True, help="the quarter, e.g. 2027Q1")
    p.add_argument("--out", required=True, help="folder for the output tables and plan.json")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="local process pool (default) or Ray")
    p.add_argument("--address", help="Ray: address of an existing cluster (default: start a "
                                     "local Ray)")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--centre", help="only this centre's subtree (city, district or street)")
    p.add_argument("--policy", help="colour policy (TOML); default: the packaged one")
    p.add_argument("--format", choices=FORMATS, default="csv")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from wulian.demand.policy import Policy
    from wulian.planning.quarter import QuarterError, parse_quarter, plan_quarter

    try:
        parse_quarter(args.quarter)  # a bad quarter fails before the scenario is read
    except QuarterError as err:
        raise CliError(str(err)) from err
    policy = Policy.load(args.policy) if args.policy else None
    scenario = load_or_report(args.path, policy)
    if scenario is None:
        return 1
    from wulian.api.cli import check_centre  # here: cli imports this module

    check_centre(scenario, args.centre)  # before the progress bar draws anything
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("季度计划 / quarterly plan", total=None)

            def progress(done: int, total: int, label: str) -> None:
                bar.update(task, completed=done, total=total,
                           description=f"季度计划 / quarterly plan · {label}")

            plan = plan_quarter(scenario, args.quarter, engine=args.engine,
                                address=args.address, workers=args.workers,
                                centre=args.centre, progress=progress)
    except (QuarterError, EngineError) as err:
        # An unknown centre or engine, Ray not there: what the command line asked for (2).
        raise CliError(str(err)) from err
    out = plan.write(Path(args.out), args.format)
    show_plan(plan)
    console.print(f"计划表已写入 / plan tables written to: [bold]{out}[/] "
                  f"({', '.join(plan.tables)}, plan.json)")
    return 0


def show_plan(plan) -> None:
    """The plan in a few lines: fill rate by colour, funds, volunteer gaps, what limits."""
    info = plan.info
    seconds = info["seconds"]
    engine = info["engine"]
    console.print(f"[bold]季度计划 / quarterly plan {info['quarter']}[/] "
                  f"({info['weeks'][0]} – {info['weeks'][-1]}), {count(info['streets'])} "
                  f"个街镇 streets, 引擎 engine {engine['name']} × {engine['workers']}; "
                  f"{seconds['wall']:.1f} s (预算拆分 split {seconds['split']:.1f} s, "
                  f"串行占比 serial share {pct(info['serial_share'])})")
    fill = plan.fill_rate
    first, last = fill["week"].iloc[0], fill["week"].iloc[-1]
    wide = pd.DataFrame({
        "首周 first week": fill[fill["week"] == first].set_index("colour")["fill_rate"],
        "末周 last week": fill[fill["week"] == last].set_index("colour")["fill_rate"],
    })
    quarter = plan.explanation.set_index("colour")
    wide["全季度 quarter"] = quarter["fill_rate"]
    wide.index.name = "颜色 colour"
    console.print(frame_table(wide, "满足率 / fill rate", dict.fromkeys(wide.columns, pct)))
    funds = plan.funds.set_index("fund_id")[["name", "quarter_budget", "planned", "share"]]
    funds.index.name = "基金 fund"
    console.print(frame_table(funds, "基金 / funds over the quarter",
                               {"quarter_budget": yuan, "planned": yuan, "share": pct}))
    vol = plan.volunteers
    short = vol[vol["gap"] > 0]
    console.print(f"志愿者 / volunteers: 需 {count(round(vol['needed'].sum()))} 小时,有 "
                  f"{count(round(vol['available'].sum()))} 小时;{count(len(short))} 个站点缺口"
                  f"合计 {count(round(short['gap'].sum()))} 小时 / "
                  f"{count(round(vol['needed'].sum()))} hours needed, "
                  f"{count(round(vol['available'].sum()))} available; {count(len(short))} "
                  f"stations short by {count(round(short['gap'].sum()))} hours in all")
    for row in plan.explanation.itertuples(index=False):
        console.print(f"  {row.summary_zh}\n  {row.summary_en}")
