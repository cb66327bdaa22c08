"""The composed AMES model (experts → gating → meta-learner), its loss and routing summaries.

Losses (SPEC §4.5):
- ``mse``: :func:`ames.models.losses.masked_mse` over the valid cells, in the transformed
  units the experts are trained in (for the default ``anomaly`` transform: (mm/month error /
  anom_std)²), so stage 2/3 losses are on the same scale as stage 1; NaN (invalid) target
  cells are excluded.
- ``diversity``: :func:`ames.models.gating.routing_diversity_penalty`.
- ``l_mass`` / ``l_oro``: :mod:`ames.physics` losses on mm/month forecasts.
``loss = mse + lambda_div·diversity + lambda_mass·l_mass + lambda_oro·l_oro``, the weights
of a stage's ``loss`` keys (``ames.config.LossWeights``; a weight left out is 0: stage 2
sets ``lambda_div``, stage 3 the others).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ames.config import GatingModel, LossWeights, MetaConfig
from ames.models.gating import N_EXPERTS, PhysicsGuidedGating, routing_diversity_penalty
from ames.models.losses import masked_mse
from ames.models.meta import PhysicsInformedMetaLearner
from ames.models.parameters import count_elements
from ames.physics import elevation_priors, mass_conservation_loss, orographic_loss
from ames.windows import TargetTransform

# (key, lower bound exclusive, upper bound inclusive) in metres; SPEC §5 routing bands.
ELEVATION_BANDS = (
    ("gt3500", 3500.0, np.inf),
    ("3000_3500", 3000.0, 3500.0),
    ("2500_3000", 2500.0, 3000.0),
    ("2000_2500", 2000.0, 2500.0),
    ("1500_2000", 1500.0, 2000.0),
    ("lt1500", -np.inf, 1500.0),
)


@dataclass(frozen=True)
class StaticFields:
    """Static per-cell inputs of the gating and meta-learner, ``[lat, lon]`` unless noted."""

    elevation_m: np.ndarray
    slope_deg: np.ndarray
    aspect_deg: np.ndarray
    context_z: np.ndarray  # [5, lat, lon] z-scored, 0 outside valid cells
    valid: np.ndarray
    high_mask: np.ndarray

    @classmethod
    def from_masks(
        cls,
        context_features: np.ndarray,
        context_mean: np.ndarray,
        context_std: np.ndarray,
        valid: np.ndarray,
        high_mask: np.ndarray,
    ) -> StaticFields:
        """From the ``masks`` stage outputs.

        context_features: ``context_features_spatial.npy`` ``[lat, lon, 5]`` (raw elevation,
        slope, aspect, lat, lon); context mean/std from ``stats.npz``; valid and high masks.
        """
        valid = np.asarray(valid, dtype=bool)
        z = (context_features - np.asarray(context_mean)) / np.asarray(context_std)
        z = np.where(valid[..., None], z, 0.0).astype(np.float32)
        return cls(
            elevation_m=context_features[..., 0].astype(np.float32),
            slope_deg=context_features[..., 1].astype(np.float32),
            aspect_deg=context_features[..., 2].astype(np.float32),
            context_z=np.moveaxis(z, -1, 0).copy(),
            valid=valid,
            high_mask=np.asarray(high_mask, dtype=bool) & valid,
        )


@dataclass(frozen=True)
class PhysicsContext:
    """What the loss needs besides the batch: masks ``[lat, lon]`` and the training mean."""

    valid: Tensor
    high_mask: Tensor
    train_mean_mm: float

    @classmethod
    def from_statics(cls, statics: StaticFields, train_mean_mm: float) -> PhysicsContext:
        return cls(
            valid=torch.as_tensor(statics.valid, dtype=torch.bool),
            high_mask=torch.as_tensor(statics.high_mask, dtype=torch.bool),
            train_mean_mm=float(train_mean_mm),
        )


def build_gating(
    statics: StaticFields,
    cfg: GatingModel,
    high_min_m: float = 3000.0,
    low_max_m: float = 2000.0,
) -> PhysicsGuidedGating:
    """Gating from the ``gating`` params."""
    priors = elevation_priors(statics.elevation_m, high_min_m, low_max_m, cfg.prior_scale_m)
    network = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "prior_scale_m"}
    return PhysicsGuidedGating(priors, statics.context_z, **network)


def build_meta(statics: StaticFields, cfg: MetaConfig, horizon: int) -> PhysicsInformedMetaLearner:
    """Meta-learner from the ``meta`` params."""
    return PhysicsInformedMetaLearner(
        statics.context_z,
        statics.slope_deg,
        statics.aspect_deg,
        statics.high_mask,
        horizon,
        **dataclasses.asdict(cfg),
    )


class AMESModel(nn.Module):
    """Three experts, a target transform, the gating and the meta-learner.

    ``forward(batch)`` reads ``x``, ``target_month`` and ``origin_month`` and returns
    ``pred_mm`` ``[B, H, lat, lon]`` (≥ 0), ``pred`` (the same in transformed units),
    ``experts`` / ``experts_mm`` ``[B, 3, H, lat, lon]`` and ``weights`` ``[B, 3, lat, lon]``.
    Values at invalid cells are finite but meaningless; mask them.

    ``expert_by_lead`` ``[H]`` (a buffer, saved with the weights): ``-1`` where the forecast
    is the mixture (default), ``k`` where it is expert ``k``'s alone (0-based); the gating
    stage sets it where the folds find an expert better than the mixture
    (``choose_expert_by_lead``).
    """

    def __init__(
        self,
        experts: Sequence[nn.Module],
        transform: TargetTransform,
        gating: PhysicsGuidedGating,
        meta: PhysicsInformedMetaLearner,
        horizon: int,
    ) -> None:
        super().__init__()
        if len(experts) != N_EXPERTS:
            raise ValueError(f"AMES needs {N_EXPERTS} experts, got {len(experts)}")
        self.experts = nn.ModuleList(experts)
        self.transform = transform
        self.gating = gating
        self.meta = meta
        self.experts_frozen = False
        self.register_buffer("expert_by_lead", torch.full((horizon,), -1, dtype=torch.int64))

    def publish_experts(self, expert_by_lead: Sequence[int]) -> None:
        """Per lead, ``-1`` (the mixture) or the expert whose forecast AMES gives alone."""
        chosen = torch.as_tensor(list(expert_by_lead), dtype=torch.int64)
        if (
            chosen.shape != self.expert_by_lead.shape
            or not ((chosen >= -1) & (chosen < N_EXPERTS)).all()
        ):
            raise ValueError(f"expert_by_lead must be {len(self.expert_by_lead)} values in -1..2")
        self.expert_by_lead.copy_(chosen)

    def _experts_where_chosen(self, pred_mm: Tensor, experts_mm: Tensor) -> Tensor:
        chosen = self.expert_by_lead
        index = chosen.clamp_min(0)[None, None, :, None, None].expand(
            experts_mm.shape[0], 1, -1, *experts_mm.shape[-2:]
        )
        alone = experts_mm.gather(1, index)[:, 0].clamp_min(0.0)
        return torch.where((chosen >= 0)[None, :, None, None], alone, pred_mm)

    def freeze_experts(self) -> None:
        """Stop expert training: no gradients, eval mode (dropout off) even under ``train()``."""
        self.experts_frozen = True
        self.experts.requires_grad_(False)
        self.experts.eval()

    def train(self, mode: bool = True) -> AMESModel:
        super().train(mode)
        if self.experts_frozen:
            self.experts.eval()
        return self

    def expert_parameters(self) -> Iterator[nn.Parameter]:
        return self.experts.parameters()

    def gating_parameters(self) -> Iterator[nn.Parameter]:
        return self.gating.parameters()

    def meta_parameters(self) -> Iterator[nn.Parameter]:
        return self.meta.parameters()

    def combination_parameters(self) -> Iterator[nn.Parameter]:
        """What stage 2 trains on the frozen experts' forecasts: gating and meta-learner."""
        yield from self.gating_parameters()
        yield from self.meta_parameters()

    def count_parameters_by_component(self) -> dict[str, int]:
        """All parameters (trainable or not) per component, plus totals."""
        counts = {
            f"expert{i + 1}": count_elements(expert.parameters())
            for i, expert in enumerate(self.experts)
        }
        counts["experts"] = sum(counts.values())
        counts["gating"] = count_elements(self.gating_parameters())
        counts["meta"] = count_elements(self.meta_parameters())
        counts["total"] = counts["experts"] + counts["gating"] + counts["meta"]
        return counts

    def _run_experts(self, x: Tensor) -> Tensor:
        context = torch.no_grad() if self.experts_frozen else nullcontext()
        with context:
            return torch.stack([expert(x) for expert in self.experts], dim=1)

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        target_month = batch["target_month"]
        origin_month = batch["origin_month"]
        if self.experts_frozen and "experts" in batch:
            experts = batch["experts"]  # precomputed by frozen experts (stage 2 speed-up)
        else:
            experts = self._run_experts(batch["x"])
        experts_mm = torch.stack(
            [self.transform.to_mm(experts[:, i], target_month) for i in range(N_EXPERTS)], dim=1
        )
        # mm/month per transformed unit (the transform is affine).
        zeros = torch.zeros_like(experts[:, 0])
        scale_mm = self.transform.to_mm(zeros + 1.0, target_month) - self.transform.to_mm(
            zeros, target_month
        )
        weights = self.gating(origin_month)
        pred_mm = self.meta(experts, experts_mm, weights, origin_month, scale_mm)
        if bool((self.expert_by_lead >= 0).any()):
            pred_mm = self._experts_where_chosen(pred_mm, experts_mm)
        return {
            "pred_mm": pred_mm,
            "pred": self.transform.from_mm(pred_mm, target_month),
            "experts": experts,
            "experts_mm": experts_mm,
            "weights": weights,
        }


def build_ames_model(
    experts: Sequence[nn.Module],
    transform: TargetTransform,
    statics: StaticFields,
    gating_cfg: GatingModel,
    meta_cfg: MetaConfig,
    horizon: int,
    high_min_m: float = 3000.0,
    low_max_m: float = 2000.0,
) -> AMESModel:
    """Compose AMES from trained experts and the ``gating`` / ``meta`` params."""
    gating = build_gating(statics, gating_cfg, high_min_m, low_max_m)
    meta = build_meta(statics, meta_cfg, horizon)
    return AMESModel(experts, transform, gating, meta, horizon)


def ames_loss(
    model_out: Mapping[str, Tensor],
    batch: Mapping[str, Tensor],
    weights: LossWeights,
    physics_ctx: PhysicsContext,
) -> tuple[Tensor, dict[str, float]]:
    """Stage-2/3 objective (see module doc); returns the loss and float components."""
    device = model_out["pred_mm"].device
    valid = physics_ctx.valid.to(device)
    terms = {
        "mse": masked_mse(model_out["pred"], batch["y"], valid),
        "diversity": routing_diversity_penalty(model_out["weights"], valid),
        "l_mass": mass_conservation_loss(model_out["pred_mm"], batch["y_mm"], valid),
        "l_oro": orographic_loss(
            model_out["pred_mm"],
            batch["y_mm"],
            physics_ctx.high_mask.to(device),
            physics_ctx.train_mean_mm,
        ),
    }
    loss = terms["mse"]
    weighted = {
        "diversity": weights.lambda_div,
        "l_mass": weights.lambda_mass,
        "l_oro": weights.lambda_oro,
    }
    for name, weight in weighted.items():
        if weight:
            loss = loss + weight * terms[name]
    components = {name: float(value.detach()) for name, value in terms.items()}
    components["loss"] = float(loss.detach())
    return loss, components


def routing_by_band(
    weights: Tensor | np.ndarray,
    elevation_m: Tensor | np.ndarray,
    valid: Tensor | np.ndarray,
) -> dict[str, dict[str, float | int | None]]:
    """Mean routing weight per expert in each elevation band (SPEC §5), valid cells only.

    ``weights``: ``[3, lat, lon]`` or ``[B, 3, lat, lon]`` (averaged over B first). Bands are
    (lower, upper] in metres; an empty band has ``cells: 0`` and null weights.
    """
    w = _to_numpy(weights).astype(np.float64)
    if w.ndim == 4:
        w = w.mean(axis=0)
    z = _to_numpy(elevation_m).astype(np.float64)
    cells_ok = _to_numpy(valid).astype(bool) & np.isfinite(z)
    table: dict[str, dict[str, float | int | None]] = {}
    for key, lower, upper in ELEVATION_BANDS:
        band = cells_ok & (z > lower) & (z <= upper)
        n = int(band.sum())
        row: dict[str, float | int | None] = {
            f"expert{i + 1}": (float(w[i][band].mean()) if n else None) for i in range(N_EXPERTS)
        }
        row["cells"] = n
        table[key] = row
    return table


def _to_numpy(values: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)
