"""``fit``: the resumable epoch loop every stage reuses (experts, gating, finetune, ablations).

``fit`` runs AdamW with gradient clipping, early stopping on the validation loss and a
best checkpoint, and can be killed at any point: after every epoch it writes
``state_dir/last.pt`` and a re-run with the same fingerprint resumes from the next epoch
(files: ``ames.training.checkpoints``). A fresh start first validates the starting
weights as epoch 0 (no training pass, no ``train/*`` keys), so they are the first
candidate for the best epoch: a run whose training never beats them keeps them. On CPU a
resumed run ends with bitwise the same weights, history and learning curves as an
uninterrupted one, because every source of randomness is re-derived from ``cfg.seed`` and
the epoch number instead of being carried along:

* the shuffling generator is seeded with ``derive_seed(seed, "shuffle", epoch)``;
* the global torch RNG (dropout, ...) with ``derive_seed(seed, "epoch", epoch)``.

Launched by ``torchrun`` with several processes (``ames.training.distributed``), the ranks
train one model data-parallel: each takes its share of every global batch of
``cfg.batch_size`` samples (the same batches, in the same order, as one process), the
model is wrapped in ``DistributedDataParallel``, each rank's loss is weighted by its share
of the batch so the averaged gradient is the whole batch's, and the epoch's training and
validation means are summed over the ranks, so every rank takes the same early-stopping
decisions. Rank 0 alone writes the checkpoints, the state and the learning curves; every
rank ends with rank 0's best weights. Dropout draws per rank (``..., "rank", rank``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler
from tqdm import tqdm

from ames.config import TrainConfig, derive_seed
from ames.training.checkpoints import (
    STATE_FILE,
    check_weights_only_safe,
    read_state,
    save_state,
    state_fingerprint,
    write_best,
)
from ames.training.device import amp_enabled, autocast, select_device
from ames.training.distributed import (
    ShardedBatches,
    barrier,
    broadcast_module,
    data_parallel,
    init_from_env,
    is_main_process,
    most_over_ranks,
    rank,
    require_same,
    sum_over_ranks,
    world_size,
)
from ames.training.live import log_live, open_live
from ames.training.losses import (
    Batch,
    LossFn,
    RunningMean,
    call_loss,
    count_samples,
    micro_batches,
    to_device,
)
from ames.training.progress import Progress, TrainResult
from ames.training.trainable import frozen_modules, requires_grad_only, resolve_trainable

logger = logging.getLogger(__name__)


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
        self.parallel = init_from_env()  # several torchrun processes: data-parallel
        self.main = is_main_process()
        self.device = select_device(cfg.device)
        self.amp = amp_enabled(cfg.amp, self.device)
        if cfg.amp and not self.amp:
            logger.info("%s: amp requested but ignored on %s.", self.desc, self.device.type)
        self.model = model.to(self.device)
        self.net: nn.Module = self.model  # what training calls: DDP while data-parallel
        self.named = resolve_trainable(self.model, trainable)
        self.trainable_ids = {id(p) for _, p in self.named}
        self.frozen = frozen_modules(self.model, self.trainable_ids)
        self.params = [p for _, p in self.named]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.shuffle_gen = torch.Generator()
        self.train_loader = self._loader(train_data, collate, self.shuffle_gen, shuffle=True)
        # Its own generator keeps validation from drawing on the global RNG.
        self.val_loader = self._loader(val_data, collate, torch.Generator(), shuffle=False)
        if len(self.train_loader) == 0 or len(self.val_loader) == 0:
            raise ValueError(f"{self.desc}: the training and validation sets must not be empty.")
        self.progress = Progress()

    def _loader(
        self, data: Dataset, collate: Callable | None, gen: torch.Generator, shuffle: bool
    ) -> DataLoader:
        if self.parallel:
            return self._sharded_loader(data, collate, gen, shuffle)
        return DataLoader(
            data,
            batch_size=self.cfg.batch_size,
            sampler=self._sampler(data, gen, shuffle),
            generator=gen,
            num_workers=self.cfg.num_workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
        )

    def _sampler(self, data: Dataset, gen: torch.Generator, shuffle: bool) -> Sampler:
        """Training: a new random order each epoch, cut to ``cfg.max_epoch_windows`` windows
        where the set holds more (each epoch a new draw without replacement, so a long record
        costs per epoch what a short one does); held-out data: all of it, in order."""
        if not shuffle:
            return SequentialSampler(data)
        cap = self.cfg.max_epoch_windows
        drawn = cap if cap is not None and cap < len(data) else None
        return RandomSampler(data, generator=gen, num_samples=drawn)

    def _sharded_loader(
        self, data: Dataset, collate: Callable | None, gen: torch.Generator, shuffle: bool
    ) -> DataLoader:
        """This rank's share of the batches the single-process loader would give."""
        sampler = self._sampler(data, gen, shuffle)
        return DataLoader(
            data,
            batch_sampler=ShardedBatches(sampler, self.cfg.batch_size, rank(), world_size()),
            generator=gen,  # drawn for the workers' base seed, as in one process
            num_workers=self.cfg.num_workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
        )

    @contextmanager
    def data_parallel(self) -> Iterator[None]:
        """Within the block, training runs through DDP (data-parallel only); wrap after
        autograd is off for the frozen parameters, so DDP synchronises the trained ones."""
        if not self.parallel:
            yield
            return
        self.net = data_parallel(self.model, self.device)
        try:
            yield
        finally:
            self.net = self.model

    def _share(self, loader: DataLoader, step: int, batch: Batch) -> tuple[int, float | None]:
        """Samples this rank counts in batch ``step`` and its loss weight (None: one process)."""
        if not self.parallel:
            return count_samples(batch), None
        shards = loader.batch_sampler
        assert isinstance(shards, ShardedBatches)
        return shards.count(step), shards.weight(step)

    def _means(self, mean: RunningMean, prefix: str) -> dict[str, float]:
        """The epoch's sample-weighted means: over every rank's samples when data-parallel."""
        if not self.parallel:
            return mean.means(prefix)
        keys = list(mean.sums)  # the same on every rank: the same loss function's components
        totals = sum_over_ranks([mean.sums[k] for k in keys] + [mean.counts[k] for k in keys])
        sums, counts = totals[: len(keys)], totals[len(keys) :]
        return {f"{prefix}/{k}": s / c for k, s, c in zip(keys, sums, counts, strict=True)}

    def autocast(self) -> AbstractContextManager:
        return autocast(self.device, self.amp)

    def fingerprint(self, user: str) -> str:
        names = [n for n, _ in self.named]
        return state_fingerprint(self.cfg, self.device, self.amp, self.model, names, user)

    # ---- one epoch

    def train_epoch(self, epoch: int) -> dict[str, float]:
        torch.manual_seed(self._epoch_seed(epoch))
        self.shuffle_gen.manual_seed(derive_seed(self.cfg.seed, "shuffle", epoch))
        self.net.train()
        for module in self.frozen:
            module.eval()  # frozen parts keep dropout off and batch-norm statistics fixed
        mean = RunningMean()
        bar = self._tqdm(self.train_loader, epoch, "train")
        for batch_index, raw in enumerate(bar):
            batch = to_device(raw, self.device)
            n, weight = self._share(self.train_loader, batch_index, batch)
            loss, parts = self.train_step(batch, weight)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"{self.desc}: non-finite training loss ({loss}) at epoch {epoch}, "
                    f"batch {batch_index + 1}. Lower lr or check the inputs for NaN."
                )
            mean.add(loss, parts, n)
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        return self._means(mean, "train")

    def _epoch_seed(self, epoch: int) -> int:
        if self.parallel:  # each rank its own dropout draws for its own samples
            return derive_seed(self.cfg.seed, "epoch", epoch, "rank", rank())
        return derive_seed(self.cfg.seed, "epoch", epoch)

    def train_step(self, batch: Batch, weight: float | None = None) -> tuple[float, dict]:
        """One optimizer step; ``weight`` scales the loss that is back-propagated (a rank's
        share of the global batch), not the loss returned. A batch larger than
        ``cfg.max_batch_cells`` runs as micro-batches whose gradients add up (each loss
        weighted by its share of the samples); the loss returned is their weighted mean."""
        self.optimizer.zero_grad(set_to_none=True)
        pieces = micro_batches(batch, self.cfg.max_batch_cells)
        n = count_samples(batch)
        scale = 1.0 if weight is None else weight
        losses, sizes, sums = [], [], {}
        for i, piece in enumerate(self._same_count_on_every_rank(pieces)):
            m = count_samples(piece) if i < len(pieces) else 0  # 0: a stand-in, no gradient
            share = scale * m / n
            with self.autocast():
                loss, parts = call_loss(self.compute_loss, self.net, piece)
            self.scaler.scale(loss if share == 1.0 else loss * share).backward()
            if m:
                losses.append(loss.item())
                sizes.append(m)
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + float(value) * m
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not scaled ones
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if len(pieces) == 1:
            return losses[0], parts
        mean_loss = sum(loss * m for loss, m in zip(losses, sizes, strict=True)) / n
        return mean_loss, {key: total / n for key, total in sums.items()}

    def _same_count_on_every_rank(self, pieces: list[Batch]) -> list[Batch]:
        """Data-parallel: every backward averages the gradients over the ranks, so every
        rank runs as many micro-batches as the rank with the most, the missing ones stand-ins
        of weight 0. (``no_sync`` gradient accumulation is broken with ``static_graph`` in
        DDP: pytorch/pytorch#143580.)"""
        if not self.parallel:
            return pieces
        return pieces + [pieces[-1]] * (most_over_ranks(len(pieces)) - len(pieces))

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float]:
        self.model.eval()
        mean = RunningMean()
        for step, raw in enumerate(self._tqdm(self.val_loader, epoch, "val")):
            batch = to_device(raw, self.device)
            pieces = micro_batches(batch, self.cfg.max_batch_cells)
            for piece in pieces:
                with self.autocast():
                    loss, parts = call_loss(self.compute_loss, self.model, piece)
                n = count_samples(piece) if len(pieces) > 1 else None
                mean.add(loss.item(), parts, n or self._share(self.val_loader, step, batch)[0])
        means = self._means(mean, "val")
        if not math.isfinite(means["val/loss"]):
            which = f"epoch {epoch}" + (" (the starting weights)" if epoch == 0 else "")
            raise FloatingPointError(f"{self.desc}: non-finite validation loss at {which}.")
        return means

    def _tqdm(self, loader: DataLoader, epoch: int, phase: str) -> tqdm:
        desc = f"{self.desc} {epoch}/{self.cfg.epochs} {phase}"
        return tqdm(loader, desc=desc, leave=False, unit="batch", disable=not self.main)

    # ---- resumable state

    def save_state(self, path: Path, fingerprint: str) -> None:
        save_state(
            path,
            fingerprint,
            model=self.model,
            optimizer=self.optimizer,
            scaler=self.scaler,
            progress=self.progress.counters(),
            best_model=self.progress.best_model,
        )

    def restore(self, path: Path, fingerprint: str) -> int:
        """Load a matching state; return the epoch it resumes after (0: fresh start)."""
        state = read_state(path, fingerprint, self.desc)
        require_same(0 if state is None else state["progress"]["epoch"], f"{path}'s epoch")
        if state is None:
            return 0
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress(**state["progress"], best_model=state["best_model"])
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
        train = f"train {row['train/loss']:.6g}" if "train/loss" in row else "starting weights"
        logger.info(
            "%s epoch %d/%d: %s, val %.6g (%s) %.1fs",
            self.desc,
            row["epoch"],
            self.cfg.epochs,
            train,
            row["val/loss"],
            status,
            seconds,
        )


# --------------------------------------------------------------------------- fit


def _write_best(path: Path, progress: Progress, extra: Mapping[str, Any] | None) -> None:
    write_best(
        path,
        progress.best_model,
        epoch=progress.best_epoch,
        val_loss=progress.best_val_loss,
        components=progress.best_components,
        extra=extra,
    )


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

    The best weights are those of the epoch with the lowest validation loss, the starting
    weights included: a fresh start validates them as epoch 0, before the ``cfg.epochs``
    training epochs; epoch 0 counts neither toward ``cfg.epochs`` nor toward patience.

    ``compute_loss(model, batch)`` returns the scalar loss and named float components;
    both are averaged over samples per epoch. Only ``trainable`` (default: the parameters
    with requires_grad) are optimised; during the call the other parameters have
    requires_grad off and sub-modules that own only such parameters stay in eval mode.
    ``fingerprint`` (e.g. a params + data hash) joins the config in deciding whether
    ``state_dir/last.pt`` may be resumed. ``extra_state`` (weights-only-safe values) is
    stored in the best checkpoint's meta under "extra". Each epoch re-seeds the global torch
    RNG from ``cfg.seed``, so the caller's RNG state after the call is seed-determined.
    ``loss_mask`` (the cells the loss counts, e.g. an expert's zone) must hold at least one
    cell: a loss over no cell is 0, and early stopping would keep the initial weights.
    Under ``torchrun`` with several processes every rank calls ``fit`` alike and trains
    data-parallel (module doc); ``compute_loss`` then gets the DDP-wrapped model, which
    lends the model's attributes, and must compute through ``model(...)``.
    """
    if loss_mask is not None:
        require_loss_cells(loss_mask, desc)
    if extra_state is not None:
        check_weights_only_safe(dict(extra_state), "extra_state")
    engine = _Engine(model, compute_loss, train_data, val_data, cfg, trainable, collate, desc)
    state_path = Path(state_dir) / STATE_FILE
    key = engine.fingerprint(fingerprint)
    resumed_from = engine.restore(state_path, key)
    live = None
    if live_dir is not None and cfg.live and engine.main:
        live = open_live(Path(live_dir))
        for row in engine.progress.history:  # the curves always equal the full history
            log_live(live, row)
    with requires_grad_only(engine.model, engine.trainable_ids), engine.data_parallel():
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
    if not progress.started:
        _run_epoch(engine, 0, best_path, state_path, key, live, extra)
    while not progress.finished(cfg):
        _run_epoch(engine, progress.epoch + 1, best_path, state_path, key, live, extra)
    if progress.stopped_early:
        logger.info(
            "%s: early stop after epoch %d (no improvement for %d epochs).",
            engine.desc,
            progress.epoch,
            progress.bad_epochs,
        )


def _run_epoch(
    engine: _Engine,
    epoch: int,
    best_path: Path,
    state_path: Path,
    key: str,
    live: Any,
    extra: Mapping[str, Any] | None,
) -> None:
    """Train (except epoch 0: the starting weights), validate, record and save one epoch."""
    progress = engine.progress
    start = time.perf_counter()
    row: dict[str, float] = {"epoch": epoch}
    if epoch > 0:
        row.update(engine.train_epoch(epoch))
    row.update(engine.validate(epoch))
    improved = progress.record(row, engine.model, engine.cfg)
    seconds = time.perf_counter() - start
    progress.time_s += seconds
    if engine.main:  # rank 0 writes; the other ranks hold the same numbers
        if improved:
            _write_best(best_path, progress, extra)
        engine.save_state(state_path, key)
        if live is not None:
            log_live(live, row)
        engine.log_epoch(row, improved, seconds)


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
    broadcast_module(engine.model)  # data-parallel: every rank ends with rank 0's weights
    if engine.main:
        _finish_files(best_path, progress, state_path, live, extra, keep_state)
    barrier()  # the other ranks may read best_path as soon as fit returns
    logger.info(
        "%s: best val %.6g at epoch %d of %d; weights in %s.",
        engine.desc,
        progress.best_val_loss,
        progress.best_epoch,
        progress.epoch,
        best_path,
    )
    return progress.result(resumed_from)


def _finish_files(
    best_path: Path,
    progress: Progress,
    state_path: Path,
    live: Any,
    extra: Mapping[str, Any] | None,
    keep_state: bool,
) -> None:
    _write_best(best_path, progress, extra)  # again: DVC removes outputs before a re-run
    if live is not None:
        live.end()
    if not keep_state:
        state_path.unlink(missing_ok=True)
