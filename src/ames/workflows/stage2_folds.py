"""Stage 2's decisions on the folds: the epochs, the leads an expert is published alone at,
the blend weights with climatology and the predictive distribution's calibration.

Per block of the selection folds (``ames.workflows.blocks``), a copy of the stage-2 model
trains on the held-out expert forecasts of the block's fitting origins
(``ames.workflows.stacking``) and forecasts the block's own origins after every epoch.
Their per-lead sums choose the epoch (``ames.training.folds``), compare the mixture with
each expert alone, and give the blend weights; the copies restored at the kept epoch give
the out-of-fold forecasts the spread scales and tercile weights are fitted on
(``ames.workflows.fold_calibration``). :func:`decide_on_folds` runs them in that order for
the main chain's gating stage; the seed members and ablations take its decisions.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ames.config import EXPERT_IDS, TrainConfig
from ames.evaluation.probabilistic import cross_validated_climatology_weights
from ames.models.ames import AMESModel
from ames.models.experts import WithExpertOutputs
from ames.run import RunInputs
from ames.selection import pooled_fold_gain
from ames.training.folds import EpochChoice, FoldRun, cross_validate_epochs
from ames.training.losses import micro_batches, to_device
from ames.workflows.blocks import ExpertsInUnits, block_runs, fold_blocks
from ames.workflows.context import RunContext
from ames.workflows.fold_calibration import calibrate_on_folds
from ames.workflows.linear_path_cache import cached_linear_path
from ames.workflows.probabilistic import blend_floors, cross_validated_floors

log = logging.getLogger("ames.model")

CLIMATOLOGY_WEIGHT_CV = "climatology_weight_cv"  # checkpoint meta: the folds' blend weights
SPREAD_SCALE_CV = "spread_scale_cv"  # checkpoint meta: the spread scales the folds fitted
TERCILE_WEIGHT_CV = "tercile_weight_cv"  # checkpoint meta: the folds' tercile weights
CV_MSE_RATIO = "cv_mse_ratio"  # checkpoint meta: the blend's out-of-fold MSE / climatology's
NEGLIGIBLE_MSESS = 1e-4  # an expert "beats" the mixture only by more than this MSESS


def stage2_fold_runs(
    ctx: RunContext, model: AMESModel, held_out: Any, compute_loss: Any
) -> list[FoldRun]:
    """Per block, a copy of ``model`` (its starting weights; the frozen experts shared) that
    trains on the held-out expert forecasts of the block's fitting origins and is scored on
    the block's own, all standardised without the block's targets
    (``ames.workflows.blocks.block_run``)."""
    run = ctx.run
    position = {int(o): i for i, o in enumerate(run.masks.split["train"])}
    blocks = fold_blocks(ctx.cfg, run)

    def rows(brun: RunInputs, origins: np.ndarray) -> Dataset:
        base = brun.windows("train", origins)
        data = WithExpertOutputs(base, held_out, [position[int(o)] for o in origins])
        return ExpertsInUnits(data, run.transform, brun.transform)

    runs = []
    for block, brun in zip(blocks, block_runs(run, blocks), strict=True):
        fold_model = copy.deepcopy(model, memo={id(model.experts): model.experts})
        fold_model.transform = copy.deepcopy(brun.transform)
        trainable = [p for p in fold_model.combination_parameters() if p.requires_grad]
        runs.append(FoldRun(fold_model, compute_loss, rows(brun, block.fit),
                            rows(brun, block.forecast), trainable))  # fmt: skip
    return runs


@torch.no_grad()
def fold_lead_sums(
    forecast: Callable[[dict[str, Tensor]], Tensor],
    data: Dataset,
    batch_size: int,
    valid: np.ndarray,
    device: torch.device,
    max_cells: int | None,
) -> np.ndarray:
    """``[M, 4, H]`` over ``data``'s windows and the ``valid`` cells, in transformed units
    (where climatology is 0), for each of the ``M`` forecasts ``forecast(batch)`` gives
    (``[B, M, H, lat, lon]``): ``Σ f·o``, ``Σ f²``, ``Σ o²`` and the count, ``o`` the truth
    (``cross_validated_climatology_weights``)."""
    cells = torch.from_numpy(np.asarray(valid, dtype=bool)).to(device)
    total = None
    for raw in DataLoader(data, batch_size=batch_size):
        for piece in micro_batches(to_device(raw, device), max_cells):
            f = forecast(piece)[..., cells].double()  # [B, M, H, cells]
            o = piece["y"][..., cells].double()[:, None]
            count = torch.full_like(f[0, :, :, 0], float(f.shape[0] * f.shape[3]))
            parts = [(f * o).sum((0, 3)), (f * f).sum((0, 3)), (o * o).expand_as(f).sum((0, 3))]
            sums = torch.stack([*parts, count], dim=1)
            total = sums if total is None else total + sums
    assert total is not None
    return total.cpu().numpy()


def mixture_forecast(model: AMESModel) -> Callable[[dict[str, Tensor]], Tensor]:
    def forecast(batch: dict[str, Tensor]) -> Tensor:
        return model(batch)["pred"][:, None]

    return forecast


def held_out_experts(batch: dict[str, Tensor]) -> Tensor:
    return batch["experts"]  # [B, 3, H, lat, lon]: the held-out expert forecasts


def mse_by_fold(sums: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """``[K, H]`` mean squared error of ``climatology + weight (f − climatology)`` per fold
    and lead, from ``[K, 4, H]`` sums."""
    fo, ff, oo, n = (sums[:, i] for i in range(4))
    return (oo - 2 * weight * fo + weight**2 * ff) / n


def mixture_against_experts(
    mixture: np.ndarray, experts: np.ndarray, skill_margin_se: float
) -> dict[str, Any]:
    """Out of fold, per lead: each expert's MSE relative to climatology's, the mixture's, and
    where an expert beats the mixture by more than ``skill_margin_se`` standard errors of the
    per-fold differences and by at least ``NEGLIGIBLE_MSESS`` of climatology's MSE (identical
    forecasts differ by float rounding only). ``mixture`` ``[K, 4, H]``, ``experts``
    ``[K, 3, 4, H]``."""
    n = mixture[:, 3]
    clim = (mixture[:, 2]).sum(0)
    report: dict[str, Any] = {
        "mixture_cv_mse_ratio_by_lead": ((mse_by_fold(mixture) * n).sum(0) / clim).tolist()
    }
    for e in range(experts.shape[1]):
        gain, se = pooled_fold_gain(mse_by_fold(mixture) - mse_by_fold(experts[:, e]), n)
        name = f"expert{e + 1}"
        report[name] = {
            "cv_mse_ratio_by_lead": ((mse_by_fold(experts[:, e]) * n).sum(0) / clim).tolist(),
            "cv_gain_over_mixture_by_lead": gain.tolist(),
            "cv_gain_se_by_lead": se.tolist(),
            "beats_mixture_by_lead": (
                (gain > skill_margin_se * se) & (gain > NEGLIGIBLE_MSESS * clim / n.sum(0))
            ).tolist(),
        }
    return report


def at_kept_epoch(sums: Mapping[tuple[int, int], np.ndarray], kept: int) -> np.ndarray:
    """``[K, ...]``: each fold's sums at the kept epoch (or the last it ran, where the folds
    stopped before it)."""
    folds = sorted({k for k, _ in sums})
    return np.stack([sums[k, min(kept, max(e for kk, e in sums if kk == k))] for k in folds])


def climatology_blend(ctx: RunContext, sums: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """The blend weights with climatology from the published forecast's out-of-fold sums
    (``[K, 4, H]``); a lead where the experts' ``linear_path: ridge`` keeps a regression (its
    selection confirmed skill) counts as confirmed too."""
    margin = ctx.cfg.selection.skill_margin_se
    confirmed = None
    if any(ctx.cfg.expert(i).ridge_linear_path for i in EXPERT_IDS):
        confirmed = np.isfinite(cached_linear_path(ctx).alpha)
    return cross_validated_climatology_weights(sums, margin, confirmed)


def combination_state(model: torch.nn.Module) -> dict[str, Tensor]:
    """A copy of a fold copy's state apart from its frozen experts (shared by every copy)."""
    return {
        k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("experts.")
    }


def models_at_kept_epoch(
    runs: list[FoldRun],
    states: Mapping[tuple[int, int], dict[str, Tensor]],
    kept: int,
    expert_by_lead: list[int],
) -> list[AMESModel]:
    """Each fold copy as it was at the kept epoch (or the last it ran), publishing the experts
    ``expert_by_lead`` chose."""
    models = []
    for k, fold in enumerate(runs):
        epoch = min(kept, max(e for kk, e in states if kk == k))
        fold.model.load_state_dict(states[k, epoch], strict=False)
        fold.model.publish_experts(expert_by_lead)
        models.append(fold.model)
    return models


def supported_floors(ctx: RunContext, cv_mse_ratio: Any) -> np.ndarray:
    """Per lead, the least spread scale the folds support: the experts' linear path's
    (``cross_validated_floors``) or the blended forecast's (``blend_floors``), the larger."""
    floors = cross_validated_floors(cached_linear_path(ctx))
    mixture = blend_floors(cv_mse_ratio)
    return floors if mixture is None else np.maximum(floors, mixture)


def choose_expert_by_lead(against: Mapping[str, Any], horizon: int) -> list[int]:
    """Per lead, the expert (0-based) that beats the mixture out of fold
    (``mixture_against_experts``: by more than ``selection.skill_margin_se`` standard errors
    and a negligible amount), the one with the largest gain where several do; else -1."""
    chosen = []
    for h in range(horizon):
        gains = {
            int(name.removeprefix("expert")) - 1: row["cv_gain_over_mixture_by_lead"][h]
            for name, row in against.items()
            if name.startswith("expert") and row["beats_mixture_by_lead"][h]
        }
        chosen.append(max(gains, key=gains.__getitem__) if gains else -1)
    return chosen


def published_sums(mixture: np.ndarray, experts: np.ndarray, chosen: list[int]) -> np.ndarray:
    """``[K, 4, H]`` out-of-fold sums of the published forecast: the mixture's, or at a lead
    given to an expert (``chosen``) that expert's (``experts`` ``[K, 3, 4, H]``)."""
    out = mixture.copy()
    for h, k in enumerate(chosen):
        if k >= 0:
            out[:, :, h] = experts[:, k, :, h]
    return out


def warn_if_an_expert_beats_the_mixture(against: Mapping[str, Any]) -> None:
    """Say so when the folds find an expert better than the mixture at some lead."""
    for name, row in against.items():
        if not name.startswith("expert"):
            continue
        leads = [h + 1 for h, beats in enumerate(row["beats_mixture_by_lead"]) if beats]
        if leads:
            log.warning(
                "gating: out of fold, %s alone beats the mixture at leads %s "
                "(metrics/gating.json -> climatology_blend.mixture_against_experts)",
                name, leads,
            )  # fmt: skip


def decide_epochs(
    ctx: RunContext, runs: list[FoldRun], train_cfg: TrainConfig, desc: str, **kwargs: Any
) -> EpochChoice:
    margin = ctx.cfg.selection.skill_margin_se
    return cross_validate_epochs(runs, train_cfg, margin, desc=desc, **kwargs)


@dataclass(frozen=True)
class FoldDecision:
    """What the gating stage's folds decided, for the checkpoint and ``metrics/gating.json``."""

    choice: EpochChoice | None  # None: nothing to train (epoch 0)
    epochs: int
    expert_by_lead: list[int]  # per lead, the expert published alone (0-based; -1: mixture)
    report: dict[str, Any]  # the blend, the mixture against the experts, the calibration
    extra: dict[str, Any]  # checkpoint meta: blend weights, MSE ratios, spread, tercile


def decide_on_folds(
    ctx: RunContext,
    model: AMESModel,
    held_out: Any,
    compute_loss: Any,
    trainable: bool,
    device: torch.device,
) -> FoldDecision:
    """Train ``model``'s fold copies (:func:`stage2_fold_runs`) epoch by epoch and decide, in
    order: the epoch (none when nothing is ``trainable``), the leads an expert alone beats
    the mixture at, the blend weights with climatology of the published forecast, and the
    spread scales and tercile weights on the copies' out-of-fold forecasts at the kept
    epoch."""
    cfg, run = ctx.cfg, ctx.run
    train_cfg = cfg.gating.training
    runs = stage2_fold_runs(ctx, model, held_out, compute_loss)
    sums: dict[tuple[int, int], np.ndarray] = {}
    expert_sums: dict[int, np.ndarray] = {}
    states: dict[tuple[int, int], dict[str, Tensor]] = {}

    def lead_sums(k: int, forecast: Callable[[dict[str, Tensor]], Tensor]) -> np.ndarray:
        return fold_lead_sums(
            forecast, runs[k].held_out, train_cfg.batch_size, run.masks.valid, device,
            train_cfg.max_batch_cells,
        )  # fmt: skip

    def record(k: int, epoch: int, fold_model: torch.nn.Module) -> None:
        fold_model.eval()
        sums[k, epoch] = lead_sums(k, mixture_forecast(fold_model))[0]
        states[k, epoch] = combination_state(fold_model)
        if epoch == 0:
            expert_sums[k] = lead_sums(k, held_out_experts)

    choice = None
    if trainable:
        choice = decide_epochs(ctx, runs, train_cfg, "gating", after_epoch=record)
    else:
        for k, fold in enumerate(runs):
            record(k, 0, fold.model.to(device))
    epochs = 0 if choice is None else choice.kept
    mixture = at_kept_epoch(sums, epochs)
    experts_oof = np.stack([expert_sums[k] for k in range(len(runs))])
    against = mixture_against_experts(mixture, experts_oof, cfg.selection.skill_margin_se)
    warn_if_an_expert_beats_the_mixture(against)
    expert_by_lead = choose_expert_by_lead(against, run.horizon)
    weights, blend = climatology_blend(ctx, published_sums(mixture, experts_oof, expert_by_lead))
    blend["mixture_against_experts"] = against
    blend["expert_by_lead"] = expert_by_lead
    log.info(
        "gating: blend weight with climatology by lead (folds) %s", np.round(weights, 3).tolist()
    )
    fold_models = models_at_kept_epoch(runs, states, epochs, expert_by_lead)
    scales, tercile, blend["calibration"] = calibrate_on_folds(
        run, fold_blocks(cfg, run), fold_models, runs, weights,
        supported_floors(ctx, blend["cv_mse_ratio_by_lead"]), cfg.probabilistic,
        train_cfg.batch_size, device, train_cfg.max_batch_cells,
    )  # fmt: skip
    extra = {
        CLIMATOLOGY_WEIGHT_CV: weights.tolist(),
        CV_MSE_RATIO: blend["cv_mse_ratio_by_lead"],
        SPREAD_SCALE_CV: scales.tolist(),
        TERCILE_WEIGHT_CV: tercile.tolist(),
    }
    return FoldDecision(choice, epochs, expert_by_lead, blend, extra)
