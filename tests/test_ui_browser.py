"""The app end to end in a real browser: `streamlit run` on a free localhost port, driven by
Playwright through Debian's Chromium. Screenshots go to test-artifacts/ui/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from wulian.planning import fmt
from wulian.planning.budget import BudgetLab
from wulian.planning.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
START_TIMEOUT = 90  # seconds for the server to answer its health check
RUN_TIMEOUT = 600_000  # ms: the district demo's weekly allocation, on a busy machine
STEP_TIMEOUT = 60_000  # ms: anything else


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """`streamlit run ui/app.py` on a free port with a run store of its own; its URL."""
    port = free_port()
    env = {**os.environ, "WULIAN_STORE": f"sqlite:///{tmp_path / 'runs.sqlite'}"}
    log = (tmp_path / "streamlit.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "ui" / "app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text.strip() == "ok":
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("streamlit did not start:\n"
                                   + (tmp_path / "streamlit.log").read_text())
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_coordinator_run_english_and_fund_lab_in_chromium(server):
    """Open the app, run the demo allocation, see the results table, switch to English, open
    the fund lab and move a budget: the coverage shown becomes the budget lab's."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    demo = load_scenario(ROOT / "data" / "demo")
    lab = BudgetLab.from_scenario(demo, week=demo.needs["week"].max())
    fund = lab.base_budgets.idxmax()  # the largest fund: without it, coverage must move
    moved = lab.solve({fund: 0.0}).fill_rates()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(STEP_TIMEOUT)
            page.goto(server)
            title = page.get_by_role("heading", name="协调员 · 每周分配")
            expect(title).to_be_visible(timeout=STEP_TIMEOUT)
            page.screenshot(path=ARTIFACTS / "1-coordinator.png", full_page=True)

            page.get_by_role("button", name="运行分配").click()
            plans = page.get_by_role("heading", name="家庭救助套餐")
            expect(plans).to_be_visible(timeout=RUN_TIMEOUT)
            tables = page.locator("[data-testid='stDataFrame']")
            expect(tables.first).to_be_visible()
            assert tables.count() >= 3  # money by fund, unmet reasons, plans
            expect(page.get_by_text("红色满足率").first).to_be_visible()
            page.screenshot(path=ARTIFACTS / "2-results.png", full_page=True)

            page.get_by_text("English", exact=True).click()
            expect(page.get_by_role("heading", name="Coordinator · weekly allocation")) \
                .to_be_visible()
            expect(page.get_by_role("heading", name="Household plans (assistance packages)")) \
                .to_be_visible()
            page.screenshot(path=ARTIFACTS / "3-english.png", full_page=True)

            page.get_by_role("link", name="Fund lab · budgets").click()
            expect(page.get_by_role("heading", name="Coverage by colour")).to_be_visible()
            page.screenshot(path=ARTIFACTS / "4-fund-lab.png", full_page=True)
            budget = page.locator("[data-testid='stNumberInput']").filter(
                has_text=f"{fund} · ").locator("input")
            budget.fill("0")
            budget.press("Enter")
            red = page.locator("[data-testid='stMetric']").filter(has_text="red fill rate")
            expect(red.locator("[data-testid='stMetricValue']")).to_have_text(
                fmt.pct(moved["red"]))
            green = page.locator("[data-testid='stMetric']").filter(has_text="green fill rate")
            expect(green.locator("[data-testid='stMetricValue']")).to_have_text(
                fmt.pct(moved["green"]))
            page.screenshot(path=ARTIFACTS / "5-budget-moved.png", full_page=True)
        finally:
            browser.close()
