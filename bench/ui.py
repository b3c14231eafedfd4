"""`python -m bench.ui`: how fast the Streamlit app answers, on the district demo.

Measured through ``streamlit.testing.v1.AppTest`` (the app's scripts run exactly as under
``streamlit run``; the browser's drawing is not included):

- **run-to-results, cold**: Streamlit's caches emptied and a new, empty run store; the
  Coordinator page opened (which loads and validates the scenario, as a user sees it before
  pressing anything, and prepares what does not depend on a run); then, **timed from the
  click**, the Run button pressed until the page has drawn every result. The weekly
  allocation's solve is included: nothing is solved before the click. Repeated ``--repeat``
  times, each time from empty caches and an empty store; the run's own wall time from run.json
  is reported beside it, and the page's share is the difference (drawing, the status box, and
  the run store write, which ``run_allocation`` does after taking its wall time);
- **page opened, caches empty**: the Coordinator page's first script run before each cold run
  (the scenario loaded and validated, the run prepared), reported so that work moved there
  stays in sight;
- **run-to-results, reload**: the same in a new session (a page reload): the run comes from the
  cache, keyed by input digest, week, centre and store;
- **fund-lab re-solve**: one fund's budget changed, until the page has drawn the new coverage,
  marginal values, streets and curve (median and worst of several changes);
- **page switch**: each page opened from another, after each has been visited once.

AppTest compiles the page scripts again at every script run (a server compiles them once),
some 0.02–0.04 s of each figure here.

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

    from wulian.api.auth import TokenStore
    from wulian.planning.store import RunStore, store_url
    from wulian.ui.signin import PRINCIPAL_KEY

    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    # Signed in with a token of the store the app reads (it looks the token up at every run).
    tokens = TokenStore(RunStore(store_url()).engine)
    at.session_state[PRINCIPAL_KEY] = tokens.verify(tokens.create("planner")[1])
    at.session_state["scenario_choice"] = scenario
    at.run()
    return at


def cold_run(scenario: str, folder: Path, n: int) -> tuple[float, float, float]:
    """One cold run-to-results: empty caches, an empty store, the page opened, then timed from
    the click; returns the seconds to open the page, the seconds from the click to results
    and the run's own wall time (run.json)."""
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    # A store of its own, so no earlier run is there to compare with (the first run of a week).
    os.environ["WULIAN_STORE"] = f"sqlite:///{folder / f'cold-{n}.sqlite'}"
    start = time.perf_counter()
    page = session(scenario)
    opened = time.perf_counter() - start
    seconds = timed(lambda: page.button(key="run").click().run())
    return opened, seconds, page.session_state["coordinator_result"]["run"].info["seconds"][
        "wall"]


def measure(scenario: str, repeat: int, folder: Path) -> dict[str, list[float]]:
    import streamlit  # noqa: F401 - its loggers exist once it is imported

    quiet_streamlit()
    figures: dict[str, list[float]] = {"open_cold": [], "run_cold": [], "run_cold_solve": [],
                                       "run_cold_page": []}
    for n in range(repeat):
        opened, seconds, solve = cold_run(scenario, folder, n)
        figures["open_cold"].append(opened)
        figures["run_cold"].append(seconds)
        figures["run_cold_solve"].append(solve)
        figures["run_cold_page"].append(seconds - solve)
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


def report(figures: dict[str, list[float]], scenario: str, load: tuple[float, ...]) -> Table:
    # The machine is shared: the load average says how far the figures are from a quiet one.
    table = Table(title=f"Streamlit app · {scenario} (AppTest, script time)",
                  title_justify="left",
                  caption="load average (1 min) before / after: "
                          f"{load[0]:.2f} / {os.getloadavg()[0]:.2f}", caption_justify="left")
    for col in ("measure", "median s", "worst s", "runs", "target", "met"):
        table.add_column(col, justify="left" if col in ("measure", "target") else "right")
    rows = (("page opened, caches empty (not timed below)", "open_cold", None),
            ("run-to-results, cold, from the click", "run_cold", "run"),
            ("  the run's own wall time (run.json)", "run_cold_solve", None),
            ("  the page's share (the difference)", "run_cold_page", None),
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
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="wulian-bench-ui-") as folder:
        # Stores of its own, so the benchmark leaves runs/ as it was.
        with console.status(f"measuring the app on the {args.scenario} scenario …"):
            figures = measure(args.scenario, args.repeat, Path(folder))
    console.print(report(figures, args.scenario, load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
