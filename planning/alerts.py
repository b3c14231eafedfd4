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
import sqlalchemy as sa

from wulian.contract import vocab
from wulian.contract.hierarchy import Hierarchy
from wulian.optimizer.allocation import member_mask
from wulian.planning.cycle import TASKS, WEEKS, fund_balances, lock, period_bounds
from wulian.planning.db import bulk_insert, bulk_update, fetch_frame, fetch_rows
from wulian.planning.match import shift_week, week_start
from wulian.planning.performance import FACT_WEEKS, OUTCOMES, SHORTFALLS, shortfalls
from wulian.planning.register import (
    EVENTS,
    NEED_STATES,
    OPEN_STATES,
    WATCH,
    Events,
    Register,
    weeks_waited,
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


class WeekNotEvaluable(AlertError):
    """A week alerts cannot be evaluated at: the week given, why (Chinese, English) and what
    to do; its message says all of it, Chinese first."""

    def __init__(self, week: str, message_zh: str, message_en: str, hint_zh: str,
                 hint_en: str):
        super().__init__(f"{message_zh};{hint_zh} / {message_en}; {hint_en}")
        self.week = week
        self.message_zh, self.message_en = message_zh, message_en
        self.hint_zh, self.hint_en = hint_zh, hint_en


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


def latest_evaluated(register: Register) -> str | None:
    """The latest week alerts were evaluated at (each evaluation's one event names it)."""
    e = EVENTS.c  # (the events' kind is indexed: an evaluation a week or so)
    with register.engine.connect() as conn:
        subject = conn.execute(sa.select(sa.func.max(e.subject))
                               .where(e.kind == "alerts.evaluate")).scalar()
    return subject.removeprefix("weeks:") if subject else None


def evaluation_week(register: Register, week: str | None = None, *,
                    after_close: bool = False) -> str | None:
    """The week an evaluation is made at: ``week`` (default: the latest week opened) if it lies
    from the latest week evaluated to the latest week opened. An earlier week would resolve
    the alerts found since (an acknowledgement lost when they are found again); a later one
    finds what no week has planned yet (a far week: every household overdue, pushed to the
    webhooks). ``after_close``: a week closed behind the latest evaluated (another scope ran
    ahead) is evaluated at that latest week instead, with what the close changed.

    Raises
    ------
    WeekNotEvaluable
        When ``week`` lies outside those weeks (its message names them).
    """
    latest = latest_week(register)
    if latest is None:
        if week is not None:
            raise WeekNotEvaluable(
                week, f"周次 week={week}:尚未开启任何周,无法评估预警",
                f"week={week}: no week was opened yet, so no alerts can be evaluated",
                "请先开启一周", "open a week first")
        return None
    if week is None:
        return latest
    # (An evaluation past the latest week opened, left by an earlier version, leaves the
    # latest week opened to evaluate.)
    floor = min(latest_evaluated(register) or week, latest)
    if after_close and week < floor:
        return floor
    if floor == latest:
        hint_zh, hint_en = (f"请评估 {latest}(不填周次即是)",
                            f"evaluate {latest} (the default when no week is given)")
    else:
        hint_zh = f"请评估 {floor} 至 {latest} 之间的周(不填:{latest})"
        hint_en = f"evaluate a week from {floor} to {latest} (none given: {latest})"
    if week > latest:
        raise WeekNotEvaluable(
            week, f"周次 week={week} 晚于最近开启的周 {latest}:尚未开启的周不能评估预警",
            f"week={week} is after the latest week opened, {latest}: a week not opened yet "
            f"cannot be evaluated", hint_zh, hint_en)
    if week < floor:
        raise WeekNotEvaluable(
            week, f"周次 week={week} 早于最近评估的周 {floor}:会解除此后发现的预警并丢失其确认",
            f"week={week} is before the week last evaluated, {floor}: it would resolve the "
            f"alerts found since and lose their acknowledgements", hint_zh, hint_en)
    return week


FINDING_COLUMNS = ["alert_id", "rule", "subject_kind", "subject_id", "centre", "numbers"]


def find(register: Register, week: str) -> pd.DataFrame:
    """Every condition the policy's rules find at ``week`` (nothing is stored): a row per
    finding, its ``numbers`` as JSON text (a city's findings are a hundred thousand, built and
    compared as columns). Households are read from the register's watch (their station,
    colours and last visit, kept as they change), each rule asking for the ones it finds."""
    rules = register.policy.alerts
    with register.engine.connect() as conn:
        weeks = _weeks_kept(conn, _recent_weeks(week, _window(rules)))
        found = [
            _monitoring_overdue(register, conn, week, rules["monitoring_overdue"]),
            _unmet(register, conn, rules["unmet"]),
            _colour_worse(conn),
            _funds(register, conn, week, rules),
            _provider_declines(register, conn, weeks, week, rules["provider_declines"]),
            _capacity_short(register, conn, weeks, week, rules["capacity_short"]),
        ]
    return pd.concat([f for f in found if len(f)] or [_findings([])], ignore_index=True)


def _findings(found: list[Finding]) -> pd.DataFrame:
    """Findings of a rule that finds few (funds, providers, services) as rows."""
    return _rows(pd.DataFrame({
        "rule": [f.rule for f in found], "subject_kind": [f.subject_kind for f in found],
        "subject_id": [f.subject_id for f in found], "centre": [f.centre for f in found],
        "numbers": [_dumps(f.numbers) for f in found]}, dtype=object))


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    alert_id = frame["rule"] + ":" + frame["subject_kind"] + ":" + frame["subject_id"]
    return frame.assign(alert_id=alert_id.to_numpy(object))[FINDING_COLUMNS]


def _dumps(numbers: dict) -> str:
    return json.dumps(numbers, ensure_ascii=False, sort_keys=True, default=str)


def _json_objects(fields: dict[str, np.ndarray], encoded: tuple[str, ...] = ()) -> np.ndarray:
    """Per row, the JSON object of ``fields`` exactly as :func:`_dumps` writes it, each
    distinct value encoded once (a city's hundred thousand findings share a few colours,
    weeks and counts); the fields named in ``encoded`` hold JSON text already. For text,
    whole numbers and None only: distinct values are found by ``pd.factorize``, which takes
    1, 1.0 and True for one value, and a NaN is written ``null`` (``_dumps`` writes ``NaN``)."""
    text = None
    for key in sorted(fields):
        if key in encoded:
            value = np.asarray(fields[key], dtype=object)
        else:
            codes, distinct = pd.factorize(pd.Series(fields[key], dtype=object),
                                           use_na_sentinel=False)
            value = np.array([json.dumps(_plain(v), ensure_ascii=False, default=str)
                              for v in distinct], dtype=object)[codes]
        item = json.dumps(key) + ": " + value
        text = item if text is None else text + ", " + item
    return "{" + text + "}"


def _plain(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


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


def _monitoring_overdue(register: Register, conn, week: str, rule) -> pd.DataFrame:
    """Assessed households not visited within their colour's cycle and its grace weeks (never
    visited: overdue): the last visit before the cut-off week of its colour."""
    w = WATCH.c
    cycles = {tier: int(weeks) for tier, weeks in register.policy.monitoring_weeks.items()}
    grace = int(rule["grace_weeks"])
    # More than cycle + grace weeks between the weeks' Mondays: visited before this week.
    cut = sa.case({tier: shift_week(week, -(weeks + grace)) for tier, weeks in cycles.items()},
                  value=w.tier)
    hh = fetch_frame(conn, sa.select(w.household_id, w.station_id, w.tier, w.last_visit)
                     .where(w.tier != "", w.last_visit < cut).order_by(w.household_id))
    seen = hh["last_visit"].to_numpy(object)
    visited = seen != ""
    today = week_start(week)
    codes, distinct = pd.factorize(pd.Series(seen, dtype=object))
    ago = np.array([(today - week_start(v)).days // 7 if v else -1 for v in distinct], dtype=int)
    tier = hh["tier"].to_numpy(object)
    return _rows(pd.DataFrame({
        "rule": "monitoring_overdue", "subject_kind": "household",
        "subject_id": hh["household_id"].to_numpy(object),
        "centre": hh["station_id"].to_numpy(object),
        "numbers": _json_objects({
            "colour": tier, "cycle_weeks": np.array([cycles[t] for t in tier], dtype=int),
            "last_visit": np.where(visited, seen, None),
            "weeks_since": np.where(visited, ago[codes] if len(ago) else -1, None)})},
        dtype=object))


def _unmet(register: Register, conn, rule) -> pd.DataFrame:
    """Households of the rule's colours with needs waiting (or allocated again) for the rule's
    weeks, aged to the register's week: read from the waiting needs' index alone (each need
    carries its household's colour and station; a city's backlog is millions of needs)."""
    as_of = register.week(conn)
    if as_of is None:
        return _findings([])
    n = NEED_STATES.c
    # Per household, by the database: its needs old enough, the week the oldest was raised,
    # and their ids as a JSON array (a city's red and orange households wait for a few hundred
    # thousand needs: read as a row per household, not per need).
    ids = (sa.cast(sa.func.json_agg(n.need_id), sa.Text)
           if conn.dialect.name == "postgresql" else sa.func.json_group_array(n.need_id))
    # (Grouped by household alone: a household is one finding even if its needs' copies of
    # its colour and station ever disagreed.)
    rows = fetch_rows(conn, sa.select(n.household_id, sa.func.max(n.tier),
                                      sa.func.max(n.station_id), sa.func.min(n.week_raised), ids)
                      .where(n.state.in_(OPEN_STATES + ("allocated",)),
                             n.week_raised <= shift_week(as_of, -int(rule["weeks"])),
                             n.tier.in_(list(rule["colours"])))
                      .group_by(n.household_id))
    if not rows:
        return _findings([])
    # By household, and each household's first 20 need ids, by code point (a database's
    # collation may order ids otherwise).
    rows.sort(key=lambda r: r[0])
    household, tier, station, oldest, listed = (np.array(c, dtype=object)
                                                for c in zip(*rows, strict=True))
    need_ids = [sorted(v) for v in json.loads("[" + ",".join(listed) + "]")]
    # Shown as json.dumps writes a list; an array with no escape in the database's text holds
    # no character json.dumps would escape either, so its ids are quoted as they are.
    shown = ['["' + '", "'.join(v[:20]) + '"]' if "\\" not in text
             else json.dumps(v[:20], ensure_ascii=False)
             for v, text in zip(need_ids, listed, strict=True)]
    week_of, weeks = pd.factorize(oldest)  # (a few weeks: each aged once)
    return _rows(pd.DataFrame({
        "rule": "unmet", "subject_kind": "household", "subject_id": household,
        "centre": station,
        "numbers": _json_objects({
            "colour": tier, "needs": np.array([len(v) for v in need_ids], dtype=int),
            "weeks": weeks_waited(weeks, as_of)[week_of],
            "need_ids": shown},
            encoded=("need_ids",))}, dtype=object))


def _colour_worse(conn) -> pd.DataFrame:
    w = WATCH.c  # the few whose colour changed at their last assessment
    hh = fetch_frame(conn, sa.select(w.household_id, w.station_id, w.tier, w.tier_before,
                                     w.assessed_on, w.version)
                     .where(w.tier_before != "", w.tier != w.tier_before)
                     .order_by(w.household_id))
    worse = (hh["tier"].map(_TIER_RANK).to_numpy(float)
             < hh["tier_before"].map(_TIER_RANK).to_numpy(float))
    hh = hh[worse]
    return _rows(pd.DataFrame({
        "rule": "colour_worse", "subject_kind": "household",
        "subject_id": hh["household_id"].to_numpy(object),
        "centre": hh["station_id"].to_numpy(object),
        "numbers": _json_objects({"from": hh["tier_before"].to_numpy(object),
                                  "to": hh["tier"].to_numpy(object),
                                  "assessed_on": hh["assessed_on"].to_numpy(object),
                                  "version": hh["version"].to_numpy(int)})}, dtype=object))


def _funds(register: Register, conn, week: str, rules) -> pd.DataFrame:
    funds = register.table("funds", conn)
    if funds.empty:
        return _findings([])
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
    # pays for (its earmark; any service when it has none), read when a fund under-spends.
    share = float(rules["fund_underspend"]["share"])
    under = balances[(balances["accrued"] > 0)
                     & (balances["spent"] < share * balances["accrued"])]
    if len(under):
        out += _underspent(register, conn, funds, under)
    return _findings(out)


def _underspent(register: Register, conn, funds: pd.DataFrame, under: pd.DataFrame
                ) -> list[Finding]:
    """Of the funds that spent less than their share (``under``, their balances), those with
    carried needs they could pay for: of the services they pay for (their earmark; any service
    when they have none), in their centre's subtree. Each fund's needs are counted by the
    database from the waiting needs' index, whose order (state, colour, station, service) makes a
    subtree and an earmark a few ranges of it, colour by colour."""
    n = NEED_STATES.c  # carried: waiting since a week before the register's
    # Every colour a need can carry ('' for a household not assessed) named, so that the
    # index's order (state, colour, station, service) makes the stations ranges of it.
    carried = (n.state.in_(OPEN_STATES), n.tier.in_(("",) + vocab.TIER_ORDER),
               n.week_raised < (register.week(conn) or ""))
    hierarchy = Hierarchy.from_centres(register.table("centres", conn))
    funds = funds.set_index("fund_id")
    out = []
    for fid, row in under.iterrows():  # (a few funds)
        centre = str(funds.at[fid, "centre_id"])
        earmark = [s for s in str(funds.at[fid, "earmarked_services"] or "").split(";") if s]
        query = sa.select(sa.func.count()).where(
            *carried, n.station_id.in_(sorted(hierarchy.subtree(centre))))
        if earmark:
            query = query.where(n.service_id.in_(earmark))
        if needs := int(conn.execute(query).scalar() or 0):
            out.append(Finding("fund_underspend", "fund", fid, centre, {
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
    t = TASKS.c  # the open weeks' tasks counted in the database (a city week's are 300,000)
    tasks = fetch_frame(conn, sa.select(t.week, t.centre, t.provider_id, t.status,
                                        sa.func.count().label("tasks"))
                        .where(t.week.in_(sorted(set(live["week"]))), t.volunteer_id == "")
                        .group_by(t.week, t.centre, t.provider_id, t.status))
    tasks = tasks[(tasks["week"] + "|" + tasks["centre"]).isin(
        set(live["week"] + "|" + live["centre"])).to_numpy()]
    counted = pd.concat([stored, tasks.groupby(["provider_id", "status"])["tasks"].sum()
                         .reset_index()], ignore_index=True)
    answered = counted[counted["status"].isin(["declined", "delivered", "not_delivered"])]
    if answered.empty:
        return _findings([])
    failed = answered["tasks"].where(answered["status"].isin(["declined", "not_delivered"]), 0)
    stats = pd.DataFrame({"tasks": answered.groupby("provider_id")["tasks"].sum(),
                          "failed": failed.groupby(answered["provider_id"]).sum()})
    stats["share"] = stats["failed"] / stats["tasks"]
    providers = register.table("providers", conn).set_index("provider_id")
    hit = stats[(stats["tasks"] >= int(rule["min_tasks"]))
                & (stats["share"] > float(rule["share"]))]
    return _findings([Finding("provider_declines", "provider", pid,
                    str(providers["centre_id"].get(pid, "")),
                    {"tasks": int(r.tasks), "declined_or_not_delivered": int(r.failed),
                     "share": round(float(r.share), 3), "weeks": recent})
            for pid, r in hit.iterrows()])


def _recent_weeks(week: str, count: int) -> list[str]:
    start = week_start(week)
    out = []
    for k in range(count):
        year, number, _ = (start - pd.Timedelta(days=7 * k)).isocalendar()
        out.append(f"{year}-W{number:02d}")
    return sorted(out)


def _capacity_short(register: Register, conn, weeks: pd.DataFrame, week: str, rule
                    ) -> pd.DataFrame:
    """Units unmet for lack of capacity per service and street, week by week, from the
    weeks' runs (closed weeks: their stored shortfalls); a run of ``weeks`` rises in a row
    (ending at ``week``) fires."""
    recent = _recent_weeks(week, int(rule["weeks"]) + 1)
    weeks = weeks[weeks["week"].isin(recent).to_numpy() & weeks["run_id"].notna().to_numpy()]
    if weeks.empty:
        return _findings([])
    stored = fetch_frame(conn, sa.select(SHORTFALLS.c.week, SHORTFALLS.c.service_id,
                                         SHORTFALLS.c.street_id, SHORTFALLS.c.units)
                         .where(SHORTFALLS.c.week.in_(recent)))
    live = weeks[~weeks["kept"].to_numpy()]
    rows = pd.concat([stored] + [shortfalls(register, conn, w, int(run_id))
                                 for w, run_id in zip(live["week"], live["run_id"],
                                                      strict=True)], ignore_index=True)
    if rows.empty:
        return _findings([])
    table = rows.groupby(["service_id", "street_id", "week"])["units"].sum().unstack("week")
    shown = sorted(set(weeks["week"]))[-(int(rule["weeks"]) + 1):]  # (a week opened for
    # several streets has a run for each; their unmet units add up above)
    table = table.reindex(columns=shown).fillna(0.0)
    if len(shown) != int(rule["weeks"]) + 1 or shown[-1] != week:
        return _findings([])
    # Rising every week: all the week-to-week differences positive (a row per service and
    # street; a city's are thousands).
    values = table.to_numpy(float)
    rising = table[np.all(np.diff(values, axis=1) > 1e-9, axis=1)]
    return _findings([Finding("capacity_short", "service", f"{service}@{street}", str(street),
                              {"service": service, "street": street,
                               "unmet_units": {w: round(float(v), 2)
                                               for w, v in zip(shown, row, strict=True)}})
                      for (service, street), row in zip(rising.index, rising.to_numpy(float),
                                                        strict=True)])


def evaluate(register: Register, week: str | None = None, *, after_close: bool = False
             ) -> Evaluation:
    """Find the week's conditions and bring the stored alerts in line, in one transaction:
    at ``week`` (default: the latest week opened), from the latest week evaluated to the latest
    week opened (:func:`evaluation_week`; ``after_close`` as it says)."""
    week = evaluation_week(register, week, after_close=after_close)
    if week is None:
        return Evaluation(week="", opened=0, updated=0, resolved=0, findings=0)
    found = find(register, week).drop_duplicates("alert_id", keep="last")
    severity = {rule: spec["severity"] for rule, spec in register.policy.alerts.items()}
    result = Evaluation(week=week, opened=0, updated=0, resolved=0, findings=len(found))
    with register.engine.begin() as conn:
        lock(conn)  # two evaluations at once queue (alert ids are keys)
        a = ALERTS.c  # (the columns compared: rows changed are updated in these columns)
        # (a resolved alert's numbers are not compared: found again, it opens anew; a
        # quarter's resolved alerts are read for their ids alone)
        stored = fetch_frame(conn, sa.select(
            a.alert_id, a.state, sa.case((a.state != "resolved", a.numbers)).label("numbers"),
            a.last_week))
        events = Events(conn, register.actor)
        stamp = events.at
        # Each finding beside its stored alert (if any), each stored alert beside its finding.
        at = pd.Index(stored["alert_id"].to_numpy(object)).get_indexer(
            found["alert_id"].to_numpy(object))
        old_state = np.append(stored["state"].to_numpy(object), None)[at]  # -1: None
        found = found.assign(severity=found["rule"].map(severity).to_numpy(object))
        # Found for the first time, or again after it was resolved: (re)opened this week.
        opens = (at < 0) | (old_state == "resolved")
        opened = found[opens].assign(
            since=week, last_week=week, state="open", ack_by="", ack_at="", ack_note="",
            resolved_at="", updated_at=stamp)[list(ALERT_COLUMNS)]
        fresh = opened[(at < 0)[opens]]
        changed = [opened[(at >= 0)[opens]]]
        events.add_many("alert.open", ("alerts:" + opened["alert_id"]).tolist(), None,
                        ('{"numbers": ' + opened["numbers"] + ', "week": "' + week + '"}')
                        .tolist())
        # Found again while open or acknowledged: its numbers and week refreshed. Not an event
        # of its own (a city's hundred thousand open alerts refresh every week): the
        # evaluation's one event below counts them; the row keeps the numbers.
        again = found[~opens]
        before = stored.iloc[at[~opens]]
        refresh = ((before["numbers"].to_numpy(object) != again["numbers"].to_numpy(object))
                   | (before["last_week"].to_numpy(object) != week))
        changed.append(before[refresh][["alert_id"]].assign(
            numbers=again["numbers"].to_numpy(object)[refresh], last_week=week,
            severity=again["severity"].to_numpy(object)[refresh], updated_at=stamp))
        # No longer found: resolved by itself.
        gone = stored[~member_mask(stored["alert_id"], found["alert_id"].tolist())
                      & (stored["state"] != "resolved").to_numpy()]
        changed.append(gone[["alert_id"]].assign(state="resolved", resolved_at=stamp,
                                                  updated_at=stamp))
        events.add_many("alert.resolve", ("alerts:" + gone["alert_id"]).tolist(),
                        ('{"state": "' + gone["state"] + '"}').tolist(),
                        [json.dumps({"state": "resolved", "week": week})] * len(gone))
        result.opened, result.updated, result.resolved = len(opened), int(refresh.sum()), len(gone)
        result.opened_ids = opened["alert_id"].tolist()
        bulk_insert(conn, ALERTS, fresh.to_dict("records"))
        for rows in changed:  # each with the columns it sets
            bulk_update(conn, ALERTS, "alert_id", rows)
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
