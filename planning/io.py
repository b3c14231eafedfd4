"""Reading and writing scenario files: a folder of CSV files, one XLSX workbook with a sheet per
table, or a folder of Parquet files.

Readers return every table as text, exactly as the user wrote it, so that validation can report
each cell's problem in the user's own terms; ``planning.validate`` turns text into typed tables.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from wulian.contract.problems import Problem, did_you_mean
from wulian.contract.schema import TABLES
from wulian.planning.limits import Limits, excerpt, limits

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


def unreadable(exc: Exception) -> dict[str, str]:
    """Why a file could not be read, in Chinese and English (the reader's own words, often a
    codec's or a parser's, would be English inside a Chinese report)."""
    detail = {"reason": excerpt(exc, 200)}
    if isinstance(exc, UnicodeDecodeError):
        detail.update(reason_zh="不是 UTF-8 或 GB18030 编码的文本(也许是图片或其他二进制文件)",
                      reason_en="not text in UTF-8 or GB18030 (perhaps an image or another "
                                "binary file)")
    elif isinstance(exc, pd.errors.EmptyDataError):
        detail.update(reason_zh="文件是空的,没有表头行", reason_en="the file is empty: no header "
                      "row")
    elif isinstance(exc, pd.errors.ParserError):
        detail.update(reason_zh="CSV 的列数不一致(某行的逗号多于表头)",
                      reason_en="rows of the CSV have more cells than its header")
    elif isinstance(exc, IsADirectoryError):
        detail.update(reason_zh="这是文件夹,不是文件", reason_en="a folder, not a file")
    elif "zip" in str(exc).lower() or "excel" in str(exc).lower():
        detail.update(reason_zh="不是可读的 Excel 工作簿(.xlsx)",
                      reason_en="not a readable Excel workbook (.xlsx)")
    return detail


def as_text(frame: pd.DataFrame, *, arrow: bool = False) -> pd.DataFrame:
    """Every cell as a stripped string, empty cells as ""; column names stripped. ``arrow``:
    the cells kept as pandas' Arrow-backed strings (for Arrow to read without a copy), not as
    Python objects."""
    # A filtered frame keeps its row labels; the text frame is numbered from 0, so realign.
    frame = frame.rename(columns=lambda c: str(c).strip().lstrip("\ufeff")).reset_index(drop=True)
    out = {}
    for name in frame.columns:
        col = frame[name]
        if not arrow and _is_text_already(col):
            out[name] = col  # (its cells as they are: a city's register week is such text)
            continue
        if col.dtype == bool:
            col = col.map({True: "true", False: "false"})
        text = col.astype("string").fillna("").str.strip()
        out[name] = text if arrow else text.astype(object)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def _is_text_already(col: pd.Series) -> bool:
    """Whether a column is Python text cells, none missing and none with a space at either
    end: :func:`as_text` would give its cells back unchanged. Asked before converting, since
    a column of a city's tables taken to Arrow's text and back cost more than this look
    (Python's ``str.strip`` trims the same 29 characters as Arrow's, which ``str.strip``
    on pandas' text uses)."""
    return is_python_text(col) and all(cell == cell.strip() for cell in col.to_numpy())


def is_python_text(values: pd.Series) -> bool:
    """Whether a column's cells are all Python ``str`` (object dtype, none missing): text
    that can be taken as it is, not through pandas' Arrow text."""
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) in (
        "string", "empty")


# A workbook part smaller than this may inflate more than the ratio allows (a sheet of empty
# rows compresses a hundredfold): only large parts are held to the ratio.
RATIO_FLOOR_BYTES = 1024 * 1024


def workbook_problems(path: Path, bounds: Limits) -> list[Problem]:
    """What makes a workbook too large to open, read from its zip directory alone: the sum of
    its parts once unzipped, and any large part that inflates more than the ratio allows."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        return [Problem("workbook", "unreadable_file", value=path.name,
                        detail={"reason": excerpt(exc, 200)})]
    total = sum(m.file_size for m in members)
    problems = []
    if total > bounds.max_xlsx_bytes:
        problems.append(Problem("workbook", "workbook_too_large", value=path.name, detail={
            "size": f"{total / 1024**2:,.0f} MB",
            "limit": f"{bounds.max_xlsx_bytes / 1024**2:,.0f} MB"}))
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_FLOOR_BYTES and ratio > bounds.max_xlsx_ratio:
            problems.append(Problem("workbook", "workbook_inflates", value=member.filename[:80],
                                    detail={"ratio": f"{ratio:,.0f}",
                                            "limit": f"{bounds.max_xlsx_ratio:g}"}))
            break
    return problems


def _cell_text(value: object) -> str:
    """A workbook cell as the text pandas' ``read_excel(dtype=str)`` gives (whole numbers
    without ``.0``), so that both readers agree."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return str(value)


def read_workbook(path: Path, bounds: Limits) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """Every sheet of a workbook as text, read row by row with openpyxl: a sheet wider than the
    limit is refused at its header, one longer than the limit at the row past it, and a cell
    longer than the limit is kept only as its excerpt (``read_excel(dtype=str)`` made a
    fixed-width copy of the longest cell for every cell: a 592 KB file whose cells share one
    5 MB string took gigabytes)."""
    import openpyxl

    sheets: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        for sheet in book.worksheets:
            name = str(sheet.title).strip()
            sheet.reset_dimensions()  # the declared size may be wrong; read what is there
            rows: list[list[str]] = []
            long: dict[int, list[int]] = {}  # column → data rows (from 0) of long cells
            chars: dict[int, int] = {}  # column → length of its first long cell
            width = 0
            refused = False
            for number, values in enumerate(sheet.iter_rows(values_only=True)):
                row = [_cell_text(v) for v in values]
                while row and row[-1] == "":
                    row.pop()
                if number == 0 and len(row) > bounds.max_columns:
                    problems.append(Problem(name, "too_many_columns", detail={
                        "columns": f"{len(row):,}", "limit": f"{bounds.max_columns:,}"}))
                    refused = True
                    break
                if number > bounds.max_rows:
                    problems.append(Problem(name, "too_many_rows", detail={
                        "rows": f"> {bounds.max_rows:,}", "limit": f"{bounds.max_rows:,}"}))
                    refused = True
                    break
                for j, cell in enumerate(row):
                    if len(cell) > bounds.max_cell_chars:
                        if number:  # a data cell; a long header is an unknown column
                            long.setdefault(j, []).append(number - 1)
                            chars.setdefault(j, len(cell))
                        row[j] = excerpt(cell)
                width = max(width, len(row))
                rows.append(row)
            if refused:
                continue
            while rows and not rows[-1]:
                rows.pop()
            if not rows:
                sheets[name] = pd.DataFrame()
                continue
            header = rows[0] + [""] * (width - len(rows[0]))
            names: list[str] = []
            for j, label in enumerate(header):
                label = label or f"Unnamed: {j}"
                base, k = label, 0
                while label in names:  # as pandas names a repeated header
                    k += 1
                    label = f"{base}.{k}"
                names.append(label)
            body = [r + [""] * (width - len(r)) for r in rows[1:]]
            frame = pd.DataFrame(body, columns=names, dtype=object)
            for j, at in sorted(long.items()):
                problems.append(Problem(name, "cell_too_long", at[0] + 2, excerpt(names[j]),
                                        str(frame.iat[at[0], j]), {
                                            "chars": f"{chars[j]:,}",
                                            "limit": f"{bounds.max_cell_chars:,}",
                                            "cells": f"{len(at):,}"}))
            if not long:
                sheets[name] = frame
    finally:
        book.close()
    return sheets, problems


def csv_header(text: str) -> list[str]:
    """The header row of a CSV text, read alone (the csv module stops after the first
    record), so that a table too wide is refused before it is parsed."""
    return next(csv.reader(io.StringIO(text)), [])


def bound_frame(name: str, frame: pd.DataFrame, bounds: Limits) -> list[Problem]:
    """What makes a table read from a file too large to validate: more rows than the limit, or
    cells longer than the limit (one problem per column, at its first such cell, with the
    count). A table with such a problem is not validated further: every later step would copy
    its long cells again, and a workbook's cells may all point to one huge shared string."""
    if len(frame) > bounds.max_rows:
        return [Problem(name, "too_many_rows", detail={
            "rows": f"{len(frame):,}", "limit": f"{bounds.max_rows:,}"})]
    problems = []
    for column in frame.columns:
        values = frame[column]
        if values.dtype != object and not pd.api.types.is_string_dtype(values):
            continue
        # A NUL: PostgreSQL keeps no text holding one (a register's import would fail).
        # (Looked for in the column joined first: a city's columns in milliseconds.)
        try:
            joined = "".join(values.tolist())
        except TypeError:  # (a cell not text: a missing one)
            joined = "".join(v for v in values.tolist() if isinstance(v, str))
        if "\x00" in joined:
            nul = np.flatnonzero(values.str.contains("\x00", regex=False).to_numpy(
                dtype=bool, na_value=False))
            problems.append(Problem(name, "nul_character", int(nul[0]) + 2, excerpt(column),
                                    excerpt(values.iat[int(nul[0])].replace("\x00", "␀")),
                                    {"cells": f"{len(nul):,}"}))
        lengths = values.str.len().to_numpy(dtype=float, na_value=0)
        long = np.flatnonzero(lengths > bounds.max_cell_chars)
        if len(long):
            first = int(long[0])
            problems.append(Problem(name, "cell_too_long", first + 2, excerpt(column),
                                    excerpt(values.iat[first]), {
                                        "chars": f"{int(lengths[first]):,}",
                                        "limit": f"{bounds.max_cell_chars:,}",
                                        "cells": f"{len(long):,}"}))
    return problems


def too_many_columns(name: str, count: int, bounds: Limits) -> Problem | None:
    if count <= bounds.max_columns:
        return None
    return Problem(name, "too_many_columns", detail={
        "columns": f"{count:,}", "limit": f"{bounds.max_columns:,}"})


def read_raw(path: str | Path) -> RawScenario:
    """Read every table of the scenario at ``path`` as text; unreadable or missing tables become
    problems rather than exceptions, so the user hears about all of them at once.

    The limits (:mod:`planning.limits`) are checked before each part is parsed: a workbook's
    size from its zip directory, a CSV's columns from its header, a Parquet file's columns and
    rows from its footer; rows and cell lengths as soon as a table is read.
    """
    path = Path(path)
    fmt = detect_format(path)
    raw = RawScenario(path=path, format=fmt)
    bounds = limits()
    present: dict[str, object] = {}
    if fmt == "xlsx":
        raw.problems += workbook_problems(path, bounds)
        if raw.problems:
            return raw
        try:
            sheets, bounded = read_workbook(path, bounds)
        except Exception as exc:  # noqa: BLE001 - any reader failure is the user's file
            raw.problems.append(Problem("workbook", "unreadable_file", value=path.name,
                                        detail=unreadable(exc)))
            return raw
        raw.problems += [p for p in bounded if p.table in TABLES]
        present = {**sheets, **{p.table: None for p in bounded}}
        for name in TABLES:
            if name in sheets:
                raw.tables[name] = as_text(sheets[name])
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
                    import pyarrow.parquet as pq

                    meta = pq.ParquetFile(file).metadata
                    shape = (meta.num_rows, meta.num_columns)
                else:
                    text, encoding = decode_csv(file.read_bytes())
                    shape = (0, len(csv_header(text)))
                bound = too_many_columns(name, shape[1], bounds)
                if bound is None and shape[0] > bounds.max_rows:
                    bound = Problem(name, "too_many_rows", detail={
                        "rows": f"{shape[0]:,}", "limit": f"{bounds.max_rows:,}"})
                if bound is not None:
                    raw.problems.append(bound)
                    continue
                if fmt == "parquet":
                    frame = pd.read_parquet(file)
                    raw.sources[name] = file.name
                else:
                    # One row past the limit is enough to know that it is passed.
                    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                                        skipinitialspace=True, nrows=bounds.max_rows + 1)
                    raw.sources[name] = f"{file.name} ({encoding})"
            except Exception as exc:  # noqa: BLE001 - any reader failure is the user's file
                raw.problems.append(Problem(name, "unreadable_file", value=file.name,
                                            detail=unreadable(exc)))
                continue
            found = bound_frame(name, frame, bounds)
            raw.problems += found
            if not found:
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
        from wulian.planning.workbook import Sheet, write_workbook

        # A scenario workbook is an input file: sheets named by table, codes as headers.
        write_workbook([Sheet(name, frame) for name, frame in tables.items()], out, "codes")
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(out / f"{name}.csv", index=False, encoding="utf-8-sig",
                         lineterminator="\n")
        else:
            frame.to_parquet(out / f"{name}.parquet", index=False)
    return out


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

    def write(self, out: str | Path, fmt: str = "csv", lang: str = "zh") -> Path:
        """Write every table (safe to open in Excel) and the provenance file to ``out``: a CSV
        or Parquet folder, or one workbook for people in ``lang`` (planning/workbook.py)."""
        out = Path(out)
        if fmt == "xlsx":
            from wulian.planning.workbook import tables_workbook

            tables_workbook(self.tables, out / self.WORKBOOK, lang, self.workbook_title())
        else:
            write_tables({k: excel_safe(v) for k, v in self.tables.items()}, out, fmt)
        return self.write_info(out)

    def write_info(self, out: str | Path) -> Path:
        """Write the provenance file alone (again, once the run is recorded with its id)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / self.INFO_FILE).write_text(strict_json(self.info) + "\n", encoding="utf-8")
        return out

    def workbook_title(self) -> tuple[str, str]:
        """The workbook's title (printed at the top of each page)."""
        run = self.info.get("run_id", "")
        return (f"五联 · 运行 {run}", f"wulian · run {run}")


def finite(value):
    """``value`` with every NaN or infinity inside it as ``None``: strict JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # a numpy scalar
        try:
            return finite(value.item())
        except (TypeError, ValueError):
            return value
    return value


def strict_json(value, indent: int | None = 2) -> str:
    """``value`` as JSON that strict parsers accept: NaN and infinities as ``null``, UTF-8
    text as is, keys sorted (the same data gives the same text)."""
    return json.dumps(finite(value), ensure_ascii=False, indent=indent, sort_keys=True,
                      allow_nan=False, default=str)

