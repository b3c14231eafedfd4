"""Alkire–Foster multidimensional scoring and the four-colour code (DESIGN.md §6).

The Alkire–Foster counting method, in the notation of Alkire & Foster (2011):

- ``g_ij`` is 1 when unit *i* is deprived in indicator *j* (achievement below its cut-off);
- ``c_i = Σ_j w_j g_ij`` is the weighted deprivation score, with weights summing to 1;
- unit *i* is *poor* when ``c_i ≥ k`` (dual cut-off identification);
- ``H`` is the share of the population that is poor (headcount ratio), ``A`` the average score
  among the poor (intensity), and ``M0 = H × A`` the adjusted headcount ratio;
- the censored headcount ratio ``h_j`` is the share of the population that is poor *and*
  deprived in *j*; ``M0 = Σ_j w_j h_j``, so ``w_j h_j / M0`` is indicator *j*'s contribution;
- ``M0`` is subgroup-decomposable: it is the population-weighted mean of the groups' ``M0``.

**Households or persons.** Every measure here counts *units*. With ``population=None`` a unit
is a household and every measure is a share of households. Passing the household sizes as
``population`` weights each household by its members, and the measures become shares of
persons (every member of a household shares its deprivations and its identification).

Everything is vectorised over households (numpy matrix products and ``np.bincount``); the only
Python loops run over indicators, colours, flag rules or distinct category strings, never over
households, so a city of 300,000 households takes well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from wulian.contract import vocab
from wulian.contract.hierarchy import Hierarchy
from wulian.demand.policy import WEIGHT_SUM_TOLERANCE, Policy

#: Absolute tolerance of every comparison of a score with a cut-off or threshold. Scores are
#: sums of float weights, so 2/4 with weights 0.25 may come out a hair below 0.5; without the
#: tolerance such a unit would be wrongly left out. Distinct attainable scores of any sensible
#: policy differ by far more than this.
TOLERANCE = 1e-9

TIER_SOURCES: tuple[str, ...] = ("score", "flag", "override")
COUNTS: tuple[str, ...] = ("households", "persons")


# ---------------------------------------------------------------------- deprivations


def deprivation_matrix(achievements: Any, cutoffs: Any) -> np.ndarray:
    """The 0/1 deprivation matrix ``g`` from raw achievements and cut-offs.

    A unit is deprived in an indicator when its achievement is strictly below the cut-off
    (``g_ij = 1`` iff ``x_ij < z_j``).

    Parameters
    ----------
    achievements
        Array-like of shape ``(n, d)`` (a DataFrame is accepted), finite numbers.
    cutoffs
        Array-like of length ``d``, the deprivation cut-offs ``z_j``.

    Returns
    -------
    numpy.ndarray
        ``int8`` array of shape ``(n, d)`` holding 0 and 1.

    Raises
    ------
    ValueError
        When the shapes do not agree or a value is missing or not finite: a missing
        achievement cannot be judged deprived or not, so it is never guessed.

    Examples
    --------
    >>> deprivation_matrix([[13.1, 14], [12.5, 10]], [13, 12]).tolist()
    [[0, 0], [1, 1]]
    """
    x = _float_matrix(achievements, "achievements")
    z = np.asarray(cutoffs, dtype=float)
    if z.ndim != 1 or z.shape[0] != x.shape[1]:
        raise ValueError(
            f"cutoffs must be a vector of length {x.shape[1]} (one per column of "
            f"achievements), got shape {z.shape}"
        )
    if not np.isfinite(x).all():
        raise ValueError(
            "achievements hold missing or infinite values; fill them in first "
            "(a missing achievement cannot be judged deprived or not)"
        )
    if not np.isfinite(z).all():
        raise ValueError("cutoffs must be finite numbers")
    return (x < z).astype(np.int8)


# ---------------------------------------------------------------------- AF measures


@dataclass(frozen=True, eq=False)
class AFResult:
    """Alkire–Foster measures of one population.

    Attributes
    ----------
    indicators : tuple of str
        Indicator names (the columns of ``g`` when it was a DataFrame, else ``"0" … "d-1"``).
    weights : numpy.ndarray
        Indicator weights ``w_j``, shape ``(d,)``.
    k : float
        Poverty cut-off on the weighted score.
    scores : numpy.ndarray
        Weighted deprivation scores ``c_i``, shape ``(n,)``.
    poor : numpy.ndarray
        Identification ``c_i ≥ k`` (within ``TOLERANCE``), bool, shape ``(n,)``.
    population : numpy.ndarray
        Population weight per unit, shape ``(n,)``: ones when counting households, household
        sizes when counting persons.
    H : float
        Headcount ratio: poor population / total population.
    A : float
        Intensity: population-weighted mean score among the poor; ``nan`` when nobody is poor
        (the mean of an empty set is undefined).
    M0 : float
        Adjusted headcount ratio, ``H × A`` (0 when nobody is poor).
    uncensored_h : numpy.ndarray
        Share of the population deprived in each indicator, poor or not.
    censored_h : numpy.ndarray
        Share of the population that is poor and deprived in each indicator.
    contribution : numpy.ndarray
        Each indicator's share of ``M0``, ``w_j × censored_h_j / M0``; sums to 1. All ``nan``
        when ``M0 == 0``, since there is no poverty to attribute.
    """

    indicators: tuple[str, ...]
    weights: np.ndarray
    k: float
    scores: np.ndarray
    poor: np.ndarray
    population: np.ndarray
    H: float
    A: float
    M0: float
    uncensored_h: np.ndarray
    censored_h: np.ndarray
    contribution: np.ndarray

    @property
    def n(self) -> int:
        """Number of units (households)."""
        return int(self.scores.shape[0])

    @property
    def total_population(self) -> float:
        """Sum of the population weights (households, or persons)."""
        return float(self.population.sum())

    def indicator_table(self) -> pd.DataFrame:
        """The indicator decomposition as a table.

        Returns
        -------
        pandas.DataFrame
            Indexed by indicator, columns ``weight, uncensored_h, censored_h, contribution``.
        """
        return pd.DataFrame(
            {
                "weight": self.weights,
                "uncensored_h": self.uncensored_h,
                "censored_h": self.censored_h,
                "contribution": self.contribution,
            },
            index=pd.Index(self.indicators, name="indicator"),
        )

    def summary(self) -> dict[str, float]:
        """The headline numbers: ``n, population, k, H, A, M0``.

        Returns
        -------
        dict
            Plain floats (and an int ``n``), ready for JSON.
        """
        return {
            "n": self.n,
            "population": self.total_population,
            "k": self.k,
            "H": self.H,
            "A": self.A,
            "M0": self.M0,
        }


def af_measures(g: Any, weights: Any, k: float, population: Any = None) -> AFResult:
    """Alkire–Foster identification and aggregation.

    Counts households by default; pass household sizes as ``population`` to count persons
    (see the module docstring).

    Parameters
    ----------
    g
        The ``n × d`` 0/1 deprivation matrix (array-like or DataFrame; bools accepted).
    weights
        Indicator weights, length ``d``, non-negative, summing to 1 within 1e-9.
    k
        Poverty cut-off on the weighted score, ``0 < k ≤ 1``. ``k`` is compared with a
        tolerance of ``TOLERANCE``, so with four equal weights ``k = 0.5`` identifies exactly
        the units deprived in 2 or more of 4 indicators.
    population
        Population weight per unit, length ``n``, finite and non-negative with a positive sum;
        ``None`` gives every unit weight 1 (counting households).

    Returns
    -------
    AFResult
        Scores, identification, H, A, M0 and the indicator decomposition.

    Raises
    ------
    ValueError
        When ``g`` is not a 0/1 matrix, the weights do not fit it or do not sum to 1, ``k`` is
        out of range, or the population weights are invalid.

    Examples
    --------
    >>> r = af_measures([[0, 1, 0, 1], [1, 1, 1, 1], [0, 1, 0, 0], [0, 0, 0, 0]],
    ...                 [0.25] * 4, k=0.5)
    >>> r.H, r.A, r.M0
    (0.5, 0.75, 0.375)
    """
    return _measures(*_prepare(g, weights, k, population))


def _measures(
    G: np.ndarray, w: np.ndarray, k: float, p: np.ndarray, names: tuple[str, ...]
) -> AFResult:
    """The AF measures of validated inputs (see :func:`af_measures`)."""
    scores = G @ w
    poor = scores >= k - TOLERANCE
    total = p.sum()
    p_poor = np.where(poor, p, 0.0)
    H = float(p_poor.sum() / total)
    M0 = float(p_poor @ scores / total)
    A = M0 / H if H > 0 else float("nan")
    uncensored = (p @ G) / total
    censored = (p_poor @ G) / total
    if M0 > 0:
        contribution = w * censored / M0
    else:
        contribution = np.full(w.shape, np.nan)
    return AFResult(
        indicators=names,
        weights=w,
        k=k,
        scores=scores,
        poor=poor,
        population=p,
        H=H,
        A=A,
        M0=M0,
        uncensored_h=uncensored,
        censored_h=censored,
        contribution=contribution,
    )


def decompose(
    g: Any, weights: Any, k: float, groups: Any, population: Any = None, *, indicators: bool = False
) -> pd.DataFrame:
    """Alkire–Foster measures per population subgroup (e.g. per district or street).

    Counts households by default, persons when ``population`` holds household sizes.

    Parameters
    ----------
    g, weights, k, population
        As for :func:`af_measures`.
    groups
        Group label per unit, length ``n`` (array-like or Series); every unit needs one.
    indicators
        Also return each group's censored headcount ratio per indicator, as columns
        ``h_<indicator>``.

    Returns
    -------
    pandas.DataFrame
        One row per group, sorted by label, columns:

        - ``n``: units in the group; ``n_poor``: units identified poor;
        - ``population``: sum of the group's population weights; ``population_share``: its
          share of the total;
        - ``H``, ``A``, ``M0``: the group's own measures (``A`` is ``nan`` when nobody in the
          group is poor);
        - ``contribution``: the group's share of the overall M0,
          ``population_share × M0_group / M0`` (sums to 1; ``nan`` when the overall M0 is 0).

        So the overall M0 equals ``(population_share * M0).sum()``.

    Raises
    ------
    ValueError
        As for :func:`af_measures`, and when ``groups`` has the wrong length or a missing
        label.
    """
    G, w, k, p, names = _prepare(g, weights, k, population)
    res = _measures(G, w, k, p, names)
    labels = (
        groups
        if isinstance(groups, pd.Series | pd.Index | np.ndarray)
        else np.asarray(groups, dtype=object)
    )
    if len(labels) != res.n:
        raise ValueError(
            f"groups has {len(labels)} labels for {res.n} units; give one label per row of g"
        )
    codes, uniques = pd.factorize(labels, sort=True)
    if (codes < 0).any():
        raise ValueError(
            f"{int((codes < 0).sum())} unit(s) have no group label; every unit "
            "must belong to a group, or the groups would not add up to the whole"
        )
    m = len(uniques)
    p_poor = np.where(res.poor, p, 0.0)
    n_g = np.bincount(codes, minlength=m)
    n_poor = np.bincount(codes, weights=res.poor.astype(float), minlength=m)
    pop = np.bincount(codes, weights=p, minlength=m)
    pop_poor = np.bincount(codes, weights=p_poor, minlength=m)
    intensity = np.bincount(codes, weights=p_poor * res.scores, minlength=m)
    total = p.sum()
    H = _ratio(pop_poor, pop)
    M0 = _ratio(intensity, pop)
    share = pop / total
    frame = pd.DataFrame(
        {
            "n": n_g.astype(np.int64),
            "n_poor": np.rint(n_poor).astype(np.int64),
            "population": pop,
            "population_share": share,
            "H": H,
            "A": _ratio(intensity, pop_poor),
            "M0": M0,
            "contribution": share * M0 / res.M0 if res.M0 > 0 else np.full(m, np.nan),
        },
        index=pd.Index(uniques, name=getattr(groups, "name", None) or "group"),
    )
    if indicators:
        # One bincount per indicator: a loop over d columns, not over units.
        for j, name in enumerate(res.indicators):
            frame[f"h_{name}"] = _ratio(
                np.bincount(codes, weights=p_poor * G[:, j], minlength=m), pop
            )
    return frame


# ---------------------------------------------------------------------- colours


def colour(households: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """The four-colour code of every household under a policy.

    Order of precedence: the score gives a colour from the policy's thresholds; flag rules can
    raise it (never lower it); a non-empty ``tier`` in the households table (the assessor's
    decision) overrides both.

    Parameters
    ----------
    households
        The households table of the data contract; needs the ``vocab.DEPRIVATION_COLUMNS`` and
        ``categories``; ``tier`` is optional.
    policy
        The colour policy.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``households``, columns:

        - ``score``: weighted deprivation score ``c_i``;
        - ``poor``: ``c_i ≥ k`` (bool);
        - ``score_tier``: colour from the score alone;
        - ``tier``: the final colour (a ``vocab.TIERS`` code);
        - ``tier_source``: ``score``, ``flag`` (a flag rule made it more severe than the score)
          or ``override`` (the households table's ``tier`` was set);
        - ``flag``: name of the most severe flag rule the household matches, ``""`` if none
          (also shown when it did not change the colour);
        - ``monitoring_weeks``: weeks between monitoring visits for the final colour.

    Raises
    ------
    ValueError
        When a required column is missing, a deprivation value is not 0/1, or a category or
        tier code is unknown.
    """
    _require_columns(households, (*vocab.DEPRIVATION_COLUMNS, "categories"))
    G = _indicator_matrix(households.loc[:, list(vocab.DEPRIVATION_COLUMNS)], "households")
    n = G.shape[0]
    scores = G @ policy.weight_vector()
    poor = scores >= policy.k - TOLERANCE

    # Score colour as a rank (0 = red … 3 = green): the number of thresholds not reached.
    thresholds = np.array([policy.thresholds[t] for t in vocab.TIER_ORDER[:-1]])
    score_rank = (scores[:, None] < thresholds[None, :] - TOLERANCE).sum(axis=1)

    green = len(vocab.TIER_ORDER) - 1
    flag_rank = np.full(n, green + 1)  # one past green: "no flag"
    flag_rule = np.full(n, -1)
    if policy.flags:
        has = category_matrix(households["categories"])
        col = {c: i for i, c in enumerate(vocab.CATEGORIES)}
        for r, rule in enumerate(policy.flags):
            match = has[:, [col[c] for c in rule.all_of]].all(axis=1)
            rank = vocab.TIER_ORDER.index(rule.at_least)
            # Strictly more severe only: among rules forcing the same colour the first listed
            # is the one reported.
            better = match & (rank < flag_rank)
            flag_rank[better] = rank
            flag_rule[better] = r

    rank = np.minimum(score_rank, flag_rank)
    source = np.where(flag_rank < score_rank, "flag", "score").astype(object)

    override = _override_ranks(households)
    if override is not None:
        set_ = override >= 0
        rank = np.where(set_, override, rank)
        source[set_] = "override"

    tiers = np.array(vocab.TIER_ORDER, dtype=object)
    names = np.array([f.name for f in policy.flags] + [""], dtype=object)
    weeks = np.array([policy.monitoring_weeks[t] for t in vocab.TIER_ORDER], dtype=np.int64)
    return pd.DataFrame(
        {
            "score": scores,
            "poor": poor,
            "score_tier": tiers[score_rank],
            "tier": tiers[rank],
            "tier_source": source,
            "flag": names[flag_rule],  # index -1 picks the trailing "" for "no rule"
            "monitoring_weeks": weeks[rank],
        },
        index=households.index,
    ).astype({"score_tier": "str", "tier": "str", "tier_source": "str", "flag": "str"})


def category_matrix(categories: pd.Series) -> np.ndarray:
    """Which categories each household has, as a boolean matrix.

    Parameters
    ----------
    categories
        One cell per household: a ``;``-separated string of ``vocab.CATEGORIES`` codes
        (spaces around codes are ignored), empty or missing for none; a list of codes is also
        accepted.

    Returns
    -------
    numpy.ndarray
        Bool array of shape ``(n, len(vocab.CATEGORIES))``, columns in vocabulary order.

    Raises
    ------
    ValueError
        When a cell holds a code outside the vocabulary: a misspelt category would otherwise
        silently escape its flag rule.
    """
    s = pd.Series(categories).reset_index(drop=True)
    if pd.api.types.infer_dtype(s, skipna=True) not in ("string", "empty"):
        # Lists (or other objects) in cells: join them so the path below applies. This is the
        # one per-row Python step, and only for this unusual input.
        s = s.map(lambda v: ";".join(map(str, v)) if isinstance(v, list | tuple) else v)
    s = s.astype("str").where(s.notna(), "")
    # Parse each distinct string once: a city has a few hundred distinct category mixes, not
    # 300,000, so factorise and parse the uniques.
    codes, uniques = pd.factorize(s)
    col = {c: i for i, c in enumerate(vocab.CATEGORIES)}
    table = np.zeros((len(uniques) + 1, len(col)), dtype=bool)
    unknown: set[str] = set()
    for u, text in enumerate(uniques):
        for code in str(text).split(";"):
            code = code.strip()
            if not code:
                continue
            if code in col:
                table[u, col[code]] = True
            else:
                unknown.add(code)
    if unknown:
        raise ValueError(
            f"unknown categories {sorted(unknown)}; allowed: "
            f"{', '.join(vocab.CATEGORIES)}. Correct the households table (run "
            "`wulian validate` to see the rows)"
        )
    return table[codes]  # codes are never -1 here: missing cells were filled with ""


# ---------------------------------------------------------------------- whole scenario


@dataclass(frozen=True, eq=False)
class ScoredHouseholds:
    """Per-household colours plus the Alkire–Foster measures and their decompositions.

    Attributes
    ----------
    households : pandas.DataFrame
        Indexed like the input households: ``household_id`` and ``station_id`` (when present),
        ``street_id``, ``district_id``, then the columns of :func:`colour`.
    overall : AFResult
        Measures of the whole population.
    by_district, by_street : pandas.DataFrame
        :func:`decompose` per district and per street, with the centre's ``name`` first (and
        the street's ``district_id``), censored headcounts ``h_<dimension>`` included.
    count : str
        ``"households"`` or ``"persons"``: what the measures count.
    policy : Policy
        The policy used (its digest goes into the run's provenance).
    """

    households: pd.DataFrame
    overall: AFResult
    by_district: pd.DataFrame
    by_street: pd.DataFrame
    count: str
    policy: Policy

    def tier_counts(self) -> pd.Series:
        """Households per final colour, in priority order (colours with none show 0).

        Returns
        -------
        pandas.Series
            Indexed by ``vocab.TIER_ORDER``.
        """
        counts = self.households["tier"].value_counts()
        return counts.reindex(list(vocab.TIER_ORDER), fill_value=0).rename("households")


def score_households(
    households: pd.DataFrame,
    centres: pd.DataFrame,
    policy: Policy,
    *,
    count: Literal["households", "persons"] = "households",
) -> ScoredHouseholds:
    """Colour every household and decompose the Alkire–Foster measures by district and street.

    Parameters
    ----------
    households
        The households table (``station_id``, the deprivation columns, ``categories``,
        optional ``tier``; ``size`` when counting persons).
    centres
        The centres table (``centre_id``, ``level``, ``parent_id``, ``name``); each household's
        station is mapped to its street and district through ``parent_id``.
    policy
        The colour policy.
    count
        ``"households"`` (default) makes every measure a share of households; ``"persons"``
        weights each household by its ``size``, making them shares of persons. Colours are
        per household either way.

    Returns
    -------
    ScoredHouseholds
        Per-household results and the decompositions.

    Raises
    ------
    ValueError
        When a household's station is not a station in ``centres``, the hierarchy above it is
        broken, ``count`` is unknown, or :func:`colour` rejects the households.
    """
    if count not in COUNTS:
        raise ValueError(f"count must be one of {COUNTS}, not {count!r}")
    _require_columns(households, ("station_id", *(("size",) if count == "persons" else ())))
    _require_columns(centres, ("centre_id", "level", "parent_id"), table="centres")
    coloured = colour(households, policy)
    place = _street_and_district(households["station_id"], centres)

    out = pd.concat(
        [
            households.loc[:, [c for c in ("household_id", "station_id") if c in households]],
            place.set_axis(households.index),
            coloured,
        ],
        axis=1,
    )
    # Named by dimension code so the decompositions' columns read h_income, h_health, ...
    g = households.loc[:, list(vocab.DEPRIVATION_COLUMNS)].set_axis(list(vocab.DIMENSIONS), axis=1)
    population = households["size"] if count == "persons" else None
    w = policy.weight_vector()
    overall = af_measures(g, w, policy.k, population)

    names = centres.set_index("centre_id")["name"] if "name" in centres else None
    by_district = decompose(g, w, policy.k, place["district_id"], population, indicators=True)
    by_street = decompose(g, w, policy.k, place["street_id"], population, indicators=True)
    street_district = place.drop_duplicates("street_id").set_index("street_id")["district_id"]
    by_street.insert(0, "district_id", street_district.reindex(by_street.index).to_numpy())
    if names is not None:
        by_district.insert(0, "name", names.reindex(by_district.index).to_numpy())
        by_street.insert(0, "name", names.reindex(by_street.index).to_numpy())
    return ScoredHouseholds(
        households=out,
        overall=overall,
        by_district=by_district,
        by_street=by_street,
        count=count,
        policy=policy,
    )


# ---------------------------------------------------------------------- helpers


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with ``nan`` where ``den`` is 0 (an empty group has no rate)."""
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _require_columns(
    frame: pd.DataFrame, columns: Sequence[str], table: str = "households"
) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{table} lacks column(s) {missing}; add them (see docs/formats.md)")


def _float_matrix(x: Any, what: str) -> np.ndarray:
    try:
        if isinstance(x, pd.DataFrame):
            # na_value turns pandas' missing markers (pd.NA in nullable columns) into nan,
            # which the callers then reject with a clear message.
            m = x.to_numpy(dtype=float, na_value=np.nan)
        else:
            m = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be numeric: {exc}") from None
    if m.ndim != 2:
        raise ValueError(f"{what} must be a 2-D matrix (units × indicators), got {m.ndim}-D")
    return m


def _indicator_matrix(g: Any, what: str = "g") -> np.ndarray:
    G = _float_matrix(g, what)
    bad = ~((G == 0) | (G == 1))
    if bad.any():
        rows, cols = np.nonzero(bad)
        where = ", ".join(f"row {r} column {c}" for r, c in zip(rows[:5], cols[:5], strict=True))
        raise ValueError(
            f"{what}: deprivation values must be 0 or 1 (nothing missing); "
            f"{int(bad.sum())} are not, e.g. at {where}"
        )
    return G


def _prepare(
    g: Any, weights: Any, k: float, population: Any
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, tuple[str, ...]]:
    """Validate the inputs of the AF functions and return them as float arrays."""
    G = _indicator_matrix(g)
    n, d = G.shape
    if n == 0:
        raise ValueError("g has no rows; the measures of an empty population are undefined")
    names = (
        tuple(str(c) for c in g.columns)
        if isinstance(g, pd.DataFrame)
        else tuple(str(j) for j in range(d))
    )
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.shape[0] != d:
        raise ValueError(
            f"weights must be a vector of length {d} (one per indicator), got shape {w.shape}"
        )
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")
    if abs(w.sum() - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ValueError(
            f"weights must sum to 1 (within {WEIGHT_SUM_TOLERANCE:g}), they sum "
            f"to {w.sum():.12g}; rescale them"
        )
    if (
        isinstance(k, bool)
        or not isinstance(k, int | float | np.floating | np.integer)
        or not 0 < k <= 1
    ):
        raise ValueError(f"k must satisfy 0 < k ≤ 1, got {k!r}")
    if population is None:
        p = np.ones(n)
    else:
        p = np.asarray(
            population.to_numpy(dtype=float, na_value=np.nan)
            if isinstance(population, pd.Series)
            else population,
            dtype=float,
        )
        if p.shape != (n,):
            raise ValueError(f"population must have one weight per unit ({n}), got shape {p.shape}")
        if not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
            raise ValueError(
                "population weights must be finite, non-negative and not all 0 "
                "(use household sizes to count persons)"
            )
    return G, w, float(k), p, names


def _override_ranks(households: pd.DataFrame) -> np.ndarray | None:
    """Rank of the assessor's ``tier`` per household, -1 where it is empty; None if no column."""
    if "tier" not in households.columns:
        return None
    s = households["tier"]
    text = s.astype("str").where(s.notna(), "").str.strip()
    ranks = pd.Index(vocab.TIER_ORDER).get_indexer(text)
    unknown = (ranks < 0) & (text.to_numpy() != "")
    if unknown.any():
        bad = sorted(set(text.to_numpy()[unknown]))
        raise ValueError(
            f"households: unknown tier code(s) {bad[:5]}; allowed: "
            f"{', '.join(vocab.TIER_ORDER)} or empty (no override)"
        )
    return ranks


def _street_and_district(station_ids: pd.Series, centres: pd.DataFrame) -> pd.DataFrame:
    """``street_id`` and ``district_id`` per household, positionally aligned with the input."""
    if centres["centre_id"].duplicated().any():
        dup = centres.loc[centres["centre_id"].duplicated(), "centre_id"].unique()[:5].tolist()
        raise ValueError(f"centres: duplicate centre_id {dup}; ids must be unique")
    hierarchy = Hierarchy.from_centres(centres)
    station_level = hierarchy.path["station"].reindex(np.asarray(station_ids)).to_numpy()
    known = pd.notna(station_level) & (station_level != "")
    if not known.all():
        bad = pd.unique(np.asarray(station_ids)[~known])[:5].tolist()
        raise ValueError(
            f"households: {int((~known).sum())} household(s) belong to no "
            f"station of the centres table, e.g. station_id {bad}; use the "
            "centre_id of a level=station centre"
        )
    place = pd.DataFrame({"street_id": hierarchy.ancestor(station_ids, "street"),
                          "district_id": hierarchy.ancestor(station_ids, "district")})
    place = place.replace("", np.nan)
    broken = place["district_id"].isna()
    if broken.any():
        bad = pd.unique(np.asarray(station_ids)[broken.to_numpy()])[:5].tolist()
        raise ValueError(
            f"centres: station(s) {bad} do not reach a district through a street "
            "centre; each station's parent must be a street whose parent is a "
            "district"
        )
    return place
