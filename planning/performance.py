"""Service performance (服务绩效): how well the five linkages serve, from the weeks' tasks.

Over a range of weeks, computed from the tasks and their answers (and the weeks' runs for
what each week owed):

- :func:`by_group` — per provider, linkage, fund, street or colour: tasks sent, accepted,
  declined (and why), delivered, not delivered, units delivered against planned, the median
  days from the week's start to delivery, and money planned, committed and spent;
- :func:`fill_rate` — per week and colour: units owed, planned and delivered, and the share
  delivered;
- :func:`monitoring` — per week and colour: monitoring visits planned and made;
- :func:`reach` — per colour: money spent, households reached, households per ¥10,000.

:func:`report` writes them as one bilingual workbook a street centre can hand to the district.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from wulian.contract import vocab
from wulian.planning.cycle import MONITORING_KINDS, TASKS, WEEKS, delivered_cost, tasks_frame
from wulian.planning.db import fetch_frame
from wulian.planning.match import week_start
from wulian.planning.register import NEED_STATES, Register

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


def task_table(register: Register, first: str | None = None, last: str | None = None,
               stations: set[str] | None = None) -> pd.DataFrame:
    """The tasks of the weeks, with money spent and days to delivery."""
    where = []
    if first:
        where.append(TASKS.c.week >= first)
    if last:
        where.append(TASKS.c.week <= last)
    with register.engine.connect() as conn:
        frame = tasks_frame(conn, *where)
    if stations is not None:
        frame = frame[frame["station_id"].isin(stations)]
    monday = frame["week"].map({w: week_start(w) for w in frame["week"].unique()})
    answered = pd.to_datetime(frame["answered_on"].where(frame["answered_on"] != ""),
                              errors="coerce", format="ISO8601")
    days = (answered - pd.to_datetime(monday)).dt.days
    return frame.assign(spent=delivered_cost(frame),
                        days=days.where(frame["status"] == "delivered"))


def by_group(tasks: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per group (provider, linkage, fund, street or colour): the tasks' outcomes and money."""
    if by not in GROUPS:
        raise ValueError(f"未知的分组 {by!r} / unknown grouping {by!r}: use one of "
                         f"{', '.join(GROUPS)}")
    key = GROUPS[by]
    t = tasks if by != "fund" else tasks[tasks["fund_id"] != ""]
    status = t["status"]
    frame = pd.DataFrame({
        "tasks": t.groupby(key).size(),
        "accepted": status.isin(["accepted", "delivered"]).groupby(t[key]).sum(),
        "declined": (status == "declined").groupby(t[key]).sum(),
        "delivered": (status == "delivered").groupby(t[key]).sum(),
        "not_delivered": (status == "not_delivered").groupby(t[key]).sum(),
        "units_planned": t.groupby(key)["units"].sum(),
        "units_delivered": t["units_delivered"].where(status == "delivered", 0.0)
        .groupby(t[key]).sum(),
        "median_days": t.groupby(key)["days"].median(),
        "planned": t.groupby(key)["cost"].sum(),
        "committed": t["cost"].where(status.isin(["accepted", "delivered"]), 0.0)
        .groupby(t[key]).sum(),
        "spent": t.groupby(key)["spent"].sum(),
    }).fillna({"median_days": np.nan})
    frame["delivered_share"] = frame["units_delivered"] / frame["units_planned"].where(
        frame["units_planned"] > 0)
    reasons = t[status == "declined"].groupby([key, "reason"]).size().unstack(fill_value=0)
    for reason in reasons.columns:
        frame[f"declined_{reason or 'unknown'}"] = reasons[reason].reindex(frame.index,
                                                                            fill_value=0)
    return frame.reset_index().rename(columns={key: by}).round(3)


def fill_rate(register: Register, tasks: pd.DataFrame, first: str | None = None,
              last: str | None = None, stations: set[str] | None = None) -> pd.DataFrame:
    """Per week and colour: the week's needs, and the needs planned and delivered counted by
    the fraction of each (a need half delivered counts ½), with their shares."""
    rows = []
    with register.engine.connect() as conn:
        household_of = _need_households(conn)
        query = sa.select(WEEKS.c.week, WEEKS.c.run_id)
        if first:
            query = query.where(WEEKS.c.week >= first)
        if last:
            query = query.where(WEEKS.c.week <= last)
        for week, run_id in conn.execute(query).all():
            if run_id is None:
                continue
            alloc = register.store.table_in(conn, run_id, "allocations")
            unmet = register.store.table_in(conn, run_id, "unmet")
            plans = register.store.table_in(conn, run_id, "plans")
            owed = pd.concat([alloc[["need_id", "units"]], unmet[["need_id", "units"]]])
            owed = owed.groupby("need_id")["units"].sum()
            rows.append(pd.DataFrame({"week": week, "need_id": owed.index,
                                      "owed": owed.to_numpy(float)}))
            colour = plans.set_index("household_id")["tier"] if len(plans) else pd.Series()
            station = plans.set_index("household_id")["station_id"] if len(plans) else \
                pd.Series()
            households = rows[-1]["need_id"].map(household_of)
            rows[-1]["tier"] = households.map(colour)
            rows[-1]["station_id"] = households.map(station)
    if not rows:
        return pd.DataFrame(columns=["week", "tier", "needs", "planned", "delivered",
                                     "planned_rate", "fill_rate"])
    owed = pd.concat(rows, ignore_index=True)
    if stations is not None:
        owed = owed[owed["station_id"].isin(stations)]
    served = tasks[tasks["need_id"] != ""]
    planned = served.groupby(["week", "need_id"])["units"].sum()
    done = served["units_delivered"].where(served["status"] == "delivered", 0.0) \
        .groupby([served["week"], served["need_id"]]).sum()
    key = pd.MultiIndex.from_frame(owed[["week", "need_id"]])
    # Needs are counted by the fraction served, whatever their unit (as the allocation does).
    size = owed["owed"].where(owed["owed"] > 0)
    owed["planned"] = np.minimum(planned.reindex(key).fillna(0.0).to_numpy() / size, 1.0)
    owed["delivered"] = np.minimum(done.reindex(key).fillna(0.0).to_numpy() / size, 1.0)
    out = owed.groupby(["week", "tier"]).agg(needs=("need_id", "size"),
                                             planned=("planned", "sum"),
                                             delivered=("delivered", "sum")).reset_index()
    out["planned_rate"] = out["planned"] / out["needs"]
    out["fill_rate"] = out["delivered"] / out["needs"]
    order = {t: i for i, t in enumerate(vocab.TIER_ORDER)}
    return out.sort_values(["week", "tier"], key=lambda s: s.map(order) if s.name == "tier"
                           else s).reset_index(drop=True).round(4)


def _need_households(conn: sa.Connection) -> pd.Series:
    """Every need's household (read once: a city's weeks name half a million needs each)."""
    frame = fetch_frame(conn, sa.select(NEED_STATES.c.need_id, NEED_STATES.c.household_id))
    return frame.set_index("need_id")["household_id"]


def monitoring(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per week and colour: monitoring visits planned and made (on time: within the week)."""
    visits = tasks[tasks["kind"].isin(MONITORING_KINDS)]
    out = visits.groupby(["week", "tier"]).agg(
        planned=("task_id", "size"), made=("status", lambda s: int((s == "delivered").sum())))
    out["on_time"] = out["made"] / out["planned"]
    return out.reset_index().round(4)


def reach(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per colour: money spent, households reached (a delivered task), per ¥10,000."""
    done = tasks[tasks["status"] == "delivered"]
    out = pd.DataFrame({"spent": tasks.groupby("tier")["spent"].sum(),
                        "households": done.groupby("tier")["household_id"].nunique()}).fillna(0)
    out["households_per_10k"] = out["households"] / (out["spent"] / 10_000).where(
        out["spent"] > 0)
    order = {t: i for i, t in enumerate(vocab.TIER_ORDER)}
    out = out.reset_index().rename(columns={"tier": "colour"})
    return out.sort_values("colour", key=lambda s: s.map(order)).reset_index(drop=True).round(2)


def performance(register: Register, by: str = "provider", first: str | None = None,
                last: str | None = None, stations: set[str] | None = None
                ) -> dict[str, pd.DataFrame]:
    """The performance tables of the weeks (optionally of some stations only)."""
    tasks = task_table(register, first, last, stations)
    return {f"by_{by}": by_group(tasks, by), "fill_rate": fill_rate(register, tasks, first,
                                                                      last, stations),
            "monitoring": monitoring(tasks), "reach": reach(tasks)}


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


def report(tables: dict[str, pd.DataFrame], path: str | Path, title: str,
           lang: str = "both") -> Path:
    """The tables as one workbook for people (planning/workbook.py): an index, money as ¥,
    shares as %; bilingual by default (the report goes to offices and funders alike)."""
    from wulian.planning.workbook import Sheet, write_workbook

    sheets = [Sheet(SHEETS.get(name, name), frame, ABOUT.get(name, ""))
              for name, frame in tables.items()]
    written = write_workbook(sheets, Path(path), lang,
                             (f"服务绩效报告 {title}", f"service performance report {title}"))
    assert isinstance(written, Path)
    return written
