"""One independent component of the matching: its groups and volunteers (:class:`Component`),
its admissible (group, volunteer) pairs (:class:`PairTable`), and what every solver of a
component shares: the OR-Tools min-cost flow call, the coverage flow, a plan's class counts and
load. docs/matching.md ("Solving a component") has the mathematics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.graph.python import min_cost_flow

from wulian.optimizer.visits.params import CLASSES

# SimpleMinCostFlow works in int64 and scales costs by (nodes + 1): keep |cost| × 2 (nodes + 2)
# and the objective within this (flow_costs_fit), or fall back.
FLOW_COST_LIMIT = 2**62


def flow_costs_fit(top: int, nodes: int, total_flow: int) -> bool:
    """Whether costs of magnitude at most ``top`` on a graph of ``nodes`` nodes carrying
    ``total_flow`` units can be given to SimpleMinCostFlow exactly: |cost| × 2 (nodes + 2) and
    the most any flow costs at most FLOW_COST_LIMIT (2^62), the room
    ``optimizer.flow.scale_exponent`` keeps. OR-Tools refuses positive costs above about
    2^63 ÷ 3.3 (nodes + 1) (``BAD_COST_RANGE``, measured with 9.15: 3.1e16 on 101 nodes); the
    looser ``|cost| × (nodes + 1) < 2^62`` once used here passed costs it refused. Costs of
    both signs it may refuse below this too (:class:`FlowCostRange`). Python integers: the
    check itself cannot overflow."""
    return top * 2 * (nodes + 2) < FLOW_COST_LIMIT and top * total_flow < FLOW_COST_LIMIT


@dataclass
class Component:
    """One independent component: its groups and volunteers, indexed from 0.

    ``vol_ids`` holds the volunteers' indices in the whole model (only its length is used by
    the solvers); the rest are per local volunteer or per local group.
    """

    vol_ids: np.ndarray
    free_slots: np.ndarray
    free_units: np.ndarray
    pinned_units: np.ndarray
    g_count: np.ndarray
    g_class: np.ndarray
    g_units: np.ndarray


@dataclass
class PairTable:
    """Admissible (group, volunteer) pairs: the model's variables, sorted by group."""

    group: np.ndarray
    vol: np.ndarray
    km: np.ndarray
    metres: np.ndarray  # int64, km rounded to the metre
    upper: np.ndarray  # most of the group's visits the volunteer can make
    cont: np.ndarray  # 1 when the volunteer is the group's last volunteer

    def take(self, sel: np.ndarray) -> PairTable:
        """The pairs at ``sel`` (indices or a mask), in that order."""
        return PairTable(group=self.group[sel], vol=self.vol[sel], km=self.km[sel],
                         metres=self.metres[sel], upper=self.upper[sel], cont=self.cont[sel])


class FlowCostRange(OverflowError):
    """OR-Tools refused the costs (``BAD_COST_RANGE``): how far it goes depends on the graph
    and the costs' signs (2^63 ÷ 2.6–5.2 (nodes + 1) measured with 9.15), so a caller with a
    fallback keeps it for this too, beside :func:`flow_costs_fit`'s check."""


def solve_min_cost_flow(tails, heads, caps, costs, supplies: dict[int, int],
                        max_flow: bool = False) -> np.ndarray:
    """Flows of an OR-Tools SimpleMinCostFlow on numpy arc arrays; optimal or an error
    (:class:`FlowCostRange` when OR-Tools refuses the costs).

    With ``max_flow``, the largest flow the supplies allow at least cost instead.
    """
    mcf = min_cost_flow.SimpleMinCostFlow()
    arcs = mcf.add_arcs_with_capacity_and_unit_cost(
        np.asarray(tails, np.int32), np.asarray(heads, np.int32),
        np.asarray(caps, np.int64), np.asarray(costs, np.int64))
    nodes = np.array(sorted(supplies), np.int32)
    mcf.set_nodes_supplies(nodes, np.array([supplies[n] for n in nodes], np.int64))
    status = mcf.solve_max_flow_with_min_cost() if max_flow else mcf.solve()
    if status == mcf.BAD_COST_RANGE:
        raise FlowCostRange(f"min-cost flow refused the costs (status {status})")
    if status != mcf.OPTIMAL:
        raise RuntimeError(f"min-cost flow returned status {status}")
    return np.asarray(mcf.flows(arcs), np.int64)


def coverage_flow(comp: Component, pairs: PairTable, cap: np.ndarray) -> np.ndarray:
    """Per group, the visits a coverage flow places: source → group (weight ``K − class``),
    group → volunteer (``upper``), volunteer → sink (``cap`` visits), source → sink for the
    visits left out. Lexicographically optimal per class prefix (the matroid argument)."""
    n_groups, n_vol, k = len(comp.g_count), len(comp.vol_ids), len(CLASSES)
    total = int(comp.g_count.sum())
    src, sink, g0, v0 = 0, 1, 2, 2 + n_groups
    tails = np.concatenate([np.full(n_groups, src), g0 + pairs.group, v0 + np.arange(n_vol),
                            [src]])
    heads = np.concatenate([g0 + np.arange(n_groups), v0 + pairs.vol, np.full(n_vol, sink),
                            [sink]])
    caps = np.concatenate([comp.g_count, pairs.upper, cap, [total]])
    costs = np.concatenate([-(k - comp.g_class),
                            np.zeros(len(pairs.group) + n_vol + 1, np.int64)])
    return solve_min_cost_flow(tails, heads, caps, costs, {src: total, sink: -total})[:n_groups]


def class_counts(comp: Component, pairs: PairTable, x: np.ndarray) -> np.ndarray:
    """Visits per priority class of the plan ``x`` (counts per pair)."""
    return np.bincount(comp.g_class[pairs.group], weights=x,
                       minlength=len(CLASSES)).astype(np.int64)


def load_value(comp: Component, pairs: PairTable, x: np.ndarray) -> int:
    """Σ (pinned + planned units)² over the component's volunteers."""
    units = np.bincount(pairs.vol, weights=x * comp.g_units[pairs.group],
                        minlength=len(comp.vol_ids))
    return int(((units.astype(np.int64) + comp.pinned_units) ** 2).sum())
