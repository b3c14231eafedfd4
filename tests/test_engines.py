"""planning.engines: the executors a week's open and the quarter run their tasks in."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from wulian.planning.engines import Slots


class Counted:
    """A task that squares its number, counting how many of its calls run at once (``most``:
    the largest count seen)."""

    def __init__(self):
        self.running = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, x: int) -> int:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return x * x


@pytest.mark.parametrize("slots", [1, 2])
def test_slots_hold_no_more_tasks_in_the_pool_at_once_than_given(slots):
    """Six tasks through ``Slots`` into a pool of four threads: never more than ``slots`` run
    at once, and each answer is its own task's."""
    task = Counted()
    with ThreadPoolExecutor(4) as pool:
        limited = Slots(pool, slots)
        futures = [limited.submit(task, x) for x in range(6)]
        assert [f.result() for f in futures] == [x * x for x in range(6)]
    assert task.most == slots


def test_slots_widened_let_one_more_task_in_at_once():
    """A week's open widens its matching's slots when the bounds are done: from then on one
    more task runs at once."""
    task = Counted()
    with ThreadPoolExecutor(4) as pool:
        limited = Slots(pool, 1)
        assert limited.submit(task, 3).result() == 9 and task.most == 1
        limited.widen()
        futures = [limited.submit(task, x) for x in range(6)]
        assert [f.result() for f in futures] == [x * x for x in range(6)]
    assert task.most == 2
