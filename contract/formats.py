"""``docs/formats.md``, rendered from the schema declarations so the two can never disagree."""

from __future__ import annotations

from wulian.contract import vocab
from wulian.contract.schema import TABLES, Column

_VOCABS = {
    "Levels 层级 (`centres.level`)": vocab.LEVELS,
    "Colours 四色 (`tier`, `eligible_tiers`)": vocab.TIERS,
    "Linkages 五个联动 (`providers.linkage`)": vocab.LINKAGES,
    "Categories 救助类别 (`categories`, `eligible_categories`)": vocab.CATEGORIES,
    "Dimensions 维度 (`services.dimension`, `households.d_*`)": vocab.DIMENSIONS,
    "Units 单位 (`services.unit`)": vocab.UNITS,
    "Deliveries 提供方式 (`services.delivery`)": vocab.DELIVERIES,
    "Fund sources 资金来源 (`funds.source`)": vocab.FUND_SOURCES,
    "Skills 技能 (`services.skills`, `volunteers.skills`)": vocab.SKILLS,
    "Languages 语言 (`volunteers.languages`)": vocab.LANGUAGES,
    "Genders 性别 (`volunteers.gender`)": vocab.GENDERS,
    "Slots 时段 (`volunteers.availability`, `pins.slot`)": vocab.SLOTS,
}


def _type(col: Column) -> str:
    text = {"list": "list (`;`)", "money": "yuan (0.01)", "week": "ISO week"}.get(col.dtype,
                                                                                col.dtype)
    return text + (f", {col.unit}" if col.unit and col.unit not in ("yuan",) else "")


def _rule(col: Column) -> str:
    parts = []
    if col.positive:
        parts.append("> 0")
    elif col.min is not None:
        parts.append(f"≥ {col.min:g}")
    if col.allowed and len(col.allowed) <= 4:
        parts.append("one of " + ", ".join(f"`{a}`" for a in col.allowed))
    elif col.allowed:
        parts.append("codes below")
    if col.ref:
        parts.append(f"→ `{col.ref}`")
    if col.default not in (None, ""):
        parts.append(f"default `{col.default}`")
    return "; ".join(parts)


def render_formats() -> str:
    """The Markdown text of ``docs/formats.md``."""
    lines = [
        "# Scenario file format 场景文件格式",
        "",
        "<!-- Generated from contract/schema.py by `wulian formats --out docs/formats.md`; "
        "a test checks it is current. -->",
        "",
        "A scenario is a folder of CSV files (`centres.csv`, …), one XLSX workbook with a sheet "
        "per table, or a folder of Parquet files. CSV may be UTF-8 (with or without BOM) or "
        "GB18030/GBK, as Excel in China saves it. Lists inside a cell are separated by `;`. "
        "IDs are text. Columns whose name starts with `x_` are yours: carried along, never "
        "checked. A header may be the column's code (`centre_id`), its Chinese name below "
        "(`中心编号`), or both (`中心编号 centre_id`). A missing required column is reported "
        "once, without the references that would fail for want of it. "
        "Row numbers in reports count the header as row 1, as a spreadsheet does. "
        "Coordinates (`lat`, `lon`, WGS-84 degrees) must lie in mainland China (latitude "
        "18–54, longitude 73–135).",
        "",
        "| table | required | key |",
        "|---|---|---|",
    ]
    for t in TABLES.values():
        lines.append(f"| `{t.name}` {t.zh} | {'yes' if t.required else 'no (missing = none)'} "
                     f"| `{t.key or '—'}` |")
    for t in TABLES.values():
        lines += ["", f"## `{t.name}` — {t.zh} / {t.en}", "",
                  "| column | type | in file | may be empty | rule | 说明 | description |",
                  "|---|---|---|---|---|---|---|"]
        for c in t.columns:
            lines.append(
                f"| `{c.name}` | {_type(c)} | {'yes' if c.required else 'no'} | "
                f"{'yes' if c.nullable or not c.required else 'no'} | {_rule(c)} | {c.zh} | "
                f"{c.en} |"
            )
        if t.notes:
            lines.append("")
            lines += [f"- {note}" for note in t.notes]
    lines += ["", "## Codes 代码", ""]
    for title, codes in _VOCABS.items():
        lines += [f"### {title}", "", "| code | 中文 | English |", "|---|---|---|"]
        lines += [f"| `{k}` | {zh} | {en} |" for k, (zh, en) in codes.items()]
        lines.append("")
    return "\n".join(lines)
