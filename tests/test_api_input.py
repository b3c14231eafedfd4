"""What the service does with input it must refuse, and how it says so, over real HTTP on SQLite
and on PostgreSQL: control characters in any text of a request, an upload that names a table
twice or a file no table, schema problems said in Chinese as well as English, a ledger asked
for weeks that do not exist, a week closed for a scope it was not opened for, a role refused
in words — and need ids, which embed the household id, kept out of the access log."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import Server, fresh_store_url, make_token
from wulian.api.auth import ACTION_NAMES, PERMISSIONS

W49 = "2026-W49"
OWN_STREET = "D04S01"  # one of the tiny preset's two streets
CJK = re.compile(r"[\u4e00-\u9fff]")


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class Api:
    """The live service, called with one role's token at a time."""

    def __init__(self, server: Server, tokens: dict[str, str]):
        self.server, self.tokens = server, tokens
        self.client = httpx.Client(base_url=server.url + "/v1", timeout=300)

    def __call__(self, who: str, method: str, path: str, **kw) -> httpx.Response:
        headers = {**_auth(self.tokens[who]), **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def ok(self, who: str, method: str, path: str, status: int = 200, **kw) -> dict | list:
        response = self(who, method, path, **kw)
        assert response.status_code == status, (who, method, path, response.text[:2000])
        return response.json()


def _files(folder: Path) -> list:
    return [("files", (p.name, p.read_bytes())) for p in sorted(folder.iterdir())]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request, tmp_path_factory, tiny_scenario):
    """A live service with the tiny scenario in its register and 2026-W49 opened for one
    street; a token per role."""
    root = tmp_path_factory.mktemp(f"input-{request.param}")
    url = fresh_store_url(request, root, "wulian_api_input")
    server = Server(url, root / "data", root / "server.log", "--workers", "1").start()
    tokens = {role: make_token(url, role) for role in ("planner", "fund_manager", "admin")}
    api = Api(server, tokens)
    try:
        api.ok("planner", "POST", "/register/import", files=_files(tiny_scenario))
        api.ok("planner", "POST", "/weeks", 201, json={"week": W49, "centre": OWN_STREET})
        yield {"api": api, "scenario": tiny_scenario, "backend": request.param}
    finally:
        api.client.close()
        server.stop()


def _only_problem(response: httpx.Response) -> dict:
    assert response.status_code == 422, response.text[:2000]
    body = response.json()
    assert body["total"] == len(body["problems"]) == 1, body
    return body["problems"][0]


# -- control characters -------------------------------------------------------------------------

def test_control_characters_are_refused_in_every_text_of_a_request(live):
    """A NUL (or another control character) in a body's field, a dictionary's key, a path or a
    query parameter is a 422 naming the field, on both backends (PostgreSQL cannot store a
    NUL: it was a plain-text 500), and nothing is stored."""
    api = live["api"]
    household = pd.read_csv(live["scenario"] / "households.csv", dtype=str)["household_id"][0]
    cases = {
        "body.label": ("admin", "POST", "/tokens",
                       {"json": {"role": "planner", "label": "a\u0000b"}}),
        "body.household_id": ("planner", "POST", "/register/households",
                              {"json": {"household_id": "H\u0000X"}}),
        "body.need_id": ("planner", "POST", "/register/needs",
                         {"json": {"need_id": "N\u0000", "household_id": household,
                                   "service_id": "food_parcel", "quantity": 1}}),
        "body.note": ("planner", "POST", f"/alerts/unmet:household:{household}/acknowledge",
                      {"json": {"note": "上门\u0000"}}),
        "body.budgets": ("planner", "POST", "/scenarios/0123456789abcdef/budget-lab",
                         {"json": {"budgets": {"F\u0001": 5}}}),
        "query.subject": ("planner", "GET", "/events", {"params": {"subject": "x\u0000"}}),
        "path.need_id": ("planner", "POST", "/register/needs/N%00/withdraw", {}),
    }
    for column, (who, method, path, kw) in cases.items():
        problem = _only_problem(api(who, method, path, **kw))
        assert problem["column"] == column
        assert "控制字符" in problem["message_zh"] and "control character" in problem["message_en"]
    assert [t for t in api.ok("admin", "GET", "/tokens") if "\u0000" in t["label"]] == []
    assert "Traceback" not in api.server.output


# -- the access log -----------------------------------------------------------------------------

def test_need_ids_never_bring_a_household_id_into_the_log(live):
    """A need raised without an id gets one made from the week and the household; withdrawing
    it puts that id in the request line, which the access log masks."""
    api = live["api"]
    needs = pd.read_csv(live["scenario"] / "needs.csv", dtype=str)
    household, service = needs.loc[0, ["household_id", "service_id"]]
    need = api.ok("planner", "POST", "/register/needs", 201, json={
        "household_id": household, "service_id": service, "quantity": 1, "week": "2026-W50"})
    assert household in need["need_id"]  # the default id names the household
    api.ok("planner", "POST", f"/register/needs/{need['need_id']}/withdraw")
    log = api.server.output
    assert "/v1/register/needs/…/withdraw" in log
    ids = pd.read_csv(live["scenario"] / "households.csv", dtype=str)["household_id"]
    assert [h for h in ids if h in log] == []


# -- uploads ------------------------------------------------------------------------------------

def test_an_upload_refuses_a_table_sent_twice_and_a_file_no_table_is_named_by(live, tmp_path):
    """Two files of one table (in either order) and files whose names are no table are each
    a problem — none is silently dropped — and nothing is kept."""
    api = live["api"]
    files = _files(live["scenario"])
    households = next(f for f in files if f[1][0] == "households.csv")
    broken = ("files", ("households.csv", b"household_id\nH1\n"))
    kept = len(api.ok("planner", "GET", "/scenarios"))
    for pair in ([households, broken], [broken, households]):
        others = [f for f in files if f[1][0] != "households.csv"]
        body = api("planner", "POST", "/scenarios", files=others + pair)
        assert body.status_code == 422, body.text[:2000]
        duplicates = [p for p in body.json()["problems"] if p["code"] == "duplicate_file"]
        assert [(p["table"], p["value"]) for p in duplicates] == [
            ("households", "households.csv, households.csv")]
        assert "households" in duplicates[0]["message_zh"]
    unknown = api("planner", "POST", "/scenarios", files=[
        *files, ("files", ("家庭.csv", households[1][1])),
        ("files", ("househlds.csv", households[1][1]))])
    assert unknown.status_code == 422, unknown.text[:2000]
    found = {p["value"]: p for p in unknown.json()["problems"]
             if p["code"] == "unknown_table_file"}
    assert set(found) == {"家庭.csv", "househlds.csv"}
    assert "households, needs" in found["家庭.csv"]["hint_en"]
    assert "`households`" in found["househlds.csv"]["hint_zh"]  # did you mean
    mixed = api("planner", "POST", "/scenarios", files=[
        households, ("files", ("scenario.xlsx", b"PK not a workbook"))])
    assert mixed.status_code == 422, mixed.text[:2000]
    said = [p for p in mixed.json()["problems"] if p["code"] == "unreadable_file"]
    assert said and all(not re.search(r"[A-Za-z]{4}", p["message_zh"].replace("xlsx", ""))
                        and not CJK.search(p["message_en"]) for p in said), said
    assert len(api.ok("planner", "GET", "/scenarios")) == kept


# -- messages -----------------------------------------------------------------------------------

def test_schema_problems_say_what_is_allowed_in_chinese(live):
    """A request the schema refuses says in Chinese too which field and what it allows (the
    enumeration's values, the pattern in words, the bounds); no Python reprs."""
    api = live["api"]
    job = api("planner", "POST", "/jobs", json={"scenario": "0123456789abcdef",
                                                "quarter": "2027q2", "engine": "fast"})
    assert job.status_code == 422
    by_column = {p["column"]: p for p in job.json()["problems"]}
    assert "2027Q2" in by_column["body.quarter"]["message_zh"]
    assert "local" in by_column["body.engine"]["message_zh"]
    answer = api("planner", "POST", "/tasks/T2026W49-D04S01-000001/answer",
                 json={"status": "已完成", "units_delivered": -1})
    by_column = {p["column"]: p for p in answer.json()["problems"]}
    assert "delivered" in by_column["body.status"]["message_zh"]
    assert "不小于 0" in by_column["body.units_delivered"]["message_zh"]
    plain = _only_problem(api("planner", "POST", "/weeks", content=b"2026-W49",
                              headers={"Content-Type": "text/plain"}))
    assert plain["value"] == "2026-W49" and "JSON" in plain["message_zh"]
    broken = _only_problem(api("planner", "POST", "/weeks", content=b'{"week": ',
                               headers={"Content-Type": "application/json"}))
    assert broken["column"] == "body" and "JSON" in broken["message_zh"]
    for problem in (*by_column.values(), plain, broken):
        assert problem["message_zh"] != "请求参数无效" and CJK.search(problem["message_zh"])
        assert not CJK.search(problem["message_en"] + problem["hint_en"]), problem


def test_refusals_name_no_command_line_flags_internal_actions_or_stars(live):
    """A token request missing its centre names the field, not the command line's flag; a 403
    says what the role may not do in words; a week closed for the whole network when it was
    opened for a street says so, and for which street."""
    api = live["api"]
    token = _only_problem(api("admin", "POST", "/tokens", json={"role": "coordinator"}))
    assert token["column"] == "centre" and "--" not in token["message_en"] + token["message_zh"]
    assert not CJK.search(token["message_en"])
    refused = api("fund_manager", "POST", "/weeks", json={"week": W49})
    assert refused.status_code == 403
    message = refused.json()["detail"]["message"]
    assert "week:manage" not in message and "open or close a week" in message
    closed = api("planner", "POST", f"/weeks/{W49}/close")
    assert closed.status_code == 404
    zh, en = closed.json()["detail"]["message"].split(" / ")
    assert "全市" in zh and OWN_STREET in zh and "*" not in zh
    assert "the whole network" in en and OWN_STREET in en and "*" not in en
    assert "没有该路径" in api("planner", "GET", "/nowhere").json()["detail"]["message"]


def test_every_action_a_role_may_be_refused_is_said_in_words():
    """Each action of the permission matrix has its words in both languages, for the 403."""
    assert set(ACTION_NAMES) == set(PERMISSIONS)
    for zh, en in ACTION_NAMES.values():
        assert CJK.search(zh) and not CJK.search(en) and ":" not in zh + en


def test_the_ledger_refuses_weeks_the_performance_refuses(live):
    """A week that does not exist (2027 has 52) or a first week after the last is a 422, as
    for the performance; a right range answers."""
    api = live["api"]
    for params in ({"first": "2027-W53"}, {"first": "2026-W52", "last": "2026-W49"}):
        ledger = api("planner", "GET", "/funds/ledger", params=params)
        performance = api("planner", "GET", "/performance", params={
            "weeks": f"{params['first']}:{params.get('last', '')}"})
        assert ledger.status_code == performance.status_code == 422, (params, ledger.text)
        assert ledger.json()["problems"][0]["code"] == performance.json()["problems"][0]["code"]
    api.ok("planner", "GET", "/funds/ledger", params={"first": W49, "last": W49})


def test_every_route_with_a_body_documents_the_413(live):
    """The gate's 413 (a body above the limit) is in the OpenAPI answers of every POST."""
    doc = httpx.get(live["api"].server.url + "/openapi.json").json()
    posts = [(path, op) for path, methods in doc["paths"].items()
             for method, op in methods.items() if method == "post"]
    assert len(posts) >= 15
    assert [path for path, op in posts if "413" not in op["responses"]] == []
