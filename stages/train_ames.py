"""DVC stages `gating` and `finetune`: AMES stage 2 (physics-guided gating on frozen experts,
SPEC §4.3, §4.5) and stage 3 (joint fine-tuning with physics losses, SPEC §4.4, §4.5)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# Run the ames package of this checkout (a queued `dvc exp run` executes a copy of the
# repository), not whichever checkout an editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ames.cli import run_stage
from ames.io import write_json
from ames.paths import add_run_paths
from ames.settings import load_config
from ames.workflows.ames_model import finetune, train_gating

TRAIN = {"gating": train_gating, "finetune": finetune}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", choices=sorted(TRAIN), required=True)
    parser.add_argument("--params", default="params.yaml")
    add_run_paths(parser)
    parser.add_argument("--metrics", type=Path, help="default: metrics/<stage>.json")
    parser.add_argument("--live", type=Path, help="default: metrics/live/<stage>")
    parser.add_argument("--plot", type=Path, help="default: plots/<stage>/routing_vs_elevation.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    stage = args.stage
    _, metrics = TRAIN[stage](
        load_config(args.params),
        models_dir=args.models,
        dataset=args.dataset,
        masks_dir=args.masks,
        live_dir=args.live or Path("metrics/live") / stage,
        routing_plot=args.plot or Path("plots") / stage / "routing_vs_elevation.png",
    )
    write_json(args.metrics or Path("metrics") / f"{stage}.json", metrics)
    overall = metrics["val"]["overall"]
    logging.getLogger(f"ames.{stage}").info(
        "alpha %.3f; validation pooled R2 %.3f, MSESS %.3f (%.0f s)",
        metrics["alpha"],
        overall["pooled_r2"],
        overall["msess"],
        metrics["time_s"],
    )


def stage_name(argv: list[str]) -> str:
    """``gating`` or ``finetune`` from the command line: the name a one-line error starts with."""
    for i, arg in enumerate(argv):
        if arg.startswith("--stage="):
            return arg.split("=", 1)[1]
        if arg == "--stage" and i + 1 < len(argv):
            return argv[i + 1]
    return "train_ames"


if __name__ == "__main__":
    run_stage(stage_name(sys.argv[1:]), main)
