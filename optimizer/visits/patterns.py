"""Once every visit is placed: the LP over each volunteer's whole *patterns* (docs/matching.md,
"Session 15: travel within 1 % by default").

With coverage settled (every unpinned visit placed), travel is a transportation problem over
*keys* (``bounds.key_pairs``) in which each volunteer has two capacities, free slots and free
hour units. As two rows of an LP those let a volunteer take part visits (the LP with hours,
even with the hours rows' Chvátal–Gomory cuts of ``settled.py``, is 2 % below the plans found
on the demo's final matching). Here a volunteer's visits *by length* must lie under a
combination of their **patterns** with weights summing to at most one (none: no visit): the
whole counts by length that fit their slots and hours and are maximal (no visit of any length
they could make fits beside them). So the LP keeps each volunteer's own integer hull:

* every whole plan is feasible for it (a volunteer's counts by length lie under some maximal
  pattern), so its value bounds travel over every pair of the whole model;
* given whole counts by length, the rest is a transportation problem (integral), so the LP's
  part visits sit only at the volunteers whose patterns mix: the travel repair re-places just
  those (``travel.improve_travel``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import highspy
import numpy as np

from wulian.optimizer.lexmip import quiet_stdout
from wulian.optimizer.visits.bounds import key_pairs, pair_positions
from wulian.optimizer.visits.prepare import VisitArrays
from wulian.optimizer.visits.settled import quiet_highs

#: Each key's nearest pairs the column generation starts from, and its most rounds.
NEAREST = 20
MAX_ROUNDS = 50
#: Reduced cost (metres) below which a pair enters the LP.
PRICE_TOLERANCE = 1e-6
#: The most patterns listed in all (the LP's columns; the district demo's final matching has
#: 4,420). Volunteers with many free slots and visits of many lengths have combinatorially
#: many (24 hours at quarter hours in 14 slots with ten lengths: 1.47 million for one
#: volunteer); past this the LP is not built and the travel repair falls back to the LP with
#: hours (``travel.improve_travel``), travel's bound to the hours flow.
MAX_PATTERNS = 200_000


@dataclass
class PatternModel:
    """The pattern LP as solved for travel, for the later levels to go on from: the HiGHS
    model (rows: keys, cells, volunteers' convexity; columns: each key's slack, the patterns,
    the pairs generated so far) and, per pair of ``bounds.key_pairs``, its key, volunteer,
    metres, hour units, upper bound, cell row and column (-1 while not generated)."""

    h: highspy.Highs
    n_keys: int
    key_arc: np.ndarray
    vol_arc: np.ndarray
    metres: np.ndarray
    units: np.ndarray
    upper: np.ndarray
    cell_row: np.ndarray
    col_of: np.ndarray


class TooManyPatterns(Exception):
    """Listing the patterns passed its limit."""


def _solved_duals(h: highspy.Highs) -> np.ndarray | None:
    """The LP solved (again, from its basis) and its row duals; ``None`` unless optimal."""
    with quiet_stdout():
        h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.asarray(h.getSolution().row_dual)


def maximal_patterns(slots: int, units: int, lengths: list[int], most: list[int],
                     limit: int | None = None) -> list[tuple[int, ...]]:
    """Every whole vector ``c`` (one count per length) with ``c ≤ most``, ``Σ c ≤ slots`` and
    ``Σ lengths·c ≤ units`` that no single visit can be added to.

    Raises
    ------
    TooManyPatterns
        When there are more than ``limit``.
    """
    found: list[tuple[int, ...]] = []

    def extend(at: int, counts: list[int], used_slots: int, used_units: int) -> None:
        if at == len(lengths):
            room = used_slots < slots
            if not any(room and counts[j] < most[j] and used_units + lengths[j] <= units
                       for j in range(len(lengths))):
                found.append(tuple(counts))
                if limit is not None and len(found) > limit:
                    raise TooManyPatterns
            return
        top = min(most[at], slots - used_slots, (units - used_units) // lengths[at])
        for c in range(top, -1, -1):
            counts.append(c)
            extend(at + 1, counts, used_slots + c, used_units + c * lengths[at])
            counts.pop()

    extend(0, [], 0, 0)
    return found


def pattern_lp(arrays: VisitArrays) -> tuple[np.ndarray, int, np.ndarray] | None:
    """The pattern LP's optimum over every key pair of ``bounds.key_pairs`` (its counts per
    pair, in that order), its value rounded up — a bound of the travel (metres) of every plan
    that places every unpinned visit — and each pair's reduced cost (metres). ``None`` when the
    pairs or the patterns are too many to list (:data:`MAX_PATTERNS`) or the LP is not
    solved. Worked out once per ``arrays``
    (``arrays.memo``): it does not depend on a plan."""
    if "pattern_lp" not in arrays.memo:
        arrays.memo["pattern_lp"] = _pattern_lp(arrays)
    return arrays.memo["pattern_lp"]


def _pattern_lp(arrays: VisitArrays) -> tuple[np.ndarray, int, np.ndarray] | None:
    listed = key_pairs(arrays)
    if listed is None:
        return None
    _, key_units, key_count, key_arc, vol_arc, metres = listed
    n, n_keys, n_vol = len(key_arc), len(key_count), len(arrays.vol_ids)
    if not n:
        return None
    # Each pair carries at most what its volunteer's slots and hours allow (as any plan).
    upper = np.minimum(key_count[key_arc], np.minimum(
        arrays.free_slots[vol_arc], arrays.free_units[vol_arc] // key_units[key_arc]))
    # Cells: (volunteer, length) with at least one pair; a pattern counts visits per cell.
    lengths = np.unique(key_units)
    cell_code = vol_arc * len(lengths) + np.searchsorted(lengths, key_units[key_arc])
    cells, cell_of_pair = np.unique(cell_code, return_inverse=True)
    cell_vol, cell_len = cells // len(lengths), lengths[cells % len(lengths)]
    reachable = np.bincount(cell_of_pair, weights=upper, minlength=len(cells)).astype(np.int64)
    first = np.searchsorted(cell_vol, np.arange(n_vol + 1))
    pattern_vol: list[int] = []  # each pattern's volunteer
    entry_cell: list[int] = []  # each (pattern, cell) count: its cell, pattern and count
    entry_pattern: list[int] = []
    entry_count: list[int] = []
    for v in np.flatnonzero(first[1:] > first[:-1]).tolist():
        own = np.arange(first[v], first[v + 1])
        try:
            listed_v = maximal_patterns(int(arrays.free_slots[v]), int(arrays.free_units[v]),
                                        cell_len[own].tolist(), reachable[own].tolist(),
                                        limit=MAX_PATTERNS - len(pattern_vol))
        except TooManyPatterns:
            return None
        for counts in listed_v:
            for cell, c in zip(own.tolist(), counts, strict=True):
                if c:
                    entry_cell.append(cell)
                    entry_pattern.append(len(pattern_vol))
                    entry_count.append(c)
            pattern_vol.append(v)
    n_pat = len(pattern_vol)
    inf = highspy.kHighsInf
    h = quiet_highs()
    # Rows first (keys' visits, cells, volunteers' convexity), then the patterns' columns,
    # then the pairs' columns by column generation: each key's NEAREST pairs first, then
    # every pair whose reduced cost is negative, priced over all pairs in one vectorised
    # pass per round, until none is (0.4 s of CPU on the demo's final matching, patterns
    # included, instead of 0.9 over every pair at once). A slack per key, dear enough never
    # to be used by an optimum that needs none, keeps the first rounds feasible.
    n_cells = len(cells)
    demand = key_count.astype(float)
    h.addRows(n_keys, demand, demand, 0, np.zeros(0, np.int32), np.zeros(0, np.int32),
              np.zeros(0))
    h.addRows(n_cells, np.full(n_cells, -inf), np.zeros(n_cells), 0, np.zeros(0, np.int32),
              np.zeros(0, np.int32), np.zeros(0))
    h.addRows(n_vol, np.zeros(n_vol), np.ones(n_vol), 0, np.zeros(0, np.int32),
              np.zeros(0, np.int32), np.zeros(0))
    dear = float(metres.max() + 1) * float(key_count.sum() + 1)
    h.addCols(n_keys, np.full(n_keys, dear), np.zeros(n_keys), demand, n_keys,
              np.arange(n_keys, dtype=np.int32), np.arange(n_keys, dtype=np.int32),
              np.ones(n_keys))
    # Each pattern: −its count in each of its cells, +1 in its volunteer's convexity row.
    index = np.concatenate([n_keys + np.asarray(entry_cell, np.int64),
                            n_keys + n_cells + np.asarray(pattern_vol, np.int64)])
    column = np.concatenate([np.asarray(entry_pattern, np.int64), np.arange(n_pat)])
    coef = np.concatenate([-np.asarray(entry_count, float), np.ones(n_pat)])
    order = np.argsort(column, kind="stable")
    h.addCols(n_pat, np.zeros(n_pat), np.zeros(n_pat), np.ones(n_pat), len(index),
              np.searchsorted(column[order], np.arange(n_pat)).astype(np.int32),
              index[order].astype(np.int32), coef[order])
    first_pair_col = n_keys + n_pat
    col_of = np.full(n, -1, np.int64)
    in_lp: list[np.ndarray] = []

    def add(pairs: np.ndarray) -> None:
        """Columns for these pairs: +1 in their key's row and in their cell's row."""
        rows = np.stack([key_arc[pairs], n_keys + cell_of_pair[pairs]], axis=1)
        rows.sort(axis=1)
        h.addCols(len(pairs), metres[pairs].astype(float), np.zeros(len(pairs)),
                  upper[pairs].astype(float), 2 * len(pairs),
                  np.arange(0, 2 * len(pairs), 2, dtype=np.int32),
                  rows.ravel().astype(np.int32), np.ones(2 * len(pairs)))
        col_of[pairs] = first_pair_col + sum(map(len, in_lp)) + np.arange(len(pairs))
        in_lp.append(pairs)

    by_metres = np.lexsort((vol_arc, metres, key_arc))
    rank = np.empty(n, np.int64)
    rank[by_metres] = np.arange(n) - np.searchsorted(key_arc[by_metres], key_arc[by_metres])
    add(np.flatnonzero(rank < NEAREST))
    for _ in range(MAX_ROUNDS):
        dual = _solved_duals(h)
        if dual is None:
            return None
        reduced = metres - dual[key_arc] - dual[n_keys + cell_of_pair]
        outside = col_of < 0
        enter = np.flatnonzero(outside & (reduced < -PRICE_TOLERANCE))
        if not len(enter):
            break
        add(enter)
    else:
        return None  # not settled
    value = np.asarray(h.getSolution().col_value, float)
    if value[:n_keys].sum() > 1e-6:  # a key's visits could not all be placed
        return None
    # Kept for the later levels' bounds (``later_bounds``), which hold travel and go on
    # from this basis.
    arrays.memo["pattern_model"] = PatternModel(
        h, n_keys, key_arc, vol_arc, metres, key_units[key_arc], upper, n_keys + cell_of_pair,
        col_of)
    x = np.zeros(n)
    x[~outside] = value[col_of[~outside]]
    # A bound whatever the tolerance left: the pairs outside the LP may still price
    # slightly below zero, each at most at its upper bound (the Lagrangian bound of these
    # duals).
    missed = float(np.minimum(reduced[outside], 0.0) @ upper[outside])
    # Rounded up (every plan travels whole metres) after a margin relative to the value, as
    # HiGHS' tolerances are: an LP optimum that is whole must not round up by its noise.
    objective = h.getInfo().objective_function_value + missed
    return x, math.ceil(objective - 1e-7 * max(1.0, abs(objective))), reduced


def continuity_caps(arrays: VisitArrays, listed: tuple[np.ndarray, ...]) -> np.ndarray:
    """Per pair of ``bounds.key_pairs`` (``listed``), the most continuity it can carry: the
    visits of its key's groups whose last volunteer is its volunteer."""
    group_key, _, _, key_arc, vol_arc, _ = listed
    n, n_vol = len(key_arc), len(arrays.vol_ids)
    code = key_arc * n_vol + vol_arc
    by_code = np.argsort(code, kind="stable")
    g = np.flatnonzero((arrays.g_count > 0) & (group_key >= 0) & (arrays.g_last >= 0))
    want = group_key[g] * n_vol + arrays.g_last[g]
    at = np.minimum(np.searchsorted(code[by_code], want), max(n - 1, 0))
    found = code[by_code][at] == want if n else np.zeros(len(g), bool)
    return np.bincount(by_code[at[found]], weights=arrays.g_count[g[found]],
                       minlength=n).astype(np.int64)


def later_bounds(arrays: VisitArrays, used: tuple[np.ndarray, np.ndarray, np.ndarray]
                 ) -> dict[str, int]:
    """Bounds of continuity and load over every pair when ``used`` places every unpinned visit,
    each holding the earlier levels at the plan's values (docs/matching.md, "Bounds"): the
    pattern LP with travel at most the plan's maximises continuity (a continuity column per
    key pair whose volunteer is the last of some of the key's groups, at most their visits);
    with continuity at least the plan's as well, it minimises load (each volunteer's hours a
    sum of unit steps, step ``s`` costing ``(P + s)² − (P + s − 1)²``: convex, so the LP takes
    them in order and pays at most the squares). Goes on from :func:`pattern_lp`'s solved
    model: its basis stays primal feasible under continuity's holds, so the primal simplex
    restarts from it; load's hours rows start violated (the steps at 0), so its solve begins
    with a feasibility phase (0.14 s and 0.7 s of CPU on the demo's final matching). Returns
    {level: bound} in the model's units (visits; hour units squared, pinned hours included);
    empty when the pattern LP is not built or an LP is not solved. It uses up the pattern LP
    (the holds change it): a second call on the same ``arrays`` returns {}."""
    if pattern_lp(arrays) is None or "pattern_model" not in arrays.memo:
        return {}
    m: PatternModel = arrays.memo.pop("pattern_model")  # changed below: used once
    listed = key_pairs(arrays)
    assert listed is not None  # the pattern LP was built on it
    group_key = listed[0]
    h, n_keys, col_of = m.h, m.n_keys, m.col_of
    n, n_vol = len(m.key_arc), len(arrays.vol_ids)
    inf = highspy.kHighsInf
    ug, uv, uc = used
    x_plan = np.zeros(n)
    np.add.at(x_plan, pair_positions(m.key_arc, m.vol_arc, n_vol, group_key[ug], uv), uc)
    travel_plan = float(m.metres @ x_plan)
    continuity_plan = int(((arrays.g_last[ug] == uv) * uc).sum())
    cont_cap = np.minimum(continuity_caps(arrays, listed), m.upper)
    cont_pairs = np.flatnonzero(cont_cap > 0)
    extra_rows: list[np.ndarray] = []  # per pair, the rows the holds add (travel, hours)
    extra_coef: list[np.ndarray] = []

    def add_rows(lower: np.ndarray, upper: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                 coef: np.ndarray) -> int:
        """Rows ``lower ≤ Σ coef·x ≤ upper``, entry ``j`` in row ``rows[j]`` (counted from the
        first new row) and column ``cols[j]``; returns the first new row."""
        first_row = h.getNumRow()
        order = np.lexsort((cols, rows))
        h.addRows(len(lower), lower, upper, len(order),
                  np.searchsorted(rows[order], np.arange(len(lower))).astype(np.int32),
                  cols[order].astype(np.int32), coef[order].astype(float))
        return first_row

    def add_cols(pairs: np.ndarray, cost: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """Columns of these pairs in their key's and cell's rows and the holds' rows."""
        rows = [m.key_arc[pairs], m.cell_row[pairs], *(r[pairs] for r in extra_rows)]
        coef = [np.ones(len(pairs)), np.ones(len(pairs)), *(c[pairs] for c in extra_coef)]
        first_col = h.getNumCol()
        k = len(rows)
        h.addCols(len(pairs), cost.astype(float), np.zeros(len(pairs)), upper.astype(float),
                  k * len(pairs), np.arange(0, k * len(pairs), k, dtype=np.int32),
                  np.stack(rows, axis=1).ravel().astype(np.int32),
                  np.stack(coef, axis=1).ravel().astype(float))
        return first_col + np.arange(len(pairs))

    def solve() -> float | None:
        """The LP by column generation over the pairs not generated yet (once travel is
        held, a pair costs nothing itself), its value less what those pairs could still save
        at their upper bounds (so a bound whatever the tolerance left)."""
        for _ in range(MAX_ROUNDS):
            dual = _solved_duals(h)
            if dual is None:
                return None
            reduced = -dual[m.key_arc] - dual[m.cell_row]
            for rows, coef in zip(extra_rows, extra_coef, strict=True):
                reduced = reduced - coef * dual[rows]
            outside = col_of < 0
            enter = np.flatnonzero(outside & (reduced < -PRICE_TOLERANCE))
            if not len(enter):
                missed = float(np.minimum(reduced[outside], 0.0) @ m.upper[outside])
                return float(h.getInfo().objective_function_value) + missed
            col_of[enter] = add_cols(enter, np.zeros(len(enter)), m.upper[enter])
        return None

    bounds: dict[str, int] = {}
    # Continuity, travel held: every plan places every visit (the keys' slacks go) and
    # travels at most the plan's metres. The primal simplex goes on from the travel basis.
    h.setOptionValue("simplex_strategy", 4)
    h.changeColsBounds(n_keys, np.arange(n_keys, dtype=np.int32), np.zeros(n_keys),
                       np.zeros(n_keys))
    inside = np.flatnonzero(col_of >= 0)
    travel_row = add_rows(np.array([-inf]), np.array([travel_plan]), np.zeros(len(inside), int),
                          col_of[inside], m.metres[inside].astype(float))
    extra_rows.append(np.full(n, travel_row))
    extra_coef.append(m.metres.astype(float))
    h.changeColsCost(len(inside), col_of[inside].astype(np.int32), np.zeros(len(inside)))
    cont_cols = add_cols(cont_pairs, -np.ones(len(cont_pairs)), cont_cap[cont_pairs])
    value = solve()
    if value is None:
        return bounds
    # Rounded down (continuity counts whole visits) after a margin relative to the value.
    bounds["continuity"] = math.floor(-value + 1e-7 * max(1.0, abs(value)))
    # Load, travel and continuity held: each volunteer's hour units are their steps.
    h.addRow(continuity_plan, inf, len(cont_cols), cont_cols.astype(np.int32),
             np.ones(len(cont_cols)))
    h.changeColsCost(len(cont_cols), cont_cols.astype(np.int32), np.zeros(len(cont_cols)))
    inside = np.flatnonzero(col_of >= 0)
    pairs_in = np.concatenate([inside, cont_pairs])
    hours_row = add_rows(np.full(n_vol, -inf), np.zeros(n_vol), m.vol_arc[pairs_in],
                         np.concatenate([col_of[inside], cont_cols]),
                         m.units[pairs_in].astype(float))
    extra_rows.append(hours_row + m.vol_arc)
    extra_coef.append(m.units.astype(float))
    busy = np.unique(m.vol_arc)  # a volunteer without pairs works only their pinned hours
    step_vol = np.repeat(busy, arrays.free_units[busy])
    step = np.arange(len(step_vol)) - np.repeat(
        np.cumsum(arrays.free_units[busy]) - arrays.free_units[busy], arrays.free_units[busy]) + 1
    pinned = arrays.pinned_units
    k = len(step_vol)
    h.addCols(k, (2 * (pinned[step_vol] + step) - 1).astype(float), np.zeros(k), np.ones(k), k,
              np.arange(k, dtype=np.int32), (hours_row + step_vol).astype(np.int32),
              -np.ones(k))
    value = solve()
    if value is None:
        return bounds
    value += float((pinned ** 2).sum())
    bounds["load"] = math.ceil(value - 1e-7 * max(1.0, abs(value)))
    return bounds
