"""Reading the processed dataset (SPEC §2.1) into plain arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ames.data.schema import valid_cells


@dataclass(frozen=True)
class GridData:
    precip: np.ndarray  # [T, lat, lon] mm/month, NaN outside the domain
    elevation: np.ndarray  # [lat, lon] m
    lat: np.ndarray
    lon: np.ndarray
    times: pd.DatetimeIndex
    valid: np.ndarray  # [lat, lon] bool
    attrs: dict = field(default_factory=dict)  # the file's global attributes

    @property
    def months(self) -> np.ndarray:
        return (self.times.month.to_numpy() - 1).astype(np.int64)


def load_grid_data(path: str | Path) -> GridData:
    """Load ``dataset.nc``; raises with the file name if it is missing or malformed."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: dataset not found. Run `dvc repro prepare` first.")
    with xr.open_dataset(path) as ds:
        missing = {"precip", "elevation"} - set(ds.data_vars)
        if missing:
            raise ValueError(
                f"{path}: missing variables {sorted(missing)}; "
                "regenerate it with `dvc repro prepare`."
            )
        precip = ds["precip"].transpose("time", "latitude", "longitude").values.astype(np.float32)
        elevation = ds["elevation"].transpose("latitude", "longitude").values.astype(np.float32)
        lat = ds["latitude"].values.astype(np.float64)
        lon = ds["longitude"].values.astype(np.float64)
        times = pd.DatetimeIndex(ds["time"].values)
        attrs = dict(ds.attrs)
    valid = valid_cells(precip)
    return GridData(precip, elevation, lat, lon, times, valid, attrs)
