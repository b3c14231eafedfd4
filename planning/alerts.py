"""Early warning (预警): what needs attention, from the register and the weeks' tasks.

:func:`evaluate` checks every rule of the policy's ``[alerts]`` section at a week (by default
the latest week opened) and keeps the alerts in the store: a condition found for the first time
opens an alert (``since`` that week), one found again updates its numbers, and an alert whose
condition has cleared is resolved by itself. People acknowledge alerts (who, when, a note)
with :func:`acknowledge`; an acknowledged alert that clears is resolved too. Each alert says
its rule, severity, the centre it belongs to (a household's station, a provider's or fund's
centre, a street), what it is about and the numbers behind it. docs/alerts.md has the rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from wulian.contract import vocab
from wulian.contract.hierarchy import Hierarchy
from wulian.planning.cycle import TASKS, WEEKS, fund_balances, lock, period_bounds, tasks_frame
from wulian.planning.db import bulk_insert, bulk_update, fetch_frame, fetch_rows
from wulian.planning.match import week_start
from wulian.planning.performance import FACT_WEEKS, OUTCOMES, SHORTFALLS, shortfalls
from wulian.planning.register import (
    NEED_STATES,
    OPEN_STATES,
    ROWS,
    Events,
    Register,
)

_meta = sa.MetaData()
ALERTS = sa.Table(
    "alerts", _meta,
    sa.Column("alert_id", sa.String(200), primary_key=True),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("centre", sa.String(64), nullable=False),
    sa.Column("subject_kind", sa.String(16), nullable=False),
    sa.Column("subject_id", sa.String(64), nullable=False),
    sa.Column("since", sa.String(8), nullable=False),
    sa.Column("last_week", sa.String(8), nullable=False),
    sa.Column("numbers", sa.Text, nullable=False),
    sa.Column("state", sa.String(14), nullable=False),
    sa.Column("ack_by", sa.Text, nullable=False),
    sa.Column("ack_at", sa.String(32), nullable=False),
    sa.Column("ack_note", sa.Text, nullable=False),
    sa.Column("resolved_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)
ALERT_COLUMNS = tuple(c.name for c in ALERTS.columns)
STATES = ("open", "acknowledged", "resolved")
_TIER_RANK = {t: i for i, t in enumerate(vocab.TIER_ORDER)}


class AlertError(ValueError):
    """An alert action that cannot be taken (bilingual message)."""


@dataclass(frozen=True)
class Finding:
    """One condition found: the rule, what it is about, where, and the numbers behind it."""

    rule: str
    subject_kind: str
    subject_id: str
    centre: str
    numbers: dict

    @property
    def alert_id(self) -> str:
        return f"{self.rule}:{self.subject_kind}:{self.subject_id}"


@dataclass
class Evaluation:
    week: str
    opened: int
    updated: int
    resolved: int
    findings: int
    opened_ids: list[str] = field(default_factory=list)  # the alerts this evaluation opened


def weeks_between(earlier: str, later: str) -> int:
    """Whole weeks from one ISO week to a later one."""
    return (week_start(later) - week_start(earlier)).days // 7


def latest_week(register: Register) -> str | None:
    with register.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(WEEKS.c.week))).scalar()


def find(register: Register, week: str) -> list[Finding]:
    """Every condition the policy's rules find at ``week`` (nothing is stored)."""
    rules = register.policy.alerts
    with register.engine.connect() as conn:
        households = _households(register, conn)
        # The needs still waiting, read once for the rules that look at them (a city's are a
        # million): their household, service, state and weeks waited.
        backlog = fetch_frame(conn, sa.select(
            NEED_STATES.c.need_id, NEED_STATES.c.household_id, NEED_STATES.c.service_id,
            NEED_STATES.c.state, NEED_STATES.c.age).where(
            NEED_STATES.c.state.in_(OPEN_STATES + ("allocated",))))
        weeks = _weeks_kept(conn, _recent_weeks(week, _window(rules)))
        found: list[Finding] = []
        found += _monitoring_overdue(register, conn, households, week,
                                     rules["monitoring_overdue"])
        found += _unmet(backlog, households, rules["unmet"])
        found += _colour_worse(households)
        found += _funds(register, conn, households, backlog, week, rules)
        found += _provider_declines(register, conn, weeks, week, rules["provider_declines"])
        found += _capacity_short(register, conn, backlog, weeks, week, rules["capacity_short"])
    return found


def _window(rules) -> int:
    """The most recent weeks any rule looks back over (the week itself included)."""
    return max(int(rules["provider_declines"]["weeks"]), int(rules["capacity_short"]["weeks"]) + 1)


def _weeks_kept(conn: sa.Connection, recent: list[str]) -> pd.DataFrame:
    """The (week, scope) pairs opened in ``recent`` weeks, their run, state, and whether their
    performance facts are kept (``planning/performance.py``: then their tasks and shortfalls
    are read from the facts)."""
    weeks = fetch_frame(conn, sa.select(WEEKS.c.week, WEEKS.c.centre, WEEKS.c.run_id,
                                        WEEKS.c.state).where(WEEKS.c.week.in_(recent)))
    kept = fetch_frame(conn, sa.select(FACT_WEEKS.c.week, FACT_WEEKS.c.centre)
                       .where(FACT_WEEKS.c.week.in_(recent)))
    pairs = set(kept["week"] + "|" + kept["centre"])
    return weeks.assign(kept=(weeks["week"] + "|" + weeks["centre"]).isin(pairs).to_numpy())


def _households(register: Register, conn: sa.Connection) -> pd.DataFrame:
    """Per household: station, the last and the previous assessment's colour and when."""
    frame = register.table("households", conn)
    if frame.empty:
        return pd.DataFrame(columns=["household_id", "station_id", "tier", "before",
                                     "assessed_on", "version"])
    hh = frame[["household_id", "station_id"]].set_index("household_id")
    colours = register.colours(conn)
    return hh.join(colours[["tier", "before", "assessed_on", "version"]]).reset_index()


def _monitoring_overdue(register: Register, conn, households: pd.DataFrame, week: str,
                        rule) -> list[Finding]:
    keys = [k for (k,) in fetch_rows(conn, sa.select(ROWS.c.row_key).where(
        ROWS.c.tbl == "history"))]
    # The last visit's week per household (keys are week|household|volunteer, split in
    # Arrow): weeks sort as text, so the last row of each household after sorting (no groupby
    # over Arrow strings, whose max runs in Python per household).
    parts = pc.split_pattern(pa.array(keys, pa.string()), "|", max_splits=2)
    visits = pd.DataFrame({"week": pc.list_element(parts, 0).to_numpy(zero_copy_only=False),
                           "household": pc.list_element(parts, 1).to_numpy(
                               zero_copy_only=False)})
    last = visits.sort_values("week").drop_duplicates("household", keep="last") \
        .set_index("household")["week"]
    cycle = register.policy.monitoring_weeks
    hh = households.dropna(subset=["tier"])
    at = pd.Index(last.index.to_numpy(object)).get_indexer(
        hh["household_id"].to_numpy(object))
    visited = at >= 0
    seen = pd.Series(np.where(visited, last.to_numpy(object)[at], None), dtype=object)
    # Weeks since the last visit, counted between the weeks' Mondays (never visited: overdue).
    today = week_start(week)
    weeks_ago = {w: (today - week_start(w)).days // 7 for w in seen.dropna().unique()}
    waited = seen.map(weeks_ago).fillna(-1).to_numpy(int)
    cycles = hh["tier"].map(cycle).to_numpy(int)
    overdue = ~visited | (waited > cycles + int(rule["grace_weeks"]))
    return [Finding("monitoring_overdue", "household", hid, station,
                    {"colour": tier, "cycle_weeks": int(weeks),
                     "last_visit": when if v else None, "weeks_since": int(n) if v else None})
            for hid, station, tier, weeks, when, v, n in zip(
                hh["household_id"].to_numpy()[overdue], hh["station_id"].to_numpy()[overdue],
                hh["tier"].to_numpy()[overdue], cycles[overdue], seen.to_numpy()[overdue],
                visited[overdue], waited[overdue], strict=True)]


def _unmet(backlog: pd.DataFrame, households: pd.DataFrame, rule) -> list[Finding]:
    waiting = backlog[backlog["state"].isin(["carried", "allocated"]).to_numpy()
                      & (backlog["age"].to_numpy(int) >= int(rule["weeks"]))]
    hh = households.set_index("household_id")
    waiting = waiting.assign(tier=waiting["household_id"].map(hh["tier"]))
    waiting = waiting[waiting["tier"].isin(list(rule["colours"]))]
    if waiting.empty:
        return []
    # One finding per household, with its first 20 need ids: rows sorted by household and
    # need, then cut where the household changes (a city has a hundred thousand of them).
    waiting = waiting.sort_values(["household_id", "need_id"]).reset_index(drop=True)
    household = waiting["household_id"].to_numpy(object)
    starts = np.flatnonzero(np.r_[True, household[1:] != household[:-1]])
    ends = np.r_[starts[1:], len(waiting)]
    age = waiting["age"].to_numpy(int)
    need = waiting["need_id"].to_numpy(object)
    tier = waiting["tier"].to_numpy(object)
    station = hh["station_id"].reindex(household[starts]).to_numpy(object)
    return [Finding("unmet", "household", household[a], str(where),
                    {"colour": tier[a], "needs": int(b - a), "weeks": int(age[a:b].max()),
                     "need_ids": need[a:min(b, a + 20)].tolist()})
            for a, b, where in zip(starts, ends, station, strict=True)]


def _colour_worse(households: pd.DataFrame) -> list[Finding]:
    hh = households.dropna(subset=["before"])
    worse = (hh["tier"].map(_TIER_RANK).to_numpy(float)
             < hh["before"].map(_TIER_RANK).to_numpy(float))
    return [Finding("colour_worse", "household", r.household_id, r.station_id,
                    {"from": r.before, "to": r.tier, "assessed_on": r.assessed_on,
                     "version": int(r.version)})
            for r in hh[worse].itertuples(index=False)]


def _funds(register: Register, conn, households: pd.DataFrame, backlog: pd.DataFrame,
           week: str, rules) -> list[Finding]:
    funds = register.table("funds", conn)
    if funds.empty:
        return []
    length = register.policy.cycle.fund_period_weeks
    balances = fund_balances(conn, funds, week, length)
    so_far = int(balances["weeks"].max()) if len(balances) else 1
    left_weeks = period_bounds(week, length)[1] - int(week.split("-W")[1])  # weeks after it
    period_budget = balances["weekly_budget"] * (so_far + left_weeks)
    burn = balances["spent"] / max(so_far, 1)
    projected = balances["spent"] + balances["outstanding"] + burn * left_weeks
    centre = funds.set_index("fund_id")["centre_id"]
    out = []
    for fid, row in balances.iterrows():
        if projected[fid] > period_budget[fid] + 0.01 and burn[fid] > 0:
            weeks_to_empty = (period_budget[fid] - row["spent"] - row["outstanding"]) / burn[fid]
            out.append(Finding("fund_runout", "fund", fid, str(centre[fid]), {
                "spent": round(row["spent"], 2), "weekly_burn": round(burn[fid], 2),
                "period_budget": round(period_budget[fid], 2),
                "projected": round(projected[fid], 2),
                "weeks_left_in_period": left_weeks,
                "weeks_until_empty": round(max(weeks_to_empty, 0.0), 1)}))
    # Under-spending while needs it could pay for wait: carried needs of services the fund
    # pays for (its earmark; any service when it has none).
    share = float(rules["fund_underspend"]["share"])
    carried = backlog.loc[(backlog["state"] == "carried").to_numpy(),
                          ["service_id", "household_id"]]
    carried["station_id"] = carried["household_id"].map(
        households.set_index("household_id")["station_id"])
    hierarchy = Hierarchy.from_centres(register.table("centres", conn))
    for fid, row in balances.iterrows():
        if row["accrued"] <= 0 or row["spent"] >= share * row["accrued"]:
            continue
        earmark = str(funds.set_index("fund_id").at[fid, "earmarked_services"] or "")
        services = [s for s in earmark.split(";") if s]
        reach = set(hierarchy.subtree(str(centre[fid])))  # the households the fund pays for
        mine = carried["station_id"].isin(reach)
        if services:
            mine &= carried["service_id"].isin(services)
        needs = int(mine.sum())
        if needs:
            out.append(Finding("fund_underspend", "fund", fid, str(centre[fid]), {
                "spent": round(row["spent"], 2), "accrued": round(row["accrued"], 2),
                "share_spent": round(row["spent"] / row["accrued"], 3),
                "needs_waiting": needs}))
    return out


def _provider_declines(register: Register, conn, weeks: pd.DataFrame, week: str, rule
                       ) -> list[Finding]:
    """Providers whose tasks (not volunteers' visits) were declined or not delivered too often
    over the last weeks: closed weeks from their facts, open ones from their tasks."""
    recent = _recent_weeks(week, int(rule["weeks"]))
    weeks = weeks[weeks["week"].isin(recent).to_numpy()]
    o = OUTCOMES
    stored = fetch_frame(conn, sa.select(o.c.grp.label("provider_id"), o.c.status,
                                         sa.func.sum(o.c.tasks).label("tasks"))
                         .where(o.c.week.in_(recent), o.c.grouping == "provider",
                                o.c.kind == "service").group_by(o.c.grp, o.c.status))
    live = weeks[~weeks["kept"].to_numpy()]
    tasks = tasks_frame(conn, TASKS.c.week.in_(sorted(set(live["week"]))),
                        TASKS.c.volunteer_id == "",
                        columns=("week", "centre", "provider_id", "status"))
    tasks = tasks[(tasks["week"] + "|" + tasks["centre"]).isin(
        set(live["week"] + "|" + live["centre"])).to_numpy()]
    counted = pd.concat([stored, tasks.groupby(["provider_id", "status"]).size()
                         .rename("tasks").reset_index()], ignore_index=True)
    answered = counted[counted["status"].isin(["declined", "delivered", "not_delivered"])]
    if answered.empty:
        return []
    failed = answered["tasks"].where(answered["status"].isin(["declined", "not_delivered"]), 0)
    stats = pd.DataFrame({"tasks": answered.groupby("provider_id")["tasks"].sum(),
                          "failed": failed.groupby(answered["provider_id"]).sum()})
    stats["share"] = stats["failed"] / stats["tasks"]
    providers = register.table("providers", conn).set_index("provider_id")
    hit = stats[(stats["tasks"] >= int(rule["min_tasks"]))
                & (stats["share"] > float(rule["share"]))]
    return [Finding("provider_declines", "provider", pid,
                    str(providers["centre_id"].get(pid, "")),
                    {"tasks": int(r.tasks), "declined_or_not_delivered": int(r.failed),
                     "share": round(float(r.share), 3), "weeks": recent})
            for pid, r in hit.iterrows()]


def _recent_weeks(week: str, count: int) -> list[str]:
    start = week_start(week)
    out = []
    for k in range(count):
        year, number, _ = (start - pd.Timedelta(days=7 * k)).isocalendar()
        out.append(f"{year}-W{number:02d}")
    return sorted(out)


def _capacity_short(register: Register, conn, backlog: pd.DataFrame, weeks: pd.DataFrame,
                    week: str, rule) -> list[Finding]:
    """Units unmet for lack of capacity per service and street, week by week, from the
    weeks' runs (closed weeks: their stored shortfalls); a run of ``weeks`` rises in a row
    (ending at ``week``) fires."""
    recent = _recent_weeks(week, int(rule["weeks"]) + 1)
    weeks = weeks[weeks["week"].isin(recent).to_numpy() & weeks["run_id"].notna().to_numpy()]
    if weeks.empty:
        return []
    stored = fetch_frame(conn, sa.select(SHORTFALLS.c.week, SHORTFALLS.c.service_id,
                                         SHORTFALLS.c.street_id, SHORTFALLS.c.units)
                         .where(SHORTFALLS.c.week.in_(recent)))
    live = weeks[~weeks["kept"].to_numpy()]
    needs = backlog.set_index("need_id")
    if (live["state"] == "closed").any():  # closed before facts were kept: needs since closed
        needs = fetch_frame(conn, sa.select(NEED_STATES.c.need_id, NEED_STATES.c.service_id,
                                            NEED_STATES.c.household_id)).set_index("need_id")
    rows = pd.concat([stored] + [shortfalls(register, conn, w, int(run_id), needs)
                                 for w, run_id in zip(live["week"], live["run_id"],
                                                      strict=True)], ignore_index=True)
    if rows.empty:
        return []
    table = rows.groupby(["service_id", "street_id", "week"])["units"].sum().unstack("week")
    shown = sorted(set(weeks["week"]))[-(int(rule["weeks"]) + 1):]  # (a week opened for
    # several streets has a run for each; their unmet units add up above)
    table = table.reindex(columns=shown).fillna(0.0)
    out = []
    for (service, street), series in table.iterrows():
        values = series.to_numpy(float)
        if len(values) == int(rule["weeks"]) + 1 and np.all(np.diff(values) > 1e-9) \
                and series.index[-1] == week:
            out.append(Finding("capacity_short", "service", f"{service}@{street}", str(street),
                               {"service": service, "street": street,
                                "unmet_units": {w: round(float(v), 2)
                                                for w, v in series.items()}}))
    return out


def evaluate(register: Register, week: str | None = None) -> Evaluation:
    """Find the week's conditions and bring the stored alerts in line, in one transaction."""
    week = week or latest_week(register)
    if week is None:
        return Evaluation(week="", opened=0, updated=0, resolved=0, findings=0)
    found = {f.alert_id: f for f in find(register, week)}
    rules = register.policy.alerts
    result = Evaluation(week=week, opened=0, updated=0, resolved=0, findings=len(found))
    with register.engine.begin() as conn:
        lock(conn)  # two evaluations at once queue (alert ids are keys)
        stored = {r[0]: dict(zip(ALERT_COLUMNS, r, strict=True))
                  for r in fetch_rows(conn, sa.select(*ALERTS.columns))}
        events = Events(conn, register.actor)
        stamp = events.at
        fresh, changed = [], []
        for aid, f in found.items():
            numbers = json.dumps(f.numbers, ensure_ascii=False, sort_keys=True, default=str)
            old = stored.get(aid)
            if old is None or old["state"] == "resolved":
                row = {"alert_id": aid, "rule": f.rule, "severity": rules[f.rule]["severity"],
                       "centre": f.centre, "subject_kind": f.subject_kind,
                       "subject_id": f.subject_id, "since": week, "last_week": week,
                       "numbers": numbers, "state": "open", "ack_by": "", "ack_at": "",
                       "ack_note": "", "resolved_at": "", "updated_at": stamp}
                (fresh if old is None else changed).append(row)
                events.add("alert.open", f"alerts:{aid}", None,
                           {"week": week, "numbers": f.numbers})
                result.opened += 1
                result.opened_ids.append(aid)
            elif old["numbers"] != numbers or old["last_week"] != week:
                # A refresh of an alert still open (a week more overdue, a count changed) is
                # not an event of its own: a city's hundred thousand open alerts refresh every
                # week. The evaluation's one event below counts them; the row keeps the numbers.
                changed.append({**old, "numbers": numbers, "last_week": week,
                                "severity": rules[f.rule]["severity"], "updated_at": stamp})
                result.updated += 1
        for aid, old in stored.items():
            if aid not in found and old["state"] != "resolved":
                changed.append({**old, "state": "resolved", "resolved_at": stamp,
                                "updated_at": stamp})
                events.add("alert.resolve", f"alerts:{aid}", {"state": old["state"]},
                           {"state": "resolved", "week": week})
                result.resolved += 1
        bulk_insert(conn, ALERTS, fresh)
        bulk_update(conn, ALERTS, "alert_id", changed)
        events.add("alerts.evaluate", f"weeks:{week}", None,
                   {"findings": result.findings, "opened": result.opened,
                    "refreshed": result.updated, "resolved": result.resolved})
        events.flush()
    return result


def alerts(register: Register, *, centres: Iterable[str] | None = None,
           rules: Iterable[str] | None = None, states: Iterable[str] = ("open", "acknowledged")
           ) -> pd.DataFrame:
    """Stored alerts, most severe and oldest first, optionally fenced to centres and rules."""
    query = sa.select(ALERTS).where(ALERTS.c.state.in_(list(states)))
    if rules is not None:
        query = query.where(ALERTS.c.rule.in_(list(rules)))
    fence = None if centres is None else sorted(set(centres))
    if fence is not None and len(fence) <= 5000:  # the fence in the query (indexed centre)
        query = query.where(ALERTS.c.centre.in_(fence))
    with register.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=list(ALERT_COLUMNS))
    if fence is not None:
        frame = frame[frame["centre"].isin(fence)]
    order = frame["severity"].map({"high": 0, "medium": 1, "low": 2})
    frame = frame.assign(_o=order).sort_values(["_o", "since", "alert_id"]).drop(columns="_o")
    names = register.policy.alerts
    return frame.assign(
        title_zh=frame["rule"].map(lambda r: names[r]["zh"]),
        title_en=frame["rule"].map(lambda r: names[r]["en"])).reset_index(drop=True)


def acknowledge(register: Register, alert_id: str, note: str = "") -> dict:
    """Acknowledge an open alert (who and when from the register's actor, and a note)."""
    with register.engine.begin() as conn:
        row = conn.execute(sa.select(ALERTS).where(ALERTS.c.alert_id == alert_id)
                           ).mappings().first()
        if row is None:
            raise AlertError(f"没有预警 {alert_id} / no alert {alert_id}")
        if row["state"] == "resolved":
            raise AlertError(f"预警 {alert_id} 已解除 / alert {alert_id} is already resolved")
        events = Events(conn, register.actor)
        values = {"state": "acknowledged", "ack_by": register.actor.name, "ack_at": events.at,
                  "ack_note": note.strip(), "updated_at": events.at}
        conn.execute(ALERTS.update().where(ALERTS.c.alert_id == alert_id).values(**values))
        events.add("alert.acknowledge", f"alerts:{alert_id}", {"state": row["state"]},
                   {k: values[k] for k in ("state", "ack_by", "ack_note")})
        events.flush()
        return {**dict(row), **values}
