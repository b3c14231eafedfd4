"""Who is using the app: sign-in with a token of the service (``wulian token create``), and the
same roles and centre fences as the batch service (:mod:`api.auth`).

Nothing of a page runs before sign-in: :func:`require` draws the sign-in form and stops the
script. The role decides the pages (:data:`PAGES_OF`); a coordinator's centre pickers are held
to their subtree (:func:`fenced`). The principal lives in the session only (a browser tab);
the secret is checked against the store's hashes and never kept. The token is looked up again
by its id at every script run (one primary-key read): a token revoked, or changed, while a
session is open signs that session out at its next click.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
import streamlit as st

from wulian.api.auth import ROLE_NAMES, TOKENS, Principal, TokenStore
from wulian.contract.hierarchy import Hierarchy
from wulian.planning.store import redact_url, store_url
from wulian.ui import text
from wulian.ui.common import LANGUAGE_KEY, current_store, tr

PRINCIPAL_KEY = "wulian_principal"
LABEL_KEY = "wulian_token_label"  # the token's label (who it was made for), for the audit trail
TOKEN_KEY = "wulian_token_hash"  # the token's hash: the same id, the same token

# The pages (their URL paths) each role may open; ``None``: every page. As the service allows:
# the fund lab and the stored runs show the whole network, so a coordinator has the pages
# fenced to a centre (inbox, weekly allocation, performance); a fund manager the fund lab and
# performance; a provider has no page in the app (it answers its tasks through the service).
PAGES_OF: dict[str, frozenset[str] | None] = {
    "planner": None,
    "admin": None,
    "coordinator": frozenset({"inbox", "coordinator", "performance"}),
    "fund_manager": frozenset({"fund-lab", "performance"}),
    "provider": frozenset(),
}


def principal() -> Principal | None:
    """The signed-in caller of this session, if any."""
    found = st.session_state.get(PRINCIPAL_KEY)
    return found if isinstance(found, Principal) else None


def _store_error(err: Exception) -> tuple[str, dict[str, str]]:
    """The store's error as a text key and its facts, naming the store without its password,
    and the error by its type alone (a driver's message may repeat the URL, password and
    all; the sign-in page is shown to anyone who reaches the app)."""
    return "signin.store_error", {"url": redact_url(store_url()), "message": type(err).__name__}


def _submit() -> None:
    secret = st.session_state.pop("signin_token", "").strip()
    st.session_state.pop("signin_failed", None)
    try:
        who = TokenStore(current_store().engine).verify(secret) if secret else None
    except Exception as err:  # the store cannot be opened or read: say so, not "bad token"
        st.session_state["signin_failed"] = _store_error(err)
        return
    if who is None:
        st.session_state["signin_failed"] = ("signin.failed", {})
    else:
        row = _token_row(who.token_id)
        st.session_state[PRINCIPAL_KEY] = who
        st.session_state[LABEL_KEY] = row["label"]
        # (An id alone could be a later token's: SQLite may number a new token as a deleted
        # one was. Its secret's hash tells them apart; it stays in the server's session.)
        st.session_state[TOKEN_KEY] = row["secret_sha256"]


def _token_row(token_id: int) -> sa.RowMapping | None:
    """The token's row by its id (the primary key), without its hash."""
    columns = [TOKENS.c.role, TOKENS.c.centre, TOKENS.c.provider_id, TOKENS.c.label,
               TOKENS.c.revoked, TOKENS.c.secret_sha256]
    with current_store().engine.connect() as conn:
        return conn.execute(sa.select(*columns).where(TOKENS.c.token_id == token_id)
                            ).mappings().first()


def _still_valid(who: Principal) -> bool:
    """Whether the session's token still stands as it was when signed in (not revoked, not
    removed, the same role, centre and provider). A store that cannot be read stops the
    page with its error: nothing is shown to a session that cannot be checked."""
    try:
        row = _token_row(who.token_id)
    except Exception as err:
        key, facts = _store_error(err)
        st.error(text.say(key, "both", **facts))
        st.stop()
        raise AssertionError("unreachable") from err  # st.stop() ends the script run
    if row is None or row["revoked"] or (row["role"], row["centre"], row["provider_id"] or "") \
            != (who.role, who.centre, who.provider_id) \
            or row["secret_sha256"] != st.session_state.setdefault(TOKEN_KEY,
                                                                   row["secret_sha256"]):
        return False
    st.session_state[LABEL_KEY] = row["label"]
    return True


def require() -> Principal:
    """The signed-in caller; without one, the sign-in form, and the script stops here."""
    who = principal()
    if who is not None and not _still_valid(who):
        _sign_out()
        st.session_state["signin_failed"] = ("signin.revoked", {})
        who = None
    if who is not None:
        if PAGES_OF.get(who.role) == frozenset():
            st.error(tr("signin.no_pages", role=ROLE_NAMES.get(who.role, (who.role,) * 2)))
            _sign_out_button(st)
            st.stop()
        return who
    st.title(tr("signin.title"))
    st.write(tr("signin.intro"))
    with st.form("signin"):
        st.text_input(tr("signin.token"), type="password", key="signin_token",
                      placeholder="wl_…")
        st.form_submit_button(tr("signin.submit"), on_click=_submit)
    if st.session_state.get("signin_failed"):
        # In both languages: the sign-in form has no language switch, and a session signed
        # out may have been in either.
        key, facts = st.session_state["signin_failed"]
        st.error(text.say(key, "both", **facts))
    st.stop()
    raise AssertionError("unreachable")  # st.stop() ends the script run


def actor_name(typed: str = "") -> str:
    """Who changes the register from this session, for the audit trail: the token (id, role,
    centre, label), then the name typed in the sidebar, which the token does not vouch for.
    ``token:8 coordinator@D04S01 (街道值班) · 记录人 李协调``."""
    who = principal()
    if who is None:  # no page that writes runs before sign-in; a guard, not a path
        raise RuntimeError("未登录 / not signed in")
    name = f"token:{who.token_id} {who.role}" + (f"@{who.centre}" if who.centre else "")
    label = str(st.session_state.get(LABEL_KEY) or "").strip()
    name += f" ({label})" if label else ""
    return name + (f" · 记录人 {typed.strip()}" if typed.strip() else "")


def may_open(who: Principal, url_path: str) -> bool:
    pages = PAGES_OF.get(who.role, frozenset())
    return pages is None or url_path in pages


def _sign_out() -> None:
    """Forget everything of the session but its language: the next person to sign in on this
    tab sees nothing of the last one's (results, a run, pins, an upload, choices)."""
    for key in list(st.session_state):
        if key != LANGUAGE_KEY:
            del st.session_state[key]


def _sign_out_button(where) -> None:
    where.button(tr("signin.out"), on_click=_sign_out, key="signin_out")


def badge(who: Principal) -> None:
    """Who is signed in (role, centre), and the sign-out button, in the sidebar."""
    role = ROLE_NAMES.get(who.role, (who.role,) * 2)  # a fact in each language's words
    st.sidebar.caption(tr("signin.as", role=role, centre=who.centre or "—"))
    _sign_out_button(st.sidebar)


def fenced(chosen: str | None, centres: pd.DataFrame) -> str | None:
    """The centre a page may show: the picker's choice, or for a coordinator their own
    centre when the choice lies outside their subtree (the whole network included)."""
    who = principal()
    if who is None or who.role != "coordinator":
        return chosen
    if who.centre not in set(centres["centre_id"]):
        st.error(tr("signin.centre_missing", centre=who.centre))
        st.stop()
    if chosen is not None and chosen in set(Hierarchy.from_centres(centres).subtree(who.centre)):
        return chosen
    st.info(tr("signin.fenced", centre=who.centre))
    return who.centre
