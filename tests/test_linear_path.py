"""The experts' linear path with grid-aware regressors (ames.models.linear_path,
ames.models.linear_path_fit) on small grids with a known answer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from config_helpers import committed_params
from scipy.ndimage import gaussian_filter

from ames.config import ConfigError, LinearFeatures, parse_config
from ames.evaluation.ridge import fit_ridge, origin_moments, ridge_features, ridge_targets
from ames.models.linear_path import LinearPath, SpatialRegressors, grid_spacing_km
from ames.models.linear_path_fit import (
    add_loading_moments,
    cell_loading,
    fit_spatial_ridge,
    months_touched,
    spatial_rows,
)
from ames.selection import blocked_year_folds
from ames.windows import GridInputs, window_inputs

WINDOW, HORIZON, SHAPE = 4, 2, (9, 10)


def grid_inputs(n_time: int = 360, seed: int = 0, noise: float = 1.0) -> GridInputs:
    """A persistent AR(1) anomaly (smooth over ~1.5 cells) plus white cell noise,
    with a domain-wide index whose effect grows from west to east."""
    rng = np.random.default_rng(seed)
    large = np.zeros((n_time, *SHAPE))
    index = np.zeros(n_time)
    for t in range(1, n_time):
        shock = gaussian_filter(rng.standard_normal(SHAPE), 1.5, mode="wrap")
        shock /= shock.std()
        large[t] = 0.7 * large[t - 1] + np.sqrt(1 - 0.49) * shock
        index[t] = 0.9 * index[t - 1] + np.sqrt(1 - 0.81) * rng.standard_normal()
    loading = np.linspace(0.2, 1.0, SHAPE[1])[None, :]
    z = large + loading * index[:, None, None] + noise * rng.standard_normal((n_time, *SHAPE))
    z = ((z - z.mean()) / z.std()).astype(np.float32)
    return GridInputs(
        anomaly=z,
        domain_anomaly=z.reshape(n_time, -1).mean(axis=1),
        precip_mm=100.0 + 10.0 * z,
        months=np.arange(n_time) % 12,
        context=np.zeros((5, *SHAPE), dtype=np.float32),
    )


def folds_over(origins: np.ndarray, n_folds: int = 4):
    return blocked_year_folds(origins, origins // 12, n_folds, WINDOW, HORIZON)


def regressors(features: LinearFeatures, valid: np.ndarray) -> SpatialRegressors:
    return SpatialRegressors(features, WINDOW, valid, spacing_km=(1.0, 1.0))


def test_smoothing_is_a_gaussian_mean_over_the_valid_cells_only():
    rng = np.random.default_rng(1)
    valid = rng.random(SHAPE) > 0.2
    field = np.where(valid, rng.standard_normal(SHAPE), 0.0).astype(np.float32)
    scales = (1.5, 3.0, 30.0)  # the last one's kernel is far wider than the 9 × 10 grid
    spatial = regressors(LinearFeatures(scales, 1), valid)
    got = spatial.smoothed(torch.from_numpy(field)[None, None]).numpy()[0]
    for i, sigma in enumerate(scales):
        num = gaussian_filter(field.astype(np.float64), sigma, mode="constant")
        den = gaussian_filter(valid.astype(np.float64), sigma, mode="constant")
        np.testing.assert_allclose(got[i], np.where(valid, num / den, 0.0), atol=1e-5)


def test_grid_spacing_shrinks_east_west_with_latitude():
    dy, dx = grid_spacing_km(np.array([60.0, 60.1]), np.array([10.0, 10.1]))
    assert dy == pytest.approx(11.132, rel=1e-3)
    assert dx == pytest.approx(dy * np.cos(np.deg2rad(60.05)), rel=1e-3)


def test_smoothed_regressors_recover_skill_that_the_cell_alone_misses():
    """Cell noise hides the persistent large-scale anomaly; its neighbourhood mean finds it,
    and cross-validation sees the gain."""
    inputs = grid_inputs()
    valid = np.ones(SHAPE, dtype=bool)
    train, folds = np.arange(WINDOW, 250), folds_over(np.arange(WINDOW, 340))
    same = {"fold_inputs": lambda _: inputs}
    plain = fit_ridge(inputs, valid, train, folds, WINDOW, HORIZON, **same)
    spatial = fit_spatial_ridge(
        inputs,
        valid,
        train,
        folds,
        WINDOW,
        HORIZON,
        regressors(LinearFeatures((1.5,), 2), valid),
        **same,
    )
    ratio = spatial.best_cv_mse / plain.best_cv_mse
    assert ratio[0] < 0.97 and ratio[1] < 1.0
    assert spatial.coef[0, -1] > 0.3  # the latest smoothed month carries the signal


def test_the_loading_moments_equal_those_of_the_explicit_regressors():
    inputs = grid_inputs(n_time=120)
    valid = np.ones(SHAPE, dtype=bool)
    valid[0, :3] = False
    origins = np.arange(WINDOW, 100)
    plain = ridge_features(inputs, valid, origins, WINDOW)
    targets = ridge_targets(inputs, valid, origins, HORIZON)
    loading = np.random.default_rng(2).standard_normal(SHAPE)
    domain = inputs.domain_anomaly[origins[:, None] - np.arange(WINDOW - 1, -1, -1)]
    explicit = (loading[valid][None, :, None] * domain[:, None, :]).reshape(-1, WINDOW)
    expected = origin_moments(np.concatenate([plain, explicit], axis=1), targets, len(origins))
    rows = np.concatenate([np.ones((len(plain), 1)), plain, targets], axis=1)
    rows = rows.reshape(len(origins), -1, rows.shape[1])
    base = np.matmul(rows.transpose(0, 2, 1), rows)
    got = add_loading_moments(base, rows, domain.astype(np.float64), loading[valid], HORIZON)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-8)


def test_each_folds_loading_reads_no_held_out_target_month():
    """The loading is estimated inside each fold from the months its training windows
    touch: changing every held-out target month leaves it unchanged."""
    inputs = grid_inputs()
    valid = np.ones(SHAPE, dtype=bool)
    n_months = len(inputs.months)
    for fold in folds_over(np.arange(WINDOW, 340)):
        touched = months_touched(fold.train, WINDOW, HORIZON, n_months)
        held_out = np.unique((fold.val[:, None] + np.arange(1, HORIZON + 1)).ravel())
        assert not touched[held_out].any()
        changed = GridInputs(
            anomaly=inputs.anomaly.copy(),
            domain_anomaly=inputs.domain_anomaly.copy(),
            precip_mm=inputs.precip_mm,
            months=inputs.months,
            context=inputs.context,
        )
        changed.anomaly[held_out] += 5.0
        changed.domain_anomaly[held_out] += 5.0
        np.testing.assert_array_equal(
            cell_loading(inputs, valid, touched), cell_loading(changed, valid, touched)
        )


def test_the_loading_finds_where_the_domain_signal_is_felt_more():
    inputs = grid_inputs(noise=0.3)
    valid = np.ones(SHAPE, dtype=bool)
    loading = cell_loading(inputs, valid, np.ones(len(inputs.months), dtype=bool))
    assert loading[:, -1].mean() > loading[:, 0].mean()
    assert loading[valid].mean() == pytest.approx(0.0, abs=1e-9)


def with_terrain(inputs: GridInputs, seed: int = 3) -> GridInputs:
    """``inputs`` with a random z-scored context (elevation in channel 0)."""
    context = np.random.default_rng(seed).normal(size=inputs.context.shape).astype(np.float32)
    return dataclasses.replace(inputs, context=context)


@pytest.mark.parametrize(
    "loading, interaction_lags", [(False, 0), (True, 0), (False, 2), (True, 3)]
)
def test_the_experts_linear_path_computes_the_rows_it_was_fitted_on(loading, interaction_lags):
    """``set_weights`` copies the fitted regression into the expert: from the expert's input
    window the path must give ``rows @ coef + intercept`` for the rows the fit used."""
    inputs = with_terrain(grid_inputs(n_time=120))
    valid = np.ones(SHAPE, dtype=bool)
    valid[2, 3] = False
    features = LinearFeatures((1.0, 2.5), 2, loading, interaction_lags)
    path = LinearPath(WINDOW, HORIZON, frozen=True)
    path.add_spatial(regressors(features, valid))
    rng = np.random.default_rng(5)
    coef, intercept = rng.normal(size=(HORIZON, path.n_features)), rng.normal(size=HORIZON)
    cell_weights = np.where(valid, rng.normal(size=SHAPE), 0.0)
    path.set_weights(coef, intercept, cell_weights if loading else None)
    origins = np.array([20, 47, 100])
    x = torch.from_numpy(np.stack([window_inputs(inputs, int(t), WINDOW) for t in origins]))
    with torch.no_grad():
        from_expert = path(x).numpy()[..., valid]  # [S, H, N]
    parts = [
        ridge_features(inputs, valid, origins, WINDOW),
        spatial_rows(path.spatial, inputs, valid, origins, WINDOW),
    ]
    if loading:
        domain = inputs.domain_anomaly[origins[:, None] - np.arange(WINDOW - 1, -1, -1)]
        parts.append((cell_weights[valid][None, :, None] * domain[:, None]).reshape(-1, WINDOW))
    rows = np.concatenate(parts, axis=1) @ coef.T + intercept
    expected = rows.reshape(len(origins), -1, HORIZON).transpose(0, 2, 1)
    np.testing.assert_allclose(from_expert, expected, rtol=1e-4, atol=1e-4)


def test_interaction_regressors_are_anomaly_and_domain_mean_times_elevation_and_season():
    inputs = with_terrain(grid_inputs(n_time=60))
    valid = np.ones(SHAPE, dtype=bool)
    valid[0, 0] = False
    origins = np.array([11, 30, 59])
    rows = spatial_rows(
        regressors(LinearFeatures((), 0, False, 2), valid), inputs, valid, origins, WINDOW
    ).reshape(len(origins), valid.sum(), 8)
    elevation = inputs.context[0][valid]
    angle = 2 * np.pi * inputs.months[origins] / 12.0
    for i, t in enumerate(origins):
        recent = inputs.anomaly[[t - 1, t]][:, valid]  # [2, N], oldest first
        domain = inputs.domain_anomaly[[t - 1, t]][:, None]
        expected = np.concatenate(
            [
                recent * elevation,
                np.broadcast_to(domain * np.sin(angle[i]), recent.shape),
                np.broadcast_to(domain * np.cos(angle[i]), recent.shape),
                domain * elevation,
            ]
        ).T  # [N, 8]
        np.testing.assert_allclose(rows[i], expected, rtol=1e-5, atol=1e-6)


def test_interaction_lags_beyond_the_window_are_refused():
    with pytest.raises(ValueError, match="interaction_lags"):
        regressors(LinearFeatures((), 0, False, WINDOW + 1), np.ones(SHAPE, dtype=bool))


def test_set_weights_refuses_a_regression_with_other_regressors():
    path = LinearPath(WINDOW, HORIZON, frozen=True)
    path.add_spatial(regressors(LinearFeatures((1.0,), 2), np.ones(SHAPE, dtype=bool)))
    with pytest.raises(ValueError, match="regressors"):
        path.set_weights(np.zeros((HORIZON, 2 * WINDOW + 2)), np.zeros(HORIZON))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("smoothing_km", [10, -5], "positive km"),
        ("smoothing_lags", -1, "integer >= 0"),
        ("loading", "yes", "true or false"),
    ],
)
def test_a_bad_linear_features_value_names_its_key(key, value, message):
    params = committed_params()
    params["linear_features"] = {**params["linear_features"], key: value}
    with pytest.raises(ConfigError, match=f"linear_features.{key}: .*{message}"):
        parse_config(params)


def test_more_smoothing_lags_than_the_window_is_refused():
    with pytest.raises(ValueError, match="smoothing_lags"):
        regressors(LinearFeatures((1.0,), WINDOW + 1), np.ones(SHAPE, dtype=bool))


def test_fits_in_chunks_of_origins_equal_the_fits_on_all_rows_at_once(monkeypatch):
    """Moments and forecasts are built over chunks of at most ``MAX_ROWS`` rows (bounded
    memory on large domains); a chunk of a single origin gives the same fits as one chunk."""
    import ames.evaluation.ridge as ridge_module
    from ames.evaluation.ridge import ridge_forecast
    from ames.models.linear_path_fit import refit_at_penalties

    inputs = grid_inputs(n_time=200)
    valid = np.ones(SHAPE, dtype=bool)
    valid[0, :3] = False
    train, folds = np.arange(WINDOW, 150), folds_over(np.arange(WINDOW, 180))
    same = {"fold_inputs": lambda _: inputs}
    clim = np.zeros((12, *SHAPE)), np.ones((12, *SHAPE))

    def fits():
        spatial = regressors(LinearFeatures((1.5, 3.0), 2, loading=True), valid)
        plain = fit_ridge(inputs, valid, train, folds, WINDOW, HORIZON, **same)
        path = fit_spatial_ridge(inputs, valid, train, folds, WINDOW, HORIZON, spatial, **same)
        sets = [train[:60], train[40:]]
        refits = refit_at_penalties(inputs, valid, sets, WINDOW, HORIZON, spatial, path.alpha)
        forecast = ridge_forecast(plain, inputs, valid, *clim, np.arange(160, 185))
        return [plain.coef, plain.cv_mse, path.coef, path.cv_mse, path.loading, forecast] + [
            part for refit in refits for part in refit
        ]

    monkeypatch.setattr(ridge_module, "MAX_ROWS", 10**9)
    whole = fits()
    monkeypatch.setattr(ridge_module, "MAX_ROWS", 1)  # one origin per chunk
    for got, want in zip(fits(), whole, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
