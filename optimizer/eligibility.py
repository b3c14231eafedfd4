"""Who may serve whom: the admissible arcs of the allocation's models, each rule once.

An offer may serve a need when it serves the need's service and covers the household in the
centre hierarchy (:func:`covering_pairs`, :func:`offer_coverage`), accepts the household's
categories and colour (:func:`accepts`) and, when it charges a fund (:func:`charges_fund`),
that fund reaches the household and is earmarked for the service (:func:`fund_admits`); the
per-household caps bound what one household takes (:func:`offer_household_units`,
:func:`fund_household_units`, :func:`arc_upper`). A volunteer pool serves its street's
households in its service (:func:`pool_of`), its members being the volunteers capable of it
(:func:`capable`). :func:`offer_arcs` applies the offer rules together.

The weekly model (``optimizer.allocation``), the budget lab (``optimizer.budget``, and the
quarterly plan through it) and the decomposition (``optimizer.decompose``) take their arcs from
here. docs/model.md §1 ("Arcs") states the rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wulian.contract import vocab
from wulian.contract.hierarchy import Hierarchy
from wulian.optimizer.masks import bit_masks

# ----------------------------------------------------------------------------- categories, colours


def category_bits(cells: pd.Series) -> np.ndarray:
    """Categories (a household's, or an offer's eligible ones) as bit masks."""
    return bit_masks(cells, vocab.CATEGORIES)


def colour_bits(cells: pd.Series) -> np.ndarray:
    """An offer's eligible colours (a ';'-list) as bit masks."""
    return bit_masks(cells, vocab.TIERS)


def colour_bit(tiers: pd.Series) -> np.ndarray:
    """A household's colour as a one-bit mask, in the bits of :func:`colour_bits`."""
    return tiers.map({t: 1 << i for i, t in enumerate(vocab.TIERS)}).to_numpy()


def accepts(offer_categories, offer_colours, need_categories, need_colour) -> np.ndarray:
    """Eligibility by category and colour: the offer lists no category or one of the
    household's, and no colour or the household's (bit masks; the arrays broadcast)."""
    return ((offer_categories == 0) | ((offer_categories & need_categories) != 0)) & \
        ((offer_colours == 0) | ((offer_colours & need_colour) != 0))


# ----------------------------------------------------------------------------- coverage


def offer_coverage(offers: pd.DataFrame, providers: pd.DataFrame) -> np.ndarray:
    """Each offer's coverage centre: its own ``coverage_centre_id``, else its provider's
    centre."""
    provider_centre = providers.set_index("provider_id")["centre_id"]
    return offers["coverage_centre_id"].where(offers["coverage_centre_id"] != "",
                                              offers["provider_id"].map(provider_centre)
                                              ).to_numpy()


def covering_pairs(needs: pd.DataFrame, centre_col: str, sources: pd.DataFrame,
                   hierarchy: Hierarchy, key: str = "service_id"
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coverage: (need index, source index, level) for every source of the need's service
    whose coverage centre (``centre_col``) is the need's station or one of its ancestors;
    ``level`` is the position of that centre's level in ``vocab.LEVELS`` (int8). Ordered by
    level, then need, then source. Keys are integers (service code × centre number): string
    merges were a tenth of a street's solve."""
    keys, _ = pd.factorize(np.concatenate([needs[key].to_numpy(object),
                                           sources[key].to_numpy(object)]))
    n_centres = len(hierarchy.first) + 1
    centre = hierarchy.first.reindex(sources[centre_col].to_numpy()).fillna(-1).to_numpy()
    src = np.flatnonzero(centre >= 0)
    src_keys = keys[len(needs):][src] * n_centres + centre[src].astype(np.int64)
    # One block of needs per level (each centre has one level, so a key meets only its own).
    ancestors = hierarchy.ancestor_numbers.reindex(needs["station_id"].to_numpy()).fillna(-1)
    need_idx, need_keys, need_level = [], [], []
    for k, level in enumerate(vocab.LEVELS):
        anc = ancestors[level].to_numpy(np.int64)
        at = np.flatnonzero(anc >= 0)
        need_idx.append(at)
        need_keys.append(keys[:len(needs)][at] * n_centres + anc[at])
        need_level.append(np.full(len(at), k, np.int8))
    left, right = join_equal(np.concatenate(need_keys), src_keys)
    return np.concatenate(need_idx)[left], src[right], np.concatenate(need_level)[left]


def join_equal(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with ``left[i] == right[j]``, ordered by i then j (an inner join on integer
    keys, as pandas' merge orders it)."""
    order = np.argsort(right, kind="stable")
    ordered = right[order]
    start = np.searchsorted(ordered, left, "left")
    count = np.searchsorted(ordered, left, "right") - start
    i = np.repeat(np.arange(len(left)), count)
    within = np.arange(len(i)) - np.repeat(np.cumsum(count) - count, count)
    return i, order[np.repeat(start, count) + within]


# ----------------------------------------------------------------------------- funds


def charges_fund(offers: pd.DataFrame) -> np.ndarray:
    """Whether each offer charges its fund: a unit cost above 0 and a fund named."""
    return (offers["unit_cost"].to_numpy(float) > 0) & (offers["fund_id"] != "").to_numpy()


def fund_admits(funds: pd.DataFrame, fund: np.ndarray, station: np.ndarray,
                service: np.ndarray, hierarchy: Hierarchy) -> np.ndarray:
    """The paying fund's reach and earmark: per arc charging ``fund`` (row of ``funds``), does
    the fund's centre cover the household's ``station``, and is the fund earmarked for the
    arc's ``service`` or for none (an empty ``earmarked_services``)?"""
    reach = hierarchy.covers(funds["centre_id"].to_numpy()[fund], station)
    # Earmarks as a fund × service table (a loop over funds), then one lookup per arc.
    code, names = pd.factorize(np.asarray(service, dtype=object))
    column = {name: k for k, name in enumerate(names)}
    allowed = np.zeros((len(funds), len(names)), bool)
    earmarks = funds["earmarked_services"].fillna("").astype(str).to_numpy(object)
    for f, cell in enumerate(earmarks):
        if cell == "":
            allowed[f] = True
            continue
        for s in cell.split(";"):
            if s and s in column:
                allowed[f, column[s]] = True
    return reach & allowed[fund, code]


# ----------------------------------------------------------------------------- household caps


def offer_household_units(offers: pd.DataFrame, base_units: bool = True) -> np.ndarray:
    """Units of each offer one household may take (its ``max_per_household``; inf when it has
    none), in base units (cents for yuan: ``offer_table``'s ``base_cap_household``) or, with
    ``base_units=False``, in the service's own unit."""
    cap = offers["base_cap_household"].to_numpy(float)
    if not base_units:
        cap = cap / offers["scale"].to_numpy(float)
    return np.where(np.isnan(cap), np.inf, cap)


def fund_household_units(funds: pd.DataFrame, fund: np.ndarray,
                         unit_cost: np.ndarray) -> np.ndarray:
    """Units one household's fund cap (``max_per_household`` yuan) pays for on each arc
    charging ``fund`` (row of ``funds``; -1: none) ``unit_cost`` yuan per unit; inf where the
    arc charges no fund or the fund has no cap."""
    out = np.full(len(fund), np.inf)
    charged = fund >= 0
    cap = funds["max_per_household"].to_numpy(float)[fund[charged]] if charged.any() \
        else np.zeros(0)
    out[charged] = np.where(np.isnan(cap), np.inf, cap / unit_cost[charged])
    return out


def arc_upper(quantity: np.ndarray, *caps: np.ndarray) -> np.ndarray:
    """What one need may take on an arc: its quantity, and no more than each cap (units per
    household, inf for none)."""
    upper = np.minimum(quantity, caps[0]) if caps else np.asarray(quantity, float)
    for cap in caps[1:]:
        upper = np.minimum(upper, cap)
    return upper


# ----------------------------------------------------------------------------- volunteers


def capable(volunteers: pd.DataFrame, services: pd.DataFrame) -> np.ndarray:
    """Volunteer × in-person service: has every skill, and a background check if needed."""
    vbits = bit_masks(volunteers["skills"], vocab.SKILLS)
    sbits = bit_masks(services["skills"], vocab.SKILLS)
    able = (vbits[:, None] & sbits[None, :]) == sbits[None, :]
    return able & (~services["safeguarding"].to_numpy(bool)[None, :]
                   | volunteers["background_checked"].to_numpy(bool)[:, None])


def pool_of(pools: pd.DataFrame, street: np.ndarray, service: np.ndarray) -> np.ndarray:
    """The volunteer pool that serves each (street, service): the pool of the household's own
    street for the need's service (pools exist for in-person services with capable
    volunteers only); -1 when there is none."""
    if not len(pools):
        return np.full(len(street), -1, np.int64)
    pool_key = pd.Series(np.arange(len(pools)),
                         index=pd.MultiIndex.from_arrays([pools["street"], pools["service_id"]]))
    found = pool_key.reindex(pd.MultiIndex.from_arrays([street, service])).to_numpy()
    return np.where(np.isnan(found), -1, found).astype(np.int64)


# ----------------------------------------------------------------------------- the offer arcs


@dataclass(frozen=True)
class OfferArcs:
    """Admissible (need, offer) arcs: ``need`` and ``offer`` (rows of the tables given to
    :func:`offer_arcs`), ``fund`` (row of ``funds`` the offer charges, -1 when none) and
    ``level`` (of the offer's coverage centre, as in :func:`covering_pairs`).

    Need by need; each need's offers by level, then offer. :meth:`by_level` gives the order of
    :func:`covering_pairs` (level, then need, then offer)."""

    need: np.ndarray
    offer: np.ndarray
    fund: np.ndarray
    level: np.ndarray

    def __len__(self) -> int:
        return len(self.need)

    def by_level(self) -> OfferArcs:
        """The same arcs ordered by level, then need, then offer."""
        order = np.argsort(self.level, kind="stable")
        return OfferArcs(self.need[order], self.offer[order], self.fund[order],
                         self.level[order])


def offer_arcs(needs: pd.DataFrame, offers: pd.DataFrame, funds: pd.DataFrame,
               hierarchy: Hierarchy) -> OfferArcs:
    """Every admissible (need, offer) arc: coverage by the tree, the paying fund's reach and
    earmark, categories and colour.

    ``needs`` as ``allocation.prepare_needs`` gives them (``station_id``, ``service_id``,
    ``cat_bits``, ``tier_bit``), ``offers`` as ``allocation.offer_table`` (``service_id``,
    ``coverage``, ``charged``, ``fund_id``, ``cat_bits``, ``tier_bits``).

    Coverage, reach and earmark depend on the need's station and service alone, so they are
    worked out once per station × service (on the city 40 times fewer rows than needs, and
    the string work there was most of the build) and each need then gets its pair's offers;
    categories and colour are checked need by need."""
    station, stations = pd.factorize(needs["station_id"].to_numpy())
    service, services = pd.factorize(needs["service_id"].to_numpy())
    station, service = station.astype(np.int64), service.astype(np.int64)
    kind, first = np.unique(station * len(services) + service, return_inverse=True,
                            return_index=True)[1:][::-1]
    types = pd.DataFrame({"station_id": np.asarray(stations)[station[first]],
                          "service_id": np.asarray(services)[service[first]]})
    t_i, o_i, l_i = covering_pairs(types, "coverage", offers, hierarchy)
    fund_index = pd.Series(np.arange(len(funds)), index=funds["fund_id"].to_numpy())
    offer_fund = offers["fund_id"].map(fund_index).fillna(-1).to_numpy(np.int64)
    f_i = np.where(offers["charged"].to_numpy()[o_i], offer_fund[o_i], -1)
    charged = np.flatnonzero(f_i >= 0)
    if len(charged):
        keep = np.ones(len(t_i), bool)
        keep[charged] = fund_admits(funds, f_i[charged],
                                    types["station_id"].to_numpy()[t_i[charged]],
                                    types["service_id"].to_numpy()[t_i[charged]], hierarchy)
        t_i, o_i, f_i, l_i = t_i[keep], o_i[keep], f_i[keep], l_i[keep]
    # Each need gets the offers of its station × service.
    order = np.argsort(t_i, kind="stable")
    o_sorted, f_sorted, l_sorted = o_i[order], f_i[order], l_i[order]
    count = np.bincount(t_i, minlength=len(first))
    start = np.cumsum(count) - count
    per_need = count[kind]
    n_i = np.repeat(np.arange(len(needs)), per_need)
    pos = np.repeat(start[kind] - (np.cumsum(per_need) - per_need), per_need) + \
        np.arange(len(n_i))
    o_i, f_i, l_i = o_sorted[pos], f_sorted[pos], l_sorted[pos]
    keep = accepts(offers["cat_bits"].to_numpy()[o_i], offers["tier_bits"].to_numpy()[o_i],
                   needs["cat_bits"].to_numpy()[n_i], needs["tier_bit"].to_numpy()[n_i])
    return OfferArcs(n_i[keep], o_i[keep], f_i[keep], l_i[keep])
