"""五联 wulian — the Streamlit app: ``streamlit run ui/app.py`` (or ``make ui`` / ``wulian ui``).

The entry page: the sidebar (language; the scenario and week, or who records changes in the
register) and the navigation between the pages in ``ui/views/``. The app opens on the inbox
when the store holds a register, else on the coordinator's weekly allocation. Page titles
follow the language, their URLs do not.
"""

from __future__ import annotations

import streamlit as st

from wulian.planning.store import store_url
from wulian.ui import signin, text
from wulian.ui.common import PAGE_ICON, lang, register_filled, sidebar

st.set_page_config(page_title="五联 wulian", page_icon=PAGE_ICON, layout="wide")

# (script, title key, URL, icon, reads the register rather than the sidebar's scenario).
# Material icons ship with Streamlit, so they show without an emoji font or the network.
PAGES = (
    ("views/inbox.py", "page.inbox", "inbox", ":material/inbox:", True),
    ("views/coordinator.py", "page.coordinator", "coordinator", ":material/event:", False),
    ("views/performance.py", "page.performance", "performance", ":material/monitoring:", True),
    ("views/fund_lab.py", "page.fund", "fund-lab", ":material/savings:", False),
    ("views/data.py", "page.data", "data", ":material/database:", False),
    ("views/runs.py", "page.runs", "runs", ":material/history:", False),
)

who = signin.require()  # nothing below runs before sign-in
shown = [row for row in PAGES if signin.may_open(who, row[2])]
first = "inbox" if register_filled(store_url()) else "coordinator"
if first not in {row[2] for row in shown}:
    first = shown[0][2]
signin.badge(who)
pages = [(st.Page(path, title=text.nav_title(key, lang()), url_path=url, icon=icon,
                  default=(url == first)), register) for path, key, url, icon, register in shown]
page = st.navigation([p for p, _register in pages])
# The page navigation returns is one of those given (the default's url_path reads "").
sidebar(register_page=any(p is page and register for p, register in pages))
page.run()
