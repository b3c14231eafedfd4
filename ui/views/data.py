"""数据 — upload and validate, the five-linkage registry, households by colour, and which
deprivations drive poverty in each street (Alkire–Foster)."""

from __future__ import annotations

import streamlit as st

from wulian.contract import vocab
from wulian.planning import describe, fmt
from wulian.planning import session as S
from wulian.planning.scenario import Scenario
from wulian.ui.common import current_scenario, formatted, lang, money, percent, show, tier_names, tr
from wulian.ui.data_upload import upload_box
from wulian.ui.text import code, pick


@st.cache_data(show_spinner=False, max_entries=8)
def _deprivation(digest: str, _scenario: Scenario):
    return S.deprivation_by_street(_scenario)


def registry(scenario: Scenario) -> None:
    st.subheader(tr("data.registry"))
    a, b, c = st.columns(3)
    # Labels are resolved now: a format_func runs later, outside this script run.
    anything = tr("data.any")
    linkages = {"": anything, **{k: code("linkage", k, lang()) for k in vocab.LINKAGES}}
    linkage = a.selectbox(tr("data.linkage"), list(linkages), key="reg_linkage",
                          format_func=linkages.get)
    services = scenario.services.set_index("service_id")
    name_col = "name_en" if lang() == "en" else "name_zh"
    service_names = {"": anything, **{s: f"{services.at[s, name_col]} · {s}"
                                      for s in services.index}}
    service = b.selectbox(tr("data.service"), list(service_names), key="reg_service",
                          format_func=service_names.get)
    centres = scenario.centres[scenario.centres["level"] != "station"]
    names = {"": anything, **{k: f"{n} · {k}" for k, n in
                              zip(centres["centre_id"], centres["name"], strict=True)}}
    centre = c.selectbox(tr("data.centre"), list(names), key="reg_centre",
                         format_func=names.get)
    table = S.registry(scenario, linkage=linkage or None, service=service or None,
                       centre=centre or None)
    st.caption(tr("data.rows", n=fmt.count(len(table))))
    english = lang() == "en"
    table = table.assign(what=table["what_en"] if english else table["what"])
    show(table.drop(columns=["coverage_id", "provider_id", "service_id", "what_en"]),
         {"capacity": fmt.count, "unit_cost": money},
         {"linkage": "linkage", "unit": "unit", "kind": "registry"}, key="registry_table")


def households(scenario: Scenario) -> None:
    st.subheader(tr("data.households"))
    table = describe.households_by_colour(scenario).rename(columns=tier_names())
    table.index = table.index.map(lambda d: tr("misc.all") if d == "total" else d)
    show(table.reset_index(), {c: fmt.count for c in [*tier_names().values(), "total"]},
         key="households_table")


def deprivation(scenario: Scenario) -> None:
    st.subheader(tr("data.af"))
    st.caption(tr("data.af.caption"))
    streets = _deprivation(scenario.digest, scenario)
    dims = {f"share_{d}": pick(pair, lang()) for d, pair in vocab.DIMENSIONS.items()}
    shown = streets.drop(columns=["district_id"]).assign(
        driver=streets["driver"].map(lambda d: code("dimension", d, lang()) if d else "—"))
    formats = {"n": fmt.count, "n_poor": fmt.count, "H": percent, "A": percent,
               "M0": lambda v: f"{v:.3f}", "contribution": percent,
               **{c: percent for c in dims}}
    # Dimension shares are headed by the dimension's name, after the common headings.
    table = formatted(shown, formats).rename(columns=dims)
    st.dataframe(table, hide_index=True, key="af_table")


def page() -> None:
    st.title(tr("page.data"))
    st.subheader(tr("data.upload"))
    upload_box("data")
    scenario = current_scenario()
    registry(scenario)
    households(scenario)
    deprivation(scenario)


page()
