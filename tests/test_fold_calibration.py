"""Spread scales and tercile weights decided on the folds (``ames.workflows.fold_calibration``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_stacking import CFG, _run

from ames.workflows.blocks import HeldOutBlock, fold_blocks
from ames.workflows.fold_calibration import (
    block_climatology,
    calibration_cells,
    calibration_rows,
    on_cells,
)


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
    cells = calibration_cells(run.masks.valid, None)
    ratios, means, edges = block_climatology(run, blocks, cells)
    assert ratios.shape[0] == means.shape[0] == edges.shape[0] == 12 * len(blocks)
    assert ratios.shape[-1] == means.shape[-1] == edges.shape[-1] == cells.size
    np.testing.assert_allclose(ratios.mean(axis=1), 1.0, atol=1e-5)
    # two blocks leave out different years, so their climatologies differ
    assert np.abs(means[:12] - means[12:24]).max() > 1e-3
    train = np.arange(len(run.data.months)) < int(run.masks.split["val_start"])
    first, last = blocks[0].targets
    train[first : last + 1] = False
    month = run.data.months
    expected = np.nanmean(run.data.precip[train & (month == 4)], axis=0)
    years = int((train & (month == 4)).sum())
    assert ratios.shape[1] <= years
    if ratios.shape[1] == years:  # every year of that month is a member
        np.testing.assert_allclose(means[4], on_cells(expected, cells), rtol=1e-5)
    # a cell budget keeps every n-th valid cell: the same values on those cells
    few = calibration_cells(run.masks.valid, cells.size // 3)
    assert cells.size // 6 <= few.size <= cells.size // 3 and set(few) <= set(cells)
    thin = block_climatology(run, blocks, few)
    for whole, part in zip((ratios, means, edges), thin, strict=True):
        np.testing.assert_array_equal(part, whole[..., np.searchsorted(cells, few)])


def test_calibration_cells_keep_every_valid_cell_within_the_budget():
    valid = np.zeros((7, 9), dtype=bool)
    valid[1:6, 2:8] = True  # 30 valid cells
    assert np.array_equal(calibration_cells(valid, None), np.flatnonzero(valid))
    assert np.array_equal(calibration_cells(valid, 30), np.flatnonzero(valid))
    for budget in (1, 7, 10, 29):
        chosen = calibration_cells(valid, budget)
        assert 1 <= chosen.size <= budget
        assert valid.reshape(-1)[chosen].all()
        stride = int(np.ceil(30 / budget))
        assert np.array_equal(chosen, np.flatnonzero(valid)[::stride])
