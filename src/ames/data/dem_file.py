"""Reading the user's DEM and regridding it to the precipitation cells (SPEC §2.3, step 4).

The DEM (NetCDF, or GeoTIFF through the optional ``rioxarray``) must cover the cropped
grid; it is cropped (either latitude order, longitudes −180…180 or 0…360), then regridded
to the precipitation cells: a DEM finer than the grid is area-averaged (the NaN-aware mean
of the DEM pixels whose centres fall inside each cell), a DEM as coarse or coarser is
interpolated bilinearly to the cell centres (nearest neighbour where a bilinear neighbour
is NaN). The DEM must have a value at every valid cell.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ames.data.errors import DataError
from ames.data.file_axes import (
    LAT_NAMES,
    LON_NAMES,
    MIN_TOLERANCE,
    axis_extent,
    axis_spacing,
    check_degrees,
    coord_values,
    crop_indices,
    describe_extent,
    describe_vars,
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
from ames.data.schema import GRID_DIMS, METRE_UNITS, first_location

logger = logging.getLogger(__name__)

DEM_VAR_NAMES = ("elevation", "z", "Band1", "band_data", "elev", "altitude", "height", "dem")
GEOTIFF_SUFFIXES = (".tif", ".tiff")

#: How the DEM reaches the precipitation grid (``dem_regrid_method`` attribute).
REGRID_METHODS = {
    "area_mean": "mean of the DEM pixels whose centres lie inside each cell (DEM finer)",
    "bilinear": "bilinear to the cell centres, nearest where a neighbour is NaN (DEM as coarse "
    "or coarser)",
}
FINER_TOLERANCE = 1e-6  # relative: a DEM at the grid's own spacing is sampled, not averaged


@dataclass(frozen=True)
class Dem:
    """Elevation ``[lat, lon]`` (m) on the precipitation grid and how it got there."""

    elevation: np.ndarray
    var: str
    method: str  # one of REGRID_METHODS
    spacing_deg: tuple[float, float]  # the DEM's (latitude, longitude) pixel spacing


def read_dem(
    cfg: FilesConfig, lat: np.ndarray, lon: np.ndarray, valid: np.ndarray, box: BBox
) -> Dem:
    """Elevation on the precipitation cells: area mean if the DEM is finer, else bilinear."""
    path = cfg.dem_path
    require_file(path, "dem_path")
    with _open_dem(path, cfg) as (dem, dem_var):
        dem_lat = coord_values(dem, "latitude", path)
        dem_lon = coord_values(dem, "longitude", path)
        check_degrees(dem_lat, dem_lon, path)
        dem_lon = wrap_lon(dem_lon)
        require_unique(dem_lat, "latitude", path)
        _check_dem_covers(dem_lat, dem_lon, lat, lon, box, path)
        window = _dem_window(dem, dem_lat, dem_lon, lat, lon)
    spacing = (axis_spacing(window["latitude"].values), axis_spacing(window["longitude"].values))
    method = _regrid_method(spacing, (axis_spacing(lat), axis_spacing(lon)))
    logger.info(
        "%s: DEM pixels %.4g° × %.4g° on a %.4g° × %.4g° grid: %s",
        path,
        *spacing,
        axis_spacing(lat),
        axis_spacing(lon),
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
    return Dem(elevation, dem_var, method, spacing)


def _dem_window(
    dem: xr.DataArray, dem_lat: np.ndarray, dem_lon: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> xr.DataArray:
    """The DEM over the grid's cells plus two DEM pixels, ascending, as float64.

    Cells reach half a grid spacing beyond the outermost centres, and area averaging needs
    every pixel inside them.
    """
    half_lat, half_lon = 0.5 * axis_spacing(lat), 0.5 * axis_spacing(lon)
    lat_idx = crop_indices(dem_lat, lat.min() - half_lat, lat.max() + half_lat, margin_cells=2.0)
    lon_idx = crop_indices(dem_lon, lon.min() - half_lon, lon.max() + half_lon, margin_cells=2.0)
    block = dem.isel(latitude=indexer(lat_idx), longitude=indexer(lon_idx))
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
    with open_netcdf(path) as ds:
        name = _dem_variable_name(ds, cfg.dem_var, path)
        da = ds[name]
        lat_name = pick_dim(da, None, _with_first(cfg.lat_name, LAT_NAMES), "latitude", path)
        lon_name = pick_dim(da, None, _with_first(cfg.lon_name, LON_NAMES), "longitude", path)
        da = drop_singleton_dims(da, (lat_name, lon_name), path)
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
        select_variable(ds, configured, path, "dem_var")
        return configured
    gridded = [str(v) for v in ds.data_vars if ds[v].ndim >= 2]
    if len(gridded) == 1:
        return gridded[0]
    for name in DEM_VAR_NAMES:
        if name in gridded:
            return name
    raise DataError(
        path,
        f"cannot tell which variable is the elevation (data variables: {describe_vars(ds)})",
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
    lat_lo, lat_hi = axis_extent(dem_lat)
    lon_lo, lon_hi = axis_extent(dem_lon)
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
            f"({box.describe()}) spans {describe_extent(lat, lon)}",
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
    half = 0.5 * axis_spacing(centres)
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


def _with_first(name: str | None, candidates: tuple[str, ...]) -> tuple[str, ...]:
    return candidates if name is None else (name, *candidates)
