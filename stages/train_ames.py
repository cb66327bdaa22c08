"""DVC stages `gating` and `finetune`: AMES stage 2 (gating) and stage 3 (fine-tuning).

Stage 2 trains the physics-guided gating on frozen experts (SPEC §4.3, §4.5); stage 3
fine-tunes everything jointly with the physics losses (SPEC §4.4, §4.5). ``--stage`` picks
one; a one-line error starts with its name.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import _src_path  # noqa: F401  (this checkout's src before ames)

from ames.cli import stage_main
from ames.config import AmesConfig
from ames.io import write_json
from ames.paths import LIVE, METRICS, PLOTS, add_run_paths
from ames.training.distributed import init_from_env, on_main
from ames.workflows.ames_model import finetune, train_gating
from ames.workflows.context import RunContext

TRAIN = {"gating": train_gating, "finetune": finetune}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", choices=sorted(TRAIN), required=True)
    add_run_paths(parser)
    parser.add_argument("--metrics", type=Path, help="default: metrics/<stage>.json")
    parser.add_argument("--live", type=Path, help="default: metrics/live/<stage>")
    parser.add_argument("--plot", type=Path, help="default: plots/<stage>/routing_vs_elevation.png")


def run(args: argparse.Namespace, cfg: AmesConfig) -> None:
    init_from_env()  # under torchrun: one rank of several (rank 0 logs and writes)
    stage = args.stage
    _, metrics = TRAIN[stage](
        RunContext.load(cfg, args.dataset, args.masks, args.models),
        live_dir=args.live or LIVE / stage,
        routing_plot=args.plot or PLOTS / stage / "routing_vs_elevation.png",
    )
    on_main(write_json, args.metrics or METRICS / f"{stage}.json", metrics)
    overall = metrics["val"]["overall"]
    logging.getLogger(f"ames.{stage}").info(
        "alpha %.3f; validation pooled R2 %.3f, MSESS %.3f (%.0f s)",
        metrics["alpha"],
        overall["pooled_r2"],
        overall["msess"],
        metrics["time_s"],
    )


# a one-line error starts with the DVC stage's name: gating or finetune
main = stage_main(lambda args: args.stage, __doc__, add_arguments, run)

if __name__ == "__main__":
    main()
