"""The quarterly planner: quarter parsing, the plan's invariants recomputed from its tables,
carrying forward, cancelling, progress, subtree plans, and local vs Ray giving the same plan."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wulian.api.cli import main
from wulian.demand.policy import Policy, PolicyError, QuarterRates
from wulian.optimizer.budget import build_budget_model
from wulian.planning.allocate import allocation_input
from wulian.planning.engines import EngineError, start_ray
from wulian.planning.match import week_start
from wulian.planning.quarter import (
    OUTPUT_TABLES,
    Cancelled,
    QuarterError,
    parse_quarter,
    plan_quarter,
)
from wulian.planning.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parent.parent
CLEAN = Path(__file__).parent / "data" / "clean"
DEMO = ROOT / "data" / "demo"
COLOURS = ("red", "orange", "yellow", "green")
TOL = 1e-6


@functools.cache
def scenario(name: str) -> Scenario:
    return load_scenario(CLEAN if name == "clean" else DEMO)


@functools.cache
def plan(name: str, engine: str = "local"):
    return plan_quarter(scenario(name), "2027Q1", engine=engine, workers=2)


@pytest.fixture(scope="module")
def ray_session():
    """One small local Ray for the module (2 CPUs), shut down at its end."""
    ray, started = start_ray(workers=2)
    yield ray
    if started:
        ray.shutdown()


# ----------------------------------------------------------------------------- the quarter


def test_quarter_weeks_start_at_the_first_monday():
    """A quarter is 13 consecutive ISO weeks from the first Monday on or after its first day."""
    q = parse_quarter("2027Q1")
    assert q.weeks == tuple(f"2027-W{k:02d}" for k in range(1, 14))
    q4 = parse_quarter("2026-q4")  # 1 Oct 2026 is a Thursday: the plan starts Monday 5 Oct
    assert q4.first_monday.isoformat() == "2026-10-05" and q4.weeks[0] == "2026-W41"
    assert parse_quarter("2027Q3").first_monday.isoformat() == "2027-07-05"
    for q in (parse_quarter(f"2028Q{n}") for n in range(1, 5)):
        starts = [week_start(w) for w in q.weeks]
        assert len(set(q.weeks)) == 13
        assert all((b - a).days == 7 for a, b in zip(starts, starts[1:], strict=False))
        assert starts[0].month == 3 * (q.number - 1) + 1 and starts[0].day <= 7


@pytest.mark.parametrize("text", ["2027Q5", "2027Q0", "Q1 2027", "2027", "27Q1", ""])
def test_bad_quarters_are_refused_in_both_languages(text):
    """A string that is not a year and a quarter 1–4 raises QuarterError in Chinese and English."""
    with pytest.raises(QuarterError) as err:
        parse_quarter(text)
    assert "季度" in str(err.value) and "not a quarter" in str(err.value)


def test_quarter_section_of_the_policy_is_validated():
    """Bad [quarter] values are all reported at once; the default rates are 1.0 and 1 hour."""
    p = Policy.load()
    assert dict(p.quarter.arrival_rate) == dict.fromkeys(COLOURS, 1.0)
    assert p.quarter.monitoring_hours == 1.0
    bad = {**p.to_dict(), "quarter": {"arrival_rate": {"red": -1, "pink": 1},
                                      "carry_forward": {"green": 1.5}, "monitoring_hours": 0}}
    with pytest.raises(PolicyError) as err:
        Policy.from_dict(bad)
    assert err.value.keys == ["quarter.arrival_rate.pink", "quarter.arrival_rate.red",
                              "quarter.carry_forward.green", "quarter.monitoring_hours"]
    again = Policy.from_dict(p.to_dict())
    assert again.quarter == p.quarter and again.digest() == p.digest()


# ----------------------------------------------------------------------------- the model


def test_budget_model_demand_and_supply_scale_together():
    """Doubling every need, capacity and budget leaves the fill rates as they were (on the
    demo without volunteers, whose pools count whole visits): set_demand and set_supply
    rescale every bound that counts needs or supply; street hours go where they are told."""
    s = scenario("demo")
    without = Scenario.from_tables({**s.tables, "volunteers": s.volunteers.iloc[:0],
                                    "history": s.history.iloc[:0]})
    model = build_budget_model(allocation_input(without))
    base = model.solve()
    model.set_demand(2 * model.agg.seg_needs)
    offers = s.offers.set_index("offer_id")["capacity"]
    model.set_supply(capacity=(2 * offers.reindex(model.offer_ids)).to_dict())
    doubled = model.solve((2 * model.base_budgets).to_dict())
    assert np.allclose(base.fill_rates(), doubled.fill_rates(), atol=1e-7)
    assert doubled.money == pytest.approx(2 * base.money, rel=1e-6)
    offer_use = model.row_activity("offer", doubled)
    assert (offer_use <= model.row_bounds("offer") + 1e-6).all() and offer_use.max() > 0
    model.set_demand(0.5 * model.agg.seg_needs)  # half the doubled: the snapshot again
    assert model.agg.seg_needs.sum() == pytest.approx(base.colours["needs"].sum())
    with pytest.raises(ValueError):
        model.set_demand(-model.agg.seg_needs)

    with_volunteers = build_budget_model(allocation_input(s))
    street = with_volunteers.hour_streets[0]
    with_volunteers.set_supply(street_hours={street: 0.0})
    sol = with_volunteers.solve()
    assert with_volunteers.row_bounds("street_hours")[0] == 0.0
    assert with_volunteers.row_activity("street_hours", sol)[0] <= 1e-9


# ----------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("name", ["clean", "demo"])
def test_funds_never_overspend(name):
    """Each fund's planned spend ≤ its quarter budget (13 × weekly) and equals the money
    table's total; no street-week spends more than it has, and what it has is its weekly
    slice plus what it left unspent the week before."""
    p = plan(name)
    funds = p.funds.set_index("fund_id")
    money = p.money
    assert (funds["quarter_budget"] == (13 * funds["weekly_budget"]).round(2)).all()
    assert (funds["planned"] <= funds["quarter_budget"] + 0.01).all()
    assert (funds["allotted"] <= funds["quarter_budget"] + 0.05).all()
    assert np.allclose(money.groupby("fund_id")["planned"].sum().reindex(funds.index,
                                                                        fill_value=0.0),
                       funds["planned"], atol=0.05)
    assert (money["planned"] <= money["available"] + 0.01).all()
    weeks = list(parse_quarter("2027Q1").weeks)
    for _, g in money.groupby(["street_id", "fund_id"]):
        g = g.set_index("week").reindex(weeks)
        avail, spent = g["available"].to_numpy(), g["planned"].to_numpy()
        assert not np.isnan(avail).any()
        weekly = avail[0]
        assert np.allclose(avail[1:], weekly + avail[:-1] - spent[:-1], atol=0.03)
        assert (np.cumsum(spent) <= weekly * np.arange(1, 14) + 0.05).all()
    assert money["planned"].sum() > 0


@pytest.mark.parametrize("name", ["clean", "demo"])
def test_fill_rates_match_counts(name):
    """Per week × colour: served ≤ open, open = carried + new, the fill rate is served ÷
    open, and with the default rates (arrival 1, carry 1) each week carries exactly what the
    week before left open and brings the first week's needs again."""
    fill = plan(name).fill_rate
    assert len(fill) == 13 * 4
    assert (fill["served_needs"] <= fill["open_needs"] + TOL).all()
    assert np.allclose(fill["open_needs"], fill["carried_needs"] + fill["new_needs"], atol=1e-3)
    some = fill["open_needs"] > 0
    assert np.allclose(fill.loc[some, "fill_rate"],
                       fill.loc[some, "served_needs"] / fill.loc[some, "open_needs"], atol=1e-5)
    snapshot = scenario(name).households.set_index("household_id")["tier"] \
        .reindex(scenario(name).needs["household_id"]).value_counts()
    for colour, g in fill.groupby("colour"):
        g = g.sort_values("week")
        assert g["new_needs"].iloc[0] == pytest.approx(snapshot.get(colour, 0))
        assert np.allclose(g["new_needs"], snapshot.get(colour, 0))
        left = (g["open_needs"] - g["served_needs"]).to_numpy()
        assert np.allclose(g["carried_needs"].to_numpy()[1:], left[:-1], atol=1e-3)
        assert g["carried_needs"].iloc[0] == 0


def _expected_monitoring(s: Scenario) -> pd.DataFrame:
    """Monitoring visits per week × colour, recomputed household by household: due when the
    colour's cycle has passed since the last visit, then every cycle; never visited: first in
    week (rank among the street's households of the colour, by id) mod cycle."""
    weeks = parse_quarter("2027Q1").weeks
    h = s.hierarchy
    hh = s.households[["household_id", "station_id", "tier"]].copy()
    hh["street"] = h.ancestor(hh["station_id"].to_numpy(), "street")
    last = s.history.groupby("household_id")["week"].max().to_dict()
    cycles = dict(s.policy.monitoring_weeks)
    counts = {(w, c): 0 for w in weeks for c in COLOURS}
    for (_, tier), group in hh.groupby(["street", "tier"]):
        for rank, hid in enumerate(sorted(group["household_id"])):
            cycle = cycles[tier]
            if hid in last:
                since = (week_start(weeks[0]) - week_start(last[hid])).days // 7
                first = max(cycle - since, 0)
            else:
                first = rank % cycle
            for k in range(first, 13, cycle):
                counts[(weeks[k], tier)] += 1
    return pd.Series(counts, name="expected").rename_axis(["week", "colour"]).reset_index()


@pytest.mark.parametrize("name", ["clean", "demo"])
def test_monitoring_visits_follow_the_cycles(name):
    """The monitoring visits per week × colour are those each colour's cycle asks for,
    recomputed from households and history; red households are visited every week."""
    p = plan(name)
    got = p.fill_rate.merge(_expected_monitoring(scenario(name)), on=["week", "colour"])
    assert (got["monitoring_visits"] == got["expected"]).all()
    red = scenario(name).households["tier"].eq("red").sum()
    assert (p.fill_rate.loc[p.fill_rate["colour"] == "red", "monitoring_visits"] == red).all()
    assert p.volunteers["monitoring_visits"].sum() == got["expected"].sum()


@pytest.mark.parametrize("name", ["clean", "demo"])
def test_volunteer_hours_add_up(name):
    """Per station: available = 13 × the weekly hours of its volunteers; needed = monitoring
    + hours served by volunteers + in-person hours still open; gap = needed − available when
    positive; monitoring hours = visits × the policy's hours per visit."""
    s = scenario(name)
    vol = plan(name).volunteers.set_index("station_id")
    weekly = s.volunteers.groupby("station_id")["max_hours"].sum()
    assert np.allclose(vol["weekly_available"], weekly.reindex(vol.index, fill_value=0.0))
    assert np.allclose(vol["available"], 13 * vol["weekly_available"])
    assert np.allclose(vol["needed"], vol["monitoring_hours"] + vol["service_hours"]
                       + vol["unserved_hours"], atol=1e-3)
    assert np.allclose(vol["gap"], (vol["needed"] - vol["available"]).clip(lower=0), atol=1e-3)
    assert np.allclose(vol["monitoring_hours"],
                       vol["monitoring_visits"] * s.policy.quarter.monitoring_hours)
    assert (vol["peak_week_gap"] >= 0).all() and vol["gap_weeks"].between(0, 13).all()
    assert set(vol.index) >= set(s.volunteers["station_id"])


@pytest.mark.parametrize("name", ["clean", "demo"])
def test_explanation_accounts_for_the_unserved(name):
    """Per colour: needs = every need that opened (snapshot and new), the limit shares add up
    to 1 wherever needs are left, and the sentence is bilingual."""
    p = plan(name)
    exp = p.explanation.set_index("colour")
    new = p.fill_rate.groupby("colour")["new_needs"].sum()
    assert np.allclose(exp["needs"], new.reindex(exp.index), atol=1e-3)
    shares = exp[[c for c in exp.columns if c.startswith("share_")]].sum(axis=1)
    left = exp["open_at_end"] > 1e-6
    assert np.allclose(shares[left], 1.0)
    for row in exp.itertuples():
        assert row.summary_zh.startswith(row.colour_zh) and row.summary_en.startswith(row.Index)
    assert list(exp.index) == list(COLOURS)


# ----------------------------------------------------------------------------- behaviour


def test_less_supply_leaves_more_open_demand_next_week():
    """With every offer's capacity cut to a third, the first week serves fewer needs and the
    second week carries more of them; with no new arrivals the open needs only shrink."""
    s = scenario("demo")
    street = "D04S01"
    scarce = Scenario.from_tables({**s.tables, "offers": s.offers.assign(
        capacity=(s.offers["capacity"] / 3).round().clip(lower=1))})
    a = plan_quarter(s, "2027Q1", centre=street, workers=1).fill_rate
    b = plan_quarter(scarce, "2027Q1", centre=street, workers=1).fill_rate
    week = {k: g.set_index("colour") for k, g in b.groupby("week")}
    base = {k: g.set_index("colour") for k, g in a.groupby("week")}
    first, second = "2027-W01", "2027-W02"
    assert week[first]["open_needs"].sum() == pytest.approx(base[first]["open_needs"].sum())
    assert week[first]["served_needs"].sum() < base[first]["served_needs"].sum() - 1
    assert week[second]["carried_needs"].sum() > base[second]["carried_needs"].sum() + 1
    assert week[second]["open_needs"].sum() > base[second]["open_needs"].sum() + 1

    no_arrivals = dataclasses.replace(Policy.load(), quarter=QuarterRates(
        arrival_rate=dict.fromkeys(COLOURS, 0.0)))
    c = plan_quarter(Scenario.from_tables(s.tables, no_arrivals), "2027Q1", centre=street,
                     workers=1).fill_rate
    open_by_week = c.groupby("week")["open_needs"].sum().to_numpy()
    assert (np.diff(open_by_week) <= TOL).all() and open_by_week[-1] < open_by_week[0]
    assert (c["new_needs"].iloc[4:] == 0).all()
    assert c["served_needs"].sum() <= open_by_week[0] + TOL


def test_cancel_stops_promptly():
    """cancelled() turning true after the second street finishes stops the plan within a few
    seconds with Cancelled, before every street ran; true from the start runs nothing."""
    seen = []
    state = {"at": None}

    def progress(done, total, label):
        seen.append(done)
        if done >= 3 and state["at"] is None:
            state["at"] = time.perf_counter()

    with pytest.raises(Cancelled):
        plan_quarter(scenario("demo"), "2027Q1", workers=2, progress=progress,
                     cancelled=lambda: state["at"] is not None)
    assert time.perf_counter() - state["at"] < 5.0
    assert max(seen) < 14  # 13 streets + the split: the plan did not finish

    calls = []
    start = time.perf_counter()
    with pytest.raises(Cancelled):
        plan_quarter(scenario("demo"), "2027Q1", progress=lambda *a: calls.append(a),
                     cancelled=lambda: True)
    assert time.perf_counter() - start < 2.0 and [c[0] for c in calls] == [0]


def test_progress_reaches_total():
    """progress(done, total, label) rises one step at a time to total (the split + every
    street) with bilingual labels."""
    calls = []
    p = plan_quarter(scenario("clean"), "2027Q1", workers=1,
                     progress=lambda d, t, label: calls.append((d, t, label)))
    total = p.info["streets"] + 1
    assert [c[0] for c in calls] == list(range(total + 1))
    assert all(c[1] == total for c in calls)
    assert "预算拆分" in calls[0][2] and "budget split" in calls[0][2]


def test_a_subtree_plan_is_its_part_of_the_whole_plan():
    """A street's plan (a coordinator's) equals the whole plan's rows for that street; a
    station or an unknown centre is refused in both languages."""
    whole = plan("demo")
    street = "D04S03"
    part = plan_quarter(scenario("demo"), "2027Q1", centre=street, workers=1)
    assert part.info["streets"] == 1
    for name in ("money", "volunteers"):
        mine = whole.tables[name][whole.tables[name]["street_id"] == street]
        pd.testing.assert_frame_equal(part.tables[name], mine.reset_index(drop=True))
    with pytest.raises(QuarterError, match="street centre"):
        plan_quarter(scenario("demo"), "2027Q1", centre="D04S03T001")
    with pytest.raises(QuarterError, match="no centre"):
        plan_quarter(scenario("demo"), "2027Q1", centre="NOPE")


def test_plan_writes_its_tables_and_provenance(tmp_path):
    """write() gives the five tables and plan.json (quarter, weeks, digest, policy, engine,
    per-task times and the serial share); parquet reads back equal."""
    p = plan("clean")
    p.write(tmp_path / "csv")
    assert sorted(f.name for f in (tmp_path / "csv").iterdir()) == sorted(
        [f"{t}.csv" for t in OUTPUT_TABLES] + ["plan.json"])
    info = json.loads((tmp_path / "csv" / "plan.json").read_text(encoding="utf-8"))
    assert info["quarter"] == "2027Q1" and len(info["weeks"]) == 13
    assert info["input_digest"] == scenario("clean").digest
    assert info["policy"]["digest"] == scenario("clean").policy.digest()
    assert info["tasks"]["count"] == info["streets"] and 0 <= info["serial_share"] <= 1
    p.write(tmp_path / "pq", "parquet")
    back = pd.read_parquet(tmp_path / "pq" / "funds.parquet")
    pd.testing.assert_frame_equal(back, p.funds, check_dtype=False)


def test_same_plan_twice_is_identical():
    """The same job gives identical tables (expected values, fixed solver seeds)."""
    again = plan_quarter(scenario("clean"), "2027Q1", workers=1)
    for name in OUTPUT_TABLES:
        pd.testing.assert_frame_equal(again.tables[name], plan("clean").tables[name],
                                      check_exact=True)


def test_local_and_ray_give_identical_plans(ray_session):
    """On the district preset the Ray engine's plan is the local engine's, table for table."""
    local = plan("demo")
    on_ray = plan_quarter(scenario("demo"), "2027Q1", engine="ray")
    assert on_ray.info["engine"]["name"] == "ray" and local.info["engine"]["name"] == "local"
    for name in OUTPUT_TABLES:
        pd.testing.assert_frame_equal(on_ray.tables[name], local.tables[name], check_exact=True)


def test_missing_ray_is_explained(monkeypatch):
    """Without Ray installed, --engine ray fails with a bilingual hint to install the extra."""
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(EngineError, match=r"wulian\[ray\]"):
        start_ray()


def test_cli_plan(tmp_path):
    """`wulian plan` writes the plan's tables; a bad quarter exits 2 before reading anything."""
    out = tmp_path / "plan"
    assert main(["plan", str(CLEAN), "--quarter", "2027Q1", "--out", str(out),
                 "--workers", "1"]) == 0
    assert (out / "plan.json").exists() and (out / "volunteers.csv").exists()
    assert main(["plan", str(CLEAN), "--quarter", "2027Q9", "--out", str(out)]) == 2
