"""What the register's pages read (the inbox, service performance, the fund ledger), cached.

Every read is cached with ``st.cache_data`` on the store's URL and a **change marker**: the
last event's id (nothing changes in the register without an event) and the alerts' count and
last update (re-evaluated numbers are written without an event). Reading the marker is two
indexed queries, so a rerun that changed nothing touches the database for the marker only,
and any change — this session's, a colleague's, the command line's — is seen at the next rerun.
Nothing here validates the whole register (``Register.scenario()``): each page reads the
tables it shows, fenced to the chosen centre's subtree in the query where an index allows.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
import streamlit as st

from wulian.contract.hierarchy import Hierarchy
from wulian.planning import alerts as alert_rules
from wulian.planning import cycle
from wulian.planning import performance as perf
from wulian.planning.register import EVENTS, ROWS, Actor, Register
from wulian.planning.store import store_url
from wulian.ui import signin
from wulian.ui.common import ACTOR_KEY, register_filled, run_store, tr
from wulian.ui.text import pick

LIVE = ("planned", "accepted")  # a task still waiting for its answer
# Tasks and visits listed at most (a street's week is some 2,000 tasks; a city's 500,000).
MAX_ROWS = 5_000


@st.cache_resource(show_spinner=False)
def reader(url: str) -> Register:
    """The register at ``url``, for reading (one per store and process)."""
    return Register(run_store(url), Actor("app", "app"))


def writer(url: str) -> Register:
    """The register at ``url``, changes recorded under the signed-in token's identity (id,
    role, centre, label: ``signin.actor_name``), with the name the sidebar holds after it as
    what the person says of themselves; via app."""
    base = reader(url)
    typed = str(st.session_state.get(ACTOR_KEY) or "")
    return Register(base.store, Actor(signin.actor_name(typed), "app"), base.policy)


def marker(url: str) -> tuple:
    """The register's change marker: (last event id, alerts, alerts' last update)."""
    with reader(url).engine.connect() as conn:
        last = conn.execute(sa.select(sa.func.max(EVENTS.c.event_id))).scalar()
        count, updated = conn.execute(sa.select(
            sa.func.count(), sa.func.max(alert_rules.ALERTS.c.updated_at))).one()
    return int(last or 0), int(count), str(updated or "")


def open_register() -> tuple[str, tuple] | None:
    """The store's URL and the register's change marker; ``None`` after saying why there is
    nothing to show (the store cannot be opened, or the register is empty and how to fill
    it)."""
    url = store_url()
    try:
        mark = marker(url)
    except Exception as err:  # the store cannot be opened or read: say so, in the page
        st.error(tr("reg.error", url=url, message=str(err).splitlines()[0] if str(err) else
                    type(err).__name__))
        return None
    if not register_filled(url):
        st.info(tr("reg.empty", url=url))
        return None
    return url, mark


# ----------------------------------------------------------------------------- centres


@st.cache_data(show_spinner=False, max_entries=8)
def centres(url: str, mark: tuple) -> pd.DataFrame:
    """The register's centres: id, name, level, parent, by id."""
    frame = reader(url).table("centres")
    return frame[["centre_id", "name", "level", "parent_id"]].sort_values("centre_id") \
        .reset_index(drop=True)


@dataclass(frozen=True)
class Scope:
    """A centre's subtree: its centres, stations and the streets that hold them."""

    centre: str | None
    name: str
    inside: frozenset[str] | None  # every centre of the subtree (None: the whole network)
    stations: frozenset[str] | None
    streets: tuple[str, ...] | None
    station_count: int


@st.cache_data(show_spinner=False, max_entries=64)
def scope(url: str, mark: tuple, centre: str | None) -> Scope:
    """The subtree of ``centre`` (``None``: the whole network) from the centres table."""
    table = centres(url, mark)
    level = table.set_index("centre_id")["level"]
    if not centre or centre not in level.index:
        return Scope(None, "", None, None, None, int((level == "station").sum()))
    tree = Hierarchy.from_centres(table)
    inside = frozenset(tree.subtree(centre))
    stations = frozenset(c for c in inside if level[c] == "station")
    streets = sorted({str(s) for s in tree.ancestor(pd.Series(sorted(stations)), "street")}
                     - {""})
    name = table.set_index("centre_id")["name"].get(centre, centre)
    return Scope(centre, f"{name} · {centre}", inside, stations, tuple(streets), len(stations))


def children(table: pd.DataFrame, parent: str | None, level: str) -> dict[str, str]:
    """The centres of ``level`` under ``parent`` (any parent when ``None``): id → label."""
    rows = table[table["level"] == level]
    if parent is not None:
        rows = rows[rows["parent_id"] == parent]
    return {c: f"{n} · {c}" for c, n in zip(rows["centre_id"], rows["name"], strict=True)}


PICKED_KEY = "reg_picked"  # level → the centre picked, kept for every register page


def _remember(level: str, key: str) -> None:
    st.session_state[PICKED_KEY][level] = st.session_state[key]


def centre_picker(table: pd.DataFrame) -> str | None:
    """District → street → station of the register, each list following the one above
    ("全部": the whole network, or the whole of the level above; a register of one district
    lists its streets at once). Returns the deepest centre chosen (``None``: the whole
    network).

    The choice is the same on every register page: it is kept apart from the widgets (whose
    state a page switch drops until the run after) and put back before they are drawn. It is
    in the URL too, so a coordinator's bookmark (``/inbox?reg_district=武侯区 · D04&reg_street=
    安熙街道 · D04S01``: the labels, name · id, which do not change with the language) opens on
    their street."""
    picked = st.session_state.setdefault(PICKED_KEY, {})
    districts = children(table, None, "district")
    chosen: str | None = None
    parent: str | None = None
    for column, level in zip(st.columns(3), ("district", "street", "station"), strict=True):
        key = f"reg_{level}"
        labels = {"": tr("centre.all")}
        if level == "district":
            labels.update(districts)
        elif parent is not None:
            labels.update(children(table, parent, level))
        if level in picked:  # else a first run: the URL's value, if any, stands
            st.session_state[key] = picked[level] if picked[level] in labels else ""
        # Labels are resolved now: a format_func runs later, outside this script run.
        value = column.selectbox(tr(f"centre.{level}"), list(labels), key=key,
                                 format_func=labels.get, disabled=len(labels) == 1,
                                 bind="query-params", on_change=_remember, args=(level, key))
        picked[level] = value
        if value:
            chosen = parent = value
        elif level == "district" and len(districts) == 1:
            parent = next(iter(districts))
        else:
            parent = None
    return signin.fenced(chosen, table)


# ----------------------------------------------------------------------------- the inbox


@dataclass
class Inbox:
    """What awaits the coordinator of a scope (the first ``MAX_ROWS`` tasks and visits, by id,
    with how many there are in all)."""

    open_weeks: list[tuple[str, str]]
    alerts: pd.DataFrame  # open and acknowledged, most severe and oldest first
    tasks: pd.DataFrame  # service tasks and service visits awaiting an answer
    visits: pd.DataFrame  # monitoring visits not yet answered
    task_count: int
    visit_count: int


def alerts_of(register: Register, centres: frozenset[str] | None,
              states: tuple[str, ...] = ("open", "acknowledged")) -> pd.DataFrame:
    """``planning.alerts.alerts(register, centres=centres, states=states)``, with the centres
    fenced in the query (its centre index) rather than after reading every alert: a city's
    register holds hundreds of thousands (288,629 on the city quarter timed in docs/ui.md,
    read in 6 s, against a street's 980)."""
    if centres is None:
        return alert_rules.alerts(register, states=states)
    table = alert_rules.ALERTS
    query = sa.select(table).where(table.c.state.in_(list(states)),
                                   table.c.centre.in_(sorted(centres)))
    with register.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(),
                             columns=list(alert_rules.ALERT_COLUMNS))
    # The order and titles of ``alerts.alerts``: most severe, then oldest, then by id.
    order = frame["severity"].map({"high": 0, "medium": 1, "low": 2})
    frame = frame.assign(_o=order).sort_values(["_o", "since", "alert_id"]).drop(columns="_o")
    names = register.policy.alerts
    return frame.assign(
        title_zh=frame["rule"].map(lambda r: names[r]["zh"]),
        title_en=frame["rule"].map(lambda r: names[r]["en"])).reset_index(drop=True)


def _rows(conn: sa.Connection, where: list) -> pd.DataFrame:
    """The first ``MAX_ROWS`` tasks matching ``where``, by id."""
    query = sa.select(cycle.TASKS).where(*where).order_by(cycle.TASKS.c.task_id).limit(MAX_ROWS)
    return pd.DataFrame(conn.execute(query).mappings().all(),
                        columns=list(cycle.TASK_COLUMNS)).drop(columns=["updated_at"])


@st.cache_data(show_spinner=False, max_entries=32)
def inbox(url: str, mark: tuple, centre: str | None) -> Inbox:
    """Open alerts, the open weeks' tasks awaiting an answer and the monitoring visits due,
    fenced to ``centre``'s subtree."""
    register = reader(url)
    area = scope(url, mark, centre)
    found = alerts_of(register, area.inside)
    tasks = visits = _rows_empty()
    counts: dict[bool, int] = {}
    with register.engine.connect() as conn:
        weeks = [(w, c) for w, c in conn.execute(
            sa.select(cycle.WEEKS.c.week, cycle.WEEKS.c.centre)
            .where(cycle.WEEKS.c.state == "open").order_by(cycle.WEEKS.c.week)).all()]
        if weeks:
            t = cycle.TASKS
            where = [t.c.status.in_(LIVE),
                     sa.or_(*(sa.and_(t.c.week == w, t.c.centre == c) for w, c in weeks))]
            if area.streets is not None:
                # The street index finds a street's tasks among a city's; stations have none.
                where += [t.c.street_id.in_(list(area.streets)),
                          t.c.station_id.in_(sorted(area.stations or ()))]
            visit = t.c.kind.in_(cycle.MONITORING_KINDS)
            counts = {bool(m): int(n) for m, n in conn.execute(
                sa.select(visit.label("visit"), sa.func.count()).where(*where)
                .group_by(visit)).all()}
            tasks = _rows(conn, [*where, ~visit])
            visits = _rows(conn, [*where, visit])
    return Inbox(open_weeks=weeks, alerts=found.drop(columns=["updated_at"]), tasks=tasks,
                 visits=visits, task_count=counts.get(False, 0),
                 visit_count=counts.get(True, 0))


def _rows_empty() -> pd.DataFrame:
    return pd.DataFrame(columns=[c for c in cycle.TASK_COLUMNS if c != "updated_at"])


@st.cache_data(show_spinner=False, max_entries=8)
def names(url: str, mark: tuple, language: str) -> dict[str, dict[str, str]]:
    """Services' names in ``language`` and units, and providers' names, by id."""
    register = reader(url)
    services = register.table("services")
    providers = register.table("providers")
    words = [pick((zh, en), language) for zh, en in zip(services["name_zh"],
                                                        services["name_en"], strict=True)]
    return {"service": dict(zip(services["service_id"], words, strict=True)),
            "unit": dict(zip(services["service_id"], services["unit"], strict=True)),
            "provider": dict(zip(providers["provider_id"], providers["name"], strict=True))}


def household(url: str, household_id: str) -> dict:
    """One household's row of the register (its ``d_*`` indicators among them)."""
    with reader(url).engine.connect() as conn:
        data = conn.execute(sa.select(ROWS.c.data).where(
            ROWS.c.tbl == "households", ROWS.c.row_key == household_id)).scalar()
    return json.loads(data) if data else {}


# ----------------------------------------------------------------------------- performance


@st.cache_data(show_spinner=False, max_entries=8)
def opened_weeks(url: str, mark: tuple) -> list[str]:
    """Every week the register has opened (for any scope), oldest first."""
    return sorted(set(cycle.weeks(reader(url))["week"]))


@st.cache_data(show_spinner=False, max_entries=16)
def performance(url: str, mark: tuple, by: str, first: str, last: str,
                centre: str | None) -> dict[str, pd.DataFrame]:
    """``planning.performance.performance`` of the weeks for the centre's stations."""
    area = scope(url, mark, centre)
    stations = set(area.stations) if area.stations is not None else None
    return perf.performance(reader(url), by, first, last, stations)


def report_workbook(tables: dict[str, pd.DataFrame], title: str) -> bytes:
    """The performance report workbook (``planning.performance.report``) as bytes; the
    download button makes it when clicked."""
    with tempfile.TemporaryDirectory() as folder:
        return perf.report(tables, Path(folder) / "performance.xlsx", title).read_bytes()


# ----------------------------------------------------------------------------- the ledger


@st.cache_data(show_spinner=False, max_entries=8)
def ledger(url: str, mark: tuple) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The fund ledger (``cycle.fund_ledger``): per fund × street × week, the balances at the
    last week, and the funds' names and weekly budgets."""
    register = reader(url)
    by_week, balances = cycle.fund_ledger(register)
    funds = register.table("funds")[["fund_id", "name", "budget", "centre_id"]]
    return by_week, balances, funds


def period_left(week: str, length: int) -> int:
    """Weeks of the fund period after ``week``: periods are blocks of ``length`` ISO weeks from
    the year's first (``cycle.period_weeks``), the last one cut at the year's last week."""
    year, number = (int(x) for x in week.split("-W"))
    end = min((number - 1) // length * length + length, date(year, 12, 28).isocalendar()[1])
    return end - number


@st.cache_data(show_spinner=False, max_entries=8)
def fund_outlook(url: str, mark: tuple) -> tuple[str, pd.DataFrame]:
    """Per fund at the ledger's last week: the balances of ``cycle.fund_ledger``, the money
    spent per week of the period so far (burn), the weeks left in the period and the spending
    projected to its end at that rate; and that week."""
    _by_week, balances, funds = ledger(url, mark)
    if balances.empty:
        return "", pd.DataFrame()
    at = str(balances["period"].iloc[0]).split("–")[-1]
    left = period_left(at, reader(url).policy.cycle.fund_period_weeks)
    out = balances.copy()
    out.insert(1, "name", out["fund_id"].map(funds.set_index("fund_id")["name"]).fillna(""))
    out["burn"] = out["spent"] / out["weeks"].clip(lower=1)
    out["weeks_left"] = left
    out["period_budget"] = out["weekly_budget"] * (out["weeks"] + left)
    out["projected"] = out["spent"] + out["outstanding"] + out["burn"] * left
    out["projected_left"] = out["period_budget"] - out["projected"]
    return at, out.round(2)


def lab_week(url: str, mark: tuple) -> str | None:
    """The week a yuan is spent in now: the latest open week, else the week after the last
    one opened (``None`` before any week)."""
    return reader(url).week()


@st.cache_resource(show_spinner=False, max_entries=2)
def week_lab(url: str, mark: tuple, week: str):
    """The budget lab of ``week``'s scenario as the register draws it (``cycle.week_scenario``:
    the needs still owed and not yet planned, the supply left, each fund at its balance)."""
    from wulian.planning.budget import BudgetLab

    register = reader(url)
    with register.engine.connect() as conn:
        scenario = cycle.week_scenario(register, conn, week)
    return BudgetLab.from_scenario(scenario, week=week)


@st.cache_data(show_spinner=False, max_entries=4)
def now_and_then(url: str, mark: tuple, week: str) -> pd.DataFrame:
    """Per fund, the marginal value of ¥10,000 (fill-rate points, ``BudgetLab.solve``) now —
    the week's needs at the fund's balance — and in an ordinary week: the same needs at the
    fund's weekly budget."""
    lab = week_lab(url, mark, week)
    funds = ledger(url, mark)[2].set_index("fund_id")
    weekly = {f: float(funds.at[f, "budget"]) for f in lab.base_budgets.index if f in funds.index}
    now = lab.solve(None).funds.set_index("fund_id")
    then = lab.solve(weekly).funds.set_index("fund_id")
    out = pd.DataFrame({"name": funds["name"].reindex(now.index).fillna(""),
                        "balance": now["budget"], "points_now": now["points_per_10k"],
                        "weekly_budget": then["budget"], "points_then": then["points_per_10k"]})
    ratio = 1.05  # within 5 % of each other: about the same
    out["verdict"] = ["now" if a > b * ratio + 1e-9 else "later" if b > a * ratio + 1e-9 else
                      "same" for a, b in zip(out["points_now"], out["points_then"], strict=True)]
    return out.reset_index()
