"""Synthetic supply for Chengdu-shaped scenarios: the services catalogue and the five linkages'
providers, offers, funds and volunteers.

Supply is calibrated against the week's demand so that it is scarce and uneven on purpose:
each service has a ``supply_ratio`` (weekly capacity as a share of weekly need; rehabilitation
and nursing far below 1, food parcels above it), each district a random ``richness`` (the
urban core and the function zones better served than the counties), and each fund a budget
below what its offers could spend for most funds. That is what makes priorities, budgets and
the reasons for unmet need matter downstream.

Nothing here reads or writes files; every random draw comes from the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wulian.contract import schema, vocab
from wulian.contract.hierarchy import Hierarchy
from wulian.resources import geography

# ---------------------------------------------------------------------------------------------
# Services catalogue
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the catalogue, with what the supply generator needs to know about it.

    The first nine fields are the ``services`` table's columns; the rest drive supply.

    Attributes
    ----------
    supply_ratio
        Weekly capacity across all linkages as a share of the week's need, before the
        district's richness and noise: below 1 means the service is short.
    channels
        Linkage → share of that capacity. ``fund`` means cash paid out by a fund's own offer.
    paid_cost
        Typical yuan per unit when a fund pays for it (1 for cash services).
    paid_share
        Chance that a firm's or NGO's offer of it is paid by a fund rather than donated.
    department
        The department (联动部门) running its statutory offer, when ``department`` is a channel.
    statutory_categories, statutory_tiers
        Eligibility of the statutory offer (empty: anyone).
    focus_categories
        Categories a non-statutory provider sometimes restricts an offer to.
    household_cap
        Typical most units one household gets from an offer that sets a cap.
    firm_trade
        The kind of firm that supplies it (a key of ``_FIRM_TRADES``).
    """

    service_id: str
    name_zh: str
    name_en: str
    unit: str
    delivery: str
    dimension: str
    skills: tuple[str, ...] = ()
    safeguarding: bool = False
    visit_hours: float | None = None
    supply_ratio: float = 0.5
    channels: dict[str, float] = field(default_factory=dict)
    paid_cost: float = 0.0
    paid_share: float = 0.0
    department: str = ""
    statutory_categories: tuple[str, ...] = ()
    statutory_tiers: tuple[str, ...] = ()
    focus_categories: tuple[str, ...] = ()
    household_cap: float = 1.0
    firm_trade: str = ""


_S = ServiceSpec
SERVICE_CATALOGUE: tuple[ServiceSpec, ...] = (
    _S("medical_aid", "医疗救助", "medical aid", "yuan", "cash", "health",
       supply_ratio=0.45, channels={"department": 0.6, "fund": 0.4}, paid_cost=1.0,
       department="医疗保障局", statutory_categories=("dibao", "tekun", "low_income"),
       focus_categories=("serious_illness",), household_cap=5000.0),
    _S("home_modification", "适老化及无障碍改造", "home modification", "item", "in_kind",
       "housing", supply_ratio=0.2, channels={"department": 0.3, "firm": 0.7},
       paid_cost=3500.0, paid_share=0.8, department="民政局",
       statutory_categories=("elderly_alone", "disabled", "tekun"),
       focus_categories=("elderly_alone", "disabled"), household_cap=1.0,
       firm_trade="builder"),
    _S("disabled_livelihood", "残疾人生计帮扶", "livelihood support for disabled people",
       "visit", "in_person", "capability", ("job_coaching",), visit_hours=2.0,
       supply_ratio=0.3, channels={"ngo": 0.7, "department": 0.3}, paid_cost=120.0,
       paid_share=0.85, department="残疾人联合会", statutory_categories=("disabled",),
       focus_categories=("disabled",), household_cap=2.0),
    _S("child_care", "困境儿童照护", "child care", "hour", "in_person", "social",
       ("childcare",), safeguarding=True, visit_hours=2.0, supply_ratio=0.35,
       channels={"ngo": 0.6, "volunteer": 0.4}, paid_cost=60.0, paid_share=0.85,
       focus_categories=("child_in_difficulty",), household_cap=6.0),
    _S("elderly_companionship", "独居老人探访陪伴", "companionship visits to elderly people",
       "visit", "in_person", "social", ("companionship",), safeguarding=True,
       visit_hours=1.5, supply_ratio=0.5, channels={"volunteer": 0.7, "ngo": 0.3},
       paid_cost=50.0, paid_share=0.85, focus_categories=("elderly_alone",),
       household_cap=2.0),
    _S("counselling", "心理疏导", "counselling", "hour", "in_person", "health",
       ("counselling",), visit_hours=1.0, supply_ratio=0.3,
       channels={"ngo": 0.8, "volunteer": 0.2}, paid_cost=150.0, paid_share=0.9,
       household_cap=3.0),
    _S("tutoring", "课业辅导", "tutoring", "hour", "in_person", "education", ("tutoring",),
       safeguarding=True, visit_hours=2.0, supply_ratio=0.6,
       channels={"volunteer": 0.7, "ngo": 0.3}, paid_cost=50.0, paid_share=0.8,
       focus_categories=("child_in_difficulty",), household_cap=4.0),
    _S("job_training", "就业技能培训", "job training", "hour", "in_person", "capability",
       ("job_coaching",), visit_hours=3.0, supply_ratio=0.8,
       channels={"department": 0.6, "firm": 0.4}, paid_cost=40.0, paid_share=0.3,
       department="人力资源和社会保障局",
       statutory_categories=("unemployed", "dibao", "low_income"),
       focus_categories=("unemployed",), household_cap=12.0, firm_trade="staffing"),
    _S("legal_aid", "法律援助", "legal aid", "hour", "in_person", "capability", ("legal",),
       visit_hours=1.0, supply_ratio=1.1, channels={"department": 0.7, "volunteer": 0.3},
       department="司法局", household_cap=3.0),
    _S("emergency_cash", "临时救助金", "emergency cash", "yuan", "cash", "income",
       supply_ratio=0.55, channels={"department": 0.6, "fund": 0.4}, paid_cost=1.0,
       department="民政局", statutory_tiers=("red", "orange"), household_cap=2000.0),
    _S("meal_help", "助餐送餐", "meal help", "visit", "in_person", "health", ("cooking",),
       visit_hours=0.5, supply_ratio=0.5,
       channels={"volunteer": 0.5, "ngo": 0.3, "firm": 0.2}, paid_cost=15.0,
       paid_share=0.5, focus_categories=("elderly_alone", "disabled"), household_cap=7.0,
       firm_trade="catering"),
    _S("rehabilitation", "康复训练", "rehabilitation", "hour", "in_person", "health",
       ("rehabilitation",), visit_hours=1.5, supply_ratio=0.15,
       channels={"ngo": 0.8, "department": 0.2}, paid_cost=120.0, paid_share=0.9,
       department="残疾人联合会", statutory_categories=("disabled",),
       focus_categories=("disabled",), household_cap=4.0),
    _S("nursing", "居家护理", "home nursing", "hour", "in_person", "health", ("nursing",),
       safeguarding=True, visit_hours=2.0, supply_ratio=0.15,
       channels={"ngo": 0.8, "volunteer": 0.2}, paid_cost=80.0, paid_share=0.9,
       focus_categories=("serious_illness", "disabled"), household_cap=6.0),
    _S("errands", "代办跑腿", "errands", "visit", "in_person", "social", ("errands",),
       visit_hours=1.0, supply_ratio=0.9, channels={"volunteer": 1.0}, household_cap=2.0),
    _S("digital_help", "数字助老", "digital help", "visit", "in_person", "capability",
       ("digital",), visit_hours=1.0, supply_ratio=1.2,
       channels={"volunteer": 0.8, "firm": 0.2}, paid_cost=30.0, paid_share=0.1,
       household_cap=2.0, firm_trade="telecom"),
    _S("education_grant", "助学金", "education grant", "yuan", "cash", "education",
       supply_ratio=0.7, channels={"department": 0.6, "fund": 0.4}, paid_cost=1.0,
       department="教育局",
       statutory_categories=("dibao", "tekun", "child_in_difficulty", "low_income"),
       focus_categories=("child_in_difficulty",), household_cap=1500.0),
    _S("heating_cooling", "取暖降温物资", "heating and cooling goods", "item", "in_kind",
       "housing", supply_ratio=0.6, channels={"firm": 0.8, "department": 0.2},
       paid_cost=300.0, paid_share=0.3, department="民政局",
       statutory_categories=("tekun", "dibao", "elderly_alone"), household_cap=1.0,
       firm_trade="appliance"),
    _S("food_parcel", "爱心食品包", "food parcel", "item", "in_kind", "income",
       supply_ratio=1.3, channels={"firm": 0.8, "ngo": 0.2}, paid_cost=150.0,
       paid_share=0.2, household_cap=3.0, firm_trade="supermarket"),
    _S("home_repair", "居家维修", "home repair", "visit", "in_person", "housing", ("repair",),
       visit_hours=2.0, supply_ratio=0.4, channels={"volunteer": 0.5, "firm": 0.5},
       paid_cost=200.0, paid_share=0.4, household_cap=1.0, firm_trade="property"),
    _S("living_allowance", "生活补助", "living allowance", "yuan", "cash", "income",
       supply_ratio=0.5, channels={"department": 0.8, "fund": 0.2}, paid_cost=1.0,
       department="民政局", statutory_categories=("dibao", "tekun"), household_cap=600.0),
    _S("assistive_device", "康复辅具", "assistive device", "item", "in_kind", "capability",
       supply_ratio=0.35, channels={"department": 0.6, "firm": 0.4}, paid_cost=900.0,
       paid_share=0.5, department="残疾人联合会", statutory_categories=("disabled",),
       focus_categories=("disabled",), household_cap=1.0, firm_trade="medical"),
    _S("school_supplies", "学习用品包", "school supplies", "item", "in_kind", "education",
       supply_ratio=1.0, channels={"firm": 1.0}, paid_cost=120.0, paid_share=0.2,
       focus_categories=("child_in_difficulty",), household_cap=2.0,
       firm_trade="stationery"),
    _S("case_work", "个案社会工作", "social case work", "hour", "in_person", "social",
       ("counselling",), visit_hours=1.5, supply_ratio=0.25, channels={"ngo": 1.0},
       paid_cost=100.0, paid_share=0.95, household_cap=3.0),
    _S("household_goods", "生活物资(被褥家电)", "household goods", "item", "in_kind",
       "assets", supply_ratio=0.7, channels={"firm": 1.0}, paid_cost=400.0,
       paid_share=0.3, household_cap=2.0, firm_trade="appliance"),
)
SERVICE_BY_ID: dict[str, ServiceSpec] = {s.service_id: s for s in SERVICE_CATALOGUE}

# Firm trades: name suffix of a firm of that trade.
_FIRM_TRADES: dict[str, str] = {
    "builder": "建筑装饰工程有限公司",
    "staffing": "人力资源服务有限公司",
    "catering": "餐饮管理有限公司",
    "telecom": "通信技术有限公司",
    "appliance": "电器有限公司",
    "supermarket": "超市有限公司",
    "property": "物业服务有限公司",
    "medical": "医疗器械有限公司",
    "stationery": "文化用品有限公司",
}

# A district's richness (how well it is served) by kind: the mean of a lognormal draw.
_RICHNESS_BY_KIND = {"core": 1.25, "new_area": 1.45, "suburban": 0.95, "outer": 0.6}
_RICHNESS_SPREAD = 0.25

# Quantity blocks capacities are counted in: whole units, or 100 yuan for cash.
_YUAN_BLOCK = 100.0


def build_services() -> pd.DataFrame:
    """The services catalogue as the ``services`` table (schema column order, sorted by id)."""
    rows = {
        "service_id": [s.service_id for s in SERVICE_CATALOGUE],
        "name_zh": [s.name_zh for s in SERVICE_CATALOGUE],
        "name_en": [s.name_en for s in SERVICE_CATALOGUE],
        "unit": [s.unit for s in SERVICE_CATALOGUE],
        "delivery": [s.delivery for s in SERVICE_CATALOGUE],
        "dimension": [s.dimension for s in SERVICE_CATALOGUE],
        "skills": [";".join(s.skills) for s in SERVICE_CATALOGUE],
        "safeguarding": [s.safeguarding for s in SERVICE_CATALOGUE],
        "visit_hours": [np.nan if s.visit_hours is None else s.visit_hours
                        for s in SERVICE_CATALOGUE],
    }
    frame = pd.DataFrame(rows)[list(schema.SERVICES.column_names)]
    return frame.sort_values("service_id", ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Small vectorised helpers
# ---------------------------------------------------------------------------------------------


def make_ids(prefix: str, count: int, width: int) -> np.ndarray:
    """``count`` ids ``prefix`` + 1-based number zero-padded to ``width`` (wider if needed)."""
    width = max(width, len(str(count)))
    numbers = np.arange(1, count + 1).astype(str)
    return np.strings.add(prefix, np.strings.zfill(numbers, width))


def join_codes(mask: np.ndarray, codes: tuple[str, ...] | list[str]) -> np.ndarray:
    """Each row of a boolean matrix as the ';'-joined codes of its True columns.

    Rows are encoded as bit masks and only the distinct masks are joined in Python, so the
    cost does not grow with the number of rows.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape[0] == 0:
        return np.array([], dtype=str)
    bits = mask.astype(np.int64) @ (np.int64(1) << np.arange(mask.shape[1], dtype=np.int64))
    distinct, inverse = np.unique(bits, return_inverse=True)
    joined = np.array([";".join(c for j, c in enumerate(codes) if (b >> j) & 1)
                       for b in distinct.tolist()])
    return joined[inverse]


def _choose_rows(rng: np.random.Generator, weights: np.ndarray) -> int:
    """Index of one row drawn with probability proportional to ``weights``."""
    return int(rng.choice(len(weights), p=weights / weights.sum()))


# ---------------------------------------------------------------------------------------------
# Funds
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FundTemplate:
    name: str  # "{area}" is replaced by the district's name
    manager: str  # the fund-linkage provider that runs it
    source: str
    earmarked: tuple[str, ...] = ()
    max_per_household: float | None = None


# City funds in the order presets take them (the tiny preset takes only the first).
_CITY_FUNDS: tuple[_FundTemplate, ...] = (
    _FundTemplate("成都市福彩公益金困境群体关爱项目", "成都市福利彩票公益金管理办公室",
                  "welfare_lottery", ("elderly_companionship", "child_care", "rehabilitation",
                                      "nursing", "case_work", "meal_help")),
    _FundTemplate("成都市社会救助资金", "成都市社会救助资金管理中心", "government",
                  ("medical_aid", "living_allowance", "emergency_cash", "education_grant")),
    _FundTemplate("成都市慈善总会大病救助基金", "成都市慈善总会", "charity", ("medical_aid",),
                  5000.0),
    _FundTemplate("成都市慈善总会助学基金", "成都市慈善总会", "charity",
                  ("education_grant", "school_supplies"), 2000.0),
    _FundTemplate("蜀光企业联合爱心基金", "蜀光企业联合会", "enterprise",
                  ("home_modification", "assistive_device", "heating_cooling",
                   "household_goods")),
    _FundTemplate("成都市红十字会应急救助基金", "成都市红十字会", "charity",
                  ("emergency_cash", "food_parcel"), 1000.0),
    _FundTemplate("成都市残疾人福利基金", "成都市残疾人福利基金会", "charity",
                  ("disabled_livelihood", "assistive_device", "rehabilitation"), 3000.0),
    _FundTemplate("天府助老基金", "天府助老基金会", "charity",
                  ("elderly_companionship", "meal_help", "nursing", "home_modification")),
)
# District funds in the order a district takes them: every district has a general
# government fund; richer districts add charity, welfare-lottery and enterprise funds.
_DISTRICT_FUNDS: tuple[_FundTemplate, ...] = (
    _FundTemplate("{area}社会救助专项资金", "{area}社会救助资金管理中心", "government"),
    _FundTemplate("{area}慈善会救助基金", "{area}慈善会", "charity",
                  ("medical_aid", "emergency_cash"), 3000.0),
    _FundTemplate("{area}福彩公益金", "{area}福彩公益金管理办公室", "welfare_lottery",
                  ("counselling", "child_care", "tutoring", "rehabilitation",
                   "elderly_companionship")),
    _FundTemplate("{area}企业联动基金", "{area}企业联动基金会", "enterprise"),
)
# An enterprise fund picks its earmarks from these.
_ENTERPRISE_CHOICES = ("food_parcel", "household_goods", "school_supplies", "heating_cooling",
                       "job_training", "home_repair", "digital_help", "education_grant")


def _district_fund_counts(rng: np.random.Generator, richness: np.ndarray, total: int
                          ) -> np.ndarray:
    """How many funds each district has: at least one, at most one per template, the rest
    going preferably to richer districts."""
    most = len(_DISTRICT_FUNDS)
    total = int(np.clip(total, len(richness), most * len(richness)))
    counts = np.ones(len(richness), dtype=np.int64)
    weights = richness * rng.uniform(0.5, 1.5, size=len(richness))
    for _ in range(total - len(richness)):
        room = np.where(counts < most, weights, 0.0)
        counts[_choose_rows(rng, room)] += 1
    return counts


def _make_funds(rng: np.random.Generator, districts: pd.DataFrame, city_funds: int,
                district_funds: int) -> pd.DataFrame:
    """Funds without budgets (set once their offers are known), one row per fund."""
    counts = _district_fund_counts(rng, districts["richness"].to_numpy(), district_funds)
    rows = [(t, geography.CITY_ID, "") for t in _CITY_FUNDS[:city_funds]]
    for (district_id, name), count in zip(districts[["district_id", "name"]].itertuples(
            index=False), counts, strict=True):
        rows += [(t, district_id, name) for t in _DISTRICT_FUNDS[:count]]
    earmarks, caps = [], []
    for template, _, _ in rows:
        earmarked = template.earmarked
        cap = template.max_per_household
        if template.source == "enterprise" and not earmarked:
            earmarked = tuple(sorted(rng.choice(_ENTERPRISE_CHOICES, size=3, replace=False)))
            cap = float(rng.choice([1000.0, 2000.0])) if rng.random() < 0.5 else None
        earmarks.append(earmarked)
        caps.append(np.nan if cap is None else cap)
    return pd.DataFrame({
        "fund_id": make_ids("F", len(rows), 3),
        "name": [t.name.format(area=area) for t, _, area in rows],
        "manager": [t.manager.format(area=area) for t, _, area in rows],
        "source": [t.source for t, _, _ in rows],
        "centre_id": [centre for _, centre, _ in rows],
        "earmarked": earmarks,
        "max_per_household": caps,
    })


# ---------------------------------------------------------------------------------------------
# Providers
# ---------------------------------------------------------------------------------------------

_PROVIDER_PREFIX = {"department": "GOV", "firm": "FIRM", "fund": "FUND", "ngo": "NGO",
                    "volunteer": "VOL"}


def _make_providers(rng: np.random.Generator, districts: pd.DataFrame, streets: pd.DataFrame,
                    funds: pd.DataFrame, ngos: int) -> pd.DataFrame:
    """Every provider of the five linkages, with the keys the offer builder looks them up by.

    Columns beyond the contract's: ``district_id`` (of its centre; "" at city level),
    ``role`` (department name, firm trade, or team level) used to pick a provider for an
    offer.
    """
    rows: list[tuple[str, str, str, str, str]] = []  # linkage, name, centre, district, role
    departments = sorted({s.department for s in SERVICE_CATALOGUE if s.department})
    trades = sorted({s.firm_trade for s in SERVICE_CATALOGUE if s.firm_trade})
    ngo_counts = geography.split_whole(max(ngos, len(districts)),
                                       districts["richness"].to_numpy())
    for (district_id, name, richness), ngo_count in zip(
            districts[["district_id", "name", "richness"]].itertuples(index=False), ngo_counts,
            strict=True):
        rows += [("department", f"{name}{dept}", district_id, district_id, dept)
                 for dept in departments]
        # One firm per trade, plus a few more in richer districts.
        extra = rng.choice(trades, size=int(rng.poisson(2.0 * richness)))
        firm_trades = [*trades, *extra.tolist()]
        firm_names = geography.place_names(rng, len(firm_trades))
        rows += [("firm", f"{n}{_FIRM_TRADES[t]}", district_id, district_id, t)
                 for n, t in zip(firm_names, firm_trades, strict=True)]
        ngo_names = geography.place_names(rng, int(ngo_count))
        rows += [("ngo", f"{n}社会工作服务中心", district_id, district_id, "")
                 for n in ngo_names]
        rows.append(("volunteer", f"{name}志愿者协会", district_id, district_id, "district"))
    rows.append(("volunteer", "成都市志愿服务联合会", geography.CITY_ID, "", "city"))
    rows += [("volunteer", f"{n}志愿服务队", s, d, "street")
             for s, n, d in streets[["centre_id", "name", "district_id"]].itertuples(index=False)]
    managers = funds.drop_duplicates("manager")
    rows += [("fund", m, c, c if c != geography.CITY_ID else "", "")
             for m, c in managers[["manager", "centre_id"]].itertuples(index=False)]

    frame = pd.DataFrame(rows, columns=["linkage", "name", "centre_id", "district_id", "role"])
    ids = np.empty(len(frame), dtype=object)
    for linkage, prefix in _PROVIDER_PREFIX.items():
        members = np.flatnonzero(frame["linkage"].to_numpy() == linkage)
        ids[members] = make_ids(prefix, len(members), 4)
    frame.insert(0, "provider_id", ids.astype(str))
    return frame


# ---------------------------------------------------------------------------------------------
# Offers
# ---------------------------------------------------------------------------------------------


def _supply_lines(rng: np.random.Generator, need: pd.DataFrame, districts: pd.DataFrame,
                  funds: pd.DataFrame) -> pd.DataFrame:
    """Supply lines: one per district × service × linkage (and per fund × cash service for the
    funds' own cash offers), each with its weekly capacity before it is split into offers.

    ``need`` is indexed by district id with one column per service (units needed).
    """
    rows = []
    richness = districts.set_index("district_id")["richness"]
    for spec in SERVICE_CATALOGUE:
        if spec.service_id not in need.columns:
            continue
        per_district = need[spec.service_id]
        for linkage, share in spec.channels.items():
            if linkage == "fund":
                continue
            target = (per_district * spec.supply_ratio * share * richness.reindex(
                per_district.index).to_numpy()
                * rng.lognormal(0.0, 0.3, size=len(per_district)))
            rows += [(spec.service_id, linkage, d, cap, "") for d, cap in target.items()
                     if per_district[d] > 0]
        # The funds' own cash offers share the fund channel in proportion to the need (and
        # richness) of the area each fund covers.
        share = spec.channels.get("fund", 0.0)
        if share == 0.0:
            continue
        payers = funds[(funds["source"] != "government") & funds["earmarked"].map(
            lambda e, sid=spec.service_id: sid in e or (not e and sid == "emergency_cash"))]
        if payers.empty:
            continue
        covered = np.array([per_district.sum() if c == geography.CITY_ID
                            else per_district.get(c, 0.0) * richness[c]
                            for c in payers["centre_id"]])
        if covered.sum() == 0:
            continue
        total = per_district.sum() * spec.supply_ratio * share
        capacity = total * covered / covered.sum() * rng.lognormal(0.0, 0.3, size=len(payers))
        rows += [(spec.service_id, "fund", centre, cap, f)
                 for f, centre, cap, cov in zip(payers["fund_id"], payers["centre_id"],
                                                capacity, covered, strict=True)
                 if cov > 0]
    return pd.DataFrame(rows, columns=["service_id", "linkage", "root", "capacity", "fund_id"])


def _pieces(rng: np.random.Generator, lines: pd.DataFrame, offers: int) -> pd.DataFrame:
    """Lines kept and split into ``offers`` offers (about): fewer offers than lines keeps a
    sample of lines (at least one per linkage); more splits firm, NGO and volunteer lines into
    several smaller offers with narrower coverage.

    Returns one row per offer with the line's columns, ``piece`` (0 for the first offer of a
    line) and ``capacity`` in the service's unit (whole units, or yuan in blocks of 100).
    """
    block = np.where(lines["service_id"].map(lambda s: SERVICE_BY_ID[s].unit) == "yuan",
                     _YUAN_BLOCK, 1.0)
    blocks = np.maximum(1, np.ceil(lines["capacity"].to_numpy() / block)).astype(np.int64)
    count = np.ones(len(lines), dtype=np.int64)
    if offers < len(lines):
        # Keep one line of every linkage, then a random sample of the rest. The department's
        # line is a statutory cash one (so the government fund has something to pay) and the
        # NGO's one is counted in hours (the fund-paid hours of a social-work organisation).
        linkage = lines["linkage"].to_numpy()
        unit = lines["service_id"].map(lambda s: SERVICE_BY_ID[s].unit).to_numpy()
        typical = {"department": "yuan", "ngo": "hour"}
        keep = []
        for name in pd.unique(linkage):
            members = np.flatnonzero(linkage == name)
            preferred = members[unit[members] == typical.get(name, "")]
            keep.append(int(rng.choice(preferred if len(preferred) else members)))
        rest = np.setdiff1d(np.arange(len(lines)), keep)
        keep += rng.choice(rest, size=max(0, offers - len(keep)), replace=False).tolist()
        count[:] = 0
        count[keep] = 1
    else:
        split_weight = lines["linkage"].map({"volunteer": 3.0, "ngo": 1.5, "firm": 1.0}
                                            ).fillna(0.0).to_numpy()
        split_weight = split_weight * np.sqrt(blocks)
        if split_weight.sum() > 0 and offers > len(lines):
            count += rng.multinomial(offers - len(lines), split_weight / split_weight.sum())
        count = np.minimum(count, blocks)
    kept = np.flatnonzero(count > 0)
    rows = np.repeat(kept, count[kept])
    piece = np.arange(len(rows)) - np.repeat(np.cumsum(count[kept]) - count[kept], count[kept])
    # Each offer gets at least one block; the rest of the line is shared out at random.
    capacity_blocks = np.ones(len(rows), dtype=np.int64)
    start = 0
    for line, n in zip(kept, count[kept], strict=True):
        spare = blocks[line] - n
        if spare > 0:
            capacity_blocks[start:start + n] += rng.multinomial(spare, rng.dirichlet(
                np.full(n, 2.0)))
        start += n
    out = lines.iloc[rows].reset_index(drop=True)
    out["piece"] = piece
    out["capacity"] = capacity_blocks * block[rows]
    return out


def _money(values: np.ndarray | float) -> np.ndarray:
    """Yuan rounded to the cent."""
    return np.round(np.asarray(values, dtype=float), 2)


class _FundChooser:
    """Picks a fund that may pay for a service in a district.

    The fund must cover the district (be at the city or that district) and not be earmarked
    away from the service; earmarked funds are preferred (they exist for exactly this), and
    so is a preferred source when one is asked for.
    """

    def __init__(self, funds: pd.DataFrame):
        self.fund_ids = funds["fund_id"].to_numpy()
        self.centres = funds["centre_id"].to_numpy()
        self.sources = funds["source"].to_numpy()
        self.earmarks = funds["earmarked"].tolist()
        self.general = np.array([len(e) == 0 for e in self.earmarks])

    def pick(self, rng: np.random.Generator, district: str, service_id: str,
             prefer_source: str = "") -> str:
        """A fund id, or "" when no fund may pay."""
        covers = (self.centres == geography.CITY_ID) | (self.centres == district)
        earmarked = np.array([service_id in e for e in self.earmarks])
        allowed = covers & (earmarked | self.general)
        preferred = allowed & (self.sources == prefer_source)
        if preferred.any():
            allowed = preferred
        if not allowed.any():
            return ""
        weights = np.where(earmarked, 2.0, 1.0) * allowed
        return str(self.fund_ids[_choose_rows(rng, weights)])


def _build_offers(rng: np.random.Generator, pieces: pd.DataFrame, providers: pd.DataFrame,
                  funds: pd.DataFrame, centres: pd.DataFrame) -> pd.DataFrame:
    """Turn offer pieces into ``offers`` rows: provider, coverage, paying fund, unit cost,
    eligibility and per-household cap for each."""
    streets = centres[centres["level"] == "street"]
    stations = centres[centres["level"] == "station"]
    streets_in = {d: g["centre_id"].to_numpy() for d, g in streets.groupby("district_id")}
    stations_in = {d: g for d, g in stations.groupby("district_id")}
    team_of_street = (providers[providers["role"] == "street"]
                      .set_index("centre_id")["provider_id"])
    by_district_role = {key: g["provider_id"].to_numpy()
                        for key, g in providers.groupby(["district_id", "linkage", "role"])}
    provider_of_manager = providers[providers["linkage"] == "fund"].set_index(
        "name")["provider_id"]
    fund_row = funds.set_index("fund_id")
    chooser = _FundChooser(funds)

    out = {k: [] for k in ("provider_id", "coverage_centre_id", "fund_id", "unit_cost",
                           "eligible_categories", "eligible_tiers", "max_per_household")}
    for line in pieces.itertuples(index=False):
        spec = SERVICE_BY_ID[line.service_id]
        district = line.root
        coverage, fund_id, unit_cost = "", "", 0.0
        categories: tuple[str, ...] = ()
        tiers: tuple[str, ...] = ()
        cap_chance = 0.25
        if line.linkage == "department":
            provider = by_district_role[(district, "department", spec.department)][0]
            coverage = "" if rng.random() < 0.5 else district
            categories, tiers = spec.statutory_categories, spec.statutory_tiers
            cap_chance = 0.7
            if spec.delivery == "cash":
                fund_id = chooser.pick(rng, district, spec.service_id, "government")
                unit_cost = 1.0 if fund_id else 0.0
        elif line.linkage == "fund":
            fund = fund_row.loc[line.fund_id]
            provider = provider_of_manager[fund["manager"]]
            fund_id, unit_cost = line.fund_id, 1.0
            tiers = ("red", "orange") if rng.random() < 0.3 else ()
            cap_chance = 0.4
        else:
            if line.linkage == "volunteer" or line.piece > 0:
                # Later pieces, and every volunteer team, serve a street or a station.
                if rng.random() < (0.4 if line.linkage == "volunteer" else 0.3):
                    choice = stations_in[district]
                    pick = int(rng.integers(len(choice)))
                    coverage = choice["centre_id"].iat[pick]
                    street = choice["parent_id"].iat[pick]
                else:
                    street = str(rng.choice(streets_in[district]))
                    coverage = street
            else:
                coverage = district
            if line.linkage == "volunteer":
                provider = team_of_street[street]
            elif line.linkage == "firm":
                provider = str(rng.choice(by_district_role[(district, "firm", spec.firm_trade)]))
            else:
                provider = str(rng.choice(by_district_role[(district, "ngo", "")]))
            if line.linkage != "volunteer" and rng.random() < spec.paid_share:
                fund_id = chooser.pick(rng, district, spec.service_id)
                if fund_id:
                    unit_cost = float(_money(spec.paid_cost * rng.uniform(0.85, 1.15)))
            if spec.focus_categories and rng.random() < 0.2:
                categories = spec.focus_categories
            if rng.random() < 0.1:
                tiers = ("red", "orange", "yellow")
        cap = np.nan
        if rng.random() < cap_chance:
            cap = spec.household_cap * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
            cap = max(1.0, np.round(cap)) if spec.unit != "yuan" else float(_money(cap))
        out["provider_id"].append(provider)
        out["coverage_centre_id"].append(coverage)
        out["fund_id"].append(fund_id)
        out["unit_cost"].append(unit_cost)
        out["eligible_categories"].append(";".join(categories))
        out["eligible_tiers"].append(";".join(tiers))
        out["max_per_household"].append(cap)
    offers = pd.DataFrame({
        "offer_id": make_ids("O", len(pieces), 5),
        "service_id": pieces["service_id"].to_numpy(),
        "capacity": pieces["capacity"].to_numpy(dtype=float),
        **out,
    })
    return offers


def _exercise_every_rule(rng: np.random.Generator, offers: pd.DataFrame, providers: pd.DataFrame,
                         funds: pd.DataFrame, centres: pd.DataFrame) -> pd.DataFrame:
    """Make sure even a tiny scenario has at least one offer using each optional rule:
    coverage left empty, coverage at a station, category and colour eligibility, a
    per-household cap, NGO hours paid by a fund. Large scenarios have them all already; this
    changes nothing there."""
    offers = offers.copy()
    provider = providers.set_index("provider_id")
    linkage = offers["provider_id"].map(provider["linkage"]).to_numpy()
    # Fund-paid NGO hours: the typical care-assistance purchase (政府购买服务).
    hours = offers["service_id"].map(lambda s: SERVICE_BY_ID[s].unit == "hour").to_numpy()
    ngo_rows = np.flatnonzero((linkage == "ngo") & hours)
    if len(ngo_rows) and not (offers["unit_cost"].to_numpy()[ngo_rows] > 0).any():
        chooser = _FundChooser(funds)
        for row in ngo_rows:
            spec = SERVICE_BY_ID[offers.at[row, "service_id"]]
            district = provider.at[offers.at[row, "provider_id"], "district_id"]
            fund_id = chooser.pick(rng, district, spec.service_id)
            if fund_id:
                offers.loc[row, "fund_id"] = fund_id
                offers.loc[row, "unit_cost"] = float(_money(spec.paid_cost))
                break
    level_of = centres.set_index("centre_id")["level"]
    coverage_level = offers["coverage_centre_id"].map(level_of).fillna("")
    if not (offers["coverage_centre_id"] == "").any():
        # Empty coverage means the provider's own centre: only rewrite offers where it is.
        own = offers["provider_id"].map(providers.set_index("provider_id")["centre_id"])
        same = np.flatnonzero((own == offers["coverage_centre_id"]).to_numpy())
        if len(same):
            offers.loc[same[0], "coverage_centre_id"] = ""
    if not (coverage_level == "station").any():
        streets = np.flatnonzero(coverage_level.isin(["street", "district"]).to_numpy())
        if len(streets):
            row = streets[0]
            root = offers.at[row, "coverage_centre_id"]
            below = centres[(centres["level"] == "station")
                            & ((centres["parent_id"] == root) | (centres["district_id"] == root))]
            offers.loc[row, "coverage_centre_id"] = below["centre_id"].iat[
                int(rng.integers(len(below)))]
    if not (offers["eligible_categories"] != "").any():
        offers.loc[0, "eligible_categories"] = "dibao;tekun"
    if not (offers["eligible_tiers"] != "").any():
        offers.loc[len(offers) - 1, "eligible_tiers"] = "red;orange"
    if not offers["max_per_household"].notna().any():
        unit = offers["service_id"].map(lambda s: SERVICE_BY_ID[s].household_cap)
        offers.loc[0, "max_per_household"] = float(unit.iat[0])
    return offers


def _fund_budgets(rng: np.random.Generator, funds: pd.DataFrame, offers: pd.DataFrame
                  ) -> np.ndarray:
    """Weekly budgets: for most funds less than their offers could spend, so budgets bind."""
    spend = (offers["capacity"] * offers["unit_cost"]).groupby(offers["fund_id"]).sum()
    potential = spend.reindex(funds["fund_id"]).fillna(0.0).to_numpy()
    ratio = rng.uniform(0.35, 1.1, size=len(funds))
    budget = np.round(potential * ratio, -2)
    idle = rng.uniform(5_000, 50_000, size=len(funds))
    budget = np.where(budget >= 1_000, budget, np.round(idle, -2))
    return _money(budget)


# ---------------------------------------------------------------------------------------------
# Volunteers
# ---------------------------------------------------------------------------------------------

# Chance that a volunteer has each skill: companionship and errands are common, nursing,
# rehabilitation and legal advice rare (which is what leaves visits without a volunteer).
_SKILL_CHANCE = {"companionship": 0.5, "errands": 0.4, "tutoring": 0.25, "counselling": 0.08,
                 "nursing": 0.05, "rehabilitation": 0.04, "legal": 0.03, "repair": 0.1,
                 "cooking": 0.15, "childcare": 0.12, "digital": 0.25, "job_coaching": 0.06}
_LANGUAGE_CHANCE = {"mandarin": 0.95, "sichuanese": 0.75, "english": 0.12, "tibetan": 0.01,
                    "yi": 0.01, "sign": 0.02}
_FEMALE_SHARE = 0.62
_CHECKED_SHARE = 0.6


def _make_volunteers(rng: np.random.Generator, count: int, stations: pd.DataFrame,
                     station_weight: np.ndarray, providers: pd.DataFrame) -> pd.DataFrame:
    """``count`` volunteers living at stations drawn by ``station_weight``."""
    home = rng.choice(len(stations), size=count, p=station_weight / station_weight.sum())
    home = np.sort(home)  # volunteer ids then run through the city in centre order
    station_id = stations["centre_id"].to_numpy()[home]
    lat, lon = geography.jitter(rng, stations["lat"].to_numpy()[home],
                                 stations["lon"].to_numpy()[home], 0.7)

    skills = rng.random((count, len(vocab.SKILLS))) < np.array(
        [_SKILL_CHANCE.get(s, 0.1) for s in vocab.SKILLS])
    # Everyone can do something: give the skill-less one skill, drawn by how common it is.
    none = ~skills.any(axis=1)
    chance = np.array([_SKILL_CHANCE.get(s, 0.1) for s in vocab.SKILLS])
    skills[np.flatnonzero(none), rng.choice(len(chance), size=none.sum(),
                                            p=chance / chance.sum())] = True
    languages = rng.random((count, len(vocab.LANGUAGES))) < np.array(
        [_LANGUAGE_CHANCE.get(code, 0.0) for code in vocab.LANGUAGES])
    languages[:, list(vocab.LANGUAGES).index("mandarin")] |= ~languages.any(axis=1)

    # Availability: each volunteer has a personal activity level; weekends are likelier.
    activity = rng.beta(2.0, 4.0, size=count)[:, None]
    weekend = np.array([1.5 if s.startswith(("sat", "sun")) else 1.0 for s in vocab.SLOTS])
    slots = rng.random((count, len(vocab.SLOTS))) < np.clip(activity * weekend, 0, 0.95)
    empty = ~slots.any(axis=1)
    slots[np.flatnonzero(empty), rng.integers(len(vocab.SLOTS), size=empty.sum())] = True

    # Most volunteers join their street's team; some the district's or the city's.
    street = stations["parent_id"].to_numpy()[home]
    district = stations["district_id"].to_numpy()[home]
    teams = providers[providers["linkage"] == "volunteer"]
    street_team = teams[teams["role"] == "street"].set_index("centre_id")["provider_id"]
    district_team = teams[teams["role"] == "district"].set_index("district_id")["provider_id"]
    city_team = teams.loc[teams["role"] == "city", "provider_id"].iat[0]
    which = rng.random(count)
    provider = np.where(which < 0.88, street_team.reindex(street).to_numpy(),
                        np.where(which < 0.97, district_team.reindex(district).to_numpy(),
                                 city_team))

    return pd.DataFrame({
        "volunteer_id": make_ids("V", count, 6),
        "provider_id": provider.astype(str),
        "station_id": station_id,
        "lat": lat,
        "lon": lon,
        "skills": join_codes(skills, tuple(vocab.SKILLS)),
        "languages": join_codes(languages, tuple(vocab.LANGUAGES)),
        "gender": np.where(rng.random(count) < _FEMALE_SHARE, "female", "male"),
        "max_hours": rng.integers(2, 13, size=count).astype(float),
        "max_travel_km": rng.integers(2, 16, size=count).astype(float),
        "background_checked": rng.random(count) < _CHECKED_SHARE,
        "availability": join_codes(slots, tuple(vocab.SLOTS)),
    })


# ---------------------------------------------------------------------------------------------
# The supply side of a scenario
# ---------------------------------------------------------------------------------------------


def district_richness(rng: np.random.Generator, district_ids: np.ndarray) -> np.ndarray:
    """How well each district is served (1 = average): by kind, with lognormal noise."""
    kinds = geography.district_kinds(district_ids)
    mean = np.array([_RICHNESS_BY_KIND[k] for k in kinds])
    return mean * rng.lognormal(0.0, _RICHNESS_SPREAD, size=len(mean))


def generate_supply(centres: pd.DataFrame, demand: pd.DataFrame, rng: np.random.Generator, *,
                    offers: int, city_funds: int, district_funds: int, ngos: int,
                    volunteers: int) -> dict[str, pd.DataFrame]:
    """Providers, offers, funds and volunteers for a centre hierarchy and its week's demand.

    Parameters
    ----------
    centres
        The ``centres`` table (as :func:`resources.geography.build_centres` makes it).
    demand
        Need totals: columns ``station_id``, ``service_id``, ``quantity`` (units needed this
        week), one row per station and service with any need. Capacity is calibrated on it.
    rng
        The random generator all draws come from.
    offers
        About how many offers to make.
    city_funds, district_funds
        Number of city-level funds (at most 8) and of district-level funds in total (at least
        one and at most four per district).
    ngos
        Social-work organisations in total (at least one per district).
    volunteers
        Number of volunteers.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``providers``, ``offers``, ``funds`` and ``volunteers`` with exactly the contract's
        columns, in schema order, sorted by key.
    """
    hierarchy = Hierarchy.from_centres(centres)
    centres = centres.assign(district_id=hierarchy.ancestor(centres["centre_id"], "district"))
    district_rows = centres[centres["level"] == "district"]
    districts = pd.DataFrame({
        "district_id": district_rows["centre_id"].to_numpy(),
        "name": district_rows["name"].to_numpy(),
        "richness": district_richness(rng, district_rows["centre_id"].to_numpy()),
    })
    streets = centres[centres["level"] == "street"]
    stations = centres[centres["level"] == "station"].reset_index(drop=True)

    demand = demand.assign(district_id=hierarchy.ancestor(demand["station_id"], "district"))
    need = demand.pivot_table(index="district_id", columns="service_id", values="quantity",
                              aggfunc="sum", fill_value=0.0)

    funds = _make_funds(rng, districts, city_funds, district_funds)
    providers = _make_providers(rng, districts, streets, funds, ngos)
    lines = _supply_lines(rng, need, districts, funds)
    pieces = _pieces(rng, lines, offers)
    offer_frame = _build_offers(rng, pieces, providers, funds, centres)
    offer_frame = _exercise_every_rule(rng, offer_frame, providers, funds, centres)
    funds = funds.assign(budget=_fund_budgets(rng, funds, offer_frame),
                         earmarked_services=funds["earmarked"].map(";".join))

    # Volunteers live where the in-person need is, more of them in richer districts.
    in_person = [s.service_id for s in SERVICE_CATALOGUE if s.delivery == "in_person"]
    local_need = (demand[demand["service_id"].isin(in_person)]
                  .groupby("station_id")["quantity"].sum()
                  .reindex(stations["centre_id"]).fillna(0.0).to_numpy())
    richness = districts.set_index("district_id")["richness"].reindex(
        stations["district_id"]).to_numpy()
    weight = (richness * (local_need + local_need.mean() + 1.0)
              * rng.gamma(1.5, size=len(local_need)))
    volunteer_frame = _make_volunteers(rng, volunteers, stations, weight, providers)

    tables = {
        "providers": providers,
        "offers": offer_frame,
        "funds": funds,
        "volunteers": volunteer_frame,
    }
    out = {}
    for name, frame in tables.items():
        table = schema.TABLES[name]
        out[name] = frame[list(table.column_names)].sort_values(table.key, ignore_index=True)
    return out
