"""User data mode (SPEC §2.3): loading a CHIRPS-style NetCDF + DEM, and the §2.1 schema."""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ames.config import ConfigError
from ames.data.errors import DataError
from ames.data.files import load_user_data
from ames.data.files_config import parse_bbox
from ames.data.schema import valid_cells, validate_dataset

# Regional source grid (0.25°) larger than the box; the box selects 5 × 5 cell centres.
LAT = np.round(np.arange(3.0, 6.0001, 0.25), 4)
LON = np.round(np.arange(-76.0, -72.9999, 0.25), 4)
BOX = {"lat_min": 4.0, "lat_max": 5.0, "lon_min": -75.0, "lon_max": -74.0}
BOX_LAT = np.round(np.arange(4.0, 5.0001, 0.25), 4)
BOX_LON = np.round(np.arange(-75.0, -73.9999, 0.25), 4)
N_MONTHS = 36
MIN_MONTHS = 24


def elevation_formula(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A plane, so bilinear interpolation reproduces it exactly."""
    return 1000.0 + 400.0 * lat[:, None] + 300.0 * (lon[None, :] + 75.0)


def precip_ds(
    lat: np.ndarray = LAT,
    lon: np.ndarray = LON,
    n_months: int = N_MONTHS,
    units: str | None = "mm/month",
    seed: int = 0,
) -> xr.Dataset:
    time = pd.date_range("2000-01-01", periods=n_months, freq="MS")
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, 50.0, size=(n_months, lat.size, lon.size)).astype(np.float32)
    attrs = {} if units is None else {"units": units}
    da = xr.DataArray(
        values,
        dims=("time", "latitude", "longitude"),
        coords={"time": time, "latitude": lat, "longitude": lon},
        attrs=attrs,
    )
    return da.to_dataset(name="precip")


def dem_ds(step: float = 0.1, lat_range=(2.0, 7.0), lon_range=(-77.0, -72.0)) -> xr.Dataset:
    lat = np.round(np.arange(lat_range[0], lat_range[1] + 1e-9, step), 6)
    lon = np.round(np.arange(lon_range[0], lon_range[1] + 1e-9, step), 6)
    elev = elevation_formula(lat, lon).astype(np.float32)
    da = xr.DataArray(
        elev,
        dims=("lat", "lon"),
        coords={"lat": lat, "lon": lon},
        attrs={"units": "m"},
    )
    return da.to_dataset(name="z")


def write(ds: xr.Dataset, path: Path) -> Path:
    ds.to_netcdf(path)
    return path


def load(
    tmp_path: Path,
    precip: xr.Dataset | None = None,
    dem: xr.Dataset | None = None,
    box: dict | None = None,
    min_months: int = MIN_MONTHS,
    **cfg,
) -> xr.Dataset:
    cfg.setdefault(
        "precip_path", str(write(precip if precip is not None else precip_ds(), tmp_path / "p.nc"))
    )
    cfg.setdefault("dem_path", str(write(dem if dem is not None else dem_ds(), tmp_path / "d.nc")))
    return load_user_data(cfg, box or BOX, min_months)


def expect_error(tmp_path: Path, path_name: str, *fragments: str, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        load(tmp_path, **kwargs)
    message = str(info.value)
    assert path_name in message, message
    assert "Fix: " in message and len(info.value.fix) > 10, message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


# ------------------------------------------------------------------------------ loading


def test_regional_file_is_cropped_to_the_box(tmp_path: Path) -> None:
    source = precip_ds()
    ds = load(tmp_path, precip=source)
    assert ds["precip"].dims == ("time", "latitude", "longitude")
    assert ds["precip"].dtype == np.float32
    assert ds["precip"].attrs["units"] == "mm/month"
    assert ds["elevation"].dtype == np.float32
    np.testing.assert_allclose(ds["latitude"], BOX_LAT)
    np.testing.assert_allclose(ds["longitude"], BOX_LON)
    expected = source["precip"].sel(latitude=BOX_LAT, longitude=BOX_LON).values
    np.testing.assert_array_equal(ds["precip"].values, expected)
    np.testing.assert_allclose(
        ds["elevation"].values, elevation_formula(BOX_LAT, BOX_LON), rtol=1e-5
    )
    assert ds.sizes["time"] == N_MONTHS
    assert str(ds["time"].values[0])[:10] == "2000-01-01"
    validate_dataset(ds, "loaded")


def test_provenance_attributes(tmp_path: Path) -> None:
    ds = load(tmp_path)
    digest = hashlib.sha256((tmp_path / "p.nc").read_bytes()).hexdigest()
    assert ds.attrs["source"] == "files"
    assert ds.attrs["precip_sha256"] == digest
    assert ds.attrs["precip_file"].endswith("p.nc")
    assert ds.attrs["dem_file"].endswith("d.nc")
    assert ds.attrs["dem_var"] == "z"
    assert ds.attrs["precip_var"] == "precip"
    assert "lat_min=4" in ds.attrs["bbox"]
    assert ds.attrs["fill_missing"] == "none"


def test_box_given_by_cell_edges_selects_the_same_cells(tmp_path: Path) -> None:
    edges = {"lat_min": 3.875, "lat_max": 5.125, "lon_min": -75.125, "lon_max": -73.875}
    ds = load(tmp_path, box=edges)
    np.testing.assert_allclose(ds["latitude"], BOX_LAT)
    np.testing.assert_allclose(ds["longitude"], BOX_LON)


def test_descending_latitude_is_flipped(tmp_path: Path) -> None:
    source = precip_ds()
    flipped = source.isel(latitude=slice(None, None, -1))
    ds = load(tmp_path, precip=flipped)
    np.testing.assert_allclose(ds["latitude"], BOX_LAT)
    expected = source["precip"].sel(latitude=BOX_LAT, longitude=BOX_LON).values
    np.testing.assert_array_equal(ds["precip"].values, expected)


def test_global_0_360_file_is_wrapped_sorted_and_cropped(tmp_path: Path) -> None:
    lat = np.arange(-10.0, 10.01, 1.0)
    lon = np.arange(0.0, 360.0, 1.0)
    source = precip_ds(lat=lat, lon=lon, n_months=MIN_MONTHS)
    dem = dem_ds(step=0.5, lat_range=(-20.0, 20.0), lon_range=(0.0, 359.5))
    # the plane formula is not periodic, so give the wrapped DEM a periodic elevation
    dem["z"] = xr.full_like(dem["z"], 500.0)
    box = {"lat_min": -2, "lat_max": 2, "lon_min": -2, "lon_max": 2}
    ds = load(tmp_path, precip=source, dem=dem, box=box)
    np.testing.assert_allclose(ds["longitude"], [-2, -1, 0, 1, 2])
    np.testing.assert_allclose(ds["latitude"], [-2, -1, 0, 1, 2])
    expected = source["precip"].sel(latitude=[-2, -1, 0, 1, 2], longitude=[358, 359, 0, 1, 2])
    np.testing.assert_array_equal(ds["precip"].values, expected.values)
    np.testing.assert_allclose(ds["elevation"].values, 500.0)


def test_box_in_0_360_is_accepted() -> None:
    box = parse_bbox({"lat_min": 4, "lat_max": 5, "lon_min": 285, "lon_max": 286})
    assert (box.lon_min, box.lon_max) == (-75.0, -74.0)


def test_lat_lon_and_T_names_are_detected(tmp_path: Path) -> None:
    source = precip_ds().rename({"latitude": "lat", "longitude": "lon", "time": "T"})
    ds = load(tmp_path, precip=source)
    assert set(ds.dims) == {"time", "latitude", "longitude"}
    np.testing.assert_allclose(ds["latitude"], BOX_LAT)


def test_configured_names_are_used(tmp_path: Path) -> None:
    source = precip_ds().rename(
        {"latitude": "northing", "longitude": "easting", "time": "month", "precip": "rain"}
    )
    ds = load(
        tmp_path,
        precip=source,
        precip_var="rain",
        lat_name="northing",
        lon_name="easting",
        time_name="month",
    )
    np.testing.assert_allclose(ds["longitude"], BOX_LON)
    assert ds.attrs["precip_var"] == "rain"


def test_ocean_cells_are_masked_not_an_error(tmp_path: Path) -> None:
    source = precip_ds()
    dem = dem_ds(step=0.25)  # DEM nodes on the precipitation centres
    source["precip"].loc[dict(longitude=[-75.0, -74.75])] = np.nan
    dem["z"].loc[dict(lon=-75.0)] = np.nan  # DEM void over the ocean column only
    ds = load(tmp_path, precip=source, dem=dem)
    valid = valid_cells(ds["precip"].values)
    assert not valid[:, :2].any() and valid[:, 2:].all()
    assert np.isnan(ds["precip"].values[:, :, :2]).all()
    # valid cells next to the DEM void still get an elevation (nearest where bilinear is NaN)
    assert np.isfinite(ds["elevation"].values[:, 2:]).all()


@pytest.mark.parametrize("offset", ["mid", "end"])
def test_mid_and_end_of_month_stamps_become_month_starts(tmp_path: Path, offset: str) -> None:
    source = precip_ds()
    starts = pd.DatetimeIndex(source["time"].values)
    if offset == "mid":
        stamps = starts + pd.Timedelta(days=14, hours=12)
    else:
        stamps = starts + pd.offsets.MonthEnd(0)
    ds = load(tmp_path, precip=source.assign_coords(time=stamps))
    np.testing.assert_array_equal(ds["time"].values, starts.values)


def test_months_since_time_axis(tmp_path: Path) -> None:
    """IRI-style: 'months since 1960-01-01' with mid-month values and a 360_day calendar."""
    source = precip_ds()
    t = (2000 - 1960) * 12 + np.arange(N_MONTHS) + 0.5
    source = source.assign_coords(
        time=("time", t, {"units": "months since 1960-01-01", "calendar": "360_day"})
    )
    ds = load(tmp_path, precip=source)
    assert str(ds["time"].values[0])[:10] == "2000-01-01"
    assert str(ds["time"].values[-1])[:10] == "2002-12-01"


def test_noleap_calendar_time_axis(tmp_path: Path) -> None:
    cftime = pytest.importorskip("cftime")
    source = precip_ds()
    dates = [cftime.DatetimeNoLeap(2000 + i // 12, i % 12 + 1, 15) for i in range(N_MONTHS)]
    days = cftime.date2num(dates, "days since 1990-01-01", calendar="noleap")
    source = source.assign_coords(
        time=("time", days, {"units": "days since 1990-01-01", "calendar": "noleap"})
    )
    ds = load(tmp_path, precip=source)
    expected = pd.date_range("2000-01-01", periods=N_MONTHS, freq="MS").values
    np.testing.assert_array_equal(ds["time"].values, expected)


def test_float32_coordinates_are_cleaned(tmp_path: Path) -> None:
    lat = np.round(np.arange(4.025, 5.0, 0.05), 3).astype(np.float32)
    lon = np.round(np.arange(-74.975, -74.0, 0.05), 3).astype(np.float32)
    ds = load(tmp_path, precip=precip_ds(lat=lat, lon=lon))
    assert float(ds["latitude"][0]) == 4.025
    assert float(ds["longitude"][0]) == -74.975


@pytest.mark.parametrize(
    ("units", "factor_jan", "factor_feb"),
    [
        ("mm/day", 31.0, 29.0),
        ("mm d-1", 31.0, 29.0),
        ("kg m-2 s-1", 31 * 86400.0, 29 * 86400.0),
        ("mm month-1", 1.0, 1.0),
        ("mm", 1.0, 1.0),
        ("kg m-2", 1.0, 1.0),
        ("kg m-2 month-1", 1.0, 1.0),
    ],
)
def test_units_are_converted_to_mm_per_month(
    tmp_path: Path, units: str, factor_jan: float, factor_feb: float
) -> None:
    source = precip_ds(units=units)
    ds = load(tmp_path, precip=source)
    raw = source["precip"].sel(latitude=BOX_LAT, longitude=BOX_LON).values.astype(np.float64)
    np.testing.assert_allclose(ds["precip"].values[0], raw[0] * factor_jan, rtol=1e-6)
    np.testing.assert_allclose(ds["precip"].values[1], raw[1] * factor_feb, rtol=1e-6)
    assert ds["precip"].attrs["units"] == "mm/month"
    assert ds["precip"].attrs["source_units"] == units


def test_missing_units_are_assumed_monthly_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ames.data.precip_file"):
        ds = load(tmp_path, precip=precip_ds(units=None))
    assert "no 'units' attribute" in caplog.text
    assert ds["precip"].attrs["units"] == "mm/month"


def test_configured_units_override_the_file(tmp_path: Path) -> None:
    source = precip_ds(units="furlongs")
    ds = load(tmp_path, precip=source, precip_units="mm/day")
    raw = source["precip"].sel(latitude=BOX_LAT, longitude=BOX_LON).values[0]
    np.testing.assert_allclose(ds["precip"].values[0], raw * 31.0, rtol=1e-6)


def test_fill_missing_climatology_uses_the_cells_calendar_month_mean(tmp_path: Path) -> None:
    source = precip_ds()
    cell = dict(latitude=4.5, longitude=-74.5)
    series = source["precip"].sel(**cell).values.astype(np.float64)
    source["precip"].loc[dict(time="2001-03-01", **cell)] = np.nan
    ds = load(tmp_path, precip=source, fill_missing="climatology")
    march = [series[2], series[26]]  # 2000-03 and 2002-03
    filled = float(ds["precip"].sel(time="2001-03-01", **cell))
    assert filled == pytest.approx(np.mean(march), rel=1e-6)
    assert ds.attrs["n_filled_values"] == 1
    assert ds.attrs["fill_missing"] == "climatology"


def test_fill_missing_climatology_ignores_the_holdout_months(tmp_path: Path) -> None:
    source = precip_ds()
    cell = dict(latitude=4.5, longitude=-74.5)
    series = source["precip"].sel(**cell).values.astype(np.float64)
    source["precip"].loc[dict(time="2001-03-01", **cell)] = np.nan
    cfg = {
        "precip_path": str(write(source, tmp_path / "p.nc")),
        "dem_path": str(write(dem_ds(), tmp_path / "d.nc")),
        "fill_missing": "climatology",
    }
    holdout = source.sizes["time"] - 24  # only 2000 and 2001 may inform the fill
    ds = load_user_data(cfg, BOX, MIN_MONTHS, holdout_months=holdout)
    filled = float(ds["precip"].sel(time="2001-03-01", **cell))
    assert filled == pytest.approx(series[2], rel=1e-6)  # 2000-03 only, not 2002-03


# ---------------------------------------------------------------------------- GeoTIFF


def geotiff_dem(tmp_path: Path, crs: str = "EPSG:4326") -> Path:
    pytest.importorskip("rioxarray")
    dem = dem_ds()["z"].rename({"lat": "y", "lon": "x"})
    dem = dem.isel(y=slice(None, None, -1))  # north-up, as GeoTIFFs are stored
    dem = dem.rio.write_crs(crs)
    path = tmp_path / "dem.tif"
    dem.rio.to_raster(path)
    return path


def test_geotiff_dem(tmp_path: Path) -> None:
    path = geotiff_dem(tmp_path)
    ds = load(tmp_path, dem_path=str(path))
    np.testing.assert_allclose(
        ds["elevation"].values, elevation_formula(BOX_LAT, BOX_LON), rtol=1e-5
    )
    assert ds.attrs["dem_file"].endswith("dem.tif")


def test_geotiff_in_projected_crs_is_rejected(tmp_path: Path) -> None:
    path = geotiff_dem(tmp_path, crs="EPSG:3857")
    expect_error(tmp_path, "dem.tif", "projected", "gdalwarp", dem_path=str(path))


def test_geotiff_without_rioxarray_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dem.tif"
    path.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "rioxarray", None)  # import now raises ImportError
    expect_error(
        tmp_path, "dem.tif", "rioxarray", "pip install 'ames[geotiff]'", dem_path=str(path)
    )


# ---------------------------------------------------------------------- DEM regridding


def fine_dem(step: float = 0.05, seed: int = 1) -> xr.Dataset:
    """A rough 0.05° DEM (5 × 5 pixels per 0.25° cell), pixel centres never on a cell edge."""
    lat = np.round(np.arange(3.0, 6.0 + 1e-9, step), 6)
    lon = np.round(np.arange(-76.0, -73.0 + 1e-9, step), 6)
    rng = np.random.default_rng(seed)
    elev = rng.uniform(0.0, 4000.0, size=(lat.size, lon.size))
    da = xr.DataArray(elev, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    return da.assign_attrs(units="m").to_dataset(name="z")


def block_means(dem: xr.DataArray, lat: np.ndarray, lon: np.ndarray, half: float) -> np.ndarray:
    """Reference: NaN-aware mean of the pixels within ``half`` degrees of each centre."""
    out = np.empty((lat.size, lon.size))
    for i, la in enumerate(lat):
        for j, lo in enumerate(lon):
            rows = np.abs(dem["lat"].values - la) < half
            cols = np.abs(dem["lon"].values - lo) < half
            out[i, j] = np.nanmean(dem.values[np.ix_(rows, cols)])
    return out


def test_finer_dem_is_area_averaged_onto_the_cells(tmp_path: Path) -> None:
    dem = fine_dem()
    ds = load(tmp_path, dem=dem)
    expected = block_means(dem["z"], BOX_LAT, BOX_LON, half=0.125)
    np.testing.assert_allclose(ds["elevation"].values, expected, rtol=1e-6)
    assert ds.attrs["dem_regrid_method"] == "area_mean"
    assert "mean of the DEM pixels" in ds["elevation"].attrs["regridding"]
    point = dem["z"].sel(lat=BOX_LAT, lon=BOX_LON).values  # what point sampling would give
    assert np.abs(ds["elevation"].values - point).max() > 100.0


def test_area_mean_with_descending_latitude_0_360_longitude_and_voids(tmp_path: Path) -> None:
    dem = fine_dem()
    dem["z"].loc[dict(lat=4.05, lon=-74.55)] = np.nan  # one void pixel inside a cell
    expected = block_means(dem["z"], BOX_LAT, BOX_LON, half=0.125)
    flipped = dem.isel(lat=slice(None, None, -1)).assign_coords(lon=dem["lon"].values + 360.0)
    ds = load(tmp_path, dem=flipped)
    np.testing.assert_allclose(ds["elevation"].values, expected, rtol=1e-6)
    assert np.isfinite(ds["elevation"].values).all()


def test_coarser_dem_is_interpolated_bilinearly(tmp_path: Path) -> None:
    ds = load(tmp_path, dem=dem_ds(step=0.5))
    np.testing.assert_allclose(
        ds["elevation"].values, elevation_formula(BOX_LAT, BOX_LON), rtol=1e-5
    )
    assert ds.attrs["dem_regrid_method"] == "bilinear"


def test_dem_at_the_grid_spacing_is_sampled_not_averaged(tmp_path: Path) -> None:
    dem = fine_dem(step=0.25)
    ds = load(tmp_path, dem=dem)
    assert ds.attrs["dem_regrid_method"] == "bilinear"
    np.testing.assert_allclose(
        ds["elevation"].values, dem["z"].sel(lat=BOX_LAT, lon=BOX_LON).values, rtol=1e-6
    )


# ------------------------------------------------------------------------------ errors


def test_missing_precip_file(tmp_path: Path) -> None:
    expect_error(tmp_path, "absent.nc", "not found", precip_path=str(tmp_path / "absent.nc"))


def test_missing_dem_file(tmp_path: Path) -> None:
    expect_error(tmp_path, "nodem.nc", "not found", dem_path=str(tmp_path / "nodem.nc"))


def test_relative_paths_resolve_from_root(tmp_path: Path) -> None:
    write(precip_ds(), tmp_path / "p.nc")
    write(dem_ds(), tmp_path / "d.nc")
    ds = load_user_data({"precip_path": "p.nc", "dem_path": "d.nc"}, BOX, MIN_MONTHS, tmp_path)
    assert ds.attrs["precip_file"] == "p.nc"


def test_file_that_is_not_netcdf(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.nc"
    bad.write_text("this is not a NetCDF file")
    expect_error(tmp_path, "garbage.nc", "cannot be read", precip_path=str(bad))


def test_missing_precip_variable_lists_what_is_there(tmp_path: Path) -> None:
    source = precip_ds().rename({"precip": "pr"})
    err = expect_error(tmp_path, "p.nc", "'precip' not found", "pr(", precip=source)
    assert "precip_var" in err.fix


def test_missing_dem_variable_lists_what_is_there(tmp_path: Path) -> None:
    expect_error(tmp_path, "d.nc", "'height' not found", "z(", dem_var="height")


def test_ambiguous_dem_variable(tmp_path: Path) -> None:
    dem = dem_ds().rename({"z": "a"})
    dem["b"] = dem["a"] * 2
    err = expect_error(tmp_path, "d.nc", "which variable is the elevation", dem=dem)
    assert "dem_var" in err.fix


def test_undetectable_dimension(tmp_path: Path) -> None:
    source = precip_ds().rename({"latitude": "row"})
    err = expect_error(tmp_path, "p.nc", "latitude", "row", precip=source)
    assert "lat_name" in err.fix


def test_no_overlap_with_the_box_names_both_extents(tmp_path: Path) -> None:
    far = {"lat_min": 40, "lat_max": 41, "lon_min": 10, "lon_max": 11}
    expect_error(
        tmp_path,
        "p.nc",
        "does not overlap",
        "latitude 3.0000…6.0000",
        "latitude 40…41",
        box=far,
    )


def test_too_few_months(tmp_path: Path) -> None:
    expect_error(tmp_path, "p.nc", "has 36 months", "at least 60", "2000-01…2002-12", min_months=60)


def test_gap_in_time_axis_names_the_first_missing_month(tmp_path: Path) -> None:
    source = precip_ds().drop_sel(time=[np.datetime64("2001-05-01"), np.datetime64("2001-06-01")])
    expect_error(tmp_path, "p.nc", "gaps", "2001-05", "2 missing", precip=source)


def test_duplicate_months(tmp_path: Path) -> None:
    source = precip_ds()
    stamps = pd.DatetimeIndex(source["time"].values).to_numpy().copy()
    stamps[5] = stamps[4] + np.timedelta64(10, "D")  # two stamps in 2000-05
    expect_error(
        tmp_path, "p.nc", "2000-05", "more than once", precip=source.assign_coords(time=stamps)
    )


def test_negative_precipitation_reports_count_and_first_location(tmp_path: Path) -> None:
    source = precip_ds()
    source["precip"].loc[dict(time="2000-03-01", latitude=4.25, longitude=-74.5)] = -5.0
    source["precip"].loc[dict(time="2001-03-01", latitude=4.5, longitude=-74.5)] = -1.0
    source["precip"].loc[dict(time="2001-03-01", latitude=3.0, longitude=-76.0)] = -9.0  # outside
    expect_error(
        tmp_path,
        "p.nc",
        "2 negative values",
        "time 2000-03, latitude 4.2500, longitude -74.5000",
        "_FillValue",
        "negative_values: clip",
        precip=source,
    )


def test_negative_precipitation_is_clipped_and_counted_when_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = precip_ds()
    source["precip"].loc[dict(time="2000-03-01", latitude=4.25, longitude=-74.5)] = -5.0
    source["precip"].loc[dict(time="2001-03-01", latitude=4.5, longitude=-74.5)] = -0.3
    source["precip"].loc[dict(time="2001-03-01", latitude=3.0, longitude=-76.0)] = -9.0  # outside
    with caplog.at_level("WARNING"):
        ds = load(tmp_path, precip=source, negative_values="clip")
    assert ds.attrs["negative_values"] == "clip"
    assert ds.attrs["n_clipped_negative_values"] == 2
    assert "clipped 2 negative precipitation values" in caplog.text
    clipped = ds["precip"].sel(time=["2000-03-01", "2001-03-01"], latitude=[4.25, 4.5])
    assert float(clipped.sel(longitude=-74.5).min()) == 0.0
    assert float(ds["precip"].min()) >= 0.0
    (tmp_path / "again").mkdir()
    untouched = load(tmp_path / "again", precip=precip_ds(), negative_values="clip")
    assert untouched.attrs["n_clipped_negative_values"] == 0


def test_a_no_data_marker_is_not_clipped(tmp_path: Path) -> None:
    source = precip_ds()
    source["precip"].loc[dict(time="2000-03-01", latitude=4.25, longitude=-74.5)] = -9999.0
    expect_error(tmp_path, "p.nc", "-9999", "no-data marker", precip=source, negative_values="clip")


def test_unknown_negative_values_policy_names_the_key_and_the_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(data\.files\.negative_values\): 'drop'.*error, clip"):
        load(tmp_path, negative_values="drop")


def test_files_and_box_errors_carry_their_key_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, fill_missing="mean")
    assert info.value.path == "data.files.fill_missing"
    with pytest.raises(ConfigError) as info:
        load(tmp_path, box={"lat_min": 5, "lat_max": 4, "lon_min": 0, "lon_max": 1})
    assert info.value.path == "data.bbox" and "ascending" in info.value.detail


def test_dem_that_does_not_cover_the_box(tmp_path: Path) -> None:
    dem = dem_ds(lat_range=(4.5, 7.0))
    expect_error(tmp_path, "d.nc", "DEM covers latitude 4.4500…7.0500", "4.0000…5.0000", dem=dem)


def test_dem_void_over_valid_precipitation(tmp_path: Path) -> None:
    dem = dem_ds()
    dem["z"].loc[dict(lat=slice(4.3, 4.7), lon=slice(-74.7, -74.3))] = np.nan
    err = expect_error(tmp_path, "d.nc", "no value at", "valid", dem=dem)
    assert "void-filled" in err.fix


def test_interior_nan_without_fill_option(tmp_path: Path) -> None:
    source = precip_ds()
    source["precip"].loc[dict(time="2001-07-01", latitude=4.75, longitude=-74.25)] = np.nan
    err = expect_error(
        tmp_path,
        "p.nc",
        "1 NaN values inside 1 otherwise valid cells",
        "time 2001-07, latitude 4.7500, longitude -74.2500",
        precip=source,
    )
    assert "fill_missing: climatology" in err.fix


def test_fill_impossible_when_a_calendar_month_is_all_nan(tmp_path: Path) -> None:
    source = precip_ds()
    march = pd.DatetimeIndex(source["time"].values).month == 3
    source["precip"].loc[dict(time=march, latitude=4.75, longitude=-74.25)] = np.nan
    expect_error(tmp_path, "p.nc", "cannot be filled", precip=source, fill_missing="climatology")


def test_box_all_nan(tmp_path: Path) -> None:
    source = precip_ds()
    source["precip"].loc[dict(latitude=slice(3.9, 5.1))] = np.nan
    expect_error(tmp_path, "p.nc", "NaN at every time step", precip=source)


def test_unknown_units_name_the_accepted_ones(tmp_path: Path) -> None:
    err = expect_error(
        tmp_path, "p.nc", "'inches' are not recognised", precip=precip_ds(units="inches")
    )
    assert "'mm/month'" in err.fix and "'mm/day'" in err.fix and "'kg m-2 s-1'" in err.fix


def test_dem_in_feet_is_rejected(tmp_path: Path) -> None:
    dem = dem_ds()
    dem["z"].attrs["units"] = "ft"
    expect_error(tmp_path, "d.nc", "'ft'", "metres", dem=dem)


@pytest.mark.parametrize(
    ("cfg", "key", "fragment"),
    [
        ({"colour": "blue"}, "data.files", "unknown key(s) colour"),
        ({"fill_missing": "zero"}, "data.files.fill_missing", "none, climatology"),
    ],
)
def test_bad_config_names_params_yaml_and_the_key(
    tmp_path: Path, cfg: dict, key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **cfg)
    message = str(info.value)
    assert message.startswith(f"params.yaml ({key}): "), message
    assert info.value.path == key and fragment in message, message


def test_bad_bbox(tmp_path: Path) -> None:
    box = {"lat_min": 5, "lat_max": 4, "lon_min": -75, "lon_max": -74}
    with pytest.raises(ConfigError, match=r"^params\.yaml \(data\.bbox\): latitudes .*ascending"):
        load(tmp_path, box=box)


def test_projected_coordinates_are_rejected(tmp_path: Path) -> None:
    dem = dem_ds()
    dem = dem.assign_coords(lat=dem["lat"] * 111_000.0, lon=dem["lon"] * 111_000.0)
    expect_error(tmp_path, "d.nc", "not degrees", "reproject", dem=dem)


def test_extra_dimension_of_size_one_is_dropped(tmp_path: Path) -> None:
    source = precip_ds().expand_dims(level=[0]).transpose("time", "level", "latitude", "longitude")
    ds = load(tmp_path, precip=source)
    assert ds["precip"].dims == ("time", "latitude", "longitude")


def test_any_grid_size(tmp_path: Path) -> None:
    lat = np.round(np.arange(3.0, 6.0001, 0.05), 4)
    lon = np.round(np.arange(-76.0, -72.9999, 0.05), 4)
    box = {"lat_min": 3.5, "lat_max": 4.0, "lon_min": -75.0, "lon_max": -74.0}
    ds = load(tmp_path, precip=precip_ds(lat=lat, lon=lon, n_months=MIN_MONTHS), box=box)
    assert ds["precip"].shape == (MIN_MONTHS, 11, 21)


# ------------------------------------------------------------------------------ schema


def good_dataset() -> xr.Dataset:
    time = pd.date_range("2000-01-01", periods=24, freq="MS")
    lat, lon = np.array([1.0, 2.0, 3.0]), np.array([10.0, 11.0])
    precip = np.full((24, 3, 2), 100.0, dtype=np.float32)
    precip[:, 0, 0] = np.nan  # an ocean cell
    elevation = np.full((3, 2), 1500.0, dtype=np.float32)
    elevation[0, 0] = np.nan  # fine outside the domain
    return xr.Dataset(
        {
            "precip": (("time", "latitude", "longitude"), precip, {"units": "mm/month"}),
            "elevation": (("latitude", "longitude"), elevation, {"units": "m"}),
        },
        coords={"time": time, "latitude": lat, "longitude": lon},
    )


def _set(var: str, index: tuple, value: float) -> Callable[[xr.Dataset], xr.Dataset]:
    def mutate(ds: xr.Dataset) -> xr.Dataset:
        ds[var].values[index] = value
        return ds

    return mutate


SCHEMA_PROBLEMS: dict[str, tuple[Callable[[xr.Dataset], xr.Dataset], str]] = {
    "no precip": (lambda ds: ds.drop_vars("precip"), "'precip' is missing"),
    "no elevation": (lambda ds: ds.drop_vars("elevation"), "'elevation' is missing"),
    "precip dims": (
        lambda ds: ds.transpose("time", "longitude", "latitude"),
        "has dimensions",
    ),
    "descending latitude": (
        lambda ds: ds.isel(latitude=slice(None, None, -1)),
        "'latitude' is not strictly ascending",
    ),
    "not month starts": (
        lambda ds: ds.assign_coords(time=ds["time"].values + np.timedelta64(14, "D")),
        "not month starts",
    ),
    "gap": (lambda ds: ds.drop_isel(time=5), "not contiguous between 2000-05 and 2000-07"),
    "float64": (lambda ds: ds.assign(precip=ds["precip"].astype(np.float64)), "dtype float64"),
    "units": (
        lambda ds: ds.assign(precip=ds["precip"].assign_attrs(units="mm/day")),
        "units 'mm/day'",
    ),
    "elevation units": (
        lambda ds: ds.assign(elevation=ds["elevation"].assign_attrs(units="km")),
        "elevation has units 'km'",
    ),
    "negative": (_set("precip", (3, 1, 1), -1.0), "1 negative values"),
    "infinite": (_set("precip", (3, 1, 1), np.inf), "infinite"),
    "interior nan": (_set("precip", (3, 1, 1), np.nan), "NaN values inside valid cells"),
    "all nan": (lambda ds: ds.assign(precip=ds["precip"] * np.nan), "no valid cell"),
    "elevation nan": (_set("elevation", (2, 1), np.nan), "elevation is missing at 1"),
}


def test_validate_accepts_a_good_dataset() -> None:
    validate_dataset(good_dataset(), "dataset.nc")


@pytest.mark.parametrize("problem", sorted(SCHEMA_PROBLEMS))
def test_validate_rejects(problem: str) -> None:
    mutate, fragment = SCHEMA_PROBLEMS[problem]
    with pytest.raises(DataError) as info:
        validate_dataset(mutate(good_dataset()), "dataset.nc")
    message = str(info.value)
    assert message.startswith("dataset.nc: "), message
    assert fragment in message, message
    assert "Fix: " in message, message


def test_valid_cells() -> None:
    precip = np.ones((4, 2, 2))
    precip[:, 0, 0] = np.nan
    precip[1, 1, 1] = np.nan  # one NaN does not make the cell invalid
    np.testing.assert_array_equal(valid_cells(precip), [[False, True], [True, True]])


def test_data_error_message_shape() -> None:
    err = DataError("a.nc", "it is broken.", "repair it.")
    assert str(err) == "a.nc: it is broken. Fix: repair it."
    assert isinstance(err, ValueError)
