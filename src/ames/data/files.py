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
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ames import __version__
from ames.data.errors import DataError
from ames.data.schema import (
    GRID_DIMS,
    METRE_UNITS,
    PRECIP_DIMS,
    PRECIP_UNITS,
    first_location,
    month_label,
    valid_cells,
    validate_dataset,
)
from ames.io import sha256_file

logger = logging.getLogger(__name__)

CONFIG_SOURCE = "params.yaml (data.files)"

#: Keys of ``data.files`` and their defaults (``None`` = auto-detect / read from the file).
FILES_DEFAULTS: dict[str, Any] = {
    "precip_path": None,
    "precip_var": "precip",
    "precip_units": None,
    "dem_path": None,
    "dem_var": None,
    "lat_name": None,
    "lon_name": None,
    "time_name": None,
    "fill_missing": "none",
}
FILL_OPTIONS = ("none", "climatology")

LAT_NAMES = ("latitude", "lat", "y", "Y", "nav_lat", "Latitude", "LAT")
LON_NAMES = ("longitude", "lon", "x", "X", "nav_lon", "Longitude", "LON")
TIME_NAMES = ("time", "T", "t", "Time", "date")
DEM_VAR_NAMES = ("elevation", "z", "Band1", "band_data", "elev", "altitude", "height", "dem")
GEOTIFF_SUFFIXES = (".tif", ".tiff")

MONTHLY_UNITS = ("mm/month", "mm", "mm month-1", "mm/mon", "mm mon-1")
DAILY_UNITS = ("mm/day", "mm d-1", "mm day-1", "mm/d")
FLUX_UNITS = ("kg m-2 s-1", "kg/m2/s", "kg m-2s-1")
SECONDS_PER_DAY = 86400.0

#: How the DEM reaches the precipitation grid (``dem_regrid_method`` attribute).
REGRID_METHODS = {
    "area_mean": "mean of the DEM pixels whose centres lie inside each cell (DEM finer)",
    "bilinear": "bilinear to the cell centres, nearest where a neighbour is NaN (DEM as coarse "
    "or coarser)",
}
FINER_TOLERANCE = 1e-6  # relative: a DEM at the grid's own spacing is sampled, not averaged

# A cell is kept when its centre is within this fraction of a grid spacing outside the box.
CROP_TOLERANCE = 0.49
MIN_TOLERANCE = 1e-6  # degrees, for float32 coordinates and single-cell axes
FLOAT32_COORD_DECIMALS = 5  # 1e-5 degrees ≈ 1 m; float32 error below 256° is < 4e-6

_EPOCH_YEAR = 1970


@dataclass(frozen=True)
class FilesConfig:
    """The ``data.files`` section with defaults applied and paths resolved."""

    precip_path: Path
    dem_path: Path
    precip_var: str = "precip"
    precip_units: str | None = None
    dem_var: str | None = None
    lat_name: str | None = None
    lon_name: str | None = None
    time_name: str | None = None
    fill_missing: str = "none"


@dataclass(frozen=True)
class BBox:
    """Bounding box in degrees, longitudes in −180…180."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float

    def describe(self) -> str:
        return (
            f"latitude {self.lat_min:g}…{self.lat_max:g}, "
            f"longitude {self.lon_min:g}…{self.lon_max:g}"
        )


@dataclass(frozen=True)
class _Precip:
    """Cropped precipitation: values ``[T, lat, lon]`` and its axes."""

    values: np.ndarray
    months: np.ndarray  # int64 months since 1970-01
    lat: np.ndarray
    lon: np.ndarray
    units: str | None


# --------------------------------------------------------------------------- public API


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

    ``files_cfg`` is the ``data.files`` section (keys in :data:`FILES_DEFAULTS`), ``bbox``
    has ``lat_min``, ``lat_max``, ``lon_min``, ``lon_max`` in degrees, ``min_months`` is
    input window + horizon × number of splits (computed by the caller) and relative paths
    are resolved from ``root``. Returns ``precip(time, latitude, longitude)`` float32
    mm/month and ``elevation(latitude, longitude)`` float32 m with provenance attributes.
    Raises :class:`DataError` for every input it cannot use.
    """
    root = Path(root)
    cfg = parse_files_config(files_cfg, root)
    box = parse_bbox(bbox)
    precip = _read_precip(cfg, box, min_months)
    values = _to_mm_per_month(precip.values, precip.units, precip.months, cfg.precip_path)
    _check_finite_non_negative(values, precip, cfg.precip_path)
    valid = _require_valid_cells(values, cfg.precip_path, box)
    fit = np.arange(values.shape[0]) < values.shape[0] - holdout_months
    values, n_filled = _handle_interior_nans(values, valid, precip, cfg, fit)
    dem = _read_dem(cfg, precip.lat, precip.lon, valid, box)
    ds = _assemble(values, dem, precip, cfg, box, n_filled, files_cfg)
    validate_dataset(ds, str(cfg.precip_path))
    logger.info(
        "user data: %d months %s…%s on a %d×%d grid, %d valid cells",
        values.shape[0],
        _month_name(precip.months[0]),
        _month_name(precip.months[-1]),
        values.shape[1],
        values.shape[2],
        int(valid.sum()),
    )
    return ds


def parse_files_config(files_cfg: Mapping[str, Any] | None, root: Path) -> FilesConfig:
    """Apply :data:`FILES_DEFAULTS` to ``data.files`` and resolve its paths from ``root``."""
    given = dict(files_cfg or {})
    unknown = sorted(set(given) - set(FILES_DEFAULTS))
    if unknown:
        raise DataError(
            CONFIG_SOURCE,
            f"unknown key(s) {', '.join(unknown)}",
            f"use only: {', '.join(FILES_DEFAULTS)}",
        )
    merged = {**FILES_DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    for key in ("precip_path", "dem_path"):
        if not merged[key]:
            raise DataError(
                CONFIG_SOURCE,
                f"'{key}' is not set",
                f"set data.files.{key} to your file (relative to the project root)",
            )
        path = Path(str(merged[key])).expanduser()
        merged[key] = path if path.is_absolute() else root / path
    fill = merged["fill_missing"]
    fill = "none" if fill is False else str(fill).strip().lower()
    if fill not in FILL_OPTIONS:
        raise DataError(
            CONFIG_SOURCE,
            f"fill_missing is {merged['fill_missing']!r}",
            f"use one of: {', '.join(FILL_OPTIONS)}",
        )
    merged["fill_missing"] = fill
    for key in ("precip_var", "precip_units", "dem_var", "lat_name", "lon_name", "time_name"):
        if merged[key] is not None:
            merged[key] = str(merged[key])
    return FilesConfig(**merged)


def parse_bbox(bbox: Mapping[str, Any]) -> BBox:
    """Validate a ``lat_min/lat_max/lon_min/lon_max`` box; longitudes are wrapped to −180…180."""
    keys = ("lat_min", "lat_max", "lon_min", "lon_max")
    source = "params.yaml (bounding box)"
    missing = [k for k in keys if k not in (bbox or {})]
    if missing:
        raise DataError(source, f"missing key(s) {', '.join(missing)}", f"give all of {keys}")
    try:
        lat_min, lat_max, lon_min, lon_max = (float(bbox[k]) for k in keys)
    except (TypeError, ValueError) as exc:
        raise DataError(source, f"non-numeric value ({exc})", "give degrees as numbers") from exc
    if not -90.0 <= lat_min < lat_max <= 90.0:
        raise DataError(
            source,
            f"latitudes {lat_min:g}…{lat_max:g} are not an ascending range inside −90…90",
            "set lat_min < lat_max, both within −90…90",
        )
    if lon_max - lon_min >= 360.0:
        return BBox(lat_min, lat_max, -180.0, 180.0)
    lon_min, lon_max = _wrap_box_lon(lon_min), _wrap_box_lon(lon_max)
    if lon_min >= lon_max:
        raise DataError(
            source,
            f"longitudes {bbox['lon_min']}…{bbox['lon_max']} are not an ascending range "
            "(boxes crossing the antimeridian are not supported)",
            "set lon_min < lon_max in −180…180 (or 0…360)",
        )
    return BBox(lat_min, lat_max, lon_min, lon_max)


# ------------------------------------------------------------------------ precipitation


def _read_precip(cfg: FilesConfig, box: BBox, min_months: int) -> _Precip:
    path = cfg.precip_path
    _require_file(path, "precip_path")
    with _open_netcdf(path) as ds:
        da = _select_variable(ds, cfg.precip_var, path, "precip_var")
        t_name = _pick_dim(da, cfg.time_name, TIME_NAMES, "time", path)
        lat_name = _pick_dim(da, cfg.lat_name, LAT_NAMES, "latitude", path)
        lon_name = _pick_dim(da, cfg.lon_name, LON_NAMES, "longitude", path)
        da = _drop_singleton_dims(da, (t_name, lat_name, lon_name), path)
        months = _decode_months(ds[t_name], path)
        order = _check_monthly_axis(months, path, min_months)
        lat_all = _coord_values(ds, lat_name, path)
        lon_all = _coord_values(ds, lon_name, path)
        _check_degrees(lat_all, lon_all, path)
        lon_all = _wrap_lon(lon_all)
        _require_unique(lat_all, lat_name, path)
        lat_idx = _crop_indices(lat_all, box.lat_min, box.lat_max)
        lon_idx = _crop_indices(lon_all, box.lon_min, box.lon_max)
        if lat_idx.size == 0 or lon_idx.size == 0:
            raise DataError(
                path,
                f"the file covers {_extent(lat_all, lon_all)}, which does not overlap the "
                f"box ({box.describe()})",
                "use a file that covers the region or correct the bounding box in params.yaml",
            )
        _warn_partial_cover(lat_all, lon_all, box, path)
        block = da.isel(
            {t_name: _indexer(order), lat_name: _indexer(lat_idx), lon_name: _indexer(lon_idx)}
        )
        values = np.asarray(block.transpose(t_name, lat_name, lon_name).values, dtype=np.float64)
        units = cfg.precip_units if cfg.precip_units is not None else da.attrs.get("units")
    return _Precip(values, months[order], lat_all[lat_idx], lon_all[lon_idx], units)


def _decode_months(time: xr.DataArray, path: Path) -> np.ndarray:
    """Month index (months since 1970-01) of every time stamp, in file order."""
    raw = np.asarray(time.values)
    if np.issubdtype(raw.dtype, np.datetime64):
        return raw.astype("datetime64[M]").astype(np.int64)
    units = time.attrs.get("units")
    if not units:
        raise DataError(
            path,
            f"time coordinate '{time.name}' has no 'units' attribute",
            "add CF time units, e.g. units = 'days since 1980-01-01'",
        )
    match = re.match(r"\s*months?\s+since\s+(-?\d+)-(\d{1,2})", str(units))
    if match:  # e.g. IRI data library: 'months since 1960-01-01', mid-month values x.5
        ref = (int(match.group(1)) - _EPOCH_YEAR) * 12 + int(match.group(2)) - 1
        return ref + np.floor(raw.astype(np.float64) + 1e-6).astype(np.int64)
    stamps = xr.Dataset({"stamp": ("n", raw, dict(time.attrs))})
    try:
        decoded = np.asarray(xr.decode_cf(stamps, decode_times=True)["stamp"].values)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(
            path,
            f"time coordinate '{time.name}' cannot be decoded ({exc})",
            "store CF time units such as 'days since 1980-01-01' with a standard calendar",
        ) from exc
    if np.issubdtype(decoded.dtype, np.datetime64):
        return decoded.astype("datetime64[M]").astype(np.int64)
    if decoded.dtype == object and hasattr(decoded.flat[0], "month"):  # cftime dates
        return np.array([(d.year - _EPOCH_YEAR) * 12 + d.month - 1 for d in decoded], np.int64)
    raise DataError(
        path,
        f"time coordinate '{time.name}' with units {units!r} does not decode to dates",
        "store CF time units such as 'days since 1980-01-01'",
    )


def _check_monthly_axis(months: np.ndarray, path: Path, min_months: int) -> np.ndarray:
    """Order that sorts ``months``; raises on duplicates, gaps and too short a record."""
    if months.size == 0:
        raise DataError(path, "the time axis is empty", "supply a monthly precipitation series")
    order = np.argsort(months, kind="stable")
    if np.any(order != np.arange(months.size)):
        logger.info("%s: time stamps are not in order; sorting them", path)
    ordered = months[order]
    step = np.diff(ordered)
    if np.any(step == 0):
        dup = ordered[int(np.argmax(step == 0))]
        raise DataError(
            path,
            f"month {_month_name(dup)} appears more than once in the time "
            "axis (each stamp is mapped to its month)",
            "keep exactly one time step per month (is this a daily or pentad file?)",
        )
    if np.any(step > 1):
        i = int(np.argmax(step > 1))
        n_missing = int(np.sum(step[step > 1] - 1))
        raise DataError(
            path,
            f"the monthly time axis has gaps: {_month_name(ordered[i] + 1)}"
            f" is the first missing month ({n_missing} missing in total)",
            "supply a gap-free monthly record (fill the missing months in the file, or cut it "
            "to a contiguous period)",
        )
    if ordered.size < min_months:
        first, last = _month_name(ordered[0]), _month_name(ordered[-1])
        raise DataError(
            path,
            f"the file has {ordered.size} months ({first}…{last}) but the pipeline needs at "
            f"least {min_months} (input window + horizon × number of splits)",
            "supply a longer record, or shorten the input window / validation and test "
            "periods in params.yaml",
        )
    return order


def _to_mm_per_month(
    values: np.ndarray, units: str | None, months: np.ndarray, path: Path
) -> np.ndarray:
    """Convert ``[T, lat, lon]`` precipitation to monthly totals in mm."""
    if units is None:
        logger.warning(
            "%s: precipitation has no 'units' attribute; assuming %s. Set "
            "data.files.precip_units to silence this warning.",
            path,
            PRECIP_UNITS,
        )
        return values
    key = _normalise_units(units)
    if key in MONTHLY_UNITS:
        return values
    days = _days_in_month(months)[:, None, None]
    if key in DAILY_UNITS:
        logger.info("%s: converting %s to mm/month (× days in month)", path, units)
        return values * days
    if key in FLUX_UNITS:
        logger.info("%s: converting %s to mm/month (× seconds in month)", path, units)
        return values * days * SECONDS_PER_DAY
    accepted = ", ".join(f"'{u}'" for u in (*MONTHLY_UNITS, *DAILY_UNITS, *FLUX_UNITS))
    raise DataError(
        path,
        f"precipitation units {units!r} are not recognised",
        f"use one of {accepted} in the file, or set data.files.precip_units to the true units",
    )


def _check_finite_non_negative(values: np.ndarray, precip: _Precip, path: Path) -> None:
    coords = _precip_coords(precip)
    infinite = np.isinf(values)
    if infinite.any():
        raise DataError(
            path,
            f"precipitation has {int(infinite.sum())} infinite values "
            f"(first at {first_location(infinite, **coords)})",
            "replace them with valid totals, or declare them as _FillValue if they mean no data",
        )
    negative = values < 0  # NaN compares False
    if negative.any():
        first = tuple(np.argwhere(negative)[0])
        raise DataError(
            path,
            f"precipitation has {int(negative.sum())} negative values (first: {values[first]:g} "
            f"at {first_location(negative, **coords)})",
            "correct the values; if they are a no-data marker such as -9999, declare it in "
            "the variable's _FillValue or missing_value attribute",
        )


def _require_valid_cells(values: np.ndarray, path: Path, box: BBox) -> np.ndarray:
    valid = valid_cells(values)
    if not valid.any():
        raise DataError(
            path,
            f"all {valid.shape[0]}×{valid.shape[1]} cells inside the box ({box.describe()}) "
            "are NaN at every time step",
            "check that the box lies over land covered by the file's data",
        )
    return valid


def _handle_interior_nans(
    values: np.ndarray, valid: np.ndarray, precip: _Precip, cfg: FilesConfig, fit: np.ndarray
) -> tuple[np.ndarray, int]:
    """Return ``values`` with NaNs inside valid cells filled (or raise) and the fill count."""
    interior = np.isnan(values) & valid[None]
    n_missing = int(interior.sum())
    if n_missing == 0:
        return values, 0
    where = first_location(interior, **_precip_coords(precip))
    n_cells = int(interior.any(axis=0).sum())
    if cfg.fill_missing == "none":
        raise DataError(
            cfg.precip_path,
            f"{n_missing} NaN values inside {n_cells} otherwise valid cells (first at {where})",
            "correct the file, or set data.files.fill_missing: climatology to fill each with "
            "the cell's mean for that calendar month",
        )
    filled = _fill_calendar_mean(values, precip.months % 12, interior, fit)
    left = np.isnan(filled) & valid[None]
    if left.any():
        raise DataError(
            cfg.precip_path,
            f"{int(left.sum())} NaN values cannot be filled because their cell has no "
            "training-period data for that calendar month "
            f"(first at {first_location(left, **_precip_coords(precip))})",
            "correct the file; fill_missing: climatology needs at least one value per cell "
            "and calendar month in the training period",
        )
    logger.warning(
        "%s: filled %d NaN values in %d cells with the cell's calendar-month mean "
        "(fill_missing: climatology)",
        cfg.precip_path,
        n_missing,
        n_cells,
    )
    return filled, n_missing


def _fill_calendar_mean(
    values: np.ndarray, months: np.ndarray, fill: np.ndarray, fit: np.ndarray
) -> np.ndarray:
    """Replace ``values[fill]`` with the mean of the same cell and calendar month.

    The mean is over the non-NaN months marked by ``fit`` (the training period), so no
    validation or test value leaks into the filled record.
    """
    out = values.copy()
    for m in range(12):
        sel = months == m
        if not sel.any():
            continue
        block = np.where(fit[sel][:, None, None], values[sel], np.nan)
        count = np.sum(~np.isnan(block), axis=0)
        total = np.nansum(block, axis=0)
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        out[sel] = np.where(fill[sel], mean[None], values[sel])
    return out


# ---------------------------------------------------------------------------------- DEM


@dataclass(frozen=True)
class _Dem:
    """Elevation ``[lat, lon]`` (m) on the precipitation grid and how it got there."""

    elevation: np.ndarray
    var: str
    method: str  # one of REGRID_METHODS
    spacing_deg: tuple[float, float]  # the DEM's (latitude, longitude) pixel spacing


def _read_dem(
    cfg: FilesConfig, lat: np.ndarray, lon: np.ndarray, valid: np.ndarray, box: BBox
) -> _Dem:
    """Elevation on the precipitation cells: area mean if the DEM is finer, else bilinear."""
    path = cfg.dem_path
    _require_file(path, "dem_path")
    with _open_dem(path, cfg) as (dem, dem_var):
        dem_lat = _coord_values(dem, "latitude", path)
        dem_lon = _coord_values(dem, "longitude", path)
        _check_degrees(dem_lat, dem_lon, path)
        dem_lon = _wrap_lon(dem_lon)
        _require_unique(dem_lat, "latitude", path)
        _check_dem_covers(dem_lat, dem_lon, lat, lon, box, path)
        window = _dem_window(dem, dem_lat, dem_lon, lat, lon)
    spacing = (_spacing(window["latitude"].values), _spacing(window["longitude"].values))
    method = _regrid_method(spacing, (_spacing(lat), _spacing(lon)))
    logger.info(
        "%s: DEM pixels %.4g° × %.4g° on a %.4g° × %.4g° grid: %s",
        path,
        *spacing,
        _spacing(lat),
        _spacing(lon),
        REGRID_METHODS[method],
    )
    if method == "area_mean":
        elevation = _regrid_area_mean(window, lat, lon)
    else:
        elevation = _regrid_bilinear(window, lat, lon)
    missing = valid & np.isnan(elevation)
    if missing.any():
        raise DataError(
            path,
            f"the DEM has no value at {int(missing.sum())} cells where precipitation is valid "
            f"(first at {first_location(missing, latitude=lat, longitude=lon)})",
            "use a void-filled DEM (e.g. fill voids with gdal_fillnodata.py) with values "
            "wherever the precipitation file has data",
        )
    return _Dem(elevation, dem_var, method, spacing)


def _dem_window(
    dem: xr.DataArray, dem_lat: np.ndarray, dem_lon: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> xr.DataArray:
    """The DEM over the grid's cells plus two DEM pixels, ascending, as float64.

    Cells reach half a grid spacing beyond the outermost centres, and area averaging needs
    every pixel inside them.
    """
    half_lat, half_lon = 0.5 * _spacing(lat), 0.5 * _spacing(lon)
    lat_idx = _crop_indices(dem_lat, lat.min() - half_lat, lat.max() + half_lat, margin_cells=2.0)
    lon_idx = _crop_indices(dem_lon, lon.min() - half_lon, lon.max() + half_lon, margin_cells=2.0)
    block = dem.isel(latitude=_indexer(lat_idx), longitude=_indexer(lon_idx))
    return xr.DataArray(
        np.asarray(block.transpose(*GRID_DIMS).values, dtype=np.float64),
        dims=GRID_DIMS,
        coords={"latitude": dem_lat[lat_idx], "longitude": dem_lon[lon_idx]},
    )


@contextmanager
def _open_dem(path: Path, cfg: FilesConfig) -> Iterator[tuple[xr.DataArray, str]]:
    """Yield the (lazy) DEM as ``(latitude, longitude)`` and the name of its variable."""
    if path.suffix.lower() in GEOTIFF_SUFFIXES:
        with _open_geotiff(path) as raster:
            yield _geotiff_band(raster, path), "band 1"
        return
    with _open_netcdf(path) as ds:
        name = _dem_variable_name(ds, cfg.dem_var, path)
        da = ds[name]
        lat_name = _pick_dim(da, None, _with_first(cfg.lat_name, LAT_NAMES), "latitude", path)
        lon_name = _pick_dim(da, None, _with_first(cfg.lon_name, LON_NAMES), "longitude", path)
        da = _drop_singleton_dims(da, (lat_name, lon_name), path)
        _check_dem_units(da, path)
        yield da.rename({lat_name: "latitude", lon_name: "longitude"}), name


def _open_geotiff(path: Path) -> Any:
    try:
        import rioxarray
    except ImportError as exc:
        raise DataError(
            path,
            "reading a GeoTIFF DEM needs the optional package rioxarray, which is not installed",
            "pip install 'ames[geotiff]', or convert the DEM to NetCDF "
            "(gdal_translate -of netCDF dem.tif dem.nc)",
        ) from exc
    try:
        return rioxarray.open_rasterio(path, mask_and_scale=True)
    except (OSError, ValueError) as exc:
        raise DataError(
            path, f"cannot be read as a GeoTIFF ({exc})", "check the file with gdalinfo"
        ) from exc


def _geotiff_band(raster: Any, path: Path) -> xr.DataArray:
    if not isinstance(raster, xr.DataArray):
        raise DataError(
            path,
            "the GeoTIFF holds several rasters or subdatasets",
            "export the elevation band alone (gdal_translate -b 1 in.tif dem.tif)",
        )
    crs = raster.rio.crs
    if crs is not None and not crs.is_geographic:
        raise DataError(
            path,
            f"the DEM is in a projected coordinate system ({crs.to_string()})",
            "reproject it to latitude/longitude: gdalwarp -t_srs EPSG:4326 in.tif dem.tif",
        )
    if "band" in raster.dims:
        if raster.sizes["band"] > 1:
            logger.warning("%s: %d bands; using band 1", path, raster.sizes["band"])
        raster = raster.isel(band=0, drop=True)
    raster = raster.drop_vars("spatial_ref", errors="ignore")
    _check_dem_units(raster, path)
    return raster.rename({"y": "latitude", "x": "longitude"})


def _dem_variable_name(ds: xr.Dataset, configured: str | None, path: Path) -> str:
    if configured is not None:
        _select_variable(ds, configured, path, "dem_var")
        return configured
    gridded = [str(v) for v in ds.data_vars if ds[v].ndim >= 2]
    if len(gridded) == 1:
        return gridded[0]
    for name in DEM_VAR_NAMES:
        if name in gridded:
            return name
    raise DataError(
        path,
        f"cannot tell which variable is the elevation (data variables: {_describe_vars(ds)})",
        "set data.files.dem_var to the elevation variable",
    )


def _check_dem_units(dem: xr.DataArray, path: Path) -> None:
    units = dem.attrs.get("units")
    if units is not None and str(units).strip().lower() not in METRE_UNITS:
        raise DataError(
            path,
            f"elevation units are {units!r}, expected metres",
            "convert the DEM to metres above sea level (or fix its 'units' attribute)",
        )


def _check_dem_covers(
    dem_lat: np.ndarray,
    dem_lon: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    box: BBox,
    path: Path,
) -> None:
    """The DEM's extent (centres ± half a cell) must contain every precipitation centre."""
    for axis, values in (("latitude", dem_lat), ("longitude", dem_lon)):
        if values.size < 2:
            raise DataError(
                path,
                f"the DEM has a single {axis} value",
                "use a DEM grid with at least two rows and two columns",
            )
    lat_lo, lat_hi = _axis_extent(dem_lat)
    lon_lo, lon_hi = _axis_extent(dem_lon)
    eps = MIN_TOLERANCE
    inside = (
        lat.min() >= lat_lo - eps
        and lat.max() <= lat_hi + eps
        and lon.min() >= lon_lo - eps
        and lon.max() <= lon_hi + eps
    )
    if not inside:
        raise DataError(
            path,
            f"the DEM covers latitude {lat_lo:.4f}…{lat_hi:.4f}, longitude "
            f"{lon_lo:.4f}…{lon_hi:.4f} but the precipitation grid in the box "
            f"({box.describe()}) spans {_extent(lat, lon)}",
            "use a DEM that covers the whole box (clip it from a larger DEM with a margin)",
        )


def _regrid_bilinear(dem: xr.DataArray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Bilinear interpolation to the cell centres; nearest where a neighbour is NaN.

    Targets within half a DEM cell beyond the outermost DEM centres (allowed by the
    coverage check) take the edge value.
    """
    target = {
        "latitude": np.clip(lat, dem["latitude"].values[0], dem["latitude"].values[-1]),
        "longitude": np.clip(lon, dem["longitude"].values[0], dem["longitude"].values[-1]),
    }
    out = np.asarray(dem.interp(target, method="linear").values, dtype=np.float64)
    gaps = np.isnan(out)
    if gaps.any():
        nearest = np.asarray(dem.interp(target, method="nearest").values, dtype=np.float64)
        out = np.where(gaps, nearest, out)
    return out


def _regrid_method(dem_spacing: tuple[float, float], grid_spacing: tuple[float, float]) -> str:
    """``area_mean`` when the DEM is finer than the grid along both axes, else ``bilinear``."""
    finer = all(
        0.0 < d < g * (1.0 - FINER_TOLERANCE)
        for d, g in zip(dem_spacing, grid_spacing, strict=True)
    )
    return "area_mean" if finer else "bilinear"


def _cell_edges(centres: np.ndarray) -> np.ndarray:
    """Edges of the cells around ascending centres: midpoints, outer ones half a cell out."""
    half = 0.5 * _spacing(centres)
    inner = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[centres[0] - half], inner, [centres[-1] + half]])


def _sum_by_cell(field: xr.DataArray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Sum of the pixels whose centres fall inside each grid cell, ``[lat, lon]``."""
    for dim, centres in (("latitude", lat), ("longitude", lon)):
        field = field.groupby_bins(
            dim, _cell_edges(centres), labels=np.arange(centres.size), include_lowest=True
        ).sum()
        field = field.rename({f"{dim}_bins": dim})
    return np.asarray(field.transpose(*GRID_DIMS).values, dtype=np.float64)


def _regrid_area_mean(dem: xr.DataArray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Mean of the DEM pixels (NaN voids skipped) whose centres lie in each grid cell.

    A cell whose pixels are all voids stays NaN; a cell no pixel centre falls in (only
    possible at a ragged DEM edge) takes the bilinear value at its centre.
    """
    total = _sum_by_cell(dem.fillna(0.0), lat, lon)
    n_pixels = _sum_by_cell(xr.ones_like(dem), lat, lon)
    n_values = _sum_by_cell(dem.notnull(), lat, lon)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_values > 0, total / n_values, np.nan)
    empty = n_pixels == 0
    if empty.any():
        mean = np.where(empty, _regrid_bilinear(dem, lat, lon), mean)
    return mean


# --------------------------------------------------------------------------- assembling


def _assemble(
    values: np.ndarray,
    dem: _Dem,
    precip: _Precip,
    cfg: FilesConfig,
    box: BBox,
    n_filled: int,
    files_cfg: Mapping[str, Any],
) -> xr.Dataset:
    coords = {
        "time": ("time", _month_starts(precip.months).astype("datetime64[ns]"), {}),
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
        attrs=_provenance(cfg, box, dem, n_filled, files_cfg),
    )


def _provenance(
    cfg: FilesConfig, box: BBox, dem: _Dem, n_filled: int, files_cfg: Mapping[str, Any]
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
    }


# ------------------------------------------------------------------------------ helpers


def _require_file(path: Path, key: str) -> None:
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "file not found"
        raise DataError(
            path,
            problem,
            f"check data.files.{key} in params.yaml (relative paths start at the project root)",
        )


def _open_netcdf(path: Path) -> xr.Dataset:
    """Open lazily (nothing is read until values are requested); times stay undecoded."""
    try:
        return xr.open_dataset(path, decode_times=False)
    except (OSError, ValueError) as exc:
        raise DataError(
            path,
            f"cannot be read as NetCDF ({exc})",
            "check the file with `ncdump -h`; it may be truncated or in another format",
        ) from exc


def _select_variable(ds: xr.Dataset, name: str, path: Path, key: str) -> xr.DataArray:
    if name in ds.data_vars:
        return ds[name]
    raise DataError(
        path,
        f"variable '{name}' not found (data variables: {_describe_vars(ds)})",
        f"set data.files.{key} to one of the variables listed",
    )


def _describe_vars(ds: xr.Dataset) -> str:
    return ", ".join(f"{v}{tuple(map(str, ds[v].dims))}" for v in ds.data_vars) or "none"


def _with_first(name: str | None, candidates: tuple[str, ...]) -> tuple[str, ...]:
    return candidates if name is None else (name, *candidates)


def _pick_dim(
    da: xr.DataArray,
    configured: str | None,
    candidates: tuple[str, ...],
    role: str,
    path: Path,
) -> str:
    dims = tuple(map(str, da.dims))
    key = {"time": "time_name", "latitude": "lat_name", "longitude": "lon_name"}[role]
    if configured is not None:
        if configured in dims:
            return configured
        raise DataError(
            path,
            f"variable '{da.name}' has no dimension '{configured}' (dimensions: {dims})",
            f"set data.files.{key} to one of {dims}",
        )
    for name in candidates:
        if name in dims:
            return name
    raise DataError(
        path,
        f"cannot tell which dimension of '{da.name}' is {role} (dimensions: {dims})",
        f"set data.files.{key} to the {role} dimension's name",
    )


def _drop_singleton_dims(da: xr.DataArray, keep: tuple[str, ...], path: Path) -> xr.DataArray:
    for dim in map(str, da.dims):
        if dim in keep:
            continue
        if da.sizes[dim] != 1:
            raise DataError(
                path,
                f"variable '{da.name}' has an extra dimension '{dim}' of size {da.sizes[dim]} "
                f"(expected only {keep})",
                f"select one '{dim}' value before use (e.g. ncks -d {dim},0)",
            )
        da = da.isel({dim: 0}, drop=True)
    return da


def _coord_values(obj: xr.Dataset | xr.DataArray, name: str, path: Path) -> np.ndarray:
    if name not in obj.coords:
        raise DataError(
            path,
            f"dimension '{name}' has no coordinate values",
            f"add a 1-D coordinate variable '{name}' with the cell centres",
        )
    raw = np.asarray(obj[name].values)
    values = raw.astype(np.float64)
    if raw.dtype == np.float32:  # drop float32 noise such as -74.974998 for -74.975
        values = np.round(values, FLOAT32_COORD_DECIMALS)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise DataError(
            path,
            f"coordinate '{name}' is not a finite 1-D axis",
            "use a regular latitude/longitude grid with 1-D coordinates",
        )
    return values


def _check_degrees(lat: np.ndarray, lon: np.ndarray, path: Path) -> None:
    if np.abs(lat).max() > 90.0 or lon.min() < -180.0 or lon.max() > 360.0:
        raise DataError(
            path,
            f"coordinates span {_extent(lat, lon)}, which are not degrees of latitude and "
            "longitude (a projected grid?)",
            "reproject the file to a regular latitude/longitude grid (e.g. gdalwarp -t_srs "
            "EPSG:4326 or cdo remapbil)",
        )


def _require_unique(values: np.ndarray, name: str, path: Path) -> None:
    if np.unique(values).size != values.size:
        raise DataError(
            path,
            f"coordinate '{name}' has repeated values",
            "remove the duplicated rows so each latitude appears once",
        )


def _wrap_lon(lon: np.ndarray) -> np.ndarray:
    """Longitudes to −180…180 (0…360 grids are wrapped; 180 stays 180)."""
    return np.where(lon > 180.0, lon - 360.0, lon)


def _wrap_box_lon(value: float) -> float:
    return value - 360.0 if value > 180.0 else value


def _spacing(sorted_values: np.ndarray) -> float:
    if sorted_values.size < 2:
        return 0.0
    return float(np.median(np.diff(sorted_values)))


def _crop_indices(
    values: np.ndarray, lo: float, hi: float, margin_cells: float = CROP_TOLERANCE
) -> np.ndarray:
    """Indices of ``values`` within ``[lo, hi]`` widened by ``margin_cells`` grid spacings.

    Returned in ascending order of value; repeated values (e.g. both 0° and 360°) keep the
    first occurrence.
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.concatenate([[True], np.diff(ordered) > 0])
    order, ordered = order[first], ordered[first]
    tol = max(margin_cells * _spacing(ordered), MIN_TOLERANCE)
    inside = (ordered >= lo - tol) & (ordered <= hi + tol)
    return order[inside]


def _indexer(indices: np.ndarray) -> slice | np.ndarray:
    """A slice when ``indices`` are consecutive ascending (cheapest lazy read), else the array."""
    if indices.size > 0 and np.all(np.diff(indices) == 1):
        return slice(int(indices[0]), int(indices[-1]) + 1)
    return indices


def _axis_extent(values: np.ndarray) -> tuple[float, float]:
    """Cell-edge extent of an axis of centres: min − half a cell … max + half a cell."""
    ordered = np.unique(values)
    half = 0.5 * _spacing(ordered)
    return float(ordered[0] - half), float(ordered[-1] + half)


def _extent(lat: np.ndarray, lon: np.ndarray) -> str:
    return (
        f"latitude {np.min(lat):.4f}…{np.max(lat):.4f}, "
        f"longitude {np.min(lon):.4f}…{np.max(lon):.4f} (cell centres)"
    )


def _warn_partial_cover(lat: np.ndarray, lon: np.ndarray, box: BBox, path: Path) -> None:
    lat_lo, lat_hi = _axis_extent(lat)
    lon_lo, lon_hi = _axis_extent(lon)
    eps = MIN_TOLERANCE
    if (
        lat_lo > box.lat_min + eps
        or lat_hi < box.lat_max - eps
        or lon_lo > box.lon_min + eps
        or lon_hi < box.lon_max - eps
    ):
        logger.warning(
            "%s: the file covers only part of the box (%s); using the part it covers",
            path,
            box.describe(),
        )


def _normalise_units(units: str) -> str:
    text = str(units).strip().lower().replace("**", "").replace("^", "")
    return re.sub(r"\s+", " ", text)


def _month_starts(months: np.ndarray) -> np.ndarray:
    return np.asarray(months, dtype=np.int64).astype("datetime64[M]")


def _month_name(month_index: int | np.integer) -> str:
    """``YYYY-MM`` of a month index (months since 1970-01)."""
    return month_label(np.datetime64(int(month_index), "M"))


def _days_in_month(months: np.ndarray) -> np.ndarray:
    start = _month_starts(months)
    return ((start + 1).astype("datetime64[D]") - start.astype("datetime64[D]")).astype(np.float64)


def _precip_coords(precip: _Precip) -> dict[str, np.ndarray]:
    return {"time": _month_starts(precip.months), "latitude": precip.lat, "longitude": precip.lon}
