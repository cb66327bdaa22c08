"""DVC stage `expert@N`: train one elevation expert (SPEC §4.2, §4.5 stage 1)."""

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
from ames.workflows.expert import train_expert


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--expert", type=int, choices=(1, 2, 3), required=True)
    parser.add_argument("--params", default="params.yaml")
    add_run_paths(parser)
    parser.add_argument("--metrics", type=Path, help="default: metrics/expert<N>.json")
    parser.add_argument("--live", type=Path, help="default: metrics/live/expert<N>")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    metrics = train_expert(
        load_config(args.params),
        args.expert,
        live_dir=args.live or Path(f"metrics/live/expert{args.expert}"),
        models_dir=args.models,
        dataset=args.dataset,
        masks_dir=args.masks,
    )
    write_json(args.metrics or Path(f"metrics/expert{args.expert}.json"), metrics)
    in_zone = metrics["val"]["in_zone"]
    logging.getLogger("ames.expert").info(
        "expert%d: in-zone validation MSESS %.3f, RMSE %.1f mm/month (%s s)",
        args.expert,
        in_zone["msess"],
        in_zone["rmse"],
        metrics["time_s"],
    )


if __name__ == "__main__":
    run_stage("expert", main)
