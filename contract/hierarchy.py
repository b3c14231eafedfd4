"""The centre hierarchy (city → district → street → station) as arrays the rest can use.

Coverage in wulian is "the subtree of a centre". With every centre numbered in depth-first
order, the subtree of centre c is the contiguous range [first[c], last[c]], so "does offer o
cover household h" is two integer comparisons on numpy arrays instead of a tree walk.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from wulian.contract import vocab


@dataclass(frozen=True)
class Hierarchy:
    """A validated centre tree.

    ``path`` has one row per centre (indexed by centre_id) and one column per level holding the
    centre's ancestor at that level (itself at its own level, "" below it); ``first`` and
    ``last`` give each centre's depth-first range.
    """

    path: pd.DataFrame
    first: pd.Series
    last: pd.Series

    @classmethod
    def from_centres(cls, centres: pd.DataFrame) -> Hierarchy:
        """Build from a validated ``centres`` table (one root, parents one level up)."""
        ids = centres["centre_id"].to_numpy()
        parent = dict(zip(ids, centres["parent_id"].to_numpy(), strict=True))
        level = pd.Series(centres["level"].to_numpy(), index=ids)
        path = pd.DataFrame("", index=pd.Index(ids, name="centre_id"),
                            columns=list(vocab.LEVELS), dtype=object)
        # Walk up one level at a time for all centres at once: the tree has only four levels.
        current = pd.Series(ids, index=ids)
        for _ in vocab.LEVELS:
            known = current != ""
            lv = level.reindex(current[known].to_numpy()).to_numpy()
            for name in vocab.LEVELS:
                rows = known[known].index[lv == name]
                path.loc[rows, name] = current[rows].to_numpy()
            current = current.map(lambda c: parent.get(c, "") if c else "")
        # Depth-first numbering: sorting by the path from the root puts each subtree together.
        order = path.sort_values(list(vocab.LEVELS)).index
        position = pd.Series(np.arange(len(order)), index=order)
        first = pd.Series(0, index=path.index, dtype=np.int64)
        last = pd.Series(0, index=path.index, dtype=np.int64)
        for name in vocab.LEVELS:
            members = path[name][path[name] != ""]
            pos = position.reindex(members.index)
            span = pos.groupby(members.to_numpy()).agg(["min", "max"])
            first.loc[span.index] = span["min"].to_numpy()
            last.loc[span.index] = span["max"].to_numpy()
        return cls(path=path, first=first, last=last)

    def ancestor(self, centre_ids: pd.Series | np.ndarray, level: str) -> np.ndarray:
        """The ancestor at ``level`` of each of ``centre_ids`` ("" when above it)."""
        codes, distinct = pd.factorize(np.asarray(centre_ids, dtype=object), use_na_sentinel=False)
        # Looked up once per distinct centre (a city's 500,000 needs sit in 3,363 stations).
        found = self.path[level].reindex(distinct).fillna("").to_numpy(object)
        return found[codes] if len(codes) else np.zeros(0, dtype=object)

    @cached_property
    def ancestor_numbers(self) -> pd.DataFrame:
        """``path`` with each ancestor given as its depth-first number (``first``), -1 for "":
        centres as integers, for joins that string keys would make slow."""
        numbers = self.first.reindex(self.path.to_numpy().ravel()).fillna(-1).astype(np.int64)
        return pd.DataFrame(numbers.to_numpy().reshape(self.path.shape), index=self.path.index,
                            columns=self.path.columns)

    def covers(self, coverage_ids: np.ndarray, centre_ids: np.ndarray) -> np.ndarray:
        """Elementwise: is ``centre_ids[i]`` in the subtree of ``coverage_ids[i]``?"""
        pos = self.first.reindex(np.asarray(centre_ids)).to_numpy()
        lo = self.first.reindex(np.asarray(coverage_ids)).to_numpy()
        hi = self.last.reindex(np.asarray(coverage_ids)).to_numpy()
        return (lo <= pos) & (pos <= hi)

    def subtree(self, centre_id: str) -> pd.Index:
        """Ids of ``centre_id`` and every centre below it."""
        pos = self.first
        inside = (pos >= self.first[centre_id]) & (pos <= self.last[centre_id])
        return pos.index[inside.to_numpy()]
