"""Test-split evaluation: the model, each expert, every baseline and the oracle, one metric code."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ames.climatology import training_month_mask
from ames.evaluation.baselines import all_baselines, fit_anomaly_rho
from ames.evaluation.metrics import per_cell_maps, score_forecasts, skill_captured_scores
from ames.evaluation.ridge import ridge_forecast
from ames.models.ames import AMESModel
from ames.run import RunInputs, collect_forecasts
from ames.selection import describe_folds
from ames.workflows.common import fit_run_ridge

log = logging.getLogger("ames.evaluate")

EXPERT_NAMES = ("expert1", "expert2", "expert3")


@torch.no_grad()
def model_test_forecasts(
    model: AMESModel, run: RunInputs, batch_size: int, split: str = "test"
) -> dict[str, np.ndarray]:
    """Model and per-expert forecasts (mm/month) for every origin of ``split``, plus obs
    and clim."""
    model.eval()

    def forecast(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = model(batch)
        return {"pred": out["pred_mm"], "experts": out["experts_mm"].clamp_min(0.0)}

    device = next(model.parameters()).device
    clim_mean = run.masks.stats["clim_mean"]
    return collect_forecasts(forecast, run.windows(split), clim_mean, batch_size, device)


def baseline_forecasts(
    run: RunInputs, origins: np.ndarray, test_months: int, val_months: int
) -> dict[str, np.ndarray]:
    """The reference forecasts: climatology, persistence and damped persistence (its ρ
    fitted on training months only)."""
    data, stats = run.data, run.masks.stats
    train = training_month_mask(len(data.times), test_months, val_months)
    rho = fit_anomaly_rho(data.precip, data.months, stats["clim_mean"], train)
    return all_baselines(data.precip, data.months, stats["clim_mean"], rho, origins, run.horizon)


def ridge_baseline(
    run: RunInputs, origins: np.ndarray, n_folds: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``ridge`` forecast for ``origins`` and how it was selected: fitted on training
    origins, each lead's penalty by blocked cross-validation over the pre-test origins."""
    model, folds = fit_run_ridge(run, n_folds)
    log.info("ridge: penalty by lead %s", [f"{a:.0e}" for a in model.alpha])
    stats = run.masks.stats
    forecast = ridge_forecast(
        model, run.inputs, run.masks.valid, stats["clim_mean"], stats["clim_std"], origins
    )
    selection = {
        "penalty_by_lead": model.alpha.tolist(),
        "cv_mse_by_lead": model.best_cv_mse.tolist(),
        "cv_mse_unit": "standardised anomaly squared",
        "folds": describe_folds(folds, run.data.times),
    }
    return forecast, selection


def oracle_forecasts(path: Path, run: RunInputs, origins: np.ndarray) -> np.ndarray | None:
    """The generator's optimal forecast for the given origins; None for observed data."""
    with xr.open_dataset(path) as ds:
        if "precip" not in ds:
            return None
        wanted = run.data.times[origins]
        available = pd.DatetimeIndex(ds["origin"].values)
        missing = wanted.difference(available)
        if len(missing):
            raise ValueError(
                f"{path}: no oracle for {len(missing)} test origins (first {missing[0]:%Y-%m}); "
                "re-run `dvc repro prepare`."
            )
        oracle = (
            ds["precip"].sel(origin=wanted).transpose("origin", "lead", "latitude", "longitude")
        )
        return oracle.values.astype(np.float32)


def leaf_values(nested: Mapping[str, Any]) -> dict[str, Any]:
    """``{"value", "reason"}`` leaves → plain values (None where undefined), for metrics files."""
    if "value" in nested and "reason" in nested:
        return nested["value"]
    return {k: leaf_values(v) for k, v in nested.items()}


def score_all(
    forecasts: dict[str, np.ndarray],
    baselines: dict[str, np.ndarray],
    oracle: np.ndarray | None,
    zones: dict[str, np.ndarray],
) -> dict[str, Any]:
    obs, clim = forecasts["obs"], forecasts["clim"]

    def score(pred: np.ndarray) -> dict[str, Any]:
        return score_forecasts(pred, obs, clim, zones)

    report: dict[str, Any] = {
        "model": score(forecasts["pred"]),
        "experts": {name: score(forecasts["experts"][:, i]) for i, name in enumerate(EXPERT_NAMES)},
        "baselines": {name: score(pred) for name, pred in baselines.items()},
    }
    if oracle is not None:
        report["oracle"] = score(oracle)
        report["skill_captured"] = leaf_values(
            skill_captured_scores(
                report["model"], report["oracle"], report["baselines"]["climatology"]
            )
        )
    model = report["model"]["overall"]
    report["beats"] = {
        name: bool(model["rmse"] < report["baselines"][name]["overall"]["rmse"])
        for name in baselines
    }
    return report


def hindcast_dataset(
    forecasts: dict[str, np.ndarray], run: RunInputs, attrs: dict[str, str]
) -> xr.Dataset:
    """CF-style test hindcast: every forecast with origin and lead coordinates."""
    coords = {
        "origin": run.data.times[forecasts["origin"]],
        "lead": np.arange(1, run.horizon + 1, dtype=np.int32),
        "latitude": run.data.lat,
        "longitude": run.data.lon,
    }
    dims = ("origin", "lead", "latitude", "longitude")
    spread = forecasts["experts"].std(axis=1)
    valid = run.masks.valid[None, None]

    def var(values: np.ndarray, long_name: str) -> tuple:
        values = np.where(valid, values, np.nan).astype(np.float32)
        return dims, values, {"units": "mm/month", "long_name": long_name}

    ds = xr.Dataset(
        {
            "precip": var(forecasts["pred"], "AMES forecast of monthly precipitation"),
            "observed": var(forecasts["obs"], "observed monthly precipitation"),
            "climatology": var(forecasts["clim"], "training-period climatology"),
            "expert_spread": var(spread, "standard deviation across the three experts"),
        },
        coords=coords,
        attrs={"Conventions": "CF-1.8", **attrs},
    )
    ds["lead"].attrs.update(units="months", long_name="forecast lead (target = origin + lead)")
    ds["origin"].attrs.update(long_name="forecast origin: last observed month")
    return ds


def maps_for(forecasts: dict[str, np.ndarray], run: RunInputs) -> dict[str, np.ndarray]:
    return per_cell_maps(forecasts["pred"], forecasts["obs"], forecasts["clim"], run.masks.valid)
