"""What every training/evaluation stage loads: data, masks outputs, windows, transform."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from ames.data.dataset import GridData, load_grid_data
from ames.masks_io import MaskBundle, load_masks
from ames.windows import GridInputs, TargetTransform, WindowDataset, build_grid_inputs

DATASET = Path("data/processed/dataset.nc")
MASKS = Path("data/processed/masks")


@dataclass
class RunInputs:
    data: GridData
    masks: MaskBundle
    inputs: GridInputs
    transform: TargetTransform
    window: int
    horizon: int

    def windows(self, split: str, origins: list[int] | np.ndarray | None = None) -> WindowDataset:
        """Windows of one split (``train``/``val``/``test``) or of explicit origins."""
        chosen = self.masks.split[split] if origins is None else origins
        return WindowDataset(self.inputs, chosen, self.window, self.horizon, self.transform)

    @property
    def zones(self) -> dict[str, np.ndarray]:
        return self.masks.zones


def load_run_inputs(
    params: dict[str, Any], dataset: str | Path = DATASET, masks_dir: str | Path = MASKS
) -> RunInputs:
    data = load_grid_data(dataset)
    masks = load_masks(masks_dir)
    window = int(params["features"]["input_window"])
    if masks.split["input_window"] != window:
        raise ValueError(
            f"{masks_dir}: split was built for input_window={masks.split['input_window']} but "
            f"params say {window}; run `dvc repro masks`."
        )
    inputs = build_grid_inputs(data.precip, data.months, masks.context, masks.valid, masks.stats)
    transform = TargetTransform.from_stats(params["features"]["target_transform"], masks.stats)
    return RunInputs(data, masks, inputs, transform, window, int(masks.split["horizon"]))


def iterate_batches(
    dataset: WindowDataset, batch_size: int, device: torch.device
) -> Iterator[dict[str, Tensor]]:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in loader:
        yield {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def collect_forecasts(
    forecast_mm: Callable[[dict[str, Tensor]], Tensor],
    dataset: WindowDataset,
    clim_mean: np.ndarray,
    batch_size: int,
    device: torch.device,
) -> dict[str, np.ndarray]:
    """Run ``forecast_mm(batch) -> [B, H, lat, lon]`` over a dataset, in order.

    Returns ``pred`` (mm/month), ``obs`` (mm/month, NaN outside the domain), ``clim`` (the
    training climatology of each target month, ``clim_mean[target_month]``) and ``origin``.
    """
    preds, obs, clim, origins = [], [], [], []
    for batch in iterate_batches(dataset, batch_size, device):
        preds.append(forecast_mm(batch).float().cpu().numpy())
        obs.append(batch["y_mm"].cpu().numpy())
        clim.append(clim_mean[batch["target_month"].cpu().numpy()])
        origins.append(batch["origin"].cpu().numpy())
    return {
        "pred": np.concatenate(preds),
        "obs": np.concatenate(obs),
        "clim": np.concatenate(clim),
        "origin": np.concatenate(origins),
    }
