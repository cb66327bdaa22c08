"""End-to-end: `dvc repro masks` in a temporary copy of the repository (tiny box)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pipeline_repo import dvc, make_tiny_repo

pytestmark = pytest.mark.slow


def test_dvc_repro_masks_in_a_temporary_repo(tmp_path):
    repo = make_tiny_repo(tmp_path / "repo")
    dvc(repo, "repro", "masks")

    data = json.loads((repo / "metrics/data.json").read_text())
    assert data["grid"]["n_time"] == 160
    assert data["grid"]["n_lat"] == 11 and data["grid"]["n_lon"] == 13
    masks = json.loads((repo / "metrics/masks.json").read_text())
    assert masks["split"] == {"train": 83, "val": 13, "test": 25}
    zones = {z: masks["zones"][z]["cells"] for z in ("high", "medium", "low")}
    assert sum(zones.values()) == data["grid"]["n_valid_cells"]
    # zones.mode auto: the tiny box has only 2 cells below 2000 m, so terciles are used
    assert masks["thresholds"]["requested"] == "auto"
    assert masks["thresholds"]["mode"] == "quantile"
    assert min(zones.values()) >= 25
    assert masks["graph"]["max_degree"] <= 12

    out = repo / "data/processed/masks"
    high, medium, low = (np.load(out / f"mask_{z}.npy") for z in ("high", "medium", "low"))
    assert not (high & medium).any() and not (high & low).any() and not (medium & low).any()
    assert np.load(out / "context_features_spatial.npy").shape == (11, 13, 5)
    for name in ("graph.npz", "stats.npz", "split.json", "valid.npy"):
        assert (out / name).exists()
    assert (repo / "plots/masks/zones.png").stat().st_size > 0
    assert (repo / "data/processed/oracle.nc").exists()

    status = dvc(repo, "status", "masks")
    assert "up to date" in status.stdout.lower() or status.stdout.strip() in ("", "{}")
    again = dvc(repo, "repro", "masks")
    assert "didn't change" in again.stdout or "skipping" in again.stdout.lower()
