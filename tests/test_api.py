"""The batch service end to end over real HTTP: a live `wulian serve` on localhost, httpx."""

from __future__ import annotations

import io
import re
import shutil
import signal
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import Server, make_token
from wulian.api.cli import main
from wulian.planning.io import read_raw, write_tables
from wulian.planning.scenario import check_raw, load_scenario

QUARTER = "2027Q1"
DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"


@pytest.fixture(scope="module")
def svc(tmp_path_factory, tiny_scenario):
    """A live server running two jobs at once, a planner's token, the tiny scenario
    uploaded."""
    root = tmp_path_factory.mktemp("api")
    url = f"sqlite:///{root / 'store.sqlite'}"
    server = Server(url, root / "data", root / "server.log", "--jobs", "2",
                    "--workers", "1").start()
    token = make_token(url, "planner")
    client = httpx.Client(base_url=server.url + "/v1", timeout=120,
                          headers={"Authorization": f"Bearer {token}"})
    try:
        up = client.post("/scenarios", files=_files(tiny_scenario), data={"name": "tiny"})
        assert up.status_code == 201, up.text
        yield {"server": server, "client": client, "token": token, "url": url, "root": root,
               "digest": up.json()["digest"], "scenario": tiny_scenario}
    finally:
        client.close()
        server.stop()


def _files(folder: Path) -> list:
    return [("files", (p.name, p.read_bytes())) for p in sorted(folder.iterdir())]


def _wait(client: httpx.Client, job_id: int, states=("done", "failed", "cancelled"),
          timeout: float = 600, seen: list | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if seen is not None:
            seen.append(job)
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck: {job}"
        time.sleep(0.1)


def _as_stored(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as Parquet gives it back (text columns come back as pandas strings)."""
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False)
    return pd.read_parquet(buffer)


def _local_plan(scenario_path: Path, centre: str | None = None):
    from wulian.planning.quarter import plan_quarter

    return plan_quarter(load_scenario(scenario_path), QUARTER, workers=1, centre=centre)


def test_upload_is_stored_by_digest_in_any_format(svc, tmp_path):
    """The same tables sent again — as CSV or as one XLSX — are recognised (200, same digest),
    and the digest is the planning layer's."""
    client = svc["client"]
    assert svc["digest"] == load_scenario(svc["scenario"]).digest
    again = client.post("/scenarios", files=_files(svc["scenario"]))
    assert again.status_code == 200 and not again.json()["created"]
    xlsx = write_tables({n: pd.read_csv(p, dtype=str, keep_default_na=False)
                         for n, p in ((p.stem, p) for p in svc["scenario"].glob("*.csv"))},
                        tmp_path / "tiny.xlsx", "xlsx")
    sent = client.post("/scenarios", files=[("files", (xlsx.name, xlsx.read_bytes()))])
    assert sent.status_code == 200, sent.text
    assert sent.json()["digest"] == svc["digest"]
    listed = client.get("/scenarios").json()
    assert [s["digest"] for s in listed] == [svc["digest"]]
    assert listed[0]["name"] == "tiny" and listed[0]["counts"]["households"] == 40


def test_a_bad_upload_lists_every_problem_and_keeps_nothing(svc, tmp_path):
    """A scenario with defects in three tables: 422 with exactly the problems the validator
    finds, in both languages; nothing is kept."""
    bad = tmp_path / "bad"
    shutil.copytree(svc["scenario"], bad)
    needs = pd.read_csv(bad / "needs.csv", dtype=str, keep_default_na=False)
    needs.loc[0, "quantity"] = "lots"
    needs.loc[3, "week"] = "week 49"
    needs.to_csv(bad / "needs.csv", index=False)
    funds = pd.read_csv(bad / "funds.csv", dtype=str, keep_default_na=False)
    funds.loc[1, "budget"] = "-5"
    funds.to_csv(bad / "funds.csv", index=False)
    (bad / "volunteers.csv").unlink()
    expected = check_raw(read_raw(bad))
    assert len(expected) >= 4
    before = sorted(p.name for p in (svc["root"] / "data").iterdir())
    response = svc["client"].post("/scenarios", files=_files(bad))
    assert response.status_code == 422
    body = response.json()
    got = [(p["table"], p["row"], p["column"], p["code"]) for p in body["problems"]]
    assert got == [(p.table, p.row, p.column, p.code) for p in expected]
    assert all(p["message_zh"] and p["message_en"] and p["hint_en"] for p in body["problems"])
    assert " / " in body["detail"]
    assert sorted(p.name for p in (svc["root"] / "data").iterdir()) == before
    assert not any((svc["root"] / "data" / ".incoming").iterdir())
    assert len(svc["client"].get("/scenarios").json()) == 1


def test_a_wrong_file_type_is_a_problem_not_a_crash(svc):
    """A file that is not CSV, Parquet or XLSX is reported as a problem (422)."""
    response = svc["client"].post("/scenarios", files=[("files", ("notes.txt", b"hello"))])
    assert response.status_code == 422
    assert response.json()["problems"][0]["code"] == "unreadable_file"


def test_submit_poll_and_fetch_in_three_formats(svc):
    """A job runs to done with progress; every table comes back as JSON, CSV and Parquet with
    the planning layer's values, and the explanation with it."""
    client = svc["client"]
    submitted = client.post("/jobs", json={"scenario": svc["digest"][:12], "quarter": QUARTER})
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["job_id"]
    assert submitted.json()["state"] in ("queued", "running")
    seen: list = []
    job = _wait(client, job_id, seen=seen)
    assert job["state"] == "done", job
    assert job["attempts"] == 1 and job["progress"]["fraction"] == 1.0
    assert job["progress"]["total"] > 0 and job["progress"]["done"] == job["progress"]["total"]
    assert sorted(job["tables"]) == ["explanation", "fill_rate", "funds", "money", "volunteers"]
    local = _local_plan(svc["scenario"])
    for name, expected in local.tables.items():
        expected = _as_stored(expected)
        as_parquet = client.get(f"/jobs/{job_id}/tables/{name}", params={"format": "parquet"})
        assert as_parquet.headers["content-type"] == "application/vnd.apache.parquet"
        pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(as_parquet.content)), expected)
        as_json = client.get(f"/jobs/{job_id}/tables/{name}").json()
        assert as_json["columns"] == list(expected.columns)
        assert as_json["total_rows"] == len(expected)
        from_json = pd.DataFrame(as_json["rows"], columns=as_json["columns"])
        as_csv = client.get(f"/jobs/{job_id}/tables/{name}", params={"format": "csv"})
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert as_csv.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the Chinese
        from_csv = pd.read_csv(io.BytesIO(as_csv.content), encoding="utf-8-sig")
        for col in expected.columns:
            if pd.api.types.is_numeric_dtype(expected[col]) and expected[col].dtype != bool:
                for got in (from_json[col], from_csv[col]):
                    assert got.astype(float).to_numpy() == pytest.approx(
                        expected[col].astype(float).to_numpy(), nan_ok=True), (name, col)
    page = client.get(f"/jobs/{job_id}/tables/money", params={"limit": 2, "offset": 1}).json()
    assert page["rows"] == client.get(f"/jobs/{job_id}/tables/money").json()["rows"][1:3]
    explanation = client.get(f"/jobs/{job_id}/explanation").json()
    assert explanation["info"]["input_digest"] == svc["digest"]
    assert len(explanation["rows"]) == len(local.tables["explanation"])
    assert client.get(f"/jobs/{job_id}/tables/nothing").status_code == 404
    assert client.get("/jobs/999999").status_code == 404


def test_two_jobs_at_once_do_not_mix(svc):
    """Two jobs for the two streets, submitted together and run at the same time: each gets
    exactly its own street's plan."""
    client = svc["client"]
    ids = {centre: client.post("/jobs", json={"scenario": svc["digest"], "quarter": QUARTER,
                                              "centre": centre}).json()["job_id"]
           for centre in ("D04S01", "D04S02")}
    seen: list = []
    done = {centre: _wait(client, job_id, seen=seen) for centre, job_id in ids.items()}
    assert all(j["state"] == "done" for j in done.values()), done
    for centre, job_id in ids.items():
        local = _local_plan(svc["scenario"], centre)
        for name, expected in local.tables.items():
            got = pd.read_parquet(io.BytesIO(client.get(
                f"/jobs/{job_id}/tables/{name}", params={"format": "parquet"}).content))
            pd.testing.assert_frame_equal(got, _as_stored(expected))
    a, b = done["D04S01"], done["D04S02"]
    assert a["run_id"] != b["run_id"]
    # They really ran at the same time (two job slots): each started before the other ended.
    assert max(a["started_at"], b["started_at"]) < min(a["finished_at"], b["finished_at"])


def test_cancel_a_running_job(svc):
    """A running job asked to cancel stops (state cancelled, no tables); cancelling it again is
    a 409."""
    client = svc["client"]
    up = client.post("/scenarios", files=_files(DEMO))
    assert up.status_code == 201, up.text
    job_id = client.post("/jobs", json={"scenario": up.json()["digest"],
                                        "quarter": QUARTER}).json()["job_id"]
    _wait(client, job_id, states=("running", "done", "failed", "cancelled"))
    cancel = client.post(f"/jobs/{job_id}/cancel")
    assert cancel.status_code == 202, cancel.text
    assert cancel.json()["cancel_requested"]
    job = _wait(client, job_id)
    assert job["state"] == "cancelled" and job["tables"] == [] and job["run_id"] is None
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 409
    assert client.get(f"/jobs/{job_id}/tables/money").status_code == 409


def test_the_cli_talks_to_the_service(svc, tmp_path, capsys):
    """`wulian jobs list|status|fetch` against the live service; `wulian token create` makes a
    token the service accepts."""
    common = ["--url", svc["server"].url, "--token", svc["token"]]
    assert main(["token", "create", "--role", "fund_manager", "--store", svc["url"]]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    me = httpx.get(svc["server"].url + "/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.json()["role"] == "fund_manager"
    assert main(["jobs", "list", *common]) == 0
    jobs = svc["client"].get("/jobs", params={"state": "done"}).json()
    job_id = jobs[-1]["job_id"]
    assert main(["jobs", "status", str(job_id), *common]) == 0
    assert "done" in capsys.readouterr().out
    out = tmp_path / "fetched"
    assert main(["jobs", "fetch", str(job_id), "--out", str(out), "--format", "parquet",
                 *common]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.parquet"
                                                            for n in jobs[-1]["tables"])
    assert main(["jobs", "status", "424242", *common]) == 1
    assert main(["jobs", "list", "--url", svc["server"].url, "--token", "wl_wrong"]) == 1


def test_the_cli_fetches_what_the_role_may_read_and_nothing_from_a_cancelled_job(
        svc, tmp_path, capsys):
    """`jobs fetch` on a cancelled job says its state and exits 1 (nothing written); `jobs
    status --wait` on it exits 1; a fund manager's fetch without `--table` writes the tables
    the role may read and names the ones left out, and a `--table` it may not read is an
    error."""
    url = ["--url", svc["server"].url]
    planner = [*url, "--token", svc["token"]]
    client = svc["client"]
    demo = client.post("/scenarios", files=_files(DEMO)).json()["digest"]
    cancelled = client.post("/jobs", json={"scenario": demo, "quarter": QUARTER}).json()
    assert client.post(f"/jobs/{cancelled['job_id']}/cancel").status_code == 202
    assert _wait(client, cancelled["job_id"])["state"] == "cancelled"
    capsys.readouterr()
    out = tmp_path / "cancelled"
    assert main(["jobs", "fetch", str(cancelled["job_id"]), "--out", str(out), *planner]) == 1
    said = capsys.readouterr()
    assert "cancelled" in said.err and "written to" not in said.out + said.err
    assert not out.exists()
    assert main(["jobs", "status", str(cancelled["job_id"]), "--wait", *planner]) == 1

    done = client.post("/jobs", json={"scenario": svc["digest"], "quarter": QUARTER,
                                      "centre": "D04S01"}).json()
    tables = _wait(client, done["job_id"])["tables"]
    assert "explanation" in tables
    fund = [*url, "--token", make_token(svc["url"], "fund_manager")]
    out = tmp_path / "fund"
    capsys.readouterr()
    assert main(["jobs", "fetch", str(done["job_id"]), "--out", str(out), *fund]) == 0
    said = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["funds.csv", "money.csv"]
    left_out = said[said.index("left out"):].splitlines()[0]
    assert set(re.findall(r"[a-z_]+$|[a-z_]+(?=,)", left_out)) == set(tables) - {"money",
                                                                               "funds"}
    assert main(["jobs", "fetch", str(done["job_id"]), "--table", "explanation", "--out",
                 str(tmp_path / "refused"), *fund]) == 1


def test_restart_mid_job_finds_the_job_again(tmp_path):
    """A service killed while a job runs: on restart the job is found, retried (attempt 2) and
    finished, with the interruption on record."""
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    server = Server(url, tmp_path / "data", tmp_path / "server.log", "--workers", "1").start()
    token = make_token(url, "planner")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        client = httpx.Client(base_url=server.url + "/v1", headers=headers, timeout=120)
        digest = client.post("/scenarios", files=_files(DEMO)).json()["digest"]
        job_id = client.post("/jobs", json={"scenario": digest,
                                            "quarter": QUARTER}).json()["job_id"]
        job = _wait(client, job_id, states=("running", "done", "failed"))
        assert job["state"] == "running", job
        client.close()
        server.stop(signal.SIGKILL)
        server = Server(url, tmp_path / "data", tmp_path / "server.log", "--workers",
                        "1").start()
        client = httpx.Client(base_url=server.url + "/v1", headers=headers, timeout=120)
        found = client.get(f"/jobs/{job_id}").json()
        assert found["state"] in ("queued", "running", "done")
        job = _wait(client, job_id)
        assert job["state"] == "done", job
        assert job["attempts"] == 2
        assert "interrupted" in job["error"] and "重试" in job["error"]
        assert len(job["tables"]) == 5
        client.close()
    finally:
        server.stop()


def test_the_cli_uploads_a_folders_tables_and_says_what_it_leaves(svc, tmp_path, capsys):
    """A folder as `wulian validate` reads it: its tables go, a file named after no table
    (notes.csv) stays, said — the service refuses files named after no table."""
    folder = tmp_path / "with-notes"
    shutil.copytree(svc["scenario"], folder)
    (folder / "notes.csv").write_text("note\nwritten by hand\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["jobs", "upload", "--path", str(folder), "--url", svc["server"].url,
                 "--token", svc["token"]]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "not uploaded (not a table): notes.csv" in out
    assert svc["digest"] in out  # the same tables: the same scenario
