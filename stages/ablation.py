"""DVC stage `ablation@<name>`: one ablation of SPEC §4.6, scored on the test split."""

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
from ames.workflows.ablation import run_ablation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--params", default="params.yaml")
    add_run_paths(parser)
    parser.add_argument("--metrics", help="default: metrics/ablations/<name>.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    result = run_ablation(
        load_config(args.params),
        args.name,
        models_dir=args.models,
        dataset=args.dataset,
        masks_dir=args.masks,
    )
    write_json(args.metrics or f"metrics/ablations/{args.name}.json", result)
    overall = result["test"]["overall"]
    logging.getLogger("ames.ablation").info(
        "%s: test pooled R2 %.3f, RMSE %.1f mm/month, MSESS %.3f (%.0f s)",
        args.name,
        overall["pooled_r2"],
        overall["rmse"],
        overall["msess"],
        result["time_s"],
    )


if __name__ == "__main__":
    run_stage("ablation", main)
