"""DVC stage `ablation@<name>`: one ablation of SPEC §4.6, scored on the test split."""

from __future__ import annotations

import argparse
import logging

import _src_path  # noqa: F401  (this checkout's src before ames)

from ames.cli import stage_main
from ames.config import AmesConfig
from ames.io import write_json
from ames.paths import ABLATIONS, METRICS, add_run_paths
from ames.training.distributed import init_from_env, on_main
from ames.workflows.ablation import run_ablation
from ames.workflows.context import RunContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True)
    add_run_paths(parser)
    parser.add_argument("--metrics", help="default: metrics/ablations/<name>.json")


def run(args: argparse.Namespace, cfg: AmesConfig) -> None:
    init_from_env()  # under torchrun: one rank of several (rank 0 logs and writes)
    result = run_ablation(RunContext.load(cfg, args.dataset, args.masks, args.models), args.name)
    on_main(write_json, args.metrics or METRICS / ABLATIONS / f"{args.name}.json", result)
    overall = result["test"]["overall"]
    logging.getLogger("ames.ablation").info(
        "%s: test pooled R2 %.3f, RMSE %.1f mm/month, MSESS %.3f (%.0f s)",
        args.name,
        overall["pooled_r2"],
        overall["rmse"],
        overall["msess"],
        result["time_s"],
    )


main = stage_main("ablation", __doc__, add_arguments, run)

if __name__ == "__main__":
    main()
