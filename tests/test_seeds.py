"""Seed ensemble: member seeds, the members manifest, the ensemble mean and mean ± sd."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from config_helpers import config_with
from torch import nn

from ames.config import ConfigError, load_config, parse_config, resolve_profile
from ames.io import write_json
from ames.paths import MEMBERS_MANIFEST
from ames.workflows.seeds import (
    ensemble_test_forecasts,
    final_checkpoints,
    member_seeds,
    seed_summary,
)


def test_member_seeds_start_at_the_main_seed():
    assert member_seeds(config_with({"seed": 42, "seeds": 3})) == [42, 43, 44]
    assert member_seeds(config_with({"seed": 7, "seeds": 1})) == [7]
    for bad in (0, -1, 2.5, True, None):
        with pytest.raises(ConfigError, match="seeds: expected an integer >= 1"):
            config_with({"seed": 42, "seeds": bad})


def test_final_checkpoints_need_a_matching_manifest(tmp_path: Path):
    params = config_with({"seed": 42, "seeds": 3})
    assert list(final_checkpoints(config_with({"seed": 42, "seeds": 1}), tmp_path)) == [42]
    with pytest.raises(FileNotFoundError, match="seed_members"):
        final_checkpoints(params, tmp_path)
    write_json(tmp_path / "members" / MEMBERS_MANIFEST, {"base_seed": 42, "seeds": [43]})
    with pytest.raises(ValueError, match="ask for \\[43, 44\\]"):
        final_checkpoints(params, tmp_path)
    write_json(tmp_path / "members" / MEMBERS_MANIFEST, {"base_seed": 42, "seeds": [43, 44]})
    paths = final_checkpoints(params, tmp_path)
    assert list(paths) == [42, 43, 44]
    assert paths[44] == tmp_path / "members" / "seed44" / "ames_final_best.pt"


class ConstantModel(nn.Module):
    """Stands in for AMES: forecasts ``level`` mm/month everywhere, experts at 1, 2, 3 × level."""

    def __init__(self, level: float) -> None:
        super().__init__()
        self.level = nn.Parameter(torch.tensor(level), requires_grad=False)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        y = torch.ones_like(batch["y_mm"])
        experts = torch.stack([y * k for k in (1.0, 2.0, 3.0)], dim=1)
        return {"pred_mm": y * self.level, "experts_mm": experts * self.level}


def _fake_run(n_origins: int = 5, horizon: int = 2) -> SimpleNamespace:
    windows = [
        {
            "y_mm": torch.full((horizon, 2, 3), 10.0),
            "origin": torch.tensor(i),
            "target_month": torch.arange(i + 1, i + 1 + horizon) % 12,
        }
        for i in range(n_origins)
    ]
    return SimpleNamespace(
        windows=lambda split: windows,
        horizon=horizon,
        masks=SimpleNamespace(stats={"clim_mean": np.full((12, 2, 3), 9.0)}),
    )


def test_ensemble_forecast_is_the_mean_of_the_members():
    members = {42: ConstantModel(10.0), 43: ConstantModel(30.0)}
    ensemble, by_seed = ensemble_test_forecasts(members, _fake_run(), batch_size=2)
    assert set(by_seed) == {42, 43}
    np.testing.assert_allclose(ensemble["pred"], 20.0)
    np.testing.assert_allclose(by_seed[43], 30.0)
    np.testing.assert_allclose(ensemble["experts"][:, 2], 60.0)  # expert 3 = 3 × level
    assert ensemble["pred"].dtype == np.float32
    np.testing.assert_array_equal(ensemble["origin"], np.arange(5))


def test_seed_summary_reports_mean_and_sample_sd():
    def leaf(msess: float) -> dict:
        keys = ("pooled_r2", "percell_r2", "rmse", "mae")
        return {"overall": {"msess": msess, **dict.fromkeys(keys, 1.0)}}

    summary = seed_summary({42: leaf(0.02), 43: leaf(0.04), 44: leaf(0.03)})
    assert summary["n"] == 3
    assert summary["mean_sd"]["msess"]["mean"] == pytest.approx(0.03)
    assert summary["mean_sd"]["msess"]["sd"] == pytest.approx(0.01)
    assert summary["by_seed"]["43"]["msess"] == 0.04
    assert seed_summary({42: leaf(0.02)})["mean_sd"]["msess"]["sd"] is None


def test_committed_profiles_define_a_seed_ensemble():
    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "params.yaml")
    assert member_seeds(cfg) == [cfg.seed, cfg.seed + 1]
    raw = yaml.safe_load((root / "params.yaml").read_text())
    paper = parse_config(resolve_profile({**raw, "profile": "paper"}))
    assert len(member_seeds(paper)) == 3
    assert cfg.data.synthetic["seed"] == 42  # the data seed is not the model seed
