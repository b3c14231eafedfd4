"""基金 · 预算实验室 — the fund manager's page: the fund ledger of the register (balance, spending
per week, the period's projection, a yuan now against a yuan later), then the budget lab:
budgets in, coverage out, at once."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from wulian.optimizer.budget import EquityDial
from wulian.planning.budget import BudgetLab
from wulian.planning.scenario import Scenario
from wulian.ui import charts
from wulian.ui import register_data as R
from wulian.ui.common import (
    SCENARIO_KEY,
    TIERS,
    budget_lab,
    choose,
    colour_fact,
    current_scenario,
    current_week,
    formatted,
    lang,
    money,
    percent,
    scenario_label,
    show,
    tier_names,
    titles,
    tr,
)
from wulian.ui.text import code

SAVED_KEY = "fund_scenarios"
CURVE_STEPS = 11


def _key(scenario: Scenario, name: str) -> str:
    # Widgets are per scenario, so another scenario starts from its own budgets.
    return f"fund_{scenario.digest[:10]}_{name}"


def _reset(keys: dict[str, str], base: pd.Series, scale_key: str) -> None:
    for fund_id, key in keys.items():
        st.session_state[key] = float(base[fund_id])
    st.session_state[scale_key] = 100


def budget_inputs(scenario: Scenario, lab: BudgetLab) -> dict[str, float]:
    """The total slider and one field per fund; returns every fund's budget in yuan."""
    base = lab.base_budgets
    funds = lab.funds().set_index("fund_id")
    scale_key = _key(scenario, "scale")
    keys = {fund_id: _key(scenario, fund_id) for fund_id in base.index}
    scale = st.slider(tr("fund.total"), 0, 200, 100, step=5, format="%d%%", key=scale_key,
                      persist_state="session")
    st.markdown("**" + tr("fund.budgets") + "**")
    columns = st.columns(4)
    budgets = {}
    for i, fund_id in enumerate(base.index):
        source = code("source", funds.at[fund_id, "source"], lang())
        earmarks = funds.at[fund_id, "earmarked_services"] or "—"
        value = columns[i % 4].number_input(
            f"{fund_id} · {funds.at[fund_id, 'name']}", min_value=0.0,
            value=float(base[fund_id]), step=1000.0, format="%.0f", key=keys[fund_id],
            help=f"{source} · {earmarks} · {money(base[fund_id])}", persist_state="session")
        budgets[fund_id] = float(value) * scale / 100
        # The field holds the fund's own budget; what the lab uses is that times the slider.
        columns[i % 4].caption(tr("fund.effective", amount=money(budgets[fund_id]),
                                  scale=scale))
    st.button(tr("fund.reset"), key=_key(scenario, "reset"), on_click=_reset,
              args=(keys, base, scale_key))
    return budgets


def equity_inputs(scenario: Scenario) -> EquityDial | None:
    st.subheader(tr("fund.equity"))
    left, right = st.columns(2)
    modes = ["off", "floor", "deviation"]
    labels = {m: tr(f"fund.equity.{m}") for m in modes}
    mode = choose(left.radio, tr("fund.equity.mode"), modes, labels,
                  _key(scenario, "equity_mode"), "off", horizontal=True)
    if mode == "off":
        return None
    value = right.slider(tr("fund.equity.value"), 0, 100, 80 if mode == "floor" else 10,
                         format="%d%%", key=_key(scenario, f"equity_{mode}"),
                         persist_state="session")
    return EquityDial(**{mode: value / 100})


def coverage(solution, base_solution) -> None:
    st.subheader(tr("fund.coverage"))
    rates, base = solution.fill_rates(), base_solution.fill_rates()
    for column, tier in zip(st.columns(len(TIERS)), TIERS, strict=True):
        change = (rates[tier] - base[tier]) * 100
        # No arrow, and no colour, for a change that rounds to nothing.
        column.metric(tr("coord.fill.metric", colour=colour_fact(tier)), percent(rates[tier]),
                      delta=tr("fund.points", points=f"{change:+.1f}"), border=True,
                      delta_color="normal" if round(change, 1) != 0 else "off",
                      delta_arrow="auto" if round(change, 1) != 0 else "off",
                      help=tr("fund.delta.help"))


def marginal_table(scenario: Scenario, solution) -> None:
    st.subheader(tr("fund.marginal"))
    funds = solution.funds.copy()
    funds.insert(1, "name", funds["fund_id"].map(scenario.funds.set_index("fund_id")["name"]))
    show(funds[["fund_id", "name", "budget", "used", "left", "points_per_10k",
                "marginal_level"]],
         {"budget": money, "used": money, "left": money,
          "points_per_10k": lambda v: f"{v:,.3f}"}, {"marginal_level": "tier"},
         key="marginal_table")


def streets_table(scenario: Scenario, solution) -> None:
    """Coverage by street and colour: Σ filled needs ÷ needs of each group."""
    st.subheader(tr("fund.streets"))
    groups = solution.groups
    sums = groups.groupby(["street_id", "colour"])[["filled", "needs"]].sum()
    rate = (sums["filled"] / sums["needs"]).unstack("colour").reindex(columns=TIERS)
    names = scenario.centres.set_index("centre_id")["name"]
    rate.insert(0, "name", rate.index.map(names))
    table = rate.reset_index().rename(columns=tier_names())
    show(table, {tier_names()[t]: percent for t in TIERS}, key="streets_table")


@st.cache_data(show_spinner=False, max_entries=64)
def _sweep(digest: str, week: str | None, fund: str, top: float,
           dial: tuple[float | None, float | None], _lab: BudgetLab) -> pd.DataFrame:
    """A coverage-vs-budget curve, once per scenario, fund and dial."""
    equity = EquityDial(*dial) if any(v is not None for v in dial) else None
    if fund == "all":
        return _lab.sweep(0.0, top, CURVE_STEPS, None, equity=equity)
    return _lab.sweep(0.0, top, CURVE_STEPS, fund, equity=equity)


def curve(scenario: Scenario, lab: BudgetLab, budgets: dict[str, float],
          equity: EquityDial | None, lock) -> None:
    st.subheader(tr("fund.curve"))
    base = lab.base_budgets
    names = scenario.funds.set_index("fund_id")["name"]
    labels = {"all": tr("fund.curve.all"),
              **{f: f"{names.get(f, f)} · {f}" for f in base.index}}
    fund = choose(st.selectbox, tr("fund.curve.fund"), list(labels), labels,
                  _key(scenario, "curve_fund"), "all")
    dial = (equity.floor, equity.deviation) if equity else (None, None)
    week = current_week(scenario)
    with lock:
        if fund == "all":
            sweep = _sweep(scenario.digest, week, "all", 2.0, dial, lab)
            marker = sum(budgets.values())
        else:
            top = 2.0 * max(float(base[fund]), budgets[fund], 1.0)
            sweep = _sweep(scenario.digest, week, fund, top, dial, lab)
            marker = budgets[fund]
    axes = {**titles("budget", "fill_rate", "colour"), "budget": tr("fund.curve.axis")}
    st.altair_chart(charts.curve(sweep, tier_names(), axes, marker), width="stretch")


def fairness(solution) -> None:
    if solution.price_of_fairness is None:
        return
    st.markdown("**" + tr("fund.pof") + "**")
    if solution.shortfall > 1e-9:
        st.caption(tr("fund.shortfall", points=f"{solution.shortfall * 100:.1f}"))
    pof = solution.price_of_fairness.copy()
    in_yuan = pof["level"] == "money"
    # The money row is in yuan, the colour rows in level value or fill-rate points.
    out = pof.assign(**{c: [money(v) if y else f"{v:,.3f}"
                            for v, y in zip(pof[c], in_yuan, strict=True)]
                        for c in ("without_dial", "with_dial", "price")})
    show(out, codes={"level": "tier"}, key="pof_table")
    streets = solution.streets.copy()
    centres = current_scenario().centres.set_index("centre_id")["name"]
    streets.insert(1, "name", streets["street_id"].map(centres))
    show(streets, {"fill_rate": percent, "floor": percent, "max_alone": percent,
                   "capped": lambda c: tr("misc.yes") if c else tr("misc.no")},
         {"reason": "equity"}, key="equity_streets")


def saved_scenarios(scenario: Scenario, lab: BudgetLab, budgets: dict[str, float],
                    equity: EquityDial | None, lock) -> None:
    st.subheader(tr("fund.save"))
    saved = st.session_state.setdefault(SAVED_KEY, {}).setdefault(scenario.digest, {})
    left, right = st.columns([3, 1])
    name = left.text_input(tr("fund.save.name"), key=_key(scenario, "save_name"))
    if right.button(tr("fund.save.button"), key=_key(scenario, "save"),
                    disabled=not name.strip()):
        spec: dict = dict(budgets)
        if equity is not None:
            spec["equity"] = equity
        saved[name.strip()] = spec
    st.subheader(tr("fund.compare"))
    if len(saved) < 2:
        st.info(tr("fund.compare.none"))
        if not saved:
            return
    with lock:
        table = lab.compare(saved)
    st.altair_chart(charts.compare(table, tier_names(),
                                   titles("scenario", "fill_rate", "colour")), width="stretch")
    shown = table.reset_index()
    cols = ["scenario", "equity", *[f"fill_{t}" for t in TIERS], "money_total",
            "pof_red_points", "status"]
    headings = {f"fill_{t}": tr("coord.fill.metric", colour=colour_fact(t)) for t in TIERS}
    headings["pof_red_points"] = tr("fund.pof.points")
    out = formatted(shown[cols], {**{f"fill_{t}": percent for t in TIERS},
                                  "money_total": money,
                                  "pof_red_points": lambda v: f"{v:,.2f}"})
    st.dataframe(out.rename(columns=headings), hide_index=True, key="compare_table")


def ledger_section() -> None:
    """The register's fund ledger: balances, burn and projection per fund, spending per week,
    and (on demand) the marginal value of a yuan now against a yuan in an ordinary week."""
    st.subheader(tr("ledger.title"))
    opened = R.open_register()
    if opened is None:
        return
    url, mark = opened
    at, outlook = R.fund_outlook(url, mark)
    if outlook.empty:
        st.info(tr("ledger.none"))
        return
    st.caption(tr("ledger.caption", week=at))
    yuan = ["weekly_budget", "accrued", "spent", "outstanding", "balance", "burn",
            "period_budget", "projected", "projected_left"]
    show(outlook[["fund_id", "name", "period", "weeks", "weeks_left", *yuan]],
         dict.fromkeys(yuan, money), key="ledger_table")
    by_week = R.ledger(url, mark)[0]
    st.markdown("**" + tr("ledger.burn") + "**")
    spent = by_week.groupby(["fund_id", "week"], as_index=False)["spent"].sum()
    st.altair_chart(charts.spending(spent, titles("week", "spent", "fund_id")), width="stretch")
    with st.expander(tr("ledger.by_week")):
        show(by_week, {"planned": money, "committed": money, "spent": money},
             key="ledger_by_week")
    week = R.lab_week(url, mark)
    st.markdown("**" + tr("ledger.marginal") + "**")
    if week and st.toggle(tr("ledger.marginal.toggle", week=week), key="ledger_marginal"):
        with st.spinner(tr("ledger.building", week=week)):
            values = R.now_and_then(url, mark, week)
        st.caption(tr("ledger.marginal.caption", week=week))
        verdicts = {v: tr(f"ledger.verdict.{v}") for v in ("now", "later", "same")}
        show(values.assign(verdict=values["verdict"].map(verdicts)),
             {"balance": money, "weekly_budget": money, "points_now": lambda v: f"{v:,.3f}",
              "points_then": lambda v: f"{v:,.3f}"}, key="ledger_marginal_table")


def page() -> None:
    st.title(tr("page.fund"))
    ledger_section()
    st.divider()
    scenario = current_scenario()
    st.subheader(tr("fund.lab", scenario=scenario_label(
        st.session_state.get(SCENARIO_KEY, "demo"))))
    week = current_week(scenario)
    with st.spinner(tr("fund.building")):
        lab, lock = budget_lab(scenario.digest, week, scenario)
    budgets = budget_inputs(scenario, lab)
    equity = equity_inputs(scenario)
    with lock:
        solution = lab.solve(budgets, equity)
        base_solution = lab.solve(None)
    if solution.status != "optimal":
        st.error(tr("fund.error", message=solution.message))
        return
    coverage(solution, base_solution)
    st.caption(tr("fund.money", money=money(solution.money),
                  budget=money(sum(budgets.values())),
                  seconds=f"{solution.seconds:.2f} s"))
    fairness(solution)
    marginal_table(scenario, solution)
    streets_table(scenario, solution)
    curve(scenario, lab, budgets, equity, lock)
    saved_scenarios(scenario, lab, budgets, equity, lock)


page()
