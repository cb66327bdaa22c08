"""Scores of the predictive distribution (``ames.evaluation.predictive``) and its fits.

CRPS and RPS come from ``scoringrules``. ``fit_spread_scales`` (lowest CRPS) and
``fit_tercile_weight`` (lowest RPS) calibrate the distribution on the forecasts given
(out-of-fold ones for AMES, ``ames.workflows.fold_calibration``; validation ones for the
dressed baseline);
``distribution_sums`` scores a forecast per lead and valid cell (CRPS, RPS, coverage of the
central interval, plus the PIT and reliability counts of ``ames.evaluation.reliability``), and
``probabilistic_scores`` and ``skill_intervals`` reduce those sums overall, per zone and per
lead, with CRPSS and RPSS against the climatological ensemble. Arrays are ``[S, H, lat, lon]``
as in ``ames.evaluation.metrics``; scores are taken on the valid cells only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scoringrules as sr
from scipy.optimize import minimize_scalar

from ames.evaluation.predictive import (
    Predictive,
    dressed_members,
    ensemble_quantiles,
    observed_category,
)
from ames.evaluation.reliability import pit_values, reliability_counts
from ames.evaluation.uncertainty import interval
from ames.selection import pooled_fold_gain


def crps(obs: np.ndarray, members: np.ndarray) -> np.ndarray:
    """CRPS of an ensemble sorted along its last axis (scoringrules, quantile decomposition)."""
    return np.asarray(
        sr.crps_ensemble(obs, members, m_axis=-1, estimator="qd", sorted_ensemble=True)
    )


def rps(obs_category: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Ranked probability score of tercile probabilities ``[..., 3]`` (scoringrules)."""
    return np.asarray(sr.rps_score(obs_category, probabilities, k_axis=-1))


# --------------------------------------------------------------------------------------
# calibration (spread scale, tercile weight)


def origin_ratios(ratios: np.ndarray, month: int, valid: np.ndarray) -> np.ndarray:
    """One target month's ratio members ``[N, K]`` on the valid cells, from ``ratios``
    ``[12 (or more codes), K, lat, lon]``."""
    return np.moveaxis(ratios[month][:, valid], 0, -1)


def mean_crps(
    obs: np.ndarray,
    point: np.ndarray,
    ratios: np.ndarray,
    month: np.ndarray,
    valid: np.ndarray,
    scale: float,
) -> float:
    """Mean CRPS of ``point`` ``[S, N]`` (valid cells) dressed at ``scale`` with the ratio
    members of each origin's target month (``month`` ``[S]``, ``ratios`` ``[12, K, lat,
    lon]``)."""
    # one origin at a time: its members (~1 MB on Boyacá) stay in cache, and memory stays one
    # origin's members (plus each target month's ratios, gathered once) on any domain or
    # record; each value, and their mean, is computed as on the whole array
    scores = np.empty(obs.shape)
    by_month = {int(m): origin_ratios(ratios, m, valid) for m in np.unique(month)}
    for s in range(len(obs)):
        members = dressed_members(point[s], by_month[int(month[s])], scale)
        scores[s] = crps(obs[s], members)
    return float(scores.mean())


def mean_reference_crps(
    obs: np.ndarray, ratios: np.ndarray, clim_mean: np.ndarray, month: np.ndarray,
    valid: np.ndarray,
) -> float:  # fmt: skip
    """Mean CRPS of the climatological ensemble (``clim_mean`` ``[12, lat, lon]`` dressed at
    scale 1) for ``obs`` ``[S, N]`` with target months ``month`` ``[S]``, one origin at a
    time."""
    return mean_crps(obs, clim_mean[month][:, valid], ratios, month, valid, 1.0)


def fit_spread_scales(
    point: np.ndarray,
    obs: np.ndarray,
    target_month: np.ndarray,
    ratios: np.ndarray,
    valid: np.ndarray,
    bounds: tuple[float, float],
    floors: np.ndarray | None = None,
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Spread scale per lead minimising the mean CRPS over ``point``'s origins and valid cells,
    searched in ``bounds`` raised to ``floors[h]`` (``spread_floors``) when given.

    ``point``/``obs`` ``[S, H, lat, lon]`` (validation origins), ``target_month`` ``[S, H]``.
    Returns the scales ``[H]`` and, per lead, the CRPS at the fitted scale and at scale 1.
    """
    horizon = point.shape[1]
    scales, report = np.empty(horizon), []
    for h in range(horizon):
        m = target_month[:, h]
        o = obs[:, h][:, valid].astype(np.float64)
        p = point[:, h][:, valid]
        low = bounds[0] if floors is None else min(max(bounds[0], floors[h]), bounds[1])
        result = minimize_scalar(
            lambda s, o=o, p=p, m=m: mean_crps(o, p, ratios, m, valid, s),
            bounds=(low, bounds[1]),
            method="bounded",
            options={"xatol": 1e-3},
        )
        scales[h], crps_fit = float(result.x), float(result.fun)
        if floors is not None and low > bounds[0]:
            # the bounded search never returns its end point itself: test it
            at_floor = mean_crps(o, p, ratios, m, valid, low)
            if at_floor <= crps_fit:
                scales[h], crps_fit = low, at_floor
        report.append(
            {
                "lead": h + 1,
                "scale": scales[h],
                "floor": None if floors is None else float(floors[h]),
                "crps": crps_fit,
                "crps_scale_1": mean_crps(o, p, ratios, m, valid, 1.0),
            }
        )
    return scales, report


def cross_validated_climatology_weights(
    sums: np.ndarray, skill_margin_se: float, confirmed_by_linear_path: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, list[float]]]:
    """Per lead, the weight ``w`` of ``climatology + w (forecast − climatology)`` from
    out-of-fold forecasts, and a report.

    ``sums`` ``[K, 4, H]``: per fold and lead, over its held-out windows and valid cells, in
    transformed units where climatology is 0: ``Σ f·o``, ``Σ f²``, ``Σ o²`` and the count
    (``fold_lead_sums``). ``w`` is the pooled least-squares weight ``Σ f·o / Σ f²`` clipped
    to [0, 1], kept where skill is confirmed and 0 (climatology) elsewhere. A lead's skill
    is confirmed where the blended forecast's gain over climatology exceeds
    ``skill_margin_se`` standard errors of the per-fold gains (folds weighted by their
    counts, as ``ames.evaluation.ridge.confirmed_gain``), or where
    ``confirmed_by_linear_path`` (``[H]``) says the linear path's own selection confirmed it.
    That selection standardises each fold without its held-out months, as the test split is
    standardised; these out-of-fold forecasts share one climatology over every training
    month, which pulls a block's held-out skill down (docs/evaluation.md), so they alone
    would understate a long lead's skill.
    """
    fo, ff, oo, n = (np.asarray(sums, dtype=np.float64)[:, i] for i in range(4))
    w = np.clip(fo.sum(0) / np.where(ff.sum(0) > 0, ff.sum(0), np.inf), 0.0, 1.0)
    per_fold = (2 * w * fo - w**2 * ff) / n  # climatology's MSE − the blend's, per fold
    gain, se = pooled_fold_gain(per_fold, n)
    confirmed = gain > skill_margin_se * se if skill_margin_se > 0 else gain > 0
    if confirmed_by_linear_path is not None:
        confirmed = confirmed | np.asarray(confirmed_by_linear_path, dtype=bool)
    weights = np.where(confirmed, w, 0.0)
    blend_mse = (oo - 2 * weights * fo + weights**2 * ff).sum(0)
    report = {
        "weight_by_lead": weights.tolist(),
        "least_squares_weight_by_lead": w.tolist(),
        "cv_gain_over_climatology_by_lead": gain.tolist(),
        "cv_gain_se_by_lead": se.tolist(),
        "confirmed_by_linear_path_by_lead": None
        if confirmed_by_linear_path is None
        else np.asarray(confirmed_by_linear_path, dtype=bool).tolist(),
        "cv_mse_ratio_by_lead": (blend_mse / oo.sum(0)).tolist(),
        "skill_margin_se": skill_margin_se,
    }
    return weights, report


def shrink_to_climatology(point: np.ndarray, clim: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``clim + w_h (point − clim)`` for ``[S, H, ...]`` arrays and weights ``[H]``."""
    w = np.asarray(weights, dtype=np.float64).reshape(1, -1, *([1] * (point.ndim - 2)))
    return (clim + w * (point - clim)).astype(point.dtype)


def spread_floors(
    point: np.ndarray, obs: np.ndarray, clim: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Per lead, sqrt(MSE of ``point`` / MSE of climatology) on the valid cells, at most 1.

    Dressing scales the climatological spread around the point forecast; a calibrated
    distribution's variance is its expected squared error, so a scale below this ratio claims
    more certainty than the forecast's errors support.
    """
    floors = np.ones(point.shape[1])
    for h in range(point.shape[1]):
        o = obs[:, h][:, valid].astype(np.float64)
        model = np.nanmean((point[:, h][:, valid] - o) ** 2)
        reference = np.nanmean((clim[:, h][:, valid] - o) ** 2)
        if reference > 0:
            floors[h] = float(np.sqrt(min(model / reference, 1.0)))
    return floors


def fit_tercile_weight(probs: np.ndarray, reference: np.ndarray, category: np.ndarray) -> float:
    """The weight in [0, 1] of ``shrink_probabilities`` (``ames.evaluation.predictive``) with the
    lowest mean RPS.

    The RPS is a sum of squared differences of cumulative probabilities, and the shrunk
    cumulative probabilities are linear in the weight, so the minimum has a closed form:
    ``Σ (F − F_ref)(O − F_ref) / Σ (F − F_ref)²``, clipped to [0, 1]. ``probs`` and
    ``reference`` ``[..., 3]``; ``category`` 1 … 3 as ``observed_category`` gives it.
    """
    cum = np.cumsum(probs, axis=-1)[..., :2]
    cum_ref = np.cumsum(reference, axis=-1)[..., :2]
    observed = np.stack([category <= 1, category <= 2], axis=-1).astype(np.float64)
    gap = cum - cum_ref
    denominator = float((gap**2).sum())
    if denominator == 0.0:
        return 1.0
    return float(np.clip((gap * (observed - cum_ref)).sum() / denominator, 0.0, 1.0))


# --------------------------------------------------------------------------------------
# scores: per-(lead, cell) sums, reduced overall, per zone and per lead


@dataclass(frozen=True)
class DistributionSums:
    """Sums over origins of one probabilistic forecast, per lead and valid cell ``[H, N]``,
    plus its PIT histogram and above-normal reliability table per lead."""

    n_origins: int
    crps: np.ndarray
    rps: np.ndarray
    covered: np.ndarray  # observations inside the central interval of the quantile levels
    crps_by_origin: np.ndarray  # [S] summed over leads and cells, for the block bootstrap
    rps_by_origin: np.ndarray  # [S]
    pit_counts: np.ndarray  # [H, pit_bins]
    reliability: np.ndarray  # [H, bins, 3]: forecasts, sum of P(above), observed above


ORIGINS_PER_CHUNK = 1  # one origin's members (~1 MB on Boyacá) stay in cache; measured


def distribution_sums(
    members_at: Callable[[int, slice], np.ndarray],
    obs: np.ndarray,
    target_month: np.ndarray,
    predictive: Predictive,
    valid: np.ndarray,
    levels: Sequence[float],
    *,
    pit_bins: int = 10,
    reliability_bins: int = 10,
    seed: int = 0,
    products: dict[str, np.ndarray] | None = None,
    calibrated: bool = False,
) -> DistributionSums:
    """Score the members ``members_at(h, rows) -> [s, N, K]`` (sorted) of lead ``h`` and the
    origins ``rows`` against ``obs`` ``[S, H, lat, lon]``. With ``products`` (a dict), also
    fills ``quantile`` ``[S, H, Q, N]`` and ``tercile_probability`` ``[S, H, 3, N]``.
    ``calibrated``: tercile probabilities with ``predictive``'s tercile weights (for a
    forecast; the reference ensemble has none)."""
    n_origins, horizon = obs.shape[:2]
    n_cells = int(valid.sum())
    crps_sum, rps_sum, covered = (np.zeros((horizon, n_cells)) for _ in range(3))
    crps_origin, rps_origin = np.zeros(n_origins), np.zeros(n_origins)
    pit_counts = np.zeros((horizon, pit_bins))
    reliability = np.zeros((horizon, reliability_bins, 3))
    rng = np.random.default_rng(seed)
    if products is not None:
        products["quantile"] = np.empty((n_origins, horizon, len(levels), n_cells), np.float32)
        products["tercile_probability"] = np.empty((n_origins, horizon, 3, n_cells), np.float32)
    for h in range(horizon):
        o = obs[:, h][:, valid].astype(np.float64)
        lower, upper = predictive.lead_edges(target_month[:, h], valid)
        uniform = rng.uniform(size=o.shape)  # the PIT's tie-breaking draws of this lead
        lead = _lead_values(
            members_at, h, o, lower, upper, target_month[:, h], predictive, valid, levels,
            uniform, products, calibrated,
        )  # fmt: skip
        crps_sum[h], rps_sum[h] = lead["crps"].sum(axis=0), lead["rps"].sum(axis=0)
        crps_origin += lead["crps"].sum(axis=1)
        rps_origin += lead["rps"].sum(axis=1)
        covered[h] = lead["covered"].sum(axis=0)
        pit_counts[h] = np.histogram(lead["pit"], bins=pit_bins, range=(0.0, 1.0))[0]
        reliability[h] = reliability_counts(lead["prob_above"], o > upper, reliability_bins)
    return DistributionSums(
        n_origins, crps_sum, rps_sum, covered, crps_origin, rps_origin, pit_counts, reliability
    )


def _lead_values(
    members_at: Callable[[int, slice], np.ndarray],
    h: int,
    obs: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    month: np.ndarray,
    predictive: Predictive,
    valid: np.ndarray,
    levels: Sequence[float],
    uniform: np.ndarray,
    products: dict[str, np.ndarray] | None,
    calibrated: bool,
) -> dict[str, np.ndarray]:
    """Per origin and valid cell ``[S, N]`` of lead ``h``: CRPS, RPS, inside the central
    interval, PIT and P(above normal). The members are built and scored ``ORIGINS_PER_CHUNK``
    origins at a time (the whole lead's would be ~100 MB); every value is computed as on the
    whole array. The central interval's bounds are the outer ``levels``' quantiles."""
    levels = list(levels) if products is not None else [min(levels), max(levels)]
    lo, hi = levels.index(min(levels)), levels.index(max(levels))
    values = {key: np.empty(obs.shape) for key in ("crps", "rps", "pit", "prob_above")}
    values["covered"] = np.empty(obs.shape, dtype=bool)
    for start in range(0, len(obs), ORIGINS_PER_CHUNK):
        rows = slice(start, start + ORIGINS_PER_CHUNK)
        members, o = members_at(h, rows), obs[rows]
        probs = predictive.lead_probabilities(
            members, month[rows], h if calibrated else None, valid
        )
        quantiles = ensemble_quantiles(members, levels)
        values["crps"][rows] = crps(o, members)
        values["rps"][rows] = rps(observed_category(o, lower[rows], upper[rows]), probs)
        values["covered"][rows] = (o >= quantiles[..., lo]) & (o <= quantiles[..., hi])
        values["pit"][rows] = pit_values(o, members, uniform[rows])
        values["prob_above"][rows] = probs[..., 2]
        if products is not None:
            products["quantile"][rows, h] = np.moveaxis(quantiles, -1, 1)
            products["tercile_probability"][rows, h] = np.moveaxis(probs, -1, 1)
    return values


def _skill(score: float, reference: float) -> float | None:
    return None if reference <= 0 else 1.0 - score / reference


def _subset_scores(
    forecast: DistributionSums,
    reference: DistributionSums,
    leads: slice | int,
    cells: np.ndarray,
) -> dict[str, float | int | None]:
    def total(sums: np.ndarray) -> float:
        return float(np.atleast_2d(sums[leads])[:, cells].sum())

    n = forecast.n_origins * np.atleast_2d(forecast.crps[leads])[:, cells].size
    if n == 0:
        return {"crps": None, "crpss": None, "rps": None, "rpss": None, "coverage": None, "n": 0}
    crps_f, crps_r = total(forecast.crps), total(reference.crps)
    rps_f, rps_r = total(forecast.rps), total(reference.rps)
    return {
        "crps": crps_f / n,
        "crpss": _skill(crps_f, crps_r),
        "rps": rps_f / n,
        "rpss": _skill(rps_f, rps_r),
        "coverage": total(forecast.covered) / n,
        "n": int(n),
    }


def probabilistic_scores(
    forecast: DistributionSums,
    reference: DistributionSums,
    zones: dict[str, np.ndarray],
    valid: np.ndarray,
) -> dict[str, object]:
    """CRPS, CRPSS and RPSS against ``reference`` (the climatological ensemble) and the
    coverage of the central interval: overall, per zone and per lead."""
    all_cells = np.ones(int(valid.sum()), dtype=bool)
    horizon = forecast.crps.shape[0]
    return {
        "overall": _subset_scores(forecast, reference, slice(None), all_cells),
        "by_zone": {
            name: _subset_scores(forecast, reference, slice(None), np.asarray(mask)[valid])
            for name, mask in zones.items()
        },
        "by_lead": {
            str(h + 1): _subset_scores(forecast, reference, h, all_cells) for h in range(horizon)
        },
    }


def skill_intervals(
    forecast: DistributionSums,
    reference: DistributionSums,
    counts: np.ndarray,
    level: float,
    n_blocks: int,
    other: DistributionSums | None = None,
) -> dict[str, float]:
    """Block-bootstrap intervals of CRPSS and RPSS (``counts`` ``[n_boot, S]`` from
    ``ames.evaluation.uncertainty.origin_counts``, the same resamples as every other score);
    with ``other``, also of the skill difference forecast − other (paired)."""
    out: dict[str, float] = {}
    for key, field in (("crpss", "crps_by_origin"), ("rpss", "rps_by_origin")):
        f, r = getattr(forecast, field), getattr(reference, field)
        o = None if other is None else getattr(other, field)
        ref = counts @ r
        skill = 1.0 - (counts @ f) / ref
        out.update(interval(1.0 - f.sum() / r.sum(), skill, level, n_blocks).as_dict(key))
        if o is not None:
            delta = (counts @ o - counts @ f) / ref
            estimate = (o.sum() - f.sum()) / r.sum()
            out.update(interval(estimate, delta, level, n_blocks).as_dict(f"delta_{key}"))
    return out
