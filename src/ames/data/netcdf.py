"""Deterministic, atomic NetCDF writing.

The same dataset must give a byte-identical file on every run so that DVC sees no change
when nothing changed. netCDF-C switches off HDF5 object time stamps, xarray adds no
``history`` attribute, and zlib output depends only on its input, so NETCDF4 files are
byte-stable for identical content (``tests/test_synthetic.py`` checks this).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ames.io import atomic_write

TIME_UNITS = "days since 1970-01-01"
CALENDAR = "proleptic_gregorian"
COMPLEVEL = 4
FILE_MODE = 0o644  # atomic_write's temporary file is private (0600); data files are not


def _variable_encoding(var: xr.Variable, is_coord: bool) -> dict[str, Any]:
    if np.issubdtype(var.dtype, np.datetime64):
        return {"units": TIME_UNITS, "calendar": CALENDAR, "dtype": "int32", "_FillValue": None}
    if np.issubdtype(var.dtype, np.floating):
        if is_coord:
            return {"dtype": "float64", "_FillValue": None}
        return {
            "dtype": "float32",
            "_FillValue": np.float32(np.nan),
            "zlib": True,
            "complevel": COMPLEVEL,
            "shuffle": True,
        }
    if np.issubdtype(var.dtype, np.integer):
        return {"dtype": "int32", "_FillValue": None} if is_coord else {"dtype": "int32"}
    return {}


def netcdf_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Per-variable encoding: float32 zlib data, float64 coordinates, CF day-based times."""
    encoding = {name: _variable_encoding(var, True) for name, var in ds.coords.items()}
    encoding.update({name: _variable_encoding(var, False) for name, var in ds.data_vars.items()})
    return encoding


def write_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` to ``path`` atomically as NETCDF4 with a deterministic encoding."""
    clean = ds.copy()
    for var in clean.variables.values():
        var.encoding = {}  # encodings inherited from a file read earlier must not leak in
    encoding = netcdf_encoding(clean)

    def write(tmp: Path) -> None:
        clean.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=encoding)
        os.chmod(tmp, FILE_MODE)

    return atomic_write(path, write)
