"""DVC stage `finetune`: joint fine-tuning with physics losses (SPEC §4.4, §4.5 stage 3)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ames.cli import run_stage
from ames.config import load_params
from ames.io import write_json
from ames.workflows.ames_model import finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    params = load_params(args.params)
    _, metrics = finetune(
        params,
        live_dir=Path("metrics/live/finetune"),
        routing_plot=Path("plots/finetune/routing_vs_elevation.png"),
    )
    write_json("metrics/finetune.json", metrics)
    overall = metrics["val"]["overall"]
    logging.getLogger("ames.finetune").info(
        "alpha %.3f; validation pooled R2 %.3f, MSESS %.3f (%.0f s)",
        metrics["alpha"],
        overall["pooled_r2"],
        overall["msess"],
        metrics["time_s"],
    )


if __name__ == "__main__":
    run_stage("finetune", main)
