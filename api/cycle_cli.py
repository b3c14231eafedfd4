"""``wulian db``, ``register``, ``week``, ``funds`` and ``simulate``: the weekly cycle from the
shell. Every command works on the store given by ``--store`` or ``$WULIAN_STORE``."""

from __future__ import annotations

import argparse
import getpass
import json
import time
from datetime import date
from pathlib import Path

import pandas as pd

from wulian.api.console import (
    NOT_RECORDED,
    CliError,
    console,
    frame_table,
    load_or_report,
    refused,
    report_problems,
    usage,
)
from wulian.contract.problems import ValidationError
from wulian.planning.fmt import count, pct, yuan
from wulian.planning.io import excel_safe

STORE_HELP = "store URL (default $WULIAN_STORE or runs/wulian.sqlite)"


def _register(args: argparse.Namespace, via: str = "cli"):
    from wulian.demand.policy import Policy
    from wulian.planning.register import Actor, Register
    from wulian.planning.store import RunStore

    policy = Policy.load(args.policy) if getattr(args, "policy", None) else None
    return Register(RunStore(args.store), Actor(f"cli:{getpass.getuser()}", via), policy)


def _disposing(via: str):
    """Run a command with a register whose engine is closed when the command ends."""
    def wrap(command):
        def run(args: argparse.Namespace) -> int:
            register = _register(args, via(args) if callable(via) else via)
            try:
                return command(args, register)
            finally:
                register.engine.dispose()
        run.__doc__ = command.__doc__
        return run
    return wrap


# -- db ---------------------------------------------------------------------------------------

def cmd_db(args: argparse.Namespace) -> int:
    from wulian.planning.db import head, open_engine, revision, upgrade
    from wulian.planning.store import store_url

    url = store_url(args.store)
    engine = open_engine(url, migrate=False)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        if args.action == "current":
            console.print(f"{shown}: 版本 revision {revision(engine) or '无 none'} "
                          f"(最新 newest {head()})")
            return 0
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"{shown}: 已是最新 / already at revision {after}")
    else:
        console.print(f"{shown}: 已升级 / upgraded {before or '(unversioned)'} → {after}")
    _store_missing_facts(url)
    return 0


def _store_missing_facts(url: str) -> None:
    """The performance facts of weeks closed before they were kept (revision 0004): computed
    once here, so that reading performance over those weeks is quick."""
    from wulian.planning.performance import store_missing_facts
    from wulian.planning.register import Actor, Register, now
    from wulian.planning.store import RunStore

    register = Register(RunStore(url), Actor("wulian db upgrade", "cli"))
    try:
        with register.engine.begin() as conn:
            weeks = store_missing_facts(register, conn, now())
    finally:
        register.engine.dispose()
    if weeks:
        console.print(f"绩效事实已补齐 / performance facts kept for {len(weeks)} closed "
                      f"week(s): {', '.join(weeks)}")


# -- register ---------------------------------------------------------------------------------

@_disposing(lambda args: "file" if args.action == "import" else "cli")
def cmd_register(args: argparse.Namespace, register) -> int:
    try:
        if args.action == "import":
            return _import(register, args)
        if args.action == "export":
            out = register.export(args.target, args.format)
            console.print(f"已导出 / exported: {out}")
            return 0
        if args.action == "household":
            row = {"household_id": args.target, **_pairs(args.set)}
            version = register.assess(row, discovered_by=args.discovered_by,
                                      on=_date(args.date))
            history = register.colour_history(args.target).iloc[-1]
            console.print(f"家庭 {args.target}:评估第 {version} 版,颜色 {history['tier']} / "
                          f"household {args.target}: assessment v{version}, colour "
                          f"{history['tier']} (score {history['score']:.3f})")
            return 0
        if args.action == "need":
            from wulian.planning.match import week_of

            # Without a week, the week of today, as the API raises it.
            row = {"household_id": args.target, "week": week_of(date.today()),
                   **_pairs(args.set)}
            need_id = register.add_need(row)
            console.print(f"已登记需求 / need raised: {need_id}")
            return 0
        if args.action == "withdraw":
            withdrawal = register.withdraw_need(args.target)
            console.print(f"已撤回 / withdrawn: {args.target}")
            if withdrawal.recalled:
                console.print(f"已收回任务 / tasks recalled: {', '.join(withdrawal.recalled)}")
            if withdrawal.delivered:
                console.print(f"本周已部分完成的任务保留 / tasks delivered in part, kept: "
                              f"{', '.join(withdrawal.delivered)}")
            return 0
        if args.action == "history":
            frame = register.colour_history(args.target)
            if frame.empty:
                raise usage(f"没有家庭 {args.target} 的评估", f"no assessments of {args.target}")
            console.print(frame_table(frame[["version", "assessed_on", "assessor",
                                             "discovered_by", "score", "tier_policy",
                                             "tier_override", "tier"]],
                                      f"颜色历史 / colour history of {args.target}",
                                      index=False))
            return 0
        frame = register.events(subject=args.target)
        console.print(frame_table(frame.tail(args.limit)[["event_id", "at", "actor", "via",
                                                          "kind", "subject"]],
                                  "审计记录 / audit trail", index=False))
        return 0
    except ValueError as err:  # RegisterError and the like; a scenario's problems reach main
        raise refused(err) from err


def _date(text: str | None):
    """``--date``: an ISO date, or today when not given."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise usage(f"--date {text}:应为日期,如 2027-01-04",
                    f"--date {text}: not a date; write it like 2027-01-04") from None


def _checked_week(week: str | None) -> str | None:
    """A week given on the command line, checked before any work: a malformed one is a usage
    error (exit 2), not the cycle's refusal (exit 1)."""
    from wulian.planning.cycle import CycleError, check_week

    if week is None:
        return None
    try:
        return check_week(week)
    except CycleError as err:
        raise CliError(str(err)) from err


def _pairs(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise usage(f"应为 列=值:{item!r}", f"expected COLUMN=VALUE: {item!r}")
        out[key.strip()] = value.strip()
    return out


# Headings of an import's table of changes (the other columns are named by ui.text).
CHANGES = {"added": ("新增", "added"), "changed": ("变更", "changed"),
           "removed": ("删除", "removed")}
# The steps of a week's open, as OpenedWeek.seconds names them.
OPEN_STEPS = {"snapshot": ("快照", "snapshot"), "allocate": ("分配", "allocate"),
              "match": ("匹配", "match"), "store": ("保存", "store")}


def _import(register, args: argparse.Namespace) -> int:
    start = time.perf_counter()
    scenario = load_or_report(args.target, register.policy)
    if scenario is None:
        return 1
    report = register.import_scenario(scenario, dry_run=args.dry_run)
    title = ("试运行,未写入 / dry run, nothing written" if args.dry_run
             else "已导入登记册 / imported into the register")
    console.print(frame_table(report.frame(), title, index=False, labels=CHANGES))
    if report.skipped:
        console.print(f"未导入(不属于登记册)/ not kept in the register: "
                      f"{', '.join(report.skipped)}", style="dim")
    console.print(f"{count(report.total)} 处变更 / changes, {count(report.assessments)} 次评估 / "
                  f"assessments ({time.perf_counter() - start:.1f} s)")
    return 0


# -- week -------------------------------------------------------------------------------------

@_disposing(lambda args: "file" if args.action == "record" else "cli")
def cmd_week(args: argparse.Namespace, register) -> int:
    from wulian.planning import cycle, taskbook
    from wulian.planning.register import RegisterError

    if args.action == "record":  # `week record FILE…`: the first file lands in `week`
        args.files = [f for f in [args.week, *args.files] if f]
        if not args.files:
            raise usage("请给出已填写的工作簿", "give the filled workbooks")
    elif args.action != "list" and not args.week:
        raise usage("请给出周次,如 2027-W02", "give the week, e.g. 2027-W02")
    else:
        _checked_week(args.week)
    try:
        if args.action == "open":
            with console.status(f"开启 {args.week} / opening {args.week} …"):
                opened = cycle.open_week(register, args.week, args.centre)
            _show_opened(opened)
            return 0
        if args.action == "publish":
            paths = taskbook.publish_week(register, args.week, args.out, args.centre)
            console.print(f"已推送 {len(paths)} 个工作簿 / {len(paths)} workbook(s) published "
                          f"to {args.out}")
            return 0
        if args.action == "record":
            try:
                report = cycle.record_answers(register, taskbook.read_answers(args.files))
            except ValidationError as err:
                report_problems(err.problems, NOT_RECORDED)
                return 1
            console.print(f"已记录 / recorded: {report.changed} 个任务更新 tasks changed, "
                          f"{report.unchanged} 个未变 unchanged, {report.visits} 次走访结果 "
                          f"visit results, {report.needs_raised} 个新需求 new needs")
            return 0
        if args.action == "close":
            closed = cycle.close_week(register, args.week, args.centre)
            from wulian.planning.alerts import evaluate

            warned = evaluate(register, args.week, after_close=True)
            console.print(f"预警 / alerts: {count(warned.opened)} 新 new, "
                          f"{count(warned.resolved)} 解除 resolved, {count(warned.findings)} "
                          "当前 in force")
            console.print(
                f"{closed.week} 已结束 / closed: {count(closed.delivered)} 个需求全部交付 needs "
                f"delivered in full, {count(closed.carried)} 个顺延 carried forward, "
                f"{count(closed.expired)} 个过期 expired, {count(closed.unanswered)} 个任务未回复 "
                f"tasks unanswered, 支出 spent {yuan(closed.spent)}")
            return 0
        if args.action == "tasks":
            frame = cycle.tasks(register, args.week, provider=args.provider,
                                status=args.status)
            if args.out:
                excel_safe(frame).to_csv(args.out, index=False, encoding="utf-8-sig")
                console.print(f"已写入 / written: {args.out}")
            summary = frame.groupby(["kind", "status"]).size().rename("tasks").reset_index()
            console.print(frame_table(summary, f"{args.week} 任务 / tasks", index=False,
                                      labels={}))
            return 0
        frame = cycle.weeks(register)
        console.print(frame_table(frame[["week", "centre", "state", "run_id", "opened_at",
                                         "closed_at"]].fillna(""), "周 / weeks", index=False))
        return 0
    except (cycle.CycleError, RegisterError) as err:
        raise refused(err) from err


def _show_opened(opened) -> None:
    t = opened.tasks
    by_kind = t.groupby("kind").agg(tasks=("task_id", "size"), units=("units", "sum"),
                                    cost=("cost", "sum")).reset_index()
    console.print(frame_table(by_kind, f"{opened.week} 已开启 / opened ({opened.centre}): "
                                       "任务 tasks", formats={"cost": yuan}, index=False,
                              labels={}))
    levels = opened.run.info["levels"]
    fill = ", ".join(f"{k} {v['value']:.1f}" for k, v in levels.items()
                     if k in ("red", "orange", "yellow", "green"))
    steps = ", ".join(f"{zh} {en} {opened.seconds[step]:.1f}"
                      for step, (zh, en) in OPEN_STEPS.items() if step in opened.seconds)
    console.print(f"分配 / allocation: {fill}; 用时 / seconds: {steps}; 共 total "
                  f"{opened.seconds.get('wall', 0):.1f} s")


# -- funds ------------------------------------------------------------------------------------

@_disposing("cli")
def cmd_funds(args: argparse.Namespace, register) -> int:
    from wulian.planning.cycle import fund_ledger

    by_week, balances = fund_ledger(register, _checked_week(args.first),
                                    _checked_week(args.last))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        excel_safe(by_week).to_csv(out / "ledger.csv", index=False, encoding="utf-8-sig")
        excel_safe(balances).to_csv(out / "balances.csv", index=False, encoding="utf-8-sig")
        console.print(f"已写入 / written: {out}")
    if args.json:
        print(json.dumps({"by_week": by_week.to_dict("records"),
                          "balances": balances.to_dict("records")}, ensure_ascii=False))
        return 0
    money = {c: yuan for c in ("planned", "committed", "spent", "weekly_budget", "accrued",
                               "outstanding", "balance")}
    per_fund = by_week.groupby("fund_id")[["planned", "committed", "spent"]].sum().reset_index()
    console.print(frame_table(per_fund, "资金台账 / fund ledger (weeks shown)", formats=money,
                              index=False, labels={}))
    if len(balances):
        console.print(frame_table(balances, "余额 / balances", formats=money, index=False,
                                  labels={}))
    return 0


# -- simulate ---------------------------------------------------------------------------------

@_disposing("simulator")
def cmd_simulate(args: argparse.Namespace, register) -> int:
    scenario = load_or_report(args.path, register.policy)
    if scenario is None:
        return 1
    play_weeks(register, scenario, args.weeks, args.seed, centre=args.centre,
               out=Path(args.out) if args.out else None)
    return 0


def play_weeks(register, scenario, weeks: int, seed: int, *, centre: str | None = None,
               out: Path | None = None) -> None:
    """Import the scenario into the register, simulate the weeks, show each step and a table."""
    from wulian.planning.simulate import simulate

    report = register.import_scenario(scenario)
    show_register(report.total)
    rows: list[dict] = []
    with console.status("每周循环模拟中 / playing the weekly cycle …"):
        simulate(register, weeks, seed, centre=centre, out=out,
                 on_week=lambda week: rows.append(show_week(week)))
    show_weeks(rows)


def played_weeks(url: str, scenario, weeks: int, seed: int, *, centre: str | None = None,
                 out: Path | None = None) -> tuple[int, list]:
    """:func:`play_weeks` without printing, in a register of its own at ``url`` (what
    ``wulian demo`` runs in a worker process beside the plan): (changes the import made,
    the simulated weeks). Show them with :func:`show_register`, :func:`show_week` and
    :func:`show_weeks`."""
    from wulian.planning.register import Actor, Register
    from wulian.planning.simulate import simulate
    from wulian.planning.store import RunStore

    store = RunStore(url)
    try:
        register = Register(store, Actor("demo", "simulator"), scenario.policy)
        report = register.import_scenario(scenario)
        return report.total, simulate(register, weeks, seed, centre=centre, out=out)
    finally:
        store.engine.dispose()


def show_register(changes: int) -> None:
    console.print(f"登记册 / register: {count(changes)} 处变更 changes")


def show_week(week) -> dict:
    """Print a simulated week's line; its row of the weeks' table."""
    console.print(f"  {week.week}: 开启 opened ({week.tasks} 任务 tasks) → 推送 published "
                  f"({week.workbooks} 工作簿 workbooks) → 回复 answered → 结束 closed, "
                  f"{week.carried} 个需求顺延 carried forward")
    return {"周 week": week.week, "任务 tasks": week.tasks,
            "拒绝 declined": week.declined,
            "完成 delivered": week.delivered + week.partial,
            "未完成 not done": week.not_delivered + week.visits_missed,
            "走访 visits": week.visits_made,
            "新需求 new": week.needs_found + week.needs_arrived,
            "顺延 carried": week.carried, "支出 spent": week.spent,
            "预警 alerts": week.alerts_open,
            "秒 s": sum(week.seconds[k] for k in ("open", "publish", "record", "close",
                                                 "alerts"))}


def show_weeks(rows: list[dict]) -> None:
    console.print(frame_table(pd.DataFrame(rows), "模拟的每周循环 / the simulated weekly cycle",
                              formats={"支出 spent": yuan, "秒 s": lambda v: f"{v:.1f}"},
                              index=False))


@_disposing("cli")
def cmd_alerts(args: argparse.Namespace, register) -> int:
    from wulian.planning import alerts

    _checked_week(args.week)
    try:
        if args.ack:
            alerts.acknowledge(register, args.ack, args.note or "")
            console.print(f"已确认 / acknowledged: {args.ack}")
            return 0
        if args.evaluate or args.week:
            result = alerts.evaluate(register, args.week)
            console.print(f"{result.week}: {result.opened} 新 new, {result.updated} 更新 updated, "
                          f"{result.resolved} 解除 resolved, {result.findings} 当前 in force")
    except alerts.AlertError as err:
        raise refused(err) from err
    states = ("open", "acknowledged", "resolved") if args.all else ("open", "acknowledged")
    centres = _subtree(register, args.centre) if args.centre else None
    frame = alerts.alerts(register, centres=centres, states=states)
    if args.json:
        print(json.dumps([{**r, "numbers": json.loads(r["numbers"])}
                          for r in frame.to_dict("records")], ensure_ascii=False))
        return 0
    shown = frame.assign(what=frame["title_zh"] + " / " + frame["title_en"],
                         numbers=frame["numbers"].map(_numbers_text))[
        ["severity", "what", "subject_id", "centre", "since", "state", "numbers"]]
    console.print(frame_table(shown, f"预警 / alerts ({len(frame)})", index=False))
    return 0


def _numbers_text(numbers: str) -> str:
    """An alert's numbers in one short line (lists cut to three items)."""
    parts = []
    for key, value in json.loads(numbers).items():
        if isinstance(value, list):
            value = ", ".join(map(str, value[:3])) + (" …" if len(value) > 3 else "")
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v:g}" if isinstance(v, int | float) else f"{k} {v}"
                              for k, v in value.items())
        parts.append(f"{key} {value}")
    return "; ".join(parts)


def _subtree(register, centre: str) -> set[str]:
    """The centre and every centre below it, from the register's centres."""
    centres = register.table("centres")
    children = centres.groupby("parent_id")["centre_id"].apply(list).to_dict()
    if centre not in set(centres["centre_id"]):
        raise usage(f"没有中心 {centre}", f"no centre {centre} in the register")
    found, todo = set(), [centre]
    while todo:
        c = todo.pop()
        found.add(c)
        todo += children.get(c, [])
    return found


@_disposing("cli")
def cmd_performance(args: argparse.Namespace, register) -> int:
    from wulian.planning.performance import GROUPS, parse_weeks, performance, report

    try:
        first, last = parse_weeks(args.weeks)
    except ValueError as err:  # --weeks is the command line's: a usage error
        raise CliError(str(err)) from err
    stations = _subtree(register, args.centre) if args.centre else None
    tables = performance(register, args.by, first, last, stations)
    if args.report:
        title = (f"{args.centre or '全部 all'} · {args.weeks or '全部周次 all weeks'} · "
                 f"按 by {args.by}")
        console.print(f"已写入 / written: {report(tables, args.report, title)}")
    if args.json:
        print(json.dumps({name: json.loads(frame.to_json(orient="records", force_ascii=False))
                          for name, frame in tables.items()}, ensure_ascii=False))
        return 0
    assert args.by in GROUPS
    main = tables[f"by_{args.by}"]
    shares = {c: pct for c in ("delivered_share", "spent_share", "planned_rate", "fill_rate",
                                "on_time")}
    console.print(frame_table(main.drop(columns=[c for c in main.columns
                                                 if c.startswith("declined_")]),
                              f"服务绩效 / performance by {args.by}",
                              formats={c: yuan for c in ("planned", "committed", "spent")}
                              | shares, index=False, labels={}))
    # (the fill rate's "planned" counts needs, not yuan)
    console.print(frame_table(tables["fill_rate"], "满足率 / fill rate by week and colour",
                              formats=shares, index=False,
                              labels={"planned": ("计划满足的需求", "needs planned"),
                                      "delivered": ("已满足的需求", "needs delivered")}))
    console.print(frame_table(tables["reach"], "惠及 / reach per ¥10,000",
                              formats={"spent": yuan}, index=False, labels={}))
    return 0


def add_commands(sub) -> None:
    """Register ``db``, ``register``, ``week``, ``funds`` and ``simulate``."""
    p = sub.add_parser("db", help="数据库 / the store's schema version (Alembic)")
    p.add_argument("action", choices=["upgrade", "current"])
    p.add_argument("--store", help=STORE_HELP)
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("register", help="登记册 / the register of households, needs and supply")
    p.add_argument("action", choices=["import", "export", "household", "need", "withdraw",
                                      "history", "events"])
    p.add_argument("target", nargs="?", help="import: a scenario path; export: a folder; "
                   "household/need/history: a household id; withdraw: a need id; events: a "
                   "subject such as households:H0000001")
    p.add_argument("--set", action="append", metavar="COLUMN=VALUE",
                   help="household/need: a column's value (repeatable)")
    p.add_argument("--discovered-by", default="grid_worker",
                   help="household: how it was found (grid_worker, building_head, one_click, "
                        "referral, visit)")
    p.add_argument("--date", help="household: the assessment's date (default today)")
    p.add_argument("--dry-run", action="store_true", help="import: show, write nothing")
    p.add_argument("--format", default="csv", choices=["csv", "xlsx", "parquet"])
    p.add_argument("--limit", type=int, default=40, help="events: the last N")
    p.add_argument("--policy", help="colour policy (TOML); default: the packaged one")
    p.add_argument("--store", help=STORE_HELP)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("week", help="每周循环 / open, publish, record, close a week")
    p.add_argument("action", choices=["open", "publish", "record", "close", "tasks", "list"])
    p.add_argument("week", nargs="?", help="ISO week, e.g. 2027-W02")
    p.add_argument("files", nargs="*", help="record: the filled workbooks")
    p.add_argument("--centre", help="the centre whose subtree the week is for")
    p.add_argument("--out", help="publish: folder for the workbooks; tasks: CSV file")
    p.add_argument("--provider", help="tasks: only this provider's")
    p.add_argument("--status", help="tasks: only this status")
    p.add_argument("--policy", help="colour policy (TOML); default: the packaged one")
    p.add_argument("--store", help=STORE_HELP)
    p.set_defaults(func=cmd_week)

    p = sub.add_parser("funds", help="资金台账 / the fund ledger")
    p.add_argument("action", choices=["ledger"])
    p.add_argument("--from", dest="first", help="first week")
    p.add_argument("--to", dest="last", help="last week")
    p.add_argument("--out", help="folder for ledger.csv and balances.csv")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--store", help=STORE_HELP)
    p.set_defaults(func=cmd_funds)

    p = sub.add_parser("alerts", help="预警 / what needs attention")
    p.add_argument("--centre", help="only this centre's subtree")
    p.add_argument("--evaluate", action="store_true", help="evaluate the rules first")
    p.add_argument("--week", help="evaluate at this week (default: the latest opened)")
    p.add_argument("--all", action="store_true", help="resolved alerts too")
    p.add_argument("--ack", metavar="ALERT_ID", help="acknowledge this alert")
    p.add_argument("--note", help="the acknowledgement's note")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--store", help=STORE_HELP)
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("performance", help="服务绩效 / service performance over weeks")
    p.add_argument("--by", choices=["provider", "linkage", "fund", "street", "colour"],
                   default="provider")
    p.add_argument("--weeks", help="a range of weeks, e.g. 2027-W01:2027-W13")
    p.add_argument("--centre", help="only this centre's subtree")
    p.add_argument("--report", metavar="FILE.xlsx", help="write the report workbook")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--store", help=STORE_HELP)
    p.set_defaults(func=cmd_performance)

    p = sub.add_parser("simulate", help="模拟 / play the weekly cycle with seeded people")
    p.add_argument("path", help="scenario to start the register from (imported first)")
    p.add_argument("--weeks", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--centre", help="play the weeks of this centre's subtree")
    p.add_argument("--out", help="folder for each week's published workbooks")
    p.add_argument("--policy", help="colour policy (TOML); default: the packaged one")
    p.add_argument("--store", help=STORE_HELP)
    p.set_defaults(func=cmd_simulate)
