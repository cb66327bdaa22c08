"""Predictive distribution: the training climatology's spread, centred on a point forecast.

For a cell, lead ``h`` and target calendar month ``m`` the ``K`` members are

    y_k = f · max(0, 1 + s_h · (r_k − 1)),   r_k = P_k / clim_mean[m],

``P_k`` being the last ``K`` training-period values of calendar month ``m`` at that cell (the
climatological ensemble), ``f`` the point forecast in mm/month and ``s_h`` one spread scale per
lead, fitted by minimising the CRPS (``fit_spread_scales``) on out-of-fold forecasts of the
training origins (``ames.workflows.fold_calibration``). The members
are non-negative and inherit the skewness of the cell's own rainfall; their mean is ``f``
(``r`` averages to 1) unless the clip at 0 bites. With ``f`` = climatology and ``s`` = 1 they
are the climatological ensemble itself, the reference of CRPSS and RPSS, so a skill score
above 0 is what the forecast's shift and the fitted spread add.

Tercile categories (below / near / above normal) use the edges of the training months of that
cell and calendar month. The members' tercile probabilities are then shrunk toward the
climatological ensemble's by one weight per lead, also fitted on validation origins (lowest
RPS, ``fit_tercile_weight``): CRPS-fitted members are sharp enough for the middle of the
distribution but too sure about the tails, and the weight corrects that for the terciles.
Arrays are ``[S, H, lat, lon]`` as in ``ames.evaluation.metrics``. The scores (CRPS, RPS,
coverage) and the fits of the scale and weight are in ``ames.evaluation.probabilistic``, the
PIT histogram and the reliability table in ``ames.evaluation.reliability``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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
    precip: np.ndarray, months: np.ndarray, train: np.ndarray, members: int | None = None
) -> np.ndarray:
    """``[12, K, lat, lon]``: the last ``K`` training values of each calendar month, sorted
    along ``K`` per cell; ``K`` is ``members`` or, by default, the smallest number of training
    years over calendar months."""
    by_month = _training_values_by_month(precip, months, train)
    k = min(len(v) for v in by_month)
    if members is not None:
        if not 0 < members <= k:
            raise ValueError(f"{members} members asked for, the training months hold {k} years")
        k = members
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
