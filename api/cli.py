"""The ``wulian`` command line: a thin shell over planning/ (no model is built here)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from contract import vocab
from contract.problems import Problem, ValidationError, report_frame
from planning import describe
from planning.fmt import count, yuan
from planning.io import FORMATS, excel_safe, read_raw, write_tables
from planning.scenario import Scenario, check_raw, load_scenario

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"
SHOWN_PROBLEMS = 60  # the console shows this many; the CSV report has them all

# Wide enough for the bilingual tables when output goes to a file or a pipe.
console = Console(highlight=False, width=max(Console().width, 120))


def _frame_table(frame: pd.DataFrame, title: str, formats: dict | None = None,
                 index: bool = True) -> Table:
    formats = formats or {}
    table = Table(title=title, title_justify="left", header_style="bold")
    if index:
        table.add_column(str(frame.index.name or ""))
    for col in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col])
        table.add_column(str(col), justify="right" if numeric else "left")
    for key, row in frame.iterrows():
        cells = [str(key)] if index else []
        for col in frame.columns:
            value = row[col]
            fmt = formats.get(col, count if isinstance(value, int | float) else str)
            cells.append(fmt(value))
        table.add_row(*cells)
    return table


def print_problems(problems: list[Problem]) -> None:
    """The validation report in Chinese and English, the first ``SHOWN_PROBLEMS`` of it."""
    console.print(f"[bold red]发现 {len(problems)} 个问题 / {len(problems)} problem(s) found"
                  "[/] — 场景未导入 / nothing was imported")
    for p in problems[:SHOWN_PROBLEMS]:
        where = p.table + (f" 第{p.row}行 row {p.row}" if p.row is not None else "")
        where += f" · {p.column}" if p.column else ""
        value = f" = {p.value!r}" if p.value else ""
        console.print(f"[bold]{where}[/]{value}: {p.message_zh} / {p.message_en}"
                      f"\n    → {p.hint_zh} / {p.hint_en}")
    if len(problems) > SHOWN_PROBLEMS:
        console.print(f"… 另有 {len(problems) - SHOWN_PROBLEMS} 个 / "
                      f"{len(problems) - SHOWN_PROBLEMS} more (use --report FILE for all)")


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
    with console.status("载入演示场景 / loading the demo scenario …"):
        try:
            scenario = load_scenario(args.path)
        except ValidationError as err:
            print_problems(err.problems)
            return 1
    show_scenario(scenario)
    return 0


def show_scenario(scenario: Scenario) -> None:
    """Print what a scenario holds: households and needs by colour and district, supply by
    linkage, funds and budgets."""
    console.rule(f"五联 wulian · {scenario.path or 'scenario'} · digest {scenario.digest[:12]}")
    colours = {t: f"{zh} {t}" for t, (zh, _) in vocab.TIERS.items()}
    hh = describe.households_by_colour(scenario).rename(columns=colours)
    console.print(_frame_table(hh, "家庭(按区县与颜色)/ households by district and colour"))
    needs = describe.needs_by_colour(scenario).rename(columns=colours)
    console.print(_frame_table(needs, "需求(按区县与颜色)/ open needs by district and colour"))
    supply = describe.supply_by_linkage(scenario).rename(columns={
        "name_zh": "联动", "providers": "资源方 providers", "offers": "供给 offers",
        "services": "服务 services", "volunteers": "志愿者 volunteers",
        "volunteer_hours": "志愿时长 volunteer hours"})
    console.print(_frame_table(supply, "五个联动供给 / supply by linkage"))
    funds = describe.funds_overview(scenario)
    total = yuan(funds["budget"].sum())
    funds = funds.rename(columns={"fund_id": "基金 fund", "name": "名称 name",
                                  "source": "来源 source", "centre": "中心 centre",
                                  "budget": "预算 budget",
                                  "earmarked_services": "限定服务 earmarks"})
    console.print(_frame_table(funds, f"基金与预算 / funds and budgets (合计 total {total})",
                               {"预算 budget": yuan}, index=False))


def cmd_generate(args: argparse.Namespace) -> int:
    from planning.generate import generate_scenario

    with console.status(f"生成 {args.preset} 场景 / generating the {args.preset} preset …"):
        start = time.perf_counter()
        tables = generate_scenario(args.preset, seed=args.seed)
        out = write_tables(tables, args.out, args.format)
    sizes = ", ".join(f"{name} {count(len(frame))}" for name, frame in tables.items())
    console.print(f"已写入 / written: {out} ({time.perf_counter() - start:.1f} s)\n  {sizes}")
    return 0


def cmd_formats(args: argparse.Namespace) -> int:
    from contract.formats import render_formats

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
    p.set_defaults(func=cmd_demo)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FileNotFoundError as err:
        console.print(f"[bold red]{err}[/]")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
