"""Physics-informed meta-learner: combines the routed experts in mm/month (SPEC §4.4).

final = ReLU(Σᵢ wᵢ·predᵢ + residual + correction), all in mm/month, where
- residual = scale × MLP([expert forecasts (3 × H, transformed units), context (5), season (2)])
  per cell; ``scale`` is the target transform's per-target scale, so the MLP works in the
  well-conditioned units the experts predict in.
- correction = (orographic_enhancement × slope/max slope × windward × high zone
  − rain_shadow_suppression × leeward) × weighted forecast. Windward and leeward need the
  region's prevailing wind; without one (``wind_from_deg=None``) both terms are off and their
  coefficients frozen at 0.
Untrained, the meta-learner is an exact pass-through of the weighted forecast: the MLP's
output layer and both coefficients start at zero (``orographic_init``/``rain_shadow_init``),
so a stage that keeps its starting weights (epoch 0) adds nothing a decision did not confirm.
ReLU (not softplus) keeps the output non-negative and lets a dry month be exactly 0 mm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ames.models.gating import (
    N_EXPERTS,
    N_SEASON,
    cell_features,
    mlp,
    season_features,
    static_tensor,
)
from ames.physics import windward_leeward


def weighted_forecast(experts_mm: Tensor, weights: Tensor) -> Tensor:
    """Σᵢ wᵢ·predᵢ: ``[B, 3, H, lat, lon]`` and ``[B, 3, lat, lon]`` → ``[B, H, lat, lon]``."""
    return (weights.unsqueeze(2) * experts_mm).sum(dim=1)


def _orographic_exposure(slope: Tensor, windward: Tensor, high_mask: Tensor) -> Tensor:
    """slope / max slope × windward, on high-zone cells only (0 elsewhere), in [0, 1]."""
    max_slope = slope.max()
    slope_n = slope / max_slope if max_slope > 0 else torch.zeros_like(slope)
    return slope_n * windward * high_mask.to(slope.dtype)


class PhysicsInformedMetaLearner(nn.Module):
    """Final mm/month forecast from the expert forecasts and the routing weights.

    Static inputs are ``[lat, lon]`` (context ``[5, lat, lon]``, z-scored); NaN cells are
    treated as flat, non-high and zero context. ``enabled=False`` is the "no meta-learner"
    ablation: the output is ReLU(Σᵢ wᵢ·predᵢ) and the parameters get ``requires_grad=False``.
    """

    def __init__(
        self,
        context_z: Tensor | np.ndarray,
        slope_deg: Tensor | np.ndarray,
        aspect_deg: Tensor | np.ndarray,
        high_mask: Tensor | np.ndarray,
        horizon: int,
        hidden_sizes: Sequence[int] = (64, 32),
        dropout: float = 0.0,
        wind_from_deg: float | None = None,
        min_slope_deg: float = 0.5,
        orographic_init: float = 0.0,
        rain_shadow_init: float = 0.0,
        enabled: bool = True,
    ) -> None:
        super().__init__()
        context = static_tensor(context_z, fill=0.0)
        slope = static_tensor(slope_deg, fill=0.0)
        aspect = static_tensor(aspect_deg, fill=0.0)
        high = static_tensor(high_mask, fill=0.0) > 0
        self.wind_from_deg = wind_from_deg  # the direction the physics terms use, or None
        self.physics_terms = wind_from_deg is not None
        if self.physics_terms:
            windward, leeward = windward_leeward(aspect, slope, wind_from_deg, min_slope_deg)
        else:
            windward, leeward = torch.zeros_like(slope), torch.zeros_like(slope)
            orographic_init = rain_shadow_init = 0.0
        self.horizon = int(horizon)
        self.enabled = bool(enabled)
        self.register_buffer("context", context.permute(1, 2, 0).contiguous())  # [lat, lon, C]
        self.register_buffer("orographic_exposure", _orographic_exposure(slope, windward, high))
        self.register_buffer("leeward", leeward)
        n_in = N_EXPERTS * self.horizon + context.shape[0] + N_SEASON
        self.residual = mlp(n_in, hidden_sizes, self.horizon, dropout)
        nn.init.zeros_(self.residual[-1].weight)
        nn.init.zeros_(self.residual[-1].bias)
        self.orographic_enhancement = nn.Parameter(torch.tensor(float(orographic_init)))
        self.rain_shadow_suppression = nn.Parameter(torch.tensor(float(rain_shadow_init)))
        if not self.physics_terms:
            self.orographic_enhancement.requires_grad_(False)
            self.rain_shadow_suppression.requires_grad_(False)
        if not self.enabled:
            self.requires_grad_(False)

    def residual_units(self, experts_t: Tensor, origin_month: Tensor) -> Tensor:
        """The MLP's correction in transformed units, ``[B, H, lat, lon]``."""
        batch, _, _, n_lat, n_lon = experts_t.shape
        forecasts = experts_t.permute(0, 3, 4, 1, 2).reshape(batch, n_lat, n_lon, -1)
        season = season_features(origin_month.to(experts_t.device))
        features = cell_features(self.context, season, forecasts)
        return self.residual(features).permute(0, 3, 1, 2)

    def physics_correction(self, weighted_mm: Tensor) -> Tensor:
        """Orographic enhancement minus rain-shadow suppression, mm/month ``[B, H, lat, lon]``."""
        factor = (
            self.orographic_enhancement * self.orographic_exposure
            - self.rain_shadow_suppression * self.leeward
        )
        return factor * weighted_mm

    def forward(
        self,
        experts_t: Tensor,
        experts_mm: Tensor,
        weights: Tensor,
        origin_month: Tensor,
        scale_mm: Tensor,
    ) -> Tensor:
        """Combine the experts.

        experts_t / experts_mm: ``[B, 3, H, lat, lon]`` in transformed units / mm/month;
        weights: ``[B, 3, lat, lon]``; origin_month: ``[B]``; scale_mm: ``[B, H, lat, lon]``,
        mm/month per transformed unit. Returns ``[B, H, lat, lon]`` mm/month, ≥ 0.
        """
        weighted = weighted_forecast(experts_mm, weights)
        if not self.enabled:
            return torch.relu(weighted)
        residual = self.residual_units(experts_t, origin_month) * scale_mm
        return torch.relu(weighted + residual + self.physics_correction(weighted))
