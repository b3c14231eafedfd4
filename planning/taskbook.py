"""Task workbooks (分类推送): a week's tasks sent out as Excel, and the answers read back.

:func:`publish_week` writes one workbook per provider (its service tasks) and one per street
for its volunteers (their visits, with the monitoring visits' result columns). Each task is a
row; the columns to fill in — status and reason as in-cell lists, units delivered, date, and
for monitoring visits what was observed — come after the task's facts. :func:`read_answers`
turns filled workbooks back into :class:`~wulian.planning.cycle.Answer` rows for
:func:`~wulian.planning.cycle.record_answers`, which checks and applies them.

Text is written as text cells (never formulas), so an id such as ``=1+1`` stays what it is.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from wulian.contract import vocab
from wulian.contract.problems import Problem, ValidationError
from wulian.contract.schema import Column, Table
from wulian.planning.cycle import TASK_ID, Answer, CycleError, tasks, weeks
from wulian.planning.io import unreadable
from wulian.planning.register import Register
from wulian.planning.validate import with_codes
from wulian.planning.workbook import TEXT_STAYS_TEXT, print_setup

TASK_SHEET = "任务 tasks"
ABOUT_SHEET = "说明 about"


@dataclass(frozen=True)
class Col:
    code: str
    zh: str
    en: str
    width: int = 12

    @property
    def header(self) -> str:
        return f"{self.zh} {self.en}"


FACTS = (
    Col("task_id", "任务编号", "task", 22), Col("week", "周次", "week", 10),
    Col("kind", "类型", "kind", 14), Col("household_id", "家庭编号", "household", 12),
    Col("station_id", "站点", "station", 13), Col("tier", "颜色", "colour", 8),
    Col("service", "服务", "service", 18), Col("units", "计划数量", "units planned", 10),
    Col("unit", "单位", "unit", 8), Col("cost", "金额(元)", "yuan", 10),
    Col("fund_id", "基金", "fund", 8), Col("volunteer_id", "志愿者", "volunteer", 11),
    Col("slot", "时段", "slot", 12),
)
# A volunteer's visit: how long it takes (a provider's tasks are counted in units).
VISIT_HOURS = Col("hours", "时长(小时)", "hours", 9)
ANSWERS = (
    Col("status", "状态", "status", 10), Col("units_delivered", "完成数量", "units delivered", 10),
    Col("answered_on", "日期", "date", 12), Col("reason", "原因", "reason", 16),
)
VISIT = (
    *(Col(c, f"{vocab.DIMENSIONS[c[2:]][0]}缺失", f"{c} observed", 9)
      for c in vocab.DEPRIVATION_COLUMNS),
    Col("new_needs", "新需求", "new needs (service:qty;…)", 24), Col("note", "备注", "note", 24),
)
_BY_HEADER = {c.header: c.code for c in (*FACTS, VISIT_HOURS, *ANSWERS, *VISIT)} | {
    c.code: c.code for c in (*FACTS, VISIT_HOURS, *ANSWERS, *VISIT)} | {
    c.en: c.code for c in (*FACTS, VISIT_HOURS, *ANSWERS, *VISIT)}  # (English alone, too)
# The workbook's columns as a table of the contract, so that its headers are read as a
# scenario's are (validate.with_codes): the code, the Chinese name alone, or both.
_TASK_TABLE = Table("tasks", "任务", "tasks", key="task_id", columns=tuple(
    Column(c.code, "str", c.zh, c.en) for c in (*FACTS, VISIT_HOURS, *ANSWERS, *VISIT)))
# What an answer row says once filled in: a row with any of these and no status is a mistake.
_ANSWERED = ("units_delivered", "answered_on", "reason", *vocab.DEPRIVATION_COLUMNS,
             "new_needs", "note")
# The answers a provider may give (not planned, not withdrawn: a recalled task's status).
_STATUS_LIST = ",".join(vocab.TASK_STATUSES[code][0] for code in vocab.TASK_ANSWERS)
_STATUSES = {f"statuses_{lang}": "/".join(vocab.TASK_STATUSES[code][i]
                                          for code in vocab.TASK_ANSWERS)
             for i, lang in enumerate(("zh", "en"))}
_REASON_LIST = ",".join(zh for code, (zh, _en) in vocab.DECLINE_REASONS.items()
                        if code != "no_answer")


def publish_week(register: Register, week: str, out: str | Path,
                 centre: str | None = None) -> list[Path]:
    """One workbook per provider and one per street's volunteers for ``week``'s tasks.

    Raises
    ------
    CycleError
        When the week was not opened (for ``centre``'s scope, when given): nothing to push.
    """
    opened = weeks(register)
    scopes = sorted(set(opened.loc[opened["week"] == week, "centre"]))
    if not scopes:
        where = f"({centre})" if centre else ""
        raise CycleError(f"{week}{where} 尚未开启,没有可推送的任务(先运行 wulian week open "
                         f"{week}) / {week}{' ' + where if where else ''} was not opened: no "
                         f"tasks to publish (run wulian week open {week} first)")
    if centre and centre not in scopes:
        listed = ", ".join(scopes)
        raise CycleError(f"{week} 开启的范围是 {listed},不是 {centre};请按开启的范围推送 / "
                         f"{week} was opened for {listed} ('*': the whole network), not for "
                         f"{centre}: publish it for the scope it was opened for")
    frame = tasks(register, week)
    if centre:
        frame = frame[frame["centre"] == centre]
    # A task recalled with its withdrawn need is no longer the provider's to answer.
    frame = frame[frame["status"] != "withdrawn"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    services = register.table("services").set_index("service_id")
    providers = register.table("providers").set_index("provider_id")
    written = []
    units = {code: zh for code, (zh, _en) in vocab.UNITS.items()}
    frame = frame.assign(service=frame["service_id"].map(services["name_zh"]).fillna(""),
                         unit=frame["service_id"].map(services["unit"]).map(units).fillna(""))
    offers = frame[frame["volunteer_id"] == ""]
    used: set[str] = set()
    for pid, part in offers.groupby("provider_id", sort=True):
        name = providers["name"].get(pid, pid)
        written.append(_workbook(out / file_name(f"{week}_{pid}", used), part, week,
                                 {"provider": pid, "name": name}, visits=False))
    visits = frame[frame["volunteer_id"] != ""]
    for street, part in visits.groupby("street_id", sort=True):
        written.append(_workbook(out / file_name(f"{week}_volunteers_{street}", used), part,
                                 week,
                                 {"street": street, "name": f"{street} 志愿者 volunteers"},
                                 visits=True))
    return written


# What no file name may hold on Windows (or, "/", anywhere). (Windows' reserved names, CON and
# the like, cannot arise: every name starts with the week.)
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')


def file_name(stem: str, used: set[str]) -> str:
    """``stem``.xlsx as a file name any system takes, unique among ``used`` (which it joins).

    An id is the user's text: characters a file name cannot hold become ``_``, and a stem so
    changed gets a short digest of the id, so that ``a/b`` and ``a_b`` stay two files. Names
    are compared without case, as Windows and macOS compare them. The workbook's ``说明 about``
    sheet keeps the id itself."""
    safe = _UNSAFE.sub("_", stem).rstrip(" .")[:80]
    if safe != stem:
        safe = f"{safe}~{hashlib.sha256(stem.encode()).hexdigest()[:8]}"
    name, n = f"{safe}.xlsx", 1
    while name.lower() in used:
        n += 1
        name = f"{safe}~{n}.xlsx"
    used.add(name.lower())
    return name


def _workbook(path: Path, part: pd.DataFrame, week: str, who: dict, visits: bool) -> Path:
    """One task workbook, written by XlsxWriter as every workbook wulian writes
    (``planning/workbook.py``): text through ``write_string`` (an id such as ``=1+1`` stays
    text), numbers as numbers; a city's week is a thousand of these."""
    import xlsxwriter

    columns = (*FACTS, *((VISIT_HOURS,) if visits else ()), *ANSWERS, *(VISIT if visits else ()))
    # Built in memory: XlsxWriter otherwise writes each part of the file to a temporary file
    # and removes it (a third of a week's publishing on the demo).
    wb = xlsxwriter.Workbook(str(path), {**TEXT_STAYS_TEXT, "in_memory": True})
    ws = wb.add_worksheet(TASK_SHEET)
    bold = wb.add_format({"bold": True})
    fill = wb.add_format({"bg_color": "#FFF2CC"})  # the cells to fill in
    to_fill = {j for j, c in enumerate(columns) if c in ANSWERS or c in VISIT}
    for j, col in enumerate(columns):
        ws.write_string(0, j, col.header, bold)
        ws.set_column(j, j, col.width)
    kinds = {k: zh for k, (zh, _en) in vocab.TASK_KINDS.items()}
    tiers = {k: zh for k, (zh, _en) in vocab.TIERS.items()}
    slots = {k: zh for k, (zh, _en) in vocab.SLOTS.items()}
    for i, row in enumerate(part.itertuples(index=False), start=1):
        values = {"task_id": row.task_id, "week": row.week, "kind": kinds.get(row.kind, row.kind),
                  "household_id": row.household_id, "station_id": row.station_id,
                  "tier": tiers.get(row.tier, row.tier), "service": row.service,
                  "units": float(row.units), "unit": row.unit, "cost": float(row.cost),
                  "fund_id": row.fund_id, "volunteer_id": row.volunteer_id,
                  "slot": slots.get(row.slot, row.slot), "hours": float(row.hours)}
        if row.status != "planned":  # a re-publish shows the answers already recorded
            values.update(status=vocab.TASK_STATUSES[row.status][0],
                          units_delivered=float(row.units_delivered),
                          answered_on=row.answered_on,
                          reason=vocab.DECLINE_REASONS.get(row.reason, ("",))[0])
        for j, col in enumerate(columns):
            value = values.get(col.code)
            style = fill if j in to_fill else None
            if value is None or value == "":  # a blank cell, as Excel's own blanks
                ws.write_blank(i, j, None, style)
            elif isinstance(value, str):
                ws.write_string(i, j, value, style)
            else:
                ws.write_number(i, j, value, style)
    last = max(len(part), 1)  # (the last row, counted from 0 below the header)
    where = {c.code: j for j, c in enumerate(columns)}
    lists = [(where["status"], _STATUS_LIST), (where["reason"], _REASON_LIST)]
    if visits:
        lists += [(where[c], "0,1") for c in vocab.DEPRIVATION_COLUMNS]
    for j, choices in lists:
        # The lists suggest; they do not refuse what is typed (the answers are read in Chinese,
        # English or as codes: cycle.record_answers checks them).
        ws.data_validation(1, j, last, j, {"validate": "list", "source": choices.split(","),
                                           "ignore_blank": True, "show_error": False})
    ws.freeze_panes(1, 0)  # as in every workbook wulian writes (planning/workbook.py)
    ws.autofilter(0, 0, last, len(columns) - 1)
    print_setup(ws, len(columns))

    about = wb.add_worksheet(ABOUT_SHEET)
    lines = [("周次 week", week), ("对象 for", who.get("provider") or who.get("street")),
             ("名称 name", who["name"]),
             ("类型 kind", "服务方 provider" if "provider" in who else "街镇 street"),
             ("生成时间 made", _made(datetime.now(UTC))),
             ("说明", "请在黄色列填写:状态(已接受/已拒绝/已完成/未完成)、完成数量、日期、原因;"
                      "巡查走访另填观察到的缺失(0/1)、新需求、备注。勿修改任务编号。"),
             ("how to", "Fill in the yellow columns: status, units delivered, date, reason; for "
                        "monitoring visits also what was observed (0/1), new needs and a note. "
                        "Keep the task ids as they are.")]
    for i, (label, value) in enumerate(lines):
        about.write_string(i, 0, label)
        about.write_string(i, 1, str(value))
    about.set_column(0, 0, 16)
    about.set_column(1, 1, 90)
    wb.close()
    return path


def _made(at: datetime) -> str:
    """When a workbook was made, in Beijing time (the time its readers live by) and in UTC."""
    beijing = at.astimezone(timezone(timedelta(hours=8)))
    return (f"{beijing:%Y-%m-%d %H:%M} 北京时间 Beijing time ({at.astimezone(UTC):%Y-%m-%d %H:%M}"
            " UTC)")


def read_answers(paths: list[str | Path]) -> list[Answer]:
    """The answered rows of filled task workbooks (rows left blank are skipped).

    Headers are read as a scenario's are: as published (``状态 status``), the code
    (``status``), the Chinese name alone (``状态``) or both.

    Raises
    ------
    ValidationError
        When a file cannot be read as a task workbook, or a row has answer cells filled in and
        no status (a delivery the close would settle as unanswered): every such problem.
    """
    from openpyxl import load_workbook

    answers: list[Answer] = []
    problems: list[Problem] = []
    for path in paths:
        name = Path(path).name
        try:
            if Path(path).is_dir():
                raise IsADirectoryError(path)
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - any reader failure is the user's file
            problems.append(Problem(name, "unreadable_answers", value=name,
                                    detail=unreadable(exc)))
            continue
        meta = {}
        if ABOUT_SHEET in wb.sheetnames:
            for label, value, *_ in wb[ABOUT_SHEET].iter_rows(max_col=2, values_only=True):
                meta[str(label or "").split(" ")[-1]] = "" if value is None else str(value)
        ws = wb[TASK_SHEET] if TASK_SHEET in wb.sheetnames else wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        codes = _codes([str(h or "").strip() for h in next(rows, ())])
        where = f"{name}:{ws.title}"
        missing = [c for c in (FACTS[0], ANSWERS[0]) if c.code not in codes]  # id, status
        if missing:
            problems += [Problem(where, "missing_column", column=c.header) for c in missing]
            rows.close()  # (the sheet's file, left open by a reader stopped at its header)
            wb.close()
            continue
        kind = (meta.get("kind", "").split() or [""])[-1]  # "服务方 provider" or "provider"
        provider = meta.get("for", "") if kind == "provider" else ""
        street = meta.get("for", "") if kind == "street" else ""
        unstated = []
        for r, values in enumerate(rows, start=2):
            cell = {c: values[j] for j, c in enumerate(codes) if c and j < len(values)}
            if _blank(cell.get("status")):
                # (A row naming no task — a total, a remark — is not an answer: skipped.)
                if TASK_ID.fullmatch(_str(cell.get("task_id"))) and any(
                        not _blank(cell.get(c)) for c in _ANSWERED):
                    unstated.append(Problem(where, "answer_without_status", row=r,
                                            column=_header("status"),
                                            detail={"task": _str(cell.get("task_id")),
                                                    **_STATUSES}))
                continue
            answers.append(Answer(
                task_id=_str(cell.get("task_id")), status=_str(cell.get("status")),
                units_delivered=_str(cell.get("units_delivered")),
                answered_on=_date(cell.get("answered_on")), reason=_str(cell.get("reason")),
                indicators={c: _str(cell[c]) for c in vocab.DEPRIVATION_COLUMNS
                            if not _blank(cell.get(c))},
                new_needs=_str(cell.get("new_needs")), note=_str(cell.get("note")),
                source=where, row=r, week=meta.get("week", ""), provider=provider,
                street=street))
        problems += unstated
        wb.close()
    if problems:
        raise ValidationError(problems)
    return answers


def _codes(header: list[str]) -> list[str]:
    """Each header's column code ("" for a column the workbook does not have)."""
    published = [_BY_HEADER.get(h, h) for h in header]
    named = with_codes(_TASK_TABLE, pd.DataFrame(columns=published)).columns
    return [c if c in _TASK_TABLE.column_names else "" for c in named]


def _header(code: str) -> str:
    return next(c.header for c in (*FACTS, *ANSWERS, *VISIT) if c.code == code)


def _blank(value) -> bool:
    return value is None or str(value).strip() == ""


def _str(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value).strip()


def _date(value) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return _str(value)
