"""Altair charts of the app. They draw from data only (no map tiles, no network), so they work
offline and their data can be checked in tests."""

from __future__ import annotations

import altair as alt
import pandas as pd

from wulian.contract import vocab

TIER_COLOURS = {"red": "#c0392b", "orange": "#e67e22", "yellow": "#d4ac0d", "green": "#27ae60"}


def _tier_scale(names: dict[str, str]) -> alt.Scale:
    return alt.Scale(domain=[names[t] for t in vocab.TIER_ORDER],
                     range=[TIER_COLOURS[t] for t in vocab.TIER_ORDER])


def station_map(stations: pd.DataFrame, titles: dict[str, str]) -> alt.Chart:
    """Stations at their latitude and longitude, coloured by fill rate (red → green) and
    sized by their number of needs."""
    return alt.Chart(stations).mark_circle(opacity=0.85, stroke="#333", strokeWidth=0.4).encode(
        x=alt.X("lon:Q", title=titles["lon"], scale=alt.Scale(zero=False)),
        y=alt.Y("lat:Q", title=titles["lat"], scale=alt.Scale(zero=False)),
        color=alt.Color("fill_rate:Q", title=titles["fill_rate"],
                        scale=alt.Scale(domain=[0, 1], scheme="redyellowgreen"),
                        legend=alt.Legend(format=".0%")),
        size=alt.Size("needs:Q", title=titles["needs"], scale=alt.Scale(range=[30, 400])),
        tooltip=[alt.Tooltip("name:N", title=titles["name"]),
                 alt.Tooltip("street:N", title=titles["street"]),
                 alt.Tooltip("needs:Q", title=titles["needs"]),
                 alt.Tooltip("fill_rate:Q", title=titles["fill_rate"], format=".1%")],
    ).properties(height=420)


def warm_up() -> None:
    """Convert an empty station map once: Altair's first conversion loads and compiles the
    Vega-Lite schema it validates against (a few tens of milliseconds), which the first real
    chart would otherwise pay."""
    columns = {"station_id": str, "name": str, "street": str, "lat": float, "lon": float,
               "needs": "int64", "fill_rate": float}
    empty = pd.DataFrame({c: pd.Series([], dtype=t) for c, t in columns.items()})
    station_map(empty, {c: c for c in columns}).to_dict()


def bars(frame: pd.DataFrame, x: str, y: str, titles: dict[str, str], *,
         colour_by_tier: dict[str, str] | None = None, percent: bool = False) -> alt.Chart:
    """Horizontal bars of ``y`` (a number) per ``x`` (a label), coloured by tier names when
    ``colour_by_tier`` maps codes to the names shown."""
    axis = alt.Axis(format=".0%") if percent else alt.Axis()
    encoding = {
        "y": alt.Y(f"{x}:N", title=titles.get(x, x), sort=None),
        "x": alt.X(f"{y}:Q", title=titles.get(y, y), axis=axis,
                   scale=alt.Scale(domain=[0, 1]) if percent else alt.Undefined),
        "tooltip": [alt.Tooltip(f"{x}:N", title=titles.get(x, x)),
                    alt.Tooltip(f"{y}:Q", title=titles.get(y, y),
                                format=".1%" if percent else ",.0f")],
    }
    if colour_by_tier:
        encoding["color"] = alt.Color(f"{x}:N", scale=_tier_scale(colour_by_tier), legend=None)
    return alt.Chart(frame).mark_bar().encode(**encoding).properties(height=40 * len(frame) + 30)


def curve(sweep: pd.DataFrame, names: dict[str, str], titles: dict[str, str],
          marker: float | None = None) -> alt.Chart:
    """A coverage-vs-budget curve (``BudgetLab.sweep``): fill rate per colour against the
    budget, with a rule at the budget currently set."""
    data = sweep.assign(colour_name=sweep["colour"].map(names))
    lines = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("budget:Q", title=titles["budget"], axis=alt.Axis(format=",.0f")),
        y=alt.Y("fill_rate:Q", title=titles["fill_rate"], axis=alt.Axis(format=".0%"),
                scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("colour_name:N", title=titles["colour"], scale=_tier_scale(names)),
        tooltip=[alt.Tooltip("colour_name:N", title=titles["colour"]),
                 alt.Tooltip("budget:Q", title=titles["budget"], format=",.0f"),
                 alt.Tooltip("fill_rate:Q", title=titles["fill_rate"], format=".1%")],
    )
    if marker is None:
        return lines.properties(height=320)
    rule = alt.Chart(pd.DataFrame({"budget": [marker]})).mark_rule(strokeDash=[4, 4]).encode(
        x="budget:Q")
    return (lines + rule).properties(height=320)


def compare(table: pd.DataFrame, names: dict[str, str], titles: dict[str, str]) -> alt.Chart:
    """Named budget scenarios side by side: fill rate per colour, grouped by scenario."""
    long = table.reset_index().melt(id_vars="scenario",
                                    value_vars=[f"fill_{t}" for t in vocab.TIER_ORDER],
                                    var_name="colour", value_name="fill_rate")
    long["colour_name"] = long["colour"].str.removeprefix("fill_").map(names)
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("scenario:N", title=titles["scenario"], sort=None),
        xOffset=alt.XOffset("colour_name:N", sort=[names[t] for t in vocab.TIER_ORDER]),
        y=alt.Y("fill_rate:Q", title=titles["fill_rate"], axis=alt.Axis(format=".0%"),
                scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("colour_name:N", title=titles["colour"], scale=_tier_scale(names)),
        tooltip=[alt.Tooltip("scenario:N", title=titles["scenario"]),
                 alt.Tooltip("colour_name:N", title=titles["colour"]),
                 alt.Tooltip("fill_rate:Q", title=titles["fill_rate"], format=".1%")],
    ).properties(height=320)


def weekly(frame: pd.DataFrame, value: str, names: dict[str, str], titles: dict[str, str]
           ) -> alt.Chart:
    """A share (``value``, 0–1) per week and colour: weeks along the x axis, one line per
    colour (``frame`` has ``week``, ``tier`` and ``value``)."""
    data = frame.assign(colour_name=frame["tier"].map(names))
    return alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("week:O", title=titles["week"], sort="ascending", axis=alt.Axis(labelAngle=0)),
        y=alt.Y(f"{value}:Q", title=titles[value], axis=alt.Axis(format=".0%"),
                scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("colour_name:N", title=titles["colour"], scale=_tier_scale(names)),
        tooltip=[alt.Tooltip("week:O", title=titles["week"]),
                 alt.Tooltip("colour_name:N", title=titles["colour"]),
                 alt.Tooltip(f"{value}:Q", title=titles[value], format=".1%")],
    ).properties(height=300)


def spending(frame: pd.DataFrame, titles: dict[str, str]) -> alt.Chart:
    """Money spent per week, one line per fund (``frame``: ``fund_id``, ``week``, ``spent``)."""
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("week:O", title=titles["week"], sort="ascending", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("spent:Q", title=titles["spent"], axis=alt.Axis(format=",.0f")),
        color=alt.Color("fund_id:N", title=titles["fund_id"]),
        tooltip=[alt.Tooltip("week:O", title=titles["week"]),
                 alt.Tooltip("fund_id:N", title=titles["fund_id"]),
                 alt.Tooltip("spent:Q", title=titles["spent"], format=",.2f")],
    ).properties(height=280)
