from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ames.climatology import training_month_mask
from ames.data.dataset import load_grid_data
from ames.masks import (
    GraphConfig,
    build_graph,
    context_features,
    make_split,
    slope_aspect,
    training_statistics,
    zone_masks,
)

TEST, VAL = 30, 24


def _bundle(ds, tmp_path):
    path = tmp_path / "ds.nc"
    ds.to_netcdf(path)
    data = load_grid_data(path)
    context = context_features(data.elevation, data.lat, data.lon, data.valid)
    stats = training_statistics(data.precip, data.months, data.valid, context, TEST, VAL)
    train = training_month_mask(len(data.times), TEST, VAL)
    anom = data.precip[train] - stats["clim_mean"][data.months[train]]
    cfg = GraphConfig(k_spatial=4, max_neighbors=6, corr_min=0.3, corr_radius_km=30, elev_tol_m=800)
    graph = build_graph(data.valid, data.elevation, data.lat, data.lon, anom, cfg)
    split = make_split(data.times, 6, 12, TEST, VAL)
    return data, stats, graph, split


def test_zones_disjoint_and_cover_valid_cells(small_dataset, tmp_path):
    data, *_ = _bundle(small_dataset, tmp_path)
    zones = zone_masks(data.elevation, data.valid, 3000, 2000)
    stacked = np.stack(list(zones.values())).astype(int)
    assert (stacked.sum(axis=0) == data.valid.astype(int)).all()
    assert all(z.any() for z in zones.values())
    assert (data.elevation[zones["high"]] > 3000).all()
    assert (data.elevation[zones["low"]] < 2000).all()


def test_zone_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="low_max_m"):
        zone_masks(np.zeros((2, 2)), np.ones((2, 2), bool), 2000, 3000)


def test_slope_and_aspect_of_an_east_facing_plane():
    lat = np.linspace(5.0, 5.5, 11)
    lon = np.linspace(-73.0, -72.5, 11)
    # Elevation falls eastwards by 100 m per 0.05° of longitude (~5.5 km at 5°N).
    elevation = np.tile(1000.0 - 2000.0 * (lon - lon[0]), (lat.size, 1))
    slope, aspect = slope_aspect(elevation, lat, lon)
    dx_m = np.deg2rad(0.05) * 6_371_000 * np.cos(np.deg2rad(lat))[:, None]
    expected = np.degrees(np.arctan(100.0 / dx_m))
    np.testing.assert_allclose(slope, np.broadcast_to(expected, slope.shape), rtol=1e-4)
    np.testing.assert_allclose(aspect, 90.0, atol=1e-3)


def test_context_features_layout(small_dataset, tmp_path):
    data, *_ = _bundle(small_dataset, tmp_path)
    ctx = context_features(data.elevation, data.lat, data.lon, data.valid)
    assert ctx.shape == (*data.valid.shape, 5)
    assert np.isnan(ctx[~data.valid]).all()
    assert np.isfinite(ctx[data.valid]).all()
    np.testing.assert_allclose(
        ctx[..., 3][data.valid], np.broadcast_to(data.lat[:, None], data.valid.shape)[data.valid]
    )


def test_graph_degree_and_weights(small_dataset, tmp_path):
    data, _, graph, _ = _bundle(small_dataset, tmp_path)
    n_nodes = int(data.valid.sum())
    assert graph["node_index"].size == n_nodes
    src, dst = graph["edge_index"]
    assert src.min() >= 0 and max(src.max(), dst.max()) < n_nodes
    assert (src != dst).all()
    degree = np.bincount(dst, minlength=n_nodes)
    assert degree.max() <= 6 and degree.min() >= 4
    assert (graph["edge_weight"] >= 0).all() and (graph["edge_weight"] <= 1).all()
    # no duplicate edges
    assert len(set(zip(src.tolist(), dst.tolist(), strict=True))) == src.size


def test_split_targets_do_not_overlap_and_respect_periods(small_dataset, tmp_path):
    data, _, _, split = _bundle(small_dataset, tmp_path)
    h, n_time = split["horizon"], split["n_time"]
    targets = {
        name: {t + lead for t in split[name] for lead in range(1, h + 1)}
        for name in ("train", "val", "test")
    }
    assert not targets["train"] & targets["val"]
    assert not targets["val"] & targets["test"]
    assert not targets["train"] & targets["test"]
    assert max(targets["train"]) < split["val_start"]
    assert min(targets["val"]) >= split["val_start"] and max(targets["val"]) < split["test_start"]
    assert min(targets["test"]) >= split["test_start"] and max(targets["test"]) == n_time - 1
    assert min(split["train"]) == split["input_window"] - 1
    assert len(split["test"]) == TEST - h + 1 and len(split["val"]) == VAL - h + 1


def test_test_period_changes_leave_graph_stats_and_split_unchanged(small_dataset, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, stats_a, graph_a, split_a = _bundle(small_dataset, tmp_path / "a")
    altered = small_dataset.copy(deep=True)
    rng = np.random.default_rng(5)
    test_slice = slice(len(altered.time) - TEST, None)
    block = altered["precip"][test_slice].values
    altered["precip"][test_slice] = np.where(
        np.isnan(block), np.nan, rng.gamma(2.0, 200.0, block.shape)
    ).astype(np.float32)
    _, stats_b, graph_b, split_b = _bundle(altered, tmp_path / "b")
    for key in stats_a:
        np.testing.assert_array_equal(stats_a[key], stats_b[key])
    for key in graph_a:
        np.testing.assert_array_equal(graph_a[key], graph_b[key])
    assert split_a == split_b


def test_split_rejects_a_series_too_short():
    times = pd.date_range("2000-01-01", periods=40, freq="MS")
    with pytest.raises(ValueError, match="no forecast origin"):
        make_split(times, 12, 12, 12, 12)
