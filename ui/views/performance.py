"""服务绩效 — how well the five linkages serve, week by week, in a centre's subtree.

The tables of ``planning.performance.performance`` over a range of weeks, grouped by provider,
linkage, fund, street or colour; the fill rate by colour and the monitoring visits made, week
by week, as charts; and the bilingual report workbook (``planning.performance.report``).
"""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st

from wulian.planning import fmt
from wulian.planning import performance as perf
from wulian.ui import charts
from wulian.ui import register_data as R
from wulian.ui.common import choose, lang, money, percent, show, tier_names, titles, tr
from wulian.ui.text import code

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WEEKS_KEY = "perf_weeks"


def number(value: float) -> str:
    return "—" if pd.isna(value) else f"{float(value):,.6g}"


def group_table(frame: pd.DataFrame, by: str, names: dict[str, pd.Series]) -> None:
    """The ``by_<group>`` table: codes in words, names beside ids, money and shares formatted,
    the declined-by-reason columns headed in the chosen language."""
    out = frame.copy()
    if by in names:
        out.insert(1, "name", out[by].map(names[by]).fillna(""))
    reasons = {c: tr("perf.declined", reason=code("decline", c.removeprefix("declined_"),
                                                  lang()))
               for c in out.columns if c.startswith("declined_")}
    formats = {"planned": money, "committed": money, "spent": money,
               "delivered_share": percent, "spent_share": percent, "median_days": number}
    codes = {"colour": "tier"} if by == "colour" else {"linkage": "linkage"} \
        if by == "linkage" else {}
    shown = out.rename(columns=reasons)
    show(shown, formats, codes, key="perf_group_table")


def page() -> None:
    st.title(tr("page.performance"))
    opened = R.open_register()
    if opened is None:
        return
    url, mark = opened
    weeks = R.opened_weeks(url, mark)
    if not weeks:
        st.info(tr("perf.none"))
        return
    table = R.centres(url, mark)
    centre = R.centre_picker(table)
    area = R.scope(url, mark, centre)
    st.caption(tr("reg.scope", name=area.name, stations=fmt.count(area.station_count))
               if centre else tr("reg.scope.all", stations=fmt.count(area.station_count)))
    left, right = st.columns([3, 1])
    if len(weeks) > 1:
        first, last = left.select_slider(tr("perf.weeks"), weeks, value=(weeks[0], weeks[-1]),
                                         key=WEEKS_KEY)
    else:
        first = last = weeks[0]
        left.caption(f"{tr('perf.weeks')}: {first}")
    language = lang()
    labels = {g: code("group", g, language) for g in perf.GROUPS}
    # (by code, its widget keyed by language: the browser kept the English label after a switch)
    by = choose(right.selectbox, tr("perf.group"), list(labels), labels, "perf_group")
    with st.spinner():
        tables = R.performance(url, mark, by, first, last, centre)

    names = tier_names()
    st.subheader(tr("perf.fill"))
    fill = tables["fill_rate"]
    st.altair_chart(charts.weekly(fill, "fill_rate", names,
                                  titles("week", "fill_rate", "colour")), width="stretch")
    st.caption(tr("perf.fill.caption"))
    st.subheader(tr("perf.monitoring"))
    monitoring = tables["monitoring"]
    st.altair_chart(charts.weekly(monitoring, "on_time", names,
                                  titles("week", "on_time", "colour")), width="stretch")

    st.subheader(tr("perf.by", group=code("group", by, language)))
    centres = table.set_index("centre_id")["name"]
    labels = {"provider": R.names(url, mark, lang())["provider"], "street": centres,
              "fund": R.ledger(url, mark)[2].set_index("fund_id")["name"]}
    group_table(tables[f"by_{by}"], by, {k: pd.Series(v) for k, v in labels.items()})
    st.caption(tr("perf.by.caption"))
    st.subheader(tr("perf.fill.table"))
    show(perf.for_people("fill_rate", fill),
         {"needs_planned": number, "needs_delivered": number, "planned_rate": percent,
          "fill_rate": percent}, {"tier": "tier"}, key="perf_fill_table")
    st.subheader(tr("perf.monitoring.table"))
    show(perf.for_people("monitoring", monitoring), {"on_time": percent},
         {"tier": "tier"}, key="perf_monitoring_table")
    st.subheader(tr("perf.reach"))
    show(tables["reach"], {"spent": money, "households_per_10k": number}, {"colour": "tier"},
         key="perf_reach_table")

    title = tr("perf.title", centre=area.name or tr("centre.all"), first=first, last=last,
               group=code("group", by, language))
    st.download_button(tr("perf.download"),
                       data=functools.partial(R.report_workbook, tables, title),
                       file_name=f"performance-{first}-{last}-{by}.xlsx", mime=XLSX,
                       key="perf_download", icon=":material/download:")


page()
