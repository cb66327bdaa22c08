"""A temporary copy of the repository with a tiny configuration, for end-to-end `dvc repro`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from ames.config import deep_merge

ROOT = Path(__file__).resolve().parents[1]

# Small box (11 x 13 cells spanning the cordillera), short record, tiny networks.
TINY: dict[str, Any] = {
    "data": {
        "bbox": {"lat_min": 5.525, "lat_max": 6.025, "lon_min": -73.175, "lon_max": -72.575},
        "n_months": 160,
    },
    # 25 test origins = two 12-month blocks, the fewest a bootstrap interval needs
    "split": {"test_months": 36, "val_months": 24},
    "features": {"input_window": 6},
    # params are checked as one whole when any stage loads them: every temporal_patch must
    # divide the input window (expert1's 6 does, expert2's default 4 does not)
    "expert2": {"model": {"temporal_patch": 3}},
}


QUICK = {"epochs": 1, "patience": 1}
# tiny networks and one epoch per stage, for end-to-end runs of the whole pipeline
TINY_MODELS: dict[str, Any] = {
    "train": {"batch_size": 4, "device": "cpu"},
    "expert1": {
        "model": {"lstm_hidden": 8, "gat_hidden": 8, "temporal_patch": 3},
        "training": QUICK,
    },
    "expert2": {"model": {"hidden": [4, 4], "temporal_patch": 3}, "training": QUICK},
    "expert3": {
        "model": {"encoder_hidden": 8, "conv_hidden": 8, "gat_hidden": 8},
        "training": QUICK,
    },
    "gating": {"training": QUICK},
    "finetune": {"training": QUICK},
    "uncertainty": {"n_boot": 200},
}


# the whole default pipeline, tiny: two seed members, so the seed ensemble runs end to end
FULL_RUN: dict[str, Any] = {**TINY_MODELS, "seeds": 2}


def project_files() -> list[str]:
    """Files git knows or would add (tracked + untracked, not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    return [f for f in out if f and (ROOT / f).is_file()]


def make_tiny_repo(dest: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Copy the project to ``dest``, apply TINY (+ overrides) to params.yaml, commit it."""
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params = deep_merge(params, deep_merge(TINY, overrides or {}))
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = pipeline_env(dest)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "tiny"],
    ):
        subprocess.run(cmd, cwd=dest, check=True, env=env, capture_output=True)
    return dest


def pipeline_env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    env["DVC_SITE_CACHE_DIR"] = str(repo / ".dvc-site-cache")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(repo / "src")
    return env


def run_dvc(repo: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """``dvc *args`` in ``repo``, whatever its exit status."""
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo,
        env=pipeline_env(repo),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dvc(repo: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """``dvc *args`` in ``repo``; a non-zero exit fails the test with DVC's output."""
    result = run_dvc(repo, *args, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def build_tiny_run(dest: Path) -> Path:
    """``make_tiny_repo(dest, FULL_RUN)`` with every stage run by ``dvc repro``."""
    repo = make_tiny_repo(dest, FULL_RUN)
    dvc(repo, "repro", timeout=1500)
    return repo


def copy_tiny_run(template: Path, dest: Path) -> Path:
    """A private copy of a tiny run: its git history, DVC cache, outputs and lock file, without
    DVC's per-checkout state (hashes are recomputed, the experiment queue starts empty)."""
    shutil.copytree(template, dest, symlinks=True)
    for rel in (".dvc/tmp", ".dvc-site-cache"):
        shutil.rmtree(dest / rel, ignore_errors=True)
    return dest
