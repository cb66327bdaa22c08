"""Static context, the cell graph, the split and training statistics (zones: ames.zones).

Only the static DEM decides zones and context. The split is by target month (SPEC §3), and
every statistic estimated from precipitation (normalisation, climatology, graph
correlations) reads training months only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ames.climatology import (
    MIN_STD_MM,
    anomalies,
    calendar_climatology,
    split_month_bounds,
    training_month_mask,
)
from ames.config import GraphConfig
from ames.zones import ZONES, zone_masks

__all__ = ["ZONES", "zone_masks"]  # re-exported: zones live in ames.zones

EARTH_RADIUS_M = 6_371_000.0


def slope_aspect(
    elevation: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Slope (degrees) and aspect (degrees clockwise from north, the way the slope faces).

    Gradients use metric spacing: a degree of longitude shrinks with cos(latitude).
    NaN elevations (outside the domain) are filled with the domain mean for the gradient.
    """
    z = np.where(np.isnan(elevation), np.nanmean(elevation), elevation).astype(np.float64)
    dy = np.deg2rad(np.gradient(lat)) * EARTH_RADIUS_M  # [lat]
    dx = np.deg2rad(np.gradient(lon))[None, :] * EARTH_RADIUS_M * np.cos(np.deg2rad(lat))[:, None]
    dz_dy = np.gradient(z, axis=0) / dy[:, None]
    dz_dx = np.gradient(z, axis=1) / dx
    slope = np.degrees(np.arctan(np.hypot(dz_dx, dz_dy)))
    # The slope faces down-gradient: east component -dz/dx, north component -dz/dy.
    aspect = (np.degrees(np.arctan2(-dz_dx, -dz_dy)) + 360.0) % 360.0
    return slope.astype(np.float32), aspect.astype(np.float32)


def context_features(
    elevation: np.ndarray, lat: np.ndarray, lon: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """``[lat, lon, 5]``: elevation, slope, aspect, latitude, longitude; NaN outside the domain."""
    slope, aspect = slope_aspect(elevation, lat, lon)
    lat2d, lon2d = np.meshgrid(lat, lon, indexing="ij")
    stack = np.stack([elevation, slope, aspect, lat2d, lon2d], axis=-1).astype(np.float32)
    return np.where(valid[..., None], stack, np.nan)


def _node_xy_km(lat: np.ndarray, lon: np.ndarray, node_index: np.ndarray) -> np.ndarray:
    """Equirectangular projection of node centres, in km (fine at regional scale)."""
    lat2d, lon2d = np.meshgrid(lat, lon, indexing="ij")
    la = np.deg2rad(lat2d.ravel()[node_index])
    lo = np.deg2rad(lon2d.ravel()[node_index])
    lat0 = np.deg2rad(np.mean(lat))
    r_km = EARTH_RADIUS_M / 1000.0
    return np.stack([r_km * lo * np.cos(lat0), r_km * la], axis=1)


def _standardised_columns(series: np.ndarray) -> np.ndarray:
    """Columns with zero mean and unit norm, so a dot product is a Pearson correlation."""
    centred = series - series.mean(axis=0, keepdims=True)
    norm = np.linalg.norm(centred, axis=0, keepdims=True)
    return centred / np.where(norm > 0, norm, np.inf)


def build_graph(
    valid: np.ndarray,
    elevation: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    train_anomalies: np.ndarray,
    cfg: GraphConfig,
) -> dict[str, np.ndarray]:
    """k nearest spatial neighbours plus high-correlation, similar-elevation neighbours.

    ``train_anomalies``: ``[T_train, lat, lon]`` anomalies of training months only.
    Each node receives at most ``cfg.max_neighbors`` incoming edges. Spatial edges weigh
    ``exp(-d / length_scale)``, correlation edges their correlation; both lie in [0, 1].
    """
    if cfg.k_spatial > cfg.max_neighbors:
        raise ValueError("graph.k_spatial cannot exceed graph.max_neighbors")
    node_index = np.flatnonzero(valid.ravel())
    n_nodes = node_index.size
    xy = _node_xy_km(lat, lon, node_index)
    tree = cKDTree(xy)
    k = min(cfg.k_spatial + 1, n_nodes)
    dist, nbr = tree.query(xy, k=k)
    dist, nbr = np.atleast_2d(dist)[:, 1:], np.atleast_2d(nbr)[:, 1:]

    z_nodes = elevation.ravel()[node_index]
    series = _standardised_columns(
        train_anomalies.reshape(train_anomalies.shape[0], -1)[:, node_index].astype(np.float64)
    )
    candidates = tree.query_ball_point(xy, r=cfg.corr_radius_km)
    n_corr = cfg.max_neighbors - (k - 1)

    src, dst, weight = [], [], []
    for node in range(n_nodes):
        spatial = set(nbr[node].tolist())
        for j, d in zip(nbr[node], dist[node], strict=True):
            src.append(j)
            dst.append(node)
            weight.append(np.exp(-d / cfg.length_scale_km))
        if n_corr <= 0:
            continue
        cand = np.array([c for c in candidates[node] if c != node and c not in spatial], dtype=int)
        if cand.size == 0:
            continue
        cand = cand[np.abs(z_nodes[cand] - z_nodes[node]) <= cfg.elev_tol_m]
        corr = series[:, cand].T @ series[:, node]
        keep = corr >= cfg.corr_min
        cand, corr = cand[keep], corr[keep]
        order = np.argsort(-corr, kind="stable")[:n_corr]
        src.extend(cand[order].tolist())
        dst.extend([node] * order.size)
        weight.extend(np.clip(corr[order], 0.0, 1.0).tolist())

    return {
        "node_index": node_index.astype(np.int64),
        "edge_index": np.array([src, dst], dtype=np.int64).reshape(2, -1),
        "edge_weight": np.asarray(weight, dtype=np.float32),
    }


def make_split(
    times: pd.DatetimeIndex, window: int, horizon: int, test_months: int, val_months: int
) -> dict[str, object]:
    """Forecast origins per split; an origin belongs to a split iff all its targets do."""
    n_time = len(times)
    val_start, test_start = split_month_bounds(n_time, test_months, val_months)
    origins = np.arange(window - 1, n_time - horizon)
    first_target, last_target = origins + 1, origins + horizon
    in_train = last_target < val_start
    in_val = (first_target >= val_start) & (last_target < test_start)
    in_test = first_target >= test_start
    split: dict[str, object] = {
        "input_window": int(window),
        "horizon": int(horizon),
        "n_time": int(n_time),
        "val_start": int(val_start),
        "test_start": int(test_start),
        "train_months": [str(times[0].date()), str(times[val_start - 1].date())],
        "val_months": [str(times[val_start].date()), str(times[test_start - 1].date())],
        "test_months": [str(times[test_start].date()), str(times[-1].date())],
    }
    for name, sel in (("train", in_train), ("val", in_val), ("test", in_test)):
        chosen = origins[sel]
        if chosen.size == 0:
            raise ValueError(
                f"the {name} split has no forecast origin with window {window} and horizon "
                f"{horizon}; provide more months or shorten features.input_window"
            )
        split[name] = chosen.tolist()
        split[f"{name}_origin_dates"] = [str(times[i].date()) for i in (chosen[0], chosen[-1])]
    return split


def training_statistics(
    precip: np.ndarray,
    months: np.ndarray,
    valid: np.ndarray,
    context: np.ndarray,
    test_months: int,
    val_months: int,
    min_std_mm: float = MIN_STD_MM,
) -> dict[str, np.ndarray]:
    """Normalisation statistics and climatology from training months only."""
    train = training_month_mask(precip.shape[0], test_months, val_months)
    clim_mean, clim_std = calendar_climatology(precip, months, train, min_std=min_std_mm)
    train_precip = precip[train][:, valid]
    train_anom = anomalies(precip[train], np.asarray(months)[train], clim_mean)[:, valid]
    ctx = context[valid]
    ctx_std = ctx.std(axis=0)
    return {
        "clim_mean": clim_mean,
        "clim_std": clim_std,
        "anom_std": np.float32(train_anom.std()),
        "precip_mean": np.float32(train_precip.mean()),
        "precip_std": np.float32(train_precip.std()),
        "context_mean": ctx.mean(axis=0).astype(np.float32),
        "context_std": np.where(ctx_std > 0, ctx_std, 1.0).astype(np.float32),
    }
