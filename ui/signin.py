"""Who is using the app: sign-in with a token of the service (``wulian token create``), and the
same roles and centre fences as the batch service (:mod:`api.auth`).

Nothing of a page runs before sign-in: :func:`require` draws the sign-in form and stops the
script. The role decides the pages (:data:`PAGES_OF`); a coordinator's centre pickers are held
to their subtree (:func:`fenced`). The principal lives in the session only (a browser tab);
the secret is checked against the store's hashes and never kept.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from wulian.api.auth import ROLE_NAMES, Principal, TokenStore
from wulian.contract.hierarchy import Hierarchy
from wulian.ui.common import current_store, tr

PRINCIPAL_KEY = "wulian_principal"

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


def _submit() -> None:
    secret = st.session_state.pop("signin_token", "").strip()
    who = TokenStore(current_store().engine).verify(secret) if secret else None
    if who is None:
        st.session_state["signin_failed"] = True
    else:
        st.session_state[PRINCIPAL_KEY] = who
        st.session_state.pop("signin_failed", None)


def require() -> Principal:
    """The signed-in caller; without one, the sign-in form, and the script stops here."""
    who = principal()
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
        st.error(tr("signin.failed"))
    st.stop()
    raise AssertionError("unreachable")  # st.stop() ends the script run


def may_open(who: Principal, url_path: str) -> bool:
    pages = PAGES_OF.get(who.role, frozenset())
    return pages is None or url_path in pages


def _sign_out() -> None:
    st.session_state.pop(PRINCIPAL_KEY, None)


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
