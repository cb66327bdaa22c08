"""Fit the experts' ``linear_path: ridge`` with its grid-aware regressors.

The regression is the ``ridge`` baseline's (``ames.evaluation.ridge``: one ridge per lead,
pooled over the valid cells, standardised anomalies, penalty by the blocked
cross-validation of ``ames.selection``, fitted on the training origins) with the regressors
of :class:`ames.models.linear_path.SpatialRegressors` appended. The loading regressor holds
a statistic of the data (each cell's slope on the domain mean), so it is estimated inside
each fold from the months that fold's training windows touch, and for the final fit from the
training windows' months: no held-out target month shapes a regressor that is scored on it.
Each fold reads the run's anomalies standardised without its held-out months
(``ames.evaluation.ridge.fold_inputs``), as the ``ridge`` baseline's folds do.
"""

from __future__ import annotations

import numpy as np
import torch

from ames.config import AmesConfig
from ames.evaluation.ridge import (
    RIDGE_ALPHAS,
    FoldInputs,
    RidgeBaseline,
    fit_run_ridge,
    fold_inputs,
    fold_origins,
    origin_chunks,
    ridge_features,
    ridge_targets,
    run_folds,
    select_on_folds,
    solve_at_penalties,
    window_steps,
)
from ames.models.linear_path import SpatialRegressors, spatial_regressors
from ames.run import RunInputs
from ames.selection import Fold
from ames.windows import GridInputs


def spatial_rows(
    regressors: SpatialRegressors,
    inputs: GridInputs,
    valid: np.ndarray,
    origins: np.ndarray,
    window: int,
    chunk: int = 64,
) -> np.ndarray:
    """``[S·N, F]`` smoothed-anomaly and interaction regressors (all but the loading), rows
    as ``ridge_features``, computed by ``regressors`` as the expert computes them."""
    origins = np.asarray(origins, dtype=np.int64)
    steps = window_steps(origins, window)
    parts = []
    with torch.no_grad():
        for start in range(0, len(steps), chunk):
            anomaly = torch.from_numpy(inputs.anomaly[steps[start : start + chunk]])
            fields = [regressors.smoothed(anomaly)]
            if regressors.interaction_lags:
                fields.append(interactions_of(regressors, inputs, anomaly, steps, origins, start))
            grid = torch.cat(fields, dim=1).numpy()[..., valid]  # [s, F, N]
            s, f, n = grid.shape
            parts.append(grid.transpose(0, 2, 1).reshape(s * n, f))
    return np.concatenate(parts).astype(np.float64)


def interactions_of(
    regressors: SpatialRegressors,
    inputs: GridInputs,
    anomaly: torch.Tensor,
    steps: np.ndarray,
    origins: np.ndarray,
    start: int,
) -> torch.Tensor:
    """The interaction regressors of the chunk of ``origins`` from ``start`` whose
    anomalies are ``anomaly`` ``[s, W, lat, lon]``, with the channels ``window_inputs``
    gives the expert (domain mean, origin month's sin/cos, z-scored elevation)."""
    s, _, n_lat, n_lon = anomaly.shape
    chunk_steps, months = steps[start : start + s], inputs.months[origins[start : start + s]]
    domain = torch.from_numpy(inputs.domain_anomaly[chunk_steps].astype(np.float32))
    angle = torch.from_numpy(2 * np.pi * months / 12.0).float()
    season = torch.stack([angle.sin(), angle.cos()], dim=1)[..., None, None]
    elevation = torch.from_numpy(inputs.context[0].astype(np.float32))
    return regressors.interactions(
        anomaly,
        domain[..., None, None].expand(-1, -1, n_lat, n_lon),
        season.expand(-1, -1, n_lat, n_lon),
        elevation.expand(s, -1, -1),
    )


def months_touched(origins: np.ndarray, window: int, horizon: int, n_months: int) -> np.ndarray:
    """``[T]`` bool: the months of the origins' input windows and targets."""
    touched = np.zeros(n_months, dtype=bool)
    for origin in np.asarray(origins, dtype=np.int64):
        touched[max(origin - window + 1, 0) : origin + horizon + 1] = True
    return touched


def cell_loading(inputs: GridInputs, valid: np.ndarray, months: np.ndarray) -> np.ndarray:
    """``[lat, lon]``: each valid cell's least-squares slope of its anomaly on the domain-mean
    anomaly over ``months`` (bool ``[T]``), minus the mean slope; 0 outside ``valid``."""
    domain = inputs.domain_anomaly[months].astype(np.float64)
    domain = domain - domain.mean()
    cells = inputs.anomaly[months][:, valid].astype(np.float64)
    slope = domain @ cells / (domain @ domain)
    out = np.zeros(valid.shape)
    out[valid] = slope - slope.mean()
    return out


def add_loading_moments(
    base: np.ndarray, rows: np.ndarray, domain: np.ndarray, loading: np.ndarray, horizon: int
) -> np.ndarray:
    """Per-origin moments of ``[1, x, l, y]`` from those of ``[1, x, y]`` (``base``, ``rows``
    ``[S, N, D]``), where ``l = loading[cell] · domain[origin]`` (``[S, W]``): the loading
    enters only through its weighted cell sums, so no ``[S·N, W]`` block is built per fold."""
    n_x = base.shape[1] - horizon  # the ones column and x
    weighted = np.einsum("snd,n->sd", rows, loading)  # [S, D]
    cross = weighted[:, :, None] * domain[:, None, :]  # [S, D, W]: [1, x, y]ᵀ l
    square = (loading @ loading) * domain[:, :, None] * domain[:, None, :]  # [S, W, W]
    top = np.concatenate([base[:, :n_x, :n_x], cross[:, :n_x], base[:, :n_x, n_x:]], axis=2)
    middle = np.concatenate(
        [cross[:, :n_x].transpose(0, 2, 1), square, cross[:, n_x:].transpose(0, 2, 1)], axis=2
    )
    bottom = np.concatenate([base[:, n_x:, :n_x], cross[:, n_x:], base[:, n_x:, n_x:]], axis=2)
    return np.concatenate([top, middle, bottom], axis=1)


def design_rows(
    grid: GridInputs,
    valid: np.ndarray,
    origins: np.ndarray,
    window: int,
    horizon: int,
    regressors: SpatialRegressors | None,
) -> np.ndarray:
    """``[S, N, 1 + F + H]``: ``[1, ridge_features, spatial_rows, y]`` of each
    origin's valid cells (no loading regressor: it enters through ``add_loading_moments``)."""
    plain = ridge_features(grid, valid, origins, window)
    parts = [np.ones((len(plain), 1)), plain]
    if regressors is not None:
        parts.append(spatial_rows(regressors, grid, valid, origins, window))
    parts.append(ridge_targets(grid, valid, origins, horizon))
    rows = np.concatenate(parts, axis=1)
    return rows.reshape(len(origins), -1, rows.shape[1])


def chunked_moments(
    grid: GridInputs,
    valid: np.ndarray,
    origins: np.ndarray,
    window: int,
    horizon: int,
    regressors: SpatialRegressors | None,
    loading: np.ndarray | None = None,
) -> np.ndarray:
    """Per-origin moments ``[S, D, D]`` of ``design_rows`` (with ``loading`` ``[lat, lon]``:
    of the rows with the loading regressor too), built over chunks of origins
    (``origin_chunks``) so that no more than a chunk's rows are ever held."""
    parts = []
    for chunk in origin_chunks(origins, int(valid.sum())):
        rows = design_rows(grid, valid, chunk, window, horizon, regressors)
        moments = np.matmul(rows.transpose(0, 2, 1), rows)
        if loading is not None:
            domain = grid.domain_anomaly[window_steps(chunk, window)].astype(np.float64)
            moments = add_loading_moments(moments, rows, domain, loading[valid], horizon)
        parts.append(moments)
    return np.concatenate(parts)


def spatial_moments(
    grid: GridInputs,
    valid: np.ndarray,
    origins: np.ndarray,
    window: int,
    horizon: int,
    regressors: SpatialRegressors,
    loading_origins: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-origin moments ``[S, D, D]`` of ``[1, ridge_features, regressors' features, y]``
    over ``origins`` of ``grid``, and with the loading regressor its ``[lat, lon]`` map,
    estimated from the months the windows of ``loading_origins`` touch (else None)."""
    loading = None
    if regressors.use_loading:
        touched = months_touched(loading_origins, window, horizon, len(grid.domain_anomaly))
        loading = cell_loading(grid, valid, touched)
    moments = chunked_moments(grid, valid, origins, window, horizon, regressors, loading)
    return moments, loading


def fit_spatial_ridge(
    inputs: GridInputs,
    valid: np.ndarray,
    fit_origins: np.ndarray,
    folds: list[Fold],
    window: int,
    horizon: int,
    regressors: SpatialRegressors,
    *,
    fold_inputs: FoldInputs,
    alphas: tuple[float, ...] = RIDGE_ALPHAS,
    skill_margin_se: float = 1.0,
) -> RidgeBaseline:
    """The ridge regression of the linear path: ``ridge_features`` then ``regressors``'
    features; penalties by ``folds`` (``select_on_folds``, each fold's rows and loading read
    from ``fold_inputs(fold)``), then fitted on ``fit_origins`` of ``inputs``."""

    def moments_of_fold(fold: Fold) -> tuple[np.ndarray, np.ndarray]:
        origins = fold_origins(fold)
        grid = fold_inputs(fold)
        moments, _ = spatial_moments(grid, valid, origins, window, horizon, regressors, fold.train)
        return moments, origins

    alphas = tuple(alphas)
    fit_origins = np.unique(np.asarray(fit_origins, dtype=np.int64))
    fit, loading = spatial_moments(
        inputs, valid, fit_origins, window, horizon, regressors, fit_origins
    )
    n_features = fit.shape[-1] - 1 - horizon
    chosen = select_on_folds(moments_of_fold, folds, n_features, alphas, skill_margin_se)
    coef, intercept = solve_at_penalties(fit.sum(axis=0), chosen.alpha, n_features)
    return RidgeBaseline.from_selection(coef, intercept, chosen, alphas, window, loading)


def refit_at_penalties(
    inputs: GridInputs,
    valid: np.ndarray,
    fit_sets: list[np.ndarray],
    window: int,
    horizon: int,
    regressors: SpatialRegressors | None,
    alpha: np.ndarray,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """``(coef, intercept, loading)`` of the ``ridge`` regression (with ``regressors``: the
    linear path's) fitted on each origin set of ``fit_sets`` at the penalties ``alpha``
    ``[H]``. Without a loading regressor the per-origin moments are built once for all sets;
    a loading regressor is re-estimated from the months each set's windows touch, so each
    set then builds its own."""
    origins = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in fit_sets]))
    use_loading = regressors is not None and regressors.use_loading
    base = None
    if not use_loading:
        base = chunked_moments(inputs, valid, origins, window, horizon, regressors)
    refits = []
    for fit_origins in fit_sets:
        loading = None
        if use_loading:
            fit_origins = np.unique(np.asarray(fit_origins, dtype=np.int64))
            touched = months_touched(fit_origins, window, horizon, len(inputs.domain_anomaly))
            loading = cell_loading(inputs, valid, touched)
            moments = chunked_moments(
                inputs, valid, fit_origins, window, horizon, regressors, loading
            )
        else:
            moments = base[np.isin(origins, fit_origins)]
        n_features = moments.shape[-1] - 1 - horizon  # [1, x, y]: the ones column and y apart
        coef, intercept = solve_at_penalties(moments.sum(axis=0), np.asarray(alpha), n_features)
        refits.append((coef, intercept, loading))
    return refits


def fit_run_linear_path(cfg: AmesConfig, run: RunInputs) -> RidgeBaseline:
    """The experts' ``linear_path: ridge``: the run's ``ridge`` regression with the
    ``linear_features`` regressors added, by the same folds, penalties and training origins."""
    if not cfg.linear_features.adds_regressors:
        return fit_run_ridge(run, cfg.selection)[0]
    return fit_spatial_ridge(
        run.inputs,
        run.masks.valid,
        np.asarray(run.masks.split["train"]),
        run_folds(run, cfg.selection.folds),
        run.window,
        run.horizon,
        spatial_regressors(cfg, run),
        fold_inputs=lambda fold: fold_inputs(run, fold),
        skill_margin_se=cfg.selection.skill_margin_se,
    )
