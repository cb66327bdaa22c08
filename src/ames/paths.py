"""Default locations of the pipeline's files, in one place.

``dvc.yaml`` writes each path two stages share once (its ``vars``) and passes it to every
stage that reads or writes it; these defaults serve a stage run by hand and the workflows'
keyword arguments. Every stage script and workflow takes its default paths from here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# Shared between stages (``vars: paths`` in dvc.yaml).
DATASET = Path("data/processed/dataset.nc")
ORACLE = Path("data/processed/oracle.nc")
MASKS = Path("data/processed/masks")
MODELS = Path("models")
PREDICTIVE = MODELS / "predictive.nc"  # calibrate's predictive distribution
HINDCAST = Path("predictions/hindcast_test.nc")
ERRORS = Path("predictions/test_errors.nc")  # evaluate's per-origin error sums
FORECAST = Path("predictions/forecast.nc")

# Inside the models folder.
EXPERT_CHECKPOINT = "expert{index}_best.pt"
STAGE2_CHECKPOINT = "ames_stage2_best.pt"  # gating
FINAL_CHECKPOINT = "ames_final_best.pt"  # finetune
CHECKPOINT = MODELS / FINAL_CHECKPOINT  # what inference loads by default
MEMBERS = "members"  # the seed ensemble's other members: members/seed<S>/
MEMBERS_MANIFEST = "members.json"  # in MEMBERS
ABLATIONS = "ablations"  # models/ablations/<name>/ (and metrics/ablations/<name>.json)
ABLATION_ERRORS = "test_errors.nc"  # per-origin error sums, beside an ablation's checkpoints
STATE = "state"  # resumable training state (outside the DVC outputs)

# Reports and plots.
METRICS = Path("metrics")
LIVE = METRICS / "live"  # DVCLive folders of the training stages
PLOTS = Path("plots")
METADATA = Path("predictions/metadata.json")  # the default forecast's metadata
INFERENCE_PLOTS = PLOTS / "inference"


def expert_checkpoint(index: int, models_dir: Path = MODELS) -> Path:
    """Stage 1's checkpoint of expert ``index`` in ``models_dir``."""
    return models_dir / EXPERT_CHECKPOINT.format(index=index)


def add_run_paths(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--masks`` and ``--models``: what every training/evaluation stage reads."""
    parser.add_argument("--dataset", type=Path, default=DATASET, help="prepare's dataset.nc")
    parser.add_argument("--masks", type=Path, default=MASKS, help="the masks stage's folder")
    parser.add_argument("--models", type=Path, default=MODELS, help="checkpoints folder")
