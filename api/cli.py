"""The ``wulian`` command line: a thin shell over planning/ (no model is built here)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from wulian.api.console import (
    console,
    frame_table,
    load_or_report,
    missing_extra,
    print_problems,
)
from wulian.api.cycle_cli import add_commands as add_cycle_commands
from wulian.api.plan_cli import add_command as add_plan
from wulian.api.service_cli import add_commands as add_service_commands
from wulian.contract import vocab
from wulian.contract.problems import ValidationError, report_frame
from wulian.contract.vocab import REASON_ZH
from wulian.data import demo_folder
from wulian.planning import describe
from wulian.planning.fmt import count, pct, yuan
from wulian.planning.io import FORMATS, excel_safe, read_raw, write_tables
from wulian.planning.scenario import Scenario, check_raw

DEMO = demo_folder()
def cmd_validate(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    with console.status("读取并校验 / reading and validating …"):
        raw = read_raw(args.path)
        problems = check_raw(raw)
    for name, source in raw.sources.items():
        console.print(f"  {name:<11} ← {source}", style="dim")
    if args.report:
        report = excel_safe(report_frame(problems))
        report.to_csv(args.report, index=False, encoding="utf-8-sig")
        console.print(f"报告已写入 / report written: {args.report}")
    if problems:
        print_problems(problems)
        return 1
    console.print(f"[bold green]场景无误 / the scenario is valid[/] "
                  f"({time.perf_counter() - start:.1f} s)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from wulian.planning.allocate import run_allocation
    from wulian.planning.store import RunStore

    start = time.perf_counter()
    scenario = load_or_report(args.path)
    if scenario is None:
        return 1
    show_scenario(scenario)
    out = Path(args.out)
    with console.status("分配中 / allocating (exact, colour by colour) …"):
        run = run_allocation(scenario, store=RunStore(args.store))
    with console.status("写出结果 / writing the output tables …"):
        run.write(out, "csv")
    show_run(scenario, run)
    console.print(f"结果表已写入 / output tables written to: [bold]{out}[/] "
                  f"({', '.join(run.tables)}, run.json); 运行记录 / recorded as run "
                  f"{run.info['run_id']}")
    code = _match_and_show(scenario, run, out, "csv", DEMO_MATCH)
    if code == 0 and args.weeks:
        _demo_cycle(scenario, out, args.weeks)
    console.print(f"演示总用时 / demo wall time: {time.perf_counter() - start:.1f} s")
    return code


def _demo_cycle(scenario: Scenario, out: Path, weeks: int) -> None:
    """The weekly cycle on the demo, in a register of its own (OUT/cycle.sqlite, made anew)."""
    from wulian.api.cycle_cli import play_weeks
    from wulian.planning.register import Actor, Register
    from wulian.planning.store import RunStore

    console.rule("每周循环 / the weekly cycle (四项同步)")
    path = out / "cycle.sqlite"
    for stale in out.glob("cycle.sqlite*"):
        stale.unlink()
    store = RunStore(f"sqlite:///{path.resolve()}")
    # One street's weeks (the one with the most households): the whole district's would take
    # minutes; `wulian simulate PATH` plays any scope.
    centres = scenario.centres.set_index("centre_id")
    street = scenario.households["station_id"].map(centres["parent_id"]).value_counts().index[0]
    console.print(f"街道 / street {street} {centres.at[street, 'name']}")
    try:
        play_weeks(Register(store, Actor("demo", "simulator"), scenario.policy), scenario,
                   weeks, 0, centre=street, out=out / "cycle")
    finally:
        store.engine.dispose()
    console.print(f"登记册与任务 / register and tasks: [bold]{path}[/]; 推送的工作簿 / published "
                  f"workbooks: {out / 'cycle'} (wulian week list --store sqlite:///{path})")


def _allocate_and_show(scenario: Scenario, out: Path, fmt: str, week: str | None,
                       centre: str | None, store_url: str | None, params=None) -> int:
    from wulian.planning.allocate import run_allocation
    from wulian.planning.store import RunStore

    with console.status("分配中 / allocating (exact, colour by colour) …"):
        run = run_allocation(scenario, week=week, centre=centre, params=params,
                             store=RunStore(store_url))
    with console.status("写出结果 / writing the output tables …"):
        run.write(out, fmt)
    show_run(scenario, run)
    console.print(f"结果表已写入 / output tables written to: [bold]{out}[/] "
                  f"({', '.join(run.tables)}, run.json); 运行记录 / recorded as run "
                  f"{run.info['run_id']}")
    return 0


def show_proof(info: dict) -> None:
    """Which levels are proven optimal and, for each that is not, how far it may be from the
    best (run.json's ``proof`` and each level's ``words``), in Chinese and English."""
    levels = info["levels"]
    if not levels:
        return
    frame = pd.DataFrame({
        "层级 level": list(levels),
        "证明 proof": [lv["words"]["zh"] for lv in levels.values()],
        "proof": [lv["words"]["en"] for lv in levels.values()],
    })
    console.print(frame_table(frame, "是否已证明最优 / proven optimal? — " + info["proof"]["zh"]
                              + " " + info["proof"]["en"], index=False))


def show_run(scenario: Scenario, run) -> None:
    """Fill rate by colour, money by fund, unmet reasons and a few households' plans."""
    from wulian.planning.allocate import fill_rate_by_tier, money_by_fund, unmet_by_reason

    info = run.info
    console.rule(f"分配结果 / allocation · {info['status']} · "
                 f"{info['seconds']['wall']:.1f} s")
    rates = fill_rate_by_tier(run)
    levels = info["levels"]
    frame = pd.DataFrame({
        "颜色 colour": [f"{vocab.TIERS[t][0]} {t}" for t in rates.index],
        "满足率 fill rate": rates.to_numpy(),
        "目标值 value": [levels[t]["value"] for t in rates.index],
        "上界 bound": [levels[t]["bound"] for t in rates.index],
    })
    console.print(frame_table(frame, "各颜色满足率 / fill rate by colour "
                                      "(value = Σ urgency × served ÷ needed; bound proven)",
                               {"满足率 fill rate": pct, "目标值 value": lambda v: f"{v:,.2f}",
                                "上界 bound": lambda v: f"{v:,.2f}"}, index=False))
    show_proof(info)
    funds = money_by_fund(run)
    funds = pd.DataFrame({"基金 fund": funds["fund_id"], "预算 budget": funds["budget"],
                          "已用 used": funds["used"], "剩余 left": funds["left"],
                          "每万元边际值 value of ¥10,000": funds["marginal_value"] * 10_000})
    console.print(frame_table(funds, "基金使用 / money by fund",
                               {"预算 budget": yuan, "已用 used": yuan, "剩余 left": yuan,
                                "每万元边际值 value of ¥10,000": lambda v: f"{v:,.2f}"},
                               index=False))
    reasons = unmet_by_reason(run)
    if len(reasons):
        table = pd.DataFrame({"原因 reason": [f"{REASON_ZH.get(r, r)} {r}" for r in reasons.index],
                              "需求数 needs": reasons.to_numpy()})
        console.print(frame_table(table, "未满足原因 / unmet needs by reason", index=False))
    plans = run.plans
    sample = plans.sort_values(["tier", "household_id"], key=lambda s: s.map(
        {t: i for i, t in enumerate(vocab.TIER_ORDER)}) if s.name == "tier" else s).head(5)
    sample = pd.DataFrame({"家庭 household": sample["household_id"],
                           "颜色 colour": sample["tier"].map(lambda t: vocab.TIERS[t][0]),
                           "救助套餐 package": sample["package"],
                           "未满足 unmet": sample["unmet"]})
    console.print(frame_table(sample, "部分家庭的救助套餐 / a few households' plans",
                               index=False))




def cmd_allocate(args: argparse.Namespace) -> int:
    from wulian.optimizer.pins import PinError

    scenario = load_or_report(args.path, _policy(args.policy))
    if scenario is not None and args.pins:
        scenario = _with_pins(scenario, args.pins)
    if scenario is None:
        return 1
    try:
        from wulian.optimizer.allocation import AllocationParams

        return _allocate_and_show(scenario, Path(args.out), args.format, args.week, args.centre,
                                  args.store, AllocationParams(decompose=args.decompose))
    except PinError as err:
        console.print("[bold red]锁定无法保持 / pins that cannot be kept:[/]")
        for problem in err.problems:
            console.print(f"  - {problem}")
        return 1


def _policy(path: str | None):
    from wulian.demand.policy import Policy

    return Policy.load(path) if path else None


def _with_pins(scenario: Scenario, pins_path: str) -> Scenario | None:
    """The scenario with its pins table replaced by the pins file (validated with the rest)."""
    from wulian.planning.io import as_text, decode_csv

    text, _ = decode_csv(Path(pins_path).read_bytes())
    import io

    pins = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    tables = dict(scenario.tables)
    tables["pins"] = as_text(pins)
    try:
        return Scenario.from_tables(tables, scenario.policy, path=scenario.path)
    except ValidationError as err:
        print_problems(err.problems)
        return None


def show_scenario(scenario: Scenario) -> None:
    """Print what a scenario holds: households and needs by colour and district, supply by
    linkage, funds and budgets."""
    console.rule(f"五联 wulian · {scenario.path or 'scenario'} · digest {scenario.digest[:12]}")
    colours = {t: f"{zh} {t}" for t, (zh, _) in vocab.TIERS.items()}
    hh = describe.households_by_colour(scenario).rename(columns=colours)
    console.print(frame_table(hh, "家庭(按区县与颜色)/ households by district and colour"))
    needs = describe.needs_by_colour(scenario).rename(columns=colours)
    console.print(frame_table(needs, "需求(按区县与颜色)/ open needs by district and colour"))
    supply = describe.supply_by_linkage(scenario).rename(columns={
        "name_zh": "联动", "providers": "资源方 providers", "offers": "供给 offers",
        "services": "服务 services", "volunteers": "志愿者 volunteers",
        "volunteer_hours": "志愿时长 volunteer hours"})
    console.print(frame_table(supply, "五个联动供给 / supply by linkage"))
    funds = describe.funds_overview(scenario)
    total = yuan(funds["budget"].sum())
    funds = funds.rename(columns={"fund_id": "基金 fund", "name": "名称 name",
                                  "source": "来源 source", "centre": "中心 centre",
                                  "budget": "预算 budget",
                                  "earmarked_services": "限定服务 earmarks"})
    console.print(frame_table(funds, f"基金与预算 / funds and budgets (合计 total {total})",
                               {"预算 budget": yuan}, index=False))


def cmd_match(args: argparse.Namespace) -> int:
    from wulian.optimizer.pins import PinError
    from wulian.planning.allocate import run_allocation
    from wulian.planning.store import RunStore

    scenario = load_or_report(args.path)
    if scenario is None:
        return 1
    with console.status("分配中 / allocating …"):
        run = run_allocation(scenario, week=args.week, centre=args.centre,
                             store=RunStore(args.store))
    try:
        return _match_and_show(scenario, run, Path(args.out), args.format, None,
                               week=args.week, centre=args.centre)
    except PinError as err:
        console.print("[bold red]志愿者锁定无法保持 / volunteer pins that cannot be kept:[/]")
        for problem in err.problems:
            console.print(f"  - {problem}")
        return 1


# The demo's matching: 1 s of CP-SAT deterministic time per level keeps the demo short; the
# levels report their bounds, so a time-limited level says so.
DEMO_MATCH = {"time_limit": 1.0}


def _match_and_show(scenario: Scenario, run, out: Path, fmt: str, params: dict | None,
                    week: str | None = None, centre: str | None = None) -> int:
    """Match volunteers after an allocation; print levels, load and unplaced visits; write the
    matching's tables with the reconciled allocation (CSV/Parquet folder, or one workbook with
    a printable sheet per volunteer)."""
    import json

    from wulian.optimizer.visits import MatchParams
    from wulian.planning.match import reconciled_tables, run_matching, write_workbook

    with console.status("匹配志愿者 / matching volunteers to visits and slots …"):
        match = run_matching(scenario, run, week=week, centre=centre,
                             params=MatchParams(**(params or {})))
    tables = {**match.tables, **reconciled_tables(scenario, run, match)}
    if fmt == "xlsx":
        written = write_workbook(match, out / "matching.xlsx",
                                 {k: v for k, v in tables.items() if k not in match.tables})
    else:
        written = write_tables({k: excel_safe(v) for k, v in tables.items()}, out, fmt)
    out.mkdir(parents=True, exist_ok=True)
    (out / "match.json").write_text(json.dumps(match.info, ensure_ascii=False, indent=2,
                                               sort_keys=True, default=str) + "\n",
                                    encoding="utf-8")
    info = match.info
    console.rule(f"志愿者匹配 / volunteer matching · {match.status} · {match.method} · "
                 f"{info['seconds']['wall']:.1f} s")
    levels = pd.DataFrame([{"层级 level": lv.name, "取值 value": lv.value, "界 bound": lv.bound,
                            "差距 gap": lv.gap, "状态 status": str(lv.status)}
                           for lv in match.levels])
    console.print(frame_table(levels, "字典序各层 / lexicographic levels (bound proven; "
                                       "gap = |bound − value| ÷ value)",
                               {"取值 value": count, "界 bound": count, "差距 gap": pct},
                               index=False))
    load, spread = match.load, match.spread
    busy = load[load["hours"] > 0]
    frame = pd.DataFrame({
        "指标 measure": ["时长 hours", "走访 visits", "公里 km (单程 one way)"],
        "合计 total": [load["hours"].sum(), load["visits"].sum(), load["km"].sum()],
        "平均 mean": [spread["mean"], load["visits"].mean(), load["km"].mean()],
        "标准差 std": [spread["std"], load["visits"].std(ddof=0), load["km"].std(ddof=0)],
        "最少 min": [spread["min"], load["visits"].min(), load["km"].min()],
        "最多 max": [spread["max"], load["visits"].max(), load["km"].max()],
    })
    one = lambda v: f"{v:,.1f}"  # noqa: E731
    console.print(frame_table(
        frame, f"志愿者负荷 / volunteers' load ({count(len(busy))} / "
               f"{count(spread['volunteers'])} 人有安排 busy; 空闲比例 idle share "
               f"{pct(spread['idle_share'])})",
        {c: one for c in frame.columns[1:]}, index=False))
    console.print(f"已安排 / placed: {count(len(match.assignments))} 次走访 visits; "
                  f"未安排 / unplaced: {count(len(match.unplaced))}")
    unplaced = match.unplaced
    if len(unplaced):
        by = unplaced.groupby("reason")
        table = pd.DataFrame({"原因 reason": [f"{REASON_ZH.get(r, r)} {r}" for r in by.groups],
                              "走访 visits": by.size().to_numpy(),
                              "时长 hours": by["hours"].sum().to_numpy()})
        console.print(frame_table(table, "未安排的走访 / unplaced visits by reason",
                                   {"时长 hours": one}, index=False))
    console.print(f"匹配结果已写入 / matching written to: [bold]{written}[/] "
                  f"({', '.join(tables)}, match.json)")
    return 0


def _parse_set(items: list[str]) -> dict[str, float]:
    budgets = {}
    for item in items:
        fund, _, yuan_text = item.partition("=")
        if not fund or not yuan_text:
            raise ValueError(f"--set {item!r}: write FUND=YUAN, e.g. F001=250000")
        budgets[fund.strip()] = float(yuan_text)
    return budgets


def cmd_budget(args: argparse.Namespace) -> int:
    from wulian.optimizer.budget import EquityDial
    from wulian.planning.budget import BudgetLab, plot_curve

    scenario = load_or_report(args.path)
    if scenario is None:
        return 1
    try:
        budgets = _parse_set(args.set or [])
    except ValueError as err:
        console.print(f"[bold red]{err}[/]")
        return 2
    equity = EquityDial(floor=args.equity_floor) if args.equity_floor is not None else None
    with console.status("建立预算模型 / building the budget lab …"):
        lab = BudgetLab.from_scenario(scenario, week=args.week, centre=args.centre)
    solution = lab.solve(budgets or None, equity=equity)
    if solution.status != "optimal":
        console.print(f"[bold red]{solution.message}[/]")
        return 1
    colours = solution.colours
    frame = pd.DataFrame({
        "颜色 colour": [f"{vocab.TIERS[c][0]} {c}" for c in colours["colour"]],
        "需求 needs": colours["needs"].to_numpy(),
        "满足率 fill rate": colours["fill_rate"].to_numpy(),
    })
    console.print(frame_table(frame, f"预算实验室 / budget lab · {solution.seconds:.2f} s",
                               {"满足率 fill rate": pct}, index=False))
    funds = solution.funds
    table = pd.DataFrame({
        "基金 fund": funds["fund_id"], "预算 budget": funds["budget"], "已用 used": funds["used"],
        "剩余 left": funds["left"],
        "每万元提升 points per ¥10,000": funds["points_per_10k"],
        "作用于 at colour": funds["marginal_level"].replace("", "—"),
    })
    console.print(frame_table(table, "基金边际价值 / the marginal value of a yuan per fund",
                               {"预算 budget": yuan, "已用 used": yuan, "剩余 left": yuan,
                                "每万元提升 points per ¥10,000": lambda v: f"{v:,.2f}"},
                               index=False))
    if equity is not None and solution.price_of_fairness is not None:
        console.print(frame_table(solution.price_of_fairness,
                                   f"公平的代价 / price of fairness ({equity.describe()})",
                                   index=False))
    if args.sweep:
        fund, start, stop, steps = _parse_sweep(args.sweep)
        with console.status("预算曲线 / sweeping the budget …"):
            curve = lab.sweep(start, stop, steps, None if fund == "all" else fund,
                              equity=equity)
        wide = curve.pivot_table(index="budget", columns="colour", values="fill_rate",
                                 sort=True).reindex(columns=list(vocab.TIER_ORDER))
        wide.index = pd.Index([yuan(b) for b in wide.index], name="预算 budget")
        console.print(frame_table(wide, f"覆盖-预算曲线 / coverage vs budget ({fund})",
                                   dict.fromkeys(vocab.TIER_ORDER, pct)))
        if args.plot:
            path = plot_curve(curve, args.plot)
            console.print(f"曲线图已写入 / curve written: {path}")
    return 0


def _parse_sweep(text: str) -> tuple[str, float, float, int]:
    parts = text.split(":")
    if len(parts) != 4:
        raise SystemExit("--sweep FUND:FROM:TO:STEPS, e.g. F001:0:500000:11 or all:0.5:1.5:5")
    return parts[0], float(parts[1]), float(parts[2]), int(parts[3])


def cmd_runs(args: argparse.Namespace) -> int:
    from wulian.planning.store import RunStore, diff_runs

    store = RunStore(args.store)
    if args.action == "list":
        runs = store.list()
        if runs.empty:
            console.print(f"还没有运行记录 / no runs yet in {store.url}")
            return 0
        shown = runs.assign(input_digest=runs["input_digest"].str[:12],
                            policy_digest=runs["policy_digest"].str[:12])
        console.print(frame_table(shown, f"运行记录 / runs in {store.url}", index=False))
        return 0
    if args.action == "show":
        run = store.load(args.ids[0])
        console.print_json(data=run.info)
        for name, frame in run.tables.items():
            console.print(f"  {name}: {count(len(frame))} rows")
        return 0
    if len(args.ids) == 1:
        new = store.load(args.ids[0])
        old = store.previous(new.run_id)
        if old is None:
            console.print(f"运行 {new.run_id} 之前没有可比的运行 / no earlier run to compare with")
            return 1
    else:
        old, new = store.load(args.ids[0]), store.load(args.ids[1])
    changes = diff_runs(old, new)
    counts = changes["direction"].value_counts()
    console.print(f"运行 {old.run_id} → {new.run_id}: "
                  + ", ".join(f"{k} {v}" for k, v in counts.items()))
    shown = changes[["household_id", "tier", "direction", "fill_before", "fill_after", "why"]]
    console.print(frame_table(shown.head(args.limit), "变化的家庭 / households that changed",
                               {"fill_before": pct, "fill_after": pct}, index=False))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from wulian.planning.generate import generate_scenario

    with console.status(f"生成 {args.preset} 场景 / generating the {args.preset} preset …"):
        start = time.perf_counter()
        tables = generate_scenario(args.preset, seed=args.seed)
        out = write_tables(tables, args.out, args.format)
    sizes = ", ".join(f"{name} {count(len(frame))}" for name, frame in tables.items())
    console.print(f"已写入 / written: {out} ({time.perf_counter() - start:.1f} s)\n  {sizes}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Start the Streamlit app (ui/app.py) and wait until it is stopped."""
    import os
    import subprocess

    if missing_extra("streamlit", "app"):
        return 2
    from importlib import resources

    app = Path(str(resources.files("wulian.ui").joinpath("app.py")))
    argv = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
            "--browser.gatherUsageStats", "false"]
    if args.headless:
        argv += ["--server.headless", "true"]
    env = {**os.environ, **({"WULIAN_STORE": args.store} if args.store else {})}
    console.print(f"五联界面 / the wulian app: http://localhost:{args.port} "
                  "(Ctrl+C 停止 / to stop)")
    try:
        return subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        return 0


def cmd_formats(args: argparse.Namespace) -> int:
    from wulian.contract.formats import render_formats

    text = render_formats()
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        console.print(f"已写入 / written: {args.out}")
    else:
        sys.stdout.write(text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wulian", description="五联 wulian — 社会救助需求与五个联动资源的精准对接 / "
                                   "link social-assistance needs to the five linkages' supply")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="演示 / the main job on the bundled demo scenario")
    p.add_argument("path", nargs="?", default=str(DEMO), help="scenario (default: bundled demo)")
    p.add_argument("--out", default="out/demo", help="where the output tables go")
    p.add_argument("--store", help="run store URL (default $WULIAN_STORE or runs/wulian.sqlite)")
    p.add_argument("--weeks", type=int, default=2,
                   help="weeks of the simulated weekly cycle to play after (0: none)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("allocate", help="每周分配 / allocate services and budget for a week")
    p.add_argument("path", help="scenario: folder of CSV or Parquet files, or one .xlsx")
    p.add_argument("--out", required=True, help="folder for the output tables")
    p.add_argument("--centre", help="only this centre's subtree (a coordinator's view)")
    p.add_argument("--week", help="ISO week of the needs to allocate, e.g. 2026-W49")
    p.add_argument("--policy", help="colour policy (TOML); default: the packaged one")
    p.add_argument("--pins", help="pins CSV (need_id, offer_id, volunteer_id, units, slot)")
    p.add_argument("--format", choices=FORMATS, default="csv")
    p.add_argument("--store", help="run store URL (default $WULIAN_STORE or runs/wulian.sqlite)")
    p.add_argument("--decompose", choices=["auto", "always", "never"], default="auto",
                   help="solve district by district in parallel (auto: large multi-district "
                        "weeks)")
    p.set_defaults(func=cmd_allocate)

    p = sub.add_parser("match", help="志愿者匹配 / allocate, then match volunteers to visits")
    p.add_argument("path", help="scenario: folder of CSV or Parquet files, or one .xlsx")
    p.add_argument("--out", required=True, help="folder for the output tables")
    p.add_argument("--centre", help="only this centre's subtree")
    p.add_argument("--week", help="ISO week, e.g. 2026-W49")
    p.add_argument("--format", choices=FORMATS, default="csv",
                   help="csv or parquet folder, or xlsx: one workbook with a printable sheet "
                        "per volunteer")
    p.add_argument("--store", help="run store URL (default $WULIAN_STORE or runs/wulian.sqlite)")
    p.set_defaults(func=cmd_match)

    p = sub.add_parser("budget", help="预算实验室 / what each budget level buys")
    p.add_argument("path", help="scenario: folder of CSV or Parquet files, or one .xlsx")
    p.add_argument("--set", action="append", metavar="FUND=YUAN",
                   help="a fund's budget for this run (repeatable)")
    p.add_argument("--sweep", metavar="FUND:FROM:TO:STEPS",
                   help="coverage-vs-budget curve for one fund (yuan) or 'all' (a factor)")
    p.add_argument("--equity-floor", type=float, metavar="F",
                   help="every street's red fill rate at least F (0–1)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the sweep's curve to this file")
    p.add_argument("--centre", help="only this centre's subtree")
    p.add_argument("--week", help="ISO week of the needs")
    p.set_defaults(func=cmd_budget)

    p = sub.add_parser("runs", help="运行记录 / list, show and diff recorded runs")
    p.add_argument("action", choices=["list", "show", "diff"])
    p.add_argument("ids", nargs="*", type=int, help="run id(s): show ID; diff [OLD] NEW")
    p.add_argument("--store", help="run store URL (default $WULIAN_STORE or runs/wulian.sqlite)")
    p.add_argument("--limit", type=int, default=30, help="rows of the diff to show")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("validate", help="校验场景 / validate a scenario and report every problem")
    p.add_argument("path", help="folder of CSV or Parquet files, or one .xlsx workbook")
    p.add_argument("--report", help="write the full report as CSV to this file")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("generate", help="生成合成场景 / generate a synthetic scenario")
    p.add_argument("--preset", choices=["tiny", "district", "city"], default="tiny")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder (or .xlsx file)")
    p.add_argument("--format", choices=FORMATS, default="csv")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("formats", help="文件格式说明 / print docs/formats.md from the schema")
    p.add_argument("--out", help="write to this file instead of the screen")
    p.set_defaults(func=cmd_formats)

    p = sub.add_parser("ui", help="界面 / start the Streamlit app (coordinator, fund lab, data, "
                                  "runs)")
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument("--headless", action="store_true", help="do not open a browser")
    p.add_argument("--store", help="run store URL (default $WULIAN_STORE or runs/wulian.sqlite)")
    p.set_defaults(func=cmd_ui)

    add_plan(sub)  # plan (the quarterly planner)
    add_service_commands(sub)  # serve, token, jobs (the batch service)
    add_cycle_commands(sub)  # db, register, week, funds, simulate (the weekly cycle)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, KeyError) as err:
        console.print(f"[bold red]{err}[/]")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
