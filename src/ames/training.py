"""The training engine every stage reuses (experts, gating, finetune, ablations).

``fit`` runs AdamW with gradient clipping, early stopping on the validation loss and a
best checkpoint, and can be killed at any point: after every epoch it writes
``state_dir/last.pt`` and a re-run with the same fingerprint resumes from the next epoch.
On CPU a resumed run ends with bitwise the same weights, history and learning curves as
an uninterrupted one, because every source of randomness is re-derived from
``cfg.seed`` and the epoch number instead of being carried along:

* the shuffling generator is seeded with ``derive_seed(seed, "shuffle", epoch)``;
* the global torch RNG (dropout, ...) with ``derive_seed(seed, "epoch", epoch)``.

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
import difflib
import hashlib
import json
import logging
import math
import pickle
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ames.config import derive_seed
from ames.errors import UserError
from ames.io import atomic_write

logger = logging.getLogger(__name__)

Batch = dict[str, Tensor]
LossFn = Callable[[nn.Module, Batch], tuple[Tensor, Mapping[str, float]]]

STATE_FILE = "last.pt"
CHECKPOINT_FORMAT = 1
_STATE_FORMAT = 1


class DeviceUnavailableError(UserError, RuntimeError):
    """An explicitly requested device that this machine or torch build lacks."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that exists but cannot be used."""


# --------------------------------------------------------------------------- device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(preference: str = "auto") -> torch.device:
    """Resolve ``auto`` (CUDA, else MPS, else CPU) or check an explicit cpu/cuda[:N]/mps."""
    pref = str(preference).strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        device = torch.device(pref)
    except RuntimeError as exc:
        raise ValueError(_bad_device_message(preference)) from exc
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(_bad_device_message(preference))
    _check_available(device, preference)
    return device


def _bad_device_message(preference: str) -> str:
    return f"training device '{preference}' is not supported; use auto, cpu, cuda, cuda:N or mps."


def _check_available(device: torch.device, preference: str) -> None:
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"training device '{preference}' requested but CUDA is not available "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}). "
                "Set the training device to 'auto' or 'cpu'."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"training device '{preference}' requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible."
            )
    if device.type == "mps" and not _mps_available():
        raise DeviceUnavailableError(
            f"training device '{preference}' requested but Apple MPS is not available. "
            "Set the training device to 'auto' or 'cpu'."
        )


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (one ``training`` block of params.yaml)."""

    epochs: int
    lr: float
    patience: int | None  # None: never stop early
    batch_size: int
    seed: int
    weight_decay: float = 1e-4
    grad_clip: float | None = 1.0  # global L2 norm; None disables clipping
    min_delta: float = 0.0  # an epoch improves iff val_loss < best - min_delta
    amp: bool = False  # float16 autocast + GradScaler, effective on CUDA only
    device: str = "auto"
    num_workers: int = 0
    live: bool = True  # DVCLive learning curves when fit() gets a live_dir

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), f.type))
        self._validate()

    def _validate(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "lr": self.lr > 0,
            "patience": self.patience is None or self.patience >= 1,
            "batch_size": self.batch_size >= 1,
            "weight_decay": self.weight_decay >= 0,
            "grad_clip": self.grad_clip is None or self.grad_clip > 0,
            "min_delta": self.min_delta >= 0,
            "num_workers": self.num_workers >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ValueError(
                f"TrainConfig: invalid value(s) {values}. Expected epochs, batch_size, "
                "patience >= 1 (patience may be null), lr > 0, grad_clip > 0 or null, "
                "weight_decay, min_delta, num_workers >= 0."
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "training") -> TrainConfig:
        """Build from a params mapping; unknown or missing keys fail with a clear message."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"{source}: {_unknown_keys_message(unknown, names)}")
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.name not in values
        ]
        if required:
            raise ValueError(f"{source}: missing training option(s) {', '.join(required)}.")
        return cls(**dict(values))


def _unknown_keys_message(unknown: list[str], known: list[str]) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1)
        parts.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return f"unknown training option(s) {', '.join(parts)}. Valid options: {', '.join(known)}."


def _coerce(name: str, value: Any, annotation: str) -> Any:
    """Check one field against its annotation ("int", "float | None", ...)."""
    base, _, rest = annotation.partition("|")
    base = base.strip()
    if value is None and "None" in rest:
        return None
    if base == "float" and isinstance(value, str):
        # YAML 1.1 reads `1e-3` (no dot) as a string; accept what float() accepts.
        try:
            return float(value)
        except ValueError:
            pass
    is_bool = isinstance(value, bool)
    if base == "float" and isinstance(value, (int, float)) and not is_bool:
        return float(value)
    if base == "int" and isinstance(value, int) and not is_bool:
        return value
    if (base == "bool" and is_bool) or (base == "str" and isinstance(value, str)):
        return value
    raise TypeError(f"TrainConfig.{name}: expected {annotation}, got {value!r}.")


# --------------------------------------------------------------------------- checkpoints


def _check_weights_only_safe(value: Any, where: str) -> None:
    """Fail early on anything ``torch.load(weights_only=True)`` would refuse to read."""
    if isinstance(value, Tensor) or type(value) in (str, int, float, bool, type(None)):
        return
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if type(key) not in (str, int):
                raise TypeError(f"{where}: key {key!r} must be a str or an int.")
            _check_weights_only_safe(item, f"{where}.{key}")
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_weights_only_safe(item, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where}: a {type(value).__name__} cannot be stored in a weights-only checkpoint; "
        "use str/int/float/bool/None, tensors, and lists/tuples/dicts of them."
    )


def _cpu_state_dict(model: nn.Module) -> dict[str, Tensor]:
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
    _check_weights_only_safe(meta, "checkpoint meta")
    payload = {"format": CHECKPOINT_FORMAT, "model": _cpu_state_dict(model), "meta": meta}
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


# --------------------------------------------------------------------------- result


@dataclass
class TrainResult:
    """Outcome of ``fit``; the model already holds the best weights."""

    best_epoch: int  # 1-based
    best_val_loss: float
    epochs_run: int  # epochs completed in total, including those before a resume
    stopped_early: bool
    time_s: float  # seconds spent in epochs, summed over resumed sessions
    history: list[dict[str, float]]  # per epoch: epoch, train/loss, val/loss, train/<c>, val/<c>
    resumed_from_epoch: int  # last epoch restored from state_dir (0: fresh start)
    best_components: dict[str, float] = field(default_factory=dict)  # val components at best


@dataclass
class _Progress:
    """Everything besides model/optimizer/scaler that a resume must restore."""

    epoch: int = 0  # epochs completed
    best_epoch: int = 0
    best_val_loss: float = math.inf
    best_components: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0
    stopped_early: bool = False
    time_s: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    best_model: dict[str, Tensor] | None = None

    def counters(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "best_model"}

    def record(self, row: dict[str, float], model: nn.Module, cfg: TrainConfig) -> bool:
        """Add one finished epoch; return whether it is the new best."""
        self.epoch = int(row["epoch"])
        self.history.append(row)
        improved = row["val/loss"] < self.best_val_loss - cfg.min_delta
        if improved:
            self.best_epoch, self.best_val_loss, self.bad_epochs = self.epoch, row["val/loss"], 0
            self.best_components = _val_components(row)
            self.best_model = _cpu_state_dict(model)
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


class _Mean:
    """Batch-size-weighted running means of the loss and its components."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, loss: float, parts: Mapping[str, Any], n: int) -> None:
        for key, value in {"loss": loss, **parts}.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * n
            self.counts[key] = self.counts.get(key, 0) + n

    def means(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}/{k}": self.sums[k] / self.counts[k] for k in self.sums}


# --------------------------------------------------------------------------- helpers


def _resolve_trainable(
    model: nn.Module, trainable: Iterable[nn.Parameter] | None
) -> list[tuple[str, nn.Parameter]]:
    named = list(model.named_parameters())
    if trainable is None:
        chosen = [(n, p) for n, p in named if p.requires_grad]
    else:
        wanted = {id(p) for p in trainable}
        chosen = [(n, p) for n, p in named if id(p) in wanted]
        if len(chosen) != len(wanted):
            raise ValueError("fit: `trainable` holds tensors that are not parameters of the model.")
    if not chosen:
        raise ValueError("fit: nothing to train (no trainable parameters).")
    return chosen


def _frozen_modules(model: nn.Module, trainable_ids: set[int]) -> list[nn.Module]:
    """Sub-modules that own parameters of which none is trained."""
    return [
        m
        for m in model.modules()
        if next(m.parameters(), None) is not None
        and not any(id(p) in trainable_ids for p in m.parameters())
    ]


@contextmanager
def _requires_grad_only(model: nn.Module, trainable_ids: set[int]) -> Iterator[None]:
    """Switch autograd off for frozen parameters (no wasted backward), restore afterwards."""
    saved = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in saved:
        p.requires_grad_(id(p) in trainable_ids)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def _fingerprint(
    cfg: TrainConfig, device: torch.device, amp: bool, model: nn.Module, names: list[str], user: str
) -> str:
    # Fields that cannot change the numbers are left out, so toggling them keeps the state.
    ignored = {"device", "amp", "num_workers", "live"}
    payload = {
        "format": _STATE_FORMAT,
        "cfg": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ignored},
        "device": device.type,
        "amp": amp,
        "trainable": names,
        "shapes": [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()],
        "user": user,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _to_device(batch: Any, device: torch.device) -> Batch:
    if not isinstance(batch, Mapping):
        raise TypeError(f"fit: batches must be dicts of tensors, got {type(batch).__name__}.")
    non_blocking = device.type == "cuda"
    return {
        k: v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v
        for k, v in batch.items()
    }


def _batch_size(batch: Batch) -> int:
    for value in batch.values():
        if isinstance(value, Tensor) and value.ndim > 0:
            return int(value.shape[0])
    raise TypeError("fit: a batch holds no tensor with a batch dimension.")


def _call_loss(compute_loss: LossFn, model: nn.Module, batch: Batch) -> tuple[Tensor, dict]:
    out = compute_loss(model, batch)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], Tensor)):
        raise TypeError("compute_loss must return (scalar loss tensor, dict of components).")
    loss, parts = out
    if loss.ndim != 0:
        raise ValueError(f"compute_loss must return a scalar loss, got shape {list(loss.shape)}.")
    return loss, dict(parts)


# --------------------------------------------------------------------------- live


def _open_live(live_dir: Path) -> Any:
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
        def _init_dvc(self) -> None:  # the path dvclive takes outside any repository
            self._dvc_file = self._init_dvc_file()

    return _RepoFreeLive(**kwargs)


def _git_without_commits() -> bool:
    from scmrepo.exceptions import SCMError
    from scmrepo.git import Git

    try:
        return bool(Git().no_commits)
    except SCMError:
        return False


def _log_live(live: Any, row: Mapping[str, float]) -> None:
    live.step = int(row["epoch"])  # x axis = 1-based epoch, as in the history
    for key, value in row.items():
        if key != "epoch":
            live.log_metric(key, value)
    live.next_step()


@torch.no_grad()
def mean_losses(
    model: nn.Module,
    compute_loss: LossFn,
    data: Dataset,
    batch_size: int,
    device: torch.device,
    prefix: str,
) -> dict[str, float]:
    """Sample-weighted mean loss and components of ``model`` over ``data`` (no training)."""
    model.eval()
    mean = _Mean()
    for raw in DataLoader(data, batch_size=batch_size, shuffle=False):
        batch = _to_device(raw, device)
        loss, parts = _call_loss(compute_loss, model, batch)
        mean.add(loss.item(), parts, _batch_size(batch))
    return mean.means(prefix)


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
        live = _open_live(Path(live_dir))
        _log_live(live, row)
        live.end()
    return row


# --------------------------------------------------------------------------- engine


class _Engine:
    """One ``fit`` call: model, optimizer, loaders and the resumable progress."""

    def __init__(
        self,
        model: nn.Module,
        compute_loss: LossFn,
        train_data: Dataset,
        val_data: Dataset,
        cfg: TrainConfig,
        trainable: Iterable[nn.Parameter] | None,
        collate: Callable[[list[Any]], Any] | None,
        desc: str,
    ) -> None:
        self.cfg, self.desc, self.compute_loss = cfg, desc or "train", compute_loss
        self.device = select_device(cfg.device)
        self.amp = cfg.amp and self.device.type == "cuda"
        if cfg.amp and not self.amp:
            logger.info("%s: amp requested but ignored on %s.", self.desc, self.device.type)
        self.model = model.to(self.device)
        self.named = _resolve_trainable(self.model, trainable)
        self.trainable_ids = {id(p) for _, p in self.named}
        self.frozen = _frozen_modules(self.model, self.trainable_ids)
        self.params = [p for _, p in self.named]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.shuffle_gen = torch.Generator()
        self.train_loader = self._loader(train_data, collate, self.shuffle_gen, shuffle=True)
        # Its own generator keeps validation from drawing on the global RNG.
        self.val_loader = self._loader(val_data, collate, torch.Generator(), shuffle=False)
        if len(self.train_loader) == 0 or len(self.val_loader) == 0:
            raise ValueError(f"{self.desc}: the training and validation sets must not be empty.")
        self.progress = _Progress()

    def _loader(
        self, data: Dataset, collate: Callable | None, gen: torch.Generator, shuffle: bool
    ) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.cfg.batch_size,
            shuffle=shuffle,
            generator=gen,
            num_workers=self.cfg.num_workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
        )

    def autocast(self) -> AbstractContextManager:
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.float16)
        return nullcontext()

    def fingerprint(self, user: str) -> str:
        names = [n for n, _ in self.named]
        return _fingerprint(self.cfg, self.device, self.amp, self.model, names, user)

    # ---- one epoch

    def train_epoch(self, epoch: int) -> dict[str, float]:
        torch.manual_seed(derive_seed(self.cfg.seed, "epoch", epoch))
        self.shuffle_gen.manual_seed(derive_seed(self.cfg.seed, "shuffle", epoch))
        self.model.train()
        for module in self.frozen:
            module.eval()  # frozen parts keep dropout off and batch-norm statistics fixed
        mean = _Mean()
        bar = tqdm(self.train_loader, desc=self._bar(epoch, "train"), leave=False, unit="batch")
        for batch_index, raw in enumerate(bar):
            batch = _to_device(raw, self.device)
            loss, parts = self.train_step(batch)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"{self.desc}: non-finite training loss ({loss}) at epoch {epoch}, "
                    f"batch {batch_index + 1}. Lower lr or check the inputs for NaN."
                )
            mean.add(loss, parts, _batch_size(batch))
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        return mean.means("train")

    def train_step(self, batch: Batch) -> tuple[float, dict]:
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss, parts = _call_loss(self.compute_loss, self.model, batch)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not scaled ones
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item(), parts

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float]:
        self.model.eval()
        mean = _Mean()
        for raw in tqdm(self.val_loader, desc=self._bar(epoch, "val"), leave=False, unit="batch"):
            batch = _to_device(raw, self.device)
            with self.autocast():
                loss, parts = _call_loss(self.compute_loss, self.model, batch)
            mean.add(loss.item(), parts, _batch_size(batch))
        means = mean.means("val")
        if not math.isfinite(means["val/loss"]):
            raise FloatingPointError(f"{self.desc}: non-finite validation loss at epoch {epoch}.")
        return means

    def _bar(self, epoch: int, phase: str) -> str:
        return f"{self.desc} {epoch}/{self.cfg.epochs} {phase}"

    # ---- resumable state

    def save_state(self, path: Path, fingerprint: str) -> None:
        payload = {
            "format": _STATE_FORMAT,
            "fingerprint": fingerprint,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "progress": self.progress.counters(),
            "best_model": self.progress.best_model,
        }
        _torch_save(path, payload)

    def restore(self, path: Path, fingerprint: str) -> int:
        """Load a matching state; return the epoch it resumes after (0: fresh start)."""
        state = _read_state(path, fingerprint, self.desc)
        if state is None:
            return 0
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.progress = _Progress(**state["progress"], best_model=state["best_model"])
        p = self.progress
        logger.info(
            "%s: resuming from %s after epoch %d/%d (best val %.6g at epoch %d).",
            self.desc,
            path,
            p.epoch,
            self.cfg.epochs,
            p.best_val_loss,
            p.best_epoch,
        )
        return p.epoch

    def log_epoch(self, row: Mapping[str, float], improved: bool, seconds: float) -> None:
        p = self.progress
        if improved:
            status = "best"
        else:
            status = f"best {p.best_val_loss:.6g} @ {p.best_epoch}, patience {p.bad_epochs}"
            status += f"/{self.cfg.patience}" if self.cfg.patience else ""
        logger.info(
            "%s epoch %d/%d: train %.6g, val %.6g (%s) %.1fs",
            self.desc,
            row["epoch"],
            self.cfg.epochs,
            row["train/loss"],
            row["val/loss"],
            status,
            seconds,
        )


def _read_state(path: Path, fingerprint: str, desc: str) -> dict[str, Any] | None:
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


def _write_best(path: Path, progress: _Progress, extra: Mapping[str, Any] | None) -> None:
    meta: dict[str, Any] = {
        "epoch": progress.best_epoch,
        "val_loss": progress.best_val_loss,
        "components": dict(progress.best_components),
    }
    if extra:
        meta["extra"] = dict(extra)
    _torch_save(path, {"format": CHECKPOINT_FORMAT, "model": progress.best_model, "meta": meta})


def fit(
    model: nn.Module,
    compute_loss: LossFn,
    train_data: Dataset,
    val_data: Dataset,
    cfg: TrainConfig,
    *,
    best_path: str | Path,
    state_dir: str | Path,
    live_dir: str | Path | None = None,
    trainable: Iterable[nn.Parameter] | None = None,
    desc: str = "",
    extra_state: Mapping[str, Any] | None = None,
    collate: Callable[[list[Any]], Any] | None = None,
    fingerprint: str = "",
    keep_state: bool = False,
    loss_mask: Tensor | None = None,
) -> TrainResult:
    """Train ``model`` (moved to the selected device) and leave it holding the best weights.

    ``compute_loss(model, batch)`` returns the scalar loss and named float components;
    both are averaged over samples per epoch. Only ``trainable`` (default: the parameters
    with requires_grad) are optimised; during the call the other parameters have
    requires_grad off and sub-modules that own only such parameters stay in eval mode.
    ``fingerprint`` (e.g. a params + data hash) joins the config in deciding whether
    ``state_dir/last.pt`` may be resumed. ``extra_state`` (weights-only-safe values) is
    stored in the best checkpoint's meta under "extra". Each epoch re-seeds the global torch
    RNG from ``cfg.seed``, so the caller's RNG state after the call is seed-determined.
    ``loss_mask`` (the cells the loss counts, e.g. an expert's zone) must hold at least one
    cell: a loss over no cell is 0, and early stopping would keep the random initial weights.
    """
    if loss_mask is not None:
        require_loss_cells(loss_mask, desc)
    if extra_state is not None:
        _check_weights_only_safe(dict(extra_state), "extra_state")
    engine = _Engine(model, compute_loss, train_data, val_data, cfg, trainable, collate, desc)
    state_path = Path(state_dir) / STATE_FILE
    key = engine.fingerprint(fingerprint)
    resumed_from = engine.restore(state_path, key)
    live = None
    if live_dir is not None and cfg.live:
        live = _open_live(Path(live_dir))
        for row in engine.progress.history:  # the curves always equal the full history
            _log_live(live, row)
    with _requires_grad_only(engine.model, engine.trainable_ids):
        _run_epochs(engine, Path(best_path), state_path, key, live, extra_state)
    return _finish(engine, Path(best_path), state_path, live, extra_state, keep_state, resumed_from)


def require_loss_cells(loss_mask: Tensor, desc: str = "") -> None:
    """Raise ``ValueError`` if ``loss_mask`` selects no cell (nothing could be learnt)."""
    n_cells = int(torch.as_tensor(loss_mask).bool().sum())
    if n_cells == 0:
        raise ValueError(
            f"{desc or 'training'}: the loss mask has no cells "
            f"(shape {tuple(loss_mask.shape)}), so the loss is 0 and nothing can be learnt; "
            "give the zone cells (zones.mode: auto or quantile) and re-run `dvc repro masks`"
        )


def _run_epochs(
    engine: _Engine,
    best_path: Path,
    state_path: Path,
    key: str,
    live: Any,
    extra: Mapping[str, Any] | None,
) -> None:
    progress, cfg = engine.progress, engine.cfg
    while not progress.finished(cfg):
        epoch = progress.epoch + 1
        start = time.perf_counter()
        row = {"epoch": epoch, **engine.train_epoch(epoch), **engine.validate(epoch)}
        improved = progress.record(row, engine.model, cfg)
        seconds = time.perf_counter() - start
        progress.time_s += seconds
        if improved:
            _write_best(best_path, progress, extra)
        engine.save_state(state_path, key)
        if live is not None:
            _log_live(live, row)
        engine.log_epoch(row, improved, seconds)
    if progress.stopped_early:
        logger.info(
            "%s: early stop after epoch %d (no improvement for %d epochs).",
            engine.desc,
            progress.epoch,
            progress.bad_epochs,
        )


def _finish(
    engine: _Engine,
    best_path: Path,
    state_path: Path,
    live: Any,
    extra: Mapping[str, Any] | None,
    keep_state: bool,
    resumed_from: int,
) -> TrainResult:
    progress = engine.progress
    if progress.best_model is None:
        raise RuntimeError(f"{engine.desc}: no best weights recorded in {state_path}.")
    engine.model.load_state_dict(progress.best_model)
    _write_best(best_path, progress, extra)  # again: DVC removes outputs before a re-run
    if live is not None:
        live.end()
    if not keep_state:
        state_path.unlink(missing_ok=True)
    logger.info(
        "%s: best val %.6g at epoch %d of %d; weights in %s.",
        engine.desc,
        progress.best_val_loss,
        progress.best_epoch,
        progress.epoch,
        best_path,
    )
    return progress.result(resumed_from)
