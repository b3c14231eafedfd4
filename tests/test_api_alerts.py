"""Early warning, service performance and webhooks through the batch service, over real HTTP,
on SQLite and on PostgreSQL.

Per backend: the tiny preset is imported into a fresh store and four weeks are simulated
(2026-W49 … W52, seed 0); then a live ``wulian serve`` runs on it. Webhooks are added through
the API (the city, the coordinator's street, every provider) pointing at a local receiver; the
alerts are evaluated through the API (and pushed); each role lists them; a coordinator
acknowledges one, withdraws its needs and a second evaluation resolves it; 2026-W53 is opened
(its tasks pushed to the providers) and closed through the API, which evaluates the alerts
again; the performance tables are read as JSON and as a workbook. The tests check the answers
against the register, the centres' hierarchy and what the receiver got.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.conftest import Server, fresh_store_url, make_token
from wulian.api.auth import TokenStore
from wulian.planning import notify
from wulian.planning.cycle import next_week
from wulian.planning.generate import generate_scenario
from wulian.planning.register import Actor, Register
from wulian.planning.scenario import Scenario
from wulian.planning.simulate import simulate
from wulian.planning.store import RunStore

FIRST, LAST = "2026-W49", "2026-W52"  # the simulated weeks
NEXT = next_week(LAST)  # opened and closed through the API
OWN_STREET, OTHER_STREET = "D04S01", "D04S02"  # the tiny preset's two streets
SECRET = "a-shared-secret-of-the-tests"
FUND_RULES = {"fund_runout", "fund_underspend"}


class Receiver:
    """A local webhook receiver: every POST is kept (path, headers, body) and answered 200."""

    def __init__(self) -> None:
        self.got: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.got.append({"path": self.path, "headers": dict(self.headers),
                                         "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def events(self, path: str, event: str) -> list[dict]:
        with self.lock:
            return [json.loads(g["body"]) for g in self.got
                    if g["path"] == path and g["headers"].get("X-Wulian-Event") == event]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def _wait(condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _store_url(request, root: Path) -> str:
    return fresh_store_url(request, root, "wulian_api_alerts")


class Api:
    def __init__(self, server: Server, tokens: dict[str, str]):
        self.server, self.tokens = server, tokens
        self.client = httpx.Client(base_url=server.url + "/v1", timeout=300)

    def __call__(self, who: str, method: str, path: str, **kw) -> httpx.Response:
        return self.client.request(method, path, headers={
            "Authorization": f"Bearer {self.tokens[who]}"}, **kw)

    def ok(self, who: str, method: str, path: str, status: int = 200, **kw):
        response = self(who, method, path, **kw)
        assert response.status_code == status, (who, method, path, response.text[:2000])
        return response.json() if response.content else None

    def alerts(self, who: str, **params) -> list[dict]:
        body = self.ok(who, "GET", "/alerts", params={"limit": 100_000, **params})
        assert body["total_rows"] == len(body["alerts"])
        return body["alerts"]


def _subtree(centres: pd.DataFrame, centre: str) -> set[str]:
    """The centre and all below it, from the register's centres table (parent links)."""
    found, grown = {centre}, True
    while grown:
        below = set(centres.loc[centres["parent_id"].isin(found), "centre_id"])
        grown = not below <= found
        found |= below
    return found


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def flow(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"alerts-{request.param}")
    url = _store_url(request, root)
    store = RunStore(url)
    register = Register(store, Actor("t", "simulator"))
    register.import_scenario(Scenario.from_tables(generate_scenario("tiny", 0)))
    played = simulate(register, 4, seed=0, alerts=False)  # the API evaluates first
    assert [w.week for w in played] == ["2026-W49", "2026-W50", "2026-W51", "2026-W52"]
    server = Server(url, root / "data", root / "server.log", "--workers", "1").start()
    receiver = Receiver()
    tokens = {role: make_token(url, role) for role in ("planner", "fund_manager", "admin")}
    tokens["coordinator"] = make_token(url, "coordinator", OWN_STREET)
    tokens["other_coordinator"] = make_token(url, "coordinator", OTHER_STREET)
    api = Api(server, tokens)
    try:
        yield _run(api, register, receiver)
    finally:
        api.client.close()
        receiver.close()
        server.stop()
        store.engine.dispose()


def _run(api: Api, register: Register, receiver: Receiver) -> dict:
    s: dict = {"api": api, "register": register, "receiver": receiver}
    centres = register.table("centres")
    s["centres"] = centres
    s["own_subtree"] = _subtree(centres, OWN_STREET)
    providers = sorted(register.table("providers")["provider_id"])
    s["providers"] = providers

    # -- webhooks, added through the API --------------------------------------------------------
    def hook(who: str, kind: str, target: str, path: str) -> httpx.Response:
        return api(who, "POST", "/webhooks", json={
            "target_kind": kind, "target_id": target, "url": receiver.url + path,
            "secret": SECRET})

    s["hook_city"] = hook("planner", "centre", "C0", "/city")
    s["hook_own"] = hook("coordinator", "centre", OWN_STREET, "/own")
    s["hook_refused"] = {
        "coordinator, other street": hook("coordinator", "centre", OTHER_STREET, "/x")
        .status_code,
        "coordinator, the district": hook("coordinator", "centre", "D04", "/x").status_code,
        "coordinator, a provider": hook("coordinator", "provider", providers[0], "/x")
        .status_code,
        "fund manager": hook("fund_manager", "centre", "C0", "/x").status_code,
    }
    s["hook_unknown"] = hook("planner", "centre", "NOWHERE", "/x")
    s["hook_bad_url"] = api("planner", "POST", "/webhooks", json={
        "target_kind": "centre", "target_id": "C0", "url": "ftp://x/y", "secret": SECRET})
    for provider in providers:
        api.ok("admin", "POST", "/webhooks", 201, json={
            "target_kind": "provider", "target_id": provider,
            "url": f"{receiver.url}/provider/{provider}", "secret": SECRET})
    extra = api.ok("planner", "POST", "/webhooks", 201, json={
        "target_kind": "centre", "target_id": OWN_STREET, "url": receiver.url + "/removed",
        "secret": SECRET})
    s["delete_refused"] = api("other_coordinator", "DELETE",
                              f"/webhooks/{extra['webhook_id']}").status_code
    s["delete"] = api("coordinator", "DELETE", f"/webhooks/{extra['webhook_id']}").status_code
    s["delete_again"] = api("planner", "DELETE", f"/webhooks/{extra['webhook_id']}").status_code
    s["hooks_coordinator"] = api.ok("coordinator", "GET", "/webhooks")
    s["hooks_other_coordinator"] = api.ok("other_coordinator", "GET", "/webhooks")

    # -- evaluate, push, list per role -------------------------------------------------------
    s["evaluate_refused"] = {who: api(who, "POST", "/alerts/evaluate").status_code
                             for who in ("fund_manager",)}
    s["evaluation"] = api.ok("coordinator", "POST", "/alerts/evaluate")
    opened = s["evaluation"]["opened"]
    # A week before the one evaluated, and one never opened: refused, nothing changed.
    s["before_bad_weeks"] = api.alerts("planner")
    s["bad_weeks"] = {week: api(who, "POST", "/alerts/evaluate", params={"week": week})
                      for who, week in (("coordinator", FIRST), ("planner", NEXT),
                                        ("planner", "2031-W05"))}
    s["after_bad_weeks"] = api.alerts("planner")
    _wait(lambda: len(receiver.events("/city", "alert.opened")) >= opened,
          "the opened alerts to reach the city's webhook")
    s["listed"] = {who: api.alerts(who) for who in ("planner", "admin", "coordinator",
                                                    "other_coordinator", "fund_manager")}
    declining = sorted({a["subject_id"] for a in s["listed"]["planner"]
                        if a["subject_kind"] == "provider"})
    assert declining, "the seeded weeks give at least one provider_declines alert"
    engine = sa.create_engine(register.engine.url)
    try:
        tokens = TokenStore(engine)
        api.tokens["provider"] = tokens.create("provider", provider=declining[0])[1]
        calm = next(p for p in providers if p not in declining)
        api.tokens["calm_provider"] = tokens.create("provider", provider=calm)[1]
    finally:
        engine.dispose()
    s["declining"], s["calm"] = declining[0], calm
    s["listed"]["provider"] = api.alerts("provider")
    s["listed"]["calm_provider"] = api.alerts("calm_provider")
    s["by_rule"] = api.alerts("planner", rule="unmet")
    s["fund_manager_unmet"] = api.alerts("fund_manager", rule="unmet")

    # -- acknowledge, then resolve ----------------------------------------------------------
    mine = [a for a in s["listed"]["coordinator"] if a["rule"] == "unmet"]
    assert mine, "the coordinator's street has an unmet alert"
    target = mine[0]
    s["target"] = target
    path = f"/alerts/{target['alert_id']}/acknowledge"
    s["ack_refused"] = {
        "other coordinator": api("other_coordinator", "POST", path, json={}).status_code,
        "fund manager, not a fund alert": api("fund_manager", "POST", path, json={})
        .status_code,
        "provider": api("provider", "POST", path, json={}).status_code,
        "unknown alert": api("planner", "POST", "/alerts/unmet:household:NOBODY/acknowledge",
                             json={}).status_code,
        "extra field": api("coordinator", "POST", path, json={"note": "x", "by": "me"})
        .status_code,
    }
    s["ack"] = api.ok("coordinator", "POST", path, json={"note": "visiting on Tuesday"})
    s["me_coordinator"] = api.ok("coordinator", "GET", "/me")
    funds = [a for a in s["listed"]["fund_manager"]]
    s["fund_ack"] = (api.ok("fund_manager", "POST", f"/alerts/{funds[0]['alert_id']}/acknowledge",
                            json={"note": "reallocating"}) if funds else None)
    for need in target["numbers"]["need_ids"]:
        api.ok("coordinator", "POST", f"/register/needs/{need}/withdraw")
    s["evaluation2"] = api.ok("planner", "POST", "/alerts/evaluate")
    s["resolved"] = api.alerts("planner", state="resolved")
    s["ack_resolved"] = api("coordinator", "POST", path, json={"note": "late"})

    # -- a week through the API: its tasks pushed, its close evaluates -----------------------
    s["before_close"] = api.alerts("planner")
    s["open"] = api.ok("planner", "POST", "/weeks", 201, json={"week": NEXT})
    s["tasks_next"] = api.ok("planner", "GET", "/tasks", params={"week": NEXT,
                                                                  "limit": 100_000})["tasks"]
    with_tasks = {t["provider_id"] for t in s["tasks_next"]}
    _wait(lambda: all(receiver.events(f"/provider/{p}", "tasks.published")
                      for p in with_tasks), "the week's tasks to reach every provider")
    s["close"] = api.ok("planner", "POST", f"/weeks/{NEXT}/close")
    s["after_close"] = api.alerts("planner")
    opened_at_close = [a for a in s["after_close"] if a["since"] == NEXT]
    total_opened = opened + s["evaluation2"]["opened"] + s["close"]["alerts"]["opened"]
    _wait(lambda: len(receiver.events("/city", "alert.opened")) >= total_opened,
          "the alerts opened at the close to reach the city's webhook")
    # A delivery is kept before it is sent and its result after the answer: wait for the last.
    _wait(lambda: not (notify.deliveries(register)["attempts"] == 0).any(),
          "the deliveries' results to be kept")
    s["opened_at_close"] = opened_at_close
    s["total_opened"] = total_opened
    s["hooks"] = api.ok("planner", "GET", "/webhooks")

    # -- performance ---------------------------------------------------------------------------
    weeks = f"{FIRST}:{LAST}"
    s["perf"] = api.ok("planner", "GET", "/performance", params={"by": "provider",
                                                                 "weeks": weeks})
    s["perf_coordinator"] = api.ok("coordinator", "GET", "/performance",
                                   params={"by": "street", "weeks": weeks})
    s["perf_fund_manager"] = api.ok("fund_manager", "GET", "/performance",
                                    params={"by": "fund", "weeks": weeks})
    s["tasks_weeks"] = pd.DataFrame(api.ok("planner", "GET", "/tasks", params={
        "limit": 100_000})["tasks"])
    s["tasks_coordinator"] = pd.DataFrame(api.ok("coordinator", "GET", "/tasks", params={
        "limit": 100_000})["tasks"])
    s["xlsx"] = api("planner", "GET", "/performance", params={"by": "colour", "weeks": weeks,
                                                              "format": "xlsx"})
    s["perf_colour"] = api.ok("planner", "GET", "/performance", params={"by": "colour",
                                                                        "weeks": weeks})
    s["perf_refused"] = {
        "bad by": api("planner", "GET", "/performance", params={"by": "district"}),
        "reversed weeks": api("planner", "GET", "/performance",
                              params={"weeks": f"{LAST}:{FIRST}"}),
        "not a week": api("planner", "GET", "/performance", params={"weeks": "2026-W60"}),
        "one digit": api("planner", "GET", "/performance", params={"weeks": "2026-W1:"}),
        "provider": api("provider", "GET", "/performance"),
    }
    s["provider_refused"] = {
        "evaluate": api("provider", "POST", "/alerts/evaluate").status_code,
        "webhooks": api("provider", "GET", "/webhooks").status_code,
        "fund manager webhooks": api("fund_manager", "GET", "/webhooks").status_code,
    }
    return s


# -- alerts --------------------------------------------------------------------------------


def test_the_first_evaluation_opens_an_alert_per_finding(flow):
    """Through the API, the first evaluation opens every condition found at the latest week;
    the planner lists exactly those, each with its rule's bilingual title."""
    evaluation = flow["evaluation"]
    assert evaluation["week"] == LAST
    assert evaluation["opened"] == evaluation["findings"] > 0
    assert evaluation["updated"] == evaluation["resolved"] == 0
    listed = flow["listed"]["planner"]
    assert len(listed) == evaluation["opened"]
    assert listed == flow["listed"]["admin"]
    assert {a["state"] for a in listed} == {"open"} and {a["since"] for a in listed} == {LAST}
    policy = flow["register"].policy.alerts
    for alert in listed:
        assert alert["alert_id"] == f"{alert['rule']}:{alert['subject_kind']}:" \
                                    f"{alert['subject_id']}"
        assert (alert["title_zh"], alert["title_en"]) == (policy[alert["rule"]]["zh"],
                                                          policy[alert["rule"]]["en"])
    assert {"unmet", "provider_declines"} <= {a["rule"] for a in listed}
    assert flow["evaluate_refused"] == {"fund_manager": 403}
    assert flow["by_rule"] == [a for a in listed if a["rule"] == "unmet"]


def test_an_evaluation_before_the_last_evaluated_week_or_after_the_last_opened_is_refused(
        flow):
    """A past week would resolve what the latest evaluation found (acknowledgements lost), a
    week never opened would open false alerts and push them: 422 naming the week, the alerts
    as they were (and nothing pushed beyond the evaluations made: checked with the pushes)."""
    for week, response in flow["bad_weeks"].items():
        assert response.status_code == 422, (week, response.text)
        problem, = response.json()["problems"]
        assert (problem["column"], problem["value"], problem["code"]) == (
            "week", week, "week_not_evaluable")
        assert f"week={week}" in problem["message_zh"] and LAST in problem["hint_en"]
    assert "早于最近评估的周" in flow["bad_weeks"][FIRST].json()["problems"][0]["message_zh"]
    assert flow["after_bad_weeks"] == flow["before_bad_weeks"]


def test_each_role_sees_its_own_alerts(flow):
    """A coordinator: exactly the alerts whose centre is in their subtree (from the register's
    centres); a fund manager: the fund alerts; a provider: the alerts about itself."""
    listed, everything = flow["listed"], flow["listed"]["planner"]
    own = flow["own_subtree"]
    other = _subtree(flow["centres"], OTHER_STREET)
    assert listed["coordinator"] == [a for a in everything if a["centre"] in own]
    assert listed["other_coordinator"] == [a for a in everything if a["centre"] in other]
    assert listed["coordinator"] and listed["other_coordinator"]
    assert len(listed["coordinator"]) < len(everything)
    # Alerts of the district or the city (a fund's or provider's centre) reach neither street.
    above = [a for a in everything if a["centre"] not in own | other]
    assert above and not {a["alert_id"] for a in above} & {
        a["alert_id"] for a in listed["coordinator"] + listed["other_coordinator"]}
    assert listed["fund_manager"] == [a for a in everything if a["rule"] in FUND_RULES]
    assert listed["fund_manager"], "the seeded weeks give a fund alert"
    assert flow["fund_manager_unmet"] == []
    assert listed["provider"] == [a for a in everything if a["subject_kind"] == "provider"
                                  and a["subject_id"] == flow["declining"]]
    assert listed["provider"] and listed["calm_provider"] == []


def test_acknowledging_is_fenced_and_kept(flow):
    ack, target = flow["ack"], flow["target"]
    assert ack["alert_id"] == target["alert_id"] and ack["state"] == "acknowledged"
    assert ack["ack_note"] == "visiting on Tuesday"
    assert ack["ack_by"] == f"token:{flow['me_coordinator']['token_id']}"
    assert ack["ack_at"] and ack["numbers"] == target["numbers"]
    assert flow["ack_refused"] == {"other coordinator": 403,
                                   "fund manager, not a fund alert": 403, "provider": 403,
                                   "unknown alert": 404, "extra field": 422}
    fund = flow["fund_ack"]
    assert fund is not None and fund["state"] == "acknowledged" and fund["rule"] in FUND_RULES
    events = flow["register"].events(subject=f"alerts:{target['alert_id']}")
    # (it may open again later, when another of the household's needs has waited long enough)
    assert list(events["kind"])[:3] == ["alert.open", "alert.acknowledge", "alert.resolve"]


def test_an_acknowledged_alert_whose_condition_clears_resolves(flow):
    """The coordinator withdraws the needs behind their acknowledged alert; the next
    evaluation resolves it, and acknowledging it again is a 409."""
    target = flow["target"]["alert_id"]
    assert flow["evaluation2"]["resolved"] >= 1
    resolved = {a["alert_id"]: a for a in flow["resolved"]}
    assert target in resolved and resolved[target]["resolved_at"]
    assert resolved[target]["ack_note"] == "visiting on Tuesday"
    assert target not in {a["alert_id"] for a in flow["before_close"]}
    response = flow["ack_resolved"]
    assert response.status_code == 409 and " / " in response.json()["detail"]["message"]


def test_closing_a_week_evaluates_the_alerts(flow):
    """The close answers the evaluation's counts at the closed week, and the alerts listed
    after it agree: every one found again at that week, the new ones since then."""
    counts = flow["close"]["alerts"]
    assert counts is not None and counts["week"] == NEXT
    after = flow["after_close"]
    assert counts["findings"] == len(after)
    assert {a["last_week"] for a in after} == {NEXT}
    assert counts["opened"] == len(flow["opened_at_close"])
    before = {a["alert_id"] for a in flow["before_close"]}
    assert counts["resolved"] == len(before - {a["alert_id"] for a in after})
    # Every alert still found was last found at the week before: each one is updated.
    assert counts["updated"] == len(after) - counts["opened"]
    assert counts["updated"] == len(before & {a["alert_id"] for a in after})


# -- pushes --------------------------------------------------------------------------------


def test_opened_alerts_are_pushed_signed_to_the_centres_above_and_the_provider(flow):
    """The city's webhook gets every alert opened; the coordinator's street only those of its
    subtree; each provider those about itself. Every body verifies with the secret."""
    receiver = flow["receiver"]
    with receiver.lock:
        got = list(receiver.got)
    assert got
    for request in got:
        expected = hmac.new(SECRET.encode(), request["body"], hashlib.sha256).hexdigest()
        assert request["headers"]["X-Wulian-Signature"] == f"sha256={expected}"
    city = [e["data"] for e in receiver.events("/city", "alert.opened")]
    # Each alert once per time it opened (one reopened after it resolved is pushed again).
    assert len(city) == flow["total_opened"]
    opened = {a["alert_id"] for a in flow["listed"]["planner"] + flow["before_close"]
              + flow["opened_at_close"]}
    assert {a["alert_id"] for a in city} == opened
    own = [e["data"] for e in receiver.events("/own", "alert.opened")]
    assert own and sorted(a["alert_id"] for a in own) == sorted(
        a["alert_id"] for a in city if a["centre"] in flow["own_subtree"])
    for provider in flow["providers"]:
        about = [e["data"]["alert_id"] for e in receiver.events(f"/provider/{provider}",
                                                                "alert.opened")]
        assert about == [a["alert_id"] for a in city if a["subject_kind"] == "provider"
                         and a["subject_id"] == provider]
    assert any(e["data"]["subject_kind"] == "provider" for e in receiver.events(
        f"/provider/{flow['declining']}", "alert.opened"))
    assert receiver.events("/removed", "alert.opened") == []


def test_a_weeks_tasks_are_pushed_to_their_providers_and_counted_for_the_centres(flow):
    receiver, tasks = flow["receiver"], pd.DataFrame(flow["tasks_next"])
    assert flow["open"]["tasks"] == len(tasks) > 0
    for provider, part in tasks.groupby("provider_id"):
        [published] = receiver.events(f"/provider/{provider}", "tasks.published")
        assert published["data"]["week"] == NEXT
        assert [t["task_id"] for t in published["data"]["tasks"]] == sorted(part["task_id"])
        assert all("lat" not in t and "lon" not in t for t in published["data"]["tasks"])
    [city] = receiver.events("/city", "tasks.summary")
    [own] = receiver.events("/own", "tasks.summary")
    assert city["data"]["tasks"] == len(tasks)
    assert own["data"]["tasks"] == int(tasks["station_id"].isin(flow["own_subtree"]).sum())


def test_webhooks_are_managed_by_role_and_list_their_deliveries(flow):
    assert flow["hook_city"].status_code == 201 and flow["hook_own"].status_code == 201
    assert "secret" not in flow["hook_city"].json()
    assert flow["hook_refused"] == {"coordinator, other street": 403,
                                    "coordinator, the district": 403,
                                    "coordinator, a provider": 403, "fund manager": 403}
    assert flow["hook_unknown"].status_code == 422
    assert flow["hook_bad_url"].status_code == 422
    assert (flow["delete_refused"], flow["delete"], flow["delete_again"]) == (403, 204, 404)
    assert [(h["target_kind"], h["target_id"]) for h in flow["hooks_coordinator"]] == [
        ("centre", OWN_STREET)]
    assert flow["hooks_other_coordinator"] == []
    hooks = {h["target_id"]: h for h in flow["hooks"]}
    city = hooks["C0"]
    assert city["deliveries"] == len(flow["receiver"].events("/city", "alert.opened")) + 1
    assert city["failed"] == 0 and city["last_status"] == 200
    assert SECRET not in json.dumps(flow["hooks"])
    stored = notify.deliveries(flow["register"])
    assert len(stored) and stored["ok"].all() and (stored["attempts"] == 1).all()
    assert flow["provider_refused"] == {"evaluate": 403, "webhooks": 403,
                                        "fund manager webhooks": 403}


# -- performance ---------------------------------------------------------------------------


def _table(body: dict, name: str) -> pd.DataFrame:
    table = body[name]
    assert table["total_rows"] == len(table["rows"])
    return pd.DataFrame(table["rows"], columns=table["columns"])


def test_performance_tables_count_the_weeks_tasks(flow):
    perf = flow["perf"]
    assert set(perf) == {"by_provider", "fill_rate", "monitoring", "reach"}
    tasks = flow["tasks_weeks"]
    tasks = tasks[(tasks["week"] >= FIRST) & (tasks["week"] <= LAST)]
    by_provider = _table(perf, "by_provider").set_index("provider")
    assert by_provider["tasks"].to_dict() == tasks.groupby("provider_id").size().to_dict()
    delivered = tasks[tasks["status"] == "delivered"].groupby("provider_id").size()
    assert by_provider["delivered"].to_dict() == delivered.reindex(
        by_provider.index, fill_value=0).to_dict()
    fill = _table(perf, "fill_rate")
    assert set(fill["week"]) == {"2026-W49", "2026-W50", "2026-W51", "2026-W52"}
    assert ((fill["fill_rate"] >= 0) & (fill["fill_rate"] <= 1)).all()
    by_fund = _table(flow["perf_fund_manager"], "by_fund")
    funded = tasks[tasks["fund_id"] != ""]
    assert by_fund.set_index("fund")["tasks"].to_dict() == funded.groupby("fund_id").size() \
        .to_dict()


def test_a_coordinator_gets_the_performance_of_their_subtree(flow):
    by_street = _table(flow["perf_coordinator"], "by_street")
    assert list(by_street["street"]) == [OWN_STREET]
    mine = flow["tasks_coordinator"]
    mine = mine[(mine["week"] >= FIRST) & (mine["week"] <= LAST)]
    assert int(by_street["tasks"].iloc[0]) == len(mine) > 0
    reach = _table(flow["perf_coordinator"], "reach")
    everyone = _table(flow["perf"], "reach")
    assert reach["households"].sum() < everyone["households"].sum()


def test_the_performance_workbook_holds_the_same_tables(flow):
    from openpyxl import load_workbook

    response = flow["xlsx"]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert "attachment" in response.headers["content-disposition"]
    book = load_workbook(io.BytesIO(response.content))
    # The index sheet first (what each sheet holds, in words), then one sheet per table.
    assert book.sheetnames[0].startswith("目录")
    assert book.sheetnames[1:] == ["按颜色 by colour", "满足率 fill rate", "巡查 monitoring",
                                   "惠及 reach"]
    json_tables = flow["perf_colour"]
    for sheet, name in (("按颜色 by colour", "by_colour"), ("满足率 fill rate", "fill_rate")):
        rows = list(book[sheet].iter_rows(values_only=True))
        assert len(rows) - 1 == json_tables[name]["total_rows"] > 0
    colours = [r[0] for r in book["按颜色 by colour"].iter_rows(min_row=2, values_only=True)]
    # Colours are shown as words in the workbook ("红色 red"), codes in JSON.
    assert [c.split()[-1] for c in colours] == [r["colour"] for r in
                                                json_tables["by_colour"]["rows"]]


def test_performance_refuses_a_bad_grouping_or_range(flow):
    refused = flow["perf_refused"]
    assert {k: r.status_code for k, r in refused.items()} == {
        "bad by": 422, "reversed weeks": 422, "not a week": 422, "one digit": 422,
        "provider": 403}
    for key in ("bad by", "reversed weeks", "not a week"):
        problems = refused[key].json()["problems"]
        assert problems and problems[0]["column"].endswith(("by", "weeks"))


def test_household_ids_never_reach_the_log(flow):
    """Alert ids name households; acknowledging by path does not put them in the log."""
    log = flow["api"].server.output
    assert "/alerts/" in log and "acknowledge" in log
    ids = flow["register"].table("households")["household_id"]
    assert [h for h in ids if h in log] == []
