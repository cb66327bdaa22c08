"""Extract the Boyacá DEM from the global altitude grid that ships with pvlib.

Run once from the project root (needs the ``dem`` extra: pvlib, h5py)::

    python scripts/extract_dem.py            # writes data/raw/dem_boyaca.nc
    python scripts/extract_dem.py --bbox 2.825 8.925 -76.575 -70.075 --out dem.nc   # any box

``--bbox LAT_MIN LAT_MAX LON_MIN LON_MAX`` (cell centres, included, on the ``--resolution``
grid) extracts another box the same way (``scripts/scaling.py`` does so for its larger
domains).

``pvlib/data/Altitude.h5`` holds dataset ``Altitude``: 2160 x 4320 uint8 on a 5-arc-minute
grid, row 0 the northernmost band (90 N edge), column 0 the westernmost (180 W edge).
Values encode altitude = value * 28 - 450 m; 255 means no data (ocean). The grid is
cell-registered: cell (i, j) is centred at (90 - (i + 0.5)/12, -180 + (j + 0.5)/12), the
convention pvlib's own ``lookup_altitude`` uses. Checked independently on small oceanic islands
(Tristan da Cunha, Gough, Bouvet, Ascension, St Helena, Kosrae): their land cells centre within
a few km of the islands under this convention, while corner registration would shift them
about 4.6 km north-west.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
import pvlib
import xarray as xr
from scipy.interpolate import RegularGridInterpolator

from ames.data.grid import grid_coords
from ames.data.netcdf import write_netcdf

ROOT = Path(__file__).resolve().parents[1]

CELLS_PER_DEGREE = 12
N_ROWS, N_COLS = 2160, 4320
NODATA = 255
SCALE_M, OFFSET_M = 28.0, -450.0
DATASET = "Altitude"
BBOX = {"lat_min": 4.375, "lat_max": 7.375, "lon_min": -74.925, "lon_max": -71.725}
RESOLUTION = 0.05
OUTPUT = ROOT / "data" / "raw" / "dem_boyaca.nc"


def altitude_file() -> Path:
    return Path(pvlib.__file__).parent / "data" / "Altitude.h5"


def source_window(
    lat: np.ndarray, lon: np.ndarray, margin: int = 2
) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Row/column slices of the source cells around the target grid and their ascending centres."""
    row_lo = int(np.floor((90.0 - lat.max()) * CELLS_PER_DEGREE)) - margin
    row_hi = int(np.ceil((90.0 - lat.min()) * CELLS_PER_DEGREE)) + margin
    col_lo = int(np.floor((lon.min() + 180.0) * CELLS_PER_DEGREE)) - margin
    col_hi = int(np.ceil((lon.max() + 180.0) * CELLS_PER_DEGREE)) + margin
    if row_lo < 0 or row_hi > N_ROWS or col_lo < 0 or col_hi > N_COLS:
        raise ValueError("target grid reaches the edge of the global grid; not supported")
    rows = np.arange(row_lo, row_hi)
    cols = np.arange(col_lo, col_hi)
    src_lat = 90.0 - (rows + 0.5) / CELLS_PER_DEGREE  # descending with the row index
    src_lon = -180.0 + (cols + 0.5) / CELLS_PER_DEGREE
    return slice(row_lo, row_hi), slice(col_lo, col_hi), src_lat[::-1], src_lon


def decode(raw: np.ndarray) -> np.ndarray:
    """uint8 codes -> metres (float64), NaN where no data."""
    alt = raw.astype(np.float64) * SCALE_M + OFFSET_M
    alt[raw == NODATA] = np.nan
    return alt


def bilinear(
    src_lat: np.ndarray, src_lon: np.ndarray, values: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> np.ndarray:
    """Bilinear interpolation of ``values[src_lat, src_lon]`` to the ``lat x lon`` grid.

    A target point touching a no-data source cell becomes NaN (NaN propagates).
    """
    interp = RegularGridInterpolator((src_lat, src_lon), values, method="linear")
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    return interp(np.stack([lat2.ravel(), lon2.ravel()], axis=-1)).reshape(lat2.shape)


def extract(path: Path, bbox: dict[str, float], resolution: float) -> xr.Dataset:
    lat, lon = grid_coords(bbox, resolution)
    rows, cols, src_lat, src_lon = source_window(lat, lon)
    with h5py.File(path, "r") as h5:
        data = h5[DATASET]
        if data.shape != (N_ROWS, N_COLS):
            raise ValueError(f"{path}: expected {DATASET} {N_ROWS}x{N_COLS}, got {data.shape}")
        raw = data[rows, cols]
    metres = decode(raw)[::-1]  # ascending latitude like the source centres
    elevation = bilinear(src_lat, src_lon, metres, lat, lon).astype(np.float32)
    attrs = {
        "source": "pvlib global 5-arc-minute altitude grid",
        "source_package": f"pvlib {pvlib.__version__}",
        "source_file": "pvlib/data/Altitude.h5",
        "source_dataset": DATASET,
        "source_grid": (
            "2160 x 4320 cells of 5 arc-minutes, cell-centred, row 0 at 90N, col 0 at 180W"
        ),
        "source_encoding": "altitude_m = value * 28 - 450; value 255 = no data",
        "source_data": "SRTM, GMTED2010 and ETOPO1 terrain aggregated by Mapzen (tilezen/joerd)",
        "interpolation": (
            f"bilinear between 5-arc-minute cell centres to the {resolution} degree grid"
        ),
        "script": "scripts/extract_dem.py",
    }
    return xr.Dataset(
        {
            "elevation": xr.DataArray(
                elevation,
                dims=("latitude", "longitude"),
                # Provenance on the variable too: readers often keep only ds["elevation"].
                attrs={"units": "m", "long_name": "elevation above sea level", **attrs},
            )
        },
        coords={
            "latitude": ("latitude", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "longitude": (
                "longitude",
                lon,
                {"units": "degrees_east", "standard_name": "longitude"},
            ),
        },
        attrs=attrs,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", "--out", type=Path, default=OUTPUT)
    parser.add_argument(
        "--bbox",
        type=float,
        nargs=4,
        metavar=("LAT_MIN", "LAT_MAX", "LON_MIN", "LON_MAX"),
        help="cell centres of the box's edges (default: the Boyacá box)",
    )
    parser.add_argument("--resolution", type=float, default=RESOLUTION, help="degrees")
    args = parser.parse_args(argv)
    bbox = BBOX if args.bbox is None else dict(zip(BBOX, args.bbox, strict=True))
    ds = extract(altitude_file(), bbox, args.resolution)
    write_netcdf(ds, args.output)
    z = ds["elevation"].values
    print(
        f"wrote {args.output}: {z.shape[0]}x{z.shape[1]}, elevation {np.nanmin(z):.0f}…"
        f"{np.nanmax(z):.0f} m, high {np.mean(z > 3000):.1%}, "
        f"medium {np.mean((z >= 2000) & (z <= 3000)):.1%}, low {np.mean(z < 2000):.1%}"
    )


if __name__ == "__main__":
    main()
