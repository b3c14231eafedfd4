"""The app behind sign-in (issue 17, finding 1), through ``streamlit.testing.v1.AppTest``: no
page runs before a token of the service is given; the role decides the pages; a coordinator's
centre pickers are held to their subtree. The browser test is in tests/test_ui_browser.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import signed_in
from wulian.api.auth import TokenStore
from wulian.planning import alerts, cycle
from wulian.planning.generate import generate_scenario
from wulian.planning.register import Actor, Register
from wulian.planning.scenario import Scenario
from wulian.planning.simulate import simulate
from wulian.planning.store import RunStore

APP = Path(__file__).resolve().parent.parent / "ui" / "app.py"
TIMEOUT = 120
OWN, OTHER = "D04S01", "D04S02"  # two streets of the tiny preset


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("register") / "played.sqlite"
    register = Register(RunStore(f"sqlite:///{path}"), Actor("t", "simulator"))
    register.import_scenario(Scenario.from_tables(generate_scenario("tiny", 0)))
    weeks = simulate(register, 2, seed=0)
    alerts.evaluate(register)
    cycle.open_week(register, cycle.next_week(weeks[-1].week))
    register.engine.dispose()
    return path


@pytest.fixture
def register(played, tmp_path, monkeypatch) -> Register:
    path = tmp_path / "register.sqlite"
    shutil.copy(played, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("WULIAN_STORE", url)
    return Register(RunStore(url), Actor("test", "cli"))


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def household_ids(register: Register, street: str) -> set[str]:
    households = register.table("households")
    return set(households.loc[households["station_id"].str.startswith(street), "household_id"])


def page_text(at: AppTest) -> str:
    shown = [str(e.value) for e in (*at.markdown, *at.caption, *at.info, *at.error)]
    shown += [d.value.to_csv() for d in at.dataframe]
    return "\n".join(shown)


def test_no_page_runs_before_sign_in_and_a_bad_token_is_refused(register):
    at = ok(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    assert at.title[0].value.startswith("五联 · 登录")
    assert len(at.dataframe) == 0 and len(at.selectbox) == 0
    text = page_text(at)
    assert not any(h in text for h in household_ids(register, "D04"))
    at.text_input(key="signin_token").input("wl_forged")
    ok(at.button[0].click().run())
    assert any("令牌无效" in e.value for e in at.error)
    assert len(at.dataframe) == 0


def test_a_token_of_the_service_signs_in(register):
    secret = TokenStore(register.engine).create("planner")[1]
    at = ok(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    at.text_input(key="signin_token").input(secret)
    ok(at.button[0].click().run())
    assert not at.title or not at.title[0].value.startswith("五联 · 登录")
    assert any("规划人员" in c.value for c in at.sidebar.caption)
    assert len(at.dataframe) > 0  # the inbox


def test_a_coordinator_of_one_street_cannot_see_the_other(register):
    """Asking for the other street (a link with it in the URL) shows the coordinator's own."""
    at = signed_in(AppTest.from_file(str(APP), default_timeout=TIMEOUT), "coordinator", OWN)
    at.query_params["reg_street"] = "北熙街道 · D04S02"
    ok(at.run())
    assert any("协调员只能查看本辖区" in i.value for i in at.info)
    text = page_text(at)
    other = household_ids(register, OTHER)
    assert other and not any(h in text for h in other)
    own_alerts = alerts.alerts(register, centres=frozenset(
        c for c in register.table("centres")["centre_id"] if c.startswith(OWN)),
        states=("open",))
    for subject in own_alerts["subject_id"]:
        assert subject in text


def test_the_role_decides_the_pages():
    from wulian.ui.signin import PAGES_OF

    assert PAGES_OF["coordinator"] == {"inbox", "coordinator", "performance"}
    assert "runs" not in PAGES_OF["fund_manager"] and PAGES_OF["provider"] == frozenset()


def test_a_token_revoked_while_signed_in_signs_the_session_out(register):
    """The session's token is looked up at every script run: once revoked (``wulian token
    revoke``), the next click shows the sign-in form with why, and no page."""
    tokens = TokenStore(register.engine)
    row, secret = tokens.create("coordinator", OWN, label="安熙值班")
    at = ok(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    at.text_input(key="signin_token").input(secret)
    ok(at.button[0].click().run())
    assert len(at.dataframe) > 0  # the inbox
    assert tokens.revoke(row["token_id"])
    ok(at.run())
    assert at.title[0].value.startswith("五联 · 登录")
    assert any("令牌已被撤销" in e.value and "token was revoked" in e.value for e in at.error)
    assert len(at.dataframe) == 0
    assert not any(h in page_text(at) for h in household_ids(register, OWN))


def test_a_store_that_cannot_be_opened_is_named_at_sign_in(tmp_path, monkeypatch):
    """A store the app cannot open is said with its error, not as a bad token."""
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    url = f"sqlite:///{blocked / 'runs.sqlite'}"
    monkeypatch.setenv("WULIAN_STORE", url)
    at = ok(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    at.text_input(key="signin_token").input("wl_anything")
    ok(at.button[0].click().run())
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "无法打开存储" in errors[0] and url in errors[0], errors
    assert "令牌无效" not in errors[0]


def test_a_later_token_numbered_as_a_deleted_one_does_not_inherit_its_session(register):
    """SQLite may give a new token the id of a deleted one: the session, signed in with the
    deleted token, is signed out — the id alone does not say whose session it is."""
    from wulian.api.auth import TOKENS

    tokens = TokenStore(register.engine)
    row, secret = tokens.create("coordinator", OWN, label="王(已离职)")
    at = ok(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    at.text_input(key="signin_token").input(secret)
    ok(at.button[0].click().run())
    assert len(at.dataframe) > 0
    with register.engine.begin() as conn:
        conn.execute(TOKENS.delete().where(TOKENS.c.token_id == row["token_id"]))
    again, _ = tokens.create("coordinator", OWN, label="李(新同事)")
    assert again["token_id"] == row["token_id"]  # (not vacuous: the id came back)
    ok(at.run())
    assert at.title[0].value.startswith("五联 · 登录") and len(at.dataframe) == 0


def test_signing_out_forgets_the_sessions_work_and_keeps_its_language(register):
    tokens = TokenStore(register.engine)
    _row, secret = tokens.create("coordinator", OWN, label="安熙值班")
    at = ok(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    at.text_input(key="signin_token").input(secret)
    ok(at.button[0].click().run())
    at.session_state["lang"] = "en"
    at.session_state["some_page_result"] = "the last person's results"
    ok(at.button(key="signin_out").click().run())
    assert at.title[0].value == "wulian · sign in"  # (in the language kept)
    assert "some_page_result" not in at.session_state
    assert at.session_state["lang"] == "en"


def test_a_store_that_cannot_be_opened_is_named_without_its_password(monkeypatch):
    url = "postgresql+psycopg://wulian:s3cret-pw@127.0.0.1:1/wulian"
    monkeypatch.setenv("WULIAN_STORE", url)
    at = ok(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    at.text_input(key="signin_token").input("wl_anything")
    ok(at.button[0].click().run())
    errors = [e.value for e in at.error]
    assert errors and "127.0.0.1" in errors[0] and "***" in errors[0]
    assert not any("s3cret-pw" in e for e in errors)
