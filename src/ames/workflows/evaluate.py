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
from ames.config import SelectionConfig
from ames.evaluation.baselines import all_baselines, fit_anomaly_rho
from ames.evaluation.forecast_set import (
    DIMS,
    MODEL,
    NO_ZONE,
    REFERENCE,
    TRUTH,
    forecast_names,
    forecast_set,
    member_name,
)
from ames.evaluation.metrics import per_cell_maps, skill_captured_scores
from ames.evaluation.ridge import fit_run_ridge, penalty_label, ridge_forecast
from ames.models.ames import AMESModel
from ames.run import RunInputs, collect_forecasts
from ames.selection import describe_folds

log = logging.getLogger("ames.evaluate")

EXPERT_NAMES = ("expert1", "expert2", "expert3")


@torch.no_grad()
def model_test_forecasts(
    model: AMESModel,
    run: RunInputs,
    batch_size: int,
    split: str = "test",
    max_batch_cells: int | None = None,
) -> dict[str, np.ndarray]:
    """Model and per-expert forecasts (mm/month) for every origin of ``split``, plus obs
    and clim (micro-batched as ``collect_forecasts`` says)."""
    model.eval()

    def forecast(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = model(batch)
        return {"pred": out["pred_mm"], "experts": out["experts_mm"].clamp_min(0.0)}

    device = next(model.parameters()).device
    clim_mean = run.masks.stats["clim_mean"]
    windows = run.windows(split)
    return collect_forecasts(forecast, windows, clim_mean, batch_size, device, max_batch_cells)


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
    run: RunInputs, origins: np.ndarray, selection: SelectionConfig
) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``ridge`` forecast for ``origins`` and how it was selected: fitted on training
    origins, each lead's penalty by blocked cross-validation over the pre-test origins."""
    model, folds = fit_run_ridge(run, selection)
    log.info("ridge: penalty by lead %s", [penalty_label(a) for a in model.alpha])
    stats = run.masks.stats
    forecast = ridge_forecast(
        model, run.inputs, run.masks.valid, stats["clim_mean"], stats["clim_std"], origins
    )
    selection = {
        "penalty_by_lead": model.alpha.tolist(),
        "cv_mse_by_lead": model.best_cv_mse.tolist(),
        "cv_mse_unit": "standardised anomaly squared",
        "skill_margin_se": selection.skill_margin_se,
        **model.evidence(),
        "cv_mse_by_candidate": {
            penalty_label(a): row.tolist()
            for a, row in zip(model.alphas, model.cv_mse, strict=True)
        },
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


def run_forecast_set(
    fields: Mapping[str, np.ndarray],
    origins: np.ndarray,
    run: RunInputs,
    roles: Mapping[str, str],
) -> xr.Dataset:
    """Forecast arrays for the run's origins (indices) on its grid, months and zones."""
    return forecast_set(
        fields,
        origins=run.data.times[origins],
        lat=run.data.lat,
        lon=run.data.lon,
        zones=run.zones,
        roles=roles,
    )


def evaluation_forecast_set(
    forecasts: Mapping[str, np.ndarray],
    by_seed: Mapping[int, np.ndarray],
    baselines: Mapping[str, np.ndarray],
    oracle: np.ndarray | None,
    run: RunInputs,
) -> xr.Dataset:
    """Every test forecast ``evaluate`` scores, and the observations, as one forecast set.

    ``forecasts`` as from ``ensemble_test_forecasts`` (``pred``, ``experts``, ``obs``,
    ``origin``); ``baselines`` include ``climatology``, the MSESS reference.
    """
    fields: dict[str, np.ndarray] = {MODEL: forecasts["pred"]}
    roles = {MODEL: "model"}
    for seed, pred in by_seed.items():
        fields[member_name(seed)], roles[member_name(seed)] = pred, "member"
    for i, name in enumerate(EXPERT_NAMES):
        fields[name], roles[name] = forecasts["experts"][:, i], "expert"
    for name, pred in baselines.items():
        fields[name], roles[name] = pred, "baseline"
    if oracle is not None:
        fields["oracle"], roles["oracle"] = oracle, "oracle"
    fields[TRUTH] = forecasts["obs"]
    return run_forecast_set(fields, forecasts["origin"], run, roles)


def ablation_forecast_set(
    name: str, forecasts: Mapping[str, np.ndarray], run: RunInputs
) -> xr.Dataset:
    """An ablation's test forecast with its observations and climatology reference."""
    fields = {name: forecasts["pred"], REFERENCE: forecasts["clim"], TRUTH: forecasts["obs"]}
    roles = {name: "ablation", REFERENCE: "reference"}
    return run_forecast_set(fields, forecasts["origin"], run, roles)


def evaluation_report(
    forecasts: xr.Dataset, scores: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    """test.json's model, experts, baselines and oracle from ``score_dataset(forecasts)``,
    with skill captured and which baselines the model beats on RMSE."""
    report: dict[str, Any] = {
        "model": scores[MODEL],
        "experts": {name: scores[name] for name in forecast_names(forecasts, "expert")},
        "baselines": {name: scores[name] for name in forecast_names(forecasts, "baseline")},
    }
    if "oracle" in scores:
        report["oracle"] = scores["oracle"]
        report["skill_captured"] = leaf_values(
            skill_captured_scores(report["model"], report["oracle"], scores[REFERENCE])
        )
    model = report["model"]["overall"]
    report["beats"] = {
        name: bool(model["rmse"] < baseline["overall"]["rmse"])
        for name, baseline in report["baselines"].items()
    }
    return report


def hindcast_dataset(forecasts: xr.Dataset, attrs: dict[str, str]) -> xr.Dataset:
    """CF-style test hindcast: the model, observations, climatology and expert spread."""
    valid = forecasts["zone"] != NO_ZONE
    experts = np.stack([forecasts[n].values for n in forecast_names(forecasts, "expert")], axis=1)
    spread = xr.DataArray(experts.std(axis=1), dims=DIMS, coords=forecasts[MODEL].coords)
    fields = {
        "precip": (forecasts[MODEL], "AMES forecast of monthly precipitation"),
        "observed": (forecasts[TRUTH], "observed monthly precipitation"),
        "climatology": (forecasts[REFERENCE], "training-period climatology"),
        "expert_spread": (spread, "standard deviation across the three experts"),
    }
    ds = xr.Dataset(
        {
            name: values.where(valid)
            .astype(np.float32)
            .drop_vars("zone")
            .assign_attrs(units="mm/month", long_name=long_name)
            for name, (values, long_name) in fields.items()
        },
        attrs={"Conventions": "CF-1.8", **attrs},
    )
    ds["lead"].attrs.update(units="months", long_name="forecast lead (target = origin + lead)")
    ds["origin"].attrs.update(long_name="forecast origin: last observed month")
    return ds


def maps_for(forecasts: xr.Dataset) -> dict[str, np.ndarray]:
    """Per-cell test RMSE and MSESS of the model."""
    valid = (forecasts["zone"] != NO_ZONE).values
    values = (forecasts[name].values for name in (MODEL, TRUTH, REFERENCE))
    return per_cell_maps(*values, valid)
