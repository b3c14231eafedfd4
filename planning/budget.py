"""The budget lab (预算实验室) for fund managers: what each budget level buys.

Drives ``optimizer.budget`` from a :class:`~planning.scenario.Scenario`: the aggregated model is
built once (:meth:`BudgetLab.from_scenario`), then every question is a warm re-solve of it —

- :meth:`BudgetLab.solve`: one budget setting (and equity dial): fill rate per colour, money
  and marginal value per fund, the street table, the price of fairness;
- :meth:`BudgetLab.sweep`: coverage-vs-budget curves, one fund or all funds scaled together;
- :meth:`BudgetLab.compare`: named budget scenarios side by side;
- :func:`plot_curve`: a sweep as a PNG.

Budget scenarios are written as ``{fund_id: yuan}``; funds not named keep the scenario's
budget. Two keys are special: ``"scale"`` multiplies every fund's budget first, and
``"equity"`` sets the equity dial (an :class:`~optimizer.budget.EquityDial`, or a mapping such as
``{"floor": 0.8}`` or ``{"deviation": 0.1}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from wulian.contract import vocab
from wulian.optimizer.budget import BudgetModel, BudgetSolution, EquityDial, build_budget_model
from wulian.planning.allocate import allocation_input
from wulian.planning.scenario import Scenario

COLOURS = tuple(vocab.TIER_ORDER)
SPECIAL_KEYS = ("scale", "equity")
# Line colours of the four assessment colours in plots (yellow darkened to read on white).
PLOT_COLOURS = {"red": "#c0392b", "orange": "#e67e22", "yellow": "#d4ac0d", "green": "#27ae60"}
# Font families that carry Chinese glyphs, most common first.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei", "PingFang SC",
             "Hiragino Sans GB", "Heiti SC", "AR PL UMing CN", "Droid Sans Fallback")


def as_equity(dial: EquityDial | Mapping | None) -> EquityDial | None:
    """An :class:`EquityDial` from a dial, a mapping (``{"floor": F}`` or
    ``{"deviation": D}``) or ``None``."""
    if dial is None or isinstance(dial, EquityDial):
        return dial
    return EquityDial(**dict(dial))


@dataclass
class BudgetLab:
    """One scenario's budget lab: the aggregated model, built once, re-solved per question.

    Attributes
    ----------
    scenario
        The scenario the lab was built from.
    model
        The aggregated model (``optimizer.budget.BudgetModel``).
    week, centre
        The week and the centre's subtree the lab covers (``None``: all).
    """

    scenario: Scenario
    model: BudgetModel
    week: str | None = None
    centre: str | None = None

    @classmethod
    def from_scenario(cls, scenario: Scenario, *, week: str | None = None,
                      centre: str | None = None, threads: int = 1) -> BudgetLab:
        """Aggregate the scenario's needs (of ``week``, within ``centre``'s subtree) and build
        the model; this includes one baseline solve, so the first question is already warm."""
        data = allocation_input(scenario, week, centre)
        return cls(scenario, build_budget_model(data, threads=threads), week, centre)

    # -- budgets -----------------------------------------------------------------------------

    @property
    def base_budgets(self) -> pd.Series:
        """The scenario's budget of each fund, in yuan, indexed by fund_id."""
        return self.model.base_budgets.copy()

    def funds(self) -> pd.DataFrame:
        """The funds with their name, source and budget."""
        cols = ["fund_id", "name", "source", "budget", "centre_id", "earmarked_services"]
        return self.scenario.funds[cols].reset_index(drop=True)

    def budgets_of(self, spec: Mapping | None) -> tuple[dict[str, float], EquityDial | None]:
        """Budgets (fund_id → yuan, every fund) and equity dial of a budget scenario ``spec``.

        Raises
        ------
        KeyError
            When ``spec`` names a fund the scenario does not have.
        """
        spec = dict(spec or {})
        scale = float(spec.pop("scale", 1.0))
        equity = as_equity(spec.pop("equity", None))
        budgets = self.model.budgets(spec if spec else None) if scale == 1.0 else \
            self.model.budgets({**(self.model.base_budgets * scale).to_dict(), **spec})
        return budgets.to_dict(), equity

    # -- questions ---------------------------------------------------------------------------

    def solve(self, budgets: Mapping | None = None,
              equity: EquityDial | Mapping | None = None) -> BudgetSolution:
        """Solve one budget scenario (see the module docstring for ``budgets``' keys); an
        ``equity`` given here overrides the scenario's own ``"equity"`` key."""
        b, own = self.budgets_of(budgets)
        return self.model.solve(b, as_equity(equity) or own)

    def sweep(self, start: float, stop: float, steps: int, fund: str | None = None, *,
              equity: EquityDial | Mapping | None = None) -> pd.DataFrame:
        """Coverage-vs-budget curve: ``steps`` evenly spaced budgets from ``start`` to ``stop``.

        Parameters
        ----------
        start, stop, steps
            With ``fund``: that fund's budget in yuan. Without: a factor applied to every
            fund's budget together (1 is the scenario's budgets).
        fund
            The fund whose budget moves (the others keep theirs); ``None``: all funds.
        equity
            An equity dial to hold at every point.

        Returns
        -------
        pandas.DataFrame
            Tidy, one row per budget × colour: ``fund`` (the fund, or ``"all"``), ``scale``
            (budget ÷ the scenario's), ``budget`` (yuan of the moving fund, or of all funds),
            ``colour``, ``fill_rate`` (mean served fraction), ``value`` (Σ urgency × served ÷
            needed), ``money_used`` (yuan the moving fund(s) paid), ``money_total`` (yuan all
            funds paid), ``marginal_points`` (the moving fund's fill-rate points per ¥10,000
            at its marginal level; NaN for all funds), ``marginal_level``.

        Raises
        ------
        KeyError
            When ``fund`` is not a fund of the scenario.
        ValueError
            When ``steps`` < 1 or a budget would be negative.
        """
        if steps < 1:
            raise ValueError("steps must be ≥ 1")
        base = self.model.base_budgets
        if fund is not None and fund not in base.index:
            raise KeyError(f"unknown fund {fund!r}")
        if min(start, stop) < 0:
            raise ValueError("budgets must be ≥ 0")
        dial = as_equity(equity)
        rows = []
        for point in np.linspace(start, stop, steps):  # a loop over slider positions
            if fund is None:
                budgets = (base * point).to_dict()
                scale, budget = point, float(base.sum() * point)
            else:
                budgets = {fund: float(point)}
                scale = point / base[fund] if base[fund] > 0 else np.nan
                budget = float(point)
            sol = self.model.solve(budgets, dial)
            funds = sol.funds.set_index("fund_id")
            used = funds["used"].sum() if fund is None else funds.at[fund, "used"]
            points = np.nan if fund is None else funds.at[fund, "points_per_10k"]
            level = "" if fund is None else funds.at[fund, "marginal_level"]
            for colour, fill, value in zip(sol.colours["colour"], sol.colours["fill_rate"],
                                           sol.colours["value"], strict=True):
                rows.append((fund or "all", scale, budget, colour, fill, value, used, sol.money,
                             points, level))
        return pd.DataFrame(rows, columns=["fund", "scale", "budget", "colour", "fill_rate",
                                           "value", "money_used", "money_total",
                                           "marginal_points", "marginal_level"])

    def compare(self, scenarios: Mapping[str, Mapping | None], *,
                equity: EquityDial | Mapping | None = None) -> pd.DataFrame:
        """Named budget scenarios side by side, one row each.

        Parameters
        ----------
        scenarios
            Name → budget scenario (``{fund_id: yuan}``, with the optional ``"scale"`` and
            ``"equity"`` keys), e.g. ``{"baseline": {}, "+20% lottery": {"F001": 1.2 * b}}``.
        equity
            An equity dial for every scenario that does not set its own.

        Returns
        -------
        pandas.DataFrame
            Indexed by scenario name, in the order given: ``equity`` (the dial, in words),
            ``fill_<colour>`` (mean served fraction), ``value_<colour>``, ``money_<fund>`` (yuan
            paid), ``money_total``, and the price of fairness against the same budgets without
            the dial — ``pof_red`` (red weighted coverage lost), ``pof_other`` (orange, yellow
            and green weighted coverage lost), ``pof_red_points`` (red fill-rate points lost),
            ``pof_money`` (extra yuan) — 0 without a dial; ``status``.
        """
        dial = as_equity(equity)
        rows = {}
        for name, spec in scenarios.items():  # a loop over named scenarios
            budgets, own = self.budgets_of(spec)
            sol = self.model.solve(budgets, dial if own is None else own)
            row: dict[str, object] = {"equity": sol.equity.describe()}
            for colour, fill, value in zip(sol.colours["colour"], sol.colours["fill_rate"],
                                           sol.colours["value"], strict=True):
                row[f"fill_{colour}"] = fill
                row[f"value_{colour}"] = value
            for fund_id, used in zip(sol.funds["fund_id"], sol.funds["used"], strict=True):
                row[f"money_{fund_id}"] = used
            row["money_total"] = sol.money
            row.update(_price_columns(sol))
            row["status"] = sol.status
            rows[name] = row
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "scenario"
        return table


def _price_columns(sol: BudgetSolution) -> dict[str, float]:
    """The price of fairness of a solution, as four numbers (0 without a dial)."""
    pof = sol.price_of_fairness
    if pof is None:
        return {"pof_red": 0.0, "pof_other": 0.0, "pof_red_points": 0.0, "pof_money": 0.0}
    value = pof[pof["measure"] == "value"].set_index("level")["price"]
    points = pof[pof["measure"] == "fill_points"].set_index("level")["price"]
    money = pof[pof["level"] == "money"]["price"]
    return {"pof_red": float(value["red"]), "pof_other": float(value.drop("red").sum()),
            "pof_red_points": float(points["red"]), "pof_money": float(money.iloc[0])}


def cjk_font() -> str | None:
    """The name of an installed font with Chinese glyphs, or ``None`` (looked up in
    matplotlib's font list, so nothing is logged or warned when there is none)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def plot_curve(curve: pd.DataFrame, path: str | Path, *, title: str | None = None) -> Path:
    """Draw a coverage-vs-budget curve (a :meth:`BudgetLab.sweep` table) as a PNG.

    Fill rate per colour against the budget, with the money used on a second axis. Labels are
    English; the title is bilingual when a font with Chinese glyphs is installed, English
    otherwise (so no glyph is ever missing).

    Parameters
    ----------
    curve
        A sweep: ``fund, budget, colour, fill_rate, money_used``.
    path
        Where to write the PNG (parent folders are created).
    title
        An English title to use instead of the default one.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    # The object-oriented API with the Agg canvas: no pyplot, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fund = str(curve["fund"].iloc[0]) if len(curve) else ""
    who = "all funds scaled together" if fund == "all" else f"fund {fund}"
    english = title or f"Coverage vs budget — {who}"
    font = cjk_font()
    fig = Figure(figsize=(8, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    budget_10k = curve["budget"] / 1e4
    for colour in COLOURS:
        part = curve["colour"] == colour
        if part.any() and curve.loc[part, "fill_rate"].notna().any():
            ax.plot(budget_10k[part], curve.loc[part, "fill_rate"] * 100, marker="o",
                    markersize=3, color=PLOT_COLOURS[colour], label=f"{colour} fill rate")
    ax.set_xlabel("budget (10,000 yuan)")
    ax.set_ylabel("fill rate (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    money = curve.drop_duplicates("budget")
    twin = ax.twinx()
    twin.plot(money["budget"] / 1e4, money["money_used"] / 1e4, linestyle="--", color="#555555",
              label="money used")
    twin.set_ylabel("money used (10,000 yuan)")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right", fontsize=8)
    if font:
        zh = "全部基金同比例" if fund == "all" else f"基金 {fund}"
        fig.suptitle(f"覆盖率与预算 {zh} / {english}", fontfamily=font)
    else:
        fig.suptitle(english)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


__all__ = ["BudgetLab", "EquityDial", "as_equity", "plot_curve", "cjk_font"]
