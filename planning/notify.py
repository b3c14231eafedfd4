"""Notifications out (推送通知): webhooks of centres and providers, and what was sent to them.

A **webhook** belongs to a centre or a provider (``target_kind`` ``centre`` | ``provider``,
``target_id``) and names a URL and a shared secret. :func:`push` sends one event to every active
webhook of the targets given: a JSON body, signed with the webhook's secret (HMAC-SHA256 of the
body's bytes, hex, in ``X-Wulian-Signature: sha256=<hex>``), with ``X-Wulian-Event``,
``X-Wulian-Delivery`` (the delivery's id) and ``X-Wulian-Timestamp`` (Unix seconds of the
attempt). A 2xx answer is success; a connection error, a timeout, a 5xx, 408 or 429 is tried
again after an exponential backoff (by default 4 attempts, waiting 0.2 s, 0.4 s, 0.8 s); any
other answer (a 404, a 401, a 3xx …) ends the delivery at once. Every delivery is kept in the
``deliveries`` table: its webhook, event, subject, attempts, the last HTTP status, whether it
succeeded and the last error.

What is pushed:

- :func:`push_alerts` — alerts newly opened by :func:`wulian.planning.alerts.evaluate`: to the
  webhooks of the alert's centre and of every centre above it, and for an alert about a
  provider to that provider's webhooks (event ``alert.opened``);
- :func:`publish_tasks` — a week's tasks once sent: each provider's webhooks get its tasks of
  the week (event ``tasks.published``), each centre's webhooks the number of tasks sent in its
  subtree (event ``tasks.summary``).

Payloads carry pseudonymous ids only (households, needs, volunteers, stations by their ids),
never a name or a coordinate. :class:`Notifier` runs pushes in a background thread so that a
request does not wait for them; ``wait()`` blocks until the queue is drained. docs/alerts.md
describes the format and how to verify a signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pandas as pd
import sqlalchemy as sa

from wulian.planning.cycle import TASKS, WHOLE, tasks_frame
from wulian.planning.register import Events, Register

log = logging.getLogger("wulian.notify")

TARGET_KINDS = ("centre", "provider")
SIGNATURE_HEADER = "X-Wulian-Signature"
EVENT_HEADER = "X-Wulian-Event"
DELIVERY_HEADER = "X-Wulian-Delivery"
TIMESTAMP_HEADER = "X-Wulian-Timestamp"
# What a provider is told of each of its tasks: ids and quantities, no name, no coordinate.
TASK_FIELDS = ("task_id", "week", "kind", "need_id", "household_id", "service_id", "offer_id",
               "volunteer_id", "fund_id", "station_id", "street_id", "tier", "slot", "units",
               "hours", "cost", "status")
ALERT_FIELDS = ("alert_id", "rule", "severity", "centre", "subject_kind", "subject_id",
                "since", "last_week", "state")

_meta = sa.MetaData()
WEBHOOKS = sa.Table(
    "webhooks", _meta,
    sa.Column("webhook_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target_kind", sa.String(16), nullable=False),
    sa.Column("target_id", sa.String(64), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)
DELIVERIES = sa.Table(
    "deliveries", _meta,
    sa.Column("delivery_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("webhook_id", sa.Integer, nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("sent_at", sa.String(32), nullable=False),
)
WEBHOOK_COLUMNS = ("webhook_id", "target_kind", "target_id", "url", "active", "created_at")


class NotifyError(ValueError):
    """A webhook that cannot be added or removed as asked (bilingual message)."""


@dataclass(frozen=True)
class Retry:
    """How a delivery is tried: ``attempts`` in all, waiting ``backoff`` seconds after the
    first failure and twice as long after each next one; ``timeout`` seconds per attempt."""

    attempts: int = 4
    backoff: float = 0.2
    timeout: float = 5.0

    def delays(self) -> list[float]:
        return [self.backoff * 2 ** k for k in range(max(self.attempts - 1, 0))]


DEFAULT_RETRY = Retry()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the HMAC-SHA256 of the body, hex."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` (the header's value) is the body's, under ``secret``."""
    return hmac.compare_digest(sign(secret, body), signature or "")


def retried(status: int | None) -> bool:
    """Whether an attempt that got ``status`` (``None``: no answer) is tried again."""
    return status is None or status >= 500 or status in (408, 429)


# -- webhooks --------------------------------------------------------------------------------


def add_webhook(register: Register, kind: str, target_id: str, url: str, secret: str) -> dict:
    """Add an active webhook for a centre or a provider of the register; returns its row
    (without the secret).

    Raises
    ------
    NotifyError
        For an unknown kind, a target the register does not have, a URL that is not http(s)
        or an empty secret.
    """
    if kind not in TARGET_KINDS:
        raise NotifyError(f"未知的对象类型 {kind!r} / unknown target kind {kind!r}: use "
                          f"{' or '.join(TARGET_KINDS)}")
    if not url.startswith(("http://", "https://")):
        raise NotifyError(f"网址须以 http:// 或 https:// 开头 / the URL must start with "
                          f"http:// or https://: {url[:100]!r}")
    if not secret:
        raise NotifyError("需要共享密钥 / a shared secret is required")
    table = "centres" if kind == "centre" else "providers"
    if target_id not in register.rows(table):
        raise NotifyError(f"登记册中没有{'中心' if kind == 'centre' else '服务方'} {target_id} / "
                          f"the register has no {kind} {target_id}")
    row = {"target_kind": kind, "target_id": target_id, "url": url, "secret": secret,
           "active": True, "created_at": _now()}
    with register.engine.begin() as conn:
        webhook_id = int(conn.execute(WEBHOOKS.insert().values(**row)).inserted_primary_key[0])
        events = Events(conn, register.actor)
        events.add("webhook.add", f"webhooks:{webhook_id}", None,
                   {"target_kind": kind, "target_id": target_id, "url": url})
        events.flush()
    return _public({**row, "webhook_id": webhook_id})


def _public(row) -> dict:
    return {k: (bool(row[k]) if k == "active" else row[k]) for k in WEBHOOK_COLUMNS}


def list_webhooks(register: Register, *, active_only: bool = True) -> pd.DataFrame:
    """The webhooks (never their secrets), oldest first, with what was delivered to each:
    ``deliveries``, ``failed`` (not successful, or not yet), ``last_status``,
    ``last_sent_at``."""
    query = sa.select(WEBHOOKS).order_by(WEBHOOKS.c.webhook_id)
    if active_only:
        query = query.where(WEBHOOKS.c.active.is_(True))
    counts = sa.select(
        DELIVERIES.c.webhook_id, sa.func.count().label("deliveries"),
        sa.func.sum(sa.case((DELIVERIES.c.ok.is_(False), 1), else_=0)).label("failed"),
        sa.func.max(DELIVERIES.c.delivery_id).label("last")).group_by(DELIVERIES.c.webhook_id)
    with register.engine.connect() as conn:
        rows = [_public(r) for r in conn.execute(query).mappings()]
        stats = {r.webhook_id: r for r in conn.execute(counts)}
        lasts = {r.delivery_id: r for r in conn.execute(
            sa.select(DELIVERIES.c.delivery_id, DELIVERIES.c.status, DELIVERIES.c.sent_at)
            .where(DELIVERIES.c.delivery_id.in_([s.last for s in stats.values()])))}
    for row in rows:
        found = stats.get(row["webhook_id"])
        last = lasts.get(found.last) if found is not None else None
        row.update(deliveries=int(found.deliveries) if found else 0,
                   failed=int(found.failed or 0) if found else 0,
                   last_status=last.status if last is not None else None,
                   last_sent_at=last.sent_at if last is not None else None)
    columns = [*WEBHOOK_COLUMNS, "deliveries", "failed", "last_status", "last_sent_at"]
    return pd.DataFrame(rows, columns=columns)


def webhook(register: Register, webhook_id: int) -> dict | None:
    """One active webhook's row (without its secret); ``None`` when there is none."""
    with register.engine.connect() as conn:
        row = conn.execute(sa.select(WEBHOOKS).where(
            WEBHOOKS.c.webhook_id == webhook_id, WEBHOOKS.c.active.is_(True))).mappings().first()
    return None if row is None else _public(row)


def remove(register: Register, webhook_id: int) -> bool:
    """Deactivate a webhook (its deliveries are kept); ``False`` when there is no active
    webhook of that id."""
    with register.engine.begin() as conn:
        done = conn.execute(WEBHOOKS.update().where(
            WEBHOOKS.c.webhook_id == webhook_id, WEBHOOKS.c.active.is_(True))
            .values(active=False)).rowcount == 1
        if done:
            events = Events(conn, register.actor)
            events.add("webhook.remove", f"webhooks:{webhook_id}", {"active": True},
                       {"active": False})
            events.flush()
    return done


def deliveries(register: Register, webhook_id: int | None = None) -> pd.DataFrame:
    """The deliveries, oldest first (optionally of one webhook)."""
    query = sa.select(DELIVERIES).order_by(DELIVERIES.c.delivery_id)
    if webhook_id is not None:
        query = query.where(DELIVERIES.c.webhook_id == webhook_id)
    with register.engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(),
                            columns=[c.name for c in DELIVERIES.columns])


# -- sending ---------------------------------------------------------------------------------


def push(register: Register, event: str, payload: dict,
         targets: Iterable[tuple[str, str]], *, subject: str = "",
         retry: Retry = DEFAULT_RETRY, client: httpx.Client | None = None) -> list[dict]:
    """Send ``payload`` as ``event`` to every active webhook of ``targets`` (pairs of kind and
    id; a webhook named twice is sent to once). Each delivery is tried as ``retry`` says and
    kept in ``deliveries``; returns their rows, in webhook order."""
    wanted = {(k, str(t)) for k, t in targets}
    if not wanted:
        return []
    with register.engine.connect() as conn:
        hooks = [dict(r) for r in conn.execute(sa.select(WEBHOOKS).where(
            WEBHOOKS.c.active.is_(True)).order_by(WEBHOOKS.c.webhook_id)).mappings()
            if (r["target_kind"], r["target_id"]) in wanted]
    if not hooks:
        return []
    own = client is None
    client = client or httpx.Client(timeout=retry.timeout, follow_redirects=False)
    try:
        return [deliver(register, hook, event, payload, subject=subject, retry=retry,
                        client=client) for hook in hooks]
    finally:
        if own:
            client.close()


def deliver(register: Register, hook: dict, event: str, payload: dict, *, subject: str = "",
            retry: Retry = DEFAULT_RETRY, client: httpx.Client) -> dict:
    """One delivery to one webhook (its row with the secret), tried as ``retry`` says."""
    with register.engine.begin() as conn:
        delivery_id = int(conn.execute(DELIVERIES.insert().values(
            webhook_id=hook["webhook_id"], event=event, subject=subject[:200], attempts=0,
            status=None, ok=False, error="", sent_at=_now())).inserted_primary_key[0])
    envelope = {"event": event, "delivery_id": delivery_id, "created_at": _now(),
                "target": {"kind": hook["target_kind"], "id": hook["target_id"]},
                "data": payload}
    body = json.dumps(envelope, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"), default=str).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8",
               "User-Agent": "wulian-webhook/1", EVENT_HEADER: event,
               DELIVERY_HEADER: str(delivery_id), SIGNATURE_HEADER: sign(hook["secret"], body)}
    delays = retry.delays()
    status: int | None = None
    error, ok, attempts = "", False, 0
    for attempt in range(retry.attempts):
        attempts = attempt + 1
        try:
            answer = client.post(hook["url"], content=body, timeout=retry.timeout,
                                 headers={**headers, TIMESTAMP_HEADER: str(int(time.time()))})
            status = answer.status_code
            ok = 200 <= status < 300
            error = "" if ok else f"HTTP {status}"
        except httpx.HTTPError as err:
            status, error = None, f"{type(err).__name__}: {err}"[:500]
        _record(register, delivery_id, attempts, status, ok, error)
        if ok or not retried(status) or attempt == retry.attempts - 1:
            break
        time.sleep(delays[attempt])
    log.info("delivery %d (%s) to webhook %d: %s after %d attempt(s)", delivery_id, event,
             hook["webhook_id"], "ok" if ok else error or "failed", attempts)
    return {"delivery_id": delivery_id, "webhook_id": hook["webhook_id"], "event": event,
            "subject": subject[:200], "attempts": attempts, "status": status, "ok": ok,
            "error": error}


def _record(register: Register, delivery_id: int, attempts: int, status: int | None, ok: bool,
            error: str) -> None:
    with register.engine.begin() as conn:
        conn.execute(DELIVERIES.update().where(DELIVERIES.c.delivery_id == delivery_id).values(
            attempts=attempts, status=status, ok=ok, error=error, sent_at=_now()))


# -- what is pushed --------------------------------------------------------------------------


def centre_parents(register: Register) -> dict[str, str]:
    """Centre id → its parent's id ("" at the top), from the register's centres."""
    centres = register.table("centres")
    return {str(c): str(p or "") for c, p in zip(centres["centre_id"], centres["parent_id"],
                                                 strict=True)}


def ancestors(parents: dict[str, str], centre: str) -> list[str]:
    """``centre`` and every centre above it, nearest first."""
    out: list[str] = []
    while centre and centre not in out:
        out.append(centre)
        centre = parents.get(centre, "")
    return out


def push_alerts(register: Register, alert_ids: Iterable[str], *,
                retry: Retry = DEFAULT_RETRY) -> list[dict]:
    """Push alerts (newly opened ones) to the webhooks of their centre and every centre above
    it, and an alert about a provider to that provider's webhooks (event ``alert.opened``)."""
    from wulian.planning.alerts import ALERTS

    ids = list(dict.fromkeys(alert_ids))
    if not ids:
        return []
    with register.engine.connect() as conn:
        rows = [dict(r) for chunk in range(0, len(ids), 1000) for r in conn.execute(
            sa.select(ALERTS).where(ALERTS.c.alert_id.in_(ids[chunk:chunk + 1000])))
            .mappings()]
        if not conn.execute(sa.select(WEBHOOKS.c.webhook_id).where(
                WEBHOOKS.c.active.is_(True)).limit(1)).first():
            return []
    parents = centre_parents(register)
    names = register.policy.alerts
    out: list[dict] = []
    with httpx.Client(timeout=retry.timeout, follow_redirects=False) as client:
        for row in sorted(rows, key=lambda r: ids.index(r["alert_id"])):
            targets = [("centre", c) for c in ancestors(parents, row["centre"])]
            if row["subject_kind"] == "provider":
                targets.append(("provider", row["subject_id"]))
            payload = {**{k: row[k] for k in ALERT_FIELDS},
                       "title_zh": names[row["rule"]]["zh"], "title_en": names[row["rule"]]["en"],
                       "numbers": json.loads(row["numbers"])}
            out += push(register, "alert.opened", payload, targets,
                        subject=f"alerts:{row['alert_id']}", retry=retry, client=client)
    return out


def publish_tasks(register: Register, week: str, centre: str | None = None, *,
                  retry: Retry = DEFAULT_RETRY) -> list[dict]:
    """Push a week's tasks (of the scope it was opened for: ``centre``, or the whole network):
    each provider's webhooks get its tasks (event ``tasks.published``), each centre's webhooks
    the number of tasks sent in its subtree, per kind (event ``tasks.summary``). A webhook that
    already got the same week and scope successfully is not sent it again."""
    scope = centre or WHOLE
    subject = f"tasks:{week}:{scope}"
    with register.engine.connect() as conn:
        frame = tasks_frame(conn, TASKS.c.week == week, TASKS.c.centre == scope)
        hooks = [dict(r) for r in conn.execute(sa.select(WEBHOOKS).where(
            WEBHOOKS.c.active.is_(True)).order_by(WEBHOOKS.c.webhook_id)).mappings()]
        done = set(conn.execute(sa.select(DELIVERIES.c.webhook_id).where(
            DELIVERIES.c.ok.is_(True), DELIVERIES.c.subject == subject)).scalars())
    hooks = [h for h in hooks if h["webhook_id"] not in done]
    if frame.empty or not hooks:
        return []
    frame = frame.sort_values("task_id")
    parents = centre_parents(register)
    paths = frame["station_id"].map(lambda s: set(ancestors(parents, str(s))))
    out: list[dict] = []
    with httpx.Client(timeout=retry.timeout, follow_redirects=False) as client:
        for hook in hooks:
            target = hook["target_id"]
            if hook["target_kind"] == "provider":
                part = frame[frame["provider_id"] == target]
                if part.empty:
                    continue
                event = "tasks.published"
                payload = {"week": week, "scope": scope, "provider_id": target,
                           "tasks": json.loads(part[list(TASK_FIELDS)].to_json(
                               orient="records", force_ascii=False))}
            else:
                inside = paths.map(lambda path, t=target: t in path).to_numpy(bool)
                if not inside.any():
                    continue
                kinds = frame.loc[inside, "kind"].value_counts().sort_index()
                event = "tasks.summary"
                payload = {"week": week, "scope": scope, "centre": target,
                           "tasks": int(inside.sum()),
                           "by_kind": {str(k): int(v) for k, v in kinds.items()}}
            out.append(deliver(register, hook, event, payload, subject=subject, retry=retry,
                               client=client))
    return out


# -- in the background -----------------------------------------------------------------------


class Notifier:
    """Runs pushes one after another in a background thread, so a request does not wait for
    a slow or failing receiver. :meth:`wait` blocks until everything submitted is done."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], object], label: str = "push") -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wulian-notify",
                                                daemon=True)
                self._thread.start()
        self._queue.put((job, label))

    def _run(self) -> None:
        while True:
            job, label = self._queue.get()
            try:
                if job is None:
                    return
                job()
            except Exception:  # noqa: BLE001 - a failed push must not stop the next ones
                log.exception("%s failed", label)
            finally:
                self._queue.task_done()

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until every push submitted so far is done; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what was submitted (up to ``timeout`` seconds) and end the thread."""
        with self._lock:
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put((None, "stop"))
            thread.join(timeout)
