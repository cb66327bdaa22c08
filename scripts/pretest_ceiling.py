"""How much of the generator's predictable signal a linear model reaches, on pre-test data.

Synthetic data only (either scenario): the generator's latent state (ENSO-like index and
anomaly field) is drawn again from ``data.synthetic.seed``, checked against ``dataset.nc``,
and its oracle (``E[P | latent state at the origin]``, as a multiplicative anomaly on the training
climatology) is compared with out-of-fold forecasts of

* ``ridge``: the pooled ridge baseline,
* ``linear_path``: the experts' linear path (ridge + ``linear_features`` regressors),

on the validation origins of the blocked cross-validation folds (``ames.selection``), i.e.
the pre-test period only: no test month is read. Each fold's forecasts come from a fit on
that fold's (purged) training origins at the penalties the selection chose over all folds.
Scores are MSESS in mm/month against the training climatology, through the metric code of
the pipeline. Usage: ``python scripts/pretest_ceiling.py [--params params.yaml] [--json F]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr

from ames.climatology import target_months
from ames.config import AmesConfig, load_config
from ames.data.synthetic import oracle_forecast, precipitation
from ames.data.synthetic_config import SyntheticConfig
from ames.data.synthetic_fields import climatological_mean
from ames.data.synthetic_latent import sample_latent
from ames.data.synthetic_zoned import (
    ZonedConfig,
    clim_table,
    sample_zoned_state,
    zoned_oracle,
    zoned_precipitation,
)
from ames.evaluation.metrics import score_forecasts
from ames.evaluation.ridge import RidgeBaseline, fit_run_ridge, ridge_features, window_steps
from ames.models.linear_path import spatial_regressors
from ames.models.linear_path_fit import (
    fit_run_linear_path,
    months_touched,
    refit_at_penalties,
    spatial_rows,
)
from ames.paths import DATASET, MASKS
from ames.run import RunInputs, load_run_inputs


class Generator(NamedTuple):
    """The generator behind ``dataset.nc``: its oracle at any origins and its true climatology."""

    oracle: Callable[[np.ndarray, int], np.ndarray]  # (origins, horizon) -> [S, H, lat, lon]
    climatology: np.ndarray  # [12, lat, lon] mm/month, E[P] of each calendar month
    months: np.ndarray  # [T] calendar month 0..11
    # zoned only: (origins, horizon, observed domain mean [T], months to fit on, window) ->
    # ({name: conditional mean given part of the latent state}, R² of the ENSO estimate)
    partial: Callable[..., tuple[dict[str, np.ndarray], float]] | None = None


def zoned_climatology(table, months, state, cfg, zoned) -> np.ndarray:
    """``E[C(m, E) exp(-a s_m f(E))]`` over ``E ~ N(0, 1)``: the zoned scenario's mean of each
    calendar month, as the oracle one month ahead of 12 consecutive origins with the index at
    its stationary distribution and the anomaly field unknown."""
    unknown = dataclasses.replace(state, rho=np.zeros_like(state.rho))
    stationary = dataclasses.replace(cfg, enso_rho=0.0)
    mean = zoned_oracle(table, months, unknown, stationary, zoned, np.arange(12), 1)[:, 0]
    out = np.empty_like(mean)
    out[months[1:13]] = mean
    return out


def observed_enso(state, months: np.ndarray, domain: np.ndarray, fit: np.ndarray, window: int):
    """``(estimate [T], residual variance)`` of the ENSO index from what a forecaster sees:
    least squares on the domain-mean anomaly of the last ``window`` months, alone and times
    sin/cos of the month, fitted on the months ``fit`` (in sample: a generous estimate)."""
    t = np.arange(window - 1, len(months))
    lags = domain[t[:, None] - np.arange(window)[None, :]]  # [n, W], newest first
    angle = 2 * np.pi * months[t] / 12.0
    x = np.concatenate(
        [np.ones((len(t), 1)), lags, lags * np.sin(angle)[:, None], lags * np.cos(angle)[:, None]],
        axis=1,
    )
    inside = np.isin(t, fit)
    coef, *_ = np.linalg.lstsq(x[inside], state.enso[t[inside]], rcond=None)
    estimate = np.zeros(len(months))
    estimate[t] = x @ coef
    residual = state.enso[t[inside]] - estimate[t[inside]]
    return estimate, float(residual.var() / state.enso[t[inside]].var())


def partial_oracles(table, months, state, cfg, zoned, origins, horizon, observed):
    """The zoned scenario's conditional means given part of the latent state: the ENSO index
    only, the anomaly field only (ENSO at its stationary distribution), and the ENSO index
    as ``observed_enso`` estimates it (``observed``: its estimate and residual variance)."""
    estimate, unexplained = observed
    anomaly_unknown = dataclasses.replace(state, rho=np.zeros_like(state.rho))
    no_enso = dataclasses.replace(state, enso=np.zeros_like(state.enso))
    stationary = dataclasses.replace(cfg, enso_rho=0.0)
    estimated = dataclasses.replace(anomaly_unknown, enso=estimate)
    means = {
        "oracle, ENSO only": zoned_oracle(
            table, months, anomaly_unknown, cfg, zoned, origins, horizon
        ),
        "oracle, anomaly only": zoned_oracle(
            table, months, no_enso, stationary, zoned, origins, horizon
        ),
        "ENSO estimated": zoned_oracle(
            table, months, estimated, cfg, zoned, origins, horizon, unexplained
        ),
    }
    return means, 1.0 - unexplained


def generator_of(cfg: AmesConfig, dataset: Path) -> Generator:
    """The generator of ``data.synthetic`` (either scenario), checked against ``dataset``."""
    if cfg.data.source != "synthetic":
        raise SystemExit(f"{dataset}: the ceiling needs the synthetic generator's latent state")
    section = dict(cfg.data.synthetic)
    seed = int(section.pop("seed"))
    scenario = section.pop("scenario", "default")
    zoned_section = section.pop("zoned", None)
    gen = SyntheticConfig.from_dict(section)
    with xr.open_dataset(dataset) as ds:
        lat = ds["latitude"].values.astype(np.float64)
        lon = ds["longitude"].values.astype(np.float64)
        elevation = ds["elevation"].values.astype(np.float64)
        precip = ds["precip"].values
        months = ds["time"].dt.month.values - 1
    if scenario == "zoned":
        zoned = ZonedConfig.from_dict(zoned_section or {})
        table = clim_table(elevation, lat, lon, gen, zoned)
        table[:, :, np.isnan(elevation)] = np.nan
        state = sample_zoned_state(seed, len(months), lat, lon, elevation, gen, zoned)
        again = zoned_precipitation(table, months, state, gen, zoned)
        clim = zoned_climatology(table, months, state, gen, zoned)

        def oracle(origins: np.ndarray, horizon: int) -> np.ndarray:
            return zoned_oracle(table, months, state, gen, zoned, origins, horizon)

        def partial(origins, horizon, domain, fit, window):
            observed = observed_enso(state, months, domain, fit, window)
            return partial_oracles(table, months, state, gen, zoned, origins, horizon, observed)
    else:
        clim = climatological_mean(elevation, lat, lon, gen)
        state = sample_latent(seed, len(months), lat, lon, gen)
        again = precipitation(clim, months, state, gen)

        def oracle(origins: np.ndarray, horizon: int) -> np.ndarray:
            return oracle_forecast(clim, months, state, gen, origins, horizon)

        partial = None
    if not np.allclose(again.astype(np.float32), precip, rtol=1e-5, atol=1e-3, equal_nan=True):
        raise SystemExit(f"{dataset}: not generated by data.synthetic in params (seed {seed})")
    return Generator(oracle, clim, months, partial)


def out_of_fold(
    run: RunInputs, model: RidgeBaseline, rows_of, regressors, origins: np.ndarray, folds
) -> np.ndarray:
    """``[S, H, lat, lon]`` mm/month: each fold's validation origins forecast by the
    regression (``regressors`` None: ``ridge``) refitted on that fold's training origins at
    ``model.alpha``; ``rows_of(origins)`` gives the regressors in the refit's order."""
    valid, horizon = run.masks.valid, run.horizon
    stats = run.masks.stats
    where = {int(o): i for i, o in enumerate(origins)}
    out = np.full((len(origins), horizon, *valid.shape), np.nan, dtype=np.float32)
    refits = refit_at_penalties(
        run.inputs, valid, [np.unique(f.train) for f in folds], run.window, horizon,
        regressors, model.alpha,
    )  # fmt: skip
    for fold, (coef, intercept, loading) in zip(folds, refits, strict=True):
        val = np.asarray(fold.val)
        rows = rows_of(val)
        if loading is not None:  # the fold's own loading map times the domain-mean window
            domain = run.inputs.domain_anomaly[window_steps(val, run.window)]  # [S, W]
            weighted = loading[valid][None, :, None] * domain[:, None, :]  # [S, N, W]
            rows = np.concatenate([rows, weighted.reshape(-1, run.window)], axis=1)
        z = (rows @ coef.T + intercept).reshape(len(val), -1, horizon)
        month = target_months(run.inputs.months[val], horizon)  # [S, H]
        mm = (
            stats["clim_mean"][month][..., valid]
            + z.transpose(0, 2, 1) * (stats["clim_std"][month][..., valid])
        )
        block = np.full((len(val), horizon, *valid.shape), np.nan, dtype=np.float32)
        block[..., valid] = np.maximum(mm, 0.0)
        out[[where[int(o)] for o in val]] = block
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dataset", default=str(DATASET))
    parser.add_argument("--masks", default=str(MASKS))
    parser.add_argument("--json", default=None, help="also write the table here")
    args = parser.parse_args(argv)
    cfg = load_config(args.params)
    run = load_run_inputs(cfg, args.dataset, args.masks)
    generator = generator_of(cfg, Path(args.dataset))

    ridge, folds = fit_run_ridge(run, cfg.selection)
    path = fit_run_linear_path(cfg, run)
    origins = np.sort(np.concatenate([f.val for f in folds]))
    valid, window, horizon = run.masks.valid, run.window, run.horizon
    regressors = spatial_regressors(cfg, run)

    def plain_rows(o: np.ndarray) -> np.ndarray:
        return ridge_features(run.inputs, valid, o, window)

    path_adds = cfg.linear_features.adds_regressors

    def path_rows(o: np.ndarray) -> np.ndarray:
        if not path_adds:
            return plain_rows(o)
        smooth = spatial_rows(regressors, run.inputs, valid, o, window)
        return np.concatenate([plain_rows(o), smooth], axis=1)

    steps = origins[:, None] + np.arange(1, horizon + 1)
    obs = run.data.precip[steps]
    clim = run.masks.stats["clim_mean"][target_months(run.inputs.months[origins], horizon)]
    # The targets here are mostly training months, whose own mean is the training
    # climatology every forecast (and the MSESS reference) is built on; the oracle's
    # multiplicative anomaly is therefore put on that climatology too, not on the
    # generator's true mean, which the training months' sample mean does not equal.
    true_clim = generator.climatology[target_months(generator.months[origins], horizon)]
    oracle = generator.oracle(origins, horizon) / true_clim * clim
    forecasts = {"oracle": oracle}
    enso_r2 = None
    if generator.partial is not None:
        fit = np.flatnonzero(months_touched(origins, window, horizon, len(run.inputs.months)))
        partial, enso_r2 = generator.partial(
            origins, horizon, run.inputs.domain_anomaly, fit, window
        )
        for name, pred in partial.items():
            forecasts[name] = pred / true_clim * clim
    forecasts |= {
        "ridge": out_of_fold(run, ridge, plain_rows, None, origins, folds),
        "linear_path": out_of_fold(
            run, path, path_rows, regressors if path_adds else None, origins, folds
        ),
    }
    table = {}
    for name, pred in forecasts.items():
        scores = score_forecasts(pred, obs, clim, run.zones)
        table[name] = {
            "msess": scores["overall"]["msess"],
            "by_lead": [scores["by_lead"][str(h)]["msess"] for h in range(1, horizon + 1)],
        }
    oracle = table["oracle"]["msess"]
    for name in ("ridge", "linear_path"):
        table[name]["share_of_oracle"] = table[name]["msess"] / oracle
    table["n_origins"] = int(len(origins))
    print(f"{len(origins)} pre-test origins (the CV folds' validation blocks); MSESS in mm/month")
    print(f"{'forecast':21s} {'all leads':>9s}  " + " ".join(f"{h:>6d}" for h in range(1, 13)))
    for name in forecasts:
        row = table[name]
        leads = " ".join(f"{v:6.3f}" for v in row["by_lead"])
        print(f"{name:21s} {row['msess']:9.4f}  {leads}")
    for name in ("ridge", "linear_path"):
        print(f"{name} reaches {table[name]['share_of_oracle']:.2f} of the oracle's MSESS")
    if enso_r2 is not None:
        table["enso_estimate_r2"] = enso_r2
        print(
            f"ENSO estimated: the index from the domain-mean window (R² {enso_r2:.2f}, fitted "
            "in sample on these origins' months), the anomaly field unknown"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
