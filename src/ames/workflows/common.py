"""Pieces every training / evaluation workflow shares."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ames.config import derive_seed, params_hash
from ames.evaluation.metrics import score_forecasts
from ames.evaluation.ridge import RidgeBaseline, fit_ridge
from ames.models.experts import build_expert
from ames.models.graph import GridGraph, load_grid_graph
from ames.models.linear_path import SpatialRegressors, grid_spacing_km
from ames.models.linear_path_fit import fit_spatial_ridge
from ames.paths import EXPERT_CHECKPOINT, MASKS, MODELS
from ames.run import RunInputs, collect_forecasts
from ames.selection import Fold, pretest_folds
from ames.settings import EXPERT_IDS, AmesConfig
from ames.training.checkpoints import load_state_dict_checked
from ames.windows import N_CHANNELS

log = logging.getLogger("ames")


def expert_checkpoint(index: int, models_dir: Path = MODELS) -> Path:
    return models_dir / EXPERT_CHECKPOINT.format(index=index)


def file_digest(*paths: str | Path) -> str:
    """sha256 over files (directories: every file inside, sorted), for fingerprints."""
    digest = hashlib.sha256()
    for path in map(Path, paths):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def run_fingerprint(cfg: AmesConfig, sections: list[str], *data: str | Path) -> str:
    """Hash of the named raw params sections and the data files (resumes only when equal)."""
    chosen = {key: cfg.raw.get(key) for key in sections}
    return f"{params_hash(chosen)}-{file_digest(*data)}"


def load_graph(run: RunInputs, masks_dir: Path = MASKS) -> GridGraph:
    return load_grid_graph(masks_dir / "graph.npz", run.masks.valid.shape)


def build_experts(cfg: AmesConfig, run: RunInputs, graph: GridGraph) -> list[nn.Module]:
    """The three experts with their params-defined architecture (untrained); a linear path
    reads the run's standardised anomalies and forecasts in the run's target units."""
    stats = run.masks.stats
    units = run.transform.standardized_anomaly_units(stats["clim_mean"], stats["clim_std"])
    experts = []
    for index in EXPERT_IDS:
        torch.manual_seed(derive_seed(cfg.seed, f"expert{index}", "init"))
        experts.append(
            build_expert(
                index,
                cfg.expert(index).model,
                n_features=N_CHANNELS,
                window=run.window,
                horizon=run.horizon,
                graph=graph,
            )
        )
        if experts[-1].linear is not None:
            experts[-1].linear.set_units(*units)
            if cfg.linear_features.adds_regressors:
                experts[-1].linear.add_spatial(spatial_regressors(cfg, run))
    return experts


def spatial_regressors(cfg: AmesConfig, run: RunInputs) -> SpatialRegressors:
    """The run's ``linear_features`` regressors on its grid (loading not yet fitted)."""
    spacing = grid_spacing_km(run.data.lat, run.data.lon)
    return SpatialRegressors(cfg.linear_features, run.window, run.masks.valid, spacing)


def load_trained_experts(
    cfg: AmesConfig, run: RunInputs, graph: GridGraph, models_dir: Path = MODELS
) -> list[nn.Module]:
    experts = build_experts(cfg, run, graph)
    for index, expert in zip(EXPERT_IDS, experts, strict=True):
        load_state_dict_checked(
            expert, expert_checkpoint(index, models_dir), stage=f"expert@{index}"
        )
    return experts


def score_split(
    forecast_mm: Any, run: RunInputs, split: str, batch_size: int, device: torch.device
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Forecasts of one split through the shared metric code (mm/month)."""
    forecasts = collect_forecasts(
        forecast_mm, run.windows(split), run.masks.stats["clim_mean"], batch_size, device
    )
    scores = score_forecasts(forecasts["pred"], forecasts["obs"], forecasts["clim"], run.zones)
    return scores, forecasts


def expert_forecast_mm(expert: nn.Module, run: RunInputs):
    """mm/month forecast of one expert; negative amounts are clipped to 0 (precipitation ≥ 0)."""
    transform = run.transform

    def forecast(batch: dict[str, Tensor]) -> Tensor:
        return transform.to_mm(expert(batch["x"]), batch["target_month"]).clamp_min(0.0)

    return forecast


class WithExpertOutputs(Dataset):
    """A window dataset plus the frozen experts' outputs, computed once and kept in memory."""

    def __init__(self, base: Dataset, experts: Tensor) -> None:
        self.base = base
        self.experts = experts

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = dict(self.base[index])
        item["experts"] = self.experts[index]
        return item


@torch.no_grad()
def precompute_expert_outputs(
    experts: list[nn.Module], dataset: Dataset, batch_size: int, device: torch.device
) -> Tensor:
    """``[S, 3, H, lat, lon]`` outputs (transformed units) of frozen experts, on the CPU."""
    from torch.utils.data import DataLoader

    outputs = []
    for expert in experts:
        expert.eval().to(device)
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x = batch["x"].to(device)
        outputs.append(torch.stack([e(x) for e in experts], dim=1).float().cpu())
    return torch.cat(outputs)


def run_folds(run: RunInputs, n_folds: int) -> list[Fold]:
    """The selection protocol's folds over the run's pre-test origins."""
    return pretest_folds(run.masks.split, run.data.times, n_folds, run.window, run.horizon)


def fit_run_ridge(run: RunInputs, n_folds: int) -> tuple[RidgeBaseline, list[Fold]]:
    """The ``ridge`` regression of a run, and the folds that chose its penalties: every valid
    cell, standardised anomalies, fitted on the training origins, each lead's penalty by the
    blocked cross-validation of ``ames.selection`` over the pre-test origins. The ``ridge``
    baseline and the experts' ``linear_path: ridge`` both use it."""
    folds = run_folds(run, n_folds)
    train = np.asarray(run.masks.split["train"])
    model = fit_ridge(run.inputs, run.masks.valid, train, folds, run.window, run.horizon)
    return model, folds


def fit_run_linear_path(cfg: AmesConfig, run: RunInputs) -> RidgeBaseline:
    """The experts' ``linear_path: ridge``: the run's ``ridge`` regression with the
    ``linear_features`` regressors added, by the same folds, penalties and training origins."""
    if not cfg.linear_features.adds_regressors:
        return fit_run_ridge(run, cfg.selection_folds)[0]
    return fit_spatial_ridge(
        run.inputs,
        run.masks.valid,
        np.asarray(run.masks.split["train"]),
        run_folds(run, cfg.selection_folds),
        run.window,
        run.horizon,
        spatial_regressors(cfg, run),
    )
