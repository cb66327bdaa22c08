"""The ridge baseline (ames.evaluation.ridge) on series with a known answer."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from ames.climatology import calendar_climatology, target_months
from ames.evaluation.ridge import (
    CLIMATOLOGY,
    RidgeBaseline,
    fit_ridge,
    fit_ridge_selected,
    fold_inputs,
    penalty_label,
    ridge_features,
    ridge_forecast,
    ridge_targets,
)
from ames.selection import Fold, blocked_year_folds
from ames.windows import GridInputs, build_grid_inputs

WINDOW, HORIZON = 3, 2


def folds_over(origins: np.ndarray, n_folds: int = 4) -> list[Fold]:
    return blocked_year_folds(origins, origins // 12, n_folds, WINDOW, HORIZON)


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


def fit_ar1(inputs: GridInputs, valid: np.ndarray) -> RidgeBaseline:
    """``fit_ridge`` on origins 3…299, penalties by 4 folds over origins 3…389, every fold
    reading ``inputs`` as they are."""
    return fit_ridge(
        inputs,
        valid,
        np.arange(WINDOW, 300),
        folds_over(np.arange(WINDOW, 390)),
        WINDOW,
        HORIZON,
        fold_inputs=lambda _: inputs,
    )


def test_ridge_recovers_the_ar1_forecast_at_every_lead():
    inputs = ar1_inputs()
    valid = np.ones((4, 5), dtype=bool)
    model = fit_ar1(inputs, valid)
    last_month = WINDOW - 1  # the cell's own anomaly at the origin
    assert model.coef[0, last_month] == pytest.approx(0.6, abs=0.05)
    assert model.coef[1, last_month] == pytest.approx(0.36, abs=0.05)
    assert np.abs(np.delete(model.coef[0], last_month)).max() < 0.1
    assert model.alpha[0] <= 1e3  # a strong linear signal: little shrinkage wins


def test_ridge_forecast_is_climatology_plus_the_predicted_anomaly_in_mm():
    inputs = ar1_inputs()
    valid = np.ones((4, 5), dtype=bool)
    valid[0, 0] = False
    model = fit_ar1(inputs, valid)
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
    train = np.arange(WINDOW, 200)
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
    folds = [Fold(train=train[:100], val=train[120:])]
    a = fit_ridge(
        inputs,
        valid,
        train,
        folds,
        WINDOW,
        HORIZON,
        fold_inputs=lambda _: inputs,
        alphas=(10.0, 1e3),
    )
    b = fit_ridge(
        mixed, valid, train, folds, WINDOW, HORIZON, fold_inputs=lambda _: mixed, alphas=(10.0, 1e3)
    )
    np.testing.assert_array_equal(a.coef, b.coef)
    targets = ridge_targets(inputs, valid, train, HORIZON)
    assert targets.shape == (len(train) * 20, HORIZON)


def test_the_experts_linear_path_reads_the_same_regressors_as_ridge():
    """``linear_path: ridge`` copies ridge coefficients into the expert: the expert's input
    channels must give the very rows ``ridge_features`` builds, in the same order."""
    import torch

    from ames.models.linear_path import LinearPath
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


@pytest.mark.parametrize("kind", ["anomaly", "standardized_anomaly", "normalized"])
def test_the_experts_linear_path_forecasts_the_ridge_baseline_in_its_target_units(kind):
    """With ``set_units`` from the run's transform, the path is the ``ridge`` baseline: back
    in mm/month it equals ``ridge_forecast`` for origins in every calendar month."""
    import torch

    from ames.climatology import target_months
    from ames.models.linear_path import LinearPath
    from ames.windows import TargetTransform, window_inputs

    inputs = ar1_inputs()
    valid = np.ones((4, 5), dtype=bool)
    rng = np.random.default_rng(11)
    clim_mean = rng.uniform(150.0, 250.0, size=(12, 4, 5)).astype(np.float32)
    clim_std = rng.uniform(20.0, 60.0, size=(12, 4, 5)).astype(np.float32)
    transform = TargetTransform(kind, clim_mean, clim_std, 40.0, 190.0, 70.0)
    model = fit_ar1(inputs, valid)
    path = LinearPath(WINDOW, HORIZON, frozen=True)
    path.set_weights(model.coef, model.intercept)
    path.set_units(*transform.standardized_anomaly_units(clim_mean, clim_std))
    origins = np.arange(300, 312)  # one origin in each calendar month
    x = torch.from_numpy(np.stack([window_inputs(inputs, int(t), WINDOW) for t in origins]))
    month = torch.from_numpy(target_months(inputs.months[origins], HORIZON))
    with torch.no_grad():
        np.testing.assert_array_equal(path.origin_month(x).numpy(), inputs.months[origins])
        mm = transform.to_mm(path(x), month).numpy()
    expected = ridge_forecast(model, inputs, valid, clim_mean, clim_std, origins)
    np.testing.assert_allclose(mm, expected, rtol=1e-4)


def random_regression(n_origins: int = 30, cells: int = 7, seed: int = 3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_origins * cells, 5))
    y = x @ rng.normal(size=(5, HORIZON)) + 0.5 + rng.normal(size=(n_origins * cells, HORIZON))
    return x, y


@pytest.mark.parametrize("alpha", [0.0, 3.0, 1e4])
def test_moment_solution_equals_scikit_learn_ridge(alpha):
    """The moment-matrix solver is scikit-learn's ``Ridge`` (unpenalised intercept)."""
    from sklearn.linear_model import Ridge

    from ames.evaluation.ridge import mean_squared_error, origin_moments, solve_ridge

    x, y = random_regression()
    moments = origin_moments(x, y, 30).sum(axis=0)
    coef, intercept = solve_ridge(moments, alpha, 5)
    reference = Ridge(alpha=alpha).fit(x, y)
    np.testing.assert_allclose(coef, reference.coef_, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(intercept, reference.intercept_, rtol=1e-9, atol=1e-10)
    mse = ((reference.predict(x) - y) ** 2).mean(axis=0)
    np.testing.assert_allclose(mean_squared_error(moments, coef, intercept), mse, rtol=1e-9)


def test_cross_validated_mse_pools_every_folds_held_out_rows():
    from sklearn.linear_model import Ridge

    from ames.evaluation.ridge import cross_validated_mse, origin_moments

    x, y = random_regression()
    origins = np.arange(100, 130)
    folds = [
        Fold(train=origins[10:], val=origins[:8]),
        Fold(train=np.r_[origins[:5], origins[20:]], val=origins[8:16]),
    ]
    alphas = (1.0, 100.0)
    got = cross_validated_mse(origin_moments(x, y, 30), origins, folds, 5, alphas)
    rows = {int(o): slice(i * 7, (i + 1) * 7) for i, o in enumerate(origins)}

    def stack(a, which):
        return np.concatenate([a[rows[int(o)]] for o in which])

    for a, alpha in enumerate(alphas):
        sse = sum(
            (
                (
                    Ridge(alpha=alpha)
                    .fit(stack(x, f.train), stack(y, f.train))
                    .predict(stack(x, f.val))
                    - stack(y, f.val)
                )
                ** 2
            ).sum(axis=0)
            for f in folds
        )
        np.testing.assert_allclose(got[a], sse / (16 * 7), rtol=1e-9)


def test_selected_penalty_is_the_one_with_the_lowest_cv_error_per_lead():
    x, y = random_regression(n_origins=60)
    y[:, 1] = np.random.default_rng(0).normal(size=len(y))  # lead 2: nothing to predict
    origins = np.arange(60)
    folds = [Fold(train=origins[20:], val=origins[:20]), Fold(train=origins[:40], val=origins[40:])]
    model = fit_ridge_selected(x, y, origins, origins, folds, WINDOW, alphas=(1.0, 1e8))
    assert model.alpha.tolist() == [1.0, 1e8]
    np.testing.assert_array_equal(model.alpha, np.asarray((1.0, 1e8))[model.cv_mse.argmin(0)])
    assert np.abs(model.coef[1]).max() < 1e-3  # shrunk to the intercept


def test_a_lead_without_out_of_fold_skill_falls_back_to_climatology_exactly():
    """The CLIMATOLOGY candidate (zero anomaly, no intercept) wins where every penalty's
    held-out error is above the climatological forecast's, and only there."""
    from ames.evaluation.ridge import CLIMATOLOGY, RIDGE_ALPHAS

    x, y = random_regression(n_origins=60)
    noise = np.random.default_rng(4).normal(size=len(y))
    y[:, 1] = noise - noise.mean()  # lead 2: nothing to predict, anomalies centred
    origins = np.arange(60)
    folds = [Fold(train=origins[20:], val=origins[:20]), Fold(train=origins[:40], val=origins[40:])]
    model = fit_ridge_selected(x, y, origins, origins, folds, WINDOW)
    assert RIDGE_ALPHAS[-1] == CLIMATOLOGY
    assert model.alpha[1] == CLIMATOLOGY
    assert np.isfinite(model.alpha[0])  # lead 1 has a signal
    np.testing.assert_array_equal(model.coef[1], 0.0)
    assert model.intercept[1] == 0.0
    held_out = model.cv_mse[:, 1]
    assert held_out[-1] == held_out.min()
    np.testing.assert_allclose(held_out[-1], np.mean(y[:, 1][: 60 * 7] ** 2), rtol=0.05)


def test_a_gain_over_climatology_within_the_fold_noise_is_not_confirmed():
    """Candidate 0 beats climatology on the pooled folds but by less than one standard error
    of its per-fold gains: climatology is kept; with no margin the lowest error wins."""
    from ames.evaluation.ridge import CLIMATOLOGY, choose_penalties, confirmed_gain

    alphas = (1.0, CLIMATOLOGY)
    rows = np.array([100.0, 100.0, 100.0, 100.0])
    climatology = np.full(4, 100.0)
    noisy = np.array([90.0, 108.0, 93.0, 107.0])  # mean gain 0.5, per-fold gains ±8
    steady = np.array([95.0, 96.0, 95.0, 96.0])  # mean gain 4.5, per-fold gains ±0.5
    sse = np.stack(
        [np.stack([noisy, climatology], axis=1), np.stack([steady, climatology], axis=1)], axis=2
    )  # [K, A, H]
    gain, standard_error = confirmed_gain(sse, rows, np.array([0, 0]), 1)
    np.testing.assert_allclose(gain, [0.005, 0.045])
    assert standard_error[0] > gain[0] and standard_error[1] < gain[1]
    assert choose_penalties(sse, rows, alphas, 1.0).tolist() == [1, 0]
    assert choose_penalties(sse, rows, alphas, 0.0).tolist() == [0, 0]
    assert choose_penalties(sse, rows, (1.0, 10.0), 1.0).tolist() == [0, 0]  # no climatology


def test_pure_noise_falls_back_to_climatology_at_every_lead():
    """Targets unrelated to the regressors, a draw in which the lowest out-of-fold error picks
    a regression at two leads (margin 0): with the one-standard-error margin no lead keeps
    one, and `best_cv_mse` is climatology's."""
    from ames.evaluation.ridge import CLIMATOLOGY

    rng = np.random.default_rng(5)
    n_origins = 60
    x = rng.normal(size=(n_origins * 7, 5))
    y = rng.normal(size=(n_origins * 7, 12))
    y -= y.mean(axis=0)
    origins = np.arange(n_origins)
    folds = [
        Fold(train=np.setdiff1d(origins, block), val=block) for block in np.array_split(origins, 5)
    ]
    lowest = fit_ridge_selected(x, y, origins, origins, folds, WINDOW, skill_margin_se=0.0)
    assert np.isfinite(lowest.alpha).sum() == 2
    model = fit_ridge_selected(x, y, origins, origins, folds, WINDOW, skill_margin_se=1.0)
    assert (model.alpha == CLIMATOLOGY).all()
    np.testing.assert_array_equal(model.coef, 0.0)
    np.testing.assert_array_equal(model.best_cv_mse, model.cv_mse[-1])


def noise_run(seed: int, years: int = 14, pretest_years: int = 12):
    """A run-like record of independent gamma noise on a 6 × 6 grid (nothing to predict),
    standardised with the climatology of every pre-test month, as ``RunInputs`` holds it."""
    rng = np.random.default_rng(seed)
    n_time, shape = 12 * years, (6, 6)
    precip = rng.gamma(4.0, 25.0, size=(n_time, *shape)).astype(np.float32)
    months = np.arange(n_time) % 12
    test_start = 12 * pretest_years
    mean, std = calendar_climatology(precip, months, np.arange(n_time) < test_start, 1.0)
    stats = {
        "clim_mean": mean,
        "clim_std": std,
        "context_mean": np.zeros(5, np.float32),
        "context_std": np.ones(5, np.float32),
    }
    valid, context = np.ones(shape, dtype=bool), np.zeros((*shape, 5), np.float32)
    masks = SimpleNamespace(split={"test_start": test_start}, stats=stats, context=context)
    masks.valid = valid
    run = SimpleNamespace(data=SimpleNamespace(precip=precip, months=months), masks=masks)
    run.horizon = 3
    run.inputs = build_grid_inputs(precip, months, context, valid, stats)
    return run


def fit_noise(run, inputs_of_fold) -> RidgeBaseline:
    window = 12  # every lead's target month a year earlier is in the window
    origins = np.arange(window - 1, run.masks.split["test_start"] - run.horizon)
    folds = blocked_year_folds(origins, origins // 12, 4, window, run.horizon)
    return fit_ridge(
        run.inputs, run.masks.valid, origins, folds, window, run.horizon, fold_inputs=inputs_of_fold
    )


def noise_test_msess(run, model: RidgeBaseline) -> float:
    """MSESS of ``model`` over the run's test months (after ``test_start``)."""
    start, horizon = run.masks.split["test_start"], run.horizon
    origins = np.arange(start - 1, len(run.data.months) - horizon)
    stats = run.masks.stats
    forecast = ridge_forecast(
        model, run.inputs, run.masks.valid, stats["clim_mean"], stats["clim_std"], origins
    )
    observed = run.data.precip[origins[:, None] + np.arange(1, horizon + 1)]
    clim = stats["clim_mean"][target_months(run.inputs.months[origins], horizon)]
    return 1.0 - float(((forecast - observed) ** 2).sum() / ((clim - observed) ** 2).sum())


def test_folds_standardised_without_their_held_out_months_find_nothing_in_noise():
    """In-sample climatology makes the same calendar month of two pre-test years
    anti-correlated by about −1/(n−1); folds that share it confirm a regression on pure noise,
    which then loses on the test months. Standardised without their held-out months
    (``fold_inputs``), the folds keep climatology (or a penalty so large that only the
    intercept is left) at every lead, and the test MSESS stays within ±0.002 of 0."""
    in_sample_regressions, in_sample_msess = 0, []
    for seed in range(6):
        run = noise_run(seed)
        shared = fit_noise(run, lambda _, run=run: run.inputs)
        in_sample_regressions += bool((shared.alpha < 1e5).any())
        in_sample_msess.append(noise_test_msess(run, shared))
        own = fit_noise(run, lambda fold, run=run: fold_inputs(run, fold))
        assert (own.alpha >= 1e9).all(), (seed, own.alpha)
        assert np.abs(own.coef).max() < 1e-3
        assert abs(noise_test_msess(run, own)) <= 0.002, seed
    # the flaw the fold-wise climatology removes
    assert in_sample_regressions >= 4 and np.mean(in_sample_msess) < -0.004


def test_fold_inputs_ignore_the_held_out_targets_and_the_test_months():
    run = noise_run(0)
    window = 12
    origins = np.arange(window - 1, run.masks.split["test_start"] - run.horizon)
    fold = blocked_year_folds(origins, origins // 12, 4, window, run.horizon)[1]
    first, last = int(fold.val.min()) + 1, int(fold.val.max()) + run.horizon
    before = fold_inputs(run, fold)
    changed = copy.deepcopy(run)
    changed.data.precip[first : last + 1] *= 3.0  # the held-out block's targets
    changed.data.precip[run.masks.split["test_start"] :] *= 5.0  # and the test months
    after = fold_inputs(changed, fold)
    outside = np.ones(len(run.data.months), dtype=bool)
    outside[first : last + 1] = False
    outside[run.masks.split["test_start"] :] = False
    np.testing.assert_array_equal(before.anomaly[outside], after.anomaly[outside])
    assert not np.allclose(before.anomaly[first : last + 1], after.anomaly[first : last + 1])


def test_a_penalty_label_is_one_significant_digit_or_climatology() -> None:
    assert [penalty_label(a) for a in (1.0, 3162.2776601683795, CLIMATOLOGY)] == [
        "1e+00",
        "3e+03",
        "climatology",
    ]
