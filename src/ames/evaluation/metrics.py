"""Forecast scores in mm/month, one implementation for the model, experts, baselines and oracle.

Every forecast is an array ``[S, H, lat, lon]`` (S origins, H leads) scored against the
observations of the same shape on the valid cells only (SPEC §3). Scores are reduced from
per-(lead, cell) sufficient statistics accumulated in float64, so the overall, per-zone
and per-lead numbers are exact sub-aggregations of the same sums.

Conventions:
- ``pooled_r2`` = 1 − SSE/SST with SST about the mean of all observations in the subset.
- ``percell_r2`` = mean over cells of each cell's R² over its (origin, lead) samples in the
  subset (per lead: over origins only). A cell whose observed standard deviation over those
  samples is below ``ZERO_VARIANCE_STD_MM`` has no defined R² and is left out of the mean
  (never counted as 0 or −inf).
- ``msess`` = 1 − MSE/MSE_clim, MSE_clim being the error of the climatology forecast on the
  same samples.
- An undefined score (zero variance, zero climatology error, empty subset) is ``None`` in
  the nested dicts, so they serialise to strict JSON; the scalar helpers return NaN instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

# Observed standard deviations below this (mm/month) count as zero variance.
ZERO_VARIANCE_STD_MM = 1e-6

LEAF_KEYS = ("pooled_r2", "percell_r2", "rmse", "mae", "msess", "n")


# --------------------------------------------------------------------------------------
# input checks


def _valid_from_zones(zones: dict[str, np.ndarray], grid_shape: tuple[int, ...]) -> np.ndarray:
    if not zones:
        raise ValueError("zones is empty: pass at least one zone mask (their union = valid cells)")
    count = np.zeros(grid_shape, dtype=np.int64)
    for name, mask in zones.items():
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != grid_shape:
            raise ValueError(
                f"zone {name!r} must be a bool mask of shape {grid_shape}, "
                f"got {mask.dtype} {mask.shape}"
            )
        count += mask
    if (count > 1).any():
        overlap = int((count > 1).sum())
        raise ValueError(f"zone masks overlap on {overlap} cells; they must be disjoint")
    valid = count == 1
    if not valid.any():
        raise ValueError("the zone masks select no cell")
    return valid


def _check_arrays(**arrays: np.ndarray) -> tuple[int, ...]:
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    first = next(iter(shapes.values()))
    if len(first) != 4 or any(s != first for s in shapes.values()):
        raise ValueError(f"forecast arrays must share one [S, H, lat, lon] shape, got {shapes}")
    if first[0] == 0 or first[1] == 0:
        raise ValueError(f"nothing to score: shape {first} has no origin or no lead")
    return first


def _lead_values(name: str, array: np.ndarray, lead: int, valid: np.ndarray) -> np.ndarray:
    """``array[:, lead]`` on the valid cells as float64 ``[S, N]``; raises on a non-finite value."""
    values = np.asarray(array[:, lead])[:, valid].astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        s, k = (int(i[0]) for i in np.nonzero(bad))
        lat, lon = (int(i[k]) for i in np.nonzero(valid))
        why = (
            "observations must be complete on the valid cells"
            if name == "obs"
            else "a NaN forecast is a bug upstream and is never dropped silently"
        )
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite values on valid cells at lead {lead + 1} "
            f"(first at origin {s}, cell lat={lat} lon={lon}); {why}"
        )
    return values


# --------------------------------------------------------------------------------------
# sufficient statistics


@dataclass(frozen=True)
class _Stats:
    """Sums over the ``n_origins`` origins for every (lead, valid cell), each ``[H, N]``."""

    n_origins: int
    obs_mean: np.ndarray
    obs_m2: np.ndarray  # sum of squared deviations from obs_mean
    sse: np.ndarray
    sae: np.ndarray
    sse_clim: np.ndarray


def _accumulate(pred: np.ndarray, obs: np.ndarray, clim: np.ndarray, valid: np.ndarray) -> _Stats:
    """Statistics lead by lead, so memory stays at one ``[S, N]`` float64 slice per array."""
    n_origins, horizon = obs.shape[:2]
    obs_mean, obs_m2, sse, sae, sse_clim = (np.empty((horizon, int(valid.sum()))) for _ in range(5))
    for h in range(horizon):
        o = _lead_values("obs", obs, h, valid)
        p = _lead_values("pred", pred, h, valid)
        c = _lead_values("clim", clim, h, valid)
        obs_mean[h] = o.mean(axis=0)
        obs_m2[h] = ((o - obs_mean[h]) ** 2).sum(axis=0)
        sse[h] = ((p - o) ** 2).sum(axis=0)
        sae[h] = np.abs(p - o).sum(axis=0)
        sse_clim[h] = ((c - o) ** 2).sum(axis=0)
    return _Stats(n_origins, obs_mean, obs_m2, sse, sae, sse_clim)


def _sst(
    stats: _Stats, leads: np.ndarray, cells: np.ndarray, axis: tuple[int, ...] | None
) -> np.ndarray:
    """Sum of squares about the mean of the selected (lead, cell) groups, combined exactly.

    Every group holds ``n_origins`` samples, so the subset mean is the mean of group means and
    SST = Σ M2_group + n_origins · Σ (mean_group − subset mean)².
    """
    means = stats.obs_mean[np.ix_(leads, cells)]
    centre = means.mean(axis=axis, keepdims=True)
    m2 = stats.obs_m2[np.ix_(leads, cells)]
    return m2.sum(axis=axis) + stats.n_origins * ((means - centre) ** 2).sum(axis=axis)


def _ratio_skill(num: float, den: float, n: int) -> float | None:
    """``1 − num/den`` or None when the denominator is (numerically) zero."""
    if den <= n * ZERO_VARIANCE_STD_MM**2:
        return None
    return float(1.0 - num / den)


def _leaf(stats: _Stats, leads: np.ndarray, cells: np.ndarray) -> dict:
    n_cells = int(cells.sum())
    n = stats.n_origins * len(leads) * n_cells
    if n == 0:
        return {key: (0 if key == "n" else None) for key in LEAF_KEYS}
    sel = np.ix_(leads, cells)
    sse = float(stats.sse[sel].sum())
    sse_clim = float(stats.sse_clim[sel].sum())
    sst = float(_sst(stats, leads, cells, axis=None))

    cell_sse = stats.sse[sel].sum(axis=0)
    cell_sst = _sst(stats, leads, cells, axis=(0,))
    n_per_cell = stats.n_origins * len(leads)
    has_variance = cell_sst > n_per_cell * ZERO_VARIANCE_STD_MM**2
    percell = (
        float(np.mean(1.0 - cell_sse[has_variance] / cell_sst[has_variance]))
        if has_variance.any()
        else None
    )
    return {
        "pooled_r2": _ratio_skill(sse, sst, n),
        "percell_r2": percell,
        "rmse": float(np.sqrt(sse / n)),
        "mae": float(stats.sae[sel].sum() / n),
        "msess": _ratio_skill(sse, sse_clim, n),
        "n": int(n),
    }


# --------------------------------------------------------------------------------------
# public API


def score_forecasts(
    pred_mm: np.ndarray,
    obs_mm: np.ndarray,
    clim_mm: np.ndarray,
    zones: dict[str, np.ndarray],
) -> dict:
    """Score a forecast overall, per zone and per lead on the cells the zones cover.

    pred_mm, obs_mm, clim_mm: ``[S, H, lat, lon]`` mm/month (clim_mm is the climatology
    forecast for the same samples, the MSESS reference). zones: name → bool ``[lat, lon]``,
    disjoint; their union is the set of valid cells. Values outside it are ignored; a
    non-finite obs, pred or clim value inside it raises ``ValueError``.

    Returns ``{"overall": leaf, "by_zone": {zone: leaf}, "by_lead": {"1": leaf, ...}}`` with
    leaf = ``{"pooled_r2", "percell_r2", "rmse", "mae", "msess", "n"}`` (None = undefined).
    """
    shape = _check_arrays(pred_mm=pred_mm, obs_mm=obs_mm, clim_mm=clim_mm)
    valid = _valid_from_zones(zones, shape[2:])
    stats = _accumulate(pred_mm, obs_mm, clim_mm, valid)

    all_leads = np.arange(shape[1])
    all_cells = np.ones(int(valid.sum()), dtype=bool)
    return {
        "overall": _leaf(stats, all_leads, all_cells),
        "by_zone": {
            name: _leaf(stats, all_leads, np.asarray(mask)[valid]) for name, mask in zones.items()
        },
        "by_lead": {str(h + 1): _leaf(stats, np.array([h]), all_cells) for h in all_leads},
    }


def _finite_float64(name: str, values: np.ndarray) -> np.ndarray:
    # Kept in its shape (no flattened copy): the sums then run in the array's memory order,
    # the same bits as ``np.sum`` over the caller's array.
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{name} has non-finite values; select the valid samples first")
    if values.size == 0:
        raise ValueError(f"{name} is empty")
    return values


def pooled_r2(pred: np.ndarray, obs: np.ndarray) -> float:
    """1 − SSE/SST over all elements, SST about their pooled mean; NaN if obs are constant."""
    p = _finite_float64("pred", pred)
    o = _finite_float64("obs", obs)
    if p.shape != o.shape:
        raise ValueError(f"pred and obs differ in shape: {p.shape} vs {o.shape}")
    value = _ratio_skill(float(((p - o) ** 2).sum()), float(((o - o.mean()) ** 2).sum()), o.size)
    return np.nan if value is None else value


def msess(pred: np.ndarray, obs: np.ndarray, clim: np.ndarray) -> float:
    """1 − MSE(pred)/MSE(clim) over all elements; NaN if climatology is exact."""
    p = _finite_float64("pred", pred)
    o = _finite_float64("obs", obs)
    c = _finite_float64("clim", clim)
    if not p.shape == o.shape == c.shape:
        raise ValueError(f"pred, obs and clim differ in shape: {p.shape}, {o.shape}, {c.shape}")
    value = _ratio_skill(float(((p - o) ** 2).sum()), float(((c - o) ** 2).sum()), o.size)
    return np.nan if value is None else value


class SkillCaptured(NamedTuple):
    """Fraction of the skill available above climatology that a forecast captures."""

    value: float | None
    reason: str | None  # why value is None


def skill_captured(mse_clim: float, mse_model: float, mse_oracle: float) -> SkillCaptured:
    """(MSE_clim − MSE_model)/(MSE_clim − MSE_oracle); None with a reason if undefined.

    1 = the model matches the oracle, 0 = no better than climatology, < 0 = worse.
    Undefined when the oracle is not better than climatology (denominator ≤ 0).
    """
    values = (mse_clim, mse_model, mse_oracle)
    if not all(v is not None and np.isfinite(v) for v in values):
        return SkillCaptured(None, f"an MSE is missing or not finite: {values}")
    denominator = mse_clim - mse_oracle
    if denominator <= 0:
        return SkillCaptured(
            None,
            f"the oracle is not better than climatology (MSE {mse_oracle:.6g} ≥ {mse_clim:.6g}): "
            "no skill is available to capture",
        )
    return SkillCaptured(float((mse_clim - mse_model) / denominator), None)


def skill_captured_scores(model: dict, oracle: dict, climatology: dict) -> dict:
    """``skill_captured`` for every leaf of three ``score_forecasts`` results on the same samples.

    Returns the same nested layout with leaves ``{"value": float | None, "reason": str | None}``.
    """

    def leaf(m: dict, o: dict, c: dict) -> dict:
        mses = [None if d["rmse"] is None else d["rmse"] ** 2 for d in (c, m, o)]
        return skill_captured(*mses)._asdict()

    return {
        "overall": leaf(model["overall"], oracle["overall"], climatology["overall"]),
        "by_zone": {
            k: leaf(v, oracle["by_zone"][k], climatology["by_zone"][k])
            for k, v in model["by_zone"].items()
        },
        "by_lead": {
            k: leaf(v, oracle["by_lead"][k], climatology["by_lead"][k])
            for k, v in model["by_lead"].items()
        },
    }


def per_cell_maps(
    pred: np.ndarray, obs: np.ndarray, clim: np.ndarray, valid: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-cell scores over all (origin, lead) samples, for maps.

    Returns ``{"rmse": [lat, lon] mm/month, "msess": [lat, lon]}`` float64, NaN outside
    ``valid`` and MSESS NaN where climatology is exact.
    """
    shape = _check_arrays(pred=pred, obs=obs, clim=clim)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != shape[2:]:
        raise ValueError(f"valid mask shape {valid.shape} does not match the grid {shape[2:]}")
    stats = _accumulate(pred, obs, clim, valid)
    n = shape[0] * shape[1]
    mse = stats.sse.sum(axis=0) / n
    mse_clim = stats.sse_clim.sum(axis=0) / n
    defined = mse_clim > ZERO_VARIANCE_STD_MM**2

    rmse_map = np.full(shape[2:], np.nan)
    rmse_map[valid] = np.sqrt(mse)
    msess_map = np.full(shape[2:], np.nan)
    msess_map[valid] = np.where(defined, 1.0 - mse / np.where(defined, mse_clim, 1.0), np.nan)
    return {"rmse": rmse_map, "msess": msess_map}
