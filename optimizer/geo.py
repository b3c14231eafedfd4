"""Geography the models share: great-circle distance and who is within reach of where.

The allocation (its volunteer pools' travel) and the volunteer matching (each volunteer's
``max_travel_km``) measure distance the same way, with :data:`EARTH_KM` and the haversine
formula; :func:`pairs_within` finds every (place, volunteer) pair within a volunteer's reach
without computing all of them (docs/matching.md, "Decomposition").
"""

from __future__ import annotations

import math

import numpy as np

#: Mean Earth radius (IUGG), km.
EARTH_KM = 6371.0088
#: A distance equal to the travel limit is within it; this absorbs the last bits of rounding.
KM_TOLERANCE = 1e-9


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km, elementwise."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlmb = np.radians(np.asarray(lon2, float) - np.asarray(lon1, float))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def grid_cells(lat: np.ndarray, lon: np.ndarray, side_km: float, top: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Each point's grid cell (row, column), cells at least ``side_km`` wide everywhere up to
    the latitude ``top`` (radians).

    One degree of latitude is at least 110.5 km, of longitude at least 111 km × cos(latitude)
    up to the highest latitude a path can reach, so a cell of these sizes in degrees is at
    least ``side_km`` wide, and a point reaching ``D`` km never leaves the ⌈D / side_km⌉ cells
    around its own.
    """
    return (np.floor(lat / (side_km / 110.5)).astype(np.int64),
            np.floor(lon / (side_km / (111.0 * math.cos(top)))).astype(np.int64))


def pairs_within(loc_lat: np.ndarray, loc_lon: np.ndarray, vol_lat: np.ndarray,
                 vol_lon: np.ndarray, reach_km: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                      np.ndarray]:
    """(location, volunteer, km) for every volunteer within their reach of a location, sorted
    by location then volunteer.

    Cells a quarter of the longest reach wide: each volunteer looks only at the cells their own
    reach can touch (a 2 km volunteer at 9 cells, a 15 km one at up to 81), so the distances
    computed stay within a small factor of the pairs that exist, whatever the mix of reaches.
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    loc_lat, loc_lon = np.asarray(loc_lat, float), np.asarray(loc_lon, float)
    vol_lat, vol_lon = np.asarray(vol_lat, float), np.asarray(vol_lon, float)
    reach_km = np.asarray(reach_km, float)
    if not len(loc_lat) or not len(vol_lat):
        return empty
    longest = float(np.max(reach_km)) + 1e-6
    if not longest > 0:
        return empty
    top = np.radians(min(89.0, max(np.abs(loc_lat).max(), np.abs(vol_lat).max())
                         + longest / 110.0))
    side = longest / 4.0
    lci, lcj = grid_cells(loc_lat, loc_lon, side, top)
    base_i, base_j = int(lci.min()) - 5, int(lcj.min()) - 5
    width = int(lcj.max()) - base_j + 11
    loc_key = (lci - base_i) * width + (lcj - base_j)
    loc_order = np.argsort(loc_key, kind="stable")
    sorted_key = loc_key[loc_order]
    vci, vcj = grid_cells(vol_lat, vol_lon, side, top)
    radius = np.ceil(reach_km / side - 1e-9).astype(np.int64)
    # Volunteers whose reach box misses every location cell are dropped before expanding.
    near = ((vci + radius >= lci.min()) & (vci - radius <= lci.max())
            & (vcj + radius >= lcj.min()) & (vcj - radius <= lcj.max()))
    li_parts, vi_parts = [], []
    for r in np.unique(radius[near]):
        who = np.flatnonzero(near & (radius == r))
        steps = np.arange(-int(r), int(r) + 1)
        di, dj = np.repeat(steps, len(steps)), np.tile(steps, len(steps))
        ci = (vci[who, None] + di[None, :]) - base_i
        cj = (vcj[who, None] + dj[None, :]) - base_j
        inside = (ci >= 0) & (cj >= 0) & (cj < width)
        key = (ci * width + cj)[inside]
        owner = np.broadcast_to(who[:, None], ci.shape)[inside]
        lo = np.searchsorted(sorted_key, key, side="left")
        hi = np.searchsorted(sorted_key, key, side="right")
        count = hi - lo
        hit = count > 0
        lo, count, owner = lo[hit], count[hit], owner[hit]
        offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        li_parts.append(loc_order[np.repeat(lo, count) + offset])
        vi_parts.append(np.repeat(owner, count))
    if not li_parts:
        return empty
    li, vi = np.concatenate(li_parts), np.concatenate(vi_parts)
    km = haversine_km(vol_lat[vi], vol_lon[vi], loc_lat[li], loc_lon[li])
    keep = km <= reach_km[vi] + KM_TOLERANCE
    li, vi, km = li[keep], vi[keep], km[keep]
    order = np.argsort(li * len(vol_lat) + vi, kind="stable")
    return li[order], vi[order], km[order]
