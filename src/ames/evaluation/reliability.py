"""Calibration diagnostics of an ensemble forecast: PIT histogram and reliability table.

``pit_values`` and ``reliability_counts`` give the per-lead counts that
``ames.evaluation.probabilistic.distribution_sums`` accumulates in ``DistributionSums``;
``pit_histogram`` and ``reliability_table`` pool them over leads for the report and plots.
"""

from __future__ import annotations

import numpy as np


def pit_values(obs: np.ndarray, members: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Randomised PIT of an ensemble: ``(n_below + U · (n_equal + 1)) / (K + 1)``, ``U`` the
    draws ``uniform`` on [0, 1) of ``obs``'s shape.

    Uniform on [0, 1] when the observation is exchangeable with the members; the random
    part spreads ties (e.g. dry months) instead of piling them on one bin.
    """
    below = (members < obs[..., None]).sum(axis=-1)
    equal = (members == obs[..., None]).sum(axis=-1)
    k = members.shape[-1]
    return (below + uniform * (equal + 1)) / (k + 1)


def reliability_counts(prob_above: np.ndarray, observed: np.ndarray, bins: int) -> np.ndarray:
    """``[bins, 3]`` per bin of ``prob_above``: forecasts, sum of P(above), observed above."""
    index = np.minimum((prob_above * bins).astype(np.int64), bins - 1).ravel()
    table = np.zeros((bins, 3))
    table[:, 0] = np.bincount(index, minlength=bins)
    table[:, 1] = np.bincount(index, weights=prob_above.ravel(), minlength=bins)
    table[:, 2] = np.bincount(index, weights=observed.ravel().astype(np.float64), minlength=bins)
    return table


def pit_histogram(pit_counts: np.ndarray) -> np.ndarray:
    """Relative frequency per PIT bin of ``[H, bins]`` counts, pooled over leads (1/bins
    each when calibrated)."""
    counts = pit_counts.sum(axis=0)
    return counts / counts.sum()


def reliability_table(counts: np.ndarray) -> list[dict[str, float | int | None]]:
    """Above-normal reliability of ``[H, bins, 3]`` ``reliability_counts`` pooled over
    leads: per probability bin, the mean forecast probability, the observed frequency and
    the number of forecasts."""
    table = counts.sum(axis=0)
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
