"""Every Excel workbook wulian writes, made so a civil-affairs office can send it on.

One writer for the CLI (``--format xlsx``), the app's exports, ``wulian match``, the service,
the performance report and the weekly task books:

* headers in the chosen language (``zh`` by default, ``en``, or ``both``: "中文 English"),
  codes shown as words (colours, linkages, reasons, statuses, slots …);
* columns as wide as what they hold, the header row frozen (``A2``) and filtered;
* shares as ``0.0%``, money as ``¥#,##0.00``, counts with thousands separators;
* sheets named for people (Excel's 31 characters, no ``[]:*?/\\``, unique), an index sheet
  in words first, every sheet set up to print on A4 with the header on every page;
* formula safety without a visible apostrophe: every text cell is written as a string cell,
  so ``=1+1`` or ``@SUM(1)`` read back as those exact strings and no formula cell exists.

Scenario workbooks (``wulian generate --format xlsx``) are input files, read back by
``planning.io.read_raw``: they are written in ``codes`` mode (table names as sheets, column
codes as headers, codes left as codes) with the same safety and layout.

Labels come from the app's text table (``ui/text.py``, pure Python), so the app, the CLI and
the workbooks call a column by the same name.
"""

from __future__ import annotations

import io
import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wulian.contract import vocab

LANGS = ("zh", "en", "both", "codes")
DEFAULT_LANG = "zh"
SHEET_NAME_LIMIT = 31  # Excel's limit on a sheet's name
_BAD_SHEET_CHARS = str.maketrans("", "", "[]:*?/\\")

PERCENT = '0.0%'
MONEY = '"¥"#,##0.00'
WHOLE = '#,##0'
DECIMAL = '#,##0.00'

# Columns that hold a share (0–1) and columns that hold yuan; everything else numeric is a
# count or a quantity.
PERCENT_COLUMNS = frozenset({
    "fill_rate", "fraction", "red_fill_rate", "fill_before", "fill_after", "delivered_share",
    "planned_rate", "on_time", "gap", "idle_share", "share", "used_share", "utilisation",
    "H", "A", "contribution", "fill", "rate"})
MONEY_COLUMNS = frozenset({
    "cost", "budget", "used", "left", "money", "money_total", "planned", "committed", "spent",
    "unit_cost", "weekly_budget", "period_budget", "accrued", "outstanding", "balance", "burn",
    "projected", "projected_left", "yuan", "money_used", "money_left"})

# Which vocabulary a column's codes come from (``ui.text.code`` kinds, or ``reason``/``slot``).
CODE_COLUMNS: dict[str, str] = {
    "tier": "tier", "colour": "tier", "linkage": "linkage", "level": "level",
    "source": "source", "unit": "unit", "dimension": "dimension", "direction": "direction",
    "reason": "reason", "why": "reason", "slot": "slot", "status": "status",
    "task_status": "task_status", "source_kind": "source_kind", "resource_kind": "source_kind",
    "kind": "kind", "severity": "severity", "state": "alert_state", "marginal_level": "tier",
}


# Tables whose columns the name rules would get wrong: utilisation's used and left are units of
# each resource (yuan only on a fund's rows), and a marginal value is small.
TABLE_FORMATS: dict[str, dict[str, str]] = {
    "utilisation": {"available": DECIMAL, "used": DECIMAL, "left": DECIMAL,
                    "marginal_value": "0.0000"},
    "allocations": {"km": "0.0"},
    "load": {"km": "0.0", "utilisation": PERCENT},
}


# Tables in the order a reader wants them: the overview first, the detail after.
READING_ORDER = ("summary", "plans", "unmet", "allocations", "utilisation", "fill_rate",
                 "money", "funds", "volunteers", "explanation", "assignments", "unplaced",
                 "load")


@dataclass
class Sheet:
    """One table sheet: its title (a code of the text table ``SHEETS``, or words), the table,
    and what it holds (for the index sheet)."""

    title: str | tuple[str, str]
    frame: pd.DataFrame
    about: str | tuple[str, str] = ""
    # column → number format, for columns the name rules above do not cover
    formats: Mapping[str, str] = field(default_factory=dict)


def pick(pair: tuple[str, str], lang: str, sep: str = " ") -> str:
    """One of a (中文, English) pair; ``both`` joins them (``codes`` gives the English)."""
    zh, en = pair
    if lang == "zh":
        return zh
    if lang in ("en", "codes"):
        return en
    return zh if zh == en else f"{zh}{sep}{en}"


def header(column: str, lang: str) -> str:
    """A column's heading in ``lang`` (the code itself in ``codes`` mode)."""
    if lang == "codes":
        return str(column)
    from wulian.ui.text import COLUMNS

    name = str(column)
    if name in COLUMNS:
        return pick(COLUMNS[name], lang)
    if name.startswith("declined_") and name[9:] in vocab.DECLINE_REASONS:
        zh, en = vocab.DECLINE_REASONS[name[9:]]
        return pick((f"拒绝:{zh}", f"declined: {en}"), lang)
    if name.startswith("d_") and name[2:] in vocab.DIMENSIONS:
        zh, en = vocab.DIMENSIONS[name[2:]]
        return pick((f"{zh}剥夺", f"{en} deprived"), lang)
    if name in vocab.TIERS:
        return pick(vocab.TIERS[name], lang)
    return name.replace("_", " ")


def words(column: str, value: object, lang: str) -> object:
    """A code of ``column`` in words; other values as they are."""
    kind = CODE_COLUMNS.get(str(column))
    if kind is None or lang == "codes" or not isinstance(value, str) or value == "":
        return value
    from wulian.ui import text

    if kind == "reason":
        return text.reason(value, "zh" if lang == "zh" else "en") if lang != "both" else \
            f"{text.reason(value, 'zh')} {text.reason(value, 'en')}"
    table = _vocabulary(kind)
    if table is None:
        return value
    if ";" in value:  # a list of codes in one cell
        return "; ".join(str(words(column, v, lang)) for v in value.split(";") if v)
    return pick(table[value], lang) if value in table else value


def _vocabulary(kind: str) -> Mapping[str, tuple[str, str]] | None:
    from wulian.ui import text

    tables: dict[str, Mapping[str, tuple[str, str]]] = {
        "tier": vocab.TIERS, "linkage": vocab.LINKAGES, "level": vocab.LEVELS,
        "source": vocab.FUND_SOURCES, "unit": vocab.UNITS, "dimension": vocab.DIMENSIONS,
        "direction": text.DIRECTIONS, "slot": vocab.SLOTS,
        "status": {**text.STATUSES, **vocab.TASK_STATUSES},
        "task_status": vocab.TASK_STATUSES, "source_kind": text.SOURCE_KINDS,
        "kind": {**text.SOURCE_KINDS, **text.TASK_KINDS, **text.REGISTRY_KINDS},
        "severity": text.SEVERITIES, "alert_state": text.ALERT_STATES,
    }
    return tables.get(kind)


def sheet_name(title: str, taken: set[str]) -> str:
    """A valid, unique sheet name from ``title``: Excel's forbidden characters dropped, at most
    31 characters, ``~2``, ``~3`` … on a clash (Excel compares names without case); the name
    joins ``taken``.

    >>> taken = set(); sheet_name("资源方 A/B", taken), sheet_name("资源方 a/b", taken)
    ('资源方 AB', '资源方 ab~2')
    """
    base = str(title).translate(_BAD_SHEET_CHARS).strip().strip("'")[:SHEET_NAME_LIMIT]
    base = base or "sheet"
    name, n = base, 1
    lowered = {t.lower() for t in taken}
    while name.lower() in lowered:
        n += 1
        suffix = f"~{n}"
        name = base[:SHEET_NAME_LIMIT - len(suffix)] + suffix
    taken.add(name)
    return name


def number_format(column: str, series: pd.Series, extra: Mapping[str, str]) -> str | None:
    """The Excel number format for a numeric column (``None`` for text)."""
    if column in extra:
        return extra[column]
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return None
    if column in PERCENT_COLUMNS or column.endswith(("_rate", "_share")):
        return PERCENT
    if column in MONEY_COLUMNS or column.endswith(("_yuan", "_cost", "_budget")):
        return MONEY
    if pd.api.types.is_integer_dtype(series):
        return WHOLE
    values = series.dropna().to_numpy(dtype=float)
    if values.size and np.all(np.isclose(values, np.round(values))):
        return WHOLE
    return DECIMAL


def display_width(value: object) -> int:
    """How many narrow characters ``value`` takes on screen (a Chinese character takes two)."""
    text = str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


# Rows read to fit a column's width; a city's tables have millions of rows and the widest cell
# of the first thousand is a good guess.
_WIDTH_SAMPLE = 1000
_MIN_WIDTH, _MAX_WIDTH = 8, 60


def _cell_value(value: object, fmt: str | None) -> object:
    """A value openpyxl writes as is: numpy scalars as Python ones, NaN and None as empty."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


#: XlsxWriter's options for every workbook wulian writes: no text becomes a formula, a link or
#: a number (the task books of planning/taskbook.py too).
TEXT_STAYS_TEXT = {"strings_to_formulas": False, "strings_to_urls": False,
                   "strings_to_numbers": False}


def write_workbook(sheets: Sequence[Sheet], target: str | Path | None = None,
                   lang: str = DEFAULT_LANG, title: tuple[str, str] | str = "",
                   index: bool = True) -> Path | bytes:
    """Write ``sheets`` as one workbook to ``target`` (a path; ``None`` gives the bytes).

    ``lang`` is ``zh``, ``en``, ``both`` or ``codes`` (input files: codes as headers and
    values). ``index`` puts a sheet first that lists every sheet in words: its name, what it
    holds and its rows (never in ``codes`` mode, whose sheet names are the tables').

    XlsxWriter writes the file with ``strings_to_formulas`` off and every text through
    ``write_string``: no text can become a formula, a link or a number, and no apostrophe is
    added to what the reader sees.
    """
    import xlsxwriter

    if lang not in LANGS:
        raise ValueError(f"语言未知 / unknown language {lang!r}: use one of {', '.join(LANGS)}")
    raw = lang == "codes"
    buffer = io.BytesIO() if target is None else None
    path = None if target is None else Path(target)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(buffer if buffer is not None else str(path), {
        **TEXT_STAYS_TEXT, "constant_memory": True, "in_memory": buffer is not None})
    head_format = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1,
                                 "text_wrap": False, "valign": "top"})
    formats = _Formats(wb)
    taken: set[str] = set()
    index_name = None if raw or not index else sheet_name(
        pick(("目录", "Contents"), lang), taken)
    names = [sheet_name(_title(s.title, lang), taken) for s in sheets]
    title_text = pick(title, lang) if isinstance(title, tuple) else str(title)
    if index_name is not None:
        about = [pick(s.about, lang) if isinstance(s.about, tuple) else str(s.about)
                 for s in sheets]
        contents = pd.DataFrame({"sheet": names, "about": about,
                                 "rows": [len(s.frame) for s in sheets]})
        ws = wb.add_worksheet(index_name)
        _put_table(ws, contents, lang, {"rows": WHOLE}, head_format, formats, False)
        if title_text:
            ws.set_header(f"&C{title_text.replace('&', '&&')}")
    for name, sheet in zip(names, sheets, strict=True):
        ws = wb.add_worksheet(name)
        _put_table(ws, sheet.frame, lang, sheet.formats, head_format, formats, raw)
        if title_text:
            ws.set_header(f"&L{title_text.replace('&', '&&')}&R{name.replace('&', '&&')}")
    wb.close()
    if buffer is not None:
        return buffer.getvalue()
    assert path is not None
    return path


class _Formats(dict):
    """Number formats of one workbook, each added to it the first time a column asks."""

    def __init__(self, wb) -> None:
        super().__init__()
        self.wb = wb

    def __missing__(self, num_format: str):
        self[num_format] = self.wb.add_format({"num_format": num_format})
        return self[num_format]


def _put_table(ws, frame: pd.DataFrame, lang: str, extra: Mapping[str, str], head_format,
               formats: Mapping[str, object], raw: bool) -> None:
    """One table on ``ws``: the header row (frozen, filtered), then the rows, text as text."""
    columns = [str(c) for c in frame.columns]
    heads = [header(c, lang) for c in columns]
    fmts = [number_format(c, frame[c], extra) for c in columns]
    values = []
    for c in columns:
        column = frame[c]
        if CODE_COLUMNS.get(c) and not raw and not pd.api.types.is_numeric_dtype(column):
            # Few distinct codes: translate each once.
            distinct = {v: words(c, v, lang) for v in pd.unique(column.astype(object))}
            values.append([distinct[v] for v in column.astype(object).tolist()])
        elif c == "unmet" and not raw and not pd.api.types.is_numeric_dtype(column):
            values.append([_reasons_in_words(v, lang) for v in column.astype(object).tolist()])
        else:
            values.append(column.astype(object).tolist() if not
                          pd.api.types.is_numeric_dtype(column) else column.tolist())
    widths = [display_width(h) + 3 for h in heads]  # room for the filter's arrow
    for j, (column_values, fmt) in enumerate(zip(values, fmts, strict=True)):
        for v in column_values[:_WIDTH_SAMPLE]:
            v = _cell_value(v, fmt)
            if v is None:
                continue
            if isinstance(v, int | float) and not isinstance(v, bool):
                w = 7 if fmt == PERCENT else len(f"{v:,.2f}") + (2 if fmt == MONEY else 0)
            else:
                w = display_width(v)
            widths[j] = max(widths[j], w + 2)
    for j, (w, fmt) in enumerate(zip(widths, fmts, strict=True)):
        ws.set_column(j, j, max(_MIN_WIDTH, min(_MAX_WIDTH, w)),
                      formats[fmt] if fmt else None)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, max(len(frame), 1), max(len(columns) - 1, 0))
    print_setup(ws, len(columns))
    for j, h in enumerate(heads):
        ws.write_string(0, j, h, head_format)
    rows = len(frame)
    for i in range(rows):
        for j in range(len(columns)):
            v = _cell_value(values[j][i], fmts[j])
            if v is None:
                continue
            if isinstance(v, str):
                if v:
                    ws.write_string(i + 1, j, v)
            elif isinstance(v, bool):
                ws.write_boolean(i + 1, j, v)
            elif isinstance(v, int | float):
                if math.isinf(v):
                    ws.write_string(i + 1, j, "∞" if v > 0 else "-∞")
                else:
                    ws.write_number(i + 1, j, v, formats[fmts[j]] if fmts[j] else None)
            else:  # dates and whatever else: as text, exactly as shown
                ws.write_string(i + 1, j, str(v))


def _reasons_in_words(value: object, lang: str) -> object:
    """A plan's ``unmet`` text with each reason code, "(no_eligible_offer)", in words."""
    if not isinstance(value, str) or "(" not in value:
        return value
    from wulian.ui import text

    for code in vocab.REASON_ZH:
        token = f"({code})"
        if token in value:
            shown = (text.reason(code, "zh") if lang == "zh" else text.reason(code, "en")
                     if lang == "en" else f"{text.reason(code, 'zh')} {text.reason(code, 'en')}")
            value = value.replace(token, f"({shown})")
    return value


def _title(title: str | tuple[str, str], lang: str) -> str:
    """A sheet's title in ``lang``: a (中文, English) pair, a key of the text table's
    ``SHEETS``, or words as given."""
    from wulian.ui.text import SHEETS

    if isinstance(title, tuple):
        return pick(title, lang)
    if title in SHEETS:
        return pick(SHEETS[title], lang) if lang != "codes" else title
    return title


def print_setup(ws, columns: int) -> None:
    """A4, landscape when the table is wide, one page wide, the header row on every page."""
    ws.set_paper(9)  # A4
    if columns > 6:
        ws.set_landscape()
    else:
        ws.set_portrait()
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0)
    ws.set_margins(left=0.5, right=0.5, top=0.75, bottom=0.75)


def tables_workbook(tables: Mapping[str, pd.DataFrame], target: str | Path | None = None,
                    lang: str = DEFAULT_LANG, title: tuple[str, str] | str = "",
                    order: Iterable[str] | None = None) -> Path | bytes:
    """Named tables (``allocations``, ``unmet`` …) as a workbook, a sheet each, titled and
    described by the text table (``SHEETS``)."""
    from wulian.ui.text import SHEET_ABOUT

    names = list(order) if order is not None else sorted(
        tables, key=lambda n: READING_ORDER.index(n) if n in READING_ORDER else len(
            READING_ORDER))
    sheets = [Sheet(name, tables[name], SHEET_ABOUT.get(name, ""), TABLE_FORMATS.get(name, {}))
              for name in names if name in tables]
    return write_workbook(sheets, target, lang, title)


__all__ = ["Sheet", "write_workbook", "tables_workbook", "sheet_name", "header", "words",
           "number_format", "print_setup", "TEXT_STAYS_TEXT", "LANGS", "DEFAULT_LANG",
           "PERCENT", "MONEY"]
