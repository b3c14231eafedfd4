"""Early warning and service performance (issue 16): each rule made to fire and then to clear
on weeks played in a register, its numbers checked from the register; the performance tables
recomputed independently from the task events."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from wulian.api.cli import main
from wulian.demand.policy import Policy
from wulian.planning import alerts, cycle, performance
from wulian.planning.generate import generate_scenario
from wulian.planning.register import Actor, Register
from wulian.planning.scenario import Scenario
from wulian.planning.simulate import simulate
from wulian.planning.store import RunStore

W1, W2, W3 = "2026-W49", "2026-W50", "2026-W51"
LATE = "2027-W06"  # weeks after the scenario's visits: households with short cycles are due


def _policy(**rules) -> Policy:
    data = Policy.load().to_dict()
    for name, values in rules.items():
        data["alerts"][name].update(values)
    return Policy.from_dict(data)


@pytest.fixture
def make(tmp_path):
    opened = []

    def make(policy: Policy | None = None, seed: int = 0) -> Register:
        scenario = Scenario.from_tables(generate_scenario("tiny", seed), policy)
        register = Register(RunStore(f"sqlite:///{tmp_path / f'a{len(opened)}.sqlite'}"),
                            Actor("tester"), scenario.policy)
        register.import_scenario(scenario)
        opened.append(register)
        return register

    yield make
    for register in opened:
        register.engine.dispose()


def _answer_all(register: Register, week: str, status: str, reason: str = "") -> None:
    tasks = cycle.tasks(register, week)
    cycle.record_answers(register, [cycle.Answer(t, status, reason=reason)
                                    for t in tasks["task_id"]])


def _open(register: Register, rule: str) -> pd.DataFrame:
    return alerts.alerts(register, rules=[rule])


def _state(register: Register, alert_id: str) -> str:
    frame = alerts.alerts(register, states=alerts.STATES)
    return frame.set_index("alert_id").at[alert_id, "state"]


def test_monitoring_overdue_fires_from_history_and_clears_with_a_visit(make):
    register = make()
    cycle.open_week(register, LATE)  # (alerts are evaluated at a week opened)
    alerts.evaluate(register, LATE)
    found = _open(register, "monitoring_overdue")
    assert len(found)
    cycle_weeks = register.policy.monitoring_weeks
    history = register.table("history")
    last = history.groupby("household_id")["week"].max()
    for row in found.itertuples():
        numbers = json.loads(row.numbers)
        when = last.get(row.subject_id)
        assert numbers["last_visit"] == when
        waited = None if when is None else alerts.weeks_between(when, LATE)
        assert numbers["weeks_since"] == waited
        assert waited is None or waited > cycle_weeks[numbers["colour"]]
    # Every household not in the alerts was visited within its cycle.
    households = register.scenario().households.set_index("household_id")
    for hid in set(households.index) - set(found["subject_id"]):
        waited = alerts.weeks_between(last[hid], LATE)
        assert waited <= cycle_weeks[households.at[hid, "tier"]]

    # A visit recorded this week (a history row) clears it.
    hid = found["subject_id"].iat[0]
    tables = {k: v.copy() for k, v in register.scenario().tables.items()}
    volunteer = tables["volunteers"]["volunteer_id"].iat[0]
    tables["history"] = pd.concat([tables["history"], pd.DataFrame(
        {"week": [LATE], "household_id": [hid], "volunteer_id": [volunteer]})])
    register.import_scenario(Scenario.from_tables(tables, register.policy))
    result = alerts.evaluate(register, LATE)
    assert result.resolved >= 1
    assert _state(register, f"monitoring_overdue:household:{hid}") == "resolved"


def test_unmet_fires_after_weeks_carried_and_clears_when_withdrawn(make):
    register = make()
    # A red household's need with an id JSON must escape (a quote, a backslash), and one in
    # Chinese: listed as they are among its need ids.
    homes = register.scenario().households
    red = homes.loc[homes["tier"] == "red", "household_id"].iat[0]
    service = register.scenario().needs["service_id"].iat[0]
    for odd in ('N"引号\\1', "N需求2"):
        register.add_need({"need_id": odd, "household_id": red, "service_id": service,
                           "quantity": "1", "week": W1})
    for week in (W1, W2):
        cycle.open_week(register, week)
        _answer_all(register, week, "declined", "no_capacity")
        cycle.close_week(register, week)
    alerts.evaluate(register, W2)
    found = _open(register, "unmet")
    assert len(found)
    states = register.need_states().set_index("need_id")
    waits = states["state"].isin(["open", "carried"])
    colours = register.scenario().households.set_index("household_id")["tier"]
    for row in found.itertuples():
        numbers = json.loads(row.numbers)
        mine = states[(states["household_id"] == row.subject_id) & waits
                      & (states["age"] >= 2)]
        assert numbers["needs"] == len(mine) and numbers["weeks"] == mine["age"].max()
        assert numbers["need_ids"] == sorted(mine.index)[:20]  # by code point
        assert numbers["colour"] == colours[row.subject_id] and numbers["colour"] in (
            "red", "orange")
    # Households with a red or orange need waiting two weeks (allocated and declined, or never
    # allocated) are all there; the needs' ages are the weeks since they were raised.
    assert (states.loc[waits, "age"] == [
        (cycle.week_start(W2).toordinal() + 7 - cycle.week_start(w).toordinal()) // 7
        for w in states.loc[waits, "week_raised"]]).all()
    waiting = states[waits & (states["age"] >= 2)]
    assert (waiting["state"] == "carried").any()  # declined twice: carried, not only waiting
    expected = {h for h in waiting["household_id"] if colours[h] in ("red", "orange")}
    assert expected == set(found["subject_id"])
    odd = json.loads(found.set_index("subject_id").at[red, "numbers"])["need_ids"]
    assert {'N"引号\\1', "N需求2"} <= set(odd)

    hid = found["subject_id"].iat[0]
    for nid in states[(states["household_id"] == hid) & waits].index:
        register.withdraw_need(nid)
    alerts.evaluate(register, W2)
    assert _state(register, f"unmet:household:{hid}") == "resolved"


def test_colour_worse_fires_on_a_worse_assessment_and_clears_on_the_next(make):
    register = make()
    households = register.scenario().households
    hid = households.loc[households["tier"] == "green", "household_id"].iat[0]
    worst = {c: 1 for c in ("d_income", "d_education", "d_health", "d_housing", "d_assets",
                            "d_capability", "d_social")}
    register.assess({"household_id": hid, **worst}, discovered_by="visit")
    cycle.open_week(register, W1)
    alerts.evaluate(register, W1)
    row = _open(register, "colour_worse").set_index("subject_id").loc[hid]
    assert json.loads(row["numbers"])["from"] == "green"
    assert json.loads(row["numbers"])["to"] == register.colour_history(hid)["tier"].iat[-1]
    register.assess({"household_id": hid, **worst}, discovered_by="visit")  # red again
    alerts.evaluate(register, W1)
    assert _state(register, f"colour_worse:household:{hid}") == "resolved"


def test_fund_alerts_fire_from_the_ledger_and_clear(make):
    register = make()
    cycle.open_week(register, W1)
    _answer_all(register, W1, "delivered")
    cycle.close_week(register, W1)
    by_week, balances = cycle.fund_ledger(register)
    spent = by_week.groupby("fund_id")["spent"].sum()
    fid = spent.idxmax()
    assert spent[fid] > 0
    # The fund's weekly budget cut to a tenth: at the same burn it runs out within the period.
    tables = {k: v.copy() for k, v in register.scenario().tables.items()}
    funds = tables["funds"]
    weekly = float(funds.loc[funds["fund_id"] == fid, "budget"].iat[0])
    funds.loc[funds["fund_id"] == fid, "budget"] = round(weekly / 10, 2)
    register.import_scenario(Scenario.from_tables(tables, register.policy))
    alerts.evaluate(register, W1)
    row = _open(register, "fund_runout").set_index("subject_id").loc[fid]
    numbers = json.loads(row["numbers"])
    assert numbers["spent"] == pytest.approx(spent[fid], abs=0.01)
    assert numbers["projected"] > numbers["period_budget"]
    funds.loc[funds["fund_id"] == fid, "budget"] = weekly
    register.import_scenario(Scenario.from_tables(tables, register.policy))
    alerts.evaluate(register, W1)
    assert _state(register, f"fund_runout:fund:{fid}") == "resolved"

    # Under-spending: a week where everything is declined leaves money while needs wait.
    cycle.open_week(register, W2)
    _answer_all(register, W2, "declined", "no_capacity")
    cycle.close_week(register, W2)
    alerts.evaluate(register, W2)
    under = _open(register, "fund_underspend")
    assert len(under)
    _, balances = cycle.fund_ledger(register)
    balances = balances.set_index("fund_id")
    for row in under.itertuples():
        numbers = json.loads(row.numbers)
        assert numbers["spent"] == pytest.approx(balances.at[row.subject_id, "spent"], abs=0.01)
        assert numbers["spent"] < 0.5 * balances.at[row.subject_id, "accrued"]
    for nid in register.need_states(states=["open", "carried"])["need_id"]:
        register.withdraw_need(nid)  # no need waits any more
    alerts.evaluate(register, W2)
    assert _open(register, "fund_underspend").empty


def test_the_rules_over_waiting_needs_read_the_waiting_index_by_colour(make):
    """The `unmet` rule and the under-spent funds' count read ranges of the waiting needs'
    index by state and colour (a city's backlog is millions of needs, a quarter of them of the
    rule's colours): each query of the needs an evaluation sends is planned on that index."""
    register = make()
    cycle.open_week(register, W1)
    _answer_all(register, W1, "delivered")
    cycle.close_week(register, W1)
    cycle.open_week(register, W2)
    _answer_all(register, W2, "declined", "no_capacity")  # (money left: funds under-spend)
    cycle.close_week(register, W2)
    sent = []  # (read by the driver's own cursor, past SQLAlchemy's events: traced by SQLite)

    def trace(dbapi_connection, record):
        dbapi_connection.set_trace_callback(
            lambda s: sent.append(s) if "FROM need_states" in s and s.startswith("SELECT")
            else None)

    register.engine.dispose()
    sa.event.listen(register.engine, "connect", trace)
    try:
        alerts.evaluate(register, W2)
    finally:
        sa.event.remove(register.engine, "connect", trace)
        register.engine.dispose()
    assert len(_open(register, "fund_underspend"))
    assert {"json_group_array" in s for s in sent} == {True, False}  # unmet, the funds
    with register.engine.connect() as conn:
        for statement in sent:
            plan = " ".join(str(r) for r in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}"))
            assert "COVERING INDEX ix_need_states_waiting (state=? AND tier=?" in plan, plan


def test_provider_declines_fires_on_the_window_and_clears(make):
    register = make(_policy(provider_declines={"weeks": 1, "min_tasks": 2}))
    cycle.open_week(register, W1)
    tasks = cycle.tasks(register, W1)
    service = tasks[tasks["volunteer_id"] == ""]
    counts = service.groupby("provider_id").size()
    pid = counts.idxmax()
    assert counts[pid] >= 2
    cycle.record_answers(register, [
        cycle.Answer(t, "declined" if p == pid else "delivered", reason="no_capacity")
        for t, p in zip(tasks["task_id"], tasks["provider_id"], strict=True)])
    cycle.close_week(register, W1)
    alerts.evaluate(register, W1)
    found = _open(register, "provider_declines").set_index("subject_id")
    assert pid in found.index
    numbers = json.loads(found.at[pid, "numbers"])
    assert numbers["tasks"] == counts[pid] and numbers["share"] == 1.0
    cycle.open_week(register, W2)
    _answer_all(register, W2, "delivered")
    cycle.close_week(register, W2)
    alerts.evaluate(register, W2)  # the window is the last week only: all delivered
    assert _state(register, f"provider_declines:provider:{pid}") == "resolved"


def test_capacity_short_fires_when_unmet_capacity_grows_and_clears(make):
    register = make(_policy(capacity_short={"weeks": 1}))
    run = cycle.open_week(register, W1)
    short = run.run.tables["unmet"]
    short = short[short["reason"] == "capacity_exhausted"]
    assert len(short)
    needs = register.need_states().set_index("need_id")
    service = needs.loc[short["need_id"], "service_id"].value_counts().index[0]
    _answer_all(register, W1, "declined", "no_capacity")
    cycle.close_week(register, W1)
    # More of the short service is asked for: the unmet units grow next week.
    households = needs.loc[needs["service_id"] == service, "household_id"].unique()
    quantity = needs.loc[needs["service_id"] == service, "quantity"].max()
    for hid in households:
        register.add_need({"household_id": hid, "service_id": service, "quantity": quantity,
                           "urgency": 3, "week": W2})
    cycle.open_week(register, W2)
    alerts.evaluate(register, W2)
    found = _open(register, "capacity_short")
    mine = found[found["subject_id"].str.startswith(f"{service}@")]
    assert len(mine)
    numbers = json.loads(mine["numbers"].iat[0])
    assert numbers["unmet_units"][W2] > numbers["unmet_units"][W1]
    _answer_all(register, W2, "declined", "no_capacity")
    cycle.close_week(register, W2)
    for nid in register.need_states(states=["carried", "open"]).query(
            "service_id == @service")["need_id"]:
        register.withdraw_need(nid)
    cycle.open_week(register, W3)
    alerts.evaluate(register, W3)
    assert _state(register, mine["alert_id"].iat[0]) == "resolved"


def test_acknowledged_alerts_keep_who_and_resolve_by_themselves(make, tmp_path):
    register = make()
    cycle.open_week(register, LATE)
    alerts.evaluate(register, LATE)
    aid = _open(register, "monitoring_overdue")["alert_id"].iat[0]
    row = alerts.acknowledge(register, aid, "called the family")
    assert (row["state"], row["ack_by"], row["ack_note"]) == ("acknowledged", "tester",
                                                              "called the family")
    events = register.events(subject=f"alerts:{aid}")
    assert list(events["kind"]) == ["alert.open", "alert.acknowledge"]
    with pytest.raises(alerts.AlertError):
        alerts.acknowledge(register, "nope")
    url = str(register.engine.url)
    assert main(["alerts", "--store", url, "--json"]) == 0
    assert main(["alerts", "--store", url, "--ack", aid, "--note", "again"]) == 0


def test_an_evaluation_is_refused_before_the_last_evaluated_week_or_after_the_last_opened(
        make, capsys):
    """An earlier week would resolve the alerts found since (their acknowledgement lost when
    found again), a week not opened finds false alerts: both refused, nothing changed. An
    acknowledged alert still found at the next week keeps its acknowledgement."""
    register = make()
    after = "2027-W07"  # (at LATE, households with short cycles are overdue)
    cycle.open_week(register, LATE)
    assert alerts.evaluate(register).week == LATE
    aid = _open(register, "monitoring_overdue")["alert_id"].iat[0]
    alerts.acknowledge(register, aid, "周三上门")

    def stored() -> pd.DataFrame:
        return alerts.alerts(register, states=alerts.STATES)

    before, events = stored(), len(register.events())
    for week in (after, "2031-W05"):  # not opened yet
        with pytest.raises(alerts.WeekNotEvaluable) as err:
            alerts.evaluate(register, week)
        assert f"week={week}" in str(err.value) and LATE in err.value.hint_en
    url = str(register.engine.url)
    assert main(["alerts", "--store", url, "--evaluate", "--week", "2031-W05"]) != 0
    assert "week=2031-W05" in capsys.readouterr().err
    pd.testing.assert_frame_equal(stored(), before)
    assert len(register.events()) == events

    cycle.close_week(register, LATE)
    cycle.open_week(register, after)
    assert alerts.evaluate(register).week == after
    row = stored().set_index("alert_id").loc[aid]  # (no visit was made: still overdue)
    assert (row["state"], row["ack_by"], row["ack_note"], row["last_week"]) == (
        "acknowledged", "tester", "周三上门", after)
    before = stored()
    with pytest.raises(alerts.WeekNotEvaluable) as err:
        alerts.evaluate(register, LATE)  # the week before: would resolve what after found
    assert err.value.message_en.startswith(f"week={LATE} is before the week last evaluated")
    pd.testing.assert_frame_equal(stored(), before)
    # A close behind the latest week evaluated (another scope ran ahead) evaluates at it.
    assert alerts.evaluate(register, LATE, after_close=True).week == after


def test_performance_agrees_with_the_task_events(make, tmp_path):
    register = make(seed=2)
    simulate(register, 3, seed=4)
    tables = performance.performance(register, "provider")
    # The tasks' outcomes, rebuilt from the audit trail alone: each task's status is the last
    # status an event gave it.
    events = register.events()
    status, units, provider, planned = {}, {}, {}, {}
    for kind, subject, after in zip(events["kind"], events["subject"], events["after"],
                                    strict=True):
        if not subject.startswith("tasks:"):
            continue
        tid, after = subject[6:], json.loads(after) if after else {}
        if kind == "task.add":
            provider[tid], planned[tid] = after["provider_id"], after["units"]
            status[tid], units[tid] = "planned", 0.0
        if "status" in after:
            status[tid] = after["status"]
        if "units_delivered" in after:
            units[tid] = after["units_delivered"]
    frame = pd.DataFrame({"provider": provider, "status": status, "units": units,
                          "planned": planned})
    frame.loc[frame["status"] != "delivered", "units"] = 0.0
    expected = frame.groupby("provider").agg(
        tasks=("status", "size"),
        declined=("status", lambda s: int((s == "declined").sum())),
        delivered=("status", lambda s: int((s == "delivered").sum())),
        not_delivered=("status", lambda s: int((s == "not_delivered").sum())),
        units_planned=("planned", "sum"), units_delivered=("units", "sum"))
    got = tables["by_provider"].set_index("provider")[list(expected.columns)]
    assert np.allclose(got.sort_index().to_numpy(float), expected.sort_index().to_numpy(float),
                       atol=1e-3)
    # Fill rate by week and colour never above what was planned, and between 0 and 1.
    fill = tables["fill_rate"]
    assert ((fill["fill_rate"] >= 0) & (fill["fill_rate"] <= fill["planned_rate"] + 1e-9)).all()
    assert set(fill["week"]) == {W1, W2, W3}
    # The report workbook: bilingual headers, percentages and money formatted.
    path = performance.report(tables, tmp_path / "report.xlsx", "test")
    from openpyxl import load_workbook

    wb = load_workbook(path)
    ws = wb["满足率 fill rate"]
    header = [c.value for c in ws[1]]
    assert "满足率 fill rate" in header
    col = header.index("满足率 fill rate") + 1
    assert ws.cell(2, col).number_format == "0.0%"
    assert ws.freeze_panes == "A2"
    url = str(register.engine.url)
    assert main(["performance", "--store", url, "--by", "street", "--weeks",
                 f"{W1}:{W2}", "--json"]) == 0
    assert main(["performance", "--store", url, "--weeks", "bad"]) == 2
    with register.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar() > 0
