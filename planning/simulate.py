"""A seeded simulator of the weekly cycle, for the demo, the tests and the benchmarks.

It plays the people wulian works with, week after week, through the same functions a centre
uses: the week is opened from the register, its tasks published (when asked), providers
accept, decline and deliver (in full or in part) at seeded rates, volunteers make or miss
their visits, monitoring visits find households better, worse or the same and now and then a
new need, new needs arrive at the policy's rates (``[quarter] arrival_rate``), and the week is
closed. Same register, same seed → the same weeks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from wulian.contract import vocab
from wulian.contract.hierarchy import Hierarchy
from wulian.planning.alerts import evaluate
from wulian.planning.cycle import (
    Answer,
    close_week,
    next_week,
    open_week,
    record_answers,
    week_days,
    weeks,
)
from wulian.planning.register import Events, Register
from wulian.planning.taskbook import publish_week


@dataclass(frozen=True)
class Rates:
    """How the simulated people behave (shares, each in [0, 1])."""

    decline: float = 0.08  # a provider declines a task
    deliver: float = 0.82  # an accepted task is delivered in full …
    partial: float = 0.08  # … or in part (the rest: not delivered)
    visit_made: float = 0.9  # a volunteer makes the visit
    worse: float = 0.15  # a monitoring visit finds the household worse (one more deprivation)
    better: float = 0.25  # … or better (one fewer)
    new_need: float = 0.1  # … and finds a new need

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"比例 {name} 应在 0 到 1 之间 / {name} must be in [0, 1], "
                                 f"not {value!r}")
        if self.deliver + self.partial > 1.0 or self.worse + self.better > 1.0:
            raise ValueError("deliver + partial 与 worse + better 不能超过 1 / "
                             "deliver + partial and worse + better must each be ≤ 1")


@dataclass
class SimulatedWeek:
    """One simulated week: what happened, as counts and seconds."""

    week: str
    tasks: int
    accepted: int
    declined: int
    delivered: int
    partial: int
    not_delivered: int
    visits_made: int
    visits_missed: int
    worse: int
    better: int
    needs_found: int
    needs_arrived: int
    carried: int
    closed_delivered: int
    spent: float
    workbooks: int
    alerts_open: int  # alerts the week's close opened
    seconds: dict


def simulate(register: Register, weeks_to_play: int, seed: int, *, first: str | None = None,
             centre: str | None = None, rates: Rates | None = None, out: Path | None = None,
             on_week: Callable[[SimulatedWeek], None] | None = None,
             alerts: bool = True) -> list[SimulatedWeek]:
    """Play ``weeks_to_play`` weeks of the cycle in ``register`` (already imported); each
    closed week's alerts are evaluated (unless ``alerts`` is false).

    ``first`` is the first week (default: the week after the register's last opened week, or
    the latest week of its needs); ``out``, when given, receives each week's published
    workbooks in a folder per week.
    """
    rates = rates or Rates()
    rng = np.random.default_rng(seed)
    week = first or _first_week(register)
    base = register.open_needs()  # the mix new needs are drawn from (the scope's)
    if centre:
        stations = set(Hierarchy.from_centres(register.table("centres")).subtree(centre))
        households = register.table("households")
        inside = set(households.loc[households["station_id"].isin(stations), "household_id"])
        base = base[base["household_id"].isin(inside)]
    played = []
    for _ in range(weeks_to_play):
        t0 = time.perf_counter()
        opened = open_week(register, week, centre)
        t1 = time.perf_counter()
        books = publish_week(register, week, out / week, centre) if out is not None else []
        t2 = time.perf_counter()
        answers, counts = _answers(opened.tasks, register, rng, rates)
        recorded = record_answers(register, answers)
        t3 = time.perf_counter()
        arrived = _arrivals(register, base, next_week(week), rng)
        closed = close_week(register, week, centre)
        t4 = time.perf_counter()
        opened_alerts = evaluate(register, week, after_close=True).opened if alerts else 0
        t5 = time.perf_counter()
        result = SimulatedWeek(
            week=week, tasks=len(opened.tasks), **counts, needs_found=recorded.needs_raised,
            needs_arrived=arrived, carried=closed.carried, closed_delivered=closed.delivered,
            spent=round(closed.spent, 2), workbooks=len(books), alerts_open=opened_alerts,
            seconds={"open": round(t1 - t0, 3), "publish": round(t2 - t1, 3),
                     "record": round(t3 - t2, 3), "close": round(t4 - t3, 3),
                     "alerts": round(t5 - t4, 3),
                     **{f"open_{k}": v for k, v in opened.seconds.items()}})
        played.append(result)
        if on_week is not None:
            on_week(result)
        week = next_week(week)
    return played


def _first_week(register: Register) -> str:
    opened = weeks(register)
    if len(opened):
        return next_week(str(opened["week"].max()))
    needs = register.table("needs")
    if not len(needs):
        raise ValueError("登记册中没有需求 / the register holds no needs to start from")
    return str(needs["week"].max())


def _answers(frame: pd.DataFrame, register: Register, rng: np.random.Generator, rates: Rates
             ) -> tuple[list[Answer], dict]:
    """Every task's answer, drawn in task order (so a seed gives the same answers)."""
    frame = frame.sort_values("task_id").reset_index(drop=True)
    n = len(frame)
    u = rng.random((n, 5))
    households = register.table("households").set_index("household_id")
    reasons = [r for r in vocab.DECLINE_REASONS if r != "no_answer"]
    answers: list[Answer] = []
    counts = dict.fromkeys(("accepted", "declined", "delivered", "partial", "not_delivered",
                            "visits_made", "visits_missed", "worse", "better"), 0)
    for i, task in enumerate(frame.itertuples(index=False)):
        first, last = week_days(task.week)
        day = (first + timedelta(days=int(u[i, 4] * 7) % 7)).isoformat()
        if task.volunteer_id:  # a volunteer's visit: made or missed
            if u[i, 0] < rates.visit_made:
                counts["visits_made"] += 1
                answer = Answer(task.task_id, "delivered", answered_on=day, source="simulator")
                if task.kind in ("monitoring", "visit+monitoring"):
                    answer.indicators, change = _observe(households.loc[task.household_id],
                                                         u[i, 1], u[i, 2], rates)
                    if change in counts:
                        counts[change] += 1
                    if u[i, 3] < rates.new_need:
                        answer.new_needs = f"{_need_found(register, rng)}:2"
            else:
                counts["visits_missed"] += 1
                answer = Answer(task.task_id, "not_delivered", answered_on=day,
                                reason="not_reachable", source="simulator")
        elif u[i, 0] < rates.decline:
            counts["declined"] += 1
            answer = Answer(task.task_id, "declined", answered_on=day,
                            reason=reasons[int(u[i, 1] * len(reasons)) % len(reasons)],
                            source="simulator")
        else:
            counts["accepted"] += 1
            if u[i, 1] < rates.deliver:
                counts["delivered"] += 1
                answer = Answer(task.task_id, "delivered", answered_on=day, source="simulator")
            elif u[i, 1] < rates.deliver + rates.partial:
                counts["partial"] += 1
                units = float(np.floor(float(task.units) * (0.3 + 0.6 * u[i, 2])))
                answer = Answer(task.task_id, "delivered", units_delivered=str(units),
                                answered_on=day, source="simulator")
            else:
                counts["not_delivered"] += 1
                answer = Answer(task.task_id, "not_delivered", answered_on=day,
                                reason="no_capacity", source="simulator")
        answers.append(answer)
    return answers, counts


def _observe(household: pd.Series, u_change: float, u_which: float, rates: Rates
             ) -> tuple[dict[str, str], str]:
    """What a monitoring visit sees: one deprivation more, one fewer, or none changed."""
    observed = {c: str(household[c]).split(".")[0] for c in vocab.DEPRIVATION_COLUMNS}
    if u_change < rates.worse:
        candidates, value, change = [c for c, v in observed.items() if v == "0"], "1", "worse"
    elif u_change < rates.worse + rates.better:
        candidates, value, change = [c for c, v in observed.items() if v == "1"], "0", "better"
    else:
        return observed, "same"
    if not candidates:
        return observed, "same"
    observed[candidates[int(u_which * len(candidates)) % len(candidates)]] = value
    return observed, change


def _need_found(register: Register, rng: np.random.Generator) -> str:
    services = register.table("services")
    return str(services["service_id"].iloc[int(rng.integers(len(services)))])


def _arrivals(register: Register, base: pd.DataFrame, week: str,
              rng: np.random.Generator) -> int:
    """New needs for ``week`` at the policy's arrival rates, drawn from the base mix."""
    if not len(base):
        return 0
    tier = base["household_id"].map(register.colours()["tier"])
    rates = register.policy.quarter.arrival_rate
    rows = []
    for colour in vocab.TIER_ORDER:
        pool = base[tier == colour]
        if not len(pool):
            continue
        count = int(rng.poisson(rates[colour] * len(pool)))
        picks = pool.iloc[rng.integers(len(pool), size=count)]
        for k, r in enumerate(picks.itertuples(index=False)):
            rows.append({"need_id": f"S{week.replace('-', '')}{colour[0].upper()}{k + 1:06d}",
                         "household_id": r.household_id, "service_id": r.service_id,
                         "quantity": r.quantity, "urgency": r.urgency, "week": week})
    if not rows:
        return 0
    with register.engine.begin() as conn:
        register.add_needs(conn, Events(conn, register.actor), rows, week_days(week)[0])
    return len(rows)
