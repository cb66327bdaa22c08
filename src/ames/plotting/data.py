"""Plots of the input dataset: mean annual precipitation map and seasonal cycle by zone."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from ames.io import atomic_write  # noqa: E402

MONTH_LABELS = ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"]
DPI = 120
FILE_MODE = 0o644  # atomic_write's temporary file is private (0600)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
        os.chmod(tmp, FILE_MODE)

    try:
        return atomic_write(path, write)
    finally:
        plt.close(fig)


def mean_annual_precip(ds: xr.Dataset) -> xr.DataArray:
    """Mean annual total (mm/year): mean monthly climatology summed over the 12 months."""
    monthly = ds["precip"].groupby("time.month").mean("time")
    if monthly.sizes["month"] != 12:
        raise ValueError("mean annual precipitation needs every calendar month in the record")
    return monthly.sum("month", skipna=False)


def plot_mean_annual_precip(ds: xr.Dataset, path: str | Path) -> Path:
    """Map of mean annual precipitation (mm/year) with elevation contours."""
    annual = mean_annual_precip(ds)
    lat, lon = ds["latitude"].values, ds["longitude"].values
    fig, ax = plt.subplots(figsize=(6.5, 6), layout="constrained")
    mesh = ax.pcolormesh(lon, lat, annual.values, shading="nearest", cmap="YlGnBu")
    fig.colorbar(mesh, ax=ax, label="mean annual precipitation (mm/year)")
    elevation = ds["elevation"].values
    levels = np.arange(1000, np.nanmax(elevation) + 1, 1000)
    if len(levels):
        contours = ax.contour(lon, lat, elevation, levels=levels, colors="0.2", linewidths=0.7)
        ax.clabel(contours, fmt="%d m", fontsize=7)
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_title("Mean annual precipitation\n(contours: elevation every 1000 m)")
    ax.set_aspect("equal")
    return _save(fig, path)


def zone_masks(elevation: np.ndarray, high_min_m: float, low_max_m: float) -> dict[str, np.ndarray]:
    """Disjoint zone masks: high > high_min_m, low < low_max_m, medium in between."""
    finite = np.isfinite(elevation)
    high = finite & (elevation > high_min_m)
    low = finite & (elevation < low_max_m)
    return {
        f"high (> {high_min_m:g} m)": high,
        f"medium ({low_max_m:g}–{high_min_m:g} m)": finite & ~high & ~low,
        f"low (< {low_max_m:g} m)": low,
    }


def plot_seasonal_cycle_by_zone(
    ds: xr.Dataset, path: str | Path, high_min_m: float = 3000, low_max_m: float = 2000
) -> Path:
    """Mean seasonal cycle (mm/month) of each elevation zone, with its interannual spread."""
    precip = ds["precip"]
    month_index = ds["time"].dt.month.values - 1
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    x = np.arange(12)
    for name, mask in zone_masks(ds["elevation"].values, high_min_m, low_max_m).items():
        if not mask.any():
            continue
        series = np.nanmean(precip.values[:, mask], axis=1)  # zone mean per month [T]
        mean = np.array([series[month_index == m].mean() for m in range(12)])
        q25 = np.array([np.percentile(series[month_index == m], 25) for m in range(12)])
        q75 = np.array([np.percentile(series[month_index == m], 75) for m in range(12)])
        (line,) = ax.plot(x, mean, marker="o", label=f"{name}, {int(mask.sum())} cells")
        ax.fill_between(x, q25, q75, color=line.get_color(), alpha=0.15)
    ax.set_xticks(x, MONTH_LABELS)
    ax.set_xlabel("calendar month")
    ax.set_ylabel("precipitation (mm/month)")
    ax.set_title("Mean seasonal cycle by elevation zone (band: interannual 25–75 %)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
