"""DVC stage `selection`: every pre-test decision, what decided it, each candidate's loss and
the winner (``metrics/selection.json``), and the cross-validation curves of the ridge
penalties and of the epochs stages 2 and 3 keep."""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import _src_path  # noqa: F401  (this checkout's src before ames)

from ames.cli import stage_main
from ames.io import read_json, write_json
from ames.paths import LIVE, METRICS, PLOTS
from ames.plotting.selection import plot_cv_curves, plot_epoch_curves
from ames.workflows.selection_report import EXPERTS, selection_report

TRAINED = (*EXPERTS, "gating", "finetune")
REPORTS = ("test", *TRAINED, "calibration")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reports", type=Path, default=METRICS, help="the stages' reports")
    parser.add_argument("--live", type=Path, default=LIVE, help="the training stages' DVCLive")
    parser.add_argument("--out", type=Path, default=METRICS / "selection.json")
    parser.add_argument("--plot", type=Path, default=PLOTS / "selection" / "ridge_cv.png")
    parser.add_argument("--epochs-plot", type=Path, default=PLOTS / "selection" / "epochs_cv.png")


def val_loss_by_epoch(live_dir: Path) -> list[float]:
    """The validation loss of every epoch (0 = the starting weights) from a DVCLive folder."""
    with (live_dir / "plots" / "metrics" / "val" / "loss.tsv").open() as fh:
        return [float(row["loss"]) for row in csv.DictReader(fh, delimiter="\t")]


def run(args: argparse.Namespace, _: None) -> None:
    reports = {name: read_json(args.reports / f"{name}.json") for name in REPORTS}
    losses = {name: val_loss_by_epoch(args.live / name) for name in TRAINED}
    report = selection_report(reports, losses)
    write_json(args.out, report)
    ridge = report["decisions"]["ridge_penalty"]
    plot_cv_curves(ridge["cv_mse_by_candidate"], ridge["winner_by_lead"], args.plot)
    plot_epoch_curves(report["decisions"], args.epochs_plot)
    logging.getLogger("ames.selection").info(
        "%d decisions on the folds, %d on the validation split: %s",
        report["decided_on_folds"],
        report["decided_on_validation"],
        args.out,
    )


# reads the stages' reports, not params.yaml: no --params
main = stage_main("selection", __doc__, add_arguments, run, params_help=None)

if __name__ == "__main__":
    main()
