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

import highspy
import numpy as np

from wulian.optimizer.lexmip import quiet_stdout
from wulian.optimizer.visits.bounds import key_pairs
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


class TooManyPatterns(Exception):
    """Listing the patterns passed its limit."""


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
        with quiet_stdout():
            h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        dual = np.asarray(h.getSolution().row_dual)
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
