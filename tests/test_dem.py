"""The committed Boyacá DEM (data/raw/dem_boyaca.nc) and the grid helper that defines it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from ames.data.grid import grid_coords

ROOT = Path(__file__).resolve().parents[1]
DEM_FILE = ROOT / "data" / "raw" / "dem_boyaca.nc"
SCRIPT = ROOT / "scripts" / "extract_dem.py"
BBOX = {"lat_min": 4.375, "lat_max": 7.375, "lon_min": -74.925, "lon_max": -71.725}


@pytest.fixture(scope="module")
def dem() -> xr.Dataset:
    with xr.open_dataset(DEM_FILE) as ds:
        return ds.load()


def test_grid_coords_includes_both_ends() -> None:
    lat, lon = grid_coords(BBOX, 0.05)
    assert len(lat) == 61 and len(lon) == 65
    assert lat[0] == 4.375 and lat[-1] == 7.375
    assert lon[0] == -74.925 and lon[-1] == -71.725
    assert lat[3] == 4.525  # no float noise
    np.testing.assert_allclose(np.diff(lon), 0.05)


def test_grid_coords_rejects_a_box_that_is_not_whole_steps() -> None:
    with pytest.raises(ValueError, match="whole number"):
        grid_coords({**BBOX, "lat_max": 7.38}, 0.05)


def test_dem_grid(dem: xr.Dataset) -> None:
    lat, lon = grid_coords(BBOX, 0.05)
    elevation = dem["elevation"]
    assert elevation.dims == ("latitude", "longitude")
    assert elevation.dtype == np.float32
    np.testing.assert_allclose(dem["latitude"].values, lat, atol=1e-9)
    np.testing.assert_allclose(dem["longitude"].values, lon, atol=1e-9)
    assert elevation.attrs["units"] == "m"


def test_dem_values(dem: xr.Dataset) -> None:
    z = dem["elevation"].values
    assert not np.isnan(z).any()
    assert 0 < z.min() < 200
    assert 4000 < z.max() < 4500
    assert np.mean(z > 3000) == pytest.approx(0.08, abs=0.02)
    assert np.mean((z >= 2000) & (z <= 3000)) == pytest.approx(0.21, abs=0.03)
    assert np.mean(z < 2000) == pytest.approx(0.71, abs=0.03)


def test_dem_geography(dem: xr.Dataset) -> None:
    """Cordillera in the middle, Llanos low in the south-east, Magdalena valley low in the west."""
    z = dem["elevation"]
    assert float(z.sel(latitude=4.5, longitude=-71.8, method="nearest")) < 500  # Llanos
    assert float(z.sel(latitude=6.0, longitude=-74.6, method="nearest")) < 500  # Magdalena
    assert float(z.sel(latitude=5.55, longitude=-73.35, method="nearest")) > 2500  # Tunja
    assert float(z.sel(latitude=6.45, longitude=-72.3, method="nearest")) > 3500  # El Cocuy


def test_dem_provenance(dem: xr.Dataset) -> None:
    for attrs in (dem.attrs, dem["elevation"].attrs):
        assert attrs["source_package"].startswith("pvlib ")
        assert attrs["source_file"] == "pvlib/data/Altitude.h5"
        assert attrs["source_dataset"] == "Altitude"
        assert "value * 28 - 450" in attrs["source_encoding"]
        for source in ("SRTM", "GMTED2010", "ETOPO1", "Mapzen"):
            assert source in attrs["source_data"]
        assert "bilinear" in attrs["interpolation"]
        assert attrs["script"] == "scripts/extract_dem.py"


def _extract_module():
    pytest.importorskip("pvlib")
    pytest.importorskip("h5py")
    spec = importlib.util.spec_from_file_location("extract_dem", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extraction_is_exact_at_source_cell_centres() -> None:
    """On a grid through 5-arc-minute cell centres the script returns pvlib's own lookup,
    which pins the cell registration (a half-cell error would blend neighbours)."""
    from pvlib.location import lookup_altitude

    module = _extract_module()
    lat0, lon0 = 90 - (1013 + 0.5) / 12, -180 + (1283 + 0.5) / 12  # about 5.54 N, 73.07 W
    bbox = {"lat_min": lat0, "lat_max": lat0 + 4 / 12, "lon_min": lon0, "lon_max": lon0 + 4 / 12}
    ds = module.extract(module.altitude_file(), bbox, 1 / 12)
    for lat in ds["latitude"].values:
        for lon in ds["longitude"].values:
            got = float(ds["elevation"].sel(latitude=lat, longitude=lon))
            assert got == pytest.approx(lookup_altitude(lat, lon), abs=1e-3)


def test_committed_dem_is_what_the_script_produces(dem: xr.Dataset) -> None:
    module = _extract_module()
    fresh = module.extract(module.altitude_file(), module.BBOX, module.RESOLUTION)
    np.testing.assert_array_equal(fresh["elevation"].values, dem["elevation"].values)
