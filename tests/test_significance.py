"""Error sums, the significance report and the ablation comparison on small synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ames.config import BootstrapConfig
from ames.evaluation.error_sums import (
    error_sums,
    merge_error_sums,
    read_error_sums,
    scores,
    select_totals,
    write_error_sums,
)
from ames.evaluation.metrics import score_forecasts
from ames.workflows.significance import (
    ablation_significance,
    references,
    significance_report,
)

S, H, NLAT, NLON = 40, 12, 5, 6
CFG = BootstrapConfig(block_months=12, n_boot=300, level=0.9, seed=1)


def _zones() -> dict[str, np.ndarray]:
    valid = np.ones((NLAT, NLON), bool)
    valid[0, 0] = False  # one cell outside the domain
    high = np.zeros_like(valid)
    high[:2] = True
    high &= valid
    low = valid & ~high
    low[4, 5] = False
    medium = np.zeros_like(valid)
    medium[4, 5] = True
    return {"high": high, "medium": medium, "low": low}


def _fields(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    clim = np.broadcast_to(rng.uniform(50, 250, (1, 1, NLAT, NLON)), (S, H, NLAT, NLON)).copy()
    obs = clim * rng.lognormal(0, 0.3, (S, H, NLAT, NLON))
    obs[:, :, 0, 0] = np.nan
    good = clim + 0.4 * (obs - clim) + rng.normal(0, 10, obs.shape)
    return {
        "obs": obs,
        "climatology": clim,
        "good": good,
        "noisy": obs + rng.normal(0, 60, obs.shape),
    }


def _sums(fields: dict[str, np.ndarray], extra: dict[str, np.ndarray] | None = None):
    forecasts = {
        "ames": fields["good"],
        "climatology": fields["climatology"],
        "persistence": fields["noisy"],
        **(extra or {}),
    }
    roles = {"ames": "model", "expert1": "expert"}
    roles.update({name: "baseline" for name in forecasts if name not in roles})
    origins = pd.date_range("2010-01", periods=S, freq="MS")
    return error_sums(forecasts, roles, fields["obs"], _zones(), origins)


def test_scores_from_error_sums_equal_the_metric_code():
    fields = _fields()
    ds = _sums(fields)
    expected = score_forecasts(fields["good"], fields["obs"], fields["climatology"], _zones())
    overall = scores(select_totals(ds), "ames")
    for key in ("msess", "rmse", "pooled_r2"):
        assert float(overall[key]) == pytest.approx(expected["overall"][key], rel=1e-9)
    high = scores(select_totals(ds, zones=["high"]), "ames")
    assert float(high["msess"]) == pytest.approx(expected["by_zone"]["high"]["msess"], rel=1e-9)
    lead3 = scores(select_totals(ds, leads=[3]), "ames")
    assert float(lead3["pooled_r2"]) == pytest.approx(
        expected["by_lead"]["3"]["pooled_r2"], rel=1e-9
    )


def test_error_sums_survive_a_netcdf_round_trip_in_float64(tmp_path):
    ds = _sums(_fields())
    back = read_error_sums(write_error_sums(ds, tmp_path / "errors.nc"))
    assert back["sse"].dtype == np.float64
    np.testing.assert_array_equal(back["sse"].values, ds["sse"].values)
    assert list(back["role"].values) == list(ds["role"].values)


def test_a_nan_forecast_inside_the_domain_is_an_error():
    fields = _fields()
    fields["good"][3, 2, 2, 2] = np.nan
    with pytest.raises(ValueError, match="ames: non-finite"):
        _sums(fields)


def test_report_identical_forecast_is_not_significant_and_a_better_one_is():
    fields = _fields()
    ds = _sums(fields, {"copy_of_ames": fields["good"].copy(), "ridge": fields["good"] * 1.0})
    report = significance_report(ds, CFG)
    vs = report["headline"]["vs"]
    same = vs["copy_of_ames"]
    assert same["delta_msess"] == 0.0 and same["delta_msess_lo"] == 0.0
    assert same["delta_msess_hi"] == 0.0
    assert same["significant"] is False and same["dm_p"] == 1.0
    better = vs["persistence"]  # AMES (good) vs a much noisier forecast
    assert better["significant"] is True and better["delta_msess_lo"] > 0
    assert better["dm_p"] < 0.1
    ames = report["headline"]["ames"]
    assert ames["msess_lo"] <= ames["msess"] <= ames["msess_hi"]
    assert 0 <= report["headline"]["horizon"]["overall"] <= H
    assert set(report["headline"]["horizon"]) == {"overall", "high", "medium", "low"}


def test_a_new_baseline_is_compared_and_banded_automatically():
    fields = _fields()
    ds = _sums(fields, {"ridge": fields["good"] * 0.95, "expert1": fields["noisy"]})
    assert references(ds) == ["climatology", "persistence", "ridge", "expert1"]
    report = significance_report(ds, CFG)
    assert "ridge" in report["headline"]["vs"]
    assert "expert1" not in report["headline"]["vs"]  # experts: in the detail only
    assert "expert1" in report["detail"]["ames_vs"]
    assert {"lead", "ames", "ames_lo", "ames_hi", "ridge_lo"} <= set(report["band"][0])
    assert len(report["band"]) == H
    # climatology vs itself: MSESS exactly 0 with a degenerate interval
    clim = report["detail"]["scores"]["climatology"]["overall"]
    assert clim["msess"] == clim["msess_lo"] == clim["msess_hi"] == 0.0


def test_ablation_is_paired_with_the_full_model_of_its_seed():
    fields = _fields()
    main = _sums(fields, {"ames_seed42": fields["good"]})
    origins = main["origin"].values
    ablation = error_sums(
        {"equal": fields["good"] - 10.0}, {"equal": "ablation"}, fields["obs"], _zones(), origins
    )
    merged = merge_error_sums(main, ablation)
    rows = ablation_significance(merged, "ames_seed42", ["equal"], CFG)
    assert rows["equal"]["delta_msess"] < 0  # a biased copy is worse
    assert {"delta_pooled_r2_lo", "delta_rmse_hi", "significant", "dm_p", "n_eff"} <= set(
        rows["equal"]
    )
    other_obs = fields["obs"] * 1.01
    foreign = error_sums({"x": fields["good"]}, {"x": "ablation"}, other_obs, _zones(), origins)
    with pytest.raises(ValueError, match="different observations"):
        merge_error_sums(main, foreign)
