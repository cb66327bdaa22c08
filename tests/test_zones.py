"""Elevation zones for any region: fixed / quantile / auto thresholds, never an empty zone."""

from __future__ import annotations

import json
import runpy
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from conftest import make_small_dataset
from pipeline_repo import TINY_MODELS
from torch.utils.data import DataLoader

from ames.config import ConfigError, deep_merge, load_config
from ames.data.errors import DataError
from ames.masks_io import load_masks
from ames.models.experts import build_experts
from ames.models.graph import load_masks_graph
from ames.physics import elevation_priors
from ames.run import load_run_inputs
from ames.workflows.ames_model import assemble_model, loss_fn, physics_context
from ames.zones import (
    ZoneConfig,
    ZoneThresholds,
    resolve_thresholds,
    resolve_zones,
    zone_counts,
)

ROOT = Path(__file__).resolve().parents[1]
BOYACA = {"lat_min": 4.375, "lat_max": 7.375, "lon_min": -74.925, "lon_max": -71.725}
TINY_BOX = {"lat_min": 5.525, "lat_max": 6.025, "lon_min": -73.175, "lon_max": -72.575}


def boyaca_elevation(box: dict[str, float]) -> np.ndarray:
    with xr.open_dataset(ROOT / "data/raw/dem_boyaca.nc") as ds:
        dem = ds["elevation"].load()
    tol = 0.49 * 0.05
    return dem.sel(
        latitude=slice(box["lat_min"] - tol, box["lat_max"] + tol),
        longitude=slice(box["lon_min"] - tol, box["lon_max"] + tol),
    ).values


def ramp(lo: float, hi: float, shape: tuple[int, int] = (12, 14)) -> np.ndarray:
    return np.linspace(lo, hi, shape[0] * shape[1]).reshape(shape)


def all_valid(z: np.ndarray) -> np.ndarray:
    return np.ones(z.shape, dtype=bool)


def test_params_default_is_auto_and_resolves_to_fixed_on_boyaca():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    cfg = ZoneConfig.from_params(params["zones"])
    assert cfg.mode == "auto" and cfg.min_cells == 25
    z = boyaca_elevation(BOYACA)
    zones, used = resolve_zones(z, all_valid(z), cfg, "dataset.nc")
    assert (used.mode, used.low_max_m, used.high_min_m) == ("fixed", 2000.0, 3000.0)
    assert {name: int(m.sum()) for name, m in zones.items()} == {
        "high": 315,
        "medium": 850,
        "low": 2800,
    }


def test_auto_switches_to_terciles_where_a_fixed_zone_is_too_small():
    z = boyaca_elevation(TINY_BOX)  # the tiny test box: only 2 cells below 2000 m
    assert zone_counts(z, all_valid(z), 2000, 3000)["low"] == 2
    used = resolve_thresholds(z, all_valid(z), ZoneConfig(mode="auto"))
    assert used.mode == "quantile" and used.requested == "auto"
    assert "low below 25 cells" in used.reason
    np.testing.assert_allclose([used.low_max_m, used.high_min_m], np.quantile(z, [1 / 3, 2 / 3]))


def test_fixed_mode_keeps_the_params_thresholds():
    z = ramp(0, 1500)
    used = resolve_thresholds(z, all_valid(z), ZoneConfig(mode="fixed"))
    assert (used.low_max_m, used.high_min_m, used.mode) == (2000.0, 3000.0, "fixed")


@pytest.mark.parametrize("quantiles", [None, [0.2, 0.5]])
def test_quantile_mode_places_thresholds_at_quantiles_of_valid_cells(quantiles):
    z = ramp(0, 1679)  # 168 distinct elevations, 10 m apart
    valid = all_valid(z)
    valid[0, :3] = False  # ocean cells do not count
    cfg = ZoneConfig.from_params({"mode": "quantile", "quantiles": quantiles})
    used = resolve_thresholds(z, valid, cfg)
    q = (1 / 3, 2 / 3) if quantiles is None else quantiles
    np.testing.assert_allclose([used.low_max_m, used.high_min_m], np.quantile(z[valid], q))
    counts = zone_counts(z, valid, used.low_max_m, used.high_min_m)
    assert sum(counts.values()) == valid.sum()
    expected_low = int(np.sum(z[valid] < np.quantile(z[valid], q[0])))
    assert counts["low"] == expected_low and counts["high"] > 0 and counts["medium"] > 0


def test_lowland_without_cells_above_2000_m_gets_three_populated_zones(caplog):
    z = ramp(0, 1400)
    caplog.set_level("INFO", logger="ames.zones")
    zones, used = resolve_zones(z, all_valid(z), ZoneConfig(mode="auto"), "dataset.nc")
    assert used.mode == "quantile"
    assert all(m.sum() >= 25 for m in zones.values())
    lines = [r.getMessage() for r in caplog.records if r.name == "ames.zones"]
    assert len(lines) == 1 and "mode auto -> quantile" in lines[0], lines


def test_flat_region_is_one_line_error_with_counts_and_fix():
    z = np.full((12, 14), 152.0)
    with pytest.raises(DataError) as info:
        resolve_zones(z, all_valid(z), ZoneConfig(mode="auto"), "data/processed/dataset.nc")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("data/processed/dataset.nc: ")
    assert "high 0, medium 168, low 0 of 168 valid" in message
    assert "too flat" in info.value.fix and "range 0 m" in info.value.fix


def test_fixed_mode_with_an_empty_zone_says_to_switch_mode():
    z = ramp(0, 1400)
    with pytest.raises(DataError) as info:
        resolve_zones(z, all_valid(z), ZoneConfig(mode="fixed"), "dataset.nc")
    assert "high 0, medium 0, low 168" in str(info.value)
    assert "zones.mode: auto" in info.value.fix and "0…1400 m" in info.value.fix


def test_small_but_populated_zone_is_a_warning(caplog):
    z = boyaca_elevation(TINY_BOX)
    _, used = resolve_zones(z, all_valid(z), ZoneConfig(mode="fixed"), "dataset.nc")
    assert used.mode == "fixed"
    assert any("fewer than zones.min_cells" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("zones", "fragment"),
    [
        ({"mode": "terciles"}, "mode is 'terciles'"),
        ({"low_max_m": 3000, "high_min_m": 2000}, "is not below"),
        ({"min_cells": 0}, "min_cells is 0"),
        ({"quantiles": [0.7, 0.3]}, "not 0 < q_low < q_high < 1"),
        ({"quantiles": "thirds"}, "quantiles is 'thirds'"),
        ({"mode": "auto", "threshold": 1}, "unknown key(s) 'threshold'"),
    ],
)
def test_bad_zone_params_name_params_yaml(zones, fragment):
    with pytest.raises(ConfigError, match="^params.yaml: zones: ") as info:
        ZoneConfig.from_params(zones)
    assert fragment in str(info.value)


def test_thresholds_round_trip():
    used = ZoneThresholds(812.5, 1400.25, "quantile", "auto", "why")
    assert ZoneThresholds.from_dict(json.loads(json.dumps(used.to_dict()))) == used


# ------------------------------------------------------------------- the masks stage


def run_masks_stage(tmp_path: Path, ds: xr.Dataset, zones: dict) -> Path:
    """Run stages/masks.py in-process on ``ds``; returns the masks output directory."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = deep_merge(
        params,
        deep_merge(
            TINY_MODELS,
            {
                "split": {"test_months": 30, "val_months": 24},
                "features": {"input_window": 6},
                "zones": zones,
            },
        ),
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ds.to_netcdf(tmp_path / "dataset.nc")
    argv = [
        "masks.py",
        *("--params", str(tmp_path / "params.yaml")),
        *("--dataset", str(tmp_path / "dataset.nc")),
        *("--out", str(tmp_path / "masks")),
        *("--metrics", str(tmp_path / "masks.json")),
        *("--plot", str(tmp_path / "zones.png")),
    ]
    old = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(str(ROOT / "stages/masks.py"), run_name="__main__")
    finally:
        sys.argv = old
    return tmp_path / "masks"


def test_masks_stage_saves_the_thresholds_and_the_gating_priors_follow_them(tmp_path):
    ds = make_small_dataset()
    masks_dir = run_masks_stage(tmp_path, ds, {"mode": "quantile"})
    metrics = json.loads((tmp_path / "masks.json").read_text())
    used = load_masks(masks_dir).thresholds
    assert used.mode == "quantile" and metrics["thresholds"] == used.to_dict()
    assert all(metrics["zones"][name]["cells"] > 0 for name in ("high", "medium", "low"))

    cfg = load_config(tmp_path / "params.yaml")
    run = load_run_inputs(cfg, tmp_path / "dataset.nc", masks_dir)
    model = assemble_model(
        cfg, run, build_experts(cfg, run, load_masks_graph(masks_dir, run.masks.valid.shape))
    )
    expected = elevation_priors(run.masks.context[..., 0], used.high_min_m, used.low_max_m, 500.0)
    valid = run.masks.valid
    priors = model.gating.priors.detach().cpu().numpy()
    np.testing.assert_allclose(priors[:, valid], expected[:, valid], rtol=1e-5)
    fixed = elevation_priors(run.masks.context[..., 0], 3000.0, 2000.0, 500.0)
    assert np.abs(priors[:, valid] - fixed[:, valid]).max() > 0.05

    # logging alpha every batch must not warn (requires_grad tensor converted to a scalar)
    batch = next(iter(DataLoader(run.windows("train"), batch_size=2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, parts = loss_fn(cfg.gating.loss, physics_context(run))(model, batch)
    assert 0 < parts["alpha"] < 1


def test_masks_stage_stops_on_a_flat_region_with_one_line(tmp_path):
    ds = make_small_dataset()
    ds["elevation"][:] = 95.0
    with pytest.raises(SystemExit) as info:
        run_masks_stage(tmp_path, ds, {"mode": "auto"})
    message = str(info.value.code)
    assert "\n" not in message and message.startswith("masks: ")
    assert "high 0, medium 71, low 0 of 71 valid" in message and "Fix: " in message
    assert not (tmp_path / "masks" / "split.json").exists()


def test_masks_outputs_without_thresholds_ask_for_a_rerun(tmp_path):
    masks_dir = run_masks_stage(tmp_path, make_small_dataset(), {"mode": "fixed"})
    (masks_dir / "zones.json").unlink()
    with pytest.raises(FileNotFoundError, match="dvc repro masks"):
        load_masks(masks_dir)
