"""Stacking: the gating and the meta-learner learn from held-out expert forecasts.

An expert's forecast of a window it was trained on is better than its forecast of a new
one, so a combination trained on in-sample forecasts learns the experts' training fit.
Stage 2 therefore trains on forecasts of each training origin by a copy of every expert
that never saw that origin's targets:

* the training origins are cut into the blocks of the selection folds (``ames.selection``:
  contiguous whole years); a block's forecasts come from experts fitted on that fold's
  purged training origins — training origins only, so no validation target shapes them —
  and standardised with the climatology of the training months outside the block's targets
  (``ames.workflows.blocks.block_run``), then written in the run's units;
* each copy repeats what the stage-1 expert kept: its ``linear_path: ridge`` is refitted on
  the block's fitting origins at the penalties stage 1 selected (stored in its checkpoint;
  a hyper-parameter chosen once over the pre-test origins, like the architecture and the
  epochs, not refitted per block), and its network is the one trained from the same
  initial weights for as many epochs as the stage-1 expert kept (none when it kept epoch
  0): stage 1's epoch folds are these very blocks, so their copies at the kept epoch are
  read from the expert's checkpoint; only an expert trained without folds (a seed member,
  which takes the main chain's epochs) has its copies trained here, the last epoch kept.
  No held-out loss chooses anything.

The validation windows (early stopping of stage 2) are forecast by the stage-1 experts,
which were fitted on training origins only, so they are held out too.

The held-out forecasts depend only on the stage-1 experts, the data and the expert and
selection params, so :func:`cached_held_out_outputs` keeps the last set computed under the
run's training-state folder (``models/state/stacking/``, git-ignored, not a DVC output),
keyed by a hash of all of those: the ablations that re-run stage 2 from the main chain's
experts read it instead of refitting the copies.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ames.climatology import target_months
from ames.config import EXPERT_IDS, AmesConfig
from ames.io import SampleFile
from ames.models.experts import build_experts, expert_output_batches
from ames.models.graph import GridGraph
from ames.paths import expert_checkpoint
from ames.run import RunInputs
from ames.training.distributed import on_every_rank, on_main, rank
from ames.training.engine import fit
from ames.workflows.blocks import (
    HeldOutBlock,
    block_linear_paths,
    block_runs,
    convert_units,
    fold_blocks,
    in_block_units,
)
from ames.workflows.context import RunContext
from ames.workflows.expert import FOLD_STATES, LINEAR_ALPHA, zone_computation, zone_loss
from ames.workflows.linear_path_cache import cached_block_linear_paths

log = logging.getLogger("ames.stacking")


@dataclass(frozen=True)
class Kept:
    """What a stage-1 expert kept: its epoch (0: the starting weights), with
    ``linear_path: ridge`` the penalties by lead its linear path was fitted at, and, when
    its folds chose a trained epoch, each fold copy's weights at that epoch."""

    epoch: int
    linear_alpha: np.ndarray | None
    checkpoint: Path  # where it was read from
    fold_states: list[dict[str, torch.Tensor]] | None = None


def kept_by_stage1(models_dir: Path) -> dict[int, Kept]:
    """Per expert, what stage 1 kept, from its checkpoint's meta."""
    kept = {}
    for index in EXPERT_IDS:
        path = expert_checkpoint(index, models_dir)
        meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
        extra = meta.get("extra") or {}
        alpha = extra.get(LINEAR_ALPHA)
        linear_alpha = None if alpha is None else np.asarray(alpha)
        kept[index] = Kept(int(meta["epoch"]), linear_alpha, path, extra.get(FOLD_STATES))
    return kept


def train_block_copy(
    cfg: AmesConfig,
    brun: RunInputs,
    index: int,
    copy: nn.Module,
    block: HeldOutBlock,
    epochs: int,
    state_dir: Path,
) -> None:
    """Train ``copy``'s network for exactly ``epochs`` epochs on the block's fitting windows
    (standardised as ``brun``), as stage 1 trains the expert; the block's own windows only
    show the loss curve."""
    expert = cfg.expert(index)
    zone_mask = torch.from_numpy(brun.zones[expert.zone])
    train_cfg = dataclasses.replace(expert.training, epochs=epochs, patience=None, keep_last=True)
    desc = f"stacking expert{index} {block.forecast.min()}-{block.forecast.max()}"
    with zone_computation(copy, zone_mask, desc):
        fit(
            copy,
            zone_loss(zone_mask),
            brun.windows("train", block.fit),
            brun.windows("train", block.forecast),
            train_cfg,
            best_path=state_dir / "copy.pt",
            state_dir=state_dir,
            desc=desc,
            loss_mask=zone_mask,
        )


def held_out_expert_outputs(
    cfg: AmesConfig,
    run: RunInputs,
    graph: GridGraph,
    experts: list[nn.Module],
    kept: dict[int, Kept],
    batch_size: int,
    device: torch.device,
    state_root: Path,
    into: Path,
    max_batch_cells: int | None = None,
    refit: PathRefit | None = None,
) -> SampleFile:
    """``[S, 3, H, lat, lon]`` (transformed units) in the file ``into``, written batch by
    batch: the training windows in ``run.windows("train")`` order, each forecast by expert
    copies that never saw it. ``refit``: how the linear paths are refitted on the blocks
    (:func:`block_paths`)."""
    train = np.asarray(run.masks.split["train"], dtype=np.int64)
    blocks = fold_blocks(cfg, run)
    runs = block_runs(run, blocks)
    paths = block_paths(cfg, runs, blocks, kept, refit)
    position = {int(o): i for i, o in enumerate(train)}
    for index, k in kept.items():
        if k.fold_states is not None and len(k.fold_states) != len(blocks):
            raise ValueError(
                f"{k.checkpoint}: {len(k.fold_states)} fold copies for {len(blocks)} blocks "
                f"(written under other selection params); re-run `dvc repro expert@{index}`"
            )
    out: SampleFile | None = None
    for b, (block, brun) in enumerate(zip(blocks, runs, strict=True)):
        copies = build_experts(cfg, run, graph)  # the stage-1 starting weights
        for index, copy, trained in zip(EXPERT_IDS, copies, experts, strict=True):
            epochs, fold_states = kept[index].epoch, kept[index].fold_states
            if epochs == 0:
                copy.load_state_dict(trained.state_dict())
            in_block_units([copy], brun)
            if index in paths:
                copy.linear.set_weights(*paths[index][b])
            if epochs > 0 and fold_states is not None:
                # the copy stage 1's folds trained on this block's fitting windows (same
                # start, block standardisation and linear path), at the epoch they kept
                copy.load_state_dict(fold_states[b])
            elif epochs > 0:
                log.info(
                    "stacking: expert %d, origins %d-%d: %d epochs on %d windows",
                    index, block.forecast.min(), block.forecast.max(), epochs, block.fit.size,
                )  # fmt: skip
                state = state_root / f"block{b}" / f"expert{index}"
                train_block_copy(cfg, brun, index, copy, block, epochs, state)
        windows = brun.windows("train", block.forecast)
        months = torch.from_numpy(target_months(run.inputs.months[block.forecast], run.horizon))
        batches = expert_output_batches(copies, windows, batch_size, device, max_batch_cells)
        for start, outputs in batches:
            rows = months[start : start + len(outputs)]
            outputs = convert_units(outputs, rows, brun.transform, run.transform)
            if out is None:
                out = SampleFile.create(into, (len(train), *outputs.shape[1:]))
            for origin, sample in zip(block.forecast[start:], outputs.numpy(), strict=False):
                out.write(position[int(origin)], sample[None])
    assert out is not None
    return out


# refits the linear path on the blocks (``runs``, ``blocks``) at the penalties given
PathRefit = Callable[[list[RunInputs], list[HeldOutBlock], np.ndarray], list]


def block_paths(
    cfg: AmesConfig,
    runs: list[RunInputs],
    blocks: list[HeldOutBlock],
    kept: dict[int, Kept],
    refit: PathRefit | None = None,
) -> dict[int, list]:
    """Per expert with ``linear_path: ridge``, its linear path refitted on every block, on
    the block's standardisation (``runs``; one refit per distinct set of stage-1 penalties),
    by ``refit`` (default :func:`ames.workflows.blocks.block_linear_paths`; the stages pass
    the cached one, ``ames.workflows.linear_path_cache.cached_block_linear_paths``)."""
    if refit is None:
        refit = partial(block_linear_paths, cfg)
    paths: dict[int, list] = {}
    by_alpha: dict[tuple, list] = {}
    for index in EXPERT_IDS:
        if not cfg.expert(index).ridge_linear_path:
            continue
        alpha = kept[index].linear_alpha
        if alpha is None:
            raise ValueError(
                f"{kept[index].checkpoint}: no linear-path penalties in the checkpoint "
                f"(written by an older version); re-run `dvc repro expert@{index}`"
            )
        key = tuple(alpha.tolist())
        if key not in by_alpha:
            by_alpha[key] = refit(runs, blocks, alpha)
        paths[index] = by_alpha[key]
    return paths


# bumped when the way held-out forecasts are made changes, so that no older cache is served
HELD_OUT_FORMAT = "per-block-climatology"

STACKING_SECTIONS = ["seed", "features", "linear_features", "selection", "train"] + [
    f"expert{i}" for i in EXPERT_IDS
]


def cached_held_out_outputs(
    ctx: RunContext,
    experts: list[nn.Module],
    *,
    batch_size: int,
    device: torch.device,
    cache_dir: Path,
    max_batch_cells: int | None = None,
) -> SampleFile:
    """:func:`held_out_expert_outputs` of the stage-1 experts in ``ctx.models_dir``, read from
    ``cache_dir`` when a set computed from the same experts, data and params is there;
    otherwise computed and written there (replacing any older set).

    The set stays on disk (a ``.npy`` file read one window at a time: about 3 GB on a
    domain of 16 times the default's cells), not in memory."""
    models_dir = ctx.models_dir
    checkpoints = [expert_checkpoint(i, models_dir) for i in EXPERT_IDS]
    key = f"{ctx.fingerprint(STACKING_SECTIONS, *checkpoints)}-{HELD_OUT_FORMAT}"
    path = cache_dir / f"{key}.npy"
    if on_every_rank(path.is_file()):  # data-parallel: rank 0 writes it below
        log.info("stacking: held-out expert forecasts from %s", path)
        return SampleFile(path)
    # every rank computes (the copies train data-parallel), each into its own file
    mine = cache_dir / f".{key}.rank{rank()}.npy"
    held_out_expert_outputs(
        ctx.cfg, ctx.run, ctx.graph, experts, kept_by_stage1(models_dir), batch_size, device,
        cache_dir / "copies", mine, max_batch_cells, partial(cached_block_linear_paths, ctx),
    )  # fmt: skip
    on_main(_replace_cache, cache_dir, path, mine)
    mine.unlink(missing_ok=True)
    return SampleFile(path)


class HeldOutOnDemand:
    """The held-out expert forecasts of ``length`` training windows, made by ``compute``
    (e.g. :func:`cached_held_out_outputs`) when first indexed: a stage 2 told to train for
    no epoch (the seed members and ablations, when the main chain kept epoch 0) never reads
    them, and so never refits the expert copies."""

    def __init__(self, compute: Callable[[], SampleFile], length: int) -> None:
        self._compute = compute
        self._length = length
        self._outputs: SampleFile | None = None

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> np.ndarray:
        if self._outputs is None:
            self._outputs = self._compute()
            if len(self._outputs) != self._length:
                raise ValueError(
                    f"{len(self._outputs)} held-out expert forecasts for {self._length} windows"
                )
        return self._outputs[index]


def _replace_cache(cache_dir: Path, path: Path, computed: Path) -> None:
    for old in [*cache_dir.glob("[!.]*.pt"), *cache_dir.glob("[!.]*.npy")]:
        old.unlink()
    computed.replace(path)
    log.info("stacking: held-out expert forecasts written to %s", path)
