"""五联 wulian — the Streamlit app: ``streamlit run ui/app.py`` (or ``make ui`` / ``wulian ui``).

The entry page: the sidebar (language, scenario, week) and the navigation between the four
pages in ``ui/views/``. Page titles follow the language, their URLs do not.
"""

from __future__ import annotations

import streamlit as st

from wulian.ui.common import sidebar, tr

st.set_page_config(page_title="五联 wulian", page_icon=":material/handshake:", layout="wide")

# Material icons ship with Streamlit, so they show without an emoji font or the network.
PAGES = (
    ("views/coordinator.py", "page.coordinator", "coordinator", ":material/event:"),
    ("views/fund_lab.py", "page.fund", "fund-lab", ":material/savings:"),
    ("views/data.py", "page.data", "data", ":material/database:"),
    ("views/runs.py", "page.runs", "runs", ":material/history:"),
)

page = st.navigation([st.Page(path, title=tr(key), url_path=url, icon=icon,
                              default=(url == "coordinator"))
                      for path, key, url, icon in PAGES])
sidebar()
page.run()
