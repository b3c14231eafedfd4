"""Seeded synthetic scenarios with Chengdu's shape: the ``tiny``, ``district`` and ``city``
presets.

``generate_scenario(preset, seed)`` returns all ten tables of the data contract as DataFrames.
One seed gives one scenario, frame for frame (so the files written from it are byte-identical);
the centre layout is the same for every seed (see ``resources.geography``).

Order of generation: centres → services → households → needs → supply calibrated on the needs
(so supply is scarce by design) → each household's last visit, spread over its colour's
monitoring cycle (so about one in a cycle is due each week). Each stage draws from its
own child of the seed, so changing one stage's draws leaves the others' streams alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wulian.contract import schema
from wulian.contract.hierarchy import Hierarchy
from wulian.demand.generate import generate_households, generate_needs
from wulian.resources import geography
from wulian.resources.generate import build_services, generate_supply

DEFAULT_WEEK = "2026-W49"


@dataclass(frozen=True)
class Preset:
    """Sizes of a synthetic scenario.

    Attributes
    ----------
    name, description
        The preset's name and what it is for.
    districts
        District ids to include (``None``: all 22).
    streets, stations
        Streets and stations per district overriding the real layout (``None``: real).
    households
        Number of households.
    needs_per_household
        Mean number of open needs per household in the week.
    offers
        About how many offers.
    city_funds, district_funds
        City-level funds, and district-level funds in total.
    ngos
        Social-work organisations in total.
    volunteers
        Number of volunteers.
    """

    name: str
    description: str
    districts: tuple[str, ...] | None
    streets: int | None
    stations: int | None
    households: int
    needs_per_household: float
    offers: int
    city_funds: int
    district_funds: int
    ngos: int
    volunteers: int


PRESETS: dict[str, Preset] = {
    "tiny": Preset("tiny", "test scenario: one district, 2 streets, 6 stations",
                   ("D04",), 2, 6, households=40, needs_per_household=2.0, offers=15,
                   city_funds=1, district_funds=2, ngos=1, volunteers=15),
    "district": Preset("district", "bundled demo: 武侯区 with its city centre as root",
                       ("D04",), None, None, households=4_000, needs_per_household=2.0,
                       offers=300, city_funds=4, district_funds=4, ngos=5, volunteers=600),
    "city": Preset("city", "the whole of Chengdu in one week", None, None, None,
                   households=300_000, needs_per_household=1.67, offers=3_200, city_funds=6,
                   district_funds=40, ngos=50, volunteers=30_000),
}

# Relative number of assessed households per station by district kind: the outer counties
# carry more assistance households per station than the old city.
_HOUSEHOLDS_BY_KIND = {"core": 0.8, "new_area": 0.7, "suburban": 1.0, "outer": 1.3}


def _previous_weeks(week: str, count: int) -> list[str]:
    """The ``count`` ISO weeks before ``week``, most recent first."""
    year, number = week.split("-W")
    monday = dt.date.fromisocalendar(int(year), int(number), 1)
    out = []
    for back in range(1, count + 1):
        iso = (monday - dt.timedelta(weeks=back)).isocalendar()
        out.append(f"{iso.year}-W{iso.week:02d}")
    return out


def _make_history(rng: np.random.Generator, households: pd.DataFrame, needs: pd.DataFrame,
                  services: pd.DataFrame, volunteers: pd.DataFrame, centres: pd.DataFrame,
                  week: str) -> pd.DataFrame:
    """Past visits that follow the policy's monitoring cycles (the continuity the matching
    keeps, and the due dates its monitoring visits come from).

    Every household a volunteer can reach was last visited ``b`` weeks before ``week``, ``b``
    drawn evenly from 1 … its colour's cycle ``c`` (red 1, orange 2, yellow 4, green 13 weeks
    under the default policy), so in any week about one ``c``-th of each colour falls due, as a
    steady monitoring routine would have it; when ``b + c`` weeks is still within a quarter
    (13 weeks), the visit one cycle earlier is there too, by the same volunteer. The volunteer
    is drawn evenly among those living within their own travel limit of the household who have
    the skills of its most urgent in-person need (and a background check for a safeguarding
    service), or among all within reach when none has. A household no volunteer reaches has no
    history (it stays due).
    """
    from wulian.contract import vocab
    from wulian.demand.policy import Policy
    from wulian.demand.scoring import colour
    from wulian.optimizer.geo import pairs_within
    from wulian.optimizer.masks import bit_masks

    n = len(households)
    cycle = colour(households, Policy.load())["monitoring_weeks"].to_numpy(np.int64)
    stations = centres.set_index("centre_id")
    station = households["station_id"].to_numpy()
    lat = households["lat"].to_numpy(float) if "lat" in households else np.full(n, np.nan)
    lon = households["lon"].to_numpy(float) if "lon" in households else np.full(n, np.nan)
    lat = np.where(np.isnan(lat), stations["lat"].reindex(station).to_numpy(float), lat)
    lon = np.where(np.isnan(lon), stations["lon"].reindex(station).to_numpy(float), lon)

    # Volunteers within reach of each household's place (households share their station's),
    # sorted by place.
    place, place_at = np.unique(np.stack([lat, lon], axis=1), axis=0, return_inverse=True)
    place_at = place_at.ravel()
    li, vi, _ = pairs_within(place[:, 0], place[:, 1], volunteers["lat"].to_numpy(float),
                             volunteers["lon"].to_numpy(float),
                             volunteers["max_travel_km"].to_numpy(float))

    # What the household's most urgent in-person need asks of a volunteer.
    in_person = services.loc[services["delivery"] == "in_person"].set_index("service_id")
    person = needs[needs["service_id"].isin(in_person.index)]
    person = person.sort_values(["household_id", "urgency", "need_id"],
                                ascending=[True, False, True], kind="stable") \
        .drop_duplicates("household_id").set_index("household_id")["service_id"]
    service = pd.Series(households["household_id"].to_numpy()).map(person)
    need_skills = bit_masks(service.map(in_person["skills"]).fillna("").to_numpy(), vocab.SKILLS)
    need_check = service.map(in_person["safeguarding"]).fillna(False).to_numpy(bool)
    vol_skills = bit_masks(volunteers["skills"].to_numpy(), vocab.SKILLS)
    vol_checked = volunteers["background_checked"].to_numpy(bool)

    weeks_back = 1 + (rng.random(n) * cycle).astype(np.int64)
    draw = rng.random(n)
    chosen = np.full(n, -1, np.int64)

    def pick(who: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """For households ``who``: one of ``pairs`` (indices of (place, volunteer) pairs
        sorted by place) at their place, drawn evenly; -1 where their place has none."""
        places = li[pairs]
        start = np.searchsorted(places, place_at[who], side="left")
        count = np.searchsorted(places, place_at[who], side="right") - start
        at = start + (draw[who] * count).astype(np.int64)
        return np.where(count > 0, vi[pairs[np.minimum(at, max(len(pairs) - 1, 0))]]
                        if len(pairs) else -1, -1)

    requirement = pd.MultiIndex.from_arrays([need_skills, need_check])
    codes, uniques = pd.factorize(requirement, sort=True)
    for r, (mask, check) in enumerate(uniques):
        who = np.flatnonzero(codes == r)
        fit = ((vol_skills & mask) == mask) & (vol_checked | (not check))
        chosen[who] = pick(who, np.flatnonzero(fit[vi]))
    missing = np.flatnonzero(chosen < 0)
    chosen[missing] = pick(missing, np.arange(len(li)))

    rows = np.flatnonzero(chosen >= 0)
    again = rows[weeks_back[rows] + cycle[rows] <= 13]
    back = np.concatenate([weeks_back[rows], weeks_back[again] + cycle[again]])
    who = np.concatenate([rows, again])
    past = _previous_weeks(week, int(back.max(initial=1)))
    return pd.DataFrame({
        "week": np.array(past, dtype=object)[back - 1],
        "household_id": households["household_id"].to_numpy()[who],
        "volunteer_id": volunteers["volunteer_id"].to_numpy()[chosen[who]],
    })


def _conform(frame: pd.DataFrame, table: schema.Table) -> pd.DataFrame:
    """``frame`` with exactly ``table``'s columns in schema order and types as the contract
    writes them: text as str ("" when empty), numbers as float or int (NaN when empty), money
    to the cent, booleans as bool; rows sorted by key."""
    columns = {}
    for col in table.columns:
        values = frame[col.name]
        if col.dtype in ("str", "list", "week"):
            columns[col.name] = values.fillna("").astype(str)
        elif col.dtype == "int":
            columns[col.name] = values.astype(np.int64)
        elif col.dtype == "bool":
            columns[col.name] = values.astype(bool)
        elif col.dtype == "money":
            columns[col.name] = values.astype(float).round(2)
        else:
            columns[col.name] = values.astype(float)
    out = pd.DataFrame(columns, index=frame.index)
    by = [table.key] if table.key else list(table.column_names)
    return out.sort_values(by, kind="stable", ignore_index=True)


def generate_scenario(preset: str, seed: int = 0, *, week: str = DEFAULT_WEEK
                      ) -> dict[str, pd.DataFrame]:
    """A synthetic scenario with Chengdu's shape.

    Parameters
    ----------
    preset
        ``tiny`` (tests), ``district`` (the bundled demo) or ``city`` (all of Chengdu).
    seed
        Seed of every random draw; the same seed gives identical frames.
    week
        ISO week the needs are open.

    Returns
    -------
    dict of str to pandas.DataFrame
        All ten tables of ``contract.schema.TABLES`` in contract order, each with exactly the
        schema's columns in order, sorted by key; ids are str, lists ';'-joined, empty text
        "" and empty numbers NaN. ``pins`` is empty.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    sizes = PRESETS[preset]
    demand_seed, supply_seed, history_seed = np.random.SeedSequence(seed).spawn(3)
    demand_rng = np.random.default_rng(demand_seed)

    centres = geography.build_centres(sizes.districts, streets=sizes.streets,
                                      stations=sizes.stations)
    services = build_services()

    stations = centres[centres["level"] == "station"].reset_index(drop=True)
    district = pd.Series(Hierarchy.from_centres(centres).ancestor(stations["centre_id"],
                                                                  "district"))
    kind_weight = pd.Series(geography.district_kinds(district.to_numpy())).map(
        _HOUSEHOLDS_BY_KIND).to_numpy()
    station_weight = kind_weight * demand_rng.gamma(2.0, size=len(stations))
    households = generate_households(stations, sizes.households, demand_rng,
                                     station_weight=station_weight)
    needs = generate_needs(households, services, demand_rng,
                           per_household=sizes.needs_per_household, week=week)

    station_of = households.set_index("household_id")["station_id"]
    demand = (needs.assign(station_id=station_of.reindex(needs["household_id"]).to_numpy())
              .groupby(["station_id", "service_id"], as_index=False)["quantity"].sum())
    supply = generate_supply(centres, demand, np.random.default_rng(supply_seed),
                             offers=sizes.offers, city_funds=sizes.city_funds,
                             district_funds=sizes.district_funds, ngos=sizes.ngos,
                             volunteers=sizes.volunteers)
    history = _make_history(np.random.default_rng(history_seed), households, needs, services,
                            supply["volunteers"], centres, week)
    pins = pd.DataFrame({name: pd.Series(dtype=float if name == "units" else str)
                         for name in schema.PINS.column_names})

    tables = {"centres": centres, "services": services, "households": households,
              "needs": needs, **supply, "history": history, "pins": pins}
    return {name: _conform(tables[name], table) for name, table in schema.TABLES.items()}
