"""Physics-guided gating: per-cell expert weights from elevation priors and a small MLP (SPEC §4.3).

weights = α · priors + (1 − α) · softmax(MLP([static context, season of the origin month]))

Expert order everywhere is (Expert 1 high, Expert 2 low, Expert 3 medium).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ames.config import GATING_MODES, N_EXPERTS

N_SEASON = 2


def season_features(month: Tensor) -> Tensor:
    """sin/cos of calendar months 0..11 ``[B]`` → ``[B, 2]`` (same phase as the input channels)."""
    angle = 2.0 * math.pi * month.to(torch.float32) / 12.0
    return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)


def mlp(n_in: int, hidden_sizes: Sequence[int], n_out: int, dropout: float = 0.0) -> nn.Sequential:
    """Linear → ReLU → Dropout blocks for each hidden size, then a linear output layer."""
    layers: list[nn.Module] = []
    width = n_in
    for size in hidden_sizes:
        layers += [nn.Linear(width, int(size)), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(size)
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def cell_features(static: Tensor, season: Tensor, dynamic: Tensor | None = None) -> Tensor:
    """Per (sample, cell) MLP input ``[B, lat, lon, D + S + 2]``.

    dynamic: ``[B, lat, lon, D]`` or None; static: ``[lat, lon, S]``; season: ``[B, 2]``.
    """
    batch = season.shape[0]
    n_lat, n_lon, _ = static.shape
    parts = [] if dynamic is None else [dynamic]
    parts += [
        static.expand(batch, n_lat, n_lon, -1),
        season[:, None, None, :].expand(batch, n_lat, n_lon, N_SEASON),
    ]
    return torch.cat(parts, dim=-1)


def static_tensor(values: Tensor | np.ndarray, fill: float) -> Tensor:
    """A float32 CPU copy of a static field with NaN/inf replaced by ``fill``."""
    if isinstance(values, Tensor):
        tensor = values.detach().to("cpu", torch.float32).clone()
    else:
        tensor = torch.as_tensor(np.asarray(values, dtype=np.float32)).clone()
    return torch.nan_to_num(tensor, nan=fill, posinf=fill, neginf=fill)


class PhysicsGuidedGating(nn.Module):
    """Per-cell routing weights ``[B, 3, lat, lon]`` for a batch of forecast origins.

    priors: ``[3, lat, lon]`` from :func:`ames.physics.elevation_priors` (NaN cells → ⅓ each).
    context_z: ``[5, lat, lon]`` z-scored elevation, slope, aspect, lat, lon (NaN → 0).
    mode: ``learned`` (priors + MLP), ``equal`` (⅓ each) or ``single`` (one-hot on
    ``single_expert``, numbered 1..3 like the experts). In ``equal``/``single`` and for a
    ``fixed_alpha`` the unused parameters are kept (checkpoints stay interchangeable between
    ablations) but get ``requires_grad=False``, so optimisers never change them.
    """

    def __init__(
        self,
        priors: Tensor | np.ndarray,
        context_z: Tensor | np.ndarray,
        hidden_sizes: Sequence[int] = (32, 32),
        dropout: float = 0.2,
        alpha_init: float = 0.3,
        fixed_alpha: float | None = None,
        mode: str = "learned",
        single_expert: int | None = None,
    ) -> None:
        super().__init__()
        _check_mode(mode, single_expert)
        if not 0.0 < alpha_init < 1.0:
            raise ValueError(
                f"gating.alpha_init must be strictly between 0 and 1, got {alpha_init}"
            )
        if fixed_alpha is not None and not 0.0 <= fixed_alpha <= 1.0:
            raise ValueError(f"gating.fixed_alpha must be in [0, 1] or null, got {fixed_alpha}")
        priors_t = static_tensor(priors, fill=1.0 / N_EXPERTS)
        context_t = static_tensor(context_z, fill=0.0)
        if priors_t.shape[0] != N_EXPERTS or priors_t.shape[1:] != context_t.shape[1:]:
            raise ValueError(
                f"priors {tuple(priors_t.shape)} and context {tuple(context_t.shape)} "
                "must be [3, lat, lon] and [C, lat, lon] on the same grid"
            )
        self.mode = mode
        self.single_expert = single_expert
        self.fixed_alpha = None if fixed_alpha is None else float(fixed_alpha)
        self.register_buffer("priors", priors_t)
        self.register_buffer("context", context_t.permute(1, 2, 0).contiguous())  # [lat, lon, C]
        self.theta = nn.Parameter(torch.tensor(math.log(alpha_init / (1.0 - alpha_init))))
        self.net = mlp(context_t.shape[0] + N_SEASON, hidden_sizes, N_EXPERTS, dropout)
        self._freeze_unused()

    def _freeze_unused(self) -> None:
        if self.mode != "learned":
            self.requires_grad_(False)
        elif self.fixed_alpha is not None:
            self.theta.requires_grad_(False)

    @property
    def alpha(self) -> Tensor:
        """Weight of the physics priors (a scalar tensor)."""
        if self.fixed_alpha is not None:
            return torch.tensor(self.fixed_alpha, device=self.theta.device)
        return torch.sigmoid(self.theta)

    def data_weights(self, origin_month: Tensor) -> Tensor:
        """Softmax of the MLP's logits, ``[B, 3, lat, lon]``."""
        season = season_features(origin_month.to(self.context.device))
        logits = self.net(cell_features(self.context, season))
        return torch.softmax(logits, dim=-1).permute(0, 3, 1, 2)

    def forward(self, origin_month: Tensor) -> Tensor:
        batch = origin_month.shape[0]
        if self.mode == "equal":
            return torch.full_like(self.priors, 1.0 / N_EXPERTS).expand(batch, -1, -1, -1)
        if self.mode == "single":
            one_hot = torch.zeros_like(self.priors)
            one_hot[int(self.single_expert) - 1] = 1.0
            return one_hot.expand(batch, -1, -1, -1)
        alpha = self.alpha
        return alpha * self.priors + (1.0 - alpha) * self.data_weights(origin_month)


def _check_mode(mode: str, single_expert: int | None) -> None:
    if mode not in GATING_MODES:
        raise ValueError(f"gating.mode must be one of {GATING_MODES}, got {mode!r}")
    if mode == "single" and single_expert not in range(1, N_EXPERTS + 1):
        raise ValueError(
            f"gating.single_expert must be 1, 2 or 3 in mode 'single', got {single_expert}"
        )


def routing_diversity_penalty(weights: Tensor, valid: Tensor | np.ndarray | None = None) -> Tensor:
    """KL divergence of each sample's domain-mean routing from uniform, averaged over samples.

    ``weights`` ``[B, 3, lat, lon]``; the mean runs over ``valid`` ``[lat, lon]`` cells. It is
    0 when the three experts carry equal total weight over the domain and log 3 when one
    expert takes everything, so it penalises collapse without forcing any cell to mix.
    """
    if valid is None:
        mean = weights.mean(dim=(-2, -1))
    else:
        cells = torch.as_tensor(valid, dtype=torch.bool, device=weights.device)
        mean = weights[..., cells].mean(dim=-1)
    mean = mean.clamp(min=1e-8)
    return (mean * torch.log(mean * N_EXPERTS)).sum(dim=-1).mean()
