"""A run's forecasts of one split (``train``/``val``/``test``), scored by the shared metric
code (``ames.evaluation.metrics``): the validation scores the training stages report."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ames.evaluation.metrics import score_forecasts
from ames.run import RunInputs, collect_forecasts


def score_split(
    forecast_mm: Any,
    run: RunInputs,
    split: str,
    batch_size: int,
    device: torch.device,
    max_batch_cells: int | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Forecasts of one split through the shared metric code (mm/month)."""
    clim_mean = run.masks.stats["clim_mean"]
    forecasts = collect_forecasts(
        forecast_mm, run.windows(split), clim_mean, batch_size, device, max_batch_cells
    )
    scores = score_forecasts(forecasts["pred"], forecasts["obs"], forecasts["clim"], run.zones)
    return scores, forecasts
