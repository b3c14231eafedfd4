"""planning.engines: the executors a week's open and the quarter run their tasks in."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from wulian.planning.engines import Slots


@pytest.mark.parametrize("slots", [1, 2])
def test_slots_hold_no_more_tasks_in_the_pool_at_once_than_given(slots):
    """Six tasks through ``Slots`` into a pool of four threads: never more than ``slots`` run
    at once, and each answer is its own task's."""
    running, most = [0], [0]
    lock = threading.Lock()

    def task(x: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return x * x

    with ThreadPoolExecutor(4) as pool:
        limited = Slots(pool, slots)
        futures = [limited.submit(task, x) for x in range(6)]
        assert [f.result() for f in futures] == [x * x for x in range(6)]
    assert most[0] == slots


def test_slots_widened_let_one_more_task_in_at_once():
    """A week's open widens its matching's slots when the bounds are done: from then on one
    more task runs at once."""
    running, most = [0], [0]
    lock = threading.Lock()

    def task(x: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return x

    with ThreadPoolExecutor(4) as pool:
        limited = Slots(pool, 1)
        assert limited.submit(task, 0).result() == 0 and most[0] == 1
        limited.widen()
        assert [f.result() for f in [limited.submit(task, x) for x in range(6)]] == [*range(6)]
    assert most[0] == 2
