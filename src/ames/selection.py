"""Model selection without the test split: blocked, year-grouped cross-validation with a purge.

The 48-month validation split holds 37 forecast origins, a handful of independent ENSO
states, too few to rank settings. Selection therefore cross-validates over every origin
before the test period (training and validation origins alike):

* the origins are grouped by calendar year and the years cut into ``n_folds`` contiguous
  blocks; each block is one fold's validation set;
* a fold trains on the other origins whose whole window — the ``window`` input months and
  the ``horizon`` target months — lies clear of every target month of that fold's
  validation origins (the purge). So no training target is a validation target, and no
  training input is one either.

The test origins never enter a fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Fold:
    train: np.ndarray  # origin indices, purged
    val: np.ndarray  # origin indices, one contiguous block of whole years


def pretest_origins(split: dict[str, list[int]]) -> np.ndarray:
    """Every origin from the first training origin to the last validation origin, including
    those whose targets straddle the two periods; none of their targets is a test month."""
    first, last = int(min(split["train"])), int(max(split["val"]))
    return np.arange(first, last + 1, dtype=np.int64)


def target_span(origins: np.ndarray, horizon: int) -> tuple[int, int]:
    """First and last month index that ``origins`` forecast."""
    return int(origins.min()) + 1, int(origins.max()) + horizon


def purge(candidates: np.ndarray, val: np.ndarray, window: int, horizon: int) -> np.ndarray:
    """``candidates`` whose months ``o − window + 1 … o + horizon`` avoid the targets of ``val``."""
    first, last = target_span(val, horizon)
    starts, ends = candidates - window + 1, candidates + horizon
    return candidates[(ends < first) | (starts > last)]


def blocked_year_folds(
    origins: np.ndarray, years: np.ndarray, n_folds: int, window: int, horizon: int
) -> list[Fold]:
    """``n_folds`` folds of contiguous whole years of ``origins`` (``years[i]`` is the
    calendar year of ``origins[i]``), each training set purged as the module says."""
    origins, years = np.asarray(origins, dtype=np.int64), np.asarray(years)
    distinct = np.unique(years)
    if not 2 <= n_folds <= len(distinct):
        raise ValueError(
            f"selection.folds = {n_folds}: the pre-test period holds {len(distinct)} years of "
            "origins; choose between 2 and that many folds"
        )
    folds = []
    for block in np.array_split(distinct, n_folds):
        val = origins[np.isin(years, block)]
        train = purge(origins[~np.isin(years, block)], val, window, horizon)
        if train.size == 0:
            raise ValueError(
                f"selection fold {block[0]}–{block[-1]} has no training origin left after the "
                "purge; use more folds or a shorter window/horizon"
            )
        folds.append(Fold(train=train, val=val))
    return folds


def pretest_folds(
    split: dict[str, list[int]], times: pd.DatetimeIndex, n_folds: int, window: int, horizon: int
) -> list[Fold]:
    """The selection folds of a run: ``blocked_year_folds`` over ``pretest_origins``."""
    origins = pretest_origins(split)
    return blocked_year_folds(origins, times[origins].year, n_folds, window, horizon)


def describe_folds(folds: list[Fold], times: pd.DatetimeIndex) -> list[dict[str, object]]:
    """Per fold: the validation origins' first and last date and the origin counts."""
    return [
        {
            "val_from": f"{times[fold.val.min()]:%Y-%m}",
            "val_to": f"{times[fold.val.max()]:%Y-%m}",
            "val_origins": int(fold.val.size),
            "train_origins": int(fold.train.size),
        }
        for fold in folds
    ]


def pooled_fold_gain(per_fold: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(gain, standard_error)`` of per-fold gains ``per_fold`` ``[K, ...]``: their mean over
    the folds weighted by ``rows`` (``[K]`` or ``per_fold``'s shape; what each fold's mean is
    over), and its standard error from the spread of the per-fold gains. The rule every
    "confirmed by the folds" decision reads (penalties, epochs, blend weights)."""
    per_fold = np.asarray(per_fold, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.float64)
    rows = rows.reshape(rows.shape + (1,) * (per_fold.ndim - rows.ndim))
    weight = np.broadcast_to(rows / rows.sum(0), per_fold.shape)
    gain = (weight * per_fold).sum(0)
    k = per_fold.shape[0]
    variance = k / max(k - 1, 1) * (weight**2 * (per_fold - gain) ** 2).sum(0)
    return gain, np.sqrt(variance)
