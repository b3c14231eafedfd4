"""Ctrl-C during a solve. SCIP and CP-SAT catch SIGINT themselves and end the search as if
their time limit had come: the run would then go on and be recorded as if nobody had asked it
to stop. Here the solver's own catching is off, the solve runs in a thread, and the main thread
waits where Python can see the interrupt: it asks the solver to stop, and the interrupt goes on
to the command line (exit 130, nothing recorded)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# How often the waiting thread wakes to let a pending Ctrl-C through (the signal may land on
# the solver's thread, and then only the waiter's own check sees it).
_WAKE_SECONDS = 0.2


def solve_interruptibly(solve: Callable[[], T], stop: Callable[[], object]) -> T:
    """``solve()``, stopped by ``stop()`` on Ctrl-C (then KeyboardInterrupt is raised again).
    Outside the main thread (the service's workers) Python delivers no signal: solve there."""
    if threading.current_thread() is not threading.main_thread():
        return solve()
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = solve()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = err

    worker = threading.Thread(target=run, name="wulian-solver", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(_WAKE_SECONDS)
    except KeyboardInterrupt:
        stop()
        worker.join()
        raise
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
