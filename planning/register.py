"""The register (救助对象与资源台账): the current state of a centre network, kept in the store.

The register holds what a scenario folder holds — centres, services, households, needs,
providers, offers, funds, volunteers, visit history — as rows of canonical text (the contract's
cells as validation reads them, so the same data from CSV, XLSX or Parquet is the same row),
plus what files cannot say:

- households' dated, versioned assessments (who, when, how discovered, the ``d_*``
  indicators, categories, the colour the policy gives and any assessor override);
- needs' life cycle (open → allocated → delivered in full or carried forward → closed), with
  the week each was first raised, how many weeks it has waited and what is still owed;
- an append-only audit trail: every change is an event with who, when, through what, and the
  row before and after.

A week is drawn from the register as an ordinary :class:`~wulian.planning.scenario.Scenario`
(:mod:`wulian.planning.cycle`), so the models never see the register. docs/cycle.md has the
rules.
"""

from __future__ import annotations

import functools
import io
import json
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import sqlalchemy as sa

from wulian.contract import vocab
from wulian.contract.problems import Problem, ValidationError
from wulian.contract.schema import TABLES
from wulian.demand.policy import Policy
from wulian.demand.scoring import colour
from wulian.optimizer.allocation import member_mask
from wulian.planning.db import (
    bulk_insert,
    bulk_update,
    fetch_frame,
    fetch_rows,
    indexes_made_after,
    param_mark,
)
from wulian.planning.io import as_text, write_tables
from wulian.planning.match import next_week, weeks_between
from wulian.planning.scenario import Scenario
from wulian.planning.store import RunStore
from wulian.planning.validate import split_lists, validate_tables

# The contract's tables the register keeps (pins are a week's decisions, not state).
REGISTER_TABLES = ("centres", "services", "households", "needs", "providers", "offers",
                   "funds", "volunteers", "history")
# Supply and reference tables: a file is their whole current state, so a row missing from it
# is removed. Households, needs and history are never removed by a file: a file of this week's
# needs does not list last week's open ones (a need is withdrawn one at a time).
SYNCED_TABLES = ("centres", "services", "providers", "offers", "funds", "volunteers")
OPEN_STATES = ("open", "carried")  # needs a week can allocate
EPS = 1e-9  # what is owed below this is nothing
VIA = ("cli", "file", "api", "app", "simulator")

_meta = sa.MetaData()
ROWS = sa.Table(
    "register_rows", _meta,
    sa.Column("tbl", sa.String(16), primary_key=True),
    sa.Column("row_key", sa.String(160), primary_key=True),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("effective_from", sa.String(10), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)
ASSESSMENTS = sa.Table(
    "assessments", _meta,
    sa.Column("assessment_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("household_id", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("assessed_on", sa.String(10), nullable=False),
    sa.Column("assessor", sa.Text, nullable=False),
    sa.Column("discovered_by", sa.String(16), nullable=False),
    sa.Column("indicators", sa.Text, nullable=False),
    sa.Column("categories", sa.Text, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("tier_policy", sa.String(8), nullable=False),
    sa.Column("tier_override", sa.String(8), nullable=False),
    sa.Column("tier", sa.String(8), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)
NEED_STATES = sa.Table(
    "need_states", _meta,
    sa.Column("need_id", sa.String(64), primary_key=True),
    sa.Column("household_id", sa.String(64), nullable=False),
    sa.Column("service_id", sa.String(64), nullable=False),
    sa.Column("quantity", sa.Float, nullable=False),
    sa.Column("remaining", sa.Float, nullable=False),
    sa.Column("urgency", sa.Integer, nullable=False),
    sa.Column("week_raised", sa.String(8), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    # Weeks waited when the need closed (0 until then): a waiting need's age is not written
    # week by week but counted from week_raised to the register's week (weeks_waited).
    sa.Column("age", sa.Integer, nullable=False),
    sa.Column("close_reason", sa.String(10), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    # The household's station and colour as the watch holds them (kept with it by keep_watch):
    # the alerts' rules over waiting needs read these from the needs' index alone, where
    # looking up each need's household cost a microsecond per need of a growing backlog.
    sa.Column("station_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("tier", sa.String(8), nullable=False, server_default=""),
)
# A need's own columns (what it is and where it stands), without its household's kept ones.
NEED_COLUMNS = tuple(c for c in NEED_STATES.c if c.name not in ("station_id", "tier"))
# The weeks opened and closed (planning/cycle.py): the register stands at a week, the one the
# waiting needs' ages count to.
WEEKS = sa.Table(
    "weeks", _meta,
    sa.Column("week", sa.String(8), primary_key=True),
    sa.Column("centre", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("run_id", sa.Integer, nullable=True),
    sa.Column("match_run_id", sa.Integer, nullable=True),
    sa.Column("opened_at", sa.String(32), nullable=False),
    sa.Column("closed_at", sa.String(32), nullable=True),
    sa.Column("actor", sa.Text, nullable=False),
)
# Per household what the alerts look at (planning/alerts.py): its station, the colours of its
# last assessment and of the one before, and the week of its last visit. Kept from the audit
# trail as each transaction writes it (Events.flush -> keep_watch), so an evaluation asks the
# database for the households a rule finds instead of deriving a city's 300,000 again from their
# rows, assessments and visits. '' where there is none (not assessed, assessed once, never
# visited).
WATCH = sa.Table(
    "household_watch", _meta,
    sa.Column("household_id", sa.String(64), primary_key=True),
    sa.Column("station_id", sa.String(64), nullable=False),
    sa.Column("tier", sa.String(8), nullable=False),
    sa.Column("tier_before", sa.String(8), nullable=False),
    sa.Column("assessed_on", sa.String(10), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("last_visit", sa.String(8), nullable=False),
    sqlite_with_rowid=False,
)
EVENTS = sa.Table(
    "events", _meta,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("via", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("before", sa.Text, nullable=True),
    sa.Column("after", sa.Text, nullable=True),
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def weeks_waited(raised: np.ndarray | list, as_of: str | None) -> np.ndarray:
    """Whole weeks from each need's week raised (ISO weeks) to ``as_of``: 0 in the week it
    was raised for (or earlier), and everywhere before any week was opened. A need's age is
    counted, not written: carrying a city's million waiting needs into the next week changes
    none of their rows."""
    if as_of is None or not len(raised):
        return np.zeros(len(raised), dtype=int)
    # (Counted once a distinct week: a city's half million needs were raised in a few.)
    codes, weeks = pd.factorize(np.asarray(raised, dtype=object), use_na_sentinel=False)
    gaps = weeks_between(pd.Series(weeks, dtype=object), as_of).to_numpy(int)[codes]
    return np.maximum(gaps, 0)


def _json(value) -> str | None:
    """A value as JSON text (text given is taken as JSON already, as register rows are)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_plain_value)


def _plain_value(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


@dataclass(frozen=True)
class Actor:
    """Who changes the register, and through what (``cli``, ``file``, ``api``, ``app``,
    ``simulator``); kept in every event."""

    name: str
    via: str = "cli"

    def __post_init__(self) -> None:
        if self.via not in VIA:
            raise ValueError(f"未知来源 {self.via!r} / unknown via {self.via!r}: use one of "
                             f"{', '.join(VIA)}")


class Events:
    """The audit trail, written in the caller's transaction: nothing changes without its event."""

    def __init__(self, conn: sa.Connection, actor: Actor):
        self.conn = conn
        self.actor = actor
        # The events not written yet, a list per column (at, actor and via are the same for
        # all): no dict per event of a city's import.
        self.kinds: list[str] = []
        self.subjects: list[str] = []
        self.befores: list[str | None] = []
        self.afters: list[str | None] = []
        self.watched: list[tuple[str, list[str], list]] = []  # (see keep_watch)
        self.at = now()

    def add(self, kind: str, subject: str, before=None, after=None) -> None:
        """An event; ``before`` and ``after`` are dicts or their JSON text (``None``: none)."""
        self.add_many(kind, [subject], [before], [after])

    def add_many(self, kind: str, subjects: list[str], before: list | None,
                 after: list | None) -> None:
        """Events of one kind for many subjects (``before``/``after``: lists, or ``None``)."""
        n = len(subjects)
        befores = [_json(v) for v in before] if before is not None else [None] * n
        afters = [_json(v) for v in after] if after is not None else [None] * n
        if not len(befores) == len(afters) == n:
            raise ValueError(f"{n} subjects, {len(befores)} befores, {len(afters)} afters")
        self.kinds.extend([kind] * n)
        self.subjects.extend(subjects)
        self.befores.extend(befores)
        self.afters.extend(afters)
        if kind in WATCHED and n:
            self.watched.append((kind, list(subjects), afters))

    def add_table(self, table: str, keys: list[str], afters: list[str]) -> None:
        """The add events of every row of a table that held none before this transaction (a
        first import; ``keys`` and ``afters``: its rows, as written), copied by the database
        from the rows, in key order: a city's 1.3 M rows' text is not sent through the driver
        a second time. The same events as :meth:`add_many` would write."""
        kind, r = f"{table}.add", ROWS.c
        self.add_copied(kind, sa.select(sa.literal(f"{table}:", sa.String) + r.row_key,
                                        sa.null(), r.data)
                        .where(r.tbl == table, r.updated_at == self.at)
                        .order_by(self.bytewise(r.row_key)))
        if kind in WATCHED and keys:
            self.watched.append((kind, [f"{table}:{k}" for k in keys], list(afters)))

    def add_copied(self, kind: str, rows: sa.Select) -> None:
        """Events of one kind copied by the database from ``rows``, a select of each event's
        subject, before and after (JSON text, or NULL), in its order: rows the database holds
        are not read out and sent back (a first import's 1.3 M, a city week's 259,000 tasks
        settled). The household watch is the caller's to keep (see :meth:`add_table`)."""
        self.write_rows()  # (the events added before these keep their place)
        self.conn.execute(EVENTS.insert().from_select(
            ["at", "actor", "via", "kind", "subject", "before", "after"], rows.with_only_columns(
                sa.literal(self.at, sa.String), sa.literal(self.actor.name, sa.Text),
                sa.literal(self.actor.via, sa.String), sa.literal(kind, sa.String),
                *rows.selected_columns, maintain_column_froms=True)))

    def bytewise(self, column):
        """``column`` ordered by its bytes on every backend (SQLite's default; PostgreSQL's
        database collation may order ids otherwise: its "C" collation is bytewise)."""
        return column.collate("C") if self.conn.dialect.name == "postgresql" else column

    def write_rows(self) -> None:
        """Write the events added so far (the household watch is kept at :meth:`flush`)."""
        if self.kinds:
            bulk_insert(self.conn, EVENTS, {
                "at": self.at, "actor": self.actor.name, "via": self.actor.via,
                "kind": self.kinds, "subject": self.subjects, "before": self.befores,
                "after": self.afters})
            self.kinds, self.subjects, self.befores, self.afters = [], [], [], []

    def flush(self) -> None:
        if self.watched:
            keep_watch(self.conn, self.watched)
            self.watched = []
        self.write_rows()


# The events that change what the household watch holds (households and history rows are never
# removed: see Register.import_scenario; a history row's week and household are its key).
WATCHED = ("households.add", "households.change", "assessment.add", "history.add")
_STATION = r'"station_id":\s*"(?P<station>(?:[^"\\]|\\.)*)"'
_ASSESSED = pa.schema([("tier", pa.string()), ("assessed_on", pa.string()),
                       ("version", pa.int64())])


def _stations(rows: list) -> np.ndarray:
    """Each household row's station, from its JSON text (a city's rows are not parsed)."""
    found = pc.extract_regex(pa.array(rows, pa.string()), _STATION).field("station")
    out = found.fill_null("").to_numpy(zero_copy_only=False).astype(object)
    escaped = pc.match_substring(found, "\\").fill_null(False).to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(escaped):  # escaped text: decoded
        out[i] = json.loads(f'"{out[i]}"')
    return out


def keep_watch(conn: sa.Connection, batches: list[tuple[str, list[str], list]]) -> None:
    """Bring the household watch (:data:`WATCH`) in line with the events about to be written
    in this transaction (batches of ``kind, subjects, afters`` of the kinds in
    :data:`WATCHED`): households added or changed (their station), their assessments, and
    visits added to the history; and the needs' copies of their household's station and colour
    (new needs, needs of households moved or assessed)."""
    stations: dict[str, str] = {}
    added: set[str] = set()  # households new to the register: not watched yet
    assessed = []
    visits = []
    for kind, subjects, afters in batches:
        if kind == "assessment.add":
            table = pa_json.read_json(pa.BufferReader("\n".join(afters).encode()),
                                      parse_options=pa_json.ParseOptions(
                                          explicit_schema=_ASSESSED,
                                          unexpected_field_behavior="ignore")).to_pandas()
            assessed.append(table.assign(household_id=[s[11:] for s in subjects]))
        elif kind == "history.add":
            visits += subjects
        else:  # a household's row added or changed: its station as the row now says
            homes = [s[11:] for s in subjects]
            stations.update(zip(homes, _stations(afters), strict=True))
            if kind == "households.add":
                added.update(homes)
    frame = pd.concat(assessed, ignore_index=True) if assessed else pd.DataFrame(
        columns=["tier", "assessed_on", "version", "household_id"])
    last = frame.drop_duplicates("household_id", keep="last")
    # Assessed twice in this transaction: the colour before is the one of the last but one.
    twice = frame[frame.duplicated("household_id", keep="last")].drop_duplicates(
        "household_id", keep="last")
    before = dict(zip(twice["household_id"].tolist(), twice["tier"].tolist(), strict=True))
    assessment = dict(zip(last["household_id"].tolist(), zip(
        last["tier"].tolist(), last["assessed_on"].tolist(),
        last["version"].astype(int).tolist(), strict=True), strict=True))
    seen = _latest_weeks(pc.utf8_slice_codeunits(pa.array(visits, pa.string()), 8)
                         ) if visits else pd.Series(dtype=object)
    seen = dict(zip(seen.index.tolist(), seen.tolist(), strict=True))
    rows = [(h, stations.get(h), *assessment.get(h, (None, None, None)), before.get(h),
             seen.get(h)) for h in sorted(set(stations) | set(assessment) | set(seen))]
    fresh = [row for row in rows if row[0] in added]
    if fresh:  # (a list per column: a city's import watches 300,000 households at once)
        homes, st, tier, on, version, bf, visit = (list(c) for c in zip(*fresh, strict=True))
        bulk_insert(conn, WATCH, {
            "household_id": homes, "station_id": [v or "" for v in st],
            "tier": [v or "" for v in tier], "tier_before": [v or "" for v in bf],
            "assessed_on": [v or "" for v in on], "version": [v or 0 for v in version],
            "last_visit": [v or "" for v in visit]})
    known = [(st, tier, bf, bf, tier, on, version, visit, visit, h)
             for h, st, tier, on, version, bf, visit in rows if h not in added]
    if known:
        _update_watch(conn, known)
    # The needs of households moved or assessed carry their new station and colour (a new
    # need is given its household's as it is written: see need_rows).
    copy_to_needs(conn, sorted(h for h in set(stations) | set(assessment) if h not in added))


def copy_to_needs(conn: sa.Connection, households: list[str]) -> None:
    """The needs of ``households`` given their household's station and colour from the watch
    ('' for one not watched). Correlated subqueries, not UPDATE … FROM: SQLite has that only
    from 3.33, and a Python may be linked to an older one."""
    w, n = WATCH.c, NEED_STATES.c
    copied = {column: sa.func.coalesce(sa.select(w[column]).where(
        w.household_id == n.household_id).scalar_subquery(), "")
        for column in ("station_id", "tier")}
    for start in range(0, len(households), 20_000):
        conn.execute(NEED_STATES.update().values(**copied)
                     .where(n.household_id.in_(households[start:start + 20_000])))


def need_rows(conn: sa.Connection, needs: pd.DataFrame, stamp: str) -> dict[str, object]:
    """New needs' states (open, nothing delivered), as :func:`bulk_insert`'s columns, from
    their rows (``need_id``,
    ``household_id``, ``service_id``, ``quantity``, ``urgency``, ``week``), each with its
    household's station and colour as the watch holds them ('' for a household not watched
    yet: flush the transaction's events first so the watch holds the households it added)."""
    homes = needs["household_id"].to_numpy(object)
    w = WATCH.c
    # PostgreSQL: the watch rows read are held (shared) until this transaction ends, so a
    # household assessed or moved at the same time waits for these needs to be written, and
    # its update of its needs' copies then includes them (or these wait for it and read its
    # new row). SQLite: one writer at a time already.
    shared = conn.dialect.name == "postgresql"
    if len(homes) > 10_000:  # (a city's import: the whole watch in one read)
        if shared:
            conn.exec_driver_sql("LOCK TABLE household_watch IN SHARE MODE")
        watched = fetch_rows(conn, sa.select(w.household_id, w.station_id, w.tier))
    else:
        query = sa.select(w.household_id, w.station_id, w.tier).where(
            w.household_id.in_(sorted(set(homes))))
        watched = fetch_rows(conn, query.with_for_update(read=True) if shared else query)
    copies = {h: (station, tier) for h, station, tier in watched}
    copied = [copies.get(h, ("", "")) for h in homes]
    quantity = needs["quantity"].to_numpy(float).tolist()
    return {"need_id": needs["need_id"].to_numpy(object).tolist(), "household_id": homes.tolist(),
            "service_id": needs["service_id"].to_numpy(object).tolist(), "quantity": quantity,
            "remaining": quantity, "urgency": needs["urgency"].to_numpy(int).tolist(),
            "week_raised": needs["week"].to_numpy(object).tolist(), "state": "open", "age": 0,
            "close_reason": "", "updated_at": stamp,
            "station_id": [station for station, _ in copied], "tier": [tier for _, tier in copied]}


def _update_watch(conn: sa.Connection, known: list[tuple]) -> None:
    mark = param_mark(conn)
    text, number = f"CAST({mark} AS TEXT)", f"CAST({mark} AS INTEGER)"
    # Households watched already: a value given replaces the one kept, none (NULL) keeps it;
    # a new assessment moves the colour to tier_before (or the one given, when assessed twice);
    # a visit moves last_visit forward only.
    update = ("UPDATE household_watch SET "
              f"station_id = COALESCE({text}, station_id), "
              f"tier_before = CASE WHEN {text} IS NULL THEN tier_before "
              f"WHEN {text} IS NOT NULL THEN {text} WHEN version > 0 THEN tier ELSE '' END, "
              f"tier = COALESCE({text}, tier), assessed_on = COALESCE({text}, assessed_on), "
              f"version = COALESCE({number}, version), "
              f"last_visit = CASE WHEN {text} > last_visit THEN {text} ELSE last_visit END "
              f"WHERE household_id = {mark}")
    for start in range(0, len(known), 50_000):
        conn.exec_driver_sql(update, known[start:start + 50_000])


def table_field(conn: sa.Connection, table: str, column: str) -> pd.Series:
    """One column of a table, by key, picked from the rows' JSON by the database (a city's
    300,000 households are read for their stations without parsing every row here)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        value = sa.func.json_extract(ROWS.c.data, f'$."{column}"')
    elif dialect == "postgresql":
        value = sa.func.json_extract_path_text(sa.cast(ROWS.c.data, sa.JSON), column)
    else:  # any other database: the rows parsed here
        rows = fetch_rows(conn, sa.select(ROWS.c.row_key, ROWS.c.data)
                          .where(ROWS.c.tbl == table).order_by(ROWS.c.row_key))
        frame = rows_frame([data for _, data in rows])
        return pd.Series(frame[column].to_numpy(object) if len(frame) else [],
                         index=[key for key, _ in rows], dtype=object, name=column)
    rows = fetch_rows(conn, sa.select(ROWS.c.row_key, value).where(ROWS.c.tbl == table)
                      .order_by(ROWS.c.row_key))
    return pd.Series([v if v is not None else "" for _, v in rows],
                     index=[k for k, _ in rows], dtype=object, name=column)


def household_colours(conn: sa.Connection) -> pd.DataFrame:
    """Per household: the colour of its last assessment and of the one before (NaN for a
    household assessed once), and when it was last assessed."""
    a = ASSESSMENTS.c  # in the order of its (household, version) key: no sort here
    rows = fetch_rows(conn, sa.select(a.household_id, a.version, a.tier, a.assessed_on)
                      .order_by(a.household_id, a.version))
    columns = zip(*rows, strict=True) if rows else [()] * 4
    household, version, tier, assessed_on = (np.array(c, dtype=object) for c in columns)
    is_last = np.ones(len(household), bool)
    is_last[:-1] = household[1:] != household[:-1]
    # The row before a household's last is its previous assessment when it is the same
    # household's (rows compared with their neighbours: no groupby over a city's ids).
    last = np.flatnonzero(is_last)
    previous = np.maximum(last - 1, 0)
    assessed_before = (last > 0) & (household[previous] == household[last])
    index = pd.Index(household[last], name="household_id", dtype=object)
    text = {"tier": tier[last], "assessed_on": assessed_on[last],
            "before": np.where(assessed_before, tier[previous], None)}
    return pd.DataFrame({"version": version[last].astype(np.int64),
                         **{k: pd.Series(v, index=index, dtype=object)
                            for k, v in text.items()}}, index=index)


def last_visits(conn: sa.Connection) -> pd.Series:
    """The last visit's week per household, from the history's keys."""
    return _latest_weeks(pa.array([k for (k,) in fetch_rows(conn, sa.select(ROWS.c.row_key)
                                                            .where(ROWS.c.tbl == "history"))],
                                  pa.string()))


def _latest_weeks(keys: pa.Array) -> pd.Series:
    """The latest week per household of history keys (week|household|volunteer, split in
    Arrow). Households and weeks are numbered (weeks in their order as text, which is time's)
    and each household keeps its highest week number: no sort or groupby of a city's 600,000
    visits as strings (grouping them in SQLite took longer still)."""
    parts = pc.split_pattern(keys, "|", max_splits=2)
    weeks, week_ids = pd.factorize(
        pc.list_element(parts, 0).to_numpy(zero_copy_only=False), sort=True)
    homes, home_ids = pd.factorize(pc.list_element(parts, 1).to_numpy(zero_copy_only=False))
    last = np.full(len(home_ids), -1)
    np.maximum.at(last, homes, weeks)
    return pd.Series(np.asarray(week_ids, dtype=object)[last], index=home_ids, dtype=object)


def watch_from_scratch(conn: sa.Connection) -> pd.DataFrame:
    """The household watch derived again from the households' rows, their assessments and the
    history (what :func:`keep_watch` keeps; ``wulian db upgrade`` fills the watch with it)."""
    station = table_field(conn, "households", "station_id")
    colours = household_colours(conn)
    last = last_visits(conn)
    index = pd.Index(station.index.to_numpy(object), name="household_id")
    watch = pd.DataFrame({"station_id": station.to_numpy(object)}, index=index).join(
        colours[["tier", "before", "assessed_on", "version"]]).join(last.rename("last_visit"))
    watch = watch.rename(columns={"before": "tier_before"})
    text = ["station_id", "tier", "tier_before", "assessed_on", "last_visit"]
    watch[text] = watch[text].astype(object).where(watch[text].notna(), "")
    watch["version"] = watch["version"].fillna(0).astype(int)
    return watch.reset_index()[[c.name for c in WATCH.columns]]


def history_key(frame: pd.DataFrame) -> pd.Series:
    return frame["week"] + "|" + frame["household_id"] + "|" + frame["volunteer_id"]


def history_as_shown(history: pd.DataFrame, volunteers: pd.DataFrame) -> pd.DataFrame:
    """The visit history as the register shows it in a scenario (its export, a week's, the
    whole register an import leaves): a visit by a volunteer no longer in ``volunteers`` (who
    left: a volunteers file no longer lists them) keeps its week and household, which the
    household's monitoring cycle counts from, and its volunteer is left empty, so it gives no
    continuity. Visits that then read the same are shown once. The register keeps every
    row as it was written (what happened does not change when someone leaves)."""
    named = history["volunteer_id"].to_numpy(object)
    left = ~member_mask(history["volunteer_id"], volunteers["volunteer_id"]) & (named != "")
    if not left.any():
        return history
    shown = history.assign(volunteer_id=np.where(left, "", named).astype(object))
    return shown.drop_duplicates(list(TABLES["history"].column_names), ignore_index=True)


def visits_shown_already(history: pd.DataFrame, kept: Iterable[str],
                         volunteers: pd.DataFrame) -> np.ndarray:
    """Which rows of a file's ``history`` are visits the register keeps already, as
    :func:`history_as_shown` shows them: with no volunteer, in a week and household where a
    kept row (``kept``: the register's history keys) names a volunteer not in ``volunteers``
    (a register's exported history imported again). They are not added a second time."""
    unnamed = history["volunteer_id"].to_numpy(object) == ""
    if not unnamed.any():
        return unnamed
    present = set(volunteers["volunteer_id"])
    left = {week_home for week_home, _, who in (key.rpartition("|") for key in kept)
            if who and who not in present}
    visits = (history["week"] + "|" + history["household_id"]).to_numpy(object)
    return unnamed & pd.Index(visits, dtype=object).isin(list(left))


def row_keys(table: str, frame: pd.DataFrame) -> pd.Series:
    """Each row's key in the register (its key column; history: week|household|volunteer)."""
    if table == "history":
        return history_key(frame)
    return frame[TABLES[table].key]


def canonical(table: str, frame: pd.DataFrame, *, arrow: bool = False) -> pd.DataFrame:
    """A table as the register keeps it: text cells, the contract's columns first (``arrow``:
    see :func:`as_text`)."""
    text = as_text(frame, arrow=arrow)
    order = [c for c in TABLES[table].column_names if c in text.columns]
    return text[order + [c for c in text.columns if c not in order]]


def row_json(frame: pd.DataFrame) -> list[str]:
    """Each row of a text frame as JSON text, keys in the frame's column order (canonical
    frames have one order, so equal rows give equal text)."""
    if not len(frame):
        return []
    text = frame.astype(object).to_json(orient="records", lines=True, force_ascii=False)
    return text.rstrip("\n").split("\n")


def row_json_sql(conn: sa.Connection, columns: list[sa.ColumnElement]) -> sa.ColumnElement:
    """:func:`row_json`'s text of a row, made by the database from ``columns`` (text or
    floating point; keys their names, in the order given): events copied from the rows
    (:meth:`Events.add_copied`) instead of a city's 279,000 JSON texts built and sent back.

    Text is quoted as pandas quotes it (``/`` as ``\\/`` too). A number is written as
    ``%.10f`` with its trailing zeros cut, one kept after the point: pandas' text for every
    number whose tenth decimal is settled by its first 15 significant digits (PostgreSQL reads
    a float as 15 digits, SQLite's ``printf`` as 16) — amounts in cents and quantities of at
    most 10 decimals from 0 to below 100,000; not beyond (``cycle.SQL_JSON_BELOW``,
    docs/cycle.md)."""
    postgres = conn.dialect.name == "postgresql"
    parts: list[sa.ColumnElement] = []
    for i, column in enumerate(columns):
        parts.append(sa.literal(("{" if i == 0 else ",") + json.dumps(column.name) + ":",
                                sa.Text))
        if isinstance(column.type, sa.Float):
            if postgres:  # (numeric: exact decimals; trim_scale cuts the trailing zeros)
                fixed = sa.func.trim_scale(sa.func.round(sa.cast(column, sa.Numeric), 10))
                text = sa.cast(fixed, sa.Text)
                parts.append(sa.case((sa.func.scale(fixed) == 0, text + ".0"), else_=text))
            else:
                text = sa.func.rtrim(sa.func.printf("%.10f", column), "0", type_=sa.Text)
                parts.append(sa.case((text.endswith("."), text + "0"), else_=text))
        else:
            quoted = (sa.cast(sa.func.to_json(column), sa.Text) if postgres
                      else sa.func.json_quote(column))
            parts.append(sa.func.replace(quoted, "/", "\\/", type_=sa.Text))
    parts.append(sa.literal("}", sa.Text))
    return functools.reduce(operator.add, parts)  # (text: joined by ||)


def rows_frame(values: list[str]) -> pd.DataFrame:
    """Rows kept as JSON text back as a text frame (missing keys as empty text)."""
    if not values:
        return pd.DataFrame()
    data = "\n".join(values).encode()
    # Arrow's reader parses a city's table in a fraction of pandas' time; every value the
    # register keeps is text, so the first row's keys name the columns, typed as text, and
    # keys only later rows have are found as they come.
    schema = pa.schema([(k, pa.string()) for k in json.loads(values[0])])
    try:
        table = pa_json.read_json(pa.BufferReader(data), parse_options=pa_json.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="infer"))
    except pa.ArrowInvalid:  # a value that is not text: pandas reads anything
        frame = pd.read_json(io.StringIO(data.decode()), lines=True, orient="records",
                             dtype=False)
        return frame.astype(object).fillna("")
    if not all(pa.types.is_string(t) for t in table.schema.types):  # (a later key's value)
        return table.to_pandas().astype(object).fillna("")
    # Python text made by Arrow, a missing key's cells "" there: through pandas' Arrow text
    # and its fillna a city week's tables took 0.3 s longer.
    return pd.DataFrame({name: pc.fill_null(column, "").to_numpy(zero_copy_only=False)
                         for name, column in zip(table.column_names, table.columns,
                                                 strict=True)}, dtype=object)


def table_frame(table: str, values: list[str]) -> pd.DataFrame:
    """Rows of a table kept as JSON text as a text frame, the contract's columns first."""
    columns = list(TABLES[table].column_names)
    if not values:
        return pd.DataFrame(columns=columns)
    frame = rows_frame(values)
    order = [c for c in columns if c in frame.columns]
    return frame[order + [c for c in frame.columns if c not in order]]  # ("" for missing)


def row_changes(frame: pd.DataFrame, keys: list[str], old: Mapping[str, str]
                ) -> tuple[TableChanges, dict[str, str], list[str]]:
    """What a canonical frame (its rows' ``keys``) adds to and changes in the stored rows
    (``old``: key → JSON text), as their :func:`row_json` text compares; the JSON text of the
    rows added or changed (only those are written); and the stored keys the frame does not
    list (in stored order).

    A city's 1.3 M rows are compared as Arrow text joined from the frame's columns, not one
    ``row_json`` string each; rows with a value pandas escapes are compared with ``row_json``'s
    own text, and every row is when the frame repeats a key or a column name needs escaping.
    """
    c = TableChanges()
    stored = list(old)
    index = pd.Index(keys)
    at = index.get_indexer(stored) if index.is_unique else None
    ours = None if at is None else _plain_row_json(frame)
    if ours is None:  # by text, every row
        data = row_json(frame)
        for k, row in zip(keys, data, strict=True):
            if (was := old.get(k)) is None:
                c.added.append(k)
            elif was != row:
                c.changed.append(k)
        incoming = dict(zip(keys, data, strict=True))
        known = set(keys)
        return c, incoming, [k for k in stored if k not in known]
    differs = _stored_differs(frame, ours, old, at)
    present = np.zeros(len(keys), dtype=bool)
    present[at[at >= 0]] = True
    changed = np.zeros(len(keys), dtype=bool)
    changed[at[at >= 0][differs]] = True
    c.added = [keys[i] for i in np.flatnonzero(~present)]
    c.changed = [keys[i] for i in np.flatnonzero(changed)]
    written = np.flatnonzero(~present | changed)
    incoming = dict(zip([keys[i] for i in written], _row_texts(frame, ours, written),
                        strict=True))
    absent = at < 0
    return c, incoming, ([k for k, i in zip(stored, absent, strict=True) if i]
                         if absent.any() else [])


def _row_texts(frame: pd.DataFrame, ours: pa.ChunkedArray, rows: np.ndarray) -> list[str]:
    """:func:`row_json`'s text of these rows: Arrow's joined text, pandas' where it escapes."""
    texts = (ours if len(rows) == len(frame) else ours.take(pa.array(rows))).to_pylist()
    escaped = [i for i, t in enumerate(texts) if t is None]
    for i, text in zip(escaped, row_json(frame.iloc[rows[escaped]]), strict=True):
        texts[i] = text
    return texts


def _stored_differs(frame: pd.DataFrame, ours: pa.ChunkedArray, old: Mapping[str, str],
                    at: np.ndarray) -> np.ndarray:
    """For each stored row the frame lists (``at`` ≥ 0: its position in the frame), whether
    its text differs from the frame row's :func:`row_json` (``ours``: see
    :func:`_plain_row_json`)."""
    listed = at >= 0
    rows = at[listed]
    theirs = pa.array(list(old.values()) if listed.all() else
                      [t for t, keep in zip(old.values(), listed, strict=True) if keep],
                      pa.string())
    ours = ours.take(pa.array(rows))
    differs = ~np.asarray(pc.fill_null(pc.equal(theirs, ours), False))
    escaped = np.asarray(pc.is_null(ours))  # rows with a value pandas escapes: its own text
    if escaped.any():
        made = row_json(frame.iloc[rows[escaped]])
        was = theirs.filter(pa.array(escaped)).to_pylist()
        differs[escaped] = [a != b for a, b in zip(made, was, strict=True)]
    return differs


# What pandas' JSON writer escapes in text (a slash as \/), non-ASCII left as it is: a value
# without any of these it writes as it is, between quotes.
_ESCAPED = r'["\\/\x00-\x1f]'


def _plain_row_json(frame: pd.DataFrame) -> pa.ChunkedArray | None:
    """:func:`row_json`'s text of each row of a text frame, joined by Arrow from the frame's
    columns (a city's 1.3 M rows in a fraction of pandas' time); null for a row with a value
    pandas would escape. None when a column name itself would be escaped."""
    columns = [str(c) for c in frame.columns]
    if not columns or any(re.search(_ESCAPED, c) for c in columns):
        return None
    names = [json.dumps(c, ensure_ascii=False) for c in columns]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    parts: list = []
    for i, (column, name) in enumerate(zip(columns, names, strict=True)):
        parts += [("{" if i == 0 else '",') + name + ':"', table.column(column).cast(pa.string())]
    text = pc.binary_join_element_wise(*parts, '"}', "")
    # (Looked for in the joined text at once: the keys hold none, the quotes are 4 a column.)
    escaped = pc.or_(pc.match_substring_regex(text, _ESCAPED.replace('"', "")),
                     pc.not_equal(pc.count_substring(text, '"'), 4 * len(columns)))
    return pc.if_else(escaped, pa.scalar(None, pa.string()), text)


@dataclass
class TableChanges:
    """What an import adds, changes and removes in one table (keys)."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.added) + len(self.changed) + len(self.removed)


@dataclass
class ImportReport:
    """Per table, what an import did (or, dry, would do); ``skipped`` names tables not kept."""

    changes: dict[str, TableChanges]
    applied: bool
    assessments: int = 0
    skipped: tuple[str, ...] = ()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"table": name, "added": len(c.added), "changed": len(c.changed),
              "removed": len(c.removed)} for name, c in self.changes.items()],
            columns=["table", "added", "changed", "removed"])

    @property
    def total(self) -> int:
        return sum(c.total for c in self.changes.values())


@dataclass
class Withdrawal:
    """A need withdrawn: its tasks recalled (not yet answered when it was withdrawn) and those
    already delivered in part this week, kept as delivered (their money spent)."""

    need_id: str
    recalled: list[str]
    delivered: list[str]


class RegisterError(ValueError):
    """A register change that cannot be made (bilingual message)."""


class Register:
    """The register in a run store's database.

    Parameters
    ----------
    store
        The run store (its database holds the register).
    actor
        Who makes the changes (kept in every event).
    policy
        The colour policy; by default the packaged one.
    """

    def __init__(self, store: RunStore, actor: Actor | None = None,
                 policy: Policy | None = None):
        self.store = store
        self.engine = store.engine
        self.actor = actor or Actor("cli")
        self.policy = policy or Policy.load()

    # -- reading -----------------------------------------------------------------------------

    def rows(self, table: str, conn: sa.Connection | None = None,
             keys: Iterable[str] | None = None) -> dict[str, str]:
        """Key → the row as canonical JSON text (of every row, or of ``keys`` that exist)."""
        query = sa.select(ROWS.c.row_key, ROWS.c.data).where(ROWS.c.tbl == table)
        if keys is None:
            return dict(self._fetch(query, conn))
        return {k: v for chunk in _chunks(sorted(set(keys)))
                for k, v in self._fetch(query.where(ROWS.c.row_key.in_(chunk)), conn)}

    def table(self, table: str, conn: sa.Connection | None = None) -> pd.DataFrame:
        """One table of the register as text (contract columns first, keys sorted)."""
        query = (sa.select(ROWS.c.data).where(ROWS.c.tbl == table)
                 .order_by(ROWS.c.row_key))  # the key's own order (its primary key)
        return table_frame(table, [data for (data,) in self._fetch(query, conn)])

    def field(self, table: str, column: str, conn: sa.Connection | None = None) -> pd.Series:
        """One column of a table, by key (see :func:`table_field`)."""
        if conn is None:
            with self.engine.connect() as own:
                return table_field(own, table, column)
        return table_field(conn, table, column)

    def need_states(self, conn: sa.Connection | None = None,
                    states: Iterable[str] | None = None, as_of: str | None = None,
                    columns: Iterable[str] | None = None) -> pd.DataFrame:
        """The needs' states, each need not closed with its ``age``: the weeks it has waited
        from its week raised to ``as_of`` (by default the register's :meth:`week`); a closed
        need's age is the weeks it waited when it closed. ``columns``: only these besides
        the need's id, state, week raised and age (a city's million rows)."""
        if conn is None:
            with self.engine.connect() as own:
                return self.need_states(own, states, as_of, columns)
        n = NEED_STATES.c
        query = sa.select(*NEED_COLUMNS) if columns is None else sa.select(
            n.need_id, n.state, n.week_raised, n.age, *(n[c] for c in columns))
        if states is not None:
            query = query.where(NEED_STATES.c.state.in_(list(states)))
        frame = fetch_frame(conn, query)
        waiting = frame["state"].to_numpy(object) != "closed"
        if waiting.any():
            ages = weeks_waited(frame["week_raised"].to_numpy(object), as_of or self.week(conn))
            frame["age"] = np.where(waiting, ages, frame["age"].to_numpy(int))
        return frame

    def week(self, conn: sa.Connection | None = None) -> str | None:
        """The week the register stands at: the latest of the weeks still open and of the
        weeks after those closed (``None`` before any week). Waiting needs are aged to it."""
        rows = self._fetch(sa.select(WEEKS.c.week, WEEKS.c.state).distinct(), conn)
        if not rows:
            return None
        # Never backwards: a street's week still open does not undo another's later close.
        return max(week if state == "open" else next_week(week) for week, state in rows)

    def _fetch(self, query: sa.Select, conn: sa.Connection | None) -> list[tuple]:
        if conn is None:
            with self.engine.connect() as own:
                return fetch_rows(own, query)
        return fetch_rows(conn, query)

    def is_empty(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(ROWS.c.row_key).limit(1)).first() is None

    def tables(self, conn: sa.Connection | None = None, states: pd.DataFrame | None = None
               ) -> dict[str, pd.DataFrame]:
        """The current state as a scenario's text tables: open needs with what is still owed
        (``states``: the need states of needs not closed, when the caller has read them)."""
        tables = self.kept_tables(conn)
        tables["needs"] = self.open_needs(conn, states, tables["needs"], tables["services"])
        return tables

    def kept_tables(self, conn: sa.Connection | None = None) -> dict[str, pd.DataFrame]:
        """Every table the register keeps, as text, the history as a scenario shows it
        (:func:`history_as_shown`: a visit by a volunteer who has left names nobody); the
        needs table holds every need, closed ones too."""
        tables = {name: self.table(name, conn) for name in REGISTER_TABLES}
        tables["history"] = history_as_shown(tables["history"], tables["volunteers"])
        return tables

    def open_needs(self, conn: sa.Connection | None = None, states: pd.DataFrame | None = None,
                   needs: pd.DataFrame | None = None, services: pd.DataFrame | None = None
                   ) -> pd.DataFrame:
        """The needs table of :meth:`tables` (open needs with what is still owed), reading
        only what the caller has not read (the needs, their states, the services)."""
        if states is None:
            states = self.need_states(conn, OPEN_STATES + ("allocated",))
        needs = self.table("needs", conn) if needs is None else needs
        services = self.table("services", conn) if services is None else services
        return open_needs(needs, states, services)

    def scenario(self, conn: sa.Connection | None = None) -> Scenario:
        """The current state, validated, as a Scenario."""
        return Scenario.from_tables(self.tables(conn), self.policy, path="register")

    def export(self, out: str | Path, fmt: str = "csv") -> Path:
        """Write the current state as a scenario (every existing command runs on it)."""
        tables = self.tables()
        Scenario.from_tables(tables, self.policy)  # what is written must load again
        return write_tables(tables, out, fmt)

    def colour_history(self, household_id: str) -> pd.DataFrame:
        """A household's assessments, oldest first: when, who, how found, score and colours."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(ASSESSMENTS).where(
                ASSESSMENTS.c.household_id == household_id)
                .order_by(ASSESSMENTS.c.version)).mappings().all()
        return pd.DataFrame(rows, columns=[c.name for c in ASSESSMENTS.columns])

    def colours(self, conn: sa.Connection | None = None) -> pd.DataFrame:
        """Per household: the colours of its last assessments (see :func:`household_colours`)."""
        if conn is None:
            with self.engine.connect() as own:
                return household_colours(own)
        return household_colours(conn)

    def events(self, subject: str | None = None, kind: str | None = None) -> pd.DataFrame:
        """The audit trail, oldest first (optionally for one subject or kind)."""
        query = sa.select(EVENTS).order_by(EVENTS.c.event_id)
        if subject is not None:
            query = query.where(EVENTS.c.subject == subject)
        if kind is not None:
            query = query.where(EVENTS.c.kind == kind)
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all(),
                                columns=[c.name for c in EVENTS.columns])

    # -- import ------------------------------------------------------------------------------

    def import_scenario(self, scenario: Scenario, *, dry_run: bool = False,
                        on: date | None = None) -> ImportReport:
        """Upsert a validated scenario by id, in one transaction, with an event per change.

        Rows of supply tables missing from the scenario are removed; households, needs and
        history are only added or changed. New or changed households get a new assessment
        (discovered by ``import``); new needs open; a changed need keeps what was delivered.
        The resulting register is validated as a whole before anything is written.

        Raises
        ------
        ValidationError
            When the register after the import would not be a valid scenario (every problem).
        """
        on = on or date.today()
        with self.engine.begin() as conn:
            changes, new_rows, frames = {}, {}, {}
            kept = {}
            for name in REGISTER_TABLES:
                frame = canonical(name, scenario.tables[name], arrow=True)
                old = self.rows(name, conn)
                if name == "history":  # (the volunteers, synced, are the file's: read before)
                    known = visits_shown_already(frame, old, frames["volunteers"])
                    if known.any():
                        frame = frame[~known].reset_index(drop=True)
                keys = row_keys(name, frame).tolist()  # (not Arrow's scalars one by one)
                c, incoming, absent = row_changes(frame, keys, old)
                held: list[str] = []  # rows the file lists that the register keeps as it has
                if name == "households" and c.changed:
                    c.changed, held = self._households_the_file_changed(conn, c.changed,
                                                                        incoming)
                if name == "needs" and c.changed:
                    c.changed = self._needs_beyond_export(conn, c.changed, old, incoming,
                                                          frames["services"])
                if name in SYNCED_TABLES:
                    c.removed = sorted(absent)
                else:
                    kept[name] = absent + held
                changes[name], new_rows[name], frames[name] = c, (old, incoming), frame
            # Rows the register keeps that the file does not list, or lists as it once held
            # them: the register afterwards is the file with those, and must be valid as a
            # whole. Without any, it is the file, which was validated already. Volunteers the
            # file drops while a week still open has tasks for them are problems too, listed
            # with the others.
            problems = open_tasks_of(conn, changes["volunteers"].removed)
            if any(kept.values()):
                try:
                    self._check_merged(conn, {n: f.astype(object) for n, f in frames.items()},
                                       {n: {k: new_rows[n][0][k] for k in keys}
                                        for n, keys in kept.items()})
                except ValidationError as err:
                    problems += err.problems
            if problems:
                raise ValidationError(problems)
            report = ImportReport(changes=changes, applied=not dry_run,
                                  skipped=tuple(n for n in scenario.tables
                                                if n not in REGISTER_TABLES
                                                and len(scenario.tables[n])))
            report.assessments = len(changes["households"].added) + len(
                changes["households"].changed)
            if dry_run:
                return report
            events = Events(conn, self.actor)
            # (A first import fills these from empty: their indexes are made after it.)
            with indexes_made_after(conn, (ROWS, EVENTS, ASSESSMENTS, NEED_STATES, WATCH)):
                for name in REGISTER_TABLES:
                    self._apply_rows(conn, events, name, *new_rows[name], changes[name], on)
                self._assess_imported(conn, events, scenario, changes["households"], on)
                self._open_imported_needs(conn, events, scenario, changes["needs"],
                                          new_rows["needs"])
                events.flush()
        return report

    def _households_the_file_changed(self, conn, changed: list[str],
                                     incoming: Mapping[str, str]
                                     ) -> tuple[list[str], list[str]]:
        """Of the households whose row in the file differs from the register's: those the
        file changed, and those it gives as the register held them once (kept as they are).

        A visit (or an assessment) changes a household's row after the import that wrote it:
        the coordinator's file, or an earlier export, imported again unedited still holds the
        row as it was, and would take the household back to what the visit found no longer
        true. So a row the file gives exactly as one the register held before (its events'
        texts) is old news, left as the register has it; a row edited in the file since is
        the file's (docs/cycle.md, "Imports")."""
        e = EVENTS.c
        held: set[str] = set()
        for chunk in _chunks(changed):
            for subject, before, after in conn.execute(
                    sa.select(e.subject, e.before, e.after)
                    .where(e.subject.in_([f"households:{k}" for k in chunk]),
                           e.kind.in_(("households.add", "households.change")))):
                key = subject.split(":", 1)[1]
                if incoming[key] in (before, after):
                    held.add(key)
        return [k for k in changed if k not in held], [k for k in changed if k in held]

    def _needs_beyond_export(self, conn, changed: list[str], old: Mapping[str, str],
                             incoming: dict[str, str], services: pd.DataFrame) -> list[str]:
        """The needs of ``changed`` still changed once a quantity equal to what the need owes
        is read as the register's export writes it (``incoming`` is rewritten so).

        An exported need's ``quantity`` is what is still owed (the register's week is an
        ordinary scenario), not the need's own quantity: read back it would count as a change
        of quantity, and what was delivered would be taken off a second time. So a quantity
        equal to what is owed keeps the need's own quantity, whatever else the row changes
        (docs/cycle.md, "Export and import back")."""
        owed = self.open_needs(conn, self.need_states(conn, OPEN_STATES + ("allocated",)),
                               table_frame("needs", [old[k] for k in changed]), services)
        owed_quantity = dict(zip(owed["need_id"], owed["quantity"].astype(float), strict=True))
        still = []
        for key in changed:
            if key in owed_quantity:
                stored = json.loads(old[key]).get("quantity", "")
                given = json.loads(incoming[key]).get("quantity", "")
                try:
                    exported = abs(float(given) - owed_quantity[key]) < 1e-9
                except ValueError:
                    exported = False
                if exported:  # (numbers' text needs no escaping: replaced as it is written)
                    incoming[key] = incoming[key].replace(f'"quantity":"{given}"',
                                                          f'"quantity":"{stored}"', 1)
            if incoming[key] != old[key]:
                still.append(key)
        return still

    def _check_merged(self, conn, frames: dict[str, pd.DataFrame],
                      kept: dict[str, dict[str, str]]) -> None:
        """Validate the file's tables plus the rows the register keeps beyond them."""
        tables = dict(frames)
        for name, rows in kept.items():
            if rows:
                listed = frames[name][~row_keys(name, frames[name]).isin(list(rows)).to_numpy()]
                more = rows_frame(list(rows.values()))
                if name == "history":  # (as the register will show them: the file's are valid)
                    more = history_as_shown(more, frames["volunteers"])
                tables[name] = pd.concat([listed, more], ignore_index=True).fillna("")
        owed = self.need_states(conn, OPEN_STATES + ("allocated",))
        fresh = frames["needs"]
        fresh = fresh[~member_mask(fresh["need_id"], kept.get("needs", {}))]
        states = pd.concat([owed[~member_mask(owed["need_id"], fresh["need_id"])],
                            pd.DataFrame({"need_id": fresh["need_id"],
                                          "remaining": fresh["quantity"].astype(float)})],
                           ignore_index=True)
        tables["needs"] = open_needs(tables["needs"], states, tables["services"])
        Scenario.from_tables(tables, self.policy)  # raises ValidationError with every problem

    def _apply_rows(self, conn, events: Events, name: str, old: dict, incoming: dict,
                    c: TableChanges, on: date) -> None:
        stamp, day = events.at, on.isoformat()
        added = [incoming[k] for k in c.added]
        bulk_insert(conn, ROWS, {"tbl": name, "row_key": c.added, "data": added,
                                 "effective_from": day, "updated_at": stamp})
        bulk_update(conn, ROWS, ("tbl", "row_key"), [
            {"tbl": name, "row_key": k, "data": incoming[k], "effective_from": day,
             "updated_at": stamp} for k in c.changed])
        if c.removed:
            for chunk in _chunks(c.removed):
                conn.execute(ROWS.delete().where(ROWS.c.tbl == name, ROWS.c.row_key.in_(chunk)))
        if old:
            events.add_many(f"{name}.add", [f"{name}:{k}" for k in c.added], None, added)
        elif c.added:  # every row of the table is new: its events copied from the rows
            events.add_table(name, c.added, added)
        events.add_many(f"{name}.change", [f"{name}:{k}" for k in c.changed],
                        [old[k] for k in c.changed], [incoming[k] for k in c.changed])
        events.add_many(f"{name}.remove", [f"{name}:{k}" for k in c.removed],
                        [old[k] for k in c.removed], None)

    def _assess_imported(self, conn, events: Events, scenario: Scenario, c: TableChanges,
                         on: date) -> None:
        ids = c.added + c.changed
        if not ids:
            return
        typed = scenario.tables["households"].set_index("household_id").loc[ids].reset_index()
        self.write_assessments(conn, events, typed, on, assessor=self.actor.name,
                                discovered_by="import")

    def write_assessments(self, conn, events: Events, typed: pd.DataFrame,
                          on: date | Mapping[str, date], *, assessor: str,
                          discovered_by: str) -> dict[str, int]:
        """A new assessment version for each household row of ``typed`` (contract columns),
        made ``on`` a date (or a date per household); returns each one's assessment id."""
        final = colour(typed, self.policy)
        by_policy = colour(typed.assign(tier=""), self.policy)
        ids = typed["household_id"].tolist()
        versions = dict(conn.execute(
            sa.select(ASSESSMENTS.c.household_id, sa.func.max(ASSESSMENTS.c.version))
            .where(ASSESSMENTS.c.household_id.in_(ids) if len(ids) < 30_000 else sa.true())
            .group_by(ASSESSMENTS.c.household_id)).all())
        indicators = row_json(typed[list(vocab.DEPRIVATION_COLUMNS)].astype(int))
        days = ([on[h].isoformat() for h in ids] if isinstance(on, Mapping)
                else [on.isoformat()] * len(ids))
        # A list per column, no dict per assessment (a city's import makes 300,000).
        columns = {
            "household_id": ids, "version": [int(versions.get(h, 0)) + 1 for h in ids],
            "assessed_on": days, "assessor": [assessor] * len(ids),
            "discovered_by": [discovered_by] * len(ids), "indicators": indicators,
            "categories": [str(c or "") for c in typed["categories"].fillna("").to_numpy(object)],
            "score": final["score"].to_numpy(float).tolist(),
            "tier_policy": [str(t) for t in by_policy["tier"].to_numpy(object)],
            "tier_override": [str(t or "") for t in typed["tier"].fillna("").to_numpy(object)],
            "tier": [str(t) for t in final["tier"].to_numpy(object)], "created_at": events.at}
        bulk_insert(conn, ASSESSMENTS, columns)
        shown = ["version", "assessed_on", "assessor", "discovered_by", "score", "tier_policy",
                 "tier_override", "tier"]
        events.add_many("assessment.add", [f"households:{h}" for h in ids], None,
                        row_json(pd.DataFrame({c: columns[c] for c in shown}, columns=shown)))
        made = sa.select(ASSESSMENTS.c.household_id, ASSESSMENTS.c.assessment_id).where(
            ASSESSMENTS.c.created_at == events.at)
        if len(ids) < 30_000:
            made = made.where(ASSESSMENTS.c.household_id.in_(ids))
        return dict(fetch_rows(conn, made))

    def _open_imported_needs(self, conn, events: Events, scenario: Scenario, c: TableChanges,
                             rows: tuple[dict, dict]) -> None:
        needs = scenario.tables["needs"].set_index("need_id")
        stamp = events.at
        if c.added:
            fresh = needs.loc[c.added].reset_index()
            events.flush()  # (the households this import adds or assesses watched first)
            bulk_insert(conn, NEED_STATES, need_rows(conn, fresh, stamp))
        if not c.changed:
            return
        # The changed needs' states read and written in bulk (a city's 1 % is 5,000 needs).
        before = {r["need_id"]: dict(r) for chunk in _chunks(sorted(c.changed))
                  for r in conn.execute(sa.select(*NEED_COLUMNS).where(
                      NEED_STATES.c.need_id.in_(chunk))).mappings()}
        changed = needs.loc[[n for n in c.changed if n in before]]
        current = self.week(conn)
        afters = []
        written = rows[1]  # (an exported quantity read as the need's own: its row's text)
        for nid, household, quantity, urgency, service, week in zip(
                changed.index, changed["household_id"].to_numpy(object),
                [float(json.loads(written[n])["quantity"]) for n in changed.index],
                changed["urgency"].to_numpy(int), changed["service_id"].to_numpy(object),
                changed["week"].to_numpy(object), strict=True):
            was = before[nid]
            delivered = float(was["quantity"]) - float(was["remaining"])
            remaining = max(0.0, float(quantity) - delivered)
            # (week_raised follows the row's week: a waiting need's age is counted from it.)
            after = {"household_id": household, "quantity": float(quantity),
                     "urgency": int(urgency), "service_id": service, "week_raised": week,
                     "remaining": remaining, "state": was["state"],
                     "close_reason": was["close_reason"], "age": int(was["age"])}
            # A quantity changed past what was delivered moves the need across "owed": one
            # delivered in full and raised opens again; one waiting and cut to what was
            # delivered closes as delivered. (A need in this week's tasks is settled by the
            # close; one withdrawn or expired stays closed.)
            if was["state"] == "closed" and was["close_reason"] == "delivered" \
                    and remaining > EPS:  # (owed again from now: it waits from this week)
                after.update(state="open", close_reason="", age=0,
                             week_raised=max(week, current or week))
            elif was["state"] in OPEN_STATES and remaining <= EPS:
                after.update(state="closed", close_reason="delivered", remaining=0.0)
            afters.append(after)
        # A need closed here waited from its week raised to the register's week.
        shut = [a for nid, a in zip(changed.index, afters, strict=True)
                if a["state"] == "closed" and before[nid]["state"] in OPEN_STATES]
        for after, age in zip(shut, weeks_waited([a["week_raised"] for a in shut], current),
                              strict=True):
            after["age"] = int(age)
        bulk_update(conn, NEED_STATES, "need_id", [
            {**after, "updated_at": stamp, "need_id": nid}
            for nid, after in zip(changed.index, afters, strict=True)])
        # A need moved to another household carries that household's station and colour
        # (the households this import adds or assesses watched first).
        events.flush()
        copy_to_needs(conn, sorted({after["household_id"] for nid, after in zip(
            changed.index, afters, strict=True)
            if after["household_id"] != before[nid]["household_id"]}))
        events.add_many("need_state.change", [f"needs:{n}" for n in changed.index],
                        [_plain(before[n]) for n in changed.index], afters)

    # -- single records ----------------------------------------------------------------------

    def upsert_household(self, row: Mapping[str, object], *, on: date | None = None,
                         discovered_by: str = "grid_worker") -> int:
        """Add or update one household (contract columns) and assess it; returns the version."""
        return self.assess(row, on=on, discovered_by=discovered_by)

    def assess(self, row: Mapping[str, object], *, on: date | None = None,
               discovered_by: str = "visit", assessor: str | None = None) -> int:
        """A new assessment of one household: the ``d_*`` indicators, categories and override
        given (the rest kept from the register, or all of them for a new household); the row is
        re-coloured by the policy. Returns the new version.

        Raises
        ------
        ValidationError
            When the household row would not be valid (every problem).
        RegisterError
            For an unknown discovery channel.
        """
        if discovered_by not in vocab.DISCOVERY:
            raise RegisterError(f"未知的发现方式 {discovered_by!r} / unknown discovery channel "
                                f"{discovered_by!r}: use one of {', '.join(vocab.DISCOVERY)}")
        on = on or date.today()
        hid = str(row.get("household_id", "")).strip()
        with self.engine.begin() as conn:
            current = self.rows("households", conn, [hid])
            base = json.loads(current[hid]) if hid in current else {}
            merged = {**base, **{k: "" if v is None else str(v) for k, v in row.items()}}
            typed = self.valid_rows(conn, "households", {hid: merged})
            events = Events(conn, self.actor)
            data = row_json(canonical("households", pd.DataFrame([merged])))[0]
            self.put_row(conn, events, "households", hid, current.get(hid), data, on)
            self.write_assessments(conn, events, typed, on,
                                   assessor=assessor or self.actor.name,
                                   discovered_by=discovered_by)
            events.flush()
            return int(conn.execute(sa.select(sa.func.max(ASSESSMENTS.c.version)).where(
                ASSESSMENTS.c.household_id == hid)).scalar())

    def add_need(self, row: Mapping[str, object], *, on: date | None = None) -> str:
        """Raise one need (a one-click request, a visit's finding); returns its id.

        Raises
        ------
        ValidationError
            When the need would not be valid against the register (every problem).
        """
        on = on or date.today()
        with self.engine.begin() as conn:
            nid = self.add_needs(conn, Events(conn, self.actor), [row], on)[0]
        return nid

    def add_needs(self, conn: sa.Connection, events: Events, rows: list[Mapping[str, object]],
                  on: date) -> list[str]:
        """Raise needs inside the caller's transaction (ids made when not given)."""
        if not rows:
            return []
        current = self.keys("needs", conn)
        fresh: dict[str, dict] = {}
        for i, row in enumerate(rows):
            text = {k: "" if v is None else str(v) for k, v in row.items()}
            # The id from the household and week as validation reads them (stripped).
            nid = text.get("need_id", "").strip() \
                or f"N{text.get('week', '').strip().replace('-', '')}" \
                f"{text.get('household_id', '').strip()}{len(current) + i:06d}"
            if nid in current or nid in fresh:
                raise RegisterError(f"需求 {nid} 已存在 / need {nid} already exists")
            text["need_id"] = nid
            text.setdefault("urgency", "1")
            fresh[nid] = text
        typed = self.valid_rows(conn, "needs", fresh)
        stamp = events.at
        self.add_rows(conn, events, "needs", list(fresh),
                      row_json(canonical("needs", pd.DataFrame(list(fresh.values())))), on)
        events.flush()  # (households added in this transaction watched first)
        bulk_insert(conn, NEED_STATES, need_rows(conn, typed, stamp))
        return list(fresh)

    def withdraw_need(self, need_id: str) -> Withdrawal:
        """Close an open need as withdrawn (the household no longer needs it), and recall its
        tasks not yet answered in the weeks still open: they become ``withdrawn`` (off the
        provider's list, their money no longer committed, never counted as failed). A task of
        the need delivered in part this week stays delivered (its money spent) and the rest is
        withdrawn; a need delivered in full this week is refused: it closes as delivered."""
        # (The weeks' tasks and the cycle's lock are the cycle's, which imports the register.)
        from wulian.planning.cycle import TASKS, UNANSWERED, lock

        with self.engine.begin() as conn:
            lock(conn)  # an answer to one of its tasks and the recall queue, never cross
            before = conn.execute(sa.select(*NEED_COLUMNS).where(
                NEED_STATES.c.need_id == need_id)).mappings().first()
            if before is None:
                raise RegisterError(f"没有需求 {need_id} / no need {need_id}")
            if before["state"] == "closed":
                raise RegisterError(f"需求 {need_id} 已关闭 / need {need_id} is already closed")
            t = TASKS.c
            live = conn.execute(sa.select(t.task_id, t.status, t.units_delivered).join_from(
                TASKS, WEEKS, sa.and_(WEEKS.c.week == t.week, WEEKS.c.centre == t.centre))
                .where(t.need_id == need_id, WEEKS.c.state == "open")
                .order_by(t.task_id)).all()
            delivered = [r for r in live if r.status == "delivered"]
            if delivered and sum(r.units_delivered for r in delivered) \
                    >= float(before["remaining"]) - EPS:
                tasks = ", ".join(r.task_id for r in delivered)
                raise RegisterError(
                    f"需求 {need_id} 本周已由任务 {tasks} 全部完成,不能撤回;本周结束时它将以"
                    f"已完成关闭 / need {need_id} was delivered in full this week (task "
                    f"{tasks}): it cannot be withdrawn; it closes as delivered when the week "
                    f"closes")
            unanswered = [r for r in live if r.status in UNANSWERED]
            recalled = [r.task_id for r in unanswered]
            age = int(weeks_waited([before["week_raised"]], self.week(conn))[0])
            events = Events(conn, self.actor)
            conn.execute(NEED_STATES.update().where(NEED_STATES.c.need_id == need_id).values(
                state="closed", close_reason="withdrawn", age=age, updated_at=events.at))
            events.add("need_state.close", f"needs:{need_id}", _plain(before),
                       {"state": "closed", "close_reason": "withdrawn", "age": age})
            if recalled:
                conn.execute(TASKS.update().where(t.task_id.in_(recalled)).values(
                    status="withdrawn", updated_at=events.at))
                events.add_many("task.withdraw", [f"tasks:{tid}" for tid in recalled],
                                [{"status": r.status} for r in unanswered],
                                [{"status": "withdrawn", "need_id": need_id}] * len(recalled))
            events.flush()
        return Withdrawal(need_id, recalled, [r.task_id for r in delivered])

    def valid_rows(self, conn, table: str, rows: dict[str, dict]) -> pd.DataFrame:
        """The rows typed, validated with the register's tables they refer to.

        The rows are validated as a table of their own beside the rows their columns refer
        to (and the rows those refer to in turn: a household's station, its street, up to the
        city), not with the whole register: a one-click request on a city's register reads
        its household, service and centres, not 250,000 households. What the other rows say
        of these holds still, since the rows replace rows with the same keys or add rows.
        """
        frame = pd.DataFrame(list(rows.values()))
        # Every column of the table, as in the register (a cell not given is an empty one).
        columns = dict.fromkeys([*TABLES[table].column_names, *frame.columns])
        frame = frame.reindex(columns=list(columns)).fillna("")
        tables = self._referred_rows(conn, table, frame)
        tables[table] = frame.fillna("")
        typed, problems = validate_tables({n: as_text(f) for n, f in tables.items()})
        if problems:
            raise ValidationError(problems)
        return typed[table].reset_index(drop=True)

    def _referred_rows(self, conn, table: str, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """The register's rows that ``frame`` (rows of ``table``) refers to, and the rows
        those refer to in turn, read by key, as text tables (every referred table, empty when
        nothing in it is referred to)."""
        found: dict[str, dict[str, str]] = {name: {} for name in referred_tables(table)}
        todo = [(table, frame)]
        while todo:
            name, rows = todo.pop()
            for col in TABLES[name].columns:
                target, _, key = (col.ref or "").partition(".")
                if not target or target == table or col.name not in rows.columns:
                    continue
                values = rows[col.name].astype(str)  # as validation reads them: stripped
                wanted = set(split_lists(values) if col.dtype == "list"
                             else values.str.strip()) - {""} - set(found[target])
                if wanted:
                    # (by key when the reference names the table's key, as every one does)
                    got = self.rows(target, conn,
                                    wanted if key == TABLES[target].key else None)
                    found[target].update(got)
                    todo.append((target, rows_frame(list(got.values()))))
        return {name: table_frame(name, list(rows.values())) for name, rows in found.items()}

    def keys(self, table: str, conn: sa.Connection, among: Iterable[str] | None = None
             ) -> set[str]:
        """The keys of a table's rows (without reading the rows); ``among``: only which of
        these are (looked up by key: a week's visits among a city's 600,000)."""
        if among is None:
            return {k for (k,) in fetch_rows(conn, sa.select(ROWS.c.row_key).where(
                ROWS.c.tbl == table))}
        return {k for chunk in _chunks(sorted(set(among))) for (k,) in fetch_rows(
            conn, sa.select(ROWS.c.row_key).where(ROWS.c.tbl == table,
                                                  ROWS.c.row_key.in_(chunk)))}

    def add_rows(self, conn, events: Events, table: str, keys: list[str], data: list[str],
                 on: date) -> None:
        """New rows of a table (keys not yet in it), each with its event."""
        bulk_insert(conn, ROWS, [{"tbl": table, "row_key": k, "data": d,
                                  "effective_from": on.isoformat(), "updated_at": events.at}
                                 for k, d in zip(keys, data, strict=True)])
        events.add_many(f"{table}.add", [f"{table}:{k}" for k in keys], None, data)

    def change_rows(self, conn, events: Events, table: str, old: Mapping[str, str],
                    new: Mapping[str, str], on: date | Mapping[str, date]) -> None:
        """Rows of a table changed (those whose text differs), each with its event."""
        keys = [k for k in new if old[k] != new[k]]
        if not keys:
            return
        days = {k: (on[k] if isinstance(on, Mapping) else on).isoformat() for k in keys}
        conn.execute(ROWS.update().where(ROWS.c.tbl == table,
                                         ROWS.c.row_key == sa.bindparam("key")).values(
            data=sa.bindparam("data"), effective_from=sa.bindparam("day"),
            updated_at=events.at), [{"key": k, "data": new[k], "day": days[k]} for k in keys])
        events.add_many(f"{table}.change", [f"{table}:{k}" for k in keys],
                        [old[k] for k in keys], [new[k] for k in keys])

    def put_row(self, conn, events: Events, table: str, key: str, old: str | None, data: str,
                 on: date) -> None:
        if old == data:
            return
        if old is None:
            conn.execute(ROWS.insert().values(tbl=table, row_key=key, data=data,
                                              effective_from=on.isoformat(),
                                              updated_at=events.at))
            events.add(f"{table}.add", f"{table}:{key}", None, data)
        else:
            conn.execute(ROWS.update().where(ROWS.c.tbl == table, ROWS.c.row_key == key)
                         .values(data=data, effective_from=on.isoformat(), updated_at=events.at))
            events.add(f"{table}.change", f"{table}:{key}", old, data)


def open_tasks_of(conn: sa.Connection, volunteers: list[str]) -> list[Problem]:
    """A problem for each of ``volunteers`` (removed by an import) who has tasks in a week
    still open: the week's answers and its close would make history of their visits, and its
    published workbooks name them (a task recalled with its withdrawn need is nobody's any
    more: not counted). Other rows an open week's tasks name are not needed again:
    the tasks hold copies of their provider, offer, fund, street, station and colour, and a
    service or centre an owed need or household names is kept by the import's checks."""
    from wulian.planning.cycle import TASKS  # (cycle builds on this module)

    t = TASKS.c
    found: dict[str, dict[str, int]] = {}
    for chunk in _chunks(sorted(volunteers)):
        for who, week, count in fetch_rows(conn, sa.select(t.volunteer_id, t.week,
                                                            sa.func.count())
                                           .join_from(TASKS, WEEKS, sa.and_(
                                               WEEKS.c.week == t.week,
                                               WEEKS.c.centre == t.centre))
                                           .where(WEEKS.c.state == "open",
                                                  t.status != "withdrawn",
                                                  t.volunteer_id.in_(chunk))
                                           .group_by(t.volunteer_id, t.week)):
            found.setdefault(who, {})[week] = int(count)
    return [Problem("volunteers", "open_tasks_left", None, "volunteer_id", who,
                    {"tasks": str(sum(weeks.values())), "weeks": ", ".join(sorted(weeks))})
            for who, weeks in sorted(found.items())]


def referred_tables(table: str) -> list[str]:
    """The tables a table's columns refer to, and theirs in turn (not the table itself)."""
    found: list[str] = []
    todo = [table]
    while todo:
        for col in TABLES[todo.pop()].columns:
            target = col.ref.split(".")[0] if col.ref else ""
            if target and target != table and target not in found:
                found.append(target)
                todo.append(target)
    return found


def open_needs(needs: pd.DataFrame, states: pd.DataFrame, services: pd.DataFrame,
               at: np.ndarray | None = None) -> pd.DataFrame:
    """The needs rows still owed, each with ``quantity`` set to what is still owed, rounded up
    to what its unit counts in (whole hours, visits and items; cents). ``at``: each need's
    row in ``states`` (:func:`need_positions`) when the caller has found them."""
    if not len(needs):
        return needs
    if at is None:
        at = need_positions(states, needs["need_id"])
    keep = at >= 0
    # (Rows taken only when some are left out: a city's half million copied cost 0.1 s.)
    out = needs if keep.all() else needs[keep]
    remaining = states["remaining"].to_numpy(float)[at[keep]]
    unit = out["service_id"].map(services.set_index("service_id")["unit"]).to_numpy()
    step = np.where(np.isin(unit, list(vocab.WHOLE_UNITS)), 1.0, 0.01)
    remaining = np.ceil(np.round(remaining / step, 6)) * step
    # Python text, as the register's other cells, each distinct amount written once.
    amounts, which = np.unique(np.round(remaining, 2), return_inverse=True)
    out = out.assign(quantity=pd.Series(amounts.astype(str).astype(object)[which],
                                        index=out.index, dtype=object))
    owed = remaining > 1e-9
    return (out if owed.all() else out[owed]).reset_index(drop=True)


def need_positions(states: pd.DataFrame, need_ids: pd.Series) -> np.ndarray:
    """Each need's row in ``states`` (the need states, one row a need), -1 where it has none.
    The ids are looked up as Python text: a city's half million looked up by an index of
    Arrow's text (as the states are read) took 0.57 s, by one of Python text 0.22 s."""
    return pd.Index(states["need_id"].to_numpy(object), dtype=object).get_indexer(
        need_ids.to_numpy(object))


def _plain(row) -> dict:
    return {k: v for k, v in dict(row).items() if k != "updated_at"}


def _chunks(items: list, size: int = 5000):
    for i in range(0, len(items), size):
        yield items[i:i + size]
