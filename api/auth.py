"""API tokens and roles for the batch service.

A token is a random secret shown once, when it is made; the store keeps only its sha256. Each
token has a role; a coordinator's token names the centre whose subtree it may see, and a
provider's token the provider whose tasks it may see:

============  =========================================================================
role          may
============  =========================================================================
planner       everything except managing tokens
fund_manager  list scenarios, read funds and budgets, use the budget lab, follow jobs and
              read their fund outputs (``money``, ``funds``), read the fund ledger, list weeks;
              list and acknowledge the fund alerts (``fund_runout``, ``fund_underspend``);
              read service performance
coordinator   list scenarios, submit, follow, cancel and read jobs for a centre in their
              subtree, read the households of their subtree; in the register, add and assess
              households, raise and withdraw needs of their subtree; open and close weeks for
              a centre in their subtree; list, read and answer the tasks (and record the
              monitoring visits' results) of their subtree's households; the fund ledger of
              their subtree's streets; list, acknowledge and evaluate alerts (those whose
              centre is in their subtree), read the service performance of their subtree's
              stations, manage the webhooks of their subtree's centres — nothing outside it
provider      list weeks; list, read and answer their own tasks; list the alerts about
              themselves — nothing else
admin         everything, including tokens
============  =========================================================================

The matrix is :data:`PERMISSIONS`; ``docs/api.md`` shows it as a table.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

ROLES = ("planner", "fund_manager", "coordinator", "admin", "provider")
STAFF = ("planner", "fund_manager", "coordinator", "admin")  # every role but the provider
# Each role in words, (中文, English): the app says who is signed in in the chosen language.
ROLE_NAMES: dict[str, tuple[str, str]] = {
    "planner": ("规划人员", "planner"), "fund_manager": ("基金管理人", "fund manager"),
    "coordinator": ("中心协调员", "centre coordinator"), "admin": ("管理员", "administrator"),
    "provider": ("服务方", "provider")}
# Output tables of a quarterly plan that a fund manager may read.
FUND_TABLES = frozenset({"money", "funds"})
# Alert rules a fund manager sees and acknowledges.
FUND_RULES = frozenset({"fund_runout", "fund_underspend"})

# action → roles allowed; a coordinator is allowed only inside their subtree and a provider
# only on their own tasks (checked where the centre or the task is known).
PERMISSIONS: dict[str, frozenset[str]] = {
    "scenario:upload": frozenset({"planner", "admin"}),
    "scenario:list": frozenset(STAFF),
    "scenario:funds": frozenset({"planner", "fund_manager", "admin"}),
    "scenario:households": frozenset({"planner", "coordinator", "admin"}),
    "budget:lab": frozenset({"planner", "fund_manager", "admin"}),
    "job:submit": frozenset({"planner", "coordinator", "admin"}),
    "job:list": frozenset(STAFF),
    "job:status": frozenset(STAFF),
    "job:cancel": frozenset({"planner", "coordinator", "admin"}),
    "job:table": frozenset(STAFF),  # a fund manager: FUND_TABLES only
    "job:explanation": frozenset({"planner", "coordinator", "admin"}),
    # The register (救助对象与资源台账) and the weekly cycle.
    "register:import": frozenset({"planner", "admin"}),
    "register:write": frozenset({"planner", "coordinator", "admin"}),  # households, needs
    "register:read": frozenset({"planner", "coordinator", "admin"}),  # colour history
    "week:list": frozenset(ROLES),
    "week:manage": frozenset({"planner", "coordinator", "admin"}),  # open, close
    "task:read": frozenset({"planner", "coordinator", "admin", "provider"}),
    "task:answer": frozenset({"planner", "coordinator", "admin", "provider"}),
    "ledger:read": frozenset({"planner", "fund_manager", "coordinator", "admin"}),
    "event:list": frozenset({"planner", "admin"}),
    # Early warning, service performance and notifications out.
    "alert:list": frozenset(ROLES),  # a provider: alerts about itself only
    "alert:acknowledge": frozenset(STAFF),  # a fund manager: the fund alerts only
    "alert:evaluate": frozenset({"planner", "coordinator", "admin"}),
    "performance:read": frozenset(STAFF),
    "webhook:manage": frozenset({"planner", "coordinator", "admin"}),
    "token:manage": frozenset({"admin"}),
}

# Each action in words, (中文, English), for a 403: what the role may not do.
ACTION_NAMES: dict[str, tuple[str, str]] = {
    "scenario:upload": ("上传场景", "upload a scenario"),
    "scenario:list": ("查看场景列表", "list the scenarios"),
    "scenario:funds": ("查看基金与预算", "read the funds and budgets"),
    "scenario:households": ("查看场景中的家庭", "read a scenario's households"),
    "budget:lab": ("使用预算实验室", "use the budget lab"),
    "job:submit": ("提交季度规划任务", "submit a quarterly plan"),
    "job:list": ("查看任务列表", "list the jobs"),
    "job:status": ("查看任务状态", "read a job's state"),
    "job:cancel": ("取消任务", "cancel a job"),
    "job:table": ("读取任务结果表", "read a job's output tables"),
    "job:explanation": ("读取计划说明", "read a plan's explanation"),
    "register:import": ("向登记册导入场景", "import a scenario into the register"),
    "register:write": ("登记家庭或需求", "add or assess households, or raise or withdraw needs"),
    "register:read": ("查看家庭的颜色记录", "read a household's colour history"),
    "week:list": ("查看周列表", "list the weeks"),
    "week:manage": ("开启或结束一周", "open or close a week"),
    "task:read": ("查看任务", "read tasks"),
    "task:answer": ("回复任务", "answer tasks"),
    "ledger:read": ("查看资金台账", "read the fund ledger"),
    "event:list": ("查看审计记录", "read the audit trail"),
    "alert:list": ("查看预警", "list alerts"),
    "alert:acknowledge": ("确认预警", "acknowledge alerts"),
    "alert:evaluate": ("评估预警", "evaluate the alerts"),
    "performance:read": ("查看服务绩效", "read the service performance"),
    "webhook:manage": ("管理推送地址", "manage webhooks"),
    "token:manage": ("管理令牌", "manage tokens"),
}

SECRET_PREFIX = "wl_"

_meta = sa.MetaData()
TOKENS = sa.Table(
    "api_tokens", _meta,
    sa.Column("token_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("centre", sa.String(64), nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Column("provider_id", sa.String(64), nullable=False, server_default=""),
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, role, (for a coordinator) centre and (for a provider)
    provider."""

    token_id: int
    role: str
    centre: str = ""
    provider_id: str = ""

    def may(self, action: str) -> bool:
        """Whether the role allows ``action`` at all (a coordinator's fence comes on top)."""
        return self.role in PERMISSIONS[action]


def digest(secret: str) -> str:
    """The sha256 (hex) under which a secret is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokenError(ValueError):
    """A token that cannot be made as asked: the field at fault (``role``, ``centre`` or
    ``provider``: a request's field, the command line's option) and the reason in Chinese and
    English."""

    def __init__(self, field: str, zh: str, en: str):
        super().__init__(f"{zh} / {en}")
        self.field, self.zh, self.en = field, zh, en


class TokenStore:
    """Tokens kept (hashed) in the run store's database."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine  # its table comes with the store's schema (planning/db.py)

    def create(self, role: str, centre: str | None = None, label: str = "",
               provider: str | None = None) -> tuple[dict, str]:
        """Make a token; returns its row and the secret (shown once, never stored).

        Raises
        ------
        TokenError
            For an unknown role, a coordinator without a centre, a provider without a provider
            id, or a centre or provider id on another role.
        """
        if role not in ROLES:
            raise TokenError("role", f"未知角色 {role!r}(可选:{'、'.join(ROLES)})",
                             f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        centre = (centre or "").strip()
        if role == "coordinator" and not centre:
            raise TokenError("centre", "协调员令牌需要中心编号(centre)",
                             "a coordinator's token needs a centre id (centre)")
        if role != "coordinator" and centre:
            raise TokenError("centre",
                             f"只有协调员令牌限定中心({ROLE_NAMES[role][0]}令牌不限定)",
                             f"only a coordinator's token is limited to a centre (not "
                             f"{_article(ROLE_NAMES[role][1])}'s)")
        provider = (provider or "").strip()
        if role == "provider" and not provider:
            raise TokenError("provider", "服务方令牌需要服务方编号(provider)",
                             "a provider's token needs a provider id (provider)")
        if role != "provider" and provider:
            raise TokenError("provider",
                             f"只有服务方令牌限定服务方({ROLE_NAMES[role][0]}令牌不限定)",
                             f"only a provider's token is limited to a provider (not "
                             f"{_article(ROLE_NAMES[role][1])}'s)")
        if len(provider) > 64:
            raise TokenError("provider", "服务方编号超过 64 个字符",
                             "the provider id is longer than 64 characters")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        row = {"secret_sha256": digest(secret), "role": role, "centre": centre,
               "label": label, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
               "revoked": False, "provider_id": provider}
        with self.engine.begin() as conn:
            token_id = conn.execute(TOKENS.insert().values(**row)).inserted_primary_key[0]
        return self._public({**row, "token_id": int(token_id)}), secret

    def verify(self, secret: str) -> Principal | None:
        """The caller a secret belongs to; ``None`` when it is unknown or revoked."""
        if not secret.startswith(SECRET_PREFIX):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(TOKENS).where(
                TOKENS.c.secret_sha256 == digest(secret))).mappings().first()
        if row is None or row["revoked"]:
            return None
        return Principal(token_id=row["token_id"], role=row["role"], centre=row["centre"],
                         provider_id=row["provider_id"] or "")

    def list(self) -> list[dict]:
        """Every token (never its secret or hash), oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(TOKENS).order_by(TOKENS.c.token_id)).mappings()
            return [self._public(dict(r)) for r in rows]

    def revoke(self, token_id: int) -> bool:
        """Revoke a token; ``False`` when there is no such token."""
        with self.engine.begin() as conn:
            return conn.execute(TOKENS.update().where(TOKENS.c.token_id == token_id)
                                .values(revoked=True)).rowcount == 1

    @staticmethod
    def _public(row: dict) -> dict:
        return {"token_id": row["token_id"], "role": row["role"], "centre": row["centre"],
                "provider_id": row.get("provider_id") or "", "label": row["label"],
                "created_at": row["created_at"], "revoked": bool(row["revoked"])}


def _article(noun: str) -> str:
    """``noun`` with its English indefinite article (an administrator, a planner)."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun
