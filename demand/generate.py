"""Synthetic households and their open needs for a week.

Households are drawn by type (elderly, family with children, working age); the type sets the
household size and the chance of each assistance category, and the categories (plus a latent
hardship) set the deprivation profile ``d_income … d_social``. Needs follow from categories and
deprivations through one logistic model per service (disabled → rehabilitation and livelihood,
child in difficulty → tutoring and child care, elderly living alone → companionship and meal
help, serious illness → medical aid, …), shifted once so the mean number of needs per household
hits the preset's target.

Every step is vectorised over households (and households × services); nothing here reads or
writes files, and every random draw comes from the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wulian.contract import schema, vocab
from wulian.resources.generate import join_codes, make_ids

CATEGORY_CODES: tuple[str, ...] = tuple(vocab.CATEGORIES)
DIMENSION_CODES: tuple[str, ...] = tuple(vocab.DIMENSIONS)

# ---------------------------------------------------------------------------------------------
# Households
# ---------------------------------------------------------------------------------------------

_TYPES = ("elderly", "children", "working")
_TYPE_SHARE = np.array([0.4, 0.3, 0.3])
# Household size 1..6 by type.
_SIZE_SHARE = np.array([
    [0.55, 0.38, 0.05, 0.02, 0.0, 0.0],
    [0.0, 0.10, 0.35, 0.30, 0.15, 0.10],
    [0.30, 0.30, 0.20, 0.15, 0.05, 0.0],
])
# Income status is one of: none, dibao, tekun, low_income (dibao and tekun exclude each other
# by rule, and low income is the band just above them).
_INCOME_STATUS = ("", "dibao", "tekun", "low_income")
_INCOME_SHARE = np.array([
    [0.30, 0.30, 0.20, 0.20],
    [0.35, 0.40, 0.02, 0.23],
    [0.40, 0.35, 0.03, 0.22],
])
# Chance of the other categories by type (elderly_alone also needs a one-person household;
# rigid_expense is raised by serious illness below).
_CATEGORY_CHANCE = {
    "disabled": (0.25, 0.18, 0.18),
    "serious_illness": (0.22, 0.12, 0.12),
    "child_in_difficulty": (0.0, 0.35, 0.0),
    "unemployed": (0.0, 0.20, 0.35),
    "elderly_alone": (0.75, 0.0, 0.0),
    "rigid_expense": (0.10, 0.12, 0.12),
}
# Deprivation model: logit = base + Σ coefficient × category + hardship_weight × hardship.
_DEPRIVATION_MODEL: dict[str, tuple[float, dict[str, float]]] = {
    "income": (-1.2, {"dibao": 2.2, "tekun": 2.2, "low_income": 1.2, "unemployed": 1.0}),
    "education": (-2.0, {"child_in_difficulty": 1.8, "elderly_alone": 0.4}),
    "health": (-1.5, {"serious_illness": 2.5, "disabled": 1.5, "elderly_alone": 0.7}),
    "housing": (-1.6, {"elderly_alone": 0.6, "tekun": 0.6, "dibao": 0.5}),
    "assets": (-1.3, {"dibao": 1.2, "tekun": 1.2, "low_income": 0.6}),
    "capability": (-1.8, {"disabled": 1.8, "unemployed": 1.2, "serious_illness": 0.8}),
    "social": (-1.8, {"elderly_alone": 2.0, "disabled": 0.6, "child_in_difficulty": 0.8}),
}
_HARDSHIP_WEIGHT = 0.6
# Share of households whose colour an assessor set by hand, and the colours they set.
_OVERRIDE_SHARE = 0.03
_OVERRIDE_TIERS = np.array([0.35, 0.30, 0.20, 0.15])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _draw_rows(rng: np.random.Generator, probabilities: np.ndarray, rows: np.ndarray
               ) -> np.ndarray:
    """One column index per entry of ``rows``, drawn from ``probabilities[rows]`` (vectorised
    inverse-CDF sampling)."""
    cumulative = np.cumsum(probabilities, axis=1)[rows]
    cumulative[:, -1] = 1.0
    return (rng.random(len(rows))[:, None] > cumulative).sum(axis=1)


def generate_households(stations: pd.DataFrame, count: int, rng: np.random.Generator, *,
                        station_weight: np.ndarray | None = None) -> pd.DataFrame:
    """``count`` assessed households living at ``stations``.

    Parameters
    ----------
    stations
        Centres of level ``station`` (a ``centres`` table filtered to stations).
    count
        Number of households.
    rng
        The random generator all draws come from.
    station_weight
        Relative number of households at each station (default: random, uneven).

    Returns
    -------
    pandas.DataFrame
        The ``households`` table: the contract's columns in schema order, sorted by
        ``household_id``. Ids run through the stations in centre order; ``lat``/``lon`` are
        left empty (households are placed at their station, which keeps them pseudonymous).
    """
    if station_weight is None:
        station_weight = rng.gamma(2.0, size=len(stations))
    station_weight = np.asarray(station_weight, dtype=float)
    home = np.sort(rng.choice(len(stations), size=count, p=station_weight / station_weight.sum()))

    kind = rng.choice(len(_TYPES), size=count, p=_TYPE_SHARE)
    size = _draw_rows(rng, _SIZE_SHARE, kind) + 1

    categories = np.zeros((count, len(CATEGORY_CODES)), dtype=bool)
    column = {code: i for i, code in enumerate(CATEGORY_CODES)}
    status = _draw_rows(rng, _INCOME_SHARE, kind)
    for s, code in enumerate(_INCOME_STATUS):
        if code:
            categories[:, column[code]] = status == s
    for code, chance in _CATEGORY_CHANCE.items():
        p = np.asarray(chance)[kind]
        if code == "elderly_alone":
            p = np.where(size == 1, p, 0.0)
        if code == "rigid_expense":
            # Illness is the commonest rigid expense (因病致贫).
            p = p + 0.25 * categories[:, column["serious_illness"]]
        categories[:, column[code]] = rng.random(count) < p

    hardship = rng.normal(size=count)
    deprived = np.zeros((count, len(DIMENSION_CODES)), dtype=np.int64)
    for j, dimension in enumerate(DIMENSION_CODES):
        base, coefficients = _DEPRIVATION_MODEL[dimension]
        logit = base + _HARDSHIP_WEIGHT * hardship
        for code, coefficient in coefficients.items():
            logit = logit + coefficient * categories[:, column[code]]
        deprived[:, j] = rng.random(count) < _sigmoid(logit)

    tier = np.full(count, "", dtype=object)
    overridden = rng.choice(count, size=max(1, round(count * _OVERRIDE_SHARE)), replace=False)
    tier[overridden] = rng.choice(list(vocab.TIERS), size=len(overridden), p=_OVERRIDE_TIERS)

    frame = pd.DataFrame({
        "household_id": make_ids("H", count, 7),
        "station_id": stations["centre_id"].to_numpy()[home],
        "size": size.astype(np.int64),
        "categories": join_codes(categories, CATEGORY_CODES),
        **{col: deprived[:, j] for j, col in enumerate(vocab.DEPRIVATION_COLUMNS)},
        "tier": tier.astype(str),
        "lat": np.full(count, np.nan),
        "lon": np.full(count, np.nan),
    })
    return frame[list(schema.HOUSEHOLDS.column_names)]


def category_matrix(households: pd.DataFrame) -> np.ndarray:
    """Boolean matrix households × ``vocab.CATEGORIES``: does the household have the category."""
    cells = households["categories"].fillna("")
    padded = ";" + cells.astype(str) + ";"
    return np.column_stack([padded.str.contains(f";{code};", regex=False).to_numpy(dtype=bool)
                            for code in CATEGORY_CODES])


# ---------------------------------------------------------------------------------------------
# Needs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NeedModel:
    """How likely a household needs a service this week, and how much of it.

    The chance is ``sigmoid(base + Σ categories + Σ dimensions + shift)`` where ``shift`` is
    set per scenario to hit the target number of needs. The quantity is lognormal around
    ``median`` (times household size to the power ``size_elasticity``), clipped to
    ``[low, high]``; whole units are rounded, yuan kept to the cent.
    """

    base: float
    categories: dict[str, float] = field(default_factory=dict)
    dimensions: dict[str, float] = field(default_factory=dict)
    median: float = 1.0
    sigma: float = 0.0
    low: float = 1.0
    high: float = 1.0
    size_elasticity: float = 0.0
    urgency_bias: float = 0.0


_M = NeedModel
NEED_MODELS: dict[str, NeedModel] = {
    "medical_aid": _M(-3.4, {"serious_illness": 3.0, "disabled": 0.6, "rigid_expense": 1.2},
                      {"health": 1.0}, 3000.0, 0.8, 200.0, 50_000.0, urgency_bias=0.5),
    "home_modification": _M(-4.8, {"elderly_alone": 1.8, "disabled": 1.8}, {"housing": 1.5},
                            1.0, 0.3, 1.0, 2.0),
    "disabled_livelihood": _M(-6.0, {"disabled": 4.2}, {"capability": 0.8, "income": 0.5},
                              1.0, 0.4, 1.0, 3.0),
    "child_care": _M(-6.0, {"child_in_difficulty": 4.0}, {"social": 0.5}, 4.0, 0.5, 1.0, 12.0),
    "elderly_companionship": _M(-5.0, {"elderly_alone": 4.2}, {"social": 1.0},
                                2.0, 0.4, 1.0, 4.0),
    "counselling": _M(-4.2, {"serious_illness": 0.8, "child_in_difficulty": 0.8},
                      {"social": 1.2, "health": 0.4}, 1.5, 0.5, 1.0, 4.0),
    "tutoring": _M(-6.0, {"child_in_difficulty": 4.2}, {"education": 1.2},
                   4.0, 0.4, 1.0, 10.0),
    "job_training": _M(-5.2, {"unemployed": 3.8}, {"capability": 0.8}, 8.0, 0.5, 2.0, 20.0),
    "legal_aid": _M(-4.6, {"rigid_expense": 0.5}, {"social": 0.4, "capability": 0.4},
                    2.0, 0.5, 1.0, 6.0),
    "emergency_cash": _M(-3.8, {"rigid_expense": 1.5, "serious_illness": 0.5},
                         {"income": 1.2}, 1000.0, 0.6, 100.0, 8_000.0, urgency_bias=0.8),
    "meal_help": _M(-5.2, {"elderly_alone": 3.0, "disabled": 1.0}, {"health": 0.5},
                    5.0, 0.4, 1.0, 14.0, urgency_bias=0.3),
    "rehabilitation": _M(-5.6, {"disabled": 4.0, "serious_illness": 1.0}, {"health": 0.8},
                         3.0, 0.4, 1.0, 8.0),
    "nursing": _M(-5.8, {"serious_illness": 2.5, "disabled": 1.5, "elderly_alone": 1.0},
                  {"health": 0.8}, 4.0, 0.5, 1.0, 14.0, urgency_bias=0.4),
    "errands": _M(-5.2, {"elderly_alone": 2.5, "disabled": 1.2}, {"social": 0.5},
                  2.0, 0.4, 1.0, 4.0),
    "digital_help": _M(-5.2, {"elderly_alone": 2.2}, {"capability": 0.5}, 1.0, 0.3, 1.0, 2.0),
    "education_grant": _M(-5.8, {"child_in_difficulty": 3.5, "dibao": 0.8},
                          {"education": 1.2}, 1000.0, 0.4, 300.0, 5_000.0),
    "heating_cooling": _M(-4.6, {"elderly_alone": 1.2, "tekun": 1.0}, {"housing": 1.2},
                          1.0, 0.3, 1.0, 2.0),
    "food_parcel": _M(-3.8, {"dibao": 1.0, "tekun": 1.0}, {"income": 1.2},
                      1.0, 0.2, 1.0, 4.0, size_elasticity=0.6),
    "home_repair": _M(-4.8, {"elderly_alone": 1.5}, {"housing": 1.5}, 1.0, 0.3, 1.0, 2.0),
    "living_allowance": _M(-4.4, {"low_income": 1.5, "unemployed": 1.0}, {"income": 1.5},
                           500.0, 0.4, 100.0, 2_000.0, size_elasticity=0.5),
    "assistive_device": _M(-6.0, {"disabled": 4.5}, {}, 1.0, 0.3, 1.0, 2.0),
    "school_supplies": _M(-5.8, {"child_in_difficulty": 3.5}, {"education": 1.0},
                          1.0, 0.4, 1.0, 3.0, size_elasticity=0.3),
    "case_work": _M(-4.4, {"child_in_difficulty": 1.0, "elderly_alone": 1.0},
                    {"social": 1.0}, 2.0, 0.5, 1.0, 6.0),
    "household_goods": _M(-4.6, {"tekun": 0.8}, {"assets": 1.5}, 1.0, 0.4, 1.0, 3.0),
}
# A service missing from NEED_MODELS (a user's own catalogue) is needed by households deprived
# in its dimension, in typical amounts of its unit.
_FALLBACK_QUANTITY = {"hour": (2.0, 0.5, 1.0, 8.0), "visit": (1.0, 0.4, 1.0, 4.0),
                      "item": (1.0, 0.3, 1.0, 2.0), "yuan": (800.0, 0.6, 100.0, 5_000.0)}

# Urgency 1..3 from a latent score; thresholds give about 45 % / 35 % / 20 %.
_URGENCY_THRESHOLDS = (0.3, 1.8)


def _need_model(service: pd.Series) -> NeedModel:
    known = NEED_MODELS.get(service["service_id"])
    if known is not None:
        return known
    median, sigma, low, high = _FALLBACK_QUANTITY[service["unit"]]
    return NeedModel(-5.0, {}, {service["dimension"]: 2.0}, median, sigma, low, high)


def _shift_for_target(logits: np.ndarray, per_household: float) -> float:
    """The common shift of all logits that makes the expected number of needs per household
    equal ``per_household`` (bisection; the expectation rises with the shift)."""
    low, high = -10.0, 10.0
    for _ in range(40):
        middle = (low + high) / 2
        expected = _sigmoid(logits + middle).sum(axis=1).mean()
        low, high = (middle, high) if expected < per_household else (low, middle)
    return (low + high) / 2


def generate_needs(households: pd.DataFrame, services: pd.DataFrame, rng: np.random.Generator,
                   *, per_household: float, week: str) -> pd.DataFrame:
    """Open needs of ``households`` for one ``week``.

    Parameters
    ----------
    households
        The ``households`` table.
    services
        The ``services`` table; needs are drawn for every service in it.
    rng
        The random generator all draws come from.
    per_household
        Target mean number of open needs per household.
    week
        ISO week the needs are open, e.g. ``"2026-W49"``.

    Returns
    -------
    pandas.DataFrame
        The ``needs`` table, contract columns in schema order, sorted by ``need_id`` (ids run
        through the households in order).
    """
    count = len(households)
    categories = category_matrix(households).astype(float)
    deprived = households[list(vocab.DEPRIVATION_COLUMNS)].to_numpy(dtype=float)
    models = [_need_model(row) for _, row in services.iterrows()]
    cat_weight = np.array([[m.categories.get(c, 0.0) for m in models] for c in CATEGORY_CODES])
    dim_weight = np.array([[m.dimensions.get(d, 0.0) for m in models] for d in DIMENSION_CODES])
    base = np.array([m.base for m in models])
    logits = base + categories @ cat_weight + deprived @ dim_weight

    # Calibrate on a sample: the shift is a scenario-level constant, not per household.
    sample = logits if count <= 20_000 else logits[rng.choice(count, 20_000, replace=False)]
    shift = _shift_for_target(sample, per_household) if count else 0.0
    needed = rng.random(logits.shape) < _sigmoid(logits + shift)
    rows, cols = np.nonzero(needed)  # row-major: needs grouped by household

    median = np.array([m.median for m in models])[cols]
    sigma = np.array([m.sigma for m in models])[cols]
    elasticity = np.array([m.size_elasticity for m in models])[cols]
    size = households["size"].to_numpy(dtype=float)[rows]
    raw = median * size ** elasticity * np.exp(sigma * rng.standard_normal(len(rows)))
    raw = np.clip(raw, np.array([m.low for m in models])[cols],
                  np.array([m.high for m in models])[cols])
    whole = services["unit"].isin(vocab.WHOLE_UNITS).to_numpy()[cols]
    quantity = np.where(whole, np.maximum(1.0, np.round(raw)), np.round(raw, 2))

    # Urgency rises with the number of deprivations, acute categories and the service.
    acute = categories[:, [CATEGORY_CODES.index("tekun"),
                           CATEGORY_CODES.index("serious_illness")]].max(axis=1)
    score = (0.45 * (deprived.sum(axis=1) - 2.0) + 0.8 * acute)[rows]
    score = score + np.array([m.urgency_bias for m in models])[cols]
    score = score + rng.logistic(size=len(rows))
    urgency = 1 + (score > _URGENCY_THRESHOLDS[0]).astype(np.int64) + (
        score > _URGENCY_THRESHOLDS[1])

    frame = pd.DataFrame({
        "need_id": make_ids("N", len(rows), 7),
        "household_id": households["household_id"].to_numpy()[rows],
        "service_id": services["service_id"].to_numpy()[cols],
        "quantity": quantity,
        "urgency": urgency.astype(np.int64),
        "week": np.full(len(rows), week),
    })
    return frame[list(schema.NEEDS.column_names)]
