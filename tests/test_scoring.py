"""Alkire–Foster scoring, decompositions, the colour policy and the four-colour code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wulian.contract import vocab
from wulian.demand.policy import DEFAULT_MONITORING_WEEKS, FlagRule, Policy, PolicyError
from wulian.demand.scoring import (
    af_measures,
    category_matrix,
    colour,
    decompose,
    deprivation_matrix,
    score_households,
)

DATA = Path(__file__).parent / "data"
D = len(vocab.DIMENSIONS)
RANK = {t: i for i, t in enumerate(vocab.TIER_ORDER)}

# The textbook 4 × 4 example (Alkire & Foster 2011): four people, four indicators.
ACHIEVEMENTS = np.array(
    [
        [13.1, 14, 4, 1],
        [15.2, 7, 5, 0],
        [12.5, 10, 1, 0],
        [20, 11, 3, 1],
    ]
)
CUTOFFS = np.array([13, 12, 3, 1])
EQUAL4 = np.full(4, 0.25)


def households_frame(g: np.ndarray, categories=None, tier=None) -> pd.DataFrame:
    """A households table with deprivations ``g`` (n × 7) and optional categories / tiers."""
    n = g.shape[0]
    frame = pd.DataFrame(g.astype(int), columns=list(vocab.DEPRIVATION_COLUMNS))
    frame.insert(0, "household_id", [f"H{i}" for i in range(n)])
    frame.insert(1, "size", 1)
    frame.insert(2, "categories", categories if categories is not None else [""] * n)
    if tier is not None:
        frame["tier"] = tier
    return frame


def deprived_in(count: int) -> np.ndarray:
    """One household row deprived in the first ``count`` of the seven dimensions."""
    return np.array([[1] * count + [0] * (D - count)])


# ---------------------------------------------------------------------- textbook example


def test_textbook_deprivation_matrix():
    """Deprived means strictly below the cut-off, as in the textbook example."""
    g = deprivation_matrix(ACHIEVEMENTS, CUTOFFS)
    assert g.tolist() == [[0, 0, 0, 0], [0, 1, 0, 1], [1, 1, 1, 1], [0, 1, 0, 0]]


def test_textbook_k_two_of_four():
    """At k = 2/4 the textbook example gives H = 0.5, A = 0.75, M0 = 0.375 and hand-made h_j."""
    r = af_measures(deprivation_matrix(ACHIEVEMENTS, CUTOFFS), EQUAL4, k=0.5)
    assert r.poor.tolist() == [False, True, True, False]
    assert r.scores.tolist() == pytest.approx([0, 0.5, 1, 0.25])
    assert (r.H, r.A, r.M0) == pytest.approx((0.5, 0.75, 0.375))
    # Censored: only b and c count; b is deprived in 2 and 4, c in all four.
    assert r.censored_h == pytest.approx([0.25, 0.5, 0.25, 0.5])
    assert r.uncensored_h == pytest.approx([0.25, 0.75, 0.25, 0.5])
    assert r.contribution == pytest.approx([1 / 6, 1 / 3, 1 / 6, 1 / 3])


def test_textbook_k_one_of_four():
    """At k = 1/4 the textbook example gives H = 0.75, A = 7/12, M0 = 0.4375 and hand-made h_j."""
    r = af_measures(deprivation_matrix(ACHIEVEMENTS, CUTOFFS), EQUAL4, k=0.25)
    assert r.poor.tolist() == [False, True, True, True]
    assert (r.H, r.A, r.M0) == pytest.approx((0.75, 7 / 12, 0.4375))
    assert r.censored_h == pytest.approx([0.25, 0.75, 0.25, 0.5])
    assert r.contribution == pytest.approx([1 / 7, 3 / 7, 1 / 7, 2 / 7])
    table = r.indicator_table()
    assert table["contribution"].sum() == pytest.approx(1.0)


def test_identification_tolerates_float_sums():
    """A score that float addition puts a hair below k still counts as reaching k."""
    g = np.array([[1] * 8 + [0] * 2, [1] * 7 + [0] * 3])
    w = np.full(10, 0.1)
    assert sum([0.1] * 8) < 0.8  # the floating-point trap the tolerance guards against
    r = af_measures(g, w, k=0.8)
    assert r.poor.tolist() == [True, False]


def test_persons_equal_replicated_households():
    """Weighting households by size gives the same measures as one row per person."""
    rng = np.random.default_rng(7)
    g = (rng.random((50, 4)) < 0.4).astype(int)
    size = rng.integers(1, 6, 50)
    weighted = af_measures(g, EQUAL4, 0.5, population=size)
    replicated = af_measures(np.repeat(g, size, axis=0), EQUAL4, 0.5)
    assert weighted.total_population == size.sum()
    for field in ("H", "A", "M0"):
        assert getattr(weighted, field) == pytest.approx(getattr(replicated, field))
    assert weighted.censored_h == pytest.approx(replicated.censored_h)


def test_nobody_poor_gives_zero_m0_and_undefined_shares():
    """With nobody poor M0 is 0 while A and the contributions are nan, not a made-up number."""
    r = af_measures(np.zeros((3, 4)), EQUAL4, k=0.5)
    assert r.H == 0 and r.M0 == 0
    assert np.isnan(r.A) and np.isnan(r.contribution).all()


@pytest.mark.parametrize(
    "g, weights, k, message",
    [
        ([[0, 2], [1, 0]], [0.5, 0.5], 0.5, "0 or 1"),
        ([[0, np.nan], [1, 0]], [0.5, 0.5], 0.5, "0 or 1"),
        ([[0, 1], [1, 0]], [0.5, 0.4], 0.5, "sum to 1"),
        ([[0, 1], [1, 0]], [1.0], 0.5, "length 2"),
        ([[0, 1], [1, 0]], [0.5, 0.5], 0.0, "0 < k"),
    ],
)
def test_af_rejects_bad_input(g, weights, k, message):
    """Malformed deprivations, weights or k raise ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=message):
        af_measures(g, weights, k)


# ---------------------------------------------------------------------- decompositions


@pytest.mark.parametrize(
    "n, n_groups, persons",
    [
        (10, 1, False),
        (200, 3, False),
        (1000, 17, True),
        (5000, 60, True),
    ],
)
def test_decompositions_add_up(n, n_groups, persons):
    """Indicator shares sum to 1 and M0 (and H) is the population-weighted mean over groups."""
    rng = np.random.default_rng(n)
    g = (rng.random((n, D)) < 0.4).astype(int)
    w = rng.dirichlet(np.ones(D))
    w /= w.sum()
    population = rng.integers(1, 7, n) if persons else None
    groups = rng.integers(0, n_groups, n)
    overall = af_measures(g, w, 1 / 3, population)
    assert overall.contribution.sum() == pytest.approx(1.0)
    assert overall.M0 == pytest.approx(overall.H * overall.A)
    assert overall.M0 == pytest.approx((w * overall.censored_h).sum())

    table = decompose(g, w, 1 / 3, groups, population, indicators=True)
    assert table["n"].sum() == n
    assert table["population_share"].sum() == pytest.approx(1.0)
    assert (table["population_share"] * table["M0"]).sum() == pytest.approx(overall.M0)
    assert (table["population_share"] * table["H"]).sum() == pytest.approx(overall.H)
    assert table["contribution"].sum() == pytest.approx(1.0)
    h_cols = [f"h_{j}" for j in range(D)]
    assert (table[h_cols].to_numpy() @ w) == pytest.approx(table["M0"].to_numpy())


def test_decompose_rejects_missing_group():
    """A unit without a group label raises instead of silently dropping out of the total."""
    with pytest.raises(ValueError, match="no group label"):
        decompose([[1, 0], [0, 1]], [0.5, 0.5], 0.5, ["a", None])


# ---------------------------------------------------------------------- policy


def test_default_policy_loads():
    """The packaged default loads with equal weights, k = 1/3 and the documented values."""
    p = Policy.load()
    assert p.name == "wulian-default"
    assert list(p.weights) == list(vocab.DIMENSIONS)
    assert p.weight_vector() == pytest.approx(np.full(D, 1 / D))
    assert p.k == pytest.approx(1 / 3)
    assert dict(p.thresholds) == {"red": 0.70, "orange": 0.55, "yellow": 0.40}
    assert dict(p.monitoring_weeks) == dict(DEFAULT_MONITORING_WEEKS)
    assert {f.name: f.at_least for f in p.flags} == {
        "ill_and_alone": "red",
        "tekun": "orange",
        "child_in_difficulty": "yellow",
    }


def test_policy_digest_is_stable_and_round_trips():
    """to_dict → from_dict gives an equal policy with the same digest; a change changes it."""
    p = Policy.load()
    again = Policy.from_dict(p.to_dict())
    assert again == p and again.digest() == p.digest() == Policy.load().digest()
    assert len(p.digest()) == 64
    changed = dataclasses.replace(p, k=0.4)
    assert changed.digest() != p.digest()


def test_policy_is_immutable():
    """A loaded policy cannot be changed in place, neither its fields nor its weights."""
    p = Policy.load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.k = 0.5  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.weights["income"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    "fixture, keys",
    [
        ("policy_bad_weights.toml", ["weights"]),
        ("policy_unknown_dimension.toml", ["weights.incme", "weights.income"]),
        ("policy_thresholds_out_of_order.toml", ["thresholds"]),
        ("policy_k_out_of_range.toml", ["k"]),
        ("policy_unknown_flag_category.toml", ["flags[0].all_of", "flags[0].at_least"]),
        ("policy_not_toml.toml", ["(file)"]),
    ],
)
def test_bad_policy_files_name_the_key(fixture, keys):
    """Each bad policy file raises a ValueError naming exactly the wrong keys, in zh and en."""
    with pytest.raises(ValueError) as info:
        Policy.load(DATA / fixture)
    err = info.value
    assert isinstance(err, PolicyError)
    assert err.keys == keys
    text = str(err)
    assert fixture in text and "策略无效" in text and "invalid policy" in text
    for key in keys:
        assert f"[{key}]" in text


def test_bad_weights_message_says_how_to_fix():
    """The weight-sum message gives the actual sum and the fix, in both languages."""
    with pytest.raises(PolicyError) as info:
        Policy.load(DATA / "policy_bad_weights.toml")
    text = str(info.value)
    assert "0.9" in text and "权重之和" in text and "add up to 1" in text


def test_direct_construction_checks_itself():
    """Building a Policy in code enforces the same rules as loading a file."""
    p = Policy.load()
    with pytest.raises(PolicyError) as info:
        dataclasses.replace(p, weights={**p.weights, "income": 0.5})
    assert info.value.keys == ["weights"]
    with pytest.raises(PolicyError) as info:
        dataclasses.replace(p, flags=(FlagRule("x", ("nobody",), "red"),))
    assert info.value.keys == ["flags[0].all_of"]


# ---------------------------------------------------------------------- colours


def test_score_thresholds_give_expected_colours():
    """0–2, 3, 4 and 5+ of seven equal-weight deprivations map to green, yellow, orange, red."""
    g = np.vstack([deprived_in(c) for c in range(D + 1)])
    out = colour(households_frame(g), Policy.load())
    assert out["tier"].tolist() == ["green"] * 3 + ["yellow", "orange"] + ["red"] * 3
    assert out["poor"].tolist() == [False] * 3 + [True] * 5
    assert (out["tier_source"] == "score").all()
    assert out["monitoring_weeks"].tolist() == [13] * 3 + [4, 2] + [1] * 3


def test_override_tier_wins():
    """A non-empty tier in the households table beats both the score and the flags."""
    g = np.vstack([deprived_in(7), deprived_in(0), deprived_in(0), deprived_in(3)])
    cats = ["", "serious_illness;elderly_alone", "", ""]
    out = colour(households_frame(g, cats, tier=["green", "yellow", "red", None]), Policy.load())
    assert out["tier"].tolist() == ["green", "yellow", "red", "yellow"]
    assert out["tier_source"].tolist() == ["override", "override", "override", "score"]
    assert out["score_tier"].tolist() == ["red", "green", "green", "yellow"]


def test_flag_rule_forces_red():
    """Serious illness plus living alone makes a household red whatever its score."""
    g = np.vstack([deprived_in(0)] * 3)
    cats = ["serious_illness;elderly_alone", " elderly_alone ; serious_illness", "elderly_alone"]
    out = colour(households_frame(g, cats), Policy.load())
    assert out["tier"].tolist() == ["red", "red", "green"]
    assert out["tier_source"].tolist() == ["flag", "flag", "score"]
    assert out["flag"].tolist() == ["ill_and_alone", "ill_and_alone", ""]


def test_flags_never_lower_a_colour():
    """A flag forcing at least yellow leaves a red-by-score household red."""
    out = colour(households_frame(deprived_in(6), ["child_in_difficulty;tekun"]), Policy.load())
    assert out["tier"].item() == "red"
    assert out["tier_source"].item() == "score"
    assert out["flag"].item() == "tekun"  # the most severe rule that matched


def test_raising_a_deprivation_never_lowers_the_colour():
    """Monotonic: turning any 0 into a 1 never makes the colour less severe."""
    rng = np.random.default_rng(3)
    n = 2000
    g = (rng.random((n, D)) < 0.4).astype(int)
    pool = np.array(
        [
            "",
            "dibao",
            "tekun",
            "serious_illness;elderly_alone",
            "child_in_difficulty",
            "elderly_alone",
        ]
    )
    cats = pool[rng.integers(0, len(pool), n)]
    tier = np.where(rng.random(n) < 0.05, "orange", "")
    p = Policy.load()
    before = colour(households_frame(g, cats, tier), p)["tier"].map(RANK).to_numpy()
    for j in range(D):
        raised = g.copy()
        raised[:, j] = 1
        after = colour(households_frame(raised, cats, tier), p)["tier"].map(RANK).to_numpy()
        assert (after <= before).all()


def test_default_thresholds_match_target_split():
    """On the documented reference population (7 × Bernoulli(0.4)) scores split ≈ 10/20/30/40."""
    rng = np.random.default_rng(2026)
    g = (rng.random((100_000, D)) < 0.4).astype(int)
    shares = colour(households_frame(g), Policy.load())["tier"].value_counts(normalize=True)
    target = {"red": 0.10, "orange": 0.20, "yellow": 0.30, "green": 0.40}
    for tier, share in target.items():
        assert shares[tier] == pytest.approx(share, abs=0.03)


def test_colour_rejects_unknown_codes():
    """An unknown category or tier code raises rather than silently escaping a rule."""
    p = Policy.load()
    with pytest.raises(ValueError, match="unknown categories"):
        colour(households_frame(deprived_in(0), ["tekunn"]), p)
    with pytest.raises(ValueError, match="unknown tier"):
        colour(households_frame(deprived_in(0), tier=["purple"]), p)
    with pytest.raises(ValueError, match="0 or 1"):
        colour(households_frame(2 * deprived_in(1)), p)


def test_category_matrix_accepts_strings_lists_and_blanks():
    """Category cells may be ';'-strings, lists, empty or missing; columns follow the vocab."""
    m = category_matrix(pd.Series(["dibao;tekun", None, "", ["tekun"]], dtype=object))
    col = list(vocab.CATEGORIES)
    assert m.shape == (4, len(col))
    assert m[0, col.index("dibao")] and m[0, col.index("tekun")] and m[0].sum() == 2
    assert not m[1].any() and not m[2].any()
    assert m[3, col.index("tekun")] and m[3].sum() == 1


def test_colour_is_deterministic_and_keeps_the_index():
    """Same input gives an identical result, indexed like the households table."""
    rng = np.random.default_rng(5)
    frame = households_frame((rng.random((300, D)) < 0.4).astype(int))
    frame.index = pd.Index([f"row{i}" for i in range(300)])
    a, b = colour(frame, Policy.load()), colour(frame, Policy.load())
    pd.testing.assert_frame_equal(a, b)
    assert a.index.equals(frame.index)


# ---------------------------------------------------------------------- whole scenario


def small_city() -> pd.DataFrame:
    """Centres: a city, two districts, three streets, five stations."""
    rows = [
        ("C", "city", None, "city"),
        ("D1", "district", "C", "district 1"),
        ("D2", "district", "C", "district 2"),
        ("S1", "street", "D1", "street 1"),
        ("S2", "street", "D1", "street 2"),
        ("S3", "street", "D2", "street 3"),
        ("T1", "station", "S1", "t1"),
        ("T2", "station", "S1", "t2"),
        ("T3", "station", "S2", "t3"),
        ("T4", "station", "S3", "t4"),
        ("T5", "station", "S3", "t5"),
    ]
    return pd.DataFrame(rows, columns=["centre_id", "level", "parent_id", "name"])


def test_score_households_maps_and_decomposes():
    """Stations map to streets and districts, and both decompositions add up to the whole."""
    rng = np.random.default_rng(11)
    n = 400
    frame = households_frame((rng.random((n, D)) < 0.4).astype(int))
    frame["station_id"] = np.array(["T1", "T2", "T3", "T4", "T5"])[rng.integers(0, 5, n)]
    frame["size"] = rng.integers(1, 6, n)
    for count in ("households", "persons"):
        result = score_households(frame, small_city(), Policy.load(), count=count)
        out = result.households
        expect_street = frame["station_id"].map(
            {"T1": "S1", "T2": "S1", "T3": "S2", "T4": "S3", "T5": "S3"}
        )
        assert out["street_id"].tolist() == expect_street.tolist()
        assert (
            out["district_id"].tolist()
            == expect_street.map({"S1": "D1", "S2": "D1", "S3": "D2"}).tolist()
        )
        for table in (result.by_district, result.by_street):
            assert (table["population_share"] * table["M0"]).sum() == pytest.approx(
                result.overall.M0
            )
            assert table["contribution"].sum() == pytest.approx(1.0)
        assert result.by_district["name"].tolist() == ["district 1", "district 2"]
        assert result.by_street["district_id"].tolist() == ["D1", "D1", "D2"]
        assert result.tier_counts().sum() == n
    persons = score_households(frame, small_city(), Policy.load(), count="persons")
    assert persons.overall.total_population == frame["size"].sum()


def test_score_households_rejects_unknown_station():
    """A household at a centre that is not a station raises with the offending id."""
    frame = households_frame(deprived_in(1))
    frame["station_id"] = ["S1"]  # a street, not a station
    with pytest.raises(ValueError, match="S1"):
        score_households(frame, small_city(), Policy.load())
