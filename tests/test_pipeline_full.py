"""End-to-end: the whole `dvc repro` (ablations and inference included) on a tiny config."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import xarray as xr
import yaml
from pipeline_repo import copy_tiny_run, dvc, pipeline_env

pytestmark = pytest.mark.slow

ABLATIONS = {
    "no_physics_priors",
    "no_meta_learner",
    "single_expert",
    "no_physics_loss",
    "equal_weighting",
}


def _json(repo, rel):
    return json.loads((repo / rel).read_text())


def _check_probability_products(ds):
    assert list(ds["quantile"].values) == [0.1, 0.5, 0.9]
    assert list(ds["category"].values) == ["below_normal", "near_normal", "above_normal"]
    quantiles = ds["precip_quantile"].values
    valid = np.isfinite(quantiles)
    assert valid.any() and np.nanmin(quantiles) >= 0
    assert (np.diff(quantiles, axis=ds["precip_quantile"].dims.index("quantile")) >= 0)[
        np.isfinite(np.diff(quantiles, axis=ds["precip_quantile"].dims.index("quantile")))
    ].all()
    probs = ds["tercile_probability"]
    total = probs.sum("category", skipna=False).values
    np.testing.assert_allclose(total[np.isfinite(total)], 1.0, atol=1e-6)
    assert probs.attrs["units"] == "1" and ds["precip_quantile"].attrs["units"] == "mm/month"


def _numbers(tree) -> int:
    if isinstance(tree, dict):
        return sum(_numbers(v) for v in tree.values())
    return int(isinstance(tree, int | float) and not isinstance(tree, bool))


def _check_review_output(repo, test, significance):
    """`dvc metrics show` reads only the headline (<= 60 numbers); `dvc plots show` renders."""
    shown = json.loads(dvc(repo, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    assert set(files) == {"metrics/headline.json"}
    assert _numbers(files) <= 60
    headline = _json(repo, "metrics/headline.json")
    assert headline["ames"]["msess"] == test["model"]["overall"]["msess"]
    assert headline["ames"]["msess_lo"] == significance["ames"]["msess_lo"]
    assert headline["ridge"]["msess"] == test["baselines"]["ridge"]["overall"]["msess"]
    assert headline["time_s"]["total"] > 0
    dvc(repo, "plots", "show", "--out", "rendered")
    page = (repo / "rendered" / "index.html").read_text()
    assert "skill_by_zone.json" in page and "skill_by_lead_msess.png" in page


def _check_paper_profile_edit_keeps_the_run(repo):
    params_file = repo / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["profiles"]["paper"]["seeds"] = 7
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        assert "up to date" in dvc(repo, "status").stdout
    finally:
        params_file.write_text(original)


def test_whole_pipeline_on_a_tiny_config(tiny_run, tmp_path):
    repo = copy_tiny_run(tiny_run, tmp_path / "repo")

    for n in (1, 2, 3):
        expert = _json(repo, f"metrics/expert{n}.json")
        assert {"n_params", "best_epoch", "time_s"} <= set(expert)
        assert set(expert["val"]["by_zone"]) == {"high", "medium", "low"}
        assert {"rmse", "mae", "pooled_r2", "msess"} <= set(expert["val"]["in_zone"])
        assert (repo / f"metrics/live/expert{n}/metrics.json").exists()

    gating = _json(repo, "metrics/gating.json")
    assert 0 < gating["alpha"] < 1
    assert set(gating["routing_by_band"]) == {
        "gt3500",
        "3000_3500",
        "2500_3000",
        "2000_2500",
        "1500_2000",
        "lt1500",
    }
    finetune = _json(repo, "metrics/finetune.json")
    for key in (
        "alpha",
        "orographic_enhancement",
        "rain_shadow_suppression",
        "loss_at_best_epoch",
        "routing_by_band",
        "val",
        "n_params",
    ):
        assert key in finetune
    assert {"mse", "l_mass", "l_oro"} <= set(finetune["loss_at_best_epoch"])
    selection = _json(repo, "metrics/selection.json")["decisions"]
    experts = [_json(repo, f"metrics/expert{n}.json") for n in (1, 2, 3)]
    for stage in (*experts, gating, finetune):  # epochs decided by the folds, then trained
        folds = stage["epoch_selection"]
        assert folds["decided_on"] == "folds" and folds["kept"] == stage["best_epoch"]
        assert len(folds["cv_mse_by_fold_and_epoch"]) == len(folds["fold_windows"]) >= 2
    assert selection["finetune_epoch"]["decided_on"] == "folds"
    assert selection["expert2_epoch"]["decided_on"] == "folds"
    assert selection["calibration_climatology_weight"]["decided_on"] == "folds"
    for key in ("spread_scale", "tercile_weight", "climatology_weight"):  # every decision
        assert selection[f"calibration_{key}"]["decided_on"] == "folds"
    assert _json(repo, "metrics/selection.json")["decided_on_validation"] == 0
    on_folds = gating["climatology_blend"]["calibration"]
    calibration = _json(repo, "metrics/calibration.json")
    assert calibration["spread_scale"]["ames"] == pytest.approx(
        on_folds["spread_scale_by_lead"], abs=1e-4
    )
    assert calibration["tercile_weight"]["ames"] == pytest.approx(
        on_folds["tercile_weight_by_lead"], abs=1e-4
    )
    assert len(selection["published_forecast_by_lead"]["winner_by_lead"]) == 12
    assert (repo / "plots/selection/epochs_cv.png").stat().st_size > 0

    test = _json(repo, "metrics/test.json")
    assert set(test["baselines"]) == {
        "climatology",
        "seasonal_naive",
        "persistence",
        "damped_persistence",
        "ridge",
    }
    assert set(test["experts"]) == {"expert1", "expert2", "expert3"}
    assert len(test["model"]["by_lead"]) == 12
    assert abs(test["baselines"]["climatology"]["overall"]["msess"]) < 1e-9
    selection = test["ridge_selection"]
    candidates = selection["cv_mse_by_candidate"]
    assert len(candidates) == 20 and "climatology" in candidates
    for lead, penalty in enumerate(selection["penalty_by_lead"]):
        name = "climatology" if penalty is None else f"{penalty:.0e}"
        assert candidates[name][lead] == selection["cv_mse_by_lead"][lead]
        gain = selection["cv_gain_over_climatology_by_lead"][lead]
        confirmed = gain > selection["skill_margin_se"] * selection["cv_gain_se_by_lead"][lead]
        assert (penalty is not None) == confirmed, (lead, penalty, gain)
    assert "oracle" in test and "overall" in test["skill_captured"]
    for section in ("overall", "by_zone", "by_lead"):
        assert section in test["model"]

    seeds = test["seeds"]
    assert seeds["n"] == 2 and set(seeds["by_seed"]) == {"42", "43"}
    assert seeds["mean_sd"]["msess"]["sd"] is not None
    assert (repo / "models/members/seed43/ames_final_best.pt").exists()
    assert set(_json(repo, "metrics/seed_members.json")["members"]) == {"43"}

    significance = _json(repo, "metrics/significance.json")
    ames = significance["ames"]
    assert ames["msess_lo"] <= ames["msess"] <= ames["msess_hi"]
    assert ames["msess"] == pytest.approx(test["model"]["overall"]["msess"], rel=1e-5)
    assert set(significance["vs"]) == set(test["baselines"])
    assert set(significance["horizon"]) == {"overall", "high", "medium", "low"}
    detail = _json(repo, "plots/significance/comparisons.json")
    assert {"expert1", "expert2", "expert3"} <= set(detail["ames_vs"])
    assert (repo / "plots/significance/msess_by_lead_ci.png").exists()

    table = _json(repo, "metrics/ablations.json")
    assert set(table) == ABLATIONS | {"full_model"}
    assert table["full_model"]["msess"] == seeds["by_seed"]["42"]["msess"]
    for name in ABLATIONS:
        row = table[name]
        assert {"delta_pooled_r2", "delta_rmse", "significant", "dm_p", "n_eff"} <= set(row)
        assert row["delta_msess_lo"] <= row["delta_msess"] <= row["delta_msess_hi"]

    calibration = _json(repo, "metrics/calibration.json")
    assert set(calibration["spread_scale"]) == {"ames", "damped_persistence"}
    assert len(calibration["spread_scale"]["ames"]) == 12
    prob = test["probabilistic"]
    assert set(prob["ames"]) == {"overall", "by_zone", "by_lead"}
    assert set(prob["ames"]["by_zone"]) == {"high", "medium", "low"}
    for key in ("crps", "crpss", "rps", "rpss", "coverage"):
        assert np.isfinite(prob["ames"]["overall"][key])
    assert prob["climatology"]["crpss"] == pytest.approx(0.0, abs=1e-12)
    for name in ("pit_histogram.png", "reliability_above_normal.png"):
        assert (repo / "plots/evaluate" / name).exists()
    assert (repo / "plots/inference/forecast_outlook.png").exists()

    with xr.open_dataset(repo / "predictions/forecast.nc") as fc:
        assert fc.sizes["time"] == 12
        precip = fc["precip"].values
        assert np.nanmin(precip) >= 0
        _check_probability_products(fc)
    with xr.open_dataset(repo / "predictions/hindcast_test.nc") as hc:
        assert {"origin", "lead"} <= set(hc.dims)
        _check_probability_products(hc)
    _check_review_output(repo, test, significance)
    _check_paper_profile_edit_keeps_the_run(repo)

    meta = _json(repo, "predictions/metadata.json")
    assert {"origin_month", "checkpoint_sha256", "params_sha256", "data_sha256"} <= set(meta)
    assert len(meta["checkpoint"]) == 2  # the seed ensemble

    status = dvc(repo, "status")
    assert "changed" not in status.stdout
    _check_round_trip_through_the_remote(repo, tmp_path / "clone")


def _git(repo, *args):
    return subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        env=pipeline_env(repo),
    )


def _check_round_trip_through_the_remote(repo, clone):
    """`dvc push` to the project's default remote (a local folder beside the checkout), a
    fresh `git clone` + `dvc pull`: every output is there and nothing needs to run again."""
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "tiny run")
    dvc(repo, "push")
    remote = repo.parent / "ames-dvc-remote"
    assert remote.is_dir() and any(remote.rglob("*")), "dvc push wrote nothing to the remote"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, capture_output=True)
    dvc(clone, "pull")
    assert (clone / "models/ames_final_best.pt").exists()
    assert (clone / "predictions/forecast.nc").exists()
    assert "up to date" in dvc(clone, "status").stdout
    repro = dvc(clone, "repro").stdout
    assert "Running stage" not in repro, repro
