"""The app on the weekly cycle's register, through ``streamlit.testing.v1.AppTest``: the inbox
(alerts acknowledged, tasks answered, visits recorded — each checked in the register after),
service performance and the fund ledger, in Chinese and English; and the text table."""

from __future__ import annotations

import ast
import json
import shutil
import string
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from tests.conftest import signed_in
from wulian.contract import vocab
from wulian.demand.policy import Policy
from wulian.planning import alerts, cycle, fmt
from wulian.planning import performance as perf
from wulian.planning.budget import BudgetLab
from wulian.planning.generate import generate_scenario
from wulian.planning.register import Actor, Register
from wulian.planning.scenario import Scenario
from wulian.planning.simulate import simulate
from wulian.planning.store import RunStore
from wulian.ui import text
from wulian.ui.alert_text import alert_words
from wulian.ui.register_data import report_workbook
from wulian.ui.signin import PRINCIPAL_KEY

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "ui" / "app.py"
TIMEOUT = 120
ZH = {"red": "红色", "orange": "橙色", "yellow": "黄色", "green": "绿色"}


# ----------------------------------------------------------------------------- the register


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> Path:
    """A register played for four weeks (tiny preset, seed 0), its alerts evaluated, and a
    fifth week opened and left open: a SQLite file each test copies."""
    path = tmp_path_factory.mktemp("register") / "played.sqlite"
    register = Register(RunStore(f"sqlite:///{path}"), Actor("t", "simulator"))
    register.import_scenario(Scenario.from_tables(generate_scenario("tiny", 0)))
    weeks = simulate(register, 4, seed=0)
    alerts.evaluate(register)
    cycle.open_week(register, cycle.next_week(weeks[-1].week))
    register.engine.dispose()
    return path


@pytest.fixture
def register(played, tmp_path, monkeypatch) -> Register:
    """The played register, copied for this test; the app reads it ($WULIAN_STORE)."""
    path = tmp_path / "register.sqlite"
    shutil.copy(played, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("WULIAN_STORE", url)
    return Register(RunStore(url), Actor("test", "cli"))


def app(lang: str | None = None, page: str | None = None) -> AppTest:
    """The app after its first run (and on ``page`` when given), in ``lang``."""
    at = signed_in(AppTest.from_file(str(APP), default_timeout=TIMEOUT))
    at.session_state["scenario_choice"] = "tiny"
    if lang:
        at.session_state["lang"] = lang
    ok(at.run())
    if page:
        ok(at.switch_page(page).run())
    return at


def keyed(name: str, lang: str | None) -> str:
    """A choice widget's key in ``lang``: it follows the language (``ui.common.by_language``:
    the plain key in Chinese, ``KEY.en`` in English)."""
    return name if lang in (None, "zh") else f"{name}.{lang}"


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


# Each table by the columns only it has (and those it has not).
TABLES = {
    "alerts_table": (("severity", "words"), ("ack_by",)),
    "alerts_acknowledged": (("severity", "ack_by"), ()),
    "tasks_table": (("task_id", "service"), ()),
    "visits_table": (("task_id", "slot"), ()),
    "answer_problems": (("code", "message"), ()),
    "perf_reach_table": (("households_per_10k",), ()),
    "perf_fill_table": (("needs_planned", "needs_delivered"), ("planned",)),
    "perf_monitoring_table": (("visits_planned", "visits_made"), ("planned",)),
    "ledger_table": (("balance", "burn"), ()),
    "ledger_marginal_table": (("points_now",), ()),
}


def table(at: AppTest, name: str, lang: str = "zh", *, by: str | None = None) -> pd.DataFrame:
    """The one table on the page with the headings (in ``lang``) that identify ``name``; the
    performance group table by its group's heading and "tasks"."""
    has, lacks = ((by, "tasks"), ()) if by else TABLES[name]
    has = {text.column(c, lang) for c in has}
    lacks = {text.column(c, lang) for c in lacks}
    found = [d.value for d in at.dataframe
             if has <= set(d.value.columns) and not lacks & set(d.value.columns)]
    assert len(found) == 1, f"{len(found)} tables {name!r} with headings {has}"
    return found[0]


def chart_data(at: AppTest, column: str) -> list[pd.DataFrame]:
    """The data of every chart on the page whose data has ``column``."""
    found = []
    for chart in at.get("vega_lite_chart"):
        for dataset in chart.proto.datasets:
            data = pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()
            if column in data.columns:
                found.append(data)
    return found


def live(register: Register) -> pd.DataFrame:
    """The open weeks' tasks still awaiting an answer, by id."""
    open_weeks = cycle.weeks(register).query("state == 'open'")["week"]
    frame = cycle.tasks(register)
    return frame[frame["week"].isin(open_weeks) & frame["status"].isin(["planned", "accepted"])]


def texts(at: AppTest, kind: str) -> list[str]:
    return [e.value for e in at.get(kind)]


# ----------------------------------------------------------------------------- inbox


def test_the_app_opens_on_the_inbox_with_the_registers_alerts_tasks_and_visits(register):
    """With a register in the store the app opens on the inbox: the open alerts (words from
    their numbers), the open week's tasks awaiting an answer and the monitoring visits due are
    the register's, row for row."""
    at = app()
    assert at.title[0].value == "收件箱 · 本周待办"
    stored = alerts.alerts(register, states=("open",))
    shown = table(at, "alerts_table")
    assert list(shown["对象"]) == list(stored["subject_id"])
    assert list(shown["预警"]) == list(stored["title_zh"])
    unmet = stored[stored["rule"] == "unmet"].iloc[0]
    numbers = json.loads(unmet["numbers"])
    assert shown.loc[shown["对象"] == unmet["subject_id"], "情况"].iloc[0] == (
        f"{ZH[numbers['colour']]}家庭有 {numbers['needs']} 项需求连续 {numbers['weeks']} 周未满足")
    waiting = live(register)
    monitoring = waiting["kind"].isin(cycle.MONITORING_KINDS)
    assert list(table(at, "tasks_table")["任务"]) == list(waiting.loc[~monitoring, "task_id"])
    assert list(table(at, "visits_table")["任务"]) == list(waiting.loc[monitoring, "task_id"])
    assert f"待回复的任务 · {(~monitoring).sum()}" in texts(at, "subheader")


def test_the_centre_picker_fences_the_inbox_to_a_streets_subtree(register):
    """Picking a street shows only the alerts, tasks and visits of its subtree (the street and
    its stations); its stations are the register's."""
    at = app()
    ok(at.selectbox(key="reg_street").set_value("D04S02").run())
    centres = register.table("centres")
    stations = set(centres.loc[centres["parent_id"] == "D04S02", "centre_id"])
    inside = stations | {"D04S02"}
    stored = alerts.alerts(register, centres=inside, states=("open",))
    assert len(stored) < len(alerts.alerts(register, states=("open",)))
    assert list(table(at, "alerts_table")["对象"]) == list(stored["subject_id"])
    waiting = live(register)
    waiting = waiting[waiting["station_id"].isin(stations)]
    monitoring = waiting["kind"].isin(cycle.MONITORING_KINDS)
    assert list(table(at, "tasks_table")["任务"]) == list(waiting.loc[~monitoring, "task_id"])
    assert list(table(at, "visits_table")["任务"]) == list(waiting.loc[monitoring, "task_id"])
    ok(at.selectbox(key="reg_station").set_value(sorted(stations)[0]).run())
    station = set(table(at, "tasks_table")["站点"]) | set(table(at, "visits_table")["站点"])
    assert station == set(centres.loc[centres["centre_id"] == sorted(stations)[0], "name"])


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_acknowledging_an_alert_from_the_inbox(register, lang):
    """Acknowledging an alert with a note stores who (the signed-in token: id, role and label,
    then the name typed in the sidebar; via the app), when and the note; the alert leaves the
    open list for the acknowledged one."""
    at = app(lang)
    token = at.session_state[PRINCIPAL_KEY].token_id
    ok(at.text_input(key="actor_name").set_value("李协调").run())
    target = alerts.alerts(register, states=("open",)).iloc[2]["alert_id"]
    at.selectbox(key=keyed("ack_alert", lang)).set_value(target)
    at.text_input(key="ack_note").set_value("已联系街道,下周加派志愿者")
    ok(at.button(key="ack_submit").click().run())
    row = alerts.alerts(register, states=("acknowledged",)).set_index("alert_id").loc[target]
    who = f"token:{token} planner (test) · 记录人 李协调"  # conftest's token: label "test"
    assert row["ack_by"] == who and row["ack_note"] == "已联系街道,下周加派志愿者"
    event = register.events(subject=f"alerts:{target}", kind="alert.acknowledge").iloc[-1]
    assert (event["actor"], event["via"]) == (who, "app")
    assert target not in set(alerts.alerts(register, states=("open",))["alert_id"])
    done = {"zh": f"已确认预警 {target}", "en": f"Alert {target} acknowledged"}[lang]
    assert done in texts(at, "success")
    subject = row["subject_id"]
    about = text.column("subject_id", lang)
    assert subject not in set(table(at, "alerts_table", lang)[about])
    assert subject in set(table(at, "alerts_acknowledged", lang)[about])


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_recording_a_task_answer_from_the_inbox(register, lang):
    """A service task answered delivered in part, with a date of its week, is stored as such
    (through record_answers, by the app) and leaves the tasks awaiting an answer."""
    at = app(lang)
    waiting = live(register)
    task = waiting[(waiting["kind"] == "service") & (waiting["units"] >= 2)].iloc[0]
    monday, _sunday = cycle.week_days(task["week"])
    wednesday = monday + timedelta(days=2)
    ok(at.selectbox(key=keyed("answer_task", lang)).set_value(task["task_id"]).run())
    at.selectbox(key=keyed("answer_status", lang)).set_value("delivered")
    at.text_input(key="answer_units").set_value("1")
    at.date_input(key="answer_date").set_value(wednesday)
    ok(at.button(key="answer_submit").click().run())
    stored = cycle.tasks(register).set_index("task_id").loc[task["task_id"]]
    assert (stored["status"], stored["units_delivered"], stored["answered_on"]) == (
        "delivered", 1.0, wednesday.isoformat())
    event = register.events(subject=f"tasks:{task['task_id']}", kind="task.answer").iloc[-1]
    assert event["via"] == "app"
    assert task["task_id"] not in set(table(at, "tasks_table", lang)[text.column("task_id",
                                                                                 lang)])
    status = text.code("task_status", "delivered", lang)
    done = {"zh": f"已记录任务 {task['task_id']} 的答复:{status}",
            "en": f"Answer to {task['task_id']} recorded: {status}"}[lang]
    assert done in texts(at, "success")


def test_a_refused_answer_lists_every_problem_in_chinese_and_english(register):
    """Units that are not a number are refused by record_answers: the page lists the problem
    in both languages (whatever the language chosen) and the register is unchanged."""
    at = app("en")
    task = live(register).query("kind == 'service'").iloc[0]
    before = cycle.tasks(register)
    ok(at.selectbox(key=keyed("answer_task", "en")).set_value(task["task_id"]).run())
    at.selectbox(key=keyed("answer_status", "en")).set_value("delivered")
    at.text_input(key="answer_units").set_value("三")
    ok(at.button(key="answer_submit").click().run())
    assert texts(at, "error") == ["Not recorded: 1 problem(s) (中文 / English)"]
    problems = table(at, "answer_problems", "en")
    assert list(problems["code"]) == ["not_a_number"]
    assert "不是数字" in problems["problem"].iloc[0] and " / not a number" in \
        problems["problem"].iloc[0]
    assert cycle.tasks(register).equals(before)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_recording_a_visit_result_from_the_inbox(register, lang):
    """A monitoring visit recorded as made, with one deprivation observed, a new need and a
    note: the visit's result is stored, the household gets a new assessment (by a visit) with
    the indicator, the need is raised and the visit leaves the list of visits due."""
    at = app(lang)
    visit = live(register).query("kind == 'monitoring'").iloc[0]
    household = visit["household_id"]
    versions = len(register.colour_history(household))
    ok(at.selectbox(key=keyed("visit_task", lang)).set_value(visit["task_id"]).run())
    at.radio(key=keyed("visit_outcome", lang)).set_value("done")
    at.selectbox(key=keyed("visit_d_health", lang)).set_value("1")
    at.text_input(key="visit_needs").set_value("meal_help:2")
    at.text_area(key="visit_note").set_value("独居,行动不便")
    ok(at.button(key="visit_submit").click().run())
    with register.engine.connect() as conn:
        result = conn.execute(sa.select(cycle.VISIT_RESULTS).where(
            cycle.VISIT_RESULTS.c.task_id == visit["task_id"])).mappings().one()
    assert (result["outcome"], json.loads(result["indicators"]), result["new_needs"],
            result["note"]) == ("done", {"d_health": "1"}, "meal_help:2", "独居,行动不便")
    history = register.colour_history(household)
    assert len(history) == versions + 1 and history.iloc[-1]["discovered_by"] == "visit"
    assert json.loads(history.iloc[-1]["indicators"])["d_health"] == 1
    raised = register.need_states().query(f"household_id == '{household}' and "
                                          "service_id == 'meal_help' and state == 'open'")
    assert list(raised["quantity"]) == [2.0]
    assert cycle.tasks(register).set_index("task_id").at[visit["task_id"], "status"] == \
        "delivered"
    assert visit["task_id"] not in set(table(at, "visits_table", lang)[text.column("task_id",
                                                                                   lang)])
    outcome = text.code("outcome", "done", lang)
    done = {"zh": f"已记录走访 {visit['task_id']}:{outcome};新需求 1 项",
            "en": f"Visit {visit['task_id']} recorded: {outcome}; 1 new need(s)"}[lang]
    assert done in texts(at, "success")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_visits_due_say_their_half_day_in_words(register, lang):
    """The visits table's slot is the half day in words (周二上午, Tue morning), not its code."""
    at = app(lang)
    slots = cycle.tasks(register).set_index("task_id")["slot"]
    shown = table(at, "visits_table", lang)
    assert len(shown) and list(shown[text.column("slot", lang)]) == [
        text.code("slot", slots[t], lang) for t in shown[text.column("task_id", lang)]]
    assert all("_" not in s for s in shown[text.column("slot", lang)])


def test_no_status_is_recorded_unless_chosen_and_a_decline_needs_a_reason(register):
    """An accepted task's answer form starts with no status: pressing the button records
    nothing (every status left is final); declined without a reason records nothing either;
    declined with a reason is recorded."""
    task_id = live(register).query("kind == 'service'").iloc[0]["task_id"]
    cycle.record_answers(register, [cycle.Answer(task_id=task_id, status="accepted")])
    at = app()
    ok(at.selectbox(key="answer_task").set_value(task_id).run())
    assert at.selectbox(key="answer_status").value == ""
    ok(at.button(key="answer_submit").click().run())
    assert texts(at, "error") == [text.say("inbox.answer.no_status")]
    assert cycle.tasks(register).set_index("task_id").at[task_id, "status"] == "accepted"
    at.selectbox(key="answer_status").set_value("declined")
    ok(at.button(key="answer_submit").click().run())
    assert texts(at, "error") == [text.say("inbox.answer.no_reason")]
    assert cycle.tasks(register).set_index("task_id").at[task_id, "status"] == "accepted"
    at.selectbox(key="answer_reason").set_value("no_capacity")
    ok(at.button(key="answer_submit").click().run())
    stored = cycle.tasks(register).set_index("task_id").loc[task_id]
    assert (stored["status"], stored["reason"]) == ("declined", "no_capacity")


def test_the_inbox_forms_keep_their_choices_across_a_language_switch(register):
    """Switching 中文 → English keeps every choice of the answer and visit forms, shown in
    English, and what is recorded is what the form shows (a visit marked missed stays
    missed; the tester's browser showed no outcome yet recorded "visited")."""
    at = app()
    waiting = live(register)
    task_id = waiting.query("kind == 'service'").iloc[1]["task_id"]
    visit_id = waiting.query("kind == 'monitoring'").iloc[0]["task_id"]
    ok(at.selectbox(key="answer_task").set_value(task_id).run())
    ok(at.selectbox(key="visit_task").set_value(visit_id).run())
    # One change, one script run, as in a browser.
    ok(at.selectbox(key="answer_status").set_value("not_delivered").run())
    ok(at.selectbox(key="answer_reason").set_value("not_reachable").run())
    ok(at.radio(key="visit_outcome").set_value("missed").run())
    ok(at.selectbox(key="visit_d_health").set_value("1").run())
    ok(at.sidebar.radio(key="lang").set_value("en").run())
    en = {name: at.selectbox(key=keyed(name, "en")) for name in
          ("answer_task", "answer_status", "answer_reason", "visit_task", "visit_d_health")}
    assert {name: box.value for name, box in en.items()} == {
        "answer_task": task_id, "answer_status": "not_delivered",
        "answer_reason": "not_reachable", "visit_task": visit_id, "visit_d_health": "1"}
    assert en["answer_status"].format_func("not_delivered") == "not delivered"
    outcome = at.radio(key=keyed("visit_outcome", "en"))
    assert outcome.value == "missed" and "missed" in outcome.options
    ok(at.button(key="visit_submit").click().run())
    ok(at.button(key="answer_submit").click().run())
    stored = cycle.tasks(register).set_index("task_id")
    assert stored.at[visit_id, "status"] == "not_delivered"
    assert (stored.at[task_id, "status"], stored.at[task_id, "reason"]) == (
        "not_delivered", "not_reachable")


def test_a_missed_visit_keeps_the_household_as_it_was(register):
    """A visit recorded as missed stores the outcome and changes no assessment."""
    at = app()
    visit = live(register).query("kind == 'monitoring'").iloc[-1]
    versions = len(register.colour_history(visit["household_id"]))
    ok(at.selectbox(key="visit_task").set_value(visit["task_id"]).run())
    at.radio(key="visit_outcome").set_value("missed")
    at.selectbox(key="visit_d_income").set_value("1")  # not applied: nobody was seen
    ok(at.button(key="visit_submit").click().run())
    assert cycle.tasks(register).set_index("task_id").at[visit["task_id"], "status"] == \
        "not_delivered"
    assert len(register.colour_history(visit["household_id"])) == versions


def test_a_visit_answered_elsewhere_before_the_press_records_nothing_for_another(register):
    """A visit task picked and filled in, then answered elsewhere before the button is
    pressed: the picker falls back to another task, and the press records nothing (before,
    it recorded a made visit for the other household)."""
    at = app()
    visits = live(register).query("kind == 'monitoring' and status == 'planned'")
    first, picked = visits["task_id"].iat[0], visits["task_id"].iat[1]
    ok(at.selectbox(key="visit_task").set_value(picked).run())
    ok(at.radio(key="visit_outcome").set_value("missed").run())
    at.text_area(key="visit_note").set_value("nobody home")
    cycle.record_answers(register, [cycle.Answer(task_id=picked, status="delivered")])
    events = len(register.events())
    ok(at.button(key="visit_submit").click().run())
    assert len(register.events()) == events
    assert cycle.tasks(register).set_index("task_id").at[first, "status"] == "planned"
    assert any("未记录" in e.value for e in at.error)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_an_empty_register_says_how_to_fill_it(tmp_path, monkeypatch, lang):
    """Without a register the app opens on the coordinator's page as before; the inbox and
    the performance page say the register is empty and how to fill it."""
    monkeypatch.setenv("WULIAN_STORE", f"sqlite:///{tmp_path / 'empty.sqlite'}")
    at = app(lang)
    assert at.title[0].value == text.say("page.coordinator", lang)
    for page in ("views/inbox.py", "views/performance.py"):
        ok(at.switch_page(page).run())
        [info] = texts(at, "info")
        assert "wulian register import" in info and "wulian simulate" in info
        assert ("登记册是空的" in info) == (lang == "zh")
        assert ("The register is empty" in info) == (lang == "en")


def test_a_store_that_cannot_be_opened_is_reported_on_the_register_pages(register, tmp_path,
                                                                         monkeypatch):
    """A store the app cannot open once signed in (the session's token is looked up in it at
    every run): the inbox says so with the store and its error, and shows nothing."""
    at = app(page="views/inbox.py")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    url = f"sqlite:///{blocked / 'runs.sqlite'}"
    monkeypatch.setenv("WULIAN_STORE", url)
    ok(at.run())
    assert len(texts(at, "error")) == 1
    assert texts(at, "error")[0].startswith(f"无法打开存储({url})")
    assert len(at.dataframe) == 0


def test_the_inbox_reads_the_register_once_until_it_changes(register, monkeypatch):
    """A rerun that changed nothing reads the change marker only (the alerts are not read
    again, the register is never validated whole); acknowledging an alert changes the marker,
    and the next run shows the change."""
    calls = []
    real = alerts.alerts
    monkeypatch.setattr(alerts, "alerts", lambda *a, **k: calls.append(1) or real(*a, **k))

    def no_scenario(self, conn=None):
        raise AssertionError("the register was validated whole")

    monkeypatch.setattr(Register, "scenario", no_scenario)
    at = app()
    ok(at.run())
    ok(at.run())
    assert len(calls) == 1
    target = alerts.alerts(register, states=("open",)).iloc[0]["alert_id"]
    calls.clear()
    at.selectbox(key="ack_alert").set_value(target)
    ok(at.button(key="ack_submit").click().run())
    assert len(calls) == 1
    assert len(table(at, "alerts_table")) == len(real(register, states=("open",)))
    assert target in set(real(register, states=("acknowledged",))["alert_id"])


def test_alert_words_read_every_rule_of_the_policy():
    """Every rule of the policy's [alerts] has its sentence in both languages, filled from the
    numbers the rule stores (no placeholder left, no rule falling back to raw JSON)."""
    numbers = {
        "monitoring_overdue": {"colour": "red", "cycle_weeks": 1, "last_visit": "2026-W40",
                               "weeks_since": 3},
        "unmet": {"colour": "orange", "needs": 2, "weeks": 3, "need_ids": ["N1", "N2"]},
        "colour_worse": {"from": "yellow", "to": "red", "assessed_on": "2026-12-21",
                         "version": 3},
        "fund_runout": {"spent": 1000.0, "weekly_burn": 250.0, "period_budget": 3000.0,
                        "projected": 4000.0, "weeks_left_in_period": 4,
                        "weeks_until_empty": 2.0},
        "fund_underspend": {"spent": 10.0, "accrued": 100.0, "share_spent": 0.1,
                            "needs_waiting": 5},
        "provider_declines": {"tasks": 7, "declined_or_not_delivered": 3, "share": 0.429,
                              "weeks": ["2026-W49", "2026-W50"]},
        "capacity_short": {"service": "nursing", "street": "D04S01",
                           "unmet_units": {"2026-W49": 3.0, "2026-W50": 7.0}},
    }
    assert set(Policy.load().alerts) == set(numbers)
    for rule, facts in numbers.items():
        for lang in ("zh", "en"):
            words = alert_words(rule, facts, lang)
            assert "{" not in words and not words.startswith("{"), (rule, lang, words)
    assert alert_words("colour_worse", numbers["colour_worse"], "en") == \
        "colour went from yellow to red (assessed 2026-12-21, version 3)"
    assert alert_words("monitoring_overdue", {**numbers["monitoring_overdue"],
                                                         "last_visit": None}, "zh") == \
        "红色家庭,每 1 周巡查一次;从未走访"
    assert alert_words("capacity_short", numbers["capacity_short"], "en",
                                  {"nursing": "home nursing"}, {"D04S01": "Anxi"}) == \
        "home nursing in Anxi: units unmet for lack of capacity grow week after week: " \
        "2026-W49 3 → 2026-W50 7"


# ----------------------------------------------------------------------------- performance


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_performance_page_draws_the_planning_layers_tables(register, lang):
    """The performance page's trend charts (weeks along the x axis) and tables are
    ``performance()``'s for the weeks, grouping and centre chosen, headed in the language."""
    at = app(lang, "views/performance.py")
    assert at.title[0].value == text.say("page.performance", lang)
    weeks = sorted(set(cycle.weeks(register)["week"]))
    expected = perf.performance(register, "provider", weeks[0], weeks[-1])
    [fill] = chart_data(at, "fill_rate")
    assert list(fill["week"]) == list(expected["fill_rate"]["week"])
    assert list(fill["fill_rate"]) == list(expected["fill_rate"]["fill_rate"])
    assert set(fill["colour_name"]) == {text.code("tier", t, lang)
                                        for t in expected["fill_rate"]["tier"]}
    [visits] = chart_data(at, "on_time")
    assert list(visits["on_time"]) == list(expected["monitoring"]["on_time"])
    shown = table(at, "", lang, by="provider")
    assert list(shown[text.column("provider", lang)]) == list(
        expected["by_provider"]["provider"])
    assert list(shown[text.column("tasks", lang)]) == list(expected["by_provider"]["tasks"])
    # The shares have no units; needs and visits are counts headed so, not money.
    assert list(shown[text.column("delivered_share", lang)]) == [
        fmt.pct(v) if pd.notna(v) else "—" for v in expected["by_provider"]["delivered_share"]]
    assert text.column("spent_share", lang) in shown.columns
    needs = table(at, "perf_fill_table", lang)[text.column("needs_planned", lang)]
    assert len(needs) == len(expected["fill_rate"]) > 0
    visits = table(at, "perf_monitoring_table", lang)[text.column("visits_planned", lang)]
    assert list(visits) == list(expected["monitoring"]["planned"])

    group_key = "perf_group" if lang == text.DEFAULT_LANGUAGE else f"perf_group.{lang}"
    ok(at.selectbox(key=group_key).set_value("colour").run())
    ok(at.select_slider(key="perf_weeks").set_value((weeks[1], weeks[-2])).run())
    ok(at.selectbox(key="reg_street").set_value("D04S01").run())
    centres = register.table("centres")
    stations = set(centres.loc[centres["parent_id"] == "D04S01", "centre_id"])
    expected = perf.performance(register, "colour", weeks[1], weeks[-2], stations)
    shown = table(at, "", lang, by="colour")
    assert list(shown[text.column("colour", lang)]) == [
        text.code("tier", t, lang) for t in expected["by_colour"]["colour"]]
    assert list(shown[text.column("spent", lang)]) == [
        fmt.yuan(v) for v in expected["by_colour"]["spent"]]
    [fill] = chart_data(at, "fill_rate")
    assert list(fill["fill_rate"]) == list(expected["fill_rate"]["fill_rate"])
    assert set(fill["week"]) == set(weeks[1:-1])
    assert len(table(at, "perf_reach_table", lang)) == len(expected["reach"])
    assert at.get("download_button")


def test_the_performance_report_is_the_planning_layers_workbook(register, tmp_path):
    """The report the download button gives is ``performance.report`` of the tables shown."""
    import openpyxl

    tables = perf.performance(register, "street")
    data = report_workbook(tables, "test")
    (tmp_path / "report.xlsx").write_bytes(data)
    book = openpyxl.load_workbook(tmp_path / "report.xlsx")
    assert book.sheetnames == ["目录 Contents", "按街镇 by street", "满足率 fill rate",
                               "巡查 monitoring", "惠及 reach"]
    sheet = book["按街镇 by street"]
    assert sheet.max_row == len(tables["by_street"]) + 1


# ----------------------------------------------------------------------------- fund ledger


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_fund_lab_shows_the_ledger_with_burn_and_projection(register, lang):
    """The fund lab opens with the register's ledger: each fund's balance as fund_ledger has
    it, its spending per week, and the projection to the period's end at that rate."""
    at = app(lang, "views/fund_lab.py")
    _by_week, balances = cycle.fund_ledger(register)
    shown = table(at, "ledger_table", lang)
    heading = {c: text.column(c, lang) for c in ("fund_id", "balance", "spent", "projected",
                                                  "weeks_left", "burn")}
    assert list(shown[heading["fund_id"]]) == list(balances["fund_id"])
    assert list(shown[heading["balance"]]) == [fmt.yuan(v) for v in balances["balance"]]
    at_week = balances["period"].iloc[0].split("–")[-1]
    year, number = (int(x) for x in at_week.split("-W"))
    length = register.policy.cycle.fund_period_weeks
    last = min((number - 1) // length * length + length, date(year, 12, 28).isocalendar()[1])
    assert set(shown[heading["weeks_left"]]) == {last - number}
    burn = balances["spent"] / balances["weeks"]
    projected = balances["spent"] + balances["outstanding"] + burn * (last - number)
    assert list(shown[heading["projected"]]) == [fmt.yuan(round(v, 2)) for v in projected]
    [spent] = chart_data(at, "spent")
    by_week, _ = cycle.fund_ledger(register)
    per_week = by_week.groupby(["fund_id", "week"], as_index=False)["spent"].sum()
    assert list(spent["spent"]) == list(per_week["spent"])


def test_fund_lab_a_yuan_now_against_an_ordinary_week(register):
    """On demand, the ledger compares each fund's marginal value of ¥10,000 now (the open
    week's needs at the fund's balance) with an ordinary week (at its weekly budget), as the
    budget lab of the week's scenario solves them."""
    at = app(page="views/fund_lab.py")
    ok(at.toggle(key="ledger_marginal").set_value(True).run())
    week = cycle.weeks(register).query("state == 'open'")["week"].max()
    with register.engine.connect() as conn:
        lab = BudgetLab.from_scenario(cycle.week_scenario(register, conn, week), week=week)
    funds = register.table("funds").set_index("fund_id")["budget"].astype(float)
    now = lab.solve(None).funds
    then = lab.solve(funds.to_dict()).funds
    shown = table(at, "ledger_marginal_table")
    assert list(shown["基金"]) == list(now["fund_id"])
    assert list(shown["现在:每万元提升(百分点)"]) == [f"{v:,.3f}" for v in now["points_per_10k"]]
    assert list(shown["平常一周:每万元提升(百分点)"]) == [f"{v:,.3f}"
                                                  for v in then["points_per_10k"]]
    assert set(shown["建议"]) <= {"现在用", "留到以后", "差不多"}


# ----------------------------------------------------------------------------- text


def _placeholders(words: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(words) if name}


def test_every_text_has_chinese_and_english_with_the_same_facts():
    """Every key of the text table (and every table heading and code word) has a Chinese and
    an English text, and both name the same facts."""
    for key, (zh, en) in text.TEXT.items():
        assert zh.strip() and en.strip(), key
        assert _placeholders(zh) == _placeholders(en), key
    for table_ in (text.COLUMNS, text.SEVERITIES, text.ALERT_STATES, text.TASK_KINDS,
                   text.GROUPS):
        for key, (zh, en) in table_.items():
            assert zh.strip() and en.strip(), key
    assert set(text.GROUPS) == set(perf.GROUPS)
    assert set(text.TASK_KINDS) == {"service", "visit", *cycle.MONITORING_KINDS}
    assert set(vocab.TASK_STATUSES) == set(vocab.TASK_NEXT)


def test_every_text_key_the_app_asks_for_is_in_the_table():
    """Every literal key passed to tr() or say() in ui/ is a key of the text table, and so is
    every key the app makes from a prefix (a typo would show a KeyError on the page)."""
    asked = set()
    for path in (ROOT / "ui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("tr", "say") \
                    and node.args and isinstance(node.args[0], ast.Constant):
                asked.add(node.args[0].value)
    assert len(asked) > 100
    assert not asked - set(text.TEXT)
    made = [f"centre.{level}" for level in ("district", "street", "station")] + \
        [f"ledger.verdict.{v}" for v in ("now", "later", "same")] + \
        [f"alert.{rule}" for rule in Policy.load().alerts] + ["alert.monitoring_overdue.never"] + \
        [f"fund.equity.{m}" for m in ("off", "floor", "deviation")] + \
        [f"app.scenario.{c}" for c in ("demo", "tiny", "upload")]
    assert not set(made) - set(text.TEXT)


def test_a_large_scope_lists_the_first_tasks_and_says_how_many_there_are(register,
                                                                         monkeypatch):
    """Past ``MAX_ROWS`` the inbox lists the first tasks and visits by id, counts them all in
    its headings and says how to narrow them down (a city's week is 500,000 tasks)."""
    from wulian.ui import register_data

    monkeypatch.setattr(register_data, "MAX_ROWS", 5)
    at = app()
    waiting = live(register)
    monitoring = waiting["kind"].isin(cycle.MONITORING_KINDS)
    assert list(table(at, "tasks_table")["任务"]) == list(waiting.loc[~monitoring, "task_id"])[:5]
    assert list(table(at, "visits_table")["任务"]) == list(waiting.loc[monitoring, "task_id"])[:5]
    assert f"待回复的任务 · {(~monitoring).sum()}" in texts(at, "subheader")
    assert f"待完成的巡查走访 · {monitoring.sum()}" in texts(at, "subheader")
    assert f"按编号列出前 5 条,共 {(~monitoring).sum()} 条;选择街镇或站点可缩小范围。" in \
        texts(at, "caption")
    assert len(table(at, "alerts_table")) == 5


def scenario_picker(at):
    """The sidebar's scenario picker (its widget key follows the language; the choice itself
    is ``scenario_choice`` in the session)."""
    found = [w for w in at.selectbox if (w.key or "").startswith("scenario_choice.picker")]
    assert len(found) <= 1
    return found[0] if found else None


def test_the_scenario_and_the_centre_are_kept_across_the_two_kinds_of_pages(register):
    """The scenario chosen on a scenario's page survives a visit to the register's pages
    (where the sidebar does not show it), and the centre picked on the inbox is the one the
    performance page opens with."""
    at = app("en")
    ok(at.switch_page("views/coordinator.py").run())
    assert scenario_picker(at).value == "tiny"
    ok(scenario_picker(at).set_value("demo").run())
    ok(at.switch_page("views/inbox.py").run())
    assert scenario_picker(at) is None
    ok(at.selectbox(key="reg_street").set_value("D04S02").run())
    ok(at.switch_page("views/performance.py").run())
    assert at.selectbox(key="reg_street").value == "D04S02"
    ok(at.switch_page("views/runs.py").run())
    assert scenario_picker(at).value == "demo"
    assert at.session_state["scenario_choice"] == "demo"
    assert at.title[0].value == "Runs"


def test_the_inbox_reads_a_scopes_alerts_as_planning_lists_them(register):
    """The inbox's fenced read of the alerts (centres in the query) is
    ``alerts.alerts(centres=…)``: the same rows, order and titles, for every street, station
    and the whole network, in each state."""
    from wulian.ui.register_data import alerts_of

    alerts.acknowledge(register, alerts.alerts(register).iloc[1]["alert_id"], "seen")
    centres = register.table("centres")
    scopes = [None, *({c} | set(centres.loc[centres["parent_id"] == c, "centre_id"])
                      for c in centres.loc[centres["level"] == "street", "centre_id"]),
              *({c} for c in centres.loc[centres["level"] == "station", "centre_id"])]
    for inside in scopes:
        for states in (("open",), ("open", "acknowledged"), ("acknowledged",)):
            mine = alerts_of(register, None if inside is None else frozenset(inside), states)
            theirs = alerts.alerts(register, centres=inside, states=states)
            # An empty read has no strings to infer a dtype from; the rows are what count.
            pd.testing.assert_frame_equal(mine, theirs, check_dtype=len(theirs) > 0)


def test_a_link_to_a_street_opens_the_inbox_on_it(register):
    """The centre picked is in the URL (as its label, name · id): opening
    ``?reg_street=北熙街道 · D04S02`` shows that street's inbox at once (a bookmark)."""
    at = signed_in(AppTest.from_file(str(APP), default_timeout=TIMEOUT))
    at.query_params["reg_street"] = "北熙街道 · D04S02"
    ok(at.run())
    assert at.selectbox(key="reg_street").value == "D04S02"
    centres = register.table("centres")
    inside = {"D04S02", *centres.loc[centres["parent_id"] == "D04S02", "centre_id"]}
    stored = alerts.alerts(register, centres=inside, states=("open",))
    assert list(table(at, "alerts_table")["对象"]) == list(stored["subject_id"])


def test_the_performance_page_fences_by_scope(register):
    """The performance page's tables for a centre are ``performance()``'s for the stations of
    its subtree (the scope the page computes), and a street's tasks are its stations' only."""
    from wulian.ui import register_data

    url = str(register.engine.url)
    mark = register_data.marker(url)
    centres = register.table("centres")
    weeks = sorted(set(cycle.weeks(register)["week"]))
    for centre in [None] + list(centres.loc[centres["level"].isin(["street", "station"]),
                                            "centre_id"])[:4]:
        area = register_data.scope(url, mark, centre)
        stations = None if area.stations is None else set(area.stations)
        for first, last in ((None, None), (weeks[1], weeks[-2])):
            mine = register_data.performance(url, mark, "street", first, last, centre)
            theirs = perf.performance(register, "street", first, last, stations)
            for name in theirs:
                pd.testing.assert_frame_equal(mine[name], theirs[name])
            if stations is not None:
                tasks = perf.task_table(register, first, last, stations)
                assert set(tasks["station_id"]) <= stations
                assert mine["by_street"]["tasks"].sum() == len(tasks)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_register_without_weeks_says_so_on_the_register_pages(tmp_path, monkeypatch, lang):
    """A register imported but never run: the inbox says no week is open and how to open one,
    the performance page and the fund ledger that there is nothing yet."""
    url = f"sqlite:///{tmp_path / 'imported.sqlite'}"
    Register(RunStore(url), Actor("t", "cli")).import_scenario(
        Scenario.from_tables(generate_scenario("tiny", 0)))
    monkeypatch.setenv("WULIAN_STORE", url)
    at = app(lang)
    assert at.title[0].value == text.say("page.inbox", lang)
    assert text.say("inbox.noweek", lang) in texts(at, "info")
    ok(at.switch_page("views/performance.py").run())
    assert texts(at, "info") == [text.say("perf.none", lang)]
    ok(at.switch_page("views/fund_lab.py").run())
    assert text.say("ledger.none", lang) in texts(at, "info")


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_register_pages_speak_the_chosen_language(register, language):
    """The inbox, service performance and the fund ledger on a played register: in English no
    Chinese character but the data's names, in Chinese no raw code (tests/test_ui.py has the
    scenario's pages and the rules)."""
    from tests.test_ui import assert_speaks

    scenario = Scenario.from_tables(generate_scenario("tiny", 0))
    at = app(language)
    for view in ("views/inbox.py", "views/performance.py", "views/fund_lab.py"):
        ok(at.switch_page(view).run())
        assert_speaks(at, language, scenario, view)


def test_an_alert_sentence_in_both_languages_has_each_colour_once_per_half():
    """In "中文 / English" an alert's sentence is the Chinese one, then the English one, each
    with the colour in its own language ("橙色 / orange家庭有 …" had both in each half)."""
    numbers = {"from": "green", "to": "yellow", "assessed_on": "2026-12-01", "version": 2}
    both = alert_words("colour_worse", numbers, "both")
    assert both == (alert_words("colour_worse", numbers, "zh") + " / "
                    + alert_words("colour_worse", numbers, "en"))
    assert (both.count("green"), both.count("绿色"), both.count("yellow")) == (1, 1, 1)
    # Names given in both languages, too: each in its own half.
    short = {"service": "meal", "street": "D04S01", "unmet_units": {"2026-W49": 3}}
    both = alert_words("capacity_short", short, "both", {"meal": "助餐 / meals"},
                       {"D04S01": "安熙街道"})
    assert (both.count("助餐"), both.count("meals"), both.count("安熙街道")) == (1, 1, 2)
