"""Reference forecasts reported beside the model (SPEC §3).

Every forecast function returns ``[S, H, lat, lon]`` mm/month for the origin indices
``origins`` (``t`` = last observed month, lead ``h`` targets month ``t + h``), reading only
months ``≤ t``, so they also forecast beyond the end of the record. Inputs: ``precip``
``[T, lat, lon]`` mm/month, ``months`` ``[T]`` calendar month 0..11, ``clim_mean``
``[12, lat, lon]`` training-month climatology. Outputs keep the input float precision
(float32 stays float32); invalid (NaN) cells stay NaN.
"""

from __future__ import annotations

import numpy as np

from ames.climatology import anomalies, target_months

# Fitted anomaly persistence is clipped to [0, RHO_MAX]. A negative lag-1 correlation of
# monthly precipitation anomalies is sampling noise, and a negative ρ would flip the sign of
# the anomaly from one lead to the next; ρ < 1 keeps the anomaly decaying toward climatology.
RHO_MAX = 0.999


def _origins(origins: np.ndarray, n_time: int) -> np.ndarray:
    origins = np.asarray(origins, dtype=np.int64)
    if origins.ndim != 1:
        raise ValueError(f"origins must be a 1-D array of month indices, got shape {origins.shape}")
    if origins.size and (origins.min() < 0 or origins.max() >= n_time):
        raise ValueError(
            f"origin indices must lie in 0..{n_time - 1} (the observed months), "
            f"got {origins.min()}..{origins.max()}"
        )
    return origins


def _check_horizon(horizon: int) -> None:
    if horizon < 1:
        raise ValueError(f"horizon must be ≥ 1, got {horizon}")


def _out_dtype(*arrays: np.ndarray) -> np.dtype:
    return np.result_type(*(np.asarray(a).dtype for a in arrays), np.float32)


def climatology_forecast(
    clim_mean: np.ndarray, months: np.ndarray, origins: np.ndarray, horizon: int
) -> np.ndarray:
    """Training mean of each target's calendar month: ``clim_mean[month(t + h)]``."""
    _check_horizon(horizon)
    months = np.asarray(months)
    origins = _origins(origins, len(months))
    return np.asarray(clim_mean)[target_months(months[origins], horizon)]


def seasonal_naive_forecast(precip: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Same calendar month one year before the target: ``precip[t + h − 12]``.

    Needs ``horizon ≤ 12`` (otherwise that month is not yet observed at the origin) and
    ``t + 1 − 12 ≥ 0`` for every origin.
    """
    _check_horizon(horizon)
    if horizon > 12:
        raise ValueError(
            f"seasonal naive needs horizon ≤ 12: for lead {horizon} the same month one year "
            "before the target lies after the origin"
        )
    precip = np.asarray(precip)
    origins = _origins(origins, precip.shape[0])
    source = origins[:, None] + np.arange(1, horizon + 1)[None, :] - 12
    if source.size and source.min() < 0:
        raise ValueError(
            f"seasonal naive for origin {origins[source.min(axis=1) < 0][0]} needs month "
            f"{source.min()} (before the first month); use origins ≥ 11"
        )
    return precip[source]


def persistence_forecast(precip: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Last observed month ``precip[t]`` for every lead."""
    _check_horizon(horizon)
    precip = np.asarray(precip)
    origins = _origins(origins, precip.shape[0])
    last = precip[origins]
    return np.repeat(last[:, None], horizon, axis=1)


def fit_anomaly_rho(
    precip: np.ndarray, months: np.ndarray, clim_mean: np.ndarray, train_months: np.ndarray
) -> np.ndarray:
    """Lag-1 correlation of monthly anomalies per cell from training months only, ``[lat, lon]``.

    Uses the pairs ``(t, t+1)`` whose months are both training months; anomalies are taken
    from ``clim_mean`` (mean zero over the training months by construction), so ρ =
    Σ a_t a_{t+1} / √(Σ a_t² · Σ a_{t+1}²). Clipped to [0, ``RHO_MAX``]; 0 where the anomalies
    have no variance; NaN for cells that are NaN at every training month (outside the domain).
    Raises if a cell is NaN in only some training months.
    """
    precip = np.asarray(precip)
    train = np.asarray(train_months, dtype=bool)
    if train.shape != (precip.shape[0],):
        raise ValueError(f"train_months must be bool [{precip.shape[0]}], got {train.shape}")
    pairs = train[:-1] & train[1:]
    if not pairs.any():
        raise ValueError("no two consecutive training months: cannot fit anomaly persistence")

    anom = anomalies(precip, months, clim_mean).astype(np.float64)
    first, second = anom[:-1][pairs], anom[1:][pairs]
    used = np.concatenate([first, second])
    outside = np.isnan(used).all(axis=0)
    partial = ~np.isfinite(used).all(axis=0) & ~outside
    if partial.any():
        lat, lon = (int(i[0]) for i in np.nonzero(partial))
        raise ValueError(
            f"{int(partial.sum())} cells have missing values in some training months "
            f"(first at lat={lat} lon={lon}); fill or mask them before fitting"
        )

    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = np.sqrt((first**2).sum(axis=0) * (second**2).sum(axis=0))
        rho = np.where(denominator > 0, (first * second).sum(axis=0) / denominator, 0.0)
    rho = np.clip(rho, 0.0, RHO_MAX)
    rho[outside] = np.nan
    return rho


def damped_persistence_forecast(
    precip: np.ndarray,
    months: np.ndarray,
    clim_mean: np.ndarray,
    rho: np.ndarray,
    origins: np.ndarray,
    horizon: int,
) -> np.ndarray:
    """``clim_mean[month(t+h)] + ρ^h · (precip[t] − clim_mean[month(t)])``, clipped at 0.

    The clip matters only for large negative anomalies at small leads; precipitation
    cannot be negative.
    """
    _check_horizon(horizon)
    precip = np.asarray(precip)
    months = np.asarray(months)
    clim_mean = np.asarray(clim_mean)
    origins = _origins(origins, precip.shape[0])
    clim = clim_mean.astype(np.float64)
    last_anomaly = anomalies(precip[origins].astype(np.float64), months[origins], clim)
    damping = np.asarray(rho, dtype=np.float64)[None] ** np.arange(1, horizon + 1)[:, None, None]
    forecast = clim[target_months(months[origins], horizon)] + damping[None] * last_anomaly[:, None]
    return np.maximum(forecast, 0.0).astype(_out_dtype(precip, clim_mean))


def all_baselines(
    precip: np.ndarray,
    months: np.ndarray,
    clim_mean: np.ndarray,
    rho: np.ndarray,
    origins: np.ndarray,
    horizon: int,
) -> dict[str, np.ndarray]:
    """Every baseline for the same origins: climatology, seasonal_naive, persistence,
    damped_persistence (``rho`` from ``fit_anomaly_rho``)."""
    return {
        "climatology": climatology_forecast(clim_mean, months, origins, horizon),
        "seasonal_naive": seasonal_naive_forecast(precip, origins, horizon),
        "persistence": persistence_forecast(precip, origins, horizon),
        "damped_persistence": damped_persistence_forecast(
            precip, months, clim_mean, rho, origins, horizon
        ),
    }
