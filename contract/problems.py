"""The problem report: every problem in a scenario, with where it is and how to fix it.

A problem is a code plus the facts it is about; its Chinese and English message and hint are
rendered from one catalogue, so tests assert on codes and users read sentences.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

# code: (Chinese message, English message, Chinese hint, English hint); fields in braces come
# from Problem.detail.
CATALOGUE: dict[str, tuple[str, str, str, str]] = {
    "missing_table": (
        "缺少必需的表 {table}", "required table {table} is missing",
        "请提供 {table}.csv(或工作簿中的 {table} 工作表){close_zh}",
        "add {table}.csv (or a sheet named {table} in the workbook){close_en}",
    ),
    "unreadable_file": (
        "无法读取文件:{reason_zh}", "the file cannot be read: {reason_en}",
        "请另存为 UTF-8 或 GB18030 编码的 CSV", "save it as CSV in UTF-8 or GB18030",
    ),
    # An upload's files (planning/jobs.py): each table once, each file naming a table.
    "duplicate_file": (
        "表 {table} 上传了 {count} 次({files})", "table {table} was uploaded {count} times "
        "({files})",
        "每张表只上传一个文件", "send one file per table",
    ),
    "unknown_table_file": (
        "文件 {file} 不对应任何表", "the file {file} names no table",
        "文件名须为表名:{known}{close_zh}", "name the file after its table: {known}{close_en}",
    ),
    # The limits on input (planning/limits.py); the hint names the setting that raises each.
    "too_many_columns": (
        "表有 {columns} 列,超过上限 {limit}", "the table has {columns} columns, above the limit "
        "of {limit}",
        "请删除多余的列(上限由 WULIAN_MAX_COLUMNS 设置)",
        "remove the extra columns (the limit is set by WULIAN_MAX_COLUMNS)",
    ),
    "too_many_rows": (
        "表有 {rows} 行,超过上限 {limit}", "the table has {rows} rows, above the limit of {limit}",
        "请拆分文件(上限由 WULIAN_MAX_ROWS 设置)",
        "split the file (the limit is set by WULIAN_MAX_ROWS)",
    ),
    "nul_character": (
        "单元格含有空字符(NUL,该列共 {cells} 个)",
        "the cell holds a NUL character ({cells} such cells in the column)",
        "请删除该字符:它多来自损坏的文件或粘贴,数据库无法保存",
        "remove it: it mostly comes from a damaged file or a paste, and no database keeps it",
    ),
    "cell_too_long": (
        "单元格有 {chars} 个字符,超过上限 {limit}(该列共 {cells} 个)",
        "the cell has {chars} characters, above the limit of {limit} ({cells} such cells in "
        "the column)",
        "请缩短这些值;该表未校验(上限由 WULIAN_MAX_CELL_CHARS 设置)",
        "shorten them; the table was not validated further (the limit is set by "
        "WULIAN_MAX_CELL_CHARS)",
    ),
    "workbook_too_large": (
        "工作簿解压后为 {size},超过上限 {limit}",
        "the workbook unzips to {size}, above the limit of {limit}",
        "请拆分工作簿或改用 CSV(上限由 WULIAN_MAX_XLSX_BYTES 设置)",
        "split the workbook or send CSV files (the limit is set by WULIAN_MAX_XLSX_BYTES)",
    ),
    "workbook_inflates": (
        "工作簿的部件解压后膨胀 {ratio} 倍,超过上限 {limit} 倍",
        "a part of the workbook inflates {ratio} times when unzipped, above the limit of {limit}",
        "请用 Excel 重新保存,删除空白行列(上限由 WULIAN_MAX_XLSX_RATIO 设置)",
        "save it again from Excel without blank rows and columns (the limit is set by "
        "WULIAN_MAX_XLSX_RATIO)",
    ),
    "too_many_files": (
        "上传了 {files} 个文件,超过上限 {limit}", "{files} files uploaded, above the limit of "
        "{limit}",
        "每张表一个文件(上限由 WULIAN_MAX_FILES 设置)",
        "send one file per table (the limit is set by WULIAN_MAX_FILES)",
    ),
    "validation_timeout": (
        "校验超过 {seconds} 秒,已停止", "validation took longer than {seconds} s and was stopped",
        "请拆分文件或删除多余内容(时限由 WULIAN_VALIDATION_SECONDS 设置)",
        "split the files or remove what is not needed (the time limit is set by "
        "WULIAN_VALIDATION_SECONDS)",
    ),
    "not_finite": (
        "不是有限的数", "not a finite number",
        "请填写普通数字,不要填写 inf、nan 或超出范围的数(如 1e400)",
        "write an ordinary number, not inf, nan or one out of range (such as 1e400)",
    ),
    "missing_column": (
        "缺少必需的列 {column}", "required column {column} is missing",
        "请添加该列{close_zh}", "add the column{close_en}",
    ),
    "unknown_column": (
        "未知的列 {column}", "unknown column {column}",
        "请删除或更正该列{close_zh};自定义列请以 x_ 开头",
        "remove or rename it{close_en}; prefix your own columns with x_",
    ),
    "missing_value": (
        "必填值为空", "a required value is empty",
        "请填写 {column}", "fill in {column}",
    ),
    "not_a_number": (
        "不是数字", "not a number",
        "请填写数字,例如 {example}", "write a number, e.g. {example}",
    ),
    "not_whole": (
        "应为整数", "must be a whole number",
        "{unit_zh}按整数计", "{unit_en} are counted in whole numbers",
    ),
    "too_many_decimals": (
        "金额最多精确到分", "yuan are counted to the cent",
        "请保留两位小数", "round to two decimals",
    ),
    "not_a_boolean": (
        "不是是/否值", "not a yes/no value",
        "请填写 true/false、1/0 或 是/否", "write true/false, 1/0 or yes/no",
    ),
    "not_a_week": (
        "不是 ISO 周次", "not an ISO week",
        "格式如 2026-W49", "write it like 2026-W49",
    ),
    "not_positive": (
        "应大于 0", "must be greater than 0",
        "请填写正数,或删除该行", "use a positive number or remove the row",
    ),
    "below_minimum": (
        "不能小于 {minimum}", "must not be below {minimum}",
        "请检查数值", "check the value",
    ),
    "not_allowed": (
        "未知的取值", "unknown value",
        "可选值:{allowed}{close_zh}", "allowed values: {allowed}{close_en}",
    ),
    "duplicate_id": (
        "编号重复", "duplicate id",
        "编号在表中必须唯一(首次出现在第 {first_row} 行)",
        "ids must be unique in the table (first seen in row {first_row})",
    ),
    "missing_reference": (
        "引用的 {target} 不存在", "refers to a missing {target}",
        "请先在 {target_table} 表中添加,或更正编号{close_zh}",
        "add it to {target_table} first, or correct the id{close_en}",
    ),
    "wrong_level": (
        "应指向{expected_zh},实际为{actual_zh}",
        "must refer to a {expected} centre, not a {actual}",
        "请检查中心层级", "check the centre hierarchy",
    ),
    "root_has_parent": (
        "市级中心不应有上级", "the city centre must have no parent",
        "请清空 parent_id", "leave parent_id empty",
    ),
    "hierarchy_cycle": (
        "中心层级存在循环:{cycle}", "the centre hierarchy has a cycle: {cycle}",
        "每个中心的上级必须更高一级", "each centre's parent must sit one level up",
    ),
    "no_root": (
        "没有市级中心", "there is no city centre",
        "请添加一个 level=city、parent_id 为空的中心",
        "add one centre with level=city and an empty parent_id",
    ),
    "several_roots": (
        "有多个市级中心", "there is more than one city centre",
        "只能有一个 level=city 的中心", "keep exactly one centre with level=city",
    ),
    "outside_china": (
        "坐标不在中国境内", "coordinates outside China",
        "纬度应在 18–54、经度应在 73–135 之间;是否写反了经纬度?",
        "latitude must lie in 18–54 and longitude in 73–135; are lat and lon swapped?",
    ),
    "pin_target": (
        "锁定须且仅须指定 offer_id 或 volunteer_id 之一",
        "a pin names exactly one of offer_id and volunteer_id",
        "请只填写其中一列", "fill in one of the two columns",
    ),
    "missing_visit_hours": (
        "上门服务缺少每次时长", "an in-person service needs visit_hours",
        "请填写每次上门所需小时数", "give the hours one visit takes",
    ),
    # The register (planning/register.py): a row an import removes that a week still needs.
    "open_tasks_left": (
        "该志愿者在未结束的 {weeks} 有 {tasks} 个任务",
        "the volunteer has {tasks} open tasks in {weeks}",
        "请先结束该周(wulian week close),或保留此行直至该周结束",
        "close the week first (wulian week close), or keep the row until it closes",
    ),
    # Answers to tasks (the weekly cycle).
    # A colour policy's problem (demand.policy.PolicyProblem), in its own words.
    "policy_problem": (
        "{problem_zh}", "{problem_en}", "{fix_zh}", "{fix_en}",
    ),
    "unreadable_answers": (
        "无法读取文件:{reason_zh}", "the file cannot be read: {reason_en}",
        "请提交推送的 Excel 工作簿(.xlsx),填写后原样保存",
        "send the published Excel workbook (.xlsx), saved as it is once filled in",
    ),
    "answer_without_status": (
        "任务 {task} 已填写回复,但状态为空", "task {task} is answered but its status is empty",
        "请填写状态({statuses_zh}),否则该行不会被记录,结束本周时按未回复处理",
        "fill in the status ({statuses_en}); without it the row is not recorded, and the close "
        "settles the task as unanswered",
    ),
    "unknown_task": (
        "没有这个任务", "no such task",
        "请核对任务编号,勿修改推送表中的编号", "check the task id; keep the ids as published",
    ),
    "task_other_week": (
        "任务属于 {task_week},不是 {week}", "the task is of {task_week}, not {week}",
        "请使用该周推送的表", "use the workbook published for that week",
    ),
    "task_other_provider": (
        "任务属于其他服务方", "the task belongs to another provider",
        "只能回复推送给本方的任务", "answer only the tasks sent to you",
    ),
    "task_outside_centre": (
        "任务不在本中心辖区内", "the task is outside your centre's area",
        "只能回复本中心辖区内的任务", "answer only the tasks of your centre's subtree",
    ),
    "week_not_open": (
        "{week} 未开启或已结束", "{week} is not open",
        "已结束的周不能再回复", "a closed week takes no more answers",
    ),
    "status_not_allowed": (
        "状态不能从 {before} 改为 {after}", "the status cannot go from {before} to {after}",
        "已拒绝、已完成、未完成为最终状态", "declined, delivered and not delivered are final",
    ),
    "too_many_units": (
        "完成数量超过计划的 {planned}", "more units than the {planned} planned",
        "请填写实际完成数量,不超过计划", "give the units delivered, at most the plan",
    ),
    "date_outside_week": (
        "日期不在 {week} 内({first} 至 {last})", "the date is outside {week} ({first} to {last})",
        "请填写该周内的日期", "give a date within the week",
    ),
    "not_a_date": (
        "不是日期", "not a date",
        "格式如 2027-01-12", "write it like 2027-01-12",
    ),
    "duplicate_answer": (
        "同一任务有不同的回复(首次出现在第 {first_row} 行)",
        "the same task has another answer (first seen in row {first_row})",
        "每个任务只填一行", "answer each task once",
    ),
    "not_a_visit": (
        "该任务不是巡查走访", "the task is not a monitoring visit",
        "走访结果只能记录在巡查走访任务上", "visit results go on monitoring visits only",
    ),
    "task_withdrawn": (
        "任务的需求 {need_id} 已撤回,任务已收回", "the task's need {need_id} was withdrawn: "
        "the task is recalled",
        "无需再提供此项服务;如有疑问请联系协调员", "do not deliver it; ask the coordinator "
        "if in doubt",
    ),
    "units_not_delivered": (
        "状态为 {status_zh} {status} 时不能填写完成数量", "units delivered given on an answer "
        "{status}",
        "部分完成请填写状态 已完成 delivered 及实际完成数量;未完成或拒绝时留空或填 0",
        "a partial delivery is delivered with the units delivered; leave it empty or 0 "
        "when nothing was delivered",
    ),
    "visit_not_made": (
        "走访状态为 {status_zh} {status},不能记录观察结果({column})",
        "the visit's answer is {status}: what it observed ({column}) cannot be recorded",
        "走访已做请填写状态 已完成 delivered;未走访只能填写备注",
        "a visit made is delivered; a visit missed takes a note only",
    ),
    "bad_new_needs": (
        "新需求格式有误", "new needs are not readable",
        "格式如 心理疏导:2;助餐送餐:5 或 counselling:2;meal_help:5(服务名称或编号:数量)",
        "write them like counselling:2;meal_help:5 (service id or Chinese name:quantity)",
    ),
}


@dataclass(frozen=True)
class Problem:
    """One problem found in a scenario.

    ``row`` is the row number as a spreadsheet shows it (the header is row 1, the first data
    row is row 2); ``None`` when the problem concerns a whole table or column.
    """

    table: str
    code: str
    row: int | None = None
    column: str = ""
    value: str = ""
    detail: dict[str, str] = field(default_factory=dict)

    def _render(self, i: int) -> str:
        facts = {"table": self.table, "column": self.column, "close_zh": "", "close_en": ""}
        facts.update(self.detail)
        # A reason given once (a reader's own words) stands for both languages.
        facts.setdefault("reason_zh", facts.get("reason", ""))
        facts.setdefault("reason_en", facts.get("reason", ""))
        return CATALOGUE[self.code][i].format(**facts)

    @property
    def message_zh(self) -> str:
        return self._render(0)

    @property
    def message_en(self) -> str:
        return self._render(1)

    @property
    def hint_zh(self) -> str:
        return self._render(2)

    @property
    def hint_en(self) -> str:
        return self._render(3)


REPORT_COLUMNS = ("table", "row", "column", "value", "code", "message_zh", "message_en",
                  "hint_zh", "hint_en")


def report_frame(problems: Iterable[Problem]) -> pd.DataFrame:
    """The problems as a table, one row each, in the order they were found."""
    rows = [
        (p.table, p.row, p.column, p.value, p.code, p.message_zh, p.message_en, p.hint_zh,
         p.hint_en)
        for p in problems
    ]
    frame = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    frame["row"] = frame["row"].astype("Int64")
    return frame


class ValidationError(Exception):
    """A scenario with problems; it carries every problem found, never just the first."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in the scenario")


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a misspelt ``word`` most likely meant, or ``None``."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> dict[str, str]:
    """Detail fields for a "did you mean …?" hint in both languages (empty when none fits)."""
    guess = closest(word, candidates)
    if guess is None:
        return {}
    return {"close_zh": f";是否应为 `{guess}`?", "close_en": f"; did you mean `{guess}`?"}
