"""Chengdu's centre hierarchy, synthesised: 1 city centre, 22 district centres, 292 street
centres and 3363 community stations.

The districts are the real 22 district-level units of Chengdu (12 districts, 3 counties,
5 county-level cities and the two function zones 成都高新区 and 天府新区) at approximate real
coordinates. Streets and stations are invented: plausible names (``XX街道`` / ``XX镇``,
``XX社区`` / ``XX村``) at coordinates jittered around their parent, tighter in the urban core.

The layout does not depend on a scenario's seed: every district draws from its own fixed
random stream, so a centre id names the same place in every scenario, and the ``district``
preset's centres are exactly the city's centres of that district.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wulian.contract import schema

# Fixed seed of the geography: the city's shape is part of the product, not of a scenario.
GEOGRAPHY_SEED = 2026

CITY_ID = "C0"
CITY_NAME = "成都市"

# Degrees per kilometre at Chengdu's latitude (about 30.7° N).
KM_LAT = 1 / 111.0
KM_LON = 1 / (111.0 * np.cos(np.radians(30.7)))

# Chengdu's municipal area, to keep jittered points on the map.
LAT_RANGE = (30.09, 31.44)
LON_RANGE = (102.99, 104.90)


@dataclass(frozen=True)
class District:
    """One district-level unit of Chengdu.

    ``kind`` is ``core`` (old urban districts), ``new_area`` (the function zones),
    ``suburban`` (the second ring of districts) or ``outer`` (counties and county-level
    cities); it sets how tightly streets and stations cluster and, downstream, how richly
    the district is served.
    """

    district_id: str
    name: str
    lat: float
    lon: float
    kind: str
    streets: int
    stations: int


# Street and station counts are invented but sum to the network's real size (292 street
# centres, 3363 stations); the urban core has more stations per street.
DISTRICTS: tuple[District, ...] = (
    District("D01", "锦江区", 30.657, 104.083, "core", 11, 118),
    District("D02", "青羊区", 30.674, 104.062, "core", 12, 130),
    District("D03", "金牛区", 30.692, 104.052, "core", 13, 150),
    District("D04", "武侯区", 30.642, 104.043, "core", 13, 205),
    District("D05", "成华区", 30.660, 104.102, "core", 14, 175),
    District("D06", "龙泉驿区", 30.557, 104.275, "suburban", 12, 150),
    District("D07", "青白江区", 30.878, 104.251, "suburban", 9, 110),
    District("D08", "新都区", 30.823, 104.159, "suburban", 13, 160),
    District("D09", "温江区", 30.682, 103.857, "suburban", 9, 120),
    District("D10", "双流区", 30.574, 103.923, "suburban", 11, 150),
    District("D11", "郫都区", 30.795, 103.901, "suburban", 13, 165),
    District("D12", "新津区", 30.410, 103.811, "suburban", 8, 100),
    District("D13", "简阳市", 30.411, 104.547, "outer", 21, 200),
    District("D14", "都江堰市", 30.988, 103.647, "outer", 17, 180),
    District("D15", "彭州市", 30.990, 103.958, "outer", 20, 205),
    District("D16", "邛崃市", 30.410, 103.464, "outer", 18, 180),
    District("D17", "崇州市", 30.630, 103.673, "outer", 16, 175),
    District("D18", "金堂县", 30.862, 104.412, "outer", 18, 185),
    District("D19", "大邑县", 30.587, 103.512, "outer", 14, 155),
    District("D20", "蒲江县", 30.197, 103.506, "outer", 8, 95),
    District("D21", "成都高新区", 30.583, 104.062, "new_area", 12, 130),
    District("D22", "天府新区", 30.455, 104.070, "new_area", 10, 125),
)
DISTRICT_BY_ID: dict[str, District] = {d.district_id: d for d in DISTRICTS}

# Spread (standard deviation, km) of streets around their district centre and of stations
# around their street centre: the old city is dense, the counties are wide.
_STREET_SPREAD_KM = {"core": 2.2, "new_area": 4.0, "suburban": 5.5, "outer": 8.5}
_STATION_SPREAD_KM = {"core": 0.5, "new_area": 0.9, "suburban": 1.4, "outer": 2.5}
# Share of street centres that are towns (镇) rather than urban streets (街道); a town's
# stations are mostly villages (村).
_TOWN_SHARE = {"core": 0.0, "new_area": 0.2, "suburban": 0.4, "outer": 0.75}
_VILLAGE_SHARE_IN_TOWN = 0.7

# Place-name syllables; a name is one of each (1,880 combinations).
_FIRST = tuple("春锦青金红桂双华和平安宁光明新永兴福龙凤玉东西南北"
               "建文清石沙花柳竹松荷桃杏瑞祥泰康乐白黄高马万")
_SECOND = tuple("熙江城华桥林园湖山阳台苑坝湾堰塘河泉溪井坪岗岭庄门寺场铺街里路口港洲坡庙堂池家营")


def place_names(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` distinct two-character place names (at most 1,880)."""
    picks = rng.choice(len(_FIRST) * len(_SECOND), size=count, replace=False)
    first = np.array(_FIRST)[picks // len(_SECOND)]
    second = np.array(_SECOND)[picks % len(_SECOND)]
    return np.strings.add(first, second)


def split_whole(total: int, weights: np.ndarray, minimum: int = 1) -> np.ndarray:
    """Split ``total`` into whole parts proportional to ``weights``, each at least ``minimum``.

    Largest-remainder rounding, so the parts sum to ``total`` exactly.
    """
    weights = np.asarray(weights, dtype=float)
    spare = total - minimum * len(weights)
    if spare < 0:
        raise ValueError(f"cannot split {total} into {len(weights)} parts of at least {minimum}")
    exact = spare * weights / weights.sum()
    parts = np.floor(exact).astype(np.int64)
    short = spare - parts.sum()
    # Ties broken by position (stable sort) so the split is deterministic.
    parts[np.argsort(-(exact - parts), kind="stable")[:short]] += 1
    return parts + minimum


def jitter(rng: np.random.Generator, lat: np.ndarray, lon: np.ndarray, spread_km: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """Points scattered around (lat, lon) with ``spread_km`` standard deviation, kept inside
    the municipal area and rounded to about 10 m."""
    new_lat = lat + rng.normal(0.0, spread_km, size=len(lat)) * KM_LAT
    new_lon = lon + rng.normal(0.0, spread_km, size=len(lon)) * KM_LON
    return (np.round(np.clip(new_lat, *LAT_RANGE), 5), np.round(np.clip(new_lon, *LON_RANGE), 5))


def _district_centres(index: int, district: District, streets: int, stations: int
                      ) -> dict[str, np.ndarray]:
    """Columns of one district's centre, its street centres and its stations."""
    rng = np.random.default_rng([GEOGRAPHY_SEED, index])
    street_nums = np.arange(1, streets + 1)
    street_ids = np.strings.add(district.district_id + "S",
                                np.strings.zfill(street_nums.astype(str), 2))
    is_town = rng.random(streets) < _TOWN_SHARE[district.kind]
    street_names = np.strings.add(place_names(rng, streets), np.where(is_town, "镇", "街道"))
    street_lat, street_lon = jitter(rng, np.full(streets, district.lat),
                                     np.full(streets, district.lon),
                                     _STREET_SPREAD_KM[district.kind])

    # Uneven station counts per street (some streets are large, some small).
    per_street = split_whole(stations, rng.gamma(4.0, size=streets))
    parent_row = np.repeat(np.arange(streets), per_street)
    # Station numbers restart at 1 within each street.
    first_row = np.repeat(np.cumsum(per_street) - per_street, per_street)
    station_nums = np.arange(stations) - first_row + 1
    station_ids = np.strings.add(np.strings.add(street_ids[parent_row], "T"),
                                 np.strings.zfill(station_nums.astype(str), 3))
    names = np.concatenate([place_names(rng, n) for n in per_street])
    village = is_town[parent_row] & (rng.random(stations) < _VILLAGE_SHARE_IN_TOWN)
    station_names = np.strings.add(names, np.where(village, "村", "社区"))
    station_lat, station_lon = jitter(rng, street_lat[parent_row], street_lon[parent_row],
                                       _STATION_SPREAD_KM[district.kind])

    return {
        "centre_id": np.concatenate([[district.district_id], street_ids, station_ids]),
        "name": np.concatenate([[district.name], street_names, station_names]),
        "level": np.repeat(["district", "street", "station"], [1, streets, stations]),
        "parent_id": np.concatenate([[CITY_ID], np.full(streets, district.district_id),
                                     street_ids[parent_row]]),
        "lat": np.concatenate([[district.lat], street_lat, station_lat]),
        "lon": np.concatenate([[district.lon], street_lon, station_lon]),
    }


def build_centres(district_ids: Sequence[str] | None = None, *, streets: int | None = None,
                  stations: int | None = None) -> pd.DataFrame:
    """The ``centres`` table of Chengdu or of some of its districts.

    Parameters
    ----------
    district_ids
        Districts to include (ids from :data:`DISTRICTS`, e.g. ``["D04"]``); all 22 when
        ``None``. The city centre is always included as the root.
    streets, stations
        Street and station counts for each included district, overriding the real layout
        (for small test scenarios); ``None`` keeps the district's own counts.

    Returns
    -------
    pandas.DataFrame
        One row per centre with the columns of ``contract.schema.CENTRES`` in order, sorted
        by ``centre_id`` (which is depth-first order: ``C0``, ``D01``, ``D01S01``,
        ``D01S01T001`` …).
    """
    chosen = [d.district_id for d in DISTRICTS] if district_ids is None else list(district_ids)
    unknown = [d for d in chosen if d not in DISTRICT_BY_ID]
    if unknown:
        raise ValueError(f"unknown district ids {unknown}; known: {sorted(DISTRICT_BY_ID)}")
    parts = [{
        "centre_id": np.array([CITY_ID]), "name": np.array([CITY_NAME]),
        "level": np.array(["city"]), "parent_id": np.array([""]),
        "lat": np.array([30.660]), "lon": np.array([104.066]),
    }]
    for index, district in enumerate(DISTRICTS):
        if district.district_id in chosen:
            parts.append(_district_centres(index, district,
                                           streets or district.streets,
                                           stations or district.stations))
    columns = {name: np.concatenate([p[name] for p in parts])
               for name in schema.CENTRES.column_names}
    frame = pd.DataFrame(columns)
    return frame.sort_values("centre_id", ignore_index=True)


def district_kinds(district_ids: Sequence[str]) -> np.ndarray:
    """The ``kind`` of each district id (``""`` for an unknown id, e.g. the city centre)."""
    return np.array([DISTRICT_BY_ID[d].kind if d in DISTRICT_BY_ID else ""
                     for d in district_ids])
