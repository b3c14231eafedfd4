"""The weekly cycle (issue 15): the register, weeks opened, answered and closed, the fund
ledger and the audit trail — checked from the register alone, through the CLI and the models,
on SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import hashlib
import importlib
import json
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import date
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from wulian.api.cli import main
from wulian.contract.problems import ValidationError
from wulian.demand.policy import Policy
from wulian.optimizer.visits import MatchParams
from wulian.planning import cycle, db, taskbook
from wulian.planning.db import (
    MAX_PARAMETERS,
    bulk_insert,
    bulk_update,
    fetch_rows,
    head,
    revision,
)
from wulian.planning.generate import generate_scenario
from wulian.planning.match import monitoring_due
from wulian.planning.register import (
    ASSESSMENTS,
    EVENTS,
    NEED_STATES,
    ROWS,
    SYNCED_TABLES,
    WATCH,
    WEEKS,
    Actor,
    Events,
    Register,
    RegisterError,
    canonical,
    row_changes,
    row_json,
    row_json_sql,
    row_keys,
    watch_from_scratch,
)
from wulian.planning.scenario import Scenario, load_scenario
from wulian.planning.simulate import simulate
from wulian.planning.store import RunStore

DATA = Path(__file__).parent / "data"
DEMO = Path(__file__).parent.parent / "data" / "demo"
W1, W2, W3 = "2026-W49", "2026-W50", "2026-W51"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """An empty store on each backend (PostgreSQL: a fresh schema in the session's database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cycle.sqlite'}"
    url = request.getfixturevalue("pg_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def tiny() -> Scenario:
    return Scenario.from_tables(generate_scenario("tiny", 0))


_OPEN: list[Register] = []


@pytest.fixture(autouse=True)
def _close_stores():
    """Every store a test opened is closed after it (PostgreSQL connections included)."""
    yield
    while _OPEN:
        _OPEN.pop().engine.dispose()


def _register(url: str, via: str = "cli") -> Register:
    register = Register(RunStore(url), Actor("tester", via))
    _OPEN.append(register)
    return register


def _cli(url: str, *argv: str) -> int:
    return main([*argv, "--store", url])


# -- the schema -----------------------------------------------------------------------------


def test_the_newest_revision_read_from_the_files_names_is_alembics():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location",
                           str(resources.files("wulian.planning").joinpath("migrations")))
    assert head() == ScriptDirectory.from_config(config).get_current_head() != ""


def test_a_store_made_before_versions_is_upgraded_without_losing_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as con:
        con.executescript((DATA / "store_v0.sql").read_text(encoding="utf-8"))
    url = f"sqlite:///{path}"
    assert main(["db", "upgrade", "--store", url]) == 0
    engine = sa.create_engine(url)
    assert revision(engine) == head()
    _OPEN.append(type("Held", (), {"engine": engine})())
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
                  for t in ("runs", "run_tables", "scenarios", "jobs", "api_tokens", "tasks",
                            "register_rows", "events")}
        tokens = conn.execute(sa.text("SELECT role, centre, provider_id FROM api_tokens "
                                      "ORDER BY token_id")).all()
    assert counts == {"runs": 1, "run_tables": 1, "scenarios": 1, "jobs": 1, "api_tokens": 2,
                      "tasks": 0, "register_rows": 0, "events": 0}
    assert [tuple(t) for t in tokens] == [("planner", "", ""), ("coordinator", "D01", "")]
    stored = _register(url).store.load(1)  # the old run reads back whole
    assert list(stored.tables["allocations"]["units"]) == [1.0, 2.0]
    assert main(["db", "upgrade", "--store", url]) == 0  # a second upgrade changes nothing


# -- the register ---------------------------------------------------------------------------


def test_import_round_trips_and_reports_exactly_the_changes(tmp_path, tiny):
    register = _register(f"sqlite:///{tmp_path / 's.sqlite'}")
    first = register.import_scenario(tiny)
    assert first.frame().set_index("table")["added"].to_dict() == {
        name: len(tiny.tables[name]) for name in first.changes}
    assert register.scenario().digest == tiny.digest  # the register holds the scenario exactly
    assert register.import_scenario(tiny).total == 0

    tables = {k: v.copy() for k, v in tiny.tables.items()}
    tables["offers"].loc[0, "capacity"] += 5
    tables["households"].loc[3, "d_health"] = 1 - tables["households"].loc[3, "d_health"]
    gone = tables["offers"]["offer_id"].iat[-1]  # an offer the file no longer lists
    tables["offers"] = tables["offers"][tables["offers"]["offer_id"] != gone]
    changed = Scenario.from_tables(tables)
    dry = register.import_scenario(changed, dry_run=True)
    assert not dry.applied and register.scenario().digest == tiny.digest
    report = register.import_scenario(changed)
    got = {k: (c.added, c.changed, c.removed) for k, c in report.changes.items() if c.total}
    assert got == {"offers": ([], [tables["offers"].loc[0, "offer_id"]], [gone]),
                   "households": ([], [tables["households"].loc[3, "household_id"]], [])}
    hid = tables["households"].loc[3, "household_id"]
    assert list(register.colour_history(hid)["version"]) == [1, 2]
    removed = register.events(kind="offers.remove")
    assert len(removed) == 1 and json.loads(removed["before"].iat[0])["offer_id"] == gone
    assert register.scenario().digest == changed.digest  # the changed rows written in full

    # Two needs changed at once: their states follow (what is owed is the new quantity, as
    # nothing was delivered), each with its event.
    needs = tables["needs"]
    needs.loc[[0, 5], "quantity"] = needs.loc[[0, 5], "quantity"] + 2
    report = register.import_scenario(Scenario.from_tables(tables))
    ids = list(needs.loc[[0, 5], "need_id"])
    assert sorted(report.changes["needs"].changed) == sorted(ids)
    states = register.need_states().set_index("need_id").loc[ids]
    assert list(states["quantity"]) == list(needs.loc[[0, 5], "quantity"].astype(float))
    assert list(states["remaining"]) == list(states["quantity"])
    events = register.events(kind="need_state.change")
    assert sorted(events["subject"]) == sorted(f"needs:{n}" for n in ids)
    assert all(json.loads(a)["quantity"] == json.loads(b)["quantity"] + 2
               for a, b in zip(events["after"], events["before"], strict=True))


def test_an_export_imported_back_changes_nothing_and_quantities_move_needs_across_owed(
        tmp_path, tiny):
    register = _register(f"sqlite:///{tmp_path / 's.sqlite'}")
    register.import_scenario(tiny)
    tasks = cycle.open_week(register, W1).tasks
    service = tasks[(tasks["kind"] == "service") & (tasks["need_id"] != "")]
    per_need = service.groupby("need_id")["task_id"].transform("size")
    part = service[(service["units"] >= 2) & (per_need == 1)].iloc[0]
    states = register.need_states().set_index("need_id")
    whole = service[(per_need == 1) & (service["need_id"] != part["need_id"])
                    & (service["units"].to_numpy(float)
                       == states.loc[service["need_id"], "quantity"].to_numpy(float))].iloc[0]
    half = np.floor(float(part["units"]) / 2)
    cycle.record_answers(register, [
        cycle.Answer(part["task_id"], "delivered", units_delivered=str(half)),
        cycle.Answer(whole["task_id"], "delivered")])
    cycle.close_week(register, W1)
    before = register.need_states().set_index("need_id")
    assert before.loc[part["need_id"], "state"] == "carried"  # (not vacuous: something owed
    assert before.loc[whole["need_id"], "close_reason"] == "delivered"  # and one delivered)

    # The export writes what is owed as the quantity: read back unedited it is no change.
    register.export(tmp_path / "out")
    report = register.import_scenario(load_scenario(tmp_path / "out"))
    assert report.changes["needs"].total == 0
    pd.testing.assert_frame_equal(register.need_states().set_index("need_id"), before)
    # Another cell edited in the export: the quantity (what is owed) is still not the need's.
    exported = {k: v.copy() for k, v in load_scenario(tmp_path / "out").tables.items()}
    rows = exported["needs"]["need_id"] == part["need_id"]
    exported["needs"].loc[rows, "urgency"] = exported["needs"].loc[rows, "urgency"] % 3 + 1
    report = register.import_scenario(Scenario.from_tables(exported))
    assert report.changes["needs"].changed == [part["need_id"]]
    edited = register.need_states().set_index("need_id").loc[part["need_id"]]
    assert edited[["state", "quantity", "remaining"]].tolist() == before.loc[
        part["need_id"], ["state", "quantity", "remaining"]].tolist()
    assert edited["urgency"] == before.loc[part["need_id"], "urgency"] % 3 + 1
    register.import_scenario(load_scenario(tmp_path / "out"))  # (the urgency back)

    # Raised past what was delivered, the delivered need is owed again; cut to what was
    # delivered, the carried one is delivered.
    tables = {k: v.copy() for k, v in tiny.tables.items()}
    needs = tables["needs"].set_index("need_id")
    delivered = before.loc[part["need_id"], "quantity"] - before.loc[part["need_id"], "remaining"]
    needs.loc[part["need_id"], "quantity"] = delivered
    needs.loc[whole["need_id"], "quantity"] += 1
    tables["needs"] = needs.reset_index()
    report = register.import_scenario(Scenario.from_tables(tables))
    assert sorted(report.changes["needs"].changed) == sorted([part["need_id"],
                                                              whole["need_id"]])
    after = register.need_states().set_index("need_id")
    assert after.loc[part["need_id"], ["state", "close_reason", "remaining"]].tolist() == [
        "closed", "delivered", 0.0]
    assert after.loc[whole["need_id"], ["state", "close_reason", "remaining"]].tolist() == [
        "open", "", 1.0]
    assert after.loc[whole["need_id"], "week_raised"] == max(whole["week"], register.week())
    week = cycle.open_week(register, W2).tasks
    assert whole["need_id"] in set(week["need_id"]) and part["need_id"] not in set(
        week["need_id"])


def _by_text(keys: list[str], texts: list[str], stored: dict[str, str]):
    """What an import changes as the rows' JSON text compares (the independent reckoning)."""
    added = [k for k in keys if k not in stored]
    changed = [k for k, t in zip(keys, texts, strict=True) if k in stored and stored[k] != t]
    return added, changed, [k for k in stored if k not in set(keys)]


@pytest.mark.parametrize("extra", [[], ["note"], ["note", "contact"]])
def test_row_changes_are_those_of_the_rows_text(tiny, extra):
    frame = tiny.tables["providers"].copy()
    for column in extra:
        frame[column] = [f"{column} {i}" for i in range(len(frame))]
    frame.loc[0, "name"] = 'O"Brien 张\\记/维修 \t 合作社'  # quotes, a backslash, a slash, a tab
    frame.loc[1, "name"] = ""  # an empty cell
    # Each a value pandas writes with an escape (or, the last two, without one).
    frame.loc[15:20, "name"] = ['a "quote"', "back\\slash", "a\ttab", "a/slash",
                                "😀\u2028😀", "a\x7f"]
    text = canonical("providers", frame)
    keys = list(text["provider_id"])
    texts = row_json(text)
    stored = dict(zip(keys, texts, strict=True))
    stored[keys[2]] = texts[2].replace('"firm"', '"Firm"')  # one value, another spelling
    stored[keys[3]] = json.dumps({**json.loads(texts[3]), "centre_id": " D04"}, ensure_ascii=False)
    stored[keys[4]] = row_json(text.drop(columns="linkage"))[4]  # a key missing
    stored[keys[5]] = row_json(text.assign(more="x"))[5]  # a key the file has not
    stored[keys[6]] = json.dumps(json.loads(texts[6]), separators=(",", ":"))  # \\u escapes
    stored[keys[12]] = json.dumps(json.loads(texts[12]), ensure_ascii=False)  # spaces
    frame.loc[13, "name"] = text.loc[13, "name"] = "维修/保洁"
    texts[13] = row_json(text.iloc[[13]])[0]
    stored[keys[13]] = json.dumps(json.loads(texts[13]), separators=(",", ":"),
                                  ensure_ascii=False)  # the same, a slash not escaped
    stored[keys[14]] = texts[14].replace(":", ": ", 1)  # a space
    for i in range(15, 21):  # the same values written otherwise: as json.dumps writes them
        stored[keys[i]] = json.dumps(json.loads(texts[i]), separators=(",", ":"))
    stored[keys[7]] = texts[7].replace('"name":"', '"name":"\\"', 1)  # a quote more
    if extra:  # the same keys in another order
        order = [*reversed(text.columns[-len(extra):]), *text.columns[:-len(extra)]]
        stored[keys[8]] = row_json(text[order])[8]
    del stored[keys[9]]  # a row the register does not have yet
    stored["FIRM9999"] = texts[10].replace(keys[10], "FIRM9999")  # one the file does not list
    changes, written, absent = row_changes(text, keys, stored)
    added, changed, gone = _by_text(keys, texts, stored)
    assert (changes.added, changes.changed, absent) == (added, changed, gone)
    assert keys[9] in added and keys[4] in changed and keys[0] not in changed  # (not vacuous)
    assert all(written[k] == texts[keys.index(k)] for k in added + changed)

    # A stored value that is not text: compared as text, all the same.
    stored[keys[11]] = texts[11].replace('"name":"', '"name":5,"x":"', 1)
    changes, written, absent = row_changes(text, keys, stored)
    assert (changes.added, changes.changed, absent) == _by_text(keys, texts, stored)


def test_a_reimport_reports_and_writes_what_the_rows_text_says(store_url, tiny):
    register = _register(store_url)
    tables = {k: v.copy() for k, v in tiny.tables.items()}
    tables["providers"].loc[[0, 1], "name"] = ['O"Brien 张记/维修', "Lin's 合作社"]
    register.import_scenario(Scenario.from_tables(tables))
    before = {name: register.rows(name) for name in tiny.tables if name != "pins"}
    tables["providers"].loc[[0, 1], "name"] = [' O"Brien 张记/维修 ', "Lin’s 合作社"]
    tables["needs"]["quantity"] = tables["needs"]["quantity"].round().astype(int)  # 2 for 2.0
    tables["offers"].loc[0, "capacity"] += 0.5
    tables["households"].loc[4, "categories"] = np.nan  # an empty cell
    tables["offers"] = tables["offers"].iloc[:-1]  # a supply row removed
    tables["providers"] = pd.concat([tables["providers"], tables["providers"].iloc[[2]].assign(
        provider_id="PNEW1")], ignore_index=True)  # a row added beside the changed ones
    changed = Scenario.from_tables(tables)
    report = register.import_scenario(changed)
    assert report.changes["providers"].added == ["PNEW1"]
    assert report.changes["providers"].changed == [tables["providers"].loc[1, "provider_id"]]
    for name, rows in before.items():
        text = canonical(name, changed.tables[name])
        keys = [str(k) for k in row_keys(name, text)]
        texts = dict(zip(keys, row_json(text), strict=True))
        added, modified, gone = _by_text(keys, list(texts.values()), rows)
        c = report.changes[name]
        assert (c.added, c.changed, c.removed) == (
            added, modified, sorted(gone) if name in SYNCED_TABLES else []), name
        stored = register.rows(name)
        assert all(stored[k] == texts[k] for k in added + modified)
        events = register.events(kind=f"{name}.change")
        assert sorted(zip(events["subject"], events["before"], events["after"],
                          strict=True)) == sorted((f"{name}:{k}", rows[k], texts[k])
                                                  for k in modified)
        # A table that held rows gets an add event for each row added, none for one changed
        # (a first import's copy of its rows' events would give the changed ones one too).
        adds = register.events(kind=f"{name}.add")
        assert sorted(adds["subject"]) == sorted(f"{name}:{k}" for k in [*rows, *added]), name
    assert report.changes["offers"].total == 2 and report.changes["households"].changed


def test_a_first_imports_add_events_are_its_rows_as_written_in_key_order(store_url, tiny):
    """A table empty before an import has its add events copied from its rows by the database,
    in key order (not the file's), each with who, when, through what and the row after."""
    register = _register(store_url, via="file")
    shuffled = {name: frame.sample(frac=1, random_state=7).reset_index(drop=True)
                for name, frame in tiny.tables.items()}
    assert list(shuffled["households"]["household_id"]) != sorted(
        shuffled["households"]["household_id"])  # (the file is out of key order)
    report = register.import_scenario(Scenario.from_tables(shuffled))
    events = register.events()
    assert len(events) == sum(len(c.added) for c in report.changes.values()) + len(
        tiny.tables["households"])  # one event a row, one a household's assessment
    assert events["at"].nunique() == 1
    assert set(zip(events["actor"], events["via"], strict=True)) == {("tester", "file")}
    with register.engine.connect() as conn:
        for name, c in report.changes.items():
            # (In code point order, as Python sorts: a database's collation may differ.)
            stored = sorted(fetch_rows(conn, sa.select(ROWS.c.row_key, ROWS.c.data)
                                       .where(ROWS.c.tbl == name)))
            assert sorted(key for key, _ in stored) == sorted(c.added) and c.added, name
            added = events[events["kind"] == f"{name}.add"]
            assert list(zip(added["subject"], added["before"], added["after"], strict=True)
                        ) == [(f"{name}:{key}", None, data) for key, data in stored], name


def test_a_bulk_insert_writes_many_rows_a_statement_in_order(store_url):
    """Rows from columns (one value for every row where a single value is given), as many a
    statement as fit and the rest in one more: every row once, numbered in the rows' order."""
    engine = RunStore(store_url).engine
    count = 3 * (MAX_PARAMETERS // 6) + 7  # (six columns: three full statements and seven rows)
    subjects = [f"households:H{i:05d}" for i in range(count)]
    afters = [json.dumps({"i": i, "名": "张'\"/"}, ensure_ascii=False) for i in range(count)]
    with engine.begin() as conn:
        bulk_insert(conn, EVENTS, {"at": "2026-12-07", "actor": "tester", "via": "file",
                                   "kind": "households.add", "subject": subjects,
                                   "after": afters})
        bulk_insert(conn, EVENTS, [{"at": "2026-12-08", "actor": "o'neil", "via": "api",
                                    "kind": "need.add", "subject": "needs:N1", "before": "{}",
                                    "after": None}])
        rows = fetch_rows(conn, sa.select(EVENTS.c.at, EVENTS.c.actor, EVENTS.c.via,
                                          EVENTS.c.kind, EVENTS.c.subject, EVENTS.c.before,
                                          EVENTS.c.after).order_by(EVENTS.c.event_id))
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("2026-12-07", "tester", "file", "households.add", s, None, a)
        for s, a in zip(subjects, afters, strict=True)] + [
        ("2026-12-08", "o'neil", "api", "need.add", "needs:N1", "{}", None)]


# Values COPY's text format would mangle if they were not escaped (tab, newline, carriage
# return, backslash, its NULL marker ``\N`` as text), NULL beside the empty string, Chinese
# text, and floats at the edges of a double.
AWKWARD_TEXTS = ["tab\there", "line\nbreak\r\n", "back\\slash", "\\N", "", None,
                 "救助对象 'quoted' \"double\"", "x" * 5000, "\\.", "end\\"]
AWKWARD_FLOATS = [0.1 + 0.2, -0.0, 1e308, -1e308, 5e-324, 2.2250738585072014e-308,
                  float("inf"), float("-inf"), 123456789.123456789, 1.0]


@pytest.mark.parametrize("copy_update_rows", (1, 1_000))
def test_bulk_writes_keep_every_value_as_a_statements_parameters_do(store_url, copy_update_rows,
                                                                    monkeypatch):
    """Rows written and updated by bulk_insert/bulk_update (COPY on PostgreSQL; updates of
    ``COPY_UPDATE_ROWS`` rows or more from a copied table, fewer by statements) read back
    the same as the same rows written by SQLAlchemy's own statements, and as given: texts with
    tabs, newlines, backslashes and ``\\N``, NULL and "", Chinese, extreme floats, large
    integers, booleans and dates. A key updated twice keeps its last values."""
    monkeypatch.setattr(db, "COPY_UPDATE_ROWS", copy_update_rows)
    meta = sa.MetaData()
    tables = [sa.Table(name, meta, sa.Column("k", sa.Integer, primary_key=True),
                       sa.Column("text", sa.Text, nullable=True),
                       sa.Column("short", sa.String(8), nullable=False),
                       sa.Column("number", sa.Float, nullable=False),
                       sa.Column("big", sa.BigInteger, nullable=False),
                       sa.Column("flag", sa.Boolean, nullable=False),
                       sa.Column("day", sa.Date, nullable=False))
              for name in ("bulk_written", "core_written")]
    rows = [{"k": i, "text": text, "short": ["", "中文", "a\tb"][i % 3], "number": number,
             "big": (-1) ** i * 2 ** 62 + i, "flag": i % 2 == 0, "day": date(2026, 12, 1 + i)}
            for i, (text, number) in enumerate(zip(AWKWARD_TEXTS, AWKWARD_FLOATS, strict=True))]
    changes = [{"k": 1, "text": "first\t", "number": 1.5}, {"k": 3, "text": None, "number": 0.0},
               {"k": 1, "text": "\\N again\n", "number": -2.5}]
    engine = RunStore(store_url).engine
    with engine.begin() as conn:
        meta.create_all(conn)
        bulk_insert(conn, tables[0], rows)
        bulk_update(conn, tables[0], "k", changes)
        conn.execute(tables[1].insert(), rows)
        for change in changes:
            conn.execute(tables[1].update().where(tables[1].c.k == change["k"])
                         .values(text=change["text"], number=change["number"]))
        bulk, core = (fetch_rows(conn, sa.select(t).order_by(t.c.k)) for t in tables)
    engine.dispose()
    assert [tuple(map(repr, r)) for r in bulk] == [tuple(map(repr, r)) for r in core]
    expected = {r["k"]: dict(r) for r in rows}
    for change in changes:
        expected[change["k"]].update(change)
    assert [(k, text, number) for k, text, _, number, *_ in bulk] == [
        (k, r["text"], r["number"]) for k, r in expected.items()]
    assert [short for _, _, short, *_ in bulk] == [r["short"] for r in rows]


def test_awkward_text_round_trips_through_the_register(store_url, tiny):
    """Names holding what COPY's text format escapes come back from the register as imported,
    both when first written (rows and their add events) and when changed by a re-import."""
    register = _register(store_url)
    names = ["tab\there", "line\nbreak", "back\\slash \\N", "救助 \"站\" 'x'", "\\"]
    tables = {k: v.copy() for k, v in tiny.tables.items()}
    providers = tables["providers"]
    providers.loc[providers.index[:len(names)], "name"] = names
    register.import_scenario(Scenario.from_tables(tables, tiny.policy))
    stored = register.table("providers").set_index("provider_id")["name"]
    assert stored.loc[providers["provider_id"][:len(names)]].tolist() == names
    added = register.events(kind="providers.add")
    assert sorted(json.loads(a)["name"] for a in added["after"]) == sorted(providers["name"])
    changed = [n[::-1] + "\t\\" for n in names]
    providers.loc[providers.index[:len(names)], "name"] = changed
    report = register.import_scenario(Scenario.from_tables(tables, tiny.policy))
    assert sorted(report.changes["providers"].changed) == sorted(
        providers["provider_id"][:len(names)])
    stored = register.table("providers").set_index("provider_id")["name"]
    assert stored.loc[providers["provider_id"][:len(names)]].tolist() == changed


def test_a_first_import_leaves_every_key_and_index_as_the_schema_made_them(store_url, tiny):
    """A first import makes its tables' indexes after their rows on PostgreSQL: afterwards
    every key, unique constraint and index is there as before (partial ones with their
    condition), and the keys refuse a row given twice."""
    register = _register(store_url)

    def shape() -> dict:
        inspector = sa.inspect(register.engine)
        return {t: [json.dumps(found, default=str, sort_keys=True) for found in (
            inspector.get_pk_constraint(t), *inspector.get_unique_constraints(t),
            *sorted(inspector.get_indexes(t), key=lambda index: index["name"]))]
            for t in sorted(inspector.get_table_names())}  # (a partial index's condition: text)

    before = shape()
    register.import_scenario(tiny)
    assert shape() == before
    assert json.loads(before["register_rows"][0])["constrained_columns"] == ["tbl", "row_key"]
    row = register.rows("households")
    key, data = next(iter(row.items()))
    with pytest.raises(sa.exc.IntegrityError), register.engine.begin() as conn:
        bulk_insert(conn, ROWS, [{"tbl": "households", "row_key": key, "data": data,
                                  "effective_from": "2026-12-07", "updated_at": "now"}])


def test_an_import_that_would_break_the_register_applies_nothing(tmp_path, tiny):
    register = _register(f"sqlite:///{tmp_path / 's.sqlite'}")
    register.import_scenario(tiny)
    events = len(register.events())
    tables = {k: v.copy() for k, v in tiny.tables.items()}
    # A file without one provider: its offers (kept in the file) now point nowhere.
    used = tables["offers"]["provider_id"].iloc[0]
    tables["providers"] = tables["providers"][tables["providers"]["provider_id"] != used]
    tables["offers"] = tables["offers"][tables["offers"]["provider_id"] != used]
    tables["volunteers"] = tables["volunteers"][tables["volunteers"]["provider_id"] != used]
    ok = Scenario.from_tables(tables)  # valid alone …
    register.import_scenario(ok)  # … and in the register: offers of it were removed too
    tables2 = {k: v.copy() for k, v in tiny.tables.items()}
    tables2["centres"] = tables2["centres"][tables2["centres"]["level"] != "station"]
    tables2["households"] = tables2["households"].iloc[:0]
    tables2["needs"] = tables2["needs"].iloc[:0]
    tables2["volunteers"] = tables2["volunteers"].iloc[:0]
    tables2["history"] = tables2["history"].iloc[:0]
    tables2["offers"] = tables2["offers"][tables2["offers"]["coverage_centre_id"].isin(
        tables2["centres"]["centre_id"]) | (tables2["offers"]["coverage_centre_id"] == "")]
    tables2["funds"] = tables2["funds"][tables2["funds"]["centre_id"].isin(
        tables2["centres"]["centre_id"])]
    tables2["offers"] = tables2["offers"][tables2["offers"]["fund_id"].isin(
        tables2["funds"]["fund_id"]) | (tables2["offers"]["fund_id"] == "")]
    stationless = Scenario.from_tables(tables2)  # valid alone, but the register's households
    before = len(register.events())              # live in the stations it removes
    with pytest.raises(ValidationError) as err:
        register.import_scenario(stationless)
    assert {p.code for p in err.value.problems} == {"missing_reference"}
    assert len(register.events()) == before > events


def test_single_records_a_one_click_request_and_a_withdrawal(tmp_path, tiny):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    register = _register(url)
    register.import_scenario(tiny)
    hid = tiny.tables["households"]["household_id"].iloc[0]
    service = tiny.tables["services"]["service_id"].iloc[0]
    assert _cli(url, "register", "need", hid, "--set", f"service_id={service}",
                "--set", "quantity=2", "--set", f"week={W1}", "--set", "urgency=3") == 0
    raised = register.events(kind="needs.add")
    need_id = json.loads(raised["after"].iat[-1])["need_id"]
    assert register.need_states().set_index("need_id").loc[need_id, "state"] == "open"
    assert _cli(url, "register", "need", hid, "--set", "service_id=NOPE",
                "--set", "quantity=2", "--set", f"week={W1}") == 1
    assert _cli(url, "register", "withdraw", need_id) == 0
    row = register.need_states().set_index("need_id").loc[need_id]
    assert (row["state"], row["close_reason"]) == ("closed", "withdrawn")
    # A household assessed again with every deprivation: red by the policy's score.
    sets = [f"--set=d_{d}=1" for d in ("income", "education", "health", "housing", "assets",
                                       "capability", "social")]
    assert _cli(url, "register", "household", hid, *sets, "--discovered-by", "referral") == 0
    last = register.colour_history(hid).iloc[-1]
    assert (last["tier"], last["discovered_by"]) == ("red", "referral")
    assert last["score"] == pytest.approx(1.0)


def test_single_records_are_checked_against_the_rows_they_refer_to(tmp_path, tiny):
    """A need or a household is validated beside the rows it refers to (read by key, up to
    the city), not the whole register: an unknown household, service or station is still
    named with its column, a valid record still goes in, and nothing is written on a
    problem."""
    register = _register(f"sqlite:///{tmp_path / 's.sqlite'}")
    register.import_scenario(tiny)
    hid = tiny.tables["households"]["household_id"].iloc[0]
    service = tiny.tables["services"]["service_id"].iloc[0]
    before = len(register.events())
    with pytest.raises(ValidationError) as err:
        register.add_need({"household_id": "H_NOPE", "service_id": "NOPE", "quantity": 1,
                           "week": W1})
    assert sorted((p.table, p.column, p.code) for p in err.value.problems) == [
        ("needs", "household_id", "missing_reference"),
        ("needs", "service_id", "missing_reference")]
    row = json.loads(register.rows("households", keys=[hid])[hid])
    with pytest.raises(ValidationError) as err:
        register.upsert_household({**row, "station_id": "NO_STATION"})
    assert [(p.table, p.column, p.code) for p in err.value.problems] == [
        ("households", "station_id", "missing_reference")]
    assert len(register.events()) == before
    need_id = register.add_need({"household_id": hid, "service_id": service, "quantity": 1,
                                 "week": W1})
    assert register.need_states().set_index("need_id").loc[need_id, "state"] == "open"
    # Ids are read as validation reads every cell, stripped (a full-width space too).
    spaced = register.add_need({"household_id": f" {hid}\u3000", "service_id": f"{service} ",
                                "quantity": 1, "week": f" {W1}"})
    # … and so is the id made from them: the household's own, no space inside.
    assert spaced.startswith(f"N{W1.replace('-', '')}{hid}") and spaced.strip() == spaced
    assert register.upsert_household({**row, "station_id": f"{row['station_id']} "}) >= 2


# -- three weeks through the CLI -------------------------------------------------------------


def _fill(path: Path, rng: np.random.Generator, worse: bool) -> None:
    """Answer a published workbook as a provider or volunteers would, by the column headers."""
    wb = load_workbook(path)
    ws = wb["任务 tasks"]
    header = {c.value: c.column for c in ws[1]}
    for r in range(2, ws.max_row + 1):
        u = rng.random()
        units = float(ws.cell(r, header["计划数量 units planned"]).value or 0)
        if u < 0.15:
            ws.cell(r, header["状态 status"], "已拒绝")
            ws.cell(r, header["原因 reason"], "人手或物资不足")
        elif u < 0.3 and units >= 2:
            ws.cell(r, header["状态 status"], "已完成")
            ws.cell(r, header["完成数量 units delivered"], float(np.floor(units / 2)))
        elif u < 0.4:
            ws.cell(r, header["状态 status"], "已接受")  # accepted, never delivered
        else:
            ws.cell(r, header["状态 status"], "已完成")
        if worse and ws.cell(r, header["类型 kind"]).value == "巡查走访":
            ws.cell(r, header["状态 status"], "已完成")
            for title, col in header.items():
                if str(title).endswith("observed"):
                    ws.cell(r, col, 1)
            ws.cell(r, header["新需求 new needs (service:qty;…)"], "counselling:2")
    wb.save(path)


def test_publishing_a_week_never_opened_is_refused(tmp_path, tiny_scenario, capsys):
    """`week publish` of a week not opened (or not for that centre) fails with the reason
    and writes no workbook; the week opened publishes."""
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    assert _cli(url, "register", "import", str(tiny_scenario)) == 0
    capsys.readouterr()
    assert _cli(url, "week", "publish", W1, "--out", str(tmp_path / "none")) == 1
    assert "was not opened" in capsys.readouterr().err
    assert not list((tmp_path / "none").glob("*.xlsx"))
    assert _cli(url, "week", "open", W1) == 0
    street = _register(url).table("centres").query("level == 'street'")["centre_id"].iloc[0]
    assert _cli(url, "week", "publish", W1, "--centre", street,
                "--out", str(tmp_path / "street")) == 1
    assert f"{W1} was opened for * ('*': the whole network), not for {street}" \
        in capsys.readouterr().err
    assert _cli(url, "week", "publish", W1, "--out", str(tmp_path / "all")) == 0
    assert list((tmp_path / "all").glob("*.xlsx"))


def test_three_weeks_through_the_cli_checked_from_the_register(store_url, tiny_scenario,
                                                               tmp_path):
    url = store_url
    assert _cli(url, "register", "import", str(tiny_scenario)) == 0
    rng = np.random.default_rng(3)
    for k, week in enumerate((W1, W2, W3)):
        assert _cli(url, "week", "open", week) == 0
        out = tmp_path / week
        assert _cli(url, "week", "publish", week, "--out", str(out)) == 0
        books = sorted(out.glob("*.xlsx"))
        assert books
        for book in books:
            _fill(book, rng, worse=k == 0)
        assert _cli(url, "week", "record", *map(str, books)) == 0
        events = len(_register(url).events())
        assert _cli(url, "week", "record", *map(str, books)) == 0  # the same files again
        assert len(_register(url).events()) == events  # … change nothing
        assert _cli(url, "week", "close", week) == 0

    register = _register(url)
    with register.engine.connect() as conn:
        tasks = cycle.tasks_frame(conn)
    states = register.need_states().set_index("need_id")
    needs = register.table("needs").set_index("need_id")
    # Every need raised: delivered in full (closed), carried forward with its age, or closed
    # with a reason; what is owed is what was raised less what was delivered.
    delivered = tasks[tasks["status"] == "delivered"].groupby("need_id")["units_delivered"].sum()
    assert set(states.index) == set(needs.index)
    assert set(states["state"]) <= {"carried", "closed", "open"}
    closed = states[states["state"] == "closed"]
    assert set(closed["close_reason"]) <= {"delivered", "withdrawn", "expired"}
    owed = states["quantity"] - states.index.map(delivered).fillna(0.0)
    assert np.allclose(np.maximum(owed, 0.0), states["remaining"], atol=1e-6)
    assert (closed[closed["close_reason"] == "delivered"]["remaining"] == 0).all()
    carried = states[states["state"] == "carried"]
    assert len(carried) and (carried["age"] >= 1).all()
    # A need ages one week per week it waited in: the imported ones were in all three; a need
    # a visit found mid-week waits from the next week on.
    imported = carried.index.isin(pd.read_csv(tiny_scenario / "needs.csv")["need_id"])
    assert imported.any() and (carried.loc[imported, "age"] == 3).all()
    weeks_waited = carried["week_raised"].map(lambda w: 3 - [W1, W2, W3].index(w))
    assert (carried["age"] <= weeks_waited).all()

    # The ledger's spent is the delivered tasks' cost, per fund.
    by_week, balances = cycle.fund_ledger(register)
    spent = by_week.groupby("fund_id")["spent"].sum()
    paid = tasks[(tasks["status"] == "delivered") & (tasks["fund_id"] != "")]
    expected = (paid["cost"] * np.where(paid["units"] > 0, paid["units_delivered"]
                                        / paid["units"].where(paid["units"] > 0, 1), 1.0)) \
        .groupby(paid["fund_id"]).sum()
    assert np.allclose(spent.reindex(expected.index).to_numpy(), expected.to_numpy(), atol=0.02)
    assert (balances["balance"] >= -1e-6).all()
    # Tasks never answered were settled when their week closed.
    assert not tasks["status"].isin(["planned", "accepted"]).any()
    assert (tasks.loc[tasks["reason"] == "no_answer", "status"] == "not_delivered").all()

    # A household whose visit found it worse has a new assessment and a worse colour.
    visits = pd.DataFrame(register.events(kind="visit.result")["subject"])
    assert len(visits)
    order = {"red": 0, "orange": 1, "yellow": 2, "green": 3}
    worse = 0
    for hid in tasks.loc[tasks["kind"].isin(cycle.MONITORING_KINDS) & (tasks["week"] == W1)
                         & (tasks["status"] == "delivered"), "household_id"]:
        history = register.colour_history(hid)
        visit = history[history["discovered_by"] == "visit"]
        assert len(visit) >= 1
        assert order[visit["tier"].iat[0]] <= order[history["tier"].iat[0]]
        worse += visit["tier"].iat[0] == "red"
    assert worse >= 1

    # The audit trail holds every change: each task answered, each need state changed.
    events = register.events()
    answered = set(events.loc[events["kind"] == "task.answer", "subject"])
    settled = set(events.loc[events["kind"] == "task.settle", "subject"])
    subjects = "tasks:" + tasks["task_id"]
    assert set(subjects[tasks["reason"] != "no_answer"]) <= answered <= set(subjects)
    assert settled == set(subjects[tasks["reason"] == "no_answer"])
    assert set(events.loc[events["kind"].str.startswith("week."), "kind"]) == {
        "week.open", "week.close"}
    assert {f"needs:{n}" for n in closed.index} <= set(events["subject"])


def test_a_close_rewrites_only_what_the_week_allocated_and_needs_age_by_the_calendar(tmp_path):
    """The needs a week left unmet keep their rows and get no event at its close: they wait
    on, their age counted from the week they were raised for; the needs it allocated are
    closed or carried, each with its event; with ``expire_weeks`` a need that has waited that
    long closes as expired whether it was allocated or not."""
    data = Policy.load().to_dict()
    data["cycle"]["expire_weeks"] = 2
    policy = Policy.from_dict(data)
    register = Register(RunStore(f"sqlite:///{tmp_path / 'age.sqlite'}"), Actor("tester"),
                        policy)
    _OPEN.append(register)
    register.import_scenario(Scenario.from_tables(generate_scenario("tiny", 0), policy))

    def decline_all_and_close(week: str) -> tuple[pd.DataFrame, pd.DataFrame, set]:
        cycle.open_week(register, week)
        before = register.need_states().set_index("need_id")
        tasks = cycle.tasks(register, week)
        cycle.record_answers(register, [cycle.Answer(t, "declined", reason="no_capacity")
                                        for t in tasks["task_id"]])
        # One need the week left unmet is withdrawn before the close: closed, with its age.
        left = before.index[before["state"].isin(["open", "carried"])
                            & (before["week_raised"] <= week)]
        register.withdraw_need(left[0])
        withdrawn = register.need_states().set_index("need_id").loc[left[0]]
        assert withdrawn["state"] == "closed"
        assert withdrawn["age"] == waited(before.loc[[left[0]]], week)[0]
        seen = len(register.events())
        closed = cycle.close_week(register, week)
        events = register.events().iloc[seen:]
        changed = set(events.loc[events["kind"].str.startswith("need_state."), "subject"])
        after = register.need_states().set_index("need_id")
        # The needs carried are those of the week still waiting (not the one withdrawn).
        week_needs = before.index[(before["state"] == "allocated") | before.index.isin(left)]
        assert closed.carried == int((after.loc[week_needs, "state"] != "closed").sum())
        return before, after, changed

    def waited(frame: pd.DataFrame, week: str) -> list[int]:
        return [max(0, (cycle.week_start(week) - cycle.week_start(w)).days // 7)
                for w in frame["week_raised"]]

    before, after, changed = decline_all_and_close(W1)
    allocated = before.index[before["state"] == "allocated"]
    unmet = before.index[before["state"].isin(["open", "carried"])
                         & (before["week_raised"] <= W1)][1:]  # (the first was withdrawn)
    assert len(allocated) and len(unmet)
    assert changed == {f"needs:{n}" for n in allocated}  # not one event for the unmet
    assert (after.loc[allocated, "state"] == "carried").all()
    assert after.loc[unmet, ["state", "updated_at"]].equals(
        before.loc[unmet, ["state", "updated_at"]])
    waiting = after[after["state"] != "closed"]
    assert (waiting["age"] == waited(waiting, W2)).all() and (waiting["age"] >= 1).any()
    assert register.week() == W2

    # Closing W2: whatever was raised for W1 or earlier has now waited two weeks: expired.
    before, after, changed = decline_all_and_close(W2)
    old = before.index[(before["state"] != "closed") & (before["week_raised"] <= W1)]
    assert len(old)
    assert (after.loc[old, "state"] == "closed").all()
    assert (after.loc[old, "close_reason"] == "expired").sum() == len(old) - 1  # one withdrawn
    expired = after.loc[old][after.loc[old, "close_reason"] == "expired"]
    assert (expired["age"] == waited(expired, W3)).all()
    assert {f"needs:{n}" for n in expired.index} <= changed
    assert (after.loc[after["state"] != "closed", "week_raised"] > W1).all()


def test_the_registers_week_never_goes_back_when_scopes_run_different_weeks(tmp_path):
    """A street's week still open does not undo another scope's later close: waiting needs
    are aged to the latest of the weeks open and the weeks after those closed."""
    register = _register(f"sqlite:///{tmp_path / 'w.sqlite'}")
    assert register.week() is None
    with register.engine.begin() as conn:
        for week, centre, state in ((W1, "B", "open"), (W2, "A", "closed")):
            conn.execute(cycle.WEEKS.insert().values(week=week, centre=centre, state=state,
                                                     opened_at="", actor="tester"))
    assert register.week() == W3
    with register.engine.begin() as conn:
        conn.execute(cycle.WEEKS.insert().values(week=W3, centre="A", state="open",
                                                 opened_at="", actor="tester"))
    assert register.week() == W3



def _same_as_validated(register: Register, week: str) -> dict[str, pd.DataFrame]:
    """The week's scenario as the open builds it (the checks the register keeps left out) is
    the one ``from_tables`` validates in full: every table, the households' colours and the
    input digest the same. Returns the week's text tables."""
    with register.engine.connect() as conn:
        tables = cycle.week_tables(register, conn, week)
        built = cycle.week_scenario(register, conn, week)
    validated = Scenario.from_tables(tables, register.policy)
    assert built.digest == validated.digest
    assert list(built.tables) == list(validated.tables)
    for name, frame in validated.tables.items():
        pd.testing.assert_frame_equal(built.tables[name], frame, check_exact=True)
    pd.testing.assert_frame_equal(built.households, validated.households, check_exact=True)
    return tables


def test_a_register_weeks_scenario_is_the_fully_validated_one(tmp_path, tiny):
    """On the demo (its week before and after it is opened: offers, hours and slots taken)
    and on two weeks of a register carried on (needs waiting, their urgency raised by age,
    funds at their balance)."""
    demo = _register(f"sqlite:///{tmp_path / 'demo.sqlite'}")
    demo.import_scenario(load_scenario(DEMO))
    before = _same_as_validated(demo, W1)
    cycle.open_week(demo, W1)
    after = _same_as_validated(demo, W1)
    # (The open took offers and volunteers' hours: the week's own cells differ.)
    assert not before["offers"]["capacity"].equals(after["offers"]["capacity"])
    assert not before["volunteers"]["max_hours"].equals(after["volunteers"]["max_hours"])

    register = _register(f"sqlite:///{tmp_path / 'carried.sqlite'}")
    register.import_scenario(tiny)
    for week in (W1, W2):
        cycle.open_week(register, week)
        tasks = cycle.tasks(register, week)
        cycle.record_answers(register, [cycle.Answer(t, "declined", reason="no_capacity")
                                        for t in tasks["task_id"]])
        cycle.close_week(register, week)
    tables = _same_as_validated(register, W3)
    states = register.need_states().set_index("need_id")
    waiting = states.loc[tables["needs"]["need_id"]]
    assert (waiting["age"] >= 2).any()  # carried two weeks: urgency raised
    raised = tables["needs"]["urgency"].astype(int).to_numpy() > waiting["urgency"].to_numpy()
    assert raised.any()
    assert (tables["needs"]["week"] == W3).all()


# -- people leave ---------------------------------------------------------------------------


def _register_checksum(register: Register) -> str:
    """A digest of every row the register and its weeks hold (rows, events, assessments,
    needs' states, the watch, weeks and tasks)."""
    digest = hashlib.sha256()
    with register.engine.connect() as conn:
        for table in (ROWS, EVENTS, ASSESSMENTS, NEED_STATES, WATCH, WEEKS, cycle.TASKS):
            rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            digest.update(f"{table.name}:{len(rows)}:{[tuple(r) for r in rows]!r}".encode())
    return digest.hexdigest()


def test_a_volunteer_the_history_names_can_leave_and_the_history_stays(store_url, tiny,
                                                                        tmp_path):
    """A volunteer who made visits is dropped from the volunteers file: the import takes it,
    the register keeps their visits, and shows them (export, the week's scenario) in their
    weeks with no volunteer — the same monitoring due dates, no continuity to them; the
    export validates and imported again changes nothing; the next week opens."""
    register = _register(store_url)
    register.import_scenario(tiny)
    params = MatchParams()
    with register.engine.connect() as conn:
        *_, due_before, last_before = monitoring_due(cycle.week_scenario(register, conn, W1),
                                                     W1, None, params)
    gone = last_before.value_counts().index[0]  # the last visitor of the most households
    theirs = tiny.history["volunteer_id"] == gone
    tables = {**tiny.tables,
              "volunteers": tiny.volunteers[tiny.volunteers["volunteer_id"] != gone],
              "history": tiny.history[~theirs]}  # (a file naming them is refused: a typo)
    report = register.import_scenario(Scenario.from_tables(tables))
    assert {n: (c.added, c.changed, c.removed) for n, c in report.changes.items()
            if c.total} == {"volunteers": ([], [], [gone])}
    kept = register.table("history")
    assert (kept["volunteer_id"] == gone).sum() == theirs.sum() > 0  # what happened stays

    shown = register.scenario().history
    assert gone not in set(shown["volunteer_id"])
    visits = set(zip(tiny.history["week"], tiny.history["household_id"], strict=True))
    assert set(zip(shown["week"], shown["household_id"], strict=True)) == visits
    unnamed = shown[shown["volunteer_id"] == ""]
    assert set(zip(unnamed["week"], unnamed["household_id"], strict=True)) == set(zip(
        tiny.history.loc[theirs, "week"], tiny.history.loc[theirs, "household_id"],
        strict=True))
    with register.engine.connect() as conn:
        *_, due, last = monitoring_due(cycle.week_scenario(register, conn, W1), W1, None,
                                       params)
    assert list(due) == list(due_before)  # their visits still count for monitoring
    assert list(last.index) == list(last_before.index)
    left = (last_before == gone).to_numpy()
    assert (last[left] == "").all()  # … and give no continuity
    pd.testing.assert_series_equal(last[~left], last_before[~left])

    out = register.export(tmp_path / "exported")
    again = load_scenario(out)
    assert again.digest == register.scenario().digest
    assert register.import_scenario(again).total == 0  # its unnamed visits known already
    _same_as_validated(register, W1)
    tasks = cycle.open_week(register, W1).tasks
    assert len(tasks) and gone not in set(tasks["volunteer_id"])


@pytest.fixture
def busy_volunteer(store_url) -> tuple[Register, dict[str, pd.DataFrame], pd.DataFrame, str]:
    """A register (no history) with W1 open: its tables, the week's tasks, and the volunteer
    with the most visits in it."""
    tables = generate_scenario("tiny", 0)
    tables["history"] = tables["history"].iloc[:0]
    register = _register(store_url)
    register.import_scenario(Scenario.from_tables(tables))
    tasks = cycle.open_week(register, W1).tasks
    busy = tasks.loc[tasks["volunteer_id"] != "", "volunteer_id"].value_counts().index[0]
    return register, tables, tasks, busy


def _without(tables: dict[str, pd.DataFrame], *volunteers: str) -> Scenario:
    vols = tables["volunteers"]
    return Scenario.from_tables({**tables,
                                 "volunteers": vols[~vols["volunteer_id"].isin(volunteers)]})


def test_a_volunteer_with_tasks_in_an_open_week_cannot_leave_until_it_closes(busy_volunteer):
    """Dropping a volunteer the open week has tasks for is refused, dry or not, the volunteer
    listed with their tasks and the week; nothing is written. One with no task alone may
    leave, and so may one whose tasks were all recalled (their needs withdrawn)."""
    register, tables, tasks, busy = busy_volunteer
    idle = sorted(set(tables["volunteers"]["volunteer_id"]) - set(tasks["volunteer_id"]))[0]
    before = _register_checksum(register)
    n = int((tasks["volunteer_id"] == busy).sum())
    for dry_run in (True, False):
        with pytest.raises(ValidationError) as refused:
            register.import_scenario(_without(tables, busy, idle), dry_run=dry_run)
        problems = refused.value.problems
        assert [(p.table, p.code, p.row, p.column, p.value) for p in problems] == [
            ("volunteers", "open_tasks_left", None, "volunteer_id", busy)]
        assert problems[0].detail == {"tasks": str(n), "weeks": W1}
        assert problems[0].message_en == f"the volunteer has {n} open tasks in {W1}"
        assert problems[0].hint_zh.startswith("请先结束该周")
    assert _register_checksum(register) == before
    report = register.import_scenario(_without(tables, idle))
    assert report.changes["volunteers"].removed == [idle]
    served = tasks[tasks["volunteer_id"] != ""].groupby("volunteer_id")["need_id"]
    recalled = next(v for v, needs in served if v != busy and (needs != "").all())
    for need in tasks.loc[tasks["volunteer_id"] == recalled, "need_id"].unique():
        register.withdraw_need(need)
    assert set(cycle.tasks(register, W1).set_index("task_id").loc[
        tasks.loc[tasks["volunteer_id"] == recalled, "task_id"], "status"]) == {"withdrawn"}
    report = register.import_scenario(_without(tables, idle, recalled))
    assert report.changes["volunteers"].removed == [recalled]


def test_a_volunteer_leaves_once_the_week_closes_and_the_next_week_opens(busy_volunteer,
                                                                         tmp_path):
    """The week's visits answered and the week closed (their visits in the history), the same
    import takes the volunteer out; the next week's scenario is the fully validated one, it
    opens, and the export validates with their visits named by nobody."""
    register, tables, tasks, busy = busy_volunteer
    cycle.record_answers(register, [cycle.Answer(t, "delivered", units_delivered=str(u))
                                    for t, u in zip(tasks["task_id"], tasks["units"],
                                                    strict=True)])
    cycle.close_week(register, W1)
    visited = set(tasks.loc[tasks["volunteer_id"] == busy, "household_id"])
    kept = register.table("history")
    assert set(kept.loc[kept["volunteer_id"] == busy, "household_id"]) == visited
    report = register.import_scenario(_without(tables, busy))
    assert report.changes["volunteers"].removed == [busy]
    assert (register.table("history")["volunteer_id"] == busy).sum() == len(visited)
    week = _same_as_validated(register, W2)
    assert busy not in set(week["history"]["volunteer_id"])
    assert cycle.open_week(register, W2).tasks["volunteer_id"].ne(busy).all()
    shown = load_scenario(register.export(tmp_path / "exported")).history
    unnamed = shown.loc[shown["volunteer_id"] == "", "household_id"]
    assert set(unnamed) == visited and busy not in set(shown["volunteer_id"])


def test_a_register_week_still_checks_its_own_cells_and_everything_with_pins(tmp_path, tiny):
    """What the week writes is checked as any scenario's cells (a quantity, whole units); a
    week handed pins is checked in full (a pin naming a need the week does not hold)."""
    register = _register(f"sqlite:///{tmp_path / 'r.sqlite'}")
    register.import_scenario(tiny)
    with register.engine.connect() as conn:
        tables = cycle.week_tables(register, conn, W1)
    hours = tiny.services.loc[tiny.services["unit"] == "hour", "service_id"]
    whole = tables["needs"].index[tables["needs"]["service_id"].isin(hours)][0]

    def problems(changed: dict[str, pd.DataFrame]) -> set[tuple[str, str]]:
        with pytest.raises(ValidationError) as raised:
            Scenario.from_register_week({**tables, **changed}, register.policy)
        return {(p.code, p.column) for p in raised.value.problems}

    needs = tables["needs"].copy()
    needs.loc[needs.index[needs.index != whole][0], "quantity"] = "0"
    needs.loc[whole, "quantity"] = "1.5"
    assert problems({"needs": needs}) == {("not_positive", "quantity"),
                                          ("not_whole", "quantity")}
    pins = pd.DataFrame({"need_id": ["N-none"], "offer_id": [tables["offers"]["offer_id"][0]],
                         "units": ["1"]})
    assert problems({"pins": pins}) == {("missing_reference", "need_id")}


# -- bad answers -----------------------------------------------------------------------------


@pytest.fixture
def opened(tmp_path, tiny):
    register = _register(f"sqlite:///{tmp_path / 's.sqlite'}")
    register.import_scenario(tiny)
    week = cycle.open_week(register, W1)
    return register, week.tasks


def test_bad_answers_are_listed_and_nothing_is_applied(opened):
    register, tasks = opened
    service = tasks[(tasks["kind"] == "service") & (tasks["units"] >= 2)].iloc[0]
    other = tasks[tasks["provider_id"] != service["provider_id"]].iloc[0]
    events = len(register.events())
    answers = [
        cycle.Answer("T-NOPE", "已完成", source="book", row=2),
        cycle.Answer(service["task_id"], "已完成", units_delivered="-1", source="book", row=3),
        cycle.Answer(service["task_id"], "delivered", units_delivered="nan", source="book",
                     row=4),
        cycle.Answer(service["task_id"], "已完成", units_delivered=str(service["units"] + 1),
                     source="book", row=5),
        cycle.Answer(service["task_id"], "已完成", answered_on="2030-01-01", source="book",
                     row=6),
        cycle.Answer(service["task_id"], "已完成", source="book", row=7, week=W2),
        cycle.Answer(other["task_id"], "已完成", source="book", row=8,
                     provider=service["provider_id"]),
        cycle.Answer(service["task_id"], "maybe", source="book", row=9),
    ]
    with pytest.raises(ValidationError) as err:
        cycle.record_answers(register, answers)
    codes = [(p.row, p.code) for p in err.value.problems]
    for expected in [(2, "unknown_task"), (3, "below_minimum"), (4, "not_a_number"),
                     (5, "too_many_units"), (6, "date_outside_week"), (7, "task_other_week"),
                     (8, "task_other_provider"), (9, "not_allowed")]:
        assert expected in codes
    assert len(register.events()) == events
    assert (cycle.tasks(register, W1)["status"] == "planned").all()


def test_a_status_cannot_go_backwards(opened):
    register, tasks = opened
    tid = tasks[tasks["kind"] == "service"]["task_id"].iat[0]
    cycle.record_answers(register, [cycle.Answer(tid, "delivered")])
    with pytest.raises(ValidationError) as err:
        cycle.record_answers(register, [cycle.Answer(tid, "accepted")])
    assert [p.code for p in err.value.problems] == ["status_not_allowed"]
    assert cycle.record_answers(register, [cycle.Answer(tid, "delivered")]).unchanged == 1


def test_a_closed_week_takes_no_answers_and_no_second_close(opened):
    register, tasks = opened
    cycle.close_week(register, W1)
    with pytest.raises(ValidationError) as err:
        cycle.record_answers(register, [cycle.Answer(tasks["task_id"].iat[0], "delivered")])
    assert "week_not_open" in [p.code for p in err.value.problems]
    with pytest.raises(cycle.CycleError):
        cycle.close_week(register, W1)
    with pytest.raises(cycle.CycleError):
        cycle.open_week(register, W1)


def test_a_failed_close_leaves_the_register_as_it_was_and_a_second_finishes(opened,
                                                                           monkeypatch):
    register, _tasks = opened

    def snapshot():
        with register.engine.connect() as conn:
            return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
                    for t in ("events", "register_rows", "tasks")} | {
                "states": register.need_states().sort_values("need_id").to_dict("records"),
                "weeks": cycle.weeks(register)["state"].tolist()}

    before = snapshot()
    calls = {"n": 0}
    real = cycle._add_history  # noqa: SLF001 - the test breaks the close half-way through

    def broken(*args, **kwargs):
        calls["n"] += 1
        raise RuntimeError("killed half-way")

    monkeypatch.setattr(cycle, "_add_history", broken)
    with pytest.raises(RuntimeError):
        cycle.close_week(register, W1)
    assert calls["n"] == 1 and snapshot() == before
    monkeypatch.setattr(cycle, "_add_history", real)
    closed = cycle.close_week(register, W1)
    assert closed.carried + closed.delivered > 0
    assert cycle.weeks(register)["state"].tolist() == ["closed"]


def test_a_file_imported_again_keeps_what_a_visit_found_unless_the_file_was_edited(
        opened, tiny, tmp_path):
    register, tasks = opened
    visit = tasks[tasks["kind"].isin(cycle.MONITORING_KINDS)].iloc[0]
    hid = visit["household_id"]
    row = tiny.households.set_index("household_id").loc[hid]
    worse = {c: "1" for c in ("d_income", "d_health", "d_social") if int(row[c]) == 0}
    assert worse  # (not vacuous: the visit changes the row)
    cycle.record_answers(register, [cycle.Answer(visit["task_id"], "delivered",
                                                 answered_on="2026-12-02", indicators=worse)])
    found = register.rows("households")[hid]
    assert list(register.colour_history(hid)["discovered_by"]) == ["import", "visit"]

    # The coordinator's file again, unedited: what the visit found stands.
    report = register.import_scenario(tiny)
    assert report.changes["households"].total == 0
    assert register.rows("households")[hid] == found
    assert list(register.colour_history(hid)["discovered_by"]) == ["import", "visit"]

    # The file edited since (the household's size): the file's row is the household's.
    tables = {k: v.copy() for k, v in tiny.tables.items()}
    households = tables["households"]
    households.loc[households["household_id"] == hid, "size"] += 1
    report = register.import_scenario(Scenario.from_tables(tables))
    assert report.changes["households"].changed == [hid]
    assert json.loads(register.rows("households")[hid])["size"] == str(int(row["size"]) + 1)
    assert list(register.colour_history(hid)["discovered_by"]) == ["import", "visit", "import"]
    # … and that file imported once more is no change.
    assert register.import_scenario(Scenario.from_tables(tables)).total == 0

    # An export of the register after another visit, imported back after a later one: the
    # row the export holds was the register's once, so the later visit stands.
    register.assess({"household_id": hid, "d_assets": "1"}, discovered_by="visit")
    register.export(tmp_path / "out")
    register.assess({"household_id": hid, "d_education": "1"}, discovered_by="visit")
    assessed = register.rows("households")[hid]
    assert register.import_scenario(load_scenario(tmp_path / "out")).changes[
        "households"].total == 0
    assert register.rows("households")[hid] == assessed


def test_a_household_row_the_register_keeps_is_validated_with_the_file(tmp_path, tiny):
    register = _register(f"sqlite:///{tmp_path / 's.sqlite'}")
    register.import_scenario(tiny)
    households = tiny.households
    station = households["station_id"].iat[-1]
    hid = households.loc[households["station_id"] != station, "household_id"].iat[0]
    register.assess({"household_id": hid, "station_id": station}, discovered_by="grid_worker")
    # The coordinator's file, the household unedited, closes the station it was moved to.
    tables = {k: v.copy() for k, v in tiny.tables.items()}
    stay = tables["centres"]["centre_id"][
        (tables["centres"]["level"] == "station") & (tables["centres"]["centre_id"] != station)
        & tables["centres"]["parent_id"].eq(
            tables["centres"].set_index("centre_id").loc[station, "parent_id"])].iat[0]
    tables["centres"] = tables["centres"][tables["centres"]["centre_id"] != station]
    for name, column in (("households", "station_id"), ("volunteers", "station_id"),
                         ("providers", "centre_id"), ("offers", "coverage_centre_id"),
                         ("funds", "centre_id")):
        tables[name].loc[tables[name][column] == station, column] = stay
    rows = register.rows("households")
    with pytest.raises(ValidationError) as err:
        register.import_scenario(Scenario.from_tables(tables))
    assert ("households", "missing_reference", "station_id", station) in {
        (p.table, p.code, p.column, p.value) for p in err.value.problems}
    assert register.rows("households") == rows  # nothing applied


def test_visit_results_only_on_monitoring_visits(opened):
    register, tasks = opened
    tid = tasks[tasks["kind"] == "service"]["task_id"].iat[0]
    with pytest.raises(ValidationError) as err:
        cycle.record_answers(register, [cycle.Answer(tid, "delivered",
                                                     indicators={"d_health": "1"})])
    assert [p.code for p in err.value.problems] == ["not_a_visit"]


def test_units_on_an_answer_that_delivered_nothing_are_refused(opened):
    """Units on not delivered, declined or accepted would be kept and then ignored by the
    ledger and the close (the need owed in full again): refused, naming the field."""
    register, tasks = opened
    service = tasks[(tasks["kind"] == "service") & (tasks["units"] >= 2)]
    answers = [cycle.Answer(tid, status, units_delivered="1", reason=reason, row=row)
               for row, (tid, status, reason) in enumerate(zip(
                   service["task_id"].iloc[:3], ["not_delivered", "declined", "accepted"],
                   ["other", "refused", ""], strict=True), start=2)]
    with pytest.raises(ValidationError) as err:
        cycle.record_answers(register, answers)
    found = [(p.row, p.code, p.column, p.value) for p in err.value.problems]
    assert found == [(row, "units_not_delivered", "units_delivered", "1") for row in (2, 3, 4)]
    assert "已完成 delivered" in err.value.problems[0].hint_zh
    assert (cycle.tasks(register, W1)["status"] == "planned").all()
    # Nothing delivered said as 0 (or left empty) is an answer, and a partial delivery too.
    first, second = service["task_id"].iloc[:2]
    report = cycle.record_answers(register, [
        cycle.Answer(first, "not_delivered", units_delivered="0", reason="other"),
        cycle.Answer(second, "delivered", units_delivered="1")])
    assert report.changed == 2


def test_what_a_visit_observed_is_refused_on_a_visit_not_made(opened):
    register, tasks = opened
    visit = tasks[tasks["kind"].isin(cycle.MONITORING_KINDS)]["task_id"].iat[0]
    with pytest.raises(ValidationError) as err:
        cycle.record_answers(register, [cycle.Answer(
            visit, "not_delivered", indicators={"d_health": "1"}, new_needs="counselling:2")])
    assert [(p.code, p.column) for p in err.value.problems] == [
        ("visit_not_made", "indicators"), ("visit_not_made", "new_needs")]
    assert err.value.problems[1].value == "counselling:2"
    # A missed visit with its note alone is recorded.
    report = cycle.record_answers(register, [cycle.Answer(visit, "not_delivered",
                                                          note="nobody home")])
    assert (report.changed, report.visits, report.needs_raised) == (1, 1, 0)


def _funded_need_tasks(tasks: pd.DataFrame) -> list[pd.DataFrame]:
    """Per need with funded service tasks of two units or more, its tasks (one need each)."""
    funded = tasks[(tasks["kind"] == "service") & (tasks["fund_id"] != "")
                   & (tasks["cost"] > 0) & (tasks["units"] >= 2)]
    return [part for _need, part in funded.groupby("need_id", sort=True)]


def test_withdrawing_a_need_recalls_its_tasks_not_yet_answered(opened):
    """The recalled task leaves the unanswered (the provider's list, the ledger's commitment
    and outstanding money), an answer to it is refused naming the withdrawn need, and the
    close neither settles it as not delivered nor carries the need."""
    register, tasks = opened
    mine = _funded_need_tasks(tasks)[0]
    need, fund = mine["need_id"].iat[0], mine["fund_id"].iat[0]
    first = mine["task_id"].iat[0]
    cycle.record_answers(register, [cycle.Answer(first, "accepted")])
    by_week_before, before = cycle.fund_ledger(register)
    withdrawal = register.withdraw_need(need)
    assert withdrawal.recalled == sorted(mine["task_id"]) and withdrawal.delivered == []
    after = cycle.tasks(register, W1).set_index("task_id")
    assert (after.loc[mine["task_id"], "status"] == "withdrawn").all()
    by_week, balances = cycle.fund_ledger(register)
    outstanding = before.set_index("fund_id")["outstanding"] \
        - balances.set_index("fund_id")["outstanding"]
    assert outstanding[fund] == pytest.approx(mine["cost"].sum(), abs=0.01)
    committed = (by_week_before.loc[by_week_before["fund_id"] == fund, "committed"].sum()
                 - by_week.loc[by_week["fund_id"] == fund, "committed"].sum())
    assert committed == pytest.approx(mine["cost"].iat[0], abs=0.01)  # the accepted task's
    assert not (cycle.tasks(register, W1, status="accepted")["task_id"] == first).any()
    with pytest.raises(ValidationError) as err:
        cycle.record_answers(register, [cycle.Answer(first, "delivered")])
    problem, = err.value.problems
    assert (problem.code, problem.column, problem.value) == ("task_withdrawn", "task_id", first)
    assert need in problem.message_zh and need in problem.message_en
    # A workbook published before the recall, its row sent back as it was (accepted, nothing
    # delivered), with another task's answer: that row is skipped, the other recorded.
    other = tasks[(tasks["status"] == "planned") & ~tasks["need_id"].isin([need])
                  & (tasks["kind"] == "service")]["task_id"].iat[0]
    recorded = cycle.record_answers(register, [cycle.Answer(first, "accepted", source="book",
                                                            row=2),
                                               cycle.Answer(other, "accepted", source="book",
                                                            row=3)])
    assert recorded.changed == 1
    assert cycle.tasks(register, W1).set_index("task_id").loc[
        [first, other], "status"].tolist() == ["withdrawn", "accepted"]
    kinds = register.events()["kind"]
    assert (kinds == "task.withdraw").sum() == len(mine)
    unanswered = int(cycle.tasks(register, W1)["status"].isin(cycle.UNANSWERED).sum())
    closed = cycle.close_week(register, W1)
    assert closed.unanswered == unanswered
    assert (cycle.tasks(register, W1).set_index("task_id").loc[mine["task_id"], "status"]
            == "withdrawn").all()
    state = register.need_states().set_index("need_id").loc[need]
    assert (state["state"], state["close_reason"]) == ("closed", "withdrawn")


def test_a_need_delivered_in_part_is_withdrawn_for_what_is_left(opened):
    register, tasks = opened
    mine = _funded_need_tasks(tasks)[0]
    need, first = mine["need_id"].iat[0], mine["task_id"].iat[0]
    cycle.record_answers(register, [cycle.Answer(first, "delivered", units_delivered="1")])
    withdrawal = register.withdraw_need(need)
    assert withdrawal.delivered == [first]
    assert withdrawal.recalled == sorted(set(mine["task_id"]) - {first})
    closed = cycle.close_week(register, W1)
    assert cycle.tasks(register, W1).set_index("task_id").at[first, "status"] == "delivered"
    state = register.need_states().set_index("need_id").loc[need]
    assert (state["state"], state["close_reason"]) == ("closed", "withdrawn")
    assert closed.spent > 0


def test_a_need_delivered_in_full_this_week_is_not_withdrawn(opened):
    register, tasks = opened
    remaining = register.need_states().set_index("need_id")["remaining"]
    mine = next(part for part in _funded_need_tasks(tasks)  # a need planned in full
                if part["units"].sum() >= remaining[part["need_id"].iat[0]] - 1e-9)
    need = mine["need_id"].iat[0]
    cycle.record_answers(register, [cycle.Answer(t, "delivered") for t in mine["task_id"]])
    with pytest.raises(RegisterError, match="delivered in full"):
        register.withdraw_need(need)
    assert register.need_states().set_index("need_id").at[need, "state"] == "allocated"
    cycle.close_week(register, W1)
    state = register.need_states().set_index("need_id").loc[need]
    assert (state["state"], state["close_reason"]) == ("closed", "delivered")


def test_workbook_text_is_never_a_formula(opened, tmp_path):
    register, _tasks = opened
    for path in taskbook.publish_week(register, W1, tmp_path / "pub"):
        wb = load_workbook(path)
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                assert all(c.data_type != "f" for c in row)
        ws = wb["任务 tasks"]
        assert ws.freeze_panes == "A2" and ws.auto_filter.ref
        assert int(ws.page_setup.paperSize) == 9 and ws.print_title_rows == "$1:$1"  # A4
        lists = ws.data_validations.dataValidation  # the in-cell lists …
        assert lists and not any(dv.showErrorMessage for dv in lists)  # … suggest, not refuse


# -- two centres at once ---------------------------------------------------------------------


def test_two_streets_opening_the_same_week_at_once_never_share_supply_twice(store_url, tmp_path):
    # Scarce shared supply: the city's offers and funds are cut to a fifth, so both streets
    # want more of them than there is.
    tables = generate_scenario("tiny", 1)
    tables["offers"]["capacity"] = np.ceil(tables["offers"]["capacity"] / 5)
    tables["funds"]["budget"] = (tables["funds"]["budget"] / 5).round(2)
    scenario = Scenario.from_tables(tables)
    register = _register(store_url)
    register.import_scenario(scenario)
    streets = scenario.centres.loc[scenario.centres["level"] == "street", "centre_id"].tolist()
    assert len(streets) >= 2
    procs = [subprocess.Popen([sys.executable, "-m", "wulian.api.cli", "week", "open", W1,
                               "--centre", s, "--store", store_url],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for s in streets[:2]]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    opened = cycle.weeks(register)
    assert sorted(opened["centre"]) == sorted(streets[:2])
    assert (opened["state"] == "open").all()
    tasks = cycle.tasks(register, W1)
    assert len(tasks)  # (the street that waited may find the shared supply all taken)
    used = tasks[tasks["offer_id"] != ""].groupby("offer_id")["units"].sum()
    capacity = scenario.offers.set_index("offer_id")["capacity"]
    assert (used <= capacity.reindex(used.index) + 1e-6).all()
    money = tasks[tasks["fund_id"] != ""].groupby("fund_id")["cost"].sum()
    budget = scenario.funds.set_index("fund_id")["budget"]
    assert (money <= budget.reindex(money.index) + 0.01).all()
    hours = tasks[tasks["volunteer_id"] != ""].groupby("volunteer_id")["hours"].sum()
    assert (hours <= scenario.volunteers.set_index("volunteer_id")["max_hours"]
            .reindex(hours.index) + 1e-6).all()
    slots = tasks[tasks["volunteer_id"] != ""].groupby(["volunteer_id", "slot"]).size()
    assert (slots == 1).all()


# -- the simulator ---------------------------------------------------------------------------


def test_the_simulator_is_seeded_and_plays_the_loop(tmp_path, tiny):
    played = []
    for run in range(2):
        register = _register(f"sqlite:///{tmp_path / f'sim{run}.sqlite'}", "simulator")
        register.import_scenario(tiny)
        weeks = simulate(register, 2, seed=5, out=tmp_path / f"books{run}")
        played.append([(w.week, w.tasks, w.declined, w.delivered, w.partial, w.worse,
                        w.needs_arrived, w.carried, w.spent) for w in weeks])
        assert [w.week for w in weeks] == [W1, W2]
        assert all(w.workbooks > 0 for w in weeks)
        assert cycle.weeks(register)["state"].tolist() == ["closed", "closed"]
    assert played[0] == played[1]


def test_a_city_weeks_visit_results_are_looked_up_on_both_backends(store_url):
    """Recording a city week's visits first looks up which results are kept already: 70,000
    task ids are more than PostgreSQL takes in one statement (65,535 parameters), so they are
    asked for in chunks (seen in a 13-week city quarter on PostgreSQL)."""
    from wulian.planning.db import bulk_insert

    register = _register(store_url)
    ids = [f"T2026W50-ALL-{i:06d}" for i in range(70_000)]
    with register.engine.begin() as conn:
        bulk_insert(conn, cycle.VISIT_RESULTS, [
            {"task_id": t, "household_id": "H1", "outcome": "done", "visited_on": "2026-12-08",
             "indicators": "{}", "new_needs": "", "note": "", "recorded_at": "x"}
            for t in ids[::2]])
    with register.engine.connect() as conn:
        assert cycle.results_kept(conn, ids) == set(ids[::2])


def _watched(register: Register) -> pd.DataFrame:
    """The watch kept, checked against the one derived from scratch, and every need's copy of
    its household's station and colour against the watch ('' for a household not watched)."""
    n = NEED_STATES.c
    with register.engine.connect() as conn:
        kept = pd.read_sql(sa.select(WATCH).order_by(WATCH.c.household_id), conn)
        again = watch_from_scratch(conn).sort_values("household_id", ignore_index=True)
        needs = pd.read_sql(sa.select(n.need_id, n.household_id, n.station_id, n.tier)
                            .order_by(n.need_id), conn)
    pd.testing.assert_frame_equal(kept, again, check_dtype=False)
    homes = kept.set_index("household_id")[["station_id", "tier"]]
    expected = homes.reindex(needs["household_id"]).fillna("").reset_index(drop=True)
    assert len(needs)
    pd.testing.assert_frame_equal(needs[["station_id", "tier"]], expected)
    return kept


def test_the_household_watch_is_kept_as_the_register_changes(store_url, tiny):
    """What the alerts read per household (station, last two colours, last visit) is kept as
    each change is written; after imports, played weeks, single records and a station moved,
    it is what the register's rows, assessments and history give."""
    register = Register(RunStore(store_url), Actor("tester"), tiny.policy)
    register.import_scenario(tiny)
    first = _watched(register)
    assert len(first) == len(tiny.households) and (first["tier"] != "").all()
    simulate(register, 2, seed=3)
    played = _watched(register)
    assert (played["tier_before"] != "").any() and (played["last_visit"] > "2026-W00").any()
    hid = played["household_id"].iat[-1]
    register.assess({"household_id": hid, "d_health": "1"})
    register.assess({"household_id": hid, "d_health": "0"})
    tables = register.tables()
    homes = tables["households"]
    other = sorted(set(homes["station_id"]) - {homes.at[0, "station_id"]})[0]
    homes.loc[0, "station_id"] = other  # moved to another station
    needs = tables["needs"]  # a need moved to a household of another station and colour
    need, home = needs.at[0, "need_id"], needs.at[0, "household_id"]
    far = homes[(homes["station_id"] != homes.set_index("household_id").at[home, "station_id"])
                & (homes["tier"] != homes.set_index("household_id").at[home, "tier"])]
    needs.loc[0, "household_id"] = far["household_id"].iat[0]
    register.import_scenario(Scenario.from_tables(tables, register.policy))
    after = _watched(register).set_index("household_id")
    assert after.at[homes.at[0, "household_id"], "station_id"] == other
    moved = register.need_states().set_index("need_id")
    assert moved.at[need, "household_id"] == far["household_id"].iat[0]
    assert after.at[hid, "version"] == played.set_index("household_id").at[hid, "version"] + 2
    register.engine.dispose()


def test_a_household_assessed_twice_in_one_transaction_keeps_the_first_colour_before(
        tmp_path, tiny):
    register = Register(RunStore(f"sqlite:///{tmp_path / 'twice.sqlite'}"), Actor("tester"),
                        tiny.policy)
    register.import_scenario(tiny)
    homes = tiny.households
    hid = homes.loc[homes["tier"] == "red", "household_id"].iat[0]
    columns = ("d_income", "d_education", "d_health", "d_housing", "d_assets", "d_capability",
               "d_social")
    best = {**dict.fromkeys(columns, "0"), "categories": "", "tier": ""}
    worst = {**dict.fromkeys(columns, "1"), "categories": "", "tier": ""}
    row = json.loads(register.rows("households", None, [hid])[hid])
    with register.engine.begin() as conn:
        events = Events(conn, register.actor)
        for change in (best, worst):  # red, then at its best, then at its worst
            typed = register.valid_rows(conn, "households", {hid: {**row, **change}})
            register.write_assessments(conn, events, typed, date(2026, 12, 7),
                                       assessor="tester", discovered_by="visit")
        events.flush()
    kept = _watched(register).set_index("household_id")
    history = register.colour_history(hid)
    first, second, third = history["tier"]
    assert first != second != third  # (the one before is told from the one kept before)
    assert (kept.at[hid, "version"], kept.at[hid, "tier_before"], kept.at[hid, "tier"]) == \
        (3, second, third)
    register.engine.dispose()


def test_a_need_raised_while_its_household_is_reassessed_carries_the_colour_it_ends_with(
        store_url, tiny):
    """A household's new assessment not yet committed while a need is raised for it in
    another transaction (PostgreSQL reads what is committed; the API serves requests in
    threads): the need ends with the colour the household ends with, not the one before."""
    register = Register(RunStore(store_url), Actor("tester"), tiny.policy)
    register.import_scenario(tiny)
    homes = tiny.households
    hid = homes.loc[homes["tier"] == "green", "household_id"].iat[0]
    columns = ("d_income", "d_education", "d_health", "d_housing", "d_assets", "d_capability",
               "d_social")
    worst = {**json.loads(register.rows("households", None, [hid])[hid]),
             **dict.fromkeys(columns, "1"), "categories": "", "tier": ""}
    service = tiny.needs["service_id"].iat[0]
    raised = threading.Thread(target=register.add_need, args=(
        {"household_id": hid, "service_id": service, "quantity": "1", "week": "2026-W49"},))
    with register.engine.connect() as conn:
        first = conn.begin()
        events = Events(conn, register.actor)
        typed = register.valid_rows(conn, "households", {hid: worst})
        register.write_assessments(conn, events, typed, date(2026, 12, 7), assessor="tester",
                                   discovered_by="visit")
        events.flush()
        raised.start()
        raised.join(timeout=1.0)  # (it waits for this transaction, or it was quicker)
        first.commit()
    raised.join()
    kept = _watched(register).set_index("household_id")  # every need's copies = the watch
    assert kept.at[hid, "tier"] == "red"
    register.engine.dispose()


def test_the_watch_is_filled_at_upgrade_and_an_upgrade_stopped_half_way_runs_again(tmp_path,
                                                                                     tiny):
    """A register made before revision 0005 gets its household watch at ``wulian db upgrade``,
    one made before 0006 its needs' copies of their household's station and colour;
    on SQLite a table or index made is kept even when the upgrade stops after it, so running
    the upgrade again must finish the job, not fail on what is there."""
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    register = Register(RunStore(url), Actor("tester"), tiny.policy)
    register.import_scenario(tiny)
    simulate(register, 1, seed=2)
    expected = _watched(register)

    def back_to(version: str, done: bool) -> None:
        with register.engine.begin() as conn:
            if not done:  # as the revision before left it: the waiting index of 0005 or none
                conn.execute(sa.text("DROP INDEX ix_need_states_waiting"))
                conn.execute(sa.text("ALTER TABLE need_states DROP COLUMN station_id"))
                conn.execute(sa.text("ALTER TABLE need_states DROP COLUMN tier"))
                if version == "0004":
                    conn.execute(sa.text("DROP TABLE household_watch"))
                    conn.execute(sa.text("CREATE INDEX ix_need_states_state ON need_states "
                                         "(state)"))
                else:
                    conn.execute(sa.text("CREATE INDEX ix_need_states_waiting ON need_states "
                                         "(state, week_raised, household_id, service_id)"))
            elif version == "0004":  # stopped after 0005's table and index, before its watch
                conn.execute(WATCH.delete())
            else:  # stopped after 0006's columns, before they were filled and indexed
                conn.execute(sa.text("DROP INDEX ix_need_states_waiting"))
                conn.execute(sa.text("UPDATE need_states SET station_id = '', tier = ''"))
            conn.execute(sa.text(f"UPDATE alembic_version SET version_num = '{version}'"))

    for version, done in (("0004", False), ("0004", True), ("0005", False), ("0005", True)):
        back_to(version, done)
        assert main(["db", "upgrade", "--store", url]) == 0
        assert revision(register.engine) == head()
        pd.testing.assert_frame_equal(_watched(register), expected)
        with register.engine.connect() as conn:
            index = {i["name"]: i["column_names"]
                     for i in sa.inspect(conn).get_indexes("need_states")}
        assert index["ix_need_states_waiting"][:4] == ["state", "tier", "station_id",
                                                       "service_id"]
    register.engine.dispose()


def test_an_upgrade_from_0007_lays_the_waiting_index_out_by_colour_once(tmp_path, tiny):
    """Revision 0008 puts the colour before the station in the waiting needs' index (the
    alerts' `unmet` rule reads its colours' needs alone); an upgrade stopped after dropping the
    old index, or after making the new one, runs again and leaves the same index."""
    url = f"sqlite:///{tmp_path / 'colour.sqlite'}"
    register = Register(RunStore(url), Actor("tester"), tiny.policy)
    register.import_scenario(tiny)
    for left in ("0007's index", "none", "0008's index"):
        with register.engine.begin() as conn:
            if left != "0008's index":
                conn.execute(sa.text("DROP INDEX ix_need_states_waiting"))
            if left == "0007's index":
                conn.execute(sa.text(
                    "CREATE INDEX ix_need_states_waiting ON need_states (state, station_id, "
                    "service_id, week_raised, tier, household_id, need_id)"))
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0007'"))
        assert main(["db", "upgrade", "--store", url]) == 0
        assert revision(register.engine) == head()
        with register.engine.connect() as conn:
            index = {i["name"]: i["column_names"]
                     for i in sa.inspect(conn).get_indexes("need_states")}
        assert index["ix_need_states_waiting"] == ["state", "tier", "station_id", "service_id",
                                                   "week_raised", "household_id", "need_id"]
    register.engine.dispose()


def test_the_closed_needs_index_serves_the_close_and_an_upgrade_makes_it_once(tmp_path, tiny):
    """Revision 0007 indexes the closed needs by when they closed, so that a close finds the
    needs closed since its week opened without reading every need ever closed (a grown
    register's million); an upgrade stopped after making it runs again, and one stopped
    before makes it."""
    url = f"sqlite:///{tmp_path / 'closed.sqlite'}"
    register = Register(RunStore(url), Actor("tester"), tiny.policy)
    register.import_scenario(tiny)
    since = ("SELECT need_states.need_id FROM need_states WHERE need_states.state = 'closed' "
             "AND need_states.updated_at >= '2026-01-01'")  # (the close's query)
    for made in (True, False):
        with register.engine.begin() as conn:
            if not made:
                conn.execute(sa.text("DROP INDEX ix_need_states_closed"))
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0006'"))
        assert main(["db", "upgrade", "--store", url]) == 0
        assert revision(register.engine) == head()
        with register.engine.connect() as conn:
            plan = " ".join(str(r) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {since}"))
        assert "ix_need_states_closed" in plan
    register.engine.dispose()


def test_a_weeks_open_makes_no_automatic_garbage_collection_pass(tmp_path, tiny):
    """The open pauses Python's automatic cyclic collector (its passes over a city's live
    objects cost seconds of the open and freed next to nothing) and turns it back on after."""
    register = _register(f"sqlite:///{tmp_path / 's.sqlite'}")
    register.import_scenario(tiny)
    passes: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(count)
    try:
        opened = cycle.open_week(register, W1)
    finally:
        gc.callbacks.remove(count)
    assert len(opened.tasks) > 0
    # (at most the one pass the first allocation after the open may start, the collector
    # back on with the open's objects counted; without the pause the tiny open makes about twenty)
    assert len(passes) <= 1, passes
    assert gc.isenabled()


def test_the_database_writes_a_rows_json_text_as_row_json_does(store_url):
    """The open's task events are made by the database from the task rows: their JSON text is
    row_json's to the character — text escaped as pandas escapes it (a slash too), numbers as
    its ten decimals with the trailing zeros cut — on both backends."""
    texts = ["T-1", "a/b", 'say "hi"', "back\\slash", "中文·志愿者", "tab\there", ""]
    numbers = [0.0, 1.0, 0.5, 1 / 3, 2.675, 12345.67, 99999.99, 1e-5, 50000.0, 0.1 + 0.2]
    frame = pd.DataFrame({"id": range(len(texts) * len(numbers)),
                          "label": [t for t in texts for _ in numbers],
                          "amount": numbers * len(texts),
                          "name": [t for _ in numbers for t in texts]})
    table = sa.Table("json_rows", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("label", sa.String(32)), sa.Column("amount", sa.Float),
                     sa.Column("name", sa.String(32)))
    engine = sa.create_engine(store_url)
    try:
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            bulk_insert(conn, table, frame)
            made = conn.execute(sa.select(row_json_sql(conn, [
                table.c.amount, table.c.label, table.c.name])).order_by(table.c.id)).scalars()
            assert list(made) == row_json(frame[["amount", "label", "name"]])
    finally:
        engine.dispose()


@pytest.mark.parametrize("money", [1, 1000])
def test_a_weeks_open_writes_each_task_its_event_and_its_needs_state(store_url, money):
    """The week's open event, then one add event per task in the order of their ids holding
    the task's row as row_json writes it; every need a task serves allocated, no other. With
    every amount of money a thousand times larger, costs of hundreds of thousands of yuan
    whose text the database would write otherwise than row_json (review, session 18:
    709510.43 against pandas' 709510.4300000001) are written by row_json itself."""
    tables = generate_scenario("tiny", 0)
    if money > 1:  # yuan needs of hundreds of thousands with cents, and the supply for them
        services = tables["services"]
        yuan = services.loc[services["unit"] == "yuan", "service_id"]
        needs, offers, funds = tables["needs"], tables["offers"], tables["funds"]
        asked = needs["service_id"].isin(yuan)
        needs.loc[asked, "quantity"] = (pd.to_numeric(needs.loc[asked, "quantity"]) * money
                                        + 0.43).round(2)
        given = offers["service_id"].isin(yuan)
        for column in ("capacity", "max_per_household"):
            offers.loc[given, column] = pd.to_numeric(offers.loc[given, column]) * money
        for column in ("budget", "max_per_household"):
            funds[column] = pd.to_numeric(funds[column]) * money
    register = _register(store_url)
    register.import_scenario(Scenario.from_tables(tables))
    opened = cycle.open_week(register, W1)
    tasks = opened.tasks
    assert (tasks[["cost", "units"]].max().max() >= cycle.SQL_JSON_BELOW) == (money > 1)
    events = register.events()
    events = events[events["kind"].isin(["week.open", "task.add"])].sort_values("event_id")
    assert events["kind"].tolist() == ["week.open"] + ["task.add"] * len(tasks)
    assert json.loads(events["after"].iloc[0]) == {
        "run_id": opened.run_id, "tasks": len(tasks),
        "needs_allocated": tasks.loc[tasks["need_id"] != "", "need_id"].nunique()}
    added = events.iloc[1:]
    assert added["subject"].tolist() == [f"tasks:{t}" for t in sorted(tasks["task_id"])]
    assert added["before"].isna().all()
    in_order = tasks.sort_values("task_id")
    assert added["after"].tolist() == row_json(in_order[[
        "cost", "fund_id", "kind", "need_id", "provider_id", "units", "volunteer_id"]])
    states = register.need_states()
    allocated = set(states.loc[states["state"] == "allocated", "need_id"])
    assert allocated == set(tasks["need_id"]) - {""}
    assert tasks["need_id"].ne("").any() and (tasks["need_id"] == "").any()


def test_an_upgrade_from_0008_keeps_the_tasks_and_their_status_reads_stay_right(store_url,
                                                                               tiny):
    """Revision 0009 drops the tasks' status index and, on PostgreSQL, leaves room in their
    pages (a fillfactor), so that answering and settling a task rewrite its row in place; an
    upgrade from 0008 keeps every task as it was (run twice: a stopped one runs again), and
    the reads by status (the API's and the CLI's task lists) give what they gave."""
    register = _register(store_url)
    register.import_scenario(tiny)
    opened = cycle.open_week(register, W1).tasks
    some = opened["task_id"].iloc[:3].tolist()
    cycle.record_answers(register, [cycle.Answer(some[0], "delivered"),
                                    cycle.Answer(some[1], "accepted")])
    postgres = store_url.startswith("postgresql")
    kept = importlib.import_module(
        "wulian.planning.migrations.versions.0009_tasks_settled_in_place").TASKS_FILLFACTOR

    def fillfactor() -> str | None:
        with register.engine.connect() as conn:
            options = conn.execute(sa.text(
                "SELECT reloptions FROM pg_class WHERE relname = 'tasks'")).scalar()
        return next((o for o in options or [] if o.startswith("fillfactor=")), None)

    before = cycle.tasks(register)
    for left in ("0008's index", "none"):
        with register.engine.begin() as conn:
            if left == "0008's index":
                conn.execute(sa.text("CREATE INDEX ix_tasks_status ON tasks (status)"))
                if postgres:
                    conn.execute(sa.text("ALTER TABLE tasks RESET (fillfactor)"))
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0008'"))
        assert main(["db", "upgrade", "--store", store_url]) == 0
        assert revision(register.engine) == head()
        with register.engine.connect() as conn:
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("tasks")}
        assert "ix_tasks_status" not in indexes and "ix_tasks_week" in indexes
        if postgres:
            assert fillfactor() == f"fillfactor={kept}"
        pd.testing.assert_frame_equal(cycle.tasks(register), before)
    for status in ("planned", "accepted", "delivered"):
        expected = before[before["status"] == status].reset_index(drop=True)
        assert len(expected)
        pd.testing.assert_frame_equal(cycle.tasks(register, status=status), expected)
        pd.testing.assert_frame_equal(cycle.tasks(register, W1, status=status), expected)
    # The close settles the rest in place: each with its event, the answered ones untouched.
    closed = cycle.close_week(register, W1)
    after = cycle.tasks(register).set_index("task_id")
    live = before.loc[before["status"].isin(["planned", "accepted"]), "task_id"]
    assert closed.unanswered == len(live) == len(before) - 1
    assert (after.loc[live, "status"] == "not_delivered").all()
    assert (after.loc[live, "reason"] == "no_answer").all()
    assert after.loc[some[0], "status"] == "delivered"
    settle = register.events(kind="task.settle")
    assert settle["subject"].tolist() == sorted("tasks:" + live)  # (written in key order)
    assert len(cycle.tasks(register, status="not_delivered")) == len(live)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_decomposed_week_stores_what_its_allocation_and_matching_give(tmp_path, workers):
    """A week whose allocation is decomposed (district by district) keeps exactly the tasks,
    levels and bounds that the allocation and then the matching, run alone on the same
    snapshot, give — here with no volunteer-pool allocation at all, so no visit has a fund
    (the open once failed there: pandas would not fill a float column with text). With two
    workers the open matches in a thread beside the bounds, in the allocation's pool."""
    from scenario_factory import random_scenario

    from wulian.optimizer.allocation import AllocationParams
    from wulian.planning.allocate import run_allocation
    from wulian.planning.match import run_matching

    seed = next(s for s in range(30)
                if random_scenario(s)["centres"]["level"].eq("district").sum() > 1)
    tables = random_scenario(seed)
    tables["needs"] = tables["needs"].assign(week=W1)
    register = _register(f"sqlite:///{tmp_path / 'parts.sqlite'}")
    register.import_scenario(Scenario.from_tables(tables))
    params = AllocationParams(decompose="always", workers=workers)
    match_params = MatchParams(part_workers=workers)
    opened = cycle.open_week(register, W1, params=params, match_params=match_params)
    assert opened.run.info["decomposition"]["parts"] > 1
    run = run_allocation(opened.scenario, week=W1, params=replace(params, workers=1))
    match = run_matching(opened.scenario, run, week=W1, params=replace(match_params,
                                                                       part_workers=1))
    alone = cycle.build_tasks(opened.scenario, W1, "*", run.tables["allocations"], match.visits)
    assert len(alone) and (alone["kind"] != "service").any()  # (visits were matched too)
    stored = cycle.tasks(register, W1)[alone.columns]
    pd.testing.assert_frame_equal(stored.sort_values("task_id").reset_index(drop=True), alone,
                                  check_dtype=False)
    kept = register.store.load(opened.run_id).info
    for name, level in run.info["levels"].items():
        same = {k: np.nan if kept["levels"][name][k] is None else kept["levels"][name][k]
                for k in ("value", "bound", "status")}  # (NaN is stored as null)
        assert same == pytest.approx({k: level[k] for k in same}, nan_ok=True), name
    assert np.isfinite(kept["levels"]["orange"]["bound"])
    assert kept["match"]["allocation_status"] == run.info["status"]


def test_a_week_closes_in_a_register_held_in_memory(tiny):
    """The close settles the unanswered tasks in a thread of its own, on the close's
    connection: an in-memory SQLite register (whose connection SQLite ties to the thread
    that made it unless told otherwise) closes its week as a file's does."""
    register = _register("sqlite://")
    register.import_scenario(tiny)
    opened = cycle.open_week(register, W1).tasks
    cycle.record_answers(register, [cycle.Answer(opened["task_id"].iloc[0], "delivered")])
    closed = cycle.close_week(register, W1)
    assert closed.unanswered == len(opened) - 1
    assert set(cycle.tasks(register, W1)["status"]) == {"delivered", "not_delivered"}
