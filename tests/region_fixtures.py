"""Small CHIRPS-style regions other than Boyacá, for end-to-end runs with ``data.source: files``.

Each region writes a monthly precipitation NetCDF and a DEM under ``raw_dir`` and returns
the ``data`` params that select them. Grids are tiny (about 12 × 14 cells of 0.05°, 120
months) so the whole pipeline runs in well under a minute per region.

* ``plateau``: an Altiplano-like high plateau, most cells above 3000 m and none below
  2000 m; DEM 5× finer than the grid (area-averaged).
* ``coastal``: a Caribbean-like coastal lowland, ocean cells NaN in every month, nothing
  above 2000 m; precipitation in mm/day; DEM coarser than the grid (bilinear).
* ``andes_360``: latitude stored north to south, longitudes 0…360, a 10 × 16 grid with a
  ridge from 300 to 4500 m; DEM 4× finer, also descending and 0…360.
* ``flat``: a lowland at one elevation; three elevation zones cannot exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

STEP = 0.05
N_MONTHS = 120
START = "1991-01-01"


@dataclass(frozen=True)
class Region:
    name: str
    lat: np.ndarray  # cell centres, ascending
    lon: np.ndarray  # cell centres, −180…180, ascending
    elevation: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (lat2d, lon2d) -> m
    dem_step: float
    ocean: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    descending_lat: bool = False
    lon_0_360: bool = False
    precip_units: str = "mm/month"

    def bbox(self) -> dict[str, float]:
        return {
            "lat_min": float(self.lat[0]),
            "lat_max": float(self.lat[-1]),
            "lon_min": float(self.lon[0]),
            "lon_max": float(self.lon[-1]),
        }


def _axis(start: float, n: int, step: float = STEP) -> np.ndarray:
    return np.round(start + step * np.arange(n), 6)


def _plateau(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """3800 m plateau with rolling hills and a valley falling to ~2300 m in the south-east."""
    hills = 250.0 * np.sin(lat * 40.0) * np.cos(lon * 35.0)
    valley = 1500.0 * np.exp(-(((lat + 16.95) / 0.2) ** 2 + ((lon + 68.4) / 0.25) ** 2))
    return 3800.0 + hills - valley


def _coastal(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Sea level at the coast rising inland to about 1400 m."""
    return np.clip(2000.0 * (lon + 75.35) + 80.0 * np.sin(lat * 30.0), 0.0, None)


def _is_ocean(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return lon < -75.35 + 0.02 * np.sin(lat * 20.0)


def _ridge(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A north–south ridge (4500 m) between a 300 m lowland and a 2500 m basin."""
    x = (lon - (-78.85)) / 0.12
    return np.where(x < 0, 300.0 + 4200.0 * np.exp(-(x**2)), 2500.0 + 2000.0 * np.exp(-(x**2)))


def _flat(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return np.full(np.broadcast(lat, lon).shape, 150.0)


REGIONS: dict[str, Region] = {
    "plateau": Region("plateau", _axis(-17.25, 12), _axis(-68.95, 14), _plateau, STEP / 5),
    "coastal": Region(
        "coastal",
        _axis(9.0, 12),
        _axis(-75.5, 14),
        _coastal,
        0.1,
        ocean=_is_ocean,
        precip_units="mm/day",
    ),
    "andes_360": Region(
        "andes_360",
        _axis(-1.0, 10),
        _axis(-79.2, 16),
        _ridge,
        STEP / 4,
        descending_lat=True,
        lon_0_360=True,
    ),
    "flat": Region("flat", _axis(45.0, 12), _axis(20.0, 14), _flat, STEP),
}


def _precip(region: Region, seed: int) -> np.ndarray:
    """``[T, lat, lon]`` mm/month: seasonal cycle × elevation × persistent anomalies."""
    rng = np.random.default_rng(seed)
    lat2d, lon2d = np.meshgrid(region.lat, region.lon, indexing="ij")
    z = region.elevation(lat2d, lon2d)
    month = np.arange(N_MONTHS) % 12
    season = 1.0 + 0.6 * np.sin(2 * np.pi * month / 12.0)[:, None, None]
    base = 40.0 + 0.05 * z + 30.0 * np.cos(lon2d * 10.0)
    anomaly = np.zeros((N_MONTHS, *z.shape))
    for t in range(1, N_MONTHS):
        anomaly[t] = 0.5 * anomaly[t - 1] + rng.normal(0.0, 0.25, z.shape) + rng.normal(0, 0.2)
    precip = base[None] * season * np.exp(anomaly - 0.1)
    if region.ocean is not None:
        precip[:, region.ocean(lat2d, lon2d)] = np.nan
    return precip


def _write_precip(region: Region, path: Path, seed: int) -> None:
    values = _precip(region, seed)
    time = pd.date_range(START, periods=N_MONTHS, freq="MS")
    if region.precip_units == "mm/day":
        values = values / time.days_in_month.to_numpy()[:, None, None]
    lat, lon = region.lat, region.lon
    if region.descending_lat:
        lat, values = lat[::-1], values[:, ::-1]
    if region.lon_0_360:
        lon = np.round(lon % 360.0, 6)
    da = xr.DataArray(
        values.astype(np.float32),
        dims=("time", "latitude", "longitude"),
        coords={"time": time, "latitude": lat, "longitude": lon},
        attrs={"units": region.precip_units, "long_name": "Climate Hazards group InfraRed"},
    )
    da.to_dataset(name="precip").to_netcdf(path)


def _write_dem(region: Region, path: Path) -> None:
    """A DEM covering the grid with a margin, pixels ``dem_step`` apart."""
    step = region.dem_step
    margin = STEP + 2 * step
    lat = np.round(np.arange(region.lat[0] - margin, region.lat[-1] + margin + 1e-9, step), 6)
    lon = np.round(np.arange(region.lon[0] - margin, region.lon[-1] + margin + 1e-9, step), 6)
    lat2d, lon2d = np.meshgrid(lat, lon, indexing="ij")
    z = region.elevation(lat2d, lon2d)
    if region.ocean is not None:
        z = np.where(region.ocean(lat2d, lon2d), 0.0, z)
    if region.descending_lat:
        lat, z = lat[::-1], z[::-1]
    if region.lon_0_360:
        lon = np.round(lon % 360.0, 6)
    da = xr.DataArray(
        z.astype(np.float32), dims=("lat", "lon"), coords={"lat": lat, "lon": lon}
    ).assign_attrs(units="m")
    da.to_dataset(name="elevation").to_netcdf(path)


def write_region(name: str, raw_dir: Path, seed: int = 0) -> dict[str, Any]:
    """Write ``name``'s files under ``raw_dir``; return the ``data`` params that use them."""
    region = REGIONS[name]
    raw_dir.mkdir(parents=True, exist_ok=True)
    precip_path, dem_path = raw_dir / f"{name}_precip.nc", raw_dir / f"{name}_dem.nc"
    _write_precip(region, precip_path, seed)
    _write_dem(region, dem_path)
    return {
        "source": "files",
        "bbox": region.bbox(),
        "files": {
            "precip_path": f"data/raw/{precip_path.name}",
            "dem_path": f"data/raw/{dem_path.name}",
        },
    }
