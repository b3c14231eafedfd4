"""An independent PuLP/CBC formulation of the weekly allocation, written from the specification.

Nothing here is taken from ``optimizer/`` or ``planning/allocate.py``: the admissible arcs, the
constraints and the seven lexicographic levels are rebuilt from the scenario's tables, one plain
loop at a time, so that agreement with the library means something. The instances are small.

All decision variables are integers in base units: one hour, visit or item, or one cent for
services counted in yuan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import pulp

LEVELS = ("red", "orange", "yellow", "green", "money", "travel", "continuity")
COLOURS = ("red", "orange", "yellow", "green")
SENSE = {"red": "max", "orange": "max", "yellow": "max", "green": "max",
         "money": "min", "travel": "min", "continuity": "max"}
EARTH_RADIUS_KM = 6371.0088
# Each later level holds every earlier one at its optimum within HOLD·max(1, |value|). Not
# 1e-6: one cent of a large yuan need is worth urgency/quantity ≈ 1e-5 of a colour level, below
# 1e-6·value, so a 1e-6 slack lets the model give up a red cent to save a cent of money.
HOLD = 1e-9


def split(cell: object) -> list[str]:
    """A ';'-separated list cell as a list of codes (empty cell: empty list)."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return []
    return [part.strip() for part in str(cell).split(";") if part.strip()]


def text(cell: object) -> str:
    """A text cell as a stripped string, "" when empty."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return ""
    return str(cell).strip()


def number(cell: object) -> float | None:
    """A numeric cell as a float, None when empty."""
    if cell is None or cell == "":
        return None
    value = float(cell)
    return None if math.isnan(value) else value


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


@dataclass
class Need:
    need_id: str
    household_id: str
    service_id: str
    quantity: int  # base units
    urgency: int
    tier: str
    scale: int  # base units per unit of the service (100 for yuan, else 1)


@dataclass
class Offer:
    offer_id: str
    provider_id: str
    service_id: str
    capacity: int  # base units
    cost_per_base: float  # yuan per base unit, 0 when the offer charges no fund
    fund_id: str  # "" when the offer charges no fund
    coverage: str  # centre whose subtree it serves
    categories: list[str]
    tiers: list[str]
    max_per_household: int | None  # base units


@dataclass
class Fund:
    fund_id: str
    budget: float
    centre_id: str
    earmarked: list[str]
    max_per_household: float | None


@dataclass
class Pool:
    pool_id: str
    street_id: str
    service_id: str
    members: list[str]
    hours: float  # Σ max_hours of the members
    units: float  # whole units the members can give (one visit per available slot)
    hours_per_unit: float
    trips_per_unit: float
    lat: float
    lon: float


@dataclass
class Arc:
    need_id: str
    source_id: str  # offer id or pool id
    kind: str  # "offer" or "volunteer_pool"
    travel: float = 0.0  # km per base unit
    continuity: float = 0.0  # 1 when the pool holds the household's last volunteer


@dataclass
class Reference:
    """Everything the specification derives from a scenario, in base units."""

    needs: dict[str, Need]
    offers: dict[str, Offer]
    funds: dict[str, Fund]
    pools: dict[str, Pool]
    street_hours: dict[str, float]
    arcs: list[Arc]
    household_station: dict[str, str]
    household_categories: dict[str, list[str]]
    station_street: dict[str, str]
    subtree: dict[str, set[str]]
    pins: list[tuple[str, str, int]] = field(default_factory=list)  # (need, source, base units)

    def arcs_of(self, need_id: str) -> list[Arc]:
        return [a for a in self.arcs if a.need_id == need_id]

    def eligible_offers(self, need: Need) -> list[Offer]:
        """Offers of the need's service that accept the household's categories and colour,
        coverage ignored."""
        cats = set(self.household_categories[need.household_id])
        return [o for o in self.offers.values()
                if o.service_id == need.service_id
                and (not o.categories or cats & set(o.categories))
                and (not o.tiers or need.tier in o.tiers)]

    def pool_exists(self, service_id: str) -> bool:
        return any(p.service_id == service_id for p in self.pools.values())

    def offer_rules_broken(self, need_id: str, offer_id: str) -> list[str]:
        """The admissibility rules the arc (need, offer) breaks; empty when admissible."""
        n, o = self.needs[need_id], self.offers[offer_id]
        station = self.household_station[n.household_id]
        cats = set(self.household_categories[n.household_id])
        broken = []
        if o.service_id != n.service_id:
            broken.append("service")
        if station not in self.subtree[o.coverage]:
            broken.append("coverage")
        if o.categories and not cats & set(o.categories):
            broken.append("categories")
        if o.tiers and n.tier not in o.tiers:
            broken.append("colour")
        if o.fund_id:
            f = self.funds[o.fund_id]
            if station not in self.subtree[f.centre_id]:
                broken.append("fund coverage")
            if f.earmarked and n.service_id not in f.earmarked:
                broken.append("earmark")
        return broken

    def pool_rules_broken(self, need_id: str, pid: str) -> list[str]:
        """The rules the arc (need, pool) breaks; empty when admissible."""
        n, p = self.needs[need_id], self.pools[pid]
        broken = []
        if p.service_id != n.service_id:
            broken.append("service")
        if self.station_street[self.household_station[n.household_id]] != p.street_id:
            broken.append("street")
        return broken


def pool_id(street_id: str, service_id: str) -> str:
    return f"pool:{street_id}:{service_id}"


def _subtrees(centres: pd.DataFrame) -> dict[str, set[str]]:
    children: dict[str, list[str]] = {}
    for _, row in centres.iterrows():
        parent = text(row["parent_id"])
        if parent:
            children.setdefault(parent, []).append(text(row["centre_id"]))
    out: dict[str, set[str]] = {}
    for centre in centres["centre_id"]:
        seen, stack = set(), [text(centre)]
        while stack:
            c = stack.pop()
            if c not in seen:
                seen.add(c)
                stack.extend(children.get(c, []))
        out[text(centre)] = seen
    return out


def build(scenario) -> Reference:
    """Derive needs, offers, funds, pools and admissible arcs from a validated scenario."""
    t = scenario.tables
    centres = t["centres"]
    subtree = _subtrees(centres)
    level = {text(r["centre_id"]): text(r["level"]) for _, r in centres.iterrows()}
    parent = {text(r["centre_id"]): text(r["parent_id"]) for _, r in centres.iterrows()}
    centre_pos = {text(r["centre_id"]): (float(r["lat"]), float(r["lon"]))
                  for _, r in centres.iterrows()}
    station_street = {c: parent[c] for c, lv in level.items() if lv == "station"}

    services = {text(r["service_id"]): r for _, r in t["services"].iterrows()}
    scale = {s: (100 if text(r["unit"]) == "yuan" else 1) for s, r in services.items()}

    hh = scenario.households
    household_station = {text(r["household_id"]): text(r["station_id"]) for _, r in hh.iterrows()}
    household_categories = {text(r["household_id"]): split(r["categories"])
                            for _, r in hh.iterrows()}
    household_tier = {text(r["household_id"]): text(r["tier"]) for _, r in hh.iterrows()}
    household_pos = {}
    for _, r in hh.iterrows():
        lat, lon = number(r.get("lat")), number(r.get("lon"))
        h = text(r["household_id"])
        household_pos[h] = ((lat, lon) if lat is not None and lon is not None
                            else centre_pos[household_station[h]])

    needs: dict[str, Need] = {}
    for _, r in t["needs"].iterrows():
        s = text(r["service_id"])
        h = text(r["household_id"])
        needs[text(r["need_id"])] = Need(
            text(r["need_id"]), h, s, round(float(r["quantity"]) * scale[s]),
            int(r["urgency"]), household_tier[h], scale[s])

    funds: dict[str, Fund] = {}
    for _, r in t["funds"].iterrows():
        funds[text(r["fund_id"])] = Fund(text(r["fund_id"]), float(r["budget"]),
                                         text(r["centre_id"]), split(r["earmarked_services"]),
                                         number(r["max_per_household"]))

    provider_centre = {text(r["provider_id"]): text(r["centre_id"])
                       for _, r in t["providers"].iterrows()}
    offers: dict[str, Offer] = {}
    for _, r in t["offers"].iterrows():
        s = text(r["service_id"])
        unit_cost = number(r["unit_cost"]) or 0.0
        fund_id = text(r["fund_id"])
        charges = unit_cost > 0 and fund_id != ""
        mph = number(r["max_per_household"])
        offers[text(r["offer_id"])] = Offer(
            offer_id=text(r["offer_id"]), provider_id=text(r["provider_id"]), service_id=s,
            capacity=math.floor(float(r["capacity"]) * scale[s] + 1e-6),
            cost_per_base=unit_cost / scale[s] if charges else 0.0,
            fund_id=fund_id if charges else "",
            coverage=text(r["coverage_centre_id"]) or provider_centre[text(r["provider_id"])],
            categories=split(r["eligible_categories"]), tiers=split(r["eligible_tiers"]),
            max_per_household=None if mph is None else math.floor(mph * scale[s] + 1e-6))

    # Volunteer pools: per street × in-person service, the street's capable volunteers.
    vols = t["volunteers"]
    street_of_volunteer = {text(r["volunteer_id"]): station_street[text(r["station_id"])]
                           for _, r in vols.iterrows()}
    street_hours: dict[str, float] = {}
    for _, r in vols.iterrows():
        st = street_of_volunteer[text(r["volunteer_id"])]
        street_hours[st] = street_hours.get(st, 0.0) + float(r["max_hours"])
    pools: dict[str, Pool] = {}
    for s, srv in services.items():
        if text(srv["delivery"]) != "in_person":
            continue
        skills = set(split(srv["skills"]))
        safeguarding = bool(srv["safeguarding"])
        unit = text(srv["unit"])
        visit_hours = number(srv["visit_hours"])
        hours_per_unit = visit_hours if unit == "visit" else 1.0
        trips_per_unit = 1.0 if unit == "visit" else 1.0 / visit_hours
        for street in sorted(street_hours):
            members = [r for _, r in vols.iterrows()
                       if street_of_volunteer[text(r["volunteer_id"])] == street
                       and skills <= set(split(r["skills"]))
                       and (not safeguarding or bool(r["background_checked"]))]
            if not members:
                continue
            pid = pool_id(street, s)
            units = 0.0
            for m in members:
                whole = math.floor(float(m["max_hours"]) / hours_per_unit + 1e-9)
                slots = len(split(m["availability"]))
                units += min(whole, slots) if unit == "visit" else whole
            pools[pid] = Pool(
                pid, street, s, [text(m["volunteer_id"]) for m in members],
                sum(float(m["max_hours"]) for m in members), units, hours_per_unit,
                trips_per_unit,
                sum(float(m["lat"]) for m in members) / len(members),
                sum(float(m["lon"]) for m in members) / len(members))

    # The household's last volunteer: the history row with the latest week.
    last_volunteer: dict[str, str] = {}
    latest: dict[str, str] = {}
    for _, r in t["history"].iterrows():
        h, week = text(r["household_id"]), text(r["week"])
        if h not in latest or week > latest[h]:
            latest[h], last_volunteer[h] = week, text(r["volunteer_id"])

    ref = Reference(needs, offers, funds, pools, street_hours, [], household_station,
                    household_categories, station_street, subtree)
    for n in needs.values():
        station = household_station[n.household_id]
        for o in offers.values():
            if not ref.offer_rules_broken(n.need_id, o.offer_id):
                ref.arcs.append(Arc(n.need_id, o.offer_id, "offer"))
        pid = pool_id(station_street[station], n.service_id)
        if pid in pools:
            p = pools[pid]
            lat, lon = household_pos[n.household_id]
            km = haversine_km(p.lat, p.lon, lat, lon)
            cont = 1.0 if last_volunteer.get(n.household_id) in p.members else 0.0
            ref.arcs.append(Arc(n.need_id, pid, "volunteer_pool", 2 * km * p.trips_per_unit,
                                cont))

    for _, r in t["pins"].iterrows():
        n = needs[text(r["need_id"])]
        if text(r["offer_id"]):
            source = text(r["offer_id"])
        else:
            v = text(r["volunteer_id"])
            source = pool_id(street_of_volunteer[v], n.service_id)
        ref.pins.append((n.need_id, source, round(float(r["units"]) * n.scale)))
    return ref


def _cost(ref: Reference, arc: Arc) -> float:
    return ref.offers[arc.source_id].cost_per_base if arc.kind == "offer" else 0.0


def level_expressions(ref: Reference, x: dict[int, object]) -> dict[str, object]:
    """Each level as a linear expression (or a number) of the arc amounts ``x``."""
    exprs: dict[str, object] = {}
    for colour in COLOURS:
        exprs[colour] = pulp.lpSum(
            ref.needs[a.need_id].urgency / ref.needs[a.need_id].quantity * x[i]
            for i, a in enumerate(ref.arcs) if ref.needs[a.need_id].tier == colour)
    exprs["money"] = pulp.lpSum(_cost(ref, a) * x[i] for i, a in enumerate(ref.arcs))
    exprs["travel"] = pulp.lpSum(a.travel * x[i] for i, a in enumerate(ref.arcs))
    exprs["continuity"] = pulp.lpSum(a.continuity * x[i] for i, a in enumerate(ref.arcs))
    return exprs


def level_values(ref: Reference, amounts: dict[tuple[str, str], float]) -> dict[str, float]:
    """The seven levels of given arc amounts (base units) keyed by (need_id, source_id)."""
    values = dict.fromkeys(LEVELS, 0.0)
    for a in ref.arcs:
        v = amounts.get((a.need_id, a.source_id), 0.0)
        n = ref.needs[a.need_id]
        values[n.tier] += n.urgency / n.quantity * v
        values["money"] += _cost(ref, a) * v
        values["travel"] += a.travel * v
        values["continuity"] += a.continuity * v
    return values


class InfeasiblePins(RuntimeError):
    """The pins cannot all be kept."""


def solve(scenario_or_ref, upto: str | None = None, solver: str = "cbc"
          ) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """Solve the seven levels lexicographically (or those up to and including ``upto``);
    return each level's optimal value and the final arc amounts (base units).

    ``solver``: "cbc" (PuLP's bundled CBC, presolve and preprocessing off), or "scip": the
    same PuLP model written as MPS and solved by SCIP (in OR-Tools). Without preprocessing,
    CBC takes many minutes on models of a few thousand columns whose levels are held by value
    rows; SCIP takes seconds. The formulation is this module's either way."""
    ref = scenario_or_ref if isinstance(scenario_or_ref, Reference) else build(scenario_or_ref)
    prob, x, exprs = allocation_model(ref)
    # PuLP's bundled CBC, through COIN_CMD (PULP_CBC_CMD is deprecated for PuLP 4). CBC
    # 2.10.3's preprocessing can cut off the optimum of these models (factory seed 10: red
    # 17.7535 "optimal" where 17.7659 is feasible), so presolve and preprocessing are off.
    cbc = pulp.COIN_CMD(path=pulp.PULP_CBC_CMD.pulp_cbc_path, msg=False, gapRel=0.0,
                        gapAbs=0.0, threads=1, presolve=False, options=["preprocess off"])
    values: dict[str, float] = {}
    levels = LEVELS if upto is None else LEVELS[:LEVELS.index(upto) + 1]
    for name in levels:
        expr = exprs[name]
        if not any(coef for coef in expr.values()):
            values[name] = 0.0
            continue
        prob.sense = pulp.LpMaximize if SENSE[name] == "max" else pulp.LpMinimize
        prob.setObjective(expr + 0)
        status = prob.solve(cbc) if solver == "cbc" else _solve_scip(prob)
        if pulp.LpStatus[status] == "Infeasible":
            raise InfeasiblePins("the pins cannot all be kept")
        if pulp.LpStatus[status] != "Optimal":
            raise RuntimeError(f"level {name}: {solver} status {pulp.LpStatus[status]}")
        # Evaluate on the rounded (truly integral) amounts, not on CBC's near-integers.
        rounded = {x[i].name: float(round(x[i].value() or 0.0)) for i in x}
        value = float(sum(coef * rounded[var.name] for var, coef in expr.items()))
        values[name] = value
        slack = HOLD * max(1.0, abs(value))
        if SENSE[name] == "max":
            prob.addConstraint(expr >= value - slack, f"hold_{name}")
        else:
            prob.addConstraint(expr <= value + slack, f"hold_{name}")
    amounts = {(a.need_id, a.source_id): float(round(x[i].value() or 0.0))
               for i, a in enumerate(ref.arcs)}
    return values, amounts


def best_given(scenario_or_ref, level: str, held: dict[str, float],
               time_limit: float = 0.0, relaxed: bool = False) -> float:
    """The exact optimum of ``level`` over every plan that keeps each level of ``held`` at
    least at its value (at most, for money and travel), solved by SCIP: what a level's
    certified bound must never be below, given the earlier levels a run reached. Raises when
    SCIP does not prove it within ``time_limit`` seconds (0: none).

    ``relaxed``: the optimum of the LP relaxation instead (every amount continuous), which
    every bound that relaxes only the exact model's integrality, the rows coupling its parts
    or its per-household caps must also stay on the right side of."""
    ref = scenario_or_ref if isinstance(scenario_or_ref, Reference) else build(scenario_or_ref)
    prob, x, exprs = allocation_model(ref)
    if relaxed:
        for var in x.values():
            var.cat = pulp.LpContinuous
    for name, value in held.items():
        slack = HOLD * max(1.0, abs(value))  # the run's own plan must stay inside
        if SENSE[name] == "max":
            prob.addConstraint(exprs[name] >= value - slack, f"hold_{name}")
        else:
            prob.addConstraint(exprs[name] <= value + slack, f"hold_{name}")
    expr = exprs[level]
    if not any(coef for coef in expr.values()):
        return 0.0
    prob.sense = pulp.LpMaximize if SENSE[level] == "max" else pulp.LpMinimize
    prob.setObjective(expr + 0)
    status = _solve_scip(prob, time_limit)
    if pulp.LpStatus[status] != "Optimal":
        raise RuntimeError(f"level {level}: SCIP status {pulp.LpStatus[status]}")
    if relaxed:
        return float(sum(coef * (var.value() or 0.0) for var, coef in expr.items()))
    rounded = {x[i].name: float(round(x[i].value() or 0.0)) for i in x}
    return float(sum(coef * rounded[var.name] for var, coef in expr.items()))


def allocation_model(ref: Reference) -> tuple[pulp.LpProblem, dict[int, pulp.LpVariable], dict]:
    """The weekly allocation's variables and rows (no objective yet), and each level's
    expression."""
    prob = pulp.LpProblem("wulian_reference", pulp.LpMaximize)
    x: dict[int, pulp.LpVariable] = {}
    pinned: dict[tuple[str, str], int] = {}
    for need_id, source, units in ref.pins:
        pinned[(need_id, source)] = pinned.get((need_id, source), 0) + units
    arc_keys = {(a.need_id, a.source_id) for a in ref.arcs}
    for key in pinned:
        if key not in arc_keys:
            raise InfeasiblePins(f"pin on an arc that is not admissible: {key}")
    for i, a in enumerate(ref.arcs):
        n = ref.needs[a.need_id]
        x[i] = prob.add_variable(f"x{i}", lowBound=pinned.get((a.need_id, a.source_id), 0),
                                 upBound=n.quantity, cat=pulp.LpInteger)

    def add(expr, name: str) -> None:
        prob.addConstraint(expr, name)

    for n in ref.needs.values():
        terms = [x[i] for i, a in enumerate(ref.arcs) if a.need_id == n.need_id]
        if terms:
            add(pulp.lpSum(terms) <= n.quantity, f"need_{n.need_id}")
    for o in ref.offers.values():
        idx = [i for i, a in enumerate(ref.arcs) if a.source_id == o.offer_id]
        if not idx:
            continue
        add(pulp.lpSum(x[i] for i in idx) <= o.capacity, f"cap_{o.offer_id}")
        if o.max_per_household is not None:
            households = sorted({ref.needs[ref.arcs[i].need_id].household_id for i in idx})
            for h in households:
                add(pulp.lpSum(x[i] for i in idx
                               if ref.needs[ref.arcs[i].need_id].household_id == h)
                    <= o.max_per_household, f"ohh_{o.offer_id}_{h}")
    for f in ref.funds.values():
        idx = [i for i, a in enumerate(ref.arcs)
               if a.kind == "offer" and ref.offers[a.source_id].fund_id == f.fund_id]
        if not idx:
            continue
        add(pulp.lpSum(_cost(ref, ref.arcs[i]) * x[i] for i in idx) <= f.budget,
            f"budget_{f.fund_id}")
        if f.max_per_household is not None:
            households = sorted({ref.needs[ref.arcs[i].need_id].household_id for i in idx})
            for h in households:
                add(pulp.lpSum(_cost(ref, ref.arcs[i]) * x[i] for i in idx
                               if ref.needs[ref.arcs[i].need_id].household_id == h)
                    <= f.max_per_household, f"fhh_{f.fund_id}_{h}")
    for p in ref.pools.values():
        idx = [i for i, a in enumerate(ref.arcs) if a.source_id == p.pool_id]
        if idx:
            add(pulp.lpSum(p.hours_per_unit * x[i] for i in idx) <= p.hours,
                f"pool_{p.pool_id}")
            add(pulp.lpSum(x[i] for i in idx) <= p.units, f"pool_units_{p.pool_id}")
    for street, hours in ref.street_hours.items():
        idx = [i for i, a in enumerate(ref.arcs)
               if a.kind == "volunteer_pool" and ref.pools[a.source_id].street_id == street]
        if idx:
            add(pulp.lpSum(ref.pools[ref.arcs[i].source_id].hours_per_unit * x[i]
                           for i in idx) <= hours, f"street_{street}")

    return prob, x, level_expressions(ref, x)


def _solve_scip(prob: pulp.LpProblem, time_limit: float = 0.0) -> int:
    """Solve ``prob`` (written as MPS) with SCIP; set its variables' values; PuLP's status
    (not solved when ``time_limit`` seconds, if any, ran out first)."""
    import os
    import tempfile

    from ortools.linear_solver.python import model_builder as mb

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "reference.mps")
        # Written as a minimisation (PuLP negates a maximised objective): MPS readers agree
        # on that sense.
        variables_written, names, _, _ = prob.writeMPS(path, mpsSense=pulp.LpMinimize,
                                                       rename=True)
        model = mb.Model()
        model.import_from_mps_file(path)
    solver = mb.Solver("SCIP")
    # Tolerances tight enough that a whole answer never breaks a row of cents by a cent.
    solver.set_solver_specific_parameters("numerics/feastol = 1e-9\nlimits/gap = 0\n")
    if time_limit > 0:
        solver.set_time_limit_in_seconds(time_limit)
    status = solver.solve(model)
    if status == mb.SolveStatus.INFEASIBLE:
        return pulp.LpStatusInfeasible
    if status != mb.SolveStatus.OPTIMAL:
        return pulp.LpStatusNotSolved
    variables = model.get_variables()
    values = solver.values(variables)
    by_name = {v.name: float(val) for v, val in zip(variables, values.to_numpy(), strict=True)}
    for var in variables_written:
        var.varValue = by_name.get(names[var.name], 0.0)
    return pulp.LpStatusOptimal


def reference_levels(scenario) -> dict[str, float]:
    """The optimal value of each of the seven levels, in order."""
    return solve(scenario)[0]
