"""Regular latitude/longitude grids described by a bounding box of cell centres."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

_DECIMALS = 10  # strips float noise such as 4.525000000000001 from the centres


def axis_centres(start: float, stop: float, resolution: float) -> np.ndarray:
    """Ascending centres ``start, start + resolution, …, stop`` (both ends included)."""
    if resolution <= 0:
        raise ValueError(f"grid resolution must be positive, got {resolution}")
    if stop < start:
        raise ValueError(f"grid axis runs backwards: {start} > {stop}")
    steps = (stop - start) / resolution
    n_steps = int(round(steps))
    if abs(steps - n_steps) > 1e-6:
        raise ValueError(
            f"the span {start}…{stop} is not a whole number of {resolution}° steps; "
            "adjust the bounding box so both ends are cell centres"
        )
    return np.round(start + resolution * np.arange(n_steps + 1), _DECIMALS)


def grid_coords(bbox: Mapping[str, float], resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre ``(lat, lon)`` of the grid covering ``bbox`` (keys lat_min, lat_max,
    lon_min, lon_max; the bounds are centres and are included)."""
    missing = {"lat_min", "lat_max", "lon_min", "lon_max"} - set(bbox)
    if missing:
        raise KeyError(f"bounding box lacks {sorted(missing)}")
    lat = axis_centres(float(bbox["lat_min"]), float(bbox["lat_max"]), resolution)
    lon = axis_centres(float(bbox["lon_min"]), float(bbox["lon_max"]), resolution)
    return lat, lon
