"""Reading and writing the ``masks`` stage outputs (layout in docs/architecture.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ames.io import atomic_write, write_json
from ames.zones import ZONES, ZoneThresholds

ZONES_FILE = "zones.json"


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
    _save_npz(out / "graph.npz", bundle.graph)
    _save_npz(out / "stats.npz", {k: np.asarray(v) for k, v in bundle.stats.items()})
    write_json(out / ZONES_FILE, bundle.thresholds.to_dict())
    write_json(out / "split.json", bundle.split)


def load_masks(out_dir: str | Path) -> MaskBundle:
    out = Path(out_dir)
    if not (out / "split.json").exists():
        raise FileNotFoundError(f"{out}: masks outputs not found. Run `dvc repro masks` first.")
    zones = {name: np.load(out / f"mask_{name}.npy") for name in ZONES}
    with np.load(out / "graph.npz") as g:
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
    return MaskBundle(
        zones=zones,
        valid=np.load(out / "valid.npy"),
        context=np.load(out / "context_features_spatial.npy"),
        graph=graph,
        split=split,
        stats=stats,
        thresholds=thresholds,
    )
