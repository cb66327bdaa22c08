"""The ``ridge`` baseline: the linear model a user could fit in an afternoon on AMES's inputs.

One ridge regression per lead ``h``, pooled over the valid cells:

    z[t+h, cell] ≈ b_h + w_h · [z[t−W+1 … t, cell], z̄[t−W+1 … t], sin, cos of month(t)]

``z`` is the standardised anomaly the experts read (``GridInputs.anomaly``: training-month
climatology and spread of that cell and calendar month), ``z̄`` its domain mean
(``GridInputs.domain_anomaly``), ``W`` the input window. Each lead's penalty is the one of
``RIDGE_ALPHAS`` with the lowest blocked cross-validated MSE over the pre-test origins
(``ames.selection``); the regression is then fitted on the training origins only. Each fold
scores its held-out block as the test split is scored: the block's months are new to the
climatology and spread that standardise the fold (``fold_inputs``), so no fold learns the
anti-correlation that an in-sample climatology puts between the same calendar month of two
years (docs/evaluation.md). The last
candidate, ``CLIMATOLOGY`` (an infinite penalty), is the climatological forecast itself
(``ẑ = 0``, no intercept). A lead falls back to it exactly unless the best penalty beats it
out of fold by at least ``skill_margin_se`` standard errors of the fold-to-fold differences
(``choose_penalties``): the best of twenty candidates always looks a little better than
climatology on the folds that picked it, so skill must be confirmed, not just found. The
forecast in mm/month is ``max(0, clim_mean + ẑ · clim_std)`` of the target's calendar month.

Cross-validating 19 penalties × 5 folds × 12 leads over a million rows would take minutes
with one solver call each, so the fits are solved from per-origin moment matrices
``[1, x, y]ᵀ[1, x, y]``: a fold's training and validation sums are sums of those, and the
solution (unpenalised intercept, as scikit-learn's ``Ridge``) and its squared error follow
from them exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ames.climatology import MIN_STD_MM, calendar_climatology, target_months
from ames.config import SelectionConfig
from ames.run import RunInputs
from ames.selection import Fold, pooled_fold_gain, pretest_folds, target_span
from ames.windows import GridInputs, build_grid_inputs

# What a fold is standardised with: the run's inputs as that fold's training data sees them.
FoldInputs = Callable[[Fold], GridInputs]
# A fold's per-origin moments ``[S, D, D]`` and their origins ``[S]``.
FoldMoments = Callable[[Fold], tuple[np.ndarray, np.ndarray]]

# A few hundred origins × thousands of strongly correlated cells: the useful penalties are
# large; 1e0 … 1e9 spans "no shrinkage" to "predict the intercept", and CLIMATOLOGY is the
# forecast without any regressor (reported as null in the JSON reports).
CLIMATOLOGY = float("inf")
RIDGE_ALPHAS = (*(float(a) for a in np.logspace(0, 9, 19)), CLIMATOLOGY)


# Rows (origin × valid cell) built at once: the design rows of a few hundred origins of a
# large domain take GBs, their per-origin moments a few MB, so moments accumulate over
# chunks of origins and peak memory stays near MAX_ROWS × D float64 whatever the domain.
MAX_ROWS = 1 << 19


def origin_chunks(origins: np.ndarray, n_cells: int) -> Iterator[np.ndarray]:
    """``origins`` in consecutive chunks of at most ``MAX_ROWS`` rows (at least one origin)."""
    origins = np.asarray(origins, dtype=np.int64)
    size = max(1, MAX_ROWS // max(n_cells, 1))
    for start in range(0, len(origins), size):
        yield origins[start : start + size]


def penalty_label(alpha: float) -> str:
    """A penalty as logs and reports name it: ``1e+03``, or ``climatology`` for CLIMATOLOGY."""
    return "climatology" if np.isinf(alpha) else f"{alpha:.0e}"


@dataclass(frozen=True)
class RidgeBaseline:
    coef: np.ndarray  # [H, F]
    intercept: np.ndarray  # [H]
    alpha: np.ndarray  # [H] penalty chosen by cross-validation
    cv_mse: np.ndarray  # [A, H] cross-validated MSE of every penalty (target units)
    alphas: tuple[float, ...]
    window: int
    loading: np.ndarray | None = None  # [lat, lon] of the linear path's loading regressor
    # [H] out-of-fold MSE gain of the lowest-error penalty over climatology, and its standard
    # error across folds (None without the CLIMATOLOGY candidate): the evidence for each lead
    gain: np.ndarray | None = None
    gain_se: np.ndarray | None = None

    @classmethod
    def from_selection(
        cls,
        coef: np.ndarray,
        intercept: np.ndarray,
        chosen: PenaltySelection,
        alphas: tuple[float, ...],
        window: int,
        loading: np.ndarray | None = None,
    ) -> RidgeBaseline:
        return cls(
            coef,
            intercept,
            chosen.alpha,
            chosen.cv_mse,
            tuple(alphas),
            window,
            loading,
            chosen.gain,
            chosen.gain_se,
        )

    def evidence(self) -> dict[str, list[float] | None]:
        """The gains and standard errors for a JSON report."""
        return {
            "cv_gain_over_climatology_by_lead": None if self.gain is None else self.gain.tolist(),
            "cv_gain_se_by_lead": None if self.gain_se is None else self.gain_se.tolist(),
        }

    @property
    def best_cv_mse(self) -> np.ndarray:
        """``[H]`` cross-validated MSE at the chosen penalty."""
        chosen = np.asarray([self.alphas.index(a) for a in self.alpha])
        return self.cv_mse[chosen, np.arange(len(chosen))]


def window_steps(origins: np.ndarray, window: int) -> np.ndarray:
    """``[S, W]`` month indices of each origin's input window, oldest first."""
    return np.asarray(origins, dtype=np.int64)[:, None] - np.arange(window - 1, -1, -1)[None]


def selection_origins(fit_origins: np.ndarray, folds: list[Fold]) -> np.ndarray:
    """Every origin a fit or one of its folds reads, sorted."""
    return np.unique(np.concatenate([fit_origins, *(o for f in folds for o in (f.train, f.val))]))


def ridge_features(inputs: GridInputs, valid: np.ndarray, origins: np.ndarray, window: int):
    """``[S·N, 2W + 2]`` rows (origin-major, valid cells) of the regressors above."""
    origins = np.asarray(origins, dtype=np.int64)
    if origins.size and origins.min() < window - 1:
        raise ValueError(f"origin {origins.min()} has fewer than {window} months of history")
    steps = window_steps(origins, window)
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


def origin_moments(features: np.ndarray, targets: np.ndarray, n_origins: int) -> np.ndarray:
    """``[S, D, D]`` with ``D = 1 + F + H``: ``[1, x, y]ᵀ[1, x, y]`` over each origin's rows
    (rows origin-major, as ``ridge_features`` and ``ridge_targets`` give them)."""
    rows = np.concatenate([np.ones((len(features), 1)), features, targets], axis=1)
    rows = rows.reshape(n_origins, -1, rows.shape[1])
    return np.matmul(rows.transpose(0, 2, 1), rows)


def solve_ridge(
    moments: np.ndarray, alpha: float, n_features: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(coef [H, F], intercept [H])`` of the ridge regression summed in ``moments``;
    ``alpha = CLIMATOLOGY`` gives zeros (the climatological forecast)."""
    f = n_features
    if np.isinf(alpha):
        horizon = moments.shape[0] - 1 - f
        return np.zeros((horizon, f)), np.zeros(horizon)
    n, sx, sy = moments[0, 0], moments[0, 1 : 1 + f], moments[0, 1 + f :]
    xx = moments[1 : 1 + f, 1 : 1 + f] - np.outer(sx, sx) / n
    xy = moments[1 : 1 + f, 1 + f :] - np.outer(sx, sy) / n
    coef = np.linalg.solve(xx + alpha * np.eye(f), xy)  # [F, H]
    return coef.T, (sy - sx @ coef) / n


def mean_squared_error(moments: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """``[H]`` MSE of ``y ≈ intercept + x · coefᵀ`` over the rows summed in ``moments``."""
    horizon, f = coef.shape
    residual = np.zeros((1 + f + horizon, horizon))  # y − b − x·w = [1, x, y] · residual
    residual[0], residual[1 : 1 + f] = -intercept, -coef.T
    residual[1 + f + np.arange(horizon), np.arange(horizon)] = 1.0
    return np.einsum("dh,de,eh->h", residual, moments, residual) / moments[0, 0]


def fold_squared_errors(
    moments: np.ndarray,
    origins: np.ndarray,
    folds: list[Fold],
    n_features: int,
    alphas: tuple[float, ...] = RIDGE_ALPHAS,
) -> tuple[np.ndarray, np.ndarray]:
    """``(sse [K, A, H], rows [K])``: each fold's summed squared error on its validation rows
    for each penalty, and the number of those rows; ``moments[i]`` belongs to ``origins[i]``."""
    position = {int(o): i for i, o in enumerate(origins)}
    sse, rows = [], []
    for fold in folds:
        train = moments[[position[int(o)] for o in fold.train]].sum(axis=0)
        val = moments[[position[int(o)] for o in fold.val]].sum(axis=0)
        fits = [solve_ridge(train, alpha, n_features) for alpha in alphas]
        sse.append(np.stack([mean_squared_error(val, *fit) for fit in fits]) * val[0, 0])
        rows.append(val[0, 0])
    return np.stack(sse), np.asarray(rows, dtype=np.float64)


def cross_validated_mse(
    moments: np.ndarray,
    origins: np.ndarray,
    folds: list[Fold],
    n_features: int,
    alphas: tuple[float, ...] = RIDGE_ALPHAS,
) -> np.ndarray:
    """``[A, H]`` MSE over every fold's validation rows, pooled, for each penalty;
    ``moments[i]`` belongs to ``origins[i]``."""
    return pooled_mse(*fold_squared_errors(moments, origins, folds, n_features, alphas))


def pooled_mse(fold_sse: np.ndarray, fold_rows: np.ndarray) -> np.ndarray:
    """``[A, H]`` MSE over every fold's validation rows together."""
    return fold_sse.sum(axis=0) / fold_rows.sum()


def confirmed_gain(fold_sse: np.ndarray, fold_rows: np.ndarray, best: np.ndarray, reference: int):
    """``(gain [H], standard_error [H])`` of the pooled out-of-fold MSE reduction of candidate
    ``best[h]`` over candidate ``reference``, and its standard error from the spread of the
    per-fold reductions (folds weighted by their rows, as the pooled MSE weights them)."""
    leads = np.arange(fold_sse.shape[2])
    per_fold = (fold_sse[:, reference, :] - fold_sse[:, best, leads]) / fold_rows[:, None]
    return pooled_fold_gain(per_fold, fold_rows)


def gain_over_climatology(
    fold_sse: np.ndarray, fold_rows: np.ndarray, alphas: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray] | None:
    """``confirmed_gain`` of each lead's lowest-error penalty over ``CLIMATOLOGY``; None when
    climatology is not a candidate."""
    if CLIMATOLOGY not in alphas:
        return None
    best = pooled_mse(fold_sse, fold_rows).argmin(axis=0)
    return confirmed_gain(fold_sse, fold_rows, best, alphas.index(CLIMATOLOGY))


def choose_penalties(
    fold_sse: np.ndarray,
    fold_rows: np.ndarray,
    alphas: tuple[float, ...],
    skill_margin_se: float,
) -> np.ndarray:
    """``[H]`` index into ``alphas`` per lead: the lowest pooled out-of-fold MSE; but where
    ``CLIMATOLOGY`` is a candidate and the winner's gain over it is below
    ``skill_margin_se`` standard errors (``gain_over_climatology``), climatology."""
    best = pooled_mse(fold_sse, fold_rows).argmin(axis=0)
    evidence = gain_over_climatology(fold_sse, fold_rows, alphas)
    if evidence is None or skill_margin_se <= 0:
        return best
    gain, standard_error = evidence
    return np.where(gain > skill_margin_se * standard_error, best, alphas.index(CLIMATOLOGY))


@dataclass(frozen=True)
class PenaltySelection:
    """What the folds decided, in ``RidgeBaseline``'s terms."""

    alpha: np.ndarray  # [H] chosen penalty per lead
    cv_mse: np.ndarray  # [A, H] pooled out-of-fold MSE of every candidate
    gain: np.ndarray | None  # [H] see RidgeBaseline
    gain_se: np.ndarray | None


def select_penalties(
    fold_sse: np.ndarray,
    fold_rows: np.ndarray,
    alphas: tuple[float, ...],
    skill_margin_se: float,
) -> PenaltySelection:
    """``choose_penalties`` with the pooled errors and the evidence it rests on."""
    alphas = tuple(alphas)
    chosen = choose_penalties(fold_sse, fold_rows, alphas, skill_margin_se)
    gain, gain_se = gain_over_climatology(fold_sse, fold_rows, alphas) or (None, None)
    return PenaltySelection(
        np.asarray(alphas)[chosen], pooled_mse(fold_sse, fold_rows), gain, gain_se
    )


def fit_ridge_selected(
    features: np.ndarray,
    targets: np.ndarray,
    origins: np.ndarray,
    fit_origins: np.ndarray,
    folds: list[Fold],
    window: int,
    alphas: tuple[float, ...] = RIDGE_ALPHAS,
    skill_margin_se: float = 1.0,
) -> RidgeBaseline:
    """Ridge of every target column on ``features`` (rows of ``origins``, origin-major):
    each column's penalty chosen by ``folds`` (``choose_penalties``), then fitted on
    ``fit_origins``."""
    origins = np.asarray(origins, dtype=np.int64)
    moments = origin_moments(features, targets, len(origins))
    n_features = features.shape[1]
    fold_sse, fold_rows = fold_squared_errors(moments, origins, folds, n_features, alphas)
    chosen = select_penalties(fold_sse, fold_rows, alphas, skill_margin_se)
    fit = moments[np.isin(origins, fit_origins)].sum(axis=0)
    coef, intercept = solve_at_penalties(fit, chosen.alpha, n_features)
    return RidgeBaseline.from_selection(coef, intercept, chosen, alphas, window)


def solve_at_penalties(
    moments: np.ndarray, alpha: np.ndarray, n_features: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(coef [H, F], intercept [H])`` with target column ``h`` fitted at ``alpha[h]``."""
    coef = np.zeros((len(alpha), n_features))
    intercept = np.zeros(len(alpha))
    for a in np.unique(alpha):
        leads = alpha == a
        c, b = solve_ridge(moments, float(a), n_features)
        coef[leads], intercept[leads] = c[leads], b[leads]
    return coef, intercept


def fold_origins(fold: Fold) -> np.ndarray:
    """The origins one fold reads (fitting and held out), sorted."""
    return np.unique(np.concatenate([fold.train, fold.val]))


def select_on_folds(
    fold_moments: FoldMoments,
    folds: list[Fold],
    n_features: int,
    alphas: tuple[float, ...],
    skill_margin_se: float,
) -> PenaltySelection:
    """``select_penalties`` from each fold's own moments (``fold_moments(fold)``)."""
    fold_sse, fold_rows = [], []
    for fold in folds:
        moments, origins = fold_moments(fold)
        sse, rows = fold_squared_errors(moments, origins, [fold], n_features, alphas)
        fold_sse.append(sse[0])
        fold_rows.append(rows[0])
    return select_penalties(np.stack(fold_sse), np.asarray(fold_rows), alphas, skill_margin_se)


def fit_ridge(
    inputs: GridInputs,
    valid: np.ndarray,
    fit_origins: np.ndarray,
    folds: list[Fold],
    window: int,
    horizon: int,
    *,
    fold_inputs: FoldInputs,
    alphas: tuple[float, ...] = RIDGE_ALPHAS,
    skill_margin_se: float = 1.0,
) -> RidgeBaseline:
    """The ``ridge`` baseline: penalties by ``folds``, each fold's rows read from
    ``fold_inputs(fold)``; then fitted on ``fit_origins`` of ``inputs``."""

    def moments(grid: GridInputs, origins: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [
                origin_moments(
                    ridge_features(grid, valid, chunk, window),
                    ridge_targets(grid, valid, chunk, horizon),
                    len(chunk),
                )
                for chunk in origin_chunks(origins, int(valid.sum()))
            ]
        )

    def moments_of_fold(fold: Fold) -> tuple[np.ndarray, np.ndarray]:
        origins = fold_origins(fold)
        return moments(fold_inputs(fold), origins), origins

    alphas = tuple(alphas)
    n_features = 2 * window + 2
    chosen = select_on_folds(moments_of_fold, folds, n_features, alphas, skill_margin_se)
    fit = moments(inputs, np.unique(np.asarray(fit_origins, dtype=np.int64))).sum(axis=0)
    coef, intercept = solve_at_penalties(fit, chosen.alpha, n_features)
    return RidgeBaseline.from_selection(coef, intercept, chosen, alphas, window)


def run_folds(run: RunInputs, n_folds: int) -> list[Fold]:
    """The selection protocol's folds over the run's pre-test origins."""
    return pretest_folds(run.masks.split, run.data.times, n_folds, run.window, run.horizon)


def fold_inputs(run: RunInputs, fold: Fold) -> GridInputs:
    """The run's inputs standardised with the climatology and spread of the pre-test months
    outside ``fold``'s held-out targets: the held-out block is new to them, as the test
    months are new to the training climatology. (The last fold, the validation period,
    reads the training months: the run's own climatology.)"""
    first, last = target_span(fold.val, run.horizon)
    use = np.arange(len(run.data.months)) < int(run.masks.split["test_start"])
    use[first : last + 1] = False
    mean, std = calendar_climatology(run.data.precip, run.data.months, use, min_std=MIN_STD_MM)
    stats = {**run.masks.stats, "clim_mean": mean, "clim_std": std}
    return build_grid_inputs(
        run.data.precip, run.data.months, run.masks.context, run.masks.valid, stats
    )


def fit_run_ridge(run: RunInputs, selection: SelectionConfig) -> tuple[RidgeBaseline, list[Fold]]:
    """The ``ridge`` regression of a run, and the folds that chose its penalties: every valid
    cell, standardised anomalies, fitted on the training origins, each lead's penalty by the
    blocked cross-validation of ``ames.selection`` over the pre-test origins, each fold
    standardised by ``fold_inputs``. The ``ridge`` baseline and the experts'
    ``linear_path: ridge`` both use it."""
    folds = run_folds(run, selection.folds)
    train = np.asarray(run.masks.split["train"])
    model = fit_ridge(
        run.inputs,
        run.masks.valid,
        train,
        folds,
        run.window,
        run.horizon,
        fold_inputs=lambda fold: fold_inputs(run, fold),
        skill_margin_se=selection.skill_margin_se,
    )
    return model, folds


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
    out = np.full((len(origins), horizon, *valid.shape), np.nan, dtype=np.float32)
    start = 0
    for chunk in origin_chunks(origins, int(valid.sum())):
        z = ridge_features(inputs, valid, chunk, model.window) @ model.coef.T + model.intercept
        z = z.reshape(len(chunk), -1, horizon).transpose(0, 2, 1)  # [s, H, N]
        month = target_months(inputs.months[chunk], horizon)
        mm = clim_mean[month][..., valid] + z * clim_std[month][..., valid]
        out[start : start + len(chunk)][..., valid] = np.maximum(mm, 0.0)
        start += len(chunk)
    return out
