"""optimizer.memory: freed memory handed back between a week's phases."""

import ctypes
import platform
import sys

import numpy as np

from wulian.optimizer.memory import release_memory


def test_release_memory_trims_on_glibc_and_keeps_live_data():
    kept = np.arange(1_000_000)
    freed = [np.ones(100_000) for _ in range(50)]
    del freed
    trimmed = release_memory()
    assert trimmed == (sys.platform.startswith("linux") and _glibc())
    assert kept[-1] == 999_999 and kept.sum() == 999_999 * 1_000_000 // 2


def _glibc() -> bool:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return False
    return platform.libc_ver()[0] == "glibc"
