"""DVC stage `prepare`: build `data/processed/dataset.nc` (and the oracle for synthetic data)."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import _src_path  # noqa: F401  (this checkout's src before ames)
import numpy as np
import xarray as xr

from ames.cli import stage_main
from ames.config import AmesConfig, ZoneConfig
from ames.data.files import load_user_data
from ames.data.netcdf import write_netcdf
from ames.data.schema import validate_dataset
from ames.data.synthetic import generate_synthetic
from ames.evaluation.data_calibration import calibration_report
from ames.io import write_json
from ames.paths import DATASET, METRICS, ORACLE, PLOTS
from ames.plotting.data import plot_mean_annual_precip, plot_seasonal_cycle_by_zone
from ames.zones import ZoneThresholds, resolve_thresholds

log = logging.getLogger("ames.prepare")

# Bands measured on real CHIRPS 2.0 over the Boyacá box (SPEC §2.2).
CALIBRATION_BANDS = {
    "mean_mm": (170.0, 205.0),
    "clim_pooled_r2": (0.70, 0.78),
    "seasonal_naive_pooled_r2": (0.45, 0.60),
    "clim_percell_r2": (0.55, 0.70),
}


def crop_dem(dem_file: str | Path, bbox: Mapping[str, float], resolution: float) -> xr.DataArray:
    """The committed DEM cropped to the box (cells whose centres lie inside it)."""
    tol = 0.49 * resolution  # strictly less than half a cell: no ties at the edges
    with xr.open_dataset(dem_file) as ds:
        dem = ds["elevation"].load()
    return dem.sel(
        latitude=slice(bbox["lat_min"] - tol, bbox["lat_max"] + tol),
        longitude=slice(bbox["lon_min"] - tol, bbox["lon_max"] + tol),
    )


def empty_oracle(reason: str) -> xr.Dataset:
    """Stand-in for `oracle.nc` when the data are observations: no oracle exists."""
    return xr.Dataset(attrs={"oracle_available": 0, "reason": reason})


def grid_summary(ds: xr.Dataset) -> dict[str, int]:
    precip = ds["precip"].values
    return {
        "n_time": int(ds.sizes["time"]),
        "n_lat": int(ds.sizes["latitude"]),
        "n_lon": int(ds.sizes["longitude"]),
        "n_valid_cells": int((~np.all(np.isnan(precip), axis=0)).sum()),
    }


def band_check(calibration: dict[str, float]) -> dict[str, bool]:
    return {k: bool(lo <= calibration[k] <= hi) for k, (lo, hi) in CALIBRATION_BANDS.items()}


def plot_zone_thresholds(ds: xr.Dataset, zones: ZoneConfig) -> ZoneThresholds:
    """The thresholds ``zones.mode`` gives on this dataset (the masks stage checks the zones)."""
    valid = ~np.all(np.isnan(ds["precip"].values), axis=0)
    return resolve_thresholds(ds["elevation"].values, valid, zones)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=str(DATASET))
    parser.add_argument("--oracle", default=str(ORACLE))
    parser.add_argument("--metrics", default=str(METRICS / "data.json"))
    parser.add_argument("--plots", default=str(PLOTS / "data"))


def run(args: argparse.Namespace, cfg: AmesConfig) -> None:
    start = time.perf_counter()
    data_cfg, split_cfg = cfg.data, cfg.split
    horizon = split_cfg.horizon
    source = data_cfg.source
    if source == "synthetic":
        dem = crop_dem(data_cfg.dem_file, data_cfg.bbox, data_cfg.resolution)
        log.info("generating synthetic precipitation on a %s grid", dict(dem.sizes))
        synthetic = dict(data_cfg.synthetic)
        data_seed = synthetic.pop("seed")  # the data seed; `seed` is the model's
        ds, oracle = generate_synthetic(
            dem,
            synthetic,
            seed=data_seed,
            n_months=data_cfg.n_months,
            start=data_cfg.start,
            test_months=split_cfg.test_months,
            val_months=split_cfg.val_months,
            horizon=horizon,
        )
    else:
        window = cfg.features.input_window
        # Enough for every split to hold a forecast origin (SPEC §2.3 and §3).
        min_months = max(
            window + horizon * 3,
            window + horizon + split_cfg.test_months + split_cfg.val_months,
        )
        ds = load_user_data(
            data_cfg.files,
            data_cfg.bbox,
            min_months=min_months,
            holdout_months=split_cfg.test_months + split_cfg.val_months,
        )
        oracle = empty_oracle("observed data: the optimal forecast is unknown")
    validate_dataset(ds, args.out)
    write_netcdf(ds, args.out)
    write_netcdf(oracle, args.oracle)

    months = ds["time"].dt.month.values - 1
    calibration = calibration_report(ds["precip"].values, months, split_cfg.test_months)
    metrics = {"source": source, "calibration": calibration, "grid": grid_summary(ds)}
    if source == "synthetic":
        metrics["calibration_in_band"] = band_check(calibration)
    plots = Path(args.plots)
    plot_mean_annual_precip(ds, plots / "mean_annual_precip.png")
    thresholds = plot_zone_thresholds(ds, cfg.zones)
    plot_seasonal_cycle_by_zone(
        ds,
        plots / "seasonal_cycle_by_zone.png",
        high_min_m=thresholds.high_min_m,
        low_max_m=thresholds.low_max_m,
    )
    metrics["time_s"] = round(time.perf_counter() - start, 2)
    write_json(args.metrics, metrics)
    log.info("calibration %s", calibration)


# a bad file or setting: one line naming it, the problem, the fix
main = stage_main("prepare", __doc__, add_arguments, run)

if __name__ == "__main__":
    main()
