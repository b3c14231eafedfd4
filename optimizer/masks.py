"""Bit masks of ';'-lists over a vocabulary: skills, slots, categories, colours.

One rule for every model: a cell such as ``"nursing;driving"`` becomes the int64 mask with one
bit per code of the vocabulary (in its order); an empty or missing cell is 0. "Has every skill"
is then ``(have & need) == need``, "accepts the category" ``(accept & cats) != 0``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


def bit_masks(cells: pd.Series | np.ndarray, vocabulary: Iterable[str]) -> np.ndarray:
    """Each ';'-list cell as an int64 bit mask over ``vocabulary`` (empty or missing cell → 0).

    A code outside the vocabulary raises ``KeyError``: the contract's validation comes first.
    """
    position = {code: 1 << i for i, code in enumerate(vocabulary)}
    # Distinct cells once (a column holds a few dozen), then a lookup per row: factorize
    # leaves missing cells at -1, which the appended 0 answers.
    codes, uniques = pd.factorize(cells if isinstance(cells, pd.Series) else pd.Series(cells))
    masks = [sum(position[c] for c in str(cell).split(";") if c) for cell in uniques]
    return np.array([*masks, 0], dtype=np.int64)[codes]
