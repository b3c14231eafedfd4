"""运行记录 — the run store's history with provenance; open a past run; diff two runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from wulian.planning import fmt
from wulian.planning import session as S
from wulian.planning.store import StoredRun, diff_runs
from wulian.ui.common import (
    TIERS,
    colour_fact,
    current_store,
    lang,
    money,
    percent,
    plans_in_words,
    show,
    tr,
)
from wulian.ui.text import code
from wulian.ui.text import column as heading


def provenance(run: StoredRun) -> pd.DataFrame:
    """The provenance of a run as rows of (what, value)."""
    info = run.info
    policy = info.get("policy", {})
    solver = info.get("solver", {})
    params = info.get("parameters", {})
    seconds = info.get("seconds", {})
    rows = [
        ("run_id", str(run.run_id)),
        ("status", code("status", info.get("status", ""), lang())),
        ("input_digest", info.get("input_digest", "")),
        ("policy", f"{policy.get('name', '')} {policy.get('version', '')} · "
                   f"{policy.get('digest', '')[:12]}"),
        ("solver", f"{solver.get('name', '')} · " + ", ".join(
            f"{k} {v}" for k, v in sorted(solver.get("versions", {}).items()))),
        ("week", params.get("week") or "—"),
        ("centre", params.get("centre") or "—"),
        ("time", f"{seconds.get('wall', float('nan')):.2f} s"),
    ]
    return pd.DataFrame([(heading(name, lang()), value) for name, value in rows],
                        columns=["field", "value"])


def open_run(run: StoredRun) -> None:
    st.markdown("**" + tr("runs.provenance") + "**")
    show(provenance(run), key="provenance_table")
    summary = run.tables["summary"]
    # The colour's fill rate over all its needs: the streets' rates weighted by their needs.
    weighted = (summary["fill_rate"] * summary["needs"]).groupby(summary["tier"]).sum()
    rates = (weighted / summary.groupby("tier")["needs"].sum()).reindex(TIERS)
    for column, tier in zip(st.columns(len(TIERS)), TIERS, strict=True):
        column.metric(tr("coord.fill.metric", colour=colour_fact(tier)), percent(rates[tier]),
                      border=True)
    left, right = st.columns(2)
    with left:
        st.markdown("**" + tr("coord.money") + "**")
        show(S.funds_used(run.tables), {"budget": money, "used": money, "left": money,
                                        "marginal_value": lambda v: f"{v * 10_000:,.2f}"},
             {"marginal_level": "tier"}, key="run_money")
    with right:
        st.markdown("**" + tr("coord.unmet") + "**")
        reasons = S.unmet_reasons(run.tables)
        show(pd.DataFrame({"reason": reasons.index, "count": reasons.to_numpy()}),
             {"count": fmt.count}, {"reason": "reason"}, key="run_unmet")
    st.markdown("**" + tr("coord.plans") + "**")
    # The stored run has no scenario: the services keep their Chinese names, the reasons are
    # in words.
    plans = plans_in_words(run.tables["plans"]).drop(columns=["unmet_zh", "unmet_en",
                                                              "unmet_codes"])
    show(plans, {"needs": fmt.count, "fully_served": fmt.count,
                               "fill_rate": percent, "money": money}, {"tier": "tier"},
         key="run_plans")


def diff_panel(store, ids: list[int], labels: dict[int, str]) -> None:
    st.subheader(tr("runs.diff"))
    left, right = st.columns(2)
    old_id = left.selectbox(tr("runs.old"), ids, index=min(1, len(ids) - 1), key="diff_old",
                            format_func=labels.get)
    new_id = right.selectbox(tr("runs.new"), ids, index=0, key="diff_new",
                             format_func=labels.get)
    if old_id == new_id:
        st.info(tr("runs.same"))
        return
    old_run, new_run = store.load(old_id), store.load(new_id)
    scopes = [(r.info.get("parameters", {}).get("week") or "—",
               r.info.get("parameters", {}).get("centre")
               or tr("centre.all")) for r in (old_run, new_run)]
    if scopes[0] != scopes[1]:
        st.warning(tr("runs.scope", old=" · ".join(scopes[0]), new=" · ".join(scopes[1])))
    changes = diff_runs(old_run, new_run)
    if changes.empty:
        st.info(tr("runs.nochange"))
        return
    counts = changes["direction"].value_counts()
    st.write(tr("coord.compare.counts", old=old_id, new=new_id, gained=counts.get("gained", 0),
                lost=counts.get("lost", 0), moved=counts.get("moved", 0),
                new_hh=counts.get("new", 0), gone=counts.get("gone", 0)))
    show(changes[["household_id", "tier", "direction", "fill_before", "fill_after",
                  "package_before", "package_after", "why"]],
         {"fill_before": percent, "fill_after": percent},
         {"tier": "tier", "direction": "direction"}, key="runs_diff")


def page() -> None:
    st.title(tr("page.runs"))
    store = current_store()
    runs = store.list()
    if runs.empty:
        st.info(tr("runs.none", url=store.url))
        return
    st.subheader(tr("runs.history"))
    shown = runs.assign(input_digest=runs["input_digest"].str[:12],
                        policy_digest=runs["policy_digest"].str[:12],
                        scenario=runs["scenario"].map(lambda p: p.rsplit("/", 1)[-1] or "—"))
    show(shown, codes={"status": "status", "kind": "run_kind"}, key="runs_table")
    # Weekly allocations open and diff here; other kinds (quarterly jobs) are only listed.
    weekly = runs[runs["kind"] == "allocate"]
    if weekly.empty:
        return
    ids = [int(r) for r in weekly["run_id"]]
    labels = {int(r.run_id): f"{r.run_id} · {r.created_at} · {r.week or '—'} · "
                             f"{r.centre or tr('centre.all')}"
              for r in weekly.itertuples(index=False)}
    st.subheader(tr("runs.open"))
    chosen = st.selectbox(tr("runs.open"), ids, key="open_run", format_func=labels.get,
                          label_visibility="collapsed")
    open_run(store.load(chosen))
    diff_panel(store, ids, labels)


page()
