"""Memory freed by a phase handed back to the system before the next one.

CPython frees a city's frames and a solver's arrays into the C heap, and glibc's malloc keeps
most of those pages: the process stays resident at its high mark. A week's open frees about
half a GiB after the snapshot and as much again after the aggregate's solvers are dropped,
then starts worker processes, whose memory adds to its own. :func:`release_memory`, called
between such phases, returns those pages (``malloc_trim``); it changes no result.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache


@cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another C library or platform)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl, or no libc.so.6
        return None


def release_memory() -> bool:
    """Collect garbage and return the C heap's free pages to the system; whether the heap
    could be trimmed (glibc only; elsewhere only the collection runs)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


# The pauses running now (in any thread) and whether the collector was on before the first:
# the last to end puts it back.
_pause_lock = threading.Lock()
_paused = 0
_restore = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's automatic cyclic garbage collection paused for the block (restored after it,
    as it was); an explicit ``gc.collect()`` — :func:`release_memory`'s — still runs.

    For a phase that builds millions of container objects that live to its end (a city
    week's open: the tasks' rows, the frames' text cells, the models' lists): each automatic
    pass walks them again and frees next to nothing, while what the phase drops is freed by
    reference counting all the same (docs/benchmarks.md, session 17: 4,291 passes in the
    city's open, 2.5 s of its main process's CPU, 441 objects freed). The switch is the
    process's: pauses in several threads at once (two opens in the batch service) keep it off
    until the last ends, which puts it back as it was before the first."""
    global _paused, _restore
    with _pause_lock:  # (gc's switch is the process's: threads pausing at once share it)
        if _paused == 0:
            _restore = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _pause_lock:
            _paused -= 1
            if _paused == 0 and _restore:
                gc.enable()
