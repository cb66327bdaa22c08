"""Baselines on tiny series whose right answer is known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ames.climatology import calendar_climatology, training_month_mask
from ames.evaluation.baselines import (
    RHO_MAX,
    all_baselines,
    climatology_forecast,
    damped_persistence_forecast,
    fit_anomaly_rho,
    persistence_forecast,
    seasonal_naive_forecast,
)

T = 36
MONTHS = np.arange(T) % 12  # record starts in January


def trend_series() -> np.ndarray:
    """``[T, 1, 2]``: cell 0 = 10 + t (a linear trend), cell 1 outside the domain (NaN)."""
    precip = np.full((T, 1, 2), np.nan)
    precip[:, 0, 0] = 10.0 + np.arange(T)
    return precip


def test_seasonal_naive_reads_same_month_a_year_before_target():
    fc = seasonal_naive_forecast(trend_series(), np.array([20, 11]), 12)
    assert fc.shape == (2, 12, 1, 2)
    assert fc[0, 0, 0, 0] == 10 + 9  # origin 20, lead 1: target 21 -> month 9
    assert fc[0, 11, 0, 0] == 10 + 20  # lead 12: target 32 -> month 20, the origin itself
    assert fc[1, 0, 0, 0] == 10 + 0  # origin 11, lead 1 -> month 0
    assert np.isnan(fc[..., 0, 1]).all()


def test_seasonal_naive_rejects_months_before_the_record_and_long_horizons():
    with pytest.raises(ValueError, match="origin 10"):
        seasonal_naive_forecast(trend_series(), np.array([20, 10]), 12)
    with pytest.raises(ValueError, match="horizon ≤ 12"):
        seasonal_naive_forecast(trend_series(), np.array([30]), 13)


def test_persistence_repeats_the_origin_month():
    fc = persistence_forecast(trend_series(), np.array([20, 35]), 12)
    assert (fc[0, :, 0, 0] == 30).all()
    assert (fc[1, :, 0, 0] == 45).all()  # the last month may be an origin: no target needed


def test_climatology_forecast_takes_target_calendar_month():
    clim_mean = (100.0 + np.arange(12))[:, None, None] * np.ones((1, 1, 2))
    fc = climatology_forecast(clim_mean, MONTHS, np.array([20]), 12)  # origin in September
    assert fc[0, 0, 0, 0] == 109  # lead 1: October
    assert fc[0, 3, 0, 0] == 100  # lead 4: January
    assert fc[0, 11, 0, 0] == 108  # lead 12: September


def test_climatology_of_a_pure_sinusoid_forecasts_it_exactly():
    precip = (100 + 50 * np.sin(2 * np.pi * MONTHS / 12))[:, None, None] * np.ones((1, 1, 3))
    train = training_month_mask(T, test_months=12, val_months=6)
    clim_mean, _ = calendar_climatology(precip, MONTHS, train)
    origins = np.arange(18, T - 12)
    fc = climatology_forecast(clim_mean, MONTHS, origins, 12)
    truth = precip[origins[:, None] + np.arange(1, 13)]
    np.testing.assert_allclose(fc, truth, rtol=1e-6)


def constant_clim() -> np.ndarray:
    return np.full((12, 1, 2), 100.0)


def test_damped_persistence_hand_values_and_clip():
    precip = np.full((T, 1, 2), 100.0)
    precip[20, 0, 0] = 140.0  # anomaly +40 at the origin
    precip[20, 0, 1] = 0.0  # anomaly -100
    clim = constant_clim()
    clim[9, 0, 1] = 50.0  # October: 50 − 100 < 0 at lead 1
    rho = np.array([[0.5, 1.0]])
    fc = damped_persistence_forecast(precip, MONTHS, clim, rho, np.array([20]), 12)
    assert fc[0, 0, 0, 0] == pytest.approx(120.0)
    assert fc[0, 1, 0, 0] == pytest.approx(110.0)
    assert fc[0, 11, 0, 0] == pytest.approx(100 + 40 * 0.5**12)
    assert (fc[0, :, 0, 1] == 0.0).all()  # −50 at lead 1 clipped; 100 − 100 = 0 after


def test_damped_persistence_limits_rho_zero_and_one():
    rng = np.random.default_rng(0)
    precip = rng.gamma(4.0, 25.0, size=(T, 2, 3))
    clim_mean, _ = calendar_climatology(precip, MONTHS, np.ones(T, dtype=bool))
    origins = np.arange(12, 24)
    clim_fc = climatology_forecast(clim_mean, MONTHS, origins, 12)

    zero = damped_persistence_forecast(precip, MONTHS, clim_mean, np.zeros((2, 3)), origins, 12)
    np.testing.assert_allclose(zero, clim_fc, rtol=1e-6)

    one = damped_persistence_forecast(precip, MONTHS, clim_mean, np.ones((2, 3)), origins, 12)
    anomaly = precip[origins] - clim_mean[MONTHS[origins]]
    np.testing.assert_allclose(one, np.maximum(clim_fc + anomaly[:, None], 0), rtol=1e-5)


def ar1_anomalies(rho: float, n_time: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.zeros(n_time)
    for t in range(1, n_time):
        a[t] = rho * a[t - 1] + rng.normal()
    return a


def test_fit_rho_recovers_a_known_ar1_series():
    n_time = 6000
    months = np.arange(n_time) % 12
    seasonal = 150 + 60 * np.cos(2 * np.pi * months / 12)
    precip = np.full((n_time, 1, 3), np.nan)
    precip[:, 0, 0] = seasonal + 10 * ar1_anomalies(0.6, n_time, seed=1)
    precip[:, 0, 1] = seasonal + 10 * ar1_anomalies(0.0, n_time, seed=2)
    train = np.ones(n_time, dtype=bool)
    clim_mean, _ = calendar_climatology(precip, months, train)
    rho = fit_anomaly_rho(precip, months, clim_mean, train)
    assert rho[0, 0] == pytest.approx(0.6, abs=0.03)
    assert 0.0 <= rho[0, 1] < 0.05
    assert np.isnan(rho[0, 2])


def test_fit_rho_uses_training_months_only():
    rng = np.random.default_rng(3)
    precip = 100 + rng.normal(0, 20, size=(T, 2, 2))
    train = training_month_mask(T, test_months=6, val_months=6)  # months 0..23
    clim_mean, _ = calendar_climatology(precip, MONTHS, train)
    rho = fit_anomaly_rho(precip, MONTHS, clim_mean, train)

    changed = precip.copy()
    changed[24] = 1e4  # first validation month: the pair (23, 24) must not be used
    changed[25:] = rng.gamma(1.0, 300.0, size=changed[25:].shape)
    np.testing.assert_array_equal(fit_anomaly_rho(changed, MONTHS, clim_mean, train), rho)

    changed[23] += 50.0  # a training month does matter
    assert not np.array_equal(fit_anomaly_rho(changed, MONTHS, clim_mean, train), rho)


def test_fit_rho_is_clipped_to_zero_and_below_one():
    clim = constant_clim()
    alternating = 100 + 10 * (-1.0) ** np.arange(T)  # lag-1 correlation −1
    constant_anomaly = np.full(T, 130.0)  # lag-1 correlation +1
    no_anomaly = np.full(T, 100.0)
    precip = np.stack([alternating, constant_anomaly], axis=-1)[:, None]
    rho = fit_anomaly_rho(precip, MONTHS, clim, np.ones(T, dtype=bool))
    np.testing.assert_allclose(rho, [[0.0, RHO_MAX]])
    flat = fit_anomaly_rho(
        np.stack([no_anomaly, no_anomaly], -1)[:, None], MONTHS, clim, np.ones(T, bool)
    )
    np.testing.assert_array_equal(flat, [[0.0, 0.0]])


def test_fit_rho_rejects_gaps_inside_the_domain():
    precip = trend_series()
    precip[5, 0, 0] = np.nan
    with pytest.raises(ValueError, match="missing values in some training months"):
        fit_anomaly_rho(precip, MONTHS, constant_clim(), np.ones(T, dtype=bool))


def test_all_baselines_and_dtype():
    precip = trend_series().astype(np.float32)
    clim = constant_clim().astype(np.float32)
    rho = np.array([[0.5, np.nan]], dtype=np.float32)
    origins = np.array([11, 20])
    out = all_baselines(precip, MONTHS, clim, rho, origins, 12)
    assert list(out) == ["climatology", "seasonal_naive", "persistence", "damped_persistence"]
    for forecast in out.values():
        assert forecast.shape == (2, 12, 1, 2)
        assert forecast.dtype == np.float32
    np.testing.assert_array_equal(out["persistence"], persistence_forecast(precip, origins, 12))


def test_origins_outside_the_record_raise():
    with pytest.raises(ValueError, match="origin indices"):
        persistence_forecast(trend_series(), np.array([T]), 12)
