"""DVC stage `seed_members`: the model trained again with seeds seed+1 … seed+seeds−1.

Member 0 (``seed``) is the main chain (``expert@1..3 → gating → finetune``); this stage
trains the other members of the seed ensemble from the same data into
``models/members/seed<S>/`` (see ``ames.workflows.seeds``).
"""

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
from ames.workflows.seeds import train_members


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    add_run_paths(parser)
    parser.add_argument("--metrics", default="metrics/seed_members.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    result = train_members(
        load_config(args.params),
        models_dir=args.models,
        dataset=args.dataset,
        masks_dir=args.masks,
    )
    write_json(args.metrics, result)
    logging.getLogger("ames.seeds").info(
        "seeds %s: %d extra members trained (%.0f s)",
        result["seeds"],
        len(result["members"]),
        result["time_s"],
    )


if __name__ == "__main__":
    run_stage("seed_members", main)
