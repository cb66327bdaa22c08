"""How many epochs a stage keeps, decided by cross-validation over the pre-test record.

A validation split of a few dozen origins cannot tell a real improvement from noise, so a
training stage trains one copy per fold (each on its fold's purged fitting windows, scored
on the fold's held-out windows) in lockstep, epoch by epoch, and reads the pooled held-out
error of every epoch, the starting weights (epoch 0) included. The folds stop together
once the pooled error has not improved for ``cfg.patience`` epochs.

The winner is the epoch with the lowest pooled error, but a trained epoch replaces the
starting weights only where its gain is confirmed: larger than ``skill_margin_se``
standard errors of the per-fold gains (the rule ``ames.evaluation.ridge.confirmed_gain``
applies to the ridge penalties). The stage then trains its model on all fitting windows
for exactly that many epochs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn
from torch.utils.data import Dataset, Subset

from ames.config import TrainConfig
from ames.selection import pooled_fold_gain
from ames.training.engine import _Engine
from ames.training.losses import LossFn
from ames.training.trainable import requires_grad_only

logger = logging.getLogger(__name__)

CRITERION = "val/mse"  # the forecast's error, not the training objective's regularisers


@dataclass
class FoldRun:
    """One fold's copy of the model and its data."""

    model: nn.Module
    compute_loss: LossFn
    train_data: Dataset
    held_out: Dataset
    trainable: list[nn.Parameter] | None = None
    # entered around the fold's training (e.g. an expert computing only its zone)
    context: Callable[[], AbstractContextManager] = field(default=nullcontext)


@dataclass(frozen=True)
class EpochChoice:
    """The folds' verdict: per epoch, the pooled held-out error and each fold's."""

    kept: int
    lowest: int  # the epoch of the lowest pooled error (kept only if its gain is confirmed)
    pooled: list[float]
    by_fold: list[list[float]]
    fold_windows: list[int]
    gain: float  # pooled gain of ``lowest`` over epoch 0
    gain_se: float
    skill_margin_se: float
    held_out_stride: int = 1  # every n-th held-out window scored (train.max_epoch_windows)

    def report(self) -> dict[str, Any]:
        return {
            "decided_on": "folds",
            "kept": self.kept,
            "lowest_cv_epoch": self.lowest,
            "cv_mse_by_epoch": self.pooled,
            "cv_mse_by_fold_and_epoch": self.by_fold,
            "fold_windows": self.fold_windows,
            "held_out_stride": self.held_out_stride,
            "cv_gain_over_epoch0": self.gain,
            "cv_gain_se": self.gain_se,
            "skill_margin_se": self.skill_margin_se,
        }


def exactly(cfg: TrainConfig, epochs: int) -> TrainConfig:
    """``cfg`` training exactly ``epochs`` epochs and keeping the last (0: the starting
    weights): the epochs were decided before (by the folds), not by a validation split."""
    return dataclasses.replace(cfg, epochs=epochs, patience=None, keep_last=True)


def choose_epoch(losses: np.ndarray, windows: np.ndarray, skill_margin_se: float) -> EpochChoice:
    """``losses`` ``[K, E + 1]``: fold k's mean held-out error after epoch e (``windows[k]``
    held-out windows). The lowest pooled epoch, kept where its gain over epoch 0 exceeds
    ``skill_margin_se`` standard errors of the per-fold gains (0: the lowest wins)."""
    losses = np.asarray(losses, dtype=np.float64)
    weight = np.asarray(windows, dtype=np.float64) / np.sum(windows)
    pooled = weight @ losses
    lowest = int(np.argmin(pooled))
    gain, se = (float(v) for v in pooled_fold_gain(losses[:, 0] - losses[:, lowest], windows))
    confirmed = lowest > 0 and (skill_margin_se <= 0 or gain > skill_margin_se * se)
    return EpochChoice(
        kept=lowest if confirmed else 0,
        lowest=lowest,
        pooled=[float(v) for v in pooled],
        by_fold=[[float(v) for v in row] for row in losses],
        fold_windows=[int(n) for n in windows],
        gain=gain,
        gain_se=se,
        skill_margin_se=skill_margin_se,
    )


def held_out_stride(sizes: list[int], cap: int | None) -> int:
    """Score every ``stride``-th held-out window of each fold, so that the folds together
    score at most ``cap`` windows per epoch (1: all; ``cap`` None: no limit). Neighbouring
    origins share all but one of their target months, so a long record loses little."""
    total = sum(sizes)
    return 1 if cap is None or total <= cap else math.ceil(total / cap)


def every_nth(data: Dataset, stride: int) -> Dataset:
    return data if stride == 1 else Subset(data, range(0, len(data), stride))  # type: ignore[arg-type]


def cross_validate_epochs(
    runs: list[FoldRun],
    cfg: TrainConfig,
    skill_margin_se: float,
    *,
    desc: str,
    after_epoch: Callable[[int, int, nn.Module], None] | None = None,
) -> EpochChoice:
    """Train the fold copies in ``runs`` together, epoch by epoch, up to ``cfg.epochs``
    (stopping once the pooled held-out error has not improved for ``cfg.patience`` epochs),
    and choose the epoch (:func:`choose_epoch`). ``after_epoch(fold, epoch, model)`` sees
    each copy after each epoch (epoch 0: the starting weights)."""
    stride = held_out_stride([len(r.held_out) for r in runs], cfg.max_epoch_windows)
    held_out = [every_nth(r.held_out, stride) for r in runs]
    if stride > 1:
        logger.info(
            "%s: the folds score one held-out window in %d (%d of %d; train.max_epoch_windows)",
            desc, stride, sum(map(len, held_out)), sum(len(r.held_out) for r in runs),
        )  # fmt: skip
    windows = np.array([len(h) for h in held_out])
    curves: list[list[float]] = [[] for _ in runs]
    best, bad = np.inf, 0
    with ExitStack() as stack:
        for run in runs:
            stack.enter_context(run.context())
        engines = [
            _Engine(r.model, r.compute_loss, r.train_data, h, cfg, r.trainable, None,
                    f"{desc} fold {k + 1}/{len(runs)}")
            for k, (r, h) in enumerate(zip(runs, held_out, strict=True))
        ]  # fmt: skip
        for engine in engines:
            stack.enter_context(requires_grad_only(engine.model, engine.trainable_ids))
            stack.enter_context(engine.data_parallel())
        for epoch in range(cfg.epochs + 1):
            for k, engine in enumerate(engines):
                if epoch > 0:
                    engine.train_epoch(epoch)
                curves[k].append(engine.validate(epoch)[CRITERION])
                if after_epoch is not None:
                    after_epoch(k, epoch, engine.model)
            pooled = float(windows @ [c[-1] for c in curves] / windows.sum())
            improved = pooled < best - cfg.min_delta
            best, bad = (pooled, 0) if improved else (best, bad + 1)
            status = "best" if improved else f"patience {bad}"
            logger.info("%s: epoch %d, pooled held-out MSE %.6g (%s)", desc, epoch, pooled, status)
            if cfg.patience is not None and bad >= cfg.patience:
                break
    choice = choose_epoch(np.array(curves), windows, skill_margin_se)
    choice = dataclasses.replace(choice, held_out_stride=stride)
    logger.info(
        "%s: the folds keep epoch %d (lowest pooled error at epoch %d, gain %.3g, SE %.3g)",
        desc, choice.kept, choice.lowest, choice.gain, choice.gain_se,
    )  # fmt: skip
    return choice
