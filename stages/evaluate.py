"""DVC stage `evaluate`: test-split scores of the model, experts, baselines and oracle.

The model (and each expert row) is the seed ensemble: the mean of the members' forecasts
(``ames.workflows.seeds``); each member is also scored alone (``seeds`` in test.json).
The predictive distribution fitted by ``calibrate`` dresses the model and damped persistence;
their CRPS, CRPSS, RPSS and interval coverage go to ``probabilistic`` in test.json, the
quantiles and tercile probabilities of the model to the hindcast.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import _src_path  # noqa: F401  (this checkout's src before ames)

from ames.cli import stage_main
from ames.config import AmesConfig
from ames.data.netcdf import write_netcdf
from ames.evaluation.error_sums import write_error_sums
from ames.evaluation.forecast_set import MODEL, TRUTH, member_name, zone_masks
from ames.evaluation.metrics import score_dataset
from ames.evaluation.probabilistic import shrink_to_climatology
from ames.io import write_json
from ames.paths import ERRORS, HINDCAST, METRICS, ORACLE, PLOTS, PREDICTIVE, add_run_paths
from ames.plotting.evaluation import (
    plot_maps,
    plot_obs_vs_forecast_by_zone,
    plot_skill_by_lead,
    skill_by_lead_table,
    skill_by_zone_table,
)
from ames.plotting.probabilistic import plot_pit_histograms, plot_reliability
from ames.training.device import select_device
from ames.workflows.context import RunContext
from ames.workflows.evaluate import (
    baseline_forecasts,
    evaluation_forecast_set,
    evaluation_report,
    hindcast_dataset,
    maps_for,
    oracle_forecasts,
    ridge_baseline,
)
from ames.workflows.probabilistic import (
    SCALE_VARS,
    load_climatology_weights,
    load_predictive,
    score_probabilistic,
)
from ames.workflows.probabilistic_products import add_products
from ames.workflows.seeds import ensemble_test_forecasts, load_members, seed_summary
from ames.workflows.significance import forecast_error_sums

log = logging.getLogger("ames.evaluate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_paths(parser)
    parser.add_argument("--oracle", default=str(ORACLE))
    parser.add_argument("--metrics", default=str(METRICS / "test.json"))
    parser.add_argument("--hindcast", default=str(HINDCAST))
    parser.add_argument("--errors", default=str(ERRORS))
    parser.add_argument("--predictive", default=str(PREDICTIVE))
    parser.add_argument("--plots", default=str(PLOTS / "evaluate"))


def run(args: argparse.Namespace, cfg: AmesConfig) -> None:
    start = time.perf_counter()
    ctx = RunContext.load(cfg, args.dataset, args.masks, args.models)
    inputs = ctx.run
    device = select_device(cfg.train.device)
    members = load_members(ctx, device)
    forecasts, by_seed = ensemble_test_forecasts(
        members, inputs, cfg.train.batch_size, max_batch_cells=cfg.train.max_batch_cells
    )
    # the published forecast: each lead shrunk toward climatology by its calibrated weight
    weights = load_climatology_weights(args.predictive)
    forecasts["pred"] = shrink_to_climatology(forecasts["pred"], forecasts["clim"], weights)
    split = cfg.split
    baselines = baseline_forecasts(inputs, forecasts["origin"], split.test_months, split.val_months)
    baselines["ridge"], ridge_selection = ridge_baseline(inputs, forecasts["origin"], cfg.selection)
    oracle = oracle_forecasts(Path(args.oracle), inputs, forecasts["origin"])
    test_set = evaluation_forecast_set(forecasts, by_seed, baselines, oracle, inputs)
    scores = score_dataset(test_set)
    report = evaluation_report(test_set, scores)
    obs = test_set[TRUTH].values
    report["ridge_selection"] = ridge_selection
    report["seeds"] = seed_summary({seed: scores[member_name(seed)] for seed in by_seed})
    options = cfg.probabilistic
    predictives = {name: load_predictive(args.predictive, name) for name in SCALE_VARS}
    point = {name: test_set[name].values for name in (MODEL, "damped_persistence")}
    report["probabilistic"], prob_tables, products = score_probabilistic(
        point,
        obs,
        forecasts["origin"],
        inputs,
        predictives,
        options,
        cfg.uncertainty,
    )
    report["climatology_weight"] = [round(float(w), 4) for w in weights]
    report["n_test_origins"] = int(len(forecasts["origin"]))
    report["time_s"] = round(time.perf_counter() - start, 1)
    write_json(args.metrics, report)

    write_error_sums(forecast_error_sums(test_set), args.errors)
    seeds = ", ".join(map(str, by_seed))
    attrs = {"source": "AMES evaluate stage", "split": "test", "seed_ensemble": seeds}
    hindcast = add_products(
        hindcast_dataset(test_set, attrs),
        products,
        inputs.masks.valid,
        options.quantiles,
        ("origin", "lead"),
    )
    write_netcdf(hindcast, args.hindcast)
    plots = Path(args.plots)
    by_lead = {"AMES": report["model"], **report["experts"], **report["baselines"]}
    if "oracle" in report:
        by_lead["oracle"] = report["oracle"]
    write_json(plots / "skill_by_zone.json", {"rows": skill_by_zone_table(by_lead, "msess")})
    for metric in ("msess", "rmse"):
        plot_skill_by_lead(by_lead, metric, plots / f"skill_by_lead_{metric}.png")
        write_json(
            plots / f"skill_by_lead_{metric}.json", {"rows": skill_by_lead_table(by_lead, metric)}
        )
    plot_pit_histograms(prob_tables["pit"], plots / "pit_histogram.png")
    plot_reliability(prob_tables["reliability"], plots / "reliability_above_normal.png")
    write_json(
        plots / "reliability_above_normal.json",
        {
            "rows": [
                {"forecast": name, **row}
                for name, rows in prob_tables["reliability"].items()
                for row in rows
                if row["n"]
            ]
        },
    )
    write_json(
        plots / "probabilistic_by_lead.json",
        {"rows": probabilistic_lead_rows(prob_tables["by_lead"])},
    )
    maps = maps_for(test_set)
    plot_maps(
        maps,
        inputs.data.lat,
        inputs.data.lon,
        plots / "test_maps.png",
        titles={"rmse": "Test RMSE (mm/month)", "msess": "Test MSESS vs climatology"},
    )
    plot_obs_vs_forecast_by_zone(
        test_set[MODEL].values, obs, zone_masks(test_set), plots / "obs_vs_forecast.png"
    )
    prob = report["probabilistic"]["ames"]["overall"]
    log.info(
        "test probabilistic: CRPSS %.3f, RPSS %.3f, %.0f%% interval coverage %.3f",
        prob["crpss"],
        prob["rpss"],
        100 * report["probabilistic"]["interval_nominal"],
        prob["coverage"],
    )
    overall = report["model"]["overall"]
    log.info(
        "test: pooled R2 %.3f, RMSE %.1f mm/month, MSESS %.3f; beats %s",
        overall["pooled_r2"],
        overall["rmse"],
        overall["msess"],
        report["beats"],
    )


def probabilistic_lead_rows(by_lead: dict[str, dict]) -> list[dict]:
    """Long-format rows (forecast, lead, crpss, rpss, coverage) for a DVC plot."""
    return [
        {"forecast": name, "lead": int(lead), **{k: row[k] for k in ("crpss", "rpss", "coverage")}}
        for name, leads in by_lead.items()
        for lead, row in leads.items()
    ]


main = stage_main("evaluate", __doc__, add_arguments, run)

if __name__ == "__main__":
    main()
