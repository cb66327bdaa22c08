"""The blocks of training origins that the selection folds hold out, and what is refitted per
block: stacking's expert copies and the fold copies that decide a stage's epochs
(``ames.training.folds``) train on a block's purged fitting origins and forecast its own.

Each block is standardised as the test split is (:func:`block_run`): its anomalies and target
units come from the climatology of the training months outside the block's targets, so the
held-out block is new to that climatology as the test months are new to the run's. With one
climatology over every training month, a block's held-out targets would share in it and their
climatological forecast would be partly in-sample, which pulls a block's held-out skill down
at long leads (docs/evaluation.md, "Each fold standardised as the test split is").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ames.climatology import MIN_STD_MM, calendar_climatology
from ames.config import AmesConfig
from ames.evaluation.ridge import run_folds
from ames.models.linear_path import spatial_regressors
from ames.models.linear_path_fit import refit_at_penalties
from ames.run import RunInputs
from ames.selection import Fold, target_span
from ames.windows import TargetTransform


@dataclass(frozen=True)
class HeldOutBlock:
    fit: np.ndarray  # training origins the block's expert copies are fitted on (purged)
    forecast: np.ndarray  # training origins those copies forecast
    targets: tuple[int, int]  # first and last month index the forecast origins target


def held_out_blocks(
    train_origins: np.ndarray, folds: list[Fold], horizon: int
) -> list[HeldOutBlock]:
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
        blocks.append(HeldOutBlock(fit_origins, forecast, target_span(forecast, horizon)))
    covered = np.sort(np.concatenate([b.forecast for b in blocks]))
    if not np.array_equal(covered, np.sort(train)):
        raise ValueError("stacking: the selection folds do not cover every training origin once")
    return blocks


def fold_blocks(cfg: AmesConfig, run: RunInputs) -> list[HeldOutBlock]:
    """The selection folds' blocks of ``run``'s training origins."""
    train = np.asarray(run.masks.split["train"], dtype=np.int64)
    return held_out_blocks(train, run_folds(run, cfg.selection.folds), run.horizon)


def block_training_months(run: RunInputs, block: HeldOutBlock) -> np.ndarray:
    """``[T]`` bool: the training months outside ``block``'s targets."""
    first, last = block.targets
    use = np.arange(len(run.data.months)) < int(run.masks.split["val_start"])
    use[first : last + 1] = False
    return use


def block_run(run: RunInputs, block: HeldOutBlock) -> RunInputs:
    """``run`` with its anomalies and target units taken from the climatology (mean and
    spread per calendar month) of the training months outside ``block``'s targets. The
    anomalies are computed when a window reads them (:class:`AnomalyView`): five blocks
    alive at once would otherwise hold five copies of the record."""
    use = block_training_months(run, block)
    mean, std = calendar_climatology(run.data.precip, run.data.months, use, min_std=MIN_STD_MM)
    stats = {**run.masks.stats, "clim_mean": mean, "clim_std": std}
    anomaly = AnomalyView(run.inputs.precip_mm, run.inputs.months, mean, std, run.masks.valid)
    inputs = dataclasses.replace(run.inputs, anomaly=anomaly, domain_anomaly=anomaly.domain_mean())
    transform = TargetTransform.from_stats(run.transform.kind, stats)
    masks = dataclasses.replace(run.masks, stats=stats)
    return dataclasses.replace(run, masks=masks, inputs=inputs, transform=transform)


class AnomalyView:
    """``[T, lat, lon]`` standardised anomalies ``(P − mean[m]) / std[m]`` (0 outside
    ``valid``, float32, as ``ames.windows.build_grid_inputs`` makes them), computed for the
    months an index reads: ``view[t]``, ``view[a:b]``, ``view[months]``, ``view[:, valid]``."""

    def __init__(
        self,
        precip_mm: np.ndarray,
        months: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        valid: np.ndarray,
    ) -> None:
        self.precip_mm, self.months, self.valid = precip_mm, np.asarray(months), valid
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.shape = precip_mm.shape

    def __getitem__(self, index):
        time, rest = (index[0], index[1:]) if isinstance(index, tuple) else (index, ())
        month = self.months[time]
        z = (self.precip_mm[time] - self.mean[month]) / self.std[month]
        z = np.where(self.valid, z, 0.0).astype(np.float32)
        if not rest:
            return z
        return z[rest] if np.ndim(month) == 0 else z[(slice(None), *rest)]

    def domain_mean(self, chunk: int = 64) -> np.ndarray:
        """``[T]`` mean anomaly over the valid cells."""
        steps = range(0, self.shape[0], chunk)
        parts = [self[t : t + chunk][:, self.valid].mean(axis=1) for t in steps]
        return np.concatenate(parts).astype(np.float32)


def block_runs(run: RunInputs, blocks: list[HeldOutBlock]) -> list[RunInputs]:
    return [block_run(run, block) for block in blocks]


def block_linear_paths(
    cfg: AmesConfig, runs: list[RunInputs], blocks: list[HeldOutBlock], alpha: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """The experts' ``linear_path: ridge`` refitted on each block's fitting origins at the
    stage-1 penalties ``alpha``, each on its block's standardisation (``runs``, from
    :func:`block_runs`; one regression per block for the three experts)."""
    regressors = spatial_regressors(cfg, runs[0]) if cfg.linear_features.adds_regressors else None
    return [
        refit_at_penalties(
            brun.inputs,
            brun.masks.valid,
            [block.fit],
            brun.window,
            brun.horizon,
            regressors,
            alpha,
        )[0]  # fmt: skip
        for brun, block in zip(runs, blocks, strict=True)
    ]


def in_block_units(experts: list[nn.Module] | nn.ModuleList, brun: RunInputs) -> None:
    """Point each expert's linear path at ``brun``'s target units (its output is then in
    ``brun.transform``'s units, as the block's windows' targets are)."""
    stats = brun.masks.stats
    units = brun.transform.standardized_anomaly_units(stats["clim_mean"], stats["clim_std"])
    for expert in experts:
        if getattr(expert, "linear", None) is not None:
            expert.linear.set_units(*units)


@torch.no_grad()
def convert_units(
    y: Tensor, target_month: Tensor, source: TargetTransform, target: TargetTransform
) -> Tensor:
    """``y`` ``[B, ..., H, lat, lon]`` from ``source``'s units to ``target``'s (the same
    mm/month); ``target_month`` ``[B, H]``."""
    flat = y.reshape(y.shape[0], -1, *y.shape[-3:])
    months = target_month.repeat_interleave(flat.shape[1], dim=0)
    lead_first = flat.reshape(-1, *y.shape[-3:])
    out = target.from_mm(source.to_mm(lead_first, months), months)
    return out.reshape(y.shape)


class ExpertsInUnits(Dataset):
    """Windows with expert forecasts (``"experts"``, in ``source``'s units) given in
    ``target``'s units, as the windows' targets are."""

    def __init__(self, data: Dataset, source: TargetTransform, target: TargetTransform) -> None:
        self.data, self.source, self.target = data, source, target

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = dict(self.data[index])
        months = item["target_month"][None]
        item["experts"] = convert_units(item["experts"][None], months, self.source, self.target)[0]
        return item
