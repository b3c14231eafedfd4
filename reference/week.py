"""An independent formulation of the combined weekly problem (issue 19): the allocation and the
volunteer matching as one mixed-integer model, solved colour by colour on HiGHS.

Written from the specification (DESIGN §4, docs/model.md, docs/matching.md), not from
``optimizer/``: the allocation's arcs and rows are ``reference.allocation``'s (itself
independent); what this module adds is that a volunteer pool's units are no longer a promise
but visits, each made by a named volunteer in one of their available half-day slots:

* a need served from its street's pool gets one visit per unit (services counted in visits),
  or visits of the service's ``visit_hours`` with at most the last one shorter (services
  counted in hours); the pool arc carries exactly the units of its placed visits;
* a visit may go to a volunteer with every skill it needs (and a background check for a
  safeguarding service) who lives within their own ``max_travel_km`` of the household; one
  visit per volunteer and slot, every slot its own binary (the library aggregates slots);
  at most ``max_hours`` per volunteer;
* a household due for monitoring this week (no visit in history, or its last one at least its
  colour's cycle ago) is monitored when any visit to it is placed: one of its service visits,
  or a monitoring visit of the policy's ``monitoring_hours`` by any volunteer within reach.

Levels, lexicographic, colour by colour (red first, whatever serves it): within each colour
the households monitored, then the allocation's coverage of the colour (``urgency ÷ quantity``
per unit served, by any source), or the other way round (``order``). Instances are small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import pulp

from reference import allocation as ref_alloc
from reference.matching import haversine_km, split

COLOURS = ref_alloc.COLOURS
# Each later level holds each earlier one within HOLD·max(1, |value|) (reference/allocation.py
# says why not 1e-6); values are recomputed from the rounded integer solution.
HOLD = 1e-9


def _monday(week: str) -> date:
    year, number = week.split("-W")
    return date.fromisocalendar(int(year), int(number), 1)


@dataclass
class WeekOptimum:
    levels: dict[str, float]  # "red:monitoring", "red:coverage", … in the order solved
    monitored: set[str]  # due households with a placed visit in the optimum
    due: dict[str, str]  # due household → colour
    visits_placed: int  # service visits placed in the optimum


def due_households(scenario, week: str) -> dict[str, str]:
    """Households due a monitoring visit in ``week``, with their colour: never visited, or
    last visited at least their colour's cycle (policy ``monitoring_weeks``) ago."""
    latest: dict[str, str] = {}
    for h, w in zip(scenario.history["household_id"], scenario.history["week"], strict=True):
        latest[str(h)] = max(latest.get(str(h), ""), str(w))
    cycle = dict(scenario.policy.monitoring_weeks)
    due = {}
    for h, tier in zip(scenario.households["household_id"], scenario.households["tier"],
                       strict=True):
        h = str(h)
        if h not in latest or (_monday(week) - _monday(latest[h])).days // 7 >= cycle[tier]:
            due[h] = str(tier)
    return due


def solve_week(scenario, week: str, order: tuple[str, str] = ("monitoring", "coverage"),
               time_limit: float = 60.0) -> WeekOptimum:
    """The lexicographic optimum of the combined week, every level proven by HiGHS."""
    ref = ref_alloc.build(scenario)
    prob, x, exprs = ref_alloc.allocation_model(ref)  # the allocation's rows, the reference's own
    tables = scenario.tables
    services = {str(r.service_id): r for r in tables["services"].itertuples(index=False)}
    centres = {str(r.centre_id): (float(r.lat), float(r.lon))
               for r in tables["centres"].itertuples(index=False)}
    place, colour = {}, {}
    for r in scenario.households.itertuples(index=False):
        lat, lon = ref_alloc.number(r.lat), ref_alloc.number(r.lon)
        place[str(r.household_id)] = ((lat, lon) if lat is not None and lon is not None
                                      else centres[str(r.station_id)])
        colour[str(r.household_id)] = str(r.tier)
    volunteers = list(tables["volunteers"].itertuples(index=False))

    def within_reach(vol, household: str) -> bool:
        lat, lon = place[household]
        return haversine_km(vol.lat, vol.lon, lat, lon) <= vol.max_travel_km + 1e-9

    def qualified(vol, service) -> bool:
        return (set(split(service.skills)) <= set(split(vol.skills))
                and (not bool(service.safeguarding) or bool(vol.background_checked)))

    counter = iter(range(10**9))
    in_slot: dict[tuple[str, str], list] = {}  # (volunteer, slot) → visit binaries
    hours_of: dict[str, list] = {}  # volunteer → hour terms
    visits_to: dict[str, list] = {}  # household → binaries of its placed visits
    placed_visits = []

    def visit_binaries(household: str, eligible) -> list[tuple[object, pulp.LpVariable]]:
        """One binary per (eligible volunteer within reach, available slot)."""
        out = []
        for vol in volunteers:
            if not eligible(vol) or not within_reach(vol, household):
                continue
            for slot in split(vol.availability):
                var = prob.add_variable(f"z{next(counter)}", cat="Binary")
                in_slot.setdefault((vol.volunteer_id, slot), []).append(var)
                visits_to.setdefault(household, []).append(var)
                out.append((vol, var))
        return out

    for i, arc in enumerate(ref.arcs):
        if arc.kind != "volunteer_pool":
            continue
        need = ref.needs[arc.need_id]
        service = services[need.service_id]
        by_hour = str(service.unit) == "hour"
        length = float(service.visit_hours)
        count = math.ceil(need.quantity / length - 1e-9) if by_hour else need.quantity
        placed, lengths = [], []
        for _ in range(count):
            pairs = visit_binaries(need.household_id, lambda v, s=service: qualified(v, s))
            is_placed = pulp.lpSum(var for _, var in pairs)
            prob += is_placed <= 1
            placed.append(is_placed)
            placed_visits.append(is_placed)
            if by_hour:
                # The visit's whole hours, by the volunteer who makes it: 1 … visit_hours.
                hours = []
                for vol, var in pairs:
                    h = prob.add_variable(f"h{next(counter)}", lowBound=0, upBound=length,
                                          cat=pulp.LpInteger)
                    prob += h <= length * var
                    prob += h >= var
                    hours_of.setdefault(vol.volunteer_id, []).append(h)
                    hours.append(h)
                lengths.append(pulp.lpSum(hours))
            else:
                for vol, var in pairs:
                    hours_of.setdefault(vol.volunteer_id, []).append(length * var)
        for k in range(count - 1):  # visits are placed in order, only the last one short
            prob += placed[k] >= placed[k + 1]
            if by_hour:
                prob += lengths[k] >= length * placed[k + 1]
        prob += x[i] == pulp.lpSum(lengths if by_hour else placed)

    due = due_households(scenario, week)
    monitoring_hours = float(scenario.policy.quarter.monitoring_hours)
    monitored = {}
    for household in sorted(due):
        alone = visit_binaries(household, lambda v: True)
        for vol, var in alone:
            hours_of.setdefault(vol.volunteer_id, []).append(monitoring_hours * var)
        monitored[household] = prob.add_variable(f"m{next(counter)}", cat="Binary")
        prob += monitored[household] <= pulp.lpSum(visits_to.get(household, []))
    for binaries in in_slot.values():
        prob += pulp.lpSum(binaries) <= 1
    for vol in volunteers:
        if hours_of.get(vol.volunteer_id):
            prob += pulp.lpSum(hours_of[vol.volunteer_id]) <= float(vol.max_hours) + 1e-9

    objectives = {}
    for c in COLOURS:
        objectives[f"{c}:monitoring"] = pulp.lpSum(
            var for h, var in monitored.items() if due[h] == c)
        objectives[f"{c}:coverage"] = exprs[c]
    solver = pulp.HiGHS(msg=False, gapRel=0.0, gapAbs=0.0, threads=1, timeLimit=time_limit)
    levels: dict[str, float] = {}
    for c in COLOURS:
        for part in order:
            name = f"{c}:{part}"
            expr = objectives[name]
            if not any(coef for coef in expr.values()):
                levels[name] = 0.0
                continue
            prob.sense = pulp.LpMaximize
            prob.setObjective(expr + 0)
            status = prob.solve(solver)
            if pulp.LpStatus[status] != "Optimal":
                raise RuntimeError(f"{name}: HiGHS status {pulp.LpStatus[status]}")
            value = float(sum(coef * round(var.value() or 0.0) for var, coef in expr.items()))
            levels[name] = value
            prob.addConstraint(expr >= value - HOLD * max(1.0, abs(value)), f"hold_{name}")
    return WeekOptimum(
        levels=levels,
        monitored={h for h, var in monitored.items() if (var.value() or 0) > 0.5},
        due=due, visits_placed=round(sum(pulp.value(p) or 0 for p in placed_visits)))
