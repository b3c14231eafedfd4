"""The app end to end in a real browser: `streamlit run` on a free localhost port, driven by
Playwright through Debian's Chromium — the weekly allocation and the fund lab on an empty store,
and the inbox and service performance on a register the simulator played. Screenshots go to
test-artifacts/ui/."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect, sync_playwright

from wulian.api.auth import TokenStore
from wulian.planning import alerts, cycle, fmt
from wulian.planning.budget import BudgetLab
from wulian.planning.generate import generate_scenario
from wulian.planning.register import Actor, Register
from wulian.planning.scenario import Scenario, load_scenario
from wulian.planning.simulate import simulate
from wulian.planning.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
START_TIMEOUT = 90  # seconds for the server to answer its health check
RUN_TIMEOUT = 600_000  # ms: the district demo's weekly allocation, on a busy machine
STEP_TIMEOUT = 60_000  # ms: anything else
# Every expectation waits as long as a step may take (Playwright's own default, 5 s, is what a
# page needs on a quiet machine, not on a loaded CI runner); a missing element still fails.
expect.set_options(timeout=STEP_TIMEOUT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def streamlit_app(folder: Path, store: str):
    """`streamlit run ui/app.py` on a free port reading ``store``; its URL while it runs."""
    port = free_port()
    env = {**os.environ, "WULIAN_STORE": store}
    log = (folder / "streamlit.log").open("w")
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
                                   + (folder / "streamlit.log").read_text())
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


def _token(store: RunStore | Register, role: str = "planner", centre: str | None = None) -> str:
    """A token of the service (as `wulian token create` makes) in the app's store."""
    return TokenStore(store.engine).create(role, centre)[1]


def sign_in(page, secret: str) -> None:
    """The sign-in page first (no page of the app before it), then the token."""
    expect(page.get_by_role("heading", name="五联 · 登录")).to_be_visible(timeout=STEP_TIMEOUT)
    page.get_by_label("令牌", exact=True).fill(secret)
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page.get_by_role("heading", name="五联 · 登录")).to_have_count(0, timeout=STEP_TIMEOUT)


@pytest.fixture
def server(tmp_path):
    """The app on a free port with an empty run store of its own: (its URL, a planner's
    token)."""
    store = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    secret = _token(RunStore(store))
    with streamlit_app(tmp_path, store) as url:
        yield url, secret


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> Path:
    """A register played four weeks by the simulator (tiny preset, seed 0), its alerts
    evaluated and a fifth week left open: a SQLite file to copy."""
    path = tmp_path_factory.mktemp("register") / "played.sqlite"
    register = Register(RunStore(f"sqlite:///{path}"), Actor("t", "simulator"))
    register.import_scenario(Scenario.from_tables(generate_scenario("tiny", 0)))
    weeks = simulate(register, 4, seed=0)
    alerts.evaluate(register)
    cycle.open_week(register, cycle.next_week(weeks[-1].week))
    register.engine.dispose()
    return path


@pytest.fixture
def register_server(played, tmp_path):
    """The app on a copy of the played register: (its URL, the register)."""
    path = tmp_path / "register.sqlite"
    shutil.copy(played, path)
    url = f"sqlite:///{path}"
    with streamlit_app(tmp_path, url) as app_url:
        yield app_url, Register(RunStore(url), Actor("test", "cli"))


def test_coordinator_run_english_and_fund_lab_in_chromium(server):
    """Open the app, run the demo allocation and switch to English while it runs: the run's
    results are shown when it ends (they were lost: the switch stopped the page waiting for
    them). Then open the fund lab and move a budget: the coverage shown becomes the budget
    lab's."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    demo = load_scenario(ROOT / "data" / "demo")
    lab = BudgetLab.from_scenario(demo, week=demo.needs["week"].max())
    fund = lab.base_budgets.idxmax()  # the largest fund: without it, coverage must move
    moved = lab.solve({fund: 0.0}).fill_rates()
    server, secret = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(STEP_TIMEOUT)
            page.goto(server)
            sign_in(page, secret)
            title = page.get_by_role("heading", name="协调员 · 每周分配")
            expect(title).to_be_visible(timeout=STEP_TIMEOUT)
            page.screenshot(path=ARTIFACTS / "1-coordinator.png", full_page=True)

            page.get_by_role("button", name="运行分配").click()
            expect(page.get_by_text("正在分配……")).to_be_visible()  # the demo takes seconds
            page.get_by_text("English", exact=True).click()
            expect(page.get_by_role("heading", name="Coordinator · weekly allocation")) \
                .to_be_visible()
            plans = page.get_by_role("heading", name="Household plans (assistance packages)")
            expect(plans).to_be_visible(timeout=RUN_TIMEOUT)
            tables = page.locator("[data-testid='stDataFrame']")
            expect(tables.first).to_be_visible()
            assert tables.count() >= 3  # money by fund, unmet reasons, plans
            expect(page.get_by_text("red fill rate").first).to_be_visible()
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


def _pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the select box labelled ``label`` (typed, to filter long lists)."""
    box = page.locator("[data-testid='stSelectbox']").filter(
        has=page.get_by_text(label, exact=True))
    box.click()
    page.keyboard.type(option.split(" · ")[0])
    page.get_by_role("option", name=option).first.click()


def _live(register: Register) -> pd.DataFrame:
    frame = cycle.tasks(register)
    return frame[frame["status"].isin(["planned", "accepted"])
                 & frame["week"].isin(cycle.weeks(register).query("state == 'open'")["week"])]


def test_inbox_actions_and_performance_in_chromium(register_server):
    """In the browser, from the inbox: acknowledge an alert with a note, record a task's
    answer and a monitoring visit's result — each is in the register afterwards — then, in
    English and back in Chinese, see the performance page's trend charts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url, register = register_server
    alert = alerts.alerts(register, states=("open",)).iloc[0]
    waiting = _live(register)
    task = waiting[(waiting["kind"] == "service") & (waiting["units"] >= 2)].iloc[0]
    visit = waiting[waiting["kind"] == "monitoring"].iloc[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1400})
            page.set_default_timeout(STEP_TIMEOUT)
            page.goto(url)
            sign_in(page, _token(register))
            expect(page.get_by_role("heading", name="收件箱 · 本周待办")).to_be_visible(
                timeout=STEP_TIMEOUT)
            waiting_alerts = len(alerts.alerts(register, states=("open",)))
            expect(page.get_by_role("heading", name=f"预警 · {waiting_alerts} 条待处理")) \
                .to_be_visible()
            page.get_by_label("记录人", exact=True).fill("王协调")
            page.get_by_label("记录人", exact=True).press("Enter")
            page.screenshot(path=ARTIFACTS / "6-inbox.png")

            # Acknowledge the first open alert (the list's first) with a note.
            page.get_by_label("备注(已采取或将采取的措施)", exact=True).fill("已电话联系,本周上门")
            page.get_by_role("button", name="确认", exact=True).click()
            expect(page.get_by_text(f"已确认预警 {alert['alert_id']}")).to_be_visible()
            expect(page.get_by_role("heading", name=f"预警 · {waiting_alerts - 1} 条待处理")) \
                .to_be_visible()  # the one acknowledged is no longer waiting

            # Answer a service task: delivered in part.
            _pick(page, "任务", f"{task['task_id']} · ")
            expect(page.get_by_text(f"计划 {task['units']:g} ·").first).to_be_visible()
            _pick(page, "状态", "已完成")
            page.get_by_label("完成数量(已完成时留空即全部完成)", exact=True).fill("1")
            page.get_by_role("button", name="记录答复").click()
            expect(page.get_by_text(f"已记录任务 {task['task_id']} 的答复:已完成")) \
                .to_be_visible()

            # A monitoring visit made: health deprived now, a new need found.
            _pick(page, "走访", f"{visit['task_id']} · ")
            _pick(page, "健康", "1 · 有剥夺")
            page.get_by_label("发现的新需求(服务:数量;……)", exact=True).fill("meal_help:1")
            page.get_by_role("button", name="记录走访结果").click()
            expect(page.get_by_text(f"已记录走访 {visit['task_id']}:已走访;新需求 1 项")) \
                .to_be_visible()
            page.screenshot(path=ARTIFACTS / "7-inbox-recorded.png")

            page.get_by_text("English", exact=True).click()
            expect(page.get_by_role("heading", name="Inbox · this week")).to_be_visible()
            page.get_by_role("link", name="Service performance").click()
            expect(page.get_by_role("heading", name="Fill rate by colour, week by week")) \
                .to_be_visible()
            charts = page.locator("[data-testid='stVegaLiteChart']")
            expect(charts.first).to_be_visible()
            assert charts.count() == 2  # fill rate and monitoring, week by week
            expect(page.get_by_role("heading", name="By provider")).to_be_visible()
            page.screenshot(path=ARTIFACTS / "8-performance-english.png")
            page.get_by_text("中文", exact=True).click()
            expect(page.get_by_role("heading", name="各颜色每周满足率")).to_be_visible()
            expect(charts.first).to_be_visible()
            page.screenshot(path=ARTIFACTS / "9-performance.png")
        finally:
            browser.close()

    row = alerts.alerts(register, states=("acknowledged",)).set_index("alert_id") \
        .loc[alert["alert_id"]]
    token = TokenStore(register.engine).list()[-1]["token_id"]  # the one signed in with
    assert (row["ack_by"], row["ack_note"]) == (f"token:{token} planner · 记录人 王协调",
                                                "已电话联系,本周上门")
    answered = cycle.tasks(register).set_index("task_id")
    assert (answered.at[task["task_id"], "status"],
            answered.at[task["task_id"], "units_delivered"]) == ("delivered", 1.0)
    assert answered.at[visit["task_id"], "status"] == "delivered"
    with register.engine.connect() as conn:
        result = conn.execute(sa.select(cycle.VISIT_RESULTS).where(
            cycle.VISIT_RESULTS.c.task_id == visit["task_id"])).mappings().one()
    assert (result["outcome"], json.loads(result["indicators"]), result["new_needs"]) == (
        "done", {"d_health": "1"}, "meal_help:1")


def test_sign_in_first_and_a_coordinator_sees_only_their_street_in_chromium(register_server):
    """Issue 17, finding 1: the app showed every household to whoever reached its port. Now
    the first page is the sign-in (no household on it, nor after a forged token); a
    coordinator of street D04S01 who follows a link to street D04S02 sees their own street's
    inbox, and no household of the other street."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url, register = register_server
    households = register.table("households")
    own = set(households.loc[households["station_id"].str.startswith("D04S01"), "household_id"])
    other = set(households.loc[households["station_id"].str.startswith("D04S02"),
                               "household_id"])
    centres = register.table("centres")["centre_id"]
    own_alerts = alerts.alerts(register, centres=frozenset(c for c in centres
                                                           if c.startswith("D04S01")),
                               states=("open",))
    secret = _token(register, "coordinator", "D04S01")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1400})
            page.set_default_timeout(STEP_TIMEOUT)
            page.goto(f"{url}/inbox?reg_street=北熙街道 · D04S02")
            expect(page.get_by_role("heading", name="五联 · 登录")).to_be_visible(
                timeout=STEP_TIMEOUT)
            page.get_by_label("令牌", exact=True).fill("wl_forged")
            page.get_by_role("button", name="登录", exact=True).click()
            expect(page.get_by_text("令牌无效或已撤销")).to_be_visible()
            shown = page.locator("body").inner_text()
            assert not any(h in shown for h in own | other)
            page.screenshot(path=ARTIFACTS / "10-sign-in.png")

            sign_in(page, secret)
            expect(page.get_by_role("heading", name="收件箱 · 本周待办")).to_be_visible()
            expect(page.get_by_text("协调员只能查看本辖区")).to_be_visible()
            expect(page.get_by_text("已登录:中心协调员 · 中心 D04S01")).to_be_visible()
            links = page.locator("[data-testid='stSidebarNav'] a")
            assert links.count() == 3  # inbox, weekly allocation, performance
            # The inbox's alerts render after its heading: wait for one of the street's own
            # (Playwright retries the match), then read the page as it is shown.
            subjects = "|".join(re.escape(str(s)) for s in own_alerts["subject_id"])
            expect(page.locator("body")).to_contain_text(re.compile(subjects))
            page.screenshot(path=ARTIFACTS / "11-coordinator-fenced.png", full_page=True)
            shown = page.locator("body").inner_text()
            assert not any(h in shown for h in other)
            assert any(s in shown for s in own_alerts["subject_id"])
        finally:
            browser.close()


def test_language_round_trip_page_switch_and_reload_keep_the_centre_offline(server):
    """Issue 18 in the browser: with a street's results on screen, English and back to Chinese
    neither crash nor empty the colour filter; the results name the street and say what the
    run is held at; a page switch and a reload keep the street (the URL holds it); and no
    request leaves the machine (the icon is the package's, the toolbar in viewer mode)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    demo = load_scenario(ROOT / "data" / "demo")
    centres = demo.centres.set_index("centre_id")
    street = "D04S01"
    district = centres.at[street, "parent_id"]
    street_label = f"{centres.at[street, 'name']} · {street}"
    server, secret = server
    local = server.rstrip("/")
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(STEP_TIMEOUT)
            page.on("request", lambda r: None if r.url.startswith(
                (local, "data:", "blob:", "ws://127.0.0.1", "about:")) else outside.append(r.url))
            page.goto(server)
            sign_in(page, secret)
            expect(page.get_by_role("heading", name="协调员 · 每周分配")).to_be_visible(
                timeout=STEP_TIMEOUT)
            expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
            street_box = page.locator("[data-testid='stSelectbox']").filter(
                has=page.get_by_text("街镇", exact=True))
            _pick(page, "区县", f"{centres.at[district, 'name']} · {district}")
            expect(street_box.locator("input")).to_be_enabled()
            _pick(page, "街镇", street_label)
            expect(street_box.locator("input")).to_have_value(street_label)
            page.get_by_role("button", name="运行分配").click()
            expect(page.get_by_role("heading", name="家庭救助套餐")).to_be_visible(
                timeout=RUN_TIMEOUT)
            expect(page.get_by_role("heading", name=f"分配结果 · {centres.at[street, 'name']}",
                                    exact=False)).to_be_visible()
            expect(page.get_by_text("范围:", exact=False).first).to_be_visible()
            shown = page.get_by_text(re.compile(r"^显示 [\d,]+ / [\d,]+ 户$"))
            expect(shown).to_be_visible()
            counted = re.findall(r"[\d,]+", shown.inner_text())
            assert counted[0] == counted[1] and int(counted[0].replace(",", "")) > 0
            total = int(counted[0].replace(",", ""))
            exceptions = page.locator("[data-testid='stException']")

            page.get_by_text("English", exact=True).click()
            expect(page.get_by_role("heading", name="Household plans (assistance packages)")) \
                .to_be_visible()
            expect(page.get_by_text(f"showing {fmt.count(total)} of {fmt.count(total)} "
                                    "households")).to_be_visible()
            expect(exceptions).to_have_count(0)
            page.get_by_text("中文", exact=True).click()
            expect(page.get_by_role("heading", name="家庭救助套餐")).to_be_visible()
            expect(page.get_by_text(f"显示 {fmt.count(total)} / {fmt.count(total)} 户")) \
                .to_be_visible()
            expect(exceptions).to_have_count(0)
            page.screenshot(path=ARTIFACTS / "9-round-trip.png", full_page=True)

            page.get_by_role("link", name="基金 · 预算实验室").click()
            expect(page.get_by_role("heading", name="基金 · 预算实验室")).to_be_visible()
            page.get_by_role("link", name="协调员 · 每周分配").click()
            expect(page.get_by_role("heading", name="协调员 · 每周分配")).to_be_visible()
            expect(street_box.locator("input")).to_have_value(street_label)

            page.reload()  # a new session: the token is asked again, the URL keeps the street
            sign_in(page, secret)
            expect(page.get_by_role("heading", name="协调员 · 每周分配")).to_be_visible(
                timeout=STEP_TIMEOUT)
            assert f"centre={street}" in page.url
            expect(street_box.locator("input")).to_have_value(street_label)
            page.screenshot(path=ARTIFACTS / "10-reloaded.png", full_page=True)
        finally:
            browser.close()
    assert outside == []


def _after(locator) -> str:
    """The text a style puts after an element (CSS ``::after``), unquoted."""
    content = locator.evaluate("e => getComputedStyle(e, '::after').content")
    return json.loads(content) if content.startswith('"') else content


def test_bilingual_navigation_fits_and_the_file_box_speaks_chinese(server):
    """Issue 18 at 1440×900: in the bilingual mode no page name in the navigation is cut with
    "…"; the file box shows our words and our limit, not Streamlit's English ("Upload",
    "200MB per file"), in each language and once files are in it."""
    from wulian.planning.limits import MB, limits

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server, secret = server
    limit = f"{fmt.count(limits().max_body_bytes // MB)} MB"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(STEP_TIMEOUT)
            page.goto(server)
            sign_in(page, secret)
            page.get_by_text("中文 / English", exact=True).click()
            links = page.locator("[data-testid='stSidebarNavLink'] "
                                 "[data-testid='stMarkdownContainer']")
            expect(links.first).to_have_text("收件箱 / Inbox")
            names = links.all_inner_texts()
            assert names == ["收件箱 / Inbox", "协调员 / Coordinator", "服务绩效 / Performance",
                             "预算实验室 / Fund lab", "数据 / Data", "运行记录 / Runs"]
            for link in links.all():  # the whole name shows: nothing is cut with "…"
                width, room = link.evaluate("e => [e.scrollWidth, e.clientWidth]")
                assert width <= room, (link.inner_text(), width, room)
            # The scenario picker follows the language at once (it lagged a switch behind).
            picker = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first
            expect(picker.locator("input")).to_have_value(
                "内置示例(一个区) / bundled demo (one district)")

            page.get_by_role("link", name="数据 / Data").click()
            expect(page.get_by_role("heading", name="数据 / Data")).to_be_visible()
            box = page.locator("[data-testid='stFileUploaderDropzone']").first
            button = box.locator("button").first
            expect(button).to_be_visible()
            expect(button.get_by_text("Upload", exact=True)).to_be_hidden()
            assert _after(button.locator("span[data-has-shortcut]")) == "选择文件 / Choose files"
            own = box.locator("[data-testid='stFileUploaderDropzoneInstructions'] span")
            expect(own.first).to_be_hidden()  # "200MB per file • CSV, PARQUET, XLSX"
            instructions = _after(box.locator(
                "[data-testid='stFileUploaderDropzoneInstructions'] > div"))
            assert f"每个文件不超过 {limit}" in instructions and f"up to {limit} per file" \
                in instructions
            page.screenshot(path=ARTIFACTS / "11-bilingual-navigation-and-file-box.png")
            # Files dragged over the box: Streamlit's "Drag and drop files here" is ours too.
            dragged = page.evaluate_handle("() => { const d = new DataTransfer(); "
                                           "d.items.add(new File(['a'], 'a.csv')); return d; }")
            box.dispatch_event("dragenter", {"dataTransfer": dragged})
            overlay = box.locator(":scope > div:not([data-testid]) > span")
            expect(overlay).to_have_count(1)
            assert overlay.evaluate("e => getComputedStyle(e).fontSize") == "0px"
            assert _after(overlay) == "松开鼠标即可上传 / Drop the files here"
            box.dispatch_event("dragleave", {"dataTransfer": dragged})
            expect(overlay).to_have_count(0)

            page.get_by_text("中文", exact=True).click()
            expect(page.get_by_role("heading", name="数据", exact=True)).to_be_visible()
            expect(picker.locator("input")).to_have_value("内置示例(一个区)")
            box = page.locator("[data-testid='stFileUploaderDropzone']").first
            assert _after(box.locator("button span[data-has-shortcut]").first) == "选择文件"
            assert _after(box.locator(
                "[data-testid='stFileUploaderDropzoneInstructions'] > div")) == \
                f"拖放文件到此处 · 每个文件不超过 {limit} · CSV、Parquet、XLSX"
            # With files in it the box shows its list and a smaller button ("Add files").
            clean = sorted((Path(__file__).parent / "data" / "clean").glob("*.csv"))
            page.locator("[data-testid='stFileUploaderDropzoneInput']").first \
                .set_input_files([str(p) for p in clean])
            expect(page.get_by_text("场景无误", exact=False)).to_be_visible()
            uploader = page.locator("[data-testid='stFileUploader']").first
            visible = uploader.inner_text()
            assert "Add files" not in visible and "Upload" not in visible, visible
            expect(uploader.get_by_text("needs.csv", exact=True)).to_be_visible()
            chips = uploader.locator("[data-testid='stFileChips']")
            assert _after(chips) == "none"  # the list is left alone (no drop text after it)
            page.screenshot(path=ARTIFACTS / "12-file-box-chinese.png", full_page=True)
        finally:
            browser.close()
