"""Small seeded random scenarios that pass validation, for testing the allocation from outside.

``random_scenario(seed)`` returns one DataFrame per contract table, with exactly the columns of
``contract/schema.py``: ids are strings, list cells ';'-joined, empty optional cells "" for text
and NaN for numbers. Sizes are drawn from small ranges and can be fixed by keyword.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from wulian.contract import vocab
from wulian.contract.schema import TABLES

CITY = (30.657, 104.066)
WEEK = "2026-W49"

# Service templates: id → (name_zh, name_en, unit, delivery, dimension, skills, safeguarding,
# visit_hours).
VISIT_SERVICE = ("companionship", "陪伴探访", "companionship visit", "visit", "in_person",
                 "social", "companionship", True, 1.5)
CASH_SERVICE = ("medical_cash", "医疗救助金", "medical aid", "yuan", "cash", "health", "",
                False, math.nan)
OTHER_SERVICES = (
    ("tutoring", "课业辅导", "tutoring", "hour", "in_person", "education", "tutoring", True,
     2.0),
    ("home_repair", "居家维修", "home repair", "visit", "in_person", "housing", "repair;errands",
     False, 2.0),
    ("counselling", "心理疏导", "counselling", "hour", "in_person", "health", "counselling",
     False, 1.0),
    ("food_parcel", "食品包", "food parcel", "item", "in_kind", "income", "", False, math.nan),
    ("school_cash", "助学金", "school grant", "yuan", "cash", "education", "", False, math.nan),
)
SKILL_POOL = ("companionship", "errands", "tutoring", "repair", "counselling", "nursing")


def _pick(rng: np.random.Generator, items, k: int) -> list:
    """k distinct items in their original order."""
    idx = sorted(rng.choice(len(items), size=min(k, len(items)), replace=False))
    return [items[i] for i in idx]


def _frame(name: str, rows: list[dict]) -> pd.DataFrame:
    columns = TABLES[name].column_names
    frame = pd.DataFrame(rows, columns=list(columns))
    assert tuple(frame.columns) == columns
    return frame


def _size(size: dict, key: str, rng: np.random.Generator, low: int, high: int) -> int:
    return int(size[key]) if key in size else int(rng.integers(low, high + 1))


def random_scenario(seed: int, **size: int) -> dict[str, pd.DataFrame]:
    """A small valid scenario drawn from ``seed``.

    Keywords fix sizes: ``districts`` (1–2), ``streets`` (2–4), ``stations`` (4–10),
    ``services`` (3–5), ``households`` (10–30), ``needs`` (15–50), ``offers`` (4–10),
    ``funds`` (2–3), ``volunteers`` (3–10), ``history`` (2–6). Pins are empty.
    """
    rng = np.random.default_rng(seed)
    n_districts = _size(size, "districts", rng, 1, 2)
    n_streets = max(_size(size, "streets", rng, 2, 4), n_districts)
    n_stations = max(_size(size, "stations", rng, 4, 10), n_streets)
    n_services = _size(size, "services", rng, 3, 5)
    n_households = _size(size, "households", rng, 10, 30)
    n_needs = _size(size, "needs", rng, 15, 50)
    n_offers = _size(size, "offers", rng, 4, 10)
    n_funds = _size(size, "funds", rng, 2, 3)
    n_volunteers = _size(size, "volunteers", rng, 3, 10)
    n_history = _size(size, "history", rng, 2, 6)

    def near(lat: float, lon: float, spread: float) -> tuple[float, float]:
        return (round(lat + float(rng.uniform(-spread, spread)), 5),
                round(lon + float(rng.uniform(-spread, spread)), 5))

    # Centres: city → districts → streets → stations, every parent with at least one child.
    centres = [dict(centre_id="C0", name="成都市社会关爱援助中心", level="city", parent_id="",
                    lat=CITY[0], lon=CITY[1])]
    districts, streets, stations = [], [], []
    for d in range(n_districts):
        lat, lon = near(*CITY, 0.08)
        districts.append(dict(centre_id=f"D{d + 1}", name=f"区{d + 1}", level="district",
                              parent_id="C0", lat=lat, lon=lon))
    for s in range(n_streets):
        parent = districts[s % n_districts] if s < n_districts else districts[
            int(rng.integers(n_districts))]
        lat, lon = near(parent["lat"], parent["lon"], 0.03)
        streets.append(dict(centre_id=f"{parent['centre_id']}S{s + 1}", name=f"街道{s + 1}",
                            level="street", parent_id=parent["centre_id"], lat=lat, lon=lon))
    for t in range(n_stations):
        parent = streets[t] if t < n_streets else streets[int(rng.integers(n_streets))]
        lat, lon = near(parent["lat"], parent["lon"], 0.01)
        stations.append(dict(centre_id=f"{parent['centre_id']}T{t + 1}", name=f"社区{t + 1}",
                             level="station", parent_id=parent["centre_id"], lat=lat, lon=lon))
    all_centres = centres + districts + streets + stations
    station_ids = [c["centre_id"] for c in stations]
    station_pos = {c["centre_id"]: (c["lat"], c["lon"]) for c in stations}

    # Services: a visit service with skills, a cash service, and some others.
    chosen = [VISIT_SERVICE, CASH_SERVICE] + _pick(rng, OTHER_SERVICES, n_services - 2)
    services = []
    for sid, zh, en, unit, delivery, dim, skills, safe, hours in chosen:
        if sid == "companionship" and rng.random() < 0.4:
            skills = "companionship;errands"
        services.append(dict(service_id=sid, name_zh=zh, name_en=en, unit=unit,
                             delivery=delivery, dimension=dim, skills=skills,
                             safeguarding=bool(safe), visit_hours=hours))
    unit_of = {s["service_id"]: s["unit"] for s in services}
    service_ids = list(unit_of)

    # Households.
    categories = list(vocab.CATEGORIES)
    tiers = list(vocab.TIERS)
    households = []
    for h in range(n_households):
        station = station_ids[int(rng.integers(len(station_ids)))]
        cats = _pick(rng, categories, int(rng.choice([0, 1, 1, 2, 3])))
        row = dict(household_id=f"H{h + 1:03d}", station_id=station,
                   size=int(rng.integers(1, 7)), categories=";".join(cats))
        for col in vocab.DEPRIVATION_COLUMNS:
            row[col] = int(rng.random() < 0.45)
        row["tier"] = tiers[int(rng.integers(4))] if rng.random() < 0.35 else ""
        if rng.random() < 0.3:
            row["lat"], row["lon"] = near(*station_pos[station], 0.005)
        else:
            row["lat"], row["lon"] = math.nan, math.nan
        households.append(row)

    # Needs, all open in one week.
    def quantity(unit: str) -> float:
        if unit == "yuan":
            return round(float(rng.choice([rng.integers(5, 120) * 10.0,
                                           rng.integers(5000, 120000) / 100.0])), 2)
        return float(rng.integers(1, {"visit": 5, "hour": 7, "item": 4}[unit]))

    needs = []
    for n in range(n_needs):
        sid = service_ids[int(rng.integers(len(service_ids)))]
        needs.append(dict(need_id=f"N{n + 1:03d}",
                          household_id=households[int(rng.integers(n_households))][
                              "household_id"],
                          service_id=sid, quantity=quantity(unit_of[sid]),
                          urgency=int(rng.integers(1, 4)), week=WEEK))

    # Providers: one per linkage, at various levels; volunteer teams per street.
    def any_centre(levels=("city", "district", "street", "station")) -> str:
        pool = [c["centre_id"] for c in all_centres if c["level"] in levels]
        return pool[int(rng.integers(len(pool)))]

    providers = [
        dict(provider_id="P1", name="民政局", linkage="department",
             centre_id=any_centre(("city", "district"))),
        dict(provider_id="P2", name="爱心企业", linkage="firm",
             centre_id=any_centre(("city", "district", "street"))),
        dict(provider_id="P3", name="社工机构", linkage="ngo",
             centre_id=any_centre(("district", "street"))),
        dict(provider_id="P4", name="慈善会", linkage="fund", centre_id="C0"),
        dict(provider_id="P5", name="志愿服务队", linkage="volunteer",
             centre_id=any_centre(("street",))),
    ]

    # Funds with binding budgets, earmarks and per-household caps.
    sources = list(vocab.FUND_SOURCES)
    funds = []
    for f in range(n_funds):
        earmark = "" if rng.random() < 0.4 else ";".join(
            _pick(rng, service_ids, int(rng.integers(1, 3))))
        if f == 0:  # the first fund always pays for the cash service
            earmark = "" if rng.random() < 0.5 else "medical_cash"
        funds.append(dict(
            fund_id=f"F{f + 1}", name=f"基金{f + 1}", source=sources[f % len(sources)],
            budget=round(float(rng.integers(100, 1500)) + float(rng.integers(0, 100)) / 100, 2),
            centre_id="C0" if f == 0 else any_centre(("city", "district", "street")),
            earmarked_services=earmark,
            max_per_household=(math.nan if rng.random() < 0.5
                               else float(rng.integers(40, 500)))))
    fund_ids = [f["fund_id"] for f in funds]

    # Offers: the first pays the cash service from F1; the rest at random.
    offers = []
    for o in range(n_offers):
        sid = "medical_cash" if o == 0 else service_ids[int(rng.integers(len(service_ids)))]
        unit = unit_of[sid]
        provider = providers[int(rng.integers(4))]
        if unit == "yuan":
            capacity = float(rng.integers(200, 3000))
            unit_cost = 1.0 if (o == 0 or rng.random() < 0.75) else 0.0
            mph = float(rng.integers(100, 700)) if rng.random() < 0.4 else math.nan
        else:
            capacity = float(rng.integers(1, 12))
            unit_cost = 0.0 if rng.random() < 0.4 else round(float(rng.integers(5, 80)) + 0.5
                                                             * float(rng.integers(0, 2)), 2)
            mph = float(rng.integers(1, 4)) if rng.random() < 0.4 else math.nan
        if o == 0:
            fund = "F1"
        elif unit_cost > 0:
            fund = fund_ids[int(rng.integers(len(fund_ids)))] if rng.random() < 0.8 else ""
        else:
            fund = fund_ids[int(rng.integers(len(fund_ids)))] if rng.random() < 0.15 else ""
        coverage = "" if rng.random() < 0.25 else any_centre(
            [("city",), ("district",), ("street",), ("station",)][
                int(rng.choice(4, p=[0.3, 0.3, 0.25, 0.15]))])
        if o == 0:
            coverage = "C0"
        offers.append(dict(
            offer_id=f"O{o + 1:02d}", provider_id=provider["provider_id"], service_id=sid,
            capacity=capacity, unit_cost=unit_cost, fund_id=fund, coverage_centre_id=coverage,
            eligible_categories="" if rng.random() < 0.55 else ";".join(
                _pick(rng, categories, int(rng.integers(1, 4)))),
            eligible_tiers="" if rng.random() < 0.6 else ";".join(
                _pick(rng, tiers, int(rng.integers(1, 4)))),
            max_per_household=mph))

    # Volunteers.
    slots = list(vocab.SLOTS)
    volunteers = []
    for v in range(n_volunteers):
        station = station_ids[int(rng.integers(len(station_ids)))]
        lat, lon = near(*station_pos[station], 0.01)
        skills = _pick(rng, SKILL_POOL, int(rng.integers(0, 4)))
        if v == 0 and "companionship" not in skills:
            skills = ["companionship", *skills]
        volunteers.append(dict(
            volunteer_id=f"V{v + 1:02d}", provider_id="P5", station_id=station, lat=lat,
            lon=lon, skills=";".join(skills),
            languages=";".join(["mandarin"] + (["sichuanese"] if rng.random() < 0.5 else [])),
            gender=["female", "male", ""][int(rng.integers(3))],
            max_hours=float(rng.choice([2.0, 3.0, 4.5, 6.0, 8.0])),
            max_travel_km=float(rng.integers(1, 10)),
            background_checked=bool(v == 0 or rng.random() < 0.6),
            availability=";".join(_pick(rng, slots, int(rng.integers(1, 6))))))

    # History: a few past visits, mostly to households with in-person needs by volunteers of
    # their street; some households twice (the latest week counts).
    street_of = {c["centre_id"]: c["parent_id"] for c in stations}
    station_of = {h["household_id"]: h["station_id"] for h in households}
    in_person = {s["service_id"] for s in services if s["delivery"] == "in_person"}
    visited = sorted({n["household_id"] for n in needs if n["service_id"] in in_person})
    history = []
    for _ in range(n_history):
        if visited and rng.random() < 0.8:
            h = visited[int(rng.integers(len(visited)))]
        else:
            h = households[int(rng.integers(n_households))]["household_id"]
        near_by = [v["volunteer_id"] for v in volunteers
                   if street_of[v["station_id"]] == street_of[station_of[h]]]
        if not near_by or rng.random() < 0.2:
            near_by = [v["volunteer_id"] for v in volunteers]
        weeks = [r["week"] for r in history if r["household_id"] == h]
        free = [w for w in ("2026-W45", "2026-W46", "2026-W47", "2026-W48") if w not in weeks]
        if not free:
            continue
        history.append(dict(week=free[int(rng.integers(len(free)))], household_id=h,
                            volunteer_id=near_by[int(rng.integers(len(near_by)))]))

    return {
        "centres": _frame("centres", all_centres),
        "services": _frame("services", services),
        "households": _frame("households", households),
        "needs": _frame("needs", needs),
        "providers": _frame("providers", providers),
        "offers": _frame("offers", offers),
        "funds": _frame("funds", funds),
        "volunteers": _frame("volunteers", volunteers),
        "history": _frame("history", history),
        "pins": _frame("pins", []),
    }


def shared_funds_scenario(seed: int, scale: float = 1.0) -> dict[str, pd.DataFrame]:
    """A larger scenario (about 750 columns at ``scale`` 1, 5,000 at 3.5) in the range where
    exact search once stopped (issue 14): two districts of four streets; about 150 × ``scale``
    households with 300 × ``scale`` needs; 30 × ``scale`` offers with eligibility by category
    and colour and per-household caps in items; four funds that the streets share — a city fund
    (C0), one fund per district earmarked for three services with a per-household cap in yuan,
    and one street's charity fund — with budgets that bind."""
    tables = random_scenario(
        seed, districts=2, streets=4, stations=10, services=5,
        households=int(150 * scale), needs=int(300 * scale), offers=int(30 * scale),
        funds=4, volunteers=int(20 * scale), history=10)
    rng = np.random.default_rng(10_000 + seed)
    services = tables["services"]["service_id"].tolist()
    centres = tables["centres"]
    street = centres.loc[centres["level"] == "street", "centre_id"].tolist()
    funds = tables["funds"].copy()
    funds["centre_id"] = ["C0", "D1", "D2", street[int(rng.integers(len(street)))]]
    funds["earmarked_services"] = [
        "", ";".join(_pick(rng, services, 3)), ";".join(_pick(rng, services, 3)), ""]
    funds["max_per_household"] = [math.nan, float(rng.integers(150, 600)),
                                  float(rng.integers(150, 600)), math.nan]
    funds["budget"] = [round(float(rng.integers(800, 3000)) * scale + 0.37, 2),
                       round(float(rng.integers(400, 1500)) * scale + 0.5, 2),
                       round(float(rng.integers(400, 1500)) * scale, 2),
                       round(float(rng.integers(100, 500)) + 0.25, 2)]
    tables["funds"] = funds
    return tables
