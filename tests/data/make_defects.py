"""Rebuild the defect scenarios under tests/data/ from tests/data/clean/.

Each folder is a whole scenario, named after its one defect: the changed table is a real file,
the others are links to the clean one, so `wulian validate tests/data/<defect>` works on any of
them. Run from the repository root: `python tests/data/make_defects.py`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
CLEAN = HERE / "clean"
TABLES = [p.stem for p in sorted(CLEAN.glob("*.csv"))]


def read(table: str) -> pd.DataFrame:
    return pd.read_csv(CLEAN / f"{table}.csv", dtype=str, keep_default_na=False)


def setcell(table: str, row: int, column: str, value: str) -> Callable[[], pd.DataFrame]:
    def edit() -> pd.DataFrame:
        frame = read(table)
        frame.loc[row, column] = value
        return frame
    return edit


def rename(table: str, old: str, new: str) -> Callable[[], pd.DataFrame]:
    return lambda: read(table).rename(columns={old: new})


def duplicate_row(table: str, row: int) -> Callable[[], pd.DataFrame]:
    def edit() -> pd.DataFrame:
        frame = read(table)
        return pd.concat([frame, frame.iloc[[row]]], ignore_index=True)
    return edit


def cells(table: str, changes: list[tuple[int, str, str]]) -> Callable[[], pd.DataFrame]:
    def edit() -> pd.DataFrame:
        frame = read(table)
        for row, column, value in changes:
            frame.loc[row, column] = value
        return frame
    return edit


# defect folder → (table, edit) ; edit None removes the table. Rows are 0-based data rows.
DEFECTS: dict[str, tuple[str, Callable[[], pd.DataFrame] | None]] = {
    "missing_table": ("needs", None),
    "misspelt_column": ("offers", rename("offers", "capacity", "capacty")),
    "unknown_column": ("households", rename("households", "tier", "colour")),
    "missing_value": ("providers", setcell("providers", 1, "name", "")),
    "not_a_number": ("needs", setcell("needs", 2, "quantity", "two")),
    "negative_capacity": ("offers", setcell("offers", 1, "capacity", "-3")),
    "zero_quantity": ("needs", setcell("needs", 3, "quantity", "0")),
    "negative_budget": ("funds", setcell("funds", 0, "budget", "-900")),
    "fractional_visits": ("needs", setcell("needs", 0, "quantity", "1.5")),
    "yuan_beyond_cents": ("needs", setcell("needs", 4, "quantity", "350.505")),
    "not_a_boolean": ("volunteers", setcell("volunteers", 0, "background_checked", "maybe")),
    "not_a_week": ("needs", setcell("needs", 1, "week", "2026-49")),
    "urgency_out_of_range": ("needs", setcell("needs", 1, "urgency", "5")),
    "duplicate_ids": ("households", duplicate_row("households", 1)),
    "need_without_household": ("needs", setcell("needs", 2, "household_id", "H009")),
    "household_without_station": ("households", setcell("households", 0, "station_id",
                                                        "D01S01T09")),
    "centre_without_parent": ("centres", setcell("centres", 2, "parent_id", "D02")),
    "offer_dangling_references": ("offers", cells("offers", [
        (0, "provider_id", "P09"), (0, "service_id", "medical_aid"), (1, "fund_id", "F09"),
        (2, "coverage_centre_id", "D01S02")])),
    "volunteer_without_station": ("volunteers", setcell("volunteers", 1, "station_id", "X1")),
    "earmark_unknown_service": ("funds", setcell("funds", 1, "earmarked_services",
                                                 "food_parcel;tutoring")),
    "hierarchy_cycle": ("centres", cells("centres", [(2, "parent_id", "D01S01T01")])),
    "level_out_of_order": ("centres", setcell("centres", 4, "parent_id", "D01")),
    "two_city_centres": ("centres", setcell("centres", 1, "level", "city")),
    "household_at_street": ("households", setcell("households", 2, "station_id", "D01S01")),
    "unknown_category": ("households", setcell("households", 1, "categories", "dibao;dibaoo")),
    "unknown_colour": ("households", setcell("households", 3, "tier", "redd")),
    "unknown_slot": ("volunteers", setcell("volunteers", 0, "availability",
                                           "mon_am;monday_pm")),
    "unknown_skill": ("volunteers", setcell("volunteers", 1, "skills", "tutor")),
    "unknown_linkage": ("providers", setcell("providers", 2, "linkage", "volunteers")),
    "outside_china": ("volunteers", cells("volunteers", [(0, "lat", "104.059"),
                                                         (0, "lon", "30.634")])),
    "pin_with_two_targets": ("pins", setcell("pins", 0, "volunteer_id", "V01")),
    "in_person_without_visit_hours": ("services", setcell("services", 0, "visit_hours", "")),
}


def build() -> None:
    for defect, (table, edit) in DEFECTS.items():
        folder = HERE / defect
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for name in TABLES:
            if name == table:
                if edit is not None:
                    edit().to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
            else:
                (folder / f"{name}.csv").symlink_to(Path("..") / "clean" / f"{name}.csv")
    # Encodings Excel in China saves: the clean scenario as GB18030 and as UTF-8 with BOM.
    for folder_name, encoding in (("gb18030_encoded", "gb18030"), ("utf8_bom", "utf-8-sig")):
        folder = HERE / folder_name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for name in TABLES:
            text = (CLEAN / f"{name}.csv").read_text(encoding="utf-8")
            (folder / f"{name}.csv").write_bytes(text.encode(encoding))


if __name__ == "__main__":
    build()
