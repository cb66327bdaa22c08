"""DVC stage `seed_members`: the model trained again with seeds seed+1 … seed+seeds−1.

Member 0 (``seed``) is the main chain (``expert@1..3 → gating → finetune``); this stage
trains the other members of the seed ensemble from the same data into
``models/members/seed<S>/`` (see ``ames.workflows.seeds``).
"""

from __future__ import annotations

import argparse
import logging

import _src_path  # noqa: F401  (this checkout's src before ames)

from ames.cli import stage_main
from ames.config import AmesConfig
from ames.io import write_json
from ames.paths import METRICS, add_run_paths
from ames.training.distributed import init_from_env, on_main
from ames.workflows.context import RunContext
from ames.workflows.seeds import train_members


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_paths(parser)
    parser.add_argument("--metrics", default=str(METRICS / "seed_members.json"))


def run(args: argparse.Namespace, cfg: AmesConfig) -> None:
    init_from_env()  # under torchrun: one rank of several (rank 0 logs and writes)
    result = train_members(RunContext.load(cfg, args.dataset, args.masks, args.models))
    on_main(write_json, args.metrics, result)
    logging.getLogger("ames.seeds").info(
        "seeds %s: %d extra members trained (%.0f s)",
        result["seeds"],
        len(result["members"]),
        result["time_s"],
    )


main = stage_main("seed_members", __doc__, add_arguments, run)

if __name__ == "__main__":
    main()
