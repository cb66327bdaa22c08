"""DVC stage `significance`: 90 % block-bootstrap intervals, paired tests and horizon.

Reads the per-origin error sums ``evaluate`` wrote; writes the headline intervals
(``metrics/significance.json``), every comparison per zone and lead
(``plots/significance/comparisons.json``) and MSESS by lead with its band.
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
from ames.evaluation.error_sums import read_error_sums
from ames.io import write_json
from ames.plotting.significance import plot_msess_band
from ames.settings import load_config
from ames.workflows.significance import BAND_FORECASTS, MODEL, significance_report

log = logging.getLogger("ames.significance")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--errors", default="predictions/test_errors.nc")
    parser.add_argument("--plots", default="plots/significance")
    parser.add_argument("--metrics", default="metrics/significance.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    cfg = load_config(args.params).uncertainty
    report = significance_report(read_error_sums(args.errors), cfg)
    write_json(args.metrics, report["headline"])
    plots = Path(args.plots)
    write_json(plots / "comparisons.json", report["detail"])
    write_json(plots / "msess_by_lead_ci.json", {"rows": report["band"]})
    names = [n for n in BAND_FORECASTS if n in report["band"][0]]
    plot_msess_band(report["band"], names, cfg.level, plots / "msess_by_lead_ci.png")
    head = report["headline"]
    ames = head[MODEL]
    log.info(
        "AMES MSESS %.4f [%.4f, %.4f]; horizon %s",
        ames["msess"],
        ames["msess_lo"],
        ames["msess_hi"],
        head["horizon"],
    )
    for ref, row in head["vs"].items():
        log.info(
            "vs %-20s dMSESS %+.4f [%+.4f, %+.4f] significant %s, DM p %.3f, n_eff %.1f",
            ref,
            row["delta_msess"],
            row["delta_msess_lo"],
            row["delta_msess_hi"],
            row["significant"],
            row["dm_p"],
            row["n_eff"],
        )


if __name__ == "__main__":
    run_stage("significance", main)
