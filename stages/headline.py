"""DVC stage `headline`: the ~50 numbers `dvc metrics show/diff` and `dvc exp show` read.

Copies the headline scores, intervals, alpha and stage times out of the stages' detailed
reports into one small file; the detail stays in those reports and in the plots.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# Run the ames package of this checkout (a queued `dvc exp run` executes a copy of the
# repository), not whichever checkout an editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ames.cli import run_stage
from ames.io import read_json, write_json
from ames.workflows.headline import headline_metrics, stage_times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", default="metrics", help="folder of the stages' reports")
    parser.add_argument("--comparisons", default="plots/significance/comparisons.json")
    parser.add_argument("--out", default="metrics/headline.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    reports_dir = Path(args.reports)
    names = ["data", "masks", "expert1", "expert2", "expert3", "gating", "finetune"]
    names += ["seed_members", "calibration", "test", "significance"]
    reports = {name: read_json(reports_dir / f"{name}.json") for name in names}
    ablations = [n for n in read_json(reports_dir / "ablations.json") if n != "full_model"]
    for name in ablations:
        reports[f"ablations/{name}"] = read_json(reports_dir / "ablations" / f"{name}.json")
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


if __name__ == "__main__":
    run_stage("headline", main)
