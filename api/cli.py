"""The ``wulian`` command line: a thin shell over planning/ (no model is built here)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from pathlib import Path

import pandas as pd
from sqlalchemy.exc import ArgumentError as StoreUrlError

from wulian.api.console import (
    FAILED,
    POLICY_NOT_USED,
    USAGE,
    CliError,
    console,
    failed,
    frame_table,
    load_or_report,
    missing_extra,
    policy_problems,
    print_problems,
    report_problems,
    say_error,
    set_verbosity,
    usage,
)
from wulian.api.cycle_cli import add_commands as add_cycle_commands
from wulian.api.entry import INTERRUPTED
from wulian.api.plan_cli import add_command as add_plan
from wulian.api.service_cli import add_commands as add_service_commands
from wulian.contract import vocab
from wulian.contract.problems import ValidationError, report_frame
from wulian.contract.vocab import REASON_ZH
from wulian.data import demo_folder
from wulian.demand.policy import PolicyError
from wulian.planning import describe
from wulian.planning.fmt import count, pct, yuan
from wulian.planning.io import FORMATS, excel_safe, read_raw, strict_json, write_tables
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
    from wulian.planning.store import RunStore

    start = time.perf_counter()
    scenario = load_or_report(args.path)
    if scenario is None:
        return 1
    out = Path(args.out)
    # The weekly cycle shares nothing with the plan but the scenario: its weeks play in a
    # worker process while the plan is made, and are shown after it.
    cycle = None
    try:
        cycle = DemoCycle(scenario, out, args.weeks) if args.weeks else None
        show_scenario(scenario)
        plan = _plan(scenario, RunStore(args.store), DEMO_MATCH)
        run = plan.run
        with console.status("写出结果 / writing the output tables …"):
            run.write(out, "csv")
        show_run(scenario, run)
        console.print(f"结果表已写入 / output tables written to: [bold]{out}[/] "
                      f"({', '.join(run.tables)}, run.json); 运行记录 / recorded as run "
                      f"{run.info['run_id']}")
        # Beside the allocation's tables, not over them: those on disk stay the recorded run's.
        code = _match_and_show(scenario, run, out / "matching", "csv", plan.match)
        if code == 0 and cycle is not None:
            cycle.show()
    finally:
        if cycle is not None:
            cycle.close()
    console.print(f"演示总用时 / demo wall time: {time.perf_counter() - start:.1f} s")
    return code


class DemoCycle:
    """The demo's weekly cycle: the weeks of one street (the one with the most households; the
    whole district's would take minutes, ``wulian simulate PATH`` plays any scope) in a
    register of its own (OUT/cycle.sqlite, made anew). When this process may use two cores or
    more they play at once in a spawned worker process (a fork would copy this process's
    memory and threads), beside the plan; else in this process when shown.

    The worker is a process of its own, not a pool's: its weeks (the scenario with them) are
    pickled here, before it starts, where a pool pickles them in a thread of its own while the
    plan goes on (it once met the scenario's cached ``hierarchy`` being filled: "dictionary
    changed size during iteration"); and it ends as soon as it has answered, so that its
    interpreter's teardown (0.3–0.7 s) runs beside the plan, not at the demo's end.

    The weeks go to the worker in a file, not through ``start``: ``start`` writes what it
    pickles into the child's pipe while holding the pipe's other end itself, so a child that
    dies before reading (Ctrl-C reaches the whole process group, the child too while it
    imports) left the demo waiting on a full pipe for ever. The worker is born ignoring
    Ctrl-C (an ignored signal stays ignored through exec): the demo stops it."""

    def __init__(self, scenario: Scenario, out: Path, weeks: int):
        from functools import partial

        from wulian.api.cycle_cli import played_weeks
        from wulian.planning.engines import default_workers

        self.path = out / "cycle.sqlite"
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob("cycle.sqlite*"):
            stale.unlink()
        centres = scenario.centres.set_index("centre_id")
        self.street = str(scenario.households["station_id"].map(centres["parent_id"])
                          .value_counts().index[0])
        self.name = centres.at[self.street, "name"]
        self.play = partial(played_weeks, f"sqlite:///{self.path.resolve()}", scenario, weeks,
                            0, centre=self.street, out=out / "cycle")
        self.worker = self.answers = None
        self.answered = False
        if default_workers() >= 2:
            import pickle
            import signal
            import tempfile
            from multiprocessing import get_context

            # (a file of this user's alone: the worker runs what it unpickles)
            handle, name = tempfile.mkstemp(prefix="wulian-demo-cycle-", suffix=".pickle")
            self.weeks_file = Path(name)
            with os.fdopen(handle, "wb") as file:
                pickle.dump(self.play, file, pickle.HIGHEST_PROTOCOL)
            context = get_context("spawn")
            self.answers, answer = context.Pipe(duplex=False)
            self.worker = context.Process(target=play_and_answer, args=(self.weeks_file, answer),
                                          name="wulian-demo-cycle")
            # The child is born ignoring Ctrl-C (only the main thread may set a handler).
            main_thread = threading.current_thread() is threading.main_thread()
            interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
            try:
                self.worker.start()  # (what it pickles fits in the pipe: no wait)
            except BaseException:
                self.weeks_file.unlink(missing_ok=True)
                self.answers.close()
                raise
            finally:
                if main_thread:
                    signal.signal(signal.SIGINT, interrupt)
                answer.close()  # the worker's end: this process only reads

    def show(self) -> None:
        from wulian.api.cycle_cli import show_register, show_week, show_weeks

        console.rule("每周循环 / the weekly cycle (四项同步)")
        console.print(f"街道 / street {self.street} {self.name}")
        with console.status("每周循环模拟中 / playing the weekly cycle …"):
            changes, weeks = self.play() if self.worker is None else self.answer()
        show_register(changes)
        show_weeks([show_week(week) for week in weeks])
        console.print(f"登记册与任务 / register and tasks: [bold]{self.path}[/]; 推送的工作簿 / "
                      f"published workbooks: {self.path.parent / 'cycle'} (wulian week list "
                      f"--store sqlite:///{self.path})")

    def answer(self) -> tuple:
        """The worker's weeks; its error raised here."""
        try:
            failed, value = self.answers.recv()
        except EOFError:
            if self.worker.pid is not None:  # (else it never started)
                self.worker.join()
            raise RuntimeError(f"每周循环的进程未答复即退出 / the weekly cycle's process ended "
                               f"without an answer (exit code {self.worker.exitcode})") from None
        self.answered = True
        if failed:
            raise value
        return value

    def close(self) -> None:
        """Stop the worker, if it still plays weeks nobody will see (the plan failed)."""
        if self.worker is None:
            return
        if self.worker.pid is not None:  # (else it never started)
            if not self.answered:
                self.worker.terminate()
            self.worker.join()
        self.weeks_file.unlink(missing_ok=True)  # (a worker stopped before it read them)
        self.answers.close()
        self.worker = None


def play_and_answer(weeks_file: Path, answer) -> None:
    """The demo cycle's worker: play the weeks pickled in ``weeks_file`` (then removed) and
    send (failed, the weeks or the error). Born ignoring Ctrl-C: it is the demo's to handle
    (it stops this process), so no second traceback comes from here."""
    import pickle
    import signal
    import traceback

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # (where it was not ignored from birth)
    try:
        play = pickle.loads(weeks_file.read_bytes())
        weeks_file.unlink()
        result = (False, play())
    except Exception as error:  # noqa: BLE001 - raised again in the demo's process
        error.add_note("每周循环的进程中 / in the weekly cycle's process:\n"
                       + "".join(traceback.format_tb(error.__traceback__)))
        result = (True, error)
    answer.send(result)
    answer.close()


def _allocate_and_show(scenario: Scenario, out: Path, fmt: str, week: str | None,
                       centre: str | None, store_url: str | None, params=None,
                       lang: str = "zh", as_json: bool = False) -> int:
    import sqlalchemy as sa

    from wulian.planning.allocate import run_allocation
    from wulian.planning.store import RunStore, redact_url

    store = RunStore(store_url)
    with console.status("分配中 / allocating (exact, colour by colour) …"):
        try:  # the tables are written before the run is recorded: a store that fails loses none
            run = run_allocation(scenario, week=week, centre=centre, params=params,
                                 store=store, before_save=lambda done: done.write(out, fmt, lang))
        except sa.exc.SQLAlchemyError as err:
            console.print(f"[bold red]运行记录未保存 / the run was not recorded[/] in "
                          f"{redact_url(store.url)}: {type(err).__name__}; 结果表已写入 / the "
                          f"output tables were written to {out}")
            return 1
        run.write_info(out)  # now with the run's id in the store
    show_run(scenario, run)
    console.print(f"结果表已写入 / output tables written to: [bold]{out}[/] "
                  f"({', '.join(run.tables)}, run.json); 运行记录 / recorded as run "
                  f"{run.info['run_id']}")
    if as_json:
        print_json(run_summary(run, out))
    return 0


def print_json(value) -> None:
    """``value`` as strict JSON on stdout (NaN as null), the one thing --json prints there."""
    sys.stdout.write(strict_json(value) + "\n")
    sys.stdout.flush()


def run_summary(run, out: Path | None = None) -> dict:
    """What a script wants of a run: its id, status, fill rate by colour, money by fund and
    unmet needs by reason (and where its tables were written)."""
    from wulian.planning.allocate import fill_rate_by_tier, money_by_fund, unmet_by_reason

    info = run.info
    return {
        "run_id": info.get("run_id"), "status": info.get("status"), "week": info.get("week"),
        "centre": info.get("centre"), "out": str(out) if out is not None else None,
        "fill_rate": fill_rate_by_tier(run).to_dict(),
        "funds": money_by_fund(run)[["fund_id", "budget", "used", "left"]].to_dict("records"),
        "unmet_by_reason": {str(k): int(v) for k, v in unmet_by_reason(run).items()},
        "rows": {name: len(frame) for name, frame in run.tables.items()},
    }


def check_centre(scenario: Scenario, centre: str | None) -> None:
    """Refuse, in one bilingual line (exit 2), a --centre the scenario does not have."""
    from wulian.contract.problems import did_you_mean

    centres = scenario.centres["centre_id"]
    if centre and centre not in set(centres):
        hint = did_you_mean(centre, centres)
        raise usage(f"--centre {centre}:场景中没有这个中心{hint.get('close_zh', '')}",
                    f"--centre {centre}: no such centre in the scenario"
                    f"{hint.get('close_en', '')}")


def check_scope(scenario: Scenario, week: str | None, centre: str | None) -> None:
    """Refuse, in one bilingual line, a week or centre that names nothing (exit 2) or a scope
    with no need to allocate (exit 1), before any model is built."""
    from wulian.planning.validate import WEEK_PATTERN

    if week and not WEEK_PATTERN.match(week):
        raise usage(f"--week {week}:周次写作 2026-W49", f"--week {week}: write an ISO week "
                    "such as 2026-W49")
    check_centre(scenario, centre)
    needs = scenario.needs
    if week:
        needs = needs[needs["week"] == week]
    if centre:
        from wulian.optimizer.allocation import member_mask

        hh = scenario.households
        inside = hh.loc[member_mask(hh["station_id"], scenario.hierarchy.subtree(centre)
                                    .to_numpy()), "household_id"]
        needs = needs[member_mask(needs["household_id"], inside.to_numpy(object))]
    if needs.empty:
        weeks = sorted(set(scenario.needs["week"].dropna()) - {""})
        shown = ", ".join(weeks[:6]) + (" …" if len(weeks) > 6 else "")
        scope_zh = (f"第 {week} 周" if week else "") + (f"中心 {centre} " if centre else "")
        scope_en = " ".join(p for p in (f"week {week}" if week else "",
                                        f"centre {centre}" if centre else "") if p)
        raise failed(f"{scope_zh}没有可分配的需求(有需求的周:{shown})",
                     f"nothing to allocate: no need in {scope_en or 'the scenario'} "
                     f"(weeks with needs: {shown})")


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
    check_scope(scenario, args.week, args.centre)
    try:
        from wulian.optimizer.allocation import AllocationParams

        return _allocate_and_show(scenario, Path(args.out), args.format, args.week, args.centre,
                                  args.store, AllocationParams(decompose=args.decompose),
                                  args.lang, args.json)
    except PinError as err:
        say_error("锁定无法保持 / pins that cannot be kept: "
                  + "; ".join(str(p) for p in err.problems))
        return 1


def _policy(path: str | None):
    from wulian.demand.policy import Policy

    return Policy.load(path) if path else None


def _with_pins(scenario: Scenario, pins_path: str) -> Scenario | None:
    """The scenario with its pins table replaced by the pins file (validated with the rest)."""
    from wulian.planning.io import as_text, decode_csv

    if not Path(pins_path).is_file():
        raise usage(f"--pins {pins_path}:文件不存在", f"--pins {pins_path}: no such file")
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
    from wulian.planning.store import RunStore

    scenario = load_or_report(args.path)
    if scenario is None:
        return 1
    check_scope(scenario, args.week, args.centre)
    try:
        proving = {"travel_search": True, "settled_bounds": True} if args.prove_travel else None
        plan = _plan(scenario, RunStore(args.store), proving, week=args.week, centre=args.centre)
        return _match_and_show(scenario, plan.run, Path(args.out), args.format, plan.match,
                               lang=args.lang, as_json=args.json)
    except PinError as err:
        say_error("志愿者锁定无法保持 / volunteer pins that cannot be kept: "
                  + "; ".join(str(p) for p in err.problems))
        return 1


# The demo's matching: 1 s of CP-SAT deterministic time per level keeps the demo short; the
# levels report their bounds, so a time-limited level says so.
DEMO_MATCH = {"time_limit": 1.0}


def _plan(scenario: Scenario, store, params: dict | None, week: str | None = None,
          centre: str | None = None):
    """One plan for the week: allocation and matching in rounds until every volunteer
    service visit the allocation promises is placed (``planning.match.plan_week``)."""
    from wulian.optimizer.visits import MatchParams
    from wulian.planning.match import plan_week

    with console.status("分配与匹配 / allocating and matching volunteers (one plan) …"):
        return plan_week(scenario, week=week, centre=centre, store=store,
                         match_params=MatchParams(**(params or {})))


def _match_and_show(scenario: Scenario, run, out: Path, fmt: str, match, lang: str = "zh",
                    as_json: bool = False) -> int:
    """Print a matching's levels, load and unplaced visits; write its tables with the
    reconciled allocation (CSV/Parquet folder, or one workbook with a printable sheet per
    volunteer)."""

    from wulian.planning.match import reconciled_tables, write_workbook

    tables = {**match.tables, **reconciled_tables(scenario, run, match)}
    if fmt == "xlsx":
        written = write_workbook(match, out / "matching.xlsx",
                                 {k: v for k, v in tables.items() if k not in match.tables},
                                 lang)
    else:
        written = write_tables({k: excel_safe(v) for k, v in tables.items()}, out, fmt)
    out.mkdir(parents=True, exist_ok=True)
    (out / "match.json").write_text(strict_json(match.info) + "\n", encoding="utf-8")
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
    proof = info["proof"]
    console.print(f"证明 / proof: {proof['words_zh']}\n  {proof['words_en']}")
    rounds = info.get("rounds") or []
    if rounds:
        left = rounds[-1]["unplaced_service_visits"]
        console.print(
            f"分配与匹配共 {len(rounds)} 轮 / {len(rounds)} round(s) of allocation and matching: "
            + ("分配承诺的志愿服务走访全部安排 / every volunteer service visit the allocation "
               "promises is placed" if left == 0 else
               f"仍有 {left} 次服务走访未安排，已移入未满足 / {left} service visits still "
               "unplaced, moved to unmet"))
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
    if as_json:
        print_json({"run_id": run.info.get("run_id"), "out": str(written),
                    "status": str(match.status), "method": match.method,
                    "placed": len(match.assignments), "unplaced": len(match.unplaced),
                    "unplaced_by_reason": {str(k): int(v) for k, v in
                                           match.unplaced.groupby("reason").size().items()},
                    "hours": float(load["hours"].sum()), "info": match.info})
    return 0


def _parse_set(items: list[str]) -> dict[str, float]:
    budgets = {}
    for item in items:
        fund, _, yuan_text = item.partition("=")
        try:
            amount = float(yuan_text)
        except ValueError:
            amount = math.nan
        if not fund.strip() or not math.isfinite(amount) or amount < 0:
            raise usage(f"--set {item}:写作 基金=元,如 F001=250000",
                        f"--set {item}: write FUND=YUAN, e.g. F001=250000")
        budgets[fund.strip()] = amount
    return budgets


def cmd_budget(args: argparse.Namespace) -> int:
    from wulian.optimizer.budget import EquityDial
    from wulian.planning.budget import BudgetLab, plot_curve

    if args.plot and not args.sweep:
        raise usage("--plot 需要与 --sweep 同用(画的是预算曲线)",
                    "--plot needs --sweep (it draws the sweep's curve)")
    sweep = _parse_sweep(args.sweep) if args.sweep else None
    budgets = _parse_set(args.set or [])
    scenario = load_or_report(args.path)
    if scenario is None:
        return 1
    check_scope(scenario, args.week, args.centre)
    funds = set(scenario.funds["fund_id"])
    for fund in [*budgets, *([sweep[0]] if sweep and sweep[0] != "all" else [])]:
        if fund not in funds:
            from wulian.contract.problems import did_you_mean

            hint = did_you_mean(fund, funds)
            raise usage(f"基金 {fund} 不在场景中{hint.get('close_zh', '')}",
                        f"no fund {fund} in the scenario{hint.get('close_en', '')}")
    equity = EquityDial(floor=args.equity_floor) if args.equity_floor is not None else None
    with console.status("建立预算模型 / building the budget lab …"):
        lab = BudgetLab.from_scenario(scenario, week=args.week, centre=args.centre)
    solution = lab.solve(budgets or None, equity=equity)
    if solution.status != "optimal":
        raise failed(str(solution.message), str(solution.message))
    result: dict = {"status": solution.status, "seconds": solution.seconds,
                    "colours": solution.colours.to_dict("records"),
                    "funds": solution.funds.to_dict("records")}
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
    if sweep:
        fund, start, stop, steps = sweep
        with console.status("预算曲线 / sweeping the budget …"):
            curve = lab.sweep(start, stop, steps, None if fund == "all" else fund,
                              equity=equity)
        wide = curve.pivot_table(index="budget", columns="colour", values="fill_rate",
                                 sort=True).reindex(columns=list(vocab.TIER_ORDER))
        wide.index = pd.Index([yuan(b) for b in wide.index], name="预算 budget")
        console.print(frame_table(wide, f"覆盖-预算曲线 / coverage vs budget ({fund})",
                                   dict.fromkeys(vocab.TIER_ORDER, pct)))
        result["curve"] = curve.to_dict("records")
        if args.plot:
            path = plot_curve(curve, args.plot)
            console.print(f"曲线图已写入 / curve written: {path}")
            result["plot"] = str(path)
    if args.json:
        print_json(result)
    return 0


def _parse_sweep(text: str) -> tuple[str, float, float, int]:
    parts = text.split(":")
    bad = usage(f"--sweep {text}:写作 基金:起:止:步数,如 F001:0:500000:11 或 all:0.5:1.5:5",
                f"--sweep {text}: write FUND:FROM:TO:STEPS, e.g. F001:0:500000:11 or "
                "all:0.5:1.5:5")
    if len(parts) != 4 or not parts[0]:
        raise bad
    try:
        start, stop, steps = float(parts[1]), float(parts[2]), int(parts[3])
    except ValueError:
        raise bad from None
    if steps < 2 or not (math.isfinite(start) and math.isfinite(stop)) or start < 0 \
            or stop < start:
        raise bad
    return parts[0], start, stop, steps


def cmd_runs(args: argparse.Namespace) -> int:
    from wulian.planning.store import RunStore, diff_runs, redact_url

    store = RunStore(args.store)
    wanted = {"list": (0, 0), "show": (1, 1), "diff": (1, 2)}[args.action]
    if not wanted[0] <= len(args.ids) <= wanted[1]:
        raise usage({"list": "runs list 不带运行编号", "show": "runs show 需要一个运行编号,如 "
                     "`wulian runs show 3`", "diff": "runs diff 需要一或两个运行编号:[旧] 新"}
                    [args.action],
                    {"list": "runs list takes no run id", "show": "runs show needs one run id, "
                     "e.g. `wulian runs show 3`", "diff": "runs diff needs one or two run ids: "
                     "[OLD] NEW"}[args.action])
    if args.action == "list":
        runs = store.list()
        if args.json:
            print_json(runs.to_dict("records"))
            return 0
        if runs.empty:
            console.print(f"还没有运行记录 / no runs yet in {redact_url(store.url)}")
            return 0
        shown = runs.assign(input_digest=runs["input_digest"].str[:12],
                            policy_digest=runs["policy_digest"].str[:12])
        console.print(frame_table(shown, f"运行记录 / runs in {redact_url(store.url)}",
                                  index=False))
        return 0
    if args.action == "show":
        run = _load_run(store, args.ids[0])
        if args.json:
            print_json({"run_id": run.run_id, "info": run.info,
                        "rows": {name: len(frame) for name, frame in run.tables.items()}})
            return 0
        console.print_json(strict_json(run.info))
        for name, frame in run.tables.items():
            console.print(f"  {name}: {count(len(frame))} rows")
        return 0
    if len(args.ids) == 1:
        new = _load_run(store, args.ids[0])
        old = store.previous(new.run_id)
        if old is None:
            raise failed(f"运行 {new.run_id} 之前没有可比的运行",
                         f"no earlier run to compare run {new.run_id} with")
    else:
        old, new = _load_run(store, args.ids[0]), _load_run(store, args.ids[1])
    changes = diff_runs(old, new)
    if args.json:
        print_json({"old": old.run_id, "new": new.run_id,
                    "changes": changes.to_dict("records")})
        return 0
    counts = changes["direction"].value_counts()
    console.print(f"运行 {old.run_id} → {new.run_id}: "
                  + ", ".join(f"{k} {v}" for k, v in counts.items()))
    shown = changes[["household_id", "tier", "direction", "fill_before", "fill_after", "why"]]
    console.print(frame_table(shown.head(args.limit), "变化的家庭 / households that changed",
                               {"fill_before": pct, "fill_after": pct}, index=False))
    return 0


def _load_run(store, run_id: int):
    try:
        return store.load(run_id)
    except KeyError:
        raise usage(f"没有运行 {run_id}(`wulian runs list` 列出全部)",
                    f"no run {run_id} in the store (`wulian runs list` lists them)") from None


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
    if missing_extra("streamlit", "app"):
        return 2
    from importlib import resources

    app = Path(str(resources.files("wulian.ui").joinpath("app.py")))
    from wulian.planning.limits import MB, limits

    argv = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
            # The file box takes what the service takes (WULIAN_MAX_BODY_BYTES), not 200 MB.
            "--server.maxUploadSize", str(max(1, limits().max_body_bytes // MB))]
    if args.headless:
        argv += ["--server.headless", "true"]
    argv += ["--server.address", args.host]
    env = {**os.environ, **({"WULIAN_STORE": args.store} if args.store else {})}
    console.print(f"五联界面 / the wulian app: http://{args.host}:{args.port} "
                  "(Ctrl+C 停止 / to stop; 需要登录 / sign in with a token from "
                  "`wulian token create`)")
    return run_child(argv, env)


def run_child(argv: list[str], env: dict[str, str]) -> int:
    """Run a child process that stops with this one: on SIGTERM or SIGHUP here it is sent
    SIGTERM (then SIGKILL after 20 s), and on Linux the kernel sends it SIGTERM should this
    process die without a word (``kill -9``)."""
    import signal
    import subprocess

    def die_with_parent() -> None:
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:  # not Linux: the signal handlers below still stop it
            pass

    child = subprocess.Popen(argv, env=env, preexec_fn=die_with_parent)  # noqa: PLW1509

    def stop(_signum, _frame) -> None:
        child.terminate()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return child.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the child too (the same process group)
        return 0
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_formats(args: argparse.Namespace) -> int:
    from wulian.contract.formats import render_formats

    text = render_formats()
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        console.print(f"已写入 / written: {args.out}")
    else:
        sys.stdout.write(text + "\n")
    return 0


STORE_HELP = ("run store URL (default $WULIAN_STORE, else runs.sqlite in the user's data "
              "directory, e.g. ~/.local/share/wulian)")


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print the result as strict JSON on stdout (nothing else goes there)")


def add_lang(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lang", choices=["zh", "en", "both"], default="zh",
                   help="workbook language: zh 中文 (default), en, or both (bilingual headers)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wulian", description="五联 wulian — 社会救助需求与五个联动资源的精准对接 / "
                                   "link social-assistance needs to the five linkages' supply")
    from wulian import __version__

    parser.add_argument("--version", action="version", version=f"wulian {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing but errors (on stderr) and --json output")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="on an unexpected error, print the whole traceback")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="演示 / the main job on the bundled demo scenario")
    p.add_argument("path", nargs="?", default=str(DEMO), help="scenario (default: bundled demo)")
    p.add_argument("--out", default="out/demo", help="where the output tables go")
    p.add_argument("--store", help=STORE_HELP)
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
    add_lang(p)
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--decompose", choices=["auto", "always", "never"], default="auto",
                   help="solve district by district in parallel (auto: large multi-district "
                        "weeks)")
    add_json(p)
    p.set_defaults(func=cmd_allocate)

    p = sub.add_parser("match", help="志愿者匹配 / allocate, then match volunteers to visits")
    p.add_argument("path", help="scenario: folder of CSV or Parquet files, or one .xlsx")
    p.add_argument("--out", required=True, help="folder for the output tables")
    p.add_argument("--centre", help="only this centre's subtree")
    p.add_argument("--week", help="ISO week, e.g. 2026-W49")
    p.add_argument("--format", choices=FORMATS, default="csv",
                   help="csv or parquet folder, or xlsx: one workbook with a printable sheet "
                        "per volunteer")
    p.add_argument("--prove-travel", action="store_true",
                   help="路程再搜索、再在该路程内求最多的服务连续性,并以全部配对求界"
                        "(较慢,区县示例约多 40 秒 CPU)/ search travel from the repaired "
                        "plan, then the most continuity at that travel, and bound travel and "
                        "continuity over every pair (slower: about 40 s more CPU on the "
                        "district demo)")
    add_lang(p)
    p.add_argument("--store", help=STORE_HELP)
    add_json(p)
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
    add_json(p)
    p.set_defaults(func=cmd_budget)

    p = sub.add_parser("runs", help="运行记录 / list, show and diff recorded runs")
    p.add_argument("action", choices=["list", "show", "diff"])
    p.add_argument("ids", nargs="*", type=int, help="run id(s): show ID; diff [OLD] NEW")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--limit", type=int, default=30, help="rows of the diff to show")
    add_json(p)
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
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 "
                        "for the network, behind TLS)")
    p.add_argument("--headless", action="store_true", help="do not open a browser")
    p.add_argument("--store", help=STORE_HELP)
    p.set_defaults(func=cmd_ui)

    add_plan(sub)  # plan (the quarterly planner)
    add_service_commands(sub)  # serve, token, jobs (the batch service)
    add_cycle_commands(sub)  # db, register, week, funds, simulate (the weekly cycle)
    return parser


# -q and -v may stand anywhere on the line, as scripts write them (no command uses them else).
GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose")


def stop_solver_threads() -> None:
    """Join HiGHS' worker threads: left running at exit they abort the process ("terminate
    called without an active exception") after a Ctrl-C."""
    import highspy

    highspy.Highs.resetGlobalScheduler(True)


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit 0 on success, 1 when the data or the domain says no, 2 for a
    mistake on the command line — each mistake one bilingual line on stderr."""
    from_shell = argv is None  # the command line's own process (not a caller's function)
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [a for a in argv if a in GLOBAL_FLAGS] + [a for a in argv if a not in GLOBAL_FLAGS]
    args = build_parser().parse_args(argv)
    set_verbosity(args.quiet or getattr(args, "json", False))
    announce_default_store(args)
    try:
        return args.func(args)
    except CliError as err:
        say_error(str(err))
        return err.code
    except ValidationError as err:
        report_problems(err.problems)
        return FAILED
    except PolicyError as err:  # --policy names a file with mistakes: the user's to fix
        report_problems(policy_problems(err), POLICY_NOT_USED)
        return FAILED
    except FileNotFoundError as err:
        said = str(err)
        if err.filename and not any("\u4e00" <= ch <= "\u9fff" for ch in said):
            # The system's English ("[Errno 2] No such file or directory"): in both languages.
            said = f"文件或文件夹不存在:{err.filename} / no such file or folder: {err.filename}"
        say_error(said)
        return USAGE
    except KeyError as err:
        say_error(f"未找到 / not found: {err.args[0] if err.args else err}")
        return USAGE
    except StoreUrlError as err:  # --store (or $WULIAN_STORE) names no database to open
        from wulian.planning.store import redact_url, store_url

        # The type, not the message: SQLAlchemy's message repeats the URL, password and all.
        url = redact_url(store_url(getattr(args, "store", None)))
        say_error(f"无法识别运行库地址 {url} / not a store URL: {url} ({type(err).__name__})")
        return USAGE
    except KeyboardInterrupt:
        # Between two solver calls: nothing of this run was recorded (a run is saved whole,
        # in one transaction, after the solve), so the store is as it was.
        stop_solver_threads()
        console.print("\n[bold yellow]已中断 / interrupted[/]: 运行未记录 / nothing was recorded")
        if from_shell:
            # End without the C++ static destructors, which abort on a solver thread still
            # parked in them (SIGABRT instead of 130).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(INTERRUPTED)
        return INTERRUPTED
    except Exception as err:  # noqa: BLE001 - a script gets one line and an exit code
        if args.verbose:
            raise
        say_error(f"内部错误 / internal error: {type(err).__name__}: {err} "
                  "(-v 显示完整信息 / -v shows the traceback)")
        return FAILED


def announce_default_store(args: argparse.Namespace) -> None:
    """Say once, on stderr, where runs are kept when the user named no store: the first time
    the default store is about to be made."""
    import os

    from wulian.planning.store import default_store_path

    if not hasattr(args, "store") or args.store or os.environ.get("WULIAN_STORE"):
        return
    path = default_store_path()
    if not path.exists():
        say_note(f"运行记录保存在 / runs are kept in {path} (--store URL 或 / or "
                 "$WULIAN_STORE 可另选 / to choose another)")


def say_note(message: str) -> None:
    from wulian.api.console import errors

    if not console.quiet:
        errors.print(message, markup=False, highlight=False)


if __name__ == "__main__":
    raise SystemExit(main())
