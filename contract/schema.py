"""One schema declaration per table of a scenario, used by the loaders, the API and the UI.

A column declares its type, whether the file must have it, whether a value may be left empty,
the codes it allows, its unit, its bounds, the table it refers to and its Chinese and English
description. ``docs/formats.md`` is generated from these declarations (``wulian formats``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wulian.contract import vocab

# Column types. ``list`` is a ';'-separated list of codes in one cell; ``week`` an ISO week
# (``2026-W49``); ``money`` yuan to the cent.
DTYPES = ("str", "int", "float", "money", "bool", "list", "week")


@dataclass(frozen=True)
class Column:
    """One column of a table in the data contract."""

    name: str
    dtype: str
    zh: str
    en: str
    required: bool = True  # the file must have the column
    nullable: bool = False  # a value may be left empty
    allowed: tuple[str, ...] = ()  # allowed codes (for str and list columns)
    unit: str = ""
    min: float | None = None  # smallest allowed value, inclusive
    positive: bool = False  # value must be > 0
    ref: str = ""  # "table.column" this column refers to
    default: object = None  # value used when the optional column is absent or empty

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"column {self.name}: unknown dtype {self.dtype!r}")


@dataclass(frozen=True)
class Table:
    """One table of a scenario: its key, its columns and whether the scenario must have it."""

    name: str
    zh: str
    en: str
    key: str  # primary-key column ("" when the table has no single key)
    columns: tuple[Column, ...]
    required: bool = True
    notes: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


def _codes(d: dict[str, tuple[str, str]]) -> tuple[str, ...]:
    return tuple(d)


def _degrees(name: str, zh: str, en: str, *, required: bool = True,
             nullable: bool = False) -> Column:
    """A latitude or longitude column."""
    return Column(name, "float", zh, en, required=required, nullable=nullable, unit="degree")

CENTRES = Table(
    "centres", "中心", "centres", key="centre_id",
    columns=(
        Column("centre_id", "str", "中心编号", "centre id"),
        Column("name", "str", "名称", "name"),
        Column("level", "str", "层级", "level", allowed=_codes(vocab.LEVELS)),
        Column("parent_id", "str", "上级中心", "parent centre (empty for the city centre)",
               nullable=True, ref="centres.centre_id"),
        _degrees("lat", "纬度", "latitude"),
        _degrees("lon", "经度", "longitude"),
    ),
    notes=(
        "Four levels: city → district → street → station; each centre's parent is exactly one "
        "level up, and exactly one city centre has no parent.",
    ),
)

SERVICES = Table(
    "services", "服务", "services", key="service_id",
    columns=(
        Column("service_id", "str", "服务编号", "service id"),
        Column("name_zh", "str", "中文名称", "Chinese name"),
        Column("name_en", "str", "英文名称", "English name"),
        Column("unit", "str", "计量单位", "unit of quantity", allowed=_codes(vocab.UNITS)),
        Column("delivery", "str", "提供方式", "how it is delivered",
               allowed=_codes(vocab.DELIVERIES)),
        Column("dimension", "str", "对应维度", "deprivation dimension it addresses",
               allowed=_codes(vocab.DIMENSIONS)),
        Column("skills", "list", "所需技能", "skills a volunteer needs to deliver it",
               nullable=True, allowed=_codes(vocab.SKILLS), default=""),
        Column("safeguarding", "bool", "需背景审查", "needs a background-checked volunteer",
               required=False, default=False),
        Column("visit_hours", "float", "每次时长", "hours one visit takes (in-person services)",
               required=False, nullable=True, unit="hour", positive=True),
    ),
    notes=("Units `hour`, `visit` and `item` are whole numbers; `yuan` is counted to the cent.",),
)

HOUSEHOLDS = Table(
    "households", "家庭", "households", key="household_id",
    columns=(
        Column("household_id", "str", "家庭编号(化名)", "household id (pseudonymous)"),
        Column("station_id", "str", "所属站点", "community station", ref="centres.centre_id"),
        Column("size", "int", "家庭人口", "household size", unit="person", positive=True),
        Column("categories", "list", "救助类别", "assistance categories", nullable=True,
               allowed=_codes(vocab.CATEGORIES), default=""),
        *(
            Column(col, "int", f"{zh}剥夺", f"deprived in {en} (1) or not (0)",
                   allowed=("0", "1"))
            for col, (zh, en) in zip(vocab.DEPRIVATION_COLUMNS, vocab.DIMENSIONS.values(),
                                     strict=True)
        ),
        Column("tier", "str", "指定颜色", "colour set by the assessor (overrides the computed one)",
               required=False, nullable=True, allowed=_codes(vocab.TIERS), default=""),
        _degrees("lat", "纬度", "latitude (empty: the station's)", required=False,
                 nullable=True),
        _degrees("lon", "经度", "longitude (empty: the station's)", required=False,
                 nullable=True),
    ),
    notes=(
        "Deprivation columns `d_*` hold 1 when the household is deprived in that dimension, "
        "0 when not (the assessment's indicator g_ij).",
        "Without `lat`/`lon` a household is placed at its station, which keeps it pseudonymous.",
    ),
)

NEEDS = Table(
    "needs", "需求", "needs", key="need_id",
    columns=(
        Column("need_id", "str", "需求编号", "need id"),
        Column("household_id", "str", "家庭编号", "household", ref="households.household_id"),
        Column("service_id", "str", "服务编号", "service needed", ref="services.service_id"),
        Column("quantity", "float", "需求数量", "units needed (in the service's unit)",
               positive=True),
        Column("urgency", "int", "紧急程度", "urgency, 1 (low) to 3 (high)",
               allowed=("1", "2", "3")),
        Column("week", "week", "周次", "ISO week the need is open (e.g. 2026-W49)"),
    ),
)

PROVIDERS = Table(
    "providers", "资源方", "providers", key="provider_id",
    columns=(
        Column("provider_id", "str", "资源方编号", "provider id"),
        Column("name", "str", "名称", "name"),
        Column("linkage", "str", "联动类型", "which of the five linkages",
               allowed=_codes(vocab.LINKAGES)),
        Column("centre_id", "str", "所属中心", "centre it belongs to", ref="centres.centre_id"),
    ),
)

OFFERS = Table(
    "offers", "供给", "offers", key="offer_id",
    columns=(
        Column("offer_id", "str", "供给编号", "offer id"),
        Column("provider_id", "str", "资源方", "provider", ref="providers.provider_id"),
        Column("service_id", "str", "服务", "service offered", ref="services.service_id"),
        Column("capacity", "float", "本周容量", "units available in the week", positive=True),
        Column("unit_cost", "money", "单位成本", "yuan per unit charged to the fund",
               unit="yuan", min=0.0, required=False, default=0.0),
        Column("fund_id", "str", "出资基金", "fund that pays (empty: the provider bears it)",
               required=False, nullable=True, ref="funds.fund_id", default=""),
        Column("coverage_centre_id", "str", "覆盖范围", "centre whose subtree it serves "
               "(empty: the provider's centre)", required=False, nullable=True,
               ref="centres.centre_id", default=""),
        Column("eligible_categories", "list", "适用类别", "categories eligible (empty: anyone)",
               required=False, nullable=True, allowed=_codes(vocab.CATEGORIES), default=""),
        Column("eligible_tiers", "list", "适用颜色", "colours eligible (empty: any colour)",
               required=False, nullable=True, allowed=_codes(vocab.TIERS), default=""),
        Column("max_per_household", "float", "每户上限", "most units one household gets",
               required=False, nullable=True, positive=True),
    ),
    notes=(
        "Coverage: an offer serves the households in the subtree of `coverage_centre_id` "
        "(empty → its provider's `centre_id`).",
        "Eligibility: a household may use an offer when it has at least one of "
        "`eligible_categories` (empty = anyone) and its colour is in `eligible_tiers` "
        "(empty = any colour).",
        "Money: each unit from an offer with `unit_cost` > 0 and a `fund_id` costs `unit_cost` "
        "yuan charged to that fund.",
    ),
)

FUNDS = Table(
    "funds", "基金", "funds", key="fund_id",
    columns=(
        Column("fund_id", "str", "基金编号", "fund id"),
        Column("name", "str", "名称", "name"),
        Column("source", "str", "资金来源", "source of the money",
               allowed=_codes(vocab.FUND_SOURCES)),
        Column("budget", "money", "本周预算", "yuan available in the week", unit="yuan",
               min=0.0),
        Column("centre_id", "str", "所属中心", "centre whose subtree's households it pays for",
               ref="centres.centre_id"),
        Column("earmarked_services", "list", "限定服务", "services it pays for (empty: any)",
               required=False, nullable=True, ref="services.service_id", default=""),
        Column("max_per_household", "money", "每户上限", "most yuan one household gets",
               required=False, nullable=True, unit="yuan", positive=True),
    ),
    notes=(
        "A fund pays only for households in the subtree of its `centre_id`, only for its "
        "`earmarked_services` (empty = any), at most `budget` yuan in the week and at most "
        "`max_per_household` yuan per household.",
    ),
)

VOLUNTEERS = Table(
    "volunteers", "志愿者", "volunteers", key="volunteer_id", required=False,
    columns=(
        Column("volunteer_id", "str", "志愿者编号(化名)", "volunteer id (pseudonymous)"),
        Column("provider_id", "str", "所属组织", "volunteer team (a provider)",
               ref="providers.provider_id"),
        Column("station_id", "str", "所属站点", "home station", ref="centres.centre_id"),
        _degrees("lat", "住址纬度", "home latitude"),
        _degrees("lon", "住址经度", "home longitude"),
        Column("skills", "list", "技能", "skills", nullable=True,
               allowed=_codes(vocab.SKILLS), default=""),
        Column("languages", "list", "语言", "languages spoken", required=False, nullable=True,
               allowed=_codes(vocab.LANGUAGES), default="mandarin"),
        Column("gender", "str", "性别", "gender", required=False, nullable=True,
               allowed=_codes(vocab.GENDERS), default=""),
        Column("max_hours", "float", "每周时长上限", "most hours a week", unit="hour",
               positive=True),
        Column("max_travel_km", "float", "最远距离", "farthest distance from home", unit="km",
               positive=True),
        Column("background_checked", "bool", "已背景审查", "background check passed",
               required=False, default=False),
        Column("availability", "list", "可服务时段", "half-day slots available", nullable=True,
               allowed=_codes(vocab.SLOTS), default=""),
    ),
    notes=("A volunteer serves households within `max_travel_km` (great-circle) of home.",),
)

HISTORY = Table(
    "history", "历史走访", "visit history", key="", required=False,
    columns=(
        Column("week", "week", "周次", "ISO week of the visit"),
        Column("household_id", "str", "家庭编号", "household", ref="households.household_id"),
        # Empty: a volunteer who has left. The register keeps what happened and shows a visit
        # by someone no longer in it so (docs/cycle.md, "People leave"). (The Chinese name is
        # also a header files may use: kept as it was.)
        Column("volunteer_id", "str", "志愿者编号", "volunteer (empty: one who has left)",
               nullable=True, ref="volunteers.volunteer_id", default=""),
    ),
    notes=("A visit with no volunteer still counts for the household's monitoring cycle, "
           "and gives no continuity (the volunteer has left).",),
)

PINS = Table(
    "pins", "锁定", "pins", key="", required=False,
    columns=(
        Column("need_id", "str", "需求编号", "need", ref="needs.need_id"),
        Column("offer_id", "str", "供给编号", "offer kept (or give a volunteer)",
               nullable=True, ref="offers.offer_id", default=""),
        Column("volunteer_id", "str", "志愿者编号", "volunteer kept (or give an offer)",
               required=False, nullable=True, ref="volunteers.volunteer_id", default=""),
        Column("units", "float", "数量", "units kept", positive=True),
        Column("slot", "str", "时段", "half-day slot (volunteer visits)", required=False,
               nullable=True, allowed=_codes(vocab.SLOTS), default=""),
    ),
    notes=("Each pin names exactly one of `offer_id` and `volunteer_id`.",),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (CENTRES, SERVICES, HOUSEHOLDS, NEEDS, PROVIDERS, OFFERS, FUNDS, VOLUNTEERS,
              HISTORY, PINS)
}
REQUIRED_TABLES: tuple[str, ...] = tuple(n for n, t in TABLES.items() if t.required)
