"""Ctrl-C during a solve stops the solve and reaches Python (optimizer/interrupt.py).

SCIP and CP-SAT catch SIGINT themselves and end the search as if time were up: a run went on to
be recorded after the user had asked it to stop (`wulian allocate`, interrupted, exited 0). Each
solver here gets a search that would run for a minute, is sent SIGINT after it has started,
and must end within seconds with KeyboardInterrupt, not with an answer."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

HARD_SEARCH = {
    # A random multi-dimensional knapsack: SCIP does not prove it in a minute.
    "scip": """
        import numpy as np
        from wulian.optimizer.search import solve_reduced
        rng = np.random.default_rng(1)
        n, m = 300, 40
        weights = rng.integers(1, 1000, (m, n))
        rows, cols = np.nonzero(weights)
        solve_reduced(np.zeros(n), np.ones(n), np.ones(n, bool), rng.integers(1, 1000, n) * 1.0,
                      True, cols, rows, weights[rows, cols] * 1.0, np.full(m, -np.inf),
                      weights.sum(axis=1) / 2.0, None, seconds=60.0)
    """,
    # A generalised assignment problem with tight capacities (OR-Library's type D recipe).
    "cp-sat": """
        import numpy as np
        from wulian.optimizer.matching import solve_gap
        rng = np.random.default_rng(1)
        agents, jobs = 20, 200
        weight = rng.integers(1, 100, (agents, jobs))
        cost = 111 - weight + rng.integers(-10, 11, (agents, jobs))
        capacity = np.full(agents, int(0.8 * weight.sum() / agents / agents))
        solve_gap(cost, weight, capacity, time_limit=60.0, workers=1)
    """,
}


@pytest.mark.parametrize("solver", sorted(HARD_SEARCH))
def test_ctrl_c_stops_the_search_and_reaches_python(solver):
    script = "print('started', flush=True)\n" + textwrap.dedent(HARD_SEARCH[solver]) + \
        "print('ended without an interrupt', flush=True)\n"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline().strip() == b"started"
    time.sleep(4.0)  # imports done, the model built, the search under way
    assert proc.poll() is None, "the search ended before it could be interrupted"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    waited = time.monotonic() - sent
    assert b"ended without an interrupt" not in stdout, stderr.decode()[-2000:]
    assert b"KeyboardInterrupt" in stderr, stderr.decode()[-2000:]
    # Stopped, not run out: well inside the search's 60 s.
    assert waited < 30, waited
