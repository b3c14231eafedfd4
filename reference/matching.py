"""An independent PuLP/CBC formulation of the volunteer matching, written from the specification.

Nothing here comes from ``optimizer/visits.py``: admissibility is recomputed from the tables
(skills, background check, availability, great-circle distance), every visit × volunteer ×
slot is a binary variable (the library collapses slots; this model does not), and the levels
are solved one at a time, each later one holding every earlier one at its optimum: coverage
class by class, travel, and with ``later=True`` continuity and load (Σ hours² per volunteer,
convex, as whole steps of the visits' common length). Instances are small; ``solver="highs"``
(HiGHS through PuLP) takes the cut-downs of a district's matching (docs/matching.md,
"Session 12").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import pandas as pd
import pulp

COLOURS = ("red", "orange", "yellow", "green")
URGENCIES = (3, 2, 1)
EARTH_RADIUS_KM = 6371.0088


def split(cell: object) -> list[str]:
    """A ';'-list cell as a list (empty cell: empty list)."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return []
    return [part for part in str(cell).split(";") if part]


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


def admissible(visit, volunteer) -> tuple[bool, float]:
    """Whether the volunteer may make the visit at all (slots aside), and the distance."""
    km = haversine_km(volunteer.lat, volunteer.lon, visit.lat, visit.lon)
    ok = (set(split(visit.skills)) <= set(split(volunteer.skills))
          and (not visit.safeguarding or bool(volunteer.background_checked))
          and km <= volunteer.max_travel_km + 1e-9)
    return ok, km


@dataclass
class Solution:
    per_class: dict[tuple[str, int], int]  # visits placed per (colour, urgency)
    travel_km: float  # least total distance given the placements
    assignment: dict[str, tuple[str, str]]  # visit_id → (volunteer_id, slot)
    # With ``later=True`` only: the most visits by the household's last volunteer given the
    # coverage and travel, then the least Σ hours² over volunteers given all of those.
    continuity: int | None = None
    load: float | None = None


def solve(visits: pd.DataFrame, volunteers: pd.DataFrame, later: bool = False,
          solver: str = "cbc") -> Solution:
    """Lexicographic optimum: per class, most visits placed; then least travel (km); with
    ``later``, then most continuity, then least load (Σ hours² per volunteer)."""
    return _solve(visits, volunteers, None, later=later, solver=solver)


def solve_given(visits: pd.DataFrame, volunteers: pd.DataFrame,
                held: dict[tuple[str, int], int], later: bool = False,
                travel_km: float | None = None, continuity: int | None = None,
                solver: str = "cbc") -> Solution:
    """What any plan can reach once earlier levels are held at the values a plan found:
    ``per_class[k]`` the most visits of class ``k`` with every earlier class placing at least
    ``held`` of its visits, ``travel_km`` the least travel with every class at least ``held``
    (the yardstick of a reported bound, whatever the plan it came with). With ``later``,
    ``continuity`` the most visits by the last volunteer with travel at most ``travel_km``
    (the plan's; its own optimum when not given), ``load`` the least Σ hours² with continuity
    at least ``continuity`` as well."""
    return _solve(visits, volunteers, held, later=later, solver=solver,
                  travel_held=travel_km, continuity_held=continuity)


def _hour_step(hours) -> Fraction:
    """The longest length dividing every visit's hours (whole minutes at the finest): a
    volunteer's hours are a whole number of these steps."""
    step = Fraction(0)
    for h in set(hours):
        q = Fraction(float(h)).limit_denominator(60)
        step = Fraction(math.gcd(step.numerator * q.denominator, q.numerator * step.denominator),
                        step.denominator * q.denominator)
    return step or Fraction(1)


def _solve(visits: pd.DataFrame, volunteers: pd.DataFrame,
           held: dict[tuple[str, int], int] | None, later: bool = False,
           solver: str = "cbc", travel_held: float | None = None,
           continuity_held: int | None = None) -> Solution:
    prob = pulp.LpProblem("matching", pulp.LpMaximize)
    x: dict[tuple[str, str, str], pulp.LpVariable] = {}
    km: dict[tuple[str, str, str], float] = {}
    for v in visits.itertuples(index=False):
        for w in volunteers.itertuples(index=False):
            ok, dist = admissible(v, w)
            if not ok:
                continue
            for slot in split(w.availability):
                if v.pin_volunteer and (w.volunteer_id != v.pin_volunteer
                                        or (v.pin_slot and slot != v.pin_slot)):
                    continue
                key = (v.visit_id, w.volunteer_id, slot)
                x[key] = prob.add_variable(f"x{len(x)}", cat="Binary")
                km[key] = dist
    by_visit: dict[str, list] = {}
    by_slot: dict[tuple[str, str], list] = {}
    by_volunteer: dict[str, list] = {}
    for key, var in x.items():
        by_visit.setdefault(key[0], []).append(var)
        by_slot.setdefault((key[1], key[2]), []).append(var)
        by_volunteer.setdefault(key[1], []).append((key[0], var))
    hours = dict(zip(visits["visit_id"], visits["hours"], strict=True))
    pinned = set(visits.loc[visits["pin_volunteer"] != "", "visit_id"])
    for vid, vars_ in by_visit.items():
        if vid in pinned:
            prob += pulp.lpSum(vars_) == 1
        else:
            prob += pulp.lpSum(vars_) <= 1
    for vid in pinned - set(by_visit):
        raise ValueError(f"pin of {vid} cannot be kept")
    for vars_ in by_slot.values():
        prob += pulp.lpSum(vars_) <= 1
    cap = dict(zip(volunteers["volunteer_id"], volunteers["max_hours"], strict=True))
    for vol, pairs in by_volunteer.items():
        prob += pulp.lpSum(hours[vid] * var for vid, var in pairs) <= cap[vol] + 1e-7

    if solver == "highs":  # HiGHS through PuLP (highspy), for the larger cut-downs
        solver = pulp.HiGHS(msg=False, gapRel=0.0, gapAbs=0.0, threads=1)
    else:
        # PuLP's bundled CBC through COIN_CMD (PULP_CBC_CMD is deprecated for PuLP 4), exact
        # gaps, preprocessing off as in reference/allocation.py.
        solver = pulp.COIN_CMD(path=pulp.PULP_CBC_CMD.pulp_cbc_path, msg=False, gapRel=0.0,
                               gapAbs=0.0, threads=1, presolve=False,
                               options=["preprocess off"])
    per_class = {}
    for colour in COLOURS:
        for urgency in URGENCIES:
            ids = set(visits.loc[(visits["tier"] == colour) & (visits["urgency"] == urgency),
                                 "visit_id"])
            if not ids:
                continue
            terms = [var for key, var in x.items() if key[0] in ids]
            if not terms:
                per_class[(colour, urgency)] = 0
                continue
            prob.setObjective(pulp.lpSum(terms))
            prob.sense = pulp.LpMaximize
            prob.solve(solver)
            assert pulp.LpStatus[prob.status] == "Optimal"
            best = round(pulp.value(prob.objective))
            per_class[(colour, urgency)] = best
            # Later classes hold this one at its optimum, or at what the plan placed.
            prob += pulp.lpSum(terms) >= (best if held is None
                                          else held.get((colour, urgency), 0))
    travel = pulp.lpSum(km[key] * var for key, var in x.items())
    prob.setObjective(travel)
    prob.sense = pulp.LpMinimize
    prob.solve(solver)
    assert pulp.LpStatus[prob.status] == "Optimal"
    best_travel = sum(km[key] for key, var in x.items() if var.value() > 0.5)
    continuity = load = None
    if later:
        # Travel held at the plan's value (or its optimum), with a metre's slack per visit for
        # the library's rounding of each pair to the metre.
        limit = best_travel if travel_held is None else travel_held
        prob += travel <= limit + 5e-4 * len(visits) + 1e-6
        last = dict(zip(visits["visit_id"], visits["last_volunteer"], strict=True))
        stay = pulp.lpSum(var for key, var in x.items() if last[key[0]] == key[1])
        prob.setObjective(stay)
        prob.sense = pulp.LpMaximize
        prob.solve(solver)
        assert pulp.LpStatus[prob.status] == "Optimal"
        continuity = round(pulp.value(prob.objective) or 0)
        prob += stay >= (continuity if continuity_held is None else continuity_held)
        # Σ_i (hours_i)², convex in whole steps: step k of volunteer i costs
        # (k² − (k−1)²)·step², increasing in k, so an optimum fills each one's steps in order.
        step = _hour_step(visits["hours"])
        steps = []
        for vol, pairs in by_volunteer.items():
            most = int(Fraction(cap[vol]).limit_denominator(60) / step) + 1
            ys = [prob.add_variable(f"y{len(steps)}_{k}", lowBound=0, upBound=1)
                  for k in range(1, most + 1)]
            prob += pulp.lpSum(ys) * float(step) == pulp.lpSum(hours[v] * var for v, var in pairs)
            steps.extend((float((2 * k - 1) * step * step), y) for k, y in enumerate(ys, 1))
        prob.setObjective(pulp.lpSum(c * y for c, y in steps))
        prob.sense = pulp.LpMinimize
        prob.solve(solver)
        assert pulp.LpStatus[prob.status] == "Optimal"
        load = float(pulp.value(prob.objective) or 0.0)
    chosen = {key[0]: (key[1], key[2]) for key, var in x.items() if var.value() > 0.5}
    total = sum(km[key] for key, var in x.items() if var.value() > 0.5)
    return Solution(per_class=per_class, travel_km=best_travel if later else total,
                    assignment=chosen, continuity=continuity, load=load)
