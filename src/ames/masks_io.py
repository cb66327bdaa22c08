"""Reading and writing the ``masks`` stage outputs (layout in docs/architecture.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ames.data.netcdf import write_netcdf
from ames.io import atomic_write, write_json
from ames.zones import ZONES, ZoneThresholds

ZONES_FILE = "zones.json"
STATIC_FILE = "static.nc"
GRAPH_FILE = "graph.npz"  # the graph over the valid cells (``ames.models.graph``)
# channel order of context_features_spatial.npy (the model's static inputs)
CONTEXT_NAMES = ("elevation_m", "slope_deg", "aspect_deg", "latitude", "longitude")
CONTEXT_UNITS = {"elevation_m": "m", "slope_deg": "degree", "aspect_deg": "degree"}


@dataclass(frozen=True)
class MaskBundle:
    zones: dict[str, np.ndarray]
    valid: np.ndarray
    context: np.ndarray  # [lat, lon, 5]
    graph: dict[str, np.ndarray]
    split: dict[str, Any]
    stats: dict[str, np.ndarray]
    # the thresholds the masks stage used (default: the SPEC's fixed 2000 / 3000 m)
    thresholds: ZoneThresholds = field(default_factory=ZoneThresholds)
    # the grid's coordinates (degrees north / east), written to static.nc
    lat: np.ndarray | None = None
    lon: np.ndarray | None = None

    def context_field(self, name: str) -> np.ndarray:
        """One static field by name (``CONTEXT_NAMES``), ``[lat, lon]``."""
        return self.context[..., CONTEXT_NAMES.index(name)]

    @property
    def elevation(self) -> np.ndarray:
        return self.context_field("elevation_m")

    @property
    def static(self) -> xr.Dataset:
        """The static fields, zones and valid mask over (latitude, longitude), by name."""
        if self.lat is None or self.lon is None:
            raise ValueError("MaskBundle.static needs the grid coordinates (lat, lon)")
        dims = ("latitude", "longitude")
        data_vars: dict[str, Any] = {
            name: (dims, self.context_field(name), {"units": CONTEXT_UNITS[name]})
            for name in CONTEXT_NAMES
            if name in CONTEXT_UNITS
        }
        zone = np.full(self.valid.shape, -1, dtype=np.int8)
        for code, name in enumerate(ZONES):
            zone[self.zones[name]] = code
        codes = " ".join(str(c) for c in range(len(ZONES)))
        data_vars["zone"] = (
            dims,
            zone,
            {"flag_values": codes, "flag_meanings": " ".join(ZONES), "missing": -1},
        )
        data_vars["valid"] = (dims, self.valid.astype(np.int8), {"meaning": "1 = land cell"})
        coords = {
            "latitude": ("latitude", np.asarray(self.lat, np.float64), {"units": "degrees_north"}),
            "longitude": ("longitude", np.asarray(self.lon, np.float64), {"units": "degrees_east"}),
        }
        attrs = {"source": "AMES masks stage", **self.thresholds.to_dict()}
        return xr.Dataset(data_vars, coords=coords, attrs=_netcdf_attrs(attrs))


def _netcdf_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, int | float | str) else str(v) for k, v in attrs.items()}


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda p: np.save(p.open("wb"), array))


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(p: Path) -> None:
        with p.open("wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


def save_masks(out_dir: str | Path, bundle: MaskBundle) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ZONES:
        _save_npy(out / f"mask_{name}.npy", bundle.zones[name])
    _save_npy(out / "valid.npy", bundle.valid)
    _save_npy(out / "context_features_spatial.npy", bundle.context.astype(np.float32))
    _save_npz(out / GRAPH_FILE, bundle.graph)
    _save_npz(out / "stats.npz", {k: np.asarray(v) for k, v in bundle.stats.items()})
    write_json(out / ZONES_FILE, bundle.thresholds.to_dict())
    write_netcdf(bundle.static, out / STATIC_FILE)
    write_json(out / "split.json", bundle.split)


def load_masks(out_dir: str | Path) -> MaskBundle:
    out = Path(out_dir)
    if not (out / "split.json").exists():
        raise FileNotFoundError(f"{out}: masks outputs not found. Run `dvc repro masks` first.")
    zones = {name: np.load(out / f"mask_{name}.npy") for name in ZONES}
    with np.load(out / GRAPH_FILE) as g:
        graph = {k: g[k] for k in g.files}
    with np.load(out / "stats.npz") as s:
        stats = {k: s[k] for k in s.files}
    split = json.loads((out / "split.json").read_text())
    if not (out / ZONES_FILE).exists():
        raise FileNotFoundError(
            f"{out}: {ZONES_FILE} (the zone thresholds) is missing: these masks outputs "
            "predate zones.mode. Run `dvc repro masks`."
        )
    thresholds = ZoneThresholds.from_dict(json.loads((out / ZONES_FILE).read_text()))
    if not (out / STATIC_FILE).exists():
        raise FileNotFoundError(
            f"{out}: {STATIC_FILE} (the labelled static fields) is missing: these masks "
            "outputs predate it. Run `dvc repro masks`."
        )
    with xr.open_dataset(out / STATIC_FILE) as static:
        lat, lon = static["latitude"].values, static["longitude"].values
    return MaskBundle(
        zones=zones,
        valid=np.load(out / "valid.npy"),
        context=np.load(out / "context_features_spatial.npy"),
        graph=graph,
        split=split,
        stats=stats,
        thresholds=thresholds,
        lat=lat,
        lon=lon,
    )
