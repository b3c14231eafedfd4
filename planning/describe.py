"""What a scenario holds, as tables for people: by colour and district, by linkage, by fund."""

from __future__ import annotations

import pandas as pd

from wulian.contract import vocab
from wulian.planning.scenario import Scenario


def _district_names(scenario: Scenario, station_ids: pd.Series) -> pd.Series:
    centres = scenario.centres.set_index("centre_id")["name"]
    district = scenario.hierarchy.ancestor(station_ids.to_numpy(), "district")
    return pd.Series(district, index=station_ids.index).map(centres)


def _by_colour(frame: pd.DataFrame) -> pd.DataFrame:
    table = pd.crosstab(frame["district"], frame["tier"]).reindex(
        columns=list(vocab.TIER_ORDER), fill_value=0)
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    return table.rename_axis(index="district", columns=None)


def households_by_colour(scenario: Scenario) -> pd.DataFrame:
    """Households per district (rows) and colour (columns), with totals."""
    hh = scenario.households
    return _by_colour(pd.DataFrame({"district": _district_names(scenario, hh["station_id"]),
                                    "tier": hh["tier"]}))


def needs_by_colour(scenario: Scenario) -> pd.DataFrame:
    """Open needs per district (rows) and colour of their household (columns), with totals."""
    hh = scenario.households.set_index("household_id")
    needs = scenario.needs
    station = needs["household_id"].map(hh["station_id"])
    return _by_colour(pd.DataFrame({"district": _district_names(scenario, station),
                                    "tier": needs["household_id"].map(hh["tier"])}))


def supply_by_linkage(scenario: Scenario) -> pd.DataFrame:
    """Per linkage: providers, offers, services offered and volunteers with their hours."""
    providers = scenario.providers
    offers = scenario.offers.merge(providers[["provider_id", "linkage"]], on="provider_id")
    volunteers = scenario.volunteers.merge(providers[["provider_id", "linkage"]],
                                           on="provider_id")
    table = pd.DataFrame(index=pd.Index(list(vocab.LINKAGES), name="linkage"))
    table["name_zh"] = [zh for zh, _ in vocab.LINKAGES.values()]
    table["providers"] = providers.groupby("linkage").size()
    table["offers"] = offers.groupby("linkage").size()
    table["services"] = offers.groupby("linkage")["service_id"].nunique()
    table["volunteers"] = volunteers.groupby("linkage").size()
    table["volunteer_hours"] = volunteers.groupby("linkage")["max_hours"].sum()
    counts = ["providers", "offers", "services", "volunteers"]
    table[counts] = table[counts].fillna(0).astype(int)
    table["volunteer_hours"] = table["volunteer_hours"].fillna(0.0)
    return table


def funds_overview(scenario: Scenario) -> pd.DataFrame:
    """Each fund with its source, centre, budget and earmarks, largest budget first."""
    names = scenario.centres.set_index("centre_id")["name"]
    funds = scenario.funds
    return pd.DataFrame({
        "fund_id": funds["fund_id"],
        "name": funds["name"],
        "source": funds["source"].map(lambda s: vocab.FUND_SOURCES[s][0]),
        "centre": funds["centre_id"].map(names),
        "budget": funds["budget"],
        "earmarked_services": funds["earmarked_services"].replace("", "—"),
    }).sort_values(["budget", "fund_id"], ascending=[False, True]).reset_index(drop=True)
