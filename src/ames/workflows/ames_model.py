"""Stages 2 and 3: train the gating on frozen experts, then fine-tune everything."""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ames.config import EXPERT_IDS, AmesConfig, LossWeights, MetaConfig
from ames.data.schema import PREVAILING_WIND_ATTR
from ames.evaluation.split_scores import score_split
from ames.models.ames import (
    AMESModel,
    PhysicsContext,
    StaticFields,
    ames_loss,
    build_ames_model,
    routing_by_band,
)
from ames.models.experts import WithExpertOutputs, build_experts, precompute_expert_outputs
from ames.models.graph import GridGraph
from ames.models.parameters import count_parameters
from ames.paths import FINAL_CHECKPOINT, STAGE2_CHECKPOINT
from ames.plotting.routing import plot_routing_vs_elevation
from ames.run import RunInputs
from ames.training.checkpoints import load_state_dict_checked, save_checkpoint
from ames.training.device import select_device
from ames.training.distributed import on_main
from ames.training.engine import fit
from ames.training.folds import FoldRun, exactly
from ames.training.live import record_untrained
from ames.training.progress import TrainResult
from ames.workflows.blocks import block_runs, fold_blocks, in_block_units
from ames.workflows.context import RunContext
from ames.workflows.expert import load_trained_experts
from ames.workflows.linear_path_cache import cached_block_linear_paths
from ames.workflows.stacking import (
    HeldOutOnDemand,
    block_paths,
    cached_held_out_outputs,
    kept_by_stage1,
)
from ames.workflows.stage2_folds import decide_epochs, decide_on_folds

log = logging.getLogger("ames.model")

EXPERT_BY_LEAD = "expert_by_lead"  # the AMES buffer: per lead, the expert published alone

MODEL_SECTIONS = ["seed", "features", "train", "expert1", "expert2", "expert3", "gating", "meta"]


def static_fields(run: RunInputs) -> StaticFields:
    stats = run.masks.stats
    return StaticFields.from_masks(
        run.masks.context,
        stats["context_mean"],
        stats["context_std"],
        run.masks.valid,
        run.zones["high"],
    )


def prevailing_wind(meta: MetaConfig, dataset_attrs: Mapping[str, Any]) -> float | None:
    """The wind direction of the meta-learner's orographic terms: ``meta.wind_from_deg`` when
    set, else the dataset's own (the synthetic generator records it), else None (terms off).

    A region's wind is never borrowed from another: user files carry no wind, so unless the
    user names one the orographic and rain-shadow terms stay off (and say so).
    """
    if meta.wind_from_deg is not None:
        return meta.wind_from_deg
    if PREVAILING_WIND_ATTR in dataset_attrs:
        return float(dataset_attrs[PREVAILING_WIND_ATTR])
    log.warning(
        "params.yaml (meta.wind_from_deg): not set and the dataset records no prevailing wind; "
        "the orographic-enhancement and rain-shadow terms are off. Fix: set "
        "meta.wind_from_deg to the direction your region's low-level wind blows from "
        "(degrees from north, e.g. 270 for westerlies) to use them."
    )
    return None


def assemble_model(cfg: AmesConfig, run: RunInputs, experts: list[torch.nn.Module]) -> AMESModel:
    """AMES whose elevation priors follow the zone thresholds the masks stage used."""
    thresholds = run.masks.thresholds
    wind = prevailing_wind(cfg.meta, run.data.attrs)
    return build_ames_model(
        experts,
        run.transform,
        static_fields(run),
        cfg.gating.model,
        dataclasses.replace(cfg.meta, wind_from_deg=wind),
        run.horizon,
        high_min_m=thresholds.high_min_m,
        low_max_m=thresholds.low_max_m,
    )


def load_ames_model(
    cfg: AmesConfig,
    run: RunInputs,
    graph: GridGraph,
    checkpoint: Path,
    stage: str,
) -> AMESModel:
    """Rebuild AMES from params and load a stage-2 or final checkpoint into it."""
    model = assemble_model(cfg, run, build_experts(cfg, run, graph))
    load_state_dict_checked(model, checkpoint, stage=stage)
    return model


def checkpoint_epoch(checkpoint: Path) -> int:
    """The epoch a stage-2 or final checkpoint was saved at: the epochs its stage kept."""
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["meta"]["epoch"])


def checkpoint_extra(checkpoint: Path) -> dict[str, Any] | None:
    """What a checkpoint's stage stored beside the weights (e.g. the folds' blend weights)."""
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["meta"].get("extra")


def checkpoint_expert_by_lead(checkpoint: Path) -> list[int]:
    """Per lead, the expert a stage-2 or final checkpoint publishes alone (-1: the mixture)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    return [int(k) for k in state[EXPERT_BY_LEAD]]


def finetune_fold_runs(ctx: RunContext, stage2: Path, compute_loss: Any) -> list[FoldRun]:
    """Per block, the stage-2 model with its experts' ``linear_path: ridge`` refitted on the
    block's fitting origins (as stacking does), fine-tuned on the block's fitting windows
    and scored on the block's own, all standardised without the block's targets."""
    cfg, run = ctx.cfg, ctx.run
    blocks = fold_blocks(cfg, run)
    bruns = block_runs(run, blocks)
    refit = partial(cached_block_linear_paths, ctx)
    paths = block_paths(cfg, bruns, blocks, kept_by_stage1(ctx.models_dir), refit)
    start = load_ames_model(cfg, run, ctx.graph, stage2, stage="gating")
    runs = []
    for b, (block, brun) in enumerate(zip(blocks, bruns, strict=True)):
        fold_model = copy.deepcopy(start)
        fold_model.transform = copy.deepcopy(brun.transform)
        in_block_units(fold_model.experts, brun)
        for index in EXPERT_IDS:
            if index in paths:
                fold_model.experts[index - 1].linear.set_weights(*paths[index][b])
        fit_windows, held_out = (
            brun.windows("train", block.fit),
            brun.windows("train", block.forecast),
        )
        runs.append(FoldRun(fold_model, compute_loss, fit_windows, held_out))
    return runs


def physics_context(run: RunInputs) -> PhysicsContext:
    return PhysicsContext.from_statics(static_fields(run), float(run.masks.stats["precip_mean"]))


def loss_fn(weights: LossWeights, physics: PhysicsContext):
    def compute(model: AMESModel, batch: dict[str, Tensor]):
        loss, parts = ames_loss(model(batch), batch, weights, physics)
        parts["alpha"] = model.gating.alpha.item()
        return loss, parts

    return compute


@torch.no_grad()
def mean_routing(model: AMESModel, run: RunInputs, split: str) -> np.ndarray:
    """Routing weights ``[3, lat, lon]`` averaged over the split's forecast origins."""
    model.eval()
    months = torch.as_tensor(run.inputs.months[np.asarray(run.masks.split[split])])
    device = next(model.gating.buffers()).device
    return model.gating(months.to(device)).mean(dim=0).cpu().numpy()


def epoch_alpha(row: Mapping[str, float]) -> float:
    """α of one history row: the mean over its training batches; epoch 0 (the starting
    weights) has no training pass, so its α is the one validated."""
    return row["train/alpha"] if "train/alpha" in row else row["val/alpha"]


def model_summary(
    model: AMESModel,
    run: RunInputs,
    result: TrainResult | None,
    batch_size: int,
    routing_plot: Path | None = None,
    max_batch_cells: int | None = None,
) -> dict[str, Any]:
    """Metrics shared by the gating and finetune stages (validation, mm/month)."""
    device = next(model.parameters()).device
    model.eval()

    def forecast(batch: dict[str, Tensor]) -> Tensor:
        return model(batch)["pred_mm"]

    scores, _ = score_split(forecast, run, "val", batch_size, device, max_batch_cells)
    routing = mean_routing(model, run, "val")
    elevation = run.masks.elevation
    if routing_plot is not None:
        alpha = model.gating.alpha.item()
        title = f"Routing weights vs elevation (validation mean, alpha = {alpha:.2f})"
        on_main(plot_routing_vs_elevation, routing, elevation, run.masks.valid, routing_plot, title)
    summary: dict[str, Any] = {
        "alpha": model.gating.alpha.item(),
        "routing_by_band": routing_by_band(routing, elevation, run.masks.valid),
        "val": {"overall": scores["overall"], "by_zone": scores["by_zone"]},
        "n_params": model.count_parameters_by_component(),
        "n_params_trainable": count_parameters(model, trainable_only=True),
    }
    if result is not None:
        summary.update(
            best_epoch=result.best_epoch,
            epochs_run=result.epochs_run,
            best_val_loss=result.best_val_loss,
            train_time_s=round(result.time_s, 1),
            alpha_by_epoch=[round(epoch_alpha(row), 5) for row in result.history],
        )
    return summary


def train_gating(
    ctx: RunContext,
    *,
    live_dir: Path | None = None,
    checkpoint_name: str = STAGE2_CHECKPOINT,
    state_name: str = "gating",
    routing_plot: Path | None = None,
    epochs: int | None = None,
    expert_by_lead: list[int] | None = None,
) -> tuple[AMESModel, dict[str, Any]]:
    """Stage 2: experts frozen, the gating and the meta-learner train on held-out expert
    forecasts of the training windows (``ames.workflows.stacking``) for the epochs the folds
    keep (``ames.training.folds``), or exactly ``epochs`` (decided before: the seed members
    and ablations take the main model's, and its ``expert_by_lead``); the checkpoint is
    ``ctx.models_dir / checkpoint_name``. The main chain's folds also decide the leads an
    expert alone beats the mixture at (published alone there, ``AMESModel.expert_by_lead``)
    and the blend weights with climatology."""
    start = time.perf_counter()
    cfg, run = ctx.cfg, ctx.run
    model = assemble_model(cfg, run, load_trained_experts(ctx))
    model.freeze_experts()
    train_cfg = cfg.gating.training
    device = select_device(train_cfg.device)
    model.to(device)
    best_path = ctx.models_dir / checkpoint_name
    trainable = [p for p in model.combination_parameters() if p.requires_grad]
    experts = list(model.experts)
    train = run.windows("train")
    held_out = HeldOutOnDemand(
        lambda: cached_held_out_outputs(
            ctx,
            experts,
            batch_size=train_cfg.batch_size,
            device=device,
            cache_dir=ctx.state_root / "stacking",
            max_batch_cells=train_cfg.max_batch_cells,
        ),
        len(train),
    )
    val = run.windows("val")
    val_outputs = precompute_expert_outputs(
        experts, val, train_cfg.batch_size, device, train_cfg.max_batch_cells
    )
    splits = {
        "train": WithExpertOutputs(train, held_out),
        "val": WithExpertOutputs(val, val_outputs),
    }
    compute_loss = loss_fn(cfg.gating.loss, physics_context(run))
    result = None
    untrained_row = None
    choice = None
    blend: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None
    if epochs is None:  # the main chain: the folds decide the epochs and the blend
        decision = decide_on_folds(ctx, model, held_out, compute_loss, bool(trainable), device)
        choice, epochs = decision.choice, decision.epochs
        expert_by_lead, blend, extra = decision.expert_by_lead, decision.report, decision.extra
    if expert_by_lead is not None:
        model.publish_experts(expert_by_lead)
        if any(k >= 0 for k in expert_by_lead):
            log.info("gating: published alone by lead (-1: the mixture) %s", expert_by_lead)
    if trainable:
        result = fit(
            model,
            compute_loss,
            splits["train"],
            splits["val"],
            exactly(train_cfg, epochs),
            best_path=best_path,
            state_dir=ctx.state_root / state_name,
            live_dir=live_dir,
            trainable=trainable,
            desc="gating",
            fingerprint=f"{ctx.fingerprint(MODEL_SECTIONS)}-{model.expert_by_lead.tolist()}",
            extra_state=extra,
        )
    else:
        log.info(
            "gating mode %r has nothing to train: saving it as is, with its epoch-0 losses",
            cfg.gating.mode,
        )
        untrained_row = record_untrained(model, compute_loss, splits, train_cfg, device, live_dir)
        meta = {"epoch": 0, "note": "nothing to train", "extra": extra}
        on_main(save_checkpoint, best_path, model, meta)
    summary = model_summary(
        model, run, result, train_cfg.batch_size, routing_plot, train_cfg.max_batch_cells
    )
    summary["trained"] = result is not None
    summary["epoch_selection"] = None if choice is None else choice.report()
    summary["climatology_blend"] = blend
    summary["expert_by_lead"] = model.expert_by_lead.tolist()
    if untrained_row is not None:
        summary.update(best_epoch=0, epochs_run=0, losses_untrained=untrained_row)
    summary["time_s"] = round(time.perf_counter() - start, 1)
    return model, summary


def finetune(
    ctx: RunContext,
    *,
    live_dir: Path | None = None,
    stage2_checkpoint: Path | None = None,
    checkpoint_name: str = FINAL_CHECKPOINT,
    state_name: str = "finetune",
    routing_plot: Path | None = None,
    epochs: int | None = None,
) -> tuple[AMESModel, dict[str, Any]]:
    """Stage 3: everything trainable, lr = finetune.lr_scale × train.lr, physics losses on;
    from ``stage2_checkpoint`` (default: the gating stage's in ``ctx.models_dir``), for the
    epochs the folds keep or exactly ``epochs`` (as in :func:`train_gating`)."""
    start = time.perf_counter()
    cfg, run = ctx.cfg, ctx.run
    stage2 = stage2_checkpoint or ctx.models_dir / STAGE2_CHECKPOINT
    model = load_ames_model(cfg, run, ctx.graph, stage2, stage="gating")
    train_cfg = cfg.finetune.training
    trainable = [p for p in model.parameters() if p.requires_grad]
    compute_loss = loss_fn(cfg.finetune.loss, physics_context(run))
    choice = None
    if epochs is None:
        runs = finetune_fold_runs(ctx, stage2, compute_loss)
        choice = decide_epochs(ctx, runs, train_cfg, "finetune")
        epochs = choice.kept
    result = fit(
        model,
        compute_loss,
        run.windows("train"),
        run.windows("val"),
        exactly(train_cfg, epochs),
        best_path=ctx.models_dir / checkpoint_name,
        state_dir=ctx.state_root / state_name,
        live_dir=live_dir,
        trainable=trainable,
        desc="finetune",
        fingerprint=ctx.fingerprint([*MODEL_SECTIONS, "finetune"], stage2),
        extra_state=checkpoint_extra(stage2),
    )
    summary = model_summary(
        model, run, result, train_cfg.batch_size, routing_plot, train_cfg.max_batch_cells
    )
    summary.update(
        orographic_enhancement=model.meta.orographic_enhancement.item(),
        rain_shadow_suppression=model.meta.rain_shadow_suppression.item(),
        wind_from_deg=model.meta.wind_from_deg,  # what assemble_model resolved (and logged)
        loss_at_best_epoch=result.best_components,
        epoch_selection=None if choice is None else choice.report(),
        lr=train_cfg.lr,
        time_s=round(time.perf_counter() - start, 1),
    )
    return model, summary
