"""User data mode of ``prepare``: a CHIRPS-style monthly NetCDF plus a DEM (SPEC §2.3).

:func:`load_user_data` reads the user's precipitation file and DEM, normalises them to the
dataset schema of SPEC §2.1 (see :mod:`ames.data.schema`) and fails with a
:class:`~ames.data.errors.DataError` naming the file, the problem and the fix for input it
cannot use. Steps, in order:

1. precipitation: pick the variable and its time/latitude/longitude dimensions (names
   configurable, auto-detected otherwise); decode the time stamps and map each to its
   month (month-start, mid-month and end-of-month stamps all work); require a gap-free,
   duplicate-free monthly axis of at least ``min_months`` months; wrap longitudes to
   −180…180; crop to the bounding box (a cell is kept when its centre lies inside the box
   widened by just under half a cell, so a box given by cell centres or by cell edges
   selects the expected cells); read only the cropped block, ascending in both axes.
2. units: monthly totals pass unchanged; daily rates are multiplied by the days in each
   month and mass fluxes (kg m-2 s-1) by its seconds; missing units are assumed to be
   mm/month with a warning; anything else is an error.
3. values: infinite or negative values are errors; cells NaN at every time are outside the
   domain and stay NaN; a NaN inside a valid cell is an error unless
   ``fill_missing: climatology`` is set.
4. DEM (NetCDF, or GeoTIFF through the optional ``rioxarray``): must cover the cropped
   grid; cropped (either latitude order, longitudes −180…180 or 0…360), then regridded to
   the precipitation cells: a DEM finer than the grid is area-averaged (the NaN-aware mean
   of the DEM pixels whose centres fall inside each cell), a DEM as coarse or coarser is
   interpolated bilinearly to the cell centres (nearest neighbour where a bilinear
   neighbour is NaN). The method is recorded in the ``dem_regrid_method`` attribute. The
   DEM must have a value at every valid cell.

The steps live in :mod:`ames.data.files_config` (the ``data.files`` section and the box),
:mod:`ames.data.precip_file` (1–3), :mod:`ames.data.dem_file` (4) and
:mod:`ames.data.file_axes` (NetCDF variables and axes); this module assembles the dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ames import __version__
from ames.data.dem_file import REGRID_METHODS, Dem, read_dem
from ames.data.files_config import BBox, FilesConfig, parse_bbox, parse_files_config
from ames.data.precip_file import (
    Precip,
    check_finite,
    handle_interior_nans,
    handle_negative_values,
    month_name,
    month_starts,
    read_precip,
    require_valid_cells,
    to_mm_per_month,
)
from ames.data.schema import GRID_DIMS, PRECIP_DIMS, PRECIP_UNITS, validate_dataset
from ames.io import sha256_file

logger = logging.getLogger(__name__)


def load_user_data(
    files_cfg: Mapping[str, Any],
    bbox: Mapping[str, Any],
    min_months: int,
    root: Path = Path("."),
    holdout_months: int = 0,
) -> xr.Dataset:
    """Read the user's precipitation NetCDF and DEM into a SPEC §2.1 dataset.

    ``holdout_months`` (validation + test months, at the end of the record) are never used
    to estimate anything: ``fill_missing: climatology`` averages the other months only.

    ``files_cfg`` is the ``data.files`` section (keys in
    :data:`~ames.data.files_config.FILES_DEFAULTS`), ``bbox``
    has ``lat_min``, ``lat_max``, ``lon_min``, ``lon_max`` in degrees, ``min_months`` is
    input window + horizon × number of splits (computed by the caller) and relative paths
    are resolved from ``root``. Returns ``precip(time, latitude, longitude)`` float32
    mm/month and ``elevation(latitude, longitude)`` float32 m with provenance attributes.
    Raises :class:`~ames.data.errors.DataError` for every input it cannot use.
    """
    root = Path(root)
    cfg = parse_files_config(files_cfg, root)
    box = parse_bbox(bbox)
    precip = read_precip(cfg, box, min_months)
    values = to_mm_per_month(precip.values, precip.units, precip.months, cfg.precip_path)
    check_finite(values, precip, cfg.precip_path)
    values, n_clipped = handle_negative_values(values, precip, cfg.precip_path, cfg.negative_values)
    valid = require_valid_cells(values, cfg.precip_path, box)
    fit = np.arange(values.shape[0]) < values.shape[0] - holdout_months
    values, n_filled = handle_interior_nans(values, valid, precip, cfg, fit)
    dem = read_dem(cfg, precip.lat, precip.lon, valid, box)
    ds = _assemble(values, dem, precip, cfg, box, n_filled, n_clipped, files_cfg)
    validate_dataset(ds, str(cfg.precip_path))
    logger.info(
        "user data: %d months %s…%s on a %d×%d grid, %d valid cells",
        values.shape[0],
        month_name(precip.months[0]),
        month_name(precip.months[-1]),
        values.shape[1],
        values.shape[2],
        int(valid.sum()),
    )
    return ds


def _assemble(
    values: np.ndarray,
    dem: Dem,
    precip: Precip,
    cfg: FilesConfig,
    box: BBox,
    n_filled: int,
    n_clipped: int,
    files_cfg: Mapping[str, Any],
) -> xr.Dataset:
    coords = {
        "time": ("time", month_starts(precip.months).astype("datetime64[ns]"), {}),
        "latitude": (
            "latitude",
            precip.lat.astype(np.float64),
            {"units": "degrees_north", "standard_name": "latitude"},
        ),
        "longitude": (
            "longitude",
            precip.lon.astype(np.float64),
            {"units": "degrees_east", "standard_name": "longitude"},
        ),
    }
    precip_attrs = {
        "units": PRECIP_UNITS,
        "long_name": "monthly precipitation total",
        "standard_name": "lwe_thickness_of_precipitation_amount",
        "source_units": precip.units if precip.units is not None else "missing (assumed mm/month)",
    }
    elevation_attrs = {
        "units": "m",
        "long_name": "elevation above sea level",
        "standard_name": "surface_altitude",
        "regridding": REGRID_METHODS[dem.method],
    }
    return xr.Dataset(
        {
            "precip": (PRECIP_DIMS, values.astype(np.float32), precip_attrs),
            "elevation": (GRID_DIMS, dem.elevation.astype(np.float32), elevation_attrs),
        },
        coords=coords,
        attrs=_provenance(cfg, box, dem, n_filled, n_clipped, files_cfg),
    )


def _provenance(
    cfg: FilesConfig,
    box: BBox,
    dem: Dem,
    n_filled: int,
    n_clipped: int,
    files_cfg: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "Conventions": "CF-1.8",
        "title": "AMES dataset from user files",
        "source": "files",
        "history": f"created by ames {__version__} (ames.data.files.load_user_data)",
        "precip_file": str(files_cfg["precip_path"]),
        "precip_sha256": sha256_file(cfg.precip_path),
        "precip_var": cfg.precip_var,
        "dem_file": str(files_cfg["dem_path"]),
        "dem_sha256": sha256_file(cfg.dem_path),
        "dem_var": dem.var,
        "dem_regrid_method": dem.method,
        "dem_spacing_deg": f"{dem.spacing_deg[0]:.6g} {dem.spacing_deg[1]:.6g}",
        "bbox": f"lat_min={box.lat_min:g} lat_max={box.lat_max:g} "
        f"lon_min={box.lon_min:g} lon_max={box.lon_max:g}",
        "bbox_lat_min": box.lat_min,
        "bbox_lat_max": box.lat_max,
        "bbox_lon_min": box.lon_min,
        "bbox_lon_max": box.lon_max,
        "fill_missing": cfg.fill_missing,
        "n_filled_values": n_filled,
        "negative_values": cfg.negative_values,
        "n_clipped_negative_values": n_clipped,
    }
