"""Early stopping and the best epoch: the progress a resume restores, and ``TrainResult``."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from ames.config import TrainConfig
from ames.training.checkpoints import cpu_state_dict


@dataclass
class TrainResult:
    """Outcome of ``fit``; the model already holds the best weights.

    ``history`` has one row per epoch: ``epoch``, ``train/loss``, ``val/loss``,
    ``train/<c>``, ``val/<c>``; its first row is epoch 0, the starting weights, which has
    only the ``val/*`` keys (no training pass).
    """

    best_epoch: int  # 1..epochs_run; 0: no training epoch beat the starting weights, kept
    best_val_loss: float
    epochs_run: int  # training epochs completed in total (epoch 0 not counted), with resumes
    stopped_early: bool
    time_s: float  # seconds spent in epochs (epoch 0 included), summed over resumed sessions
    history: list[dict[str, float]]
    # last epoch restored from state_dir; 0: a fresh start, or a resume right after epoch 0
    resumed_from_epoch: int
    best_components: dict[str, float] = field(default_factory=dict)  # val components at best


@dataclass
class Progress:
    """Everything besides model/optimizer/scaler that a resume must restore."""

    epoch: int = 0  # training epochs completed (the last recorded epoch)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    best_components: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0
    stopped_early: bool = False
    time_s: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    best_model: dict[str, Tensor] | None = None

    @property
    def started(self) -> bool:
        """Whether epoch 0 (the starting weights) is recorded: false only on a fresh start."""
        return bool(self.history)

    def counters(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "best_model"}

    def record(self, row: dict[str, float], model: nn.Module, cfg: TrainConfig) -> bool:
        """Add one finished epoch; return whether it is the new best.

        Epoch 0 always is (nothing to beat yet), so it leaves ``bad_epochs`` at 0.
        """
        self.epoch = int(row["epoch"])
        self.history.append(row)
        improved = cfg.keep_last or row["val/loss"] < self.best_val_loss - cfg.min_delta
        if improved:
            self.best_epoch, self.best_val_loss, self.bad_epochs = self.epoch, row["val/loss"], 0
            self.best_components = _val_components(row)
            self.best_model = cpu_state_dict(model)
        else:
            self.bad_epochs += 1
        out_of_patience = cfg.patience is not None and self.bad_epochs >= cfg.patience
        self.stopped_early = out_of_patience and self.epoch < cfg.epochs
        return improved

    def finished(self, cfg: TrainConfig) -> bool:
        out_of_patience = cfg.patience is not None and self.bad_epochs >= cfg.patience
        return self.epoch >= cfg.epochs or out_of_patience

    def result(self, resumed_from: int) -> TrainResult:
        return TrainResult(
            best_epoch=self.best_epoch,
            best_val_loss=self.best_val_loss,
            epochs_run=self.epoch,
            stopped_early=self.stopped_early,
            time_s=self.time_s,
            history=[dict(row) for row in self.history],
            resumed_from_epoch=resumed_from,
            best_components=dict(self.best_components),
        )


def _val_components(row: Mapping[str, float]) -> dict[str, float]:
    return {k[4:]: v for k, v in row.items() if k.startswith("val/") and k != "val/loss"}
