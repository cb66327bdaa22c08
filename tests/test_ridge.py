"""The ridge baseline (ames.evaluation.ridge) on series with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from ames.evaluation.ridge import fit_ridge, ridge_features, ridge_forecast, ridge_targets
from ames.windows import GridInputs

WINDOW, HORIZON = 3, 2


def ar1_inputs(n_time: int = 400, rho: float = 0.6, seed: int = 0) -> GridInputs:
    """Independent AR(1) standardised anomalies on a 4 × 5 grid, every cell valid."""
    rng = np.random.default_rng(seed)
    z = np.zeros((n_time, 4, 5))
    for t in range(1, n_time):
        z[t] = rho * z[t - 1] + np.sqrt(1 - rho**2) * rng.standard_normal((4, 5))
    z = z.astype(np.float32)
    return GridInputs(
        anomaly=z,
        domain_anomaly=z.reshape(n_time, -1).mean(axis=1),
        precip_mm=100.0 + 10.0 * z,
        months=np.arange(n_time) % 12,
        context=np.zeros((5, 4, 5), dtype=np.float32),
    )


def test_ridge_recovers_the_ar1_forecast_at_every_lead():
    inputs = ar1_inputs()
    valid = np.ones((4, 5), dtype=bool)
    model = fit_ridge(inputs, valid, np.arange(WINDOW, 300), np.arange(300, 390), WINDOW, HORIZON)
    last_month = WINDOW - 1  # the cell's own anomaly at the origin
    assert model.coef[0, last_month] == pytest.approx(0.6, abs=0.05)
    assert model.coef[1, last_month] == pytest.approx(0.36, abs=0.05)
    assert np.abs(np.delete(model.coef[0], last_month)).max() < 0.1
    assert model.alpha[0] <= 1e3  # a strong linear signal: little shrinkage wins


def test_ridge_forecast_is_climatology_plus_the_predicted_anomaly_in_mm():
    inputs = ar1_inputs()
    valid = np.ones((4, 5), dtype=bool)
    valid[0, 0] = False
    model = fit_ridge(inputs, valid, np.arange(WINDOW, 300), np.arange(300, 390), WINDOW, HORIZON)
    clim_mean = np.full((12, 4, 5), 100.0)
    clim_std = np.full((12, 4, 5), 10.0)
    origins = np.array([390, 395])
    forecast = ridge_forecast(model, inputs, valid, clim_mean, clim_std, origins)
    assert forecast.shape == (2, HORIZON, 4, 5)
    assert np.isnan(forecast[:, :, 0, 0]).all()
    z = ridge_features(inputs, valid, origins, WINDOW) @ model.coef.T + model.intercept
    expected = 100.0 + 10.0 * z.reshape(2, -1, HORIZON).transpose(0, 2, 1)
    np.testing.assert_allclose(forecast[..., valid], expected, rtol=1e-5)


def test_ridge_reads_no_month_after_its_training_targets():
    inputs = ar1_inputs()
    valid = np.ones((4, 5), dtype=bool)
    train, val = np.arange(WINDOW, 200), np.arange(300, 390)
    changed = ar1_inputs(seed=1)
    last_target = train.max() + HORIZON
    mixed = GridInputs(
        anomaly=np.concatenate(
            [inputs.anomaly[: last_target + 1], changed.anomaly[last_target + 1 :]]
        ),
        domain_anomaly=np.concatenate(
            [inputs.domain_anomaly[: last_target + 1], changed.domain_anomaly[last_target + 1 :]]
        ),
        precip_mm=inputs.precip_mm,
        months=inputs.months,
        context=inputs.context,
    )
    a = fit_ridge(inputs, valid, train, val, WINDOW, HORIZON, alphas=(10.0,))
    b = fit_ridge(mixed, valid, train, val, WINDOW, HORIZON, alphas=(10.0,))
    np.testing.assert_array_equal(a.coef, b.coef)
    targets = ridge_targets(inputs, valid, train, HORIZON)
    assert targets.shape == (len(train) * 20, HORIZON)


def test_the_experts_linear_path_reads_the_same_regressors_as_ridge():
    """``linear_path: ridge`` copies ridge coefficients into the expert: the expert's input
    channels must give the very rows ``ridge_features`` builds, in the same order."""
    import torch

    from ames.models.layers import LinearPath
    from ames.windows import window_inputs

    inputs = ar1_inputs()
    valid = np.ones((4, 5), dtype=bool)
    valid[1, 2] = False
    rng = np.random.default_rng(7)
    coef, intercept = rng.normal(size=(HORIZON, 2 * WINDOW + 2)), rng.normal(size=HORIZON)
    path = LinearPath(WINDOW, HORIZON, frozen=True)
    path.set_weights(coef, intercept)
    assert not any(p.requires_grad for p in path.parameters())
    origins = np.array([20, 33, 100])
    x = torch.from_numpy(np.stack([window_inputs(inputs, int(t), WINDOW) for t in origins]))
    with torch.no_grad():
        from_expert = path(x).numpy()[..., valid]  # [S, H, N]
    rows = ridge_features(inputs, valid, origins, WINDOW) @ coef.T + intercept
    expected = rows.reshape(len(origins), -1, HORIZON).transpose(0, 2, 1)
    np.testing.assert_allclose(from_expert, expected, rtol=1e-4, atol=1e-4)
