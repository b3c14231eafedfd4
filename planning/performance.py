"""Service performance (服务绩效): how well the five linkages serve, from the weeks' tasks.

Over a range of weeks, computed from the tasks and their answers (and the weeks' runs for
what each week owed):

- :func:`by_group` — per provider, linkage, fund, street or colour: tasks sent, accepted,
  declined (and why), delivered, not delivered, the median days from the week's start to
  delivery, money planned, committed and spent, and two shares without units: of the tasks
  delivered, of the money planned spent;
- :func:`fill_rate` — per week and colour: units owed, planned and delivered, and the share
  delivered;
- :func:`monitoring` — per week and colour: monitoring visits planned and made;
- :func:`reach` — per colour: money spent, households reached, households per ¥10,000.

:func:`report` writes them as one bilingual workbook a street centre can hand to the district.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from wulian.contract import vocab
from wulian.optimizer.allocation import member_mask
from wulian.planning.cycle import (  # (the fact tables are the cycle's: a close writes them)
    FACT_WEEKS,
    FILLS,
    MONITORING_KINDS,
    OUTCOMES,
    REACHED,
    SHORTFALLS,
    TASK_COLUMNS,
    TASKS,
    WEEKS,
    delivered_cost,
    tasks_frame,
)
from wulian.planning.db import bulk_insert, fetch_frame
from wulian.planning.match import week_start
from wulian.planning.register import NEED_STATES, Register
from wulian.planning.workbook import DECIMAL, WHOLE

GROUPS = {"provider": "provider_id", "linkage": "linkage", "fund": "fund_id",
          "street": "street_id", "colour": "tier"}


def parse_weeks(text: str | None) -> tuple[str | None, str | None]:
    """``2027-W01:2027-W13`` (either side may be left out) as (first, last)."""
    if not text:
        return None, None
    first, colon, last = text.partition(":")
    if not colon:  # one week alone: that week
        last = first
    for week in (first, last):
        if week:
            try:
                if not re.fullmatch(r"\d{4}-W\d{2}", week):
                    raise ValueError(week)
                week_start(week)
            except ValueError:
                raise ValueError(f"不是 ISO 周次:{week!r} / not an ISO week: {week!r} "
                                 "(write 2027-W01:2027-W13)") from None
    if first and last and first > last:
        raise ValueError(f"起始周晚于结束周:{text!r} / the first week is after the last: "
                         f"{text!r}")
    return first or None, last or None


# ----------------------------------------------------------------------------- the facts
#
# A city's quarter is millions of tasks; reading them all for every question made a
# performance table cost a minute. A closed week's tasks no longer change (answers are taken
# only while a week is open), so when a week closes its tasks are summed once into the fact
# tables (``cycle.FACT_WEEKS`` and the four after it: a row per group and outcome, per station
# and colour, per household reached, per service and street short of capacity), and a range of
# weeks is then read from the facts of its closed weeks and the tasks of the weeks still open.
# Both come from the same functions (:func:`facts`).

OUTCOME_KEYS = ["week", "grp", "kind", "status", "reason", "days"]
SUMS = ["tasks", "units", "units_delivered", "cost", "spent"]
FILL_COLUMNS = ["week", "station_id", "tier", "needs", "planned", "delivered"]


@dataclass
class Facts:
    """A range of weeks summed: outcomes per grouping (``grouping`` column), fills per station
    and colour, and the households reached per week and colour."""

    outcomes: pd.DataFrame
    fills: pd.DataFrame
    reached: pd.DataFrame

    @staticmethod
    def empty() -> Facts:
        return Facts(pd.DataFrame(columns=OUTCOME_KEYS + SUMS + ["grouping"]),
                     pd.DataFrame(columns=FILL_COLUMNS),
                     pd.DataFrame(columns=["week", "tier", "household_id"]))

    @staticmethod
    def join(parts: list[Facts]) -> Facts:
        """The parts together (empty ones left out, so that columns keep their types)."""
        joined = []
        for name in ("outcomes", "fills", "reached"):
            frames = [getattr(p, name) for p in parts if len(getattr(p, name))]
            joined.append(pd.concat(frames, ignore_index=True) if frames
                          else getattr(Facts.empty(), name))
        return Facts(*joined)


def _weeks_where(column, first: str | None, last: str | None) -> list:
    return ([column >= first] if first else []) + ([column <= last] if last else [])


# The tasks' columns the facts are made of (a city week's tasks are read without the rest).
FACT_COLUMNS = ("week", "centre", "kind", "need_id", "household_id", "provider_id", "linkage",
                "fund_id", "street_id", "station_id", "tier", "units", "cost", "status",
                "units_delivered", "answered_on", "reason")


def task_table(register: Register, first: str | None = None, last: str | None = None,
               stations: set[str] | None = None, *, conn: sa.Connection | None = None,
               where: tuple = (), columns: tuple[str, ...] = TASK_COLUMNS) -> pd.DataFrame:
    """The tasks of the weeks (of ``stations`` only, fenced in the query), with money spent and
    days to delivery."""
    clauses = _weeks_where(TASKS.c.week, first, last) + list(where)
    if stations is not None:
        clauses.append(TASKS.c.station_id.in_(sorted(stations)))
    if conn is None:
        with register.engine.connect() as own:
            frame = tasks_frame(own, *clauses, columns=columns)
    else:
        frame = tasks_frame(conn, *clauses, columns=columns)
    return with_days(frame)


def with_days(frame: pd.DataFrame) -> pd.DataFrame:
    """Tasks with their money spent and the days from their week's Monday to delivery."""
    monday = frame["week"].map({w: week_start(w) for w in frame["week"].unique()})
    answered = pd.to_datetime(frame["answered_on"].where(frame["answered_on"] != ""),
                              errors="coerce", format="ISO8601")
    days = (answered - pd.to_datetime(monday)).dt.days
    return frame.assign(spent=delivered_cost(frame),
                        days=days.where(frame["status"] == "delivered"))


def outcomes(tasks: pd.DataFrame, by: str) -> pd.DataFrame:
    """The tasks summed per week, group (``by``), kind, status, reason and days to delivery."""
    key = _group_column(by)
    t = tasks if by != "fund" else tasks[tasks["fund_id"] != ""]
    keyed = t.assign(grp=t[key], days=t["days"].fillna(-1).astype(int), tasks=1)
    return (keyed.groupby(OUTCOME_KEYS, sort=False)[SUMS].sum().reset_index()
            .assign(grouping=by))


def facts(register: Register, conn: sa.Connection, tasks: pd.DataFrame,
          runs: list[tuple[str, int]], stations: set[str] | None = None,
          owed: dict[int, pd.DataFrame] | None = None) -> Facts:
    """The facts of ``tasks`` (with :func:`with_days`' columns) and of the weeks' ``runs``
    (week, run id: what each week owed), optionally of some stations only. ``owed``: per run
    id, its allocations and unmet needs' ``need_id`` and ``units`` when read already (see
    :func:`run_owed`)."""
    # Only the columns used are taken with the rows (a city week's tasks have 21 columns).
    reached = tasks.loc[(tasks["status"] == "delivered").to_numpy(),
                        ["week", "tier", "household_id"]].drop_duplicates()
    return Facts(pd.concat([outcomes(tasks, by) for by in GROUPS], ignore_index=True),
                 _fills(register, conn, tasks, runs, stations, owed or {}), reached)


def run_owed(register: Register, conn: sa.Connection, run_id: int) -> pd.DataFrame:
    """What a week's run owed each need: its ``allocations`` and ``unmet`` rows' ``need_id``
    and ``units``, ``allocated`` telling which table each came from (a city's backlog is
    millions of rows: read once for a close)."""
    parts = []
    for name in ("allocations", "unmet"):
        part = register.store.table_in(conn, run_id, name, columns=["need_id", "units"])
        if "need_id" in part.columns:
            parts.append(part[["need_id", "units"]].assign(allocated=name == "allocations"))
    if not parts:
        return pd.DataFrame({"need_id": pd.Series(dtype=object),
                             "units": pd.Series(dtype=float),
                             "allocated": pd.Series(dtype=bool)})
    return pd.concat(parts, ignore_index=True)


def _fills(register: Register, conn: sa.Connection, tasks: pd.DataFrame,
           runs: list[tuple[str, int]], stations: set[str] | None,
           owed_by_run: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Per week, station and colour: the needs the week's run was given, and the needs planned
    and delivered counted by the fraction of each (a need half delivered counts ½).

    The needs are counted from the run's plans (each household's number of needs); only the
    needs with tasks add to planned and delivered, and the tasks say their station and colour:
    a city week gives its run a million needs, most of them never in a task."""
    rows = []
    for week, run_id in runs:
        plans = register.store.table_in(conn, run_id, "plans",
                                        columns=["station_id", "tier", "needs"])
        if plans.empty:
            continue
        if stations is not None:
            plans = plans[member_mask(plans["station_id"], stations)]
        counted = plans.groupby(["station_id", "tier"])["needs"].sum()
        served = tasks.loc[(tasks["week"] == week).to_numpy() & (tasks["need_id"] != "").to_numpy(),
                           ["need_id", "station_id", "tier", "units", "units_delivered", "status"]]
        owed = owed_by_run.get(run_id)
        if owed is None:
            owed = run_owed(register, conn, run_id)
        owed = owed[member_mask(owed["need_id"], served["need_id"].unique())]
        size = owed.groupby("need_id")["units"].sum()
        delivered = served["units_delivered"].where(served["status"] == "delivered", 0.0)
        per_need = served.assign(delivered=delivered).groupby("need_id").agg(
            station_id=("station_id", "first"), tier=("tier", "first"),
            planned=("units", "sum"), delivered=("delivered", "sum"))
        # Needs are counted by the fraction served, whatever their unit (as the allocation does).
        whole = size.reindex(per_need.index).where(lambda x: x > 0)
        per_need["planned"] = np.minimum(per_need["planned"] / whole, 1.0)
        per_need["delivered"] = np.minimum(per_need["delivered"] / whole, 1.0)
        fractions = per_need.groupby(["station_id", "tier"])[["planned", "delivered"]].sum()
        frame = counted.rename("needs").to_frame().join(fractions, how="left").fillna(0.0)
        rows.append(frame.reset_index().assign(week=week))
    if not rows:
        return Facts.empty().fills
    out = pd.concat(rows, ignore_index=True)
    return out.assign(needs=out["needs"].astype(int))[FILL_COLUMNS]


SHORTFALL_COLUMNS = ["week", "service_id", "street_id", "units"]


def capacity_shortfalls(unmet: pd.DataFrame, needs: pd.DataFrame,
                        street: pd.Series) -> pd.DataFrame:
    """Units a run left unmet for lack of capacity, per service and street: ``unmet`` is the
    run's table, ``needs`` gives each need's service and household (indexed by need id),
    ``street`` each household's street."""
    if unmet.empty:
        return pd.DataFrame(columns=["service_id", "street_id", "units"])
    short = unmet[(unmet["reason"] == "capacity_exhausted").to_numpy()]
    # Looked up as Python strings: Arrow strings' lookups of a city's 700,000 needs in its
    # million take seconds.
    at = pd.Index(needs.index.to_numpy(object)).get_indexer(short["need_id"].to_numpy(object))
    found = at >= 0
    household = needs["household_id"].to_numpy(object)[at[found]]
    where = pd.Index(street.index.to_numpy(object)).get_indexer(household)
    frame = pd.DataFrame({"service_id": needs["service_id"].to_numpy(object)[at[found]],
                          "street_id": np.where(where >= 0, street.to_numpy(object)[where],
                                                None),
                          "units": short["units"].to_numpy(float)[found]})
    return frame.groupby(["service_id", "street_id"])["units"].sum().reset_index()


def shortfalls(register: Register, conn: sa.Connection, week: str, run_id: int,
               needs: pd.DataFrame | None = None) -> pd.DataFrame:
    """A week's units unmet for lack of capacity, per service and street, from its run: kept
    with the run when the week was opened (``cycle.open_week``), else found from its unmet
    table, ``needs`` giving each need's service and household (indexed by need id; read from
    the register when not given)."""
    kept = register.store.table_in(conn, run_id, "shortfalls")
    if "units" in kept.columns:
        return kept.assign(week=week)[SHORTFALL_COLUMNS]
    unmet = register.store.table_in(conn, run_id, "unmet")
    if unmet.empty:
        return pd.DataFrame(columns=SHORTFALL_COLUMNS)
    if needs is None:
        needs = fetch_frame(conn, sa.select(NEED_STATES.c.need_id, NEED_STATES.c.service_id,
                                            NEED_STATES.c.household_id)).set_index("need_id")
    plans = register.store.table_in(conn, run_id, "plans")
    centres = register.table("centres", conn).set_index("centre_id")
    station = plans.set_index("household_id")["station_id"]
    street = pd.Series(station.map(centres["parent_id"]).to_numpy(object), index=station.index)
    return capacity_shortfalls(unmet, needs, street).assign(week=week)[SHORTFALL_COLUMNS]


def store_facts(register: Register, conn: sa.Connection, week: str, centre: str,
                week_tasks: pd.DataFrame, run_id: int | None, made_at: str,
                needs: pd.DataFrame | None = None, owed: pd.DataFrame | None = None) -> None:
    """Keep the facts of a week as it closes (``cycle.close_week``, in its transaction).
    ``needs``: the service and household of each need the week's run was given (read from
    the register when not given); ``owed``: the run's :func:`run_owed` when read already."""
    runs = [(week, run_id)] if run_id is not None else []
    found = facts(register, conn, with_days(week_tasks), runs,
                  owed={run_id: owed} if run_id is not None and owed is not None else None)
    short = (shortfalls(register, conn, week, run_id, needs) if run_id is not None
             else pd.DataFrame(columns=SHORTFALL_COLUMNS))
    for table, frame in ((OUTCOMES, found.outcomes), (FILLS, found.fills),
                         (REACHED, found.reached), (SHORTFALLS, short)):
        columns = [c.name for c in table.columns if c.name != "fact_id"]
        bulk_insert(conn, table, frame.assign(centre=centre)[columns])
    conn.execute(FACT_WEEKS.insert().values(week=week, centre=centre, made_at=made_at))


def store_missing_facts(register: Register, conn: sa.Connection, made_at: str) -> list[str]:
    """Keep the facts of every closed week that has none (weeks closed before the facts
    existed: a store upgraded to revision 0004); returns those weeks."""
    closed = fetch_frame(conn, sa.select(WEEKS.c.week, WEEKS.c.centre, WEEKS.c.run_id)
                         .where(WEEKS.c.state == "closed"))
    stored = fetch_frame(conn, sa.select(FACT_WEEKS.c.week, FACT_WEEKS.c.centre))
    missing = closed[~(closed["week"] + "|" + closed["centre"]).isin(
        set(stored["week"] + "|" + stored["centre"]))]
    for week, centre, run_id in zip(missing["week"], missing["centre"], missing["run_id"],
                                    strict=True):
        week_tasks = tasks_frame(conn, TASKS.c.week == week, TASKS.c.centre == centre)
        store_facts(register, conn, week, centre, week_tasks,
                    None if pd.isna(run_id) else int(run_id), made_at)
    return sorted(missing["week"])


def read_facts(register: Register, first: str | None = None, last: str | None = None,
               stations: set[str] | None = None, by: str = "provider") -> Facts:
    """The facts of the weeks: stored for every week closed with its facts, computed from the
    tasks for the rest. With ``stations`` (a coordinator's fence) outcomes and reach come from
    the stations' own tasks (a subtree's are few) and fills from the stations' stored rows."""
    with register.engine.connect() as conn:
        weeks = fetch_frame(conn, sa.select(WEEKS.c.week, WEEKS.c.centre, WEEKS.c.run_id,
                                            WEEKS.c.state)
                            .where(*_weeks_where(WEEKS.c.week, first, last)))
        stored = fetch_frame(conn, sa.select(FACT_WEEKS.c.week, FACT_WEEKS.c.centre)
                             .where(*_weeks_where(FACT_WEEKS.c.week, first, last)))
        pair = weeks["week"] + "|" + weeks["centre"]
        kept = weeks[pair.isin(set(stored["week"] + "|" + stored["centre"]))]
        live = weeks[~pair.isin(set(kept["week"] + "|" + kept["centre"]))]
        parts: list[Facts] = []
        if len(kept):
            parts.append(_stored(conn, first, last, stations, by))
        if stations is not None:
            # Outcomes and reach of every week from the fenced tasks; fills of the open weeks.
            tasks = task_table(register, first, last, stations, conn=conn,
                               columns=FACT_COLUMNS)
            parts.append(facts(register, conn, tasks, _runs(live), stations))
        elif len(live):
            tasks = task_table(register, conn=conn, columns=FACT_COLUMNS,
                               where=(TASKS.c.week.in_(sorted(set(live["week"]))),))
            own = (tasks["week"] + "|" + tasks["centre"]).isin(
                set(live["week"] + "|" + live["centre"]))
            parts.append(facts(register, conn, tasks[own.to_numpy()], _runs(live)))
    return Facts.join(parts)


def _runs(weeks: pd.DataFrame) -> list[tuple[str, int]]:
    return [(w, int(r)) for w, r in zip(weeks["week"], weeks["run_id"], strict=True)
            if pd.notna(r)]


def _stored(conn: sa.Connection, first: str | None, last: str | None,
            stations: set[str] | None, by: str) -> Facts:
    """The stored facts of the weeks, summed in the database: outcomes of ``by`` over the
    weeks and of colour per week (for monitoring), fills per week and colour, the households
    reached once each. With ``stations``: fills only (the rest comes from the fenced tasks).
    Every stored row belongs to a (week, scope) whose facts are kept: they are written
    together, in the transaction that closes the week."""
    def summed(table: sa.Table, keys: list, values: list[str], *where) -> pd.DataFrame:
        query = sa.select(*keys, *(sa.func.sum(table.c[v]).label(v) for v in values)).where(
            *_weeks_where(table.c.week, first, last), *where).group_by(*keys)
        return fetch_frame(conn, query)

    f = FILLS
    fills = summed(f, [f.c.week, f.c.tier], ["needs", "planned", "delivered"],
                   *([f.c.station_id.in_(sorted(stations))] if stations is not None else []))
    fills = fills.assign(station_id="", needs=fills["needs"].astype(int))[FILL_COLUMNS]
    empty = Facts.empty()
    if stations is not None:
        return Facts(empty.outcomes, fills, empty.reached)
    o = OUTCOMES
    week = sa.case((o.c.grouping == "colour", o.c.week), else_="").label("week")
    outcomes = summed(o, [o.c.grouping, o.c.grp, o.c.kind, o.c.status, o.c.reason, o.c.days,
                          week], SUMS, o.c.grouping.in_(sorted({by, "colour"})))
    reached = fetch_frame(conn, sa.select(REACHED.c.tier, REACHED.c.household_id).distinct()
                          .where(*_weeks_where(REACHED.c.week, first, last)))
    return Facts(outcomes, fills, reached.assign(week=""))


def _group_column(by: str) -> str:
    if by not in GROUPS:
        raise ValueError(f"未知的分组 {by!r} / unknown grouping {by!r}: use one of "
                         f"{', '.join(GROUPS)}")
    return GROUPS[by]


# ----------------------------------------------------------------------------- the tables


def by_group(tasks: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per group (provider, linkage, fund, street or colour): the tasks' outcomes and money."""
    return summarise(outcomes(tasks, by), by)


def summarise(summed: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per group: tasks sent, accepted, declined (and why), delivered, not delivered, the
    median days to delivery, money planned, committed and spent, the share of the tasks
    delivered and the share of the money planned spent (from :func:`outcomes`' sums)."""
    _group_column(by)
    s = summed[summed["grouping"] == by] if "grouping" in summed else summed
    # A task recalled with its withdrawn need was taken back, not failed: it counts nowhere.
    s = s[s["status"] != "withdrawn"]
    status = s["status"]
    taken = status.isin(["accepted", "delivered"])
    count = s["tasks"].astype(float)
    per = s["grp"]
    frame = pd.DataFrame({
        "tasks": count.groupby(per).sum().astype(int),
        "accepted": count.where(taken, 0).groupby(per).sum().astype(int),
        "declined": count.where(status == "declined", 0).groupby(per).sum().astype(int),
        "delivered": count.where(status == "delivered", 0).groupby(per).sum().astype(int),
        "not_delivered": count.where(status == "not_delivered", 0).groupby(per).sum()
        .astype(int),
        "median_days": _median_days(s),
        "planned": s["cost"].groupby(per).sum(),
        "committed": s["cost"].where(taken, 0.0).groupby(per).sum(),
        "spent": s["spent"].groupby(per).sum(),
    })
    frame.index.name = by
    # Shares without units: a group's tasks count yuan, items, hours and visits, and a sum of
    # them is no quantity (a cash grant's 2,000 yuan outweighed every hour of care). The
    # coordinator's share counts tasks; the fund manager's weighs each task's delivered
    # fraction by its planned money (spent / planned; tasks costing nothing weigh nothing).
    frame["delivered_share"] = frame["delivered"] / frame["tasks"].where(frame["tasks"] > 0)
    frame["spent_share"] = frame["spent"] / frame["planned"].where(frame["planned"] > 0)
    declined = s[status == "declined"]
    reasons = declined.groupby(["grp", "reason"])["tasks"].sum().unstack(fill_value=0)
    for reason in sorted(reasons.columns):
        frame[f"declined_{reason or 'unknown'}"] = reasons[reason].reindex(
            frame.index, fill_value=0).astype(int)
    return frame.sort_index().reset_index().round(3)


def _median_days(summed: pd.DataFrame) -> pd.Series:
    """Each group's median days to delivery, from counts per number of days (the median of the
    delivered tasks' days, each counted as often as it occurs)."""
    done = summed[(summed["status"] == "delivered") & (summed["days"] >= 0)]
    counts = done.groupby(["grp", "days"])["tasks"].sum().sort_index()
    medians = {}
    for group, per_day in counts.groupby(level=0, sort=False):
        days = per_day.index.get_level_values(1).to_numpy(float)
        reach = np.cumsum(per_day.to_numpy())
        n = int(reach[-1])
        low, high = (n - 1) // 2, n // 2  # the middle position(s), counted from 0
        medians[group] = (days[np.searchsorted(reach, low, side="right")]
                          + days[np.searchsorted(reach, high, side="right")]) / 2
    return pd.Series(medians, dtype=float)


def fill_rate(fills: pd.DataFrame) -> pd.DataFrame:
    """Per week and colour: the week's needs, and the needs planned and delivered counted by
    the fraction of each, with their shares."""
    if fills.empty:
        return pd.DataFrame(columns=["week", "tier", "needs", "planned", "delivered",
                                     "planned_rate", "fill_rate"])
    out = fills.groupby(["week", "tier"])[["needs", "planned", "delivered"]].sum() \
        .reset_index()
    out["needs"] = out["needs"].astype(int)
    out["planned_rate"] = out["planned"] / out["needs"]
    out["fill_rate"] = out["delivered"] / out["needs"]
    order = {t: i for i, t in enumerate(vocab.TIER_ORDER)}
    return out.sort_values(["week", "tier"], key=lambda s: s.map(order) if s.name == "tier"
                           else s).reset_index(drop=True).round(4)


def monitoring(summed: pd.DataFrame) -> pd.DataFrame:
    """Per week and colour: monitoring visits planned and made (on time: within the week)."""
    s = summed[(summed["grouping"] == "colour") & summed["kind"].isin(MONITORING_KINDS)]
    made = s["tasks"].where(s["status"] == "delivered", 0)
    out = pd.DataFrame({"planned": s["tasks"].groupby([s["week"], s["grp"]]).sum(),
                        "made": made.groupby([s["week"], s["grp"]]).sum()}).astype(int)
    out.index.names = ["week", "tier"]
    out["on_time"] = out["made"] / out["planned"]
    return out.reset_index().round(4)


def reach(summed: pd.DataFrame, reached: pd.DataFrame) -> pd.DataFrame:
    """Per colour: money spent, households reached (a delivered task), per ¥10,000."""
    s = summed[summed["grouping"] == "colour"]
    out = pd.DataFrame({"spent": s["spent"].groupby(s["grp"]).sum(),
                        "households": reached.groupby("tier")["household_id"].nunique()}
                       ).fillna(0)
    out["households_per_10k"] = out["households"] / (out["spent"] / 10_000).where(
        out["spent"] > 0)
    order = {t: i for i, t in enumerate(vocab.TIER_ORDER)}
    out.index.name = "colour"
    out = out.reset_index()
    return out.sort_values("colour", key=lambda s: s.map(order)).reset_index(drop=True).round(2)


def tables(found: Facts, by: str) -> dict[str, pd.DataFrame]:
    """The performance tables of a range's facts, grouped ``by``."""
    return {f"by_{by}": summarise(found.outcomes, by), "fill_rate": fill_rate(found.fills),
            "monitoring": monitoring(found.outcomes),
            "reach": reach(found.outcomes, found.reached)}


def performance(register: Register, by: str = "provider", first: str | None = None,
                last: str | None = None, stations: set[str] | None = None
                ) -> dict[str, pd.DataFrame]:
    """The performance tables of the weeks (optionally of some stations only)."""
    _group_column(by)
    return tables(read_facts(register, first, last, stations, by), by)


# The report's sheets, (中文, English); the columns are headed by the app's text table.
SHEETS = {"by_provider": ("按服务方", "by provider"), "by_linkage": ("按联动", "by linkage"),
          "by_fund": ("按基金", "by fund"), "by_street": ("按街镇", "by street"),
          "by_colour": ("按颜色", "by colour"), "fill_rate": ("满足率", "fill rate"),
          "monitoring": ("巡查", "monitoring"), "reach": ("惠及", "reach")}
ABOUT = {"by_provider": ("各服务方的任务与完成", "tasks and deliveries by provider"),
         "by_linkage": ("各联动的任务与完成", "tasks and deliveries by linkage"),
         "by_fund": ("各基金的计划、承诺与支出", "planned, committed and spent by fund"),
         "by_street": ("各街镇的任务与完成", "tasks and deliveries by street"),
         "by_colour": ("各颜色的任务与完成", "tasks and deliveries by colour"),
         "fill_rate": ("每周各颜色的满足率", "fill rate by week and colour"),
         "monitoring": ("巡查走访是否按时", "monitoring visits made on time"),
         "reach": ("惠及户数与每万元惠及户数", "households reached, per ¥10,000")}


# What the short columns count, for people (the report and the app; the API keeps the short
# names): the fill rate's ``planned`` and ``delivered`` are needs (each counted by the fraction
# served), monitoring's ``planned`` and ``made`` are visits — not money, which is what the
# workbook makes of a column called ``planned``.
PEOPLE_COLUMNS = {"fill_rate": {"planned": "needs_planned", "delivered": "needs_delivered"},
                  "monitoring": {"planned": "visits_planned", "made": "visits_made"}}
# Number formats by what the column counts (the workbook's own rules cover money and shares).
# (Not left to the data: a column of whole numbers this time would be shown without decimals.)
PEOPLE_FORMATS = {**{f"by_{by}": {"median_days": DECIMAL} for by in GROUPS},
                  "fill_rate": {"needs": WHOLE, "needs_planned": DECIMAL,
                                "needs_delivered": DECIMAL},
                  "monitoring": {"visits_planned": WHOLE, "visits_made": WHOLE},
                  "reach": {"households": WHOLE, "households_per_10k": DECIMAL}}


def for_people(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A performance table with its columns named for what they count (``PEOPLE_COLUMNS``)."""
    return frame.rename(columns=PEOPLE_COLUMNS.get(name, {}))


def report(tables: dict[str, pd.DataFrame], path: str | Path, title: str,
           lang: str = "both") -> Path:
    """The tables as one workbook for people (planning/workbook.py): an index, money as ¥,
    shares as %, needs and visits as counts; bilingual by default (the report goes to offices
    and funders alike)."""
    from wulian.planning.workbook import Sheet, write_workbook

    sheets = [Sheet(SHEETS.get(name, name), for_people(name, frame), ABOUT.get(name, ""),
                    PEOPLE_FORMATS.get(name, {}))
              for name, frame in tables.items()]
    written = write_workbook(sheets, Path(path), lang,
                             (f"服务绩效报告 {title}", f"service performance report {title}"))
    assert isinstance(written, Path)
    return written
