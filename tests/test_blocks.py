"""Held-out blocks (``ames.workflows.blocks``): each standardised without its own targets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from test_stacking import CFG, _run

from ames.windows import build_grid_inputs
from ames.workflows.blocks import block_run, convert_units, fold_blocks


def _with_precip_raised(run, months: np.ndarray):
    raw = run.data.precip.copy()
    raw[months] += 30.0
    return dataclasses.replace(run, data=dataclasses.replace(run.data, precip=raw))


def test_a_blocks_climatology_ignores_its_targets_and_the_validation_months(tmp_path: Path):
    run = _run(tmp_path)
    block = fold_blocks(CFG, run)[1]
    first, last = block.targets
    assert (first, last) == (block.forecast.min() + 1, block.forecast.max() + run.horizon)
    val = np.arange(int(run.masks.split["val_start"]), len(run.data.months))
    before = block_run(run, block)
    for months in (np.arange(first, last + 1), val):
        after = block_run(_with_precip_raised(run, months), block)
        for key in ("clim_mean", "clim_std"):
            np.testing.assert_array_equal(before.masks.stats[key], after.masks.stats[key])
        np.testing.assert_array_equal(before.inputs.anomaly[:first], after.inputs.anomaly[:first])
    outside = np.arange(0, first - 1)
    moved = block_run(_with_precip_raised(run, outside), block)
    assert np.nanmax(np.abs(moved.masks.stats["clim_mean"] - before.masks.stats["clim_mean"])) > 1.0
    # the block's own windows read anomalies from its climatology, not the run's
    assert np.abs(before.inputs.anomaly[:] - run.inputs.anomaly).max() > 1e-3


def test_units_convert_through_mm_and_back(tmp_path: Path):
    run = _run(tmp_path)
    brun = block_run(run, fold_blocks(CFG, run)[0])
    generator = torch.Generator().manual_seed(0)
    y = torch.randn(4, 3, run.horizon, *run.masks.valid.shape, generator=generator)
    months = torch.randint(0, 12, (4, run.horizon), generator=generator)
    in_run = convert_units(y, months, brun.transform, run.transform)
    back = convert_units(in_run, months, run.transform, brun.transform)
    torch.testing.assert_close(back, y, rtol=0, atol=1e-4)
    for e in range(3):  # the same mm/month in either unit
        torch.testing.assert_close(
            run.transform.to_mm(in_run[:, e], months),
            brun.transform.to_mm(y[:, e], months),
            rtol=1e-5,
            atol=1e-3,
        )
    assert (in_run - y).abs().max() > 1e-3


def test_the_anomaly_view_reads_as_the_built_anomalies(tmp_path: Path):
    run = _run(tmp_path)
    block = fold_blocks(CFG, run)[0]
    view = block_run(run, block).inputs
    built = build_grid_inputs(
        run.data.precip, run.data.months, run.masks.context, run.masks.valid,
        block_run(run, block).masks.stats,
    )  # fmt: skip
    valid = run.masks.valid
    for index in (5, slice(3, 9), np.array([1, 7, 40]), (slice(None), valid)):
        np.testing.assert_allclose(view.anomaly[index], built.anomaly[index], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(view.domain_anomaly, built.domain_anomaly, rtol=1e-5, atol=1e-6)
    assert view.anomaly.shape == built.anomaly.shape
