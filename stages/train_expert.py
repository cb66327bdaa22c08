"""DVC stage `expert@N`: train one elevation expert (SPEC §4.2, §4.5 stage 1)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import _src_path  # noqa: F401  (this checkout's src before ames)

from ames.cli import stage_main
from ames.config import AmesConfig
from ames.io import write_json
from ames.paths import LIVE, METRICS, add_run_paths
from ames.training.distributed import init_from_env, on_main
from ames.workflows.context import RunContext
from ames.workflows.expert import train_expert


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expert", type=int, choices=(1, 2, 3), required=True)
    add_run_paths(parser)
    parser.add_argument("--metrics", type=Path, help="default: metrics/expert<N>.json")
    parser.add_argument("--live", type=Path, help="default: metrics/live/expert<N>")


def run(args: argparse.Namespace, cfg: AmesConfig) -> None:
    init_from_env()  # under torchrun: one rank of several (rank 0 logs and writes)
    ctx = RunContext.load(cfg, args.dataset, args.masks, args.models)
    metrics = train_expert(ctx, args.expert, live_dir=args.live or LIVE / f"expert{args.expert}")
    on_main(write_json, args.metrics or METRICS / f"expert{args.expert}.json", metrics)
    in_zone = metrics["val"]["in_zone"]
    logging.getLogger("ames.expert").info(
        "expert%d: in-zone validation MSESS %.3f, RMSE %.1f mm/month (%s s)",
        args.expert,
        in_zone["msess"],
        in_zone["rmse"],
        metrics["time_s"],
    )


main = stage_main("expert", __doc__, add_arguments, run)

if __name__ == "__main__":
    main()
