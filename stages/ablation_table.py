"""DVC stage `ablation_table`: the ablations against the full model, as a table and bars.

The ablations start from the stage-1 experts of the main chain, so they are compared with
that seed's full model (not the seed ensemble), paired by origin blocks.
"""

from __future__ import annotations

import argparse
import logging
from functools import reduce
from pathlib import Path

import _src_path  # noqa: F401  (this checkout's src before ames)

from ames.cli import stage_main
from ames.config import AmesConfig
from ames.evaluation.error_sums import merge_error_sums, read_error_sums
from ames.evaluation.forecast_set import member_name
from ames.io import read_json, write_json
from ames.paths import ABLATION_ERRORS, ABLATIONS, ERRORS, METRICS, MODELS, PLOTS
from ames.plotting.evaluation import plot_ablation_bars
from ames.workflows.ablation import ablation_table
from ames.workflows.significance import ablation_significance


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=Path, default=MODELS, help="holds ablations/<name>/")
    parser.add_argument("--reports", type=Path, default=METRICS / ABLATIONS)
    parser.add_argument("--test", default=str(METRICS / "test.json"), help="evaluate's report")
    parser.add_argument("--errors", default=str(ERRORS))
    parser.add_argument("--out", default=str(METRICS / "ablations.json"))
    parser.add_argument("--plot", type=Path, default=PLOTS / ABLATIONS / "ablation_bars.png")


def run(args: argparse.Namespace, cfg: AmesConfig) -> None:
    names = list(cfg.ablations)
    results = {name: read_json(args.reports / f"{name}.json") for name in names}
    sums = reduce(
        merge_error_sums,
        [read_error_sums(args.models / ABLATIONS / name / ABLATION_ERRORS) for name in names],
        read_error_sums(args.errors),
    )
    seed = cfg.seed
    significance = ablation_significance(sums, member_name(seed), names, cfg.uncertainty)
    full = read_json(args.test)["seeds"]["by_seed"][str(seed)]
    table = ablation_table(full, results, significance)
    write_json(args.out, table)
    bars = {k: v for k, v in table.items() if k != "full_model"}
    plot_ablation_bars(bars, args.plot)
    for name, row in bars.items():
        logging.getLogger("ames.ablations").info(
            "%-20s dMSESS %+.4f [%+.4f, %+.4f] significant %s (DM p %.3f, n_eff %.1f)",
            name,
            row["delta_msess"],
            row["delta_msess_lo"],
            row["delta_msess_hi"],
            row["significant"],
            row["dm_p"],
            row["n_eff"],
        )


main = stage_main("ablation_table", __doc__, add_arguments, run)

if __name__ == "__main__":
    main()
