"""DVC stage `ablation_table`: the ablations against the full model, as a table and bars."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ames.config import load_params
from ames.io import read_json, write_json
from ames.plotting.evaluation import plot_ablation_bars
from ames.workflows.ablation import ablation_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    names = list(load_params(args.params)["ablations"])
    results = {name: read_json(Path("metrics/ablations") / f"{name}.json") for name in names}
    table = ablation_table(read_json("metrics/test.json"), results)
    write_json("metrics/ablations.json", table)
    bars = {k: v for k, v in table.items() if k != "full_model"}
    plot_ablation_bars(bars, Path("plots/ablations/ablation_bars.png"))
    for name, row in bars.items():
        logging.getLogger("ames.ablations").info(
            "%-20s dR2 %+.4f  dRMSE %+.2f mm/month", name, row["delta_pooled_r2"], row["delta_rmse"]
        )


if __name__ == "__main__":
    main()
