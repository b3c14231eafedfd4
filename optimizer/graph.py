"""Connected components, for every model that splits itself into independent parts.

The allocation (``optimizer/flow.py``: columns and rows of its model) and the volunteer matching
(``optimizer/visits``: grid cells, and (group, volunteer) pairs) both label components with
:func:`components`. Measured against ``scipy.sparse.csgraph.connected_components`` and networkx
on graphs of a million edges (docs/model.md, "Departures from issue 3"), it is faster than scipy
on most and within milliseconds of it on the graphs these models build, far faster than
networkx, and needs no further dependency.
"""

from __future__ import annotations

import numpy as np


def components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Connected components of the graph on nodes ``0 … n−1`` with edges ``(u, v)``: each
    node's label, the smallest node of its component.

    Hooking and pointer jumping on numpy arrays (each round hooks every edge's larger root
    under its smaller one, then every node jumps to its root), so it takes a few vectorised
    rounds however long the graph's paths are.
    """
    parent = np.arange(n, dtype=np.int64)
    u, v = np.asarray(u, np.int64), np.asarray(v, np.int64)
    while True:
        pu, pv = parent[u], parent[v]
        differ = pu != pv
        if not differ.any():
            return parent
        np.minimum.at(parent, np.maximum(pu[differ], pv[differ]),
                      np.minimum(pu[differ], pv[differ]))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
