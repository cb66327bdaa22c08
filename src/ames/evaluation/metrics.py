"""Forecast scores in mm/month, one implementation for the model, experts, baselines and oracle.

The forecasts are one ``xarray.Dataset`` (``ames.evaluation.forecast_set``): every forecast,
the observations and the climatology reference are variables over (origin, lead, latitude,
longitude) and the grid carries a ``zone`` label ("" outside the domain). ``score_dataset``
scores each forecast on the labelled cells only (SPEC §3), from per-(lead, cell) sufficient
statistics accumulated in float64; overall, per-zone (a group-by over ``zone``) and per-lead
numbers are exact sub-aggregations of the same sums. ``score_forecasts`` is the same code
for three plain arrays and a dict of zone masks.

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

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import xarray as xr

from ames.evaluation.forecast_set import (
    DIMS,
    NO_ZONE,
    REFERENCE,
    TRUTH,
    forecast_names,
    forecast_set,
    zone_order,
)

# Observed standard deviations below this (mm/month) count as zero variance.
ZERO_VARIANCE_STD_MM = 1e-6

LEAF_KEYS = ("pooled_r2", "percell_r2", "rmse", "mae", "msess", "n")


# --------------------------------------------------------------------------------------
# the labelled cells and their sufficient statistics


def _labelled_cells(ds: xr.Dataset) -> xr.Dataset:
    """The dataset on its labelled cells only: (latitude, longitude) flattened row-major to
    ``cell``, each cell keeping its grid position (``lat_index``, ``lon_index``). One copy
    of each variable (a fancy index), not xarray's stack-then-select two: on a large
    domain the scoring's memory is these copies."""
    zone = ds["zone"].transpose("latitude", "longitude").values.reshape(-1)
    labelled = np.flatnonzero(zone != NO_ZONE)
    n_lon = ds.sizes["longitude"]
    fields = {}
    for name, variable in ds.data_vars.items():
        if set(variable.dims) != set(DIMS):
            raise ValueError(f"{name}: expected dims {DIMS}, got {variable.dims}")
        values = variable.transpose(*DIMS).values
        flat = values.reshape(*values.shape[:2], -1)[..., labelled]
        fields[name] = (("origin", "lead", "cell"), flat, variable.attrs)
    coords = {
        "origin": ds["origin"].values,
        "lead": ds["lead"].values,
        "zone": ("cell", zone[labelled]),
        "lat_index": ("cell", labelled // n_lon),
        "lon_index": ("cell", labelled % n_lon),
    }
    return xr.Dataset(fields, coords=coords)


def _finite_values(cells: xr.Dataset, name: str, *, is_truth: bool = False) -> xr.DataArray:
    """One variable on the labelled cells as float64; raises on a non-finite value."""
    values = cells[name].transpose("origin", "lead", "cell").astype(np.float64)
    bad = ~np.isfinite(values.values)
    if bad.any():
        s, h, k = (int(i[0]) for i in np.nonzero(bad))
        why = (
            "observations must be complete on the valid cells"
            if is_truth
            else "a NaN forecast is a bug upstream and is never dropped silently"
        )
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite values on valid cells at lead "
            f"{int(cells['lead'].values[h])} (first at origin {s}, cell "
            f"lat={int(cells['lat_index'].values[k])} lon={int(cells['lon_index'].values[k])}); "
            f"{why}"
        )
    return values


def _observation_stats(obs: xr.DataArray, reference: xr.DataArray) -> xr.Dataset:
    """Sums over origins of the observations and of the reference's squared error."""
    obs_mean = obs.mean("origin")
    return xr.Dataset(
        {
            "obs_mean": obs_mean,
            "obs_m2": ((obs - obs_mean) ** 2).sum("origin"),  # squared deviations from the mean
            "sse_ref": ((reference - obs) ** 2).sum("origin"),
        }
    )


def _forecast_stats(pred: xr.DataArray, obs: xr.DataArray, obs_stats: xr.Dataset) -> xr.Dataset:
    """Per-(lead, cell) sums over origins of one forecast, with the observation sums."""
    error = pred - obs
    return obs_stats.assign(sse=(error**2).sum("origin"), sae=abs(error).sum("origin"))


def _sst(stats: xr.Dataset, n_origins: int, dim: str | None) -> xr.DataArray:
    """Sum of squares about the mean of the (lead, cell) groups in ``stats``, combined exactly.

    Every group holds ``n_origins`` samples, so the subset mean is the mean of group means and
    SST = Σ M2_group + n_origins · Σ (mean_group − subset mean)².
    """
    means = stats["obs_mean"]
    return stats["obs_m2"].sum(dim) + n_origins * ((means - means.mean(dim)) ** 2).sum(dim)


def _ratio_skill(num: float, den: float, n: int) -> float | None:
    """``1 − num/den`` or None when the denominator is (numerically) zero."""
    if den <= n * ZERO_VARIANCE_STD_MM**2:
        return None
    return float(1.0 - num / den)


def _leaf(stats: xr.Dataset, n_origins: int) -> dict:
    n = n_origins * stats.sizes["lead"] * stats.sizes["cell"]
    if n == 0:
        return {key: (0 if key == "n" else None) for key in LEAF_KEYS}
    sse = float(stats["sse"].sum())
    cell_sse = stats["sse"].sum("lead").values
    cell_sst = _sst(stats, n_origins, "lead").values
    n_per_cell = n_origins * stats.sizes["lead"]
    has_variance = cell_sst > n_per_cell * ZERO_VARIANCE_STD_MM**2
    percell = (
        float(np.mean(1.0 - cell_sse[has_variance] / cell_sst[has_variance]))
        if has_variance.any()
        else None
    )
    return {
        "pooled_r2": _ratio_skill(sse, float(_sst(stats, n_origins, None)), n),
        "percell_r2": percell,
        "rmse": float(np.sqrt(sse / n)),
        "mae": float(stats["sae"].sum() / n),
        "msess": _ratio_skill(sse, float(stats["sse_ref"].sum()), n),
        "n": int(n),
    }


def _report(stats: xr.Dataset, n_origins: int, zones: Sequence[str]) -> dict:
    by_zone = {str(name): group for name, group in stats.groupby("zone")}
    empty = stats.isel(cell=slice(0, 0))
    return {
        "overall": _leaf(stats, n_origins),
        "by_zone": {name: _leaf(by_zone.get(name, empty), n_origins) for name in zones},
        "by_lead": {
            str(int(lead)): _leaf(stats.isel(lead=[h]), n_origins)
            for h, lead in enumerate(stats["lead"].values)
        },
    }


# --------------------------------------------------------------------------------------
# public API


def score_dataset(
    forecasts: xr.Dataset,
    names: Sequence[str] | None = None,
    *,
    truth: str = TRUTH,
    reference: str = REFERENCE,
) -> dict[str, dict]:
    """Score every forecast of a forecast set overall, per zone and per lead.

    ``forecasts``: as from ``ames.evaluation.forecast_set.forecast_set``, with the
    observations (``truth``) and the MSESS reference (``reference``, the climatology) among
    its variables. ``names``: the forecasts to score (default: every variable but the
    observations). Cells with an empty ``zone`` label are ignored; a non-finite value on a
    labelled cell raises ``ValueError`` naming the variable.

    Returns name → ``{"overall": leaf, "by_zone": {zone: leaf}, "by_lead": {"1": leaf, ...}}``
    with leaf = ``{"pooled_r2", "percell_r2", "rmse", "mae", "msess", "n"}`` (None = undefined).
    """
    if not forecasts.sizes["origin"] or not forecasts.sizes["lead"]:
        raise ValueError(f"nothing to score: sizes {dict(forecasts.sizes)}")
    cells = _labelled_cells(forecasts)
    if not cells.sizes["cell"]:
        raise ValueError("the zone labels select no cell")
    obs = _finite_values(cells, truth, is_truth=True)
    obs_stats = _observation_stats(obs, _finite_values(cells, reference))
    n_origins = forecasts.sizes["origin"]
    zones = zone_order(forecasts)
    chosen = [n for n in forecast_names(forecasts) if n != truth] if names is None else names
    return {
        name: _report(
            _forecast_stats(_finite_values(cells, name), obs, obs_stats), n_origins, zones
        )
        for name in chosen
    }


def _arrays_as_set(zones: Mapping[str, np.ndarray], **arrays: np.ndarray) -> xr.Dataset:
    """``[S, H, lat, lon]`` arrays of one shape on index coordinates, as a forecast set."""
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    first = next(iter(shapes.values()))
    if len(first) != 4 or any(s != first for s in shapes.values()):
        raise ValueError(f"forecast arrays must share one [S, H, lat, lon] shape, got {shapes}")
    if first[0] == 0 or first[1] == 0:
        raise ValueError(f"nothing to score: shape {first} has no origin or no lead")
    return forecast_set(
        arrays,
        origins=np.arange(first[0]),
        lat=np.arange(first[2]),
        lon=np.arange(first[3]),
        zones=zones,
    )


def score_forecasts(
    pred_mm: np.ndarray,
    obs_mm: np.ndarray,
    clim_mm: np.ndarray,
    zones: Mapping[str, np.ndarray],
) -> dict:
    """``score_dataset`` for one forecast given as arrays.

    pred_mm, obs_mm, clim_mm: ``[S, H, lat, lon]`` mm/month (clim_mm is the climatology
    forecast for the same samples, the MSESS reference). zones: name → bool ``[lat, lon]``,
    disjoint; their union is the set of valid cells. Values outside it are ignored; a
    non-finite obs, pred or clim value inside it raises ``ValueError`` naming it.
    """
    ds = _arrays_as_set(zones, pred=pred_mm, obs=obs_mm, clim=clim_mm)
    return score_dataset(ds, ["pred"], truth="obs", reference="clim")["pred"]


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
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != np.shape(obs)[2:]:
        raise ValueError(
            f"valid mask shape {valid.shape} does not match the grid {np.shape(obs)[2:]}"
        )
    ds = _arrays_as_set({"valid": valid}, pred=pred, obs=obs, clim=clim)
    cells = _labelled_cells(ds)
    obs_values = _finite_values(cells, "obs", is_truth=True)
    stats = _forecast_stats(
        _finite_values(cells, "pred"),
        obs_values,
        _observation_stats(obs_values, _finite_values(cells, "clim")),
    )
    n = ds.sizes["origin"] * ds.sizes["lead"]
    mse = stats["sse"].sum("lead").values / n
    mse_clim = stats["sse_ref"].sum("lead").values / n
    defined = mse_clim > ZERO_VARIANCE_STD_MM**2

    rmse_map = np.full(valid.shape, np.nan)
    rmse_map[valid] = np.sqrt(mse)
    msess_map = np.full(valid.shape, np.nan)
    msess_map[valid] = np.where(defined, 1.0 - mse / np.where(defined, mse_clim, 1.0), np.nan)
    return {"rmse": rmse_map, "msess": msess_map}
