"""Probabilistic forecasts: calibrate, dress and score.

``calibrate`` builds the climatological ensemble and tercile edges from training months,
applies AMES's spread scale and tercile weight per lead decided on the folds
(``ames.workflows.fold_calibration``) and scores them on the validation origins of the
seed-ensemble forecast, fits those of damped persistence (the baseline) on the same origins,
and saves them to ``models/predictive.nc``, which ``evaluate`` and ``inference`` read. See
``ames.evaluation.predictive`` for the law; the quantile and tercile-probability variables of
the NetCDF products are built in ``ames.workflows.probabilistic_products``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ames.climatology import target_months
from ames.config import BootstrapConfig, ProbabilisticConfig
from ames.evaluation.predictive import (
    Predictive,
    climatological_ensemble,
    observed_category,
    ratio_ensemble,
    tercile_edges,
)
from ames.evaluation.probabilistic import (
    DistributionSums,
    distribution_sums,
    fit_spread_scales,
    fit_tercile_weight,
    mean_crps,
    mean_reference_crps,
    probabilistic_scores,
    rps,
    shrink_to_climatology,
    skill_intervals,
    spread_floors,
)
from ames.evaluation.reliability import pit_histogram, reliability_table
from ames.evaluation.ridge import CLIMATOLOGY, RidgeBaseline
from ames.evaluation.uncertainty import Resampling
from ames.run import RunInputs

SCALE_VARS = {"ames": "spread_scale", "damped_persistence": "spread_scale_damped_persistence"}
CLIMATOLOGY_WEIGHT = "climatology_weight"
WEIGHT_VARS = {"ames": "tercile_weight", "damped_persistence": "tercile_weight_damped_persistence"}


def training_months(run: RunInputs) -> np.ndarray:
    mask = np.zeros(len(run.data.times), dtype=bool)
    mask[: int(run.masks.split["val_start"])] = True
    return mask


def blend_floors(cv_mse_ratio: np.ndarray | None) -> np.ndarray | None:
    """Per lead, ``sqrt(out-of-fold MSE of the blended AMES forecast / climatology's)``, at
    most 1 (1 where the blend is climatology): the spread the folds support for AMES itself."""
    if cv_mse_ratio is None:
        return None
    return np.sqrt(np.clip(np.asarray(cv_mse_ratio, dtype=np.float64), 0.0, 1.0))


def cross_validated_floors(linear: RidgeBaseline) -> np.ndarray:
    """Per lead, ``sqrt(CV MSE of the chosen penalty / CV MSE of climatology)``, at most 1,
    from the selection folds over every pre-test origin: the spread that the linear model's
    confirmed skill supports (1 at a lead that forecasts climatology). The validation split's
    few origins can make a forecast look surer than the whole record says; this keeps the
    predictive distribution from being narrower than what the folds confirmed."""
    clim = linear.cv_mse[linear.alphas.index(CLIMATOLOGY)]
    return np.sqrt(np.minimum(linear.best_cv_mse / clim, 1.0))


def tercile_weight_caps(cv_floors: np.ndarray) -> np.ndarray:
    """Per lead, the most weight the model's tercile probabilities may get: 0 where the
    selection folds over every pre-test origin confirmed no skill (``cv_floors`` 1: the
    linear model forecasts climatology there), else 1. A lead where the whole record finds
    nothing publishes climatology's probabilities, whatever the validation origins say."""
    return np.where(np.asarray(cv_floors) >= 1.0, 0.0, 1.0)


def score_spread_scales(
    point: np.ndarray,
    obs: np.ndarray,
    target_month: np.ndarray,
    ratios: np.ndarray,
    valid: np.ndarray,
    scales: np.ndarray,
) -> list[dict[str, float]]:
    """Per lead, the mean CRPS of ``point`` dressed at ``scales[h]`` and at scale 1 (the
    report rows of ``fit_spread_scales`` for scales decided elsewhere)."""
    rows = []
    for h, scale in enumerate(scales):
        m = target_month[:, h]
        o = obs[:, h][:, valid].astype(np.float64)
        p = point[:, h][:, valid]
        rows.append(
            {
                "lead": h + 1,
                "scale": float(scale),
                "floor": None,
                "crps": mean_crps(o, p, ratios, m, valid, float(scale)),
                "crps_scale_1": mean_crps(o, p, ratios, m, valid, 1.0),
            }
        )
    return rows


def add_reference_crps(
    report: Mapping[str, dict[str, Any]],
    obs: np.ndarray,
    month: np.ndarray,
    ratios: np.ndarray,
    clim_mean: np.ndarray,
    valid: np.ndarray,
) -> None:
    """Add the climatological ensemble's mean CRPS per lead, and the CRPSS against it, to
    each forecast's ``by_lead`` rows in ``report`` (``obs`` ``[S, H, lat, lon]``, ``month``
    its target months ``[S, H]``)."""
    for h in range(obs.shape[1]):
        o = obs[:, h][:, valid].astype(np.float64)
        ref = mean_reference_crps(o, ratios, clim_mean, month[:, h], valid)
        for rows in report.values():
            row = rows["by_lead"][h]
            row["crps_climatology"] = ref
            row["crpss"] = 1.0 - row["crps"] / ref if ref > 0 else None


def climatological_parts(run: RunInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ratios, their mean, tercile edges) from the training months of ``run``'s data."""
    train = training_months(run)
    ensemble = climatological_ensemble(run.data.precip, run.data.months, train)
    ratios, mean = ratio_ensemble(ensemble)
    edges = tercile_edges(run.data.precip, run.data.months, train)
    return ratios, mean, edges


def calibrate(
    point: Mapping[str, np.ndarray],
    obs: np.ndarray,
    clim: np.ndarray,
    origins: np.ndarray,
    run: RunInputs,
    options: ProbabilisticConfig,
    cv_floors: np.ndarray | None = None,
    cv_climatology_weights: np.ndarray | None = None,
    decided: Mapping[str, np.ndarray] | None = None,
) -> tuple[xr.Dataset, dict[str, Any]]:
    """Shrink ``ames`` toward climatology by ``cv_climatology_weights`` (``[H]``, decided by
    the folds in the gating stage; with ``options.shrink_to_climatology``), then fit the
    spread scales of each point forecast in ``point`` (``[S, H, lat, lon]`` on validation
    ``origins``; ``clim`` the training climatology of their targets); return the predictive
    dataset plus a report. With ``options.spread_floor``, ``ames``'s scales are also kept
    at or above ``cv_floors`` (``[H]``, ``cross_validated_floors``). ``decided``: ``ames``'s
    ``spread_scale`` and ``tercile_weight`` (``[H]`` each) already decided on the folds
    (``ames.workflows.fold_calibration``): used as they are, and only scored here."""
    ratios, mean, edges = climatological_parts(run)
    month = target_months(run.inputs.months[origins], run.horizon)
    valid = run.masks.valid
    point = dict(point)
    climatology_weights = np.ones(run.horizon)
    if options.shrink_to_climatology:
        if cv_climatology_weights is None:
            raise ValueError(
                "probabilistic.shrink_to_climatology is on but the final model carries no "
                "blend weights from the folds (written by an older version); re-run "
                "`dvc repro gating`"
            )
        climatology_weights = np.asarray(cv_climatology_weights, dtype=np.float64)
        point["ames"] = shrink_to_climatology(point["ames"], clim, climatology_weights)
    scales, weights, report = {}, {}, {}
    for name, forecast in point.items():
        if name == "ames" and decided is not None:
            scales[name] = np.asarray(decided["spread_scale"], dtype=np.float64)
            rows = score_spread_scales(forecast, obs, month, ratios, valid, scales[name])
            report[name] = {"by_lead": rows, "decided_on": "folds"}
            continue
        floors = spread_floors(forecast, obs, clim, valid) if options.spread_floor else None
        if floors is not None and name == "ames" and cv_floors is not None:
            floors = np.maximum(floors, cv_floors)
        scales[name], rows = fit_spread_scales(
            forecast, obs, month, ratios, valid, options.spread_scale_bounds, floors
        )
        report[name] = {"by_lead": rows, "decided_on": "validation"}
    if cv_floors is not None:
        for h, row in enumerate(report["ames"]["by_lead"]):
            row["cv_floor"] = float(cv_floors[h])
    for h, row in enumerate(report["ames"]["by_lead"]):
        row["climatology_weight"] = float(climatology_weights[h])
    add_reference_crps(report, obs, month, ratios, mean, valid)
    caps = None if cv_floors is None else tercile_weight_caps(cv_floors)
    for name, forecast in point.items():
        dressed = Predictive(ratios, edges, scales[name], mean)
        cap = caps if name == "ames" else None
        fixed = decided["tercile_weight"] if name == "ames" and decided is not None else None
        weights[name] = fit_tercile_weights(
            dressed, forecast, obs, month, valid, report[name], cap, fixed
        )
    ds = predictive_dataset(ratios, mean, edges, scales, weights, climatology_weights, run)
    return ds, {
        "n_val_origins": int(len(origins)),
        "members": int(ratios.shape[1]),
        "climatology_weight": [round(float(w), 4) for w in climatology_weights],
        "climatology_weight_decided_on": "folds" if options.shrink_to_climatology else None,
        "spread_scale_decided_on": report["ames"]["decided_on"],
        "tercile_weight_decided_on": report["ames"]["decided_on"],
        "spread_scale": {name: [round(float(s), 4) for s in v] for name, v in scales.items()},
        "tercile_weight": {name: [round(float(w), 4) for w in v] for name, v in weights.items()},
        "val": report,
    }


def fit_tercile_weights(
    dressed: Predictive,
    point: np.ndarray,
    obs: np.ndarray,
    month: np.ndarray,
    valid: np.ndarray,
    report: dict[str, Any],
    caps: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
) -> np.ndarray:
    """Tercile weight per lead of the dressed ``point`` forecast, at most ``caps`` (``[H]``,
    :func:`tercile_weight_caps`), or the weights ``fixed`` (``[H]``, decided elsewhere); adds
    the RPS before and after, and the overall RPSS both ways, to ``report``."""
    weights = np.empty(point.shape[1])
    totals = {"raw": 0.0, "calibrated": 0.0, "climatology": 0.0}
    for h in range(point.shape[1]):
        raw, climate = lead_tercile_probabilities(dressed, point[:, h], month[:, h], h, valid)
        lower, upper = dressed.lead_edges(month[:, h], valid)
        category = observed_category(obs[:, h][:, valid].astype(np.float64), lower, upper)
        if fixed is not None:
            fitted = weights[h] = float(fixed[h])
        else:
            fitted = fit_tercile_weight(raw, climate, category)
            weights[h] = fitted if caps is None else min(fitted, float(caps[h]))
        calibrated = weights[h] * raw + (1.0 - weights[h]) * climate
        row = report["by_lead"][h]
        row["tercile_weight"] = float(weights[h])
        if caps is not None and fixed is None:
            row["tercile_weight_validation"] = float(fitted)  # before the cap
        for key, probs in (("raw", raw), ("calibrated", calibrated), ("climatology", climate)):
            score = float(rps(category, probs).mean())
            row[f"rps_{key}"] = score
            totals[key] += score
    ref = totals["climatology"]
    report["rpss_raw"] = 1.0 - totals["raw"] / ref if ref > 0 else None
    report["rpss_calibrated"] = 1.0 - totals["calibrated"] / ref if ref > 0 else None
    return weights


def lead_tercile_probabilities(
    dressed: Predictive, point: np.ndarray, month: np.ndarray, lead: int, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Tercile probabilities ``[S, N, 3]`` of ``point`` ``[S, lat, lon]`` dressed at lead
    index ``lead``, and of the climatological ensemble, for target months ``month`` ``[S]``:
    built one origin at a time, so only one origin's members (``[N, K]``) are in memory."""
    n = int(valid.sum())
    raw, climate = np.empty((len(point), n, 3)), np.empty((len(point), n, 3))
    for s in range(len(point)):
        row = month[s : s + 1]
        members = dressed.lead_members(point[s : s + 1], row, lead, valid)
        raw[s] = dressed.lead_probabilities(members, row, None, valid)[0]
        reference = dressed.reference_members(row, valid)
        climate[s] = dressed.lead_probabilities(reference, row, None, valid)[0]
    return raw, climate


def predictive_dataset(
    ratios: np.ndarray,
    mean: np.ndarray,
    edges: np.ndarray,
    scales: Mapping[str, np.ndarray],
    weights: Mapping[str, np.ndarray],
    climatology_weights: np.ndarray,
    run: RunInputs,
) -> xr.Dataset:
    grid = ("latitude", "longitude")
    data_vars = {
        "ratio": (
            ("calendar_month", "member", *grid),
            ratios.astype(np.float32),
            {"units": "1", "long_name": "training value / its calendar-month mean, sorted"},
        ),
        "ensemble_mean": (
            ("calendar_month", *grid),
            mean.astype(np.float32),
            {"units": "mm/month", "long_name": "mean of the climatological ensemble"},
        ),
        "tercile_edge": (
            ("calendar_month", "edge", *grid),
            edges.astype(np.float32),
            {"units": "mm/month", "long_name": "training-period tercile edges"},
        ),
    }
    for name, values in scales.items():
        data_vars[SCALE_VARS[name]] = (
            ("lead",),
            np.asarray(values, dtype=np.float32),
            {"units": "1", "long_name": f"spread scale of {name}, fitted on CRPS"},
        )
    for name, values in weights.items():
        data_vars[WEIGHT_VARS[name]] = (
            ("lead",),
            np.asarray(values, dtype=np.float32),
            {
                "units": "1",
                "long_name": f"weight of {name}'s own tercile probabilities against the "
                "climatological ensemble's, fitted on validation RPS",
            },
        )
    data_vars[CLIMATOLOGY_WEIGHT] = (
        ("lead",),
        np.asarray(climatology_weights, dtype=np.float32),
        {
            "units": "1",
            "long_name": "weight w of the AMES point forecast in climatology + w (forecast - "
            "climatology), fitted on validation MSE (1 = the forecast as it is)",
        },
    )
    return xr.Dataset(
        data_vars,
        coords={
            "calendar_month": np.arange(1, 13, dtype=np.int32),
            "member": np.arange(ratios.shape[1], dtype=np.int32),
            "edge": np.array([1, 2], dtype=np.int32),
            "lead": np.arange(1, run.horizon + 1, dtype=np.int32),
            "latitude": run.data.lat,
            "longitude": run.data.lon,
        },
        attrs={
            "title": "AMES predictive distribution (climatological ensemble x spread scale)",
            "climatology_period": " to ".join(run.masks.split["train_months"]),
        },
    )


def load_climatology_weights(path: str | Path) -> np.ndarray:
    """The per-lead climatology weights of the AMES point forecast saved by ``calibrate``."""
    with xr.open_dataset(path) as ds:
        if CLIMATOLOGY_WEIGHT not in ds:
            raise ValueError(
                f"{path}: no {CLIMATOLOGY_WEIGHT}; re-create it with `dvc repro calibrate`"
            )
        return ds[CLIMATOLOGY_WEIGHT].values.astype(np.float64)


def load_predictive(path: str | Path, name: str = "ames") -> Predictive:
    """The ``Predictive`` of forecast ``name`` (``ames`` or ``damped_persistence``)."""
    with xr.open_dataset(path) as ds:
        for var in (SCALE_VARS[name], WEIGHT_VARS[name]):
            if var not in ds:
                raise ValueError(
                    f"{path}: no {var} for {name}; re-create it with `dvc repro calibrate`"
                )
        return Predictive(
            ratios=ds["ratio"].values.astype(np.float64),
            edges=ds["tercile_edge"].values.astype(np.float64),
            scales=ds[SCALE_VARS[name]].values.astype(np.float64),
            clim_mean=ds["ensemble_mean"].values.astype(np.float64),
            tercile_weights=ds[WEIGHT_VARS[name]].values.astype(np.float64),
        )


# ----------------------------------------------------------------------------- scoring


def _sums(
    members_at: Any,
    obs: np.ndarray,
    month: np.ndarray,
    predictive: Predictive,
    valid: np.ndarray,
    options: ProbabilisticConfig,
    products: dict[str, np.ndarray] | None = None,
    calibrated: bool = False,
) -> DistributionSums:
    return distribution_sums(
        members_at,
        obs,
        month,
        predictive,
        valid,
        options.quantiles,
        pit_bins=options.pit_bins,
        reliability_bins=options.reliability_bins,
        seed=options.pit_seed,
        products=products,
        calibrated=calibrated,
    )


def score_probabilistic(
    point: Mapping[str, np.ndarray],
    obs: np.ndarray,
    origins: np.ndarray,
    run: RunInputs,
    predictives: Mapping[str, Predictive],
    options: ProbabilisticConfig,
    bootstrap: BootstrapConfig,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """Score each dressed point forecast and the climatological ensemble on the same samples.

    Returns (report for test.json, plot tables, products of the ``ames`` forecast on the
    valid cells: ``quantile`` ``[S, H, Q, N]`` and ``tercile_probability`` ``[S, H, 3, N]``).
    CRPSS and RPSS carry 90 % block-bootstrap intervals (the ``uncertainty`` resamples), and
    ``ames`` the paired skill difference to each other dressed forecast.
    """
    valid = run.masks.valid
    month = target_months(run.inputs.months[origins], run.horizon)
    reference = next(iter(predictives.values()))
    ref_sums = _sums(
        lambda h, rows: reference.reference_members(month[rows, h], valid),
        obs,
        month,
        reference,
        valid,
        options,
    )
    products: dict[str, np.ndarray] = {}
    sums = {
        name: _sums(
            lambda h, rows, f=point[name], p=predictive: p.lead_members(
                f[rows, h], month[rows, h], h, valid
            ),
            obs,
            month,
            predictive,
            valid,
            options,
            products if name == "ames" else None,
            calibrated=True,
        )
        for name, predictive in predictives.items()
    }
    resampling = Resampling.draw(bootstrap, len(origins))
    counts, k = resampling.counts, resampling.k
    report: dict[str, Any] = {
        "quantiles": list(options.quantiles),
        "interval_nominal": round(max(options.quantiles) - min(options.quantiles), 6),
        "members": int(reference.ratios.shape[1]),
        "climatology": probabilistic_scores(ref_sums, ref_sums, run.zones, valid)["overall"],
    }
    tables: dict[str, Any] = {"pit": {}, "reliability": {}, "by_lead": {}}
    for name, predictive in predictives.items():
        scores = probabilistic_scores(sums[name], ref_sums, run.zones, valid)
        overall = scores["overall"]
        overall.update(skill_intervals(sums[name], ref_sums, counts, bootstrap.level, k))
        if name == "ames":
            overall["vs"] = {
                other: skill_intervals(
                    sums[name], ref_sums, counts, bootstrap.level, k, other=sums[other]
                )
                for other in sums
                if other != name
            }
        report[name] = scores if name == "ames" else overall
        report[name + "_spread_scale"] = [round(float(s), 4) for s in predictive.scales]
        tables["pit"][name] = pit_histogram(sums[name].pit_counts).tolist()
        tables["reliability"][name] = reliability_table(sums[name].reliability)
        tables["by_lead"][name] = scores["by_lead"]
    tables["pit"]["climatology"] = pit_histogram(ref_sums.pit_counts).tolist()
    tables["reliability"]["climatology"] = reliability_table(ref_sums.reliability)
    return report, tables, products
