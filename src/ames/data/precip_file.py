"""Reading and checking the user's monthly precipitation NetCDF (SPEC §2.3, steps 1–3).

1. :func:`read_precip` picks the variable and its time/latitude/longitude dimensions,
   decodes the time stamps to months (month-start, mid-month and end-of-month stamps all
   work), requires a gap-free, duplicate-free monthly axis of at least ``min_months``
   months, wraps longitudes to −180…180, crops to the bounding box and reads only the
   cropped block, ascending in both axes.
2. :func:`to_mm_per_month` converts daily rates and mass fluxes to monthly totals.
3. :func:`check_finite`, :func:`handle_negative_values`, :func:`require_valid_cells` and
   :func:`handle_interior_nans` check the values (and fill interior NaNs with the
   calendar-month mean of the training period when ``fill_missing: climatology``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ames.data.errors import DataError
from ames.data.file_axes import (
    LAT_NAMES,
    LON_NAMES,
    MIN_TOLERANCE,
    axis_extent,
    check_degrees,
    coord_values,
    crop_indices,
    describe_extent,
    drop_singleton_dims,
    indexer,
    open_netcdf,
    pick_dim,
    require_file,
    require_unique,
    select_variable,
    wrap_lon,
)
from ames.data.files_config import BBox, FilesConfig
from ames.data.schema import PRECIP_UNITS, first_location, month_label, valid_cells

logger = logging.getLogger(__name__)

TIME_NAMES = ("time", "T", "t", "Time", "date")

# kg m-2 of water is 1 mm: CF writes a monthly total as `kg m-2` (or `kg m-2 month-1`)
MONTHLY_UNITS = (
    "mm/month",
    "mm",
    "mm month-1",
    "mm/mon",
    "mm mon-1",
    "kg m-2",
    "kg m-2 month-1",
    "kg/m2",
    "kg/m2/month",
)
DAILY_UNITS = ("mm/day", "mm d-1", "mm day-1", "mm/d")
FLUX_UNITS = ("kg m-2 s-1", "kg/m2/s", "kg m-2s-1")
SECONDS_PER_DAY = 86400.0
# values at or below this are no-data markers (-999, -9999, ...), never clipped to 0
NO_DATA_LIKE = -999.0

_EPOCH_YEAR = 1970


@dataclass(frozen=True)
class Precip:
    """Cropped precipitation: values ``[T, lat, lon]`` and its axes."""

    values: np.ndarray
    months: np.ndarray  # int64 months since 1970-01
    lat: np.ndarray
    lon: np.ndarray
    units: str | None


def read_precip(cfg: FilesConfig, box: BBox, min_months: int) -> Precip:
    """The precipitation inside ``box``, months ascending, axes ascending (step 1)."""
    path = cfg.precip_path
    require_file(path, "precip_path")
    with open_netcdf(path) as ds:
        da = select_variable(ds, cfg.precip_var, path, "precip_var")
        t_name = pick_dim(da, cfg.time_name, TIME_NAMES, "time", path)
        lat_name = pick_dim(da, cfg.lat_name, LAT_NAMES, "latitude", path)
        lon_name = pick_dim(da, cfg.lon_name, LON_NAMES, "longitude", path)
        da = drop_singleton_dims(da, (t_name, lat_name, lon_name), path)
        months = _decode_months(ds[t_name], path)
        order = _check_monthly_axis(months, path, min_months)
        lat_all = coord_values(ds, lat_name, path)
        lon_all = coord_values(ds, lon_name, path)
        check_degrees(lat_all, lon_all, path)
        lon_all = wrap_lon(lon_all)
        require_unique(lat_all, lat_name, path)
        lat_idx = crop_indices(lat_all, box.lat_min, box.lat_max)
        lon_idx = crop_indices(lon_all, box.lon_min, box.lon_max)
        if lat_idx.size == 0 or lon_idx.size == 0:
            raise DataError(
                path,
                f"the file covers {describe_extent(lat_all, lon_all)}, which does not overlap the "
                f"box ({box.describe()})",
                "use a file that covers the region or correct the bounding box in params.yaml",
            )
        _warn_partial_cover(lat_all, lon_all, box, path)
        block = da.isel(
            {t_name: indexer(order), lat_name: indexer(lat_idx), lon_name: indexer(lon_idx)}
        )
        values = np.asarray(block.transpose(t_name, lat_name, lon_name).values, dtype=np.float64)
        units = cfg.precip_units if cfg.precip_units is not None else da.attrs.get("units")
    return Precip(values, months[order], lat_all[lat_idx], lon_all[lon_idx], units)


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
            f"month {month_name(dup)} appears more than once in the time "
            "axis (each stamp is mapped to its month)",
            "keep exactly one time step per month (is this a daily or pentad file?)",
        )
    if np.any(step > 1):
        i = int(np.argmax(step > 1))
        n_missing = int(np.sum(step[step > 1] - 1))
        raise DataError(
            path,
            f"the monthly time axis has gaps: {month_name(ordered[i] + 1)}"
            f" is the first missing month ({n_missing} missing in total)",
            "supply a gap-free monthly record (fill the missing months in the file, or cut it "
            "to a contiguous period)",
        )
    if ordered.size < min_months:
        first, last = month_name(ordered[0]), month_name(ordered[-1])
        raise DataError(
            path,
            f"the file has {ordered.size} months ({first}…{last}) but the pipeline needs at "
            f"least {min_months} (input window + horizon × number of splits)",
            "supply a longer record, or shorten the input window / validation and test "
            "periods in params.yaml",
        )
    return order


def to_mm_per_month(
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


def check_finite(values: np.ndarray, precip: Precip, path: Path) -> None:
    """Raise on infinite precipitation (NaN is checked elsewhere)."""
    infinite = np.isinf(values)
    if infinite.any():
        raise DataError(
            path,
            f"precipitation has {int(infinite.sum())} infinite values "
            f"(first at {first_location(infinite, **_precip_coords(precip))})",
            "replace them with valid totals, or declare them as _FillValue if they mean no data",
        )


def handle_negative_values(
    values: np.ndarray, precip: Precip, path: Path, policy: str
) -> tuple[np.ndarray, int]:
    """``values`` with negative totals set to 0 (``policy: clip``) or raise; the count clipped.

    Gridded products interpolated from stations can carry small negative totals; a no-data
    marker such as -9999 must be declared as ``_FillValue`` instead, so it is refused even
    with ``clip`` when it is far below any plausible interpolation artefact.
    """
    negative = values < 0  # NaN compares False
    n_negative = int(negative.sum())
    if n_negative == 0:
        return values, 0
    first = tuple(np.argwhere(negative)[0])
    where = first_location(negative, **_precip_coords(precip))
    lowest = float(values[negative].min())
    if policy != "clip":
        raise DataError(
            path,
            f"precipitation has {n_negative} negative values (first: {values[first]:g} at "
            f"{where}; lowest {lowest:g})",
            "set data.files.negative_values: clip to set them to 0 (interpolation artefacts), "
            "or declare a no-data marker such as -9999 in the variable's _FillValue or "
            "missing_value attribute",
        )
    if lowest <= NO_DATA_LIKE:
        raise DataError(
            path,
            f"precipitation has negative values down to {lowest:g} (first at {where}), which "
            "look like a no-data marker, not an interpolation artefact",
            "declare the marker in the variable's _FillValue or missing_value attribute",
        )
    logger.warning(
        "%s: clipped %d negative precipitation values (lowest %g mm/month, first at %s) to 0 "
        "(data.files.negative_values: clip)",
        path,
        n_negative,
        lowest,
        where,
    )
    return np.where(negative, 0.0, values).astype(values.dtype), n_negative


def require_valid_cells(values: np.ndarray, path: Path, box: BBox) -> np.ndarray:
    """Mask ``[lat, lon]`` of the cells not NaN at every time; raises if there are none."""
    valid = valid_cells(values)
    if not valid.any():
        raise DataError(
            path,
            f"all {valid.shape[0]}×{valid.shape[1]} cells inside the box ({box.describe()}) "
            "are NaN at every time step",
            "check that the box lies over land covered by the file's data",
        )
    return valid


def handle_interior_nans(
    values: np.ndarray, valid: np.ndarray, precip: Precip, cfg: FilesConfig, fit: np.ndarray
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


def _warn_partial_cover(lat: np.ndarray, lon: np.ndarray, box: BBox, path: Path) -> None:
    lat_lo, lat_hi = axis_extent(lat)
    lon_lo, lon_hi = axis_extent(lon)
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


def month_starts(months: np.ndarray) -> np.ndarray:
    """``datetime64[M]`` of month indices (months since 1970-01)."""
    return np.asarray(months, dtype=np.int64).astype("datetime64[M]")


def month_name(month_index: int | np.integer) -> str:
    """``YYYY-MM`` of a month index (months since 1970-01)."""
    return month_label(np.datetime64(int(month_index), "M"))


def _days_in_month(months: np.ndarray) -> np.ndarray:
    start = month_starts(months)
    return ((start + 1).astype("datetime64[D]") - start.astype("datetime64[D]")).astype(np.float64)


def _precip_coords(precip: Precip) -> dict[str, np.ndarray]:
    return {"time": month_starts(precip.months), "latitude": precip.lat, "longitude": precip.lon}
