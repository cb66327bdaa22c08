"""The blocks of training origins that the selection folds hold out, and what is refitted per
block: stacking's expert copies and the fold copies that decide a stage's epochs
(``ames.training.folds``) train on a block's purged fitting origins and forecast its own."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ames.config import AmesConfig
from ames.evaluation.ridge import run_folds
from ames.models.linear_path import spatial_regressors
from ames.models.linear_path_fit import refit_at_penalties
from ames.run import RunInputs
from ames.selection import Fold


@dataclass(frozen=True)
class HeldOutBlock:
    fit: np.ndarray  # training origins the block's expert copies are fitted on (purged)
    forecast: np.ndarray  # training origins those copies forecast


def held_out_blocks(train_origins: np.ndarray, folds: list[Fold]) -> list[HeldOutBlock]:
    """One block per selection fold holding training origins: the fold's held-out training
    origins, forecast by copies fitted on the fold's purged training origins that are
    themselves training origins. Every training origin is forecast by exactly one block."""
    train = np.asarray(train_origins, dtype=np.int64)
    blocks = []
    for fold in folds:
        forecast = train[np.isin(train, fold.val)]
        if forecast.size == 0:
            continue
        fit_origins = train[np.isin(train, fold.train)]
        if fit_origins.size == 0:
            raise ValueError(
                f"stacking: the fold holding origins {forecast.min()}–{forecast.max()} has no "
                "training origin left to fit on after the purge; use more selection.folds"
            )
        blocks.append(HeldOutBlock(fit=fit_origins, forecast=forecast))
    covered = np.sort(np.concatenate([b.forecast for b in blocks]))
    if not np.array_equal(covered, np.sort(train)):
        raise ValueError("stacking: the selection folds do not cover every training origin once")
    return blocks


def fold_blocks(cfg: AmesConfig, run: RunInputs) -> list[HeldOutBlock]:
    """The selection folds' blocks of ``run``'s training origins."""
    train = np.asarray(run.masks.split["train"], dtype=np.int64)
    return held_out_blocks(train, run_folds(run, cfg.selection.folds))


def block_linear_paths(
    cfg: AmesConfig, run: RunInputs, blocks: list[HeldOutBlock], alpha: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """The experts' ``linear_path: ridge`` refitted on each block's fitting origins at the
    stage-1 penalties ``alpha`` (one regression for the three experts)."""
    regressors = spatial_regressors(cfg, run) if cfg.linear_features.adds_regressors else None
    return refit_at_penalties(
        run.inputs, run.masks.valid, [b.fit for b in blocks], run.window, run.horizon,
        regressors, alpha,
    )  # fmt: skip
