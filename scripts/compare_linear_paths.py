"""Cross-validated MSE of two candidate linear paths for the experts (pre-test origins only).

Candidates, each scored in the experts' target units on the cells of each zone:

* ``zone``: a ridge regression fitted on that zone's cells only, in the target units;
* ``pooled``: the ``ridge`` baseline (every valid cell, standardised anomalies), mapped to
  the target units with the training climatology of the target month.

Folds, purge and penalties are those of ``ames.selection`` / ``ames.evaluation.ridge``; no
test month is read. Prints each candidate's MSE as a share of climatology's, per lead.
Usage: python scripts/compare_linear_paths.py [--params params.yaml]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ames.climatology import target_months
from ames.config import load_config
from ames.evaluation.ridge import (
    RIDGE_ALPHAS,
    cross_validated_mse,
    origin_moments,
    ridge_features,
    ridge_targets,
    solve_ridge,
)
from ames.paths import DATASET, MASKS
from ames.run import RunInputs, load_run_inputs
from ames.selection import Fold, pretest_folds, pretest_origins


def target_unit_rows(run: RunInputs, cells: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """``[S·N, H]`` targets in the experts' units, rows as ``ridge_features``."""
    steps = origins[:, None] + np.arange(1, run.horizon + 1)
    month = torch.from_numpy(run.inputs.months[steps])
    y_mm = torch.from_numpy(run.inputs.precip_mm[steps])
    y = run.transform.from_mm(y_mm, month).numpy()[..., cells]  # [S, H, N]
    return y.transpose(0, 2, 1).reshape(-1, run.horizon).astype(np.float64)


def pooled_mse(
    run: RunInputs, folds: list[Fold], origins: np.ndarray, zone: np.ndarray
) -> np.ndarray:
    """``[H]`` CV MSE, in target units on ``zone``, of the pooled standardised ridge."""
    valid, window, horizon = run.masks.valid, run.window, run.horizon
    x = ridge_features(run.inputs, valid, origins, window)
    moments = origin_moments(x, ridge_targets(run.inputs, valid, origins, horizon), len(origins))
    n_features = x.shape[1]
    alpha = np.asarray(RIDGE_ALPHAS)[
        cross_validated_mse(moments, origins, folds, n_features).argmin(axis=0)
    ]
    x = x.reshape(len(origins), valid.sum(), n_features)[:, zone[valid]]
    y = target_unit_rows(run, zone & valid, origins).reshape(len(origins), -1, horizon)
    stats = run.masks.stats
    shift, gain = run.transform.standardized_anomaly_units(stats["clim_mean"], stats["clim_std"])
    month = target_months(run.inputs.months[origins], horizon)  # [S, H]
    shift, gain = shift.numpy()[month][..., zone & valid], gain.numpy()[month][..., zone & valid]
    position = {int(o): i for i, o in enumerate(origins)}
    sse, rows = np.zeros(horizon), 0
    for fold in folds:
        train = moments[[position[int(o)] for o in fold.train]].sum(axis=0)
        val = [position[int(o)] for o in fold.val]
        for lead in range(horizon):
            coef, intercept = solve_ridge(train, float(alpha[lead]), n_features)
            z = x[val] @ coef[lead] + intercept[lead]
            pred = shift[val, lead] + gain[val, lead] * z
            sse[lead] += ((pred - y[val, :, lead]) ** 2).sum()
        rows += len(val) * y.shape[1]
    return sse / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    cfg = load_config(args.params)
    run = load_run_inputs(cfg, DATASET, MASKS)
    split = run.masks.split
    folds = pretest_folds(split, run.data.times, cfg.selection.folds, run.window, run.horizon)
    origins = pretest_origins(split)
    np.set_printoptions(precision=3, linewidth=120)
    for name, zone in run.zones.items():
        cells = zone & run.masks.valid
        x = ridge_features(run.inputs, cells, origins, run.window)
        y = target_unit_rows(run, cells, origins)
        zone_cv = cross_validated_mse(
            origin_moments(x, y, len(origins)), origins, folds, x.shape[1]
        )
        clim = (y**2).mean(axis=0)  # climatology forecasts 0 in these units
        print(f"{name:>6} zone   ridge, MSE / climatology by lead: {zone_cv.min(axis=0) / clim}")
        pooled = pooled_mse(run, folds, origins, zone) / clim
        print(f"{name:>6} pooled ridge, MSE / climatology by lead: {pooled}")


if __name__ == "__main__":
    main()
