"""One rule at a time, on the hand-made clean scenario, with answers worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from wulian.optimizer.pins import PinError
from wulian.planning.allocate import run_allocation
from wulian.planning.scenario import Scenario, load_scenario
from wulian.planning.store import RunStore

CLEAN = Path(__file__).parent / "data" / "clean"


def _scenario(**changes) -> Scenario:
    """The clean scenario with some tables replaced (each change: table → function of it)."""
    base = load_scenario(CLEAN)
    tables = {name: frame.copy() for name, frame in base.tables.items()}
    for name, change in changes.items():
        tables[name] = change(tables[name])
    return Scenario.from_tables(tables)


def _served(run, need_id: str) -> float:
    a = run.allocations
    return float(a.loc[a["need_id"] == need_id, "units"].sum())


def _reason(run, need_id: str) -> str:
    u = run.unmet
    return u.loc[u["need_id"] == need_id, "reason"].item()


def test_clean_scenario_answer_worked_by_hand():
    """H001 (red) gets the offer's per-household cap of ¥600, H004 (orange) the ¥300 left of
    F01's ¥900; N003 takes both free food parcels it needs; the green household's parcel is
    paid by F02 for ¥25, because the free parcels are for red, orange and yellow only."""
    run = run_allocation(load_scenario(CLEAN))
    assert _served(run, "N002") == 600 and _reason(run, "N002") == "household_cap"
    assert _served(run, "N005") == 300 and _reason(run, "N005") == "budget_exhausted"
    assert _served(run, "N003") == 2
    a = run.allocations.set_index("need_id")
    assert a.loc["N004", "source_id"] == "O03" and a.loc["N004", "cost"] == 25
    assert _served(run, "N001") == 2  # two companionship visits from the street's volunteers
    assert run.info["status"] == "optimal"


def test_red_is_served_before_orange():
    """With only ¥600 in F01, all of it goes to the red household, none to the orange one."""
    run = run_allocation(_scenario(funds=lambda f: f.assign(
        budget=f["budget"].where(f["fund_id"] != "F01", 600.0))))
    assert _served(run, "N002") == 600
    assert _served(run, "N005") == 0 and _reason(run, "N005") == "budget_exhausted"


def test_out_of_coverage():
    """An offer covering only another station cannot serve the household: out_of_coverage."""
    run = run_allocation(_scenario(offers=lambda o: o.assign(
        coverage_centre_id=o["coverage_centre_id"].where(o["offer_id"] != "O01", "D01S01T02"))))
    assert _served(run, "N002") == 0 and _reason(run, "N002") == "out_of_coverage"


def test_no_eligible_offer():
    """When the only cash offer is for tekun households, a dibao household has none."""
    run = run_allocation(_scenario(offers=lambda o: o.assign(eligible_categories=o[
        "eligible_categories"].where(o["offer_id"] != "O01", "tekun"))))
    assert _reason(run, "N005") == "no_eligible_offer"


def test_capacity_exhausted():
    """One free parcel for two orange/red households: the rest is capacity_exhausted."""
    run = run_allocation(_scenario(offers=lambda o: o.assign(
        capacity=o["capacity"].where(o["offer_id"] != "O02", 1.0))))
    assert _served(run, "N003") == 1
    assert _reason(run, "N003") == "capacity_exhausted"


def test_earmark_keeps_a_fund_to_its_services():
    """F02 earmarked away from food parcels cannot pay for O03: the green parcel is unmet."""
    run = run_allocation(_scenario(funds=lambda f: f.assign(earmarked_services=f[
        "earmarked_services"].where(f["fund_id"] != "F02", "companionship"))))
    assert _served(run, "N004") == 0
    assert _reason(run, "N004") == "out_of_coverage"


def test_pins_are_kept():
    """A coordinator's pin of the orange household's full ¥350.50 is kept, even though the
    red household then gets only the ¥549.50 left of F01's ¥900."""
    run = run_allocation(_scenario(pins=lambda p: pd.DataFrame({
        "need_id": ["N005"], "offer_id": ["O01"], "volunteer_id": [""], "units": [350.5],
        "slot": [""]})))
    assert _served(run, "N005") == 350.5
    assert _served(run, "N002") == 549.5


def test_a_pin_that_cannot_be_kept_is_refused():
    """A pin to an offer of another service is refused with its reason, before solving."""
    scenario = _scenario(pins=lambda p: pd.DataFrame({
        "need_id": ["N001"], "offer_id": ["O02"], "volunteer_id": [""], "units": [1.0],
        "slot": [""]}))
    with pytest.raises(PinError, match="N001"):
        run_allocation(scenario)


def _pins(*rows: tuple[str, str, str, float]):
    """A pins table of (need, offer, volunteer, units) rows."""
    return lambda _p: pd.DataFrame([{"need_id": n, "offer_id": o, "volunteer_id": v,
                                     "units": u, "slot": ""} for n, o, v, u in rows])


def _with(table_id: str, row_id: str, **values):
    """A change to one row of a table (by its id column)."""
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        for column, value in values.items():
            frame.loc[frame[table_id] == row_id, column] = value
        return frame
    return change


def test_every_pin_refusal_names_its_condition_in_chinese_and_english():
    """The model's refusals said "that source may not serve this need (service, coverage,
    eligibility or fund)" in English only; each now names the condition that failed, with its
    facts, in both languages (issue 18)."""
    scenario = _scenario(
        offers=_with("offer_id", "O01", eligible_categories="tekun;serious_illness"),
        pins=_pins(("N001", "O02", "", 1.0), ("N003", "O03", "", 1.0), ("N004", "O02", "", 1.0),
                   ("N005", "O01", "", 1.0), ("N002", "O01", "", 700.0),
                   ("N001", "", "V02", 1.0)))
    with pytest.raises(PinError) as err:
        run_allocation(scenario)
    found = {(p.need, p.source): p for p in err.value.problems}
    assert {k: p.condition for k, p in found.items()} == {
        ("N001", "O02"): "offer_service", ("N003", "O03"): "offer_coverage",
        ("N004", "O02"): "offer_colour", ("N005", "O01"): "offer_categories",
        ("N002", ""): "units_above_cap", ("N001", "V02"): "volunteer_skills"}
    assert found["N003", "O03"].zh == ("锁定 N003 → O03:供给 O03 的覆盖范围 D01S01T02 不包括该户"
                                       "所在站点 D01S01T01")
    assert found["N003", "O03"].en == ("pin N003 → O03: the offer O03 covers D01S01T02, which "
                                       "does not include the household's station D01S01T01")
    assert "只面向 红色、橙色、黄色 家庭,该户为 绿色" in found["N004", "O02"].zh
    assert "only for red, orange, yellow households; this household is green" in \
        found["N004", "O02"].en
    assert "特困、" in found["N005", "O01"].zh and "(tekun)" in found["N005", "O01"].en
    assert "700" in found["N002", ""].en and "600" in found["N002", ""].zh
    assert all(" / " in str(p) for p in err.value.problems)  # the CLI prints both

    scenario = _scenario(
        offers=_with("offer_id", "O01", fund_id="F02"),
        funds=_with("fund_id", "F02", centre_id="D01S01T01"),
        volunteers=_with("volunteer_id", "V02", skills="companionship"),  # skilled, unchecked
        pins=_pins(("N002", "O01", "", 1.0), ("N004", "O03", "", 1.0), ("N001", "", "V02", 1.0)))
    with pytest.raises(PinError) as err:
        run_allocation(scenario)
    assert [(p.need, p.condition) for p in err.value.problems] == [
        ("N002", "fund_earmark"), ("N004", "fund_reach"), ("N001", "volunteer_check")]
    assert "专款用于其他服务,不含 medical_cash" in err.value.problems[0].zh
    assert "background-checked volunteer; V02 is not" in err.value.problems[2].en


def test_the_cli_prints_a_pin_refusal_in_both_languages(tmp_path, capsys):
    from wulian.api.cli import main

    pins = tmp_path / "pins.csv"
    pins.write_text("need_id,offer_id,volunteer_id,units,slot\nN001,O02,,1,\n", encoding="utf-8")
    assert main(["allocate", str(CLEAN), "--pins", str(pins), "--out", str(tmp_path / "o"),
                 "--store", f"sqlite:///{tmp_path / 'runs.sqlite'}"]) == 1
    err = capsys.readouterr().err
    assert "供给 O02 提供的是 food_parcel,该需求要的是 companionship" in err
    assert "the offer O02 gives food_parcel; the need asks for companionship" in err


def test_same_input_gives_byte_identical_outputs(tmp_path):
    """Two runs of the same scenario write byte-identical output tables."""
    scenario = load_scenario(CLEAN)
    for name in ("a", "b"):
        run_allocation(scenario).write(tmp_path / name)
    for file in sorted((tmp_path / "a").glob("*.csv")):
        assert file.read_bytes() == (tmp_path / "b" / file.name).read_bytes(), file.name


def test_subtree_run_uses_only_what_the_rest_left(tmp_path):
    """A station's re-run holds the rest of the network at the stored whole run: F01's ¥600
    spent on the other station's red household stays spent, so ¥300 is all there is."""
    store = RunStore(f"sqlite:///{tmp_path / 'runs.sqlite'}")
    scenario = load_scenario(CLEAN)
    whole = run_allocation(scenario, store=store)
    part = run_allocation(scenario, centre="D01S01T02", store=store)
    assert part.info["held_run"] == whole.info["run_id"]
    assert set(part.result.need_served["need_id"]) == {"N004", "N005"}
    assert _served(part, "N005") == 300
    funds = part.result.fund_use.set_index("fund_id")
    assert funds.loc["F01", "budget"] == 300


def test_a_failed_save_leaves_the_store_as_it_was(tmp_path):
    """A run whose tables cannot be written is not recorded, and earlier runs are intact."""
    store = RunStore(f"sqlite:///{tmp_path / 'runs.sqlite'}")
    run = run_allocation(load_scenario(CLEAN), store=store)
    bad = dict(run.tables, broken=pd.DataFrame({"x": [object()]}))
    with pytest.raises(Exception):  # noqa: B017 - any failure to serialise will do
        store.save(run.info, bad)
    assert list(store.list()["run_id"]) == [run.info["run_id"]]
    again = store.load(run.info["run_id"])
    pd.testing.assert_frame_equal(again.tables["allocations"], run.allocations)


def test_ancestors_of_unknown_or_missing_centres_are_empty():
    h = load_scenario(CLEAN).hierarchy
    station = h.path.index[h.path["street"] != ""][-1]
    got = h.ancestor(pd.Series([station, "nowhere", None, station]), "street")
    assert got.tolist() == [h.path.loc[station, "street"], "", "", h.path.loc[station, "street"]]


def test_positions_of_ids_and_a_missing_one():
    """Ids are found by row; a missing id raises rather than reading the last row."""
    from wulian.optimizer.allocation import positions

    column = pd.Series(["N1", "N2", "N3"])
    assert positions(pd.Series(["N3", "N1"]), column).tolist() == [2, 0]
    with pytest.raises(KeyError):
        positions(["N2", "N9"], column)
