"""Who may serve whom (optimizer/eligibility.py): the rules against a plain statement of them,
and the weekly model and the budget lab building the very same arcs from them."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scenario_factory import random_scenario

from wulian.optimizer.allocation import (
    build_arcs,
    offer_table,
    prepare_needs,
    volunteer_pools,
)
from wulian.optimizer.budget import build_budget_model
from wulian.optimizer.eligibility import covering_pairs, join_equal, offer_arcs
from wulian.planning.allocate import allocation_input
from wulian.planning.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("demo", "clean", *(f"seed{k}" for k in range(10)))


@functools.cache
def scenario(name: str) -> Scenario:
    if name == "demo":
        return load_scenario(ROOT / "data" / "demo")
    if name == "clean":
        return load_scenario(Path(__file__).parent / "data" / "clean")
    return Scenario.from_tables(random_scenario(int(name[4:])))


def test_covering_pairs_are_every_ancestor_offer_of_the_service():
    """The integer join that finds (need, offer) coverage pairs gives exactly the pairs a
    direct check finds on the demo week (service equal, the offer's coverage centre the
    need's station or one of its ancestors); the join under it orders pairs as pandas' merge
    does."""
    data = allocation_input(scenario("demo"))
    needs, offers = prepare_needs(data), offer_table(data)
    n_i, o_i, _ = covering_pairs(needs, "coverage", offers, data.hierarchy)
    path = data.hierarchy.path.reindex(needs["station_id"].to_numpy())
    expected = set()
    for o, (service, centre) in enumerate(zip(offers["service_id"], offers["coverage"],
                                              strict=True)):
        same = needs["service_id"].to_numpy() == service
        below = (path.to_numpy() == centre).any(axis=1)
        expected |= {(int(n), o) for n in np.flatnonzero(same & below)}
    assert set(zip(n_i.tolist(), o_i.tolist(), strict=True)) == expected
    assert len(n_i) == len(expected) > 0

    left, right = np.array([3, 1, 3, 2]), np.array([3, 2, 9, 3])
    i, j = join_equal(left, right)
    merged = pd.DataFrame({"k": left, "i": range(4)}).merge(
        pd.DataFrame({"k": right, "j": range(4)}), on="k")
    assert (i.tolist(), j.tolist()) == (merged["i"].tolist(), merged["j"].tolist())


@pytest.mark.parametrize("name", ["demo", "seed1", "seed4"])
def test_offer_arcs_are_the_rules_stated_plainly(name):
    """Every (need, offer) pair, checked one offer at a time from the raw tables: the service
    matches, the coverage centre is the station or an ancestor of it, the categories and the
    colour are accepted (or not listed), and a charged fund reaches the station and is
    earmarked for the service (or for none)."""
    data = allocation_input(scenario(name))
    needs, offers = prepare_needs(data), offer_table(data)
    funds = data.funds.reset_index(drop=True)
    arcs = offer_arcs(needs, offers, funds, data.hierarchy)
    path = data.hierarchy.path.reindex(needs["station_id"].to_numpy()).to_numpy()
    categories = needs["categories"].fillna("").str.split(";").map(set)
    fund_of = funds.set_index("fund_id")
    expected = set()
    for o, offer in offers.iterrows():  # a loop over offers, each over all needs at once
        ok = (needs["service_id"] == offer["service_id"]).to_numpy(copy=True)
        ok &= (path == offer["coverage"]).any(axis=1)
        listed = {c for c in offer["eligible_categories"].split(";") if c}
        if listed:
            ok &= categories.map(lambda cats, listed=listed: bool(cats & listed)).to_numpy()
        colours = {c for c in offer["eligible_tiers"].split(";") if c}
        if colours:
            ok &= needs["tier"].isin(colours).to_numpy()
        if offer["unit_cost"] > 0 and offer["fund_id"]:
            fund = fund_of.loc[offer["fund_id"]]
            ok &= (path == fund["centre_id"]).any(axis=1)
            earmarks = {s for s in fund["earmarked_services"].split(";") if s}
            if earmarks:
                ok &= needs["service_id"].isin(earmarks).to_numpy()
        expected |= {(int(n), o) for n in np.flatnonzero(ok)}
    got = list(zip(arcs.need.tolist(), arcs.offer.tolist(), strict=True))
    assert set(got) == expected and len(got) == len(expected) > 0
    charged = offers["charged"].to_numpy()[arcs.offer]
    fund_ids = funds["fund_id"].to_numpy()
    assert (fund_ids[arcs.fund[charged]] == offers["fund_id"].to_numpy()[arcs.offer[charged]]
            ).all()
    assert (arcs.fund[~charged] == -1).all()
    # Need by need; by_level orders them as covering_pairs does (level, need, offer).
    assert (np.diff(arcs.need) >= 0).all()
    ordered = arcs.by_level()
    key = np.lexsort((ordered.offer, ordered.need, ordered.level))
    assert (key == np.arange(len(key))).all()


def _group_arcs(lab) -> tuple[set, set, dict]:
    """The budget lab's arcs need by need: each need has its group's arcs (a group's needs
    share one set of admissible offers). (need, offer) and (need, pool) pairs, and the fund
    each (need, offer) pair charges."""
    agg = lab.agg
    group_of_need = agg.seg_group[agg.need_segment]
    need, arc = join_equal(group_of_need, agg.arc_group)
    offer, pool, fund = agg.arc_offer[arc], agg.arc_pool[arc], agg.arc_fund[arc]
    on_offer = offer >= 0
    offers = set(zip(need[on_offer].tolist(), offer[on_offer].tolist(), strict=True))
    pools = set(zip(need[~on_offer].tolist(), pool[~on_offer].tolist(), strict=True))
    funds = dict(zip(zip(need[on_offer].tolist(), offer[on_offer].tolist(), strict=True),
                     fund[on_offer].tolist(), strict=True))
    return offers, pools, funds


@pytest.mark.parametrize("name", SCENARIOS)
def test_weekly_model_and_budget_lab_build_the_same_arcs(name):
    """From one scenario, the weekly model's columns and the budget lab's group arcs (each
    need taking its group's) are the same admissible (need, offer) and (need, pool) pairs,
    charging the same funds."""
    data = allocation_input(scenario(name))
    needs = prepare_needs(data)
    model, _ = build_arcs(data, needs, offer_table(data), volunteer_pools(data))
    on_offer = model.offer >= 0
    weekly_offers = set(zip(model.need[on_offer].tolist(), model.offer[on_offer].tolist(),
                            strict=True))
    weekly_pools = set(zip(model.need[~on_offer].tolist(), model.pool[~on_offer].tolist(),
                           strict=True))
    weekly_funds = dict(zip(zip(model.need[on_offer].tolist(), model.offer[on_offer].tolist(),
                                strict=True), model.fund[on_offer].tolist(), strict=True))
    assert len(weekly_offers) == on_offer.sum() > 0  # no arc twice

    lab_offers, lab_pools, lab_funds = _group_arcs(build_budget_model(data))
    assert lab_offers == weekly_offers
    assert lab_pools == weekly_pools
    assert lab_funds == weekly_funds
