"""Checkpoint files: best weights, user checkpoints and the resumable training state.

Files
-----
* ``best_path``: ``{"format", "model", "meta"}`` with the CPU state dict of the epoch
  with the lowest validation loss; written atomically at every improvement and again at
  the end (DVC deletes stage outputs before re-running a stage, so a resumed run must be
  able to restore it from the training state).
* ``state_dir/last.pt``: model, optimizer, grad scaler, best weights, early-stopping
  counters and history. It is a cache: removed after a successful run unless
  ``keep_state=True`` (a kept state makes the next identical call return at once), and
  an unreadable or foreign state only costs a fresh start.

Every file is loadable with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ames.config import TrainConfig
from ames.errors import UserError
from ames.io import atomic_write

logger = logging.getLogger(__name__)

STATE_FILE = "last.pt"
CHECKPOINT_FORMAT = 1
STATE_FORMAT = 2  # 2: the history starts with epoch 0 (the starting weights)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that exists but cannot be used."""


def check_weights_only_safe(value: Any, where: str) -> None:
    """Fail early on anything ``torch.load(weights_only=True)`` would refuse to read."""
    if isinstance(value, Tensor) or type(value) in (str, int, float, bool, type(None)):
        return
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if type(key) not in (str, int):
                raise TypeError(f"{where}: key {key!r} must be a str or an int.")
            check_weights_only_safe(item, f"{where}.{key}")
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            check_weights_only_safe(item, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where}: a {type(value).__name__} cannot be stored in a weights-only checkpoint; "
        "use str/int/float/bool/None, tensors, and lists/tuples/dicts of them."
    )


def cpu_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """A detached CPU copy of ``model``'s state dict."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _torch_save(path: Path, payload: dict[str, Any]) -> Path:
    def write(tmp: Path) -> None:
        # Through a handle: given a path, torch names the zip records after the (random)
        # temporary file, and identical checkpoints would get different DVC hashes.
        with tmp.open("wb") as fh:
            torch.save(payload, fh)

    return atomic_write(path, write)


def save_checkpoint(path: str | Path, model: nn.Module, meta: Mapping[str, Any]) -> Path:
    """Atomically write ``model``'s CPU state dict and ``meta`` as a weights-only checkpoint."""
    meta = dict(meta)
    check_weights_only_safe(meta, "checkpoint meta")
    payload = {"format": CHECKPOINT_FORMAT, "model": cpu_state_dict(model), "meta": meta}
    return _torch_save(Path(path), payload)


def load_state_dict_checked(
    model: nn.Module, path: str | Path, *, stage: str | None = None
) -> dict[str, Any]:
    """Load a ``save_checkpoint`` file into ``model`` (strict) and return its meta.

    ``stage`` names the DVC stage that writes the file, for the hint in error messages.
    """
    path = Path(path)
    hint = f" Run `dvc repro {stage}` first." if stage else ""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found.{hint}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise CheckpointError(
            f"{path}: not a readable weights-only checkpoint ({exc}).{hint}"
        ) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise CheckpointError(f"{path}: not an AMES checkpoint (no 'model' state dict).{hint}")
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: does not fit {type(model).__name__}; it was probably written with "
            f"other model parameters.{hint or ' Re-run the stage that writes it.'}\n{exc}"
        ) from exc
    return dict(payload.get("meta") or {})


def write_best(
    path: Path,
    best_model: dict[str, Tensor] | None,
    *,
    epoch: int,
    val_loss: float,
    components: Mapping[str, float],
    extra: Mapping[str, Any] | None,
) -> None:
    """Write the best weights with their epoch, validation loss and components as meta."""
    meta: dict[str, Any] = {
        "epoch": epoch,
        "val_loss": val_loss,
        "components": dict(components),
    }
    if extra:
        meta["extra"] = dict(extra)
    _torch_save(path, {"format": CHECKPOINT_FORMAT, "model": best_model, "meta": meta})


# --------------------------------------------------------------------------- resume state


def state_fingerprint(
    cfg: TrainConfig, device: torch.device, amp: bool, model: nn.Module, names: list[str], user: str
) -> str:
    """The key a saved state must match to be resumed (config, device, parameters, user)."""
    # Fields that cannot change the numbers are left out, so toggling them keeps the state.
    ignored = {"device", "amp", "num_workers", "live"}
    payload = {
        "format": STATE_FORMAT,
        "cfg": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ignored},
        "device": device.type,
        "amp": amp,
        "trainable": names,
        "shapes": [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()],
        "user": user,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def save_state(
    path: Path,
    fingerprint: str,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    progress: Mapping[str, Any],
    best_model: dict[str, Tensor] | None,
) -> None:
    """Atomically write everything a resume needs (``progress``: the early-stop counters)."""
    payload = {
        "format": STATE_FORMAT,
        "fingerprint": fingerprint,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "progress": progress,
        "best_model": best_model,
    }
    _torch_save(path, payload)


def read_state(path: Path, fingerprint: str, desc: str) -> dict[str, Any] | None:
    """The saved state at ``path`` if it matches ``fingerprint``; None (logged) otherwise."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:
        logger.warning("%s: cannot read %s (%s); starting fresh.", desc, path, exc)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        logger.info(
            "%s: %s was written for other settings (config, data or model changed); "
            "starting fresh.",
            desc,
            path,
        )
        return None
    return state
