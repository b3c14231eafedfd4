"""An independent PuLP/CBC formulation of the volunteer matching, written from the specification.

Nothing here comes from ``optimizer/visits.py``: admissibility is recomputed from the tables
(skills, background check, availability, great-circle distance), every visit × volunteer ×
slot is a binary variable (the library collapses slots; this model does not), and the levels
are solved one at a time, each later one holding every earlier one at its optimum. Instances
are small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


def solve(visits: pd.DataFrame, volunteers: pd.DataFrame) -> Solution:
    """Lexicographic optimum: per class, most visits placed; then least travel (km)."""
    return _solve(visits, volunteers, None)


def solve_given(visits: pd.DataFrame, volunteers: pd.DataFrame,
                held: dict[tuple[str, int], int]) -> Solution:
    """What any plan can reach once earlier levels are held at the values a plan found:
    ``per_class[k]`` the most visits of class ``k`` with every earlier class placing at least
    ``held`` of its visits, ``travel_km`` the least travel with every class at least ``held``
    (the yardstick of a reported bound, whatever the plan it came with)."""
    return _solve(visits, volunteers, held)


def _solve(visits: pd.DataFrame, volunteers: pd.DataFrame,
           held: dict[tuple[str, int], int] | None) -> Solution:
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

    # PuLP's bundled CBC through COIN_CMD (PULP_CBC_CMD is deprecated for PuLP 4), exact gaps,
    # preprocessing off as in reference/allocation.py.
    solver = pulp.COIN_CMD(path=pulp.PULP_CBC_CMD.pulp_cbc_path, msg=False, gapRel=0.0,
                           gapAbs=0.0, threads=1, presolve=False, options=["preprocess off"])
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
    chosen = {key[0]: (key[1], key[2]) for key, var in x.items() if var.value() > 0.5}
    total = sum(km[key] for key, var in x.items() if var.value() > 0.5)
    return Solution(per_class=per_class, travel_km=total, assignment=chosen)
