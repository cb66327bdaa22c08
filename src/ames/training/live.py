"""DVCLive learning curves: one row per epoch under ``live_dir`` (metrics.json, plots/).

The x axis is the 1-based epoch, as in ``TrainResult.history``; epoch 0 is the untrained
model (``record_untrained``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ames.training.config import TrainConfig
from ames.training.losses import LossFn, mean_losses

logger = logging.getLogger(__name__)


def open_live(live_dir: Path) -> Any:
    """A DVCLive logger that writes no dvc.yaml and saves no experiment.

    dvclive 3.49 raises ``SCMError: Empty git repo`` in a git repository without
    commits (it asks for HEAD before checking ``no_commits``). Only that case falls back
    to a logger without the DVC/Git integration, which these options do not use anyway.
    """
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    kwargs = {"dir": str(live_dir), "dvcyaml": False, "save_dvc_exp": False, "resume": False}
    try:
        return Live(**kwargs)
    except SCMError:
        if not _git_without_commits():
            raise
    logger.warning(
        "DVCLive cannot read the git HEAD (the repository has no commits yet); "
        "writing learning curves to %s without DVC/Git integration.",
        live_dir,
    )

    class _RepoFreeLive(Live):
        # No public option skips the repository lookup that fails here; this override
        # takes the path dvclive itself takes outside any repository.
        def _init_dvc(self) -> None:
            self._dvc_file = self._init_dvc_file()

    return _RepoFreeLive(**kwargs)


def _git_without_commits() -> bool:
    from scmrepo.exceptions import SCMError
    from scmrepo.git import Git

    try:
        return bool(Git().no_commits)
    except SCMError:
        return False


def log_live(live: Any, row: Mapping[str, float]) -> None:
    """Log one history row (``epoch`` plus metrics) as one DVCLive step."""
    live.step = int(row["epoch"])  # x axis = 1-based epoch, as in the history
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
    writes them whatever its switches leave to train."""
    row: dict[str, float] = {"epoch": 0}
    for name, data in splits.items():
        row.update(mean_losses(model, compute_loss, data, cfg.batch_size, device, name))
    if live_dir is not None and cfg.live:
        live = open_live(Path(live_dir))
        log_live(live, row)
        live.end()
    return row
