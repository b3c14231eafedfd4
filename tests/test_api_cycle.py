"""The weekly cycle through the batch service, over real HTTP, on SQLite and on PostgreSQL.

One live ``wulian serve`` per backend runs the same three weeks: the tiny scenario is imported
into the register (its needs are raised for 2026-W49), 2026-W49 is opened, a provider answers
its tasks one at a time (accepted then delivered, declined with a reason, delivered in part), a
coordinator records a monitoring visit that finds the household worse off, the week is closed,
2026-W50 opens with what was carried (a withdrawn need left out) and is answered and closed,
and 2026-W51 opens. The tests then check what the API answered — and what the register holds —
against each other: the provider's fence, the coordinator's subtree, the colours, the carried
needs' age, the fund ledger against the delivered tasks, the audit trail and the log.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import REPO, Server, fresh_store_url, make_token
from wulian.contract import vocab
from wulian.planning.register import Register
from wulian.planning.store import RunStore

W49, W50, W51 = "2026-W49", "2026-W50", "2026-W51"
OWN_STREET, OTHER_STREET = "D04S01", "D04S02"  # the tiny preset's two streets
ALL_BAD = {c: 1 for c in vocab.DEPRIVATION_COLUMNS}


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _store_url(request, root: Path) -> str:
    return fresh_store_url(request, root, "wulian_api_cycle")


def _cli_token(url: str, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    """``wulian token create …`` as a user runs it; the secret is its last line."""
    done = subprocess.run([sys.executable, "-m", "wulian.api.cli", "token", "create", *args,
                           "--store", url], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    lines = done.stdout.strip().splitlines()
    return done, lines[-1] if lines else ""


class Api:
    """The live service, called with one role's token at a time."""

    def __init__(self, server: Server, tokens: dict[str, str]):
        self.server, self.tokens = server, tokens
        self.client = httpx.Client(base_url=server.url + "/v1", timeout=300)

    def __call__(self, who: str, method: str, path: str, **kw) -> httpx.Response:
        return self.client.request(method, path, headers=_auth(self.tokens[who]), **kw)

    def ok(self, who: str, method: str, path: str, status: int = 200, **kw) -> dict | list:
        response = self(who, method, path, **kw)
        assert response.status_code == status, (who, method, path, response.text[:2000])
        return response.json()

    def tasks(self, who: str, **params) -> list[dict]:
        body = self.ok(who, "GET", "/tasks", params={"limit": 100_000, **params})
        assert body["total_rows"] == len(body["tasks"])
        return body["tasks"]


def _spent(tasks: list[dict]) -> pd.Series:
    """Money spent per fund, from the tasks as the API answers them: a delivered task's cost
    in proportion to the units delivered (a task of no units: its whole cost)."""
    frame = pd.DataFrame(tasks)
    frame = frame[(frame["status"] == "delivered") & (frame["fund_id"] != "")]
    share = (frame["units_delivered"] / frame["units"]).where(frame["units"] > 0, 1.0)
    return (frame["cost"] * share).groupby(frame["fund_id"]).sum()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def flow(request, tmp_path_factory, tiny_scenario):
    """Three weeks through one live service; every answer the steps got, for the tests."""
    root = tmp_path_factory.mktemp(f"cycle-{request.param}")
    url = _store_url(request, root)
    server = Server(url, root / "data", root / "server.log", "--workers", "1").start()
    tokens = {role: make_token(url, role) for role in ("planner", "fund_manager", "admin")}
    tokens["coordinator"] = make_token(url, "coordinator", OWN_STREET)
    tokens["other_coordinator"] = make_token(url, "coordinator", OTHER_STREET)
    api = Api(server, tokens)
    store = RunStore(url)  # the register, read directly to check the API's answers
    try:
        yield _three_weeks(api, Register(store), tiny_scenario)
    finally:
        api.client.close()
        server.stop()
        store.engine.dispose()


def _three_weeks(api: Api, register: Register, scenario: Path) -> dict:
    url = register.engine.url.render_as_string(hide_password=False)
    s: dict = {"api": api, "scenario": scenario, "register": register}
    files = [("files", (p.name, p.read_bytes())) for p in sorted(scenario.iterdir())]
    s["dry"] = api.ok("planner", "POST", "/register/import", files=files,
                      data={"dry_run": "true"})
    s["events_after_dry"] = api.ok("admin", "GET", "/events")["total_rows"]
    s["import"] = api.ok("planner", "POST", "/register/import", files=files)
    s["again"] = api.ok("planner", "POST", "/register/import", data={
        "scenario": s["import"]["scenario"], "dry_run": "true"})

    # -- 2026-W49 ------------------------------------------------------------------------------
    s["open49"] = api.ok("planner", "POST", "/weeks", 201, json={"week": W49})
    everything = api.tasks("planner", week=W49)
    s["tasks49_before"] = everything
    frame = pd.DataFrame(everything)
    funded = frame[(frame["kind"] == "service") & (frame["fund_id"] != "") & (frame["cost"] > 0)]
    provider = funded["provider_id"].value_counts().index[0]  # the most funded tasks
    other = frame.loc[frame["provider_id"] != provider, "provider_id"].iloc[0]
    s["provider"], s["other"] = provider, other
    made, secret = _cli_token(url, "--role", "provider", "--provider", provider, "--label", "t")
    assert made.returncode == 0, made.stdout + made.stderr
    api.tokens["provider"] = secret
    api.tokens["other_provider"] = _cli_token(url, "--role", "provider", "--provider", other)[1]
    s["cli_refused"] = _cli_token(url, "--role", "provider")[0]
    s["me"] = api.ok("provider", "GET", "/me")

    own = api.tasks("provider", week=W49)
    s["provider_listed"] = own
    mine = list({t["need_id"]: t for t in own if t["fund_id"] and t["cost"] > 0}.values())
    assert len(mine) >= 3, "the tiny preset gives its most funded provider three tasks or more"
    partial = next(t for t in mine if t["units"] >= 2)
    accepted, declined = [t for t in mine if t is not partial][:2]
    s["accepted"] = api.ok("provider", "POST", f"/tasks/{accepted['task_id']}/answer",
                           json={"status": "accepted"})
    s["delivered"] = api.ok("provider", "POST", f"/tasks/{accepted['task_id']}/answer",
                            json={"status": "delivered", "answered_on": "2026-12-02"})
    s["delivered_again"] = api.ok("provider", "POST", f"/tasks/{accepted['task_id']}/answer",
                                  json={"status": "delivered", "answered_on": "2026-12-02"})
    s["declined"] = api.ok("provider", "POST", f"/tasks/{declined['task_id']}/answer",
                           json={"status": "declined", "reason": "no_capacity"})
    s["units_on_declined"] = api("provider", "POST", f"/tasks/{declined['task_id']}/answer",
                                 json={"status": "declined", "reason": "no_capacity",
                                       "units_delivered": 1})
    # Whole units stay whole (hours, visits, items); yuan to the cent.
    half = float(partial["units"] // 2) if partial["units"] == int(partial["units"]) \
        else round(partial["units"] / 2, 2)
    s["partial"] = api.ok("provider", "POST", f"/tasks/{partial['task_id']}/answer",
                          json={"status": "delivered", "units_delivered": half,
                                "answered_on": "2026-12-03"})
    s["half"] = half
    s["bad_answer"] = api("provider", "POST", f"/tasks/{accepted['task_id']}/answer",
                          json={"status": "declined", "answered_on": "2027-01-20",
                                "indicators": {"d_income": 1}})
    theirs = next(t for t in everything if t["provider_id"] == other)
    s["theirs"] = theirs
    s["fence"] = {
        "read other's task": api("provider", "GET", f"/tasks/{theirs['task_id']}").status_code,
        "answer other's task": api("provider", "POST", f"/tasks/{theirs['task_id']}/answer",
                                   json={"status": "accepted"}).status_code,
        "list other's tasks": api("provider", "GET", "/tasks",
                                  params={"provider": other}).status_code,
        "other reads mine": api("other_provider", "GET",
                                f"/tasks/{accepted['task_id']}").status_code,
        "unknown task": api("provider", "GET", "/tasks/T2026W49-ALL-999999").status_code,
        "provider opens a week": api("provider", "POST", "/weeks",
                                     json={"week": W50}).status_code,
        "provider reads the ledger": api("provider", "GET", "/funds/ledger").status_code,
        "provider lists jobs": api("provider", "GET", "/jobs").status_code,
        "fund manager lists tasks": api("fund_manager", "GET", "/tasks").status_code,
        "coordinator reads events": api("coordinator", "GET", "/events").status_code,
    }
    s["theirs_after"] = api.ok("planner", "GET", f"/tasks/{theirs['task_id']}")

    # A monitoring visit in the coordinator's street finds the household worse off.
    coordinator_sees = api.tasks("coordinator", week=W49)
    s["coordinator_listed"] = coordinator_sees
    visits = [t for t in everything if t["kind"] == "monitoring" and t["street_id"] == OWN_STREET]
    order = {tier: i for i, tier in enumerate(vocab.TIER_ORDER)}
    visit = max(visits, key=lambda t: order[t["tier"]])  # the least deprived first
    s["visit"] = visit
    hid = visit["household_id"]
    s["colours_before"] = api.ok("coordinator", "GET", f"/register/households/{hid}/colours")
    s["visit_not_made"] = api("coordinator", "POST", f"/tasks/{visit['task_id']}/answer",
                              json={"status": "not_delivered", "indicators": ALL_BAD,
                                    "new_needs": "counselling:2"})
    s["visit_answer"] = api.ok("coordinator", "POST", f"/tasks/{visit['task_id']}/answer",
                               json={"status": "delivered", "answered_on": "2026-12-04",
                                     "indicators": ALL_BAD, "new_needs": "counselling:2",
                                     "note": "worse off"})
    s["colours_after"] = api.ok("coordinator", "GET", f"/register/households/{hid}/colours")
    s["colours_other_coordinator"] = api("other_coordinator", "GET",
                                         f"/register/households/{hid}/colours").status_code
    elsewhere = next(t for t in everything if t["street_id"] == OTHER_STREET
                     and t["status"] == "planned" and t["provider_id"] != provider)
    s["coordinator_elsewhere"] = (
        api("coordinator", "GET", f"/tasks/{elsewhere['task_id']}").status_code,
        api("coordinator", "POST", f"/tasks/{elsewhere['task_id']}/answer",
            json={"status": "accepted"}).status_code)

    s["ledger49"] = api.ok("fund_manager", "GET", "/funds/ledger",
                           params={"first": W49, "last": W49})
    s["ledger49_coordinator"] = api.ok("coordinator", "GET", "/funds/ledger",
                                       params={"first": W49, "last": W49})
    s["tasks49_answered"] = api.tasks("planner", week=W49)
    s["close49"] = api.ok("planner", "POST", f"/weeks/{W49}/close")
    s["close49_again"] = api("planner", "POST", f"/weeks/{W49}/close")
    s["tasks49"] = api.tasks("planner", week=W49)
    s["late_answer"] = api("provider", "POST", f"/tasks/{partial['task_id']}/answer",
                           json={"status": "delivered"})

    # -- 2026-W50 ------------------------------------------------------------------------------
    states = register.need_states().set_index("need_id")
    s["states_after49"] = states
    carried = sorted(states.index[states["state"] == "carried"])
    s["withdrawn"] = api.ok("planner", "POST", f"/register/needs/{carried[0]}/withdraw")
    s["withdrawn_again"] = api("planner", "POST", f"/register/needs/{carried[0]}/withdraw")
    s["one_click"] = api.ok("coordinator", "POST", "/register/needs", 201, json={
        "household_id": visit["household_id"], "service_id": "meal_help", "quantity": 3,
        "urgency": 3, "week": W50})
    s["open50"] = api.ok("planner", "POST", "/weeks", 201, json={"week": W50})
    s["open50_again"] = api("planner", "POST", "/weeks", json={"week": W50})
    s["states_at50"] = register.need_states().set_index("need_id")
    # A need of another provider's task withdrawn: its task recalled, an answer refused.
    recall = next(t for t in api.tasks("planner", week=W50)
                  if t["provider_id"] != provider and t["need_id"] and t["fund_id"]
                  and t["cost"] > 0)
    s["recall"] = recall
    s["ledger50_before"] = api.ok("fund_manager", "GET", "/funds/ledger",
                                  params={"first": W50, "last": W50})
    s["withdrawn50"] = api.ok("coordinator" if recall["street_id"] == OWN_STREET else "planner",
                              "POST", f"/register/needs/{recall['need_id']}/withdraw")
    s["recalled_task"] = api.ok("planner", "GET", f"/tasks/{recall['task_id']}")
    s["recalled_answer"] = api("planner", "POST", f"/tasks/{recall['task_id']}/answer",
                               json={"status": "delivered"})
    s["ledger50_after"] = api.ok("fund_manager", "GET", "/funds/ledger",
                                 params={"first": W50, "last": W50})
    tasks50 = api.tasks("provider", week=W50)
    s["provider_tasks50"] = tasks50
    for task in tasks50:  # the provider delivers everything it is sent this week
        api.ok("provider", "POST", f"/tasks/{task['task_id']}/answer",
               json={"status": "delivered"})
    s["tasks50"] = api.tasks("planner", week=W50)
    # A need the provider delivered in full this week is not withdrawn.
    remaining = register.need_states()["remaining"].groupby(
        register.need_states()["need_id"]).first()
    full = next(t for t in tasks50 if t["need_id"] and t["units"] >= remaining[t["need_id"]])
    s["withdraw_delivered"] = api("planner", "POST", f"/register/needs/{full['need_id']}/withdraw")
    s["close50"] = api.ok("planner", "POST", f"/weeks/{W50}/close")
    s["recalled_after_close"] = api.ok("planner", "GET", f"/tasks/{recall['task_id']}")

    # -- 2026-W51 ------------------------------------------------------------------------------
    s["open51"] = api.ok("planner", "POST", "/weeks", 201, json={"week": W51})
    s["tasks51"] = api.tasks("planner", week=W51)
    s["weeks"] = api.ok("provider", "GET", "/weeks")
    s["ledger"] = api.ok("fund_manager", "GET", "/funds/ledger",
                         params={"first": W49, "last": W51})
    s["all_tasks"] = api.tasks("planner")
    return s


# -- the register --------------------------------------------------------------------------


def test_import_reports_every_table_and_a_dry_run_writes_nothing(flow):
    """The dry run reports what the import then does, per table, and writes no event; the
    same scenario again changes nothing."""
    tables = {name: pd.read_csv(flow["scenario"] / f"{name}.csv", dtype=str)
              for name in ("centres", "households", "needs", "providers", "offers", "funds")}
    dry = {t["table"]: t for t in flow["dry"]["tables"]}
    done = {t["table"]: t for t in flow["import"]["tables"]}
    assert not flow["dry"]["applied"] and flow["import"]["applied"]
    assert flow["events_after_dry"] == 0
    for name, frame in tables.items():
        assert dry[name] == done[name] == {"table": name, "added": len(frame), "changed": 0,
                                           "removed": 0}
    assert flow["import"]["assessments"] == len(tables["households"])
    assert all(t["added"] == t["changed"] == t["removed"] == 0 for t in flow["again"]["tables"])


def test_import_and_single_records_answer_every_problem(flow):
    """An upload with problems, a new household missing its fields and a need for an unknown
    service: 422, every problem listed, nothing written."""
    api = flow["api"]
    before = api.ok("admin", "GET", "/events", params={"limit": 1})["total_rows"]
    needs = pd.read_csv(flow["scenario"] / "needs.csv", dtype=str)
    needs.loc[0, "quantity"] = "many"
    needs.loc[1, "household_id"] = "H9999999"
    files = [("files", (p.name, needs.to_csv(index=False).encode() if p.name == "needs.csv"
                        else p.read_bytes())) for p in sorted(flow["scenario"].iterdir())]
    upload = api("planner", "POST", "/register/import", files=files)
    assert upload.status_code == 422
    codes = {(p["table"], p["column"], p["code"]) for p in upload.json()["problems"]}
    assert {("needs", "quantity", "not_a_number"),
            ("needs", "household_id", "missing_reference")} <= codes
    neither = api("planner", "POST", "/register/import", data={"dry_run": "true"})
    assert neither.status_code == 422
    unknown = api("planner", "POST", "/register/import", data={"scenario": "0" * 64})
    assert unknown.status_code == 404
    new = api("coordinator", "POST", "/register/households",
              json={"household_id": "HNEW0001", "station_id": f"{OWN_STREET}T001"})
    assert new.status_code == 422
    missing = {p["column"] for p in new.json()["problems"] if p["code"] == "missing_value"}
    assert {"size", *vocab.DEPRIVATION_COLUMNS} <= missing
    need = api("coordinator", "POST", "/register/needs", json={
        "household_id": flow["visit"]["household_id"], "service_id": "no_such_service",
        "quantity": 1, "week": W51})
    assert need.status_code == 422
    assert [p["code"] for p in need.json()["problems"]] == ["missing_reference"]
    assert api.ok("admin", "GET", "/events", params={"limit": 1})["total_rows"] == before


def test_households_are_added_and_assessed_within_the_coordinators_subtree(flow):
    """A coordinator adds a household of their street (201) and re-assesses it (200, a new
    version); a household of the other street is refused (403)."""
    api = flow["api"]
    row = {"household_id": "HAPI0001", "station_id": f"{OWN_STREET}T002", "size": 2,
           "categories": "low_income", **{c: 0 for c in vocab.DEPRIVATION_COLUMNS}}
    made = api.ok("coordinator", "POST", "/register/households", 201,
                  json={**row, "discovered_by": "one_click", "assessed_on": "2026-12-15"})
    assert made["created"] and made["assessment"]["version"] == 1
    assert made["assessment"]["discovered_by"] == "one_click"
    assert made["assessment"]["assessed_on"] == "2026-12-15"
    again = api.ok("coordinator", "POST", "/register/households",
                   json={"household_id": "HAPI0001", "d_housing": 1, "d_income": 1})
    assert not again["created"] and again["assessment"]["version"] == 2
    assert again["assessment"]["indicators"]["d_housing"] == 1
    assert again["assessment"]["score"] > made["assessment"]["score"]
    moved = api("coordinator", "POST", "/register/households",
                json={"household_id": "HAPI0001", "station_id": f"{OTHER_STREET}T001"})
    assert moved.status_code == 403
    other = api("coordinator", "POST", "/register/households",
                json={**row, "household_id": "HAPI0002", "station_id": f"{OTHER_STREET}T001"})
    assert other.status_code == 403
    assert api("fund_manager", "POST", "/register/households", json=row).status_code == 403
    row_in_register = flow["register"].rows("households")
    assert "HAPI0001" in row_in_register and "HAPI0002" not in row_in_register


# -- tokens and fences ---------------------------------------------------------------------


def test_a_provider_token_is_fenced_to_its_provider(flow):
    """`wulian token create --role provider --provider P` makes a token that says so; without
    --provider it is refused."""
    assert flow["me"]["role"] == "provider" and flow["me"]["provider_id"] == flow["provider"]
    assert flow["me"]["centre"] == ""
    refused = flow["cli_refused"]
    assert refused.returncode == 2 and "--provider" in refused.stdout + refused.stderr
    listed = flow["api"].ok("admin", "GET", "/tokens")
    assert {t["provider_id"] for t in listed if t["role"] == "provider"} == {
        flow["provider"], flow["other"]}


def test_a_provider_sees_and_answers_only_its_own_tasks(flow):
    """The provider's list is exactly its tasks of the week; another provider's task is 403
    to read, to answer and to list, and stays as it was."""
    expected = sorted(t["task_id"] for t in flow["tasks49_before"]
                      if t["provider_id"] == flow["provider"])
    assert [t["task_id"] for t in flow["provider_listed"]] == expected
    assert flow["fence"] == {
        "read other's task": 403, "answer other's task": 403, "list other's tasks": 403,
        "other reads mine": 403, "unknown task": 404, "provider opens a week": 403,
        "provider reads the ledger": 403, "provider lists jobs": 403,
        "fund manager lists tasks": 403, "coordinator reads events": 403}
    assert flow["theirs_after"]["status"] == "planned"
    assert flow["theirs_after"]["updated_at"] == flow["theirs"]["updated_at"]


def test_a_coordinator_sees_and_answers_only_its_subtree(flow):
    """The coordinator lists the tasks of their street's households only, and a task of the
    other street is 403 to read and to answer."""
    listed = flow["coordinator_listed"]
    expected = sorted(t["task_id"] for t in flow["tasks49_before"]
                      if t["street_id"] == OWN_STREET)
    assert listed and [t["task_id"] for t in listed] == expected
    assert all(t["station_id"].startswith(OWN_STREET) for t in listed)
    assert flow["coordinator_elsewhere"] == (403, 403)


# -- answers -------------------------------------------------------------------------------


def test_answers_move_tasks_one_at_a_time(flow):
    """accepted → delivered (the same answer twice changes nothing), declined with a reason,
    a partial delivery: each answer returns the task after it."""
    assert flow["accepted"]["status"] == "accepted" and flow["accepted"]["recorded"]["changed"]
    delivered = flow["delivered"]
    assert delivered["status"] == "delivered"
    assert delivered["units_delivered"] == delivered["units"]
    assert delivered["answered_on"] == "2026-12-02"
    assert flow["delivered_again"]["recorded"] == {"changed": 0, "unchanged": 1, "visits": 0,
                                                   "needs_raised": 0}
    assert flow["declined"]["status"] == "declined"
    assert flow["declined"]["reason"] == "no_capacity"
    partial = flow["partial"]
    assert partial["status"] == "delivered" and partial["units_delivered"] == flow["half"]
    assert 0 < partial["units_delivered"] < partial["units"]
    closed = {t["task_id"]: t for t in flow["tasks49"]}
    for key in ("delivered", "declined", "partial"):
        task = closed[flow[key]["task_id"]]
        assert (task["status"], task["units_delivered"]) == (flow[key]["status"],
                                                             flow[key]["units_delivered"])


def test_a_wrong_answer_lists_every_problem(flow):
    """Declining a delivered task, dated outside the week, with a visit's indicators on a
    service task: 422 with the three problems, in the uploads' problem shape."""
    response = flow["bad_answer"]
    assert response.status_code == 422
    body = response.json()
    assert " / " in body["detail"]
    codes = sorted(p["code"] for p in body["problems"])
    assert codes == ["date_outside_week", "not_a_visit", "status_not_allowed"]
    for problem in body["problems"]:
        assert set(problem) == {"table", "row", "column", "value", "code", "message_zh",
                                "message_en", "hint_zh", "hint_en"}
    late = flow["late_answer"]
    assert late.status_code == 422
    assert [p["code"] for p in late.json()["problems"]] == ["week_not_open"]


def test_an_answer_that_delivered_nothing_takes_no_units_and_no_visit_result(flow):
    """Units on a declined task (kept, then ignored by the ledger and the close) and a visit's
    observations on a visit not made (dropped): 422 naming the field, nothing recorded."""
    units = flow["units_on_declined"]
    assert units.status_code == 422, units.text
    problem, = units.json()["problems"]
    assert (problem["column"], problem["value"], problem["code"]) == (
        "units_delivered", "1.0", "units_not_delivered")  # (the JSON number as the API read it)
    assert "已完成 delivered" in problem["hint_zh"]
    visit = flow["visit_not_made"]
    assert visit.status_code == 422, visit.text
    assert [(p["column"], p["code"]) for p in visit.json()["problems"]] == [
        ("indicators", "visit_not_made"), ("new_needs", "visit_not_made")]
    # The visit was then recorded as made, once (the refused answer left nothing behind).
    assert flow["visit_answer"]["recorded"]["visits"] == 1


def test_withdrawing_a_need_recalls_its_task_and_its_money(flow):
    """The withdrawn need's task leaves the provider's answers (withdrawn, an answer refused
    naming the need), its money is no longer committed or outstanding, and the close leaves
    it withdrawn; a need delivered in full this week is not withdrawn (409)."""
    recall, withdrawn = flow["recall"], flow["withdrawn50"]
    assert withdrawn["close_reason"] == "withdrawn" and recall["task_id"] in withdrawn["recalled"]
    assert withdrawn["delivered"] == []
    assert flow["recalled_task"]["status"] == "withdrawn"
    refused = flow["recalled_answer"]
    assert refused.status_code == 422
    problem, = refused.json()["problems"]
    assert problem["code"] == "task_withdrawn" and recall["need_id"] in problem["message_en"]
    fund = recall["fund_id"]
    before = pd.DataFrame(flow["ledger50_before"]["balances"]).set_index("fund_id")
    after = pd.DataFrame(flow["ledger50_after"]["balances"]).set_index("fund_id")
    recalled_cost = sum(t["cost"] for t in flow["tasks50"]
                        if t["task_id"] in withdrawn["recalled"] and t["fund_id"] == fund)
    assert before.at[fund, "outstanding"] - after.at[fund, "outstanding"] == pytest.approx(
        recalled_cost, abs=0.02)
    assert flow["recalled_after_close"]["status"] == "withdrawn"
    assert flow["close50"]["unanswered"] == sum(t["status"] in ("planned", "accepted")
                                                for t in flow["tasks50"])
    delivered = flow["withdraw_delivered"]
    assert delivered.status_code == 409
    assert "delivered in full" in delivered.json()["detail"]["message"]


def test_a_monitoring_visit_that_finds_the_household_worse_reassesses_it(flow):
    """The coordinator's visit result (every indicator deprived) adds an assessment found by
    the visit, its colour as bad or worse and its score higher; the need it found is raised."""
    before = flow["colours_before"]["assessments"]
    after = flow["colours_after"]["assessments"]
    assert len(after) == len(before) + 1
    new, old = after[-1], before[-1]
    assert new["version"] == old["version"] + 1
    assert new["discovered_by"] == "visit" and new["assessed_on"] == "2026-12-04"
    assert new["indicators"] == ALL_BAD
    order = vocab.TIER_ORDER
    assert order.index(new["tier"]) <= order.index(old["tier"])
    assert new["score"] > old["score"]
    assert flow["visit_answer"]["recorded"]["visits"] == 1
    assert flow["visit_answer"]["recorded"]["needs_raised"] == 1
    assert flow["colours_other_coordinator"] == 403
    hid = flow["visit"]["household_id"]
    raised = flow["states_after49"]
    raised = raised[(raised["household_id"] == hid) & (raised["service_id"] == "counselling")
                    & (raised["week_raised"] == W49) & (raised["quantity"] == 2)]
    assert len(raised) >= 1


# -- weeks ---------------------------------------------------------------------------------


def test_closing_settles_the_unanswered_and_carries_the_rest_with_age(flow):
    """Closing 2026-W49 settles every task still sent or accepted; the needs it did not
    deliver come back in 2026-W50 a week older, a withdrawn one does not, a one-click request
    does."""
    before = flow["tasks49_answered"]
    live = [t for t in before if t["status"] in ("planned", "accepted")]
    closed = flow["close49"]
    assert closed["unanswered"] == len(live) > 0
    assert closed["carried"] > 0 and closed["centre"] is None
    assert flow["close49_again"].status_code == 409
    after = {t["task_id"]: t for t in flow["tasks49"]}
    assert all(after[t["task_id"]]["status"] == "not_delivered"
               and after[t["task_id"]]["reason"] == "no_answer" for t in live)

    states = flow["states_after49"]
    declined_need = flow["declined"]["need_id"]
    assert states.loc[declined_need, "state"] == "carried"
    assert states.loc[declined_need, "age"] == 1
    partial = flow["partial"]
    assert states.loc[partial["need_id"], "remaining"] == pytest.approx(
        states.loc[partial["need_id"], "quantity"] - flow["half"])
    carried = set(states.index[states["state"] == "carried"])
    tasks50 = {t["need_id"] for t in flow["tasks50"] if t["need_id"]}
    assert flow["open50"]["tasks"] == len(flow["tasks50"]) > 0
    back = tasks50 & carried
    assert back, "no carried need came back in 2026-W50"
    at50 = flow["states_at50"]
    assert (at50.loc[sorted(back), "age"] >= 1).all()
    assert (at50.loc[sorted(back), "state"] == "allocated").all()
    withdrawn = flow["withdrawn"]
    assert withdrawn["state"] == "closed" and withdrawn["close_reason"] == "withdrawn"
    assert withdrawn["need_id"] not in tasks50
    assert flow["withdrawn_again"].status_code == 409
    assert flow["one_click"]["state"] == "open" and flow["one_click"]["age"] == 0
    assert flow["open50_again"].status_code == 409


def test_three_weeks_are_listed_with_their_tasks(flow):
    """Any role lists the weeks: two closed, the third open, tasks counted per status."""
    weeks = {w["week"]: w for w in flow["weeks"]}
    assert list(weeks) == [W49, W50, W51]
    assert [weeks[w]["state"] for w in (W49, W50, W51)] == ["closed", "closed", "open"]
    assert weeks[W51]["tasks"] == {"planned": len(flow["tasks51"])}
    statuses = pd.Series([t["status"] for t in flow["tasks49"]]).value_counts().to_dict()
    assert weeks[W49]["tasks"] == statuses
    assert all(w["actor"].startswith("token:") for w in weeks.values())


def test_the_ledger_spends_what_the_delivered_tasks_cost(flow):
    """Per fund, the ledger's spent (summed over streets and weeks, and in the balances) is
    the delivered tasks' cost as the API lists them; a coordinator sees their streets only."""
    expected = _spent(flow["all_tasks"])
    expected = expected[expected > 0]
    assert expected.sum() > 0
    by_week = pd.DataFrame(flow["ledger"]["by_week"])
    spent = by_week.groupby("fund_id")["spent"].sum()
    pd.testing.assert_series_equal(spent[spent > 0].sort_index(), expected.round(2).sort_index(),
                                   check_names=False, atol=0.05)
    balances = pd.DataFrame(flow["ledger"]["balances"]).set_index("fund_id")
    for fund, money in expected.items():
        assert balances.loc[fund, "spent"] == pytest.approx(money, abs=0.02)
    assert (balances["weeks"] == 3).all()
    assert (balances["accrued"] == balances["weekly_budget"] * 3).all()
    # Week 49 on its own: what the provider delivered, seen by the fund manager.
    week49 = pd.DataFrame(flow["ledger49"]["by_week"]).groupby("fund_id")["spent"].sum()
    expected49 = _spent(flow["tasks49"])
    assert week49[week49 > 0].round(2).to_dict() == expected49.round(2).to_dict()
    mine = pd.DataFrame(flow["ledger49_coordinator"]["by_week"])
    assert len(mine) and set(mine["street_id"]) == {OWN_STREET}
    # The register agrees: the spent of each closed week is what its close reported.
    assert flow["close49"]["spent"] == pytest.approx(expected49.sum(), abs=0.02)


def test_the_audit_trail_names_the_api_token(flow):
    """Every answer is an event made through the API by the token that sent it; the events
    of one task are found by subject."""
    api = flow["api"]
    task = flow["delivered"]["task_id"]
    events = api.ok("planner", "GET", "/events", params={"subject": f"tasks:{task}"})["events"]
    answers = [e for e in events if e["kind"] == "task.answer"]
    assert [e["after"]["status"] for e in answers] == ["accepted", "delivered"]
    provider_token = next(t["token_id"] for t in api.ok("admin", "GET", "/tokens")
                          if t["provider_id"] == flow["provider"])
    assert {(e["actor"], e["via"]) for e in answers} == {(f"token:{provider_token}", "api")}
    page = api.ok("admin", "GET", "/events", params={"kind": "week.open", "limit": 2})
    assert page["total_rows"] == 3 and len(page["events"]) == 2


def test_household_ids_never_reach_the_log(flow):
    """After the three weeks (colours read by path, events by subject), the server's log holds
    request lines but no household id."""
    api = flow["api"]
    hid = flow["visit"]["household_id"]
    api.ok("planner", "GET", "/events", params={"subject": f"households:{hid}"})
    log = api.server.output
    assert "/register/households/" in log and "GET /v1/tasks" in log
    ids = pd.read_csv(flow["scenario"] / "households.csv", dtype=str)["household_id"]
    assert [h for h in ids if h in log] == []
