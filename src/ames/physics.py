"""Physical knowledge used by the gating, the meta-learner and the stage-3 loss (SPEC §4.3–4.5).

Static terrain terms (elevation priors, windward/leeward exposure) accept numpy arrays or
tensors and return the same kind. The losses work on tensors in mm/month and treat NaN
targets as invalid cells: they are excluded and never produce NaN gradients.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

ArrayLike = np.ndarray | Tensor

_EPS = 1e-6


def _as_tensor(values: ArrayLike) -> Tensor:
    if isinstance(values, Tensor):
        return values if values.is_floating_point() else values.double()
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


def _like_input(result: Tensor, original: ArrayLike) -> ArrayLike:
    """Return numpy for numpy input (keeping a float dtype), the tensor otherwise."""
    if isinstance(original, Tensor):
        return result
    dtype = np.asarray(original).dtype
    return result.numpy().astype(dtype if dtype.kind == "f" else np.float64)


def elevation_priors(
    elevation_m: ArrayLike,
    high_min_m: float = 3000.0,
    low_max_m: float = 2000.0,
    scale_m: float = 500.0,
) -> ArrayLike:
    """Prior routing weights ``[3, ...]`` for (Expert 1 high, Expert 2 low, Expert 3 medium).

    E1 = σ((z − high)/s), E2 = σ((low − z)/s), E3 = exp(−½((z − mid)/s)²) with
    mid = (high + low)/2, then divided by their sum (not a softmax), so each cell sums to 1.
    NaN elevations give NaN priors.
    """
    if not high_min_m > low_max_m:
        raise ValueError(f"high_min_m ({high_min_m}) must be above low_max_m ({low_max_m})")
    if not scale_m > 0:
        raise ValueError(f"scale_m must be positive, got {scale_m}")
    z = _as_tensor(elevation_m)
    mid = 0.5 * (high_min_m + low_max_m)
    raw = torch.stack(
        [
            torch.sigmoid((z - high_min_m) / scale_m),
            torch.sigmoid((low_max_m - z) / scale_m),
            torch.exp(-0.5 * ((z - mid) / scale_m) ** 2),
        ]
    )
    return _like_input(raw / raw.sum(dim=0, keepdim=True), elevation_m)


def windward_leeward(
    aspect_deg: ArrayLike,
    slope_deg: ArrayLike,
    wind_from_deg: float = 90.0,
    min_slope_deg: float = 0.5,
) -> tuple[ArrayLike, ArrayLike]:
    """Windward and leeward exposure in [0, 1] for a prevailing wind.

    ``aspect_deg`` is the direction a slope faces (degrees clockwise from north) and
    ``wind_from_deg`` the direction the wind blows from (90 = easterly). A slope facing the
    wind has cos(aspect − wind_from) = 1: windward = max(cos, 0), leeward = max(−cos, 0).
    Cells flatter than ``min_slope_deg`` (aspect undefined) and NaN cells get 0 for both.
    """
    aspect = _as_tensor(aspect_deg)
    slope = _as_tensor(slope_deg)
    facing = torch.cos(torch.deg2rad(aspect - wind_from_deg))
    sloped = torch.isfinite(facing) & torch.isfinite(slope) & (slope >= min_slope_deg)
    facing = torch.where(sloped, facing, torch.zeros_like(facing))
    windward = facing.clamp(min=0.0)
    leeward = (-facing).clamp(min=0.0)
    return _like_input(windward, aspect_deg), _like_input(leeward, aspect_deg)


def _cell_mask(target_mm: Tensor, cells: Tensor | np.ndarray | None) -> Tensor:
    """Cells that count: finite target, and inside ``cells`` ``[lat, lon]`` when given."""
    mask = torch.isfinite(target_mm)
    if cells is not None:
        mask = mask & torch.as_tensor(cells, dtype=torch.bool, device=target_mm.device)
    return mask


def mass_conservation_loss(
    pred_mm: Tensor, target_mm: Tensor, valid: Tensor | np.ndarray | None = None
) -> Tensor:
    """Relative error of the domain total, |Σ pred − Σ target| / Σ target.

    ``pred_mm``/``target_mm``: ``[B, H, lat, lon]`` mm/month. The sums run over the valid
    cells (``valid`` ``[lat, lon]`` and finite target) of one (sample, lead) map; the loss
    is the mean of that ratio over every sample and lead, so each monthly map counts once.
    """
    mask = _cell_mask(target_mm, valid)
    zero = torch.zeros((), dtype=pred_mm.dtype, device=pred_mm.device)
    pred_sum = torch.where(mask, pred_mm, zero).sum(dim=(-2, -1))
    target_sum = torch.where(mask, target_mm, zero).sum(dim=(-2, -1))
    return ((pred_sum - target_sum).abs() / target_sum.clamp(min=_EPS)).mean()


def orographic_loss(
    pred_mm: Tensor,
    target_mm: Tensor,
    high_mask: Tensor | np.ndarray,
    train_mean_mm: float,
) -> Tensor:
    """Mean under-prediction ReLU(target − pred) over high-zone cells, over the training mean.

    Averaged over every (sample, lead, high-zone cell with a finite target); dividing by
    ``train_mean_mm`` (training-period mean precipitation) makes it dimensionless. Returns
    0 (still attached to the graph) when no high-zone cell is valid.
    """
    if not train_mean_mm > 0:
        raise ValueError(f"train_mean_mm must be positive, got {train_mean_mm}")
    mask = _cell_mask(target_mm, high_mask)
    zero = torch.zeros((), dtype=pred_mm.dtype, device=pred_mm.device)
    shortfall = torch.where(mask, torch.relu(target_mm.nan_to_num(0.0) - pred_mm), zero)
    count = mask.sum().clamp(min=1)
    return shortfall.sum() / count / train_mean_mm
