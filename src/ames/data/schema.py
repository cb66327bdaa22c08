"""The dataset contract every stage after ``prepare`` relies on (SPEC §2.1).

``dataset.nc`` holds ``precip(time, latitude, longitude)`` float32 in mm/month and
``elevation(latitude, longitude)`` float32 in metres on the same grid, with ascending
coordinates and a contiguous monthly ``time`` axis of month starts.

A cell whose precipitation is NaN at *every* time step is outside the domain (ocean,
no-data) and is masked downstream; a NaN anywhere else is an input error.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ames.data.errors import DataError

PRECIP_DIMS = ("time", "latitude", "longitude")
GRID_DIMS = ("latitude", "longitude")
PRECIP_UNITS = "mm/month"
METRE_UNITS = ("m", "metre", "metres", "meter", "meters", "m asl", "m a.s.l.")

_REGENERATE = "regenerate the dataset with `dvc repro prepare`"

#: Global attribute of ``dataset.nc``: the direction (degrees, clockwise from north) the
#: region's prevailing low-level wind blows from; the meta-learner's orographic terms use it
#: when ``meta.wind_from_deg`` is null. The synthetic generator writes it; user files do not.
PREVAILING_WIND_ATTR = "prevailing_wind_from_deg"


def valid_cells(precip: np.ndarray | xr.DataArray) -> np.ndarray:
    """Boolean ``[lat, lon]``: True for cells inside the domain.

    A cell is outside the domain iff its precipitation is NaN at every time step of the
    ``[time, lat, lon]`` array; a cell with at least one value is valid.
    """
    values = np.asarray(precip)
    if values.ndim != 3:
        raise ValueError(f"expected precip [time, lat, lon], got {values.ndim} dimensions")
    return ~np.all(np.isnan(values), axis=0)


def month_label(value: np.datetime64) -> str:
    """``YYYY-MM`` of a datetime64 value."""
    return str(np.datetime64(value, "M"))


def first_location(mask: np.ndarray, **coords: np.ndarray) -> str:
    """Describe the first True element of ``mask`` by its coordinates.

    ``coords`` gives one 1-D coordinate array per dimension of ``mask``, in order, e.g.
    ``first_location(bad, time=t, latitude=lat, longitude=lon)``.
    """
    index = tuple(int(i) for i in np.argwhere(mask)[0])
    parts = []
    for (name, values), i in zip(coords.items(), index, strict=True):
        value = np.asarray(values)[i]
        if np.issubdtype(np.asarray(values).dtype, np.datetime64):
            parts.append(f"{name} {month_label(value)}")
        else:
            parts.append(f"{name} {float(value):.4f}")
    return ", ".join(parts)


def validate_dataset(ds: xr.Dataset, source: str) -> None:
    """Raise :class:`DataError` (naming ``source``) unless ``ds`` meets SPEC §2.1.

    Checks, in order: variables and their dimensions, ascending 1-D coordinates, dtypes
    and units, month-start contiguous monthly time axis, finite non-negative
    precipitation, at least one valid cell, no NaN inside a valid cell, and an elevation
    value at every valid cell.
    """
    _check_variables(ds, source)
    for name in GRID_DIMS:
        _check_ascending(ds, name, source)
    _check_time_axis(ds, source)
    _check_dtypes_and_units(ds, source)
    _check_precip_values(ds, source)
    _check_elevation_values(ds, source)


def _check_variables(ds: xr.Dataset, source: str) -> None:
    present = ", ".join(map(str, ds.data_vars)) or "none"
    for name, dims in (("precip", PRECIP_DIMS), ("elevation", GRID_DIMS)):
        if name not in ds.data_vars:
            raise DataError(
                source,
                f"variable '{name}' is missing (data variables present: {present})",
                f"write '{name}' with dimensions {dims}; {_REGENERATE}",
            )
        if tuple(ds[name].dims) != dims:
            raise DataError(
                source,
                f"variable '{name}' has dimensions {tuple(ds[name].dims)}, expected {dims}",
                f"rename and transpose it to {dims}",
            )


def _check_ascending(ds: xr.Dataset, name: str, source: str) -> None:
    values = np.asarray(ds[name].values)
    if values.ndim != 1 or values.size == 0:
        raise DataError(
            source,
            f"coordinate '{name}' must be a non-empty 1-D axis, got shape {values.shape}",
            "store a regular latitude/longitude grid",
        )
    if values.size > 1 and not np.all(np.diff(values) > 0):
        raise DataError(
            source,
            f"coordinate '{name}' is not strictly ascending",
            f"sort the dataset with ds.sortby('{name}') and drop duplicate {name} values",
        )


def _check_time_axis(ds: xr.Dataset, source: str) -> None:
    time = np.asarray(ds["time"].values)
    if time.ndim != 1 or time.size == 0 or not np.issubdtype(time.dtype, np.datetime64):
        raise DataError(
            source,
            f"coordinate 'time' must be a non-empty 1-D datetime axis, got {time.dtype}",
            "store time as CF-encoded dates (e.g. 'days since 1980-01-01')",
        )
    months = time.astype("datetime64[M]")
    not_start = months.astype(time.dtype) != time
    if not_start.any():
        first = time[np.argmax(not_start)]
        raise DataError(
            source,
            f"{int(not_start.sum())} time stamps are not month starts (first: {first})",
            "stamp each month on its first day at 00:00",
        )
    step = np.diff(months.astype(np.int64))
    if np.any(step != 1):
        i = int(np.argmax(step != 1))
        problem = (
            f"the monthly time axis is not contiguous between {month_label(months[i])} "
            f"and {month_label(months[i + 1])}"
        )
        raise DataError(source, problem, "supply one value per month, in order, with no gaps")


def _check_dtypes_and_units(ds: xr.Dataset, source: str) -> None:
    for name in ("precip", "elevation"):
        if ds[name].dtype != np.float32:
            raise DataError(
                source,
                f"variable '{name}' has dtype {ds[name].dtype}, expected float32",
                f"cast it with ds['{name}'].astype('float32')",
            )
    units = ds["precip"].attrs.get("units")
    if units != PRECIP_UNITS:
        raise DataError(
            source,
            f"precip has units {units!r}, expected '{PRECIP_UNITS}'",
            f"convert precipitation to monthly totals and set units to '{PRECIP_UNITS}'",
        )
    elev_units = ds["elevation"].attrs.get("units")
    if elev_units is not None and str(elev_units).strip().lower() not in METRE_UNITS:
        raise DataError(
            source,
            f"elevation has units {elev_units!r}, expected metres",
            "convert elevation to metres above sea level and set units to 'm'",
        )


def _check_precip_values(ds: xr.Dataset, source: str) -> None:
    values = np.asarray(ds["precip"].values)
    coords = {d: np.asarray(ds[d].values) for d in PRECIP_DIMS}
    infinite = np.isinf(values)
    if infinite.any():
        raise DataError(
            source,
            f"precip has {int(infinite.sum())} infinite values "
            f"(first at {first_location(infinite, **coords)})",
            "replace them with valid totals or NaN for cells outside the domain",
        )
    negative = values < 0  # NaN compares False
    if negative.any():
        raise DataError(
            source,
            f"precip has {int(negative.sum())} negative values "
            f"(first at {first_location(negative, **coords)})",
            "precipitation totals must be >= 0; correct the values or mark no-data as NaN",
        )
    valid = valid_cells(values)
    if not valid.any():
        raise DataError(
            source,
            "precip is NaN everywhere, so the domain has no valid cell",
            "check the bounding box and the input file",
        )
    interior = np.isnan(values) & valid[None]
    if interior.any():
        raise DataError(
            source,
            f"precip has {int(interior.sum())} NaN values inside valid cells "
            f"(first at {first_location(interior, **coords)})",
            "fill them (data.files.fill_missing: climatology) or correct the input file",
        )


def _check_elevation_values(ds: xr.Dataset, source: str) -> None:
    elevation = np.asarray(ds["elevation"].values)
    valid = valid_cells(ds["precip"].values)
    missing = valid & ~np.isfinite(elevation)
    if missing.any():
        coords = {d: np.asarray(ds[d].values) for d in GRID_DIMS}
        raise DataError(
            source,
            f"elevation is missing at {int(missing.sum())} valid precipitation cells "
            f"(first at {first_location(missing, **coords)})",
            "use a void-filled DEM that covers every cell with precipitation data",
        )
