"""Roles over real HTTP: every endpoint × every role, the coordinator fenced to a subtree, no
token → 401, and no household id in the server's log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import Server, make_token

QUARTER = "2027Q1"
ROLES = ("none", "planner", "fund_manager", "coordinator", "admin")
OWN_STREET, OTHER_STREET = "D04S01", "D04S02"  # the tiny preset's two streets


@pytest.fixture(scope="module")
def svc(tmp_path_factory, tiny_scenario):
    """A live server with one token per role (the coordinator's for street D04S01), the tiny
    scenario uploaded and three finished jobs: one per street and one for the whole network."""
    root = tmp_path_factory.mktemp("roles")
    url = f"sqlite:///{root / 'store.sqlite'}"
    server = Server(url, root / "data", root / "server.log", "--workers", "1").start()
    client = httpx.Client(base_url=server.url + "/v1", timeout=120)
    try:
        yield _prepare(server, client, url, tiny_scenario)
    finally:
        client.close()
        server.stop()


def _prepare(server: Server, client: httpx.Client, url: str, scenario: Path) -> dict:
    tokens = {role: make_token(url, role, OWN_STREET if role == "coordinator" else None)
              for role in ROLES[1:]}
    tokens["other_coordinator"] = make_token(url, "coordinator", OTHER_STREET)
    files = [("files", (p.name, p.read_bytes())) for p in sorted(scenario.iterdir())]
    up = client.post("/scenarios", files=files, headers=_auth(tokens["planner"]))
    assert up.status_code == 201, up.text
    digest = up.json()["digest"]
    jobs = {}
    for key, centre in (("own", OWN_STREET), ("other", OTHER_STREET), ("all", None)):
        body = {"scenario": digest, "quarter": QUARTER, **({"centre": centre} if centre else {})}
        r = client.post("/jobs", json=body, headers=_auth(tokens["planner"]))
        assert r.status_code == 201, r.text
        jobs[key] = r.json()["job_id"]
    deadline = time.monotonic() + 600
    for job_id in jobs.values():
        while (job := client.get(f"/jobs/{job_id}", headers=_auth(tokens["planner"]))
               .json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, "jobs did not finish"
            time.sleep(0.3)
        assert job["state"] == "done", job
    return {"server": server, "client": client, "tokens": tokens, "digest": digest,
            "jobs": jobs, "scenario": scenario}


def _auth(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _call(svc, role: str, method: str, path: str, **kw) -> httpx.Response:
    path = path.format(digest=svc["digest"], **{f"job_{k}": v for k, v in svc["jobs"].items()})
    return svc["client"].request(method, path, headers=_auth(svc["tokens"].get(role)), **kw)


def _upload_files(svc) -> list:
    return [("files", (p.name, p.read_bytes())) for p in sorted(svc["scenario"].iterdir())]


P, F, C, A = "planner", "fund_manager", "coordinator", "admin"


def _expect(ok: int, allowed: tuple[str, ...], denied: int = 403) -> dict[str, int]:
    return {role: (ok if role in allowed else denied) for role in ROLES[1:]} | {"none": 401}


# (name, method, path, request keywords, expected status per role). Job paths name the job
# for the coordinator's own street ({job_own}), the other street ({job_other}) or the whole
# network ({job_all}). A 409 on cancelling a finished job means the role got past the checks.
MATRIX = [
    ("me", "GET", "/me", {}, _expect(200, (P, F, C, A))),
    ("list scenarios", "GET", "/scenarios", {}, _expect(200, (P, F, C, A))),
    ("upload scenario", "POST", "/scenarios", {"files": _upload_files}, _expect(200, (P, A))),
    ("funds", "GET", "/scenarios/{digest}/funds", {}, _expect(200, (P, F, A))),
    ("households", "GET", "/scenarios/{digest}/households", {}, _expect(200, (P, C, A))),
    ("households of own street", "GET", f"/scenarios/{{digest}}/households?centre={OWN_STREET}",
     {}, _expect(200, (P, C, A))),
    ("households of other street", "GET",
     f"/scenarios/{{digest}}/households?centre={OTHER_STREET}", {}, _expect(200, (P, A))),
    ("households of the district", "GET", "/scenarios/{digest}/households?centre=D04", {},
     _expect(200, (P, A))),
    ("budget lab", "POST", "/scenarios/{digest}/budget-lab", {"json": {}},
     _expect(200, (P, F, A))),
    ("list jobs", "GET", "/jobs", {}, _expect(200, (P, F, C, A))),
    ("status own job", "GET", "/jobs/{job_own}", {}, _expect(200, (P, F, C, A))),
    ("status other job", "GET", "/jobs/{job_other}", {}, _expect(200, (P, F, A))),
    ("status network job", "GET", "/jobs/{job_all}", {}, _expect(200, (P, F, A))),
    ("cancel own finished job", "POST", "/jobs/{job_own}/cancel", {}, _expect(409, (P, C, A))),
    ("cancel other finished job", "POST", "/jobs/{job_other}/cancel", {},
     _expect(409, (P, A))),
    ("money table", "GET", "/jobs/{job_own}/tables/money", {}, _expect(200, (P, F, C, A))),
    ("funds table", "GET", "/jobs/{job_own}/tables/funds?format=csv", {},
     _expect(200, (P, F, C, A))),
    ("volunteers table", "GET", "/jobs/{job_own}/tables/volunteers", {},
     _expect(200, (P, C, A))),
    ("fill rate table", "GET", "/jobs/{job_own}/tables/fill_rate?format=parquet", {},
     _expect(200, (P, C, A))),
    ("other street's table", "GET", "/jobs/{job_other}/tables/money", {},
     _expect(200, (P, F, A))),
    ("network table", "GET", "/jobs/{job_all}/tables/volunteers", {}, _expect(200, (P, A))),
    ("explanation own", "GET", "/jobs/{job_own}/explanation", {}, _expect(200, (P, C, A))),
    ("explanation other", "GET", "/jobs/{job_other}/explanation", {}, _expect(200, (P, A))),
    ("list tokens", "GET", "/tokens", {}, _expect(200, (A,))),
    ("make token", "POST", "/tokens", {"json": {"role": "planner", "label": "t"}},
     _expect(201, (A,))),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "method", "path", "kw", "expected"), MATRIX,
                         ids=[m[0] for m in MATRIX])
def test_endpoint_by_role(svc, role, name, method, path, kw, expected):
    """Each endpoint answers each role with the documented status (401 without a token)."""
    kw = {k: (v(svc) if callable(v) else v) for k, v in kw.items()}
    response = _call(svc, role, method, path, **kw)
    assert response.status_code == expected[role], (role, name, response.text[:500])
    if response.status_code in (401, 403):
        detail = response.json()["detail"]
        assert " / " in detail["message"]  # Chinese / English
        assert detail["code"] in ("no_token", "bad_token", "forbidden")
    if response.status_code == 401:
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("role", ROLES)
def test_submit_and_cancel_by_role(svc, role):
    """Submitting a job: planner, admin and the coordinator (their own subtree only) may; the
    fund manager may not; each job made is cancelled by the role that made it."""
    body = {"scenario": svc["digest"], "quarter": "2027Q2", "centre": OWN_STREET}
    response = _call(svc, role, "POST", "/jobs", json=body)
    expected = {"none": 401, P: 201, F: 403, C: 201, A: 201}[role]
    assert response.status_code == expected, response.text
    if expected == 201:
        job = response.json()
        assert job["owner_role"] == role and job["centre"] == OWN_STREET
        cancel = _call(svc, role, "POST", f"/jobs/{job['job_id']}/cancel")
        assert cancel.status_code in (202, 409), cancel.text
        assert cancel.status_code == 409 or cancel.json()["cancel_requested"], cancel.text


def test_coordinator_is_fenced_to_their_subtree(svc):
    """A coordinator of one street: their households and jobs only; the other street's and the
    whole network's are refused; a job without a centre is for their own street."""
    hh = pd.read_csv(svc["scenario"] / "households.csv", dtype=str)
    own = _call(svc, "coordinator", "GET", "/scenarios/{digest}/households?limit=100000")
    assert own.status_code == 200
    body = own.json()
    assert body["centre"] == OWN_STREET
    got = {h["household_id"] for h in body["households"]}
    expected = set(hh.loc[hh["station_id"].str.startswith(OWN_STREET), "household_id"])
    assert got == expected and body["total_rows"] == len(expected) > 0
    assert not got & set(hh.loc[hh["station_id"].str.startswith(OTHER_STREET), "household_id"])
    other = svc["client"].get(f"/scenarios/{svc['digest']}/households",
                              headers=_auth(svc["tokens"]["other_coordinator"]))
    assert {h["household_id"] for h in other.json()["households"]}.isdisjoint(got)
    listed = _call(svc, "coordinator", "GET", "/jobs").json()
    assert listed and all(j["centre"] and j["centre"].startswith(OWN_STREET) for j in listed)
    assert svc["jobs"]["own"] in {j["job_id"] for j in listed}
    assert not {svc["jobs"]["other"], svc["jobs"]["all"]} & {j["job_id"] for j in listed}
    planner_sees = {j["job_id"] for j in _call(svc, "planner", "GET", "/jobs").json()}
    assert set(svc["jobs"].values()) <= planner_sees
    refused = _call(svc, "coordinator", "POST", "/jobs",
                    json={"scenario": svc["digest"], "quarter": QUARTER,
                          "centre": OTHER_STREET})
    assert refused.status_code == 403
    default = _call(svc, "coordinator", "POST", "/jobs",
                    json={"scenario": svc["digest"], "quarter": "2027Q3"})
    assert default.status_code == 201 and default.json()["centre"] == OWN_STREET
    assert _call(svc, "coordinator", "POST",
                 f"/jobs/{default.json()['job_id']}/cancel").status_code in (202, 409)


def test_a_coordinator_sees_no_network_aggregates_in_a_job(svc):
    """Issue 17, finding 9: a job's explanation (``info.split``) and its ``funds`` table
    carried the network's numbers, although ``/funds`` is refused to a coordinator. The
    planner still sees them; the coordinator sees their subtree's money only."""
    job = svc["jobs"]["own"]
    planner = _call(svc, "planner", "GET", f"/jobs/{job}/explanation").json()
    assert "split" in planner["info"]
    own = _call(svc, "coordinator", "GET", f"/jobs/{job}/explanation")
    assert own.status_code == 200 and "split" not in own.json()["info"]
    assert "fill_rate" not in json.dumps(own.json()["info"])
    full = _call(svc, "planner", "GET", f"/jobs/{job}/tables/funds").json()
    fenced = _call(svc, "coordinator", "GET", f"/jobs/{job}/tables/funds").json()
    assert {"weekly_budget", "quarter_budget", "share"} <= set(full["columns"])
    assert not {"weekly_budget", "quarter_budget", "share"} & set(fenced["columns"])
    assert [r["planned"] for r in fenced["rows"]] == [r["planned"] for r in full["rows"]]
    csv_text = _call(svc, "coordinator", "GET", f"/jobs/{job}/tables/funds?format=csv").text
    assert "quarter_budget" not in csv_text


def test_unknown_and_revoked_tokens_are_401(svc):
    """A made-up token and a revoked one are refused with 401; revoking needs admin."""
    client = svc["client"]
    assert client.get("/me", headers=_auth("wl_not-a-real-token")).status_code == 401
    assert client.get("/me", headers=_auth("Basic abc")).status_code == 401
    made = _call(svc, "admin", "POST", "/tokens", json={"role": "fund_manager"}).json()
    assert client.get("/me", headers=_auth(made["secret"])).json()["role"] == "fund_manager"
    path = f"/tokens/{made['token_id']}"
    assert _call(svc, "planner", "DELETE", path).status_code == 403
    assert _call(svc, "admin", "DELETE", path).status_code == 204
    assert client.get("/me", headers=_auth(made["secret"])).status_code == 401
    assert _call(svc, "admin", "DELETE", "/tokens/99999").status_code == 404
    listed = _call(svc, "admin", "GET", "/tokens").json()
    assert all("secret" not in t and "secret_sha256" not in t for t in listed)
    assert any(t["token_id"] == made["token_id"] and t["revoked"] for t in listed)


def test_a_coordinator_token_needs_a_centre(svc):
    """Making a coordinator's token without a centre is refused with the reason (422), naming
    the request's field (not the command line's flag)."""
    response = _call(svc, "admin", "POST", "/tokens", json={"role": "coordinator"})
    assert response.status_code == 422
    problem = response.json()["problems"][0]
    assert problem["column"] == "centre" and "needs a centre" in problem["message_en"]


def test_household_ids_never_reach_the_log(svc):
    """After every call above, the server's log holds no household id (but does log jobs)."""
    _call(svc, "planner", "GET", "/scenarios/{digest}/households?limit=100000")
    log = svc["server"].output
    assert "job" in log and "GET /v1/" in log  # the log is really being written
    ids = pd.read_csv(Path(svc["scenario"]) / "households.csv", dtype=str)["household_id"]
    leaked = [h for h in ids if h in log]
    assert leaked == []
