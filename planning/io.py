"""Reading and writing scenario files: a folder of CSV files, one XLSX workbook with a sheet per
table, or a folder of Parquet files.

Readers return every table as text, exactly as the user wrote it, so that validation can report
each cell's problem in the user's own terms; ``planning.validate`` turns text into typed tables.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pandas as pd

from wulian.contract.problems import Problem, did_you_mean
from wulian.contract.schema import TABLES

FORMATS = ("csv", "xlsx", "parquet")
# What Excel in China saves CSV as, after UTF-8 (GB18030 is a superset of GBK and GB2312).
ENCODINGS = ("utf-8", "gb18030")
# Cells starting with these make Excel evaluate a formula; exports neutralise them.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class RawScenario:
    """The tables of a scenario as text, before validation.

    ``tables`` maps table name to a DataFrame of stripped strings ("" for an empty cell);
    ``sources`` says where each table came from (file or sheet, and the CSV encoding used);
    ``problems`` lists files that could not be read and required tables that are missing.
    """

    path: Path
    format: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def detect_format(path: Path) -> str:
    """The scenario format of ``path``: an .xlsx file, or a folder of .parquet or .csv files."""
    if path.is_file() and path.suffix.lower() in (".xlsx", ".xlsm"):
        return "xlsx"
    if path.is_dir():
        if any(path.glob("*.parquet")) and not any(path.glob("*.csv")):
            return "parquet"
        return "csv"
    raise FileNotFoundError(
        f"场景不存在或格式不支持 / no scenario at {path}: give a folder of CSV or Parquet files, "
        "or one .xlsx workbook"
    )


def decode_csv(data: bytes) -> tuple[str, str]:
    """Decode CSV bytes as UTF-8 (with or without BOM) or GB18030; return (text, encoding)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("utf-8", data[:1], 0, 1, "neither UTF-8 nor GB18030")


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as a stripped string, empty cells as ""; column names stripped."""
    # A filtered frame keeps its row labels; the text frame is numbered from 0, so realign.
    frame = frame.rename(columns=lambda c: str(c).strip().lstrip("\ufeff")).reset_index(drop=True)
    out = {}
    for name in frame.columns:
        col = frame[name]
        if col.dtype == bool:
            col = col.map({True: "true", False: "false"})
        out[name] = col.astype("string").fillna("").str.strip().astype(object)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def read_raw(path: str | Path) -> RawScenario:
    """Read every table of the scenario at ``path`` as text; unreadable or missing tables become
    problems rather than exceptions, so the user hears about all of them at once."""
    path = Path(path)
    fmt = detect_format(path)
    raw = RawScenario(path=path, format=fmt)
    present: dict[str, object] = {}
    if fmt == "xlsx":
        try:
            sheets = pd.read_excel(path, sheet_name=None, dtype=str, keep_default_na=False)
        except Exception as exc:  # noqa: BLE001 - any reader failure is the user's file
            raw.problems.append(Problem("workbook", "unreadable_file", value=path.name,
                                        detail={"reason": str(exc)[:200]}))
            return raw
        present = {str(k).strip(): v for k, v in sheets.items()}
        for name in TABLES:
            if name in present:
                raw.tables[name] = as_text(present[name])
                raw.sources[name] = f"{path.name}[{name}]"
    else:
        suffix = "." + fmt
        files = {p.stem.strip(): p for p in sorted(path.glob("*" + suffix))}
        present = files
        for name in TABLES:
            file = files.get(name)
            if file is None:
                continue
            try:
                if fmt == "parquet":
                    frame = pd.read_parquet(file)
                    raw.sources[name] = file.name
                else:
                    text, encoding = decode_csv(file.read_bytes())
                    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                                        skipinitialspace=True)
                    raw.sources[name] = f"{file.name} ({encoding})"
            except Exception as exc:  # noqa: BLE001 - any reader failure is the user's file
                raw.problems.append(Problem(name, "unreadable_file", value=file.name,
                                            detail={"reason": str(exc)[:200]}))
                continue
            raw.tables[name] = as_text(frame)
    unknown = [n for n in present if n not in TABLES]
    for name, table in TABLES.items():
        if table.required and name not in raw.tables and not any(
            p.table == name for p in raw.problems
        ):
            raw.problems.append(Problem(name, "missing_table",
                                        detail=did_you_mean(name, unknown)))
    return raw


def safe_cell(value: object) -> object:
    """A text cell that Excel will not evaluate as a formula (prefixed with an apostrophe)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def excel_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text columns are safe against formula injection (as
    :func:`safe_cell`, a column at a time: a city's tables have millions of cells)."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if column.dtype == object or pd.api.types.is_string_dtype(column):
            try:  # non-text cells of an object column give NaN here, and stay as they are
                risky = column.str.startswith(FORMULA_PREFIXES).fillna(False).astype(bool)
            except AttributeError:  # an object column without any text
                continue
            if risky.any():
                out[name] = column.where(~risky, "'" + column[risky].astype(str))
    return out


def write_tables(tables: dict[str, pd.DataFrame], out: str | Path, fmt: str = "csv") -> Path:
    """Write tables as a CSV folder (UTF-8 with BOM, so Excel shows Chinese), one XLSX workbook
    (``out`` is the file) or a Parquet folder; returns the path written.

    Writing is deterministic: the same tables give byte-identical CSV and Parquet files.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)
    if fmt == "xlsx":
        if out.suffix.lower() != ".xlsx":
            out = out / "scenario.xlsx"
        out.parent.mkdir(parents=True, exist_ok=True)
        with pd.ExcelWriter(out, engine="openpyxl") as writer:
            for name, frame in tables.items():
                frame.to_excel(writer, sheet_name=name[:31], index=False)
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(out / f"{name}.csv", index=False, encoding="utf-8-sig",
                         lineterminator="\n")
        else:
            frame.to_parquet(out / f"{name}.parquet", index=False)
    return out


def strict_json(value):
    """``value`` with every NaN or infinite number replaced by ``None`` (JSON's null), in
    dicts, lists and tuples at any depth: run.json stays strict JSON (a bound that does not
    exist is null, never the ``NaN`` token Python's json writes and other readers refuse)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy scalar
        return strict_json(value.item())
    return value


@dataclass
class Outputs:
    """Output tables with their provenance (``info``); a table reads as an attribute
    (``run.allocations``). Subclasses name the files ``write`` makes."""

    tables: dict[str, pd.DataFrame]
    info: dict
    WORKBOOK: ClassVar[str] = "outputs.xlsx"
    INFO_FILE: ClassVar[str] = "run.json"

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables")
        if tables is not None and name in tables:
            return tables[name]
        raise AttributeError(name)

    def write(self, out: str | Path, fmt: str = "csv") -> Path:
        """Write every table (safe to open in Excel) and the provenance file to ``out``."""
        out = Path(out)
        target = out / self.WORKBOOK if fmt == "xlsx" else out
        write_tables({k: excel_safe(v) for k, v in self.tables.items()}, target, fmt)
        out.mkdir(parents=True, exist_ok=True)
        (out / self.INFO_FILE).write_text(json.dumps(strict_json(self.info), ensure_ascii=False,
                                                     indent=2, sort_keys=True, allow_nan=False)
                                          + "\n", encoding="utf-8")
        return out

