"""The batch HTTP service (FastAPI): scenarios, quarterly jobs, their tables, the budget lab.

A thin shell over ``planning/``: scenarios are validated by :mod:`planning.scenario` and kept
by :class:`planning.jobs.ScenarioLibrary`; jobs live in the run store and are run by
:class:`planning.jobs.JobWorker` in background threads; the budget lab is
:class:`planning.budget.BudgetLab`. Nothing here builds a model.

Every route sits under ``/v1`` and, except ``/v1/health``, needs a bearer token
(:mod:`api.auth`): no token or an unknown one → 401; a role or centre that may not → 403.
Errors are ``{"detail": {"code", "message"}}`` with the message in Chinese and English; a 422
lists every problem as rows (table, row, column, value, code, messages and hints in both
languages). ``docs/api.md`` describes the endpoints, the roles and the job life cycle.
"""


import io
import json
import logging
import re
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import sqlalchemy as sa
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    File,
    Form,
    Query,
    Request,
    Response,
    Security,
    UploadFile,
)
from fastapi import (
    Path as PathParam,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from wulian.api.auth import (
    ACTION_NAMES,
    FUND_RULES,
    FUND_TABLES,
    ROLE_NAMES,
    ROLES,
    Principal,
    TokenError,
    TokenStore,
)
from wulian.contract import vocab
from wulian.contract.hierarchy import Hierarchy
from wulian.contract.problems import Problem, ValidationError, report_frame
from wulian.demand.policy import ALERT_DEFAULTS, ALERT_SEVERITIES
from wulian.planning import alerts, cycle, notify, performance
from wulian.planning.io import excel_safe
from wulian.planning.jobs import JobWorker, ScenarioLibrary, ValidationCrashed
from wulian.planning.limits import excerpt, limits, shown_problems
from wulian.planning.register import (
    NEED_COLUMNS,
    NEED_STATES,
    ROWS,
    Actor,
    Register,
    RegisterError,
    weeks_waited,
)
from wulian.planning.store import JOB_STATES, Job, RunStore

log = logging.getLogger("wulian.service")

DEFAULT_DATA = "runs/scenarios"
QUARTER_PATTERN = r"^\d{4}Q[1-4]$"
DIGEST_PATTERN = r"^[0-9a-f]{8,64}$"
WEEK_PATTERN = r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$"
MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8",
         "parquet": "application/vnd.apache.parquet",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
# What a job's outputs hold about the whole network, whatever its centre: the funds' whole
# budgets and the share of them planned, and the budget split's network optimum. A coordinator
# sees their subtree's numbers only (its allotted and planned money, its fill rates).
NETWORK_COLUMNS = {"funds": ("weekly_budget", "quarter_budget", "share")}
NETWORK_INFO = ("split",)
# What a coordinator sees of a household: no coordinates, no deprivation indicators.
HOUSEHOLD_COLUMNS = ("household_id", "station_id", "size", "categories", "score", "poor", "tier",
                     "tier_source", "monitoring_weeks")


def _version() -> str:
    try:
        return version("wulian")
    except PackageNotFoundError:  # running from a checkout that was not installed
        return "0.0.0"


# -- schemas ----------------------------------------------------------------------------------

# Control characters (NUL and the other C0 codes but tab and line breaks) have no place in any
# text a request sends: PostgreSQL cannot store a NUL at all (a 500 from the driver), and the
# others are invisible in every table and log that shows them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NESTED = (str, dict, list, tuple)  # what may hold text


def _holds_control(value: Any) -> bool:
    """Whether any text in a request value — itself, or the keys and values it holds — has a
    control character (a dictionary's keys are searched as one string: a 300,000-key body is
    checked in one pass, not 300,000)."""
    if isinstance(value, str):
        return _CONTROL.search(value) is not None
    if isinstance(value, dict):
        if _CONTROL.search("".join(map(str, value))) is not None:
            return True
        value = value.values()
    elif not isinstance(value, list | tuple):
        return False
    for item in value:  # a plain loop: numbers, the most common values, are passed at once
        if isinstance(item, _NESTED) and _holds_control(item):
            return True
    return False


def refuse_control_characters(value: Any) -> Any:
    """The value as given, or a ``control_character`` error when any text in it holds one."""
    if _holds_control(value):
        raise PydanticCustomError("control_character",
                                  "the text holds a control character (such as NUL, \\u0000)")
    return value


# A text query, path or form parameter: refused like a request model's text.
NoControl = AfterValidator(refuse_control_characters)


class RequestModel(BaseModel):
    """Every request body: no unknown fields, finite numbers, no control characters in any
    text (one validator for every field of every model)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return refuse_control_characters(value)


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable reason, e.g. `no_token`, `not_found`")
    message: str = Field(description="中文 / English")


class ErrorOut(BaseModel):
    detail: ErrorDetail


class ProblemRow(BaseModel):
    table: str
    row: int | None = Field(description="row as a spreadsheet numbers it (header = 1)")
    column: str
    value: str
    code: str
    message_zh: str
    message_en: str
    hint_zh: str
    hint_en: str


class ProblemsOut(BaseModel):
    detail: str = Field(description="中文 / English summary")
    total: int = Field(description="how many problems were found")
    problems: list[ProblemRow] = Field(
        description="the problems in the order found: all of them, or the first "
                    "`WULIAN_MAX_PROBLEMS` when there are more (`total` tells)")


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    job_slots: int
    running_jobs: list[int]


Role = Literal["planner", "fund_manager", "coordinator", "admin", "provider"]


class MeOut(BaseModel):
    token_id: int
    role: Role
    centre: str = Field(description="a coordinator's centre ('' for other roles)")
    provider_id: str = Field(description="a provider's id ('' for other roles)")


class ScenarioOut(BaseModel):
    digest: str
    name: str
    format: Literal["csv", "xlsx", "parquet"]
    created_at: str
    counts: dict[str, int] = Field(description="rows per table")


class UploadOut(ScenarioOut):
    created: bool = Field(description="false when the same tables were already kept")


class Progress(BaseModel):
    done: int
    total: int
    label: str
    fraction: float = Field(ge=0, le=1)


class JobIn(RequestModel):
    scenario: str = Field(pattern=DIGEST_PATTERN,
                          description="the scenario's digest, or a unique prefix of 8+ hex digits")
    quarter: str = Field(pattern=QUARTER_PATTERN, examples=["2027Q1"])
    engine: Literal["local", "ray"] = "local"
    centre: str | None = Field(default=None, min_length=1, max_length=64,
                               description="plan only this centre's subtree")


class JobOut(BaseModel):
    job_id: int
    scenario: str
    quarter: str
    engine: str
    centre: str | None
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: Progress
    attempts: int
    error: str
    cancel_requested: bool
    owner_role: str
    run_id: int | None
    tables: list[str] = Field(description="output tables, once the job is done")
    created_at: str
    started_at: str | None
    updated_at: str
    finished_at: str | None


class TableOut(BaseModel):
    job_id: int
    name: str
    columns: list[str]
    total_rows: int
    offset: int
    rows: list[dict[str, Any]]


class ExplanationOut(BaseModel):
    job_id: int
    scenario: str
    quarter: str
    centre: str | None
    info: dict[str, Any] = Field(description="the plan's provenance and summary figures")
    rows: list[dict[str, Any]] = Field(description="the `explanation` table")


class HouseholdOut(BaseModel):
    household_id: str
    station_id: str
    size: int
    categories: str
    score: float
    poor: bool
    tier: str
    tier_source: str
    monitoring_weeks: int


class HouseholdsOut(BaseModel):
    scenario: str
    centre: str | None
    total_rows: int
    offset: int
    households: list[HouseholdOut]


class FundOut(BaseModel):
    fund_id: str
    name: str
    source: str
    budget: float
    centre_id: str
    earmarked_services: str
    max_per_household: float | None


class BudgetLabIn(RequestModel):
    budgets: dict[str, Annotated[float, Field(ge=0, le=1e13)]] = Field(
        default_factory=dict, description="fund_id → yuan; funds not named keep their budget")
    scale: float = Field(default=1.0, ge=0, le=1000,
                         description="multiply every fund's budget first")
    equity_floor: float | None = Field(default=None, ge=0, le=1,
                                       description="every street's red fill rate at least this")
    week: str | None = Field(default=None, pattern=WEEK_PATTERN)
    centre: str | None = Field(default=None, min_length=1, max_length=64)


class ColourRow(BaseModel):
    colour: str
    needs: int
    value: float
    max_value: float
    fill_rate: float | None


class FundResultRow(BaseModel):
    fund_id: str
    budget: float
    used: float
    left: float
    marginal_value: float | None
    marginal_level: str
    points_per_10k: float | None


class BudgetLabOut(BaseModel):
    scenario: str
    status: str
    message: str
    seconds: float
    money: float
    colours: list[ColourRow]
    funds: list[FundResultRow]


class TokenIn(RequestModel):
    role: Role
    centre: str | None = Field(default=None, max_length=64,
                               description="a coordinator's centre (required for that role)")
    provider: str | None = Field(default=None, max_length=64,
                                 description="a provider's id (required for that role)")
    label: str = Field(default="", max_length=200)


class TokenOut(BaseModel):
    token_id: int
    role: str
    centre: str
    provider_id: str
    label: str
    created_at: str
    revoked: bool


class TokenCreated(TokenOut):
    secret: str = Field(description="shown once; only its sha256 is kept")


# -- the register and the weekly cycle ----------------------------------------------------------

# The contract's vocabularies as the request and answer schemas' enumerations.
TIER = Literal[tuple(vocab.TIERS)]  # type: ignore[valid-type]
Bit = Literal[0, 1]
TASK_STATUS = Literal[tuple(vocab.TASK_STATUSES)]  # type: ignore[valid-type]
TASK_ANSWERS = Literal[vocab.TASK_ANSWERS]  # type: ignore[valid-type]
TASK_KIND = Literal[tuple(vocab.TASK_KINDS)]  # type: ignore[valid-type]
REASONS = Literal[tuple(vocab.DECLINE_REASONS)]  # type: ignore[valid-type]
DISCOVERED = Literal[tuple(vocab.DISCOVERY)]  # type: ignore[valid-type]
Indicator = Literal[tuple(vocab.DEPRIVATION_COLUMNS)]  # type: ignore[valid-type]
NEED_STATE = Literal[tuple(vocab.NEED_STATES)]  # type: ignore[valid-type]


class TableChangesOut(BaseModel):
    table: str
    added: int
    changed: int
    removed: int


class ImportOut(BaseModel):
    scenario: str = Field(description="the imported scenario's digest (kept like an upload)")
    dry_run: bool
    applied: bool = Field(description="false for a dry run: nothing was written")
    tables: list[TableChangesOut] = Field(description="per register table, rows added, changed "
                                                      "and removed (supply tables only)")
    assessments: int = Field(description="households (re)assessed")
    skipped: list[str] = Field(description="tables of the scenario the register does not keep")


class HouseholdIn(RequestModel):
    """One household's row: fields not given are kept from the register (all of a new
    household's required fields must be given)."""

    household_id: str = Field(min_length=1, max_length=64)
    station_id: str | None = Field(default=None, min_length=1, max_length=64)
    size: int | None = Field(default=None, ge=1, le=100)
    categories: str | None = Field(default=None, max_length=500,
                                   description="category codes separated by `;`")
    d_income: Bit | None = None
    d_education: Bit | None = None
    d_health: Bit | None = None
    d_housing: Bit | None = None
    d_assets: Bit | None = None
    d_capability: Bit | None = None
    d_social: Bit | None = None
    tier: TIER | Literal[""] | None = Field(
        default=None, description="an assessor's override of the policy's colour; '' clears it")
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    discovered_by: DISCOVERED = Field(default="grid_worker",
                                      description="how the household came to the centre")
    assessed_on: date | None = Field(default=None, description="default: today")


class AssessmentOut(BaseModel):
    version: int
    assessed_on: str
    assessor: str
    discovered_by: str
    indicators: dict[str, int]
    categories: str
    score: float
    tier_policy: str = Field(description="the colour the policy gives")
    tier_override: str = Field(description="an assessor's override ('' for none)")
    tier: str = Field(description="the colour in force")
    created_at: str


class HouseholdAssessedOut(BaseModel):
    household_id: str
    created: bool = Field(description="true for a household new to the register")
    assessment: AssessmentOut


class ColoursOut(BaseModel):
    household_id: str
    station_id: str
    assessments: list[AssessmentOut] = Field(description="oldest first")


class NeedIn(RequestModel):
    need_id: str | None = Field(default=None, min_length=1, max_length=64,
                                description="default: made from the week and the household")
    household_id: str = Field(min_length=1, max_length=64)
    service_id: str = Field(min_length=1, max_length=64)
    quantity: float = Field(gt=0, le=1e9, allow_inf_nan=False)
    urgency: Literal[1, 2, 3] = 1
    week: str | None = Field(default=None, pattern=WEEK_PATTERN,
                             description="the week it is raised for (default: this week)")


class NeedStateOut(BaseModel):
    need_id: str
    household_id: str
    service_id: str
    quantity: float
    remaining: float = Field(description="what is still owed")
    urgency: int
    week_raised: str
    state: NEED_STATE
    age: int = Field(description="weeks it has waited since the week it was raised for (to "
                               "the register's week; a closed need: when it closed)")
    close_reason: str
    updated_at: str


class NeedWithdrawnOut(NeedStateOut):
    recalled: list[str] = Field(description="its tasks not yet answered in the weeks open, "
                                            "now withdrawn (off the provider's list)")
    delivered: list[str] = Field(description="its tasks delivered in part this week: kept as "
                                             "delivered, their money spent")


class WeekIn(RequestModel):
    week: str = Field(pattern=WEEK_PATTERN, examples=["2026-W49"])
    centre: str | None = Field(default=None, min_length=1, max_length=64,
                               description="open the week for this centre's subtree only")


class WeekOpenedOut(BaseModel):
    week: str
    centre: str | None = Field(description="null: the whole network")
    run_id: int
    tasks: int
    tasks_by_kind: dict[str, int]
    needs_allocated: int
    needs_unmet: int
    cost: float = Field(description="yuan the week's tasks cost as planned")
    seconds: dict[str, float]


class EvaluationOut(BaseModel):
    week: str | None = Field(description="the week evaluated (null: no week was ever opened)")
    opened: int = Field(description="alerts opened (found for the first time, or again after "
                                    "they had resolved)")
    updated: int = Field(description="alerts still found, their numbers updated")
    resolved: int = Field(description="alerts whose condition cleared")
    findings: int = Field(description="conditions found at the week")


class WeekClosedOut(BaseModel):
    week: str
    centre: str | None
    delivered: int = Field(description="needs closed, delivered in full")
    carried: int = Field(description="needs of the week waiting into the next (carried, or "
                                     "left unmet and still open)")
    expired: int
    unanswered: int = Field(description="tasks still sent or accepted, settled as not delivered")
    history: int = Field(description="visits written into the history")
    spent: float
    alerts: EvaluationOut | None = Field(
        description="the alerts evaluated at the closed week (null when the evaluation failed: "
                    "the close stands, run `POST /v1/alerts/evaluate`)")


class WeekOut(BaseModel):
    week: str
    centre: str | None
    state: Literal["open", "closed"]
    run_id: int | None
    opened_at: str
    closed_at: str | None
    actor: str
    tasks: dict[str, int] = Field(description="tasks per status")


class TaskOut(BaseModel):
    task_id: str
    week: str
    centre: str
    kind: TASK_KIND
    need_id: str
    household_id: str
    service_id: str
    provider_id: str
    linkage: str
    offer_id: str
    volunteer_id: str
    fund_id: str
    street_id: str
    station_id: str
    tier: str
    slot: str
    units: float
    hours: float
    cost: float
    status: TASK_STATUS
    units_delivered: float
    answered_on: str
    reason: str
    updated_at: str


class TasksOut(BaseModel):
    total_rows: int
    offset: int
    tasks: list[TaskOut]


class AnswerIn(RequestModel):
    """One answer to a task; a monitoring visit's result adds what the visit observed."""

    status: TASK_ANSWERS
    units_delivered: float | None = Field(
        default=None, ge=0, le=1e12, allow_inf_nan=False,
        description="default: the units planned when delivered, 0 when not delivered")
    answered_on: str | None = Field(default=None, max_length=32,
                                    description="a date within the task's week, e.g. 2026-12-02")
    reason: REASONS | None = Field(default=None, description="why it was declined or not "
                                                              "delivered")
    indicators: dict[Indicator, Bit] | None = Field(
        default=None, description="a monitoring visit: the `d_*` indicators observed (1 = "
                                  "deprived); the household is re-assessed")
    new_needs: str | None = Field(default=None, max_length=1000,
                                  description="a monitoring visit: needs found, like "
                                              "`counselling:2;meal_help:5`")
    note: str | None = Field(default=None, max_length=2000)


class RecordedOut(BaseModel):
    changed: int
    unchanged: int
    visits: int = Field(description="monitoring visits' results recorded")
    needs_raised: int


class TaskAnsweredOut(TaskOut):
    recorded: RecordedOut


class LedgerRow(BaseModel):
    fund_id: str
    street_id: str
    week: str
    planned: float
    committed: float = Field(description="accepted or delivered, at the planned cost")
    spent: float = Field(description="delivered, in proportion to the units delivered")


class BalanceRow(BaseModel):
    fund_id: str
    weekly_budget: float
    period: str
    weeks: int
    accrued: float
    spent: float
    outstanding: float
    balance: float


class LedgerOut(BaseModel):
    first: str | None
    last: str | None
    by_week: list[LedgerRow] = Field(description="per fund × street × week")
    balances: list[BalanceRow] = Field(description="per fund at the last week")


class EventOut(BaseModel):
    event_id: int
    at: str
    actor: str
    via: str
    kind: str
    subject: str
    before: Any
    after: Any


class EventsOut(BaseModel):
    total_rows: int
    offset: int
    events: list[EventOut] = Field(description="oldest first")


# -- early warning, performance, webhooks ------------------------------------------------------

ALERT_RULE = Literal[tuple(ALERT_DEFAULTS)]  # type: ignore[valid-type]
ALERT_STATE = Literal[tuple(alerts.STATES)]  # type: ignore[valid-type]
SEVERITY = Literal[tuple(ALERT_SEVERITIES)]  # type: ignore[valid-type]
GROUPING = Literal[tuple(performance.GROUPS)]  # type: ignore[valid-type]


class AlertOut(BaseModel):
    alert_id: str = Field(description="`rule:subject_kind:subject_id`")
    rule: ALERT_RULE
    severity: SEVERITY
    title_zh: str
    title_en: str
    centre: str = Field(description="the centre it belongs to: a household's station, a "
                                    "provider's or fund's centre, a street")
    subject_kind: Literal["household", "fund", "provider", "service"]
    subject_id: str
    since: str = Field(description="the week it was (last) opened")
    last_week: str = Field(description="the last week it was found")
    numbers: dict[str, Any] = Field(description="the numbers behind it (per rule)")
    state: ALERT_STATE
    ack_by: str
    ack_at: str
    ack_note: str
    resolved_at: str
    updated_at: str


class AlertsOut(BaseModel):
    total_rows: int
    offset: int
    alerts: list[AlertOut] = Field(description="most severe first, then oldest")


class AcknowledgeIn(RequestModel):
    note: str = Field(default="", max_length=2000, description="what is being done about it")


class PerformanceTableOut(BaseModel):
    columns: list[str]
    total_rows: int
    rows: list[dict[str, Any]]


class WebhookIn(RequestModel):
    target_kind: Literal["centre", "provider"]
    target_id: str = Field(min_length=1, max_length=64,
                           description="a centre_id or provider_id of the register")
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://\S+$",
                     description="where events are POSTed")
    secret: str = Field(min_length=16, max_length=200,
                        description="the shared secret the body is signed with (HMAC-SHA256); "
                                    "never shown again")


class WebhookOut(BaseModel):
    webhook_id: int
    target_kind: Literal["centre", "provider"]
    target_id: str
    url: str
    active: bool
    created_at: str
    deliveries: int = Field(description="deliveries made to it")
    failed: int = Field(description="deliveries without success so far (failed, or still "
                                    "being tried)")
    last_status: int | None = Field(description="HTTP status of the last delivery's last "
                                                "attempt (null: no answer, or none yet)")
    last_sent_at: str | None


# -- errors -----------------------------------------------------------------------------------

class ApiError(Exception):
    """An error answered as ``{"detail": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, zh: str, en: str, headers: dict | None = None):
        super().__init__(en)
        self.status, self.code, self.message, self.headers = status, code, f"{zh} / {en}", headers


def _not_found(what_zh: str, what_en: str) -> ApiError:
    return ApiError(404, "not_found", f"没有{what_zh}", f"no {what_en}")


def _forbidden(zh: str, en: str) -> ApiError:
    return ApiError(403, "forbidden", zh, en)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {400: "请求体无法解析 / the request body cannot be parsed",
                 401: "没有或无效的令牌 / no token, or an unknown one",
                 403: "角色或中心无权访问 / the role or centre may not do this",
                 404: "不存在 / not found",
                 409: "任务状态不允许 / not possible in the job's state",
                 413: "请求体超过上限(WULIAN_MAX_BODY_BYTES)/ the body is above the limit "
                      "(WULIAN_MAX_BODY_BYTES)",
                 422: "请求有问题(逐条列出)/ the request has problems (each listed)",
                 500: "校验上传的进程意外退出 / the process validating the upload ended "
                      "unexpectedly"}
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model = ProblemsOut if code == 422 else ErrorOut
        out[code] = {"model": model, "description": described[code]}
    return out


def _problem(column: str, value: Any, code: str, zh: str, en: str, hint_zh: str,
             hint_en: str) -> dict:
    return {"table": "request", "row": None, "column": excerpt(column), "value": excerpt(value),
            "code": code, "message_zh": zh, "message_en": en, "hint_zh": hint_zh,
            "hint_en": hint_en}


def _problems_response(problems: list[dict], zh: str, en: str,
                       total: int | None = None) -> JSONResponse:
    """A 422 with the problems: the first ``max_problems`` of them, and their total."""
    total = len(problems) if total is None else total
    shown = problems[:limits().max_problems]
    more = ("" if len(shown) == total else
            f";仅列出前 {len(shown)} 个 / the first {len(shown)} are listed")
    return JSONResponse(status_code=422, content={
        "detail": f"{zh}({total} 个问题) / {en} ({total} problem(s)){more}",
        "total": total, "problems": shown})


# The request schema's patterns in words (a reader should not have to read a regex).
PATTERN_WORDS = {
    QUARTER_PATTERN: ("季度,写作年份加 Q1–Q4,如 2027Q2", "a quarter: the year, Q and 1–4, "
                                                        "like 2027Q2"),
    DIGEST_PATTERN: ("场景摘要:8 至 64 位小写十六进制字符,如 1a2b3c4d",
                     "a scenario digest: 8 to 64 lower-case hex digits, like 1a2b3c4d"),
    WEEK_PATTERN: ("ISO 周次,周号两位数 01–53,如 2026-W49",
                   "an ISO week with a two-digit number 01–53, like 2026-W49"),
}
# Where a schema problem is: (a field of it, 中文; in English; the whole of it, 中文; English).
WHERE = {"body": ("请求体字段", "the body's field", "请求体", "the body"),
         "query": ("查询参数", "the query parameter", "查询参数", "the query"),
         "path": ("路径参数", "the path parameter", "路径", "the path"),
         "header": ("请求头", "the header", "请求头", "the headers"),
         "form": ("表单字段", "the form field", "表单", "the form"),
         "cookie": ("Cookie", "the cookie", "Cookie", "the cookies")}


def _allowed_words(kind: str, ctx: dict) -> tuple[str, str]:
    """What a schema check allows, in both languages ('' when it says nothing more)."""
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", ""))
        values = re.findall(r"'([^']*)'", expected) or re.split(r", | or ", expected)
        return f"可选值:{'、'.join(values)}", f"one of: {', '.join(values)}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        if pattern in PATTERN_WORDS:
            return PATTERN_WORDS[pattern]
        if pattern.startswith("^https?://"):
            return "以 http:// 或 https:// 开头、不含空格的网址", \
                "a URL starting with http:// or https://, without spaces"
        if pattern == r"^[a-z_]{1,32}$":
            return "小写英文字母与下划线(1–32 个)", "lower-case letters and underscores (1–32)"
        return f"须符合格式 {pattern}", f"must match {pattern}"
    bounds = {"greater_than_equal": ("不小于 {ge}", "at least {ge}"),
              "greater_than": ("大于 {gt}", "above {gt}"),
              "less_than_equal": ("不大于 {le}", "at most {le}"),
              "less_than": ("小于 {lt}", "below {lt}"),
              "string_too_short": ("至少 {min_length} 个字符", "at least {min_length} characters"),
              "string_too_long": ("最多 {max_length} 个字符", "at most {max_length} characters"),
              "too_short": ("至少 {min_length} 项", "at least {min_length} items"),
              "too_long": ("最多 {max_length} 项", "at most {max_length} items")}
    if kind in bounds:
        zh, en = bounds[kind]
        return "须" + zh.format(**ctx), "must be " + en.format(**ctx)
    kinds = {"missing": ("必填", "required"),
             "extra_forbidden": ("不接受此字段(字段见 /docs)",
                                 "no such field is taken (see /docs for the fields)"),
             "int_parsing": ("须为整数", "must be a whole number"),
             "int_type": ("须为整数", "must be a whole number"),
             "int_from_float": ("须为整数", "must be a whole number"),
             "float_parsing": ("须为数字", "must be a number"),
             "float_type": ("须为数字", "must be a number"),
             "finite_number": ("须为有限数字(不能是 NaN 或无穷大)",
                               "must be a finite number (not NaN or infinite)"),
             "bool_parsing": ("须为 true 或 false", "must be true or false"),
             "bool_type": ("须为 true 或 false", "must be true or false"),
             "string_type": ("须为文本", "must be text"),
             "dict_type": ("须为 JSON 对象", "must be a JSON object"),
             "model_attributes_type": ("须为 JSON 对象", "must be a JSON object"),
             "model_type": ("须为 JSON 对象", "must be a JSON object"),
             "list_type": ("须为列表", "must be a list"),
             "date_parsing": ("须为日期,如 2026-12-02", "must be a date like 2026-12-02"),
             "date_from_datetime_parsing": ("须为日期,如 2026-12-02",
                                            "must be a date like 2026-12-02"),
             "date_type": ("须为日期,如 2026-12-02", "must be a date like 2026-12-02"),
             "control_character": ("不能含控制字符(如 NUL,\\u0000)",
                                   "must not hold control characters (such as NUL, \\u0000)"),
             "json_invalid": ("不是有效的 JSON", "is not valid JSON")}
    return kinds.get(kind, ("", ""))


def _shown_value(value: Any) -> Any:
    """A refused value as the reader sent it: bytes as text, never a Python ``b'…'``."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return value


def _schema_problem(error: dict) -> dict:
    """One problem the request schema found, as a 422 row: the field, what it allows (in both
    languages), and the value sent."""
    loc = [str(part) for part in error.get("loc", ())]
    where = loc[0] if loc and loc[0] in WHERE else ""
    field = ".".join(loc[1:] if where else loc)
    kind = str(error.get("type", ""))
    value = _shown_value(error.get("input", ""))
    if kind == "json_invalid":  # the location is a character's position, not a field
        position, field = field, ""
        ctx_error = str((error.get("ctx") or {}).get("error", ""))
        return _problem("body", "", "invalid_request",
                        f"请求体不是有效的 JSON(第 {position} 个字符处)",
                        f"the body is not valid JSON (at character {position}: {ctx_error})",
                        "请检查括号、引号与逗号,或设置 Content-Type: application/json",
                        "check brackets, quotes and commas, and the Content-Type header")
    field_zh, field_en, whole_zh, whole_en = WHERE.get(where, ("字段", "the field", "请求",
                                                               "the request"))
    allowed_zh, allowed_en = _allowed_words(kind, error.get("ctx") or {})
    name_zh = f"{field_zh} {field} " if field else whole_zh
    name_en = f"{field_en} {field}" if field else whole_en
    if kind == "missing":
        return _problem(".".join(loc), "", "invalid_request", f"缺少{name_zh}".strip(),
                        f"{name_en} is missing", f"请填写 {field or whole_zh}",
                        f"give {field or whole_en} (see /docs)")
    zh = f"{name_zh}的值无效" + (f":{allowed_zh}" if allowed_zh else "")
    en = f"{name_en} is not valid" + (f": {allowed_en}" if allowed_en
                                      else f": {error.get('msg', '')}")
    return _problem(".".join(loc), value, "invalid_request", zh, en,
                    allowed_zh or "请按 OpenAPI 文档(/docs)填写",
                    allowed_en or "see the OpenAPI document (/docs)")


def _scenario_problems(problems: list[Problem]) -> list[dict]:
    """The problems as response rows: the ones ``shown_problems`` keeps (the first
    ``max_problems``, each value and column name cut to its excerpt)."""
    frame = report_frame(shown_problems(problems)).astype(object)
    frame = frame.where(frame.notna(), None)
    rows = frame.to_dict(orient="records")
    for row in rows:
        row["row"] = None if row["row"] is None else int(row["row"])
    return rows


def _scenario_refused(err: ValidationError, zh: str, en: str) -> JSONResponse:
    return _problems_response(_scenario_problems(err.problems), zh, en, len(err.problems))


# -- the service ------------------------------------------------------------------------------

class Service:
    """What the routes share: the store, tokens, scenarios, the worker, budget labs."""

    def __init__(self, store: RunStore, data_dir: Path, *, slots: int, workers: int | None,
                 ray_address: str | None):
        self.store = store
        self.tokens = TokenStore(store.engine)
        self.library = ScenarioLibrary(data_dir, store)
        self.worker = JobWorker(store, self.library, slots=slots, workers=workers,
                                address=ray_address)
        self._subtrees: dict[tuple[str, str], frozenset[str] | None] = {}
        self._labs: dict[tuple, tuple[Any, threading.Lock]] = {}
        self._lock = threading.Lock()
        self._policy = None
        self.notifier = notify.Notifier()  # webhook pushes, off the requests' path
        self._evaluating = threading.Lock()  # one alert evaluation at a time

    def scenario_row(self, digest: str) -> dict:
        row = self.store.scenario(digest)
        if row is None:
            raise _not_found(f"场景 {digest}", f"scenario {digest}")
        return row

    def subtree(self, digest: str, centre: str) -> frozenset[str] | None:
        """The centre ids in ``centre``'s subtree in this scenario (``None``: no such
        centre)."""
        key = (digest, centre)
        with self._lock:
            if key in self._subtrees:
                return self._subtrees[key]
        hierarchy = self.library.load(digest).hierarchy
        found = frozenset(hierarchy.subtree(centre)) if centre in hierarchy.first.index else None
        with self._lock:
            self._subtrees[key] = found
        return found

    def level(self, digest: str, centre: str) -> str:
        """The level of a centre of the scenario (city, district, street, station)."""
        centres = self.library.load(digest).centres
        return str(centres.loc[centres["centre_id"] == centre, "level"].iloc[0])

    def fence(self, who: Principal, digest: str, centre: str | None) -> None:
        """A coordinator may act only on a centre inside their own subtree."""
        if who.role != "coordinator":
            return
        inside = self.subtree(digest, who.centre)
        if inside is None or not centre or centre not in inside:
            raise _forbidden(f"协调员 {who.centre} 只能访问其辖区", f"a coordinator of "
                             f"{who.centre} may see only that centre's subtree")

    def lab(self, digest: str, week: str | None, centre: str | None):
        from wulian.planning.budget import BudgetLab

        key = (digest, week, centre)
        with self._lock:
            found = self._labs.get(key)
        if found is None:
            scenario = self.library.load(digest)
            found = (BudgetLab.from_scenario(scenario, week=week, centre=centre),
                     threading.Lock())
            with self._lock:
                if len(self._labs) >= 8:
                    self._labs.pop(next(iter(self._labs)))
                found = self._labs.setdefault(key, found)
        return found

    def job_out(self, job: Job) -> dict:
        tables = self.store.table_names(job.run_id) if job.run_id is not None else []
        fraction = min(1.0, job.done / job.total) if job.total else (
            1.0 if job.state == "done" else 0.0)
        return {"job_id": job.job_id, "scenario": job.scenario, "quarter": job.quarter,
                "engine": job.engine, "centre": job.centre or None, "state": job.state,
                "progress": {"done": job.done, "total": job.total, "label": job.label,
                             "fraction": fraction},
                "attempts": job.attempts, "error": job.error,
                "cancel_requested": job.cancel_requested, "owner_role": job.owner_role,
                "run_id": job.run_id, "tables": tables, "created_at": job.created_at,
                "started_at": job.started_at, "updated_at": job.updated_at,
                "finished_at": job.finished_at}

    # -- the register and the weekly cycle ------------------------------------------------------

    def register(self, who: Principal | None = None) -> Register:
        """The register in the service's store, its changes made in the caller's name."""
        from wulian.demand.policy import Policy

        with self._lock:
            if self._policy is None:
                self._policy = Policy.load()
            policy = self._policy
        actor = Actor(f"token:{who.token_id}" if who else "service", "api")
        return Register(self.store, actor, policy)

    def register_row(self, table: str, key: str) -> dict | None:
        """One row of the register (canonical text), ``None`` when it has none."""
        with self.store.engine.connect() as conn:
            data = conn.execute(sa.select(ROWS.c.data).where(
                ROWS.c.tbl == table, ROWS.c.row_key == key)).scalar()
        return None if data is None else json.loads(data)

    def need_state(self, need_id: str) -> dict | None:
        """One need's state, aged to the register's week when it waits."""
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(*NEED_COLUMNS).where(
                NEED_STATES.c.need_id == need_id)).mappings().first()
            if row is None:
                return None
            state = dict(row)
            if state["state"] != "closed":
                state["age"] = int(weeks_waited([state["week_raised"]],
                                                self.register().week(conn))[0])
        return state

    def register_subtree(self, centre: str) -> frozenset[str] | None:
        """The centre ids in ``centre``'s subtree in the register (``None``: no such centre)."""
        centres = self.register().table("centres")
        if not len(centres) or centre not in set(centres["centre_id"]):
            return None
        return frozenset(Hierarchy.from_centres(centres).subtree(centre))

    def coordinator_stations(self, who: Principal) -> frozenset[str] | None:
        """A coordinator's subtree in the register (``None`` for other roles)."""
        if who.role != "coordinator":
            return None
        inside = self.register_subtree(who.centre)
        if inside is None:
            raise _forbidden(f"登记册中没有协调员的中心 {who.centre}",
                             f"the coordinator's centre {who.centre} is not in the register")
        return inside

    def register_fence(self, who: Principal, *stations: str | None) -> None:
        """A coordinator may change or read only households of their subtree's stations."""
        inside = self.coordinator_stations(who)
        if inside is not None and any(s not in inside for s in stations if s is not None):
            raise _forbidden(f"协调员 {who.centre} 只能访问其辖区", f"a coordinator of "
                             f"{who.centre} may see only that centre's subtree")

    def task_row(self, task_id: str) -> dict:
        with self.store.engine.connect() as conn:
            frame = cycle.tasks_frame(conn, cycle.TASKS.c.task_id == task_id)
        if not len(frame):
            raise _not_found(f"任务 {task_id}", f"task {task_id}")
        return _records(frame)[0]

    def task_for(self, who: Principal, task_id: str) -> dict:
        """A task the caller may see: a provider its own, a coordinator their subtree's."""
        task = self.task_row(task_id)
        if who.role == "provider" and task["provider_id"] != who.provider_id:
            raise _forbidden(f"任务属于其他服务方(本令牌:{who.provider_id})",
                             f"the task belongs to another provider (this token: "
                             f"{who.provider_id})")
        self.register_fence(who, task["station_id"])
        return task

    def week_scope(self, who: Principal, centre: str | None) -> str | None:
        """The centre a week is opened or closed for: a coordinator's own subtree only (their
        centre by default)."""
        if who.role == "coordinator":
            centre = centre or who.centre
            inside = self.coordinator_stations(who)
            if centre not in inside:
                raise _forbidden(f"协调员 {who.centre} 只能访问其辖区", f"a coordinator of "
                                 f"{who.centre} may see only that centre's subtree")
        return centre

    # -- alerts and webhooks ------------------------------------------------------------------

    def evaluate_alerts(self, who: Principal, week: str | None, *, after_close: bool = False
                        ) -> alerts.Evaluation:
        """Evaluate the alerts (one evaluation at a time) and push the ones it opened to their
        webhooks in the background."""
        with self._evaluating:
            result = alerts.evaluate(self.register(who), week, after_close=after_close)
        if result.opened_ids:
            ids = list(result.opened_ids)
            self.notifier.submit(lambda: notify.push_alerts(self.register(), ids),
                                 f"pushing {len(ids)} alert(s)")
        log.info("alerts evaluated at %s by a %s: %d opened, %d updated, %d resolved",
                 result.week or "-", who.role, result.opened, result.updated, result.resolved)
        return result

    def alert_row(self, alert_id: str) -> dict:
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(alerts.ALERTS).where(
                alerts.ALERTS.c.alert_id == alert_id)).mappings().first()
        if row is None:
            raise _not_found("该预警", "such alert")
        return dict(row)

    def alert_visible(self, who: Principal, row: dict) -> bool:
        """Whether the caller may see an alert: a coordinator those of their subtree's centres,
        a fund manager the fund alerts, a provider those about itself."""
        if who.role == "coordinator":
            return row["centre"] in self.coordinator_stations(who)
        if who.role == "fund_manager":
            return row["rule"] in FUND_RULES
        if who.role == "provider":
            return row["subject_kind"] == "provider" and row["subject_id"] == who.provider_id
        return True

    def alert_out(self, row: dict) -> dict:
        names = self.register().policy.alerts[row["rule"]]
        numbers = row["numbers"]
        return {**{k: row[k] for k in AlertOut.model_fields if k in row},
                "title_zh": names["zh"], "title_en": names["en"],
                "numbers": json.loads(numbers) if isinstance(numbers, str) else numbers}

    def webhook_fence(self, who: Principal, kind: str, target_id: str) -> None:
        """A coordinator manages only the webhooks of their subtree's centres."""
        inside = self.coordinator_stations(who)
        if inside is not None and (kind != "centre" or target_id not in inside):
            raise _forbidden(f"协调员 {who.centre} 只能管理其辖区中心的推送地址",
                             f"a coordinator of {who.centre} may manage only the webhooks of "
                             "that centre's subtree's centres")

    def job_for(self, who: Principal, job_id: int) -> Job:
        try:
            job = self.store.job(job_id)
        except KeyError:
            raise _not_found(f"任务 {job_id}", f"job {job_id}") from None
        self.fence(who, job.scenario, job.centre)
        return job


def _records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready rows (NaN → null, numpy scalars → Python)."""
    return json.loads(frame.to_json(orient="records", date_format="iso", force_ascii=False))


bearer = HTTPBearer(auto_error=False, scheme_name="token", bearerFormat="wl_…",
                    description="`wulian token create --role ROLE [--centre ID] "
                                "[--provider ID]` prints one")

# Request lines that would name a household: its colours' path, a need's id (made from the
# week and the household: ``N2026W50H0000005…``, and an imported or chosen id may name one
# too), the audit trail's subject and an alert's id (``unmet:household:H…``). Task ids
# (``T2026W49-D04S01-000027``), job ids, digests, weeks and centres name no household.
_HOUSEHOLD_PATH = re.compile(r"(/register/(?:households|needs)/)[^/?\s]+")
_ALERT_PATH = re.compile(r"(/alerts/)(?!evaluate(?:[?\s]|$))[^/?\s]+")
_SUBJECT_QUERY = re.compile(r"([?&]subject=)[^&\s]*")


class _RedactPaths(logging.Filter):
    """Keeps household ids out of uvicorn's access log (``…/households/…/colours``,
    ``…/needs/…/withdraw``, ``/events?subject=…``, ``/alerts/…/acknowledge``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SUBJECT_QUERY.sub(r"\1…", _ALERT_PATH.sub(r"\1…", _HOUSEHOLD_PATH.sub(
                    r"\1…", a))) if isinstance(a, str) else a for a in record.args)
        return True


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _BodyGate:
    """An ASGI gate in front of the app: a request with a body is answered before a byte of
    it is read when it declares more than ``max_body_bytes`` (413) or carries no valid token
    (401) — FastAPI reads a multipart body in full before its dependencies check the token.
    A body sent without a length is counted as it streams and cut off at the limit (413)."""

    def __init__(self, app: Any, tokens: TokenStore):
        self.app, self.tokens = app, tokens

    @staticmethod
    async def _answer(send: Callable, status: int, code: str, zh: str, en: str) -> None:
        body = json.dumps({"detail": {"code": code, "message": f"{zh} / {en}"}},
                          ensure_ascii=False).encode("utf-8")
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _too_large(self, send: Callable, most: int) -> None:
        await self._answer(send, 413, "body_too_large", f"请求体超过 {most / 1024**2:,.0f} MB",
                           f"the request body is above {most / 1024**2:,.0f} MB "
                           "(WULIAN_MAX_BODY_BYTES)")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        most = limits().max_body_bytes
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > most:
            await self._too_large(send, most)
            return
        scheme, _, secret = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            await self._answer(send, 401, "no_token", "需要令牌", "a bearer token is required")
            return
        if self.tokens.verify(secret.strip()) is None:
            await self._answer(send, 401, "bad_token", "令牌无效或已撤销",
                               "the token is unknown or revoked")
            return
        seen, over, answered = 0, False, False

        async def counted() -> dict:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > most:
                over = True  # the app sees a client that went away, and stops reading
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: dict) -> None:
            nonlocal answered
            if not over:
                await send(message)
            elif not answered and message["type"] == "http.response.start":
                answered = True
                await self._too_large(send, most)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:
                raise
        if over and not answered:
            await self._too_large(send, most)


def create_app(store_url: str | None = None, data_dir: str | Path | None = None, *,
               slots: int = 1, workers: int | None = None, ray_address: str | None = None,
               run_jobs: bool = True) -> FastAPI:
    """The service's ASGI app.

    Parameters
    ----------
    store_url
        The run store (SQLAlchemy URL; default ``$WULIAN_STORE`` or ``runs/wulian.sqlite``).
    data_dir
        Where uploaded scenarios are kept (default ``runs/scenarios``).
    slots, workers, ray_address
        Jobs run at once; processes of each plan's pool; a Ray cluster for ``engine=ray``.
    run_jobs
        Start the background worker with the app (off: jobs only queue).
    """
    store = RunStore(store_url)
    service = Service(store, Path(data_dir or DEFAULT_DATA), slots=slots, workers=workers,
                      ray_address=ray_address)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Here, after uvicorn has set up its logging: household ids in paths stay out of it.
        access = logging.getLogger("uvicorn.access")
        if not any(isinstance(f, _RedactPaths) for f in access.filters):
            access.addFilter(_RedactPaths())
        if run_jobs:
            service.worker.start()
        log.info("wulian service ready: store %s, %s job slot(s)",
                 store.engine.url.render_as_string(hide_password=True), service.worker.slots)
        yield
        if run_jobs:
            service.worker.stop(limits().shutdown_seconds)
        service.library.validator.close()
        service.notifier.stop()

    app = FastAPI(
        title="五联 wulian batch service",
        version=_version(),
        description="季度规划批处理服务与每周循环 / quarterly planning as a batch service "
                    "(upload a scenario, submit a quarter, follow the job, fetch the plan) and "
                    "the weekly cycle (the register, weeks opened and closed, tasks answered "
                    "one at a time, the fund ledger, the audit trail). Roles: planner, "
                    "fund_manager, coordinator (fenced to a centre's subtree), provider "
                    "(fenced to its own tasks), admin.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(_BodyGate, tokens=service.tokens)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(status_code=err.status, headers=err.headers,
                            content={"detail": {"code": err.code, "message": err.message}})

    @app.exception_handler(ValidationCrashed)
    async def _validation_crashed(_request: Request, err: ValidationCrashed) -> JSONResponse:
        # The server's fault, or a file that kills its reader: a 500 with what to do, at once
        # (not after the validation's time limit), in the usual error shape.
        return JSONResponse(status_code=500, content={"detail": {
            "code": "validation_crashed", "message": str(err)}})

    # The HTTP layer's own errors (a path no route has, a method a route does not take) in
    # both languages, with what to do.
    http_words = {404: ("没有该路径(接口见 /docs)",
                        "no such path (the routes are listed at /docs)"),
                  405: ("该路径不接受此请求方法(见 /docs)",
                        "the path does not take this method (see /docs)")}

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        zh, en = http_words.get(err.status_code, ("请求错误", str(err.detail)))
        return JSONResponse(status_code=err.status_code, headers=getattr(err, "headers", None),
                            content={"detail": {"code": f"http_{err.status_code}",
                                                "message": f"{zh} / {en}"}})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        problems = [_schema_problem(e) for e in err.errors()]
        return _problems_response(problems, "请求无效", "the request is invalid")

    # The checks and the light reads below are coroutines: one or two indexed reads (well under
    # a millisecond) are cheaper on the event loop than a hop to the thread pool, and a burst of
    # status polls is then answered in order instead of round-robin across threads that
    # contend for the GIL.
    async def caller(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                            Security(bearer)]) -> Principal:
        if credentials is None or not credentials.credentials:
            raise ApiError(401, "no_token", "需要令牌", "a bearer token is required",
                           {"WWW-Authenticate": "Bearer"})
        who = service.tokens.verify(credentials.credentials)
        if who is None:
            raise ApiError(401, "bad_token", "令牌无效或已撤销",
                           "the token is unknown or revoked", {"WWW-Authenticate": "Bearer"})
        return who

    def allowed(action: str) -> Callable[..., Principal]:
        async def check(who: Annotated[Principal, Depends(caller)]) -> Principal:
            if not who.may(action):
                role_zh, role_en = ROLE_NAMES[who.role]
                action_zh, action_en = ACTION_NAMES[action]
                raise _forbidden(f"{role_zh}({who.role})无权{action_zh}",
                                 f"a {role_en} ({who.role}) may not {action_en}")
            return who
        return check

    v1 = APIRouter(prefix="/v1")

    def post(path: str, **kw: Any) -> Callable:
        """``v1.post`` with the gate's 413 (``_BodyGate``) among the route's answers."""
        return v1.post(path, **{**kw, "responses": {**kw.get("responses", {}),
                                                    **_errors(413)}})
    authed = _errors(401, 403)
    Digest = Annotated[str, PathParam(pattern=DIGEST_PATTERN,
                                      description="digest or a unique prefix (8+ hex)")]
    JobId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
    # An optional id in the query (a centre, a provider).
    CentreQuery = Annotated[str | None, Query(min_length=1, max_length=64), NoControl]

    @v1.get("/health", response_model=HealthOut, tags=["service"])
    async def health() -> dict:
        """服务状态 / the service is up (no token needed)."""
        return {"status": "ok", "version": app.version, "job_slots": service.worker.slots,
                "running_jobs": service.worker.running}

    @v1.get("/me", response_model=MeOut, responses=_errors(401), tags=["service"])
    async def me(who: Annotated[Principal, Depends(caller)]) -> dict:
        """当前令牌 / the caller's role, centre (a coordinator) and provider (a provider)."""
        return {"token_id": who.token_id, "role": who.role, "centre": who.centre,
                "provider_id": who.provider_id}

    # -- scenarios ----------------------------------------------------------------------------

    @post("/scenarios", response_model=UploadOut, status_code=201, tags=["scenarios"],
             responses={200: {"model": UploadOut, "description": "already kept (same digest)"},
                        **_errors(400, 401, 403, 422, 500)})
    def upload_scenario(who: Annotated[Principal, Depends(allowed("scenario:upload"))],
                        response: Response,
                        files: Annotated[list[UploadFile], File(
                            description="one folder's CSV or Parquet files, or one XLSX")],
                        name: Annotated[str, Form(max_length=200), NoControl] = "") -> Any:
        """上传场景 / upload a scenario: validated with every problem reported (422, nothing
        kept), kept by digest (201; 200 when it was already there)."""
        data = [(f.filename or "unnamed", f.file.read()) for f in files]
        try:
            scenario, created = service.library.add(data, name=name)
        except ValidationError as err:
            log.info("upload refused: %d problem(s)", len(err.problems))
            return _scenario_refused(err, "场景未导入", "the scenario was not imported")
        log.info("scenario %s %s by a %s", scenario.digest[:12],
                 "kept" if created else "already kept", who.role)
        if not created:
            response.status_code = 200
        return {**service.scenario_row(scenario.digest), "created": created}

    @v1.get("/scenarios", response_model=list[ScenarioOut], responses=authed,
            tags=["scenarios"])
    def list_scenarios(who: Annotated[Principal, Depends(allowed("scenario:list"))]) -> Any:
        """场景列表 / the scenarios kept, oldest first."""
        return service.store.scenarios()

    @v1.get("/scenarios/{digest}/funds", response_model=list[FundOut],
            responses=_errors(401, 403, 404, 422), tags=["budgets"])
    def scenario_funds(digest: Digest,
                       who: Annotated[Principal, Depends(allowed("scenario:funds"))]) -> Any:
        """基金与预算 / the scenario's funds and budgets."""
        row = service.scenario_row(digest)
        funds = service.library.load(row["digest"]).funds
        return _records(funds[list(FundOut.model_fields)])

    @v1.get("/scenarios/{digest}/households", response_model=HouseholdsOut,
            responses=_errors(401, 403, 404, 422), tags=["scenarios"])
    def households(digest: Digest,
                   who: Annotated[Principal, Depends(allowed("scenario:households"))],
                   centre: CentreQuery = None,
                   limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
                   offset: Annotated[int, Query(ge=0)] = 0) -> Any:
        """家庭(辖区内)/ households of a centre's subtree, with their colour and score; a
        coordinator sees only their own subtree (their centre by default)."""
        row = service.scenario_row(digest)
        if who.role == "coordinator":
            centre = centre or who.centre
            service.fence(who, row["digest"], centre)
        scenario = service.library.load(row["digest"])
        hh = scenario.households
        if centre:
            inside = service.subtree(row["digest"], centre)
            if inside is None:
                raise _not_found(f"中心 {centre}", f"centre {centre} in this scenario")
            hh = hh[hh["station_id"].isin(inside)]
        hh = hh.sort_values("household_id")
        part = hh.iloc[offset:offset + limit]
        return {"scenario": row["digest"], "centre": centre, "total_rows": len(hh),
                "offset": offset, "households": _records(part[list(HOUSEHOLD_COLUMNS)])}

    @post("/scenarios/{digest}/budget-lab", response_model=BudgetLabOut,
             responses=_errors(400, 401, 403, 404, 422), tags=["budgets"])
    def budget_lab(digest: Digest, body: BudgetLabIn,
                   who: Annotated[Principal, Depends(allowed("budget:lab"))]) -> Any:
        """预算实验室 / what a budget setting buys: fill rate per colour, money and the marginal
        value of a yuan per fund (the aggregated model, warm re-solves)."""
        row = service.scenario_row(digest)
        scenario = service.library.load(row["digest"])
        funds = set(scenario.funds["fund_id"])
        problems = [_problem(f"budgets.{f}", f, "unknown_fund", "未知的基金", "unknown fund",
                             "可选基金:" + ", ".join(sorted(funds)),
                             "funds: " + ", ".join(sorted(funds)))
                    for f in body.budgets if f not in funds]
        if body.centre and service.subtree(row["digest"], body.centre) is None:
            problems.append(_problem("centre", body.centre, "unknown_centre", "未知的中心",
                                     "unknown centre", "请使用场景中的中心编号",
                                     "use a centre_id of the scenario"))
        if problems:
            return _problems_response(problems, "预算设置有误", "the budget setting is wrong")
        lab, lock = service.lab(row["digest"], body.week, body.centre)
        spec: dict[str, Any] = dict(body.budgets)
        if body.scale != 1.0:
            spec["scale"] = body.scale
        with lock:
            solution = lab.solve(spec, {"floor": body.equity_floor}
                                 if body.equity_floor is not None else None)
        return {"scenario": row["digest"], "status": solution.status,
                "message": solution.message or "", "seconds": solution.seconds,
                "money": float(solution.money),
                "colours": _records(solution.colours[list(ColourRow.model_fields)]),
                "funds": _records(solution.funds[list(FundResultRow.model_fields)])}

    # -- jobs ---------------------------------------------------------------------------------

    @post("/jobs", response_model=JobOut, status_code=201,
             responses=_errors(400, 401, 403, 404, 422), tags=["jobs"])
    def submit_job(body: JobIn,
                   who: Annotated[Principal, Depends(allowed("job:submit"))]) -> Any:
        """提交季度规划任务 / queue a quarterly plan (a coordinator: for their subtree)."""
        row = service.scenario_row(body.scenario)
        centre = body.centre
        if who.role == "coordinator":
            centre = centre or who.centre
        if centre and service.subtree(row["digest"], centre) is None:
            if who.role == "coordinator":
                service.fence(who, row["digest"], centre)
            return _problems_response([_problem(
                "centre", centre, "unknown_centre", "场景中没有该中心",
                "the scenario has no such centre", "请使用场景 centres 表中的编号",
                "use a centre_id from the scenario's centres table")],
                "任务未提交", "the job was not submitted")
        service.fence(who, row["digest"], centre)
        if centre and service.level(row["digest"], centre) == "station":
            return _problems_response([_problem(
                "centre", centre, "station_centre", "季度计划的最小单位是街镇中心",
                "the quarterly plan's smallest unit is a street centre",
                "请改用该站点所属的街镇中心", "give the station's street centre instead")],
                "任务未提交", "the job was not submitted")
        job = service.store.submit_job(row["digest"], body.quarter, engine=body.engine,
                                       centre=centre, owner_role=who.role)
        log.info("job %s queued: scenario %s, quarter %s, by a %s", job.job_id,
                 row["digest"][:12], body.quarter, who.role)
        service.worker.wake()
        return service.job_out(job)

    @v1.get("/jobs", response_model=list[JobOut], responses=_errors(401, 403, 422),
            tags=["jobs"])
    def list_jobs(who: Annotated[Principal, Depends(allowed("job:list"))],
                  state: Annotated[Literal["queued", "running", "done", "failed", "cancelled"]
                                   | None, Query()] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
        """任务列表 / jobs, newest first (a coordinator: those of their subtree)."""
        out = []
        for job in service.store.jobs(state):
            if who.role == "coordinator":
                try:
                    service.fence(who, job.scenario, job.centre)
                except (ApiError, KeyError):
                    continue
            out.append(service.job_out(job))
            if len(out) >= limit:
                break
        return out

    @v1.get("/jobs/{job_id}", response_model=JobOut, responses=_errors(401, 403, 404, 422),
            tags=["jobs"])
    async def job_status(job_id: JobId,
                         who: Annotated[Principal, Depends(allowed("job:status"))]) -> Any:
        """任务状态与进度 / a job's state and progress."""
        return service.job_out(service.job_for(who, job_id))

    @post("/jobs/{job_id}/cancel", response_model=JobOut, status_code=202,
             responses=_errors(401, 403, 404, 409, 422), tags=["jobs"])
    def cancel_job(job_id: JobId,
                   who: Annotated[Principal, Depends(allowed("job:cancel"))]) -> Any:
        """取消任务 / cancel: a queued job at once, a running one at its next check."""
        job = service.job_for(who, job_id)
        if job.state in ("done", "failed", "cancelled"):
            raise ApiError(409, "finished", f"任务已结束({job.state})",
                           f"the job is already {job.state}")
        log.info("job %s: cancel asked by a %s", job_id, who.role)
        return service.job_out(service.worker.cancel(job_id))

    def _done_job(who: Principal, job_id: int) -> Job:
        job = service.job_for(who, job_id)
        if job.state != "done" or job.run_id is None:
            raise ApiError(409, "not_done", f"任务尚未完成({job.state})",
                           f"the job is {job.state}, not done")
        return job

    table_content = {"application/json": {}, "text/csv": {"schema": {"type": "string"}},
                     "application/vnd.apache.parquet": {
                         "schema": {"type": "string", "format": "binary"}}}

    @v1.get("/jobs/{job_id}/tables/{name}", response_model=TableOut,
            responses={200: {"content": table_content,
                             "description": "the table as JSON rows, CSV (UTF-8 with BOM, "
                                            "safe to open in Excel) or Parquet"},
                       **_errors(401, 403, 404, 409, 422)}, tags=["jobs"])
    def job_table(job_id: JobId,
                  name: Annotated[str, PathParam(pattern=r"^[a-z_]{1,32}$")],
                  who: Annotated[Principal, Depends(allowed("job:table"))],
                  format: Annotated[Literal["json", "csv", "parquet"], Query()] = "json",
                  limit: Annotated[int | None, Query(ge=1, le=10_000_000)] = None,
                  offset: Annotated[int, Query(ge=0)] = 0) -> Any:
        """结果表 / one output table of a done job (`money`, `volunteers`, `fill_rate`,
        `funds`, `explanation`); a fund manager may read `money` and `funds`."""
        if who.role == "fund_manager" and name not in FUND_TABLES:
            raise _forbidden(f"基金管理人只能读取 {', '.join(sorted(FUND_TABLES))}",
                             f"a fund manager may read only {', '.join(sorted(FUND_TABLES))}")
        job = _done_job(who, job_id)
        try:
            frame = service.store.table(job.run_id, name)
        except KeyError:
            raise _not_found(f"表 {name}", f"table {name} in job {job_id}") from None
        if who.role == "coordinator":
            frame = frame.drop(columns=list(NETWORK_COLUMNS.get(name, ())), errors="ignore")
        total = len(frame)
        frame = frame.iloc[offset:offset + limit if limit else None]
        if format == "csv":
            text = excel_safe(frame).to_csv(index=False, lineterminator="\n")
            return Response(("\ufeff" + text).encode("utf-8"), media_type=MEDIA["csv"],
                            headers={"Content-Disposition":
                                     f'attachment; filename="job{job_id}-{name}.csv"'})
        if format == "parquet":
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            return Response(buffer.getvalue(), media_type=MEDIA["parquet"],
                            headers={"Content-Disposition":
                                     f'attachment; filename="job{job_id}-{name}.parquet"'})
        return {"job_id": job_id, "name": name, "columns": [str(c) for c in frame.columns],
                "total_rows": total, "offset": offset, "rows": _records(frame)}

    @v1.get("/jobs/{job_id}/explanation", response_model=ExplanationOut,
            responses=_errors(401, 403, 404, 409, 422), tags=["jobs"])
    def job_explanation(job_id: JobId,
                        who: Annotated[Principal, Depends(allowed("job:explanation"))]) -> Any:
        """计划说明 / the plan's explanation summary and provenance."""
        job = _done_job(who, job_id)
        run = service.store.load(job.run_id)
        rows = _records(run.tables["explanation"]) if "explanation" in run.tables else []
        info = run.info
        if who.role == "coordinator":
            info = {k: v for k, v in info.items() if k not in NETWORK_INFO}
        return {"job_id": job_id, "scenario": job.scenario, "quarter": job.quarter,
                "centre": job.centre or None, "info": info, "rows": rows}

    # -- the register -------------------------------------------------------------------------

    HouseholdId = Annotated[str, PathParam(min_length=1, max_length=64), NoControl]
    NeedId = Annotated[str, PathParam(min_length=1, max_length=64), NoControl]
    TaskId = Annotated[str, PathParam(min_length=1, max_length=64), NoControl]
    WeekPath = Annotated[str, PathParam(pattern=WEEK_PATTERN, examples=["2026-W49"])]
    WeekQuery = Annotated[str | None, Query(pattern=WEEK_PATTERN)]

    def _week_problem(week: str) -> JSONResponse | None:
        try:
            cycle.check_week(week)
        except cycle.CycleError as err:
            zh, _, en = str(err).partition(" / ")
            return _problems_response([_problem("week", week, "not_a_week", zh, en,
                                                "格式如 2026-W49", "write it like 2026-W49")],
                                      "周次无效", "not a week")
        return None

    def _week_range(weeks: str | None, column: str
                    ) -> tuple[str | None, str | None, JSONResponse | None]:
        """``2027-W01:2027-W13`` (either side may be left out) as (first, last), or the 422
        when a side is not an ISO week (``2027-W53``: 2027 has 52) or the first is after the
        last — one check for the performance and the ledger."""
        try:
            first, last = performance.parse_weeks(weeks)
        except ValueError as err:
            zh, _, en = str(err).partition(" / ")
            return None, None, _problems_response([_problem(
                column, weeks, "not_a_week", zh, en or zh, "格式如 2027-W01:2027-W13",
                "write it like 2027-W01:2027-W13")], "周次范围无效", "not a range of weeks")
        bad = [w for w in (first, last) if w and not re.fullmatch(WEEK_PATTERN, w)]
        if bad or (first and last and first > last):
            return None, None, _problems_response([_problem(
                column, weeks, "bad_week_range",
                "周次须写成两位数(2027-W01),且起始不晚于结束",
                "weeks are written with two digits (2027-W01) and the first is not after the "
                "last", "格式如 2027-W01:2027-W13", "write it like 2027-W01:2027-W13")],
                "周次范围无效", "not a range of weeks")
        return first, last, None

    def _register_problems(err: ValidationError) -> JSONResponse:
        return _scenario_refused(err, "登记册未更改", "the register was not changed")

    @post("/register/import", response_model=ImportOut, tags=["register"],
             responses=_errors(400, 401, 403, 404, 422, 500))
    def register_import(
            who: Annotated[Principal, Depends(allowed("register:import"))],
            files: Annotated[list[UploadFile] | None, File(
                description="one folder's CSV or Parquet files, or one XLSX (or give "
                            "`scenario`)")] = None,
            scenario: Annotated[str | None, Form(
                pattern=DIGEST_PATTERN, description="a kept scenario's digest (or upload "
                                                    "`files`)")] = None,
            name: Annotated[str, Form(max_length=200), NoControl] = "",
            dry_run: Annotated[bool, Form(description="report the changes, write nothing")]
            = False) -> Any:
        """导入登记册 / bring a scenario into the register: rows are upserted by id (supply
        tables are replaced), new and changed households assessed, new needs opened — one
        transaction, every change in the audit trail. The register after the import is
        validated as a whole: 422 with every problem, nothing written."""
        if bool(files) == bool(scenario):
            return _problems_response([_problem(
                "files", "", "scenario_or_files", "请上传文件或给出场景摘要(二选一)",
                "give either files or a kept scenario's digest, not both or neither",
                "上传场景文件,或填写 scenario", "upload the files, or name the scenario")],
                "登记册未更改", "the register was not changed")
        if files:
            data = [(f.filename or "unnamed", f.file.read()) for f in files]
            try:
                loaded, _created = service.library.add(data, name=name)
            except ValidationError as err:
                return _scenario_refused(err, "场景未导入", "the scenario was not imported")
        else:
            loaded = service.library.load(service.scenario_row(scenario)["digest"])
        try:
            report = service.register(who).import_scenario(loaded, dry_run=dry_run)
        except ValidationError as err:
            log.info("register import refused: %d problem(s)", len(err.problems))
            return _register_problems(err)
        log.info("register import of %s by a %s: %d change(s)%s", loaded.digest[:12], who.role,
                 report.total, " (dry run)" if dry_run else "")
        return {"scenario": loaded.digest, "dry_run": dry_run, "applied": report.applied,
                "tables": _records(report.frame()), "assessments": report.assessments,
                "skipped": list(report.skipped)}

    def _assessment(row: dict) -> dict:
        out = {k: row[k] for k in AssessmentOut.model_fields}
        out["indicators"] = json.loads(row["indicators"]) if row["indicators"] else {}
        return out

    def _colours(household_id: str) -> list[dict]:
        history = service.register().colour_history(household_id)
        return [_assessment(r) for r in _records(history)]

    @post("/register/households", response_model=HouseholdAssessedOut, status_code=201,
             responses={200: {"model": HouseholdAssessedOut,
                              "description": "a household already in the register, updated"},
                        **_errors(400, 401, 403, 422)}, tags=["register"])
    def register_household(body: HouseholdIn, response: Response,
                           who: Annotated[Principal, Depends(allowed("register:write"))]) -> Any:
        """登记或重新评估家庭 / add a household or update one, with a new assessment (dated,
        versioned, coloured by the policy): fields not given are kept. 201 new, 200 updated;
        a coordinator: households of their subtree only."""
        row = body.model_dump(exclude_none=True, exclude={"discovered_by", "assessed_on"})
        before = service.register_row("households", body.household_id)
        service.register_fence(who, before and before.get("station_id"), body.station_id)
        try:
            service.register(who).assess(row, on=body.assessed_on,
                                         discovered_by=body.discovered_by)
        except ValidationError as err:
            return _register_problems(err)
        if before is not None:
            response.status_code = 200
        log.info("household %s in the register by a %s", "added" if before is None else
                 "assessed", who.role)
        return {"household_id": body.household_id, "created": before is None,
                "assessment": _colours(body.household_id)[-1]}

    @v1.get("/register/households/{household_id}/colours", response_model=ColoursOut,
            responses=_errors(401, 403, 404, 422), tags=["register"])
    def household_colours(household_id: HouseholdId,
                          who: Annotated[Principal, Depends(allowed("register:read"))]) -> Any:
        """颜色变化记录 / a household's assessments, oldest first: when, who, how it was found,
        its indicators, score and colour."""
        row = service.register_row("households", household_id)
        if row is None:
            raise _not_found("该家庭", "such household in the register")
        service.register_fence(who, row.get("station_id"))
        return {"household_id": household_id, "station_id": row.get("station_id", ""),
                "assessments": _colours(household_id)}

    def _need_out(need_id: str) -> dict:
        state = service.need_state(need_id)
        if state is None:
            raise _not_found(f"需求 {need_id}", f"need {need_id}")
        return {k: state[k] for k in NeedStateOut.model_fields}

    @post("/register/needs", response_model=NeedStateOut, status_code=201,
             responses=_errors(400, 401, 403, 409, 422), tags=["register"])
    def register_need(body: NeedIn,
                      who: Annotated[Principal, Depends(allowed("register:write"))]) -> Any:
        """登记需求 / raise one need (a one-click request, a finding): it opens and waits for
        the next week opened. A coordinator: households of their subtree only."""
        household = service.register_row("households", body.household_id)
        service.register_fence(who, household and household.get("station_id"))
        from wulian.planning.match import week_of

        week = body.week
        if week is None:
            week = week_of(date.today())
        elif (bad := _week_problem(week)) is not None:
            return bad
        row = {"household_id": body.household_id, "service_id": body.service_id,
               "quantity": body.quantity, "urgency": body.urgency, "week": week}
        if body.need_id:
            row["need_id"] = body.need_id
        try:
            need_id = service.register(who).add_need(row)
        except ValidationError as err:
            return _register_problems(err)
        except RegisterError as err:
            zh, _, en = str(err).partition(" / ")
            raise ApiError(409, "exists", zh, en or zh) from None
        log.info("need raised by a %s", who.role)
        return _need_out(need_id)

    @post("/register/needs/{need_id}/withdraw", response_model=NeedWithdrawnOut,
             responses=_errors(401, 403, 404, 409, 422), tags=["register"])
    def withdraw_need(need_id: NeedId,
                      who: Annotated[Principal, Depends(allowed("register:write"))]) -> Any:
        """撤回需求 / close a need as withdrawn (the household no longer needs it); its tasks
        not yet answered are recalled (`recalled`), those delivered in part this week kept
        (`delivered`). 409 when it is closed, or was delivered in full this week."""
        state = _need_out(need_id)
        household = service.register_row("households", state["household_id"])
        service.register_fence(who, household and household.get("station_id"))
        if state["state"] == "closed":
            raise ApiError(409, "closed", f"需求 {need_id} 已关闭", f"need {need_id} is "
                           "already closed")
        try:
            withdrawal = service.register(who).withdraw_need(need_id)
        except RegisterError as err:
            zh, _, en = str(err).partition(" / ")
            raise ApiError(409, "not_withdrawn", zh, en or zh) from None
        log.info("need withdrawn by a %s: %d task(s) recalled", who.role,
                 len(withdrawal.recalled))
        return {**_need_out(need_id), "recalled": withdrawal.recalled,
                "delivered": withdrawal.delivered}

    # -- the weekly cycle ---------------------------------------------------------------------

    def _scope_out(centre: str) -> str | None:
        return None if centre == cycle.WHOLE else centre

    def _scope_words(centre: str) -> tuple[str, str]:
        """A week's scope in words: the whole network (stored as ``*``) or a centre."""
        if centre == cycle.WHOLE:
            return "全市", "the whole network 全市"
        return f"中心 {centre}", f"centre {centre}"

    def _cycle_conflict(err: cycle.CycleError) -> ApiError:
        zh, _, en = str(err).partition(" / ")
        return ApiError(409, "cycle_conflict", zh, en or zh)

    @post("/weeks", response_model=WeekOpenedOut, status_code=201,
             responses=_errors(400, 401, 403, 409, 422), tags=["cycle"])
    def open_week(body: WeekIn,
                  who: Annotated[Principal, Depends(allowed("week:manage"))]) -> Any:
        """开启一周 / open a week from the register (the whole network, or a centre's subtree):
        allocate, match and turn every allocation and placed visit into a task. Takes seconds
        (a city: a minute); 409 when the week is already open, a scope's earlier week is still
        open, or nothing is to be allocated. A coordinator: a centre of their subtree (their
        centre by default)."""
        if (bad := _week_problem(body.week)) is not None:
            return bad
        centre = service.week_scope(who, body.centre)
        if centre is not None and service.register_subtree(centre) is None:
            return _problems_response([_problem(
                "centre", centre, "unknown_centre", "登记册中没有该中心",
                "the register has no such centre", "请使用登记册 centres 表中的编号",
                "use a centre_id of the register's centres table")],
                "周未开启", "the week was not opened")
        try:
            opened = cycle.open_week(service.register(who), body.week, centre)
        except cycle.CycleError as err:
            raise _cycle_conflict(err) from None
        except ValidationError as err:
            return _scenario_refused(err, "周未开启", "the week was not opened")
        service.notifier.submit(
            lambda: notify.publish_tasks(service.register(), body.week, centre),
            f"publishing the tasks of {body.week}")
        tasks = opened.tasks
        unmet = opened.run.tables.get("unmet")
        log.info("week %s opened for %s by a %s: %d task(s) in %.1f s", body.week,
                 opened.centre, who.role, len(tasks), opened.seconds.get("wall", 0.0))
        return {"week": opened.week, "centre": _scope_out(opened.centre),
                "run_id": opened.run_id, "tasks": len(tasks),
                "tasks_by_kind": {str(k): int(v) for k, v in
                                  tasks["kind"].value_counts().items()},
                "needs_allocated": int(tasks.loc[tasks["need_id"] != "", "need_id"].nunique()),
                "needs_unmet": 0 if unmet is None else int(unmet["need_id"].nunique()),
                "cost": round(float(tasks["cost"].sum()), 2), "seconds": opened.seconds}

    @post("/weeks/{week}/close", response_model=WeekClosedOut,
             responses=_errors(401, 403, 404, 409, 422), tags=["cycle"])
    def close_week(week: WeekPath,
                   who: Annotated[Principal, Depends(allowed("week:manage"))],
                   centre: CentreQuery = None
                   ) -> Any:
        """结束一周 / close a week for the scope it was opened for: unanswered tasks are
        settled as not delivered, what was not delivered waits into the next week (its age
        counted from the week it was raised for), needs delivered in full close, visits made go
        into the history. Then the alerts
        are evaluated at the week (`alerts`: the counts) and the ones opened are pushed to
        their webhooks."""
        if (bad := _week_problem(week)) is not None:
            return bad
        centre = service.week_scope(who, centre)
        scope = centre or cycle.WHOLE
        opened = cycle.weeks(service.register())
        if not len(opened[(opened["week"] == week) & (opened["centre"] == scope)]):
            scopes = sorted(opened.loc[opened["week"] == week, "centre"])
            zh, en = _scope_words(scope)
            if scopes:
                zh_for = "、".join(_scope_words(c)[0] for c in scopes)
                en_for = ", ".join(_scope_words(c)[1] for c in scopes)
                raise ApiError(404, "not_found", f"{week} 没有为{zh}开启;该周开启于{zh_for}"
                               "(中心用 ?centre= 指定)", f"week {week} was not opened for {en}; "
                               f"it was opened for {en_for} (give a centre as ?centre=)")
            raise ApiError(404, "not_found", f"{week} 尚未开启", f"week {week} was not opened")
        try:
            closed = cycle.close_week(service.register(who), week, centre)
        except cycle.CycleError as err:
            raise _cycle_conflict(err) from None
        log.info("week %s closed for %s by a %s", week, scope, who.role)
        try:
            evaluation = _evaluation_out(service.evaluate_alerts(who, week, after_close=True))
        except Exception:  # noqa: BLE001 - the close is done: say so, and log why alerts failed
            log.exception("alerts could not be evaluated after closing %s", week)
            evaluation = None
        return {"week": closed.week, "centre": _scope_out(closed.centre),
                "delivered": closed.delivered, "carried": closed.carried,
                "expired": closed.expired, "unanswered": closed.unanswered,
                "history": closed.history, "spent": round(closed.spent, 2),
                "alerts": evaluation}

    @v1.get("/weeks", response_model=list[WeekOut], responses=authed, tags=["cycle"])
    def list_weeks(who: Annotated[Principal, Depends(allowed("week:list"))]) -> Any:
        """周列表 / every week opened, oldest first, with its state and tasks per status."""
        frame = cycle.weeks(service.register())
        with service.store.engine.connect() as conn:
            counts = conn.execute(sa.select(
                cycle.TASKS.c.week, cycle.TASKS.c.centre, cycle.TASKS.c.status,
                sa.func.count()).group_by(cycle.TASKS.c.week, cycle.TASKS.c.centre,
                                          cycle.TASKS.c.status)).all()
        per: dict[tuple[str, str], dict[str, int]] = {}
        for w, c, status, n in counts:
            per.setdefault((w, c), {})[status] = int(n)
        out = []
        for row in _records(frame):
            out.append({**{k: row[k] for k in ("week", "state", "run_id", "opened_at",
                                               "closed_at", "actor")},
                        "centre": _scope_out(row["centre"]),
                        "tasks": per.get((row["week"], row["centre"]), {})})
        return out

    @v1.get("/tasks", response_model=TasksOut, responses=_errors(401, 403, 422),
            tags=["cycle"])
    def list_tasks(who: Annotated[Principal, Depends(allowed("task:read"))],
                   week: WeekQuery = None,
                   status: Annotated[TASK_STATUS | None, Query()] = None,
                   provider: CentreQuery = None,
                   limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
                   offset: Annotated[int, Query(ge=0)] = 0) -> Any:
        """任务列表 / tasks, ordered by id: a provider sees only its own, a coordinator those
        of their subtree's households."""
        if who.role == "provider":
            if provider and provider != who.provider_id:
                raise _forbidden("服务方只能查看本方任务", "a provider may see only its own tasks")
            provider = who.provider_id
        frame = cycle.tasks(service.register(), week, provider=provider, status=status)
        inside = service.coordinator_stations(who)
        if inside is not None:
            frame = frame[frame["station_id"].isin(inside)]
        part = frame.iloc[offset:offset + limit]
        return {"total_rows": len(frame), "offset": offset, "tasks": _records(part)}

    @v1.get("/tasks/{task_id}", response_model=TaskOut, responses=_errors(401, 403, 404, 422),
            tags=["cycle"])
    def get_task(task_id: TaskId,
                 who: Annotated[Principal, Depends(allowed("task:read"))]) -> Any:
        """一项任务 / one task (a provider: its own; a coordinator: their subtree's)."""
        return service.task_for(who, task_id)

    @post("/tasks/{task_id}/answer", response_model=TaskAnsweredOut,
             responses=_errors(400, 401, 403, 404, 409, 422), tags=["cycle"])
    def answer_task(task_id: TaskId, body: AnswerIn,
                    who: Annotated[Principal, Depends(allowed("task:answer"))]) -> Any:
        """回复任务 / answer a task — accepted, declined (with a reason), delivered (in full, or
        the units delivered) or not delivered; on a monitoring visit, also what the visit
        observed (`indicators`, `new_needs`, `note`): the household is re-assessed and the needs
        found are raised. The same answer twice changes nothing; 422 lists every problem (a
        status that cannot follow, a date outside the week, a closed week, …)."""
        task = service.task_for(who, task_id)
        answer = cycle.Answer(
            task_id=task["task_id"], status=body.status,
            units_delivered="" if body.units_delivered is None else repr(body.units_delivered),
            answered_on=body.answered_on or "", reason=body.reason or "",
            indicators={k: str(v) for k, v in (body.indicators or {}).items()},
            new_needs=body.new_needs or "", note=body.note or "", source="request")
        try:
            report = cycle.record_answers(
                service.register(who), [answer],
                provider=who.provider_id if who.role == "provider" else None,
                centres=service.coordinator_stations(who))
        except ValidationError as err:
            return _scenario_refused(err, "回复未记录", "the answer was not recorded")
        except (RegisterError, cycle.CycleError) as err:
            zh, _, en = str(err).partition(" / ")
            raise ApiError(409, "conflict", zh, en or zh) from None
        log.info("task %s answered %s by a %s", task_id, body.status, who.role)
        return {**service.task_row(task_id),
                "recorded": {"changed": report.changed, "unchanged": report.unchanged,
                             "visits": report.visits, "needs_raised": report.needs_raised}}

    @v1.get("/funds/ledger", response_model=LedgerOut, responses=_errors(401, 403, 422),
            tags=["cycle", "budgets"])
    def ledger(who: Annotated[Principal, Depends(allowed("ledger:read"))],
               first: WeekQuery = None, last: WeekQuery = None) -> Any:
        """资金台账 / the fund ledger: planned, committed and spent per fund × street × week,
        and each fund's balance in its period at the last week. A coordinator: the streets of
        their subtree, and the balances of the funds those streets used."""
        if first or last:  # the same check as the performance's range of weeks
            _, _, refused = _week_range(f"{first or ''}:{last or ''}", "first:last")
            if refused is not None:
                return refused
        by_week, balances = cycle.fund_ledger(service.register(), first, last)
        inside = service.coordinator_stations(who)
        if inside is not None:
            by_week = by_week[by_week["street_id"].isin(inside)]
            if len(balances):
                balances = balances[balances["fund_id"].isin(set(by_week["fund_id"]))]
        return {"first": first, "last": last,
                "by_week": _records(by_week[list(LedgerRow.model_fields)]),
                "balances": _records(balances[list(BalanceRow.model_fields)])
                if len(balances) else []}

    @v1.get("/events", response_model=EventsOut, responses=_errors(401, 403, 422),
            tags=["register"])
    def list_events(who: Annotated[Principal, Depends(allowed("event:list"))],
                    subject: Annotated[str | None, Query(
                        min_length=1, max_length=200,
                        description="e.g. `households:H0000005`, `tasks:T…`, `weeks:2026-W49:*`"),
                        NoControl] = None,
                    kind: Annotated[str | None, Query(min_length=1, max_length=32,
                                                      description="e.g. `task.answer`"),
                                    NoControl] = None,
                    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
                    offset: Annotated[int, Query(ge=0)] = 0) -> Any:
        """审计记录 / the audit trail, oldest first: who changed what, when, through what, and
        the row before and after."""
        frame = service.register().events(subject, kind)
        part = _records(frame.iloc[offset:offset + limit])
        for row in part:
            for key in ("before", "after"):
                row[key] = None if row[key] is None else json.loads(row[key])
        return {"total_rows": len(frame), "offset": offset, "events": part}

    # -- early warning ------------------------------------------------------------------------

    AlertId = Annotated[str, PathParam(min_length=1, max_length=200,
                                       description="e.g. `unmet:household:H0000005`"),
                        NoControl]

    def _evaluation_out(result: alerts.Evaluation) -> dict:
        return {"week": result.week or None, "opened": result.opened,
                "updated": result.updated, "resolved": result.resolved,
                "findings": result.findings}

    @v1.get("/alerts", response_model=AlertsOut, responses=_errors(401, 403, 422),
            tags=["alerts"])
    def list_alerts(who: Annotated[Principal, Depends(allowed("alert:list"))],
                    state: Annotated[ALERT_STATE | None, Query(
                        description="default: open and acknowledged")] = None,
                    rule: Annotated[ALERT_RULE | None, Query()] = None,
                    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
                    offset: Annotated[int, Query(ge=0)] = 0) -> Any:
        """预警列表 / the alerts, most severe and oldest first: a coordinator sees those of
        their subtree's centres, a fund manager the fund alerts, a provider those about
        itself."""
        rules = None if rule is None else [rule]
        if who.role == "fund_manager":
            rules = sorted(FUND_RULES if rules is None else FUND_RULES & set(rules))
        frame = alerts.alerts(service.register(), centres=service.coordinator_stations(who),
                              rules=rules, states=(state,) if state else ("open",
                                                                          "acknowledged"))
        if who.role == "provider":
            frame = frame[(frame["subject_kind"] == "provider")
                          & (frame["subject_id"] == who.provider_id)]
        part = frame.iloc[offset:offset + limit]
        return {"total_rows": len(frame), "offset": offset,
                "alerts": [service.alert_out(r) for r in part.to_dict("records")]}

    @post("/alerts/evaluate", response_model=EvaluationOut,
             responses=_errors(401, 403, 422), tags=["alerts"])
    def evaluate_alerts(who: Annotated[Principal, Depends(allowed("alert:evaluate"))],
                        week: Annotated[str | None, Query(
                            pattern=WEEK_PATTERN,
                            description="default: the latest week opened")] = None) -> Any:
        """评估预警 / check every rule of the policy at a week: new conditions open alerts
        (pushed to their webhooks), alerts still found are updated, cleared ones resolve.
        The week lies from the latest week evaluated to the latest week opened (422
        otherwise): the evaluation is the whole network's, the same whoever asks."""
        if week is not None and (bad := _week_problem(week)) is not None:
            return bad
        try:
            return _evaluation_out(service.evaluate_alerts(who, week))
        except alerts.WeekNotEvaluable as err:
            return _problems_response([_problem(
                "week", err.week, "week_not_evaluable", err.message_zh, err.message_en,
                err.hint_zh, err.hint_en)], "预警未评估", "the alerts were not evaluated")

    @post("/alerts/{alert_id}/acknowledge", response_model=AlertOut,
             responses=_errors(400, 401, 403, 404, 409, 422), tags=["alerts"])
    def acknowledge_alert(alert_id: AlertId, body: AcknowledgeIn,
                          who: Annotated[Principal, Depends(allowed("alert:acknowledge"))]
                          ) -> Any:
        """确认预警 / acknowledge an alert (who, when, a note); it stays until its condition
        clears. 409 when it has already resolved."""
        row = service.alert_row(alert_id)
        if not service.alert_visible(who, row):
            raise _forbidden("该预警不在本令牌的范围内",
                             "the alert is outside this token's fence")
        if row["state"] == "resolved":
            raise ApiError(409, "resolved", "预警已解除", "the alert is already resolved")
        try:
            alerts.acknowledge(service.register(who), alert_id, body.note)
        except alerts.AlertError as err:  # resolved or gone meanwhile
            zh, _, en = str(err).partition(" / ")
            raise ApiError(409, "resolved", zh, en or zh) from None
        log.info("alert acknowledged by a %s", who.role)
        return service.alert_out(service.alert_row(alert_id))

    # -- service performance ------------------------------------------------------------------

    performance_content = {"application/json": {}, MEDIA["xlsx"]: {
        "schema": {"type": "string", "format": "binary"}}}

    @v1.get("/performance", response_model=dict[str, PerformanceTableOut],
            responses={200: {"content": performance_content,
                             "description": "the tables as JSON (`{name: {columns, total_rows, "
                                            "rows}}`) or the bilingual report workbook"},
                       **_errors(401, 403, 422)}, tags=["alerts"])
    def performance_tables(
            who: Annotated[Principal, Depends(allowed("performance:read"))],
            by: Annotated[GROUPING, Query(description="the first table's grouping")]
            = "provider",
            weeks: Annotated[str | None, Query(
                max_length=40, description="`2027-W01:2027-W13`; either side may be left out")]
            = None,
            format: Annotated[Literal["json", "xlsx"], Query()] = "json") -> Any:
        """服务绩效 / service performance over a range of weeks: per provider, linkage, fund,
        street or colour (`by_…`), the fill rate and the monitoring visits per week and
        colour, and the reach per ¥10,000. A coordinator: their subtree's stations."""
        first, last, refused = _week_range(weeks, "weeks")
        if refused is not None:
            return refused
        inside = service.coordinator_stations(who)
        tables = performance.performance(service.register(), by, first, last,
                                         None if inside is None else set(inside))
        if format == "xlsx":
            import tempfile

            scope = f"{who.centre} " if inside is not None else ""
            title = f"{scope}{first or '…'} – {last or '…'}, by {by}"
            with tempfile.TemporaryDirectory(prefix="wulian-perf-") as tmp:
                data = performance.report(tables, Path(tmp) / "performance.xlsx",
                                          title).read_bytes()
            name = f"performance-{by}-{first or 'start'}-{last or 'end'}.xlsx"
            return Response(data, media_type=MEDIA["xlsx"],
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return {name: {"columns": [str(c) for c in frame.columns], "total_rows": len(frame),
                       "rows": _records(frame)} for name, frame in tables.items()}

    # -- webhooks -----------------------------------------------------------------------------

    def _webhook_rows(who: Principal) -> list[dict]:
        frame = notify.list_webhooks(service.register())
        inside = service.coordinator_stations(who)
        if inside is not None:
            frame = frame[(frame["target_kind"] == "centre") & frame["target_id"].isin(inside)]
        return _records(frame)

    @post("/webhooks", response_model=WebhookOut, status_code=201,
             responses=_errors(400, 401, 403, 422), tags=["webhooks"])
    def add_webhook(body: WebhookIn,
                    who: Annotated[Principal, Depends(allowed("webhook:manage"))]) -> Any:
        """新增推送地址 / add a webhook for a centre or a provider: alerts opened in the
        centre's subtree (or about the provider) and the tasks sent are POSTed to it, signed
        with the secret. A coordinator: centres of their subtree only."""
        service.webhook_fence(who, body.target_kind, body.target_id)
        try:
            row = notify.add_webhook(service.register(who), body.target_kind, body.target_id,
                                     body.url, body.secret)
        except notify.NotifyError as err:
            zh, _, en = str(err).partition(" / ")
            column = "url" if "URL" in en else "target_id"
            return _problems_response([_problem(
                column, getattr(body, column), "bad_webhook", zh, en or zh,
                "见 docs/alerts.md", "see docs/alerts.md")], "推送地址未添加",
                "the webhook was not added")
        log.info("webhook %s added for a %s by a %s", row["webhook_id"], body.target_kind,
                 who.role)
        return next(r for r in _webhook_rows(who) if r["webhook_id"] == row["webhook_id"])

    @v1.get("/webhooks", response_model=list[WebhookOut], responses=authed, tags=["webhooks"])
    def list_webhooks(who: Annotated[Principal, Depends(allowed("webhook:manage"))]) -> Any:
        """推送地址列表 / the active webhooks (never their secrets) with their deliveries; a
        coordinator: those of their subtree's centres."""
        return _webhook_rows(who)

    @v1.delete("/webhooks/{webhook_id}", status_code=204, response_class=Response,
               responses=_errors(401, 403, 404, 422), tags=["webhooks"])
    def remove_webhook(webhook_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
                       who: Annotated[Principal, Depends(allowed("webhook:manage"))]
                       ) -> Response:
        """删除推送地址 / remove a webhook (its deliveries are kept)."""
        row = notify.webhook(service.register(), webhook_id)
        if row is None:
            raise _not_found(f"推送地址 {webhook_id}", f"webhook {webhook_id}")
        service.webhook_fence(who, row["target_kind"], row["target_id"])
        notify.remove(service.register(who), webhook_id)
        log.info("webhook %s removed by a %s", webhook_id, who.role)
        return Response(status_code=204)

    # -- tokens -------------------------------------------------------------------------------

    @post("/tokens", response_model=TokenCreated, status_code=201,
             responses=_errors(400, 401, 403, 422), tags=["tokens"])
    def create_token(body: TokenIn,
                     who: Annotated[Principal, Depends(allowed("token:manage"))]) -> Any:
        """新建令牌 / make a token; its secret is shown once."""
        try:
            row, secret = service.tokens.create(body.role, body.centre, body.label,
                                                provider=body.provider)
        except TokenError as err:
            value = getattr(body, err.field, "")
            return _problems_response([_problem(
                err.field, value or "", "bad_token_request", err.zh, err.en,
                "协调员令牌给出 centre,服务方令牌给出 provider,其他角色两者都不给(见 docs/api.md)",
                "a coordinator's token takes centre, a provider's token provider, other roles "
                "neither (see docs/api.md)")], "令牌未创建", "no token was made")
        log.info("token %s made for a %s", row["token_id"], row["role"])
        return {**row, "secret": secret}

    @v1.get("/tokens", response_model=list[TokenOut], responses=authed, tags=["tokens"])
    def list_tokens(who: Annotated[Principal, Depends(allowed("token:manage"))]) -> Any:
        """令牌列表 / every token (never a secret)."""
        return service.tokens.list()

    @v1.delete("/tokens/{token_id}", status_code=204, response_class=Response,
               responses=_errors(401, 403, 404, 422), tags=["tokens"])
    def revoke_token(token_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
                     who: Annotated[Principal, Depends(allowed("token:manage"))]) -> Response:
        """撤销令牌 / revoke a token."""
        if not service.tokens.revoke(token_id):
            raise _not_found(f"令牌 {token_id}", f"token {token_id}")
        return Response(status_code=204)

    app.include_router(v1)
    return app


__all__ = ["create_app", "ROLES", "JOB_STATES"]
