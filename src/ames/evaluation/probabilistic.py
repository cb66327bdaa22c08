"""Predictive distribution: the training climatology's spread, centred on a point forecast.

For a cell, lead ``h`` and target calendar month ``m`` the ``K`` members are

    y_k = f · max(0, 1 + s_h · (r_k − 1)),   r_k = P_k / clim_mean[m],

``P_k`` being the last ``K`` training-period values of calendar month ``m`` at that cell (the
climatological ensemble), ``f`` the point forecast in mm/month and ``s_h`` one spread scale per
lead, fitted on validation origins by minimising the CRPS (``fit_spread_scales``). The members
are non-negative and inherit the skewness of the cell's own rainfall; their mean is ``f``
(``r`` averages to 1) unless the clip at 0 bites. With ``f`` = climatology and ``s`` = 1 they
are the climatological ensemble itself, the reference of CRPSS and RPSS, so a skill score
above 0 is what the forecast's shift and the fitted spread add.

Tercile categories (below / near / above normal) use the edges of the training months of that
cell and calendar month. The members' tercile probabilities are then shrunk toward the
climatological ensemble's by one weight per lead, also fitted on validation origins (lowest
RPS, ``fit_tercile_weight``): CRPS-fitted members are sharp enough for the middle of the
distribution but too sure about the tails, and the weight corrects that for the terciles.
Arrays are ``[S, H, lat, lon]`` as in ``ames.evaluation.metrics``; scores are taken on the
valid cells only. CRPS and RPS come from ``scoringrules``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scoringrules as sr
from scipy.optimize import minimize_scalar

from ames.evaluation.uncertainty import interval

CATEGORIES = ("below_normal", "near_normal", "above_normal")
TERCILES = (1.0 / 3.0, 2.0 / 3.0)


# --------------------------------------------------------------------------------------
# the climatological ensemble and the tercile edges (training months only)


def _training_values_by_month(
    precip: np.ndarray, months: np.ndarray, train: np.ndarray
) -> list[np.ndarray]:
    months = np.asarray(months)
    train = np.asarray(train, dtype=bool)
    values = []
    for m in range(12):
        chosen = precip[train & (months == m)]
        if len(chosen) == 0:
            raise ValueError(
                f"calendar month {m + 1} has no training month: the climatological ensemble "
                "needs a training period of at least one full year"
            )
        values.append(np.asarray(chosen, dtype=np.float64))
    return values


def climatological_ensemble(
    precip: np.ndarray, months: np.ndarray, train: np.ndarray
) -> np.ndarray:
    """``[12, K, lat, lon]``: the last ``K`` training values of each calendar month, sorted
    along ``K`` per cell; ``K`` is the smallest number of training years over calendar months."""
    by_month = _training_values_by_month(precip, months, train)
    k = min(len(v) for v in by_month)
    return np.sort(np.stack([v[-k:] for v in by_month]), axis=1)


def tercile_edges(precip: np.ndarray, months: np.ndarray, train: np.ndarray) -> np.ndarray:
    """``[12, 2, lat, lon]``: lower and upper tercile of every training value of each calendar
    month and cell (NaN outside the domain)."""
    by_month = _training_values_by_month(precip, months, train)
    return np.stack([np.quantile(v, TERCILES, axis=0) for v in by_month])


def ratio_ensemble(ensemble: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ensemble`` ``[12, K, lat, lon]`` → (members divided by their mean, that mean).

    The ratios average to 1 (1 everywhere where the mean is 0, a month that never rains).
    """
    mean = ensemble.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(mean[:, None] > 0, ensemble / mean[:, None], 1.0)
    return np.where(np.isnan(ensemble), np.nan, ratios), mean


# --------------------------------------------------------------------------------------
# the predictive distribution


def dressed_members(point: np.ndarray, ratios: np.ndarray, scale: float) -> np.ndarray:
    """``point`` ``[S, N]`` (mm/month) and ``ratios`` ``[S, N, K]`` → members ``[S, N, K]``.

    Members keep the order of ``ratios`` (sorted ratios give sorted members) since ``point ≥ 0``
    and ``scale > 0``.
    """
    point = np.maximum(np.asarray(point, dtype=np.float64), 0.0)
    return point[..., None] * np.maximum(1.0 + scale * (ratios - 1.0), 0.0)


def ensemble_cdf(members: np.ndarray, x: np.ndarray) -> np.ndarray:
    """CDF of sorted members ``[..., K]`` at ``x`` ``[...]``: piecewise linear through the
    Weibull plotting positions ``(m_i, i / (K + 1))``, 0 below the first member and 1 above
    the last, i.e. the inverse of ``ensemble_quantiles``."""
    k = members.shape[-1]
    position = np.arange(1, k + 1) / (k + 1)
    n_below = (members < x[..., None]).sum(axis=-1)
    left = np.clip(n_below - 1, 0, k - 1)[..., None]
    right = np.clip(n_below, 0, k - 1)[..., None]
    x_left = np.take_along_axis(members, left, axis=-1)[..., 0]
    x_right = np.take_along_axis(members, right, axis=-1)[..., 0]
    gap = x_right - x_left
    weight = np.clip((x - x_left) / np.where(gap > 0, gap, 1.0), 0.0, 1.0)
    inside = position[left[..., 0]] + weight * (position[right[..., 0]] - position[left[..., 0]])
    return np.where(n_below == 0, 0.0, np.where(n_below == k, 1.0, inside))


def tercile_probabilities(members: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """P(below ``lower``), P(between), P(above ``upper``) from ``ensemble_cdf`` (the CDF the
    published quantiles come from): ``[..., 3]``, each in [0, 1], summing to 1.

    Reading them off one smooth CDF rather than counting members keeps a small shift of the
    forecast a small change of probability (counting jumps by 1/K as a member crosses an
    edge); on the validation origins it also scored better (RPSS −0.044 vs −0.048).
    """
    below = ensemble_cdf(members, lower)
    not_above = np.maximum(ensemble_cdf(members, upper), below)
    return np.stack([below, not_above - below, 1.0 - not_above], axis=-1)


def observed_category(obs: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Tercile category of each observation, 1 (below) … 3 (above), as ``rps_score`` wants."""
    return 1 + (obs >= lower).astype(np.int64) + (obs > upper).astype(np.int64)


def ensemble_quantiles(members: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Quantiles of each member set along the last axis → ``[..., Q]`` (never cross).

    Weibull plotting positions (level p at rank p·(K + 1)): a new value exchangeable with the
    K members falls below that quantile with probability p. The default linear rule would
    make the central 80 % interval of 30 members an interval of about 75 %.
    """
    quantiles = np.quantile(members, list(levels), axis=-1, method="weibull")
    return np.moveaxis(quantiles, 0, -1)


def crps(obs: np.ndarray, members: np.ndarray) -> np.ndarray:
    """CRPS of an ensemble sorted along its last axis (scoringrules, quantile decomposition)."""
    return np.asarray(
        sr.crps_ensemble(obs, members, m_axis=-1, estimator="qd", sorted_ensemble=True)
    )


def rps(obs_category: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Ranked probability score of tercile probabilities ``[..., 3]`` (scoringrules)."""
    return np.asarray(sr.rps_score(obs_category, probabilities, k_axis=-1))


def pit_values(obs: np.ndarray, members: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Randomised PIT of an ensemble: ``(n_below + U · (n_equal + 1)) / (K + 1)``.

    Uniform on [0, 1] when the observation is exchangeable with the members; the random
    part spreads ties (e.g. dry months) instead of piling them on one bin.
    """
    below = (members < obs[..., None]).sum(axis=-1)
    equal = (members == obs[..., None]).sum(axis=-1)
    k = members.shape[-1]
    return (below + rng.uniform(size=below.shape) * (equal + 1)) / (k + 1)


@dataclass(frozen=True)
class Predictive:
    """Everything needed to dress a point forecast: saved by ``calibrate``, read by
    ``evaluate`` and ``inference``."""

    ratios: np.ndarray  # [12, K, lat, lon], sorted along K
    edges: np.ndarray  # [12, 2, lat, lon] tercile edges, mm/month
    scales: np.ndarray  # [H] spread scale per lead
    clim_mean: np.ndarray  # [12, lat, lon] mean of the climatological ensemble
    tercile_weights: np.ndarray | None = None  # [H]; None: probabilities as the members give

    def lead_members(
        self, point: np.ndarray, month: np.ndarray, lead: int | None, valid: np.ndarray
    ) -> np.ndarray:
        """Members ``[S, N, K]`` (sorted) for ``point`` ``[S, lat, lon]`` at lead index
        ``lead`` (None: scale 1); ``month`` ``[S]`` target calendar months; N = valid cells."""
        ratios = np.moveaxis(self.ratios[month][..., valid], 1, -1)
        scale = 1.0 if lead is None else float(self.scales[lead])
        return dressed_members(point[:, valid], ratios, scale)

    def reference_members(self, month: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The climatological ensemble ``[S, N, K]`` of target months ``month`` (sorted)."""
        return self.lead_members(self.clim_mean[month], month, None, valid)

    def lead_edges(self, month: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        edges = self.edges[month][..., valid]  # [S, 2, N]
        return edges[:, 0], edges[:, 1]

    def lead_probabilities(
        self, members: np.ndarray, month: np.ndarray, lead: int | None, valid: np.ndarray
    ) -> np.ndarray:
        """Tercile probabilities ``[S, N, 3]`` of ``members`` ``[S, N, K]``; at lead index
        ``lead`` shrunk toward the climatological ensemble's by that lead's tercile weight
        (None, or no weights: as the members give them)."""
        lower, upper = self.lead_edges(month, valid)
        probs = tercile_probabilities(members, lower, upper)
        if lead is None or self.tercile_weights is None:
            return probs
        reference = tercile_probabilities(self.reference_members(month, valid), lower, upper)
        return shrink_probabilities(probs, reference, float(self.tercile_weights[lead]))


def shrink_probabilities(probs: np.ndarray, reference: np.ndarray, weight: float) -> np.ndarray:
    """``weight · probs + (1 − weight) · reference``: 1 keeps the forecast's probabilities,
    0 gives the reference's (a mixture of two distributions, so still summing to 1)."""
    return weight * probs + (1.0 - weight) * reference


def fit_tercile_weight(probs: np.ndarray, reference: np.ndarray, category: np.ndarray) -> float:
    """The weight in [0, 1] of ``shrink_probabilities`` with the lowest mean RPS.

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
# calibration on validation origins


def _mean_crps(obs: np.ndarray, point: np.ndarray, ratios: np.ndarray, scale: float) -> float:
    return float(crps(obs, dressed_members(point, ratios, scale)).mean())


def fit_spread_scales(
    point: np.ndarray,
    obs: np.ndarray,
    target_month: np.ndarray,
    ratios: np.ndarray,
    valid: np.ndarray,
    bounds: tuple[float, float],
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Spread scale per lead minimising the mean CRPS over ``point``'s origins and valid cells.

    ``point``/``obs`` ``[S, H, lat, lon]`` (validation origins), ``target_month`` ``[S, H]``.
    Returns the scales ``[H]`` and, per lead, the CRPS at the fitted scale and at scale 1.
    """
    horizon = point.shape[1]
    scales, report = np.empty(horizon), []
    for h in range(horizon):
        r = np.moveaxis(ratios[target_month[:, h]][..., valid], 1, -1)
        o = obs[:, h][:, valid].astype(np.float64)
        p = point[:, h][:, valid]
        result = minimize_scalar(
            lambda s, o=o, p=p, r=r: _mean_crps(o, p, r, s),
            bounds=bounds,
            method="bounded",
            options={"xatol": 1e-3},
        )
        scales[h] = float(result.x)
        report.append(
            {
                "lead": h + 1,
                "scale": scales[h],
                "crps": float(result.fun),
                "crps_scale_1": _mean_crps(o, p, r, 1.0),
            }
        )
    return scales, report


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


def _reliability_counts(prob_above: np.ndarray, observed: np.ndarray, bins: int) -> np.ndarray:
    index = np.minimum((prob_above * bins).astype(np.int64), bins - 1).ravel()
    table = np.zeros((bins, 3))
    table[:, 0] = np.bincount(index, minlength=bins)
    table[:, 1] = np.bincount(index, weights=prob_above.ravel(), minlength=bins)
    table[:, 2] = np.bincount(index, weights=observed.ravel().astype(np.float64), minlength=bins)
    return table


def distribution_sums(
    members_at: Callable[[int], np.ndarray],
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
    """Score the members ``members_at(h) -> [S, N, K]`` (sorted) of every lead against ``obs``
    ``[S, H, lat, lon]``. With ``products`` (a dict), also fills ``quantile`` ``[S, H, Q, N]``
    and ``tercile_probability`` ``[S, H, 3, N]``. ``calibrated``: tercile probabilities with
    ``predictive``'s tercile weights (for a forecast; the reference ensemble has none)."""
    n_origins, horizon = obs.shape[:2]
    n_cells = int(valid.sum())
    crps_sum, rps_sum, covered = (np.zeros((horizon, n_cells)) for _ in range(3))
    crps_origin, rps_origin = np.zeros(n_origins), np.zeros(n_origins)
    pit_counts = np.zeros((horizon, pit_bins))
    reliability = np.zeros((horizon, reliability_bins, 3))
    rng = np.random.default_rng(seed)
    lo, hi = min(levels), max(levels)
    if products is not None:
        products["quantile"] = np.empty((n_origins, horizon, len(levels), n_cells), np.float32)
        products["tercile_probability"] = np.empty((n_origins, horizon, 3, n_cells), np.float32)
    for h in range(horizon):
        members = members_at(h)
        o = obs[:, h][:, valid].astype(np.float64)
        lower, upper = predictive.lead_edges(target_month[:, h], valid)
        probs = predictive.lead_probabilities(
            members, target_month[:, h], h if calibrated else None, valid
        )
        interval = ensemble_quantiles(members, (lo, hi))
        crps_h = crps(o, members)
        rps_h = rps(observed_category(o, lower, upper), probs)
        crps_sum[h], rps_sum[h] = crps_h.sum(axis=0), rps_h.sum(axis=0)
        crps_origin += crps_h.sum(axis=1)
        rps_origin += rps_h.sum(axis=1)
        covered[h] = ((o >= interval[..., 0]) & (o <= interval[..., 1])).sum(axis=0)
        pit = pit_values(o, members, rng)
        pit_counts[h] = np.histogram(pit, bins=pit_bins, range=(0.0, 1.0))[0]
        reliability[h] = _reliability_counts(probs[..., 2], o > upper, reliability_bins)
        if products is not None:
            products["quantile"][:, h] = np.moveaxis(ensemble_quantiles(members, levels), -1, 1)
            products["tercile_probability"][:, h] = np.moveaxis(probs, -1, 1)
    return DistributionSums(
        n_origins, crps_sum, rps_sum, covered, crps_origin, rps_origin, pit_counts, reliability
    )


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


def pit_histogram(sums: DistributionSums) -> np.ndarray:
    """Relative frequency per PIT bin, pooled over leads (1/bins each when calibrated)."""
    counts = sums.pit_counts.sum(axis=0)
    return counts / counts.sum()


def reliability_table(sums: DistributionSums) -> list[dict[str, float | int | None]]:
    """Above-normal reliability pooled over leads: per probability bin, the mean forecast
    probability, the observed frequency and the number of forecasts."""
    table = sums.reliability.sum(axis=0)
    bins = len(table)
    rows = []
    for b, (count, prob_sum, observed) in enumerate(table):
        rows.append(
            {
                "bin_lo": b / bins,
                "bin_hi": (b + 1) / bins,
                "forecast_probability": float(prob_sum / count) if count else None,
                "observed_frequency": float(observed / count) if count else None,
                "n": int(count),
            }
        )
    return rows


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
