"""Validation: every defect under tests/data/ is reported exactly, and nothing is half-loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from wulian.api.cli import main
from wulian.contract.problems import ValidationError
from wulian.planning.io import read_raw, write_tables
from wulian.planning.scenario import check_raw, load_scenario, tables_digest
from wulian.planning.validate import validate_tables

DATA = Path(__file__).parent / "data"

# defect folder → every problem it must report: (table, code, row, column, value).
EXPECTED = {
    "missing_table": [("needs", "missing_table", None, "", ""),
                      ("pins", "missing_reference", 2, "need_id", "N003")],
    "misspelt_column": [("offers", "missing_column", None, "capacity", ""),
                        ("offers", "unknown_column", None, "capacty", "")],
    "unknown_column": [("households", "unknown_column", None, "colour", "")],
    "missing_value": [("providers", "missing_value", 3, "name", "")],
    "not_a_number": [("needs", "not_a_number", 4, "quantity", "two")],
    "negative_capacity": [("offers", "not_positive", 3, "capacity", "-3")],
    "zero_quantity": [("needs", "not_positive", 5, "quantity", "0")],
    "negative_budget": [("funds", "below_minimum", 2, "budget", "-900")],
    "fractional_visits": [("needs", "not_whole", 2, "quantity", "1.5")],
    "yuan_beyond_cents": [("needs", "too_many_decimals", 6, "quantity", "350.505")],
    "not_a_boolean": [("volunteers", "not_a_boolean", 2, "background_checked", "maybe")],
    "not_a_week": [("needs", "not_a_week", 3, "week", "2026-49")],
    "urgency_out_of_range": [("needs", "not_allowed", 3, "urgency", "5")],
    "duplicate_ids": [("households", "duplicate_id", 6, "household_id", "H002")],
    "need_without_household": [("needs", "missing_reference", 4, "household_id", "H009")],
    "household_without_station": [("households", "missing_reference", 2, "station_id",
                                   "D01S01T09")],
    "centre_without_parent": [("centres", "missing_reference", 4, "parent_id", "D02")],
    "offer_dangling_references": [
        ("offers", "missing_reference", 2, "provider_id", "P09"),
        ("offers", "missing_reference", 2, "service_id", "medical_aid"),
        ("offers", "missing_reference", 3, "fund_id", "F09"),
        ("offers", "missing_reference", 4, "coverage_centre_id", "D01S02"),
    ],
    "volunteer_without_station": [("volunteers", "missing_reference", 3, "station_id", "X1")],
    "earmark_unknown_service": [("funds", "missing_reference", 3, "earmarked_services",
                                 "tutoring")],
    "hierarchy_cycle": [("centres", "wrong_level", 4, "parent_id", "D01S01T01"),
                        ("centres", "hierarchy_cycle", 4, "parent_id", "D01S01")],
    "level_out_of_order": [("centres", "wrong_level", 6, "parent_id", "D01")],
    "two_city_centres": [("centres", "several_roots", 3, "level", "city"),
                         ("centres", "root_has_parent", 3, "parent_id", "C0"),
                         ("centres", "wrong_level", 4, "parent_id", "D01")],
    "household_at_street": [("households", "wrong_level", 4, "station_id", "D01S01")],
    "unknown_category": [("households", "not_allowed", 3, "categories", "dibaoo")],
    "unknown_colour": [("households", "not_allowed", 5, "tier", "redd")],
    "unknown_slot": [("volunteers", "not_allowed", 2, "availability", "monday_pm")],
    "unknown_skill": [("volunteers", "not_allowed", 3, "skills", "tutor")],
    "unknown_linkage": [("providers", "not_allowed", 4, "linkage", "volunteers")],
    "outside_china": [("volunteers", "outside_china", 2, "lat, lon", "104.059, 30.634")],
    "pin_with_two_targets": [("pins", "pin_target", 2, "offer_id, volunteer_id", "O02 / V01")],
    "in_person_without_visit_hours": [("services", "missing_visit_hours", 2, "visit_hours",
                                       "")],
}


def _found(path: Path) -> list[tuple]:
    return [(p.table, p.code, p.row, p.column, p.value) for p in check_raw(read_raw(path))]


def test_every_defect_folder_has_an_expectation():
    """Each scenario folder under tests/data/ is either clean, an encoding case, or a defect
    whose exact report is asserted here."""
    folders = {p.name for p in DATA.iterdir() if p.is_dir()}
    assert folders == set(EXPECTED) | {"clean", "gb18030_encoded", "utf8_bom"}


@pytest.mark.parametrize("defect", sorted(EXPECTED))
def test_defect_is_reported_exactly(defect):
    """The defect's scenario reports exactly the expected problems, no more and no fewer."""
    assert _found(DATA / defect) == EXPECTED[defect]


@pytest.mark.parametrize("defect", sorted(EXPECTED))
def test_every_problem_has_bilingual_message_and_hint(defect):
    """Each reported problem renders a Chinese and an English message and hint."""
    for p in check_raw(read_raw(DATA / defect)):
        assert p.message_zh and p.message_en and p.hint_zh and p.hint_en


def test_misspelt_column_hints_the_right_name():
    """A misspelt column gets "did you mean `capacity`?"."""
    problems = check_raw(read_raw(DATA / "misspelt_column"))
    unknown = next(p for p in problems if p.code == "unknown_column")
    assert "did you mean `capacity`?" in unknown.hint_en
    assert "`capacity`" in unknown.hint_zh


def test_unknown_code_hints_the_closest_code():
    """An unknown category gets the closest known code as a hint."""
    (problem,) = check_raw(read_raw(DATA / "unknown_category"))
    assert problem.hint_en.endswith("did you mean `dibao`?")


@pytest.mark.parametrize("folder,encoding", [("clean", "utf-8"), ("utf8_bom", "utf-8-sig"),
                                             ("gb18030_encoded", "gb18030")])
def test_encodings_are_read_and_named(folder, encoding):
    """UTF-8 with or without BOM and GB18030 read to the same tables, and the encoding is said."""
    raw = read_raw(DATA / folder)
    # Files holding Chinese text name the encoding; ASCII-only files are valid UTF-8 as well.
    for name in ("centres", "services", "providers", "funds"):
        assert raw.sources[name].endswith(f"({encoding})")
    clean = read_raw(DATA / "clean")
    for name, frame in clean.tables.items():
        pd.testing.assert_frame_equal(raw.tables[name], frame)
    assert check_raw(raw) == []


def test_gbk_text_survives_as_chinese():
    """Chinese names in a GB18030 file come back as the same Chinese text."""
    raw = read_raw(DATA / "gb18030_encoded")
    assert raw.tables["centres"].loc[0, "name"] == "成都市社会关爱援助中心"


def test_several_defects_are_all_reported_at_once(tmp_path):
    """A scenario with defects in several tables reports every one of them, not the first."""
    scenario = tmp_path / "broken"
    shutil.copytree(DATA / "clean", scenario)
    chosen = ["negative_capacity", "unknown_skill", "need_without_household", "unknown_category",
              "level_out_of_order", "negative_budget"]
    for defect in chosen:
        for file in (DATA / defect).iterdir():
            if not file.is_symlink():
                shutil.copy(file, scenario / file.name)
    expected = sorted(p for d in chosen for p in EXPECTED[d])
    assert sorted(_found(scenario)) == expected


def test_a_scenario_with_problems_is_not_loaded():
    """load_scenario raises with every problem; there is no partial result."""
    with pytest.raises(ValidationError) as err:
        load_scenario(DATA / "offer_dangling_references")
    assert len(err.value.problems) == 4


@pytest.mark.parametrize("fmt", ["xlsx", "parquet"])
def test_xlsx_and_parquet_hold_the_same_scenario(tmp_path, fmt):
    """The clean scenario written as XLSX or Parquet loads to the same tables and digest."""
    clean = load_scenario(DATA / "clean")
    out = write_tables(dict(clean.tables), tmp_path / ("s.xlsx" if fmt == "xlsx" else "s"), fmt)
    again = load_scenario(out)
    assert again.digest == clean.digest
    for name, frame in clean.tables.items():
        pd.testing.assert_frame_equal(again.tables[name], frame, check_dtype=False)


def test_the_digest_is_that_of_the_rows_in_key_order_however_they_come():
    """Rows in any order give one digest (tables in key order are hashed as they come, others
    sorted first: history, with no key, by every column); a cell changed changes it."""
    demo = load_scenario(Path(__file__).parent.parent / "data" / "demo")
    tables = dict(demo.tables)
    assert len(tables["history"]) > 1 and len(tables["needs"]) > 1
    shuffled = {name: frame.sample(frac=1.0, random_state=1) for name, frame in tables.items()}
    reversed_rows = {name: frame.iloc[::-1] for name, frame in tables.items()}
    assert tables_digest(shuffled) == tables_digest(reversed_rows) == demo.digest
    changed = dict(tables)
    changed["history"] = tables["history"].assign(week=["2020-W01"] + list(
        tables["history"]["week"].iloc[1:]))
    assert tables_digest(changed) != demo.digest

def test_defects_are_found_in_a_workbook_too(tmp_path):
    """A defect in one sheet of an XLSX workbook is reported with the same row number."""
    raw = read_raw(DATA / "negative_capacity")
    out = write_tables(raw.tables, tmp_path / "s.xlsx", "xlsx")
    assert _found(out) == EXPECTED["negative_capacity"]


def test_cli_validate_exit_codes_and_report(tmp_path, capsys):
    """`wulian validate` exits 0 on a clean scenario, 1 on a broken one, and writes every
    problem to the CSV report."""
    assert main(["validate", str(DATA / "clean")]) == 0
    report = tmp_path / "report.csv"
    assert main(["validate", str(DATA / "offer_dangling_references"), "--report",
                 str(report)]) == 1
    frame = pd.read_csv(report, encoding="utf-8-sig", keep_default_na=False)
    assert len(frame) == 4
    assert set(frame["code"]) == {"missing_reference"}
    assert list(frame["row"]) == [2, 2, 3, 4]
    out = capsys.readouterr().out
    assert "引用的" in out and "refers to a missing" in out


def test_a_scenario_pickles():
    """A Scenario travels to worker processes: pickling keeps its tables and digest."""
    import pickle

    scenario = load_scenario(DATA / "clean")
    again = pickle.loads(pickle.dumps(scenario))
    assert again.digest == scenario.digest
    pd.testing.assert_frame_equal(again.households, scenario.households)
    assert list(again.hierarchy.subtree("D01S01")) == list(scenario.hierarchy.subtree("D01S01"))


def test_a_scenario_pickles_while_its_hierarchy_is_first_read():
    """A process pool pickles a Scenario in its feeder thread while the caller goes on: the
    demo's first run failed with "dictionary changed size during iteration" when the caller
    first read ``scenario.hierarchy`` (a cached property) mid-pickle. Here the pickler itself
    reads it at that moment (at the first table it meets), deterministically."""
    import io
    import pickle

    scenario = load_scenario(DATA / "clean")
    seen: list[str] = []

    class ReadsHierarchyMidway(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, pd.DataFrame) and not seen:
                seen.append(str(scenario.hierarchy.subtree("D01S01")[0]))
            return NotImplemented

    buffer = io.BytesIO()
    ReadsHierarchyMidway(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(scenario)
    assert seen, "the pickler met no table: the test did not read the hierarchy midway"
    again = pickle.loads(buffer.getvalue())
    assert again.digest == scenario.digest
    pd.testing.assert_frame_equal(again.households, scenario.households)
    assert list(again.hierarchy.subtree("D01S01")) == list(scenario.hierarchy.subtree("D01S01"))


def test_list_cells_are_tidied_and_checked_element_by_element():
    """';'-lists lose spaces (ASCII and ideographic) and empty parts; the same list written
    tidily or untidily is one value and one digest; an unknown element in an untidy cell is
    still reported at its row."""
    raw = read_raw(DATA / "clean")
    tidy, problems = validate_tables(raw.tables)
    assert problems == []
    untidy = {name: frame.copy() for name, frame in raw.tables.items()}
    skills = untidy["volunteers"]["skills"]
    untidy["volunteers"]["skills"] = (" " + skills.str.replace(";", " ;\u3000") + ";;")
    typed, problems = validate_tables(untidy)
    assert problems == []
    assert typed["volunteers"]["skills"].tolist() == tidy["volunteers"]["skills"].tolist()
    assert tables_digest(typed) == tables_digest(tidy)
    untidy["volunteers"].loc[1, "skills"] = "tutoring ; tutor;"
    _, problems = validate_tables(untidy)
    assert [(p.table, p.code, p.row, p.column, p.value) for p in problems] == [
        ("volunteers", "not_allowed", 3, "skills", "tutor")]


# -- input in the users' language (issue 18) --------------------------------------------------


def _demo_text() -> dict[str, pd.DataFrame]:
    from wulian.data import demo_folder

    raw = read_raw(demo_folder())
    assert not raw.problems
    return dict(raw.tables)


def test_the_demo_with_every_header_in_chinese_is_valid(tmp_path, capsys):
    """`wulian validate` accepts the demo with each header written as docs/formats.md names it
    in Chinese, and with bilingual headers (中文 code)."""
    from wulian.contract.schema import TABLES

    tables = _demo_text()
    zh = {name: frame.rename(columns={c.name: c.zh for c in TABLES[name].columns})
          for name, frame in tables.items()}
    assert all(not set(f.columns) & set(TABLES[n].column_names) for n, f in zh.items()
               if len(f.columns))
    write_tables(zh, tmp_path / "zh", "csv")
    assert main(["validate", str(tmp_path / "zh")]) == 0
    typed, problems = validate_tables(zh)
    assert problems == []
    plain, _ = validate_tables(tables)
    pd.testing.assert_frame_equal(typed["households"], plain["households"])
    both = {name: frame.rename(columns={c.name: f"{c.zh} {c.name}" for c in TABLES[name].columns})
            for name, frame in tables.items()}
    assert validate_tables(both)[1] == []


def test_a_missing_column_is_one_problem_not_a_cascade():
    """Deleting any one required column of the clean scenario gives exactly one problem (the
    missing column), never the references that fail for want of it; so for the demo's keys,
    which thousands of rows refer to."""
    from wulian.contract.schema import TABLES

    clean = read_raw(DATA / "clean").tables
    checked = 0
    for name, table in TABLES.items():
        for col in table.columns:
            if name not in clean or not col.required or col.name not in clean[name].columns:
                continue
            tables = dict(clean)
            tables[name] = tables[name].drop(columns=[col.name])
            problems = validate_tables(tables)[1]
            assert [(p.table, p.code, p.column) for p in problems] == [
                (name, "missing_column", col.name)], (name, col.name)
            checked += 1
    assert checked >= 40
    demo = _demo_text()
    for name, key in (("households", "household_id"), ("services", "service_id"),
                      ("centres", "centre_id")):
        tables = dict(demo)
        tables[name] = tables[name].drop(columns=[key])
        problems = validate_tables(tables)[1]
        assert [(p.table, p.code, p.column) for p in problems] == [
            (name, "missing_column", key)]


def test_an_unreadable_file_is_said_in_both_languages(tmp_path):
    """A PNG named households.csv and an empty needs.csv: each one problem whose Chinese
    message is Chinese (no codec's or parser's English inside it)."""
    folder = tmp_path / "s"
    shutil.copytree(DATA / "clean", folder)
    (folder / "households.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (folder / "needs.csv").write_bytes(b"")
    raw = read_raw(folder)
    by_table = {p.table: p for p in raw.problems if p.code == "unreadable_file"}
    assert set(by_table) == {"households", "needs"}
    assert "UTF-8" in by_table["households"].message_zh and "codec" not in \
        by_table["households"].message_zh
    assert by_table["needs"].message_zh == "无法读取文件:文件是空的,没有表头行"
    assert by_table["needs"].message_en == "the file cannot be read: the file is empty: no " \
        "header row"
    assert "No columns to parse" not in by_table["needs"].message_zh
