"""DVC stage `significance`: 90 % block-bootstrap intervals, paired tests and horizon.

Reads the per-origin error sums ``evaluate`` wrote; writes the headline intervals
(``metrics/significance.json``), every comparison per zone and lead
(``plots/significance/comparisons.json``) and MSESS by lead with its band.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import _src_path  # noqa: F401  (this checkout's src before ames)

from ames.cli import stage_main
from ames.config import AmesConfig
from ames.evaluation.error_sums import read_error_sums
from ames.io import write_json
from ames.paths import ERRORS, METRICS, PLOTS
from ames.plotting.significance import plot_msess_band
from ames.workflows.significance import BAND_FORECASTS, MODEL, significance_report

log = logging.getLogger("ames.significance")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--errors", default=str(ERRORS))
    parser.add_argument("--plots", default=str(PLOTS / "significance"))
    parser.add_argument("--metrics", default=str(METRICS / "significance.json"))


def run(args: argparse.Namespace, cfg: AmesConfig) -> None:
    uncertainty = cfg.uncertainty
    report = significance_report(read_error_sums(args.errors), uncertainty)
    write_json(args.metrics, report["headline"])
    plots = Path(args.plots)
    write_json(plots / "comparisons.json", report["detail"])
    write_json(plots / "msess_by_lead_ci.json", {"rows": report["band"]})
    names = [n for n in BAND_FORECASTS if n in report["band"][0]]
    plot_msess_band(report["band"], names, uncertainty.level, plots / "msess_by_lead_ci.png")
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


main = stage_main("significance", __doc__, add_arguments, run)

if __name__ == "__main__":
    main()
