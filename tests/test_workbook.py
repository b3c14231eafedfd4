"""Every workbook wulian writes is one an office can send on (issue 18): headers in words, the
header frozen and filtered, shares as 0.0 %, money as ¥, sheets named for people, an index,
A4 print set-up, and text that never becomes a formula — without a visible apostrophe."""

from __future__ import annotations

import io
import re

import openpyxl
import pandas as pd
import pytest

from wulian.planning.generate import generate_scenario
from wulian.planning.io import read_raw, write_tables
from wulian.planning.scenario import Scenario
from wulian.planning.workbook import MONEY, PERCENT, Sheet, sheet_name, write_workbook

HOSTILE_HOUSEHOLD = "=1+1"
HOSTILE_PROVIDER = "@SUM(1)"
SNAKE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")  # a code such as fill_rate, never a heading
CJK = re.compile(r"[\u4e00-\u9fff]")


def hostile_tables() -> dict[str, pd.DataFrame]:
    """The tiny scenario with a household id ``=1+1`` and a provider id ``@SUM(1)`` (and a
    provider name that would be a formula too), every reference renamed with them."""
    tables = {k: v.copy() for k, v in generate_scenario("tiny", seed=0).items()}
    old_hh = tables["households"].loc[0, "household_id"]
    for name in ("households", "needs", "history"):
        frame = tables[name]
        frame["household_id"] = frame["household_id"].replace(old_hh, HOSTILE_HOUSEHOLD)
    # the provider of the first offer, so it has tasks in every export
    old_pr = tables["offers"].loc[0, "provider_id"]
    for name in ("providers", "offers", "volunteers"):
        frame = tables[name]
        frame["provider_id"] = frame["provider_id"].replace(old_pr, HOSTILE_PROVIDER)
    providers = tables["providers"]
    providers.loc[providers["provider_id"] == HOSTILE_PROVIDER, "name"] = "=HYPERLINK(\"x\")"
    return tables


@pytest.fixture(scope="module")
def hostile():
    """The hostile scenario, its run and its matching (once for the module)."""
    from wulian.planning.allocate import run_allocation
    from wulian.planning.match import run_matching

    scenario = Scenario.from_tables(hostile_tables())
    assert HOSTILE_HOUSEHOLD in set(scenario.households["household_id"])
    run = run_allocation(scenario)
    match = run_matching(scenario, run)
    return scenario, run, match


def check_book(book: openpyxl.Workbook, lang: str = "zh", index: bool = True) -> None:
    """What every workbook for people must be."""
    names = book.sheetnames
    assert len({n.lower() for n in names}) == len(names)
    assert all(len(n) <= 31 and not set(n) & set("[]:*?/\\") for n in names)
    if index:
        first = book[names[0]]
        assert first.title == {"zh": "目录", "en": "Contents", "both": "目录 Contents"}[lang]
        listed = [r[0] for r in first.iter_rows(min_row=2, max_col=1, values_only=True)]
        assert listed == names[1:]
    for ws in book:
        assert ws.freeze_panes == "A2", ws.title
        assert ws.auto_filter.ref and ws.auto_filter.ref.startswith("A1:"), ws.title
        assert ws.page_setup.paperSize in ("9", 9), ws.title
        assert ws.print_title_rows == "$1:$1", ws.title
        heads = [c.value for c in ws[1]]
        assert heads and all(isinstance(h, str) and h for h in heads), ws.title
        for h in heads:
            assert not SNAKE.match(h), (ws.title, h)
            if lang == "zh" and h not in ("M0",):
                assert CJK.search(h), (ws.title, h)
        for letter, dim in ws.column_dimensions.items():
            assert dim.width and dim.width >= 8, (ws.title, letter)
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    assert cell.data_type == "s"
                    assert not cell.value.startswith("'"), (ws.title, cell.coordinate)


def cells(book: openpyxl.Workbook) -> list:
    return [c for ws in book for row in ws.iter_rows() for c in row]


def hostile_cells_are_text(book: openpyxl.Workbook, *expected: str) -> None:
    """Each hostile id reads back as exactly that string, in a text cell."""
    found = {c.value: c.data_type for c in cells(book) if c.value in expected}
    assert set(found) == set(expected)
    assert set(found.values()) == {"s"}


def formats_of(ws, heading: str) -> set[str]:
    heads = [c.value for c in ws[1]]
    col = heads.index(heading) + 1
    return {ws.cell(r, col).number_format for r in range(2, ws.max_row + 1)
            if ws.cell(r, col).value is not None}


def test_run_workbook_in_chinese(hostile, tmp_path):
    """`Run.write(..., "xlsx")` (the CLI's --format xlsx): Chinese headings, codes in words,
    fill rate as 0.0 %, money as ¥, the hostile ids as exact text."""
    _, run, _ = hostile
    run.write(tmp_path, "xlsx")
    book = openpyxl.load_workbook(tmp_path / "outputs.xlsx")
    check_book(book)
    assert book.sheetnames == ["目录", "街镇汇总", "各户救助套餐", "未满足需求", "分配明细",
                               "资源使用"]
    plans = book["各户救助套餐"]
    assert formats_of(plans, "满足率") == {PERCENT}
    assert formats_of(plans, "金额") == {MONEY}
    colours = {r[0] for r in plans.iter_rows(min_row=2, min_col=3, max_col=3, values_only=True)}
    assert colours <= {"红色", "橙色", "黄色", "绿色"} and colours
    unmet = book["未满足需求"]
    reasons = {r[0] for r in unmet.iter_rows(min_row=2, min_col=3, max_col=3,
                                             values_only=True)}
    assert reasons and not any(SNAKE.match(str(r)) for r in reasons)
    assert book["分配明细"].max_row == len(run.allocations) + 1
    hostile_cells_are_text(book, HOSTILE_HOUSEHOLD, HOSTILE_PROVIDER)


@pytest.mark.parametrize("lang", ["en", "both"])
def test_run_workbook_other_languages(hostile, tmp_path, lang):
    _, run, _ = hostile
    run.write(tmp_path, "xlsx", lang)
    book = openpyxl.load_workbook(tmp_path / "outputs.xlsx")
    check_book(book, lang)
    heads = [c.value for c in book[book.sheetnames[2]][1]]
    if lang == "both":
        assert all(CJK.search(h) and re.search("[a-z]", h) for h in heads), heads


def test_coordinator_export(hostile):
    """The app's export: providers' sheets named by the provider's name, volunteers' weeks,
    the unmet list red first; the hostile name and ids are exact text."""
    from wulian.planning.session import export_workbook, provider_tasks

    scenario, run, match = hostile
    book = openpyxl.load_workbook(io.BytesIO(export_workbook(scenario, run.tables,
                                                             match.schedules)))
    check_book(book)
    tasks = provider_tasks(scenario, run.tables)
    names = scenario.providers.set_index("provider_id")["name"]
    taken: set[str] = {"目录"}
    expected = [sheet_name(names[p], taken) for p in sorted(tasks["provider_id"].unique())]
    assert book.sheetnames[1:1 + len(expected)] == expected
    assert book.sheetnames[-1] == "未满足需求"
    assert '=HYPERLINK("x")' in book.sheetnames
    unmet = book["未满足需求"]
    heads = [c.value for c in unmet[1]]
    tiers = [r[heads.index("颜色")] for r in unmet.iter_rows(min_row=2, values_only=True)]
    order = ["红色", "橙色", "黄色", "绿色"]
    assert [order.index(t) for t in tiers] == sorted(order.index(t) for t in tiers)
    assert unmet.max_row == len(run.unmet) + 1
    hostile_cells_are_text(book, HOSTILE_HOUSEHOLD, '=HYPERLINK("x")')


def test_matching_workbook(hostile, tmp_path):
    """`wulian match --format xlsx`: the tables, then one sheet per volunteer, all tables."""
    from wulian.planning.match import reconciled_tables, write_workbook

    scenario, run, match = hostile
    path = write_workbook(match, tmp_path / "m.xlsx", reconciled_tables(scenario, run, match))
    book = openpyxl.load_workbook(path)
    check_book(book)
    volunteers = [n for n in book.sheetnames if n.startswith("志愿者 V")]
    assert len(volunteers) == match.schedules["volunteer_id"].nunique()
    first = match.schedules["volunteer_id"].iloc[0]
    ws = book[f"志愿者 {first}"]
    mine = match.schedules[match.schedules["volunteer_id"] == first]
    assert ws.max_row == len(mine) + 1
    heads = [c.value for c in ws[1]]
    hours = [r[heads.index("小时")] for r in ws.iter_rows(min_row=2, values_only=True)]
    assert sum(h or 0 for h in hours) == pytest.approx(mine["hours"].sum())
    hostile_cells_are_text(book, HOSTILE_HOUSEHOLD)


def test_scenario_workbook_round_trips_as_text(tmp_path):
    """A scenario written as xlsx (`wulian generate --format xlsx`) keeps the codes, reads
    back to the same text, and the hostile ids are text cells, not formulas."""
    tables = hostile_tables()
    path = write_tables(tables, tmp_path / "s.xlsx", "xlsx")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == list(tables)
    for ws in book:
        assert ws.freeze_panes == "A2"
        assert not any(c.data_type == "f" for row in ws.iter_rows() for c in row)
    hostile_cells_are_text(book, HOSTILE_HOUSEHOLD, HOSTILE_PROVIDER)
    raw = read_raw(path)
    assert not raw.problems
    assert HOSTILE_HOUSEHOLD in set(raw.tables["households"]["household_id"])
    Scenario.from_tables(raw.tables)  # valid as written


def test_performance_report(tmp_path):
    """The performance report through the same writer (bilingual by default)."""
    from wulian.planning.performance import report

    tables = {"fill_rate": pd.DataFrame({"week": ["2027-W01"], "colour": ["red"],
                                         "fill_rate": [0.9151136517637997],
                                         "planned_rate": [1.0], "planned": [56.737]}),
              "monitoring": pd.DataFrame({"week": ["2027-W01"], "tier": ["red"],
                                          "planned": [11], "made": [9], "on_time": [0.818]}),
              "by_fund": pd.DataFrame({"fund": [HOSTILE_PROVIDER], "planned": [1234.5],
                                       "committed": [1000.0], "spent": [900.0],
                                       "delivered_share": [0.5]})}
    book = openpyxl.load_workbook(report(tables, tmp_path / "r.xlsx", "test"))
    check_book(book, "both")
    ws = book["满足率 fill rate"]
    assert formats_of(ws, "满足率 fill rate") == {PERCENT}
    assert ws.cell(2, 2).value == "红色 red"
    # The fill rate's planned are needs and monitoring's visits: counts, headed so, not ¥.
    assert formats_of(ws, "计划满足的需求 needs planned") == {"#,##0.00"}
    assert formats_of(book["巡查 monitoring"], "计划走访 visits planned") == {"#,##0"}
    assert formats_of(book["巡查 monitoring"], "已走访 visits made") == {"#,##0"}
    assert formats_of(book["按基金 by fund"], "已支出 money spent") == {MONEY}
    assert formats_of(book["按基金 by fund"], "计划金额 money planned") == {MONEY}
    hostile_cells_are_text(book, HOSTILE_PROVIDER)


def test_sheet_names_are_excel_safe_and_unique():
    taken: set[str] = set()
    names = [sheet_name(t, taken) for t in ("资源方 a/b", "资源方 A/B", "x" * 40, "x" * 40,
                                            "'q'", "")]
    assert names == ["资源方 ab", "资源方 AB~2", "x" * 31, "x" * 29 + "~2", "q", "sheet"]


def test_widths_follow_the_content(tmp_path):
    """A column of long Chinese text is wider than one of short codes, within the cap."""
    frame = pd.DataFrame({"need_id": ["N1", "N2"], "package": ["助餐送餐←联动志愿" * 2, "x"]})
    book = openpyxl.load_workbook(write_workbook([Sheet("plans", frame)], tmp_path / "w.xlsx"))
    ws = book["各户救助套餐"]
    assert ws.column_dimensions["B"].width > ws.column_dimensions["A"].width >= 8
    assert ws.column_dimensions["B"].width <= 60
