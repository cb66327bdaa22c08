"""Reading the user's NetCDF files: variables, dimensions and latitude/longitude axes.

Shared by :mod:`ames.data.precip_file` and :mod:`ames.data.dem_file`: open a file lazily,
pick a variable and its dimensions (configured or auto-detected), read and check 1-D
coordinate axes in degrees, wrap longitudes to −180…180 and crop an axis to a range (a
value is kept when it lies within a fraction of a grid spacing outside the range). Every
check raises a :class:`~ames.data.errors.DataError` naming the file, the problem and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ames.data.errors import DataError

LAT_NAMES = ("latitude", "lat", "y", "Y", "nav_lat", "Latitude", "LAT")
LON_NAMES = ("longitude", "lon", "x", "X", "nav_lon", "Longitude", "LON")

# A cell is kept when its centre is within this fraction of a grid spacing outside the box.
CROP_TOLERANCE = 0.49
MIN_TOLERANCE = 1e-6  # degrees, for float32 coordinates and single-cell axes
FLOAT32_COORD_DECIMALS = 5  # 1e-5 degrees ≈ 1 m; float32 error below 256° is < 4e-6


def require_file(path: Path, key: str) -> None:
    """Raise unless ``path`` (set by ``data.files.<key>``) is an existing file."""
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "file not found"
        raise DataError(
            path,
            problem,
            f"check data.files.{key} in params.yaml (relative paths start at the project root)",
        )


def open_netcdf(path: Path) -> xr.Dataset:
    """Open lazily (nothing is read until values are requested); times stay undecoded."""
    try:
        return xr.open_dataset(path, decode_times=False)
    except (OSError, ValueError) as exc:
        raise DataError(
            path,
            f"cannot be read as NetCDF ({exc})",
            "check the file with `ncdump -h`; it may be truncated or in another format",
        ) from exc


def select_variable(ds: xr.Dataset, name: str, path: Path, key: str) -> xr.DataArray:
    """Variable ``name`` of ``ds`` (set by ``data.files.<key>``); raises if absent."""
    if name in ds.data_vars:
        return ds[name]
    raise DataError(
        path,
        f"variable '{name}' not found (data variables: {describe_vars(ds)})",
        f"set data.files.{key} to one of the variables listed",
    )


def describe_vars(ds: xr.Dataset) -> str:
    """``name(dims)`` of every data variable, for error messages."""
    return ", ".join(f"{v}{tuple(map(str, ds[v].dims))}" for v in ds.data_vars) or "none"


def pick_dim(
    da: xr.DataArray,
    configured: str | None,
    candidates: tuple[str, ...],
    role: str,
    path: Path,
) -> str:
    """Name of the ``role`` dimension of ``da``: ``configured``, else the first candidate."""
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


def drop_singleton_dims(da: xr.DataArray, keep: tuple[str, ...], path: Path) -> xr.DataArray:
    """Drop size-1 dimensions other than ``keep``; raises on a larger extra dimension."""
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


def coord_values(obj: xr.Dataset | xr.DataArray, name: str, path: Path) -> np.ndarray:
    """Finite 1-D float64 values of coordinate ``name`` (float32 noise rounded away)."""
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


def check_degrees(lat: np.ndarray, lon: np.ndarray, path: Path) -> None:
    """Raise unless the axes look like degrees of latitude and longitude."""
    if np.abs(lat).max() > 90.0 or lon.min() < -180.0 or lon.max() > 360.0:
        raise DataError(
            path,
            f"coordinates span {describe_extent(lat, lon)}, which are not degrees of latitude and "
            "longitude (a projected grid?)",
            "reproject the file to a regular latitude/longitude grid (e.g. gdalwarp -t_srs "
            "EPSG:4326 or cdo remapbil)",
        )


def require_unique(values: np.ndarray, name: str, path: Path) -> None:
    """Raise if coordinate ``name`` repeats a value."""
    if np.unique(values).size != values.size:
        raise DataError(
            path,
            f"coordinate '{name}' has repeated values",
            "remove the duplicated rows so each latitude appears once",
        )


def wrap_lon(lon: np.ndarray) -> np.ndarray:
    """Longitudes to −180…180 (0…360 grids are wrapped; 180 stays 180)."""
    return np.where(lon > 180.0, lon - 360.0, lon)


def axis_spacing(sorted_values: np.ndarray) -> float:
    """Median step of a sorted axis (0 for fewer than two values)."""
    if sorted_values.size < 2:
        return 0.0
    return float(np.median(np.diff(sorted_values)))


def crop_indices(
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
    tol = max(margin_cells * axis_spacing(ordered), MIN_TOLERANCE)
    inside = (ordered >= lo - tol) & (ordered <= hi + tol)
    return order[inside]


def indexer(indices: np.ndarray) -> slice | np.ndarray:
    """A slice when ``indices`` are consecutive ascending (cheapest lazy read), else the array."""
    if indices.size > 0 and np.all(np.diff(indices) == 1):
        return slice(int(indices[0]), int(indices[-1]) + 1)
    return indices


def axis_extent(values: np.ndarray) -> tuple[float, float]:
    """Cell-edge extent of an axis of centres: min − half a cell … max + half a cell."""
    ordered = np.unique(values)
    half = 0.5 * axis_spacing(ordered)
    return float(ordered[0] - half), float(ordered[-1] + half)


def describe_extent(lat: np.ndarray, lon: np.ndarray) -> str:
    """The range of cell centres, for messages."""
    return (
        f"latitude {np.min(lat):.4f}…{np.max(lat):.4f}, "
        f"longitude {np.min(lon):.4f}…{np.max(lon):.4f} (cell centres)"
    )
