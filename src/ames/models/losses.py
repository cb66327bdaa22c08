"""The masked MSE every AMES training stage minimises (SPEC §4.5).

One implementation for the expert stage (cells of the expert's zone) and the stage-2/3
AMES objective (valid cells, :func:`ames.models.ames.ames_loss`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """MSE over the cells that have a finite target (and are in ``mask``, if given).

    ``mask`` is a bool tensor broadcastable to ``pred`` (e.g. a zone or the valid cells,
    ``[lat, lon]``). Excluded cells contribute exactly zero loss and zero gradient, NaN and
    infinite targets included; the mean is over the cells that count, 0 when none does.

    Computed in float32, so it is safe under autocast (an expert's float16 output is cast
    up before the difference). Float32 inputs are used as they are: the AMES stage-2/3
    prediction and every target are float32, so for them the cast is a no-op.
    """
    use = torch.isfinite(target)
    if mask is not None:
        use = use & mask.to(device=target.device, dtype=torch.bool)
    error = torch.where(use, pred.float() - torch.nan_to_num(target.float()), 0.0)
    return error.square().sum() / use.sum().clamp(min=1)
