"""The model-selection protocol (ames.selection): blocked year folds with a purge."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ames.selection import blocked_year_folds, pretest_folds, pretest_origins, purge

WINDOW, HORIZON = 12, 12
TIMES = pd.date_range("1981-01-01", periods=518, freq="MS")
SPLIT = {"train": list(range(11, 348)), "val": list(range(359, 396)), "test": [407, 505]}


def months_of(origin: int) -> set[int]:
    """Every month a sample reads: its input window and its targets."""
    return set(range(origin - WINDOW + 1, origin + HORIZON + 1))


def targets_of(origins: np.ndarray) -> set[int]:
    return {int(o) + h for o in origins for h in range(1, HORIZON + 1)}


@pytest.mark.parametrize("n_folds", [2, 5, 8])
def test_no_training_window_touches_a_validation_target(n_folds):
    for fold in pretest_folds(SPLIT, TIMES, n_folds, WINDOW, HORIZON):
        val_targets = targets_of(fold.val)
        for origin in fold.train:
            assert not months_of(int(origin)) & val_targets
        assert not set(fold.train) & set(fold.val)


def test_folds_are_contiguous_whole_years_covering_the_pretest_origins_only():
    folds = pretest_folds(SPLIT, TIMES, 5, WINDOW, HORIZON)
    origins = pretest_origins(SPLIT)
    val = np.concatenate([f.val for f in folds])
    np.testing.assert_array_equal(np.sort(val), origins)
    assert origins.min() == 11 and origins.max() == 395  # the last target is month 407
    assert max(targets_of(origins)) < SPLIT["test"][0] + 1
    years = [set(TIMES[f.val].year) for f in folds]
    for a, b in zip(years, years[1:], strict=False):
        assert max(a) < min(b)  # blocks in time order, no year split between two folds
    for fold in folds:
        assert np.all(np.diff(fold.val) == 1)


def test_purge_keeps_windows_that_end_before_or_start_after_the_validation_targets():
    val = np.arange(100, 110)  # targets 101 … 121
    kept = purge(np.arange(0, 200), val, WINDOW, HORIZON)
    assert kept[kept < 100].max() == 100 - HORIZON  # last target 100, the first val origin
    assert kept[kept > 100].min() == 121 + WINDOW  # first input month 122


def test_impossible_fold_counts_are_clear_errors():
    origins = np.arange(20, 60)
    with pytest.raises(ValueError, match="selection.folds = 1"):
        blocked_year_folds(origins, origins // 12, 1, WINDOW, HORIZON)
    with pytest.raises(ValueError, match="no training origin left"):
        blocked_year_folds(origins[:24], origins[:24] // 12, 2, WINDOW, HORIZON)
