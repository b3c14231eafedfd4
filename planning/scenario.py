"""The Scenario: a validated, scored, coloured and immutable bundle of all tables.

Built once from files (``load_scenario``) or from DataFrames (``Scenario.from_tables``), after
validation has found no problem; everything downstream takes a Scenario and never re-checks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from wulian.contract.hierarchy import Hierarchy
from wulian.contract.problems import Problem, ValidationError
from wulian.contract.schema import TABLES
from wulian.demand.policy import Policy
from wulian.demand.scoring import colour
from wulian.planning.io import RawScenario, as_text, is_python_text, read_raw
from wulian.planning.validate import validate_tables


def tables_digest(tables: Mapping[str, pd.DataFrame]) -> str:
    """sha256 over the canonicalised tables: contract columns only, rows sorted by key, tables
    in contract order; numbers as float64 rounded to 6 decimals (the same value read from CSV,
    XLSX or Parquet gives the same digest), text as its cells' lengths and the cells.

    Column by column over whole arrays: writing the city's tables out as CSV to hash them took
    2.9 s of a 60 s run."""
    digest = hashlib.sha256()
    for name, table in TABLES.items():
        frame = tables[name].loc[:, list(table.column_names)]
        sort_by = [table.key] if table.key else list(table.column_names)
        if not _in_order(frame, sort_by):  # (a register's tables come in their keys' order)
            frame = frame.sort_values(sort_by, kind="stable")
        digest.update(f"{name}\x1e{len(frame)}".encode())
        for column, values in frame.items():
            digest.update(f"\x1d{column}".encode())
            digest.update(_column_bytes(values))
    return digest.hexdigest()


def _in_order(frame: pd.DataFrame, columns: list[str]) -> bool:
    """Whether the rows stand as sorting them by ``columns`` leaves them: each row's values
    not below the previous row's, compared as the sort does (by the first column, ties by
    the next). False when it cannot be told so (values that do not compare, or missing)."""
    if len(frame) < 2:
        return True
    ahead = np.zeros(len(frame) - 1, dtype=bool)  # rows above the previous one already
    tied = np.ones(len(frame) - 1, dtype=bool)  # rows equal to the previous one so far
    for column in columns:
        values = frame[column].to_numpy()
        try:
            ahead |= tied & np.asarray(values[1:] > values[:-1], dtype=bool)
            tied &= np.asarray(values[1:] == values[:-1], dtype=bool)
        except TypeError:
            return False
    return bool((ahead | tied).all())


def _column_bytes(values: pd.Series) -> bytes:
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(bool).tobytes()
    if pd.api.types.is_numeric_dtype(values):
        numbers = np.round(values.to_numpy(float), 6)
        missing = np.isnan(numbers)
        # NaN has many bit patterns: mark missing cells apart and hash them as 0.
        return np.where(missing, 0.0, numbers + 0.0).tobytes() + np.packbits(missing).tobytes()
    # Each cell's length, then the cells end to end: no two different columns read the same.
    # (Python text is its own ``str``: taken as it is, not through pandas' Arrow text.)
    text = values.tolist() if is_python_text(values) else values.astype(str).tolist()
    lengths = np.fromiter(map(len, text), np.int64, len(text))
    return lengths.tobytes() + "".join(text).encode()


@dataclass(frozen=True)
class Scenario:
    """A validated scenario.

    ``tables`` holds the typed contract tables; ``households`` is the households table with
    the assessment added (``score``, ``poor``, the final ``tier`` and its ``tier_source``).
    """

    tables: Mapping[str, pd.DataFrame]
    policy: Policy
    households: pd.DataFrame
    digest: str
    sources: Mapping[str, str] = field(default_factory=dict)
    path: str = ""

    def __getattr__(self, name: str) -> pd.DataFrame:
        # scenario.needs, scenario.offers, … read as the tables they name.
        tables = self.__dict__.get("tables")
        if tables is not None and name in tables:
            return tables[name]
        raise AttributeError(name)

    @cached_property
    def hierarchy(self) -> Hierarchy:
        return Hierarchy.from_centres(self.tables["centres"])

    def __getstate__(self) -> dict:
        # The fields alone, gathered at once. A process pool pickles what it is handed in its
        # feeder thread while the caller goes on (the demo's cycle goes to its worker as the
        # plan starts): pickling the live __dict__ there failed with "dictionary changed size
        # during iteration" when this thread filled a cached property (``hierarchy``) under
        # it. Cached values are derived: a worker derives them again when it needs them.
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_tables(cls, tables: Mapping[str, pd.DataFrame], policy: Policy | None = None,
                    *, sources: Mapping[str, str] | None = None, path: str = "") -> Scenario:
        """Validate DataFrames (as a generator or the API hands them over) into a Scenario.

        Raises
        ------
        ValidationError
            With every problem found, when there is any.
        """
        text = {name: as_text(frame) for name, frame in tables.items()}
        return cls.from_text(text, policy, [], sources or {}, path)

    @classmethod
    def from_register_week(cls, tables: Mapping[str, pd.DataFrame], policy: Policy,
                           *, path: str = "") -> Scenario:
        """A week's scenario made from the register's rows (``planning.cycle.week_scenario``)
        validated as :meth:`from_tables` does, less what the register guarantees already
        (``validate_tables(register_week=True)``), with the same tables and digest.

        Its cells are not made text again (:func:`as_text`): the register keeps every row as
        the text :func:`planning.register.canonical` made of it, stripped, and the cells the
        week writes are made text here when they are not Python text already.

        Raises
        ------
        ValidationError
            With every problem found, when there is any.
        """
        text = {name: _as_text_where_not(frame) for name, frame in tables.items()}
        typed, problems = validate_tables(text, register_week=True)
        if problems:
            raise ValidationError(problems)
        return cls._assessed(typed, policy, {}, path)

    @classmethod
    def from_text(cls, text: dict[str, pd.DataFrame], policy: Policy | None,
                  earlier: list[Problem], sources: Mapping[str, str], path: str) -> Scenario:
        typed, problems = validate_tables(text)
        problems = earlier + problems
        if problems:
            raise ValidationError(problems)
        return cls._assessed(typed, policy, sources, path)

    @classmethod
    def _assessed(cls, typed: dict[str, pd.DataFrame], policy: Policy | None,
                  sources: Mapping[str, str], path: str) -> Scenario:
        policy = policy or Policy.load()
        assessed = colour(typed["households"], policy)
        households = typed["households"].drop(columns=["tier"]).join(assessed)
        # Plain dicts (read them, never write them) so a Scenario pickles to worker processes.
        return cls(tables=dict(typed), policy=policy, households=households,
                   digest=tables_digest(typed), sources=dict(sources), path=path)


def _as_text_where_not(frame: pd.DataFrame) -> pd.DataFrame:
    """A register week's table numbered from 0, its columns not all Python text (cells the
    week wrote) made text by :func:`as_text`; the others as they are."""
    frame = frame.reset_index(drop=True)
    made = [c for c in frame.columns if not is_python_text(frame[c])]
    return frame.assign(**as_text(frame[made])) if made else frame


def check_raw(raw: RawScenario) -> list[Problem]:
    """Every problem of a scenario read from files."""
    return raw.problems + validate_tables(raw.tables)[1]


def load_scenario(path: str | Path, policy: Policy | None = None) -> Scenario:
    """Read, validate and assess the scenario at ``path`` (CSV folder, XLSX or Parquet folder).

    Raises
    ------
    ValidationError
        With every problem found; nothing is loaded when there is any.
    """
    raw = read_raw(path)
    return Scenario.from_text(raw.tables, policy, raw.problems, raw.sources, str(path))
