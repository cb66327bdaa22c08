"""The ``ridge`` baseline: the linear model a user could fit in an afternoon on AMES's inputs.

One ridge regression per lead ``h``, pooled over the valid cells:

    z[t+h, cell] ≈ b_h + w_h · [z[t−W+1 … t, cell], z̄[t−W+1 … t], sin, cos of month(t)]

``z`` is the standardised anomaly the experts read (``GridInputs.anomaly``: training-month
climatology and spread of that cell and calendar month), ``z̄`` its domain mean
(``GridInputs.domain_anomaly``), ``W`` the input window. The regressions are fitted on the
training origins only (scikit-learn ``Ridge``, all leads at once); each lead's penalty is the
one of ``RIDGE_ALPHAS`` with the lowest MSE on the validation origins. The forecast in
mm/month is ``max(0, clim_mean + ẑ · clim_std)`` of the target's calendar month.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import Ridge

from ames.climatology import target_months
from ames.windows import GridInputs

# A few hundred origins × thousands of strongly correlated cells: the useful penalties are
# large; 1e0 … 1e9 spans "no shrinkage" to "predict the intercept".
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(0, 9, 10))


@dataclass(frozen=True)
class RidgeBaseline:
    coef: np.ndarray  # [H, F]
    intercept: np.ndarray  # [H]
    alpha: np.ndarray  # [H] penalty chosen on validation
    val_mse: np.ndarray  # [H] validation MSE (standardised anomaly units) at that penalty
    window: int


def ridge_features(inputs: GridInputs, valid: np.ndarray, origins: np.ndarray, window: int):
    """``[S·N, 2W + 2]`` rows (origin-major, valid cells) of the regressors above."""
    origins = np.asarray(origins, dtype=np.int64)
    if origins.size and origins.min() < window - 1:
        raise ValueError(f"origin {origins.min()} has fewer than {window} months of history")
    steps = origins[:, None] - np.arange(window - 1, -1, -1)[None, :]  # [S, W]
    cell = inputs.anomaly[:, valid][steps].transpose(0, 2, 1)  # [S, N, W]
    n_cells = cell.shape[1]
    domain = np.broadcast_to(inputs.domain_anomaly[steps][:, None, :], cell.shape)
    angle = 2 * np.pi * inputs.months[origins] / 12.0
    season = np.broadcast_to(
        np.stack([np.sin(angle), np.cos(angle)], axis=-1)[:, None, :], (len(origins), n_cells, 2)
    )
    features = np.concatenate([cell, domain, season], axis=-1, dtype=np.float64)
    return features.reshape(-1, features.shape[-1])


def ridge_targets(inputs: GridInputs, valid: np.ndarray, origins: np.ndarray, horizon: int):
    """``[S·N, H]`` standardised anomalies of the target months, rows as ``ridge_features``."""
    steps = np.asarray(origins, dtype=np.int64)[:, None] + np.arange(1, horizon + 1)[None, :]
    targets = inputs.anomaly[:, valid][steps]  # [S, H, N]
    return targets.transpose(0, 2, 1).reshape(-1, horizon).astype(np.float64)


def fit_ridge(
    inputs: GridInputs,
    valid: np.ndarray,
    train_origins: np.ndarray,
    val_origins: np.ndarray,
    window: int,
    horizon: int,
    alphas: tuple[float, ...] = RIDGE_ALPHAS,
) -> RidgeBaseline:
    """Fit on ``train_origins``, pick each lead's penalty on ``val_origins``."""
    return fit_ridge_arrays(
        ridge_features(inputs, valid, train_origins, window),
        ridge_targets(inputs, valid, train_origins, horizon),
        ridge_features(inputs, valid, val_origins, window),
        ridge_targets(inputs, valid, val_origins, horizon),
        window,
        alphas,
    )


def fit_ridge_arrays(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    window: int,
    alphas: tuple[float, ...] = RIDGE_ALPHAS,
) -> RidgeBaseline:
    """Ridge of every target column of ``y_train`` on ``x_train``; each column's penalty the
    one of ``alphas`` with the lowest MSE on (``x_val``, ``y_val``)."""
    horizon = y_train.shape[1]
    best_mse = np.full(horizon, np.inf)
    coef = np.zeros((horizon, x_train.shape[1]))
    intercept, alpha = np.zeros(horizon), np.zeros(horizon)
    for a in alphas:
        model = Ridge(alpha=a, solver="cholesky").fit(x_train, y_train)
        mse = ((model.predict(x_val) - y_val) ** 2).mean(axis=0)
        better = mse < best_mse
        best_mse[better], alpha[better] = mse[better], a
        coef[better], intercept[better] = model.coef_[better], model.intercept_[better]
    return RidgeBaseline(coef, intercept, alpha, best_mse, window)


def ridge_forecast(
    model: RidgeBaseline,
    inputs: GridInputs,
    valid: np.ndarray,
    clim_mean: np.ndarray,
    clim_std: np.ndarray,
    origins: np.ndarray,
) -> np.ndarray:
    """``[S, H, lat, lon]`` mm/month (NaN outside ``valid``) for ``origins``."""
    origins = np.asarray(origins, dtype=np.int64)
    horizon = len(model.intercept)
    z = ridge_features(inputs, valid, origins, model.window) @ model.coef.T + model.intercept
    z = z.reshape(len(origins), -1, horizon).transpose(0, 2, 1)  # [S, H, N]
    month = target_months(inputs.months[origins], horizon)
    mm = clim_mean[month][..., valid] + z * clim_std[month][..., valid]
    out = np.full((len(origins), horizon, *valid.shape), np.nan, dtype=np.float32)
    out[..., valid] = np.maximum(mm, 0.0)
    return out
