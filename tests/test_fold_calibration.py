"""Spread scales and tercile weights decided on the folds (``ames.workflows.fold_calibration``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_stacking import CFG, _run

from ames.workflows.blocks import HeldOutBlock, fold_blocks
from ames.workflows.fold_calibration import block_climatology, calibration_rows


def _blocks(sizes: list[int]) -> list[HeldOutBlock]:
    blocks, start = [], 0
    for size in sizes:
        forecast = np.arange(start, start + size)
        blocks.append(HeldOutBlock(np.array([0]), forecast, (start + 1, start + size + 12)))
        start += size
    return blocks


def test_calibration_origins_are_evenly_spaced_over_every_block():
    blocks = _blocks([70, 80, 90, 30])
    rows = calibration_rows(blocks, 27)
    assert sum(len(r) for r in rows) == 27
    assert all(len(r) >= 3 for r in rows)  # every block contributes, in proportion
    chosen = np.concatenate([b.forecast[r] for b, r in zip(blocks, rows, strict=True)])
    gaps = np.diff(chosen)
    assert gaps.max() - gaps.min() <= 1
    every = calibration_rows(blocks, 10_000)  # more than there are: all of them
    assert [len(r) for r in every] == [70, 80, 90, 30]


def test_each_block_is_dressed_with_the_climatology_of_its_own_training_months(tmp_path: Path):
    run = _run(tmp_path)
    blocks = fold_blocks(CFG, run)
    ratios, means, edges = block_climatology(run, blocks)
    assert ratios.shape[0] == means.shape[0] == edges.shape[0] == 12 * len(blocks)
    valid = run.masks.valid
    np.testing.assert_allclose(ratios[:, :, valid].mean(axis=1), 1.0, atol=1e-5)
    # two blocks leave out different years, so their climatologies differ
    assert np.abs(means[:12][:, valid] - means[12:24][:, valid]).max() > 1e-3
    train = np.arange(len(run.data.months)) < int(run.masks.split["val_start"])
    first, last = blocks[0].targets
    train[first : last + 1] = False
    month = run.data.months
    expected = np.nanmean(run.data.precip[train & (month == 4)], axis=0)
    years = int((train & (month == 4)).sum())
    assert ratios.shape[1] <= years
    if ratios.shape[1] == years:  # every year of that month is a member
        np.testing.assert_allclose(means[4][valid], expected[valid], rtol=1e-5)
