"""DVC stage `headline`: the ~50 numbers `dvc metrics show/diff` and `dvc exp show` read.

Copies the headline scores, intervals, alpha and stage times out of the stages' detailed
reports into one small file; the detail stays in those reports and in the plots.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import _src_path  # noqa: F401  (this checkout's src before ames)

from ames.cli import stage_main
from ames.io import read_json, write_json
from ames.paths import ABLATIONS, METRICS, PLOTS
from ames.workflows.headline import headline_metrics, stage_times


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reports", default=str(METRICS), help="folder of the stages' reports")
    parser.add_argument("--comparisons", default=str(PLOTS / "significance" / "comparisons.json"))
    parser.add_argument("--out", default=str(METRICS / "headline.json"))


def run(args: argparse.Namespace, _: None) -> None:
    reports_dir = Path(args.reports)
    names = ["data", "masks", "expert1", "expert2", "expert3", "gating", "finetune"]
    names += ["seed_members", "calibration", "test", "significance"]
    reports = {name: read_json(reports_dir / f"{name}.json") for name in names}
    ablations = [n for n in read_json(reports_dir / "ablations.json") if n != "full_model"]
    for name in ablations:
        reports[f"ablations/{name}"] = read_json(reports_dir / ABLATIONS / f"{name}.json")
    headline = headline_metrics(
        test=reports["test"],
        comparisons=read_json(args.comparisons),
        significance=reports["significance"],
        alpha=float(reports["finetune"]["alpha"]),
        stage_times=stage_times(reports),
    )
    write_json(args.out, headline)
    ames = headline["ames"]
    logging.getLogger("ames.headline").info(
        "AMES MSESS %.4f [%.4f, %.4f]; minus ridge %+.4f; %s",
        ames["msess"],
        ames["msess_lo"],
        ames["msess_hi"],
        headline["ames_minus"]["ridge"]["delta_msess"],
        args.out,
    )


# reads the stages' reports, not params.yaml: no --params
main = stage_main("headline", __doc__, add_arguments, run, params_help=None)

if __name__ == "__main__":
    main()
