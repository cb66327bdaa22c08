"""Forecasts as one labelled dataset, scored by one function with zones as a group-by."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ames.evaluation.forecast_set import (
    MODEL,
    REFERENCE,
    TRUTH,
    forecast_names,
    forecast_set,
    member_name,
    zone_labels,
    zone_masks,
)
from ames.evaluation.metrics import score_dataset, score_forecasts
from ames.workflows.evaluate import evaluation_report, hindcast_dataset, maps_for
from ames.workflows.significance import forecast_error_sums

S, H, NLAT, NLON = 7, 3, 4, 5


def _zones() -> dict[str, np.ndarray]:
    high = np.zeros((NLAT, NLON), bool)
    high[:2, :3] = True
    low = np.zeros_like(high)
    low[2:] = True
    low[3, 4] = False  # outside the domain
    return {"high": high, "medium": np.zeros_like(high), "low": low}  # medium: no cell


def _set() -> tuple:
    rng = np.random.default_rng(3)
    clim = np.broadcast_to(rng.uniform(50, 200, (1, H, NLAT, NLON)), (S, H, NLAT, NLON))
    obs = clim * rng.lognormal(0, 0.3, clim.shape)
    obs[:, :, 3, 4] = np.nan  # outside every zone: ignored
    fields = {
        MODEL: clim + 0.5 * (obs - clim),
        member_name(1): clim + 0.4 * (obs - clim),
        "expert1": obs + rng.normal(0, 20, obs.shape),
        "expert2": obs + rng.normal(0, 30, obs.shape),
        REFERENCE: clim.copy(),
        "oracle": obs + rng.normal(0, 5, obs.shape),
        TRUTH: obs,
    }
    roles = {
        MODEL: "model",
        member_name(1): "member",
        "expert1": "expert",
        "expert2": "expert",
        REFERENCE: "baseline",
        "oracle": "oracle",
    }
    origins = pd.date_range("2001-01", periods=S, freq="MS")
    lat, lon = np.linspace(5.0, 5.15, NLAT), np.linspace(-73.0, -72.8, NLON)
    ds = forecast_set(fields, origins=origins, lat=lat, lon=lon, zones=_zones(), roles=roles)
    return ds, fields


def test_every_forecast_is_scored_as_score_forecasts_scores_it_alone():
    ds, fields = _set()
    scores = score_dataset(ds)
    assert list(scores) == [MODEL, member_name(1), "expert1", "expert2", REFERENCE, "oracle"]
    for name, result in scores.items():
        alone = score_forecasts(fields[name], fields[TRUTH], fields[REFERENCE], _zones())
        assert result == alone
    assert scores[REFERENCE]["overall"]["msess"] == 0.0


def test_zone_group_by_equals_scoring_each_zone_alone_and_keeps_empty_zones():
    ds, fields = _set()
    by_zone = score_dataset(ds, [MODEL])[MODEL]["by_zone"]
    assert list(by_zone) == ["high", "medium", "low"]
    assert by_zone["medium"]["n"] == 0 and by_zone["medium"]["msess"] is None
    for zone in ("high", "low"):
        only = {zone: _zones()[zone]}
        alone = score_forecasts(fields[MODEL], fields[TRUTH], fields[REFERENCE], only)
        assert by_zone[zone] == pytest.approx(alone["overall"])
    # brute force: MSESS over the low zone's samples
    low = _zones()["low"]
    err = ((fields[MODEL] - fields[TRUTH])[:, :, low] ** 2).sum()
    ref = ((fields[REFERENCE] - fields[TRUTH])[:, :, low] ** 2).sum()
    assert by_zone["low"]["msess"] == pytest.approx(1 - err / ref, rel=1e-12)


def test_roles_masks_and_labels():
    ds, _ = _set()
    assert forecast_names(ds, "expert") == ["expert1", "expert2"]
    assert TRUTH not in forecast_names(ds)
    masks = zone_masks(ds)
    assert list(masks) == ["high", "medium", "low"]
    for name, mask in _zones().items():
        np.testing.assert_array_equal(masks[name], mask)
    assert ds["zone"].values[3, 4] == ""


def test_bad_sets_are_refused():
    ds, fields = _set()
    zones = _zones()
    with pytest.raises(ValueError, match="overlap"):
        zone_labels(
            {"a": zones["high"], "b": zones["high"]}, ds.latitude.values, ds.longitude.values
        )
    with pytest.raises(ValueError, match=r"\[S, H, lat, lon\]"):
        forecast_set(
            {MODEL: fields[MODEL][:, :2], TRUTH: fields[TRUTH]},
            origins=ds.origin.values,
            lat=ds.latitude.values,
            lon=ds.longitude.values,
            zones=zones,
        )
    broken = ds.copy(deep=True)
    broken["expert2"][2, 1, 0, 0] = np.nan
    with pytest.raises(
        ValueError, match=r"expert2 has 1 non-finite.*lead 2.*origin 2.*lat=0 lon=0"
    ):
        score_dataset(broken)


def test_report_hindcast_maps_and_error_sums_come_from_the_set():
    ds, fields = _set()
    report = evaluation_report(ds, score_dataset(ds))
    assert list(report["experts"]) == ["expert1", "expert2"]
    assert list(report["baselines"]) == [REFERENCE]
    assert report["skill_captured"]["overall"] == pytest.approx(
        (
            report["baselines"][REFERENCE]["overall"]["rmse"] ** 2
            - report["model"]["overall"]["rmse"] ** 2
        )
        / (
            report["baselines"][REFERENCE]["overall"]["rmse"] ** 2
            - report["oracle"]["overall"]["rmse"] ** 2
        )
    )
    hindcast = hindcast_dataset(ds, {"split": "test"})
    assert set(hindcast.data_vars) == {"precip", "observed", "climatology", "expert_spread"}
    assert np.isnan(hindcast["precip"].values[:, :, 3, 4]).all()
    spread = np.stack([fields["expert1"], fields["expert2"]], axis=1).std(axis=1)
    np.testing.assert_allclose(hindcast["expert_spread"].values[:, :, 0, 0], spread[:, :, 0, 0])
    maps = maps_for(ds)
    assert np.isnan(maps["rmse"][3, 4]) and np.isfinite(maps["rmse"][0, 0])
    sums = forecast_error_sums(ds)
    assert list(sums["forecast"].values) == forecast_names(ds)
    assert list(sums["role"].values)[:2] == ["model", "member"]
