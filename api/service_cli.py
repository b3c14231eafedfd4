"""``wulian serve``, ``wulian token …`` and ``wulian jobs …``: the batch service from the shell.

``serve`` runs :func:`api.server.create_app` under uvicorn; ``token`` manages API tokens in the
run store directly (so the first admin token can be made before any server runs); ``jobs``
talks to a running service over HTTP (httpx) with ``--url`` and ``--token`` (or
``$WULIAN_URL`` and ``$WULIAN_TOKEN`` or ``--token-file``, which keep the secret out of the
shell history and the process list).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.text import Text

if TYPE_CHECKING:  # httpx is imported by the commands that talk to a service, not by `wulian`
    import httpx

from wulian.api.console import FAILED, CliError, console, failed, missing_extra, usage

DEFAULT_URL = "http://127.0.0.1:8000"
TABLES = ("money", "volunteers", "fill_rate", "funds", "explanation")


# -- serve ------------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    if missing_extra("fastapi", "service") or missing_extra("uvicorn", "service"):
        return 2
    import uvicorn

    from wulian.api import startup
    from wulian.api.server import DEFAULT_DATA, create_app
    from wulian.planning.limits import limits
    from wulian.planning.store import store_url

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("wulian.service")
    data = Path(args.data or DEFAULT_DATA)
    try:  # before anything is served: a damaged store stops the start with a message
        startup.check_store(store_url(args.store))
    except startup.StartupError as err:
        raise CliError(str(err)) from err
    ended = startup.reap_orphans(data)
    cleaned = startup.clean_incoming(data)
    if ended or cleaned:
        log.info("start-up: ended %d orphaned worker(s) of a previous service, removed %d "
                 "unfinished upload(s)", ended, cleaned)
    app = create_app(args.store, data, slots=args.jobs, workers=args.workers,
                     ray_address=args.address)
    # SIGTERM: requests still open after the grace period are cut, then the jobs stop (the
    # pid file stays: the next start finds its pid gone and its group without orphans).
    uvicorn.run(app, host=args.host, port=args.port, log_level="info",
                timeout_graceful_shutdown=int(limits().shutdown_seconds))
    return 0


# -- token ------------------------------------------------------------------------------------

def cmd_token(args: argparse.Namespace) -> int:
    from wulian.api.auth import TokenError, TokenStore
    from wulian.planning.store import RunStore

    tokens = TokenStore(RunStore(args.store).engine)
    if args.action == "create":
        if not args.role:
            raise usage("请给出 --role", "give --role")
        try:
            row, secret = tokens.create(args.role, args.centre, args.label or "",
                                        provider=args.provider)
        except TokenError as err:  # the options do not fit together: a usage error
            raise CliError(f"{err.zh}(--{err.field})", f"{err.en} (--{err.field})") from err
        console.print(f"令牌 {row['token_id']} 已创建 / token {row['token_id']} made: role "
                      f"{row['role']}" + (f", centre {row['centre']}" if row["centre"] else "")
                      + (f", provider {row['provider_id']}" if row["provider_id"] else ""),
                      style="dim")
        console.print("密钥只显示这一次,请妥善保存 / the secret is shown only now; keep it:",
                      style="dim")
        print(secret)  # plain, so scripts can capture it
        return 0
    if args.action == "list":
        rows = pd.DataFrame(tokens.list(), columns=["token_id", "role", "centre", "provider_id",
                                                    "label", "created_at", "revoked"])
        console.print(rows.to_string(index=False) if len(rows) else "没有令牌 / no tokens")
        return 0
    if args.id is None:
        raise usage("请给出令牌编号", "give the token id")
    if not tokens.revoke(args.id):
        raise failed(f"没有令牌 {args.id}", f"no token {args.id}")
    console.print(f"令牌 {args.id} 已撤销 / token {args.id} revoked")
    return 0


# -- jobs -------------------------------------------------------------------------------------

class ServiceError(CliError):
    """The service said no (an HTTP error answer): exit 1, its message on stderr."""

    def __init__(self, message: str):
        super().__init__(message, code=FAILED)


def api_token(args: argparse.Namespace) -> str:
    """The API token: from ``--token-file``, else ``$WULIAN_TOKEN``, else ``--token`` (which
    every user of the machine can read in the process list: it works, with a warning)."""
    if args.token_file:
        return Path(args.token_file).read_text(encoding="utf-8").strip()
    if args.token:
        print("警告:--token 会出现在进程列表中,请改用 --token-file 或 $WULIAN_TOKEN / warning: "
              "--token shows the secret in every user's process list (ps); use --token-file "
              "FILE or $WULIAN_TOKEN", file=sys.stderr)
        return args.token
    return os.environ.get("WULIAN_TOKEN", "").strip()


def _client(args: argparse.Namespace) -> httpx.Client:
    import httpx

    token = api_token(args)
    url = (args.url or os.environ.get("WULIAN_URL") or DEFAULT_URL).rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url + "/v1", headers=headers, timeout=120.0)


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code < 400:
        return response
    try:
        body = response.json()
    except ValueError:
        raise ServiceError(f"HTTP {response.status_code}: {response.text[:300]}") from None
    detail = body.get("detail")
    if isinstance(detail, dict):
        raise ServiceError(f"HTTP {response.status_code}: {detail.get('message')}")
    # A 422: its problems on stdout (the service sent the first max_problems, values cut to
    # excerpts), as `wulian validate` prints them; the refusal itself is the one stderr line.
    for p in body.get("problems", []):
        where = p["table"] + (f" 第{p['row']}行 row {p['row']}" if p.get("row") else "")
        where += f" · {p['column']}" if p.get("column") else ""
        value = f" = {p['value']!r}" if p.get("value") else ""
        console.print(Text(f"  {where}{value}: {p['message_zh']} / {p['message_en']} → "
                           f"{p['hint_zh']} / {p['hint_en']}"))
    raise ServiceError(f"HTTP {response.status_code}: {detail}")


def _show_job(job: dict) -> None:
    progress = job["progress"]
    console.print(
        f"任务 job {job['job_id']}: [bold]{job['state']}[/] · {job['quarter']} · "
        f"{job['engine']} · centre {job['centre'] or '(all)'} · "
        f"{progress['done']}/{progress['total']} {progress['label']} · attempts "
        f"{job['attempts']}" + (f"\n  {job['error']}" if job["error"] else "")
        + (f"\n  tables: {', '.join(job['tables'])}" if job["tables"] else ""))


def _wait(client: httpx.Client, job_id: int) -> dict:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[n]}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"job {job_id}", total=None, n="")
        while True:
            job = _check(client.get(f"/jobs/{job_id}")).json()
            p = job["progress"]
            bar.update(task, total=p["total"] or None, completed=p["done"],
                       description=f"job {job_id} {job['state']}", n=p["label"])
            if job["state"] in ("done", "failed", "cancelled"):
                return job
            time.sleep(0.5)


def _upload(client: httpx.Client, path: Path, name: str | None) -> dict:
    if path.is_dir():
        from wulian.contract.schema import TABLES

        # A folder's tables as a scenario is read from it (planning.io.read_raw): files named
        # after a table; the others (notes.csv) stay here, said, as `wulian validate` skips them.
        data = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".parquet"))
        files = [p for p in data if p.stem.strip() in TABLES]
        if left := [p.name for p in data if p not in files]:
            console.print(f"未上传(不是数据表) / not uploaded (not a table): {', '.join(left)}")
    else:
        files = [path]
    parts = [("files", (p.name, p.read_bytes())) for p in files]
    response = _check(client.post("/scenarios", files=parts, data={"name": name or path.name}))
    return response.json()


def cmd_jobs(args: argparse.Namespace) -> int:
    import httpx

    try:
        with _client(args) as client:
            return _jobs(args, client, console)
    except httpx.HTTPError as err:  # --url (or $WULIAN_URL) names no service that answers
        raise usage("无法连接服务", f"cannot reach the service: {err}") from err


def _jobs(args: argparse.Namespace, client: httpx.Client, console) -> int:
    if args.action == "upload":
        if not args.path:
            raise usage("请给出场景路径", "give the scenario's path")
        row = _upload(client, Path(args.path), args.name)
        console.print(f"场景 / scenario {row['digest']} "
                      f"({'新 new' if row['created'] else '已有 already kept'})")
        return 0
    if args.action == "submit":
        scenario = args.scenario
        if args.path:
            scenario = _upload(client, Path(args.path), args.name)["digest"]
        if not scenario or not args.quarter:
            raise usage("请给出 --scenario(或 --path)与 --quarter",
                        "give --scenario (or --path) and --quarter")
        body = {"scenario": scenario, "quarter": args.quarter, "engine": args.engine}
        if args.centre:
            body["centre"] = args.centre
        job = _check(client.post("/jobs", json=body)).json()
        print(job["job_id"])
        if args.wait:
            job = _wait(client, job["job_id"])
        _show_job(job)
        return 0 if job["state"] in ("queued", "running", "done") else 1
    if args.action == "list":
        params = {"state": args.state} if args.state else {}
        jobs = _check(client.get("/jobs", params=params)).json()
        if not jobs:
            console.print("没有任务 / no jobs")
        for job in jobs:
            _show_job(job)
        return 0
    if args.id is None:
        raise usage("请给出任务编号", "give the job id")
    if args.action == "status":
        job = _wait(client, args.id) if args.wait else \
            _check(client.get(f"/jobs/{args.id}")).json()
        _show_job(job)
        return 1 if job["state"] in UNFINISHED else 0
    if args.action == "cancel":
        _show_job(_check(client.post(f"/jobs/{args.id}/cancel")).json())
        return 0
    return _fetch(args, client)


# A job that ended without a plan: `status` exits 1 on it, `fetch` has nothing to write.
UNFINISHED = ("failed", "cancelled")


def _fetch(args: argparse.Namespace, client: httpx.Client) -> int:
    """Write a done job's tables: those named with ``--table`` (each must be readable), or
    every table the caller's role may read (those it may not are named, not fatal)."""
    job = _check(client.get(f"/jobs/{args.id}")).json()
    if job["state"] != "done":
        reason = f": {job['error']}" if job["error"] else ""
        wait = ("" if job["state"] in UNFINISHED else
                f";请先等待完成(wulian jobs status {args.id} --wait)")
        wait_en = ("" if job["state"] in UNFINISHED else
                   f"; wait for it first (wulian jobs status {args.id} --wait)")
        raise failed(f"任务 {args.id} 的状态为 {job['state']},没有结果表{wait}",
                     f"job {args.id} is {job['state']}, it has no tables{reason}{wait_en}")
    out = Path(args.out or f"out/job{args.id}")
    names = args.table or job["tables"]
    suffix = {"json": "json", "csv": "csv", "parquet": "parquet"}[args.format]
    written, left_out = [], []
    for name in names:
        response = client.get(f"/jobs/{args.id}/tables/{name}", params={"format": args.format})
        if response.status_code == 403 and not args.table:
            left_out.append(name)
            continue
        _check(response)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.{suffix}").write_bytes(response.content)
        written.append(name)
    if left_out:
        console.print(f"未获取(本角色无权读取)/ left out (the role may not read them): "
                      f"{', '.join(left_out)}")
    if not written:
        raise failed(f"任务 {args.id} 没有本角色可读取的表", f"job {args.id} has no table this "
                     "role may read")
    console.print(f"已写入 / written to {out}: {', '.join(written)}")
    return 0


# -- the parser -------------------------------------------------------------------------------

def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``serve``, ``token`` and ``jobs`` on the ``wulian`` parser."""
    store_help = "run store URL (default $WULIAN_STORE or runs/wulian.sqlite)"

    p = sub.add_parser("serve", help="批处理服务 / run the batch HTTP service (uvicorn)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 "
                        "for the network, behind TLS)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--store", help=store_help)
    p.add_argument("--data", help="where uploaded scenarios are kept (default runs/scenarios)")
    p.add_argument("--jobs", type=int, default=1, help="jobs run at the same time")
    p.add_argument("--workers", type=int, help="processes of each plan's pool")
    p.add_argument("--address", help="Ray cluster address for jobs with engine=ray")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("token", help="令牌 / make, list or revoke API tokens")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("id", nargs="?", type=int, help="token id (revoke)")
    p.add_argument("--role", choices=["planner", "fund_manager", "coordinator", "admin",
                                      "provider"])
    p.add_argument("--centre", help="a coordinator's centre (its subtree is all they see)")
    p.add_argument("--provider", help="a provider's id (its own tasks are all they see)")
    p.add_argument("--label", help="who or what the token is for")
    p.add_argument("--store", help=store_help)
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("jobs", help="季度任务 / upload, submit, follow and fetch jobs of a "
                                    "running service")
    p.add_argument("action", choices=["upload", "submit", "list", "status", "cancel", "fetch"])
    p.add_argument("id", nargs="?", type=int, help="job id (status, cancel, fetch)")
    p.add_argument("--url", help=f"the service (default $WULIAN_URL or {DEFAULT_URL})")
    p.add_argument("--token-file", help="file holding the API token (or set $WULIAN_TOKEN)")
    p.add_argument("--token", help="API token (discouraged: visible in the process list)")
    p.add_argument("--path", help="scenario to upload (folder or .xlsx)")
    p.add_argument("--name", help="a name for the uploaded scenario")
    p.add_argument("--scenario", help="scenario digest (or a unique prefix)")
    p.add_argument("--quarter", help="e.g. 2027Q1")
    p.add_argument("--engine", choices=["local", "ray"], default="local")
    p.add_argument("--centre", help="plan only this centre's subtree")
    p.add_argument("--state", choices=["queued", "running", "done", "failed", "cancelled"])
    p.add_argument("--wait", action="store_true", help="follow the job with a progress bar")
    p.add_argument("--table", action="append", choices=TABLES,
                   help="table to fetch (repeatable; default all)")
    p.add_argument("--format", choices=["csv", "json", "parquet"], default="csv")
    p.add_argument("--out", help="folder for fetched tables (default out/jobID)")
    p.set_defaults(func=cmd_jobs)
