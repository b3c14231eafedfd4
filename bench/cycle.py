"""The weekly cycle's benchmark: the register, a week opened, answered and closed, a quarter.

Usage::

    python -m bench.cycle [--preset district|city] [--data DIR] [--store URL] [--weeks N]
                          [--answers N]

What it measures (issue 15's targets, printed beside each figure), in one process on one store
(a fresh SQLite file by default; ``--store`` names another, e.g. PostgreSQL — its schema is
emptied first):

* **import**: ``wulian register import`` of the preset into an empty register; the reference in
  the same run is pandas' ``DataFrame.to_sql`` of the same rows as plain text (no diff, no
  events, no validation) into a table of its own;
* **re-import**: the same scenario with 1 % of the households, needs and offers changed, and
  whether the report names exactly those rows;
* **week open** (snapshot, allocation, matching, tasks stored) with its peak memory (its
  process and workers, ``bench.quarter.PeakMemory``): the command ``wulian week open WEEK
  --store URL``, run as a coordinator runs it, in a process of its own, timed from its start
  (Python's and the package's imports included) to its end. ``--open-here`` opens the week in
  this process instead (the scenario and its changed copy this script loaded are dropped
  first; the resident memory it starts from is printed beside), as the simulated weeks are;
* **record**: the week's workbooks published, ``--answers`` tasks (20,000 by default, all when
  fewer) filled in with openpyxl, then the workbooks that hold them read back and recorded
  (``taskbook.read_answers`` + ``cycle.record_answers``); filling them is not timed;
* **close** of the week;
* **the quarter**: ``--weeks`` weeks in all (13 by default) played by the simulator from
  there, each step's time and the store's size after the last week.

The simulated needs arrive at the policy's ``[quarter] arrival_rate`` and wait until served
unless ``[cycle] expire_weeks`` says otherwise. The packaged policy's 1.0 and 0 make a city
whose every week brings as many new needs as its whole first week, which its supply cannot
serve: the backlog, and each week's allocation with it, then grows without end.
``--arrival R`` (every colour) and ``--expire W`` play a centre in steady state instead (new
needs at the rate its supply serves them, needs lapsing after W weeks carried).

Times are wall seconds; the machine's load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from bench import children_cpu, preset_folder
from bench.match import loadavg
from bench.quarter import PeakMemory

console = Console(highlight=False, width=max(Console().width, 120))
TARGETS = {"city": {"import": 30.0, "reimport": 10.0, "open": 90.0, "record": 15.0,
                    "close": 10.0, "open_mib": 4096.0, "alerts": 5.0, "performance": 10.0,
                    "inbox": 2.0}}


def _fresh_store(url: str | None, folder: Path) -> str:
    if url is None:
        return f"sqlite:///{folder / 'cycle.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def _store_size(register) -> str:
    engine = register.engine
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database)
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    else:
        with engine.connect() as conn:
            size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()
    return f"{size / 2**20:,.0f} MiB"


def _changed(scenario, rng: np.random.Generator):
    """The scenario with 1 % of households, needs and offers changed; and which ids."""
    from wulian.planning.scenario import Scenario

    tables = {k: v.copy() for k, v in scenario.tables.items()}
    picked = {}
    for name, column, change in (("households", "d_health", lambda s: 1 - s),
                                 ("needs", "urgency", lambda s: s % 3 + 1),
                                 ("offers", "capacity", lambda s: s + 1)):
        frame = tables[name]
        rows = rng.choice(len(frame), size=max(1, len(frame) // 100), replace=False)
        frame.loc[frame.index[rows], column] = change(frame.loc[frame.index[rows], column])
        picked[name] = set(frame[frame.columns[0]].iloc[rows])
    return Scenario.from_tables(tables, scenario.policy), picked


def _fill(paths: list[Path], limit: int, rng: np.random.Generator) -> tuple[int, list[Path]]:
    """Answer up to ``limit`` tasks in the workbooks (mostly delivered, some declined); the
    count and the workbooks that came back filled."""
    from openpyxl import load_workbook

    filled, back = 0, []
    for path in paths:
        if filled >= limit:
            break
        back.append(path)
        wb = load_workbook(path)
        ws = wb["任务 tasks"]
        header = {c.value: c.column for c in ws[1]}
        for r in range(2, ws.max_row + 1):
            if filled >= limit:
                break
            declined = rng.random() < 0.1
            ws.cell(r, header["状态 status"], "已拒绝" if declined else "已完成")
            if declined:
                ws.cell(r, header["原因 reason"], "人手或物资不足")
            filled += 1
        wb.save(path)
    return filled, back


# A stuck open (a lock held by another process, a solver that does not stop) ends the
# benchmark with a message instead of holding it for ever: twenty times the city's quiet open.
OPEN_TIMEOUT = 1800


def _open_command(url: str, week: str) -> tuple[float, str]:
    """``wulian week open WEEK`` run as a coordinator runs it, in a process of its own;
    returns its wall seconds and the line where it prints its steps' seconds. The command
    reads the packaged policy: a first week's open reads neither value ``--arrival`` and
    ``--expire`` change (the simulated weeks' arrivals, the close's expiry)."""
    # The package's script beside this interpreter (a virtual environment's), else on PATH.
    script = shutil.which("wulian", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                          os.environ.get("PATH", "")]))
    if script is None:
        raise SystemExit("wulian week open: the `wulian` command is not installed beside "
                         f"{sys.executable} or on PATH (pip install -e .)")
    command = [script, "week", "open", week, "--store", url]
    start = time.perf_counter()
    # (wide, so that its line of seconds is one line)
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              env={**os.environ, "COLUMNS": "400"}, timeout=OPEN_TIMEOUT)
    except subprocess.TimeoutExpired as err:  # (run has killed it)
        said = err.stderr or ""  # (what it wrote before, bytes or text as it was read)
        said = said.decode(errors="replace") if isinstance(said, bytes) else said
        raise SystemExit(f"wulian week open: stopped after {OPEN_TIMEOUT} s\n{said[-3000:]}"
                         ) from None
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"wulian week open: exit {done.returncode}\n{done.stderr[-3000:]}")
    steps = [line for line in done.stdout.splitlines() if "seconds" in line]
    return seconds, (steps[-1].split("seconds", 1)[1].strip() if steps else "")


def _quarter_reads(register, first: str, last: str, row) -> None:
    """Issue 16's reads on the played quarter: every alert evaluated on demand, the
    performance tables of the whole network and the quarter, one street's inbox in the app."""
    from wulian.planning import alerts, performance
    from wulian.ui import register_data

    for step in ("alerts evaluated", "alerts evaluated again"):  # (again: nothing changes)
        start = time.perf_counter()
        evaluated = alerts.evaluate(register, last)
        row(step, time.perf_counter() - start,
            f"{evaluated.findings:,} conditions at {last}: {evaluated.opened:,} opened, "
            f"{evaluated.updated:,} updated, {evaluated.resolved:,} resolved", "alerts")
    for by in ("provider", "fund", "street"):
        start = time.perf_counter()
        tables = performance.performance(register, by, first, last)
        row(f"performance by {by}", time.perf_counter() - start,
            f"{first}:{last}, whole network: {len(tables[f'by_{by}']):,} rows by {by}, "
            f"{len(tables['fill_rate']):,} of fill rate", "performance")
    url = register.engine.url.render_as_string(hide_password=False)
    street = register.table("centres").query("level == 'street'")["centre_id"].iloc[0]
    register_data.inbox.clear()
    register_data.scope.clear()
    register_data.centres.clear()
    start = time.perf_counter()
    mark = register_data.marker(url)
    box = register_data.inbox(url, mark, street)
    row("inbox of one street", time.perf_counter() - start,
        f"{street}: {len(box.alerts):,} alerts, {box.task_count:,} tasks, "
        f"{box.visit_count:,} visits (the app's reads, caches empty)", "inbox")


def _steady(policy, arrival: float | None, expire: int | None):
    """The policy with every colour's arrival rate and the weeks before a need expires
    replaced (where given)."""
    from wulian.demand.policy import Policy

    data = policy.to_dict()
    if arrival is not None:
        data["quarter"]["arrival_rate"] = dict.fromkeys(data["quarter"]["arrival_rate"], arrival)
    if expire is not None:
        data["cycle"]["expire_weeks"] = expire
    return Policy.from_dict(data, source="bench.cycle")


def run(preset: str, data: str | None, store: str | None, weeks: int, answers: int,
        arrival: float | None = None, expire: int | None = None, open_here: bool = False
        ) -> None:
    from wulian.optimizer.memory import release_memory
    from wulian.planning import cycle, taskbook
    from wulian.planning.register import Actor, Register
    from wulian.planning.scenario import load_scenario
    from wulian.planning.simulate import simulate
    from wulian.planning.store import RunStore

    rows: list[tuple[str, str, str, str]] = []
    target = TARGETS.get(preset, {})

    def row(step: str, seconds: float, note: str = "", key: str = "") -> None:
        goal = f"≤ {target[key]:g} s" if key in target else "—"
        rows.append((step, f"{seconds:.1f}", goal, note))
        console.print(f"  {step}: {seconds:.1f} s {note}")

    console.print(f"load average before: {loadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = preset_folder(preset, data, tmp)
        scenario = load_scenario(folder)
        policy = _steady(scenario.policy, arrival, expire)
        quarter = policy.to_dict()
        console.print(f"simulated arrivals {quarter['quarter']['arrival_rate']}, needs expire "
                      f"after {quarter['cycle']['expire_weeks']} weeks carried (0: never)")
        url = _fresh_store(store, Path(tmp))
        register = Register(RunStore(url), Actor("bench", "simulator"), policy)
        backend = register.engine.dialect.name
        console.print(f"[bold]{preset}[/] on {backend}: "
                      + ", ".join(f"{k} {len(v):,}" for k, v in scenario.tables.items()))

        start = time.perf_counter()
        with register.engine.begin() as conn:
            for name, frame in scenario.tables.items():
                frame.astype(str).to_sql(f"reference_{name}", conn, index=False,
                                         chunksize=50_000, method=None)
        reference = time.perf_counter() - start
        start = time.perf_counter()
        report = register.import_scenario(scenario)
        seconds = time.perf_counter() - start
        row("import", seconds, f"{report.total:,} rows + {report.assessments:,} assessments; "
            f"reference to_sql {reference:.1f} s (× {seconds / reference:.1f})", "import")

        changed, picked = _changed(scenario, np.random.default_rng(0))
        start = time.perf_counter()
        again = register.import_scenario(changed)
        seconds = time.perf_counter() - start
        exact = all(set(again.changes[name].changed) == ids for name, ids in picked.items()) \
            and again.total == sum(len(v) for v in picked.values())
        row("re-import, 1 % changed", seconds,
            f"{again.total:,} changes reported, exactly those: {exact}", "reimport")

        week = str(changed.needs["week"].max())
        # The two scenarios loaded here (over a GiB on the city, nothing the open reads) would
        # count in an open's peak in this process.
        del scenario, changed, report, again
        release_memory()
        before = PeakMemory().sample()
        with PeakMemory() as peak:
            if open_here:
                start = time.perf_counter()
                steps = cycle.open_week(register, week).seconds
                seconds = time.perf_counter() - start
            else:
                seconds, steps = _open_command(url, week)
        with register.engine.connect() as conn:
            n_tasks = conn.scalar(sa.select(sa.func.count()).select_from(cycle.TASKS)
                                  .where(cycle.TASKS.c.week == week))
        if open_here:
            memory = f"peak {peak.peak / 2**20:,.0f} MiB ({before / 2**20:,.0f} MiB before it)"
        else:  # the command's own: this process's resident memory, constant meanwhile, left out
            memory = f"peak {(peak.peak - before) / 2**20:,.0f} MiB"
        row("week open", seconds, f"{'in this process' if open_here else 'wulian week open'}: "
            f"{n_tasks:,} tasks; {memory} (target ≤ 4,096); {steps}", "open")

        books = Path(tmp) / "books"
        start = time.perf_counter()
        paths = taskbook.publish_week(register, week, books)
        publish = time.perf_counter() - start
        filled, back = _fill(paths, answers, np.random.default_rng(1))
        start = time.perf_counter()
        read = taskbook.read_answers(back)
        recorded = cycle.record_answers(register, read)
        seconds = time.perf_counter() - start
        row("publish", publish, f"{len(paths):,} workbooks")
        row("record answers from workbooks", seconds,
            f"{filled:,} answers in {len(back):,} workbooks, {recorded.changed:,} tasks changed, "
            f"{recorded.visits:,} visit results", "record")

        start = time.perf_counter()
        closed = cycle.close_week(register, week)
        seconds = time.perf_counter() - start
        row("week close", seconds, f"{closed.carried:,} carried, {closed.delivered:,} "
            f"delivered, {closed.unanswered:,} unanswered", "close")

        cpu = [time.process_time() + children_cpu()]  # (the weeks' CPU, workers' included)

        def week_done(w) -> None:
            cpu.append(time.process_time() + children_cpu())
            console.print(f"  {w.week}: {w.seconds}, CPU {cpu[-1] - cpu[-2]:.1f} s, "
                          f"store {_store_size(register)}")

        played = simulate(register, max(weeks - 1, 0), seed=0, on_week=week_done)
        for w, used in zip(played, np.diff(cpu), strict=True):
            row(f"simulated {w.week}", sum(w.seconds[k] for k in ("open", "publish", "record",
                                                                   "close", "alerts")),
                f"{w.tasks:,} tasks, {w.carried:,} carried, {w.needs_arrived:,} arrived; open "
                f"{w.seconds['open']:.1f} s, record {w.seconds['record']:.1f} s, close "
                f"{w.seconds['close']:.1f} s, alerts {w.seconds['alerts']:.1f} s "
                f"({w.alerts_open:,} opened); CPU {used:.1f} s")
        if played:
            _quarter_reads(register, week, str(played[-1].week), row)
        rows.append(("store size", "", "", _store_size(register)))
        register.engine.dispose()

    table = Table(title=f"weekly cycle, {preset} on {backend}", title_justify="left")
    for name in ("step", "seconds", "target", "what"):
        table.add_column(name, justify="right" if name == "seconds" else "left")
    for r in rows:
        table.add_row(*r)
    console.print(table)
    console.print(f"load average after: {loadavg()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["district", "city"], default="district")
    parser.add_argument("--data", help="the preset's scenario folder (default: made or bundled)")
    parser.add_argument("--store", default=os.environ.get("WULIAN_BENCH_STORE"),
                        help="store URL (default: a fresh SQLite file)")
    parser.add_argument("--weeks", type=int, default=13)
    parser.add_argument("--answers", type=int, default=20_000)
    parser.add_argument("--arrival", type=float,
                        help="new needs a week per colour, as a share of the first week's "
                             "(default: the policy's [quarter] arrival_rate)")
    parser.add_argument("--expire", type=int,
                        help="weeks carried before a need expires, 0 never (default: the "
                             "policy's [cycle] expire_weeks)")
    parser.add_argument("--open-here", action="store_true",
                        help="open the first week in this process, not as `wulian week open`")
    args = parser.parse_args(argv)
    run(args.preset, args.data, args.store, args.weeks, args.answers, args.arrival,
        args.expire, args.open_here)


if __name__ == "__main__":
    main()
