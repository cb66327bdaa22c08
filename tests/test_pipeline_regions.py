"""End-to-end on regions other than Boyacá (``data.source: files``), tiny sizes.

Each region runs ``dvc repro evaluate`` (prepare → masks → expert@1..3 → gating →
finetune → seed_members → evaluate, one epoch per stage) in a temporary copy of the
repository; every expert must have trained on cells and every output must be finite. A
flat region must stop at ``masks`` with one line naming the zone counts and the fix.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from pipeline_repo import TINY_MODELS, dvc, make_tiny_repo, pipeline_env, run_dvc
from region_fixtures import write_region

from ames.config import deep_merge

pytestmark = pytest.mark.slow

ZONES = ("high", "medium", "low")
# region -> (zone mode auto resolves to, how the DEM reached the grid)
EXPECTED = {
    "plateau": ("quantile", "area_mean"),
    "coastal": ("quantile", "bilinear"),
    "andes_360": ("fixed", "area_mean"),
}


def _json(repo: Path, rel: str) -> Any:
    return json.loads((repo / rel).read_text())


def _numbers(tree: Any) -> list[float]:
    if isinstance(tree, dict):
        return [x for value in tree.values() for x in _numbers(value)]
    if isinstance(tree, list):
        return [x for value in tree for x in _numbers(value)]
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return [float(tree)]
    return []


def region_repo(tmp_path: Path, name: str) -> Path:
    """A tiny-config copy of the project whose data are the region's files."""
    repo = tmp_path / name
    data = write_region(name, repo / "data" / "raw")
    overrides = deep_merge(TINY_MODELS, {"seeds": 1, "data": data})
    return make_tiny_repo(repo, overrides)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_region_runs_end_to_end(tmp_path: Path, name: str) -> None:
    repo = region_repo(tmp_path, name)
    dvc(repo, "repro", "evaluate", timeout=900)
    mode, regrid = EXPECTED[name]

    with xr.open_dataset(repo / "data/processed/dataset.nc") as ds:
        assert ds.attrs["source"] == "files"
        assert ds.attrs["dem_regrid_method"] == regrid

    masks = _json(repo, "metrics/masks.json")
    assert masks["thresholds"]["requested"] == "auto"
    assert masks["thresholds"]["mode"] == mode
    cells = {zone: masks["zones"][zone]["cells"] for zone in ZONES}
    assert min(cells.values()) >= 25 and sum(cells.values()) == masks["n_valid_cells"]
    saved = _json(repo, "data/processed/masks/zones.json")
    assert saved == masks["thresholds"]

    for n in (1, 2, 3):
        expert = _json(repo, f"metrics/expert{n}.json")
        assert expert["zone_cells"] == cells[expert["zone"]] > 0
        folds = expert["epoch_selection"]  # the fold copies ran epoch 0 and the 1 training epoch
        assert len(folds["cv_mse_by_epoch"]) == 2 and all(x > 0 for x in folds["cv_mse_by_epoch"])
        assert expert["epochs_run"] == folds["kept"] and expert["best_val_loss"] > 0
        assert all(math.isfinite(x) for x in _numbers(expert))
    for stage in ("gating", "finetune"):
        summary = _json(repo, f"metrics/{stage}.json")
        assert 0 < summary["alpha"] < 1
        assert all(math.isfinite(x) for x in _numbers(summary))

    test = _json(repo, "metrics/test.json")
    for section in ("model", "experts", "baselines"):
        assert all(math.isfinite(x) for x in _numbers(test[section])), section
    assert set(test["model"]["by_zone"]) == set(ZONES)
    valid = np.load(repo / "data/processed/masks/valid.npy")
    with xr.open_dataset(repo / "predictions/hindcast_test.nc") as hc:
        for var in hc.data_vars:
            values = hc[var].values
            if values.shape[-2:] == valid.shape:
                assert np.isfinite(values[..., valid]).all(), var


def test_flat_region_stops_at_masks_with_one_line(tmp_path: Path) -> None:
    repo = region_repo(tmp_path, "flat")
    dvc(repo, "repro", "prepare")
    result = subprocess.run(
        [sys.executable, "stages/masks.py"],
        cwd=repo,
        env=pipeline_env(repo),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("masks: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    line = lines[0]
    assert "high 0, medium 168, low 0 of 168 valid" in line
    assert "Fix: the region is too flat" in line
    failed = run_dvc(repo, "repro", "masks", timeout=300)
    assert failed.returncode != 0 and line in failed.stdout + failed.stderr
