"""`python -m bench.ui`: how fast the Streamlit app answers, on the district demo.

Measured through ``streamlit.testing.v1.AppTest`` (the app's scripts run exactly as under
``streamlit run``; the browser's drawing is not included):

- **run-to-results, cold**: the Coordinator page's Run button pressed with empty caches, until
  the page has drawn every result (the weekly allocation's solve included; the page's own share
  is this less the run's wall time in run.json);
- **run-to-results, reload**: the same in a new session (a page reload): the run comes from the
  cache, keyed by input digest, week, centre and store;
- **fund-lab re-solve**: one fund's budget changed, until the page has drawn the new coverage,
  marginal values, streets and curve (median and worst of several changes);
- **page switch**: each page opened from another, after each has been visited once.

Usage: ``python -m bench.ui [--scenario demo|tiny] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "ui" / "app.py"
PAGES = ("views/coordinator.py", "views/fund_lab.py", "views/data.py", "views/runs.py")
TARGETS = {"run": 3.0, "resolve": 1.0, "switch": 1.0}
TIMEOUT = 1800  # seconds one script run may take (a cold solve on a busy machine)

console = Console(highlight=False, width=max(Console().width, 120))


def timed(action) -> float:
    start = time.perf_counter()
    at = action()
    seconds = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"the app failed: {[e.value for e in at.exception]}")
    return seconds


def quiet_streamlit() -> None:
    """AppTest runs the scripts without a server, and Streamlit logs that at every step."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("streamlit"):
            logging.getLogger(name).setLevel(logging.ERROR)


def session(scenario: str):
    from streamlit.testing.v1 import AppTest

    quiet_streamlit()

    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["scenario_choice"] = scenario
    at.run()
    return at


def measure(scenario: str, repeat: int) -> dict[str, list[float]]:
    import streamlit as st

    quiet_streamlit()
    st.cache_resource.clear()
    st.cache_data.clear()
    figures: dict[str, list[float]] = {}
    first = session(scenario)
    figures["run_cold"] = [timed(lambda: first.button(key="run").click().run())]
    # The allocation's own wall time (run.json), to tell the solve from the page's work.
    solve = first.session_state["coordinator_result"]["run"].info["seconds"]["wall"]
    figures["run_cold_page"] = [figures["run_cold"][0] - solve]
    figures["run_reload"] = []
    for _ in range(repeat):
        again = session(scenario)
        figures["run_reload"].append(timed(lambda a=again: a.button(key="run").click().run()))

    lab_page = session(scenario)
    figures["fund_first"] = [timed(lambda: lab_page.switch_page(PAGES[1]).run())]
    inputs = [n for n in lab_page.number_input if n.key and n.key.startswith("fund_")]
    figures["resolve"] = []
    for i in range(repeat):
        box = inputs[i % len(inputs)]
        value = float(box.value) * (0.5 if i % 2 == 0 else 1.5)
        figures["resolve"].append(timed(lambda b=box, v=value: b.set_value(v).run()))

    switcher = session(scenario)
    switcher.button(key="run").click().run()
    for page in PAGES:  # one visit each, so caches are warm
        switcher.switch_page(page).run()
    figures["switch"] = []
    for _ in range(repeat):
        for page in PAGES:
            figures["switch"].append(timed(lambda p=page: switcher.switch_page(p).run()))
    return figures


def report(figures: dict[str, list[float]], scenario: str) -> Table:
    table = Table(title=f"Streamlit app · {scenario} (AppTest, script time)",
                  title_justify="left")
    for col in ("measure", "median s", "worst s", "runs", "target", "met"):
        table.add_column(col, justify="left" if col in ("measure", "target") else "right")
    rows = (("run-to-results, cold (solve included)", "run_cold", "run"),
            ("  of which the page, beyond the solve", "run_cold_page", None),
            ("run-to-results, reload (cached)", "run_reload", "run"),
            ("fund lab, first visit (builds the lab)", "fund_first", None),
            ("fund lab re-solve", "resolve", "resolve"),
            ("page switch (warm)", "switch", "switch"))
    for label, key, target in rows:
        values = figures[key]
        worst = max(values)
        goal = TARGETS.get(target) if target else None
        table.add_row(label, f"{statistics.median(values):.2f}", f"{worst:.2f}",
                      str(len(values)), f"≤ {goal:g} s" if goal else "—",
                      ("yes" if worst <= goal else "no") if goal else "—")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ui", description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=["demo", "tiny"], default="demo")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wulian-bench-ui-") as folder:
        # A store of its own, so the benchmark leaves runs/ as it was.
        os.environ["WULIAN_STORE"] = f"sqlite:///{Path(folder) / 'runs.sqlite'}"
        with console.status(f"measuring the app on the {args.scenario} scenario …"):
            figures = measure(args.scenario, args.repeat)
    console.print(report(figures, args.scenario))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
