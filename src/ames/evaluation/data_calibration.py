"""Calibration statistics of a monthly precipitation dataset (SPEC §2.2 table).

Protocol: test = the last ``test_months`` months; climatology = per-cell calendar-month mean
over every month before the test period; seasonal naive = the same month one year earlier.
"""

from __future__ import annotations

import numpy as np

from ames.climatology import calendar_climatology
from ames.data.schema import valid_cells
from ames.evaluation.metrics import pooled_r2


def percell_mean_r2(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean over cells of each cell's R² over time; ``pred``/``target`` are ``[T, N]``."""
    sse = np.sum((target - pred) ** 2, axis=0)
    sst = np.sum((target - target.mean(axis=0)) ** 2, axis=0)
    ok = sst > 0
    return float(np.mean(1.0 - sse[ok] / sst[ok]))


def calibration_report(precip: np.ndarray, months: np.ndarray, test_months: int) -> dict:
    """Domain mean and the R² of climatology and seasonal naive on the test months.

    precip: ``[T, lat, lon]`` mm/month, NaN outside the domain; months: ``[T]`` 0..11.
    Returns ``mean_mm``, ``clim_pooled_r2``, ``seasonal_naive_pooled_r2``, ``clim_percell_r2``.
    """
    precip = np.asarray(precip, dtype=np.float64)
    months = np.asarray(months)
    n_time = precip.shape[0]
    test_start = n_time - test_months
    if test_start < 12:
        raise ValueError(
            f"{n_time} months leave less than one year before the {test_months} test months"
        )
    valid = valid_cells(precip)
    series = precip[:, valid]  # [T, N]
    before = np.arange(n_time) < test_start
    clim, _ = calendar_climatology(series[:, :, None], months, before)
    clim = clim[:, :, 0].astype(np.float64)

    target = series[test_start:]
    clim_pred = clim[months[test_start:]]
    naive_pred = series[test_start - 12 : n_time - 12]
    return {
        "mean_mm": float(np.mean(series)),
        "clim_pooled_r2": pooled_r2(clim_pred, target),
        "seasonal_naive_pooled_r2": pooled_r2(naive_pred, target),
        "clim_percell_r2": percell_mean_r2(clim_pred, target),
    }
