"""Default locations of the pipeline's files.

``dvc.yaml`` writes each path once (its ``vars``) and passes it to every stage that reads or
writes it; these defaults only serve a stage run by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DATASET = Path("data/processed/dataset.nc")
ORACLE = Path("data/processed/oracle.nc")
MASKS = Path("data/processed/masks")
MODELS = Path("models")


def add_run_paths(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--masks`` and ``--models``: what every training/evaluation stage reads."""
    parser.add_argument("--dataset", type=Path, default=DATASET, help="prepare's dataset.nc")
    parser.add_argument("--masks", type=Path, default=MASKS, help="the masks stage's folder")
    parser.add_argument("--models", type=Path, default=MODELS, help="checkpoints folder")
