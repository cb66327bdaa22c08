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

The parts live in their own modules: the parameters in ``ames.data.synthetic_config``,
``C`` in ``ames.data.synthetic_fields``, the latent state ``(E, X, ε)`` in
``ames.data.synthetic_latent``; this module combines them into the dataset and its oracle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ames.climatology import split_month_bounds
from ames.data.schema import PREVAILING_WIND_ATTR
from ames.data.synthetic_config import SyntheticConfig
from ames.data.synthetic_fields import climatological_mean
from ames.data.synthetic_latent import LatentState, sample_latent
from ames.data.synthetic_zoned import (
    ZonedConfig,
    clim_table,
    sample_zoned_state,
    zoned_oracle,
    zoned_precipitation,
)

DEFAULT_SCENARIO = "default"
SCENARIOS = (DEFAULT_SCENARIO, "zoned")
ZONED_MODEL = (
    "zoned scenario (ames.data.synthetic_zoned): P = C(m, E) exp(-a s_m f(E) + b X + sigma eps "
    "- (b^2 + sigma^2)/2); C: Smith & Barstad orography for the month's wind shifted by ENSO; "
    "s_m seasonal, f asymmetric; X persistence and sigma by elevation"
)

# --------------------------------------------------------------------------- precipitation


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


def prevailing_wind_from_deg(directions: Sequence[float], speeds: Sequence[float]) -> float:
    """Speed-weighted circular mean of the monthly directions the wind blows from, 0…360."""
    angle = np.deg2rad(np.asarray(directions, dtype=np.float64))
    weight = np.asarray(speeds, dtype=np.float64)
    mean = np.arctan2((weight * np.sin(angle)).sum(), (weight * np.cos(angle)).sum())
    return round(float(np.rad2deg(mean) % 360.0), 2)


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
        PREVAILING_WIND_ATTR: prevailing_wind_from_deg(cfg.wind_from_deg, cfg.wind_speed_ms),
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
    cfg = dict(cfg)
    scenario = cfg.pop("scenario", DEFAULT_SCENARIO)
    zoned_cfg = cfg.pop("zoned", None)
    config = SyntheticConfig.from_dict(cfg)
    lat = elevation["latitude"].values.astype(np.float64)
    lon = elevation["longitude"].values.astype(np.float64)
    z = elevation.values.astype(np.float64)
    time = pd.date_range(start=start, periods=n_months, freq="MS")
    months = (time.month.values - 1).astype(np.int64)
    origins = oracle_origins(n_months, test_months, val_months, horizon)

    attrs = _attrs(elevation, config, seed, start)
    if scenario == DEFAULT_SCENARIO:
        clim = climatological_mean(z, lat, lon, config)
        state = sample_latent(seed, n_months, lat, lon, config)
        precip = precipitation(clim, months, state, config)
        oracle = oracle_forecast(clim, months, state, config, origins, horizon)
    elif scenario == "zoned":
        zoned = ZonedConfig.from_dict(zoned_cfg or {})
        table = clim_table(z, lat, lon, config, zoned)
        table[:, :, np.isnan(z)] = np.nan
        zstate = sample_zoned_state(seed, n_months, lat, lon, z, config, zoned)
        precip = zoned_precipitation(table, months, zstate, config, zoned)
        oracle = zoned_oracle(table, months, zstate, config, zoned, origins, horizon)
        attrs.update(
            scenario="zoned",
            scenario_params=json.dumps(zoned.as_dict(), sort_keys=True),
            generator_model=ZONED_MODEL,
        )
    else:
        raise ValueError(
            f"data.synthetic.scenario is {scenario!r}; use one of: {', '.join(SCENARIOS)}"
        )

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
        attrs=attrs,
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
