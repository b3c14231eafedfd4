"""optimizer.memory: freed memory handed back between a week's phases."""

import ctypes
import gc
import platform
import sys
import threading

import numpy as np

from wulian.optimizer.memory import collector_paused, release_memory


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


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_collector_paused_stops_automatic_passes_only_and_restores_the_state():
    passes: list[str] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            passes.append(phase)

    gc.callbacks.append(count)
    try:
        with collector_paused():
            assert not gc.isenabled()
            for _ in range(10 * gc.get_threshold()[0]):
                _Cycle()  # enough new containers for several automatic passes
            assert passes == []
            assert gc.collect() > 0  # an explicit collection still runs (and frees the cycles)
        assert gc.isenabled()
        gc.disable()
        with collector_paused():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
        gc.callbacks.remove(count)


def test_collector_paused_in_overlapping_threads_is_restored_by_the_last_to_end():
    """Two opens in the batch service pause at once: whatever the order they end in, the
    collector stays off until both are done and is on after (once gc was on before)."""
    first_in, second_in, first_out = (threading.Event() for _ in range(3))
    seen: list[bool] = []

    def first() -> None:
        with collector_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with collector_paused():
            second_in.set()
            first_out.wait(5)
            seen.append(gc.isenabled())  # the first has ended: still paused for this one

    assert gc.isenabled()
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [False]
    assert gc.isenabled()
