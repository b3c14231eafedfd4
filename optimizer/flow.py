"""The network parts of a lexicographic model, solved exactly as min-cost flows.

A lexicographic model (``optimizer/lexmip.py``: columns, ``Rows``, ``Level``s) separates over
the connected components of its column–row incidence graph: every objective is a sum over
columns and no row crosses two components, so the lexicographic optimum is, level by level, the
sum of the components' own lexicographic optima. ``solve_parts`` splits the model that way:

- a component whose rows are only ``need`` (equalities), ``offer`` and ``offer_household``
  rows, all with unit coefficients, is a transportation network (``network_mask``) and is solved
  with OR-Tools ``SimpleMinCostFlow`` (``solve_network``), every level, exactly;
- every other component (fund budgets couple prices, street rows weigh hours) goes to HiGHS
  (``solve_lexicographic``), all of them in one model as before.

The network: a root ``S`` supplies every need's quantity; an offer row is an arc ``S → offer``
(its capacity), a per-household row an arc ``offer → (household, offer)``, an arc column runs
from its offer (or household-offer) node to its need's node, and a need's unserved column is an
arc ``S → need`` of no cost. Column lower bounds (pins) are sent first.

Levels are held by complementary slackness, not by value rows: once a level is optimal, node
potentials (shortest distances to ``S`` in the residual graph, found by a vectorised
Bellman–Ford) give every arc a reduced cost; an arc with a positive one is at its lower bound in
every optimal flow and one with a negative one at its upper bound, so fixing them leaves exactly
the level's optimal face for the next level. docs/model.md states the integer scaling of costs
and the tolerance it implies; a component whose flow fails the check with the real costs goes
to HiGHS instead.

Built from numpy arrays; no Python loop per arc, column or row.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ortools.graph.python import min_cost_flow

from wulian.optimizer.graph import components
from wulian.optimizer.lexmip import Level, LevelResult, LexResult, Rows, solve_lexicographic
from wulian.optimizer.status import Status

NETWORK_FAMILIES = ("need", "offer", "offer_household")
# SimpleMinCostFlow works in int64 and multiplies costs by (nodes + 1) inside; the scaled costs
# times that, and times the largest total flow, stay below this (as in
# optimizer/visits/component.py).
FLOW_COST_LIMIT = 2**62
# Largest scaled cost: an integer a double holds exactly, so scaling loses nothing but the
# bits below 2^-k.
EXACT_INTEGER = 2**53
# Tries, and bits given up per try, when OR-Tools finds the scaled costs out of its range.
SCALE_TRIES = 4
SCALE_RETREAT = 6
# A component's flow is accepted when its proven gap (the real costs against the bound from
# its potentials) is at most this, relative to max(1, |its value|): tighter than HiGHS' own
# mip_rel_gap (1e-7) and than the 1e-6 at which lexmip calls a level optimal.
GAP_TOLERANCE = 1e-9
# Rounds of Bellman–Ford that settle the integer potentials for the real costs (they start
# off by at most 2^-k per arc, so a few rounds do; any potentials give a valid bound).
REFINE_ROUNDS = 50


class FlowFailure(RuntimeError):
    """The flow could not be solved (status, cost range, a negative cycle): use HiGHS."""


@dataclass
class Parts:
    """How a model was split, for run.json and benchmarks."""

    components: int = 0  # connected components with at least one column
    flow_components: int = 0  # of which solved as networks (after any fall-back)
    flow_columns: int = 0
    highs_columns: int = 0
    fallback_components: int = 0  # networks whose flow failed its check: HiGHS solved them
    flow_seconds: float = 0.0
    highs_seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        """The deterministic part (no times): what AllocationResult.sizes carries."""
        return {"components": self.components, "flow_components": self.flow_components,
                "flow_columns": self.flow_columns, "highs_columns": self.highs_columns,
                "flow_fallbacks": self.fallback_components}


# ----------------------------------------------------------------------------- the split


def _triplets(rows: Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = np.concatenate(rows.row) if rows.row else np.zeros(0, np.int64)
    c = np.concatenate(rows.col) if rows.col else np.zeros(0, np.int64)
    v = np.concatenate(rows.val) if rows.val else np.zeros(0)
    keep = v != 0
    return r[keep], c[keep], v[keep]


def _family_codes(rows: Rows) -> np.ndarray:
    """Per row: its family's position in NETWORK_FAMILIES, or len(NETWORK_FAMILIES)."""
    code = np.full(rows.count, len(NETWORK_FAMILIES), np.int64)
    for family, first, n in rows.names:
        if family in NETWORK_FAMILIES:
            code[first:first + n] = NETWORK_FAMILIES.index(family)
    return code


def _whole(a: np.ndarray) -> np.ndarray:
    """Finite and a whole number (a flow's capacities and supplies are integers)."""
    return np.isfinite(a) & (a == np.round(a))


def network_mask(lower: np.ndarray, upper: np.ndarray, rows: Rows
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(component label per column, per row; is each column's component a network).

    A row with no entry is labelled -1. A component is a network when every row in it is a
    ``need`` equality with a whole right-hand side, or an ``offer`` / ``offer_household`` row
    ``≤`` a whole number (or unbounded); every coefficient is 1; every column has whole bounds
    ``0 ≤ lower ≤ upper < ∞`` and lies in exactly one need row, at most one offer row and at
    most one household row; and all the columns of a household row share one offer row (so
    the household node hangs under one offer node).
    """
    n = len(lower)
    r, c, v = _triplets(rows)
    label = components(n + rows.count, c, n + r)
    col_label = label[:n]
    has_entry = np.zeros(rows.count, bool)
    has_entry[r] = True
    row_label = np.where(has_entry, label[n:], -1)

    fam = _family_codes(rows)
    lo = np.concatenate(rows.lower) if rows.lower else np.zeros(0)
    hi = np.concatenate(rows.upper) if rows.upper else np.zeros(0)
    need, offer, household = (fam == k for k in range(len(NETWORK_FAMILIES)))
    good_row = np.where(need, (lo == hi) & _whole(hi),
                        (need | offer | household) & (~np.isfinite(lo) | (lo <= 0))
                        & (~np.isfinite(hi) | _whole(hi)))
    good_col = (lower >= 0) & _whole(lower) & _whole(upper) & (lower <= upper)
    good_col &= np.bincount(c[need[r]], minlength=n) == 1
    for k in (1, 2):
        good_col &= np.bincount(c[fam[r] == k], minlength=n) <= 1
    # A household row's columns all in the same offer row (or all in none).
    offer_of = np.full(n, -1, np.int64)
    offer_of[c[offer[r]]] = r[offer[r]]
    in_hh = household[r]
    hh_offer_min = np.full(rows.count, np.iinfo(np.int64).max)
    hh_offer_max = np.full(rows.count, np.iinfo(np.int64).min)
    np.minimum.at(hh_offer_min, r[in_hh], offer_of[c[in_hh]])
    np.maximum.at(hh_offer_max, r[in_hh], offer_of[c[in_hh]])
    good_row &= ~household | ~has_entry | (hh_offer_min == hh_offer_max)

    bad = np.zeros(n + rows.count, bool)
    bad[col_label[~good_col]] = True
    bad[row_label[has_entry & ~good_row]] = True
    bad[col_label[c[v != 1]]] = True
    return col_label, row_label, ~bad[col_label]


def sub_rows(rows: Rows, keep_row: np.ndarray, col_index: np.ndarray) -> Rows:
    """The rows ``keep_row`` of ``rows``, families kept, columns renumbered by ``col_index``
    (global → local, -1 for a column not in the part; entries there must not exist)."""
    out = Rows()
    r, c, v = _triplets(rows)
    lo = np.concatenate(rows.lower) if rows.lower else np.zeros(0)
    hi = np.concatenate(rows.upper) if rows.upper else np.zeros(0)
    new_row = np.cumsum(keep_row) - 1  # a kept row's index among the kept rows
    entry = keep_row[r]
    r, c, v = r[entry], c[entry], v[entry]
    for family, first, count in rows.names:
        inside = (r >= first) & (r < first + count)
        kept = np.flatnonzero(keep_row[first:first + count]) + first
        start = out.count
        out.add(family, new_row[r[inside]] - start, col_index[c[inside]], v[inside],
                lo[kept], hi[kept])
    return out


# ----------------------------------------------------------------------------- the network


@dataclass
class _Graph:
    tail: np.ndarray  # arcs: the columns first (same order), then one arc per capacity row
    head: np.ndarray
    lower: np.ndarray  # int64
    upper: np.ndarray  # int64
    supply: np.ndarray  # int64, per node; node 0 is the root S, node 1 + r is row r
    row_arc: np.ndarray  # per row: its arc (offer and household rows), -1 for a need row
    n_cols: int


def _graph(lower: np.ndarray, upper: np.ndarray, rows: Rows) -> _Graph:
    """The flow network of a model that ``network_mask`` accepted in full."""
    m = len(lower)
    r, c, _ = _triplets(rows)
    fam = _family_codes(rows)
    hi_row = np.concatenate(rows.upper) if rows.upper else np.zeros(0)
    of = {}
    for k in range(len(NETWORK_FAMILIES)):
        at = np.full(m, -1, np.int64)
        at[c[fam[r] == k]] = r[fam[r] == k]
        of[k] = at
    need_of, offer_of, hh_of = of[0], of[1], of[2]
    col_tail = np.where(hh_of >= 0, 1 + hh_of, np.where(offer_of >= 0, 1 + offer_of, 0))
    col_head = 1 + need_of
    # Capacity rows: an offer row hangs under S, a household row under its offer's node.
    cap_rows = np.flatnonzero(fam > 0)
    hh_parent = np.zeros(rows.count, np.int64)  # S (0), or the node of its columns' offer
    hh_parent[hh_of[hh_of >= 0]] = 1 + offer_of[hh_of >= 0]
    row_tail = np.where(fam[cap_rows] == 2, hh_parent[cap_rows], 0)
    supply = np.zeros(rows.count + 1, np.int64)
    need_rows = np.flatnonzero(fam == 0)
    q = np.round(hi_row[need_rows]).astype(np.int64)
    supply[1 + need_rows] = -q
    supply[0] = q.sum()
    lo_col = np.round(lower).astype(np.int64)
    hi_col = np.round(upper).astype(np.int64)
    # An unbounded row: no flow can exceed everything S supplies.
    big = int(supply[0]) + int(lo_col.sum()) + 1
    cap = hi_row[cap_rows]
    cap = np.minimum(np.nan_to_num(cap, posinf=big), big)
    row_arc = np.full(rows.count, -1, np.int64)
    row_arc[cap_rows] = m + np.arange(len(cap_rows))
    return _Graph(
        tail=np.concatenate([col_tail, row_tail]).astype(np.int64),
        head=np.concatenate([col_head, 1 + cap_rows]).astype(np.int64),
        lower=np.concatenate([lo_col, np.zeros(len(cap_rows), np.int64)]),
        upper=np.concatenate([hi_col, cap.astype(np.int64)]),
        supply=supply, row_arc=row_arc, n_cols=m)


def scale_exponent(cost: np.ndarray, room: np.ndarray, n_nodes: int) -> int:
    """The largest k such that, with costs scaled by 2^k and rounded: the largest cost is at
    most 2^53 (a double holds it exactly); times 2 (nodes + 2), at most FLOW_COST_LIMIT
    (OR-Tools multiplies costs by nodes + 1 and refuses more than 2^63 ÷ 2 (nodes + 1);
    distances in the residual graph, and the "far" distance of a node that cannot reach S,
    stay below it too); and Σ |cost| × capacity (the most any flow costs) at most half of
    FLOW_COST_LIMIT. A power of two, so scaling a double by it is exact: only the bits below
    2^-k are lost."""
    cmax = float(np.abs(cost).max(initial=0.0))
    if cmax == 0:  # a level without costs: any scale does (its first flow is still solved)
        return 0
    total = float(np.abs(cost) @ room.astype(float))
    limit = min(EXACT_INTEGER / cmax, FLOW_COST_LIMIT / (2 * n_nodes + 4) / cmax,
                FLOW_COST_LIMIT / 2 / max(total, cmax))
    k = math.floor(math.log2(limit))
    while math.ldexp(cmax, k) > limit * cmax or math.ldexp(total, k) > FLOW_COST_LIMIT / 2:
        k -= 1
    return k


def _min_cost_flow(g: _Graph, lower: np.ndarray, upper: np.ndarray, real: np.ndarray,
                   k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """An optimal integer flow with ``lower ≤ x ≤ upper`` (int64 arrays; lower bounds sent
    first by moving them into the supplies) for the costs ``real`` scaled by 2^k and rounded:
    (flow, integer costs, k).

    OR-Tools also reports BAD_COST_RANGE when a node potential would overflow during its
    cost scaling, which no static bound foresees: then the costs are scaled
    ``SCALE_RETREAT`` bits coarser and the flow solved again (the check with the real costs
    says whether the coarser costs still gave an optimal flow).
    """
    n_nodes = len(g.supply)
    supply = g.supply - np.bincount(g.tail, weights=lower, minlength=n_nodes).astype(np.int64) \
        + np.bincount(g.head, weights=lower, minlength=n_nodes).astype(np.int64)
    status = "not tried"
    for _ in range(SCALE_TRIES):
        cost = np.round(np.ldexp(real, k)).astype(np.int64)
        mcf = min_cost_flow.SimpleMinCostFlow()
        arcs = mcf.add_arcs_with_capacity_and_unit_cost(
            g.tail.astype(np.int32), g.head.astype(np.int32), upper - lower, cost)
        mcf.set_nodes_supplies(np.arange(n_nodes, dtype=np.int32), supply)
        status = mcf.solve()
        if status == mcf.OPTIMAL:
            return lower + np.asarray(mcf.flows(arcs), np.int64), cost, k
        if status != mcf.BAD_COST_RANGE:
            break
        k -= SCALE_RETREAT
    raise FlowFailure(f"min-cost flow returned {status}")


def _residual(g: _Graph, x: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arcs (from, to, cost) of the residual graph of ``x``, sorted by ``from``."""
    fwd, bwd = x < upper, x > lower
    frm = np.concatenate([g.tail[fwd], g.head[bwd]])
    to = np.concatenate([g.head[fwd], g.tail[bwd]])
    w = np.concatenate([cost[fwd], -cost[bwd]])
    order = np.argsort(frm, kind="stable")
    return frm[order], to[order], w[order]


def _distances_to_root(frm: np.ndarray, to: np.ndarray, w: np.ndarray, d: np.ndarray,
                       rounds: int) -> tuple[np.ndarray, bool]:
    """Shortest distances to the root (node 0) along the arcs ``(frm → to, w)`` (sorted by
    ``frm``), starting from the upper estimates ``d``; and whether they settled.

    Bellman–Ford, one vectorised relaxation of every arc per round, at most ``rounds``
    rounds. Started from ``d = far`` for every node but the root (as if every node had an arc
    to the root of that cost, longer than any path), a node that cannot reach the root keeps
    a distance that is still a valid potential.
    """
    d = d.copy()
    if not len(frm):
        return d, True
    starts = np.flatnonzero(np.r_[True, frm[1:] != frm[:-1]])
    owner = frm[starts]
    for _ in range(rounds):
        best = np.minimum(d[owner], np.minimum.reduceat(w + d[to], starts))
        if np.array_equal(best, d[owner]):
            return d, True
        d[owner] = best
    return d, False


@dataclass
class NetworkResult:
    x: np.ndarray  # per column of the network model
    values: np.ndarray  # [level, component]: the level's value in the component
    gaps: np.ndarray  # [level, component]: proven distance to the bound (≥ 0)
    failed: np.ndarray  # per component: its flow failed the check at some level
    duals: dict[str, np.ndarray] = field(default_factory=dict)  # per row of the network model
    seconds: list[float] = field(default_factory=list)


def solve_network(lower: np.ndarray, upper: np.ndarray, rows: Rows, levels: Sequence[Level],
                  col_part: np.ndarray, row_part: np.ndarray, n_parts: int,
                  dual_levels: Sequence[str] = ()) -> NetworkResult:
    """Every level of a network model (all of its components accepted by ``network_mask``;
    ``col_part``/``row_part`` number them 0 … n_parts−1), exactly, by min-cost flow.

    Raises
    ------
    FlowFailure
        When OR-Tools cannot solve a level (infeasible pins, cost range).
    """
    g = _graph(lower, upper, rows)
    m = g.n_cols
    n_nodes = len(g.supply)
    lo, hi = g.lower.copy(), g.upper.copy()
    arc_part = np.concatenate([col_part, row_part[g.row_arc >= 0]])  # row arcs in row order
    x = lo.copy()
    values = np.zeros((len(levels), n_parts))
    gaps = np.zeros((len(levels), n_parts))
    failed = np.zeros(n_parts, bool)
    duals: dict[str, np.ndarray] = {}
    seconds: list[float] = []
    for i, level in enumerate(levels):
        t0 = time.perf_counter()
        sign = -1.0 if level.sense == "max" else 1.0  # the flow minimises
        real = np.concatenate([sign * np.asarray(level.cost, float), np.zeros(len(hi) - m)])
        cmax = float(np.abs(real).max(initial=0.0))
        if cmax == 0 and i > 0:  # nothing to optimise: any flow of the face is optimal, keep x
            # (the first level is always solved, costs or not: x = lower bounds is no flow)
            if level.name in dual_levels:
                duals[level.name] = np.zeros(rows.count)
            seconds.append(time.perf_counter() - t0)
            continue
        x, cost, k = _min_cost_flow(g, lo, hi, real, scale_exponent(real, hi - lo, n_nodes))
        # Potentials: distances to S in the residual graph, exact in integers. More rounds
        # than nodes, or a root below 0, would mean a negative cycle: x is not optimal.
        frm, to, w = _residual(g, x, lo, hi, cost)
        # "far": farther than any path (at most nodes × the largest cost), and a node that
        # cannot reach S stays farther than any node that can.
        top = int(np.abs(cost).max())
        start = np.full(n_nodes, 2 * (n_nodes + 1) * top + 1, np.int64)
        start[0] = 0
        d, settled = _distances_to_root(frm, to, w, start, n_nodes + 1)
        if not settled or d[0] < 0:
            raise FlowFailure(f"level {level.name}: negative cycle in the residual graph")
        reduced = cost + d[g.head] - d[g.tail]  # the integer problem's reduced costs, exact
        # The same potentials for the real costs, settled once more (the rounding of costs
        # leaves them off by up to 2^-k per arc); a bounded number of rounds, since any
        # potentials give a valid bound.
        _, _, w_real = _residual(g, x, lo, hi, real)  # same arcs, same order
        p, _ = _distances_to_root(frm, to, w_real, np.ldexp(d.astype(float), -k), REFINE_ROUNDS)
        real_reduced = real + p[g.head] - p[g.tail]
        # Lagrangian bound with these potentials: no flow of this face costs less than
        # Σ supply·potential + Σ over arcs of the least of reduced cost × lower or × upper, so
        # (value − bound), the sum below, is a proven gap.
        slack = np.where(real_reduced > 0, real_reduced * (x - lo),
                         np.where(real_reduced < 0, -real_reduced * (hi - x), 0.0))
        values[i] = np.bincount(col_part, weights=np.asarray(level.cost, float) * x[:m],
                                minlength=n_parts)
        gaps[i] = np.bincount(arc_part, weights=slack, minlength=n_parts)
        failed |= gaps[i] > GAP_TOLERANCE * np.maximum(1.0, np.abs(values[i]))
        if level.name in dual_levels:
            duals[level.name] = _row_duals(g, rows.count, real_reduced, p, level.sense,
                                           reachable=d <= n_nodes * top)
        # Hold the level: an arc with a positive reduced cost is at its lower bound in every
        # optimal flow, one with a negative reduced cost at its upper bound.
        lo, hi = np.where(reduced < 0, hi, lo), np.where(reduced > 0, lo, hi)
        seconds.append(time.perf_counter() - t0)
        if os.environ.get("WULIAN_TRACE"):
            print(f"  flow {level.name}: {values[i].sum():.6g} gap {gaps[i].sum():.2g} "
                  f"2^{k} {seconds[-1]:.2f}s", flush=True)
    return NetworkResult(x=x[:m].astype(float), values=values, gaps=gaps, failed=failed,
                         duals=duals, seconds=seconds)


def _row_duals(g: _Graph, n_rows: int, real_reduced: np.ndarray, p: np.ndarray, sense: str,
               reachable: np.ndarray) -> np.ndarray:
    """Each row's marginal value in the level's own sense and units (as HiGHS' row duals).

    With potentials = distances to S, the reduced cost of a capacity row's arc (``S → offer``)
    is the cost of the best cycle that one more unit of capacity opens: when negative, one
    more unit improves the level by exactly that much. A need row's value is its node's
    potential (one more unit of need, supplied by S); 0 for a node that cannot reach S."""
    sign = -1.0 if sense == "max" else 1.0
    out = np.zeros(n_rows)
    cap = g.row_arc >= 0
    out[cap] = sign * np.minimum(real_reduced[g.row_arc[cap]], 0.0)
    node = 1 + np.flatnonzero(~cap)
    out[~cap] = np.where(reachable[node], -sign * p[node], 0.0)
    return out + 0.0


# ----------------------------------------------------------------------------- the whole


def solve_parts(lower: np.ndarray, upper: np.ndarray, integer: np.ndarray, rows: Rows,
                levels: Sequence[Level], *, flow: bool = True, dual_levels: Sequence[str] = (),
                **highs) -> tuple[LexResult, Parts]:
    """``solve_lexicographic``, with the model's network components solved as min-cost flows.

    Parameters
    ----------
    lower, upper, integer, rows, levels, dual_levels
        As for ``solve_lexicographic``.
    flow
        Solve network components by min-cost flow; without it the whole model goes to HiGHS.
    **highs
        The other keywords of ``solve_lexicographic`` (time limit, threads, seed, exact,
        certify), for the HiGHS part.

    Returns
    -------
    (LexResult, Parts)
        The merged result (columns, level values and bounds summed over the parts, row duals
        of both) and how the model was split.
    """
    start = time.perf_counter()
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    n = len(lower)
    col_label, row_label, is_net = network_mask(lower, upper, rows)
    parts = Parts(components=len(np.unique(col_label)))
    if not flow:
        is_net[:] = False
    on_flow = np.zeros(n, bool)  # columns whose flow is kept
    flow_rows = np.zeros(rows.count, bool)  # rows whose flow is kept
    net: NetworkResult | None = None
    if is_net.any():
        labels, col_part = np.unique(col_label[is_net], return_inverse=True)
        net_rows = np.isin(row_label, labels)
        cols = np.flatnonzero(is_net)
        index = np.full(n, -1, np.int64)
        index[cols] = np.arange(len(cols))
        t0 = time.perf_counter()
        try:
            net = solve_network(lower[cols], upper[cols], sub_rows(rows, net_rows, index),
                                [_sub_level(lv, cols, index) for lv in levels], col_part,
                                np.searchsorted(labels, row_label[net_rows]), len(labels),
                                dual_levels)
        except FlowFailure as exc:
            if os.environ.get("WULIAN_TRACE"):
                print(f"  flow failed ({exc}): HiGHS solves the whole model", flush=True)
        parts.flow_seconds = time.perf_counter() - t0
        if net is not None:
            # A component whose flow failed its check goes to HiGHS with the rest.
            kept_cols = ~net.failed[col_part]
            kept_rows = ~np.isin(row_label[net_rows], labels[net.failed])
            on_flow[cols[kept_cols]] = True
            flow_rows[np.flatnonzero(net_rows)[kept_rows]] = True
            parts.fallback_components = int(net.failed.sum())
            parts.flow_components = len(labels) - parts.fallback_components
    parts.flow_columns = int(on_flow.sum())
    parts.highs_columns = n - parts.flow_columns
    if net is None or not on_flow.any():
        res = solve_lexicographic(lower, upper, integer, rows, levels, dual_levels=dual_levels,
                                  **highs)
        parts.highs_seconds = res.solve_seconds
        return res, parts

    x = np.zeros(n)
    x[on_flow] = net.x[kept_cols]
    ok = ~net.failed
    results = []
    for i, lv in enumerate(levels):
        value, gap = float(net.values[i][ok].sum()), float(net.gaps[i][ok].sum())
        results.append(LevelResult(lv.name, lv.sense, value,
                                   value + gap if lv.sense == "max" else value - gap,
                                   Status.OPTIMAL, net.seconds[i]))
    duals: dict[str, np.ndarray] = {}
    for name, d in net.duals.items():
        duals[name] = np.zeros(rows.count)
        duals[name][flow_rows] = d[kept_rows]
    build = 0.0
    if parts.highs_columns:
        t0 = time.perf_counter()
        cols = np.flatnonzero(~on_flow)
        index = np.full(n, -1, np.int64)
        index[cols] = np.arange(len(cols))
        res = solve_lexicographic(lower[cols], upper[cols], np.asarray(integer, bool)[cols],
                                  sub_rows(rows, ~flow_rows, index),
                                  [_sub_level(lv, cols, index) for lv in levels],
                                  dual_levels=dual_levels, **highs)
        parts.highs_seconds = time.perf_counter() - t0
        build = res.build_seconds
        x[cols] = res.x
        for r, hr in zip(results, res.levels, strict=True):
            r.value += hr.value
            r.bound += hr.bound  # nan when HiGHS proves no bound: then the sum has none
            r.status = hr.status
            r.seconds += hr.seconds
        for name, d in res.duals.items():
            duals.setdefault(name, np.zeros(rows.count))[~flow_rows] = d
    for r in results:
        r.value += 0.0  # no "-0.0"
        r.bound += 0.0
    statuses = {r.status for r in results}
    overall = (Status.TIME_LIMIT if Status.TIME_LIMIT in statuses else
               Status.OPTIMAL if statuses <= {Status.OPTIMAL} else Status.FEASIBLE)
    return LexResult(x=x, levels=results, duals=duals, status=overall, build_seconds=build,
                     solve_seconds=time.perf_counter() - start - build), parts


def _sub_level(level: Level, cols: np.ndarray, index: np.ndarray) -> Level:
    """``level`` restricted to the columns ``cols`` (``index``: global → local, -1 outside)."""

    def local(which: np.ndarray | None) -> np.ndarray | None:
        if which is None:
            return None
        at = index[np.asarray(which, np.int64)]
        return at[at >= 0]

    return Level(level.name, level.sense, np.asarray(level.cost, float)[cols],
                 hold_cols=local(level.hold_cols), certify=level.certify,
                 idle_cols=local(level.idle_cols))
