"""What a coordinator's session needs from a run, as plain tables (used by the Streamlit app).

Everything here is pandas in, pandas out and works the same on a fresh
:class:`~planning.allocate.Run` and on a :class:`~planning.store.StoredRun` read back from the
run store (both have ``tables`` and ``info``), so an old run opens exactly like a new one:

- :func:`scenario_from_files`: uploaded files (a folder's CSV/Parquet files or one XLSX) →
  a validated Scenario, or a :class:`~contract.problems.ValidationError` with every problem;
- :func:`with_pins`, :func:`pins_kept`: a coordinator's pins into the scenario, and whether the
  run kept them;
- :func:`served_needs`, :func:`fill_by_tier`, :func:`station_fill`, :func:`household_detail`:
  what each need got, per colour, per station (for the map) and per household;
- :func:`centre_children`, :func:`registry`, :func:`deprivation_by_street`: the centre picker,
  the five-linkage registry and the Alkire–Foster breakdown per street;
- :func:`export_workbook`: the Excel workbook for providers and volunteers, safe to open.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from wulian.contract import vocab
from wulian.contract.problems import Problem, ValidationError
from wulian.demand.scoring import score_households
from wulian.optimizer.pins import PinProblem, words
from wulian.planning.io import as_text
from wulian.planning.scenario import Scenario, load_scenario
from wulian.planning.workbook import sheet_name

SCENARIO_SUFFIXES = (".csv", ".parquet", ".xlsx")
# Excel refuses these in sheet names and cuts names at 31 characters.
FULL = 1 - 1e-9  # a served fraction at least this counts as fully served


# ----------------------------------------------------------------------------- scenarios


def scenario_from_files(files: Mapping[str, bytes], policy=None) -> Scenario:
    """Validate uploaded files into a Scenario: CSV or Parquet files named after their tables
    (``needs.csv`` …), or one XLSX workbook with a sheet per table.

    Parameters
    ----------
    files
        File name → content, as a browser uploads them.
    policy
        The colour policy (default: the packaged one).

    Returns
    -------
    Scenario
        Its ``path`` reads ``upload:<file names>``.

    Raises
    ------
    ValidationError
        With every problem of the files (nothing is loaded when there is any), including files
        of a kind wulian does not read and a workbook mixed with other files.
    """
    names = [Path(name).name for name in files]
    problems = [Problem("upload", "unreadable_file", value=name,
                        detail={"reason": "use .csv, .parquet or .xlsx files",
                                "reason_zh": "请使用 .csv、.parquet 或 .xlsx 文件",
                                "reason_en": "use .csv, .parquet or .xlsx files"})
                for name in names if Path(name).suffix.lower() not in SCENARIO_SUFFIXES]
    workbooks = [n for n in names if n.lower().endswith(".xlsx")]
    if workbooks and len(names) > 1:
        problems.append(Problem("upload", "unreadable_file", value=", ".join(sorted(names)),
                                detail={"reason": "upload one .xlsx workbook on its own, or "
                                                  "the CSV/Parquet files of one folder",
                                        "reason_zh": "工作簿请单独上传;或上传同一文件夹中的 "
                                                     "CSV/Parquet 文件",
                                        "reason_en": "upload one .xlsx workbook on its own, "
                                                     "or the CSV/Parquet files of one folder"}))
    if not names:
        problems.append(Problem("upload", "unreadable_file", value="",
                                detail={"reason": "no file was uploaded",
                                        "reason_zh": "没有上传文件",
                                        "reason_en": "no file was uploaded"}))
    if problems:
        raise ValidationError(problems)
    with tempfile.TemporaryDirectory(prefix="wulian-upload-") as folder:
        for name, content in files.items():
            (Path(folder) / Path(name).name).write_bytes(content)
        target = Path(folder) / workbooks[0] if workbooks else Path(folder)
        scenario = load_scenario(target, policy)
    return dataclasses.replace(scenario, path="upload:" + ";".join(sorted(names)))


def with_pins(scenario: Scenario, pins: pd.DataFrame, *, replace: bool = False) -> Scenario:
    """The scenario with a coordinator's ``pins`` (``need_id, offer_id, volunteer_id, units,
    slot``) added to its own pins table (or replacing it), validated with the rest.

    Raises
    ------
    ValidationError
        When a pin names an unknown need, offer or volunteer, or both an offer and a volunteer.
    """
    columns = ["need_id", "offer_id", "volunteer_id", "units", "slot"]
    new = as_text(pins).reindex(columns=columns, fill_value="")
    own = as_text(scenario.tables["pins"]).reindex(columns=columns, fill_value="")
    tables = dict(scenario.tables)
    tables["pins"] = new if replace else pd.concat([own, new], ignore_index=True)
    return Scenario.from_tables(tables, scenario.policy, sources=scenario.sources,
                                path=scenario.path)


def pins_kept(pins: pd.DataFrame, allocations: pd.DataFrame,
              volunteers: pd.DataFrame | None = None, hierarchy=None) -> pd.DataFrame:
    """Each pin with the units the run gave its need from the pinned source, and ``kept``.

    An offer pin is kept when the need got at least the pinned units from that offer; a
    volunteer pin when it got them from the volunteer's street pool (the allocation serves
    volunteer work by street; matching names the person).
    """
    out = pins.reindex(columns=["need_id", "offer_id", "volunteer_id", "units"])
    for name in ("offer_id", "volunteer_id"):
        out[name] = out[name].astype(object).where(out[name].notna(), "")
    source = out["offer_id"].astype(object)
    if volunteers is not None and hierarchy is not None and (out["volunteer_id"] != "").any():
        station = out["volunteer_id"].map(volunteers.set_index("volunteer_id")["station_id"])
        street = pd.Series(hierarchy.ancestor(station.fillna("").to_numpy(), "street"),
                           index=out.index)
        pool_prefix = "pool:" + street + ":"
        source = source.where(out["offer_id"] != "", pool_prefix)
    given = []
    for need, src in zip(out["need_id"], source, strict=True):  # a loop over pins only
        rows = allocations[allocations["need_id"] == need]
        hit = rows["source_id"].str.startswith(src) if src.startswith("pool:") else \
            rows["source_id"] == src
        given.append(float(rows.loc[hit, "units"].sum()))
    out["units_given"] = given
    out["kept"] = out["units_given"] >= out["units"].astype(float) - 1e-9
    return out


# ----------------------------------------------------------------------------- run views


def served_needs(scenario: Scenario, tables: Mapping[str, pd.DataFrame], info: Mapping
                 ) -> pd.DataFrame:
    """Every need of a run with what it got: ``need_id, household_id, station_id, service_id,
    tier, urgency, quantity, served, fraction, money, reason``.

    Recomputed from the run's ``allocations`` and ``unmet`` tables and its parameters (week,
    centre), so it works for stored runs too; equals the optimizer's own ``need_served``.
    """
    params = info.get("parameters", {})
    needs = scenario.needs
    if params.get("week"):
        needs = needs[needs["week"] == params["week"]]
    hh = scenario.households.set_index("household_id")
    station = needs["household_id"].map(hh["station_id"])
    if params.get("centre"):
        inside = station.isin(scenario.hierarchy.subtree(params["centre"]))
        needs, station = needs[inside], station[inside]
    alloc = tables["allocations"].groupby("need_id")[["units", "cost"]].sum()
    unmet = tables["unmet"]
    reason = unmet.groupby("need_id")["reason"].agg(lambda r: ";".join(sorted(set(r))))
    served = needs["need_id"].map(alloc["units"]).fillna(0.0)
    return pd.DataFrame({
        "need_id": needs["need_id"].to_numpy(),
        "household_id": needs["household_id"].to_numpy(),
        "station_id": station.to_numpy(),
        "service_id": needs["service_id"].to_numpy(),
        "tier": needs["household_id"].map(hh["tier"]).to_numpy(),
        "urgency": needs["urgency"].to_numpy(),
        "quantity": needs["quantity"].to_numpy(),
        "served": served.to_numpy(),
        "fraction": np.minimum(served.to_numpy() / needs["quantity"].to_numpy(), 1.0),
        "money": needs["need_id"].map(alloc["cost"]).fillna(0.0).to_numpy(),
        "reason": needs["need_id"].map(reason).fillna("").to_numpy(),
    })


def fill_by_tier(served: pd.DataFrame) -> pd.Series:
    """Mean served fraction of each colour's needs, in priority order (NaN: no need)."""
    return served.groupby("tier")["fraction"].mean().reindex(list(vocab.TIER_ORDER))


def funds_used(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per fund: budget, used, left and marginal value (from the run's utilisation table),
    most used first."""
    util = tables["utilisation"]
    funds = util[util["kind"] == "fund"].rename(columns={"resource_id": "fund_id",
                                                         "available": "budget"})
    cols = ["fund_id", "budget", "used", "left", "marginal_value", "marginal_level"]
    return funds[cols].sort_values(["used", "fund_id"], ascending=[False, True]) \
        .reset_index(drop=True)


def unmet_reasons(tables: Mapping[str, pd.DataFrame]) -> pd.Series:
    """Unmet needs per reason (a need short for two reasons counts under each), most first."""
    unmet = tables["unmet"]
    return unmet.groupby("reason")["need_id"].nunique().sort_values(ascending=False)


def station_fill(scenario: Scenario, served: pd.DataFrame) -> pd.DataFrame:
    """Per station with needs in the run: name, street, lat, lon, needs, fill rate (mean served
    fraction) and red fill rate; the map's points."""
    centres = scenario.centres.set_index("centre_id")
    red = served[served["tier"] == "red"].groupby("station_id")["fraction"].mean()
    grouped = served.groupby("station_id")
    out = pd.DataFrame({"needs": grouped.size(), "fill_rate": grouped["fraction"].mean()})
    out["red_fill_rate"] = red.reindex(out.index)
    out.index.name = "station_id"
    out = out.reset_index()
    street = scenario.hierarchy.ancestor(out["station_id"].to_numpy(), "street")
    out.insert(1, "name", out["station_id"].map(centres["name"]))
    out.insert(2, "street", pd.Series(street).map(centres["name"]).to_numpy())
    out.insert(3, "lat", out["station_id"].map(centres["lat"]))
    out.insert(4, "lon", out["station_id"].map(centres["lon"]))
    return out


def _who(scenario: Scenario, allocations: pd.DataFrame) -> pd.Series:
    """Who serves each allocation row, in words: a provider's name, or a street's volunteers."""
    providers = scenario.providers.set_index("provider_id")["name"]
    centres = scenario.centres.set_index("centre_id")["name"]
    street = allocations["source_id"].str.split(":").str[1]
    return allocations["provider_id"].map(providers).where(
        allocations["source_kind"] == "offer", street.map(centres) + "志愿者").fillna(
        allocations["source_id"])


def household_detail(scenario: Scenario, served: pd.DataFrame,
                     allocations: pd.DataFrame, household_id: str) -> pd.DataFrame:
    """Every need of one household in the run: the service, how much was needed and served,
    who serves it (linkage, provider or volunteers, source id), the money and fund, and why
    anything is unmet. One row per need and source (a need served from two sources has two)."""
    needs = served[served["household_id"] == household_id]
    services = scenario.services.set_index("service_id")
    alloc = allocations[allocations["need_id"].isin(needs["need_id"])]
    alloc = alloc.assign(who=_who(scenario, alloc))
    cols = ["need_id", "source_id", "linkage", "who", "units", "cost", "fund_id"]
    out = needs.merge(alloc[cols].rename(columns={"units": "units_from_source"}),
                      on="need_id", how="left")
    out["service_zh"] = out["service_id"].map(services["name_zh"])
    out["service_en"] = out["service_id"].map(services["name_en"])
    out["unit"] = out["service_id"].map(services["unit"])
    out[["source_id", "linkage", "who", "fund_id"]] = \
        out[["source_id", "linkage", "who", "fund_id"]].fillna("")
    out[["units_from_source", "cost"]] = out[["units_from_source", "cost"]].fillna(0.0)
    return out[["need_id", "service_id", "service_zh", "service_en", "unit", "urgency",
                "quantity", "served", "fraction", "source_id", "linkage", "who",
                "units_from_source", "cost", "fund_id", "reason"]].reset_index(drop=True)


# Why the model would refuse a pin to a source, (中文, English); the conditions are the
# allocation's own (optimizer/eligibility.py), checked here for one need before any run.
def pin_sources(scenario: Scenario, need_id: str) -> pd.DataFrame:
    """Every source a coordinator might pin a need to — the offers of its service and the
    volunteers of its household's street with the service's skills — with what the model
    would say: ``accepted``, else ``why_zh``/``why_en`` (the first failing condition, in the
    model's own words: ``optimizer.pins.CONDITIONS``); with ``capacity``, ``unit_cost`` and
    the most units one pin may give (``most``: the need, the offer's and the fund's cap per
    household). Offers first."""
    need = scenario.needs.set_index("need_id").loc[need_id]
    household = scenario.households.set_index("household_id").loc[need["household_id"]]
    station = household["station_id"]
    service = scenario.services.set_index("service_id").loc[need["service_id"]]
    providers = scenario.providers.set_index("provider_id")
    funds = scenario.funds.set_index("fund_id")
    quantity = float(need["quantity"])
    covers = scenario.hierarchy.covers
    rows = []

    def refused(condition: str, source: str, **facts: object) -> tuple[bool, str, str]:
        problem = PinProblem(condition, need_id, source, facts)
        return False, problem.reason_zh, problem.reason_en

    cats = set(filter(None, str(household["categories"]).split(";")))
    offers = scenario.offers[scenario.offers["service_id"] == need["service_id"]]
    for offer in offers.itertuples(index=False):
        centre = offer.coverage_centre_id or providers.at[offer.provider_id, "centre_id"]
        allowed_cats = set(filter(None, str(offer.eligible_categories).split(";")))
        allowed_tiers = set(filter(None, str(offer.eligible_tiers).split(";")))
        charged = offer.unit_cost > 0 and bool(offer.fund_id)
        verdict = (True, "", "")
        most = quantity
        oid = offer.offer_id
        fund = {"fund": offer.fund_id, "station": station, "wanted": need["service_id"],
                "fund_centre": funds.at[offer.fund_id, "centre_id"] if charged else ""}
        if not covers(np.array([centre]), np.array([station]))[0]:
            verdict = refused("offer_coverage", oid, coverage=centre, station=station)
        elif allowed_cats and not allowed_cats & cats:
            verdict = refused("offer_categories", oid, accepted=words(
                offer.eligible_categories, vocab.CATEGORIES))
        elif allowed_tiers and household["tier"] not in allowed_tiers:
            verdict = refused("offer_colour", oid, accepted=words(
                offer.eligible_tiers, vocab.TIERS),
                colour=vocab.TIERS.get(household["tier"], household["tier"]))
        elif charged and not covers(np.array([fund["fund_centre"]]), np.array([station]))[0]:
            verdict = refused("fund_reach", oid, **fund)
        elif charged and funds.at[offer.fund_id, "earmarked_services"] and need["service_id"] \
                not in str(funds.at[offer.fund_id, "earmarked_services"]).split(";"):
            verdict = refused("fund_earmark", oid, **fund)
        elif not offer.capacity > 0:
            verdict = refused("offer_no_capacity", oid)
        if verdict[0]:
            caps = [quantity, float(offer.capacity)]
            if pd.notna(offer.max_per_household):
                caps.append(float(offer.max_per_household))
            if charged and pd.notna(funds.at[offer.fund_id, "max_per_household"]):
                caps.append(float(funds.at[offer.fund_id, "max_per_household"])
                            / float(offer.unit_cost))
            most = min(caps)
        name = providers["name"].get(offer.provider_id, offer.provider_id)
        rows.append(("offer", offer.offer_id, f"{offer.offer_id} · {name}",
                     float(offer.capacity), float(offer.unit_cost), most, *verdict))
    if service["delivery"] == "in_person":
        # Volunteers serve in-person services of their own street, with every skill needed.
        vols = scenario.volunteers
        needed = set(filter(None, service["skills"].split(";")))
        able = vols["skills"].map(lambda s: needed <= set(s.split(";"))).to_numpy(dtype=bool)
        street = scenario.hierarchy.ancestor(np.array([station]), "street")[0]
        here = scenario.hierarchy.ancestor(vols["station_id"].to_numpy(), "street") == street
        for vol in vols[here & able].itertuples(index=False):
            verdict = (True, "", "")
            if bool(service["safeguarding"]) and not bool(vol.background_checked):
                verdict = refused("volunteer_check", vol.volunteer_id)
            elif not vol.max_hours > 0:
                verdict = refused("volunteer_no_hours", vol.volunteer_id)
            rows.append(("volunteer", vol.volunteer_id, f"{vol.volunteer_id} · {vol.skills}",
                         float(vol.max_hours), 0.0, quantity, *verdict))
    frame = pd.DataFrame(rows, columns=["kind", "source_id", "label", "capacity", "unit_cost",
                                        "most", "accepted", "why_zh", "why_en"])
    return frame.astype({"accepted": bool})


# ----------------------------------------------------------------------------- scenario views


def centre_children(scenario: Scenario, parent_id: str) -> pd.DataFrame:
    """The centres one level below ``parent_id`` (``centre_id, name, level``), by id."""
    centres = scenario.centres
    return centres.loc[centres["parent_id"] == parent_id, ["centre_id", "name", "level"]] \
        .sort_values("centre_id").reset_index(drop=True)


def city_id(scenario: Scenario) -> str:
    """The city centre (the root of the hierarchy)."""
    centres = scenario.centres
    return str(centres.loc[centres["level"] == "city", "centre_id"].iloc[0])


def registry(scenario: Scenario, *, linkage: str | None = None, service: str | None = None,
             centre: str | None = None) -> pd.DataFrame:
    """The five-linkage registry: every offer and every volunteer, one row each, with the
    provider, linkage, service (``what``/``what_en``: its name, or a volunteer's skills),
    capacity and where it serves.

    Filters: ``linkage`` (a code of ``vocab.LINKAGES``), ``service`` (a service id; volunteers
    match when they have one of its skills) and ``centre`` (rows that may serve someone in that
    centre's subtree: their coverage contains the centre or lies inside it).
    """
    providers = scenario.providers.set_index("provider_id")
    centres = scenario.centres.set_index("centre_id")["name"]
    services = scenario.services.set_index("service_id")
    offers = scenario.offers
    coverage = offers["coverage_centre_id"].where(
        offers["coverage_centre_id"] != "", offers["provider_id"].map(providers["centre_id"]))
    rows = pd.DataFrame({
        "kind": "offer", "id": offers["offer_id"], "provider_id": offers["provider_id"],
        "provider": offers["provider_id"].map(providers["name"]),
        "linkage": offers["provider_id"].map(providers["linkage"]),
        "service_id": offers["service_id"],
        "what": offers["service_id"].map(services["name_zh"]),
        "what_en": offers["service_id"].map(services["name_en"]),
        "capacity": offers["capacity"],
        "unit": offers["service_id"].map(services["unit"]),
        "unit_cost": offers["unit_cost"], "fund_id": offers["fund_id"],
        "coverage_id": coverage, "coverage": coverage.map(centres),
    })
    vols = scenario.volunteers
    def skills_in(words: int):
        return lambda s: "、".join(vocab.SKILLS[x][words] if x in vocab.SKILLS else x
                                   for x in s.split(";") if x)

    vol_rows = pd.DataFrame({
        "kind": "volunteer", "id": vols["volunteer_id"], "provider_id": vols["provider_id"],
        "provider": vols["provider_id"].map(providers["name"]),
        "linkage": vols["provider_id"].map(providers["linkage"]),
        "service_id": vols["skills"],
        "what": vols["skills"].map(skills_in(0)),
        "what_en": vols["skills"].map(skills_in(1)).str.replace("、", ", "),
        "capacity": vols["max_hours"], "unit": "hour", "unit_cost": 0.0, "fund_id": "",
        "coverage_id": vols["station_id"], "coverage": vols["station_id"].map(centres),
    })
    table = pd.concat([rows, vol_rows], ignore_index=True)
    if linkage:
        table = table[table["linkage"] == linkage]
    if service:
        skills = set(filter(None, services.at[service, "skills"].split(";")))
        vol_match = table["service_id"].map(lambda s: bool(skills & set(s.split(";"))))
        table = table[((table["kind"] == "offer") & (table["service_id"] == service))
                      | ((table["kind"] == "volunteer") & vol_match)]
    if centre:
        h = scenario.hierarchy
        cov = table["coverage_id"].to_numpy()
        inside = h.covers(np.full(len(cov), centre), cov)
        above = h.covers(cov, np.full(len(cov), centre))
        table = table[inside | above]
    return table.reset_index(drop=True)


def deprivation_by_street(scenario: Scenario) -> pd.DataFrame:
    """The Alkire–Foster breakdown per street: households, poor, H, A, M0, each dimension's
    share of the street's M0 (``share_<dimension>``) and the dimension that drives it most."""
    scored = score_households(scenario.tables["households"], scenario.centres,
                              scenario.policy)
    streets = scored.by_street.copy()
    weights = dict(zip(scored.overall.indicators, scored.overall.weights, strict=True))
    for dim in vocab.DIMENSIONS:
        share = weights[dim] * streets[f"h_{dim}"] / streets["M0"]
        streets[f"share_{dim}"] = share.where(streets["M0"] > 0)
    shares = streets[[f"share_{d}" for d in vocab.DIMENSIONS]]
    streets["driver"] = shares.fillna(-1).idxmax(axis=1).str.removeprefix("share_") \
        .where(shares.notna().any(axis=1), "")
    keep = ["district_id", "name", "n", "n_poor", "H", "A", "M0", "contribution", "driver",
            *shares.columns]
    return streets[keep].rename_axis("street_id").reset_index()


# ----------------------------------------------------------------------------- export


def plans_for_reading(plans: pd.DataFrame) -> pd.DataFrame:
    """The households' plans as a coordinator reads them: red first (then orange, yellow,
    green), within a colour those still lacking something first, the lowest fill rate first;
    what is unmet before the package, which is the long column."""
    order = {t: i for i, t in enumerate(vocab.TIER_ORDER)}
    ranked = plans.assign(_tier=plans["tier"].map(order), _complete=plans["unmet"] == "")
    ranked = ranked.sort_values(["_tier", "_complete", "fill_rate", "household_id"],
                                kind="stable")
    first = ["household_id", "station_id", "tier", "fill_rate", "unmet", "package"]
    rest = [c for c in plans.columns if c not in first]
    return ranked[[*first, *rest]].reset_index(drop=True)


def provider_tasks(scenario: Scenario, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every task the run gives a provider's offers: provider, offer, need, household, station,
    service, units, cost and fund; by provider, then station and household."""
    alloc = tables["allocations"]
    alloc = alloc[alloc["source_kind"] == "offer"]
    needs = scenario.needs.set_index("need_id")
    hh = scenario.households.set_index("household_id")
    services = scenario.services.set_index("service_id")
    providers = scenario.providers.set_index("provider_id")["name"]
    household = alloc["need_id"].map(needs["household_id"])
    service = alloc["need_id"].map(needs["service_id"])
    out = pd.DataFrame({
        "provider_id": alloc["provider_id"], "provider": alloc["provider_id"].map(providers),
        "offer_id": alloc["source_id"], "need_id": alloc["need_id"],
        "household_id": household, "station_id": household.map(hh["station_id"]),
        "tier": household.map(hh["tier"]), "service_id": service,
        "service_zh": service.map(services["name_zh"]), "units": alloc["units"],
        "unit": service.map(services["unit"]), "cost": alloc["cost"],
        "fund_id": alloc["fund_id"],
    })
    return out.sort_values(["provider_id", "station_id", "household_id", "need_id"]) \
        .reset_index(drop=True)


def export_workbook(scenario: Scenario, tables: Mapping[str, pd.DataFrame],
                    schedules: pd.DataFrame | None = None, lang: str = "zh") -> bytes:
    """The coordinator's workbook as XLSX bytes (planning/workbook.py): an index sheet, one
    sheet per provider named by the provider's name with its task list (red first), one per
    volunteer with their week (from matching's ``schedules``, when given; volunteers with at
    least one visit), and the unmet list with reasons, red first and the largest first."""
    from wulian.planning.workbook import Sheet, write_workbook

    order = {t: i for i, t in enumerate(vocab.TIER_ORDER)}

    def red_first(frame: pd.DataFrame, *then: str, ascending: bool = True) -> pd.DataFrame:
        return frame.sort_values(["tier", *then], key=lambda s: s.map(order)
                                 if s.name == "tier" else s, kind="stable",
                                 ascending=[True, *[ascending] * len(then)]) \
            .reset_index(drop=True)

    sheets: list[Sheet] = []
    tasks = provider_tasks(scenario, tables)
    columns = ["household_id", "station_id", "tier", "service_zh", "units", "unit", "cost",
               "fund_id", "offer_id", "need_id"]
    for provider_id, part in tasks.groupby("provider_id", sort=True):
        name = str(part["provider"].iloc[0]) if part["provider"].notna().iloc[0] else ""
        sheets.append(Sheet(name or str(provider_id),
                            red_first(part[columns], "station_id", "household_id"),
                            (f"资源方 {provider_id} {name} 的任务",
                             f"tasks of provider {provider_id} {name}")))
    if schedules is not None:
        busy = schedules.loc[schedules["visit_id"] != "", "volunteer_id"].unique()
        keep = [c for c in ("slot", "household_id", "station_id", "kind", "service_zh",
                            "hours", "km") if c in schedules.columns]
        for volunteer_id in sorted(busy):
            week = schedules[schedules["volunteer_id"] == volunteer_id]
            sheets.append(Sheet(f"志愿者 {volunteer_id}", week[keep].reset_index(drop=True),
                                (f"志愿者 {volunteer_id} 一周的时段",
                                 f"volunteer {volunteer_id}'s week")))
    needs = scenario.needs.set_index("need_id")
    households = scenario.households.set_index("household_id")
    services = scenario.services.set_index("service_id")
    unmet = tables["unmet"]
    household = unmet["need_id"].map(needs["household_id"])
    service = unmet["need_id"].map(needs["service_id"])
    unmet = pd.DataFrame({
        "household_id": household, "station_id": household.map(households["station_id"]),
        "tier": household.map(households["tier"]), "service_zh": service.map(services["name_zh"]),
        "units": unmet["units"], "unit": service.map(services["unit"]),
        "reason": unmet["reason"], "need_id": unmet["need_id"]})
    sheets.append(Sheet("unmet", red_first(unmet, "units", ascending=False),
                        ("未能满足的需求及原因(红色在前)", "unmet needs and why (red first)")))
    result = write_workbook(sheets, None, lang,
                            ("五联 · 协调员导出", "wulian · coordinator export"))
    assert isinstance(result, bytes)
    return result


__all__ = ["scenario_from_files", "with_pins", "pins_kept", "served_needs", "fill_by_tier",
           "funds_used", "unmet_reasons", "station_fill", "household_detail", "pin_sources",
           "centre_children", "city_id", "registry", "deprivation_by_street", "sheet_name",
           "provider_tasks", "export_workbook", "plans_for_reading"]
