"""DVC stage `calibrate`: the predictive distribution's climatology and spread scales.

Builds the climatological ensemble and tercile edges of every cell and calendar month from
the training months, and fits one spread scale per lead on the validation origins of the
seed-ensemble forecast (and of damped persistence, the probabilistic baseline) by minimising
the CRPS. Writes ``models/predictive.nc`` (read by ``evaluate`` and ``inference``) and
``metrics/calibration.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

# Run the ames package of this checkout (a queued `dvc exp run` executes a copy of the
# repository), not whichever checkout an editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ames.cli import run_stage
from ames.data.netcdf import write_netcdf
from ames.io import write_json
from ames.paths import add_run_paths
from ames.run import load_run_inputs
from ames.settings import load_config
from ames.training.device import select_device
from ames.workflows.common import load_graph
from ames.workflows.evaluate import baseline_forecasts
from ames.workflows.probabilistic import PREDICTIVE, calibrate
from ames.workflows.seeds import ensemble_test_forecasts, load_members

log = logging.getLogger("ames.calibrate")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    add_run_paths(parser)
    parser.add_argument("--out", default=str(PREDICTIVE))
    parser.add_argument("--metrics", default="metrics/calibration.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    start = time.perf_counter()
    cfg = load_config(args.params)
    run = load_run_inputs(cfg, args.dataset, args.masks)
    device = select_device(cfg.train.device)
    members = load_members(cfg, run, load_graph(run, args.masks), device, args.models)
    forecasts, _ = ensemble_test_forecasts(members, run, cfg.train.batch_size, "val")
    origins = forecasts["origin"]
    split = cfg.split
    damped = baseline_forecasts(run, origins, split.test_months, split.val_months)
    point = {"ames": forecasts["pred"], "damped_persistence": damped["damped_persistence"]}
    predictive, report = calibrate(
        point, forecasts["obs"], origins, run, cfg.probabilistic.spread_scale_bounds
    )
    write_netcdf(predictive, args.out)
    report["time_s"] = round(time.perf_counter() - start, 1)
    write_json(args.metrics, report)
    log.info(
        "spread scale by lead (ames): %s; validation CRPSS %s",
        np.round(report["spread_scale"]["ames"], 2).tolist(),
        [round(r["crpss"], 3) for r in report["val"]["ames"]["by_lead"]],
    )


if __name__ == "__main__":
    run_stage("calibrate", main)
