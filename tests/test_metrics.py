"""Scores against hand-computed values and a brute-force reference; plot helpers smoke-tested."""

from __future__ import annotations

import numpy as np
import pytest

from ames.evaluation.metrics import (
    msess,
    per_cell_maps,
    pooled_r2,
    score_forecasts,
    skill_captured,
    skill_captured_scores,
)
from ames.plotting.evaluation import (
    plot_ablation_bars,
    plot_maps,
    plot_obs_vs_forecast_by_zone,
    plot_skill_by_lead,
    skill_by_lead_table,
)


def tiny_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """S=2 origins, H=1 lead, grid 1×3: cells 0 and 1 valid, cell 2 outside (garbage there).

    obs   cell0 [1, 3]  cell1 [5, 9]
    pred  cell0 [2, 2]  cell1 [6, 8]   errors ±1 everywhere
    clim  cell0 [2, 2]  cell1 [7, 7]
    """
    obs = np.array([[[[1.0, 5.0, np.nan]]], [[[3.0, 9.0, np.nan]]]])
    pred = np.array([[[[2.0, 6.0, np.inf]]], [[[2.0, 8.0, np.nan]]]])
    clim = np.array([[[[2.0, 7.0, np.nan]]], [[[2.0, 7.0, -5.0]]]])
    zones = {"a": np.array([[True, False, False]]), "b": np.array([[False, True, False]])}
    return pred, obs, clim, zones


def test_hand_computed_overall_ignores_cells_outside_zones():
    pred, obs, clim, zones = tiny_case()
    overall = score_forecasts(pred, obs, clim, zones)["overall"]
    # pooled mean 4.5, SST = 12.25 + 2.25 + 0.25 + 20.25 = 35, SSE = 4
    assert overall["pooled_r2"] == pytest.approx(1 - 4 / 35)
    # cell0: SST 2, SSE 2 -> 0; cell1: SST 8, SSE 2 -> 0.75
    assert overall["percell_r2"] == pytest.approx(0.375)
    assert overall["rmse"] == pytest.approx(1.0)
    assert overall["mae"] == pytest.approx(1.0)
    # SSE_clim = (1 + 1) + (4 + 4) = 10
    assert overall["msess"] == pytest.approx(1 - 4 / 10)
    assert overall["n"] == 4


def test_hand_computed_by_zone_and_by_lead():
    pred, obs, clim, zones = tiny_case()
    scores = score_forecasts(pred, obs, clim, zones)
    a, b = scores["by_zone"]["a"], scores["by_zone"]["b"]
    assert (a["pooled_r2"], a["percell_r2"], a["msess"], a["n"]) == pytest.approx((0, 0, 0, 2))
    assert (b["pooled_r2"], b["percell_r2"], b["msess"], b["n"]) == pytest.approx(
        (0.75, 0.75, 0.75, 2)
    )
    assert list(scores["by_lead"]) == ["1"]
    assert scores["by_lead"]["1"] == pytest.approx(scores["overall"])


def test_pooled_exceeds_percell_when_cells_differ_in_mean():
    # Each cell is forecast by its own mean: no skill within a cell, but the forecast
    # explains all the between-cell variance that pooled R² rewards.
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(40, 2, 1, 2)) + np.array([0.0, 100.0])
    pred = np.broadcast_to(obs.mean(axis=(0, 1), keepdims=True), obs.shape)
    zones = {"all": np.ones((1, 2), dtype=bool)}
    overall = score_forecasts(pred, obs, pred, zones)["overall"]
    assert overall["percell_r2"] == pytest.approx(0.0, abs=1e-12)
    assert overall["pooled_r2"] > 0.99


def brute_force_leaf(pred, obs, clim, cells, leads):
    p, o, c = (a[:, leads][:, :, cells] for a in (pred, obs, clim))  # [S, L, N]
    sse = ((p - o) ** 2).sum()
    cell_r2 = [
        1 - ((p[..., k] - o[..., k]) ** 2).sum() / ((o[..., k] - o[..., k].mean()) ** 2).sum()
        for k in range(o.shape[-1])
    ]
    return {
        "pooled_r2": 1 - sse / ((o - o.mean()) ** 2).sum(),
        "percell_r2": np.mean(cell_r2),
        "rmse": np.sqrt(sse / o.size),
        "mae": np.abs(p - o).mean(),
        "msess": 1 - sse / ((c - o) ** 2).sum(),
        "n": o.size,
    }


def test_every_leaf_matches_brute_force():
    rng = np.random.default_rng(1)
    shape = (7, 3, 4, 5)
    obs = rng.gamma(2.0, 50.0, size=shape) + np.linspace(0, 300, 20).reshape(4, 5)
    pred = obs + rng.normal(0, 30, size=shape)
    clim = obs.mean(axis=0, keepdims=True) + rng.normal(0, 40, size=shape)
    labels = rng.integers(0, 4, size=(4, 5))  # label 3 = outside the domain
    obs[:, :, labels == 3] = np.nan
    zones = {name: labels == i for i, name in enumerate(["high", "medium", "low"])}
    valid = labels < 3
    scores = score_forecasts(pred, obs, clim, zones)

    all_leads = np.arange(3)
    expected = {"overall": brute_force_leaf(pred, obs, clim, valid, all_leads)}
    for name, mask in zones.items():
        expected[name] = brute_force_leaf(pred, obs, clim, mask, all_leads)
    for h in range(3):
        expected[str(h + 1)] = brute_force_leaf(pred, obs, clim, valid, np.array([h]))

    assert scores["overall"] == pytest.approx(expected["overall"], rel=1e-10)
    for name in zones:
        assert scores["by_zone"][name] == pytest.approx(expected[name], rel=1e-10)
    for lead in ("1", "2", "3"):
        assert scores["by_lead"][lead] == pytest.approx(expected[lead], rel=1e-10)


def test_climatology_scores_zero_msess_and_perfect_forecast_one():
    pred, obs, clim, zones = tiny_case()
    assert score_forecasts(clim, obs, clim, zones)["overall"]["msess"] == 0.0
    perfect = score_forecasts(obs, obs, clim, zones)["overall"]
    assert perfect["msess"] == 1.0
    assert perfect["pooled_r2"] == 1.0
    assert perfect["percell_r2"] == 1.0
    assert perfect["rmse"] == 0.0


def test_zero_variance_cell_is_left_out_of_percell_mean():
    pred, obs, clim, zones = tiny_case()
    obs[:, :, 0, 0] = 4.0  # constant in cell 0: its R² is undefined
    scores = score_forecasts(pred, obs, clim, zones)
    assert scores["overall"]["percell_r2"] == pytest.approx(0.75)  # cell 1 only
    assert scores["by_zone"]["a"]["percell_r2"] is None
    assert scores["by_zone"]["a"]["pooled_r2"] is None
    assert scores["by_zone"]["a"]["rmse"] == pytest.approx(2.0)  # errors -2, -2


@pytest.mark.parametrize("name", ["obs", "pred", "clim"])
def test_nan_inside_valid_cells_raises(name):
    pred, obs, clim, zones = tiny_case()
    arrays = {"pred": pred, "obs": obs, "clim": clim}
    arrays[name][1, 0, 0, 1] = np.nan
    with pytest.raises(ValueError, match=rf"{name} has 1 non-finite.*origin 1.*lat=0 lon=1"):
        score_forecasts(arrays["pred"], arrays["obs"], arrays["clim"], zones)


def test_overlapping_zones_and_bad_shapes_raise():
    pred, obs, clim, zones = tiny_case()
    with pytest.raises(ValueError, match="overlap"):
        score_forecasts(pred, obs, clim, {"a": zones["a"], "both": zones["a"] | zones["b"]})
    with pytest.raises(ValueError, match="shape"):
        score_forecasts(pred[:1], obs, clim, zones)
    with pytest.raises(ValueError, match="bool mask"):
        score_forecasts(pred, obs, clim, {"a": np.ones((2, 2), dtype=bool)})


def test_empty_zone_reports_no_samples():
    pred, obs, clim, zones = tiny_case()
    zones["high"] = np.zeros((1, 3), dtype=bool)
    leaf = score_forecasts(pred, obs, clim, zones)["by_zone"]["high"]
    assert leaf["n"] == 0 and leaf["pooled_r2"] is None and leaf["rmse"] is None


def test_scalar_pooled_r2_and_msess():
    obs = np.array([1.0, 3.0, 5.0, 9.0])
    pred = np.array([2.0, 2.0, 6.0, 8.0])
    clim = np.array([2.0, 2.0, 7.0, 7.0])
    assert pooled_r2(pred, obs) == pytest.approx(1 - 4 / 35)
    assert msess(pred, obs, clim) == pytest.approx(0.6)
    assert np.isnan(pooled_r2(pred, np.full(4, 3.0)))
    assert np.isnan(msess(pred, obs, obs))
    with pytest.raises(ValueError, match="non-finite"):
        pooled_r2(pred, np.array([1.0, np.nan, 5.0, 9.0]))


def test_skill_captured_hand_example_and_guard():
    assert skill_captured(100.0, 80.0, 60.0) == (0.5, None)
    assert skill_captured(100.0, 60.0, 60.0).value == 1.0
    assert skill_captured(100.0, 120.0, 60.0).value == -0.5
    value, reason = skill_captured(100.0, 80.0, 100.0)
    assert value is None and "not better than climatology" in reason
    assert skill_captured(100.0, None, 60.0).value is None


def test_skill_captured_scores_follows_the_nested_layout():
    pred, obs, clim, zones = tiny_case()
    halfway = clim + 0.5 * (obs - clim)  # half the climatology error: MSE is a quarter
    scores = {
        name: score_forecasts(forecast, obs, clim, zones)
        for name, forecast in {"model": halfway, "oracle": obs, "clim": clim}.items()
    }
    captured = skill_captured_scores(scores["model"], scores["oracle"], scores["clim"])
    assert captured["overall"]["value"] == pytest.approx(0.75)
    assert captured["by_lead"]["1"]["value"] == pytest.approx(0.75)
    assert captured["by_zone"]["a"]["value"] == pytest.approx(0.75)


def test_per_cell_maps_hand_values():
    pred, obs, clim, zones = tiny_case()
    valid = zones["a"] | zones["b"]
    maps = per_cell_maps(pred, obs, clim, valid)
    np.testing.assert_allclose(maps["rmse"], [[1.0, 1.0, np.nan]])
    np.testing.assert_allclose(maps["msess"], [[0.0, 0.75, np.nan]])
    obs[0, 0, 0, 2] = 1.0  # a finite value outside the mask changes nothing
    np.testing.assert_allclose(per_cell_maps(pred, obs, clim, valid)["rmse"], maps["rmse"])


# ----------------------------------------------------------------------------------------
# reporting helpers (ames.plotting.evaluation)


def two_lead_results() -> dict[str, dict]:
    rng = np.random.default_rng(2)
    obs = rng.gamma(2.0, 50.0, size=(6, 2, 3, 4))
    clim = np.broadcast_to(obs.mean(axis=0), obs.shape)
    zones = {"high": np.zeros((3, 4), dtype=bool), "low": np.ones((3, 4), dtype=bool)}
    zones["high"][0] = True
    zones["low"][0] = False
    return {
        "model": score_forecasts(obs + rng.normal(0, 10, obs.shape), obs, clim, zones),
        "climatology": score_forecasts(clim, obs, clim, zones),
    }


def test_skill_by_lead_table_rows():
    results = two_lead_results()
    rows = skill_by_lead_table(results, "rmse")
    assert [row["lead"] for row in rows] == [1, 2]
    assert set(rows[0]) == {"lead", "model", "climatology"}
    assert rows[1]["model"] == results["model"]["by_lead"]["2"]["rmse"]


def test_plots_write_png_files(tmp_path):
    results = two_lead_results()
    lat, lon = np.linspace(4.4, 4.5, 3), np.linspace(-74.9, -74.75, 4)
    maps = {"rmse": np.arange(12.0).reshape(3, 4), "msess": np.linspace(-2, 0.5, 12).reshape(3, 4)}
    maps["msess"][0, 0] = np.nan
    obs = np.random.default_rng(3).gamma(2.0, 50.0, size=(4, 2, 3, 4))
    zones = {"high": np.eye(3, 4, dtype=bool), "low": ~np.eye(3, 4, dtype=bool)}
    paths = [
        plot_skill_by_lead(results, "msess", tmp_path / "skill.png"),
        plot_maps(maps, lat, lon, tmp_path / "maps" / "maps.png", titles={"rmse": "Test RMSE"}),
        plot_obs_vs_forecast_by_zone(obs * 1.1, obs, zones, tmp_path / "scatter.png", 5),
        plot_ablation_bars(
            {"no_meta": {"delta_pooled_r2": -0.02, "delta_rmse": 1.5}, "x": {"delta_rmse": None}},
            tmp_path / "ablation.png",
        ),
    ]
    for path in paths:
        assert path.read_bytes().startswith(b"\x89PNG")
