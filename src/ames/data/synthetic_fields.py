"""Climatological fields of the synthetic generator: grid geometry, regimes, orography.

``climatological_mean`` is ``C(m, c)`` of ``ames.data.synthetic``: a background rate that
decays with height, shaped by the regional seasonal regime (bimodal over the Andean interior,
unimodal toward the Llanos piedmont, blended by ``eastness``), plus the Smith & Barstad (2004)
linear-theory orographic rate for the month's easterly trade wind (``orographic_rate``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from orographic_precipitation import compute_orographic_precip

from ames.data.synthetic_config import SyntheticConfig

EARTH_RADIUS_M = 6_371_000.0
HOURS_PER_MONTH = 365.25 * 24.0 / 12.0


# --------------------------------------------------------------------------- geometry


def grid_spacing_m(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    """Mean ``(dy, dx)`` in metres of a regular lat/lon grid (spherical Earth)."""
    metres_per_degree = np.deg2rad(1.0) * EARTH_RADIUS_M
    dy = float(np.mean(np.diff(lat))) * metres_per_degree
    dx = float(np.mean(np.diff(lon))) * metres_per_degree * np.cos(np.deg2rad(np.mean(lat)))
    return dy, dx


def eastness(lat: np.ndarray, lon: np.ndarray, cfg: SyntheticConfig) -> np.ndarray:
    """Weight in [0, 1] of the eastern (Llanos piedmont) regime, ``[lat, lon]``.

    A logistic ramp across a straight axis along the Cordillera: 0 on the Andean side,
    1 beyond ``regime_offset_km`` toward the south-east.
    """
    km_per_degree = np.deg2rad(1.0) * EARTH_RADIUS_M / 1000.0
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    north_km = (lat2 - cfg.regime_axis_lat) * km_per_degree
    east_km = (lon2 - cfg.regime_axis_lon) * km_per_degree * np.cos(np.deg2rad(lat2))
    az = np.deg2rad(cfg.regime_axis_azimuth_deg)
    across_km = east_km * np.cos(az) - north_km * np.sin(az)  # positive toward the SE
    return 1.0 / (1.0 + np.exp(-(across_km - cfg.regime_offset_km) / cfg.regime_transition_km))


# --------------------------------------------------------------------------- climatology


def _normalised(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr / arr.mean()


def _square_padded_terrain(h: np.ndarray, margin: int) -> tuple[np.ndarray, slice, slice]:
    """Pad ``h`` with a linear ramp down to 0 into a square array.

    The ramp avoids a cliff where the Cordillera leaves the box; the square shape matters
    because ``compute_orographic_precip`` builds its x wavenumbers from the row count.
    """
    n_lat, n_lon = h.shape
    size = max(n_lat, n_lon) + 2 * margin
    top, left = (size - n_lat) // 2, (size - n_lon) // 2
    pad = ((top, size - n_lat - top), (left, size - n_lon - left))
    padded = np.pad(h, pad, mode="linear_ramp", end_values=0.0)
    return padded, slice(top, top + n_lat), slice(left, left + n_lon)


def orographic_rate(
    elevation: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    wind_from_deg: float,
    wind_speed_ms: float,
    cfg: SyntheticConfig,
) -> np.ndarray:
    """Smith & Barstad linear-theory orographic rate (mm/h) on an ascending-latitude grid.

    Unclipped: positive on windward slopes, negative (drying) in the lee. The package clips
    at zero, so the signed field is rebuilt from two runs, on ``h`` and ``-h`` (the theory
    is linear in the terrain).
    """
    dy, dx = grid_spacing_m(lat, lon)
    h = np.nan_to_num(elevation - np.nanmin(elevation), nan=0.0)
    h = h[::-1]  # the package expects north-up rows (row 0 = north)
    margin = int(np.ceil(max(h.shape) / 2))
    padded, rows, cols = _square_padded_terrain(h, margin)
    params = {
        "latitude": float(np.mean(lat)),
        "precip_base": 0.0,
        "wind_speed": wind_speed_ms,
        "wind_dir": wind_from_deg,
        "conv_time": cfg.sb_conv_time_s,
        "fall_time": cfg.sb_fall_time_s,
        "nm": cfg.sb_moist_stability_per_s,
        "hw": cfg.sb_vapour_scale_height_m,
        "cw": cfg.sb_uplift_sensitivity_kg_m3,
    }
    wet = compute_orographic_precip(padded, dx, dy, **params)
    dry = compute_orographic_precip(-padded, dx, dy, **params)
    return (wet - dry)[rows, cols][::-1]


def climatological_mean(
    elevation: np.ndarray, lat: np.ndarray, lon: np.ndarray, cfg: SyntheticConfig
) -> np.ndarray:
    """True mean precipitation ``[12, lat, lon]`` mm/month (NaN where elevation is NaN)."""
    w_east = eastness(lat, lon, cfg)
    regime = (1.0 - w_east)[None] * _normalised(cfg.regime_bimodal)[:, None, None] + w_east[
        None
    ] * _normalised(cfg.regime_unimodal)[:, None, None]
    z = np.nan_to_num(elevation, nan=0.0).clip(min=0.0)
    background = cfg.background_mm_month * np.exp(-z / cfg.background_scale_height_m) * regime
    clim = np.empty_like(background)
    for m in range(12):
        rate = orographic_rate(elevation, lat, lon, cfg.wind_from_deg[m], cfg.wind_speed_ms[m], cfg)
        orographic = rate * HOURS_PER_MONTH * cfg.oro_active_fraction[m]
        clim[m] = np.maximum(background[m] + orographic, cfg.lee_floor_fraction * background[m])
    clim[:, np.isnan(elevation)] = np.nan
    return clim
