"""Why a visit stays unplaced: the first reason that applies, over qualified volunteers (the
reasons' codes and words are in ``contract.vocab``; docs/matching.md has the model).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wulian.contract import vocab
from wulian.optimizer.visits.prepare import VisitArrays

REASONS: tuple[str, ...] = vocab.MATCHING_REASONS  # in the order they are tried


def unplaced_reasons(arrays: VisitArrays, vol: np.ndarray, reach_any: np.ndarray,
                     slot_any: np.ndarray) -> np.ndarray:
    """The first reason of :data:`REASONS` that applies to each unplaced visit (``vol`` -1), in
    that order (docs/matching.md, "Reasons for unplaced visits"). ``reach_any``/``slot_any``
    per group: a qualified volunteer within reach at all / with a slot still free (the regions
    and ``combine.repair`` work them out)."""
    placed = vol >= 0
    g = np.arange(len(arrays.g_count))
    skill_any = np.zeros(len(g), bool)
    check_any = np.zeros(len(g), bool)
    for mask, safe in pd.unique(pd.MultiIndex.from_arrays([arrays.g_skills, arrays.g_safe])):
        has = (arrays.vol_skills & mask) == mask
        sel = (arrays.g_skills == mask) & (arrays.g_safe == safe)
        skill_any[sel] = has.any()
        check_any[sel] = (has & (arrays.vol_checked | (not safe))).any()
    reason = np.select([~skill_any, ~check_any, ~reach_any, ~slot_any],
                       list(REASONS[:4]), REASONS[4]).astype(object)
    return reason[arrays.visit_group[~placed]]
