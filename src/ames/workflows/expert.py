"""Stage 1: train one elevation expert on the whole grid, loss masked to its zone.

Only the zone's outputs enter that loss, so experts 1 and 3 compute their graph layers on
the nodes that reach the zone (``zone_computation``): same loss, same gradients, fewer nodes.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ames.config import EXPERT_IDS, ConfigError
from ames.evaluation.ridge import penalty_label
from ames.evaluation.split_scores import score_split
from ames.models.experts import build_experts, expert_forecast_mm
from ames.models.losses import masked_mse
from ames.models.parameters import count_parameters
from ames.paths import expert_checkpoint
from ames.training.checkpoints import cpu_state_dict, load_state_dict_checked
from ames.training.device import select_device
from ames.training.engine import fit
from ames.training.folds import FoldRun, cross_validate_epochs, exactly
from ames.workflows.blocks import block_runs, fold_blocks, in_block_units
from ames.workflows.context import RunContext
from ames.workflows.linear_path_cache import cached_block_linear_paths, cached_linear_path

log = logging.getLogger("ames.expert")

LINEAR_ALPHA = "linear_path_alpha"  # checkpoint meta: the penalties by lead stage 1 selected
# checkpoint meta: per selection-fold block, the fold copy's weights at the kept epoch (when
# it is > 0), so that stacking reads the held-out copies instead of training them again
FOLD_STATES = "fold_states_at_kept_epoch"


def zone_loss(zone_mask: torch.Tensor):
    """An expert's training loss: the MSE over its zone's cells (transformed units)."""

    def compute_loss(net: torch.nn.Module, batch: dict[str, torch.Tensor]):
        loss = masked_mse(net(batch["x"]), batch["y"], zone_mask)
        return loss, {"mse": loss.item()}

    return compute_loss


@contextmanager
def zone_computation(model: torch.nn.Module, zone_mask: torch.Tensor, desc: str) -> Iterator[None]:
    """Within the block, ``model`` computes only what a loss on ``zone_mask`` reads, if it
    can (experts 1 and 3: ``computing_for``); the zone's outputs and gradients are unchanged."""
    restrict = getattr(model, "computing_for", None)
    if restrict is None:
        yield
        return
    with restrict(zone_mask) as graph:
        log.info(
            "%s: training on the %d graph nodes that reach its %d zone cells",
            desc,
            graph.n_nodes,
            int(zone_mask.sum()),
        )
        yield


def load_trained_experts(ctx: RunContext) -> list[nn.Module]:
    """The three experts as stage 1 kept them (checkpoints in ``ctx.models_dir``)."""
    experts = build_experts(ctx.cfg, ctx.run, ctx.graph)
    for index, expert in zip(EXPERT_IDS, experts, strict=True):
        load_state_dict_checked(
            expert, expert_checkpoint(index, ctx.models_dir), stage=f"expert@{index}"
        )
    return experts


def expert_fold_runs(
    ctx: RunContext, index: int, model: nn.Module, alpha: np.ndarray | None
) -> list[FoldRun]:
    """Per block of the selection folds' training origins, a copy of expert ``index`` as it
    starts (its ``linear_path: ridge`` refitted on the block's fitting origins at the
    penalties ``alpha``), trained on the block's fitting windows and scored on its own, both
    standardised without the block's targets (``ames.workflows.blocks.block_run``)."""
    cfg, run = ctx.cfg, ctx.run
    zone_mask = torch.from_numpy(run.zones[cfg.expert(index).zone])
    blocks = fold_blocks(cfg, run)
    bruns = block_runs(run, blocks)
    paths = None if alpha is None else cached_block_linear_paths(ctx, bruns, blocks, alpha)
    runs = []
    for b, (block, brun) in enumerate(zip(blocks, bruns, strict=True)):
        fold_model = copy.deepcopy(model)
        in_block_units([fold_model], brun)
        if paths is not None:
            fold_model.linear.set_weights(*paths[b])
        desc = f"expert{index} fold {b + 1}/{len(blocks)}"
        windows = brun.windows("train", block.fit), brun.windows("train", block.forecast)
        context = partial(zone_computation, fold_model, zone_mask, desc)
        runs.append(FoldRun(fold_model, zone_loss(zone_mask), *windows, context=context))
    return runs


def train_expert(
    ctx: RunContext, index: int, *, live_dir: Path | None = None, epochs: int | None = None
) -> dict[str, Any]:
    """Train expert ``index`` into ``ctx.models_dir`` for the epochs the folds keep
    (``ames.training.folds``), or exactly ``epochs`` (decided before: the seed members take
    the main chain's), and return its metrics (validation scores in mm/month); its resumable
    training state goes under ``ctx.state_root``."""
    start = time.perf_counter()
    cfg, run = ctx.cfg, ctx.run
    section = f"expert{index}"
    expert = cfg.expert(index)
    zone = expert.zone
    if zone not in run.zones:
        raise ConfigError(f"{cfg.source}: {section}.zone: unknown zone {zone!r}")
    model = build_experts(cfg, run, ctx.graph)[index - 1]
    zone_mask = torch.from_numpy(run.zones[zone])
    train_cfg = expert.training
    ridge_path = None
    if expert.ridge_linear_path:
        ridge_path = cached_linear_path(ctx)
        model.linear.set_weights(ridge_path.coef, ridge_path.intercept, ridge_path.loading)
        penalties = [penalty_label(a) for a in ridge_path.alpha]
        log.info("%s linear path: ridge penalty by lead %s", section, penalties)

    log.info(
        "%s (%s zone, %d cells): %d parameters",
        section,
        zone,
        int(zone_mask.sum()),
        count_parameters(model),
    )
    choice = None
    extra: dict[str, Any] = {}
    if ridge_path is not None:
        extra[LINEAR_ALPHA] = ridge_path.alpha.tolist()
    if epochs is None:
        alpha = None if ridge_path is None else ridge_path.alpha
        runs = expert_fold_runs(ctx, index, model, alpha)
        margin = cfg.selection.skill_margin_se
        states: dict[tuple[int, int], dict[str, torch.Tensor]] = {}

        def record(k: int, epoch: int, fold_model: nn.Module) -> None:
            states[k, epoch] = cpu_state_dict(fold_model)

        choice = cross_validate_epochs(runs, train_cfg, margin, desc=section, after_epoch=record)
        epochs = choice.kept
        if epochs > 0:
            extra[FOLD_STATES] = [states[k, epochs] for k in range(len(runs))]
    with zone_computation(model, zone_mask, section):
        result = fit(
            model,
            zone_loss(zone_mask),
            run.windows("train"),
            run.windows("val"),
            exactly(train_cfg, epochs),
            best_path=expert_checkpoint(index, ctx.models_dir),
            state_dir=ctx.state_root / section,
            live_dir=live_dir,
            desc=section,
            loss_mask=zone_mask,
            extra_state=extra or None,
            fingerprint=ctx.fingerprint(
                ["seed", "features", "linear_features", "selection", "train", section]
            ),
        )
    device = select_device(train_cfg.device)
    model.eval()
    scores, _ = score_split(
        expert_forecast_mm(model, run), run, "val", train_cfg.batch_size, device,
        train_cfg.max_batch_cells,
    )  # fmt: skip
    return {
        "zone": zone,
        "zone_cells": int(zone_mask.sum()),
        "n_params": count_parameters(model),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "epoch_selection": None if choice is None else choice.report(),
        "stopped_early": result.stopped_early,
        "best_val_loss": result.best_val_loss,
        "train_time_s": round(result.time_s, 1),
        "linear_path_ridge_alpha": None if ridge_path is None else ridge_path.alpha.tolist(),
        "linear_path_cv_mse": None if ridge_path is None else ridge_path.best_cv_mse.tolist(),
        "linear_path_evidence": None if ridge_path is None else ridge_path.evidence(),
        "time_s": round(time.perf_counter() - start, 1),
        "device": str(device),
        "val": {
            "in_zone": scores["by_zone"][zone],
            "by_zone": scores["by_zone"],
            "overall": scores["overall"],
        },
    }
