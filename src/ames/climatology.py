"""Training-period climatology: the reference every forecast is judged against.

Everything here is estimated from the months that ``train_months`` marks, never from
validation or test months (SPEC §3).
"""

from __future__ import annotations

import numpy as np


def split_month_bounds(n_time: int, test_months: int, val_months: int) -> tuple[int, int]:
    """Return ``(val_start, test_start)`` month indices; training months are ``< val_start``."""
    test_start = n_time - test_months
    val_start = test_start - val_months
    if val_start <= 0:
        raise ValueError(
            f"{n_time} months cannot hold {val_months} validation + {test_months} test months "
            "plus a training period; shorten split.val_months / split.test_months "
            "or supply more data."
        )
    return val_start, test_start


# Floor of the calendar-month spread (mm/month) that standardises anomalies: a cell and month
# that never rains must still divide.
MIN_STD_MM = 1.0


def training_month_mask(n_time: int, test_months: int, val_months: int) -> np.ndarray:
    """Boolean ``[T]``: True for months in the training period."""
    val_start, _ = split_month_bounds(n_time, test_months, val_months)
    mask = np.zeros(n_time, dtype=bool)
    mask[:val_start] = True
    return mask


def calendar_climatology(
    precip: np.ndarray, months: np.ndarray, use: np.ndarray, min_std: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per calendar month and cell over the months in ``use``.

    precip: ``[T, lat, lon]`` mm/month (NaN outside the domain); months: ``[T]`` 0..11;
    use: boolean ``[T]``. Returns ``(mean, std)`` each ``[12, lat, lon]`` float32. ``std``
    is floored at ``min_std`` so it can divide. Raises if a calendar month has no month in ``use``.
    """
    months = np.asarray(months)
    use = np.asarray(use, dtype=bool)
    shape = (12, *precip.shape[1:])
    mean = np.full(shape, np.nan, dtype=np.float64)
    std = np.full(shape, np.nan, dtype=np.float64)
    for m in range(12):
        sel = use & (months == m)
        if not sel.any():
            raise ValueError(
                f"calendar month {m + 1} has no month in the fitting period; "
                "the training period must span at least one full year"
            )
        block = precip[sel].astype(np.float64)
        mean[m] = block.mean(axis=0)
        std[m] = block.std(axis=0)
    std = np.where(np.isnan(std), np.nan, np.maximum(std, min_std))
    return mean.astype(np.float32), std.astype(np.float32)


def anomalies(precip: np.ndarray, months: np.ndarray, clim_mean: np.ndarray) -> np.ndarray:
    """``precip − clim_mean[month]`` for every month, ``[T, lat, lon]``."""
    return precip - clim_mean[np.asarray(months)]


def target_months(origin_months: np.ndarray, horizon: int) -> np.ndarray:
    """Calendar month (0..11) of each lead 1..H for origins in calendar months ``origin_months``.

    Returns ``[S, H]`` int64.
    """
    leads = np.arange(1, horizon + 1)
    return ((np.asarray(origin_months)[:, None] + leads[None, :]) % 12).astype(np.int64)
