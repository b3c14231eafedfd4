"""Tests of the seeded synthetic scenario generator (planning.generate and the generators in
resources/ and demand/ it combines)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wulian.contract import schema, vocab
from wulian.contract.hierarchy import Hierarchy
from wulian.planning.generate import PRESETS, generate_scenario
from wulian.planning.io import as_text, write_tables
from wulian.planning.validate import validate_tables
from wulian.resources import geography

Tables = dict[str, pd.DataFrame]


@pytest.fixture(scope="module")
def tiny() -> Tables:
    return generate_scenario("tiny", seed=0)


@pytest.fixture(scope="module")
def district() -> Tables:
    return generate_scenario("district", seed=0)


@pytest.fixture(scope="module")
def city() -> Tables:
    # The only place the city preset is generated: about 3 s and 0.5 GB.
    return generate_scenario("city", seed=0)


@pytest.fixture(params=["tiny", "district", "city"])
def any_preset(request: pytest.FixtureRequest) -> Tables:
    return request.getfixturevalue(request.param)


def _split(cells: pd.Series) -> pd.Series:
    """A ';'-list column as one code per row (empty cells dropped)."""
    parts = cells.str.split(";").explode()
    return parts[parts.notna() & (parts != "")]


def _isin(values: pd.Series, targets: pd.Series) -> pd.Series:
    """``values.isin(targets)``; as object arrays, since pyarrow strings' ``isin`` is about ten
    times slower on the city's hundreds of thousands of ids."""
    return values.astype(object).isin(targets.astype(object))


def _level_of(tables: Tables) -> pd.Series:
    centres = tables["centres"]
    return pd.Series(centres["level"].to_numpy(), index=centres["centre_id"].to_numpy())


# --- centres -----------------------------------------------------------------------------------


def test_city_centre_counts(city: Tables) -> None:
    """The city preset has exactly Chengdu's 1 / 22 / 292 / 3363 centres by level."""
    counts = city["centres"]["level"].value_counts()
    assert counts.to_dict() == {"city": 1, "district": 22, "street": 292, "station": 3363}


def test_city_parents_one_level_up(city: Tables) -> None:
    """Every centre's parent sits exactly one level up and only the city centre has none."""
    centres = city["centres"]
    level_of = _level_of(city)
    parent_level = centres["parent_id"].map(level_of).fillna("")
    expected = centres["level"].map(lambda lv: vocab.PARENT_LEVEL[lv] or "")
    assert (parent_level == expected).all()
    assert (centres["parent_id"] == "").sum() == 1


def test_city_districts_are_chengdu(city: Tables) -> None:
    """The 22 district centres carry the real names, coordinates inside Chengdu's area."""
    centres = city["centres"]
    districts = centres[centres["level"] == "district"]
    assert set(districts["name"]) == {d.name for d in geography.DISTRICTS}
    assert {"锦江区", "武侯区", "简阳市", "成都高新区", "天府新区"} <= set(districts["name"])
    assert centres["lat"].between(30.0, 31.5).all() and centres["lon"].between(102.9, 105.0).all()


def test_district_centres_are_a_subset_of_city(district: Tables, city: Tables) -> None:
    """The district preset's centres are the city's centres of that district, row for row."""
    ids = district["centres"]["centre_id"]
    from_city = city["centres"].set_index("centre_id").loc[ids].reset_index()
    pd.testing.assert_frame_equal(district["centres"], from_city)


# --- sizes -------------------------------------------------------------------------------------


def test_city_sizes(city: Tables) -> None:
    """The city preset is Chengdu-sized: 300k households, ~500k needs, 3,000+ offers, 40+ funds,
    30k volunteers, 20+ services."""
    assert len(city["households"]) == 300_000
    assert 450_000 <= len(city["needs"]) <= 550_000
    assert len(city["offers"]) >= 3_000
    assert len(city["funds"]) >= 40
    assert (city["funds"]["earmarked_services"] != "").sum() >= 10
    assert len(city["volunteers"]) == 30_000
    assert city["needs"]["service_id"].nunique() >= 20


def test_district_sizes(district: Tables) -> None:
    """The district preset is one district: ~13 streets, 200+ stations, ~4,000 households,
    ~8,000 needs, a few hundred offers, ~8 funds, ~600 volunteers."""
    levels = district["centres"]["level"].value_counts()
    assert levels["city"] == 1 and levels["district"] == 1
    assert 10 <= levels["street"] <= 16
    assert levels["station"] >= 200
    assert len(district["households"]) == PRESETS["district"].households == 4_000
    assert 7_000 <= len(district["needs"]) <= 9_000
    assert 200 <= len(district["offers"]) <= 500
    assert 6 <= len(district["funds"]) <= 10
    assert len(district["volunteers"]) == 600


def test_tiny_sizes(tiny: Tables) -> None:
    """The tiny preset is small enough to read: 2 streets, 6 stations, ~40 households."""
    levels = tiny["centres"]["level"].value_counts()
    assert (levels["street"], levels["station"]) == (2, 6)
    assert len(tiny["households"]) == 40
    assert 40 <= len(tiny["needs"]) <= 130
    assert 10 <= len(tiny["offers"]) <= 20
    assert len(tiny["funds"]) == 3
    assert len(tiny["volunteers"]) == 15
    assert tiny["pins"].empty


# --- determinism -------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["tiny", "district"])
def test_same_seed_same_frames(preset: str) -> None:
    """The same seed gives identical frames, table by table."""
    first, second = generate_scenario(preset, seed=7), generate_scenario(preset, seed=7)
    assert list(first) == list(second)
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name])


def test_seed_zero_is_reproducible(district: Tables) -> None:
    """The default seed reproduces the module's district scenario (what the demo ships)."""
    again = generate_scenario("district")
    for name, frame in district.items():
        pd.testing.assert_frame_equal(frame, again[name])


def test_same_seed_same_files(tmp_path: Path) -> None:
    """The same seed writes byte-identical CSV files."""
    first = write_tables(generate_scenario("tiny", seed=3), tmp_path / "a")
    second = write_tables(generate_scenario("tiny", seed=3), tmp_path / "b")
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir()) and len(names) == len(schema.TABLES)
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_different_seed_different_frames(tiny: Tables) -> None:
    """Another seed gives other households, needs, offers and volunteers (same centres)."""
    other = generate_scenario("tiny", seed=1)
    pd.testing.assert_frame_equal(tiny["centres"], other["centres"])
    for name in ("households", "needs", "offers", "volunteers"):
        assert not tiny[name].equals(other[name]), name


# --- the contract ------------------------------------------------------------------------------


def test_frames_follow_the_schema(any_preset: Tables) -> None:
    """Every table has exactly the schema's columns in order, unique sorted keys, str ids,
    bool booleans, and no missing value where the contract forbids one."""
    assert list(any_preset) == list(schema.TABLES)
    for name, table in schema.TABLES.items():
        frame = any_preset[name]
        assert list(frame.columns) == list(table.column_names), name
        if table.key:
            keys = frame[table.key]
            assert keys.is_unique and keys.is_monotonic_increasing, name
        for col in table.columns:
            values = frame[col.name]
            if col.dtype in ("str", "list", "week"):
                assert pd.api.types.is_string_dtype(values) and values.notna().all(), col
                if not col.nullable:
                    assert (values != "").all(), (name, col.name)
            elif col.dtype == "bool":
                assert values.dtype == bool, (name, col.name)
            elif col.dtype in ("int", "float", "money"):
                assert pd.api.types.is_numeric_dtype(values), (name, col.name)
                if not col.nullable:
                    assert values.notna().all(), (name, col.name)
                if col.positive:
                    assert (values.dropna() > 0).all(), (name, col.name)
                if col.dtype == "money":
                    cents = values.dropna() * 100
                    assert np.allclose(cents, np.round(cents)), (name, col.name)


def test_tiny_codes_in_vocab(tiny: Tables) -> None:
    """Every coded cell of the tiny scenario (single codes and ';'-lists) is in the vocabulary."""
    for name, table in schema.TABLES.items():
        for col in table.columns:
            if not col.allowed:
                continue
            values = tiny[name][col.name]
            if col.dtype == "list":
                codes = _split(values)
            elif col.dtype == "int":
                codes = values.astype(str)
            else:
                codes = values[values != ""]
            assert codes.isin(col.allowed).all(), (name, col.name)


def test_references_resolve(any_preset: Tables) -> None:
    """Every reference resolves: need → household → station, offer → provider, service, fund
    and centre, fund → centre and earmarked services, volunteer → team and station, history →
    household and volunteer."""
    t = any_preset
    level_of = _level_of(t)
    for name, table in schema.TABLES.items():
        for col in table.columns:
            if not col.ref:
                continue
            target_table, target_col = col.ref.split(".")
            values = t[name][col.name]
            values = _split(values) if col.dtype == "list" else values[values != ""]
            assert _isin(values, t[target_table][target_col]).all(), (name, col.name)
    # Households and volunteers live at stations; funds sit at the city or a district.
    assert (t["households"]["station_id"].map(level_of) == "station").all()
    assert (t["volunteers"]["station_id"].map(level_of) == "station").all()
    assert t["funds"]["centre_id"].map(level_of).isin(["city", "district"]).all()
    linkage = t["providers"].set_index("provider_id")["linkage"]
    assert (t["volunteers"]["provider_id"].map(linkage) == "volunteer").all()
    # Money flows only through funds: a unit cost needs a paying fund, cash a unit cost of 1.
    offers = t["offers"]
    assert ((offers["unit_cost"] > 0) == (offers["fund_id"] != "")).all()
    unit = offers["service_id"].map(t["services"].set_index("service_id")["unit"])
    assert (offers.loc[unit == "yuan", "unit_cost"] == 1.0).all()


def test_generated_scenarios_pass_validation(tiny: Tables, district: Tables) -> None:
    """The project's validator finds no problem in the tiny and district scenarios."""
    for tables in (tiny, district):
        _, problems = validate_tables({name: as_text(frame) for name, frame in tables.items()})
        assert problems == []


def test_quantities_in_whole_units_or_cents(any_preset: Tables) -> None:
    """Needs, capacities and caps are whole numbers for hour/visit/item and cents for yuan."""
    unit_of = any_preset["services"].set_index("service_id")["unit"]
    for name, column in (("needs", "quantity"), ("offers", "capacity"),
                         ("offers", "max_per_household")):
        frame = any_preset[name]
        values = frame[column].to_numpy(dtype=float)
        unit = frame["service_id"].map(unit_of).to_numpy()
        known = ~np.isnan(values)
        whole = known & np.isin(unit, list(vocab.WHOLE_UNITS))
        assert (values[whole] == np.round(values[whole])).all(), (name, column)
        cents = values[known & (unit == "yuan")] * 100
        assert np.allclose(cents, np.round(cents)), (name, column)


def test_services_catalogue_spans_the_vocabulary(tiny: Tables) -> None:
    """20+ services over every unit, delivery and dimension; in-person ones have skills and
    visit hours, and some need a background-checked volunteer."""
    services = tiny["services"]
    assert len(services) >= 20
    assert set(services["unit"]) == set(vocab.UNITS)
    assert set(services["delivery"]) == set(vocab.DELIVERIES)
    assert set(services["dimension"]) == set(vocab.DIMENSIONS)
    in_person = services["delivery"] == "in_person"
    assert (services.loc[in_person, "skills"] != "").all()
    assert services.loc[in_person, "visit_hours"].gt(0).all()
    assert services.loc[~in_person, "visit_hours"].isna().all()
    assert services["safeguarding"].any()
    assert set(_split(services["skills"])) == set(vocab.SKILLS)


def test_tiny_exercises_every_rule(tiny: Tables) -> None:
    """The tiny scenario uses every optional rule: eligibility by category and colour, coverage
    left empty and at a station, offer and fund caps, earmarks, fund-paid hours, all five
    linkages, assessor colour overrides and volunteers with and without background checks."""
    offers, funds = tiny["offers"], tiny["funds"]
    level_of = _level_of(tiny)
    assert (offers["eligible_categories"] != "").any()
    assert (offers["eligible_tiers"] != "").any()
    assert (offers["coverage_centre_id"] == "").any()
    assert (offers["coverage_centre_id"].map(level_of) == "station").any()
    assert offers["max_per_household"].notna().any()
    assert (funds["earmarked_services"] != "").any() and (funds["earmarked_services"] == "").any()
    assert funds["max_per_household"].notna().any()
    unit = offers["service_id"].map(tiny["services"].set_index("service_id")["unit"])
    assert ((offers["unit_cost"] > 1) & (unit == "hour")).any()
    linkage = offers["provider_id"].map(tiny["providers"].set_index("provider_id")["linkage"])
    assert set(linkage) == set(vocab.LINKAGES)
    assert (tiny["households"]["tier"] != "").any()
    assert tiny["volunteers"]["background_checked"].nunique() == 2
    assert len(tiny["history"]) > 0


# --- scarcity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["district", "city"])
def test_supply_is_scarce(preset: str, request: pytest.FixtureRequest) -> None:
    """Several services have far less capacity than need, and some fund budgets bind."""
    t = request.getfixturevalue(preset)
    need = t["needs"].groupby("service_id")["quantity"].sum()
    capacity = t["offers"].groupby("service_id")["capacity"].sum().reindex(need.index,
                                                                          fill_value=0.0)
    assert (capacity < 0.5 * need).sum() >= 3
    assert (capacity > need).any()  # and some are plentiful: scarcity is uneven
    offers = t["offers"]
    spend = (offers["capacity"] * offers["unit_cost"]).groupby(offers["fund_id"]).sum()
    budget = t["funds"].set_index("fund_id")["budget"]
    assert (budget < spend.reindex(budget.index, fill_value=0.0)).sum() >= 3


def test_city_districts_unevenly_served(city: Tables) -> None:
    """Volunteers per household differ several-fold between districts."""
    hierarchy = Hierarchy.from_centres(city["centres"])
    district_of = pd.Series(hierarchy.path["district"])
    volunteers = city["volunteers"]["station_id"].map(district_of).value_counts()
    households = city["households"]["station_id"].map(district_of).value_counts()
    per_household = volunteers / households
    assert per_household.max() > 3 * per_household.min()


def test_bundled_demo_is_the_district_preset(tmp_path):
    """data/demo/ is byte for byte what `wulian generate --preset district --seed 0` writes."""
    demo = Path(__file__).resolve().parent.parent / "data" / "demo"
    write_tables(generate_scenario("district", seed=0), tmp_path, "csv")
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in demo.iterdir())
    for name in written:
        assert (tmp_path / name).read_bytes() == (demo / name).read_bytes(), name
