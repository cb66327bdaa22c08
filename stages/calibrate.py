"""DVC stage `calibrate`: the predictive distribution's climatology and spread scales.

Builds the climatological ensemble and tercile edges of every cell and calendar month from
the training months, shrinks the forecast toward climatology by the weights the folds
decided and dresses it with the spread scales and tercile weights the folds decided (all
stored in the final checkpoint by the gating stage: ``ames.workflows.fold_calibration``),
scoring them on the validation origins of the seed-ensemble forecast; damped persistence, the
probabilistic baseline, gets its spread scales fitted on those origins (lowest CRPS).
Writes ``models/predictive.nc`` (read by ``evaluate`` and ``inference``) and
``metrics/calibration.json``.
"""

from __future__ import annotations

import argparse
import logging
import time

import _src_path  # noqa: F401  (this checkout's src before ames)
import numpy as np

from ames.cli import stage_main
from ames.config import AmesConfig
from ames.data.netcdf import write_netcdf
from ames.io import write_json
from ames.paths import FINAL_CHECKPOINT, METRICS, PREDICTIVE, add_run_paths
from ames.training.device import select_device
from ames.workflows.ames_model import checkpoint_extra
from ames.workflows.context import RunContext
from ames.workflows.evaluate import baseline_forecasts
from ames.workflows.probabilistic import calibrate
from ames.workflows.seeds import ensemble_test_forecasts, load_members
from ames.workflows.stage2_folds import (
    CLIMATOLOGY_WEIGHT_CV,
    CV_MSE_RATIO,
    SPREAD_SCALE_CV,
    TERCILE_WEIGHT_CV,
    supported_floors,
)

log = logging.getLogger("ames.calibrate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_paths(parser)
    parser.add_argument("--out", default=str(PREDICTIVE))
    parser.add_argument("--metrics", default=str(METRICS / "calibration.json"))


def run(args: argparse.Namespace, cfg: AmesConfig) -> None:
    start = time.perf_counter()
    ctx = RunContext.load(cfg, args.dataset, args.masks, args.models)
    inputs = ctx.run
    device = select_device(cfg.train.device)
    members = load_members(ctx, device)
    train = cfg.train
    forecasts, _ = ensemble_test_forecasts(
        members, inputs, train.batch_size, "val", train.max_batch_cells
    )
    origins = forecasts["origin"]
    split = cfg.split
    damped = baseline_forecasts(inputs, origins, split.test_months, split.val_months)
    point = {"ames": forecasts["pred"], "damped_persistence": damped["damped_persistence"]}
    final = ctx.models_dir / FINAL_CHECKPOINT
    folds = checkpoint_extra(final) or {}
    if SPREAD_SCALE_CV not in folds:
        raise ValueError(
            f"{final}: no spread scales decided on the folds (written by an older version); "
            "re-run `dvc repro gating`"
        )
    decided = {"spread_scale": folds[SPREAD_SCALE_CV], "tercile_weight": folds[TERCILE_WEIGHT_CV]}
    predictive, report = calibrate(
        point, forecasts["obs"], forecasts["clim"], origins, inputs, cfg.probabilistic,
        supported_floors(ctx, folds.get(CV_MSE_RATIO)), folds.get(CLIMATOLOGY_WEIGHT_CV),
        decided,
    )  # fmt: skip
    write_netcdf(predictive, args.out)
    report["time_s"] = round(time.perf_counter() - start, 1)
    write_json(args.metrics, report)
    log.info(
        "climatology weight by lead: %s; spread scale by lead (ames): %s; validation CRPSS %s",
        np.round(report["climatology_weight"], 2).tolist(),
        np.round(report["spread_scale"]["ames"], 2).tolist(),
        [round(r["crpss"], 3) for r in report["val"]["ames"]["by_lead"]],
    )


main = stage_main("calibrate", __doc__, add_arguments, run)

if __name__ == "__main__":
    main()
