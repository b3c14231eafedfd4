"""`python -m bench.api`: status polls answered while a quarterly job runs.

Starts ``wulian serve`` on a free port with a throwaway store, uploads the district demo,
submits a quarter and, while the job is running, sends ``--clients`` (50) status polls at
once, ``--rounds`` times; prints the median and 95th-percentile latency of a poll (target:
median ≤ 100 ms), the same burst on ``/v1/health`` (no database, no token: the floor set by
the HTTP stack and the machine), the load average, and the job's own wall time.

Usage: ``python -m bench.api [--clients 50] [--rounds 5] [--scenario DIR] [--workers N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
TARGET_MEDIAN_MS = 100.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _burst(url: str, headers: dict, job_id: int | None, clients: int
                 ) -> tuple[list[float], set]:
    """``clients`` status polls sent at once (``job_id`` None: ``/v1/health``, the floor of
    the HTTP stack); their latencies (s) and the states seen."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=30) as client:
        async def one() -> tuple[float, str]:
            start = time.perf_counter()
            response = await client.get(f"/v1/jobs/{job_id}" if job_id else "/v1/health")
            response.raise_for_status()
            return time.perf_counter() - start, response.json().get("state", "")

        # Open the connections first, so the burst measures answers, not TCP handshakes.
        await asyncio.gather(*(client.get("/v1/health") for _ in range(clients)))
        results = await asyncio.gather(*(one() for _ in range(clients)))
    return [r[0] for r in results], {r[1] for r in results}


def _wrk(url: str, token: str, clients: int, seconds: int = 3) -> dict | None:
    """The same polls from wrk (Debian's ``wrk``, a load generator in C, so the client's own
    cost stays out of the figure): ``clients`` connections, each polling again as soon as it
    is answered, for ``seconds``. None when wrk is not installed."""
    if shutil.which("wrk") is None:
        return None
    done = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency",
                           "-H", f"Authorization: Bearer {token}", url],
                          capture_output=True, text=True, check=True)
    out: dict = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            value, unit = float(parts[1].rstrip("usm")), parts[1].lstrip("0123456789.")
            out[parts[0]] = value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
        if line.startswith("Requests/sec:"):
            out["rps"] = float(line.split()[1])
    return out


def _seconds(start: str | None, end: str | None) -> float:
    from datetime import datetime

    if not start or not end:
        return float("nan")
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scenario", default=str(REPO / "data" / "demo"))
    parser.add_argument("--quarter", default="2027Q1")
    parser.add_argument("--workers", type=int, default=1, help="processes of the plan's pool")
    args = parser.parse_args(argv)
    console = Console(highlight=False, width=max(Console().width, 110))

    with tempfile.TemporaryDirectory(prefix="wulian-bench-api-") as tmp:
        root = Path(tmp)
        store = f"sqlite:///{root / 'store.sqlite'}"
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(root / "server.log", "wb")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [sys.executable, "-m", "wulian.api.cli", "serve", "--port", str(port), "--store", store,
             "--data", str(root / "data"), "--workers", str(args.workers)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            from wulian.api.auth import TokenStore
            from wulian.planning.store import RunStore

            token = TokenStore(RunStore(store).engine).create("planner")[1]
            headers = {"Authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start:\n"
                                       + (root / "server.log").read_text()[-2000:])
                time.sleep(0.2)
            client = httpx.Client(base_url=url + "/v1", headers=headers, timeout=120)
            folder = Path(args.scenario)
            files = [("files", (p.name, p.read_bytes())) for p in sorted(folder.iterdir())
                     if p.suffix in (".csv", ".parquet")]
            digest = client.post("/scenarios", files=files).raise_for_status().json()["digest"]
            job_id = client.post("/jobs", json={"scenario": digest, "quarter": args.quarter}
                                 ).raise_for_status().json()["job_id"]
            while client.get(f"/jobs/{job_id}").json()["state"] == "queued":
                time.sleep(0.05)
            sustained = _wrk(f"{url}/v1/jobs/{job_id}", token, args.clients)
            latencies: list[float] = []
            floor: list[float] = []
            during = 0
            load = os.getloadavg()[0]
            for _ in range(args.rounds):
                seconds, states = asyncio.run(_burst(url, headers, job_id, args.clients))
                if states == {"running"}:
                    latencies += seconds
                    during += 1
                floor += asyncio.run(_burst(url, headers, None, args.clients))[0]
            while (job := client.get(f"/jobs/{job_id}").json())["state"] in ("queued",
                                                                              "running"):
                time.sleep(0.2)
            client.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(60)
            log.close()

    if not latencies:
        console.print("[bold red]the job finished before a burst could be measured; use a "
                      "larger --scenario[/]")
        return 1
    ms = np.array(latencies) * 1000
    table = Table(title=f"API: {args.clients} concurrent status polls during a running job "
                        f"(uvicorn, SQLite store, {os.cpu_count()} cores)",
                  title_justify="left", header_style="bold")
    for col in ("bursts while running", "polls", "median ms", "p95 ms", "max ms",
                "target median", "health median ms", "load avg", "job state", "job wall s"):
        table.add_column(col, justify="right")
    median = float(np.median(ms))
    table.add_row(str(during), str(len(ms)), f"{median:.1f}", f"{np.percentile(ms, 95):.1f}",
                  f"{ms.max():.1f}", f"≤ {TARGET_MEDIAN_MS:.0f} ms "
                  f"({'met' if median <= TARGET_MEDIAN_MS else 'missed'})",
                  f"{np.median(np.array(floor) * 1000):.1f}", f"{load:.1f}", job["state"],
                  f"{_seconds(job['started_at'], job['finished_at']):.1f}")
    console.print(table)
    if sustained is None:
        console.print("wrk is not installed (apt-get install wrk): the sustained figure is "
                      "not measured")
    else:
        met = "met" if sustained["50%"] <= TARGET_MEDIAN_MS else "missed"
        console.print(f"wrk, {args.clients} connections polling the running job's status "
                      f"without pause for 3 s: median {sustained['50%']:.1f} ms, 99th "
                      f"percentile {sustained['99%']:.1f} ms, {sustained['rps']:,.0f} answers/s "
                      f"(target median ≤ {TARGET_MEDIAN_MS:.0f} ms: {met}). The burst figures "
                      "above include the Python client's own cost.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
