"""Service performance from stored facts (issue 16): a closed week's tasks are summed once
when it closes (planning/performance.py), and every table read from those facts equals the one
computed from the tasks themselves — for every grouping, range of weeks and coordinator's
fence, with weeks still open counted from their live tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from wulian.contract.hierarchy import Hierarchy
from wulian.planning import cycle, performance
from wulian.planning.generate import generate_scenario
from wulian.planning.register import Actor, Register
from wulian.planning.scenario import Scenario
from wulian.planning.simulate import simulate
from wulian.planning.store import RunStore

W1, W2, W3, W4 = "2026-W49", "2026-W50", "2026-W51", "2026-W52"
FACT_TABLES = (performance.FACT_WEEKS, performance.OUTCOMES, performance.FILLS,
               performance.REACHED, performance.SHORTFALLS)


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """Three weeks played and closed, and a fourth open with half its tasks answered."""
    path = tmp_path_factory.mktemp("perf") / "played.sqlite"
    scenario = Scenario.from_tables(generate_scenario("tiny", 3))
    register = Register(RunStore(f"sqlite:///{path}"), Actor("tester"), scenario.policy)
    register.import_scenario(scenario)
    simulate(register, 3, seed=5, first=W1, alerts=False)
    cycle.open_week(register, W4)
    tasks = cycle.tasks(register, W4)
    answers = [cycle.Answer(t, "delivered", str(u), "2026-12-23") if i % 3 == 0 else
               cycle.Answer(t, "declined", reason="no_capacity") if i % 3 == 1 else None
               for i, (t, u) in enumerate(zip(tasks["task_id"], tasks["units"], strict=True))]
    cycle.record_answers(register, [a for a in answers if a is not None])
    yield register
    register.engine.dispose()


def _tables_from_tasks(register: Register, by: str, first, last, stations):
    """Every table computed from the tasks alone: facts ignored for the call."""
    with register.engine.begin() as conn:
        kept = conn.execute(sa.select(performance.FACT_WEEKS)).mappings().all()
        conn.execute(performance.FACT_WEEKS.delete())
    try:
        return performance.performance(register, by, first, last, stations)
    finally:
        with register.engine.begin() as conn:
            conn.execute(performance.FACT_WEEKS.insert(), [dict(r) for r in kept])


def _same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        left, right = a[name].reset_index(drop=True), b[name].reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right, check_dtype=False, check_exact=False,
                                      rtol=1e-9, atol=1e-6, obj=name)


def test_closing_a_week_stores_its_facts(played):
    with played.engine.connect() as conn:
        stored = {tuple(r) for r in conn.execute(sa.select(performance.FACT_WEEKS.c.week,
                                                           performance.FACT_WEEKS.c.centre))}
        outcomes = pd.read_sql(sa.select(performance.OUTCOMES), conn)
    assert stored == {(w, cycle.WHOLE) for w in (W1, W2, W3)}  # not the open W4
    # Each grouping sums every task of the week once (funds: the tasks paid by a fund).
    tasks = cycle.tasks(played)
    for week in (W1, W2, W3):
        of_week = tasks[tasks["week"] == week]
        sums = outcomes[outcomes["week"] == week].groupby("grouping")["tasks"].sum()
        for by in ("provider", "linkage", "street", "colour"):
            assert sums[by] == len(of_week)
        assert sums["fund"] == int((of_week["fund_id"] != "").sum())
        assert outcomes.loc[outcomes["week"] == week, "spent"].sum() / 5 == pytest.approx(
            cycle.delivered_cost(of_week).sum())


@pytest.mark.parametrize("by", sorted(performance.GROUPS))
def test_tables_from_facts_equal_tables_from_the_tasks(played, by):
    centres = played.table("centres")
    street = centres.loc[centres["level"] == "street", "centre_id"].iloc[0]
    one_street = set(Hierarchy.from_centres(centres).subtree(street))
    station = sorted(centres.loc[centres["level"] == "station", "centre_id"])[0]
    for first, last in ((None, None), (W2, W4), (W2, W2), (W4, W4)):
        for stations in (None, one_street, {station}):
            got = performance.performance(played, by, first, last, stations)
            _same(got, _tables_from_tasks(played, by, first, last, stations))
    # A fence around every station is the whole network, whichever way each is computed.
    everything = set(centres["centre_id"])
    _same(performance.performance(played, by, None, None, everything),
          performance.performance(played, by))


def test_an_open_week_counts_live_and_reads_the_same_once_closed(tmp_path):
    scenario = Scenario.from_tables(generate_scenario("tiny", 1))
    register = Register(RunStore(f"sqlite:///{tmp_path / 'r.sqlite'}"), Actor("tester"),
                        scenario.policy)
    register.import_scenario(scenario)
    simulate(register, 1, seed=2, first=W1, alerts=False)
    cycle.open_week(register, W2)
    tasks = cycle.tasks(register, W2)
    cycle.record_answers(register, [cycle.Answer(t, "delivered", str(u), "2026-12-09")
                                    for t, u in zip(tasks["task_id"], tasks["units"],
                                                    strict=True)])
    before = performance.performance(register, "colour")
    assert W2 in set(before["fill_rate"]["week"])
    cycle.close_week(register, W2)
    _same(before, performance.performance(register, "colour"))
    register.engine.dispose()


def test_median_days_is_the_median_of_the_delivered_tasks(played):
    tasks = performance.task_table(played)
    done = tasks[tasks["status"] == "delivered"]
    expected = done.groupby("provider_id")["days"].median()
    got = performance.performance(played, "provider")["by_provider"].set_index("provider")
    assert len(expected) > 3 and done["days"].nunique() > 1
    pd.testing.assert_series_equal(got["median_days"].reindex(expected.index),
                                   expected.rename("median_days"), check_names=False,
                                   check_index_type=False)


def test_the_fact_tables_are_the_ones_the_migration_made(played):
    inspector = sa.inspect(played.engine)
    for table in FACT_TABLES:
        assert {c["name"] for c in inspector.get_columns(table.name)} == \
            {c.name for c in table.columns}
    assert "ix_tasks_station_id" in {i["name"] for i in inspector.get_indexes("tasks")}


def test_weeks_closed_before_the_facts_get_them_at_upgrade_and_at_the_next_close(tmp_path):
    """A store upgraded to revision 0004 has closed weeks without facts: they are read from
    their tasks until ``wulian db upgrade`` (or the next week's close) keeps them."""
    from wulian.api.cli import main

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    scenario = Scenario.from_tables(generate_scenario("tiny", 2))
    register = Register(RunStore(url), Actor("tester"), scenario.policy)
    register.import_scenario(scenario)
    simulate(register, 2, seed=1, first=W1, alerts=False)
    expected = performance.performance(register, "fund")

    def forget() -> None:
        with register.engine.begin() as conn:
            for table in FACT_TABLES:
                conn.execute(table.delete())

    def kept() -> set[str]:
        with register.engine.connect() as conn:
            return set(conn.execute(sa.select(performance.FACT_WEEKS.c.week)).scalars())

    forget()
    _same(expected, performance.performance(register, "fund"))  # read from the tasks
    assert main(["db", "upgrade", "--store", url]) == 0
    assert kept() == {W1, W2}
    _same(expected, performance.performance(register, "fund"))
    forget()
    simulate(register, 1, seed=1, alerts=False)  # plays and closes W3
    assert kept() == {W1, W2, W3}
    register.engine.dispose()


def test_fill_rate_recomputed_need_by_need(played):
    """The fill rate by week and colour, recomputed from each week's run (every need it was
    given, its household's colour from the register) and the tasks' answers."""
    needs = played.need_states().set_index("need_id")["household_id"]
    tasks = cycle.tasks(played)
    rows = []
    for week, run_id in cycle.weeks(played)[["week", "run_id"]].itertuples(index=False):
        with played.engine.connect() as conn:
            runs = {n: played.store.table_in(conn, int(run_id), n)
                    for n in ("allocations", "unmet", "plans")}
        owed = pd.concat([runs["allocations"], runs["unmet"]]).groupby("need_id")["units"].sum()
        colour = runs["plans"].set_index("household_id")["tier"]
        of_week = tasks[(tasks["week"] == week) & (tasks["need_id"] != "")]
        planned = of_week.groupby("need_id")["units"].sum()
        done = of_week[of_week["status"] == "delivered"].groupby("need_id")[
            "units_delivered"].sum()
        for need, units in owed.items():
            rows.append({"week": week, "tier": colour[needs[need]], "needs": 1,
                         "planned": min(planned.get(need, 0.0) / units, 1.0),
                         "delivered": min(done.get(need, 0.0) / units, 1.0)})
    expected = pd.DataFrame(rows).groupby(["week", "tier"]).sum()
    got = performance.performance(played, "colour")["fill_rate"].set_index(["week", "tier"])
    assert len(expected) >= 8
    pd.testing.assert_frame_equal(got[["needs", "planned", "delivered"]].sort_index(),
                                  expected.sort_index(), check_dtype=False, atol=1e-4)


def test_alerts_find_the_same_from_facts_as_from_the_tasks(played):
    """The rules that read recent weeks (provider declines, capacity short) find the same
    conditions from the closed weeks' facts as from their tasks and runs, and the funds'
    balances (spent from the facts, outstanding from the open week) are the same."""
    from wulian.demand.policy import Policy
    from wulian.planning import alerts

    data = Policy.load().to_dict()
    data["alerts"]["provider_declines"].update({"share": 0.05, "min_tasks": 1})
    data["alerts"]["capacity_short"].update({"weeks": 1})
    register = Register(played.store, Actor("tester"), Policy.from_dict(data))

    def found() -> list[tuple]:
        found = alerts.find(register, W4)
        return sorted(zip(found["alert_id"], found["numbers"], strict=True))

    def balances() -> pd.DataFrame:
        with played.engine.connect() as conn:
            return cycle.fund_balances(conn, played.table("funds", conn), W4,
                                       played.policy.cycle.fund_period_weeks)

    with_facts, money = found(), balances()
    rules = {a.split(":")[0] for a, _ in with_facts}
    assert {"provider_declines", "capacity_short"} <= rules, rules
    assert money["spent"].sum() > 0 and money["outstanding"].sum() > 0
    with played.engine.begin() as conn:
        kept = [dict(r) for r in conn.execute(sa.select(performance.FACT_WEEKS)).mappings()]
        conn.execute(performance.FACT_WEEKS.delete())
        conn.execute(performance.SHORTFALLS.delete())
        conn.execute(performance.OUTCOMES.delete())
    try:
        assert found() == with_facts
        pd.testing.assert_frame_equal(balances(), money, check_exact=False, atol=1e-6)
    finally:  # the module's register gets its facts again for the other tests
        assert kept
        with played.engine.begin() as conn:
            conn.execute(performance.FACT_WEEKS.delete())
            for table in FACT_TABLES[1:]:
                conn.execute(table.delete())
            performance.store_missing_facts(played, conn, "2026-12-31T00:00:00")


def test_shortfalls_kept_with_a_week_are_those_its_unmet_table_gives(played):
    """A week's units short of capacity, kept with its run when it was opened, are the ones
    found again from the run's unmet table and the register's needs (as for a run kept before
    they were): per service and street, the same units."""
    from wulian.planning.store import RUN_TABLES

    with played.engine.connect() as conn:
        trans = conn.begin()
        runs = conn.execute(sa.select(cycle.WEEKS.c.week, cycle.WEEKS.c.run_id)).all()
        kept = {week: performance.shortfalls(played, conn, week, run_id)
                for week, run_id in runs}
        conn.execute(RUN_TABLES.delete().where(RUN_TABLES.c.name == "shortfalls"))
        found = {week: performance.shortfalls(played, conn, week, run_id)
                 for week, run_id in runs}
        trans.rollback()
    assert len(runs) == 4 and sum(len(k) for k in kept.values()) > 0
    for week in kept:
        key = ["service_id", "street_id"]
        a = kept[week].sort_values(key).reset_index(drop=True)
        b = found[week].sort_values(key).reset_index(drop=True)
        assert a[key].astype(str).equals(b[key].astype(str)), week
        assert np.allclose(a["units"].astype(float), b["units"].astype(float)), week


@pytest.mark.parametrize("by", sorted(performance.GROUPS))
def test_shares_recomputed_from_the_tasks_add_no_units_together(played, by):
    """Each group's shares from its tasks alone: tasks delivered of tasks sent, money spent of
    money planned — and no column sums yuan, items and hours together (session 19: the share
    was units delivered ÷ units planned, a cash grant's yuan outweighing every hour)."""
    tasks = performance.task_table(played)
    if by == "fund":
        tasks = tasks[tasks["fund_id"] != ""]
    per = tasks.groupby(performance.GROUPS[by])
    planned = per["cost"].sum()
    expected = pd.DataFrame({
        "delivered_share": per["status"].apply(lambda s: float((s == "delivered").mean())),
        "spent_share": per["spent"].sum() / planned.where(planned > 0)})
    got = performance.performance(played, by)[f"by_{by}"].set_index(by)
    assert not {"units_planned", "units_delivered"} & set(got.columns)
    assert len(expected) > 1 and expected["delivered_share"].between(0.01, 0.99).any()
    pd.testing.assert_frame_equal(got[list(expected.columns)].reindex(expected.index),
                                  expected, check_names=False, check_index_type=False,
                                  check_exact=False, atol=5e-4)


def test_tasks_recalled_with_a_withdrawn_need_count_nowhere(played):
    tasks = performance.task_table(played)
    recalled = np.zeros(len(tasks), bool)
    recalled[::7] = True
    withdrawn = tasks.assign(status=np.where(recalled, "withdrawn", tasks["status"]))
    for by in performance.GROUPS:
        _same({by: performance.by_group(withdrawn, by)},
              {by: performance.by_group(tasks[~recalled], by)})


def test_counting_a_unit_otherwise_changes_no_figure(played):
    """Yuan counted in fen (×100) change nothing a group shows: its figures are tasks, money
    and shares, none a sum of units of different kinds."""
    tasks = performance.task_table(played)
    services = played.table("services").set_index("service_id")["unit"]
    cash = tasks["service_id"].map(services).eq("yuan").to_numpy()
    assert cash.any() and (~cash & (tasks["units"] > 0).to_numpy()).any()
    in_fen = tasks.assign(units=np.where(cash, tasks["units"] * 100, tasks["units"]),
                          units_delivered=np.where(cash, tasks["units_delivered"] * 100,
                                                   tasks["units_delivered"]))
    for by in performance.GROUPS:
        _same({by: performance.by_group(tasks, by)}, {by: performance.by_group(in_fen, by)})


def test_the_report_labels_and_formats_each_column_by_what_it_counts(played, tmp_path):
    """The workbook (``GET /v1/performance?format=xlsx``, ``wulian performance --report``, the
    app's download): needs and visits are counts, not money; every column's heading says what
    it counts, and money is formatted as money exactly where the heading says money."""
    import openpyxl

    from wulian.planning.workbook import DECIMAL, MONEY, PERCENT, WHOLE

    path = performance.report(performance.performance(played, "street"), tmp_path / "r.xlsx",
                              "test")
    book = openpyxl.load_workbook(path)
    seen: dict[str, dict[str, str]] = {}
    for ws in book.worksheets[1:]:
        heads = [c.value for c in ws[1]]
        for j, head in enumerate(heads, start=1):
            formats = {ws.cell(r, j).number_format for r in range(2, ws.max_row + 1)
                       if isinstance(ws.cell(r, j).value, int | float)}
            if formats:
                assert len(formats) == 1, (ws.title, head, formats)
                seen.setdefault(ws.title, {})[head] = formats.pop()
    assert seen["满足率 fill rate"] == {
        "需求数 needs": WHOLE, "计划满足的需求 needs planned": DECIMAL,
        "已满足的需求 needs delivered": DECIMAL, "计划满足率 planned rate": PERCENT,
        "满足率 fill rate": PERCENT}
    assert seen["巡查 monitoring"] == {
        "计划走访 visits planned": WHOLE, "已走访 visits made": WHOLE, "按时率 on time": PERCENT}
    assert seen["惠及 reach"] == {"已支出 money spent": MONEY, "惠及户数 households": WHOLE,
                                  "每万元惠及户数 households per ¥10,000": DECIMAL}
    street = seen["按街镇 by street"]
    assert {h: f for h, f in street.items() if f != WHOLE} == {
        "完成天数中位数 median days to delivery": DECIMAL,
        "计划金额 money planned": MONEY, "承诺金额 money committed": MONEY,
        "已支出 money spent": MONEY, "任务完成率 share of tasks delivered": PERCENT,
        "计划金额支出率 share of money planned spent": PERCENT}
    assert {"任务数 tasks", "完成 delivered"} <= set(street)
    for sheet, columns in seen.items():
        for head, number_format in columns.items():
            money = "money" in head and "share" not in head
            assert (number_format == MONEY) == money, (sheet, head)
            assert "_" not in head, (sheet, head)  # a heading in words, both languages
