"""Validation of a scenario's tables: every problem, with table, row, column, value and a hint.

Runs once, at the edge, on the text the readers return, and turns it into typed tables. All
checks are vectorised over whole columns; a Python loop runs only over the problems found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from wulian.contract import vocab
from wulian.contract.problems import Problem, closest, did_you_mean
from wulian.contract.schema import TABLES, Column, Table

WEEK_PATTERN = re.compile(r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$")
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "是", "t"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "否", "f", ""})
USER_COLUMN_PREFIX = "x_"  # columns users keep for themselves; carried, never validated


def _row(i: int) -> int:
    """Spreadsheet row number of data row ``i`` (the header is row 1)."""
    return int(i) + 2


def _cells(table: str, code: str, mask: np.ndarray | pd.Series, column: str,
           values: pd.Series, **detail: str) -> list[Problem]:
    """One problem per True in ``mask``."""
    rows = np.flatnonzero(np.asarray(mask, dtype=bool))
    vals = values.to_numpy()
    return [Problem(table, code, _row(i), column, str(vals[i]), dict(detail)) for i in rows]


def split_lists(text: pd.Series) -> pd.Series:
    """A ';'-list column exploded to one stripped element per row, keeping the row index."""
    parts = text.str.split(";").explode()
    parts = parts.str.strip()
    return parts[parts.notna() & (parts != "")]


def _not_allowed(table: str, column: str, rows: pd.Index, values: pd.Series,
                 allowed: Iterable[str]) -> list[Problem]:
    allowed = list(allowed)
    shown = ", ".join(allowed)
    hints: dict[str, dict[str, str]] = {}
    out = []
    for i, value in zip(rows, values, strict=True):
        if value not in hints:
            hints[value] = did_you_mean(value, allowed)
        out.append(Problem(table, "not_allowed", _row(i), column, value,
                           {"allowed": shown, **hints[value]}))
    return out


def with_codes(table: Table, text: pd.DataFrame) -> pd.DataFrame:
    """``text`` with headers written in Chinese renamed to their codes: the Chinese names of
    docs/formats.md (``中心编号`` for ``centre_id``), or both (``中心编号 centre_id``,
    ``centre_id 中心编号``), as a spreadsheet made by hand in Chengdu has them. A header that
    names a column twice, or a code already present, is left alone (and then reported)."""
    by_zh = {c.zh: c.name for c in table.columns}
    names = set(table.column_names)
    renames: dict[str, str] = {}
    for header in text.columns:
        if header in names or header.startswith(USER_COLUMN_PREFIX):
            continue
        code = by_zh.get(header)
        if code is None:
            parts = header.replace("/", " ").split()
            known = [p for p in parts if p in names]
            zh = [p for p in parts if p in by_zh]
            if len(known) == 1 and len(parts) == 2 and (not zh or by_zh[zh[0]] == known[0]):
                code = known[0]
        if code is not None and code not in text.columns and code not in renames.values():
            renames[header] = code
    return text.rename(columns=renames) if renames else text


def _check_columns(table: Table, text: pd.DataFrame) -> list[Problem]:
    names = set(table.column_names)
    unknown = [c for c in text.columns if c not in names and not c.startswith(USER_COLUMN_PREFIX)]
    # The contract's names the file lacks: computed once (once per unknown column made the
    # check quadratic in the columns of a table).
    absent = sorted(names - set(text.columns))
    problems = []
    for col in table.columns:
        if col.required and col.name not in text.columns:
            guess = closest(col.name, unknown)
            detail = {} if guess is None else {
                "close_zh": f";文件中有 `{guess}`,是否拼写有误?",
                "close_en": f"; the file has `{guess}`: is it misspelt?"}
            problems.append(Problem(table.name, "missing_column", column=col.name,
                                    detail=detail))
    for name in unknown:
        problems.append(Problem(table.name, "unknown_column", column=name,
                                detail=did_you_mean(name, absent)))
    return problems


def _parse_column(table: Table, col: Column, text: pd.Series) -> tuple[pd.Series, list[Problem]]:
    """Typed values of one column and the problems of its cells (types, bounds, codes)."""
    name = table.name
    # (Python text compared by numpy: pandas' own comparison took four times as long, 0.5 s
    # over a city's columns.)
    empty = text.to_numpy() == "" if text.dtype == object else (text == "").to_numpy()
    problems: list[Problem] = []
    if not col.nullable:
        problems += _cells(name, "missing_value", empty, col.name, text)

    if col.dtype in ("int", "float", "money"):
        numbers = pd.Series(_numbers(text.where(~empty)), index=text.index)
        # inf, nan and numbers past the float range (1e400 reads as inf) are no quantity, no
        # budget and no coordinate: a problem, never a value handed to a solver.
        # (A cell reads as nan only where no number was read: the text is looked at there.)
        unread = ~empty & numbers.isna().to_numpy()
        named_nan = np.zeros(len(text), dtype=bool)
        if unread.any():
            named_nan[unread] = text[unread].str.lower().str.lstrip("+-").eq("nan").to_numpy()
        infinite = ~empty & ~np.isfinite(numbers.to_numpy()) & (
            numbers.notna().to_numpy() | named_nan)
        bad = ~empty & numbers.isna().to_numpy() & ~infinite
        example = {"int": "3", "float": "2.5", "money": "1200.50"}[col.dtype]
        problems += _cells(name, "not_a_number", bad, col.name, text, example=example)
        problems += _cells(name, "not_finite", infinite, col.name, text)
        numbers = numbers.where(~infinite)
        ok = ~empty & ~bad & ~infinite
        values = numbers.to_numpy()
        if col.dtype == "int":
            problems += _cells(name, "not_whole", ok & (values != np.round(values)), col.name,
                               text, unit_zh="该列", unit_en="values of this column")
        if col.dtype == "money":
            cents = values * 100
            problems += _cells(name, "too_many_decimals",
                               ok & (np.abs(cents - np.round(cents)) > 1e-6), col.name, text)
        if col.positive:
            problems += _cells(name, "not_positive", ok & (values <= 0), col.name, text)
        if col.min is not None:
            problems += _cells(name, "below_minimum", ok & (values < col.min), col.name, text,
                               minimum=f"{col.min:g}")
        if col.allowed:
            allowed = np.array([float(a) for a in col.allowed])
            outside = ok & ~np.isin(values, allowed)
            rows = np.flatnonzero(outside)
            problems += _not_allowed(name, col.name, pd.Index(rows), text.iloc[rows],
                                     col.allowed)
        if empty.any() and col.default is not None:
            numbers = numbers.fillna(float(col.default))  # type: ignore[arg-type]
        if col.dtype == "int" and not numbers.isna().any() and not problems:
            numbers = numbers.astype(np.int64)  # whole numbers stay whole downstream
        return numbers, problems

    if col.dtype == "bool":
        lowered = text.str.lower()
        truth = lowered.isin(TRUE_WORDS)
        bad = ~(truth | lowered.isin(FALSE_WORDS))
        problems += _cells(name, "not_a_boolean", bad, col.name, text)
        return truth.astype(bool), problems

    if col.dtype == "week":
        # A city's weeks are a handful of distinct cells among a million: each matched once.
        codes, distinct = pd.factorize(text, use_na_sentinel=False)
        is_week = pd.Series(distinct).str.match(WEEK_PATTERN).fillna(False).to_numpy(bool)
        bad = ~empty & ~is_week[codes]
        problems += _cells(name, "not_a_week", bad, col.name, text)
        return text, problems

    if col.dtype == "list":
        # Lists repeat (a few hundred distinct skill or category sets among 400,000 cells):
        # each distinct cell is tidied and checked once.
        codes, distinct = pd.factorize(text.to_numpy(dtype=object), use_na_sentinel=False)
        tidy = {cell: ";".join(x.strip() for x in cell.split(";") if x.strip())
                for cell in distinct}
        if pd.api.types.infer_dtype(distinct, skipna=False) == "string":
            # pandas' text of each distinct tidy cell, taken by code (the same column as
            # pandas makes of the cells one by one, 0.1 s less on a city's households).
            normalised = pd.Series(pd.array(list(tidy.values()), dtype="str").take(codes),
                                   index=text.index)
        else:
            normalised = pd.Series(text.map(tidy).to_numpy(dtype=object), index=text.index)
        if col.allowed:
            allowed = set(col.allowed)
            wrong = [cell for cell, parts in tidy.items()
                     if parts and not allowed.issuperset(parts.split(";"))]
            if wrong:
                parts = split_lists(text[text.isin(wrong)])
                outside = parts[~parts.isin(col.allowed)]
                problems += _not_allowed(name, col.name, outside.index, outside, col.allowed)
        return normalised, problems

    # str
    if col.allowed:
        outside = text[~empty & ~text.isin(col.allowed).to_numpy()]
        problems += _not_allowed(name, col.name, outside.index, outside, col.allowed)
    return text, problems


# A column whose first cells hold fewer distinct values than this is parsed a distinct value
# at a time: pandas parses 300,000 cells of "0" and "1" in 0.06 s, factorising them takes 0.005.
FEW_DISTINCT = 100
_SAMPLE = 1000


def _numbers(cells: pd.Series) -> np.ndarray:
    """``pd.to_numeric(cells, errors="coerce")`` as floats. When the column's first cells
    repeat, parsed once per distinct cell: the parse is cell by cell, and the distinct cells
    (a missing one among them, when there is one) tell the parser the same as all of them
    (whether the numbers are whole, or past 64 bits), so the values are the same."""
    values = cells.to_numpy(dtype=object)
    if len(pd.unique(values[:_SAMPLE])) >= FEW_DISTINCT:
        return pd.to_numeric(values, errors="coerce").astype(float)
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    return pd.to_numeric(distinct, errors="coerce").astype(float)[codes]


def _check_table(table: Table, text: pd.DataFrame, *, ids_checked: bool = False
                 ) -> tuple[pd.DataFrame, list[Problem]]:
    """The table typed and the problems of its columns and cells (and of repeated ids, but
    when ``ids_checked``)."""
    problems = _check_columns(table, text)
    typed: dict[str, pd.Series] = {}
    n = len(text)
    for col in table.columns:
        if col.name in text.columns:
            typed[col.name], found = _parse_column(table, col, text[col.name])
            problems += found
        elif col.dtype in ("int", "float", "money"):
            fill = np.nan if col.default is None else float(col.default)  # type: ignore[arg-type]
            typed[col.name] = pd.Series(np.full(n, fill), index=text.index)
        elif col.dtype == "bool":
            typed[col.name] = pd.Series(np.full(n, bool(col.default)), index=text.index)
        else:
            typed[col.name] = pd.Series([col.default or ""] * n, index=text.index, dtype=object)
    if table.key and table.key in text.columns and not ids_checked:
        keys = text[table.key]
        dup = keys.duplicated(keep="first").to_numpy() & (keys != "").to_numpy()
        if dup.any():
            first = {k: i for i, k in reversed(list(enumerate(keys.to_numpy())))}
            for i in np.flatnonzero(dup):
                k = keys.iat[i]
                problems.append(Problem(table.name, "duplicate_id", _row(i), table.key, k,
                                        {"first_row": str(_row(first[k]))}))
    extras = {c: text[c] for c in text.columns if c.startswith(USER_COLUMN_PREFIX)}
    return pd.DataFrame({**typed, **extras}, index=text.index), problems


def _check_references(typed: dict[str, pd.DataFrame], text: dict[str, pd.DataFrame],
                      absent: frozenset[tuple[str, str]] = frozenset(),
                      only: tuple[str, ...] | None = None) -> list[Problem]:
    """Every reference to a row of another table (of the tables ``only`` names, if given)."""
    problems: list[Problem] = []
    for table in TABLES.values():
        frame = text.get(table.name)
        if frame is None or (only is not None and table.name not in only):
            continue
        for col in table.columns:
            if not col.ref or col.name not in frame.columns:
                continue
            target_table, target_col = col.ref.split(".")
            if (target_table, target_col) in absent:  # said once, as a missing column
                continue
            targets = typed[target_table][target_col]
            known = pd.Index(targets[targets != ""].unique())
            values = frame[col.name]
            if col.dtype == "list":
                parts = split_lists(values)
            else:
                parts = values[values != ""]
            missing = parts[~parts.isin(known)]
            close: dict[str, dict[str, str]] = {}
            for i, value in missing.items():
                if value not in close:
                    guess = closest(value, known[:5000]) if len(known) <= 5000 else None
                    close[value] = (did_you_mean(value, [guess]) if guess else {})
                problems.append(Problem(table.name, "missing_reference", _row(i), col.name,
                                        value, {"target": target_col,
                                                "target_table": target_table,
                                                **close[value]}))
    return problems


def _check_hierarchy(centres: pd.DataFrame) -> list[Problem]:
    """One city centre at the root; every parent exactly one level up; no cycles."""
    problems: list[Problem] = []
    level = centres["level"]
    parent = centres["parent_id"]
    roots = np.flatnonzero((level == "city").to_numpy())
    if len(centres) and len(roots) == 0:
        problems.append(Problem("centres", "no_root", column="level"))
    for i in roots[1:]:
        problems.append(Problem("centres", "several_roots", _row(i), "level", "city"))
    problems += _cells("centres", "root_has_parent", (level == "city") & (parent != ""),
                       "parent_id", parent)
    orphan = (level != "city") & level.isin(vocab.LEVELS) & (parent == "")
    problems += _cells("centres", "missing_value", orphan, "parent_id", parent)

    level_of = pd.Series(level.to_numpy(), index=centres["centre_id"].to_numpy())
    level_of = level_of[~level_of.index.duplicated()]
    parent_level = parent.map(level_of)
    expected = level.map(vocab.PARENT_LEVEL)
    wrong = (parent != "") & parent_level.notna() & expected.notna() & (parent_level != expected)
    for i in np.flatnonzero(wrong.to_numpy()):
        exp, act = expected.iat[i], parent_level.iat[i]
        problems.append(Problem("centres", "wrong_level", _row(i), "parent_id", parent.iat[i], {
            "expected": exp, "actual": act,
            "expected_zh": vocab.LEVELS[exp][0], "actual_zh": vocab.LEVELS[act][0]}))

    has_parent = (parent != "").to_numpy()
    edges = list(zip(centres["centre_id"].to_numpy()[has_parent], parent.to_numpy()[has_parent],
                     strict=True))
    if not _may_cycle(edges):
        return problems
    import networkx as nx  # only to list the cycles there are (a second's import saved else)

    graph = nx.DiGraph()
    graph.add_edges_from(edges)
    row_of = {c: i for i, c in reversed(list(enumerate(centres["centre_id"].to_numpy())))}
    for cycle in nx.simple_cycles(graph):
        first = min(cycle, key=lambda c: row_of.get(c, 0))
        problems.append(Problem("centres", "hierarchy_cycle", _row(row_of.get(first, 0)),
                                "parent_id", first, {"cycle": " → ".join([*cycle, cycle[0]])}))
    return problems


def _may_cycle(edges: list[tuple[str, str]]) -> bool:
    """Whether the child → parent edges may hold a cycle: exactly when each child has one
    parent (follow the parents from every centre, each centre once), else True (a duplicated
    centre id: networkx looks)."""
    parent: dict[str, str] = {}
    for child, up in edges:
        if parent.setdefault(child, up) != up:
            return True
    walk_of: dict[str, int] = {}  # centre → the walk that first reached it
    for walk, start in enumerate(parent):
        node = start
        while node in parent and node not in walk_of:
            walk_of[node] = walk
            node = parent[node]
        if walk_of.get(node) == walk:
            return True
    return False


def _check_station_level(typed: dict[str, pd.DataFrame]) -> list[Problem]:
    """Households and volunteers live at community stations, not at higher centres."""
    centres = typed["centres"]
    level_of = dict(zip(centres["centre_id"], centres["level"], strict=True))
    problems: list[Problem] = []
    for name in ("households", "volunteers"):
        station = typed[name]["station_id"]
        levels = station.map(level_of)
        wrong = levels.notna() & (levels != "station")
        for i in np.flatnonzero(wrong.to_numpy()):
            act = levels.iat[i]
            problems.append(Problem(name, "wrong_level", _row(i), "station_id", station.iat[i], {
                "expected": "station", "actual": act,
                "expected_zh": vocab.LEVELS["station"][0], "actual_zh": vocab.LEVELS[act][0]}))
    return problems


def _check_units(typed: dict[str, pd.DataFrame]) -> list[Problem]:
    """Hours, visits and items are whole numbers; yuan are counted to the cent."""
    services = typed["services"]
    unit_of = dict(zip(services["service_id"], services["unit"], strict=True))
    pins, needs = typed["pins"], typed["needs"]
    # (The needs' services by id only when there are pins to look up: a city week has none.)
    service_of_need = (dict(zip(needs["need_id"], needs["service_id"], strict=True))
                       if len(pins) else {})
    checks = [
        ("needs", "quantity", needs["service_id"]),
        ("offers", "capacity", typed["offers"]["service_id"]),
        ("offers", "max_per_household", typed["offers"]["service_id"]),
        ("pins", "units", pins["need_id"].map(service_of_need)),
    ]
    problems: list[Problem] = []
    for table, column, service in checks:
        values = typed[table][column].to_numpy(dtype=float)
        unit = service.map(unit_of).to_numpy()
        known = ~np.isnan(values)
        whole = np.isin(unit, list(vocab.WHOLE_UNITS))
        bad_whole = known & whole & (values != np.round(values))
        cents = values * 100
        bad_cents = known & (unit == "yuan") & (np.abs(cents - np.round(cents)) > 1e-6)
        # The text of the wrong cells alone (a city's million written out took 0.2 s).
        shown = np.full(len(values), "", dtype=object)
        wrong = bad_whole | bad_cents
        shown[wrong] = [f"{v:g}" for v in values[wrong]]
        for i in np.flatnonzero(bad_whole):
            problems.append(Problem(table, "not_whole", _row(i), column, shown[i], {
                "unit_zh": vocab.UNITS[unit[i]][0], "unit_en": unit[i] + "s"}))
        problems += _cells(table, "too_many_decimals", bad_cents, column, pd.Series(shown))
    return problems


def _check_coordinates(typed: dict[str, pd.DataFrame]) -> list[Problem]:
    problems: list[Problem] = []
    for name in ("centres", "volunteers", "households"):
        frame = typed[name]
        lat, lon = frame["lat"].to_numpy(float), frame["lon"].to_numpy(float)
        given = ~np.isnan(lat) & ~np.isnan(lon)
        outside = given & ((lat < vocab.CHINA_LAT[0]) | (lat > vocab.CHINA_LAT[1])
                           | (lon < vocab.CHINA_LON[0]) | (lon > vocab.CHINA_LON[1]))
        shown = pd.Series([f"{a:g}, {b:g}" for a, b in zip(lat, lon, strict=True)])
        problems += _cells(name, "outside_china", outside, "lat, lon", shown)
    return problems


def _check_pins(pins: pd.DataFrame) -> list[Problem]:
    both_or_none = (pins["offer_id"] != "") == (pins["volunteer_id"] != "")
    shown = pins["offer_id"] + " / " + pins["volunteer_id"]
    return _cells("pins", "pin_target", both_or_none, "offer_id, volunteer_id", shown)


def _check_services(services: pd.DataFrame) -> list[Problem]:
    missing = (services["delivery"] == "in_person") & services["visit_hours"].isna()
    return _cells("services", "missing_visit_hours", missing, "visit_hours",
                  services["visit_hours"].map(lambda v: "" if pd.isna(v) else str(v)))


def validate_tables(text: dict[str, pd.DataFrame], *, register_week: bool = False
                    ) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """Typed tables and every problem found in the text tables of a scenario.

    A missing optional table is an empty one. The typed tables are only meaningful when the
    problem list is empty; callers must reject the scenario otherwise.

    ``register_week``: the tables are a week's scenario made from the register's rows
    (``planning.cycle.week_scenario``), and the checks the register already guarantees are
    left out, each with its reason below. Every cell is still typed and checked as a cell
    (the week writes quantities, urgencies, capacities, hours, slots and budgets of its own),
    and so are the units; the typed tables are the same as without it.
    """
    problems: list[Problem] = []
    typed: dict[str, pd.DataFrame] = {}
    text = dict(text)
    for name, table in TABLES.items():
        if name not in text:
            text[name] = pd.DataFrame({c: pd.Series(dtype=object) for c in table.column_names})
        text[name] = with_codes(table, text[name])
        # Ids are not looked for twice in a register week: its rows are kept under the primary
        # key (table, id), and the week only leaves rows out.
        typed[name], found = _check_table(table, text[name], ids_checked=register_week)
        problems += found
    # A required column that is missing is said once: the checks across tables would see its
    # empty stand-in and report every row that refers to it (thousands of problems for one).
    missing = frozenset((p.table, p.column) for p in problems if p.code == "missing_column")
    if register_week and not missing and not len(typed["pins"]):
        # What a register week leaves out: its rows were checked as they came in (an import
        # as the whole register it leaves, a single record with the rows it refers to, see
        # planning/register.py), and the week changes none of what these look at.
        # - References, but the history's: every table referred to (centres, services,
        #   households, providers, funds, volunteers) the week takes whole; it leaves out
        #   needs (closed, allocated, for a later week) and used-up offers, which only pins
        #   refer to, and a week has no pins (the register keeps none). The history is
        #   written by a week's close and by visit results, not checked as an import is:
        #   checked again. (A volunteer an import drops is shown as nobody in it, and a
        #   household is never dropped: register.history_as_shown.)
        # - The centres' hierarchy, the stations of households and volunteers, coordinates,
        #   the services' visit hours: tables or columns the week takes as they are kept.
        # - Pins: there are none (with any, everything is checked).
        return typed, (problems + _check_references(typed, text, only=("history",))
                       + _check_units(typed))
    problems += _check_references(typed, text, missing)
    if missing:
        return typed, problems
    problems += _check_hierarchy(typed["centres"])
    problems += _check_station_level(typed)
    problems += _check_units(typed)
    problems += _check_coordinates(typed)
    problems += _check_pins(typed["pins"])
    problems += _check_services(typed["services"])
    return typed, problems
