"""The weekly cycle (四项同步): a week opened from the register, its tasks answered, then closed.

- :func:`open_week` draws the week's scenario from the register (open needs with their age,
  each fund's balance, the supply other centres' open weeks have not taken), allocates and
  matches it as ``wulian allocate`` and ``wulian match`` do, and turns every allocation and
  every placed volunteer visit into a task (任务) — in one transaction that also holds the
  week's lock, so two centres opening the same week never spend the same supply twice.
- :func:`record_answers` takes providers' and volunteers' answers (from workbooks,
  :mod:`wulian.planning.taskbook`, or the API one at a time) and monitoring visits' results:
  every problem listed, nothing applied unless all is clean, the same answers twice change
  nothing.
- :func:`close_week` carries what was not delivered into the next week (a need's age is
  counted from the week it was raised for, never written), closes needs delivered in full or
  waited out (``expire_weeks``), and writes delivered visits into the history continuity uses.
- :func:`fund_ledger` is the fund ledger (资金台账): planned, committed and spent per fund ×
  street × week, and each fund's balance in its period.

docs/cycle.md holds the rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial

import numpy as np
import pandas as pd
import sqlalchemy as sa

from wulian.contract import vocab
from wulian.contract.hierarchy import Hierarchy
from wulian.contract.problems import Problem, ValidationError
from wulian.optimizer.allocation import AllocationParams, member_mask
from wulian.optimizer.memory import collector_paused, release_memory
from wulian.optimizer.visits import MatchParams
from wulian.planning.allocate import Run, run_allocation
from wulian.planning.db import bulk_insert, bulk_update, fetch_frame, fetch_rows
from wulian.planning.engines import default_workers
from wulian.planning.match import (
    MatchResult,
    match_beside_bounds,
    next_week,
    reconcile,
    reconciled_tables,
    rounds_pool,
    run_matching,
    shift_week,
    week_start,
)
from wulian.planning.register import (
    EPS,
    NEED_STATES,
    OPEN_STATES,
    ROWS,
    WEEKS,
    Events,
    Register,
    RegisterError,
    canonical,
    history_key,
    need_positions,
    now,
    open_needs,
    row_json,
    row_json_sql,
    weeks_waited,
)
from wulian.planning.scenario import Scenario
from wulian.planning.store import RunStore

WHOLE = "*"  # the centre column of a week opened for the whole network
#: Needs in a week's scenario from which :func:`open_week` hands each phase's freed memory
#: back (``release_memory``): a city's week frees about half a GiB per phase; the district
#: demo's (8,020 needs) 4–7 MiB, for a full garbage collection of 70–80 ms of CPU each, three
#: a week (a fifth of the demo street's open).
RELEASE_NEEDS = 50_000

_meta = sa.MetaData()
TASKS = sa.Table(
    "tasks", _meta,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("week", sa.String(8), nullable=False),
    sa.Column("centre", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("need_id", sa.String(64), nullable=False),
    sa.Column("household_id", sa.String(64), nullable=False),
    sa.Column("service_id", sa.String(64), nullable=False),
    sa.Column("provider_id", sa.String(64), nullable=False),
    sa.Column("linkage", sa.String(16), nullable=False),
    sa.Column("offer_id", sa.String(64), nullable=False),
    sa.Column("volunteer_id", sa.String(64), nullable=False),
    sa.Column("fund_id", sa.String(64), nullable=False),
    sa.Column("street_id", sa.String(64), nullable=False),
    sa.Column("station_id", sa.String(64), nullable=False),
    sa.Column("tier", sa.String(8), nullable=False),
    sa.Column("slot", sa.String(8), nullable=False),
    sa.Column("units", sa.Float, nullable=False),
    sa.Column("hours", sa.Float, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("status", sa.String(14), nullable=False),
    sa.Column("units_delivered", sa.Float, nullable=False),
    sa.Column("answered_on", sa.String(10), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)
VISIT_RESULTS = sa.Table(
    "visit_results", _meta,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("household_id", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(8), nullable=False),
    sa.Column("visited_on", sa.String(10), nullable=False),
    sa.Column("indicators", sa.Text, nullable=False),
    sa.Column("new_needs", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("assessment_id", sa.Integer, nullable=True),
    sa.Column("recorded_at", sa.String(32), nullable=False),
)
# Performance facts (planning/performance.py, docs/cycle.md): a closed week's tasks summed once.
FACT_WEEKS = sa.Table(  # the (week, scope) pairs whose facts are stored
    "fact_weeks", _meta,
    sa.Column("week", sa.String(8), primary_key=True),
    sa.Column("centre", sa.String(64), primary_key=True),
    sa.Column("made_at", sa.String(32), nullable=False),
)
OUTCOMES = sa.Table(  # tasks summed per grouping, group and outcome
    "fact_outcomes", _meta,
    sa.Column("fact_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("week", sa.String(8), nullable=False, index=True),
    sa.Column("centre", sa.String(64), nullable=False),
    sa.Column("grouping", sa.String(10), nullable=False),
    sa.Column("grp", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("status", sa.String(14), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("days", sa.Integer, nullable=False),  # to delivery; -1 when not delivered
    sa.Column("tasks", sa.Integer, nullable=False),
    sa.Column("units", sa.Float, nullable=False),
    sa.Column("units_delivered", sa.Float, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("spent", sa.Float, nullable=False),
)
FILLS = sa.Table(  # needs owed, planned and delivered per station and colour
    "fact_fills", _meta,
    sa.Column("fact_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("week", sa.String(8), nullable=False, index=True),
    sa.Column("centre", sa.String(64), nullable=False),
    sa.Column("station_id", sa.String(64), nullable=False),
    sa.Column("tier", sa.String(8), nullable=False),
    sa.Column("needs", sa.Integer, nullable=False),
    sa.Column("planned", sa.Float, nullable=False),
    sa.Column("delivered", sa.Float, nullable=False),
)
REACHED = sa.Table(  # households with a delivered task (reach counts them once over weeks)
    "fact_reached", _meta,
    sa.Column("fact_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("week", sa.String(8), nullable=False, index=True),
    sa.Column("centre", sa.String(64), nullable=False),
    sa.Column("tier", sa.String(8), nullable=False),
    sa.Column("household_id", sa.String(64), nullable=False),
)
SHORTFALLS = sa.Table(  # units unmet for lack of capacity per service and street (alerts)
    "fact_shortfalls", _meta,
    sa.Column("fact_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("week", sa.String(8), nullable=False, index=True),
    sa.Column("centre", sa.String(64), nullable=False),
    sa.Column("service_id", sa.String(64), nullable=False),
    sa.Column("street_id", sa.String(64), nullable=False),
    sa.Column("units", sa.Float, nullable=False),
)
TASK_COLUMNS = tuple(c.name for c in TASKS.columns)
#: A task's statuses until it is answered (settled as not delivered at the week's close).
UNANSWERED = ("planned", "accepted")
# A task's id as a week's open makes it (T2026W49-D04S01-000112): a workbook's row without
# one is no task's (a total, a remark).
TASK_ID = re.compile(r"T\d{4}W\d{2}-\S+-\d{6}")
MONITORING_KINDS = ("monitoring", "visit+monitoring")
# The matching's visit kinds as task kinds.
_VISIT_KIND = {"service": "visit", "monitoring": "monitoring",
               "service+monitoring": "visit+monitoring"}


class CycleError(ValueError):
    """A step of the cycle that cannot be taken as asked (bilingual message)."""


def check_week(week: str) -> str:
    """``week`` if it is an ISO week written like 2027-W02."""
    try:
        week_start(week)
    except (ValueError, AttributeError):
        raise CycleError(f"不是 ISO 周次:{week!r}(格式如 2027-W02) / not an ISO week: "
                         f"{week!r} (write it like 2027-W02)") from None
    return week


def week_days(week: str) -> tuple[date, date]:
    """Monday and Sunday of an ISO week."""
    monday = week_start(week)
    return monday, monday + timedelta(days=6)


def period_bounds(week: str, length: int) -> tuple[int, int]:
    """First and last week number of the fund period ``week`` falls in: blocks of ``length``
    ISO weeks from the year's first week (13: the quarters); a year's 53rd week belongs to
    the block before it."""
    number = int(week.split("-W")[1])
    block = min((number - 1) // length, (52 - 1) // length)
    first = block * length + 1
    last = 53 if number == 53 else min(first + length - 1, 52)
    return first, max(last, number)


def period_weeks(week: str, length: int) -> list[str]:
    """The weeks of ``week``'s fund period up to and including ``week``."""
    year = int(week.split("-W")[0])
    first, _ = period_bounds(week, length)
    return [f"{year}-W{n:02d}" for n in range(first, int(week.split("-W")[1]) + 1)]


# ----------------------------------------------------------------------------- reading


MONEY_COLUMNS = ("fund_id", "status", "units", "units_delivered", "cost")  # delivered_cost's


def tasks_frame(conn: sa.Connection, *where, columns: Iterable[str] = TASK_COLUMNS
                ) -> pd.DataFrame:
    """The tasks ``where`` says, with ``columns`` (every one by default)."""
    return fetch_frame(conn, sa.select(*(TASKS.c[c] for c in columns)).where(*where))


def tasks(register: Register, week: str | None = None, *, provider: str | None = None,
          centre: str | None = None, status: str | None = None) -> pd.DataFrame:
    """Tasks, ordered by id: optionally of one week, one provider, one week's scope, one status."""
    where = []
    if week:
        where.append(TASKS.c.week == week)
    if provider:
        where.append(TASKS.c.provider_id == provider)
    if centre:
        where.append(TASKS.c.centre == centre)
    if status:
        where.append(TASKS.c.status == status)
    with register.engine.connect() as conn:
        return tasks_frame(conn, *where).sort_values("task_id").reset_index(drop=True)


def weeks(register: Register) -> pd.DataFrame:
    """Every week opened, with its state and the run it was allocated in."""
    with register.engine.connect() as conn:
        rows = conn.execute(sa.select(WEEKS).order_by(WEEKS.c.week, WEEKS.c.centre))
        return pd.DataFrame(rows.mappings().all(), columns=[c.name for c in WEEKS.columns])


def delivered_cost(frame: pd.DataFrame) -> np.ndarray:
    """Each task's money spent: its cost in proportion to the units delivered."""
    units = frame["units"].to_numpy(float)
    done = np.where(frame["status"].to_numpy() == "delivered",
                    frame["units_delivered"].to_numpy(float), 0.0)
    per_unit = np.divide(frame["cost"].to_numpy(float), units, out=np.zeros(len(frame)),
                         where=units > EPS)
    # A task of no units (a monitoring visit) costs what it costs when it happens.
    whole = np.where(frame["status"].to_numpy() == "delivered", frame["cost"].to_numpy(float),
                     0.0)
    return np.where(units > EPS, per_unit * done, whole)


def _outstanding(frame: pd.DataFrame) -> np.ndarray:
    """Money promised and not yet settled: sent or accepted tasks."""
    live = np.isin(frame["status"].to_numpy(), UNANSWERED)
    return np.where(live, frame["cost"].to_numpy(float), 0.0)


# ----------------------------------------------------------------------------- open


@dataclass
class OpenedWeek:
    """A week opened: its scenario, allocation, matching, tasks and timings."""

    week: str
    centre: str
    scenario: Scenario
    run: object
    match: object
    tasks: pd.DataFrame
    run_id: int
    seconds: dict = field(default_factory=dict)


def lock(conn: sa.Connection) -> None:
    """Hold the cycle's write lock until the transaction ends (two openings queue)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                     {"key": "wulian-cycle"})
    else:
        # SQLite: a write statement, even one that changes no row, takes the database's write
        # lock, held to the end of the transaction; wait for it (a city week takes a minute).
        conn.exec_driver_sql("PRAGMA busy_timeout=900000")
        conn.execute(WEEKS.update().where(sa.false()).values(state=WEEKS.c.state))


def _scopes_overlap(hierarchy: Hierarchy, a: str, b: str) -> bool:
    if WHOLE in (a, b):
        return True
    return b in set(hierarchy.subtree(a)) or a in set(hierarchy.subtree(b))


def open_week(register: Register, week: str, centre: str | None = None, *,
              params: AllocationParams | None = None,
              match_params: MatchParams | None = None) -> OpenedWeek:
    """Open ``week`` for ``centre``'s subtree (the whole network by default).

    Raises
    ------
    CycleError
        When the week is already open or closed for an overlapping scope, or another week is
        still open for it.
    ValidationError
        When the register does not make a valid scenario.
    """
    import time

    check_week(week)
    scope = centre or WHOLE
    start = time.perf_counter()
    # No automatic cyclic collection: its passes over the open's millions of live objects
    # cost the city's open seconds of its main process and freed almost nothing
    # (collector_paused); release_memory still collects between the phases.
    with collector_paused(), register.engine.begin() as conn:
        lock(conn)
        # The centres as the register holds them (validated when they came in), for the scope.
        centres = register.table("centres", conn)
        hierarchy = Hierarchy.from_centres(centres)
        if centre and centre not in set(register.rows("centres", conn)):
            raise CycleError(f"没有中心 {centre} / no centre {centre} in the register")
        opened = conn.execute(sa.select(WEEKS)).mappings().all()
        for row in opened:
            overlap = _scopes_overlap(hierarchy, row["centre"], scope)
            if row["week"] == week and overlap:
                raise CycleError(f"{week} 已为 {row['centre']} 开启过 / {week} was already "
                                 f"opened for {row['centre']}")
            if row["state"] == "open" and overlap:
                raise CycleError(f"{row['week']}({row['centre']})尚未结束,请先结束 / "
                                 f"{row['week']} ({row['centre']}) is still open: close it "
                                 "first")
            if row["week"] > week and overlap:
                raise CycleError(f"已开启更晚的 {row['week']} / a later week, {row['week']}, "
                                 "was already opened")
        conn.execute(WEEKS.insert().values(week=week, centre=scope, state="open",
                                           opened_at=now(), actor=register.actor.name))
        scenario = week_scenario(register, conn, week)
        _check_needs_in_scope(scenario, week, centre)
        # Each phase's freed memory is handed back before the next starts its workers (whose
        # memory adds to this process's): on the city, half a GiB after the snapshot.
        large = len(scenario.needs) >= RELEASE_NEEDS
        if large:
            release_memory()
        drawn = time.perf_counter()
        run, match, allocated = _allocate_and_match(scenario, week, centre, params,
                                                    match_params)
        if large:
            release_memory()
        matched = time.perf_counter()
        reconciled = reconcile(run, match)
        new = build_tasks(scenario, week, scope, reconciled[0], match.visits)
        stamp = now()
        new = new.assign(updated_at=stamp)
        info = {**run.info, "kind": "week", "match": match.info}
        run_id = RunStore.insert_run(conn, info, {}, "week", f"register {week} {scope}")
        conn.execute(WEEKS.update().where(WEEKS.c.week == week, WEEKS.c.centre == scope)
                     .values(run_id=run_id))
        events = Events(conn, register.actor)
        needs_allocated = int(new.loc[new["need_id"] != "", "need_id"].nunique())
        events.add("week.open", f"weeks:{week}:{scope}", None,
                   {"run_id": run_id, "tasks": len(new), "needs_allocated": needs_allocated})
        if len(new):
            bulk_insert(conn, TASKS, new)  # (the frame: a dict per task cost the city 7 s)
        # The database sets the tasks' needs allocated and writes the tasks' events (seconds
        # of its work on a city, without the GIL) while this thread rebuilds the run's plans
        # and summary from the reconciled allocations and makes the run's tables. (The
        # tasks themselves are written here first: SQLite takes them by thousands of
        # statements, each giving the GIL up and waiting to take it back from this thread's
        # pandas work — the city's store took 18.4 s so, against 10.6 s before, at load 3.7.)
        # The connection is the writing thread's until it is done; this one writes nothing.
        with ThreadPoolExecutor(1, thread_name_prefix="wulian-open") as writing:
            written = writing.submit(_from_the_tasks, conn, events, week, scope, stamp, new)
            tables = reconciled_tables(scenario, run, match, reconciled)
            tables.update(assignments=match.assignments, unplaced=match.unplaced,
                          load=match.load, shortfalls=_shortfalls(scenario, centres, tables))
            blobs = RunStore.blobs(tables)
            written.result()  # (its error raised here; the transaction then rolls back)
        RunStore.insert_tables(conn, run_id, blobs)
        events.flush()
        stored = time.perf_counter()
    # (``allocate`` holds the part of the matching that ran beside the bounds; ``match`` what
    # was left of it when they ended.)
    return OpenedWeek(week=week, centre=scope, scenario=scenario, run=run, match=match,
                      tasks=new, run_id=run_id,
                      seconds={"snapshot": round(drawn - start, 3),
                               "allocate": round(allocated - drawn, 3),
                               "match": round(matched - allocated, 3),
                               "store": round(stored - matched, 3),
                               "wall": round(stored - start, 3)})


# Task amounts (units, cost) the database writes as row_json does: at least 0 and below this,
# their tenth decimal settled by the first 15 significant digits (row_json_sql). Beyond it
# (e.g. 709,510.43 yuan: pandas writes 709510.4300000001, PostgreSQL 709510.43) the events'
# text is made here.
SQL_JSON_BELOW = 100_000


def _from_the_tasks(conn: sa.Connection, events: Events, week: str, scope: str,
                    stamp: str, new: pd.DataFrame) -> None:
    """The needs a week's new tasks (``new``) serve set allocated, and the tasks' add events
    written (after the events already added), by the database from the rows: the week's
    tasks are those just written (it was not opened for the scope before). One statement
    each — not a city's 38 lists of 5,000 ids and 279,000 JSON texts built here and sent back
    — long ones that hold no GIL, so a thread of the open runs them (docs/benchmarks.md,
    session 18). A week with an amount the database would write otherwise than row_json
    (SQL_JSON_BELOW) has its events' text made here, in the same order."""
    t = TASKS.c
    week_tasks = (t.week == week, t.centre == scope)
    if conn.dialect.name == "postgresql":
        # The planner's figures for the tasks, a week's rows just copied in (counted within
        # this transaction): without them it takes the week for a few rows and looks up each
        # need by its key in no order (a city's 5.1 s of the server's time, against 0.3 s
        # for this and 3.8 s for one hash join: docs/benchmarks.md, session 18).
        conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.format_table(TASKS)}")
    conn.execute(NEED_STATES.update().where(NEED_STATES.c.need_id.in_(
        sa.select(t.need_id).where(*week_tasks, t.need_id != "")))
        .values(state="allocated", updated_at=stamp))
    columns = ["cost", "fund_id", "kind", "need_id", "provider_id", "units", "volunteer_id"]
    amounts = new[["cost", "units"]].to_numpy(dtype=float)
    if ((amounts >= 0) & (amounts < SQL_JSON_BELOW)).all():
        events.add_copied("task.add", sa.select(
            sa.literal("tasks:", sa.String) + t.task_id, sa.null(),
            row_json_sql(conn, [t[c] for c in columns]))
            .where(*week_tasks).order_by(events.bytewise(t.task_id)))
        return
    ordered = new.sort_values("task_id")  # (code points: the bytes' order of UTF-8 text)
    events.add_many("task.add", [f"tasks:{i}" for i in ordered["task_id"]], None,
                    row_json(ordered[columns]))


def _allocate_and_match(scenario: Scenario, week: str, centre: str | None,
                        params: AllocationParams | None, match_params: MatchParams | None
                        ) -> tuple[Run, MatchResult, float]:
    """The week's allocation, then its matching on the allocation's plan; and when the
    allocation ended (``time.perf_counter``).

    The run's own plans, summary and utilisation are not built: the week keeps the tables
    reconciled with the matching (reconciled_tables), which builds its own plans and summary
    (on the city the run's took 4 s).

    A decomposed allocation bounds its levels after red once its plan is whole (on the city
    19–21 s of one LP chain in this process, HiGHS letting go of the GIL, while its pool
    idles); they change only the levels, and the matching needs the plan alone. So the
    matching starts in a thread as soon as the plan is whole, beside the bounds, and runs its
    regions in the allocation's own pool (``rounds_pool``): one pool, so no second pool's
    workers are alive beside the first (session 15's matching with a pool of its own there
    took the city's peak from 2.4 to 3.6 GiB; one pool, 3.2 GiB; one pool whose regions leave
    the bounds their core, 2.9 GiB: docs/benchmarks.md, session 16). Both read the plan and
    change nothing in it: the week is the same as one after the other (tests/test_cycle.py;
    ``planning.match.match_beside_bounds``, which plan_week's rounds share). A run that is
    not decomposed hands its plan over when it is done (the matching then runs after it, in
    the same pool); a matching asking for another number of workers than the
    allocation runs after it with its own.
    """
    params = params or AllocationParams()
    match_params = match_params or MatchParams()

    def match(plan: Run, regions: Executor | None) -> MatchResult:
        if regions is None and len(scenario.needs) >= RELEASE_NEEDS:
            release_memory()  # after the allocation (no pool: its solvers were in this process)
        return run_matching(scenario, plan, week=week, centre=centre, params=match_params,
                            pool=regions)

    with rounds_pool(params, match_params) as pool:
        return match_beside_bounds(
            partial(run_allocation, scenario, week=week, centre=centre, params=params,
                    only_allocations=True, pool=pool),
            match, pool, params.workers or default_workers())


def _shortfalls(scenario: Scenario, centres: pd.DataFrame, tables: dict) -> pd.DataFrame:
    """The units the week's plan leaves unmet for lack of capacity, per service and street,
    kept with its run: they never change once the week is opened, and alerts and the facts
    read them every week (finding them again from a city's million unmet rows took seconds)."""
    from wulian.planning.performance import capacity_shortfalls

    station = scenario.households.set_index("household_id")["station_id"]
    street = station.map(centres.set_index("centre_id")["parent_id"])
    needs = scenario.needs.set_index("need_id")[["service_id", "household_id"]]
    return capacity_shortfalls(tables["unmet"], needs, street)


def _check_needs_in_scope(scenario: Scenario, week: str, centre: str | None) -> None:
    """A week with no open need in scope has nothing to allocate (the allocation's model would
    be empty, which its solver refuses): say so instead."""
    needs = scenario.needs
    if centre:
        hh = scenario.households
        inside = hh.loc[member_mask(hh["station_id"], scenario.hierarchy.subtree(centre)),
                        "household_id"]
        needs = needs[member_mask(needs["household_id"], inside)]
    if not len(needs):
        where = f"({centre})" if centre else ""
        raise CycleError(f"{week}{where}没有待分配的需求 / {week} has no open need to allocate"
                         + (f" in {centre}'s subtree" if centre else ""))


def week_scenario(register: Register, conn: sa.Connection, week: str) -> Scenario:
    """The week's scenario from the register: open needs as of ``week`` (urgency raised by
    their age), offers and volunteers less what other open scopes took this week, funds at
    their balance in the period; validated less what the register guarantees already
    (``Scenario.from_register_week``: the same tables and digest as ``from_tables``)."""
    return Scenario.from_register_week(week_tables(register, conn, week), register.policy,
                                       path=f"register {week}")


def week_tables(register: Register, conn: sa.Connection, week: str) -> dict[str, pd.DataFrame]:
    """The text tables of :func:`week_scenario`, before they are validated."""
    # The needs still open (one allocated already is not this week's to allocate), not those
    # raised for a later week, as the register's tables give them (Register.tables) with
    # their urgency raised by age; each need's state found once.
    owed = register.need_states(conn, OPEN_STATES, as_of=week, columns=("remaining", "urgency"))
    tables = register.kept_tables(conn)
    needs = tables["needs"]
    at = need_positions(owed, needs["need_id"])
    waiting = (at >= 0) & (needs["week"].to_numpy(object) <= week)
    if not waiting.all():
        needs, at = needs[waiting], at[waiting]
    step = register.policy.cycle.urgency_step_weeks
    age = owed["age"].to_numpy(int)[at]
    urgency = owed["urgency"].to_numpy(int)[at]
    if step:
        urgency = np.minimum(3, urgency + age // step)
    needs = needs.assign(week=pd.Series(week, index=needs.index, dtype=object),
                         urgency=pd.Series(urgency.astype(str), index=needs.index, dtype=object))
    tables["needs"] = open_needs(needs, owed, tables["services"], at)

    taken = tasks_frame(conn, TASKS.c.week == week, TASKS.c.status != "declined",
                        columns=("offer_id", "units", "volunteer_id", "hours", "slot"))
    offers = tables["offers"].copy()
    used = taken[taken["offer_id"] != ""].groupby("offer_id")["units"].sum()
    capacity = offers["capacity"].astype(float) - offers["offer_id"].map(used).fillna(0.0)
    offers["capacity"] = [_text(v) for v in capacity]
    tables["offers"] = offers[capacity.to_numpy() > EPS]  # an offer used up is gone this week

    vols = tables["volunteers"].copy()
    if len(vols):
        visits = taken[taken["volunteer_id"] != ""]
        hours = visits.groupby("volunteer_id")["hours"].sum()
        slots = visits.groupby("volunteer_id")["slot"].agg(set)
        left = vols["max_hours"].astype(float) - vols["volunteer_id"].map(hours).fillna(0.0)
        spent = left.to_numpy() <= EPS  # kept (history names them), with no slot left
        vols["max_hours"] = np.where(spent, vols["max_hours"], [_text(v) for v in left])
        busy = member_mask(vols["volunteer_id"], slots.index) | spent
        vols.loc[busy, "availability"] = [
            "" if gone else
            ";".join(s for s in str(avail).split(";") if s and s not in slots.get(v, ()))
            for v, avail, gone in zip(vols.loc[busy, "volunteer_id"],
                                      vols.loc[busy, "availability"], spent[busy], strict=True)]
        tables["volunteers"] = vols

    funds = tables["funds"].copy()
    balance = fund_balances(conn, funds, week, register.policy.cycle.fund_period_weeks)
    funds["budget"] = [_text(round(max(v, 0.0), 2)) for v in
                       funds["fund_id"].map(balance["balance"]).to_numpy(float)]
    tables["funds"] = funds
    return tables


def fund_balances(conn: sa.Connection, funds: pd.DataFrame, week: str, length: int
                  ) -> pd.DataFrame:
    """Per fund at ``week``: accrued (weekly budget × weeks of the period run so far), spent,
    outstanding (sent or accepted, not yet settled) and the balance a week may still use."""
    # The period runs from its first week, or from the first week the register ran, if later.
    started = conn.execute(sa.select(sa.func.min(WEEKS.c.week))).scalar() or week
    weeks_so_far = [w for w in period_weeks(week, length) if w >= min(started, week)]
    # Closed weeks with kept facts: their money spent, summed in the database (nothing of
    # theirs is outstanding: a close settles every task); the other weeks from their tasks.
    kept = fetch_frame(conn, sa.select(FACT_WEEKS.c.week, FACT_WEEKS.c.centre)
                       .where(FACT_WEEKS.c.week.in_(weeks_so_far)))
    stored = fetch_frame(conn, sa.select(OUTCOMES.c.grp, sa.func.sum(OUTCOMES.c.spent))
                         .where(OUTCOMES.c.week.in_(weeks_so_far), OUTCOMES.c.grouping == "fund")
                         .group_by(OUTCOMES.c.grp))
    kept_pairs = set(kept["week"] + "|" + kept["centre"])
    opened = fetch_frame(conn, sa.select(WEEKS.c.week, WEEKS.c.centre)
                         .where(WEEKS.c.week.in_(weeks_so_far)))
    live = set(opened.loc[~(opened["week"] + "|" + opened["centre"]).isin(kept_pairs)
                          .to_numpy(), "week"])
    frame = tasks_frame(conn, TASKS.c.week.in_(sorted(live)), TASKS.c.fund_id != "",
                        columns=("week", "centre") + MONEY_COLUMNS)
    frame = frame[~(frame["week"] + "|" + frame["centre"]).isin(kept_pairs).to_numpy()]
    spent = pd.concat([pd.Series(delivered_cost(frame), index=frame["fund_id"]),
                       pd.Series(stored.iloc[:, 1].to_numpy(float), index=stored.iloc[:, 0])]
                      ).groupby(level=0).sum()
    owed = pd.Series(_outstanding(frame), index=frame["fund_id"]).groupby(level=0).sum()
    ids = funds["fund_id"]
    weekly = funds["budget"].astype(float).to_numpy()
    accrued = weekly * len(weeks_so_far)
    out = pd.DataFrame({
        "fund_id": ids.to_numpy(), "weekly_budget": weekly,
        "period": f"{weeks_so_far[0]}–{week}", "weeks": len(weeks_so_far), "accrued": accrued,
        "spent": ids.map(spent).fillna(0.0).to_numpy(float),
        "outstanding": ids.map(owed).fillna(0.0).to_numpy(float)}).set_index("fund_id")
    # What is left may be below zero (a budget cut after spending): the ledger shows it, the
    # week's allocation sees nothing left (week_scenario).
    out["balance"] = out["accrued"] - out["spent"] - out["outstanding"]
    return out


def build_tasks(scenario: Scenario, week: str, scope: str, allocations: pd.DataFrame,
                visits: pd.DataFrame) -> pd.DataFrame:
    """One task per allocation from an offer and per placed volunteer visit."""
    hh = scenario.households.set_index("household_id")
    needs = scenario.needs.set_index("need_id")
    street_of = pd.Series(scenario.hierarchy.ancestor(scenario.centres["centre_id"], "street"),
                          index=scenario.centres["centre_id"].to_numpy())
    offers = scenario.offers.set_index("offer_id")
    providers = scenario.providers.set_index("provider_id")
    vols = scenario.volunteers.set_index("volunteer_id")

    a = allocations[allocations["source_kind"] == "offer"]
    service = pd.DataFrame({
        "kind": "service", "need_id": a["need_id"].to_numpy(),
        "household_id": a["need_id"].map(needs["household_id"]).to_numpy(),
        "service_id": a["need_id"].map(needs["service_id"]).to_numpy(),
        "provider_id": a["source_id"].map(offers["provider_id"]).to_numpy(),
        "offer_id": a["source_id"].to_numpy(), "volunteer_id": "",
        "fund_id": a["fund_id"].fillna("").to_numpy(), "slot": "",
        "units": a["units"].to_numpy(float), "hours": 0.0,
        "cost": a["cost"].to_numpy(float)})

    pool = allocations[allocations["source_kind"] == "volunteer_pool"]
    per_unit = (pool.groupby("need_id")["cost"].sum()
                / pool.groupby("need_id")["units"].sum().where(lambda s: s > EPS))
    fund = pool.groupby("need_id")["fund_id"].first()
    v = visits[visits["volunteer_id"] != ""]
    v_units = v["units"].to_numpy(float)
    visit = pd.DataFrame({
        "kind": v["kind"].map(_VISIT_KIND).to_numpy(), "need_id": v["need_id"].to_numpy(),
        "household_id": v["household_id"].to_numpy(), "service_id": v["service_id"].to_numpy(),
        "provider_id": v["volunteer_id"].map(vols["provider_id"]).to_numpy(),
        "offer_id": "", "volunteer_id": v["volunteer_id"].to_numpy(),
        # (as objects: with no pool row, no fund is found and the column is a float one,
        # which pandas will not fill with text)
        "fund_id": v["need_id"].map(fund).astype(object).fillna("").to_numpy(),
        "slot": v["slot"].to_numpy(), "units": v_units, "hours": v["hours"].to_numpy(float),
        "cost": np.round(v["need_id"].map(per_unit).fillna(0.0).to_numpy(float) * v_units, 2)})

    out = pd.concat([service, visit], ignore_index=True)
    out = out.sort_values(["kind", "provider_id", "household_id", "need_id", "volunteer_id",
                           "slot"], kind="stable").reset_index(drop=True)
    station = out["household_id"].map(hh["station_id"])
    label = scope.replace("*", "ALL")
    out.insert(0, "task_id", [f"T{week.replace('-', '')}-{label}-{i + 1:06d}"
                              for i in range(len(out))])
    out.insert(1, "week", week)
    out.insert(2, "centre", scope)
    return out.assign(
        linkage=out["provider_id"].map(providers["linkage"]).fillna("volunteer").to_numpy(),
        station_id=station.to_numpy(), street_id=station.map(street_of).fillna("").to_numpy(),
        tier=out["household_id"].map(hh["tier"]).to_numpy(), status="planned",
        units_delivered=0.0, answered_on="", reason="",
        service_id=out["service_id"].fillna(""), need_id=out["need_id"].fillna(""),
        fund_id=out["fund_id"].fillna(""))[[c for c in TASK_COLUMNS if c != "updated_at"]]


# ----------------------------------------------------------------------------- answers


@dataclass
class Answer:
    """One answer to a task, as a workbook row or an API call gives it (text as written)."""

    task_id: str
    status: str
    units_delivered: str = ""
    answered_on: str = ""
    reason: str = ""
    indicators: dict[str, str] = field(default_factory=dict)
    new_needs: str = ""
    note: str = ""
    source: str = "api"  # the file (and sheet) it came from, for problems
    row: int | None = None
    week: str = ""  # the week the workbook was published for ("" from the API)
    provider: str = ""  # the provider the workbook was published for
    street: str = ""  # the street whose volunteers' workbook it is


@dataclass
class RecordReport:
    """What recording answers did: tasks changed, visit results, needs raised, unchanged."""

    changed: int = 0
    unchanged: int = 0
    visits: int = 0
    needs_raised: int = 0


_STATUS_WORDS = {**{code: code for code in vocab.TASK_STATUSES},
                 **{zh: code for code, (zh, _en) in vocab.TASK_STATUSES.items()},
                 **{en: code for code, (_zh, en) in vocab.TASK_STATUSES.items()}}
_REASON_WORDS = {**{code: code for code in vocab.DECLINE_REASONS},
                 **{zh: code for code, (zh, _en) in vocab.DECLINE_REASONS.items()},
                 **{en: code for code, (_zh, en) in vocab.DECLINE_REASONS.items()}}


def word_code(text: str, words: dict[str, str]) -> str | None:
    """The code a cell names: the code itself, its Chinese or English word, or "中文 English"."""
    text = str(text).strip()
    if text in words:
        return words[text]
    first = text.split(" ")[0]
    return words.get(first)


def service_ids(rows: dict[str, str]) -> dict[str, str]:
    """The service each word of a visit's new needs names: its id, or its Chinese name (what
    the workbook shows in its service column), from the register's services ``rows``."""
    names = {json.loads(data).get("name_zh", "").strip(): sid for sid, data in rows.items()}
    return {name: sid for name, sid in names.items() if name} | {sid: sid for sid in rows}


def _parse_needs(text: str, services: dict[str, str]) -> list[tuple[str, float]] | None:
    """``service:quantity;…`` as (service id, quantity) pairs; ``None`` when not readable. A
    service is its id or Chinese name (``services``: :func:`service_ids`; a word it does not
    know is kept as written, for the check to name); colons and semicolons full-width or not."""
    out = []
    text = str(text).replace("\uff1b", ";").replace("\uff1a", ":")  # ；：
    for part in [p.strip() for p in text.split(";") if p.strip()]:
        service, _, qty = part.partition(":")
        try:
            quantity = float(qty.strip())
        except ValueError:
            return None
        if not service.strip() or not np.isfinite(quantity) or quantity <= 0:
            return None
        out.append((services.get(service.strip(), service.strip()), quantity))
    return out


def record_answers(register: Register, answers: Iterable[Answer], *,
                   provider: str | None = None, centres: frozenset[str] | None = None
                   ) -> RecordReport:
    """Apply answers to tasks (and monitoring visits' results) in one transaction.

    ``provider`` fences the answers to that provider's tasks; ``centres`` to tasks of
    households in those stations (a coordinator's subtree).

    Raises
    ------
    ValidationError
        With every problem found; nothing is applied when there is any.
    """
    answers = list(answers)
    problems: list[Problem] = []
    report = RecordReport()
    with register.engine.begin() as conn:
        lock(conn)
        ids = sorted({a.task_id.strip() for a in answers})
        found = pd.concat([tasks_frame(conn, TASKS.c.task_id.in_(chunk))
                           for chunk in _chunks(ids)] or [tasks_frame(conn, sa.false())],
                          ignore_index=True).set_index("task_id").to_dict("index")
        open_weeks = {(r.week, r.centre) for r in conn.execute(
            sa.select(WEEKS.c.week, WEEKS.c.centre).where(WEEKS.c.state == "open"))}
        service_rows = register.rows("services", conn)
        units = {k: json.loads(v).get("unit", "") for k, v in service_rows.items()}
        services = service_ids(service_rows)
        seen: dict[str, tuple[int | None, tuple]] = {}
        planned: list[tuple[Answer, dict, dict]] = []
        for a in answers:
            p = _check_answer(a, found, open_weeks, seen, provider, centres, units, services)
            problems += p[0]
            if p[1] is not None:
                planned.append((a, found[a.task_id.strip()], p[1]))
        if problems:
            raise ValidationError(problems)
        events = Events(conn, register.actor)
        updates, visits = [], []
        for a, before, after in planned:
            tid = a.task_id.strip()
            changes = {k: v for k, v in after.items() if before.get(k) != v}
            if changes:
                updates.append({"task_id": tid, **after, "updated_at": events.at})
                events.add("task.answer", f"tasks:{tid}",
                           {k: before.get(k) for k in changes}, changes)
                report.changed += 1
            else:
                report.unchanged += 1
            if before["kind"] in MONITORING_KINDS and after["status"] in (
                    "delivered", "not_delivered"):
                visits.append((tid, before, a, after))
        bulk_update(conn, TASKS, "task_id", updates)
        report.visits, report.needs_raised = _record_visits(register, conn, events, visits,
                                                            services)
        events.flush()
    return report


def _check_answer(a: Answer, found: dict[str, dict], open_weeks: set, seen: dict,
                  provider: str | None, centres: frozenset[str] | None,
                  units_of: dict[str, str], services: dict[str, str]
                  ) -> tuple[list[Problem], dict | None]:
    where = {"table": a.source, "row": a.row}
    problems: list[Problem] = []
    tid = a.task_id.strip()

    def problem(code: str, column: str, value: object = "", **detail) -> None:
        problems.append(Problem(column=column, value=str(value)[:80], code=code,
                                detail={k: str(v) for k, v in detail.items()}, **where))

    task = found.get(tid)
    if task is None:
        problem("unknown_task", "task_id", tid)
        return problems, None
    if a.week and a.week != task["week"]:
        problem("task_other_week", "task_id", tid, task_week=task["week"], week=a.week)
    if (task["week"], task["centre"]) not in open_weeks:
        problem("week_not_open", "task_id", tid, week=task["week"])
    fence = provider or a.provider
    if fence and task["provider_id"] != fence:
        problem("task_other_provider", "task_id", tid)
    if a.street and task["street_id"] != a.street:
        problem("task_other_provider", "task_id", tid)
    if centres is not None and task["station_id"] not in centres:
        problem("task_outside_centre", "task_id", tid)
    status = word_code(a.status, _STATUS_WORDS)
    if task["status"] == "withdrawn":
        # A workbook published before the recall, sent back with the task's row as it was
        # (accepted, nothing delivered) says nothing new: skipped, not the whole file refused.
        if status != "accepted" or str(a.units_delivered).strip() or a.indicators \
                or str(a.new_needs).strip():
            problem("task_withdrawn", "task_id", tid, need_id=task["need_id"])
        return problems, None
    if status not in vocab.TASK_ANSWERS:
        allowed = ", ".join(f"{vocab.TASK_STATUSES[code][0]} {code}"
                            for code in vocab.TASK_ANSWERS)
        problem("not_allowed", "status", a.status, allowed=allowed)
        return problems, None
    before = task["status"]
    if status != before and status not in vocab.TASK_NEXT[before]:
        problem("status_not_allowed", "status", a.status,
                before=vocab.TASK_STATUSES[before][0] + " " + before,
                after=vocab.TASK_STATUSES[status][0] + " " + status)
    units = float(task["units"])
    text = str(a.units_delivered).strip()
    if status == "delivered":
        delivered = units if text == "" else _number(text)
    elif status == "not_delivered":
        delivered = 0.0 if text == "" else _number(text)
    else:
        delivered = float(task["units_delivered"]) if text == "" else _number(text)
    if status != "delivered" and text and delivered is not None and delivered > EPS:
        # Only a delivery spends and takes units off the need: units on any other answer
        # would be kept and then ignored by the ledger and the close (the need owed twice).
        problem("units_not_delivered", "units_delivered", text,
                status_zh=vocab.TASK_STATUSES[status][0], status=status)
    elif delivered is None or not np.isfinite(delivered):
        problem("not_a_number", "units_delivered", text, example=f"{units:g}")
        delivered = 0.0
    elif delivered < 0:
        problem("below_minimum", "units_delivered", text, minimum="0")
    elif delivered > units + 1e-6 and units > 0:
        problem("too_many_units", "units_delivered", text, planned=f"{units:g}")
    elif (units_of.get(task["service_id"]) in vocab.WHOLE_UNITS and units == round(units)
          and delivered != round(delivered)):
        # What is still owed goes back into the register's needs, where these units are whole.
        unit = units_of[task["service_id"]]
        problem("not_whole", "units_delivered", text, unit_zh=vocab.UNITS[unit][0],
                unit_en=unit + "s")
    elif units_of.get(task["service_id"]) == "yuan" and abs(
            delivered * 100 - round(delivered * 100)) > 1e-6:
        problem("too_many_decimals", "units_delivered", text)
    day = str(a.answered_on).strip()[:10]
    if day:
        try:
            when = date.fromisoformat(day)
        except ValueError:
            problem("not_a_date", "answered_on", a.answered_on)
        else:
            first, last = week_days(task["week"])
            if not first <= when <= last:
                problem("date_outside_week", "answered_on", day, week=task["week"],
                        first=first.isoformat(), last=last.isoformat())
    reason = ""
    if str(a.reason).strip():
        reason = word_code(a.reason, _REASON_WORDS) or ""
        if not reason:
            allowed = ", ".join(f"{zh} {code}" for code, (zh, _e) in
                                vocab.DECLINE_REASONS.items())
            problem("not_allowed", "reason", a.reason, allowed=allowed)
    visit_given = bool(a.indicators) or bool(str(a.new_needs).strip()) or bool(a.note.strip())
    if visit_given and task["kind"] not in MONITORING_KINDS:
        problem("not_a_visit", "task_id", tid)
    elif status != "delivered":
        # What a visit observed is applied only when it was made (a missed visit keeps its
        # note alone): refused rather than dropped without a word.
        for column, given in (("indicators", a.indicators), ("new_needs", a.new_needs)):
            if given and str(given).strip():
                problem("visit_not_made", column, _observed(given),
                        status_zh=vocab.TASK_STATUSES[status][0], status=status)
    for key, value in a.indicators.items():
        if key not in vocab.DEPRIVATION_COLUMNS:  # a visit observes deprivations, nothing else
            problem("unknown_column", key, value)
        elif str(value).strip() not in ("0", "1", "0.0", "1.0"):
            problem("not_allowed", key, value, allowed="0, 1")
    new = _parse_needs(a.new_needs, services)
    if new is None or any(s not in units_of for s, _q in new):
        problem("bad_new_needs", "new_needs", a.new_needs)
    after = {"status": status, "units_delivered": round(float(delivered or 0.0), 9),
             "answered_on": day or task["answered_on"], "reason": reason or task["reason"]}
    key = (status, after["units_delivered"], after["answered_on"], after["reason"],
           json.dumps(a.indicators, sort_keys=True), str(a.new_needs).strip(), a.note.strip())
    if tid in seen and seen[tid][1] != key:
        problem("duplicate_answer", "task_id", tid, first_row=seen[tid][0])
    seen.setdefault(tid, (a.row, key))
    return problems, after


def _observed(given: dict[str, str] | str) -> str:
    """A visit's indicators (or new needs) as a problem shows the value given."""
    if isinstance(given, dict):
        return ";".join(f"{k}:{v}" for k, v in given.items())
    return str(given).strip()


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def results_kept(conn: sa.Connection, task_ids: list[str]) -> set[str]:
    """Of ``task_ids``, the visits whose result is kept already. Asked in chunks: a city week's
    visits are more ids than PostgreSQL takes in one statement (65,535 parameters)."""
    return {r.task_id for chunk in _chunks(task_ids) for r in conn.execute(
        sa.select(VISIT_RESULTS.c.task_id).where(VISIT_RESULTS.c.task_id.in_(chunk)))}


def _record_visits(register: Register, conn, events: Events,
                   visits: list[tuple[str, dict, Answer, dict]], services: dict[str, str]
                   ) -> tuple[int, int]:
    """Monitoring visits' results, each kept once: a visit made re-assesses its household
    with what it observed (the other indicators kept), raises the needs it found and restarts
    the monitoring cycle (a history row). Done together, so the register is validated once."""
    if not visits:
        return 0, 0
    kept = results_kept(conn, [tid for tid, *_ in visits])
    visits = [v for v in visits if v[0] not in kept]
    if not visits:
        return 0, 0
    rows = register.rows("households", conn, [task["household_id"] for _, task, *_ in visits])
    observed: dict[str, dict] = {}
    day_of: dict[str, date] = {}
    results, needs, history = [], [], []
    needs_of: list[Answer] = []  # the answer each need was found in
    for tid, task, a, after in visits:
        outcome = "done" if after["status"] == "delivered" else "missed"
        day = after["answered_on"] or week_days(task["week"])[0].isoformat()
        indicators = {k: str(int(float(v))) for k, v in a.indicators.items()}
        hid = task["household_id"]
        if outcome == "done":
            observed[hid] = {**observed.get(hid, json.loads(rows[hid])), **indicators}
            day_of[hid] = date.fromisoformat(day)
            found = _parse_needs(a.new_needs, services) or []
            needs += [{"household_id": hid, "service_id": s, "quantity": q, "urgency": 2,
                       "week": task["week"]} for s, q in found]
            needs_of += [a] * len(found)
            if task["volunteer_id"]:
                history.append((task["week"], hid, task["volunteer_id"]))
        results.append({"task_id": tid, "household_id": hid, "outcome": outcome,
                        "visited_on": day, "indicators": json.dumps(indicators, sort_keys=True),
                        "new_needs": str(a.new_needs).strip(), "note": a.note.strip(),
                        "assessment_id": None, "recorded_at": events.at})
        events.add("visit.result", f"tasks:{tid}", None,
                   {k: results[-1][k] for k in ("outcome", "visited_on", "new_needs", "note")}
                   | {"indicators": indicators})
    if observed:
        ids = list(observed)
        data = row_json(canonical("households", pd.DataFrame(list(observed.values()))))
        register.change_rows(conn, events, "households", {h: rows[h] for h in ids},
                             dict(zip(ids, data, strict=True)), day_of)
        typed = register.valid_rows(conn, "households", observed)
        made = register.write_assessments(conn, events, typed, day_of,
                                          assessor=register.actor.name, discovered_by="visit")
        for r in results:
            if r["outcome"] == "done":
                r["assessment_id"] = made.get(r["household_id"])
    try:
        raised = register.add_needs(conn, events, needs, max(day_of.values())) if needs else []
    except ValidationError as err:
        raise ValidationError(_at_answers(err.problems, needs_of)) from err
    _add_history(register, conn, events, history)
    conn.execute(VISIT_RESULTS.insert(), results)
    return len(results), len(raised)


def _at_answers(problems: list[Problem], needs_of: list[Answer]) -> list[Problem]:
    """The problems of a visit's new needs at the answers they were found in: ``add_needs``
    validates the needs as a table of their own, whose row 2 is the first need, which says
    nothing to the volunteer who wrote it in a workbook's row."""
    out = []
    for p in problems:
        if p.row is None or not 0 <= p.row - 2 < len(needs_of):
            out.append(p)
            continue
        a = needs_of[p.row - 2]
        out.append(Problem(a.source, p.code, a.row, "new_needs", a.new_needs,
                           {"column": p.column, **p.detail}))
    return out


def _add_history(register: Register, conn, events: Events, visits: list[tuple[str, str, str]]
                 ) -> int:
    """History rows (week, household, volunteer) for visits made, each once."""
    if not visits:
        return 0
    frame = pd.DataFrame(visits, columns=["week", "household_id", "volunteer_id"])
    frame = frame.drop_duplicates()
    keys = history_key(frame)
    have = register.keys("history", conn, keys)
    fresh = frame[~member_mask(keys, have)]
    if not len(fresh):
        return 0
    monday = {w: week_start(w).isoformat() for w in set(fresh["week"])}
    rows = [{"tbl": "history", "row_key": k, "data": data, "effective_from": monday[week],
             "updated_at": events.at}
            for k, data, week in zip(history_key(fresh), row_json(canonical("history", fresh)),
                                     fresh["week"], strict=True)]
    bulk_insert(conn, ROWS, rows)
    events.add_many("history.add", [f"history:{r['row_key']}" for r in rows], None,
                    [r["data"] for r in rows])
    return len(rows)


# ----------------------------------------------------------------------------- close


@dataclass
class ClosedWeek:
    """What closing a week did to its needs and tasks."""

    week: str
    centre: str
    delivered: int = 0  # needs closed, delivered in full
    carried: int = 0  # needs carried into the next week
    expired: int = 0
    unanswered: int = 0  # tasks still sent or accepted, settled as not delivered
    history: int = 0
    spent: float = 0.0


def close_week(register: Register, week: str, centre: str | None = None) -> ClosedWeek:
    """Close ``week`` for ``centre``'s scope (as it was opened), in one transaction.

    Raises
    ------
    CycleError
        When the week was not opened for that scope or is already closed.
    """
    check_week(week)
    scope = centre or WHOLE
    out = ClosedWeek(week=week, centre=scope)
    with register.engine.begin() as conn:
        lock(conn)
        row = conn.execute(sa.select(WEEKS).where(WEEKS.c.week == week,
                                                  WEEKS.c.centre == scope)).mappings().first()
        if row is None:
            raise CycleError(f"{week} 未为 {scope} 开启 / {week} was not opened for {scope}")
        if row["state"] != "open":
            raise CycleError(f"{week}({scope})已结束 / {week} ({scope}) is already closed")
        events = Events(conn, register.actor)
        from wulian.planning.performance import (
            FACT_COLUMNS,
            run_owed,
            store_facts,
            store_missing_facts,
        )

        # The columns the close and the week's facts use (not the offer, slot, hours…); the
        # week and the scope are the query's own, set here rather than read for every task.
        columns = ["task_id", "volunteer_id", *FACT_COLUMNS]
        read = [c for c in columns if c not in ("week", "centre")]
        task_rows = fetch_rows(conn, sa.select(*(TASKS.c[c] for c in read)).where(
            TASKS.c.week == week, TASKS.c.centre == scope))
        # The needs the week allocated: what their tasks delivered is taken off what they are
        # owed; each is closed (delivered in full, or expired) or carried. The needs it left
        # unmet change no row: they wait on, a week older by the calendar (weeks_waited).
        # What the run owed (its allocations, then its unmet needs) is read once, for this
        # and for the week's facts: a grown backlog is millions of rows.
        owed = (run_owed(register, conn, row["run_id"]) if row["run_id"] is not None
                else None)
        allocated, unmet = _run_needs(owed)
        n = NEED_STATES.c  # (the columns the close reads)
        states = fetch_frame(conn, sa.select(
            n.need_id, n.service_id, n.remaining, n.state, n.age, n.week_raised).where(
            n.state == "allocated")).set_index("need_id")
        states = states[member_mask(states.index, allocated)]
        units = {k: json.loads(v).get("unit", "") for k, v in
                 register.rows("services", conn).items()}
        expire = register.policy.cycle.expire_weeks
        stale = None
        if expire > 0:  # needs left unmet that have now waited too long
            stale = fetch_frame(conn, sa.select(n.need_id, n.remaining, n.state, n.age,
                                                n.week_raised)
                                .where(n.state.in_(OPEN_STATES),
                                       n.week_raised <= shift_week(week, 1 - expire)))
            stale = stale[member_mask(stale["need_id"], unmet)].set_index("need_id")
        # (The state as a literal: the partial index of closed needs by time, revision 0007,
        # serves the query only when it names that state.)
        gone = fetch_frame(conn, sa.select(n.need_id).where(
            sa.literal_column("need_states.state = 'closed'"),
            n.updated_at >= row["opened_at"]))["need_id"]

        # Everything read: the server settles the unanswered tasks (a city's 259,000: their
        # events copied from the rows, then the rows, seconds of its time) while this thread
        # works out the needs' changes from what was read. The connection is the settling
        # thread's until it is done; this one writes nothing before.
        with ThreadPoolExecutor(1, thread_name_prefix="wulian-close") as settling:
            settled = settling.submit(_settle_unanswered, conn, events, week, scope)
            week_tasks = pd.DataFrame.from_records(task_rows, columns=read).assign(
                week=week, centre=scope)[columns]
            live = week_tasks["status"].isin(UNANSWERED).to_numpy()
            week_tasks.loc[live, "status"] = "not_delivered"
            week_tasks.loc[live, "reason"] = "no_answer"
            out.unanswered = int(live.sum())
            out.spent = float(delivered_cost(week_tasks).sum())

            done = week_tasks.loc[(week_tasks["status"] == "delivered").to_numpy(), [  # (used)
                "week", "need_id", "household_id", "volunteer_id", "units_delivered"]]
            got = done[done["need_id"] != ""].groupby("need_id")["units_delivered"].sum()
            left = np.maximum(states["remaining"].to_numpy(float)
                              - got.reindex(states.index).fillna(0.0).to_numpy(float), 0.0)
            # Hours, visits and items are owed in whole numbers (the register's needs must stay
            # a valid scenario): a need whose visits were split into half hours, delivered in
            # part, carries what is left rounded up.
            whole = states["service_id"].map(units).isin(list(vocab.WHOLE_UNITS)).to_numpy()
            left = np.where(whole, np.ceil(left - 1e-6), left)
            raised = states["week_raised"].to_numpy(object)
            waited, older = weeks_waited(raised, week), weeks_waited(raised, next_week(week))
            full = left <= EPS
            expired = ~full & (expire > 0) & (older >= expire)
            changes = pd.DataFrame({
                "state": np.where(full | expired, "closed", "carried"),
                "close_reason": np.where(full, "delivered", np.where(expired, "expired", "")),
                "remaining": np.where(full, 0.0, left),
                "age": np.where(full, waited, np.where(expired, older, 0))},
                index=states.index)
            befores = states[["state", "remaining", "age"]].astype({"remaining": float,
                                                                    "age": int})
            if stale is not None:
                changes = pd.concat([changes, pd.DataFrame({
                    "state": "closed", "close_reason": "expired",
                    "remaining": stale["remaining"].to_numpy(float),
                    "age": weeks_waited(stale["week_raised"].to_numpy(object),
                                        next_week(week))}, index=stale.index)])
                befores = pd.concat([befores, stale[["state", "remaining", "age"]]])
            closed = changes["state"].to_numpy() == "closed"
            out.delivered = int(full.sum())
            out.expired = int(closed.sum()) - out.delivered
            # Carried: the week's needs not closed now (withdrawn in the week: closed since it
            # opened).
            given = pd.unique(np.concatenate([allocated, unmet]))
            out.carried = len(given) - int(closed.sum()) - int(member_mask(gone, given).sum())
            # Written in the order of their keys: the needs' rows and the events' subject
            # index are then walked once, not a page at random for each of 232,000 needs.
            need_ids = changes.index.to_numpy(object)
            order = np.argsort(need_ids, kind="stable")
            changes, befores, closed = changes.iloc[order], befores.iloc[order], closed[order]
            subjects = np.array([f"needs:{n}" for n in need_ids[order]], dtype=object)
            befores = np.array(row_json(befores), dtype=object)
            afters = np.array(row_json(changes), dtype=object)
            settled.result()  # (its error raised here; the transaction then rolls back)
        bulk_update(conn, NEED_STATES, "need_id",
                    changes.assign(updated_at=events.at).reset_index())
        for kind, pick in (("need_state.close", closed), ("need_state.carry", ~closed)):
            events.add_many(kind, subjects[pick].tolist(), befores[pick].tolist(),
                            afters[pick].tolist())
        visits = done[done["volunteer_id"] != ""]
        out.history = _add_history(register, conn, events, list(zip(
            visits["week"], visits["household_id"], visits["volunteer_id"], strict=True)))
        conn.execute(WEEKS.update().where(WEEKS.c.week == week, WEEKS.c.centre == scope)
                     .values(state="closed", closed_at=events.at))
        # Its tasks no longer change: their sums are kept for performance over many weeks.
        store_facts(register, conn, week, scope, week_tasks, row["run_id"], events.at,
                    owed=owed)
        store_missing_facts(register, conn, events.at)  # weeks closed before facts existed
        events.add("week.close", f"weeks:{week}:{scope}", {"state": "open"},
                   {"state": "closed", "delivered": out.delivered, "carried": out.carried,
                    "expired": out.expired, "unanswered": out.unanswered,
                    "spent": round(out.spent, 2)})
        events.flush()
    return out


def _settle_unanswered(conn: sa.Connection, events: Events, week: str, scope: str) -> int:
    """The week's unanswered tasks set not delivered, for want of an answer: their events
    copied by the database from the rows, in key order, then the rows, each in one statement
    (a city's 259,000; their pages keep room to rewrite a row in place: revision 0009).
    Returns how many."""
    t = TASKS.c
    unanswered = (t.week == week, t.centre == scope, t.status.in_(UNANSWERED))
    was = {s: json.dumps({"status": s}) for s in UNANSWERED}
    events.add_copied("task.settle", sa.select(
        sa.literal("tasks:", sa.String) + t.task_id, sa.case(was, value=t.status),
        sa.literal(json.dumps({"reason": "no_answer", "status": "not_delivered"}), sa.Text))
        .where(*unanswered).order_by(events.bytewise(t.task_id)))
    return conn.execute(TASKS.update().where(*unanswered).values(
        status="not_delivered", reason="no_answer", updated_at=events.at)).rowcount


def _run_needs(owed: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """The need ids a week's run allocated and left unmet (``owed``: what it owed, as
    ``performance.run_owed`` reads it; ``None``: a week without a run)."""
    if owed is None:
        return np.array([], dtype=object), np.array([], dtype=object)
    ids, allocated = owed["need_id"].to_numpy(object), owed["allocated"].to_numpy(bool)
    return pd.unique(ids[allocated]), pd.unique(ids[~allocated])


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


# ----------------------------------------------------------------------------- ledger


def fund_ledger(register: Register, first: str | None = None, last: str | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fund ledger (资金台账).

    Returns
    -------
    by_week, balances
        ``by_week``: per fund × street × week, ``planned`` (allocated), ``committed``
        (accepted or delivered, at their planned cost), ``spent`` (delivered). ``balances``:
        per fund at the last week, its period, weekly budget, accrued, spent, outstanding and
        balance.
    """
    with register.engine.connect() as conn:
        where = [TASKS.c.fund_id != ""]
        if first:
            where.append(TASKS.c.week >= first)
        if last:
            where.append(TASKS.c.week <= last)
        frame = tasks_frame(conn, *where)
        committed = np.where(frame["status"].isin(["accepted", "delivered"]),
                             frame["cost"].to_numpy(float), 0.0)
        by_week = frame.assign(planned=frame["cost"].astype(float), committed=committed,
                               spent=delivered_cost(frame)) \
            .groupby(["fund_id", "street_id", "week"], as_index=False)[
                ["planned", "committed", "spent"]].sum().round(2)
        funds = register.table("funds", conn)
        at = last or conn.execute(sa.select(sa.func.max(WEEKS.c.week))).scalar()
        balances = (fund_balances(conn, funds, at, register.policy.cycle.fund_period_weeks)
                    .reset_index().round(2) if at else pd.DataFrame())
    return by_week, balances


def _text(value: float) -> str:
    return str(float(value))


def _chunks(items: list, size: int = 5000):
    for i in range(0, len(items), size):
        yield items[i:i + size]


__all__ = ["Answer", "ClosedWeek", "CycleError", "OpenedWeek", "RecordReport", "RegisterError",
           "check_week", "close_week", "fund_balances", "fund_ledger", "next_week",
           "open_week", "record_answers", "tasks", "week_scenario", "weeks"]
