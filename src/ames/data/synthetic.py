"""Physically based synthetic monthly precipitation on a real DEM, and its oracle forecast.

Model (SPEC §2.2). For month ``t`` (calendar month ``m``) and cell ``c``::

    P(t, c) = C(m, c) * exp(Z(t, c) - s²(c) / 2)
    Z(t, c) = -a(c) E(t) + b X(t, c) + σ ε(t, c)

* ``C`` is the climatological mean: a background rate with the regional seasonal regime
  (bimodal over the Andean interior, unimodal toward the Llanos piedmont) plus the
  Smith & Barstad (2004) linear-theory orographic rate for the month's easterly trade wind.
* ``E`` is an ENSO-like AR(1) index (unit variance; positive = El Niño = dry), loaded by
  ``a(c)`` which weakens from the Andes toward the Llanos.
* ``X`` is a spatially correlated anomaly field with AR(1) persistence (unit variance).
* ``ε`` is spatially correlated, temporally white noise: the unpredictable part.

``Z`` is Gaussian with variance ``s² = a² + b² + σ²``, so ``P`` is lognormal (non-negative,
right-skewed) with mean exactly ``C``. Given the latent state ``(E(t), X(t))`` at an origin,
``Z(t + L)`` is Gaussian with mean ``-a ρ_E^L E(t) + b ρ_X^L X(t)``, which gives the oracle
(conditional-mean) forecast in closed form.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from orographic_precipitation import compute_orographic_precip
from scipy.ndimage import gaussian_filter

from ames.climatology import split_month_bounds
from ames.config import derive_seed

EARTH_RADIUS_M = 6_371_000.0
HOURS_PER_MONTH = 365.25 * 24.0 / 12.0
_TRUNCATE = 4.0  # gaussian kernel half-width in standard deviations

# Reference defaults; params.yaml `data.synthetic` mirrors these.
DEFAULT_SYNTHETIC_CONFIG: dict[str, Any] = {
    "background_mm_month": 208.0,
    "background_scale_height_m": 5000.0,
    "regime_bimodal": [0.3, 0.45, 0.9, 1.55, 1.5, 0.8, 0.6, 0.65, 0.95, 1.65, 1.5, 0.65],
    "regime_unimodal": [0.15, 0.3, 0.65, 1.35, 1.75, 1.85, 1.75, 1.5, 1.3, 1.15, 0.8, 0.35],
    "regime_axis_lat": 5.8,
    "regime_axis_lon": -73.0,
    "regime_axis_azimuth_deg": 38.0,
    "regime_offset_km": 0.0,
    "regime_transition_km": 20.0,
    "wind_from_deg": [65.0, 65.0, 70.0, 80.0, 90.0, 100.0, 100.0, 100.0, 95.0, 85.0, 75.0, 70.0],
    "wind_speed_ms": [8.0, 8.0, 7.5, 6.5, 7.0, 8.5, 9.5, 9.0, 7.5, 6.5, 6.5, 7.5],
    "oro_active_fraction": [
        0.016,
        0.02,
        0.032,
        0.052,
        0.06,
        0.064,
        0.064,
        0.06,
        0.052,
        0.044,
        0.036,
        0.02,
    ],
    "sb_conv_time_s": 1000.0,
    "sb_fall_time_s": 1000.0,
    "sb_moist_stability_per_s": 0.005,
    "sb_vapour_scale_height_m": 3400.0,
    "sb_uplift_sensitivity_kg_m3": 0.013,
    "lee_floor_fraction": 0.75,
    "enso_rho": 0.9,
    "enso_loading_west": 0.13,
    "enso_loading_east": 0.07,
    "anomaly_rho": 0.45,
    "anomaly_std": 0.2,
    "anomaly_corr_length_km": 60.0,
    "noise_std": 0.21,
    "noise_corr_length_km": 15.0,
}


MONTHLY_KEYS = frozenset(
    {"regime_bimodal", "regime_unimodal", "wind_from_deg", "wind_speed_ms", "oro_active_fraction"}
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Validated generator parameters (see ``DEFAULT_SYNTHETIC_CONFIG`` for values)."""

    background_mm_month: float
    background_scale_height_m: float
    regime_bimodal: tuple[float, ...]
    regime_unimodal: tuple[float, ...]
    regime_axis_lat: float
    regime_axis_lon: float
    regime_axis_azimuth_deg: float
    regime_offset_km: float
    regime_transition_km: float
    wind_from_deg: tuple[float, ...]
    wind_speed_ms: tuple[float, ...]
    oro_active_fraction: tuple[float, ...]
    sb_conv_time_s: float
    sb_fall_time_s: float
    sb_moist_stability_per_s: float
    sb_vapour_scale_height_m: float
    sb_uplift_sensitivity_kg_m3: float
    lee_floor_fraction: float
    enso_rho: float
    enso_loading_west: float
    enso_loading_east: float
    anomaly_rho: float
    anomaly_std: float
    anomaly_corr_length_km: float
    noise_std: float
    noise_corr_length_km: float

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> SyntheticConfig:
        names = [f.name for f in fields(cls)]
        missing = sorted(set(names) - set(cfg))
        unknown = sorted(set(cfg) - set(names))
        if missing or unknown:
            raise ValueError(
                f"data.synthetic: missing keys {missing}, unknown keys {unknown}; "
                "see DEFAULT_SYNTHETIC_CONFIG in ames.data.synthetic for the full set"
            )
        values: dict[str, Any] = {}
        for name in names:
            value = cfg[name]
            if name in MONTHLY_KEYS:
                if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                    raise ValueError(f"data.synthetic.{name}: needs a list of 12 monthly values")
                if len(value) != 12:
                    raise ValueError(f"data.synthetic.{name}: needs 12 monthly values")
                values[name] = tuple(float(v) for v in value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                values[name] = float(value)
            else:
                raise ValueError(f"data.synthetic.{name}: needs a number, got {value!r}")
        config = cls(**values)
        config._check_ranges()
        return config

    def _check_ranges(self) -> None:
        for name in ("enso_rho", "anomaly_rho"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"data.synthetic.{name} must lie in [0, 1)")
        if not 0.0 <= self.lee_floor_fraction <= 1.0:
            raise ValueError("data.synthetic.lee_floor_fraction must lie in [0, 1]")
        positive = (
            "background_scale_height_m",
            "regime_transition_km",
            "anomaly_corr_length_km",
            "noise_corr_length_km",
            "sb_vapour_scale_height_m",
        )
        non_negative = (
            "background_mm_month",
            "regime_bimodal",
            "regime_unimodal",
            "wind_speed_ms",
            "oro_active_fraction",
            "enso_loading_west",
            "enso_loading_east",
            "anomaly_std",
            "noise_std",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"data.synthetic.{name} must be positive")
        for name in non_negative:
            if np.min(getattr(self, name)) < 0:
                raise ValueError(f"data.synthetic.{name} must be non-negative")
        for name in ("regime_bimodal", "regime_unimodal"):
            if sum(getattr(self, name)) <= 0:
                raise ValueError(f"data.synthetic.{name} needs a positive month")

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


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


# --------------------------------------------------------------------------- latent state


def ar1_series(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """Stationary unit-variance AR(1) series of length ``n``."""
    shocks = rng.standard_normal(n)
    out = np.empty(n)
    out[0] = shocks[0]
    scale = np.sqrt(1.0 - rho**2)
    for t in range(1, n):
        out[t] = rho * out[t - 1] + scale * shocks[t]
    return out


def correlated_fields(
    rng: np.random.Generator, n: int, shape: tuple[int, int], sigma_cells: tuple[float, float]
) -> np.ndarray:
    """``n`` independent unit-variance Gaussian fields with a Gaussian correlation shape.

    White noise on a padded grid is smoothed with a Gaussian kernel of standard deviation
    ``sigma_cells`` and divided by the kernel's L2 norm, so every interior cell has exactly
    unit variance; the padding keeps the boundary cells statistically like the interior.
    """
    pad = [int(np.ceil(_TRUNCATE * s)) + 1 for s in sigma_cells]
    big = (shape[0] + 2 * pad[0], shape[1] + 2 * pad[1])
    noise = rng.standard_normal((n, *big))
    smooth = gaussian_filter(noise, sigma=(0.0, *sigma_cells), mode="constant", truncate=_TRUNCATE)
    delta = np.zeros(big)
    delta[pad[0], pad[1]] = 1.0
    kernel = gaussian_filter(delta, sigma=sigma_cells, mode="constant", truncate=_TRUNCATE)
    norm = np.sqrt(np.sum(kernel**2))
    return smooth[:, pad[0] : pad[0] + shape[0], pad[1] : pad[1] + shape[1]] / norm


def ar1_fields(shocks: np.ndarray, rho: float) -> np.ndarray:
    """Turn independent unit-variance fields ``[T, ...]`` into a stationary AR(1) in time."""
    out = np.empty_like(shocks)
    out[0] = shocks[0]
    scale = np.sqrt(1.0 - rho**2)
    for t in range(1, len(shocks)):
        out[t] = rho * out[t - 1] + scale * shocks[t]
    return out


def _sigma_cells(corr_length_km: float, lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    # Smoothing white noise with a Gaussian of std s gives correlation exp(-r²/4s²); the
    # correlation length L (where it falls to 1/e) is therefore 2s.
    dy, dx = grid_spacing_m(lat, lon)
    s_m = corr_length_km * 1000.0 / 2.0
    return s_m / dy, s_m / dx


@dataclass(frozen=True)
class LatentState:
    enso: np.ndarray  # [T], positive = El Niño
    anomaly: np.ndarray  # [T, lat, lon], unit variance AR(1) field
    noise: np.ndarray  # [T, lat, lon], unit variance, white in time
    enso_loading: np.ndarray  # [lat, lon], a(c) >= 0 (La Niña wet)


def sample_latent(
    seed: int, n_months: int, lat: np.ndarray, lon: np.ndarray, cfg: SyntheticConfig
) -> LatentState:
    """Draw the latent state; each component has its own stream derived from ``seed``."""
    shape = (len(lat), len(lon))
    enso = ar1_series(
        np.random.default_rng(derive_seed(seed, "synthetic", "enso")), n_months, cfg.enso_rho
    )
    anomaly_rng = np.random.default_rng(derive_seed(seed, "synthetic", "anomaly"))
    anomaly = ar1_fields(
        correlated_fields(
            anomaly_rng, n_months, shape, _sigma_cells(cfg.anomaly_corr_length_km, lat, lon)
        ),
        cfg.anomaly_rho,
    )
    noise_rng = np.random.default_rng(derive_seed(seed, "synthetic", "noise"))
    noise = correlated_fields(
        noise_rng, n_months, shape, _sigma_cells(cfg.noise_corr_length_km, lat, lon)
    )
    w_east = eastness(lat, lon, cfg)
    loading = cfg.enso_loading_west + (cfg.enso_loading_east - cfg.enso_loading_west) * w_east
    return LatentState(enso, anomaly, noise, loading)


def log_variance(state: LatentState, cfg: SyntheticConfig) -> np.ndarray:
    """Total variance ``s²`` of the log-anomaly ``Z`` per cell."""
    return state.enso_loading**2 + cfg.anomaly_std**2 + cfg.noise_std**2


def precipitation(
    clim: np.ndarray, months: np.ndarray, state: LatentState, cfg: SyntheticConfig
) -> np.ndarray:
    """Monthly precipitation ``[T, lat, lon]`` mm/month."""
    z = (
        -state.enso_loading[None] * state.enso[:, None, None]
        + cfg.anomaly_std * state.anomaly
        + cfg.noise_std * state.noise
    )
    return clim[months] * np.exp(z - 0.5 * log_variance(state, cfg)[None])


def oracle_forecast(
    clim: np.ndarray,
    months: np.ndarray,
    state: LatentState,
    cfg: SyntheticConfig,
    origins: np.ndarray,
    horizon: int,
) -> np.ndarray:
    """``E[P(t + L) | E(t), X(t)]`` for each origin ``t`` and lead ``L = 1..horizon``.

    ``Z(t + L) | state ~ N(μ, v)`` with ``μ = -a ρ_E^L E(t) + b ρ_X^L X(t)`` and
    ``v = s² - a² ρ_E^2L - b² ρ_X^2L``, so the mean is ``C exp(μ + v/2 - s²/2)``.
    Returns ``[origins, horizon, lat, lon]``.
    """
    a, b = state.enso_loading, cfg.anomaly_std
    out = np.empty((len(origins), horizon, *clim.shape[1:]))
    for lead in range(1, horizon + 1):
        re, rx = cfg.enso_rho**lead, cfg.anomaly_rho**lead
        mu = -a[None] * re * state.enso[origins, None, None] + b * rx * state.anomaly[origins]
        explained = a**2 * re**2 + b**2 * rx**2
        out[:, lead - 1] = clim[months[origins + lead]] * np.exp(mu - 0.5 * explained[None])
    return out


def oracle_origins(n_months: int, test_months: int, val_months: int, horizon: int) -> np.ndarray:
    """Origins whose ``horizon`` targets all lie in validation ∪ test months."""
    val_start, _ = split_month_bounds(n_months, test_months, val_months)
    first, last = val_start - 1, n_months - 1 - horizon
    if last < first:
        raise ValueError(
            f"validation + test ({val_months} + {test_months} months) cannot hold a "
            f"{horizon}-month forecast"
        )
    return np.arange(first, last + 1)


# --------------------------------------------------------------------------- datasets


def _grid_coords(elevation: xr.DataArray) -> dict[str, Any]:
    return {
        "latitude": (
            "latitude",
            elevation["latitude"].values,
            {"units": "degrees_north", "standard_name": "latitude"},
        ),
        "longitude": (
            "longitude",
            elevation["longitude"].values,
            {"units": "degrees_east", "standard_name": "longitude"},
        ),
    }


def _check_grid(elevation: xr.DataArray) -> None:
    if elevation.dims != ("latitude", "longitude"):
        raise ValueError(f"elevation must have dims (latitude, longitude), got {elevation.dims}")
    for dim in elevation.dims:
        values = elevation[dim].values
        if len(values) < 2 or not np.all(np.diff(values) > 0):
            raise ValueError(f"elevation {dim} must be ascending with at least 2 values")


def _attrs(elevation: xr.DataArray, cfg: SyntheticConfig, seed: int, start: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "title": "AMES embedded default: real terrain, physically based synthetic precipitation",
        "source": "synthetic precipitation from ames.data.synthetic on a real DEM",
        "generator": "ames.data.synthetic.generate_synthetic",
        "generator_model": (
            "lognormal P = C exp(Z - s^2/2); C = seasonal background + Smith & Barstad (2004) "
            "orographic rate (orographic-precipitation package) for monthly easterly trades; "
            "Z = ENSO-like AR(1) index x loading + AR(1) correlated anomaly + white noise"
        ),
        "generator_seed": int(seed),
        "generator_start": str(start),
        "generator_params": json.dumps(cfg.as_dict(), sort_keys=True),
        "Conventions": "CF-1.8",
    }
    for key, value in elevation.attrs.items():
        if key not in ("units", "long_name"):
            attrs[f"dem_{key}"] = value
    return attrs


def generate_synthetic(
    elevation: xr.DataArray,
    cfg: dict,
    seed: int,
    n_months: int,
    start: str,
    test_months: int,
    val_months: int,
    horizon: int,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Generate ``(dataset, oracle)`` on the grid of ``elevation`` (metres, ascending coords).

    dataset: ``precip(time, latitude, longitude)`` float32 mm/month and ``elevation``;
    oracle: ``precip(origin, lead, latitude, longitude)`` float32, the conditional-mean
    forecast for every origin whose ``horizon`` targets lie in validation ∪ test months.
    """
    _check_grid(elevation)
    config = SyntheticConfig.from_dict(cfg)
    lat = elevation["latitude"].values.astype(np.float64)
    lon = elevation["longitude"].values.astype(np.float64)
    z = elevation.values.astype(np.float64)
    time = pd.date_range(start=start, periods=n_months, freq="MS")
    months = (time.month.values - 1).astype(np.int64)
    origins = oracle_origins(n_months, test_months, val_months, horizon)

    clim = climatological_mean(z, lat, lon, config)
    state = sample_latent(seed, n_months, lat, lon, config)
    precip = precipitation(clim, months, state, config)
    oracle = oracle_forecast(clim, months, state, config, origins, horizon)

    coords = _grid_coords(elevation)
    precip_attrs = {"units": "mm/month", "long_name": "monthly precipitation total"}
    dataset = xr.Dataset(
        {
            "precip": (("time", "latitude", "longitude"), precip.astype(np.float32), precip_attrs),
            "elevation": (
                ("latitude", "longitude"),
                z.astype(np.float32),
                {**elevation.attrs, "units": "m", "long_name": "elevation above sea level"},
            ),
        },
        coords={"time": ("time", time.values), **coords},
        attrs=_attrs(elevation, config, seed, start),
    )
    oracle_ds = xr.Dataset(
        {
            "precip": (
                ("origin", "lead", "latitude", "longitude"),
                oracle.astype(np.float32),
                {**precip_attrs, "long_name": "conditional-mean forecast given the latent state"},
            )
        },
        coords={
            "origin": ("origin", time.values[origins], {"long_name": "last observed month"}),
            "lead": (
                "lead",
                np.arange(1, horizon + 1, dtype=np.int64),
                {"units": "months", "long_name": "target month = origin + lead"},
            ),
            **coords,
        },
        attrs={
            "title": "AMES oracle: E[P(origin + lead) | generator latent state at origin]",
            "source": dataset.attrs["source"],
            "generator_seed": int(seed),
            "generator_params": dataset.attrs["generator_params"],
        },
    )
    return dataset, oracle_ds
