"""Bit masks over a vocabulary (optimizer/masks.py), shared by the allocation and the matching."""

import numpy as np
import pandas as pd
import pytest

from wulian.contract import vocab
from wulian.optimizer.masks import bit_masks


@pytest.mark.parametrize("dtype", [object, "str"])
def test_bit_masks_one_bit_per_code_in_vocabulary_order(dtype):
    skills = list(vocab.SKILLS)
    cells = pd.Series([f"{skills[0]};{skills[2]}", "", skills[1], f"{skills[2]};{skills[0]}"],
                      dtype=dtype)
    assert bit_masks(cells, skills).tolist() == [0b101, 0, 0b010, 0b101]
    assert bit_masks(cells.to_numpy(), skills).dtype == np.int64


def test_bit_masks_missing_cell_is_empty_and_unknown_code_raises():
    assert bit_masks(pd.Series(["a", None, np.nan, "b;a"], dtype=object), ["a", "b"]).tolist() \
        == [1, 0, 0, 3]
    assert bit_masks(pd.Series([], dtype=object), ["a"]).tolist() == []
    with pytest.raises(KeyError):
        bit_masks(pd.Series(["c"]), ["a", "b"])
