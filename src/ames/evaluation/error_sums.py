"""Per-origin error sums: what the bootstrap and the significance tests resample.

Every score the reports attach an interval to (MSESS, RMSE, pooled R²) is a function of
sums over (origin, lead, cell). ``error_sums`` reduces each forecast once to
``sse[forecast, origin, lead, zone]`` (plus the observation sums that pooled R² needs);
any selection of leads and zones, resampled by origin counts, then gives the score exactly
as ``ames.evaluation.metrics.score_forecasts`` computes it on the full sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ames.data.netcdf import netcdf_encoding
from ames.io import atomic_write

REFERENCE = "climatology"  # the MSESS reference forecast


def _zone_sums(values: np.ndarray, zones: Mapping[str, np.ndarray]) -> np.ndarray:
    """``[S, H, lat, lon]`` → ``[S, H, zone]`` float64 sums over each zone's cells."""
    return np.stack(
        [values[:, :, mask].astype(np.float64).sum(axis=-1) for mask in zones.values()], axis=-1
    )


def _check_finite(name: str, values: np.ndarray, zones: Mapping[str, np.ndarray]) -> None:
    for zone, mask in zones.items():
        if not np.isfinite(values[:, :, mask]).all():
            raise ValueError(
                f"{name}: non-finite values on valid cells of zone {zone!r}; a NaN forecast or "
                "observation inside the domain is an error upstream"
            )


def error_sums(
    forecasts: Mapping[str, np.ndarray],
    roles: Mapping[str, str],
    obs: np.ndarray,
    zones: Mapping[str, np.ndarray],
    origins: Sequence,
) -> xr.Dataset:
    """Squared-error and observation sums per (origin, lead, zone), float64.

    forecasts: name → ``[S, H, lat, lon]`` mm/month (MSESS needs ``climatology`` among them,
    or merged in later with ``merge_error_sums``).
    roles: name → role (``model``, ``member``, ``expert``, ``baseline``, ``oracle``,
    ``ablation``), kept as a coordinate so reports pick their comparisons by role.
    """
    _check_finite("obs", obs, zones)
    sse = []
    for name, pred in forecasts.items():
        if pred.shape != obs.shape:
            raise ValueError(f"{name}: shape {pred.shape} differs from obs {obs.shape}")
        _check_finite(name, pred, zones)
        sse.append(_zone_sums((pred.astype(np.float64) - obs) ** 2, zones))
    names = list(forecasts)
    dims = ("origin", "lead", "zone")
    return xr.Dataset(
        {
            "sse": (("forecast", *dims), np.stack(sse), {"units": "(mm/month)^2"}),
            "obs_sum": (dims, _zone_sums(obs, zones), {"units": "mm/month"}),
            "obs_sq_sum": (dims, _zone_sums(obs.astype(np.float64) ** 2, zones)),
            "n_cells": ("zone", np.array([int(m.sum()) for m in zones.values()], dtype=np.int64)),
        },
        coords={
            "forecast": names,
            "role": ("forecast", [roles[name] for name in names]),
            "origin": np.asarray(origins),
            "lead": np.arange(1, obs.shape[1] + 1, dtype=np.int32),
            "zone": list(zones),
        },
        attrs={
            "description": "per-origin sums over each zone's valid cells, for the bootstrap",
            "reference": REFERENCE,
        },
    )


def write_error_sums(ds: xr.Dataset, path: str | Path) -> Path:
    """Write atomically, keeping the sums in float64 (``write_netcdf`` stores float32)."""
    encoding = netcdf_encoding(ds)
    for name, var in ds.data_vars.items():
        if np.issubdtype(var.dtype, np.floating):
            encoding[name].update(dtype="float64", _FillValue=None)

    def write(tmp: Path) -> None:
        ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=encoding)

    return atomic_write(path, write)


def read_error_sums(path: str | Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


def merge_error_sums(main: xr.Dataset, extra: xr.Dataset) -> xr.Dataset:
    """Add ``extra``'s forecasts to ``main``; both must hold the same origins and observations."""
    for coord in ("origin", "lead", "zone"):
        if not np.array_equal(main[coord].values, extra[coord].values):
            raise ValueError(f"error sums differ in {coord}: they come from different test sets")
    for var in ("obs_sum", "n_cells"):
        if not np.allclose(main[var].values, extra[var].values, rtol=1e-9, atol=0.0):
            raise ValueError(f"error sums differ in {var}: they come from different observations")
    clash = set(main["forecast"].values) & set(extra["forecast"].values)
    if clash:
        raise ValueError(f"error sums both hold forecasts {sorted(clash)}")
    sse = xr.concat([main["sse"], extra["sse"]], dim="forecast")
    return main.drop_vars(["sse", "forecast", "role"]).assign(sse=sse)


@dataclass(frozen=True)
class Totals:
    """Per-origin sums over one selection of leads and zones, each ``[S]``."""

    sse: dict[str, np.ndarray]
    obs_sum: np.ndarray
    obs_sq_sum: np.ndarray
    n: np.ndarray  # samples (lead × cell) per origin

    @property
    def n_origins(self) -> int:
        return len(self.n)


def select_totals(
    ds: xr.Dataset, leads: Sequence[int] | None = None, zones: Sequence[str] | None = None
) -> Totals:
    """Sum ``ds`` over the given leads (1-based) and zones (default: all)."""
    sel = {}
    if leads is not None:
        sel["lead"] = list(leads)
    if zones is not None:
        sel["zone"] = list(zones)
    part = ds.sel(sel)
    n_per_origin = part.sizes["lead"] * int(part["n_cells"].sum())
    sse = part["sse"].sum(("lead", "zone")).transpose("forecast", "origin").values
    return Totals(
        sse={str(name): sse[i] for i, name in enumerate(part["forecast"].values)},
        obs_sum=part["obs_sum"].sum(("lead", "zone")).values,
        obs_sq_sum=part["obs_sq_sum"].sum(("lead", "zone")).values,
        n=np.full(part.sizes["origin"], float(n_per_origin)),
    )


def _weighted(x: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Sum over origins; with ``weights`` ``[B, S]`` (origin counts) one sum per resample."""
    return np.asarray(x.sum()) if weights is None else weights @ x


def scores(
    totals: Totals, name: str, weights: np.ndarray | None = None, reference: str = REFERENCE
) -> dict[str, np.ndarray]:
    """MSESS, RMSE (mm/month) and pooled R² of forecast ``name`` (per resample if weighted)."""
    for needed in (name, reference):
        if needed not in totals.sse:
            raise KeyError(f"no error sums for forecast {needed!r} (have {sorted(totals.sse)})")
    sse = _weighted(totals.sse[name], weights)
    n = _weighted(totals.n, weights)
    obs_sum = _weighted(totals.obs_sum, weights)
    sst = _weighted(totals.obs_sq_sum, weights) - obs_sum**2 / n
    return {
        "msess": 1.0 - sse / _weighted(totals.sse[reference], weights),
        "rmse": np.sqrt(sse / n),
        "pooled_r2": 1.0 - sse / sst,
    }
