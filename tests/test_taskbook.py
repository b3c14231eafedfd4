"""The command line's week and the task workbooks, as a coordinator uses them: what is refused
is listed where it is (file, row, column), ids of any text make files and CSV cells that are
safe, and workbooks filled in by hand (Chinese headers, Chinese service names) are read."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from wulian.api.cli import main
from wulian.contract import vocab
from wulian.contract.problems import ValidationError
from wulian.planning import cycle, taskbook
from wulian.planning.fmt import count
from wulian.planning.generate import generate_scenario
from wulian.planning.io import write_tables
from wulian.planning.register import Actor, Register
from wulian.planning.store import RunStore

W1 = "2026-W49"
# Ids a validated scenario may hold that a file name or a spreadsheet cannot take as they are.
SLASHED, FORMULA, FORMULA_FUND = "NGO/1", "=1+2", "=F9"


@pytest.fixture(scope="module")
def awkward_scenario(tmp_path_factory) -> Path:
    """The tiny preset with a provider id holding "/", one like a formula and a fund id like
    a formula, written as a CSV folder."""
    tables = generate_scenario("tiny", 0)
    offering = list(tables["offers"]["provider_id"])  # the providers with the most offers
    busiest = sorted(set(offering), key=lambda p: (-offering.count(p), p))
    renames = {busiest[0]: SLASHED, busiest[1]: FORMULA,
               tables["funds"]["fund_id"].iat[1]: FORMULA_FUND}
    renamed = {name: frame.replace(renames) for name, frame in tables.items()}
    out = tmp_path_factory.mktemp("awkward") / "scenario"
    write_tables(renamed, out, "csv")
    return out


@pytest.fixture
def store(tmp_path, awkward_scenario, monkeypatch) -> str:
    """A store with the awkward scenario imported and its first week opened."""
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    monkeypatch.setenv("WULIAN_STORE", url)
    assert main(["register", "import", str(awkward_scenario)]) == 0
    assert main(["week", "open", W1]) == 0
    return url


def _register(url: str) -> Register:
    return Register(RunStore(url), Actor("tester", "cli"))


def _tasks(url: str) -> pd.DataFrame:
    register = _register(url)
    try:
        return cycle.tasks(register, W1)
    finally:
        register.engine.dispose()


def _published(tmp_path: Path) -> dict[str, Path]:
    """Publish the week; each workbook by the provider or street its about sheet names."""
    assert main(["week", "publish", W1, "--out", str(tmp_path / "push")]) == 0
    out = {}
    for path in sorted((tmp_path / "push").glob("*.xlsx")):
        about = dict(load_workbook(path)["说明 about"].iter_rows(values_only=True))
        out[about["对象 for"]] = path
    return out


def _fill(path: Path, rows: dict[int, dict[str, object]], headers=None) -> Path:
    """Fill cells of a published workbook by column code (``rows``: row → code → value);
    ``headers`` replaces the header row's text (code → new header)."""
    wb = load_workbook(path)
    ws = wb["任务 tasks"]
    published = {c.header: c.code for c in (*taskbook.FACTS, taskbook.VISIT_HOURS,
                                             *taskbook.ANSWERS, *taskbook.VISIT)}
    column = {published[c.value]: c.column for c in ws[1]}
    for r, cells in rows.items():
        for code, value in cells.items():
            ws.cell(r, column[code], value)
    for code, header in (headers or {}).items():
        ws.cell(1, column[code], header)
    wb.save(path)
    return path


def test_a_publish_names_files_safely_and_uniquely_for_any_id(store, tmp_path):
    """An id with "/" (or a formula's "=") publishes, one workbook per provider, each named
    by its about sheet; the names hold nothing Windows refuses."""
    books = _published(tmp_path)
    tasks = _tasks(store)
    providers = set(tasks.loc[tasks["volunteer_id"] == "", "provider_id"])
    assert SLASHED in providers and SLASHED in books
    assert providers <= set(books)
    assert not any(set(p.name) & set('<>:"/\\|?*') for p in books.values())
    assert len({p.name.lower() for p in books.values()}) == len(books)


def test_file_names_differ_whenever_ids_do():
    used: set[str] = set()
    names = [taskbook.file_name(stem, used) for stem in
             ("W_a/b", "W_a_b", "W_A_B", "W_a:b", "W_x. ", "W_x")]
    assert len({n.lower() for n in names}) == len(names)
    assert names[1] == "W_a_b.xlsx" and names[5] == "W_x.xlsx"  # clean ids keep their name
    assert all(n.endswith(".xlsx") and not set(n) & set('<>:"/\\|?*') for n in names)


def test_answer_cells_filled_with_no_status_refuse_the_file(store, tmp_path, capsys):
    """Units or a date with the status left blank would be settled as unanswered by the close:
    every such row is listed (file, row, column status) and nothing of the file is recorded."""
    books = _published(tmp_path)
    path = books[SLASHED]
    tid = load_workbook(path)["任务 tasks"].cell(2, 1).value
    many = load_workbook(path)["任务 tasks"].max_row >= 4
    filled = {2: {"units_delivered": 1, "answered_on": "2026-12-01"}}
    if many:
        filled |= {3: {"status": "已接受"}, 4: {"reason": "其他"}}
    _fill(path, filled)
    capsys.readouterr()
    assert main(["week", "record", str(path)]) == 1
    out = " ".join(capsys.readouterr().out.split())  # (as the console wraps it)
    assert f"{path.name}:任务 tasks 第2行 row 2 · 状态 status: 任务 {tid} 已填写回复" in out
    assert f"task {tid} is answered but its status is empty" in out
    if many:
        assert "第4行 row 4" in out and "第3行" not in out
    assert "未记录任何回复 / no answer was recorded" in out and "场景未导入" not in out
    assert (_tasks(store)["status"] == "planned").all()


def test_a_total_or_remark_row_below_the_tasks_is_not_an_answer(store, tmp_path):
    books = _published(tmp_path)
    path = books[SLASHED]
    ws = load_workbook(path)["任务 tasks"]
    last = ws.max_row
    _fill(path, {r: {"status": "已完成"} for r in range(2, last + 1)}
          | {last + 2: {"task_id": "合计 total", "units_delivered": last - 1}})
    answers = taskbook.read_answers([path])
    assert len(answers) == last - 1 and all(a.task_id.startswith("T") for a in answers)


def test_english_headers_alone_are_read(store, tmp_path):
    books = _published(tmp_path)
    path = books[SLASHED]
    tid = load_workbook(path)["任务 tasks"].cell(2, 1).value
    english = {c.code: c.en for c in (*taskbook.FACTS, *taskbook.ANSWERS)}
    _fill(path, {2: {"status": "delivered", "units_delivered": 1}}, headers=english)
    [answer] = taskbook.read_answers([path])
    assert (answer.task_id, answer.status, answer.units_delivered) == (tid, "delivered", "1")


def test_chinese_headers_alone_are_read(store, tmp_path):
    books = _published(tmp_path)
    path = books[SLASHED]
    tid = load_workbook(path)["任务 tasks"].cell(2, 1).value
    _fill(path, {2: {"status": "已完成"}},
          headers={"task_id": "任务编号", "status": "状态", "units_delivered": "完成数量"})
    [answer] = taskbook.read_answers([path])
    assert (answer.task_id, answer.status, answer.row) == (tid, "已完成", 2)
    assert main(["week", "record", str(path)]) == 0
    assert _tasks(store).set_index("task_id").at[tid, "status"] == "delivered"


def test_a_workbook_without_the_columns_names_them_as_published(tmp_path):
    path = tmp_path / "other.xlsx"
    pd.DataFrame({"编号": ["T1"], "结果": ["已完成"]}).to_excel(path, index=False)
    with pytest.raises(ValidationError) as err:
        taskbook.read_answers([path])
    assert [(p.code, p.column) for p in err.value.problems] == [
        ("missing_column", "任务编号 task"), ("missing_column", "状态 status")]


def test_a_csv_or_a_folder_given_to_record_is_said_in_both_languages(tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.setenv("WULIAN_STORE", f"sqlite:///{tmp_path / 's.sqlite'}")
    (tmp_path / "answers.csv").write_text("task_id,status\nT1,delivered\n")
    (tmp_path / "folder").mkdir()
    assert main(["week", "record", str(tmp_path / "answers.csv"), str(tmp_path / "folder")]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "无法读取" in line]
    assert len(lines) == 2
    for line in lines:  # the reason in Chinese in the Chinese half (not openpyxl's English)
        zh = line.split("无法读取文件:")[1].split(" / ")[0]
        assert zh.startswith(("不是可读的", "这是文件夹")), line
    assert out.count("请提交推送的 Excel 工作簿") == 2 and "另存为" not in out
    assert "未记录任何回复 / no answer was recorded" in out


def test_a_mistaken_policy_file_lists_its_problems(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WULIAN_STORE", f"sqlite:///{tmp_path / 's.sqlite'}")
    policy = tmp_path / "bad.toml"
    policy.write_text("[cycle]\nexpire_week = 2\n")
    assert main(["week", "list", "--policy", str(policy)]) == 1
    captured = capsys.readouterr()
    assert "internal error" not in captured.err and "内部错误" not in captured.err
    assert "bad.toml · cycle.expire_week: 未知的键 / unknown key" in captured.out
    assert "`expire_weeks`" in captured.out
    assert "策略未采用" in captured.err


def test_task_and_ledger_csvs_are_safe_against_formula_injection(store, tmp_path):
    out = tmp_path / "tasks.csv"
    assert main(["week", "tasks", W1, "--out", str(out)]) == 0
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    providers = set(written["provider_id"])
    assert "'" + FORMULA in providers and FORMULA not in providers
    assert main(["week", "close", W1]) == 0
    assert main(["funds", "ledger", "--out", str(tmp_path / "ledger")]) == 0
    funds = set(pd.read_csv(tmp_path / "ledger" / "balances.csv", dtype=str)["fund_id"])
    assert "'" + FORMULA_FUND in funds and FORMULA_FUND not in funds


def _a_visit(url: str) -> tuple[str, str, str]:
    """A monitoring visit of the week: its task, street and household."""
    tasks = _tasks(url)
    visit = tasks[tasks["kind"].isin(cycle.MONITORING_KINDS)].iloc[0]
    return visit["task_id"], visit["street_id"], visit["household_id"]


def _visit_row(path: Path, task_id: str) -> int:
    ws = load_workbook(path)["任务 tasks"]
    return next(r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == task_id)


def test_a_visits_new_needs_by_chinese_name_and_full_width_colon(store, tmp_path):
    tid, street, household = _a_visit(store)
    register = _register(store)
    services = register.table("services").set_index("service_id")
    register.engine.dispose()
    whole = services[services["unit"].isin(["item", "visit"])].index[0]
    hourly = services[services["unit"] == "hour"].index[0]
    path = _published(tmp_path)[street]
    _fill(path, {_visit_row(path, tid): {
        "status": "已完成",
        "new_needs": f"{services.at[whole, 'name_zh']}:2\uff1b{hourly}\uff1a3"}})
    assert main(["week", "record", str(path)]) == 0
    register = _register(store)
    needs = register.table("needs")
    register.engine.dispose()
    found = needs[(needs["household_id"] == household) & (needs["week"] == W1)]
    assert {(r.service_id, float(r.quantity)) for r in found.itertuples()} >= {
        (whole, 2.0), (hourly, 3.0)}


def test_a_visits_bad_new_need_is_said_at_the_workbooks_row(store, tmp_path, capsys):
    tid, street, _household = _a_visit(store)
    register = _register(store)
    services = register.table("services")
    register.engine.dispose()
    whole = services.loc[services["unit"] == "item", "service_id"].iat[0]
    path = _published(tmp_path)[street]
    row = _visit_row(path, tid)
    _fill(path, {row: {"status": "已完成", "new_needs": f"{whole}:1.5"}})
    with pytest.raises(ValidationError) as err:
        register = _register(store)
        try:
            cycle.record_answers(register, taskbook.read_answers([path]))
        finally:
            register.engine.dispose()
    [problem] = err.value.problems
    assert (problem.table, problem.row, problem.column, problem.code) == (
        f"{path.name}:任务 tasks", row, "new_needs", "not_whole")
    assert _tasks(store).set_index("task_id").at[tid, "status"] == "planned"


def test_a_need_raised_from_the_command_line_is_for_this_week_by_default(store, capsys):
    register = _register(store)
    household = register.table("households")["household_id"].iat[0]
    service = register.table("services")["service_id"].iat[0]
    register.engine.dispose()
    assert main(["register", "need", household, "--set", f"service_id={service}",
                 "--set", "quantity=1"]) == 0
    need_id = capsys.readouterr().out.split("need raised: ")[1].strip()
    register = _register(store)
    needs = register.table("needs").set_index("need_id")
    register.engine.dispose()
    year, number, _ = date.today().isocalendar()
    assert needs.at[need_id, "week"] == f"{year}-W{number:02d}"


@pytest.mark.parametrize(("value", "shown"), [
    (12345, "12,345"), (2.5, "2.5"), (0.003, "0.003"), (0.996, "0.996"), (0.0125, "0.0125"),
    (1.004, "1"), (1234.5, "1,234.5"), (-0.25, "-0.25"), (0.5, "0.5"), (float("nan"), "—"),
    (-1e-9, "0")])
def test_counts_small_and_near_whole_read_as_they_are(value, shown):
    assert count(value) == shown


def test_workbooks_say_units_slots_and_kinds_in_chinese_and_visits_their_hours(store,
                                                                             tmp_path):
    tasks = _tasks(store)
    visits = tasks[tasks["kind"] == "visit"]  # (a service delivered in person)
    tid, street = visits["task_id"].iat[0], visits["street_id"].iat[0]
    path = _published(tmp_path)[street]
    wb = load_workbook(path)
    about = dict(wb["说明 about"].iter_rows(values_only=True))
    assert about["类型 kind"] == "街镇 street" and "北京时间" in about["生成时间 made"]
    ws = wb["任务 tasks"]
    header = [c.value for c in ws[1]]
    row = dict(zip(header, next(r for r in ws.iter_rows(min_row=2, values_only=True)
                                if r[0] == tid), strict=True))
    assert row["时段 slot"] in {zh for zh, _en in vocab.SLOTS.values()}
    assert row["单位 unit"] in {zh for zh, _en in vocab.UNITS.values()}
    assert row["时长(小时) hours"] == visits["hours"].iat[0] > 0
    # … and the answers still know whose workbook it is (a street's)
    _fill(path, {2: {"status": "已完成"}})
    [answer] = taskbook.read_answers([path])
    assert (answer.street, answer.provider) == (street, "")


def test_the_console_shows_shares_as_percentages(store, tmp_path, capsys):
    assert main(["week", "close", W1]) == 0
    capsys.readouterr()
    assert main(["performance", "--json"]) == 0
    rates = json.loads(capsys.readouterr().out)["fill_rate"]
    assert rates
    assert main(["performance"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("满足率 / fill rate"):]
    assert "%" in table
    # By provider, both shares as percentages: a provider paid for its delivery has two.
    rows = [line for line in out[:out.index("满足率 / fill rate")].splitlines()
            if line.startswith("│")]
    assert any(line.count("%") == 2 for line in rows)


def test_console_tables_are_headed_in_both_languages(store, awkward_scenario, capsys):
    capsys.readouterr()
    assert main(["register", "import", str(awkward_scenario), "--dry-run"]) == 0
    assert main(["week", "tasks", W1]) == 0
    assert main(["funds", "ledger"]) == 0
    out = capsys.readouterr().out
    for heading in ("新增 added", "变更 changed", "类别 kind", "状态 status", "任务数 tasks",
                    "基金 fund", "已支出 money spent", "余额 balance"):
        assert heading in out, heading


def test_a_weeks_open_says_its_timings_in_words(tmp_path, awkward_scenario, capsys,
                                                monkeypatch):
    monkeypatch.setenv("WULIAN_STORE", f"sqlite:///{tmp_path / 's.sqlite'}")
    assert main(["register", "import", str(awkward_scenario)]) == 0
    capsys.readouterr()
    assert main(["week", "open", W1]) == 0
    out = capsys.readouterr().out
    assert "{'" not in out and "分配 allocate" in out and "共 total" in out
    assert "任务数 tasks" in out
