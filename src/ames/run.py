"""What every training/evaluation stage loads: data, masks outputs, windows, transform;
the fingerprint of a run's params and data, and the one forecast batch loop."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from ames.config import AmesConfig, params_hash
from ames.data.dataset import GridData, load_grid_data
from ames.masks_io import MaskBundle, load_masks
from ames.paths import DATASET, MASKS
from ames.training.losses import micro_batches
from ames.windows import GridInputs, TargetTransform, WindowDataset, build_grid_inputs


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


def check_input_window(cfg: AmesConfig, masks: MaskBundle, masks_dir: str | Path, fix: str) -> int:
    """The params' input window, which must be the one the masks' split was built for."""
    window = cfg.features.input_window
    if int(masks.split["input_window"]) != window:
        raise ValueError(
            f"{masks_dir}: split was built for input_window={masks.split['input_window']} but "
            f"params say {window}; {fix}."
        )
    return window


def build_run_inputs(cfg: AmesConfig, data: GridData, masks: MaskBundle, window: int) -> RunInputs:
    """Model inputs and target transform of ``data``, normalised with the training stats."""
    inputs = build_grid_inputs(data.precip, data.months, masks.context, masks.valid, masks.stats)
    transform = TargetTransform.from_stats(cfg.features.target_transform, masks.stats)
    return RunInputs(data, masks, inputs, transform, window, int(masks.split["horizon"]))


def load_run_inputs(
    cfg: AmesConfig, dataset: str | Path = DATASET, masks_dir: str | Path = MASKS
) -> RunInputs:
    """The one loader of a run's inputs: dataset + masks outputs (inference adds its checks)."""
    data = load_grid_data(dataset)
    masks = load_masks(masks_dir)
    window = check_input_window(cfg, masks, masks_dir, "run `dvc repro masks`")
    return build_run_inputs(cfg, data, masks, window)


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


def iterate_batches(
    dataset: WindowDataset, batch_size: int, device: torch.device
) -> Iterator[dict[str, Tensor]]:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in loader:
        yield {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def collect_forecasts(
    forecast_mm: Callable[[dict[str, Tensor]], Tensor | Mapping[str, Tensor]],
    dataset: WindowDataset,
    clim_mean: np.ndarray,
    batch_size: int,
    device: torch.device,
    max_batch_cells: int | None = None,
) -> dict[str, np.ndarray]:
    """Run ``forecast_mm(batch)`` over a dataset, in order: the one forecast batch loop.

    ``forecast_mm`` returns ``[B, H, lat, lon]`` (mm/month), kept as ``pred``, or a dict of
    such arrays (e.g. ``pred`` and ``experts``), each kept under its key. Also returns
    ``obs`` (mm/month, NaN outside the domain), ``clim`` (the training climatology of each
    target month, ``clim_mean[target_month]``) and ``origin``. A batch of more than
    ``max_batch_cells`` samples × grid cells is forecast in micro-batches
    (``train.max_batch_cells``): the same forecasts, activations bounded by the piece.
    """
    outputs: dict[str, list[np.ndarray]] = {}
    obs, clim, origins = [], [], []
    for batch in iterate_batches(dataset, batch_size, device):
        for piece in micro_batches(batch, max_batch_cells):
            out = forecast_mm(piece)
            for key, value in ({"pred": out} if isinstance(out, Tensor) else out).items():
                outputs.setdefault(key, []).append(value.float().cpu().numpy())
        obs.append(batch["y_mm"].cpu().numpy())
        clim.append(clim_mean[batch["target_month"].cpu().numpy()])
        origins.append(batch["origin"].cpu().numpy())
    return {
        **{key: np.concatenate(values) for key, values in outputs.items()},
        "obs": np.concatenate(obs),
        "clim": np.concatenate(clim),
        "origin": np.concatenate(origins),
    }
