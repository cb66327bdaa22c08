from __future__ import annotations

import numpy as np
import pytest

from ames.climatology import (
    calendar_climatology,
    split_month_bounds,
    target_months,
    training_month_mask,
)


def test_climatology_is_per_cell_and_calendar_month_from_training_months_only():
    n_time = 60
    months = np.arange(n_time) % 12
    rng = np.random.default_rng(0)
    precip = rng.gamma(2.0, 50.0, (n_time, 2, 3)).astype(np.float32)
    train = training_month_mask(n_time, test_months=12, val_months=12)
    mean, std = calendar_climatology(precip, months, train)
    # hand computation for one cell and one calendar month (March = 2)
    march_train = [t for t in range(n_time) if months[t] == 2 and train[t]]
    np.testing.assert_allclose(mean[2, 1, 2], precip[march_train, 1, 2].mean(), rtol=1e-6)
    np.testing.assert_allclose(std[2, 1, 2], precip[march_train, 1, 2].std(), rtol=1e-5)
    # validation/test months do not move it
    altered = precip.copy()
    altered[~train] = 1e6
    mean_b, std_b = calendar_climatology(altered, months, train)
    np.testing.assert_array_equal(mean, mean_b)
    np.testing.assert_array_equal(std, std_b)


def test_climatology_needs_every_calendar_month_in_training():
    months = np.arange(8) % 12
    with pytest.raises(ValueError, match="calendar month 9"):
        calendar_climatology(np.ones((8, 1, 1)), months, np.ones(8, bool))


def test_split_bounds_and_target_months():
    assert split_month_bounds(518, 110, 48) == (360, 408)
    with pytest.raises(ValueError, match="cannot hold"):
        split_month_bounds(100, 60, 40)
    np.testing.assert_array_equal(target_months(np.array([11]), 3), [[0, 1, 2]])
