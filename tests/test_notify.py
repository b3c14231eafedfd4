"""Webhooks (planning/notify.py) against a local receiver: an ``http.server`` on 127.0.0.1 in a
thread, answering each path with a scripted series of statuses and recording what it got.

The register is the tiny preset imported into a SQLite store, with 2026-W49 opened (its tasks
are what :func:`publish_tasks` sends). Each test starts with no webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from tests.conftest import free_port
from wulian.planning import notify
from wulian.planning.alerts import ALERTS
from wulian.planning.cycle import open_week, tasks
from wulian.planning.generate import generate_scenario
from wulian.planning.register import Actor, Register
from wulian.planning.scenario import Scenario
from wulian.planning.store import RunStore

WEEK = "2026-W49"
SECRET = "s3cret-shared-with-the-receiver"
FAST = notify.Retry(attempts=4, backoff=0.01, timeout=5.0)


class Receiver:
    """A local HTTP server: each path answers its scripted statuses in turn (the last one
    again and again) and every request is kept (path, headers, body, time)."""

    def __init__(self) -> None:
        self.script: dict[str, list[int]] = {}
        self.got: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.got.append({"path": self.path, "headers": dict(self.headers),
                                         "body": body, "at": time.monotonic()})
                    statuses = receiver.script.get(self.path, [200])
                    status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 5
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={
            "poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def at(self, path: str) -> list[dict]:
        with self.lock:
            return [g for g in self.got if g["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture(scope="module")
def register(tmp_path_factory):
    root = tmp_path_factory.mktemp("notify")
    store = RunStore(f"sqlite:///{root / 'store.sqlite'}")
    register = Register(store, Actor("t", "simulator"))
    register.import_scenario(Scenario.from_tables(generate_scenario("tiny", 0)))
    open_week(register, WEEK)
    yield register
    store.engine.dispose()


@pytest.fixture
def receiver():
    found = Receiver()
    yield found
    found.close()


@pytest.fixture(autouse=True)
def no_webhooks(register):
    """Every test starts and ends without an active webhook."""
    yield
    for webhook_id in notify.list_webhooks(register)["webhook_id"]:
        notify.remove(register, int(webhook_id))


def _stored(register: Register, delivery_id: int) -> dict:
    frame = notify.deliveries(register)
    return frame.set_index("delivery_id").loc[delivery_id].to_dict()


# -- one delivery ----------------------------------------------------------------------------


def test_a_delivery_is_signed_with_the_shared_secret(register, receiver):
    """The receiver checks the HMAC-SHA256 of the raw body with the secret; the headers name
    the event, the delivery (the id kept in `deliveries`) and the time."""
    hook = notify.add_webhook(register, "centre", "D04S01", receiver.url + "/s", SECRET)
    assert "secret" not in hook and hook["active"] is True
    sent = notify.push(register, "test.event", {"household_id": "H0000001", "n": 1},
                       [("centre", "D04S01")])
    assert [(d["ok"], d["attempts"], d["status"]) for d in sent] == [(True, 1, 200)]
    [got] = receiver.at("/s")
    body, headers = got["body"], got["headers"]
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Wulian-Signature"] == f"sha256={expected}"
    assert notify.verify(SECRET, body, headers["X-Wulian-Signature"])
    assert not notify.verify("another secret", body, headers["X-Wulian-Signature"])
    assert not notify.verify(SECRET, body.replace(b'"n":1', b'"n":2'),
                             headers["X-Wulian-Signature"])
    assert headers["X-Wulian-Event"] == "test.event"
    assert headers["X-Wulian-Delivery"] == str(sent[0]["delivery_id"])
    assert abs(int(headers["X-Wulian-Timestamp"]) - time.time()) < 60
    envelope = json.loads(body)
    assert envelope["event"] == "test.event"
    assert envelope["delivery_id"] == sent[0]["delivery_id"]
    assert envelope["target"] == {"kind": "centre", "id": "D04S01"}
    assert envelope["data"] == {"household_id": "H0000001", "n": 1}
    created = datetime.fromisoformat(envelope["created_at"])
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60
    row = _stored(register, sent[0]["delivery_id"])
    assert (row["webhook_id"], row["event"], row["attempts"], row["status"], bool(row["ok"]),
            row["error"]) == (hook["webhook_id"], "test.event", 1, 200, True, "")


def test_a_receiver_that_fails_twice_gets_the_delivery_on_the_third_attempt(register,
                                                                            receiver):
    """500, 500, then 200: three attempts of the same signed body, the waits doubling from
    0.2 s; `deliveries` records 3 attempts and success."""
    receiver.script["/flaky"] = [500, 500, 200]
    notify.add_webhook(register, "centre", "D04S01", receiver.url + "/flaky", SECRET)
    [sent] = notify.push(register, "test.event", {"n": 2}, [("centre", "D04S01")])
    assert (sent["ok"], sent["attempts"], sent["status"]) == (True, 3, 200)
    row = _stored(register, sent["delivery_id"])
    assert (row["attempts"], row["status"], bool(row["ok"]), row["error"]) == (3, 200, True, "")
    got = receiver.at("/flaky")
    assert len(got) == 3
    assert len({g["body"] for g in got}) == 1
    assert {g["headers"]["X-Wulian-Delivery"] for g in got} == {str(sent["delivery_id"])}
    gaps = [b["at"] - a["at"] for a, b in zip(got, got[1:], strict=False)]
    assert gaps[0] >= 0.19 and gaps[1] >= 0.39, gaps


def test_a_receiver_that_always_fails_ends_not_ok_after_the_last_attempt(register, receiver):
    receiver.script["/down"] = [503]
    notify.add_webhook(register, "centre", "D04S01", receiver.url + "/down", SECRET)
    [sent] = notify.push(register, "test.event", {"n": 3}, [("centre", "D04S01")], retry=FAST)
    assert (sent["ok"], sent["attempts"], sent["status"]) == (False, 4, 503)
    row = _stored(register, sent["delivery_id"])
    assert (row["attempts"], row["status"], bool(row["ok"]), row["error"]) == (
        4, 503, False, "HTTP 503")
    assert len(receiver.at("/down")) == 4


@pytest.mark.parametrize(("script", "attempts", "ok"), [
    ([404], 1, False), ([401], 1, False), ([408, 200], 2, True), ([429, 429, 200], 3, True)],
    ids=["404", "401", "408", "429"])
def test_client_errors_are_not_retried_but_408_and_429_are(register, receiver, script,
                                                           attempts, ok):
    receiver.script["/c"] = list(script)
    notify.add_webhook(register, "centre", "D04S01", receiver.url + "/c", SECRET)
    [sent] = notify.push(register, "test.event", {}, [("centre", "D04S01")], retry=FAST)
    assert (sent["attempts"], sent["ok"]) == (attempts, ok)
    assert len(receiver.at("/c")) == attempts
    assert _stored(register, sent["delivery_id"])["attempts"] == attempts


def test_no_receiver_at_all_is_retried_then_recorded_as_failed(register):
    url = f"http://127.0.0.1:{free_port()}/nobody"
    notify.add_webhook(register, "centre", "D04S01", url, SECRET)
    [sent] = notify.push(register, "test.event", {}, [("centre", "D04S01")], retry=FAST)
    assert (sent["ok"], sent["attempts"], sent["status"]) == (False, 4, None)
    row = _stored(register, sent["delivery_id"])
    assert not row["ok"] and row["attempts"] == 4 and "Connect" in row["error"]


# -- webhooks --------------------------------------------------------------------------------


def test_webhooks_are_checked_listed_without_secrets_and_removed(register, receiver):
    with pytest.raises(notify.NotifyError, match="no centre"):
        notify.add_webhook(register, "centre", "NOWHERE", receiver.url, SECRET)
    with pytest.raises(notify.NotifyError, match="no provider"):
        notify.add_webhook(register, "provider", "NOBODY", receiver.url, SECRET)
    with pytest.raises(notify.NotifyError, match="http"):
        notify.add_webhook(register, "centre", "D04S01", "ftp://x", SECRET)
    with pytest.raises(notify.NotifyError, match="kind"):
        notify.add_webhook(register, "street", "D04S01", receiver.url, SECRET)
    kept = notify.add_webhook(register, "centre", "D04S01", receiver.url + "/kept", SECRET)
    gone = notify.add_webhook(register, "centre", "D04S01", receiver.url + "/gone", SECRET)
    listed = notify.list_webhooks(register)
    assert list(listed["webhook_id"]) == [kept["webhook_id"], gone["webhook_id"]]
    assert "secret" not in listed.columns and SECRET not in listed.to_json()
    assert notify.remove(register, gone["webhook_id"])
    assert not notify.remove(register, gone["webhook_id"])
    assert notify.webhook(register, gone["webhook_id"]) is None
    notify.push(register, "test.event", {}, [("centre", "D04S01")])
    assert len(receiver.at("/kept")) == 1 and receiver.at("/gone") == []
    listed = notify.list_webhooks(register).set_index("webhook_id")
    assert list(listed.index) == [kept["webhook_id"]]
    assert (listed.loc[kept["webhook_id"], "deliveries"],
            listed.loc[kept["webhook_id"], "last_status"]) == (1, 200)
    events = register.events(kind="webhook.add")
    assert len(events) and all(SECRET not in (e or "") for e in events["after"])


# -- what is pushed --------------------------------------------------------------------------


def _alert(register: Register, alert_id: str, centre: str, kind: str, subject: str) -> None:
    row = {"alert_id": alert_id, "rule": alert_id.split(":")[0], "severity": "high",
           "centre": centre, "subject_kind": kind, "subject_id": subject, "since": WEEK,
           "last_week": WEEK, "numbers": json.dumps({"weeks": 2}), "state": "open",
           "ack_by": "", "ack_at": "", "ack_note": "", "resolved_at": "", "updated_at": ""}
    with register.engine.begin() as conn:
        conn.execute(ALERTS.delete().where(ALERTS.c.alert_id == alert_id))
        conn.execute(ALERTS.insert().values(**row))


def test_an_alert_goes_to_its_centre_every_centre_above_and_its_provider(register, receiver):
    """A station's alert reaches the station's street, district and city webhooks, not the
    other street's; a provider's alert reaches the provider and its centre's ancestors."""
    provider = register.table("providers").iloc[0]
    for centre in ("C0", "D04", "D04S01", "D04S02", "D04S01T001"):
        notify.add_webhook(register, "centre", centre, f"{receiver.url}/{centre}", SECRET)
    notify.add_webhook(register, "provider", provider["provider_id"], receiver.url + "/p",
                       SECRET)
    _alert(register, "unmet:household:H0000001", "D04S01T001", "household", "H0000001")
    _alert(register, f"provider_declines:provider:{provider['provider_id']}", "D04",
           "provider", provider["provider_id"])
    sent = notify.push_alerts(register, ["unmet:household:H0000001",
                                         f"provider_declines:provider:{provider['provider_id']}"])
    assert all(d["ok"] for d in sent)

    def alerts_at(path: str) -> list[str]:
        return [json.loads(g["body"])["data"]["alert_id"] for g in receiver.at(path)]

    both = ["unmet:household:H0000001", f"provider_declines:provider:{provider['provider_id']}"]
    assert alerts_at("/C0") == both and alerts_at("/D04") == both
    assert alerts_at("/D04S01") == alerts_at("/D04S01T001") == both[:1]
    assert alerts_at("/D04S02") == []
    assert alerts_at("/p") == both[1:]
    data = json.loads(receiver.at("/D04S01")[0]["body"])["data"]
    assert data["rule"] == "unmet" and data["numbers"] == {"weeks": 2}
    assert data["title_en"] == register.policy.alerts["unmet"]["en"]
    assert {json.loads(g["body"])["event"] for g in receiver.got} == {"alert.opened"}


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_published_tasks_go_to_their_provider_and_counts_to_the_centres(register, receiver):
    """Each provider's webhook gets exactly its tasks of the week (ids and numbers, no name or
    coordinate); a centre's webhook gets the count of tasks in its subtree; publishing again
    sends nothing twice."""
    week = tasks(register, WEEK)
    provider = week["provider_id"].value_counts().index[0]
    notify.add_webhook(register, "provider", provider, receiver.url + "/provider", SECRET)
    for centre in ("C0", "D04S01"):
        notify.add_webhook(register, "centre", centre, f"{receiver.url}/{centre}", SECRET)
    sent = notify.publish_tasks(register, WEEK)
    assert len(sent) == 3 and all(d["ok"] for d in sent)
    [got] = receiver.at("/provider")
    envelope = json.loads(got["body"])
    assert envelope["event"] == "tasks.published" and got["headers"]["X-Wulian-Event"] == \
        "tasks.published"
    data = envelope["data"]
    assert data["week"] == WEEK and data["provider_id"] == provider
    assert [t["task_id"] for t in data["tasks"]] == list(
        week.loc[week["provider_id"] == provider, "task_id"])
    assert not _keys(data) & {"name", "lat", "lon", "address", "phone"}
    assert set(data["tasks"][0]) == set(notify.TASK_FIELDS)
    summary = {path: json.loads(receiver.at(path)[0]["body"])["data"]
               for path in ("/C0", "/D04S01")}
    assert summary["/C0"]["tasks"] == len(week)
    assert summary["/D04S01"]["tasks"] == int((week["street_id"] == "D04S01").sum()) > 0
    assert sum(summary["/D04S01"]["by_kind"].values()) == summary["/D04S01"]["tasks"]
    assert notify.publish_tasks(register, WEEK) == []
    assert len(receiver.got) == 3


def test_the_notifier_runs_pushes_in_the_background_and_can_be_waited_for():
    notifier = notify.Notifier()
    done: list[int] = []

    def slow(n: int) -> None:
        time.sleep(0.2)
        done.append(n)

    notifier.submit(lambda: slow(1))
    notifier.submit(lambda: 1 / 0)  # a failing push does not stop the next
    notifier.submit(lambda: slow(2))
    assert done == []  # submit returned at once
    assert notifier.wait(10)
    assert done == [1, 2]
    notifier.stop()


def test_the_stored_tables_match_the_migration(register):
    """notify's tables are the ones migration 0003 made (same columns)."""
    inspector = sa.inspect(register.engine)
    for table in (notify.WEBHOOKS, notify.DELIVERIES):
        stored = {c["name"] for c in inspector.get_columns(table.name)}
        assert stored == {c.name for c in table.columns}
