"""Intervals, significance and predictability horizon of the test scores (stage `significance`).

Inputs are the per-origin error sums that ``evaluate`` (and each ablation) write. Every
forecast is resampled with the same blocks of origins, so every difference is paired.
Differences are ``first − second``: for ``ames`` vs a baseline a positive ΔMSESS means AMES
is better; for an ablation vs the full model a negative ΔMSESS means the removed part helped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import xarray as xr

from ames.config import BootstrapConfig
from ames.evaluation.error_sums import REFERENCE, Totals, error_sums, scores, select_totals
from ames.evaluation.forecast_set import (
    MODEL,
    TRUTH,
    forecast_names,
    roles_of,
    zone_masks,
)
from ames.evaluation.uncertainty import (
    DMResult,
    Interval,
    Resampling,
    dm_test,
    predictability_horizon,
)

SCORES = ("msess", "rmse", "pooled_r2")
# Forecasts drawn with their interval band in the MSESS-by-lead plot, when present.
BAND_FORECASTS = (MODEL, "ridge", "damped_persistence")
# Per comparison, the headline metrics keep ΔMSESS with its interval and these.
HEADLINE_DM = ("significant", "dm_p", "n_eff")


def forecast_error_sums(forecasts: xr.Dataset) -> xr.Dataset:
    """Error sums of every forecast of a forecast set, named and tagged by role."""
    names = forecast_names(forecasts)
    return error_sums(
        {name: forecasts[name].values for name in names},
        roles_of(forecasts, names),
        forecasts[TRUTH].values,
        zone_masks(forecasts),
        forecasts["origin"].values,
    )


def score_intervals(
    totals: Totals, name: str, rs: Resampling, keys: Iterable[str] = SCORES
) -> dict[str, Interval]:
    full = scores(totals, name)
    boot = scores(totals, name, rs.counts)
    return {key: rs.interval(float(full[key]), boot[key]) for key in keys}


def compare(totals: Totals, first: str, second: str, rs: Resampling) -> dict[str, Any]:
    """Paired differences ``first − second`` of every score, and the DM test on per-origin MSE."""
    full_a, full_b = scores(totals, first), scores(totals, second)
    boot_a, boot_b = scores(totals, first, rs.counts), scores(totals, second, rs.counts)
    deltas = {
        f"delta_{key}": rs.interval(float(full_a[key] - full_b[key]), boot_a[key] - boot_b[key])
        for key in SCORES
    }
    dm = dm_test(
        totals.sse[first] / totals.n,
        totals.sse[second] / totals.n,
        max_lag=rs.cfg.block_months,
        df=rs.k - 1,
    )
    return {**deltas, "dm": dm}


def comparison_record(result: Mapping[str, Any]) -> dict[str, Any]:
    """Flat JSON record; ``significant``: the ΔMSESS interval excludes 0."""
    record: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, Interval):
            record.update(value.as_dict(key))
    dm: DMResult = result["dm"]
    record.update(
        significant=result["delta_msess"].excludes_zero,
        dm_statistic=dm.statistic,
        dm_p=dm.p_value,
        n_eff=dm.n_eff,
    )
    return record


def _interval_record(intervals: Mapping[str, Interval]) -> dict[str, float]:
    record: dict[str, float] = {}
    for key, value in intervals.items():
        record.update(value.as_dict(key))
    return record


def references(ds: xr.Dataset) -> list[str]:
    """What AMES is compared with: every baseline (climatology first), then every expert."""
    roles = dict(zip(ds["forecast"].values.tolist(), ds["role"].values.tolist(), strict=True))
    baselines = [n for n, r in roles.items() if r == "baseline"]
    baselines.sort(key=lambda n: n != REFERENCE)
    return baselines + [n for n, r in roles.items() if r == "expert"]


def _leads(ds: xr.Dataset) -> list[int]:
    return [int(h) for h in ds["lead"].values]


def horizons(ds: xr.Dataset, name: str, rs: Resampling) -> dict[str, int]:
    """Predictability horizon overall and per zone: last lead of the unbroken run from lead 1
    whose MSESS interval lies above 0."""
    groups: dict[str, list[str] | None] = {"overall": None}
    groups.update({str(z): [str(z)] for z in ds["zone"].values})
    result = {}
    for label, zones in groups.items():
        lower = [
            score_intervals(select_totals(ds, [h], zones), name, rs, ["msess"])["msess"].lo
            for h in _leads(ds)
        ]
        result[label] = predictability_horizon([lo > 0.0 for lo in lower])
    return result


def by_scope(ds: xr.Dataset) -> dict[str, Totals]:
    """Totals overall, per zone and per lead."""
    scopes = {"overall": select_totals(ds)}
    scopes.update({f"zone {z}": select_totals(ds, zones=[str(z)]) for z in ds["zone"].values})
    scopes.update({f"lead {h}": select_totals(ds, leads=[h]) for h in _leads(ds)})
    return scopes


def significance_report(ds: xr.Dataset, cfg: BootstrapConfig) -> dict[str, Any]:
    """``headline`` (small, for ``dvc metrics``), ``detail`` (every scope) and ``band`` rows."""
    rs = Resampling.draw(cfg, ds.sizes["origin"])
    scopes = by_scope(ds)
    overall = scopes["overall"]
    names = [str(n) for n in ds["forecast"].values]
    refs = references(ds)
    roles = dict(zip(names, ds["role"].values.tolist(), strict=True))

    vs = {ref: comparison_record(compare(overall, MODEL, ref, rs)) for ref in refs}
    horizon = {name: horizons(ds, name, rs) for name in names}
    headline = {
        "n_origins": ds.sizes["origin"],
        "block_months": cfg.block_months,
        "n_blocks": rs.k,
        "n_boot": cfg.n_boot,
        "level": cfg.level,
        MODEL: _interval_record(score_intervals(overall, MODEL, rs)),
        "horizon": horizon[MODEL],
        "vs": {
            ref: {k: v for k, v in rec.items() if k.startswith("delta_msess") or k in HEADLINE_DM}
            for ref, rec in vs.items()
            if roles[ref] == "baseline"
        },
    }
    detail = {
        "scores": {
            name: {
                scope: _interval_record(
                    score_intervals(totals, name, rs, SCORES if scope == "overall" else ["msess"])
                )
                for scope, totals in scopes.items()
            }
            for name in names
        },
        "ames_vs": {
            ref: {
                scope: comparison_record(compare(totals, MODEL, ref, rs))
                for scope, totals in scopes.items()
            }
            for ref in refs
        },
        "horizon": horizon,
    }
    band = band_rows(detail["scores"], _leads(ds))
    return {"headline": headline, "detail": detail, "band": band}


def band_rows(score_detail: Mapping[str, Mapping[str, Any]], leads: list[int]) -> list[dict]:
    """Rows ``{"lead", name, name_lo, name_hi}`` of MSESS for the band plot and ``dvc plots``."""
    present = [name for name in BAND_FORECASTS if name in score_detail]
    rows = []
    for h in leads:
        row: dict[str, Any] = {"lead": h}
        for name in present:
            leaf = score_detail[name][f"lead {h}"]
            row.update({name: leaf["msess"], f"{name}_lo": leaf["msess_lo"]})
            row[f"{name}_hi"] = leaf["msess_hi"]
        rows.append(row)
    return rows


def ablation_significance(
    ds: xr.Dataset, full: str, ablations: Iterable[str], cfg: BootstrapConfig
) -> dict[str, dict[str, Any]]:
    """Each ablation vs the full model of the same seed, overall, paired by origin."""
    rs = Resampling.draw(cfg, ds.sizes["origin"])
    totals = select_totals(ds)
    return {name: comparison_record(compare(totals, name, full, rs)) for name in ablations}
