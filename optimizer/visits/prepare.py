"""The matching's input as arrays: volunteers, visit locations, groups of interchangeable
visits, hours in whole units, and the pins checked (every pin that cannot be kept refused with
:class:`~wulian.optimizer.pins.PinError`). docs/matching.md has the model these arrays feed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from wulian.contract import vocab
from wulian.optimizer.geo import KM_TOLERANCE, haversine_km
from wulian.optimizer.masks import bit_masks
from wulian.optimizer.pins import PinError, PinProblem
from wulian.optimizer.visits.params import SLOTS, URGENCIES


def hour_scale(hours: np.ndarray) -> tuple[int, bool]:
    """The smallest ``s`` in 1…60 making every ``hours × s`` whole (half-hours give 2).

    Returns ``(s, exact)``; when no such ``s`` exists, ``(60, False)``: minutes, with visit
    lengths rounded up (never under-counting a volunteer's hours).
    """
    hours = np.asarray(hours, float)
    for s in range(1, 61):
        scaled = hours * s
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6):
            return s, True
    return 60, False


@dataclass
class VisitArrays:
    """The whole model's arrays: volunteers, visits, their distinct locations and groups (sets
    of interchangeable unpinned visits). Volunteers are indices into the volunteers table."""

    scale: int  # hour units per hour
    # volunteers
    vol_ids: np.ndarray
    vol_skills: np.ndarray
    vol_checked: np.ndarray
    vol_avail: np.ndarray  # bool, volunteers × slots
    vol_max_units: np.ndarray  # max_hours in hour units
    vol_lat: np.ndarray
    vol_lon: np.ndarray
    vol_reach: np.ndarray  # max_travel_km
    pinned_units: np.ndarray  # hours of pinned visits, in units
    pinned_count: np.ndarray
    pinned_slot_taken: np.ndarray  # bool, volunteers × slots
    free_slots: np.ndarray  # S_i: available slots not taken by pins
    free_units: np.ndarray  # H_i less pinned hours
    # visits
    visit_units: np.ndarray
    visit_class: np.ndarray
    visit_loc: np.ndarray
    visit_group: np.ndarray  # -1 for pinned visits
    visit_last: np.ndarray  # volunteer index of the household's last volunteer, -1 none
    pin_vol: np.ndarray  # volunteer index, -1 when not pinned
    pin_slot: np.ndarray  # slot index, -1 when none
    loc_lat: np.ndarray
    loc_lon: np.ndarray
    # groups
    g_units: np.ndarray
    g_class: np.ndarray
    g_count: np.ndarray
    g_loc: np.ndarray
    g_skills: np.ndarray
    g_safe: np.ndarray
    g_last: np.ndarray  # volunteer index of the last volunteer, -1 none
    # What is worked out once from these (never changed) arrays and asked for twice, by name
    # (``bounds.key_pairs``: the travel bound and the travel repair of a final matching).
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def pair_metres(self, group: np.ndarray, vol: np.ndarray) -> np.ndarray:
        """Metres of (group, volunteer) pairs, as the pairs' tables count them."""
        loc = self.g_loc[group]
        km = haversine_km(self.vol_lat[vol], self.vol_lon[vol], self.loc_lat[loc],
                          self.loc_lon[loc])
        return np.round(km * 1000.0).astype(np.int64)


def prepare(visits: pd.DataFrame, volunteers: pd.DataFrame) -> VisitArrays:
    """Arrays of the model, pins checked (raises PinError). No pairs: those are built
    region by region (``regions.solve_region``), so the whole never has to fit in memory."""
    vols = volunteers.reset_index(drop=True)
    n_vol = len(vols)
    vol_ids = vols["volunteer_id"].astype(str).to_numpy()
    vol_index = pd.Series(np.arange(n_vol), index=vol_ids)
    avail_bits = bit_masks(vols["availability"], SLOTS)
    vol_avail = (avail_bits[:, None] >> np.arange(len(SLOTS))[None, :]) & 1 == 1
    # Whole hour units for CP-SAT and the flow; volunteers' caps round down to them.
    scale, exact = hour_scale(visits["hours"].to_numpy(float))
    raw_units = visits["hours"].to_numpy(float) * scale
    visit_units = (np.round(raw_units) if exact else np.ceil(raw_units - 1e-6)).astype(np.int64)
    # A volunteer's cap rounds down: a volunteer is never asked for more than max_hours.
    vol_max_units = np.floor(vols["max_hours"].to_numpy(float) * scale + 1e-6).astype(np.int64)

    tier_rank = visits["tier"].map({t: i for i, t in enumerate(vocab.TIER_ORDER)})
    if tier_rank.isna().any():
        raise ValueError("every visit needs a colour (tier) of " + ", ".join(vocab.TIER_ORDER))
    urgency = visits["urgency"].to_numpy(float).astype(np.int64)
    visit_class = (tier_rank.to_numpy(np.int64) * len(URGENCIES)
                   + (max(URGENCIES) - np.clip(urgency, 1, 3)))

    lat = visits["lat"].to_numpy(float)
    lon = visits["lon"].to_numpy(float)
    loc_codes, loc_uniques = pd.factorize(pd.MultiIndex.from_arrays([lat, lon]))
    loc_lat = np.array([u[0] for u in loc_uniques], float) if len(loc_uniques) else np.zeros(0)
    loc_lon = np.array([u[1] for u in loc_uniques], float) if len(loc_uniques) else np.zeros(0)
    vol_lat = vols["lat"].to_numpy(float)
    vol_lon = vols["lon"].to_numpy(float)
    vol_reach = vols["max_travel_km"].to_numpy(float)

    skills = bit_masks(visits["skills"], vocab.SKILLS)
    safe = visits["safeguarding"].to_numpy(bool)
    vol_skills = bit_masks(vols["skills"], vocab.SKILLS)
    vol_checked = vols["background_checked"].to_numpy(bool)
    last = visits["last_volunteer"].fillna("").astype(str)
    last_idx = last.map(vol_index).fillna(-1).to_numpy(np.int64)

    pin_vol_id = visits["pin_volunteer"].fillna("").astype(str).to_numpy()
    pin_slot_id = visits["pin_slot"].fillna("").astype(str).to_numpy()
    pinned = pin_vol_id != ""
    pin_vol = pd.Series(pin_vol_id).map(vol_index).fillna(-1).to_numpy(np.int64)
    slot_index = {s: i for i, s in enumerate(SLOTS)}
    pin_slot = np.array([slot_index.get(s, -1) for s in pin_slot_id], np.int64)
    pinned_units, pinned_count, slot_taken = _check_pins(
        visits["visit_id"].astype(str).to_numpy(), pinned, pin_vol, pin_slot, pin_vol_id,
        pin_slot_id, visit_units, skills, safe, lat, lon, vol_ids, vol_skills, vol_checked,
        vol_avail, vol_max_units, vol_lat, vol_lon, vol_reach, scale)

    free_slots = np.maximum(vol_avail.sum(axis=1) - pinned_count, 0)
    free_units = np.maximum(vol_max_units - pinned_units, 0)

    # Groups of interchangeable unpinned visits, numbered in order of first appearance.
    free = ~pinned
    key = pd.MultiIndex.from_arrays([loc_codes[free], visit_units[free], skills[free],
                                     safe[free], visit_class[free], last_idx[free]])
    g_codes, g_uniques = pd.factorize(key)
    visit_group = np.full(len(visits), -1, np.int64)
    visit_group[free] = g_codes
    n_groups = len(g_uniques)
    cols = [np.asarray(g_uniques.get_level_values(k)) for k in range(6)] if n_groups else \
        [np.zeros(0, np.int64)] * 6
    g_loc, g_units, g_skills = (cols[0].astype(np.int64), cols[1].astype(np.int64),
                                cols[2].astype(np.int64))
    g_safe, g_class, g_last = cols[3].astype(bool), cols[4].astype(np.int64), \
        cols[5].astype(np.int64)
    g_count = np.bincount(g_codes, minlength=n_groups).astype(np.int64)
    return VisitArrays(
        scale=scale, vol_ids=vol_ids, vol_skills=vol_skills, vol_checked=vol_checked,
        vol_avail=vol_avail, vol_max_units=vol_max_units, vol_lat=vol_lat, vol_lon=vol_lon,
        vol_reach=vol_reach, pinned_units=pinned_units, pinned_count=pinned_count,
        pinned_slot_taken=slot_taken, free_slots=free_slots, free_units=free_units,
        visit_units=visit_units, visit_class=visit_class, visit_loc=loc_codes,
        visit_group=visit_group, visit_last=last_idx,
        pin_vol=np.where(pinned, pin_vol, -1), pin_slot=np.where(pinned, pin_slot, -1),
        loc_lat=loc_lat, loc_lon=loc_lon,
        g_units=g_units, g_class=g_class, g_count=g_count, g_loc=g_loc, g_skills=g_skills,
        g_safe=g_safe, g_last=g_last)


def _check_pins(ids, pinned, pin_vol, pin_slot, pin_vol_id, pin_slot_id, units, skills, safe,
                lat, lon, vol_ids, vol_skills, vol_checked, vol_avail, vol_max_units, vol_lat,
                vol_lon, vol_reach, scale):
    """Pinned hours, counts and slots per volunteer; every pin that cannot be kept, refused."""
    n_vol = len(vol_ids)
    problems: list[PinProblem] = []
    for v in np.flatnonzero(pinned):  # a loop over the coordinator's pins, not over visits
        i, who, visit = pin_vol[v], pin_vol_id[v], str(ids[v])
        if i < 0:
            problems.append(PinProblem("visit_no_volunteer", visit, who))
            continue
        if (vol_skills[i] & skills[v]) != skills[v]:
            problems.append(PinProblem("visit_skill", visit, who))
        if safe[v] and not vol_checked[i]:
            problems.append(PinProblem("visit_check", visit, who))
        km = float(haversine_km(vol_lat[i], vol_lon[i], lat[v], lon[v]))
        if not km <= vol_reach[i] + KM_TOLERANCE:
            problems.append(PinProblem("visit_reach", visit, who, {
                "km": f"{km:.1f}", "reach": f"{vol_reach[i]:g}"}))
        if pin_slot_id[v] and pin_slot[v] < 0:
            problems.append(PinProblem("visit_slot_unknown", visit, who,
                                       {"slot": repr(pin_slot_id[v])}))
        elif pin_slot[v] >= 0 and not vol_avail[i, pin_slot[v]]:
            problems.append(PinProblem("visit_slot_unavailable", visit, who,
                                       {"slot": pin_slot_id[v]}))
    ok = pinned & (pin_vol >= 0)
    pinned_units = np.bincount(pin_vol[ok], weights=units[ok], minlength=n_vol).astype(np.int64)
    pinned_count = np.bincount(pin_vol[ok], minlength=n_vol).astype(np.int64)
    slot_taken = np.zeros_like(vol_avail)
    with_slot = ok & (pin_slot >= 0)
    pairs = pd.DataFrame({"vol": pin_vol[with_slot], "slot": pin_slot[with_slot]})
    for key, n in pairs.value_counts().sort_index().items():
        i, t = cast("tuple[int, int]", key)  # a (vol, slot) pair of the two-column index
        slot_taken[i, t] = True
        if n > 1:
            problems.append(PinProblem("visit_slot_twice", source=str(vol_ids[i]), facts={
                "count": n, "slot": SLOTS[t]}))
    for i in np.flatnonzero(pinned_count > vol_avail.sum(axis=1)):
        problems.append(PinProblem("visit_slots_short", source=str(vol_ids[i]), facts={
            "count": pinned_count[i], "slots": vol_avail[i].sum()}))
    for i in np.flatnonzero(pinned_units > vol_max_units):
        problems.append(PinProblem("visit_hours_over", source=str(vol_ids[i]), facts={
            "hours": f"{pinned_units[i] / scale:g}", "most": f"{vol_max_units[i] / scale:g}"}))
    if problems:
        raise PinError(problems)
    return pinned_units, pinned_count, slot_taken
