"""DVC stage `ablation_table`: the ablations against the full model, as a table and bars.

The ablations start from the stage-1 experts of the main chain, so they are compared with
that seed's full model (not the seed ensemble), paired by origin blocks.
"""

from __future__ import annotations

import argparse
import logging
import sys
from functools import reduce
from pathlib import Path

# Run the ames package of this checkout (a queued `dvc exp run` executes a copy of the
# repository), not whichever checkout an editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ames.cli import run_stage
from ames.evaluation.error_sums import merge_error_sums, read_error_sums
from ames.evaluation.forecast_set import member_name
from ames.io import read_json, write_json
from ames.plotting.evaluation import plot_ablation_bars
from ames.settings import load_config
from ames.workflows.ablation import ERRORS_FILE, ablation_table
from ames.workflows.common import MODELS
from ames.workflows.significance import ablation_significance


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--models", type=Path, default=MODELS, help="holds ablations/<name>/")
    parser.add_argument("--reports", type=Path, default=Path("metrics/ablations"))
    parser.add_argument("--test", default="metrics/test.json", help="evaluate's report")
    parser.add_argument("--errors", default="predictions/test_errors.nc")
    parser.add_argument("--out", default="metrics/ablations.json")
    parser.add_argument("--plot", type=Path, default=Path("plots/ablations/ablation_bars.png"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    cfg = load_config(args.params)
    names = list(cfg.ablations)
    results = {name: read_json(args.reports / f"{name}.json") for name in names}
    sums = reduce(
        merge_error_sums,
        [read_error_sums(args.models / "ablations" / name / ERRORS_FILE) for name in names],
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


if __name__ == "__main__":
    run_stage("ablation_table", main)
