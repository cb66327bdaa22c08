"""DVCLive learning curves: one row per epoch under ``live_dir`` (metrics.json, plots/).

The x axis is the epoch, as in ``TrainResult.history``. Epoch 0 is the starting weights:
validation curves only in ``fit`` (no training pass), every split for a model with nothing
to train (``record_untrained``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ames.config import TrainConfig
from ames.errors import UserError
from ames.training.distributed import is_main_process
from ames.training.losses import LossFn, mean_losses


class LearningCurveError(UserError, RuntimeError):
    """DVCLive cannot write learning curves here (a git repository without a commit)."""


def open_live(live_dir: Path) -> Any:
    """A DVCLive logger (public API) that writes no dvc.yaml and saves no experiment.

    dvclive asks git for HEAD when it starts, so inside a git repository that has no commit
    yet it cannot start: that case is a one-line error saying how to fix it.
    """
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    try:
        return Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, resume=False)
    except SCMError as err:
        raise LearningCurveError(
            f"{live_dir}: DVCLive cannot write learning curves because this git repository "
            f"has no commit yet ({err}). Commit once (git add -A && git commit -m start) "
            "and run the stage again, or set train.live: false."
        ) from err


def log_live(live: Any, row: Mapping[str, float]) -> None:
    """Log one history row (``epoch`` plus metrics) as one DVCLive step."""
    live.step = int(row["epoch"])  # x axis = epoch, as in the history (0: starting weights)
    for key, value in row.items():
        if key != "epoch":
            live.log_metric(key, value)
    live.next_step()


def record_untrained(
    model: nn.Module,
    compute_loss: LossFn,
    splits: Mapping[str, Dataset],
    cfg: TrainConfig,
    device: torch.device,
    live_dir: str | Path | None,
) -> dict[str, float]:
    """The epoch-0 row of a model with nothing to train: its losses on each split.

    Written as a one-point learning curve, so a stage that declares its curves as outputs
    writes them whatever its switches leave to train. Data-parallel, rank 0 writes them."""
    row: dict[str, float] = {"epoch": 0}
    for name, data in splits.items():
        row.update(mean_losses(model, compute_loss, data, cfg.batch_size, device, name))
    if live_dir is not None and cfg.live and is_main_process():
        live = open_live(Path(live_dir))
        log_live(live, row)
        live.end()
    return row
